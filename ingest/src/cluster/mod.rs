//! This node's place in the cluster: its liveness lease and registration, the view of the
//! cluster every request handler reads (live nodes, partition leaders and ISRs, the
//! controller) and the controller. (`host::sync` keeps the view and the local partitions' roles
//! in step with the metadata store.)
//!
//! The same code runs a single node on the embedded store (one live node, the controller of
//! itself, every partition led here with an ISR of one) and a cluster on etcd.
//!
//! - `membership` — the lease, its keep-alive, registration, and fencing: a node that cannot
//!   renew its lease stops accepting writes before the lease can have lapsed in the store.
//! - `controller` — elected through the store; creates missing partition states, moves
//!   leadership off dead nodes (new epoch, by compare-and-swap), prunes ISRs.
//! - `assign` — replica placement.

pub(crate) mod assign;
pub(crate) mod balance;
pub(crate) mod controller;
pub(crate) mod membership;
pub(crate) mod reassign;

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use tokio::sync::watch;

use tierlog_metadata::{
    ControllerElection, MetadataStore, NodeId, NodeInfo, NodeRegistry, PartitionState,
    PartitionStateRegistry, TopicId, TopicMeta, Versioned,
};

pub(crate) use membership::Membership;

/// What this node knows of the cluster, replaced whole on every change.
#[derive(Debug, Default)]
pub(crate) struct ClusterView {
    /// Live (registered) nodes by id.
    pub(crate) nodes: BTreeMap<NodeId, NodeInfo>,
    /// Topics by name.
    pub(crate) topics: BTreeMap<String, TopicMeta>,
    /// Partition states by (topic id, partition). A persistent map: cloning it is O(1) and
    /// a changed state copies only its path, so a view built from a batch of watch events
    /// costs what changed, not the whole cluster.
    pub(crate) states: imbl::HashMap<(TopicId, i32), Versioned<PartitionState>>,
    /// The controller, if one is elected.
    pub(crate) controller: Option<NodeId>,
    /// Nodes being drained (`tierlog node drain`), with when it was asked for: the controller
    /// moves their replicas away and places nothing new on them.
    pub(crate) drains: BTreeMap<NodeId, i64>,
    /// The highest partition-state mod revision the view has applied: a write at or below it
    /// is in the view.
    pub(crate) revision: u64,
}

impl ClusterView {
    /// The state of one partition.
    pub(crate) fn state(&self, topic: TopicId, partition: i32) -> Option<&PartitionState> {
        self.states.get(&(topic, partition)).map(|v| &v.value)
    }
}

/// The cluster side of a node.
#[derive(Debug)]
pub(crate) struct Cluster {
    pub(crate) me: NodeId,
    pub(crate) store: Arc<dyn MetadataStore>,
    pub(crate) nodes: NodeRegistry,
    pub(crate) states: PartitionStateRegistry,
    pub(crate) election: ControllerElection,
    pub(crate) drains: tierlog_metadata::DrainRegistry,
    pub(crate) membership: Membership,
    view: RwLock<Arc<ClusterView>>,
    /// Bumped after every new view, for the controller.
    generation: watch::Sender<u64>,
    /// Asks the sync loop to re-list now.
    pub(crate) resync: tokio::sync::Notify,
}

impl Cluster {
    pub(crate) fn new(me: NodeId, store: Arc<dyn MetadataStore>, membership: Membership) -> Self {
        Cluster {
            me,
            nodes: NodeRegistry::new(store.clone()),
            states: PartitionStateRegistry::new(store.clone()),
            election: ControllerElection::new(store.clone()),
            drains: tierlog_metadata::DrainRegistry::new(store.clone()),
            store,
            membership,
            view: RwLock::new(Arc::new(ClusterView::default())),
            generation: watch::Sender::new(0),
            resync: tokio::sync::Notify::new(),
        }
    }

    /// The current view.
    pub(crate) fn view(&self) -> Arc<ClusterView> {
        self.view
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn set_view(&self, view: ClusterView) {
        *self
            .view
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(view);
        self.generation.send_modify(|g| *g += 1);
    }

    /// Publishes `view` only if the current view is still `base` (the one it was built on);
    /// false if another view was published meanwhile (a full re-list), which then stands.
    pub(crate) fn replace_view(&self, base: &Arc<ClusterView>, view: ClusterView) -> bool {
        {
            let mut current = self
                .view
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if !Arc::ptr_eq(&current, base) {
                return false;
            }
            *current = Arc::new(view);
        }
        self.generation.send_modify(|g| *g += 1);
        true
    }

    /// A receiver that changes with every new view.
    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }

    /// Live nodes with their racks, for replica placement: every live node not being
    /// drained (all of them if every one is).
    pub(crate) fn placement(view: &ClusterView) -> Vec<(NodeId, Option<String>)> {
        let all = || view.nodes.values().map(|n| (n.id, n.rack.clone()));
        let kept: Vec<_> = all()
            .filter(|(id, _)| !view.drains.contains_key(id))
            .collect();
        if kept.is_empty() {
            all().collect()
        } else {
            kept
        }
    }

    /// Live node ids, sorted.
    pub(crate) fn live_nodes(&self) -> Vec<NodeId> {
        self.view().nodes.keys().copied().collect()
    }

    /// The node that coordinates `key` (a consumer group or transactional id): the same
    /// answer on every node with the same view. Rendezvous hashing, so a node joining or
    /// leaving moves only the keys it gains or had. `None` before the first view.
    pub(crate) fn coordinator_for(&self, key: &str) -> Option<NodeInfo> {
        let view = self.view();
        view.nodes
            .values()
            .max_by_key(|n| {
                let mut h = crc32fast::Hasher::new();
                h.update(key.as_bytes());
                h.update(&n.id.to_be_bytes());
                (h.finalize(), n.id)
            })
            .cloned()
    }

    /// Whether this node coordinates `key` (also before the first view, when it knows no
    /// other node).
    pub(crate) fn coordinates(&self, key: &str) -> bool {
        self.coordinator_for(key).is_none_or(|n| n.id == self.me)
    }
}
