//! Tests of the hot-tier log: append, read, roll, retention, recovery, tiering hooks.

use std::io::Write;
use std::time::Duration;

use kafka_protocol::records::Compression;

use super::checkpoint::write_log_start;
use super::*;
use crate::ErrorKind;
use crate::testutil::{self, Spec, batch, concat, simple, split};

pub(super) fn small_config() -> LogConfig {
    LogConfig {
        segment_bytes: 4096,
        segment_ms: None,
        retention_ms: None,
        retention_bytes: None,
        index_interval_bytes: 256,
        ..LogConfig::default()
    }
}

pub(super) fn seg_path(dir: &Path, base: i64, suffix: &str) -> PathBuf {
    dir.join(segment::file_name(base, suffix))
}

/// Appends `n` single-batch appends of `per` records each with timestamps 1000 + offset.
pub(super) fn fill(log: &PartitionLog, n: usize, per: usize) -> Vec<AppendResult> {
    (0..n)
        .map(|_| {
            let ts = 1000 + log.log_end_offset();
            log.append(simple(per, ts), 7, 0).unwrap()
        })
        .collect()
}

/// Reads everything from `from` to the end, one call after another.
pub(super) fn read_all(log: &PartitionLog, from: i64) -> Vec<(i64, i32, Vec<u8>)> {
    let mut out = Vec::new();
    let mut next = from;
    while next < log.log_end_offset() {
        let r = log.read(next, 1 << 20).unwrap();
        let batches = split(&r.records);
        assert!(!batches.is_empty(), "read at {next} returned nothing");
        for (base, count, bytes) in batches {
            assert_eq!(base, next, "batches must be contiguous");
            next = base + i64::from(count);
            out.push((base, count, bytes));
        }
    }
    out
}

#[test]
fn log_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<PartitionLog>();
}

#[test]
fn append_read_round_trip_many_batches() {
    let dir = tempfile::tempdir().unwrap();
    let log = PartitionLog::open(dir.path(), small_config()).unwrap();
    let mut originals = Vec::new();
    for i in 0..300usize {
        let spec = Spec {
            records: 1 + i % 5,
            value_len: 5 + i % 40,
            first_ts: 10_000 + i as i64,
            ..Spec::default()
        };
        let b = batch(spec);
        let r = log.append(b.clone(), 3, 0).unwrap();
        assert_eq!(r.last_offset - r.base_offset + 1, spec.records as i64);
        assert_eq!(r.log_append_time_ms, -1);
        originals.push((r.base_offset, b));
    }
    assert!(log.segment_count() > 5, "small segments must have rolled");
    let stored = read_all(&log, 0);
    assert_eq!(stored.len(), originals.len());
    for ((base, _, bytes), (want_base, orig)) in stored.iter().zip(&originals) {
        assert_eq!(base, want_base);
        let mut expect = orig.to_vec();
        crate::batch::patch_offset_and_epoch(&mut expect, *want_base, 3);
        assert_eq!(bytes, &expect, "stored batch differs beyond offset/epoch");
        crate::validate_batches(bytes, u32::MAX).unwrap();
    }
    assert_eq!(log.log_start_offset(), 0);
    assert_eq!(
        log.size_bytes(),
        originals.iter().map(|(_, b)| b.len() as u64).sum::<u64>()
    );
}

#[test]
fn multi_batch_append_assigns_contiguous_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let log = PartitionLog::open(dir.path(), LogConfig::default()).unwrap();
    log.append(simple(2, 1), 0, 0).unwrap();
    let r = log
        .append(concat(&[simple(3, 5), simple(1, 9), simple(4, 10)]), 1, 0)
        .unwrap();
    assert_eq!((r.base_offset, r.last_offset), (2, 9));
    let batches = split(&log.read(2, 1 << 20).unwrap().records);
    let bases: Vec<_> = batches.iter().map(|b| (b.0, b.1)).collect();
    assert_eq!(bases, vec![(2, 3), (5, 1), (6, 4)]);
    assert_eq!(log.log_end_offset(), 10);
}

#[test]
fn read_at_every_offset_returns_the_containing_batch() {
    let dir = tempfile::tempdir().unwrap();
    let log = PartitionLog::open(dir.path(), small_config()).unwrap();
    let appends = fill(&log, 60, 7);
    for a in &appends {
        for off in a.base_offset..=a.last_offset {
            let r = log.read(off, 1).unwrap();
            let b = split(&r.records);
            assert_eq!(b.len(), 1);
            assert_eq!(b[0].0, a.base_offset, "offset {off}");
            assert_eq!(r.log_end_offset, 420);
        }
    }
    let end = log.read(420, 1000).unwrap();
    assert!(end.records.is_empty());
    let e = log.read(421, 1000).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::OffsetOutOfRange);
    assert!(matches!(
        e,
        Error::OffsetOutOfRange {
            offset: 421,
            start: 0,
            end: 420
        }
    ));
    assert_eq!(
        log.read(-1, 10).unwrap_err().kind(),
        ErrorKind::OffsetOutOfRange
    );
}

#[test]
fn max_bytes_returns_whole_batches_and_at_least_one() {
    let dir = tempfile::tempdir().unwrap();
    let log = PartitionLog::open(dir.path(), LogConfig::default()).unwrap();
    let b = simple(3, 0);
    let size = b.len();
    for _ in 0..10 {
        log.append(b.clone(), 0, 0).unwrap();
    }
    // smaller than one batch: still one whole batch
    let r = log.read(0, 1).unwrap();
    assert_eq!(r.records.len(), size);
    // 2.5 batches: two whole batches
    let r = log.read(4, size * 5 / 2).unwrap();
    assert_eq!(r.records.len(), 2 * size);
    assert_eq!(split(&r.records)[0].0, 3);
    // exactly 3
    assert_eq!(log.read(0, size * 3).unwrap().records.len(), 3 * size);
    // more than available: the rest of the log
    assert_eq!(log.read(27, 1 << 20).unwrap().records.len(), size);
    // a batch larger than max_bytes (KIP-74)
    let big = batch(Spec {
        records: 50,
        value_len: 100,
        ..Spec::default()
    });
    log.append(big.clone(), 0, 0).unwrap();
    assert_eq!(log.read(30, 10).unwrap().records.len(), big.len());
}

