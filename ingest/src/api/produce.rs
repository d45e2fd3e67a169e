//! Produce: appends each partition's record batches as received, in request order, on the
//! partition's leader only (others answer NOT_LEADER_OR_FOLLOWER, and so does a leader whose
//! lease may have lapsed).
//!
//! The append happens while the request is dispatched (so pipelined produces land in the order
//! they were sent); the waits are deferred to the response, so pipelined produces share them:
//! durability under `flush_mode = always`, and for acks=all the high watermark passing the
//! batch (every in-sync replica has it), bounded by the request's timeout. acks=all with fewer
//! in-sync replicas than `min.insync.replicas` is refused before appending. acks=0 gets no
//! response at all.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use tracing::debug;

use super::encode;
use crate::config::FlushMode;
use crate::error::Error;
use crate::http::Metrics;
use crate::node::{Broker, now_ms};
use crate::partition::{LeaderAppend, Partition};
use crate::protocol::{ReplyTo, Request};
use crate::server::{Pending, Reply};
use crate::topic_config;

pub(super) fn handle(b: &Arc<Broker>, req: &Request, body: ProduceRequest) -> Pending {
    Metrics::add(&b.metrics.produce_requests, 1);
    let acks = body.acks;
    let timeout_ms = body.timeout_ms;
    let valid_acks = (-1..=1).contains(&acks);
    let now = now_ms();
    let lease_valid = b.cluster.membership.lease_valid();
    let mut waits: Vec<Wait> = Vec::new();
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
                        let min_insync = state.as_ref().map_or(1, |t| {
                            topic_config::min_insync_replicas(
                                &t.meta.configs,
                                b.config.min_insync_replicas,
                            )
                        });
                        append(b, p, records, now, acks, min_insync, lease_valid)
                            .map(|res| (p.clone(), res, min_insync))
                    }
                };
                match outcome {
                    Ok((p, res, min_insync)) => {
                        r.base_offset = res.result.base_offset;
                        r.log_append_time_ms = res.result.log_append_time_ms;
                        r.log_start_offset = res.result.log_start_offset;
                        waits.push(Wait {
                            topic: responses.len(),
                            index: r.index,
                            partition: p,
                            end: res.result.last_offset + 1,
                            role_gen: res.role_gen,
                            min_insync,
                        });
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
    let mut resp = ProduceResponse::default().with_responses(responses);
    if acks == 0 {
        return Box::pin(std::future::ready(Reply::Nothing));
    }
    let to = ReplyTo::of(req);
    let durable = b.partitions.flush_mode() == FlushMode::Always;
    if waits.is_empty() || (!durable && acks != -1) {
        return Box::pin(std::future::ready(encode(to, &resp)));
    }
    let timeout = Duration::from_millis(u64::try_from(timeout_ms).unwrap_or(0).max(1));
    let b = b.clone();
    Box::pin(async move {
        for w in &waits {
            if durable {
                w.partition.wait_durable(w.end).await;
            }
            if acks == -1 {
                let outcome = match w.partition.wait_committed(w.end, w.role_gen, timeout).await {
                    Ok(()) if (w.partition.isr_len() as i32) < w.min_insync => {
                        Err(Error::NotEnoughReplicasAfterAppend {
                            isr: w.partition.isr_len(),
                            min: w.min_insync,
                        })
                    }
                    other => other,
                };
                if let Err(e) = outcome {
                    Metrics::add(&b.metrics.produce_errors, 1);
                    debug!(partition = %w.partition.tp, error = %e, "acks=all produce not committed");
                    if let Some(r) = resp.responses.get_mut(w.topic).and_then(|t| {
                        t.partition_responses
                            .iter_mut()
                            .find(|r| r.index == w.index)
                    }) {
                        r.error_code = e.kafka_code();
                        r.error_message = Some(e.message());
                    }
                }
            }
        }
        encode(to, &resp)
    })
}

/// A produce waiting on one partition before its response.
struct Wait {
    /// Index of the topic in the response.
    topic: usize,
    index: i32,
    partition: Arc<Partition>,
    /// One past the last offset appended.
    end: i64,
    role_gen: u64,
    min_insync: i32,
}

fn append(
    b: &Broker,
    p: &Partition,
    records: Bytes,
    now: i64,
    acks: i16,
    min_insync: i32,
    lease_valid: bool,
) -> Result<LeaderAppend, Error> {
    let len = records.len() as u64;
    let r = p.append_leader(records, now, acks, min_insync, lease_valid)?;
    Metrics::add(&b.metrics.produced_bytes, len);
    Ok(r)
}
