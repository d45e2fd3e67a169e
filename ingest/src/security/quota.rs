//! Client quotas (byte rates, request time, connection rate) and throttling, as Kafka's
//! `ClientQuotaManager`, `ClientRequestQuotaManager` and `ConnectionQuotas` do them.
//!
//! Lifecycle: the quotas live in the metadata store (`tierlog_metadata::QuotaRegistry`,
//! written by AlterClientQuotas). Every node keeps them in a [`QuotaTable`], filled when the
//! broker opens and kept current by [`run_sync`] (list, then watch the prefix; any change
//! re-lists), so a change made on any node is in force on every node within a watch round
//! trip. Each request then records what it used against the quota that applies to its
//! (user, client id) — found by Kafka's precedence, most specific first — in a sensor keyed
//! as Kafka keys it, and gets a throttle time when the sensor's sampled rate is above the
//! quota. Throttling is Kafka's since 2.0 (KIP-219): the response goes out at once carrying
//! `throttle_time_ms`, and the connection is muted for that long (the reader does not read the
//! next request), so a client that ignores the field is held to its quota too.
//!
//! - `rate` — the sampled-rate arithmetic and Kafka's throttle-time formula.
//! - `connections` — the per-IP connection count limit and connection-creation-rate quota.
//! - `auto_create` — the per-IP allowance of auto-created topics.

mod auto_create;
mod connections;
mod rate;

pub(crate) use auto_create::AutoCreateLimiter;
pub(crate) use connections::{ConnectionLimiter, LOG_INTERVAL, parse_overrides};
pub(crate) use rate::RateConfig;

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tracing::debug;

use tierlog_metadata::SharedClock;
use tierlog_metadata::{ClientQuota, EntityName, QUOTAS_PREFIX, QuotaEntity, QuotaRegistry};

use super::Session;
use crate::metrics::Metrics;
use rate::{SampledRate, throttle_ms};

/// Bytes/s a (user, client id) may produce to this node.
pub(crate) const PRODUCER_BYTE_RATE: &str = "producer_byte_rate";
/// Bytes/s a (user, client id) may fetch from this node.
pub(crate) const CONSUMER_BYTE_RATE: &str = "consumer_byte_rate";
/// Percent of one request-handling thread a (user, client id) may use per window.
pub(crate) const REQUEST_PERCENTAGE: &str = "request_percentage";
/// Partition mutations/s (topic creations, partition additions, deletions); stored and
/// described, not enforced yet.
pub(crate) const CONTROLLER_MUTATION_RATE: &str = "controller_mutation_rate";
/// New connections/s an IP may open.
pub(crate) const CONNECTION_CREATION_RATE: &str = "connection_creation_rate";

/// The keys a user, client-id or user+client-id entity may carry, and whether each must be a
/// whole number (Kafka's LONG type) — Kafka's `QuotaConfig.userAndClientQuotaConfigs()`.
pub(crate) const CLIENT_KEYS: &[(&str, bool)] = &[
    (PRODUCER_BYTE_RATE, true),
    (CONSUMER_BYTE_RATE, true),
    (REQUEST_PERCENTAGE, false),
    (CONTROLLER_MUTATION_RATE, false),
];
/// The keys an ip entity may carry (Kafka's `QuotaConfig.ipConfigs()`; an INT).
pub(crate) const IP_KEYS: &[(&str, bool)] = &[(CONNECTION_CREATION_RATE, true)];

/// Sensors idle this long are dropped (Kafka's inactive sensor expiration, one hour).
const SENSOR_EXPIRY: Duration = Duration::from_secs(3600);
/// How often idle sensors are looked for.
const SENSOR_SWEEP: Duration = Duration::from_secs(60);

/// Every quota this node knows, by entity: a copy of the store, replaced whole on each
/// re-list. Readers take the read lock for one lookup; writes are rare (quota changes).
#[derive(Debug, Default)]
pub(crate) struct QuotaTable {
    entries: RwLock<HashMap<QuotaEntity, BTreeMap<String, f64>>>,
}

impl QuotaTable {
    /// Replaces the table with `quotas` (a full listing).
    pub(crate) fn replace(&self, quotas: Vec<ClientQuota>) {
        let next = quotas.into_iter().map(|q| (q.entity, q.values)).collect();
        *self.entries.write().unwrap_or_else(|e| e.into_inner()) = next;
    }

