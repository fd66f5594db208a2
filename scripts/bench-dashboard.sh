#!/usr/bin/env bash
# Dashboard load benchmark: ROWS (10,000,000 by default) through `ecom demo`
# into the embedded store, then `wrk` against the main endpoints of
# `ecom dashboard`, side by side with a per-request scan of the fact table
# like the original dashboard's (`/api/scan-baseline/categories`).
#
# Prints, per endpoint: requests/s, p50 and p99 latency, cached (the
# default: answers kept per query and data version) and uncached
# (`--cache-entries 0`: every request computed from the in-memory cubes),
# after one warm-up request per query for the cached run,
# and the throughput ratio against the scan. Each wrk run rotates over 37
# filter combinations, so the filters the page sends are what is measured.
#
# Environment: ROWS, DURATION (seconds per wrk run, 10), CONNECTIONS (16),
# SCAN_REQUESTS (sequential scan requests, 2; 0 skips the scan baseline),
# PORT (18990), ECOM (binary). The load average is printed beside the figures
# (the machine may be shared).
set -euo pipefail
cd "$(dirname "$0")/.."

ROWS=${ROWS:-10000000}
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-16}
SCAN_REQUESTS=${SCAN_REQUESTS:-2}
PORT=${PORT:-18990}
TARGET=${CARGO_TARGET_DIR:-$HOME/.cache/ecom-pipeline/target}
ECOM=${ECOM:-$TARGET/release/ecom}
BASE=$HOME/.cache/ecom-pipeline/bench-dashboard
DATA=$BASE/rows$ROWS
# Bump when the loader's aggregates change, so the cached store is rebuilt.
FORMAT=cube-v1

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
if ! command -v wrk >/dev/null 2>&1; then
    echo "bench-dashboard: installing wrk (Debian package)" >&2
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq wrk >/dev/null
fi
[ -x "$ECOM" ] || { echo "bench-dashboard: $ECOM missing (make build)" >&2; exit 1; }

mkdir -p "$BASE"
if [ "$(cat "$DATA/.bench-format" 2>/dev/null)" != "$FORMAT" ]; then
    echo "bench-dashboard: loading $ROWS rows into $DATA (ecom demo --no-serve)" >&2
    /usr/bin/env time -f '%e s, max RSS %M KiB' -o "$BASE/load-time.txt" \
        "$ECOM" demo --rows "$ROWS" --no-serve --data-dir "$DATA" >/dev/null 2>"$BASE/demo.log"
    echo "$FORMAT" >"$DATA/.bench-format"
    echo "bench-dashboard: pipeline took $(cat "$BASE/load-time.txt")" >&2
fi
STORE=$DATA/store.redb

RUN=$BASE/run-$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$RUN"

# 37 filter combinations the page can send.
filters=("")
for c in Electronics Clothing Home+%26+Kitchen Books Beauty Sports Toys; do filters+=("category=$c"); done
for p in Credit+Card Debit+Card PayPal Cash; do filters+=("payment=$p"); done
for s in Pending Shipped Delivered Cancelled; do filters+=("status=$s"); done
for w in 01 08 15 22 29; do filters+=("from=2024-01-${w}&to=2024-02-0$(( (10#$w % 9) + 1 ))"); done
for m in 02 03; do filters+=("from=2024-${m}-01&to=2024-${m}-15T12:00:00Z"); done
filters+=("category=Books,Toys&status=Delivered" "payment=Cash&status=Cancelled"
    "category=Electronics&payment=PayPal&status=Shipped" "from=2024-01-10&to=2024-01-11&category=Beauty"
    "from=2024-02-01&to=2024-03-01&payment=Credit+Card" "status=Pending,Shipped" "category=Sports,Beauty,Toys"
    "from=2024-03-01&status=Delivered" "to=2024-01-15&category=Clothing" "payment=Debit+Card&category=Home+%26+Kitchen"
    "from=2024-01-05T06:00:00Z&to=2024-01-05T18:00:00Z" "category=Electronics,Clothing&payment=Cash,PayPal"
    "status=Cancelled&from=2024-02-10&to=2024-02-20" "category=Books&payment=PayPal&from=2024-01-20&to=2024-03-10")

endpoints=(kpis categories status payments top-users histogram timeseries category-status orders)

# A wrk script that rotates over the filter combinations of one endpoint.
lua_for() {
    local ep=$1 f=$RUN/$1.lua sep
    {
        echo "local paths = {"
        for q in "${filters[@]}"; do
            if [[ $ep == *"?"* ]]; then sep="&"; else sep="?"; fi
            printf '  "/api/%s%s%s",\n' "$ep" "$sep" "$q"
        done
        echo "}"
        echo 'local i = 0'
        echo 'request = function() i = i % #paths + 1; return wrk.format("GET", paths[i]) end'
    } >"$f"
    echo "$f"
}

# Starts the dashboard with extra flags; waits until it answers. A scan of the whole fact
# table takes from seconds to minutes: the request and idle timeouts must not cut it.
start() {
    "$ECOM" dashboard --store "$STORE" --port "$PORT" --scan-baseline \
        --request-timeout 1h --idle-timeout 1h "$@" \
        >"$RUN/dashboard.out" 2>>"$RUN/dashboard.log" &
    PID=$!
    local t0=$SECONDS
    until curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null; do
        kill -0 "$PID" 2>/dev/null || { echo "dashboard died: see $RUN/dashboard.log" >&2; exit 1; }
        sleep 0.2
    done
    STARTUP=$((SECONDS - t0))
    RSS=$(awk '/VmRSS/ {print int($2/1024)}' "/proc/$PID/status")
}
stop() { kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; }
trap stop EXIT

