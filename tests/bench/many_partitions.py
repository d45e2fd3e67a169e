#!/usr/bin/env python3
"""Many partitions on one node, tierlog and Apache Kafka side by side: a benchmark driver, not
a test.

For each broker (single node, the settings of vs_kafka.py), one after the other:

- create one topic of N partitions (default 10,000) in one CreateTopics request and time it
  until Metadata shows every partition with a leader;
- idle cost: after a settling pause, the broker's CPU over an idle window (% of one core),
  its RSS and its open file descriptors;
- Metadata latency: full Metadata (all topics) requests, median and max;
- restart: SIGTERM and start again (time to serve every partition: Metadata lists all N with a
  leader), then kill -9 and start again (the same, after crash recovery).

Prints a Markdown table with tierlog / Kafka ratios and writes the raw numbers as JSON.
Python 3.11 standard library plus the Kafka jars of tests/install.sh. See
tests/bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import vs_kafka as vk  # noqa: E402  (shared process, tool and parser helpers)

TOPIC = "wide"


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def descriptors(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def wait_all_led(port: int, partitions: int, timeout: float) -> float:
    """Seconds until Metadata lists `partitions` partitions of TOPIC, each with a leader."""
    t0 = time.monotonic()
    problem = "no attempt"
    while time.monotonic() - t0 < timeout:
        try:
            with vk.KafkaConn("127.0.0.1", port, timeout=30.0) as conn:
                t = conn.metadata([TOPIC])["topics"].get(TOPIC)
                if t and t["error"] == 0 and len(t["partitions"]) == partitions and all(
                    p["error"] == 0 and p["leader"] >= 0 for p in t["partitions"]
                ):
                    return time.monotonic() - t0
                problem = f"{t and len(t['partitions'])} partitions listed"
        except (OSError, ConnectionError, RuntimeError) as e:
            problem = f"{type(e).__name__}: {e}"
        time.sleep(0.1)
    raise RuntimeError(f"not all {partitions} partitions led after {timeout} s ({problem})")


def relaunch(broker: vk.Broker, args: argparse.Namespace) -> None:
    """Starts a stopped broker again on its data directory (no format for Kafka)."""
    if isinstance(broker, vk.KafkaBroker):
        config = broker.run_dir / "server.properties"
        broker._launch(vk.java_cmd(args, vk.KAFKA_MAIN, vk.KAFKA_HEAP) + [str(config)])
    else:
        broker.start()


def restart_time(broker: vk.Broker, args: argparse.Namespace, kill9: bool) -> float:
    assert broker.proc is not None
    if kill9:
        vk.kill_group(broker.proc, signal.SIGKILL)
        vk.reap(broker.proc)
        broker.proc = None
    else:
        broker.stop()
    t0 = time.monotonic()
    relaunch(broker, args)
    wait_all_led(broker.port, args.partitions, args.timeout)
    return time.monotonic() - t0


def run(broker: vk.Broker, args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"broker": broker.name, "partitions": args.partitions}
    broker.start()
    pid = broker.proc.pid
    out["fds_empty"] = descriptors(pid)
    t0 = time.monotonic()
    with vk.KafkaConn("127.0.0.1", broker.port, timeout=args.timeout) as conn:
        result = conn.create_topics([(TOPIC, args.partitions)], timeout_ms=int(args.timeout * 1000))
    error, message = result[TOPIC]
    if error != 0:
        raise RuntimeError(f"{broker.name}: CreateTopics error {error} {message}")
    out["create_answered_s"] = time.monotonic() - t0
    wait_all_led(broker.port, args.partitions, args.timeout)
    out["create_s"] = time.monotonic() - t0
    vk.say(f"{broker.name}: created {args.partitions} partitions in {out['create_s']:.1f} s")
    time.sleep(args.settle)
    c0, w0 = cpu_seconds(pid), time.monotonic()
    time.sleep(args.idle)
    out["idle_cpu_pct"] = 100 * (cpu_seconds(pid) - c0) / (time.monotonic() - w0)
    out["rss_mb"] = broker.memory().get("VmRSS", 0)
    out["fds"] = descriptors(pid)
    lat = []
    with vk.KafkaConn("127.0.0.1", broker.port, timeout=30.0) as conn:
        for _ in range(args.metadata_requests):
            t = time.monotonic()
            conn.metadata(None)
            lat.append(1000 * (time.monotonic() - t))
    out["metadata_ms_median"] = statistics.median(lat)
    out["metadata_ms_max"] = max(lat)
    vk.say(f"{broker.name}: idle {out['idle_cpu_pct']:.1f}% of a core, {out['rss_mb']:.0f} MB, "
           f"{out['fds']} fds, Metadata {out['metadata_ms_median']:.1f} ms")
    out["restart_clean_s"] = restart_time(broker, args, kill9=False)
    out["restart_kill9_s"] = restart_time(broker, args, kill9=True)
    vk.say(f"{broker.name}: restart {out['restart_clean_s']:.1f} s clean, "
           f"{out['restart_kill9_s']:.1f} s after kill -9")
    broker.stop()
    return out


ROWS = [
    ("create N partitions (s)", "create_s"),
    ("idle CPU (% of a core)", "idle_cpu_pct"),
    ("RSS (MB)", "rss_mb"),
    ("open file descriptors", "fds"),
    ("Metadata, all topics (ms, median)", "metadata_ms_median"),
    ("Metadata, all topics (ms, max)", "metadata_ms_max"),
    ("start after a clean stop (s)", "restart_clean_s"),
    ("start after kill -9 (s)", "restart_kill9_s"),
]


def table(runs: dict[str, dict[str, Any]], rows: list[tuple[str, str]] = ROWS) -> str:
    """tierlog and Kafka side by side, one row per (label, key of the run's numbers)."""
    lines = ["| | tierlog | Kafka | tierlog / Kafka |", "|---|---|---|---|"]
    for label, key in rows:
        t = runs.get("tierlog", {}).get(key)
        k = runs.get("kafka", {}).get(key)
        ratio = f"{t / k:.2f}" if t is not None and k else "–"
        fmt = lambda v: "–" if v is None else (f"{v:.0f}" if v >= 100 else f"{v:.2f}")  # noqa: E731
        lines.append(f"| {label} | {fmt(t)} | {fmt(k)} | {ratio} |")
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--partitions", type=int, default=10_000)
    p.add_argument("--brokers", default="tierlog,kafka")
    p.add_argument("--settle", type=float, default=10.0, help="pause after creation (s)")
    p.add_argument("--idle", type=float, default=30.0, help="idle CPU window (s)")
    p.add_argument("--metadata-requests", type=int, default=20)
    p.add_argument("--timeout", type=float, default=600.0)
    vk.add_broker_args(p)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()
    args.tierlog_bin = args.tierlog_bin.resolve()
    work = Path(tempfile.mkdtemp(prefix="many-partitions-"))
    ports: set[int] = set()
    runs: dict[str, dict[str, Any]] = {}
    try:
        for name in args.brokers.split(","):
            cls = vk.KafkaBroker if name == "kafka" else vk.TierlogBroker
            broker = cls(work / name, args, ports)
            try:
                runs[name] = run(broker, args)
            finally:
                broker.stop()
    finally:
        vk.kill_all_children()
    print(table(runs))
    if args.json:
        args.json.write_text(json.dumps(runs, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
