//! Partition state: who leads each partition, at which epoch, and which replicas are in sync.
//!
//! Lifecycle: when a topic is created, the controller [creates](PartitionStateRegistry::create_missing)
//! one [`PartitionState`] per partition (create-only, so a retried or duplicated creation never
//! overwrites a state that has moved on). From then on every change (a new leader, an ISR
//! shrink or expand) is a [compare-and-swap](PartitionStateRegistry::cas) on the key's mod
//! revision, guarded by the controller's own key, so a deposed controller cannot write. When
//! the topic is deleted, its states go with it ([`delete_topic`](PartitionStateRegistry::delete_topic)).
//!
//! Keys: `/tierlog/partitions/<topic id, simple hex>/<partition, 10 digits>` → JSON
//! [`PartitionState`], so byte order is (topic id, partition) order.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::de::DeserializeOwned;

use crate::error::{Error, Result};
use crate::registry::{MAX_CAS_ATTEMPTS, decode_json, encode_json};
use crate::store::{Compare, KeyValue, MetadataStore, Op};
use crate::types::{LeaderEpoch, NodeId, TopicId};

/// Where partition states live: `/tierlog/partitions/<topic id>/<partition>`.
pub const PARTITIONS_PREFIX: &str = "/tierlog/partitions/";

/// The most puts [`PartitionStateRegistry::create_missing`] puts in one transaction: etcd's
/// default `--max-txn-ops` is 128, and each put comes with a compare.
const MAX_CREATES_PER_TXN: usize = 64;

/// Transactions [`PartitionStateRegistry::cas_many`] keeps in flight at once.
const CONCURRENT_TXNS: usize = 8;

/// A value as stored, with the mod revision to compare-and-swap against.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Versioned<T> {
    /// The decoded value.
    pub value: T,
    /// The revision that last wrote it (see [`KeyValue::mod_revision`]).
    pub mod_revision: u64,
}

/// Decodes a JSON value with its mod revision.
pub(crate) fn decode_versioned<T: DeserializeOwned>(kv: &KeyValue) -> Result<Versioned<T>> {
    Ok(Versioned {
        value: decode_json(kv)?,
        mod_revision: kv.mod_revision,
    })
}

/// One partition's leadership and replica state.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PartitionState {
    /// The topic's id.
    pub topic_id: TopicId,
    /// The partition index, not negative.
    pub partition: i32,
    /// The assigned replicas, preferred leader first; not empty, no duplicates.
    pub replicas: Vec<NodeId>,
    /// The leader, one of `replicas`; -1 when there is none (offline).
    pub leader: NodeId,
    /// Bumped on every leader change; requests from an older epoch are fenced.
    pub leader_epoch: LeaderEpoch,
    /// The in-sync replicas, a subset of `replicas`.
    pub isr: Vec<NodeId>,
    /// Bumped on every change of any field.
    pub partition_epoch: i32,
    /// Replicas a reassignment is adding: in `replicas`, catching up, not yet part of the
    /// assignment it started from. Empty when no reassignment is in progress.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub adding_replicas: Vec<NodeId>,
    /// Replicas a reassignment will remove once the added ones are in sync: in `replicas`
    /// until then.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removing_replicas: Vec<NodeId>,
    /// Replicas whose hot tier holds a quarantined range that no copy on them can replace
    /// (not in object storage): each replica adds and removes itself. Elections pass over
    /// them while another in-sync replica is clean, and a damaged leader hands leadership to
    /// a clean one, so that the damaged range is served from a good copy and repaired.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub damaged_replicas: Vec<NodeId>,
}

impl PartitionState {
    /// The leader value that means "no leader".
    pub const NO_LEADER: NodeId = -1;

    fn describe(&self) -> String {
        format!(
            "partition state {}/{}",
            self.topic_id.simple(),
            self.partition
        )
    }

