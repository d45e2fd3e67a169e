//! History as Arrow: plan a topic's range into splits (one per tiered segment), read a split
//! into Arrow `RecordBatch`es, and serve them as Parquet files and an Arrow Flight service.
//! Works with no ingest node running: it needs only the metadata store and the object store.
//!
//! # Layout
//!
//! - `flight` — the Arrow Flight service whose endpoints are the splits.
//! (The planner, reader, schema and Parquet export are being written; see issue 6.)

pub mod flight;
