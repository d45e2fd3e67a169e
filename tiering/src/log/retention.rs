//! Deleting from the front of the log: local retention by time and size (only below the
//! tiered end when tiering is on) and DeleteRecords' `advance_log_start`. Only ever a prefix
//! goes, so the log keeps no holes.

use super::checkpoint::write_log_start;
use super::*;

impl PartitionLog {
    /// Rolls the active segment if `segment_ms` says so, then deletes the oldest sealed
    /// segments that retention allows to go, and returns how many it deleted. The active
    /// segment is never deleted; neither is anything but a prefix of the log (no holes).
    ///
    /// - `remote_storage` off: a segment goes when its newest record is older than
    ///   `retention_ms` (by the segment's largest timestamp; its file mtime if it has none) or
    ///   while the log without it is still at least `retention_bytes`.
    /// - `remote_storage` on: the same with the *local* limits (the smaller of
    ///   `local_retention_*` and `retention_*`), and only for segments entirely below
    ///   [`tiered_end`](Self::tiered_end): a segment not yet in object storage is never deleted
    ///   here, so nothing acknowledged is lost while the object store is down. Deleting tiered
    ///   data past `retention_*` is remote retention's job.
    ///
    /// Either way, segments entirely below a log start moved by
    /// [`advance_log_start`](Self::advance_log_start) go too. Advances the log start offset.
    pub fn enforce_retention(&self, now_ms: i64) -> Result<usize> {
        let mut w = lock(&self.writer);
        if w.closed {
            return Ok(0);
        }
        let config = rlock(&self.config).clone();
        let active = rlock(&self.shared).active()?.clone();
        if self.should_roll(&w, &config, &active, 0, 0, now_ms) {
            self.roll(&mut w)?;
        }
        let (metas, floor) = {
            let s = rlock(&self.shared);
            (s.segments.clone(), s.start_floor)
        };
        let sealed = &metas[..metas.len().saturating_sub(1)];
        let below_floor = sealed.iter().take_while(|m| m.next_offset <= floor).count();
        let by_retention = if config.remote_storage {
            let tiered_end = self.tiered_end();
            let tiered = sealed
                .iter()
                .take_while(|m| m.next_offset <= tiered_end)
                .count();
            retention_prefix(
                &metas,
                config.local_retention_ms_i64(),
                config.local_retention_bytes_eff(),
                now_ms,
            )
            .min(tiered)
        } else {
            retention_prefix(
                &metas,
                config.retention_ms_i64(),
                config.retention_bytes_eff(),
                now_ms,
            )
        };
        let n = by_retention.max(below_floor);
        if n == 0 {
            return Ok(0);
        }
        let removed: Vec<SegmentMeta> = {
            let mut s = wlock(&self.shared);
            s.segments.drain(..n).collect()
        };
        drop(w);
        let start = self.log_start_offset();
        self.update_epochs(true, |c| c.truncate_from_start(start))?;
        info!(
            dir = %self.dir.display(),
            deleted = n,
            log_start_offset = self.log_start_offset(),
            remote_storage = config.remote_storage,
            "retention deleted segments"
        );
        self.delete_segments(&removed)?;
        self.prune_snapshots()?;
        Ok(n)
    }

    /// Deletes the files of segments already removed from the published list, then fsyncs the
    /// directory. Returns the first error after trying them all.
    pub(super) fn delete_segments(&self, removed: &[SegmentMeta]) -> Result<()> {
        let mut first_err = None;
        for m in removed {
            if Arc::strong_count(&m.seg) > 1 {
                // A reader may still be reading it: keep its file open past the unlink.
                m.seg.pin();
            }
            if let Err(e) = m.seg.delete_files() {
                warn!(error = %e, "deleting segment files failed");
                first_err.get_or_insert(e);
            }
        }
        sync_dir(&self.dir)?;
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// DeleteRecords: moves the log start forward to `offset` (never back) and deletes the
    /// local segments entirely below it; reads below it then fail with
    /// [`Error::OffsetOutOfRange`]. The new start is persisted (fsynced) before it is
    /// published, so it survives a crash. An active segment entirely below `offset`
    /// (`offset` = log end) is rolled first so it can go too. `offset` beyond the log end is
    /// [`Error::OffsetOutOfRange`]. Returns the log start offset now in effect (the current one
    /// when `offset` is not past it, e.g. when it lies in the tiered range).
    pub fn advance_log_start(&self, offset: i64) -> Result<i64> {
        let mut w = self.writer()?;
        let (start, end, active) = {
            let s = rlock(&self.shared);
            (s.log_start(), s.log_end(), s.active()?.clone())
        };
        if offset > end {
            return Err(Error::OffsetOutOfRange { offset, start, end });
        }
        if offset <= start {
            return Ok(start);
        }
        write_log_start(&self.dir, offset)?;
        if active.size > 0 && active.next_offset <= offset {
            self.roll(&mut w)?;
        }
        let removed: Vec<SegmentMeta> = {
            let mut s = wlock(&self.shared);
            s.start_floor = offset;
            let sealed = s.segments.len().saturating_sub(1);
            let n = s.segments[..sealed]
                .iter()
                .take_while(|m| m.next_offset <= offset)
                .count();
            s.segments.drain(..n).collect()
        };
        drop(w);
        self.update_epochs(true, |c| c.truncate_from_start(offset))?;
        info!(
            dir = %self.dir.display(),
            log_start_offset = offset,
            deleted = removed.len(),
            "log start advanced"
        );
        if !removed.is_empty() {
            self.delete_segments(&removed)?;
        }
        if self.has_damage() {
            // Damage below the new start is given up (the operator accepted the loss).
            self.save_damage_file();
        }
        self.prune_snapshots()?;
        Ok(self.log_start_offset())
    }
}

/// How many of the oldest sealed segments of `metas` (whose last is the active segment)
/// retention by time (`retention_ms`, by largest timestamp, mtime without one) or by size
/// (while the log without the segment is still at least `retention_bytes`) lets go.
fn retention_prefix(
    metas: &[SegmentMeta],
    retention_ms: Option<i64>,
    retention_bytes: Option<u64>,
    now_ms: i64,
) -> usize {
    let sealed = metas.len().saturating_sub(1);
    let mut by_time = 0;
    if let Some(ret) = retention_ms {
        while by_time < sealed {
            let m = &metas[by_time];
            // No (or the producer's "no timestamp" -1) timestamps: fall back to the file's
            // mtime, as Kafka does.
            let newest = if m.max_ts < 0 {
                m.seg.modified_ms().unwrap_or(now_ms)
            } else {
                m.max_ts
            };
            if now_ms.saturating_sub(newest) <= ret {
                break;
            }
            by_time += 1;
        }
    }
    let mut by_size = 0;
    if let Some(limit) = retention_bytes {
        let total: u64 = metas.iter().map(|m| m.size).sum();
        let mut excess = total.saturating_sub(limit);
        while by_size < sealed && excess >= metas[by_size].size {
            excess -= metas[by_size].size;
            by_size += 1;
        }
    }
    by_time.max(by_size)
}
