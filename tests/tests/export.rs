//! `tierlog export` end to end: librdkafka produces into a topic with small segments (every
//! codec, keys and values sometimes null, headers), the node is stopped with SIGTERM (a clean
//! shutdown seals and tiers its active segments), and `tierlog export` — with no node running —
//! writes Hive-partitioned Parquet that pyarrow, DuckDB and Apache Spark (pyspark, local mode,
//! Java 17) read back: the row count and a checksum of (partition, offset, key, value) equal
//! what was acknowledged. Re-runs skip complete files; `--partition`/`--from`/`--to` clip.
//!
//! Outside CI missing python packages or Java skip the reader checks loudly; with `CI` set
//! they fail the test.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::FutureRecord;
use tierlog_tests::clients::{create_topic, producer};
use tierlog_tests::node::tierlog_binary;
use tierlog_tests::tools::{require_tool, tests_dir};
use tierlog_tests::{MotoServer, NodeOptions, TestNode, s3};

const TOPIC: &str = "exported";
const PARTITIONS: i32 = 3;
/// 2026-01-01T00:00:00Z: record `i` is stamped `BASE_TS + 10 * i` ms.
const BASE_TS: i64 = 1_767_225_600_000;
const CODECS: [&str; 5] = ["none", "gzip", "snappy", "lz4", "zstd"];
const PER_CODEC: usize = 3_000;
const JSON_TOPIC: &str = "json-values";
const JSON_RECORDS: usize = 50;

/// One acknowledged record.
struct Acked {
    partition: i32,
    offset: i64,
    index: usize,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
}

/// FNV-1a 64 of `partition:offset:hex(key):hex(value)` (null = `-`); rows are summed modulo
/// 2^64. The same as tests/python/export_checksum.py.
fn row_hash(partition: i32, offset: i64, key: Option<&[u8]>, value: Option<&[u8]>) -> u64 {
    let hex = |b: Option<&[u8]>| match b {
        None => "-".to_string(),
        Some(b) => b.iter().map(|x| format!("{x:02x}")).collect(),
    };
    let text = format!("{partition}:{offset}:{}:{}", hex(key), hex(value));
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

fn checksum<'a>(rows: impl Iterator<Item = &'a Acked>) -> (u64, u64) {
    rows.fold((0, 0), |(n, sum), r| {
        (
            n + 1,
            sum.wrapping_add(row_hash(
                r.partition,
                r.offset,
                r.key.as_deref(),
                r.value.as_deref(),
            )),
        )
    })
}

fn key_of(i: usize) -> Option<Vec<u8>> {
    (i % 7 != 3).then(|| format!("key-{}", i % 101).into_bytes())
}

fn value_of(i: usize) -> Option<Vec<u8>> {
    (i % 11 != 5).then(|| {
        let len = 20 + (i * 37) % 180;
        (0..len).map(|j| (i * 31 + j * 7) as u8).collect()
    })
}

