//! One partition's replication state on this node: its role (leader, follower or neither) at
//! which leader epoch, the ISR as last committed to the metadata store, and — on the leader —
//! each follower's progress, from which the high watermark and ISR changes follow.
//!
//! Pure bookkeeping, no I/O: the partition holds it under a mutex and acts on what it returns
//! (publish a new high watermark, write an ISR change to the store).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tierlog_metadata::{LeaderEpoch, NodeId, PartitionState, Versioned};

/// What this node is for a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// Not a replica, or not told yet: serves nothing.
    None,
    /// Accepts produces and serves consumers and followers.
    Leader,
    /// Copies the leader's log; serves nothing to clients.
    Follower,
}

/// What the leader knows of one follower.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FollowerProgress {
    /// The follower's log end, from its latest fetch (-1: it has not fetched in this epoch).
    pub(crate) log_end: i64,
    /// The leader's log end when that fetch arrived.
    pub(crate) leader_end_at_fetch: i64,
    /// The follower's log start, from its latest fetch (-1: unknown).
    pub(crate) log_start: i64,
    /// The last time the follower was caught up (Kafka's `lastCaughtUpTimeMs`): its fetch
    /// reached the leader's log end as of its previous fetch.
    pub(crate) last_caught_up: Instant,
}

/// An in-sync follower a leader could send a consumer to instead of serving it (KIP-392).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ReadReplica {
    pub(crate) id: NodeId,
    /// Its log end, from its latest fetch.
    pub(crate) log_end: i64,
    /// How long ago it was last caught up (Kafka's `timeSinceLastCaughtUpMs`).
    pub(crate) since_caught_up: Duration,
}

/// A change of the ISR the leader wants to commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum IsrChange {
    /// Add a follower that caught up.
    Expand(NodeId),
    /// Remove followers that fell behind.
    Shrink(Vec<NodeId>),
    /// The leader's log has a damaged range no copy on this node can repair: leadership
    /// passes to this clean in-sync replica (new leader epoch) and the leader marks itself
    /// damaged, then repairs the range from the new leader as a follower.
    Handoff(NodeId),
}

/// Replication state of one partition.
#[derive(Debug)]
pub(crate) struct ReplicaState {
    pub(crate) me: NodeId,
    pub(crate) role: Role,
    pub(crate) leader: NodeId,
    pub(crate) epoch: LeaderEpoch,
    pub(crate) replicas: Vec<NodeId>,
    /// The ISR as committed to the metadata store.
    pub(crate) isr: Vec<NodeId>,
    /// The partition state this role came from (its revision guards ISR writes).
    pub(crate) stored: Option<Versioned<PartitionState>>,
    /// Leader only: the followers' progress in this epoch.
    pub(crate) followers: HashMap<NodeId, FollowerProgress>,
    /// Leader only: the log end when this node became leader (Kafka's epoch start offset).
    pub(crate) epoch_start: i64,
    /// An ISR change is being written; no other is started meanwhile.
    pub(crate) isr_change_in_flight: bool,
}

impl ReplicaState {
    pub(crate) fn new(me: NodeId) -> Self {
        ReplicaState {
            me,
            role: Role::None,
            leader: -1,
            epoch: -1,
            replicas: Vec::new(),
            isr: Vec::new(),
            stored: None,
            followers: HashMap::new(),
            epoch_start: 0,
            isr_change_in_flight: false,
        }
    }

    /// Takes the role the stored state gives this node. Returns whether the role or epoch
    /// changed (a leadership change: waiters on the old role must give up).
    pub(crate) fn apply(
        &mut self,
        state: &Versioned<PartitionState>,
        log_end: i64,
        now: Instant,
    ) -> bool {
        let s = &state.value;
        let role = if s.leader == self.me {
            Role::Leader
        } else if s.replicas.contains(&self.me) {
            Role::Follower
        } else {
            Role::None
        };
        let changed = role != self.role || s.leader_epoch != self.epoch || s.leader != self.leader;
        if changed && role == Role::Leader {
            self.epoch_start = log_end;
            // Every follower starts unknown in a new epoch; in-sync ones get a lag window.
            self.followers = s
                .replicas
                .iter()
                .filter(|r| **r != self.me)
                .map(|r| {
                    (
                        *r,
                        FollowerProgress {
                            log_end: -1,
                            leader_end_at_fetch: -1,
                            log_start: -1,
                            last_caught_up: now,
                        },
                    )
                })
                .collect();
            self.isr_change_in_flight = false;
        }
        if role != Role::Leader {
            self.followers.clear();
        }
        self.role = role;
        self.leader = s.leader;
        self.epoch = s.leader_epoch;
        self.replicas.clone_from(&s.replicas);
        self.isr.clone_from(&s.isr);
        self.stored = Some(state.clone());
        changed
    }

