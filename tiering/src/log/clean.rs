//! The hot tier's log cleaner (`cleanup.policy=compact`): Kafka's `LogCleaner` for one
//! partition. The batch-level rules are in `compact.rs`; this file picks the range, builds
//! the key map, rewrites segments in groups and swaps them in crash-safely.
//!
//! # A cleaning
//!
//! 1. The *cleanable* range: sealed segments only, below the caller's bound (the high
//!    watermark: a follower never cleans what a truncation could take back), the first
//!    unstable offset (open transactions), the durable offset, the tiered end when tiering is
//!    on (a segment is uploaded as it was sealed, never half-swapped under the uploader), and
//!    the first segment holding records younger than `min.compaction.lag.ms`. Its *dirty*
//!    part starts at the cleaner checkpoint (`cleaner-offset-checkpoint`: where the last
//!    cleaning's key map ended). A cleaning runs when dirty bytes / cleanable bytes reach
//!    `min.cleanable.dirty.ratio`, or when dirty records are older than
//!    `max.compaction.lag.ms`.
//! 2. The key map: every key of the dirty part, in offset order, up to the map's memory; if
//!    it fills, this cleaning ends where the map ends and the next one continues from there.
//! 3. Every segment from the log start to the map's end is rewritten, in groups of adjacent
//!    segments that fit one segment (`segment.bytes`), into `<base>.log.cleaned` (with its
//!    indexes, `.index.cleaned`, `.timeindex.cleaned` and `.txnindex.cleaned`), all fsynced.
//!    A group in which nothing changes is left as it is.
//! 4. The swap, under the writer lock (appends wait for a few renames): `<base>.swap` records
//!    the group's end offset and is fsynced with its directory — the commit point — then
//!    the `.cleaned` files are renamed over the group's first segment, the group's other
//!    segments are deleted, and the marker goes. Readers that already hold the old segments
//!    keep reading their (unlinked) files. A crash before the marker leaves the old segments
//!    (the `.cleaned` files are deleted on open); after it, opening finishes the swap.
//! 5. The checkpoint moves to the map's end.
//!
//! The I/O is throttled through [`Throttle`] (`log.cleaner.io.max.bytes.per.second`).

use std::collections::HashMap;
use std::io::Write;

use super::checkpoint::replace_file;
use super::*;
use crate::compact::{self, BatchCleaner, CleanContext, OffsetMap};

/// The cleaner's checkpoint: the first dirty offset (i64 BE + CRC-32C of those 8 bytes).
pub(super) const CHECKPOINT_FILE: &str = "cleaner-offset-checkpoint";
const CHECKPOINT_TMP: &str = "cleaner-offset-checkpoint.tmp";
/// Suffix of a cleaned group's files before the swap.
pub(super) const CLEANED_SUFFIX: &str = "cleaned";
/// Suffix of the swap marker `<base>.swap`.
pub(super) const SWAP_SUFFIX: &str = "swap";
/// Read buffer of the cleaner (batches larger than this are read whole).
const READ_BUFFER: usize = 4 << 20;

/// Node-wide cleaner settings (Kafka's `log.cleaner.*`).
#[derive(Debug, Clone)]
pub struct CleanerOptions {
    /// Memory for the key map (`log.cleaner.dedupe.buffer.size`).
    pub dedupe_buffer_bytes: usize,
}

impl Default for CleanerOptions {
    fn default() -> Self {
        CleanerOptions {
            dedupe_buffer_bytes: 128 << 20,
        }
    }
}

/// Limits the cleaner's I/O to a rate (bytes per second) by sleeping the cleaning thread.
#[derive(Debug)]
pub struct Throttle {
    rate: Option<f64>,
    start: std::time::Instant,
    bytes: f64,
}

impl Throttle {
    /// `None` = unlimited.
    pub fn new(bytes_per_second: Option<u64>) -> Self {
        Throttle {
            rate: bytes_per_second.filter(|r| *r > 0).map(|r| r as f64),
            start: std::time::Instant::now(),
            bytes: 0.0,
        }
    }

