//! Opening a log directory: listing and loading its segments, and recovering after a crash
//! (see "Recovery" in the parent module's docs): the CRC-checked scans that truncate a torn
//! tail, the quick load from index files after a clean shutdown, and applying a persisted
//! DeleteRecords log start.

use super::checkpoint::{read_log_start, read_recovery_point};
use super::damage::{holes_allowed, log_quarantined, missing_range, read_damage_file, survey};
use super::*;

impl PartitionLog {
    /// Opens (creating if needed) the log in `dir`, recovering after a crash: segments that
    /// may hold unflushed data are validated batch by batch with CRC-32C, a torn or corrupt
    /// tail is truncated, and missing or damaged index files are rebuilt. After a clean
    /// [`close`](Self::close) only the tail of each segment past its last index entry is
    /// checked.
    pub fn open(dir: &Path, config: LogConfig) -> Result<PartitionLog> {
        Self::open_at(dir, config, 0)
    }

    /// Like [`open`](Self::open), but if the directory holds no segment the empty log starts
    /// at `start_offset`: a node with an empty disk taking over a partition whose history is
    /// tiered continues after the tiered end. Ignored when segments exist.
    pub fn open_at(dir: &Path, config: LogConfig, start_offset: i64) -> Result<PartitionLog> {
        Self::open_at_with_producers(dir, config, start_offset, None)
    }

    /// Like [`open_at`](Self::open_at), with the bytes of a producer-state snapshot from
    /// elsewhere (the one uploaded with the newest tiered segment) to start from instead of
    /// an empty state, when it is newer than any local snapshot and not past the log end. An
    /// unreadable `snapshot` is ignored with a warning.
    pub fn open_at_with_producers(
        dir: &Path,
        config: LogConfig,
        start_offset: i64,
        snapshot: Option<&[u8]>,
    ) -> Result<PartitionLog> {
        config.validate()?;
        if start_offset < 0 {
            return Err(Error::InvalidConfig {
                reason: format!("start offset {start_offset} must not be negative"),
            });
        }
        // A new directory's entry (and its files') become durable with the first flush: an
        // empty log has nothing to lose, and creating thousands of partitions costs no fsync.
        let created = !dir.exists();
        fs::create_dir_all(dir).map_err(|e| Error::io("create log directory", dir, e))?;
        let dir_claim = DirClaim::take(dir)?;
        let marker = dir.join(CLEAN_SHUTDOWN_FILE);
        let clean = marker.exists();
        let recovery_point = if clean {
            i64::MAX
        } else {
            read_recovery_point(&dir.join(RECOVERY_POINT_FILE))
        };
        debug!(dir = %dir.display(), clean, recovery_point, "opening partition log");

        let floor = read_log_start(dir)?;
        let (mut segments, mut scanned, mut dir_dirty) =
            recover(dir, &config, recovery_point, start_offset.max(floor))?;
        if floor > 0 && apply_floor(dir, &mut segments, floor)? {
            dir_dirty = true;
            let first = segments.first().map_or(0, |m| m.seg.base_offset);
            scanned.retain(|s| s.base_offset >= first);
        }
        let last = segments.last().ok_or_else(|| Error::Internal {
            reason: "recovery produced no segments".into(),
        })?;
        let roll_base_ms = roll_base_of(last)?;
        let end = last.next_offset;

        if clean {
            fs::remove_file(&marker).map_err(|e| Error::io("remove marker", &marker, e))?;
            // The marker's removal must be durable before any append: a stale marker would
            // make the next recovery trust a torn tail.
            sync_dir(dir)?;
        }
        let fresh = created && scanned.is_empty() && last.size == 0;
        let needs_flush = !fresh && (!scanned.is_empty() || dir_dirty || !clean);
        let log = PartitionLog {
            dir: dir.to_path_buf(),
            config: RwLock::new(config),
            writer: Mutex::new(Writer {
                closed: false,
                roll_base_ms,
            }),
            shared: RwLock::new(Shared {
                segments,
                unsynced: scanned,
                dir_dirty,
                parent_dirty: created,
                start_floor: floor,
            }),
            flush_lock: Mutex::new(()),
            durable: AtomicI64::new(if clean || fresh { end } else { 0 }),
            tiered_end: AtomicI64::new(0),
            damaged: AtomicBool::new(false),
            verify_reads: AtomicBool::new(true),
            epochs: Mutex::new(EpochCache::default()),
            latest_epoch: AtomicI32::new(-1),
            truncation: RwLock::new(()),
            producers: Mutex::new(ProducerState::default()),
            _dir_claim: dir_claim,
        };
        if needs_flush {
            log.flush()?;
        }
        if !log.damaged_ranges().is_empty() || dir.join(super::damage::DAMAGE_FILE).exists() {
            log.save_damage_file();
        }
        log.load_epochs()?;
        log.rebuild_producers(snapshot)?;
        Ok(log)
    }
}

