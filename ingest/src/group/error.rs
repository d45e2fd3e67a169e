//! Why the group coordinator refuses a request: Kafka's consumer-group error conditions.
//!
//! The coordinator returns these; `crate::error` maps each to its wire code (the one place
//! that decides a code).

/// A consumer-group error condition, named as Kafka names its error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum GroupError {
    #[error("not authorized to access the group")]
    GroupAuthorizationFailed,
    #[error("the coordinator is not available (the group is being unloaded or deleted)")]
    CoordinatorNotAvailable,
    #[error("another node coordinates this group")]
    NotCoordinator,
    #[error("the static member's instance id is taken by a newer member")]
    FencedInstanceId,
    #[error("the member epoch is behind the group's: the member was fenced")]
    FencedMemberEpoch,
    #[error("the member epoch is ahead of the group's")]
    StaleMemberEpoch,
    #[error("no such group")]
    GroupIdNotFound,
    #[error("the group is subscribed to the topic")]
    GroupSubscribedToTopic,
    #[error("the generation is not the group's current one")]
    IllegalGeneration,
    #[error("the member's protocol type or protocols do not match the group's")]
    InconsistentGroupProtocol,
    #[error("the group id is empty or invalid")]
    InvalidGroupId,
    #[error("invalid request")]
    InvalidRequest,
    #[error("the subscription's regular expression does not compile")]
    InvalidRegularExpression,
    #[error("the session timeout is outside the coordinator's bounds")]
    InvalidSessionTimeout,
    #[error("a member id is required: rejoin with the one given")]
    MemberIdRequired,
    #[error("the group still has members")]
    NonEmptyGroup,
    #[error("the offset metadata is too large")]
    OffsetMetadataTooLarge,
    #[error("the group is rebalancing")]
    RebalanceInProgress,
    #[error("the member is not in the group")]
    UnknownMemberId,
    #[error("unexpected error in the coordinator")]
    UnknownServerError,
    #[error("unknown topic or partition")]
    UnknownTopicOrPartition,
    #[error("the instance id is still held by an earlier member")]
    UnreleasedInstanceId,
    #[error("the assignor is not supported")]
    UnsupportedAssignor,
    #[error("unsupported version")]
    UnsupportedVersion,
}
