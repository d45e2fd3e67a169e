//! Leases and watches for the local backends ([`MemoryStore`](crate::MemoryStore) and
//! [`EmbeddedStore`](crate::EmbeddedStore)), written once.
//!
//! # Leases
//!
//! A [`LeaseTable`] holds each live lease's TTL and deadline, in memory only (so leases end
//! with the process, as the trait docs promise). Granting a lease spawns one expiry task
//! ([`spawn_expiry`]) that sleeps until the deadline, re-reads it (a keep-alive moves it), and
//! once it has really passed removes the lease from the table and asks the backend
//! ([`LeaseHost::expire`]) to delete the lease's keys in one transaction. The task holds only a
//! weak reference to the backend and ends when the lease does, or when the backend is dropped
//! (its `closed` sender goes away).
//!
//! A lease whose deadline has passed counts as dead at once, even before its task has run:
//! puts under it fail and keep-alives are refused, so expiry is never later than the TTL from
//! a caller's point of view.
//!
//! # Watches
//!
//! [`Watchers`] keeps the most recent [`HISTORY_EVENTS`] events in memory, appended by the
//! backend after each commit (under the backend's write serialization, so in revision order),
//! and a `tokio::sync::watch` channel carrying the latest revision to wake streams. Each
//! [`WatchStream`] remembers the next revision it needs, reads matching events from the
//! history, and sleeps on the channel; it holds only a weak reference, so dropping the store
//! ends every stream. History older than what is kept gives an
//! [`ErrorKind::Compacted`](crate::ErrorKind::Compacted) error, as a compacted etcd does.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::error::{Error, Result};
use crate::store::{LeaseId, WatchEvent, WatchStream};

/// How many events the local stores keep for watches that start in the past or fall behind.
pub(crate) const HISTORY_EVENTS: usize = 10_000;

/// Locks `mutex`, ignoring poison: every critical section here leaves its data consistent
/// between statements (plain map and deque operations), so a panic cannot tear it.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// `ttl` rounded up to whole seconds, as etcd grants them. Zero is invalid.
pub(crate) fn ttl_seconds(ttl: Duration) -> Result<i64> {
    if ttl.is_zero() {
        return Err(Error::invalid("lease ttl must be positive"));
    }
    let secs = ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0);
    i64::try_from(secs).map_err(|_| Error::invalid(format!("lease ttl {ttl:?} is too long")))
}

#[derive(Debug)]
struct Lease {
    ttl: Duration,
    deadline: Instant,
}

/// The live leases of one local store.
#[derive(Debug, Default)]
pub(crate) struct LeaseTable {
    leases: HashMap<LeaseId, Lease>,
    /// Ids are never reused within a process, so a stale holder cannot keep a new lease alive.
    last_id: i64,
}

impl LeaseTable {
    /// A new lease of `ttl` (already rounded), lapsing at `now + ttl`.
    pub(crate) fn grant(&mut self, ttl: Duration, now: Instant) -> LeaseId {
        self.last_id += 1;
        let id = LeaseId(self.last_id);
        self.leases.insert(
            id,
            Lease {
                ttl,
                deadline: now + ttl,
            },
        );
        id
    }

    /// Whether `id` exists and its deadline has not passed.
    pub(crate) fn is_alive(&self, id: LeaseId, now: Instant) -> bool {
        self.leases.get(&id).is_some_and(|l| l.deadline > now)
    }

    /// Restarts a live lease's TTL; `None` if it is gone or lapsed.
    pub(crate) fn keep_alive(&mut self, id: LeaseId, now: Instant) -> Option<Duration> {
        let lease = self.leases.get_mut(&id).filter(|l| l.deadline > now)?;
        lease.deadline = now + lease.ttl;
        Some(lease.ttl)
    }

    fn deadline(&self, id: LeaseId) -> Option<Instant> {
        self.leases.get(&id).map(|l| l.deadline)
    }

    /// Forgets `id` (revocation).
    pub(crate) fn remove(&mut self, id: LeaseId) {
        self.leases.remove(&id);
    }

    /// Forgets `id` if its deadline has passed; returns whether it did.
    fn take_if_expired(&mut self, id: LeaseId, now: Instant) -> bool {
        if self.leases.get(&id).is_some_and(|l| l.deadline <= now) {
            self.leases.remove(&id);
            true
        } else {
            false
        }
    }
}

