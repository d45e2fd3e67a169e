//! Tests of damage in the middle of the log: recovery quarantines instead of truncating,
//! reads verify every batch and refuse damaged ranges while serving the offsets around them,
//! repairs lift a range, and indexes are rebuilt rather than trusted.

use super::damage::DAMAGE_FILE;
use super::tests::{fill, read_all, seg_path, small_config};
use super::*;
use crate::ErrorKind;
use crate::testutil::{simple, split};

/// Every batch of the log as `(base offset, bytes)`.
pub(super) fn stored(log: &PartitionLog) -> Vec<(i64, Vec<u8>)> {
    read_all(log, 0)
        .into_iter()
        .map(|(base, _, bytes)| (base, bytes))
        .collect()
}

/// A log of 100 batches of 4 records (several 4 KiB segments), each batch's bytes and its
/// position in its segment, and the segments' bases.
pub(super) struct Fixture {
    pub(super) dir: tempfile::TempDir,
    pub(super) batches: Vec<(i64, Vec<u8>)>,
    pub(super) bases: Vec<i64>,
}

impl Fixture {
    /// `close`: shut down cleanly (else a crash: nothing flushed, so every segment is
    /// scanned on open).
    pub(super) fn new(close: bool) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let log = PartitionLog::open(dir.path(), small_config()).unwrap();
        fill(&log, 100, 4);
        let batches = stored(&log);
        let bases = log.sealed_segments().unwrap();
        assert!(bases.len() >= 3, "several sealed segments");
        let bases = bases.iter().map(|s| s.base_offset).collect();
        if close {
            log.close().unwrap();
        }
        drop(log);
        Fixture {
            dir,
            batches,
            bases,
        }
    }

    pub(super) fn open(&self) -> PartitionLog {
        PartitionLog::open(self.dir.path(), small_config()).unwrap()
    }

    /// The segment base and byte position of the batch starting at `offset`.
    pub(super) fn locate(&self, offset: i64) -> (i64, u64) {
        let seg = *self.bases.iter().rev().find(|b| **b <= offset).unwrap();
        let pos = self
            .batches
            .iter()
            .filter(|(b, _)| *b >= seg && *b < offset)
            .map(|(_, bytes)| bytes.len() as u64)
            .sum();
        (seg, pos)
    }

    pub(super) fn batch(&self, offset: i64) -> &[u8] {
        &self.batches.iter().find(|(b, _)| *b == offset).unwrap().1
    }

    pub(super) fn file(&self, seg: i64) -> File {
        OpenOptions::new()
            .read(true)
            .write(true)
            .open(seg_path(self.dir.path(), seg, "log"))
            .unwrap()
    }

    /// Repairs `[first, last]` of `log` with the original batches and checks that the whole
    /// log reads back as it was written.
    pub(super) fn repair_whole(&self, log: &PartitionLog, first: i64, last: i64) {
        let bytes: Vec<u8> = self
            .batches
            .iter()
            .filter(|(b, _)| (first..=last).contains(b))
            .flat_map(|(_, bytes)| bytes.clone())
            .collect();
        assert!(log.repair(first, &bytes).unwrap().is_empty());
        assert_eq!(stored(log), self.batches);
    }

    /// Flips one byte `at` bytes into the batch starting at `offset`.
    fn flip(&self, offset: i64, at: u64) {
        let (seg, pos) = self.locate(offset);
        let f = self.file(seg);
        let mut b = [0u8; 1];
        f.read_exact_at(&mut b, pos + at).unwrap();
        f.write_all_at(&[b[0] ^ 0x40], pos + at).unwrap();
    }
}

