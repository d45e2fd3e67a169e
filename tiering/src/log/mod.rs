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
//! Producers: batches with a producer id are checked and applied against the producer state
//! (`producer.rs`: duplicates answered with their original offsets, fenced epochs, sequence
//! gaps, transactions); [`append_control`](PartitionLog::append_control) writes transaction
//! markers, whose aborts go to the segment's transaction index; readers ask for
//! [`first_unstable_offset`](PartitionLog::first_unstable_offset) and
//! [`aborted_transactions`](PartitionLog::aborted_transactions). The state is snapshotted at
//! rolls and close and rebuilt on open and after truncations (`producers.rs`).
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
//! readers hold shared only so that a truncation never shortens a file under them,
//! `epochs`, the leader-epoch cache, and `producers`, the producer state, changed only under
//! `writer` and applied after the batches are published):
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
//! flush (all segments from the one containing the persisted recovery point on), and every
//! segment known to hold damage, is surveyed batch by batch, checking framing, CRC-32C and
//! offset continuity (`damage.rs`). A torn tail — bad bytes at the very end of the last segment
//! with nothing valid after them, not known to be fsynced — is truncated. Anything else that
//! fails (a bad batch with good ones after it, or in a sealed segment) is quarantined as a
//! damaged range: never served, never truncated away with the good data after it, lifted by a
//! [`repair`](PartitionLog::repair) from another copy. Offsets missing between two segments
//! of a log that is not compacted (a segment file deleted) are quarantined the same way, in an
//! empty placeholder segment (`damage.rs`). Other segments are loaded from their index files
//! after a sanity check and a short CRC-checked scan of their tail; a segment whose index
//! files are missing or implausible is scanned in full and its indexes rebuilt.
//! Reads check the CRC-32C of every batch they return, so damage recovery did not look at is
//! found by the first read of it and quarantined the same way.
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
//!
//! # Layout
//!
//! - this file: [`PartitionLog`], its locks and published state, append, read, rolling.
//! - `recovery`: `open`/`open_at`, loading and scanning segments, torn-tail truncation.
//! - `damage`: surveying a segment, quarantined (damaged) ranges, repairs.
//! - `checkpoint`: flushing and the recovery point, the leader-epoch cache and its file, the
//!   DeleteRecords log-start file, `close` and the clean-shutdown marker.
//! - `retention`: local retention and `advance_log_start` (deleting a prefix).
//! - `truncate`: `truncate_to` and `truncate_fully_and_start_at` (replication).
//! - `tiered`: what the uploader sees: sealed segments, suffixes, the tiered end.
//! - `producers`: markers, the producer-state readers, snapshots and rebuilding the state.

use std::fs::{self, File, OpenOptions};
use std::ops::ControlFlow;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::RecordBatchDecoder;
use tracing::{debug, info, warn};

use crate::batch::{self, BatchHeader, HEADER_SIZE, Origin, ValidBatch};
use crate::config::{LogConfig, TimestampType};
use crate::epoch::EpochCache;
use crate::error::{Error, Result};
use crate::index::{NO_TIMESTAMP, SegmentIndex};
use crate::producer::{AbortedTxn, BatchInfo, ControlType, ProducerEntry, ProducerState, Verdict};
use crate::segment::{self, ChunkReader, Segment};

mod checkpoint;
mod clean;
mod damage;
mod producers;
mod recovery;
mod retention;
mod tiered;
mod truncate;

pub use clean::{CleanStats, Cleanable, CleanerOptions, Throttle};
pub use damage::RangeRepair;
pub use tiered::{SealedSegment, SegmentSuffix};

