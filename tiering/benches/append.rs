//! Hot-path throughput of the partition log: appending 16 KiB batches of 100-byte records
//! (plain, and from an idempotent producer), and validating such batches alone.
//!
//! Run with `cargo bench -p tierlog-tiering` (add `-- --quick` for a short run). Appends go to
//! a temp directory (page cache, no fsync); retention keeps the directory small and is run
//! outside the timed region.

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use tierlog_tiering::{LogConfig, PartitionLog, TimestampType, validate_batches};

mod common;

const BATCH_BYTES: usize = 16 * 1024;

/// One uncompressed v2 batch of ~16 KiB made of 100-byte records; returns it and its count.
fn batch_16k() -> (Bytes, u64) {
    batch_16k_from(-1, -1)
}

/// [`batch_16k`] from idempotent producer `producer_id` (sequences from 0), or with no
/// producer for -1.
fn batch_16k_from(producer_id: i64, producer_epoch: i16) -> (Bytes, u64) {
    common::batch_within(BATCH_BYTES, producer_id, producer_epoch)
}

fn bench_config(timestamp_type: TimestampType) -> LogConfig {
    LogConfig {
        segment_bytes: 64 << 20,
        retention_bytes: Some(128 << 20),
        retention_ms: None,
        message_timestamp_type: timestamp_type,
        ..LogConfig::default()
    }
}

fn bench_append(c: &mut Criterion) {
    let (batch, records) = batch_16k();
    let mut group = c.benchmark_group("append");
    group.throughput(Throughput::ElementsAndBytes {
        elements: records,
        bytes: batch.len() as u64,
    });

    for (name, ts_type) in [
        ("16k_batch_create_time", TimestampType::CreateTime),
        ("16k_batch_log_append_time", TimestampType::LogAppendTime),
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = PartitionLog::open(dir.path(), bench_config(ts_type)).expect("open log");
        // The caller's Bytes is shared (e.g. a slice of a request frame): append copies once.
        group.bench_function(format!("{name}/shared_input"), |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    black_box(
                        log.append(batch.clone(), 1, 1_700_000_000_000)
                            .expect("append"),
                    );
                }
                let elapsed = start.elapsed();
                log.enforce_retention(0).expect("retention");
                elapsed
            })
        });
        log.close().expect("close");
    }

    // The caller hands over a uniquely owned buffer: patched in place, no copy.
    let dir = tempfile::tempdir().expect("tempdir");
    let log =
        PartitionLog::open(dir.path(), bench_config(TimestampType::CreateTime)).expect("open log");
    let mut appended = 0u64;
    group.bench_function("16k_batch_create_time/unique_input", |b| {
        b.iter_batched(
            || {
                appended += 1;
                if appended.is_multiple_of(4096) {
                    log.enforce_retention(0).expect("retention");
                }
                BytesMut::from(&batch[..]).freeze()
            },
            |input| black_box(log.append(input, 1, 1_700_000_000_000).expect("append")),
            BatchSize::SmallInput,
        )
    });

    // The same with an idempotent producer: every batch continues the producer's sequence
    // (patched, with its CRC, outside the timed region), so each append also does the
    // duplicate/epoch/sequence check and updates the producer's state.
    let (template, per_batch) = batch_16k_from(1, 0);
    let dir = tempfile::tempdir().expect("tempdir");
    let idem_log =
        PartitionLog::open(dir.path(), bench_config(TimestampType::CreateTime)).expect("open log");
    let mut sequence = 0i64;
    group.bench_function("16k_batch_create_time/idempotent_unique_input", |b| {
        b.iter_batched(
            || {
                if (sequence as u64 / per_batch).is_multiple_of(4096) {
                    idem_log.enforce_retention(0).expect("retention");
                }
                let mut next = BytesMut::from(&template[..]);
                let base_sequence = (sequence % i64::from(i32::MAX)) as i32;
                next[53..57].copy_from_slice(&base_sequence.to_be_bytes());
                let crc = crc32c::crc32c(&next[21..]);
                next[17..21].copy_from_slice(&crc.to_be_bytes());
                sequence += per_batch as i64;
                next.freeze()
            },
            |input| {
                let r = idem_log
                    .append(input, 1, 1_700_000_000_000)
                    .expect("append");
                assert!(!r.duplicate);
                black_box(r)
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
    log.close().expect("close");
    idem_log.close().expect("close");
}

fn bench_validate(c: &mut Criterion) {
    let (batch, records) = batch_16k();
    let mut group = c.benchmark_group("validate_batches");
    group.throughput(Throughput::ElementsAndBytes {
        elements: records,
        bytes: batch.len() as u64,
    });
    group.bench_function("16k_batch", |b| {
        b.iter(|| black_box(validate_batches(black_box(&batch), 1 << 20).expect("valid")))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = bench_append, bench_validate
}
criterion_main!(benches);
