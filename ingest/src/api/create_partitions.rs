//! CreatePartitions: grows a topic's partition count.

use std::sync::Arc;

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};
use tracing::info;

use crate::error::{Error, Result};
use crate::node::Broker;
use crate::protocol::Request;

pub(super) async fn handle(
    b: &Arc<Broker>,
    _req: &Request,
    body: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let mut results = Vec::with_capacity(body.topics.len());
    for t in body.topics {
        let mut r = CreatePartitionsTopicResult::default().with_name(t.name.clone());
        let bad_assignment = t.assignments.as_ref().is_some_and(|a| {
            a.iter()
                .any(|x| x.broker_ids.iter().any(|id| id.0 != b.node_id))
        });
        let outcome = if bad_assignment {
            Err(Error::InvalidReplicaAssignment(format!(
                "assignments may name only node {}",
                b.node_id
            )))
        } else {
            grow(b, t.name.0.as_str(), t.count, body.validate_only).await
        };
        if let Err(e) = outcome {
            r.error_code = e.kafka_code();
            r.error_message = Some(e.message());
        }
        results.push(r);
    }
    CreatePartitionsResponse::default().with_results(results)
}

async fn grow(b: &Arc<Broker>, name: &str, count: i32, validate_only: bool) -> Result<()> {
    let _admin = b.admin.lock().await;
    let current = b
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
    if validate_only {
        return Ok(());
    }
    let meta = b
        .topics
        .update(name, |m| {
            m.partitions = m.partitions.max(count);
            Ok(())
        })
        .await?;
    b.partitions.install(meta).await?;
    info!(topic = %name, partitions = count, "partitions added");
    Ok(())
}
