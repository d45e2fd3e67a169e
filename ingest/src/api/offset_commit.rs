//! OffsetCommit: a group's committed offsets, checked as Kafka's classic coordinator checks
//! them (generation, member, or a next-generation member's epoch from v9).

use std::sync::Arc;

use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::*;

use super::RequestContext;
use super::groups::commit_error;
use crate::group::Coordinator;
use crate::group::GroupError;
use crate::group::offsets::CommittedOffset;
use crate::host::Host;
use tierlog_metadata::AclOperation;

/// Kafka's `offset.metadata.max.bytes`.
const MAX_METADATA_BYTES: usize = 4096;

pub(super) async fn handle(
    ctx: &RequestContext<'_>,
    g: &Arc<Coordinator>,
    h: &Host,
    body: OffsetCommitRequest,
) -> OffsetCommitResponse {
    let group = body.group_id.0.to_string();
    let instance = body.group_instance_id.as_ref().map(|s| s.to_string());
    // As Kafka: READ on the group first, then READ on each topic.
    let group_error = if ctx.group(AclOperation::Read, &group) {
        commit_error(
            g,
            h,
            &group,
            body.member_id.as_str(),
            body.generation_id_or_member_epoch,
            instance.as_deref(),
            ctx.version(),
        )
    } else {
        GroupError::GroupAuthorizationFailed.kafka_code()
    };
    let now = ctx.clock.now_ms();
    let mut to_store = Vec::new();
    let mut topics = Vec::with_capacity(body.topics.len());
    for t in &body.topics {
        let state = h.partitions.topic(t.name.0.as_str());
        let topic_ok = group_error != 0 || ctx.topic(AclOperation::Read, t.name.0.as_str());
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for p in &t.partitions {
            let exists = state
                .as_ref()
                .is_some_and(|s| p.partition_index >= 0 && p.partition_index < s.meta.partitions);
            let code = if group_error != 0 {
                group_error
            } else if !topic_ok {
                crate::error::Error::TopicAuthorizationFailed(String::new()).kafka_code()
            } else if !exists {
                GroupError::UnknownTopicOrPartition.kafka_code()
            } else if p
                .committed_metadata
                .as_ref()
                .is_some_and(|m| m.len() > MAX_METADATA_BYTES)
            {
                GroupError::OffsetMetadataTooLarge.kafka_code()
            } else {
                to_store.push((
                    t.name.0.to_string(),
                    p.partition_index,
                    CommittedOffset {
                        offset: p.committed_offset,
                        leader_epoch: if ctx.version() >= 6 {
                            p.committed_leader_epoch
                        } else {
                            -1
                        },
                        metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
                        commit_ms: now,
                    },
                ));
                0
            };
            partitions.push(
                OffsetCommitResponsePartition::default()
                    .with_partition_index(p.partition_index)
                    .with_error_code(code),
            );
        }
        topics.push(
            OffsetCommitResponseTopic::default()
                .with_name(t.name.clone())
                .with_partitions(partitions),
        );
    }
    if !to_store.is_empty() {
        // One transaction for the whole commit, durable before we answer.
        if let Err(e) = g.offsets.commit(&group, &to_store).await {
            tracing::warn!(group = %group, error = %e, "storing committed offsets failed");
            let code = GroupError::CoordinatorNotAvailable.kafka_code();
            for t in &mut topics {
                for p in &mut t.partitions {
                    if p.error_code == 0 {
                        p.error_code = code;
                    }
                }
            }
        } else {
            g.ensure_group(&group);
        }
    }
    OffsetCommitResponse::default().with_topics(topics)
}
