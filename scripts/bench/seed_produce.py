"""The seed's Kafka producer, as scripts/bench-pipeline.sh runs it (the seed's
scripts/kafka_producer.py, written here from the seed's description).

What the seed shows (its README, step 1): a kafka-python producer streams the raw
dataset file into the topic `test-topic`, created beforehand with one partition and
replication factor 1. Its code is only a screenshot, so these choices are ours:
- every data line of the TSV file is sent as it is (its bytes, no key), one `send()`
  per line, and `flush()` at the end. Bytes, not decoded text: the generated dirt
  includes invalid UTF-8, on which a text-mode read stops with an error; sending the
  bytes keeps this topic's records identical to ecom's. The header line is skipped, as `ecom produce`
  skips it: the seed's raw batch files had no header (DATASET.md: reading them with
  `header=True` dropped the first record of every file), so it never reached the topic.
- no producer settings: `KafkaProducer(bootstrap_servers=...)` with the library's
  defaults. With the pinned kafka-python 3 those are acks=all with idempotence,
  linger 0 ms, 16 KiB batches, no compression (kafka-python 2, current when the seed
  was written, had acks=1 and no idempotence; on one broker that makes little
  difference). Not tuned: this is what the seed's pipeline runs.
- no pacing: a "real-time" feed might sleep between records; the seed shows none, and
  a batch benchmark sends as fast as the client can.

Usage: seed_produce.py INPUT.tsv TOPIC BOOTSTRAP
Prints one JSON line: records sent and `seconds` from the producer's creation to
flush() returning (the benchmark times the whole process).
"""

import json
import sys
import time

from kafka import KafkaProducer

HEADER = b"order_id\tuser_id\tcategory\tamount\tpayment_method\tstatus\ttimestamp"


def main():
    src, topic, bootstrap = sys.argv[1:4]
    start = time.time()
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    sent = 0
    with open(src, "rb") as f:
        for line in f:
            line = line.rstrip(b"\r\n")
            if not line or line == HEADER:
                continue
            producer.send(topic, value=line)
            sent += 1
    producer.flush()
    seconds = time.time() - start
    producer.close()
    print(json.dumps({"tool": "seed-producer", "records": sent, "seconds": round(seconds, 3)}))


if __name__ == "__main__":
    main()
