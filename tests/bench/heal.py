#!/usr/bin/env python3
"""How long a damaged 1 GiB segment takes to heal, from object storage and from a replica: a
benchmark driver, not a test.

Three release nodes on etcd, tiering to a `file://` object store, `segment.bytes` = 1 GiB:

- `tiered`: a topic with replication factor 1 and tiering on; once its first segment (1 GiB) is
  in object storage, its node stops (SIGTERM), the segment's `.log` file is overwritten with
  zeros (the whole file: nothing in it checks out), and the node starts again. Only the tiered
  copy can repair it.
- `replica`: a topic with replication factor 3 and tiering off; a follower's first segment is
  zeroed the same way while it is stopped. Only the leader can repair it.

The damage is found by the scrubber (`--scrub-interval 1s`, `--scrub-bytes-per-sec` 4 GiB/s
so that finding it costs little of the time) and healed by the node's own heal paths. Reported,
from the node's log: time from the node serving again to the range being quarantined, and from
quarantined to healed (the copy read, written over the bad bytes, fsynced, surveyed again), and
the heal's MiB/s, and the node's peak RSS since its restart (a heal writes the copy a piece
of 8 MiB at a time). Also a single flipped batch (1 MiB) healed from each source. Python 3.11
standard library; etcd on the PATH (tests/install.sh).

    CARGO_TARGET_DIR=/work/release-target cargo build --release -p tierlog-cli --features etcd --bin tierlog
    python3 tests/bench/heal.py --tierlog-bin /work/release-target/release/tierlog
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import cluster_scale as cs  # noqa: E402
import elastic  # noqa: E402
import vs_kafka as vk  # noqa: E402

SEGMENT = 1 << 30
NODE_ARGS = [
    "--partition-balancing", "false",
    "--leader-rebalance-interval", "0s",
    "--upload-interval", "500ms",
    "--scrub-interval", "1s",
    "--scrub-bytes-per-sec", str(4 << 30),
]
STAMP = re.compile(r"^\S*?(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+)Z")


def log_time(line: str) -> float | None:
    m = STAMP.match(line)
    if not m:
        return None
    return datetime.fromisoformat(m.group(1)[:26]).timestamp()


def wait_log(node: cs.Node, needle: str, since: int, timeout: float) -> float:
    """The wall time of the first line at or after byte `since` of the node's log holding
    `needle`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open(node.log_path, "rb") as f:
            f.seek(since)
            for raw in f:
                line = raw.decode("utf-8", "replace")
                if needle in line:
                    t = log_time(vk_strip(line))
                    if t is not None:
                        return t
        time.sleep(0.2)
    raise RuntimeError(f"node {node.node_id}: no `{needle}` in its log after {timeout} s")


