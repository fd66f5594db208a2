"""Prints the table of scripts/bench-stages.sh from a run directory.

Usage: report_stages.py RUN_DIR

Reads RUN_DIR/meta.tsv and RUN_DIR/results.tsv (name, round, seconds, rows seen,
note). Keeps each tool's best round, prints rows/s and ecom's ratio to each peer,
checks the row counts and the targets. Standard library only.
"""

import sys
from pathlib import Path

# stage -> (ecom tool, [(peer, target ratio or None)], numerator meta key)
STAGES = {
    "produce": ("produce-ecom", [("produce-kcat", 1.0), ("produce-kafka-python", None)], "data_rows"),
    "clean": (
        "clean-ecom-seed-compat",
        [("clean-pyspark-cold", None), ("clean-pyspark-warm", 5.0), ("clean-pyspark-warm-by-date", 5.0)],
        "data_rows",
    ),
    "load": ("load-ecom", [("load-happybase", 3.0)], "load_rows"),
}
HOW = {
    "produce-ecom": "whole process",
    "produce-kcat": "whole process",
    "produce-kafka-python": "producer created -> flush() returned",
    "clean-ecom-seed-compat": "whole process (HDFS in, HDFS out)",
    "clean-pyspark-cold": "process start -> Parquet on HDFS",
    "clean-pyspark-warm": "best timed run in one session; the seed's write: 2 files, no partitions",
    "clean-pyspark-warm-by-date": "best timed run in one session; partitionBy(date): ecom's layout",
    "load-ecom": "whole process (reads Parquet from HDFS)",
    "load-happybase": "connect -> last batch sent (Parquet read before)",
}


def main():
    run = Path(sys.argv[1])
    meta = dict(line.split("\t", 1) for line in (run / "meta.tsv").read_text().splitlines() if line)
    best, rows_seen, notes = {}, {}, {}
    for line in (run / "results.tsv").read_text().splitlines():
        name, rnd, secs, rows, note = (line.split("\t") + [""] * 5)[:5]
        s = float(secs)
        rows_seen.setdefault(name, set()).add(rows)
        if name not in best or s < best[name][0]:
            best[name] = (s, int(rnd))
            notes[name] = note
    print()
    print(f"Stages benchmark, {meta['rows']} rows, {meta['date']}, {meta['nproc']} CPUs ({meta['cpu']}),")
    print(f"load average {meta['load_start']} at start, {meta.get('load_end', '?')} at end, commit {meta['commit']}")
    print()
    print(f"| stage | tool | seconds (best) | rows/s | ecom / tool | target | how timed | rows seen |")
    print("|---|---|---:|---:|---:|---|---|---|")
    verdicts = []
    for stage, (ecom, peers, key) in STAGES.items():
        n = int(meta[key])
        if ecom not in best:
            continue
        e_rate = n / best[ecom][0]
        for tool, target in [(ecom, None)] + peers:
            if tool not in best:
                continue
            s = best[tool][0]
            rate = n / s
            ratio = e_rate / rate
            met = ""
            if target is not None:
                met = f">= {target:g}x: {'MET' if ratio >= target else 'NOT MET'}"
                verdicts.append(f"{stage}: ecom / {tool} = {ratio:.2f}x, target >= {target:g}x: "
                                f"{'MET' if ratio >= target else 'NOT MET'}")
            seen = ",".join(sorted(rows_seen[tool]))
            note = f" ({notes[tool]})" if notes[tool] else ""
            print(f"| {stage} | {tool} | {s:.2f} | {rate:,.0f} | {ratio:.2f}x | {met} | {HOW[tool]}{note} | {seen} |")
    print()
    print(f"rows/s numerators: produce and clean = {meta['data_rows']} data rows; "
          f"load = {meta['load_rows']} clean rows ({meta['clean_partitions']} date partitions)")
    print(f"raw files on HDFS: {meta['raw_files']} (PySpark's header=True drops the first record of each, "
          "the seed's behaviour, so its rows_out may be lower by up to that many)")
    for v in verdicts:
        print(v)


if __name__ == "__main__":
    main()
