#!/usr/bin/env bash
# Whole-pipeline benchmark (issue 20): the batch pipeline, generated file to rows in HBase,
# run two ways on the SAME servers (the harness's real Kafka, HDFS and HBase Thrift,
# `scripts/services.sh`) with the SAME generated data, in this one script:
#
#   ecom  produce -> sink (--until-caught-up, raw TSV on HDFS) -> clean (full rules, HDFS to
#         HDFS) -> load (a fresh HBase table, created by `ecom load`)
#   seed  the seed's four scripts, written here anew from its description (scripts/bench/):
#         seed_produce.py (kafka-python producer), seed_consume.py (kafka-python consumer
#         writing batch files to HDFS over WebHDFS), clean_pyspark.py --mode cold --csv (the
#         seed's Spark step, CSV with a header out), seed_load.py (the seed's happybase
#         loader, batch 2000). Each file's docstring says what the seed does and what we chose.
#
#   make bench-pipeline                 2,000,000 rows
#   ROWS=50000 make bench-pipeline      a quick run
#
# Each stage is one process, timed whole (`/usr/bin/time`: wall, peak RSS, user + system
# CPU), except the Spark step, which is timed from its process start to its CSV written
# (its row counting afterwards is left out). Every stage also records the servers' CPU
# seconds it caused (Kafka, NameNode + DataNode, HBase region server, Thrift gateway, from
# /proc through `scripts/services.sh pid`). Topics (ecom: 3 partitions, its default; seed:
# 1 partition, the seed's `kafka-topics --create`) and the seed's table (its HBase shell
# `create`) are made before the clocks start.
#
# Knobs (environment): ROWS (2000000), SEED_BATCH (1000: records per raw file of the seed's
# consumer, which the seed does not state; see seed_consume.py), FIRST (ecom: which pipeline
# runs first, ecom or seed), KEEP (1 = keep topics, HDFS paths and tables), ECOM (the
# binary), ECOM_CACHE (~/.cache/ecom-pipeline: venvs, run directories under bench-pipeline/).
# Needs the services running (`make services-up`). Prints a side-by-side table (stage, ecom
# seconds, seed seconds, seed / ecom) and the row counts; raw figures stay in the run
# directory printed at the end.
set -euo pipefail

