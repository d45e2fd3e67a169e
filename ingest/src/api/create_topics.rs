//! CreateTopics, and the topic creation that Metadata's auto-creation shares.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use tracing::{info, warn};

use tierlog_metadata::TopicMeta;

use super::RequestContext;
use crate::error::{Error, Result};
use crate::host::Host;
use crate::protocol::str_bytes;
use crate::topic_config;
use tierlog_metadata::{AclOperation, AclResourceType};

/// What to create.
pub(super) struct NewTopic {
    pub(super) name: String,
    /// -1 = the node's default.
    pub(super) partitions: i32,
    /// -1 = the default (1 on a single node).
    pub(super) replication_factor: i16,
    pub(super) configs: BTreeMap<String, String>,
    /// Manual replica assignment per partition, if the request gave one.
    pub(super) assignments: Option<Vec<Vec<i32>>>,
}

/// Validates and (unless `validate_only`) creates a topic: metadata store first, then the
/// partition logs. Returns the topic as created.
pub(super) async fn create(h: &Arc<Host>, t: NewTopic, validate_only: bool) -> Result<TopicMeta> {
    tierlog_metadata::validate_topic_name(&t.name)
        .map_err(|e| Error::InvalidTopic(e.to_string()))?;
    let partitions = match t.partitions {
        -1 => h.defaults.default_partitions,
        n if n >= 1 => n,
        n => {
            return Err(Error::InvalidPartitions(format!(
                "partition count must be at least 1, got {n}"
            )));
        }
    };
    check_create_count(h, partitions)?;
    let mut live = h.cluster.live_nodes().len().max(1);
    if usize::try_from(t.replication_factor).is_ok_and(|rf| rf > live) {
        // The view may not show a node that has just registered yet: re-read the store
        // before refusing the replication factor.
        take_roles(h).await;
        live = h.cluster.live_nodes().len().max(1);
    }
    let replication_factor = match t.replication_factor {
        -1 => h.defaults.default_replication_factor.min(live as i16),
        n if n >= 1 && n as usize <= live => n,
        n if n < 1 => {
            return Err(Error::InvalidReplicationFactor(format!(
                "replication factor must be at least 1, got {n}"
            )));
        }
        n => {
            return Err(Error::InvalidReplicationFactor(format!(
                "replication factor {n} is larger than the {live} live nodes"
            )));
        }
    };
    if let Some(a) = &t.assignments {
        check_assignments(h, a)?;
    }
    let configs =
        topic_config::validate_all(t.configs.iter().map(|(k, v)| (k.as_str(), v.as_str())))?;
    topic_config::check_floors(&configs, h.defaults.min_segment_bytes)?;
    let meta = TopicMeta {
        name: t.name,
        id: uuid::Uuid::new_v4(),
        partitions,
        replication_factor,
        configs,
        created_ms: h.clock.now_ms(),
    };
    let admin = h.admin.lock().await;
    if h.topics.get(&meta.name).await?.is_some() {
        return Err(Error::TopicAlreadyExists(meta.name));
    }
    if validate_only {
        return Ok(meta);
    }
    h.topics.create(&meta).await.map_err(|e| match e.kind() {
        tierlog_metadata::ErrorKind::AlreadyExists => Error::TopicAlreadyExists(meta.name.clone()),
        _ => Error::Metadata(e),
    })?;
    let made = async {
        let states = create_states(h, &meta, 0, t.assignments).await?;
        install_created(h, &meta, 0, &states).await
    }
    .await;
    if let Err(e) = made {
        // Out of descriptors, disk or memory, or the metadata store failed part-way: undo
        // it all, so that the node keeps serving and the name can be created again.
        warn!(topic = %meta.name, error = %e, "creating the topic failed part-way; rolling it back");
        roll_back(h, &meta).await;
        return Err(e);
    }
    drop(admin);
    take_roles(h).await;
    info!(topic = %meta.name, id = %meta.id, partitions, replication_factor, "topic created");
    Ok(meta)
}

