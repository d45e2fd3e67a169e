//! Replica placement for new partitions: Kafka's round-robin, so that leaders (each
//! partition's first replica) spread evenly over the live nodes and every node holds about
//! the same number of replicas; rack-aware when every node has a rack (Kafka's
//! `broker.rack`): the nodes are ordered alternating between racks, and a partition's replicas
//! take distinct racks before any rack takes two.

use std::collections::{BTreeMap, BTreeSet};

use tierlog_metadata::{NodeId, PartitionState, TopicId};

/// A live node as placement sees it: its id and rack.
pub(crate) type Placed<'a> = (NodeId, Option<&'a str>);

/// The nodes in placement order: by id, or, when every node has a rack, alternating between
/// racks (first node of each rack, then the second of each, …) as Kafka orders them.
fn placement_order<'a>(nodes: &[Placed<'a>]) -> Vec<Placed<'a>> {
    let mut nodes = nodes.to_vec();
    nodes.sort_by_key(|(id, _)| *id);
    if nodes.iter().any(|(_, r)| r.is_none()) {
        return nodes;
    }
    let mut by_rack: BTreeMap<&str, Vec<Placed<'a>>> = BTreeMap::new();
    for n in &nodes {
        by_rack.entry(n.1.unwrap_or_default()).or_default().push(*n);
    }
    let deepest = by_rack.values().map(Vec::len).max().unwrap_or(0);
    (0..deepest)
        .flat_map(|i| by_rack.values().filter_map(move |v| v.get(i).copied()))
        .collect()
}

/// Replica lists for partitions `first..first + count` of a topic over the live `nodes`,
/// `replication_factor` each (at most the number of nodes). `seed` picks the starting node, so
/// that many single-partition topics do not all start on the same node.
pub(crate) fn assign_replicas(
    nodes: &[Placed<'_>],
    first: i32,
    count: i32,
    replication_factor: usize,
    seed: usize,
) -> Vec<Vec<NodeId>> {
    let order = placement_order(nodes);
    let n = order.len();
    if n == 0 {
        return Vec::new();
    }
    let rf = replication_factor.clamp(1, n);
    let racks: BTreeSet<Option<&str>> = order.iter().map(|(_, r)| *r).collect();
    (first..first + count)
        .map(|p| {
            let start = (seed + p as usize) % n;
            let mut chosen = vec![order[start]];
            // Distinct racks first (while some rack is unused), then anyone not chosen yet.
            for distinct_racks in [true, false] {
                for k in 1..n {
                    if chosen.len() == rf {
                        break;
                    }
                    let c = order[(start + k) % n];
                    let used: BTreeSet<_> = chosen.iter().map(|(_, r)| *r).collect();
                    let rack_ok =
                        !distinct_racks || used.len() == racks.len() || !used.contains(&c.1);
                    if rack_ok && !chosen.iter().any(|(id, _)| *id == c.0) {
                        chosen.push(c);
                    }
                }
            }
            chosen.into_iter().map(|(id, _)| id).collect()
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
        adding_replicas: Vec::new(),
        removing_replicas: Vec::new(),
        damaged_replicas: Vec::new(),
    }
}

/// New partition states for partitions `first..first + count`, spread over `nodes`.
pub(crate) fn new_states(
    topic_id: TopicId,
    nodes: &[Placed<'_>],
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

    fn unracked(ids: &[NodeId]) -> Vec<Placed<'static>> {
        ids.iter().map(|i| (*i, None)).collect()
    }

    #[test]
    fn leaders_and_replicas_spread_evenly() {
        let nodes = unracked(&[1, 2, 3]);
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
        assert_eq!(
            assign_replicas(&unracked(&[7]), 0, 2, 3, 5),
            vec![vec![7], vec![7]]
        );
        assert!(assign_replicas(&[], 0, 2, 3, 0).is_empty());
    }

    #[test]
    fn replicas_take_distinct_racks_first() {
        // Two nodes in each of racks a, b, c (ids interleaved unevenly on purpose).
        let nodes = [
            (1, Some("a")),
            (2, Some("a")),
            (3, Some("b")),
            (4, Some("b")),
            (5, Some("c")),
            (6, Some("c")),
        ];
        let rack = |id: NodeId| nodes.iter().find(|n| n.0 == id).and_then(|n| n.1);
        let a = assign_replicas(&nodes, 0, 12, 3, 0);
        let mut leaders: BTreeMap<NodeId, usize> = BTreeMap::new();
        for r in &a {
            let racks: BTreeSet<_> = r.iter().map(|id| rack(*id)).collect();
            assert_eq!(racks.len(), 3, "one replica per rack: {r:?}");
            *leaders.entry(r[0]).or_default() += 1;
        }
        assert_eq!(leaders.values().copied().collect::<Vec<_>>(), vec![2; 6]);
        // More replicas than racks: racks repeat only once all are used.
        for r in assign_replicas(&nodes, 0, 6, 4, 0) {
            let racks: BTreeSet<_> = r.iter().map(|id| rack(*id)).collect();
            assert_eq!((r.len(), racks.len()), (4, 3), "{r:?}");
        }
        // A node without a rack: plain order, still distinct replicas.
        let mixed = [(1, Some("a")), (2, None), (3, Some("a"))];
        for r in assign_replicas(&mixed, 0, 3, 3, 0) {
            let set: BTreeSet<_> = r.iter().collect();
            assert_eq!(set.len(), 3);
        }
    }

    #[test]
    fn new_states_start_in_sync_at_epoch_zero() {
        let id = uuid::Uuid::from_u128(4);
        let s = new_states(id, &unracked(&[1, 2, 3]), 2, 2, 2);
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].partition, 2);
        assert_eq!(s[0].leader, s[0].replicas[0]);
        assert_eq!(s[0].isr, s[0].replicas);
        assert_ne!(s[0].leader, s[1].leader);
    }
}