# The whole script is one function, so that bash has read all of it before it runs.
main() {
  ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  BENCH_DIR="$ROOT/scripts/bench"
  CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/ecom-pipeline/target}"
  ECOM="${ECOM:-$CARGO_TARGET_DIR/release/ecom}"
  ECOM_CACHE="${ECOM_CACHE:-$HOME/.cache/ecom-pipeline}"
  ROWS="${ROWS:-2000000}"
  REPEAT=1
  SEED_BATCH="${SEED_BATCH:-1000}"
  FIRST="${FIRST:-ecom}"
  SEED=42
  DIRTY_RATE=0.05
  PARTITIONS=3

  # Pinned clients. PySpark comes from bench-clean's venv (same pins, created here if missing).
  PIPELINE_PINS="kafka-python==3.0.12 happybase==1.3.0 hdfs==2.7.3"
  PIPELINE_VENV="$ECOM_CACHE/bench-pipeline-venv"
  SPARK_PINS="pyspark==3.5.9 polars==2.1.0"
  SPARK_VENV="$ECOM_CACHE/bench-venv"
  TIME=/usr/bin/time

  BENCH_NAME=bench-pipeline
  # shellcheck source=scripts/bench/common.sh
  source "$BENCH_DIR/common.sh"

  check_prerequisites
  [[ "$SEED_BATCH" =~ ^[0-9]+$ && "$SEED_BATCH" -gt 0 ]] || die "SEED_BATCH must be a positive integer, got '$SEED_BATCH'"
  [[ "$FIRST" == ecom || "$FIRST" == seed ]] || die "FIRST must be ecom or seed, got '$FIRST'"
  command -v java >/dev/null 2>&1 || apt_install openjdk-17-jre-headless
  ensure_venv "$PIPELINE_VENV" "$PIPELINE_PINS"
  ensure_venv "$SPARK_VENV" "$SPARK_PINS"
  PY="$PIPELINE_VENV/bin/python"
  SPARK_PY="$SPARK_VENV/bin/python"

  "$ROOT/scripts/services.sh" status kafka hdfs hbase >/dev/null \
    || die "the services are not running: run 'make services-up' first"
  eval "$("$ROOT/scripts/services.sh" env)"
  : "${KAFKA_BOOTSTRAP:?}" "${HDFS_URL:?}" "${HDFS_HTTP_URL:?}" "${HBASE_THRIFT:?}"

  STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
  RUN="$ECOM_CACHE/bench-pipeline/run-$STAMP"
  mkdir -p "$RUN"
  # Fresh names for this run: topics and the seed's group "$ID-…", HDFS under $BASE, tables
  # "${ID}_…".
  ID="bp$(date -u +%H%M%S)$$"
  BASE="/bench-pipeline/$ID"
  E_TOPIC="$ID-ecom" S_TOPIC="$ID-seed" S_GROUP="$ID-seed-consumer"
  E_TABLE="${ID}_ecom" S_TABLE="${ID}_seed"
  E_RAW="$HDFS_URL$BASE/ecom/raw" E_CLEAN="$HDFS_URL$BASE/ecom/clean"
  # The seed's paths: its consumer's /ecommerce-data/ and its Spark step's /tmp/ output.
  S_RAW="$BASE/seed/ecommerce-data" S_CLEAN="$BASE/seed/tmp"
  RESULTS="$RUN/results.tsv"
  : >"$RESULTS"
  export RUST_LOG=warn
  trap cleanup EXIT

  {
    printf 'date\t%s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    printf 'rows\t%s\n' "$ROWS"
    printf 'seed_batch\t%s\n' "$SEED_BATCH"
    printf 'first\t%s\n' "$FIRST"
    printf 'nproc\t%s\n' "$(nproc)"
    printf 'cpu\t%s\n' "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
    printf 'load_start\t%s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
    printf 'commit\t%s\n' "$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
    printf 'ecom\t%s\n' "$("$ECOM" --version 2>/dev/null || echo unknown)"
    printf 'services\t%s\n' "$KAFKA_BOOTSTRAP $HDFS_URL $HBASE_THRIFT"
  } >"$RUN/meta.tsv"

  # ---- data ------------------------------------------------------------------------
  log "generating $ROWS rows (seed $SEED, dirty rate $DIRTY_RATE)"
  "$ECOM" generate --rows "$ROWS" --seed "$SEED" --dirty-rate "$DIRTY_RATE" \
    --out "$RUN/data.tsv" --truth "$RUN/truth.json"
  DATA_ROWS=$(LC_ALL=C awk 'NR > 1 && length($0) > 0' "$RUN/data.tsv" | wc -l)
  meta data_rows "$DATA_ROWS"
  meta truth_full_rows_out "$(jget '["full"]["rows_out"]' <"$RUN/truth.json")"
  meta truth_seed_rows_out "$(jget '["seed_compat"]["rows_out"]' <"$RUN/truth.json")"
  expect_seed_rows_out
  cat "$RUN/data.tsv" >/dev/null # into the page cache

  if [[ "$FIRST" == ecom ]]; then run_ecom; run_seed; else run_seed; run_ecom; fi

  # ---- counts, after the clocks ------------------------------------------------------
  log "counting: topics, HBase tables (key-only scans)"
  meta ecom_topic_records "$($PY "$BENCH_DIR/kafka_admin.py" count "$KAFKA_BOOTSTRAP" "$E_TOPIC")"
  meta seed_topic_records "$($PY "$BENCH_DIR/kafka_admin.py" count "$KAFKA_BOOTSTRAP" "$S_TOPIC")"
  meta ecom_table_rows "$($PY "$BENCH_DIR/load_happybase.py" count "$HBASE_THRIFT" "$E_TABLE")"
  meta seed_table_rows "$($PY "$BENCH_DIR/load_happybase.py" count "$HBASE_THRIFT" "$S_TABLE")"
  meta load_end "$(cut -d' ' -f1-3 /proc/loadavg)"

  # Exit status 2 when a row count is not what it must be (the report says which).
  local status=0
  python3 "$BENCH_DIR/report_pipeline.py" "$RUN" | tee "$RUN/report.txt" || status=$?
  log "raw figures: $RUN"
  return "$status"
}

# ---- the two pipelines ---------------------------------------------------------------

