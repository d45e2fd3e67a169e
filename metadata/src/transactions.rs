//! Transaction state: one [`TxnMeta`] per transactional id (Kafka's `__transaction_state`).
//!
//! Lifecycle: InitProducerId with a transactional id creates the entry
//! ([`put`](TransactionRegistry::put) with `None`, create-only) or bumps its producer epoch;
//! AddPartitionsToTxn, AddOffsetsToTxn, TxnOffsetCommit and EndTxn move it through the
//! [`TxnState`]s. Every change is a read-modify-write: [`get`](TransactionRegistry::get) the
//! [`Versioned`] value, decide, then `put` it with the mod revision that was read, which fails
//! (`Ok(None)`) if anyone else wrote in between, so two coordinators can never both act on one
//! transaction. Expired transactional ids are [deleted](TransactionRegistry::delete) the same
//! way, comparing the revision that was judged expired.
//!
//! Keys: `/tierlog/transactions/<transactional id, percent-encoded>` → JSON [`TxnMeta`].
//! Transactional ids are arbitrary non-empty strings, so `%` becomes `%25` and `/` becomes
//! `%2F` (as group ids under `/tierlog/groups/`): every id is one key segment and no two ids
//! share a key.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::partition_state::{Versioned, decode_versioned};
use crate::store::{Compare, KeyValue, MetadataStore, Op};

/// Where transaction states live: `/tierlog/transactions/<percent-encoded transactional id>`.
pub const TRANSACTIONS_PREFIX: &str = "/tierlog/transactions/";

/// A transaction's state, as Kafka's transaction coordinator keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TxnState {
    /// No transaction in progress (after InitProducerId, or once one has completed long ago).
    Empty,
    /// Partitions or offsets have been added; the producer is writing.
    Ongoing,
    /// EndTxn(commit) accepted; commit markers are being written.
    PrepareCommit,
    /// EndTxn(abort) accepted, or the transaction timed out; abort markers are being written.
    PrepareAbort,
    /// Commit markers written everywhere.
    CompleteCommit,
    /// Abort markers written everywhere.
    CompleteAbort,
    /// The producer epoch is being bumped to fence a zombie while a transaction is open; the
    /// ongoing transaction will be aborted.
    PrepareEpochFence,
    /// The transactional id expired and is being removed.
    Dead,
}

impl TxnState {
    /// Every state, in the order of the lifecycle.
    pub const ALL: [TxnState; 8] = [
        TxnState::Empty,
        TxnState::Ongoing,
        TxnState::PrepareCommit,
        TxnState::PrepareAbort,
        TxnState::CompleteCommit,
        TxnState::CompleteAbort,
        TxnState::PrepareEpochFence,
        TxnState::Dead,
    ];

    /// Kafka's name for the state, as `kafka-transactions.sh describe` and
    /// DescribeTransactions/ListTransactions print it.
    ///
    /// ```
    /// assert_eq!(tierlog_metadata::TxnState::PrepareCommit.name(), "PrepareCommit");
    /// ```
    pub fn name(&self) -> &'static str {
        match self {
            TxnState::Empty => "Empty",
            TxnState::Ongoing => "Ongoing",
            TxnState::PrepareCommit => "PrepareCommit",
            TxnState::PrepareAbort => "PrepareAbort",
            TxnState::CompleteCommit => "CompleteCommit",
            TxnState::CompleteAbort => "CompleteAbort",
            TxnState::PrepareEpochFence => "PrepareEpochFence",
            TxnState::Dead => "Dead",
        }
    }
}

/// An offset committed inside a transaction (TxnOffsetCommit): it becomes the group's
/// committed offset only when the transaction commits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnOffset {
    /// The offset to commit.
    pub offset: i64,
    /// The leader epoch of the last consumed record, -1 if unknown.
    pub leader_epoch: i32,
    /// The client's metadata string.
    pub metadata: Option<String>,
    /// When it was committed, milliseconds since the Unix epoch.
    pub commit_ms: i64,
}

