#!/usr/bin/env python3
"""Moving replicas on a four-node tierlog cluster: a benchmark driver, not a test.

One etcd and four release-build nodes (shared `file://` object store, 1 MiB segments tiered
within a second, `--partition-balancing false` so that only the steps below move anything):

1. nodes 1-3 start; topic `big` (4 partitions, RF 3, 1 MiB segments, `local.retention.ms=0`:
   tiered history, a short hot tail) gets `--mib` MiB of 1 KiB records, and
   topic `lat` (1 partition, RF 3) is created; then node 4 starts, empty;
2. produce latency on `lat` (acks=all, `--rate` records/s for `--seconds` s, p50/p99) while
   the cluster is idle;
3. the same while `tierlog node drain 1` moves every replica of node 1 to node 4 (five
   reassignments: `big`'s four partitions and `lat`'s); the drain's duration, and the bytes
   node 4 copied from its peers (`tierlog_partition_replicated_bytes`) against what the object
   store already held (`tierlog_partition_remote_bytes`);
4. node 1 is undrained (empty now), node 2 killed -9: with `--replica-replacement-delay 2s`
   the controller re-creates its replicas on node 1; the time from the kill until every
   partition has three in-sync replicas again, and the bytes copied from peers versus tiered.

Prints the numbers and writes them as JSON. Python 3.11 standard library; needs `etcd` on the
PATH. See tests/bench/README.md.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import cluster_scale as cs  # noqa: E402
import vs_kafka as vk  # noqa: E402

NODE_ARGS = [
    "--partition-balancing", "false",
    "--replica-replacement-delay", "2s",
    "--upload-interval", "500ms",
    "--leader-rebalance-interval", "0s",
]


def gauge_sum(node: cs.Node, name: str, topics: set[str]) -> float:
    """Sum of a per-partition gauge over `topics` on `node` (0 if the node is down)."""
    try:
        url = f"http://127.0.0.1:{node.http_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as r:
            text = r.read().decode()
    except OSError:
        return 0.0
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        labels, _, value = line.rpartition(" ")
        if any(f'topic="{t}"' in labels for t in topics):
            total += float(value)
    return total


def produce(args: argparse.Namespace, bootstrap: str, topic: str, records: int, size: int,
            rate: int = 0) -> dict[str, Any]:
    cmd = [str(args.tierlog_bin), "bench", "produce", "--bootstrap", bootstrap, "--topic", topic,
           "--records", str(records), "--record-size", str(size), "--acks", "all",
           "--report-interval", "0s", "--json"]
    if rate:
        cmd += ["--throughput", str(rate)]
    r = vk.run_tool(cmd, timeout=args.timeout)
    if r.code != 0:
        raise RuntimeError(f"bench produce {topic}: exit {r.code}\n{r.stderr[-2000:]}")
    return vk.parse_tierlog_bench(r.stdout)


def node_tool(args: argparse.Namespace, metadata: str, *words: str) -> str:
    out = subprocess.run([str(args.tierlog_bin), "node", "--metadata", metadata, *words],
                         capture_output=True, text=True, timeout=60, check=True)
    return out.stdout


def placement(port: int, topics: list[str]) -> dict[str, list[dict[str, Any]]]:
    with vk.KafkaConn("127.0.0.1", port, timeout=30.0) as conn:
        meta = conn.metadata(topics)["topics"]
    return {t: meta.get(t, {}).get("partitions", []) for t in topics}


def wait(what: str, cond, timeout: float) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        try:
            if cond():
                return time.monotonic() - t0
        except (OSError, ConnectionError, RuntimeError):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{what}: not after {timeout} s")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--mib", type=int, default=512, help="MiB produced into `big`")
    p.add_argument("--rate", type=int, default=2000, help="latency probe records/s")
    p.add_argument("--seconds", type=int, default=20, help="latency probe duration")
    p.add_argument("--lease-ttl", default="3s")
    p.add_argument("--timeout", type=float, default=900.0)
    p.add_argument("--tierlog-bin", type=Path, default=vk.REPO / "target/release/tierlog")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()
    out: dict[str, Any] = {"mib": args.mib, "load_before": list(__import__("os").getloadavg())}
    ports: set[int] = set()
    topics = {"big", "lat"}
    with tempfile.TemporaryDirectory(prefix="tierlog-elastic-bench-") as tmp:
        run = Path(tmp)
        store = run / "objects"
        store.mkdir()
        etcd = cs.Etcd(run, ports)
        etcd.start()
        nodes = {i: cs.Node(i, run, args, ports, etcd, store, NODE_ARGS) for i in (1, 2, 3, 4)}
        metadata = nodes[1].metadata_url
        try:
            for i in (1, 2, 3):
                nodes[i].start()
            first = nodes[1]
            with vk.KafkaConn("127.0.0.1", first.port, timeout=60) as conn:
                for name, parts in (("big", 4), ("lat", 1)):
                    configs = {"segment.bytes": str(2**20), "local.retention.ms": "0"}
                    error, message = conn.create_topics([(name, parts)], 60_000, 3, configs)[name]
                    if error:
                        raise RuntimeError(f"create {name}: {error} {message}")
            bootstrap = ",".join(nodes[i].bootstrap for i in (1, 2, 3))
            records = args.mib * 1024
            r = produce(args, bootstrap, "big", records, 1024)
            vk.say(f"produced {args.mib} MiB into big: {r['mib_per_sec']:.1f} MiB/s")
            leaders = lambda: [nodes[i] for i in (1, 2, 3)]  # noqa: E731
            # Tiered: the leaders' remote bytes cover (almost) everything.
            wait("big tiered", lambda: sum(gauge_sum(n, "tierlog_partition_upload_lag_bytes", {"big"})
                                           for n in leaders()) < 4 * 2**20, 300)
            nodes[4].start()
            probe = args.rate * args.seconds
            idle = produce(args, bootstrap, "lat", probe, 100, args.rate)
            out["latency_idle_ms"] = idle["latency_ms"]
            vk.say(f"idle: p50 {idle['latency_ms']['p50']} ms, p99 {idle['latency_ms']['p99']} ms")

            # Drain node 1 under the latency probe.
            result: dict[str, Any] = {}
            t = threading.Thread(target=lambda: result.update(
                produce(args, bootstrap, "lat", probe, 100, args.rate)))
            t0 = time.monotonic()
            t.start()
            node_tool(args, metadata, "drain", "1")

            def drained() -> bool:
                view = placement(nodes[2].port, sorted(topics))
                return all(1 not in p["replicas"] and len(p["isr"]) == 3
                           for ps in view.values() for p in ps)
            wait("node 1 drained", drained, args.timeout)
            out["drain_s"] = time.monotonic() - t0
            t.join()
            out["latency_during_drain_ms"] = result["latency_ms"]
            out["drain_copied_from_peers_bytes"] = gauge_sum(nodes[4], "tierlog_partition_replicated_bytes", topics)
            out["tiered_bytes"] = max(gauge_sum(nodes[i], "tierlog_partition_remote_bytes", topics) for i in (2, 3, 4))
            vk.say(f"drain: {out['drain_s']:.1f} s, node 4 copied {out['drain_copied_from_peers_bytes']/2**20:.1f} MiB "
                   f"from peers, {out['tiered_bytes']/2**20:.1f} MiB tiered; during the drain p50 "
                   f"{result['latency_ms']['p50']} ms, p99 {result['latency_ms']['p99']} ms")

            # Lose node 2 for good: its replicas are re-created on node 1 (empty, undrained).
            node_tool(args, metadata, "undrain", "1")
            before = gauge_sum(nodes[1], "tierlog_partition_replicated_bytes", topics)
            proc = nodes[2].proc
            assert proc is not None
            t0 = time.monotonic()
            vk.kill_group(proc, __import__("signal").SIGKILL)
            vk.reap(proc)
            nodes[2].proc = None

            def restored() -> bool:
                view = placement(nodes[3].port, sorted(topics))
                return all(2 not in p["replicas"] and len(p["replicas"]) == 3 and len(p["isr"]) == 3
                           for ps in view.values() for p in ps)
            wait("RF 3 restored", restored, args.timeout)
            out["restore_s"] = time.monotonic() - t0
            out["restore_copied_from_peers_bytes"] = gauge_sum(nodes[1], "tierlog_partition_replicated_bytes", topics) - before
            vk.say(f"node 2 lost: RF 3 back after {out['restore_s']:.1f} s (replacement delay 2 s, "
                   f"lease TTL {args.lease_ttl}); node 1 copied "
                   f"{out['restore_copied_from_peers_bytes']/2**20:.1f} MiB from peers")
        finally:
            cs.stop_all(nodes, etcd)
    return cs.report(out, args)


if __name__ == "__main__":
    sys.exit(main())
