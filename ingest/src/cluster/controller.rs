//! The controller: one node at a time, elected through the store (a key under the node's
//! lease). It keeps every partition state consistent with who is alive:
//!
//! - a partition of a known topic without a state gets one (replicas over the live nodes);
//! - a partition whose leader is not live gets a new leader from its in-sync replicas that are
//!   (the preferred order first) with the epoch bumped; with none, it has no leader (-1) until
//!   one comes back — unless the topic sets `unclean.leader.election.enable`;
//! - dead nodes leave every ISR (the last member stays, as in Kafka, so a clean leader can
//!   still be found when it returns);
//! - a reassignment whose new replicas are all in sync completes (see `reassign`);
//! - states of deleted topics are removed.
//!
//! Every write is a compare-and-swap on the state's revision guarded by the controller key's
//! revision, so a deposed controller (lease lapsed) changes nothing.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use tierlog_metadata::{Compare, ControllerElection, ControllerInfo, NodeId, PartitionState};

use super::{Cluster, ClusterView, assign, balance, reassign};
use crate::topic_config;

/// How often a non-controller retries the election and the controller re-checks everything.
const TICK: Duration = Duration::from_secs(1);

/// What the controller does beyond keeping states consistent with who is alive.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Settings {
    /// Preferred-leader moves every this long; zero = never.
    pub(crate) rebalance_every: Duration,
    /// A node absent this long has its replicas re-created elsewhere.
    pub(crate) replacement_delay: Duration,
    /// Healing, draining and balancing moves (see `balance`).
    pub(crate) moves: balance::Limits,
}

/// Runs the election and, while this node wins, the controller.
pub(crate) async fn run(cluster: Arc<Cluster>, settings: Settings, cancel: CancellationToken) {
    let cluster = cluster.as_ref();
    let me = ControllerInfo {
        node_id: cluster.me,
        incarnation: cluster.membership.info.incarnation,
    };
    let mut generation = cluster.subscribe();
    loop {
        let won = match cluster.membership.lease() {
            Some(lease) => match cluster.election.campaign(&me, lease).await {
                Ok(r) => r,
                Err(e) => {
                    debug!(error = %e, "controller election failed; retrying");
                    None
                }
            },
            None => None,
        };
        if let Some(revision) = won {
            info!(node_id = cluster.me, "elected controller");
            lead(cluster, settings, revision, &cancel).await;
            info!(node_id = cluster.me, "no longer controller");
            if cancel.is_cancelled() {
                let _ = cluster.election.resign(revision).await;
                return;
            }
        }
        tokio::select! {
            biased;
            () = cancel.cancelled() => return,
            _ = generation.changed() => {}
            () = tokio::time::sleep(TICK) => {}
        }
    }
}

/// Acts as controller until the key we won is gone or the node stops.
async fn lead(cluster: &Cluster, settings: Settings, revision: u64, cancel: &CancellationToken) {
    let rebalance_every = settings.rebalance_every;
    let mut generation = cluster.subscribe();
    let mut last_rebalance = tokio::time::Instant::now();
    // Since when each node holding replicas has been absent, as this controller saw it (a new
    // controller starts the clock again: healing errs on the late side).
    let mut absent_since: HashMap<NodeId, tokio::time::Instant> = HashMap::new();
    loop {
        match cluster.election.current().await {
            Ok(Some(c)) if c.mod_revision == revision => {}
            Ok(_) => return,
            Err(e) => debug!(error = %e, "reading the controller key failed"),
        }
        let mut wrote = 0;
        if cluster.membership.lease_valid() {
            let view = cluster.view();
            match reconcile(cluster, &view, revision).await {
                Ok(r) => wrote = r,
                Err(e) => warn!(error = %e, "controller pass failed; retrying"),
            }
            if wrote == 0 {
                let gone = absent_for(&view, &mut absent_since, settings.replacement_delay);
                match start_moves(cluster, &view, revision, &gone, &absent_since, settings).await {
                    Ok(r) => wrote = r,
                    Err(e) => warn!(error = %e, "starting replica moves failed; retrying"),
                }
            }
            if !rebalance_every.is_zero() && last_rebalance.elapsed() >= rebalance_every {
                last_rebalance = tokio::time::Instant::now();
                if let Err(e) = rebalance_leaders(cluster, &view, revision).await {
                    warn!(error = %e, "preferred-leader election failed; next interval");
                }
            }
        }
        // The next pass runs on a view that shows this pass's writes: one on an older view
        // would try every write again and fail each compare-and-swap.
        let deadline = tokio::time::Instant::now() + 5 * TICK;
        loop {
            tokio::select! {
                biased;
                () = cancel.cancelled() => return,
                _ = generation.changed() => {}
                () = tokio::time::sleep(TICK) => {}
            }
            if wrote == 0
                || cluster.view().revision >= wrote
                || tokio::time::Instant::now() >= deadline
            {
                break;
            }
        }
    }
}

