//! Catch-up reads of tiered segments: a consumer reading a partition from its first offset in
//! 1 MiB fetches, from the hot tier (`PartitionLog::read`), from the remote tier through a cold
//! chunk cache (a fresh cache per pass: every chunk is a GET), and through a warm one (every
//! chunk in memory).
//!
//! Run with `cargo bench -p tierlog-tiering --bench remote_read`. The data set is
//! `TIERLOG_BENCH_REMOTE_MB` MiB (default 128) of 100-byte records in ~16 KiB batches, in 16 MiB
//! segments, uploaded byte for byte to an `object_store::local::LocalFileSystem` store (a real
//! file-backed store; its files, like the hot tier's, sit in the page cache). A second cold
//! variant adds a fixed delay to every GET (`TIERLOG_BENCH_GET_MS`, default 5 ms) to show how
//! read-ahead hides object-store latency; it reads only the first 32 MiB.
//!
//! Before the timed runs the benchmark prints the time a cold read of one segment takes to
//! return its first batch, with and without the GET delay.

use std::hint::black_box;
use std::path::Path as FsPath;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use tierlog_metadata::RemoteSegment;
use tierlog_tiering::remote::DEFAULT_CHUNK_SIZE;
use tierlog_tiering::remote::cache::{CacheConfig, ChunkCache};
use tierlog_tiering::remote::faults::{FaultRule, FaultSpec, FaultStore, OpKind};
use tierlog_tiering::remote::reader::RemoteReader;
use tierlog_tiering::{BatchHeader, LogConfig, PartitionLog};

mod common;

const BATCH_BYTES: usize = 16 * 1024;
const FETCH_BYTES: usize = 1 << 20;
const SEGMENT_BYTES: u64 = 16 << 20;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One uncompressed v2 batch of ~16 KiB made of 100-byte records.
fn batch_16k() -> Bytes {
    common::batch_of(BATCH_BYTES)
}

/// Writes `bytes` of batches to a log in `dir`, closes it (sealing every segment) and reopens it.
fn build_log(dir: &FsPath, bytes: u64) -> PartitionLog {
    let config = LogConfig {
        segment_bytes: SEGMENT_BYTES,
        segment_ms: None,
        retention_ms: None,
        retention_bytes: None,
        ..LogConfig::default()
    };
    let log = PartitionLog::open(dir, config.clone()).expect("open log");
    let batch = batch_16k();
    let mut written = 0u64;
    while written < bytes {
        log.append(batch.clone(), 0, 1_700_000_000_000)
            .expect("append");
        written += batch.len() as u64;
    }
    log.close().expect("close log");
    drop(log);
    PartitionLog::open(dir, config).expect("reopen log")
}

/// Uploads every segment's three files to `store` and describes them as the uploader does.
async fn tier(dir: &FsPath, store: &Arc<dyn ObjectStore>, log_end: i64) -> Vec<RemoteSegment> {
    let mut bases: Vec<i64> = std::fs::read_dir(dir)
        .expect("list log dir")
        .filter_map(|e| {
            let name = e.expect("dir entry").file_name().into_string().ok()?;
            name.strip_suffix(".log")?.parse().ok()
        })
        .collect();
    bases.sort_unstable();
    let mut segs = Vec::new();
    for (i, &base) in bases.iter().enumerate() {
        let read = |suffix: &str| {
            std::fs::read(dir.join(format!("{base:020}.{suffix}"))).expect("read segment file")
        };
        let (data, index, time_index) = (read("log"), read("index"), read("timeindex"));
        if data.is_empty() {
            continue;
        }
        let first = BatchHeader::parse(&data).expect("first batch");
        let key = |suffix: &str| format!("bench/{base:020}.{suffix}");
        let seg = RemoteSegment {
            base_offset: base,
            end_offset: bases.get(i + 1).copied().unwrap_or(log_end),
            size_bytes: data.len() as u64,
            first_timestamp: first.first_timestamp,
            max_timestamp: first.max_timestamp,
            leader_epoch: 0,
            data_key: key("log"),
            index_key: key("index"),
            time_index_key: key("timeindex"),
            chunk_size: DEFAULT_CHUNK_SIZE,
            chunk_crcs: data
                .chunks(DEFAULT_CHUNK_SIZE as usize)
                .map(crc32fast::hash)
                .collect(),
            index_crc: crc32fast::hash(&index),
            time_index_crc: crc32fast::hash(&time_index),
            uploaded_ms: 0,
        };
        for (k, bytes) in [
            (&seg.data_key, data),
            (&seg.index_key, index),
            (&seg.time_index_key, time_index),
        ] {
            store
                .put(&Path::from(k.as_str()), PutPayload::from(bytes))
                .await
                .expect("upload");
        }
        segs.push(seg);
    }
    segs
}

/// Offset after the last batch of a fetch answer.
fn next_offset(records: &[u8]) -> i64 {
    let mut pos = 0usize;
    let mut next = None;
    while pos < records.len() {
        let h = BatchHeader::parse(&records[pos..]).expect("batch header");
        next = Some(h.last_offset() + 1);
        pos += h.size() as usize;
    }
    next.expect("a read returns at least one batch")
}

/// Reads `segs` from their first offset to their end; returns the bytes read.
async fn catch_up(reader: &RemoteReader, segs: &[RemoteSegment]) -> u64 {
    let mut total = 0u64;
    for seg in segs {
        let mut offset = seg.base_offset;
        while offset < seg.end_offset {
            let records = reader
                .read(seg, offset, FETCH_BYTES)
                .await
                .expect("remote read");
            total += records.len() as u64;
            offset = next_offset(&records);
            black_box(records);
        }
    }
    total
}

