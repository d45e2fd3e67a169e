//! LeaveGroup: members (one before v3, a batch from v3) leave a classic group.

use std::sync::Arc;

use kafka_protocol::messages::leave_group_response::MemberResponse;
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
    body: LeaveGroupRequest,
) -> LeaveGroupResponse {
    let group = body.group_id.0.as_str();
    if !ctx.group(AclOperation::Read, group) {
        return LeaveGroupResponse::default()
            .with_error_code(GroupError::GroupAuthorizationFailed.kafka_code());
    }
    let not_here = coordinator_error(h, group);
    if not_here != 0 {
        return LeaveGroupResponse::default().with_error_code(not_here);
    }
    if ctx.version() < 3 {
        let code = code(g.leave(group, body.member_id.as_str(), None));
        return LeaveGroupResponse::default().with_error_code(code);
    }
    let members: Vec<MemberResponse> = body
        .members
        .iter()
        .map(|m| {
            let instance = m.group_instance_id.as_ref().map(|s| s.to_string());
            let code = code(g.leave(group, m.member_id.as_str(), instance.as_deref()));
            MemberResponse::default()
                .with_member_id(m.member_id.clone())
                .with_group_instance_id(m.group_instance_id.clone())
                .with_error_code(code)
        })
        .collect();
    LeaveGroupResponse::default().with_members(members)
}
