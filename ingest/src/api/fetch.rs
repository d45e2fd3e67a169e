//! Fetch: reads whole record batches from each requested partition and long-polls until
//! `min_bytes` are available or `max_wait_ms` passes.
//!
//! Limits follow Kafka (KIP-74): each partition returns at most `partition_max_bytes` and the
//! response at most `max_bytes`, except that the first partition with data always returns at
//! least one whole batch so a consumer can never get stuck behind a large batch. Topics are
//! named by name before v13 and by id from v13. Fetch sessions are not kept: the response's
//! session id is 0, which tells clients to send full fetch requests.
//!
//! Only the leader serves a partition. Consumers see records below the high watermark and
//! long-poll on it; a follower (a fetch carrying its replica id) gets everything up to the
//! log end, long-polls on the log end, and its fetch offset is its progress: the leader
//! records it, advances the high watermark, and proposes it for the ISR once caught up.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::{FetchRequest, FetchResponse};
use tokio::time::Instant;

use super::Pending;
use super::RequestContext;
use super::encode;
use crate::error::Error;
use crate::host::Host;
use crate::metrics::Metrics;
use crate::partition::Partition;
use tierlog_metadata::AclOperation;
use tierlog_metadata::{NodeId, SharedClock};

/// One partition of the request, resolved.
struct Wanted {
    topic: usize,
    index: i32,
    offset: i64,
    max_bytes: usize,
    current_epoch: i32,
    /// The fetcher's log start (followers send theirs).
    log_start: i64,
    partition: Option<Arc<Partition>>,
    /// The fetcher may not read the topic (TOPIC_AUTHORIZATION_FAILED).
    denied: bool,
}

/// What reading for one fetch needs: the partitions, counters, the clock, and the follower
/// asking (None for a consumer).
struct Reader {
    host: Arc<Host>,
    metrics: Arc<Metrics>,
    clock: SharedClock,
    replica: Option<NodeId>,
}

/// The follower a fetch comes from, if it is a replica fetch.
fn replica_of(version: i16, body: &FetchRequest) -> Option<NodeId> {
    let id = if version >= 15 {
        body.replica_state.replica_id.0
    } else {
        body.replica_id.0
    };
    (id >= 0).then_some(id)
}

