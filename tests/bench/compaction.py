#!/usr/bin/env python3
"""The log cleaner, tierlog vs Apache Kafka, on the same bytes: a benchmark driver, not a test.

1. `cargo bench -p tierlog-tiering --bench clean` builds a dirty compacted log (N MiB of
   100-byte values, keys drawn from 10% as many unique keys as records, batches of 100 records
   in the chosen codec) and, in-process, cleans it once with tierlog's cleaner (one thread,
   128 MiB key map): its line `cleaned ... MB/s on one core` is tierlog's number.
2. The same binary builds the same log again into a directory; those segment files (Kafka's
   format) are put into a stopped single-node Apache Kafka 4.3.1 as the one partition of a
   compacted topic, and Kafka is started with `log.cleaner.backoff.ms=100`. Kafka's log cleaner
   (one thread, `log.cleaner.dedupe.buffer.size` 128 MiB, the default) cleans it and logs
   `N MB of log processed in T seconds`; the dirty bytes over T is Kafka's number.

Prints both and the ratio. Python 3.11, standard library; reuses vs_kafka.py's Kafka launcher.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import vs_kafka as vk  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


def cargo_bench(env: dict[str, str]) -> str:
    out = subprocess.run(
        ["cargo", "bench", "-p", "tierlog-tiering", "--bench", "clean"],
        cwd=REPO,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mib", type=int, default=256)
    ap.add_argument("--codec", default="lz4", choices=["none", "gzip", "snappy", "lz4", "zstd"])
    ap.add_argument("--timeout", type=float, default=600.0)
    mine = ap.parse_args()
    env = {"TIERLOG_BENCH_CLEAN_MIB": str(mine.mib), "TIERLOG_BENCH_CLEAN_CODEC": mine.codec}

    out = cargo_bench(env)
    m = re.search(r"cleaned (\d+) MiB of dirty log in ([\d.]+) s: ([\d.]+) MB/s", out)
    if not m:
        print(out)
        raise SystemExit("no tierlog cleaning line")
    tierlog_mbs = float(m.group(3))
    print(out.strip().splitlines()[0])
    print(f"tierlog: {m.group(0)}")

    work = Path(tempfile.mkdtemp(prefix="tierlog-compaction-bench-"))
    try:
        built = work / "built"
        cargo_bench({**env, "TIERLOG_BENCH_CLEAN_BUILD_ONLY": str(built)})
        dirty = sum(p.stat().st_size for p in built.glob("*.log"))
        # Kafka's cleaner reports its statistics at INFO (the tests' log4j config keeps WARN).
        log4j = work / "log4j2.yaml"
        log4j.write_text((REPO / "tests/kafka/log4j2.yaml").read_text().replace("level: WARN", "level: INFO"))
        args = vk.parse_args(["--brokers", "kafka", "--tierlog-bin", "/bin/true", "--log4j", str(log4j)])
        kafka = vk.KafkaBroker(work / "kafka", args, set())
        base_props = kafka.properties
        kafka.properties = lambda: base_props() + "log.cleaner.backoff.ms=100\nlog.cleanup.policy=compact\n"
        kafka.start()
        vk.create_topics(kafka.port, [("clean", 1)])
        part = kafka.data_dir / "clean-0"
        deadline = time.monotonic() + 60
        while not any(part.glob("*.log")):
            if time.monotonic() > deadline:
                raise SystemExit("Kafka created no log for clean-0")
            time.sleep(0.1)
        kafka.stop()
        for f in part.iterdir():
            if f.suffix in (".log", ".index", ".timeindex", ".snapshot", ".txnindex"):
                f.unlink()
        for f in built.iterdir():
            if f.suffix in (".log", ".index", ".timeindex"):
                shutil.copy(f, part / f.name)
        # Started again on its formatted directory.
        kafka._launch(vk.java_cmd(args, vk.KAFKA_MAIN, vk.KAFKA_HEAP) + [str(kafka.run_dir / "server.properties")])
        # Kafka cleans only below the high watermark, which restarts at its checkpoint (0 here,
        # the files were put in behind its back): one produce moves it to the log end.
        from kafka import KafkaProducer  # kafka-python, installed by tests/install.sh

        p = KafkaProducer(bootstrap_servers=kafka.bootstrap, acks="all")
        p.send("clean", key=b"bench-hw", value=b"x", partition=0).get(timeout=60)
        p.close()
        deadline = time.monotonic() + mine.timeout
        pat = re.compile(r"cleaned log clean-0.*?([\d,.]+) MB of log processed in ([\d,.]+) seconds", re.S)
        while True:
            text = kafka.log_path.read_text(errors="replace")
            k = pat.search(text)
            if k:
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"Kafka did not clean within {mine.timeout} s:\n{vk.log_tail(kafka.log_path)}")
            time.sleep(0.5)
        kafka.stop()
        secs = float(k.group(2).replace(",", ""))
        kafka_mbs = dirty / 1e6 / secs
        block = text[k.start() : k.start() + 1200].splitlines()[:8]
        print("kafka:   " + "\n         ".join(line.strip() for line in block))
        print(
            f"kafka:   cleaned {dirty / 2**20:.0f} MiB of dirty log in {secs:.2f} s: {kafka_mbs:.1f} MB/s on one core"
        )
        print(f"ratio tierlog / kafka: {tierlog_mbs / kafka_mbs:.2f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
