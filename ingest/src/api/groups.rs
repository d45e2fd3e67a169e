//! The consumer-group APIs: JoinGroup, SyncGroup, Heartbeat, LeaveGroup, OffsetCommit,
//! OffsetFetch, ListGroups (from v5 also by group type: classic or consumer), DescribeGroups,
//! DeleteGroups, OffsetDelete. OffsetCommit/Fetch v9, ListGroups, DeleteGroups and OffsetDelete
//! also serve next-generation groups (`consumer_group.rs`); DescribeGroups shows those as Dead,
//! as Kafka does before v6. The coordinator (`crate::group`) holds the state machine; these
//! functions translate requests and responses.

use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use super::Pending;
use super::RequestContext;
use super::encode;
use crate::group::Coordinator;
use crate::group::offsets::CommittedOffset;
use crate::group::{JoinOutcome, JoinRequest, SyncOutcome, Wait};
use crate::host::Host;
use crate::protocol::str_bytes;

/// Kafka's `offset.metadata.max.bytes`.
const MAX_METADATA_BYTES: usize = 4096;

fn opt_str(s: &Option<String>) -> Option<StrBytes> {
    s.as_deref().map(str_bytes)
}

fn join_response(o: JoinOutcome, version: i16) -> JoinGroupResponse {
    let mut r = JoinGroupResponse::default()
        .with_error_code(o.error)
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

/// NOT_COORDINATOR if another node coordinates `group` (clients then ask FindCoordinator
/// again); 0 if this node does.
fn coordinator_error(h: &Host, group: &str) -> i16 {
    if h.cluster.coordinates(group) {
        0
    } else {
        ResponseError::NotCoordinator.code()
    }
}

pub(super) fn join(
    ctx: &RequestContext<'_>,
    g: &Arc<Coordinator>,
    h: &Host,
    body: JoinGroupRequest,
) -> Pending {
    let to = ctx.reply_to();
    let version = ctx.version();
    let not_here = coordinator_error(h, body.group_id.0.as_str());
    if not_here != 0 {
        let o = JoinOutcome {
            error: not_here,
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
                error: ResponseError::RebalanceInProgress.code(),
                generation: -1,
                member_id,
                ..Default::default()
            });
            encode(to, &join_response(o, version))
        }),
    }
}

fn sync_response(o: SyncOutcome, version: i16) -> SyncGroupResponse {
    let mut r = SyncGroupResponse::default()
        .with_error_code(o.error)
        .with_assignment(o.assignment);
    if version >= 5 {
        r.protocol_type = opt_str(&o.protocol_type);
        r.protocol_name = opt_str(&o.protocol);
    }
    r
}

pub(super) fn sync(
    ctx: &RequestContext<'_>,
    g: &Arc<Coordinator>,
    h: &Host,
    body: SyncGroupRequest,
) -> Pending {
    let to = ctx.reply_to();
    let version = ctx.version();
    let not_here = coordinator_error(h, body.group_id.0.as_str());
    if not_here != 0 {
        let o = SyncOutcome {
            error: not_here,
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
                error: ResponseError::RebalanceInProgress.code(),
                ..Default::default()
            });
            encode(to, &sync_response(o, version))
        }),
    }
}

pub(super) fn heartbeat(
    _ctx: &RequestContext<'_>,
    g: &Arc<Coordinator>,
    h: &Host,
    body: HeartbeatRequest,
) -> HeartbeatResponse {
    let not_here = coordinator_error(h, body.group_id.0.as_str());
    if not_here != 0 {
        return HeartbeatResponse::default().with_error_code(not_here);
    }
    let instance = body.group_instance_id.as_ref().map(|s| s.to_string());
    let code = g.heartbeat(
        body.group_id.0.as_str(),
        body.generation_id,
        body.member_id.as_str(),
        instance.as_deref(),
    );
    HeartbeatResponse::default().with_error_code(code)
}

