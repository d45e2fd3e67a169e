//! The transaction coordinator (Kafka's KIP-98), and producer ids for idempotent producers.
//!
//! Every transactional id's state ([`TxnMeta`]: producer id and epoch, the state machine
//! Empty → Ongoing → PrepareCommit/PrepareAbort → CompleteCommit/CompleteAbort, the partitions
//! and groups in the transaction, the offsets committed in it) lives in the metadata store and
//! changes only by compare-and-swap, so any node can take a transactional id over when its
//! coordinator dies: FindCoordinator names one node per id (rendezvous hashing over the live
//! nodes), and even two nodes acting on one id at once cannot corrupt it. Requests for one id
//! are serialised on a node by a striped lock; a compare-and-swap that loses a race re-reads
//! and re-validates.
//!
//! EndTxn moves the transaction to PrepareCommit/PrepareAbort, writes a commit or abort marker
//! (a control batch) to every partition of the transaction through the partition leaders
//! ([`markers`]: appended here when this node leads, else a WriteTxnMarkers request to the
//! leader, each waiting for the marker to be replicated to the ISR), on commit makes the
//! offsets committed in the transaction the groups' committed offsets, and then records
//! CompleteCommit/CompleteAbort. It answers only then, so a client that sees its commit
//! succeed can read it back at once. A node that dies between the steps leaves a Prepare
//! state; [`run`] on the node now coordinating the id finishes it (markers and offset commits
//! are idempotent), and also aborts transactions open past their `transaction.timeout.ms`
//! (bumping the epoch, so the abandoned producer is fenced) and forgets transactional ids idle
//! past `transactional.id.expiration.ms`.
//!
//! Producer ids come in blocks of [`ID_BLOCK`] from the metadata store ([`ProducerIdRegistry`]),
//! so ids are unique cluster-wide and a node asks the store once per block.

pub(crate) mod markers;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use tierlog_metadata::{
    MetadataStore, ProducerIdRegistry, SharedClock, TransactionRegistry, TxnMeta, TxnOffset,
    TxnState, Versioned,
};

use crate::error::{Error, Result};
use crate::group::offsets::CommittedOffset;
use crate::host::Host;

/// Producer ids taken from the store at a time.
const ID_BLOCK: i64 = 1000;
/// Compare-and-swap attempts before a request gives up with CONCURRENT_TRANSACTIONS.
const CAS_ATTEMPTS: usize = 16;
/// Striped locks serialising requests for one transactional id on this node.
const LOCK_STRIPES: usize = 64;
/// Epochs stop short of `i16::MAX`: the last one is kept for fencing, as Kafka does.
const MAX_EPOCH: i16 = i16::MAX - 1;

/// The coordinator's limits (from the node's settings).
#[derive(Debug, Clone)]
pub(crate) struct TxnConfig {
    pub(crate) max_timeout: Duration,
    pub(crate) abort_check_interval: Duration,
    pub(crate) id_expiration: Duration,
}

/// The transaction coordinator of this node.
#[derive(Debug)]
pub(crate) struct TxnCoordinator {
    registry: TransactionRegistry,
    ids: ProducerIdRegistry,
    /// The rest of the current block of producer ids.
    block: tokio::sync::Mutex<Range<i64>>,
    locks: Vec<tokio::sync::Mutex<()>>,
    config: TxnConfig,
    clock: SharedClock,
    host: Arc<Host>,
    groups: Arc<crate::group::Coordinator>,
}

/// The producer id and epoch a request names.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ProducerRef {
    pub(crate) id: i64,
    pub(crate) epoch: i16,
}

impl TxnCoordinator {
    pub(crate) fn new(
        store: Arc<dyn MetadataStore>,
        config: TxnConfig,
        clock: SharedClock,
        host: Arc<Host>,
        groups: Arc<crate::group::Coordinator>,
    ) -> Self {
        TxnCoordinator {
            registry: TransactionRegistry::new(store.clone()),
            ids: ProducerIdRegistry::new(store),
            block: tokio::sync::Mutex::new(0..0),
            locks: (0..LOCK_STRIPES)
                .map(|_| tokio::sync::Mutex::new(()))
                .collect(),
            config,
            clock,
            host,
            groups,
        }
    }