fn hot_catch_up(log: &PartitionLog) -> u64 {
    let (mut offset, end) = (log.log_start_offset(), log.log_end_offset());
    let mut total = 0u64;
    while offset < end {
        let records = log.read(offset, FETCH_BYTES).expect("hot read").records;
        total += records.len() as u64;
        offset = next_offset(&records);
        black_box(records);
    }
    total
}

async fn memory_cache(bytes: usize) -> ChunkCache {
    ChunkCache::new(&CacheConfig {
        memory_bytes: bytes,
        ..CacheConfig::default()
    })
    .await
    .expect("cache")
}

/// How long a cold read of a segment's first offset takes to return.
async fn first_batch_latency(store: Arc<dyn ObjectStore>, seg: &RemoteSegment) -> Duration {
    let reader = RemoteReader::new(store, memory_cache(64 << 20).await);
    let start = Instant::now();
    black_box(
        reader
            .read(seg, seg.base_offset, FETCH_BYTES)
            .await
            .expect("read"),
    );
    let elapsed = start.elapsed();
    reader.cache().close().await.expect("close cache");
    elapsed
}

fn bench_remote_read(c: &mut Criterion) {
    let mb = env_u64("TIERLOG_BENCH_REMOTE_MB", 128);
    let get_delay = Duration::from_millis(env_u64("TIERLOG_BENCH_GET_MS", 5));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let log_dir = dir.path().join("log");
    let store_dir = dir.path().join("store");
    std::fs::create_dir_all(&store_dir).expect("store dir");
    let log = build_log(&log_dir, mb << 20);
    let store: Arc<dyn ObjectStore> =
        Arc::new(LocalFileSystem::new_with_prefix(&store_dir).expect("local store"));
    let segs = rt.block_on(tier(&log_dir, &store, log.log_end_offset()));
    let total = hot_catch_up(&log);
    // Every GET (and ranged GET) waits `get_delay`: a crude object-store round trip.
    let delayed: Arc<dyn ObjectStore> = Arc::new(FaultStore::new(
        store.clone(),
        FaultSpec {
            rules: vec![FaultRule {
                ops: vec![OpKind::Get],
                latency: get_delay,
                ..FaultRule::default()
            }],
        },
    ));

    let (plain, slow) = rt.block_on(async {
        (
            first_batch_latency(store.clone(), &segs[1]).await,
            first_batch_latency(delayed.clone(), &segs[1]).await,
        )
    });
    println!(
        "cold read of a segment's first 1 MiB: {plain:?} (local store), {slow:?} (GETs delayed {get_delay:?})"
    );

    let mut group = c.benchmark_group("catch_up_read");
    group.throughput(Throughput::Bytes(total));

    group.bench_function(format!("hot_tier/{mb}MiB"), |b| {
        b.iter(|| assert_eq!(hot_catch_up(&log), total))
    });

    // Cold: a fresh cache per pass, so every chunk is fetched (with read-ahead).
    let memory = (mb as usize + 64) << 20;
    group.bench_function(format!("tiered_cold/{mb}MiB"), |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut elapsed = Duration::ZERO;
                for _ in 0..iters {
                    let reader = RemoteReader::new(store.clone(), memory_cache(memory).await);
                    let start = Instant::now();
                    assert_eq!(catch_up(&reader, &segs).await, total);
                    elapsed += start.elapsed();
                    reader.cache().close().await.expect("close cache");
                }
                elapsed
            })
        })
    });

    // Warm: every chunk in memory.
    let warm = rt.block_on(async {
        let reader = RemoteReader::new(store.clone(), memory_cache(memory).await);
        catch_up(&reader, &segs).await;
        reader
    });
    group.bench_function(format!("tiered_warm/{mb}MiB"), |b| {
        b.iter(|| assert_eq!(rt.block_on(catch_up(&warm, &segs)), total))
    });
    let s = warm.cache().stats();
    println!("warm cache after the runs: {s:?}");
    group.finish();

    // Cold with a delay per GET, over the first 32 MiB.
    let few: Vec<RemoteSegment> = segs.iter().take(2).cloned().collect();
    let few_total: u64 = few.iter().map(|s| s.size_bytes).sum();
    let mut group = c.benchmark_group("catch_up_read_slow_store");
    group.throughput(Throughput::Bytes(few_total));
    for read_ahead in [0usize, 2, 8] {
        group.bench_function(
            format!(
                "tiered_cold/get_{}ms/read_ahead_{read_ahead}",
                get_delay.as_millis()
            ),
            |b| {
                b.iter_custom(|iters| {
                    rt.block_on(async {
                        let mut elapsed = Duration::ZERO;
                        for _ in 0..iters {
                            let reader =
                                RemoteReader::new(delayed.clone(), memory_cache(64 << 20).await)
                                    .with_read_ahead(read_ahead);
                            let start = Instant::now();
                            assert_eq!(catch_up(&reader, &few).await, few_total);
                            elapsed += start.elapsed();
                            reader.cache().close().await.expect("close cache");
                        }
                        elapsed
                    })
                })
            },
        );
    }
    group.finish();
    rt.block_on(async { warm.cache().close().await.expect("close cache") });
    drop(warm);
    log.close().expect("close log");
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .measurement_time(Duration::from_secs(8))
        .warm_up_time(Duration::from_secs(1));
    targets = bench_remote_read
}
criterion_main!(benches);
