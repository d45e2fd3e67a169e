//! The [`MetadataStore`] trait: a small, strongly consistent key-value store shaped like etcd's
//! data model.
//!
//! The store is a sorted map from string keys to byte values. Every change is stamped with a
//! store-wide *revision*, a counter that starts at 0 for an empty store and grows by one for each
//! transaction that changes at least one key (as etcd's does). Each key remembers the revision
//! that created it and the revision that last modified it; compare-and-swap is done on the
//! latter. All writes go through one primitive, [`MetadataStore::txn`]: "if every compare
//! holds, apply every op, atomically, under one new revision". Conveniences built from it live in
//! [`MetadataStoreExt`], implemented for every store, so a backend only implements four methods.
//!
//! Leases and watches (etcd's other two features) come with the etcd backend.

use std::fmt;

use bytes::Bytes;

use crate::error::{Error, Result};

/// One stored key, its value, and the revisions that created and last modified it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyValue {
    /// The key.
    pub key: String,
    /// The value, opaque to the store.
    pub value: Bytes,
    /// The revision of the transaction that created the key (reset when the key is deleted and
    /// put again).
    pub create_revision: u64,
    /// The revision of the transaction that last put the key. Use it with
    /// [`Precondition::ModRevision`] for compare-and-swap.
    pub mod_revision: u64,
}

/// What a [`Compare`] expects of its key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Precondition {
    /// Always holds.
    Any,
    /// Holds when the key does not exist: create-only writes.
    Absent,
    /// Holds when the key exists and was last modified at exactly this revision: the key is
    /// unchanged since it was read.
    ModRevision(u64),
}

impl fmt::Display for Precondition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Precondition::Any => f.write_str("any"),
            Precondition::Absent => f.write_str("absent"),
            Precondition::ModRevision(rev) => write!(f, "mod_revision={rev}"),
        }
    }
}

impl Precondition {
    /// Whether the precondition holds for `current`, the key's present state.
    pub fn holds(&self, current: Option<&KeyValue>) -> bool {
        match (self, current) {
            (Precondition::Any, _) => true,
            (Precondition::Absent, current) => current.is_none(),
            (Precondition::ModRevision(rev), Some(kv)) => kv.mod_revision == *rev,
            (Precondition::ModRevision(_), None) => false,
        }
    }
}

/// A condition on one key, checked at the start of a [`MetadataStore::txn`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Compare {
    /// The key to check.
    pub key: String,
    /// What it must satisfy.
    pub expect: Precondition,
}

impl Compare {
    /// `key` must satisfy `expect`.
    pub fn new(key: impl Into<String>, expect: Precondition) -> Self {
        Self {
            key: key.into(),
            expect,
        }
    }

    /// `key` must not exist.
    pub fn absent(key: impl Into<String>) -> Self {
        Self::new(key, Precondition::Absent)
    }

    /// `key` must exist, last modified at `revision`.
    pub fn mod_revision(key: impl Into<String>, revision: u64) -> Self {
        Self::new(key, Precondition::ModRevision(revision))
    }
}

/// A change applied by a successful [`MetadataStore::txn`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// Set `key` to `value`, creating it if absent.
    Put {
        /// The key; must not be empty.
        key: String,
        /// The new value.
        value: Bytes,
    },
    /// Remove `key` if present.
    Delete {
        /// The key; must not be empty.
        key: String,
    },
    /// Remove every key starting with `prefix`.
    DeletePrefix {
        /// The prefix; must not be empty (wiping the whole store is not an operation).
        prefix: String,
    },
}

impl Op {
    /// A [`Op::Put`].
    pub fn put(key: impl Into<String>, value: impl Into<Bytes>) -> Self {
        Op::Put {
            key: key.into(),
            value: value.into(),
        }
    }

    /// A [`Op::Delete`].
    pub fn delete(key: impl Into<String>) -> Self {
        Op::Delete { key: key.into() }
    }

    /// A [`Op::DeletePrefix`].
    pub fn delete_prefix(prefix: impl Into<String>) -> Self {
        Op::DeletePrefix {
            prefix: prefix.into(),
        }
    }
}

/// The outcome of a [`MetadataStore::txn`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxnResult {
    /// Whether every compare held (and so every op was applied).
    pub succeeded: bool,
    /// The store's revision once the transaction finished: the new revision if it changed
    /// anything, else the revision it observed.
    pub revision: u64,
}

