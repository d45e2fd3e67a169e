//! The local hot tier of one partition: an append-only sequence of segments.
//!
//! # Lifecycle
//!
//! [`PartitionLog::open`] recovers the directory (see "Recovery" below) and leaves one active
//! segment, the last. [`append`](PartitionLog::append) validates, patches and writes whole
//! batches to it, rolling to a new segment first when `segment_bytes`/`segment_ms` say so.
//! [`flush`](PartitionLog::flush) makes everything appended so far durable.
//! [`enforce_retention`](PartitionLog::enforce_retention) deletes old sealed segments.
//! [`advance_log_start`](PartitionLog::advance_log_start) (DeleteRecords) moves the log start
//! forward and deletes the segments entirely below it.
//! [`close`](PartitionLog::close) flushes and leaves a clean-shutdown marker so the next open
//! can trust the index files instead of scanning.
//!
//! Replication: a follower appends its leader's batches as they are with
//! [`append_replicated`](PartitionLog::append_replicated), cuts its log back with
//! [`truncate_to`](PartitionLog::truncate_to) (or empties it with
//! [`truncate_fully_and_start_at`](PartitionLog::truncate_fully_and_start_at)) at the point
//! [`end_offset_for_epoch`](PartitionLog::end_offset_for_epoch) of the leader gives, and
//! consumers read below the high watermark with [`read_bounded`](PartitionLog::read_bounded).
//! The leader-epoch cache behind `end_offset_for_epoch` lives in `epoch.rs`.
//!
//! # Concurrency
//!
//! Three locks, never held across log-file I/O by readers, never nested except in the order
//! `writer` → `flush_lock` → `truncation` → `shared` (plus two leaves: `truncation`, which
//! readers hold shared only so that a truncation never shortens a file under them, and
//! `epochs`, the leader-epoch cache):
//! - `writer` serialises appends, rolls, retention and close. Validation and timestamp
//!   patching (the CPU work) happen before it is taken.
//! - `shared` is the published view readers snapshot: the segment list with each segment's
//!   committed size and next offset. An append writes its bytes to the page cache *first*
//!   and then publishes the new size, so a reader never sees a size whose bytes are not there.
//! - `flush_lock` serialises flushes, so a flush cannot report an offset durable while an
//!   earlier flush is still fsyncing a segment rolled before it.
//!
//! # Recovery
//!
//! Without the clean-shutdown marker, every segment that may hold data written after the last
//! flush (all segments from the one containing the persisted recovery point on) is scanned
//! batch by batch, checking framing, CRC-32C and offset continuity; the first bad batch and
//! everything after it is truncated, and segments after a truncated one are deleted (their
//! offsets no longer follow on). Other segments are loaded from their index files after a
//! sanity check and a short CRC-checked scan of their tail; a segment whose index files are
//! missing or implausible is scanned in full and its indexes rebuilt.
//!
//! # Tiering hooks
//!
//! With `remote_storage` on, the uploader (outside this crate's hot path) takes
//! [`sealed_segments`](PartitionLog::sealed_segments), uploads them, records them in the
//! manifest, and reports progress with [`set_tiered_end`](PartitionLog::set_tiered_end). Local
//! retention then deletes only segments entirely below the tiered end, so a segment that is not
//! yet in object storage is never deleted locally, whatever the retention settings. A node with
//! an empty disk taking over a partition whose history is tiered opens its log with
//! [`open_at`](PartitionLog::open_at) so that offsets continue after the tiered end.

use std::fs::{self, File, OpenOptions};
use std::ops::ControlFlow;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::RecordBatchDecoder;
use tracing::{debug, info, warn};

use crate::batch::{self, BatchHeader, HEADER_SIZE, ValidBatch};
use crate::config::{LogConfig, TimestampType};
use crate::epoch::EpochCache;
use crate::error::{Error, Result};
use crate::index::{NO_TIMESTAMP, SegmentIndex};
use crate::segment::{self, ChunkReader, Segment};

/// Present only between a successful `close()` and the next `open()`.
const CLEAN_SHUTDOWN_FILE: &str = "clean-shutdown";
/// Offset below which all data was fsynced (i64 BE + CRC-32C of those 8 bytes).
const RECOVERY_POINT_FILE: &str = "recovery-point";
/// Held with an exclusive `flock` while the log is open.
const LOCK_FILE: &str = ".lock";
/// Header-walking window for reads: a few index intervals.
const READ_CHUNK: usize = 16 * 1024;
/// The log start offset moved by DeleteRecords (i64 BE + CRC-32C of those 8 bytes). Replaced
/// atomically (written to `LOG_START_TMP`, fsynced, renamed, directory fsynced).
const LOG_START_FILE: &str = "log-start-offset";
const LOG_START_TMP: &str = "log-start-offset.tmp";
/// The leader-epoch cache (text, see `epoch.rs`), replaced atomically like `LOG_START_FILE`.
const EPOCH_FILE: &str = "leader-epoch-checkpoint";
const EPOCH_TMP: &str = "leader-epoch-checkpoint.tmp";

/// A sealed (rolled, no longer appended to) local segment, as the uploader sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedSegment {
    /// Offset of the first record.
    pub base_offset: i64,
    /// One past the offset of the last record.
    pub end_offset: i64,
    /// Size of the `.log` file (bytes of record batches).
    pub size_bytes: u64,
    /// `firstTimestamp` of the first batch.
    pub first_timestamp: i64,
    /// Largest batch max-timestamp in the segment.
    pub max_timestamp: i64,
    /// The `.log` file.
    pub log_path: PathBuf,
    /// The `.index` file, complete on disk (not necessarily fsynced).
    pub index_path: PathBuf,
    /// The `.timeindex` file, complete on disk (not necessarily fsynced).
    pub time_index_path: PathBuf,
}

/// The tail of a sealed segment from a batch boundary on, described as a segment of its own
/// (see [`PartitionLog::sealed_suffix`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentSuffix {
    /// The tail as a segment: `base_offset` is the first batch's base offset, `size_bytes` the
    /// tail's length, `log_path` the whole local file (read from `data_start`), and the index
    /// paths those of the whole segment (not to be uploaded: use `index`/`time_index`).
    pub segment: SealedSegment,
    /// Byte position of the tail in `segment.log_path`.
    pub data_start: u64,
    /// The tail's offset index, relative to its own base offset and position 0.
    pub index: Vec<u8>,
    /// The tail's time index, relative to its own base offset.
    pub time_index: Vec<u8>,
}

/// Outcome of a successful [`PartitionLog::append`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendResult {
    /// Offset assigned to the first record.
    pub base_offset: i64,
    /// Offset assigned to the last record.
    pub last_offset: i64,
    /// The append time stamped on the batches, or -1 for CreateTime topics.
    pub log_append_time_ms: i64,
    /// Log start offset after the append.
    pub log_start_offset: i64,
}

/// Outcome of a [`PartitionLog::read`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadResult {
    /// Whole batches, exactly as stored.
    pub records: Bytes,
    /// Log start offset when the read was served.
    pub log_start_offset: i64,
    /// Log end offset when the read was served.
    pub log_end_offset: i64,
}

/// A record offset and its timestamp (ListOffsets answers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimestampOffset {
    /// Offset of the record.
    pub offset: i64,
    /// Its timestamp in ms.
    pub timestamp: i64,
}

/// The hot-tier log of one partition. `Send + Sync`; share it behind an `Arc`.
pub struct PartitionLog {
    dir: PathBuf,
    /// Replaced wholesale by `update_config`; read (and cloned) once per append.
    config: RwLock<LogConfig>,
    /// Serialises mutations of the segment list and the active segment (see module docs).
    writer: Mutex<Writer>,
    /// What readers snapshot (see module docs).
    shared: RwLock<Shared>,
    /// Serialises flushes (see module docs).
    flush_lock: Mutex<()>,
    /// Highest offset known to be fsynced (exclusive). Only grows.
    durable: AtomicI64,
    /// Offsets below this are recorded in the manifest (set by the uploader). Only grows
    /// (except that a truncation lowers it to the new log end), so racing reports from
    /// concurrent uploads cannot move it back. Read by retention without
    /// the writer lock: a stale (lower) value only deletes less.
    tiered_end: AtomicI64,
    recovery_point: File,
    /// The leader-epoch cache. Changed by appends and truncations (under `writer`) and when
    /// the log start moves; the file is rewritten while this is held, so it always ends up
    /// holding the newest state.
    epochs: Mutex<EpochCache>,
    /// The cache's latest epoch (-1 when empty), so that `append` finds out whether its epoch
    /// is new with one atomic load instead of a lock.
    latest_epoch: AtomicI32,
    /// Readers hold it shared while they snapshot and read segment files; truncation holds it
    /// exclusively while it shrinks files, so no reader ever reads bytes that a truncation cut
    /// and a later append replaced. Nothing else takes it.
    truncation: RwLock<()>,
    /// Keeps the directory's `flock` for as long as the log is open.
    _dir_lock: File,
}

/// State owned by the appender.
#[derive(Debug)]
struct Writer {
    closed: bool,
    /// When the active segment's age for `segment_ms` is counted from (ms).
    roll_base_ms: Option<i64>,
}

#[derive(Debug)]
struct Shared {
    /// Oldest first; never empty; the last is the active segment.
    segments: Vec<SegmentMeta>,
    /// Segments rolled since the last flush (their tails may not be fsynced yet).
    unsynced: Vec<Arc<Segment>>,
    /// A segment file was created or deleted since the last directory fsync.
    dir_dirty: bool,
    /// Log start set by DeleteRecords (persisted in `LOG_START_FILE`); the log start is the
    /// larger of this and the first segment's base offset.
    start_floor: i64,
}

impl Shared {
    fn log_start(&self) -> i64 {
        self.segments
            .first()
            .map_or(0, |m| m.seg.base_offset)
            .max(self.start_floor)
    }

    fn log_end(&self) -> i64 {
        self.segments.last().map_or(0, |m| m.next_offset)
    }

    fn active(&self) -> Result<&SegmentMeta> {
        self.segments.last().ok_or_else(|| Error::Internal {
            reason: "partition log has no segments".into(),
        })
    }

    /// Index of the segment holding `offset` (the last one whose base is `<= offset`).
    fn segment_for(&self, offset: i64) -> Result<usize> {
        self.segments
            .partition_point(|m| m.seg.base_offset <= offset)
            .checked_sub(1)
            .ok_or_else(|| Error::Internal {
                reason: format!("no segment holds offset {offset}"),
            })
    }
}

/// A segment plus its published (committed) state.
#[derive(Debug, Clone)]
struct SegmentMeta {
    seg: Arc<Segment>,
    /// Committed bytes: readers never look past this.
    size: u64,
    /// One past the last offset in the segment.
    next_offset: i64,
    /// Largest batch max-timestamp, `NO_TIMESTAMP` when empty.
    max_ts: i64,
    /// Base offset of a batch holding `max_ts` (a hint; see `max_timestamp`).
    max_ts_offset: i64,
}

/// What loading one segment found.
struct Loaded {
    meta: SegmentMeta,
    /// The segment was scanned (its data may not be durable yet).
    scanned: bool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn rlock<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(PoisonError::into_inner)
}

