//! OffsetFetch: a group's committed offsets (v8+: several groups; v9: a next-generation
//! member fetches with its epoch; v7+: `require_stable` answers UNSTABLE_OFFSET_COMMIT for a
//! partition whose offset an open transaction has staged).

use std::sync::Arc;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::*;

use super::RequestContext;
use super::groups::coordinator_error;
use crate::group::Coordinator;
use crate::group::GroupError;
use crate::group::offsets::CommittedOffset;
use crate::host::Host;
use crate::protocol::str_bytes;
use crate::txn::TxnCoordinator;
use tierlog_metadata::AclOperation;

/// One partition's answer: `(partition, offset, epoch, metadata, error)`.
type Row = (i32, i64, i32, Option<String>, i16);

/// The offsets of one group for OffsetFetch: `(topic, rows)`.
type FetchedTopics = Vec<(TopicName, Vec<Row>)>;

/// The answer for a partition whose offset a transaction has staged and not yet finished,
/// when the client requires stable offsets (Kafka's, KIP-447).
fn unstable(p: i32) -> Row {
    (
        p,
        -1,
        -1,
        Some(String::new()),
        ResponseError::UnstableOffsetCommit.code(),
    )
}

/// As Kafka: offsets of topics the principal may not DESCRIBE are left out of an "all
/// topics" fetch, and answered TOPIC_AUTHORIZATION_FAILED (no offset) when asked for by name.
fn authorize_topics(ctx: &RequestContext<'_>, all: bool, topics: FetchedTopics) -> FetchedTopics {
    let denied = crate::error::Error::TopicAuthorizationFailed(String::new()).kafka_code();
    topics
        .into_iter()
        .filter_map(|(name, rows)| {
            if all {
                ctx.allowed(
                    AclOperation::Describe,
                    tierlog_metadata::AclResourceType::Topic,
                    name.0.as_str(),
                )
                .then_some((name, rows))
            } else if ctx.topic(AclOperation::Describe, name.0.as_str()) {
                Some((name, rows))
            } else {
                let rows = rows
                    .into_iter()
                    .map(|(p, _, _, _, _)| (p, -1, -1, None, denied))
                    .collect();
                Some((name, rows))
            }
        })
        .collect()
}

async fn fetch_group(
    g: &Coordinator,
    h: &Host,
    tx: &TxnCoordinator,
    group: &str,
    wanted: Option<Vec<(TopicName, Vec<i32>)>>,
    require_stable: bool,
) -> Result<FetchedTopics, i16> {
    match coordinator_error(h, group) {
        0 => {}
        code => return Err(code),
    }
    let pending = if require_stable {
        tx.pending_offsets(group)
            .await
            .map_err(|_| GroupError::CoordinatorNotAvailable.kafka_code())?
    } else {
        Default::default()
    };
    let is_pending = |t: &str, p: i32| pending.contains(&(t.to_owned(), p));
    let committed = g
        .offsets
        .fetch(group)
        .await
        .map_err(|_| GroupError::CoordinatorNotAvailable.kafka_code())?;
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
                        _ if is_pending(name.0.as_str(), p) => unstable(p),
                        Some(o) => (p, o.offset, o.leader_epoch, metadata(o), 0),
                        None => (p, -1, -1, Some(String::new()), 0),
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
                    rows.push(if is_pending(t, *p) {
                        unstable(*p)
                    } else {
                        (*p, o.offset, o.leader_epoch, metadata(o), 0)
                    });
                }
            }
            by_topic
        }
    })
}

pub(super) async fn handle(
    ctx: &RequestContext<'_>,
    gc: &Arc<Coordinator>,
    h: &Host,
    tx: &TxnCoordinator,
    body: OffsetFetchRequest,
) -> OffsetFetchResponse {
    let v = ctx.version();
    let epoch = |e: i32| if v >= 5 { e } else { -1 };
    // v7+: a read_committed consumer requires stable offsets.
    let stable = v >= 7 && body.require_stable;
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
            if !ctx.group(AclOperation::Describe, g.group_id.0.as_str()) {
                out.error_code = GroupError::GroupAuthorizationFailed.kafka_code();
                groups.push(out);
                continue;
            }
            let all = wanted.is_none();
            if let Some(e) = member_error {
                out.error_code = e.kafka_code();
                groups.push(out);
                continue;
            }
            match fetch_group(gc, h, tx, g.group_id.0.as_str(), wanted, stable).await {
                Ok(topics) => {
                    out.topics = authorize_topics(ctx, all, topics)
                        .into_iter()
                        .map(|(name, rows)| {
                            OffsetFetchResponseTopics::default()
                                .with_name(name)
                                .with_partitions(
                                    rows.into_iter()
                                        .map(|(p, o, e, m, err)| {
                                            OffsetFetchResponsePartitions::default()
                                                .with_partition_index(p)
                                                .with_error_code(err)
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
    if !ctx.group(AclOperation::Describe, body.group_id.0.as_str()) {
        resp.error_code = GroupError::GroupAuthorizationFailed.kafka_code();
        return resp;
    }
    let all = wanted.is_none();
    match fetch_group(gc, h, tx, body.group_id.0.as_str(), wanted, stable).await {
        Ok(topics) => {
            resp.topics = authorize_topics(ctx, all, topics)
                .into_iter()
                .map(|(name, rows)| {
                    OffsetFetchResponseTopic::default()
                        .with_name(name)
                        .with_partitions(
                            rows.into_iter()
                                .map(|(p, o, e, m, err)| {
                                    OffsetFetchResponsePartition::default()
                                        .with_partition_index(p)
                                        .with_error_code(err)
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
