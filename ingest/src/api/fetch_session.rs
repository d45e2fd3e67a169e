//! Fetch sessions (KIP-227): the node remembers what a fetcher asks for, so a consumer or
//! follower of many partitions sends only the partitions whose fetch position changed, and
//! hears back only about partitions with something new.
//!
//! Lifecycle, as Kafka's `FetchManager`: a full fetch (session epoch 0, INITIAL) closes the
//! session it names, if any, and once answered opens a new one holding every partition of the
//! request (answered with a fresh random id; the next request carries epoch 1). An incremental
//! fetch (a session id and its expected epoch) adds or alters the partitions it lists, drops
//! its forgotten ones, and reads every partition of the session; the answer carries only those
//! with records, a new high watermark, log start or last stable offset, or an error. A full
//! fetch with epoch -1 (FINAL) closes the session and is answered without one. An unknown id
//! is FETCH_SESSION_ID_NOT_FOUND, a wrong epoch INVALID_FETCH_SESSION_EPOCH, a session opened
//! with topic ids (v13+) used without them (or the reverse) FETCH_SESSION_TOPIC_ID_ERROR; the
//! client then starts over with a full fetch.
//!
//! The cache holds at most `max_incremental_fetch_session_cache_slots` sessions. When it is
//! full, a new session may evict, as Kafka's `FetchSessionCache.tryEvict`: first a session
//! unused for two minutes; else the least valuable of the sessions older than two minutes
//! (unprivileged before privileged, then fewest partitions), if the new one is worth more;
//! a follower's (privileged) session may also evict any consumer session. Sessions live in
//! memory only: after a restart fetchers get FETCH_SESSION_ID_NOT_FOUND and start over.
//!
//! Fairness under `max_bytes`: the session keeps its partitions in order, and every partition
//! that returned records moves to the end, so the partitions past the size limit are read
//! first next time.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use kafka_protocol::ResponseError;
use kafka_protocol::messages::fetch_response::PartitionData;

/// The session id of a fetch without a session.
pub(crate) const INVALID_SESSION_ID: i32 = 0;
/// The epoch of a full fetch that opens a session.
pub(crate) const INITIAL_EPOCH: i32 = 0;
/// The epoch of a full fetch that wants no session.
pub(crate) const FINAL_EPOCH: i32 = -1;
/// How long a session must be unused to be evicted by anyone, and how old it must be before
/// a bigger session may evict it (Kafka's `min.incremental.fetch.session.eviction.ms`).
const EVICTION_MS: i64 = 120_000;

/// How a request names a topic: by id from Fetch v13, by name before.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum TopicKey {
    Id(uuid::Uuid),
    Name(String),
}

/// One partition of a session.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct PartitionKey {
    pub(crate) topic: TopicKey,
    pub(crate) partition: i32,
}

/// What a fetcher asks of one partition: the request's fields, kept by the session until the
/// fetcher sends the partition again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FetchParams {
    pub(crate) fetch_offset: i64,
    /// The fetcher's own log start (followers send theirs; consumers -1).
    pub(crate) log_start_offset: i64,
    pub(crate) max_bytes: i32,
    pub(crate) current_leader_epoch: i32,
}

/// Why an incremental fetch was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SessionError {
    /// No session has this id (never opened, closed, evicted, or the node restarted).
    IdNotFound,
    /// The request's epoch is not the one the session expects next.
    InvalidEpoch,
    /// The session was opened with topic ids and used without them, or the reverse.
    TopicIdMismatch,
}

impl SessionError {
    pub(crate) fn kafka_code(self) -> i16 {
        match self {
            SessionError::IdNotFound => ResponseError::FetchSessionIdNotFound,
            SessionError::InvalidEpoch => ResponseError::InvalidFetchSessionEpoch,
            SessionError::TopicIdMismatch => ResponseError::FetchSessionTopicIdError,
        }
        .code()
    }
}

/// How one fetch request is served.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum FetchContext {
    /// Read the request's partitions, answer all of them, with session id 0.
    Sessionless,
    /// Read the request's partitions, answer all of them, then open a session
    /// ([`FetchSessions::create`]).
    Full,
    /// Read the session's partitions (in its order) and answer those that changed
    /// ([`FetchSessions::finish_incremental`]).
    Incremental {
        id: i32,
        /// The session's epoch after this request: what the answer is checked against.
        epoch: i32,
        partitions: Vec<(PartitionKey, FetchParams)>,
    },
    /// Refuse the whole request with this error, without a session.
    Error(SessionError),
}

