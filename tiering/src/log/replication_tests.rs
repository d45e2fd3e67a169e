//! Tests of what replication needs from the log: replicated appends, truncation, the
//! leader-epoch cache and reads bounded by the high watermark.

use super::tests::{fill, read_all, seg_path, small_config};
use super::*;
use crate::ErrorKind;
use crate::testutil::{Spec, batch, concat, simple, split};

/// One leader append of `per` records stamped `epoch`; record `o` gets timestamp `1000 + o`.
fn append_epoch(log: &PartitionLog, per: usize, epoch: i32) -> AppendResult {
    let ts = 1000 + log.log_end_offset();
    log.append(simple(per, ts), epoch, 0).unwrap()
}

/// For a log whose record `o` has timestamp `1000 + o`: every offset reads back the batch
/// holding it and is found by its timestamp; nothing lies beyond the end.
fn check_every_offset(log: &PartitionLog) {
    let (start, end) = (log.log_start_offset(), log.log_end_offset());
    for o in start..end {
        let b = split(&log.read(o, 1).unwrap().records);
        assert_eq!(b.len(), 1, "offset {o}");
        assert!(b[0].0 <= o && o < b[0].0 + i64::from(b[0].1), "offset {o}");
        assert_eq!(
            log.offset_for_timestamp(1000 + o).unwrap(),
            Some(TimestampOffset {
                offset: o,
                timestamp: 1000 + o
            }),
            "timestamp of offset {o}"
        );
    }
    assert!(log.read(end, 10).unwrap().records.is_empty());
    assert_eq!(
        log.read(end + 1, 10).unwrap_err().kind(),
        ErrorKind::OffsetOutOfRange
    );
    assert_eq!(log.offset_for_timestamp(1000 + end).unwrap(), None);
}

fn epoch_file(dir: &Path) -> PathBuf {
    dir.join(EPOCH_FILE)
}

#[test]
fn leader_appends_record_where_each_epoch_starts() {
    let dir = tempfile::tempdir().unwrap();
    let log = PartitionLog::open(dir.path(), small_config()).unwrap();
    assert_eq!(log.latest_epoch(), None);
    assert!(log.epoch_entries().is_empty());
    assert!(!epoch_file(dir.path()).exists());
    assert_eq!(append_epoch(&log, 3, 0).base_offset, 0);
    assert_eq!(append_epoch(&log, 2, 0).base_offset, 3);
    assert_eq!(append_epoch(&log, 4, 1).base_offset, 5);
    assert_eq!(append_epoch(&log, 1, 3).base_offset, 9);
    // a stale leader's epoch is stamped on its batch but starts nothing
    append_epoch(&log, 1, 2);
    assert_eq!(log.epoch_entries(), vec![(0, 0), (1, 5), (3, 9)]);
    assert_eq!(log.latest_epoch(), Some(3));
    assert_eq!(
        fs::read_to_string(epoch_file(dir.path())).unwrap(),
        "0\n3\n0 0\n1 5\n3 9\n"
    );
    let stamped: Vec<i32> = read_all(&log, 0)
        .iter()
        .map(|(_, _, b)| BatchHeader::parse(b).unwrap().partition_leader_epoch)
        .collect();
    assert_eq!(stamped, vec![0, 0, 1, 3, 2]);
}

#[test]
fn end_offset_for_epoch_follows_kafka() {
    let dir = tempfile::tempdir().unwrap();
    let log = PartitionLog::open(dir.path(), small_config()).unwrap();
    assert_eq!(log.end_offset_for_epoch(0), (-1, -1), "empty cache");
    append_epoch(&log, 4, 1); // 0..4
    append_epoch(&log, 2, 3); // 4..6
    append_epoch(&log, 2, 4); // 6..8
    assert_eq!(log.epoch_entries(), vec![(1, 0), (3, 4), (4, 6)]);
    // below the earliest epoch: Kafka answers the requested epoch and where the cache begins
    assert_eq!(log.end_offset_for_epoch(0), (0, 0));
    assert_eq!(log.end_offset_for_epoch(1), (1, 4));
    // a gap epoch: the epoch before it, ending where the next one starts
    assert_eq!(log.end_offset_for_epoch(2), (1, 4));
    assert_eq!(log.end_offset_for_epoch(3), (3, 6));
    // the latest epoch ends at the log end
    assert_eq!(log.end_offset_for_epoch(4), (4, 8));
    append_epoch(&log, 1, 4);
    assert_eq!(log.end_offset_for_epoch(4), (4, 9));
    // beyond the latest epoch, or no epoch: undefined
    assert_eq!(log.end_offset_for_epoch(5), (-1, -1));
    assert_eq!(log.end_offset_for_epoch(-1), (-1, -1));
}

