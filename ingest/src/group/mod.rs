//! The group coordinator: the classic consumer-group protocol (JoinGroup, SyncGroup,
//! Heartbeat, LeaveGroup) and committed offsets.
//!
//! A group moves Empty → PreparingRebalance → CompletingRebalance → Stable as in Kafka. A
//! rebalance completes as soon as every known member has rejoined — not after a fixed wait —
//! but no earlier than `group.initial.rebalance.delay` after a group leaves Empty (so a burst
//! of starting consumers lands in one generation), and no later than the members' rebalance
//! timeout (members that did not rejoin are then removed). The protocol metadata and
//! assignments are opaque bytes: client-side assignors (range, roundrobin, cooperative-sticky)
//! work unchanged.
//!
//! Concurrency: each group's state sits behind a std mutex never held across an await. A
//! JoinGroup or SyncGroup that must wait parks a oneshot sender in its member and returns the
//! receiver; the request's response future awaits it. One task per group in
//! PreparingRebalance completes the rebalance; one reaper task per node expires members whose
//! session timed out and offsets of long-empty groups.
//!
//! Group membership lives in memory (after a restart members rejoin, as after a Kafka
//! coordinator move); committed offsets live in the metadata store (`offsets`).
//!
//! The next-generation protocol (KIP-848, server-side assignment) is in `consumer`; a group
//! id belongs to one protocol at a time.

