#!/usr/bin/env bash
# Streaming latency benchmark: `ecom stream` (the continuous micro-batch stage) on the real
# Kafka, HDFS and HBase Thrift of `scripts/services.sh`, fed by `ecom produce` at a fixed
# rate, watched from outside through `ecom dashboard`.
#
#   make bench-streaming                            10,000 and 50,000 records/s, 120 s each
#   DURATION=30 RATES=10000 make bench-streaming    a short run
#   RATES=max make bench-streaming                  the highest rate that stays bounded
#
# Per rate, with a fresh topic (3 partitions), fresh HDFS raw and clean directories and fresh
# tables: `ecom stream` starts first (it creates the tables), then `ecom dashboard --poll-ms 200`
# on it, then the sampler (scripts/bench/stream_latency.py), then `ecom produce --rate RATE
# --generate-rows RATE*DURATION --dirty-rate 0 --timestamps now` (every record one clean
# order, ids unique, stamped with the time it is sent: a live feed, so a micro-batch holds one
# or two dates, not the days a replayed export would spread it over).
# The sampler, independent of the producer, reads every 100 ms the topic's total end offset
# (records produced and acknowledged) and the dashboard's /api/summary `orders` (records
# visible), until visible == produced (or DRAIN_TIMEOUT after the producer ended). The n-th
# record produced is matched with the n-th visible: latency = V(n) - P(n), reported as
# p50/p95/p99/max over all records. Also: the lag (age of the oldest invisible record, and
# records) in the first and the last minute of the production, to show whether it grows; the
# stream's own `micro-batch committed` lines (lag_ms, raw/clean/dedup/load ms); its peak RSS
# (VmHWM, sampled from /proc) and CPU seconds. Then SIGTERM to the stream (it must exit 0 with
# its JSON summary) and the dashboard.
#
# RATES=max steps through MAX_RATES with DURATION 60 (unless set) and stops at the first rate
# that is not bounded: p99 above P99_LIMIT, the lag growing, records never visible, or the
# producer unable to send at the rate. The table says the highest bounded rate.
#
# Knobs (environment):
#   RATES              records/s to measure, space-separated, or "max" (default "10000 50000")
#   DURATION           seconds of production per rate (default 120; 60 with RATES=max)
#   MAX_RATES          the steps of RATES=max (default "10000 25000 50000 75000 100000 150000 200000")
#   P99_LIMIT          seconds; a p99 above it is not bounded (default 10)
#   BATCH_INTERVAL     --batch-interval of the stream (default 1s)
#   MAX_BATCH_RECORDS  --max-batch-records of the stream (default 200000)
#   DRAIN_TIMEOUT      seconds to wait for visible == produced once the producer ended (default 120)
#   SAMPLE_MS          sampling interval of the poller, ms (default 100)
#   TIMESTAMPS         --timestamps of the generated rows: now (default), spread (90 days over
#                      the rows, as `ecom generate`) or constant
#   POLL_MS            the dashboard's --poll-ms (default 200)
#   KEEP               1 = keep the topics, HDFS directories and tables
#   ECOM               the binary (default $CARGO_TARGET_DIR/release/ecom)
#   ECOM_CACHE         cache root (default ~/.cache/ecom-pipeline): the venv bench-stages-venv
#                      (shared with bench-stages.sh, same pins), run directories under
#                      bench-streaming/<date>-<commit>/
# Needs the services running (`make services-up`, or `scripts/services.sh up kafka hdfs hbase`).
# Prints the tables (scripts/bench/stream_latency.py report); raw figures (samples, logs,
# per-rate JSON) stay in the run directory printed at the end.
set -euo pipefail

