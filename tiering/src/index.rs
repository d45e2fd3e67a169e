//! Sparse offset and time indexes of one segment, in memory and in their files.
//!
//! Entries are built as batches are appended (or re-scanned during recovery), looked up from
//! memory, and written to the `.index`/`.timeindex` files lazily — on `flush()`, on `close()`
//! and after a rebuild. The files are a cache: they are never needed for correctness, only to
//! open a cleanly closed log without scanning every segment, and recovery rebuilds them
//! whenever they are missing or fail the sanity checks in [`SegmentIndex::from_files`].
//!
//! Invariants (what makes an entry a safe hint, see `FORMAT.md`):
//! - offset entry `(rel, pos)`: a batch with base offset `base + rel` starts at byte `pos`;
//!   `rel` and `pos` strictly increase.
//! - time entry `(ts, rel)`: every record with offset `<= base + rel` has a timestamp `<= ts`;
//!   `ts` never decreases and `rel` strictly increases.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// "No timestamp seen yet" (Kafka uses -1 on the wire; we keep -1 as a real value).
pub(crate) const NO_TIMESTAMP: i64 = i64::MIN;

const OFFSET_ENTRY: usize = 8;
const TIME_ENTRY: usize = 12;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OffsetEntry {
    pub(crate) rel: u32,
    pub(crate) pos: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimeEntry {
    pub(crate) ts: i64,
    pub(crate) rel: u32,
}

/// Encoded index entries to append to the files (taken under the index lock, written
/// without it).
#[derive(Debug)]
pub(crate) struct PendingWrite {
    /// The files hold a stale index: empty them first.
    truncate: bool,
    offsets_from: usize,
    offsets_to: usize,
    offsets: Vec<u8>,
    times_from: usize,
    times_to: usize,
    times: Vec<u8>,
}

impl PendingWrite {
    /// Positional writes after what was persisted, after emptying the files if they hold a
    /// stale index being rebuilt. Idempotent: concurrent
    /// writers of the same pending entries write the same bytes at the same places. Does not
    /// fsync.
    pub(crate) fn write(&self, offset_file: &File, time_file: &File) -> io::Result<()> {
        if self.truncate {
            offset_file.set_len(0)?;
            time_file.set_len(0)?;
        }
        if !self.offsets.is_empty() {
            offset_file.write_all_at(&self.offsets, (self.offsets_from * OFFSET_ENTRY) as u64)?;
        }
        if !self.times.is_empty() {
            time_file.write_all_at(&self.times, (self.times_from * TIME_ENTRY) as u64)?;
        }
        Ok(())
    }
}

/// The indexes of one segment plus the state needed to keep extending them.
#[derive(Debug)]
pub(crate) struct SegmentIndex {
    base_offset: i64,
    offsets: Vec<OffsetEntry>,
    times: Vec<TimeEntry>,
    /// How many entries of each vector are already in the files.
    persisted_offsets: usize,
    persisted_times: usize,
    /// Bytes appended since the last offset entry (Kafka's `bytesSinceLastIndexEntry`).
    bytes_since_entry: u64,
    /// Largest batch max-timestamp indexed so far, [`NO_TIMESTAMP`] when none.
    max_ts: i64,
    /// Relative offset of the last record indexed so far.
    last_rel: Option<u32>,
    /// The files hold something else than a prefix of these entries (set on rebuild).
    rewrite: bool,
}

impl SegmentIndex {
    pub(crate) fn new(base_offset: i64) -> Self {
        SegmentIndex {
            base_offset,
            offsets: Vec::new(),
            times: Vec::new(),
            persisted_offsets: 0,
            persisted_times: 0,
            bytes_since_entry: 0,
            max_ts: NO_TIMESTAMP,
            last_rel: None,
            rewrite: false,
        }
    }

    /// Decodes index file contents, or `None` if they are not a plausible index of a log file
    /// of `log_size` bytes (wrong length, entries out of order or out of range).
    pub(crate) fn from_files(
        base_offset: i64,
        offset_bytes: &[u8],
        time_bytes: &[u8],
        log_size: u64,
    ) -> Option<Self> {
        if !offset_bytes.len().is_multiple_of(OFFSET_ENTRY)
            || !time_bytes.len().is_multiple_of(TIME_ENTRY)
        {
            return None;
        }
        let offsets: Vec<OffsetEntry> = offset_bytes
            .chunks_exact(OFFSET_ENTRY)
            .map(|c| OffsetEntry {
                rel: u32::from_be_bytes([c[0], c[1], c[2], c[3]]),
                pos: u32::from_be_bytes([c[4], c[5], c[6], c[7]]),
            })
            .collect();
        let times: Vec<TimeEntry> = time_bytes
            .chunks_exact(TIME_ENTRY)
            .map(|c| {
                let mut ts = [0u8; 8];
                ts.copy_from_slice(&c[..8]);
                TimeEntry {
                    ts: i64::from_be_bytes(ts),
                    rel: u32::from_be_bytes([c[8], c[9], c[10], c[11]]),
                }
            })
            .collect();
        let offsets_ok = offsets
            .windows(2)
            .all(|w| w[0].rel < w[1].rel && w[0].pos < w[1].pos)
            && offsets
                .iter()
                .all(|e| u64::from(e.pos) < log_size && e.rel <= i32::MAX as u32);
        let times_ok = times
            .windows(2)
            .all(|w| w[0].ts <= w[1].ts && w[0].rel < w[1].rel)
            && times
                .iter()
                .all(|e| e.ts != NO_TIMESTAMP && e.rel <= i32::MAX as u32);
        if !offsets_ok || !times_ok {
            return None;
        }
        let max_ts = times.last().map_or(NO_TIMESTAMP, |e| e.ts);
        Some(SegmentIndex {
            base_offset,
            persisted_offsets: offsets.len(),
            persisted_times: times.len(),
            offsets,
            times,
            bytes_since_entry: 0,
            max_ts,
            last_rel: None,
            rewrite: false,
        })
    }

    fn rel(&self, offset: i64) -> u32 {
        // Callers only pass offsets inside the segment, whose relative offsets fit (the log
        // rolls before they would not); clamp defensively instead of wrapping.
        (offset - self.base_offset).clamp(0, i64::from(u32::MAX)) as u32
    }

    /// Position of the last indexed batch whose base offset is `<= offset` (0 when none):
    /// scanning forward from there reaches the batch containing `offset`.
    pub(crate) fn lookup(&self, offset: i64) -> u64 {
        if offset < self.base_offset {
            return 0;
        }
        let rel = self.rel(offset);
        let i = self.offsets.partition_point(|e| e.rel <= rel);
        if i == 0 {
            0
        } else {
            u64::from(self.offsets[i - 1].pos)
        }
    }

    /// First offset that may hold a record with timestamp `>= ts`: one past the last time
    /// entry whose timestamp is `< ts`, or the segment base.
    pub(crate) fn time_lookup(&self, ts: i64) -> i64 {
        let i = self.times.partition_point(|e| e.ts < ts);
        if i == 0 {
            self.base_offset
        } else {
            self.base_offset + i64::from(self.times[i - 1].rel) + 1
        }
    }

    /// Position of the last offset entry, if any.
    pub(crate) fn last_entry_pos(&self) -> Option<u64> {
        self.offsets.last().map(|e| u64::from(e.pos))
    }

    /// The last offset entry, if any.
    pub(crate) fn last_offset_entry(&self) -> Option<OffsetEntry> {
        self.offsets.last().copied()
    }

    /// The last time entry, if any.
    pub(crate) fn last_time_entry(&self) -> Option<TimeEntry> {
        self.times.last().copied()
    }

    pub(crate) fn max_ts(&self) -> i64 {
        self.max_ts
    }

    /// Indexes one appended batch at byte `pos` of `size` bytes: adds an offset entry when
    /// `interval` bytes have passed since the last one, and then a time entry if the
    /// segment's max timestamp grew.
    pub(crate) fn add_batch(
        &mut self,
        base_offset: i64,
        last_offset: i64,
        pos: u64,
        size: u64,
        max_ts: i64,
        interval: u32,
    ) {
        let mut added = false;
        if self.bytes_since_entry >= u64::from(interval) {
            let entry = OffsetEntry {
                rel: self.rel(base_offset),
                pos: pos.min(u64::from(u32::MAX)) as u32,
            };
            if self
                .offsets
                .last()
                .is_none_or(|l| l.rel < entry.rel && l.pos < entry.pos)
            {
                self.offsets.push(entry);
                added = true;
            }
            self.bytes_since_entry = 0;
        }
        self.bytes_since_entry += size;
        self.observe(last_offset, max_ts);
        if added {
            self.push_time_entry(false);
        }
    }

    /// Makes the next batch get an offset entry (the first good batch after a damaged range,
    /// so that lookups past the range never walk through it).
    pub(crate) fn entry_at_next(&mut self) {
        self.bytes_since_entry = u64::from(u32::MAX);
    }

    /// Accounts for a batch that is already indexed (recovery resuming from the files).
    pub(crate) fn observe(&mut self, last_offset: i64, max_ts: i64) {
        self.max_ts = self.max_ts.max(max_ts);
        self.last_rel = Some(self.rel(last_offset));
    }

    /// Recovery resuming at the batch the last offset entry points to: restart the byte
    /// count there, as when the entry was added.
    pub(crate) fn restart_interval(&mut self, size: u64) {
        self.bytes_since_entry = size;
    }

    /// Adds a final time entry covering the whole segment (on roll and close), so that the
    /// last time entry of a sealed segment is its max timestamp at its last offset.
    pub(crate) fn seal(&mut self) {
        self.push_time_entry(true);
    }

    fn push_time_entry(&mut self, allow_equal_ts: bool) {
        let Some(rel) = self.last_rel else { return };
        if self.max_ts == NO_TIMESTAMP {
            return;
        }
        let ok = match self.times.last() {
            None => true,
            Some(l) => {
                l.rel < rel && (l.ts < self.max_ts || (allow_equal_ts && l.ts == self.max_ts))
            }
        };
        if ok {
            self.times.push(TimeEntry {
                ts: self.max_ts,
                rel,
            });
        }
    }

    /// Forgets what the files hold, so the next write empties and rewrites them.
    pub(crate) fn mark_unpersisted(&mut self) {
        self.persisted_offsets = 0;
        self.persisted_times = 0;
        self.rewrite = true;
    }

    /// Whether entries exist that the files do not have yet.
    pub(crate) fn is_dirty(&self) -> bool {
        self.persisted_offsets < self.offsets.len() || self.persisted_times < self.times.len()
    }

    /// The entries the files do not have yet, encoded, or `None` if there are none.
    pub(crate) fn pending(&self) -> Option<PendingWrite> {
        if !self.is_dirty() && !self.rewrite {
            return None;
        }
        let mut offsets = Vec::with_capacity((self.offsets.len() - self.persisted_offsets) * 8);
        for e in &self.offsets[self.persisted_offsets..] {
            offsets.extend_from_slice(&e.rel.to_be_bytes());
            offsets.extend_from_slice(&e.pos.to_be_bytes());
        }
        let mut times = Vec::with_capacity((self.times.len() - self.persisted_times) * 12);
        for e in &self.times[self.persisted_times..] {
            times.extend_from_slice(&e.ts.to_be_bytes());
            times.extend_from_slice(&e.rel.to_be_bytes());
        }
        Some(PendingWrite {
            truncate: self.rewrite,
            offsets_from: self.persisted_offsets,
            offsets_to: self.offsets.len(),
            offsets,
            times_from: self.persisted_times,
            times_to: self.times.len(),
            times,
        })
    }

    /// Every entry, encoded as the `.index` and `.timeindex` files hold them.
    pub(crate) fn encode(&self) -> (Vec<u8>, Vec<u8>) {
        let mut offsets = Vec::with_capacity(self.offsets.len() * OFFSET_ENTRY);
        for e in &self.offsets {
            offsets.extend_from_slice(&e.rel.to_be_bytes());
            offsets.extend_from_slice(&e.pos.to_be_bytes());
        }
        let mut times = Vec::with_capacity(self.times.len() * TIME_ENTRY);
        for e in &self.times {
            times.extend_from_slice(&e.ts.to_be_bytes());
            times.extend_from_slice(&e.rel.to_be_bytes());
        }
        (offsets, times)
    }

    /// Records that a [`PendingWrite`] reached the files.
    pub(crate) fn mark_persisted(&mut self, w: &PendingWrite) {
        self.persisted_offsets = self.persisted_offsets.max(w.offsets_to);
        self.persisted_times = self.persisted_times.max(w.times_to);
        if w.truncate {
            self.rewrite = false;
        }
    }

    /// Writes the entries the files do not have yet (what `Segment::persist_index` does,
    /// minus the lock juggling).
    #[cfg(test)]
    pub(crate) fn persist(&mut self, offset_file: &File, time_file: &File) -> io::Result<()> {
        if let Some(w) = self.pending() {
            w.write(offset_file, time_file)?;
            self.mark_persisted(&w);
        }
        Ok(())
    }

    /// Whether both indexes hold the same entries (a rebuilt index against the one in use).
    pub(crate) fn same_entries(&self, other: &SegmentIndex) -> bool {
        self.offsets == other.offsets && self.times == other.times
    }

    #[cfg(test)]
    pub(crate) fn entries(&self) -> (&[OffsetEntry], &[TimeEntry]) {
        (&self.offsets, &self.times)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_finds_last_entry_at_or_below() {
        let mut idx = SegmentIndex::new(100);
        // batches of 10 records, 1000 bytes each, interval 1500 -> entry every 2nd batch
        for i in 0..10u64 {
            let base = 100 + 10 * i as i64;
            idx.add_batch(base, base + 9, i * 1000, 1000, 1_000 + i as i64, 1500);
        }
        let (offs, times) = idx.entries();
        assert_eq!(
            offs.iter().map(|e| (e.rel, e.pos)).collect::<Vec<_>>(),
            vec![(20, 2000), (40, 4000), (60, 6000), (80, 8000)]
        );
        assert_eq!(times.first(), Some(&TimeEntry { ts: 1002, rel: 29 }));
        assert_eq!(idx.lookup(50), 0);
        assert_eq!(idx.lookup(119), 0);
        assert_eq!(idx.lookup(120), 2000);
        assert_eq!(idx.lookup(139), 2000);
        assert_eq!(idx.lookup(199), 8000);
        // ts 1003 is first reached by the batch at 130..139; entry (1002, rel 29) says
        // offsets <= 129 are all < 1003
        assert_eq!(idx.time_lookup(1003), 130);
        assert_eq!(idx.time_lookup(0), 100);
    }

    #[test]
    fn files_round_trip_and_reject_garbage() {
        let dir = tempfile::tempdir().expect("tempdir");
        let of = File::options()
            .create(true)
            .read(true)
            .write(true)
            .truncate(true)
            .open(dir.path().join("i"))
            .expect("open");
        let tf = File::options()
            .create(true)
            .read(true)
            .write(true)
            .truncate(true)
            .open(dir.path().join("t"))
            .expect("open");
        let mut idx = SegmentIndex::new(0);
        for i in 0..5u64 {
            idx.add_batch(i as i64, i as i64, i * 100, 100, i as i64, 0);
        }
        idx.seal();
        idx.persist(&of, &tf).expect("persist");
        let ob = std::fs::read(dir.path().join("i")).expect("read");
        let tb = std::fs::read(dir.path().join("t")).expect("read");
        let back = SegmentIndex::from_files(0, &ob, &tb, 500).expect("valid");
        assert_eq!(back.entries(), idx.entries());
        // entry pointing past the log end
        assert!(SegmentIndex::from_files(0, &ob, &tb, 400).is_none());
        // torn entry
        assert!(SegmentIndex::from_files(0, &ob[..ob.len() - 3], &tb, 500).is_none());
        // out of order
        let mut bad = ob.clone();
        bad.swap(3, 11);
        assert!(SegmentIndex::from_files(0, &bad, &tb, 500).is_none());
    }
}
