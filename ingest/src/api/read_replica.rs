//! Fetching from the closest replica (KIP-392): which replica a consumer is sent to, and the
//! answer that sends it there.
//!
//! A consumer's Fetch v11+ carries its rack (`client.rack`). The leader of a partition, under
//! the `rack-aware` selector (the node's `replica_selector`), answers a consumer whose rack
//! holds a live in-sync replica, but not the leader, with that replica's id in
//! `preferred_read_replica` and no records, as Kafka's `ReplicaManager.findPreferredReadReplica`
//! does with `RackAwareReplicaSelector`. The client then fetches from that replica, which serves
//! consumers up to its own high watermark ([`Partition::check_consumer_read`]), learnt from the
//! leader's answers to its replication fetches.
//!
//! The client returns to the leader when the replica answers with an error (it stopped
//! following, left the ISR, does not hold the offset), when its connection to the replica
//! fails, or when its lease on the replica runs out (librdkafka: 5 minutes; the Java client:
//! `metadata.max.age.ms`); the leader then picks again, from the replicas that are in sync now.
//! Producers, ListOffsets and everything else still go to the leader.

use std::time::Instant;

use bytes::Bytes;
use kafka_protocol::messages::BrokerId;
use kafka_protocol::messages::fetch_response::PartitionData;

use crate::cluster::Cluster;
use crate::config::ReplicaSelector;
use crate::partition::{Partition, ReadReplica};
use tierlog_metadata::NodeId;

/// What a consumer's fetch allows: reading from followers, and being sent to one.
#[derive(Debug, Clone)]
pub(super) struct ConsumerReads {
    /// A Fetch v11+ (Kafka's `clientMetadata`): the client follows `preferred_read_replica`,
    /// so a follower may serve it. Older versions read from the leader only.
    pub(super) from_follower: bool,
    /// The client's rack, when it named one and the selector is rack-aware.
    rack: Option<String>,
    /// The listener the request arrived on: a replica is named only if the client can reach
    /// it there (Kafka looks its endpoints up by the client's listener).
    listener: String,
}

impl ConsumerReads {
    /// What a consumer's Fetch of `version` with `rack_id` allows on a node whose selector is
    /// `selector`, arriving on `listener`.
    pub(super) fn of(
        version: i16,
        rack_id: &str,
        listener: &str,
        selector: ReplicaSelector,
    ) -> Self {
        let from_follower = version >= 11;
        let rack = (from_follower && !rack_id.is_empty() && selector == ReplicaSelector::RackAware)
            .then(|| rack_id.to_owned());
        ConsumerReads {
            from_follower,
            rack,
            listener: listener.to_owned(),
        }
    }

    /// The replica to send this consumer to, for partition `p` at `fetch_offset`, instead of
    /// answering it here; `None` to answer as usual (this node does not lead `p` at
    /// `current_epoch`, the client named no rack, or the leader is the best choice).
    pub(super) fn preferred(
        &self,
        cluster: &Cluster,
        p: &Partition,
        current_epoch: i32,
        fetch_offset: i64,
        now: Instant,
    ) -> Option<NodeId> {
        let rack = self.rack.as_deref()?;
        let followers = p.read_replicas(current_epoch, fetch_offset, now)?;
        if followers.is_empty() {
            return None;
        }
        let view = cluster.view();
        // A node's rack if it is live and reachable on the client's listener; a dead or
        // unreachable replica has none, so it matches no client (Kafka's `Node.noNode()`).
        let rack_of = |id: NodeId| {
            view.nodes
                .get(&id)
                .filter(|n| n.endpoint(&self.listener).is_some())
                .and_then(|n| n.rack.as_deref())
        };
        rack_aware(
            rack,
            rack_of(cluster.me),
            followers.iter().map(|r| (r, rack_of(r.id))),
        )
    }
}

