//! Followers' fetchers: one task per leader node, fetching every partition this node follows
//! from it in one Fetch request (Kafka's replica fetcher), with this node's id as replica id.
//!
//! Before fetching a partition in a new leader epoch, the fetcher asks the leader where its
//! own latest epoch ends (OffsetForLeaderEpoch, KIP-101) and truncates the local log there,
//! so a tail written under a deposed leader never survives. Records are appended exactly as
//! the leader wrote them; the follower's high watermark is the leader's, capped by its own end.
//!
//! Fetches use a fetch session (KIP-227), as Kafka's `FetchSessionHandler`: the first fetch is
//! full and opens a session on the leader; later ones send only partitions whose fetch offset,
//! log start or epoch changed, and forget the partitions no longer followed, and the leader
//! answers only partitions with something new. A session error or a failed request starts
//! over with a full fetch.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ForgottenTopic};
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::{
    ApiKey, BrokerId, FetchRequest, FetchResponse, OffsetForLeaderEpochRequest,
    OffsetForLeaderEpochResponse, TopicName,
};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use tierlog_metadata::{LeaderEpoch, NodeId, SharedClock, TopicId};

use super::client::{PeerConnection, PeerTransport};
use super::throttle::FollowerThrottle;
use crate::partition::Partition;
use crate::protocol::str_bytes;

/// Fetch request version followers send (topics by name, replica id in the body).
pub(super) const FETCH_VERSION: i16 = 12;
/// OffsetForLeaderEpoch version followers send.
const OFFSET_FOR_LEADER_EPOCH_VERSION: i16 = 4;
/// How long the leader may hold a follower's fetch when there is nothing new.
const MAX_WAIT: Duration = Duration::from_millis(500);
/// Bytes per fetch response and per partition.
const MAX_BYTES: i32 = 32 * 1024 * 1024;
const PARTITION_MAX_BYTES: i32 = 8 * 1024 * 1024;
/// Connect timeout and the slack beyond `MAX_WAIT` a response may take.
const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause after a failed connection or request, and after a round with only errors.
const BACKOFF: Duration = Duration::from_millis(100);
/// Session id and epochs of the fetch session protocol (KIP-227).
const NO_SESSION: i32 = 0;
const INITIAL_EPOCH: i32 = 0;

/// This fetcher's fetch session with its leader (Kafka's `FetchSessionHandler`): what the
/// leader holds for it, so the next fetch sends only what changed.
#[derive(Debug, Default)]
struct FetchSession {
    /// The leader's session id (0: none yet).
    id: i32,
    /// The epoch the next fetch carries: 0 sends a full fetch (closing `id`, opening anew).
    epoch: i32,
    /// Each partition as the session last heard of it, by (topic, partition).
    sent: HashMap<(String, i32), FetchPartition>,
}

impl FetchSession {
    /// The next request's partitions by topic, and the partitions to forget: every
    /// partition for a full fetch; for an incremental one those new or changed since sent.
    fn build(
        &mut self,
        next: HashMap<(String, i32), FetchPartition>,
    ) -> (
        HashMap<String, Vec<FetchPartition>>,
        HashMap<String, Vec<i32>>,
    ) {
        let full = self.epoch == INITIAL_EPOCH;
        let mut send: HashMap<String, Vec<FetchPartition>> = HashMap::new();
        let mut forget: HashMap<String, Vec<i32>> = HashMap::new();
        for (key, p) in &next {
            if full || self.sent.get(key) != Some(p) {
                send.entry(key.0.clone()).or_default().push(p.clone());
            }
        }
        if !full {
            for (topic, partition) in self.sent.keys() {
                if !next.contains_key(&(topic.clone(), *partition)) {
                    forget.entry(topic.clone()).or_default().push(*partition);
                }
            }
        }
        self.sent = next;
        (send, forget)
    }

