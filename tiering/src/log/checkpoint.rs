//! What the log persists besides segments, and when: flushing (and the recovery point it
//! moves), the leader-epoch cache and its checkpoint file, the DeleteRecords log start, and the
//! clean-shutdown marker written by `close`. Each small file is replaced atomically
//! ([`replace_file`]) or carries its own CRC, so a crash leaves the old value or the new one.

use super::*;

impl PartitionLog {
    /// Loads the leader-epoch cache after recovery: from its file, or, when the file is
    /// missing or damaged, from the batch headers. Entries at or after the recovered log end
    /// (a crash lost the tail) are dropped, and the entry covering the log start starts there.
    pub(super) fn load_epochs(&self) -> Result<()> {
        let tmp = self.dir.join(EPOCH_TMP);
        if tmp.exists() {
            // A crash before the rename: the previous file (if any) is still in effect.
            fs::remove_file(&tmp).map_err(|e| Error::io("remove epoch temp file", &tmp, e))?;
        }
        let path = self.dir.join(EPOCH_FILE);
        let decoded = match fs::read(&path) {
            Ok(b) => Some(
                std::str::from_utf8(&b)
                    .map_err(|e| e.to_string())
                    .and_then(EpochCache::decode),
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(Error::io("read leader epoch checkpoint", &path, e)),
        };
        let (mut cache, mut dirty) = match decoded {
            Some(Ok(cache)) => (cache, false),
            Some(Err(reason)) => {
                warn!(path = %path.display(), reason, "leader epoch checkpoint is damaged; rebuilding it from the batch headers");
                (self.scan_epochs()?, true)
            }
            None => {
                let cache = self.scan_epochs()?;
                let dirty = !cache.entries().is_empty();
                (cache, dirty)
            }
        };
        let (start, end) = {
            let s = rlock(&self.shared);
            (s.log_start(), s.log_end())
        };
        dirty |= cache.truncate_from_end(end);
        dirty |= cache.truncate_from_start(start);
        if dirty {
            write_epochs(&self.dir, &cache)?;
        }
        self.latest_epoch.store(cache.latest(), Ordering::Release);
        *lock(&self.epochs) = cache;
        Ok(())
    }

    /// Rebuilds the leader-epoch cache from the `partitionLeaderEpoch` of every batch,
    /// reading only the batch headers.
    fn scan_epochs(&self) -> Result<EpochCache> {
        let metas = rlock(&self.shared).segments.clone();
        let mut cache = EpochCache::default();
        for m in &metas {
            let mut reader = ChunkReader::with_chunk(&m.seg, m.size, HEADER_SIZE);
            let mut pos = 0;
            while let Some((at, h)) = reader.next_header(pos)? {
                cache.assign(h.partition_leader_epoch, h.base_offset);
                pos = at + h.size();
            }
        }
        debug!(dir = %self.dir.display(), entries = cache.entries().len(), "rebuilt the leader epoch cache from the batch headers");
        Ok(cache)
    }

    /// Applies `change` to the leader-epoch cache and, if it changed anything, rewrites the
    /// file. With `keep_on_error` the change stays in memory even if the file could not be
    /// written (truncations: the cache must match the log; a stale file only holds extra
    /// entries, which `open` drops); without it a failed write leaves the cache as it was
    /// (assignments: the file must never miss an epoch the log has).
    pub(super) fn update_epochs(
        &self,
        keep_on_error: bool,
        change: impl FnOnce(&mut EpochCache) -> bool,
    ) -> Result<()> {
        let mut cache = lock(&self.epochs);
        let mut next = cache.clone();
        if !change(&mut next) {
            return Ok(());
        }
        let written = write_epochs(&self.dir, &next);
        if written.is_ok() || keep_on_error {
            self.latest_epoch.store(next.latest(), Ordering::Release);
            *cache = next;
        }
        written
    }

    /// The latest leader epoch in the cache, if any.
    pub fn latest_epoch(&self) -> Option<i32> {
        Some(self.latest_epoch.load(Ordering::Acquire)).filter(|e| *e >= 0)
    }

    /// The leader-epoch cache as `(epoch, start_offset)`, oldest first (tests, diagnostics).
    pub fn epoch_entries(&self) -> Vec<(i32, i64)> {
        lock(&self.epochs).entries().to_vec()
    }

    /// OffsetForLeaderEpoch: the end offset of leader epoch `requested` in this log, as
    /// `(epoch, end_offset)`, with the semantics of Kafka's
    /// `LeaderEpochFileCache.endOffsetFor`:
    ///
    /// - `requested` is the latest cached epoch: `(requested, log_end_offset())`;
    /// - the cache is empty, `requested` is negative, or it is larger than the latest cached
    ///   epoch: `(-1, -1)` (`UNDEFINED_EPOCH`, `UNDEFINED_EPOCH_OFFSET`);
    /// - `requested` is below the earliest cached epoch: `(requested, start offset of the
    ///   earliest cached epoch)`;
    /// - otherwise the largest cached epoch `<= requested` and, as its end, the start offset
    ///   of the smallest cached epoch `> requested` (a requested epoch this log never saw is
    ///   answered with the epoch before it).
    pub fn end_offset_for_epoch(&self, requested: i32) -> (i32, i64) {
        let cache = lock(&self.epochs);
        cache.end_offset_for(requested, self.log_end_offset())
    }

    /// fsyncs the active segment, every segment rolled since the last flush, and the
    /// directory if segments were created since; writes pending index entries (without
    /// fsyncing them: they are rebuildable). Returns the log end offset that is now durable.
    /// Blocking; safe to call concurrently with appends and reads.
    pub fn flush(&self) -> Result<i64> {
        let _serial = lock(&self.flush_lock);
        self.flush_locked()
    }

    /// [`flush`](Self::flush) for a caller holding `flush_lock`.
    pub(super) fn flush_locked(&self) -> Result<i64> {
        let (mut segs, active, end, dir_dirty, parent_dirty) = {
            let mut s = wlock(&self.shared);
            let active = s.active()?.seg.clone();
            let end = s.log_end();
            let dir_dirty = std::mem::take(&mut s.dir_dirty);
            let parent_dirty = std::mem::take(&mut s.parent_dirty);
            (
                std::mem::take(&mut s.unsynced),
                active,
                end,
                dir_dirty,
                parent_dirty,
            )
        };
        let result = (|| {
            if parent_dirty
                && let Some(parent) = self.dir.parent().filter(|p| !p.as_os_str().is_empty())
            {
                sync_dir(parent)?;
            }
            for seg in &segs {
                seg.sync_log()?;
                seg.persist_index(false)?;
            }
            active.sync_log()?;
            active.persist_index(false)?;
            if dir_dirty {
                sync_dir(&self.dir)?;
            }
            Ok(())
        })();
        if let Err(e) = result {
            // Put the work back so a later flush retries it.
            let mut s = wlock(&self.shared);
            segs.append(&mut s.unsynced);
            s.unsynced = segs;
            s.dir_dirty |= dir_dirty;
            s.parent_dirty |= parent_dirty;
            return Err(e);
        }
        self.durable.fetch_max(end, Ordering::AcqRel);
        let rp = self.dir.join(RECOVERY_POINT_FILE);
        write_recovery_point(&rp, end).map_err(|e| Error::io("write recovery point", &rp, e))?;
        Ok(end)
    }

    /// The offset below which everything is known to be on disk.
    pub fn durable_offset(&self) -> i64 {
        self.durable.load(Ordering::Acquire)
    }

    /// Flushes, persists and fsyncs every index, and writes the clean-shutdown marker. Later
    /// appends fail with [`Error::Closed`]; reads keep working. Idempotent.
    pub fn close(&self) -> Result<()> {
        let mut w = lock(&self.writer);
        if w.closed {
            return Ok(());
        }
        let metas = rlock(&self.shared).segments.clone();
        if let Some(active) = metas.last() {
            active.seg.index().seal();
        }
        self.flush()?;
        for m in &metas {
            m.seg.persist_index(true)?;
        }
        self.write_producer_snapshot(self.log_end_offset(), true)?;
        let marker = self.dir.join(CLEAN_SHUTDOWN_FILE);
        File::create(&marker)
            .and_then(|f| f.sync_all())
            .map_err(|e| Error::io("write clean-shutdown marker", &marker, e))?;
        sync_dir(&self.dir)?;
        w.closed = true;
        debug!(dir = %self.dir.display(), log_end_offset = self.log_end_offset(), "closed partition log");
        Ok(())
    }
}

pub(super) fn read_recovery_point(path: &Path) -> i64 {
    let Ok(b) = fs::read(path) else {
        return 0;
    };
    if b.len() < 12 {
        return 0;
    }
    let mut v = [0u8; 8];
    v.copy_from_slice(&b[..8]);
    let crc = u32::from_be_bytes([b[8], b[9], b[10], b[11]]);
    if crc32c::crc32c(&v) == crc {
        i64::from_be_bytes(v)
    } else {
        0
    }
}

/// Not fsynced: a stale (lower) value only makes recovery scan more; a torn one fails its CRC.
/// Opened for each write: a partition at rest holds no descriptor.
fn write_recovery_point(path: &Path, offset: i64) -> std::io::Result<()> {
    let v = offset.to_be_bytes();
    let mut b = [0u8; 12];
    b[..8].copy_from_slice(&v);
    b[8..].copy_from_slice(&crc32c::crc32c(&v).to_be_bytes());
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)?
        .write_all_at(&b, 0)
}