pub(super) fn handle(
    ctx: &RequestContext<'_>,
    h: Arc<Host>,
    m: Arc<Metrics>,
    body: FetchRequest,
) -> Pending {
    Metrics::add(&m.fetch_requests, 1);
    let to = ctx.reply_to();
    let by_id = ctx.version() >= 13;
    let replica = replica_of(ctx.version(), &body);
    // As Kafka: a follower needs CLUSTER_ACTION on the cluster for every partition, a
    // consumer READ on each topic.
    let follower_allowed = replica.is_some() && ctx.cluster(AclOperation::ClusterAction);
    let mut denied_topics: Vec<bool> = Vec::with_capacity(body.topics.len());
    for t in &body.topics {
        let name = if by_id {
            h.partitions
                .topic_by_id(t.topic_id)
                .map(|s| s.meta.name.clone())
        } else {
            Some(t.topic.0.to_string())
        };
        denied_topics.push(match (replica, name) {
            (Some(_), _) => !follower_allowed,
            (None, Some(n)) => !ctx.topic(AclOperation::Read, &n),
            // An unknown topic id is reported as such.
            (None, None) => false,
        });
    }
    // Client quotas apply to consumers only (a follower's fetch is replication): the fetch's
    // size is capped by what the byte rate allows in one quota window, and the response is
    // checked against it below.
    let quota = replica
        .is_none()
        .then(|| (ctx.quotas.clone(), ctx.session.clone(), ctx.client_id()));
    let rd = Reader {
        host: h.clone(),
        metrics: m.clone(),
        clock: ctx.clock.clone(),
        replica,
    };
    Box::pin(async move {
        let deadline = Instant::now() + Duration::from_millis(body.max_wait_ms.max(0) as u64);
        let mut topics = Vec::with_capacity(body.topics.len());
        let mut wanted = Vec::new();
        for (ti, t) in body.topics.iter().enumerate() {
            let state = if by_id {
                h.partitions.topic_by_id(t.topic_id)
            } else {
                h.partitions.topic(t.topic.0.as_str())
            };
            let mut tr = FetchableTopicResponse::default().with_topic_id(t.topic_id);
            tr.topic = match (&state, by_id) {
                (Some(s), true) => {
                    kafka_protocol::messages::TopicName(crate::protocol::str_bytes(&s.meta.name))
                }
                _ => t.topic.clone(),
            };
            topics.push(tr);
            for p in &t.partitions {
                wanted.push(Wanted {
                    topic: ti,
                    index: p.partition,
                    offset: p.fetch_offset,
                    max_bytes: usize::try_from(p.partition_max_bytes).unwrap_or(0),
                    current_epoch: p.current_leader_epoch,
                    log_start: p.log_start_offset,
                    denied: denied_topics[ti],
                    partition: state.as_ref().and_then(|s| {
                        usize::try_from(p.partition)
                            .ok()
                            .and_then(|i| s.partitions.get(i))
                            .cloned()
                    }),
                });
            }
        }
        let unknown = if by_id {
            |_: &Wanted| Error::UnknownTopicId(uuid::Uuid::nil())
        } else {
            |w: &Wanted| Error::UnknownTopicOrPartition(format!("partition {}", w.index))
        };
        let read_committed = body.isolation_level == 1 && replica.is_none();
        let min_bytes = usize::try_from(body.min_bytes).unwrap_or(0);
        let mut max_bytes = usize::try_from(body.max_bytes).unwrap_or(0);
        if let Some(limit) = quota.as_ref().and_then(|(q, s, c)| q.fetch_limit(s, c)) {
            max_bytes = max_bytes.min(limit);
        }
        loop {
            // Subscribe before reading so an append between the read and the wait wakes us.
            let mut watchers: Vec<_> = wanted
                .iter()
                .filter_map(|w| {
                    w.partition.as_ref().map(|p| match replica {
                        Some(_) => p.subscribe_end(),
                        None => p.subscribe_hw(),
                    })
                })
                .collect();
            let read_started = rd.clock.now();
            let (parts, total, errors) =
                read_all(&rd, &wanted, max_bytes, unknown, read_committed).await;
            if total >= min_bytes.max(1)
                || errors
                || Instant::now() >= deadline
                || watchers.is_empty()
            {
                if let Some((q, s, c)) = &quota {
                    let handling = rd.clock.now().saturating_duration_since(read_started);
                    let throttle = q.on_fetch(s, c, total, handling);
                    if throttle > 0 {
                        // Kafka answers a throttled fetch empty; the client fetches the same
                        // offsets again once the throttle has passed.
                        let resp = FetchResponse::default()
                            .with_throttle_time_ms(throttle)
                            .with_session_id(0);
                        return encode(to, &resp);
                    }
                }
                Metrics::add(&m.fetched_bytes, total as u64);
                for (w, pd) in wanted.iter().zip(parts) {
                    topics[w.topic].partitions.push(pd);
                }
                let resp = FetchResponse::default()
                    .with_responses(topics)
                    .with_session_id(0);
                return encode(to, &resp);
            }
            let mut changed: FuturesUnordered<_> =
                watchers.iter_mut().map(|rx| rx.changed()).collect();
            tokio::select! {
                _ = changed.next() => {}
                () = tokio::time::sleep_until(deadline) => {}
            }
        }
    })
}

/// A partition's answer to an error: the code, and no offsets (-1, as Kafka answers
/// consumers) except for a follower, which takes the leader's log start and high watermark
/// from an OFFSET_OUT_OF_RANGE answer to restart its log.
fn error_data(mut pd: PartitionData, code: i16, follower: Option<&Partition>) -> PartitionData {
    pd.error_code = code;
    pd.aborted_transactions = None;
    match follower {
        Some(p) => {
            pd.log_start_offset = p.log_start();
            pd.high_watermark = p.high_watermark();
        }
        None => {
            pd.high_watermark = -1;
            pd.last_stable_offset = -1;
            pd.log_start_offset = -1;
        }
    }
    pd
}

