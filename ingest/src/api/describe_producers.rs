//! DescribeProducers: the idempotent and transactional producers a partition leader knows
//! (`kafka-transactions describe-producers`, and finding hanging transactions).

use kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use kafka_protocol::messages::{DescribeProducersRequest, DescribeProducersResponse, ProducerId};

use super::RequestContext;
use crate::error::Error;
use crate::host::Host;
use tierlog_metadata::AclOperation;

pub(super) fn handle(
    ctx: &RequestContext<'_>,
    h: &Host,
    body: DescribeProducersRequest,
) -> DescribeProducersResponse {
    let topics = body
        .topics
        .iter()
        .map(|t| {
            let name = t.name.0.as_str();
            let authorized = ctx.topic(AclOperation::Read, name);
            let partitions = t
                .partition_indexes
                .iter()
                .map(|&index| {
                    let r = PartitionResponse::default().with_partition_index(index);
                    let found = if authorized {
                        h.partitions.lookup(name, index)
                    } else {
                        Err(Error::TopicAuthorizationFailed(name.to_owned()))
                    };
                    let leader = found.and_then(|p| p.check_leader(-1).map(|_| p));
                    match leader {
                        Ok(p) => r.with_active_producers(
                            p.log
                                .producers()
                                .into_iter()
                                .map(|e| {
                                    ProducerState::default()
                                        .with_producer_id(ProducerId(e.producer_id))
                                        .with_producer_epoch(i32::from(e.producer_epoch))
                                        .with_last_sequence(e.last_sequence)
                                        .with_last_timestamp(e.last_timestamp)
                                        .with_coordinator_epoch(e.coordinator_epoch)
                                        .with_current_txn_start_offset(
                                            e.current_txn_start_offset.unwrap_or(-1),
                                        )
                                })
                                .collect(),
                        ),
                        Err(e) => r
                            .with_error_code(e.kafka_code())
                            .with_error_message(Some(e.message())),
                    }
                })
                .collect();
            TopicResponse::default()
                .with_name(t.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    DescribeProducersResponse::default().with_topics(topics)
}
