#!/usr/bin/env bash
# The local twin of scripts/kind-up.sh: a real one-node Kubernetes cluster on this machine
# (scripts/services.sh group `node`: containerd, kubelet, controller-manager, scheduler,
# kube-proxy, CoreDNS) around the harness's API server, with the operator installed from the
# chart as a pod and the ecom image loaded onto the node. Kafka, HDFS and HBase are the
# harness's own servers, reached by the pods at the node address through Services named as
# the chart's development services, so manifests/pipeline-*.yaml apply unchanged.
#
#   scripts/cluster-up.sh            (= make cluster-up; idempotent)
#   eval "$(scripts/services.sh env)"
#   $KUBECTL -n ecom apply -f manifests/pipeline-batch.yaml
#   $KUBECTL -n ecom wait ecp/demo --for=condition=Ready --timeout=10m
#   $KUBECTL -n ecom port-forward svc/demo-dashboard 8080:8080
#
# Needs root (containerd, the kubelet and the pods' network). Knobs: ECOM_NAMESPACE (ecom),
# ECOM_IMAGE (ecom:dev), ECOM_BIN (the `ecom` binary put into the image; default: the
# release build in $CARGO_TARGET_DIR), ECOM_IMAGE_FROM_SOURCE=1 (build the image with the
# Dockerfile's full multi-stage build instead).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
NS="${ECOM_NAMESPACE:-ecom}"
IMAGE="${ECOM_IMAGE:-ecom:dev}"
RELEASE=ecom-pipeline
TARGET="${CARGO_TARGET_DIR:-$HOME/.cache/ecom-pipeline/target}"
ECOM_BIN="${ECOM_BIN:-$TARGET/release/ecom}"

log() { printf '[cluster-up %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() {
  printf '[cluster-up] ERROR: %s\n' "$*" >&2
  exit 1
}

t0=$SECONDS
"$ROOT/scripts/services.sh" up
"$ROOT/scripts/services.sh" up node
eval "$("$ROOT/scripts/services.sh" env)"
log "cluster up in $((SECONDS - t0))s"

t=$SECONDS
if [[ ${ECOM_IMAGE_FROM_SOURCE:-0} == 1 ]]; then
  ECOM_IMAGE="$IMAGE" "$ROOT/scripts/images.sh" ecom
else
  [[ -x $ECOM_BIN ]] || die "no ecom binary at $ECOM_BIN: run 'make build' (or set ECOM_BIN, or ECOM_IMAGE_FROM_SOURCE=1)"
  ECOM_IMAGE="$IMAGE" "$ROOT/scripts/images.sh" ecom --prebuilt "$ECOM_BIN"
fi
"$ROOT/scripts/images.sh" load "$ECOM_CONTAINERD_SOCK" "$IMAGE"
log "image $IMAGE built and loaded in $((SECONDS - t))s"
# The image's id goes on the operator's pod template, so a rebuilt image rolls the operator.
image_id="$(eval "$("$ROOT/scripts/images.sh" env)" && "${ECOM_DOCKER:-/usr/bin/docker}" image inspect -f '{{.Id}}' "$IMAGE")"

t=$SECONDS
log "installing the chart (release $RELEASE in namespace $NS, the operator only)"
"$HELM" upgrade --install "$RELEASE" "$ROOT/charts/ecom-pipeline" \
  --namespace "$NS" --create-namespace \
  --set image.repository="${IMAGE%:*}" --set image.tag="${IMAGE##*:}" --set image.pullPolicy=Never \
  --set-string "operator.podAnnotations.ecom-pipeline\.io/image-id=${image_id#sha256:}" \
  --wait --timeout 5m
"$KUBECTL" -n "$NS" wait --for=condition=Available deployment --all --timeout=5m >/dev/null
log "operator available in $((SECONDS - t))s"

# The development services' names, pointing at the harness's servers.
sed -e "s|@NODE_IP@|$ECOM_NODE_IP|g" -e "s|@KAFKA_PORT@|${KAFKA_BOOTSTRAP##*:}|g" \
  -e "s|@HDFS_PORT@|${HDFS_URL##*:}|g" -e "s|@THRIFT_PORT@|${HBASE_THRIFT##*:}|g" \
  "$ROOT/scripts/services/node/harness-services.yaml" |
  "$KUBECTL" -n "$NS" apply --server-side --field-manager ecom-cluster-up -f - >/dev/null

log "ready in $((SECONDS - t0))s. Next:"
cat >&2 <<EOF
  eval "\$(scripts/services.sh env)"
  \$KUBECTL -n $NS apply -f manifests/pipeline-batch.yaml
  \$KUBECTL -n $NS wait ecp/demo --for=condition=Ready --timeout=10m
  \$KUBECTL -n $NS port-forward svc/demo-dashboard 8080:8080
EOF
