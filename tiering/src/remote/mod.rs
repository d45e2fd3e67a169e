//! The remote tier: sealed segments in object storage, read back through a cache.
//!
//! Lifecycle of a segment: the hot log seals (rolls) it; the partition leader uploads its three
//! files — batches, offset index, time index — as objects under keys that carry the topic id,
//! partition, base offset, leader epoch and a unique upload id ([`layout`]), with create-only
//! puts; then records a [`tierlog_metadata::RemoteSegment`] in the manifest. Only then is it
//! tiered, and only then may the hot tier delete its local copy (past local retention). Reads
//! below the hot tier's start go through `reader::RemoteReader`, which locates the bytes with the
//! segment's offset index and fetches fixed-size chunks through the `cache::ChunkCache` (memory +
//! disk, single-flight), verifying each chunk's CRC-32 from the manifest. Remote retention
//! deletes the manifest entry first and the objects after.
//!
//! # Layout
//!
//! - `store` — object store URLs (`s3://`, `file://`, `memory://`), S3 options and the
//!   `aws-config` credential chain bridged into `object_store`.
//! - `layout` — object keys.
//! - `partition` — [`RemotePartition`], one partition's handle (store, manifest, topic,
//!   partition, settings) that the operations below are methods of.
//! - `upload` — uploading a sealed segment and recording it.
//! - `uploader` — the per-partition uploader loop and its passes.
//! - `cache` — the foyer hybrid chunk cache.
//! - `reader` — reading batches and timestamps from tiered segments.
//! - `retention` — remote retention (time, size, DeleteRecords start).
//! - `faults` — a fault-injecting object store decorator (tests only).
//! - `scrub` — re-reading a tiered segment's objects from the store, checking every chunk,
//!   batch and index against its checksums, and replacing a damaged one from an intact copy
//!   (the hot tier) under new keys.
//! - `gc` — sweeping orphaned objects (uploaded, never recorded) past a grace period.
//! - `compact` — tiered compaction: rewriting a compacted topic's tiered segments under new
//!   keys, swapping them into the manifest atomically, and reaping the replaced objects after
//!   a grace period.
//! - `producers` — what transactions need from the remote tier: aborted transactions from
//!   the tiered transaction indexes, and the producer snapshot a node rebuilding from object
//!   storage starts from.

pub mod cache;
pub mod compact;
pub mod faults;
pub mod gc;
pub mod layout;
pub mod partition;
pub mod producers;
pub mod reader;
pub mod retention;
pub mod scrub;
pub mod store;
pub mod upload;
pub mod uploader;

pub use compact::{CleanInterrupted, ReapReport, RemoteCleanOptions, RemoteCleanStats};
pub use gc::GcConfig;
pub use partition::{RemoteOptions, RemotePartition};
pub use retention::RetentionLimits;
pub use scrub::{RepairSource, SegmentDamage, TieredScrub, TieredScrubOptions, TieredScrubReport};
pub use uploader::{FOLLOWER_REFRESH_TICKS, UploadGate, UploaderHost};

/// Size of the chunks data objects are read and cached in, and checksummed by.
pub const DEFAULT_CHUNK_SIZE: u32 = 1 << 20;
