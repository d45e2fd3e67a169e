#!/usr/bin/env python3
"""kafka-python against a tierlog node: produce, read back by manual assignment, admin.

Usage: smoke_kafka_python.py --bootstrap HOST:PORT --topic NAME [--count N]

Exits 0 when every produced record is read back at the offset its send() reported, with
its key, value and headers; non-zero with a message otherwise. Run by
tests/tests/compat.rs; runnable by hand against `tierlog serve`.
"""

import argparse
import sys
import time

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic


def fail(msg):
    print(f"FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def stage(name):
    print(f"stage: {name}", file=sys.stderr, flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--count", type=int, default=200)
    args = ap.parse_args()
    topic, n = args.topic, args.count

    stage("admin create_topics")
    admin = KafkaAdminClient(bootstrap_servers=args.bootstrap, client_id="tierlog-smoke-admin",
                             request_timeout_ms=30000)
    admin.create_topics([NewTopic(name=topic, num_partitions=2, replication_factor=1)])

    stage("produce")
    producer = KafkaProducer(bootstrap_servers=args.bootstrap, acks="all", linger_ms=5,
                             client_id="tierlog-smoke-producer")
    expected = {}  # (partition, offset) -> (key, value, headers)
    futures = []
    for i in range(n):
        key = f"py-key-{i}".encode()
        value = f"py-value-{i}".encode() * (1 + i % 5)
        headers = [("i", str(i).encode()), ("src", b"kafka-python")]
        futures.append((key, value, headers, producer.send(topic, key=key, value=value,
                                                           headers=headers)))
    producer.flush(timeout=30)
    for key, value, headers, fut in futures:
        md = fut.get(timeout=30)
        expected[(md.partition, md.offset)] = (key, value, headers)
    producer.close(timeout=10)
    if len(expected) != n:
        fail(f"{n} sends acknowledged at only {len(expected)} distinct offsets")

    stage("consume (manual assignment, seek_to_beginning)")
    consumer = KafkaConsumer(bootstrap_servers=args.bootstrap, group_id=None,
                             enable_auto_commit=False, client_id="tierlog-smoke-consumer",
                             consumer_timeout_ms=1000)
    partitions = consumer.partitions_for_topic(topic)
    if not partitions:
        fail(f"partitions_for_topic({topic!r}) = {partitions!r}")
    tps = [TopicPartition(topic, p) for p in sorted(partitions)]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    seen = {}
    deadline = time.monotonic() + 60
    while len(seen) < n and time.monotonic() < deadline:
        for tp, records in consumer.poll(timeout_ms=500).items():
            for r in records:
                pos = (r.partition, r.offset)
                if pos in seen:
                    fail(f"record at {pos} delivered twice")
                seen[pos] = (r.key, r.value, [(k, v) for k, v in r.headers])
    consumer.close()
    if len(seen) != n:
        fail(f"read {len(seen)} of {n} records within 60 s")
    for pos, want in expected.items():
        got = seen.get(pos)
        if got != want:
            fail(f"record at {pos}: expected {want!r}, read {got!r}")

    stage("admin list_topics")
    topics = admin.list_topics()
    if topic not in topics:
        fail(f"list_topics() lacks {topic!r}: {topics!r}")
    admin.close()
    print(f"ok: {n} records round-tripped through {topic} on {sorted(partitions)}")


if __name__ == "__main__":
    main()
