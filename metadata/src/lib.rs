//! tierlog's cluster state: the small, strongly consistent store every node agrees on.
//!
//! Topics and their configs, partition leadership and epochs, the segment manifest, committed
//! offsets and the like all live in a [`MetadataStore`]: a revisioned key-value store with
//! compare-and-swap transactions, shaped like etcd's data model so that the etcd backend (for
//! clusters) and the embedded one (for a single node, the default) behave identically. Typed
//! registries on top ([`TopicRegistry`], [`cluster_id`]) own the key layout and the JSON
//! values, so the rest of tierlog never builds a key by hand.
//!
//! This crate is also the bottom of the dependency chain, so it holds the domain types every
//! crate shares: [`TopicPartition`], [`Offset`], [`LeaderEpoch`], [`NodeId`], [`TopicId`].
//!
//! ```
//! use std::sync::Arc;
//! use tierlog_metadata::{open_store, MetadataUrl, TopicRegistry, cluster_id};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> tierlog_metadata::Result<()> {
//! let url: MetadataUrl = "memory://".parse()?;
//! let store = open_store(&url, std::path::Path::new("/var/lib/tierlog")).await?;
//! let id = cluster_id(store.as_ref()).await?;
//! let topics = TopicRegistry::new(Arc::clone(&store));
//! assert!(topics.list().await?.is_empty());
//! # let _ = id;
//! # Ok(())
//! # }
//! ```
//!
//! # Layout
//!
//! - `clock` — [`Clock`]: where time comes from ([`SystemClock`], [`ManualClock`] for tests).
//! - `types` — shared domain types ([`TopicPartition`], offsets, epochs, ids).
//! - `error` — [`Error`] and the [`ErrorKind`] callers branch on.
//! - `store` — the [`MetadataStore`] trait and its contract; [`MetadataStoreExt`] conveniences.
//! - `apply` — transaction semantics, implemented once for the local backends.
//! - `local` — leases (timers) and watches (in-memory history) for the local backends.
//! - `memory` — [`MemoryStore`], for tests.
//! - `embedded` — [`EmbeddedStore`], a `redb` file: the single-node default.
//! - `etcd` — [`EtcdStore`], over `etcd-client`: cluster mode.
//! - `conformance` — the suite every backend passes (public with the `conformance` feature,
//!   so `tierlog-tests` can run it against a real etcd).
//! - `url` — [`MetadataUrl`] and [`open_store`], choosing a backend from config.
//! - `registry` — [`TopicRegistry`] and topic-name rules.
//! - `manifest` — [`ManifestRegistry`]: tiered segments and the DeleteRecords log start.
//! - `cluster` — the cluster id.
//! - `nodes` — [`NodeRegistry`]: live nodes, registered under a lease.
//! - `partition_state` — [`PartitionStateRegistry`]: leader, epochs and ISR per partition.
//! - `controller` — [`ControllerElection`]: one controller at a time, fencing its writes.
//! - `drains` — [`DrainRegistry`]: nodes an operator asked to empty of replicas.
//! - `producer_ids` — [`ProducerIdRegistry`]: blocks of producer ids, unique cluster-wide.
//! - `transactions` — [`TransactionRegistry`]: each transactional id's [`TxnMeta`].
//! - `scram` — [`ScramRegistry`]: SCRAM credentials per user and mechanism (never passwords).
//! - `acls` — [`AclRegistry`]: ACL bindings (Kafka's authorization model), one key per
//!   resource pattern.
//! - `quotas` — [`QuotaRegistry`]: client quotas by user, client id or IP ([`QuotaEntity`]).
//! - `dynamic_configs` — [`DynamicConfigRegistry`]: configs of consumer groups and nodes
//!   (per node or cluster-wide) changed at run time ([`ConfigResource`]).
//!
//! `metadata/README.md` documents the key layout and the revision rules.

mod acls;
mod apply;
mod clock;
mod cluster;
#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
mod controller;
mod drains;
mod dynamic_configs;
mod embedded;
mod error;
#[cfg(feature = "etcd")]
mod etcd;
mod local;
mod manifest;
mod memory;
mod nodes;
mod partition_state;
mod producer_ids;
mod quotas;
mod registry;
mod scram;
mod store;
mod transactions;
mod types;
mod url;

pub use crate::acls::{
    ACLS_PREFIX, AclBinding, AclEntry, AclOperation, AclPatternType, AclPermission, AclRegistry,
    AclResource, AclResourceType, validate_binding,
};
pub use crate::clock::{Clock, ManualClock, SharedClock, SystemClock};
pub use crate::cluster::{ClusterMeta, cluster_id, cluster_meta};
pub use crate::controller::{CONTROLLER_KEY, ControllerElection, ControllerInfo};
pub use crate::drains::{DRAINS_PREFIX, DrainRegistry};
pub use crate::dynamic_configs::{
    CONFIGS_PREFIX, ConfigResource, DynamicConfigRegistry, ResourceConfigs,
};
pub use crate::embedded::EmbeddedStore;
pub use crate::error::{Error, ErrorKind, Result};
#[cfg(feature = "etcd")]
pub use crate::etcd::{EtcdOptions, EtcdStore};
pub use crate::manifest::{
    ManifestRegistry, RemoteCleanCheckpoint, RemoteSegment, RetiredObjects, RetiredRecord,
    RevisionedSegment, SegmentSwap,
};
pub use crate::memory::MemoryStore;
pub use crate::nodes::{ListenerEndpoint, NODES_PREFIX, NodeInfo, NodeRegistry};
pub use crate::partition_state::{
    PARTITIONS_PREFIX, PartitionState, PartitionStateRegistry, Versioned,
};
pub use crate::producer_ids::{PRODUCER_IDS_KEY, ProducerIdRegistry};
pub use crate::quotas::{ClientQuota, EntityName, QUOTAS_PREFIX, QuotaEntity, QuotaRegistry};
pub use crate::registry::{MAX_TOPIC_NAME_LEN, TopicMeta, TopicRegistry, validate_topic_name};
pub use crate::scram::{
    SCRAM_MAX_ITERATIONS, SCRAM_MIN_ITERATIONS, SCRAM_PREFIX, ScramCredential, ScramMechanism,
    ScramRegistry,
};
pub use crate::store::{
    Compare, KeyValue, LeaseId, MetadataStore, MetadataStoreExt, Op, Precondition, TxnResult,
    WatchEvent, WatchStream,
};
pub use crate::transactions::{
    TRANSACTIONS_PREFIX, TransactionRegistry, TxnMeta, TxnOffset, TxnState,
};
pub use crate::types::{LeaderEpoch, NodeId, Offset, TopicId, TopicPartition};
pub use crate::url::{EMBEDDED_FILE_NAME, EtcdTls, MetadataUrl, open_store, open_store_with};
