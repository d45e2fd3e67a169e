//! AddOffsetsToTxn: a consumer group joins the producer's transaction, so that offsets it
//! commits in it (TxnOffsetCommit) take effect only if the transaction commits.

use kafka_protocol::messages::{AddOffsetsToTxnRequest, AddOffsetsToTxnResponse};

use super::RequestContext;
use crate::txn::{ProducerRef, TxnCoordinator, fenced_for_version};

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
    let code = match txns
        .add(body.transactional_id.as_str(), producer, &[], Some(group))
        .await
    {
        Ok(()) => 0,
        Err(e) => fenced_for_version(e, ctx.version(), FENCED_SINCE).kafka_code(),
    };
    AddOffsetsToTxnResponse::default().with_error_code(code)
}
