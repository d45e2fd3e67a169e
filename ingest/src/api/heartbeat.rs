//! Heartbeat: a classic-group member says it is alive and learns of rebalances.

use std::sync::Arc;

use kafka_protocol::messages::*;

use super::RequestContext;
use super::groups::{code, coordinator_error};
use crate::group::Coordinator;
use crate::group::GroupError;
use crate::host::Host;
use tierlog_metadata::AclOperation;

pub(super) fn handle(
    ctx: &RequestContext<'_>,
    g: &Arc<Coordinator>,
    h: &Host,
    body: HeartbeatRequest,
) -> HeartbeatResponse {
    if !ctx.group(AclOperation::Read, body.group_id.0.as_str()) {
        return HeartbeatResponse::default()
            .with_error_code(GroupError::GroupAuthorizationFailed.kafka_code());
    }
    let not_here = coordinator_error(h, body.group_id.0.as_str());
    if not_here != 0 {
        return HeartbeatResponse::default().with_error_code(not_here);
    }
    let instance = body.group_instance_id.as_ref().map(|s| s.to_string());
    let code = code(g.heartbeat(
        body.group_id.0.as_str(),
        body.generation_id,
        body.member_id.as_str(),
        instance.as_deref(),
    ));
    HeartbeatResponse::default().with_error_code(code)
}