    /// Every entity and its values.
    pub(crate) fn snapshot(&self) -> Vec<(QuotaEntity, BTreeMap<String, f64>)> {
        let t = self.entries.read().unwrap_or_else(|e| e.into_inner());
        t.iter().map(|(e, v)| (e.clone(), v.clone())).collect()
    }

    /// The quota `key` of the most specific entity that sets it for `user` and `client`, and
    /// that entity, in Kafka's precedence order:
    /// `/users/<u>/clients/<c>`, `/users/<u>/clients/<default>`, `/users/<u>`,
    /// `/users/<default>/clients/<c>`, `/users/<default>/clients/<default>`,
    /// `/users/<default>`, `/clients/<c>`, `/clients/<default>`.
    pub(crate) fn client_quota(
        &self,
        key: &str,
        user: &str,
        client: &str,
    ) -> Option<(QuotaEntity, f64)> {
        let t = self.entries.read().unwrap_or_else(|e| e.into_inner());
        if t.is_empty() {
            return None;
        }
        let u = || EntityName::Named(user.to_owned());
        let c = || EntityName::Named(client.to_owned());
        let d = || EntityName::Default;
        let order = [
            QuotaEntity::user_client(u(), c()),
            QuotaEntity::user_client(u(), d()),
            QuotaEntity::user(u()),
            QuotaEntity::user_client(d(), c()),
            QuotaEntity::user_client(d(), d()),
            QuotaEntity::user(d()),
            QuotaEntity::client(c()),
            QuotaEntity::client(d()),
        ];
        order
            .into_iter()
            .find_map(|e| t.get(&e).and_then(|v| v.get(key).copied()).map(|q| (e, q)))
    }

    /// The quota `key` for connections from `ip`: `/ips/<ip>`, else `/ips/<default>`.
    pub(crate) fn ip_quota(&self, key: &str, ip: IpAddr) -> Option<f64> {
        let t = self.entries.read().unwrap_or_else(|e| e.into_inner());
        [
            QuotaEntity::ip(EntityName::Named(ip.to_string())),
            QuotaEntity::ip(EntityName::Default),
        ]
        .iter()
        .find_map(|e| t.get(e).and_then(|v| v.get(key).copied()))
    }
}

/// Which quota a [`ClientQuotaManager`] enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum QuotaKind {
    /// `producer_byte_rate`: bytes of Produce requests.
    Produce,
    /// `consumer_byte_rate`: bytes of Fetch responses to consumers.
    Fetch,
    /// `request_percentage`: time spent handling requests.
    Request,
}

impl QuotaKind {
    fn key(self) -> &'static str {
        match self {
            QuotaKind::Produce => PRODUCER_BYTE_RATE,
            QuotaKind::Fetch => CONSUMER_BYTE_RATE,
            QuotaKind::Request => REQUEST_PERCENTAGE,
        }
    }
}

/// One (user, client id) sensor: its rate and when it was last used.
#[derive(Debug, Default)]
struct Sensor {
    rate: SampledRate,
    last_ms: u64,
}

/// Sensors by (user tag, client tag), and when idle ones were last swept (ms).
type Sensors = (HashMap<(String, String), Sensor>, u64);

/// The sensors of one quota kind, keyed as Kafka's metric tags: the user and/or client id of
/// the entity whose quota applies (`""` for a component the entity does not have), so every
/// client sharing a `/clients/c1` quota shares one sensor while `/clients/<default>` gives
/// each client id its own.
#[derive(Debug)]
pub(crate) struct ClientQuotaManager {
    kind: QuotaKind,
    table: Arc<QuotaTable>,
    cfg: RateConfig,
    /// The longest throttle this manager hands out (Kafka caps request-time throttles at one
    /// window; byte-rate throttles are uncapped but kept within an i32).
    max_throttle_ms: u64,
    /// Sensors by (user tag, client tag), and when idle ones were last swept. A plain mutex:
    /// each request holds it for one record-and-measure.
    sensors: Mutex<Sensors>,
    clock: SharedClock,
    /// The origin of the millisecond times the rates use.
    origin: Instant,
}