    /// Checks the invariants every stored state keeps.
    fn validate(&self) -> Result<()> {
        let what = self.describe();
        if self.partition < 0 {
            return Err(Error::invalid(format!("{what}: partition is negative")));
        }
        if self.replicas.is_empty() {
            return Err(Error::invalid(format!("{what}: no replicas")));
        }
        let replicas: BTreeSet<NodeId> = self.replicas.iter().copied().collect();
        if replicas.len() != self.replicas.len() {
            return Err(Error::invalid(format!(
                "{what}: duplicate replicas {:?}",
                self.replicas
            )));
        }
        if self.leader != Self::NO_LEADER && !replicas.contains(&self.leader) {
            return Err(Error::invalid(format!(
                "{what}: leader {} is not one of the replicas {:?}",
                self.leader, self.replicas
            )));
        }
        if let Some(n) = self.isr.iter().find(|n| !replicas.contains(n)) {
            return Err(Error::invalid(format!(
                "{what}: in-sync replica {n} is not one of the replicas {:?}",
                self.replicas
            )));
        }
        let adding: BTreeSet<NodeId> = self.adding_replicas.iter().copied().collect();
        let removing: BTreeSet<NodeId> = self.removing_replicas.iter().copied().collect();
        if adding.len() != self.adding_replicas.len()
            || removing.len() != self.removing_replicas.len()
            || !adding.is_subset(&replicas)
            || !removing.is_subset(&replicas)
            || !adding.is_disjoint(&removing)
            || adding.len() >= replicas.len()
            || removing.len() >= replicas.len()
        {
            return Err(Error::invalid(format!(
                "{what}: adding {:?} and removing {:?} must be distinct replicas of {:?}, \
                 leaving some of them in both assignments",
                self.adding_replicas, self.removing_replicas, self.replicas
            )));
        }
        if let Some(n) = self.damaged_replicas.iter().find(|n| !replicas.contains(n)) {
            return Err(Error::invalid(format!(
                "{what}: damaged replica {n} is not one of the replicas {:?}",
                self.replicas
            )));
        }
        Ok(())
    }

    /// Whether replica `id` is marked damaged (see `damaged_replicas`).
    pub fn is_damaged(&self, id: NodeId) -> bool {
        self.damaged_replicas.contains(&id)
    }

    /// The replica to lead, in preferred order, among those `eligible` accepts: a clean one
    /// (not in `damaged_replicas`) before a damaged one.
    pub fn choose_leader(&self, eligible: impl Fn(NodeId) -> bool) -> Option<NodeId> {
        let mut ok = self.replicas.iter().copied().filter(|r| eligible(*r));
        let first = ok.next()?;
        if !self.is_damaged(first) {
            return Some(first);
        }
        Some(ok.find(|r| !self.is_damaged(*r)).unwrap_or(first))
    }

    /// Whether a reassignment is in progress.
    pub fn is_reassigning(&self) -> bool {
        !self.adding_replicas.is_empty() || !self.removing_replicas.is_empty()
    }

    /// The assignment a reassignment moves to (the replicas without those it removes), in
    /// order; the replicas when none is in progress.
    pub fn target_replicas(&self) -> Vec<NodeId> {
        self.replicas
            .iter()
            .copied()
            .filter(|r| !self.removing_replicas.contains(r))
            .collect()
    }

    /// The assignment a reassignment started from (the replicas without those it adds).
    pub fn original_replicas(&self) -> Vec<NodeId> {
        self.replicas
            .iter()
            .copied()
            .filter(|r| !self.adding_replicas.contains(r))
            .collect()
    }

    /// Checks that `next` may replace `self`: same partition, epochs never go back, a new
    /// leader comes with a new leader epoch and any change with a new partition epoch.
    fn validate_transition(&self, next: &PartitionState) -> Result<()> {
        let what = self.describe();
        if (next.topic_id, next.partition) != (self.topic_id, self.partition) {
            return Err(Error::invalid(format!(
                "{what}: an update may not change the topic id or partition (got {})",
                next.describe()
            )));
        }
        if next.leader_epoch < self.leader_epoch || next.partition_epoch < self.partition_epoch {
            return Err(Error::invalid(format!(
                "{what}: epochs may not go back (leader epoch {} -> {}, partition epoch {} -> {})",
                self.leader_epoch, next.leader_epoch, self.partition_epoch, next.partition_epoch
            )));
        }
        if next.leader != self.leader && next.leader_epoch == self.leader_epoch {
            return Err(Error::invalid(format!(
                "{what}: leader {} -> {} without a new leader epoch",
                self.leader, next.leader
            )));
        }
        if next != self && next.partition_epoch == self.partition_epoch {
            return Err(Error::invalid(format!(
                "{what}: changed without a new partition epoch"
            )));
        }
        Ok(())
    }
}