# wrk latency figures are printed like 1.23ms / 456.00us / 1.20s: in ms.
to_ms() {
    awk -v v="$1" 'BEGIN {
        if (v ~ /us$/) { sub(/us$/, "", v); printf "%.3f", v / 1000 }
        else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.3f", v }
        else if (v ~ /s$/) { sub(/s$/, "", v); printf "%.3f", v * 1000 }
        else printf "%s", v }'
}

# Runs wrk on one endpoint; prints "rps p50 p99".
bench() {
    local ep=$1 tag=$2 out
    out=$RUN/wrk-$tag-$ep.txt
    wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" --timeout 10s --latency -s "$(lua_for "$ep")" \
        "http://127.0.0.1:$PORT" >"$out"
    local rps p50 p99
    rps=$(awk '/^Requests\/sec/ {print $2}' "$out")
    p50=$(to_ms "$(awk '$1 == "50%" {print $2}' "$out")")
    p99=$(to_ms "$(awk '$1 == "99%" {print $2}' "$out")")
    if grep -q "Non-2xx" "$out"; then echo "WARNING: non-2xx answers in $out" >&2; fi
    # 1-minute load average at the end of the run (other work on the machine).
    echo "$rps $p50 $p99 $(cut -d' ' -f1 /proc/loadavg)"
}

# Ratio of a throughput to the scan's, or "-" without a scan.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == "nan" || b + 0 == 0) print "-"; else printf "%.0f", a / b }'; }

declare -A CACHED UNCACHED
start
echo "bench-dashboard: dashboard (cached) up in ${STARTUP}s, RSS ${RSS} MiB" >&2
CACHED_RSS=$RSS CACHED_STARTUP=$STARTUP
sed 's/\x1b\[[0-9;]*m//g' "$RUN/dashboard.log" | grep -o 'orders=[0-9]* cells=[0-9]* users=[0-9]* model_mib=[0-9]*' | tail -1 >"$RUN/model.txt" || true
# Steady state of the cache: every measured query answered once first (the
# uncached run below shows what a first answer costs).
for ep in "${endpoints[@]}"; do
    for q in "${filters[@]}"; do curl -sf -o /dev/null "http://127.0.0.1:$PORT/api/$ep?$q"; done
done
for ep in "${endpoints[@]}"; do CACHED[$ep]=$(bench "$ep" cached); done
# The scan baseline: sequential requests, each scanning the whole fact table.
scan_times=()
for _ in $(seq 1 "$SCAN_REQUESTS"); do
    scan_times+=("$(curl -sf -o "$RUN/scan.json" -w '%{time_total}' "http://127.0.0.1:$PORT/api/scan-baseline/categories")")
done
# The scan's figures must be the panel's figures.
if [ "$SCAN_REQUESTS" -gt 0 ]; then
    curl -sf "http://127.0.0.1:$PORT/api/categories" >"$RUN/categories.json"
    python3 - "$RUN/scan.json" "$RUN/categories.json" <<'EOF' || echo "WARNING: scan and panel differ" >&2
import json, sys
a, b = (json.load(open(p))["rows"] for p in sys.argv[1:])
key = lambda r: (r["category"], r["orders"], round(r["revenue"], 2))
assert sorted(map(key, a)) == sorted(map(key, b)), (a, b)
EOF
fi
stop
start --cache-entries 0
echo "bench-dashboard: dashboard (no cache) up in ${STARTUP}s, RSS ${RSS} MiB" >&2
for ep in "${endpoints[@]}"; do UNCACHED[$ep]=$(bench "$ep" uncached); done
stop

read -r SCAN_RPS SCAN_P50 SCAN_P99 < <(printf '%s\n' "${scan_times[@]}" | sort -n | awk '
    $1 != "" { t[++n] = $1; s += $1 }
    END { if (n == 0) print "nan - -"; else printf "%.4f %.1f %.1f\n", n / s, t[int((n + 1) / 2)] * 1000, t[n] * 1000 }')

{
    echo "dashboard load benchmark: $ROWS generated rows ($(cat "$RUN/model.txt")), wrk -t2 -c$CONNECTIONS -d${DURATION}s, ${#filters[@]} filter combinations per endpoint"
    echo "dashboard RSS: ${CACHED_RSS} MiB, ready ${CACHED_STARTUP}s after start"
    printf '%-16s | %10s %9s %9s %9s %5s | %10s %9s %9s %9s %5s\n' endpoint "cached r/s" "p50 ms" "p99 ms" "x scan" load "uncached" "p50 ms" "p99 ms" "x scan" load
    for ep in "${endpoints[@]}"; do
        read -r r1 a1 b1 l1 <<<"${CACHED[$ep]}"
        read -r r2 a2 b2 l2 <<<"${UNCACHED[$ep]}"
        printf '%-16s | %10s %9s %9s %9s %5s | %10s %9s %9s %9s %5s\n' "$ep" "$r1" "$a1" "$b1" \
            "$(ratio "$r1" "$SCAN_RPS")" "$l1" "$r2" "$a2" "$b2" "$(ratio "$r2" "$SCAN_RPS")" "$l2"
    done
    printf '%-16s | %10s %9s %9s %9s |   (%s sequential requests, each a full scan of the fact table)\n' \
        "scan baseline" "$SCAN_RPS" "$SCAN_P50" "$SCAN_P99" 1 "$SCAN_REQUESTS"
} | tee "$RUN/report.txt"
echo "raw wrk output and logs: $RUN" >&2
