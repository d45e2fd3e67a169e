//! The node's one upload scheduler: which partitions tier, follow the manifest or sweep
//! orphans, and when — instead of a ticking uploader task per partition.
//!
//! Every `upload_interval` (and at once for a partition whose roll just sealed a segment) the
//! scheduler looks at each partition's role and local state, all in memory:
//! - a leader with sealed, untiered segments gets an upload pass
//!   ([`RemoteLog::upload_pending`]); a failed pass is retried after a backoff (200 ms
//!   doubling to 10 s, reset by a success);
//! - a leader whose orphan sweep is due (every `gc_interval`, first after a random part of
//!   it so that a node's partitions do not all list the bucket at once) gets a sweep;
//! - a follower with sealed segments past its tiered end re-reads the manifest at most every
//!   [`FOLLOWER_REFRESH_TICKS`] intervals (so its local retention can free what the leader
//!   tiered). A follower with nothing sealed to free reads nothing.
//!
//! At most one job runs per partition (an upload never overlaps this node's own sweep), and
//! at most [`CONCURRENT_JOBS`] run at once. An idle partition costs one look per interval: a
//! few atomic loads and two uncontended locks.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, RwLock, Weak};
use std::time::Duration;

use tierlog_metadata::SharedClock;
use tierlog_tiering::remote::FOLLOWER_REFRESH_TICKS;
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

use super::heal::{heal_from_tiered, scrub_partition};
use super::{Partition, Tiering, TopicState, UploadGate};

/// Upload, refresh and sweep jobs running at once.
pub(crate) const CONCURRENT_JOBS: usize = 8;

/// A partition's place in the schedule (kept in its [`RemoteLog`](super::RemoteLog)).
#[derive(Debug, Default)]
pub(crate) struct UploadSchedule {
    /// A job of this partition is running.
    busy: bool,
    /// Current retry backoff (zero after a success).
    backoff: Duration,
    /// No upload before this (ms, the node clock): the backoff after a failure.
    not_before_ms: i64,
    /// A follower's next manifest refresh (ms).
    next_refresh_ms: i64,
    /// A leader's next orphan sweep (ms); 0: not scheduled yet.
    next_sweep_ms: i64,
    /// The next attempt to heal damaged ranges from the tiered copy (ms).
    next_heal_ms: i64,
    /// A read of the tiered copy failed: a follower refreshes its view at the next chance
    /// (its leader may have replaced the segment, after a tiered scrub found it damaged).
    pub(super) refresh_asked: bool,
}

enum Job {
    Upload(UploadGate),
    Refresh,
    Sweep,
    Heal,
}

/// Heal attempts of a partition whose damage the tiered copy did not repair are this many
/// upload intervals apart.
const HEAL_RETRY_TICKS: i64 = 30;

/// See the module docs.
#[derive(Debug)]
pub(crate) struct Uploader {
    /// Partitions that sealed a segment since the last look.
    woken: Mutex<Vec<Weak<Partition>>>,
    wake: Notify,
    tracker: TaskTracker,
    permits: Arc<Semaphore>,
}

const BACKOFF_MIN: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(10);

impl Uploader {
    pub(crate) fn new(tracker: TaskTracker) -> Arc<Uploader> {
        Arc::new(Uploader {
            woken: Mutex::new(Vec::new()),
            wake: Notify::new(),
            tracker,
            permits: Arc::new(Semaphore::new(CONCURRENT_JOBS)),
        })
    }

    /// A roll of `p` sealed a segment: look at it now rather than at the next interval.
    pub(super) fn wake(&self, p: Weak<Partition>) {
        self.woken
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(p);
        self.wake.notify_one();
    }

    /// The schedule, until cancelled.
    pub(crate) async fn run(
        self: Arc<Self>,
        topics: Arc<RwLock<HashMap<String, Arc<TopicState>>>>,
        tiering: Arc<Tiering>,
        clock: SharedClock,
        cancel: CancellationToken,
    ) {
        let mut tick = tokio::time::interval(tiering.upload_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let due: Vec<Arc<Partition>> = tokio::select! {
                biased;
                () = cancel.cancelled() => return,
                () = self.wake.notified() => {
                    std::mem::take(&mut *self.woken.lock().unwrap_or_else(PoisonError::into_inner))
                        .iter()
                        .filter_map(Weak::upgrade)
                        .collect()
                }
                _ = tick.tick() => topics
                    .read()
                    .unwrap_or_else(PoisonError::into_inner)
                    .values()
                    .flat_map(|t| t.partitions.iter().cloned())
                    .collect(),
            };
            let now_ms = clock.now_ms();
            for p in due {
                if !p.cancel.is_cancelled() {
                    self.consider(&p, &tiering, now_ms);
                }
            }
        }
    }