    /// Gives up every role (lease lost, partition removed). Returns whether anything changed.
    pub(crate) fn resign(&mut self) -> bool {
        let changed = self.role != Role::None;
        self.role = Role::None;
        self.followers.clear();
        self.isr_change_in_flight = false;
        changed
    }

    pub(crate) fn is_leader(&self) -> bool {
        self.role == Role::Leader
    }

    /// The high watermark the leader may publish: the lowest log end among the ISR (its own
    /// included). A follower in the ISR that has not fetched in this epoch holds it back.
    pub(crate) fn high_watermark(&self, leader_end: i64) -> i64 {
        let mut hw = leader_end;
        for r in &self.isr {
            if *r == self.me {
                continue;
            }
            let end = self.followers.get(r).map_or(-1, |f| f.log_end);
            hw = hw.min(end);
        }
        hw
    }

    /// The low watermark (Kafka's): the lowest log start among the ISR, the leader's
    /// included; a follower in the ISR that has not fetched in this epoch holds it at -1.
    pub(crate) fn low_watermark(&self, leader_start: i64) -> i64 {
        let mut low = leader_start;
        for r in self.isr.iter().filter(|r| **r != self.me) {
            low = low.min(self.followers.get(r).map_or(-1, |f| f.log_start));
        }
        low
    }

    /// Records a follower's fetch at `fetch_offset` (its log end) with its log start. Returns
    /// an ISR expansion to commit if the follower has caught up and is not in the ISR.
    pub(crate) fn follower_fetched(
        &mut self,
        follower: NodeId,
        fetch_offset: i64,
        log_start: i64,
        leader_end: i64,
        high_watermark: i64,
        now: Instant,
    ) -> Option<IsrChange> {
        let p = self.followers.entry(follower).or_insert(FollowerProgress {
            log_end: -1,
            leader_end_at_fetch: -1,
            log_start: -1,
            last_caught_up: now,
        });
        p.log_start = log_start;
        if fetch_offset >= leader_end || fetch_offset >= p.leader_end_at_fetch {
            p.last_caught_up = now;
        }
        p.log_end = fetch_offset;
        p.leader_end_at_fetch = leader_end;
        let eligible = self.replicas.contains(&follower)
            && !self.isr.contains(&follower)
            && fetch_offset >= high_watermark
            && fetch_offset >= self.epoch_start;
        (eligible && !self.isr_change_in_flight).then_some(IsrChange::Expand(follower))
    }

    /// The in-sync followers whose logs hold `fetch_offset` (between their log start and log
    /// end as of their latest fetch), as Kafka's `findPreferredReadReplica` filters them: a
    /// consumer sent to one finds its next offset there.
    pub(crate) fn read_replicas(&self, fetch_offset: i64, now: Instant) -> Vec<ReadReplica> {
        if fetch_offset < 0 {
            return Vec::new();
        }
        self.isr
            .iter()
            .filter(|r| **r != self.me)
            .filter_map(|r| {
                let f = self.followers.get(r)?;
                let holds = f.log_start <= fetch_offset && f.log_end >= fetch_offset;
                holds.then(|| ReadReplica {
                    id: *r,
                    log_end: f.log_end,
                    since_caught_up: now.saturating_duration_since(f.last_caught_up),
                })
            })
            .collect()
    }