/// Removes a topic whose creation failed part-way: its open partitions and files, its
/// partition states and its metadata. Failures are logged (the controller and the next
/// start remove what is left: states of unknown topics, directories of unknown topics).
async fn roll_back(h: &Host, meta: &TopicMeta) {
    if let Err(e) = h.partitions.remove(meta).await {
        warn!(topic = %meta.name, error = %e, "rollback: removing the partitions failed");
    }
    if let Err(e) = h.cluster.states.delete_topic(meta.id).await {
        warn!(topic = %meta.name, error = %e, "rollback: deleting the partition states failed");
    }
    match h.topics.delete(&meta.name).await {
        Ok(_) => {}
        Err(e) => warn!(topic = %meta.name, error = %e, "rollback: deleting the topic failed"),
    }
}

/// Refuses a creation of more partitions than `max_create_partitions`.
pub(super) fn check_create_count(h: &Host, count: i32) -> Result<()> {
    let limit = h.defaults.max_create_partitions;
    if usize::try_from(count).unwrap_or(0) > limit {
        return Err(Error::InvalidPartitions(format!(
            "creating {count} partitions at once is more than max_create_partitions = {limit}"
        )));
    }
    Ok(())
}

/// Refuses new partition states that would put more replicas on a node than
/// `max_partitions_per_node`, counting what the cluster view already places there.
fn check_node_capacity(h: &Host, new: &[tierlog_metadata::PartitionState]) -> Result<()> {
    let limit = h.defaults.max_partitions_per_node;
    let mut load: std::collections::HashMap<i32, usize> = std::collections::HashMap::new();
    let view = h.cluster.view();
    for s in view.states.values().map(|v| &v.value).chain(new) {
        for r in &s.replicas {
            *load.entry(*r).or_default() += 1;
        }
    }
    match load
        .into_iter()
        .filter(|(_, n)| *n > limit)
        .max_by_key(|(_, n)| *n)
    {
        Some((node, n)) => Err(Error::InvalidPartitions(format!(
            "node {node} would host {n} partition replicas, more than max_partitions_per_node = {limit}"
        ))),
        None => Ok(()),
    }
}

/// Checks manual replica assignments: each names distinct live nodes.
pub(super) fn check_assignments(h: &Host, assignments: &[Vec<i32>]) -> Result<()> {
    let live = h.cluster.live_nodes();
    for a in assignments {
        let mut seen = a.clone();
        seen.sort_unstable();
        seen.dedup();
        if a.is_empty() || seen.len() != a.len() || a.iter().any(|n| !live.contains(n)) {
            return Err(Error::InvalidReplicaAssignment(format!(
                "assignment {a:?} must name distinct live nodes (live: {live:?})"
            )));
        }
    }
    Ok(())
}

/// Opens the partitions `first..` of `meta` that `states` (theirs, just written) place on
/// this node.
pub(super) async fn install_created(
    h: &Host,
    meta: &TopicMeta,
    first: i32,
    states: &[tierlog_metadata::PartitionState],
) -> Result<()> {
    let want = |i: i32| match i.checked_sub(first).and_then(|k| usize::try_from(k).ok()) {
        Some(k) => crate::partition::Want::of(states.get(k), h.node_id),
        None => crate::partition::Want::Keep,
    };
    h.partitions.install(meta.clone(), want).await?;
    Ok(())
}

/// Writes the partition states of partitions `first..meta.partitions`: from `assignments`
/// when given, else spread over the live nodes. Led by their first replica at epoch 0.
/// Returns them.
pub(super) async fn create_states(
    h: &Host,
    meta: &TopicMeta,
    first: i32,
    assignments: Option<Vec<Vec<i32>>>,
) -> Result<Vec<tierlog_metadata::PartitionState>> {
    let count = meta.partitions - first;
    let states = match assignments {
        Some(a) => a
            .into_iter()
            .zip(first..)
            .map(|(replicas, partition)| {
                crate::cluster::assign::new_state(meta.id, partition, replicas)
            })
            .collect(),
        None => {
            let mut live = crate::cluster::Cluster::placement(&h.cluster.view());
            if live.is_empty() {
                live.push((h.node_id, h.defaults.rack.clone()));
            }
            let placed: Vec<_> = live.iter().map(|(id, r)| (*id, r.as_deref())).collect();
            let rf = usize::try_from(meta.replication_factor).unwrap_or(1);
            crate::cluster::assign::new_states(meta.id, &placed, first, count, rf)
        }
    };
    check_node_capacity(h, &states)?;
    h.cluster.states.create_missing(&states, &[]).await?;
    Ok(states)
}