/// One transactional id's state: its producer, its epoch and the transaction in progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnMeta {
    /// The transactional id (`transactional.id`), not empty; names the key.
    pub transactional_id: String,
    /// The producer id currently bound to the transactional id.
    pub producer_id: i64,
    /// Its epoch; requests with an older one are fenced.
    pub producer_epoch: i16,
    /// The producer id before the last epoch overflow or bump (KIP-360 / KIP-890), -1 when none.
    pub last_producer_id: i64,
    /// The epoch that went with `last_producer_id`, -1 when none.
    pub last_producer_epoch: i16,
    /// The transaction timeout the producer asked for (`transaction.timeout.ms`).
    pub timeout_ms: i32,
    /// Where the transaction is.
    pub state: TxnState,
    /// Topic → partitions in the ongoing transaction.
    pub partitions: BTreeMap<String, BTreeSet<i32>>,
    /// Consumer groups added with AddOffsetsToTxn.
    pub groups: BTreeSet<String>,
    /// Offsets committed in the transaction (TxnOffsetCommit), visible to the group only on
    /// commit: group → (topic, partition) → offset. Stored in JSON as group → list of
    /// `{topic, partition, offset, leader_epoch, metadata, commit_ms}` (JSON map keys must be
    /// strings).
    #[serde(with = "pending_offsets_json")]
    pub pending_offsets: BTreeMap<String, BTreeMap<(String, i32), TxnOffset>>,
    /// When the ongoing transaction started, milliseconds since the Unix epoch; -1 when none.
    pub start_ms: i64,
    /// When this state was last changed, milliseconds since the Unix epoch.
    pub update_ms: i64,
    /// The client's transaction version: 0 or 1 classic, 2 for KIP-890 (TV2).
    pub transaction_version: i16,
    /// Bumped each time a coordinator takes over or restarts handling of this id (it fences
    /// markers written by an earlier one); starts at 0.
    pub coordinator_epoch: i32,
}

/// JSON for [`TxnMeta::pending_offsets`]: the inner map's `(topic, partition)` keys cannot be
/// JSON object keys, so each group's offsets are a list of entries.
mod pending_offsets_json {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::TxnOffset;

    type PendingOffsets = BTreeMap<String, BTreeMap<(String, i32), TxnOffset>>;

    #[derive(Serialize)]
    struct EntryRef<'a> {
        topic: &'a str,
        partition: i32,
        #[serde(flatten)]
        offset: &'a TxnOffset,
    }

    #[derive(Deserialize)]
    struct Entry {
        topic: String,
        partition: i32,
        #[serde(flatten)]
        offset: TxnOffset,
    }

    pub(super) fn serialize<S: Serializer>(
        offsets: &PendingOffsets,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.collect_map(offsets.iter().map(|(group, partitions)| {
            let entries: Vec<EntryRef<'_>> = partitions
                .iter()
                .map(|((topic, partition), offset)| EntryRef {
                    topic,
                    partition: *partition,
                    offset,
                })
                .collect();
            (group, entries)
        }))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<PendingOffsets, D::Error> {
        let groups = BTreeMap::<String, Vec<Entry>>::deserialize(deserializer)?;
        let mut offsets = PendingOffsets::new();
        for (group, entries) in groups {
            let mut partitions = BTreeMap::new();
            for entry in entries {
                let tp = (entry.topic, entry.partition);
                if partitions.contains_key(&tp) {
                    return Err(serde::de::Error::custom(format!(
                        "pending offset of group `{group}` for {}/{} is given twice",
                        tp.0, tp.1
                    )));
                }
                partitions.insert(tp, entry.offset);
            }
            offsets.insert(group, partitions);
        }
        Ok(offsets)
    }
}

/// Percent-encodes the two characters that would break a key segment: `%` and `/`.
fn escape(s: &str) -> String {
    s.replace('%', "%25").replace('/', "%2F")
}

/// A stored mod revision from the `i64` the API takes (Kafka-side code counts in `i64`).
fn revision(rev: i64) -> Result<u64> {
    u64::try_from(rev).map_err(|_| Error::invalid(format!("mod revision is negative: {rev}")))
}

