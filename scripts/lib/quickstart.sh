# shellcheck shell=bash
# Sourced by scripts/kind-up.sh and scripts/cluster-up.sh: the cluster quick start's steps once
# the image is on the node, the same on kind, minikube and the local node. The caller sets
# ROOT, NS, RELEASE, IMAGE, READY_TIMEOUT and PORT, and defines log, die, k (kubectl with its
# context) and h (helm with its context). README's "Cluster quick start" lists these steps.

# quickstart_install [HELM-ARG...]: the namespace under the restricted Pod Security Standard,
# then the chart with values-kind.yaml (operator plus development Kafka, HDFS and HBase) and
# the ecom image; extra arguments (image names) go to helm. Waits for every Deployment.
quickstart_install() {
  log "namespace $NS (Pod Security: restricted, enforced)"
  k create namespace "$NS" --dry-run=client -o yaml | k apply -f - >/dev/null
  k label namespace "$NS" --overwrite pod-security.kubernetes.io/enforce=restricted \
    pod-security.kubernetes.io/enforce-version=latest >/dev/null
  # An install or upgrade interrupted earlier leaves the release locked in a pending state.
  local state
  state="$(h status "$RELEASE" --namespace "$NS" 2>/dev/null | sed -n 's/^STATUS: //p')" || state=""
  case "$state" in
    pending-install)
      log "an interrupted install left $RELEASE pending: uninstalling it first"
      h uninstall "$RELEASE" --namespace "$NS" --wait >/dev/null
      ;;
    pending-upgrade | pending-rollback)
      log "an interrupted upgrade left $RELEASE $state: rolling back first"
      h rollback "$RELEASE" --namespace "$NS" --wait >/dev/null
      ;;
  esac
  log "installing the chart (release $RELEASE in namespace $NS, development services on)"
  h upgrade --install "$RELEASE" "$ROOT/charts/ecom-pipeline" --namespace "$NS" \
    -f "$ROOT/charts/ecom-pipeline/values-kind.yaml" \
    --set image.repository="${IMAGE%:*}" --set image.tag="${IMAGE##*:}" "$@" \
    --wait --timeout 15m
  log "waiting for the operator and the development services"
  k -n "$NS" wait --for=condition=Available deployment --all --timeout=15m >/dev/null
}

# quickstart_example: applies the batch example and waits until it is Ready; on failure shows
# its status and pods.
quickstart_example() {
  log "applying the batch example"
  sed "s|image: ecom:dev|image: $IMAGE|" "$ROOT/manifests/pipeline-batch.yaml" | k -n "$NS" apply -f -
  log "waiting until ecp/demo is Ready (timeout $READY_TIMEOUT); follow it with: kubectl -n $NS get ecp,jobs,pods"
  if ! k -n "$NS" wait ecp/demo --for=condition=Ready --timeout="$READY_TIMEOUT"; then
    k -n "$NS" get ecp demo -o yaml >&2 || true
    k -n "$NS" get jobs,pods >&2 || true
    die "ecp/demo did not become Ready; see its status above and 'kubectl -n $NS logs job/<name>'"
  fi
  k -n "$NS" get ecp demo
}

# quickstart_port_forward: the dashboard on http://127.0.0.1:$PORT until Ctrl-C.
quickstart_port_forward() {
  log "dashboard on http://127.0.0.1:$PORT (Ctrl-C stops the port-forward)"
  k -n "$NS" port-forward svc/demo-dashboard "$PORT:8080"
}
