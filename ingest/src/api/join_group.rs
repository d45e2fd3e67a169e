//! JoinGroup: members join a classic group; the coordinator answers once the rebalance
//! completes (or at once with an error).

use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::*;

use super::groups::{coordinator_error, opt_str};
use super::{Pending, RequestContext, encode};
use crate::group::Coordinator;
use crate::group::GroupError;
use crate::group::{JoinOutcome, JoinRequest, Wait};
use crate::host::Host;
use crate::protocol::str_bytes;
use tierlog_metadata::AclOperation;

fn join_response(o: JoinOutcome, version: i16) -> JoinGroupResponse {
    let mut r = JoinGroupResponse::default()
        .with_error_code(o.error.map_or(0, GroupError::kafka_code))
        .with_generation_id(o.generation)
        .with_leader(str_bytes(&o.leader))
        .with_member_id(str_bytes(&o.member_id));
    if version >= 7 {
        r.protocol_type = opt_str(&o.protocol_type);
        r.protocol_name = opt_str(&o.protocol);
    } else {
        // Not nullable before v7: an error response carries an empty name.
        r.protocol_name = Some(str_bytes(o.protocol.as_deref().unwrap_or("")));
    }
    r.members = o
        .members
        .into_iter()
        .map(|(id, instance, metadata)| {
            let mut m = JoinGroupResponseMember::default()
                .with_member_id(str_bytes(&id))
                .with_metadata(metadata);
            if version >= 5 {
                m.group_instance_id = opt_str(&instance);
            }
            m
        })
        .collect();
    r
}

pub(super) fn handle(
    ctx: &RequestContext<'_>,
    g: &Arc<Coordinator>,
    h: &Host,
    body: JoinGroupRequest,
) -> Pending {
    let to = ctx.reply_to();
    let version = ctx.version();
    let not_here = coordinator_error(h, body.group_id.0.as_str());
    // As Kafka: READ on the group, checked before anything else.
    if !ctx.group(AclOperation::Read, body.group_id.0.as_str()) {
        let o = JoinOutcome {
            error: Some(GroupError::GroupAuthorizationFailed),
            generation: -1,
            member_id: body.member_id.to_string(),
            ..Default::default()
        };
        return Box::pin(std::future::ready(encode(to, &join_response(o, version))));
    }
    if not_here != 0 {
        let o = JoinOutcome {
            error: Some(GroupError::NotCoordinator),
            generation: -1,
            member_id: body.member_id.to_string(),
            ..Default::default()
        };
        return Box::pin(std::future::ready(encode(to, &join_response(o, version))));
    }
    let jr = JoinRequest {
        group: body.group_id.0.to_string(),
        member_id: body.member_id.to_string(),
        instance_id: body.group_instance_id.as_ref().map(|s| s.to_string()),
        client_id: ctx.client_id(),
        client_host: super::client_host(ctx.peer),
        session_timeout: Duration::from_millis(body.session_timeout_ms.max(0) as u64),
        // v0 has no rebalance timeout: it equals the session timeout.
        rebalance_timeout: Duration::from_millis(
            if version >= 1 {
                body.rebalance_timeout_ms
            } else {
                body.session_timeout_ms
            }
            .max(0) as u64,
        ),
        protocol_type: body.protocol_type.to_string(),
        protocols: body
            .protocols
            .into_iter()
            .map(|p| (p.name.to_string(), p.metadata))
            .collect(),
        require_known_member_id: version >= 4,
    };
    let member_id = jr.member_id.clone();
    match g.join(jr) {
        Wait::Now(o) => Box::pin(std::future::ready(encode(to, &join_response(o, version)))),
        Wait::Later(rx) => Box::pin(async move {
            let o = rx.await.unwrap_or(JoinOutcome {
                error: Some(GroupError::RebalanceInProgress),
                generation: -1,
                member_id,
                ..Default::default()
            });
            encode(to, &join_response(o, version))
        }),
    }
}
