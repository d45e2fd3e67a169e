//! A partition's remote tier: its tiered segments (a cached copy of its manifest), the
//! uploader that tiers sealed segments, remote retention, and reads below the hot tier.
//!
//! The remote-tier work itself — the uploader loop and its passes, the orphan sweep, remote
//! retention — is `tierlog_tiering`'s [`RemotePartition`], one handle per partition built from
//! the node-wide [`Tiering`] (whose `gc_interval`/`gc_grace` time the sweeps). This module
//! keeps what the node knows: the partition's view of its tiered segments, which readers use
//! without touching the manifest, the node's metrics ([`Host`] reports to both), and reads
//! through the node's cache.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use object_store::ObjectStore;
use tokio::sync::Notify;
use tracing::{debug, info, warn};

use tierlog_metadata::{ManifestRegistry, RemoteSegment, RevisionedSegment, SharedClock, TopicId};
pub(crate) use tierlog_tiering::remote::UploadGate;
use tierlog_tiering::remote::gc::GcReport;
use tierlog_tiering::remote::reader::RemoteReader;
use tierlog_tiering::remote::{
    GcConfig, RemoteCleanOptions, RemoteCleanStats, RemoteOptions, RemotePartition,
    RetentionLimits, TieredScrub, TieredScrubOptions, TieredScrubReport, UploaderHost,
};
use tierlog_tiering::{PartitionLog, TimestampOffset};

use super::upload::UploadSchedule;
use crate::error::Result;

/// Node-wide remote-tier components, shared by every partition.
#[derive(Debug)]
pub(crate) struct Tiering {
    pub(crate) store: Arc<dyn ObjectStore>,
    pub(crate) manifest: ManifestRegistry,
    pub(crate) reader: RemoteReader,
    /// Hot-tier reads check every batch's CRC-32C (`--verify-reads`).
    pub(crate) verify_reads: bool,
    pub(crate) upload_interval: Duration,
    /// Time between two orphan sweeps of a partition ([`GcConfig::interval`]).
    pub(crate) gc_interval: Duration,
    /// Minimum age of an orphan a sweep deletes ([`GcConfig::grace`]).
    pub(crate) gc_grace: Duration,
    pub(crate) metrics: TieringMetrics,
    /// The node's clock (sweep ages, retention).
    pub(crate) clock: SharedClock,
    /// Time between the starts of two scrub passes over the sealed local segments.
    pub(crate) scrub_interval: Duration,
    /// The scrubber's read rate bound; 0: no scrubbing.
    pub(crate) scrub_bytes_per_sec: u64,
    /// Time between the starts of two scrub passes over the tiered objects of the partitions
    /// this node leads; zero: no tiered scrubbing.
    pub(crate) scrub_tiered_interval: Duration,
}

impl Tiering {
    /// The remote-tier handle of one partition, with this node's settings.
    pub(crate) fn remote_partition(
        &self,
        topic: &str,
        topic_id: TopicId,
        partition: i32,
    ) -> RemotePartition {
        RemotePartition::new(
            self.store.clone(),
            self.manifest.clone(),
            topic,
            topic_id,
            partition,
        )
        .with_options(RemoteOptions {
            upload_interval: self.upload_interval,
            gc: GcConfig {
                interval: self.gc_interval,
                grace: self.gc_grace,
            },
            ..RemoteOptions::default()
        })
        .with_cache(self.reader.cache().clone())
    }
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
    /// Bytes of sealed local segments the scrubber read (`heal.rs`).
    pub(crate) scrubbed_bytes: AtomicU64,
    /// Damaged ranges the scrubber or the uploader found (before a reader did).
    pub(crate) damaged_ranges_found: AtomicU64,
    /// Damaged ranges repaired from the tiered copy.
    pub(crate) damaged_ranges_healed: AtomicU64,
    /// Bytes of tiered objects the tiered scrub read back from the object store.
    pub(crate) tiered_scrubbed_bytes: AtomicU64,
    /// Tiered segments the tiered scrub found damaged (an object failing its checksums, or
    /// missing).
    pub(crate) tiered_damage_found: AtomicU64,
    /// Damaged tiered segments uploaded again (from the hot tier, or from their own intact
    /// data object when only an index was bad).
    pub(crate) tiered_repaired: AtomicU64,
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
    /// Its place in the node's upload schedule (`upload.rs`).
    schedule: Mutex<UploadSchedule>,
    /// The partition's remote-tier handle, built from the node's [`Tiering`] at first use
    /// (the node has one `Tiering`, so every use sees the same one).
    handle: OnceLock<RemotePartition>,
    /// Tiered segments the tiered scrub found damaged and could not repair from this node
    /// (no intact local copy), in offset order: `/damage` and the unrecoverable gauge. Set
    /// and cleared by the scrub (`heal.rs`) only; a later pass that finds the entry intact,
    /// repaired or gone clears it.
    tiered_damage: Mutex<Vec<TieredDamage>>,
}

