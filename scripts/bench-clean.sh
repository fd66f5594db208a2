#!/usr/bin/env bash
# Cleaning benchmark (issue 2): `ecom clean` beside PySpark (local mode, cold and
# warm) and the polars Python API, all on ONE generated file, in this one script.
#
#   make bench-clean                          2,000,000 rows, every tool
#   ROWS=10000000 BENCH_ONLY_ECOM=1 make bench-clean
#                                             10 million rows, ecom alone (peak RSS check)
#
# Knobs (environment):
#   ROWS             data rows to generate (default 2000000)
#   REPEAT           timed runs per measurement, best time kept (default 3)
#   BENCH_ONLY_ECOM  1 = measure ecom only (no Java, no Python packages needed)
#   ECOM             the binary (default $CARGO_TARGET_DIR/release/ecom)
#   ECOM_CACHE       cache root (default ~/.cache/ecom-pipeline): the data file is kept
#                    under bench/ keyed by its parameters, the Python venv in bench-venv/
#
# Peers apply exactly the seed's semantics (typed read, na.drop, two typo fixes), so
# they are compared with `ecom clean --seed-compat`; `ecom clean` with its full rules
# is measured too. The table is printed by scripts/bench/report.py; raw figures are
# kept in the run directory (printed at the end).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCH_DIR="$ROOT/scripts/bench"
CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/ecom-pipeline/target}"
ECOM="${ECOM:-$CARGO_TARGET_DIR/release/ecom}"
ECOM_CACHE="${ECOM_CACHE:-$HOME/.cache/ecom-pipeline}"
ROWS="${ROWS:-2000000}"
REPEAT="${REPEAT:-3}"
BENCH_ONLY_ECOM="${BENCH_ONLY_ECOM:-0}"
SEED=42
DIRTY_RATE=0.05

# Pinned peer versions. PySpark 3.5 runs on Java 17 (the machine's JDK).
PYSPARK_VERSION=3.5.9
POLARS_VERSION=2.1.0
JDK_PACKAGE=openjdk-17-jre-headless
VENV="$ECOM_CACHE/bench-venv"
TIME=/usr/bin/time

BENCH_NAME=bench-clean
# shellcheck source=scripts/bench/common.sh
source "$BENCH_DIR/common.sh"

# ---- prerequisites -------------------------------------------------------------

check_prerequisites

if [[ "$BENCH_ONLY_ECOM" != 1 ]]; then
  command -v java >/dev/null 2>&1 || apt_install "$JDK_PACKAGE"
  ensure_venv "$VENV" "pyspark==$PYSPARK_VERSION polars==$POLARS_VERSION"
fi

# ---- the one data file, cached by its parameters ---------------------------------

# A fingerprint of the generator itself (a small sample of its output), so a changed
# generator never reuses a stale file.
gen_fp="$("$ECOM" generate --rows 5000 --seed "$SEED" --dirty-rate "$DIRTY_RATE" --out - 2>/dev/null |
  sha256sum | cut -c1-12)"
WORK="$ECOM_CACHE/bench/rows$ROWS-seed$SEED-dirty$DIRTY_RATE-gen$gen_fp"
DATA="$WORK/data.tsv"
mkdir -p "$WORK"
if [[ ! -s "$DATA" || ! -s "$WORK/truth.json" ]]; then
  log "generating $ROWS rows into $DATA"
  tmp="$WORK/.data.tsv.$$"
  "$ECOM" generate --rows "$ROWS" --seed "$SEED" --dirty-rate "$DIRTY_RATE" \
    --out "$tmp" --truth "$WORK/truth.json" 2>"$WORK/generate.log"
  mv "$tmp" "$DATA"
else
  log "reusing $DATA"
fi
lines=$(wc -l <"$DATA")
data_rows=$((lines - 1)) # the header line is not a row
bytes=$(stat -c %s "$DATA")

RUN="$WORK/run-$(date -u +%Y%m%dT%H%M%SZ)"
OUT="$RUN/out"
mkdir -p "$RUN/logs" "$OUT"
RESULTS="$RUN/results.tsv"
: >"$RESULTS"
cleanup() { rm -rf "$OUT"; }
trap cleanup EXIT

# Warm the page cache so no tool pays for the first read from disk.
cat "$DATA" >/dev/null

{
  echo "date	$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "rows	$data_rows"
  echo "bytes	$bytes"
  echo "data	$DATA"
  echo "repeat	$REPEAT"
  echo "nproc	$(nproc)"
  echo "mem_total_kib	$(awk '/^MemTotal/ {print $2}' /proc/meminfo)"
  echo "cpu	$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)"
  echo "kernel	$(uname -r)"
  echo "loadavg_start	$(cut -d' ' -f1-3 /proc/loadavg)"
  echo "ecom	$("$ECOM" --version 2>/dev/null || echo unknown)"
  echo "truth	$(tr -d '\n ' <"$WORK/truth.json")"
  if [[ "$BENCH_ONLY_ECOM" != 1 ]]; then
    echo "java	$(java -version 2>&1 | head -1)"
    echo "python	$("$VENV/bin/python" --version 2>&1)"
  fi
} >"$RUN/meta.tsv"

