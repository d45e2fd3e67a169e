//! Keeps the node in step with the metadata store: the cluster view, the topics open here,
//! each partition's role, and the followers' fetchers. Also the lease keep-alive loop.
//!
//! Watches the node, topic, partition-state and controller keys. Partition states — the
//! bulk of the cluster state, one per partition — are kept by key from the watch events: a
//! put replaces the state if it is newer (by mod revision) than the one in the view, a
//! delete removes it, and only the partitions that changed take their roles again. A change
//! of a node, a topic, the controller or a drain mark (rare, few keys) re-lists those and applies
//! everything. Several events ready at once are coalesced into one new view. A full re-list
//! (at start, after a watch failure, after this node registers again, and every
//! [`RESYNC_PERIOD`]) is the safety net.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::SelectAll;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use tierlog_metadata::{
    CONTROLLER_KEY, NODES_PREFIX, PARTITIONS_PREFIX, PartitionStateRegistry, TopicMeta, WatchEvent,
    WatchStream,
};

use super::Host;
use crate::cluster::ClusterView;
use crate::partition::{Role, Want};

/// Where topics live in the store (see `tierlog_metadata::TopicRegistry`).
const TOPICS_PREFIX: &str = "/tierlog/topics/";
/// Re-list everything at least this often even without events.
const RESYNC_PERIOD: Duration = Duration::from_secs(60);
/// Pause after a failed re-list or watch.
const RETRY_DELAY: Duration = Duration::from_millis(250);

/// Runs until cancelled.
pub(crate) async fn run(b: Arc<Host>, cancel: CancellationToken) {
    loop {
        if cancel.is_cancelled() {
            return;
        }
        let mut watches = match open_watches(&b).await {
            Ok(w) => w,
            Err(e) => {
                warn!(error = %e, "watching the metadata store failed; retrying");
                if pause(&cancel).await {
                    return;
                }
                continue;
            }
        };
        if let Err(e) = refresh(&b).await {
            warn!(error = %e, "reading the cluster state failed; retrying");
            if pause(&cancel).await {
                return;
            }
            continue;
        }
        let mut resync_at = tokio::time::Instant::now() + RESYNC_PERIOD;
        loop {
            let mut events = Vec::new();
            let full = tokio::select! {
                biased;
                () = cancel.cancelled() => return,
                ev = watches.next() => match ev {
                    Some(Ok(e)) => {
                        events.push(e);
                        // Coalesce whatever else is ready.
                        while let Some(Some(Ok(e))) = futures::FutureExt::now_or_never(watches.next()) {
                            events.push(e);
                        }
                        false
                    }
                    Some(Err(e)) => {
                        debug!(error = %e, "metadata watch ended; re-watching");
                        break;
                    }
                    None => break,
                },
                () = b.cluster.resync.notified() => true,
                () = tokio::time::sleep_until(resync_at) => true,
            };
            let result = if full {
                resync_at = tokio::time::Instant::now() + RESYNC_PERIOD;
                refresh(&b).await
            } else {
                apply_events(&b, events).await
            };
            if let Err(e) = result {
                warn!(error = %e, "reading the cluster state failed; retrying");
                if pause(&cancel).await {
                    return;
                }
                // Whatever was missed, the next pass re-lists.
                b.cluster.resync.notify_one();
            }
        }
    }
}