/// A leader's stored batches, one per entry.
fn leader_batches(appends: &[(usize, i32)]) -> Vec<Bytes> {
    let dir = tempfile::tempdir().unwrap();
    let log = PartitionLog::open(dir.path(), small_config()).unwrap();
    for &(per, epoch) in appends {
        append_epoch(&log, per, epoch);
    }
    read_all(&log, 0)
        .into_iter()
        .map(|(_, _, b)| Bytes::from(b))
        .collect()
}

#[test]
fn append_replicated_is_all_or_nothing() {
    let b = leader_batches(&[(3, 1), (2, 1), (4, 2)]); // offsets 0..3, 3..5, 5..9
    let dir = tempfile::tempdir().unwrap();
    let log = PartitionLog::open(dir.path(), small_config()).unwrap();
    let r = log.append_replicated(Bytes::new(), 0).unwrap();
    assert_eq!((r.base_offset, r.last_offset), (0, -1));
    let r = log.append_replicated(b[0].clone(), 0).unwrap();
    assert_eq!(
        (r.base_offset, r.last_offset, r.log_append_time_ms),
        (0, 2, -1)
    );
    assert_eq!(log.epoch_entries(), vec![(1, 0)]);
    let size = log.size_bytes();

    let mut corrupt = b[2].to_vec();
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0xff;
    // (A gap is accepted, as in Kafka: a compacted leader log skips offsets; see
    // clean_tests.rs.)
    let rejected = [
        // an overlap
        (b[0].clone(), ErrorKind::Invalid),
        // right start, then not contiguous
        (concat(&[b[1].clone(), b[1].clone()]), ErrorKind::Invalid),
        (concat(&[b[1].clone(), b[0].clone()]), ErrorKind::Invalid),
        // right start, then a corrupt batch
        (
            concat(&[b[1].clone(), Bytes::from(corrupt)]),
            ErrorKind::Invalid,
        ),
        // truncated input
        (b[1].slice(..b[1].len() - 1), ErrorKind::Invalid),
    ];
    for (input, kind) in rejected {
        let e = log.append_replicated(input, 0).unwrap_err();
        assert_eq!(e.kind(), kind, "{e}");
        assert_eq!((log.log_end_offset(), log.size_bytes()), (3, size));
        assert_eq!(log.epoch_entries(), vec![(1, 0)]);
    }
    assert!(matches!(
        log.append_replicated(b[0].clone(), 0),
        Err(Error::UnexpectedAppendOffset {
            batch: 0,
            expected: 3,
            found: 0
        })
    ));
    let r = log
        .append_replicated(concat(&[b[1].clone(), b[2].clone()]), 0)
        .unwrap();
    assert_eq!((r.base_offset, r.last_offset), (3, 8));
    assert_eq!(log.epoch_entries(), vec![(1, 0), (2, 5)]);
    let stored: Vec<Bytes> = read_all(&log, 0)
        .into_iter()
        .map(|(_, _, b)| Bytes::from(b))
        .collect();
    assert_eq!(stored, b, "stored byte for byte");
    log.close().unwrap();
    assert!(matches!(
        log.append_replicated(b[0].clone(), 0),
        Err(Error::Closed { .. })
    ));
}

#[test]
fn follower_replicates_leader_byte_for_byte() {
    let leader_dir = tempfile::tempdir().unwrap();
    let leader = PartitionLog::open(leader_dir.path(), small_config()).unwrap();
    for i in 0..150usize {
        let ts = 1000 + leader.log_end_offset();
        let spec = |records| Spec {
            records,
            value_len: 5 + i % 30,
            first_ts: ts,
            ..Spec::default()
        };
        let records = if i % 7 == 0 {
            let first = batch(spec(2));
            let second = batch(Spec {
                first_ts: ts + 2,
                ..spec(3)
            });
            concat(&[first, second])
        } else {
            batch(spec(1 + i % 4))
        };
        // epochs 0, 2, 3, 6 (gaps: leaders that never appended)
        let epoch = [0, 2, 3, 6][i / 40];
        leader.append(records, epoch, 0).unwrap();
    }
    let follower_dir = tempfile::tempdir().unwrap();
    let follower = PartitionLog::open(follower_dir.path(), small_config()).unwrap();
    while follower.log_end_offset() < leader.log_end_offset() {
        let next = follower.log_end_offset();
        let fetched = leader.read(next, 1500).unwrap();
        let r = follower.append_replicated(fetched.records, 0).unwrap();
        assert_eq!(r.base_offset, next);
    }
    assert_eq!(read_all(&follower, 0), read_all(&leader, 0));
    for o in 0..leader.log_end_offset() {
        assert_eq!(
            split(&follower.read(o, 1).unwrap().records),
            split(&leader.read(o, 1).unwrap().records),
            "offset {o}"
        );
        assert_eq!(
            follower.offset_for_timestamp(1000 + o).unwrap(),
            leader.offset_for_timestamp(1000 + o).unwrap()
        );
    }
    check_every_offset(&follower);
    assert_eq!(follower.epoch_entries(), leader.epoch_entries());
    assert_eq!(follower.epoch_entries().len(), 4);
    for epoch in -1..8 {
        assert_eq!(
            follower.end_offset_for_epoch(epoch),
            leader.end_offset_for_epoch(epoch)
        );
    }
    assert_eq!(follower.max_timestamp(), leader.max_timestamp());
}

