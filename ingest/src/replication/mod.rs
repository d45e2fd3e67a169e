//! Replication of the hot tier, Kafka's design: followers pull from the leader with Fetch
//! requests carrying their replica id; the leader tracks each follower's log end, advances the
//! high watermark to the lowest log end in the ISR, and shrinks or expands the ISR, writing
//! every ISR change to the metadata store by compare-and-swap before acting on it.
//!
//! - `fetcher` — the followers' side: one fetch loop per leader node, truncation by
//!   OffsetForLeaderEpoch.
//! - `client` — the Kafka-protocol connection a follower uses.
//! - `throttle` — the leader's and the follower's replication throttles for reassignments.
//! - `heal` — a follower repairs the damaged ranges of its log from its leader.
//!
//! The leader's side of a replica fetch is in `api/fetch.rs`; this module commits the ISR
//! changes it decides and runs the periodic ISR shrink.

pub(crate) mod client;
pub(crate) mod fetcher;
mod heal;
pub(crate) mod throttle;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{info, warn};

use crate::cluster::Cluster;
use crate::metrics::Metrics;
use crate::partition::{IsrChange, Partition, Partitions, PendingIsrChange};

/// Writes an ISR change the leader decided, if the partition state is still the one it was
/// decided on (same leader epoch; any other change re-reads and re-applies it).
pub(crate) async fn commit_isr_change(
    cluster: &Cluster,
    metrics: &Metrics,
    p: &Arc<Partition>,
    pending: PendingIsrChange,
) {
    let result = try_commit(cluster, &pending).await;
    match result {
        Ok(Some(state)) => {
            info!(partition = %p.tp, change = ?pending.change, isr = ?state.value.isr, "ISR changed");
            match &pending.change {
                IsrChange::Expand(_) => Metrics::add(&metrics.isr_expands, 1),
                IsrChange::Shrink(_) => Metrics::add(&metrics.isr_shrinks, 1),
            }
            p.isr_change_done(Some(&state));
        }
        Ok(None) => p.isr_change_done(None),
        Err(e) => {
            warn!(partition = %p.tp, error = %e, "writing an ISR change failed; will retry");
            p.isr_change_done(None);
        }
    }
}

/// The ISR changes this node's leaders decided, written many to a transaction: a node that
/// rejoins after a restart expands thousands of ISRs in a few dozen writes. A change whose
/// state moved since it was decided is retried alone ([`commit_isr_change`] re-reads it).
#[derive(Debug, Default)]
pub(crate) struct IsrQueue {
    pending: std::sync::Mutex<Vec<(Arc<Partition>, PendingIsrChange)>>,
    wake: tokio::sync::Notify,
}

impl IsrQueue {
    /// Queues a change for the next batch.
    pub(crate) fn submit(&self, p: Arc<Partition>, pending: PendingIsrChange) {
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push((p, pending));
        self.wake.notify_one();
    }

    /// Writes the queued changes, a batch at a time, until cancelled.
    pub(crate) async fn run(
        self: Arc<Self>,
        cluster: Arc<Cluster>,
        metrics: Arc<Metrics>,
        cancel: tokio_util::sync::CancellationToken,
    ) {
        loop {
            tokio::select! {
                biased;
                () = cancel.cancelled() => return,
                () = self.wake.notified() => {}
            }
            let batch = std::mem::take(
                &mut *self
                    .pending
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner),
            );
            if !batch.is_empty() {
                commit_batch(&cluster, &metrics, batch).await;
            }
        }
    }
}

/// The state `s` with `change` applied, `None` if it changes nothing.
fn apply_change(
    s: &tierlog_metadata::PartitionState,
    change: &IsrChange,
) -> Option<tierlog_metadata::PartitionState> {
    let mut next = s.clone();
    match change {
        IsrChange::Expand(r) => {
            if next.isr.contains(r) {
                return None;
            }
            next.isr.push(*r);
        }
        IsrChange::Shrink(out) => {
            next.isr.retain(|r| !out.contains(r));
            if next.isr == s.isr {
                return None;
            }
        }
    }
    next.partition_epoch = s.partition_epoch + 1;
    Some(next)
}