/// What loading one segment found.
struct Loaded {
    meta: SegmentMeta,
    /// One past the last offset its bytes hold (see [`MetaParts::records_end`]).
    records_end: i64,
    /// The segment was scanned (its data may not be durable yet).
    scanned: bool,
}

/// Lists segment base offsets (sorted) and removes index files without a log file.
fn list_segments(dir: &Path) -> Result<Vec<u64>> {
    let mut bases = Vec::new();
    let mut indexes = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| Error::io("list log directory", dir, e))? {
        let entry = entry.map_err(|e| Error::io("list log directory", dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(base) = segment::parse_log_name(name) {
            bases.push(base as u64);
        } else if let Some((stem, ext)) = name.rsplit_once('.')
            && [
                segment::INDEX_SUFFIX,
                segment::TIME_INDEX_SUFFIX,
                segment::TXN_INDEX_SUFFIX,
            ]
            .contains(&ext)
            && let Some(base) = segment::parse_log_name(&format!("{stem}.log"))
        {
            indexes.push((base as u64, entry.path()));
        }
    }
    bases.sort_unstable();
    for (base, path) in indexes {
        if bases.binary_search(&base).is_err() {
            warn!(path = %path.display(), "removing orphan index file");
            fs::remove_file(&path).map_err(|e| Error::io("remove orphan index", &path, e))?;
        }
    }
    Ok(bases)
}

/// Loads every segment (see the module docs). Returns the segments, those that were
/// scanned (their data may not be durable), and whether the directory changed.
type Recovered = (Vec<SegmentMeta>, Vec<Arc<Segment>>, bool);

/// `start_offset` is where an empty log starts.
fn recover(
    dir: &Path,
    config: &LogConfig,
    recovery_point: i64,
    start_offset: i64,
) -> Result<Recovered> {
    let mut dir_dirty = super::clean::recover_swaps(dir)?;
    let bases: Vec<i64> = list_segments(dir)?.into_iter().map(|b| b as i64).collect();
    // Segments known to hold damage are surveyed whatever the shutdown was like.
    let damaged = read_damage_file(dir);
    // Offsets missing between two segments of a log that is not compacted were in a segment
    // file that is gone (or in the cut-off tail of the one before).
    let holes_allowed = holes_allowed(dir, config);
    let mut segments: Vec<SegmentMeta> = Vec::with_capacity(bases.len().max(1));
    let mut scanned = Vec::new();
    // One past the last offset the bytes of the last segment loaded hold.
    let mut records_end = None;
    for (i, &base) in bases.iter().enumerate() {
        // A compacted segment may end before the next one starts (its last records were
        // cleaned away), so offsets may jump between segments, but never go back.
        if let Some(prev) = segments.last()
            && prev.next_offset > base
        {
            warn!(
                dir = %dir.display(),
                expected = prev.next_offset,
                found = base,
                dropped = bases.len() - i,
                "offsets do not continue into the next segment; deleting it and all later segments"
            );
            for &b in &bases[i..] {
                let (seg, _) = Segment::open(dir, b)?;
                seg.delete_files()?;
            }
            dir_dirty = true;
            break;
        }
        if !holes_allowed && let Some(end) = records_end.filter(|e| *e < base) {
            dir_dirty |= contain_missing(dir, &mut segments, end, base)?;
        }
        // A sealed segment's records end below the next segment's base; damage in it (or
        // anywhere but the very end of the last segment) is quarantined, not truncated.
        let bound = bases.get(i + 1).copied();
        // Everything in a segment is below the recovery point iff the next segment starts
        // at or below it.
        let trusted = (bound.is_some_and(|next| next <= recovery_point)
            || recovery_point == i64::MAX)
            && !damaged.contains(&base);
        let (seg, had_index) = Segment::open(dir, base)?;
        let loaded = load_segment(
            seg,
            had_index,
            trusted,
            bound,
            recovery_point,
            config.index_interval_bytes,
        )?;
        if loaded.scanned {
            scanned.push(loaded.meta.seg.clone());
        }
        records_end = Some(loaded.records_end);
        segments.push(loaded.meta);
    }
    // A sealed segment ends where the next one starts (its tail may have been cleaned).
    for i in 1..segments.len() {
        let next_base = segments[i].seg.base_offset;
        segments[i - 1].next_offset = segments[i - 1].next_offset.max(next_base);
    }
    if segments.is_empty() {
        segments.push(empty_segment(dir, start_offset)?);
        dir_dirty = true;
    }
    Ok((segments, scanned, dir_dirty))
}

/// Offsets `[end, base)` of a log that is not compacted are in no segment file: the file
/// that held them was deleted (or the segment before was cut short at a batch boundary).
/// Quarantines them as one damaged range ending the segment before `base` — in a new empty
/// placeholder segment at `end`, or in the last segment if it is empty already (a
/// placeholder an earlier open made, not repaired since) — so that reads of them fail
/// instead of skipping to `base`, and a repair fills them (see "A missing segment file" in
/// `damage.rs`). Returns whether a file was created.
fn contain_missing(
    dir: &Path,
    segments: &mut Vec<SegmentMeta>,
    end: i64,
    base: i64,
) -> Result<bool> {
    let created = match segments.last_mut() {
        None => return Ok(false),
        Some(prev) if prev.size == 0 => false,
        Some(prev) => {
            prev.next_offset = end;
            true
        }
    };
    if created {
        segments.push(empty_segment(dir, end)?);
    }
    let Some(m) = segments.last_mut() else {
        return Ok(created);
    };
    m.next_offset = base;
    m.seg.index().seal();
    let range = missing_range(m.seg.base_offset, end, base - 1, m.size);
    warn!(
        dir = %dir.display(),
        first_offset = end,
        last_offset = base - 1,
        placeholder = %m.seg.log_path.display(),
        "offsets missing between two segments: a segment file is gone"
    );
    log_quarantined(&m.seg, &range);
    let mut damaged = m.seg.damaged();
    damaged.push(range);
    m.seg.set_damaged(damaged);
    Ok(created)
}

pub(super) fn empty_segment(dir: &Path, base_offset: i64) -> Result<SegmentMeta> {
    Ok(SegmentMeta {
        seg: Arc::new(Segment::create(dir, base_offset)?),
        size: 0,
        next_offset: base_offset,
        max_ts: NO_TIMESTAMP,
        max_ts_offset: base_offset,
    })
}

/// Applies a persisted DeleteRecords log start after recovery: deletes the segments entirely
/// below it (a crash came between persisting it and deleting them), and if the whole log is
/// below it (recovery truncated past it, or the crash came before the roll) starts an empty
/// log at it. Returns whether the directory changed.
fn apply_floor(dir: &Path, segments: &mut Vec<SegmentMeta>, floor: i64) -> Result<bool> {
    let end = segments.last().map_or(0, |m| m.next_offset);
    let n = if end < floor || (end == floor && segments.last().is_some_and(|m| m.size > 0)) {
        segments.len()
    } else {
        let sealed = segments.len().saturating_sub(1);
        segments[..sealed]
            .iter()
            .take_while(|m| m.next_offset <= floor)
            .count()
    };
    if n == 0 {
        return Ok(false);
    }
    info!(dir = %dir.display(), floor, deleted = n, "deleting segments below the log start");
    for m in segments.drain(..n) {
        m.seg.delete_files()?;
    }
    if segments.is_empty() {
        segments.push(empty_segment(dir, floor)?);
    }
    Ok(true)
}

fn load_segment(
    seg: Segment,
    had_index: bool,
    trusted: bool,
    bound: Option<i64>,
    durable: i64,
    interval: u32,
) -> Result<Loaded> {
    let file_len = seg.file_len()?;
    if trusted && had_index {
        if let Some(parts) = quick_load(&seg, file_len, interval)? {
            if bound.is_some() {
                seg.index().seal();
            }
            return Ok(Loaded {
                records_end: parts.records_end,
                meta: parts.into_meta(Arc::new(seg)),
                scanned: false,
            });
        }
        warn!(path = %seg.log_path.display(), "index files damaged; rebuilding them by a full scan");
    }
    let parts = full_scan(&seg, file_len, bound, durable, interval)?;
    Ok(Loaded {
        records_end: parts.records_end,
        meta: parts.into_meta(Arc::new(seg)),
        scanned: true,
    })
}

/// Published state of a segment being loaded, before it is wrapped in an `Arc`.
pub(super) struct MetaParts {
    pub(super) size: u64,
    pub(super) next_offset: i64,
    /// One past the last offset the segment's bytes hold (a damaged range among them
    /// counts): below `next_offset` when offsets after them are in no segment file.
    pub(super) records_end: i64,
    pub(super) max_ts: i64,
    pub(super) max_ts_offset: i64,
}

impl MetaParts {
    pub(super) fn into_meta(self, seg: Arc<Segment>) -> SegmentMeta {
        SegmentMeta {
            seg,
            size: self.size,
            next_offset: self.next_offset,
            max_ts: self.max_ts,
            max_ts_offset: self.max_ts_offset,
        }
    }
}

/// Loads a segment trusted to be intact from its index files: sanity-checks them, then scans
/// (with CRC) only from the batch of the last time-index entry to the end, extending the
/// indexes as the appender would have. `None` when anything looks wrong.
fn quick_load(seg: &Segment, file_len: u64, interval: u32) -> Result<Option<MetaParts>> {
    let base = seg.base_offset;
    let (offset_bytes, time_bytes) = seg.read_index_files()?;
    let Some(mut idx) = SegmentIndex::from_files(base, &offset_bytes, &time_bytes, file_len) else {
        return Ok(None);
    };
    // The last offset entry must point at the start of the batch it names.
    if let Some(entry) = idx.last_offset_entry() {
        let pos = u64::from(entry.pos);
        if pos + HEADER_SIZE as u64 > file_len {
            return Ok(None);
        }
        let mut h = [0u8; HEADER_SIZE];
        seg.read_exact_at(&mut h, pos)?;
        if BatchHeader::parse(&h)?.base_offset != base + i64::from(entry.rel) {
            return Ok(None);
        }
    }
    let last_time = idx.last_time_entry();
    let resume = last_time.map_or(0, |t| idx.lookup(base + i64::from(t.rel)));
    let last_entry_pos = idx.last_entry_pos();
    let mut expected = (resume == 0).then_some(base);
    let mut next_offset = None;
    let (mut scan_max, mut scan_max_offset) = (NO_TIMESTAMP, base);
    let end = segment::scan(seg, resume, file_len, true, |pos, h| {
        // Offsets rise from batch to batch; a compacted segment may skip some.
        if let Some(e) = expected
            && h.base_offset < e
        {
            return ControlFlow::Break(Some(format!(
                "base offset {} where {e} expected",
                h.base_offset
            )));
        }
        if h.base_offset < base || h.last_offset() - base > i64::from(i32::MAX) {
            return ControlFlow::Break(Some(format!(
                "offset {} outside the segment",
                h.base_offset
            )));
        }
        match last_entry_pos {
            Some(p) if pos < p => idx.observe(h.last_offset(), h.max_timestamp),
            Some(p) if pos == p => {
                idx.observe(h.last_offset(), h.max_timestamp);
                idx.restart_interval(h.size());
            }
            _ => idx.add_batch(
                h.base_offset,
                h.last_offset(),
                pos,
                h.size(),
                h.max_timestamp,
                interval,
            ),
        }
        if h.max_timestamp > scan_max {
            scan_max = h.max_timestamp;
            scan_max_offset = h.base_offset;
        }
        expected = Some(h.last_offset() + 1);
        next_offset = expected;
        ControlFlow::Continue(())
    })?;
    if end.problem.is_some() || end.valid_end != file_len {
        return Ok(None);
    }
    let next_offset = match next_offset {
        Some(n) => n,
        None if file_len == 0 => base,
        None => return Ok(None),
    };
    if last_time.is_some_and(|t| base + i64::from(t.rel) >= next_offset) {
        return Ok(None);
    }
    let max_ts = idx.max_ts();
    let max_ts_offset = if scan_max == max_ts {
        scan_max_offset
    } else {
        // The maximum lies before the scanned tail; the entry's offset is at or after it.
        last_time.map_or(base, |t| base + i64::from(t.rel))
    };
    seg.set_index(idx);
    Ok(Some(MetaParts {
        size: file_len,
        next_offset,
        records_end: next_offset,
        max_ts,
        max_ts_offset,
    }))
}

/// Surveys a whole segment (`damage.rs`): CRC and offset-continuity checks, damaged ranges
/// quarantined, a torn tail (only ever at the end of the last segment, or bytes past a sealed
/// segment's last offset) truncated, indexes rebuilt.
fn full_scan(
    seg: &Segment,
    file_len: u64,
    bound: Option<i64>,
    durable: i64,
    interval: u32,
) -> Result<MetaParts> {
    // Missing offsets are found by `recover`, which sees the segments around this one.
    let found = survey(seg, file_len, interval, bound, durable, false)?;
    let mut idx = found.idx;
    if let Some((pos, problem)) = &found.torn {
        warn!(
            path = %seg.log_path.display(),
            position = pos,
            file_len,
            problem = %problem,
            "truncating torn segment tail"
        );
        seg.truncate(*pos)?;
    }
    for d in &found.damaged {
        log_quarantined(seg, d);
    }
    if bound.is_some() {
        idx.seal();
    }
    seg.set_index(idx);
    seg.set_damaged(found.damaged);
    seg.persist_index(false)?;
    debug!(path = %seg.log_path.display(), size = found.parts.size, next_offset = found.parts.next_offset, "scanned segment");
    Ok(found.parts)
}