/// What a local backend offers its lease expiry tasks.
pub(crate) trait LeaseHost: Send + Sync + 'static {
    /// The backend's lease table.
    fn lease_table(&self) -> MutexGuard<'_, LeaseTable>;

    /// Resolves (with an error) when the backend is dropped.
    fn closed(&self) -> watch::Receiver<()>;

    /// Deletes every key attached to `lease`, in one transaction, and tells the watchers.
    fn expire(self: Arc<Self>, lease: LeaseId) -> impl Future<Output = Result<()>> + Send;
}

/// Spawns the task that expires `lease` once its deadline passes without a keep-alive.
///
/// The task ends when the lease has been expired or revoked, or when the host is dropped;
/// it keeps only a weak reference to the host in between.
pub(crate) fn spawn_expiry<H: LeaseHost>(host: &Arc<H>, lease: LeaseId) {
    let weak = Arc::downgrade(host);
    let mut closed = host.closed();
    tokio::spawn(async move {
        loop {
            let deadline = {
                let Some(host) = weak.upgrade() else { return };
                let Some(deadline) = host.lease_table().deadline(lease) else {
                    return; // revoked
                };
                deadline
            };
            tokio::select! {
                biased;
                _ = closed.changed() => return,
                () = tokio::time::sleep_until(deadline) => {}
            }
            let Some(host) = weak.upgrade() else { return };
            if !host.lease_table().take_if_expired(lease, Instant::now()) {
                continue; // kept alive meanwhile (or revoked: the next lookup ends the task)
            }
            drop(host);
            expire_with_retries(&weak, &mut closed, lease).await;
            return;
        }
    });
}

