//! Damage in the middle of the log: finding it, containing it, and lifting it with a repair.
//!
//! # Torn tail or damage
//!
//! A crash can leave the last segment with a *torn tail*: the last bytes written before it
//! never reached the disk, and nothing valid follows them. Recovery truncates that (as Kafka
//! does). Anything else that fails its check — a bad CRC-32C, a broken frame, a file cut short
//! — with valid batches after it, or in a sealed segment, is *damage*: bit rot, a bad sector,
//! an operator's mistake. Truncating there would throw away every good batch after it (and
//! every later segment), so instead [`survey`] walks the whole segment, steps over the bad
//! bytes to the next batch that checks out ([`resync`]) and records each bad stretch as a
//! [`DamagedRange`] on its segment. A bad stretch at the very end of the last segment is torn
//! unless the batch there is complete and below the recovery point (its bytes were fsynced,
//! so they rotted rather than tore).
//!
//! # Quarantine
//!
//! Reads of a damaged range fail with [`Error::Damaged`] (KAFKA_STORAGE_ERROR on the wire);
//! the offsets before and after it are served as usual. Every batch a read returns has its
//! CRC-32C checked first; a mismatch found there (bit rot after the segment was loaded) makes
//! the log survey that segment at once, so the same quarantine follows. The survey also
//! rebuilds a sealed segment's indexes, so a damaged index is never trusted twice. The bases of
//! segments with damage are kept in `DAMAGE_FILE`, so that the next open surveys them again
//! even after a clean shutdown (whose quick load would otherwise not look inside them).
//!
//! # A missing segment file
//!
//! In a log that is not compacted (no `cleanup.policy=compact`, and no cleaner checkpoint
//! left from a time it was), every sealed segment's records run up to the next segment's base
//! offset. When they stop short, the offsets in between were in a segment file that is gone
//! (deleted by mistake), or in the tail of the segment before, cut short at a batch boundary.
//! Open (`recovery.rs`) then creates an empty *placeholder* segment at the first missing
//! offset and quarantines the whole gap there as one damaged range ending the segment (reason
//! `MISSING_REASON`), instead of letting reads skip it as they would a compacted
//! hole: fetches of it answer KAFKA_STORAGE_ERROR, it is listed and counted like any damaged
//! range, uploads wait for it, and the heal paths repair it from object storage or the leader
//! like any range ending a segment. Nothing marks the placeholder: every survey of a sealed
//! segment of such a log (`whole`) counts offsets from the end of its bytes to the next base
//! as missing, and the next open finds the same gap, so it stays quarantined until a repair
//! fills it (a partial one leaves the rest quarantined). A gap below the first segment is not
//! damage (retention and DeleteRecords delete prefixes), and DeleteRecords past the gap
//! accepts the loss and deletes the placeholder with the other segments below the log start;
//! retention may delete it like any segment. A follower truncating into the gap drops the
//! placeholder and fetches the offsets again.
//!
//! # Repair
//!
//! [`PartitionLog::repair`] writes the batches of a damaged range, taken from another copy
//! (the tiered object, a replica), over the bad bytes: they must check out, carry exactly the
//! range's offsets and fill exactly its bytes (replicas and tiered objects hold the same
//! batch bytes), or, for a range that ends the segment, may be of any length. The segment is
//! then surveyed again and the range lifted.

use super::checkpoint::replace_file;
use super::recovery::MetaParts;
use super::*;
use crate::segment::DamagedRange;

/// Bases of the segments that hold damaged ranges, one per line.
pub(super) const DAMAGE_FILE: &str = "damaged-segments";
/// How the reason of a range of offsets that no segment file holds starts.
pub(super) const MISSING_REASON: &str = "segment file missing";
const DAMAGE_TMP: &str = "damaged-segments.tmp";

/// What a survey of one segment found.
pub(super) struct Survey {
    /// Fresh indexes of the good batches (an entry right after each damaged range).
    pub(super) idx: SegmentIndex,
    /// The segment's state: size (the torn tail excluded) and next offset.
    pub(super) parts: MetaParts,
    /// The damaged ranges, in order.
    pub(super) damaged: Vec<DamagedRange>,
    /// Where a torn tail starts and why (only without a `bound`).
    pub(super) torn: Option<(u64, String)>,
}

