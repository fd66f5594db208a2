"""End-to-end latency of `ecom stream` for scripts/bench-streaming.sh.

Usage:
  stream_latency.py sample --bootstrap B --topic T --url URL --target N --out FILE
                           [--pid PID] [--interval-ms 100] [--done-file F]
                           [--drain-timeout S] [--hard-timeout S]
      Samples, every interval, (a) the topic's total end offset over all partitions
      (KafkaConsumer.end_offsets: records produced and acknowledged) and (b) `orders` of the
      dashboard's GET /api/summary (records visible), plus the resident set (VmRSS, VmHWM)
      and CPU seconds of process PID (the stream). One TSV line per sample, flushed as it is
      taken, so the file is usable however the sampler ends. Stops when produced >= N and
      visible >= produced; when --done-file exists (the producer ended) and visible has not
      caught up within --drain-timeout; when PID exits; after --hard-timeout; or on SIGTERM.
  stream_latency.py analyze --samples FILE --stream-log FILE --stream-out FILE
                            --rate R --duration S --target N [--p99-limit S]
      Prints one JSON object: latency percentiles, lag in the first and the last window of
      the production, throughputs, the stream's own per-batch figures, peak RSS.
  stream_latency.py report RUN_DIR
      Prints the tables from RUN_DIR/meta.tsv and RUN_DIR/results.jsonl.

How latency is measured: the n-th record produced is matched with the n-th record visible
(counts, not ids: records of different partitions may become visible out of order, but the
distribution of the counting latency is the same as the per-record one whenever batches
commit whole, which the stage does). P(i) = first sample time at which produced >= i,
V(i) = first sample time at which visible >= i, latency(i) = V(i) - P(i). Each sample's time
is the midpoint of its request. Both series are step functions, so the latencies come as
runs of records sharing one (P, V) pair and the percentiles are weighted over those runs;
no per-record loop. Visible means visible through the dashboard, which polls the aggregates
every 200 ms: that poll is part of the measured latency, the 100 ms sampling adds up to one
interval of error to each of P and V (of both signs for the difference).

Standard library plus kafka-python (only `sample` needs it).
"""

import argparse
import bisect
import http.client
import json
import os
import re
import signal
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlparse

CLK_TCK = os.sysconf("SC_CLK_TCK")


# ---- sample ------------------------------------------------------------------------------


