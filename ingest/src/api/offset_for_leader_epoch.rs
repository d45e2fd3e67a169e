//! OffsetForLeaderEpoch (KIP-101/320): where a leader epoch ends in the leader's log.
//! Followers ask it before fetching in a new epoch, to truncate a divergent tail; consumers
//! (librdkafka) ask it after a leader change, to detect log truncation under them.
//!
//! Answered by the leader only. The answer for an epoch is `(the largest epoch ≤ it known
//! here, the start offset of the next higher epoch)`, the log end for the current epoch, and
//! `(-1, -1)` for an epoch newer than the current one or older than everything kept.

use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};

use super::RequestContext;
use crate::error::Error;
use crate::host::Host;
use tierlog_metadata::{AclOperation, AclResourceType};

pub(super) fn handle(
    ctx: &RequestContext<'_>,
    h: &Host,
    body: OffsetForLeaderEpochRequest,
) -> OffsetForLeaderEpochResponse {
    // As Kafka: a replica (CLUSTER_ACTION) may ask about every topic, a client about those it
    // may describe.
    let replica = ctx.allowed(
        AclOperation::ClusterAction,
        AclResourceType::Cluster,
        crate::security::acl::CLUSTER_NAME,
    );
    let topics = body
        .topics
        .into_iter()
        .map(|t| {
            let authorized = replica || ctx.topic(AclOperation::Describe, t.topic.0.as_str());
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let r = EpochEndOffset::default().with_partition(p.partition);
                    let current = p.current_leader_epoch;
                    let outcome = if authorized {
                        h.partitions.lookup(t.topic.0.as_str(), p.partition)
                    } else {
                        Err(Error::TopicAuthorizationFailed(t.topic.0.to_string()))
                    };
                    let outcome =
                        outcome.and_then(|part| part.epoch_end_offset(current, p.leader_epoch));
                    match outcome {
                        Ok((epoch, end)) => r.with_leader_epoch(epoch).with_end_offset(end),
                        Err(e) => r
                            .with_error_code(e.kafka_code())
                            .with_leader_epoch(-1)
                            .with_end_offset(-1),
                    }
                })
                .collect();
            OffsetForLeaderTopicResult::default()
                .with_topic(t.topic)
                .with_partitions(partitions)
        })
        .collect();
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}
