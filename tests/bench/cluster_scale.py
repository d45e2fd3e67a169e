#!/usr/bin/env python3
"""Many partitions on a three-node tierlog cluster: a benchmark driver, not a test.

One etcd and three tierlog nodes (release build, shared `file://` object store), then:

- create one topic of N partitions (default 30,000) with replication factor 3 in one
  CreateTopics request, timed until Metadata shows every partition with its full ISR;
- steady state: etcd's write counters (mvcc puts, deletes, transactions; raft proposals
  committed) over an idle window, as writes per second;
- produce throughput with `tierlog bench produce` (librdkafka, acks=all, 100-byte records) to
  a topic of 1 partition and to a topic of 1,000 partitions (both RF 3);
- failover: kill -9 of one node, then Metadata polled from a survivor every `--poll` seconds:
  for each partition the killed node led, the time until another node leads it (median, 90th
  percentile, max), and until every one of them has a new leader.

Prints a Markdown table and writes the raw numbers as JSON. Python 3.11 standard library; needs
`etcd` on the PATH (tests/install.sh installs it). See tests/bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import vs_kafka as vk  # noqa: E402  (shared process, tool and parser helpers)

TOPIC = "wide"
ETCD_COUNTERS = [
    "etcd_mvcc_put_total",
    "etcd_mvcc_delete_total",
    "etcd_mvcc_txn_total",
    "etcd_server_proposals_committed_total",
]


class Etcd:
    def __init__(self, run_dir: Path, ports: set[int]):
        self.dir = run_dir / "etcd"
        self.client = vk.free_port(ports)
        self.peer = vk.free_port(ports)
        self.metrics = vk.free_port(ports)
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        client = f"http://127.0.0.1:{self.client}"
        peer = f"http://127.0.0.1:{self.peer}"
        log = open(self.dir / "etcd.log", "ab")
        try:
            self.proc = vk.spawn(
                ["etcd", "--name", "n1", "--data-dir", str(self.dir / "data"),
                 "--listen-client-urls", client, "--advertise-client-urls", client,
                 "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                 "--initial-cluster", f"n1={peer}",
                 "--listen-metrics-urls", f"http://127.0.0.1:{self.metrics}"],
                stdout=log, stderr=subprocess.STDOUT,
            )
        finally:
            log.close()
        deadline = time.monotonic() + 30
        while True:
            try:
                self.counters()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("etcd not serving metrics after 30 s")
                time.sleep(0.1)

    def counters(self) -> dict[str, float]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics}/metrics", timeout=5) as r:
            text = r.read().decode()
        out = {name: 0.0 for name in ETCD_COUNTERS}
        for line in text.splitlines():
            if line.startswith("#"):
                continue
            name, _, value = line.rpartition(" ")
            base = name.split("{", 1)[0]
            if base in out:
                out[base] += float(value)
        return out

    def stop(self) -> None:
        if self.proc is not None:
            vk.kill_group(self.proc, signal.SIGKILL)
            vk.reap(self.proc)
            self.proc = None


class Node(vk.Broker):
    name = "tierlog"

    def __init__(self, node_id: int, run_dir: Path, args: argparse.Namespace, ports: set[int],
                 etcd: Etcd, store: Path, extra: list[str] | None = None):
        super().__init__(run_dir / f"node{node_id}")
        self.node_id = node_id
        self.extra = extra or []
        self.args = args
        self.port = vk.free_port(ports)
        self.http_port = vk.free_port(ports)
        self.etcd = etcd
        self.store = store

    def start(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._launch([
            str(self.args.tierlog_bin), "serve",
            "--node-id", str(self.node_id),
            "--data-dir", str(self.data_dir),
            "--listen", f"127.0.0.1:{self.port}",
            "--http", f"127.0.0.1:{self.http_port}",
            "--metadata", f"etcd://127.0.0.1:{self.etcd.client}/tierlog-bench",
            "--object-store", f"file://{self.store}",
            "--lease-ttl", self.args.lease_ttl,
            *self.extra,
        ])

    @property
    def metadata_url(self) -> str:
        return f"etcd://127.0.0.1:{self.etcd.client}/tierlog-bench"


def stop_all(nodes: dict[int, Node], etcd: Etcd) -> None:
    """Stops every running node, then etcd."""
    for n in nodes.values():
        if n.proc is not None:
            n.stop()
    etcd.stop()


def report(out: dict[str, Any], args: argparse.Namespace) -> int:
    """Prints the numbers as JSON (and writes them to `--json`)."""
    print(json.dumps(out, indent=2))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    return 0


def topic_view(port: int, topic: str) -> list[dict[str, Any]]:
    with vk.KafkaConn("127.0.0.1", port, timeout=60.0) as conn:
        t = conn.metadata([topic])["topics"].get(topic)
    return t["partitions"] if t and t["error"] == 0 else []


def wait_full(port: int, topic: str, partitions: int, rf: int, timeout: float) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        try:
            ps = topic_view(port, topic)
            if len(ps) == partitions and all(
                p["leader"] >= 0 and len(p["isr"]) == rf for p in ps
            ):
                return time.monotonic() - t0
        except (OSError, ConnectionError, RuntimeError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{topic}: not every ISR full after {timeout} s")


def create(port: int, topic: str, partitions: int, rf: int, timeout: float) -> None:
    with vk.KafkaConn("127.0.0.1", port, timeout=timeout) as conn:
        result = conn.create_topics([(topic, partitions)], int(timeout * 1000), rf)
    error, message = result[topic]
    if error != 0:
        raise RuntimeError(f"CreateTopics {topic}: error {error} {message}")


def produce(args: argparse.Namespace, bootstrap: str, topic: str, partitions: int) -> dict[str, Any]:
    cmd = [str(args.tierlog_bin), "bench", "produce", "--bootstrap", bootstrap,
           "--topic", topic, "--partitions", str(partitions), "--replication-factor", "3",
           "--records", str(args.records), "--record-size", "100", "--acks", "all",
           "--report-interval", "0s", "--json"]
    r = vk.run_tool(cmd, timeout=args.timeout)
    if r.code != 0:
        raise RuntimeError(f"bench produce {topic}: exit {r.code}\n{r.stderr[-2000:]}")
    return vk.parse_tierlog_bench(r.stdout)


def failover(nodes: dict[int, Node], victim: int, args: argparse.Namespace) -> dict[str, Any]:
    survivor = next(n for i, n in nodes.items() if i != victim)
    led = {p["partition"] for p in topic_view(survivor.port, TOPIC) if p["leader"] == victim}
    if not led:
        raise RuntimeError(f"node {victim} leads nothing")
    proc = nodes[victim].proc
    assert proc is not None
    t0 = time.monotonic()
    vk.kill_group(proc, signal.SIGKILL)
    vk.reap(proc)
    nodes[victim].proc = None
    moved: dict[int, float] = {}
    while len(moved) < len(led):
        if time.monotonic() - t0 > args.timeout:
            raise RuntimeError(f"{len(led) - len(moved)} partitions still led by {victim}")
        try:
            ps = topic_view(survivor.port, TOPIC)
        except (OSError, ConnectionError, RuntimeError):
            continue
        now = time.monotonic() - t0
        for p in ps:
            if p["partition"] in led and p["partition"] not in moved and p["leader"] not in (victim, -1):
                moved[p["partition"]] = now
        time.sleep(args.poll)
    times = sorted(moved.values())
    return {
        "led": len(led),
        "median_s": statistics.median(times),
        "p90_s": times[int(0.9 * (len(times) - 1))],
        "max_s": times[-1],
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--partitions", type=int, default=30_000)
    p.add_argument("--records", type=int, default=2_000_000, help="records per produce run")
    p.add_argument("--idle", type=float, default=30.0, help="steady-state window (s)")
    p.add_argument("--settle", type=float, default=10.0, help="pause before the window (s)")
    p.add_argument("--poll", type=float, default=0.05, help="Metadata poll interval (s)")
    p.add_argument("--lease-ttl", default="3s", help="the nodes' --lease-ttl (their default)")
    p.add_argument("--timeout", type=float, default=900.0)
    p.add_argument("--tierlog-bin", type=Path, default=vk.REPO / "target/release/tierlog")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()
    if shutil.which("etcd") is None:
        print("etcd is not on the PATH (bash tests/install.sh)", file=sys.stderr)
        return 2
    out: dict[str, Any] = {"partitions": args.partitions, "lease_ttl": args.lease_ttl,
                           "load_before": list(__import__("os").getloadavg())}
    ports: set[int] = set()
    with tempfile.TemporaryDirectory(prefix="tierlog-cluster-bench-") as tmp:
        run = Path(tmp)
        store = run / "objects"
        store.mkdir()
        etcd = Etcd(run, ports)
        etcd.start()
        nodes = {i: Node(i, run, args, ports, etcd, store) for i in (1, 2, 3)}
        try:
            for n in nodes.values():
                n.start()
            first = nodes[1]
            t0 = time.monotonic()
            create(first.port, TOPIC, args.partitions, 3, args.timeout)
            wait_full(first.port, TOPIC, args.partitions, 3, args.timeout)
            out["create_s"] = time.monotonic() - t0
            vk.say(f"created {args.partitions} partitions RF 3, every ISR full, in {out['create_s']:.1f} s")
            time.sleep(args.settle)
            c0, w0 = etcd.counters(), time.monotonic()
            time.sleep(args.idle)
            c1, w1 = etcd.counters(), time.monotonic()
            out["etcd_per_s"] = {k: (c1[k] - c0[k]) / (w1 - w0) for k in ETCD_COUNTERS}
            vk.say(f"steady state etcd writes/s: {out['etcd_per_s']}")
            bootstrap = ",".join(n.bootstrap for n in nodes.values())
            for parts in (1, 1000):
                r = produce(args, bootstrap, f"load{parts}", parts)
                out[f"produce_{parts}"] = r
                vk.say(f"produce to {parts} partition(s): {r}")
            out["failover"] = failover(nodes, 2, args)
            vk.say(f"failover: {out['failover']}")
        finally:
            stop_all(nodes, etcd)
    return report(out, args)


if __name__ == "__main__":
    sys.exit(main())
