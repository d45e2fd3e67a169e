//! CreatePartitions: grows a topic's partition count.

use std::sync::Arc;

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};
use tracing::info;

use super::RequestContext;
use crate::error::{Error, Result};
use crate::host::Host;
use tierlog_metadata::AclOperation;

pub(super) async fn handle(
    ctx: &RequestContext<'_>,
    h: &Arc<Host>,
    body: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let mut results = Vec::with_capacity(body.topics.len());
    for t in body.topics {
        let mut r = CreatePartitionsTopicResult::default().with_name(t.name.clone());
        // Null means "place them"; a list (even an empty one) must assign every new
        // partition, as Kafka checks (INVALID_REPLICA_ASSIGNMENT).
        let assignments: Option<Vec<Vec<i32>>> = t.assignments.as_ref().map(|a| {
            a.iter()
                .map(|x| x.broker_ids.iter().map(|id| id.0).collect())
                .collect()
        });
        let authorized = ctx.topic(AclOperation::Alter, t.name.0.as_str());
        let outcome = match assignments
            .as_deref()
            .map(|a| super::create_topics::check_assignments(h, a))
        {
            _ if !authorized => Err(Error::TopicAuthorizationFailed(t.name.0.to_string())),
            Some(Err(e)) => Err(e),
            _ => {
                grow(
                    h,
                    t.name.0.as_str(),
                    t.count,
                    assignments,
                    body.validate_only,
                )
                .await
            }
        };
        if let Err(e) = outcome {
            r.error_code = e.kafka_code();
            r.error_message = Some(e.message());
        }
        results.push(r);
    }
    CreatePartitionsResponse::default().with_results(results)
}

async fn grow(
    h: &Arc<Host>,
    name: &str,
    count: i32,
    assignments: Option<Vec<Vec<i32>>>,
    validate_only: bool,
) -> Result<()> {
    let admin = h.admin.lock().await;
    let current = h
        .topics
        .get(name)
        .await?
        .ok_or_else(|| Error::UnknownTopicOrPartition(name.to_owned()))?;
    if count <= current.partitions {
        return Err(Error::InvalidPartitions(format!(
            "topic `{name}` has {} partitions; the new count {count} must be larger",
            current.partitions
        )));
    }
    let added = count - current.partitions;
    super::create_topics::check_create_count(h, added)?;
    if assignments
        .as_ref()
        .is_some_and(|a| a.len() != added as usize)
    {
        return Err(Error::InvalidReplicaAssignment(format!(
            "{} assignments for {added} new partitions",
            assignments.as_ref().map_or(0, Vec::len)
        )));
    }
    if validate_only {
        return Ok(());
    }
    let meta = h
        .topics
        .update(name, |m| {
            m.partitions = m.partitions.max(count);
            Ok(())
        })
        .await?;
    let made = async {
        let first = current.partitions;
        let states = super::create_topics::create_states(h, &meta, first, assignments).await?;
        super::create_topics::install_created(h, &meta, first, &states).await
    }
    .await;
    if let Err(e) = made {
        // Undo it all: the topic keeps its old count and serves as before.
        tracing::warn!(topic = %name, error = %e, "adding partitions failed part-way; rolling back");
        roll_back(h, &meta, current.partitions).await;
        return Err(e);
    }
    drop(admin);
    super::create_topics::take_roles(h).await;
    info!(topic = %name, partitions = count, "partitions added");
    Ok(())
}

/// Undoes a CreatePartitions that failed part-way: the topic's count goes back to `old`, the
/// new partitions' states and directories are removed. Failures are logged.
async fn roll_back(h: &Host, meta: &tierlog_metadata::TopicMeta, old: i32) {
    if let Err(e) = h
        .topics
        .update(&meta.name, |m| {
            m.partitions = old;
            Ok(())
        })
        .await
    {
        tracing::warn!(topic = %meta.name, error = %e, "rollback: restoring the partition count failed");
    }
    if let Err(e) = h
        .cluster
        .states
        .delete_partitions(meta.id, old, meta.partitions)
        .await
    {
        tracing::warn!(topic = %meta.name, error = %e, "rollback: deleting the new partition states failed");
    }
    h.partitions
        .remove_partition_dirs(meta, old..meta.partitions);
}
