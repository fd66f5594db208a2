#!/usr/bin/env bash
# `make test`: the Rust test build (clippy runs inside it), the lint checks, the integration
# tests on the real services, then the real-node tests.
#
# On a fresh machine the build takes most of the time and leaves a core idle in its serial
# stretches (single-crate compiles, links, downloads). So the services' own preparation (Maven
# downloads, the Go builds of etcd, Kubernetes, Helm and CoreDNS, the node's and the chart's
# images) runs beside it at a lower priority, and the tests start once both are done. With
# warm caches the preparation takes seconds. Its log: $ECOM_STATE/logs/prepare.log.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
MAKE="${MAKE:-make}"
ECOM_STATE="${ECOM_STATE:-$HOME/.cache/ecom-pipeline/state}"
PREPARE_LOG="$ECOM_STATE/logs/prepare.log"

log() { printf '[test %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

"$MAKE" --no-print-directory setup
mkdir -p "$(dirname "$PREPARE_LOG")"
t0=$SECONDS
# Its own process group, so that a failed build stops the Go builds under it too.
setsid nice -n 10 "$MAKE" --no-print-directory prepare-if-present >"$PREPARE_LOG" 2>&1 &
prepare_pid=$!
trap 'kill -- "-$prepare_pid" 2>/dev/null || true' EXIT
log "preparing the services in the background (pid $prepare_pid, log $PREPARE_LOG)"

"$MAKE" --no-print-directory test-build lint
log "build and lint done in $((SECONDS - t0))s; waiting for the services' preparation"
if ! wait "$prepare_pid"; then
  tail -n 40 "$PREPARE_LOG" >&2
  log "preparing the services failed (whole log: $PREPARE_LOG)"
  exit 1
fi
trap - EXIT
log "build, lint and preparation done in $((SECONDS - t0))s"

"$MAKE" --no-print-directory itest-if-present node-test-if-present
