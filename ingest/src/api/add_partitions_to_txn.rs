//! AddPartitionsToTxn: the partitions a transactional producer is about to write to join its
//! transaction, so the coordinator writes their markers at the end. v0–3 carry one
//! transaction (clients); v4+ a batch of them, possibly `verify_only` (a broker asking
//! whether partitions are in a transaction, KIP-890).

use kafka_protocol::ResponseError;
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::{AddPartitionsToTxnRequest, AddPartitionsToTxnResponse};

use super::RequestContext;
use crate::host::Host;
use crate::txn::{ProducerRef, TxnCoordinator, fenced_for_version};
use tierlog_metadata::AclOperation;

/// PRODUCER_FENCED replaced INVALID_PRODUCER_EPOCH in this version.
const FENCED_SINCE: i16 = 2;

pub(super) async fn handle(
    ctx: &RequestContext<'_>,
    txns: &TxnCoordinator,
    h: &Host,
    body: AddPartitionsToTxnRequest,
) -> AddPartitionsToTxnResponse {
    if ctx.version() <= 3 {
        let producer = ProducerRef {
            id: body.v3_and_below_producer_id.0,
            epoch: body.v3_and_below_producer_epoch,
        };
        let results = add(
            ctx,
            txns,
            h,
            body.v3_and_below_transactional_id.as_str(),
            producer,
            &body.v3_and_below_topics,
            false,
        )
        .await;
        return AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(results);
    }
    // As Kafka: the batched versions (v4+) are broker-to-broker: CLUSTER_ACTION.
    if !ctx.cluster(AclOperation::ClusterAction) {
        return AddPartitionsToTxnResponse::default().with_error_code(
            crate::error::Error::ClusterAuthorizationFailed(String::new()).kafka_code(),
        );
    }
    let mut out = Vec::with_capacity(body.transactions.len());
    for t in &body.transactions {
        let producer = ProducerRef {
            id: t.producer_id.0,
            epoch: t.producer_epoch,
        };
        let topic_results = add(
            ctx,
            txns,
            h,
            t.transactional_id.as_str(),
            producer,
            &t.topics,
            t.verify_only,
        )
        .await;
        out.push(
            AddPartitionsToTxnResult::default()
                .with_transactional_id(t.transactional_id.clone())
                .with_topic_results(topic_results),
        );
    }
    AddPartitionsToTxnResponse::default().with_results_by_transaction(out)
}

/// Adds (or, `verify_only`, checks) one transaction's partitions; one code per partition.
async fn add(
    ctx: &RequestContext<'_>,
    txns: &TxnCoordinator,
    h: &Host,
    transactional_id: &str,
    producer: ProducerRef,
    topics: &[AddPartitionsToTxnTopic],
    verify_only: bool,
) -> Vec<AddPartitionsToTxnTopicResult> {
    let view = h.cluster.view();
    let known = |t: &str, p: i32| {
        view.topics
            .get(t)
            .is_some_and(|m| p >= 0 && p < m.partitions)
    };
    let all: Vec<(String, i32)> = topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| (t.name.0.to_string(), *p)))
        .collect();
    let any_unknown = all.iter().any(|(t, p)| !known(t, *p));
    // As Kafka (client versions): WRITE on the transactional id, then on every topic; any
    // refusal adds nothing.
    let id_denied =
        ctx.version() <= 3 && !ctx.transactional_id(AclOperation::Write, transactional_id);
    let denied_topics: std::collections::HashSet<&str> = if ctx.version() <= 3 && !id_denied {
        all.iter()
            .map(|(t, _)| t.as_str())
            .filter(|t| !ctx.topic(AclOperation::Write, t))
            .collect()
    } else {
        Default::default()
    };
    let codes: Vec<i16> = if id_denied {
        vec![
            crate::error::Error::TransactionalIdAuthorizationFailed(String::new()).kafka_code();
            all.len()
        ]
    } else if !denied_topics.is_empty() || any_unknown {
        // Kafka adds nothing when a partition is unknown, and says which.
        all.iter()
            .map(|(t, p)| {
                if denied_topics.contains(t.as_str()) {
                    crate::error::Error::TopicAuthorizationFailed(String::new()).kafka_code()
                } else if known(t, *p) {
                    ResponseError::OperationNotAttempted.code()
                } else {
                    ResponseError::UnknownTopicOrPartition.code()
                }
            })
            .collect()
    } else if verify_only {
        let m = txns.describe(transactional_id).await;
        all.iter()
            .map(|(t, p)| match &m {
                Ok(Some(m))
                    if m.producer_id == producer.id
                        && m.producer_epoch == producer.epoch
                        && m.state == tierlog_metadata::TxnState::Ongoing
                        && m.partitions.get(t).is_some_and(|s| s.contains(p)) =>
                {
                    0
                }
                Err(e) => e.kafka_code(),
                _ => ResponseError::InvalidTxnState.code(),
            })
            .collect()
    } else {
        let code = match txns.add(transactional_id, producer, &all, None).await {
            Ok(()) => 0,
            Err(e) => fenced_for_version(e, ctx.version(), FENCED_SINCE).kafka_code(),
        };
        vec![code; all.len()]
    };
    let mut codes = codes.into_iter();
    topics
        .iter()
        .map(|t| {
            AddPartitionsToTxnTopicResult::default()
                .with_name(t.name.clone())
                .with_results_by_partition(
                    t.partitions
                        .iter()
                        .map(|p| {
                            AddPartitionsToTxnPartitionResult::default()
                                .with_partition_index(*p)
                                .with_partition_error_code(codes.next().unwrap_or(0))
                        })
                        .collect(),
                )
        })
        .collect()
}
