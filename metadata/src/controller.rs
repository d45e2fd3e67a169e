//! Controller election: at most one node at a time holds `/tierlog/controller`.
//!
//! Lifecycle: every node [campaigns](ControllerElection::campaign) with a create-only put of
//! its [`ControllerInfo`] under its lease. One wins and learns the key's mod revision; the
//! others get `None` and watch the key, campaigning again when it is deleted. The winner
//! guards every write it makes as controller with [`ControllerElection::guard`], so once it
//! has lost the key (its lease lapsed, it [resigned](ControllerElection::resign)) none of its
//! late writes lands, even if it has not noticed yet. A new winner's key has a new mod
//! revision, so an old guard never matches again.

use std::sync::Arc;

use crate::error::Result;
use crate::partition_state::{Versioned, decode_versioned};
use crate::registry::encode_json;
use crate::store::{Compare, LeaseId, MetadataStore, Op};
use crate::types::NodeId;

/// The key the elected controller holds.
pub const CONTROLLER_KEY: &str = "/tierlog/controller";

/// Who the controller is.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ControllerInfo {
    /// The controller's node id.
    pub node_id: NodeId,
    /// The controller process's incarnation (see [`NodeInfo::incarnation`](crate::NodeInfo)).
    pub incarnation: uuid::Uuid,
}

/// Controller election over a lease and a create-only key.
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use tierlog_metadata::{ControllerElection, ControllerInfo, MemoryStore, MetadataStore};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> tierlog_metadata::Result<()> {
/// let store: Arc<dyn MetadataStore> = Arc::new(MemoryStore::new());
/// let election = ControllerElection::new(Arc::clone(&store));
/// let me = ControllerInfo { node_id: 1, incarnation: uuid::Uuid::new_v4() };
/// let lease = store.grant_lease(Duration::from_secs(10)).await?;
///
/// let won = election.campaign(&me, lease).await?.expect("the key was free");
/// assert_eq!(election.current().await?.map(|c| c.value), Some(me.clone()));
/// // Writes made as controller carry `ControllerElection::guard(won)` as a compare.
///
/// election.resign(won).await?;
/// assert_eq!(election.current().await?, None);
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct ControllerElection {
    store: Arc<dyn MetadataStore>,
}

impl ControllerElection {
    /// An election over `store`.
    pub fn new(store: Arc<dyn MetadataStore>) -> Self {
        Self { store }
    }

    /// Tries to become controller: puts [`CONTROLLER_KEY`] with `lease` if absent.
    /// Ok(Some(mod revision of the key)) if we won, Ok(None) if someone holds it.
    ///
    /// [`ErrorKind::NotFound`](crate::ErrorKind::NotFound) if the key is free but the lease
    /// has lapsed or was revoked.
    pub async fn campaign(&self, me: &ControllerInfo, lease: LeaseId) -> Result<Option<u64>> {
        let value = encode_json(CONTROLLER_KEY, me)?;
        let result = self
            .store
            .txn(
                vec![Compare::absent(CONTROLLER_KEY)],
                vec![Op::put_with_lease(CONTROLLER_KEY, value, lease)],
            )
            .await?;
        if result.succeeded {
            tracing::info!(
                node_id = me.node_id,
                revision = result.revision,
                "won controller election"
            );
        }
        // The put is the transaction's only change, so its revision is the key's mod revision.
        Ok(result.succeeded.then_some(result.revision))
    }

    /// The current controller and its key's mod revision; `None` if there is none.
    pub async fn current(&self) -> Result<Option<Versioned<ControllerInfo>>> {
        match self.store.get(CONTROLLER_KEY).await? {
            Some(kv) => decode_versioned(&kv).map(Some),
            None => Ok(None),
        }
    }

    /// A compare that holds while the controller key is exactly the one we won (its mod
    /// revision), for guarding the controller's writes.
    pub fn guard(mod_revision: u64) -> Compare {
        Compare::mod_revision(CONTROLLER_KEY, mod_revision)
    }

    /// Gives up leadership if we still hold it: deletes the key only if its mod revision is
    /// still `mod_revision`. Doing so when we no longer hold it is not an error. The lease is
    /// left alone (it may carry the node's registration too).
    pub async fn resign(&self, mod_revision: u64) -> Result<()> {
        let result = self
            .store
            .txn(
                vec![Self::guard(mod_revision)],
                vec![Op::delete(CONTROLLER_KEY)],
            )
            .await?;
        if result.succeeded {
            tracing::info!(revision = mod_revision, "resigned as controller");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance;
    use crate::embedded::EmbeddedStore;
    use crate::memory::MemoryStore;

    #[tokio::test]
    async fn election_memory() {
        conformance::controller_election(Arc::new(MemoryStore::new())).await;
    }

    #[tokio::test]
    async fn election_embedded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = EmbeddedStore::open(&dir.path().join("metadata.redb")).expect("open");
        conformance::controller_election(Arc::new(store)).await;
    }

    #[tokio::test]
    async fn cluster_registries_in_sequence_on_one_store() {
        conformance::cluster_registries(Arc::new(MemoryStore::new())).await;
    }
}