pub(crate) mod consumer;
mod error;
pub(crate) mod offsets;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{Notify, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use tierlog_metadata::SharedClock;

pub(crate) use error::GroupError;
use offsets::OffsetStore;

/// Group states, named as DescribeGroups and ListGroups report them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl GroupState {
    pub(crate) fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

/// Coordinator settings.
#[derive(Debug, Clone)]
pub(crate) struct GroupConfig {
    pub(crate) initial_rebalance_delay: Duration,
    pub(crate) min_session_timeout: Duration,
    pub(crate) max_session_timeout: Duration,
    pub(crate) offsets_retention: Duration,
    /// KIP-848 (`group.protocol=consumer`) groups: heartbeat interval and session timeout.
    pub(crate) consumer: consumer::ConsumerConfig,
}

/// A JoinGroup as the coordinator needs it.
#[derive(Debug)]
pub(crate) struct JoinRequest {
    pub(crate) group: String,
    pub(crate) member_id: String,
    pub(crate) instance_id: Option<String>,
    pub(crate) client_id: String,
    pub(crate) client_host: String,
    pub(crate) session_timeout: Duration,
    pub(crate) rebalance_timeout: Duration,
    pub(crate) protocol_type: String,
    pub(crate) protocols: Vec<(String, Bytes)>,
    /// v4+: a first join without a member id is answered MEMBER_ID_REQUIRED.
    pub(crate) require_known_member_id: bool,
}

/// What a JoinGroup is answered with.
#[derive(Debug, Clone, Default)]
pub(crate) struct JoinOutcome {
    /// None: joined.
    pub(crate) error: Option<GroupError>,
    pub(crate) generation: i32,
    pub(crate) protocol_type: Option<String>,
    pub(crate) protocol: Option<String>,
    pub(crate) leader: String,
    pub(crate) member_id: String,
    /// For the leader only: every member with its metadata for the chosen protocol.
    pub(crate) members: Vec<(String, Option<String>, Bytes)>,
}

/// What a SyncGroup is answered with.
#[derive(Debug, Clone, Default)]
pub(crate) struct SyncOutcome {
    /// None: synced.
    pub(crate) error: Option<GroupError>,
    pub(crate) protocol_type: Option<String>,
    pub(crate) protocol: Option<String>,
    pub(crate) assignment: Bytes,
}

/// Either an answer now or one to wait for.
pub(crate) enum Wait<T> {
    Now(T),
    Later(oneshot::Receiver<T>),
}

#[derive(Debug)]
struct Member {
    id: String,
    instance_id: Option<String>,
    client_id: String,
    client_host: String,
    session_timeout: Duration,
    rebalance_timeout: Duration,
    protocols: Vec<(String, Bytes)>,
    assignment: Bytes,
    join: Option<oneshot::Sender<JoinOutcome>>,
    sync: Option<oneshot::Sender<SyncOutcome>>,
    last_seen: Instant,
}

impl Member {
    fn metadata(&self, protocol: Option<&str>) -> Bytes {
        self.protocols
            .iter()
            .find(|(n, _)| Some(n.as_str()) == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }
}

#[derive(Debug)]
struct GroupInner {
    state: GroupState,
    generation: i32,
    protocol_type: Option<String>,
    protocol: Option<String>,
    leader: Option<String>,
    members: BTreeMap<String, Member>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, until they join or time out.
    pending: HashMap<String, Instant>,
    /// Static membership: `group.instance.id` → member id.
    statics: HashMap<String, String>,
    /// A rebalance may not complete before this (the initial delay)…
    min_deadline: Instant,
    /// …and completes by this at the latest (the rebalance timeout).
    max_deadline: Instant,
    /// Whether a rebalance task runs for this group.
    rebalancing: bool,
    empty_since: Instant,
}

/// One consumer group.
#[derive(Debug)]
pub(crate) struct Group {
    id: String,
    inner: Mutex<GroupInner>,
    /// Wakes the rebalance task (a member joined or left).
    wake: Notify,
}

impl Group {
    fn new(id: String, now: Instant) -> Group {
        Group {
            id,
            inner: Mutex::new(GroupInner {
                state: GroupState::Empty,
                generation: 0,
                protocol_type: None,
                protocol: None,
                leader: None,
                members: BTreeMap::new(),
                pending: HashMap::new(),
                statics: HashMap::new(),
                min_deadline: now,
                max_deadline: now,
                rebalancing: false,
                empty_since: now,
            }),
            wake: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, GroupInner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A snapshot of a group for DescribeGroups.
#[derive(Debug)]
pub(crate) struct GroupDescription {
    pub(crate) state: GroupState,
    pub(crate) protocol_type: String,
    pub(crate) protocol: String,
    /// (member id, instance id, client id, client host, metadata, assignment)
    pub(crate) members: Vec<(String, Option<String>, String, String, Bytes, Bytes)>,
}

/// The coordinator of every group on this node.
#[derive(Debug)]
pub(crate) struct Coordinator {
    groups: Mutex<HashMap<String, Arc<Group>>>,
    pub(crate) offsets: OffsetStore,
    /// Groups of the next-generation protocol (KIP-848), kept apart from `groups`: an id is in
    /// at most one of the two maps. Lock order: `consumer` before `groups`.
    pub(crate) consumer: consumer::ConsumerGroups,
    config: GroupConfig,
    clock: SharedClock,
    tracker: TaskTracker,
    cancel: CancellationToken,
}

impl Coordinator {
    /// A coordinator knowing every group that has committed offsets (as Empty groups).
    pub(crate) async fn new(
        offsets: OffsetStore,
        config: GroupConfig,
        clock: SharedClock,
        tracker: TaskTracker,
        cancel: CancellationToken,
    ) -> crate::Result<Arc<Coordinator>> {
        let known = offsets.groups().await?;
        let groups = known
            .into_iter()
            .map(|g| {
                (
                    g.clone(),
                    Arc::new(Group::new(g, Instant::from_std(clock.now()))),
                )
            })
            .collect();
        let c = Arc::new(Coordinator {
            groups: Mutex::new(groups),
            offsets,
            consumer: consumer::ConsumerGroups::new(config.consumer.clone()),
            config,
            clock,
            tracker,
            cancel,
        });
        c.tracker.spawn(c.clone().run_reaper());
        Ok(c)
    }

    /// The clock's monotonic reading, as the group timers (tokio's) measure it.
    fn now(&self) -> Instant {
        Instant::from_std(self.clock.now())
    }

    fn map(&self) -> MutexGuard<'_, HashMap<String, Arc<Group>>> {
        self.groups
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn group(&self, id: &str) -> Option<Arc<Group>> {
        self.map().get(id).cloned()
    }

    fn group_or_create(&self, id: &str) -> Arc<Group> {
        self.map()
            .entry(id.to_owned())
            .or_insert_with(|| Arc::new(Group::new(id.to_owned(), self.now())))
            .clone()
    }

    /// Makes a group known (a commit from a non-member creates an Empty group).
    pub(crate) fn ensure_group(&self, id: &str) {
        if self.consumer.contains(id) {
            return;
        }
        self.group_or_create(id);
    }

    /// JoinGroup.
    pub(crate) fn join(self: &Arc<Self>, req: JoinRequest) -> Wait<JoinOutcome> {
        let fail = |e: GroupError, member_id: &str| {
            Wait::Now(JoinOutcome {
                error: Some(e),
                generation: -1,
                member_id: member_id.to_owned(),
                ..Default::default()
            })
        };
        if req.group.is_empty() {
            return fail(GroupError::InvalidGroupId, &req.member_id);
        }
        if req.session_timeout < self.config.min_session_timeout
            || req.session_timeout > self.config.max_session_timeout
        {
            return fail(GroupError::InvalidSessionTimeout, &req.member_id);
        }
        if req.protocols.is_empty() || req.protocol_type.is_empty() {
            return fail(GroupError::InconsistentGroupProtocol, &req.member_id);
        }
        if let Err(e) = self.consumer.release_to_classic(&req.group) {
            return fail(e, &req.member_id);
        }
        let group = self.group_or_create(&req.group);
        let mut g = group.lock();
        if !g.members.is_empty()
            && (g.protocol_type.as_deref() != Some(req.protocol_type.as_str())
                || !req.protocols.iter().any(|(n, _)| {
                    g.members
                        .values()
                        .all(|m| m.protocols.iter().any(|(mn, _)| mn == n))
                }))
        {
            return fail(GroupError::InconsistentGroupProtocol, &req.member_id);
        }
        let now = self.now();
        let mut member_id = req.member_id.clone();
        let mut known_unchanged = false;
        if member_id.is_empty() {
            member_id = format!("{}-{}", req.client_id, uuid::Uuid::new_v4());
            if let Some(instance) = &req.instance_id {
                // A static member restarting: it takes over its old identity; the old member
                // id is fenced from now on.
                if let Some(old) = g.statics.get(instance).cloned()
                    && let Some(mut m) = g.members.remove(&old)
                {
                    let same = m.protocols == req.protocols;
                    m.id = member_id.clone();
                    if g.leader.as_deref() == Some(old.as_str()) {
                        g.leader = Some(member_id.clone());
                    }
                    g.members.insert(member_id.clone(), m);
                    g.statics.insert(instance.clone(), member_id.clone());
                    if same && g.state == GroupState::Stable {
                        let m = g.members.get_mut(&member_id);
                        if let Some(m) = m {
                            m.last_seen = now;
                        }
                        return Wait::Now(current_generation(&g, &member_id));
                    }
                }
            } else if req.require_known_member_id {
                g.pending
                    .insert(member_id.clone(), now + req.session_timeout);
                return fail(GroupError::MemberIdRequired, &member_id);
            }
        } else {
            if let Some(instance) = &req.instance_id
                && g.statics.get(instance).is_some_and(|id| *id != member_id)
            {
                return fail(GroupError::FencedInstanceId, &member_id);
            }
            let pending = g.pending.remove(&member_id).is_some();
            match g.members.get(&member_id) {
                Some(m) => known_unchanged = m.protocols == req.protocols,
                None if pending => {}
                None => return fail(GroupError::UnknownMemberId, &member_id),
            }
        }
        let (tx, rx) = oneshot::channel();
        let new_member = !g.members.contains_key(&member_id);
        let m = g
            .members
            .entry(member_id.clone())
            .or_insert_with(|| Member {
                id: member_id.clone(),
                instance_id: req.instance_id.clone(),
                client_id: req.client_id.clone(),
                client_host: req.client_host.clone(),
                session_timeout: req.session_timeout,
                rebalance_timeout: req.rebalance_timeout,
                protocols: Vec::new(),
                assignment: Bytes::new(),
                join: None,
                sync: None,
                last_seen: now,
            });
        m.protocols = req.protocols;
        m.session_timeout = req.session_timeout;
        m.rebalance_timeout = req.rebalance_timeout;
        m.last_seen = now;
        if let Some(instance) = &req.instance_id {
            g.statics.insert(instance.clone(), member_id.clone());
        }
        g.protocol_type = Some(req.protocol_type);
        let is_leader = g.leader.as_deref() == Some(member_id.as_str());
        if g.state == GroupState::Stable && known_unchanged && !is_leader {
            return Wait::Now(current_generation(&g, &member_id));
        }
        if let Some(m) = g.members.get_mut(&member_id)
            && let Some(old) = m.join.replace(tx)
        {
            let _ = old.send(JoinOutcome {
                error: Some(GroupError::RebalanceInProgress),
                generation: -1,
                member_id: member_id.clone(),
                ..Default::default()
            });
        }
        match g.state {
            GroupState::PreparingRebalance => {
                if new_member && now < g.min_deadline {
                    // Still inside the initial delay: give the next starting consumer its
                    // chance to land in the same generation.
                    g.min_deadline =
                        (now + self.config.initial_rebalance_delay).min(g.max_deadline);
                }
            }
            _ => self.prepare_rebalance(&group, &mut g, "member joined"),
        }
        drop(g);
        group.wake.notify_one();
        Wait::Later(rx)
    }

    /// Moves the group to PreparingRebalance and makes sure a task will complete it.
    fn prepare_rebalance(self: &Arc<Self>, group: &Arc<Group>, g: &mut GroupInner, reason: &str) {
        let now = self.now();
        let from_empty = g.state == GroupState::Empty;
        // Members waiting in SyncGroup must rejoin.
        for m in g.members.values_mut() {
            if let Some(s) = m.sync.take() {
                let _ = s.send(SyncOutcome {
                    error: Some(GroupError::RebalanceInProgress),
                    ..Default::default()
                });
            }
        }
        g.state = GroupState::PreparingRebalance;
        let rebalance_timeout = g
            .members
            .values()
            .map(|m| m.rebalance_timeout)
            .max()
            .unwrap_or(Duration::from_secs(60));
        g.max_deadline = now + rebalance_timeout;
        g.min_deadline = if from_empty {
            (now + self.config.initial_rebalance_delay).min(g.max_deadline)
        } else {
            now
        };
        debug!(group = %group.id, generation = g.generation, reason, "preparing rebalance");
        if !g.rebalancing {
            g.rebalancing = true;
            let (c, grp) = (self.clone(), group.clone());
            self.tracker
                .spawn(async move { c.run_rebalance(grp).await });
        }
    }

    /// Completes a group's rebalance once every member rejoined (after the initial delay) or
    /// its rebalance timeout passed.
    async fn run_rebalance(self: Arc<Self>, group: Arc<Group>) {
        loop {
            let wake_at = {
                let mut g = group.lock();
                if g.state != GroupState::PreparingRebalance {
                    g.rebalancing = false;
                    return;
                }
                let now = self.now();
                let all_joined = g.members.values().all(|m| m.join.is_some());
                if now >= g.min_deadline && (all_joined || now >= g.max_deadline) {
                    complete_rebalance(&group.id, &mut g, self.now());
                    g.rebalancing = false;
                    return;
                }
                if all_joined {
                    g.min_deadline
                } else {
                    g.max_deadline
                }
            };
            tokio::select! {
                biased;
                () = self.cancel.cancelled() => return,
                () = group.wake.notified() => {}
                () = tokio::time::sleep_until(wake_at) => {}
            }
        }
    }

    /// SyncGroup.
    pub(crate) fn sync(
        self: &Arc<Self>,
        group_id: &str,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
        assignments: Vec<(String, Bytes)>,
    ) -> Wait<SyncOutcome> {
        let fail = |e: GroupError| {
            Wait::Now(SyncOutcome {
                error: Some(e),
                ..Default::default()
            })
        };
        let Some(group) = self.group(group_id) else {
            return fail(GroupError::UnknownMemberId);
        };
        let mut g = group.lock();
        if let Err(e) = check_member(&g, member_id, instance_id, generation) {
            return fail(e);
        }
        match g.state {
            GroupState::PreparingRebalance => fail(GroupError::RebalanceInProgress),
            GroupState::Stable => {
                let assignment = g
                    .members
                    .get(member_id)
                    .map(|m| m.assignment.clone())
                    .unwrap_or_default();
                Wait::Now(SyncOutcome {
                    error: None,
                    protocol_type: g.protocol_type.clone(),
                    protocol: g.protocol.clone(),
                    assignment,
                })
            }
            GroupState::CompletingRebalance => {
                let (tx, rx) = oneshot::channel();
                if let Some(m) = g.members.get_mut(member_id) {
                    m.sync = Some(tx);
                    m.last_seen = self.now();
                }
                if g.leader.as_deref() == Some(member_id) {
                    let mut given: HashMap<String, Bytes> = assignments.into_iter().collect();
                    let (pt, p) = (g.protocol_type.clone(), g.protocol.clone());
                    for m in g.members.values_mut() {
                        m.assignment = given.remove(&m.id).unwrap_or_default();
                        if let Some(s) = m.sync.take() {
                            let _ = s.send(SyncOutcome {
                                error: None,
                                protocol_type: pt.clone(),
                                protocol: p.clone(),
                                assignment: m.assignment.clone(),
                            });
                        }
                    }
                    g.state = GroupState::Stable;
                    info!(group = %group.id, generation = g.generation, members = g.members.len(), "group stable");
                }
                Wait::Later(rx)
            }
            GroupState::Empty | GroupState::Dead => fail(GroupError::UnknownMemberId),
        }
    }

    /// Heartbeat.
    pub(crate) fn heartbeat(
        &self,
        group_id: &str,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
    ) -> Result<(), GroupError> {
        let Some(group) = self.group(group_id) else {
            return Err(GroupError::UnknownMemberId);
        };
        let mut g = group.lock();
        check_member(&g, member_id, instance_id, generation)?;
        if let Some(m) = g.members.get_mut(member_id) {
            m.last_seen = self.now();
        }
        match g.state {
            GroupState::PreparingRebalance => Err(GroupError::RebalanceInProgress),
            _ => Ok(()),
        }
    }

    /// LeaveGroup of one member (by member id, or by instance id for static members).
    pub(crate) fn leave(
        self: &Arc<Self>,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
    ) -> Result<(), GroupError> {
        let Some(group) = self.group(group_id) else {
            return Err(GroupError::UnknownMemberId);
        };
        let mut g = group.lock();
        let id = match instance_id {
            Some(instance) => match g.statics.get(instance) {
                Some(id) if member_id.is_empty() || id == member_id => id.clone(),
                Some(_) => return Err(GroupError::FencedInstanceId),
                None => return Err(GroupError::UnknownMemberId),
            },
            None => member_id.to_owned(),
        };
        if g.members.remove(&id).is_none() {
            return Err(GroupError::UnknownMemberId);
        }
        g.statics.retain(|_, v| *v != id);
        debug!(group = %group.id, member = %id, "member left");
        self.after_removal(&group, &mut g, "member left");
        drop(g);
        group.wake.notify_one();
        Ok(())
    }

    fn after_removal(self: &Arc<Self>, group: &Arc<Group>, g: &mut GroupInner, reason: &str) {
        if g.members.is_empty() {
            if g.state != GroupState::Empty {
                g.generation += 1;
            }
            g.state = GroupState::Empty;
            g.leader = None;
            g.protocol = None;
            // The protocol type stays (Kafka's DescribeGroups reports it for an Empty group).
            g.empty_since = self.now();
        } else if matches!(
            g.state,
            GroupState::Stable | GroupState::CompletingRebalance
        ) {
            self.prepare_rebalance(group, g, reason);
        }
    }

    /// Checks a committer as Kafka's classic coordinator does: nobody (generation -1) may
    /// commit to an empty or unknown group (an unknown one is created, a "simple" group);
    /// anyone naming a generation, a member id or an instance id must be a member of the
    /// current generation. A generation for a group that does not exist is ILLEGAL_GENERATION
    /// (GROUP_ID_NOT_FOUND from OffsetCommit v9).
    pub(crate) fn check_commit(
        &self,
        group_id: &str,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
        version: i16,
    ) -> Result<(), GroupError> {
        let group = match self.group(group_id) {
            Some(group) => group,
            None if generation >= 0 => {
                return Err(if version >= 9 {
                    GroupError::GroupIdNotFound
                } else {
                    GroupError::IllegalGeneration
                });
            }
            None => self.group_or_create(group_id),
        };
        let g = group.lock();
        if g.state == GroupState::Dead {
            return Err(GroupError::CoordinatorNotAvailable);
        }
        if generation < 0 && g.state == GroupState::Empty {
            return Ok(());
        }
        if generation >= 0 || !member_id.is_empty() || instance_id.is_some() {
            if let Some(instance) = instance_id {
                match g.statics.get(instance) {
                    None => return Err(GroupError::UnknownMemberId),
                    Some(id) if id != member_id => return Err(GroupError::FencedInstanceId),
                    Some(_) => {}
                }
            }
            check_member(&g, member_id, None, generation)?;
        } else {
            // No member id and no generation: only an empty group takes it (above).
            return Err(GroupError::UnknownMemberId);
        }
        if g.state == GroupState::CompletingRebalance {
            return Err(GroupError::RebalanceInProgress);
        }
        Ok(())
    }

    /// Groups and their states, for ListGroups.
    pub(crate) fn list(&self) -> Vec<(String, GroupState, String)> {
        let groups: Vec<Arc<Group>> = self.map().values().cloned().collect();
        let mut out: Vec<_> = groups
            .iter()
            .map(|grp| {
                let g = grp.lock();
                (
                    grp.id.clone(),
                    g.state,
                    g.protocol_type
                        .clone()
                        .unwrap_or_else(|| "consumer".to_owned()),
                )
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// DescribeGroups of one group (Dead if unknown).
    pub(crate) fn describe(&self, group_id: &str) -> GroupDescription {
        let Some(group) = self.group(group_id) else {
            return GroupDescription {
                state: GroupState::Dead,
                protocol_type: String::new(),
                protocol: String::new(),
                members: vec![],
            };
        };
        let g = group.lock();
        let stable = g.state == GroupState::Stable;
        GroupDescription {
            state: g.state,
            protocol_type: g.protocol_type.clone().unwrap_or_default(),
            protocol: g.protocol.clone().unwrap_or_default(),
            members: g
                .members
                .values()
                .map(|m| {
                    (
                        m.id.clone(),
                        m.instance_id.clone(),
                        m.client_id.clone(),
                        m.client_host.clone(),
                        m.metadata(g.protocol.as_deref()),
                        if stable {
                            m.assignment.clone()
                        } else {
                            Bytes::new()
                        },
                    )
                })
                .collect(),
        }
    }

    /// Subscribed topics of every member (decoded consumer-protocol metadata), for
    /// OffsetDelete. `None` if the group is unknown.
    pub(crate) fn subscriptions(&self, group_id: &str) -> Option<HashSet<String>> {
        if let Some(topics) = self.consumer.subscriptions(group_id) {
            return Some(topics);
        }
        let group = self.group(group_id)?;
        let g = group.lock();
        let mut topics = HashSet::new();
        for m in g.members.values() {
            topics.extend(decode_subscription(&m.metadata(g.protocol.as_deref())));
        }
        Some(topics)
    }

    /// Removes an empty group (DeleteGroups): Ok, or the Kafka error.
    pub(crate) fn remove_if_empty(&self, group_id: &str) -> Result<(), GroupError> {
        if let Some(done) = self.consumer.remove_if_empty(group_id) {
            return done;
        }
        let mut map = self.map();
        let Some(group) = map.get(group_id).cloned() else {
            return Err(GroupError::GroupIdNotFound);
        };
        let mut g = group.lock();
        if !g.members.is_empty() {
            return Err(GroupError::NonEmptyGroup);
        }
        g.state = GroupState::Dead;
        drop(g);
        map.remove(group_id);
        Ok(())
    }

    /// Expires members whose session timed out, unanswered MEMBER_ID_REQUIRED ids, and the
    /// offsets of groups empty for longer than `offsets_retention`.
    async fn run_reaper(self: Arc<Self>) {
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_offsets_sweep = self.now();
        loop {
            tokio::select! {
                biased;
                () = self.cancel.cancelled() => break,
                _ = tick.tick() => {}
            }
            let now = self.now();
            self.consumer.expire(now);
            let groups: Vec<Arc<Group>> = self.map().values().cloned().collect();
            for group in &groups {
                let mut g = group.lock();
                g.pending.retain(|_, deadline| *deadline > now);
                // A member parked in JoinGroup is covered by the rebalance timeout instead.
                let expired: Vec<String> = g
                    .members
                    .values()
                    .filter(|m| m.join.is_none() && m.last_seen + m.session_timeout < now)
                    .map(|m| m.id.clone())
                    .collect();
                if expired.is_empty() {
                    continue;
                }
                for id in &expired {
                    g.members.remove(id);
                    g.statics.retain(|_, v| v != id);
                    info!(group = %group.id, member = %id, "member session expired");
                }
                self.after_removal(group, &mut g, "session expired");
                drop(g);
                group.wake.notify_one();
            }
            let sweep_every = (self.config.offsets_retention / 2)
                .clamp(Duration::from_millis(250), Duration::from_secs(60));
            if now.duration_since(last_offsets_sweep) >= sweep_every {
                last_offsets_sweep = now;
                self.expire_offsets(&groups).await;
            }
        }
    }

    async fn expire_offsets(&self, groups: &[Arc<Group>]) {
        let retention = self.config.offsets_retention;
        for group in groups {
            let empty_long = {
                let g = group.lock();
                g.state == GroupState::Empty && g.empty_since.elapsed() >= retention
            };
            if !empty_long {
                continue;
            }
            let cutoff = self.clock.now_ms() - retention.as_millis() as i64;
            match self.offsets.fetch(&group.id).await {
                Ok(all) => {
                    let old: Vec<(String, i32)> = all
                        .into_iter()
                        .filter(|(_, o)| o.commit_ms < cutoff)
                        .map(|(k, _)| k)
                        .collect();
                    if !old.is_empty() {
                        match self.offsets.delete(&group.id, &old).await {
                            Ok(()) => {
                                info!(group = %group.id, partitions = old.len(), "expired committed offsets")
                            }
                            Err(e) => {
                                warn!(group = %group.id, error = %e, "expiring offsets failed")
                            }
                        }
                    }
                }
                Err(e) => warn!(group = %group.id, error = %e, "reading offsets to expire failed"),
            }
        }
    }
}

fn check_member(
    g: &GroupInner,
    member_id: &str,
    instance_id: Option<&str>,
    generation: i32,
) -> Result<(), GroupError> {
    if let Some(instance) = instance_id
        && g.statics.get(instance).is_some_and(|id| id != member_id)
    {
        return Err(GroupError::FencedInstanceId);
    }
    if !g.members.contains_key(member_id) {
        return Err(GroupError::UnknownMemberId);
    }
    if generation != g.generation {
        return Err(GroupError::IllegalGeneration);
    }
    Ok(())
}

fn current_generation(g: &GroupInner, member_id: &str) -> JoinOutcome {
    JoinOutcome {
        error: None,
        generation: g.generation,
        protocol_type: g.protocol_type.clone(),
        protocol: g.protocol.clone(),
        leader: g.leader.clone().unwrap_or_default(),
        member_id: member_id.to_owned(),
        members: Vec::new(),
    }
}

/// Ends PreparingRebalance: drops members that did not rejoin, bumps the generation, picks the
/// protocol and the leader, and answers every parked JoinGroup.
fn complete_rebalance(group_id: &str, g: &mut GroupInner, now: Instant) {
    let gone: Vec<String> = g
        .members
        .values()
        .filter(|m| m.join.is_none())
        .map(|m| m.id.clone())
        .collect();
    for id in &gone {
        g.members.remove(id);
        g.statics.retain(|_, v| v != id);
    }
    g.generation += 1;
    if g.members.is_empty() {
        g.state = GroupState::Empty;
        g.leader = None;
        g.protocol = None;
        g.empty_since = now;
        return;
    }
    // The first protocol, in the leader's order of preference, that every member supports.
    let leader = match &g.leader {
        Some(l) if g.members.contains_key(l) => l.clone(),
        _ => g.members.keys().next().cloned().unwrap_or_default(),
    };
    let protocol = g.members.get(&leader).and_then(|lm| {
        lm.protocols.iter().map(|(n, _)| n.clone()).find(|n| {
            g.members
                .values()
                .all(|m| m.protocols.iter().any(|(mn, _)| mn == n))
        })
    });
    g.leader = Some(leader.clone());
    g.protocol = protocol;
    g.state = GroupState::CompletingRebalance;
    let all: Vec<(String, Option<String>, Bytes)> = g
        .members
        .values()
        .map(|m| {
            (
                m.id.clone(),
                m.instance_id.clone(),
                m.metadata(g.protocol.as_deref()),
            )
        })
        .collect();
    let (generation, pt, p) = (g.generation, g.protocol_type.clone(), g.protocol.clone());
    for m in g.members.values_mut() {
        m.last_seen = now;
        if let Some(tx) = m.join.take() {
            let _ = tx.send(JoinOutcome {
                error: None,
                generation,
                protocol_type: pt.clone(),
                protocol: p.clone(),
                leader: leader.clone(),
                member_id: m.id.clone(),
                members: if m.id == leader {
                    all.clone()
                } else {
                    Vec::new()
                },
            });
        }
    }
    info!(group = group_id, generation, members = all.len(), leader = %leader, dropped = gone.len(), "rebalance completed");
}

/// Topics of a consumer-protocol subscription (version i16, array of strings, …); empty if
/// the bytes are not one.
fn decode_subscription(b: &[u8]) -> Vec<String> {
    use bytes::Buf;
    let mut b = b;
    let mut out = Vec::new();
    if b.remaining() < 6 {
        return out;
    }
    b.advance(2);
    let n = b.get_i32();
    for _ in 0..n.max(0) {
        if b.remaining() < 2 {
            break;
        }
        let len = b.get_i16();
        let Ok(len) = usize::try_from(len) else { break };
        if b.remaining() < len {
            break;
        }
        out.push(String::from_utf8_lossy(&b[..len]).into_owned());
        b.advance(len);
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn coordinator(delay: Duration) -> Arc<Coordinator> {
        let rt_tracker = TaskTracker::new();
        let offsets = OffsetStore::new(Arc::new(tierlog_metadata::MemoryStore::new()));
        let config = GroupConfig {
            initial_rebalance_delay: delay,
            min_session_timeout: Duration::from_millis(100),
            max_session_timeout: Duration::from_secs(600),
            offsets_retention: Duration::from_secs(3600),
            consumer: consumer::ConsumerConfig::default(),
        };
        let groups = Mutex::new(HashMap::new());
        let c = Arc::new(Coordinator {
            groups,
            offsets,
            consumer: consumer::ConsumerGroups::default(),
            config,
            clock: tierlog_metadata::SystemClock::shared(),
            tracker: rt_tracker,
            cancel: CancellationToken::new(),
        });
        c.tracker.spawn(c.clone().run_reaper());
        c
    }

    fn join_req(member: &str, session_ms: u64) -> JoinRequest {
        JoinRequest {
            group: "g".into(),
            member_id: member.into(),
            instance_id: None,
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            session_timeout: Duration::from_millis(session_ms),
            rebalance_timeout: Duration::from_secs(5),
            protocol_type: "consumer".into(),
            protocols: vec![("range".into(), Bytes::from_static(b"m"))],
            require_known_member_id: true,
        }
    }

    async fn wait<T>(w: Wait<T>) -> T {
        match w {
            Wait::Now(t) => t,
            Wait::Later(rx) => rx.await.unwrap(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn two_members_join_one_generation_then_sync_to_stable() {
        let c = coordinator(Duration::from_millis(300));
        let first = wait(c.join(join_req("", 10_000))).await;
        assert_eq!(first.error, Some(GroupError::MemberIdRequired));
        let a_id = first.member_id.clone();
        let b_first = wait(c.join(join_req("", 10_000))).await;
        let (a, b) = tokio::join!(
            wait(c.join(join_req(&a_id, 10_000))),
            wait(c.join(join_req(&b_first.member_id, 10_000)))
        );
        assert_eq!((a.error, b.error), (None, None));
        assert_eq!(a.generation, 1);
        assert_eq!(a.generation, b.generation);
        let leader = if a.members.is_empty() { &b } else { &a };
        assert_eq!(leader.members.len(), 2);
        let follower = if a.members.is_empty() { &a } else { &b };
        let f_sync = c.sync("g", 1, &follower.member_id, None, vec![]);
        let assignments = vec![
            (a.member_id.clone(), Bytes::from_static(b"A")),
            (b.member_id.clone(), Bytes::from_static(b"B")),
        ];
        let l_sync = wait(c.sync("g", 1, &leader.member_id, None, assignments)).await;
        let f_sync = wait(f_sync).await;
        assert_eq!(l_sync.error, None);
        assert!(matches!(f_sync.assignment.as_ref(), b"A" | b"B"));
        assert_ne!(f_sync.assignment, l_sync.assignment);
        assert_eq!(c.describe("g").state, GroupState::Stable);
        assert_eq!(c.heartbeat("g", 1, &a.member_id, None), Ok(()));
        assert_eq!(
            c.heartbeat("g", 0, &a.member_id, None),
            Err(GroupError::IllegalGeneration)
        );
        assert_eq!(
            c.heartbeat("g", 1, "nobody", None),
            Err(GroupError::UnknownMemberId)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_member_is_evicted_and_the_other_must_rejoin() {
        let c = coordinator(Duration::ZERO);
        let id = wait(c.join(join_req("", 1_000))).await.member_id;
        let joined = wait(c.join(join_req(&id, 1_000))).await;
        wait(c.sync(
            "g",
            joined.generation,
            &id,
            None,
            vec![(id.clone(), Bytes::new())],
        ))
        .await;
        let other = wait(c.join(join_req("", 60_000))).await.member_id;
        let pending = c.join(join_req(&other, 60_000));
        // The first member neither heartbeats nor rejoins: after its session it is dropped and
        // the rebalance completes with the second member alone.
        let done = wait(pending).await;
        assert_eq!(done.error, None);
        assert_eq!(done.members.len(), 1);
        assert_eq!(c.describe("g").members.len(), 1);
        assert_eq!(
            c.heartbeat("g", done.generation, &id, None),
            Err(GroupError::UnknownMemberId)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn leaving_last_member_empties_the_group_and_allows_simple_commits() {
        let c = coordinator(Duration::ZERO);
        let id = wait(c.join(join_req("", 10_000))).await.member_id;
        let j = wait(c.join(join_req(&id, 10_000))).await;
        assert_eq!(
            c.check_commit("g", -1, "", None, 8),
            Err(GroupError::UnknownMemberId)
        );
        assert_eq!(
            c.check_commit("g", j.generation, &id, None, 8),
            Err(GroupError::RebalanceInProgress)
        );
        assert_eq!(
            c.check_commit("g", j.generation, "ghost", None, 8),
            Err(GroupError::UnknownMemberId)
        );
        assert_eq!(
            c.check_commit("g", j.generation - 1, &id, None, 8),
            Err(GroupError::IllegalGeneration)
        );
        assert_eq!(c.leave("g", &id, None), Ok(()));
        assert_eq!(c.describe("g").state, GroupState::Empty);
        assert_eq!(c.describe("g").protocol_type, "consumer");
        assert_eq!(c.check_commit("g", -1, "", None, 8), Ok(()));
        // Generation -1 with a member id: still a simple commit to an empty group (Kafka).
        assert_eq!(c.check_commit("g", -1, &id, None, 8), Ok(()));
        assert_eq!(
            c.check_commit("g", j.generation, &id, None, 8),
            Err(GroupError::UnknownMemberId)
        );
        // A generation for a group that does not exist.
        assert_eq!(
            c.check_commit("nope", 1, "m", None, 8),
            Err(GroupError::IllegalGeneration)
        );
        assert_eq!(
            c.check_commit("nope", 1, "m", None, 9),
            Err(GroupError::GroupIdNotFound)
        );
        assert!(c.group("nope").is_none());
        assert_eq!(c.check_commit("simple", -1, "", None, 8), Ok(()));
        assert!(c.group("simple").is_some());
        assert_eq!(c.leave("g", &id, None), Err(GroupError::UnknownMemberId));
        assert!(c.remove_if_empty("g").is_ok());
        assert_eq!(c.remove_if_empty("g"), Err(GroupError::GroupIdNotFound));
    }

    #[test]
    fn decodes_consumer_subscriptions() {
        let mut b = vec![0u8, 1, 0, 0, 0, 2];
        for t in ["orders", "x"] {
            b.extend_from_slice(&(t.len() as i16).to_be_bytes());
            b.extend_from_slice(t.as_bytes());
        }
        assert_eq!(
            decode_subscription(&b),
            vec!["orders".to_owned(), "x".to_owned()]
        );
        assert!(decode_subscription(&[0, 1, 0x7f, 0xff, 0xff, 0xff, 0, 9]).is_empty());
    }
}
