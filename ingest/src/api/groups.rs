//! Helpers shared by the classic consumer-group APIs (`join_group.rs`, `sync_group.rs`,
//! `heartbeat.rs`, `leave_group.rs`, `offset_commit.rs`, `offset_fetch.rs`, `list_groups.rs`,
//! `describe_groups.rs`, `delete_groups.rs`, `offset_delete.rs`). OffsetCommit/Fetch v9,
//! ListGroups, DeleteGroups and OffsetDelete also serve next-generation groups
//! (`consumer_group.rs`); DescribeGroups shows those as Dead, as Kafka does before v6. The
//! coordinator (`crate::group`) holds the state machine; the API files translate requests
//! and responses.

use kafka_protocol::protocol::StrBytes;

use crate::group::{Coordinator, GroupError};
use crate::host::Host;
use crate::protocol::str_bytes;

pub(super) fn opt_str(s: &Option<String>) -> Option<StrBytes> {
    s.as_deref().map(str_bytes)
}

/// NOT_COORDINATOR if another node coordinates `group` (clients then ask FindCoordinator
/// again); 0 if this node does.
pub(super) fn coordinator_error(h: &Host, group: &str) -> i16 {
    if h.cluster.coordinates(group) {
        0
    } else {
        GroupError::NotCoordinator.kafka_code()
    }
}

/// Whether a member may commit offsets for `group` (OffsetCommit, and TxnOffsetCommit from v3,
/// KIP-447): NOT_COORDINATOR elsewhere; for a next-generation group its member epoch (v9),
/// else the classic generation, member and static instance checks. 0 when it may.
pub(super) fn commit_error(
    g: &Coordinator,
    h: &Host,
    group: &str,
    member: &str,
    generation_or_epoch: i32,
    instance: Option<&str>,
    version_for_checks: i16,
) -> i16 {
    match coordinator_error(h, group) {
        0 => match g
            .consumer
            .check_commit(group, member, generation_or_epoch, version_for_checks)
        {
            Some(checked) => code(checked.map(|_| ())),
            None => code(g.check_commit(
                group,
                generation_or_epoch,
                member,
                instance,
                version_for_checks,
            )),
        },
        code => code,
    }
}

/// The error code of a coordinator outcome (0: none).
pub(super) fn code(outcome: Result<(), GroupError>) -> i16 {
    outcome.err().map_or(0, GroupError::kafka_code)
}