    fn lock_for(&self, transactional_id: &str) -> &tokio::sync::Mutex<()> {
        let i = crc32fast::hash(transactional_id.as_bytes()) as usize % LOCK_STRIPES;
        &self.locks[i]
    }

    /// A producer id no other producer in the cluster has.
    pub(crate) async fn new_producer_id(&self) -> Result<i64> {
        let mut block = self.block.lock().await;
        if block.is_empty() {
            *block = self.ids.allocate_block(ID_BLOCK).await?;
        }
        let id = block.start;
        block.start += 1;
        Ok(id)
    }

    /// The transaction of `transactional_id`, as stored.
    pub(crate) async fn describe(&self, transactional_id: &str) -> Result<Option<TxnMeta>> {
        Ok(self.registry.get(transactional_id).await?.map(|v| v.value))
    }

    /// Every transactional id's state.
    pub(crate) async fn list(&self) -> Result<Vec<TxnMeta>> {
        Ok(self
            .registry
            .list()
            .await?
            .into_iter()
            .map(|v| v.value)
            .collect())
    }

    /// The partitions of `group` with offsets staged by an open transaction (TxnOffsetCommit
    /// not yet committed or aborted): OffsetFetch with `require_stable` answers
    /// UNSTABLE_OFFSET_COMMIT for them, as Kafka does. Reads every transactional id's state,
    /// so it is only asked when a client requires stable offsets (read_committed consumers).
    pub(crate) async fn pending_offsets(&self, group: &str) -> Result<BTreeSet<(String, i32)>> {
        let mut out = BTreeSet::new();
        for v in self.registry.list().await? {
            let m = v.value;
            if matches!(
                m.state,
                TxnState::Ongoing | TxnState::PrepareCommit | TxnState::PrepareAbort
            ) && let Some(staged) = m.pending_offsets.get(group)
            {
                out.extend(staged.keys().cloned());
            }
        }
        Ok(out)
    }

    /// InitProducerId for a transactional id: a new epoch (or a new producer id once the
    /// epoch is exhausted), fencing every older producer of the id. An open transaction is
    /// aborted first; a half-completed one is completed. `expected` is the KIP-360 id and
    /// epoch a producer sends to bump its own epoch; a stale one is fenced.
    pub(crate) async fn init_transactional(
        &self,
        transactional_id: &str,
        timeout_ms: i32,
        expected: Option<ProducerRef>,
    ) -> Result<ProducerRef> {
        let max = i32::try_from(self.config.max_timeout.as_millis()).unwrap_or(i32::MAX);
        if timeout_ms <= 0 || timeout_ms > max {
            return Err(Error::InvalidTransactionTimeout(format!(
                "transaction.timeout.ms {timeout_ms} is outside 1..={max} \
                 (transaction_max_timeout)"
            )));
        }
        let _serial = self.lock_for(transactional_id).lock().await;
        let mut checked = false;
        for _ in 0..CAS_ATTEMPTS {
            let now = self.clock.now_ms();
            let Some(v) = self.registry.get(transactional_id).await? else {
                let id = self.new_producer_id().await?;
                let meta = TxnMeta {
                    transactional_id: transactional_id.to_string(),
                    producer_id: id,
                    producer_epoch: 0,
                    last_producer_id: -1,
                    last_producer_epoch: -1,
                    timeout_ms,
                    state: TxnState::Empty,
                    partitions: BTreeMap::new(),
                    groups: BTreeSet::new(),
                    pending_offsets: BTreeMap::new(),
                    start_ms: -1,
                    update_ms: now,
                    transaction_version: 0,
                    coordinator_epoch: 0,
                };
                if self.registry.put(&meta, None).await?.is_some() {
                    info!(transactional_id, producer_id = id, "new transactional id");
                    return Ok(ProducerRef { id, epoch: 0 });
                }
                continue;
            };
            let m = &v.value;
            if let (Some(e), false) = (expected, checked) {
                if e.id == m.last_producer_id
                    && e.epoch == m.last_producer_epoch
                    && m.state == TxnState::Empty
                {
                    // A retry of a bump that succeeded: the answer it missed.
                    return Ok(ProducerRef {
                        id: m.producer_id,
                        epoch: m.producer_epoch,
                    });
                }
                if e.id != m.producer_id || e.epoch != m.producer_epoch {
                    return Err(Error::ProducerFenced(format!(
                        "{transactional_id}: producer {}/{} is not the current {}/{}",
                        e.id, e.epoch, m.producer_id, m.producer_epoch
                    )));
                }
                checked = true;
            }
            match m.state {
                TxnState::PrepareCommit | TxnState::PrepareAbort => {
                    self.complete(v).await?;
                    continue;
                }
                TxnState::Ongoing => {
                    self.abort_with_bump(v, "fenced by a new producer").await?;
                    continue;
                }
                _ => {}
            }
            let mut next = m.clone();
            self.bump_epoch(&mut next).await?;
            next.timeout_ms = timeout_ms;
            next.state = TxnState::Empty;
            clear_transaction(&mut next, now);
            next.start_ms = -1;
            if self.registry.put(&next, Some(rev(&v))).await?.is_some() {
                debug!(
                    transactional_id,
                    producer_id = next.producer_id,
                    epoch = next.producer_epoch,
                    "producer epoch bumped"
                );
                return Ok(ProducerRef {
                    id: next.producer_id,
                    epoch: next.producer_epoch,
                });
            }
        }
        Err(busy(transactional_id))
    }

