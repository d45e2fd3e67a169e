//! DescribeGroups: classic groups with their members (next-generation ones read as Dead, as
//! Kafka answers before v6).

use std::sync::Arc;

use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::*;

use super::RequestContext;
use super::groups::{coordinator_error, opt_str};
use crate::group::Coordinator;
use crate::group::GroupError;
use crate::host::Host;
use crate::protocol::str_bytes;
use tierlog_metadata::{AclOperation, AclResourceType};

pub(super) fn handle(
    ctx: &RequestContext<'_>,
    g: &Arc<Coordinator>,
    h: &Host,
    body: DescribeGroupsRequest,
) -> DescribeGroupsResponse {
    let groups = body
        .groups
        .into_iter()
        .map(|id| {
            if !ctx.group(AclOperation::Describe, id.0.as_str()) {
                return DescribedGroup::default()
                    .with_group_id(id)
                    .with_error_code(GroupError::GroupAuthorizationFailed.kafka_code());
            }
            let not_here = coordinator_error(h, id.0.as_str());
            if not_here != 0 {
                return DescribedGroup::default()
                    .with_group_id(id)
                    .with_error_code(not_here);
            }
            let d = g.describe(id.0.as_str());
            let members = d
                .members
                .into_iter()
                .map(
                    |(member, instance, client_id, host, metadata, assignment)| {
                        let mut m = DescribedGroupMember::default()
                            .with_member_id(str_bytes(&member))
                            .with_client_id(str_bytes(&client_id))
                            .with_client_host(str_bytes(&host))
                            .with_member_metadata(metadata)
                            .with_member_assignment(assignment);
                        if ctx.version() >= 4 {
                            m.group_instance_id = opt_str(&instance);
                        }
                        m
                    },
                )
                .collect();
            let mut g = DescribedGroup::default()
                .with_group_id(id)
                .with_group_state(str_bytes(d.state.name()))
                .with_protocol_type(str_bytes(&d.protocol_type))
                .with_protocol_data(str_bytes(&d.protocol))
                .with_members(members);
            if ctx.version() >= 3 && body.include_authorized_operations {
                g.authorized_operations = ctx.authz.authorized_operations(
                    ctx.session,
                    AclResourceType::Group,
                    g.group_id.0.as_str(),
                    crate::security::acl::GROUP_OPERATIONS,
                );
            }
            g
        })
        .collect();
    DescribeGroupsResponse::default().with_groups(groups)
}
