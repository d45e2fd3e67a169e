#!/usr/bin/env python3
"""Reads a topic from `tierlog query serve` with pyarrow's Flight client, as a batch job would.

GetFlightInfo for the whole topic, then every endpoint (split) DoGet-read in parallel threads,
each thread with its own client connected to the endpoint's location. Prints one JSON line:

  {"count": N, "checksum": C, "endpoints": E, "total_records": T, "partitions": {...},
   "seconds": S, "records_per_s": R, "bytes": B}

`checksum` is order independent: the sum, modulo 2**64, of the 64-bit FNV-1a hash of each
record's canonical bytes — partition (i32 BE), offset (i64 BE), then key and value each as
0x00 for null or 0x01 + length (i32 BE) + bytes. tests/tests/flight.rs computes the same
over what it produced. `--bench` skips the checksum (pyarrow's own speed only).

With `--check-errors` it also asks for things that do not exist and checks the Flight errors.
Exit status 0 on success; any failure raises.
"""

import argparse
import concurrent.futures
import json
import struct
import sys
import time

import pyarrow as pa
import pyarrow.flight as flight

FNV_OFFSET = 0xCBF29CE484222325
FNV_PRIME = 0x100000001B3
MASK = (1 << 64) - 1


def fnv1a(data: bytes) -> int:
    h = FNV_OFFSET
    for b in data:
        h = ((h ^ b) * FNV_PRIME) & MASK
    return h


def field(b):
    if b is None:
        return b"\x00"
    return b"\x01" + struct.pack(">i", len(b)) + b


def read_endpoint(endpoint, default_location, bench):
    locations = [l for l in endpoint.locations if not l.uri.startswith(b"arrow-flight-reuse")]
    location = locations[0] if locations else default_location
    client = flight.connect(location)
    try:
        table = client.do_get(endpoint.ticket).read_all()
    finally:
        client.close()
    out = {"rows": table.num_rows, "bytes": table.nbytes, "checksum": 0, "keys": set(), "per_partition": {}}
    if bench:
        return out
    parts = table.column("partition").to_pylist()
    offsets = table.column("offset").to_pylist()
    keys = table.column("key").to_pylist()
    values = table.column("value").to_pylist()
    topics = table.column("topic").to_pylist()
    checksum = 0
    last = {}
    for t, p, o, k, v in zip(topics, parts, offsets, keys, values):
        if p in last and o <= last[p]:
            raise AssertionError(f"offsets not increasing within a split: partition {p}, {last[p]} then {o}")
        last[p] = o
        out["keys"].add((t, p, o))
        out["per_partition"][p] = out["per_partition"].get(p, 0) + 1
        checksum = (checksum + fnv1a(struct.pack(">iq", p, o) + field(k) + field(v))) & MASK
    out["checksum"] = checksum
    return out


def expect_error(fn, kinds, needle):
    try:
        fn()
    except kinds as e:
        if needle not in str(e):
            raise AssertionError(f"error {e!r} does not mention {needle!r}")
        return
    except Exception as e:  # noqa: BLE001 - report the wrong kind clearly
        raise AssertionError(f"expected {kinds} mentioning {needle!r}, got {type(e).__name__}: {e}")
    raise AssertionError(f"expected {kinds} mentioning {needle!r}, got success")


def check_errors(client, topic):
    cmd = lambda obj: flight.FlightDescriptor.for_command(json.dumps(obj).encode())  # noqa: E731
    expect_error(lambda: client.get_flight_info(cmd({"topic": "no-such-topic"})),
                 (pa.ArrowKeyError, flight.FlightError, pa.ArrowException), "no topic")
    expect_error(lambda: client.get_flight_info(flight.FlightDescriptor.for_command(b"SELECT 1")),
                 (pa.ArrowInvalid,), "not a tierlog query")
    expect_error(lambda: client.get_flight_info(cmd({"topic": topic, "columns": ["colour"]})),
                 (pa.ArrowInvalid,), "unknown column")
    expect_error(lambda: client.get_flight_info(cmd({"topic": topic, "partitions": [999]})),
                 (pa.ArrowKeyError, flight.FlightError, pa.ArrowException), "no partition 999")
    expect_error(lambda: client.do_get(flight.Ticket(b"garbage")).read_all(),
                 (pa.ArrowInvalid,), "not a ticket")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--location", required=True, help="grpc+tcp://host:port")
    ap.add_argument("--topic", required=True)
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--bench", action="store_true", help="count only, no checksum")
    ap.add_argument("--check-errors", action="store_true")
    args = ap.parse_args()

    location = flight.Location(args.location)
    client = flight.connect(location)
    listed = [f.descriptor.path[0].decode() for f in client.list_flights() if f.descriptor.path]
    if args.topic not in listed:
        raise AssertionError(f"ListFlights does not list {args.topic!r}: {listed}")
    if args.check_errors:
        check_errors(client, args.topic)

    start = time.monotonic()
    descriptor = flight.FlightDescriptor.for_command(json.dumps({"topic": args.topic}).encode())
    info = client.get_flight_info(descriptor)
    path_info = client.get_flight_info(flight.FlightDescriptor.for_path(args.topic))
    if len(path_info.endpoints) != len(info.endpoints):
        raise AssertionError("path and command descriptors of the whole topic disagree")
    with concurrent.futures.ThreadPoolExecutor(max_workers=args.workers) as pool:
        results = list(pool.map(lambda ep: read_endpoint(ep, location, args.bench), info.endpoints))
    seconds = time.monotonic() - start

    count = sum(r["rows"] for r in results)
    seen = set()
    per_partition = {}
    checksum = 0
    for r in results:
        if seen & r["keys"]:
            raise AssertionError("a record was returned by two endpoints")
        seen |= r["keys"]
        checksum = (checksum + r["checksum"]) & MASK
        for p, n in r["per_partition"].items():
            per_partition[str(p)] = per_partition.get(str(p), 0) + n
    if info.total_records >= 0 and not args.bench and count > info.total_records:
        raise AssertionError(f"read {count} rows, more than the {info.total_records} estimated")
    print(json.dumps({
        "count": count,
        "checksum": str(checksum),
        "endpoints": len(info.endpoints),
        "total_records": info.total_records,
        "partitions": per_partition,
        "seconds": round(seconds, 3),
        "records_per_s": round(count / seconds) if seconds > 0 else None,
        "bytes": sum(r["bytes"] for r in results),
        "schema": [f.name for f in info.schema],
    }))
    client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