impl ClientQuotaManager {
    fn new(kind: QuotaKind, table: Arc<QuotaTable>, cfg: RateConfig, clock: SharedClock) -> Self {
        let max_throttle_ms = match kind {
            QuotaKind::Request => cfg.window_ms,
            QuotaKind::Produce | QuotaKind::Fetch => i32::MAX as u64,
        };
        ClientQuotaManager {
            kind,
            table,
            cfg,
            max_throttle_ms,
            sensors: Mutex::new((HashMap::new(), 0)),
            origin: clock.now(),
            clock,
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(
            self.clock
                .now()
                .saturating_duration_since(self.origin)
                .as_millis(),
        )
        .unwrap_or(u64::MAX)
    }

    /// The quota that applies to `user` and `client`, with its sensor key.
    fn lookup(&self, user: &str, client: &str) -> Option<((String, String), f64)> {
        let (entity, bound) = self.table.client_quota(self.kind.key(), user, client)?;
        let tags = (
            entity.user.map(|_| user.to_owned()).unwrap_or_default(),
            entity
                .client_id
                .map(|_| client.to_owned())
                .unwrap_or_default(),
        );
        Some((tags, bound))
    }

    /// The quota that applies to `user` and `client`, if any.
    pub(crate) fn quota(&self, user: &str, client: &str) -> Option<f64> {
        self.lookup(user, client).map(|(_, q)| q)
    }

    /// Records `value` for `user` and `client` and returns how long, in milliseconds, the
    /// client must wait for its rate to fall back to its quota (0 when within it, or when no
    /// quota applies — then nothing is recorded).
    pub(crate) fn record(&self, user: &str, client: &str, value: f64) -> u64 {
        let Some((tags, bound)) = self.lookup(user, client) else {
            return 0;
        };
        let now = self.now_ms();
        let mut guard = self.sensors.lock().unwrap_or_else(|e| e.into_inner());
        let (sensors, swept) = &mut *guard;
        if now.saturating_sub(*swept) >= SENSOR_SWEEP.as_millis() as u64 {
            let expiry = SENSOR_EXPIRY.as_millis() as u64;
            sensors.retain(|_, s| now.saturating_sub(s.last_ms) < expiry);
            *swept = now;
        }
        let s = sensors.entry(tags).or_default();
        s.last_ms = now;
        s.rate.record(self.cfg, value, now);
        let observed = s.rate.rate(self.cfg, now);
        let window = s.rate.window_size_ms(self.cfg, now);
        throttle_ms(observed, bound, window).min(self.max_throttle_ms)
    }

    /// Takes back a value recorded for `user` and `client` (a throttled fetch returns nothing,
    /// so what it would have returned must not count: Kafka's `unrecordQuotaSensor`).
    pub(crate) fn unrecord(&self, user: &str, client: &str, value: f64) {
        let Some((tags, _)) = self.lookup(user, client) else {
            return;
        };
        let now = self.now_ms();
        let mut guard = self.sensors.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = guard.0.get_mut(&tags) {
            s.rate.record(self.cfg, -value, now);
        }
    }

    /// The most that can be recorded at once without certainly being throttled: the quota
    /// times the `samples - 1` windows a fresh rate is spread over (Kafka's
    /// `maxValueInQuotaWindow`, which caps a consumer's fetch size). `None` without a quota.
    pub(crate) fn max_value_in_window(&self, user: &str, client: &str) -> Option<f64> {
        let q = self.quota(user, client)?;
        Some(q * self.cfg.samples.saturating_sub(1) as f64 * self.cfg.window_ms as f64 / 1000.0)
    }
}

/// The node's quota managers, one per kind as in Kafka, over one shared [`QuotaTable`].
#[derive(Debug)]
pub(crate) struct QuotaManager {
    pub(crate) table: Arc<QuotaTable>,
    pub(crate) produce: ClientQuotaManager,
    pub(crate) fetch: ClientQuotaManager,
    pub(crate) request: ClientQuotaManager,
    pub(crate) connections: ConnectionLimiter,
    /// Topics each client address may auto-create a minute.
    auto_create: AutoCreateLimiter,
    /// Where the quotas are stored; `None` in unit tests that set the table by hand.
    registry: Option<QuotaRegistry>,
    metrics: Arc<Metrics>,
    clock: SharedClock,
}

impl QuotaManager {
    /// Managers sampling with `cfg`, connection limits `per_ip` (default) and `overrides`.
    pub(crate) fn new(
        cfg: RateConfig,
        per_ip: usize,
        overrides: HashMap<IpAddr, usize>,
        registry: Option<QuotaRegistry>,
        clock: SharedClock,
        metrics: Arc<Metrics>,
    ) -> QuotaManager {
        let table = Arc::new(QuotaTable::default());
        let m = |kind| ClientQuotaManager::new(kind, table.clone(), cfg, clock.clone());
        QuotaManager {
            produce: m(QuotaKind::Produce),
            fetch: m(QuotaKind::Fetch),
            request: m(QuotaKind::Request),
            connections: ConnectionLimiter::new(
                per_ip,
                overrides,
                table.clone(),
                cfg,
                clock.clone(),
                metrics.clone(),
            ),
            auto_create: AutoCreateLimiter::new(usize::MAX, clock.clone()),
            table,
            registry,
            metrics,
            clock,
        }
    }