/// Applies watch events to the view: partition states by key; anything else re-lists the
/// nodes, topics and controller (see the module docs).
async fn apply_events(b: &Arc<Host>, events: Vec<WatchEvent>) -> anyhow::Result<()> {
    let others = events.iter().any(|e| {
        let key = match e {
            WatchEvent::Put(kv) => &kv.key,
            WatchEvent::Delete { key, .. } => key,
        };
        !key.starts_with(PARTITIONS_PREFIX)
    });
    // Built on the current view; published only if no other view (an admin change's full
    // re-list on this node) was published meanwhile — else that one stands and a re-list
    // follows, so neither is lost.
    let current = b.cluster.view();
    let listed = if others {
        Some(list_without_states(b).await?)
    } else {
        None
    };
    let mut states = current.states.clone();
    let mut changed = Vec::new();
    let mut revision = current.revision;
    for e in events {
        match &e {
            WatchEvent::Put(kv) => revision = revision.max(kv.mod_revision),
            WatchEvent::Delete { mod_revision, .. } => revision = revision.max(*mod_revision),
        }
        match e {
            WatchEvent::Put(kv) if kv.key.starts_with(PARTITIONS_PREFIX) => {
                let state = PartitionStateRegistry::decode(&kv)?;
                let key = (state.value.topic_id, state.value.partition);
                if states
                    .get(&key)
                    .is_none_or(|s| s.mod_revision < state.mod_revision)
                {
                    states.insert(key, state);
                    changed.push(key);
                }
            }
            WatchEvent::Delete { key, mod_revision } if key.starts_with(PARTITIONS_PREFIX) => {
                if let Some(k) = PartitionStateRegistry::parse_key(&key)
                    && states
                        .get(&k)
                        .is_some_and(|s| s.mod_revision < mod_revision)
                {
                    states.remove(&k);
                    changed.push(k);
                }
            }
            _ => {}
        }
    }
    let view = match listed {
        Some(mut view) => {
            view.states = states;
            view.revision = revision;
            view
        }
        None => ClusterView {
            nodes: current.nodes.clone(),
            topics: current.topics.clone(),
            states,
            controller: current.controller,
            drains: current.drains.clone(),
            revision,
        },
    };
    if others {
        apply(b, &view).await?;
    } else {
        apply_roles_of(b, &view, &changed).await?;
    }
    if !b.cluster.replace_view(&current, view) {
        b.cluster.resync.notify_one();
    }
    Ok(())
}

/// Sleeps [`RETRY_DELAY`]; true if cancelled meanwhile.
async fn pause(cancel: &CancellationToken) -> bool {
    tokio::select! {
        () = cancel.cancelled() => true,
        () = tokio::time::sleep(RETRY_DELAY) => false,
    }
}

async fn open_watches(b: &Host) -> anyhow::Result<SelectAll<WatchStream>> {
    // From the revision before the re-list that follows: nothing between is missed.
    let from = b.cluster.store.current_revision().await? + 1;
    let mut all = SelectAll::new();
    for prefix in [
        NODES_PREFIX,
        TOPICS_PREFIX,
        PARTITIONS_PREFIX,
        CONTROLLER_KEY,
        tierlog_metadata::DRAINS_PREFIX,
    ] {
        all.push(b.cluster.store.watch(prefix, from).await?);
    }
    Ok(all)
}

/// Re-lists the cluster state, publishes it as the view, and applies it here.
pub(crate) async fn refresh(b: &Arc<Host>) -> anyhow::Result<()> {
    // Twice at most: the first pass may rewrite states of an earlier incarnation of this node.
    for _ in 0..2 {
        let view = list(b).await?;
        if fence_earlier_incarnation(b, &view).await? == 0 {
            apply(b, &view).await?;
            b.cluster.set_view(view);
            return Ok(());
        }
    }
    let view = list(b).await?;
    apply(b, &view).await?;
    b.cluster.set_view(view);
    Ok(())
}

/// States written before this incarnation registered still count an earlier process of this
/// node (which may have lost unflushed data) as leader or in sync. This node rewrites them
/// itself, as Kafka's controller does for a restarted broker: leadership moves to another
/// live in-sync replica (or stays here, with a new epoch, if this node is the only one), and
/// this node leaves the ISR until it has caught up again. Returns how many it rewrote.
async fn fence_earlier_incarnation(b: &Host, view: &ClusterView) -> anyhow::Result<usize> {
    let me = b.node_id;
    let registered = b.cluster.membership.registered_revision();
    let mut changes = Vec::new();
    for current in view.states.values() {
        let s = &current.value;
        if current.mod_revision >= registered || !(s.leader == me || s.isr.contains(&me)) {
            continue;
        }
        let others: Vec<_> = s
            .isr
            .iter()
            .copied()
            .filter(|r| *r != me && view.nodes.contains_key(r))
            .collect();
        let mut next = s.clone();
        if s.leader == me {
            next.leader = others.first().copied().unwrap_or(me);
            next.leader_epoch = s.leader_epoch + 1;
        }
        if !others.is_empty() {
            next.isr.retain(|r| *r != me);
        }
        next.partition_epoch = s.partition_epoch + 1;
        changes.push((current.clone(), next));
    }
    if changes.is_empty() {
        return Ok(0);
    }
    // Many partitions to a transaction: a restart of a node with thousands of partitions
    // costs a few dozen writes, not one per partition.
    let written = b
        .cluster
        .states
        .cas_many(&changes, &[])
        .await?
        .iter()
        .flatten()
        .count();
    info!(
        partitions = changes.len(),
        written, "rewrote the partition states of this node's earlier incarnation"
    );
    Ok(changes.len())
}

