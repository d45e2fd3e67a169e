#!/usr/bin/env python3
"""kafka-python consumer group against a tierlog node: two members share a topic.

Usage: groups_kafka_python.py --bootstrap HOST:PORT --topic NAME --group ID --expect N
                              [--partitions P] [--timeout S]

Two KafkaConsumers with the same group_id subscribe to the topic (already created and
holding N records). Each is polled from its own thread until both have a non-empty assignment, the
assignments are disjoint and cover all P partitions, and the two together have received
all N records (at least once). Each then commits synchronously and closes (LeaveGroup). Prints
one JSON line with the assignments and per-partition counts; exits non-zero with a message
otherwise. Run by tests/tests/groups.rs.
"""

import argparse
import json
import sys
import threading
import time

from kafka import KafkaConsumer


def fail(msg):
    print(f"FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--group", required=True)
    ap.add_argument("--expect", type=int, required=True)
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--timeout", type=float, default=60.0)
    args = ap.parse_args()

    consumers = [
        KafkaConsumer(
            args.topic,
            bootstrap_servers=args.bootstrap,
            group_id=args.group,
            client_id=f"tierlog-py-member-{i}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=10000,
            heartbeat_interval_ms=1000,
            request_timeout_ms=30000,
        )
        for i in range(2)
    ]
    seen = {}  # (partition, offset) -> member index
    duplicates = []
    assigned = [[], []]
    # Guards seen, duplicates and assigned; members notify it after each poll.
    changed = threading.Condition()
    stop = threading.Event()
    deadline = time.monotonic() + args.timeout

    def member(i):
        # Each member polls from its own thread, as an application does: a member's poll may
        # wait on its JoinGroup while the other one has to rejoin for the rebalance to end.
        c = consumers[i]
        while not stop.is_set():
            batch = c.poll(timeout_ms=100)
            with changed:
                for records in batch.values():
                    for r in records:
                        key = (r.partition, r.offset)
                        if key in seen:
                            duplicates.append((key, seen[key], i))
                        seen[key] = i
                assigned[i] = sorted(tp.partition for tp in c.assignment())
                changed.notify_all()

    def assignments():
        with changed:
            return [list(a) for a in assigned]

    def settled():
        # Called with `changed` held.
        union = sorted(assigned[0] + assigned[1])
        return (all(assigned) and union == list(range(args.partitions))
                and len(seen) == args.expect)

    threads = [threading.Thread(target=member, args=(i,), daemon=True) for i in range(2)]
    for t in threads:
        t.start()
    with changed:
        ok = changed.wait_for(settled, timeout=max(0.0, deadline - time.monotonic()))
    if not ok:
        stop.set()
        fail(f"not settled within {args.timeout}s: assignments {assignments()}, "
             f"{len(seen)} of {args.expect} records, duplicates {duplicates[:5]}")
    stop.set()
    for t in threads:
        t.join()
    # Redelivery is legitimate when a partition moved before anything was committed (the
    # second member joined after the first had started reading), so it is reported, not failed.
    final = assignments()
    counts = {}
    for (p, _), i in seen.items():
        counts[p] = counts.get(p, 0) + 1
    for c in consumers:
        c.commit()
    for c in consumers:
        c.close()
    print(json.dumps({"assignments": final, "counts": counts, "duplicates": len(duplicates)}),
          flush=True)


if __name__ == "__main__":
    main()