/// A strongly consistent, revisioned key-value store: the cluster's source of truth.
///
/// # Contract
///
/// Every backend (in-memory, embedded, etcd) passes the same conformance suite. Specifically:
///
/// - **Linearizable.** Every call takes effect at one instant between its start and its
///   return; a read sees every write that returned before the read started.
/// - **Atomic transactions.** [`txn`](Self::txn) checks all compares and applies all ops as
///   one step. If any compare fails, nothing is applied and `succeeded` is false (this is not
///   an error). Ops are validated first: empty keys or prefixes, two puts of one key, or a put
///   of a key that a delete in the same transaction also covers are
///   [`ErrorKind::Invalid`](crate::ErrorKind::Invalid) (as etcd rejects them), whatever the
///   compares say.
/// - **Revisions.** The store revision starts at 0 and grows by exactly one per transaction
///   that changes something (a put, or a delete that removed a key). A transaction that
///   changes nothing leaves it as is. So every write is ordered and `mod_revision`s strictly
///   increase.
/// - **Durable.** A backend that claims durability (embedded, etcd) has persisted a
///   transaction before `txn` returns.
/// - **Ordering.** [`list`](Self::list) returns keys in ascending byte order.
/// - **Cancel safety.** Reads are cancel-safe. A cancelled `txn` may or may not have been
///   applied (as with any remote write); re-read to find out. It is never half-applied.
#[async_trait::async_trait]
pub trait MetadataStore: Send + Sync + fmt::Debug + 'static {
    /// The key's current value and revisions, or `None` if absent.
    async fn get(&self, key: &str) -> Result<Option<KeyValue>>;

    /// Every key starting with `prefix` (all keys for `""`), sorted by key, from one
    /// consistent snapshot.
    async fn list(&self, prefix: &str) -> Result<Vec<KeyValue>>;

    /// Atomic: if every compare holds, apply all ops under one new revision. Linearizable.
    ///
    /// See the trait docs for validation and revision rules.
    async fn txn(&self, compares: Vec<Compare>, ops: Vec<Op>) -> Result<TxnResult>;

    /// The store's current revision: the revision of the last change, 0 if none.
    async fn current_revision(&self) -> Result<u64>;
}

/// Conveniences over [`MetadataStore::txn`], implemented for every store (including
/// `dyn MetadataStore`).
///
/// ```
/// use std::sync::Arc;
/// use bytes::Bytes;
/// use tierlog_metadata::{ErrorKind, MemoryStore, MetadataStore, MetadataStoreExt, Precondition};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> tierlog_metadata::Result<()> {
/// let store: Arc<dyn MetadataStore> = Arc::new(MemoryStore::new());
///
/// // Create-only: the first writer wins, the second gets a Conflict.
/// let rev = store.put_if("/leader", Bytes::from("node-1"), Precondition::Absent).await?;
/// let err = store.put_if("/leader", Bytes::from("node-2"), Precondition::Absent).await.unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::Conflict);
///
/// // Compare-and-swap on the revision we read.
/// store.put_if("/leader", Bytes::from("node-2"), Precondition::ModRevision(rev)).await?;
/// assert_eq!(store.get("/leader").await?.unwrap().value, "node-2");
///
/// assert!(store.delete("/leader").await?);
/// assert!(!store.delete("/leader").await?);
/// # Ok(())
/// # }
/// ```
#[async_trait::async_trait]
pub trait MetadataStoreExt: MetadataStore {
    /// Sets `key` unconditionally; returns the new revision.
    async fn put(&self, key: &str, value: Bytes) -> Result<u64> {
        let result = self.txn(Vec::new(), vec![Op::put(key, value)]).await?;
        Ok(result.revision)
    }

    /// Sets `key` if `expect` holds for it; returns the new revision.
    ///
    /// Err(kind Conflict) when the precondition fails.
    async fn put_if(&self, key: &str, value: Bytes, expect: Precondition) -> Result<u64> {
        let result = self
            .txn(vec![Compare::new(key, expect)], vec![Op::put(key, value)])
            .await?;
        if result.succeeded {
            Ok(result.revision)
        } else {
            Err(Error::Conflict {
                key: key.to_owned(),
                expected: expect,
            })
        }
    }

    /// Removes `key`; returns whether it existed.
    ///
    /// Implemented as read, then delete-if-unchanged, retried until one of them is decisive,
    /// so the answer is exact even under concurrent writers.
    async fn delete(&self, key: &str) -> Result<bool> {
        loop {
            let Some(current) = self.get(key).await? else {
                return Ok(false);
            };
            let result = self
                .txn(
                    vec![Compare::mod_revision(key, current.mod_revision)],
                    vec![Op::delete(key)],
                )
                .await?;
            if result.succeeded {
                return Ok(true);
            }
        }
    }
}

impl<T: MetadataStore + ?Sized> MetadataStoreExt for T {}