/// Reads every offset from 0 and checks that those outside `[first, last]` come back with
/// the original bytes and those inside fail with a data error naming the range.
pub(super) fn check_contained(log: &PartitionLog, fx: &Fixture, first: i64, last: i64) {
    assert_eq!(
        log.log_end_offset(),
        400,
        "nothing after the damage is lost"
    );
    for (base, bytes) in &fx.batches {
        let r = log.read(*base, 1);
        if (first..=last).contains(base) {
            let e = r.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Data, "{e}");
            assert!(
                matches!(e, Error::Damaged { first_offset, last_offset, .. } if first_offset == first && last_offset == last),
                "{e}"
            );
        } else {
            let got = split(&r.unwrap().records);
            assert_eq!(&got[0].2, bytes, "batch at {base} served intact");
        }
    }
    // A read that starts before the range stops right before it.
    if first > 0 {
        let r = log.read(first - 4, 1 << 20).unwrap();
        let got = split(&r.records);
        assert_eq!(got.last().unwrap().0, first - 4);
    }
}

#[test]
fn a_flipped_byte_in_a_sealed_segment_is_quarantined_not_truncated() {
    let fx = Fixture::new(false);
    let victim = fx.bases[1] + 8; // a batch in the middle of the second segment
    fx.flip(victim, 70);
    let log = fx.open();
    assert_eq!(
        log.segment_count(),
        fx.bases.len() + 1,
        "no segment dropped"
    );
    let damaged = log.damaged_ranges();
    assert_eq!(damaged.len(), 1);
    let d = &damaged[0];
    assert_eq!((d.first_offset, d.last_offset), (victim, victim + 3));
    assert_eq!(d.segment_base, fx.bases[1]);
    assert_eq!(d.end_pos - d.start_pos, fx.batch(victim).len() as u64);
    assert_eq!(log.damaged_range_at(victim + 2), Some(d.clone()));
    check_contained(&log, &fx, victim, victim + 3);
    // Appends go on; a clean restart still knows the range (its segment is surveyed).
    assert_eq!(log.append(simple(1, 0), 0, 0).unwrap().base_offset, 400);
    log.close().unwrap();
    drop(log);
    assert!(fx.dir.path().join(DAMAGE_FILE).exists());
    let log = fx.open();
    assert_eq!(log.damaged_ranges(), damaged);
}

#[test]
fn a_flipped_byte_recovery_does_not_scan_is_found_by_the_read() {
    let fx = Fixture::new(true);
    let victim = fx.bases[0] + 12;
    fx.flip(victim, 100);
    let log = fx.open();
    assert!(
        log.damaged_ranges().is_empty(),
        "a clean open trusts the files"
    );
    // The batch is verified before it is served: refused, and quarantined on the spot.
    let e = log.read(victim, 1 << 20).unwrap_err();
    assert!(matches!(e, Error::Damaged { .. }), "{e}");
    assert_eq!(log.damaged_ranges().len(), 1);
    check_contained(&log, &fx, victim, victim + 3);
    assert!(fx.dir.path().join(DAMAGE_FILE).exists());
}

#[test]
fn with_verification_off_a_flipped_byte_is_served_unchecked_as_kafka_serves_it() {
    let fx = Fixture::new(true);
    let victim = fx.bases[0] + 12;
    fx.flip(victim, 100);
    let log = fx.open();
    log.set_verify_reads(false);
    let r = log.read(victim, 1 << 20).unwrap();
    let batches = crate::testutil::split(&r.records);
    let (base, count, _) = batches.first().expect("served");
    assert!((*base..*base + i64::from(*count)).contains(&victim));
    assert!(
        log.damaged_ranges().is_empty(),
        "nothing checked, nothing found"
    );
    log.set_verify_reads(true);
    let e = log.read(victim, 1 << 20).unwrap_err();
    assert!(matches!(e, Error::Damaged { .. }), "{e}");
}

#[test]
fn a_damaged_batch_header_is_stepped_over_to_the_next_good_batch() {
    let fx = Fixture::new(false);
    let victim = fx.bases[1] + 4;
    // batchLength: the frame itself is wrong, so the next batch is found by its checks.
    fx.flip(victim, 10);
    let log = fx.open();
    let d = &log.damaged_ranges()[0];
    assert_eq!((d.first_offset, d.last_offset), (victim, victim + 3));
    check_contained(&log, &fx, victim, victim + 3);
}