def proc_figures(pid):
    """(VmRSS kB, VmHWM kB, CPU seconds) of pid, or None if it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    kb = {}
    for line in status.splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            k, v = line.split(":", 1)
            kb[k] = int(v.split()[0])
    # Fields after the command name (which may hold spaces), 14 and 15 = utime, stime.
    rest = stat.rsplit(")", 1)[1].split()
    cpu = (int(rest[11]) + int(rest[12])) / CLK_TCK
    return kb.get("VmRSS", 0), kb.get("VmHWM", 0), cpu


def sample(args):
    from kafka import KafkaConsumer, TopicPartition

    stop = {"why": None}

    def on_term(signum, _frame):
        stop["why"] = f"signal {signum}"

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)

    consumer = KafkaConsumer(bootstrap_servers=args.bootstrap, request_timeout_ms=10_000)
    parts = None
    for _ in range(100):
        parts = consumer.partitions_for_topic(args.topic)
        if parts:
            break
        time.sleep(0.1)
    if not parts:
        sys.exit(f"stream_latency: topic {args.topic} has no partitions")
    tps = [TopicPartition(args.topic, p) for p in sorted(parts)]
    url = urlparse(args.url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=5)

    def visible():
        nonlocal conn
        try:
            conn.request("GET", url.path)
            resp = conn.getresponse()
            body = resp.read()
            if resp.status != 200:
                return None
            return int(json.loads(body)["orders"])
        except (OSError, http.client.HTTPException, ValueError, KeyError):
            conn.close()
            conn = http.client.HTTPConnection(url.hostname, url.port, timeout=5)
            return None

    interval = args.interval_ms / 1000
    start = time.time()
    hard_end = start + args.hard_timeout
    done_at = None  # when the producer's end was first seen
    last_p, last_v = 0, 0
    errors = 0
    with open(args.out, "w") as out:
        out.write("t_produced\tproduced\tt_visible\tvisible\trss_kb\thwm_kb\tcpu_s\n")
        tick = start
        while stop["why"] is None:
            t0 = time.time()
            ends = consumer.end_offsets(tps)
            t1 = time.time()
            v = visible()
            t2 = time.time()
            p = sum(ends.values())
            if v is None:
                errors += 1
                v = last_v
            last_p, last_v = max(last_p, p), max(last_v, v)
            fig = proc_figures(args.pid) if args.pid else (0, 0, 0.0)
            if fig is None:
                stop["why"] = f"process {args.pid} exited"
                fig = (0, 0, 0.0)
            out.write(f"{(t0 + t1) / 2:.4f}\t{last_p}\t{(t1 + t2) / 2:.4f}\t{last_v}\t"
                      f"{fig[0]}\t{fig[1]}\t{fig[2]:.2f}\n")
            out.flush()
            now = time.time()
            if last_p >= args.target and last_v >= last_p:
                stop["why"] = stop["why"] or "all visible"
            elif args.done_file and done_at is None and os.path.exists(args.done_file):
                done_at = now
            if done_at is not None and last_v >= last_p:
                stop["why"] = stop["why"] or "all visible (producer ended)"
            elif done_at is not None and now - done_at > args.drain_timeout:
                stop["why"] = stop["why"] or f"drain timeout ({args.drain_timeout:g} s)"
            if now > hard_end:
                stop["why"] = stop["why"] or f"hard timeout ({args.hard_timeout:g} s)"
            tick += interval
            if tick < now:  # behind: skip the missed ticks, keep the cadence
                tick = now + interval - ((now - start) % interval)
            if stop["why"] is None:
                time.sleep(max(0.0, tick - time.time()))
    consumer.close()
    print(json.dumps({"stopped": stop["why"], "produced": last_p, "visible": last_v,
                      "dashboard_errors": errors, "seconds": round(time.time() - start, 2)}))


# ---- analyze -----------------------------------------------------------------------------


def read_samples(path):
    rows = []
    lines = Path(path).read_text().splitlines()[1:]
    for line in lines:
        f = line.split("\t")
        if len(f) < 7:
            continue  # a line cut by a kill
        rows.append((float(f[0]), int(f[1]), float(f[2]), int(f[3]), int(f[4]), int(f[5]), float(f[6])))
    return rows


def steps(times, counts):
    """The step function of a monotone count: [(count after the step, time)], increases only."""
    out, prev = [], 0
    for t, c in zip(times, counts):
        if c > prev:
            out.append((c, t))
            prev = c
    return out


def first_time(step, i):
    """First sample time at which the count reached i (1-based), or None."""
    k = bisect.bisect_left(step, (i, float("-inf")))
    return step[k][1] if k < len(step) else None


def weighted_quantiles(segments, total, qs):
    """segments: [(value, weight)]; the smallest value whose cumulative weight >= q * total."""
    segments = sorted(segments)
    out, cum, k = {}, 0, 0
    for q in sorted(qs):
        need = max(1, q * total)
        while k < len(segments) and cum + segments[k][1] < need:
            cum += segments[k][1]
            k += 1
        out[q] = segments[min(k, len(segments) - 1)][0] if segments else None
    return out


def latency_segments(pstep, vstep, n):
    """Runs of records 1..n sharing (P, V): [(V - P, records)]."""
    segs, cur, a, b = [], 0, 0, 0
    while cur < n and a < len(pstep) and b < len(vstep):
        end = min(pstep[a][0], vstep[b][0], n)
        segs.append((max(0.0, vstep[b][1] - pstep[a][1]), end - cur))
        cur = end
        if pstep[a][0] == end:
            a += 1
        if vstep[b][0] == end:
            b += 1
    return segs


def pct(values, q):
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, max(0, int(round(q * len(s) + 0.5)) - 1))]


BATCH_RE = re.compile(r"micro-batch committed")
FIELD_RE = re.compile(r"(\w+)=(\S+)")
ANSI_RE = re.compile(r"\x1b\[[0-9;]*m")


TS_RE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?Z")


def log_time(line):
    """Epoch seconds of a tracing line's UTC timestamp, or None."""
    m = TS_RE.match(line)
    if not m:
        return None
    t = datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc).timestamp()
    return t + float(m.group(2) or 0)