/// 80 appends of 5 records, the first 40 at epoch 1, the rest at epoch 2.
fn two_epoch_log(dir: &Path) -> PartitionLog {
    let log = PartitionLog::open(dir, small_config()).unwrap();
    for i in 0..80 {
        append_epoch(&log, 5, if i < 40 { 1 } else { 2 });
    }
    assert_eq!(log.epoch_entries(), vec![(1, 0), (2, 200)]);
    assert!(log.segment_count() > 3);
    log
}

#[test]
fn truncate_inside_a_batch_rounds_down_and_appends_continue() {
    let dir = tempfile::tempdir().unwrap();
    let log = two_epoch_log(dir.path());
    log.set_tiered_end(300);
    assert_eq!(log.truncate_to(143).unwrap(), 140);
    assert_eq!(log.log_end_offset(), 140);
    assert_eq!(log.durable_offset(), 140);
    assert_eq!(log.tiered_end(), 140);
    assert_eq!(log.epoch_entries(), vec![(1, 0)]);
    assert_eq!(log.end_offset_for_epoch(1), (1, 140));
    check_every_offset(&log);
    // no-ops at and beyond the end
    assert_eq!(log.truncate_to(140).unwrap(), 140);
    assert_eq!(log.truncate_to(10_000).unwrap(), 140);
    // offsets continue; the cut segment is active again
    for _ in 0..30 {
        append_epoch(&log, 3, 3);
    }
    assert_eq!(log.log_end_offset(), 230);
    assert_eq!(log.epoch_entries(), vec![(1, 0), (3, 140)]);
    check_every_offset(&log);
    assert_eq!(read_all(&log, 0).len(), 28 + 30);
    // only files of live segments remain
    let logs = fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().extension() == Some("log".as_ref()))
        .count();
    assert_eq!(logs, log.segment_count());
}

#[test]
fn truncate_at_a_segment_base_reactivates_the_previous_segment() {
    let dir = tempfile::tempdir().unwrap();
    let log = two_epoch_log(dir.path());
    let sealed = log.sealed_segments().unwrap();
    let cut = sealed[2].base_offset;
    assert_eq!(log.truncate_to(cut).unwrap(), cut);
    assert_eq!(log.segment_count(), 2);
    assert!(!seg_path(dir.path(), cut, "log").exists());
    assert!(!seg_path(dir.path(), cut, "index").exists());
    check_every_offset(&log);
    append_epoch(&log, 5, 4);
    check_every_offset(&log);
    // the whole log, down to the start
    assert_eq!(log.truncate_to(0).unwrap(), 0);
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (0, 0));
    assert_eq!(log.segment_count(), 1);
    assert!(log.epoch_entries().is_empty());
    assert_eq!(append_epoch(&log, 2, 5).base_offset, 0);
    check_every_offset(&log);
}

#[test]
fn truncate_below_the_log_start_is_out_of_range() {
    let dir = tempfile::tempdir().unwrap();
    let log = PartitionLog::open(dir.path(), small_config()).unwrap();
    fill(&log, 20, 4);
    assert_eq!(log.advance_log_start(22).unwrap(), 22);
    for offset in [10, 21, 22] {
        // 22 lies in the batch 20..24, which starts below the log start
        let e = log.truncate_to(offset).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::OffsetOutOfRange, "{offset}");
    }
    assert_eq!(log.log_end_offset(), 80);
    assert_eq!(log.truncate_to(25).unwrap(), 24);
    assert_eq!(log.log_start_offset(), 22);
    log.close().unwrap();
    assert!(matches!(log.truncate_to(23), Err(Error::Closed { .. })));
}

