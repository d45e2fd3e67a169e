//! A partition's remote tier: its tiered segments (a cached copy of its manifest), the
//! uploader that tiers sealed segments, remote retention, and reads below the hot tier.
//!
//! The uploader is one task per partition, the periodic-work shape: cancellation first, then a
//! wake-up (a roll just sealed a segment), then a tick. Each pass uploads every sealed segment
//! past the tiered end in offset order and stops at the first failure (the next pass retries),
//! so nothing is skipped and nothing is tiered twice: the manifest's create-only put decides.
//! An upload and its manifest commit run inside `upload_segment`; if the task is cancelled
//! between them, only unreferenced objects remain, never a manifest entry without objects.
//!
//! Such unreferenced objects (a crash or a deposed leader between upload and record, an
//! ambiguous manifest error) are collected by the leader's uploader too: at most once per
//! [`GC_INTERVAL`] it sweeps the partition's prefix and deletes the objects no manifest entry
//! references that are older than [`GC_GRACE`] (`tierlog_tiering::remote::gc`). Sweeps run
//! between upload passes, so this node never has an upload in flight during its own sweep; the
//! grace covers uploads by other nodes (a deposed leader still finishing one).

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use object_store::ObjectStore;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use tierlog_metadata::{Compare, ManifestRegistry, PartitionStateRegistry, RemoteSegment, TopicId};
use tierlog_tiering::remote::reader::RemoteReader;
use tierlog_tiering::{PartitionLog, TimestampOffset};

use crate::error::{Error, Result};

/// Node-wide remote-tier components, shared by every partition.
#[derive(Debug)]
pub(crate) struct Tiering {
    pub(crate) store: Arc<dyn ObjectStore>,
    pub(crate) manifest: ManifestRegistry,
    pub(crate) reader: RemoteReader,
    pub(crate) upload_interval: Duration,
    pub(crate) metrics: TieringMetrics,
}

/// Node-wide tiering counters for `/metrics`.
#[derive(Debug, Default)]
pub(crate) struct TieringMetrics {
    pub(crate) uploaded_segments: AtomicU64,
    pub(crate) uploaded_bytes: AtomicU64,
    pub(crate) upload_errors: AtomicU64,
    pub(crate) download_errors: AtomicU64,
    pub(crate) corrupt_objects: AtomicU64,
    pub(crate) remote_deleted_segments: AtomicU64,
    /// Unreferenced segment objects deleted by orphan sweeps.
    pub(crate) orphans_deleted: AtomicU64,
}

/// What a partition's uploader may do, decided by its replication role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UploadGate {
    /// Tiering is off for the topic, or this node is no replica.
    Off,
    /// Leader: upload sealed segments that end at or below `committed_end`, keys carrying
    /// `epoch`, recorded only while the partition state is still at `state_revision`.
    Lead {
        committed_end: i64,
        epoch: i32,
        state_revision: u64,
    },
    /// Follower: follow the manifest the leader writes (so local retention can free tiered
    /// segments here too).
    Follow,
}

/// How many upload ticks a follower waits between manifest refreshes.
const FOLLOWER_REFRESH_TICKS: u32 = 5;

/// How often a leader sweeps its partition's prefix for orphaned objects: a LIST of the prefix
/// and two manifest reads per sweep, so rarely. Overridable (testing, operations) with the
/// `TIERLOG_TIERING_GC_INTERVAL` environment variable.
const GC_INTERVAL: Duration = Duration::from_secs(10 * 60);
/// How old an unreferenced object must be before a sweep deletes it: far longer than any
/// upload takes (its objects exist before its manifest record) plus clock skew between nodes
/// and the object store. Overridable with `TIERLOG_TIERING_GC_GRACE`.
const GC_GRACE: Duration = tierlog_tiering::remote::gc::DEFAULT_GRACE;

/// Orphan sweep timing: `(interval, grace)`, from the constants or, once per process, the
/// environment.
fn gc_timing() -> (Duration, Duration) {
    static TIMING: OnceLock<(Duration, Duration)> = OnceLock::new();
    *TIMING.get_or_init(|| {
        (
            env_duration("TIERLOG_TIERING_GC_INTERVAL", GC_INTERVAL, false),
            env_duration("TIERLOG_TIERING_GC_GRACE", GC_GRACE, true),
        )
    })
}

