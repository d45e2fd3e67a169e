//! The `tierlog` client commands: `topic` (administration over the Kafka protocol) and
//! `bench` (produce/consume load generation with librdkafka).
//!
//! Both talk to any Kafka-compatible broker — tierlog or Apache Kafka — through the Kafka
//! protocol only; nothing here reaches into the node's internals.
//!
//! # Layout
//!
//! - [`topic`]: `tierlog topic create|list|describe|delete|alter-config`.
//! - [`group`]: `tierlog group list|describe|delete|reset-offsets` (consumer groups).
//! - [`query`]: `tierlog query serve`, the Arrow Flight service over tiered history.
//! - [`bench`]: `tierlog bench produce|consume`, human or `--json` output.
//! - `client`: a small admin client on `kafka-protocol` (ApiVersions negotiation, routing to
//!   the controller and partition leaders), used by both.
//! - `args`: the `KEY=VALUE` flag parser.
//! - `table`: aligned plain-text tables.

pub mod bench;
pub mod data;
pub mod export;
pub mod group;
pub mod query;
pub mod topic;

mod args;
mod client;
mod table;