/// One controller pass over the view. Returns the store revision of its last write (0: it
/// wrote nothing), so that the next pass can wait for the view to show it.
pub(crate) async fn reconcile(
    cluster: &Cluster,
    view: &ClusterView,
    revision: u64,
) -> anyhow::Result<u64> {
    let guard = [ControllerElection::guard(revision)];
    let live: Vec<NodeId> = view.nodes.keys().copied().collect();
    if live.is_empty() {
        return Ok(0);
    }
    create_missing(cluster, view, &guard).await?;
    let live_set: BTreeSet<NodeId> = live.iter().copied().collect();
    // Topic id → unclean.leader.election.enable, for the known topics.
    let unclean_of: std::collections::HashMap<_, bool> = view
        .topics
        .values()
        .map(|t| (t.id, topic_config::unclean_leader_election(&t.configs)))
        .collect();
    let mut deleted = BTreeSet::new();
    let mut changes = Vec::new();
    let mut leaders_moved = 0usize;
    let mut last_write = 0;
    for current in view.states.values() {
        let s = &current.value;
        let Some(&unclean) = unclean_of.get(&s.topic_id) else {
            deleted.insert(s.topic_id);
            continue;
        };
        let failed_over = next_state(s, &live_set, unclean);
        // A reassignment whose new replicas are all in sync completes.
        let completed =
            reassign::complete(failed_over.as_ref().unwrap_or(s), |n| live_set.contains(&n));
        let Some(next) = completed.or(failed_over) else {
            continue;
        };
        if next.leader != s.leader {
            leaders_moved += 1;
            debug!(
                topic_id = %s.topic_id,
                partition = s.partition,
                old_leader = s.leader,
                new_leader = next.leader,
                epoch = next.leader_epoch,
                isr = ?next.isr,
                "partition leader changed"
            );
        }
        changes.push((current.clone(), next));
    }
    if !changes.is_empty() {
        // Many partitions to a transaction: a node's failure moves all its partitions in a
        // few dozen writes. A state that changed meanwhile is left for the next pass.
        let revisions = cluster.states.cas_many(&changes, &guard).await?;
        let written = revisions.iter().flatten().count();
        last_write = revisions.iter().flatten().copied().max().unwrap_or(0);
        info!(
            partitions = changes.len(),
            written, leaders_moved, live = ?live, "controller updated partition states"
        );
    }
    for id in deleted {
        cluster.states.delete_topic(id).await?;
    }
    Ok(last_write)
}

/// The nodes that hold replicas and have been absent for `delay` or longer; `absent_since`
/// is updated for the view (a node seen again is forgotten).
fn absent_for(
    view: &ClusterView,
    absent_since: &mut HashMap<NodeId, tokio::time::Instant>,
    delay: Duration,
) -> BTreeSet<NodeId> {
    let holding: BTreeSet<NodeId> = view
        .states
        .values()
        .flat_map(|s| s.value.replicas.iter().copied())
        .filter(|r| !view.nodes.contains_key(r))
        .collect();
    let now = tokio::time::Instant::now();
    absent_since.retain(|n, _| holding.contains(n));
    holding
        .into_iter()
        .filter(|n| now.duration_since(*absent_since.entry(*n).or_insert(now)) >= delay)
        .collect()
}

/// Starts the moves `balance::plan` finds: replicas of nodes gone for `replacement_delay`
/// (`gone`) and of drained nodes go elsewhere, then (when no node is absent at all) replicas
/// and preferred leaders even out. Returns the revision of the last write (0: none).
async fn start_moves(
    cluster: &Cluster,
    view: &ClusterView,
    revision: u64,
    gone: &BTreeSet<NodeId>,
    absent_since: &HashMap<NodeId, tokio::time::Instant>,
    settings: Settings,
) -> anyhow::Result<u64> {
    let mut evacuate = gone.clone();
    evacuate.extend(view.drains.keys().copied());
    let limits = balance::Limits {
        // Balancing waits while any node is away: it may come back.
        balance: settings.moves.balance && absent_since.is_empty(),
        ..settings.moves
    };
    let moves = balance::plan(view, &evacuate, limits);
    if moves.is_empty() {
        return Ok(0);
    }
    let live = |n: NodeId| view.nodes.contains_key(&n);
    let changes: Vec<_> = moves
        .iter()
        .map(|m| {
            let mut next = reassign::start(&m.current.value, &m.target);
            if !next.is_reassigning() {
                // Only the order changed (a preferred-leader move): lead from the new first
                // replica now, as an election would.
                if let Some(led) = preferred_leader(&next, live) {
                    next = PartitionState {
                        partition_epoch: next.partition_epoch,
                        ..led
                    };
                }
            }
            (m.current.clone(), next)
        })
        .collect();
    let guard = [ControllerElection::guard(revision)];
    let revisions = cluster.states.cas_many(&changes, &guard).await?;
    let started = revisions.iter().flatten().count();
    for ((current, next), written) in changes.iter().zip(&revisions) {
        if written.is_some() {
            let s = &current.value;
            debug!(topic_id = %s.topic_id, partition = s.partition, from = ?s.replicas, to = ?next.target_replicas(), "replica move started");
        }
    }
    info!(
        moves = started,
        gone = ?gone,
        drained = ?view.drains.keys().collect::<Vec<_>>(),
        "controller started replica moves"
    );
    Ok(revisions.iter().flatten().copied().max().unwrap_or(0))
}