/// A duration from the environment variable `name`, or `default` when unset or invalid (zero
/// is invalid unless `zero_ok`).
fn env_duration(name: &str, default: Duration, zero_ok: bool) -> Duration {
    let Ok(value) = std::env::var(name) else {
        return default;
    };
    match humantime::parse_duration(&value) {
        Ok(d) if zero_ok || !d.is_zero() => {
            warn!(variable = name, value = %value, default = ?default, "orphan sweep timing overridden");
            d
        }
        Ok(_) => {
            warn!(variable = name, value = %value, "must be greater than zero; using the default");
            default
        }
        Err(e) => {
            warn!(variable = name, value = %value, error = %e, "not a duration like 10m; using the default");
            default
        }
    }
}

/// The remote side of one partition.
#[derive(Debug)]
pub(crate) struct RemoteLog {
    pub(crate) topic: String,
    pub(crate) topic_id: TopicId,
    pub(crate) partition: i32,
    /// The partition's tiered segments in offset order. Replaced whole (copy on write) by the
    /// uploader and retention; readers clone the `Arc` and read without holding the lock.
    segments: RwLock<Arc<Vec<RemoteSegment>>>,
    /// Log start set by DeleteRecords (`i64::MIN`: none).
    delete_start: AtomicI64,
    /// Wakes the uploader (a segment was sealed).
    pub(crate) wake: Notify,
}

impl RemoteLog {
    pub(crate) fn new(
        topic: String,
        topic_id: TopicId,
        partition: i32,
        segments: Vec<RemoteSegment>,
        delete_start: Option<i64>,
    ) -> Self {
        RemoteLog {
            topic,
            topic_id,
            partition,
            segments: RwLock::new(Arc::new(segments)),
            delete_start: AtomicI64::new(delete_start.unwrap_or(i64::MIN)),
            wake: Notify::new(),
        }
    }

