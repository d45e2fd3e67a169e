//! The partitions this node hosts: their logs, the notifications fetchers and producers wait
//! on, and the flush policy.
//!
//! Lifecycle: at start the node opens (and so recovers) the log of every partition of every
//! topic in the metadata store; CreateTopics/CreatePartitions open more; DeleteTopics closes
//! and removes them. The node's one flusher (`flush.rs`) fsyncs partitions appended to every
//! `flush_interval`, or at once when a producer under `flush_mode = always` waits for it
//! (concurrent producers then share one fsync — group commit).
//!
//! Each partition also has a remote side (`remote`): the tiered segments, its place in the
//! node's upload schedule (`upload.rs`), remote retention and reads below the hot tier. A
//! consumer cannot tell which tier served it. A partition at rest costs no task, no timer and
//! no file descriptor (segment files come from a bounded pool, `tierlog_tiering::FilePool`).
//!
//! Directory layout: `<data_dir>/logs/<topic>-<topic id>/<partition>/`. The topic id makes a
//! re-created topic never see the files of a deleted one, even after a crash mid-delete:
//! directories of topics the metadata store does not know are removed at start.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, error, info, warn};

use tierlog_metadata::{
    LeaderEpoch, NodeId, PartitionState, SharedClock, TopicMeta, TopicPartition, Versioned,
};
use tierlog_tiering::{AppendResult, PartitionLog};

mod flush;
mod heal;
pub(crate) use heal::{RangeHeal, log_heal, untiered_damage};
mod hosted;
mod remote;
mod replicas;
mod upload;

use flush::Flusher;
pub(crate) use hosted::{Hosted, Want};
use remote::RemoteLog;
pub(crate) use remote::{Tiering, TieringMetrics, UploadGate};
use upload::Uploader;

use crate::config::FlushMode;
use crate::error::{Error, Result};
use crate::topic_config;
use replicas::ReplicaState;
pub(crate) use replicas::{IsrChange, ReadReplica, Role};

/// Checks a request's `current_leader_epoch` against ours (-1: the client does not know it,
/// no check). Older is FENCED_LEADER_EPOCH, newer UNKNOWN_LEADER_EPOCH (we have not caught up).
pub(crate) fn check_epoch(requested: i32, current: LeaderEpoch) -> Result<()> {
    match requested {
        -1 => Ok(()),
        r if r == current => Ok(()),
        r if r > current => Err(Error::UnknownLeaderEpoch {
            requested: r,
            current,
        }),
        r => Err(Error::FencedLeaderEpoch {
            requested: r,
            current,
        }),
    }
}

/// Partitions of one topic opened at once (each open reads the manifest and recovers a log).
const CONCURRENT_OPENS: usize = 16;

/// An ISR change the leader decided on, to be written to the metadata store.
#[derive(Debug)]
pub(crate) struct PendingIsrChange {
    pub(crate) change: IsrChange,
    /// The partition state the decision was made on.
    pub(crate) stored: Versioned<PartitionState>,
    /// The leader epoch it was made under.
    pub(crate) epoch: LeaderEpoch,
}

/// A change of the stored `damaged_replicas` a replica decided on (see
/// [`Partition::damage_action`]).
#[derive(Debug)]
pub(crate) enum DamageAction {
    /// The leader hands leadership over and marks itself damaged.
    Handoff(PendingIsrChange),
    /// Add this node (its log holds an unrepaired damaged range), to the state given.
    Mark(Versioned<PartitionState>),
    /// Remove this node: it repaired what it had.
    Clear(Versioned<PartitionState>),
}

/// One partition hosted here.
#[derive(Debug)]
pub(crate) struct Partition {
    pub(crate) tp: TopicPartition,
    pub(crate) log: Arc<PartitionLog>,
    /// Log end offset after the latest append; fetchers long-polling on this partition wait
    /// for it to change.
    end: watch::Sender<i64>,
    /// Offset below which everything is fsynced; producers under `flush_mode = always` wait
    /// for it to pass their batch.
    durable: watch::Sender<i64>,
    /// Set by appends, cleared before each fsync: whether there is anything to flush. The
    /// append that sets it puts the partition on the flusher's list (`flush.rs`).
    dirty: AtomicBool,
    /// A flush loop for this partition is running.
    flushing: AtomicBool,
    /// A flush was requested since the running loop last started one.
    flush_again: AtomicBool,
    flusher: Arc<Flusher>,
    uploader: Arc<Uploader>,
    /// This partition, for handing to the flusher and the uploader.
    me: std::sync::Weak<Partition>,
    /// The tiered part of the partition.
    pub(crate) remote: Arc<RemoteLog>,
    tiering: Arc<Tiering>,
    /// Cancels this partition's tasks (flusher, uploader) when it is removed.
    cancel: CancellationToken,
    /// Replication: this node's role, the leader epoch, the ISR, the followers' progress.
    replica: Mutex<ReplicaState>,
    /// The high watermark: consumers see only offsets below it, and acks=all produces are
    /// answered once it passes their batch.
    hw: watch::Sender<i64>,
    /// Bumped on every leadership change here, so that waiters on the old role give up.
    role_gen: watch::Sender<u64>,
    /// Leader: the low watermark (lowest log start in the ISR), for DeleteRecords to wait on.
    low_watermark: watch::Sender<i64>,
    clock: SharedClock,
    /// Bytes appended here as a follower, fetched from leaders (what a new replica copied
    /// from its peers rather than from object storage).
    pub(crate) replicated_bytes: std::sync::atomic::AtomicU64,
    /// Whether the topic's `leader.replication.throttled.replicas` names this replica (see
    /// `replication::throttle`).
    pub(crate) leader_throttled: AtomicBool,
    /// Whether the topic's `follower.replication.throttled.replicas` names this replica.
    pub(crate) follower_throttled: AtomicBool,
}

/// A leader's append, for the produce response and the acks=all wait.
pub(crate) struct LeaderAppend {
    pub(crate) result: AppendResult,
    /// The leadership it was appended under (see [`Partition::wait_committed`]).
    pub(crate) role_gen: u64,
}

/// This node's role for a partition, as reported after applying a state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RoleView {
    pub(crate) role: Role,
    pub(crate) leader: NodeId,
    pub(crate) epoch: LeaderEpoch,
    pub(crate) changed: bool,
}

/// Records read for a fetch, with the partition's offsets at the time.
pub(crate) struct ReadOutcome {
    pub(crate) records: Bytes,
    pub(crate) log_start: i64,
}

impl Partition {
    fn replica(&self) -> MutexGuard<'_, ReplicaState> {
        self.replica
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Appends one partition's worth of record batches, as received, if this node leads the
    /// partition and its lease is valid. The role is held for the whole append, so a batch is
    /// never written under an epoch this node no longer leads.
    pub(crate) fn append_leader(
        &self,
        records: Bytes,
        now_ms: i64,
        acks: i16,
        min_insync: i32,
        lease_valid: bool,
    ) -> Result<LeaderAppend> {
        let st = self.replica();
        if !st.is_leader() || !lease_valid {
            return Err(Error::NotLeader(self.tp.to_string()));
        }
        if acks == -1 && (st.isr.len() as i32) < min_insync {
            return Err(Error::NotEnoughReplicas {
                isr: st.isr.len(),
                min: min_insync,
            });
        }
        let segments = self.log.segment_count();
        let r = self.log.append(records, st.epoch, now_ms)?;
        Ok(self.appended(st, r, segments))
    }

