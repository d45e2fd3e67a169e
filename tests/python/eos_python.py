#!/usr/bin/env python3
"""Python clients judge the idempotent producer and transactions: kafka-python 3 (whose
producer is idempotent by default) and aiokafka (idempotence and transactions switched on).

Usage: eos_python.py --bootstrap HOST:PORT --client kafka-python|aiokafka --topic NAME

For each client: an idempotent producer writes N records over 3 partitions and every record is
read back once, in order per partition; then a transactional producer commits A, aborts B and
commits C, and a read_committed consumer sees exactly A and C while a read_uncommitted one sees
all three. Prints one JSON line, {"ok": true, ...} or {"ok": false, "stage": ..., "error": ...},
last on stdout. Run by tests/tests/python_exactly_once.rs.
"""

import argparse
import asyncio
import json
import sys
import time
import traceback

N = 300
PER_TXN = 30
PARTITIONS = 3
DEADLINE_S = 60

STAGE = ["start"]


def stage(name):
    STAGE[0] = name
    print(f"stage: {name}", file=sys.stderr, flush=True)


def expect(cond, what):
    if not cond:
        raise AssertionError(what)


def create_topic(bootstrap, topic):
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30000)
    try:
        admin.create_topics([NewTopic(name=topic, num_partitions=PARTITIONS, replication_factor=1)])
    finally:
        admin.close()


def read_all(bootstrap, topic, isolation, want):
    """Reads every partition from the start until `want` records or the deadline."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, isolation_level=isolation,
                             enable_auto_commit=False, auto_offset_reset="earliest")
    tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    out = []
    deadline = time.monotonic() + DEADLINE_S
    while len(out) < want and time.monotonic() < deadline:
        for _, records in consumer.poll(timeout_ms=200).items():
            out.extend(records)
    # A short quiet period: nothing beyond what is expected.
    quiet = time.monotonic() + 1.0
    while time.monotonic() < quiet:
        for _, records in consumer.poll(timeout_ms=200).items():
            out.extend(records)
    consumer.close()
    return out


def check_idempotent(records, topic):
    by_partition = {}
    for r in records:
        by_partition.setdefault(r.partition, []).append(r.value.decode())
    for p, values in by_partition.items():
        expected = [f"{i:06}" for i in range(N) if i % PARTITIONS == p]
        expect(values == expected, f"partition {p}: {values[:5]}... != {expected[:5]}...")
    expect(sum(len(v) for v in by_partition.values()) == N, f"{len(records)} records read")


def check_transactions(bootstrap, topic):
    committed = read_all(bootstrap, topic, "read_committed", 2 * PER_TXN)
    values = sorted(r.value.decode() for r in committed)
    expected = sorted(f"{t}-{i:03}" for t in "ac" for i in range(PER_TXN))
    expect(values == expected, f"read_committed saw {len(values)}: {values[:4]}...")
    everything = read_all(bootstrap, topic, "read_uncommitted", 3 * PER_TXN)
    expect(len(everything) == 3 * PER_TXN, f"read_uncommitted saw {len(everything)}")


def kafka_python(bootstrap, topic):
    import kafka
    from kafka import KafkaProducer

    idem, txn = f"{topic}-idem", f"{topic}-txn"
    create_topic(bootstrap, idem)
    create_topic(bootstrap, txn)
    stage("kafka-python default producer")
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    idempotent = producer.config.get("enable_idempotence")
    expect(idempotent, f"kafka-python {kafka.__version__} is not idempotent by default")
    futures = [producer.send(idem, value=f"{i:06}".encode(), partition=i % PARTITIONS)
               for i in range(N)]
    producer.flush()
    for f in futures:
        f.get(timeout=30)
    producer.close()
    stage("kafka-python read back")
    check_idempotent(read_all(bootstrap, idem, "read_uncommitted", N), idem)

    stage("kafka-python transactions")
    producer = KafkaProducer(bootstrap_servers=bootstrap, transactional_id=f"{topic}-kp")
    producer.init_transactions()
    for name, commit in (("a", True), ("b", False), ("c", True)):
        producer.begin_transaction()
        for i in range(PER_TXN):
            producer.send(txn, key=name.encode(), value=f"{name}-{i:03}".encode(),
                          partition=i % PARTITIONS)
        # Written before the end, so the aborted records are in the log (an abort drops
        # what is still buffered).
        producer.flush()
        if commit:
            producer.commit_transaction()
        else:
            producer.abort_transaction()
    producer.close()
    stage("kafka-python read_committed")
    check_transactions(bootstrap, txn)
    return {"client": "kafka-python", "version": kafka.__version__}


async def aiokafka_run(bootstrap, topic):
    import aiokafka
    from aiokafka import AIOKafkaProducer

    idem, txn = f"{topic}-idem", f"{topic}-txn"
    create_topic(bootstrap, idem)
    create_topic(bootstrap, txn)
    stage("aiokafka idempotent producer")
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True)
    await producer.start()
    try:
        futures = [await producer.send(idem, value=f"{i:06}".encode(), partition=i % PARTITIONS)
                   for i in range(N)]
        for f in futures:
            await f
    finally:
        await producer.stop()
    stage("aiokafka read back")
    check_idempotent(read_all(bootstrap, idem, "read_uncommitted", N), idem)

    stage("aiokafka transactions")
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, transactional_id=f"{topic}-aio")
    await producer.start()
    try:
        for name, commit in (("a", True), ("b", False), ("c", True)):
            await producer.begin_transaction()
            for i in range(PER_TXN):
                await producer.send(txn, key=name.encode(), value=f"{name}-{i:03}".encode(),
                                    partition=i % PARTITIONS)
            await producer.flush()
            if commit:
                await producer.commit_transaction()
            else:
                await producer.abort_transaction()
    finally:
        await producer.stop()
    stage("aiokafka read_committed")
    check_transactions(bootstrap, txn)
    return {"client": "aiokafka", "version": aiokafka.__version__}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--client", required=True, choices=["kafka-python", "aiokafka"])
    ap.add_argument("--topic", required=True)
    args = ap.parse_args()
    try:
        if args.client == "kafka-python":
            summary = kafka_python(args.bootstrap, args.topic)
        else:
            summary = asyncio.run(aiokafka_run(args.bootstrap, args.topic))
        print(json.dumps({"ok": True, **summary}), flush=True)
    except Exception as e:  # noqa: BLE001 - reported as the program's verdict
        traceback.print_exc()
        print(json.dumps({"ok": False, "stage": STAGE[0], "error": repr(e)}), flush=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
