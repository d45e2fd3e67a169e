//! The node's counters, exported by the admin HTTP server on `/metrics`.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters of the node, exported on `/metrics`.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    pub(crate) produce_requests: AtomicU64,
    pub(crate) produced_bytes: AtomicU64,
    pub(crate) produce_errors: AtomicU64,
    pub(crate) fetch_requests: AtomicU64,
    pub(crate) fetched_bytes: AtomicU64,
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
}

impl Metrics {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}
