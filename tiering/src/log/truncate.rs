//! Cutting the log back for replication: `truncate_to` (a follower diverged from its leader)
//! and `truncate_fully_and_start_at` (a follower far behind the leader's log start). Readers
//! hold the `truncation` lock shared, so a file never shrinks under them.

use super::checkpoint::write_log_start;
use super::damage::survey;
use super::recovery::empty_segment;
use super::*;

impl PartitionLog {
    /// Follower truncation: removes every record at or after `offset` and returns the new log
    /// end offset. Batches are never split: if `offset` falls inside a batch, the log is cut
    /// at that batch's base offset. `offset >= log_end_offset()` changes nothing.
    ///
    /// [`Error::OffsetOutOfRange`] if `offset` (or the base of the batch holding it, when
    /// DeleteRecords moved the start inside a batch) is below
    /// [`log_start_offset`](Self::log_start_offset): then the caller empties the log with
    /// [`truncate_fully_and_start_at`](Self::truncate_fully_and_start_at).
    ///
    /// Later segments are deleted, the cut segment's file is shortened and its indexes
    /// rebuilt, and it becomes the active segment. Leader-epoch entries starting at or after
    /// the new end are dropped, the tiered end and the durable offset are lowered to it if
    /// they were above, and everything (the segment, the directory, the recovery point) is
    /// fsynced before returning. Reads wait while files are shortened. The uploader of this
    /// partition must not run meanwhile (a follower does not upload).
    pub fn truncate_to(&self, offset: i64) -> Result<i64> {
        let mut w = self.writer()?;
        let _flush = lock(&self.flush_lock);
        let (start, end, i, meta) = {
            let s = rlock(&self.shared);
            let (start, end) = (s.log_start(), s.log_end());
            if offset >= end {
                return Ok(end);
            }
            if offset < start {
                return Err(Error::OffsetOutOfRange { offset, start, end });
            }
            let i = s.segment_for(offset)?;
            (start, end, i, s.segments[i].clone())
        };
        // No batch of the segment reaches `offset` (its tail was compacted away): the
        // segment stays whole and the log ends at `offset`.
        // Inside a damaged range the cut is at its start (its bytes frame no batch).
        let damage = meta.seg.damaged();
        let (cut_pos, cut, in_hole) = match damage.iter().find(|d| d.holds(offset)) {
            Some(d) => (d.start_pos, d.first_offset, false),
            None => match locate_opt(&meta, offset, READ_CHUNK)? {
                Some((_, pos, batch)) => (pos, batch.base_offset, false),
                None => (meta.size, offset, true),
            },
        };
        if cut < start {
            return Err(Error::OffsetOutOfRange {
                offset: cut,
                start,
                end,
            });
        }
        // Cut at the very start of a segment that is not the first: the segment goes whole and
        // the one before it becomes active again, unchanged. Otherwise the segment is cut.
        let drop_whole = cut_pos == 0 && i > 0 && !in_hole;
        let rebuilt = if drop_whole || in_hole {
            None
        } else {
            // Damage below the cut stays quarantined in the shortened segment.
            let interval = rlock(&self.config).index_interval_bytes;
            let found = survey(&meta.seg, cut_pos, interval, Some(cut), i64::MAX, false)?;
            meta.seg.set_damaged(found.damaged);
            Some((found.idx, found.parts))
        };

        let keep = if drop_whole { i } else { i + 1 };
        let truncating = wlock(&self.truncation);
        // The later segments go, newest first and durably (the directory is fsynced), before
        // the cut one is shortened, so a crash midway leaves a prefix of the log, never a
        // segment that ends short of the next one, which the next open would take for a
        // missing segment file.
        let doomed: Vec<SegmentMeta> = rlock(&self.shared).segments[keep..]
            .iter()
            .rev()
            .cloned()
            .collect();
        if !doomed.is_empty() {
            self.delete_segments(&doomed)?;
        }
        let removed: Vec<SegmentMeta> = {
            let cut_meta = match rebuilt {
                Some((idx, parts)) => {
                    meta.seg.truncate(cut_pos)?;
                    meta.seg.set_index(idx);
                    Some(parts.into_meta(meta.seg.clone()))
                }
                None => None,
            };
            let mut s = wlock(&self.shared);
            if let Some(m) = cut_meta {
                s.segments[i] = m;
            }
            if in_hole {
                s.segments[i].next_offset = cut;
            }
            let removed: Vec<SegmentMeta> = s.segments.drain(keep..).collect();
            s.unsynced
                .retain(|seg| !removed.iter().any(|m| Arc::ptr_eq(&m.seg, seg)));
            removed
        };
        drop(truncating);
        if !damage.is_empty() || removed.iter().any(|m| m.seg.is_damaged()) {
            self.save_damage_file();
        }
        w.roll_base_ms = roll_base_of(rlock(&self.shared).active()?)?;
        self.settle_truncation(cut)?;
        self.update_epochs(true, |c| c.truncate_from_end(cut))?;
        // A batch cut away may be appended again: the state must not remember it.
        self.rebuild_producers(None)?;
        drop(w);
        info!(
            dir = %self.dir.display(),
            requested = offset,
            log_end_offset = cut,
            previous_end = end,
            deleted_segments = removed.len(),
            "truncated log"
        );
        Ok(cut)
    }