    /// Writes a transaction marker (a commit or abort control batch) for `producer_id`, if
    /// this node leads the partition and its lease is valid.
    pub(crate) fn append_control(
        &self,
        producer_id: i64,
        producer_epoch: i16,
        control: tierlog_tiering::ControlType,
        coordinator_epoch: i32,
        now_ms: i64,
        lease_valid: bool,
    ) -> Result<LeaderAppend> {
        let st = self.replica();
        if !st.is_leader() || !lease_valid {
            return Err(Error::NotLeader(self.tp.to_string()));
        }
        let segments = self.log.segment_count();
        let r = self.log.append_control(
            producer_id,
            producer_epoch,
            control,
            coordinator_epoch,
            st.epoch,
            now_ms,
        )?;
        Ok(self.appended(st, r, segments))
    }

    /// Publishes a leader's append (`segments`: the segment count before it): the log end,
    /// the high watermark, and an early upload when a segment was sealed.
    fn appended(
        &self,
        st: MutexGuard<'_, ReplicaState>,
        mut r: AppendResult,
        segments: usize,
    ) -> LeaderAppend {
        if !r.duplicate {
            let end = r.last_offset + 1;
            self.mark_dirty();
            self.end.send_replace(end);
            self.advance_hw(st.high_watermark(end));
        }
        let role_gen = *self.role_gen.borrow();
        drop(st);
        if self.log.segment_count() != segments {
            // A roll sealed a segment: tier it now rather than at the next tick.
            self.uploader.wake(self.me.clone());
        }
        r.log_start_offset = self.log_start();
        LeaderAppend {
            result: r,
            role_gen,
        }
    }

    /// The last stable offset: consumers reading committed data (`read_committed`) see only
    /// offsets below it — the high watermark, or the first offset of the oldest transaction
    /// still open, if lower.
    pub(crate) fn last_stable_offset(&self) -> i64 {
        let hw = self.high_watermark();
        self.log
            .first_unstable_offset()
            .map_or(hw, |first| first.min(hw))
    }

    /// Aborted transactions overlapping `[from, upper)`, from both tiers, for a
    /// `read_committed` fetch.
    pub(crate) async fn aborted_transactions(
        &self,
        from: i64,
        upper: i64,
    ) -> Result<Vec<tierlog_tiering::AbortedTxn>> {
        let mut out = Vec::new();
        if from < self.log.log_start_offset() {
            out.extend(
                self.remote
                    .aborted_transactions(&self.tiering, from, upper)
                    .await?,
            );
        }
        out.extend(
            self.log
                .aborted_transactions(from.max(self.log.log_start_offset()), upper)?,
        );
        // A segment both tiered and still local lists its transactions twice.
        out.sort_by_key(|a| (a.first_offset, a.producer_id));
        out.dedup_by_key(|a| (a.first_offset, a.producer_id));
        Ok(out)
    }

    /// Appends batches fetched from the leader, offsets and epochs as the leader wrote them,
    /// and takes the leader's high watermark (capped by what is here).
    pub(crate) fn append_follower(
        &self,
        records: Bytes,
        leader_hw: i64,
        now_ms: i64,
    ) -> Result<()> {
        if !records.is_empty() {
            let segments = self.log.segment_count();
            let len = records.len() as u64;
            let r = self.log.append_replicated(records, now_ms)?;
            self.replicated_bytes.fetch_add(len, Ordering::Relaxed);
            self.mark_dirty();
            self.end.send_replace(r.last_offset + 1);
            if self.log.segment_count() != segments {
                self.uploader.wake(self.me.clone());
            }
        }
        self.advance_hw(leader_hw.min(self.log.log_end_offset()));
        Ok(())
    }

    /// A follower takes the leader's log start (moved by DeleteRecords or retention), so that
    /// if it comes to lead, it serves from the same start.
    pub(crate) fn follow_log_start(&self, leader_start: i64) -> Result<()> {
        if leader_start <= self.log_start() {
            return Ok(());
        }
        let start = leader_start.min(self.log.log_end_offset());
        self.remote.set_delete_start(start);
        self.log.advance_log_start(start)?;
        Ok(())
    }

    /// Truncates the local log to `offset` (a follower's divergent tail), keeping the high
    /// watermark at or below the new end.
    pub(crate) fn truncate_to(&self, offset: i64) -> Result<i64> {
        let end = if offset < self.log.log_start_offset() {
            self.log.truncate_fully_and_start_at(offset)?;
            offset
        } else {
            self.log.truncate_to(offset)?
        };
        self.end.send_replace(end);
        self.hw.send_if_modified(|h| {
            let moved = *h > end;
            *h = (*h).min(end);
            moved
        });
        self.durable.send_if_modified(|d| {
            let moved = *d > end;
            *d = (*d).min(end);
            moved
        });
        Ok(end)
    }

    /// Restarts an empty follower log at the leader's log start (everything below is gone).
    pub(crate) fn restart_at(&self, offset: i64) -> Result<()> {
        self.log.truncate_fully_and_start_at(offset)?;
        self.end.send_replace(offset);
        self.hw.send_replace(offset);
        self.durable.send_replace(offset);
        Ok(())
    }

    fn advance_hw(&self, hw: i64) {
        self.hw.send_if_modified(|h| {
            let moved = hw > *h;
            if moved {
                *h = hw;
            }
            moved
        });
    }

    /// The high watermark.
    pub(crate) fn high_watermark(&self) -> i64 {
        *self.hw.borrow()
    }

    /// A receiver of the high watermark, for consumers' long-polls.
    pub(crate) fn subscribe_hw(&self) -> watch::Receiver<i64> {
        self.hw.subscribe()
    }

    /// Waits until the high watermark reaches `end` (acks=all). Fails with NOT_LEADER if the
    /// leadership `role_gen` stood for ends first, or REQUEST_TIMED_OUT after `timeout`.
    pub(crate) async fn wait_committed(
        &self,
        end: i64,
        role_gen: u64,
        timeout: Duration,
    ) -> Result<()> {
        let mut hw = self.hw.subscribe();
        let mut gen_rx = self.role_gen.subscribe();
        let wait = async {
            loop {
                if *hw.borrow_and_update() >= end {
                    return Ok(());
                }
                if *gen_rx.borrow_and_update() != role_gen {
                    return Err(Error::NotLeader(self.tp.to_string()));
                }
                // Both senders live as long as the partition, which the caller holds.
                tokio::select! {
                    r = hw.changed() => r.map_err(|_| Error::ShuttingDown)?,
                    r = gen_rx.changed() => r.map_err(|_| Error::ShuttingDown)?,
                }
            }
        };
        match tokio::time::timeout(timeout, wait).await {
            Ok(r) => r,
            Err(_) => Err(Error::RequestTimedOut(format!(
                "{}: replication to the ISR did not finish within {timeout:?}",
                self.tp
            ))),
        }
    }

