//! The uploader of one partition: the loop that tiers sealed segments, follows the manifest
//! on followers and sweeps orphans on the leader.
//!
//! [`RemotePartition::run_uploader`] is the periodic-work shape: cancellation first, then a
//! wake-up (a roll just sealed a segment), then a tick. What it may do comes from its
//! [`UploaderHost`] before each pass ([`UploadGate`]): nothing, follow the manifest (a
//! follower: every [`FOLLOWER_REFRESH_TICKS`] ticks it re-reads the manifest so local
//! retention can free tiered segments), or lead. A leader's pass
//! ([`RemotePartition::upload_pending`]) uploads every sealed segment past the tiered end in
//! offset order and stops at the first failure; the next pass retries after a backoff
//! (200 ms doubling to 10 s, reset by a successful pass), so nothing is skipped and nothing is
//! tiered twice: the manifest's create-only put decides. An upload and its manifest commit run
//! inside one [`RemotePartition::upload`]; if the loop is cancelled between them, only
//! unreferenced objects remain, never a manifest entry without objects.
//!
//! Such unreferenced objects (a crash or a deposed leader between upload and record, an
//! ambiguous manifest error) are collected by the leader's uploader too: at most once per
//! [`GcConfig::interval`](super::gc::GcConfig::interval) it sweeps the partition's prefix
//! ([`RemotePartition::sweep_orphans`]). Sweeps run between upload passes, so this node never
//! has an upload in flight during its own sweep; the grace covers uploads by other nodes (a
//! deposed leader still finishing one).
//!
//! The host keeps what the node knows (its copy of the tiered segments, its metrics); this
//! module keeps the order of things.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tierlog_metadata::RemoteSegment;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::gc::GcReport;
use super::partition::RemotePartition;
use super::upload::is_already_tiered;
use crate::PartitionLog;
use crate::error::{Error, Result};

/// How many upload ticks a follower waits between manifest refreshes.
pub const FOLLOWER_REFRESH_TICKS: u32 = 5;

/// What a partition's uploader may do, decided by the node from its replication role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadGate {
    /// Tiering is off for the topic, or this node is no replica.
    Off,
    /// Leader: upload sealed segments that end at or below `committed_end`, keys carrying
    /// `epoch`, recorded only while the partition state is still at `state_revision`.
    Lead {
        /// The high watermark: nothing above it is tiered.
        committed_end: i64,
        /// The leader epoch object keys carry.
        epoch: i32,
        /// The partition state's revision this node leads at.
        state_revision: u64,
    },
    /// Follower: follow the manifest the leader writes (so local retention can free tiered
    /// segments here too).
    Follow,
}

/// What the uploader asks of the node that runs it, and tells it.
///
/// The node owns its view of the tiered segments (readers use it without touching the
/// manifest) and its metrics; the uploader reports every change through
/// [`recorded`](Self::recorded) and [`relisted`](Self::relisted). Calls come from the
/// uploader's task only, one at a time.
pub trait UploaderHost: Send + Sync {
    /// What this node may do now; asked before every pass.
    fn gate(&self) -> UploadGate;
    /// Notified when a segment was sealed: the loop runs a pass at once.
    fn wake(&self) -> &Notify;
    /// One past the last tiered offset in the node's view, if anything is tiered.
    fn tiered_end(&self) -> Option<i64>;
    /// This node's upload recorded `segment` (the next in offset order).
    fn recorded(&self, segment: RemoteSegment);
    /// The manifest was re-read (a follower's refresh, or another upload won a base offset):
    /// `segments` replace the node's view.
    fn relisted(&self, segments: Vec<RemoteSegment>);
    /// A pass failed with `error` (already logged); the next retries.
    fn upload_failed(&self, error: &Error) {
        let _ = error;
    }
    /// An orphan sweep finished.
    fn swept(&self, report: &GcReport) {
        let _ = report;
    }
    /// The current time (upload timestamps, the sweep's grace).
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// The wait before retrying a failed pass: 200 ms, doubling to 10 s; none after a success.
#[derive(Debug, Default)]
struct Backoff {
    current: Duration,
}

impl Backoff {
    const MIN: Duration = Duration::from_millis(200);
    const MAX: Duration = Duration::from_secs(10);

