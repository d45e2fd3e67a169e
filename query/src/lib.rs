//! History as Arrow: plan a topic's range into splits (one per tiered segment), read a split
//! into Arrow `RecordBatch`es, and write them as Parquet or Arrow IPC files; the Arrow Flight
//! service serves the same splits. Works with no ingest node running: it needs only the
//! metadata store (topics and the segment manifest) and the object store.
//!
//! A read goes: [`QueryContext::plan`] turns a topic, partitions and a [`Range`] (offsets or
//! timestamps, resolved through the segments' time indexes) into [`Split`]s; each split is read
//! by [`QueryContext::read`] as a stream of record batches, fetching the segment's data object
//! a chunk at a time through the same cache-backed `RemoteReader` the broker uses, decoding
//! Kafka record batches (all four codecs; control batches skipped) into the [`schema`]. Reads
//! return committed history by default: records of aborted transactions are dropped and a read
//! stops at the last stable offset ([`Isolation`]).
//!
//! # Layout
//!
//! - `context` — [`QueryConfig`], [`QueryContext`]: opening the stores, listing topics.
//! - `plan` — [`Range`], [`Bound`], [`Split`]: from a range to splits.
//! - `read` — [`ReadOptions`]: a split to a stream of record batches.
//! - `txn` — [`Isolation`]: aborted transactions and the last stable offset of a split.
//! - `schema` — the Arrow schema and the column builders.
//! - `export` — writing splits as Parquet / Arrow IPC files (what `tierlog export` runs).
//! - `json` — `--value-format json`: JSON values as typed columns, the rest kept raw.
//! - `flight` — the Arrow Flight service whose endpoints are the splits.

mod context;
mod error;
pub mod export;
pub mod flight;
pub mod json;
mod plan;
mod read;
pub mod schema;
mod txn;

pub use context::{QueryConfig, QueryContext};
pub use error::{Error, ErrorKind, Result};
pub use plan::{Bound, Range, Split};
pub use read::{DEFAULT_BATCH_ROWS, ReadOptions};
pub use tierlog_metadata::TopicMeta;
pub use txn::Isolation;