# librdkafka's "reached end of partition" notices, which the stream logs at ERROR level:
# counted apart from the other WARN/ERROR lines.
EOF_RE = re.compile(r"PartitionEOF")


def stream_log(path):
    """(batches, other WARN/ERROR lines, PartitionEOF lines) of the stream's log."""
    batches, problems, eof = [], [], 0
    for line in Path(path).read_text(errors="replace").splitlines():
        line = ANSI_RE.sub("", line)
        if BATCH_RE.search(line):
            f = dict(FIELD_RE.findall(line.split("micro-batch committed", 1)[1]))
            b = {"t": log_time(line)}
            for k in ("records", "rows", "duplicates", "lag_ms", "raw_ms", "clean_ms", "dedup_ms", "load_ms"):
                try:
                    b[k] = int(f[k].strip("Some()"))
                except (KeyError, ValueError):
                    b[k] = None
            batches.append(b)
        elif EOF_RE.search(line):
            eof += 1
        elif re.search(r"\b(WARN|ERROR)\b", line):
            problems.append(line.strip())
    return batches, problems, eof


def window_stats(rows, pstep, lo, hi):
    """Mean and max lag (records, seconds) over the samples whose time is in [lo, hi]."""
    rec, sec = [], []
    for tp, p, tv, v, *_ in rows:
        if lo <= tv <= hi:
            rec.append(max(0, p - v))
            if v < p:
                t_oldest = first_time(pstep, v + 1)
                sec.append(max(0.0, tv - t_oldest) if t_oldest is not None else 0.0)
            else:
                sec.append(0.0)
    if not rec:
        return None
    return {"mean_records": round(sum(rec) / len(rec)), "max_records": max(rec),
            "mean_s": round(sum(sec) / len(sec), 2), "max_s": round(max(sec), 2), "samples": len(rec)}


