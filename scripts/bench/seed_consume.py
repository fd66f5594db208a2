"""The seed's Kafka consumer that stores raw batches on HDFS, as
scripts/bench-pipeline.sh runs it (written here from the seed's description).

What the seed shows (its README, step 2, and DATASET.md's list of its mistakes): a
kafka-python consumer reads the topic and writes the records to HDFS in batch files
under /ecommerce-data/, which the Spark step then reads as a directory of TSV with
`header=True`. The batch files carry no header (so that read drops the first record
of every file), are named by a counter that starts at 0 (`batch_N`), and the consumer
group's offsets are committed by the client on its own schedule, independently of the
files. Kept here as the seed does it: header-less files, `batch_N.csv` (the seed's
raw file is tab-separated although named .csv), kafka-python's default auto-commit.

Where the seed's code is not visible (a screenshot), these choices are ours:
- HDFS client: the seed passed each batch through a shell `echo '...'` (DATASET.md),
  i.e. into the `hdfs dfs` command line, one JVM start per file (about 2 s each on
  this machine, measured with `hadoop fs -put -` of a one-line file). Here each batch
  goes over WebHDFS with the `hdfs` package (`InsecureClient.write`), the usual Python
  route; it is cheaper per file and cannot break on a quote, so it favours the seed.
- Batch size: not stated by the seed; 1,000 records per file by default (`--batch`,
  `SEED_BATCH` in the benchmark). A batch passed through `sh -c "echo '...' | ..."` is
  one argument, and Linux (the seed's Docker containers) refuses an argument over
  128 KiB, about 1,800 records of ~70 bytes, so the seed's batches were likely of
  this order. The per-file cost is the consumer's main cost: larger batches make it
  faster (the benchmark's docs give the figures).
- Stop: the seed's consumer runs forever. Here it stops once it has read every record
  that was in the topic when it started (the end offsets then), like `ecom sink
  --until-caught-up`, and writes its last, partial batch instead of holding it.
- One `for message in consumer` loop, one record at a time, each file written
  synchronously in the loop, as a plain consumer script does; no tuning of fetch
  sizes or threads.

Usage: seed_consume.py TOPIC BOOTSTRAP WEBHDFS_URL HDFS_DIR GROUP [--batch N]
Prints one JSON line: records read, files and bytes written, `seconds` from the
consumer's creation to the last file written (the benchmark times the whole process).
"""

import argparse
import getpass
import json
import time

from hdfs import InsecureClient
from kafka import KafkaConsumer, TopicPartition


def main():
    parser = argparse.ArgumentParser(description="The seed's consumer: Kafka -> batch files on HDFS.")
    parser.add_argument("topic")
    parser.add_argument("bootstrap")
    parser.add_argument("webhdfs", help="NameNode HTTP address, http://host:port")
    parser.add_argument("hdfs_dir", help="directory of the batch files (the seed's /ecommerce-data)")
    parser.add_argument("group", help="consumer group id")
    parser.add_argument("--batch", type=int, default=1000, help="records per file")
    a = parser.parse_args()

    start = time.time()
    consumer = KafkaConsumer(
        a.topic,
        bootstrap_servers=a.bootstrap,
        group_id=a.group,
        auto_offset_reset="earliest",
    )
    client = InsecureClient(a.webhdfs, user=getpass.getuser())

    # What "caught up" means: every record in the topic now (a fresh group starts at the
    # beginning).
    tps = [TopicPartition(a.topic, p) for p in sorted(consumer.partitions_for_topic(a.topic) or ())]
    ends = consumer.end_offsets(tps)
    begins = consumer.beginning_offsets(tps)
    expected = sum(ends[tp] - begins[tp] for tp in tps)

    batch, consumed, files, written = [], 0, 0, 0

    def write(records):
        nonlocal files, written
        data = b"\n".join(records) + b"\n"  # `echo` ends the text with a newline
        client.write(f"{a.hdfs_dir}/batch_{files}.csv", data=data, overwrite=True)
        files += 1
        written += len(data)

    if expected > 0:
        for message in consumer:
            batch.append(message.value)
            consumed += 1
            if len(batch) >= a.batch:
                write(batch)
                batch = []
            if consumed >= expected:
                break
    if batch:
        write(batch)
    seconds = time.time() - start
    consumer.close()  # commits the group's offsets (auto-commit), as the seed's client does
    print(
        json.dumps(
            {
                "tool": "seed-consumer",
                "records": consumed,
                "expected": expected,
                "files": files,
                "bytes": written,
                "batch": a.batch,
                "seconds": round(seconds, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
