"""Prints the table of scripts/bench-clean.sh from a run directory.

Usage: report.py RUN_DIR

Reads RUN_DIR/meta.tsv (machine, file), RUN_DIR/results.tsv (one line per run: name,
round, wall seconds and peak RSS from /usr/bin/time, the tool's JSON line) and
RUN_DIR/parquet_rows.tsv (rows counted in each output). Standard library only.
"""

import json
import sys
from pathlib import Path

TARGET_PYSPARK_WARM = 5.0
TARGET_POLARS = 1.0
TARGET_RSS_BYTES = 2_000_000_000  # "2 GB", read strictly as 2 * 10^9 bytes
TARGET_RSS_ROWS = 10_000_000

# name -> (label, how seconds are taken, how peak RSS is taken)
TOOLS = {
    "ecom-seed-compat": ("ecom clean --seed-compat", "whole process", "process"),
    "ecom-full": ("ecom clean (full rules)", "whole process", "process"),
    "polars-eager": ("polars-python read_csv", "read->write, import excl.", "process"),
    "polars-lazy": ("polars-python scan/sink", "read->write, import excl.", "process"),
    "pyspark-cold": ("PySpark local[*] cold", "process start->written", "python+JVM"),
    "pyspark-warm": ("PySpark local[*] warm", "2nd+ run, same session", "python+JVM"),
}
SEED_PEERS = ["polars-eager", "polars-lazy", "pyspark-cold", "pyspark-warm"]


def read_tsv(path: Path) -> list[list[str]]:
    if not path.exists():
        return []
    return [line.split("\t") for line in path.read_text().splitlines() if line]