/// Kafka's `RackAwareReplicaSelector`, leader excluded from the answer: `None` (the leader
/// serves) if the leader is in the client's rack or no candidate is; else the candidate in the
/// client's rack with the highest log end, the most recently caught up among equals (then
/// the lowest id, so the choice is stable).
fn rack_aware<'a>(
    client_rack: &str,
    leader_rack: Option<&str>,
    followers: impl Iterator<Item = (&'a ReadReplica, Option<&'a str>)>,
) -> Option<NodeId> {
    if leader_rack == Some(client_rack) {
        return None;
    }
    followers
        .filter(|(_, rack)| *rack == Some(client_rack))
        .map(|(r, _)| r)
        .max_by_key(|r| {
            (
                r.log_end,
                std::cmp::Reverse(r.since_caught_up),
                std::cmp::Reverse(r.id),
            )
        })
        .map(|r| r.id)
}

/// The answer that sends a consumer to `replica`: no records, the leader's offsets, no
/// aborted transactions (Kafka answers it at once, whatever `min_bytes` asks).
pub(super) fn redirected(pd: PartitionData, p: &Partition, replica: NodeId) -> PartitionData {
    pd.with_preferred_read_replica(BrokerId(replica))
        .with_high_watermark(p.high_watermark())
        .with_last_stable_offset(p.last_stable_offset())
        .with_log_start_offset(p.log_start())
        .with_records(Some(Bytes::new()))
        .with_aborted_transactions(None)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn replica(id: NodeId, log_end: i64, since_caught_up_ms: u64) -> ReadReplica {
        ReadReplica {
            id,
            log_end,
            since_caught_up: Duration::from_millis(since_caught_up_ms),
        }
    }

    fn pick(
        client: &str,
        leader: Option<&str>,
        followers: &[(ReadReplica, Option<&str>)],
    ) -> Option<NodeId> {
        rack_aware(client, leader, followers.iter().map(|(r, rack)| (r, *rack)))
    }

    #[test]
    fn the_leader_serves_its_own_rack_and_racks_without_a_replica() {
        let followers = [
            (replica(2, 10, 0), Some("b")),
            (replica(3, 10, 0), Some("c")),
        ];
        assert_eq!(pick("a", Some("a"), &followers), None);
        assert_eq!(pick("d", Some("a"), &followers), None);
        assert_eq!(pick("b", Some("a"), &followers), Some(2));
        assert_eq!(pick("c", None, &followers), Some(3));
        assert_eq!(
            pick("b", Some("b"), &followers),
            None,
            "a follower sharing the leader's rack is not preferred over it"
        );
        assert_eq!(
            pick("b", Some("a"), &[(replica(2, 10, 0), None)]),
            None,
            "a replica with no rack (or not live) matches no client"
        );
    }

    #[test]
    fn among_replicas_in_the_rack_the_most_caught_up_wins() {
        let followers = [
            (replica(2, 10, 0), Some("b")),
            (replica(3, 12, 500), Some("b")),
            (replica(4, 12, 100), Some("b")),
            (replica(5, 99, 0), Some("c")),
        ];
        assert_eq!(pick("b", Some("a"), &followers), Some(4));
        let tie = [
            (replica(3, 12, 0), Some("b")),
            (replica(2, 12, 0), Some("b")),
        ];
        assert_eq!(pick("b", Some("a"), &tie), Some(2));
    }

    #[test]
    fn only_fetch_v11_and_later_may_read_from_followers_or_be_sent_to_one() {
        let rack_aware = ReplicaSelector::RackAware;
        let old = ConsumerReads::of(10, "b", "PLAINTEXT", rack_aware);
        assert!(!old.from_follower && old.rack.is_none());
        let new = ConsumerReads::of(11, "b", "PLAINTEXT", rack_aware);
        assert!(new.from_follower);
        assert_eq!(new.rack.as_deref(), Some("b"));
        assert!(
            ConsumerReads::of(12, "", "PLAINTEXT", rack_aware)
                .rack
                .is_none()
        );
        let leader_only = ConsumerReads::of(17, "b", "PLAINTEXT", ReplicaSelector::Leader);
        assert!(leader_only.from_follower && leader_only.rack.is_none());
    }
}