    /// Accounts for `n` bytes read or written, sleeping while ahead of the rate.
    pub fn charge(&mut self, n: u64) {
        let Some(rate) = self.rate else { return };
        self.bytes += n as f64;
        let due = std::time::Duration::from_secs_f64(self.bytes / rate);
        let elapsed = self.start.elapsed();
        if due > elapsed {
            std::thread::sleep(due - elapsed);
        }
        // Forget history now and then so that an idle spell does not bank a burst.
        if elapsed > std::time::Duration::from_secs(5) {
            self.start = std::time::Instant::now();
            self.bytes = 0.0;
        }
    }
}

/// How much of the log a cleaning could work on now.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cleanable {
    /// Where the dirty part starts (the checkpoint, at least the log start).
    pub first_dirty: i64,
    /// End of the cleanable range (exclusive).
    pub end: i64,
    /// Bytes of cleanable segments entirely below `first_dirty`.
    pub clean_bytes: u64,
    /// Bytes of cleanable segments at or after it.
    pub dirty_bytes: u64,
    /// Dirty records are older than `max.compaction.lag.ms`: clean whatever the ratio.
    pub forced: bool,
}

impl Cleanable {
    /// dirty / (clean + dirty).
    pub fn dirty_ratio(&self) -> f64 {
        let total = self.clean_bytes + self.dirty_bytes;
        if total == 0 {
            0.0
        } else {
            self.dirty_bytes as f64 / total as f64
        }
    }
}

/// What one cleaning did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CleanStats {
    /// The dirty range the key map covered.
    pub first_dirty: i64,
    /// End of the map (the new checkpoint).
    pub end: i64,
    /// Keys in the map.
    pub map_keys: usize,
    /// Bytes read (map building and rewriting).
    pub bytes_read: u64,
    /// Bytes written to cleaned segments.
    pub bytes_written: u64,
    /// Bytes of the segments replaced, and of what replaced them.
    pub bytes_before: u64,
    /// See `bytes_before`.
    pub bytes_after: u64,
    /// Records read in the rewritten range, and kept.
    pub records_read: u64,
    /// See `records_read`.
    pub records_kept: u64,
    /// Segments replaced, and segments that replaced them.
    pub segments_before: usize,
    /// See `segments_before`.
    pub segments_after: usize,
    /// The earliest delete horizon of what was kept (when to clean again).
    pub next_delete_horizon: Option<i64>,
}

impl CleanStats {
    /// Bytes the cleaned segments shrank by.
    pub fn bytes_removed(&self) -> u64 {
        self.bytes_before.saturating_sub(self.bytes_after)
    }
}

impl PartitionLog {
    /// What a cleaning could work on now, below `upper_bound` (the high watermark), or `None`
    /// when the topic is not compacted or nothing is dirty.
    pub fn cleanable(&self, upper_bound: i64, now_ms: i64) -> Option<Cleanable> {
        let config = rlock(&self.config).clone();
        if !config.cleanup_compact {
            return None;
        }
        let (metas, start) = {
            let s = rlock(&self.shared);
            (s.segments.clone(), s.log_start())
        };
        let mut upper = upper_bound.min(self.durable_offset());
        if let Some(lso) = self.first_unstable_offset() {
            upper = upper.min(lso);
        }
        if config.remote_storage {
            upper = upper.min(self.tiered_end());
        }
        let min_lag = config.min_compaction_lag_ms.max(0);
        let sealed = &metas[..metas.len().saturating_sub(1)];
        let cleanable: Vec<&SegmentMeta> = sealed
            .iter()
            .take_while(|m| {
                m.next_offset <= upper
                    && (min_lag == 0
                        || m.max_ts == NO_TIMESTAMP
                        || m.max_ts <= now_ms.saturating_sub(min_lag))
            })
            .collect();
        let end = cleanable.last()?.next_offset;
        let (checkpoint, horizon) = read_checkpoint(&self.dir).unwrap_or((0, None));
        let first_dirty = checkpoint.clamp(start, end);
        // Nothing dirty, but tombstones or markers whose horizon has passed: clean anyway.
        let expired = horizon.is_some_and(|h| h <= now_ms);
        if first_dirty >= end && !expired {
            return None;
        }
        let (mut clean_bytes, mut dirty_bytes) = (0, 0);
        let mut oldest_dirty = i64::MAX;
        for m in &cleanable {
            if m.next_offset <= first_dirty {
                clean_bytes += m.size;
            } else {
                dirty_bytes += m.size;
                if m.max_ts != NO_TIMESTAMP {
                    oldest_dirty = oldest_dirty.min(m.max_ts);
                }
            }
        }
        let forced = expired
            || (config.max_compaction_lag_ms < i64::MAX
                && oldest_dirty != i64::MAX
                && oldest_dirty <= now_ms.saturating_sub(config.max_compaction_lag_ms));
        Some(Cleanable {
            first_dirty,
            end,
            clean_bytes,
            dirty_bytes,
            forced,
        })
    }