#[test]
fn a_repair_with_the_same_batch_lifts_the_range() {
    let fx = Fixture::new(false);
    let victim = fx.bases[2] + 4;
    fx.flip(victim, 80);
    let log = fx.open();
    assert_eq!(log.damaged_ranges().len(), 1);
    // Bytes that do not fit are refused.
    let e = log.repair(victim, fx.batch(victim - 4)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Invalid, "{e}");
    let e = log.repair(victim + 1, fx.batch(victim)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::OffsetOutOfRange, "{e}");
    assert!(log.repair(victim, fx.batch(victim)).unwrap().is_empty());
    assert!(log.damaged_ranges().is_empty());
    assert!(!fx.dir.path().join(DAMAGE_FILE).exists());
    assert_eq!(stored(&log), fx.batches);
}

/// Repairs `[first, last]` one batch per piece, checking after each piece that the range is
/// still quarantined (reads stop before it), then finishes.
fn repair_batch_by_batch(fx: &Fixture, log: &PartitionLog, first: i64, last: i64) {
    let mut r = log.begin_repair(first).unwrap();
    let pieces: Vec<&(i64, Vec<u8>)> = fx
        .batches
        .iter()
        .filter(|(b, _)| (first..=last).contains(b))
        .collect();
    assert!(pieces.len() >= 2, "{first}..={last}");
    for (base, bytes) in pieces {
        assert_eq!(r.next_offset(), *base);
        log.repair_piece(&mut r, bytes).unwrap();
        let e = log.read(first, 1 << 20).unwrap_err();
        assert!(matches!(e, Error::Damaged { .. }), "{e}");
    }
    assert!(log.finish_repair(r).unwrap().is_empty());
    assert!(log.damaged_ranges().is_empty());
    assert_eq!(stored(log), fx.batches);
}

#[test]
fn a_range_to_the_end_of_its_segment_is_repaired_a_piece_at_a_time() {
    let fx = Fixture::new(false);
    let victim = fx.bases[1] + 8;
    let (seg, pos) = fx.locate(victim);
    fx.file(seg).set_len(pos + 30).unwrap();
    let log = fx.open();
    let last = fx.bases[2] - 1;
    let d = &log.damaged_ranges()[0];
    assert_eq!((d.first_offset, d.last_offset), (victim, last));
    repair_batch_by_batch(&fx, &log, victim, last);
    drop(log);
    let log = fx.open();
    assert!(log.damaged_ranges().is_empty());
    assert_eq!(stored(&log), fx.batches);
}

#[test]
fn a_range_of_several_batches_is_repaired_a_piece_at_a_time() {
    let fx = Fixture::new(false);
    let victim = fx.bases[2] + 4;
    fx.flip(victim, 80);
    fx.flip(victim + 4, 80);
    let log = fx.open();
    let d = &log.damaged_ranges()[0];
    assert_eq!((d.first_offset, d.last_offset), (victim, victim + 7));
    // A piece must follow the previous one and stay within the range's bytes.
    let mut r = log.begin_repair(victim).unwrap();
    let e = log.repair_piece(&mut r, fx.batch(victim + 4)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Invalid, "{e}");
    let e = log.repair_piece(&mut r, fx.batch(victim + 8)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Invalid, "{e}");
    // Finishing after the first piece lifts what it repaired; the rest stays quarantined.
    log.repair_piece(&mut r, fx.batch(victim)).unwrap();
    let left = log.finish_repair(r).unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(
        (left[0].first_offset, left[0].last_offset),
        (victim + 4, victim + 7)
    );
    assert_eq!(
        log.read(victim, 1 << 20).unwrap().records.len(),
        fx.batch(victim).len()
    );
    repair_batch_by_batch_from(&fx, &log, victim + 4, victim + 7);
}

