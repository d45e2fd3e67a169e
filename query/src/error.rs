//! The query crate's errors, classified by what the caller should do ([`ErrorKind`]).

/// What a caller should do about an [`Error`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The metadata or object store could not be reached; retrying later may succeed.
    Unavailable,
    /// The request is wrong (unknown topic or partition, bad range, bad projection).
    Invalid,
    /// Stored data is corrupt or undecodable.
    Data,
    /// A bug or an unexpected failure.
    Internal,
}

/// An error of planning or reading history.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The request cannot be answered as asked.
    #[error("invalid query: {reason}")]
    Invalid {
        /// What is wrong.
        reason: String,
    },
    /// The metadata store failed.
    #[error("metadata store: {0}")]
    Metadata(#[from] tierlog_metadata::Error),
    /// Reading a tiered segment failed.
    #[error("tiered storage: {0}")]
    Tiering(#[from] tierlog_tiering::Error),
    /// A record batch could not be decoded.
    #[error("cannot decode record batch: key=`{key}`, offset={offset}: {reason}")]
    Decode {
        /// Object key of the segment.
        key: String,
        /// Base offset of the batch.
        offset: i64,
        /// The decoder's complaint.
        reason: String,
    },
    /// Building Arrow arrays failed.
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    /// Writing Parquet failed.
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    /// A local file operation failed.
    #[error("{op} `{path}`: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// An object store request of an export failed.
    #[error("object store: {op} `{key}`: {source}")]
    ObjectStore {
        /// What was being done.
        op: &'static str,
        /// The object key.
        key: String,
        /// The store's error.
        source: object_store::Error,
    },
    /// A background task failed.
    #[error("task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

impl Error {
    /// What the caller should do about this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Invalid { .. } => ErrorKind::Invalid,
            Error::Metadata(e) => match e.kind() {
                tierlog_metadata::ErrorKind::Unavailable => ErrorKind::Unavailable,
                tierlog_metadata::ErrorKind::Invalid | tierlog_metadata::ErrorKind::NotFound => {
                    ErrorKind::Invalid
                }
                tierlog_metadata::ErrorKind::Data => ErrorKind::Data,
                _ => ErrorKind::Internal,
            },
            Error::Tiering(e) => match e.kind() {
                tierlog_tiering::ErrorKind::Unavailable => ErrorKind::Unavailable,
                tierlog_tiering::ErrorKind::Invalid => ErrorKind::Invalid,
                tierlog_tiering::ErrorKind::Data => ErrorKind::Data,
                _ => ErrorKind::Internal,
            },
            Error::Decode { .. } => ErrorKind::Data,
            Error::Io { .. } | Error::ObjectStore { .. } => ErrorKind::Unavailable,
            Error::Arrow(_) | Error::Parquet(_) | Error::Task(_) => ErrorKind::Internal,
        }
    }

    pub(crate) fn invalid(reason: impl Into<String>) -> Self {
        Error::Invalid {
            reason: reason.into(),
        }
    }

    pub(crate) fn io(op: &'static str, path: &std::path::Path, source: std::io::Error) -> Self {
        Error::Io {
            op,
            path: path.display().to_string(),
            source,
        }
    }
}

/// Results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
