#!/usr/bin/env bash
# Deletes the local cluster created by scripts/kind-up.sh (kind by default, minikube with
# ECOM_CLUSTER=minikube), with everything in it.
set -euo pipefail

CLUSTER="${ECOM_CLUSTER:-kind}"
NAME="${ECOM_CLUSTER_NAME:-ecom}"

case "$CLUSTER" in
  kind)
    command -v kind >/dev/null 2>&1 || { echo "[kind-down] 'kind' is not installed" >&2; exit 1; }
    kind delete cluster --name "$NAME"
    ;;
  minikube)
    command -v minikube >/dev/null 2>&1 || { echo "[kind-down] 'minikube' is not installed" >&2; exit 1; }
    minikube delete -p "$NAME"
    ;;
  *)
    echo "[kind-down] ECOM_CLUSTER must be kind or minikube, not '$CLUSTER'" >&2
    exit 1
    ;;
esac
