//! End-to-end test harness for tierlog: real `tierlog` processes driven by real Kafka clients.
//!
//! The integration tests in `tests/tests/*.rs` start a [`TestNode`] (the real binary, found
//! through `TIERLOG_BIN` or the workspace's `target/`), talk to it with librdkafka
//! ([`clients`]), with hand-built frames over a plain socket ([`wire`]), or with other clients
//! (kcat, kafka-python), and kill or restart it to check what survives.
//!
//! # Layout
//!
//! - [`node`]: spawn, readiness, SIGTERM/SIGKILL, restart on the same data directory.
//! - [`cluster`]: several nodes on one etcd and one object store; kill, freeze, wipe and
//!   restart nodes, wait on Metadata (brokers, leaders, ISRs); a producer that runs across
//!   failovers.
//! - [`clients`]: rdkafka producer/consumer/admin helpers, bounded consumption.
//! - [`damage`]: segment files to damage, batches in them, checked ranges, damage metrics and
//!   `tierlog damage list` (the damaged-data tests).
//! - [`groups`]: consumer-group members (in process and killable child processes), polling
//!   until assignments settle, raw group-protocol requests.
//! - [`wire`]: raw Kafka protocol over `std::net::TcpStream` for malformed-input tests.
//! - [`workload`]: deterministic records, producing with delivery reports, checking the log.
//! - [`tools`]: locating external tools (kcat, python3) and skipping loudly without them.
//! - [`s3`]: a real S3-compatible server (`moto_server`) with outage simulation and raw object
//!   access for corrupting bytes.
//! - [`http`]: a minimal blocking HTTP/1.1 client (admin endpoints, S3 by hand).
//! - [`metrics`]: parsing a node's Prometheus `/metrics`.
//! - [`eos`]: the exactly-once checker over a recorded history, and the Java transaction
//!   programs (`TxnCheck`, `EosPipeline`) that produce such histories.
//! - [`proxy`]: a TCP proxy whose connections a test cuts, as a network fault would.
//! - [`wait`]: bounded polling for a condition.

pub mod clients;
pub mod cluster;
pub mod damage;
pub mod differential;
pub mod eos;
pub mod etcd;
pub mod groups;
pub mod http;
pub mod kafka;
pub mod metrics;
pub mod node;
pub mod programs;
pub mod proxy;
pub mod s3;
pub mod tls;
pub mod tools;
pub mod wait;
pub mod wire;
pub mod workload;

pub use node::{NodeOptions, TestNode};
pub use s3::MotoServer;
