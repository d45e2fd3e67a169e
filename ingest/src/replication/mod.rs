//! Replication of the hot tier, Kafka's design: followers pull from the leader with Fetch
//! requests carrying their replica id; the leader tracks each follower's log end, advances the
//! high watermark to the lowest log end in the ISR, and shrinks or expands the ISR, writing
//! every ISR change to the metadata store by compare-and-swap before acting on it.
//!
//! - `fetcher` — the followers' side: one fetch loop per leader node, truncation by
//!   OffsetForLeaderEpoch.
//! - `client` — the Kafka-protocol connection a follower uses.
//! - `throttle` — the leader's and the follower's replication throttles for reassignments.
//! - `heal` — a follower repairs the damaged ranges of its log from its leader; a leader with
//!   a damaged range it cannot repair hands leadership to a clean in-sync replica first
//!   ([`damage_pass`]).
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
use crate::partition::{DamageAction, IsrChange, Partition, Partitions, PendingIsrChange};

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
                IsrChange::Handoff(_) => {}
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
        IsrChange::Handoff(to) => {
            if *to == s.leader || !s.isr.contains(to) || s.is_damaged(*to) {
                return None;
            }
            if !next.is_damaged(s.leader) {
                next.damaged_replicas.push(s.leader);
            }
            next.leader = *to;
            next.leader_epoch = s.leader_epoch + 1;
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
        if let IsrChange::Handoff(to) = pending.change {
            warn!(partition = %p.tp, new_leader = to, leader_epoch = next.leader_epoch, "leader holds a damaged range no copy here repairs; handed leadership to a clean in-sync replica, repairs from it as a follower");
        } else {
            tracing::debug!(partition = %p.tp, change = ?pending.change, isr = ?next.isr, "ISR changed");
        }
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
        let Some(next) = apply_change(s, &pending.change) else {
            return Ok(Some(current));
        };
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

/// One pass over the partitions hosted here keeping each partition state's
/// `damaged_replicas` true for this node, and moving leadership off a damaged range: a
/// replica whose log holds a quarantined range that object storage does not cover marks
/// itself (elections then prefer clean replicas); a leader with one hands leadership to a
/// clean in-sync replica and repairs the range from it as a follower (`heal`); a replica
/// that repaired everything clears its mark. The node runs it with the ISR shrink.
pub(crate) async fn damage_pass(partitions: &Partitions, cluster: &Cluster, queue: &IsrQueue) {
    let view = cluster.view();
    let live = |n| view.nodes.contains_key(&n);
    let mut marks = Vec::new();
    for t in partitions.all() {
        for p in &t.partitions {
            let untiered = crate::partition::untiered_damage(p) > 0;
            match p.damage_action(untiered, live) {
                Some(DamageAction::Handoff(pending)) => queue.submit(p.clone(), pending),
                Some(DamageAction::Mark(stored)) => marks.push((p.clone(), stored, true)),
                Some(DamageAction::Clear(stored)) => marks.push((p.clone(), stored, false)),
                None => {}
            }
        }
    }
    for (p, stored, damaged) in marks {
        match mark_damaged(cluster, &stored, damaged).await {
            Ok(true) if damaged => {
                warn!(partition = %p.tp, "this replica holds a damaged range no copy here repairs; marked damaged (elections prefer clean replicas)");
            }
            Ok(true) => {
                info!(partition = %p.tp, "this replica repaired its damaged ranges; damaged mark cleared")
            }
            Ok(false) => {}
            Err(e) => {
                warn!(partition = %p.tp, error = %e, "could not update the damaged mark; will retry")
            }
        }
    }
}

/// Adds this node to (`damaged`) or removes it from the `damaged_replicas` of the partition
/// `stored` is a state of, re-reading on a conflicting write. Whether it wrote.
async fn mark_damaged(
    cluster: &Cluster,
    stored: &tierlog_metadata::Versioned<tierlog_metadata::PartitionState>,
    damaged: bool,
) -> anyhow::Result<bool> {
    let me = cluster.me;
    let mut current = stored.clone();
    for _ in 0..8 {
        let s = &current.value;
        if s.is_damaged(me) == damaged || !s.replicas.contains(&me) {
            return Ok(false);
        }
        let mut next = s.clone();
        if damaged {
            next.damaged_replicas.push(me);
        } else {
            next.damaged_replicas.retain(|r| *r != me);
        }
        next.partition_epoch = s.partition_epoch + 1;
        if cluster.states.cas(&current, &next, &[]).await?.is_some() {
            return Ok(true);
        }
        match cluster.states.get(s.topic_id, s.partition).await? {
            Some(c) => current = c,
            None => return Ok(false),
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tierlog_metadata::PartitionState;

    #[test]
    fn a_handoff_moves_leadership_to_a_clean_in_sync_replica_and_marks_the_leader() {
        let s = PartitionState {
            topic_id: uuid::Uuid::nil(),
            partition: 0,
            replicas: vec![1, 2, 3],
            leader: 1,
            leader_epoch: 4,
            isr: vec![1, 2, 3],
            partition_epoch: 9,
            adding_replicas: Vec::new(),
            removing_replicas: Vec::new(),
            damaged_replicas: Vec::new(),
        };
        let n = apply_change(&s, &IsrChange::Handoff(3)).expect("change");
        assert_eq!(
            (n.leader, n.leader_epoch, n.partition_epoch),
            (3, 5, 10),
            "a new leader epoch fences the old leader"
        );
        assert_eq!(n.damaged_replicas, vec![1]);
        assert_eq!(n.isr, vec![1, 2, 3], "the old leader stays in sync");
        // Not to a replica out of sync, damaged, or itself.
        let out = PartitionState {
            isr: vec![1, 2],
            ..s.clone()
        };
        assert_eq!(apply_change(&out, &IsrChange::Handoff(3)), None);
        let bad = PartitionState {
            damaged_replicas: vec![3],
            ..s.clone()
        };
        assert_eq!(apply_change(&bad, &IsrChange::Handoff(3)), None);
        assert_eq!(apply_change(&s, &IsrChange::Handoff(1)), None);
    }
}