#[test]
fn rolls_on_segment_bytes_and_lookups_cross_segments() {
    let dir = tempfile::tempdir().unwrap();
    let log = PartitionLog::open(dir.path(), small_config()).unwrap();
    let b = simple(4, 0);
    let per_segment = 4096 / b.len();
    for _ in 0..(per_segment * 5) {
        log.append(b.clone(), 0, 0).unwrap();
    }
    assert_eq!(log.segment_count(), 5);
    let mut files: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".log"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 5);
    assert_eq!(files[0], "00000000000000000000.log");
    assert_eq!(files[1], format!("{:020}.log", per_segment * 4));
    for m in rlock(&log.shared).segments.iter() {
        assert!(m.size <= 4096);
    }
    for off in 0..log.log_end_offset() {
        let r = log.read(off, 1).unwrap();
        assert_eq!(split(&r.records)[0].0, off - off % 4);
    }
}

#[test]
fn a_roll_that_fails_half_way_leaves_nothing_and_the_next_one_succeeds() {
    // One batch per segment; the second append has to roll to offset 5.
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: 100,
        ..small_config()
    };
    let log = PartitionLog::open(dir.path(), config).unwrap();
    log.append(simple(5, 0), 0, 0).unwrap();
    // The injected failure: the new segment's offset index cannot be created (a directory
    // holds its name), as when the process is out of descriptors half-way through a roll.
    let index = seg_path(dir.path(), 5, segment::INDEX_SUFFIX);
    fs::create_dir(&index).unwrap();
    for _ in 0..3 {
        let err = log.append(simple(5, 0), 0, 0).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Io, "{err}");
        assert!(
            !seg_path(dir.path(), 5, segment::LOG_SUFFIX).exists(),
            "a failed roll must not leave the new segment's log file"
        );
    }
    assert_eq!(log.log_end_offset(), 5);
    // The cause goes away: the next append rolls, and the log reads back whole.
    fs::remove_dir(&index).unwrap();
    log.append(simple(5, 0), 0, 0).unwrap();
    assert_eq!(log.segment_count(), 2);
    assert_eq!(log.log_end_offset(), 10);
    assert_eq!(read_all(&log, 0).len(), 2);
    drop(log);
    let reopened = PartitionLog::open(dir.path(), small_config()).unwrap();
    assert_eq!(reopened.log_end_offset(), 10);
}

#[test]
fn single_oversized_append_fills_a_fresh_segment() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: 100,
        ..small_config()
    };
    let log = PartitionLog::open(dir.path(), config).unwrap();
    for _ in 0..3 {
        log.append(simple(5, 0), 0, 0).unwrap();
    }
    assert_eq!(log.segment_count(), 3);
    assert_eq!(read_all(&log, 0).len(), 3);
}

#[test]
fn rolls_on_segment_ms() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_ms: Some(Duration::from_millis(100)),
        ..LogConfig::default()
    };
    let log = PartitionLog::open(dir.path(), config).unwrap();
    log.append(simple(1, 0), 0, 1_000).unwrap();
    log.append(simple(1, 0), 0, 1_050).unwrap();
    log.append(simple(1, 0), 0, 1_100).unwrap();
    assert_eq!(log.segment_count(), 1);
    log.append(simple(1, 0), 0, 1_101).unwrap();
    assert_eq!(log.segment_count(), 2);
    // enforce_retention rolls a due segment even without appends
    assert_eq!(log.enforce_retention(1_150).unwrap(), 0);
    assert_eq!(log.segment_count(), 2);
    assert_eq!(log.enforce_retention(1_202).unwrap(), 0);
    assert_eq!(log.segment_count(), 3);
    // an empty active segment never rolls
    assert_eq!(log.enforce_retention(10_000).unwrap(), 0);
    assert_eq!(log.segment_count(), 3);
    assert_eq!(read_all(&log, 0).len(), 4);
}

#[test]
fn offset_for_timestamp_across_segments_and_inside_batches() {
    let dir = tempfile::tempdir().unwrap();
    let log = PartitionLog::open(dir.path(), small_config()).unwrap();
    // 100 batches of 5 records, timestamps 1000 + 10*offset (strictly increasing)
    for i in 0..100i64 {
        let spec = Spec {
            records: 5,
            first_ts: 1000 + 50 * i,
            ts_step: 10,
            ..Spec::default()
        };
        log.append(batch(spec), 0, 0).unwrap();
    }
    assert!(log.segment_count() > 3);
    for off in (0..500).step_by(7) {
        let ts = 1000 + 10 * off;
        assert_eq!(
            log.offset_for_timestamp(ts).unwrap(),
            Some(TimestampOffset {
                offset: off,
                timestamp: ts
            }),
            "exact timestamp of offset {off}"
        );
        // just after a record's timestamp: the next record
        let found = log.offset_for_timestamp(ts + 1).unwrap();
        if off < 499 {
            assert_eq!(found.unwrap().offset, off + 1);
        }
    }
    assert_eq!(log.offset_for_timestamp(0).unwrap().unwrap().offset, 0);
    assert_eq!(log.offset_for_timestamp(1000 + 10 * 499 + 1).unwrap(), None);
    assert_eq!(
        log.max_timestamp(),
        Some(TimestampOffset {
            offset: 499,
            timestamp: 1000 + 4990
        })
    );
}

