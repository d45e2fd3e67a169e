//! ListOffsets: earliest (-2), latest (-1), max timestamp (-3), earliest local (-4), and the
//! first offset at or after a timestamp, through the time index.

use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};

use super::RequestContext;
use crate::error::{Error, Result};
use crate::host::Host;
use crate::partition::Partition;
use tierlog_metadata::AclOperation;

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL: i64 = -4;

pub(super) async fn handle(
    ctx: &RequestContext<'_>,
    h: &Host,
    body: ListOffsetsRequest,
) -> ListOffsetsResponse {
    let read_committed = body.isolation_level == 1;
    let mut topics = Vec::with_capacity(body.topics.len());
    for t in body.topics {
        let mut partitions = Vec::with_capacity(t.partitions.len());
        let authorized = ctx.topic(AclOperation::Describe, t.name.0.as_str());
        for p in &t.partitions {
            let mut r =
                ListOffsetsPartitionResponse::default().with_partition_index(p.partition_index);
            let found = if authorized {
                h.partitions.lookup(t.name.0.as_str(), p.partition_index)
            } else {
                Err(Error::TopicAuthorizationFailed(t.name.0.to_string()))
            };
            let outcome = match found {
                Ok(part) => {
                    lookup(&part, p.current_leader_epoch, p.timestamp, read_committed).await
                }
                Err(e) => Err(e),
            };
            match outcome {
                Ok((offset, timestamp, epoch)) => {
                    r.offset = offset;
                    r.timestamp = timestamp;
                    // No offset found (a timestamp past every record, max timestamp of an
                    // empty log): no epoch either, as in Kafka.
                    if ctx.version() >= 4 && offset >= 0 {
                        r.leader_epoch = epoch;
                    }
                }
                Err(e) => {
                    r.error_code = e.kafka_code();
                    r.offset = -1;
                    r.timestamp = -1;
                }
            }
            partitions.push(r);
        }
        topics.push(
            ListOffsetsTopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions),
        );
    }
    ListOffsetsResponse::default().with_topics(topics)
}

/// (offset, timestamp, leader epoch) for one partition, on its leader; offsets stop at the
/// high watermark (what consumers can read), or at the last stable offset for
/// `read_committed`.
async fn lookup(
    p: &Partition,
    current_epoch: i32,
    timestamp: i64,
    read_committed: bool,
) -> Result<(i64, i64, i32)> {
    let epoch = p.check_leader(current_epoch)?;
    let log = &p.log;
    let hw = if read_committed {
        p.last_stable_offset()
    } else {
        p.high_watermark()
    };
    let visible = |(o, t): (i64, i64)| if o >= hw { (-1, -1) } else { (o, t) };
    let (offset, ts) = match timestamp {
        LATEST => (hw, -1),
        EARLIEST => (p.log_start(), -1),
        EARLIEST_LOCAL => (log.log_start_offset().max(p.log_start()), -1),
        MAX_TIMESTAMP => match log.max_timestamp() {
            Some(t) => visible((t.offset, t.timestamp)),
            None => match p.remote.segments().iter().max_by_key(|s| s.max_timestamp) {
                Some(s) => (s.base_offset, s.max_timestamp),
                None => (-1, -1),
            },
        },
        ts if ts >= 0 => match p.offset_for_timestamp(ts).await? {
            Some(t) => visible((t.offset, t.timestamp)),
            None => (-1, -1),
        },
        other => {
            return Err(Error::InvalidRequest(format!(
                "unknown special timestamp {other}"
            )));
        }
    };
    Ok((offset, ts, epoch))
}