fn repair_batch_by_batch_from(fx: &Fixture, log: &PartitionLog, first: i64, last: i64) {
    let mut r = log.begin_repair(first).unwrap();
    for (_, bytes) in fx
        .batches
        .iter()
        .filter(|(b, _)| (first..=last).contains(b))
    {
        log.repair_piece(&mut r, bytes).unwrap();
    }
    assert!(log.finish_repair(r).unwrap().is_empty());
    assert_eq!(stored(log), fx.batches);
}

#[test]
fn a_repair_whose_segment_is_truncated_meanwhile_writes_nothing_more() {
    let fx = Fixture::new(false);
    let victim = fx.bases[1] + 8;
    let (seg, pos) = fx.locate(victim);
    fx.file(seg).set_len(pos + 30).unwrap();
    let log = fx.open();
    let mut r = log.begin_repair(victim).unwrap();
    log.repair_piece(&mut r, fx.batch(victim)).unwrap();
    log.truncate_to(fx.bases[1]).unwrap();
    let e = log.repair_piece(&mut r, fx.batch(victim + 4)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Invalid, "{e}");
    let e = log.finish_repair(r).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Invalid, "{e}");
    assert_eq!(log.log_end_offset(), fx.bases[1]);
}

#[test]
fn a_segment_cut_short_in_the_middle_keeps_its_head_and_the_later_segments() {
    let fx = Fixture::new(false);
    let victim = fx.bases[1] + 8;
    let (seg, pos) = fx.locate(victim);
    fx.file(seg).set_len(pos + 30).unwrap();
    let log = fx.open();
    let d = &log.damaged_ranges()[0];
    let last = fx.bases[2] - 1;
    assert_eq!((d.first_offset, d.last_offset), (victim, last));
    check_contained(&log, &fx, victim, last);
    // The tail comes back whole from another copy, longer than what is left of it.
    fx.repair_whole(&log, victim, last);
}

#[test]
fn a_segment_cut_short_while_open_is_found_by_the_read_and_repaired() {
    let fx = Fixture::new(true);
    let log = fx.open();
    let victim = fx.bases[1] + 8;
    let (seg, pos) = fx.locate(victim);
    fx.file(seg).set_len(pos).unwrap();
    let e = log.read(victim + 1, 1).unwrap_err();
    assert!(matches!(e, Error::Damaged { .. }), "{e}");
    let last = fx.bases[2] - 1;
    check_contained(&log, &fx, victim, last);
    fx.repair_whole(&log, victim, last);
}

#[test]
fn a_flushed_last_batch_that_rotted_is_quarantined_an_unflushed_one_is_a_torn_tail() {
    for flushed in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig {
            segment_bytes: 1 << 20,
            ..small_config()
        };
        {
            let log = PartitionLog::open(dir.path(), config.clone()).unwrap();
            fill(&log, 19, 5);
            log.flush().unwrap();
            fill(&log, 1, 5);
            if flushed {
                log.flush().unwrap();
            }
        }
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .open(seg_path(dir.path(), 0, "log"))
            .unwrap();
        let len = f.metadata().unwrap().len();
        f.write_all_at(&[0x5a], len - 3).unwrap();
        drop(f);
        let log = PartitionLog::open(dir.path(), config).unwrap();
        if flushed {
            assert_eq!(log.log_end_offset(), 100);
            assert_eq!(log.damaged_ranges()[0].first_offset, 95);
            assert!(matches!(log.read(97, 1), Err(Error::Damaged { .. })));
        } else {
            assert_eq!(log.log_end_offset(), 95, "the torn tail is cut");
            assert!(log.damaged_ranges().is_empty());
        }
    }
}

#[test]
fn moving_the_log_start_past_a_damaged_range_accepts_the_loss() {
    let fx = Fixture::new(false);
    let victim = fx.bases[1] + 8;
    fx.flip(victim, 70);
    let log = fx.open();
    assert!(log.has_damage());
    log.advance_log_start(victim + 4).unwrap();
    assert!(log.damaged_ranges().is_empty());
    assert!(!log.has_damage());
    assert!(!fx.dir.path().join(DAMAGE_FILE).exists());
    assert_eq!(
        split(&log.read(victim + 4, 1).unwrap().records)[0].2,
        fx.batch(victim + 4)
    );
}