/// A damaged tiered segment this node could not repair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TieredDamage {
    pub(crate) base_offset: i64,
    pub(crate) end_offset: i64,
    /// The data object's key.
    pub(crate) key: String,
    /// What the scrub found.
    pub(crate) reason: String,
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
            schedule: Mutex::new(UploadSchedule::default()),
            handle: OnceLock::new(),
            tiered_damage: Mutex::new(Vec::new()),
        }
    }

    pub(super) fn schedule(&self) -> std::sync::MutexGuard<'_, UploadSchedule> {
        self.schedule
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A follower's manifest refresh: the node's view of the tiered segments and the log's
    /// tiered end follow what the leader recorded.
    pub(crate) async fn refresh(&self, log: &PartitionLog, tiering: &Tiering) -> Result<()> {
        let host = Host {
            remote: self,
            tiering,
            gate: || UploadGate::Follow,
        };
        self.handle(tiering).refresh(log, &host).await?;
        Ok(())
    }

    /// A leader's orphan sweep of the partition's prefix; failures are logged (the next sweep
    /// tries again).
    pub(crate) async fn sweep(&self, tiering: &Tiering) {
        let host = Host {
            remote: self,
            tiering,
            gate: || UploadGate::Off,
        };
        match self.handle(tiering).sweep_orphans(host.now()).await {
            Ok(report) => {
                host.swept(&report);
                debug!(topic = %self.topic, partition = self.partition, ?report, "orphan sweep done");
            }
            Err(e) => {
                warn!(topic = %self.topic, partition = self.partition, error = %e, "orphan sweep failed; will retry at the next one");
            }
        }
        // Objects a tiered-scrub repair (or a compaction) replaced, once the grace is over.
        let now_ms = tiering.clock.now_ms();
        if let Err(e) = self
            .handle(tiering)
            .reap_retired(now_ms, tiering.gc_grace)
            .await
        {
            warn!(topic = %self.topic, partition = self.partition, error = %e, "reaping retired tiered objects failed");
        }
    }

    /// As leader (`lead` is [`UploadGate::Lead`]; `None` otherwise), scrubs one tiered
    /// segment (`tierlog_tiering::remote::scrub`): re-reads its objects from the store,
    /// checks them, and replaces a damaged one from the hot tier, the swap recorded only
    /// while the partition state is the one this node leads at. The node's view follows a
    /// repair; an unrecoverable segment is remembered for `/damage` until a later pass finds
    /// it intact, repaired or gone.
    pub(crate) async fn scrub_tiered(
        &self,
        log: &Arc<PartitionLog>,
        tiering: &Tiering,
        lead: UploadGate,
        seg: &RevisionedSegment,
    ) -> Result<Option<TieredScrubReport>> {
        let UploadGate::Lead {
            epoch,
            state_revision,
            ..
        } = lead
        else {
            return Ok(None);
        };
        let opts = TieredScrubOptions {
            leader_epoch: epoch,
            now_ms: tiering.clock.now_ms(),
            index_interval_bytes: log.config().index_interval_bytes,
        };
        let report = self
            .handle(tiering)
            .leading_at(state_revision)
            .scrub_segment(seg, Some(log.clone()), &opts)
            .await?;
        let base = seg.segment.base_offset;
        let m = &tiering.metrics;
        m.tiered_scrubbed_bytes
            .fetch_add(report.bytes, Ordering::Relaxed);
        let mut damage = self
            .tiered_damage
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        damage.retain(|d| d.base_offset != base);
        match &report.outcome {
            TieredScrub::Intact => {}
            TieredScrub::Changed { .. } => {
                m.tiered_damage_found.fetch_add(1, Ordering::Relaxed);
            }
            TieredScrub::Repaired { new, .. } => {
                m.tiered_damage_found.fetch_add(1, Ordering::Relaxed);
                m.tiered_repaired.fetch_add(1, Ordering::Relaxed);
                let new = new.clone();
                self.update(|v| apply_swaps(v, vec![new]));
            }
            TieredScrub::Unrecoverable { damage: reason } => {
                m.tiered_damage_found.fetch_add(1, Ordering::Relaxed);
                let at = damage.partition_point(|d| d.base_offset < base);
                damage.insert(
                    at,
                    TieredDamage {
                        base_offset: base,
                        end_offset: seg.segment.end_offset,
                        key: seg.segment.data_key.clone(),
                        reason: reason.clone(),
                    },
                );
            }
        }
        Ok(Some(report))
    }

    /// Forgets the damaged tiered segments this node found (it no longer leads).
    pub(crate) fn clear_tiered_damage(&self) {
        self.tiered_damage
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
    }

    /// The damaged tiered segments this node could not repair (see `scrub_tiered`).
    pub(crate) fn tiered_damage(&self) -> Vec<TieredDamage> {
        self.tiered_damage
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn handle(&self, tiering: &Tiering) -> &RemotePartition {
        self.handle
            .get_or_init(|| tiering.remote_partition(&self.topic, self.topic_id, self.partition))
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

    /// Reads whole batches at `offset` from the remote tier, `None` when `offset` is not
    /// tiered. An offset in a compacted segment's tail hole reads on from the next tiered
    /// segment; past the last one the answer is empty.
    pub(crate) async fn read(
        &self,
        tiering: &Tiering,
        offset: i64,
        max_bytes: usize,
    ) -> Result<Option<Bytes>> {
        let Some(mut seg) = self.segment_for(offset) else {
            return Ok(None);
        };
        let mut offset = offset;
        loop {
            match tiering.reader.read(&seg, offset, max_bytes).await {
                Ok(b) if b.is_empty() => match self.segment_for(seg.end_offset) {
                    Some(next) => {
                        offset = seg.end_offset;
                        seg = next;
                    }
                    None => return Ok(Some(b)),
                },
                Ok(b) => return Ok(Some(b)),
                Err(e) => {
                    count_read_error(tiering, &e);
                    warn!(topic = %self.topic, partition = self.partition, key = %seg.data_key, offset, error = %e, "tiered read failed");
                    // A follower's view may be older than the manifest (a leader replaced a
                    // damaged segment): its next scheduled job re-reads it.
                    self.schedule().refresh_asked = true;
                    return Err(e.into());
                }
            }
        }
    }

    /// Aborted transactions overlapping `[from, upper)` in the tiered segments (their
    /// transaction indexes, uploaded with them).
    pub(crate) async fn aborted_transactions(
        &self,
        tiering: &Tiering,
        from: i64,
        upper: i64,
    ) -> Result<Vec<tierlog_tiering::AbortedTxn>> {
        self.handle(tiering)
            .aborted_transactions(from, upper)
            .await
            .inspect_err(|e| count_read_error(tiering, e))
            .map_err(Into::into)
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

    /// As leader (`lead` is [`UploadGate::Lead`]), uploads every sealed, untiered segment
    /// ending at or below the committed end, in offset order, under the leader's epoch; the
    /// manifest records them only while the partition state is the one this node leads at.
    pub(crate) async fn upload_pending(
        &self,
        log: &Arc<PartitionLog>,
        tiering: &Tiering,
        lead: UploadGate,
    ) -> Result<()> {
        let host = Host {
            remote: self,
            tiering,
            gate: move || lead,
        };
        self.handle(tiering)
            .upload_pending(log, lead, &host)
            .await?;
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
        let limits = RetentionLimits {
            retention_ms,
            retention_bytes,
            local_untiered_bytes: log.untiered_bytes(),
            log_start: self.delete_start(),
        };
        let deleted = self
            .handle(tiering)
            .enforce_retention(&segments, &limits, now_ms)
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

impl RemoteLog {
    /// Tiered compaction of a compacted topic: as leader only (`lead` is
    /// [`UploadGate::Lead`]; followers learn the result from the manifest), first reaps the
    /// objects earlier compactions retired once the node's orphan grace (`gc_grace`) has
    /// passed, then cleans the tiered segments below the committed end and the first
    /// unstable offset if they are dirty enough (or `force`), keys under the leader's epoch,
    /// the swap recorded only while the partition state is the one this node leads at. The
    /// node's view of the tiered segments follows the swaps. `None` when there was nothing
    /// to clean (or this node does not lead, or the topic is not compacted).
    ///
    /// Runs object-store and metadata I/O for a while (every tiered segment up to the key
    /// map's end is read and possibly rewritten): call it from the cleaner's own task.
    pub(crate) async fn compact(
        &self,
        log: &PartitionLog,
        tiering: &Tiering,
        lead: UploadGate,
        now_ms: i64,
        dedupe_buffer_bytes: usize,
        force: bool,
    ) -> Result<Option<RemoteCleanStats>> {
        let UploadGate::Lead {
            committed_end,
            epoch,
            state_revision,
        } = lead
        else {
            return Ok(None);
        };
        let config = log.config();
        if !config.cleanup_compact {
            return Ok(None);
        }
        let handle = self.handle(tiering).leading_at(state_revision);
        // Reaping failures only delay freeing space: log them and go on.
        if let Err(e) = handle.reap_retired(now_ms, tiering.gc_grace).await {
            warn!(topic = %self.topic, partition = self.partition, error = %e, "reaping retired tiered objects failed");
        }
        if self.segments().is_empty() {
            return Ok(None);
        }
        let upper_bound = log
            .first_unstable_offset()
            .map_or(committed_end, |lso| lso.min(committed_end));
        let opts = RemoteCleanOptions {
            now_ms,
            leader_epoch: epoch,
            dedupe_buffer_bytes,
            force,
            upper_bound,
            producer_last: log.producer_last_offsets(),
            // Markers of transactions with data in the tiered range that are not tiered yet.
            hot_aborted: log.aborted_transactions(log.log_start_offset(), upper_bound)?,
        };
        match handle.compact(&config, &opts).await {
            Ok(stats) => {
                if let Some(s) = &stats
                    && !s.swapped.is_empty()
                {
                    let swapped = s.swapped.clone();
                    self.update(|v| apply_swaps(v, swapped));
                }
                Ok(stats)
            }
            Err(e) => {
                // A swap may have landed before the error (or the last one ambiguously):
                // take the manifest's word for the compacted range.
                match tiering.manifest.list(self.topic_id, self.partition).await {
                    Ok(listed) => self.update(|v| merge_listing(v, listed)),
                    Err(le) => {
                        warn!(topic = %self.topic, partition = self.partition, error = %le, "re-listing the manifest after a failed compaction failed")
                    }
                }
                if matches!(
                    e,
                    tierlog_tiering::Error::ObjectStore { .. }
                        | tierlog_tiering::Error::CorruptObject { .. }
                ) {
                    count_read_error(tiering, &e);
                }
                warn!(topic = %self.topic, partition = self.partition, error = %e, "tiered compaction failed");
                Err(e.into())
            }
        }
    }
}

/// Replaces, in a view of the tiered segments (offset order), the entries each swapped-in
/// segment covers with it.
#[allow(dead_code)]
fn apply_swaps(view: &mut Vec<RemoteSegment>, swapped: Vec<RemoteSegment>) {
    for new in swapped {
        view.retain(|s| !(s.base_offset >= new.base_offset && s.end_offset <= new.end_offset));
        let at = view.partition_point(|s| s.base_offset < new.base_offset);
        view.insert(at, new);
    }
}

/// A fresh manifest listing as the view, keeping the view's segments past the listing's end
/// (recorded by the uploader after the listing was taken).
#[allow(dead_code)]
fn merge_listing(view: &mut Vec<RemoteSegment>, listed: Vec<RemoteSegment>) {
    let end = listed.last().map_or(i64::MIN, |s| s.end_offset);
    let newer: Vec<RemoteSegment> = view
        .iter()
        .filter(|s| s.base_offset >= end)
        .cloned()
        .collect();
    *view = listed;
    view.extend(newer);
}

/// What the uploader of one partition reports to and asks of this node: the partition's view
/// of its tiered segments, the node's metrics, the replication role.
struct Host<'a, G> {
    remote: &'a RemoteLog,
    tiering: &'a Tiering,
    gate: G,
}

impl<G: Fn() -> UploadGate + Send + Sync> UploaderHost for Host<'_, G> {
    fn gate(&self) -> UploadGate {
        (self.gate)()
    }

    fn wake(&self) -> &Notify {
        // The node's scheduler (`upload.rs`) runs the passes; nothing waits on this.
        static UNUSED: Notify = Notify::const_new();
        &UNUSED
    }

    fn tiered_end(&self) -> Option<i64> {
        self.remote.end()
    }

    fn recorded(&self, segment: RemoteSegment) {
        let metrics = &self.tiering.metrics;
        metrics.uploaded_segments.fetch_add(1, Ordering::Relaxed);
        metrics
            .uploaded_bytes
            .fetch_add(segment.size_bytes, Ordering::Relaxed);
        self.remote.update(|v| v.push(segment));
    }

    fn relisted(&self, segments: Vec<RemoteSegment>) {
        self.remote.update(|v| *v = segments);
    }

    fn upload_failed(&self, _error: &tierlog_tiering::Error) {
        self.tiering
            .metrics
            .upload_errors
            .fetch_add(1, Ordering::Relaxed);
    }

    fn swept(&self, report: &GcReport) {
        self.tiering
            .metrics
            .orphans_deleted
            .fetch_add(report.deleted as u64, Ordering::Relaxed);
    }

    fn now(&self) -> SystemTime {
        let ms = u64::try_from(self.tiering.clock.now_ms()).unwrap_or(0);
        UNIX_EPOCH + Duration::from_millis(ms)
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn seg(base: i64, end: i64, key: &str) -> RemoteSegment {
        RemoteSegment {
            base_offset: base,
            end_offset: end,
            size_bytes: 1,
            first_timestamp: 0,
            max_timestamp: 0,
            leader_epoch: 0,
            data_key: key.into(),
            index_key: String::new(),
            time_index_key: String::new(),
            chunk_size: 1,
            chunk_crcs: vec![0],
            index_crc: 0,
            time_index_crc: 0,
            uploaded_ms: 0,
        }
    }

    #[test]
    fn swaps_replace_the_covered_entries_of_the_view() {
        let mut v = vec![
            seg(0, 10, "a"),
            seg(10, 20, "b"),
            seg(20, 30, "c"),
            seg(30, 40, "d"),
            seg(40, 50, "e"),
        ];
        apply_swaps(&mut v, vec![seg(0, 20, "ab"), seg(20, 40, "cd")]);
        let keys: Vec<&str> = v.iter().map(|s| s.data_key.as_str()).collect();
        assert_eq!(keys, vec!["ab", "cd", "e"]);
        // a relisting keeps what the uploader recorded after it
        let mut v = vec![seg(0, 10, "a"), seg(10, 20, "b"), seg(20, 30, "c")];
        merge_listing(&mut v, vec![seg(0, 20, "ab")]);
        let keys: Vec<&str> = v.iter().map(|s| s.data_key.as_str()).collect();
        assert_eq!(keys, vec!["ab", "c"]);
    }

    fn keyed(key: &str, value: &str) -> Bytes {
        use kafka_protocol::records::{
            Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
        };
        let record = Record {
            transactional: false,
            control: false,
            partition_leader_epoch: 0,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: 0,
            sequence: -1,
            timestamp: 1_000,
            key: Some(Bytes::from(key.to_string())),
            value: Some(Bytes::from(value.to_string())),
            headers: Default::default(),
            delete_horizon: false,
        };
        let mut buf = bytes::BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            &[record],
            &RecordEncodeOptions {
                version: 2,
                compression: Compression::None,
            },
        )
        .unwrap();
        buf.freeze()
    }

    /// A node's tiering over in-memory stores, and a partition of a compacted topic (six
    /// one-record batches in three sealed segments, tiered by this node as leader).
    struct Fx {
        _dir: tempfile::TempDir,
        tiering: Tiering,
        store: Arc<dyn ObjectStore>,
        log: Arc<PartitionLog>,
        remote: RemoteLog,
        topic_id: TopicId,
        lead: UploadGate,
    }

    async fn tiered_partition() -> Fx {
        use tierlog_metadata::{
            MemoryStore, MetadataStore, MetadataStoreExt, PartitionStateRegistry, SystemClock,
        };
        use tierlog_tiering::remote::cache::{CacheConfig, ChunkCache};

        let meta: Arc<dyn MetadataStore> = Arc::new(MemoryStore::new());
        let store: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
        let cache = ChunkCache::new(&CacheConfig {
            memory_bytes: 16 << 20,
            ..CacheConfig::default()
        })
        .await
        .unwrap();
        let tiering = Tiering {
            store: store.clone(),
            manifest: ManifestRegistry::new(meta.clone()),
            reader: RemoteReader::new(store.clone(), cache),
            verify_reads: true,
            upload_interval: Duration::from_secs(1),
            gc_interval: Duration::from_secs(600),
            gc_grace: Duration::from_secs(3600),
            metrics: TieringMetrics::default(),
            clock: SystemClock::shared(),
            scrub_interval: Duration::from_secs(3600),
            scrub_bytes_per_sec: 0,
            scrub_tiered_interval: Duration::ZERO,
        };
        let dir = tempfile::tempdir().unwrap();
        let log = Arc::new(
            PartitionLog::open(
                dir.path(),
                tierlog_tiering::LogConfig {
                    segment_ms: None,
                    retention_ms: None,
                    remote_storage: true,
                    cleanup_compact: true,
                    cleanup_delete: false,
                    ..tierlog_tiering::LogConfig::default()
                },
            )
            .unwrap(),
        );
        for (i, k) in ["a", "b", "a", "a", "c", "b"].iter().enumerate() {
            log.append(keyed(k, &format!("v{i}")), 1, 0).unwrap();
            if i % 2 == 1 {
                log.roll_now().unwrap();
            }
        }
        let topic_id = TopicId::new_v4();
        let rev = meta
            .put(&PartitionStateRegistry::key(topic_id, 0), "leader".into())
            .await
            .unwrap();
        let remote = RemoteLog::new("t".into(), topic_id, 0, vec![], None);
        let lead = UploadGate::Lead {
            committed_end: log.log_end_offset(),
            epoch: 1,
            state_revision: rev,
        };
        remote.upload_pending(&log, &tiering, lead).await.unwrap();
        assert_eq!(remote.segments().len(), 3);
        Fx {
            _dir: dir,
            tiering,
            store,
            log,
            remote,
            topic_id,
            lead,
        }
    }

    #[tokio::test]
    async fn only_the_leader_compacts_and_its_view_follows_the_swaps() {
        let Fx {
            tiering,
            log,
            remote,
            topic_id,
            lead,
            ..
        } = tiered_partition().await;
        // A follower does not compact.
        let none = remote
            .compact(&log, &tiering, UploadGate::Follow, 5_000, 1 << 20, true)
            .await
            .unwrap();
        assert!(none.is_none());
        let stats = remote
            .compact(&log, &tiering, lead, 5_000, 1 << 20, true)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stats.interrupted, None);
        assert_eq!(
            (stats.clean.segments_before, stats.clean.segments_after),
            (3, 1)
        );
        let view = remote.segments();
        assert_eq!(*view, tiering.manifest.list(topic_id, 0).await.unwrap());
        assert_eq!((view[0].base_offset, view[0].end_offset), (0, 6));
        // Reads step over the holes: a@3, c@4, b@5 are what is left.
        let mut offsets = Vec::new();
        let mut at = 0;
        while let Some(b) = remote.read(&tiering, at, 1 << 20).await.unwrap() {
            if b.is_empty() {
                break;
            }
            let mut b = b;
            while !b.is_empty() {
                let set = kafka_protocol::records::RecordBatchDecoder::decode(&mut b).unwrap();
                for r in set.records {
                    offsets.push(r.offset);
                    at = r.offset + 1;
                }
            }
            if at >= 6 {
                break;
            }
        }
        assert_eq!(offsets, vec![3, 4, 5]);
    }

    #[tokio::test]
    async fn only_the_leader_scrubs_tiered_objects_and_repairs_them_from_its_hot_tier() {
        use object_store::{ObjectStoreExt, PutPayload};
        use tierlog_tiering::remote::RepairSource;

        let fx = tiered_partition().await;
        // Overwrites the data object of the `i`th tiered segment with `damage` of its bytes.
        let damage = async |i: usize, damage: fn(&mut Vec<u8>)| {
            let seg = fx
                .tiering
                .manifest
                .list_revisioned(fx.topic_id, 0)
                .await
                .unwrap()
                .remove(i);
            let path = object_store::path::Path::from(seg.segment.data_key.as_str());
            let got = fx.store.get(&path).await.unwrap();
            let mut bytes = got.bytes().await.unwrap().to_vec();
            damage(&mut bytes);
            fx.store.put(&path, PutPayload::from(bytes)).await.unwrap();
            seg
        };
        let bad = damage(1, |b| {
            let at = b.len() - 3;
            b[at] ^= 1;
        })
        .await;
        // a follower's view, as of before the repair
        let follower = RemoteLog::new(
            "t".into(),
            fx.topic_id,
            0,
            fx.remote.segments().to_vec(),
            None,
        );
        // a follower does not scrub
        let none = fx
            .remote
            .scrub_tiered(&fx.log, &fx.tiering, UploadGate::Follow, &bad)
            .await
            .unwrap();
        assert!(none.is_none());
        let m = &fx.tiering.metrics;
        assert_eq!(m.tiered_scrubbed_bytes.load(Ordering::Relaxed), 0);
        // the leader finds the flip and uploads the segment again from its hot tier
        let report = fx
            .remote
            .scrub_tiered(&fx.log, &fx.tiering, fx.lead, &bad)
            .await
            .unwrap()
            .unwrap();
        let TieredScrub::Repaired { new, source, .. } = report.outcome else {
            panic!("{report:?}");
        };
        assert_eq!(source, RepairSource::Local);
        assert_eq!(fx.remote.segments()[1], new);
        assert_eq!(
            *fx.remote.segments(),
            fx.tiering.manifest.list(fx.topic_id, 0).await.unwrap()
        );
        assert!(m.tiered_scrubbed_bytes.load(Ordering::Relaxed) >= bad.segment.size_bytes);
        assert_eq!(m.tiered_damage_found.load(Ordering::Relaxed), 1);
        assert_eq!(m.tiered_repaired.load(Ordering::Relaxed), 1);
        assert!(fx.remote.tiered_damage().is_empty());
        // reads of the range get the records back
        let got = fx
            .remote
            .read(&fx.tiering, 2, 1 << 20)
            .await
            .unwrap()
            .unwrap();
        let mut got = got;
        let set = kafka_protocol::records::RecordBatchDecoder::decode(&mut got).unwrap();
        assert_eq!(set.records[0].value.as_deref(), Some(&b"v2"[..]));

        // the follower's stale view reads the damaged object: refused (its checksums), and a
        // refresh of its view is asked for; after it, the follower reads the repaired segment
        assert!(follower.read(&fx.tiering, 2, 1 << 20).await.is_err());
        assert!(follower.schedule().refresh_asked);
        follower.refresh(&fx.log, &fx.tiering).await.unwrap();
        assert_eq!(follower.segments()[1], new);
        let mut got = follower
            .read(&fx.tiering, 2, 1 << 20)
            .await
            .unwrap()
            .unwrap();
        let set = kafka_protocol::records::RecordBatchDecoder::decode(&mut got).unwrap();
        assert_eq!(set.records[0].value.as_deref(), Some(&b"v2"[..]));

        // without the hot tier's copy (its log start moved past the segment) it is
        // unrecoverable here: counted, and listed until a pass finds it fixed
        let first = damage(0, |b| b.fill(0)).await;
        fx.log.advance_log_start(2).unwrap();
        let report = fx
            .remote
            .scrub_tiered(&fx.log, &fx.tiering, fx.lead, &first)
            .await
            .unwrap()
            .unwrap();
        assert!(
            matches!(report.outcome, TieredScrub::Unrecoverable { .. }),
            "{report:?}"
        );
        let damage = fx.remote.tiered_damage();
        assert_eq!(damage.len(), 1);
        assert_eq!((damage[0].base_offset, damage[0].end_offset), (0, 2));
        assert!(
            damage[0].reason.contains("checksum mismatch"),
            "{}",
            damage[0].reason
        );
        assert_eq!(m.tiered_damage_found.load(Ordering::Relaxed), 2);
        assert_eq!(m.tiered_repaired.load(Ordering::Relaxed), 1);
    }
}
