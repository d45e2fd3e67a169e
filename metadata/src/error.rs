//! The crate's error type.
//!
//! Callers decide what to do from [`Error::kind`], never from the message: retry on
//! [`ErrorKind::Unavailable`], re-read and retry on [`ErrorKind::Conflict`], fix the input on
//! [`ErrorKind::Invalid`], and so on. Messages are for people: lowercase, with the key or URL
//! they concern.

use crate::store::Precondition;

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What the caller should do about an [`Error`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The store could not be reached or is busy; retrying later may succeed.
    Unavailable,
    /// The request itself is wrong (bad name, bad URL, bad argument); retrying will not help.
    Invalid,
    /// Stored data is corrupt or undecodable.
    Data,
    /// The caller acted on an epoch or ownership that is no longer current.
    Fenced,
    /// The named object does not exist.
    NotFound,
    /// The named object exists already.
    AlreadyExists,
    /// A compare-and-swap precondition did not hold: re-read and decide again.
    Conflict,
    /// A watch asked for history the store no longer keeps (or fell too far behind): re-list,
    /// then watch again from the listed revision.
    Compacted,
    /// A bug or an unexpected failure inside the store.
    Internal,
}

/// Errors from the metadata store and its registries.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The store is unreachable or busy.
    #[error("metadata store unavailable: {message}")]
    Unavailable {
        /// What was being attempted and why it failed.
        message: String,
    },
    /// A bad argument.
    #[error("invalid argument: {message}")]
    Invalid {
        /// What is wrong with it.
        message: String,
    },
    /// A metadata URL that does not parse or names a backend that cannot be used.
    #[error("invalid metadata url `{url}`: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A stored value that cannot be decoded by the store itself.
    #[error("corrupt metadata value: key=`{key}`: {message}")]
    Corrupt {
        /// The key whose value is corrupt.
        key: String,
        /// What is wrong with it.
        message: String,
    },
    /// A registry value that is not the JSON it should be.
    #[error("cannot decode metadata value: key=`{key}`")]
    Decode {
        /// The key whose value failed to decode.
        key: String,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
    /// A registry value that cannot be encoded (a bug: our types always serialize).
    #[error("cannot encode metadata value: key=`{key}`")]
    Encode {
        /// The key being written.
        key: String,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
    /// The caller's epoch or ownership is stale.
    #[error("fenced: {message}")]
    Fenced {
        /// Which epoch or owner was stale.
        message: String,
    },
    /// The named object does not exist.
    #[error("{what} not found")]
    NotFound {
        /// The object, e.g. ``topic `orders` ``.
        what: String,
    },
    /// The named object exists already.
    #[error("{what} already exists")]
    AlreadyExists {
        /// The object, e.g. ``topic `orders` ``.
        what: String,
    },
    /// A compare-and-swap precondition on one key did not hold.
    #[error("compare failed: key=`{key}`, expected {expected}")]
    Conflict {
        /// The key compared.
        key: String,
        /// What the caller expected of it.
        expected: Precondition,
    },
    /// The embedded database (redb) failed.
    #[error("embedded metadata database: {context}")]
    Storage {
        /// What was being done, with the file path where known.
        context: String,
        /// The redb error.
        #[source]
        source: redb::Error,
    },
    /// A watch start revision older than the history the store keeps.
    #[error(
        "watch history compacted: requested revision {requested}, oldest available {available}"
    )]
    Compacted {
        /// The revision the watch asked for (or needed next).
        requested: u64,
        /// The oldest revision the store can still replay.
        available: u64,
    },
    /// An etcd request failed.
    #[cfg(feature = "etcd")]
    #[error("etcd: {context}")]
    Etcd {
        /// What was being done, with the key or lease where known.
        context: String,
        /// The client's error.
        #[source]
        source: etcd_client::Error,
    },
    /// A blocking task running store work panicked or was cancelled.
    #[error("metadata store task failed")]
    Task {
        /// The join error.
        #[source]
        source: tokio::task::JoinError,
    },
    /// Anything else that should not happen.
    #[error("internal error: {message}")]
    Internal {
        /// What happened.
        message: String,
    },
}

impl Error {
    /// What the caller should do about this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Unavailable { .. } => ErrorKind::Unavailable,
            Error::Invalid { .. } | Error::InvalidUrl { .. } => ErrorKind::Invalid,
            Error::Corrupt { .. } | Error::Decode { .. } => ErrorKind::Data,
            Error::Fenced { .. } => ErrorKind::Fenced,
            Error::NotFound { .. } => ErrorKind::NotFound,
            Error::AlreadyExists { .. } => ErrorKind::AlreadyExists,
            Error::Conflict { .. } => ErrorKind::Conflict,
            Error::Storage { source, .. } => redb_kind(source),
            Error::Compacted { .. } => ErrorKind::Compacted,
            #[cfg(feature = "etcd")]
            Error::Etcd { source, .. } => etcd_kind(source),
            Error::Encode { .. } | Error::Task { .. } | Error::Internal { .. } => {
                ErrorKind::Internal
            }
        }
    }

    /// An [`ErrorKind::Invalid`] error, e.g. from a registry `update` closure that rejects a
    /// change.
    pub fn invalid(message: impl Into<String>) -> Self {
        Error::Invalid {
            message: message.into(),
        }
    }

    /// An [`ErrorKind::NotFound`] error naming `what`, e.g. ``"topic `orders`"``.
    pub fn not_found(what: impl Into<String>) -> Self {
        Error::NotFound { what: what.into() }
    }

    /// An [`ErrorKind::AlreadyExists`] error naming `what`.
    pub fn already_exists(what: impl Into<String>) -> Self {
        Error::AlreadyExists { what: what.into() }
    }

    /// An [`ErrorKind::Fenced`] error.
    pub fn fenced(message: impl Into<String>) -> Self {
        Error::Fenced {
            message: message.into(),
        }
    }

    /// An [`ErrorKind::Unavailable`] error.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Error::Unavailable {
            message: message.into(),
        }
    }

    /// An [`ErrorKind::Internal`] error.
    pub fn internal(message: impl Into<String>) -> Self {
        Error::Internal {
            message: message.into(),
        }
    }

    #[cfg(feature = "etcd")]
    pub(crate) fn etcd(context: impl Into<String>, source: etcd_client::Error) -> Self {
        Error::Etcd {
            context: context.into(),
            source,
        }
    }

    pub(crate) fn storage(context: impl Into<String>, source: impl Into<redb::Error>) -> Self {
        Error::Storage {
            context: context.into(),
            source: source.into(),
        }
    }
}

