#!/usr/bin/env python3
"""What checking every hot-tier batch's CRC-32C costs a fetch: a benchmark driver, not a test.

One tierlog node (release build, the settings of vs_kafka.py), one partition filled with
`--gib` GiB in batches of 16 KiB and, in a second topic, of 1 MiB. Then, in interleaved rounds,
the node is restarted on the same data with `--verify-reads true` and `false` and the whole
partition is read back from the hot tier (page cache warm: a first read runs before timing)
by two readers:

- `raw`: Fetch v4 requests of 64 MiB on one connection from this script; records are not
  parsed (batch headers are walked for the next offset), so the broker is the bottleneck;
- `librdkafka`: `tierlog bench consume` (one librdkafka consumer, which parses every record).

For each it reports MiB/s and the broker's CPU seconds per GiB served (utime + stime of the
tierlog process over the read), and the on/off ratios. Python 3.11 standard library only.

    CARGO_TARGET_DIR=/work/release-target cargo build --release -p tierlog-cli --features etcd --bin tierlog
    python3 tests/bench/verify_reads.py --tierlog-bin /work/release-target/release/tierlog

Then the same reads from Apache Kafka 4.3.1 (tests/install.sh's jars; `--no-kafka` skips it),
as the reference for the broker's CPU per GiB served.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import struct
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import vs_kafka as vk  # noqa: E402  (shared process and wire helpers)

API_FETCH = 1
FETCH_BYTES = 64 * 1024 * 1024
CLK_TCK = os.sysconf("SC_CLK_TCK")


class Node(vk.TierlogBroker):
    """A tierlog node with `--verify-reads` set."""

    def __init__(self, run_dir: Path, args: argparse.Namespace, ports: set[int], verify: bool):
        super().__init__(run_dir, args, ports)
        self.extra = ["--verify-reads", "true" if verify else "false"]

    def _launch(self, cmd: list[str]) -> None:
        super()._launch(cmd + self.extra)


def cpu_secs(pid: int) -> float:
    """utime + stime of `pid` in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def recv_exact(sock: socket.socket, n: int) -> memoryview:
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        k = sock.recv_into(view[got:], n - got)
        if k == 0:
            raise ConnectionError("connection closed by the broker")
        got += k
    return view