/// Walks the batches in `[0, end)` of `seg` checking framing, CRC-32C and offset continuity,
/// and builds fresh indexes for the good ones. A bad stretch followed by a good batch is a
/// damaged range; a bad stretch that runs to `end` is a damaged range too when `bound` (the
/// offset the segment's records end below: the next segment's base) is given, and otherwise
/// a torn tail — unless it is one complete batch below `durable` (fsynced, so it rotted).
/// With `whole` (the log is not compacted, so a sealed segment's records reach `bound`),
/// offsets from the end of the bytes up to `bound` are a damaged range too (see "A missing
/// segment file" in the module docs).
pub(super) fn survey(
    seg: &Segment,
    end: u64,
    interval: u32,
    bound: Option<i64>,
    durable: i64,
    whole: bool,
) -> Result<Survey> {
    let base = seg.base_offset;
    let mut idx = SegmentIndex::new(base);
    let mut expected = base;
    let (mut max_ts, mut max_ts_offset) = (NO_TIMESTAMP, base);
    let mut damaged = Vec::new();
    let mut torn = None;
    let mut pos = 0;
    let mut size = end;
    // A file cut short (while open, or by someone else) holds fewer bytes than published.
    let avail = end.min(seg.file_len()?);
    while pos < end {
        let scanned = segment::scan(seg, pos, avail, true, |p, h| {
            // Offsets rise from batch to batch; a compacted segment may skip some.
            if h.base_offset < expected {
                return ControlFlow::Break(Some(format!(
                    "base offset {} where {expected} expected",
                    h.base_offset
                )));
            }
            if h.last_offset() - base > i64::from(i32::MAX)
                || bound.is_some_and(|b| h.last_offset() >= b)
            {
                return ControlFlow::Break(Some(format!(
                    "offset {} outside the segment",
                    h.last_offset()
                )));
            }
            idx.add_batch(
                h.base_offset,
                h.last_offset(),
                p,
                h.size(),
                h.max_timestamp,
                interval,
            );
            if h.max_timestamp > max_ts {
                max_ts = h.max_timestamp;
                max_ts_offset = h.base_offset;
            }
            expected = h.last_offset() + 1;
            ControlFlow::Continue(())
        })?;
        let problem = match scanned.problem {
            Some(problem) => problem,
            None if scanned.valid_end < end => {
                format!("the file ends at {avail}, {end} bytes expected")
            }
            None => break,
        };
        let bad = scanned.valid_end;
        if bound.is_some_and(|b| expected >= b) {
            // Bytes after the last offset the segment can hold: nothing to lose there.
            torn = Some((bad, problem));
            size = bad;
            break;
        }
        let limit = bound.unwrap_or(i64::MAX);
        match resync(seg, bad + 1, avail, expected, limit)? {
            Some((next, h)) => {
                damaged.push(DamagedRange {
                    segment_base: base,
                    first_offset: expected,
                    last_offset: h.base_offset - 1,
                    start_pos: bad,
                    end_pos: next,
                    reason: problem,
                });
                idx.entry_at_next();
                pos = next;
            }
            None => {
                let last = match bound {
                    Some(b) => Some(b - 1),
                    None => whole_batch_at(seg, bad, avail, expected)?
                        .filter(|_| expected < durable)
                        .map(|h| h.last_offset()),
                };
                match last {
                    Some(last) => {
                        damaged.push(DamagedRange {
                            segment_base: base,
                            first_offset: expected,
                            last_offset: last,
                            start_pos: bad,
                            end_pos: end,
                            reason: problem,
                        });
                        expected = last + 1;
                    }
                    None => {
                        torn = Some((bad, problem));
                        size = bad;
                    }
                }
                break;
            }
        }
    }
    idx.mark_unpersisted();
    if whole
        && torn.is_none()
        && let Some(b) = bound.filter(|b| expected < *b)
    {
        damaged.push(missing_range(base, expected, b - 1, size));
    }
    let next_offset = bound.map_or(expected, |b| b.max(expected));
    Ok(Survey {
        idx,
        parts: MetaParts {
            size,
            next_offset,
            records_end: expected,
            max_ts,
            max_ts_offset,
        },
        damaged,
        torn,
    })
}

/// The damaged range of offsets `[first, last]` that no segment file holds, at the end
/// (`pos`) of the segment starting at `segment_base` (see "A missing segment file").
pub(super) fn missing_range(segment_base: i64, first: i64, last: i64, pos: u64) -> DamagedRange {
    DamagedRange {
        segment_base,
        first_offset: first,
        last_offset: last,
        start_pos: pos,
        end_pos: pos,
        reason: format!(
            "{MISSING_REASON}: offsets {first}..={last} are in no segment file (one was deleted, or cut short at a batch boundary)"
        ),
    }
}