#[test]
fn truncating_into_a_damaged_range_cuts_at_its_start() {
    let fx = Fixture::new(false);
    let victim = fx.bases[1] + 8;
    fx.flip(victim, 70);
    let log = fx.open();
    assert_eq!(log.truncate_to(victim + 2).unwrap(), victim);
    assert!(log.damaged_ranges().is_empty());
    assert_eq!(read_all(&log, 0).len() as i64, victim / 4);
    assert!(!fx.dir.path().join(DAMAGE_FILE).exists());
}

#[test]
fn truncating_after_a_damaged_range_keeps_it_quarantined() {
    let fx = Fixture::new(false);
    let victim = fx.bases[1] + 8;
    fx.flip(victim, 70);
    let log = fx.open();
    let cut = fx.bases[1] + 20;
    assert_eq!(log.truncate_to(cut).unwrap(), cut);
    assert_eq!(log.damaged_ranges().len(), 1);
    assert!(matches!(log.read(victim, 1), Err(Error::Damaged { .. })));
    assert_eq!(
        split(&log.read(victim + 4, 1).unwrap().records)[0].2,
        fx.batch(victim + 4)
    );
}

#[test]
fn a_zeroed_index_is_rebuilt_not_trusted() {
    let fx = Fixture::new(true);
    for base in &fx.bases {
        let p = seg_path(fx.dir.path(), *base, "index");
        let len = fs::metadata(&p).unwrap().len() as usize;
        fs::write(&p, vec![0u8; len]).unwrap();
    }
    let log = fx.open();
    assert_eq!(stored(&log), fx.batches);
    for off in (0..400).step_by(3) {
        assert_eq!(
            split(&log.read(off, 1).unwrap().records)[0].0,
            off - off % 4
        );
    }
}

#[test]
fn an_index_entry_corrupted_while_open_is_rebuilt_by_the_read() {
    let fx = Fixture::new(true);
    let log = fx.open();
    // An entry that points inside a batch, as if the in-memory index went bad.
    let seg = {
        let s = rlock(&log.shared);
        s.segments[1].seg.clone()
    };
    let mut idx = SegmentIndex::new(seg.base_offset);
    idx.add_batch(seg.base_offset, seg.base_offset + 3, 0, 300, 1000, 256);
    idx.add_batch(seg.base_offset + 4, seg.base_offset + 7, 7, 300, 1000, 256);
    seg.set_index(idx);
    let off = seg.base_offset + 6;
    assert_eq!(
        split(&log.read(off, 1).unwrap().records)[0].2,
        fx.batch(seg.base_offset + 4)
    );
    assert!(log.damaged_ranges().is_empty());
}

#[test]
fn a_scrub_finds_a_flip_no_reader_touched_and_a_repair_heals_it() {
    let fx = Fixture::new(true);
    let log = fx.open();
    let victim = fx.bases[1] + 12;
    fx.flip(victim, 90);
    let mut scrubbed = 0;
    let mut found = Vec::new();
    for (base, _) in log.sealed_bases() {
        let (bytes, damaged) = log.scrub_segment(base).unwrap().unwrap();
        scrubbed += bytes;
        found.extend(damaged);
    }
    assert_eq!(
        scrubbed,
        log.size_bytes() - rlock(&log.shared).active().unwrap().size
    );
    assert_eq!(found, log.damaged_ranges());
    assert_eq!(
        (found[0].first_offset, found[0].last_offset),
        (victim, victim + 3)
    );
    assert!(log.has_damage());
    log.repair(victim, fx.batch(victim)).unwrap();
    assert!(!log.has_damage());
    assert_eq!(stored(&log), fx.batches);
    assert!(log.scrub_segment(i64::MAX).unwrap().is_none());
}