    /// Starts the job `p` is due for, if any.
    fn consider(self: &Arc<Self>, p: &Arc<Partition>, tiering: &Arc<Tiering>, now_ms: i64) {
        let gate = p.upload_gate();
        let interval_ms = i64::try_from(tiering.upload_interval.as_millis()).unwrap_or(i64::MAX);
        let gc_ms = i64::try_from(tiering.gc_interval.as_millis()).unwrap_or(i64::MAX);
        let job = {
            let mut s = p.remote.schedule();
            if s.busy {
                return;
            }
            let heal_due = p.log.has_damage() && now_ms >= s.next_heal_ms;
            let job = match gate {
                UploadGate::Off => None,
                UploadGate::Follow | UploadGate::Lead { .. } if heal_due => {
                    s.next_heal_ms =
                        now_ms.saturating_add(interval_ms.saturating_mul(HEAL_RETRY_TICKS));
                    Some(Job::Heal)
                }
                UploadGate::Follow => {
                    if (p.log.sealed_untiered_bytes() > 0 || s.refresh_asked)
                        && now_ms >= s.next_refresh_ms
                    {
                        s.refresh_asked = false;
                        s.next_refresh_ms = now_ms.saturating_add(
                            interval_ms.saturating_mul(FOLLOWER_REFRESH_TICKS.into()),
                        );
                        Some(Job::Refresh)
                    } else {
                        None
                    }
                }
                lead @ UploadGate::Lead { .. } => {
                    if s.next_sweep_ms == 0 {
                        // The first sweep after a random half to one and a half intervals.
                        let jitter = (uuid::Uuid::new_v4().as_u128() % 1000) as i64;
                        s.next_sweep_ms = now_ms.saturating_add(gc_ms / 2 + gc_ms / 1000 * jitter);
                    }
                    if now_ms >= s.next_sweep_ms {
                        s.next_sweep_ms = now_ms.saturating_add(gc_ms);
                        Some(Job::Sweep)
                    } else if p.log.sealed_untiered_bytes() > 0
                        && now_ms >= s.not_before_ms
                        && !upload_blocked(p)
                    {
                        Some(Job::Upload(lead))
                    } else {
                        None
                    }
                }
            };
            if job.is_some() {
                s.busy = true;
            }
            job
        };
        let Some(job) = job else {
            return;
        };
        let (p, tiering, permits) = (p.clone(), tiering.clone(), self.permits.clone());
        self.tracker.spawn(async move {
            let permit = permits.acquire_owned().await;
            if permit.is_ok() {
                run_job(&p, &tiering, job).await;
            }
            p.remote.schedule().busy = false;
        });
    }
}

impl super::RemoteLog {
    /// Waits until no scheduled job of this partition runs, then keeps the scheduler off it
    /// until [`release`](Self::release) (the shutdown's own last upload).
    pub(super) async fn claim(&self) {
        loop {
            {
                let mut s = self.schedule();
                if !s.busy {
                    s.busy = true;
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    pub(super) fn release(&self) {
        self.schedule().busy = false;
    }
}

async fn run_job(p: &Partition, tiering: &Tiering, job: Job) {
    let remote = &p.remote;
    match job {
        Job::Upload(lead) => {
            let result = remote.upload_pending(&p.log, tiering, lead).await;
            let mut s = remote.schedule();
            match result {
                Ok(()) => s.backoff = Duration::ZERO,
                Err(e) => {
                    tiering
                        .metrics
                        .upload_errors
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if matches!(&e, crate::error::Error::Log(l) if l.kind() == tierlog_tiering::ErrorKind::Data)
                    {
                        drop(s);
                        quarantine_untiered(p, tiering).await;
                        s = remote.schedule();
                    }
                    s.backoff = (s.backoff * 2).clamp(BACKOFF_MIN, BACKOFF_MAX);
                    let retry_in = s.backoff;
                    s.not_before_ms = tiering
                        .clock
                        .now_ms()
                        .saturating_add(i64::try_from(retry_in.as_millis()).unwrap_or(0));
                    drop(s);
                    warn!(partition = %p.tp, error = %e, ?retry_in, "tiering upload failed; will retry");
                }
            }
        }
        Job::Refresh => {
            if let Err(e) = remote.refresh(&p.log, tiering).await {
                debug!(partition = %p.tp, error = %e, "manifest refresh failed");
            }
        }
        Job::Sweep => remote.sweep(tiering).await,
        Job::Heal => {
            heal_from_tiered(p, tiering).await;
        }
    }
}

/// Whether the next segment to upload holds a damaged range: uploads wait until it is healed
/// (the tiered range must not have a hole, and damaged bytes are never uploaded).
fn upload_blocked(p: &Partition) -> bool {
    if !p.log.has_damage() {
        return false;
    }
    let tiered_end = p.log.tiered_end();
    p.log
        .damaged_ranges()
        .iter()
        .any(|d| d.last_offset >= tiered_end)
}

/// An upload found a bad batch: scrubs the partition's sealed segments so that the damage is
/// quarantined (and healed from a copy where one exists) rather than uploaded or retried.
async fn quarantine_untiered(p: &Partition, tiering: &Tiering) {
    let found = scrub_partition(p, tiering, None, &p.cancel).await;
    if upload_blocked(p) {
        warn!(partition = %p.tp, found, "damaged ranges not yet tiered; uploads of this partition wait until they are healed or the loss is accepted");
    }
}