    /// Cleans the log if [`cleanable`](Self::cleanable) finds it dirty enough
    /// (`min.cleanable.dirty.ratio`, or `max.compaction.lag.ms` passed); `force` cleans
    /// whatever is dirty. Blocking (file I/O, throttled by `throttle`); runs beside appends
    /// and reads. `None` when there was nothing to do.
    pub fn clean(
        &self,
        upper_bound: i64,
        now_ms: i64,
        force: bool,
        options: &CleanerOptions,
        throttle: &mut Throttle,
    ) -> Result<Option<CleanStats>> {
        let Some(c) = self.cleanable(upper_bound, now_ms) else {
            return Ok(None);
        };
        let config = rlock(&self.config).clone();
        if !force && !c.forced && c.dirty_ratio() < config.min_cleanable_dirty_ratio {
            return Ok(None);
        }
        let metas = rlock(&self.shared).segments.clone();
        let start = self.log_start_offset();
        let aborted = self.aborted_transactions(start, c.end)?;
        let mut stats = CleanStats {
            first_dirty: c.first_dirty,
            ..CleanStats::default()
        };

        // The key map over the dirty range.
        let mut map = OffsetMap::with_memory(options.dedupe_buffer_bytes);
        let mut map_end = c.end;
        'segments: for m in metas.iter().filter(|m| m.next_offset > c.first_dirty) {
            if m.seg.base_offset >= c.end {
                break;
            }
            let mut full = false;
            let mut aborted_open: HashMap<i64, bool> = HashMap::new();
            each_batch(m, throttle, &mut stats, |bytes, h| {
                if h.last_offset() < c.first_dirty {
                    return Ok(true);
                }
                if h.is_control() {
                    aborted_open.remove(&h.producer_id);
                    return Ok(true);
                }
                if h.is_transactional() {
                    let is_aborted = *aborted_open.entry(h.producer_id).or_insert_with(|| {
                        aborted.iter().any(|t| {
                            t.producer_id == h.producer_id
                                && t.first_offset <= h.base_offset
                                && h.base_offset < t.last_offset
                        })
                    });
                    if is_aborted {
                        return Ok(true);
                    }
                }
                if !compact::add_keys(&mut map, bytes, h, c.first_dirty)
                    .map_err(|r| m.seg.corrupt(0, r))?
                {
                    full = true;
                    return Ok(false);
                }
                Ok(true)
            })?;
            if full {
                map_end = map.latest_offset() + 1;
                break 'segments;
            }
        }
        stats.end = map_end;
        stats.map_keys = map.len();

