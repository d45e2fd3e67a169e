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
    let codes: Vec<i16> = if any_unknown {
        // Kafka adds nothing when a partition is unknown, and says which.
        all.iter()
            .map(|(t, p)| {
                if known(t, *p) {
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
