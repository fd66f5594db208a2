"""Peer of `ecom clean --seed-compat` for scripts/bench-clean.sh: the seed's Spark
cleaning step, run by PySpark in local mode.

Exactly the seed's semantics: read the TSV with header=True, sep='\\t' and the typed
schema (amount a double, the other six columns strings), na.drop(), replace
`Credit Car` and `Debit Car` in payment_method, write Parquet (Spark's default
snappy compression).

Usage: clean_pyspark.py INPUT.tsv OUTPUT_DIR --mode cold|warm [--repeat N] [--partition-by-date] [--csv]

  --partition-by-date  write the same layout as `ecom clean` on HDFS: one directory
        `date=YYYY-MM-DD` per day of the timestamp (its first 10 characters), through
        Spark's `partitionBy`. Without it, the seed's unpartitioned write.
  --csv  write CSV with a header line (`df.write.csv(dst, header=True)`), the file
        format the seed's step hands to its HBase loader (scripts/bench-pipeline.sh).
        The seed's last line, `hbase_data.write.csv("hdfs://.../tmp/", header=True)`,
        calls `write` on the RDD of its `to_hbase` tuples, which has no `write`; what
        its loader reads is the cleaned rows' seven columns in order, with a header, so
        this writes the cleaned DataFrame that way. Without it, Parquet.

  cold  one run in this fresh process. `seconds` runs from the start of the process
        (the kernel's start time of this Python process, so interpreter start-up,
        the JVM launch and the SparkSession are included) to the Parquet written.
  warm  one untimed warm-up run in this SparkSession, then N timed runs (default 1)
        in the same session; `seconds` is the best timed run, `runs` all of them.

rows_in and rows_out are counted after the timed part (rows_in from a separate typed
read, rows_out from the written output) so the counting costs the peer nothing; with
--csv also `distinct_order_ids` of the output (the rows its HBase table will hold).

Memory: the driver is a Python process plus the JVM it launches (its child). The
JSON reports, in KiB, `rss_tree_hwm_kib` = the sum of each process's peak RSS
(VmHWM; for warm, reset through /proc/PID/clear_refs before the timed runs), an upper
bound of their simultaneous peak, and `rss_tree_sampled_kib` = the largest sum of
their current RSS seen by a 20 Hz sampler, a lower bound of it.

Prints one JSON line.
"""

import os

# First: the wall clock when this process started (for the cold timing).
_CLK_TCK = os.sysconf("SC_CLK_TCK")


def _process_start_wall() -> float:
    import time

    with open("/proc/self/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    start_ticks = int(fields[19])  # field 22 of stat: starttime, in clock ticks since boot
    with open("/proc/uptime") as f:
        uptime = float(f.read().split()[0])
    return time.time() - (uptime - start_ticks / _CLK_TCK)


PROCESS_START = _process_start_wall()

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402

from pyspark.sql import SparkSession  # noqa: E402
from pyspark.sql.functions import substring  # noqa: E402
from pyspark.sql.types import DoubleType, StringType, StructField, StructType  # noqa: E402

SCHEMA = StructType(
    [
        StructField("order_id", StringType(), True),
        StructField("user_id", StringType(), True),
        StructField("category", StringType(), True),
        StructField("amount", DoubleType(), True),
        StructField("payment_method", StringType(), True),
        StructField("status", StringType(), True),
        StructField("timestamp", StringType(), True),
    ]
)


def read(spark, src):
    return spark.read.csv(src, header=True, sep="\t", schema=SCHEMA)


def clean(spark, src, dst, by_date=False, as_csv=False):
    """The seed's step, timed; returns seconds."""
    start = time.time()
    df = read(spark, src)
    df = df.na.drop()
    df = df.replace({"Credit Car": "Credit Card", "Debit Car": "Debit Card"}, subset=["payment_method"])
    if as_csv:
        df.write.mode("overwrite").csv(dst, header=True)
    elif by_date:
        df.withColumn("date", substring("timestamp", 1, 10)).write.mode("overwrite").partitionBy(
            "date"
        ).parquet(dst)
    else:
        df.write.mode("overwrite").parquet(dst)
    return time.time() - start


# ---- memory of the driver process tree (this Python process and its descendants) ----


def tree_pids(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def status_kib(pid: int, key: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def reset_hwm(pids):
    for pid in pids:
        try:
            with open(f"/proc/{pid}/clear_refs", "w") as f:
                f.write("5")
        except OSError:
            pass


class Sampler(threading.Thread):
    def __init__(self, pids):
        super().__init__(daemon=True)
        self.pids, self.peak, self.stop = pids, 0, threading.Event()

    def reset(self):
        self.peak = 0

    def run(self):
        while not self.stop.wait(0.05):
            self.peak = max(self.peak, sum(status_kib(p, "VmRSS") for p in self.pids))


def main():
    parser = argparse.ArgumentParser(description="The seed's cleaning step in PySpark.")
    parser.add_argument("input")
    parser.add_argument("output")
    parser.add_argument("--mode", choices=("cold", "warm"), default="cold")
    parser.add_argument("--repeat", type=int, default=1, help="timed runs in warm mode")
    parser.add_argument("--partition-by-date", action="store_true", help="one directory per day")
    parser.add_argument("--csv", action="store_true", help="write CSV with a header (the seed's loader input)")
    a = parser.parse_args()
    src, dst, mode, repeat = a.input, a.output, a.mode, max(1, a.repeat)
    by_date, as_csv = a.partition_by_date, a.csv

    spark = (
        SparkSession.builder.master("local[*]")
        .appName("bench-clean-seed")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    pids = tree_pids(os.getpid())
    sampler = Sampler(pids)
    sampler.start()

    if mode == "cold":
        clean(spark, src, dst, by_date, as_csv)
        seconds = time.time() - PROCESS_START
        runs = [seconds]
    else:
        warmup = clean(spark, src, dst, by_date, as_csv)
        reset_hwm(pids)
        sampler.reset()
        runs = [clean(spark, src, dst, by_date, as_csv) for _ in range(repeat)]
        seconds = min(runs)
    hwm = sum(status_kib(p, "VmHWM") for p in pids)
    sampler.stop.set()
    sampler.join()

    rows_in = read(spark, src).count()
    written = spark.read.csv(dst, header=True) if as_csv else spark.read.parquet(dst)
    rows_out = written.count()
    files = len(written.inputFiles())
    result = {
        "tool": "pyspark",
        "mode": mode,
        "partition_by_date": by_date,
        "format": "csv" if as_csv else "parquet",
        "rows_in": rows_in,
        "rows_out": rows_out,
        "files": files,
        "seconds": round(seconds, 3),
        "runs": [round(r, 3) for r in runs],
        "rss_tree_hwm_kib": hwm,
        "rss_tree_sampled_kib": sampler.peak,
        "processes": len(pids),
        "pyspark": spark.version,
        "parallelism": spark.sparkContext.defaultParallelism,
    }
    if as_csv:
        result["distinct_order_ids"] = written.select("order_id").distinct().count()
    if mode == "warm":
        result["warmup_seconds"] = round(warmup, 3)
    spark.stop()
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
