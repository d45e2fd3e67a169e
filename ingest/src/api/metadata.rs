//! Metadata: the live nodes, the controller, and topics with each partition's leader, leader
//! epoch, replicas and ISR, from this node's view of the cluster. Creates unknown topics when
//! both the request and the node allow it.

use std::sync::Arc;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use tracing::debug;

use super::RequestContext;
use super::create_topics::{self, NewTopic};
use crate::broker::Identity;
use crate::cluster::{Cluster, ClusterView};
use crate::error::Error;
use crate::host::Host;
use crate::partition::TopicState;
use crate::protocol::str_bytes;
use crate::security::acl::{CLUSTER_OPERATIONS, TOPIC_OPERATIONS};
use tierlog_metadata::{AclOperation, AclResourceType, TopicId};

pub(super) async fn handle(
    ctx: &RequestContext<'_>,
    h: &Arc<Host>,
    id: &Identity,
    body: MetadataRequest,
) -> MetadataResponse {
    // The authorized-operations bit fields, as Kafka computes them; i32::MIN means "not asked
    // for".
    let topic_ops = |name: &str| {
        if body.include_topic_authorized_operations {
            ctx.authz.authorized_operations(
                ctx.session,
                AclResourceType::Topic,
                name,
                TOPIC_OPERATIONS,
            )
        } else {
            i32::MIN
        }
    };
    let denied = |name: Option<&str>, id| {
        MetadataResponseTopic::default()
            .with_name(name.map(|n| TopicName(str_bytes(n))))
            .with_topic_id(id)
            .with_error_code(Error::TopicAuthorizationFailed(String::new()).kafka_code())
    };
    let topics = match body.topics {
        // Every topic the principal may describe; the others are left out, not refused.
        None => h
            .partitions
            .all()
            .iter()
            .filter(|t| ctx.allowed(AclOperation::Describe, AclResourceType::Topic, &t.meta.name))
            .map(|t| describe(h, t, topic_ops(&t.meta.name)))
            .collect(),
        Some(requested) => {
            let mut out = Vec::with_capacity(requested.len());
            for t in requested {
                let by_name = t.name.as_ref().map(|n| n.0.to_string());
                let found = match &by_name {
                    Some(name) => h.partitions.topic(name),
                    None => h.partitions.topic_by_id(t.topic_id),
                };
                let topic = match (found, by_name) {
                    (Some(state), by_name) => {
                        if ctx.topic(AclOperation::Describe, &state.meta.name) {
                            describe(h, &state, topic_ops(&state.meta.name))
                        } else {
                            // By id, the name is not revealed.
                            denied(by_name.as_deref(), uuid::Uuid::nil())
                        }
                    }
                    (None, Some(name)) if !ctx.topic(AclOperation::Describe, &name) => {
                        denied(Some(&name), uuid::Uuid::nil())
                    }
                    (None, Some(name)) => {
                        let auto = h.defaults.auto_create_topics
                            && (ctx.version() < 4 || body.allow_auto_topic_creation);
                        // Creating needs CREATE on the cluster (asked quietly) or the topic.
                        if auto
                            && tierlog_metadata::validate_topic_name(&name).is_ok()
                            && !ctx.allowed(
                                AclOperation::Create,
                                AclResourceType::Cluster,
                                crate::security::acl::CLUSTER_NAME,
                            )
                            && !ctx.topic(AclOperation::Create, &name)
                        {
                            denied(Some(&name), uuid::Uuid::nil())
                        } else {
                            let ops = topic_ops(&name);
                            auto_create_or_error(ctx, h, name, auto, ops).await
                        }
                    }
                    (None, None) => MetadataResponseTopic::default()
                        .with_topic_id(t.topic_id)
                        .with_error_code(ResponseError::UnknownTopicId.code()),
                };
                out.push(topic);
            }
            out
        }
    };
    let view = h.cluster.view();
    MetadataResponse::default()
        .with_brokers(brokers(&h.cluster, id, &ctx.session.listener))
        .with_cluster_id(Some(str_bytes(&id.cluster_id)))
        .with_controller_id(BrokerId(view.controller.unwrap_or(-1)))
        .with_topics(topics)
        .with_cluster_authorized_operations(if body.include_cluster_authorized_operations {
            ctx.authz.authorized_operations(
                ctx.session,
                AclResourceType::Cluster,
                crate::security::acl::CLUSTER_NAME,
                CLUSTER_OPERATIONS,
            )
        } else {
            i32::MIN
        })
}

