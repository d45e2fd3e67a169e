//! DeleteRecords: moves a partition's log start forward across both tiers, on its leader.
//! Offset -1 means the high watermark; beyond it is OFFSET_OUT_OF_RANGE. The new start is
//! stored in the metadata store (so it survives restarts and a replacement node honours it)
//! and applied to the hot tier at once; tiered segments entirely below it are removed by the
//! next remote-retention pass. The answer waits, as Kafka's does, until every in-sync replica
//! has taken the new start (the low watermark), so a later leader never serves deleted records.

use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};
use tracing::info;

use super::RequestContext;
use crate::error::{Error, Result};
use crate::host::Host;
use crate::partition::Partition;
use tierlog_metadata::AclOperation;

pub(super) async fn handle(
    ctx: &RequestContext<'_>,
    h: &Host,
    body: DeleteRecordsRequest,
) -> DeleteRecordsResponse {
    let timeout =
        std::time::Duration::from_millis(u64::try_from(body.timeout_ms).unwrap_or(0).max(1));
    let mut topics = Vec::with_capacity(body.topics.len());
    for t in body.topics {
        let mut partitions = Vec::with_capacity(t.partitions.len());
        let authorized = ctx.topic(AclOperation::Delete, t.name.0.as_str());
        for p in &t.partitions {
            let mut r =
                DeleteRecordsPartitionResult::default().with_partition_index(p.partition_index);
            let found = h.partitions.lookup(t.name.0.as_str(), p.partition_index);
            let outcome = match found {
                _ if !authorized => Err(Error::TopicAuthorizationFailed(t.name.0.to_string())),
                Ok(part) => delete(&part, p.offset, timeout).await,
                Err(e) => Err(e),
            };
            match outcome {
                Ok(low) => r.low_watermark = low,
                Err(e) => {
                    r.error_code = e.kafka_code();
                    r.low_watermark = -1;
                }
            }
            partitions.push(r);
        }
        topics.push(
            DeleteRecordsTopicResult::default()
                .with_name(t.name)
                .with_partitions(partitions),
        );
    }
    DeleteRecordsResponse::default().with_topics(topics)
}

async fn delete(p: &Partition, offset: i64, timeout: std::time::Duration) -> Result<i64> {
    p.check_leader(-1)?;
    let end = p.high_watermark();
    let target = if offset == -1 { end } else { offset };
    if target < 0 || target > end {
        return Err(Error::Log(tierlog_tiering::Error::OffsetOutOfRange {
            offset: target,
            start: p.log_start(),
            end,
        }));
    }
    let start = p.delete_records(target).await?;
    info!(partition = %p.tp, log_start = start, "records deleted");
    p.wait_low_watermark(start, timeout).await
}