/// Moves leadership back to each partition's preferred replica (its first) where that replica
/// is alive and in sync, so leaders spread again after failovers.
async fn rebalance_leaders(
    cluster: &Cluster,
    view: &ClusterView,
    revision: u64,
) -> anyhow::Result<()> {
    let guard = [ControllerElection::guard(revision)];
    let changes: Vec<_> = view
        .states
        .values()
        .filter_map(|current| {
            preferred_leader(&current.value, |n| view.nodes.contains_key(&n))
                .map(|next| (current.clone(), next))
        })
        .collect();
    let moved = if changes.is_empty() {
        0
    } else {
        cluster
            .states
            .cas_many(&changes, &guard)
            .await?
            .iter()
            .flatten()
            .count()
    };
    if moved > 0 {
        info!(
            partitions = moved,
            "leadership moved back to preferred replicas"
        );
    }
    Ok(())
}

/// The state with leadership on the preferred replica, if that is a change it can make.
pub(crate) fn preferred_leader(
    s: &PartitionState,
    live: impl Fn(NodeId) -> bool,
) -> Option<PartitionState> {
    let preferred = *s.replicas.first()?;
    // A preferred replica with a damaged range waits until it has repaired it (else it
    // would hand leadership straight back).
    if s.leader == preferred
        || !live(preferred)
        || !s.isr.contains(&preferred)
        || s.is_damaged(preferred)
    {
        return None;
    }
    let mut next = s.clone();
    next.leader = preferred;
    next.leader_epoch = s.leader_epoch + 1;
    next.partition_epoch = s.partition_epoch + 1;
    Some(next)
}

/// Creates states for partitions of known topics that have none.
async fn create_missing(
    cluster: &Cluster,
    view: &ClusterView,
    guard: &[Compare],
) -> anyhow::Result<()> {
    let placement = super::Cluster::placement(view);
    let live: Vec<_> = placement
        .iter()
        .map(|(id, r)| (*id, r.as_deref()))
        .collect();
    let mut missing = Vec::new();
    for t in view.topics.values() {
        let rf = usize::try_from(t.replication_factor).unwrap_or(1);
        for p in (0..t.partitions).filter(|p| !view.states.contains_key(&(t.id, *p))) {
            missing.extend(assign::new_states(t.id, &live, p, 1, rf));
        }
    }
    if !missing.is_empty() {
        let n = cluster.states.create_missing(&missing, guard).await?;
        info!(created = n, "controller created missing partition states");
    }
    Ok(())
}

