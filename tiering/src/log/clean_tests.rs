//! Tests of the hot-tier cleaner: Kafka's compaction semantics, holes, crash safety.

use std::collections::BTreeMap;

use kafka_protocol::records::{Compression, RecordBatchDecoder};

use super::clean::CRASH_AT;
use super::tests::small_config;
use super::*;
use crate::ErrorKind;
use crate::testutil::{Spec, encode, records_of};

fn compact_config() -> LogConfig {
    LogConfig {
        cleanup_compact: true,
        cleanup_delete: false,
        ..small_config()
    }
}

/// One batch of `(key, value)` records (`None` value: a tombstone).
fn kv_batch(pairs: &[(Option<&str>, Option<&str>)], codec: Compression) -> Bytes {
    let mut recs = records_of(
        Spec {
            records: pairs.len(),
            ..Spec::default()
        },
        None,
    );
    for (r, (k, v)) in recs.iter_mut().zip(pairs) {
        r.key = k.map(|k| Bytes::from(k.to_string()));
        r.value = v.map(|v| Bytes::from(v.to_string()));
    }
    encode(&recs, codec)
}

type Row = (i64, String, Option<String>);

/// Every record from the log start on, decoded: (offset, key, value).
fn records(log: &PartitionLog) -> Vec<Row> {
    let mut out = Vec::new();
    let mut next = log.log_start_offset();
    while next < log.log_end_offset() {
        let r = log.read(next, 1 << 20).unwrap();
        if r.records.is_empty() {
            break;
        }
        let mut b = r.records.clone();
        while !b.is_empty() {
            let h = BatchHeader::parse(&b).unwrap();
            let set = RecordBatchDecoder::decode(&mut b).unwrap();
            for rec in set.records {
                out.push((
                    rec.offset,
                    String::from_utf8(rec.key.unwrap().to_vec()).unwrap(),
                    rec.value.map(|v| String::from_utf8(v.to_vec()).unwrap()),
                ));
            }
            next = h.last_offset() + 1;
        }
    }
    out
}

fn clean(log: &PartitionLog, now: i64) -> Option<CleanStats> {
    log.flush().unwrap();
    log.clean(
        i64::MAX,
        now,
        true,
        &CleanerOptions::default(),
        &mut Throttle::new(None),
    )
    .unwrap()
}

const SEEDS_KEYS: [&str; 11] = [
    "K1", "K2", "K1", "K1", "K3", "K2", "K4", "K5", "K5", "K2", "K6",
];

fn seeds_log(dir: &Path) -> PartitionLog {
    let log = PartitionLog::open(dir, compact_config()).unwrap();
    for (i, k) in SEEDS_KEYS.iter().enumerate() {
        let v = format!("V{}", i + 1);
        log.append(kv_batch(&[(Some(k), Some(&v))], Compression::None), 0, 0)
            .unwrap();
        if i % 3 == 2 {
            log.roll_now().unwrap();
        }
    }
    log.roll_now().unwrap();
    log
}

fn seeds_expected() -> Vec<Row> {
    [
        (3, "K1", "V4"),
        (4, "K3", "V5"),
        (6, "K4", "V7"),
        (8, "K5", "V9"),
        (9, "K2", "V10"),
        (10, "K6", "V11"),
    ]
    .iter()
    .map(|(o, k, v)| (*o, k.to_string(), Some(v.to_string())))
    .collect()
}

#[test]
fn the_seeds_example_compacts_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let log = seeds_log(dir.path());
    assert_eq!(records(&log).len(), 11);
    let stats = clean(&log, 10_000).unwrap();
    assert_eq!((stats.records_read, stats.records_kept), (11, 6));
    assert_eq!(records(&log), seeds_expected());
    // Offsets are unchanged and the holes read through: offset 0 (gone) serves 3, offset 7
    // (gone) serves 8; the log's bounds do not move.
    assert_eq!(log.log_start_offset(), 0);
    assert_eq!(log.log_end_offset(), 11);
    let r = log.read(7, 1 << 20).unwrap();
    assert_eq!(BatchHeader::parse(&r.records).unwrap().base_offset, 8);
    // Clean shutdown and reopen, then a crash and reopen: the same log.
    log.close().unwrap();
    drop(log);
    let log = PartitionLog::open(dir.path(), compact_config()).unwrap();
    assert_eq!(records(&log), seeds_expected());
    log.append(
        kv_batch(&[(Some("K7"), Some("V12"))], Compression::None),
        0,
        0,
    )
    .unwrap();
    drop(log);
    let log = PartitionLog::open(dir.path(), compact_config()).unwrap();
    let mut want = seeds_expected();
    want.push((11, "K7".into(), Some("V12".into())));
    assert_eq!(records(&log), want);
    assert_eq!(log.log_end_offset(), 12);
}