async fn commit_batch(
    cluster: &Cluster,
    metrics: &Metrics,
    batch: Vec<(Arc<Partition>, PendingIsrChange)>,
) {
    let mut changes = Vec::with_capacity(batch.len());
    let mut owners = Vec::with_capacity(batch.len());
    for (p, pending) in batch {
        let s = &pending.stored.value;
        if s.leader != cluster.me || s.leader_epoch != pending.epoch {
            p.isr_change_done(None);
            continue;
        }
        match apply_change(s, &pending.change) {
            Some(next) => {
                changes.push((pending.stored.clone(), next));
                owners.push((p, pending));
            }
            None => p.isr_change_done(Some(&pending.stored)),
        }
    }
    if changes.is_empty() {
        return;
    }
    let written = match cluster.states.cas_many(&changes, &[]).await {
        Ok(w) => w,
        Err(e) => {
            warn!(changes = changes.len(), error = %e, "writing ISR changes failed; will retry");
            for (p, _) in owners {
                p.isr_change_done(None);
            }
            return;
        }
    };
    let (mut expands, mut shrinks) = (0u64, 0u64);
    for ((_, pending), revision) in owners.iter().zip(&written) {
        match (&pending.change, revision) {
            (IsrChange::Expand(_), Some(_)) => expands += 1,
            (IsrChange::Shrink(_), Some(_)) => shrinks += 1,
            _ => {}
        }
    }
    Metrics::add(&metrics.isr_expands, expands);
    Metrics::add(&metrics.isr_shrinks, shrinks);
    for (((p, pending), (_, next)), revision) in owners.into_iter().zip(changes).zip(written) {
        let Some(mod_revision) = revision else {
            // The state moved since: re-read and apply the change to what is there now.
            commit_isr_change(cluster, metrics, &p, pending).await;
            continue;
        };
        tracing::debug!(partition = %p.tp, change = ?pending.change, isr = ?next.isr, "ISR changed");
        p.isr_change_done(Some(&tierlog_metadata::Versioned {
            value: next,
            mod_revision,
        }));
    }
    if expands + shrinks > 0 {
        info!(expands, shrinks, "ISR changes written");
    }
}

/// Applies the change to the current stored state and writes it. Ok(None) if this node no
/// longer leads at that epoch, or the change no longer applies.
async fn try_commit(
    cluster: &Cluster,
    pending: &PendingIsrChange,
) -> anyhow::Result<Option<tierlog_metadata::Versioned<tierlog_metadata::PartitionState>>> {
    let (topic_id, partition) = (
        pending.stored.value.topic_id,
        pending.stored.value.partition,
    );
    for _ in 0..8 {
        let Some(current) = cluster.states.get(topic_id, partition).await? else {
            return Ok(None);
        };
        let s = &current.value;
        if s.leader != cluster.me || s.leader_epoch != pending.epoch {
            return Ok(None);
        }
        let mut next = s.clone();
        match &pending.change {
            IsrChange::Expand(r) => {
                if next.isr.contains(r) {
                    return Ok(Some(current));
                }
                next.isr.push(*r);
            }
            IsrChange::Shrink(out) => {
                next.isr.retain(|r| !out.contains(r));
                if next.isr == s.isr {
                    return Ok(Some(current));
                }
            }
        }
        next.partition_epoch = s.partition_epoch + 1;
        if let Some(revision) = cluster.states.cas(&current, &next, &[]).await? {
            return Ok(Some(tierlog_metadata::Versioned {
                value: next,
                mod_revision: revision,
            }));
        }
    }
    Ok(None)
}

/// One ISR-shrink pass: removes in-sync followers that have not caught up within `max_lag`
/// of `now` from the ISR of every partition this node leads. The node runs it every
/// `max_lag / 2`.
pub(crate) fn shrink_isrs(
    partitions: &Partitions,
    queue: &IsrQueue,
    now: Instant,
    max_lag: Duration,
) {
    for t in partitions.all() {
        for p in &t.partitions {
            if let Some(pending) = p.lagging_followers(now, max_lag) {
                queue.submit(p.clone(), pending);
            }
        }
    }
}
