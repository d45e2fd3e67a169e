#!/usr/bin/env python3
"""Exactly-once costs, tierlog and Apache Kafka side by side: a benchmark driver, not a test.

Uses vs_kafka.py's brokers, tools and parsers (same directory), interleaved rounds (Kafka,
tierlog, ...), each broker alone on loopback with a fresh data directory. Per broker and round:

1. kafka-producer-perf-test, acks=all, 1 and 8 partitions, enable.idempotence=false then
   =true (each on a fresh topic): the idempotent / non-idempotent ratio per broker and
   tierlog / Kafka for the idempotent runs.
2. kafka-producer-perf-test with --transactional-id and --transaction-duration-ms (1
   partition): writes the topic that step 4 reads, and gives transactional throughput.
3. `tierlog bench produce --transactional-id ... --transaction-records 100` (librdkafka,
   classic protocol on both brokers): commits/s, records/s, commit latency p50/p99/max.
4. kafka-consumer-perf-test over the transactional topic, isolation.level=read_uncommitted
   and read_committed (--command-property; the order alternates between rounds): the
   read_committed / read_uncommitted ratio.

Prints a Markdown table and writes every raw measurement to JSON. See tests/bench/README.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))

import vs_kafka as vk  # noqa: E402

IDEM_PARTITIONS = [1, 8]
TXN_PARTITIONS = 1


def run_broker(broker: vk.Broker, args: argparse.Namespace, record: dict[str, Any]) -> None:
    n = args.num_records
    size = args.record_size
    record.update(
        {
            "loadavg_before": Path("/proc/loadavg").read_text().split()[:3],
            "started_at": dt.datetime.now().isoformat(timespec="seconds"),
        }
    )
    errors: list[str] = []
    results: dict[str, Any] = {}
    record["measurements"] = results
    record["errors"] = errors
    timeout = max(300.0, n / 5_000.0)
    interrupted = False
    try:
        vk.say(f"  [{broker.name}] starting (round {record['round']}) ...")
        broker.start()
        record["startup"] = dict(broker.startup)
        bs = broker.bootstrap
        vk.create_topics(
            broker.port,
            [(f"idem-p{p}-{m}", p) for p in IDEM_PARTITIONS for m in ("off", "on")]
            + [("txn-java", TXN_PARTITIONS), ("txn-rdk", TXN_PARTITIONS)],
        )

        def perf_produce(label: str, t: str, props: list[str], extra: list[str]) -> None:
            vk.measure(
                label,
                results,
                errors,
                lambda: vk.run_tool(
                    vk.java_cmd(args, vk.PRODUCER_PERF, vk.PERF_TOOL_HEAP)
                    + [
                        "--bootstrap-server", bs,
                        "--topic", t,
                        "--num-records", str(n),
                        "--throughput", "-1",
                        "--record-size", str(size),
                        "--producer-props", "acks=all", *props,
                    ]
                    + extra,
                    timeout,
                ),
                vk.parse_producer_perf,
                lambda res, _r: None if res["records"] == n else f"{res['records']} of {n} records sent",
            )

        # 1. Idempotence off, then on, per partition count (fresh topics).
        for p in IDEM_PARTITIONS if "idem" in args.steps else []:
            for mode in ("off", "on"):
                value = "false" if mode == "off" else "true"
                perf_produce(f"produce.p{p}.idem_{mode}", f"idem-p{p}-{mode}", [f"enable.idempotence={value}"], [])

        # 2. Transactional Java producer: writes the topic the consumers read.
        if "txn-java" in args.steps or "consume" in args.steps:
            perf_produce(
                "produce_txn_java",
                "txn-java",
                ["enable.idempotence=true"],
                ["--transactional-id", f"eos-java-{record['round']}", "--transaction-duration-ms", str(args.txn_duration_ms)],
            )

        # 3. librdkafka transactions of --txn-records records, each commit timed.
        if "txn-rdk" in args.steps:
            vk.measure(
                "bench_txn_rdk",
                results,
                errors,
                lambda: vk.run_tool(
                    [
                        str(args.tierlog_bin), "bench",
                        "--bootstrap", bs, "--json", "--report-interval", "0s",
                        *[x for kv in args.bench_property for x in ("-X", kv)],
                        "produce",
                        "--topic", "txn-rdk",
                        "--records", str(args.txn_bench_records),
                        "--record-size", str(size),
                        "--acks", "all",
                        "--transactional-id", f"eos-rdk-{record['round']}",
                        "--transaction-records", str(args.txn_records),
                    ],
                    timeout,
                ),
                vk.parse_tierlog_bench,
                lambda res, _r: None
                if res.get("acked") == args.txn_bench_records
                else f"{res.get('acked')} of {args.txn_bench_records} acknowledged",
            )

        # 4. read_uncommitted then read_committed over the transactional topic.
        # The second read finds a warmer page cache: the order alternates between rounds.
        isolations = ["read_uncommitted", "read_committed"]
        if record["round"] % 2 == 0:
            isolations.reverse()
        for iso in isolations if "consume" in args.steps else []:
            vk.measure(
                f"consume.{iso}",
                results,
                errors,
                lambda iso=iso: vk.run_tool(
                    vk.java_cmd(args, vk.CONSUMER_PERF, vk.PERF_TOOL_HEAP)
                    + [
                        "--bootstrap-server", bs,
                        "--topic", "txn-java",
                        "--num-records", str(n),
                        "--group", f"eos-{iso}",
                        "--timeout", "30000",
                        "--command-property", f"isolation.level={iso}",
                    ],
                    timeout,
                ),
                vk.parse_consumer_perf,
                lambda res, _r: None if res.get("records", 0) >= n else f"read {res.get('records')} of {n} records",
            )
        record["memory_after_mib"] = broker.memory()
    except KeyboardInterrupt:
        interrupted = record["interrupted"] = True
        raise
    except Exception as e:  # noqa: BLE001 - one broker's failure must not lose the other's numbers
        errors.append(f"{type(e).__name__}: {e}")
        vk.say(f"    FAILED: {type(e).__name__}: {e}")
    finally:
        if interrupted:
            if broker.proc is not None:
                vk.reap(broker.proc)
        else:
            record["stop"] = broker.stop()
        record["log"] = str(broker.log_path)
        if errors:
            record["log_tail"] = vk.log_tail(broker.log_path)
        if not args.keep_data:
            shutil.rmtree(broker.data_dir, ignore_errors=True)


def value(run: dict[str, Any], label: str, *path: str) -> float | None:
    return vk._get(label, *path)(run)


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


# (name, unit, how to get the value from one broker run)
Row = tuple[str, str, Callable[[dict[str, Any]], float | None]]


def rows() -> list[Row]:
    out: list[Row] = []
    for p in IDEM_PARTITIONS:
        for mode in ("off", "on"):
            out.append((f"produce {p}p acks=all idempotence={mode}", "records/s", lambda r, p=p, m=mode: value(r, f"produce.p{p}.idem_{m}", "records_per_sec")))
        out.append((f"  idempotent ÷ non-idempotent, {p}p", "ratio", lambda r, p=p: ratio(value(r, f"produce.p{p}.idem_on", "records_per_sec"), value(r, f"produce.p{p}.idem_off", "records_per_sec"))))
    out.append((f"produce {TXN_PARTITIONS}p transactional (Java, --transaction-duration-ms)", "records/s", lambda r: value(r, "produce_txn_java", "records_per_sec")))
    out.append(("librdkafka txns: commits/s", "/s", lambda r: value(r, "bench_txn_rdk", "transactions", "commits_per_sec")))
    out.append(("librdkafka txns: records/s", "records/s", lambda r: value(r, "bench_txn_rdk", "records_per_sec")))
    for q in ("p50", "p99", "max"):
        out.append((f"librdkafka txns: commit latency {q}", "ms", lambda r, q=q: value(r, "bench_txn_rdk", "transactions", "commit_latency_ms", q)))
    for q in ("p50", "p99"):
        out.append((f"librdkafka txns: begin→committed {q}", "ms", lambda r, q=q: value(r, "bench_txn_rdk", "transactions", "transaction_latency_ms", q)))
    for iso in ("read_uncommitted", "read_committed"):
        out.append((f"consume txn topic {iso} (fetch.nMsg.sec)", "records/s", lambda r, i=iso: value(r, f"consume.{i}", "fetch_records_per_sec")))
    out.append(("  read_committed ÷ read_uncommitted (fetch)", "ratio", lambda r: ratio(value(r, "consume.read_committed", "fetch_records_per_sec"), value(r, "consume.read_uncommitted", "fetch_records_per_sec"))))
    for iso in ("read_uncommitted", "read_committed"):
        out.append((f"consume txn topic {iso} (nMsg.sec, incl. join)", "records/s", lambda r, i=iso: value(r, f"consume.{i}", "records_per_sec")))
    out.append(("  read_committed ÷ read_uncommitted (nMsg.sec)", "ratio", lambda r: ratio(value(r, "consume.read_committed", "records_per_sec"), value(r, "consume.read_uncommitted", "records_per_sec"))))
    out.append(("broker RSS after the run", "MiB", lambda r: r.get("memory_after_mib", {}).get("VmRSS")))
    return out


def fmt(v: float | None, unit: str) -> str:
    if v is None:
        return "–"
    if unit == "ratio":
        return f"{v:.3f}"
    if unit == "records/s":
        return f"{v / 1e6:.3f} M" if v >= 1e6 else f"{v / 1e3:.1f} k"
    if unit == "ms":
        return f"{v:.2f} ms"
    if unit == "MiB":
        return f"{v:.0f} MiB"
    return f"{v:.1f}"


def summarize(runs: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], str]:
    rounds = sorted({r["round"] for r in runs})
    by = {(r["broker"], r["round"]): r for r in runs}
    out = []
    lines = [
        "| metric | Kafka (median; per round) | tierlog (median; per round) | tierlog ÷ Kafka (median; per round) |",
        "|---|---|---|---|",
    ]
    for name, unit, get in rows():
        k = [get(by[("kafka", i)]) if ("kafka", i) in by else None for i in rounds]
        t = [get(by[("tierlog", i)]) if ("tierlog", i) in by else None for i in rounds]
        rs = [b / a for a, b in zip(k, t) if a and b is not None]
        med = lambda xs: statistics.median([x for x in xs if x is not None]) if any(x is not None for x in xs) else None  # noqa: E731
        out.append({"metric": name, "unit": unit, "kafka": k, "tierlog": t, "tierlog_over_kafka": rs})
        each = lambda xs: ", ".join(fmt(x, unit) for x in xs)  # noqa: E731
        lines.append(
            f"| {name} | {fmt(med(k), unit)} ({each(k)}) | {fmt(med(t), unit)} ({each(t)}) "
            f"| {fmt(med(rs), 'ratio')} ({', '.join(f'{r:.2f}' for r in rs)}) |"
        )
    return out, "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description="Idempotent/transactional produce and read_committed consume, Apache Kafka vs tierlog (a benchmark, not a test).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--num-records", type=int, default=1_000_000, help="records per perf-test produce run (and read back)")
    ap.add_argument("--record-size", type=int, default=100)
    ap.add_argument("--txn-duration-ms", type=int, default=100, help="kafka-producer-perf-test --transaction-duration-ms")
    ap.add_argument("--txn-records", type=int, default=100, help="records per librdkafka transaction")
    ap.add_argument("--txn-bench-records", type=int, default=200_000, help="records in the librdkafka transactional run")
    ap.add_argument("--steps", default="idem,txn-java,txn-rdk,consume", help="which measurements (consume implies txn-java)")
    ap.add_argument("--bench-property", action="append", default=[], metavar="KEY=VALUE", help="`tierlog bench -X` for the librdkafka run; repeatable")
    ap.add_argument("--tierlog-bin", type=Path, default=vk.REPO / "target/release/tierlog")
    ap.add_argument("--kafka-lib", type=Path, default=vk.REPO / "tests/kafka/target/lib")
    ap.add_argument("--log4j", type=Path, default=vk.REPO / "tests/kafka/log4j2.yaml")
    ap.add_argument("--java", default="java")
    ap.add_argument("--brokers", default="kafka,tierlog")
    ap.add_argument("--work-dir", type=Path)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--keep-data", action="store_true")
    args = ap.parse_args(argv)
    args.brokers = [b.strip() for b in args.brokers.split(",") if b.strip()]
    if not args.brokers or any(b not in ("kafka", "tierlog") for b in args.brokers):
        ap.error("--brokers takes kafka and/or tierlog")
    args.steps = {s.strip() for s in args.steps.split(",") if s.strip()}
    if not args.steps <= {"idem", "txn-java", "txn-rdk", "consume"}:
        ap.error("--steps takes idem, txn-java, txn-rdk and consume")
    args.tierlog_bin = args.tierlog_bin.resolve()
    if not os.access(args.tierlog_bin, os.X_OK):
        ap.error(f"no tierlog binary at {args.tierlog_bin}; pass --tierlog-bin")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, vk._terminate)
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="eos-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    out_path = args.out or work / f"eos-{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}.json"
    load = Path("/proc/loadavg").read_text().split()[:3]
    vk.say(f"work directory {work}; load average {' '.join(load)} on {os.cpu_count()} CPUs")
    doc: dict[str, Any] = {
        "tool": "tests/bench/eos.py",
        "started_at": dt.datetime.now().isoformat(timespec="seconds"),
        "settings": {k: str(v) if isinstance(v, Path) else sorted(v) if isinstance(v, set) else v for k, v in vars(args).items()},
        "environment": {"cpus": os.cpu_count(), "loadavg_start": load, "git_rev": vk.git_rev()},
        "runs": [],
    }
    interrupted = False
    started = time.monotonic()
    try:
        for round_no in range(1, args.rounds + 1):
            vk.say(f"round {round_no}/{args.rounds}")
            for name in args.brokers:
                ports: set[int] = set()
                run_dir = work / f"round{round_no}-{name}"
                broker = (vk.KafkaBroker if name == "kafka" else vk.TierlogBroker)(run_dir, args, ports)
                record: dict[str, Any] = {"broker": name, "round": round_no}
                doc["runs"].append(record)
                run_broker(broker, args, record)
                out_path.write_text(json.dumps(doc, indent=2))
    except KeyboardInterrupt:
        interrupted = True
        vk.say("interrupted: stopping everything started")
    finally:
        vk.kill_all_children()
    doc["elapsed_s"] = round(time.monotonic() - started, 1)
    doc["loadavg_end"] = Path("/proc/loadavg").read_text().split()[:3]
    summary, table = summarize(doc["runs"])
    doc["summary"] = summary
    doc["summary_markdown"] = table
    out_path.write_text(json.dumps(doc, indent=2))
    loads = [" ".join(r.get("loadavg_before", [])) for r in doc["runs"]]
    print(
        f"Exactly-once costs, Apache Kafka 4.3.1 vs tierlog, single node each, {len({r['round'] for r in doc['runs']})} "
        f"interleaved round(s), {args.record_size}-byte records, {args.num_records:,} records per perf-test run, "
        f"librdkafka transactions of {args.txn_records} records ({args.txn_bench_records:,} records), "
        f"{os.cpu_count()} CPUs; load average before each broker run: {'; '.join(loads)}.\n"
    )
    print(table)
    failures = [f"round {r['round']} {r['broker']}: {e}" for r in doc["runs"] for e in r.get("errors", [])]
    if failures:
        print("\nFailures:\n" + "\n".join(f"- {f}" for f in failures))
    vk.say(f"raw results: {out_path}; took {doc['elapsed_s'] / 60:.1f} min")
    if interrupted:
        return 130
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