/// Present only between a successful `close()` and the next `open()`.
const CLEAN_SHUTDOWN_FILE: &str = "clean-shutdown";
/// Offset below which all data was fsynced (i64 BE + CRC-32C of those 8 bytes).
const RECOVERY_POINT_FILE: &str = "recovery-point";
/// Header-walking window for reads: a few index intervals.
const READ_CHUNK: usize = 16 * 1024;
/// Reads are read (and their batches' CRC-32C checked) this much at a time, so that the
/// check runs on bytes still in the CPU cache (L2 holds 1-2 MiB per core on common server
/// CPUs) while a 1 MiB fetch costs two system calls rather than sixteen.
const VERIFY_PIECE: usize = 512 * 1024;
/// The log start offset moved by DeleteRecords (i64 BE + CRC-32C of those 8 bytes). Replaced
/// atomically (written to `LOG_START_TMP`, fsynced, renamed, directory fsynced).
const LOG_START_FILE: &str = "log-start-offset";
const LOG_START_TMP: &str = "log-start-offset.tmp";
/// The leader-epoch cache (text, see `epoch.rs`), replaced atomically like `LOG_START_FILE`.
const EPOCH_FILE: &str = "leader-epoch-checkpoint";
const EPOCH_TMP: &str = "leader-epoch-checkpoint.tmp";

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
    /// The batch was a retry of one already in the log (same producer, epoch and sequences):
    /// nothing was appended, and the offsets are those of the original.
    pub duplicate: bool,
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
    /// Idempotent and transactional producers' state (`producer.rs`). Changed only under
    /// `writer` (appends, markers, truncation, open); readers take it alone. A leaf lock,
    /// held across file I/O only to write a transaction-index entry (an abort marker), so
    /// that no reader sees a transaction complete before its index entry exists.
    producers: Mutex<ProducerState>,
    /// Some segment holds a damaged range (as of the last change to the damaged-segments
    /// file), so that the node's periodic look at every partition costs one load.
    damaged: AtomicBool,
    /// Reads check every batch's CRC-32C before returning it (the default; see
    /// [`set_verify_reads`](Self::set_verify_reads)).
    verify_reads: AtomicBool,
    /// This process has the directory open as this log (released on drop).
    _dir_claim: DirClaim,
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
    /// The log's directory was created and its entry in the parent directory is not fsynced
    /// yet (the first flush does it).
    parent_dirty: bool,
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

/// A log directory opened by this process: a second open of it fails with
/// [`Error::Locked`] until the first log is dropped. (Another process is kept out by the
/// node's lock on its whole data directory, one descriptor rather than one per partition.)
#[derive(Debug)]
struct DirClaim(PathBuf);

impl DirClaim {
    fn claimed() -> MutexGuard<'static, std::collections::HashSet<PathBuf>> {
        static CLAIMED: std::sync::OnceLock<Mutex<std::collections::HashSet<PathBuf>>> =
            std::sync::OnceLock::new();
        lock(CLAIMED.get_or_init(Default::default))
    }

    fn take(dir: &Path) -> Result<DirClaim> {
        let path = dir
            .canonicalize()
            .map_err(|e| Error::io("resolve log directory", dir, e))?;
        if !Self::claimed().insert(path.clone()) {
            return Err(Error::Locked {
                path: dir.to_path_buf(),
            });
        }
        Ok(DirClaim(path))
    }
}

impl Drop for DirClaim {
    fn drop(&mut self) {
        Self::claimed().remove(&self.0);
    }
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
    /// Appends `records` (one or more concatenated v2 batches, the `records` field of one
    /// partition of a Produce request) and returns the offsets assigned.
    ///
    /// All batches are validated first ([`crate::validate_batches`]); if any fails nothing is
    /// appended. Offsets and the leader epoch are then patched in place (outside the CRC);
    /// LogAppendTime topics also get the timestamp-type bit and `now_ms` as first/max
    /// timestamps, with the CRC recomputed. Batches are never decompressed or re-encoded.
    /// The bytes reach the page cache, not the disk: call [`flush`](Self::flush) for that.
    ///
    /// Batches with a producer id are checked against the producer state first (Kafka's
    /// idempotence and transaction rules): a retry of one of the producer's last 5 batches
    /// appends nothing and returns the original offsets with `duplicate: true`;
    /// [`Error::InvalidProducerEpoch`], [`Error::OutOfOrderSequence`] and
    /// [`Error::InvalidTxnState`] refuse the append. A transactional batch opens its
    /// producer's transaction (see [`first_unstable_offset`](Self::first_unstable_offset)).
    pub fn append(&self, records: Bytes, leader_epoch: i32, now_ms: i64) -> Result<AppendResult> {
        let (max_message_bytes, timestamp_type, compacted) = {
            let c = rlock(&self.config);
            (
                c.max_message_bytes,
                c.message_timestamp_type,
                c.cleanup_compact,
            )
        };
        let batches = batch::validate(&records, max_message_bytes)?;
        if compacted {
            // Kafka's `LogValidator`: a compacted topic refuses keyless records (compressed
            // batches are decompressed for this check, on compacted topics only).
            let mut pos = 0usize;
            for (i, b) in batches.iter().enumerate() {
                let size = b.header.size() as usize;
                let keyed = crate::compact::all_records_keyed(&records[pos..pos + size], &b.header)
                    .map_err(|r| Error::invalid(format!("batch {i}: {r}")))?;
                if !keyed {
                    return Err(Error::invalid(format!(
                        "batch {i}: compacted topic cannot accept message without key"
                    )));
                }
                pos += size;
            }
        }
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
        self.append_patched(
            buf,
            &batches,
            records_total,
            leader_epoch,
            now_ms,
            log_append,
            None,
        )
    }

