//! Replication of the hot tier, Kafka's design: followers pull from the leader with Fetch
//! requests carrying their replica id; the leader tracks each follower's log end, advances the
//! high watermark to the lowest log end in the ISR, and shrinks or expands the ISR, writing
//! every ISR change to the metadata store by compare-and-swap before acting on it.
//!
//! - `state` — one partition's role, epoch, ISR and followers' progress (pure bookkeeping).
//! - `fetcher` — the followers' side: one fetch loop per leader node, truncation by
//!   OffsetForLeaderEpoch.
//! - `client` — the Kafka-protocol connection a follower uses.
//!
//! The leader's side of a replica fetch is in `api/fetch.rs`; this module commits the ISR
//! changes it decides and runs the periodic ISR shrink.

pub(crate) mod client;
pub(crate) mod fetcher;
pub(crate) mod state;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::http::Metrics;
use crate::node::Broker;
use crate::partition::{Partition, PendingIsrChange};
use state::IsrChange;

/// Writes an ISR change the leader decided, if the partition state is still the one it was
/// decided on (same leader epoch; any other change re-reads and re-applies it).
pub(crate) async fn commit_isr_change(b: &Broker, p: &Arc<Partition>, pending: PendingIsrChange) {
    let result = try_commit(b, &pending).await;
    match result {
        Ok(Some(state)) => {
            info!(partition = %p.tp, change = ?pending.change, isr = ?state.value.isr, "ISR changed");
            match &pending.change {
                IsrChange::Expand(_) => Metrics::add(&b.metrics.isr_expands, 1),
                IsrChange::Shrink(_) => Metrics::add(&b.metrics.isr_shrinks, 1),
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

/// Applies the change to the current stored state and writes it. Ok(None) if this node no
/// longer leads at that epoch, or the change no longer applies.
async fn try_commit(
    b: &Broker,
    pending: &PendingIsrChange,
) -> anyhow::Result<Option<tierlog_metadata::Versioned<tierlog_metadata::PartitionState>>> {
    let (topic_id, partition) = (
        pending.stored.value.topic_id,
        pending.stored.value.partition,
    );
    for _ in 0..8 {
        let Some(current) = b.cluster.states.get(topic_id, partition).await? else {
            return Ok(None);
        };
        let s = &current.value;
        if s.leader != b.node_id || s.leader_epoch != pending.epoch {
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
        if let Some(revision) = b.cluster.states.cas(&current, &next, &[]).await? {
            return Ok(Some(tierlog_metadata::Versioned {
                value: next,
                mod_revision: revision,
            }));
        }
    }
    Ok(None)
}

/// Periodically removes in-sync followers that stopped keeping up.
pub(crate) async fn run_isr_shrink(b: Arc<Broker>, cancel: CancellationToken) {
    let max_lag = b.config.replica_lag_time_max;
    let mut tick = tokio::time::interval((max_lag / 2).max(Duration::from_millis(50)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            () = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        let now = Instant::now();
        for t in b.partitions.all() {
            for p in &t.partitions {
                if let Some(pending) = p.lagging_followers(now, max_lag) {
                    commit_isr_change(&b, p, pending).await;
                }
            }
        }
    }
}