    /// A snapshot of the tiered segments.
    pub(crate) fn segments(&self) -> Arc<Vec<RemoteSegment>> {
        self.segments
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn update(&self, f: impl FnOnce(&mut Vec<RemoteSegment>)) {
        let mut guard = self
            .segments
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut next = (**guard).clone();
        f(&mut next);
        *guard = Arc::new(next);
    }

    /// One past the last tiered offset, if anything is tiered.
    pub(crate) fn end(&self) -> Option<i64> {
        self.segments().last().map(|s| s.end_offset)
    }

    /// The log start DeleteRecords set, if any.
    pub(crate) fn delete_start(&self) -> Option<i64> {
        Some(self.delete_start.load(Ordering::Acquire)).filter(|s| *s != i64::MIN)
    }

    pub(crate) fn set_delete_start(&self, offset: i64) {
        self.delete_start.fetch_max(offset, Ordering::AcqRel);
    }

    /// Start of the whole log: the first tiered offset or the local start, whichever is lower,
    /// moved up by DeleteRecords.
    pub(crate) fn log_start(&self, log: &PartitionLog) -> i64 {
        let local = log.log_start_offset();
        let start = self
            .segments()
            .first()
            .map_or(local, |s| s.base_offset.min(local));
        match self.delete_start() {
            Some(d) => start.max(d).min(log.log_end_offset()),
            None => start,
        }
    }

    /// Bytes and count of tiered segments.
    pub(crate) fn totals(&self) -> (u64, usize) {
        let s = self.segments();
        (s.iter().map(|x| x.size_bytes).sum(), s.len())
    }

    /// The tiered segment holding `offset`, if any.
    pub(crate) fn segment_for(&self, offset: i64) -> Option<RemoteSegment> {
        let segs = self.segments();
        let i = segs
            .partition_point(|s| s.base_offset <= offset)
            .checked_sub(1)?;
        segs.get(i).filter(|s| s.contains(offset)).cloned()
    }

    /// Reads whole batches at `offset` from the remote tier. `offset` must be tiered.
    pub(crate) async fn read(
        &self,
        tiering: &Tiering,
        offset: i64,
        max_bytes: usize,
    ) -> Result<Option<Bytes>> {
        let Some(seg) = self.segment_for(offset) else {
            return Ok(None);
        };
        match tiering.reader.read(&seg, offset, max_bytes).await {
            Ok(b) => Ok(Some(b)),
            Err(e) => {
                count_read_error(tiering, &e);
                warn!(topic = %self.topic, partition = self.partition, key = %seg.data_key, offset, error = %e, "tiered read failed");
                Err(e.into())
            }
        }
    }

    /// The first tiered offset with a timestamp at or after `ts`.
    pub(crate) async fn offset_for_timestamp(
        &self,
        tiering: &Tiering,
        ts: i64,
    ) -> Result<Option<TimestampOffset>> {
        for seg in self.segments().iter().filter(|s| s.max_timestamp >= ts) {
            match tiering.reader.offset_for_timestamp(seg, ts).await {
                Ok(Some(found)) => return Ok(Some(found)),
                Ok(None) => continue,
                Err(e) => {
                    count_read_error(tiering, &e);
                    return Err(e.into());
                }
            }
        }
        Ok(None)
    }

    /// The uploader task of this partition; `gate` tells what this node may do now.
    pub(crate) async fn run_uploader(
        self: Arc<Self>,
        log: Arc<PartitionLog>,
        tiering: Arc<Tiering>,
        gate: impl Fn() -> UploadGate + Send + 'static,
        cancel: CancellationToken,
    ) {
        let mut tick = tokio::time::interval(tiering.upload_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut backoff = Duration::ZERO;
        let mut follower_ticks = 0u32;
        let (gc_interval, gc_grace) = gc_timing();
        // The first sweep comes after a random half to one and a half intervals, so the
        // partitions of a node that just started do not all list the bucket at once.
        let jitter = (uuid::Uuid::new_v4().as_u128() % 1000) as f64 / 1000.0;
        let mut next_gc = tokio::time::Instant::now() + gc_interval.mul_f64(0.5 + jitter);
        loop {
            tokio::select! {
                biased;
                () = cancel.cancelled() => break,
                () = self.wake.notified() => {}
                _ = tick.tick() => {}
            }
            let lead = match gate() {
                UploadGate::Off => continue,
                UploadGate::Follow => {
                    follower_ticks += 1;
                    if follower_ticks >= FOLLOWER_REFRESH_TICKS {
                        follower_ticks = 0;
                        if let Err(e) = self.refresh(&log, &tiering).await {
                            debug!(topic = %self.topic, partition = self.partition, error = %e, "manifest refresh failed");
                        }
                    }
                    continue;
                }
                lead @ UploadGate::Lead { .. } => lead,
            };
            if !backoff.is_zero() {
                tokio::select! {
                    biased;
                    () = cancel.cancelled() => break,
                    () = tokio::time::sleep(backoff) => {}
                }
            }
            match self.upload_pending(&log, &tiering, lead).await {
                Ok(()) => backoff = Duration::ZERO,
                Err(e) => {
                    tiering
                        .metrics
                        .upload_errors
                        .fetch_add(1, Ordering::Relaxed);
                    backoff =
                        (backoff * 2).clamp(Duration::from_millis(200), Duration::from_secs(10));
                    warn!(topic = %self.topic, partition = self.partition, error = %e, retry_in = ?backoff, "tiering upload failed; will retry");
                }
            }
            if tokio::time::Instant::now() >= next_gc {
                next_gc = tokio::time::Instant::now() + gc_interval;
                tokio::select! {
                    biased;
                    // Dropping a sweep midway only leaves orphans for the next one.
                    () = cancel.cancelled() => break,
                    () = self.sweep_orphans(&tiering, gc_grace) => {}
                }
            }
        }
    }

    /// Deletes this partition's unreferenced objects older than `grace`. Errors are logged:
    /// the next sweep tries again.
    async fn sweep_orphans(&self, tiering: &Tiering, grace: Duration) {
        match tierlog_tiering::remote::gc::sweep_orphans(
            &tiering.store,
            &tiering.manifest,
            &self.topic,
            self.topic_id,
            self.partition,
            grace,
            SystemTime::now(),
        )
        .await
        {
            Ok(report) => {
                tiering
                    .metrics
                    .orphans_deleted
                    .fetch_add(report.deleted as u64, Ordering::Relaxed);
                debug!(topic = %self.topic, partition = self.partition, ?report, "orphan sweep done");
            }
            Err(e) => {
                warn!(topic = %self.topic, partition = self.partition, error = %e, "orphan sweep failed; will retry at the next one");
            }
        }
    }

    /// Re-reads the manifest (a follower: the leader tiers) and moves the local tiered end.
    pub(crate) async fn refresh(&self, log: &PartitionLog, tiering: &Tiering) -> Result<()> {
        let current = tiering
            .manifest
            .list(self.topic_id, self.partition)
            .await
            .map_err(tierlog_tiering::Error::from)?;
        let end = current.last().map(|s| s.end_offset);
        self.update(|v| *v = current);
        if let Some(end) = end {
            log.set_tiered_end(end.min(log.log_end_offset()));
        }
        Ok(())
    }

    /// As leader (`lead` is [`UploadGate::Lead`]), uploads every sealed, untiered segment
    /// ending at or below the committed end, in offset order, under the leader's epoch; the
    /// manifest records them only while the partition state is the one this node leads at.
    pub(crate) async fn upload_pending(
        &self,
        log: &Arc<PartitionLog>,
        tiering: &Tiering,
        lead: UploadGate,
    ) -> Result<()> {
        let UploadGate::Lead {
            committed_end,
            epoch,
            state_revision,
        } = lead
        else {
            return Ok(());
        };
        let manifest = tiering.manifest.guarded(vec![Compare::mod_revision(
            PartitionStateRegistry::key(self.topic_id, self.partition),
            state_revision,
        )]);
        let l = log.clone();
        let sealed = tokio::task::spawn_blocking(move || l.sealed_segments())
            .await
            .map_err(|e| Error::Internal(format!("listing sealed segments: {e}")))??;
        let mut tiered_end = self.end().unwrap_or(i64::MIN).max(log.tiered_end());
        for seg in &sealed {
            if seg.end_offset <= tiered_end {
                continue;
            }
            if seg.end_offset > committed_end {
                break;
            }
            use tierlog_tiering::remote::upload::{
                is_already_tiered, upload_segment, upload_segment_suffix,
            };
            let (chunk, now) = (
                tierlog_tiering::remote::DEFAULT_CHUNK_SIZE,
                tierlog_metadata::Clock::now_ms(&tierlog_metadata::SystemClock),
            );
            let recorded = if seg.base_offset < tiered_end {
                // Part of this segment is tiered already (another node rolled at a different
                // offset): upload only the rest, so the remote tier has neither hole nor overlap.
                let (l, base, from) = (log.clone(), seg.base_offset, tiered_end);
                let suffix = tokio::task::spawn_blocking(move || l.sealed_suffix(base, from))
                    .await
                    .map_err(|e| Error::Internal(format!("reading a segment suffix: {e}")))??;
                upload_segment_suffix(
                    &tiering.store,
                    &manifest,
                    &self.topic,
                    self.topic_id,
                    self.partition,
                    &suffix,
                    epoch,
                    chunk,
                    now,
                )
                .await
            } else {
                upload_segment(
                    &tiering.store,
                    &manifest,
                    &self.topic,
                    self.topic_id,
                    self.partition,
                    seg,
                    epoch,
                    chunk,
                    now,
                )
                .await
            };
            let recorded = match recorded {
                Ok(r) => r,
                Err(e) if is_already_tiered(&e) => {
                    // Someone recorded this base offset already: take the manifest as truth.
                    let current = tiering
                        .manifest
                        .list(self.topic_id, self.partition)
                        .await
                        .map_err(tierlog_tiering::Error::from)?;
                    self.update(|v| *v = current);
                    tiered_end = self.end().unwrap_or(tiered_end);
                    log.set_tiered_end(tiered_end);
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            tiering
                .metrics
                .uploaded_segments
                .fetch_add(1, Ordering::Relaxed);
            tiering
                .metrics
                .uploaded_bytes
                .fetch_add(recorded.size_bytes, Ordering::Relaxed);
            debug!(topic = %self.topic, partition = self.partition, base = recorded.base_offset, end = recorded.end_offset, bytes = recorded.size_bytes, "segment tiered");
            tiered_end = recorded.end_offset;
            self.update(|v| v.push(recorded));
            log.set_tiered_end(tiered_end);
        }
        Ok(())
    }

    /// Deletes tiered segments past the topic's retention (and below a DeleteRecords start).
    pub(crate) async fn enforce_retention(
        &self,
        log: &PartitionLog,
        tiering: &Tiering,
        retention_ms: Option<Duration>,
        retention_bytes: Option<u64>,
        now_ms: i64,
    ) -> Result<()> {
        let segments = self.segments();
        if segments.is_empty() {
            return Ok(());
        }
        let deleted = tierlog_tiering::remote::retention::enforce_remote_retention(
            &tiering.store,
            &tiering.manifest,
            self.topic_id,
            self.partition,
            &segments,
            retention_ms,
            retention_bytes,
            log.untiered_bytes(),
            self.delete_start(),
            now_ms,
        )
        .await?;
        if !deleted.is_empty() {
            tiering
                .metrics
                .remote_deleted_segments
                .fetch_add(deleted.len() as u64, Ordering::Relaxed);
            self.update(|v| v.retain(|s| !deleted.iter().any(|d| d.base_offset == s.base_offset)));
            info!(topic = %self.topic, partition = self.partition, segments = deleted.len(), "remote retention deleted segments");
        }
        Ok(())
    }
}

fn count_read_error(tiering: &Tiering, e: &tierlog_tiering::Error) {
    tiering
        .metrics
        .download_errors
        .fetch_add(1, Ordering::Relaxed);
    if matches!(e, tierlog_tiering::Error::CorruptObject { .. }) {
        tiering
            .metrics
            .corrupt_objects
            .fetch_add(1, Ordering::Relaxed);
    }
}
