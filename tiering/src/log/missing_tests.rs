//! Tests of a segment file missing from the middle of the log (see "A missing segment file"
//! in `damage.rs`): found at open, contained as a damaged range in a placeholder segment,
//! kept across reopens and scrubs, filled by a repair; a compacted log's holes are not damage.

use super::damage::{DAMAGE_FILE, MISSING_REASON};
use super::damage_tests::{Fixture, check_contained, stored};
use super::tests::{seg_path, small_config};
use super::*;
use crate::DamagedRange;
use crate::testutil::split;

/// Deletes the `.log` file of the segment starting at `base` (its indexes stay, as orphans).
fn delete_log(fx: &Fixture, base: i64) {
    fs::remove_file(seg_path(fx.dir.path(), base, "log")).unwrap();
}

/// The base offset of the active segment of the (closed) log of `fx`.
fn active_base(fx: &Fixture) -> i64 {
    let log = fx.open();
    let base = rlock(&log.shared).active().unwrap().seg.base_offset;
    log.close().unwrap();
    base
}

/// The one damaged range of `log`, checked to be the missing `[first, last]`.
fn missing(log: &PartitionLog, first: i64, last: i64) -> DamagedRange {
    let ranges = log.damaged_ranges();
    assert_eq!(ranges.len(), 1, "{ranges:?}");
    let d = ranges[0].clone();
    assert_eq!((d.first_offset, d.last_offset), (first, last), "{d:?}");
    assert_eq!(
        d.segment_base, first,
        "in a placeholder at the first missing offset"
    );
    assert!(d.reason.starts_with(MISSING_REASON), "{}", d.reason);
    d
}

/// Opens the log of `fx`, whose offsets `[first, last]` are in no segment file, checks that
/// they are contained and everything else served, and repairs them with the batches written.
fn contained_then_repaired(fx: &Fixture, first: i64, last: i64) {
    let log = fx.open();
    missing(&log, first, last);
    check_contained(&log, fx, first, last);
    fx.repair_whole(&log, first, last);
}

#[test]
fn a_deleted_segment_file_is_quarantined_not_skipped_and_a_repair_fills_it() {
    for close in [true, false] {
        let fx = Fixture::new(close);
        let (first, last) = (fx.bases[1], fx.bases[2] - 1);
        delete_log(&fx, first);
        let log = fx.open();
        missing(&log, first, last);
        assert!(log.has_damage());
        assert!(fx.dir.path().join(DAMAGE_FILE).exists());
        assert_eq!(
            log.segment_count(),
            fx.bases.len() + 1,
            "a placeholder takes the missing segment's place"
        );
        check_contained(&log, &fx, first, last);
        fx.repair_whole(&log, first, last);
        assert!(!log.has_damage());
        assert!(!fx.dir.path().join(DAMAGE_FILE).exists());
        if close {
            log.close().unwrap();
        }
        drop(log);
        let log = fx.open();
        assert!(log.damaged_ranges().is_empty(), "close={close}");
        assert_eq!(stored(&log), fx.batches);
    }
}

#[test]
fn a_placeholder_stays_quarantined_across_reopens_and_scrubs() {
    for close in [true, false] {
        let fx = Fixture::new(true);
        let (first, last) = (fx.bases[2], active_base(&fx) - 1);
        delete_log(&fx, first);
        let log = fx.open();
        missing(&log, first, last);
        if close {
            log.close().unwrap();
        }
        drop(log);
        // Even without the damaged-segments file, the hole is found again.
        if close {
            fs::remove_file(fx.dir.path().join(DAMAGE_FILE)).unwrap();
        }
        let log = fx.open();
        let d = missing(&log, first, last);
        assert_eq!(
            log.segment_count(),
            fx.bases.len() + 1,
            "no second placeholder"
        );
        let (_, found) = log.scrub_segment(first).unwrap().unwrap();
        assert_eq!(
            found,
            vec![d],
            "a survey of the empty placeholder keeps the range"
        );
        check_contained(&log, &fx, first, last);
        fx.repair_whole(&log, first, last);
    }
}