/// The state a partition should move to given the live nodes, or `None` if it is right.
pub(crate) fn next_state(
    s: &PartitionState,
    live: &BTreeSet<NodeId>,
    unclean: bool,
) -> Option<PartitionState> {
    let isr_live: Vec<NodeId> = s.isr.iter().copied().filter(|r| live.contains(r)).collect();
    let mut next = s.clone();
    if !live.contains(&s.leader) {
        // In sync first; among those, one without a damaged range (`damaged_replicas`).
        let clean = s.choose_leader(|r| live.contains(&r) && s.isr.contains(&r));
        let candidate = clean.or_else(|| {
            unclean
                .then(|| s.choose_leader(|r| live.contains(&r)))
                .flatten()
        });
        match candidate {
            Some(c) => {
                next.leader = c;
                next.leader_epoch = s.leader_epoch + 1;
                next.isr = if clean.is_some() { isr_live } else { vec![c] };
            }
            None => {
                if s.leader != -1 {
                    next.leader = -1;
                    next.leader_epoch = s.leader_epoch + 1;
                }
                // Keep the last in-sync member so a clean leader is found when it returns.
                if !isr_live.is_empty() {
                    next.isr = isr_live;
                } else if s.leader != -1 && s.isr.contains(&s.leader) {
                    next.isr = vec![s.leader];
                }
            }
        }
    } else {
        next.isr = isr_live;
    }
    if next == *s {
        return None;
    }
    next.partition_epoch = s.partition_epoch + 1;
    Some(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(leader: NodeId, isr: &[NodeId]) -> PartitionState {
        PartitionState {
            topic_id: uuid::Uuid::nil(),
            partition: 0,
            replicas: vec![1, 2, 3],
            leader,
            leader_epoch: 4,
            isr: isr.to_vec(),
            partition_epoch: 9,
            adding_replicas: Vec::new(),
            removing_replicas: Vec::new(),
            damaged_replicas: Vec::new(),
        }
    }

    fn live(ids: &[NodeId]) -> BTreeSet<NodeId> {
        ids.iter().copied().collect()
    }

    #[test]
    fn nothing_changes_while_everyone_lives() {
        assert_eq!(
            next_state(&st(1, &[1, 2, 3]), &live(&[1, 2, 3]), false),
            None
        );
    }

    #[test]
    fn a_dead_leader_is_replaced_from_the_isr_with_a_new_epoch() {
        let n = next_state(&st(1, &[1, 2, 3]), &live(&[2, 3]), false).expect("change");
        assert_eq!(n.leader, 2);
        assert_eq!(n.leader_epoch, 5);
        assert_eq!(n.isr, vec![2, 3]);
        assert_eq!(n.partition_epoch, 10);
    }

    #[test]
    fn a_live_replica_outside_the_isr_is_not_elected_unless_unclean() {
        let s = st(1, &[1, 2]);
        let n = next_state(&s, &live(&[3]), false).expect("change");
        assert_eq!(n.leader, -1);
        assert_eq!(n.leader_epoch, 5);
        assert_eq!(n.isr, vec![1], "the last leader stays in the ISR");
        let u = next_state(&s, &live(&[3]), true).expect("change");
        assert_eq!((u.leader, u.isr.clone()), (3, vec![3]));
    }

    #[test]
    fn an_isr_member_coming_back_leads_an_offline_partition() {
        let offline = PartitionState {
            leader: -1,
            isr: vec![1],
            ..st(1, &[1])
        };
        assert_eq!(next_state(&offline, &live(&[2]), false), None);
        let n = next_state(&offline, &live(&[1, 2]), false).expect("change");
        assert_eq!(n.leader, 1);
        assert_eq!(n.leader_epoch, 5);
    }

    #[test]
    fn leadership_returns_to_a_live_in_sync_preferred_replica() {
        let s = st(2, &[1, 2, 3]);
        let n = preferred_leader(&s, |_| true).expect("move");
        assert_eq!((n.leader, n.leader_epoch, n.partition_epoch), (1, 5, 10));
        assert_eq!(preferred_leader(&s, |n| n != 1), None, "preferred is dead");
        assert_eq!(
            preferred_leader(&st(2, &[2, 3]), |_| true),
            None,
            "not in sync"
        );
        assert_eq!(
            preferred_leader(&st(1, &[1, 2]), |_| true),
            None,
            "already leads"
        );
    }

    #[test]
    fn dead_followers_leave_the_isr() {
        let n = next_state(&st(1, &[1, 2, 3]), &live(&[1, 2]), false).expect("change");
        assert_eq!(
            (n.leader, n.leader_epoch, n.isr.clone()),
            (1, 4, vec![1, 2])
        );
    }

    #[test]
    fn elections_pass_over_damaged_replicas_while_a_clean_one_is_in_sync() {
        let damaged = |leader, isr: &[NodeId], d: &[NodeId]| PartitionState {
            damaged_replicas: d.to_vec(),
            ..st(leader, isr)
        };
        // 2 is next in order but damaged: 3 leads.
        let n = next_state(&damaged(1, &[1, 2, 3], &[2]), &live(&[2, 3]), false).expect("change");
        assert_eq!((n.leader, n.leader_epoch), (3, 5));
        // Only damaged replicas in sync: the first of them still leads (better than none).
        let n =
            next_state(&damaged(1, &[1, 2, 3], &[2, 3]), &live(&[2, 3]), false).expect("change");
        assert_eq!(n.leader, 2);
        // A damaged preferred replica does not take leadership back until it is clean.
        assert_eq!(
            preferred_leader(&damaged(2, &[1, 2, 3], &[1]), |_| true),
            None
        );
        let n = preferred_leader(&damaged(2, &[1, 2, 3], &[3]), |_| true).expect("move");
        assert_eq!(n.leader, 1);
    }
}