    /// Adds partitions (AddPartitionsToTxn) and groups (AddOffsetsToTxn) to the producer's
    /// transaction, starting it if none is open.
    pub(crate) async fn add(
        &self,
        transactional_id: &str,
        producer: ProducerRef,
        partitions: &[(String, i32)],
        group: Option<&str>,
    ) -> Result<()> {
        let _serial = self.lock_for(transactional_id).lock().await;
        for _ in 0..CAS_ATTEMPTS {
            let v = self.current(transactional_id, producer).await?;
            let m = &v.value;
            match m.state {
                TxnState::PrepareCommit | TxnState::PrepareAbort => {
                    // A completion a failure left behind: finish it, then add.
                    self.complete(v).await?;
                    continue;
                }
                TxnState::Dead | TxnState::PrepareEpochFence => {
                    return Err(Error::InvalidTxnState(format!(
                        "{transactional_id} is {}",
                        m.state.name()
                    )));
                }
                _ => {}
            }
            let has_all = m.state == TxnState::Ongoing
                && partitions
                    .iter()
                    .all(|(t, p)| m.partitions.get(t).is_some_and(|s| s.contains(p)))
                && group.is_none_or(|g| m.groups.contains(g));
            if has_all {
                return Ok(());
            }
            let now = self.clock.now_ms();
            let mut next = m.clone();
            if next.state != TxnState::Ongoing {
                clear_transaction(&mut next, now);
                next.start_ms = now;
                next.state = TxnState::Ongoing;
            }
            for (t, p) in partitions {
                next.partitions.entry(t.clone()).or_default().insert(*p);
            }
            if let Some(g) = group {
                next.groups.insert(g.to_string());
            }
            next.update_ms = now;
            if self.registry.put(&next, Some(rev(&v))).await?.is_some() {
                return Ok(());
            }
        }
        Err(busy(transactional_id))
    }

    /// TxnOffsetCommit: offsets the group gets only when the transaction commits.
    pub(crate) async fn stage_offsets(
        &self,
        transactional_id: &str,
        producer: ProducerRef,
        group: &str,
        offsets: &[(String, i32, CommittedOffset)],
    ) -> Result<()> {
        let _serial = self.lock_for(transactional_id).lock().await;
        for _ in 0..CAS_ATTEMPTS {
            let v = self.current(transactional_id, producer).await?;
            let m = &v.value;
            if m.state != TxnState::Ongoing || !m.groups.contains(group) {
                return Err(Error::InvalidTxnState(format!(
                    "{transactional_id}: group {group} is not in an ongoing transaction \
                     (AddOffsetsToTxn first)"
                )));
            }
            let mut next = m.clone();
            let staged = next.pending_offsets.entry(group.to_string()).or_default();
            for (topic, partition, o) in offsets {
                staged.insert(
                    (topic.clone(), *partition),
                    TxnOffset {
                        offset: o.offset,
                        leader_epoch: o.leader_epoch,
                        metadata: o.metadata.clone(),
                        commit_ms: o.commit_ms,
                    },
                );
            }
            next.update_ms = self.clock.now_ms();
            if self.registry.put(&next, Some(rev(&v))).await?.is_some() {
                return Ok(());
            }
        }
        Err(busy(transactional_id))
    }

