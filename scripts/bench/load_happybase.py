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
  load_happybase.py count HOST:PORT TABLE              rows in a table (a key-only scan)

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


def count(conn, name):
    n = 0
    for _ in conn.table(name).scan(filter=b"FirstKeyOnlyFilter() AND KeyOnlyFilter()", batch_size=5000):
        n += 1
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
