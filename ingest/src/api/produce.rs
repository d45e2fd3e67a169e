//! Produce: appends each partition's record batches as received, in request order.
//!
//! The append happens while the request is dispatched (so pipelined produces land in the order
//! they were sent); waiting for durability under `flush_mode = always` is deferred to the
//! response, so pipelined produces share fsyncs. acks=0 gets no response at all; on a single
//! node acks=1 and acks=all are the same (the high watermark is the log end).

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use tracing::debug;

use super::encode;
use crate::config::FlushMode;
use crate::error::Error;
use crate::http::Metrics;
use crate::node::{Broker, now_ms};
use crate::partition::Partition;
use crate::protocol::{ReplyTo, Request};
use crate::server::{Pending, Reply};

pub(super) fn handle(b: &Arc<Broker>, req: &Request, body: ProduceRequest) -> Pending {
    Metrics::add(&b.metrics.produce_requests, 1);
    let acks = body.acks;
    let valid_acks = (-1..=1).contains(&acks);
    let now = now_ms();
    let mut waits: Vec<(Arc<Partition>, i64)> = Vec::new();
    let mut responses = Vec::with_capacity(body.topic_data.len());
    for topic in body.topic_data {
        let name = topic.name.0.to_string();
        let state = if req.version >= 13 {
            b.partitions.topic_by_id(topic.topic_id)
        } else {
            b.partitions.topic(&name)
        };
        let partition_responses = topic
            .partition_data
            .into_iter()
            .map(|pd| {
                let mut r = PartitionProduceResponse::default().with_index(pd.index);
                let part = state.as_ref().and_then(|t| {
                    usize::try_from(pd.index)
                        .ok()
                        .and_then(|i| t.partitions.get(i))
                });
                let outcome = match (part, pd.records, valid_acks) {
                    (_, _, false) => Err(Error::InvalidRequiredAcks(acks)),
                    (None, _, _) => Err(Error::UnknownTopicOrPartition(format!(
                        "{name}-{}",
                        pd.index
                    ))),
                    (Some(_), None, _) => Err(Error::Log(tierlog_tiering::Error::InvalidRecord {
                        reason: "produce request without records".into(),
                    })),
                    (Some(p), Some(records), _) => {
                        append(b, p, records, now).map(|res| (p.clone(), res))
                    }
                };
                match outcome {
                    Ok((p, res)) => {
                        r.base_offset = res.base_offset;
                        r.log_append_time_ms = res.log_append_time_ms;
                        r.log_start_offset = res.log_start_offset;
                        waits.push((p, res.last_offset + 1));
                    }
                    Err(e) => {
                        Metrics::add(&b.metrics.produce_errors, 1);
                        debug!(topic = %name, partition = pd.index, error = %e, "produce refused");
                        r.error_code = e.kafka_code();
                        r.error_message = Some(e.message());
                        r.base_offset = -1;
                        r.log_append_time_ms = -1;
                        r.log_start_offset = -1;
                    }
                }
                r
            })
            .collect();
        responses.push(
            TopicProduceResponse::default()
                .with_name(topic.name)
                .with_topic_id(topic.topic_id)
                .with_partition_responses(partition_responses),
        );
    }
    let resp = ProduceResponse::default().with_responses(responses);
    if acks == 0 {
        return Box::pin(std::future::ready(Reply::Nothing));
    }
    let to = ReplyTo::of(req);
    if b.partitions.flush_mode() == FlushMode::Always && !waits.is_empty() {
        Box::pin(async move {
            for (p, end) in &waits {
                p.wait_durable(*end).await;
            }
            encode(to, &resp)
        })
    } else {
        Box::pin(std::future::ready(encode(to, &resp)))
    }
}

fn append(
    b: &Broker,
    p: &Partition,
    records: Bytes,
    now: i64,
) -> Result<tierlog_tiering::AppendResult, Error> {
    let len = records.len() as u64;
    let r = p.append(records, now)?;
    Metrics::add(&b.metrics.produced_bytes, len);
    Ok(r)
}