        // Rewrite every segment below the map's end, group by group.
        let producer_last = lock(&self.producers).last_data_offsets();
        let cx = CleanContext {
            map: &map,
            now_ms,
            delete_retention_ms: config.delete_retention_ms,
            producer_last: &producer_last,
        };
        let mut cleaner = BatchCleaner::new(&aborted);
        let targets: Vec<&SegmentMeta> = metas
            .iter()
            .take_while(|m| m.seg.base_offset < map_end && m.next_offset <= c.end)
            .collect();
        for group in group_segments(&targets, config.segment_bytes) {
            self.clean_group(group, &cx, &mut cleaner, throttle, &mut stats)?;
        }
        // Every segment cleaned before is below the map's end, so this pass saw every kept
        // tombstone and marker.
        let horizon = cleaner.next_horizon;
        write_checkpoint(&self.dir, map_end.max(c.first_dirty), horizon)?;
        stats.next_delete_horizon = horizon;
        Ok(Some(stats))
    }

    /// Rewrites one group of adjacent sealed segments and swaps the result in (module docs).
    fn clean_group(
        &self,
        group: &[&SegmentMeta],
        cx: &CleanContext<'_>,
        cleaner: &mut BatchCleaner,
        throttle: &mut Throttle,
        stats: &mut CleanStats,
    ) -> Result<()> {
        let (Some(first), Some(last)) = (group.first(), group.last()) else {
            return Ok(());
        };
        let base = first.seg.base_offset;
        let end = last.next_offset;
        let interval = rlock(&self.config).index_interval_bytes;
        let log_tmp = self.dir.join(cleaned_name(base, segment::LOG_SUFFIX));
        let mut file = std::io::BufWriter::with_capacity(
            1 << 20,
            File::create(&log_tmp).map_err(|e| Error::io("create cleaned segment", &log_tmp, e))?,
        );
        let mut idx = SegmentIndex::new(base);
        let (mut pos, mut max_ts, mut max_ts_offset) = (0u64, NO_TIMESTAMP, base);
        let mut changed = group.len() > 1;
        let (mut records_read, mut records_kept) = (0, 0);
        let aborts_before = cleaner.kept_aborts.len();
        let mut out = Vec::new();
        for m in group {
            each_batch(m, throttle, stats, |bytes, h| {
                out.clear();
                let o = cleaner
                    .clean(bytes, h, cx, &mut out)
                    .map_err(|r| m.seg.corrupt(0, r))?;
                records_read += o.records_in;
                records_kept += o.records_kept;
                changed |= o.rewritten || !o.kept;
                if o.kept {
                    let kept = BatchHeader::parse(&out)?;
                    idx.add_batch(
                        kept.base_offset,
                        kept.last_offset(),
                        pos,
                        kept.size(),
                        kept.max_timestamp,
                        interval,
                    );
                    if kept.max_timestamp > max_ts {
                        max_ts = kept.max_timestamp;
                        max_ts_offset = kept.base_offset;
                    }
                    file.write_all(&out)
                        .map_err(|e| Error::io("write cleaned segment", &log_tmp, e))?;
                    pos += out.len() as u64;
                }
                Ok(true)
            })?;
        }
        stats.records_read += records_read;
        stats.records_kept += records_kept;
        let file = file
            .into_inner()
            .map_err(|e| Error::io("write cleaned segment", &log_tmp, e.into_error()))?;
        if !changed {
            drop(file);
            remove_file_if_exists(&log_tmp)?;
            return Ok(());
        }
        throttle.charge(pos);
        stats.bytes_written += pos;
        file.sync_all()
            .map_err(|e| Error::io("fsync cleaned segment", &log_tmp, e))?;
        idx.seal();
        let (index, time_index) = idx.encode();
        write_synced(
            &self.dir.join(cleaned_name(base, segment::INDEX_SUFFIX)),
            &index,
        )?;
        write_synced(
            &self
                .dir
                .join(cleaned_name(base, segment::TIME_INDEX_SUFFIX)),
            &time_index,
        )?;
        let aborts: Vec<u8> = cleaner.kept_aborts[aborts_before..]
            .iter()
            .flat_map(AbortedTxn::encode)
            .collect();
        let has_txn = !aborts.is_empty();
        if has_txn {
            write_synced(
                &self.dir.join(cleaned_name(base, segment::TXN_INDEX_SUFFIX)),
                &aborts,
            )?;
        }
        crash_point(1)?;

        // The swap, if the group is still what was cleaned.
        let w = lock(&self.writer);
        let at = {
            let s = rlock(&self.shared);
            s.segments
                .iter()
                .position(|m| Arc::ptr_eq(&m.seg, &first.seg))
                .filter(|&i| {
                    i + group.len() < s.segments.len()
                        && group
                            .iter()
                            .zip(&s.segments[i..])
                            .all(|(g, m)| Arc::ptr_eq(&g.seg, &m.seg))
                })
        };
        let Some(at) = at.filter(|_| !w.closed) else {
            drop(w);
            debug!(dir = %self.dir.display(), base, "segments changed during cleaning; dropping the cleaned copy");
            return remove_cleaned(&self.dir, base);
        };
        write_swap_marker(&self.dir, base, end, has_txn)?;
        crash_point(2)?;
        // Readers still holding the old segments keep reading them, not the cleaned files.
        for m in group {
            m.seg.pin();
        }
        finish_swap(&self.dir, base, end, has_txn)?;
        crash_point(3)?;
        let (seg, _) = Segment::open(&self.dir, base)?;
        seg.set_index(idx);
        let meta = SegmentMeta {
            seg: Arc::new(seg),
            size: pos,
            next_offset: end,
            max_ts,
            max_ts_offset,
        };
        {
            let mut s = wlock(&self.shared);
            let old: Vec<SegmentMeta> = s.segments.splice(at..at + group.len(), [meta]).collect();
            s.unsynced
                .retain(|seg| !old.iter().any(|m| Arc::ptr_eq(&m.seg, seg)));
        }
        drop(w);
        stats.bytes_before += group.iter().map(|m| m.size).sum::<u64>();
        stats.bytes_after += pos;
        stats.segments_before += group.len();
        stats.segments_after += 1;
        debug!(dir = %self.dir.display(), base, end, segments = group.len(), bytes = pos, "swapped in a cleaned segment");
        Ok(())
    }

    /// The cleaner checkpoint: where the next cleaning's dirty range starts (0 when none).
    pub fn cleaner_checkpoint(&self) -> i64 {
        read_checkpoint(&self.dir).map_or(0, |c| c.0)
    }

    /// The earliest delete horizon of the tombstones and markers the last cleaning kept.
    pub fn next_delete_horizon(&self) -> Option<i64> {
        read_checkpoint(&self.dir).and_then(|c| c.1)
    }
}