#[test]
fn offset_for_timestamp_with_out_of_order_create_times() {
    let dir = tempfile::tempdir().unwrap();
    let log = PartitionLog::open(dir.path(), LogConfig::default()).unwrap();
    let spec = Spec {
        records: 4,
        ..Spec::default()
    };
    let b1 = testutil::encode(
        &testutil::records_of(spec, Some(&[100, 500, 200, 300])),
        Compression::None,
    );
    let b2 = testutil::encode(
        &testutil::records_of(spec, Some(&[150, 160, 700, 170])),
        Compression::Zstd,
    );
    log.append(b1, 0, 0).unwrap();
    log.append(b2, 0, 0).unwrap();
    let at = |ts| {
        log.offset_for_timestamp(ts)
            .unwrap()
            .map(|t| (t.offset, t.timestamp))
    };
    assert_eq!(at(50), Some((0, 100)));
    assert_eq!(at(250), Some((1, 500)));
    assert_eq!(at(501), Some((6, 700)));
    assert_eq!(at(701), None);
    assert_eq!(
        log.max_timestamp(),
        Some(TimestampOffset {
            offset: 6,
            timestamp: 700
        })
    );
}

#[test]
fn log_append_time_stamps_batches_and_keeps_them_valid() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        message_timestamp_type: TimestampType::LogAppendTime,
        ..LogConfig::default()
    };
    let log = PartitionLog::open(dir.path(), config).unwrap();
    let r = log.append(simple(3, 5), 0, 42_000).unwrap();
    assert_eq!(r.log_append_time_ms, 42_000);
    let gz = batch(Spec {
        records: 3,
        compression: Compression::Gzip,
        ..Spec::default()
    });
    log.append(gz, 0, 43_000).unwrap();
    let stored = log.read(0, 1 << 20).unwrap().records;
    let headers = crate::validate_batches(&stored, u32::MAX).unwrap();
    assert_eq!(headers.len(), 2);
    for (h, t) in headers.iter().zip([42_000, 43_000]) {
        assert_eq!(h.timestamp_type(), TimestampType::LogAppendTime);
        assert_eq!((h.first_timestamp, h.max_timestamp), (t, t));
    }
    assert_eq!(
        log.offset_for_timestamp(42_500).unwrap(),
        Some(TimestampOffset {
            offset: 3,
            timestamp: 43_000
        })
    );
    assert_eq!(
        log.max_timestamp(),
        Some(TimestampOffset {
            offset: 3,
            timestamp: 43_000
        })
    );
}

#[test]
fn producer_max_timestamp_is_corrected_for_uncompressed_batches() {
    let dir = tempfile::tempdir().unwrap();
    let log = PartitionLog::open(dir.path(), LogConfig::default()).unwrap();
    let mut b = simple(3, 100).to_vec(); // records at 100, 101, 102
    b[35..43].copy_from_slice(&5i64.to_be_bytes());
    testutil::fix_crc(&mut b);
    log.append(Bytes::from(b), 0, 0).unwrap();
    let stored = log.read(0, 1 << 20).unwrap().records;
    let h = crate::validate_batches(&stored, u32::MAX).unwrap()[0];
    assert_eq!(h.max_timestamp, 102);
    assert_eq!(log.max_timestamp().unwrap().timestamp, 102);
}

#[test]
fn compressed_batches_pass_through_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let log = PartitionLog::open(dir.path(), LogConfig::default()).unwrap();
    log.append(simple(2, 0), 0, 0).unwrap();
    for (i, c) in [Compression::Gzip, Compression::Zstd]
        .into_iter()
        .enumerate()
    {
        let b = batch(Spec {
            records: 20,
            value_len: 200,
            first_ts: 5_000 + 100 * i as i64,
            compression: c,
            ..Spec::default()
        });
        assert_eq!(b[22] & 0x07, c as u8);
        let r = log.append(b.clone(), 9, 0).unwrap();
        let stored = log.read(r.base_offset, 1).unwrap().records;
        let mut expect = b.to_vec();
        crate::batch::patch_offset_and_epoch(&mut expect, r.base_offset, 9);
        assert_eq!(&stored[..], &expect[..]);
        // and its records are reachable by timestamp (decoded, not on the hot path)
        let found = log
            .offset_for_timestamp(5_000 + 100 * i as i64 + 7)
            .unwrap()
            .unwrap();
        assert_eq!(found.offset, r.base_offset + 7);
    }
}

#[test]
fn rejected_append_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log = PartitionLog::open(dir.path(), LogConfig::default()).unwrap();
    log.append(simple(2, 0), 0, 0).unwrap();
    let mut bad = simple(2, 0).to_vec();
    let last = bad.len() - 1;
    bad[last] ^= 0xff;
    let input = concat(&[simple(1, 0), simple(1, 0), Bytes::from(bad)]);
    let e = log.append(input, 0, 0).unwrap_err();
    assert!(matches!(e, Error::CorruptMessage { .. }), "{e}");
    assert_eq!(e.kind(), ErrorKind::Invalid);
    assert_eq!(log.log_end_offset(), 2);
    assert_eq!(log.size_bytes(), simple(2, 0).len() as u64);
    assert_eq!(read_all(&log, 0).len(), 1);
    let r = log.append(simple(1, 0), 0, 0).unwrap();
    assert_eq!(r.base_offset, 2);
}

#[test]
fn retention_by_time_never_deletes_the_active_segment() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        retention_ms: Some(Duration::from_millis(1000)),
        ..small_config()
    };
    let log = PartitionLog::open(dir.path(), config).unwrap();
    // timestamps = 1000 + offset, 4 records per batch
    fill(&log, 100, 4);
    let segments = log.segment_count();
    assert!(segments > 3);
    // nothing is older than 1000ms at now=1500
    assert_eq!(log.enforce_retention(1_500).unwrap(), 0);
    // at now = 2000 + 400 everything is expired, but the active segment stays
    assert_eq!(log.enforce_retention(100_000).unwrap(), segments - 1);
    assert_eq!(log.segment_count(), 1);
    let start = log.log_start_offset();
    assert!(start > 0);
    assert_eq!(
        log.read(start - 1, 10).unwrap_err().kind(),
        ErrorKind::OffsetOutOfRange
    );
    assert_eq!(split(&log.read(start, 1).unwrap().records)[0].0, start);
    assert_eq!(
        log.append(simple(1, 0), 0, 0).unwrap().log_start_offset,
        start
    );
    // deleted files are gone
    assert!(!seg_path(dir.path(), 0, "log").exists());
    assert!(!seg_path(dir.path(), 0, "index").exists());
}

