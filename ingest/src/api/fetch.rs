//! Fetch: reads whole record batches from each requested partition and long-polls until
//! `min_bytes` are available or `max_wait_ms` passes.
//!
//! Limits follow Kafka (KIP-74): each partition returns at most `partition_max_bytes` and the
//! response at most `max_bytes`, except that the first partition with data always returns at
//! least one whole batch so a consumer can never get stuck behind a large batch. Topics are
//! named by name before v13 and by id from v13. Fetch sessions (KIP-227) are kept by
//! [`FetchSessions`](super::fetch_session): an incremental fetch reads every partition of its
//! session and answers only those with something new, and long-polls like a full one.
//!
//! The leader serves a partition; from v11 an in-sync follower serves consumers too, and the
//! leader may send a consumer to one in its rack (KIP-392, [`read_replica`](super::read_replica)).
//! Consumers see records below the high watermark and long-poll on it; a follower (a fetch
//! carrying its replica id) gets everything up to the log end, long-polls on the log end, and
//! its fetch offset is its progress: the leader records it, advances the high watermark, and
//! proposes it for the ISR once caught up.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::{FetchRequest, FetchResponse, TopicName};
use tokio::time::Instant;

use super::Pending;
use super::RequestContext;
use super::encode;
use super::fetch_session::{
    FetchContext, FetchParams, FetchSessions, INVALID_SESSION_ID, PartitionKey, TopicKey,
};
use super::read_replica::{self, ConsumerReads};
use crate::config::ReplicaSelector;
use crate::error::Error;
use crate::host::Host;
use crate::metrics::Metrics;
use crate::partition::{Partition, TopicState};
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
    /// The partition exists but has no replica here (NOT_LEADER_OR_FOLLOWER, as Kafka).
    elsewhere: bool,
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
    /// A consumer's: whether followers may serve it and where it may be sent (KIP-392).
    consumer: ConsumerReads,
    /// Record bytes the latest read served to a consumer from partitions this node follows.
    follower_bytes: AtomicU64,
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
    sessions: Arc<FetchSessions>,
    selector: ReplicaSelector,
    body: FetchRequest,
) -> Pending {
    Metrics::add(&m.fetch_requests, 1);
    let to = ctx.reply_to();
    let by_id = ctx.version() >= 13;
    let replica = replica_of(ctx.version(), &body);
    let requested = requested(&body, by_id);
    let context = sessions.new_context(
        by_id,
        body.session_id,
        body.session_epoch,
        &requested,
        &forgotten(&body, by_id),
        ctx.clock.now_ms(),
    );
    // What is read: the request's partitions, or an incremental fetch's whole session.
    let (list, mode) = match context {
        FetchContext::Error(e) => {
            let resp = FetchResponse::default()
                .with_error_code(e.kafka_code())
                .with_session_id(INVALID_SESSION_ID);
            return Box::pin(std::future::ready(encode(to, &resp)));
        }
        FetchContext::Sessionless => (requested, Mode::Sessionless),
        FetchContext::Full => (requested, Mode::Full),
        FetchContext::Incremental {
            id,
            epoch,
            partitions,
        } => (partitions, Mode::Incremental { id, epoch }),
    };
    // As Kafka: a follower needs CLUSTER_ACTION on the cluster for every partition, a
    // consumer READ on each topic.
    let follower_allowed = replica.is_some() && ctx.cluster(AclOperation::ClusterAction);
    // The response's topics, one per topic read, and the partitions read in order.
    let mut topics: Vec<FetchableTopicResponse> = Vec::new();
    let mut topic_of: HashMap<&TopicKey, usize> = HashMap::new();
    // Each response topic's partitions (None: unknown), and whether the fetcher may read it.
    let mut states: Vec<(Option<Arc<TopicState>>, bool)> = Vec::new();
    let mut wanted = Vec::with_capacity(list.len());
    for (key, params) in &list {
        let ti = match topic_of.get(&key.topic) {
            Some(&ti) => ti,
            None => {
                let state = match &key.topic {
                    TopicKey::Id(id) => h.partitions.topic_by_id(*id),
                    TopicKey::Name(name) => h.partitions.topic(name),
                };
                let mut tr = FetchableTopicResponse::default();
                let name = match &key.topic {
                    TopicKey::Id(id) => {
                        tr.topic_id = *id;
                        state.as_ref().map(|s| s.meta.name.clone())
                    }
                    TopicKey::Name(name) => Some(name.clone()),
                };
                if let Some(n) = &name {
                    tr.topic = TopicName(crate::protocol::str_bytes(n));
                }
                let denied = match (replica, &name) {
                    (Some(_), _) => !follower_allowed,
                    (None, Some(n)) => !ctx.topic(AclOperation::Read, n),
                    // An unknown topic id is reported as such.
                    (None, None) => false,
                };
                topics.push(tr);
                topic_of.insert(&key.topic, topics.len() - 1);
                states.push((state, denied));
                topics.len() - 1
            }
        };
        let (state, denied) = &states[ti];
        wanted.push(Wanted {
            topic: ti,
            index: key.partition,
            offset: params.fetch_offset,
            max_bytes: usize::try_from(params.max_bytes).unwrap_or(0),
            current_epoch: params.current_leader_epoch,
            log_start: params.log_start_offset,
            denied: *denied,
            partition: state
                .as_ref()
                .and_then(|s| s.lookup(key.partition).ok().cloned()),
            elsewhere: state.as_ref().is_some_and(|s| {
                matches!(
                    s.lookup(key.partition),
                    Err(crate::error::Error::NotLeader(_))
                )
            }),
        });
    }
    drop(topic_of);
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
        consumer: ConsumerReads::of(
            ctx.version(),
            &body.rack_id,
            &ctx.session.listener,
            selector,
        ),
        follower_bytes: AtomicU64::new(0),
    };
    Box::pin(async move {
        let deadline = Instant::now() + Duration::from_millis(body.max_wait_ms.max(0) as u64);
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
                        // Kafka answers a throttled fetch empty (keeping an incremental
                        // fetch's session, opening none for a full one); the client fetches
                        // the same offsets again once the throttle has passed.
                        let resp = FetchResponse::default()
                            .with_throttle_time_ms(throttle)
                            .with_session_id(mode.session_id());
                        return encode(to, &resp);
                    }
                }
                Metrics::add(&m.fetched_bytes, total as u64);
                if replica.is_none() {
                    Metrics::add(&m.consumer_fetched_bytes, total as u64);
                    let from_follower = rd.follower_bytes.load(Ordering::Relaxed);
                    Metrics::add(&m.follower_fetched_bytes, from_follower);
                }
                let now_ms = rd.clock.now_ms();
                let (session_id, send) = match mode {
                    Mode::Sessionless => (INVALID_SESSION_ID, None),
                    Mode::Full => {
                        let answered = list.iter().zip(&parts).map(|((k, p), pd)| (k, *p, pd));
                        let id = sessions.create(now_ms, replica.is_some(), by_id, answered);
                        (id, None)
                    }
                    Mode::Incremental { id, epoch } => {
                        let answered = list.iter().map(|(k, _)| k).zip(&parts);
                        match sessions.finish_incremental(id, epoch, answered) {
                            Ok(send) => (id, Some(send)),
                            Err(e) => {
                                let resp = FetchResponse::default()
                                    .with_error_code(e.kafka_code())
                                    .with_session_id(id);
                                return encode(to, &resp);
                            }
                        }
                    }
                };
                for (i, (w, pd)) in wanted.iter().zip(parts).enumerate() {
                    if send.as_ref().is_none_or(|s| s[i]) {
                        topics[w.topic].partitions.push(pd);
                    }
                }
                // Kafka names only topics with partitions in the answer.
                topics.retain(|t| !t.partitions.is_empty());
                let resp = FetchResponse::default()
                    .with_responses(topics)
                    .with_session_id(session_id);
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