/// Adjacent segments grouped so that each group fits one segment: total bytes at most
/// `max_bytes` and an offset span that the 32-bit relative offsets of the index can address.
fn group_segments<'a>(metas: &'a [&'a SegmentMeta], max_bytes: u64) -> Vec<&'a [&'a SegmentMeta]> {
    let mut groups = Vec::new();
    let mut i = 0;
    while i < metas.len() {
        let base = metas[i].seg.base_offset;
        let mut size = metas[i].size;
        let mut j = i + 1;
        while j < metas.len()
            && size + metas[j].size <= max_bytes
            && metas[j].next_offset - base <= i64::from(i32::MAX)
        {
            size += metas[j].size;
            j += 1;
        }
        groups.push(&metas[i..j]);
        i = j;
    }
    groups
}

/// Calls `f(batch bytes, header)` for each batch of a sealed segment, checking framing and
/// CRC; `f` returns `false` to stop. Charges the reads to the throttle.
fn each_batch(
    m: &SegmentMeta,
    throttle: &mut Throttle,
    stats: &mut CleanStats,
    mut f: impl FnMut(&[u8], &BatchHeader) -> Result<bool>,
) -> Result<()> {
    let seg = &m.seg;
    let mut reader = ChunkReader::with_chunk(seg, m.size, READ_BUFFER);
    let mut pos = 0u64;
    while pos < m.size {
        let h = reader.header(pos)?.map_err(|r| seg.corrupt(pos, r))?;
        let bytes = reader.get(pos, h.size() as usize)?;
        if !batch::crc_matches(bytes, &h) {
            return Err(seg.corrupt(pos, "crc-32c mismatch"));
        }
        throttle.charge(h.size());
        stats.bytes_read += h.size();
        if !f(bytes, &h)? {
            break;
        }
        pos += h.size();
    }
    Ok(())
}

#[cfg(test)]
thread_local! {
    /// Tests: the step of a swap at which the next cleaning "crashes" (returns an error and
    /// leaves the files as a kill -9 there would): 1 = cleaned files written, 2 = swap
    /// marker written, 3 = swap finished on disk.
    pub(super) static CRASH_AT: std::cell::Cell<u8> = const { std::cell::Cell::new(0) };
}

#[cfg(test)]
fn crash_point(step: u8) -> Result<()> {
    if CRASH_AT.with(std::cell::Cell::get) == step {
        return Err(Error::Internal {
            reason: format!("injected crash at step {step}"),
        });
    }
    Ok(())
}

#[cfg(not(test))]
#[inline]
fn crash_point(_step: u8) -> Result<()> {
    Ok(())
}

fn cleaned_name(base: i64, suffix: &str) -> String {
    format!("{}.{CLEANED_SUFFIX}", segment::file_name(base, suffix))
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    (|| {
        let mut f = File::create(path)?;
        f.write_all(bytes)?;
        f.sync_all()
    })()
    .map_err(|e| Error::io("write cleaned index", path, e))
}

fn remove_file_if_exists(p: &Path) -> Result<()> {
    match fs::remove_file(p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("remove file", p, e)),
    }
}