def fetch_all(port: int, topic: str, end: int) -> int:
    """Reads `topic`/0 from 0 to `end` with raw Fetch v4 requests; returns the bytes read."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=60)
    name = topic.encode()
    offset, total, corr = 0, 0, 0
    try:
        while offset < end:
            corr += 1
            body = (
                struct.pack(">iiiib", -1, 500, 1, FETCH_BYTES, 0)
                + struct.pack(">ih", 1, len(name))
                + name
                + struct.pack(">iiqi", 1, 0, offset, FETCH_BYTES)
            )
            msg = struct.pack(">hhih", API_FETCH, 4, corr, 6) + b"verify" + body
            sock.sendall(struct.pack(">i", len(msg)) + msg)
            (size,) = struct.unpack(">i", recv_exact(sock, 4))
            resp = recv_exact(sock, size)
            # corr, throttle, [topic], name, [partition], partition, error, hw, lso, aborted
            pos = 8
            pos += 4  # topics: one
            (nlen,) = struct.unpack_from(">h", resp, pos)
            pos += 2 + nlen + 4
            _, error, _, _, aborted = struct.unpack_from(">ihqqi", resp, pos)
            pos += 4 + 2 + 8 + 8 + 4 + max(aborted, 0) * 16
            if error != 0:
                raise RuntimeError(f"fetch at {offset}: error {error}")
            (rlen,) = struct.unpack_from(">i", resp, pos)
            pos += 4
            stop = pos + max(rlen, 0)
            while pos + 61 <= stop:
                base, blen = struct.unpack_from(">qi", resp, pos)
                if pos + 12 + blen > stop:
                    break
                (delta,) = struct.unpack_from(">i", resp, pos + 23)
                offset = base + delta + 1
                pos += 12 + blen
            total += max(rlen, 0)
    finally:
        sock.close()
    return total


def produce(args: argparse.Namespace, bootstrap: str, topic: str, batch: int) -> int:
    records = args.gib * 1024 * 1024 * 1024 // args.record_size
    r = vk.run_tool(
        [
            str(args.tierlog_bin), "bench", "--bootstrap", bootstrap, "--json",
            "--report-interval", "0s", "produce", "--topic", topic, "--records", str(records),
            "--record-size", str(args.record_size), "--acks", "1", "--batch-size", str(batch),
            "--linger-ms", "20",
        ],
        timeout=3600,
    )
    if r.code != 0:
        raise RuntimeError(f"produce failed: {r.tails()}")
    return records


def consume(args: argparse.Namespace, bootstrap: str, topic: str, records: int) -> dict[str, Any]:
    r = vk.run_tool(
        [
            str(args.tierlog_bin), "bench", "--bootstrap", bootstrap, "--json",
            "--report-interval", "0s", "-X", "check.crcs=false", "consume", "--topic", topic,
            "--records", str(records),
        ],
        timeout=3600,
    )
    if r.code != 0:
        raise RuntimeError(f"consume failed: {r.tails()}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def measure(node: Node, fn) -> tuple[float, float, Any]:
    pid = node.proc.pid
    c0, t0 = cpu_secs(pid), time.monotonic()
    out = fn()
    return time.monotonic() - t0, cpu_secs(pid) - c0, out


def kafka_rounds(args: argparse.Namespace, topics: dict[str, int], ends: dict[str, int],
                 results: dict[str, dict[str, list[dict[str, float]]]]) -> None:
    """The same reads from Apache Kafka (one process, the same data produced the same way):
    the reference for what serving costs a broker that sends with sendfile and checks no
    CRC."""
    work = Path(tempfile.mkdtemp(prefix="kafka-verify-"))
    ports: set[int] = set()
    kafka = vk.KafkaBroker(work, args, ports)
    kafka.start()
    try:
        vk.create_topics(kafka.port, [(t, 1) for t in topics])
        kends = {t: produce(args, kafka.bootstrap, t, batch) for t, batch in topics.items()}
        for t in topics:
            fetch_all(kafka.port, t, kends[t])  # warm the page cache
        for rnd in range(args.rounds):
            for t in topics:
                secs, cpu, nbytes = measure(kafka, lambda: fetch_all(kafka.port, t, kends[t]))
                gib = nbytes / 2**30
                row = {"mib_per_sec": nbytes / 2**20 / secs, "cpu_secs_per_gib": cpu / gib}
                results.setdefault(f"{t} raw", {}).setdefault("kafka", []).append(row)
                secs, cpu, rep = measure(kafka, lambda: consume(args, kafka.bootstrap, t, kends[t]))
                row = {"mib_per_sec": rep["mib_per_sec"], "cpu_secs_per_gib": cpu / gib}
                results.setdefault(f"{t} librdkafka", {}).setdefault("kafka", []).append(row)
                print(f"kafka round {rnd} {t}: done", file=sys.stderr)
    finally:
        kafka.stop()
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    vk.add_broker_args(ap)
    ap.add_argument("--no-kafka", action="store_true", help="skip the Apache Kafka reference run")
    ap.add_argument("--gib", type=int, default=1, help="GiB per topic")
    ap.add_argument("--record-size", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json-out", type=Path, default=None)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="tierlog-verify-"))
    ports: set[int] = set()
    topics = {"b16k": 16 * 1024, "b1m": 1024 * 1024}
    results: dict[str, dict[str, list[dict[str, float]]]] = {}
    node = Node(work, args, ports, True)
    node.start()
    ends: dict[str, int] = {}
    try:
        vk.create_topics(node.port, [(t, 1) for t in topics])
        for t, batch in topics.items():
            ends[t] = produce(args, node.bootstrap, t, batch)
            print(f"{t}: {ends[t]} records produced", file=sys.stderr)
        for t in topics:
            fetch_all(node.port, t, ends[t])  # warm the page cache
    finally:
        node.stop()
    for rnd in range(args.rounds):
        for verify in (True, False):
            node = Node(work, args, ports, verify)
            node.start()
            try:
                for t in topics:
                    secs, cpu, nbytes = measure(node, lambda: fetch_all(node.port, t, ends[t]))
                    gib = nbytes / 2**30
                    row = {"mib_per_sec": nbytes / 2**20 / secs, "cpu_secs_per_gib": cpu / gib}
                    results.setdefault(f"{t} raw", {}).setdefault(str(verify), []).append(row)
                    secs, cpu, rep = measure(node, lambda: consume(args, node.bootstrap, t, ends[t]))
                    row = {"mib_per_sec": rep["mib_per_sec"], "cpu_secs_per_gib": cpu / gib}
                    results.setdefault(f"{t} librdkafka", {}).setdefault(str(verify), []).append(row)
                    print(f"round {rnd} verify={verify} {t}: done", file=sys.stderr)
            finally:
                node.stop()
    if not args.no_kafka:
        kafka_rounds(args, topics, ends, results)
    keys = ("mib_per_sec", "cpu_secs_per_gib")
    med = lambda rows: {k: statistics.median(r[k] for r in rows) for k in keys}  # noqa: E731
    print("| reader, batches | MiB/s verify on | MiB/s off | on/off | broker CPU s/GiB on | off | on/off | Kafka MiB/s | Kafka CPU s/GiB | tierlog on / Kafka CPU |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for case, by in results.items():
        on, off = med(by["True"]), med(by["False"])
        kafka = med(by["kafka"]) if "kafka" in by else None
        ref = (
            f"{kafka['mib_per_sec']:.0f} | {kafka['cpu_secs_per_gib']:.3f} | "
            f"{on['cpu_secs_per_gib'] / kafka['cpu_secs_per_gib']:.2f}"
            if kafka else "– | – | –"
        )
        print(
            f"| {case} | {on['mib_per_sec']:.0f} | {off['mib_per_sec']:.0f} | "
            f"{on['mib_per_sec'] / off['mib_per_sec']:.3f} | {on['cpu_secs_per_gib']:.3f} | "
            f"{off['cpu_secs_per_gib']:.3f} | {on['cpu_secs_per_gib'] / off['cpu_secs_per_gib']:.3f} | {ref} |"
        )
    if args.json_out:
        args.json_out.write_text(json.dumps(results, indent=2))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