    /// Allows each client address `per_minute` auto-created topics a minute (unlimited
    /// without this).
    pub(crate) fn with_auto_create_allowance(mut self, per_minute: usize) -> QuotaManager {
        self.auto_create = AutoCreateLimiter::new(per_minute, self.clock.clone());
        self
    }

    /// Takes one auto-created topic from `ip`'s allowance; false (and counted) when it is used
    /// up for this minute.
    pub(crate) fn may_auto_create(&self, ip: IpAddr) -> bool {
        let ok = self.auto_create.try_take(ip);
        if !ok {
            Metrics::add(&self.metrics.auto_create_refused, 1);
        }
        ok
    }

    /// Gives back an allowance taken for a topic that existed already.
    pub(crate) fn auto_create_not_needed(&self, ip: IpAddr) {
        self.auto_create.give_back(ip);
    }

    /// The store's quotas, if this manager has a store.
    pub(crate) fn registry(&self) -> Option<&QuotaRegistry> {
        self.registry.as_ref()
    }

    /// Re-lists the quotas from the store into the table.
    pub(crate) async fn refresh(&self) -> tierlog_metadata::Result<()> {
        if let Some(r) = &self.registry {
            self.table.replace(r.list().await?);
        }
        Ok(())
    }

    /// Mutes `session` for `ms` milliseconds and counts it under `kind`.
    pub(crate) fn throttle(&self, session: &Session, kind: QuotaKind, ms: u64) {
        if ms == 0 {
            return;
        }
        session.mute_until(self.clock.now() + Duration::from_millis(ms));
        let (n, total) = self.counters(kind);
        Metrics::add(n, 1);
        Metrics::add(total, ms);
        debug!(?kind, throttle_ms = ms, principal = %session.principal, "client throttled");
    }

    fn counters(&self, kind: QuotaKind) -> (&AtomicU64, &AtomicU64) {
        let m = &self.metrics;
        match kind {
            QuotaKind::Produce => (&m.produce_throttled, &m.produce_throttle_ms),
            QuotaKind::Fetch => (&m.fetch_throttled, &m.fetch_throttle_ms),
            QuotaKind::Request => (&m.request_throttled, &m.request_throttle_ms),
        }
    }

    /// A Produce of `bytes` from `session`/`client`: records against `producer_byte_rate`,
    /// mutes the connection if over, and returns the throttle time for the response.
    pub(crate) fn on_produce(&self, session: &Session, client: &str, bytes: usize) -> i32 {
        let ms = self
            .produce
            .record(&session.principal.name, client, bytes as f64);
        self.throttle(session, QuotaKind::Produce, ms);
        clamp_i32(ms)
    }

    /// The most bytes a consumer fetch of `session`/`client` should return (Kafka caps the
    /// fetch's max_bytes with it), if a consumer byte rate applies.
    pub(crate) fn fetch_limit(&self, session: &Session, client: &str) -> Option<usize> {
        self.fetch
            .max_value_in_window(&session.principal.name, client)
            .map(|v| v.clamp(1.0, usize::MAX as f64) as usize)
    }

    /// A consumer fetch about to return `bytes` after `handling` of work: records the bytes
    /// against `consumer_byte_rate` and the time against `request_percentage`, and, if either
    /// is over, mutes the connection and returns the throttle time — the caller then answers
    /// with an empty response, and the bytes are taken back (Kafka's throttled fetch).
    pub(crate) fn on_fetch(
        &self,
        session: &Session,
        client: &str,
        bytes: usize,
        handling: Duration,
    ) -> i32 {
        let user = &session.principal.name;
        let request = self.request.record(user, client, percent_seconds(handling));
        let bandwidth = self.fetch.record(user, client, bytes as f64);
        let ms = request.max(bandwidth);
        if ms > 0 {
            self.fetch.unrecord(user, client, bytes as f64);
            let kind = if bandwidth > request {
                QuotaKind::Fetch
            } else {
                QuotaKind::Request
            };
            self.throttle(session, kind, ms);
        }
        clamp_i32(ms)
    }

