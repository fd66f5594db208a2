"""Kafka helpers for scripts/bench-stages.sh (kafka-python).

Usage:
  kafka_admin.py create BOOTSTRAP TOPIC PARTITIONS   create a topic (replication 1)
  kafka_admin.py count BOOTSTRAP TOPIC               records in a topic (sum of end offsets)
  kafka_admin.py delete BOOTSTRAP PREFIX             delete every topic, and every consumer group,
                                                     whose name starts with PREFIX
"""

import sys
import time

from kafka import KafkaConsumer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic


def create(bootstrap, topic, partitions):
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
    admin.close()
    # Wait until the metadata shows every partition.
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    for _ in range(100):
        if len(consumer.partitions_for_topic(topic) or ()) == partitions:
            break
        time.sleep(0.1)
    consumer.close()


def count(bootstrap, topic):
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    parts = consumer.partitions_for_topic(topic) or set()
    tps = [TopicPartition(topic, p) for p in parts]
    ends = consumer.end_offsets(tps) if tps else {}
    consumer.close()
    print(sum(ends.values()))


def delete(bootstrap, prefix):
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    names = [t for t in admin.list_topics() if t.startswith(prefix)]
    if names:
        admin.delete_topics(names)
    groups = [g["group_id"] for g in admin.list_groups() if g["group_id"].startswith(prefix)]
    if groups:
        admin.delete_groups(groups)
    admin.close()
    print(len(names))


def main():
    cmd, bootstrap, topic = sys.argv[1:4]
    if cmd == "create":
        create(bootstrap, topic, int(sys.argv[4]))
    elif cmd == "count":
        count(bootstrap, topic)
    elif cmd == "delete":
        delete(bootstrap, topic)
    else:
        sys.exit(f"unknown command {cmd!r}")


if __name__ == "__main__":
    main()