#[test]
fn truncation_survives_close_and_crash() {
    for crash in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        {
            let log = two_epoch_log(dir.path());
            assert_eq!(log.truncate_to(302).unwrap(), 300);
            if crash {
                drop(log);
            } else {
                log.close().unwrap();
            }
        }
        let log = PartitionLog::open(dir.path(), small_config()).unwrap();
        assert_eq!(log.log_end_offset(), 300, "crash={crash}");
        assert_eq!(log.epoch_entries(), vec![(1, 0), (2, 200)]);
        check_every_offset(&log);
        assert_eq!(append_epoch(&log, 2, 3).base_offset, 300);
        assert_eq!(log.truncate_to(150).unwrap(), 150);
        drop(log);
        let log = PartitionLog::open(dir.path(), small_config()).unwrap();
        assert_eq!(log.log_end_offset(), 150, "crash={crash}");
        assert_eq!(log.epoch_entries(), vec![(1, 0)]);
        check_every_offset(&log);
    }
}

#[test]
fn epoch_checkpoint_survives_reopen_is_rebuilt_and_trimmed() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        index_interval_bytes: 256,
        ..LogConfig::default()
    };
    let expected = vec![(0, 0), (2, 20), (5, 40)];
    {
        let log = PartitionLog::open(dir.path(), config.clone()).unwrap();
        for i in 0..20 {
            append_epoch(&log, 2, if i < 10 { 0 } else { 2 });
        }
        append_epoch(&log, 3, 5);
        assert_eq!(log.epoch_entries(), expected);
        log.close().unwrap();
    }
    let open = || PartitionLog::open(dir.path(), config.clone()).unwrap();
    let log = open();
    assert_eq!(log.epoch_entries(), expected);
    assert_eq!(log.latest_epoch(), Some(5));
    drop(log);
    // deleted: rebuilt from the batch headers, and written back
    fs::remove_file(epoch_file(dir.path())).unwrap();
    let log = open();
    assert_eq!(log.epoch_entries(), expected);
    assert!(epoch_file(dir.path()).exists());
    drop(log);
    // damaged, with a leftover temp file: rebuilt, temp file removed
    fs::write(epoch_file(dir.path()), "0\n2\n0 0\n").unwrap();
    fs::write(dir.path().join(EPOCH_TMP), "0\n").unwrap();
    let log = open();
    assert_eq!(log.epoch_entries(), expected);
    assert!(!dir.path().join(EPOCH_TMP).exists());
    drop(log);
    // an entry at or past the log end (its batch never made it) is dropped
    fs::write(epoch_file(dir.path()), "0\n4\n0 0\n2 20\n5 40\n7 43\n").unwrap();
    let log = open();
    assert_eq!(log.epoch_entries(), expected);
    assert_eq!(
        fs::read_to_string(epoch_file(dir.path())).unwrap(),
        "0\n3\n0 0\n2 20\n5 40\n"
    );
    drop(log);
    // a torn tail: the epoch-5 batch loses its last byte, recovery cuts it, its entry goes
    let seg = seg_path(dir.path(), 0, "log");
    let len = fs::metadata(&seg).unwrap().len();
    OpenOptions::new()
        .write(true)
        .open(&seg)
        .unwrap()
        .set_len(len - 1)
        .unwrap();
    let log = open();
    assert_eq!(log.log_end_offset(), 40);
    assert_eq!(log.epoch_entries(), vec![(0, 0), (2, 20)]);
    assert_eq!(log.end_offset_for_epoch(5), (-1, -1));
    drop(log);
    let log = open();
    assert_eq!(log.epoch_entries(), vec![(0, 0), (2, 20)]);
}

#[test]
fn moving_the_log_start_moves_the_covering_epoch_entry() {
    let dir = tempfile::tempdir().unwrap();
    let log = two_epoch_log(dir.path());
    assert_eq!(log.advance_log_start(150).unwrap(), 150);
    assert_eq!(log.epoch_entries(), vec![(1, 150), (2, 200)]);
    assert_eq!(log.advance_log_start(250).unwrap(), 250);
    assert_eq!(log.epoch_entries(), vec![(2, 250)]);
    assert_eq!(log.end_offset_for_epoch(1), (1, 250));
    drop(log);
    let log = PartitionLog::open(dir.path(), small_config()).unwrap();
    assert_eq!(log.epoch_entries(), vec![(2, 250)]);
    // an empty directory opened at a tiered end starts with an empty cache
    let empty = tempfile::tempdir().unwrap();
    let log = PartitionLog::open_at(empty.path(), small_config(), 5000).unwrap();
    assert!(log.epoch_entries().is_empty());
    assert_eq!(log.latest_epoch(), None);
}