/// Reads the persisted DeleteRecords log start; 0 when there is none. A damaged file is an
/// error rather than 0: silently forgetting a DeleteRecords would resurrect deleted records.
pub(super) fn read_log_start(dir: &Path) -> Result<i64> {
    let tmp = dir.join(LOG_START_TMP);
    if tmp.exists() {
        // A crash before the rename: the previous file (if any) is still in effect.
        fs::remove_file(&tmp).map_err(|e| Error::io("remove log start temp file", &tmp, e))?;
    }
    let path = dir.join(LOG_START_FILE);
    let b = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(Error::io("read log start", &path, e)),
    };
    let bad = || Error::CorruptSegment {
        path: path.clone(),
        position: 0,
        reason: format!("log start file of {} bytes fails its check", b.len()),
    };
    if b.len() != 12 {
        return Err(bad());
    }
    let mut v = [0u8; 8];
    v.copy_from_slice(&b[..8]);
    let crc = u32::from_be_bytes([b[8], b[9], b[10], b[11]]);
    if crc32c::crc32c(&v) != crc {
        return Err(bad());
    }
    Ok(i64::from_be_bytes(v))
}

/// Persists the DeleteRecords log start atomically and durably.
pub(super) fn write_log_start(dir: &Path, offset: i64) -> Result<()> {
    let v = offset.to_be_bytes();
    let mut b = [0u8; 12];
    b[..8].copy_from_slice(&v);
    b[8..].copy_from_slice(&crc32c::crc32c(&v).to_be_bytes());
    replace_file(dir, LOG_START_FILE, LOG_START_TMP, &b)
}

/// Persists the leader-epoch cache atomically and durably.
fn write_epochs(dir: &Path, cache: &EpochCache) -> Result<()> {
    replace_file(dir, EPOCH_FILE, EPOCH_TMP, cache.encode().as_bytes())
}

/// Replaces `dir/name` with `bytes` atomically and durably: writes `dir/tmp`, fsyncs it,
/// renames it over `name`, fsyncs the directory.
pub(super) fn replace_file(dir: &Path, name: &str, tmp: &str, bytes: &[u8]) -> Result<()> {
    let tmp = dir.join(tmp);
    let path = dir.join(name);
    (|| {
        let mut f = File::create(&tmp)?;
        std::io::Write::write_all(&mut f, bytes)?;
        f.sync_all()
    })()
    .map_err(|e| Error::io("write file", &tmp, e))?;
    fs::rename(&tmp, &path).map_err(|e| Error::io("rename file", &path, e))?;
    sync_dir(dir)
}