#[test]
fn a_follower_copies_a_compacted_log_with_its_holes() {
    let dir = tempfile::tempdir().unwrap();
    let leader = seeds_log(dir.path());
    clean(&leader, 10_000).unwrap();
    let fdir = tempfile::tempdir().unwrap();
    let follower = PartitionLog::open(fdir.path(), small_config()).unwrap();
    let mut next = 0;
    while next < leader.log_end_offset() {
        let r = leader.read(next, 1 << 20).unwrap();
        let a = follower.append_replicated(r.records, 0).unwrap();
        next = a.last_offset + 1;
    }
    assert_eq!(records(&follower), seeds_expected());
    assert_eq!(follower.log_end_offset(), 11);
    drop(follower);
    let follower = PartitionLog::open(fdir.path(), small_config()).unwrap();
    assert_eq!(records(&follower), seeds_expected());
    // Going back is still refused.
    let r = leader.read(9, 1 << 20).unwrap();
    let e = follower.append_replicated(r.records, 0).unwrap_err();
    assert!(matches!(e, Error::UnexpectedAppendOffset { .. }), "{e}");
}

#[test]
fn tombstones_stay_for_delete_retention_after_the_cleaning_that_reached_them() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        delete_retention_ms: 1_000,
        ..compact_config()
    };
    let log = PartitionLog::open(dir.path(), cfg).unwrap();
    log.append(
        kv_batch(
            &[(Some("a"), Some("1")), (Some("b"), Some("2"))],
            Compression::Lz4,
        ),
        0,
        0,
    )
    .unwrap();
    log.append(kv_batch(&[(Some("a"), None)], Compression::None), 0, 0)
        .unwrap();
    log.roll_now().unwrap();
    let stats = clean(&log, 50_000).unwrap();
    assert_eq!(stats.next_delete_horizon, Some(51_000));
    assert_eq!(
        records(&log),
        vec![(1, "b".into(), Some("2".into())), (2, "a".into(), None)]
    );
    // Nothing dirty and the horizon not reached: nothing to do.
    assert!(log.cleanable(i64::MAX, 50_999).is_none());
    // Once it has passed, the log is cleanable again and the tombstone goes.
    let c = log.cleanable(i64::MAX, 51_000).unwrap();
    assert!(c.forced);
    let stats = log
        .clean(
            i64::MAX,
            51_000,
            false,
            &CleanerOptions::default(),
            &mut Throttle::new(None),
        )
        .unwrap()
        .unwrap();
    assert_eq!(stats.next_delete_horizon, None);
    assert_eq!(records(&log), vec![(1, "b".into(), Some("2".into()))]);
}

#[test]
fn compacted_topics_refuse_keyless_records_in_any_codec() {
    let dir = tempfile::tempdir().unwrap();
    let log = PartitionLog::open(dir.path(), compact_config()).unwrap();
    for codec in [Compression::None, Compression::Gzip, Compression::Zstd] {
        let b = kv_batch(&[(Some("a"), Some("1")), (None, Some("2"))], codec);
        let e = log.append(b, 0, 0).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Invalid, "{codec:?}: {e}");
        assert!(matches!(e, Error::InvalidRecord { .. }), "{e}");
    }
    assert_eq!(log.log_end_offset(), 0);
    log.append(kv_batch(&[(Some("a"), Some("1"))], Compression::Gzip), 0, 0)
        .unwrap();
}

#[test]
fn the_cleaner_stays_below_the_bound_the_open_transactions_and_the_active_segment() {
    let dir = tempfile::tempdir().unwrap();
    let log = seeds_log(dir.path());
    log.append(
        kv_batch(&[(Some("K1"), Some("V12"))], Compression::None),
        0,
        0,
    )
    .unwrap();
    log.flush().unwrap();
    // Below a bound of 6 only the first two segments (0..6) are cleanable.
    let c = log.cleanable(6, 0).unwrap();
    assert_eq!((c.first_dirty, c.end), (0, 6));
    log.clean(
        6,
        0,
        true,
        &CleanerOptions::default(),
        &mut Throttle::new(None),
    )
    .unwrap()
    .unwrap();
    let got = records(&log);
    assert_eq!(got.iter().filter(|r| r.1 == "K1").count(), 2, "{got:?}");
    // The active segment's K1=V12 is not cleaned, nor does it remove K1=V4 (not in the map).
    clean(&log, 0).unwrap();
    let got = records(&log);
    assert!(
        got.contains(&(3, "K1".into(), Some("V4".into()))),
        "{got:?}"
    );
    assert!(got.contains(&(11, "K1".into(), Some("V12".into()))));
}