/// How a fetch is answered, after [`FetchSessions::new_context`].
#[derive(Debug, Clone, Copy)]
enum Mode {
    /// Every partition, session id 0.
    Sessionless,
    /// Every partition, and a new session (if the cache has room).
    Full,
    /// Only changed partitions of session `id`, now at `epoch`.
    Incremental { id: i32, epoch: i32 },
}

impl Mode {
    /// The session id a throttled (empty) answer carries.
    fn session_id(self) -> i32 {
        match self {
            Mode::Incremental { id, .. } => id,
            Mode::Sessionless | Mode::Full => INVALID_SESSION_ID,
        }
    }
}

/// The request's partitions and what it asks of each, topics named as the version names them.
fn requested(body: &FetchRequest, by_id: bool) -> Vec<(PartitionKey, FetchParams)> {
    body.topics
        .iter()
        .flat_map(|t| {
            let topic = topic_key(by_id, t.topic_id, &t.topic);
            t.partitions.iter().map(move |p| {
                (
                    PartitionKey {
                        topic: topic.clone(),
                        partition: p.partition,
                    },
                    FetchParams {
                        fetch_offset: p.fetch_offset,
                        log_start_offset: p.log_start_offset,
                        max_bytes: p.partition_max_bytes,
                        current_leader_epoch: p.current_leader_epoch,
                    },
                )
            })
        })
        .collect()
}

