"""Reads clean Parquet files of ecom on HDFS with another engine and prints, as one JSON
line, what that engine sees: the row count, each column's type in the engine's own names,
and per column the aggregates ecom's quality report lists (rows with a value, smallest and
largest value, the sum of a decimal column, rows per value of a text column).

    read_clean.py spark  HDFS_URL  PATH...   PySpark local[2], reading hdfs:// directly
    read_clean.py duckdb HDFS_HTTP_URL PATH...  DuckDB's Parquet reader, on the files fetched
                                             over WebHDFS (DuckDB has no HDFS client)

PATHs are absolute HDFS paths (a run manifest's parquet_files). Used by
itests/tests/clean_interop.rs.
"""

import json
import os
import sys
import tempfile
import urllib.parse
import urllib.request

TEXT_FORMAT = "%Y-%m-%d %H:%M:%S"
# Columns whose rows per value are counted (few values each).
COUNTED = ("category", "payment_method", "status")
MAX_VALUES = 64


def bound(v):
    """A bound as ecom's report writes it: numbers as numbers, times as text."""
    if hasattr(v, "strftime"):
        return v.strftime(TEXT_FORMAT)
    return v


def spark(hdfs_url, paths):
    from pyspark.sql import SparkSession
    from pyspark.sql import functions as F

    session = (
        SparkSession.builder.master("local[2]")
        .appName("ecom-clean-interop")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", "2")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    df = session.read.parquet(*[hdfs_url + p for p in paths])
    types = {f.name: f.dataType.simpleString() for f in df.schema.fields}
    aggs = []
    for c in df.columns:
        aggs += [F.count(c).alias(c + "__n"), F.min(c).alias(c + "__min"), F.max(c).alias(c + "__max")]
        if types[c] == "double":
            aggs.append(F.sum(c).alias(c + "__sum"))
    row = df.agg(F.count(F.lit(1)).alias("__rows"), *aggs).collect()[0].asDict()
    columns = {}
    for c in df.columns:
        p = {"non_null": row[c + "__n"], "min": bound(row[c + "__min"]), "max": bound(row[c + "__max"])}
        if c + "__sum" in row:
            p["sum"] = row[c + "__sum"]
        if c in COUNTED:
            counts = df.groupBy(c).count().where(F.col(c).isNotNull()).collect()
            if len(counts) <= MAX_VALUES:
                p["values"] = {r[c]: r["count"] for r in counts}
        columns[c] = p
    session.stop()
    return {"rows": row["__rows"], "types": types, "columns": columns}


def fetch(hdfs_http, path, into):
    """The file at `path`, fetched over WebHDFS (the NameNode redirects to a DataNode)."""
    url = "%s/webhdfs/v1%s?op=OPEN" % (hdfs_http.rstrip("/"), urllib.parse.quote(path))
    with urllib.request.urlopen(url, timeout=60) as answer, open(into, "wb") as out:
        while True:
            chunk = answer.read(1 << 20)
            if not chunk:
                return
            out.write(chunk)


def duckdb_read(hdfs_http, paths):
    import duckdb

    with tempfile.TemporaryDirectory() as tmp:
        local = []
        for i, p in enumerate(paths):
            f = os.path.join(tmp, "part-%d.parquet" % i)
            fetch(hdfs_http, p, f)
            local.append(f)
        con = duckdb.connect()
        # The local copies have flat names: no Hive partition column is added.
        files = "[%s]" % ", ".join("'%s'" % f.replace("'", "''") for f in local)
        con.execute("CREATE VIEW clean AS SELECT * FROM read_parquet(%s, hive_partitioning = false)" % files)
        types = {name: kind for name, kind, *_ in con.execute("DESCRIBE clean").fetchall()}
        rows = con.execute("SELECT count(*) FROM clean").fetchone()[0]
        columns = {}
        for c in types:
            q = '"%s"' % c
            n, lo, hi = con.execute("SELECT count(%s), min(%s), max(%s) FROM clean" % (q, q, q)).fetchone()
            p = {"non_null": n, "min": bound(lo), "max": bound(hi)}
            if types[c] == "DOUBLE":
                p["sum"] = con.execute("SELECT sum(%s) FROM clean" % q).fetchone()[0]
            if c in COUNTED:
                counts = con.execute(
                    "SELECT %s, count(*) FROM clean WHERE %s IS NOT NULL GROUP BY 1" % (q, q)
                ).fetchall()
                if len(counts) <= MAX_VALUES:
                    p["values"] = {k: v for k, v in counts}
            columns[c] = p
        return {"rows": rows, "types": types, "columns": columns}


def main():
    if len(sys.argv) < 4 or sys.argv[1] not in ("spark", "duckdb"):
        sys.exit("usage: read_clean.py spark HDFS_URL PATH... | duckdb HDFS_HTTP_URL PATH...")
    engine, where, paths = sys.argv[1], sys.argv[2], sys.argv[3:]
    seen = spark(where, paths) if engine == "spark" else duckdb_read(where, paths)
    print(json.dumps(seen, sort_keys=True))


if __name__ == "__main__":
    main()
