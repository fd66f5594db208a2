#!/usr/bin/env bash
# The local twin of scripts/kind-up.sh: a real one-node Kubernetes cluster on this machine
# (scripts/services.sh group `node`: containerd, kubelet, controller-manager, scheduler,
# kube-proxy, CoreDNS) with the chart installed as a user installs it on kind: values-kind.yaml,
# so the operator and the development Kafka, HDFS and HBase run as pods in namespace `ecom`
# (restricted Pod Security enforced). Only the image names differ from kind: the ecom image
# comes from the project's Dockerfile, and the development services' images are built here
# from the harness's Maven jars (scripts/images.sh dev-services), since no registry is reached.
#
#   scripts/cluster-up.sh            (= make cluster-up; idempotent)
#   eval "$(scripts/services.sh env)"
#   $KUBECTL -n ecom apply -f manifests/pipeline-batch.yaml
#   $KUBECTL -n ecom wait ecp/demo --for=condition=Ready --timeout=20m
#   $KUBECTL -n ecom port-forward svc/demo-dashboard 8080:8080
#
# ECOM_EXAMPLE=1 runs those three steps too, as scripts/kind-up.sh does.
# Needs root (containerd, the kubelet and the pods' network). Knobs: ECOM_NAMESPACE (ecom),
# ECOM_IMAGE (ecom:dev), ECOM_BIN (the `ecom` binary put into the image; default: the
# release build in $CARGO_TARGET_DIR), ECOM_IMAGE_FROM_SOURCE=1 (build the image with the
# Dockerfile's full multi-stage build instead), ECOM_READY_TIMEOUT (20m), ECOM_DASHBOARD_PORT.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
NS="${ECOM_NAMESPACE:-ecom}"
IMAGE="${ECOM_IMAGE:-ecom:dev}"
RELEASE=ecom-pipeline
READY_TIMEOUT="${ECOM_READY_TIMEOUT:-20m}"
PORT="${ECOM_DASHBOARD_PORT:-8080}"
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
k() { "$KUBECTL" "$@"; }
h() { "$HELM" "$@"; }
# shellcheck source=lib/quickstart.sh
source "$ROOT/scripts/lib/quickstart.sh"
log "cluster up in $((SECONDS - t0))s"

t=$SECONDS
if [[ ${ECOM_IMAGE_FROM_SOURCE:-0} == 1 ]]; then
  ECOM_IMAGE="$IMAGE" "$ROOT/scripts/images.sh" ecom
else
  [[ -x $ECOM_BIN ]] || die "no ecom binary at $ECOM_BIN: run 'make build' (or set ECOM_BIN, or ECOM_IMAGE_FROM_SOURCE=1)"
  ECOM_IMAGE="$IMAGE" "$ROOT/scripts/images.sh" ecom --prebuilt "$ECOM_BIN"
fi
"$ROOT/scripts/images.sh" dev-services
{ read -r KAFKA_IMAGE && read -r HADOOP_IMAGE && read -r HBASE_IMAGE; } < <("$ROOT/scripts/images.sh" dev-service-images)
"$ROOT/scripts/images.sh" load "$ECOM_CONTAINERD_SOCK" "$IMAGE" "$KAFKA_IMAGE" "$HADOOP_IMAGE" "$HBASE_IMAGE" >/dev/null
log "images built and loaded in $((SECONDS - t))s"
# The image's id goes on the operator's pod template, so a rebuilt image rolls the operator.
image_id="$(eval "$("$ROOT/scripts/images.sh" env)" && "${ECOM_DOCKER:-/usr/bin/docker}" image inspect -f '{{.Id}}' "$IMAGE")"

t=$SECONDS
quickstart_install --set image.pullPolicy=Never \
  --set devInfra.kafka.image="$KAFKA_IMAGE" --set devInfra.hdfs.image="$HADOOP_IMAGE" \
  --set devInfra.hbase.image="$HBASE_IMAGE" --set devInfra.hbase.downloadImage="$HBASE_IMAGE" \
  --set-string "operator.podAnnotations.ecom-pipeline\.io/image-id=${image_id#sha256:}"
log "operator and development services available in $((SECONDS - t))s"

if [[ ${ECOM_EXAMPLE:-0} == 1 ]]; then
  quickstart_example
  quickstart_port_forward
  exit 0
fi
log "ready in $((SECONDS - t0))s. Next:"
cat >&2 <<NEXT
  eval "\$(scripts/services.sh env)"
  \$KUBECTL -n $NS apply -f manifests/pipeline-batch.yaml
  \$KUBECTL -n $NS wait ecp/demo --for=condition=Ready --timeout=20m
  \$KUBECTL -n $NS port-forward svc/demo-dashboard 8080:8080
NEXT
