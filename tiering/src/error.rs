//! Errors of the tiering crate.
//!
//! Every failure is one variant of [`Error`], descriptive enough for the ingest crate to map it
//! to a Kafka error code on its own (this crate never decides a wire code). Callers that only
//! need to know *what to do* match on [`Error::kind`]:
//!
//! | kind | meaning | typical Kafka code chosen by ingest |
//! |---|---|---|
//! | [`ErrorKind::Invalid`] | the request or config is bad (or replicated batches do not continue the log, or a producer is fenced or out of sequence); fix the input | `CORRUPT_MESSAGE`, `INVALID_RECORD`, `MESSAGE_TOO_LARGE`, `INVALID_PRODUCER_EPOCH`, `OUT_OF_ORDER_SEQUENCE_NUMBER`, `INVALID_TXN_STATE` |
//! | [`ErrorKind::OffsetOutOfRange`] | the offset is not in `[log_start, log_end]` | `OFFSET_OUT_OF_RANGE` |
//! | [`ErrorKind::Data`] | bytes on disk or in an object are corrupt or missing (a damaged, quarantined range included) | `KAFKA_STORAGE_ERROR` |
//! | [`ErrorKind::Io`] | the local disk failed | `KAFKA_STORAGE_ERROR` |
//! | [`ErrorKind::Unavailable`] | the log is closed or locked, or the object store or manifest is unreachable; retry later | `NOT_LEADER_OR_FOLLOWER` / `KAFKA_STORAGE_ERROR` |
//! | [`ErrorKind::Internal`] | a bug in this crate | `UNKNOWN_SERVER_ERROR` |

use std::path::PathBuf;

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in a partition log.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The produced bytes are not a well-formed sequence of record batches: truncated input,
    /// a `batchLength` inconsistent with the bytes, a batch shorter than its header, or a
    /// CRC-32C mismatch.
    #[error("corrupt message: {reason}")]
    CorruptMessage {
        /// What was wrong, with the batch index and byte position.
        reason: String,
    },

    /// A batch is well formed but not acceptable: wrong magic, bad record count, records that
    /// do not fill the batch, a control batch from a client, a transactional or idempotent batch
    /// without a producer id, epoch or sequence, an unknown compression codec, or an empty
    /// record set.
    #[error("invalid record: {reason}")]
    InvalidRecord {
        /// What was wrong, with the batch index.
        reason: String,
    },

    /// One batch is larger than the topic's `max.message.bytes`.
    #[error("message too large: batch of {size} bytes exceeds max.message.bytes={max}")]
    MessageTooLarge {
        /// Size of the offending batch in bytes (header included).
        size: u64,
        /// The configured limit.
        max: u32,
    },

    /// The requested offset is outside `[start, end]`.
    #[error("offset {offset} out of range: log start={start}, log end={end}")]
    OffsetOutOfRange {
        /// The requested offset.
        offset: i64,
        /// The log start offset at the time of the request.
        start: i64,
        /// The log end offset at the time of the request.
        end: i64,
    },

    /// Replicated batches do not continue the log: the first batch does not start at the log
    /// end offset, or a batch does not start right after the previous one (Kafka's
    /// `UnexpectedAppendOffsetException`).
    #[error("unexpected append offset: batch {batch} has base offset {found}, expected {expected}")]
    UnexpectedAppendOffset {
        /// Index of the offending batch in the input.
        batch: usize,
        /// The offset the batch had to start at.
        expected: i64,
        /// Its base offset.
        found: i64,
    },

    /// Bytes on disk that should be valid are not (found while serving a read, not during
    /// recovery, which repairs instead).
    #[error("corrupt segment: path=`{}`, position={position}: {reason}", path.display())]
    CorruptSegment {
        /// The segment file.
        path: PathBuf,
        /// Byte position of the problem inside the file.
        position: u64,
        /// What was wrong.
        reason: String,
    },

    /// The offset lies in a damaged range of the hot tier: bytes that failed their CRC-32C
    /// (or are missing) in the middle of the log. The range is quarantined — never served,
    /// never truncated away with what follows it — until it is repaired from another copy
    /// or the loss is accepted.
    #[error(
        "damaged range: offsets {first_offset}..={last_offset} of `{}` are quarantined: {reason}",
        path.display()
    )]
    Damaged {
        /// The segment file.
        path: PathBuf,
        /// First offset of the damaged range.
        first_offset: i64,
        /// Last offset of the damaged range (inclusive).
        last_offset: i64,
        /// What was wrong with its first bad batch.
        reason: String,
    },

    /// A configuration value is out of its allowed range.
    #[error("invalid log config: {reason}")]
    InvalidConfig {
        /// Which field, and why.
        reason: String,
    },

    /// An I/O operation on the log directory failed.
    #[error("i/o error: {op} `{}`: {source}", path.display())]
    Io {
        /// What was being done (`"write segment"`, `"fsync directory"`, ...).
        op: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// The log directory is already opened by another `PartitionLog` (in this or another
    /// process).
    #[error("log directory is locked by another owner: path=`{}`", path.display())]
    Locked {
        /// The log directory.
        path: PathBuf,
    },

    /// The log was closed; it accepts no more appends.
    #[error("partition log is closed: path=`{}`", path.display())]
    Closed {
        /// The log directory.
        path: PathBuf,
    },

    /// An object store operation failed (after the store's own retries).
    #[error("object store error: {op} `{key}`: {source}")]
    ObjectStore {
        /// What was being done (`"put data object"`, `"get chunk"`, ...).
        op: &'static str,
        /// The object key.
        key: String,
        /// The underlying error.
        #[source]
        source: object_store::Error,
    },

    /// An object's bytes do not match the checksum recorded in the manifest, or the object is
    /// shorter than recorded. Never served: the reader gets this error instead of data.
    #[error("corrupt object: key=`{key}`: {reason}")]
    CorruptObject {
        /// The object key.
        key: String,
        /// What did not match.
        reason: String,
    },

    /// The segment manifest (metadata store) failed.
    #[error("segment manifest: {0}")]
    Manifest(#[from] tierlog_metadata::Error),

    /// An idempotent or transactional producer wrote with an epoch older than the one this
    /// partition knows for it (a zombie producer instance, fenced), or a transaction marker
    /// carries an older epoch (Kafka's `InvalidProducerEpochException`).
    #[error(
        "invalid producer epoch: producer_id={producer_id}, current epoch={current}, found={found}"
    )]
    InvalidProducerEpoch {
        /// The producer id.
        producer_id: i64,
        /// The epoch this partition has for it.
        current: i16,
        /// The epoch of the batch or marker.
        found: i16,
    },

    /// An idempotent producer's batch does not continue its sequence: a gap or a reordering,
    /// or a first sequence other than 0 for a new epoch (Kafka's
    /// `OutOfOrderSequenceException`).
    #[error(
        "out of order sequence number: producer_id={producer_id}, expected={expected}, found={found}"
    )]
    OutOfOrderSequence {
        /// The producer id.
        producer_id: i64,
        /// The first sequence the batch had to carry.
        expected: i32,
        /// Its first sequence.
        found: i32,
    },

    /// A write does not fit the producer's transaction state: a non-transactional batch from a
    /// producer with a transaction in progress (Kafka's `InvalidTxnStateException`).
    #[error("invalid transaction state: {reason}")]
    InvalidTxnState {
        /// What was wrong, with the producer id.
        reason: String,
    },

    /// The log cannot represent the request (offset or position arithmetic would overflow).
    #[error("internal error: {reason}")]
    Internal {
        /// What invariant broke.
        reason: String,
    },
}

