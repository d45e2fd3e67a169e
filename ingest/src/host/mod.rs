//! What this node hosts and how it stays in step with the cluster: the topic registry, the
//! partitions open here, the cluster view and membership, the followers' fetchers, under one
//! admin lock — and the sync loop (`sync`) that applies the metadata store's state to them.
//!
//! The topic-changing request handlers (CreateTopics, DeleteTopics, CreatePartitions, the
//! config APIs) and the sync loop both work through a [`Host`], never through the whole node.

pub(crate) mod sync;

use std::sync::Arc;

use tierlog_metadata::{NodeId, SharedClock, TopicRegistry};

use crate::cluster::Cluster;
use crate::partition::Partitions;
use crate::replication::fetcher::Fetchers;

/// Settings that shape new topics and their produce checks.
#[derive(Debug, Clone)]
pub(crate) struct TopicDefaults {
    /// Create topics on first use (Metadata with auto-creation allowed).
    pub(crate) auto_create_topics: bool,
    /// Partition count of auto-created topics and of CreateTopics asking for the default.
    pub(crate) default_partitions: i32,
    /// Replication factor asked for by default (capped by live nodes).
    pub(crate) default_replication_factor: i16,
    /// This node's rack, for placement when the view does not list it yet.
    pub(crate) rack: Option<String>,
    /// Most partitions one creation (a CreateTopics topic, a CreatePartitions increase) makes.
    pub(crate) max_create_partitions: usize,
    /// Most partition replicas one node hosts.
    pub(crate) max_partitions_per_node: usize,
    /// The smallest `segment.bytes` a topic may set.
    pub(crate) min_segment_bytes: u64,
}

/// The topics and partitions this node hosts, and its place in the cluster.
#[derive(Debug)]
pub(crate) struct Host {
    pub(crate) node_id: NodeId,
    pub(crate) topics: TopicRegistry,
    pub(crate) partitions: Partitions,
    /// Serialises topic creation, deletion and changes on this node, so that the metadata
    /// store and the open partitions change together.
    pub(crate) admin: tokio::sync::Mutex<()>,
    /// Membership, the cluster view, partition states, the controller election.
    pub(crate) cluster: Arc<Cluster>,
    /// The fetchers of the partitions this node follows.
    pub(crate) fetchers: Fetchers,
    pub(crate) defaults: TopicDefaults,
    pub(crate) clock: SharedClock,
    /// ISR changes of the partitions this node leads, written in batches.
    pub(crate) isr_queue: Arc<crate::replication::IsrQueue>,
    /// Dynamic configs (groups', nodes') and what they put in force here; shared with the
    /// group coordinator.
    pub(crate) dynamic: Arc<crate::dynamic_config::DynamicConfigs>,
    /// What this node as leader sends to catching-up followers of throttled partitions.
    pub(crate) replication_throttle: crate::replication::throttle::Throttle,
}
