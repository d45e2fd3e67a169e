//! Where replicas should move, planned over a view: off nodes that are gone for good or being
//! drained (healing), and from crowded nodes to emptier ones (balancing, e.g. after a node
//! joins). The controller starts each move as a reassignment (see `reassign`): the new
//! replica catches up from object storage and the leader's tail, joins the ISR, and only then
//! is the old one dropped, so no partition's ISR shrinks below its replication factor.
//!
//! Moves are bounded by a budget of reassignments in progress cluster-wide. Balancing moves
//! only healthy partitions (every replica live and in sync) and never lowers the number of
//! racks a partition spans. Replica counts are balanced first, then preferred leaders (the
//! first replica): a partition whose preferred leader sits on a node preferred for too many
//! gets another in-sync replica first.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use tierlog_metadata::{NodeId, PartitionState, TopicId, Versioned};

use super::ClusterView;

/// One planned move: the partition's state as seen and the replicas it should have.
#[derive(Debug, Clone)]
pub(crate) struct Move {
    pub(crate) current: Versioned<PartitionState>,
    pub(crate) target: Vec<NodeId>,
}

/// What a planning round may do.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Reassignments in progress at most, cluster-wide (those already running count).
    pub(crate) max_moves: usize,
    /// Whether to balance (healing and draining always run).
    pub(crate) balance: bool,
}

/// Replica and preferred-leader counts per eligible node, kept as moves are planned.
struct Load<'a> {
    /// Live nodes not being drained, with their racks: where replicas may go.
    eligible: BTreeMap<NodeId, Option<&'a str>>,
    replicas: HashMap<NodeId, usize>,
    leaders: HashMap<NodeId, usize>,
}

impl<'a> Load<'a> {
    fn new(view: &'a ClusterView) -> Self {
        let eligible: BTreeMap<NodeId, Option<&str>> = view
            .nodes
            .values()
            .filter(|n| !view.drains.contains_key(&n.id))
            .map(|n| (n.id, n.rack.as_deref()))
            .collect();
        let mut replicas: HashMap<NodeId, usize> = eligible.keys().map(|n| (*n, 0)).collect();
        let mut leaders = replicas.clone();
        for s in view.states.values() {
            let target = s.value.target_replicas();
            for r in &target {
                if let Some(n) = replicas.get_mut(r) {
                    *n += 1;
                }
            }
            if let Some(n) = target.first().and_then(|r| leaders.get_mut(r)) {
                *n += 1;
            }
        }
        Load {
            eligible,
            replicas,
            leaders,
        }
    }

    fn rack(&self, node: NodeId) -> Option<&'a str> {
        self.eligible.get(&node).copied().flatten()
    }

    /// The eligible node to hold a replica beside `others`: one in a rack none of them is in
    /// if there is one, then the one holding fewest replicas (lowest id on ties).
    fn pick(&self, others: &[NodeId], exclude: &[NodeId]) -> Option<NodeId> {
        let used: BTreeSet<Option<&str>> = others.iter().map(|r| self.rack(*r)).collect();
        self.eligible
            .keys()
            .copied()
            .filter(|n| !exclude.contains(n))
            .min_by_key(|n| {
                let rack = self.rack(*n);
                let new_rack = rack.is_none() || !used.contains(&rack);
                (!new_rack, self.replicas[n], *n)
            })
    }

    fn moved(&mut self, from: &[NodeId], to: &[NodeId]) {
        for r in from {
            if let Some(n) = self.replicas.get_mut(r) {
                *n = n.saturating_sub(1);
            }
        }
        for r in to {
            if let Some(n) = self.replicas.get_mut(r) {
                *n += 1;
            }
        }
        if let Some(n) = from.first().and_then(|r| self.leaders.get_mut(r)) {
            *n = n.saturating_sub(1);
        }
        if let Some(n) = to.first().and_then(|r| self.leaders.get_mut(r)) {
            *n += 1;
        }
    }

    fn racks(&self, replicas: &[NodeId]) -> usize {
        replicas
            .iter()
            .map(|r| self.rack(*r))
            .collect::<BTreeSet<_>>()
            .len()
    }

    /// `replicas` with the one preferred least often first (the first one on ties), so that
    /// replica moves do not pile preferred leaderships onto the node they fill.
    fn lead_order(&self, mut replicas: Vec<NodeId>) -> Vec<NodeId> {
        let count = |r: &NodeId| self.leaders.get(r).copied().unwrap_or(usize::MAX);
        let best = replicas
            .iter()
            .enumerate()
            .min_by_key(|(i, r)| (count(r), *i))
            .map_or(0, |(i, _)| i);
        replicas[..=best].rotate_right(1);
        replicas
    }

    /// The most and the least loaded eligible nodes by `count`.
    fn extremes(count: &HashMap<NodeId, usize>) -> Option<((NodeId, usize), (NodeId, usize))> {
        let max = count.iter().max_by_key(|(n, c)| (**c, -**n))?;
        let min = count.iter().min_by_key(|(n, c)| (**c, **n))?;
        Some(((*max.0, *max.1), (*min.0, *min.1)))
    }
}