def vk_strip(line: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", line)


def partition_dir(node: cs.Node, topic: str) -> Path:
    logs = node.data_dir / "logs"
    for d in logs.iterdir():
        if d.name.startswith(topic + "-") and len(d.name) == len(topic) + 33:
            return d / "0"
    raise RuntimeError(f"no directory of {topic} on node {node.node_id}")


def first_segment(node: cs.Node, topic: str) -> Path:
    logs = sorted(partition_dir(node, topic).glob("*.log"))
    return logs[0]


def zero(path: Path) -> int:
    size = path.stat().st_size
    block = bytes(8 << 20)
    with open(path, "r+b") as f:
        left = size
        while left > 0:
            n = min(left, len(block))
            f.write(block[:n])
            left -= n
        f.flush()
    return size


def flip_one_batch(path: Path) -> None:
    """Flips a byte inside the first batch's records."""
    with open(path, "r+b") as f:
        f.seek(1000)
        b = f.read(1)
        f.seek(1000)
        f.write(bytes([b[0] ^ 0x10]))


def damage_and_heal(node: cs.Node, topic: str, whole: bool, timeout: float) -> dict[str, Any]:
    node.stop()
    seg = first_segment(node, topic)
    size = zero(seg) if whole else (flip_one_batch(seg) or 1 << 20)
    since = node.log_path.stat().st_size
    t_start = time.time()
    node.start()
    t_serving = t_start + node.startup["serving_s"]
    t_found = wait_log(node, "quarantined", since, timeout)
    t_healed = wait_log(node, "damaged range healed", since, timeout)
    heal = t_healed - t_found
    mem = vk.read_status(node.proc.pid)
    return {
        "peak_rss_mib": round(mem.get("VmHWM", 0.0), 1),
        "bytes": size,
        "serving_to_quarantined_s": round(t_found - t_serving, 3),
        "quarantined_to_healed_s": round(heal, 3),
        "heal_mib_per_sec": round(size / 2**20 / heal, 1) if heal > 0 else None,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--tierlog-bin", type=Path, default=vk.REPO / "target/release/tierlog")
    p.add_argument("--lease-ttl", default="3s")
    p.add_argument("--timeout", type=float, default=600.0)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()
    if shutil.which("etcd") is None:
        print("etcd is not on the PATH (bash tests/install.sh)", file=sys.stderr)
        return 2
    out: dict[str, Any] = {}
    ports: set[int] = set()
    with tempfile.TemporaryDirectory(prefix="tierlog-heal-bench-") as tmp:
        run = Path(tmp)
        store = run / "objects"
        store.mkdir()
        etcd = cs.Etcd(run, ports)
        etcd.start()
        nodes = {i: cs.Node(i, run, args, ports, etcd, store, NODE_ARGS) for i in (1, 2, 3)}
        try:
            for n in nodes.values():
                n.start()
            first = nodes[1]
            records = (SEGMENT + (64 << 20)) // 1000
            for topic, rf, tiered in (("heal-tiered", 1, "true"), ("heal-replica", 3, "false")):
                node_tool = vk.run_tool(
                    [str(args.tierlog_bin), "topic", "create", topic, "--bootstrap", first.bootstrap,
                     "--partitions", "1", "--replication-factor", str(rf),
                     "--config", f"segment.bytes={SEGMENT}", "--config", f"remote.storage.enable={tiered}"],
                    timeout=60,
                )
                if node_tool.code != 0:
                    raise RuntimeError(f"topic create: {node_tool.tails()}")
                cs.wait_full(first.port, topic, 1, rf, args.timeout)
                r = vk.run_tool(
                    [str(args.tierlog_bin), "bench", "--bootstrap", first.bootstrap, "--json",
                     "--report-interval", "0s", "produce", "--topic", topic, "--records", str(records),
                     "--record-size", "1000", "--acks", "all", "--batch-size", str(1 << 20)],
                    timeout=args.timeout,
                )
                if r.code != 0:
                    raise RuntimeError(f"produce: {r.tails()}")
                vk.say(f"{topic}: {records} records produced")
            tiered_part = cs.topic_view(first.port, "heal-tiered")[0]
            holder = nodes[tiered_part["leader"]]
            deadline = time.monotonic() + args.timeout
            while elastic.gauge_sum(holder, "tierlog_partition_remote_segments", {"heal-tiered"}) < 1:
                if time.monotonic() > deadline:
                    raise RuntimeError("the first segment was not tiered")
                time.sleep(0.5)
            out["tiered_batch"] = damage_and_heal(holder, "heal-tiered", False, args.timeout)
            vk.say(f"one batch from object storage: {out['tiered_batch']}")
            out["tiered_segment"] = damage_and_heal(holder, "heal-tiered", True, args.timeout)
            vk.say(f"1 GiB from object storage: {out['tiered_segment']}")
            rep = cs.topic_view(first.port, "heal-replica")[0]
            follower = nodes[next(r for r in rep["replicas"] if r != rep["leader"])]
            out["replica_batch"] = damage_and_heal(follower, "heal-replica", False, args.timeout)
            vk.say(f"one batch from the leader: {out['replica_batch']}")
            out["replica_segment"] = damage_and_heal(follower, "heal-replica", True, args.timeout)
            vk.say(f"1 GiB from the leader: {out['replica_segment']}")
        finally:
            cs.stop_all(nodes, etcd)
    return cs.report(out, args)


if __name__ == "__main__":
    sys.exit(main())