#[test]
fn a_partial_repair_of_a_missing_segment_leaves_the_rest_quarantined() {
    let fx = Fixture::new(true);
    let (first, last) = (fx.bases[1], fx.bases[2] - 1);
    delete_log(&fx, first);
    let log = fx.open();
    missing(&log, first, last);
    let mid = first + 8;
    let head: Vec<u8> = fx
        .batches
        .iter()
        .filter(|(b, _)| (first..mid).contains(b))
        .flat_map(|(_, bytes)| bytes.clone())
        .collect();
    let left = log.repair(first, &head).unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!((left[0].first_offset, left[0].last_offset), (mid, last));
    assert_eq!(
        split(&log.read(first + 4, 1).unwrap().records)[0].2,
        fx.batch(first + 4)
    );
    assert!(matches!(log.read(mid, 1), Err(Error::Damaged { .. })));
    drop(log);
    let log = fx.open();
    let ranges = log.damaged_ranges();
    assert_eq!(
        (ranges[0].first_offset, ranges[0].last_offset),
        (mid, last),
        "the rest is still missing after a crash"
    );
    fx.repair_whole(&log, mid, last);
}

#[test]
fn a_segment_cut_short_at_a_batch_boundary_is_contained_too() {
    let fx = Fixture::new(true);
    let victim = fx.bases[1] + 8;
    let (seg, pos) = fx.locate(victim);
    fx.file(seg).set_len(pos).unwrap();
    contained_then_repaired(&fx, victim, fx.bases[2] - 1);
}

#[test]
fn two_deleted_segments_in_a_row_are_one_missing_range() {
    let fx = Fixture::new(true);
    let (first, last) = (fx.bases[1], active_base(&fx) - 1);
    delete_log(&fx, fx.bases[1]);
    delete_log(&fx, fx.bases[2]);
    contained_then_repaired(&fx, first, last);
}

#[test]
fn moving_the_log_start_past_a_missing_segment_accepts_the_loss() {
    let fx = Fixture::new(true);
    let first = fx.bases[1];
    delete_log(&fx, first);
    let log = fx.open();
    assert!(log.has_damage());
    log.advance_log_start(fx.bases[2]).unwrap();
    assert!(log.damaged_ranges().is_empty());
    assert!(!log.has_damage());
    assert!(
        !seg_path(fx.dir.path(), first, "log").exists(),
        "placeholder deleted"
    );
    log.close().unwrap();
    drop(log);
    let log = fx.open();
    assert!(log.damaged_ranges().is_empty());
    assert_eq!(log.log_start_offset(), fx.bases[2]);
}

#[test]
fn truncating_into_a_missing_segment_drops_its_placeholder() {
    let fx = Fixture::new(true);
    let first = fx.bases[1];
    delete_log(&fx, first);
    let log = fx.open();
    assert_eq!(log.truncate_to(first + 2).unwrap(), first);
    assert!(log.damaged_ranges().is_empty());
    assert!(!seg_path(fx.dir.path(), first, "log").exists());
    assert!(!fx.dir.path().join(DAMAGE_FILE).exists());
}

#[test]
fn a_compacted_log_with_a_hole_between_segments_is_not_damaged() {
    let fx = Fixture::new(true);
    delete_log(&fx, fx.bases[1]);
    let config = LogConfig {
        cleanup_compact: true,
        ..small_config()
    };
    let log = PartitionLog::open(fx.dir.path(), config).unwrap();
    assert!(log.damaged_ranges().is_empty());
    assert!(!log.has_damage());
    assert_eq!(log.segment_count(), fx.bases.len(), "no placeholder");
    // A read in the hole steps over it to the next segment, as a compacted log's reads do.
    let got = split(&log.read(fx.bases[1], 1).unwrap().records);
    assert_eq!(got[0].0, fx.bases[2]);
    log.close().unwrap();
    drop(log);
    // A log that was compacted once (its cleaner checkpoint is left) may have holes too.
    fs::write(fx.dir.path().join(super::clean::CHECKPOINT_FILE), b"").unwrap();
    let log = fx.open();
    assert!(log.damaged_ranges().is_empty());
}

#[test]
fn a_gap_below_the_first_segment_is_not_damage() {
    let fx = Fixture::new(true);
    delete_log(&fx, fx.bases[0]);
    let log = fx.open();
    assert!(log.damaged_ranges().is_empty());
    assert_eq!(log.log_start_offset(), fx.bases[1]);
}
