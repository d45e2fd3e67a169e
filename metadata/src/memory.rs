//! [`MemoryStore`]: the in-memory backend, for unit tests and `memory://`.
//!
//! A `BTreeMap` and a revision counter behind one mutex. Every call takes the lock once, so
//! every call is trivially linearizable; nothing survives the process. Leases and watches come
//! from [`crate::local`]: lease deadlines in a table with one expiry task per lease, recent
//! changes in an in-memory history that watch streams read.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::apply::{TxnView, apply_txn, expire_lease};
use crate::error::{Error, Result};
use crate::local::{LeaseHost, LeaseTable, Watchers, lock, spawn_expiry, ttl_seconds};
use crate::store::{Compare, KeyValue, LeaseId, MetadataStore, Op, TxnResult, WatchStream};

/// An in-memory [`MetadataStore`]. Not durable; cheap to create.
///
/// ```
/// use bytes::Bytes;
/// use tierlog_metadata::{MemoryStore, MetadataStore, MetadataStoreExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> tierlog_metadata::Result<()> {
/// let store = MemoryStore::new();
/// store.put("/a/1", Bytes::from("x")).await?;
/// store.put("/a/2", Bytes::from("y")).await?;
/// store.put("/b", Bytes::from("z")).await?;
/// let keys: Vec<String> = store.list("/a/").await?.into_iter().map(|kv| kv.key).collect();
/// assert_eq!(keys, ["/a/1", "/a/2"]);
/// assert_eq!(store.current_revision().await?, 3);
/// # Ok(())
/// # }
/// ```
#[derive(Default)]
pub struct MemoryStore {
    // Shared with lease expiry tasks, which hold it weakly.
    inner: Arc<Shared>,
}

struct Shared {
    // One lock over keys, lease attachments and revision: a transaction must see and change
    // them together. A std mutex, since it is never held across an await. Lock order: `state`
    // before `leases` and before the watchers' history, never the other way.
    state: Mutex<State>,
    leases: Mutex<LeaseTable>,
    watchers: Arc<Watchers>,
    // Never sent on; dropping it (with the store) stops the lease expiry tasks.
    closed: watch::Sender<()>,
}

impl Default for Shared {
    fn default() -> Self {
        Self {
            state: Mutex::default(),
            leases: Mutex::default(),
            watchers: Arc::new(Watchers::new(0)),
            closed: watch::Sender::new(()),
        }
    }
}

#[derive(Debug, Default)]
struct State {
    keys: Keys,
    revision: u64,
}

#[derive(Debug, Default)]
struct Keys {
    kvs: BTreeMap<String, KeyValue>,
    leased: HashMap<String, LeaseId>,
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore").finish_non_exhaustive()
    }
}

impl MemoryStore {
    /// An empty store at revision 0.
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Poison is safe to ignore: between its first and last write `apply_txn` only does
        // infallible map operations, so a panic cannot leave a half-applied transaction.
        lock(&self.inner.state)
    }
}

impl TxnView for Keys {
    fn read(&self, key: &str) -> Result<Option<KeyValue>> {
        Ok(self.kvs.get(key).cloned())
    }

    fn write(&mut self, kv: KeyValue) -> Result<()> {
        self.kvs.insert(kv.key.clone(), kv);
        Ok(())
    }

    fn remove(&mut self, key: &str) -> Result<bool> {
        Ok(self.kvs.remove(key).is_some())
    }

    fn keys_with_prefix(&self, prefix: &str) -> Result<Vec<String>> {
        Ok(self
            .kvs
            .range::<str, _>((Bound::Included(prefix), Bound::Unbounded))
            .map(|(k, _)| k)
            .take_while(|k| k.starts_with(prefix))
            .cloned()
            .collect())
    }

    fn set_lease(&mut self, key: &str, lease: Option<LeaseId>) -> Result<()> {
        match lease {
            Some(lease) => self.leased.insert(key.to_owned(), lease),
            None => self.leased.remove(key),
        };
        Ok(())
    }

    fn keys_with_lease(&self, lease: LeaseId) -> Result<Vec<String>> {
        let mut keys: Vec<String> = self
            .leased
            .iter()
            .filter(|(_, l)| **l == lease)
            .map(|(k, _)| k.clone())
            .collect();
        keys.sort_unstable();
        Ok(keys)
    }
}

impl Shared {
    fn expire_now(&self, lease: LeaseId) -> Result<()> {
        let mut state = lock(&self.state);
        let current = state.revision;
        let applied = expire_lease(&mut state.keys, current, lease)?;
        if applied.changed {
            state.revision = applied.result.revision;
            self.watchers
                .publish(applied.result.revision, applied.events);
        }
        Ok(())
    }
}

impl LeaseHost for Shared {
    fn lease_table(&self) -> MutexGuard<'_, LeaseTable> {
        lock(&self.leases)
    }

    fn closed(&self) -> watch::Receiver<()> {
        self.closed.subscribe()
    }

    async fn expire(self: Arc<Self>, lease: LeaseId) -> Result<()> {
        self.expire_now(lease)
    }
}

#[async_trait::async_trait]
impl MetadataStore for MemoryStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        Ok(self.state().keys.kvs.get(key).cloned())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<KeyValue>> {
        let state = self.state();
        Ok(state
            .keys
            .kvs
            .range::<str, _>((Bound::Included(prefix), Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(_, kv)| kv.clone())
            .collect())
    }

    async fn txn(&self, compares: Vec<Compare>, ops: Vec<Op>) -> Result<TxnResult> {
        let mut state = self.state();
        let current = state.revision;
        let now = Instant::now();
        let leases = &self.inner.leases;
        let alive = |lease| lock(leases).is_alive(lease, now);
        let applied = apply_txn(&mut state.keys, current, &compares, &ops, &alive)?;
        if applied.changed {
            state.revision = applied.result.revision;
            self.inner
                .watchers
                .publish(applied.result.revision, applied.events);
        }
        Ok(applied.result)
    }

    async fn current_revision(&self) -> Result<u64> {
        Ok(self.state().revision)
    }

    async fn grant_lease(&self, ttl: Duration) -> Result<LeaseId> {
        let ttl = Duration::from_secs(ttl_seconds(ttl)?.unsigned_abs());
        let id = lock(&self.inner.leases).grant(ttl, Instant::now());
        spawn_expiry(&self.inner, id);
        Ok(id)
    }

    async fn keep_alive(&self, lease: LeaseId) -> Result<Duration> {
        lock(&self.inner.leases)
            .keep_alive(lease, Instant::now())
            .ok_or_else(|| Error::not_found(format!("lease {lease}")))
    }

    async fn revoke_lease(&self, lease: LeaseId) -> Result<()> {
        lock(&self.inner.leases).remove(lease);
        // Always delete the attached keys, even if the lease had lapsed already: its expiry
        // task may not have run yet, and the caller expects the keys gone on return.
        self.inner.expire_now(lease)
    }

    async fn watch(&self, prefix: &str, from_revision: u64) -> Result<WatchStream> {
        self.inner.watchers.watch(prefix, from_revision)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn conformance() {
        crate::conformance::run(Arc::new(MemoryStore::new())).await;
    }
}
