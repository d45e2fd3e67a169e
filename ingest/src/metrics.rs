//! The node's counters, exported by the admin HTTP server on `/metrics`, and
//! [`LogLimiter`], which keeps a flood of one event to a log line per interval.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tierlog_metadata::SharedClock;

/// Counters of the node, exported on `/metrics`.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    pub(crate) produce_requests: AtomicU64,
    pub(crate) produced_bytes: AtomicU64,
    pub(crate) produce_errors: AtomicU64,
    pub(crate) fetch_requests: AtomicU64,
    pub(crate) fetched_bytes: AtomicU64,
    /// Record bytes fetched by consumers (not followers), as leader or follower.
    pub(crate) consumer_fetched_bytes: AtomicU64,
    /// Record bytes fetched by consumers from partitions this node follows (KIP-392).
    pub(crate) follower_fetched_bytes: AtomicU64,
    /// Partitions of consumer fetches answered with a preferred read replica instead of
    /// records (KIP-392).
    pub(crate) preferred_replica_answers: AtomicU64,
    pub(crate) requests_total: AtomicU64,
    pub(crate) bad_requests: AtomicU64,
    pub(crate) tls_handshake_failures: AtomicU64,
    pub(crate) sasl_authentications: AtomicU64,
    pub(crate) sasl_authentication_failures: AtomicU64,
    pub(crate) reauthentications: AtomicU64,
    pub(crate) expired_sessions_closed: AtomicU64,
    pub(crate) isr_expands: AtomicU64,
    pub(crate) isr_shrinks: AtomicU64,
    pub(crate) cleaner_passes: AtomicU64,
    pub(crate) cleaner_read_bytes: AtomicU64,
    pub(crate) cleaner_written_bytes: AtomicU64,
    pub(crate) cleaner_removed_bytes: AtomicU64,
    pub(crate) cleaner_errors: AtomicU64,
    pub(crate) remote_cleaner_passes: AtomicU64,
    pub(crate) remote_cleaner_read_bytes: AtomicU64,
    pub(crate) remote_cleaner_written_bytes: AtomicU64,
    pub(crate) remote_cleaner_removed_bytes: AtomicU64,
    pub(crate) remote_cleaner_requests: AtomicU64,
    pub(crate) remote_cleaner_errors: AtomicU64,
    /// Requests (or parts of them) refused by the authorizer.
    pub(crate) authorization_denials: AtomicU64,
    /// Produce responses throttled by `producer_byte_rate`, and their throttle time (ms).
    pub(crate) produce_throttled: AtomicU64,
    pub(crate) produce_throttle_ms: AtomicU64,
    /// Consumer fetches throttled by `consumer_byte_rate`, and their throttle time (ms).
    pub(crate) fetch_throttled: AtomicU64,
    pub(crate) fetch_throttle_ms: AtomicU64,
    /// Requests throttled by `request_percentage`, and their throttle time (ms).
    pub(crate) request_throttled: AtomicU64,
    pub(crate) request_throttle_ms: AtomicU64,
    /// Connections closed at once: their address had `max_connections_per_ip` open.
    pub(crate) connections_refused: AtomicU64,
    /// Connections closed after a delay: their address was over `connection_creation_rate`.
    pub(crate) connections_throttled: AtomicU64,
    /// Failed accepts (out of descriptors, mostly); the listener backs off after each.
    pub(crate) accept_errors: AtomicU64,
    /// Connections accepted and closed at once because the node was out of descriptors.
    pub(crate) connections_shed: AtomicU64,
    /// Connections closed after `connections_max_idle` without a request.
    pub(crate) connections_idle_closed: AtomicU64,
    /// Connections closed because a request did not arrive whole within
    /// `request_read_timeout`.
    pub(crate) request_read_timeouts: AtomicU64,
    /// Requests that waited for room in `queued_max_request_bytes` before being read.
    pub(crate) request_memory_waits: AtomicU64,
    /// Topics not auto-created: their client address was over
    /// `auto_create_topics_per_ip_per_minute`.
    pub(crate) auto_create_refused: AtomicU64,
    /// Client connections open now (a gauge).
    pub(crate) connections_open: AtomicU64,
}

impl Metrics {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// Keeps a flood of one kind of event to one log line per `interval`: [`LogLimiter::check`]
/// says whether to log now and how many events were passed over since the last line, so the
/// line can carry the count (the metrics count every event).
#[derive(Debug)]
pub(crate) struct LogLimiter {
    interval: Duration,
    clock: SharedClock,
    /// When a line was last logged, and the events passed over since.
    state: Mutex<(Option<Instant>, u64)>,
}

impl LogLimiter {
    pub(crate) fn new(interval: Duration, clock: SharedClock) -> LogLimiter {
        LogLimiter {
            interval,
            clock,
            state: Mutex::new((None, 0)),
        }
    }

    /// Records one event. `Some(n)`: log it now, with `n` more passed over since the last
    /// line; `None`: stay quiet.
    pub(crate) fn check(&self) -> Option<u64> {
        let now = self.clock.now();
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let (last, skipped) = &mut *state;
        if last.is_some_and(|t| now.saturating_duration_since(t) < self.interval) {
            *skipped += 1;
            return None;
        }
        *last = Some(now);
        Some(std::mem::take(skipped))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tierlog_metadata::ManualClock;

    #[test]
    fn a_flood_logs_once_per_interval_with_the_count() {
        let clock = ManualClock::new();
        let l = LogLimiter::new(Duration::from_secs(10), clock.clone());
        assert_eq!(l.check(), Some(0));
        for _ in 0..1000 {
            assert_eq!(l.check(), None);
        }
        clock.advance(Duration::from_secs(10));
        assert_eq!(l.check(), Some(1000));
        assert_eq!(l.check(), None);
    }
}
