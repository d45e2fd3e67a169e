"""Reads a `tierlog export` directory (Hive layout: topic=T/partition=P/*.parquet) with pyarrow
and with DuckDB, and prints one JSON line per reader: {"reader", "count", "checksum", ...}.

Usage: read_parquet.py OUTPUT_DIR TOPIC
"""

import json
import sys

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds

from export_checksum import checksum


def with_pyarrow(root: str, topic: str) -> dict:
    dataset = ds.dataset(root, format="parquet", partitioning="hive")
    table = dataset.to_table(filter=ds.field("topic") == topic)
    # Columns inside the files, plus topic/partition from the directory names.
    names = set(table.schema.names)
    for col in ("topic", "partition", "offset", "timestamp", "timestamp_type", "key", "value", "headers"):
        assert col in names, f"missing column {col}: {table.schema}"
    assert pa.types.is_timestamp(table.schema.field("timestamp").type), table.schema
    assert table.schema.field("timestamp").type.tz == "UTC", table.schema
    cols = [table.column(c).to_pylist() for c in ("partition", "offset", "key", "value")]
    count, total = checksum(zip(*cols))
    headers = sum(len(h) for h in table.column("headers").to_pylist())
    return {"reader": "pyarrow", "count": count, "checksum": str(total), "headers": headers,
            "files": len(dataset.files)}


def with_duckdb(root: str, topic: str) -> dict:
    con = duckdb.connect()
    rel = con.execute(
        f"""SELECT "partition", "offset", key, value
            FROM read_parquet('{root}/**/*.parquet', hive_partitioning = true)
            WHERE topic = ?""",
        [topic],
    )
    rows = rel.fetchall()
    count, total = checksum(rows)
    (n,) = con.execute(
        f"SELECT count(*) FROM read_parquet('{root}/**/*.parquet', hive_partitioning = true)"
    ).fetchone()
    assert n == count, (n, count)
    return {"reader": "duckdb", "count": count, "checksum": str(total)}


def main() -> None:
    root, topic = sys.argv[1], sys.argv[2]
    for result in (with_pyarrow(root, topic), with_duckdb(root, topic)):
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