run_ecom() {
  $PY "$BENCH_DIR/kafka_admin.py" create "$KAFKA_BOOTSTRAP" "$E_TOPIC" "$PARTITIONS"
  log "ecom: produce"
  stage ecom produce "$RUN/ecom-produce.json" "$ECOM" produce --input "$RUN/data.tsv" --topic "$E_TOPIC" \
    --partitions "$PARTITIONS" --summary-file /dev/null
  record ecom produce "$WALL" "$(jget '["delivered"]' <"$RUN/ecom-produce.json")" "$RSS"

  log "ecom: sink to $E_RAW"
  stage ecom sink "$RUN/ecom-sink.json" "$ECOM" sink --topic "$E_TOPIC" --output "$E_RAW" \
    --until-caught-up --summary-file /dev/null
  record ecom sink "$WALL" "$(jget '["records"]' <"$RUN/ecom-sink.json")" "$RSS" \
    "$(jget '["files"]' <"$RUN/ecom-sink.json") files"

  log "ecom: clean (full rules) to $E_CLEAN"
  stage ecom clean "$RUN/ecom-clean.json" "$ECOM" clean --input "$E_RAW" --output "$E_CLEAN" \
    --summary-file /dev/null
  record ecom clean "$WALL" "$(jget '["report"]["rows_out"]' <"$RUN/ecom-clean.json")" "$RSS" \
    "rows_in $(jget '["report"]["rows_in"]' <"$RUN/ecom-clean.json"), $(jget '["files"]' <"$RUN/ecom-clean.json") files"

  log "ecom: load into $E_TABLE"
  stage ecom load "$RUN/ecom-load.json" "$ECOM" load --input "$E_CLEAN" --table "$E_TABLE" \
    --hbase-thrift "$HBASE_THRIFT" --summary-file /dev/null
  record ecom load "$WALL" "$(jget '["rows"]' <"$RUN/ecom-load.json")" "$RSS" "table created by ecom load, with its aggregates"
}

run_seed() {
  # The seed's setup, before any clock: its topic (1 partition) and its table (4 families).
  $PY "$BENCH_DIR/kafka_admin.py" create "$KAFKA_BOOTSTRAP" "$S_TOPIC" 1
  $PY "$BENCH_DIR/load_happybase.py" create "$HBASE_THRIFT" "$S_TABLE"
  log "seed: produce (kafka-python)"
  stage seed produce "$RUN/seed-produce.json" "$PY" "$BENCH_DIR/seed_produce.py" "$RUN/data.tsv" \
    "$S_TOPIC" "$KAFKA_BOOTSTRAP"
  record seed produce "$WALL" "$(jget '["records"]' <"$RUN/seed-produce.json")" "$RSS"

  log "seed: consume to $HDFS_URL$S_RAW ($SEED_BATCH records per file, WebHDFS)"
  stage seed sink "$RUN/seed-consume.json" "$PY" "$BENCH_DIR/seed_consume.py" "$S_TOPIC" \
    "$KAFKA_BOOTSTRAP" "$HDFS_HTTP_URL" "$S_RAW" "$S_GROUP" --batch "$SEED_BATCH"
  record seed sink "$WALL" "$(jget '["records"]' <"$RUN/seed-consume.json")" "$RSS" \
    "$(jget '["files"]' <"$RUN/seed-consume.json") files"

  log "seed: clean (PySpark local[*], cold) to $HDFS_URL$S_CLEAN"
  stage seed clean "$RUN/seed-clean.json" "$SPARK_PY" "$BENCH_DIR/clean_pyspark.py" \
    "$HDFS_URL$S_RAW" "$HDFS_URL$S_CLEAN" --mode cold --csv
  # Its own clock: process start to CSV written (the counts after it are not the seed's work).
  record seed clean "$(jget '["seconds"]' <"$RUN/seed-clean.json")" "$(jget '["rows_out"]' <"$RUN/seed-clean.json")" \
    "$(jget '["rss_tree_hwm_kib"]' <"$RUN/seed-clean.json")" \
    "rows_in $(jget '["rows_in"]' <"$RUN/seed-clean.json"), $(jget '["files"]' <"$RUN/seed-clean.json") files, whole process ${WALL}s"
  meta seed_clean_rows_in "$(jget '["rows_in"]' <"$RUN/seed-clean.json")"
  meta seed_clean_distinct_ids "$(jget '["distinct_order_ids"]' <"$RUN/seed-clean.json")"

  log "seed: load (happybase, batch 2000) into $S_TABLE"
  stage seed load "$RUN/seed-load.json" "$PY" "$BENCH_DIR/seed_load.py" "$HBASE_THRIFT" "$S_TABLE" \
    "$HDFS_HTTP_URL" "$S_CLEAN"
  record seed load "$WALL" "$(jget '["rows"]' <"$RUN/seed-load.json")" "$RSS" \
    "$(jget '["files"]' <"$RUN/seed-load.json") CSV files"
}

# ---- helpers ---------------------------------------------------------------------------

# meta KEY VALUE: one line of meta.tsv
meta() { printf '%s\t%s\n' "$1" "$2" >>"$RUN/meta.tsv"; }

# A JSON document on stdin (a whole file, or else its last line: a stage's summary follows its
# other output), indexed by a Python subscript: jget '["a"]["b"]'
jget() {
  python3 -c '
import json, sys
text = sys.stdin.read().strip()
try:
    d = json.loads(text)
except ValueError:
    d = json.loads(text.splitlines()[-1])
print(eval("d" + sys.argv[1]))' "$1"
}