#[test]
fn retention_by_time_deletes_only_expired_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        retention_ms: Some(Duration::from_millis(1000)),
        ..small_config()
    };
    let log = PartitionLog::open(dir.path(), config).unwrap();
    fill(&log, 100, 4);
    let metas = rlock(&log.shared).segments.clone();
    // now such that exactly the first two segments are older than 1000ms
    let now = metas[1].max_ts + 1001;
    assert_eq!(log.enforce_retention(now).unwrap(), 2);
    assert_eq!(log.log_start_offset(), metas[2].seg.base_offset);
}

#[test]
fn retention_by_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        retention_bytes: Some(10_000),
        ..small_config()
    };
    let log = PartitionLog::open(dir.path(), config).unwrap();
    fill(&log, 200, 4);
    let before = log.size_bytes();
    assert!(before > 20_000);
    let deleted = log.enforce_retention(0).unwrap();
    assert!(deleted > 0);
    // Kafka's rule: delete a segment only while the log stays at or above the limit
    // without it, so the log ends within one segment above the limit.
    let after = log.size_bytes();
    assert!(after >= 10_000, "size {after} went below the limit");
    let first = rlock(&log.shared).segments[0].size;
    assert!(
        after - first < 10_000,
        "size {after}: could have deleted {first} more"
    );
    assert_eq!(
        log.read(log.log_start_offset() - 1, 1).unwrap_err().kind(),
        ErrorKind::OffsetOutOfRange
    );
    // never the active segment, even with a tiny limit
    log.update_config(LogConfig {
        retention_bytes: Some(0),
        ..small_config()
    });
    log.enforce_retention(0).unwrap();
    assert_eq!(log.segment_count(), 1);
    assert!(log.size_bytes() > 0);
}

#[test]
fn reopen_after_close_preserves_everything() {
    let dir = tempfile::tempdir().unwrap();
    let (end, stored, segments, max_ts) = {
        let log = PartitionLog::open(dir.path(), small_config()).unwrap();
        fill(&log, 150, 3);
        log.close().unwrap();
        assert!(matches!(
            log.append(simple(1, 0), 0, 0),
            Err(Error::Closed { .. })
        ));
        (
            log.log_end_offset(),
            read_all(&log, 0),
            log.segment_count(),
            log.max_timestamp(),
        )
    };
    assert!(dir.path().join(CLEAN_SHUTDOWN_FILE).exists());
    let log = PartitionLog::open(dir.path(), small_config()).unwrap();
    assert!(!dir.path().join(CLEAN_SHUTDOWN_FILE).exists());
    assert_eq!(log.log_end_offset(), end);
    assert_eq!(log.durable_offset(), end);
    assert_eq!(log.segment_count(), segments);
    assert_eq!(read_all(&log, 0), stored);
    assert_eq!(log.max_timestamp(), max_ts);
    assert_eq!(
        log.offset_for_timestamp(1000 + 100)
            .unwrap()
            .unwrap()
            .offset,
        100
    );
    assert_eq!(log.append(simple(1, 0), 0, 0).unwrap().base_offset, end);
}

#[test]
fn clean_reopen_does_not_rebuild_indexes() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = PartitionLog::open(dir.path(), small_config()).unwrap();
        fill(&log, 150, 3);
        log.close().unwrap();
    }
    let index = seg_path(dir.path(), 0, "index");
    let before = fs::read(&index).unwrap();
    assert!(!before.is_empty());
    let log = PartitionLog::open(dir.path(), small_config()).unwrap();
    assert!(
        rlock(&log.shared).unsynced.is_empty(),
        "nothing should have been scanned"
    );
    let (offs, _) = (log.read(0, 1).unwrap(), ());
    assert!(!offs.records.is_empty());
    assert_eq!(fs::read(&index).unwrap(), before);
}

#[test]
fn unclean_reopen_keeps_unflushed_page_cache_data() {
    let dir = tempfile::tempdir().unwrap();
    let stored = {
        let log = PartitionLog::open(dir.path(), small_config()).unwrap();
        fill(&log, 50, 3);
        assert_eq!(log.flush().unwrap(), 150);
        assert_eq!(log.durable_offset(), 150);
        fill(&log, 50, 3);
        assert_eq!(log.durable_offset(), 150);
        read_all(&log, 0)
        // dropped without close(): a crash as far as the files are concerned
    };
    let log = PartitionLog::open(dir.path(), small_config()).unwrap();
    assert_eq!(log.log_end_offset(), 300);
    assert_eq!(log.durable_offset(), 300);
    assert_eq!(read_all(&log, 0), stored);
    for off in (0..300).step_by(11) {
        assert_eq!(
            split(&log.read(off, 1).unwrap().records)[0].0,
            off - off % 3
        );
    }
}

/// Crash with a damaged tail, then check: truncated to the last good batch, indexes fine,
/// appends continue at the right offset.
fn check_tail_recovery(damage: impl FnOnce(&Path)) {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: 1 << 20,
        ..small_config()
    };
    {
        let log = PartitionLog::open(dir.path(), config.clone()).unwrap();
        fill(&log, 20, 5);
        log.flush().unwrap();
    }
    damage(&seg_path(dir.path(), 0, "log"));
    let log = PartitionLog::open(dir.path(), config).unwrap();
    assert_eq!(
        log.log_end_offset(),
        95,
        "the last batch (90..95) is damaged"
    );
    let file_len = fs::metadata(seg_path(dir.path(), 0, "log")).unwrap().len();
    assert_eq!(
        file_len,
        log.size_bytes(),
        "the damaged tail is cut off the file"
    );
    let stored = read_all(&log, 0);
    assert_eq!(stored.len(), 19);
    let r = log.append(simple(2, 0), 0, 0).unwrap();
    assert_eq!(r.base_offset, 95);
    assert_eq!(read_all(&log, 90).len(), 2);
    assert_eq!(log.durable_offset(), 95);
}

fn last_batch_len() -> u64 {
    simple(5, 0).len() as u64
}

