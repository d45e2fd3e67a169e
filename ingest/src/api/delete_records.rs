//! DeleteRecords: moves a partition's log start forward across both tiers. Offset -1 means
//! the high watermark. The new start is stored in the metadata store (so it survives restarts
//! and a replacement node honours it) and applied to the hot tier at once; tiered segments
//! entirely below it are removed by the next remote-retention pass.

use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};
use tracing::info;

use crate::error::{Error, Result};
use crate::node::Broker;
use crate::partition::Partition;
use crate::protocol::Request;

pub(super) async fn handle(
    b: &Broker,
    _req: &Request,
    body: DeleteRecordsRequest,
) -> DeleteRecordsResponse {
    let mut topics = Vec::with_capacity(body.topics.len());
    for t in body.topics {
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for p in &t.partitions {
            let mut r =
                DeleteRecordsPartitionResult::default().with_partition_index(p.partition_index);
            let outcome = match b.partitions.partition(t.name.0.as_str(), p.partition_index) {
                Some(part) => delete(&part, p.offset).await,
                None => Err(Error::UnknownTopicOrPartition(format!(
                    "{}-{}",
                    t.name.0.as_str(),
                    p.partition_index
                ))),
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

async fn delete(p: &Partition, offset: i64) -> Result<i64> {
    let end = p.log.log_end_offset();
    let target = if offset == -1 { end } else { offset };
    if target < 0 || target > end {
        return Err(Error::Log(tierlog_tiering::Error::OffsetOutOfRange {
            offset: target,
            start: p.log_start(),
            end,
        }));
    }
    let low = p.delete_records(target).await?;
    info!(partition = %p.tp, log_start = low, "records deleted");
    Ok(low)
}
