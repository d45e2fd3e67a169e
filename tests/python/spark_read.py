"""Reads a `tierlog export` directory with Apache Spark (pyspark, local mode) and prints
{"reader": "spark", "count", "checksum"} as one JSON line. Spark discovers the topic and
partition columns from the Hive directory names.

Usage: spark_read.py OUTPUT_DIR TOPIC
"""

import json
import sys

from pyspark.sql import SparkSession

from export_checksum import checksum


def main() -> None:
    root, topic = sys.argv[1], sys.argv[2]
    spark = (
        SparkSession.builder.master("local[2]")
        .appName("tierlog-export-check")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.driver.host", "127.0.0.1")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    try:
        df = spark.read.parquet(root).where(f"topic = '{topic}'")
        count = df.count()
        rows = (
            (r["partition"], r["offset"], r["key"], r["value"])
            for r in df.select("partition", "offset", "key", "value").toLocalIterator()
        )
        n, total = checksum(rows)
        assert n == count, (n, count)
        print(json.dumps({"reader": "spark", "count": count, "checksum": str(total)}), flush=True)
    finally:
        spark.stop()


if __name__ == "__main__":
    main()