    /// This node's role, epoch and ISR size, checked against a client's `current_leader_epoch`
    /// (-1: no check). Err unless this node leads the partition.
    pub(crate) fn check_leader(&self, current_epoch: i32) -> Result<LeaderEpoch> {
        let st = self.replica();
        if !st.is_leader() {
            return Err(Error::NotLeader(self.tp.to_string()));
        }
        check_epoch(current_epoch, st.epoch)?;
        Ok(st.epoch)
    }

    /// Whether a consumer may read here, checked against its `current_leader_epoch` (-1: no
    /// check): `Ok(true)` on the leader; `Ok(false)` on a follower in the ISR when
    /// `from_follower` (a Fetch v11+, KIP-392), which serves up to its own high watermark;
    /// NOT_LEADER_OR_FOLLOWER otherwise. Unlike Kafka, a follower that knows it left the ISR
    /// refuses, so a consumer sent to it goes back to the leader rather than reading ever
    /// staler data until its client next asks the leader.
    pub(crate) fn check_consumer_read(
        &self,
        current_epoch: i32,
        from_follower: bool,
    ) -> Result<bool> {
        let st = self.replica();
        let leader = st.is_leader();
        let in_sync_follower = st.role == Role::Follower && st.isr.contains(&st.me);
        if !(leader || from_follower && in_sync_follower) {
            return Err(Error::NotLeader(self.tp.to_string()));
        }
        check_epoch(current_epoch, st.epoch)?;
        Ok(leader)
    }

    /// The in-sync followers a consumer fetching at `fetch_offset` could be sent to (see
    /// [`ReplicaState::read_replicas`]); `None` unless this node leads the partition at
    /// `current_epoch` (then the fetch is answered, or refused, as usual).
    pub(crate) fn read_replicas(
        &self,
        current_epoch: i32,
        fetch_offset: i64,
        now: Instant,
    ) -> Option<Vec<ReadReplica>> {
        let st = self.replica();
        if !st.is_leader() || check_epoch(current_epoch, st.epoch).is_err() {
            return None;
        }
        Some(st.read_replicas(fetch_offset, now))
    }

    /// The current ISR size (leader's view), for acks=all after the wait.
    pub(crate) fn isr_len(&self) -> usize {
        self.replica().isr.len()
    }

    /// A follower fetched at `fetch_offset` with `epoch`: records its progress and returns
    /// the high watermark to send it, plus an ISR expansion to commit, if one is due.
    pub(crate) fn follower_fetch(
        &self,
        follower: NodeId,
        fetch_offset: i64,
        follower_log_start: i64,
        epoch: i32,
        now: Instant,
    ) -> Result<(i64, Option<PendingIsrChange>)> {
        let mut st = self.replica();
        if !st.is_leader() {
            return Err(Error::NotLeader(self.tp.to_string()));
        }
        check_epoch(epoch, st.epoch)?;
        let leader_end = self.log.log_end_offset();
        if fetch_offset > leader_end {
            return Err(Error::Log(tierlog_tiering::Error::OffsetOutOfRange {
                offset: fetch_offset,
                start: self.log_start(),
                end: leader_end,
            }));
        }
        let hw_now = self.high_watermark();
        let change = st.follower_fetched(
            follower,
            fetch_offset,
            follower_log_start,
            leader_end,
            hw_now,
            now,
        );
        self.advance_hw(st.high_watermark(leader_end));
        let low = st.low_watermark(self.log_start());
        // Only a change wakes DeleteRecords waiters (most fetches change nothing).
        self.low_watermark.send_if_modified(|l| {
            let moved = *l != low;
            *l = low;
            moved
        });
        let pending = change.and_then(|c| {
            st.isr_change_in_flight = true;
            st.stored.clone().map(|stored| PendingIsrChange {
                change: c,
                stored,
                epoch: st.epoch,
            })
        });
        Ok((self.high_watermark(), pending))
    }

    /// In-sync followers past `max_lag`, as an ISR shrink to commit (leader only).
    pub(crate) fn lagging_followers(
        &self,
        now: Instant,
        max_lag: Duration,
    ) -> Option<PendingIsrChange> {
        let mut st = self.replica();
        if !st.is_leader() || st.isr_change_in_flight {
            return None;
        }
        let out = st.laggards(now, max_lag);
        if out.is_empty() {
            return None;
        }
        let stored = st.stored.clone()?;
        st.isr_change_in_flight = true;
        Some(PendingIsrChange {
            change: IsrChange::Shrink(out),
            stored,
            epoch: st.epoch,
        })
    }

    /// What this replica should change in the stored `damaged_replicas` given whether its
    /// log holds a damaged range that no tiered copy covers (`untiered`); `live` tells the
    /// nodes alive now. A leader with such a range hands leadership to a clean, live,
    /// in-sync replica if there is one (the change marks it damaged too).
    pub(crate) fn damage_action(
        &self,
        untiered: bool,
        live: impl Fn(NodeId) -> bool,
    ) -> Option<DamageAction> {
        let mut st = self.replica();
        let marked = st.stored.as_ref()?.value.is_damaged(st.me);
        if !untiered && !marked {
            // The common case: nothing to change, nothing cloned.
            return None;
        }
        let stored = st.stored.clone()?;
        let s = &stored.value;
        match (untiered, st.role) {
            (true, Role::Leader) => {
                if st.isr_change_in_flight {
                    return None;
                }
                let me = st.me;
                let clean = s
                    .choose_leader(|r| r != me && s.isr.contains(&r) && live(r))
                    .filter(|r| !s.is_damaged(*r));
                match clean {
                    Some(to) => {
                        st.isr_change_in_flight = true;
                        Some(DamageAction::Handoff(PendingIsrChange {
                            change: IsrChange::Handoff(to),
                            stored,
                            epoch: st.epoch,
                        }))
                    }
                    None if !marked => Some(DamageAction::Mark(stored)),
                    None => None,
                }
            }
            (true, Role::Follower) if !marked => Some(DamageAction::Mark(stored)),
            (false, _) if marked => Some(DamageAction::Clear(stored)),
            _ => None,
        }
    }

    /// An ISR change finished (committed as `state`, or abandoned with `None`).
    pub(crate) fn isr_change_done(&self, state: Option<&Versioned<PartitionState>>) {
        let mut st = self.replica();
        st.isr_change_in_flight = false;
        if let Some(state) = state
            && state.value.leader_epoch == st.epoch
            && st
                .stored
                .as_ref()
                .is_none_or(|s| s.mod_revision < state.mod_revision)
        {
            self.apply_locked(&mut st, state);
        }
    }

    /// Takes the role the stored partition state gives this node.
    pub(crate) fn apply_state(&self, state: &Versioned<PartitionState>) -> RoleView {
        let mut st = self.replica();
        if st
            .stored
            .as_ref()
            .is_some_and(|s| s.mod_revision > state.mod_revision && st.role != Role::None)
        {
            // Older than what we have (an ISR change of ours already applied).
            return RoleView {
                role: st.role,
                leader: st.leader,
                epoch: st.epoch,
                changed: false,
            };
        }
        self.apply_locked(&mut st, state)
    }

