//! Kafka's leader-side replication throttle: `leader.replication.throttled.rate` (bytes per
//! second, a node's dynamic config or the cluster-wide default) bounds what this node, as
//! leader, sends to followers that are *not in sync* for the partitions a topic's
//! `leader.replication.throttled.replicas` names (`<partition>:<node>` pairs, or `*`) — the
//! replicas a reassignment is copying to. In-sync followers are never throttled, so
//! acknowledgements and the high watermark do not wait. A throttled read sends at most what
//! the rate has accrued (or one whole batch); with nothing accrued the partition is answered
//! with no records and the follower asks again, as Kafka's leader does.
//!
//! `kafka-reassign-partitions --throttle N` sets both the rate and the replica lists.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The dynamic node config that sets the leader's rate.
pub(crate) const LEADER_RATE: &str = "leader.replication.throttled.rate";
/// The dynamic node config that sets the follower's rate.
pub(crate) const FOLLOWER_RATE: &str = "follower.replication.throttled.rate";

/// The follower's side: a node fetching for its catching-up replicas of partitions named in
/// their topic's `follower.replication.throttled.replicas` fetches at most
/// `follower.replication.throttled.rate` bytes per second for them (over the rate they are
/// left out of its fetches, as Kafka's follower does).
#[derive(Debug)]
pub(crate) struct FollowerThrottle {
    bucket: Throttle,
    configs: std::sync::Arc<crate::dynamic_config::DynamicConfigs>,
}

impl FollowerThrottle {
    pub(crate) fn new(configs: std::sync::Arc<crate::dynamic_config::DynamicConfigs>) -> Self {
        FollowerThrottle {
            bucket: Throttle::default(),
            configs,
        }
    }

    /// The rate in force, if one is set.
    pub(crate) fn rate(&self) -> Option<u64> {
        self.configs.node_u64(FOLLOWER_RATE)
    }

    /// Bytes the throttled partitions may fetch now (see [`Throttle::available`]).
    pub(crate) fn available(&self, rate: u64, now: Instant) -> usize {
        self.bucket.available(rate, now)
    }

    /// Counts bytes fetched for throttled partitions.
    pub(crate) fn record(&self, bytes: usize) {
        self.bucket.record(bytes);
    }
}

/// Whether `list` (a topic's `leader.replication.throttled.replicas`) names replica `node`
/// of partition `partition`.
pub(crate) fn lists(list: &str, partition: i32, node: i32) -> bool {
    list.split(',').map(str::trim).any(|e| {
        e == "*"
            || e.split_once(':')
                .is_some_and(|(p, n)| p.parse() == Ok(partition) && n.parse() == Ok(node))
    })
}

/// A token bucket of bytes, refilled at the configured rate, holding at most one second's
/// worth; it may go negative by the last batch sent (that batch was read before it was
/// counted), which the next refills pay back.
#[derive(Debug)]
pub(crate) struct Throttle {
    state: Mutex<Bucket>,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Option<Instant>,
}

impl Default for Throttle {
    fn default() -> Self {
        Throttle {
            state: Mutex::new(Bucket {
                tokens: 0.0,
                at: None,
            }),
        }
    }
}

impl Throttle {
    fn refill(b: &mut Bucket, rate: u64, now: Instant) {
        let rate = rate as f64;
        let elapsed = b.at.map_or(Duration::from_secs(1), |at| {
            now.saturating_duration_since(at)
        });
        b.tokens = (b.tokens + rate * elapsed.as_secs_f64()).min(rate);
        b.at = Some(now);
    }

    /// How many bytes of throttled partitions may be sent now at `rate` bytes per second (a
    /// read sends at most this, or one whole batch).
    pub(crate) fn available(&self, rate: u64, now: Instant) -> usize {
        let mut b = self.state.lock().unwrap_or_else(|e| e.into_inner());
        Self::refill(&mut b, rate, now);
        b.tokens.max(0.0) as usize
    }

    /// Counts `bytes` sent for throttled partitions.
    pub(crate) fn record(&self, bytes: usize) {
        let mut b = self.state.lock().unwrap_or_else(|e| e.into_inner());
        b.tokens -= bytes as f64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replica_lists_name_partitions_and_nodes_or_everything() {
        assert!(lists("0:1,1:2", 1, 2));
        assert!(!lists("0:1,1:2", 1, 1));
        assert!(lists(" 3:4 , * ", 9, 9));
        assert!(!lists("", 0, 0));
        assert!(!lists("x:y", 0, 0));
    }

    #[test]
    fn the_bucket_allows_a_rate_and_pays_back_an_overshoot() {
        let t = Throttle::default();
        let t0 = tokio::time::Instant::now().into_std();
        // A full second's worth to start with.
        assert_eq!(t.available(1000, t0), 1000);
        t.record(2500);
        assert_eq!(t.available(1000, t0 + Duration::from_millis(500)), 0);
        // 1,500 bytes owed after the first 1,000: back above zero after 1.5 s more.
        assert_eq!(t.available(1000, t0 + Duration::from_millis(1400)), 0);
        assert_eq!(t.available(1000, t0 + Duration::from_millis(1600)), 100);
    }
}
