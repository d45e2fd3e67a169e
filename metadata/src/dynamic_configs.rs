//! Dynamic configs of resources other than topics, under `/tierlog/configs/…`: consumer
//! groups (Kafka's GROUP resource: KIP-848's per-group `consumer.session.timeout.ms`, …) and
//! nodes (Kafka's dynamic broker configs, for one node or as the cluster-wide default).
//!
//! IncrementalAlterConfigs and AlterConfigs write here, one resource at a time,
//! read-modify-write under compare-and-swap; a resource left with no values is deleted. Every
//! node lists the prefix and watches it ([`CONFIGS_PREFIX`]) to keep the table it reads, so a
//! change is in force on every node within a watch round trip, without a restart. Topic
//! configs are not here: they are part of the topic's own record. The registry does not know
//! which names a resource may carry; the API layer validates them, so the store stays a plain
//! map.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::quotas::EntityName;
use crate::registry::{decode_json, update_json};
use crate::store::MetadataStore;
use crate::types::NodeId;

/// Where dynamic configs live: `/tierlog/configs/groups/<group>`,
/// `/tierlog/configs/brokers/<node id>` and `/tierlog/configs/brokers/<default>`.
pub const CONFIGS_PREFIX: &str = "/tierlog/configs/";

/// A resource with dynamic configs.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConfigResource {
    /// A consumer group, by id.
    Group(String),
    /// One node's settings (`Some(id)`), or the cluster-wide default every node falls back to
    /// (`None`: Kafka's broker resource with an empty name).
    Broker(Option<NodeId>),
}

impl ConfigResource {
    /// The key path below [`CONFIGS_PREFIX`] (group ids percent-encoded outside
    /// `[A-Za-z0-9._-]`).
    fn path(&self) -> String {
        match self {
            ConfigResource::Group(g) => {
                format!("groups/{}", EntityName::Named(g.clone()).segment())
            }
            ConfigResource::Broker(Some(id)) => format!("brokers/{id}"),
            ConfigResource::Broker(None) => "brokers/<default>".to_owned(),
        }
    }
}

impl fmt::Display for ConfigResource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigResource::Group(g) => write!(f, "group {g}"),
            ConfigResource::Broker(Some(id)) => write!(f, "node {id}"),
            ConfigResource::Broker(None) => f.write_str("every node (cluster default)"),
        }
    }
}

/// One resource and its config values (Kafka name → value as Kafka writes it): the stored
/// value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceConfigs {
    /// Whom the values apply to.
    pub resource: ConfigResource,
    /// Config name → value, never empty in the store.
    pub values: BTreeMap<String, String>,
}

/// Dynamic configs under `/tierlog/configs/…`.
///
/// ```
/// use std::collections::BTreeMap;
/// use std::sync::Arc;
/// use tierlog_metadata::{ConfigResource, DynamicConfigRegistry, MemoryStore};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> tierlog_metadata::Result<()> {
/// let configs = DynamicConfigRegistry::new(Arc::new(MemoryStore::new()));
/// let group = ConfigResource::Group("orders".into());
/// configs
///     .update(&group, |values| {
///         let mut next = values.clone();
///         next.insert("consumer.session.timeout.ms".into(), "50000".into());
///         Ok(next)
///     })
///     .await?;
/// assert_eq!(configs.get(&group).await?["consumer.session.timeout.ms"], "50000");
/// configs.update(&group, |_| Ok(BTreeMap::new())).await?;
/// assert!(configs.list().await?.is_empty());
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct DynamicConfigRegistry {
    store: Arc<dyn MetadataStore>,
}

impl DynamicConfigRegistry {
    /// A registry over `store`.
    pub fn new(store: Arc<dyn MetadataStore>) -> Self {
        Self { store }
    }

    /// The store, for watching [`CONFIGS_PREFIX`].
    pub fn store(&self) -> &Arc<dyn MetadataStore> {
        &self.store
    }

    fn key(resource: &ConfigResource) -> String {
        format!("{CONFIGS_PREFIX}{}", resource.path())
    }

    /// Every resource with dynamic configs, in key order.
    pub async fn list(&self) -> Result<Vec<ResourceConfigs>> {
        self.store
            .list(CONFIGS_PREFIX)
            .await?
            .iter()
            .map(decode_json)
            .collect()
    }

    /// The configs of `resource` (empty if it has none).
    pub async fn get(&self, resource: &ConfigResource) -> Result<BTreeMap<String, String>> {
        Ok(match self.store.get(&Self::key(resource)).await? {
            Some(kv) => decode_json::<ResourceConfigs>(&kv)?.values,
            None => BTreeMap::new(),
        })
    }

    /// Replaces `resource`'s configs with what `f` makes of the current ones (an error from
    /// `f` is returned as is and nothing is written). Read-modify-write under
    /// compare-and-swap: `f` runs again when another writer got there first. A resource left
    /// with no values is deleted. Returns the values as written.
    pub async fn update(
        &self,
        resource: &ConfigResource,
        mut f: impl FnMut(&BTreeMap<String, String>) -> Result<BTreeMap<String, String>>,
    ) -> Result<BTreeMap<String, String>> {
        let empty = BTreeMap::new();
        let written = update_json(self.store.as_ref(), &Self::key(resource), |current| {
            let values = f(current.map_or(&empty, |c: &ResourceConfigs| &c.values))?;
            Ok((!values.is_empty()).then(|| ResourceConfigs {
                resource: resource.clone(),
                values,
            }))
        })
        .await?;
        Ok(written.map(|c| c.values).unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::{Error, MemoryStore};

    #[test]
    fn resource_paths_keep_names_apart_from_the_layout() {
        assert_eq!(ConfigResource::Group("a/b".into()).path(), "groups/a%2Fb");
        assert_eq!(ConfigResource::Broker(Some(3)).path(), "brokers/3");
        assert_eq!(ConfigResource::Broker(None).path(), "brokers/<default>");
    }

    #[tokio::test]
    async fn update_sets_keeps_refuses_and_deletes() {
        let r = DynamicConfigRegistry::new(Arc::new(MemoryStore::new()));
        let node = ConfigResource::Broker(Some(1));
        let cluster = ConfigResource::Broker(None);
        let set = |k: &'static str, v: &'static str| {
            move |cur: &BTreeMap<String, String>| {
                let mut next = cur.clone();
                next.insert(k.to_owned(), v.to_owned());
                Ok(next)
            }
        };
        r.update(&node, set("log.retention.ms", "1000"))
            .await
            .unwrap();
        r.update(&node, set("message.max.bytes", "2048"))
            .await
            .unwrap();
        r.update(&cluster, set("log.retention.ms", "5000"))
            .await
            .unwrap();
        assert_eq!(r.get(&node).await.unwrap().len(), 2);
        let refused = r
            .update(&node, |_| Err(Error::invalid("no")))
            .await
            .unwrap_err();
        assert_eq!(refused.kind(), crate::ErrorKind::Invalid);
        assert_eq!(
            r.get(&node).await.unwrap().len(),
            2,
            "a refusal writes nothing"
        );
        let listed = r.list().await.unwrap();
        assert_eq!(listed.len(), 2);
        r.update(&node, |_| Ok(BTreeMap::new())).await.unwrap();
        assert!(r.get(&node).await.unwrap().is_empty());
        assert_eq!(r.list().await.unwrap()[0].resource, cluster);
    }
}
