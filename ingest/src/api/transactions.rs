//! ListTransactions and DescribeTransactions: the transaction coordinator's view, for
//! `kafka-transactions list` / `describe` (and the admin client's `listTransactions`,
//! `describeTransactions`, `findHangingTransactions`).
//!
//! The admin client asks every node for ListTransactions and merges the answers, so each node
//! lists the transactional ids it coordinates (all of them live in the metadata store).

use kafka_protocol::ResponseError;
use kafka_protocol::messages::describe_transactions_response::{
    TopicData, TransactionState as Described,
};
use kafka_protocol::messages::list_transactions_response::TransactionState as Listed;
use kafka_protocol::messages::{
    DescribeTransactionsRequest, DescribeTransactionsResponse, ListTransactionsRequest,
    ListTransactionsResponse, ProducerId, TopicName, TransactionalId,
};
use tierlog_metadata::TxnState;

use super::RequestContext;
use crate::host::Host;
use crate::protocol::str_bytes;
use crate::txn::TxnCoordinator;
use tierlog_metadata::{AclOperation, AclResourceType};

pub(super) async fn list(
    ctx: &RequestContext<'_>,
    txns: &TxnCoordinator,
    h: &Host,
    body: ListTransactionsRequest,
) -> ListTransactionsResponse {
    let unknown: Vec<_> = body
        .state_filters
        .iter()
        .filter(|f| !TxnState::ALL.iter().any(|s| s.name() == f.as_str()))
        .cloned()
        .collect();
    let all = match txns.list().await {
        Ok(all) => all,
        Err(e) => return ListTransactionsResponse::default().with_error_code(e.kafka_code()),
    };
    let now = ctx.clock.now_ms();
    let pattern = match id_pattern(body.transactional_id_pattern.as_deref()) {
        Ok(p) => p,
        Err(_) => {
            return ListTransactionsResponse::default()
                .with_error_code(ResponseError::InvalidRequest.code());
        }
    };
    let states = all
        .into_iter()
        .filter(|m| h.cluster.coordinates(&m.transactional_id))
        // As Kafka: only the ids the principal may DESCRIBE are listed.
        .filter(|m| {
            ctx.allowed(
                AclOperation::Describe,
                AclResourceType::TransactionalId,
                &m.transactional_id,
            )
        })
        .filter(|m| {
            body.state_filters.is_empty()
                || body
                    .state_filters
                    .iter()
                    .any(|f| f.as_str() == m.state.name())
        })
        .filter(|m| {
            body.producer_id_filters.is_empty()
                || body
                    .producer_id_filters
                    .iter()
                    .any(|p| p.0 == m.producer_id)
        })
        .filter(|m| {
            body.duration_filter < 0
                || (m.state == TxnState::Ongoing
                    && now.saturating_sub(m.start_ms) >= body.duration_filter)
        })
        .filter(|m| {
            pattern
                .as_ref()
                .is_none_or(|p| p.is_match(&m.transactional_id))
        })
        .map(|m| {
            Listed::default()
                .with_transactional_id(TransactionalId(str_bytes(&m.transactional_id)))
                .with_producer_id(ProducerId(m.producer_id))
                .with_transaction_state(str_bytes(m.state.name()))
        })
        .collect();
    ListTransactionsResponse::default()
        .with_unknown_state_filters(unknown)
        .with_transaction_states(states)
}

pub(super) async fn describe(
    ctx: &RequestContext<'_>,
    txns: &TxnCoordinator,
    body: DescribeTransactionsRequest,
) -> DescribeTransactionsResponse {
    let mut out = Vec::with_capacity(body.transactional_ids.len());
    for id in body.transactional_ids {
        let d = Described::default().with_transactional_id(id.clone());
        if !ctx.transactional_id(AclOperation::Describe, id.as_str()) {
            let e = crate::error::Error::TransactionalIdAuthorizationFailed(id.to_string());
            out.push(d.with_error_code(e.kafka_code()));
            continue;
        }
        out.push(match txns.describe(id.as_str()).await {
            Ok(Some(m)) => d
                .with_transaction_state(str_bytes(m.state.name()))
                .with_transaction_timeout_ms(m.timeout_ms)
                .with_transaction_start_time_ms(m.start_ms)
                .with_producer_id(ProducerId(m.producer_id))
                .with_producer_epoch(m.producer_epoch)
                .with_topics(
                    // Only the topics the principal may DESCRIBE, as Kafka.
                    m.partitions
                        .iter()
                        .filter(|(t, _)| {
                            ctx.allowed(AclOperation::Describe, AclResourceType::Topic, t)
                        })
                        .map(|(t, ps)| {
                            TopicData::default()
                                .with_topic(TopicName(str_bytes(t)))
                                .with_partitions(ps.iter().copied().collect())
                        })
                        .collect(),
                ),
            // Kafka leaves the other fields at their defaults (0).
            Ok(None) => d.with_error_code(ResponseError::TransactionalIdNotFound.code()),
            Err(e) => d.with_error_code(e.kafka_code()),
        });
    }
    DescribeTransactionsResponse::default().with_transaction_states(out)
}

/// Kafka's `transactionalIdPattern`: a regular expression the whole id must match.
fn id_pattern(pattern: Option<&str>) -> Result<Option<regex::Regex>, regex::Error> {
    pattern
        .filter(|p| !p.is_empty())
        .map(|p| regex::Regex::new(&format!("^(?:{p})$")))
        .transpose()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::id_pattern;

    #[test]
    fn transactional_id_patterns_match_whole_ids() {
        let p = id_pattern(Some("app-.*")).unwrap().unwrap();
        assert!(p.is_match("app-1"));
        assert!(!p.is_match("my-app-1"));
        let exact = id_pattern(Some("exact")).unwrap().unwrap();
        assert!(!exact.is_match("exactly"));
        assert!(id_pattern(Some("")).unwrap().is_none());
        assert!(id_pattern(None).unwrap().is_none());
        assert!(id_pattern(Some("(")).is_err());
    }
}
