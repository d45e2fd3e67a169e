//! AlterPartitionReassignments, ListPartitionReassignments and ElectLeaders: moving replicas
//! and leaders, as `kafka-reassign-partitions` and `kafka-leader-election` do. Each change is
//! a compare-and-swap of the partition's state; nodes open and close replicas as the states
//! say, and the controller completes a reassignment once its new replicas are in sync (see
//! `cluster::reassign`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::list_partition_reassignments_response::{
    OngoingPartitionReassignment, OngoingTopicReassignment,
};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, BrokerId,
    ElectLeadersRequest, ElectLeadersResponse, ListPartitionReassignmentsRequest,
    ListPartitionReassignmentsResponse, TopicName,
};
use tracing::info;

use tierlog_metadata::{AclOperation, NodeId, PartitionState, TopicMeta, Versioned};

use super::RequestContext;
use crate::cluster::{ClusterView, reassign};
use crate::error::{Error, Result};
use crate::host::Host;
use crate::protocol::str_bytes;

/// Compare-and-swap attempts on one partition's state before giving up (it kept changing:
/// ISR changes, failovers).
const ATTEMPTS: usize = 10;

fn ids(nodes: &[NodeId]) -> Vec<BrokerId> {
    nodes.iter().map(|n| BrokerId(*n)).collect()
}

pub(super) async fn alter(
    ctx: &RequestContext<'_>,
    h: &Arc<Host>,
    body: AlterPartitionReassignmentsRequest,
) -> AlterPartitionReassignmentsResponse {
    let resp = AlterPartitionReassignmentsResponse::default()
        .with_allow_replication_factor_change(body.allow_replication_factor_change);
    // As Kafka: ALTER on the cluster, refused as a whole.
    if !ctx.cluster(AclOperation::Alter) {
        let e = Error::ClusterAuthorizationFailed("ALTER on the cluster".into());
        return resp
            .with_error_code(e.kafka_code())
            .with_error_message(Some(e.message()));
    }
    let live: BTreeSet<NodeId> = h.cluster.view().nodes.keys().copied().collect();
    let mut responses = Vec::with_capacity(body.topics.len());
    for t in body.topics {
        let name = t.name.0.to_string();
        let meta = h.topics.get(&name).await;
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for p in t.partitions {
            let target: Option<Vec<NodeId>> = p.replicas.map(|r| r.iter().map(|b| b.0).collect());
            let outcome = match &meta {
                Ok(Some(m)) => {
                    let rf_change = body.allow_replication_factor_change;
                    reassign_one(h, m, p.partition_index, target, rf_change, &live).await
                }
                Ok(None) => Err(Error::UnknownTopicOrPartition(name.clone())),
                Err(e) => Err(Error::Internal(e.to_string())),
            };
            let mut r =
                ReassignablePartitionResponse::default().with_partition_index(p.partition_index);
            if let Err(e) = outcome {
                r.error_code = e.kafka_code();
                r.error_message = Some(e.message());
            }
            partitions.push(r);
        }
        responses.push(
            ReassignableTopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions),
        );
    }
    resp.with_responses(responses)
}

