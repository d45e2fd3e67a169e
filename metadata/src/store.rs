//! The [`MetadataStore`] trait: a small, strongly consistent key-value store shaped like etcd's
//! data model.
//!
//! The store is a sorted map from string keys to byte values. Every change is stamped with a
//! store-wide *revision*, a counter that grows by one for each transaction that changes at least
//! one key (as etcd's does). Each key remembers the revision that created it and the revision
//! that last modified it; compare-and-swap is done on the latter. All writes go through one
//! primitive, [`MetadataStore::txn`]: "if every compare holds, apply every op, atomically, under
//! one new revision". Conveniences built from it live in [`MetadataStoreExt`], implemented for
//! every store.
//!
//! etcd's other two features are here too:
//!
//! - **Leases** ([`MetadataStore::grant_lease`]): a key written with [`Op::PutWithLease`] lives
//!   only as long as its lease, which the holder keeps alive. A node that stops keeping its lease
//!   alive (it died, or is cut off) loses its ephemeral keys: registration, leadership claims.
//! - **Watches** ([`MetadataStore::watch`]): a stream of every change under a prefix, in revision
//!   order, starting at a chosen revision, so "list, then watch from the listed revision + 1"
//!   misses nothing.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::Stream;

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
    /// Set `key` to `value` and attach it to `lease`: when the lease expires or is revoked, the
    /// key is deleted. A later plain [`Op::Put`] of the key detaches it from the lease (as in
    /// etcd); deleting it detaches it too.
    ///
    /// If the transaction's compares hold and the lease does not exist (never granted, expired,
    /// revoked), the whole transaction fails with
    /// [`ErrorKind::NotFound`](crate::ErrorKind::NotFound) and nothing is applied.
    PutWithLease {
        /// The key; must not be empty.
        key: String,
        /// The new value.
        value: Bytes,
        /// The lease the key lives under.
        lease: LeaseId,
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

    /// A [`Op::PutWithLease`].
    pub fn put_with_lease(key: impl Into<String>, value: impl Into<Bytes>, lease: LeaseId) -> Self {
        Op::PutWithLease {
            key: key.into(),
            value: value.into(),
            lease,
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

/// A lease: a time-to-live that its holder keeps extending, with keys attached that disappear
/// when it lapses. Issued by [`MetadataStore::grant_lease`]; meaningful only to the store that
/// issued it (etcd's lease ids are cluster-wide; a local store's are per process).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LeaseId(pub i64);

impl fmt::Display for LeaseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // etcd tools (etcdctl) print lease ids in hex.
        write!(f, "{:x}", self.0)
    }
}

/// One change seen by a watch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WatchEvent {
    /// The key was put: its new value and revisions (`mod_revision` is the change's revision).
    Put(KeyValue),
    /// The key was deleted (by a delete op, a delete-prefix op, or its lease lapsing).
    Delete {
        /// The deleted key.
        key: String,
        /// The revision of the transaction that deleted it.
        mod_revision: u64,
    },
}

impl WatchEvent {
    /// The key the event is about.
    pub fn key(&self) -> &str {
        match self {
            WatchEvent::Put(kv) => &kv.key,
            WatchEvent::Delete { key, .. } => key,
        }
    }

    /// The revision of the change.
    pub fn revision(&self) -> u64 {
        match self {
            WatchEvent::Put(kv) => kv.mod_revision,
            WatchEvent::Delete { mod_revision, .. } => *mod_revision,
        }
    }
}

/// The stream [`MetadataStore::watch`] returns: events in revision order, then `None` when the
/// store is dropped, or one `Err` and then `None` when the watch cannot go on.
///
/// Polling it ([`futures::StreamExt::next`]) is cancel-safe: dropping a pending `next()` loses no
/// event; the next call picks up where it left off. Dropping the stream cancels the watch.
pub struct WatchStream {
    inner: Pin<Box<dyn Stream<Item = Result<WatchEvent>> + Send>>,
}

impl WatchStream {
    /// Wraps a backend's stream.
    pub fn new(inner: impl Stream<Item = Result<WatchEvent>> + Send + 'static) -> Self {
        Self {
            inner: Box::pin(inner),
        }
    }
}

impl fmt::Debug for WatchStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WatchStream").finish_non_exhaustive()
    }
}