/// Whether a log in `dir` with `config` may have offsets missing between its segments
/// legitimately: it is compacted, or was (a cleaner checkpoint is left), so a segment may
/// end before the next one starts.
pub(super) fn holes_allowed(dir: &Path, config: &LogConfig) -> bool {
    config.cleanup_compact || dir.join(super::clean::CHECKPOINT_FILE).exists()
}

/// The header of a complete batch at `pos` that ends exactly at `end` and starts at or after
/// `expected`, if there is one (its CRC may be bad).
fn whole_batch_at(seg: &Segment, pos: u64, end: u64, expected: i64) -> Result<Option<BatchHeader>> {
    let mut reader = ChunkReader::with_chunk(seg, end, HEADER_SIZE);
    Ok(reader
        .header(pos)?
        .ok()
        .filter(|h| pos + h.size() == end && h.base_offset >= expected))
}

/// The first position in `[from, end)` where a batch that checks out (framing, CRC-32C) starts
/// with a base offset in `[min_offset, bound)`, and its header. Walks byte by byte, looking
/// only at positions whose magic byte is 2, so it costs about a read of the stretch.
pub(super) fn resync(
    seg: &Segment,
    from: u64,
    end: u64,
    min_offset: i64,
    bound: i64,
) -> Result<Option<(u64, BatchHeader)>> {
    const MAGIC_AT: usize = 16;
    let mut windows = ChunkReader::new(seg, end);
    let mut check = ChunkReader::new(seg, end);
    let mut at = from;
    while at + HEADER_SIZE as u64 <= end {
        let n = ((end - at) as usize).min(segment::CHUNK);
        let window = windows.get(at, n)?;
        for i in 0..=(n - HEADER_SIZE) {
            if window[i + MAGIC_AT] != 2 {
                continue;
            }
            let Ok(h) = BatchHeader::parse(&window[i..i + HEADER_SIZE]) else {
                continue;
            };
            let pos = at + i as u64;
            if h.base_offset < min_offset
                || h.base_offset >= bound
                || h.last_offset_delta < 0
                || h.batch_length < (HEADER_SIZE - batch::LOG_OVERHEAD) as i32
                || pos + h.size() > end
            {
                continue;
            }
            if let Ok(h) = check.header(pos)?
                && check.crc_ok(pos, &h)?
            {
                return Ok(Some((pos, h)));
            }
        }
        if n == HEADER_SIZE {
            break;
        }
        at += (n - HEADER_SIZE + 1) as u64;
    }
    Ok(None)
}

/// Reads `DAMAGE_FILE`: the bases of segments to survey on open (empty when absent or
/// unreadable — the read path finds damage again anyway).
pub(super) fn read_damage_file(dir: &Path) -> Vec<i64> {
    let tmp = dir.join(DAMAGE_TMP);
    if tmp.exists()
        && let Err(e) = fs::remove_file(&tmp)
    {
        warn!(path = %tmp.display(), error = %e, "could not remove a damage file left by a crash");
    }
    match fs::read_to_string(dir.join(DAMAGE_FILE)) {
        Ok(s) => s.lines().filter_map(|l| l.trim().parse().ok()).collect(),
        Err(_) => Vec::new(),
    }
}

impl PartitionLog {
    /// Every quarantined range of the hot tier at or after the log start, oldest first (a
    /// range below it was given up: DeleteRecords moved the start past it).
    pub fn damaged_ranges(&self) -> Vec<DamagedRange> {
        let (segs, start): (Vec<Arc<Segment>>, i64) = {
            let s = rlock(&self.shared);
            (
                s.segments.iter().map(|m| m.seg.clone()).collect(),
                s.log_start(),
            )
        };
        segs.iter()
            .flat_map(|s| s.damaged())
            .filter(|d| d.last_offset >= start)
            .collect()
    }

    /// Whether any segment may hold a damaged range (one atomic load; a segment deleted
    /// since may leave it set until the next change). [`damaged_ranges`](Self::damaged_ranges)
    /// lists them.
    pub fn has_damage(&self) -> bool {
        self.damaged.load(Ordering::Acquire)
    }

    /// The quarantined range holding `offset`, if any.
    pub fn damaged_range_at(&self, offset: i64) -> Option<DamagedRange> {
        let seg = {
            let s = rlock(&self.shared);
            let i = s.segment_for(offset).ok()?;
            s.segments[i].seg.clone()
        };
        seg.damaged().into_iter().find(|d| d.holds(offset))
    }