#[test]
fn truncate_fully_and_start_at_restarts_an_empty_log() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = two_epoch_log(dir.path());
        log.set_tiered_end(100);
        log.truncate_fully_and_start_at(1000).unwrap();
        assert_eq!((log.log_start_offset(), log.log_end_offset()), (1000, 1000));
        assert_eq!(log.segment_count(), 1);
        assert!(log.epoch_entries().is_empty());
        assert_eq!(log.latest_epoch(), None);
        assert!(!epoch_file(dir.path()).exists());
        assert_eq!(log.tiered_end(), 100);
        assert!(log.read(1000, 10).unwrap().records.is_empty());
        assert_eq!(
            log.read(999, 10).unwrap_err().kind(),
            ErrorKind::OffsetOutOfRange
        );
        assert_eq!(append_epoch(&log, 2, 4).base_offset, 1000);
        assert_eq!(log.epoch_entries(), vec![(4, 1000)]);
        drop(log); // crash
    }
    let log = PartitionLog::open(dir.path(), small_config()).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (1000, 1002));
    assert_eq!(log.epoch_entries(), vec![(4, 1000)]);
    check_every_offset(&log);
    // back below the old start
    log.set_tiered_end(1002);
    log.truncate_fully_and_start_at(10).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (10, 10));
    assert_eq!(log.tiered_end(), 10);
    assert_eq!(
        log.truncate_fully_and_start_at(-1).unwrap_err().kind(),
        ErrorKind::OffsetOutOfRange
    );
    log.close().unwrap();
    drop(log);
    let log = PartitionLog::open(dir.path(), small_config()).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (10, 10));
    let logs: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".log"))
        .collect();
    assert_eq!(logs, vec![segment::file_name(10, "log")]);
    assert_eq!(append_epoch(&log, 1, 0).base_offset, 10);
}

#[test]
fn read_bounded_never_returns_a_batch_crossing_max_offset() {
    let dir = tempfile::tempdir().unwrap();
    let log = PartitionLog::open(dir.path(), LogConfig::default()).unwrap();
    for _ in 0..10 {
        append_epoch(&log, 3, 0); // batches at 0, 3, ..., 27
    }
    for offset in 0..=30 {
        for max in offset..=32 {
            let r = log.read_bounded(offset, 1 << 20, max).unwrap();
            let batches = split(&r.records);
            let fully_below = (max / 3 * 3).min(30);
            let base = offset / 3 * 3;
            if fully_below <= base {
                assert!(batches.is_empty(), "offset {offset}, max {max}");
                continue;
            }
            assert_eq!(batches[0].0, base, "offset {offset}, max {max}");
            let last = batches.last().unwrap();
            assert_eq!(last.0 + i64::from(last.1), fully_below);
            // and with a tiny max_bytes: still one whole batch below max
            let one = split(&log.read_bounded(offset, 1, max).unwrap().records);
            assert_eq!(one.len(), 1);
            assert!(one[0].0 + i64::from(one[0].1) <= max);
        }
    }
    assert_eq!(
        log.read_bounded(31, 100, 40).unwrap_err().kind(),
        ErrorKind::OffsetOutOfRange
    );
    assert_eq!(
        log.read_bounded(0, 1 << 20, i64::MAX).unwrap(),
        log.read(0, 1 << 20).unwrap()
    );
}

#[test]
fn reads_racing_truncations_only_see_whole_valid_batches() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(PartitionLog::open(dir.path(), small_config()).unwrap());
    for _ in 0..100 {
        append_epoch(&log, 4, 1);
    }
    let reader = {
        let log = log.clone();
        std::thread::spawn(move || {
            let mut reads = 0;
            while reads < 2000 {
                let offset = (reads * 37) % 400;
                match log.read(offset, 2048) {
                    Ok(r) if !r.records.is_empty() => {
                        crate::validate_batches(&r.records, u32::MAX).unwrap();
                        let b = split(&r.records);
                        assert!(b[0].0 <= offset && offset < b[0].0 + i64::from(b[0].1));
                    }
                    Ok(_) => {}
                    Err(e) => assert_eq!(e.kind(), ErrorKind::OffsetOutOfRange),
                }
                reads += 1;
            }
        })
    };
    for round in 0..20 {
        log.truncate_to(100 + round * 10).unwrap();
        while log.log_end_offset() < 400 {
            append_epoch(&log, 4, 2 + round as i32);
        }
    }
    reader.join().unwrap();
    check_every_offset(&log);
}
