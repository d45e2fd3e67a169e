//! ListGroups: classic and next-generation groups, filtered by state (v4) and type (v5).

use std::sync::Arc;

use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use super::RequestContext;
use crate::group::Coordinator;
use crate::host::Host;
use crate::protocol::str_bytes;
use tierlog_metadata::{AclOperation, AclResourceType};

pub(super) fn handle(
    ctx: &RequestContext<'_>,
    g: &Arc<Coordinator>,
    h: &Host,
    body: ListGroupsRequest,
) -> ListGroupsResponse {
    // Classic groups, then next-generation ones (protocol type "consumer", Kafka's states).
    let classic = g
        .list()
        .into_iter()
        .map(|(id, state, protocol_type)| (id, state.name(), protocol_type, GROUP_TYPE_CLASSIC));
    let consumer = g
        .consumer
        .list()
        .into_iter()
        .map(|l| (l.group, l.state, "consumer".to_owned(), GROUP_TYPE_CONSUMER));
    // As Kafka: DESCRIBE on the cluster lists every group, else those the principal may
    // DESCRIBE (both asked quietly: what is left out is not refused).
    let all = ctx.allowed(
        AclOperation::Describe,
        AclResourceType::Cluster,
        crate::security::acl::CLUSTER_NAME,
    );
    let groups = classic
        .chain(consumer)
        .filter(|(id, _, _, _)| h.cluster.coordinates(id))
        .filter(|(id, _, _, _)| {
            all || ctx.allowed(AclOperation::Describe, AclResourceType::Group, id)
        })
        .filter(|(_, state, _, group_type)| {
            listed(&body.states_filter, &body.types_filter, state, group_type)
        })
        .map(|(id, state, protocol_type, group_type)| {
            let mut g = ListedGroup::default()
                .with_group_id(GroupId(str_bytes(&id)))
                .with_protocol_type(str_bytes(&protocol_type));
            if ctx.version() >= 4 {
                g.group_state = str_bytes(state);
            }
            if ctx.version() >= 5 {
                g.group_type = str_bytes(group_type);
            }
            g
        })
        .collect();
    ListGroupsResponse::default().with_groups(groups)
}

/// Group types as ListGroups v5 names them (Kafka's `Group.GroupType`).
const GROUP_TYPE_CLASSIC: &str = "classic";
const GROUP_TYPE_CONSUMER: &str = "consumer";

/// Whether a group in `state` of `group_type` passes ListGroups' filters, as Kafka's
/// `GroupMetadataManager.listGroups` decides: an empty filter passes everything; states
/// compare trimmed and case-insensitively, types case-insensitively (an unknown type matches
/// no group). Filters of versions that lack them decode empty.
fn listed(states: &[StrBytes], types: &[StrBytes], state: &str, group_type: &str) -> bool {
    let state_ok = states.is_empty()
        || states
            .iter()
            .any(|s| s.as_str().trim().eq_ignore_ascii_case(state));
    let type_ok = types.is_empty()
        || types
            .iter()
            .any(|t| t.as_str().eq_ignore_ascii_case(group_type));
    state_ok && type_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strs(v: &[&'static str]) -> Vec<StrBytes> {
        v.iter().map(|s| StrBytes::from_static_str(s)).collect()
    }

    #[test]
    fn list_filters_follow_kafka() {
        // No filter: everything.
        assert!(listed(&[], &[], "Stable", GROUP_TYPE_CLASSIC));
        // States: case-insensitive and trimmed.
        assert!(listed(
            &strs(&[" stable "]),
            &[],
            "Stable",
            GROUP_TYPE_CONSUMER
        ));
        assert!(!listed(
            &strs(&["Empty"]),
            &[],
            "Stable",
            GROUP_TYPE_CONSUMER
        ));
        // Types: case-insensitive; any of several.
        assert!(listed(
            &[],
            &strs(&["CLASSIC"]),
            "Empty",
            GROUP_TYPE_CLASSIC
        ));
        assert!(!listed(
            &[],
            &strs(&["Consumer"]),
            "Empty",
            GROUP_TYPE_CLASSIC
        ));
        assert!(listed(
            &[],
            &strs(&["share", "Consumer"]),
            "Empty",
            GROUP_TYPE_CONSUMER
        ));
        // An unknown type matches nothing.
        assert!(!listed(&[], &strs(&["bogus"]), "Empty", GROUP_TYPE_CLASSIC));
        // Both filters must pass.
        assert!(listed(
            &strs(&["empty"]),
            &strs(&["classic"]),
            "Empty",
            GROUP_TYPE_CLASSIC
        ));
        assert!(!listed(
            &strs(&["stable"]),
            &strs(&["classic"]),
            "Empty",
            GROUP_TYPE_CLASSIC
        ));
    }
}
