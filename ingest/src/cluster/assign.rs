//! Replica placement for new partitions: Kafka's round-robin, so that leaders (each
//! partition's first replica) spread evenly over the live nodes and every node holds about
//! the same number of replicas.

use tierlog_metadata::{NodeId, PartitionState, TopicId};

/// Replica lists for partitions `first..first + count` of a topic over `nodes` (sorted live
/// node ids), `replication_factor` each (at most `nodes.len()`). `seed` picks the starting
/// node, so that many single-partition topics do not all start on the same node.
pub(crate) fn assign_replicas(
    nodes: &[NodeId],
    first: i32,
    count: i32,
    replication_factor: usize,
    seed: usize,
) -> Vec<Vec<NodeId>> {
    let n = nodes.len();
    if n == 0 {
        return Vec::new();
    }
    let rf = replication_factor.clamp(1, n);
    (first..first + count)
        .map(|p| {
            let start = (seed + p as usize) % n;
            (0..rf).map(|j| nodes[(start + j) % n]).collect()
        })
        .collect()
}

/// A new partition's state: led by its first replica at epoch 0, every replica in sync (the
/// partition is empty everywhere).
pub(crate) fn new_state(
    topic_id: TopicId,
    partition: i32,
    replicas: Vec<NodeId>,
) -> PartitionState {
    PartitionState {
        topic_id,
        partition,
        leader: replicas.first().copied().unwrap_or(-1),
        leader_epoch: 0,
        isr: replicas.clone(),
        replicas,
        partition_epoch: 0,
    }
}

/// New partition states for partitions `first..first + count`, spread over `nodes`.
pub(crate) fn new_states(
    topic_id: TopicId,
    nodes: &[NodeId],
    first: i32,
    count: i32,
    replication_factor: usize,
) -> Vec<PartitionState> {
    let seed = topic_id.as_u128() as usize;
    assign_replicas(nodes, first, count, replication_factor, seed)
        .into_iter()
        .zip(first..)
        .map(|(replicas, partition)| new_state(topic_id, partition, replicas))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn leaders_and_replicas_spread_evenly() {
        let nodes = [1, 2, 3];
        let a = assign_replicas(&nodes, 0, 6, 3, 0);
        let mut leaders = BTreeMap::new();
        for r in &a {
            assert_eq!(r.len(), 3);
            let mut sorted = r.clone();
            sorted.sort();
            sorted.dedup();
            assert_eq!(sorted.len(), 3, "distinct replicas: {r:?}");
            *leaders.entry(r[0]).or_insert(0) += 1;
        }
        assert_eq!(leaders.values().copied().collect::<Vec<_>>(), vec![2, 2, 2]);
    }

    #[test]
    fn replication_factor_is_capped_by_live_nodes() {
        assert_eq!(assign_replicas(&[7], 0, 2, 3, 5), vec![vec![7], vec![7]]);
        assert!(assign_replicas(&[], 0, 2, 3, 0).is_empty());
    }

    #[test]
    fn new_states_start_in_sync_at_epoch_zero() {
        let id = uuid::Uuid::from_u128(4);
        let s = new_states(id, &[1, 2, 3], 2, 2, 2);
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].partition, 2);
        assert_eq!(s[0].leader, s[0].replicas[0]);
        assert_eq!(s[0].isr, s[0].replicas);
        assert_ne!(s[0].leader, s[1].leader);
    }
}