/// Starts (`Some`) or cancels (`None`) the reassignment of one partition.
async fn reassign_one(
    h: &Host,
    meta: &TopicMeta,
    index: i32,
    target: Option<Vec<NodeId>>,
    allow_rf_change: bool,
    live: &BTreeSet<NodeId>,
) -> Result<()> {
    let tp = format!("{}-{index}", meta.name);
    if index < 0 || index >= meta.partitions {
        return Err(Error::UnknownTopicOrPartition(tp));
    }
    if let Some(t) = &target {
        let distinct: BTreeSet<NodeId> = t.iter().copied().collect();
        if t.is_empty() {
            return Err(Error::InvalidReplicaAssignment(format!(
                "{tp}: the new replica list is empty"
            )));
        }
        if distinct.len() != t.len() {
            return Err(Error::InvalidReplicaAssignment(format!(
                "{tp}: the new replicas {t:?} repeat a node"
            )));
        }
        if let Some(n) = t.iter().find(|n| !live.contains(n)) {
            return Err(Error::InvalidReplicaAssignment(format!(
                "{tp}: node {n} is not a live node of the cluster"
            )));
        }
    }
    for _ in 0..ATTEMPTS {
        let current = h
            .cluster
            .states
            .get(meta.id, index)
            .await?
            .ok_or_else(|| Error::UnknownTopicOrPartition(tp.clone()))?;
        let s = &current.value;
        let next = match &target {
            None => {
                reassign::cancel(s).ok_or_else(|| Error::NoReassignmentInProgress(tp.clone()))?
            }
            Some(t) => {
                let from = s.original_replicas().len();
                if !allow_rf_change && t.len() != from {
                    return Err(Error::InvalidReplicationFactor(format!(
                        "{tp}: the replication factor would change from {from} to {}, \
                         and the request does not allow it",
                        t.len()
                    )));
                }
                if *t == s.replicas && !s.is_reassigning() {
                    return Ok(());
                }
                reassign::start(s, t)
            }
        };
        if h.cluster.states.cas(&current, &next, &[]).await?.is_some() {
            info!(
                partition = %tp,
                replicas = ?next.replicas,
                adding = ?next.adding_replicas,
                removing = ?next.removing_replicas,
                "partition reassignment {}",
                if target.is_some() { "started" } else { "cancelled" }
            );
            return Ok(());
        }
    }
    Err(Error::RequestTimedOut(format!(
        "{tp}: the partition's state kept changing"
    )))
}

pub(super) fn list(
    ctx: &RequestContext<'_>,
    h: &Host,
    body: ListPartitionReassignmentsRequest,
) -> ListPartitionReassignmentsResponse {
    let resp = ListPartitionReassignmentsResponse::default();
    if !ctx.cluster(AclOperation::Describe) {
        let e = Error::ClusterAuthorizationFailed("DESCRIBE on the cluster".into());
        return resp
            .with_error_code(e.kafka_code())
            .with_error_message(Some(e.message()));
    }
    let view = h.cluster.view();
    let wanted: Option<BTreeMap<String, Vec<i32>>> = body.topics.map(|ts| {
        ts.into_iter()
            .map(|t| (t.name.0.to_string(), t.partition_indexes))
            .collect()
    });
    let mut topics = Vec::new();
    for meta in view.topics.values() {
        let indexes: Vec<i32> = match &wanted {
            Some(w) => match w.get(&meta.name) {
                Some(i) => i.clone(),
                None => continue,
            },
            None => (0..meta.partitions).collect(),
        };
        let partitions: Vec<_> = indexes
            .into_iter()
            .filter_map(|i| view.state(meta.id, i).filter(|s| s.is_reassigning()))
            .map(|s| {
                OngoingPartitionReassignment::default()
                    .with_partition_index(s.partition)
                    .with_replicas(ids(&s.replicas))
                    .with_adding_replicas(ids(&s.adding_replicas))
                    .with_removing_replicas(ids(&s.removing_replicas))
            })
            .collect();
        if !partitions.is_empty() {
            topics.push(
                OngoingTopicReassignment::default()
                    .with_name(TopicName(str_bytes(&meta.name)))
                    .with_partitions(partitions),
            );
        }
    }
    resp.with_topics(topics)
}

/// ElectLeaders' election types.
const PREFERRED: i8 = 0;
const UNCLEAN: i8 = 1;

pub(super) async fn elect(
    ctx: &RequestContext<'_>,
    h: &Host,
    body: ElectLeadersRequest,
) -> ElectLeadersResponse {
    let view = h.cluster.view();
    let all = body.topic_partitions.is_none();
    let requested: Vec<(String, i32)> = match body.topic_partitions {
        Some(ts) => ts
            .into_iter()
            .flat_map(|t| {
                let name = t.topic.0.to_string();
                t.partitions.into_iter().map(move |p| (name.clone(), p))
            })
            .collect(),
        None => view
            .topics
            .values()
            .flat_map(|m| (0..m.partitions).map(|p| (m.name.clone(), p)))
            .collect(),
    };
    let mut results: Vec<(String, i32, Result<()>)> = Vec::with_capacity(requested.len());
    if !ctx.cluster(AclOperation::Alter) {
        // As Kafka: the error on the response and on every partition asked for.
        let e = Error::ClusterAuthorizationFailed("ALTER on the cluster".into());
        let code = e.kafka_code();
        let results = if all {
            Vec::new()
        } else {
            requested
                .into_iter()
                .map(|(t, p)| (t, p, Err(Error::ClusterAuthorizationFailed(String::new()))))
                .collect()
        };
        return election_response(results).with_error_code(code);
    }
    for (topic, index) in requested {
        let outcome = match view.topics.get(&topic) {
            Some(m) if (0..m.partitions).contains(&index) => {
                elect_one(h, &view, m, index, body.election_type).await
            }
            _ => Err(Error::UnknownTopicOrPartition(format!("{topic}-{index}"))),
        };
        // Asked for every partition, Kafka reports only those where an election was needed.
        if all && matches!(outcome, Err(Error::ElectionNotNeeded(_))) {
            continue;
        }
        results.push((topic, index, outcome));
    }
    election_response(results)
}