pub(super) fn leave(
    ctx: &RequestContext<'_>,
    g: &Arc<Coordinator>,
    h: &Host,
    body: LeaveGroupRequest,
) -> LeaveGroupResponse {
    let group = body.group_id.0.as_str();
    let not_here = coordinator_error(h, group);
    if not_here != 0 {
        return LeaveGroupResponse::default().with_error_code(not_here);
    }
    if ctx.version() < 3 {
        let code = g.leave(group, body.member_id.as_str(), None);
        return LeaveGroupResponse::default().with_error_code(code);
    }
    let members: Vec<MemberResponse> = body
        .members
        .iter()
        .map(|m| {
            let instance = m.group_instance_id.as_ref().map(|s| s.to_string());
            let code = g.leave(group, m.member_id.as_str(), instance.as_deref());
            MemberResponse::default()
                .with_member_id(m.member_id.clone())
                .with_group_instance_id(m.group_instance_id.clone())
                .with_error_code(code)
        })
        .collect();
    LeaveGroupResponse::default().with_members(members)
}

pub(super) async fn offset_commit(
    ctx: &RequestContext<'_>,
    g: &Arc<Coordinator>,
    h: &Host,
    body: OffsetCommitRequest,
) -> OffsetCommitResponse {
    let group = body.group_id.0.to_string();
    let instance = body.group_instance_id.as_ref().map(|s| s.to_string());
    let group_error = match coordinator_error(h, &group) {
        // A group of the next-generation protocol checks the member epoch (v9+).
        0 => match g.consumer.check_commit(
            &group,
            body.member_id.as_str(),
            body.generation_id_or_member_epoch,
            ctx.version(),
        ) {
            Some(checked) => checked.err().map_or(0, |e| e.code()),
            None => g.check_commit(
                &group,
                body.generation_id_or_member_epoch,
                body.member_id.as_str(),
                instance.as_deref(),
                ctx.version(),
            ),
        },
        code => code,
    };
    let now = ctx.clock.now_ms();
    let mut to_store = Vec::new();
    let mut topics = Vec::with_capacity(body.topics.len());
    for t in &body.topics {
        let state = h.partitions.topic(t.name.0.as_str());
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for p in &t.partitions {
            let exists = state.as_ref().is_some_and(|s| {
                p.partition_index >= 0 && (p.partition_index as usize) < s.partitions.len()
            });
            let code = if group_error != 0 {
                group_error
            } else if !exists {
                ResponseError::UnknownTopicOrPartition.code()
            } else if p
                .committed_metadata
                .as_ref()
                .is_some_and(|m| m.len() > MAX_METADATA_BYTES)
            {
                ResponseError::OffsetMetadataTooLarge.code()
            } else {
                to_store.push((
                    t.name.0.to_string(),
                    p.partition_index,
                    CommittedOffset {
                        offset: p.committed_offset,
                        leader_epoch: if ctx.version() >= 6 {
                            p.committed_leader_epoch
                        } else {
                            -1
                        },
                        metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
                        commit_ms: now,
                    },
                ));
                0
            };
            partitions.push(
                OffsetCommitResponsePartition::default()
                    .with_partition_index(p.partition_index)
                    .with_error_code(code),
            );
        }
        topics.push(
            OffsetCommitResponseTopic::default()
                .with_name(t.name.clone())
                .with_partitions(partitions),
        );
    }
    if !to_store.is_empty() {
        // One transaction for the whole commit, durable before we answer.
        if let Err(e) = g.offsets.commit(&group, &to_store).await {
            tracing::warn!(group = %group, error = %e, "storing committed offsets failed");
            let code = ResponseError::CoordinatorNotAvailable.code();
            for t in &mut topics {
                for p in &mut t.partitions {
                    if p.error_code == 0 {
                        p.error_code = code;
                    }
                }
            }
        } else {
            g.ensure_group(&group);
        }
    }
    OffsetCommitResponse::default().with_topics(topics)
}

