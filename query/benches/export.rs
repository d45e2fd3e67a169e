//! Export benchmark (not a test): `BENCH_RECORDS` (default 10 million) records with 100-byte
//! values in 1000-record batches (`BENCH_CODEC`: none|gzip|snappy|lz4|zstd, default none) are
//! appended to a real `PartitionLog`, tiered with `RemotePartition::upload` into a local-directory
//! object store, then exported to Parquet split by split — once on one task (records/s per
//! core) and once with one task per CPU. CPU time comes from `/proc/self/stat`. If python3
//! with pyarrow is installed, pyarrow's read of the output is timed too.
//!
//! Run: `cargo bench -p tierlog-query --bench export` (`BENCH_RECORDS=1000000` for a quick one).

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use object_store::ObjectStore;
use object_store::local::LocalFileSystem;
use tierlog_metadata::{ManifestRegistry, MemoryStore, MetadataStore, TopicMeta, TopicRegistry};
use tierlog_query::export::{Format, export_split};
use tierlog_query::{QueryContext, Range, ReadOptions};
use tierlog_tiering::remote::cache::{CacheConfig, ChunkCache};
use tierlog_tiering::remote::{RemoteOptions, RemotePartition};
use tierlog_tiering::{LogConfig, PartitionLog};

const BATCH: usize = 1000;
const VALUE: usize = 100;
const TEXT: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789 ,.:{}";

/// Process CPU time (user + system) from /proc/self/stat, in clock ticks of 10 ms.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<u64> = after
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // Fields 14 and 15 (utime, stime) are at 11 and 12 after the `)`.
    let ticks = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

fn codec() -> Compression {
    match std::env::var("BENCH_CODEC").as_deref() {
        Ok("gzip") => Compression::Gzip,
        Ok("snappy") => Compression::Snappy,
        Ok("lz4") => Compression::Lz4,
        Ok("zstd") => Compression::Zstd,
        _ => Compression::None,
    }
}

fn batch(first: usize, compression: Compression) -> Bytes {
    let recs: Vec<Record> = (0..BATCH)
        .map(|i| {
            let n = first + i;
            // Random alphanumeric text (xorshift): about as compressible as real payloads.
            let mut x = (n as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
            let mut value = vec![0u8; VALUE];
            for b in value.iter_mut() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = TEXT[(x % TEXT.len() as u64) as usize];
            }
            value[..8].copy_from_slice(&(n as u64).to_be_bytes());
            Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                sequence: i as i32,
                timestamp: 1_767_225_600_000 + n as i64,
                key: Some(Bytes::from(format!("user-{}", n % 10_000))),
                value: Some(Bytes::from(value)),
                headers: Default::default(),
            }
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &recs,
        &RecordEncodeOptions {
            version: 2,
            compression,
        },
    )
    .unwrap();
    buf.freeze()
}

async fn export_all(ctx: &QueryContext, out: &std::path::Path, concurrency: usize) -> (u64, u64) {
    let splits = ctx.plan("bench", None, &Range::default()).await.unwrap();
    std::fs::create_dir_all(out).unwrap();
    let results: Vec<_> = futures::stream::iter(splits.into_iter().map(|s| {
        let (ctx, out) = (ctx.clone(), out.to_path_buf());
        tokio::spawn(async move {
            export_split(&ctx, s, &out, Format::Parquet, ReadOptions::default())
                .await
                .unwrap()
        })
    }))
    .buffer_unordered(concurrency)
    .collect()
    .await;
    results
        .into_iter()
        .map(|r| r.unwrap())
        .fold((0, 0), |(n, b), r| (n + r.rows, b + r.bytes))
}