    fn apply_locked(&self, st: &mut ReplicaState, state: &Versioned<PartitionState>) -> RoleView {
        let leader_end = self.log.log_end_offset();
        let changed = st.apply(state, leader_end, self.clock.now());
        if changed {
            self.role_gen.send_modify(|g| *g += 1);
        }
        if st.is_leader() {
            self.advance_hw(st.high_watermark(leader_end));
        }
        RoleView {
            role: st.role,
            leader: st.leader,
            epoch: st.epoch,
            changed,
        }
    }

    /// Gives up every role (the lease lapsed, or the partition is going away).
    pub(crate) fn resign(&self) {
        let mut st = self.replica();
        if st.resign() {
            self.role_gen.send_modify(|g| *g += 1);
        }
        st.stored = None;
    }

    /// Whether this node leads the partition now.
    pub(crate) fn is_leader(&self) -> bool {
        self.replica().is_leader()
    }

    /// Whether `node` is in the ISR as this node knows it.
    pub(crate) fn in_sync(&self, node: NodeId) -> bool {
        self.replica().isr.contains(&node)
    }

    /// Leader with an ISR smaller than the replica set.
    pub(crate) fn is_under_replicated(&self) -> bool {
        let st = self.replica();
        st.is_leader() && st.isr.len() < st.replicas.len()
    }

    /// The leader's answer to OffsetForLeaderEpoch: where `requested` ends in this log, as
    /// `(epoch, end offset)`, counting the current epoch as starting where this node began to
    /// lead even before anything is appended in it (Kafka assigns it at election).
    pub(crate) fn epoch_end_offset(
        &self,
        current_epoch: i32,
        requested: i32,
    ) -> Result<(i32, i64)> {
        let st = self.replica();
        if !st.is_leader() {
            return Err(Error::NotLeader(self.tp.to_string()));
        }
        check_epoch(current_epoch, st.epoch)?;
        let end = self.log.log_end_offset();
        if requested == st.epoch {
            return Ok((st.epoch, end));
        }
        if requested > st.epoch {
            return Ok((-1, -1));
        }
        match self.log.latest_epoch() {
            Some(latest) if latest < st.epoch && requested >= latest => {
                Ok((latest, st.epoch_start))
            }
            None => Ok((requested, st.epoch_start)),
            Some(_) => Ok(self.log.end_offset_for_epoch(requested)),
        }
    }

    /// What the uploader may do now: only the leader tiers, and only what is committed (below
    /// the high watermark), so a deposed leader's divergent tail never reaches the manifest.
    pub(crate) fn upload_gate(&self) -> UploadGate {
        if !self.log.config().remote_storage {
            return UploadGate::Off;
        }
        let (role, epoch, state_revision) = {
            let st = self.replica();
            (
                st.role,
                st.epoch,
                st.stored.as_ref().map(|s| s.mod_revision),
            )
        };
        match (role, state_revision) {
            (Role::Leader, Some(state_revision)) => UploadGate::Lead {
                committed_end: self.high_watermark(),
                epoch,
                state_revision,
            },
            (Role::Follower, _) => UploadGate::Follow,
            _ => UploadGate::Off,
        }
    }

    /// Start of the whole log, both tiers.
    pub(crate) fn log_start(&self) -> i64 {
        self.remote.log_start(&self.log)
    }

    /// Whole batches at `offset` below `max_offset` (the high watermark for consumers, the log
    /// end for followers), from whichever tier holds it.
    pub(crate) async fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        max_offset: i64,
    ) -> Result<ReadOutcome> {
        let log_start = self.log_start();
        let log_end = self.log.log_end_offset();
        if offset < log_start || offset > log_end {
            return Err(Error::Log(tierlog_tiering::Error::OffsetOutOfRange {
                offset,
                start: log_start,
                end: log_end,
            }));
        }
        let mut offset = offset;
        let local_start = self.log.log_start_offset();
        if offset < local_start
            && let Some(records) = self.read_tiered(offset, max_bytes).await?
        {
            if !records.is_empty() {
                return Ok(ReadOutcome { records, log_start });
            }
            // The tiered range ends in a compacted hole: read on from the hot tier.
            offset = local_start;
        }
        let r = self.log.read_bounded(offset, max_bytes, max_offset);
        // The local copy is quarantined; object storage holds the same batches (their chunk
        // checksums verified): serve those while the heal job repairs the local ones.
        if let Err(tierlog_tiering::Error::Damaged { .. }) = &r
            && let Some(records) = self.read_tiered(offset, max_bytes).await?
            && !records.is_empty()
        {
            return Ok(ReadOutcome { records, log_start });
        }
        let r = r?;
        Ok(ReadOutcome {
            records: r.records,
            log_start,
        })
    }

    /// Reads the tiered copy at `offset`. A failed read asks for a refresh of this node's
    /// view of the manifest (`RemoteLog::read`) and wakes the scheduler to do it, so that a
    /// follower whose leader replaced a damaged tiered segment serves the new one at the
    /// client's next try.
    async fn read_tiered(&self, offset: i64, max_bytes: usize) -> Result<Option<Bytes>> {
        let r = self.remote.read(&self.tiering, offset, max_bytes).await;
        if r.is_err() {
            self.uploader.wake(self.me.clone());
        }
        r
    }

    /// The first offset at or after `ts`, across both tiers.
    pub(crate) async fn offset_for_timestamp(
        &self,
        ts: i64,
    ) -> Result<Option<tierlog_tiering::TimestampOffset>> {
        let start = self.log_start();
        if let Some(found) = self.remote.offset_for_timestamp(&self.tiering, ts).await?
            && found.offset >= start
        {
            return Ok(Some(found));
        }
        Ok(self
            .log
            .offset_for_timestamp(ts)?
            .filter(|f| f.offset >= start))
    }

    /// Moves the log start to `offset` on both tiers (DeleteRecords). Returns the new start.
    pub(crate) async fn delete_records(&self, offset: i64) -> Result<i64> {
        let stored = self
            .tiering
            .manifest
            .advance_log_start(self.remote.topic_id, self.remote.partition, offset)
            .await
            .map_err(tierlog_tiering::Error::from)?;
        self.remote.set_delete_start(stored);
        let log = self.log.clone();
        tokio::task::spawn_blocking(move || log.advance_log_start(stored))
            .await
            .map_err(|e| Error::Internal(format!("advance log start: {e}")))??;
        Ok(self.log_start())
    }

    /// DeleteRecords on the leader: waits until every in-sync replica has moved its log start
    /// to at least `start` (they learn it from their next fetch), so no leader elected later
    /// serves the deleted records. Returns the low watermark; REQUEST_TIMED_OUT after `timeout`.
    pub(crate) async fn wait_low_watermark(&self, start: i64, timeout: Duration) -> Result<i64> {
        let mut rx = self.low_watermark.subscribe();
        {
            let st = self.replica();
            self.low_watermark
                .send_replace(st.low_watermark(self.log_start()));
        }
        match tokio::time::timeout(timeout, rx.wait_for(|l| *l >= start)).await {
            Ok(Ok(low)) => Ok(*low),
            Ok(Err(_)) => Err(Error::ShuttingDown),
            Err(_) => Err(Error::RequestTimedOut(format!(
                "{}: followers did not reach log start {start} within {timeout:?}",
                self.tp
            ))),
        }
    }

    /// Waits until every offset below `end` is fsynced. Cancel-safe.
    pub(crate) async fn wait_durable(&self, end: i64) {
        let mut rx = self.durable.subscribe();
        if *rx.borrow() >= end {
            return;
        }
        self.request_flush();
        // The sender lives as long as the partition, which the caller holds.
        let _ = rx.wait_for(|d| *d >= end).await;
    }

    /// Marks the partition as having unflushed appends; the first mark since the last flush
    /// puts it on the flusher's list.
    fn mark_dirty(&self) {
        if !self.dirty.swap(true, Ordering::AcqRel) {
            self.flusher.enqueue(self.me.clone());
        }
    }

    /// Flushes now, or right after the flush in progress (which may have missed the appends
    /// the caller waits for). Concurrent requests share flushes.
    pub(crate) fn request_flush(&self) {
        self.flush_again.store(true, Ordering::Release);
        if self.flushing.swap(true, Ordering::AcqRel) {
            return;
        }
        match self.me.upgrade() {
            Some(p) => self.flusher.spawn_flushes(p),
            None => self.flushing.store(false, Ordering::Release),
        }
    }

    /// A receiver of the log end offset, for long-polling fetches.
    pub(crate) fn subscribe_end(&self) -> watch::Receiver<i64> {
        self.end.subscribe()
    }

    async fn flush_once(&self) {
        self.dirty.store(false, Ordering::Release);
        let log = self.log.clone();
        match tokio::task::spawn_blocking(move || log.flush()).await {
            Ok(Ok(offset)) => {
                self.durable.send_if_modified(|d| {
                    let moved = offset > *d;
                    *d = (*d).max(offset);
                    moved
                });
            }
            Ok(Err(e)) => {
                if !self.cancel.is_cancelled() {
                    // Back on the list: the next periodic pass retries.
                    self.dirty.store(false, Ordering::Release);
                    self.mark_dirty();
                }
                error!(partition = %self.tp, error = %e, "flush failed; will retry");
            }
            Err(e) => error!(partition = %self.tp, error = %e, "flush task failed"),
        }
    }
}