#[test]
fn recovery_truncates_torn_tail() {
    check_tail_recovery(|p| {
        let f = OpenOptions::new().write(true).open(p).unwrap();
        let len = f.metadata().unwrap().len();
        f.set_len(len - last_batch_len() / 2).unwrap();
    });
}

#[test]
fn recovery_truncates_garbage_after_last_batch() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = PartitionLog::open(dir.path(), small_config()).unwrap();
        fill(&log, 10, 5);
    }
    let mut f = OpenOptions::new()
        .append(true)
        .open(seg_path(dir.path(), 0, "log"))
        .unwrap();
    f.write_all(&[0xde; 100]).unwrap();
    drop(f);
    let log = PartitionLog::open(dir.path(), small_config()).unwrap();
    assert_eq!(log.log_end_offset(), 50);
    let file_len = fs::metadata(seg_path(dir.path(), 0, "log")).unwrap().len();
    assert_eq!(
        file_len,
        log.size_bytes(),
        "the garbage is cut off the file"
    );
    assert_eq!(read_all(&log, 0).len(), 10);
    assert_eq!(log.append(simple(1, 0), 0, 0).unwrap().base_offset, 50);
    drop(log);
    // garbage that looks like a header with a huge length, after a clean close
    let log = PartitionLog::open(dir.path(), small_config()).unwrap();
    log.close().unwrap();
    drop(log);
    let mut fake = simple(1, 0).to_vec();
    fake[8..12].copy_from_slice(&i32::MAX.to_be_bytes());
    let mut f = OpenOptions::new()
        .append(true)
        .open(seg_path(dir.path(), 0, "log"))
        .unwrap();
    f.write_all(&fake).unwrap();
    drop(f);
    let log = PartitionLog::open(dir.path(), small_config()).unwrap();
    assert_eq!(log.log_end_offset(), 51);
    assert_eq!(log.append(simple(1, 0), 0, 0).unwrap().base_offset, 51);
}

#[test]
fn missing_and_corrupt_index_files_are_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let (stored, ts_answers) = {
        let log = PartitionLog::open(dir.path(), small_config()).unwrap();
        fill(&log, 150, 3);
        log.close().unwrap();
        let ts: Vec<_> = (0..450)
            .step_by(17)
            .map(|o| log.offset_for_timestamp(1000 + o).unwrap())
            .collect();
        (read_all(&log, 0), ts)
    };
    let index0 = seg_path(dir.path(), 0, "index");
    let good_index0 = fs::read(&index0).unwrap();
    fs::remove_file(&index0).unwrap();
    // second segment: its time index gets garbage, its offset index a torn entry
    let bases: Vec<i64> = {
        let mut v: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| segment::parse_log_name(e.unwrap().file_name().to_str().unwrap()))
            .collect();
        v.sort();
        v
    };
    assert!(bases.len() >= 3);
    fs::write(seg_path(dir.path(), bases[1], "timeindex"), [0xab; 36]).unwrap();
    let idx1 = seg_path(dir.path(), bases[1], "index");
    let good_index1 = fs::read(&idx1).unwrap();
    fs::write(&idx1, &good_index1[..good_index1.len() - 5]).unwrap();
    // third segment: index entry pointing into the middle of a batch
    let idx2 = seg_path(dir.path(), bases[2], "index");
    let mut bad = fs::read(&idx2).unwrap();
    assert!(bad.len() >= 8);
    let n = bad.len();
    let pos = u32::from_be_bytes([bad[n - 4], bad[n - 3], bad[n - 2], bad[n - 1]]);
    bad[n - 4..].copy_from_slice(&(pos + 1).to_be_bytes());
    fs::write(&idx2, &bad).unwrap();

    let log = PartitionLog::open(dir.path(), small_config()).unwrap();
    assert_eq!(read_all(&log, 0), stored);
    let ts: Vec<_> = (0..450)
        .step_by(17)
        .map(|o| log.offset_for_timestamp(1000 + o).unwrap())
        .collect();
    assert_eq!(ts, ts_answers);
    for off in 0..450 {
        assert_eq!(
            split(&log.read(off, 1).unwrap().records)[0].0,
            off - off % 3
        );
    }
    assert_eq!(
        fs::read(&index0).unwrap(),
        good_index0,
        "rebuilt index equals the original"
    );
    assert_eq!(fs::read(&idx1).unwrap(), good_index1);
    assert_eq!(
        fs::metadata(seg_path(dir.path(), bases[1], "timeindex"))
            .unwrap()
            .len()
            % 12,
        0
    );
}

#[test]
fn orphan_index_files_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    drop(PartitionLog::open(dir.path(), LogConfig::default()).unwrap());
    let orphan = seg_path(dir.path(), 500, "index");
    fs::write(&orphan, [0u8; 8]).unwrap();
    drop(PartitionLog::open(dir.path(), LogConfig::default()).unwrap());
    assert!(!orphan.exists());
}

#[test]
fn second_open_of_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _log = PartitionLog::open(dir.path(), LogConfig::default()).unwrap();
    let e = PartitionLog::open(dir.path(), LogConfig::default()).unwrap_err();
    assert!(matches!(e, Error::Locked { .. }));
    assert_eq!(e.kind(), ErrorKind::Unavailable);
}

#[test]
fn a_dropped_log_releases_its_directory() {
    let dir = tempfile::tempdir().unwrap();
    drop(PartitionLog::open(dir.path(), LogConfig::default()).unwrap());
    let log = PartitionLog::open(dir.path(), LogConfig::default()).unwrap();
    log.close().unwrap();
}

#[test]
fn a_new_log_is_made_durable_by_its_first_flush_not_at_creation() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("topic").join("0");
    let log = PartitionLog::open(&dir, small_config()).unwrap();
    // Nothing written, nothing fsynced: no recovery point yet, and nothing to wait for.
    assert!(!dir.join(RECOVERY_POINT_FILE).exists());
    assert_eq!(log.durable_offset(), 0);
    log.append(simple(2, 1000), 0, 0).unwrap();
    assert_eq!(log.flush().unwrap(), 2);
    assert!(dir.join(RECOVERY_POINT_FILE).exists());
    assert!(!rlock(&log.shared).parent_dirty);
    drop(log);
    // An unclean reopen (no close) of a log created and never flushed works too.
    let fresh = root.path().join("topic").join("1");
    drop(PartitionLog::open(&fresh, small_config()).unwrap());
    let log = PartitionLog::open(&fresh, small_config()).unwrap();
    assert_eq!(log.log_end_offset(), 0);
    assert_eq!(log.append(simple(1, 0), 0, 0).unwrap().base_offset, 0);
}

