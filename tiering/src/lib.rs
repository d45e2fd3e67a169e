//! The storage engine of one tierlog partition log.
//!
//! Two tiers. The local hot tier is a crash-safe, Kafka-compatible partition log that stores v2
//! record batches exactly as producers sent them (only the broker-owned header fields are
//! patched), with sparse offset and time indexes, size/time rolling, retention, and recovery
//! after a crash. The remote tier ([`remote`]) uploads sealed segments to object storage,
//! records them in the segment manifest, reads them back through a chunk cache, applies remote
//! retention and sweeps orphaned objects.
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use tierlog_tiering::{LogConfig, PartitionLog};
//! let dir = tempfile::tempdir()?;
//! let log = PartitionLog::open(dir.path(), LogConfig::default())?;
//! assert_eq!(log.log_end_offset(), 0);
//! assert!(log.read(0, 1024)?.records.is_empty());
//! log.close()?;
//! # Ok(()) }
//! ```
//!
//! # Layout
//!
//! - [`batch`]: v2 batch header parsing, validation of produced bytes, in-place patching.
//! - `config`: [`LogConfig`], per-topic settings with Kafka's defaults.
//! - `error`: [`Error`] and [`ErrorKind`].
//! - `index`: sparse offset and time indexes (in memory, persisted lazily).
//! - `segment`: one segment's files, positional I/O, the recovery scanner.
//! - `files`: [`FilePool`], the bounded pool of open segment files (a partition that is not
//!   read or written holds no file descriptor).
//! - `log`: [`PartitionLog`], the segments of one partition: append, read, roll, flush,
//!   retention, recovery, and what replication needs (replicated appends, truncation,
//!   reads bounded by the high watermark). Damage in the middle of the log is quarantined as
//!   [`DamagedRange`]s (never served, never truncated with what follows), found by recovery,
//!   by reads (every batch read is CRC-checked) and by scrubbing, and lifted by a repair.
//! - `compact`: log compaction's batch rules and key map, shared by the hot-tier cleaner
//!   (`log/clean.rs`) and tiered compaction.
//! - `epoch`: the leader-epoch cache (where each leader epoch starts; OffsetForLeaderEpoch).
//! - `producer`: idempotent and transactional producers' state (duplicates, epochs,
//!   sequences, ongoing transactions), transaction markers ([`control_batch`]) and aborted
//!   transactions ([`AbortedTxn`]); the log keeps it, snapshots it and rebuilds it.
//! - [`remote`]: the remote tier — object keys, upload, chunk cache, remote reads, remote
//!   retention, orphan sweep.
//!
//! The on-disk format is described in `FORMAT.md` next to this crate's `Cargo.toml`.

pub mod batch;
mod compact;
mod config;
mod epoch;
mod error;
mod files;
mod index;
mod log;
mod producer;
pub mod remote;
mod segment;

#[cfg(test)]
mod testutil;

pub use batch::{BatchHeader, validate_batches};
pub use compact::{OFFSET_MAP_ENTRY_BYTES, OffsetMap};
pub use config::{LogConfig, TimestampType};
pub use error::{Error, ErrorKind, Result};
pub use files::{FilePool, FilePoolStats};
pub use log::{
    AppendResult, CleanStats, Cleanable, CleanerOptions, PartitionLog, RangeRepair, ReadResult,
    Throttle, TimestampOffset,
};
pub use producer::{AbortedTxn, ControlType, ProducerEntry, control_batch, parse_control};
pub use segment::DamagedRange;
