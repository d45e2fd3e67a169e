#!/usr/bin/env python3
"""What security costs on one tierlog node: a benchmark driver, not a test.

One release tierlog node with a PLAINTEXT and a SASL_SSL listener (TLS 1.3, SCRAM-SHA-512),
driven by Apache Kafka's own perf tools on each listener in turn, interleaved over rounds:

- kafka-producer-perf-test (acks=1, 100-byte records, non-idempotent) and
  kafka-consumer-perf-test reading them back, per listener: records/s, MB/s, and the broker's
  CPU seconds per GB moved (utime+stime from /proc/PID/stat around each run);
- TLS handshakes per second (Python's ssl, one client thread, full handshakes, no session
  resumption) and full SASL_SSL logins per second (TLS handshake + SaslHandshake +
  SCRAM-SHA-512 exchange with 4096 PBKDF2 iterations on both sides, one client thread).

Prints a Markdown table with SASL_SSL / PLAINTEXT ratios and writes the raw numbers as JSON.
Python 3.11 standard library plus the `openssl` command (certificates) and the Kafka jars of
tests/install.sh. See tests/bench/README.md.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import os
import socket
import ssl
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import vs_kafka as vk  # noqa: E402  (shared process, tool and parser helpers)

ADMIN, PASSWORD = "admin", "bench-secret"


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_pki(d: Path) -> None:
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
            "-days", "2", "-subj", "/CN=bench CA", cwd=d)
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "node.key", "-out", "node.csr",
            "-subj", "/CN=tierlog-node", cwd=d)
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl("x509", "-req", "-in", "node.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "node.pem", "-days", "2", "-extfile", "san.ext", cwd=d)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_port(port: int, timeout: float = 30) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"port {port} not open")


# ---- a minimal Kafka client for SaslHandshake v1 + SaslAuthenticate v0 ----------------


def request(sock: ssl.SSLSocket, api: int, version: int, corr: int, body: bytes) -> bytes:
    client = b"bench"
    header = struct.pack(">hhih", api, version, corr, len(client)) + client
    frame = header + body
    sock.sendall(struct.pack(">i", len(frame)) + frame)
    n = struct.unpack(">i", recv_exact(sock, 4))[0]
    resp = recv_exact(sock, n)
    assert struct.unpack(">i", resp[:4])[0] == corr
    return resp[4:]


def recv_exact(sock: ssl.SSLSocket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    return buf


def authenticate(sock: ssl.SSLSocket, corr: int, message: bytes) -> bytes:
    resp = request(sock, 36, 0, corr, struct.pack(">i", len(message)) + message)
    err = struct.unpack(">h", resp[:2])[0]
    if err:
        raise RuntimeError(f"SaslAuthenticate error {err}")
    mlen = struct.unpack(">h", resp[2:4])[0]
    off = 4 + max(mlen, 0)
    blen = struct.unpack(">i", resp[off : off + 4])[0]
    return resp[off + 4 : off + 4 + blen]


def scram_login(port: int, ctx: ssl.SSLContext) -> None:
    raw = socket.create_connection(("127.0.0.1", port))
    with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
        mech = b"SCRAM-SHA-512"
        hs = request(s, 17, 1, 1, struct.pack(">h", len(mech)) + mech)
        assert struct.unpack(">h", hs[:2])[0] == 0
        nonce = base64.b64encode(os.urandom(18)).decode()
        bare = f"n={ADMIN},r={nonce}"
        first = authenticate(s, 2, f"n,,{bare}".encode()).decode()
        attrs = dict(a.split("=", 1) for a in first.split(","))
        salted = hashlib.pbkdf2_hmac("sha512", PASSWORD.encode(), base64.b64decode(attrs["s"]), int(attrs["i"]))
        client_key = hmac.new(salted, b"Client Key", "sha512").digest()
        stored = hashlib.sha512(client_key).digest()
        without_proof = f"c=biws,r={attrs['r']}"
        auth_msg = f"{bare},{first},{without_proof}".encode()
        sig = hmac.new(stored, auth_msg, "sha512").digest()
        proof = base64.b64encode(bytes(a ^ b for a, b in zip(client_key, sig))).decode()
        final = authenticate(s, 3, f"{without_proof},p={proof}".encode()).decode()
        assert final.startswith("v="), final


def rate(fn, seconds: float) -> float:
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        fn()
        n += 1
    return n / (time.perf_counter() - start)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tierlog-bin", type=Path, default=vk.REPO / "target/release/tierlog")
    ap.add_argument("--kafka-lib", type=Path, default=vk.REPO / "tests/kafka/target/lib")
    ap.add_argument("--log4j", type=Path, default=vk.REPO / "tests/kafka/log4j2.yaml")
    ap.add_argument("--java", default="java")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--num-records", type=int, default=3_000_000)
    ap.add_argument("--record-size", type=int, default=100)
    ap.add_argument("--rate-seconds", type=float, default=5.0)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="tierlog-security-bench-"))
    make_pki(work)
    (work / "password").write_text(PASSWORD + "\n")
    taken: set[int] = set()
    plain, secure, http = (vk.free_port(taken) for _ in range(3))
    node = vk.spawn(
        [str(args.tierlog_bin), "serve", "--data-dir", str(work / "data"), "--http", f"127.0.0.1:{http}",
         "--listeners", f"PLAINTEXT://127.0.0.1:{plain},SASL_SSL://127.0.0.1:{secure}",
         "--ssl-cert-file", str(work / "node.pem"), "--ssl-key-file", str(work / "node.key"),
         "--sasl-bootstrap-user", ADMIN, "--sasl-bootstrap-password-file", str(work / "password"),
         "--super-users", f"User:{ADMIN}", "--allow-everyone-if-no-acl-found", "true"],
        stdout=open(work / "node.log", "w"), stderr=subprocess.STDOUT,
    )
    try:
        wait_port(plain)
        wait_port(secure)
        client_props = {
            "PLAINTEXT": "",
            "SASL_SSL": (
                "security.protocol=SASL_SSL\nsasl.mechanism=SCRAM-SHA-512\n"
                "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required "
                f'username="{ADMIN}" password="{PASSWORD}";\n'
                f"ssl.truststore.type=PEM\nssl.truststore.location={work / 'ca.pem'}\n"
            ),
        }
        ports = {"PLAINTEXT": plain, "SASL_SSL": secure}
        runs: dict[str, list[dict]] = {k: [] for k in ports}
        for rnd in range(args.rounds):
            for name, port in ports.items():
                props = work / f"{name}.properties"
                props.write_text(client_props[name])
                topic = f"bench-{name.lower()}-{rnd}"
                cpu0 = cpu_seconds(node.pid)
                p = vk.run_tool(
                    vk.java_cmd(args, vk.PRODUCER_PERF, ["-Xmx512M"])
                    + ["--topic", topic, "--num-records", str(args.num_records), "--record-size",
                       str(args.record_size), "--throughput", "-1", "--producer.config", str(props),
                       "--producer-props", f"bootstrap.servers=127.0.0.1:{port}", "acks=1",
                       "enable.idempotence=false", "linger.ms=5", "batch.size=65536"],
                    timeout=600,
                )
                cpu1 = cpu_seconds(node.pid)
                c = vk.run_tool(
                    vk.java_cmd(args, vk.CONSUMER_PERF, ["-Xmx512M"])
                    + ["--bootstrap-server", f"127.0.0.1:{port}", "--topic", topic, "--messages",
                       str(args.num_records), "--command-config", str(props), "--timeout", "60000"],
                    timeout=600,
                )
                cpu2 = cpu_seconds(node.pid)
                gb = args.num_records * args.record_size / 1e9
                prod = vk.parse_producer_perf(p.stdout)
                cons = vk.parse_consumer_perf(c.stdout)
                runs[name].append({
                    "produce_records_per_sec": prod["records_per_sec"],
                    "produce_mb_per_sec": prod["mb_per_sec"],
                    "consume_records_per_sec": cons.get("fetch_records_per_sec", cons["records_per_sec"]),
                    "consume_mb_per_sec": cons.get("fetch_mb_per_sec", cons["mb_per_sec"]),
                    "broker_cpu_s_per_gb_produced": (cpu1 - cpu0) / gb,
                    "broker_cpu_s_per_gb_consumed": (cpu2 - cpu1) / gb,
                })
                print(f"round {rnd} {name}: {runs[name][-1]}", file=sys.stderr)
        ctx = ssl.create_default_context(cafile=str(work / "ca.pem"))
        ctx.options |= ssl.OP_NO_TICKET

        def handshake() -> None:
            raw = socket.create_connection(("127.0.0.1", secure))
            with ctx.wrap_socket(raw, server_hostname="127.0.0.1"):
                pass

        cpu0 = cpu_seconds(node.pid)
        t0 = time.perf_counter()
        handshakes = rate(handshake, args.rate_seconds)
        hs_cpu = (cpu_seconds(node.pid) - cpu0) / (handshakes * (time.perf_counter() - t0))
        cpu0 = cpu_seconds(node.pid)
        t0 = time.perf_counter()
        logins = rate(lambda: scram_login(secure, ctx), args.rate_seconds)
        login_cpu = (cpu_seconds(node.pid) - cpu0) / (logins * (time.perf_counter() - t0))
    finally:
        vk.kill_group(node)
        vk.reap(node)
    med = {name: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for name, rs in runs.items()}
    rows = [
        ("produce records/s", "produce_records_per_sec"),
        ("produce MB/s", "produce_mb_per_sec"),
        ("consume records/s", "consume_records_per_sec"),
        ("consume MB/s", "consume_mb_per_sec"),
        ("broker CPU s per GB produced", "broker_cpu_s_per_gb_produced"),
        ("broker CPU s per GB consumed", "broker_cpu_s_per_gb_consumed"),
    ]
    print("| metric (median of %d rounds) | PLAINTEXT | SASL_SSL | SASL_SSL / PLAINTEXT |" % args.rounds)
    print("|---|---|---|---|")
    for label, key in rows:
        a, b = med["PLAINTEXT"][key], med["SASL_SSL"][key]
        print(f"| {label} | {a:,.1f} | {b:,.1f} | {b / a:.2f} |")
    print(f"| TLS 1.3 full handshakes/s (one client) | | {handshakes:,.0f} (broker {hs_cpu * 1e3:.2f} ms CPU each) | |")
    print(f"| SASL_SSL SCRAM-SHA-512 logins/s (one client) | | {logins:,.0f} (broker {login_cpu * 1e3:.2f} ms CPU each) | |")
    out = args.out or work / "security-bench.json"
    out.write_text(json.dumps({"runs": runs, "median": med, "handshakes_per_sec": handshakes,
                               "logins_per_sec": logins, "broker_ms_cpu_per_handshake": hs_cpu * 1e3,
                               "broker_ms_cpu_per_login": login_cpu * 1e3}, indent=2))
    print(f"raw results: {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