# measure NAME ROUND CMD...: runs CMD under /usr/bin/time (wall seconds, peak RSS of
# the largest process of its tree in KiB) and records the last JSON line it printed.
measure() {
  local name=$1 round=$2
  shift 2
  local t="$RUN/logs/$name-$round.time" o="$RUN/logs/$name-$round.out" e="$RUN/logs/$name-$round.err"
  log "$name (run $round/$REPEAT)"
  if ! "$TIME" -f '%e %M' -o "$t" "$@" >"$o" 2>"$e"; then
    tail -20 "$e" >&2
    die "$name failed; logs in $RUN/logs"
  fi
  local wall rss json
  read -r wall rss < <(tail -1 "$t")
  json=$(grep '^{' "$o" | tail -1)
  [[ -n "$json" ]] || die "$name printed no JSON line; logs in $RUN/logs"
  printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$round" "$wall" "$rss" "$json" >>"$RESULTS"
}

# parquet_rows NAME PATH: counts the rows of the Parquet a tool wrote, independently of
# what the tool says (needs the venv's polars; skipped without it).
parquet_rows() {
  local name=$1 path=$2
  [[ -x "$VENV/bin/python" ]] || return 0
  local n
  n=$("$VENV/bin/python" - "$path" <<'PY'
import glob, os, sys
import polars as pl
p = sys.argv[1]
# A directory: Spark's part files, or ecom's committed runs (date=YYYY-MM-DD/part-RUN.parquet).
files = sorted(glob.glob(os.path.join(p, "*.parquet")) + glob.glob(os.path.join(p, "date=*", "*.parquet"))) if os.path.isdir(p) else [p]
print(pl.scan_parquet(files).select(pl.len()).collect().item() if files else 0)
PY
  ) || n=error
  printf '%s\t%s\n' "$name" "$n" >>"$RUN/parquet_rows.tsv"
}

fresh() { rm -rf "$1"; }

ecom_clean() { # ecom_clean NAME ROUND [--seed-compat]
  local name=$1 round=$2
  shift 2
  fresh "$OUT/$name"
  measure "$name" "$round" "$ECOM" clean --input "$DATA" --output "$OUT/$name" "$@"
}

export SPARK_LOCAL_IP=127.0.0.1
export PYSPARK_PYTHON="$VENV/bin/python"

# Rounds interleave the tools so slow drift in the machine's load hits all of them.
for ((r = 1; r <= REPEAT; r++)); do
  ecom_clean ecom-seed-compat "$r" --seed-compat
  ecom_clean ecom-full "$r"
  if [[ "$BENCH_ONLY_ECOM" != 1 ]]; then
    fresh "$OUT/polars-eager.parquet"
    measure polars-eager "$r" "$VENV/bin/python" "$BENCH_DIR/clean_polars.py" "$DATA" "$OUT/polars-eager.parquet"
    fresh "$OUT/polars-lazy.parquet"
    measure polars-lazy "$r" "$VENV/bin/python" "$BENCH_DIR/clean_polars.py" "$DATA" "$OUT/polars-lazy.parquet" --lazy
    fresh "$OUT/pyspark-cold"
    measure pyspark-cold "$r" "$VENV/bin/python" "$BENCH_DIR/clean_pyspark.py" "$DATA" "$OUT/pyspark-cold" --mode cold
  fi
done
if [[ "$BENCH_ONLY_ECOM" != 1 ]]; then
  fresh "$OUT/pyspark-warm"
  measure pyspark-warm 1 "$VENV/bin/python" "$BENCH_DIR/clean_pyspark.py" "$DATA" "$OUT/pyspark-warm" --mode warm --repeat "$REPEAT"
fi

echo "loadavg_end	$(cut -d' ' -f1-3 /proc/loadavg)" >>"$RUN/meta.tsv"

# Independent row counts of every output (the last round's).
parquet_rows ecom-seed-compat "$OUT/ecom-seed-compat"
parquet_rows ecom-full "$OUT/ecom-full"
if [[ "$BENCH_ONLY_ECOM" != 1 ]]; then
  parquet_rows polars-eager "$OUT/polars-eager.parquet"
  parquet_rows polars-lazy "$OUT/polars-lazy.parquet"
  parquet_rows pyspark-cold "$OUT/pyspark-cold"
  parquet_rows pyspark-warm "$OUT/pyspark-warm"
fi

python3 "$BENCH_DIR/report.py" "$RUN" | tee "$RUN/report.txt"
log "figures and logs kept in $RUN"