    /// The scrubber's check of one sealed segment: reads all of it, checking every batch's
    /// framing, CRC-32C and offsets and rebuilding its indexes if they do not match the
    /// batches, and quarantines what is damaged, as a read finding it would. Returns the bytes
    /// read and the segment's damaged ranges; `None` when no sealed segment starts at
    /// `base_offset` (retention deleted it, or it is the active one).
    pub fn scrub_segment(&self, base_offset: i64) -> Result<Option<(u64, Vec<DamagedRange>)>> {
        let _no_truncation = rlock(&self.truncation);
        let meta = {
            let s = rlock(&self.shared);
            let sealed = &s.segments[..s.segments.len().saturating_sub(1)];
            sealed
                .iter()
                .find(|m| m.seg.base_offset == base_offset)
                .cloned()
        };
        match meta {
            Some(meta) => Ok(Some((meta.size, self.survey_meta(&meta, true)?))),
            None => Ok(None),
        }
    }

    /// Base offsets and sizes of the sealed segments, oldest first (what a scrub pass walks).
    pub fn sealed_bases(&self) -> Vec<(i64, u64)> {
        let s = rlock(&self.shared);
        s.segments[..s.segments.len().saturating_sub(1)]
            .iter()
            .map(|m| (m.seg.base_offset, m.size))
            .collect()
    }

    /// Surveys the segment whose `.log` file is `path` (a read found bytes there that should
    /// be valid and are not): records its damaged ranges and, if it is sealed, rebuilds its
    /// indexes. Returns the ranges found (none if the segment is gone).
    pub(super) fn survey_segment_at(&self, path: &Path) -> Result<Vec<DamagedRange>> {
        let found = {
            let s = rlock(&self.shared);
            let n = s.segments.len();
            s.segments
                .iter()
                .enumerate()
                .find(|(_, m)| m.seg.log_path == path)
                .map(|(i, m)| (m.clone(), i + 1 < n))
        };
        match found {
            Some((meta, sealed)) => self.survey_meta(&meta, sealed),
            None => Ok(Vec::new()),
        }
    }

    /// Surveys one published segment up to its committed size (see
    /// [`survey_segment_at`](Self::survey_segment_at)). Caller holds `truncation` shared.
    pub(super) fn survey_meta(
        &self,
        meta: &SegmentMeta,
        sealed: bool,
    ) -> Result<Vec<DamagedRange>> {
        let (interval, whole) = {
            let c = rlock(&self.config);
            (c.index_interval_bytes, !holes_allowed(&self.dir, &c))
        };
        let found = survey(
            &meta.seg,
            meta.size,
            interval,
            Some(meta.next_offset),
            i64::MAX,
            whole,
        )?;
        if sealed {
            // The indexes are rebuilt from the batches, never trusted: replaced (and written)
            // when they differ from the ones in use.
            let mut idx = found.idx;
            idx.seal();
            if !meta.seg.index().same_entries(&idx) {
                warn!(path = %meta.seg.log_path.display(), "segment indexes differ from the batches; rebuilt");
                meta.seg.set_index(idx);
                if let Err(e) = meta.seg.persist_index(false) {
                    warn!(path = %meta.seg.log_path.display(), error = %e, "could not write rebuilt indexes");
                }
            }
        }
        if let Some((pos, problem)) = &found.torn {
            warn!(path = %meta.seg.log_path.display(), position = pos, problem, "bytes after the last offset of a segment fail their check");
        }
        let before = meta.seg.damaged();
        for d in found.damaged.iter().filter(|d| !before.contains(d)) {
            log_quarantined(&meta.seg, d);
        }
        meta.seg.set_damaged(found.damaged.clone());
        if before.is_empty() != found.damaged.is_empty() {
            self.save_damage_file();
        }
        Ok(found.damaged)
    }

    /// Rewrites `DAMAGE_FILE` from the segments' ranges (removes it when there are none).
    /// Best effort: without it the next open after a clean shutdown finds the damage again
    /// only when something reads it.
    pub(super) fn save_damage_file(&self) {
        let mut bases: Vec<i64> = self
            .damaged_ranges()
            .iter()
            .map(|d| d.segment_base)
            .collect();
        bases.dedup();
        self.damaged.store(!bases.is_empty(), Ordering::Release);
        let path = self.dir.join(DAMAGE_FILE);
        let result = if bases.is_empty() {
            match fs::remove_file(&path) {
                Ok(()) => sync_dir(&self.dir),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(Error::io("remove damage file", &path, e)),
            }
        } else {
            let text: String = bases.iter().map(|b| format!("{b}\n")).collect();
            replace_file(&self.dir, DAMAGE_FILE, DAMAGE_TMP, text.as_bytes())
        };
        if let Err(e) = result {
            warn!(dir = %self.dir.display(), error = %e, "could not record the damaged segments");
        }
    }