    fn delay(&self) -> Option<Duration> {
        Some(self.current).filter(|d| !d.is_zero())
    }

    fn failed(&mut self) -> Duration {
        self.current = (self.current * 2).clamp(Self::MIN, Self::MAX);
        self.current
    }

    fn succeeded(&mut self) {
        self.current = Duration::ZERO;
    }
}

fn millis(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl RemotePartition {
    /// The uploader loop of this partition (see the module docs), until `cancel`. Each upload
    /// failure is logged, reported to the host and retried after a backoff; sweep failures
    /// are logged and retried at the next sweep.
    pub async fn run_uploader<H: UploaderHost>(
        &self,
        log: &Arc<PartitionLog>,
        host: &H,
        cancel: &CancellationToken,
    ) {
        let mut tick = tokio::time::interval(self.options.upload_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut backoff = Backoff::default();
        let mut follower_ticks = 0u32;
        let gc = self.options.gc;
        // The first sweep comes after a random half to one and a half intervals, so the
        // partitions of a node that just started do not all list the bucket at once.
        let jitter = (uuid::Uuid::new_v4().as_u128() % 1000) as f64 / 1000.0;
        let mut next_gc = tokio::time::Instant::now() + gc.interval.mul_f64(0.5 + jitter);
        loop {
            tokio::select! {
                biased;
                () = cancel.cancelled() => break,
                () = host.wake().notified() => {}
                _ = tick.tick() => {}
            }
            let lead = match host.gate() {
                UploadGate::Off => continue,
                UploadGate::Follow => {
                    follower_ticks += 1;
                    if follower_ticks >= FOLLOWER_REFRESH_TICKS {
                        follower_ticks = 0;
                        if let Err(e) = self.refresh(log, host).await {
                            debug!(topic = %self.topic, partition = self.partition, error = %e, "manifest refresh failed");
                        }
                    }
                    continue;
                }
                lead @ UploadGate::Lead { .. } => lead,
            };
            if let Some(delay) = backoff.delay() {
                tokio::select! {
                    biased;
                    () = cancel.cancelled() => break,
                    () = tokio::time::sleep(delay) => {}
                }
            }
            match self.upload_pending(log, lead, host).await {
                Ok(()) => backoff.succeeded(),
                Err(e) => {
                    let retry_in = backoff.failed();
                    warn!(topic = %self.topic, partition = self.partition, error = %e, ?retry_in, "tiering upload failed; will retry");
                    host.upload_failed(&e);
                }
            }
            if tokio::time::Instant::now() >= next_gc {
                next_gc = tokio::time::Instant::now() + gc.interval;
                tokio::select! {
                    biased;
                    // Dropping a sweep midway only leaves orphans for the next one.
                    () = cancel.cancelled() => break,
                    () = self.sweep(host) => {}
                }
            }
        }
    }

    /// One orphan sweep; errors are logged (the next sweep tries again).
    async fn sweep(&self, host: &impl UploaderHost) {
        match self.sweep_orphans(host.now()).await {
            Ok(report) => {
                host.swept(&report);
                debug!(topic = %self.topic, partition = self.partition, ?report, "orphan sweep done");
            }
            Err(e) => {
                warn!(topic = %self.topic, partition = self.partition, error = %e, "orphan sweep failed; will retry at the next one");
            }
        }
    }

    /// Re-reads the manifest (a follower: the leader tiers) and moves the local tiered end.
    pub async fn refresh(&self, log: &PartitionLog, host: &impl UploaderHost) -> Result<()> {
        let current = self.manifest.list(self.topic_id, self.partition).await?;
        let end = current.last().map(|s| s.end_offset);
        host.relisted(current);
        if let Some(end) = end {
            log.set_tiered_end(end.min(log.log_end_offset()));
        }
        Ok(())
    }

    /// One pass: as leader (`gate` is [`UploadGate::Lead`]; otherwise nothing happens),
    /// uploads every sealed, untiered segment of `log` ending at or below the committed end,
    /// in offset order, under the leader's epoch; the manifest records them only while the
    /// partition state is the one this node leads at. Stops at the first failure. A segment
    /// partly tiered already (another node rolled at a different offset) has only its rest
    /// uploaded, so the remote tier has neither hole nor overlap.
    pub async fn upload_pending(
        &self,
        log: &Arc<PartitionLog>,
        gate: UploadGate,
        host: &impl UploaderHost,
    ) -> Result<()> {
        let UploadGate::Lead {
            committed_end,
            epoch,
            state_revision,
        } = gate
        else {
            return Ok(());
        };
        let leader = self.leading_at(state_revision);
        let l = log.clone();
        let sealed = tokio::task::spawn_blocking(move || l.sealed_segments())
            .await
            .map_err(|e| Error::Internal {
                reason: format!("listing sealed segments: {e}"),
            })??;
        let mut tiered_end = host.tiered_end().unwrap_or(i64::MIN).max(log.tiered_end());
        for seg in &sealed {
            if seg.end_offset <= tiered_end {
                continue;
            }
            if seg.end_offset > committed_end {
                break;
            }
            // Damaged bytes are never uploaded, nor a placeholder for a missing segment file
            // (it holds no bytes for its offsets): the tiered range waits for the repair.
            if log.has_damage()
                && let Some(d) = log
                    .damaged_ranges()
                    .into_iter()
                    .find(|d| d.segment_base == seg.base_offset && d.last_offset >= tiered_end)
            {
                return Err(Error::Damaged {
                    path: seg.log_path.clone(),
                    first_offset: d.first_offset,
                    last_offset: d.last_offset,
                    reason: d.reason,
                });
            }
            let now = millis(host.now());
            let recorded = if seg.base_offset < tiered_end {
                let (l, base, from) = (log.clone(), seg.base_offset, tiered_end);
                let suffix = tokio::task::spawn_blocking(move || l.sealed_suffix(base, from))
                    .await
                    .map_err(|e| Error::Internal {
                        reason: format!("reading a segment suffix: {e}"),
                    })??;
                leader.upload_suffix(&suffix, epoch, now).await
            } else {
                leader.upload(seg, epoch, now).await
            };
            let recorded = match recorded {
                Ok(r) => r,
                Err(e) if is_already_tiered(&e) => {
                    // Someone recorded this base offset already: take the manifest as truth.
                    let current = self.manifest.list(self.topic_id, self.partition).await?;
                    tiered_end = current.last().map_or(tiered_end, |s| s.end_offset);
                    host.relisted(current);
                    log.set_tiered_end(tiered_end);
                    continue;
                }
                Err(e) => return Err(e),
            };
            debug!(topic = %self.topic, partition = self.partition, base = recorded.base_offset, end = recorded.end_offset, bytes = recorded.size_bytes, "segment tiered");
            tiered_end = recorded.end_offset;
            host.recorded(recorded);
            log.set_tiered_end(tiered_end);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicU64, Ordering};

    use futures::TryStreamExt;
    use object_store::ObjectStore;
    use object_store::memory::InMemory;
    use tierlog_metadata::{
        ManifestRegistry, MemoryStore, MetadataStore, Op, PartitionStateRegistry,
    };
    use uuid::Uuid;

    use super::*;
    use crate::PartitionLog;
    use crate::remote::faults::{FaultStore, OpKind};
    use crate::remote::layout::DATA_SUFFIX;
    use crate::remote::upload::tests::{fill, small_log};

    /// A node's side of the uploader, in memory: a fixed gate, the tiered segments, counters.
    struct TestHost {
        gate: UploadGate,
        wake: Notify,
        segments: Mutex<Vec<RemoteSegment>>,
        failures: AtomicU64,
    }

    impl UploaderHost for TestHost {
        fn gate(&self) -> UploadGate {
            self.gate
        }
        fn wake(&self) -> &Notify {
            &self.wake
        }
        fn tiered_end(&self) -> Option<i64> {
            self.segments.lock().unwrap().last().map(|s| s.end_offset)
        }
        fn recorded(&self, segment: RemoteSegment) {
            self.segments.lock().unwrap().push(segment);
        }
        fn relisted(&self, segments: Vec<RemoteSegment>) {
            *self.segments.lock().unwrap() = segments;
        }
        fn upload_failed(&self, _error: &Error) {
            self.failures.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// A log of small segments, several sealed, on the local tier.
    fn sealed_log(dir: &std::path::Path) -> Arc<PartitionLog> {
        let log = small_log(dir);
        fill(&log, 150);
        Arc::new(log)
    }

    /// Runs the uploader of a leader over `faults` (wrapping an in-memory store) until every
    /// sealed segment of a fresh log is tiered, and checks that each one was uploaded and
    /// recorded exactly once, in order, with nothing left over. Returns the fault store, how
    /// many passes failed and how many segments were tiered.
    async fn tier_everything_through(faults: &str) -> (Arc<FaultStore>, u64, u64) {
        let dir = tempfile::tempdir().unwrap();
        let log = sealed_log(dir.path());
        let sealed = log.sealed_segments().unwrap();
        assert!(sealed.len() >= 4, "{sealed:?}");

        let (topic_id, partition) = (Uuid::new_v4(), 0);
        // The partition state a leader leads at: the manifest records only while it holds.
        let meta = Arc::new(MemoryStore::new());
        let state_key = PartitionStateRegistry::key(topic_id, partition);
        meta.txn(vec![], vec![Op::put(state_key.clone(), "leader")])
            .await
            .unwrap();
        let state_revision = meta.get(&state_key).await.unwrap().unwrap().mod_revision;
        let manifest = ManifestRegistry::new(meta);
        let store = Arc::new(FaultStore::new(
            Arc::new(InMemory::new()),
            faults.parse().unwrap(),
        ));
        let remote = RemotePartition::new(store.clone(), manifest.clone(), "t", topic_id, 0);
        let host = TestHost {
            gate: UploadGate::Lead {
                committed_end: log.log_end_offset(),
                epoch: 3,
                state_revision,
            },
            wake: Notify::new(),
            segments: Mutex::new(Vec::new()),
            failures: AtomicU64::new(0),
        };

        let started = tokio::time::Instant::now();
        let cancel = CancellationToken::new();
        let done = async {
            while host.segments.lock().unwrap().len() < sealed.len() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            cancel.cancel();
        };
        let run = remote.run_uploader(&log, &host, &cancel);
        tokio::time::timeout(Duration::from_secs(600), async { tokio::join!(run, done) })
            .await
            .expect("the uploader did not tier every sealed segment");

        // every sealed segment exactly once, in order, in the manifest and in the host's view
        let recorded = manifest.list(topic_id, partition).await.unwrap();
        let ranges = |v: &[RemoteSegment]| {
            v.iter()
                .map(|s| (s.base_offset, s.end_offset))
                .collect::<Vec<_>>()
        };
        let want: Vec<_> = sealed
            .iter()
            .map(|s| (s.base_offset, s.end_offset))
            .collect();
        assert_eq!(ranges(&recorded), want);
        assert_eq!(*host.segments.lock().unwrap(), recorded);
        assert!(recorded.iter().all(|s| s.leader_epoch == 3));
        assert_eq!(log.tiered_end(), sealed.last().unwrap().end_offset);
        // the objects of failed attempts were deleted: three per segment, each referenced,
        // plus the producer snapshots the log had
        let objects: Vec<_> = store.list(None).try_collect().await.unwrap();
        let snapshots = sealed
            .iter()
            .filter(|s| s.producer_snapshot_path.is_some())
            .count();
        assert_eq!(objects.len(), 3 * sealed.len() + snapshots);
        let data = objects
            .iter()
            .filter(|o| o.location.as_ref().ends_with(DATA_SUFFIX))
            .count();
        assert_eq!(data, sealed.len());
        for s in &recorded {
            for key in [&s.data_key, &s.index_key, &s.time_index_key] {
                assert!(objects.iter().any(|o| o.location.as_ref() == key.as_str()));
            }
        }
        // each failed pass was retried after the backoff: 200 ms, doubling up to 10 s
        let failures = host.failures.load(Ordering::SeqCst);
        let backoff: u64 = (0..failures)
            .map(|i| (200u64 << i.min(6)).min(10_000))
            .sum();
        assert!(
            started.elapsed() >= Duration::from_millis(backoff),
            "{failures} failed passes in {:?}",
            started.elapsed()
        );
        (store, failures, sealed.len() as u64)
    }

    #[tokio::test(start_paused = true)]
    async fn the_uploader_retries_failed_puts_and_tiers_each_segment_exactly_once() {
        let (store, failures, segments) =
            tier_everything_through("fail_first=5,ops=put,error=500").await;
        assert_eq!(store.injected_errors(), 5);
        // every injected failure fails its pass (a pass stops at its first failure), and a
        // pass fails only through one
        assert!((1..=5).contains(&failures), "{failures}");
        // the retries' puts came on top of the three per segment
        assert!(store.calls(OpKind::Put) > 3 * segments);
    }

    #[tokio::test(start_paused = true)]
    async fn the_uploader_rides_out_a_run_of_503s() {
        let (store, failures, _) = tier_everything_through("ops=put,fail_first=12,error=503").await;
        assert_eq!(store.injected_errors(), 12);
        assert!((1..=12).contains(&failures), "{failures}");
    }

    #[tokio::test]
    async fn a_placeholder_for_a_missing_segment_file_is_not_uploaded_until_repaired() {
        let dir = tempfile::tempdir().unwrap();
        let (bases, missing) = {
            let log = sealed_log(dir.path());
            let bases: Vec<i64> = log
                .sealed_segments()
                .unwrap()
                .iter()
                .map(|s| s.base_offset)
                .collect();
            log.close().unwrap();
            let path = dir.path().join(crate::segment::file_name(bases[1], "log"));
            let bytes = std::fs::read(&path).unwrap();
            std::fs::remove_file(&path).unwrap();
            (bases, bytes)
        };
        let log = Arc::new(small_log(dir.path()));
        assert_eq!(log.damaged_ranges()[0].first_offset, bases[1]);

        let topic_id = Uuid::new_v4();
        let meta = Arc::new(MemoryStore::new());
        let state_key = PartitionStateRegistry::key(topic_id, 0);
        meta.txn(vec![], vec![Op::put(state_key.clone(), "leader")])
            .await
            .unwrap();
        let state_revision = meta.get(&state_key).await.unwrap().unwrap().mod_revision;
        let manifest = ManifestRegistry::new(meta);
        let remote = RemotePartition::new(
            Arc::new(InMemory::new()),
            manifest.clone(),
            "t",
            topic_id,
            0,
        );
        let gate = UploadGate::Lead {
            committed_end: log.log_end_offset(),
            epoch: 1,
            state_revision,
        };
        let host = TestHost {
            gate,
            wake: Notify::new(),
            segments: Mutex::new(Vec::new()),
            failures: AtomicU64::new(0),
        };
        // The segment before the hole goes up; the empty placeholder does not, nor anything
        // after it (the tiered range has no holes).
        let e = remote.upload_pending(&log, gate, &host).await.unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Data, "{e}");
        let recorded = manifest.list(topic_id, 0).await.unwrap();
        assert_eq!(recorded.len(), 1, "{recorded:?}");
        assert_eq!(recorded[0].end_offset, bases[1]);

        // Once repaired, it is a segment like the others and goes up whole.
        assert!(log.repair(bases[1], &missing).unwrap().is_empty());
        remote.upload_pending(&log, gate, &host).await.unwrap();
        let recorded = manifest.list(topic_id, 0).await.unwrap();
        assert_eq!(recorded[1].base_offset, bases[1]);
        assert_eq!(recorded[1].size_bytes, missing.len() as u64);
        assert_eq!(
            recorded.last().unwrap().end_offset,
            log.sealed_segments().unwrap().last().unwrap().end_offset
        );
    }

    #[tokio::test(start_paused = true)]
    async fn no_faults_no_retries() {
        let (store, failures, segments) = tier_everything_through("latency=20ms").await;
        assert_eq!((store.injected_errors(), failures), (0, 0));
        // three objects and the producer snapshot (the log keeps the newest 5) per segment
        assert!(segments <= 5);
        assert_eq!(store.calls(OpKind::Put), 4 * segments);
    }
}
