#!/usr/bin/env python3
"""tierlog and Apache Kafka side by side on this machine: a benchmark driver, not a test.

Runs a single-node Apache Kafka 4.3.1 (KRaft combined mode, the properties of
tests/src/kafka.rs) and a single tierlog node in turn, interleaved (Kafka, tierlog, Kafka,
tierlog, ...; `--rounds`), each alone on loopback with a fresh data directory, and drives
both with the same clients:

- kafka-producer-perf-test (ProducerPerformance): 1 and 8 partitions, acks=1 and acks=all;
- kafka-consumer-perf-test (ConsumerPerformance): reads back the acks=1 topics;
- EndToEndLatency: one record at a time, produce then poll, acks=1 and acks=all;
- `tierlog bench produce` / `consume` (librdkafka): the same four produce runs and two reads;
- broker RSS after the run (VmRSS and VmHWM from /proc/PID/status), time from process start
  to the first ApiVersions answer and to a Metadata answer naming a broker and a controller
  (serving); for Kafka the `kafka-storage format` step is timed separately.

The Java producer is idempotent by default; every Java producer runs with
enable.idempotence=false, against BOTH brokers, so results stay comparable with those from
before tierlog had idempotence (eos.py measures idempotent and transactional producers).

Writes every raw measurement to a JSON file and prints a Markdown table: per metric
tierlog / Kafka as min / median / max over rounds (each ratio from one interleaved pair) and
the absolute medians. Python 3.11, standard library only. See tests/bench/README.md.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parents[2]

# Main classes behind Kafka's bin/*.sh wrappers (as in tests/src/kafka.rs, `mod class`).
KAFKA_MAIN = "kafka.Kafka"
STORAGE_TOOL = "kafka.tools.StorageTool"
PRODUCER_PERF = "org.apache.kafka.tools.ProducerPerformance"
CONSUMER_PERF = "org.apache.kafka.tools.ConsumerPerformance"
END_TO_END_LATENCY = "org.apache.kafka.tools.EndToEndLatency"

# What kafka-run-class.sh adds to every JVM (KAFKA_JVM_PERFORMANCE_OPTS), plus a fixed
# locale so the tools print decimal points.
JVM_PERF_OPTS = [
    "-server",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent",
    "-XX:MaxInlineLevel=15",
    "-Djava.awt.headless=true",
    "-Duser.language=en",
    "-Duser.country=US",
]
# kafka-server-start.sh's default heap.
KAFKA_HEAP = ["-Xmx1G", "-Xms1G"]
# kafka-producer-perf-test.sh and kafka-consumer-perf-test.sh set -Xmx512M;
# kafka-run-class.sh's default for the other tools is -Xmx256M.
PERF_TOOL_HEAP = ["-Xmx512M"]
OTHER_TOOL_HEAP = ["-Xmx256M"]

IDEMPOTENCE_OFF = "enable.idempotence=false"

# Timeouts (seconds).
READY_TIMEOUT = 120.0
STOP_TIMEOUT = 60.0
FORMAT_TIMEOUT = 120.0
ADMIN_TIMEOUT = 60.0

# Kafka error codes.
TOPIC_ALREADY_EXISTS = 36


# --------------------------------------------------------------------------------------
# Process bookkeeping: everything started is killed at exit, Ctrl-C included.
# --------------------------------------------------------------------------------------

_children: dict[int, subprocess.Popen] = {}


def spawn(cmd: list[str], **kwargs: Any) -> subprocess.Popen:
    """Starts `cmd` in its own session (a Ctrl-C at the terminal reaches only us) and
    remembers it for the final cleanup."""
    proc = subprocess.Popen(cmd, start_new_session=True, stdin=subprocess.DEVNULL, **kwargs)
    _children[proc.pid] = proc
    return proc


def kill_group(proc: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def reap(proc: subprocess.Popen) -> None:
    """Kills `proc`'s process group (if still there) and forgets it."""
    if proc.poll() is None:
        kill_group(proc)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
    _children.pop(proc.pid, None)


def kill_all_children() -> None:
    for proc in list(_children.values()):
        reap(proc)