    /// Takes the leader's answer to the fetch [`FetchSession::build`] made; false if the
    /// leader refused the session (the next fetch is full again).
    fn answered(&mut self, error_code: i16, session_id: i32) -> bool {
        if error_code != 0 {
            if error_code == ResponseError::FetchSessionIdNotFound.code() {
                self.id = NO_SESSION;
            }
            self.epoch = INITIAL_EPOCH;
            return false;
        }
        if session_id == NO_SESSION {
            // The leader keeps no session for us (its cache is full): full fetches from now.
            self.id = NO_SESSION;
            self.epoch = INITIAL_EPOCH;
        } else if self.epoch == INITIAL_EPOCH {
            self.id = session_id;
            self.epoch = 1;
        } else {
            self.epoch = if self.epoch == i32::MAX {
                1
            } else {
                self.epoch + 1
            };
        }
        true
    }

    /// After a failed or unanswered fetch: the next one is full and closes this session.
    fn failed(&mut self) {
        self.epoch = INITIAL_EPOCH;
    }
}

/// One partition this node follows.
#[derive(Debug, Clone)]
struct Follow {
    topic_id: TopicId,
    partition: Arc<Partition>,
    epoch: LeaderEpoch,
    /// The log was truncated to agree with the leader in this epoch.
    truncated: bool,
}