/// A partition as the session last told the fetcher about it.
#[derive(Debug, Clone)]
struct Cached {
    key: PartitionKey,
    params: FetchParams,
    high_watermark: i64,
    log_start: i64,
    last_stable: i64,
}

impl Cached {
    /// A partition the fetcher has not heard about yet (so its first answer is sent).
    fn new(key: PartitionKey, params: FetchParams) -> Self {
        Cached {
            key,
            params,
            high_watermark: -1,
            log_start: -1,
            last_stable: -1,
        }
    }

    /// Whether the answer `pd` must be sent, remembering what it tells (Kafka's
    /// `CachedPartition.maybeUpdateResponseData`; the last stable offset is watched too, so a
    /// read_committed consumer hears of a committed transaction).
    fn update(&mut self, pd: &PartitionData) -> bool {
        let mut send = pd.records.as_ref().is_some_and(|r| !r.is_empty());
        if self.high_watermark != pd.high_watermark {
            self.high_watermark = pd.high_watermark;
            send = true;
        }
        if self.log_start != pd.log_start_offset {
            self.log_start = pd.log_start_offset;
            send = true;
        }
        if self.last_stable != pd.last_stable_offset {
            self.last_stable = pd.last_stable_offset;
            send = true;
        }
        if pd.error_code != 0 {
            // Forget the high watermark so the partition is sent again once the error clears.
            self.high_watermark = -1;
            send = true;
        }
        send || pd.preferred_read_replica.0 >= 0 || pd.diverging_epoch.epoch >= 0
    }
}

#[derive(Debug)]
struct Session {
    id: i32,
    /// The epoch the next request must carry.
    epoch: i32,
    /// A follower's session: harder to evict.
    privileged: bool,
    uses_topic_ids: bool,
    created_ms: i64,
    last_used_ms: i64,
    /// The partitions in reading order.
    order: Vec<Cached>,
    /// Where each partition is in `order`.
    index: HashMap<PartitionKey, usize>,
}

impl Session {
    fn reindex(&mut self) {
        self.index = self
            .order
            .iter()
            .enumerate()
            .map(|(i, c)| (c.key.clone(), i))
            .collect();
    }

    /// Adds or alters `fetch`, then drops `forget` (Kafka's order: a partition in both goes).
    fn update(&mut self, fetch: &[(PartitionKey, FetchParams)], forget: &[PartitionKey]) {
        for (key, params) in fetch {
            match self.index.get(key) {
                Some(&i) => self.order[i].params = *params,
                None => {
                    self.index.insert(key.clone(), self.order.len());
                    self.order.push(Cached::new(key.clone(), *params));
                }
            }
        }
        if forget.iter().any(|k| self.index.contains_key(k)) {
            self.order.retain(|c| !forget.contains(&c.key));
            self.reindex();
        }
    }

    /// Kafka's `EvictableKey` order: the smallest is evicted first.
    fn worth(&self) -> (bool, usize, i32) {
        (self.privileged, self.order.len(), self.id)
    }

    /// Whether a bigger session may evict this one (judged, as Kafka does, when last used).
    fn aged(&self) -> bool {
        self.last_used_ms - self.created_ms > EVICTION_MS
    }
}

#[derive(Debug, Default)]
struct Cache {
    sessions: HashMap<i32, Session>,
    /// Partitions across every session.
    partitions: usize,
}

impl Cache {
    fn remove(&mut self, id: i32) -> bool {
        match self.sessions.remove(&id) {
            Some(s) => {
                self.partitions -= s.order.len();
                true
            }
            None => false,
        }
    }

    /// Kafka's `tryEvict`: makes room for a new session, if one may go.
    fn try_evict(&mut self, privileged: bool, size: usize, now_ms: i64) -> bool {
        let Some(oldest) = self
            .sessions
            .values()
            .min_by_key(|s| (s.last_used_ms, s.id))
        else {
            return false;
        };
        let victim = if now_ms - oldest.last_used_ms > EVICTION_MS {
            Some(oldest.id)
        } else {
            self.sessions
                .values()
                .filter(|s| s.aged() || (privileged && !s.privileged))
                .min_by_key(|s| s.worth())
                .filter(|s| (privileged, size, 0) >= s.worth())
                .map(|s| s.id)
        };
        victim.is_some_and(|id| self.remove(id))
    }

