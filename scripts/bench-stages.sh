#!/usr/bin/env bash
# Stage benchmark (issue 4): `ecom produce`, `ecom clean` and `ecom load` side by side
# with peers, on the SAME servers (the harness's real Kafka, HDFS and HBase Thrift,
# `scripts/services.sh`) and the SAME generated data, in this one script.
#
#   make bench-stages                 500,000 rows, 3 rounds
#   ROWS=1000000 REPEAT=1 make bench-stages
#
# Peers:
#   produce  kcat (Debian package) and kafka-python, with ecom's producer settings
#            (idempotent, acks=all, lz4, linger 20 ms, 1 MiB batches), same keys and values,
#            into fresh 3-partition topics
#   clean    PySpark local[*] running the seed's step (scripts/bench/clean_pyspark.py)
#            on the same raw files on HDFS, writing Parquet to HDFS, as the seed does (2 files,
#            no partitions) and, warm, with partitionBy(date), the layout ecom writes; ecom
#            runs `clean --seed-compat` from the same raw directory to its own fresh output
#   load     the seed's loader in happybase (scripts/bench/load_happybase.py): row key
#            order_id, the four families, UTF-8 text, batch size 2000, into fresh tables
#
# Knobs (environment): ROWS (500000), REPEAT (3), STAGES ("produce clean load": which
# stages to measure), KEEP (1 = keep the HDFS data and topics), ECOM (the binary), ECOM_CACHE (~/.cache/ecom-pipeline: venvs, run
# directories under bench-stages/).
# Needs the services running (`make services-up`). Prints a table with rows/s and
# ratios (ecom rows/s / peer rows/s, above 1 = ecom faster); raw figures stay in the
# run directory printed at the end.
set -euo pipefail

