//! The next-generation consumer group APIs (KIP-848): ConsumerGroupHeartbeat and
//! ConsumerGroupDescribe. The coordinator (`crate::group::consumer`) holds the state machine
//! and the assignors; these functions translate requests and responses.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use kafka_protocol::messages::consumer_group_describe_response as describe;
use kafka_protocol::messages::consumer_group_heartbeat_response as heartbeat;
use kafka_protocol::messages::*;

use tierlog_metadata::AclOperation;

use super::RequestContext;
use crate::group::Coordinator;
use crate::group::GroupError;
use crate::group::consumer::{Assignment, Heartbeat, TopicLookup, TopicMeta};
use crate::host::Host;
use crate::protocol::str_bytes;

/// A topic's id and partition count, if this node knows it.
fn topic_meta(h: &Host, name: &str) -> Option<TopicMeta> {
    h.partitions.topic(name).map(|t| TopicMeta {
        id: t.meta.id,
        partitions: t.meta.partitions,
    })
}

/// The topics of this node as the member heartbeating sees them: a pattern subscription
/// matches only topics it may describe (as Kafka filters a resolved regex).
struct MemberTopics<'a, 'c> {
    ctx: &'a RequestContext<'c>,
    host: &'a Host,
}

impl TopicLookup for MemberTopics<'_, '_> {
    fn meta(&self, name: &str) -> Option<TopicMeta> {
        topic_meta(self.host, name)
    }

    fn names(&self) -> Vec<String> {
        self.host
            .partitions
            .all()
            .iter()
            .map(|t| t.meta.name.to_string())
            .filter(|n| self.ctx.topic(AclOperation::Describe, n))
            .collect()
    }
}

fn heartbeat_assignment(a: Assignment) -> heartbeat::Assignment {
    heartbeat::Assignment::default().with_topic_partitions(
        a.into_iter()
            .map(|(t, ps)| {
                heartbeat::TopicPartitions::default()
                    .with_topic_id(t)
                    .with_partitions(ps.into_iter().collect())
            })
            .collect(),
    )
}

pub(super) fn heartbeat(
    ctx: &RequestContext<'_>,
    g: &Arc<Coordinator>,
    h: &Host,
    body: ConsumerGroupHeartbeatRequest,
) -> ConsumerGroupHeartbeatResponse {
    let fail = |error: GroupError, message: Option<String>| {
        ConsumerGroupHeartbeatResponse::default()
            .with_error_code(error.kafka_code())
            .with_error_message(message.as_deref().map(str_bytes))
    };
    // As Kafka: READ on the group, then DESCRIBE on every subscribed topic named.
    if !ctx.group(AclOperation::Read, body.group_id.0.as_str()) {
        return fail(GroupError::GroupAuthorizationFailed, None);
    }
    if let Some(names) = &body.subscribed_topic_names {
        let all: BTreeSet<&str> = names.iter().map(|t| t.0.as_str()).collect();
        if all
            .iter()
            .filter(|t| ctx.topic(AclOperation::Describe, t))
            .count()
            < all.len()
        {
            let e = crate::error::Error::TopicAuthorizationFailed(String::new());
            return ConsumerGroupHeartbeatResponse::default().with_error_code(e.kafka_code());
        }
    }
    if !h.cluster.coordinates(body.group_id.0.as_str()) {
        return fail(GroupError::NotCoordinator, None);
    }
    let hb = Heartbeat {
        version: ctx.version(),
        group: body.group_id.0.to_string(),
        member_id: body.member_id.to_string(),
        member_epoch: body.member_epoch,
        instance_id: body.instance_id.as_ref().map(|s| s.to_string()),
        rack_id: body.rack_id.as_ref().map(|s| s.to_string()),
        rebalance_timeout_ms: body.rebalance_timeout_ms,
        subscribed_topic_names: body
            .subscribed_topic_names
            .map(|ts| ts.into_iter().map(|t| t.0.to_string()).collect()),
        subscribed_topic_regex: body.subscribed_topic_regex.map(|r| r.to_string()),
        server_assignor: body.server_assignor.map(|a| a.to_string()),
        owned: body.topic_partitions.map(|tps| {
            let mut owned = Assignment::new();
            for tp in tps {
                owned.entry(tp.topic_id).or_default().extend(tp.partitions);
            }
            owned.retain(|_, ps| !ps.is_empty());
            owned
        }),
        client_id: ctx.client_id(),
        client_host: super::client_host(ctx.peer),
    };
    match g.consumer_heartbeat(hb, &MemberTopics { ctx, host: h }) {
        Ok(beat) => ConsumerGroupHeartbeatResponse::default()
            .with_member_id(Some(str_bytes(&beat.member_id)))
            .with_member_epoch(beat.member_epoch)
            .with_heartbeat_interval_ms(beat.heartbeat_interval_ms)
            .with_assignment(beat.assignment.map(heartbeat_assignment)),
        Err(r) => fail(r.error, Some(r.message)),
    }
}