# The whole script is one function, so that bash has read all of it before it runs
# (editing the file during a run cannot change that run).
main() {
  ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  BENCH_DIR="$ROOT/scripts/bench"
  CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/ecom-pipeline/target}"
  ECOM="${ECOM:-$CARGO_TARGET_DIR/release/ecom}"
  ECOM_CACHE="${ECOM_CACHE:-$HOME/.cache/ecom-pipeline}"
  RATES="${RATES:-10000 50000}"
  TIMESTAMPS="${TIMESTAMPS:-now}"
  MODE=fixed
  if [[ "$RATES" == max ]]; then
    MODE=max
    RATES="${MAX_RATES:-10000 25000 50000 75000 100000 150000 200000}"
    DURATION="${DURATION:-60}"
  fi
  DURATION="${DURATION:-120}"
  P99_LIMIT="${P99_LIMIT:-10}"
  BATCH_INTERVAL="${BATCH_INTERVAL:-1s}"
  MAX_BATCH_RECORDS="${MAX_BATCH_RECORDS:-200000}"
  DRAIN_TIMEOUT="${DRAIN_TIMEOUT:-120}"
  SAMPLE_MS="${SAMPLE_MS:-100}"
  POLL_MS="${POLL_MS:-200}"
  KEEP="${KEEP:-0}"
  PARTITIONS=3
  SEED=42

  # The same pins as bench-stages.sh, so both share one venv (only kafka-python is used here).
  STAGES_PINS="kafka-python==3.0.12 happybase==1.3.0 polars==2.1.0 lz4==4.4.5"
  STAGES_VENV="$ECOM_CACHE/bench-stages-venv"

  BENCH_NAME=bench-streaming
  # shellcheck source=scripts/bench/common.sh
  source "$BENCH_DIR/common.sh"

  # ---- prerequisites ---------------------------------------------------------------
  local r
  for r in $RATES; do
    [[ "$r" =~ ^[0-9]+$ && "$r" -gt 0 ]] || die "RATES must be positive integers or 'max', got '$r'"
  done
  [[ "$DURATION" =~ ^[0-9]+$ && "$DURATION" -gt 0 ]] || die "DURATION must be a positive integer, got '$DURATION'"
  [[ "$DRAIN_TIMEOUT" =~ ^[0-9]+$ ]] || die "DRAIN_TIMEOUT must be a whole number of seconds, got '$DRAIN_TIMEOUT'"
  [[ -x "$ECOM" ]] || die "$ECOM not found: run 'make build' (or 'make $BENCH_NAME', which builds it)"
  "$ECOM" stream --help >/dev/null 2>&1 || die "$ECOM has no 'stream' subcommand: rebuild it"
  command -v python3 >/dev/null 2>&1 || apt_install python3
  ensure_venv "$STAGES_VENV" "$STAGES_PINS"
  PY="$STAGES_VENV/bin/python"

  "$ROOT/scripts/services.sh" status kafka hdfs hbase >/dev/null \
    || die "the services are not running: run 'make services-up' first"
  eval "$("$ROOT/scripts/services.sh" env)"
  : "${KAFKA_BOOTSTRAP:?}" "${HDFS_URL:?}" "${HBASE_THRIFT:?}"

  local commit
  commit="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
  RUN="$ECOM_CACHE/bench-streaming/$(date -u +%Y%m%dT%H%M%SZ)-$commit"
  mkdir -p "$RUN"
  # Topic, table and directory names of this run: [a-z0-9_] only (valid everywhere).
  ID="bstream_$(date -u +%H%M%S)_$$"
  HDFS_BASE="$HDFS_URL/bench-streaming/$ID"
  RESULTS="$RUN/results.jsonl"
  : >"$RESULTS"
  export RUST_LOG="${RUST_LOG:-info}"

  {
    printf 'date\t%s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    printf 'mode\t%s\n' "$MODE"
    printf 'rates\t%s\n' "$RATES"
    printf 'duration\t%s\n' "$DURATION"
    printf 'batch_interval\t%s\n' "$BATCH_INTERVAL"
    printf 'max_batch_records\t%s\n' "$MAX_BATCH_RECORDS"
    printf 'p99_limit\t%s\n' "$P99_LIMIT"
    printf 'sample_ms\t%s\n' "$SAMPLE_MS"
    printf 'poll_ms\t%s\n' "$POLL_MS"
    printf 'nproc\t%s\n' "$(nproc)"
    printf 'cpu\t%s\n' "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
    printf 'load_start\t%s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
    printf 'commit\t%s\n' "$commit"
    printf 'dirty\t%s\n' "$([[ -n "$(git -C "$ROOT" status --porcelain 2>/dev/null)" ]] && echo 1 || echo 0)"
    printf 'ecom\t%s\n' "$ECOM"
    printf 'ecom_mtime\t%s\n' "$(date -u -r "$ECOM" +%Y-%m-%dT%H:%M:%SZ)"
  } >"$RUN/meta.tsv"

  # ---- processes and clean-up --------------------------------------------------------
  # Every process this script starts is recorded here and ended by its pid (SIGTERM, then
  # SIGKILL after 20 s); the topics, directories and tables of every rate are removed at exit
  # unless KEEP=1.
  PIDS=()
  TOPICS=()
  TABLES=()
  stop_pid() {
    local pid=$1 i
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 200); do
      kill -0 "$pid" 2>/dev/null || return 0
      sleep 0.1
    done
    log "process $pid ignored SIGTERM for 20 s: SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
  }
  # untrack PID: a reaped process leaves the list (its pid may be reused by another).
  untrack() {
    local keep=() p
    for p in "${PIDS[@]}"; do [[ "$p" == "$1" ]] || keep+=("$p"); done
    PIDS=("${keep[@]}")
  }
  cleanup() {
    local rc=$? pid t
    trap - EXIT INT TERM
    if ((${#PIDS[@]})); then
      for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
    fi
    if [[ "$KEEP" == 1 ]]; then
      log "kept: topics ${TOPICS[*]:-none}, HDFS $HDFS_BASE, tables ${TABLES[*]:-none} (and *_agg)"
    else
      if ((${#TABLES[@]})); then
        for t in "${TABLES[@]}"; do
          "$ECOM" purge --table "$t" --hbase-thrift "$HBASE_THRIFT" >/dev/null 2>>"$RUN/cleanup.log" \
            || log "could not drop table $t (see $RUN/cleanup.log)"
        done
      fi
      "$ECOM" purge --path "$HDFS_BASE" >/dev/null 2>>"$RUN/cleanup.log" \
        || log "could not delete $HDFS_BASE (see $RUN/cleanup.log)"
      "$PY" "$BENCH_DIR/kafka_admin.py" delete "$KAFKA_BOOTSTRAP" "$ID" >/dev/null 2>>"$RUN/cleanup.log" \
        || log "could not delete the topics $ID* (see $RUN/cleanup.log)"
    fi
    log "raw figures: $RUN"
    exit "$rc"
  }
  trap cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM

  # wait_for_line FILE REGEX SECONDS PID: until FILE has a line matching REGEX; fails if
  # PID exits first or the time runs out.
  wait_for_line() {
    local file=$1 re=$2 secs=$3 pid=$4 i
    for i in $(seq 1 $((secs * 10))); do
      grep -qE "$re" "$file" 2>/dev/null && return 0
      kill -0 "$pid" 2>/dev/null || return 1
      sleep 0.1
    done
    return 1
  }

  # services_cpu: "component=CPU-seconds ..." of the services' processes so far (where the
  # time of a run went, besides the stream itself).
  services_cpu() {
    local c pid
    for c in kafka namenode datanode hbase thrift; do
      pid="$("$ROOT/scripts/services.sh" pid "$c" 2>/dev/null)" || continue
      awk -v c="$c" -v hz="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); printf "%s=%.2f ", c, ($12 + $13) / hz }' \
        "/proc/$pid/stat" 2>/dev/null || true
    done
  }

  # ---- one rate ------------------------------------------------------------------------
  # run_rate RATE: measures one rate; appends its JSON line to $RESULTS.
  run_rate() {
    local rate=$1
    local rows=$((rate * DURATION))
    local dir="$RUN/r$rate" topic="${ID}_r$rate" table="${ID}_r$rate"
    local raw="$HDFS_BASE/r$rate/raw" clean="$HDFS_BASE/r$rate/clean"
    local stream_pid dash_pid sampler_pid produce_pid url rc i
    mkdir -p "$dir"
    TOPICS+=("$topic")
    TABLES+=("$table")
    log "rate $rate/s: $rows records over $DURATION s (topic $topic, table $table)"

    "$PY" "$BENCH_DIR/kafka_admin.py" create "$KAFKA_BOOTSTRAP" "$topic" "$PARTITIONS"
    services_cpu >"$dir/services-cpu.before"

    "$ECOM" stream --topic "$topic" --kafka-bootstrap "$KAFKA_BOOTSTRAP" --raw "$raw" --clean "$clean" \
      --hbase-thrift "$HBASE_THRIFT" --table "$table" --batch-interval "$BATCH_INTERVAL" \
      --max-batch-records "$MAX_BATCH_RECORDS" --summary-file /dev/null \
      >"$dir/stream.out" 2>"$dir/stream.log" &
    stream_pid=$!
    PIDS+=("$stream_pid")
    wait_for_line "$dir/stream.log" ': streaming( |$)' 120 "$stream_pid" || {
      tail -20 "$dir/stream.log" >&2
      die "ecom stream did not start (log: $dir/stream.log)"
    }

    "$ECOM" dashboard --hbase-thrift "$HBASE_THRIFT" --table "$table" --port 0 --poll-ms "$POLL_MS" \
      >"$dir/dashboard.out" 2>"$dir/dashboard.log" &
    dash_pid=$!
    PIDS+=("$dash_pid")
    wait_for_line "$dir/dashboard.log" '^dashboard: http://' 60 "$dash_pid" || {
      tail -20 "$dir/dashboard.log" >&2
      die "ecom dashboard did not start (log: $dir/dashboard.log)"
    }
    url="$(grep -m1 -oE '^dashboard: http://[^ ]+' "$dir/dashboard.log" | cut -d' ' -f2)"
    url="${url%/}/api/summary"

    rm -f "$dir/produced.done"
    "$PY" "$BENCH_DIR/stream_latency.py" sample --bootstrap "$KAFKA_BOOTSTRAP" --topic "$topic" \
      --url "$url" --target "$rows" --out "$dir/samples.tsv" --pid "$stream_pid" \
      --interval-ms "$SAMPLE_MS" --done-file "$dir/produced.done" --drain-timeout "$DRAIN_TIMEOUT" \
      --hard-timeout $((4 * DURATION + DRAIN_TIMEOUT + 120)) \
      >"$dir/sampler.json" 2>"$dir/sampler.log" &
    sampler_pid=$!
    PIDS+=("$sampler_pid")
    sleep 1 # a few samples at zero before the first record

    "$ECOM" produce --topic "$topic" --kafka-bootstrap "$KAFKA_BOOTSTRAP" --generate-rows "$rows" \
      --seed "$SEED" --dirty-rate 0 --timestamps "$TIMESTAMPS" --rate "$rate" --partitions "$PARTITIONS" --summary-file /dev/null \
      >"$dir/produce.out" 2>"$dir/produce.log" &
    produce_pid=$!
    PIDS+=("$produce_pid")
    rc=0
    wait "$produce_pid" || rc=$?
    untrack "$produce_pid"
    touch "$dir/produced.done"
    [[ $rc -eq 0 ]] || log "rate $rate/s: ecom produce exited $rc (log: $dir/produce.log)"
    log "rate $rate/s: producer done, waiting until every record is visible (at most $DRAIN_TIMEOUT s)"

    rc=0
    wait "$sampler_pid" || rc=$?
    untrack "$sampler_pid"
    [[ $rc -eq 0 ]] || log "rate $rate/s: the sampler exited $rc (log: $dir/sampler.log)"
    log "rate $rate/s: sampler: $(cat "$dir/sampler.json" 2>/dev/null)"

    # Stop the stream (it commits what it holds and prints its summary), then the dashboard.
    rc=0
    if kill -0 "$stream_pid" 2>/dev/null; then
      kill -TERM "$stream_pid"
      for i in $(seq 1 600); do
        kill -0 "$stream_pid" 2>/dev/null || break
        sleep 0.1
      done
      kill -0 "$stream_pid" 2>/dev/null && { log "rate $rate/s: ecom stream still running 60 s after SIGTERM"; stop_pid "$stream_pid"; }
    fi
    wait "$stream_pid" || rc=$?
    untrack "$stream_pid"
    printf '%s\n' "$rc" >"$dir/stream.rc"
    [[ $rc -eq 0 ]] || log "rate $rate/s: ecom stream exited $rc (log: $dir/stream.log): $(grep -E 'ERROR|error' "$dir/stream.log" | tail -3)"
    services_cpu >"$dir/services-cpu.after"
    stop_pid "$dash_pid"
    wait "$dash_pid" 2>/dev/null || true
    untrack "$dash_pid"

    "$PY" "$BENCH_DIR/stream_latency.py" analyze --samples "$dir/samples.tsv" \
      --stream-log "$dir/stream.log" --stream-out "$dir/stream.out" --rate "$rate" \
      --duration "$DURATION" --target "$rows" --p99-limit "$P99_LIMIT" >"$dir/result.json"
    # The stream's exit code and the services' CPU seconds during the rate go into the result.
    "$PY" -c 'import json,sys
d = json.load(open(sys.argv[1])); d["stream_rc"] = int(sys.argv[2])
if d["stream_rc"]:
    d["bounded"] = False; d.setdefault("reasons", []).append("stream exited %d" % d["stream_rc"])
cpu = lambda f: dict((kv.split("=")[0], float(kv.split("=")[1])) for kv in open(f).read().split())
a, b = cpu(sys.argv[3]), cpu(sys.argv[4])
d["services_cpu_s"] = {k: round(b[k] - a[k], 1) for k in b if k in a}
print(json.dumps(d))' "$dir/result.json" "$rc" "$dir/services-cpu.before" "$dir/services-cpu.after" >>"$RESULTS"
    STREAM_RC=$rc
    LAST_BOUNDED="$(tail -1 "$RESULTS" | "$PY" -c 'import json,sys; print(int(json.load(sys.stdin)["bounded"]))')"
    log "rate $rate/s: $(tail -1 "$RESULTS" | "$PY" -c 'import json,sys; d=json.load(sys.stdin); print("visible %s/%s, latency %s, bounded %s %s" % (d.get("visible"), d.get("produced"), d.get("latency_s"), d["bounded"], d["reasons"]))')"
  }

  for r in $RATES; do
    run_rate "$r"
    if [[ "$STREAM_RC" -ne 0 ]]; then
      log "ecom stream failed at $r/s: stopping here"
      break
    fi
    if [[ "$MODE" == max && "$LAST_BOUNDED" != 1 ]]; then
      log "rate $r/s is not bounded: stopping the search"
      break
    fi
  done

  printf 'load_end\t%s\n' "$(cut -d' ' -f1-3 /proc/loadavg)" >>"$RUN/meta.tsv"
  "$PY" "$BENCH_DIR/stream_latency.py" report "$RUN" | tee "$RUN/report.md"
}

main "$@"; exit $?