/// Descriptors this process holds now.
fn open_descriptors() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Many logs through a pool of two files: everything reads back, retention and reopening work,
/// and the logs at rest hold no descriptor. (nextest runs each test in its own process, so
/// shrinking the process-wide pool and counting descriptors here disturbs no other test.)
#[test]
fn many_logs_share_a_tiny_file_pool() {
    let pool = crate::FilePool::global();
    pool.set_capacity(2);
    let root = tempfile::tempdir().unwrap();
    let before = open_descriptors();
    let config = LogConfig {
        retention_bytes: Some(8_000),
        ..small_config()
    };
    let dirs: Vec<PathBuf> = (0..8).map(|i| root.path().join(i.to_string())).collect();
    let logs: Vec<PartitionLog> = dirs
        .iter()
        .map(|d| PartitionLog::open(d, config.clone()).unwrap())
        .collect();
    for round in 0..60 {
        for log in &logs {
            let spec = Spec {
                records: 3,
                value_len: 120,
                first_ts: 1000 + log.log_end_offset(),
                ..Spec::default()
            };
            log.append(batch(spec), 1, 0).unwrap();
            if round % 10 == 9 {
                log.flush().unwrap();
            }
        }
    }
    let mut stored = Vec::new();
    for log in &logs {
        assert!(log.segment_count() > 3, "small segments must have rolled");
        let all = read_all(log, 0);
        assert_eq!(all.len(), 60);
        // Random-ish access across segments, evicting and reopening files as it goes.
        for off in [7, 100, 3, 170, 55] {
            let r = log.read(off, 1).unwrap();
            assert_eq!(split(&r.records)[0].0, off - off % 3);
        }
        stored.push(all);
    }
    assert!(pool.stats().open <= 2, "{:?}", pool.stats());
    assert!(pool.stats().evicted > 0, "{:?}", pool.stats());
    assert!(
        open_descriptors() <= before + 2,
        "{} descriptors open, {before} before",
        open_descriptors()
    );
    for (log, all) in logs.iter().zip(&stored) {
        assert!(log.enforce_retention(0).unwrap() > 0);
        let start = log.log_start_offset();
        let kept: Vec<_> = all.iter().filter(|b| b.0 >= start).cloned().collect();
        assert_eq!(read_all(log, start), kept);
        log.close().unwrap();
    }
    drop(logs);
    assert_eq!(pool.stats().open, 0, "{:?}", pool.stats());
    for (d, all) in dirs.iter().zip(&stored) {
        let log = PartitionLog::open(d, config.clone()).unwrap();
        let start = log.log_start_offset();
        let kept: Vec<_> = all.iter().filter(|b| b.0 >= start).cloned().collect();
        assert_eq!(read_all(&log, start), kept);
        assert_eq!(log.append(simple(1, 0), 1, 0).unwrap().base_offset, 180);
    }
}

#[test]
fn invalid_config_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let bad = LogConfig {
        segment_bytes: 1,
        ..LogConfig::default()
    };
    assert!(matches!(
        PartitionLog::open(dir.path(), bad.clone()),
        Err(Error::InvalidConfig { .. })
    ));
    let log = PartitionLog::open(dir.path(), LogConfig::default()).unwrap();
    log.update_config(bad);
    assert_eq!(log.config(), LogConfig::default());
}

#[test]
fn message_too_large_follows_updated_config() {
    let dir = tempfile::tempdir().unwrap();
    let log = PartitionLog::open(dir.path(), LogConfig::default()).unwrap();
    let b = simple(10, 0);
    log.append(b.clone(), 0, 0).unwrap();
    log.update_config(LogConfig {
        max_message_bytes: (b.len() - 1) as u32,
        ..LogConfig::default()
    });
    let e = log.append(b.clone(), 0, 0).unwrap_err();
    assert!(matches!(e, Error::MessageTooLarge { size, .. } if size == b.len() as u64));
}

#[test]
fn concurrent_appends_reads_and_flushes_stay_consistent() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(PartitionLog::open(dir.path(), small_config()).unwrap());
    let writer = {
        let log = log.clone();
        std::thread::spawn(move || {
            for i in 0..400 {
                log.append(simple(1 + i % 3, i as i64), 0, i as i64)
                    .unwrap();
            }
        })
    };
    let flusher = {
        let log = log.clone();
        std::thread::spawn(move || {
            let mut last = 0;
            for _ in 0..20 {
                let d = log.flush().unwrap();
                assert!(d >= last);
                last = d;
            }
        })
    };
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let log = log.clone();
            std::thread::spawn(move || {
                for _ in 0..200 {
                    let end = log.log_end_offset();
                    if end == 0 {
                        continue;
                    }
                    let off = end / 2;
                    let r = log.read(off, 4096).unwrap();
                    let batches = split(&r.records);
                    assert!(batches[0].0 <= off);
                    assert!(off < batches[0].0 + i64::from(batches[0].1));
                    let mut next = batches[0].0;
                    for (base, count, bytes) in batches {
                        assert_eq!(base, next);
                        next += i64::from(count);
                        crate::validate_batches(&bytes, u32::MAX).unwrap();
                    }
                    assert!(next <= r.log_end_offset);
                }
            })
        })
        .collect();
    writer.join().unwrap();
    flusher.join().unwrap();
    for r in readers {
        r.join().unwrap();
    }
    assert_eq!(log.flush().unwrap(), log.log_end_offset());
    assert_eq!(log.durable_offset(), log.log_end_offset());
}

fn remote_config() -> LogConfig {
    LogConfig {
        remote_storage: true,
        ..small_config()
    }
}