    fn new_id(&self) -> i32 {
        loop {
            let id = (uuid::Uuid::new_v4().as_u128() as u32 & 0x7fff_ffff) as i32;
            if id != INVALID_SESSION_ID && !self.sessions.contains_key(&id) {
                return id;
            }
        }
    }
}

/// What the cache holds, for `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SessionStats {
    pub(crate) sessions: usize,
    pub(crate) partitions: usize,
    pub(crate) evictions: u64,
    /// Sessions opened, and incremental fetches served, so far.
    pub(crate) created: u64,
    pub(crate) incremental: u64,
}

/// The node's fetch sessions (Kafka's `FetchSessionCache`). Every method takes the lock
/// briefly and never across an await.
#[derive(Debug)]
pub(crate) struct FetchSessions {
    max_slots: usize,
    cache: Mutex<Cache>,
    evictions: AtomicU64,
    created: AtomicU64,
    incremental: AtomicU64,
}

/// The epoch after `epoch` (Kafka's `FetchMetadata.nextEpoch`).
fn next_epoch(epoch: i32) -> i32 {
    if epoch < 0 {
        FINAL_EPOCH
    } else if epoch == i32::MAX {
        1
    } else {
        epoch + 1
    }
}

impl FetchSessions {
    /// A cache of at most `max_slots` sessions (0: no sessions, every fetch is full).
    pub(crate) fn new(max_slots: usize) -> Self {
        FetchSessions {
            max_slots,
            cache: Mutex::new(Cache::default()),
            evictions: AtomicU64::new(0),
            created: AtomicU64::new(0),
            incremental: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Decides how a request is served (Kafka's `FetchManager.newContext`): `uses_topic_ids`
    /// for v13+, `privileged` for a follower, `fetch` and `forget` the request's partitions
    /// and forgotten partitions. An incremental request updates its session and moves its
    /// epoch on here.
    pub(crate) fn new_context(
        &self,
        uses_topic_ids: bool,
        session_id: i32,
        epoch: i32,
        fetch: &[(PartitionKey, FetchParams)],
        forget: &[PartitionKey],
        now_ms: i64,
    ) -> FetchContext {
        let mut cache = self.lock();
        if epoch == INITIAL_EPOCH || epoch == FINAL_EPOCH {
            // A full fetch closes the session it names.
            if session_id != INVALID_SESSION_ID {
                cache.remove(session_id);
            }
            return if epoch == FINAL_EPOCH {
                FetchContext::Sessionless
            } else {
                FetchContext::Full
            };
        }
        let Some(session) = cache.sessions.get_mut(&session_id) else {
            return FetchContext::Error(SessionError::IdNotFound);
        };
        if session.epoch != epoch {
            return FetchContext::Error(SessionError::InvalidEpoch);
        }
        if session.uses_topic_ids != uses_topic_ids {
            return FetchContext::Error(SessionError::TopicIdMismatch);
        }
        let before = session.order.len();
        session.update(fetch, forget);
        let after = session.order.len();
        if after == 0 {
            cache.partitions -= before;
            cache.remove(session_id);
            return FetchContext::Sessionless;
        }
        session.last_used_ms = now_ms;
        session.epoch = next_epoch(session.epoch);
        self.incremental.fetch_add(1, Ordering::Relaxed);
        let context = FetchContext::Incremental {
            id: session.id,
            epoch: session.epoch,
            partitions: session
                .order
                .iter()
                .map(|c| (c.key.clone(), c.params))
                .collect(),
        };
        cache.partitions = cache.partitions + after - before;
        context
    }

    /// Opens a session for a full fetch once it is answered: `answered` is each partition
    /// with what the request asked and what the answer told. Returns the new session's id,
    /// or 0 when the cache is full and nothing may be evicted.
    pub(crate) fn create<'a>(
        &self,
        now_ms: i64,
        privileged: bool,
        uses_topic_ids: bool,
        answered: impl ExactSizeIterator<Item = (&'a PartitionKey, FetchParams, &'a PartitionData)>,
    ) -> i32 {
        let size = answered.len();
        let mut cache = self.lock();
        if cache.sessions.len() >= self.max_slots {
            if !cache.try_evict(privileged, size, now_ms) {
                return INVALID_SESSION_ID;
            }
            self.evictions.fetch_add(1, Ordering::Relaxed);
        }
        let mut session = Session {
            id: cache.new_id(),
            epoch: next_epoch(INITIAL_EPOCH),
            privileged,
            uses_topic_ids,
            created_ms: now_ms,
            last_used_ms: now_ms,
            order: Vec::with_capacity(size),
            index: HashMap::with_capacity(size),
        };
        for (key, params, pd) in answered {
            if session.index.contains_key(key) {
                continue;
            }
            let mut c = Cached::new(key.clone(), params);
            c.update(pd);
            session.index.insert(key.clone(), session.order.len());
            session.order.push(c);
        }
        let id = session.id;
        cache.partitions += session.order.len();
        cache.sessions.insert(id, session);
        self.created.fetch_add(1, Ordering::Relaxed);
        id
    }

    /// Answers an incremental fetch (Kafka's `IncrementalFetchContext`): `answered` is every
    /// partition read, in the order of [`FetchContext::Incremental`]. Returns which of them
    /// to send, having remembered what they tell and moved those with records to the end of
    /// the session's order; or INVALID_FETCH_SESSION_EPOCH if another request used the
    /// session meanwhile.
    pub(crate) fn finish_incremental<'a>(
        &self,
        id: i32,
        epoch: i32,
        answered: impl Iterator<Item = (&'a PartitionKey, &'a PartitionData)>,
    ) -> Result<Vec<bool>, SessionError> {
        let mut cache = self.lock();
        let Some(session) = cache.sessions.get_mut(&id) else {
            // Evicted while the fetch was read: send everything; the next request learns.
            return Ok(answered.map(|_| true).collect());
        };
        if session.epoch != epoch {
            return Err(SessionError::InvalidEpoch);
        }
        let mut moved = Vec::new();
        let send = answered
            .map(|(key, pd)| match session.index.get(key) {
                Some(&i) => {
                    let send = session.order[i].update(pd);
                    if send && pd.records.as_ref().is_some_and(|r| !r.is_empty()) {
                        moved.push(i);
                    }
                    send
                }
                None => true,
            })
            .collect();
        if !moved.is_empty() {
            let mut to_end = vec![false; session.order.len()];
            for i in moved {
                to_end[i] = true;
            }
            let (mut stay, back): (Vec<_>, Vec<_>) = std::mem::take(&mut session.order)
                .into_iter()
                .zip(to_end)
                .partition(|(_, end)| !end);
            stay.extend(back);
            session.order = stay.into_iter().map(|(c, _)| c).collect();
            session.reindex();
        }
        Ok(send)
    }

    /// Sessions, cached partitions and evictions so far.
    pub(crate) fn stats(&self) -> SessionStats {
        let cache = self.lock();
        SessionStats {
            sessions: cache.sessions.len(),
            partitions: cache.partitions,
            evictions: self.evictions.load(Ordering::Relaxed),
            created: self.created.load(Ordering::Relaxed),
            incremental: self.incremental.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(topic: &str, partition: i32) -> PartitionKey {
        PartitionKey {
            topic: TopicKey::Name(topic.to_owned()),
            partition,
        }
    }

    fn params(offset: i64) -> FetchParams {
        FetchParams {
            fetch_offset: offset,
            log_start_offset: -1,
            max_bytes: 1024,
            current_leader_epoch: 0,
        }
    }

    /// An answer with `records` bytes and these offsets.
    fn answer(records: usize, hw: i64) -> PartitionData {
        PartitionData::default()
            .with_high_watermark(hw)
            .with_last_stable_offset(hw)
            .with_log_start_offset(0)
            .with_records(Some(bytes::Bytes::from(vec![0u8; records])))
    }

    /// Opens a session over `keys` (each answered at high watermark 10, no records).
    fn open(s: &FetchSessions, keys: &[PartitionKey], follower: bool, now: i64) -> i32 {
        let pds: Vec<_> = keys.iter().map(|_| answer(0, 10)).collect();
        let ctx = s.new_context(false, 0, INITIAL_EPOCH, &[], &[], now);
        assert_eq!(ctx, FetchContext::Full);
        s.create(
            now,
            follower,
            false,
            keys.iter().zip(&pds).map(|(k, pd)| (k, params(0), pd)),
        )
    }

    fn incremental(ctx: FetchContext) -> (i32, i32, Vec<(PartitionKey, FetchParams)>) {
        match ctx {
            FetchContext::Incremental {
                id,
                epoch,
                partitions,
            } => (id, epoch, partitions),
            other => panic!("expected an incremental context, got {other:?}"),
        }
    }

    #[test]
    fn full_fetch_opens_a_session_and_incremental_fetches_move_its_epoch() {
        let s = FetchSessions::new(10);
        let keys = [key("a", 0), key("a", 1)];
        let id = open(&s, &keys, false, 0);
        assert_ne!(id, INVALID_SESSION_ID);
        assert!(id > 0);
        assert_eq!(
            s.stats(),
            SessionStats {
                sessions: 1,
                partitions: 2,
                evictions: 0,
                created: 1,
                incremental: 0,
            }
        );
        // Epoch 1 is next; the session's partitions keep their cached fetch offsets.
        let (got, epoch, parts) = incremental(s.new_context(false, id, 1, &[], &[], 1));
        assert_eq!((got, epoch), (id, 2));
        assert_eq!(
            parts,
            vec![(keys[0].clone(), params(0)), (keys[1].clone(), params(0))]
        );
        // The same epoch again is refused, as is an unknown id.
        assert_eq!(
            s.new_context(false, id, 1, &[], &[], 2),
            FetchContext::Error(SessionError::InvalidEpoch)
        );
        assert_eq!(
            s.new_context(false, id + 1, 1, &[], &[], 2),
            FetchContext::Error(SessionError::IdNotFound)
        );
        // Topic ids in a session opened without them.
        assert_eq!(
            s.new_context(true, id, 2, &[], &[], 2),
            FetchContext::Error(SessionError::TopicIdMismatch)
        );
        assert_eq!(
            SessionError::IdNotFound.kafka_code(),
            ResponseError::FetchSessionIdNotFound.code()
        );
        assert_eq!(
            SessionError::InvalidEpoch.kafka_code(),
            ResponseError::InvalidFetchSessionEpoch.code()
        );
    }

    #[test]
    fn incremental_fetches_add_alter_and_forget_partitions() {
        let s = FetchSessions::new(10);
        let id = open(&s, &[key("a", 0), key("a", 1)], false, 0);
        let (_, _, parts) = incremental(s.new_context(
            false,
            id,
            1,
            &[(key("a", 1), params(7)), (key("b", 0), params(3))],
            &[key("a", 0)],
            1,
        ));
        assert_eq!(
            parts,
            vec![(key("a", 1), params(7)), (key("b", 0), params(3))]
        );
        assert_eq!(s.stats().partitions, 2);
        // Forgetting every partition closes the session: the fetch is served without one.
        assert_eq!(
            s.new_context(false, id, 2, &[], &[key("a", 1), key("b", 0)], 2),
            FetchContext::Sessionless
        );
        assert_eq!(s.stats().sessions, 0);
        assert_eq!(s.stats().partitions, 0);
    }

    #[test]
    fn full_fetches_close_the_session_they_name() {
        let s = FetchSessions::new(10);
        let id = open(&s, &[key("a", 0)], false, 0);
        assert_eq!(
            s.new_context(false, id, FINAL_EPOCH, &[], &[], 1),
            FetchContext::Sessionless
        );
        assert_eq!(s.stats().sessions, 0);
        let id = open(&s, &[key("a", 0)], false, 0);
        assert_eq!(
            s.new_context(false, id, INITIAL_EPOCH, &[], &[], 1),
            FetchContext::Full
        );
        assert_eq!(s.stats().sessions, 0);
        assert_eq!(
            s.new_context(false, id, 1, &[], &[], 1),
            FetchContext::Error(SessionError::IdNotFound)
        );
    }

    #[test]
    fn an_incremental_answer_has_only_changed_partitions() {
        let s = FetchSessions::new(10);
        let keys = [key("a", 0), key("a", 1), key("a", 2), key("a", 3)];
        let id = open(&s, &keys, false, 0);
        let (_, epoch, parts) = incremental(s.new_context(false, id, 1, &[], &[], 1));
        // a-0 unchanged, a-1 has records, a-2's high watermark moved, a-3 has an error.
        let pds = [
            answer(0, 10),
            answer(100, 10),
            answer(0, 11),
            answer(0, 10).with_error_code(ResponseError::NotLeaderOrFollower.code()),
        ];
        let send = s
            .finish_incremental(id, epoch, parts.iter().map(|(k, _)| k).zip(&pds))
            .expect("epoch matches");
        assert_eq!(send, vec![false, true, true, true]);
        // The partition with records moved to the end, so it is read last next time.
        let (_, epoch, parts) = incremental(s.new_context(false, id, 2, &[], &[], 2));
        let order: Vec<i32> = parts.iter().map(|(k, _)| k.partition).collect();
        assert_eq!(order, vec![0, 2, 3, 1]);
        // Nothing changed this time except a-3, whose error cleared (it is sent again).
        let pds = [answer(0, 10), answer(0, 11), answer(0, 10), answer(0, 10)];
        let send = s
            .finish_incremental(id, epoch, parts.iter().map(|(k, _)| k).zip(&pds))
            .expect("epoch matches");
        assert_eq!(send, vec![false, false, true, false]);
        // An answer for an epoch the session has moved past is refused.
        assert_eq!(
            s.finish_incremental(id, epoch - 1, std::iter::empty()),
            Err(SessionError::InvalidEpoch)
        );
    }

    #[test]
    fn a_full_cache_evicts_stale_then_smaller_aged_sessions() {
        let s = FetchSessions::new(2);
        let small = open(&s, &[key("a", 0)], false, 0);
        let big = open(&s, &[key("a", 0), key("a", 1), key("a", 2)], false, 0);
        // Both are young: a new session cannot take a slot.
        assert_eq!(open(&s, &[key("b", 0), key("b", 1)], false, 1_000), 0);
        // Once both have been used after two minutes, the smaller may go for a bigger one.
        let later = EVICTION_MS + 10_000;
        incremental(s.new_context(false, small, 1, &[], &[], later));
        incremental(s.new_context(false, big, 1, &[], &[], later));
        assert_eq!(open(&s, &[key("c", 0)], false, later), 0, "not bigger");
        let two = open(&s, &[key("b", 0), key("b", 1)], false, later);
        assert_ne!(two, 0);
        assert_eq!(
            s.new_context(false, small, 2, &[], &[], later),
            FetchContext::Error(SessionError::IdNotFound)
        );
        assert_eq!(s.stats().evictions, 1);
        // A session unused for two minutes goes for anyone.
        let much_later = later + EVICTION_MS + 1;
        incremental(s.new_context(false, two, 1, &[], &[], much_later));
        assert_ne!(open(&s, &[key("d", 0)], false, much_later), 0);
        assert_eq!(
            s.new_context(false, big, 2, &[], &[], much_later),
            FetchContext::Error(SessionError::IdNotFound)
        );
        assert_eq!(s.stats().evictions, 2);
        assert_eq!(s.stats().sessions, 2);
        assert_eq!(s.stats().partitions, 3);
    }

    #[test]
    fn a_follower_session_evicts_a_young_consumer_session() {
        let s = FetchSessions::new(1);
        let consumer = open(&s, &[key("a", 0), key("a", 1)], false, 0);
        // Another consumer cannot, however big.
        assert_eq!(
            open(&s, &[key("b", 0), key("b", 1), key("b", 2)], false, 1),
            0
        );
        let follower = open(&s, &[key("c", 0)], true, 1);
        assert_ne!(follower, 0);
        assert_eq!(
            s.new_context(false, consumer, 1, &[], &[], 2),
            FetchContext::Error(SessionError::IdNotFound)
        );
        // A young follower session is not evicted by anyone.
        assert_eq!(open(&s, &[key("d", 0), key("d", 1)], true, 2), 0);
    }

    #[test]
    fn no_slots_means_no_sessions() {
        let s = FetchSessions::new(0);
        assert_eq!(open(&s, &[key("a", 0)], true, 0), INVALID_SESSION_ID);
        assert_eq!(s.stats().sessions, 0);
    }
}