def _terminate(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


class ToolResult:
    def __init__(self, cmd: list[str], code: int | None, stdout: str, stderr: str, secs: float):
        self.cmd = cmd
        self.code = code  # None: killed at the timeout
        self.stdout = stdout
        self.stderr = stderr
        self.secs = secs

    def tails(self, lines: int = 25) -> dict[str, Any]:
        def tail(text: str) -> str:
            return "\n".join(text.splitlines()[-lines:])

        return {"exit_code": self.code, "stdout_tail": tail(self.stdout), "stderr_tail": tail(self.stderr)}


def run_tool(cmd: list[str], timeout: float, env: dict[str, str] | None = None) -> ToolResult:
    """Runs one client tool to completion, killing it (and its group) at `timeout`."""
    started = time.monotonic()
    proc = spawn(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        out, err = proc.communicate(timeout=timeout)
        code: int | None = proc.returncode
    except subprocess.TimeoutExpired:
        kill_group(proc)
        out, err = proc.communicate()
        code = None
    finally:
        reap(proc)
    return ToolResult(
        cmd,
        code,
        out.decode("utf-8", "replace"),
        err.decode("utf-8", "replace"),
        time.monotonic() - started,
    )


# --------------------------------------------------------------------------------------
# A minimal Kafka wire client: ApiVersions v0, Metadata v4, CreateTopics v2-v4.
# --------------------------------------------------------------------------------------

API_CREATE_TOPICS = 19
API_METADATA = 3
API_VERSIONS = 18


class Reader:
    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def take(self, fmt: str) -> Any:
        values = struct.unpack_from(">" + fmt, self.data, self.pos)
        self.pos += struct.calcsize(">" + fmt)
        return values[0] if len(values) == 1 else values

    def string(self) -> str | None:
        n = self.take("h")
        if n < 0:
            return None
        s = self.data[self.pos : self.pos + n].decode("utf-8", "replace")
        self.pos += n
        return s

    def int32_array(self) -> list[int]:
        n = self.take("i")
        return [self.take("i") for _ in range(max(n, 0))]


def enc_string(s: str) -> bytes:
    b = s.encode()
    return struct.pack(">h", len(b)) + b


class KafkaConn:
    """One blocking connection speaking just enough of the protocol for readiness checks
    and topic creation (request header v1, response header v0: no flexible versions)."""

    def __init__(self, host: str, port: int, timeout: float = 5.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.settimeout(timeout)
        self.corr = 0
        self.versions: dict[int, tuple[int, int]] = {}

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> "KafkaConn":
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()

    def _recv(self, n: int) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("connection closed by the broker")
            buf += chunk
        return bytes(buf)

    def request(self, api_key: int, version: int, body: bytes) -> Reader:
        self.corr += 1
        msg = struct.pack(">hhi", api_key, version, self.corr) + enc_string("vs_kafka") + body
        self.sock.sendall(struct.pack(">i", len(msg)) + msg)
        (size,) = struct.unpack(">i", self._recv(4))
        reader = Reader(self._recv(size))
        corr = reader.take("i")
        if corr != self.corr:
            raise ConnectionError(f"correlation id {corr}, expected {self.corr}")
        return reader

    def api_versions(self) -> dict[int, tuple[int, int]]:
        r = self.request(API_VERSIONS, 0, b"")
        error = r.take("h")
        if error != 0:
            raise ConnectionError(f"ApiVersions error {error}")
        self.versions = {}
        for _ in range(r.take("i")):
            key, lo, hi = r.take("hhh")
            self.versions[key] = (lo, hi)
        return self.versions

    def pick(self, api_key: int, lo: int, hi: int) -> int:
        if not self.versions:
            self.api_versions()
        have = self.versions.get(api_key)
        if have is None or have[1] < lo or have[0] > hi:
            raise RuntimeError(f"API {api_key}: broker supports {have}, this client {lo}..{hi}")
        return min(hi, have[1])

    def metadata(self, topics: list[str] | None) -> dict[str, Any]:
        """Metadata v4. `topics=[]` asks for no topics."""
        version = self.pick(API_METADATA, 4, 4)
        if topics is None:
            body = struct.pack(">i", -1)
        else:
            body = struct.pack(">i", len(topics)) + b"".join(enc_string(t) for t in topics)
        body += struct.pack(">b", 0)  # allow_auto_topic_creation
        r = self.request(API_METADATA, version, body)
        r.take("i")  # throttle_time_ms
        brokers = []
        for _ in range(r.take("i")):
            node = r.take("i")
            host = r.string()
            port = r.take("i")
            r.string()  # rack
            brokers.append((node, host, port))
        r.string()  # cluster_id
        controller = r.take("i")
        out_topics: dict[str, dict[str, Any]] = {}
        for _ in range(r.take("i")):
            error = r.take("h")
            name = r.string() or ""
            r.take("b")  # is_internal
            partitions = []
            for _ in range(r.take("i")):
                p_error, index, leader = r.take("hii")
                replicas = r.int32_array()
                isr = r.int32_array()
                partitions.append(
                    {"error": p_error, "partition": index, "leader": leader,
                     "replicas": replicas, "isr": isr}
                )
            out_topics[name] = {"error": error, "partitions": partitions}
        return {"brokers": brokers, "controller_id": controller, "topics": out_topics}

    def create_topics(
        self,
        topics: list[tuple[str, int]],
        timeout_ms: int = 30000,
        replication_factor: int = 1,
        configs: dict[str, str] | None = None,
    ) -> dict[str, tuple[int, str | None]]:
        """CreateTopics v2..v4 (every topic with `configs`); returns name -> (error, message)."""
        version = self.pick(API_CREATE_TOPICS, 2, 4)
        configs = configs or {}
        encoded = struct.pack(">i", len(configs)) + b"".join(
            enc_string(k) + enc_string(v) for k, v in configs.items()
        )
        body = struct.pack(">i", len(topics))
        for name, partitions in topics:
            body += enc_string(name) + struct.pack(">ihi", partitions, replication_factor, 0) + encoded
        body += struct.pack(">ib", timeout_ms, 0)
        r = self.request(API_CREATE_TOPICS, version, body)
        r.take("i")  # throttle_time_ms
        result = {}
        for _ in range(r.take("i")):
            name = r.string() or ""
            error = r.take("h")
            message = r.string()
            result[name] = (error, message)
        return result


def create_topics(port: int, topics: list[tuple[str, int]]) -> None:
    """Creates the topics (replication factor 1) and waits until every partition has a leader."""
    with KafkaConn("127.0.0.1", port) as conn:
        results = conn.create_topics(topics)
        for name, (error, message) in results.items():
            if error not in (0, TOPIC_ALREADY_EXISTS):
                raise RuntimeError(f"CreateTopics {name}: error {error} {message or ''}")
        deadline = time.monotonic() + ADMIN_TIMEOUT
        names = [t for t, _ in topics]
        while True:
            meta = conn.metadata(names)
            missing = []
            for name, partitions in topics:
                t = meta["topics"].get(name)
                if (
                    t is None
                    or t["error"] != 0
                    or len(t["partitions"]) != partitions
                    or any(p["leader"] < 0 for p in t["partitions"])
                ):
                    missing.append(name)
            if not missing:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"topics without leaders after {ADMIN_TIMEOUT} s: {missing}")
            time.sleep(0.1)


# --------------------------------------------------------------------------------------
# Brokers
# --------------------------------------------------------------------------------------


def free_port(taken: set[int]) -> int:
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in taken:
            taken.add(port)
            return port


def read_status(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM of `pid` in MiB."""
    out: dict[str, float] = {}
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return out
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(rest.split()[0]) / 1024.0  # kB -> MiB
    return out


def log_tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


class Broker:
    name = ""

    def __init__(self, run_dir: Path):
        self.run_dir = run_dir
        self.data_dir = run_dir / "data"
        self.log_path = run_dir / f"{self.name}.log"
        self.proc: subprocess.Popen | None = None
        self.port = 0
        self.startup: dict[str, Any] = {}

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _launch(self, cmd: list[str]) -> None:
        """Spawns the broker and times it to the first ApiVersions answer and to a Metadata
        answer that names a broker and a controller."""
        log = open(self.log_path, "ab")
        try:
            t0 = time.monotonic()
            self.proc = spawn(cmd, stdout=log, stderr=subprocess.STDOUT)
        finally:
            log.close()
        first_api_versions = None
        problem = "no attempt yet"
        deadline = t0 + READY_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited during startup with {self.proc.returncode}:\n{log_tail(self.log_path)}"
                )
            try:
                with KafkaConn("127.0.0.1", self.port, timeout=2.0) as conn:
                    conn.api_versions()
                    if first_api_versions is None:
                        first_api_versions = time.monotonic() - t0
                    meta = conn.metadata([])
                    if meta["brokers"] and meta["controller_id"] >= 0:
                        ready = time.monotonic() - t0
                        break
                    problem = f"Metadata: {len(meta['brokers'])} broker(s), controller {meta['controller_id']}"
            except (OSError, ConnectionError, RuntimeError, struct.error) as e:
                problem = f"{type(e).__name__}: {e}"
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{self.name} not serving after {READY_TIMEOUT} s ({problem}):\n{log_tail(self.log_path)}"
                )
            time.sleep(0.05)
        self.startup.update(
            {"first_api_versions_s": first_api_versions, "serving_s": ready, "pid": self.proc.pid}
        )

    def memory(self) -> dict[str, float]:
        return read_status(self.proc.pid) if self.proc else {}

    def stop(self) -> dict[str, Any]:
        """SIGTERM, then SIGKILL after STOP_TIMEOUT; returns how it went."""
        if self.proc is None:
            return {}
        t0 = time.monotonic()
        kill_group(self.proc, signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=STOP_TIMEOUT)
            result = {"stop_s": time.monotonic() - t0, "exit_code": code}
        except subprocess.TimeoutExpired:
            result = {"stop_s": None, "exit_code": None, "killed": True}
        reap(self.proc)
        self.proc = None
        return result


class KafkaBroker(Broker):
    name = "kafka"

    def __init__(self, run_dir: Path, args: argparse.Namespace, ports: set[int]):
        super().__init__(run_dir)
        self.args = args
        self.port = free_port(ports)
        self.controller_port = free_port(ports)

    def properties(self) -> str:
        p = self.port
        c = self.controller_port
        # The properties of tests/src/kafka.rs (KafkaServer::start).
        props = [
            ("process.roles", "broker,controller"),
            ("node.id", "1"),
            ("controller.quorum.voters", f"1@127.0.0.1:{c}"),
            ("listeners", f"PLAINTEXT://127.0.0.1:{p},CONTROLLER://127.0.0.1:{c}"),
            ("advertised.listeners", f"PLAINTEXT://127.0.0.1:{p}"),
            ("controller.listener.names", "CONTROLLER"),
            ("listener.security.protocol.map", "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"),
            ("log.dirs", str(self.data_dir)),
            ("num.partitions", "1"),
            ("offsets.topic.replication.factor", "1"),
            ("offsets.topic.num.partitions", "4"),
            ("transaction.state.log.replication.factor", "1"),
            ("transaction.state.log.min.isr", "1"),
            ("transaction.state.log.num.partitions", "4"),
            ("share.coordinator.state.topic.replication.factor", "1"),
            ("share.coordinator.state.topic.min.isr", "1"),
            ("group.initial.rebalance.delay.ms", "0"),
        ]
        return "".join(f"{k}={v}\n" for k, v in props)

    def start(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        config = self.run_dir / "server.properties"
        config.write_text(self.properties())
        cluster_id = base64.urlsafe_b64encode(os.urandom(16)).rstrip(b"=").decode()
        fmt = run_tool(
            java_cmd(self.args, STORAGE_TOOL, OTHER_TOOL_HEAP)
            + ["format", f"--cluster-id={cluster_id}", "-c", str(config)],
            FORMAT_TIMEOUT,
        )
        if fmt.code != 0:
            raise RuntimeError(f"kafka-storage format failed ({fmt.code}):\n{fmt.stdout}\n{fmt.stderr}")
        self.startup["format_s"] = fmt.secs
        self._launch(java_cmd(self.args, KAFKA_MAIN, KAFKA_HEAP) + [str(config)])


class TierlogBroker(Broker):
    name = "tierlog"

    def __init__(self, run_dir: Path, args: argparse.Namespace, ports: set[int]):
        super().__init__(run_dir)
        self.args = args
        self.port = free_port(ports)
        self.http_port = free_port(ports)

    def start(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._launch(
            [
                str(self.args.tierlog_bin),
                "serve",
                "--data-dir",
                str(self.data_dir),
                "--listen",
                f"127.0.0.1:{self.port}",
                "--http",
                f"127.0.0.1:{self.http_port}",
                # Kafka runs with group.initial.rebalance.delay.ms=0 (the tests' properties):
                # the same here, so a consumer's group join costs both brokers the same.
                "--group-initial-rebalance-delay",
                "0s",
            ]
        )


def java_cmd(args: argparse.Namespace, main_class: str, heap: list[str]) -> list[str]:
    return (
        [args.java]
        + heap
        + JVM_PERF_OPTS
        + [f"-Dlog4j2.configurationFile={args.log4j}", "-cp", f"{args.kafka_lib}/*", main_class]
    )


# --------------------------------------------------------------------------------------
# Output parsers (the tools' summary lines)
# --------------------------------------------------------------------------------------

NUM = r"(-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)"

PRODUCER_SUMMARY = re.compile(
    rf"^(\d+) records sent, {NUM} records/sec \({NUM} MB/sec\), {NUM} ms avg latency, "
    rf"{NUM} ms max latency, (\d+) ms 50th, (\d+) ms 95th, (\d+) ms 99th, (\d+) ms 99\.9th\.?\s*$",
    re.M,
)


def parse_producer_perf(stdout: str) -> dict[str, Any]:
    """The final line of ProducerPerformance (the one with percentiles; progress lines have
    none). Without --warmup-records there is no 'steady state' line."""
    matches = PRODUCER_SUMMARY.findall(stdout)
    if not matches:
        raise ValueError("no ProducerPerformance summary line")
    m = matches[-1]
    return {
        "records": int(m[0]),
        "records_per_sec": float(m[1]),
        "mb_per_sec": float(m[2]),
        "latency_ms_avg": float(m[3]),
        "latency_ms_max": float(m[4]),
        "latency_ms_p50": int(m[5]),
        "latency_ms_p95": int(m[6]),
        "latency_ms_p99": int(m[7]),
        "latency_ms_p999": int(m[8]),
    }


def parse_consumer_perf(stdout: str) -> dict[str, Any]:
    """ConsumerPerformance prints a header line (start.time, end.time, data.consumed.in.MB,
    MB.sec, data.consumed.in.nMsg, nMsg.sec, rebalance.time.ms, fetch.time.ms, fetch.MB.sec,
    fetch.nMsg.sec) and one line of values."""
    lines = [l.strip() for l in stdout.splitlines()]
    for i, line in enumerate(lines):
        if not line.startswith("start.time"):
            continue
        header = [h.strip() for h in line.split(",")]
        for values_line in lines[i + 1 :]:
            values = [v.strip() for v in values_line.split(",")]
            if len(values) != len(header):
                continue
            row = dict(zip(header, values))
            out: dict[str, Any] = {"start_time": row.get("start.time"), "end_time": row.get("end.time")}
            for key, name in [
                ("data.consumed.in.MB", "mb"),
                ("MB.sec", "mb_per_sec"),
                ("data.consumed.in.nMsg", "records"),
                ("nMsg.sec", "records_per_sec"),
                ("rebalance.time.ms", "rebalance_ms"),
                ("fetch.time.ms", "fetch_ms"),
                ("fetch.MB.sec", "fetch_mb_per_sec"),
                ("fetch.nMsg.sec", "fetch_records_per_sec"),
            ]:
                if key in row:
                    out[name] = float(row[key])
            if "records" in out:
                out["records"] = int(out["records"])
            return out
    raise ValueError("no ConsumerPerformance summary line")


E2E_AVG = re.compile(rf"^Avg latency: {NUM} ms\s*$", re.M)
E2E_PCT = re.compile(r"^Percentiles: 50th = (\d+), 99th = (\d+), 99\.9th = (\d+)\s*$", re.M)


def parse_e2e(stdout: str) -> dict[str, Any]:
    """EndToEndLatency: 'Avg latency: X ms' and 'Percentiles: 50th = a, 99th = b, 99.9th = c'
    (the percentiles are whole milliseconds, truncated, in the tool itself)."""
    avg = E2E_AVG.findall(stdout)
    pct = E2E_PCT.findall(stdout)
    if not avg or not pct:
        raise ValueError("no EndToEndLatency summary lines")
    p50, p99, p999 = (int(x) for x in pct[-1])
    return {"latency_ms_avg": float(avg[-1]), "latency_ms_p50": p50, "latency_ms_p99": p99, "latency_ms_p999": p999}


def parse_tierlog_bench(stdout: str) -> dict[str, Any]:
    """`tierlog bench --json` prints one JSON object on stdout (progress goes to stderr)."""
    for line in reversed(stdout.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            return json.loads(line)
    raise ValueError("no JSON report from tierlog bench")


# --------------------------------------------------------------------------------------
# One broker, one round
# --------------------------------------------------------------------------------------

PRODUCE_CASES = [(1, "1"), (1, "all"), (8, "1"), (8, "all")]
CONSUME_PARTITIONS = [1, 8]
E2E_ACKS = ["1", "all"]


def topic(prefix: str, partitions: int, acks: str) -> str:
    return f"{prefix}-p{partitions}-acks{acks}"


def measure(
    label: str,
    results: dict[str, Any],
    errors: list[str],
    tool: Callable[[], ToolResult],
    parse: Callable[[str], dict[str, Any]],
    check: Callable[[dict[str, Any], ToolResult], str | None],
) -> None:
    """Runs one tool, parses its summary, stores the measurement (or the failure) under
    `label`."""
    say(f"    {label} ...")
    r = tool()
    entry: dict[str, Any] = {"cmd": " ".join(r.cmd), "wall_s": round(r.secs, 3)}
    problem = None
    parsed: dict[str, Any] | None = None
    try:
        parsed = parse(r.stdout)
    except (ValueError, json.JSONDecodeError) as e:
        problem = str(e)
    if r.code is None:
        problem = f"killed at the timeout after {r.secs:.0f} s" + (f"; {problem}" if problem else "")
    elif r.code != 0:
        problem = f"exit code {r.code}" + (f"; {problem}" if problem else "")
    if parsed is not None:
        entry["result"] = parsed
        if problem is None:
            problem = check(parsed, r)
    if "Exception" in r.stderr or "ERROR" in r.stderr:
        entry["stderr_has_errors"] = True
    if problem is not None:
        entry["error"] = problem
        entry.update(r.tails())
        errors.append(f"{label}: {problem}")
        say(f"      FAILED: {problem}\n      stderr: " + "\n      ".join(r.stderr.splitlines()[-8:]))
    else:
        entry["stderr_tail"] = "\n".join(r.stderr.splitlines()[-5:])
    results[label] = entry


def run_broker(broker: Broker, args: argparse.Namespace, record: dict[str, Any]) -> None:
    """One broker's run, filling `record` (already part of the results, so an interrupted
    run keeps what it measured)."""
    n = args.num_records
    size = args.record_size
    round_no = record["round"]
    record.update(
        {
            "loadavg_before": Path("/proc/loadavg").read_text().split()[:3],
            "started_at": dt.datetime.now().isoformat(timespec="seconds"),
        }
    )
    interrupted = False
    errors: list[str] = []
    results: dict[str, Any] = {}
    record["measurements"] = results
    record["errors"] = errors
    throughput_timeout = max(180.0, n / 10_000.0)
    try:
        say(f"  [{broker.name}] starting (round {round_no}) ...")
        broker.start()
        record["startup"] = dict(broker.startup)
        say(
            f"    serving after {broker.startup['serving_s']:.2f} s"
            + (f" (storage format {broker.startup['format_s']:.2f} s before)" if "format_s" in broker.startup else "")
        )
        port = broker.port
        bs = broker.bootstrap
        create_topics(
            port,
            [(topic("perf", p, a), p) for p, a in PRODUCE_CASES]
            + [(topic("rdk", p, a), p) for p, a in PRODUCE_CASES]
            + [(f"e2e-acks{a}", 1) for a in E2E_ACKS],
        )

        # kafka-producer-perf-test
        for partitions, acks in PRODUCE_CASES:
            t = topic("perf", partitions, acks)
            measure(
                f"producer_perf.p{partitions}.acks{acks}",
                results,
                errors,
                lambda t=t, acks=acks: run_tool(
                    java_cmd(args, PRODUCER_PERF, PERF_TOOL_HEAP)
                    + [
                        "--bootstrap-server", bs,
                        "--topic", t,
                        "--num-records", str(n),
                        "--throughput", "-1",
                        "--record-size", str(size),
                        "--producer-props", f"acks={acks}", IDEMPOTENCE_OFF,
                    ],
                    throughput_timeout,
                ),
                parse_producer_perf,
                lambda res, _r: None if res["records"] == n else f"{res['records']} of {n} records sent",
            )

        # kafka-consumer-perf-test: reads back the acks=1 topics.
        for partitions in CONSUME_PARTITIONS:
            t = topic("perf", partitions, "1")
            measure(
                f"consumer_perf.p{partitions}",
                results,
                errors,
                lambda t=t: run_tool(
                    java_cmd(args, CONSUMER_PERF, PERF_TOOL_HEAP)
                    + [
                        "--bootstrap-server", bs,
                        "--topic", t,
                        "--num-records", str(n),
                        "--group", f"vs-kafka-{t}",
                        "--timeout", "30000",
                    ],
                    throughput_timeout,
                ),
                parse_consumer_perf,
                lambda res, _r: None if res.get("records", 0) >= n else f"read {res.get('records')} of {n} records",
            )

        # tierlog bench produce / consume (librdkafka).
        for partitions, acks in PRODUCE_CASES:
            t = topic("rdk", partitions, acks)
            measure(
                f"tierlog_bench_produce.p{partitions}.acks{acks}",
                results,
                errors,
                lambda t=t, partitions=partitions, acks=acks: run_tool(
                    [
                        str(args.tierlog_bin), "bench",
                        "--bootstrap", bs, "--json", "--report-interval", "0s",
                        "produce",
                        "--topic", t,
                        "--records", str(n),
                        "--record-size", str(size),
                        "--acks", acks,
                        "--partitions", str(partitions),
                    ],
                    throughput_timeout,
                ),
                parse_tierlog_bench,
                lambda res, _r: None if res.get("acked") == n else f"{res.get('acked')} of {n} acknowledged",
            )
        for partitions in CONSUME_PARTITIONS:
            t = topic("rdk", partitions, "1")
            threads = args.bench_consume_threads if partitions > 1 else 1
            measure(
                f"tierlog_bench_consume.p{partitions}",
                results,
                errors,
                lambda t=t, threads=threads: run_tool(
                    [
                        str(args.tierlog_bin), "bench",
                        "--bootstrap", bs, "--json", "--report-interval", "0s",
                        "consume",
                        "--topic", t,
                        "--records", str(n),
                        "--threads", str(threads),
                    ],
                    throughput_timeout,
                ),
                parse_tierlog_bench,
                lambda res, _r: None if res.get("records", 0) >= n else f"read {res.get('records')} of {n} records",
            )

        # EndToEndLatency: default client settings except idempotence (command config).
        e2e_config = broker.run_dir / "e2e-client.properties"
        e2e_config.write_text(IDEMPOTENCE_OFF + "\n")
        for acks in E2E_ACKS:
            measure(
                f"e2e_latency.acks{acks}",
                results,
                errors,
                lambda acks=acks: run_tool(
                    java_cmd(args, END_TO_END_LATENCY, OTHER_TOOL_HEAP)
                    + [
                        "--bootstrap-server", bs,
                        "--topic", f"e2e-acks{acks}",
                        "--num-records", str(args.e2e_records),
                        "--producer-acks", acks,
                        "--record-size", str(size),
                        "--command-config", str(e2e_config),
                    ],
                    max(180.0, args.e2e_records * 0.1),
                ),
                parse_e2e,
                lambda _res, _r: None,
            )

        record["memory_after_mib"] = broker.memory()
        say(f"    RSS after the run: {record['memory_after_mib'].get('VmRSS', float('nan')):.0f} MiB")
    except KeyboardInterrupt:
        interrupted = record["interrupted"] = True
        raise
    except Exception as e:  # noqa: BLE001 - one broker's failure must not lose the other's numbers
        errors.append(f"{type(e).__name__}: {e}")
        say(f"    FAILED: {type(e).__name__}: {e}")
    finally:
        if interrupted:
            if broker.proc is not None:
                reap(broker.proc)
        else:
            record["stop"] = broker.stop()
        record["log"] = str(broker.log_path)
        if errors:
            record["log_tail"] = log_tail(broker.log_path)
        if not args.keep_data:
            shutil.rmtree(broker.data_dir, ignore_errors=True)


# --------------------------------------------------------------------------------------
# Summary
# --------------------------------------------------------------------------------------

# (label, unit, higher is better, how to get the value from one broker run)
Metric = tuple[str, str, bool, Callable[[dict[str, Any]], float | None]]


def _get(label: str, *path: str) -> Callable[[dict[str, Any]], float | None]:
    def f(run: dict[str, Any]) -> float | None:
        entry = run.get("measurements", {}).get(label)
        if not entry or "error" in entry:
            return None
        value: Any = entry.get("result")
        for key in path:
            if not isinstance(value, dict) or key not in value:
                return None
            value = value[key]
        return float(value) if isinstance(value, (int, float)) else None

    return f


def _startup(key: str) -> Callable[[dict[str, Any]], float | None]:
    return lambda run: run.get("startup", {}).get(key)


def _memory(key: str) -> Callable[[dict[str, Any]], float | None]:
    return lambda run: run.get("memory_after_mib", {}).get(key)


def metrics() -> list[Metric]:
    out: list[Metric] = []
    for p, a in PRODUCE_CASES:
        out.append((f"produce {p}p acks={a}, kafka-producer-perf-test", "records/s", True, _get(f"producer_perf.p{p}.acks{a}", "records_per_sec")))
    for p, a in PRODUCE_CASES:
        out.append((f"produce {p}p acks={a}, kafka-producer-perf-test p99 (loaded)", "ms", False, _get(f"producer_perf.p{p}.acks{a}", "latency_ms_p99")))
    for p in CONSUME_PARTITIONS:
        out.append((f"consume {p}p, kafka-consumer-perf-test (fetch.nMsg.sec)", "records/s", True, _get(f"consumer_perf.p{p}", "fetch_records_per_sec")))
    for p in CONSUME_PARTITIONS:
        out.append((f"consume {p}p, kafka-consumer-perf-test (nMsg.sec, incl. group join)", "records/s", True, _get(f"consumer_perf.p{p}", "records_per_sec")))
    for p, a in PRODUCE_CASES:
        out.append((f"produce {p}p acks={a}, tierlog bench", "records/s", True, _get(f"tierlog_bench_produce.p{p}.acks{a}", "records_per_sec")))
    for p in CONSUME_PARTITIONS:
        out.append((f"consume {p}p, tierlog bench", "records/s", True, _get(f"tierlog_bench_consume.p{p}", "records_per_sec")))
    for a in E2E_ACKS:
        out.append((f"end-to-end latency acks={a}, avg", "ms", False, _get(f"e2e_latency.acks{a}", "latency_ms_avg")))
        out.append((f"end-to-end latency acks={a}, p50 (whole ms)", "ms", False, _get(f"e2e_latency.acks{a}", "latency_ms_p50")))
        out.append((f"end-to-end latency acks={a}, p99 (whole ms)", "ms", False, _get(f"e2e_latency.acks{a}", "latency_ms_p99")))
    out.append(("broker RSS after the run (VmRSS)", "MiB", False, _memory("VmRSS")))
    out.append(("broker peak RSS (VmHWM)", "MiB", False, _memory("VmHWM")))
    out.append(("start to serving (Metadata answered)", "s", False, _startup("serving_s")))
    out.append(("Kafka storage format (before start)", "s", False, _startup("format_s")))
    out.append(("stop (SIGTERM to exit)", "s", False, lambda run: run.get("stop", {}).get("stop_s")))
    return out


def fmt_value(v: float | None, unit: str) -> str:
    if v is None:
        return "–"
    if unit == "records/s":
        return f"{v / 1e6:.2f} M" if v >= 1e6 else f"{v / 1e3:.0f} k"
    if unit == "MiB":
        return f"{v:.0f} MiB"
    if unit == "s":
        return f"{v:.2f} s"
    if unit == "ms":
        return f"{v:.2f} ms" if v < 100 else f"{v:.0f} ms"
    return f"{v:g}"


def fmt_ratio(r: float | None) -> str:
    return "–" if r is None else f"{r:.2f}"


def summarize(runs: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], str]:
    rounds = sorted({r["round"] for r in runs})
    by = {(r["broker"], r["round"]): r for r in runs}
    rows = []
    for name, unit, higher_better, get in metrics():
        kafka = [get(by[("kafka", i)]) if ("kafka", i) in by else None for i in rounds]
        tier = [get(by[("tierlog", i)]) if ("tierlog", i) in by else None for i in rounds]
        ratios = [t / k for k, t in zip(kafka, tier) if k is not None and t is not None and k > 0]
        kv = [v for v in kafka if v is not None]
        tv = [v for v in tier if v is not None]
        rows.append(
            {
                "metric": name,
                "unit": unit,
                "higher_is_better": higher_better,
                "kafka": kafka,
                "tierlog": tier,
                "ratios": ratios,
                "ratio_min": min(ratios) if ratios else None,
                "ratio_median": statistics.median(ratios) if ratios else None,
                "ratio_max": max(ratios) if ratios else None,
                "kafka_median": statistics.median(kv) if kv else None,
                "tierlog_median": statistics.median(tv) if tv else None,
            }
        )
    lines = [
        "| metric | better | tierlog ÷ Kafka min | median | max | Kafka (median) | tierlog (median) |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        if row["kafka_median"] is None and row["tierlog_median"] is None:
            continue
        lines.append(
            f"| {row['metric']} | {'higher' if row['higher_is_better'] else 'lower'} "
            f"| {fmt_ratio(row['ratio_min'])} | {fmt_ratio(row['ratio_median'])} | {fmt_ratio(row['ratio_max'])} "
            f"| {fmt_value(row['kafka_median'], row['unit'])} | {fmt_value(row['tierlog_median'], row['unit'])} |"
        )
    return rows, "\n".join(lines)


# --------------------------------------------------------------------------------------


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def tool_version(cmd: list[str]) -> str:
    try:
        r = run_tool(cmd, 60)
        return (r.stdout + r.stderr).strip().splitlines()[0] if (r.stdout + r.stderr).strip() else ""
    except OSError as e:
        return f"unavailable: {e}"


def git_rev() -> str:
    try:
        return subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


def add_broker_args(ap: argparse.ArgumentParser) -> None:
    """The options every driver has for where the brokers come from."""
    ap.add_argument("--tierlog-bin", type=Path, default=REPO / "target/release/tierlog")
    ap.add_argument("--kafka-lib", type=Path, default=REPO / "tests/kafka/target/lib", help="Apache Kafka's jars (tests/install.sh)")
    ap.add_argument("--log4j", type=Path, default=REPO / "tests/kafka/log4j2.yaml")
    ap.add_argument("--java", default="java")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description="Apache Kafka vs tierlog on this machine, interleaved rounds (a benchmark, not a test).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds (Kafka, tierlog) x N")
    ap.add_argument("--num-records", type=int, default=5_000_000, help="records per produce run (perf tools and tierlog bench), read back by the consume runs")
    ap.add_argument("--record-size", type=int, default=100, help="record payload bytes")
    ap.add_argument("--e2e-records", type=int, default=10_000, help="records per EndToEndLatency run")
    ap.add_argument("--bench-consume-threads", type=int, default=2, help="`tierlog bench consume --threads` for the 8-partition topic")
    ap.add_argument("--tierlog-bin", type=Path, default=REPO / "target/release/tierlog")
    ap.add_argument("--kafka-lib", type=Path, default=REPO / "tests/kafka/target/lib", help="Apache Kafka's jars (tests/install.sh)")
    ap.add_argument("--log4j", type=Path, default=REPO / "tests/kafka/log4j2.yaml")
    ap.add_argument("--java", default="java")
    ap.add_argument("--brokers", default="kafka,tierlog", help="order within a round; one name measures only that broker (no ratios)")
    ap.add_argument("--work-dir", type=Path, help="data directories and broker logs (default: a new directory under $TMPDIR)")
    ap.add_argument("--out", type=Path, help="JSON results (default: vs_kafka-<time>.json in the work directory)")
    ap.add_argument("--keep-data", action="store_true", help="keep each run's data directory")
    args = ap.parse_args(argv)
    args.brokers = [b.strip() for b in args.brokers.split(",") if b.strip()]
    if not args.brokers or any(b not in ("kafka", "tierlog") for b in args.brokers):
        ap.error("--brokers takes kafka and/or tierlog")
    if args.rounds < 1 or args.num_records < 1 or args.e2e_records < 1:
        ap.error("--rounds, --num-records and --e2e-records must be positive")
    args.tierlog_bin = args.tierlog_bin.resolve()
    if not os.access(args.tierlog_bin, os.X_OK):
        ap.error(
            f"no tierlog binary at {args.tierlog_bin}; build it with "
            "`cargo build --release -p tierlog-cli --features etcd --bin tierlog` or pass --tierlog-bin"
        )
    if "kafka" in args.brokers and not any(args.kafka_lib.glob("kafka_*.jar")):
        ap.error(f"no Apache Kafka jars in {args.kafka_lib}; run tests/install.sh")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Explicit handlers: a shell without job control starts background jobs with SIGINT
    # ignored, and the children (own sessions) never see the terminal's Ctrl-C.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _terminate)
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="vs_kafka-"))
    work.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    out_path = args.out or work / f"vs_kafka-{stamp}.json"

    load = Path("/proc/loadavg").read_text().split()[:3]
    say(f"work directory {work}; load average {' '.join(load)} on {os.cpu_count()} CPUs")
    if float(load[0]) > 0.5 * (os.cpu_count() or 1):
        say("WARNING: the machine is busy; these numbers will say more about the load than about the brokers")
    say(f"Java producers run with {IDEMPOTENCE_OFF} against BOTH brokers (comparable with earlier runs; eos.py measures idempotence)")

    doc: dict[str, Any] = {
        "tool": "tests/bench/vs_kafka.py",
        "started_at": dt.datetime.now().isoformat(timespec="seconds"),
        "settings": {
            "rounds": args.rounds,
            "order": args.brokers,
            "num_records": args.num_records,
            "record_size": args.record_size,
            "e2e_records": args.e2e_records,
            "bench_consume_threads_8p": args.bench_consume_threads,
            "java_producer_props": IDEMPOTENCE_OFF,
            "kafka_jvm": KAFKA_HEAP + JVM_PERF_OPTS,
            "perf_tool_jvm": PERF_TOOL_HEAP + JVM_PERF_OPTS,
            "other_tool_jvm": OTHER_TOOL_HEAP + JVM_PERF_OPTS,
            "tierlog_bin": str(args.tierlog_bin),
        },
        "environment": {
            "cpus": os.cpu_count(),
            "kernel": platform.release(),
            "loadavg_start": load,
            "java": tool_version([args.java, "-version"]),
            "tierlog": tool_version([str(args.tierlog_bin), "--version"]),
            "kafka_jars": sorted(p.name for p in args.kafka_lib.glob("kafka_*.jar")),
            "git_rev": git_rev(),
        },
        "runs": [],
    }
    interrupted = False
    started = time.monotonic()
    try:
        for round_no in range(1, args.rounds + 1):
            say(f"round {round_no}/{args.rounds}")
            for name in args.brokers:
                ports: set[int] = set()
                run_dir = work / f"round{round_no}-{name}"
                broker: Broker = (KafkaBroker if name == "kafka" else TierlogBroker)(run_dir, args, ports)
                record: dict[str, Any] = {"broker": name, "round": round_no}
                doc["runs"].append(record)
                run_broker(broker, args, record)
                out_path.write_text(json.dumps(doc, indent=2))
    except KeyboardInterrupt:
        interrupted = True
        say("interrupted: stopping everything started")
    finally:
        kill_all_children()
    doc["elapsed_s"] = round(time.monotonic() - started, 1)
    rows, table = summarize(doc["runs"])
    doc["summary"] = rows
    doc["summary_markdown"] = table
    doc["interrupted"] = interrupted
    out_path.write_text(json.dumps(doc, indent=2))

    n_rounds = len({r["round"] for r in doc["runs"]})
    print(
        f"Apache Kafka 4.3.1 vs tierlog, single node each, alone on loopback, "
        f"{n_rounds} interleaved round(s), {args.record_size}-byte records, "
        f"{args.num_records:,} records per throughput run, {args.e2e_records:,} per latency run, "
        f"{os.cpu_count()} CPUs (load average at start {' '.join(load)}).\n"
    )
    print(table)
    print(
        "\nRatios are tierlog ÷ Kafka per interleaved pair (>1 means tierlog is higher). "
        f"Every Java producer ran with `{IDEMPOTENCE_OFF}` against both brokers "
        "(eos.py measures idempotence). Java tools at default client settings "
        "otherwise; `tierlog bench` at its defaults "
        f"(8-partition consume with `--threads {args.bench_consume_threads}`). "
        "EndToEndLatency reports percentiles in whole milliseconds (truncated)."
    )
    failures = [f"round {r['round']} {r['broker']}: {e}" for r in doc["runs"] for e in r.get("errors", [])]
    if failures:
        print("\nFailures:\n" + "\n".join(f"- {f}" for f in failures))
    say(f"raw results: {out_path}; broker logs under {work}; took {doc['elapsed_s'] / 60:.1f} min")
    if interrupted:
        return 130
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
