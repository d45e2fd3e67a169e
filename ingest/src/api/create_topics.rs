//! CreateTopics, and the topic creation that Metadata's auto-creation shares.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use tracing::info;

use tierlog_metadata::TopicMeta;

use super::str_bytes;
use crate::error::{Error, Result};
use crate::node::{Broker, now_ms};
use crate::protocol::Request;
use crate::topic_config;

/// What to create.
pub(super) struct NewTopic {
    pub(super) name: String,
    /// -1 = the node's default.
    pub(super) partitions: i32,
    /// -1 = the default (1 on a single node).
    pub(super) replication_factor: i16,
    pub(super) configs: BTreeMap<String, String>,
}

/// Validates and (unless `validate_only`) creates a topic: metadata store first, then the
/// partition logs. Returns the topic as created.
pub(super) async fn create(b: &Arc<Broker>, t: NewTopic, validate_only: bool) -> Result<TopicMeta> {
    tierlog_metadata::validate_topic_name(&t.name)
        .map_err(|e| Error::InvalidTopic(e.to_string()))?;
    let partitions = match t.partitions {
        -1 => b.config.default_partitions,
        n if n >= 1 => n,
        n => {
            return Err(Error::InvalidPartitions(format!(
                "partition count must be at least 1, got {n}"
            )));
        }
    };
    let replication_factor = match t.replication_factor {
        -1 | 1 => 1,
        n => {
            return Err(Error::InvalidReplicationFactor(format!(
                "replication factor {n} is larger than the 1 available node"
            )));
        }
    };
    let configs =
        topic_config::validate_all(t.configs.iter().map(|(k, v)| (k.as_str(), v.as_str())))?;
    let meta = TopicMeta {
        name: t.name,
        id: uuid::Uuid::new_v4(),
        partitions,
        replication_factor,
        configs,
        created_ms: now_ms(),
    };
    let _admin = b.admin.lock().await;
    if b.topics.get(&meta.name).await?.is_some() {
        return Err(Error::TopicAlreadyExists(meta.name));
    }
    if validate_only {
        return Ok(meta);
    }
    b.topics.create(&meta).await.map_err(|e| match e.kind() {
        tierlog_metadata::ErrorKind::AlreadyExists => Error::TopicAlreadyExists(meta.name.clone()),
        _ => Error::Metadata(e),
    })?;
    b.partitions.install(meta.clone()).await?;
    info!(topic = %meta.name, id = %meta.id, partitions, "topic created");
    Ok(meta)
}

pub(super) async fn handle(
    b: &Arc<Broker>,
    req: &Request,
    body: CreateTopicsRequest,
) -> CreateTopicsResponse {
    let mut results = Vec::with_capacity(body.topics.len());
    for t in body.topics {
        let name = t.name.0.to_string();
        let mut result = CreatableTopicResult::default().with_name(t.name.clone());
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
        if !t.assignments.is_empty()
            && t.assignments
                .iter()
                .any(|a| a.broker_ids.iter().any(|id| id.0 != b.node_id))
        {
            bad = Some(Error::InvalidReplicaAssignment(format!(
                "assignments may name only node {}",
                b.node_id
            )));
        }
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
                    replication_factor: t.replication_factor,
                    configs,
                };
                create(b, spec, body.validate_only).await
            }
        };
        match outcome {
            Ok(meta) => {
                result.topic_id = meta.id;
                result.num_partitions = meta.partitions;
                result.replication_factor = meta.replication_factor;
                if req.version >= 5 {
                    result.configs = Some(
                        topic_config::TOPIC_CONFIGS
                            .iter()
                            .map(|d| {
                                let overridden = meta.configs.contains_key(d.name);
                                CreatableTopicConfigs::default()
                                    .with_name(str_bytes(d.name))
                                    .with_value(Some(str_bytes(topic_config::effective(
                                        &meta.configs,
                                        d,
                                    ))))
                                    .with_config_source(if overridden { 1 } else { 5 })
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