/// Transaction states by transactional id, under `/tierlog/transactions/`.
///
/// ```
/// use std::collections::{BTreeMap, BTreeSet};
/// use std::sync::Arc;
/// use tierlog_metadata::{MemoryStore, TransactionRegistry, TxnMeta, TxnState};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> tierlog_metadata::Result<()> {
/// let txns = TransactionRegistry::new(Arc::new(MemoryStore::new()));
/// let meta = TxnMeta {
///     transactional_id: "orders/eu".into(),
///     producer_id: 7,
///     producer_epoch: 0,
///     last_producer_id: -1,
///     last_producer_epoch: -1,
///     timeout_ms: 60_000,
///     state: TxnState::Empty,
///     partitions: BTreeMap::new(),
///     groups: BTreeSet::new(),
///     pending_offsets: BTreeMap::new(),
///     start_ms: -1,
///     update_ms: 0,
///     transaction_version: 2,
///     coordinator_epoch: 0,
/// };
/// // Create-only: a second InitProducerId racing this one gets None and re-reads.
/// let created = txns.put(&meta, None).await?.expect("created");
/// assert_eq!(txns.put(&meta, None).await?, None);
///
/// // Read-modify-write on the mod revision that was read.
/// let ongoing = TxnMeta { state: TxnState::Ongoing, start_ms: 5, ..meta.clone() };
/// let rev = created.mod_revision as i64;
/// let updated = txns.put(&ongoing, Some(rev)).await?.expect("unchanged since read");
/// assert_eq!(txns.put(&ongoing, Some(rev)).await?, None, "stale revision");
/// assert_eq!(txns.get("orders/eu").await?, Some(updated.clone()));
///
/// assert!(!txns.delete("orders/eu", rev).await?);
/// assert!(txns.delete("orders/eu", updated.mod_revision as i64).await?);
/// assert!(txns.list().await?.is_empty());
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct TransactionRegistry {
    store: Arc<dyn MetadataStore>,
}

impl TransactionRegistry {
    /// A registry over `store`.
    pub fn new(store: Arc<dyn MetadataStore>) -> Self {
        Self { store }
    }

    /// Key: `/tierlog/transactions/<transactional id with % → %25 and / → %2F>`.
    pub fn key(transactional_id: &str) -> String {
        format!("{TRANSACTIONS_PREFIX}{}", escape(transactional_id))
    }

    /// The transactional id's state and its mod revision, if it exists. `None` for the empty
    /// id, which can never be stored.
    pub async fn get(&self, transactional_id: &str) -> Result<Option<Versioned<TxnMeta>>> {
        if transactional_id.is_empty() {
            return Ok(None);
        }
        match self.store.get(&Self::key(transactional_id)).await? {
            Some(kv) => decode_meta(&kv).map(Some),
            None => Ok(None),
        }
    }

    /// Compare-and-swap on `meta.transactional_id`'s key: with `None`, creates it only if
    /// absent; with `Some(rev)`, writes only if the stored value's mod revision is still `rev`
    /// (so never if it is absent). Ok(Some(the value as stored, with its new mod revision)) on
    /// success, Ok(None) if the comparison failed: re-read and decide again.
    ///
    /// [`ErrorKind::Invalid`](crate::ErrorKind::Invalid) for an empty transactional id or a
    /// negative revision.
    pub async fn put(
        &self,
        meta: &TxnMeta,
        expected_mod_revision: Option<i64>,
    ) -> Result<Option<Versioned<TxnMeta>>> {
        if meta.transactional_id.is_empty() {
            return Err(Error::invalid("transactional id is empty"));
        }
        let key = Self::key(&meta.transactional_id);
        let compare = match expected_mod_revision {
            None => Compare::absent(&key),
            Some(rev) => Compare::mod_revision(&key, revision(rev)?),
        };
        let value = crate::registry::encode_json(&key, meta)?;
        let result = self
            .store
            .txn(vec![compare], vec![Op::put(&key, value)])
            .await?;
        Ok(result.succeeded.then(|| Versioned {
            value: meta.clone(),
            mod_revision: result.revision,
        }))
    }

    /// Deletes the transactional id's state only if its mod revision is still
    /// `expected_mod_revision`. Returns whether it deleted (false if the state is absent or
    /// has changed since it was read).
    ///
    /// [`ErrorKind::Invalid`](crate::ErrorKind::Invalid) for a negative revision.
    pub async fn delete(&self, transactional_id: &str, expected_mod_revision: i64) -> Result<bool> {
        let rev = revision(expected_mod_revision)?;
        if transactional_id.is_empty() {
            return Ok(false);
        }
        let key = Self::key(transactional_id);
        let result = self
            .store
            .txn(
                vec![Compare::mod_revision(&key, rev)],
                vec![Op::delete(&key)],
            )
            .await?;
        Ok(result.succeeded)
    }