async fn produce(bootstrap: &str) -> Result<Vec<Acked>> {
    let mut acked = Vec::new();
    let mut index = 0usize;
    for codec in CODECS {
        let p = producer(
            bootstrap,
            &[("compression.type", codec), ("linger.ms", "20")],
        )?;
        let mut pending = Vec::new();
        for _ in 0..PER_CODEC {
            let i = index;
            index += 1;
            let (key, value) = (key_of(i), value_of(i));
            let headers = OwnedHeaders::new()
                .insert(Header {
                    key: "i",
                    value: Some(i.to_string().as_bytes()),
                })
                .insert(Header {
                    key: "codec",
                    value: Some(codec.as_bytes()),
                });
            let partition = (i % PARTITIONS as usize) as i32;
            let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(TOPIC)
                .partition(partition)
                .timestamp(BASE_TS + 10 * i as i64)
                .headers(headers);
            if let Some(k) = &key {
                record = record.key(k.as_slice());
            }
            if let Some(v) = &value {
                record = record.payload(v.as_slice());
            }
            let delivery = loop {
                match p.send_result(record) {
                    Ok(d) => break d,
                    Err((_, r)) => {
                        record = r;
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
            };
            pending.push((i, key, value, delivery));
        }
        for (i, key, value, delivery) in pending {
            let d = delivery
                .await
                .context("delivery future canceled")?
                .map_err(|(e, _)| anyhow::anyhow!("record {i} not acknowledged: {e}"))?;
            acked.push(Acked {
                partition: d.partition,
                offset: d.offset,
                index: i,
                key,
                value,
            });
        }
    }
    Ok(acked)
}

/// Runs `tierlog export` with `args`, returning its stdout; fails on a non-zero exit.
fn export(data_dir: &Path, output: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new(tierlog_binary()?)
        .arg("export")
        .args(["--topic", TOPIC, "--data-dir"])
        .arg(data_dir)
        .arg("--output")
        .arg(output)
        .args(args)
        .env_remove("TIERLOG_CONFIG")
        .output()
        .context("running tierlog export")?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        bail!(
            "tierlog export failed ({}):\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(stdout)
}

/// The record count of the summary line `exported N records, …`.
fn exported_records(stdout: &str) -> u64 {
    let line = stdout
        .lines()
        .find(|l| l.starts_with("exported "))
        .unwrap_or_else(|| panic!("no summary in:\n{stdout}"));
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn parquet_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "parquet") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// JSON lines `{"reader", "count", "checksum"}` printed by a reader script.
fn run_reader(
    script: &str,
    output: &Path,
    java_home: Option<&Path>,
) -> Result<Vec<serde_json::Value>> {
    let mut cmd = Command::new("python3");
    cmd.arg(tests_dir().join("python").join(script))
        .arg(output)
        .arg(TOPIC)
        .current_dir(tests_dir().join("python"));
    if let Some(home) = java_home {
        cmd.env("JAVA_HOME", home);
    }
    let out = cmd.output().with_context(|| format!("running {script}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        bail!(
            "{script} failed ({}):\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    stdout
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).context("reader output"))
        .collect()
}

/// A Java 17 home for pyspark: `$JAVA_HOME` if set, else Debian's OpenJDK 17.
fn java17_home() -> Option<PathBuf> {
    if let Some(h) = std::env::var_os("JAVA_HOME") {
        return Some(PathBuf::from(h));
    }
    let debian = PathBuf::from("/usr/lib/jvm/java-17-openjdk-amd64");
    debian.is_dir().then_some(debian)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_after_clean_shutdown_is_read_by_pyarrow_duckdb_and_spark() -> Result<()> {
    let mut node = TestNode::start(
        NodeOptions::default()
            .upload_interval("200ms")
            .min_segment_bytes(16384),
    )?;
    create_topic(
        &node.bootstrap(),
        TOPIC,
        PARTITIONS,
        &[("segment.bytes", "16384")],
    )
    .await?;
    let acked = produce(&node.bootstrap()).await?;
    assert_eq!(acked.len(), CODECS.len() * PER_CODEC);
    // JSON values, one in ten not JSON at all, for --value-format json.
    create_topic(&node.bootstrap(), JSON_TOPIC, 1, &[]).await?;
    let p = producer(&node.bootstrap(), &[])?;
    for i in 0..JSON_RECORDS {
        let value = if i % 10 == 9 {
            format!("not json {i}")
        } else {
            format!(r#"{{"id": {i}, "name": "user-{i}", "score": {}.5}}"#, i % 7)
        };
        p.send(
            FutureRecord::<(), str>::to(JSON_TOPIC).payload(&value),
            Duration::from_secs(30),
        )
        .await
        .map_err(|(e, _)| anyhow::anyhow!("json record {i}: {e}"))?;
    }
    let status = node.terminate()?;
    assert!(
        status.success(),
        "node exit: {status}\n{}",
        node.log_tails()
    );
    let data_dir = node.data_dir();

    // Everything acknowledged is exported, from the tiered segments alone.
    let out_dir = tempfile::tempdir()?;
    let output = out_dir.path().join("out");
    let stdout = export(&data_dir, &output, &[])?;
    println!("{stdout}");
    assert_eq!(exported_records(&stdout), acked.len() as u64, "{stdout}");
    for p in 0..PARTITIONS {
        let last = acked
            .iter()
            .filter(|r| r.partition == p)
            .map(|r| r.offset)
            .max()
            .unwrap();
        assert!(
            stdout.contains(&format!("partition {p}: tiered offsets 0..={last}:")),
            "partition {p} range in:\n{stdout}"
        );
    }
    assert!(output.join("_SUCCESS").is_file());
    let files = parquet_files(&output);
    assert!(files.len() > 2 * PARTITIONS as usize, "{files:?}");
    for f in &files {
        let rel = f
            .strip_prefix(&output)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        assert!(
            rel.starts_with(&format!("topic={TOPIC}/partition=")),
            "{rel}"
        );
    }

    // A re-run skips every complete file; a deleted file is written again.
    let again = export(&data_dir, &output, &[])?;
    assert_eq!(exported_records(&again), 0, "{again}");
    std::fs::remove_file(&files[1])?;
    let again = export(&data_dir, &output, &[])?;
    assert!(exported_records(&again) > 0, "{again}");
    assert_eq!(parquet_files(&output), files);

    // One partition, a time range given in RFC 3339 (first record at or after each end).
    let clipped = out_dir.path().join("clipped");
    let stdout = export(
        &data_dir,
        &clipped,
        &[
            "--partition",
            "1",
            "--from",
            "2026-01-01T00:00:30Z",
            "--to",
            "2026-01-01T00:01:00Z",
        ],
    )?;
    let want = acked
        .iter()
        .filter(|r| r.partition == 1 && (3000..6000).contains(&r.index))
        .count();
    assert_eq!(exported_records(&stdout), want as u64, "{stdout}");
    // And an offset range.
    let by_offset = out_dir.path().join("by-offset");
    let stdout = export(
        &data_dir,
        &by_offset,
        &["--partition", "2", "--from", "100", "--to", "2345"],
    )?;
    assert_eq!(exported_records(&stdout), 2245, "{stdout}");

    // JSON values as typed columns; the values that are not JSON kept raw in `_invalid`.
    let json_out = out_dir.path().join("json");
    let out = Command::new(tierlog_binary()?)
        .args([
            "export",
            "--topic",
            JSON_TOPIC,
            "--value-format",
            "json",
            "--data-dir",
        ])
        .arg(&data_dir)
        .arg("--output")
        .arg(&json_out)
        .output()?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        exported_records(&String::from_utf8_lossy(&out.stdout)),
        JSON_RECORDS as u64
    );
    if require_tool("python3", &["-c", "import pyarrow"], "export: json values")? {
        let check = r#"
import sys, pyarrow.dataset as ds
t = ds.dataset(sys.argv[1], format="parquet", partitioning="hive").to_table().sort_by("offset")
v = t.column("value").to_pylist(); bad = t.column("_invalid").to_pylist()
for i, (row, raw) in enumerate(zip(v, bad)):
    if i % 10 == 9:
        assert row is None and raw == f"not json {i}".encode(), (i, row, raw)
    else:
        assert raw is None and row == {"id": i, "name": f"user-{i}", "score": i % 7 + 0.5}, (i, row)
print("json ok", t.num_rows)
"#;
        let out = Command::new("python3")
            .args(["-c", check])
            .arg(&json_out)
            .output()?;
        assert!(
            out.status.success(),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    let (count, sum) = checksum(acked.iter());
    let expect = |results: Vec<serde_json::Value>, readers: &[&str]| {
        assert_eq!(results.len(), readers.len(), "{results:?}");
        for (r, name) in results.iter().zip(readers) {
            println!("{r}");
            assert_eq!(r["reader"], *name);
            assert_eq!(r["count"].as_u64(), Some(count), "{r}");
            assert_eq!(
                r["checksum"].as_str(),
                Some(sum.to_string().as_str()),
                "{r}"
            );
        }
        results
    };
    if require_tool(
        "python3",
        &["-c", "import pyarrow, duckdb"],
        "export: pyarrow and duckdb readers",
    )? {
        let r = expect(
            run_reader("read_parquet.py", &output, None)?,
            &["pyarrow", "duckdb"],
        );
        // Two headers per record came through.
        assert_eq!(r[0]["headers"].as_u64(), Some(2 * count), "{}", r[0]);
    }
    let java = java17_home();
    if require_tool("python3", &["-c", "import pyspark"], "export: Spark reader")?
        && require_tool("java", &["-version"], "export: Spark reader (Java 17)")?
    {
        expect(
            run_reader("spark_read.py", &output, java.as_deref())?,
            &["spark"],
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_to_s3_uploads_the_same_files_and_resumes() -> Result<()> {
    let Some(moto) = MotoServer::start_or_skip("export_to_s3_uploads_the_same_files_and_resumes")?
    else {
        return Ok(());
    };
    moto.create_bucket("exports")?;
    let mut node = TestNode::start(
        NodeOptions::default()
            .upload_interval("200ms")
            .min_segment_bytes(16384),
    )?;
    create_topic(&node.bootstrap(), TOPIC, 2, &[("segment.bytes", "16384")]).await?;
    let p = producer(&node.bootstrap(), &[("compression.type", "lz4")])?;
    for i in 0..2000usize {
        let value = value_of(i).unwrap_or_default();
        p.send(
            FutureRecord::<(), [u8]>::to(TOPIC)
                .partition((i % 2) as i32)
                .payload(value.as_slice()),
            Duration::from_secs(30),
        )
        .await
        .map_err(|(e, _)| anyhow::anyhow!("record {i}: {e}"))?;
    }
    assert!(node.terminate()?.success());
    let data_dir = node.data_dir();
    let out_dir = tempfile::tempdir()?;
    let local = out_dir.path().join("local");
    export(&data_dir, &local, &[])?;

    let s3_export = |extra: &[&str]| -> Result<String> {
        let out = Command::new(tierlog_binary()?)
            .args([
                "export",
                "--topic",
                TOPIC,
                "--output",
                "s3://exports/history",
            ])
            .arg("--data-dir")
            .arg(&data_dir)
            .args(["--s3-endpoint", &moto.endpoint(), "--s3-region", s3::REGION])
            .args(["--s3-allow-http", "--s3-path-style"])
            .args(extra)
            .env("AWS_ACCESS_KEY_ID", s3::ACCESS_KEY_ID)
            .env("AWS_SECRET_ACCESS_KEY", s3::SECRET_ACCESS_KEY)
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .output()?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() {
            bail!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(stdout)
    };
    let stdout = s3_export(&[])?;
    assert_eq!(exported_records(&stdout), 2000, "{stdout}");
    // The objects are the local export's files, byte for byte in size, under the same names.
    let mut objects: Vec<(String, u64)> = moto
        .list_objects("exports", "history/")?
        .into_iter()
        .map(|o| (o.key, o.size))
        .collect();
    objects.sort();
    assert!(objects.iter().any(|(k, _)| k == "history/_SUCCESS"));
    objects.retain(|(k, _)| k.ends_with(".parquet"));
    let files: Vec<(String, u64)> = parquet_files(&local)
        .into_iter()
        .map(|f| {
            let rel = f
                .strip_prefix(&local)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            (
                format!("history/{rel}"),
                std::fs::metadata(&f).unwrap().len(),
            )
        })
        .collect();
    assert_eq!(objects, files);
    // A re-run finds every object and writes nothing.
    let again = s3_export(&[])?;
    assert_eq!(exported_records(&again), 0, "{again}");
    Ok(())
}
