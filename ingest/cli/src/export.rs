//! `tierlog export`: a topic's tiered history as Hive-style partitioned Parquet (or Arrow IPC)
//! files, read straight from the object store and the metadata store — no node needs to run.
//!
//! Layout: `OUTPUT/topic=T/partition=P/<first>-<last>.parquet`, one file per tiered segment
//! (clipped to `--from`/`--to`), without `topic`/`partition` columns inside (readers take them
//! from the directory names), then `OUTPUT/_SUCCESS`. Files are written under a dot-prefixed
//! temporary name and renamed when complete, so a re-run skips the files that exist and
//! finishes the rest. With `--output s3://bucket/prefix` the files are staged in the temporary
//! directory and uploaded to the same keys (an object appears only complete, so a re-run
//! skips the objects that exist). Only tiered data is exported: the output names the offset range
//! covered per partition. (A node seals and tiers its active segments on a clean shutdown, so
//! after one everything acknowledged is tiered.)

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, UNIX_EPOCH};

use anyhow::Context;
use futures::StreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use tierlog_query::export::{
    Format, SplitExport, export_split_with, file_name, object_exists, upload_file,
};
use tierlog_query::json::sample_value_schema;
use tierlog_query::schema::{AUDIT_COLUMNS, COLUMNS};
use tierlog_query::{Bound, Isolation, QueryContext, Range, ReadOptions};
use tierlog_tiering::remote::store::{ObjectStoreConfig, open_object_store};

/// Output file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    /// Apache Parquet (zstd, 128k-row groups, column statistics).
    Parquet,
    /// Arrow IPC file format.
    Arrow,
}

/// How values are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ValueFormat {
    /// As the bytes produced (binary column `value`).
    Raw,
    /// Parsed as JSON objects into a struct column `value` whose schema is inferred from a
    /// sample; values that do not fit are kept raw in `_invalid`.
    Json,
}

/// Which records are exported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum IsolationArg {
    /// Committed history only: records of aborted transactions are left out, and the export
    /// stops at the first offset of a transaction still open at the tiered end.
    #[value(name = "read_committed")]
    ReadCommitted,
    /// Every record, with the columns `producer_id`, `is_transactional`, `aborted` and
    /// `committed` added to tell them apart (an audit).
    #[value(name = "read_uncommitted")]
    ReadUncommitted,
}

/// `tierlog export` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct ExportArgs {
    /// Topic to export.
    #[arg(long)]
    pub topic: String,
    /// Partition to export (repeatable) [default: all].
    #[arg(long = "partition")]
    pub partitions: Vec<i32>,
    /// First offset, or RFC 3339 time (first record at or after it), included.
    #[arg(long)]
    pub from: Option<String>,
    /// Offset or RFC 3339 time to stop before (exclusive).
    #[arg(long)]
    pub to: Option<String>,
    /// Output directory, or s3://bucket/prefix (files staged in the temp directory, then
    /// uploaded; same --s3-* settings as the object store).
    #[arg(long)]
    pub output: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value = "parquet")]
    pub format: ExportFormat,
    /// How to write values.
    #[arg(long, value_enum, default_value = "raw")]
    pub value_format: ValueFormat,
    /// Committed history only (default), or every record with its transaction state.
    #[arg(long, value_enum, default_value = "read_committed")]
    pub isolation: IsolationArg,
    /// Values sampled to infer the JSON schema (with `--value-format json`).
    #[arg(long, default_value_t = 1000)]
    pub json_sample: usize,
    /// Splits exported at once [default: the number of CPUs].
    #[arg(long)]
    pub concurrency: Option<usize>,
    /// Where the node's data is (the flags `tierlog serve` takes for it).
    #[command(flatten)]
    pub location: super::data::DataLocation,
    /// Memory of the chunk cache in bytes [default: 64 MiB].
    #[arg(long, env = "TIERLOG_EXPORT_CACHE_MEMORY_BYTES")]
    pub cache_memory_bytes: Option<usize>,
    /// A table snapshot instead of the history: one file per partition,
    /// `latest-<first>-<last>.parquet`, holding the latest record of every key (keys whose
    /// latest record is a tombstone left out) — what a compacted topic means as a table.
    #[arg(long)]
    pub latest_per_key: bool,
}

