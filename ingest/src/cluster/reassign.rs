//! Partition reassignment, Kafka's way (KIP-455), as pure state transitions:
//!
//! 1. **Start** ([`start`]): the replica set grows to the target plus the original replicas
//!    the target drops (`replicas = target ++ removing`), `adding_replicas` and
//!    `removing_replicas` say which are which; the ISR is left as it is. Nodes open the added
//!    replicas (an empty replica starts after the tiered history, so it copies only the
//!    un-tiered tail from the leader) and follow the leader.
//! 2. **Catch up**: the leader adds each new replica to the ISR once it has caught up (the
//!    ordinary ISR expansion).
//! 3. **Complete** ([`complete`], by the controller): once every target replica is in sync,
//!    the replica set becomes the target, the removed replicas leave the ISR and, if the
//!    leader is one of them, leadership moves (last) to the first in-sync target replica. The
//!    removed nodes close their replicas and delete their files.
//!
//! [`cancel`] goes back to the original replicas. A new reassignment of a partition already
//! being reassigned replaces the old target, keeping the original replicas it started from.

use tierlog_metadata::{NodeId, PartitionState};

/// The state that starts moving `s` to `target` (distinct replicas, not empty). A target
/// equal to the replicas `s` started from cancels whatever was in progress.
pub(crate) fn start(s: &PartitionState, target: &[NodeId]) -> PartitionState {
    let original = s.original_replicas();
    let removing: Vec<NodeId> = original
        .iter()
        .copied()
        .filter(|r| !target.contains(r))
        .collect();
    let adding: Vec<NodeId> = target
        .iter()
        .copied()
        .filter(|r| !original.contains(r))
        .collect();
    let mut next = s.clone();
    next.replicas = target
        .iter()
        .copied()
        .chain(removing.iter().copied())
        .collect();
    next.adding_replicas = adding;
    next.removing_replicas = removing;
    // Replicas of a superseded reassignment that this one drops leave the ISR with it.
    keep_within_replicas(s, &mut next);
    next.partition_epoch = s.partition_epoch + 1;
    next
}

/// The state that goes back to the replicas `s`'s reassignment started from, or `None` when
/// no reassignment is in progress.
pub(crate) fn cancel(s: &PartitionState) -> Option<PartitionState> {
    if !s.is_reassigning() {
        return None;
    }
    let mut next = s.clone();
    next.replicas = s.original_replicas();
    next.adding_replicas.clear();
    next.removing_replicas.clear();
    keep_within_replicas(s, &mut next);
    next.partition_epoch = s.partition_epoch + 1;
    Some(next)
}

/// The state that completes `s`'s reassignment, or `None` while it is not complete: every
/// target replica must be in sync and one of them able to lead (`live`).
pub(crate) fn complete(
    s: &PartitionState,
    live: impl Fn(NodeId) -> bool,
) -> Option<PartitionState> {
    if !s.is_reassigning() {
        return None;
    }
    let target = s.target_replicas();
    if !target.iter().all(|r| s.isr.contains(r)) {
        return None;
    }
    let mut next = s.clone();
    next.replicas = target;
    next.adding_replicas.clear();
    next.removing_replicas.clear();
    next.isr.retain(|r| next.replicas.contains(r));
    next.damaged_replicas.retain(|r| next.replicas.contains(r));
    if !next.replicas.contains(&s.leader) {
        // Leadership moves last: to the first live in-sync replica of the target (a clean
        // one first).
        let leader = next.choose_leader(&live)?;
        next.leader = leader;
        next.leader_epoch = s.leader_epoch + 1;
    }
    next.partition_epoch = s.partition_epoch + 1;
    Some(next)
}

