//! InitProducerId: a producer id and epoch for an idempotent producer (a fresh id each time, as
//! Kafka gives one), or for a transactional id from the transaction coordinator (a new epoch
//! that fences every older producer of the id; KIP-360 bumps included).

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use super::RequestContext;
use crate::error::Error;
use crate::txn::{ProducerRef, TxnCoordinator, fenced_for_version};
use tierlog_metadata::{AclOperation, AclResourceType};

/// PRODUCER_FENCED replaced INVALID_PRODUCER_EPOCH in this version.
const FENCED_SINCE: i16 = 4;

pub(super) async fn handle(
    ctx: &RequestContext<'_>,
    txns: &TxnCoordinator,
    body: InitProducerIdRequest,
) -> InitProducerIdResponse {
    let outcome = match body.transactional_id.as_ref().map(|s| s.0.as_str()) {
        // As Kafka (3.0+): an idempotent producer needs IDEMPOTENT_WRITE on the cluster or
        // WRITE on any topic; a transactional one WRITE on its transactional id.
        None if !ctx.allowed(
            AclOperation::IdempotentWrite,
            AclResourceType::Cluster,
            crate::security::acl::CLUSTER_NAME,
        ) && !ctx.authz.allowed_on_any(
            ctx.session,
            AclOperation::Write,
            AclResourceType::Topic,
        ) && !ctx.cluster(AclOperation::IdempotentWrite) =>
        {
            Err(Error::ClusterAuthorizationFailed("IDEMPOTENT_WRITE".into()))
        }
        Some(id) if !id.is_empty() && !ctx.transactional_id(AclOperation::Write, id) => {
            Err(Error::TransactionalIdAuthorizationFailed(id.to_owned()))
        }
        None => txns
            .new_producer_id()
            .await
            .map(|id| ProducerRef { id, epoch: 0 }),
        // Kafka refuses an empty transactional id (null means none).
        Some("") => Err(Error::InvalidRequest("empty transactional id".into())),
        Some(id) => {
            let expected = (body.producer_id.0 >= 0).then_some(ProducerRef {
                id: body.producer_id.0,
                epoch: body.producer_epoch,
            });
            txns.init_transactional(id, body.transaction_timeout_ms, expected)
                .await
                .map_err(|e| fenced_for_version(e, ctx.version(), FENCED_SINCE))
        }
    };
    let resp = InitProducerIdResponse::default()
        .with_ongoing_txn_producer_id(ProducerId(-1))
        .with_ongoing_txn_producer_epoch(-1);
    match outcome {
        Ok(p) => resp
            .with_producer_id(ProducerId(p.id))
            .with_producer_epoch(p.epoch),
        Err(e) => resp
            .with_error_code(e.kafka_code())
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1),
    }
}