#[test]
fn a_small_key_map_cleans_in_several_passes() {
    let dir = tempfile::tempdir().unwrap();
    let log = seeds_log(dir.path());
    let tiny = CleanerOptions {
        dedupe_buffer_bytes: 2 * crate::compact::OFFSET_MAP_ENTRY_BYTES,
    };
    let mut passes = 0;
    log.flush().unwrap();
    while let Some(s) = log
        .clean(i64::MAX, 0, true, &tiny, &mut Throttle::new(None))
        .unwrap()
    {
        assert!(s.map_keys <= 2);
        passes += 1;
        assert!(passes < 20);
    }
    assert!(passes > 1, "{passes}");
    // Every key's latest value is there; a key's older values may survive only where the
    // map did not see the newer one (Kafka's behaviour with a small buffer) — a full-size
    // pass removes them.
    clean(&log, 0);
    let got = records(&log);
    for w in seeds_expected() {
        assert!(got.contains(&w), "{w:?} missing from {got:?}");
    }
}

/// A tiny deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[test]
fn random_keyed_workloads_compact_to_the_latest_value_per_key() {
    let codecs = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];
    for seed in 1..=12u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let dir = tempfile::tempdir().unwrap();
        let cfg = LogConfig {
            segment_bytes: 600 + rng.below(3000),
            delete_retention_ms: 100,
            ..compact_config()
        };
        let log = PartitionLog::open(dir.path(), cfg).unwrap();
        let keys = 3 + rng.below(40);
        let mut latest: BTreeMap<String, (i64, Option<String>)> = BTreeMap::new();
        let mut now = 1_000;
        for round in 0..4 {
            for _ in 0..(5 + rng.below(40)) {
                let n = 1 + rng.below(6) as usize;
                let rows: Vec<(String, Option<String>)> = (0..n)
                    .map(|_| {
                        let k = format!("k{}", rng.below(keys));
                        let v = (rng.below(10) != 0).then(|| format!("v{}", rng.next() % 1000));
                        (k, v)
                    })
                    .collect();
                let pairs: Vec<(Option<&str>, Option<&str>)> = rows
                    .iter()
                    .map(|(k, v)| (Some(k.as_str()), v.as_deref()))
                    .collect();
                let codec = codecs[rng.below(5) as usize];
                let a = log.append(kv_batch(&pairs, codec), 0, now).unwrap();
                for (i, (k, v)) in rows.into_iter().enumerate() {
                    latest.insert(k, (a.base_offset + i as i64, v));
                }
            }
            log.roll_now().unwrap();
            let small = CleanerOptions {
                dedupe_buffer_bytes: (1 + rng.below(keys)) as usize
                    * crate::compact::OFFSET_MAP_ENTRY_BYTES,
            };
            let opts = if round % 2 == 0 {
                small
            } else {
                CleanerOptions::default()
            };
            log.flush().unwrap();
            while log
                .clean(i64::MAX, now, true, &opts, &mut Throttle::new(None))
                .unwrap()
                .is_some()
            {}
            now += 10;
        }
        // A full pass: exactly the latest record per key, tombstones included, at the
        // original offsets.
        clean(&log, now);
        let want: Vec<Row> = {
            let mut v: Vec<Row> = latest
                .iter()
                .map(|(k, (o, v))| (*o, k.clone(), v.clone()))
                .collect();
            v.sort();
            v
        };
        assert_eq!(records(&log), want, "seed {seed}");
        // Past every horizon the tombstones go; the survivors stay. Also after a crash.
        now += 1_000;
        clean(&log, now);
        let live: Vec<Row> = want.iter().filter(|r| r.2.is_some()).cloned().collect();
        assert_eq!(records(&log), live, "seed {seed}");
        drop(log);
        let log = PartitionLog::open(dir.path(), compact_config()).unwrap();
        assert_eq!(records(&log), live, "seed {seed} after reopening");
    }
}

#[test]
fn a_crash_at_any_step_of_a_swap_leaves_the_old_or_the_new_segments() {
    for step in 1..=3u8 {
        let dir = tempfile::tempdir().unwrap();
        let log = seeds_log(dir.path());
        let before = records(&log);
        log.flush().unwrap();
        CRASH_AT.with(|c| c.set(step));
        let r = log.clean(
            i64::MAX,
            0,
            true,
            &CleanerOptions::default(),
            &mut Throttle::new(None),
        );
        CRASH_AT.with(|c| c.set(0));
        assert!(r.is_err(), "step {step}");
        drop(log);
        let log = PartitionLog::open(dir.path(), compact_config()).unwrap();
        let after = records(&log);
        let names: Vec<String> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert!(
            !names
                .iter()
                .any(|n| n.ends_with(".cleaned") || n.ends_with(".swap")),
            "step {step}: {names:?}"
        );
        if step == 1 {
            assert_eq!(after, before, "step {step}: the old segments stay");
        } else {
            // The first group's swap committed: its keys are compacted; later groups are
            // untouched. Every latest value is there.
            assert!(after.len() < before.len(), "step {step}");
            for w in seeds_expected() {
                assert!(after.contains(&w), "step {step}: {w:?} missing");
            }
        }
        // The offsets still run on, and a full cleaning now finishes the job.
        assert_eq!(log.log_end_offset(), 11);
        clean(&log, 0);
        assert_eq!(records(&log), seeds_expected(), "step {step}");
    }
}

