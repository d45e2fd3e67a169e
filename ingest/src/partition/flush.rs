//! The node's one flusher: partitions are fsynced by demand, not by a task per partition.
//!
//! An append marks its partition dirty; the first append since the last flush puts it on the
//! flusher's list. Every `flush_interval` the flusher takes the list and flushes each
//! partition on it (`flush_mode = interval`). A producer under `flush_mode = always` asks for
//! a flush of its partition at once ([`Partition::request_flush`]); requests arriving while
//! that partition's flush runs are served by one more flush right after it (group commit).
//! An idle partition costs nothing: no task, no timer, no descriptor.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::Partition;

/// fsyncs running at once (each holds a blocking thread while it runs).
const CONCURRENT_FLUSHES: usize = 16;

/// See the module docs.
#[derive(Debug)]
pub(crate) struct Flusher {
    /// Partitions appended to since their last flush.
    dirty: Mutex<Vec<Weak<Partition>>>,
    tracker: TaskTracker,
    permits: Arc<Semaphore>,
}

impl Flusher {
    pub(crate) fn new(tracker: TaskTracker) -> Arc<Flusher> {
        Arc::new(Flusher {
            dirty: Mutex::new(Vec::new()),
            tracker,
            permits: Arc::new(Semaphore::new(CONCURRENT_FLUSHES)),
        })
    }

    /// Puts a partition that just became dirty on the list of the next periodic pass.
    pub(super) fn enqueue(&self, p: Weak<Partition>) {
        self.dirty
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(p);
    }

    /// The periodic pass, until cancelled.
    pub(crate) async fn run(self: Arc<Self>, interval: Duration, cancel: CancellationToken) {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                () = cancel.cancelled() => return,
                _ = tick.tick() => {}
            }
            let due =
                std::mem::take(&mut *self.dirty.lock().unwrap_or_else(PoisonError::into_inner));
            for p in due.iter().filter_map(Weak::upgrade) {
                if p.dirty.load(Ordering::Acquire) {
                    p.request_flush();
                }
            }
        }
    }

    /// Runs `p`'s flushes until no request is left (see [`Partition::request_flush`]).
    pub(super) fn spawn_flushes(self: &Arc<Self>, p: Arc<Partition>) {
        let permits = self.permits.clone();
        self.tracker.spawn(async move {
            let Ok(_permit) = permits.acquire_owned().await else {
                p.flushing.store(false, Ordering::Release);
                return;
            };
            loop {
                while p.flush_again.swap(false, Ordering::AcqRel) {
                    p.flush_once().await;
                }
                p.flushing.store(false, Ordering::Release);
                // A request that came after the last swap but saw `flushing` still set is
                // ours to serve, unless another flush loop has started since.
                if !p.flush_again.load(Ordering::Acquire) || p.flushing.swap(true, Ordering::AcqRel)
                {
                    return;
                }
            }
        });
    }
}