/// A topic and the partitions of it open here.
#[derive(Debug)]
pub(crate) struct TopicState {
    pub(crate) meta: TopicMeta,
    pub(crate) partitions: Hosted,
}

/// All partitions of this node, by topic.
#[derive(Debug)]
pub(crate) struct Partitions {
    /// This node's id (the replicas' roles are relative to it).
    node_id: NodeId,
    root: PathBuf,
    tiering: Arc<Tiering>,
    flush_mode: FlushMode,
    flusher: Arc<Flusher>,
    uploader: Arc<Uploader>,
    clock: SharedClock,
    /// Read on every produce and fetch, written only by admin operations. Shared with the
    /// upload scheduler.
    topics: Arc<RwLock<HashMap<String, Arc<TopicState>>>>,
    /// The node's defaults of topic configs (dynamic broker configs), under each topic's
    /// overrides in its logs' settings. Written when they change (`dynamic_config`).
    log_defaults: RwLock<topic_config::NodeDefaults>,
    cancel: CancellationToken,
    tracker: TaskTracker,
}

impl Partitions {
    pub(crate) fn new(
        node_id: NodeId,
        data_dir: &Path,
        tiering: Arc<Tiering>,
        (flush_mode, flush_interval): (FlushMode, Duration),
        clock: SharedClock,
        cancel: CancellationToken,
        tracker: TaskTracker,
    ) -> Result<Partitions> {
        let root = data_dir.join("logs");
        std::fs::create_dir_all(&root).map_err(|e| {
            Error::Internal(format!("creating log directory `{}`: {e}", root.display()))
        })?;
        let flusher = Flusher::new(tracker.clone());
        tracker.spawn(flusher.clone().run(flush_interval, cancel.child_token()));
        let topics = Arc::new(RwLock::new(HashMap::new()));
        tracker.spawn(
            heal::Scrubber {
                interval: tiering.scrub_interval,
                bytes_per_sec: tiering.scrub_bytes_per_sec,
            }
            .run(topics.clone(), tiering.clone(), cancel.child_token()),
        );
        tracker.spawn(
            heal::TieredScrubber {
                interval: tiering.scrub_tiered_interval,
                bytes_per_sec: tiering.scrub_bytes_per_sec,
            }
            .run(topics.clone(), tiering.clone(), cancel.child_token()),
        );
        let uploader = Uploader::new(tracker.clone());
        tracker.spawn(uploader.clone().run(
            topics.clone(),
            tiering.clone(),
            clock.clone(),
            cancel.child_token(),
        ));
        Ok(Partitions {
            node_id,
            root,
            tiering,
            flush_mode,
            flusher,
            uploader,
            clock,
            topics,
            log_defaults: RwLock::default(),
            cancel,
            tracker,
        })
    }

    /// Sets the node's defaults of topic configs and re-applies every open topic's log
    /// settings with them.
    pub(crate) fn set_log_defaults(&self, defaults: topic_config::NodeDefaults) {
        *self
            .log_defaults
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = defaults;
        let defaults = self.log_defaults();
        for t in self.all() {
            let log_config = topic_config::log_config(&defaults.under(&t.meta.configs));
            for p in &t.partitions {
                p.log.update_config(log_config.clone());
            }
        }
    }