def analyze(args):
    rows = read_samples(args.samples)
    res = {"rate": args.rate, "duration_s": args.duration, "target": args.target}
    if not rows:
        res["error"] = "no samples"
        print(json.dumps(res))
        return
    pstep = steps([r[0] for r in rows], [r[1] for r in rows])
    vstep = steps([r[2] for r in rows], [r[3] for r in rows])
    produced = pstep[-1][0] if pstep else 0
    visible = vstep[-1][0] if vstep else 0
    n = min(produced, visible)
    res.update(produced=produced, visible=visible, samples=len(rows),
               sample_interval_ms=round(1000 * (rows[-1][0] - rows[0][0]) / max(1, len(rows) - 1), 1))
    if n:
        segs = latency_segments(pstep, vstep, n)
        q = weighted_quantiles(segs, n, [0.5, 0.95, 0.99])
        res["latency_s"] = {"p50": round(q[0.5], 3), "p95": round(q[0.95], 3), "p99": round(q[0.99], 3),
                            "max": round(max(s[0] for s in segs), 3),
                            "mean": round(sum(v * w for v, w in segs) / n, 3)}
    if produced:
        t_first, t_last = first_time(pstep, 1), first_time(pstep, produced)
        res["produce_s"] = round(t_last - t_first, 2)
        res["produced_per_s"] = round((produced - 1) / (t_last - t_first)) if t_last > t_first else None
        if visible:
            t_vis = first_time(vstep, visible)
            res["visible_per_s"] = round(visible / (t_vis - t_first)) if t_vis > t_first else None
            res["drain_s"] = round(t_vis - t_last, 2) if visible >= produced else None
        # Lag in the first and the last window of the production (a minute, or a third of
        # it when shorter, so the two never overlap).
        w = min(60.0, (t_last - t_first) / 3)
        res["window_s"] = round(w, 1)
        res["lag_first"] = window_stats(rows, pstep, t_first, t_first + w)
        res["lag_last"] = window_stats(rows, pstep, t_last - w, t_last)
        f, l = res["lag_first"], res["lag_last"]
        if f and l:
            # Growing: the last window's mean age of the oldest invisible record is larger than
            # the first's by more than 2 s and by more than half.
            res["lag_grows"] = l["mean_s"] > f["mean_s"] + max(2.0, 0.5 * f["mean_s"])
    hwm = [r[5] for r in rows if r[5]]
    res["stream_peak_rss_mib"] = round(max(hwm) / 1024, 1) if hwm else None
    cpu = [r[6] for r in rows if r[6]]
    res["stream_cpu_s"] = round(cpu[-1] - cpu[0], 1) if len(cpu) > 1 else None
    batches, problems, eof = stream_log(args.stream_log)
    # Commit -> visible: for each batch, from its `micro-batch committed` line to the first
    # sample at which the dashboard showed its cumulative rows (the dashboard's poll and
    # refresh, plus up to one sampling interval).
    delays, cum = [], 0
    for b in batches:
        cum += b["rows"] or 0
        tv = first_time(vstep, cum) if cum else None
        if b["t"] is not None and tv is not None:
            delays.append(tv - b["t"])
    res["commit_to_visible_s"] = {"p50": round(pct(delays, 0.5), 2), "max": round(max(delays), 2)} if delays else None
    res["stream_partition_eof_lines"] = eof
    lags = [b["lag_ms"] for b in batches if b["lag_ms"] is not None]
    res["stream_batches_logged"] = len(batches)
    res["batch_lag_ms"] = {"p50": pct(lags, 0.5), "p99": pct(lags, 0.99), "max": max(lags) if lags else None}
    big = [b for b in batches if b["records"]]
    if big:
        def mean(k):
            vals = [b[k] for b in big if b[k] is not None]
            return round(sum(vals) / len(vals)) if vals else None
        res["batch_mean"] = {k: mean(k) for k in ("records", "raw_ms", "clean_ms", "dedup_ms", "load_ms")}
        res["batch_p99"] = {k: pct([b[k] for b in big if b[k] is not None], 0.99)
                            for k in ("records", "raw_ms", "clean_ms", "dedup_ms", "load_ms")}
    # The cost of a batch against its place in the history: the first 10 batches against the
    # 10 ending at batch 500 (or the last 10 when there are fewer), per record (batches differ
    # in size). A duplicate check whose cost grew with the batches before would show here.
    if len(big) >= 30:
        end = min(500, len(big))
        early, late = big[:10], big[end - 10:end]
        def per_k(rows, k):
            vals = [b[k] * 1000.0 / b["records"] for b in rows if b[k] is not None]
            return round(sum(vals) / len(vals), 3) if vals else None
        res["history_cost"] = {
            "late_batches": f"{end - 9}-{end}",
            **{f"{k}_per_1k_early": per_k(early, k) for k in ("dedup_ms", "clean_ms")},
            **{f"{k}_per_1k_late": per_k(late, k) for k in ("dedup_ms", "clean_ms")},
        }
    res["stream_problems"] = problems[:20]
    res["stream_problem_lines"] = len(problems)
    try:
        last = Path(args.stream_out).read_text().strip().splitlines()[-1]
        res["stream_summary"] = json.loads(last)
    except (OSError, IndexError, ValueError):
        res["stream_summary"] = None
    # Bounded: everything became visible, p99 within the limit, the lag did not grow.
    reasons = []
    if visible < produced or not produced:
        reasons.append(f"{produced - visible} records never visible")
    if "latency_s" in res and res["latency_s"]["p99"] > args.p99_limit:
        reasons.append(f"p99 {res['latency_s']['p99']} s > {args.p99_limit:g} s")
    if res.get("lag_grows"):
        reasons.append("lag grows")
    if res.get("produced_per_s") and res["produced_per_s"] < 0.9 * args.rate:
        reasons.append(f"producer reached only {res['produced_per_s']}/s")
    res["bounded"] = not reasons
    res["reasons"] = reasons
    print(json.dumps(res))