fn main() {
    let records: usize = std::env::var("BENCH_RECORDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000_000);
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cpus)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let dir = tempfile::tempdir().unwrap();
        let compression = codec();
        // Setup: append and tier.
        let t = Instant::now();
        let log = PartitionLog::open(
            &dir.path().join("log"),
            LogConfig {
                segment_bytes: 64 << 20,
                ..LogConfig::default()
            },
        )
        .unwrap();
        let mut n = 0;
        while n < records {
            log.append(batch(n, compression), 0, 0).unwrap();
            n += BATCH;
        }
        log.roll_now().unwrap();
        let meta: Arc<dyn MetadataStore> = Arc::new(MemoryStore::new());
        let objects_dir = dir.path().join("objects");
        std::fs::create_dir_all(&objects_dir).unwrap();
        let objects: Arc<dyn ObjectStore> =
            Arc::new(LocalFileSystem::new_with_prefix(&objects_dir).unwrap());
        let id = uuid::Uuid::new_v4();
        TopicRegistry::new(meta.clone())
            .create(&TopicMeta {
                name: "bench".into(),
                id,
                partitions: 1,
                replication_factor: 1,
                configs: Default::default(),
                created_ms: 0,
            })
            .await
            .unwrap();
        let manifest = ManifestRegistry::new(meta.clone());
        let mut tiered = 0u64;
        for seg in log.sealed_segments().unwrap() {
            tiered += seg.size_bytes;
            RemotePartition::new(objects.clone(), manifest.clone(), "bench", id, 0)
                .with_options(RemoteOptions {
                    chunk_size: 1 << 20,
                    ..RemoteOptions::default()
                })
                .upload(&seg, 0, 0)
                .await
                .unwrap();
        }
        drop(log);
        std::fs::remove_dir_all(dir.path().join("log")).unwrap();
        println!(
            "setup: {n} records ({compression:?}), {:.1} MiB tiered, in {:.1}s",
            tiered as f64 / (1 << 20) as f64,
            t.elapsed().as_secs_f64()
        );
        let cache = ChunkCache::new(&CacheConfig {
            memory_bytes: 64 << 20,
            ..CacheConfig::default()
        })
        .await
        .unwrap();
        let ctx = QueryContext::from_parts(meta, objects, cache);

        // Decoding alone (object store → Arrow record batches), one task.
        let splits = ctx.plan("bench", None, &Range::default()).await.unwrap();
        let (cpu0, t) = (cpu_time(), Instant::now());
        let mut rows = 0usize;
        for s in &splits {
            let mut stream = Box::pin(ctx.read(s.clone(), ReadOptions::default()));
            while let Some(b) = stream.next().await {
                rows += b.unwrap().num_rows();
            }
        }
        let (wall, cpu) = (t.elapsed(), cpu_time() - cpu0);
        println!(
            "read to Arrow (1 task): {rows} records, wall {:.2}s, cpu {:.2}s: {:.0} records/s per core",
            wall.as_secs_f64(),
            cpu.as_secs_f64(),
            rows as f64 / cpu.as_secs_f64().max(1e-9),
        );

        for (label, concurrency) in [("1 task", 1), ("1 task per CPU", cpus)] {
            let out = dir.path().join(format!("out-{concurrency}"));
            let (cpu0, t) = (cpu_time(), Instant::now());
            let (rows, bytes) = export_all(&ctx, &out, concurrency).await;
            let (wall, cpu) = (t.elapsed(), cpu_time() - cpu0);
            println!(
                "export to Parquet ({label}): {rows} records, {:.1} MiB, wall {:.2}s, cpu {:.2}s: \
                 {:.0} records/s, {:.0} records/s per core (per CPU-second)",
                bytes as f64 / (1 << 20) as f64,
                wall.as_secs_f64(),
                cpu.as_secs_f64(),
                rows as f64 / wall.as_secs_f64(),
                rows as f64 / cpu.as_secs_f64().max(1e-9),
            );
            assert_eq!(rows as usize, n);
        }

        let script = "import sys,time,pyarrow.parquet as pq\n\
            t=time.time(); t0=time.process_time(); tb=pq.read_table(sys.argv[1])\n\
            w=time.time()-t; c=time.process_time()-t0\n\
            print(f'pyarrow read_table: {tb.num_rows} rows, wall {w:.2f}s, cpu {c:.2f}s: {tb.num_rows/w:.0f} rows/s, {tb.num_rows/c:.0f} rows/s per CPU-second')";
        match std::process::Command::new("python3")
            .args(["-c", script])
            .arg(dir.path().join("out-1"))
            .output()
        {
            Ok(o) if o.status.success() => print!("{}", String::from_utf8_lossy(&o.stdout)),
            _ => println!("pyarrow read: skipped (python3 with pyarrow not available)"),
        }
    });
}