    /// Kafka's `truncateFullyAndStartAt`: deletes every segment and restarts the log, empty,
    /// at `offset` (which may lie below or above the old log), which becomes both the log
    /// start and the log end. The leader-epoch cache is emptied, the tiered end lowered to
    /// `offset` if it was above, and everything is durable before returning. A crash midway
    /// leaves an empty log, starting at `offset` or at the previous log start.
    /// [`Error::OffsetOutOfRange`] for a negative `offset`.
    pub fn truncate_fully_and_start_at(&self, offset: i64) -> Result<()> {
        let mut w = self.writer()?;
        let (start, end, old) = {
            let s = rlock(&self.shared);
            (s.log_start(), s.log_end(), s.segments.clone())
        };
        if offset < 0 {
            return Err(Error::OffsetOutOfRange { offset, start, end });
        }
        let _flush = lock(&self.flush_lock);
        let truncating = wlock(&self.truncation);
        // The epoch file goes first: if a crash comes before the segments are gone, the next
        // open rebuilds the cache from whatever batches survived.
        let epoch_path = self.dir.join(EPOCH_FILE);
        match fs::remove_file(&epoch_path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("remove leader epoch checkpoint", &epoch_path, e)),
        }
        // Emptied in memory only: a missing file is what an empty log rebuilds to, and the
        // next new epoch writes it again.
        *lock(&self.epochs) = EpochCache::default();
        self.latest_epoch.store(-1, Ordering::Release);
        self.delete_segments(&old)?;
        write_log_start(&self.dir, offset)?;
        let fresh = empty_segment(&self.dir, offset)?;
        sync_dir(&self.dir)?;
        {
            let mut s = wlock(&self.shared);
            s.segments = vec![fresh];
            s.unsynced.clear();
            s.dir_dirty = false;
            s.start_floor = offset;
        }
        drop(truncating);
        w.roll_base_ms = None;
        self.settle_truncation(offset)?;
        self.reset_producers()?;
        drop(w);
        info!(
            dir = %self.dir.display(),
            log_start_offset = offset,
            previous_start = start,
            previous_end = end,
            deleted_segments = old.len(),
            "truncated the whole log and restarted it"
        );
        Ok(())
    }

    /// After a truncation to `end`: lowers the tiered end and the durable offset to it if
    /// they were above (offsets re-fetched below the old tiered end count as tiered again
    /// only when the uploader reports them), fsyncs everything (which raises the durable
    /// offset back to `end`), and fsyncs the recovery point, so that it is never above data
    /// that a later crash could lose. Caller holds `writer` and `flush_lock`.
    fn settle_truncation(&self, end: i64) -> Result<()> {
        self.tiered_end.fetch_min(end, Ordering::AcqRel);
        self.durable.fetch_min(end, Ordering::AcqRel);
        self.flush_locked()?;
        let rp = self.dir.join(RECOVERY_POINT_FILE);
        File::open(&rp)
            .and_then(|f| f.sync_data())
            .map_err(|e| Error::io("fsync recovery point", &rp, e))
    }
}
