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
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(5)).warm_up_time(Duration::from_secs(1));
    targets = bench_read
}
criterion_main!(benches);