fn election_response(results: Vec<(String, i32, Result<()>)>) -> ElectLeadersResponse {
    let mut by_topic: BTreeMap<String, Vec<PartitionResult>> = BTreeMap::new();
    for (topic, index, outcome) in results {
        let mut r = PartitionResult::default().with_partition_id(index);
        if let Err(e) = outcome {
            r.error_code = e.kafka_code();
            r.error_message = Some(e.message());
        }
        by_topic.entry(topic).or_default().push(r);
    }
    ElectLeadersResponse::default().with_replica_election_results(
        by_topic
            .into_iter()
            .map(|(t, partition_result)| {
                ReplicaElectionResult::default()
                    .with_topic(TopicName(str_bytes(&t)))
                    .with_partition_result(partition_result)
            })
            .collect(),
    )
}

/// One election: the state it writes, or why none.
fn elected(s: &PartitionState, view: &ClusterView, kind: i8) -> Result<PartitionState> {
    let tp = format!("partition {}", s.partition);
    let live = |n: NodeId| view.nodes.contains_key(&n);
    let mut next = s.clone();
    match kind {
        PREFERRED => {
            let preferred = s.replicas.first().copied().unwrap_or(-1);
            if s.leader == preferred {
                return Err(Error::ElectionNotNeeded(tp));
            }
            if !live(preferred) || !s.isr.contains(&preferred) {
                return Err(Error::PreferredLeaderNotAvailable(format!(
                    "{tp}: the preferred replica {preferred} is not live and in sync"
                )));
            }
            if s.is_damaged(preferred) {
                return Err(Error::PreferredLeaderNotAvailable(format!(
                    "{tp}: the preferred replica {preferred} holds a damaged range it has not repaired yet"
                )));
            }
            next.leader = preferred;
        }
        UNCLEAN => {
            if s.leader >= 0 && live(s.leader) {
                return Err(Error::ElectionNotNeeded(tp));
            }
            let clean = s.choose_leader(|r| live(r) && s.isr.contains(&r));
            let Some(leader) = clean.or_else(|| s.choose_leader(live)) else {
                return Err(Error::EligibleLeadersNotAvailable(format!(
                    "{tp}: no replica is live"
                )));
            };
            if clean.is_none() {
                next.isr = vec![leader];
            }
            next.leader = leader;
        }
        other => {
            return Err(Error::InvalidRequest(format!(
                "unknown election type {other}"
            )));
        }
    }
    next.leader_epoch = s.leader_epoch + 1;
    next.partition_epoch = s.partition_epoch + 1;
    Ok(next)
}

async fn elect_one(
    h: &Host,
    view: &ClusterView,
    meta: &TopicMeta,
    index: i32,
    kind: i8,
) -> Result<()> {
    let mut current: Option<Versioned<PartitionState>> =
        view.states.get(&(meta.id, index)).cloned();
    for _ in 0..ATTEMPTS {
        let Some(c) = current.take() else {
            return Err(Error::LeaderNotAvailable(format!("{}-{index}", meta.name)));
        };
        let next = elected(&c.value, view, kind)?;
        if h.cluster.states.cas(&c, &next, &[]).await?.is_some() {
            info!(partition = %format!("{}-{index}", meta.name), leader = next.leader, epoch = next.leader_epoch, "leader elected on request");
            return Ok(());
        }
        current = h.cluster.states.get(meta.id, index).await?;
    }
    Err(Error::RequestTimedOut(format!(
        "{}-{index}: the partition's state kept changing",
        meta.name
    )))
}
