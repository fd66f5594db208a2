"""The seed's HBase loader, as scripts/bench-pipeline.sh runs it (the seed's
scripts/hbase_loader.py, whose code the seed's README shows; written here anew).

What the seed does, and so this script: connect to the Thrift server with happybase,
check that the table exists (created beforehand in the HBase shell with the four
families; the benchmark creates it before the clock starts), read a CSV file of
clean rows with `csv.reader`, skip its header row, and for each row
`batch.put(row[0], {...})` with the seed's column mapping (order_details:user_id,
order_details:category, order_details:amount, payment_info:payment_method,
status_info:status, timestamp_info:timestamp; values the CSV's text) into
`table.batch(batch_size=2000)`, calling `batch.send()` after every 2,000 rows and
once at the end, printing its progress; row key = order_id, so a repeated order_id
overwrites the earlier row.

Where we had to choose:
- Input: the seed's loader read one local CSV file (`split_part_N.csv`, pieces of the
  Spark step's CSV output copied off HDFS by hand) per run. Here one process reads each
  CSV part file that the Spark step wrote on HDFS, in name order, straight from HDFS
  over WebHDFS (the `hdfs` package), with a new connection per file as a new run of
  the seed's script would have. The manual copy and split are not done, and the
  interpreter starts once instead of once per file: both favour the seed.
- Errors: the seed prints an exception and carries on to close the connection; here
  it is printed and the script exits non-zero, so a failed load cannot pass as a
  fast one.

Usage: seed_load.py HOST:PORT TABLE WEBHDFS_URL HDFS_DIR
Prints one JSON line (rows put, files, `seconds` from the first connection to the
last batch sent) after the seed's own progress lines.
"""

import csv
import getpass
import json
import sys
import time

import happybase
from hdfs import InsecureClient

BATCH_SIZE = 2000  # the seed's


def load_file(host, port, table_name, reader):
    """The seed's loader body for one CSV file; returns the rows put."""
    connection = happybase.Connection(host=host, port=port)
    connection.open()
    try:
        if table_name.encode() not in connection.tables():
            sys.exit(f"Table {table_name} does not exist. Create the table first.")
        table = connection.table(table_name)
        rows = csv.reader(reader)
        next(rows, None)  # Skip the header row
        batch = table.batch(batch_size=BATCH_SIZE)
        count = 0
        for row in rows:
            row_key = row[0]
            data = {
                "order_details:user_id": row[1],
                "order_details:category": row[2],
                "order_details:amount": row[3],
                "payment_info:payment_method": row[4],
                "status_info:status": row[5],
                "timestamp_info:timestamp": row[6],
            }
            batch.put(row_key, data)
            count += 1
            if count % BATCH_SIZE == 0:
                batch.send()
                print(f"Inserted {count} rows so far...")
        batch.send()
        print(f"Inserted total {count} rows into {table_name}.")
        return count
    finally:
        connection.close()


def main():
    address, table_name, webhdfs, hdfs_dir = sys.argv[1:5]
    host, port = address.rsplit(":", 1)
    client = InsecureClient(webhdfs, user=getpass.getuser())
    parts = sorted(name for name in client.list(hdfs_dir) if name.startswith("part-") and name.endswith(".csv"))
    if not parts:
        sys.exit(f"no part-*.csv files in {hdfs_dir}")
    start = time.time()
    total = 0
    for name in parts:
        try:
            with client.read(f"{hdfs_dir}/{name}", encoding="utf-8") as reader:
                total += load_file(host, int(port), table_name, reader)
        except Exception as e:  # the seed: print(f"Error inserting data: {e}")
            print(f"Error inserting data from {name}: {e}", flush=True)
            sys.exit(1)
    seconds = time.time() - start
    print(json.dumps({"tool": "seed-loader", "rows": total, "files": len(parts), "batch": BATCH_SIZE,
                      "seconds": round(seconds, 3)}))


if __name__ == "__main__":
    main()