#[cfg(feature = "etcd")]
/// Classifies an etcd client failure. etcd answers in gRPC codes: `Unavailable` (no leader,
/// leader changed, request timed out inside etcd), `InvalidArgument` (too many ops in a txn, a
/// request too large), `NotFound` (an unknown lease), `OutOfRange` (a compacted revision).
fn etcd_kind(error: &etcd_client::Error) -> ErrorKind {
    use etcd_client::Error as E;
    use tonic::Code;
    match error {
        E::GRpcStatus(status) => match status.code() {
            // `Unknown` is how tonic reports a connection that broke mid-call.
            Code::Unavailable
            | Code::DeadlineExceeded
            | Code::Aborted
            | Code::ResourceExhausted
            | Code::Cancelled
            | Code::Unknown => ErrorKind::Unavailable,
            Code::InvalidArgument
            | Code::FailedPrecondition
            | Code::PermissionDenied
            | Code::Unauthenticated => ErrorKind::Invalid,
            Code::NotFound => ErrorKind::NotFound,
            Code::OutOfRange => ErrorKind::Compacted,
            Code::AlreadyExists => ErrorKind::AlreadyExists,
            _ => ErrorKind::Internal,
        },
        // etcd-client 0.21 reports a keep-alive answered with TTL 0 this way (and no other
        // way): the lease does not exist.
        E::LeaseKeepAliveError(message) if message == "lease not found" => ErrorKind::NotFound,
        E::TransportError(_)
        | E::IoError(_)
        | E::WatchError(_)
        | E::LeaseKeepAliveError(_)
        | E::EndpointError(_) => ErrorKind::Unavailable,
        E::InvalidArgs(_) | E::InvalidUri(_) | E::InvalidMetadataValue(_) => ErrorKind::Invalid,
        E::Utf8Error(_) => ErrorKind::Data,
        _ => ErrorKind::Internal,
    }
}

/// Classifies a redb failure: I/O and lock contention may pass, corruption will not.
fn redb_kind(error: &redb::Error) -> ErrorKind {
    use redb::Error as E;
    match error {
        // Another process holds the file lock, or the disk hiccupped: may clear up.
        E::DatabaseAlreadyOpen | E::Io(_) | E::WouldBlock => ErrorKind::Unavailable,
        E::Corrupted(_)
        | E::UpgradeRequired(_)
        | E::TableTypeMismatch { .. }
        | E::TypeDefinitionChanged { .. } => ErrorKind::Data,
        E::ValueTooLarge(_) => ErrorKind::Invalid,
        _ => ErrorKind::Internal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_messages() {
        let e = Error::Conflict {
            key: "/k".into(),
            expected: Precondition::ModRevision(7),
        };
        assert_eq!(e.kind(), ErrorKind::Conflict);
        assert_eq!(
            e.to_string(),
            "compare failed: key=`/k`, expected mod_revision=7"
        );
        assert_eq!(Error::invalid("x").kind(), ErrorKind::Invalid);
        assert_eq!(
            Error::not_found("topic `a`").to_string(),
            "topic `a` not found"
        );
        let e = Error::storage("open `/x`", redb::Error::Corrupted("bad".into()));
        assert_eq!(e.kind(), ErrorKind::Data);
        let e = Error::storage("commit", redb::Error::DatabaseAlreadyOpen);
        assert_eq!(e.kind(), ErrorKind::Unavailable);
        let e = Error::Compacted {
            requested: 3,
            available: 10,
        };
        assert_eq!(e.kind(), ErrorKind::Compacted);
    }

    #[cfg(feature = "etcd")]
    #[test]
    fn etcd_kinds() {
        let status = |code| {
            Error::etcd(
                "get `/k`",
                etcd_client::Error::GRpcStatus(tonic::Status::new(code, "x")),
            )
        };
        assert_eq!(
            status(tonic::Code::Unavailable).kind(),
            ErrorKind::Unavailable
        );
        assert_eq!(
            status(tonic::Code::InvalidArgument).kind(),
            ErrorKind::Invalid
        );
        assert_eq!(status(tonic::Code::NotFound).kind(), ErrorKind::NotFound);
        assert_eq!(status(tonic::Code::OutOfRange).kind(), ErrorKind::Compacted);
        let e = Error::etcd(
            "keep lease 1 alive",
            etcd_client::Error::LeaseKeepAliveError("lease not found".into()),
        );
        assert_eq!(e.kind(), ErrorKind::NotFound);
        assert_eq!(e.to_string(), "etcd: keep lease 1 alive");
    }
}