impl Stream for WatchStream {
    type Item = Result<WatchEvent>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
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
/// - **Revisions.** The store revision starts at 0 for a new local store (a new etcd cluster
///   starts at 1; the etcd backend reports etcd's own revisions) and grows by exactly one per
///   transaction that changes something (a put, or a delete that removed a key, including the
///   deletions of an expired or revoked lease). A transaction that changes nothing leaves it as
///   is. So every write is ordered and `mod_revision`s strictly increase. (On etcd the counter
///   is shared by every client of the cluster, whatever its key prefix.)
/// - **Durable.** A backend that claims durability (embedded, etcd) has persisted a
///   transaction before `txn` returns.
/// - **Ordering.** [`list`](Self::list) returns keys in ascending byte order.
/// - **Cancel safety.** Reads are cancel-safe. A cancelled `txn` may or may not have been
///   applied (as with any remote write); re-read to find out. It is never half-applied. The
///   same holds for a `txn` that failed with [`ErrorKind::Unavailable`](crate::ErrorKind):
///   a timeout does not say whether the server applied it.
///
/// # Leases
///
/// - [`grant_lease`](Self::grant_lease) creates a lease with a time-to-live, rounded up to whole
///   seconds (etcd's unit; at least 1 s, and etcd raises tiny TTLs to its own minimum, about
///   2 s). The lease lapses once a TTL has passed without a
///   [`keep_alive`](Self::keep_alive); holders keep it alive about every TTL/3.
/// - When a lease lapses or is [revoked](Self::revoke_lease), every key attached to it
///   ([`Op::PutWithLease`]) is deleted in **one** transaction (one new revision; watchers see
///   one `Delete` per key). Revocation has happened when `revoke_lease` returns; expiry happens
///   no earlier than the TTL after the last keep-alive, and promptly after it (local stores: at
///   once; etcd: within about a second).
/// - Local stores (memory, embedded) run expiry on a tokio timer and keep lease ids and
///   deadlines in memory only: when the process ends, every lease ends with it. The embedded
///   store therefore deletes, when it is opened, every key attached to a lease of a previous
///   process (an ephemeral key must not outlive its owner).
///
/// # Watches
///
/// - [`watch`](Self::watch) returns every change to keys starting with `prefix` whose revision
///   is at least `from_revision` (0: only changes after the watch is created), **in revision
///   order**; the events of one transaction share its revision and arrive together, in op
///   order. Nothing in between is skipped: read [`current_revision`](Self::current_revision)
///   `r`, [`list`](Self::list), then watch from `r + 1`, and no later change is missed (one
///   made between the two reads shows up in both the list and the watch).
/// - History is bounded. etcd keeps it until compaction; the local stores keep the most recent
///   changes in memory (10 000 events, none from before the store was opened). A
///   `from_revision` older than what is kept, or a watcher that falls that far behind, gets
///   an error of kind [`Compacted`](crate::ErrorKind::Compacted): re-list, then watch again.
/// - The stream ends (`None`) when the store is dropped.
/// - **etcd briefly unreachable**: the etcd backend resumes the watch transparently from the
///   last revision it delivered (+1) once etcd answers again, so no event is lost or repeated.
///   If etcd stays unreachable longer than the reconnect window
///   ([`EtcdOptions::watch_reconnect_timeout`](crate::EtcdOptions)), the stream yields an error
///   of kind [`Unavailable`](crate::ErrorKind::Unavailable) and ends: watch again from the last
///   seen revision + 1 (or re-list if that has been compacted).
/// - Cancel-safety: see [`WatchStream`].
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

    /// Creates a lease that lapses after `ttl` (rounded up to whole seconds) without a
    /// keep-alive. See the trait docs on leases.
    ///
    /// Err(kind Invalid) for a zero TTL. The default implementation, for wrappers that do not
    /// support leases, fails with kind Invalid; every backend of this crate implements it.
    async fn grant_lease(&self, ttl: Duration) -> Result<LeaseId> {
        let _ = ttl;
        Err(Error::invalid(format!("{self:?} does not support leases")))
    }

    /// Restarts the lease's TTL; returns the TTL granted.
    ///
    /// Err(kind NotFound) if the lease has lapsed or was revoked (its keys are gone: the holder
    /// has lost whatever they stood for). Cancel-safe.
    async fn keep_alive(&self, lease: LeaseId) -> Result<Duration> {
        let _ = lease;
        Err(Error::invalid(format!("{self:?} does not support leases")))
    }

    /// Ends the lease now, deleting every key attached to it in one transaction. Revoking a
    /// lease that has already lapsed or been revoked is not an error.
    async fn revoke_lease(&self, lease: LeaseId) -> Result<()> {
        let _ = lease;
        Err(Error::invalid(format!("{self:?} does not support leases")))
    }

    /// Watches every key starting with `prefix` (all keys for `""`) from `from_revision`
    /// (inclusive; 0 for "changes after now"). See the trait docs on watches.
    async fn watch(&self, prefix: &str, from_revision: u64) -> Result<WatchStream> {
        let _ = (prefix, from_revision);
        Err(Error::invalid(format!("{self:?} does not support watches")))
    }
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

    /// Sets `key` under `lease` unconditionally; returns the new revision.
    ///
    /// Err(kind NotFound) if the lease has lapsed or was revoked.
    async fn put_with_lease(&self, key: &str, value: Bytes, lease: LeaseId) -> Result<u64> {
        let result = self
            .txn(Vec::new(), vec![Op::put_with_lease(key, value, lease)])
            .await?;
        Ok(result.revision)
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