/// The offsets of one group for OffsetFetch: `(topic, [(partition, offset, epoch, metadata)])`.
type FetchedTopics = Vec<(TopicName, Vec<(i32, i64, i32, Option<String>)>)>;

async fn fetch_group(
    g: &Coordinator,
    h: &Host,
    group: &str,
    wanted: Option<Vec<(TopicName, Vec<i32>)>>,
) -> Result<FetchedTopics, i16> {
    match coordinator_error(h, group) {
        0 => {}
        code => return Err(code),
    }
    let committed = g
        .offsets
        .fetch(group)
        .await
        .map_err(|_| ResponseError::CoordinatorNotAvailable.code())?;
    let lookup = |t: &str, p: i32| committed.get(&(t.to_owned(), p));
    // Kafka stores a commit without metadata as an empty string and returns that.
    let metadata = |o: &CommittedOffset| Some(o.metadata.clone().unwrap_or_default());
    Ok(match wanted {
        Some(topics) => topics
            .into_iter()
            .map(|(name, parts)| {
                let rows = parts
                    .into_iter()
                    .map(|p| match lookup(name.0.as_str(), p) {
                        Some(o) => (p, o.offset, o.leader_epoch, metadata(o)),
                        None => (p, -1, -1, Some(String::new())),
                    })
                    .collect();
                (name, rows)
            })
            .collect(),
        None => {
            let mut by_topic: FetchedTopics = Vec::new();
            for ((t, p), o) in &committed {
                if by_topic.last().is_none_or(|(n, _)| n.0.as_str() != t) {
                    by_topic.push((TopicName(str_bytes(t)), Vec::new()));
                }
                if let Some((_, rows)) = by_topic.last_mut() {
                    rows.push((*p, o.offset, o.leader_epoch, metadata(o)));
                }
            }
            by_topic
        }
    })
}

pub(super) async fn offset_fetch(
    ctx: &RequestContext<'_>,
    gc: &Arc<Coordinator>,
    h: &Host,
    body: OffsetFetchRequest,
) -> OffsetFetchResponse {
    let v = ctx.version();
    let epoch = |e: i32| if v >= 5 { e } else { -1 };
    if v >= 8 {
        let mut groups = Vec::with_capacity(body.groups.len());
        for g in body.groups {
            let wanted = g.topics.map(|ts| {
                ts.into_iter()
                    .map(|t| (t.name, t.partition_indexes))
                    .collect()
            });
            let mut out = OffsetFetchResponseGroup::default().with_group_id(g.group_id.clone());
            // v9: a member of a next-generation group fetches with its current epoch.
            let member_error = if v >= 9 && coordinator_error(h, g.group_id.0.as_str()) == 0 {
                gc.consumer
                    .check_fetch(
                        g.group_id.0.as_str(),
                        g.member_id.as_ref().map(|m| m.as_str()),
                        g.member_epoch,
                    )
                    .and_then(Result::err)
            } else {
                None
            };
            if let Some(e) = member_error {
                out.error_code = e.code();
                groups.push(out);
                continue;
            }
            match fetch_group(gc, h, g.group_id.0.as_str(), wanted).await {
                Ok(topics) => {
                    out.topics = topics
                        .into_iter()
                        .map(|(name, rows)| {
                            OffsetFetchResponseTopics::default()
                                .with_name(name)
                                .with_partitions(
                                    rows.into_iter()
                                        .map(|(p, o, e, m)| {
                                            OffsetFetchResponsePartitions::default()
                                                .with_partition_index(p)
                                                .with_committed_offset(o)
                                                .with_committed_leader_epoch(e)
                                                .with_metadata(m.as_deref().map(str_bytes))
                                        })
                                        .collect(),
                                )
                        })
                        .collect()
                }
                Err(code) => out.error_code = code,
            }
            groups.push(out);
        }
        return OffsetFetchResponse::default().with_groups(groups);
    }
    let wanted = body.topics.map(|ts| {
        ts.into_iter()
            .map(|t| (t.name, t.partition_indexes))
            .collect()
    });
    let mut resp = OffsetFetchResponse::default();
    match fetch_group(gc, h, body.group_id.0.as_str(), wanted).await {
        Ok(topics) => {
            resp.topics = topics
                .into_iter()
                .map(|(name, rows)| {
                    OffsetFetchResponseTopic::default()
                        .with_name(name)
                        .with_partitions(
                            rows.into_iter()
                                .map(|(p, o, e, m)| {
                                    OffsetFetchResponsePartition::default()
                                        .with_partition_index(p)
                                        .with_committed_offset(o)
                                        .with_committed_leader_epoch(epoch(e))
                                        .with_metadata(m.as_deref().map(str_bytes))
                                })
                                .collect(),
                        )
                })
                .collect()
        }
        Err(code) if v >= 2 => resp.error_code = code,
        Err(_) => {}
    }
    resp
}