/// Keeps `next`'s ISR and leader within its replicas, electing a new leader from the ISR
/// left (the replica order first) when the old one is gone; with none left in sync the
/// partition has no leader until one is.
fn keep_within_replicas(s: &PartitionState, next: &mut PartitionState) {
    next.isr.retain(|r| next.replicas.contains(r));
    next.damaged_replicas.retain(|r| next.replicas.contains(r));
    if s.leader != PartitionState::NO_LEADER && !next.replicas.contains(&s.leader) {
        next.leader = next
            .choose_leader(|r| next.isr.contains(&r))
            .unwrap_or(PartitionState::NO_LEADER);
        next.leader_epoch = s.leader_epoch + 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(replicas: &[NodeId], leader: NodeId, isr: &[NodeId]) -> PartitionState {
        PartitionState {
            topic_id: uuid::Uuid::nil(),
            partition: 0,
            replicas: replicas.to_vec(),
            leader,
            leader_epoch: 3,
            isr: isr.to_vec(),
            partition_epoch: 7,
            adding_replicas: Vec::new(),
            removing_replicas: Vec::new(),
            damaged_replicas: Vec::new(),
        }
    }

    #[test]
    fn a_move_grows_the_replicas_then_completes_once_the_new_ones_are_in_sync() {
        let s = st(&[1, 2, 3], 1, &[1, 2, 3]);
        let moving = start(&s, &[2, 3, 4]);
        assert_eq!(moving.replicas, vec![2, 3, 4, 1]);
        assert_eq!(moving.adding_replicas, vec![4]);
        assert_eq!(moving.removing_replicas, vec![1]);
        assert_eq!(
            (moving.leader, moving.leader_epoch),
            (1, 3),
            "the leader stays"
        );
        assert_eq!(moving.isr, vec![1, 2, 3]);
        assert_eq!(moving.partition_epoch, 8);
        assert_eq!(moving.target_replicas(), vec![2, 3, 4]);
        assert_eq!(moving.original_replicas(), vec![2, 3, 1]);

        assert_eq!(complete(&moving, |_| true), None, "4 is not in sync yet");
        let caught_up = PartitionState {
            isr: vec![1, 2, 3, 4],
            partition_epoch: 9,
            ..moving
        };
        let done = complete(&caught_up, |_| true).expect("complete");
        assert_eq!(done.replicas, vec![2, 3, 4]);
        assert!(!done.is_reassigning());
        assert_eq!(done.isr, vec![2, 3, 4]);
        assert_eq!(
            (done.leader, done.leader_epoch),
            (2, 4),
            "leadership moves last"
        );
        assert_eq!(done.partition_epoch, 10);
    }

    #[test]
    fn removing_replicas_alone_completes_at_once_and_keeps_the_leader() {
        let s = st(&[1, 2, 3], 2, &[1, 2, 3]);
        let shrinking = start(&s, &[2, 3]);
        let done = complete(&shrinking, |_| true).expect("complete");
        assert_eq!(
            (
                done.replicas.clone(),
                done.isr.clone(),
                done.leader,
                done.leader_epoch
            ),
            (vec![2, 3], vec![2, 3], 2, 3)
        );
    }

    #[test]
    fn cancelling_goes_back_to_the_original_replicas() {
        let s = st(&[1, 2, 3], 1, &[1, 2, 3]);
        assert_eq!(cancel(&s), None, "nothing in progress");
        let moving = start(&s, &[4, 5, 6]);
        assert_eq!(moving.replicas, vec![4, 5, 6, 1, 2, 3]);
        let back = cancel(&moving).expect("cancel");
        assert_eq!(back.replicas, vec![1, 2, 3]);
        assert!(!back.is_reassigning());
        assert_eq!((back.leader, back.isr.clone()), (1, vec![1, 2, 3]));
    }

    #[test]
    fn a_new_target_replaces_the_one_in_progress_from_the_same_origin() {
        let s = st(&[1, 2, 3], 1, &[1, 2, 3]);
        let first = start(&s, &[2, 3, 4]);
        let in_sync = PartitionState {
            isr: vec![1, 2, 3, 4],
            ..first
        };
        let second = start(&in_sync, &[2, 3, 5]);
        assert_eq!(second.replicas, vec![2, 3, 5, 1]);
        assert_eq!(second.adding_replicas, vec![5]);
        assert_eq!(second.removing_replicas, vec![1]);
        assert_eq!(second.isr, vec![1, 2, 3], "4 left with the old target");
        let same = start(&second, &[1, 2, 3]);
        assert_eq!(same.replicas, vec![1, 2, 3]);
        assert!(!same.is_reassigning(), "the original target is a cancel");
    }
}
