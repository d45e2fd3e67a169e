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

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use tracing::debug;

use super::RequestContext;
use super::encode;
use super::{Pending, Reply};
use crate::config::FlushMode;
use crate::error::Error;
use crate::host::Host;
use crate::metrics::Metrics;
use crate::partition::{LeaderAppend, Partition};
use crate::topic_config;
use crate::txn::{ProducerRef, TxnCoordinator};
use tierlog_metadata::AclOperation;

/// From this version the first Produce of a transaction to a partition adds the partition to
/// the transaction (KIP-890, transaction version 2).
const IMPLICIT_ADD_SINCE: i16 = 12;
/// From this version a producer knows TRANSACTION_ABORTABLE (KIP-890); older ones get
/// INVALID_TXN_STATE for the same failure.
const ABORTABLE_SINCE: i16 = 11;

pub(super) async fn handle(
    ctx: &RequestContext<'_>,
    h: &Host,
    m: &Arc<Metrics>,
    txns: &TxnCoordinator,
    body: ProduceRequest,
) -> Pending {
    // As Kafka: transactional records need WRITE on the transactional id (else the whole
    // request fails), and every topic WRITE on it.
    let txn_denied = has_transactional_records(&body)
        && !body
            .transactional_id
            .as_ref()
            .is_some_and(|id| ctx.transactional_id(AclOperation::Write, id.as_str()));
    let mut unverified = if txn_denied {
        HashMap::new()
    } else {
        unverified_transactional(ctx, h, txns, &body).await
    };
    Metrics::add(&m.produce_requests, 1);
    let acks = body.acks;
    let timeout_ms = body.timeout_ms;
    let body_txn = body.transactional_id.as_ref().map(|s| s.to_string());
    let valid_acks = (-1..=1).contains(&acks);
    let now = ctx.clock.now_ms();
    let lease_valid = h.cluster.membership.lease_valid();
    let mut waits: Vec<Wait> = Vec::new();
    let mut responses = Vec::with_capacity(body.topic_data.len());
    for topic in body.topic_data {
        let name = topic.name.0.to_string();
        let state = if ctx.version() >= 13 {
            h.partitions.topic_by_id(topic.topic_id)
        } else {
            h.partitions.topic(&name)
        };
        let checked_name = state
            .as_ref()
            .map_or(name.as_str(), |s| s.meta.name.as_str());
        let topic_denied = !txn_denied
            && (state.is_some() || ctx.version() < 13)
            && !ctx.topic(AclOperation::Write, checked_name);
        let denied = |name: &str| {
            if txn_denied {
                Some(Error::TransactionalIdAuthorizationFailed(
                    body_txn.clone().unwrap_or_default(),
                ))
            } else if topic_denied {
                Some(Error::TopicAuthorizationFailed(name.to_owned()))
            } else {
                None
            }
        };
        let partition_responses = topic
            .partition_data
            .into_iter()
            .map(|pd| {
                let mut r = PartitionProduceResponse::default().with_index(pd.index);
                // Kafka's error for a partition not open here (see `TopicState::lookup`).
                let (part, missing) = match state.as_ref().map(|t| t.lookup(pd.index)) {
                    Some(Ok(p)) => (Some(p), None),
                    Some(Err(e)) => (None, Some(e)),
                    None => (None, None),
                };
                let refused = unverified.remove(&(name.clone(), pd.index));
                let denied = denied(&name);
                let outcome = match (part, pd.records, valid_acks, refused, denied) {
                    (_, _, false, _, _) => Err(Error::InvalidRequiredAcks(acks)),
                    (_, _, _, _, Some(e)) => Err(e),
                    (None, _, _, _, None) => Err(missing.unwrap_or_else(|| {
                        Error::UnknownTopicOrPartition(format!("{name}-{}", pd.index))
                    })),
                    (Some(_), None, _, _, None) => {
                        Err(Error::Log(tierlog_tiering::Error::InvalidRecord {
                            reason: "produce request without records".into(),
                        }))
                    }
                    (Some(_), Some(_), _, Some(e), None) => Err(e),
                    (Some(_), Some(records), _, None, None) if more_than_one_batch(&records) => {
                        Err(Error::Log(tierlog_tiering::Error::InvalidRecord {
                            reason: "a produce request carries exactly one record batch per \
                                     partition"
                                .into(),
                        }))
                    }
                    (Some(p), Some(records), _, None, None) => {
                        let min_insync = state.as_ref().map_or(1, |t| {
                            topic_config::min_insync_replicas(
                                &t.meta.configs,
                                h.dynamic.min_insync_replicas(),
                            )
                        });
                        append(m, p, records, now, acks, min_insync, lease_valid)
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
                        Metrics::add(&m.produce_errors, 1);
                        debug!(topic = %name, partition = pd.index, error = %e, "produce refused");
                        r.error_code = e.kafka_code();
                        r.error_message = Some(e.message());
                        r.base_offset = -1;
                        r.log_append_time_ms = -1;
                        // Kafka gives the log start with the errors its log raises while
                        // appending (the producer-state checks), -1 with the others.
                        r.log_start_offset = match (&e, part) {
                            (
                                Error::Log(
                                    tierlog_tiering::Error::OutOfOrderSequence { .. }
                                    | tierlog_tiering::Error::InvalidProducerEpoch { .. }
                                    | tierlog_tiering::Error::InvalidTxnState { .. },
                                ),
                                Some(p),
                            ) => p.log_start(),
                            _ => -1,
                        };
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
    // Quotas: the request's bytes count against producer_byte_rate (Kafka records the request
    // size); over it, the response carries the throttle and the connection is muted — with
    // acks=0 too, which gets no response but is still held to its byte rate.
    let throttle = ctx
        .quotas
        .on_produce(ctx.session, &ctx.client_id(), ctx.req.body.len());
    let mut resp = ProduceResponse::default()
        .with_responses(responses)
        .with_throttle_time_ms(throttle);
    if acks == 0 {
        return Box::pin(std::future::ready(Reply::Nothing));
    }
    let to = ctx.reply_to();
    let durable = h.partitions.flush_mode() == FlushMode::Always;
    if waits.is_empty() || (!durable && acks != -1) {
        return Box::pin(std::future::ready(encode(to, &resp)));
    }
    let timeout = Duration::from_millis(u64::try_from(timeout_ms).unwrap_or(0).max(1));
    let m = m.clone();
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
                    Metrics::add(&m.produce_errors, 1);
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

/// Whether any batch of the request is transactional (Kafka's
/// `RequestUtils.hasTransactionalRecords`).
fn has_transactional_records(body: &ProduceRequest) -> bool {
    body.topic_data.iter().any(|t| {
        t.partition_data.iter().any(|pd| {
            pd.records
                .as_ref()
                .and_then(|r| tierlog_tiering::BatchHeader::parse(r).ok())
                .is_some_and(|h| h.is_transactional())
        })
    })
}

/// The partitions of a transactional produce whose first batch of a transaction may not be
/// written, with why. Such a batch would open a transaction no marker ever closes (a "hanging
/// transaction" that blocks read_committed consumers forever), so the partition must be in
/// the producer's transaction at its coordinator: with Produce v12+ (KIP-890 transaction
/// version 2) this request adds it; before, AddPartitionsToTxn must have (KIP-890 part 1's
/// server-side verification). Partitions where the producer already has its transaction open
/// need neither, so the metadata store is touched at most once per request and only at the
/// start of a transaction.
async fn unverified_transactional(
    ctx: &RequestContext<'_>,
    h: &Host,
    txns: &TxnCoordinator,
    body: &ProduceRequest,
) -> HashMap<(String, i32), Error> {
    let mut out = HashMap::new();
    let Some(id) = body.transactional_id.as_ref().filter(|s| !s.is_empty()) else {
        return out;
    };
    let mut wanted = Vec::new();
    for topic in &body.topic_data {
        let name = topic.name.0.as_str();
        let state = if ctx.version() >= 13 {
            h.partitions.topic_by_id(topic.topic_id)
        } else {
            h.partitions.topic(name)
        };
        let Some(state) = state else { continue };
        for pd in &topic.partition_data {
            let Some(header) = pd
                .records
                .as_ref()
                .and_then(|r| tierlog_tiering::BatchHeader::parse(r).ok())
            else {
                continue;
            };
            let part = usize::try_from(pd.index)
                .ok()
                .and_then(|i| state.partitions.get(i));
            if header.is_transactional()
                && part.is_some_and(|p| !p.log.in_transaction(header.producer_id))
            {
                wanted.push((state.meta.name.clone(), pd.index, header));
            }
        }
    }
    if wanted.is_empty() {
        return out;
    }
    if ctx.version() >= IMPLICIT_ADD_SINCE {
        // One transaction per request: the first batch's producer speaks for all.
        let header = wanted[0].2;
        let producer = ProducerRef {
            id: header.producer_id,
            epoch: header.producer_epoch,
        };
        let partitions: Vec<(String, i32)> =
            wanted.iter().map(|(t, p, _)| (t.clone(), *p)).collect();
        if let Err(e) = txns.add(id.as_str(), producer, &partitions, None).await {
            for (t, p) in partitions {
                let e = verification_error(&e, ctx.version(), &t, p);
                out.insert((t, p), e);
            }
        }
        return out;
    }
    let meta = match txns.describe(id.as_str()).await {
        Ok(m) => m,
        Err(e) => {
            for (t, p, _) in wanted {
                let e = verification_error(&e, ctx.version(), &t, p);
                out.insert((t, p), e);
            }
            return out;
        }
    };
    for (topic, index, header) in wanted {
        let verdict = match &meta {
            Some(m)
                if m.producer_id == header.producer_id
                    && m.producer_epoch > header.producer_epoch =>
            {
                Some(Unverified::Fenced)
            }
            Some(m)
                if m.producer_id == header.producer_id
                    && m.producer_epoch == header.producer_epoch
                    && m.state == tierlog_metadata::TxnState::Ongoing
                    && m.partitions.get(&topic).is_some_and(|s| s.contains(&index)) =>
            {
                None
            }
            _ => Some(Unverified::NotAdded),
        };
        if let Some(v) = verdict {
            let e = unverified_error(v, &topic, index);
            out.insert((topic, index), e);
        }
    }
    out
}

/// What a Produce answers for a partition whose verification against the transaction
/// coordinator failed with `e` (Kafka's ReplicaManager and AddPartitionsToTxnManager): a
/// fenced producer is INVALID_PRODUCER_EPOCH; a coordinator that is busy completing the
/// transaction or unreachable is the retriable NOT_ENOUGH_REPLICAS; the coordinator's own
/// answers pass through; anything else is TRANSACTION_ABORTABLE (Produce v11+) or
/// INVALID_TXN_STATE.
fn verification_error(e: &Error, version: i16, topic: &str, index: i32) -> Error {
    let what = format!("{topic}-{index}: {e}");
    match e {
        Error::ProducerFenced(_) | Error::InvalidProducerEpoch(_) => {
            unverified_error(Unverified::Fenced, topic, index)
        }
        Error::ConcurrentTransactions(_) | Error::RequestTimedOut(_) => {
            Error::VerificationUnavailable(what)
        }
        Error::Metadata(m)
            if matches!(
                m.kind(),
                tierlog_metadata::ErrorKind::Unavailable | tierlog_metadata::ErrorKind::Conflict
            ) =>
        {
            Error::VerificationUnavailable(what)
        }
        Error::InvalidProducerIdMapping(_) => Error::InvalidProducerIdMapping(what),
        Error::InvalidTxnState(_) => Error::InvalidTxnState(what),
        _ if version >= ABORTABLE_SINCE => Error::TransactionAbortable(what),
        _ => Error::InvalidTxnState(what),
    }
}

/// Why a transactional batch failed verification.
#[derive(Debug, Clone, Copy)]
enum Unverified {
    /// A newer epoch of the producer exists (a zombie).
    Fenced,
    /// The partition is not in the producer's ongoing transaction.
    NotAdded,
}

fn unverified_error(why: Unverified, topic: &str, index: i32) -> Error {
    match why {
        Unverified::Fenced => Error::InvalidProducerEpoch(format!(
            "{topic}-{index}: the producer's epoch is fenced by a newer one"
        )),
        Unverified::NotAdded => Error::InvalidTxnState(format!(
            "{topic}-{index}: not added to the producer's transaction (AddPartitionsToTxn)"
        )),
    }
}

/// Whether `records` holds bytes past its first batch: Kafka (Produce v3+) takes exactly one
/// record batch per partition and refuses more with INVALID_RECORD. A first batch that is
/// itself malformed is left to the log's validation.
fn more_than_one_batch(records: &[u8]) -> bool {
    // baseOffset (8 bytes), then batchLength: the bytes after the length field.
    let Some(len) = records.get(8..12) else {
        return false;
    };
    let len = i32::from_be_bytes([len[0], len[1], len[2], len[3]]);
    usize::try_from(len).is_ok_and(|len| records.len() > 12 + len)
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
    m: &Metrics,
    p: &Partition,
    records: Bytes,
    now: i64,
    acks: i16,
    min_insync: i32,
    lease_valid: bool,
) -> Result<LeaderAppend, Error> {
    let len = records.len() as u64;
    let r = p.append_leader(records, now, acks, min_insync, lease_valid)?;
    Metrics::add(&m.produced_bytes, len);
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::{Error, more_than_one_batch, verification_error};
    use kafka_protocol::ResponseError as R;

    #[test]
    fn verification_failures_get_kafkas_produce_errors() {
        let code = |e: Error, v: i16| verification_error(&e, v, "t", 0).kafka_code();
        let s = || "x".to_owned();
        // A fenced producer: INVALID_PRODUCER_EPOCH, as Kafka converts PRODUCER_FENCED.
        assert_eq!(
            code(Error::ProducerFenced(s()), 12),
            R::InvalidProducerEpoch.code()
        );
        // A transaction being completed: retriable.
        assert_eq!(
            code(Error::ConcurrentTransactions(s()), 12),
            R::NotEnoughReplicas.code()
        );
        let unavailable = || Error::Metadata(tierlog_metadata::Error::unavailable("etcd down"));
        assert_eq!(code(unavailable(), 9), R::NotEnoughReplicas.code());
        // The coordinator's own answers pass through.
        assert_eq!(
            code(Error::InvalidProducerIdMapping(s()), 12),
            R::InvalidProducerIdMapping.code()
        );
        assert_eq!(
            code(Error::InvalidTxnState(s()), 12),
            R::InvalidTxnState.code()
        );
        // Anything else: abortable for clients that know the error (Produce v11+).
        assert_eq!(
            code(Error::Internal(s()), 11),
            R::TransactionAbortable.code()
        );
        assert_eq!(code(Error::Internal(s()), 10), R::InvalidTxnState.code());
    }

    /// A frame with the batch header's length field set and `len` bytes after it.
    fn batch(len: i32) -> Vec<u8> {
        let mut b = vec![0u8; 8];
        b.extend(len.to_be_bytes());
        b.extend(vec![0u8; usize::try_from(len).unwrap_or(0)]);
        b
    }

    #[test]
    fn exactly_one_batch_per_partition() {
        let one = batch(49);
        assert!(!more_than_one_batch(&one));
        let two = [one.clone(), batch(49)].concat();
        assert!(more_than_one_batch(&two));
        // Malformed first batches are the validator's business.
        assert!(!more_than_one_batch(&one[..10]));
        assert!(!more_than_one_batch(&batch(-1)));
        assert!(!more_than_one_batch(&one[..30]));
    }
}