    /// Repairs the quarantined range holding `first_offset` with `records`, the same batches
    /// from another copy (the tiered object, a replica), in one piece: [`begin_repair`],
    /// [`repair_piece`] and [`finish_repair`]. Returns the ranges still damaged in that
    /// segment.
    ///
    /// [`begin_repair`]: Self::begin_repair
    /// [`repair_piece`]: Self::repair_piece
    /// [`finish_repair`]: Self::finish_repair
    pub fn repair(&self, first_offset: i64, records: &[u8]) -> Result<Vec<DamagedRange>> {
        let mut r = self.begin_repair(first_offset)?;
        self.repair_piece(&mut r, records)?;
        self.finish_repair(r)
    }

    /// Starts a repair of the quarantined range that starts at `first_offset`, written a piece
    /// at a time ([`repair_piece`](Self::repair_piece)) so that healing a range as large as a
    /// segment holds no more than a piece in memory, and lifted by
    /// [`finish_repair`](Self::finish_repair). The range stays quarantined meanwhile: reads
    /// stop before it.
    ///
    /// [`Error::OffsetOutOfRange`] if no range starts at `first_offset`.
    pub fn begin_repair(&self, first_offset: i64) -> Result<RangeRepair> {
        let (meta, sealed, start, end) = {
            let s = rlock(&self.shared);
            let (start, end) = (s.log_start(), s.log_end());
            let n = s.segments.len();
            let i = s.segment_for(first_offset)?;
            (s.segments[i].clone(), i + 1 < n, start, end)
        };
        let Some(range) = meta
            .seg
            .damaged()
            .into_iter()
            .find(|d| d.first_offset == first_offset)
        else {
            return Err(Error::OffsetOutOfRange {
                offset: first_offset,
                start,
                end,
            });
        };
        Ok(RangeRepair {
            to_file_end: range.end_pos == meta.size && sealed,
            pos: range.start_pos,
            next_offset: range.first_offset,
            seg: meta.seg,
            size: meta.size,
            bound: meta.next_offset,
            sealed,
            range,
        })
    }

    /// Writes the next piece of a repair: `records`, batches from another copy that follow
    /// the previous piece's (replicas and tiered objects hold the same batches, byte for
    /// byte). They must pass CRC-32C and lie within the range, and, unless the range runs to
    /// the end of its sealed segment, within its bytes. The segment must be as the repair
    /// found it (not truncated, deleted or, if the range ends it, grown).
    ///
    /// [`Error::InvalidRecord`] / [`Error::CorruptMessage`] if `records` do not fit.
    pub fn repair_piece(&self, r: &mut RangeRepair, records: &[u8]) -> Result<()> {
        let _w = self.writer()?;
        let _no_truncation = rlock(&self.truncation);
        self.repaired_segment(r)?;
        let (max_message_bytes, holes) = {
            let c = rlock(&self.config);
            (c.max_message_bytes, holes_allowed(&self.dir, &c))
        };
        let batches = batch::validate_from(records, max_message_bytes, Origin::Replication)?;
        let (Some(first), Some(last)) = (batches.first(), batches.last()) else {
            return Err(Error::invalid("repair with no batches"));
        };
        // A compacted segment may skip offsets, so there the batches need not start or end
        // exactly at the range's ends (the bytes tell, and the survey afterwards is the
        // judge); elsewhere they must follow on without a gap, or the offsets skipped would
        // read as compacted away.
        let mut expected = r.next_offset;
        let contiguous = batches.iter().all(|b| {
            let follows = b.header.base_offset == expected;
            expected = b.header.last_offset() + 1;
            follows
        });
        let range = &r.range;
        let within = (holes || contiguous)
            && first.header.base_offset >= r.next_offset
            && (last.header.last_offset() <= range.last_offset
                || (r.to_file_end && last.header.last_offset() < r.bound));
        let fits = r.to_file_end || r.pos + records.len() as u64 <= range.end_pos;
        if !within || !fits {
            return Err(Error::invalid(format!(
                "repair of offsets {}..={} (bytes {}..{}) at offset {} (byte {}) with offsets \
                 {}..={} ({} bytes) does not fit",
                range.first_offset,
                range.last_offset,
                range.start_pos,
                range.end_pos,
                r.next_offset,
                r.pos,
                first.header.base_offset,
                last.header.last_offset(),
                records.len()
            )));
        }
        r.seg.write_all_at(records, r.pos)?;
        r.pos += records.len() as u64;
        r.next_offset = last.header.last_offset() + 1;
        Ok(())
    }