    /// The leader's append of validated, timestamp-patched batches: takes `writer`, checks
    /// the producers (client batches, or the one `marker` of `append_control`), assigns
    /// offsets and the leader epoch, writes, and applies the batches to the producer state.
    #[allow(clippy::too_many_arguments)]
    fn append_patched(
        &self,
        mut buf: BytesMut,
        batches: &[ValidBatch],
        records_total: i64,
        leader_epoch: i32,
        now_ms: i64,
        log_append: bool,
        marker: Option<(ControlType, i32)>,
    ) -> Result<AppendResult> {
        let (mut w, config, active) =
            self.begin_append(buf.len() as u64, records_total, now_ms, None)?;
        let idempotent = batches.iter().any(|b| b.header.producer_id >= 0);
        if idempotent {
            let producers = lock(&self.producers);
            match marker {
                Some(_) => batches.iter().try_for_each(|b| {
                    producers.check_marker(b.header.producer_id, b.header.producer_epoch)
                })?,
                None => {
                    if let Verdict::Duplicate {
                        first_offset,
                        last_offset,
                        timestamp,
                    } = producers.check_client(batches)?
                    {
                        // Kafka answers a duplicate with the original batch's max timestamp
                        // as its log-append time, whatever the topic's timestamp type.
                        return Ok(AppendResult {
                            base_offset: first_offset,
                            last_offset,
                            log_append_time_ms: timestamp,
                            log_start_offset: rlock(&self.shared).log_start(),
                            duplicate: true,
                        });
                    }
                }
            }
        }

        let base_offset = active.next_offset;
        let mut offset = base_offset;
        let mut pos = 0usize;
        for b in batches {
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
        let ts_of = |b: &ValidBatch| {
            if log_append {
                now_ms
            } else {
                b.records_max_timestamp.unwrap_or(b.header.max_timestamp)
            }
        };
        let (last_offset, log_start_offset) = self.commit(
            &active,
            &buf,
            batches,
            config.index_interval_bytes,
            false,
            ts_of,
        )?;
        if idempotent {
            let mut first = base_offset;
            self.apply_producers(
                &active.seg,
                batches.iter().filter_map(|b| {
                    let info = BatchInfo::new(&b.header, first, ts_of(b), marker);
                    first += i64::from(b.header.record_count);
                    info
                }),
            )?;
        }
        w.roll_base_ms.get_or_insert(now_ms);
        drop(w);
        Ok(AppendResult {
            base_offset,
            last_offset,
            log_append_time_ms: if log_append { now_ms } else { -1 },
            log_start_offset,
            duplicate: false,
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
    /// `append`. Control batches (markers) and transactional batches are accepted, and every
    /// batch is applied to the producer state without checks, markers included (their
    /// aborts are indexed as on the leader), so a follower that becomes leader deduplicates
    /// like the old one.
    pub fn append_replicated(&self, records: Bytes, now_ms: i64) -> Result<AppendResult> {
        if records.is_empty() {
            let s = rlock(&self.shared);
            let end = s.log_end();
            return Ok(AppendResult {
                base_offset: end,
                last_offset: end - 1,
                log_append_time_ms: -1,
                log_start_offset: s.log_start(),
                duplicate: false,
            });
        }
        let max_message_bytes = rlock(&self.config).max_message_bytes;
        let batches = batch::validate_from(&records, max_message_bytes, Origin::Replication)?;
        let first = batches.first().map_or(0, |b| b.header.base_offset);
        let mut next = first;
        let mut new_epoch = -1;
        for (i, b) in batches.iter().enumerate() {
            // Offsets may skip (the leader's log is compacted) but never go back.
            if b.header.base_offset < next {
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
            true,
            |b| b.header.max_timestamp,
        )?;
        if batches.iter().any(|b| b.header.producer_id >= 0) {
            let mut pos = 0usize;
            self.apply_producers(
                &active.seg,
                batches.iter().filter_map(|b| {
                    let size = b.header.size() as usize;
                    let info = BatchInfo::stored(&b.header, &records[pos..pos + size]);
                    pos += size;
                    info
                }),
            )?;
        }
        w.roll_base_ms.get_or_insert(now_ms);
        drop(w);
        Ok(AppendResult {
            base_offset: first,
            last_offset,
            log_append_time_ms: -1,
            log_start_offset,
            duplicate: false,
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
        if let Some(found) = expected_base.filter(|b| *b < active.next_offset) {
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
    /// `active.next_offset`, or, with `own_offsets`, at the batches' own base offsets, which
    /// may skip ahead) at the end of the active segment, indexes the batches with the
    /// timestamps `ts_of` gives, and publishes the new end. Returns the last offset written and
    /// the log start. Caller holds `writer` (and starts the segment's age when it was empty).
    fn commit(
        &self,
        active: &SegmentMeta,
        buf: &[u8],
        batches: &[ValidBatch],
        index_interval_bytes: u32,
        own_offsets: bool,
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
                if own_offsets {
                    offset = b.header.base_offset;
                }
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
        // The state as of the new segment's base: what the uploader ships with the sealed
        // segment, and where recovery starts replaying. Losing it only costs a longer replay.
        if let Err(e) = self.write_producer_snapshot(meta.next_offset, false) {
            warn!(error = %e, dir = %self.dir.display(), "could not write a producer snapshot");
        }
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

    /// Reads as [`read_bounded`](Self::read_bounded) does. Bytes that should be valid and are
    /// not (a CRC-32C mismatch, broken framing, an index entry pointing nowhere) make the log
    /// survey that segment (`damage.rs`), which quarantines what is damaged and rebuilds the
    /// segment's indexes, and the read is answered again: with [`Error::Damaged`] if it asked
    /// for a damaged range, else with the good batches around it.
    fn read_below(&self, offset: i64, max_bytes: usize, max_offset: i64) -> Result<ReadResult> {
        let _no_truncation = rlock(&self.truncation);
        match self.read_once(offset, max_bytes, max_offset) {
            // A file cut short under the log reads as an unexpected end of file.
            Err(Error::CorruptSegment { path, .. }) | Err(Error::Io { path, .. })
                if self.survey_segment_at(&path).is_ok() =>
            {
                self.read_once(offset, max_bytes, max_offset)
            }
            r => r,
        }
    }

    /// One attempt of [`read_below`](Self::read_below). Caller holds `truncation` shared.
    fn read_once(&self, offset: i64, max_bytes: usize, max_offset: i64) -> Result<ReadResult> {
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
        let empty = || ReadResult {
            records: Bytes::new(),
            log_start_offset: start,
            log_end_offset: end,
        };
        // A compacted segment may end before the next one starts: an offset in that hole
        // reads from the next segment (as Kafka's log does).
        let (meta, pos, first, damaged) = {
            let mut meta = meta;
            let mut at = offset;
            loop {
                let damaged = meta.seg.damaged();
                if let Some(d) = damaged.iter().find(|d| d.holds(at)) {
                    return Err(d.error(&meta.seg));
                }
                if let Some((_, pos, first)) = locate_opt(&meta, at, READ_CHUNK)? {
                    break (meta, pos, first, damaged);
                }
                let next = {
                    let s = rlock(&self.shared);
                    s.segments
                        .iter()
                        .find(|m| m.seg.base_offset > meta.seg.base_offset)
                        .cloned()
                };
                match next {
                    Some(n) => {
                        at = n.seg.base_offset;
                        meta = n;
                    }
                    None => return Ok(empty()),
                }
            }
        };
        let seg = &meta.seg;
        if first.last_offset() >= max_offset {
            return Ok(empty());
        }
        // Never read into a damaged range: stop where the next one starts.
        let stop = damaged
            .iter()
            .map(|d| d.start_pos)
            .filter(|p| *p > pos)
            .min()
            .unwrap_or(meta.size);
        let want = (max_bytes as u64).max(first.size()).min(stop - pos);
        // Read in pieces and check each batch's CRC-32C as its bytes arrive, while they are
        // still in the CPU cache (a bad batch is never served): `bad` is where the first batch
        // that fails starts.
        let mut buf = vec![0u8; want as usize];
        let mut verify = batch::BatchStream::default();
        let mut bad = None;
        if self.verify_reads.load(Ordering::Relaxed) {
            for at in (0..buf.len()).step_by(VERIFY_PIECE) {
                let piece = &mut buf[at..(at + VERIFY_PIECE).min(want as usize)];
                seg.read_exact_at(piece, pos + at as u64)?;
                if bad.is_none()
                    && let Err((p, _)) = verify.feed(piece)
                {
                    bad = Some(p as usize);
                }
            }
        } else {
            seg.read_exact_at(&mut buf, pos)?;
        }
        if bad == Some(0) {
            return Err(seg.corrupt(pos, "crc-32c mismatch"));
        }
        // Keep whole batches only, all below `max_offset`, and none from the first bad one on
        // (the next read starts at it, fails, and `read_below` finds out what is damaged).
        let limit = bad.unwrap_or(buf.len());
        let mut cut = 0usize;
        while limit - cut >= HEADER_SIZE {
            let h = BatchHeader::parse(&buf[cut..]).map_err(|e| seg.corrupt(pos, e.to_string()))?;
            let next = cut as u64 + h.size();
            if next > limit as u64 || h.batch_length <= 0 || h.last_offset() >= max_offset {
                break;
            }
            cut = next as usize;
        }
        if cut == 0 && want >= first.size() {
            // The first batch did not even frame as the index walk said it would.
            return Err(seg.corrupt(pos, "batch does not frame where its header said"));
        }
        buf.truncate(cut);
        Ok(ReadResult {
            records: Bytes::from(buf),
            log_start_offset: start,
            log_end_offset: end,
        })
    }

    /// Whether reads check every batch's CRC-32C before returning it (on by default). Off,
    /// the hot tier serves its bytes unchecked, as Kafka's log does (framing is still
    /// checked); the scrubber still finds bad batches. For measuring what checking costs.
    pub fn set_verify_reads(&self, on: bool) {
        self.verify_reads.store(on, Ordering::Relaxed);
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
    locate_opt(meta, offset, chunk)?.ok_or_else(|| {
        meta.seg
            .corrupt(meta.size, format!("offset {offset} not found in segment"))
    })
}

/// [`locate`], with `None` when every batch of the segment ends below `offset` (a
/// compacted segment whose last offsets were cleaned away, or an offset past its end).
fn locate_opt(
    meta: &SegmentMeta,
    offset: i64,
    chunk: usize,
) -> Result<Option<(ChunkReader<'_>, u64, BatchHeader)>> {
    let seg = &meta.seg;
    let mut pos = seg.index().lookup(offset);
    let mut reader = ChunkReader::with_chunk(seg, meta.size, chunk);
    while let Some((at, h)) = reader.next_header(pos)? {
        if h.last_offset() >= offset {
            return Ok(Some((reader, at, h)));
        }
        pos = at + h.size();
    }
    Ok(None)
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
    while let Some((at, h)) = reader.next_header(pos)? {
        pos = at;
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod clean_tests;
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod damage_tests;
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod missing_tests;
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod producer_tests;
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod replication_tests;
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