/// An offset (integer) or an RFC 3339 time.
fn parse_bound(s: &str) -> anyhow::Result<Bound> {
    if let Ok(o) = s.parse::<i64>() {
        return Ok(Bound::Offset(o));
    }
    let t = humantime::parse_rfc3339_weak(s)
        .with_context(|| format!("`{s}` is neither an offset nor an RFC 3339 time"))?;
    let ms = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_millis() as i64,
        Err(e) => -(e.duration().as_millis() as i64),
    };
    Ok(Bound::TimestampMs(ms))
}

/// Per-partition totals for the report.
#[derive(Default)]
struct PartitionReport {
    first: Option<i64>,
    last: Option<i64>,
    rows: u64,
    bytes: u64,
    files: u64,
    skipped: u64,
}

/// Runs `tierlog export`.
pub async fn run(args: ExportArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let node = args.location.node_config(None)?;
    let config = super::data::query_config(&node, args.cache_memory_bytes.unwrap_or(0))?;
    let range = Range {
        from: args.from.as_deref().map(parse_bound).transpose()?,
        to: args.to.as_deref().map(parse_bound).transpose()?,
    };
    let format = match args.format {
        ExportFormat::Parquet => Format::Parquet,
        ExportFormat::Arrow => Format::Arrow,
    };
    let out_url = args
        .output
        .to_str()
        .filter(|s| s.contains("://"))
        .map(str::to_owned);
    let remote: Option<Arc<dyn ObjectStore>> = match &out_url {
        None => None,
        Some(url) if url.starts_with("s3://") => Some(
            open_object_store(&ObjectStoreConfig {
                url: url.clone(),
                s3: config.s3.clone(),
            })
            .await
            .with_context(|| format!("opening the output `{url}`"))?,
        ),
        Some(url) => anyhow::bail!("--output `{url}`: a local directory or s3://bucket/prefix"),
    };
    // Files are written here first; with an s3:// output, they are staged and uploaded.
    let local_root = match &remote {
        None => args.output.clone(),
        Some(_) => std::env::temp_dir().join(format!("tierlog-export-{}", std::process::id())),
    };
    let ctx = QueryContext::open(&config).await.with_context(|| {
        format!(
            "opening the metadata store `{}` in `{}` (a running node holds the embedded store: stop it first)",
            if node.metadata.is_empty() { "embedded" } else { &node.metadata },
            node.data_dir.display()
        )
    })?;
    let meta = ctx.topic(&args.topic).await?;
    let partitions = (!args.partitions.is_empty()).then_some(args.partitions.as_slice());
    let mut splits = ctx.plan(&args.topic, partitions, &range).await?;
    // Committed history stops at a partition's last stable offset. Only whole splits below it
    // are exported: a file cut at it would keep its name and never get the rest on a re-run.
    let mut held_back: BTreeMap<i32, i64> = BTreeMap::new();
    if args.isolation == IsolationArg::ReadCommitted {
        let parts: std::collections::BTreeSet<i32> = splits.iter().map(|s| s.partition).collect();
        let mut lso: BTreeMap<i32, i64> = BTreeMap::new();
        for p in parts {
            if let Some(o) = ctx.last_stable_offset(meta.id, p).await? {
                lso.insert(p, o);
            }
        }
        splits.retain(|s| match lso.get(&s.partition) {
            Some(&o) if s.end_offset > o => {
                let first = held_back.entry(s.partition).or_insert(s.start_offset);
                *first = (*first).min(s.start_offset);
                false
            }
            _ => true,
        });
    }

    let json = match args.value_format {
        ValueFormat::Raw => None,
        ValueFormat::Json => {
            let j = sample_value_schema(&ctx, &splits, args.json_sample).await?;
            if j.is_none() {
                eprintln!(
                    "--value-format json: no JSON object among the sampled values; writing them raw"
                );
            }
            j.map(Arc::new)
        }
    };
    let topic_dir = local_root.join(format!("topic={}", meta.name));
    let success = local_root.join("_SUCCESS");
    std::fs::create_dir_all(&local_root)
        .with_context(|| format!("creating `{}`", local_root.display()))?;
    match &remote {
        None => {
            let _ = std::fs::remove_file(&success);
        }
        Some(store) => {
            let _ = store.delete(&ObjectPath::from("_SUCCESS")).await;
        }
    }
    let mut report: BTreeMap<i32, PartitionReport> = BTreeMap::new();
    let wanted: Vec<i32> = match partitions {
        Some(p) => p.to_vec(),
        None => (0..meta.partitions).collect(),
    };
    for p in wanted {
        report.entry(p).or_default();
        let dir = topic_dir.join(format!("partition={p}"));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating `{}`", dir.display()))?;
    }

    if args.latest_per_key {
        anyhow::ensure!(
            args.isolation == IsolationArg::ReadCommitted && json.is_none(),
            "--latest-per-key exports committed records with raw values"
        );
        let mut by_partition: BTreeMap<i32, Vec<tierlog_query::Split>> = BTreeMap::new();
        for s in splits {
            by_partition.entry(s.partition).or_default().push(s);
        }
        for (p, parts) in by_partition {
            let dir = topic_dir.join(format!("partition={p}"));
            let options = ReadOptions {
                batch_rows: 32 * 1024,
                ..ReadOptions::default()
            };
            let r =
                tierlog_query::export::export_latest_per_key(&ctx, &parts, &dir, format, options)
                    .await
                    .with_context(|| format!("exporting the latest records of partition {p}"))?;
            if let Some(store) = &remote {
                let key = format!(
                    "topic={}/partition={p}/{}",
                    meta.name,
                    tierlog_query::export::latest_file_name(&parts, format)
                );
                upload_file(store, &r.path, &key).await?;
            }
            let e = report.entry(p).or_default();
            e.first = parts.iter().map(|s| s.start_offset).min();
            e.last = parts.iter().map(|s| s.end_offset - 1).max();
            e.rows += r.rows;
            e.bytes += r.bytes;
            e.files += 1;
        }
        splits = Vec::new();
    }

    let total = splits.len() as u64;
    let done = Arc::new(AtomicU64::new(0));
    let rows_done = Arc::new(AtomicU64::new(0));
    let progress = std::io::stderr().is_terminal().then(|| {
        let (done, rows_done) = (done.clone(), rows_done.clone());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(500)).await;
                eprint!(
                    "\rexporting: {}/{total} files, {} records",
                    done.load(Ordering::Relaxed),
                    rows_done.load(Ordering::Relaxed)
                );
            }
        })
    });
    let concurrency = args.concurrency.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
    });
    let options = match args.isolation {
        IsolationArg::ReadCommitted => ReadOptions {
            batch_rows: 32 * 1024,
            ..ReadOptions::default()
        },
        IsolationArg::ReadUncommitted => ReadOptions {
            batch_rows: 32 * 1024,
            isolation: Isolation::ReadUncommitted,
            projection: Some(
                COLUMNS
                    .iter()
                    .chain(&AUDIT_COLUMNS)
                    .map(|c| c.to_string())
                    .collect(),
            ),
            ..ReadOptions::default()
        },
    };
    let mut results = futures::stream::iter(splits.into_iter().map(|split| {
        let (ctx, options) = (ctx.clone(), options.clone());
        let dir = topic_dir.join(format!("partition={}", split.partition));
        let (done, rows_done, json) = (done.clone(), rows_done.clone(), json.clone());
        let (remote, topic) = (remote.clone(), meta.name.clone());
        tokio::spawn(async move {
            let (p, start, end) = (split.partition, split.start_offset, split.end_offset);
            let r = async {
                let Some(store) = remote else {
                    return export_split_with(&ctx, split, &dir, format, options, json.as_deref())
                        .await;
                };
                let key = format!("topic={topic}/partition={p}/{}", file_name(&split, format));
                if object_exists(&store, &key).await? {
                    return Ok(SplitExport {
                        path: key.into(),
                        rows: 0,
                        bytes: 0,
                        skipped: true,
                    });
                }
                let r =
                    export_split_with(&ctx, split, &dir, format, options, json.as_deref()).await?;
                if r.rows > 0 {
                    upload_file(&store, &r.path, &key).await?;
                }
                Ok(r)
            }
            .await;
            done.fetch_add(1, Ordering::Relaxed);
            if let Ok(r) = &r {
                rows_done.fetch_add(r.rows, Ordering::Relaxed);
            }
            (p, start, end, r)
        })
    }))
    .buffer_unordered(concurrency.max(1));
    let mut failure = None;
    while let Some(joined) = results.next().await {
        let (p, start, end, r) = joined.context("export task")?;
        match r {
            Ok(r) => {
                let e = report.entry(p).or_default();
                e.first = Some(e.first.map_or(start, |f| f.min(start)));
                e.last = Some(e.last.map_or(end - 1, |l| l.max(end - 1)));
                e.rows += r.rows;
                e.bytes += r.bytes;
                e.files += u64::from(!r.skipped && r.rows > 0);
                e.skipped += u64::from(r.skipped);
            }
            Err(e) => {
                failure.get_or_insert(
                    anyhow::anyhow!(e)
                        .context(format!("exporting partition {p} offsets {start}..{end}")),
                );
            }
        }
    }
    if let Some(task) = progress {
        task.abort();
        eprintln!();
    }
    if let Some(e) = failure {
        return Err(e.context("export incomplete (re-run to finish: complete files are kept)"));
    }
    match &remote {
        None => std::fs::write(&success, b"")
            .with_context(|| format!("writing `{}`", success.display()))?,
        Some(store) => {
            store
                .put(&ObjectPath::from("_SUCCESS"), PutPayload::default())
                .await
                .context("writing _SUCCESS")?;
            let _ = std::fs::remove_dir_all(&local_root);
        }
    }

    let (mut rows, mut bytes, mut files, mut skipped) = (0, 0, 0, 0);
    for (p, r) in &report {
        match (r.first, r.last) {
            (Some(a), Some(b)) => println!(
                "partition {p}: tiered offsets {a}..={b}: {} records, {} files written, {} already there",
                r.rows, r.files, r.skipped
            ),
            _ => println!("partition {p}: no tiered data in range"),
        }
        if let Some(o) = held_back.get(p) {
            println!(
                "partition {p}: offsets from {o} held back: a transaction there has no marker in the tiered history yet (--isolation read_uncommitted exports them)"
            );
        }
        rows += r.rows;
        bytes += r.bytes;
        files += r.files;
        skipped += r.skipped;
    }
    let elapsed = started.elapsed();
    println!(
        "exported {rows} records, {bytes} bytes in {files} files ({skipped} skipped as complete) to `{}` in {:.2}s ({:.0} records/s)",
        match &out_url {
            Some(u) => format!("{}/topic={}", u.trim_end_matches('/'), meta.name),
            None => topic_dir.display().to_string(),
        },
        elapsed.as_secs_f64(),
        rows as f64 / elapsed.as_secs_f64().max(1e-9)
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use clap::Parser;

    use super::*;

    #[derive(clap::Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        export: ExportArgs,
    }

    fn parse(args: &[&str]) -> Result<ExportArgs, clap::Error> {
        let mut argv = vec!["tierlog", "--topic", "t", "--output", "out"];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv).map(|cli| cli.export)
    }

    #[test]
    fn isolation_defaults_to_committed_history() {
        assert_eq!(parse(&[]).unwrap().isolation, IsolationArg::ReadCommitted);
        let all = parse(&["--isolation", "read_uncommitted"]).unwrap();
        assert_eq!(all.isolation, IsolationArg::ReadUncommitted);
        assert!(parse(&["--isolation", "dirty"]).is_err());
    }
}
