//! DeleteTopics, by name (v1–5) or by id (v6).

use std::sync::Arc;

use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse, TopicName};
use tracing::info;

use super::RequestContext;
use crate::error::{Error, Result};
use crate::host::Host;
use crate::protocol::str_bytes;
use tierlog_metadata::AclOperation;

pub(super) async fn handle(
    ctx: &RequestContext<'_>,
    h: &Arc<Host>,
    body: DeleteTopicsRequest,
) -> DeleteTopicsResponse {
    let targets: Vec<(Option<String>, uuid::Uuid)> = if ctx.version() >= 6 {
        body.topics
            .iter()
            .map(|t| (t.name.as_ref().map(|n| n.0.to_string()), t.topic_id))
            .collect()
    } else {
        body.topic_names
            .iter()
            .map(|n| (Some(n.0.to_string()), uuid::Uuid::nil()))
            .collect()
    };
    let mut responses = Vec::with_capacity(targets.len());
    for (name, id) in targets {
        let mut r = DeletableTopicResult::default().with_topic_id(id);
        // The name to check DELETE on: given, or the topic the id names (an unknown id is
        // reported as such by `delete`).
        let resolved = name
            .clone()
            .or_else(|| h.partitions.topic_by_id(id).map(|t| t.meta.name.clone()));
        let outcome = match &resolved {
            Some(n) if !ctx.topic(AclOperation::Delete, n) => {
                Err(Error::TopicAuthorizationFailed(n.clone()))
            }
            _ => delete(h, name.as_deref(), id).await,
        };
        match outcome {
            Ok((name, id)) => {
                r.name = Some(TopicName(str_bytes(&name)));
                r.topic_id = id;
            }
            Err(e) => {
                r.name = name.map(|n| TopicName(str_bytes(&n)));
                r.error_code = e.kafka_code();
                r.error_message = Some(e.message());
            }
        }
        responses.push(r);
    }
    DeleteTopicsResponse::default().with_responses(responses)
}

async fn delete(h: &Arc<Host>, name: Option<&str>, id: uuid::Uuid) -> Result<(String, uuid::Uuid)> {
    let _admin = h.admin.lock().await;
    let name = match name {
        Some(n) => n.to_owned(),
        None => h
            .partitions
            .topic_by_id(id)
            .map(|t| t.meta.name.clone())
            .ok_or(Error::UnknownTopicId(id))?,
    };
    let meta = h
        .topics
        .delete(&name)
        .await?
        .ok_or_else(|| Error::UnknownTopicOrPartition(name.clone()))?;
    h.fetchers.unfollow_topic(meta.id);
    h.partitions.remove(&meta).await?;
    // Other nodes remove theirs when they see the topic gone; the controller would also
    // remove states left behind by a crash here.
    h.cluster.states.delete_topic(meta.id).await?;
    info!(topic = %meta.name, id = %meta.id, "topic deleted");
    Ok((meta.name, meta.id))
}
