//! Hot-tier fetch throughput: sequential `read_bounded` through a log of 16 KiB and of 1 MiB
//! batches (100-byte records), 1 MiB per read, as a consumer's fetch would ask. Every batch a
//! read returns has its CRC-32C verified first (verify-on-read); the `crc_only` cases time
//! that verification alone over the same bytes, so its share of a read is visible.
//!
//! Run with `cargo bench -p tierlog-tiering --bench read` (add `-- --quick` for a short run).
//! The log lives in a temp directory and stays in the page cache.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tierlog_tiering::{LogConfig, PartitionLog};

mod common;

/// Bytes of batches in each benchmarked log.
const LOG_BYTES: usize = 256 << 20;
const FETCH_BYTES: usize = 1 << 20;

fn bench_read(c: &mut Criterion) {
    let mut group = c.benchmark_group("read");
    group.throughput(Throughput::Bytes(LOG_BYTES as u64));
    group.sample_size(10);
    for (name, size) in [("16k_batches", 16 << 10), ("1m_batches", 1 << 20)] {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = LogConfig {
            segment_bytes: 64 << 20,
            retention_ms: None,
            max_message_bytes: 2 << 20,
            ..LogConfig::default()
        };
        let log = PartitionLog::open(dir.path(), config).expect("open log");
        let b = common::batch_of(size);
        for _ in 0..LOG_BYTES / b.len() {
            log.append(b.clone(), 1, 1_700_000_000_000).expect("append");
        }
        let end = log.log_end_offset();
        let whole = || {
            let mut at = 0;
            let mut bytes = 0usize;
            let mut crc_ok = true;
            let mut chunks = Vec::new();
            while at < end {
                let r = log
                    .read_bounded(at, FETCH_BYTES, end)
                    .expect("read")
                    .records;
                let mut pos = 0;
                while pos < r.len() {
                    let h = tierlog_tiering::BatchHeader::parse(&r[pos..]).expect("header");
                    pos += h.size() as usize;
                    at = h.last_offset() + 1;
                }
                bytes += r.len();
                crc_ok &= !r.is_empty();
                chunks.push(r);
            }
            assert!(crc_ok);
            (bytes, chunks)
        };
        let (_, chunks) = whole();
        group.bench_function(format!("{name}/read_bounded"), |bn| {
            bn.iter(|| black_box(whole().0))
        });
        // The same reads serving bytes unchecked (`--verify-reads false`), as Kafka does.
        log.set_verify_reads(false);
        group.bench_function(format!("{name}/read_bounded_unverified"), |bn| {
            bn.iter(|| black_box(whole().0))
        });
        log.set_verify_reads(true);
        // The verification alone, over the same batches.
        group.bench_function(format!("{name}/crc_only"), |bn| {
            bn.iter(|| {
                let mut ok = true;
                for r in &chunks {
                    let mut pos = 0;
                    while pos < r.len() {
                        let h = tierlog_tiering::BatchHeader::parse(&r[pos..]).expect("header");
                        let size = h.size() as usize;
                        ok &= crc32c::crc32c(&r[pos + 21..pos + size]) == h.crc;
                        pos += size;
                    }
                }
                black_box(ok)
            })
        });
        log.close().expect("close");
    }
    // The verification as the read does it: on a buffer that was just read (in cache).
    let one = chunks_of_one_fetch();
    group.throughput(Throughput::Bytes(one.len() as u64));
    group.bench_function("1m_fetch/crc_in_cache", |bn| {
        bn.iter(|| black_box(crc32c::crc32c(black_box(&one))))
    });
    group.finish();
}

/// One fetch's worth of bytes (1 MiB), for timing CRC-32C on data in cache.
fn chunks_of_one_fetch() -> Vec<u8> {
    (0..FETCH_BYTES).map(|i| (i % 251) as u8).collect()
}

/// The scrubber's check of sealed segments (CPU per GiB scrubbed: one core's time per GiB
/// is 1 / this throughput), and a repair of a whole 64 MiB segment whose file was cut to
/// nothing, with the same bytes from another copy (write, fsync, survey: the local part of a
/// heal; fetching the bytes from a replica or object storage comes on top).
fn bench_scrub_and_repair(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = LogConfig {
        segment_bytes: 64 << 20,
        retention_ms: None,
        ..LogConfig::default()
    };
    let log = PartitionLog::open(dir.path(), config).expect("open log");
    let b = common::batch_of(16 << 10);
    for _ in 0..LOG_BYTES / b.len() {
        log.append(b.clone(), 1, 1_700_000_000_000).expect("append");
    }
    log.roll_now().expect("roll");
    let sealed = log.sealed_bases();
    let sealed_bytes: u64 = sealed.iter().map(|(_, n)| n).sum();

    let mut group = c.benchmark_group("scrub");
    group.sample_size(10);
    group.throughput(Throughput::Bytes(sealed_bytes));
    group.bench_function("16k_batches", |bn| {
        bn.iter(|| {
            for (base, _) in &sealed {
                let (_, damaged) = log.scrub_segment(*base).expect("scrub").expect("sealed");
                assert!(damaged.is_empty());
            }
        })
    });
    group.finish();

    let (base, size) = sealed[0];
    let path = dir.path().join(format!("{base:020}.log"));
    let original = std::fs::read(&path).expect("read segment");
    let mut group = c.benchmark_group("repair");
    group.sample_size(10);
    group.throughput(Throughput::Bytes(size));
    group.bench_function("64m_segment_cut_to_nothing", |bn| {
        bn.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .and_then(|f| f.set_len(0))
                    .expect("cut segment");
                let (_, damaged) = log.scrub_segment(base).expect("scrub").expect("sealed");
                assert_eq!(damaged.len(), 1);
                let start = std::time::Instant::now();
                let left = log
                    .repair(damaged[0].first_offset, &original)
                    .expect("repair");
                spent += start.elapsed();
                assert!(left.is_empty());
            }
            spent
        })
    });
    group.finish();
    log.close().expect("close");
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(5)).warm_up_time(Duration::from_secs(1));
    targets = bench_read, bench_scrub_and_repair
}
criterion_main!(benches);