/// Runs the expiry transaction until it succeeds (the embedded store's disk may fail for a
/// while) or the host is gone. Until it succeeds the lease is already dead to callers; only
/// its keys linger.
async fn expire_with_retries<H: LeaseHost>(
    weak: &Weak<H>,
    closed: &mut watch::Receiver<()>,
    lease: LeaseId,
) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let Some(host) = weak.upgrade() else { return };
        match host.expire(lease).await {
            Ok(()) => {
                tracing::debug!(%lease, "lease expired");
                return;
            }
            Err(error) => {
                tracing::warn!(%lease, %error, "deleting the keys of an expired lease failed; retrying");
            }
        }
        tokio::select! {
            biased;
            _ = closed.changed() => return,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

/// Recent changes of one store, and the wake-up channel for its watch streams.
#[derive(Debug)]
pub(crate) struct Watchers {
    history: Mutex<History>,
    // Carries the latest published revision. Streams wait on `changed()`, which also fails
    // once this sender (and so the store) is dropped: that ends them.
    latest: watch::Sender<u64>,
}

#[derive(Debug)]
struct History {
    /// Events in revision order.
    events: VecDeque<WatchEvent>,
    /// Events at or below this revision may have been dropped.
    compacted: u64,
    /// The store revision the history is complete up to.
    revision: u64,
}

impl Watchers {
    /// Watchers for a store now at `revision`; nothing before it can be replayed.
    pub(crate) fn new(revision: u64) -> Self {
        Self {
            history: Mutex::new(History {
                events: VecDeque::new(),
                compacted: revision,
                revision,
            }),
            latest: watch::Sender::new(revision),
        }
    }

    /// Records a committed change. Callers publish in revision order (they hold the store's
    /// write serialization while they do).
    pub(crate) fn publish(&self, revision: u64, events: Vec<WatchEvent>) {
        let mut history = lock(&self.history);
        history.events.extend(events);
        history.revision = revision;
        while history.events.len() > HISTORY_EVENTS {
            if let Some(dropped) = history.events.pop_front() {
                history.compacted = dropped.revision();
            }
        }
        // Drop the rest of a partly dropped revision too: a watcher gets all of one or none.
        while history
            .events
            .front()
            .is_some_and(|e| e.revision() <= history.compacted)
        {
            history.events.pop_front();
        }
        drop(history);
        self.latest.send_replace(revision);
    }

    /// A stream of changes under `prefix` from `from_revision` (0: after the current one).
    pub(crate) fn watch(self: &Arc<Self>, prefix: &str, from_revision: u64) -> Result<WatchStream> {
        let next = {
            let history = lock(&self.history);
            let next = if from_revision == 0 {
                history.revision + 1
            } else {
                from_revision
            };
            history.check(next)?;
            next
        };
        let state = StreamState {
            watchers: Arc::downgrade(self),
            latest: self.latest.subscribe(),
            prefix: prefix.to_owned(),
            next,
            buffer: VecDeque::new(),
            done: false,
        };
        Ok(WatchStream::new(futures::stream::unfold(state, next_event)))
    }
}

impl History {
    fn check(&self, next: u64) -> Result<()> {
        if next <= self.compacted {
            return Err(Error::Compacted {
                requested: next,
                available: self.compacted + 1,
            });
        }
        Ok(())
    }

    /// Events under `prefix` from revision `next` on.
    fn read(&self, prefix: &str, next: u64) -> Result<Vec<WatchEvent>> {
        self.check(next)?;
        let start = self.events.partition_point(|e| e.revision() < next);
        Ok(self
            .events
            .range(start..)
            .filter(|e| e.key().starts_with(prefix))
            .cloned()
            .collect())
    }
}

struct StreamState {
    watchers: Weak<Watchers>,
    latest: watch::Receiver<u64>,
    prefix: String,
    /// The next revision this stream has not examined yet.
    next: u64,
    /// Events read from the history, not yet yielded.
    buffer: VecDeque<WatchEvent>,
    done: bool,
}

/// One step of a local watch stream. All state lives in `StreamState`, which `unfold` keeps
/// across polls, so dropping a pending `next()` loses nothing.
async fn next_event(mut state: StreamState) -> Option<(Result<WatchEvent>, StreamState)> {
    loop {
        if state.done {
            return None;
        }
        if let Some(event) = state.buffer.pop_front() {
            return Some((Ok(event), state));
        }
        {
            let watchers = state.watchers.upgrade()?;
            // Mark the current revision seen before reading, so a publish that lands after
            // the read wakes the wait below.
            state.latest.borrow_and_update();
            let history = lock(&watchers.history);
            match history.read(&state.prefix, state.next) {
                Ok(events) => {
                    state.next = state.next.max(history.revision + 1);
                    state.buffer.extend(events);
                }
                Err(error) => {
                    state.done = true;
                    return Some((Err(error), state));
                }
            }
        }
        if state.buffer.is_empty() && state.latest.changed().await.is_err() {
            return None; // the store is gone
        }
    }
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;

    use super::*;
    use crate::ErrorKind;
    use crate::store::KeyValue;

    fn put(key: &str, revision: u64) -> WatchEvent {
        WatchEvent::Put(KeyValue {
            key: key.into(),
            value: bytes::Bytes::new(),
            create_revision: revision,
            mod_revision: revision,
        })
    }

    #[test]
    fn ttls_round_up_to_seconds() {
        assert_eq!(ttl_seconds(Duration::from_millis(1)).expect("ttl"), 1);
        assert_eq!(ttl_seconds(Duration::from_millis(2001)).expect("ttl"), 3);
        assert_eq!(ttl_seconds(Duration::from_secs(2)).expect("ttl"), 2);
        assert_eq!(
            ttl_seconds(Duration::ZERO).expect_err("zero").kind(),
            ErrorKind::Invalid
        );
    }

    #[tokio::test]
    async fn history_is_bounded_and_reports_compaction() {
        let watchers = Arc::new(Watchers::new(0));
        for rev in 1..=(HISTORY_EVENTS as u64 + 5) {
            watchers.publish(rev, vec![put("/k", rev)]);
        }
        let err = watchers.watch("/", 1).expect_err("compacted");
        assert_eq!(err.kind(), ErrorKind::Compacted, "{err}");
        let mut stream = watchers.watch("/", 6).expect("kept");
        let first = stream.next().await.expect("event").expect("ok");
        assert_eq!(first.revision(), 6);
    }

    #[tokio::test]
    async fn a_lagging_stream_ends_with_compacted() {
        let watchers = Arc::new(Watchers::new(0));
        watchers.publish(1, vec![put("/k", 1)]);
        let mut stream = watchers.watch("/", 1).expect("watch");
        for rev in 2..=(HISTORY_EVENTS as u64 + 5) {
            watchers.publish(rev, vec![put("/k", rev)]);
        }
        // The stream had not read anything yet: revision 1 is gone.
        let err = stream.next().await.expect("item").expect_err("compacted");
        assert_eq!(err.kind(), ErrorKind::Compacted);
        assert!(stream.next().await.is_none());
    }

    #[tokio::test]
    async fn streams_end_when_the_watchers_are_dropped() {
        let watchers = Arc::new(Watchers::new(0));
        let mut stream = watchers.watch("", 0).expect("watch");
        let waiter = tokio::spawn(async move { stream.next().await.is_none() });
        tokio::task::yield_now().await;
        drop(watchers);
        assert!(waiter.await.expect("join"));
    }
}
