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
//! - [`clients`]: rdkafka producer/consumer/admin helpers, bounded consumption.
//! - [`wire`]: raw Kafka protocol over `std::net::TcpStream` for malformed-input tests.
//! - [`workload`]: deterministic records, producing with delivery reports, checking the log.
//! - [`tools`]: locating external tools (kcat, python3) and skipping loudly without them.

pub mod clients;
pub mod node;
pub mod tools;
pub mod wire;
pub mod workload;

pub use node::{NodeOptions, TestNode};