    /// In-sync followers that have not caught up within `max_lag`.
    pub(crate) fn laggards(&self, now: Instant, max_lag: Duration) -> Vec<NodeId> {
        self.isr
            .iter()
            .filter(|r| **r != self.me)
            .filter(|r| {
                self.followers
                    .get(r)
                    .is_none_or(|f| now.saturating_duration_since(f.last_caught_up) > max_lag)
            })
            .copied()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::disallowed_methods)] // pure bookkeeping: any instant will do
    use super::*;

    fn state(leader: NodeId, epoch: i32, isr: &[NodeId]) -> Versioned<PartitionState> {
        Versioned {
            value: PartitionState {
                topic_id: uuid::Uuid::nil(),
                partition: 0,
                replicas: vec![1, 2, 3],
                leader,
                leader_epoch: epoch,
                isr: isr.to_vec(),
                partition_epoch: 0,
                adding_replicas: Vec::new(),
                removing_replicas: Vec::new(),
                damaged_replicas: Vec::new(),
            },
            mod_revision: 7,
        }
    }

    #[test]
    fn roles_follow_the_stored_state() {
        let now = Instant::now();
        let mut s = ReplicaState::new(1);
        assert!(s.apply(&state(1, 0, &[1, 2, 3]), 10, now));
        assert_eq!(s.role, Role::Leader);
        assert_eq!(s.epoch_start, 10);
        assert!(
            !s.apply(&state(1, 0, &[1, 2]), 10, now),
            "an ISR change is no leadership change"
        );
        assert!(s.apply(&state(2, 1, &[1, 2]), 10, now));
        assert_eq!(s.role, Role::Follower);
        let mut other = ReplicaState::new(9);
        other.apply(&state(1, 0, &[1, 2, 3]), 0, now);
        assert_eq!(other.role, Role::None);
    }

    #[test]
    fn high_watermark_is_the_lowest_isr_log_end() {
        let now = Instant::now();
        let mut s = ReplicaState::new(1);
        s.apply(&state(1, 0, &[1, 2, 3]), 0, now);
        assert_eq!(
            s.high_watermark(100),
            -1,
            "followers unknown in a new epoch"
        );
        s.follower_fetched(2, 100, 0, 100, 0, now);
        s.follower_fetched(3, 40, 0, 100, 0, now);
        assert_eq!(s.high_watermark(100), 40);
        s.apply(&state(1, 0, &[1, 2]), 100, now);
        assert_eq!(s.high_watermark(100), 100, "3 left the ISR");
        s.apply(&state(1, 0, &[1]), 100, now);
        assert_eq!(s.high_watermark(120), 120);
    }

    #[test]
    fn low_watermark_is_the_lowest_isr_log_start() {
        let now = Instant::now();
        let mut s = ReplicaState::new(1);
        s.apply(&state(1, 0, &[1, 2]), 0, now);
        assert_eq!(s.low_watermark(400), -1, "follower 2 not heard from");
        s.follower_fetched(2, 500, 0, 500, 500, now);
        assert_eq!(s.low_watermark(400), 0);
        s.follower_fetched(2, 500, 400, 500, 500, now);
        assert_eq!(s.low_watermark(400), 400);
        s.follower_fetched(3, 500, 0, 500, 500, now);
        assert_eq!(s.low_watermark(400), 400, "3 is not in the ISR");
    }

    #[test]
    fn a_caught_up_follower_is_proposed_for_the_isr_once() {
        let now = Instant::now();
        let mut s = ReplicaState::new(1);
        s.apply(&state(1, 0, &[1, 2]), 50, now);
        assert_eq!(
            s.follower_fetched(3, 20, 0, 60, 55, now),
            None,
            "behind the HW"
        );
        assert_eq!(
            s.follower_fetched(3, 60, 0, 60, 55, now),
            Some(IsrChange::Expand(3))
        );
        s.isr_change_in_flight = true;
        assert_eq!(s.follower_fetched(3, 60, 0, 60, 55, now), None);
    }

    #[test]
    fn read_replicas_are_in_sync_followers_holding_the_offset() {
        let t0 = Instant::now();
        let mut s = ReplicaState::new(1);
        s.apply(&state(1, 0, &[1, 2, 3]), 0, t0);
        assert!(
            s.read_replicas(0, t0).is_empty(),
            "followers unknown in a new epoch"
        );
        s.follower_fetched(2, 100, 55, 100, 0, t0);
        s.follower_fetched(3, 60, 0, 100, 0, t0);
        let t1 = t0 + Duration::from_secs(2);
        let ids = |s: &ReplicaState, offset| -> Vec<NodeId> {
            s.read_replicas(offset, t1).iter().map(|r| r.id).collect()
        };
        assert_eq!(ids(&s, 50), vec![3], "2 no longer holds offset 50");
        assert_eq!(ids(&s, 60), vec![2, 3]);
        assert_eq!(ids(&s, 80), vec![2], "3 has not reached offset 80");
        assert_eq!(
            s.read_replicas(100, t1),
            vec![ReadReplica {
                id: 2,
                log_end: 100,
                since_caught_up: Duration::from_secs(2)
            }]
        );
        s.apply(&state(1, 0, &[1, 3]), 100, t1);
        assert_eq!(ids(&s, 60), vec![3], "2 left the ISR");
    }

    #[test]
    fn laggards_are_in_sync_followers_not_caught_up_in_time() {
        let t0 = Instant::now();
        let mut s = ReplicaState::new(1);
        s.apply(&state(1, 0, &[1, 2, 3]), 0, t0);
        let lag = Duration::from_secs(10);
        assert!(s.laggards(t0 + Duration::from_secs(5), lag).is_empty());
        let t1 = t0 + Duration::from_secs(8);
        // 2 keeps up with the log end as of its previous fetch; 3 stays far behind.
        s.follower_fetched(2, 100, 0, 100, 0, t1);
        s.follower_fetched(3, 10, 0, 100, 0, t1);
        let t2 = t0 + Duration::from_secs(20);
        s.follower_fetched(2, 100, 0, 150, 0, t2);
        s.follower_fetched(3, 20, 0, 150, 0, t2);
        assert_eq!(s.laggards(t2, lag), vec![3]);
    }
}