/// What a caller should do about an [`Error`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The input (request or config) is bad; retrying the same input fails again.
    Invalid,
    /// The offset is outside the log; the client resets its position.
    OffsetOutOfRange,
    /// Data on disk is corrupt.
    Data,
    /// The local disk failed.
    Io,
    /// The log is not available right now (closed, locked); retry later or elsewhere.
    Unavailable,
    /// A bug.
    Internal,
}

impl Error {
    /// What the caller should do about this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::CorruptMessage { .. }
            | Error::InvalidRecord { .. }
            | Error::MessageTooLarge { .. }
            | Error::InvalidConfig { .. }
            | Error::UnexpectedAppendOffset { .. }
            | Error::InvalidProducerEpoch { .. }
            | Error::OutOfOrderSequence { .. }
            | Error::InvalidTxnState { .. } => ErrorKind::Invalid,
            Error::OffsetOutOfRange { .. } => ErrorKind::OffsetOutOfRange,
            Error::CorruptSegment { .. } | Error::Damaged { .. } => ErrorKind::Data,
            Error::Io { .. } => ErrorKind::Io,
            Error::Locked { .. } | Error::Closed { .. } => ErrorKind::Unavailable,
            Error::ObjectStore { source, .. } => match source {
                object_store::Error::NotFound { .. } => ErrorKind::Data,
                _ => ErrorKind::Unavailable,
            },
            Error::CorruptObject { .. } => ErrorKind::Data,
            Error::Manifest(e) => match e.kind() {
                tierlog_metadata::ErrorKind::Invalid => ErrorKind::Invalid,
                tierlog_metadata::ErrorKind::Data => ErrorKind::Data,
                tierlog_metadata::ErrorKind::Internal => ErrorKind::Internal,
                _ => ErrorKind::Unavailable,
            },
            Error::Internal { .. } => ErrorKind::Internal,
        }
    }

    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn corrupt(reason: impl Into<String>) -> Self {
        Error::CorruptMessage {
            reason: reason.into(),
        }
    }

    pub(crate) fn invalid(reason: impl Into<String>) -> Self {
        Error::InvalidRecord {
            reason: reason.into(),
        }
    }
}