/// Reads every wanted partition within the limits. Returns the partition responses, the total
/// record bytes, and whether any partition had an error (which answers the fetch at once).
async fn read_all(
    rd: &Reader,
    wanted: &[Wanted],
    max_bytes: usize,
    unknown: fn(&Wanted) -> Error,
    read_committed: bool,
) -> (Vec<PartitionData>, usize, bool) {
    let (h, m, clock, replica) = (&rd.host, &rd.metrics, &rd.clock, rd.replica);
    let mut total = 0usize;
    let mut errors = false;
    let mut parts = Vec::with_capacity(wanted.len());
    for w in wanted {
        // Kafka sends a null list under read_uncommitted, a list (maybe empty) under
        // read_committed.
        let mut pd = PartitionData::default()
            .with_partition_index(w.index)
            .with_aborted_transactions(read_committed.then(Vec::new));
        if w.denied {
            errors = true;
            let code = Error::TopicAuthorizationFailed(String::new()).kafka_code();
            parts.push(error_data(pd, code, None).with_aborted_transactions(Some(Vec::new())));
            continue;
        }
        let Some(p) = &w.partition else {
            errors = true;
            // Kafka answers an unknown partition with an empty (not null) aborted list.
            let pd = error_data(pd, unknown(w).kafka_code(), None);
            parts.push(pd.with_aborted_transactions(Some(Vec::new())));
            continue;
        };
        let follower = replica.map(|_| p.as_ref());
        // What this reader may see: up to the log end for a follower, the high watermark
        // for a consumer.
        let limits = match replica {
            Some(r) => p
                .follower_fetch(r, w.offset, w.log_start, w.current_epoch, clock.now())
                .map(|(hw, pending)| {
                    if let Some(pending) = pending {
                        let (h, m, p) = (h.clone(), m.clone(), p.clone());
                        tokio::spawn(async move {
                            crate::replication::commit_isr_change(&h.cluster, &m, &p, pending)
                                .await;
                        });
                    }
                    (p.log.log_end_offset(), hw)
                }),
            None => p.check_leader(w.current_epoch).map(|_| {
                let hw = p.high_watermark();
                // A read_committed consumer reads up to the last stable offset.
                let lso = p.last_stable_offset();
                (if read_committed { lso } else { hw }, hw)
            }),
        };
        let (end, hw) = match limits {
            Ok(l) => l,
            Err(e) => {
                errors = true;
                parts.push(error_data(pd, e.kafka_code(), follower));
                continue;
            }
        };
        pd.high_watermark = hw;
        pd.last_stable_offset = if replica.is_some() {
            hw
        } else {
            p.last_stable_offset()
        };
        // The first partition with data may exceed max_bytes by one batch (KIP-74).
        let budget = if total == 0 {
            w.max_bytes.max(1)
        } else {
            w.max_bytes.min(max_bytes.saturating_sub(total))
        };
        if budget == 0 || w.offset == end {
            pd.records = Some(bytes::Bytes::new());
            pd.log_start_offset = p.log_start();
            parts.push(pd);
            continue;
        }
        match p.read(w.offset, budget, end).await {
            Ok(r) => {
                if read_committed && !r.records.is_empty() {
                    match aborted_in(p, w.offset, &r.records).await {
                        Ok(list) => pd.aborted_transactions = Some(list),
                        Err(e) => {
                            errors = true;
                            parts.push(error_data(pd, e.kafka_code(), follower));
                            continue;
                        }
                    }
                }
                total += r.records.len();
                pd.log_start_offset = r.log_start;
                pd.records = Some(r.records);
            }
            Err(e) => {
                errors = true;
                pd = error_data(pd, e.kafka_code(), follower);
            }
        }
        parts.push(pd);
    }
    (parts, total, errors)
}

/// The aborted transactions a read_committed consumer needs to drop aborted records from
/// `records` (read at `from`): those overlapping the batches returned.
async fn aborted_in(
    p: &Partition,
    from: i64,
    records: &[u8],
) -> crate::error::Result<Vec<AbortedTransaction>> {
    let upper = last_offset_of(records).map_or(from, |last| last + 1);
    Ok(p.aborted_transactions(from, upper)
        .await?
        .into_iter()
        .map(|a| {
            AbortedTransaction::default()
                .with_producer_id(kafka_protocol::messages::ProducerId(a.producer_id))
                .with_first_offset(a.first_offset)
        })
        .collect())
}

/// The last offset of the last whole batch in `records`.
fn last_offset_of(records: &[u8]) -> Option<i64> {
    let mut pos = 0usize;
    let mut last = None;
    while let Some(rest) = records.get(pos..).filter(|r| !r.is_empty()) {
        let header = tierlog_tiering::BatchHeader::parse(rest).ok()?;
        last = Some(header.last_offset());
        pos += usize::try_from(header.size()).ok()?;
    }
    last
}