# CPU seconds (user + system) a running service component has used so far
service_cpu() {
  local pid
  pid="$("$ROOT/scripts/services.sh" pid "$1")" || die "$1 is not running"
  awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f\n", ($14 + $15) / hz }' "/proc/$pid/stat"
}
SERVICE_COMPONENTS=(kafka namenode datanode hbase thrift)
services_cpu() {
  local c cpus=()
  for c in "${SERVICE_COMPONENTS[@]}"; do cpus+=("$(service_cpu "$c")"); done
  echo "${cpus[*]}"
}

# stage PIPELINE STAGE OUT CMD...: runs CMD (stdout to OUT) under GNU time. Sets WALL
# (seconds), RSS (peak KiB), CPU (user + system seconds) and SERVERS (the CPU seconds the
# servers used meanwhile: Kafka, NameNode + DataNode, HBase, Thrift, tab-separated).
stage() {
  local pipeline=$1 name=$2 out=$3 before after
  shift 3
  before="$(services_cpu)"
  "$TIME" -f '%e %M %U %S' -o "$RUN/.time" "$@" >"$out" 2>>"$RUN/stderr-$pipeline-$name.log" \
    || die "$pipeline $name failed: $(tail -3 "$RUN/stderr-$pipeline-$name.log")"
  after="$(services_cpu)"
  read -r WALL RSS CPU < <(tail -1 "$RUN/.time" | awk '{ printf "%s %s %.2f\n", $1, $2, $3 + $4 }')
  SERVERS="$(awk -v b="$before" -v a="$after" 'BEGIN {
    n = split(b, x, " "); split(a, y, " "); for (i = 1; i <= n; i++) d[i] = y[i] - x[i]
    printf "%.2f\t%.2f\t%.2f\t%.2f", d[1], d[2] + d[3], d[4], d[5] }')"
}

# record PIPELINE STAGE SECONDS ROWS RSS_KIB [NOTE]: one line of results.tsv (with the last
# stage's client CPU, wall time and servers' CPU)
record() {
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "$5" "$CPU" "$WALL" "$SERVERS" "${6:-}" >>"$RESULTS"
}

# The seed's Spark step reads its header-less batch files with header=True, so the first
# record of every file is lost. Its consumer writes the single-partition topic in order, so
# file k starts with data record k * SEED_BATCH; those of them that survive the seed's
# cleaning (ecom clean --seed-compat, the same semantics) are missing from its output.
expect_seed_rows_out() {
  LC_ALL=C awk -v b="$SEED_BATCH" 'NR == 1 { print; next } length($0) > 0 { if (n % b == 0) print; n++ }' \
    "$RUN/data.tsv" >"$RUN/first-records.tsv"
  "$ECOM" clean --seed-compat --input "$RUN/first-records.tsv" --output "$RUN/first-records-clean" \
    >"$RUN/first-records.json" 2>>"$RUN/stderr.log"
  meta seed_first_records "$(($(wc -l <"$RUN/first-records.tsv") - 1))"
  meta seed_first_records_surviving "$(jget '["report"]["rows_out"]' <"$RUN/first-records.json")"
  rm -rf "$RUN/first-records-clean"
}

# Removes the run's topics, consumer group, HDFS paths and tables (KEEP=1 keeps them), and
# the run directory's large files.
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
  local rc=$?
  [[ -n "${RUN:-}" && -d "$RUN" ]] || return "$rc"
  if [[ "${KEEP:-0}" == 1 ]]; then
    log "kept: topics $ID-*, HDFS $HDFS_URL$BASE, tables $E_TABLE (+_agg), $S_TABLE"
  else
    "$ECOM" purge --path "$HDFS_URL$BASE" --table "$E_TABLE" --hbase-thrift "$HBASE_THRIFT" \
      >/dev/null 2>>"$RUN/stderr.log" || log "warning: could not purge $HDFS_URL$BASE / $E_TABLE"
    $PY "$BENCH_DIR/load_happybase.py" drop "$HBASE_THRIFT" "$S_TABLE" 2>>"$RUN/stderr.log" \
      || log "warning: could not drop $S_TABLE"
    $PY "$BENCH_DIR/kafka_admin.py" delete "$KAFKA_BOOTSTRAP" "$ID-" >/dev/null 2>>"$RUN/stderr.log" \
      || log "warning: could not delete topics $ID-*"
    rm -f "$RUN/data.tsv"
  fi
  return "$rc"
}

main "$@"; exit $?
