//! Nodes being drained: an operator marks a node (`tierlog node drain <id>`) and the
//! controller moves every replica and leadership off it, so that it can be stopped with
//! nothing under-replicated. The mark outlives the node's registration (it is not under the
//! node's lease) until it is cleared.
//!
//! Keys: `/tierlog/drains/<id, 10 digits>` → the time the drain was asked for, in
//! milliseconds since the Unix epoch (JSON).

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;

use crate::error::{Error, Result};
use crate::store::{MetadataStore, MetadataStoreExt};
use crate::types::NodeId;

/// Where drain marks live.
pub const DRAINS_PREFIX: &str = "/tierlog/drains/";

/// The drain marks of a cluster.
#[derive(Clone, Debug)]
pub struct DrainRegistry {
    store: Arc<dyn MetadataStore>,
}

impl DrainRegistry {
    /// A registry over `store`.
    pub fn new(store: Arc<dyn MetadataStore>) -> Self {
        Self { store }
    }

    fn key(id: NodeId) -> String {
        format!("{DRAINS_PREFIX}{id:010}")
    }

    /// Marks node `id` to be drained, asked for at `now_ms`. Marking a marked node again
    /// keeps the first time.
    pub async fn drain(&self, id: NodeId, now_ms: i64) -> Result<()> {
        if id < 0 {
            return Err(Error::invalid(format!("node id {id} is negative")));
        }
        if self.store.get(&Self::key(id)).await?.is_some() {
            return Ok(());
        }
        self.store
            .put(&Self::key(id), Bytes::from(now_ms.to_string()))
            .await?;
        Ok(())
    }

    /// Clears node `id`'s drain mark; whether there was one.
    pub async fn undrain(&self, id: NodeId) -> Result<bool> {
        self.store.delete(&Self::key(id)).await
    }

    /// Every marked node, with when its drain was asked for.
    pub async fn list(&self) -> Result<BTreeMap<NodeId, i64>> {
        let mut out = BTreeMap::new();
        for kv in self.store.list(DRAINS_PREFIX).await? {
            let Some(id) = kv
                .key
                .strip_prefix(DRAINS_PREFIX)
                .and_then(|s| s.parse::<NodeId>().ok())
            else {
                continue;
            };
            let since = std::str::from_utf8(&kv.value)
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(0);
            out.insert(id, since);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::memory::MemoryStore;

    #[tokio::test]
    async fn marks_are_set_kept_listed_and_cleared() {
        let drains = DrainRegistry::new(Arc::new(MemoryStore::new()));
        assert!(drains.list().await.unwrap().is_empty());
        drains.drain(4, 100).await.unwrap();
        drains.drain(4, 200).await.unwrap();
        drains.drain(12, 300).await.unwrap();
        assert_eq!(
            drains.list().await.unwrap(),
            BTreeMap::from([(4, 100), (12, 300)])
        );
        assert!(drains.undrain(4).await.unwrap());
        assert!(!drains.undrain(4).await.unwrap());
        assert_eq!(drains.list().await.unwrap(), BTreeMap::from([(12, 300)]));
        assert!(drains.drain(-1, 0).await.is_err());
    }
}
