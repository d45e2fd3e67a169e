//! TxnOffsetCommit: offsets a transactional producer commits for a consumer group (Kafka's
//! `sendOffsetsToTransaction`). They are staged in the transaction and become the group's
//! committed offsets only when it commits; an abort drops them. From v5 (KIP-890) the group
//! joins the transaction here, without AddOffsetsToTxn.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{TxnOffsetCommitRequest, TxnOffsetCommitResponse};

use super::RequestContext;
use super::groups::commit_error;
use crate::error::Error;
use crate::group::Coordinator;
use crate::group::offsets::CommittedOffset;
use crate::host::Host;
use crate::txn::{ProducerRef, TxnCoordinator, fenced_for_version};
use tierlog_metadata::AclOperation;

/// PRODUCER_FENCED replaced INVALID_PRODUCER_EPOCH in this version.
const FENCED_SINCE: i16 = 3;
/// From this version the commit adds its group to the transaction itself (KIP-890).
const IMPLICIT_ADD_SINCE: i16 = 5;

/// From this version the request names the member and its generation, which the group checks
/// (KIP-447: a zombie of a rebalanced consumer cannot commit).
const MEMBER_CHECKED_SINCE: i16 = 3;

pub(super) async fn handle(
    ctx: &RequestContext<'_>,
    txns: &TxnCoordinator,
    g: &Coordinator,
    h: &Host,
    body: TxnOffsetCommitRequest,
) -> TxnOffsetCommitResponse {
    // As Kafka: WRITE on the transactional id, READ on the group, READ on each topic.
    let auth_error = if !ctx.transactional_id(AclOperation::Write, body.transactional_id.as_str()) {
        Error::TransactionalIdAuthorizationFailed(body.transactional_id.to_string()).kafka_code()
    } else if !ctx.group(AclOperation::Read, body.group_id.0.as_str()) {
        Error::GroupAuthorizationFailed(body.group_id.0.to_string()).kafka_code()
    } else {
        0
    };
    let denied_topics: std::collections::HashSet<&str> = if auth_error == 0 {
        body.topics
            .iter()
            .map(|t| t.name.0.as_str())
            .filter(|t| !ctx.topic(AclOperation::Read, t))
            .collect()
    } else {
        Default::default()
    };
    let member_error = if auth_error != 0 {
        auth_error
    } else if ctx.version() >= MEMBER_CHECKED_SINCE
        && (body.generation_id >= 0 || !body.member_id.is_empty())
    {
        // Checked with OffsetCommit v9's rules (member epochs for KIP-848 groups).
        commit_error(
            g,
            h,
            body.group_id.0.as_str(),
            body.member_id.as_str(),
            body.generation_id,
            body.group_instance_id.as_deref(),
            9,
        )
    } else {
        0
    };
    let producer = ProducerRef {
        id: body.producer_id.0,
        epoch: body.producer_epoch,
    };
    let view = h.cluster.view();
    let known = |t: &str, p: i32| {
        view.topics
            .get(t)
            .is_some_and(|m| p >= 0 && p < m.partitions)
    };
    let now = ctx.clock.now_ms();
    let mut staged = Vec::new();
    for t in &body.topics {
        for p in &t.partitions {
            if known(t.name.0.as_str(), p.partition_index)
                && !denied_topics.contains(t.name.0.as_str())
            {
                staged.push((
                    t.name.0.to_string(),
                    p.partition_index,
                    CommittedOffset {
                        offset: p.committed_offset,
                        leader_epoch: p.committed_leader_epoch,
                        metadata: p.committed_metadata.as_ref().map(ToString::to_string),
                        commit_ms: now,
                    },
                ));
            }
        }
    }
    let (id, group) = (body.transactional_id.as_str(), body.group_id.0.as_str());
    let staged = async {
        if ctx.version() >= IMPLICIT_ADD_SINCE {
            txns.add(id, producer, &[], Some(group)).await?;
        }
        txns.stage_offsets(id, producer, group, &staged).await
    };
    let code = if member_error != 0 {
        member_error
    } else {
        match staged.await {
            Ok(()) => 0,
            Err(e) => fenced_for_version(e, ctx.version(), FENCED_SINCE).kafka_code(),
        }
    };
    let topics = body
        .topics
        .iter()
        .map(|t| {
            TxnOffsetCommitResponseTopic::default()
                .with_name(t.name.clone())
                .with_partitions(
                    t.partitions
                        .iter()
                        .map(|p| {
                            let code =
                                if member_error == 0 && denied_topics.contains(t.name.0.as_str()) {
                                    Error::TopicAuthorizationFailed(String::new()).kafka_code()
                                } else if known(t.name.0.as_str(), p.partition_index) {
                                    code
                                } else {
                                    ResponseError::UnknownTopicOrPartition.code()
                                };
                            TxnOffsetCommitResponsePartition::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(code)
                        })
                        .collect(),
                )
        })
        .collect();
    TxnOffsetCommitResponse::default().with_topics(topics)
}