fn wlock<T>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(PoisonError::into_inner)
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io("fsync directory", dir, e))
}

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
        config.validate()?;
        if start_offset < 0 {
            return Err(Error::InvalidConfig {
                reason: format!("start offset {start_offset} must not be negative"),
            });
        }
        let created = !dir.exists();
        fs::create_dir_all(dir).map_err(|e| Error::io("create log directory", dir, e))?;
        if created && let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            sync_dir(parent)?;
        }
        let lock_path = dir.join(LOCK_FILE);
        let dir_lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| Error::io("open lock file", &lock_path, e))?;
        match dir_lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                return Err(Error::Locked {
                    path: dir.to_path_buf(),
                });
            }
            Err(fs::TryLockError::Error(e)) => return Err(Error::io("lock", &lock_path, e)),
        }

        let rp_path = dir.join(RECOVERY_POINT_FILE);
        let recovery_point_file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&rp_path)
            .map_err(|e| Error::io("open recovery point", &rp_path, e))?;
        let marker = dir.join(CLEAN_SHUTDOWN_FILE);
        let clean = marker.exists();
        let recovery_point = if clean {
            i64::MAX
        } else {
            read_recovery_point(&recovery_point_file)
        };
        info!(dir = %dir.display(), clean, recovery_point, "opening partition log");

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
        let needs_flush = !scanned.is_empty() || dir_dirty || !clean;
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
                start_floor: floor,
            }),
            flush_lock: Mutex::new(()),
            durable: AtomicI64::new(if clean { end } else { 0 }),
            tiered_end: AtomicI64::new(0),
            recovery_point: recovery_point_file,
            epochs: Mutex::new(EpochCache::default()),
            latest_epoch: AtomicI32::new(-1),
            truncation: RwLock::new(()),
            _dir_lock: dir_lock,
        };
        if needs_flush {
            log.flush()?;
        }
        log.load_epochs()?;
        Ok(log)
    }

    /// Loads the leader-epoch cache after recovery: from its file, or, when the file is
    /// missing or damaged, from the batch headers. Entries at or after the recovered log end
    /// (a crash lost the tail) are dropped, and the entry covering the log start starts there.
    fn load_epochs(&self) -> Result<()> {
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
            while pos < m.size {
                let h = reader.header(pos)?.map_err(|r| m.seg.corrupt(pos, r))?;
                cache.assign(h.partition_leader_epoch, h.base_offset);
                pos += h.size();
            }
        }
        info!(dir = %self.dir.display(), entries = cache.entries().len(), "rebuilt the leader epoch cache from the batch headers");
        Ok(cache)
    }

    /// Applies `change` to the leader-epoch cache and, if it changed anything, rewrites the
    /// file. With `keep_on_error` the change stays in memory even if the file could not be
    /// written (truncations: the cache must match the log; a stale file only holds extra
    /// entries, which `open` drops); without it a failed write leaves the cache as it was
    /// (assignments: the file must never miss an epoch the log has).
    fn update_epochs(
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

    /// Appends `records` (one or more concatenated v2 batches, the `records` field of one
    /// partition of a Produce request) and returns the offsets assigned.
    ///
    /// All batches are validated first ([`crate::validate_batches`]); if any fails nothing is
    /// appended. Offsets and the leader epoch are then patched in place (outside the CRC);
    /// LogAppendTime topics also get the timestamp-type bit and `now_ms` as first/max
    /// timestamps, with the CRC recomputed. Batches are never decompressed or re-encoded.
    /// The bytes reach the page cache, not the disk: call [`flush`](Self::flush) for that.
    pub fn append(&self, records: Bytes, leader_epoch: i32, now_ms: i64) -> Result<AppendResult> {
        let (max_message_bytes, timestamp_type) = {
            let c = rlock(&self.config);
            (c.max_message_bytes, c.message_timestamp_type)
        };
        let batches = batch::validate(&records, max_message_bytes)?;
        let mut buf = records
            .try_into_mut()
            .unwrap_or_else(|shared| BytesMut::from(&shared[..]));
        let log_append = timestamp_type == TimestampType::LogAppendTime;
        let mut records_total: i64 = 0;
        let mut pos = 0usize;
        for b in &batches {
            let size = b.header.size() as usize;
            let slice = &mut buf[pos..pos + size];
            if log_append {
                batch::set_log_append_time(slice, now_ms);
            } else if let Some(m) = b.records_max_timestamp
                && m != b.header.max_timestamp
            {
                batch::set_max_timestamp(slice, m);
            }
            records_total += i64::from(b.header.record_count);
            pos += size;
        }
        let (mut w, config, active) =
            self.begin_append(buf.len() as u64, records_total, now_ms, None)?;

        let base_offset = active.next_offset;
        let mut offset = base_offset;
        let mut pos = 0usize;
        for b in &batches {
            let size = b.header.size() as usize;
            batch::patch_offset_and_epoch(&mut buf[pos..pos + size], offset, leader_epoch);
            offset += i64::from(b.header.record_count);
            pos += size;
        }
        // One atomic load unless the epoch is new; then the cache file is rewritten before
        // the batches are written, so the file never misses an epoch the log holds.
        if leader_epoch > self.latest_epoch.load(Ordering::Acquire) {
            self.update_epochs(false, |c| c.assign(leader_epoch, base_offset))?;
        }
        let (last_offset, log_start_offset) =
            self.commit(&active, &buf, &batches, config.index_interval_bytes, |b| {
                if log_append {
                    now_ms
                } else {
                    b.records_max_timestamp.unwrap_or(b.header.max_timestamp)
                }
            })?;
        w.roll_base_ms.get_or_insert(now_ms);
        drop(w);
        Ok(AppendResult {
            base_offset,
            last_offset,
            log_append_time_ms: if log_append { now_ms } else { -1 },
            log_start_offset,
        })
    }

    /// Appends record batches that already carry their offsets and partition leader epochs
    /// (a follower replicating its leader's log), writing the bytes exactly as given: no
    /// offset, epoch or timestamp is patched, and indexes use each batch's `maxTimestamp`.
    ///
    /// Every batch is validated as in [`append`](Self::append); the first must start at
    /// [`log_end_offset`](Self::log_end_offset) and each next one right after the previous
    /// one's last offset, else [`Error::UnexpectedAppendOffset`]. If anything fails nothing is
    /// appended. Each batch whose `partitionLeaderEpoch` is newer than the latest cached epoch
    /// starts a new epoch in the cache. Empty `records` is `Ok` with nothing appended
    /// (`base_offset` = the log end, `last_offset` = one below it). `log_append_time_ms` is
    /// always -1 (the leader already stamped LogAppendTime batches). Page cache only, as
    /// `append`.
    pub fn append_replicated(&self, records: Bytes, now_ms: i64) -> Result<AppendResult> {
        if records.is_empty() {
            let s = rlock(&self.shared);
            let end = s.log_end();
            return Ok(AppendResult {
                base_offset: end,
                last_offset: end - 1,
                log_append_time_ms: -1,
                log_start_offset: s.log_start(),
            });
        }
        let max_message_bytes = rlock(&self.config).max_message_bytes;
        let batches = batch::validate(&records, max_message_bytes)?;
        let first = batches.first().map_or(0, |b| b.header.base_offset);
        let mut next = first;
        let mut new_epoch = -1;
        for (i, b) in batches.iter().enumerate() {
            if b.header.base_offset != next {
                return Err(Error::UnexpectedAppendOffset {
                    batch: i,
                    expected: next,
                    found: b.header.base_offset,
                });
            }
            next = b.header.last_offset() + 1;
            new_epoch = new_epoch.max(b.header.partition_leader_epoch);
        }

        let (mut w, config, active) =
            self.begin_append(records.len() as u64, next - first, now_ms, Some(first))?;
        if new_epoch > self.latest_epoch.load(Ordering::Acquire) {
            self.update_epochs(false, |c| {
                let mut changed = false;
                for b in &batches {
                    changed |= c.assign(b.header.partition_leader_epoch, b.header.base_offset);
                }
                changed
            })?;
        }
        let (last_offset, log_start_offset) = self.commit(
            &active,
            &records,
            &batches,
            config.index_interval_bytes,
            |b| b.header.max_timestamp,
        )?;
        w.roll_base_ms.get_or_insert(now_ms);
        drop(w);
        Ok(AppendResult {
            base_offset: first,
            last_offset,
            log_append_time_ms: -1,
            log_start_offset,
        })
    }

    /// Takes `writer` ([`Error::Closed`] after `close()`).
    fn writer(&self) -> Result<MutexGuard<'_, Writer>> {
        let w = lock(&self.writer);
        if w.closed {
            return Err(Error::Closed {
                path: self.dir.clone(),
            });
        }
        Ok(w)
    }

    /// Takes `writer` for an append of `add_bytes` bytes and `add_records` offsets, checks
    /// that the log ends at `expected_base` (replicated appends), and rolls first if due.
    /// Returns the guard, the config, and the active segment to append to.
    fn begin_append(
        &self,
        add_bytes: u64,
        add_records: i64,
        now_ms: i64,
        expected_base: Option<i64>,
    ) -> Result<(MutexGuard<'_, Writer>, LogConfig, SegmentMeta)> {
        let mut w = self.writer()?;
        let config = rlock(&self.config).clone();
        let mut active = rlock(&self.shared).active()?.clone();
        if let Some(found) = expected_base.filter(|b| *b != active.next_offset) {
            return Err(Error::UnexpectedAppendOffset {
                batch: 0,
                expected: active.next_offset,
                found,
            });
        }
        if self.should_roll(&w, &config, &active, add_bytes, add_records, now_ms) {
            active = self.roll(&mut w)?;
        }
        Ok((w, config, active))
    }

    /// Writes `buf` (the validated `batches`, offsets already in place and starting at
    /// `active.next_offset`) at the end of the active segment, indexes the batches with the
    /// timestamps `ts_of` gives, and publishes the new end. Returns the last offset written and
    /// the log start. Caller holds `writer` (and starts the segment's age when it was empty).
    fn commit(
        &self,
        active: &SegmentMeta,
        buf: &[u8],
        batches: &[ValidBatch],
        index_interval_bytes: u32,
        ts_of: impl Fn(&ValidBatch) -> i64,
    ) -> Result<(i64, i64)> {
        if let Err(e) = active.seg.write_all_at(buf, active.size) {
            // Drop whatever part was written, so recovery never sees it and the next append
            // (which overwrites from the same position anyway) starts clean.
            if let Err(t) = active.seg.truncate(active.size) {
                warn!(error = %t, "could not truncate after a failed append");
            }
            return Err(e);
        }

        let mut max_ts = active.max_ts;
        let mut max_ts_offset = active.max_ts_offset;
        let mut offset = active.next_offset;
        {
            let mut idx = active.seg.index();
            let mut pos = active.size;
            for b in batches {
                let ts = ts_of(b);
                let last = offset + i64::from(b.header.last_offset_delta);
                idx.add_batch(offset, last, pos, b.header.size(), ts, index_interval_bytes);
                if ts > max_ts {
                    max_ts = ts;
                    max_ts_offset = offset;
                }
                offset = last + 1;
                pos += b.header.size();
            }
        }
        let mut s = wlock(&self.shared);
        let start = s.log_start();
        if let Some(m) = s.segments.last_mut() {
            m.size += buf.len() as u64;
            m.next_offset = offset;
            m.max_ts = max_ts;
            m.max_ts_offset = max_ts_offset;
        }
        Ok((offset - 1, start))
    }

    fn should_roll(
        &self,
        w: &Writer,
        config: &LogConfig,
        active: &SegmentMeta,
        add_bytes: u64,
        add_records: i64,
        now_ms: i64,
    ) -> bool {
        if active.size == 0 {
            return false;
        }
        let too_big = active.size + add_bytes > config.segment_bytes.min(i32::MAX as u64);
        let too_old = match (config.segment_ms_i64(), w.roll_base_ms) {
            (Some(ms), Some(base)) => now_ms.saturating_sub(base) > ms,
            _ => false,
        };
        // Relative offsets in the index are 32-bit (Kafka keeps them below i32::MAX).
        let offsets_overflow =
            active.next_offset + add_records - 1 - active.seg.base_offset > i64::from(i32::MAX);
        too_big || too_old || offsets_overflow
    }

    /// Seals the active segment and starts a new one at the log end. Caller holds `writer`.
    fn roll(&self, w: &mut Writer) -> Result<SegmentMeta> {
        let old = rlock(&self.shared).active()?.clone();
        if old.size == 0 {
            return Ok(old);
        }
        let seg = Arc::new(Segment::create(&self.dir, old.next_offset)?);
        old.seg.index().seal();
        let meta = SegmentMeta {
            seg,
            size: 0,
            next_offset: old.next_offset,
            max_ts: NO_TIMESTAMP,
            max_ts_offset: old.next_offset,
        };
        {
            let mut s = wlock(&self.shared);
            s.segments.push(meta.clone());
            s.unsynced.push(old.seg.clone());
            s.dir_dirty = true;
        }
        w.roll_base_ms = None;
        debug!(dir = %self.dir.display(), base_offset = meta.next_offset, "rolled segment");
        Ok(meta)
    }

    /// Reads whole batches starting with the batch containing `offset`, up to `max_bytes`
    /// (but always at least one whole batch, even a larger one — KIP-74), from one segment.
    /// `offset == log_end_offset` returns empty records; outside `[log_start, log_end]` is
    /// [`Error::OffsetOutOfRange`]. Holds no lock during file I/O.
    pub fn read(&self, offset: i64, max_bytes: usize) -> Result<ReadResult> {
        self.read_below(offset, max_bytes, i64::MAX)
    }

    /// Like [`read`](Self::read), but returns only whole batches that end below `max_offset`
    /// (`last_offset < max_offset`), for consumers that may only see below the high
    /// watermark: if the batch holding `offset` does not end below it, the records are empty
    /// (even if that leaves less than one batch, unlike `read`).
    pub fn read_bounded(
        &self,
        offset: i64,
        max_bytes: usize,
        max_offset: i64,
    ) -> Result<ReadResult> {
        self.read_below(offset, max_bytes, max_offset)
    }

    fn read_below(&self, offset: i64, max_bytes: usize, max_offset: i64) -> Result<ReadResult> {
        let _no_truncation = rlock(&self.truncation);
        let (meta, start, end) = {
            let s = rlock(&self.shared);
            let (start, end) = (s.log_start(), s.log_end());
            if offset < start || offset > end {
                return Err(Error::OffsetOutOfRange { offset, start, end });
            }
            if offset == end {
                return Ok(ReadResult {
                    records: Bytes::new(),
                    log_start_offset: start,
                    log_end_offset: end,
                });
            }
            let i = s.segment_for(offset)?;
            (s.segments[i].clone(), start, end)
        };
        let seg = &meta.seg;
        let (_, pos, first) = locate(&meta, offset, READ_CHUNK)?;
        if first.last_offset() >= max_offset {
            return Ok(ReadResult {
                records: Bytes::new(),
                log_start_offset: start,
                log_end_offset: end,
            });
        }
        let want = (max_bytes as u64).max(first.size()).min(meta.size - pos);
        let mut buf = seg.read_vec(pos, want as usize)?;
        // Keep whole batches only, all below `max_offset`.
        let mut cut = 0usize;
        while buf.len() - cut >= HEADER_SIZE {
            let h = BatchHeader::parse(&buf[cut..]).map_err(|e| seg.corrupt(pos, e.to_string()))?;
            let next = cut as u64 + h.size();
            if next > buf.len() as u64 || h.batch_length <= 0 || h.last_offset() >= max_offset {
                break;
            }
            cut = next as usize;
        }
        buf.truncate(cut);
        Ok(ReadResult {
            records: Bytes::from(buf),
            log_start_offset: start,
            log_end_offset: end,
        })
    }

    /// Offset of the first record.
    pub fn log_start_offset(&self) -> i64 {
        rlock(&self.shared).log_start()
    }

    /// The next offset to be assigned.
    pub fn log_end_offset(&self) -> i64 {
        rlock(&self.shared).log_end()
    }

    /// The first record (in offset order) whose timestamp is `>= ts`, as Kafka's ListOffsets
    /// answers it: the first segment whose max timestamp reaches `ts`, then its time index,
    /// then a scan of batch headers, then (CreateTime only) the records of the first batch
    /// whose max timestamp reaches `ts`. In LogAppendTime batches every record carries the
    /// batch's max timestamp, so the answer is the batch's first offset.
    ///
    /// For compressed batches the producer's `maxTimestamp` is trusted (batches are not
    /// decompressed on append to check it).
    pub fn offset_for_timestamp(&self, ts: i64) -> Result<Option<TimestampOffset>> {
        let _no_truncation = rlock(&self.truncation);
        let (metas, start) = {
            let s = rlock(&self.shared);
            (s.segments.clone(), s.log_start())
        };
        for m in &metas {
            if m.max_ts == NO_TIMESTAMP || m.max_ts < ts || m.next_offset <= start {
                continue;
            }
            if let Some(found) = find_in_segment(m, ts, start)? {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    /// The largest timestamp in the log and the offset of the first record carrying it
    /// (ListOffsets `MAX_TIMESTAMP`, -3). If reading the batch back fails, the offset is that
    /// of the batch's first record.
    pub fn max_timestamp(&self) -> Option<TimestampOffset> {
        let _no_truncation = rlock(&self.truncation);
        let (metas, start) = {
            let s = rlock(&self.shared);
            (s.segments.clone(), s.log_start())
        };
        let mut best: Option<&SegmentMeta> = None;
        for m in &metas {
            if m.max_ts != NO_TIMESTAMP && best.is_none_or(|b| m.max_ts > b.max_ts) {
                best = Some(m);
            }
        }
        let m = best?;
        match find_in_segment(m, m.max_ts, start) {
            Ok(Some(found)) => Some(found),
            Ok(None) => Some(TimestampOffset {
                offset: m.max_ts_offset,
                timestamp: m.max_ts,
            }),
            Err(e) => {
                warn!(error = %e, "max_timestamp: cannot read the batch, answering its base offset");
                Some(TimestampOffset {
                    offset: m.max_ts_offset,
                    timestamp: m.max_ts,
                })
            }
        }
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
    fn flush_locked(&self) -> Result<i64> {
        let (mut segs, active, end, dir_dirty) = {
            let mut s = wlock(&self.shared);
            let active = s.active()?.seg.clone();
            let end = s.log_end();
            let dir_dirty = std::mem::take(&mut s.dir_dirty);
            (std::mem::take(&mut s.unsynced), active, end, dir_dirty)
        };
        let result = (|| {
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
            return Err(e);
        }
        self.durable.fetch_max(end, Ordering::AcqRel);
        write_recovery_point(&self.recovery_point, end).map_err(|e| {
            Error::io(
                "write recovery point",
                self.dir.join(RECOVERY_POINT_FILE),
                e,
            )
        })?;
        Ok(end)
    }

    /// The offset below which everything is known to be on disk.
    pub fn durable_offset(&self) -> i64 {
        self.durable.load(Ordering::Acquire)
    }

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
                config.retention_bytes,
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
        Ok(n)
    }

    /// Deletes the files of segments already removed from the published list, then fsyncs the
    /// directory. Returns the first error after trying them all.
    fn delete_segments(&self, removed: &[SegmentMeta]) -> Result<()> {
        let mut first_err = None;
        for m in removed {
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

    /// Every sealed (non-active) segment, oldest first, with its index files complete on disk
    /// (pending entries are written first; they are not fsynced: the uploader reads them
    /// through the page cache). Safe while appends go on: sealed segments never change. A
    /// segment deleted by retention meanwhile may still be listed; opening its files then
    /// fails, and the caller skips it.
    pub fn sealed_segments(&self) -> Result<Vec<SealedSegment>> {
        let _no_truncation = rlock(&self.truncation);
        let metas = {
            let s = rlock(&self.shared);
            s.segments[..s.segments.len().saturating_sub(1)].to_vec()
        };
        let mut out = Vec::with_capacity(metas.len());
        for m in metas {
            m.seg.persist_index(false)?;
            let mut h = [0u8; HEADER_SIZE];
            m.seg.read_exact_at(&mut h, 0)?;
            let first = BatchHeader::parse(&h).map_err(|e| m.seg.corrupt(0, e.to_string()))?;
            out.push(SealedSegment {
                base_offset: m.seg.base_offset,
                end_offset: m.next_offset,
                size_bytes: m.size,
                first_timestamp: first.first_timestamp,
                max_timestamp: m.max_ts,
                log_path: m.seg.log_path.clone(),
                index_path: m.seg.index_path().to_path_buf(),
                time_index_path: m.seg.time_index_path().to_path_buf(),
            });
        }
        Ok(out)
    }

    /// The part of the sealed segment starting at `base_offset` from the batch holding `from`
    /// on, with freshly built indexes: what to upload when the tiered range ends inside a local
    /// segment (another leader rolled at other offsets), so that the remote tier continues
    /// exactly where it ends instead of leaving a hole or overlapping. Replicas hold the same
    /// batches, so `from` (a tiered end) is normally a batch boundary; if it is not, the tail
    /// starts at the batch containing it. [`Error::OffsetOutOfRange`] unless `base_offset` is
    /// a sealed segment that holds `from`.
    pub fn sealed_suffix(&self, base_offset: i64, from: i64) -> Result<SegmentSuffix> {
        let _no_truncation = rlock(&self.truncation);
        let (meta, start, end) = {
            let s = rlock(&self.shared);
            let sealed = &s.segments[..s.segments.len().saturating_sub(1)];
            let m = sealed
                .iter()
                .find(|m| m.seg.base_offset == base_offset)
                .cloned();
            (m, s.log_start(), s.log_end())
        };
        let Some(meta) = meta.filter(|m| base_offset <= from && from < m.next_offset) else {
            return Err(Error::OffsetOutOfRange {
                offset: from,
                start,
                end,
            });
        };
        let seg = &meta.seg;
        let interval = rlock(&self.config).index_interval_bytes;
        let (mut reader, mut pos, first) = locate(&meta, from, segment::CHUNK)?;
        let data_start = pos;
        let mut idx = SegmentIndex::new(first.base_offset);
        let mut max_ts = NO_TIMESTAMP;
        while pos < meta.size {
            let h = reader.header(pos)?.map_err(|r| seg.corrupt(pos, r))?;
            idx.add_batch(
                h.base_offset,
                h.last_offset(),
                pos - data_start,
                h.size(),
                h.max_timestamp,
                interval,
            );
            max_ts = max_ts.max(h.max_timestamp);
            pos += h.size();
        }
        idx.seal();
        let (index, time_index) = idx.encode();
        Ok(SegmentSuffix {
            segment: SealedSegment {
                base_offset: first.base_offset,
                end_offset: meta.next_offset,
                size_bytes: meta.size - data_start,
                first_timestamp: first.first_timestamp,
                max_timestamp: max_ts,
                log_path: seg.log_path.clone(),
                index_path: seg.index_path().to_path_buf(),
                time_index_path: seg.time_index_path().to_path_buf(),
            },
            data_start,
            index,
            time_index,
        })
    }

    /// Records that offsets below `end` are tiered (in the manifest); local retention may now
    /// delete segments entirely below it. Never moves back.
    pub fn set_tiered_end(&self, end: i64) {
        self.tiered_end.fetch_max(end, Ordering::AcqRel);
    }

    /// Offsets below this are known to be tiered (0 until [`set_tiered_end`](Self::set_tiered_end)).
    pub fn tiered_end(&self) -> i64 {
        self.tiered_end.load(Ordering::Acquire)
    }

    /// Bytes of the local segments not entirely below [`tiered_end`](Self::tiered_end): sealed
    /// but not yet uploaded, plus the active segment (the "upload lag", and what
    /// `retention.bytes` adds to the remote bytes). A segment the tiered end falls inside
    /// (another leader rolled at different offsets) counts whole.
    pub fn untiered_bytes(&self) -> u64 {
        let end = self.tiered_end();
        rlock(&self.shared)
            .segments
            .iter()
            .filter(|m| m.next_offset > end)
            .map(|m| m.size)
            .sum()
    }

    /// Bytes of sealed (non-active) segments not yet tiered: the upload lag. Cheap (no I/O).
    pub fn sealed_untiered_bytes(&self) -> u64 {
        let end = self.tiered_end();
        let shared = rlock(&self.shared);
        let sealed = shared.segments.len().saturating_sub(1);
        shared.segments[..sealed]
            .iter()
            .filter(|m| m.next_offset > end)
            .map(|m| m.size)
            .sum()
    }

    /// Seals the active segment now if it holds any data (clean shutdown, so that everything
    /// can be tiered; tests). Returns whether it rolled. [`Error::Closed`] after `close()`.
    pub fn roll_now(&self) -> Result<bool> {
        let mut w = self.writer()?;
        if rlock(&self.shared).active()?.size == 0 {
            return Ok(false);
        }
        self.roll(&mut w)?;
        Ok(true)
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
        Ok(self.log_start_offset())
    }

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
        let (_, cut_pos, batch) = locate(&meta, offset, READ_CHUNK)?;
        let cut = batch.base_offset;
        if cut < start {
            return Err(Error::OffsetOutOfRange {
                offset: cut,
                start,
                end,
            });
        }
        // Cut at the very start of a segment that is not the first: the segment goes whole and
        // the one before it becomes active again, unchanged. Otherwise the segment is cut.
        let drop_whole = cut_pos == 0 && i > 0;
        let rebuilt = if drop_whole {
            None
        } else {
            let interval = rlock(&self.config).index_interval_bytes;
            let (idx, parts, problem) = index_scan(&meta.seg, cut_pos, false, interval)?;
            if let Some(problem) = problem {
                return Err(meta.seg.corrupt(parts.size, problem));
            }
            Some((idx, parts))
        };

        let truncating = wlock(&self.truncation);
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
            let keep = if drop_whole { i } else { i + 1 };
            let removed: Vec<SegmentMeta> = s.segments.drain(keep..).collect();
            s.unsynced
                .retain(|seg| !removed.iter().any(|m| Arc::ptr_eq(&m.seg, seg)));
            removed
        };
        drop(truncating);
        if !removed.is_empty() {
            self.delete_segments(&removed)?;
        }
        w.roll_base_ms = roll_base_of(rlock(&self.shared).active()?)?;
        self.settle_truncation(cut)?;
        self.update_epochs(true, |c| c.truncate_from_end(cut))?;
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
        self.recovery_point.sync_data().map_err(|e| {
            Error::io(
                "fsync recovery point",
                self.dir.join(RECOVERY_POINT_FILE),
                e,
            )
        })
    }

    /// Replaces the config; takes effect on the next call. An invalid config is logged and
    /// ignored (see [`try_update_config`](Self::try_update_config)).
    pub fn update_config(&self, config: LogConfig) {
        if let Err(e) = self.try_update_config(config) {
            warn!(error = %e, dir = %self.dir.display(), "ignoring invalid log config");
        }
    }

    /// Replaces the config if it is valid.
    pub fn try_update_config(&self, config: LogConfig) -> Result<()> {
        config.validate()?;
        *wlock(&self.config) = config;
        Ok(())
    }

    /// The current config.
    pub fn config(&self) -> LogConfig {
        rlock(&self.config).clone()
    }

    /// Total committed bytes of all segments.
    pub fn size_bytes(&self) -> u64 {
        rlock(&self.shared).segments.iter().map(|m| m.size).sum()
    }

    /// Number of segments, the active one included.
    pub fn segment_count(&self) -> usize {
        rlock(&self.shared).segments.len()
    }

    /// The log directory.
    pub fn dir(&self) -> &Path {
        &self.dir
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
        let marker = self.dir.join(CLEAN_SHUTDOWN_FILE);
        File::create(&marker)
            .and_then(|f| f.sync_all())
            .map_err(|e| Error::io("write clean-shutdown marker", &marker, e))?;
        sync_dir(&self.dir)?;
        w.closed = true;
        info!(dir = %self.dir.display(), log_end_offset = self.log_end_offset(), "closed partition log");
        Ok(())
    }
}

impl std::fmt::Debug for PartitionLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = rlock(&self.shared);
        f.debug_struct("PartitionLog")
            .field("dir", &self.dir)
            .field("log_start_offset", &s.log_start())
            .field("log_end_offset", &s.log_end())
            .field("segments", &s.segments.len())
            .field("durable_offset", &self.durable_offset())
            .finish()
    }
}

/// The batch of `meta` holding `offset` (the first whose last offset is `>= offset`), found
/// through the offset index and a walk over batch headers read `chunk` bytes at a time.
/// Returns the reader (to keep walking), the batch's position and its header.
fn locate(
    meta: &SegmentMeta,
    offset: i64,
    chunk: usize,
) -> Result<(ChunkReader<'_>, u64, BatchHeader)> {
    let seg = &meta.seg;
    let mut pos = seg.index().lookup(offset);
    let mut reader = ChunkReader::with_chunk(seg, meta.size, chunk);
    loop {
        if pos >= meta.size {
            return Err(seg.corrupt(pos, format!("offset {offset} not found in segment")));
        }
        let h = reader.header(pos)?.map_err(|r| seg.corrupt(pos, r))?;
        if h.last_offset() >= offset {
            return Ok((reader, pos, h));
        }
        pos += h.size();
    }
}

/// Kafka's rule for a segment that becomes active again (reopen, truncation): its age for
/// `segment_ms` counts from its first batch's max timestamp; `None` while it is empty.
fn roll_base_of(meta: &SegmentMeta) -> Result<Option<i64>> {
    if meta.size == 0 {
        return Ok(None);
    }
    let mut h = [0u8; HEADER_SIZE];
    meta.seg.read_exact_at(&mut h, 0)?;
    Ok(Some(BatchHeader::parse(&h)?.max_timestamp).filter(|t| *t > 0))
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

/// Finds the first record at or after `min_offset` (the log start) with timestamp `>= ts` in
/// one segment (see [`PartitionLog::offset_for_timestamp`]).
fn find_in_segment(
    meta: &SegmentMeta,
    ts: i64,
    min_offset: i64,
) -> Result<Option<TimestampOffset>> {
    let seg = &meta.seg;
    let mut pos = {
        let idx = seg.index();
        idx.lookup(idx.time_lookup(ts))
    };
    let mut reader = ChunkReader::with_chunk(seg, meta.size, READ_CHUNK);
    while pos < meta.size {
        let h = reader.header(pos)?.map_err(|r| seg.corrupt(pos, r))?;
        if h.max_timestamp >= ts && h.last_offset() >= min_offset {
            if h.timestamp_type() == TimestampType::LogAppendTime {
                return Ok(Some(TimestampOffset {
                    offset: h.base_offset.max(min_offset),
                    timestamp: h.max_timestamp,
                }));
            }
            let mut bytes = Bytes::from(seg.read_vec(pos, h.size() as usize)?);
            let set = RecordBatchDecoder::decode(&mut bytes)
                .map_err(|e| seg.corrupt(pos, format!("cannot decode batch: {e}")))?;
            if let Some(r) = set
                .records
                .iter()
                .find(|r| r.timestamp >= ts && r.offset >= min_offset)
            {
                return Ok(Some(TimestampOffset {
                    offset: r.offset,
                    timestamp: r.timestamp,
                }));
            }
        }
        pos += h.size();
    }
    Ok(None)
}

fn read_recovery_point(f: &File) -> i64 {
    let mut b = [0u8; 12];
    if f.read_exact_at(&mut b, 0).is_err() {
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
fn write_recovery_point(f: &File, offset: i64) -> std::io::Result<()> {
    let v = offset.to_be_bytes();
    let mut b = [0u8; 12];
    b[..8].copy_from_slice(&v);
    b[8..].copy_from_slice(&crc32c::crc32c(&v).to_be_bytes());
    f.write_all_at(&b, 0)
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
            && (ext == segment::INDEX_SUFFIX || ext == segment::TIME_INDEX_SUFFIX)
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
    let bases: Vec<i64> = list_segments(dir)?.into_iter().map(|b| b as i64).collect();
    let mut segments: Vec<SegmentMeta> = Vec::with_capacity(bases.len().max(1));
    let mut scanned = Vec::new();
    let mut dir_dirty = false;
    for (i, &base) in bases.iter().enumerate() {
        if let Some(prev) = segments.last()
            && prev.next_offset != base
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
        let is_last = i + 1 == bases.len();
        // Everything in a segment is below the recovery point iff the next segment starts
        // at or below it.
        let trusted = bases.get(i + 1).is_some_and(|next| *next <= recovery_point)
            || recovery_point == i64::MAX;
        let (seg, had_index) = Segment::open(dir, base)?;
        let loaded = load_segment(
            seg,
            had_index,
            trusted,
            !is_last,
            config.index_interval_bytes,
        )?;
        if loaded.scanned {
            scanned.push(loaded.meta.seg.clone());
        }
        segments.push(loaded.meta);
    }
    if segments.is_empty() {
        segments.push(empty_segment(dir, start_offset)?);
        dir_dirty = true;
    }
    Ok((segments, scanned, dir_dirty))
}

fn empty_segment(dir: &Path, base_offset: i64) -> Result<SegmentMeta> {
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

/// Reads the persisted DeleteRecords log start; 0 when there is none. A damaged file is an
/// error rather than 0: silently forgetting a DeleteRecords would resurrect deleted records.
fn read_log_start(dir: &Path) -> Result<i64> {
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
fn write_log_start(dir: &Path, offset: i64) -> Result<()> {
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
fn replace_file(dir: &Path, name: &str, tmp: &str, bytes: &[u8]) -> Result<()> {
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

fn load_segment(
    seg: Segment,
    had_index: bool,
    trusted: bool,
    sealed: bool,
    interval: u32,
) -> Result<Loaded> {
    let file_len = seg.file_len()?;
    if trusted && had_index {
        if let Some(parts) = quick_load(&seg, file_len, interval)? {
            if sealed {
                seg.index().seal();
            }
            return Ok(Loaded {
                meta: parts.into_meta(Arc::new(seg)),
                scanned: false,
            });
        }
        warn!(path = %seg.log_path.display(), "index files damaged; rebuilding them by a full scan");
    }
    let parts = full_scan(&seg, file_len, sealed, interval)?;
    Ok(Loaded {
        meta: parts.into_meta(Arc::new(seg)),
        scanned: true,
    })
}

/// Published state of a segment being loaded, before it is wrapped in an `Arc`.
struct MetaParts {
    size: u64,
    next_offset: i64,
    max_ts: i64,
    max_ts_offset: i64,
}

impl MetaParts {
    fn into_meta(self, seg: Arc<Segment>) -> SegmentMeta {
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
        if let Some(e) = expected
            && h.base_offset != e
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
        max_ts,
        max_ts_offset,
    }))
}

/// Scans a whole segment with CRC and offset-continuity checks, truncates it after the last
/// good batch, and rebuilds its indexes.
fn full_scan(seg: &Segment, file_len: u64, sealed: bool, interval: u32) -> Result<MetaParts> {
    let (mut idx, parts, problem) = index_scan(seg, file_len, true, interval)?;
    if let Some(problem) = &problem {
        warn!(
            path = %seg.log_path.display(),
            position = parts.size,
            file_len,
            problem = %problem,
            "truncating torn or corrupt segment tail"
        );
        seg.truncate(parts.size)?;
    }
    if sealed {
        idx.seal();
    }
    seg.set_index(idx);
    seg.persist_index(false)?;
    debug!(path = %seg.log_path.display(), size = parts.size, next_offset = parts.next_offset, "scanned segment");
    Ok(parts)
}

/// Walks the batches in `[0, end)` of a segment checking framing, offset continuity from the
/// segment base and (with `verify_crc`) CRC-32C, and builds fresh indexes for them as the
/// appender would have (to be written over the index files). Returns the indexes, the state
/// of the good prefix, and why the scan stopped early, if it did.
fn index_scan(
    seg: &Segment,
    end: u64,
    verify_crc: bool,
    interval: u32,
) -> Result<(SegmentIndex, MetaParts, Option<String>)> {
    let base = seg.base_offset;
    let mut idx = SegmentIndex::new(base);
    let mut expected = base;
    let (mut max_ts, mut max_ts_offset) = (NO_TIMESTAMP, base);
    let scanned = segment::scan(seg, 0, end, verify_crc, |pos, h| {
        if h.base_offset != expected {
            return ControlFlow::Break(Some(format!(
                "base offset {} where {expected} expected",
                h.base_offset
            )));
        }
        if h.last_offset() - base > i64::from(i32::MAX) {
            return ControlFlow::Break(Some(format!(
                "offset {} too far from the segment base",
                h.last_offset()
            )));
        }
        idx.add_batch(
            h.base_offset,
            h.last_offset(),
            pos,
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
    idx.mark_unpersisted();
    let parts = MetaParts {
        size: scanned.valid_end,
        next_offset: expected,
        max_ts,
        max_ts_offset,
    };
    Ok((idx, parts, scanned.problem))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod replication_tests;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::io::Write;
    use std::time::Duration;

    use kafka_protocol::records::Compression;

    use super::*;
    use crate::ErrorKind;
    use crate::testutil::{self, Spec, batch, concat, simple, split};

    pub(super) fn small_config() -> LogConfig {
        LogConfig {
            segment_bytes: 4096,
            segment_ms: None,
            retention_ms: None,
            retention_bytes: None,
            index_interval_bytes: 256,
            ..LogConfig::default()
        }
    }

    pub(super) fn seg_path(dir: &Path, base: i64, suffix: &str) -> PathBuf {
        dir.join(segment::file_name(base, suffix))
    }

    /// Appends `n` single-batch appends of `per` records each with timestamps 1000 + offset.
    pub(super) fn fill(log: &PartitionLog, n: usize, per: usize) -> Vec<AppendResult> {
        (0..n)
            .map(|_| {
                let ts = 1000 + log.log_end_offset();
                log.append(simple(per, ts), 7, 0).unwrap()
            })
            .collect()
    }

    /// Reads everything from `from` to the end, one call after another.
    pub(super) fn read_all(log: &PartitionLog, from: i64) -> Vec<(i64, i32, Vec<u8>)> {
        let mut out = Vec::new();
        let mut next = from;
        while next < log.log_end_offset() {
            let r = log.read(next, 1 << 20).unwrap();
            let batches = split(&r.records);
            assert!(!batches.is_empty(), "read at {next} returned nothing");
            for (base, count, bytes) in batches {
                assert_eq!(base, next, "batches must be contiguous");
                next = base + i64::from(count);
                out.push((base, count, bytes));
            }
        }
        out
    }

    #[test]
    fn log_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<PartitionLog>();
    }

    #[test]
    fn append_read_round_trip_many_batches() {
        let dir = tempfile::tempdir().unwrap();
        let log = PartitionLog::open(dir.path(), small_config()).unwrap();
        let mut originals = Vec::new();
        for i in 0..300usize {
            let spec = Spec {
                records: 1 + i % 5,
                value_len: 5 + i % 40,
                first_ts: 10_000 + i as i64,
                ..Spec::default()
            };
            let b = batch(spec);
            let r = log.append(b.clone(), 3, 0).unwrap();
            assert_eq!(r.last_offset - r.base_offset + 1, spec.records as i64);
            assert_eq!(r.log_append_time_ms, -1);
            originals.push((r.base_offset, b));
        }
        assert!(log.segment_count() > 5, "small segments must have rolled");
        let stored = read_all(&log, 0);
        assert_eq!(stored.len(), originals.len());
        for ((base, _, bytes), (want_base, orig)) in stored.iter().zip(&originals) {
            assert_eq!(base, want_base);
            let mut expect = orig.to_vec();
            crate::batch::patch_offset_and_epoch(&mut expect, *want_base, 3);
            assert_eq!(bytes, &expect, "stored batch differs beyond offset/epoch");
            crate::validate_batches(bytes, u32::MAX).unwrap();
        }
        assert_eq!(log.log_start_offset(), 0);
        assert_eq!(
            log.size_bytes(),
            originals.iter().map(|(_, b)| b.len() as u64).sum::<u64>()
        );
    }

    #[test]
    fn multi_batch_append_assigns_contiguous_offsets() {
        let dir = tempfile::tempdir().unwrap();
        let log = PartitionLog::open(dir.path(), LogConfig::default()).unwrap();
        log.append(simple(2, 1), 0, 0).unwrap();
        let r = log
            .append(concat(&[simple(3, 5), simple(1, 9), simple(4, 10)]), 1, 0)
            .unwrap();
        assert_eq!((r.base_offset, r.last_offset), (2, 9));
        let batches = split(&log.read(2, 1 << 20).unwrap().records);
        let bases: Vec<_> = batches.iter().map(|b| (b.0, b.1)).collect();
        assert_eq!(bases, vec![(2, 3), (5, 1), (6, 4)]);
        assert_eq!(log.log_end_offset(), 10);
    }

    #[test]
    fn read_at_every_offset_returns_the_containing_batch() {
        let dir = tempfile::tempdir().unwrap();
        let log = PartitionLog::open(dir.path(), small_config()).unwrap();
        let appends = fill(&log, 60, 7);
        for a in &appends {
            for off in a.base_offset..=a.last_offset {
                let r = log.read(off, 1).unwrap();
                let b = split(&r.records);
                assert_eq!(b.len(), 1);
                assert_eq!(b[0].0, a.base_offset, "offset {off}");
                assert_eq!(r.log_end_offset, 420);
            }
        }
        let end = log.read(420, 1000).unwrap();
        assert!(end.records.is_empty());
        let e = log.read(421, 1000).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::OffsetOutOfRange);
        assert!(matches!(
            e,
            Error::OffsetOutOfRange {
                offset: 421,
                start: 0,
                end: 420
            }
        ));
        assert_eq!(
            log.read(-1, 10).unwrap_err().kind(),
            ErrorKind::OffsetOutOfRange
        );
    }

    #[test]
    fn max_bytes_returns_whole_batches_and_at_least_one() {
        let dir = tempfile::tempdir().unwrap();
        let log = PartitionLog::open(dir.path(), LogConfig::default()).unwrap();
        let b = simple(3, 0);
        let size = b.len();
        for _ in 0..10 {
            log.append(b.clone(), 0, 0).unwrap();
        }
        // smaller than one batch: still one whole batch
        let r = log.read(0, 1).unwrap();
        assert_eq!(r.records.len(), size);
        // 2.5 batches: two whole batches
        let r = log.read(4, size * 5 / 2).unwrap();
        assert_eq!(r.records.len(), 2 * size);
        assert_eq!(split(&r.records)[0].0, 3);
        // exactly 3
        assert_eq!(log.read(0, size * 3).unwrap().records.len(), 3 * size);
        // more than available: the rest of the log
        assert_eq!(log.read(27, 1 << 20).unwrap().records.len(), size);
        // a batch larger than max_bytes (KIP-74)
        let big = batch(Spec {
            records: 50,
            value_len: 100,
            ..Spec::default()
        });
        log.append(big.clone(), 0, 0).unwrap();
        assert_eq!(log.read(30, 10).unwrap().records.len(), big.len());
    }

    #[test]
    fn rolls_on_segment_bytes_and_lookups_cross_segments() {
        let dir = tempfile::tempdir().unwrap();
        let log = PartitionLog::open(dir.path(), small_config()).unwrap();
        let b = simple(4, 0);
        let per_segment = 4096 / b.len();
        for _ in 0..(per_segment * 5) {
            log.append(b.clone(), 0, 0).unwrap();
        }
        assert_eq!(log.segment_count(), 5);
        let mut files: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".log"))
            .collect();
        files.sort();
        assert_eq!(files.len(), 5);
        assert_eq!(files[0], "00000000000000000000.log");
        assert_eq!(files[1], format!("{:020}.log", per_segment * 4));
        for m in rlock(&log.shared).segments.iter() {
            assert!(m.size <= 4096);
        }
        for off in 0..log.log_end_offset() {
            let r = log.read(off, 1).unwrap();
            assert_eq!(split(&r.records)[0].0, off - off % 4);
        }
    }

    #[test]
    fn single_oversized_append_fills_a_fresh_segment() {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig {
            segment_bytes: 100,
            ..small_config()
        };
        let log = PartitionLog::open(dir.path(), config).unwrap();
        for _ in 0..3 {
            log.append(simple(5, 0), 0, 0).unwrap();
        }
        assert_eq!(log.segment_count(), 3);
        assert_eq!(read_all(&log, 0).len(), 3);
    }

    #[test]
    fn rolls_on_segment_ms() {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig {
            segment_ms: Some(Duration::from_millis(100)),
            ..LogConfig::default()
        };
        let log = PartitionLog::open(dir.path(), config).unwrap();
        log.append(simple(1, 0), 0, 1_000).unwrap();
        log.append(simple(1, 0), 0, 1_050).unwrap();
        log.append(simple(1, 0), 0, 1_100).unwrap();
        assert_eq!(log.segment_count(), 1);
        log.append(simple(1, 0), 0, 1_101).unwrap();
        assert_eq!(log.segment_count(), 2);
        // enforce_retention rolls a due segment even without appends
        assert_eq!(log.enforce_retention(1_150).unwrap(), 0);
        assert_eq!(log.segment_count(), 2);
        assert_eq!(log.enforce_retention(1_202).unwrap(), 0);
        assert_eq!(log.segment_count(), 3);
        // an empty active segment never rolls
        assert_eq!(log.enforce_retention(10_000).unwrap(), 0);
        assert_eq!(log.segment_count(), 3);
        assert_eq!(read_all(&log, 0).len(), 4);
    }

    #[test]
    fn offset_for_timestamp_across_segments_and_inside_batches() {
        let dir = tempfile::tempdir().unwrap();
        let log = PartitionLog::open(dir.path(), small_config()).unwrap();
        // 100 batches of 5 records, timestamps 1000 + 10*offset (strictly increasing)
        for i in 0..100i64 {
            let spec = Spec {
                records: 5,
                first_ts: 1000 + 50 * i,
                ts_step: 10,
                ..Spec::default()
            };
            log.append(batch(spec), 0, 0).unwrap();
        }
        assert!(log.segment_count() > 3);
        for off in (0..500).step_by(7) {
            let ts = 1000 + 10 * off;
            assert_eq!(
                log.offset_for_timestamp(ts).unwrap(),
                Some(TimestampOffset {
                    offset: off,
                    timestamp: ts
                }),
                "exact timestamp of offset {off}"
            );
            // just after a record's timestamp: the next record
            let found = log.offset_for_timestamp(ts + 1).unwrap();
            if off < 499 {
                assert_eq!(found.unwrap().offset, off + 1);
            }
        }
        assert_eq!(log.offset_for_timestamp(0).unwrap().unwrap().offset, 0);
        assert_eq!(log.offset_for_timestamp(1000 + 10 * 499 + 1).unwrap(), None);
        assert_eq!(
            log.max_timestamp(),
            Some(TimestampOffset {
                offset: 499,
                timestamp: 1000 + 4990
            })
        );
    }

    #[test]
    fn offset_for_timestamp_with_out_of_order_create_times() {
        let dir = tempfile::tempdir().unwrap();
        let log = PartitionLog::open(dir.path(), LogConfig::default()).unwrap();
        let spec = Spec {
            records: 4,
            ..Spec::default()
        };
        let b1 = testutil::encode(
            &testutil::records_of(spec, Some(&[100, 500, 200, 300])),
            Compression::None,
        );
        let b2 = testutil::encode(
            &testutil::records_of(spec, Some(&[150, 160, 700, 170])),
            Compression::Zstd,
        );
        log.append(b1, 0, 0).unwrap();
        log.append(b2, 0, 0).unwrap();
        let at = |ts| {
            log.offset_for_timestamp(ts)
                .unwrap()
                .map(|t| (t.offset, t.timestamp))
        };
        assert_eq!(at(50), Some((0, 100)));
        assert_eq!(at(250), Some((1, 500)));
        assert_eq!(at(501), Some((6, 700)));
        assert_eq!(at(701), None);
        assert_eq!(
            log.max_timestamp(),
            Some(TimestampOffset {
                offset: 6,
                timestamp: 700
            })
        );
    }

    #[test]
    fn log_append_time_stamps_batches_and_keeps_them_valid() {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig {
            message_timestamp_type: TimestampType::LogAppendTime,
            ..LogConfig::default()
        };
        let log = PartitionLog::open(dir.path(), config).unwrap();
        let r = log.append(simple(3, 5), 0, 42_000).unwrap();
        assert_eq!(r.log_append_time_ms, 42_000);
        let gz = batch(Spec {
            records: 3,
            compression: Compression::Gzip,
            ..Spec::default()
        });
        log.append(gz, 0, 43_000).unwrap();
        let stored = log.read(0, 1 << 20).unwrap().records;
        let headers = crate::validate_batches(&stored, u32::MAX).unwrap();
        assert_eq!(headers.len(), 2);
        for (h, t) in headers.iter().zip([42_000, 43_000]) {
            assert_eq!(h.timestamp_type(), TimestampType::LogAppendTime);
            assert_eq!((h.first_timestamp, h.max_timestamp), (t, t));
        }
        assert_eq!(
            log.offset_for_timestamp(42_500).unwrap(),
            Some(TimestampOffset {
                offset: 3,
                timestamp: 43_000
            })
        );
        assert_eq!(
            log.max_timestamp(),
            Some(TimestampOffset {
                offset: 3,
                timestamp: 43_000
            })
        );
    }

    #[test]
    fn producer_max_timestamp_is_corrected_for_uncompressed_batches() {
        let dir = tempfile::tempdir().unwrap();
        let log = PartitionLog::open(dir.path(), LogConfig::default()).unwrap();
        let mut b = simple(3, 100).to_vec(); // records at 100, 101, 102
        b[35..43].copy_from_slice(&5i64.to_be_bytes());
        testutil::fix_crc(&mut b);
        log.append(Bytes::from(b), 0, 0).unwrap();
        let stored = log.read(0, 1 << 20).unwrap().records;
        let h = crate::validate_batches(&stored, u32::MAX).unwrap()[0];
        assert_eq!(h.max_timestamp, 102);
        assert_eq!(log.max_timestamp().unwrap().timestamp, 102);
    }

    #[test]
    fn compressed_batches_pass_through_byte_identical() {
        let dir = tempfile::tempdir().unwrap();
        let log = PartitionLog::open(dir.path(), LogConfig::default()).unwrap();
        log.append(simple(2, 0), 0, 0).unwrap();
        for (i, c) in [Compression::Gzip, Compression::Zstd]
            .into_iter()
            .enumerate()
        {
            let b = batch(Spec {
                records: 20,
                value_len: 200,
                first_ts: 5_000 + 100 * i as i64,
                compression: c,
                ..Spec::default()
            });
            assert_eq!(b[22] & 0x07, c as u8);
            let r = log.append(b.clone(), 9, 0).unwrap();
            let stored = log.read(r.base_offset, 1).unwrap().records;
            let mut expect = b.to_vec();
            crate::batch::patch_offset_and_epoch(&mut expect, r.base_offset, 9);
            assert_eq!(&stored[..], &expect[..]);
            // and its records are reachable by timestamp (decoded, not on the hot path)
            let found = log
                .offset_for_timestamp(5_000 + 100 * i as i64 + 7)
                .unwrap()
                .unwrap();
            assert_eq!(found.offset, r.base_offset + 7);
        }
    }

    #[test]
    fn rejected_append_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let log = PartitionLog::open(dir.path(), LogConfig::default()).unwrap();
        log.append(simple(2, 0), 0, 0).unwrap();
        let mut bad = simple(2, 0).to_vec();
        let last = bad.len() - 1;
        bad[last] ^= 0xff;
        let input = concat(&[simple(1, 0), simple(1, 0), Bytes::from(bad)]);
        let e = log.append(input, 0, 0).unwrap_err();
        assert!(matches!(e, Error::CorruptMessage { .. }), "{e}");
        assert_eq!(e.kind(), ErrorKind::Invalid);
        assert_eq!(log.log_end_offset(), 2);
        assert_eq!(log.size_bytes(), simple(2, 0).len() as u64);
        assert_eq!(read_all(&log, 0).len(), 1);
        let r = log.append(simple(1, 0), 0, 0).unwrap();
        assert_eq!(r.base_offset, 2);
    }

    #[test]
    fn retention_by_time_never_deletes_the_active_segment() {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig {
            retention_ms: Some(Duration::from_millis(1000)),
            ..small_config()
        };
        let log = PartitionLog::open(dir.path(), config).unwrap();
        // timestamps = 1000 + offset, 4 records per batch
        fill(&log, 100, 4);
        let segments = log.segment_count();
        assert!(segments > 3);
        // nothing is older than 1000ms at now=1500
        assert_eq!(log.enforce_retention(1_500).unwrap(), 0);
        // at now = 2000 + 400 everything is expired, but the active segment stays
        assert_eq!(log.enforce_retention(100_000).unwrap(), segments - 1);
        assert_eq!(log.segment_count(), 1);
        let start = log.log_start_offset();
        assert!(start > 0);
        assert_eq!(
            log.read(start - 1, 10).unwrap_err().kind(),
            ErrorKind::OffsetOutOfRange
        );
        assert_eq!(split(&log.read(start, 1).unwrap().records)[0].0, start);
        assert_eq!(
            log.append(simple(1, 0), 0, 0).unwrap().log_start_offset,
            start
        );
        // deleted files are gone
        assert!(!seg_path(dir.path(), 0, "log").exists());
        assert!(!seg_path(dir.path(), 0, "index").exists());
    }

    #[test]
    fn retention_by_time_deletes_only_expired_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig {
            retention_ms: Some(Duration::from_millis(1000)),
            ..small_config()
        };
        let log = PartitionLog::open(dir.path(), config).unwrap();
        fill(&log, 100, 4);
        let metas = rlock(&log.shared).segments.clone();
        // now such that exactly the first two segments are older than 1000ms
        let now = metas[1].max_ts + 1001;
        assert_eq!(log.enforce_retention(now).unwrap(), 2);
        assert_eq!(log.log_start_offset(), metas[2].seg.base_offset);
    }

    #[test]
    fn retention_by_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig {
            retention_bytes: Some(10_000),
            ..small_config()
        };
        let log = PartitionLog::open(dir.path(), config).unwrap();
        fill(&log, 200, 4);
        let before = log.size_bytes();
        assert!(before > 20_000);
        let deleted = log.enforce_retention(0).unwrap();
        assert!(deleted > 0);
        // Kafka's rule: delete a segment only while the log stays at or above the limit
        // without it, so the log ends within one segment above the limit.
        let after = log.size_bytes();
        assert!(after >= 10_000, "size {after} went below the limit");
        let first = rlock(&log.shared).segments[0].size;
        assert!(
            after - first < 10_000,
            "size {after}: could have deleted {first} more"
        );
        assert_eq!(
            log.read(log.log_start_offset() - 1, 1).unwrap_err().kind(),
            ErrorKind::OffsetOutOfRange
        );
        // never the active segment, even with a tiny limit
        log.update_config(LogConfig {
            retention_bytes: Some(0),
            ..small_config()
        });
        log.enforce_retention(0).unwrap();
        assert_eq!(log.segment_count(), 1);
        assert!(log.size_bytes() > 0);
    }

    #[test]
    fn reopen_after_close_preserves_everything() {
        let dir = tempfile::tempdir().unwrap();
        let (end, stored, segments, max_ts) = {
            let log = PartitionLog::open(dir.path(), small_config()).unwrap();
            fill(&log, 150, 3);
            log.close().unwrap();
            assert!(matches!(
                log.append(simple(1, 0), 0, 0),
                Err(Error::Closed { .. })
            ));
            (
                log.log_end_offset(),
                read_all(&log, 0),
                log.segment_count(),
                log.max_timestamp(),
            )
        };
        assert!(dir.path().join(CLEAN_SHUTDOWN_FILE).exists());
        let log = PartitionLog::open(dir.path(), small_config()).unwrap();
        assert!(!dir.path().join(CLEAN_SHUTDOWN_FILE).exists());
        assert_eq!(log.log_end_offset(), end);
        assert_eq!(log.durable_offset(), end);
        assert_eq!(log.segment_count(), segments);
        assert_eq!(read_all(&log, 0), stored);
        assert_eq!(log.max_timestamp(), max_ts);
        assert_eq!(
            log.offset_for_timestamp(1000 + 100)
                .unwrap()
                .unwrap()
                .offset,
            100
        );
        assert_eq!(log.append(simple(1, 0), 0, 0).unwrap().base_offset, end);
    }

    #[test]
    fn clean_reopen_does_not_rebuild_indexes() {
        let dir = tempfile::tempdir().unwrap();
        {
            let log = PartitionLog::open(dir.path(), small_config()).unwrap();
            fill(&log, 150, 3);
            log.close().unwrap();
        }
        let index = seg_path(dir.path(), 0, "index");
        let before = fs::read(&index).unwrap();
        assert!(!before.is_empty());
        let log = PartitionLog::open(dir.path(), small_config()).unwrap();
        assert!(
            rlock(&log.shared).unsynced.is_empty(),
            "nothing should have been scanned"
        );
        let (offs, _) = (log.read(0, 1).unwrap(), ());
        assert!(!offs.records.is_empty());
        assert_eq!(fs::read(&index).unwrap(), before);
    }

    #[test]
    fn unclean_reopen_keeps_unflushed_page_cache_data() {
        let dir = tempfile::tempdir().unwrap();
        let stored = {
            let log = PartitionLog::open(dir.path(), small_config()).unwrap();
            fill(&log, 50, 3);
            assert_eq!(log.flush().unwrap(), 150);
            assert_eq!(log.durable_offset(), 150);
            fill(&log, 50, 3);
            assert_eq!(log.durable_offset(), 150);
            read_all(&log, 0)
            // dropped without close(): a crash as far as the files are concerned
        };
        let log = PartitionLog::open(dir.path(), small_config()).unwrap();
        assert_eq!(log.log_end_offset(), 300);
        assert_eq!(log.durable_offset(), 300);
        assert_eq!(read_all(&log, 0), stored);
        for off in (0..300).step_by(11) {
            assert_eq!(
                split(&log.read(off, 1).unwrap().records)[0].0,
                off - off % 3
            );
        }
    }

    /// Crash with a damaged tail, then check: truncated to the last good batch, indexes fine,
    /// appends continue at the right offset.
    fn check_tail_recovery(damage: impl FnOnce(&Path)) {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig {
            segment_bytes: 1 << 20,
            ..small_config()
        };
        {
            let log = PartitionLog::open(dir.path(), config.clone()).unwrap();
            fill(&log, 20, 5);
            log.flush().unwrap();
        }
        damage(&seg_path(dir.path(), 0, "log"));
        let log = PartitionLog::open(dir.path(), config).unwrap();
        assert_eq!(
            log.log_end_offset(),
            95,
            "the last batch (90..95) is damaged"
        );
        let file_len = fs::metadata(seg_path(dir.path(), 0, "log")).unwrap().len();
        assert_eq!(
            file_len,
            log.size_bytes(),
            "the damaged tail is cut off the file"
        );
        let stored = read_all(&log, 0);
        assert_eq!(stored.len(), 19);
        let r = log.append(simple(2, 0), 0, 0).unwrap();
        assert_eq!(r.base_offset, 95);
        assert_eq!(read_all(&log, 90).len(), 2);
        assert_eq!(log.durable_offset(), 95);
    }

    fn last_batch_len() -> u64 {
        simple(5, 0).len() as u64
    }

    #[test]
    fn recovery_truncates_torn_tail() {
        check_tail_recovery(|p| {
            let f = OpenOptions::new().write(true).open(p).unwrap();
            let len = f.metadata().unwrap().len();
            f.set_len(len - last_batch_len() / 2).unwrap();
        });
    }

    #[test]
    fn recovery_truncates_flipped_byte_in_last_batch() {
        check_tail_recovery(|p| {
            let f = OpenOptions::new().read(true).write(true).open(p).unwrap();
            let len = f.metadata().unwrap().len();
            let at = len - 3;
            let mut b = [0u8; 1];
            f.read_exact_at(&mut b, at).unwrap();
            f.write_all_at(&[b[0] ^ 0x01], at).unwrap();
        });
    }

    #[test]
    fn recovery_truncates_garbage_after_last_batch() {
        let dir = tempfile::tempdir().unwrap();
        {
            let log = PartitionLog::open(dir.path(), small_config()).unwrap();
            fill(&log, 10, 5);
        }
        let mut f = OpenOptions::new()
            .append(true)
            .open(seg_path(dir.path(), 0, "log"))
            .unwrap();
        f.write_all(&[0xde; 100]).unwrap();
        drop(f);
        let log = PartitionLog::open(dir.path(), small_config()).unwrap();
        assert_eq!(log.log_end_offset(), 50);
        let file_len = fs::metadata(seg_path(dir.path(), 0, "log")).unwrap().len();
        assert_eq!(
            file_len,
            log.size_bytes(),
            "the garbage is cut off the file"
        );
        assert_eq!(read_all(&log, 0).len(), 10);
        assert_eq!(log.append(simple(1, 0), 0, 0).unwrap().base_offset, 50);
        drop(log);
        // garbage that looks like a header with a huge length, after a clean close
        let log = PartitionLog::open(dir.path(), small_config()).unwrap();
        log.close().unwrap();
        drop(log);
        let mut fake = simple(1, 0).to_vec();
        fake[8..12].copy_from_slice(&i32::MAX.to_be_bytes());
        let mut f = OpenOptions::new()
            .append(true)
            .open(seg_path(dir.path(), 0, "log"))
            .unwrap();
        f.write_all(&fake).unwrap();
        drop(f);
        let log = PartitionLog::open(dir.path(), small_config()).unwrap();
        assert_eq!(log.log_end_offset(), 51);
        assert_eq!(log.append(simple(1, 0), 0, 0).unwrap().base_offset, 51);
    }

    #[test]
    fn corruption_in_an_old_unflushed_segment_drops_later_segments() {
        let dir = tempfile::tempdir().unwrap();
        {
            let log = PartitionLog::open(dir.path(), small_config()).unwrap();
            fill(&log, 100, 4);
            assert!(log.segment_count() >= 3);
        }
        // flip a byte in the middle of the first segment (nothing was flushed)
        let p = seg_path(dir.path(), 0, "log");
        let f = OpenOptions::new().read(true).write(true).open(&p).unwrap();
        f.write_all_at(&[0xff], 2000).unwrap();
        drop(f);
        let log = PartitionLog::open(dir.path(), small_config()).unwrap();
        assert_eq!(log.segment_count(), 1);
        let end = log.log_end_offset();
        assert!(end > 0 && end < 400);
        assert_eq!(end % 4, 0);
        assert_eq!(read_all(&log, 0).len() as i64, end / 4);
        assert_eq!(log.append(simple(1, 0), 0, 0).unwrap().base_offset, end);
    }

    #[test]
    fn missing_and_corrupt_index_files_are_rebuilt() {
        let dir = tempfile::tempdir().unwrap();
        let (stored, ts_answers) = {
            let log = PartitionLog::open(dir.path(), small_config()).unwrap();
            fill(&log, 150, 3);
            log.close().unwrap();
            let ts: Vec<_> = (0..450)
                .step_by(17)
                .map(|o| log.offset_for_timestamp(1000 + o).unwrap())
                .collect();
            (read_all(&log, 0), ts)
        };
        let index0 = seg_path(dir.path(), 0, "index");
        let good_index0 = fs::read(&index0).unwrap();
        fs::remove_file(&index0).unwrap();
        // second segment: its time index gets garbage, its offset index a torn entry
        let bases: Vec<i64> = {
            let mut v: Vec<_> = fs::read_dir(dir.path())
                .unwrap()
                .filter_map(|e| segment::parse_log_name(e.unwrap().file_name().to_str().unwrap()))
                .collect();
            v.sort();
            v
        };
        assert!(bases.len() >= 3);
        fs::write(seg_path(dir.path(), bases[1], "timeindex"), [0xab; 36]).unwrap();
        let idx1 = seg_path(dir.path(), bases[1], "index");
        let good_index1 = fs::read(&idx1).unwrap();
        fs::write(&idx1, &good_index1[..good_index1.len() - 5]).unwrap();
        // third segment: index entry pointing into the middle of a batch
        let idx2 = seg_path(dir.path(), bases[2], "index");
        let mut bad = fs::read(&idx2).unwrap();
        assert!(bad.len() >= 8);
        let n = bad.len();
        let pos = u32::from_be_bytes([bad[n - 4], bad[n - 3], bad[n - 2], bad[n - 1]]);
        bad[n - 4..].copy_from_slice(&(pos + 1).to_be_bytes());
        fs::write(&idx2, &bad).unwrap();

        let log = PartitionLog::open(dir.path(), small_config()).unwrap();
        assert_eq!(read_all(&log, 0), stored);
        let ts: Vec<_> = (0..450)
            .step_by(17)
            .map(|o| log.offset_for_timestamp(1000 + o).unwrap())
            .collect();
        assert_eq!(ts, ts_answers);
        for off in 0..450 {
            assert_eq!(
                split(&log.read(off, 1).unwrap().records)[0].0,
                off - off % 3
            );
        }
        assert_eq!(
            fs::read(&index0).unwrap(),
            good_index0,
            "rebuilt index equals the original"
        );
        assert_eq!(fs::read(&idx1).unwrap(), good_index1);
        assert_eq!(
            fs::metadata(seg_path(dir.path(), bases[1], "timeindex"))
                .unwrap()
                .len()
                % 12,
            0
        );
    }

    #[test]
    fn orphan_index_files_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        drop(PartitionLog::open(dir.path(), LogConfig::default()).unwrap());
        let orphan = seg_path(dir.path(), 500, "index");
        fs::write(&orphan, [0u8; 8]).unwrap();
        drop(PartitionLog::open(dir.path(), LogConfig::default()).unwrap());
        assert!(!orphan.exists());
    }

    #[test]
    fn second_open_of_the_same_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let _log = PartitionLog::open(dir.path(), LogConfig::default()).unwrap();
        let e = PartitionLog::open(dir.path(), LogConfig::default()).unwrap_err();
        assert!(matches!(e, Error::Locked { .. }));
        assert_eq!(e.kind(), ErrorKind::Unavailable);
    }

    #[test]
    fn invalid_config_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let bad = LogConfig {
            segment_bytes: 1,
            ..LogConfig::default()
        };
        assert!(matches!(
            PartitionLog::open(dir.path(), bad.clone()),
            Err(Error::InvalidConfig { .. })
        ));
        let log = PartitionLog::open(dir.path(), LogConfig::default()).unwrap();
        log.update_config(bad);
        assert_eq!(log.config(), LogConfig::default());
    }

    #[test]
    fn message_too_large_follows_updated_config() {
        let dir = tempfile::tempdir().unwrap();
        let log = PartitionLog::open(dir.path(), LogConfig::default()).unwrap();
        let b = simple(10, 0);
        log.append(b.clone(), 0, 0).unwrap();
        log.update_config(LogConfig {
            max_message_bytes: (b.len() - 1) as u32,
            ..LogConfig::default()
        });
        let e = log.append(b.clone(), 0, 0).unwrap_err();
        assert!(matches!(e, Error::MessageTooLarge { size, .. } if size == b.len() as u64));
    }

    #[test]
    fn concurrent_appends_reads_and_flushes_stay_consistent() {
        let dir = tempfile::tempdir().unwrap();
        let log = Arc::new(PartitionLog::open(dir.path(), small_config()).unwrap());
        let writer = {
            let log = log.clone();
            std::thread::spawn(move || {
                for i in 0..400 {
                    log.append(simple(1 + i % 3, i as i64), 0, i as i64)
                        .unwrap();
                }
            })
        };
        let flusher = {
            let log = log.clone();
            std::thread::spawn(move || {
                let mut last = 0;
                for _ in 0..20 {
                    let d = log.flush().unwrap();
                    assert!(d >= last);
                    last = d;
                }
            })
        };
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let log = log.clone();
                std::thread::spawn(move || {
                    for _ in 0..200 {
                        let end = log.log_end_offset();
                        if end == 0 {
                            continue;
                        }
                        let off = end / 2;
                        let r = log.read(off, 4096).unwrap();
                        let batches = split(&r.records);
                        assert!(batches[0].0 <= off);
                        assert!(off < batches[0].0 + i64::from(batches[0].1));
                        let mut next = batches[0].0;
                        for (base, count, bytes) in batches {
                            assert_eq!(base, next);
                            next += i64::from(count);
                            crate::validate_batches(&bytes, u32::MAX).unwrap();
                        }
                        assert!(next <= r.log_end_offset);
                    }
                })
            })
            .collect();
        writer.join().unwrap();
        flusher.join().unwrap();
        for r in readers {
            r.join().unwrap();
        }
        assert_eq!(log.flush().unwrap(), log.log_end_offset());
        assert_eq!(log.durable_offset(), log.log_end_offset());
    }

    fn remote_config() -> LogConfig {
        LogConfig {
            remote_storage: true,
            ..small_config()
        }
    }

    #[test]
    fn sealed_segments_are_complete_and_exclude_the_active_one() {
        let dir = tempfile::tempdir().unwrap();
        let log = PartitionLog::open(dir.path(), small_config()).unwrap();
        assert!(log.sealed_segments().unwrap().is_empty());
        fill(&log, 100, 4);
        let sealed = log.sealed_segments().unwrap();
        assert_eq!(sealed.len(), log.segment_count() - 1);
        let metas = rlock(&log.shared).segments.clone();
        let mut next = 0;
        for (s, m) in sealed.iter().zip(&metas) {
            assert_eq!(s.base_offset, next);
            assert!(s.end_offset > s.base_offset);
            next = s.end_offset;
            assert_eq!(s.first_timestamp, 1000 + s.base_offset);
            assert_eq!(s.max_timestamp, 1000 + s.end_offset - 1);
            assert_eq!(std::fs::metadata(&s.log_path).unwrap().len(), s.size_bytes);
            // the files hold every index entry, the final time entry included
            let (offsets, times) = {
                let idx = m.seg.index();
                let (o, t) = idx.entries();
                (o.len(), t.len())
            };
            assert_eq!(
                std::fs::metadata(&s.index_path).unwrap().len(),
                offsets as u64 * 8
            );
            assert_eq!(
                std::fs::metadata(&s.time_index_path).unwrap().len(),
                times as u64 * 12
            );
            let t = std::fs::read(&s.time_index_path).unwrap();
            let last_ts = i64::from_be_bytes(t[t.len() - 12..t.len() - 4].try_into().unwrap());
            assert_eq!(last_ts, s.max_timestamp);
        }
        assert_eq!(next, metas.last().unwrap().seg.base_offset);
    }

    #[test]
    fn sealed_segments_while_appending() {
        let dir = tempfile::tempdir().unwrap();
        let log = Arc::new(PartitionLog::open(dir.path(), small_config()).unwrap());
        let writer = {
            let log = log.clone();
            std::thread::spawn(move || fill(&log, 300, 2))
        };
        for _ in 0..50 {
            let sealed = log.sealed_segments().unwrap();
            for w in sealed.windows(2) {
                assert_eq!(w[0].end_offset, w[1].base_offset);
            }
            if let Some(last) = sealed.last() {
                assert!(last.end_offset <= log.log_end_offset());
            }
        }
        writer.join().unwrap();
    }

    #[test]
    fn roll_now_seals_only_a_non_empty_active_segment() {
        let dir = tempfile::tempdir().unwrap();
        let log = PartitionLog::open(dir.path(), small_config()).unwrap();
        assert!(!log.roll_now().unwrap());
        log.append(simple(3, 1000), 0, 0).unwrap();
        assert!(log.roll_now().unwrap());
        assert!(!log.roll_now().unwrap());
        let sealed = log.sealed_segments().unwrap();
        assert_eq!(sealed.len(), 1);
        assert_eq!((sealed[0].base_offset, sealed[0].end_offset), (0, 3));
        assert_eq!(log.append(simple(1, 1000), 0, 0).unwrap().base_offset, 3);
        log.close().unwrap();
        assert!(matches!(log.roll_now(), Err(Error::Closed { .. })));
    }

    #[test]
    fn open_at_starts_an_empty_log_at_the_tiered_end() {
        let dir = tempfile::tempdir().unwrap();
        {
            let log = PartitionLog::open_at(dir.path(), small_config(), 5000).unwrap();
            assert_eq!((log.log_start_offset(), log.log_end_offset()), (5000, 5000));
            assert_eq!(
                log.read(4999, 10).unwrap_err().kind(),
                ErrorKind::OffsetOutOfRange
            );
            assert!(log.read(5000, 10).unwrap().records.is_empty());
            assert_eq!(log.append(simple(2, 1000), 0, 0).unwrap().base_offset, 5000);
            assert_eq!(split(&log.read(5001, 10).unwrap().records)[0].0, 5000);
            log.close().unwrap();
        }
        // segments exist: the start offset is ignored, clean or not
        let log = PartitionLog::open_at(dir.path(), small_config(), 0).unwrap();
        assert_eq!((log.log_start_offset(), log.log_end_offset()), (5000, 5002));
        drop(log);
        let log = PartitionLog::open_at(dir.path(), small_config(), 9000).unwrap();
        assert_eq!((log.log_start_offset(), log.log_end_offset()), (5000, 5002));
        drop(log);
        assert!(
            PartitionLog::open_at(tempfile::tempdir().unwrap().path(), small_config(), -1).is_err()
        );
    }

    #[test]
    fn tiered_end_only_grows_and_untiered_bytes_follow_it() {
        let dir = tempfile::tempdir().unwrap();
        let log = PartitionLog::open(dir.path(), remote_config()).unwrap();
        fill(&log, 100, 4);
        assert_eq!(log.tiered_end(), 0);
        assert_eq!(log.untiered_bytes(), log.size_bytes());
        let sealed = log.sealed_segments().unwrap();
        log.set_tiered_end(sealed[1].end_offset);
        log.set_tiered_end(sealed[0].end_offset); // a late report does not move it back
        assert_eq!(log.tiered_end(), sealed[1].end_offset);
        assert_eq!(
            log.untiered_bytes(),
            log.size_bytes() - sealed[0].size_bytes - sealed[1].size_bytes
        );
        log.set_tiered_end(log.log_end_offset());
        assert_eq!(log.untiered_bytes(), 0);
    }

    #[test]
    fn untiered_segments_survive_any_local_retention() {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig {
            retention_ms: Some(Duration::from_millis(1)),
            retention_bytes: Some(0),
            local_retention_ms: Some(Duration::from_millis(1)),
            local_retention_bytes: Some(0),
            ..remote_config()
        };
        let log = PartitionLog::open(dir.path(), config).unwrap();
        fill(&log, 300, 4);
        let segments = log.segment_count();
        let end = log.log_end_offset();
        assert_eq!(log.enforce_retention(i64::MAX / 2).unwrap(), 0);
        assert_eq!(log.segment_count(), segments);
        assert_eq!(read_all(&log, 0).len(), 300);
        // three segments tiered: exactly those go
        let sealed = log.sealed_segments().unwrap();
        log.set_tiered_end(sealed[2].end_offset);
        assert_eq!(log.enforce_retention(i64::MAX / 2).unwrap(), 3);
        assert_eq!(log.log_start_offset(), sealed[3].base_offset);
        assert!(!seg_path(dir.path(), sealed[2].base_offset, "log").exists());
        assert!(seg_path(dir.path(), sealed[3].base_offset, "log").exists());
        // a tiered end inside a segment keeps that segment
        log.set_tiered_end(sealed[4].end_offset - 1);
        assert_eq!(log.enforce_retention(i64::MAX / 2).unwrap(), 1);
        assert_eq!(log.log_start_offset(), sealed[4].base_offset);
        // all tiered: everything but the active segment
        log.set_tiered_end(end);
        log.enforce_retention(i64::MAX / 2).unwrap();
        assert_eq!(log.segment_count(), 1);
        assert_eq!(log.log_end_offset(), end);
    }

    #[test]
    fn tiered_segments_stay_until_local_retention_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig {
            retention_ms: Some(Duration::from_secs(3600)),
            local_retention_ms: Some(Duration::from_millis(1000)),
            ..remote_config()
        };
        let log = PartitionLog::open(dir.path(), config.clone()).unwrap();
        fill(&log, 300, 4);
        log.set_tiered_end(log.log_end_offset());
        let sealed = log.sealed_segments().unwrap();
        // nothing is past local retention yet
        assert_eq!(
            log.enforce_retention(sealed[0].max_timestamp + 1000)
                .unwrap(),
            0
        );
        // exactly the first two are
        assert_eq!(
            log.enforce_retention(sealed[1].max_timestamp + 1001)
                .unwrap(),
            2
        );
        // by bytes: local.retention.bytes, and no local limit means no deletion
        log.update_config(LogConfig {
            local_retention_ms: None,
            retention_ms: None,
            ..config.clone()
        });
        assert_eq!(log.enforce_retention(i64::MAX / 2).unwrap(), 0);
        let limit = log.size_bytes() / 2;
        log.update_config(LogConfig {
            local_retention_ms: None,
            retention_ms: None,
            local_retention_bytes: Some(limit),
            ..config
        });
        assert!(log.enforce_retention(0).unwrap() > 0);
        let after = log.size_bytes();
        assert!(after >= limit);
        assert!(after - rlock(&log.shared).segments[0].size < limit);
    }

    #[test]
    fn advance_log_start_deletes_below_and_survives_restart() {
        let dir = tempfile::tempdir().unwrap();
        let (start, end, sealed) = {
            let log = PartitionLog::open(dir.path(), remote_config()).unwrap();
            fill(&log, 100, 4);
            let sealed = log.sealed_segments().unwrap();
            // inside the third segment: the first two go, reads below fail
            let target = sealed[2].base_offset + 3;
            assert_eq!(log.advance_log_start(target).unwrap(), target);
            assert_eq!(log.log_start_offset(), target);
            assert!(!seg_path(dir.path(), sealed[1].base_offset, "log").exists());
            assert!(seg_path(dir.path(), sealed[2].base_offset, "log").exists());
            assert_eq!(
                log.read(target - 1, 10).unwrap_err().kind(),
                ErrorKind::OffsetOutOfRange
            );
            // the batch holding the start is served whole
            assert!(split(&log.read(target, 10).unwrap().records)[0].0 <= target);
            // timestamps map to offsets at or after the start
            let found = log.offset_for_timestamp(0).unwrap().unwrap();
            assert_eq!(found.offset, target);
            // never backwards; beyond the end is an error
            assert_eq!(log.advance_log_start(5).unwrap(), target);
            let end = log.log_end_offset();
            assert_eq!(
                log.advance_log_start(end + 1).unwrap_err().kind(),
                ErrorKind::OffsetOutOfRange
            );
            assert_eq!(
                log.append(simple(1, 0), 0, 0).unwrap().log_start_offset,
                target
            );
            // untiered segments are no obstacle to DeleteRecords
            assert_eq!(log.tiered_end(), 0);
            (target, log.log_end_offset(), sealed)
        };
        // unclean restart (no close): the start is still there
        let log = PartitionLog::open(dir.path(), remote_config()).unwrap();
        assert_eq!((log.log_start_offset(), log.log_end_offset()), (start, end));
        assert_eq!(
            log.read(start - 1, 1).unwrap_err().kind(),
            ErrorKind::OffsetOutOfRange
        );
        assert_eq!(
            split(&log.read(start, 1).unwrap().records)[0].0,
            sealed[2].base_offset
        );
        // up to the log end: everything goes, offsets continue
        assert_eq!(log.advance_log_start(end).unwrap(), end);
        assert_eq!(log.segment_count(), 1);
        assert_eq!(log.size_bytes(), 0);
        log.close().unwrap();
        drop(log);
        let log = PartitionLog::open(dir.path(), remote_config()).unwrap();
        assert_eq!((log.log_start_offset(), log.log_end_offset()), (end, end));
        assert_eq!(log.append(simple(1, 0), 0, 0).unwrap().base_offset, end);
    }

    #[test]
    fn a_persisted_log_start_is_applied_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let sealed = {
            let log = PartitionLog::open(dir.path(), small_config()).unwrap();
            fill(&log, 60, 4);
            log.close().unwrap();
            log.sealed_segments().unwrap()
        };
        // a crash after persisting the start, before deleting the segments
        write_log_start(dir.path(), sealed[1].end_offset).unwrap();
        std::fs::write(dir.path().join(LOG_START_TMP), b"torn").unwrap();
        let log = PartitionLog::open(dir.path(), small_config()).unwrap();
        assert_eq!(log.log_start_offset(), sealed[1].end_offset);
        assert!(!seg_path(dir.path(), 0, "log").exists());
        assert!(!dir.path().join(LOG_START_TMP).exists());
        let end = log.log_end_offset();
        drop(log);
        // a start beyond the recovered end (the tail was lost): an empty log at the start
        write_log_start(dir.path(), end + 10).unwrap();
        let log = PartitionLog::open(dir.path(), small_config()).unwrap();
        assert_eq!(
            (log.log_start_offset(), log.log_end_offset()),
            (end + 10, end + 10)
        );
        assert_eq!(log.segment_count(), 1);
        drop(log);
        // a damaged file is refused rather than silently forgotten
        std::fs::write(dir.path().join(LOG_START_FILE), [1u8; 12]).unwrap();
        assert!(matches!(
            PartitionLog::open(dir.path(), small_config()),
            Err(Error::CorruptSegment { .. })
        ));
    }
}
