#!/usr/bin/env python3
"""Many client connections on one node, tierlog and Apache Kafka side by side: a benchmark
driver, not a test.

For each broker (single node, the settings of vs_kafka.py), one after the other:

- idle memory per connection: RSS before and after opening N connections that each made one
  ApiVersions request and then stay idle, (after - before) / N;
- the most connections the node holds while still serving a new client within 100 ms: idle
  connections are added in steps; after each step a new client connects and makes an
  ApiVersions and a Metadata request, five times, and the median must stay within 100 ms.
  The run stops at the first step over (or refused), or at `--max-connections` (this
  process's descriptors and the loopback port range bound it).

Both nodes run with their defaults, except that tierlog is given `--max-connections` above
the largest step (its default, 10,000, makes the 10,001st client wait in the accept queue by
design; Kafka's `max.connections` is unlimited by default). Prints a Markdown table with
tierlog / Kafka ratios and writes the raw numbers as JSON. Python 3.11 standard library plus
the Kafka jars of tests/install.sh. See tests/bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import resource
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import many_partitions as mp  # noqa: E402  (the side-by-side table)
import vs_kafka as vk  # noqa: E402  (shared process, tool and parser helpers)

LATENCY_LIMIT_MS = 100.0


class Tierlog(vk.TierlogBroker):
    """A tierlog node with room for every connection the run opens."""

    def __init__(self, run_dir: Path, args: argparse.Namespace, ports: set[int]):
        super().__init__(run_dir, args, ports)
        self.extra = ["--max-connections", str(args.max_connections + 1000)]

    def _launch(self, cmd: list[str]) -> None:
        super()._launch(cmd + self.extra)


def idle_connection(port: int) -> socket.socket:
    """A connection that made one ApiVersions request and stays open."""
    conn = vk.KafkaConn("127.0.0.1", port, timeout=30.0)
    conn.api_versions()
    return conn.sock


def new_client_ms(port: int) -> float:
    """Median over five tries of connect + ApiVersions + Metadata, in milliseconds."""
    times = []
    for _ in range(5):
        t0 = time.monotonic()
        with vk.KafkaConn("127.0.0.1", port, timeout=10.0) as conn:
            conn.api_versions()
            conn.metadata([])
        times.append(1000 * (time.monotonic() - t0))
    return statistics.median(times)


def rss_mib(broker: vk.Broker, settle: float) -> float:
    time.sleep(settle)
    return broker.memory().get("VmRSS", 0.0)


def run(broker: vk.Broker, args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"broker": broker.name}
    broker.start()
    held: list[socket.socket] = []
    try:
        new_client_ms(broker.port)  # warm up (Kafka's JIT, tierlog's first Metadata)
        before = rss_mib(broker, args.settle)
        held += [idle_connection(broker.port) for _ in range(args.idle_connections)]
        after = rss_mib(broker, args.settle)
        out["rss_before_mb"] = before
        out["rss_idle_mb"] = after
        out["idle_kib_per_connection"] = 1024 * (after - before) / args.idle_connections
        vk.say(f"{broker.name}: {args.idle_connections} idle connections: {before:.0f} -> "
               f"{after:.0f} MB, {out['idle_kib_per_connection']:.1f} KiB each")
        steps: list[dict[str, Any]] = []
        held_ok = 0
        while len(held) < args.max_connections:
            target = min(len(held) + args.step, args.max_connections)
            try:
                while len(held) < target:
                    held.append(idle_connection(broker.port))
                ms = new_client_ms(broker.port)
            except (OSError, ConnectionError, RuntimeError) as e:
                steps.append({"connections": len(held), "error": f"{type(e).__name__}: {e}"})
                vk.say(f"{broker.name}: at {len(held)} connections: {e}")
                break
            steps.append({"connections": len(held), "new_client_ms": ms})
            vk.say(f"{broker.name}: {len(held)} connections, a new client in {ms:.1f} ms")
            if ms > LATENCY_LIMIT_MS:
                break
            held_ok = len(held)
        out["steps"] = steps
        out["max_connections_within_100ms"] = held_ok
        out["rss_at_max_mb"] = broker.memory().get("VmRSS", 0.0)
    finally:
        for s in held:
            s.close()
        broker.stop()
    return out


ROWS = [
    ("idle memory per connection (KiB)", "idle_kib_per_connection"),
    ("connections held, a new client served within 100 ms", "max_connections_within_100ms"),
    ("RSS at that many connections (MB)", "rss_at_max_mb"),
]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--brokers", default="tierlog,kafka")
    p.add_argument("--idle-connections", type=int, default=2000)
    p.add_argument("--step", type=int, default=2000)
    p.add_argument("--max-connections", type=int, default=18000)
    p.add_argument("--settle", type=float, default=3.0, help="pause before reading RSS (s)")
    vk.add_broker_args(p)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()
    args.tierlog_bin = args.tierlog_bin.resolve()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if args.max_connections + 100 > hard:
        args.max_connections = hard - 100
        vk.say(f"this process may open {hard} descriptors: stopping at {args.max_connections}")
    work = Path(tempfile.mkdtemp(prefix="connections-"))
    ports: set[int] = set()
    runs: dict[str, dict[str, Any]] = {}
    try:
        for name in args.brokers.split(","):
            cls = vk.KafkaBroker if name == "kafka" else Tierlog
            runs[name] = run(cls(work / name, args, ports), args)
    finally:
        vk.kill_all_children()
    print(mp.table(runs, ROWS))
    print(f"\n(the run stops at {args.max_connections} connections: a figure equal to it is a floor)")
    if args.json:
        args.json.write_text(json.dumps(runs, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
