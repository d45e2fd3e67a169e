//! OffsetDelete: removes a group's committed offsets of partitions it no longer consumes.

use std::sync::Arc;

use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::*;

use super::RequestContext;
use super::groups::coordinator_error;
use crate::group::Coordinator;
use crate::group::GroupError;
use crate::host::Host;
use tierlog_metadata::AclOperation;

pub(super) async fn handle(
    ctx: &RequestContext<'_>,
    g: &Arc<Coordinator>,
    h: &Host,
    body: OffsetDeleteRequest,
) -> OffsetDeleteResponse {
    let group = body.group_id.0.as_str();
    // As Kafka: DELETE on the group, then READ on each topic.
    if !ctx.group(AclOperation::Delete, group) {
        return OffsetDeleteResponse::default()
            .with_error_code(GroupError::GroupAuthorizationFailed.kafka_code());
    }
    let not_here = coordinator_error(h, group);
    if not_here != 0 {
        return OffsetDeleteResponse::default().with_error_code(not_here);
    }
    let Some(subscribed) = g.subscriptions(group) else {
        return OffsetDeleteResponse::default()
            .with_error_code(GroupError::GroupIdNotFound.kafka_code());
    };
    let mut to_delete = Vec::new();
    let topics: Vec<OffsetDeleteResponseTopic> = body
        .topics
        .into_iter()
        .map(|t| {
            let busy = subscribed.contains(t.name.0.as_str());
            let readable = ctx.topic(AclOperation::Read, t.name.0.as_str());
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let code = if !readable {
                        crate::error::Error::TopicAuthorizationFailed(String::new()).kafka_code()
                    } else if busy {
                        GroupError::GroupSubscribedToTopic.kafka_code()
                    } else {
                        to_delete.push((t.name.0.to_string(), p.partition_index));
                        0
                    };
                    OffsetDeleteResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(code)
                })
                .collect();
            OffsetDeleteResponseTopic::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    if g.offsets.delete(group, &to_delete).await.is_err() {
        return OffsetDeleteResponse::default()
            .with_error_code(GroupError::CoordinatorNotAvailable.kafka_code());
    }
    OffsetDeleteResponse::default().with_topics(topics)
}
