//! SyncGroup: the leader hands out assignments; every member waits for its own.

use std::sync::Arc;

use kafka_protocol::messages::*;

use super::groups::{coordinator_error, opt_str};
use super::{Pending, RequestContext, encode};
use crate::group::Coordinator;
use crate::group::GroupError;
use crate::group::{SyncOutcome, Wait};
use crate::host::Host;
use tierlog_metadata::AclOperation;

fn sync_response(o: SyncOutcome, version: i16) -> SyncGroupResponse {
    let mut r = SyncGroupResponse::default()
        .with_error_code(o.error.map_or(0, GroupError::kafka_code))
        .with_assignment(o.assignment);
    if version >= 5 {
        r.protocol_type = opt_str(&o.protocol_type);
        r.protocol_name = opt_str(&o.protocol);
    }
    r
}

pub(super) fn handle(
    ctx: &RequestContext<'_>,
    g: &Arc<Coordinator>,
    h: &Host,
    body: SyncGroupRequest,
) -> Pending {
    let to = ctx.reply_to();
    let version = ctx.version();
    let not_here = coordinator_error(h, body.group_id.0.as_str());
    if !ctx.group(AclOperation::Read, body.group_id.0.as_str()) {
        let o = SyncOutcome {
            error: Some(GroupError::GroupAuthorizationFailed),
            ..Default::default()
        };
        return Box::pin(std::future::ready(encode(to, &sync_response(o, version))));
    }
    if not_here != 0 {
        let o = SyncOutcome {
            error: Some(GroupError::NotCoordinator),
            ..Default::default()
        };
        return Box::pin(std::future::ready(encode(to, &sync_response(o, version))));
    }
    let assignments = body
        .assignments
        .into_iter()
        .map(|a| (a.member_id.to_string(), a.assignment))
        .collect();
    let instance = body.group_instance_id.as_ref().map(|s| s.to_string());
    match g.sync(
        body.group_id.0.as_str(),
        body.generation_id,
        body.member_id.as_str(),
        instance.as_deref(),
        assignments,
    ) {
        Wait::Now(o) => Box::pin(std::future::ready(encode(to, &sync_response(o, version)))),
        Wait::Later(rx) => Box::pin(async move {
            let o = rx.await.unwrap_or(SyncOutcome {
                error: Some(GroupError::RebalanceInProgress),
                ..Default::default()
            });
            encode(to, &sync_response(o, version))
        }),
    }
}