    /// EndTxn: commits or aborts the producer's transaction, markers and offsets included,
    /// before answering. A retried EndTxn of a finished transaction succeeds again. Returns the
    /// producer id and epoch to use next: under KIP-890 (`bump`, EndTxn v5) every commit or
    /// abort moves to a new epoch (its markers carry it), so a late request of this
    /// transaction is fenced instead of touching the next one; otherwise the same.
    pub(crate) async fn end(
        &self,
        transactional_id: &str,
        producer: ProducerRef,
        commit: bool,
        bump: bool,
    ) -> Result<ProducerRef> {
        let _serial = self.lock_for(transactional_id).lock().await;
        let (prepare, done) = if commit {
            (TxnState::PrepareCommit, TxnState::CompleteCommit)
        } else {
            (TxnState::PrepareAbort, TxnState::CompleteAbort)
        };
        for _ in 0..CAS_ATTEMPTS {
            let Some(v) = self.registry.get(transactional_id).await? else {
                return Err(Error::InvalidProducerIdMapping(format!(
                    "no transactional id {transactional_id}"
                )));
            };
            let m = &v.value;
            let current = ProducerRef {
                id: m.producer_id,
                epoch: m.producer_epoch,
            };
            let empty = matches!(
                m.state,
                TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort
            );
            let invalid = |s: &TxnState| {
                Err(Error::InvalidTxnState(format!(
                    "{transactional_id}: cannot {} in state {}",
                    if commit { "commit" } else { "abort" },
                    s.name()
                )))
            };
            if bump {
                // KIP-890 (Kafka's transaction version 2): the epoch moved on when this
                // transaction ended, so a retry of its EndTxn names the previous epoch.
                let retry = producer.id == m.last_producer_id
                    && producer.epoch == m.last_producer_epoch
                    && m.last_producer_epoch >= 0;
                let finished = matches!(
                    m.state,
                    TxnState::PrepareCommit
                        | TxnState::PrepareAbort
                        | TxnState::CompleteCommit
                        | TxnState::CompleteAbort
                );
                if !(retry && finished) {
                    check_producer(m, producer)?;
                    if matches!(m.state, TxnState::PrepareCommit | TxnState::PrepareAbort) {
                        // The epoch of a transaction being ended was never given out.
                        return Err(Error::ProducerFenced(format!(
                            "{transactional_id}: epoch {} is ending",
                            producer.epoch
                        )));
                    }
                }
                match &m.state {
                    TxnState::Ongoing => {}
                    // The retry of this outcome: finish it if need be, answer the epoch.
                    s if retry && *s == prepare => {
                        self.complete(v).await?;
                        return Ok(current);
                    }
                    s if retry && *s == done => return Ok(current),
                    // Kafka: an abort with nothing open still ends the epoch (a producer
                    // that never sent, or one recovering); a commit of nothing is refused.
                    TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort
                        if !commit && !retry => {}
                    s => return invalid(s),
                }
            } else {
                check_producer(m, producer)?;
                match &m.state {
                    TxnState::Ongoing => {}
                    s if *s == prepare => {
                        self.complete(v).await?;
                        return Ok(current);
                    }
                    // A retry of the finished transaction (the same epoch).
                    s if *s == done => return Ok(current),
                    // Aborting with nothing added is a no-op (the producer may never have sent).
                    TxnState::Empty if !commit => return Ok(current),
                    s => return invalid(s),
                }
            }
            let mut next = m.clone();
            if bump {
                self.bump_epoch(&mut next).await?;
            }
            next.update_ms = self.clock.now_ms();
            next.state = if empty { done.clone() } else { prepare.clone() };
            if let Some(stored) = self.registry.put(&next, Some(rev(&v))).await? {
                if !empty {
                    self.complete(stored).await?;
                }
                return Ok(ProducerRef {
                    id: next.producer_id,
                    epoch: next.producer_epoch,
                });
            }
        }
        Err(busy(transactional_id))
    }

