//! The log cleaner's throughput, and what it costs appends running beside it.
//!
//! Builds a compacted log of `TIERLOG_BENCH_CLEAN_MIB` MiB (default 1024) of 100-byte values
//! whose keys are drawn from 10% as many unique keys as records (batches of 100 records, lz4 or
//! `TIERLOG_BENCH_CLEAN_CODEC`),
//! seals it, and cleans it once with the default 128 MiB key map: the cleaner's throughput in
//! MB/s of dirty log on one core (it runs on one thread). Then appends 16 KiB batches for a few
//! seconds, alone and while a cleaner cleans a second such log, and reports each append call's
//! p50/p99/max latency (page cache, no fsync: the cleaner's effect on the append path itself).
//!
//! Run with `cargo bench -p tierlog-tiering --bench clean` (release build; a 1 GiB run needs
//! about 2.5 GiB of free disk in the temp directory).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType as KTimestampType,
};
use tierlog_tiering::{CleanerOptions, LogConfig, PartitionLog, Throttle};

const RECORDS_PER_BATCH: u64 = 100;
const VALUE_BYTES: usize = 100;

fn batch(first: u64, unique_keys: u64, compression: Compression) -> Bytes {
    let records: Vec<Record> = (0..RECORDS_PER_BATCH)
        .map(|i| {
            let n = first + i;
            // A multiplicative hash spreads the key sequence over the key space.
            let key = n.wrapping_mul(0x9e37_79b9_7f4a_7c15) % unique_keys;
            Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: KTimestampType::Creation,
                offset: i as i64,
                sequence: -1,
                timestamp: 1_000 + n as i64,
                key: Some(Bytes::from(format!("key-{key:012}"))),
                value: Some(Bytes::from(vec![b'a' + (n % 26) as u8; VALUE_BYTES])),
                headers: Default::default(),
            }
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression,
        },
    )
    .expect("encode");
    buf.freeze()
}

/// `TIERLOG_BENCH_CLEAN_CODEC`: none, gzip, snappy, lz4 (default) or zstd.
fn codec() -> Compression {
    match std::env::var("TIERLOG_BENCH_CLEAN_CODEC").as_deref() {
        Ok("none") => Compression::None,
        Ok("gzip") => Compression::Gzip,
        Ok("snappy") => Compression::Snappy,
        Ok("zstd") => Compression::Zstd,
        _ => Compression::Lz4,
    }
}

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 256 << 20,
        segment_ms: None,
        retention_ms: None,
        cleanup_compact: true,
        cleanup_delete: false,
        ..LogConfig::default()
    }
}

/// A sealed, flushed compacted log of about `mib` MiB.
fn build(dir: &std::path::Path, mib: u64) -> (PartitionLog, u64) {
    let log = PartitionLog::open(dir, config()).expect("open");
    let codec = codec();
    let probe = batch(0, 1, codec).len() as u64;
    let batches = (mib << 20) / probe;
    let records = batches * RECORDS_PER_BATCH;
    let unique = (records / 10).max(1);
    for b in 0..batches {
        log.append(batch(b * RECORDS_PER_BATCH, unique, codec), 0, 0)
            .expect("append");
    }
    log.roll_now().expect("roll");
    log.flush().expect("flush");
    (log, records)
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * q).round() as usize]
}

/// Appends 16 KiB batches for `secs` seconds; returns p50, p99, max of the append calls.
fn append_latencies(log: &PartitionLog, secs: u64) -> (Duration, Duration, Duration, usize) {
    let b = batch(0, 1_000_000, Compression::None);
    let mut lat = Vec::new();
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < end {
        let t = Instant::now();
        log.append(b.clone(), 0, 0).expect("append");
        lat.push(t.elapsed());
    }
    lat.sort();
    (
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        *lat.last().expect("some appends"),
        lat.len(),
    )
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let mib: u64 = std::env::var("TIERLOG_BENCH_CLEAN_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    // `TIERLOG_BENCH_CLEAN_BUILD_ONLY=DIR`: build the dirty log in DIR and stop (what
    // tests/bench/compaction.py hands to Apache Kafka's cleaner: the same bytes, since the
    // segment files are Kafka's format).
    if let Some(out) = std::env::var_os("TIERLOG_BENCH_CLEAN_BUILD_ONLY") {
        let (log, records) = build(std::path::Path::new(&out), mib);
        println!(
            "built {} bytes, {records} records in {}",
            log.size_bytes(),
            out.to_string_lossy()
        );
        log.close().expect("close");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let t = Instant::now();
    let (log, records) = build(&dir.path().join("a"), mib);
    let size = log.size_bytes();
    println!(
        "built {:.0} MiB of {:?} batches ({records} records, {} unique keys) in {:.1} s",
        size as f64 / (1 << 20) as f64,
        codec(),
        records / 10,
        t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    let stats = log
        .clean(
            i64::MAX,
            0,
            true,
            &CleanerOptions::default(),
            &mut Throttle::new(None),
        )
        .expect("clean")
        .expect("something to clean");
    let secs = t.elapsed().as_secs_f64();
    println!(
        "cleaned {:.0} MiB of dirty log in {secs:.2} s: {:.1} MB/s on one core \
         (read {:.0} MiB, wrote {:.0} MiB, {} keys, {} of {} records kept, {} -> {} segments)",
        size as f64 / (1 << 20) as f64,
        size as f64 / 1e6 / secs,
        stats.bytes_read as f64 / (1 << 20) as f64,
        stats.bytes_written as f64 / (1 << 20) as f64,
        stats.map_keys,
        stats.records_kept,
        stats.records_read,
        stats.segments_before,
        stats.segments_after,
    );
    drop(log);

    // Appends alone, then beside a cleaner working on another log of the same node.
    let hot = PartitionLog::open(&dir.path().join("hot"), LogConfig::default()).expect("open");
    let (p50, p99, max, n) = append_latencies(&hot, 5);
    println!("append 16 KiB alone:          p50 {p50:?} p99 {p99:?} max {max:?} ({n} appends)");
    let (other, _) = build(&dir.path().join("b"), mib.min(512));
    let other = Arc::new(other);
    let done = Arc::new(AtomicBool::new(false));
    let cleaner = {
        let (other, done) = (other.clone(), done.clone());
        std::thread::spawn(move || {
            let r = other.clean(
                i64::MAX,
                0,
                true,
                &CleanerOptions::default(),
                &mut Throttle::new(None),
            );
            done.store(true, Ordering::Release);
            r
        })
    };
    let (p50, p99, max, n) = append_latencies(&hot, 5);
    let finished = done.load(Ordering::Acquire);
    println!(
        "append 16 KiB beside cleaning: p50 {p50:?} p99 {p99:?} max {max:?} ({n} appends; \
         cleaner {} during the run)",
        if finished { "finished" } else { "busy" }
    );
    cleaner.join().expect("cleaner thread").expect("clean");
}
