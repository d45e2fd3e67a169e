//! The `tierlog` command line: `serve` (a node, from `tierlog-ingest`) and the client
//! commands: `topic` and `group` (administration over the Kafka protocol), `bench`
//! (produce/consume load generation with librdkafka), `export` and `query` (tiered history
//! through `tierlog-query`).
//!
//! The client commands talk to any Kafka-compatible broker — tierlog or Apache Kafka —
//! through the Kafka protocol only; nothing here reaches into the node's internals. This crate
//! exists so that the node library links no client library (librdkafka) and no Arrow.
//!
//! # Layout
//!
//! - [`topic`]: `tierlog topic create|list|describe|delete|alter-config`.
//! - [`group`]: `tierlog group list|describe|delete|reset-offsets` (consumer groups).
//! - [`query`]: `tierlog query serve`, the Arrow Flight service over tiered history.
//! - [`bench`]: `tierlog bench produce|consume`, human or `--json` output.
//! - [`export`]: `tierlog export`, a topic's tiered history as Parquet.
//! - [`logging`]: the binary's log output (`--log-format text|json`, colour only on a
//!   terminal).
//! - [`data`]: where a node's data is, for `export` and `query`.
//! - [`user`] and [`node`]: `tierlog user add` (SCRAM credentials) and `tierlog node
//!   drain|undrain|status`, straight in the metadata store ([`store`]: its flags).
//! - [`damage`]: `tierlog damage list`, a node's quarantined (damaged) ranges from its admin
//!   endpoint.
//! - `client`: a small admin client on the node library's `Connection` (ApiVersions
//!   negotiation, routing to the controller and partition leaders), used by `topic`, `group`
//!   and `bench`.
//! - `args`: the `KEY=VALUE` flag parser.
//! - `table`: aligned plain-text tables.

pub mod bench;
pub mod damage;
pub mod data;
pub mod export;
pub mod group;
pub mod logging;
pub mod node;
pub mod query;
pub mod store;
pub mod topic;
pub mod user;

mod args;
mod client;
mod table;
