//! [`MemoryStore`]: the in-memory backend, for unit tests and `memory://`.
//!
//! A `BTreeMap` and a revision counter behind one mutex. Every call takes the lock once, so
//! every call is trivially linearizable; nothing survives the process.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{Mutex, MutexGuard};

use crate::apply::{TxnView, apply_txn};
use crate::error::Result;
use crate::store::{Compare, KeyValue, MetadataStore, Op, TxnResult};

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
#[derive(Debug, Default)]
pub struct MemoryStore {
    // One lock over keys and revision: a transaction must see and change both together.
    // A std mutex, since it is never held across an await.
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    keys: BTreeMap<String, KeyValue>,
    revision: u64,
}

impl MemoryStore {
    /// An empty store at revision 0.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Poison is safe to ignore: between its first and last write `apply_txn` only does
        // infallible map operations, so a panic cannot leave a half-applied transaction.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl TxnView for BTreeMap<String, KeyValue> {
    fn read(&self, key: &str) -> Result<Option<KeyValue>> {
        Ok(self.get(key).cloned())
    }

    fn write(&mut self, kv: KeyValue) -> Result<()> {
        self.insert(kv.key.clone(), kv);
        Ok(())
    }

    fn remove(&mut self, key: &str) -> Result<bool> {
        Ok(BTreeMap::remove(self, key).is_some())
    }

    fn keys_with_prefix(&self, prefix: &str) -> Result<Vec<String>> {
        Ok(self
            .range::<str, _>((Bound::Included(prefix), Bound::Unbounded))
            .map(|(k, _)| k)
            .take_while(|k| k.starts_with(prefix))
            .cloned()
            .collect())
    }
}

#[async_trait::async_trait]
impl MetadataStore for MemoryStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        Ok(self.lock().keys.get(key).cloned())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<KeyValue>> {
        let inner = self.lock();
        Ok(inner
            .keys
            .range::<str, _>((Bound::Included(prefix), Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(_, kv)| kv.clone())
            .collect())
    }

    async fn txn(&self, compares: Vec<Compare>, ops: Vec<Op>) -> Result<TxnResult> {
        let mut inner = self.lock();
        let current = inner.revision;
        let applied = apply_txn(&mut inner.keys, current, &compares, &ops)?;
        if applied.changed {
            inner.revision = applied.result.revision;
        }
        Ok(applied.result)
    }

    async fn current_revision(&self) -> Result<u64> {
        Ok(self.lock().revision)
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