/// Removes the `.cleaned` files of the group at `base` (an abandoned cleaning).
fn remove_cleaned(dir: &Path, base: i64) -> Result<()> {
    for suffix in [
        segment::LOG_SUFFIX,
        segment::INDEX_SUFFIX,
        segment::TIME_INDEX_SUFFIX,
        segment::TXN_INDEX_SUFFIX,
    ] {
        remove_file_if_exists(&dir.join(cleaned_name(base, suffix)))?;
    }
    Ok(())
}

/// `<base>.swap`: the group's end offset (i64 BE), whether a transaction index comes with
/// it (u8), CRC-32C of those 9 bytes. Written and fsynced with the directory: the commit
/// point of a swap.
fn write_swap_marker(dir: &Path, base: i64, end: i64, has_txn: bool) -> Result<()> {
    let mut b = [0u8; 13];
    b[..8].copy_from_slice(&end.to_be_bytes());
    b[8] = u8::from(has_txn);
    let crc = crc32c::crc32c(&b[..9]);
    b[9..].copy_from_slice(&crc.to_be_bytes());
    let path = dir.join(segment::file_name(base, SWAP_SUFFIX));
    write_synced(&path, &b)?;
    sync_dir(dir)
}

/// Reads a swap marker: `(end, has_txn)`, `None` if it is damaged (the swap never committed).
fn read_swap_marker(path: &Path) -> Option<(i64, bool)> {
    let b = fs::read(path).ok()?;
    if b.len() != 13 || crc32c::crc32c(&b[..9]).to_be_bytes() != b[9..13] {
        return None;
    }
    let mut e = [0u8; 8];
    e.copy_from_slice(&b[..8]);
    Some((i64::from_be_bytes(e), b[8] == 1))
}