    /// Moves `m` to the next epoch of its producer id, or to a new producer id once the epochs
    /// are spent, remembering the previous ones (KIP-360/KIP-890 retries).
    async fn bump_epoch(&self, m: &mut TxnMeta) -> Result<()> {
        m.last_producer_id = m.producer_id;
        m.last_producer_epoch = m.producer_epoch;
        if m.producer_epoch >= MAX_EPOCH - 1 {
            m.producer_id = self.new_producer_id().await?;
            m.producer_epoch = 0;
        } else {
            m.producer_epoch += 1;
        }
        Ok(())
    }

    /// The stored state of `transactional_id`, checked against the producer naming it.
    async fn current(
        &self,
        transactional_id: &str,
        producer: ProducerRef,
    ) -> Result<Versioned<TxnMeta>> {
        let Some(v) = self.registry.get(transactional_id).await? else {
            return Err(Error::InvalidProducerIdMapping(format!(
                "no transactional id {transactional_id}"
            )));
        };
        check_producer(&v.value, producer)?;
        Ok(v)
    }

    /// Writes the markers of a transaction in PrepareCommit/PrepareAbort, commits its offsets
    /// on commit, and records it complete.
    async fn complete(&self, v: Versioned<TxnMeta>) -> Result<()> {
        let m = &v.value;
        let commit = match m.state {
            TxnState::PrepareCommit => true,
            TxnState::PrepareAbort => false,
            _ => return Ok(()),
        };
        markers::write(
            &self.host,
            markers::Marker {
                producer_id: m.producer_id,
                producer_epoch: m.producer_epoch,
                commit,
                coordinator_epoch: m.coordinator_epoch,
            },
            &m.partitions,
        )
        .await?;
        if commit {
            for (group, staged) in &m.pending_offsets {
                let offsets: Vec<(String, i32, CommittedOffset)> = staged
                    .iter()
                    .map(|((t, p), o)| {
                        (
                            t.clone(),
                            *p,
                            CommittedOffset {
                                offset: o.offset,
                                leader_epoch: o.leader_epoch,
                                metadata: o.metadata.clone(),
                                commit_ms: o.commit_ms,
                            },
                        )
                    })
                    .collect();
                self.groups.offsets.commit(group, &offsets).await?;
            }
        }
        let now = self.clock.now_ms();
        let mut next = m.clone();
        next.state = if commit {
            TxnState::CompleteCommit
        } else {
            TxnState::CompleteAbort
        };
        clear_transaction(&mut next, now);
        if self.registry.put(&next, Some(rev(&v))).await?.is_none() {
            // Someone else completed it (or moved on): fine if it is no longer prepared.
            if let Some(now_stored) = self.registry.get(&m.transactional_id).await?
                && now_stored.value.state == m.state
                && now_stored.value.producer_epoch == m.producer_epoch
            {
                return Err(busy(&m.transactional_id));
            }
        }
        debug!(
            transactional_id = %m.transactional_id,
            commit,
            partitions = m.partitions.values().map(BTreeSet::len).sum::<usize>(),
            "transaction completed"
        );
        Ok(())
    }

    /// Aborts an open transaction under a new epoch (its producer is fenced).
    async fn abort_with_bump(&self, v: Versioned<TxnMeta>, why: &str) -> Result<()> {
        let m = &v.value;
        let mut next = m.clone();
        if m.producer_epoch >= MAX_EPOCH {
            // No epoch left to fence with: abort under the current one.
            next.state = TxnState::PrepareAbort;
        } else {
            next.last_producer_id = m.producer_id;
            next.last_producer_epoch = m.producer_epoch;
            next.producer_epoch = m.producer_epoch + 1;
            next.state = TxnState::PrepareAbort;
        }
        next.update_ms = self.clock.now_ms();
        info!(
            transactional_id = %m.transactional_id,
            producer_id = m.producer_id,
            epoch = next.producer_epoch,
            why,
            "aborting transaction"
        );
        match self.registry.put(&next, Some(rev(&v))).await? {
            Some(stored) => self.complete(stored).await,
            None => Ok(()),
        }
    }