#[test]
fn sealed_segments_are_complete_and_exclude_the_active_one() {
    let dir = tempfile::tempdir().unwrap();
    let log = PartitionLog::open(dir.path(), small_config()).unwrap();
    assert!(log.sealed_segments().unwrap().is_empty());
    fill(&log, 100, 4);
    let sealed = log.sealed_segments().unwrap();
    assert_eq!(sealed.len(), log.segment_count() - 1);
    let metas = rlock(&log.shared).segments.clone();
    let mut next = 0;
    for (s, m) in sealed.iter().zip(&metas) {
        assert_eq!(s.base_offset, next);
        assert!(s.end_offset > s.base_offset);
        next = s.end_offset;
        assert_eq!(s.first_timestamp, 1000 + s.base_offset);
        assert_eq!(s.max_timestamp, 1000 + s.end_offset - 1);
        assert_eq!(std::fs::metadata(&s.log_path).unwrap().len(), s.size_bytes);
        // the files hold every index entry, the final time entry included
        let (offsets, times) = {
            let idx = m.seg.index();
            let (o, t) = idx.entries();
            (o.len(), t.len())
        };
        assert_eq!(
            std::fs::metadata(&s.index_path).unwrap().len(),
            offsets as u64 * 8
        );
        assert_eq!(
            std::fs::metadata(&s.time_index_path).unwrap().len(),
            times as u64 * 12
        );
        let t = std::fs::read(&s.time_index_path).unwrap();
        let last_ts = i64::from_be_bytes(t[t.len() - 12..t.len() - 4].try_into().unwrap());
        assert_eq!(last_ts, s.max_timestamp);
    }
    assert_eq!(next, metas.last().unwrap().seg.base_offset);
}

#[test]
fn sealed_segments_while_appending() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(PartitionLog::open(dir.path(), small_config()).unwrap());
    let writer = {
        let log = log.clone();
        std::thread::spawn(move || fill(&log, 300, 2))
    };
    for _ in 0..50 {
        let sealed = log.sealed_segments().unwrap();
        for w in sealed.windows(2) {
            assert_eq!(w[0].end_offset, w[1].base_offset);
        }
        if let Some(last) = sealed.last() {
            assert!(last.end_offset <= log.log_end_offset());
        }
    }
    writer.join().unwrap();
}

#[test]
fn roll_now_seals_only_a_non_empty_active_segment() {
    let dir = tempfile::tempdir().unwrap();
    let log = PartitionLog::open(dir.path(), small_config()).unwrap();
    assert!(!log.roll_now().unwrap());
    log.append(simple(3, 1000), 0, 0).unwrap();
    assert!(log.roll_now().unwrap());
    assert!(!log.roll_now().unwrap());
    let sealed = log.sealed_segments().unwrap();
    assert_eq!(sealed.len(), 1);
    assert_eq!((sealed[0].base_offset, sealed[0].end_offset), (0, 3));
    assert_eq!(log.append(simple(1, 1000), 0, 0).unwrap().base_offset, 3);
    log.close().unwrap();
    assert!(matches!(log.roll_now(), Err(Error::Closed { .. })));
}

#[test]
fn open_at_starts_an_empty_log_at_the_tiered_end() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = PartitionLog::open_at(dir.path(), small_config(), 5000).unwrap();
        assert_eq!((log.log_start_offset(), log.log_end_offset()), (5000, 5000));
        assert_eq!(
            log.read(4999, 10).unwrap_err().kind(),
            ErrorKind::OffsetOutOfRange
        );
        assert!(log.read(5000, 10).unwrap().records.is_empty());
        assert_eq!(log.append(simple(2, 1000), 0, 0).unwrap().base_offset, 5000);
        assert_eq!(split(&log.read(5001, 10).unwrap().records)[0].0, 5000);
        log.close().unwrap();
    }
    // segments exist: the start offset is ignored, clean or not
    let log = PartitionLog::open_at(dir.path(), small_config(), 0).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (5000, 5002));
    drop(log);
    let log = PartitionLog::open_at(dir.path(), small_config(), 9000).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (5000, 5002));
    drop(log);
    assert!(
        PartitionLog::open_at(tempfile::tempdir().unwrap().path(), small_config(), -1).is_err()
    );
}

#[test]
fn tiered_end_only_grows_and_untiered_bytes_follow_it() {
    let dir = tempfile::tempdir().unwrap();
    let log = PartitionLog::open(dir.path(), remote_config()).unwrap();
    fill(&log, 100, 4);
    assert_eq!(log.tiered_end(), 0);
    assert_eq!(log.untiered_bytes(), log.size_bytes());
    let sealed = log.sealed_segments().unwrap();
    log.set_tiered_end(sealed[1].end_offset);
    log.set_tiered_end(sealed[0].end_offset); // a late report does not move it back
    assert_eq!(log.tiered_end(), sealed[1].end_offset);
    assert_eq!(
        log.untiered_bytes(),
        log.size_bytes() - sealed[0].size_bytes - sealed[1].size_bytes
    );
    log.set_tiered_end(log.log_end_offset());
    assert_eq!(log.untiered_bytes(), 0);
}

#[test]
fn untiered_segments_survive_any_local_retention() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        retention_ms: Some(Duration::from_millis(1)),
        retention_bytes: Some(0),
        local_retention_ms: Some(Duration::from_millis(1)),
        local_retention_bytes: Some(0),
        ..remote_config()
    };
    let log = PartitionLog::open(dir.path(), config).unwrap();
    fill(&log, 300, 4);
    let segments = log.segment_count();
    let end = log.log_end_offset();
    assert_eq!(log.enforce_retention(i64::MAX / 2).unwrap(), 0);
    assert_eq!(log.segment_count(), segments);
    assert_eq!(read_all(&log, 0).len(), 300);
    // three segments tiered: exactly those go
    let sealed = log.sealed_segments().unwrap();
    log.set_tiered_end(sealed[2].end_offset);
    assert_eq!(log.enforce_retention(i64::MAX / 2).unwrap(), 3);
    assert_eq!(log.log_start_offset(), sealed[3].base_offset);
    assert!(!seg_path(dir.path(), sealed[2].base_offset, "log").exists());
    assert!(seg_path(dir.path(), sealed[3].base_offset, "log").exists());
    // a tiered end inside a segment keeps that segment
    log.set_tiered_end(sealed[4].end_offset - 1);
    assert_eq!(log.enforce_retention(i64::MAX / 2).unwrap(), 1);
    assert_eq!(log.log_start_offset(), sealed[4].base_offset);
    // all tiered: everything but the active segment
    log.set_tiered_end(end);
    log.enforce_retention(i64::MAX / 2).unwrap();
    assert_eq!(log.segment_count(), 1);
    assert_eq!(log.log_end_offset(), end);
}