    /// A request that took `handling` to serve: records it against `request_percentage` and
    /// returns the throttle time (the caller mutes when the response goes out).
    pub(crate) fn on_request(&self, session: &Session, client: &str, handling: Duration) -> u64 {
        self.request
            .record(&session.principal.name, client, percent_seconds(handling))
    }
}

/// Request time as Kafka's request quota records it: percent of one thread for a second.
fn percent_seconds(d: Duration) -> f64 {
    d.as_secs_f64() * 100.0
}

fn clamp_i32(ms: u64) -> i32 {
    i32::try_from(ms).unwrap_or(i32::MAX)
}

/// Keeps `quotas`' table equal to the store until `cancel` ([`crate::mirror`]).
pub(crate) async fn run_sync(quotas: Arc<QuotaManager>, cancel: CancellationToken) {
    let Some(registry) = quotas.registry().cloned() else {
        return;
    };
    let store = registry.store().clone();
    crate::mirror::follow_prefix(
        store,
        QUOTAS_PREFIX,
        "client quotas",
        || quotas.refresh(),
        cancel,
    )
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::Principal;
    use tierlog_metadata::{Clock, ManualClock};

    fn named(s: &str) -> EntityName {
        EntityName::Named(s.to_owned())
    }

    fn quota(entity: QuotaEntity, key: &str, v: f64) -> ClientQuota {
        ClientQuota {
            entity,
            values: BTreeMap::from([(key.to_owned(), v)]),
        }
    }

    fn manager(clock: Arc<ManualClock>) -> QuotaManager {
        QuotaManager::new(
            RateConfig::default(),
            i32::MAX as usize,
            HashMap::new(),
            None,
            clock,
            Arc::new(Metrics::default()),
        )
    }

    #[test]
    fn precedence_is_kafkas() {
        let t = QuotaTable::default();
        let k = PRODUCER_BYTE_RATE;
        let d = || EntityName::Default;
        // Each level, most specific first; removing the winner exposes the next.
        let levels = [
            QuotaEntity::user_client(named("u"), named("c")),
            QuotaEntity::user_client(named("u"), d()),
            QuotaEntity::user(named("u")),
            QuotaEntity::user_client(d(), named("c")),
            QuotaEntity::user_client(d(), d()),
            QuotaEntity::user(d()),
            QuotaEntity::client(named("c")),
            QuotaEntity::client(d()),
        ];
        for start in 0..levels.len() {
            let list = levels[start..]
                .iter()
                .enumerate()
                .map(|(i, e)| quota(e.clone(), k, (start + i) as f64))
                .collect();
            t.replace(list);
            let (entity, v) = t.client_quota(k, "u", "c").expect("a quota applies");
            assert_eq!(entity, levels[start]);
            assert_eq!(v, start as f64);
        }
        // Another user and client fall through to the defaults only.
        t.replace(levels.iter().map(|e| quota(e.clone(), k, 1.0)).collect());
        let (entity, _) = t.client_quota(k, "x", "y").expect("default");
        assert_eq!(entity, QuotaEntity::user_client(d(), d()));
        // A quota on another key does not count.
        assert!(t.client_quota(CONSUMER_BYTE_RATE, "u", "c").is_none());
    }

    #[test]
    fn ip_quotas_fall_back_to_the_default() {
        let t = QuotaTable::default();
        t.replace(vec![
            quota(
                QuotaEntity::ip(named("10.0.0.1")),
                CONNECTION_CREATION_RATE,
                5.0,
            ),
            quota(
                QuotaEntity::ip(EntityName::Default),
                CONNECTION_CREATION_RATE,
                2.0,
            ),
        ]);
        let k = CONNECTION_CREATION_RATE;
        assert_eq!(t.ip_quota(k, "10.0.0.1".parse().expect("ip")), Some(5.0));
        assert_eq!(t.ip_quota(k, "10.0.0.2".parse().expect("ip")), Some(2.0));
    }

    #[test]
    fn produce_over_the_quota_is_throttled_by_kafkas_formula() {
        let clock = ManualClock::new();
        let q = manager(clock.clone());
        q.table.replace(vec![quota(
            QuotaEntity::client(named("c1")),
            PRODUCER_BYTE_RATE,
            1000.0,
        )]);
        let session = Session::for_tests(Principal::user("alice"));
        // 10 000 bytes at once is exactly the quota over the padded 10 s window.
        assert_eq!(q.on_produce(&session, "c1", 10_000), 0);
        assert!(session.muted_until().is_none());
        // 5 000 more: 15 000 / 10 s = 1500/s, half over → (1500-1000)/1000 × 10 s = 5 s.
        assert_eq!(q.on_produce(&session, "c1", 5_000), 5_000);
        assert_eq!(
            session.muted_until(),
            Some(clock.now() + Duration::from_secs(5))
        );
        // Another client id has no quota and is never throttled.
        assert_eq!(q.on_produce(&session, "c2", 1 << 30), 0);
        // After the history drains, the client is within its quota again.
        clock.advance(Duration::from_secs(12));
        assert_eq!(q.on_produce(&session, "c1", 1_000), 0);
        assert_eq!(
            q.metrics
                .produce_throttled
                .load(std::sync::atomic::Ordering::Relaxed),
            1
        );
    }

    #[test]
    fn a_steady_producer_converges_to_its_quota() {
        // A client that sends, waits out each throttle, and sends again averages the quota.
        let clock = ManualClock::new();
        let q = manager(clock.clone());
        q.table.replace(vec![quota(
            QuotaEntity::client(EntityName::Default),
            PRODUCER_BYTE_RATE,
            1_000_000.0,
        )]);
        let session = Session::for_tests(Principal::anonymous());
        // The first ten windows' worth goes through at once (a fresh rate is spread over the
        // whole history), so measure after the start: from 30 s to 90 s.
        let start = clock.now();
        let mut sent = 0u64;
        while clock.now() - start < Duration::from_secs(90) {
            let ms = q.on_produce(&session, "any", 100_000);
            if clock.now() - start >= Duration::from_secs(30) {
                sent += 100_000;
            }
            clock.advance(Duration::from_millis(10 + u64::try_from(ms).expect("ms")));
        }
        let rate = sent as f64 / 60.0;
        assert!((rate - 1_000_000.0).abs() / 1_000_000.0 < 0.1, "{rate}");
    }

    #[test]
    fn default_client_quota_gives_each_client_its_own_sensor() {
        let clock = ManualClock::new();
        let q = manager(clock);
        q.table.replace(vec![quota(
            QuotaEntity::client(EntityName::Default),
            PRODUCER_BYTE_RATE,
            1000.0,
        )]);
        let s = Session::for_tests(Principal::anonymous());
        assert_eq!(q.on_produce(&s, "a", 10_000), 0);
        // "b" is not charged for "a"'s bytes.
        assert_eq!(q.on_produce(&s, "b", 10_000), 0);
        assert!(q.on_produce(&s, "a", 1_000) > 0);
    }

    #[test]
    fn a_throttled_fetch_is_taken_back() {
        let clock = ManualClock::new();
        let q = manager(clock);
        q.table.replace(vec![quota(
            QuotaEntity::user(named("bob")),
            CONSUMER_BYTE_RATE,
            1000.0,
        )]);
        let s = Session::for_tests(Principal::user("bob"));
        assert_eq!(q.fetch_limit(&s, "any"), Some(10_000));
        assert_eq!(q.on_fetch(&s, "any", 10_000, Duration::ZERO), 0);
        let ms = q.on_fetch(&s, "any", 10_000, Duration::ZERO);
        assert_eq!(ms, 10_000);
        // The throttled fetch's bytes did not count: the same fetch is throttled the same.
        assert_eq!(q.on_fetch(&s, "any", 10_000, Duration::ZERO), 10_000);
    }

    #[test]
    fn request_time_throttles_are_capped_at_one_window() {
        let clock = ManualClock::new();
        let q = manager(clock);
        q.table.replace(vec![quota(
            QuotaEntity::client(named("c")),
            REQUEST_PERCENTAGE,
            10.0,
        )]);
        let s = Session::for_tests(Principal::anonymous());
        // 10 % of a thread over the padded 10 s window is 1 s of handling.
        assert_eq!(q.on_request(&s, "c", Duration::from_millis(1000)), 0);
        assert_eq!(q.on_request(&s, "c", Duration::from_secs(100)), 1000);
    }
}
