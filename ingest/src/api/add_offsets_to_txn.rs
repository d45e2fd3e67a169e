//! AddOffsetsToTxn: a consumer group joins the producer's transaction, so that offsets it
//! commits in it (TxnOffsetCommit) take effect only if the transaction commits.

use kafka_protocol::messages::{AddOffsetsToTxnRequest, AddOffsetsToTxnResponse};

use super::RequestContext;
use crate::error::Error;
use crate::txn::{ProducerRef, TxnCoordinator, fenced_for_version};
use tierlog_metadata::AclOperation;

/// PRODUCER_FENCED replaced INVALID_PRODUCER_EPOCH in this version.
const FENCED_SINCE: i16 = 2;

pub(super) async fn handle(
    ctx: &RequestContext<'_>,
    txns: &TxnCoordinator,
    body: AddOffsetsToTxnRequest,
) -> AddOffsetsToTxnResponse {
    let producer = ProducerRef {
        id: body.producer_id.0,
        epoch: body.producer_epoch,
    };
    let group = body.group_id.0.as_str();
    // As Kafka: WRITE on the transactional id, then READ on the group.
    if !ctx.transactional_id(AclOperation::Write, body.transactional_id.as_str()) {
        let e = Error::TransactionalIdAuthorizationFailed(body.transactional_id.to_string());
        return AddOffsetsToTxnResponse::default().with_error_code(e.kafka_code());
    }
    if !ctx.group(AclOperation::Read, group) {
        let e = Error::GroupAuthorizationFailed(group.to_owned());
        return AddOffsetsToTxnResponse::default().with_error_code(e.kafka_code());
    }
    let code = match txns
        .add(body.transactional_id.as_str(), producer, &[], Some(group))
        .await
    {
        Ok(()) => 0,
        Err(e) => fenced_for_version(e, ctx.version(), FENCED_SINCE).kafka_code(),
    };
    AddOffsetsToTxnResponse::default().with_error_code(code)
}
