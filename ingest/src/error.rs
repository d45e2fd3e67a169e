//! Errors of the node and the single mapping from errors to Kafka error codes.
//!
//! Handlers return [`Error`]; the wire code a client sees is decided only by
//! [`Error::kafka_code`], so the same failure always reads the same to every client.

use kafka_protocol::ResponseError;

use crate::group::GroupError;

/// Result alias for the node.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong while serving a request or running the node.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The partition log refused or failed the operation.
    #[error(transparent)]
    Log(#[from] tierlog_tiering::Error),
    /// The metadata store refused or failed the operation.
    #[error(transparent)]
    Metadata(#[from] tierlog_metadata::Error),
    /// The topic or partition does not exist on this node.
    #[error("unknown topic or partition: {0}")]
    UnknownTopicOrPartition(String),
    /// A topic id that names no topic.
    #[error("unknown topic id: {0}")]
    UnknownTopicId(uuid::Uuid),
    /// A topic name that Kafka's naming rules reject.
    #[error("invalid topic: {0}")]
    InvalidTopic(String),
    /// The topic exists already.
    #[error("topic already exists: {0}")]
    TopicAlreadyExists(String),
    /// A partition count that cannot be used.
    #[error("invalid partitions: {0}")]
    InvalidPartitions(String),
    /// A replication factor that cannot be met.
    #[error("invalid replication factor: {0}")]
    InvalidReplicationFactor(String),
    /// Replica assignments that name nodes that cannot host the partition.
    #[error("invalid replica assignment: {0}")]
    InvalidReplicaAssignment(String),
    /// A topic config name or value that is not accepted.
    #[error("invalid config: {0}")]
    InvalidConfig(String),
    /// A request that is well formed but asks for something impossible.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// `acks` other than 0, 1 or -1.
    #[error("invalid required acks: {0}")]
    InvalidRequiredAcks(i16),
    /// The request names a leader epoch newer than ours.
    #[error("unknown leader epoch: requested={requested}, current={current}")]
    UnknownLeaderEpoch { requested: i32, current: i32 },
    /// The request names a leader epoch older than ours.
    #[error("fenced leader epoch: requested={requested}, current={current}")]
    FencedLeaderEpoch { requested: i32, current: i32 },
    /// This node does not lead the partition (or no longer: its lease lapsed).
    #[error("not the leader of {0}")]
    NotLeader(String),
    /// The partition has no leader right now (it is being elected, or every ISR member is down).
    #[error("no leader available for {0}")]
    LeaderNotAvailable(String),
    /// acks=all with fewer in-sync replicas than `min.insync.replicas`.
    #[error("not enough in-sync replicas: isr={isr}, min.insync.replicas={min}")]
    NotEnoughReplicas { isr: usize, min: i32 },
    /// The batch was appended but the ISR shrank below `min.insync.replicas` meanwhile.
    #[error("not enough in-sync replicas after append: isr={isr}, min.insync.replicas={min}")]
    NotEnoughReplicasAfterAppend { isr: usize, min: i32 },
    /// The request did not complete in the time the client allowed.
    #[error("request timed out: {0}")]
    RequestTimedOut(String),
    /// An operation this node does not offer (yet).
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// The node is shutting down.
    #[error("node is shutting down")]
    ShuttingDown,
    /// A bug or an unexpected state.
    #[error("internal error: {0}")]
    Internal(String),
    /// A newer producer with the same transactional id (or a newer epoch) exists.
    #[error("producer fenced: {0}")]
    ProducerFenced(String),
    /// The producer epoch is not the current one (older clients' word for a fenced producer).
    #[error("invalid producer epoch: {0}")]
    InvalidProducerEpoch(String),
    /// The producer id is not the one the transactional id holds.
    #[error("invalid producer id mapping: {0}")]
    InvalidProducerIdMapping(String),
    /// The transaction is completing; retry.
    #[error("concurrent transactions: {0}")]
    ConcurrentTransactions(String),
    /// The request does not fit the transaction's state.
    #[error("invalid transaction state: {0}")]
    InvalidTxnState(String),
    /// The partition could not be verified against the transaction coordinator for now (its
    /// state is being completed or unreachable): Kafka's retriable NOT_ENOUGH_REPLICAS.
    #[error("unable to verify the partition is in the transaction: {0}")]
    VerificationUnavailable(String),
    /// Something failed with the transaction that the producer recovers from by aborting it
    /// (KIP-890, for clients that know the error: Produce v11+).
    #[error("transaction abortable: {0}")]
    TransactionAbortable(String),
    /// `transaction.timeout.ms` outside what the coordinator accepts.
    #[error("invalid transaction timeout: {0}")]
    InvalidTransactionTimeout(String),
    /// No transaction has this transactional id.
    #[error("transactional id not found: {0}")]
    TransactionalIdNotFound(String),
    /// Not attempted because another part of the request failed.
    #[error("operation not attempted: {0}")]
    OperationNotAttempted(String),
    /// The principal may not do this to the topic.
    #[error("not authorized to access topic: {0}")]
    TopicAuthorizationFailed(String),
    /// The principal may not do this to the group.
    #[error("not authorized to access group: {0}")]
    GroupAuthorizationFailed(String),
    /// The principal may not do this on the cluster.
    #[error("cluster authorization failed: {0}")]
    ClusterAuthorizationFailed(String),
    /// The principal may not use the transactional id.
    #[error("transactional id authorization failed: {0}")]
    TransactionalIdAuthorizationFailed(String),

    #[error("no reassignment in progress: {0}")]
    NoReassignmentInProgress(String),

    #[error("election not needed: {0}")]
    ElectionNotNeeded(String),

    #[error("preferred leader not available: {0}")]
    PreferredLeaderNotAvailable(String),

    #[error("eligible leaders not available: {0}")]
    EligibleLeadersNotAvailable(String),
}

impl Error {
    /// The Kafka error code a client receives for this error. The one place that decides it.
    pub fn kafka_code(&self) -> i16 {
        use tierlog_tiering::Error as L;
        let e = match self {
            Error::Log(e) => match e {
                L::CorruptMessage { .. } => ResponseError::CorruptMessage,
                L::MessageTooLarge { .. } => ResponseError::MessageTooLarge,
                L::InvalidRecord { .. } => ResponseError::InvalidRecord,
                L::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange,
                L::OutOfOrderSequence { .. } => ResponseError::OutOfOrderSequenceNumber,
                L::InvalidProducerEpoch { .. } => ResponseError::InvalidProducerEpoch,
                L::InvalidTxnState { .. } => ResponseError::InvalidTxnState,
                _ => match e.kind() {
                    tierlog_tiering::ErrorKind::Invalid => ResponseError::InvalidRecord,
                    tierlog_tiering::ErrorKind::OffsetOutOfRange => ResponseError::OffsetOutOfRange,
                    tierlog_tiering::ErrorKind::Data => ResponseError::KafkaStorageError,
                    _ => ResponseError::KafkaStorageError,
                },
            },
            Error::Metadata(e) => match e.kind() {
                tierlog_metadata::ErrorKind::AlreadyExists => ResponseError::TopicAlreadyExists,
                tierlog_metadata::ErrorKind::NotFound => ResponseError::UnknownTopicOrPartition,
                tierlog_metadata::ErrorKind::Invalid => ResponseError::InvalidRequest,
                tierlog_metadata::ErrorKind::Unavailable
                | tierlog_metadata::ErrorKind::Conflict => ResponseError::RequestTimedOut,
                _ => ResponseError::UnknownServerError,
            },
            Error::UnknownTopicOrPartition(_) => ResponseError::UnknownTopicOrPartition,
            Error::UnknownTopicId(_) => ResponseError::UnknownTopicId,
            Error::InvalidTopic(_) => ResponseError::InvalidTopicException,
            Error::TopicAlreadyExists(_) => ResponseError::TopicAlreadyExists,
            Error::InvalidPartitions(_) => ResponseError::InvalidPartitions,
            Error::InvalidReplicationFactor(_) => ResponseError::InvalidReplicationFactor,
            Error::InvalidReplicaAssignment(_) => ResponseError::InvalidReplicaAssignment,
            Error::InvalidConfig(_) => ResponseError::InvalidConfig,
            Error::InvalidRequest(_) => ResponseError::InvalidRequest,
            Error::InvalidRequiredAcks(_) => ResponseError::InvalidRequiredAcks,
            Error::UnknownLeaderEpoch { .. } => ResponseError::UnknownLeaderEpoch,
            Error::FencedLeaderEpoch { .. } => ResponseError::FencedLeaderEpoch,
            Error::NotLeader(_) => ResponseError::NotLeaderOrFollower,
            Error::LeaderNotAvailable(_) => ResponseError::LeaderNotAvailable,
            Error::NotEnoughReplicas { .. } => ResponseError::NotEnoughReplicas,
            Error::NotEnoughReplicasAfterAppend { .. } => {
                ResponseError::NotEnoughReplicasAfterAppend
            }
            Error::RequestTimedOut(_) => ResponseError::RequestTimedOut,
            Error::Unsupported(_) => ResponseError::UnsupportedVersion,
            Error::ShuttingDown => ResponseError::NotLeaderOrFollower,
            Error::Internal(_) => ResponseError::UnknownServerError,
            Error::ProducerFenced(_) => ResponseError::ProducerFenced,
            Error::InvalidProducerEpoch(_) => ResponseError::InvalidProducerEpoch,
            Error::InvalidProducerIdMapping(_) => ResponseError::InvalidProducerIdMapping,
            Error::ConcurrentTransactions(_) => ResponseError::ConcurrentTransactions,
            Error::InvalidTxnState(_) => ResponseError::InvalidTxnState,
            Error::VerificationUnavailable(_) => ResponseError::NotEnoughReplicas,
            Error::TransactionAbortable(_) => ResponseError::TransactionAbortable,
            Error::InvalidTransactionTimeout(_) => ResponseError::InvalidTransactionTimeout,
            Error::TransactionalIdNotFound(_) => ResponseError::TransactionalIdNotFound,
            Error::OperationNotAttempted(_) => ResponseError::OperationNotAttempted,
            Error::TopicAuthorizationFailed(_) => ResponseError::TopicAuthorizationFailed,
            Error::GroupAuthorizationFailed(_) => ResponseError::GroupAuthorizationFailed,
            Error::ClusterAuthorizationFailed(_) => ResponseError::ClusterAuthorizationFailed,
            Error::TransactionalIdAuthorizationFailed(_) => {
                ResponseError::TransactionalIdAuthorizationFailed
            }
            Error::NoReassignmentInProgress(_) => ResponseError::NoReassignmentInProgress,
            Error::ElectionNotNeeded(_) => ResponseError::ElectionNotNeeded,
            Error::PreferredLeaderNotAvailable(_) => ResponseError::PreferredLeaderNotAvailable,
            Error::EligibleLeadersNotAvailable(_) => ResponseError::EligibleLeadersNotAvailable,
        };
        e.code()
    }

    /// The message to send along with the code, where the API has a field for one.
    pub fn message(&self) -> kafka_protocol::protocol::StrBytes {
        kafka_protocol::protocol::StrBytes::from_string(self.to_string())
    }
}

impl GroupError {
    /// The Kafka error code for a group error (part of the one mapping above).
    pub(crate) fn kafka_code(self) -> i16 {
        let e = match self {
            GroupError::GroupAuthorizationFailed => ResponseError::GroupAuthorizationFailed,
            GroupError::CoordinatorNotAvailable => ResponseError::CoordinatorNotAvailable,
            GroupError::NotCoordinator => ResponseError::NotCoordinator,
            GroupError::FencedInstanceId => ResponseError::FencedInstanceId,
            GroupError::FencedMemberEpoch => ResponseError::FencedMemberEpoch,
            GroupError::StaleMemberEpoch => ResponseError::StaleMemberEpoch,
            GroupError::GroupIdNotFound => ResponseError::GroupIdNotFound,
            GroupError::GroupSubscribedToTopic => ResponseError::GroupSubscribedToTopic,
            GroupError::IllegalGeneration => ResponseError::IllegalGeneration,
            GroupError::InconsistentGroupProtocol => ResponseError::InconsistentGroupProtocol,
            GroupError::InvalidGroupId => ResponseError::InvalidGroupId,
            GroupError::InvalidRequest => ResponseError::InvalidRequest,
            GroupError::InvalidRegularExpression => ResponseError::InvalidRegularExpression,
            GroupError::InvalidSessionTimeout => ResponseError::InvalidSessionTimeout,
            GroupError::MemberIdRequired => ResponseError::MemberIdRequired,
            GroupError::NonEmptyGroup => ResponseError::NonEmptyGroup,
            GroupError::OffsetMetadataTooLarge => ResponseError::OffsetMetadataTooLarge,
            GroupError::RebalanceInProgress => ResponseError::RebalanceInProgress,
            GroupError::UnknownMemberId => ResponseError::UnknownMemberId,
            GroupError::UnknownServerError => ResponseError::UnknownServerError,
            GroupError::UnknownTopicOrPartition => ResponseError::UnknownTopicOrPartition,
            GroupError::UnreleasedInstanceId => ResponseError::UnreleasedInstanceId,
            GroupError::UnsupportedAssignor => ResponseError::UnsupportedAssignor,
            GroupError::UnsupportedVersion => ResponseError::UnsupportedVersion,
        };
        e.code()
    }
}