    /// Every transactional id's state, sorted by transactional id.
    pub async fn list(&self) -> Result<Vec<Versioned<TxnMeta>>> {
        let mut metas = self
            .store
            .list(TRANSACTIONS_PREFIX)
            .await?
            .iter()
            .map(decode_meta)
            .collect::<Result<Vec<_>>>()?;
        // Keys sort by the encoded id; sort by the id itself.
        metas.sort_by(|a, b| a.value.transactional_id.cmp(&b.value.transactional_id));
        Ok(metas)
    }
}

/// Decodes a stored state and checks that it sits under its own key.
fn decode_meta(kv: &KeyValue) -> Result<Versioned<TxnMeta>> {
    let meta: Versioned<TxnMeta> = decode_versioned(kv)?;
    let expected = TransactionRegistry::key(&meta.value.transactional_id);
    if kv.key != expected {
        return Err(Error::Corrupt {
            key: kv.key.clone(),
            message: format!("holds the transaction state of `{expected}`"),
        });
    }
    Ok(meta)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance;
    use crate::embedded::EmbeddedStore;
    use crate::memory::MemoryStore;

    #[tokio::test]
    async fn transactions_memory() {
        conformance::transactions(Arc::new(MemoryStore::new())).await;
    }

    #[tokio::test]
    async fn transactions_embedded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = EmbeddedStore::open(&dir.path().join("metadata.redb")).expect("open");
        conformance::transactions(Arc::new(store)).await;
    }

    #[test]
    fn key_layout() {
        assert_eq!(
            TransactionRegistry::key("app-1"),
            "/tierlog/transactions/app-1"
        );
        assert_eq!(
            TransactionRegistry::key("a/b%2Fc"),
            "/tierlog/transactions/a%2Fb%252Fc"
        );
    }

    #[test]
    fn state_names_are_kafkas_and_the_json_names() {
        let all = [
            (TxnState::Empty, "Empty"),
            (TxnState::Ongoing, "Ongoing"),
            (TxnState::PrepareCommit, "PrepareCommit"),
            (TxnState::PrepareAbort, "PrepareAbort"),
            (TxnState::CompleteCommit, "CompleteCommit"),
            (TxnState::CompleteAbort, "CompleteAbort"),
            (TxnState::PrepareEpochFence, "PrepareEpochFence"),
            (TxnState::Dead, "Dead"),
        ];
        for (state, name) in all {
            assert_eq!(state.name(), name);
            let json = serde_json::to_string(&state).expect("encode");
            assert_eq!(json, format!("\"{name}\""));
            assert_eq!(
                serde_json::from_str::<TxnState>(&json).expect("decode"),
                state
            );
        }
    }

    /// The JSON shape of pending offsets, and a duplicate partition refused on decode.
    #[test]
    fn pending_offsets_json_shape() {
        let offset = TxnOffset {
            offset: 42,
            leader_epoch: 3,
            metadata: None,
            commit_ms: 9,
        };
        let pending = BTreeMap::from([(
            "g".to_owned(),
            BTreeMap::from([(("t".to_owned(), 1), offset)]),
        )]);
        let mut out = Vec::new();
        pending_offsets_json::serialize(&pending, &mut serde_json::Serializer::new(&mut out))
            .expect("encode");
        let entry = r#"{"topic":"t","partition":1,"offset":42,"leader_epoch":3,"metadata":null,"commit_ms":9}"#;
        assert_eq!(
            String::from_utf8(out).expect("utf8"),
            format!(r#"{{"g":[{entry}]}}"#)
        );
        let twice = format!(r#"{{"g":[{entry},{entry}]}}"#);
        let err =
            pending_offsets_json::deserialize(&mut serde_json::Deserializer::from_str(&twice))
                .expect_err("duplicate");
        assert!(err.to_string().contains("given twice"), "{err}");
    }
}
