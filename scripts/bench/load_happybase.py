"""Load peer of `ecom load` for scripts/bench-stages.sh: the seed's HBase loader
written with happybase.

The seed's layout: row key = order_id, families order_details (user_id, category,
amount), payment_info (payment_method), status_info (status), timestamp_info
(timestamp), values as UTF-8 text, written through the Thrift server with
`table.batch(batch_size=2000)`.

Usage:
  load_happybase.py create HOST:PORT TABLE [TABLE...]  create tables (fact layout, or
                                                     an `agg` family for *_agg names)
  load_happybase.py drop HOST:PORT TABLE [TABLE...]    disable and delete if present
  load_happybase.py load HOST:PORT TABLE PARQUET...    time the load of clean Parquet
  load_happybase.py count HOST:PORT TABLE              rows in a table (a key-only scan that
                                                     leaves the block cache alone)

`load` reads the Parquet files (polars) before the clock starts: `seconds` covers
only the connection and the puts (favours the peer: ecom's time includes reading
its Parquet from HDFS and its process start). Prints one JSON line.
"""

import json
import sys
import time

import happybase

FAMILIES = ["order_details", "payment_info", "status_info", "timestamp_info"]
BATCH = 2000


def connect(address):
    host, port = address.rsplit(":", 1)
    return happybase.Connection(host=host, port=int(port), timeout=120_000)


def create(conn, names):
    existing = {t.decode() for t in conn.tables()}
    for name in names:
        if name in existing:
            continue
        fams = ["agg"] if name.endswith("_agg") else FAMILIES
        conn.create_table(name, {f: dict(max_versions=1) for f in fams})


def drop(conn, names):
    existing = {t.decode() for t in conn.tables()}
    for name in names:
        if name in existing:
            conn.delete_table(name, disable=True)


def text(v):
    if isinstance(v, float):
        return repr(v).encode()
    return str(v).encode()


def load(address, table_name, files):
    import polars as pl

    df = pl.concat([pl.read_parquet(f) for f in files])
    rows = df.rows()
    cols = df.columns
    ix = {c: cols.index(c) for c in cols}
    start = time.time()
    conn = connect(address)
    table = conn.table(table_name)
    with table.batch(batch_size=BATCH) as b:
        for r in rows:
            b.put(
                text(r[ix["order_id"]]),
                {
                    b"order_details:user_id": text(r[ix["user_id"]]),
                    b"order_details:category": r[ix["category"]].encode(),
                    b"order_details:amount": text(r[ix["amount"]]),
                    b"payment_info:payment_method": r[ix["payment_method"]].encode(),
                    b"status_info:status": r[ix["status"]].encode(),
                    b"timestamp_info:timestamp": r[ix["timestamp"]].encode(),
                },
            )
    seconds = time.time() - start
    conn.close()
    print(json.dumps({"tool": "happybase", "rows": len(rows), "batch": BATCH, "seconds": round(seconds, 3)}))


def scan_struct():
    """happybase's Thrift IDL with the `cacheBlocks` field of HBase's TScan (field 10), which
    happybase's own copy lacks: a count must not fill the region server's block cache (with
    the harness's heap, a full block cache plus a full memstore runs it out of memory)."""
    import os
    import tempfile

    import thriftpy2

    idl = open(os.path.join(os.path.dirname(happybase.__file__), "Hbase.thrift")).read()
    extended = idl.replace("  9:optional bool reversed \n}", "  9:optional bool reversed,\n  10:optional bool cacheBlocks\n}")
    if extended == idl:
        sys.exit("happybase's Hbase.thrift has changed: cannot add TScan.cacheBlocks")
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "Hbase_count.thrift")
        with open(path, "w") as f:
            f.write(extended)
        return thriftpy2.load(path, module_name="Hbase_count_thrift").TScan


def count(conn, name):
    tscan = scan_struct()
    scan = tscan(caching=5000, filterString=b"FirstKeyOnlyFilter() AND KeyOnlyFilter()", cacheBlocks=False)
    client = conn.client
    scanner = client.scannerOpenWithScan(name.encode(), scan, {})
    n = 0
    try:
        while True:
            rows = client.scannerGetList(scanner, 5000)
            if not rows:
                break
            n += len(rows)
    finally:
        client.scannerClose(scanner)
    print(n)


def main():
    cmd, address = sys.argv[1:3]
    rest = sys.argv[3:]
    if cmd == "load":
        load(address, rest[0], rest[1:])
        return
    conn = connect(address)
    if cmd == "create":
        create(conn, rest)
    elif cmd == "drop":
        drop(conn, rest)
    elif cmd == "count":
        count(conn, rest[0])
    else:
        sys.exit(f"unknown command {cmd!r}")
    conn.close()


if __name__ == "__main__":
    main()