def main() -> None:
    run = Path(sys.argv[1])
    meta = {k: v for k, v in (row[:2] for row in read_tsv(run / "meta.tsv"))}
    rows = int(meta["rows"])
    truth = json.loads(meta.get("truth") or "{}")
    counted = {name: n for name, n in read_tsv(run / "parquet_rows.tsv")}

    runs: dict[str, list[dict]] = {}
    for name, rnd, wall, rss, js in read_tsv(run / "results.tsv"):
        data = json.loads(js)
        runs.setdefault(name, []).append(
            {"round": int(rnd), "wall": float(wall), "rss_kib": int(rss), "json": data}
        )

    results = {}
    for name, rs in runs.items():
        if name.startswith("ecom"):
            best = min(rs, key=lambda r: r["wall"])
            seconds = best["wall"]
            rss = max(r["rss_kib"] for r in rs)
            note = f"report elapsed_ms best {min(r['json'].get('elapsed_ms', 0) for r in rs)}"
        elif name.startswith("polars"):
            best = min(rs, key=lambda r: r["json"]["seconds"])
            seconds = best["json"]["seconds"]
            rss = max(r["rss_kib"] for r in rs)
            note = f"whole process {min(r['wall'] for r in rs):.2f} s"
        else:  # pyspark
            best = min(rs, key=lambda r: r["json"]["seconds"])
            seconds = best["json"]["seconds"]
            rss = max(r["json"]["rss_tree_hwm_kib"] for r in rs)
            sampled = max(r["json"]["rss_tree_sampled_kib"] for r in rs)
            largest = max(r["rss_kib"] for r in rs)
            note = (
                f"RSS sampled sum {sampled / 1024:.0f} MiB, /usr/bin/time {largest / 1024:.0f} MiB"
                " (python only: it never reaps the JVM)"
            )
            if name == "pyspark-cold":
                note += f"; whole process incl. counts+stop {min(r['wall'] for r in rs):.1f} s"
            else:
                note += f"; warm-up {best['json'].get('warmup_seconds')} s, runs {best['json'].get('runs')}"
        results[name] = {
            "seconds": seconds,
            "rows_s": rows / seconds if seconds > 0 else float("inf"),
            "rss_kib": rss,
            "rows_in": [r["json"].get("rows_in") for r in rs],
            "rows_out": [r["json"].get("rows_out") for r in rs],
            "note": note,
            "json": best["json"],
            "n": len(rs),
        }

    print()
    print(
        f"Cleaning benchmark: {rows:,} data rows, {int(meta['bytes']) / 1e6:.1f} MB, "
        f"one file for every tool: {meta['data']}"
    )
    print(
        f"machine: {meta['nproc']} CPUs ({meta['cpu']}), "
        f"{int(meta['mem_total_kib']) / 1048576:.1f} GiB; load average "
        f"{meta.get('loadavg_start')} at start, {meta.get('loadavg_end')} at end; "
        f"best of {meta['repeat']} runs; {meta['date']}"
    )
    print()
    base = results.get("ecom-seed-compat")
    full = results.get("ecom-full")
    header = (
        f"{'tool':<26} {'seconds':>8} {'rows/s':>12} {'peak RSS':>10} "
        f"{'ecom-seed/x':>11} {'ecom-full/x':>11} {'rows_out':>10}  timing; RSS; notes"
    )
    print(header)
    print("-" * len(header))
    for name, (label, timing, rss_how) in TOOLS.items():
        r = results.get(name)
        if r is None:
            continue
        ratio = f"{base['rows_s'] / r['rows_s']:.2f}x" if base else "-"
        ratio_full = f"{full['rows_s'] / r['rows_s']:.2f}x" if full else "-"
        print(
            f"{label:<26} {r['seconds']:>8.2f} {r['rows_s']:>12,.0f} "
            f"{r['rss_kib'] / 1024:>7.0f} MiB {ratio:>11} {ratio_full:>11} "
            f"{r['rows_out'][-1]:>10,}  {timing}; {rss_how}; {r['note']}"
        )
    print()
    print("ratios: ecom rows/s divided by that tool's rows/s (above 1 = ecom faster)")

    # ---- checks -------------------------------------------------------------
    warnings = []
    for name, r in results.items():
        for rin in r["rows_in"]:
            if rin != rows:
                warnings.append(f"{name}: rows_in {rin} but the file holds {rows} data rows")
        if len(set(r["rows_out"])) > 1:
            warnings.append(f"{name}: rows_out differs between runs: {r['rows_out']}")
        if name in counted and str(r["rows_out"][-1]) != counted[name]:
            warnings.append(
                f"{name}: says rows_out {r['rows_out'][-1]} but its Parquet holds {counted[name]} rows"
            )
    if base:
        ref = base["rows_out"][-1]
        for name in SEED_PEERS:
            for got in sorted(set(results[name]["rows_out"]) if name in results else ()):
                if got != ref:
                    warnings.append(
                        f"rows_out mismatch: {name} {got} vs ecom --seed-compat {ref} "
                        f"(difference {got - ref:+})"
                    )
        exp = truth.get("seed_compat", {}).get("rows_out")
        if exp is not None and exp != ref:
            warnings.append(f"ecom --seed-compat rows_out {ref} vs generator ground truth {exp}")
    if full:
        exp = truth.get("full", {}).get("rows_out")
        if exp is not None and exp != full["rows_out"][-1]:
            warnings.append(f"ecom full rows_out {full['rows_out'][-1]} vs generator ground truth {exp}")
    print()
    if warnings:
        for w in warnings:
            print(f"WARNING: {w}")
    else:
        peers = [n for n in SEED_PEERS if n in results]
        agree = " = ".join(["ecom --seed-compat", *peers, "ground truth"])
        print(
            f"rows check: every tool read all {rows:,} rows; rows_out agree ({agree}); "
            "each output's Parquet holds the rows its tool reported"
        )

    # ---- targets ------------------------------------------------------------
    print()
    print("targets:")
    if base and "pyspark-warm" in results:
        x = base["rows_s"] / results["pyspark-warm"]["rows_s"]
        ok = "MET" if x >= TARGET_PYSPARK_WARM else "NOT MET"
        print(f"  >= {TARGET_PYSPARK_WARM}x warm PySpark rows/s: {x:.2f}x  {ok}")
    if base and "polars-eager" in results:
        x = base["rows_s"] / results["polars-eager"]["rows_s"]
        ok = "MET" if x >= TARGET_POLARS else "NOT MET"
        print(f"  >= {TARGET_POLARS}x polars-python rows/s (read_csv): {x:.2f}x  {ok}")
        if "polars-lazy" in results:
            y = base["rows_s"] / results["polars-lazy"]["rows_s"]
            print(f"     (against polars-python scan_csv/sink_parquet: {y:.2f}x)")
    for name in ("ecom-seed-compat", "ecom-full"):
        if name in results:
            b = results[name]["rss_kib"] * 1024
            ok = "MET" if b < TARGET_RSS_BYTES else "NOT MET"
            if rows < TARGET_RSS_ROWS:
                ok = f"(at {rows:,} rows; the target is for {TARGET_RSS_ROWS:,}: ROWS=10000000 BENCH_ONLY_ECOM=1)"
            print(f"  peak RSS < 2 GB, {name}: {b / 1e9:.3f} GB ({b / 2**20:.0f} MiB)  {ok}")


if __name__ == "__main__":
    main()