/// Re-reads the cluster state so this node takes its roles in new partitions before the
/// admin request is answered (clients produce right after creating).
pub(super) async fn take_roles(h: &Arc<Host>) {
    if let Err(e) = crate::host::sync::refresh(h).await {
        tracing::warn!(error = %e, "re-reading the cluster state after an admin change failed");
    }
}

pub(super) async fn handle(
    ctx: &RequestContext<'_>,
    h: &Arc<Host>,
    body: CreateTopicsRequest,
) -> CreateTopicsResponse {
    let mut results = Vec::with_capacity(body.topics.len());
    // As Kafka: CREATE on the cluster covers every topic (asked quietly), else CREATE on each.
    let on_cluster = ctx.allowed(
        AclOperation::Create,
        AclResourceType::Cluster,
        crate::security::acl::CLUSTER_NAME,
    );
    for t in body.topics {
        let name = t.name.0.to_string();
        let mut result = CreatableTopicResult::default().with_name(t.name.clone());
        if !on_cluster && !ctx.topic(AclOperation::Create, &name) {
            let e = Error::TopicAuthorizationFailed(name);
            result.error_code = e.kafka_code();
            result.error_message = Some(e.message());
            result.num_partitions = -1;
            result.replication_factor = -1;
            results.push(result);
            continue;
        }
        let mut configs = BTreeMap::new();
        let mut bad = None;
        for c in &t.configs {
            match &c.value {
                Some(v) => {
                    configs.insert(c.name.to_string(), v.to_string());
                }
                None => {
                    bad = Some(Error::InvalidConfig(format!(
                        "`{}` has a null value",
                        c.name.as_str()
                    )))
                }
            }
        }
        let assignments: Option<Vec<Vec<i32>>> = (!t.assignments.is_empty()).then(|| {
            let mut a: Vec<_> = t.assignments.iter().collect();
            a.sort_by_key(|x| x.partition_index);
            a.iter()
                .map(|x| x.broker_ids.iter().map(|id| id.0).collect())
                .collect()
        });
        let partitions = if t.assignments.is_empty() {
            t.num_partitions
        } else {
            t.assignments.len() as i32
        };
        let outcome = match bad {
            Some(e) => Err(e),
            None => {
                let spec = NewTopic {
                    name,
                    partitions,
                    replication_factor: match &assignments {
                        Some(a) => a.first().map_or(-1, |r| r.len() as i16),
                        None => t.replication_factor,
                    },
                    configs,
                    assignments,
                };
                create(h, spec, body.validate_only).await
            }
        };
        match outcome {
            Ok(meta) => {
                // Null on success, as Kafka sends it (the codec's default is an empty string).
                result.error_message = None;
                result.topic_id = meta.id;
                result.num_partitions = meta.partitions;
                result.replication_factor = meta.replication_factor;
                if ctx.version() >= 5
                    && !ctx.allowed(
                        AclOperation::DescribeConfigs,
                        AclResourceType::Topic,
                        &meta.name,
                    )
                {
                    result.topic_config_error_code =
                        Error::TopicAuthorizationFailed(meta.name.clone()).kafka_code();
                } else if ctx.version() >= 5 {
                    let node = h.dynamic.topic_defaults();
                    result.configs = Some(
                        topic_config::TOPIC_CONFIGS
                            .iter()
                            .map(|d| {
                                let (value, source) =
                                    topic_config::resolve(&meta.configs, d, &node);
                                CreatableTopicConfigs::default()
                                    .with_name(str_bytes(d.name))
                                    .with_value(Some(str_bytes(&value)))
                                    .with_config_source(source.code())
                            })
                            .collect(),
                    );
                }
            }
            Err(e) => {
                result.error_code = e.kafka_code();
                result.error_message = Some(e.message());
                result.num_partitions = -1;
                result.replication_factor = -1;
            }
        }
        results.push(result);
    }
    CreateTopicsResponse::default().with_topics(results)
}