    /// The node's defaults of topic configs now.
    fn log_defaults(&self) -> topic_config::NodeDefaults {
        self.log_defaults
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn flush_mode(&self) -> FlushMode {
        self.flush_mode
    }

    fn topic_dir(&self, meta: &TopicMeta) -> PathBuf {
        self.root
            .join(format!("{}-{}", meta.name, meta.id.simple()))
    }

    /// The topic, if this node hosts it.
    pub(crate) fn topic(&self, name: &str) -> Option<Arc<TopicState>> {
        self.read().get(name).cloned()
    }

    /// The topic with this id, if hosted here.
    pub(crate) fn topic_by_id(&self, id: uuid::Uuid) -> Option<Arc<TopicState>> {
        self.read().values().find(|t| t.meta.id == id).cloned()
    }

    /// Every hosted topic, sorted by name.
    pub(crate) fn all(&self) -> Vec<Arc<TopicState>> {
        let mut v: Vec<_> = self.read().values().cloned().collect();
        v.sort_by(|a, b| a.meta.name.cmp(&b.meta.name));
        v
    }

    /// One partition, if hosted here.
    pub(crate) fn partition(&self, topic: &str, index: i32) -> Option<Arc<Partition>> {
        let t = self.topic(topic)?;
        usize::try_from(index)
            .ok()
            .and_then(|i| t.partitions.get(i))
            .cloned()
    }

    /// One partition, or Kafka's error for it here (see [`TopicState::lookup`]).
    pub(crate) fn lookup(&self, topic: &str, index: i32) -> Result<Arc<Partition>> {
        match self.topic(topic) {
            Some(t) => t.lookup(index).cloned(),
            None => Err(Error::UnknownTopicOrPartition(format!("{topic}-{index}"))),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Arc<TopicState>>> {
        self.topics
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Arc<TopicState>>> {
        self.topics
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Installs the topic with its current metadata and makes the partitions open here
    /// those `want` asks for: opens (recovering as needed) each it asks to host and closes
    /// each it asks to drop, deleting its files. Used at start, on create, on new
    /// partitions, on config changes and as partition states change. Returns the indexes of
    /// the partitions it closed.
    pub(crate) async fn install(
        &self,
        meta: TopicMeta,
        want: impl Fn(i32) -> Want,
    ) -> Result<Vec<i32>> {
        let existing = self.topic(&meta.name).filter(|t| t.meta.id == meta.id);
        let first_install = existing.is_none();
        let defaults = self.log_defaults();
        let log_config = topic_config::log_config(&defaults.under(&meta.configs));
        let mut slots = existing
            .as_ref()
            .map(|t| t.partitions.slots.clone())
            .unwrap_or_default();
        let count = usize::try_from(meta.partitions).unwrap_or(0);
        // Slots past the count (a rolled-back CreatePartitions) close like dropped ones.
        let mut dropped: Vec<Arc<Partition>> =
            slots.drain(count.min(slots.len())..).flatten().collect();
        slots.resize(count, None);
        let list = |name: &str| meta.configs.get(name).cloned().unwrap_or_default();
        let (leader_list, follower_list) = (
            list("leader.replication.throttled.replicas"),
            list("follower.replication.throttled.replicas"),
        );
        let node_id = self.node_id;
        let mark = |p: &Partition| {
            let on = |l: &str| crate::replication::throttle::lists(l, p.tp.partition, node_id);
            p.leader_throttled
                .store(on(&leader_list), Ordering::Relaxed);
            p.follower_throttled
                .store(on(&follower_list), Ordering::Relaxed);
        };
        for p in slots.iter().flatten() {
            p.log.update_config(log_config.clone());
            mark(p);
        }
        let mut to_open = Vec::new();
        for (index, slot) in slots.iter_mut().enumerate() {
            match (want(index as i32), slot.is_some()) {
                (Want::Host, false) => to_open.push(index as i32),
                (Want::Drop, true) => dropped.extend(slot.take()),
                _ => {}
            }
        }
        // Opened (recovered) a few at a time; any failure drops what this call opened (the
        // logs close, their directories are free to open again) and installs nothing.
        // The topic's manifest and log starts in two reads, not two per partition.
        let (mut tiered, starts) = if to_open.is_empty() {
            Default::default()
        } else {
            let manifest = &self.tiering.manifest;
            let tiered = manifest
                .list_topic(meta.id)
                .await
                .map_err(tierlog_tiering::Error::from)?;
            let starts = manifest
                .log_starts(meta.id)
                .await
                .map_err(tierlog_tiering::Error::from)?;
            (tiered, starts)
        };
        let opened: Vec<Arc<Partition>> = futures::stream::iter(to_open)
            .map(|index| {
                let segments = tiered.remove(&index).unwrap_or_default();
                let start = starts.get(&index).copied();
                self.open_partition(&meta, index, log_config.clone(), segments, start)
            })
            .buffered(CONCURRENT_OPENS)
            .try_collect()
            .await?;
        for p in opened {
            mark(&p);
            let index = p.tp.partition as usize;
            slots[index] = Some(p);
        }
        let strays = if first_install {
            // Directories a replica left behind when this node lost it while down.
            (0..meta.partitions)
                .filter(|i| want(*i) == Want::Drop)
                .collect()
        } else {
            Vec::new()
        };
        let dir = self.topic_dir(&meta);
        let name = meta.name.clone();
        self.write().insert(
            meta.name.clone(),
            Arc::new(TopicState {
                meta,
                partitions: Hosted { slots },
            }),
        );
        // Node defaults that changed meanwhile: `set_log_defaults` may have looked for this
        // topic before it was inserted, so apply them here.
        let now = self.log_defaults();
        if now != defaults
            && let Some(t) = self.topic(&name)
        {
            let log_config = topic_config::log_config(&now.under(&t.meta.configs));
            for p in &t.partitions {
                p.log.update_config(log_config.clone());
            }
        }
        let closed: Vec<i32> = dropped.iter().map(|p| p.tp.partition).collect();
        for p in &dropped {
            // Waiters (acks=all produces) give up now rather than at their timeout.
            p.resign();
            p.cancel.cancel();
        }
        if !closed.is_empty() {
            info!(topic = %name, partitions = closed.len(), "replicas no longer assigned here closed");
        }
        if !closed.is_empty() || !strays.is_empty() {
            let indexes: Vec<i32> = closed.iter().chain(&strays).copied().collect();
            tokio::task::spawn_blocking(move || remove_partition_dirs(&dir, indexes))
                .await
                .map_err(|e| Error::Internal(format!("removing partition directories: {e}")))?;
        }
        Ok(closed)
    }

    /// Opens (recovering) one partition of `meta`: its log, its tiered segments, its place
    /// in the flusher and the upload scheduler.
    async fn open_partition(
        &self,
        meta: &TopicMeta,
        index: i32,
        log_config: tierlog_tiering::LogConfig,
        tiered: Vec<tierlog_metadata::RemoteSegment>,
        delete_start: Option<i64>,
    ) -> Result<Arc<Partition>> {
        let tiered_end = tiered.last().map(|s| s.end_offset);
        let dir = self.topic_dir(meta).join(index.to_string());
        let cfg = log_config;
        // A replacement node (nothing here, history tiered) starts its producer state from
        // the snapshot shipped with the newest tiered segment rather than from nothing, so
        // it deduplicates retries and knows open transactions like the old leader did.
        let snapshot = match tiered_end {
            Some(_) if is_empty_dir(&dir) => self
                .tiering
                .remote_partition(&meta.name, meta.id, index)
                .latest_producer_snapshot()
                .await
                .unwrap_or_else(|e| {
                    warn!(topic = %meta.name, partition = index, error = %e, "no tiered producer snapshot; starting without one");
                    None
                }),
            _ => None,
        };
        let opened = tokio::task::spawn_blocking(move || {
            // An empty directory continues after the tiered history (a replacement node).
            let log = PartitionLog::open_at_with_producers(
                &dir,
                cfg,
                tiered_end.unwrap_or(0),
                snapshot.as_deref(),
            )?;
            if let Some(end) = tiered_end {
                log.set_tiered_end(end);
            }
            if let Some(start) = delete_start {
                log.advance_log_start(start.min(log.log_end_offset()))?;
            }
            Ok::<_, tierlog_tiering::Error>(log)
        })
        .await
        .map_err(|e| Error::Internal(format!("opening partition log: {e}")))??;
        let end = opened.log_end_offset();
        // What is tiered was committed (only leaders tier, only below the high watermark);
        // the rest is learnt from the leader, or known at once when leading alone.
        let hw = opened.tiered_end().max(opened.log_start_offset()).min(end);
        let tp = TopicPartition::new(meta.name.clone(), index);
        debug!(partition = %tp, log_start = opened.log_start_offset(), log_end = end, tiered = tiered.len(), "partition opened");
        opened.set_verify_reads(self.tiering.verify_reads);
        let log = Arc::new(opened);
        let cancel = self.cancel.child_token();
        let remote = Arc::new(RemoteLog::new(
            meta.name.clone(),
            meta.id,
            index,
            tiered,
            delete_start,
        ));
        let p = Arc::new_cyclic(|me| Partition {
            tp,
            log: log.clone(),
            end: watch::Sender::new(end),
            durable: watch::Sender::new(end),
            dirty: AtomicBool::new(false),
            flushing: AtomicBool::new(false),
            flush_again: AtomicBool::new(false),
            flusher: self.flusher.clone(),
            uploader: self.uploader.clone(),
            me: me.clone(),
            remote: remote.clone(),
            tiering: self.tiering.clone(),
            cancel: cancel.clone(),
            replica: Mutex::new(ReplicaState::new(self.node_id)),
            hw: watch::Sender::new(hw),
            role_gen: watch::Sender::new(0),
            low_watermark: watch::Sender::new(-1),
            clock: self.clock.clone(),
            replicated_bytes: std::sync::atomic::AtomicU64::new(0),
            leader_throttled: AtomicBool::new(false),
            follower_throttled: AtomicBool::new(false),
        });
        Ok(p)
    }

    /// Removes the topic: closes its partitions and deletes their files.
    pub(crate) async fn remove(&self, meta: &TopicMeta) -> Result<()> {
        let removed = {
            let mut topics = self.write();
            match topics.get(&meta.name) {
                Some(t) if t.meta.id == meta.id => topics.remove(&meta.name),
                _ => None,
            }
        };
        let dir = self.topic_dir(meta);
        if let Some(t) = &removed {
            for p in &t.partitions {
                p.resign();
                p.cancel.cancel();
            }
            info!(topic = %meta.name, partitions = t.partitions.open_count(), "topic removed");
        }
        if let Err(e) = self.tiering.manifest.remove_topic(meta.id).await {
            warn!(topic = %meta.name, error = %e, "could not remove the manifest of a deleted topic");
        }
        {
            // Every partition's objects sit under the topic's prefix: one listing.
            let prefix = object_store::path::Path::from(
                tierlog_tiering::remote::layout::topic_prefix(&meta.name, meta.id),
            );
            let store = self.tiering.store.clone();
            // Objects are garbage once the manifest is gone; delete them in the background.
            self.tracker.spawn(async move {
                use futures::TryStreamExt;
                use object_store::ObjectStoreExt;
                let listed = store.list(Some(&prefix)).map_ok(|m| m.location).try_collect::<Vec<_>>().await;
                let keys = match listed {
                    Ok(k) => k,
                    Err(e) => {
                        warn!(prefix = %prefix, error = %e, "listing objects of a deleted topic failed");
                        return;
                    }
                };
                for key in keys {
                    if let Err(e) = store.delete(&key).await {
                        warn!(key = %key, error = %e, "deleting an object of a deleted topic failed");
                    }
                }
            });
        }
        tokio::task::spawn_blocking(move || match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::Internal(format!(
                "removing `{}`: {e}",
                dir.display()
            ))),
        })
        .await
        .map_err(|e| Error::Internal(format!("remove task: {e}")))?
    }

    /// Deletes the directories of partitions `range` of a topic whose creation was rolled
    /// back (their logs were dropped with the failed `install`). Failures are logged.
    pub(crate) fn remove_partition_dirs(&self, meta: &TopicMeta, range: std::ops::Range<i32>) {
        remove_partition_dirs(&self.topic_dir(meta), range);
    }

    /// Deletes log directories that belong to no known topic (left by a crash mid-delete).
    pub(crate) fn remove_orphans(&self, known: &[TopicMeta]) {
        let keep: std::collections::HashSet<PathBuf> =
            known.iter().map(|m| self.topic_dir(m)).collect();
        let Ok(entries) = std::fs::read_dir(&self.root) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() && !keep.contains(&path) {
                warn!(dir = %path.display(), "removing log directory of a deleted topic");
                if let Err(e) = std::fs::remove_dir_all(&path) {
                    warn!(dir = %path.display(), error = %e, "could not remove orphan directory");
                }
            }
        }
    }

    /// Gives up every role on every partition (the lease lapsed).
    pub(crate) fn resign_all(&self) {
        for t in self.all() {
            for p in &t.partitions {
                p.resign();
            }
        }
    }

    /// Rolls by time and applies retention on every partition, local tier then remote.
    pub(crate) async fn enforce_retention(&self, now_ms: i64) {
        for t in self.all() {
            for p in &t.partitions {
                let log = p.log.clone();
                match tokio::task::spawn_blocking(move || log.enforce_retention(now_ms)).await {
                    Ok(Ok(0)) => {}
                    Ok(Ok(n)) => {
                        info!(partition = %p.tp, segments = n, local_start = p.log.log_start_offset(), "local retention deleted segments")
                    }
                    Ok(Err(e)) => warn!(partition = %p.tp, error = %e, "local retention failed"),
                    Err(e) => warn!(partition = %p.tp, error = %e, "local retention task failed"),
                }
                if !p.is_leader() {
                    // Only the leader deletes from the shared object store.
                    continue;
                }
                let cfg = p.log.config();
                // `cleanup.policy=compact` alone deletes nothing by age or size.
                let (retention_ms, retention_bytes) = if cfg.cleanup_delete {
                    (cfg.retention_ms, cfg.retention_bytes)
                } else {
                    (None, None)
                };
                let remote = p.remote.enforce_retention(
                    &p.log,
                    &self.tiering,
                    retention_ms,
                    retention_bytes,
                    now_ms,
                );
                if let Err(e) = remote.await {
                    warn!(partition = %p.tp, error = %e, "remote retention failed");
                }
            }
        }
    }

    /// One round of the log cleaner: every hosted log of a compacted topic that
    /// [`PartitionLog::cleanable`] finds dirty enough is cleaned below its high watermark,
    /// dirtiest first. Errors are logged and counted; the log stays as it was.
    pub(crate) async fn clean_logs(
        &self,
        now_ms: i64,
        options: &tierlog_tiering::CleanerOptions,
        throttle: &Arc<std::sync::Mutex<tierlog_tiering::Throttle>>,
        metrics: &crate::metrics::Metrics,
        cancel: &tokio_util::sync::CancellationToken,
    ) {
        let mut due: Vec<(f64, Arc<Partition>)> = Vec::new();
        for t in self.all() {
            for p in &t.partitions {
                let cfg = p.log.config();
                if !cfg.cleanup_compact {
                    continue;
                }
                if let Some(c) = p.log.cleanable(p.high_watermark(), now_ms)
                    && (c.forced || c.dirty_ratio() >= cfg.min_cleanable_dirty_ratio)
                {
                    let rank = if c.forced { f64::MAX } else { c.dirty_ratio() };
                    due.push((rank, p.clone()));
                }
            }
        }
        due.sort_by(|a, b| b.0.total_cmp(&a.0));
        self.compact_tiered(now_ms, options, metrics, cancel).await;
        for (_, p) in due {
            if cancel.is_cancelled() {
                return;
            }
            let log = p.log.clone();
            let hw = p.high_watermark();
            let options = options.clone();
            let throttle = throttle.clone();
            let outcome = tokio::task::spawn_blocking(move || {
                let mut throttle = throttle.lock().unwrap_or_else(|e| e.into_inner());
                log.clean(hw, now_ms, false, &options, &mut throttle)
            })
            .await;
            match outcome {
                Ok(Ok(Some(s))) => {
                    crate::metrics::Metrics::add(&metrics.cleaner_passes, 1);
                    crate::metrics::Metrics::add(&metrics.cleaner_read_bytes, s.bytes_read);
                    crate::metrics::Metrics::add(&metrics.cleaner_written_bytes, s.bytes_written);
                    crate::metrics::Metrics::add(&metrics.cleaner_removed_bytes, s.bytes_removed());
                    info!(
                        partition = %p.tp,
                        dirty_from = s.first_dirty,
                        cleaned_to = s.end,
                        keys = s.map_keys,
                        records_read = s.records_read,
                        records_kept = s.records_kept,
                        bytes_before = s.bytes_before,
                        bytes_after = s.bytes_after,
                        "log cleaned"
                    );
                }
                Ok(Ok(None)) => {}
                Ok(Err(e)) => {
                    crate::metrics::Metrics::add(&metrics.cleaner_errors, 1);
                    warn!(partition = %p.tp, error = %e, "log cleaning failed");
                }
                Err(e) => {
                    crate::metrics::Metrics::add(&metrics.cleaner_errors, 1);
                    warn!(partition = %p.tp, error = %e, "log cleaning task failed");
                }
            }
        }
    }

    /// Tiered compaction of every compacted, tiered partition this node leads (only the
    /// leader rewrites the tiered range; see `RemoteLog::compact`).
    async fn compact_tiered(
        &self,
        now_ms: i64,
        options: &tierlog_tiering::CleanerOptions,
        metrics: &crate::metrics::Metrics,
        cancel: &tokio_util::sync::CancellationToken,
    ) {
        use crate::metrics::Metrics;
        for t in self.all() {
            for p in &t.partitions {
                if cancel.is_cancelled() {
                    return;
                }
                let cfg = p.log.config();
                if !cfg.cleanup_compact || !cfg.remote_storage || !p.is_leader() {
                    continue;
                }
                let outcome = p
                    .remote
                    .compact(
                        &p.log,
                        &self.tiering,
                        p.upload_gate(),
                        now_ms,
                        options.dedupe_buffer_bytes,
                        false,
                    )
                    .await;
                match outcome {
                    Ok(Some(s)) => {
                        if !s.swapped.is_empty() {
                            Metrics::add(&metrics.remote_cleaner_passes, 1);
                        }
                        Metrics::add(&metrics.remote_cleaner_read_bytes, s.clean.bytes_read);
                        Metrics::add(&metrics.remote_cleaner_written_bytes, s.clean.bytes_written);
                        Metrics::add(&metrics.remote_cleaner_removed_bytes, s.bytes_removed());
                        Metrics::add(&metrics.remote_cleaner_requests, s.requests());
                        info!(
                            partition = %p.tp,
                            cleaned_to = s.clean.end,
                            keys = s.clean.map_keys,
                            bytes_before = s.clean.bytes_before,
                            bytes_after = s.clean.bytes_after,
                            requests = s.requests(),
                            interrupted = ?s.interrupted,
                            "tiered segments compacted"
                        );
                    }
                    Ok(None) => {}
                    Err(e) => {
                        Metrics::add(&metrics.remote_cleaner_errors, 1);
                        warn!(partition = %p.tp, error = %e, "tiered compaction failed");
                    }
                }
            }
        }
    }

    /// Rolls the active segment of every tiered partition that holds data and uploads every
    /// sealed, untiered segment (clean shutdown), [`CONCURRENT_OPENS`] partitions at a time.
    /// Errors are logged; they leave the data on local disk for the next start.
    pub(crate) async fn seal_and_tier_all(&self) {
        let all: Vec<Arc<Partition>> = self
            .all()
            .iter()
            .flat_map(|t| t.partitions.iter().cloned().collect::<Vec<_>>())
            .collect();
        // The futures are built first (a stream mapping a borrowing closure fails the callers'
        // `Send` check, rust-lang/rust#102211).
        let pending: Vec<_> = all.iter().map(|p| self.seal_and_tier(p)).collect();
        futures::stream::iter(pending)
            .buffer_unordered(CONCURRENT_OPENS)
            .collect::<Vec<()>>()
            .await;
    }

    async fn seal_and_tier(&self, p: &Arc<Partition>) {
        let lead = p.upload_gate();
        let UploadGate::Lead { committed_end, .. } = lead else {
            return;
        };
        if p.log.log_end_offset() > committed_end {
            // Uncommitted records in the active segment: sealing them would tier them.
            return;
        }
        let log = p.log.clone();
        match tokio::task::spawn_blocking(move || log.roll_now()).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                warn!(partition = %p.tp, error = %e, "sealing the active segment failed");
                return;
            }
            Err(e) => {
                warn!(partition = %p.tp, error = %e, "sealing task failed");
                return;
            }
        }
        // Not beside an upload the scheduler started before the shutdown.
        p.remote.claim().await;
        let uploaded = p.remote.upload_pending(&p.log, &self.tiering, lead).await;
        p.remote.release();
        if let Err(e) = uploaded {
            warn!(partition = %p.tp, error = %e, "tiering at shutdown failed; the data stays on local disk");
        }
    }

