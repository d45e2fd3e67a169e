//! The tierlog node: a Kafka-compatible broker over a tiered partition log.
//!
//! A node accepts Kafka clients on a TCP listener, decodes requests with the `kafka-protocol`
//! crate, and appends record batches to the hot tier of each partition (`tierlog-tiering`) as
//! the bytes that arrived. Topic state lives in the metadata store (`tierlog-metadata`).
//!
//! # Layout
//!
//! - [`config`]: the node's settings (defaults → TOML file → `TIERLOG_*` env → flags).
//! - [`node`]: owns the tasks of one node: listener, flushers, retention, admin HTTP.
//! - `server/`: listener, connection framing and in-order pipelining (the mini-redis shape).
//! - `protocol/`: pure frame and header encode/decode, the table of supported API versions,
//!   and [`Connection`], the one Kafka client connection (used by the replica fetcher, the
//!   `tierlog-cli` crate and the tests).
//! - `api/`: one file per Kafka API.
//! - `partition/`: the partitions this node hosts, their flush policy, their replication role
//!   and high watermark.
//! - `cluster/`: membership (lease, fencing), the cluster view kept in step with the metadata
//!   store, the controller, replica placement.
//! - `replication/`: followers' fetchers, ISR changes, the leader's bookkeeping.
//! - [`topic_config`]: Kafka topic configs: names, defaults, validation.
//! - [`error`]: the one place that maps errors to Kafka error codes.

pub mod config;
pub mod error;
pub mod node;
pub mod topic_config;

mod api;
mod broker;
mod cluster;
mod group;
mod host;
mod http;
mod metrics;
mod partition;
mod protocol;
mod replication;
mod server;

pub use config::{FlushMode, NodeConfig};
pub use error::{Error, Result};
pub use node::Node;
pub use protocol::{Connection, ConnectionError};