async fn auto_create_or_error(
    ctx: &RequestContext<'_>,
    h: &Arc<Host>,
    name: String,
    auto: bool,
    topic_ops: i32,
) -> MetadataResponseTopic {
    let unknown = |name: String, code: i16| {
        MetadataResponseTopic::default()
            .with_name(Some(TopicName(str_bytes(&name))))
            .with_error_code(code)
    };
    if let Err(e) = tierlog_metadata::validate_topic_name(&name) {
        debug!(topic = %name, error = %e, "metadata for an invalid topic name");
        return unknown(name, ResponseError::InvalidTopicException.code());
    }
    if !auto {
        return unknown(name, ResponseError::UnknownTopicOrPartition.code());
    }
    // Each address may auto-create so many topics a minute: past that, the topic is unknown
    // (producers retry their metadata) rather than created.
    let ip = ctx.session.peer.ip();
    if !ctx.quotas.may_auto_create(ip) {
        debug!(topic = %name, %ip, "auto-creation refused: the address used its allowance");
        return unknown(name, ResponseError::UnknownTopicOrPartition.code());
    }
    let spec = NewTopic {
        name: name.clone(),
        partitions: -1,
        replication_factor: -1,
        configs: Default::default(),
        assignments: None,
    };
    let created = create_topics::create(h, spec, false).await;
    if matches!(created, Err(Error::TopicAlreadyExists(_))) {
        ctx.quotas.auto_create_not_needed(ip);
    }
    match created {
        Ok(_) | Err(Error::TopicAlreadyExists(_)) => match h.partitions.topic(&name) {
            // Kafka answers LEADER_NOT_AVAILABLE while a new topic settles; here it is ready.
            Some(state) => describe(h, &state, topic_ops),
            None => unknown(name, ResponseError::LeaderNotAvailable.code()),
        },
        Err(e) => unknown(name, e.kafka_code()),
    }
}

/// The live nodes as Metadata and DescribeCluster list them, each at its endpoint on
/// `listener` (the one the request arrived on; nodes without it are left out, as Kafka does),
/// this node at least, even before its first view.
pub(super) fn brokers(
    cluster: &Cluster,
    id: &Identity,
    listener: &str,
) -> Vec<MetadataResponseBroker> {
    let view = cluster.view();
    let mut out: Vec<_> = view
        .nodes
        .values()
        .filter_map(|n| {
            let (host, port) = n.endpoint(listener)?;
            Some(
                MetadataResponseBroker::default()
                    .with_node_id(BrokerId(n.id))
                    .with_host(str_bytes(host))
                    .with_port(port)
                    .with_rack(n.rack.as_deref().map(str_bytes)),
            )
        })
        .collect();
    if !view.nodes.contains_key(&id.node_id)
        && let Some((host, port)) = id.endpoint(listener)
    {
        out.push(
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(id.node_id))
                .with_host(str_bytes(host))
                .with_port(port),
        );
    }
    out
}

fn describe(h: &Host, t: &TopicState, topic_ops: i32) -> MetadataResponseTopic {
    let view = h.cluster.view();
    let partitions = (0..t.meta.partitions)
        .map(|i| {
            let p = PartitionView::of(&view, t.meta.id, i);
            let r = MetadataResponsePartition::default()
                .with_partition_index(i)
                .with_leader_id(BrokerId(p.leader))
                .with_leader_epoch(p.leader_epoch)
                .with_replica_nodes(p.replicas)
                .with_isr_nodes(p.isr)
                .with_offline_replicas(p.offline);
            if p.leader < 0 {
                r.with_error_code(ResponseError::LeaderNotAvailable.code())
            } else {
                r
            }
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(str_bytes(&t.meta.name))))
        .with_topic_id(t.meta.id)
        .with_partitions(partitions)
        .with_topic_authorized_operations(topic_ops)
}

/// One partition as this node's cached view of the cluster has it: what Metadata and
/// DescribeTopicPartitions report (each in its own message type). Built from the view alone,
/// with no I/O, so answering for 100,000 partitions costs a pass over memory.
pub(super) struct PartitionView {
    /// The stored leader, -1 when there is none or the state is not in the view yet.
    pub(super) leader: i32,
    /// -1 while the state is not in the view yet.
    pub(super) leader_epoch: i32,
    pub(super) replicas: Vec<BrokerId>,
    pub(super) isr: Vec<BrokerId>,
    /// Replicas that are not live (registered) nodes.
    pub(super) offline: Vec<BrokerId>,
}

impl PartitionView {
    pub(super) fn of(view: &ClusterView, topic: TopicId, index: i32) -> PartitionView {
        let ids = |v: &[i32]| v.iter().map(|i| BrokerId(*i)).collect::<Vec<_>>();
        match view.state(topic, index) {
            Some(s) => PartitionView {
                leader: s.leader,
                leader_epoch: s.leader_epoch,
                replicas: ids(&s.replicas),
                isr: ids(&s.isr),
                offline: s
                    .replicas
                    .iter()
                    .filter(|n| !view.nodes.contains_key(n))
                    .map(|n| BrokerId(*n))
                    .collect(),
            },
            None => PartitionView {
                leader: -1,
                leader_epoch: -1,
                replicas: Vec::new(),
                isr: Vec::new(),
                offline: Vec::new(),
            },
        }
    }
}
