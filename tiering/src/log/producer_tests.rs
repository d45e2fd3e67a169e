//! Tests of idempotent and transactional producers in the hot-tier log: duplicates, fencing,
//! sequences, markers and the transaction index, snapshots, recovery, replication, truncation.

use super::tests::{seg_path, small_config};
use super::*;
use crate::ErrorKind;
use crate::testutil::{concat, producer_batch, simple, split};

fn idem(pid: i64, epoch: i16, seq: i32, n: usize) -> Bytes {
    producer_batch(pid, epoch, seq, n, false)
}

fn txn(pid: i64, epoch: i16, seq: i32, n: usize) -> Bytes {
    producer_batch(pid, epoch, seq, n, true)
}

fn entry(log: &PartitionLog, pid: i64) -> ProducerEntry {
    log.producers()
        .into_iter()
        .find(|e| e.producer_id == pid)
        .unwrap()
}

fn snapshots(dir: &Path) -> Vec<i64> {
    let mut v: Vec<i64> = fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name();
            segment::parse_name(name.to_str()?, producers::SNAPSHOT_SUFFIX)
        })
        .collect();
    v.sort_unstable();
    v
}

#[test]
fn a_retried_batch_gets_its_original_offsets_and_appends_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log = PartitionLog::open(dir.path(), small_config()).unwrap();
    log.append(simple(2, 0), 0, 0).unwrap();
    let first = log.append(idem(7, 0, 0, 3), 0, 0).unwrap();
    assert_eq!(
        (first.base_offset, first.last_offset, first.duplicate),
        (2, 4, false)
    );
    log.append(idem(7, 0, 3, 2), 0, 0).unwrap();
    let end = log.log_end_offset();
    let retry = log.append(idem(7, 0, 0, 3), 0, 0).unwrap();
    assert_eq!(
        retry,
        AppendResult {
            base_offset: 2,
            last_offset: 4,
            // the original batch's max timestamp (records at 1000, 1001, 1002), as Kafka
            log_append_time_ms: 1_002,
            log_start_offset: 0,
            duplicate: true,
        }
    );
    assert_eq!(log.log_end_offset(), end, "nothing appended");
    // the same sequences with another count are not a duplicate: a gap/reorder
    assert!(matches!(
        log.append(idem(7, 0, 0, 2), 0, 0),
        Err(Error::OutOfOrderSequence { .. })
    ));
    assert_eq!(entry(&log, 7).last_sequence, 4);
}

#[test]
fn only_the_last_five_batches_are_recognised_as_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let log = PartitionLog::open(dir.path(), small_config()).unwrap();
    for i in 0..6 {
        log.append(idem(1, 0, i, 1), 0, 0).unwrap();
    }
    assert!(log.append(idem(1, 0, 1, 1), 0, 0).unwrap().duplicate);
    // sequence 0 fell out of the window: now it is out of order
    let e = log.append(idem(1, 0, 0, 1), 0, 0).unwrap_err();
    assert!(
        matches!(
            e,
            Error::OutOfOrderSequence {
                producer_id: 1,
                expected: 6,
                found: 0
            }
        ),
        "{e}"
    );
}