# The whole script is one function, so that bash has read all of it before it runs
# (editing the file during a run cannot change that run).
main() {
  ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  BENCH_DIR="$ROOT/scripts/bench"
  CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/ecom-pipeline/target}"
  ECOM="${ECOM:-$CARGO_TARGET_DIR/release/ecom}"
  ECOM_CACHE="${ECOM_CACHE:-$HOME/.cache/ecom-pipeline}"
  ROWS="${ROWS:-500000}"
  REPEAT="${REPEAT:-3}"
  STAGES="${STAGES:-produce clean load}"
  want() { [[ " $STAGES " == *" $1 "* ]]; }
  SEED=42
  DIRTY_RATE=0.05
  PARTITIONS=3

  # Pinned peers. PySpark comes from bench-clean.sh's venv (same pins, created here if missing).
  STAGES_PINS="kafka-python==3.0.12 happybase==1.3.0 polars==2.1.0 lz4==4.4.5"
  STAGES_VENV="$ECOM_CACHE/bench-stages-venv"
  SPARK_PINS="pyspark==3.5.9 polars==2.1.0"
  SPARK_VENV="$ECOM_CACHE/bench-venv"
  TIME=/usr/bin/time

  BENCH_NAME=bench-stages
  # shellcheck source=scripts/bench/common.sh
  source "$BENCH_DIR/common.sh"

  check_prerequisites
  command -v kcat >/dev/null 2>&1 || apt_install kcat
  command -v java >/dev/null 2>&1 || apt_install openjdk-17-jre-headless

  ensure_venv "$STAGES_VENV" "$STAGES_PINS"
  ensure_venv "$SPARK_VENV" "$SPARK_PINS"
  PY="$STAGES_VENV/bin/python"
  SPARK_PY="$SPARK_VENV/bin/python"

  "$ROOT/scripts/services.sh" status kafka hdfs hbase >/dev/null \
    || die "the services are not running: run 'make services-up' first"
  eval "$("$ROOT/scripts/services.sh" env)"
  : "${KAFKA_BOOTSTRAP:?}" "${HDFS_URL:?}" "${HBASE_THRIFT:?}"

  STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
  RUN="$ECOM_CACHE/bench-stages/run-$STAMP"
  mkdir -p "$RUN"
  ID="bs$(date -u +%H%M%S)$$"
  HBASE_BASE="/bench-stages/$ID"
  RESULTS="$RUN/results.tsv"
  : >"$RESULTS"
  export RUST_LOG=warn

  # record NAME ROUND SECONDS ROWS [NOTE]
  record() { printf '%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "${5:-}" >>"$RESULTS"; }
  # wall seconds of a command (stdout to FILE): timed CMD... ; sets $WALL, and $CPU (its
  # user + system CPU seconds)
  timed() {
    local out=$1; shift
    "$TIME" -f '%e %U %S' -o "$RUN/.time" "$@" >"$out" 2>>"$RUN/stderr.log"
    read -r WALL CPU < <(tail -1 "$RUN/.time" | awk '{ printf "%s %.2f\n", $1, $2 + $3 }')
  }
  # CPU seconds (user + system) a running service component has used so far
  service_cpu() {
    local pid
    pid="$("$ROOT/scripts/services.sh" pid "$1")" || die "$1 is not running"
    awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f\n", ($14 + $15) / hz }' "/proc/$pid/stat"
  }
  # timed, plus where the load's CPU went: sets $SPLIT to "client C, HBase H, Thrift T CPU-s"
  timed_load() {
    local h0 t0
    h0=$(service_cpu hbase) t0=$(service_cpu thrift)
    timed "$@"
    SPLIT="$(awk -v c="$CPU" -v h="$(service_cpu hbase)" -v h0="$h0" -v t="$(service_cpu thrift)" \
      -v t0="$t0" 'BEGIN { printf "client %.2f, HBase %.2f, Thrift %.2f CPU-s", c, h - h0, t - t0 }')"
  }
  jget() { python3 -c 'import json,sys; d=json.loads(sys.stdin.read().strip().splitlines()[-1]); print(eval("d"+sys.argv[1]))' "$1"; }

  {
    printf 'date\t%s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    printf 'rows\t%s\n' "$ROWS"
    printf 'nproc\t%s\n' "$(nproc)"
    printf 'cpu\t%s\n' "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
    printf 'load_start\t%s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
    printf 'commit\t%s\n' "$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
  } >"$RUN/meta.tsv"

  # ---- data ------------------------------------------------------------------------
  log "generating $ROWS rows (seed $SEED, dirty rate $DIRTY_RATE)"
  "$ECOM" generate --rows "$ROWS" --seed "$SEED" --dirty-rate "$DIRTY_RATE" \
    --out "$RUN/data.tsv" --truth "$RUN/truth.json"
  # kcat's input: KEY|LINE, the key being the order id (the first field), header dropped.
  LC_ALL=C awk -F'\t' 'NR > 1 && length($0) > 0 { print $1 "|" $0 }' "$RUN/data.tsv" >"$RUN/keyed.tsv"
  DATA_ROWS=$(LC_ALL=C awk 'NR > 1 && length($0) > 0' "$RUN/data.tsv" | wc -l)
  cat "$RUN/data.tsv" "$RUN/keyed.tsv" >/dev/null # into the page cache

  # ---- produce ---------------------------------------------------------------------
  want produce || "$ECOM" produce --input "$RUN/data.tsv" --topic "$ID-ecom-1" \
    --partitions "$PARTITIONS" --summary-file /dev/null >/dev/null 2>>"$RUN/stderr.log"
  want produce && for r in $(seq 1 "$REPEAT"); do
    log "produce round $r/$REPEAT"
    t="$ID-ecom-$r"
    # Every tool's topic is created before its clock starts. The note of ecom's and kcat's
    # rounds is the 1-minute load average when the round ended.
    $PY "$BENCH_DIR/kafka_admin.py" create "$KAFKA_BOOTSTRAP" "$t" "$PARTITIONS"
    timed "$RUN/produce-ecom-$r.json" "$ECOM" produce --input "$RUN/data.tsv" --topic "$t" \
      --partitions "$PARTITIONS" --summary-file /dev/null
    record produce-ecom "$r" "$WALL" "$($PY "$BENCH_DIR/kafka_admin.py" count "$KAFKA_BOOTSTRAP" "$t")" \
      "load $(cut -d' ' -f1 /proc/loadavg)"

    t="$ID-kcat-$r"
    $PY "$BENCH_DIR/kafka_admin.py" create "$KAFKA_BOOTSTRAP" "$t" "$PARTITIONS"
    timed "$RUN/produce-kcat-$r.out" kcat -P -b "$KAFKA_BOOTSTRAP" -t "$t" -K '|' -z lz4 \
      -X enable.idempotence=true -X acks=all -X linger.ms=20 -X batch.size=1048576 \
      -l "$RUN/keyed.tsv"
    record produce-kcat "$r" "$WALL" "$($PY "$BENCH_DIR/kafka_admin.py" count "$KAFKA_BOOTSTRAP" "$t")" \
      "load $(cut -d' ' -f1 /proc/loadavg)"

    t="$ID-kpy-$r"
    $PY "$BENCH_DIR/kafka_admin.py" create "$KAFKA_BOOTSTRAP" "$t" "$PARTITIONS"
    timed "$RUN/produce-kpy-$r.json" "$PY" "$BENCH_DIR/produce_kafka_python.py" "$RUN/data.tsv" "$t" "$KAFKA_BOOTSTRAP"
    record produce-kafka-python "$r" "$(jget '["seconds"]' <"$RUN/produce-kpy-$r.json")" \
      "$($PY "$BENCH_DIR/kafka_admin.py" count "$KAFKA_BOOTSTRAP" "$t")" "whole process ${WALL}s"
  done

  # ---- raw files on HDFS (the pipeline's sink, not timed here) -------------------------
  log "sinking the first ecom topic to $HDFS_URL$HBASE_BASE/raw"
  "$ECOM" sink --topic "$ID-ecom-1" --output "$HDFS_URL$HBASE_BASE/raw" --until-caught-up \
    --summary-file /dev/null >"$RUN/sink.json" 2>>"$RUN/stderr.log"
  RAW_FILES=$(jget '["files"]' <"$RUN/sink.json")

  # ---- clean -----------------------------------------------------------------------
  want clean && for r in $(seq 1 "$REPEAT"); do
    log "clean round $r/$REPEAT"
    timed "$RUN/clean-ecom-$r.json" "$ECOM" clean --seed-compat --input "$HDFS_URL$HBASE_BASE/raw" \
      --output "$HDFS_URL$HBASE_BASE/clean-ecom-$r" --summary-file /dev/null
    record clean-ecom-seed-compat "$r" "$WALL" "$(jget '["report"]["rows_out"]' <"$RUN/clean-ecom-$r.json")"
    timed "$RUN/clean-spark-cold-$r.json" "$SPARK_PY" "$BENCH_DIR/clean_pyspark.py" \
      "$HDFS_URL$HBASE_BASE/raw" "$HDFS_URL$HBASE_BASE/clean-spark-$r" --mode cold
    record clean-pyspark-cold "$r" "$(jget '["seconds"]' <"$RUN/clean-spark-cold-$r.json")" \
      "$(jget '["rows_out"]' <"$RUN/clean-spark-cold-$r.json")" "whole process ${WALL}s"
  done
  if want clean; then
    log "clean: PySpark warm (one session, warm-up + $REPEAT timed runs)"
    timed "$RUN/clean-spark-warm.json" "$SPARK_PY" "$BENCH_DIR/clean_pyspark.py" \
      "$HDFS_URL$HBASE_BASE/raw" "$HDFS_URL$HBASE_BASE/clean-spark-warm" --mode warm --repeat "$REPEAT"
    record clean-pyspark-warm 1 "$(jget '["seconds"]' <"$RUN/clean-spark-warm.json")" \
      "$(jget '["rows_out"]' <"$RUN/clean-spark-warm.json")" "runs $(jget '["runs"]' <"$RUN/clean-spark-warm.json")"
    # The same job writing ecom's layout: one directory per date (Spark's partitionBy).
    log "clean: PySpark warm, partitioned by date (one session, warm-up + $REPEAT timed runs)"
    timed "$RUN/clean-spark-warm-by-date.json" "$SPARK_PY" "$BENCH_DIR/clean_pyspark.py" \
      "$HDFS_URL$HBASE_BASE/raw" "$HDFS_URL$HBASE_BASE/clean-spark-warm-by-date" --mode warm \
      --repeat "$REPEAT" --partition-by-date
    record clean-pyspark-warm-by-date 1 "$(jget '["seconds"]' <"$RUN/clean-spark-warm-by-date.json")" \
      "$(jget '["rows_out"]' <"$RUN/clean-spark-warm-by-date.json")" \
      "runs $(jget '["runs"]' <"$RUN/clean-spark-warm-by-date.json"), $(jget '["files"]' <"$RUN/clean-spark-warm-by-date.json") files"
  fi

  # ---- load ------------------------------------------------------------------------
  log "load: full-rules clean on HDFS (for ecom) and locally (the peer's copy of the same rows)"
  "$ECOM" clean --input "$HDFS_URL$HBASE_BASE/raw" --output "$HDFS_URL$HBASE_BASE/clean-full" \
    --summary-file /dev/null >"$RUN/clean-full.json" 2>>"$RUN/stderr.log"
  "$ECOM" clean --input "$RUN/data.tsv" --output "$RUN/clean-local" >"$RUN/clean-local.json" 2>>"$RUN/stderr.log"
  LOAD_ROWS=$(jget '["report"]["rows_out"]' <"$RUN/clean-full.json")
  PARTS=$(jget '["report"]["output_files"].__len__()' <"$RUN/clean-full.json")
  want load && for r in $(seq 1 "$REPEAT"); do
    log "load round $r/$REPEAT"
    e="${ID}_ecom_$r" h="${ID}_hb_$r"
    # Fresh tables, created before the clock starts for both tools.
    $PY "$BENCH_DIR/load_happybase.py" create "$HBASE_THRIFT" "$e" "${e}_agg" "$h"
    timed_load "$RUN/load-ecom-$r.json" "$ECOM" load --input "$HDFS_URL$HBASE_BASE/clean-full" --table "$e" \
      --summary-file /dev/null
    n=$(jget '["rows"]' <"$RUN/load-ecom-$r.json")
    [[ $r -eq 1 ]] && n="$n/$($PY "$BENCH_DIR/load_happybase.py" count "$HBASE_THRIFT" "$e")"
    record load-ecom "$r" "$WALL" "$n" "$SPLIT"
    timed_load "$RUN/load-hb-$r.json" "$PY" "$BENCH_DIR/load_happybase.py" load "$HBASE_THRIFT" "$h" "$RUN"/clean-local/date=*/part-*.parquet
    n=$(jget '["rows"]' <"$RUN/load-hb-$r.json")
    [[ $r -eq 1 ]] && n="$n/$($PY "$BENCH_DIR/load_happybase.py" count "$HBASE_THRIFT" "$h")"
    record load-happybase "$r" "$(jget '["seconds"]' <"$RUN/load-hb-$r.json")" "$n" \
      "whole process ${WALL}s; $SPLIT (client includes its Parquet read)"
    $PY "$BENCH_DIR/load_happybase.py" drop "$HBASE_THRIFT" "$e" "${e}_agg" "$h"
  done

  printf 'load_end\t%s\n' "$(cut -d' ' -f1-3 /proc/loadavg)" >>"$RUN/meta.tsv"
  printf 'data_rows\t%s\nraw_files\t%s\nload_rows\t%s\nclean_partitions\t%s\n' \
    "$DATA_ROWS" "$RAW_FILES" "$LOAD_ROWS" "$PARTS" >>"$RUN/meta.tsv"
  python3 "$BENCH_DIR/report_stages.py" "$RUN"
  if [[ "${KEEP:-0}" == 1 ]]; then
    log "kept: HDFS data under $HDFS_URL$HBASE_BASE, topics $ID-*"
  else
    # The shared services keep nothing of the benchmark but its figures (KEEP=1 keeps all).
    "$ECOM" purge --path "$HDFS_URL$HBASE_BASE" >/dev/null 2>>"$RUN/stderr.log"
    $PY "$BENCH_DIR/kafka_admin.py" delete "$KAFKA_BOOTSTRAP" "$ID-" >/dev/null
  fi
  log "raw figures: $RUN"
}

main "$@"; exit $?