#[test]
fn tiered_segments_stay_until_local_retention_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        retention_ms: Some(Duration::from_secs(3600)),
        local_retention_ms: Some(Duration::from_millis(1000)),
        ..remote_config()
    };
    let log = PartitionLog::open(dir.path(), config.clone()).unwrap();
    fill(&log, 300, 4);
    log.set_tiered_end(log.log_end_offset());
    let sealed = log.sealed_segments().unwrap();
    // nothing is past local retention yet
    assert_eq!(
        log.enforce_retention(sealed[0].max_timestamp + 1000)
            .unwrap(),
        0
    );
    // exactly the first two are
    assert_eq!(
        log.enforce_retention(sealed[1].max_timestamp + 1001)
            .unwrap(),
        2
    );
    // by bytes: local.retention.bytes, and no local limit means no deletion
    log.update_config(LogConfig {
        local_retention_ms: None,
        retention_ms: None,
        ..config.clone()
    });
    assert_eq!(log.enforce_retention(i64::MAX / 2).unwrap(), 0);
    let limit = log.size_bytes() / 2;
    log.update_config(LogConfig {
        local_retention_ms: None,
        retention_ms: None,
        local_retention_bytes: Some(limit),
        ..config
    });
    assert!(log.enforce_retention(0).unwrap() > 0);
    let after = log.size_bytes();
    assert!(after >= limit);
    assert!(after - rlock(&log.shared).segments[0].size < limit);
}

#[test]
fn advance_log_start_deletes_below_and_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (start, end, sealed) = {
        let log = PartitionLog::open(dir.path(), remote_config()).unwrap();
        fill(&log, 100, 4);
        let sealed = log.sealed_segments().unwrap();
        // inside the third segment: the first two go, reads below fail
        let target = sealed[2].base_offset + 3;
        assert_eq!(log.advance_log_start(target).unwrap(), target);
        assert_eq!(log.log_start_offset(), target);
        assert!(!seg_path(dir.path(), sealed[1].base_offset, "log").exists());
        assert!(seg_path(dir.path(), sealed[2].base_offset, "log").exists());
        assert_eq!(
            log.read(target - 1, 10).unwrap_err().kind(),
            ErrorKind::OffsetOutOfRange
        );
        // the batch holding the start is served whole
        assert!(split(&log.read(target, 10).unwrap().records)[0].0 <= target);
        // timestamps map to offsets at or after the start
        let found = log.offset_for_timestamp(0).unwrap().unwrap();
        assert_eq!(found.offset, target);
        // never backwards; beyond the end is an error
        assert_eq!(log.advance_log_start(5).unwrap(), target);
        let end = log.log_end_offset();
        assert_eq!(
            log.advance_log_start(end + 1).unwrap_err().kind(),
            ErrorKind::OffsetOutOfRange
        );
        assert_eq!(
            log.append(simple(1, 0), 0, 0).unwrap().log_start_offset,
            target
        );
        // untiered segments are no obstacle to DeleteRecords
        assert_eq!(log.tiered_end(), 0);
        (target, log.log_end_offset(), sealed)
    };
    // unclean restart (no close): the start is still there
    let log = PartitionLog::open(dir.path(), remote_config()).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (start, end));
    assert_eq!(
        log.read(start - 1, 1).unwrap_err().kind(),
        ErrorKind::OffsetOutOfRange
    );
    assert_eq!(
        split(&log.read(start, 1).unwrap().records)[0].0,
        sealed[2].base_offset
    );
    // up to the log end: everything goes, offsets continue
    assert_eq!(log.advance_log_start(end).unwrap(), end);
    assert_eq!(log.segment_count(), 1);
    assert_eq!(log.size_bytes(), 0);
    log.close().unwrap();
    drop(log);
    let log = PartitionLog::open(dir.path(), remote_config()).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (end, end));
    assert_eq!(log.append(simple(1, 0), 0, 0).unwrap().base_offset, end);
}

#[test]
fn a_persisted_log_start_is_applied_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let sealed = {
        let log = PartitionLog::open(dir.path(), small_config()).unwrap();
        fill(&log, 60, 4);
        log.close().unwrap();
        log.sealed_segments().unwrap()
    };
    // a crash after persisting the start, before deleting the segments
    write_log_start(dir.path(), sealed[1].end_offset).unwrap();
    std::fs::write(dir.path().join(LOG_START_TMP), b"torn").unwrap();
    let log = PartitionLog::open(dir.path(), small_config()).unwrap();
    assert_eq!(log.log_start_offset(), sealed[1].end_offset);
    assert!(!seg_path(dir.path(), 0, "log").exists());
    assert!(!dir.path().join(LOG_START_TMP).exists());
    let end = log.log_end_offset();
    drop(log);
    // a start beyond the recovered end (the tail was lost): an empty log at the start
    write_log_start(dir.path(), end + 10).unwrap();
    let log = PartitionLog::open(dir.path(), small_config()).unwrap();
    assert_eq!(
        (log.log_start_offset(), log.log_end_offset()),
        (end + 10, end + 10)
    );
    assert_eq!(log.segment_count(), 1);
    drop(log);
    // a damaged file is refused rather than silently forgotten
    std::fs::write(dir.path().join(LOG_START_FILE), [1u8; 12]).unwrap();
    assert!(matches!(
        PartitionLog::open(dir.path(), small_config()),
        Err(Error::CorruptSegment { .. })
    ));
}