#[test]
fn sequence_gaps_and_old_epochs_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let log = PartitionLog::open(dir.path(), small_config()).unwrap();
    log.append(idem(3, 2, 0, 2), 0, 0).unwrap();
    let gap = log.append(idem(3, 2, 5, 1), 0, 0).unwrap_err();
    assert!(
        matches!(
            gap,
            Error::OutOfOrderSequence {
                producer_id: 3,
                expected: 2,
                found: 5
            }
        ),
        "{gap}"
    );
    assert_eq!(gap.kind(), ErrorKind::Invalid);
    let old = log.append(idem(3, 1, 2, 1), 0, 0).unwrap_err();
    assert!(
        matches!(
            old,
            Error::InvalidProducerEpoch {
                producer_id: 3,
                current: 2,
                found: 1
            }
        ),
        "{old}"
    );
    assert_eq!(old.kind(), ErrorKind::Invalid);
    // a new epoch must start at 0
    let e = log.append(idem(3, 3, 5, 1), 0, 0).unwrap_err();
    assert!(
        matches!(
            e,
            Error::OutOfOrderSequence {
                expected: 0,
                found: 5,
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(log.log_end_offset(), 2, "refusals append nothing");
    log.append(idem(3, 3, 0, 1), 0, 0).unwrap();
    assert_eq!(entry(&log, 3).producer_epoch, 3);
    // the old epoch's batches are forgotten
    assert!(log.append(idem(3, 2, 0, 2), 0, 0).is_err());
}

#[test]
fn an_unknown_producer_may_start_at_any_sequence() {
    let dir = tempfile::tempdir().unwrap();
    let log = PartitionLog::open(dir.path(), small_config()).unwrap();
    log.append(idem(9, 4, 1234, 2), 0, 0).unwrap();
    log.append(idem(9, 4, 1236, 1), 0, 0).unwrap();
    assert_eq!(entry(&log, 9).last_sequence, 1236);
}

#[test]
fn sequences_wrap_after_i32_max() {
    let dir = tempfile::tempdir().unwrap();
    let log = PartitionLog::open(dir.path(), small_config()).unwrap();
    log.append(idem(5, 0, i32::MAX - 1, 2), 0, 0).unwrap();
    assert_eq!(entry(&log, 5).last_sequence, i32::MAX);
    log.append(idem(5, 0, 0, 1), 0, 0).unwrap();
    // a batch spanning the wrap
    log.append(idem(6, 0, i32::MAX - 1, 1), 0, 0).unwrap();
    let r = log.append(idem(6, 0, i32::MAX, 3), 0, 0).unwrap();
    assert_eq!(entry(&log, 6).last_sequence, 1);
    assert!(log.append(idem(6, 0, i32::MAX, 3), 0, 0).unwrap().duplicate);
    assert_eq!(
        log.append(idem(6, 0, i32::MAX, 3), 0, 0)
            .unwrap()
            .base_offset,
        r.base_offset
    );
    log.append(idem(6, 0, 2, 1), 0, 0).unwrap();
}

#[test]
fn several_batches_of_one_producer_in_one_append_must_follow_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let log = PartitionLog::open(dir.path(), small_config()).unwrap();
    let both = concat(&[idem(1, 0, 0, 2), idem(1, 0, 2, 1)]);
    assert_eq!(log.append(both, 0, 0).unwrap().last_offset, 2);
    let gap = concat(&[idem(1, 0, 3, 2), idem(1, 0, 9, 1)]);
    assert!(matches!(
        log.append(gap, 0, 0),
        Err(Error::OutOfOrderSequence {
            expected: 5,
            found: 9,
            ..
        })
    ));
    assert_eq!(log.log_end_offset(), 3);
}

/// A log holding: idempotent producer 1 (seq 0..3), an aborted transaction of producer 2
/// (offsets 3..5, marker 6), a committed one of producer 3 (7, marker 8), an open one of
/// producer 4 from 9.
fn txn_log(dir: &Path) -> PartitionLog {
    let log = PartitionLog::open(dir, small_config()).unwrap();
    log.append(idem(1, 0, 0, 3), 0, 0).unwrap();
    log.append(txn(2, 0, 0, 2), 0, 0).unwrap();
    log.append(txn(2, 0, 2, 1), 0, 0).unwrap();
    assert_eq!(log.first_unstable_offset(), Some(3));
    let m = log
        .append_control(2, 0, ControlType::Abort, 5, 0, 10)
        .unwrap();
    assert_eq!((m.base_offset, m.last_offset), (6, 6));
    log.append(txn(3, 0, 0, 1), 0, 0).unwrap();
    log.append_control(3, 0, ControlType::Commit, 5, 0, 10)
        .unwrap();
    log.append(txn(4, 0, 0, 1), 0, 0).unwrap();
    log
}

#[test]
fn markers_end_transactions_and_aborts_are_indexed() {
    let dir = tempfile::tempdir().unwrap();
    let log = txn_log(dir.path());
    assert_eq!(log.first_unstable_offset(), Some(9));
    let aborted = AbortedTxn {
        producer_id: 2,
        first_offset: 3,
        last_offset: 6,
        last_stable_offset: 7,
    };
    assert_eq!(log.aborted_transactions(0, 100).unwrap(), vec![aborted]);
    assert_eq!(log.aborted_transactions(6, 7).unwrap(), vec![aborted]);
    assert_eq!(log.aborted_transactions(0, 4).unwrap(), vec![aborted]);
    assert!(
        log.aborted_transactions(0, 3).unwrap().is_empty(),
        "ends before it"
    );
    assert!(
        log.aborted_transactions(7, 100).unwrap().is_empty(),
        "starts after it"
    );
    // the index file holds Kafka's 34-byte entry
    let bytes = fs::read(seg_path(dir.path(), 0, segment::TXN_INDEX_SUFFIX)).unwrap();
    assert_eq!(bytes.len(), 34);
    assert_eq!(AbortedTxn::decode(&bytes), Some(aborted));
    // the marker is a real control batch
    let stored = split(&log.read(6, 1 << 20).unwrap().records);
    assert_eq!(
        crate::parse_control(&stored[0].2),
        Some((ControlType::Abort, 5))
    );
    let e = entry(&log, 2);
    assert_eq!((e.coordinator_epoch, e.current_txn_start_offset), (5, None));
    assert_eq!(entry(&log, 4).current_txn_start_offset, Some(9));
    // committing the last open transaction: nothing unstable, nothing new indexed
    log.append_control(4, 0, ControlType::Commit, 5, 0, 10)
        .unwrap();
    assert_eq!(log.first_unstable_offset(), None);
    assert_eq!(log.aborted_transactions(0, 100).unwrap().len(), 1);
}

#[test]
fn last_stable_offset_of_an_abort_is_the_oldest_other_open_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let log = PartitionLog::open(dir.path(), small_config()).unwrap();
    log.append(txn(1, 0, 0, 1), 0, 0).unwrap(); // 0
    log.append(txn(2, 0, 0, 1), 0, 0).unwrap(); // 1
    assert_eq!(log.first_unstable_offset(), Some(0));
    log.append_control(2, 0, ControlType::Abort, 0, 0, 0)
        .unwrap(); // 2
    assert_eq!(log.first_unstable_offset(), Some(0));
    log.append_control(1, 0, ControlType::Abort, 0, 0, 0)
        .unwrap(); // 3
    assert_eq!(log.first_unstable_offset(), None);
    let lso: Vec<_> = log
        .aborted_transactions(0, 10)
        .unwrap()
        .iter()
        .map(|t| (t.producer_id, t.last_stable_offset))
        .collect();
    assert_eq!(lso, vec![(2, 0), (1, 4)]);
}