/// Completes a committed swap (idempotent, so recovery can redo it): renames the `.cleaned`
/// files over the group's first segment, deletes the group's other segments (those with a
/// base offset in `(base, end)`), removes the marker.
fn finish_swap(dir: &Path, base: i64, end: i64, has_txn: bool) -> Result<()> {
    for suffix in [
        segment::INDEX_SUFFIX,
        segment::TIME_INDEX_SUFFIX,
        segment::TXN_INDEX_SUFFIX,
        segment::LOG_SUFFIX,
    ] {
        let from = dir.join(cleaned_name(base, suffix));
        let to = dir.join(segment::file_name(base, suffix));
        if from.exists() {
            fs::rename(&from, &to).map_err(|e| Error::io("swap in cleaned segment", &to, e))?;
        } else if suffix == segment::TXN_INDEX_SUFFIX && !has_txn {
            remove_file_if_exists(&to)?;
        }
    }
    let mut others = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| Error::io("list log directory", dir, e))? {
        let entry = entry.map_err(|e| Error::io("list log directory", dir, e))?;
        if let Some(b) = entry.file_name().to_str().and_then(segment::parse_log_name)
            && b > base
            && b < end
        {
            others.push(b);
        }
    }
    for b in others {
        for suffix in [
            segment::LOG_SUFFIX,
            segment::INDEX_SUFFIX,
            segment::TIME_INDEX_SUFFIX,
            segment::TXN_INDEX_SUFFIX,
        ] {
            remove_file_if_exists(&dir.join(segment::file_name(b, suffix)))?;
        }
    }
    remove_file_if_exists(&dir.join(segment::file_name(base, SWAP_SUFFIX)))?;
    sync_dir(dir)
}

/// On open, before the segments are listed: finishes every committed swap and deletes what
/// an uncommitted cleaning left. Returns whether the directory changed.
pub(super) fn recover_swaps(dir: &Path) -> Result<bool> {
    let mut swaps = Vec::new();
    let mut cleaned = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| Error::io("list log directory", dir, e))? {
        let entry = entry.map_err(|e| Error::io("list log directory", dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(base) = segment::parse_name(name, SWAP_SUFFIX) {
            swaps.push((base, entry.path()));
        } else if name.ends_with(&format!(".{CLEANED_SUFFIX}")) {
            cleaned.push(entry.path());
        }
    }
    let changed = !swaps.is_empty() || !cleaned.is_empty();
    swaps.sort();
    for (base, path) in swaps {
        match read_swap_marker(&path) {
            Some((end, has_txn)) => {
                info!(dir = %dir.display(), base, end, "finishing the swap of a cleaned segment");
                finish_swap(dir, base, end, has_txn)?;
            }
            None => {
                warn!(path = %path.display(), "removing a damaged swap marker (the swap never committed)");
                remove_file_if_exists(&path)?;
            }
        }
    }
    for path in fs::read_dir(dir)
        .map_err(|e| Error::io("list log directory", dir, e))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.extension()
                .is_some_and(|x| x == std::ffi::OsStr::new(CLEANED_SUFFIX))
        })
    {
        debug!(path = %path.display(), "removing the leftover of an unfinished cleaning");
        remove_file_if_exists(&path)?;
    }
    if changed {
        sync_dir(dir)?;
    }
    Ok(changed)
}

/// `(first dirty offset, next delete horizon)`: i64 BE, i64 BE (`i64::MAX`: none), CRC-32C
/// of those 16 bytes.
fn read_checkpoint(dir: &Path) -> Option<(i64, Option<i64>)> {
    let b = fs::read(dir.join(CHECKPOINT_FILE)).ok()?;
    if b.len() != 20 || crc32c::crc32c(&b[..16]).to_be_bytes() != b[16..20] {
        return None;
    }
    let mut v = [0u8; 8];
    v.copy_from_slice(&b[..8]);
    let mut h = [0u8; 8];
    h.copy_from_slice(&b[8..16]);
    let horizon = i64::from_be_bytes(h);
    Some((
        i64::from_be_bytes(v),
        (horizon != i64::MAX).then_some(horizon),
    ))
}

fn write_checkpoint(dir: &Path, offset: i64, horizon: Option<i64>) -> Result<()> {
    let mut b = [0u8; 20];
    b[..8].copy_from_slice(&offset.to_be_bytes());
    b[8..16].copy_from_slice(&horizon.unwrap_or(i64::MAX).to_be_bytes());
    let crc = crc32c::crc32c(&b[..16]);
    b[16..].copy_from_slice(&crc.to_be_bytes());
    replace_file(dir, CHECKPOINT_FILE, CHECKPOINT_TMP, &b)
}