pub(super) fn list_groups(
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
    let groups = classic
        .chain(consumer)
        .filter(|(id, _, _, _)| h.cluster.coordinates(id))
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

pub(super) fn describe_groups(
    ctx: &RequestContext<'_>,
    g: &Arc<Coordinator>,
    h: &Host,
    body: DescribeGroupsRequest,
) -> DescribeGroupsResponse {
    let groups = body
        .groups
        .into_iter()
        .map(|id| {
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
                // READ 3, DELETE 6, DESCRIBE 8, DESCRIBE_CONFIGS 10, ALTER_CONFIGS 11: what
                // Kafka reports as applying to a group, all allowed without ACLs.
                g.authorized_operations = (1 << 3) | (1 << 6) | (1 << 8) | (1 << 10) | (1 << 11);
            }
            g
        })
        .collect();
    DescribeGroupsResponse::default().with_groups(groups)
}

pub(super) async fn delete_groups(
    _ctx: &RequestContext<'_>,
    g: &Arc<Coordinator>,
    h: &Host,
    body: DeleteGroupsRequest,
) -> DeleteGroupsResponse {
    let mut results = Vec::with_capacity(body.groups_names.len());
    for id in body.groups_names {
        let code = match coordinator_error(h, id.0.as_str()) {
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
            Err(_) => ResponseError::CoordinatorNotAvailable.code(),
        },
        Err(e) => e.code(),
    }
}

pub(super) async fn offset_delete(
    _ctx: &RequestContext<'_>,
    g: &Arc<Coordinator>,
    h: &Host,
    body: OffsetDeleteRequest,
) -> OffsetDeleteResponse {
    let group = body.group_id.0.as_str();
    let not_here = coordinator_error(h, group);
    if not_here != 0 {
        return OffsetDeleteResponse::default().with_error_code(not_here);
    }
    let Some(subscribed) = g.subscriptions(group) else {
        return OffsetDeleteResponse::default()
            .with_error_code(ResponseError::GroupIdNotFound.code());
    };
    let mut to_delete = Vec::new();
    let topics: Vec<OffsetDeleteResponseTopic> = body
        .topics
        .into_iter()
        .map(|t| {
            let busy = subscribed.contains(t.name.0.as_str());
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let code = if busy {
                        ResponseError::GroupSubscribedToTopic.code()
                    } else {
                        to_delete.push((t.name.0.to_string(), p.partition_index));
                        0
                    };
                    OffsetDeleteResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(code)
                })
                .collect();
            OffsetDeleteResponseTopic::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    if g.offsets.delete(group, &to_delete).await.is_err() {
        return OffsetDeleteResponse::default()
            .with_error_code(ResponseError::CoordinatorNotAvailable.code());
    }
    OffsetDeleteResponse::default().with_topics(topics)
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