#[derive(Debug, Default)]
struct Shared {
    follows: Mutex<HashMap<(TopicId, i32), Follow>>,
    wake: Notify,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(TopicId, i32), Follow>> {
        self.follows
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[derive(Debug)]
struct LeaderFetcher {
    addr: String,
    shared: Arc<Shared>,
    cancel: CancellationToken,
}

/// Every fetcher of this node.
#[derive(Debug)]
pub(crate) struct Fetchers {
    me: NodeId,
    clock: SharedClock,
    fetchers: Mutex<HashMap<NodeId, LeaderFetcher>>,
    /// How peers are reached (TLS, SASL on the inter-broker listener).
    transport: Arc<PeerTransport>,
    /// The follower's replication throttle, shared by every leader's fetcher.
    throttle: Arc<FollowerThrottle>,
    cancel: CancellationToken,
    tracker: TaskTracker,
}

impl Fetchers {
    pub(crate) fn new(
        me: NodeId,
        clock: SharedClock,
        transport: Arc<PeerTransport>,
        throttle: Arc<FollowerThrottle>,
        cancel: CancellationToken,
        tracker: TaskTracker,
    ) -> Self {
        Fetchers {
            me,
            clock,
            fetchers: Mutex::new(HashMap::new()),
            transport,
            throttle,
            cancel,
            tracker,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<NodeId, LeaderFetcher>> {
        self.fetchers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Follows `partition` from `leader` (at `addr`) in `epoch`. A no-op if already so.
    pub(crate) fn follow(
        &self,
        leader: NodeId,
        addr: &str,
        topic_id: TopicId,
        partition: Arc<Partition>,
        epoch: LeaderEpoch,
    ) {
        let key = (topic_id, partition.tp.partition);
        let mut fetchers = self.lock();
        for (id, f) in fetchers.iter() {
            if *id != leader {
                f.shared.lock().remove(&key);
            }
        }
        let stale = fetchers.get(&leader).is_some_and(|f| f.addr != addr);
        if stale && let Some(old) = fetchers.remove(&leader) {
            old.cancel.cancel();
        }
        let f = fetchers.entry(leader).or_insert_with(|| {
            let shared = Arc::new(Shared::default());
            let cancel = self.cancel.child_token();
            self.tracker.spawn(run(
                self.me,
                self.clock.clone(),
                addr.to_owned(),
                self.transport.clone(),
                (shared.clone(), self.throttle.clone()),
                cancel.clone(),
            ));
            LeaderFetcher {
                addr: addr.to_owned(),
                shared,
                cancel,
            }
        });
        let mut follows = f.shared.lock();
        let same = follows
            .get(&key)
            .is_some_and(|x| x.epoch == epoch && Arc::ptr_eq(&x.partition, &partition));
        if !same {
            follows.insert(
                key,
                Follow {
                    topic_id,
                    partition,
                    epoch,
                    truncated: false,
                },
            );
            drop(follows);
            f.shared.wake.notify_one();
        }
    }

    /// How this node reaches its peers.
    pub(crate) fn transport(&self) -> &PeerTransport {
        &self.transport
    }

    /// Stops following one partition.
    pub(crate) fn unfollow(&self, topic_id: TopicId, partition: i32) {
        for f in self.lock().values() {
            f.shared.lock().remove(&(topic_id, partition));
        }
    }

    /// Stops following every partition of a topic.
    pub(crate) fn unfollow_topic(&self, topic_id: TopicId) {
        for f in self.lock().values() {
            f.shared.lock().retain(|(id, _), _| *id != topic_id);
        }
    }

    /// Stops following anything.
    pub(crate) fn unfollow_all(&self) {
        for f in self.lock().values() {
            f.shared.lock().clear();
        }
    }
}

/// The fetcher task for one leader.
async fn run(
    me: NodeId,
    clock: SharedClock,
    addr: String,
    transport: Arc<PeerTransport>,
    (shared, throttle): (Arc<Shared>, Arc<FollowerThrottle>),
    cancel: CancellationToken,
) {
    let mut conn: Option<PeerConnection> = None;
    let mut session = FetchSession::default();
    // When each partition with damage may next try to heal it from the leader (ms).
    let mut next_heal: HashMap<(TopicId, i32), i64> = HashMap::new();
    loop {
        if cancel.is_cancelled() {
            return;
        }
        let follows: Vec<Follow> = shared.lock().values().cloned().collect();
        if follows.is_empty() {
            tokio::select! {
                () = cancel.cancelled() => return,
                () = shared.wake.notified() => continue,
            }
        }
        let c = match conn.as_mut() {
            Some(c) => c,
            None => match PeerConnection::connect(&addr, IO_TIMEOUT, &transport).await {
                Ok(c) => conn.insert(c),
                Err(e) => {
                    debug!(leader = %addr, error = %e, "connecting to the leader failed");
                    if pause(&cancel).await {
                        return;
                    }
                    continue;
                }
            },
        };
        let pending: Vec<&Follow> = follows.iter().filter(|f| !f.truncated).collect();
        if !pending.is_empty() {
            match truncate(c, me, &pending).await {
                Ok(done) => {
                    let mut map = shared.lock();
                    for (topic_id, partition, epoch) in done {
                        if let Some(f) = map.get_mut(&(topic_id, partition))
                            && f.epoch == epoch
                        {
                            f.truncated = true;
                        }
                    }
                }
                Err(e) => {
                    debug!(leader = %addr, error = %e, "OffsetForLeaderEpoch failed");
                    conn = None;
                    if pause(&cancel).await {
                        return;
                    }
                    continue;
                }
            }
        }
        // Catching-up replicas of throttled partitions wait while the throttle is spent, and
        // share what it allows.
        let rate = throttle.rate();
        let available = rate.map_or(0, |r| throttle.available(r, clock.now()));
        let throttled = |f: &Follow| rate.is_some() && is_throttled(&f.partition, me);
        let ready: Vec<Follow> = shared
            .lock()
            .values()
            .filter(|f| f.truncated && (available > 0 || !throttled(f)))
            .cloned()
            .collect();
        let share = available / ready.iter().filter(|f| throttled(f)).count().max(1);
        let limit = |f: &Follow| {
            if throttled(f) {
                i32::try_from(share)
                    .unwrap_or(i32::MAX)
                    .clamp(1, PARTITION_MAX_BYTES)
            } else {
                PARTITION_MAX_BYTES
            }
        };
        if ready.is_empty() {
            if pause(&cancel).await {
                return;
            }
            continue;
        }
        let Some(c) = conn.as_mut() else { continue };
        let now = clock.now_ms();
        for f in ready.iter().filter(|f| f.partition.log.has_damage()) {
            let due = next_heal
                .entry((f.topic_id, f.partition.tp.partition))
                .or_insert(0);
            if now < *due {
                continue;
            }
            *due = now + super::heal::HEAL_EVERY_MS;
            if let Err(e) = super::heal::heal_from_leader(c, &f.partition, f.epoch).await {
                debug!(leader = %addr, partition = %f.partition.tp, error = %e, "healing from the leader failed");
                conn = None;
                break;
            }
        }
        let Some(c) = conn.as_mut() else { continue };
        let outcome = tokio::select! {
            () = cancel.cancelled() => return,
            r = tokio::time::timeout(MAX_WAIT + IO_TIMEOUT, fetch(c, me, &ready, &limit, &mut session)) => r,
        };
        let progressed = match outcome {
            Ok(Ok(resp)) => {
                if session.answered(resp.error_code, resp.session_id) {
                    let counted = rate.is_some().then_some((throttle.as_ref(), me));
                    apply(&shared, &ready, resp, clock.now_ms(), counted)
                } else {
                    debug!(leader = %addr, code = resp.error_code, "leader refused the fetch session; fetching in full");
                    false
                }
            }
            Ok(Err(e)) => {
                debug!(leader = %addr, error = %e, "replica fetch failed");
                session.failed();
                conn = None;
                false
            }
            Err(_) => {
                debug!(leader = %addr, "replica fetch timed out");
                session.failed();
                conn = None;
                false
            }
        };
        if !progressed && pause(&cancel).await {
            return;
        }
    }
}

/// Sleeps [`BACKOFF`]; true if cancelled meanwhile.
async fn pause(cancel: &CancellationToken) -> bool {
    tokio::select! {
        () = cancel.cancelled() => true,
        () = tokio::time::sleep(BACKOFF) => false,
    }
}

/// Asks the leader where each partition's latest local epoch ends and truncates there.
/// Returns the partitions (with the epoch they were checked in) that now agree.
async fn truncate(
    c: &mut PeerConnection,
    me: NodeId,
    pending: &[&Follow],
) -> anyhow::Result<Vec<(TopicId, i32, LeaderEpoch)>> {
    let mut done = Vec::new();
    let mut asks: HashMap<String, Vec<OffsetForLeaderPartition>> = HashMap::new();
    for f in pending {
        let p = &f.partition;
        match p.log.latest_epoch() {
            // Nothing here yet (or nothing with an epoch): nothing can diverge.
            None => done.push((f.topic_id, p.tp.partition, f.epoch)),
            Some(latest) => asks.entry(p.tp.topic.clone()).or_default().push(
                OffsetForLeaderPartition::default()
                    .with_partition(p.tp.partition)
                    .with_current_leader_epoch(f.epoch)
                    .with_leader_epoch(latest),
            ),
        }
    }
    if asks.is_empty() {
        return Ok(done);
    }
    let request = OffsetForLeaderEpochRequest::default()
        .with_replica_id(BrokerId(me))
        .with_topics(
            asks.into_iter()
                .map(|(topic, partitions)| {
                    OffsetForLeaderTopic::default()
                        .with_topic(TopicName(str_bytes(&topic)))
                        .with_partitions(partitions)
                })
                .collect(),
        );
    let resp: OffsetForLeaderEpochResponse = tokio::time::timeout(
        IO_TIMEOUT,
        c.request(
            ApiKey::OffsetForLeaderEpoch,
            OFFSET_FOR_LEADER_EPOCH_VERSION,
            &request,
        ),
    )
    .await
    .map_err(|_| anyhow::anyhow!("timed out"))??;
    let by_name = by_topic_partition(pending.iter().copied());
    for t in resp.topics {
        for r in t.partitions {
            let Some(f) = by_name.get(&(t.topic.as_str(), r.partition)) else {
                continue;
            };
            if r.error_code != 0 {
                debug!(partition = %f.partition.tp, code = r.error_code, "leader refused OffsetForLeaderEpoch; retrying");
                continue;
            }
            let p = &f.partition;
            let end = p.log.log_end_offset();
            let target = divergence_point(p, r.leader_epoch, r.end_offset);
            if target < end {
                match p.truncate_to(target) {
                    Ok(new_end) => {
                        info!(partition = %p.tp, from = end, to = new_end, leader_epoch = f.epoch, "follower truncated its divergent tail")
                    }
                    Err(e) => {
                        warn!(partition = %p.tp, error = %e, "truncation failed");
                        continue;
                    }
                }
            }
            done.push((f.topic_id, p.tp.partition, f.epoch));
        }
    }
    Ok(done)
}

/// Where the follower's log stops agreeing with the leader, given the leader's answer for the
/// follower's latest epoch: `(epoch, end)` as in Kafka (KIP-101/279).
fn divergence_point(p: &Partition, leader_epoch: i32, leader_end: i64) -> i64 {
    let end = p.log.log_end_offset();
    if leader_epoch < 0 || leader_end < 0 {
        // The leader knows nothing of our epochs: keep only what is known committed.
        return p.high_watermark().max(p.log.tiered_end()).min(end);
    }
    match p.log.latest_epoch() {
        Some(latest) if latest == leader_epoch => leader_end.min(end),
        _ => {
            let (_, ours) = p.log.end_offset_for_epoch(leader_epoch);
            let ours = if ours < 0 { end } else { ours };
            leader_end.min(ours).min(end)
        }
    }
}

/// Sends one fetch for `ready` in `session` (full or incremental) and returns the answer.
/// Whether `p` is a throttled replica here that is not in sync (in-sync replicas are never
/// throttled).
fn is_throttled(p: &Partition, me: NodeId) -> bool {
    p.follower_throttled
        .load(std::sync::atomic::Ordering::Relaxed)
        && !p.in_sync(me)
}

async fn fetch(
    c: &mut PeerConnection,
    me: NodeId,
    ready: &[Follow],
    limit: &(dyn Fn(&Follow) -> i32 + Sync),
    session: &mut FetchSession,
) -> anyhow::Result<FetchResponse> {
    let next = ready
        .iter()
        .map(|f| {
            let p = &f.partition;
            (
                (p.tp.topic.clone(), p.tp.partition),
                FetchPartition::default()
                    .with_partition(p.tp.partition)
                    .with_current_leader_epoch(f.epoch)
                    .with_fetch_offset(p.log.log_end_offset())
                    .with_log_start_offset(p.log.log_start_offset())
                    .with_partition_max_bytes(limit(f)),
            )
        })
        .collect();
    let (session_id, epoch) = (session.id, session.epoch);
    let (topics, forget) = session.build(next);
    let request = FetchRequest::default()
        .with_replica_id(BrokerId(me))
        .with_max_wait_ms(MAX_WAIT.as_millis() as i32)
        .with_min_bytes(1)
        .with_max_bytes(MAX_BYTES)
        .with_session_id(session_id)
        .with_session_epoch(epoch)
        .with_topics(
            topics
                .into_iter()
                .map(|(topic, partitions)| {
                    FetchTopic::default()
                        .with_topic(TopicName(str_bytes(&topic)))
                        .with_partitions(partitions)
                })
                .collect(),
        )
        .with_forgotten_topics_data(
            forget
                .into_iter()
                .map(|(topic, partitions)| {
                    ForgottenTopic::default()
                        .with_topic(TopicName(str_bytes(&topic)))
                        .with_partitions(partitions)
                })
                .collect(),
        );
    c.request(ApiKey::Fetch, FETCH_VERSION, &request).await
}

/// Appends what the leader sent. Returns whether any partition made progress or is simply
/// up to date (false: only errors, so the caller backs off). An incremental answer leaves out
/// the partitions with nothing new; an empty one means all are up to date.
fn apply(
    shared: &Shared,
    ready: &[Follow],
    resp: FetchResponse,
    now: i64,
    throttle: Option<(&FollowerThrottle, NodeId)>,
) -> bool {
    let mut ok = false;
    let mut refused = false;
    let by_name = by_topic_partition(ready.iter());
    for t in resp.responses {
        for pd in t.partitions {
            let Some(f) = by_name.get(&(t.topic.as_str(), pd.partition_index)) else {
                continue;
            };
            let p = &f.partition;
            let code = pd.error_code;
            if code == 0 {
                let records = pd.records.unwrap_or_default();
                if let Some((t, me)) = throttle
                    && is_throttled(p, me)
                {
                    t.record(records.len());
                }
                match p.append_follower(records, pd.high_watermark, now) {
                    Ok(()) => ok = true,
                    Err(e) => {
                        warn!(partition = %p.tp, error = %e, "appending replicated batches failed; re-checking divergence");
                        refused = true;
                        untruncate(shared, f);
                    }
                }
                if let Err(e) = p.follow_log_start(pd.log_start_offset) {
                    warn!(partition = %p.tp, leader_start = pd.log_start_offset, error = %e, "taking the leader's log start failed");
                }
            } else if code == ResponseError::OffsetOutOfRange.code() {
                if p.log.log_end_offset() < pd.log_start_offset {
                    // The leader no longer has what we would fetch next: start at its log start.
                    match p.restart_at(pd.log_start_offset) {
                        Ok(()) => {
                            info!(partition = %p.tp, start = pd.log_start_offset, "follower log restarted at the leader's log start");
                            ok = true;
                        }
                        Err(e) => {
                            warn!(partition = %p.tp, error = %e, "restarting the follower log failed");
                            refused = true;
                        }
                    }
                } else {
                    refused = true;
                    untruncate(shared, f);
                }
            } else {
                refused = true;
                debug!(partition = %p.tp, code, "leader refused the replica fetch");
            }
        }
    }
    ok || !refused
}

/// The followed partitions by (topic name, partition), for matching a response's partitions
/// in one lookup each.
fn by_topic_partition<'a>(
    follows: impl Iterator<Item = &'a Follow>,
) -> HashMap<(&'a str, i32), &'a Follow> {
    follows
        .map(|f| ((f.partition.tp.topic.as_str(), f.partition.tp.partition), f))
        .collect()
}

/// Makes the fetcher check divergence again before fetching this partition.
fn untruncate(shared: &Shared, f: &Follow) {
    if let Some(x) = shared
        .lock()
        .get_mut(&(f.topic_id, f.partition.tp.partition))
        && x.epoch == f.epoch
    {
        x.truncated = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(partition: i32, offset: i64) -> ((String, i32), FetchPartition) {
        (
            ("t".to_owned(), partition),
            FetchPartition::default()
                .with_partition(partition)
                .with_fetch_offset(offset),
        )
    }

    fn sent(send: &HashMap<String, Vec<FetchPartition>>) -> Vec<(i32, i64)> {
        let mut v: Vec<(i32, i64)> = send
            .values()
            .flatten()
            .map(|p| (p.partition, p.fetch_offset))
            .collect();
        v.sort_unstable();
        v
    }

    #[test]
    fn a_session_sends_everything_first_then_only_changes() {
        let mut s = FetchSession::default();
        let (send, forget) = s.build([part(0, 0), part(1, 0)].into());
        assert_eq!(sent(&send), vec![(0, 0), (1, 0)]);
        assert!(forget.is_empty());
        assert!(s.answered(0, 77));
        assert_eq!((s.id, s.epoch), (77, 1));
        // Partition 0 moved on, 1 did not, 2 is new.
        let (send, forget) = s.build([part(0, 5), part(1, 0), part(2, 0)].into());
        assert_eq!(sent(&send), vec![(0, 5), (2, 0)]);
        assert!(forget.is_empty());
        assert!(s.answered(0, 77));
        assert_eq!(s.epoch, 2);
        // Partition 1 is no longer followed: forgotten.
        let (send, forget) = s.build([part(0, 5), part(2, 0)].into());
        assert!(send.is_empty());
        assert_eq!(forget, [("t".to_owned(), vec![1])].into());
    }

    #[test]
    fn session_errors_and_failures_start_over_with_a_full_fetch() {
        let mut s = FetchSession::default();
        s.build([part(0, 0)].into());
        assert!(s.answered(0, 9));
        // A wrong epoch: full again, closing session 9.
        s.build([part(0, 1)].into());
        assert!(!s.answered(ResponseError::InvalidFetchSessionEpoch.code(), 0));
        assert_eq!((s.id, s.epoch), (9, INITIAL_EPOCH));
        let (send, _) = s.build([part(0, 1)].into());
        assert_eq!(sent(&send), vec![(0, 1)]);
        // An unknown session: full, naming none.
        assert!(!s.answered(ResponseError::FetchSessionIdNotFound.code(), 0));
        assert_eq!((s.id, s.epoch), (NO_SESSION, INITIAL_EPOCH));
        // The leader keeps no session: every fetch is full.
        s.build([part(0, 1)].into());
        assert!(s.answered(0, NO_SESSION));
        let (send, _) = s.build([part(0, 1)].into());
        assert_eq!(sent(&send), vec![(0, 1)]);
        // A failed request: full again.
        assert!(s.answered(0, 4));
        s.failed();
        assert_eq!((s.id, s.epoch), (4, INITIAL_EPOCH));
    }
}
