#!/usr/bin/env bash
# Cluster quick start: builds the ecom image, creates a local cluster (kind by default,
# minikube with ECOM_CLUSTER=minikube), loads the image, installs the chart with the
# development Kafka, HDFS and HBase, applies the batch example, waits until it is Ready and
# port-forwards its dashboard to http://127.0.0.1:${ECOM_DASHBOARD_PORT:-8080} (Ctrl-C stops
# the port-forward; the cluster stays until scripts/kind-down.sh).
#
# Needs docker, helm, kubectl and kind (or minikube). Knobs: ECOM_CLUSTER (kind|minikube),
# ECOM_CLUSTER_NAME (ecom), ECOM_NAMESPACE (ecom), ECOM_IMAGE (ecom:dev), ECOM_SKIP_BUILD=1,
# ECOM_NO_PORT_FORWARD=1, ECOM_READY_TIMEOUT (30m).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CLUSTER="${ECOM_CLUSTER:-kind}"
NAME="${ECOM_CLUSTER_NAME:-ecom}"
NS="${ECOM_NAMESPACE:-ecom}"
IMAGE="${ECOM_IMAGE:-ecom:dev}"
RELEASE=ecom-pipeline
PORT="${ECOM_DASHBOARD_PORT:-8080}"
READY_TIMEOUT="${ECOM_READY_TIMEOUT:-30m}"

log() { printf '[kind-up %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() {
  printf '[kind-up] ERROR: %s\n' "$*" >&2
  exit 1
}
need() { command -v "$1" >/dev/null 2>&1 || die "'$1' is not installed: $2"; }

need docker "install Docker (https://docs.docker.com/engine/install/)"
need helm "install Helm 3 (https://helm.sh/docs/intro/install/)"
need kubectl "install kubectl (https://kubernetes.io/docs/tasks/tools/)"
case "$CLUSTER" in
  kind)
    need kind "install kind (https://kind.sigs.k8s.io/docs/user/quick-start/#installation)"
    CONTEXT="kind-$NAME"
    ;;
  minikube)
    need minikube "install minikube (https://minikube.sigs.k8s.io/docs/start/)"
    CONTEXT="$NAME"
    ;;
  *) die "ECOM_CLUSTER must be kind or minikube, not '$CLUSTER'" ;;
esac
docker info >/dev/null 2>&1 || die "the Docker daemon does not answer (is it running, may this user use it?)"
k() { kubectl --context "$CONTEXT" "$@"; }
h() { helm --kube-context "$CONTEXT" "$@"; }
# shellcheck source=lib/quickstart.sh
source "$ROOT/scripts/lib/quickstart.sh"

if [[ ${ECOM_SKIP_BUILD:-0} != 1 ]]; then
  log "building $IMAGE (the first build compiles librdkafka and polars: expect 10-30 minutes)"
  docker build -t "$IMAGE" "$ROOT"
fi

if [[ $CLUSTER == kind ]]; then
  if kind get clusters 2>/dev/null | grep -qx "$NAME"; then
    log "kind cluster $NAME exists; reusing it"
  else
    log "creating kind cluster $NAME"
    kind create cluster --name "$NAME" --config "$ROOT/manifests/kind/cluster.yaml" --wait 120s
  fi
  log "loading $IMAGE into the kind node"
  kind load docker-image "$IMAGE" --name "$NAME"
else
  if minikube -p "$NAME" status >/dev/null 2>&1; then
    log "minikube profile $NAME runs; reusing it"
  else
    log "starting minikube profile $NAME (4 CPUs, 6 GiB)"
    minikube start -p "$NAME" --cpus 4 --memory 6g
  fi
  log "loading $IMAGE into minikube"
  minikube -p "$NAME" image load "$IMAGE"
fi

quickstart_install
quickstart_example
if [[ ${ECOM_NO_PORT_FORWARD:-0} == 1 ]]; then
  log "done; dashboard: kubectl --context $CONTEXT -n $NS port-forward svc/demo-dashboard $PORT:8080"
  exit 0
fi
log "scripts/kind-down.sh deletes the cluster"
quickstart_port_forward