#[test]
fn transaction_state_and_marker_epochs_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let log = PartitionLog::open(dir.path(), small_config()).unwrap();
    log.append(txn(1, 3, 0, 1), 0, 0).unwrap();
    let e = log.append(idem(1, 3, 1, 1), 0, 0).unwrap_err();
    assert!(matches!(e, Error::InvalidTxnState { .. }), "{e}");
    assert_eq!(e.kind(), ErrorKind::Invalid);
    let e = log
        .append_control(1, 2, ControlType::Commit, 0, 0, 0)
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::InvalidProducerEpoch {
                current: 3,
                found: 2,
                ..
            }
        ),
        "{e}"
    );
    // an abort with a bumped epoch (the coordinator fencing the producer) moves the epoch
    log.append_control(1, 4, ControlType::Abort, 1, 0, 0)
        .unwrap();
    assert_eq!(entry(&log, 1).producer_epoch, 4);
    assert_eq!(entry(&log, 1).last_sequence, -1);
    assert!(matches!(
        log.append(idem(1, 3, 1, 1), 0, 0),
        Err(Error::InvalidProducerEpoch { .. })
    ));
    // the new epoch starts at sequence 0
    assert!(matches!(
        log.append(idem(1, 4, 1, 1), 0, 0),
        Err(Error::OutOfOrderSequence { .. })
    ));
    log.append(idem(1, 4, 0, 1), 0, 0).unwrap();
    // a marker without a transaction is written, with no index entry
    let end = log.log_end_offset();
    log.append_control(77, 0, ControlType::Abort, 0, 0, 0)
        .unwrap();
    assert_eq!(log.log_end_offset(), end + 1);
    assert_eq!(log.aborted_transactions(0, 100).unwrap().len(), 1);
}

#[test]
fn expired_producers_are_forgotten_unless_in_a_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let log = PartitionLog::open(dir.path(), small_config()).unwrap();
    log.append(idem(1, 0, 0, 1), 0, 0).unwrap(); // timestamp 1000
    log.append(txn(2, 0, 0, 1), 0, 0).unwrap();
    assert_eq!(log.expire_producers(1500, 1000), 0);
    assert_eq!(log.expire_producers(5000, 1000), 1);
    assert_eq!(
        log.producers().len(),
        1,
        "the open transaction keeps producer 2"
    );
    // an expired producer is unknown: any sequence goes
    log.append(idem(1, 0, 40, 1), 0, 0).unwrap();
}

fn state_of(log: &PartitionLog) -> (Vec<ProducerEntry>, Option<i64>, Vec<AbortedTxn>) {
    (
        log.producers(),
        log.first_unstable_offset(),
        log.aborted_transactions(0, i64::MAX).unwrap(),
    )
}

