"""Produce peer of `ecom produce` for scripts/bench-stages.sh: kafka-python.

Sends every data line of a TSV file (header and blank lines skipped) to a topic,
key = the order id (first field), value = the line, with the same producer
settings as `ecom produce`'s defaults: idempotent (acks=all), lz4, linger 20 ms,
1 MiB batches. `seconds` runs from the producer's creation to flush() returning
(interpreter start-up and imports excluded, which favours the peer).

Usage: produce_kafka_python.py INPUT.tsv TOPIC BOOTSTRAP
Prints one JSON line.
"""

import json
import sys
import time

from kafka import KafkaProducer

HEADER = b"order_id\tuser_id\tcategory\tamount\tpayment_method\tstatus\ttimestamp"


def main():
    src, topic, bootstrap = sys.argv[1:4]
    start = time.time()
    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=True,
        compression_type="lz4",
        linger_ms=20,
        batch_size=1 << 20,
        max_request_size=4 << 20,
    )
    sent = 0
    with open(src, "rb") as f:
        for line in f:
            line = line.rstrip(b"\r\n")
            if not line or line == HEADER:
                continue
            producer.send(topic, key=line.split(b"\t", 1)[0], value=line)
            sent += 1
    producer.flush()
    seconds = time.time() - start
    producer.close()
    print(json.dumps({"tool": "kafka-python", "records": sent, "seconds": round(seconds, 3)}))


if __name__ == "__main__":
    main()
