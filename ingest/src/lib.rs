//! The tierlog node: a Kafka-compatible broker over a tiered partition log.
//!
//! A node accepts Kafka clients on a TCP listener, decodes requests with the `kafka-protocol`
//! crate, and appends record batches to the hot tier of each partition (`tierlog-tiering`) as
//! the bytes that arrived. Topic state lives in the metadata store (`tierlog-metadata`).
//!
//! # Layout
//!
//! - [`config`]: the node's settings (defaults → TOML file → `TIERLOG_*` env → flags).
//! - [`node`]: start-up and shutdown of one node: binds the listeners, opens the broker,
//!   owns its tasks.
//! - `broker/`: the state handlers draw on, composed of components (`host`, the group
//!   coordinator, the remote tier, metrics, the clock), built without listeners so tests run
//!   one in-process (`broker::testing`).
//! - `host/`: the topics and partitions this node hosts, the cluster view and fetchers under
//!   one admin lock, and the sync loop that applies the metadata store's state to them.
//! - `server/`: listener, connection framing and in-order pipelining (the mini-redis shape).
//! - `protocol/`: pure frame and header encode/decode, the table of supported API versions,
//!   and [`Connection`], the one Kafka client connection (used by the replica fetcher, the
//!   `tierlog-cli` crate and the tests).
//! - `api/`: one file per Kafka API; each handler takes a `RequestContext` (version, client,
//!   principal, clock) and the components it uses.
//! - `partition/`: the partitions this node hosts, their flush policy, their replication role
//!   and high watermark.
//! - `cluster/`: membership (lease, fencing), the cluster view, the controller, replica
//!   placement.
//! - `replication/`: followers' fetchers, ISR changes and the ISR-shrink pass.
//! - `group/`: the group coordinator (classic and KIP-848), its `GroupError`s and offsets.
//! - `metrics`, `http`: the counters and the admin HTTP server that exports them.
//! - [`topic_config`]: Kafka topic configs: names, defaults, validation.
//! - `dynamic_config`: configs changed at run time and kept in the metadata store: consumer
//!   groups' (Kafka's GROUP resource) and nodes' (dynamic broker configs), and what the node
//!   reports for its own settings; `mirror` keeps such a copy of the store current.
//! - [`error`]: the one place that maps errors to Kafka error codes.

pub mod config;
pub mod error;
pub mod node;
pub mod topic_config;

mod api;
mod broker;
mod cluster;
mod dynamic_config;
mod group;
mod host;
mod http;
mod metrics;
mod mirror;
mod partition;
mod protocol;
mod replication;
mod security;
mod server;
mod txn;

pub use config::{FlushMode, NodeConfig, ReplicaSelector};
pub use error::{Error, Result};
pub use node::{Node, ShutdownSignal};
pub use protocol::{Connection, ConnectionError};
pub use security::sasl::add_scram_user;