/// Reads nodes, topics, partition states and the controller.
async fn list(b: &Host) -> anyhow::Result<ClusterView> {
    let mut view = list_without_states(b).await?;
    view.states = b
        .cluster
        .states
        .list()
        .await?
        .into_iter()
        .map(|s| ((s.value.topic_id, s.value.partition), s))
        .collect();
    view.revision = view
        .states
        .values()
        .map(|s| s.mod_revision)
        .max()
        .unwrap_or(0);
    Ok(view)
}

/// Reads nodes, topics, the controller and the drain marks (no partition states).
async fn list_without_states(b: &Host) -> anyhow::Result<ClusterView> {
    let cluster = &b.cluster;
    let nodes = cluster.nodes.list().await?;
    let topics = b.topics.list().await?;
    let controller = cluster.election.current().await?;
    let drains = cluster.drains.list().await?;
    Ok(ClusterView {
        nodes: nodes.into_iter().map(|n| (n.id, n)).collect(),
        topics: topics.into_iter().map(|t| (t.name.clone(), t)).collect(),
        states: Default::default(),
        controller: controller.map(|c| c.value.node_id),
        drains,
        revision: 0,
    })
}

/// At start, before serving: if this node is (or is about to be) the controller, runs one
/// controller pass and re-reads, so that a lone node serves its partitions from the first
/// request. Bounded; in a cluster with another controller it returns at once.
pub(crate) async fn settle(b: &Arc<Host>) {
    let me = b.cluster.membership.info.incarnation;
    for _ in 0..40 {
        match b.cluster.election.current().await {
            Ok(Some(c)) if c.value.incarnation == me => {
                let view = b.cluster.view();
                if let Err(e) =
                    crate::cluster::controller::reconcile(&b.cluster, &view, c.mod_revision).await
                {
                    debug!(error = %e, "first controller pass failed");
                }
                if let Err(e) = refresh(b).await {
                    debug!(error = %e, "re-reading the cluster state failed");
                }
                return;
            }
            Ok(Some(_)) => return,
            Ok(None) | Err(_) => {}
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Opens and removes topics here, opens and closes partitions as their states place
/// replicas on this node, and takes each partition's role.
async fn apply(b: &Arc<Host>, view: &ClusterView) -> anyhow::Result<()> {
    {
        let _admin = b.admin.lock().await;
        // The topics are read again under the admin lock: `view` was listed before it, and a
        // CreateTopics or DeleteTopics on this node may have changed the store since. Acting
        // on the stale list would remove a topic just created here, with whatever was already
        // appended to it, or bring back one just deleted.
        let topics: BTreeMap<String, TopicMeta> = b
            .topics
            .list()
            .await?
            .into_iter()
            .map(|t| (t.name.clone(), t))
            .collect();
        let published = b.cluster.view();
        let me = b.node_id;
        for meta in topics.values() {
            let want = |i| Want::newest(view, &published, meta.id, i, me);
            match b.partitions.topic(&meta.name) {
                Some(t) if t.meta == *meta && t.partitions.matches(meta.partitions, want) => {}
                Some(t) if t.meta.id != meta.id => {
                    b.fetchers.unfollow_topic(t.meta.id);
                    b.partitions.remove(&t.meta).await?;
                    b.partitions.install(meta.clone(), want).await?;
                }
                _ => {
                    let closed = b.partitions.install(meta.clone(), want).await?;
                    unfollow(b, meta.id, &closed);
                }
            }
        }
        for t in b.partitions.all() {
            let known = topics.get(&t.meta.name).map(|m| m.id);
            if known != Some(t.meta.id) {
                info!(topic = %t.meta.name, "topic deleted in the cluster; removing it here");
                b.fetchers.unfollow_topic(t.meta.id);
                b.partitions.remove(&t.meta).await?;
            }
        }
    }
    apply_roles(b, view);
    Ok(())
}

/// Stops following partitions `closed` of a topic (their replicas left this node).
fn unfollow(b: &Host, topic: tierlog_metadata::TopicId, closed: &[i32]) {
    for i in closed {
        b.fetchers.unfollow(topic, *i);
    }
}

/// Takes the role each partition's state gives this node and points followers at leaders.
pub(crate) fn apply_roles(b: &Host, view: &ClusterView) {
    let addrs = leader_addrs(view);
    for t in b.partitions.all() {
        for p in &t.partitions {
            apply_role(b, view, &addrs, t.meta.id, p);
        }
    }
}

/// [`apply_roles`] for the partitions whose state changed, after opening those that gained
/// a replica here and closing those that lost one.
async fn apply_roles_of(
    b: &Host,
    view: &ClusterView,
    changed: &[(tierlog_metadata::TopicId, i32)],
) -> anyhow::Result<()> {
    if changed.is_empty() {
        return Ok(());
    }
    let me = b.node_id;
    let names: std::collections::HashMap<_, _> = view
        .topics
        .values()
        .map(|t| (t.id, t.name.as_str()))
        .collect();
    let hosted = |id: &tierlog_metadata::TopicId| {
        let name = names.get(id)?;
        b.partitions.topic(name).filter(|t| t.meta.id == *id)
    };
    // Topics (not yet open here ones are opened by the topic's own event) where a replica
    // came to or left this node.
    let mut moved = std::collections::BTreeSet::new();
    for (id, partition) in changed {
        let Some(t) = hosted(id) else { continue };
        let open = t.partitions.get(*partition as usize).is_some();
        match Want::of(view.state(*id, *partition), me) {
            Want::Host if !open => moved.insert(*id),
            Want::Drop if open => moved.insert(*id),
            _ => false,
        };
    }
    if !moved.is_empty() {
        let _admin = b.admin.lock().await;
        let published = b.cluster.view();
        for id in moved {
            // Read again under the lock: an admin change may have replaced it.
            let Some(t) = hosted(&id) else { continue };
            let want = |i| Want::newest(view, &published, id, i, me);
            let closed = b.partitions.install(t.meta.clone(), want).await?;
            unfollow(b, id, &closed);
        }
    }
    let addrs = leader_addrs(view);
    for (id, partition) in changed {
        if let Some(p) = hosted(id).and_then(|t| t.partitions.get(*partition as usize).cloned()) {
            apply_role(b, view, &addrs, *id, &p);
        }
    }
    Ok(())
}

fn leader_addrs(view: &ClusterView) -> BTreeMap<tierlog_metadata::NodeId, String> {
    view.nodes
        .values()
        .map(|n| (n.id, format!("{}:{}", n.host, n.port)))
        .collect()
}

/// Takes the role the view gives this node for one partition.
fn apply_role(
    b: &Host,
    view: &ClusterView,
    addrs: &BTreeMap<tierlog_metadata::NodeId, String>,
    topic_id: tierlog_metadata::TopicId,
    p: &Arc<crate::partition::Partition>,
) {
    let registered = b.cluster.membership.registered_revision();
    let Some(state) = view.states.get(&(topic_id, p.tp.partition)) else {
        // Not written yet (a topic being created) or being deleted with its topic: the role
        // stays as it is until the state says otherwise.
        return;
    };
    if state.mod_revision < registered && state.value.leader == b.node_id {
        // Leadership of an earlier incarnation: not ours until rewritten.
        p.resign();
        return;
    }
    let rv = p.apply_state(state);
    if rv.changed {
        debug!(partition = %p.tp, role = ?rv.role, leader = rv.leader, epoch = rv.epoch, "role changed");
    }
    match (rv.role, addrs.get(&rv.leader)) {
        (Role::Follower, Some(addr)) => {
            b.fetchers
                .follow(rv.leader, addr, topic_id, p.clone(), rv.epoch);
        }
        _ => b.fetchers.unfollow(topic_id, p.tp.partition),
    }
}

/// Keeps the liveness lease alive; if it lapsed (the node was cut off or paused for longer
/// than the TTL), gives up every role and registers again as a new incarnation.
pub(crate) async fn run_membership(b: Arc<Host>, cancel: CancellationToken) {
    let cluster = &b.cluster;
    let mut tick = tokio::time::interval(cluster.membership.renew_interval());
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            () = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        match cluster.membership.renew(cluster.store.as_ref()).await {
            Ok(true) => {}
            Ok(false) => {
                b.partitions.resign_all();
                b.fetchers.unfollow_all();
                loop {
                    match cluster
                        .membership
                        .register(cluster.store.as_ref(), &cluster.nodes, &cancel)
                        .await
                    {
                        Ok(_) => break,
                        Err(e) => {
                            if cancel.is_cancelled() {
                                return;
                            }
                            warn!(error = %e, "re-registering failed; retrying");
                            if pause(&cancel).await {
                                return;
                            }
                        }
                    }
                }
                cluster.resync.notify_one();
            }
            Err(e) => {
                warn!(error = %e, "renewing the liveness lease failed; writes stop if this lasts")
            }
        }
    }
}