/// Partition leadership and ISR, under `/tierlog/partitions/`.
///
/// ```
/// use std::sync::Arc;
/// use tierlog_metadata::{MemoryStore, PartitionState, PartitionStateRegistry, TopicId};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> tierlog_metadata::Result<()> {
/// let states = PartitionStateRegistry::new(Arc::new(MemoryStore::new()));
/// let topic_id = TopicId::new_v4();
/// let initial = PartitionState {
///     topic_id,
///     partition: 0,
///     replicas: vec![1, 2, 3],
///     leader: 1,
///     leader_epoch: 0,
///     isr: vec![1, 2, 3],
///     partition_epoch: 0,
///     adding_replicas: Vec::new(),
///     removing_replicas: Vec::new(),
///     damaged_replicas: Vec::new(),
/// };
/// assert_eq!(states.create_missing(&[initial.clone()], &[]).await?, 1);
/// assert_eq!(states.create_missing(&[initial.clone()], &[]).await?, 0);
///
/// // Node 1 fails: node 2 takes over at a new epoch.
/// let current = states.get(topic_id, 0).await?.expect("created");
/// let next = PartitionState {
///     leader: 2,
///     leader_epoch: 1,
///     isr: vec![2, 3],
///     partition_epoch: 1,
///     ..current.value.clone()
/// };
/// assert!(states.cas(&current, &next, &[]).await?.is_some());
/// // A second writer working from the same read loses.
/// assert_eq!(states.cas(&current, &next, &[]).await?, None);
/// assert_eq!(states.list_topic(topic_id).await?[0].value, next);
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct PartitionStateRegistry {
    store: Arc<dyn MetadataStore>,
}

impl PartitionStateRegistry {
    /// A registry over `store`.
    pub fn new(store: Arc<dyn MetadataStore>) -> Self {
        Self { store }
    }

    /// Key: `/tierlog/partitions/<topic_id simple hex>/<partition zero-padded to 10>`.
    pub fn key(topic_id: TopicId, partition: i32) -> String {
        format!("{}{partition:010}", Self::topic_prefix(topic_id))
    }

    fn topic_prefix(topic_id: TopicId) -> String {
        format!("{PARTITIONS_PREFIX}{}/", topic_id.simple())
    }

    /// Creates the states that do not exist yet (create-only; existing ones are left alone),
    /// in transactions of at most 64 puts, each put with its create-only compare. `guard`
    /// compares are added to every transaction (e.g. "the controller key still has this mod
    /// revision"). Returns how many were created.
    ///
    /// Not atomic across transactions: a failure part-way leaves the earlier ones applied, and
    /// calling again finishes the job. States created by someone else meanwhile are skipped.
    /// If nothing is missing, nothing is written and the guard is not checked.
    ///
    /// [`ErrorKind::Conflict`](crate::ErrorKind::Conflict) (naming the failed compare) if a
    /// guard fails; [`ErrorKind::Invalid`](crate::ErrorKind::Invalid) if a state breaks an
    /// invariant or two states name one partition.
    pub async fn create_missing(
        &self,
        states: &[PartitionState],
        guard: &[Compare],
    ) -> Result<usize> {
        let mut by_key = BTreeMap::new();
        for state in states {
            state.validate()?;
            if by_key
                .insert(Self::key(state.topic_id, state.partition), state)
                .is_some()
            {
                return Err(Error::invalid(format!(
                    "{} is given twice",
                    state.describe()
                )));
            }
        }
        // One list per topic tells which states exist already.
        let topics: BTreeSet<TopicId> = states.iter().map(|s| s.topic_id).collect();
        for topic_id in topics {
            for kv in self.store.list(&Self::topic_prefix(topic_id)).await? {
                by_key.remove(&kv.key);
            }
        }
        let missing: Vec<(String, &PartitionState)> = by_key.into_iter().collect();
        use futures::{StreamExt, TryStreamExt};
        let pending: Vec<_> = missing
            .chunks(MAX_CREATES_PER_TXN)
            .map(|chunk| self.create_chunk(chunk, guard))
            .collect();
        let created: Vec<usize> = futures::stream::iter(pending)
            .buffered(CONCURRENT_TXNS)
            .try_collect()
            .await?;
        Ok(created.into_iter().sum())
    }

    /// Creates the absent states of `chunk` in one transaction, retrying without the ones
    /// another writer created meanwhile.
    async fn create_chunk(
        &self,
        chunk: &[(String, &PartitionState)],
        guard: &[Compare],
    ) -> Result<usize> {
        let mut pending = chunk.to_vec();
        for _ in 0..MAX_CAS_ATTEMPTS {
            if pending.is_empty() {
                return Ok(0);
            }
            let mut compares = guard.to_vec();
            let mut ops = Vec::with_capacity(pending.len());
            for (key, state) in &pending {
                compares.push(Compare::absent(key));
                ops.push(Op::put(key, encode_json(key, state)?));
            }
            if self.store.txn(compares, ops).await?.succeeded {
                return Ok(pending.len());
            }
            // Either a guard failed (the caller lost its right to write) or someone else
            // created some of these states: tell which.
            self.check_guard(guard).await?;
            let mut still_missing = Vec::with_capacity(pending.len());
            for (key, state) in pending {
                if self.store.get(&key).await?.is_none() {
                    still_missing.push((key, state));
                }
            }
            tracing::trace!(
                left = still_missing.len(),
                "partition state creation raced another writer; retrying the rest"
            );
            pending = still_missing;
        }
        Err(Error::internal(
            "partition state creation kept racing other writers",
        ))
    }