#[test]
fn aborted_transactions_are_removed_and_markers_kept_until_their_horizon() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        delete_retention_ms: 1_000,
        ..compact_config()
    };
    let log = PartitionLog::open(dir.path(), cfg).unwrap();
    let txn_batch = |pid: i64, seq: i32, k: &str, v: &str| {
        let mut recs = records_of(Spec::default(), None);
        recs[0].key = Some(Bytes::from(k.to_string()));
        recs[0].value = Some(Bytes::from(v.to_string()));
        recs[0].producer_id = pid;
        recs[0].producer_epoch = 0;
        recs[0].sequence = seq;
        recs[0].transactional = true;
        encode(&recs, Compression::None)
    };
    log.append(
        kv_batch(&[(Some("a"), Some("plain"))], Compression::None),
        0,
        0,
    )
    .unwrap();
    log.append(txn_batch(7, 0, "a", "aborted"), 0, 0).unwrap(); // 1
    log.append_control(7, 0, ControlType::Abort, 0, 0, 0)
        .unwrap(); // 2
    log.append(txn_batch(8, 0, "b", "committed"), 0, 0).unwrap(); // 3
    log.append_control(8, 0, ControlType::Commit, 0, 0, 0)
        .unwrap(); // 4
    log.roll_now().unwrap();
    clean(&log, 10_000);
    // The aborted record is gone; "a" keeps its earlier, committed-by-default value. The
    // producers' last batches stay (the state tracks them), so both markers stay too.
    let got = records(&log);
    assert!(
        got.contains(&(0, "a".into(), Some("plain".into()))),
        "{got:?}"
    );
    assert!(
        !got.iter().any(|r| r.2.as_deref() == Some("aborted")),
        "{got:?}"
    );
    assert!(got.contains(&(3, "b".into(), Some("committed".into()))));
    let aborted = log.aborted_transactions(0, 5).unwrap();
    assert_eq!(aborted.len(), 1);
    assert_eq!((aborted[0].producer_id, aborted[0].last_offset), (7, 2));
    drop(log);
    let log = PartitionLog::open(dir.path(), compact_config()).unwrap();
    assert_eq!(log.aborted_transactions(0, 5).unwrap().len(), 1);
    assert_eq!(records(&log), got);
}

#[test]
fn readers_racing_cleanings_always_see_every_keys_latest_record() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        segment_bytes: 2_000,
        ..compact_config()
    };
    let log = Arc::new(PartitionLog::open(dir.path(), cfg).unwrap());
    let mut latest: BTreeMap<String, (i64, String)> = BTreeMap::new();
    for i in 0..400 {
        let k = format!("k{}", (i * 7) % 37);
        let v = format!("v{i}");
        let a = log
            .append(kv_batch(&[(Some(&k), Some(&v))], Compression::None), 0, 0)
            .unwrap();
        latest.insert(k, (a.base_offset, v));
    }
    log.roll_now().unwrap();
    log.flush().unwrap();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (log, done, latest) = (log.clone(), done.clone(), latest.clone());
        std::thread::spawn(move || {
            let mut passes = 0;
            while !done.load(Ordering::Acquire) || passes == 0 {
                let got = records(&log);
                assert!(got.windows(2).all(|w| w[0].0 < w[1].0), "offsets go back");
                for (k, (o, v)) in &latest {
                    assert!(
                        got.contains(&(*o, k.clone(), Some(v.clone()))),
                        "pass {passes}: {k}'s latest record ({o}) missing"
                    );
                }
                passes += 1;
            }
            passes
        })
    };
    // Many small cleanings (a two-key map), each swapping groups in while the reader reads.
    let tiny = CleanerOptions {
        dedupe_buffer_bytes: 2 * crate::compact::OFFSET_MAP_ENTRY_BYTES,
    };
    let mut cleanings = 0;
    while log
        .clean(i64::MAX, 0, true, &tiny, &mut Throttle::new(None))
        .unwrap()
        .is_some()
    {
        cleanings += 1;
    }
    clean(&log, 0);
    done.store(true, Ordering::Release);
    let passes = reader.join().unwrap();
    assert!(cleanings > 5, "{cleanings}");
    assert!(passes > 0);
    let want: Vec<Row> = {
        let mut v: Vec<Row> = latest
            .iter()
            .map(|(k, (o, v))| (*o, k.clone(), Some(v.clone())))
            .collect();
        v.sort();
        v
    };
    assert_eq!(records(&log), want);
}
