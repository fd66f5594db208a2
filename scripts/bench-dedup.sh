#!/usr/bin/env bash
# Duplicate-check benchmark (issue 18): the cost of the cross-batch duplicate check of a
# micro-batch against the number of batches before it, for the streaming stage's check and
# its peer, the batch cleaner's, on the harness's HBase (jobs/examples/dedup_cost.rs).
#
#   make bench-dedup                          520 batches of 5,000 ids, 0.5 % re-sent
#   BATCHES=1000 RESEND=0 make bench-dedup
#
# Knobs (environment): BATCHES (520), BATCH_ROWS (5000: 10,000 records/s in 500 ms
# batches), MEMORY_IDS (2000000, `ecom stream`'s default), RESEND (0.005 and 0: both are
# run unless set). Needs the services running (`make services-up`); the example binary comes
# from the test build (`make test-build`, which `make bench-dedup` runs first).
set -euo pipefail

main() {
  ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/ecom-pipeline/target}"
  BIN="$CARGO_TARGET_DIR/release/examples/dedup_cost"
  [[ -x "$BIN" ]] || { echo "bench-dedup: $BIN not found: run 'make test-build'" >&2; exit 1; }
  "$ROOT/scripts/services.sh" status hbase >/dev/null \
    || { echo "bench-dedup: HBase is not running: run 'make services-up' first" >&2; exit 1; }
  eval "$("$ROOT/scripts/services.sh" env)"
  echo "bench-dedup: $(date -u +%Y-%m-%dT%H:%M:%SZ), commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
  for resend in ${RESEND:-0.005 0}; do
    "$BIN" "$HBASE_THRIFT" --batches "${BATCHES:-520}" --batch-rows "${BATCH_ROWS:-5000}" \
      --memory-ids "${MEMORY_IDS:-2000000}" --resend "$resend"
    echo
  done
}

main "$@"; exit $?