    /// Flushes and closes every partition (clean shutdown marker included), on
    /// [`CLOSE_THREADS`] blocking threads: each close is a few fsyncs, and the file system
    /// commits concurrent ones together (10,000 partitions one after another took tens of
    /// seconds on a busy machine).
    pub(crate) async fn close_all(&self) {
        let all: Vec<Arc<Partition>> = self
            .all()
            .iter()
            .flat_map(|t| t.partitions.iter().cloned().collect::<Vec<_>>())
            .collect();
        let per_thread = all.len().div_ceil(CLOSE_THREADS).max(1);
        let closes: Vec<_> = all
            .chunks(per_thread)
            .map(|chunk| {
                let chunk = chunk.to_vec();
                tokio::task::spawn_blocking(move || {
                    for p in chunk {
                        if let Err(e) = p.log.close() {
                            error!(partition = %p.tp, error = %e, "closing partition log failed");
                        }
                    }
                })
            })
            .collect();
        for c in closes {
            if let Err(e) = c.await {
                error!(error = %e, "closing partition logs failed");
            }
        }
    }
}

/// Blocking threads [`Partitions::close_all`] closes partitions on.
const CLOSE_THREADS: usize = 8;

/// Deletes the directories of partitions `indexes` under a topic's directory, where they
/// exist. Failures are logged.
fn remove_partition_dirs(dir: &Path, indexes: impl IntoIterator<Item = i32>) {
    for index in indexes {
        let p = dir.join(index.to_string());
        match std::fs::remove_dir_all(&p) {
            Ok(()) => info!(dir = %p.display(), "partition directory removed"),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                warn!(dir = %p.display(), error = %e, "could not remove a partition directory")
            }
        }
    }
}

/// Whether `dir` is missing or holds nothing.
fn is_empty_dir(dir: &Path) -> bool {
    std::fs::read_dir(dir).map_or(true, |mut d| d.next().is_none())
}

impl Partitions {
    /// The directory holding every partition log (`<data_dir>/logs`), as DescribeLogDirs
    /// reports it.
    pub(crate) fn log_dir(&self) -> &Path {
        &self.root
    }
}
