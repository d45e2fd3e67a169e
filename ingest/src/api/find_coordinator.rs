//! FindCoordinator: on a single node every group and transaction is coordinated here.
//! (The group protocol itself arrives with consumer groups; librdkafka also reads the presence
//! of this API as "broker supports LZ4", so it is advertised from the start.)

use kafka_protocol::ResponseError;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};

use super::str_bytes;
use crate::node::Broker;
use crate::protocol::Request;

/// Key types: 0 = consumer group, 1 = transactional id.
const KNOWN_KEY_TYPES: [i8; 2] = [0, 1];

pub(super) fn handle(
    b: &Broker,
    req: &Request,
    body: FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    let known = KNOWN_KEY_TYPES.contains(&body.key_type);
    let error = if known {
        0
    } else {
        ResponseError::InvalidRequest.code()
    };
    let mut resp = FindCoordinatorResponse::default();
    if req.version >= 4 {
        resp.coordinators = body
            .coordinator_keys
            .into_iter()
            .map(|key| {
                let mut c = Coordinator::default().with_key(key).with_error_code(error);
                if known {
                    c.node_id = BrokerId(b.node_id);
                    c.host = str_bytes(&b.advertised_host);
                    c.port = b.advertised_port;
                } else {
                    c.node_id = BrokerId(-1);
                    c.port = -1;
                }
                c
            })
            .collect();
    } else {
        resp.error_code = error;
        if known {
            resp.node_id = BrokerId(b.node_id);
            resp.host = str_bytes(&b.advertised_host);
            resp.port = b.advertised_port;
        } else {
            resp.node_id = BrokerId(-1);
            resp.port = -1;
        }
    }
    resp
}
