//! EndTxn: commits or aborts the producer's transaction. Answered once every marker is
//! written and replicated and, on commit, the transaction's offsets are the groups' (see
//! `txn`). From v5 (KIP-890, transaction version 2) every end bumps the producer epoch and the
//! response carries the producer id and epoch to use next.

use kafka_protocol::messages::{EndTxnRequest, EndTxnResponse, ProducerId};

use super::RequestContext;
use crate::error::Error;
use crate::txn::{ProducerRef, TxnCoordinator, fenced_for_version};
use tierlog_metadata::AclOperation;

/// PRODUCER_FENCED replaced INVALID_PRODUCER_EPOCH in this version.
const FENCED_SINCE: i16 = 2;
/// The first version of KIP-890's transaction protocol (an epoch bump per transaction).
const TV2_SINCE: i16 = 5;

pub(super) async fn handle(
    ctx: &RequestContext<'_>,
    txns: &TxnCoordinator,
    body: EndTxnRequest,
) -> EndTxnResponse {
    let producer = ProducerRef {
        id: body.producer_id.0,
        epoch: body.producer_epoch,
    };
    let bump = ctx.version() >= TV2_SINCE;
    let resp = EndTxnResponse::default();
    if !ctx.transactional_id(AclOperation::Write, body.transactional_id.as_str()) {
        let e = Error::TransactionalIdAuthorizationFailed(body.transactional_id.to_string());
        return resp
            .with_error_code(e.kafka_code())
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1);
    }
    match txns
        .end(
            body.transactional_id.as_str(),
            producer,
            body.committed,
            bump,
        )
        .await
    {
        Ok(next) if bump => resp
            .with_producer_id(ProducerId(next.id))
            .with_producer_epoch(next.epoch),
        Ok(_) => resp
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1),
        Err(e) => resp
            .with_error_code(fenced_for_version(e, ctx.version(), FENCED_SINCE).kafka_code())
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1),
    }
}