/// The moves planned so far, and the load they leave.
struct Plan<'a> {
    load: Load<'a>,
    moves: Vec<Move>,
    planned: BTreeSet<(TopicId, i32)>,
}

impl Plan<'_> {
    /// Plans moving `s` to `target`.
    fn take(&mut self, s: &Versioned<PartitionState>, target: Vec<NodeId>) {
        self.load.moved(&s.value.replicas, &target);
        self.planned.insert((s.value.topic_id, s.value.partition));
        self.moves.push(Move {
            current: s.clone(),
            target,
        });
    }
}

/// The moves to start now: healing first (replicas on `evacuate` nodes go elsewhere), then,
/// if allowed and nothing needs healing, balancing. At most `limits.max_moves` minus the
/// reassignments already in progress.
pub(crate) fn plan(view: &ClusterView, evacuate: &BTreeSet<NodeId>, limits: Limits) -> Vec<Move> {
    let running = view
        .states
        .values()
        .filter(|s| s.value.is_reassigning())
        .count();
    let mut budget = limits.max_moves.saturating_sub(running);
    if budget == 0 {
        return Vec::new();
    }
    let mut chosen = Plan {
        load: Load::new(view),
        moves: Vec::new(),
        planned: BTreeSet::new(),
    };
    // Sorted so that every controller plans the same moves from the same view.
    let mut states: Vec<&Versioned<PartitionState>> = view
        .states
        .values()
        .filter(|s| !s.value.is_reassigning())
        .collect();
    states.sort_by_key(|s| (s.value.topic_id, s.value.partition));
    let mut evacuating = false;
    for s in &states {
        if budget == 0 {
            return chosen.moves;
        }
        let replicas = &s.value.replicas;
        if !replicas.iter().any(|r| evacuate.contains(r)) {
            continue;
        }
        evacuating = true;
        let mut target = replicas.clone();
        let mut ok = true;
        for i in 0..target.len() {
            if evacuate.contains(&target[i]) {
                let others: Vec<NodeId> = target
                    .iter()
                    .copied()
                    .filter(|r| !evacuate.contains(r))
                    .collect();
                match chosen.load.pick(&others, &target) {
                    Some(n) => target[i] = n,
                    None => {
                        ok = false;
                        break;
                    }
                }
            }
        }
        if !ok {
            // Not enough nodes to hold the replication factor elsewhere: wait for one.
            continue;
        }
        chosen.take(s, target);
        budget -= 1;
    }
    if evacuating || !limits.balance {
        return chosen.moves;
    }
    let healthy = |s: &PartitionState| {
        s.leader >= 0
            && s.isr.len() == s.replicas.len()
            && s.replicas.iter().all(|r| view.nodes.contains_key(r))
    };
    // Replica counts: from the fullest node to the emptiest while they differ by two or more.
    while budget > 0 {
        let Some(((max, max_n), (min, min_n))) = Load::extremes(&chosen.load.replicas) else {
            break;
        };
        if max_n <= min_n + 1 {
            break;
        }
        let found = states.iter().find(|s| {
            let v = &s.value;
            if chosen.planned.contains(&(v.topic_id, v.partition))
                || !healthy(v)
                || !v.replicas.contains(&max)
                || v.replicas.contains(&min)
            {
                return false;
            }
            let swapped: Vec<NodeId> = v
                .replicas
                .iter()
                .map(|r| if *r == max { min } else { *r })
                .collect();
            chosen.load.racks(&swapped) >= chosen.load.racks(&v.replicas)
        });
        let Some(s) = found else { break };
        let swapped: Vec<NodeId> = s
            .value
            .replicas
            .iter()
            .map(|r| if *r == max { min } else { *r })
            .collect();
        let target = chosen.load.lead_order(swapped);
        chosen.take(s, target);
        budget -= 1;
    }
    // Preferred leaders: a partition first on the node preferred most takes an in-sync replica
    // on the node preferred least first instead (same replicas, new order).
    while budget > 0 {
        let Some(((max, max_n), (min, min_n))) = Load::extremes(&chosen.load.leaders) else {
            break;
        };
        if max_n <= min_n + 1 {
            break;
        }
        let found = states.iter().find(|s| {
            let v = &s.value;
            !chosen.planned.contains(&(v.topic_id, v.partition))
                && healthy(v)
                && v.replicas.first() == Some(&max)
                && v.replicas.contains(&min)
        });
        let Some(s) = found else { break };
        let mut target = vec![min];
        target.extend(s.value.replicas.iter().copied().filter(|r| *r != min));
        chosen.take(s, target);
        budget -= 1;
    }
    chosen.moves
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use tierlog_metadata::NodeInfo;

    fn node(id: NodeId, rack: Option<&str>) -> (NodeId, NodeInfo) {
        (
            id,
            NodeInfo {
                id,
                host: "h".into(),
                port: 1,
                rack: rack.map(str::to_owned),
                incarnation: uuid::Uuid::nil(),
                started_ms: 0,
                listeners: Vec::new(),
            },
        )
    }

    fn view(nodes: &[(NodeId, Option<&str>)], replicas: &[&[NodeId]]) -> ClusterView {
        let topic = uuid::Uuid::from_u128(7);
        ClusterView {
            nodes: nodes.iter().map(|(id, r)| node(*id, *r)).collect(),
            states: replicas
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    let s = crate::cluster::assign::new_state(topic, i as i32, r.to_vec());
                    (
                        (topic, i as i32),
                        Versioned {
                            value: s,
                            mod_revision: 1,
                        },
                    )
                })
                .collect(),
            ..ClusterView::default()
        }
    }

    fn counts(view: &ClusterView, moves: &[Move]) -> BTreeMap<NodeId, usize> {
        let mut after: BTreeMap<(TopicId, i32), Vec<NodeId>> = view
            .states
            .values()
            .map(|s| {
                (
                    (s.value.topic_id, s.value.partition),
                    s.value.replicas.clone(),
                )
            })
            .collect();
        for m in moves {
            after.insert(
                (m.current.value.topic_id, m.current.value.partition),
                m.target.clone(),
            );
        }
        let mut c = BTreeMap::new();
        for r in after.values().flatten() {
            *c.entry(*r).or_insert(0) += 1;
        }
        c
    }

    const ALL: Limits = Limits {
        max_moves: 1000,
        balance: true,
    };

    #[test]
    fn replicas_of_a_lost_node_go_to_a_node_in_a_rack_the_partition_lacks() {
        // Node 1 (rack a) is gone; 4 is in rack a too, 5 in rack b like 2.
        let v = view(
            &[
                (2, Some("b")),
                (3, Some("c")),
                (4, Some("a")),
                (5, Some("b")),
            ],
            &[&[1, 2, 3]],
        );
        let moves = plan(&v, &BTreeSet::from([1]), ALL);
        assert_eq!(moves.len(), 1);
        assert_eq!(
            moves[0].target,
            vec![4, 2, 3],
            "same position, rack a again"
        );
    }

    #[test]
    fn nothing_moves_without_a_node_to_take_the_replica() {
        let v = view(&[(2, None), (3, None)], &[&[1, 2, 3]]);
        assert!(plan(&v, &BTreeSet::from([1]), ALL).is_empty());
    }

    #[test]
    fn a_joined_node_gets_its_share_of_replicas_and_preferred_leaders() {
        // 12 partitions, RF 3 on nodes 1..3; node 4 joins empty.
        let assignments: Vec<Vec<NodeId>> = (0..12)
            .map(|i| (0..3).map(|k| (i + k) % 3 + 1).collect())
            .collect();
        let refs: Vec<&[NodeId]> = assignments.iter().map(Vec::as_slice).collect();
        let v = view(&[(1, None), (2, None), (3, None), (4, None)], &refs);
        let moves = plan(&v, &BTreeSet::new(), ALL);
        let c = counts(&v, &moves);
        assert!(c.values().all(|n| (8..=10).contains(n)), "{c:?}");
        let mut leaders = BTreeMap::new();
        for m in &moves {
            // Every move keeps three distinct replicas.
            assert_eq!(m.target.iter().collect::<BTreeSet<_>>().len(), 3);
        }
        let mut after: BTreeMap<i32, Vec<NodeId>> = v
            .states
            .values()
            .map(|s| (s.value.partition, s.value.replicas.clone()))
            .collect();
        for m in &moves {
            after.insert(m.current.value.partition, m.target.clone());
        }
        for r in after.values() {
            *leaders.entry(r[0]).or_insert(0) += 1;
        }
        assert!(leaders.values().all(|n| (2..=4).contains(n)), "{leaders:?}");
    }

    #[test]
    fn the_budget_counts_moves_already_running() {
        let assignments: Vec<Vec<NodeId>> = (0..12).map(|_| vec![1, 2]).collect();
        let refs: Vec<&[NodeId]> = assignments.iter().map(Vec::as_slice).collect();
        let mut v = view(&[(1, None), (2, None), (3, None)], &refs);
        let limits = Limits {
            max_moves: 3,
            balance: true,
        };
        assert_eq!(plan(&v, &BTreeSet::new(), limits).len(), 3);
        let key = *v.states.keys().next().unwrap();
        let mut s = v.states.get(&key).unwrap().clone();
        s.value = crate::cluster::reassign::start(&s.value, &[1, 3]);
        v.states.insert(key, s);
        assert_eq!(plan(&v, &BTreeSet::new(), limits).len(), 2);
        let off = Limits {
            max_moves: 3,
            balance: false,
        };
        assert!(plan(&v, &BTreeSet::new(), off).is_empty());
    }

    #[test]
    fn a_drained_node_is_emptied_and_gets_nothing() {
        let mut v = view(
            &[(1, None), (2, None), (3, None), (4, None)],
            &[&[4, 1, 2], &[1, 2, 3]],
        );
        v.drains.insert(4, 0);
        let moves = plan(&v, &BTreeSet::from([4]), ALL);
        assert_eq!(moves.len(), 1);
        assert_eq!(moves[0].target, vec![3, 1, 2]);
    }
}
