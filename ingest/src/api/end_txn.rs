//! EndTxn: commits or aborts the producer's transaction. Answered once every marker is
//! written and replicated and, on commit, the transaction's offsets are the groups' (see
//! `txn`).

use kafka_protocol::messages::{EndTxnRequest, EndTxnResponse, ProducerId};

use super::RequestContext;
use crate::txn::{ProducerRef, TxnCoordinator, fenced_for_version};

/// PRODUCER_FENCED replaced INVALID_PRODUCER_EPOCH in this version.
const FENCED_SINCE: i16 = 2;

pub(super) async fn handle(
    ctx: &RequestContext<'_>,
    txns: &TxnCoordinator,
    body: EndTxnRequest,
) -> EndTxnResponse {
    let producer = ProducerRef {
        id: body.producer_id.0,
        epoch: body.producer_epoch,
    };
    let code = match txns
        .end(body.transactional_id.as_str(), producer, body.committed)
        .await
    {
        Ok(()) => 0,
        Err(e) => fenced_for_version(e, ctx.version(), FENCED_SINCE).kafka_code(),
    };
    EndTxnResponse::default()
        .with_error_code(code)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1)
}