    /// Err(kind Conflict) naming the first compare of `guard` that does not hold now.
    async fn check_guard(&self, guard: &[Compare]) -> Result<()> {
        for compare in guard {
            let current = self.store.get(&compare.key).await?;
            if !compare.expect.holds(current.as_ref()) {
                return Err(Error::Conflict {
                    key: compare.key.clone(),
                    expected: compare.expect,
                });
            }
        }
        Ok(())
    }

    /// The partition's state and its mod revision, if it exists.
    pub async fn get(
        &self,
        topic_id: TopicId,
        partition: i32,
    ) -> Result<Option<Versioned<PartitionState>>> {
        match self.store.get(&Self::key(topic_id, partition)).await? {
            Some(kv) => decode_state(&kv).map(Some),
            None => Ok(None),
        }
    }

    /// Every partition state, sorted by (topic id, partition).
    pub async fn list(&self) -> Result<Vec<Versioned<PartitionState>>> {
        self.list_prefix(PARTITIONS_PREFIX).await
    }

    /// Every partition state of one topic, sorted by partition.
    pub async fn list_topic(&self, topic_id: TopicId) -> Result<Vec<Versioned<PartitionState>>> {
        self.list_prefix(&Self::topic_prefix(topic_id)).await
    }

    async fn list_prefix(&self, prefix: &str) -> Result<Vec<Versioned<PartitionState>>> {
        let mut states = self
            .store
            .list(prefix)
            .await?
            .iter()
            .map(decode_state)
            .collect::<Result<Vec<_>>>()?;
        // Keys already sort this way (fixed-width hex, zero-padded partitions); sorting the
        // decoded values does not rely on it.
        states.sort_by_key(|s| (s.value.topic_id, s.value.partition));
        Ok(states)
    }

    /// Compare-and-swap: writes `new` only if the key's mod revision is still
    /// `current.mod_revision` and every `guard` holds. Ok(Some(new revision)) on success,
    /// Ok(None) if anything changed meanwhile (re-read and decide again).
    ///
    /// [`ErrorKind::Invalid`](crate::ErrorKind::Invalid) if `new` breaks an invariant or is no
    /// valid successor of `current.value`: another partition, an epoch going back, a new
    /// leader without a new leader epoch, or any change without a new partition epoch.
    pub async fn cas(
        &self,
        current: &Versioned<PartitionState>,
        new: &PartitionState,
        guard: &[Compare],
    ) -> Result<Option<u64>> {
        new.validate()?;
        current.value.validate_transition(new)?;
        let key = Self::key(new.topic_id, new.partition);
        let value = encode_json(&key, new)?;
        let mut compares = Vec::with_capacity(guard.len() + 1);
        compares.push(Compare::mod_revision(&key, current.mod_revision));
        compares.extend_from_slice(guard);
        let result = self.store.txn(compares, vec![Op::put(&key, value)]).await?;
        Ok(result.succeeded.then_some(result.revision))
    }

    /// Many compare-and-swaps, [`MAX_CREATES_PER_TXN`] to a transaction: each chunk is written
    /// at once if none of its states changed meanwhile, else state by state with
    /// [`cas`](Self::cas) (those that changed are skipped: re-read and decide again). Returns,
    /// for each change, its new mod revision if it was written. Each change is validated as
    /// `cas` validates it.
    pub async fn cas_many(
        &self,
        changes: &[(Versioned<PartitionState>, PartitionState)],
        guard: &[Compare],
    ) -> Result<Vec<Option<u64>>> {
        use futures::{StreamExt, TryStreamExt};
        for (current, new) in changes {
            new.validate()?;
            current.value.validate_transition(new)?;
        }
        // A few transactions in flight at once: etcd commits concurrent ones together (one
        // raft round and one fsync for several), so a failover of thousands of partitions
        // is not a thousand sequential round trips.
        // The futures are built first: a stream mapping a borrowing closure makes callers'
        // futures fail the `Send` check (rust-lang/rust#102211).
        let pending: Vec<_> = changes
            .chunks(MAX_CREATES_PER_TXN)
            .map(|chunk| self.cas_chunk(chunk, guard))
            .collect();
        let chunks: Vec<Vec<Option<u64>>> = futures::stream::iter(pending)
            .buffered(CONCURRENT_TXNS)
            .try_collect()
            .await?;
        Ok(chunks.into_iter().flatten().collect())
    }

