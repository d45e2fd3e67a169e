//! FindCoordinator: which node coordinates a group (or transactional id). Every node gives the
//! same answer from the same view of the live nodes (rendezvous hashing over them); when that
//! node dies the key moves to another, whose committed offsets are the same (they live in the
//! metadata store), and the group's members rejoin there. (librdkafka also reads the presence
//! of this API as "broker supports LZ4".)

use kafka_protocol::ResponseError;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};

use super::RequestContext;
use crate::broker::Identity;
use crate::cluster::Cluster;
use crate::error::Error;
use crate::protocol::str_bytes;
use tierlog_metadata::AclOperation;

/// Key types: 0 = consumer group, 1 = transactional id.
const KNOWN_KEY_TYPES: [i8; 2] = [0, 1];

pub(super) fn handle(
    ctx: &RequestContext<'_>,
    cluster: &Cluster,
    id: &Identity,
    body: FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    let known = KNOWN_KEY_TYPES.contains(&body.key_type);
    // As Kafka: DESCRIBE on the group (key type 0) or the transactional id (1).
    let denied = |key: &str| match body.key_type {
        0 if !ctx.group(AclOperation::Describe, key) => {
            Some(Error::GroupAuthorizationFailed(key.to_owned()).kafka_code())
        }
        1 if !ctx.transactional_id(AclOperation::Describe, key) => {
            Some(Error::TransactionalIdAuthorizationFailed(key.to_owned()).kafka_code())
        }
        _ => None,
    };
    let error = if known {
        0
    } else {
        ResponseError::InvalidRequest.code()
    };
    let mut resp = FindCoordinatorResponse::default();
    if ctx.version() >= 4 {
        resp.coordinators = body
            .coordinator_keys
            .into_iter()
            .map(|key| {
                let (node_id, host, port) =
                    coordinator(cluster, id, key.as_str(), &ctx.session.listener);
                let refused = if known { denied(key.as_str()) } else { None };
                let mut c = Coordinator::default()
                    .with_error_code(refused.unwrap_or(error))
                    .with_key(key);
                if known && refused.is_none() && node_id < 0 {
                    c.error_code = ResponseError::CoordinatorNotAvailable.code();
                }
                if known && refused.is_none() {
                    c.node_id = BrokerId(node_id);
                    c.host = str_bytes(&host);
                    c.port = port;
                } else {
                    c.node_id = BrokerId(-1);
                    c.port = -1;
                }
                c
            })
            .collect();
    } else {
        let refused = if known {
            denied(body.key.as_str())
        } else {
            None
        };
        resp.error_code = refused.unwrap_or(error);
        if known && refused.is_none() {
            let (node_id, host, port) =
                coordinator(cluster, id, body.key.as_str(), &ctx.session.listener);
            resp.node_id = BrokerId(node_id);
            resp.host = str_bytes(&host);
            resp.port = port;
            if node_id < 0 {
                resp.error_code = ResponseError::CoordinatorNotAvailable.code();
            }
        } else {
            resp.node_id = BrokerId(-1);
            resp.port = -1;
        }
    }
    resp
}

/// (node id, host, port) of the node coordinating `key`, at its endpoint on `listener`;
/// this node before it knows others. A coordinator without that listener is reported as
/// unknown (node -1), which clients retry.
fn coordinator(cluster: &Cluster, id: &Identity, key: &str, listener: &str) -> (i32, String, i32) {
    let found = match cluster.coordinator_for(key) {
        Some(n) => n.endpoint(listener).map(|(h, p)| (n.id, h.to_owned(), p)),
        None => id
            .endpoint(listener)
            .map(|(h, p)| (id.node_id, h.to_owned(), p)),
    };
    found.unwrap_or((-1, String::new(), -1))
}