# ---- report ------------------------------------------------------------------------------


def fmt(v, spec=".2f"):
    return "-" if v is None else format(v, spec)


def report(args):
    run = Path(args.run)
    meta = dict(l.split("\t", 1) for l in (run / "meta.tsv").read_text().splitlines() if "\t" in l)
    results = [json.loads(l) for l in (run / "results.jsonl").read_text().splitlines() if l.strip()]
    print()
    print(f"Streaming benchmark, `ecom stream` --batch-interval {meta.get('batch_interval')}, "
          f"{meta.get('date')}, {meta.get('nproc')} CPUs ({meta.get('cpu')}),")
    print(f"load average {meta.get('load_start')} at start, {meta.get('load_end', '?')} at end, "
          f"commit {meta.get('commit')}{' (dirty worktree)' if meta.get('dirty') == '1' else ''}")
    print()
    print("| rate/s | records | produced/s | visible/s | p50 s | p95 s | p99 s | max s "
          "| lag first -> last window (mean s; mean records) | drain s | batches | batch lag_ms p50/p99 "
          "| peak RSS MiB | stream CPU-s | bounded |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---|---:|---:|---|")
    for r in results:
        lat = r.get("latency_s") or {}
        f, l = r.get("lag_first"), r.get("lag_last")
        lag = (f"{f['mean_s']} -> {l['mean_s']} ({r.get('window_s')} s windows); "
               f"{f['mean_records']:,} -> {l['mean_records']:,}") if f and l else "-"
        bl = r.get("batch_lag_ms") or {}
        summ = r.get("stream_summary") or {}
        batches = summ.get("detail", {}).get("batches", summ.get("batches")) if summ else None
        nb = f"{batches if batches is not None else '?'} ({r.get('stream_batches_logged')} logged)"
        recs = f"{r.get('visible', 0):,}/{r.get('produced', 0):,}"
        verdict = "yes" if r.get("bounded") else "no: " + "; ".join(r.get("reasons") or [r.get("error", "?")])
        print(f"| {r['rate']:,} | {recs} | {fmt(r.get('produced_per_s'), ',')} | {fmt(r.get('visible_per_s'), ',')} "
              f"| {fmt(lat.get('p50'))} | {fmt(lat.get('p95'))} | {fmt(lat.get('p99'))} | {fmt(lat.get('max'))} "
              f"| {lag} | {fmt(r.get('drain_s'))} | {nb} | {fmt(bl.get('p50'), 'd')}/{fmt(bl.get('p99'), 'd')} "
              f"| {fmt(r.get('stream_peak_rss_mib'), '.0f')} | {fmt(r.get('stream_cpu_s'), '.0f')} | {verdict} |")
    print()
    print("Micro-batches (from the stream's `micro-batch committed` lines), mean / p99:")
    print()
    print("| rate/s | records/batch | raw_ms | clean_ms | of which dedup_ms | load_ms "
          "| commit -> visible s (p50/max) | PartitionEOF ERROR lines | other WARN/ERROR lines |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        m, p = r.get("batch_mean") or {}, r.get("batch_p99") or {}
        cell = lambda k: f"{fmt(m.get(k), ',')} / {fmt(p.get(k), ',')}"  # noqa: E731
        cv = r.get("commit_to_visible_s") or {}
        print(f"| {r['rate']:,} | {cell('records')} | {cell('raw_ms')} | {cell('clean_ms')} | {cell('dedup_ms')} "
              f"| {cell('load_ms')} | {fmt(cv.get('p50'))}/{fmt(cv.get('max'))} "
              f"| {r.get('stream_partition_eof_lines', 0)} | {r.get('stream_problem_lines', 0)} |")
    costs = [r for r in results if r.get("history_cost")]
    if costs:
        print()
        print("Cost of a micro-batch early and late in the run (ms per 1,000 records; batches 1-10 "
              "against the 10 ending at batch 500, or the last 10):")
        print()
        print("| rate/s | late batches | dedup early | dedup late | clean early | clean late | clean late/early |")
        print("|---:|---:|---:|---:|---:|---:|---:|")
        for r in costs:
            h = r["history_cost"]
            ce, cl = h.get("clean_ms_per_1k_early"), h.get("clean_ms_per_1k_late")
            ratio = f"{cl / ce:.2f}x" if ce and cl else "-"
            print(f"| {r['rate']:,} | {h['late_batches']} | {fmt(h.get('dedup_ms_per_1k_early'), '.3f')} "
                  f"| {fmt(h.get('dedup_ms_per_1k_late'), '.3f')} | {fmt(ce, '.1f')} | {fmt(cl, '.1f')} | {ratio} |")
    print()
    print("Services' CPU seconds while each rate ran (stream start -> stream exit), and the sampler's "
          "actual mean interval:")
    print()
    for r in results:
        svc = ", ".join(f"{k} {v:g}" for k, v in (r.get("services_cpu_s") or {}).items())
        print(f"- {r['rate']:,}/s: {svc or '-'}; stream {fmt(r.get('stream_cpu_s'), '.1f')}; "
              f"sampling every {r.get('sample_interval_ms')} ms")
    print()
    print("records = visible/produced. Latency = time a record became visible on the dashboard "
          "(/api/summary orders) minus the time the topic's end offsets first counted it; "
          "lag = age of the oldest record not yet visible, in the first and the last window of "
          "the production. drain = last record produced -> all visible.")
    if meta.get("mode") == "max":
        bounded = [r["rate"] for r in results if r.get("bounded")]
        first_bad = next((r for r in results if not r.get("bounded")), None)
        print()
        if bounded:
            print(f"Highest sustainable rate: {max(bounded):,} records/s "
                  f"(p99 <= {meta.get('p99_limit')} s, lag not growing, all visible)")
        else:
            print("No rate tried stayed bounded.")
        if first_bad:
            print(f"First unbounded: {first_bad['rate']:,}/s: {'; '.join(first_bad.get('reasons') or [])}")
    for r in results:
        for line in (r.get("stream_problems") or [])[:5]:
            print(f"stream at {r['rate']:,}/s: {line[:300]}")


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("sample")
    s.add_argument("--bootstrap", required=True)
    s.add_argument("--topic", required=True)
    s.add_argument("--url", required=True)
    s.add_argument("--target", type=int, required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--pid", type=int)
    s.add_argument("--interval-ms", type=float, default=100)
    s.add_argument("--done-file")
    s.add_argument("--drain-timeout", type=float, default=120)
    s.add_argument("--hard-timeout", type=float, default=3600)
    a = sub.add_parser("analyze")
    a.add_argument("--samples", required=True)
    a.add_argument("--stream-log", required=True)
    a.add_argument("--stream-out", required=True)
    a.add_argument("--rate", type=int, required=True)
    a.add_argument("--duration", type=int, required=True)
    a.add_argument("--target", type=int, required=True)
    a.add_argument("--p99-limit", type=float, default=10)
    r = sub.add_parser("report")
    r.add_argument("run")
    args = ap.parse_args()
    {"sample": sample, "analyze": analyze, "report": report}[args.cmd](args)


if __name__ == "__main__":
    main()