    /// One chunk of [`cas_many`](Self::cas_many): in one transaction, or one by one if any of
    /// its states changed.
    async fn cas_chunk(
        &self,
        chunk: &[(Versioned<PartitionState>, PartitionState)],
        guard: &[Compare],
    ) -> Result<Vec<Option<u64>>> {
        let mut compares = guard.to_vec();
        let mut ops = Vec::with_capacity(chunk.len());
        for (current, new) in chunk {
            let key = Self::key(new.topic_id, new.partition);
            compares.push(Compare::mod_revision(&key, current.mod_revision));
            ops.push(Op::put(&key, encode_json(&key, new)?));
        }
        let result = self.store.txn(compares, ops).await?;
        if result.succeeded {
            return Ok(vec![Some(result.revision); chunk.len()]);
        }
        let mut written = Vec::with_capacity(chunk.len());
        for (current, new) in chunk {
            written.push(self.cas(current, new, guard).await?);
        }
        Ok(written)
    }

    /// Decodes a state as stored (a listing's or a watch event's key-value), checking that it
    /// sits under its own key.
    pub fn decode(kv: &KeyValue) -> Result<Versioned<PartitionState>> {
        decode_state(kv)
    }

    /// The partition a state key names (a watch's delete event carries only the key).
    pub fn parse_key(key: &str) -> Option<(TopicId, i32)> {
        let (topic, partition) = key.strip_prefix(PARTITIONS_PREFIX)?.split_once('/')?;
        Some((TopicId::parse_str(topic).ok()?, partition.parse().ok()?))
    }

    /// Deletes the states of partitions `from..to` of a topic (a CreatePartitions rolled
    /// back), [`MAX_CREATES_PER_TXN`] to a transaction.
    pub async fn delete_partitions(&self, topic_id: TopicId, from: i32, to: i32) -> Result<()> {
        let keys: Vec<String> = (from..to).map(|p| Self::key(topic_id, p)).collect();
        for chunk in keys.chunks(MAX_CREATES_PER_TXN) {
            self.store
                .txn(Vec::new(), chunk.iter().map(Op::delete).collect())
                .await?;
        }
        Ok(())
    }

    /// Deletes every state of the topic (topic deletion), in one transaction.
    pub async fn delete_topic(&self, topic_id: TopicId) -> Result<()> {
        self.store
            .txn(
                Vec::new(),
                vec![Op::delete_prefix(Self::topic_prefix(topic_id))],
            )
            .await?;
        Ok(())
    }
}

/// Decodes a stored state and checks that it sits under its own key.
fn decode_state(kv: &KeyValue) -> Result<Versioned<PartitionState>> {
    let state: Versioned<PartitionState> = decode_versioned(kv)?;
    let expected = PartitionStateRegistry::key(state.value.topic_id, state.value.partition);
    if kv.key != expected {
        return Err(Error::Corrupt {
            key: kv.key.clone(),
            message: format!("holds the state of `{expected}`"),
        });
    }
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance;
    use crate::embedded::EmbeddedStore;
    use crate::memory::MemoryStore;

    #[test]
    fn keys_parse_back() {
        let id = uuid::Uuid::new_v4();
        let key = PartitionStateRegistry::key(id, 4711);
        assert_eq!(PartitionStateRegistry::parse_key(&key), Some((id, 4711)));
        assert_eq!(
            PartitionStateRegistry::parse_key("/tierlog/partitions/x/1"),
            None
        );
        assert_eq!(PartitionStateRegistry::parse_key("/tierlog/nodes/1"), None);
    }

    #[tokio::test]
    async fn create_missing_memory() {
        conformance::partition_states_create(Arc::new(MemoryStore::new())).await;
    }

    #[tokio::test]
    async fn create_missing_embedded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = EmbeddedStore::open(&dir.path().join("metadata.redb")).expect("open");
        conformance::partition_states_create(Arc::new(store)).await;
    }

    #[tokio::test]
    async fn cas_list_delete_memory() {
        conformance::partition_states_cas_list_delete(Arc::new(MemoryStore::new())).await;
    }

    #[tokio::test]
    async fn cas_list_delete_embedded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = EmbeddedStore::open(&dir.path().join("metadata.redb")).expect("open");
        conformance::partition_states_cas_list_delete(Arc::new(store)).await;
    }

    #[test]
    fn key_layout() {
        let t = TopicId::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef);
        assert_eq!(
            PartitionStateRegistry::key(t, 7),
            "/tierlog/partitions/0123456789abcdef0123456789abcdef/0000000007"
        );
    }
}