#[test]
fn producer_state_survives_close_crash_and_a_corrupt_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let log = txn_log(dir.path());
    log.roll_now().unwrap();
    log.append(idem(1, 0, 3, 2), 0, 0).unwrap();
    let before = state_of(&log);
    log.close().unwrap();
    assert_eq!(snapshots(dir.path()), vec![10, 12]);
    drop(log);

    // clean: from the close snapshot
    let log = PartitionLog::open(dir.path(), small_config()).unwrap();
    assert_eq!(state_of(&log), before);
    assert!(log.append(idem(1, 0, 3, 2), 0, 0).unwrap().duplicate);
    log.append(idem(1, 0, 5, 1), 0, 0).unwrap();
    let before = state_of(&log);
    drop(log); // crash: no close snapshot, the active segment is replayed

    let log = PartitionLog::open(dir.path(), small_config()).unwrap();
    assert_eq!(state_of(&log), before);
    assert!(log.append(idem(1, 0, 5, 1), 0, 0).unwrap().duplicate);
    log.close().unwrap();
    drop(log);

    // corrupt the newest snapshot: deleted, and the state replayed from the older one
    let newest = *snapshots(dir.path()).last().unwrap();
    let path = seg_path(dir.path(), newest, producers::SNAPSHOT_SUFFIX);
    let mut bytes = fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    fs::write(&path, bytes).unwrap();
    let log = PartitionLog::open(dir.path(), small_config()).unwrap();
    assert_eq!(state_of(&log), before);
    assert_eq!(newest, 13);
    assert_eq!(
        snapshots(dir.path()),
        vec![10, 12],
        "the corrupt one is deleted"
    );
    log.close().unwrap();
    drop(log);

    // no snapshot at all and no clean marker: the whole log is replayed
    for s in snapshots(dir.path()) {
        fs::remove_file(seg_path(dir.path(), s, producers::SNAPSHOT_SUFFIX)).unwrap();
    }
    fs::remove_file(dir.path().join(CLEAN_SHUTDOWN_FILE)).unwrap();
    let log = PartitionLog::open(dir.path(), small_config()).unwrap();
    assert_eq!(state_of(&log), before);
}

#[test]
fn a_lost_transaction_index_is_rebuilt_from_the_markers() {
    let dir = tempfile::tempdir().unwrap();
    let log = txn_log(dir.path());
    let before = state_of(&log);
    drop(log);
    fs::remove_file(seg_path(dir.path(), 0, segment::TXN_INDEX_SUFFIX)).unwrap();
    let log = PartitionLog::open(dir.path(), small_config()).unwrap();
    assert_eq!(state_of(&log), before);
}

