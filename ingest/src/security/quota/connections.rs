//! Connection limits per client IP, as Kafka's `ConnectionQuotas`: at most
//! `max_connections_per_ip` open connections from one address (with per-address overrides),
//! and at most `connection_creation_rate` new connections a second from one address (the
//! quota of its `ip` entity, else of the default `ip` entity).
//!
//! The accept loop asks [`ConnectionLimiter::try_open`] for each new connection. A connection
//! over the count limit is closed at once; one over the rate is held for the throttle time and
//! then closed (Kafka delays the close so a client does not reconnect in a tight loop), and is
//! not counted against the rate. An accepted connection holds a [`ConnectionGuard`] that gives
//! its slot back when dropped.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tierlog_metadata::SharedClock;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::info;

use super::rate::{RateConfig, SampledRate, throttle_ms};
use super::{CONNECTION_CREATION_RATE, QuotaTable};
use crate::metrics::{LogLimiter, Metrics};

/// How often a refused connection is logged (the rest are only counted).
pub(crate) const LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The address already has `max` connections open.
    TooMany { max: usize },
    /// The address opens connections faster than its `connection_creation_rate`; close after
    /// `delay`.
    Throttled { delay: Duration },
}

/// Open connections per address, shared with the guards that give them back.
type Counts = Arc<Mutex<HashMap<IpAddr, usize>>>;

/// One accepted connection's slot in its address's count; released on drop.
#[derive(Debug)]
pub(crate) struct ConnectionGuard {
    counts: Counts,
    ip: IpAddr,
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = counts.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

/// Per-IP connection count limits and connection-creation-rate quotas.
#[derive(Debug)]
pub(crate) struct ConnectionLimiter {
    /// Kafka's max.connections.per.ip.
    per_ip: usize,
    /// Kafka's max.connections.per.ip.overrides.
    overrides: HashMap<IpAddr, usize>,
    counts: Counts,
    table: Arc<QuotaTable>,
    cfg: RateConfig,
    /// Connection-rate sensors by address (only addresses with a rate quota).
    rates: Mutex<HashMap<IpAddr, SampledRate>>,
    clock: SharedClock,
    origin: Instant,
    metrics: Arc<Metrics>,
    /// A flood of refusals logs once per [`LOG_INTERVAL`].
    log: LogLimiter,
}

impl ConnectionLimiter {
    pub(super) fn new(
        per_ip: usize,
        overrides: HashMap<IpAddr, usize>,
        table: Arc<QuotaTable>,
        cfg: RateConfig,
        clock: SharedClock,
        metrics: Arc<Metrics>,
    ) -> ConnectionLimiter {
        ConnectionLimiter {
            per_ip,
            overrides,
            counts: Counts::default(),
            table,
            cfg,
            rates: Mutex::new(HashMap::new()),
            origin: clock.now(),
            log: LogLimiter::new(LOG_INTERVAL, clock.clone()),
            clock,
            metrics,
        }
    }

    /// Admits a new connection from `ip`, or says why not (and counts the refusal). Kafka's
    /// order: the rate is checked (and the connection recorded) first, then the count.
    pub(crate) fn try_open(&self, ip: IpAddr) -> Result<ConnectionGuard, Refused> {
        if let Some(rate) = self.table.ip_quota(CONNECTION_CREATION_RATE, ip) {
            let now = u64::try_from(
                self.clock
                    .now()
                    .saturating_duration_since(self.origin)
                    .as_millis(),
            )
            .unwrap_or(u64::MAX);
            let mut rates = self.rates.lock().unwrap_or_else(|e| e.into_inner());
            let sensor = rates.entry(ip).or_default();
            sensor.record(self.cfg, 1.0, now);
            let observed = sensor.rate(self.cfg, now);
            let ms = throttle_ms(observed, rate, sensor.window_size_ms(self.cfg, now));
            if ms > 0 {
                // Not accepted, so not counted.
                sensor.record(self.cfg, -1.0, now);
                Metrics::add(&self.metrics.connections_throttled, 1);
                return Err(Refused::Throttled {
                    delay: Duration::from_millis(ms),
                });
            }
        }
        let max = self.overrides.get(&ip).copied().unwrap_or(self.per_ip);
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let n = counts.entry(ip).or_insert(0);
        if *n >= max {
            if *n == 0 {
                counts.remove(&ip);
            }
            Metrics::add(&self.metrics.connections_refused, 1);
            return Err(Refused::TooMany { max });
        }
        *n += 1;
        Ok(ConnectionGuard {
            counts: self.counts.clone(),
            ip,
        })
    }

    /// Open connections from `ip`.
    pub(crate) fn open_from(&self, ip: IpAddr) -> usize {
        let counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        counts.get(&ip).copied().unwrap_or(0)
    }

