"""Prints the tables of scripts/bench-pipeline.sh from a run directory.

Usage: report_pipeline.py RUN_DIR

Reads RUN_DIR/meta.tsv and RUN_DIR/results.tsv (pipeline, stage, seconds, rows, peak
RSS KiB, client CPU-s, whole-process wall s, Kafka, HDFS, HBase and Thrift CPU-s,
note). Prints the stages side by side with the ratio seed / ecom (above 1 = ecom
faster), where each stage's resources went, and the row-count checks. Exits 2 if a
count differs from what it must be. Standard library only.
"""

import sys
from pathlib import Path

STAGES = [
    ("produce", "ecom produce | kafka-python producer"),
    ("sink", "ecom sink --until-caught-up | kafka-python consumer -> WebHDFS batch files"),
    ("clean", "ecom clean (full rules) | PySpark local[*] cold, CSV out"),
    ("load", "ecom load (creates its table) | happybase, batch 2000"),
]
COLUMNS = ["pipeline", "stage", "seconds", "rows", "rss_kib", "cpu", "wall", "kafka", "hdfs", "hbase", "thrift", "note"]


def main():
    run = Path(sys.argv[1])
    meta = dict(line.split("\t", 1) for line in (run / "meta.tsv").read_text().splitlines() if line)
    res = {}
    for line in (run / "results.tsv").read_text().splitlines():
        if not line:
            continue
        row = dict(zip(COLUMNS, (line.split("\t") + [""] * len(COLUMNS))[: len(COLUMNS)]))
        res[(row["pipeline"], row["stage"])] = row

    print()
    print(f"Pipeline benchmark, {int(meta['rows']):,} rows, {meta['date']}, {meta['nproc']} CPUs ({meta['cpu']}),")
    print(f"load average {meta['load_start']} at start, {meta.get('load_end', '?')} at end, commit {meta['commit']},")
    print(f"services {meta['services']}, {meta['first']} pipeline first, seed consumer {meta['seed_batch']} records per file")
    print()
    print("| stage | ecom s | seed s | seed / ecom |")
    print("|---|---:|---:|---:|")
    total = {"ecom": 0.0, "seed": 0.0}
    for stage, _ in STAGES:
        e, s = res.get(("ecom", stage)), res.get(("seed", stage))
        if not e or not s:
            continue
        es, ss = float(e["seconds"]), float(s["seconds"])
        total["ecom"] += es
        total["seed"] += ss
        print(f"| {stage} | {es:.2f} | {ss:.2f} | {ss / es:.1f}x |")
    if total["ecom"] > 0:
        print(f"| **total** | **{total['ecom']:.2f}** | **{total['seed']:.2f}** | **{total['seed'] / total['ecom']:.1f}x** |")
    print()
    for stage, what in STAGES:
        print(f"  {stage}: {what}")
    print("  seconds: whole process (/usr/bin/time), except the Spark step: process start -> CSV written")
    print()

    print("| pipeline | stage | seconds | peak RSS MiB | client CPU-s | Kafka CPU-s | NameNode+DataNode CPU-s | HBase CPU-s | Thrift CPU-s | rows | note |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for pipeline in ("ecom", "seed"):
        for stage, _ in STAGES:
            r = res.get((pipeline, stage))
            if not r:
                continue
            spark = pipeline == "seed" and stage == "clean"
            rss = f"{int(r['rss_kib']) / 1024:,.0f}" + (" (python+JVM)" if spark else "")
            cpu = "n/a (JVM not reaped)" if spark else r["cpu"]
            print(
                f"| {pipeline} | {stage} | {float(r['seconds']):.2f} | {rss} | {cpu} | {r['kafka']} | {r['hdfs']} | "
                f"{r['hbase']} | {r['thrift']} | {int(r['rows']):,} | {r['note']} |"
            )
    print()

    problems = check_counts(meta, res)
    if problems:
        print()
        for p in problems:
            print(f"!!! ROW COUNT MISMATCH: {p}")
        sys.exit(2)


def check_counts(meta, res):
    """Prints every row count against what it must be; returns the mismatches."""
    n = int(meta["data_rows"])
    problems = []

    def rows(pipeline, stage):
        r = res.get((pipeline, stage))
        return int(r["rows"]) if r else None

    def check(what, got, want):
        if got is None:
            return
        ok = got == want
        print(f"  {'ok      ' if ok else 'MISMATCH'} {what}: {got:,} (must be {want:,})")
        if not ok:
            problems.append(f"{what}: {got:,}, must be {want:,}")

    def note_field(stage, prefix):
        r = res.get(("seed", stage)) or {}
        for part in r.get("note", "").split(", "):
            if part.endswith(prefix):
                return int(part.split()[0])
        return None

    print(f"Row counts ({n:,} data rows generated):")
    check("ecom topic records (end offsets)", int(meta.get("ecom_topic_records", -1)), n)
    check("seed topic records (end offsets)", int(meta.get("seed_topic_records", -1)), n)
    check("ecom produce delivered", rows("ecom", "produce"), n)
    check("seed producer sent", rows("seed", "produce"), n)
    check("ecom sink records in raw files", rows("ecom", "sink"), n)
    check("seed consumer records in batch files", rows("seed", "sink"), n)
    files = note_field("sink", "files")
    if files is not None:
        check("seed batch files", files, int(meta["seed_first_records"]))
        # header=True drops the first line of each file: what Spark read is n less one per file.
        check("seed Spark rows read (header=True)", int(meta["seed_clean_rows_in"]), n - files)
    check("ecom clean rows_out (full rules) = generator's truth", rows("ecom", "clean"), int(meta["truth_full_rows_out"]))
    seed_want = int(meta["truth_seed_rows_out"]) - int(meta["seed_first_records_surviving"])
    check(
        f"seed Spark rows_out = truth {int(meta['truth_seed_rows_out']):,} less the "
        f"{int(meta['seed_first_records_surviving']):,} surviving first records of its files",
        rows("seed", "clean"),
        seed_want,
    )
    check("ecom load rows = ecom clean rows_out", rows("ecom", "load"), rows("ecom", "clean"))
    check("ecom HBase table rows (key-only scan) = ecom clean rows_out", int(meta.get("ecom_table_rows", -1)),
          rows("ecom", "clean"))
    check("seed loader rows = Spark rows_out", rows("seed", "load"), rows("seed", "clean"))
    check("seed HBase table rows (key-only scan) = distinct order ids of Spark's output",
          int(meta.get("seed_table_rows", -1)), int(meta["seed_clean_distinct_ids"]))
    e, s = int(meta.get("ecom_table_rows", 0)), int(meta.get("seed_table_rows", 0))
    print(f"  rows in HBase: ecom {e:,}, seed {s:,} (differ by design: ecom's full rules also drop duplicates,")
    print("  non-positive amounts, bad timestamps, unknown values, bad UTF-8, ragged lines; the seed keeps those,")
    print("  loses the first record of each batch file, and its repeated order ids overwrite one row)")
    return problems


if __name__ == "__main__":
    main()