    /// One pass of the timer duties over the transactional ids this node coordinates.
    pub(crate) async fn check_timeouts(&self) -> Result<()> {
        let now = self.clock.now_ms();
        let stale_prepare = i64::try_from(self.config.abort_check_interval.as_millis())
            .unwrap_or(i64::MAX)
            .max(1000);
        let expiration = i64::try_from(self.config.id_expiration.as_millis()).unwrap_or(i64::MAX);
        for v in self.registry.list().await? {
            let id = v.value.transactional_id.clone();
            if !self.host.cluster.coordinates(&id) {
                continue;
            }
            let m = &v.value;
            let due = match m.state {
                TxnState::Ongoing => now > m.start_ms.saturating_add(i64::from(m.timeout_ms)),
                TxnState::PrepareCommit | TxnState::PrepareAbort => {
                    now > m.update_ms.saturating_add(stale_prepare)
                }
                TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort => {
                    now > m.update_ms.saturating_add(expiration)
                }
                _ => false,
            };
            if !due {
                continue;
            }
            let _serial = self.lock_for(&id).lock().await;
            // Re-read under the lock: a request may have moved it meanwhile.
            let Some(v) = self.registry.get(&id).await? else {
                continue;
            };
            let m = &v.value;
            let outcome = match m.state {
                TxnState::Ongoing if now > m.start_ms.saturating_add(i64::from(m.timeout_ms)) => {
                    self.abort_with_bump(v, "transaction.timeout.ms passed")
                        .await
                }
                TxnState::PrepareCommit | TxnState::PrepareAbort => self.complete(v).await,
                TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort
                    if now > m.update_ms.saturating_add(expiration) =>
                {
                    info!(transactional_id = %id, "transactional id expired");
                    self.registry
                        .delete(&id, rev(&v))
                        .await
                        .map(|_| ())
                        .map_err(Error::from)
                }
                _ => Ok(()),
            };
            if let Err(e) = outcome {
                warn!(transactional_id = %id, error = %e, "transaction timer duty failed; retrying later");
            }
        }
        Ok(())
    }
}

/// Runs the coordinator's timer duties until cancelled.
pub(crate) async fn run(coordinator: Arc<TxnCoordinator>, cancel: CancellationToken) {
    let mut tick = tokio::time::interval(coordinator.config.abort_check_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            () = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        if let Err(e) = coordinator.check_timeouts().await {
            warn!(error = %e, "transaction timeout check failed");
        }
    }
}

/// Forgets the finished transaction's partitions, groups and offsets. Its start time stays
/// (DescribeTransactions shows it after the end, as Kafka does) until the next transaction
/// starts or a new producer epoch begins.
fn clear_transaction(m: &mut TxnMeta, now: i64) {
    m.partitions.clear();
    m.groups.clear();
    m.pending_offsets.clear();
    m.update_ms = now;
}

/// Whether `producer` is the transactional id's current producer.
fn check_producer(m: &TxnMeta, producer: ProducerRef) -> Result<()> {
    if producer.id != m.producer_id {
        return Err(Error::InvalidProducerIdMapping(format!(
            "{}: producer id {} is not the current {}",
            m.transactional_id, producer.id, m.producer_id
        )));
    }
    if producer.epoch != m.producer_epoch {
        return Err(Error::ProducerFenced(format!(
            "{}: epoch {} is not the current {}",
            m.transactional_id, producer.epoch, m.producer_epoch
        )));
    }
    Ok(())
}

/// The revision to compare-and-swap against, as the registry takes it.
fn rev(v: &Versioned<TxnMeta>) -> i64 {
    i64::try_from(v.mod_revision).unwrap_or(i64::MAX)
}

fn busy(transactional_id: &str) -> Error {
    Error::ConcurrentTransactions(format!(
        "{transactional_id}: its state kept changing under this request"
    ))
}

/// Kafka answered PRODUCER_FENCED as INVALID_PRODUCER_EPOCH before these versions.
pub(crate) fn fenced_for_version(e: Error, version: i16, fenced_since: i16) -> Error {
    match e {
        Error::ProducerFenced(m) if version < fenced_since => Error::InvalidProducerEpoch(m),
        e => e,
    }
}