    /// Finishes a repair: a range that ran to the end of its segment ends where the last
    /// piece did; the file is fsynced, the segment surveyed again (which lifts what now checks
    /// out: bytes a repair did not reach stay quarantined) and its indexes rebuilt. Returns
    /// the ranges still damaged in that segment.
    pub fn finish_repair(&self, r: RangeRepair) -> Result<Vec<DamagedRange>> {
        let _w = self.writer()?;
        let _no_truncation = rlock(&self.truncation);
        let meta = self.repaired_segment(&r)?;
        if r.pos == r.range.start_pos {
            return Err(Error::invalid("repair with no batches"));
        }
        if r.to_file_end {
            r.seg.truncate(r.pos)?;
        }
        r.seg.sync_log()?;
        let meta = if r.to_file_end && r.pos != meta.size {
            let mut s = wlock(&self.shared);
            let Some(m) = s.segments.iter_mut().find(|m| Arc::ptr_eq(&m.seg, &r.seg)) else {
                return Ok(Vec::new());
            };
            m.size = r.pos;
            m.clone()
        } else {
            meta
        };
        let left = self.survey_meta(&meta, r.sealed)?;
        if left.iter().all(|d| d.first_offset != r.range.first_offset) {
            info!(
                path = %meta.seg.log_path.display(),
                first_offset = r.range.first_offset,
                last_offset = r.range.last_offset,
                "damaged range repaired"
            );
        }
        Ok(left)
    }

    /// The segment a repair writes to, if it is as the repair found it: still in the log and
    /// not truncated (nor, for a range that ends it, grown). Caller holds `writer` and
    /// `truncation`.
    fn repaired_segment(&self, r: &RangeRepair) -> Result<SegmentMeta> {
        let s = rlock(&self.shared);
        let meta = s
            .segments
            .iter()
            .find(|m| Arc::ptr_eq(&m.seg, &r.seg))
            .filter(|m| {
                if r.to_file_end {
                    m.size == r.size
                } else {
                    m.size >= r.range.end_pos
                }
            });
        meta.cloned().ok_or_else(|| {
            Error::invalid(format!(
                "the segment of damaged offsets {}..={} changed during their repair",
                r.range.first_offset, r.range.last_offset
            ))
        })
    }
}

/// A repair of one damaged range in progress (see [`PartitionLog::begin_repair`]).
#[derive(Debug)]
pub struct RangeRepair {
    range: DamagedRange,
    seg: Arc<Segment>,
    /// The segment's committed size when the repair began.
    size: u64,
    /// The offset the segment's records end below (the next segment's base).
    bound: i64,
    sealed: bool,
    /// The range runs to the end of its sealed segment: the copy may be of any length.
    to_file_end: bool,
    /// Where the next piece goes.
    pos: u64,
    /// The lowest base offset the next piece may start at.
    next_offset: i64,
}

impl RangeRepair {
    /// The range being repaired.
    pub fn range(&self) -> &DamagedRange {
        &self.range
    }

    /// The offset the next piece starts at (after the last piece written).
    pub fn next_offset(&self) -> i64 {
        self.next_offset
    }
}

/// Logs a damaged range found and quarantined.
pub(super) fn log_quarantined(seg: &Segment, d: &DamagedRange) {
    warn!(
        path = %seg.log_path.display(),
        first_offset = d.first_offset,
        last_offset = d.last_offset,
        start_pos = d.start_pos,
        end_pos = d.end_pos,
        reason = %d.reason,
        "damaged range in the middle of the log; quarantined (reads of it fail, the offsets around it stay readable)"
    );
}

impl DamagedRange {
    /// The error a read of this range answers.
    pub(super) fn error(&self, seg: &Segment) -> Error {
        Error::Damaged {
            path: seg.log_path.clone(),
            first_offset: self.first_offset,
            last_offset: self.last_offset,
            reason: self.reason.clone(),
        }
    }
}
