#!/usr/bin/env bash
# Static and server-side checks of the Helm chart, for CI without Docker:
#   helm lint (default, kind and production values), helm template of each, then a
#   server-side dry-run of every rendered object and every manifests/ file against the API
#   server of $KUBECONFIG (the CRD is applied first, for real, so EcomPipelines validate).
# The assertions (RBAC, CRD copy, Pod Security, operator with the chart's credentials) are in
# itests/tests/chart.rs; this script is the quick look. Uses $HELM and $KUBECTL when set.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CHART="$ROOT/charts/ecom-pipeline"
HELM="${HELM:-helm}"
KUBECTL="${KUBECTL:-kubectl}"
NS="${ECOM_CHART_NAMESPACE:-ecom-chart-check}"

server_version="$("$KUBECTL" version -o json | sed -n 's/.*"gitVersion": *"v\([^"]*\)".*/\1/p' | tail -n 1)"
[[ -n $server_version ]] || { echo "[chart-check] no API server version from $KUBECTL version" >&2; exit 1; }

declare -A VALUES=([default]="" [kind]="$CHART/values-kind.yaml" [production]="$CHART/values-production.yaml")
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT

for name in default kind production; do
  args=()
  [[ -z ${VALUES[$name]} ]] || args=(-f "${VALUES[$name]}")
  "$HELM" lint --strict "$CHART" "${args[@]}"
  "$HELM" template ecom-pipeline "$CHART" --namespace "$NS" --kube-version "$server_version" \
    "${args[@]}" >"$out/$name.yaml"
  echo "[chart-check] $name: $(grep -c '^kind:' "$out/$name.yaml") objects rendered"
done

"$KUBECTL" get namespace "$NS" >/dev/null 2>&1 || "$KUBECTL" create namespace "$NS"
"$KUBECTL" get namespace analytics >/dev/null 2>&1 || "$KUBECTL" create namespace analytics
"$KUBECTL" apply --server-side --force-conflicts --field-manager ecom-chart-check -f "$CHART/files/crds/ecompipelines.yaml"
"$KUBECTL" wait --for=condition=Established crd/ecompipelines.pipelines.ecom-pipeline.io --timeout=60s
for name in default kind production; do
  if [[ $name == production ]] && ! "$KUBECTL" get crd servicemonitors.monitoring.coreos.com >/dev/null 2>&1; then
    echo "[chart-check] production: no ServiceMonitor CRD on this server; dry-run without it" >&2
    "$KUBECTL" apply --server-side --force-conflicts --dry-run=server -f <(awk 'BEGIN{RS="\n---\n"; ORS="\n---\n"} !/kind: ServiceMonitor/' "$out/$name.yaml")
    continue
  fi
  "$KUBECTL" apply --server-side --force-conflicts --dry-run=server -f "$out/$name.yaml"
done
for f in "$ROOT"/manifests/*.yaml; do
  "$KUBECTL" -n "$NS" apply --server-side --force-conflicts --dry-run=server -f "$f"
done
echo "[chart-check] ok"