fn describe_assignment(a: Assignment, names: &HashMap<uuid::Uuid, String>) -> describe::Assignment {
    describe::Assignment::default().with_topic_partitions(
        a.into_iter()
            .map(|(t, ps)| {
                let name = names.get(&t).map(String::as_str).unwrap_or_default();
                describe::TopicPartitions::default()
                    .with_topic_id(t)
                    .with_topic_name(TopicName(str_bytes(name)))
                    .with_partitions(ps.into_iter().collect())
            })
            .collect(),
    )
}

pub(super) fn describe(
    ctx: &RequestContext<'_>,
    g: &Arc<Coordinator>,
    h: &Host,
    body: ConsumerGroupDescribeRequest,
) -> ConsumerGroupDescribeResponse {
    let groups = body
        .group_ids
        .into_iter()
        .map(|id| {
            let name = id.0.to_string();
            let out = describe::DescribedGroup::default().with_group_id(id);
            if !ctx.group(AclOperation::Describe, &name) {
                return out.with_error_code(GroupError::GroupAuthorizationFailed.kafka_code());
            }
            if !h.cluster.coordinates(&name) {
                return out.with_error_code(GroupError::NotCoordinator.kafka_code());
            }
            let Some(view) = g.consumer.describe(&name) else {
                // As Kafka: an unknown group and a classic group are both "not found" here.
                let message = if g.group(&name).is_some() {
                    format!("Group {name} is not a consumer group.")
                } else {
                    format!("Group {name} not found.")
                };
                return out
                    .with_error_code(GroupError::GroupIdNotFound.kafka_code())
                    .with_error_message(Some(str_bytes(&message)))
                    .with_group_state(str_bytes("Dead"));
            };
            let members = view
                .members
                .into_iter()
                .map(|m| {
                    let mut member = describe::Member::default()
                        .with_member_id(str_bytes(&m.member_id))
                        .with_instance_id(m.instance_id.as_deref().map(str_bytes))
                        .with_rack_id(m.rack_id.as_deref().map(str_bytes))
                        .with_member_epoch(m.member_epoch)
                        .with_client_id(str_bytes(&m.client_id))
                        .with_client_host(str_bytes(&m.client_host))
                        .with_subscribed_topic_names(
                            m.subscribed
                                .iter()
                                .map(|t| TopicName(str_bytes(t)))
                                .collect(),
                        )
                        .with_subscribed_topic_regex(m.regex.as_deref().map(str_bytes))
                        .with_assignment(describe_assignment(m.assignment, &view.topic_names))
                        .with_target_assignment(describe_assignment(m.target, &view.topic_names));
                    if ctx.version() >= 1 {
                        // 1: a member of the consumer protocol.
                        member.member_type = 1;
                    }
                    member
                })
                .collect();
            out.with_group_state(str_bytes(view.state))
                .with_group_epoch(view.group_epoch)
                .with_assignment_epoch(view.assignment_epoch)
                .with_assignor_name(str_bytes(view.assignor))
                .with_members(members)
                .with_authorized_operations(if body.include_authorized_operations {
                    ctx.authz.authorized_operations(
                        ctx.session,
                        tierlog_metadata::AclResourceType::Group,
                        &name,
                        crate::security::acl::GROUP_OPERATIONS,
                    )
                } else {
                    i32::MIN
                })
        })
        .collect();
    ConsumerGroupDescribeResponse::default().with_groups(groups)
}
