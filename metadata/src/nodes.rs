//! Live nodes: each running node registers itself under a lease (Kafka's ephemeral broker
//! registration).
//!
//! Lifecycle: a node grants a lease, [registers](NodeRegistry::register) its [`NodeInfo`]
//! (with a fresh [`incarnation`](NodeInfo::incarnation)) under it, and keeps the lease alive.
//! When the process dies or is cut off, the lease lapses and the registration disappears with
//! it, so [`list`](NodeRegistry::list) returns exactly the nodes that are alive. A restarted
//! node registers again under a new lease and incarnation, replacing its predecessor's entry;
//! on a clean shutdown it [deregisters](NodeRegistry::deregister) (or revokes its lease), which
//! removes the entry only if it is still its own.
//!
//! Keys: `/tierlog/nodes/<id, 10 digits>` → JSON [`NodeInfo`]. Ids are zero-padded so the
//! store's byte order is numeric order.

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::registry::{decode_json, delete_if, encode_json};
use crate::store::{LeaseId, MetadataStore, MetadataStoreExt};
use crate::types::NodeId;

/// Where live nodes register: `/tierlog/nodes/<id, zero-padded to 10 digits>`.
pub const NODES_PREFIX: &str = "/tierlog/nodes/";

/// A live node's registration: how clients reach it and which process it is.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NodeInfo {
    /// The node's id (`node.id`), not negative.
    pub id: NodeId,
    /// The advertised Kafka host.
    pub host: String,
    /// The advertised Kafka port.
    pub port: i32,
    /// The rack (`broker.rack`), if configured.
    pub rack: Option<String>,
    /// New for every process start, so a restarted node's registration is told apart from its
    /// predecessor's (see [`NodeRegistry::deregister`]).
    pub incarnation: uuid::Uuid,
    /// When this process started, milliseconds since the Unix epoch.
    pub started_ms: i64,
    /// Every listener's advertised endpoint (Kafka's `advertised.listeners`): clients are sent
    /// to the endpoint of the listener they arrived on. `host`/`port` above are the
    /// inter-broker listener's. Empty in registrations of nodes that predate listeners, which
    /// had one listener at `host`/`port`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub listeners: Vec<ListenerEndpoint>,
}

/// One advertised listener of a node.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ListenerEndpoint {
    /// The listener's name, e.g. `SASL_SSL` or `INTERNAL`.
    pub name: String,
    /// The advertised host.
    pub host: String,
    /// The advertised port.
    pub port: i32,
}

impl ListenerEndpoint {
    /// The (host, port) of the listener named `listener` among `listeners`; a node with no
    /// listener list has one listener, at `single`.
    pub fn find<'a>(
        listeners: &'a [ListenerEndpoint],
        single: (&'a str, i32),
        listener: &str,
    ) -> Option<(&'a str, i32)> {
        if listeners.is_empty() {
            return Some(single);
        }
        listeners
            .iter()
            .find(|l| l.name == listener)
            .map(|l| (l.host.as_str(), l.port))
    }
}

impl NodeInfo {
    /// The node's advertised (host, port) on the listener named `listener`; `None` when it
    /// has no such listener (Kafka then leaves the node out of Metadata for that listener).
    pub fn endpoint(&self, listener: &str) -> Option<(&str, i32)> {
        ListenerEndpoint::find(&self.listeners, (&self.host, self.port), listener)
    }
}

/// The registry of live nodes, under `/tierlog/nodes/`.
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use tierlog_metadata::{MemoryStore, MetadataStore, NodeInfo, NodeRegistry};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> tierlog_metadata::Result<()> {
/// let store: Arc<dyn MetadataStore> = Arc::new(MemoryStore::new());
/// let nodes = NodeRegistry::new(Arc::clone(&store));
/// let lease = store.grant_lease(Duration::from_secs(10)).await?;
/// let me = NodeInfo {
///     id: 1,
///     host: "broker-1".into(),
///     port: 9092,
///     rack: None,
///     incarnation: uuid::Uuid::new_v4(),
///     started_ms: 0,
///     listeners: Vec::new(),
/// };
/// nodes.register(&me, lease).await?;
/// assert_eq!(nodes.list().await?, vec![me.clone()]);
///
/// // The registration lives only as long as the lease.
/// store.revoke_lease(lease).await?;
/// assert!(nodes.list().await?.is_empty());
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct NodeRegistry {
    store: Arc<dyn MetadataStore>,
}

impl NodeRegistry {
    /// A registry over `store`.
    pub fn new(store: Arc<dyn MetadataStore>) -> Self {
        Self { store }
    }

    fn key(id: NodeId) -> String {
        format!("{NODES_PREFIX}{id:010}")
    }

    /// Puts `/tierlog/nodes/<id>` (id zero-padded to 10 digits so keys sort numerically)
    /// attached to `lease`. Overwrites an earlier registration of the same id (a restarted
    /// process replaces its predecessor). Returns the revision of the write.
    ///
    /// [`ErrorKind::Invalid`](crate::ErrorKind::Invalid) for a negative id;
    /// [`ErrorKind::NotFound`](crate::ErrorKind::NotFound) if the lease has lapsed or was
    /// revoked.
    pub async fn register(&self, info: &NodeInfo, lease: LeaseId) -> Result<u64> {
        if info.id < 0 {
            return Err(Error::invalid(format!(
                "node id must not be negative, got {}",
                info.id
            )));
        }
        let key = Self::key(info.id);
        let value = encode_json(&key, info)?;
        self.store.put_with_lease(&key, value, lease).await
    }

    /// Every registered (live) node, sorted by id.
    pub async fn list(&self) -> Result<Vec<NodeInfo>> {
        let mut nodes = self
            .store
            .list(NODES_PREFIX)
            .await?
            .iter()
            .map(decode_json::<NodeInfo>)
            .collect::<Result<Vec<_>>>()?;
        // Keys already sort numerically; sorting the decoded ids does not rely on the padding.
        nodes.sort_by_key(|n| n.id);
        Ok(nodes)
    }

    /// Deletes node `id`'s registration only if it is still `incarnation`'s: reads it, then
    /// deletes it in a transaction comparing the mod revision it read, re-reading after a lost
    /// race (see `registry::delete_if`). Returns whether it deleted (false if there was no registration or it belongs to
    /// another incarnation, e.g. a successor that has already registered).
    pub async fn deregister(&self, id: NodeId, incarnation: uuid::Uuid) -> Result<bool> {
        let deleted = delete_if(self.store.as_ref(), &Self::key(id), |n: &NodeInfo| {
            n.incarnation == incarnation
        })
        .await?;
        Ok(deleted.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance;
    use crate::embedded::EmbeddedStore;
    use crate::memory::MemoryStore;

    #[tokio::test]
    async fn nodes_memory() {
        conformance::nodes(Arc::new(MemoryStore::new())).await;
    }

    #[tokio::test]
    async fn nodes_embedded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = EmbeddedStore::open(&dir.path().join("metadata.redb")).expect("open");
        conformance::nodes(Arc::new(store)).await;
    }

    #[test]
    fn node_info_json_is_stable() {
        let n = NodeInfo {
            id: 3,
            host: "h".into(),
            port: 9092,
            rack: None,
            incarnation: uuid::Uuid::nil(),
            started_ms: 5,
            listeners: Vec::new(),
        };
        let json = serde_json::to_string(&n).expect("serialize");
        assert_eq!(
            json,
            r#"{"id":3,"host":"h","port":9092,"rack":null,"incarnation":"00000000-0000-0000-0000-000000000000","started_ms":5}"#
        );
    }
}