    /// Closes a refused connection: at once when its address has too many open, after the
    /// throttle delay (unless the node stops first) when it opens them too fast. Logs at most
    /// once per [`LOG_INTERVAL`]; the metrics count every one.
    pub(crate) fn refuse(
        &self,
        stream: TcpStream,
        peer: SocketAddr,
        refused: Refused,
        cancel: &CancellationToken,
        tracker: &TaskTracker,
    ) {
        if let Some(more) = self.log.check() {
            match refused {
                Refused::TooMany { max } => info!(
                    %peer,
                    max, more, "rejected connection: the address already has the maximum open"
                ),
                Refused::Throttled { delay } => info!(
                    %peer,
                    ?delay, more, "throttled connection: the address exceeds connection_creation_rate"
                ),
            }
        }
        match refused {
            Refused::TooMany { .. } => drop(stream),
            Refused::Throttled { delay } => {
                let cancel = cancel.clone();
                tracker.spawn(async move {
                    tokio::select! {
                        () = cancel.cancelled() => {}
                        () = tokio::time::sleep(delay) => {}
                    }
                    drop(stream);
                });
            }
        }
    }
}

/// Parses Kafka's `max.connections.per.ip.overrides`: `ip:n,ip:n` (an IPv6 address may be
/// bracketed, `[::1]:n`; the count follows the last colon).
pub(crate) fn parse_overrides(s: &str) -> Result<HashMap<IpAddr, usize>, String> {
    let mut out = HashMap::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (ip, n) = part
            .rsplit_once(':')
            .ok_or_else(|| format!("`{part}` is not ip:count"))?;
        let ip = ip.trim_start_matches('[').trim_end_matches(']');
        let ip: IpAddr = ip
            .parse()
            .map_err(|e| format!("`{ip}` is not an IP address: {e}"))?;
        let n: usize = n
            .parse()
            .map_err(|e| format!("`{n}` is not a connection count: {e}"))?;
        out.insert(ip, n);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use tierlog_metadata::{ClientQuota, EntityName, ManualClock, QuotaEntity};

    fn limiter(per_ip: usize, overrides: &str, clock: Arc<ManualClock>) -> ConnectionLimiter {
        ConnectionLimiter::new(
            per_ip,
            parse_overrides(overrides).expect("overrides"),
            Arc::new(QuotaTable::default()),
            RateConfig::default(),
            clock,
            Arc::new(Metrics::default()),
        )
    }

    #[test]
    fn the_count_limit_refuses_the_next_connection_until_one_closes() {
        let l = limiter(2, "10.0.0.9:0, [::1]:3", ManualClock::new());
        let ip: IpAddr = "127.0.0.1".parse().expect("ip");
        let a = l.try_open(ip).expect("1st");
        let _b = l.try_open(ip).expect("2nd");
        assert_eq!(
            l.try_open(ip).expect_err("3rd"),
            Refused::TooMany { max: 2 }
        );
        assert_eq!(l.open_from(ip), 2);
        drop(a);
        let _c = l.try_open(ip).expect("after a close");
        // Another address has its own count; overrides replace the default.
        let _d = l.try_open("127.0.0.2".parse().expect("ip")).expect("other");
        assert!(l.try_open("10.0.0.9".parse().expect("ip")).is_err());
        let v6: IpAddr = "::1".parse().expect("ip");
        let _g: Vec<_> = (0..3).map(|_| l.try_open(v6).expect("v6")).collect();
        assert!(l.try_open(v6).is_err());
        assert_eq!(
            l.metrics
                .connections_refused
                .load(std::sync::atomic::Ordering::Relaxed),
            3
        );
    }

    #[test]
    fn the_creation_rate_throttles_and_does_not_count_refusals() {
        let clock = ManualClock::new();
        let l = limiter(usize::MAX, "", clock.clone());
        l.table.replace(vec![ClientQuota {
            entity: QuotaEntity::ip(EntityName::Default),
            values: BTreeMap::from([(CONNECTION_CREATION_RATE.to_owned(), 1.0)]),
        }]);
        let ip: IpAddr = "127.0.0.1".parse().expect("ip");
        // 1/s over the padded 10 s window: 10 connections at once are within it.
        let guards: Vec<_> = (0..10).map(|_| l.try_open(ip).expect("within")).collect();
        match l.try_open(ip) {
            Err(Refused::Throttled { delay }) => assert_eq!(delay, Duration::from_secs(1)),
            other => panic!("expected a throttle, got {other:?}"),
        }
        // Refusals were taken back: the next try is throttled the same, not longer.
        assert_eq!(
            l.try_open(ip).expect_err("still"),
            Refused::Throttled {
                delay: Duration::from_secs(1)
            }
        );
        // Once the burst's window has aged out, connections are accepted again.
        clock.advance(Duration::from_secs(11));
        l.try_open(ip).expect("the rate fell back");
        drop(guards);
    }

    #[test]
    fn overrides_parse_or_name_the_bad_part() {
        assert_eq!(parse_overrides("").expect("empty").len(), 0);
        assert!(parse_overrides("host:1").is_err());
        assert!(parse_overrides("1.2.3.4").is_err());
        assert!(parse_overrides("1.2.3.4:x").is_err());
    }
}
