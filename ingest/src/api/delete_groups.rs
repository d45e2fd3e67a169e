//! DeleteGroups: removes empty groups and their offsets.

use std::sync::Arc;

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::*;

use super::RequestContext;
use super::groups::coordinator_error;
use crate::group::Coordinator;
use crate::group::GroupError;
use crate::host::Host;
use tierlog_metadata::AclOperation;

pub(super) async fn handle(
    ctx: &RequestContext<'_>,
    g: &Arc<Coordinator>,
    h: &Host,
    body: DeleteGroupsRequest,
) -> DeleteGroupsResponse {
    let mut results = Vec::with_capacity(body.groups_names.len());
    for id in body.groups_names {
        let code = match coordinator_error(h, id.0.as_str()) {
            _ if !ctx.group(AclOperation::Delete, id.0.as_str()) => {
                GroupError::GroupAuthorizationFailed.kafka_code()
            }
            0 => delete_group(g, id.0.as_str()).await,
            code => code,
        };
        results.push(
            DeletableGroupResult::default()
                .with_group_id(id)
                .with_error_code(code),
        );
    }
    DeleteGroupsResponse::default().with_results(results)
}

/// Deletes one group this node coordinates; returns the error code.
async fn delete_group(g: &Coordinator, id: &str) -> i16 {
    match g.remove_if_empty(id) {
        Ok(()) => match g.offsets.delete_group(id).await {
            Ok(()) => 0,
            Err(_) => GroupError::CoordinatorNotAvailable.kafka_code(),
        },
        Err(e) => e.kafka_code(),
    }
}
