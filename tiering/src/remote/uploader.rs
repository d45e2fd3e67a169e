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