/// The partitions an incremental fetch drops from its session.
fn forgotten(body: &FetchRequest, by_id: bool) -> Vec<PartitionKey> {
    body.forgotten_topics_data
        .iter()
        .flat_map(|t| {
            let topic = topic_key(by_id, t.topic_id, &t.topic);
            t.partitions.iter().map(move |&partition| PartitionKey {
                topic: topic.clone(),
                partition,
            })
        })
        .collect()
}

fn topic_key(by_id: bool, id: uuid::Uuid, name: &TopicName) -> TopicKey {
    if by_id {
        TopicKey::Id(id)
    } else {
        TopicKey::Name(name.0.to_string())
    }
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
/// record bytes, and whether any partition had an error or sends its consumer to another
/// replica (either answers the fetch at once, as in Kafka).
async fn read_all(
    rd: &Reader,
    wanted: &[Wanted],
    max_bytes: usize,
    unknown: fn(&Wanted) -> Error,
    read_committed: bool,
) -> (Vec<PartitionData>, usize, bool) {
    let (h, clock, replica) = (&rd.host, &rd.clock, rd.replica);
    rd.follower_bytes.store(0, Ordering::Relaxed);
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
            let code = if w.elsewhere {
                Error::NotLeader(String::new()).kafka_code()
            } else {
                unknown(w).kafka_code()
            };
            let pd = error_data(pd, code, None);
            parts.push(pd.with_aborted_transactions(Some(Vec::new())));
            continue;
        };
        let follower = replica.map(|_| p.as_ref());
        if replica.is_none()
            && let Some(preferred) =
                rd.consumer
                    .preferred(&h.cluster, p, w.current_epoch, w.offset, clock.now())
        {
            errors = true;
            Metrics::add(&rd.metrics.preferred_replica_answers, 1);
            parts.push(read_replica::redirected(pd, p, preferred));
            continue;
        }
        let mut served_as_follower = false;
        // What this reader may see: up to the log end for a follower, the high watermark
        // for a consumer.
        let limits = match replica {
            Some(r) => p
                .follower_fetch(r, w.offset, w.log_start, w.current_epoch, clock.now())
                .map(|(hw, pending)| {
                    if let Some(pending) = pending {
                        h.isr_queue.submit(p.clone(), pending);
                    }
                    (p.log.log_end_offset(), hw)
                }),
            // A follower serves a consumer up to its own high watermark (KIP-392).
            None => p
                .check_consumer_read(w.current_epoch, rd.consumer.from_follower)
                .map(|leader| {
                    served_as_follower = !leader;
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
        // Each partition reads at most the smaller of its own limit and what is left of the
        // response's; only the first partition with data may exceed that by returning one
        // whole batch larger than it (KIP-74), so a consumer never stalls behind a large batch.
        let first = total == 0;
        let budget = w.max_bytes.min(max_bytes.saturating_sub(total));
        let budget = if first { budget.max(1) } else { budget };
        // A catching-up follower of a throttled partition gets nothing while the leader's
        // replication throttle is spent (see `replication::throttle`).
        let throttle_rate = match replica {
            Some(r) if p.leader_throttled.load(Ordering::Relaxed) && !p.in_sync(r) => h
                .dynamic
                .node_u64(crate::replication::throttle::LEADER_RATE),
            _ => None,
        };
        let budget = match throttle_rate {
            Some(rate) => budget.min(h.replication_throttle.available(rate, clock.now())),
            None => budget,
        };
        if budget == 0 || w.offset == end {
            pd.records = Some(bytes::Bytes::new());
            pd.log_start_offset = p.log_start();
            parts.push(pd);
            continue;
        }
        match p.read(w.offset, budget, end).await {
            Ok(mut r) => {
                // A read returns at least one whole batch. Past the first partition with data
                // a batch larger than what is left is not sent (Kafka sends only its first
                // `budget` bytes, a partial batch every client drops).
                if !first && r.records.len() > budget {
                    r.records = bytes::Bytes::new();
                }
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
                if throttle_rate.is_some() {
                    h.replication_throttle.record(r.records.len());
                }
                if served_as_follower {
                    let len = r.records.len() as u64;
                    rd.follower_bytes.fetch_add(len, Ordering::Relaxed);
                }
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