#[test]
fn a_follower_fed_the_leaders_bytes_deduplicates_like_it() {
    let (ldir, fdir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let leader = txn_log(ldir.path());
    let follower = PartitionLog::open(fdir.path(), small_config()).unwrap();
    let mut next = 0;
    while next < leader.log_end_offset() {
        let r = leader.read(next, 100).unwrap();
        follower.append_replicated(r.records.clone(), 0).unwrap();
        next = follower.log_end_offset();
    }
    assert_eq!(state_of(&follower), state_of(&leader));
    // the follower becomes leader: a retry of the leader's last batches is a duplicate
    assert!(follower.append(idem(1, 0, 0, 3), 1, 0).unwrap().duplicate);
    assert!(follower.append(txn(4, 0, 0, 1), 1, 0).unwrap().duplicate);
    assert!(matches!(
        follower.append(idem(2, 0, 9, 1), 1, 0),
        Err(Error::OutOfOrderSequence { .. })
    ));
}

#[test]
fn truncation_forgets_the_batches_cut_away() {
    let dir = tempfile::tempdir().unwrap();
    let log = txn_log(dir.path());
    log.roll_now().unwrap();
    log.append(idem(1, 0, 3, 2), 0, 0).unwrap(); // 10..11
    assert_eq!(snapshots(dir.path()), vec![10]);
    // cut at the abort marker: producer 2's transaction is open again, its entry gone
    assert_eq!(log.truncate_to(6).unwrap(), 6);
    assert!(
        snapshots(dir.path()).is_empty(),
        "the snapshot above the end is deleted"
    );
    assert_eq!(log.first_unstable_offset(), Some(3));
    assert!(log.aborted_transactions(0, 100).unwrap().is_empty());
    assert_eq!(
        fs::metadata(seg_path(dir.path(), 0, segment::TXN_INDEX_SUFFIX))
            .unwrap()
            .len(),
        0
    );
    assert!(log.producers().iter().all(|e| e.producer_id <= 2));
    // producer 1's batch at 10 was cut: appending it again is not a duplicate
    log.append_control(2, 0, ControlType::Abort, 5, 0, 0)
        .unwrap();
    let again = log.append(idem(1, 0, 3, 2), 0, 0).unwrap();
    assert!(!again.duplicate);
    assert_eq!(again.base_offset, 7);
    assert_eq!(log.aborted_transactions(0, 100).unwrap().len(), 1);

    log.truncate_fully_and_start_at(50).unwrap();
    assert!(log.producers().is_empty());
    assert_eq!(log.first_unstable_offset(), None);
    log.append(idem(1, 0, 3, 2), 0, 0).unwrap();
}

#[test]
fn txn_indexes_and_snapshots_go_with_their_segments() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        retention_bytes: Some(1),
        ..small_config()
    };
    let log = PartitionLog::open(dir.path(), config).unwrap();
    log.append(txn(2, 0, 0, 1), 0, 0).unwrap();
    log.append_control(2, 0, ControlType::Abort, 0, 0, 0)
        .unwrap();
    let txn_path = seg_path(dir.path(), 0, segment::TXN_INDEX_SUFFIX);
    assert!(txn_path.exists());
    log.append(simple(1, 0), 0, 0).unwrap();
    log.roll_now().unwrap();
    let sealed = log.sealed_segments().unwrap();
    assert_eq!(
        sealed[0].txn_index_path.as_deref(),
        Some(txn_path.as_path())
    );
    assert_eq!(
        sealed[0].producer_snapshot_path,
        Some(seg_path(dir.path(), 3, producers::SNAPSHOT_SUFFIX))
    );
    // a tail uploaded on its own carries only the entries of its markers
    let entry = fs::read(&txn_path).unwrap();
    assert_eq!(log.sealed_suffix(0, 1).unwrap().txn_index, Some(entry));
    assert_eq!(log.sealed_suffix(0, 2).unwrap().txn_index, None);
    log.append(simple(1, 0), 0, 0).unwrap();
    assert_eq!(log.enforce_retention(0).unwrap(), 1);
    assert!(!txn_path.exists());
    assert!(log.aborted_transactions(0, 100).unwrap().is_empty());
    assert_eq!(snapshots(dir.path()), vec![3]);
    // only the newest few snapshots are kept
    for _ in 0..8 {
        log.append(simple(1, 0), 0, 0).unwrap();
        log.roll_now().unwrap();
    }
    assert_eq!(snapshots(dir.path()).len(), 5);
    log.advance_log_start(log.log_end_offset()).unwrap();
    assert_eq!(snapshots(dir.path()), vec![log.log_end_offset()]);
}

#[test]
fn with_remote_storage_a_snapshot_stays_until_its_segment_is_tiered() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        remote_storage: true,
        ..small_config()
    };
    let log = PartitionLog::open(dir.path(), config).unwrap();
    for _ in 0..8 {
        log.append(simple(1, 0), 0, 0).unwrap();
        log.roll_now().unwrap();
    }
    // nothing tiered yet: every segment's snapshot is kept for its upload
    assert_eq!(snapshots(dir.path()), (1..=8).collect::<Vec<i64>>());
    assert!(
        log.sealed_segments()
            .unwrap()
            .iter()
            .all(|s| s.producer_snapshot_path.is_some())
    );
    // once the first six are tiered, only the newest five (and none untiered) remain
    log.set_tiered_end(6);
    log.append(simple(1, 0), 0, 0).unwrap();
    log.roll_now().unwrap();
    assert_eq!(snapshots(dir.path()), vec![5, 6, 7, 8, 9]);
}

#[test]
fn a_node_taking_over_starts_from_a_shipped_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let log = txn_log(dir.path());
    log.roll_now().unwrap();
    let before = log.producers();
    let snapshot = fs::read(
        log.sealed_segments().unwrap()[0]
            .producer_snapshot_path
            .clone()
            .unwrap(),
    )
    .unwrap();
    let empty = tempfile::tempdir().unwrap();
    let taker =
        PartitionLog::open_at_with_producers(empty.path(), small_config(), 10, Some(&snapshot))
            .unwrap();
    assert_eq!(taker.producers(), before);
    assert_eq!(taker.first_unstable_offset(), Some(9));
    assert!(taker.append(idem(1, 0, 0, 3), 0, 0).unwrap().duplicate);
    taker.close().unwrap();
    drop(taker);
    let taker = PartitionLog::open(empty.path(), small_config()).unwrap();
    assert_eq!(taker.producers(), before, "kept as a local snapshot");
    // a garbage snapshot is ignored
    let other = tempfile::tempdir().unwrap();
    let log = PartitionLog::open_at_with_producers(other.path(), small_config(), 10, Some(b"junk"))
        .unwrap();
    assert!(log.producers().is_empty());
}
