//! The next-generation consumer group protocol (KIP-848, `group.protocol=consumer`):
//! ConsumerGroupHeartbeat and ConsumerGroupDescribe, with the assignment computed here, on the
//! coordinator, by the `uniform` (default) or `range` assignor.
//!
//! Lifecycle. A member joins by heartbeating with epoch 0 and its subscription, heartbeats
//! every `heartbeat_interval` (told in each response), and leaves with epoch -1, or -2 for a
//! static member (`group.instance.id`) that will come back and take over its partitions. A
//! member that does not heartbeat for `session_timeout`, or does not revoke partitions within
//! its rebalance timeout, is removed. Three epochs drive a group, as in Kafka:
//! - the *group epoch* bumps when a member joins or goes, a subscription or the requested
//!   assignor changes, or a subscribed topic appears or changes its partition count;
//! - the *assignment epoch* is the group epoch the *target assignment* was computed for. The
//!   target is computed as soon as the group epoch bumps, so the two differ only inside a call;
//! - each *member epoch* reaches the assignment epoch as the member converges.
//!
//! A member converges incrementally, one heartbeat at a time: first it is asked to give up the
//! partitions it must lose, keeping its epoch; it reports them revoked by leaving them out of
//! the heartbeat's `topic_partitions`; then it moves to the new epoch and is given the new
//! partitions that are free. A partition still held by its previous owner is withheld
//! (UNRELEASED) until that owner reports it revoked, so no partition is ever owned by two
//! members.
//!
//! Membership lives in memory, like the classic groups: after a coordinator restart members
//! learn UNKNOWN_MEMBER_ID and rejoin. Committed offsets are shared with the classic protocol
//! (`offsets`). A group id belongs to one protocol at a time: a group with members of one
//! protocol refuses the other (INCONSISTENT_GROUP_PROTOCOL); an empty group of one protocol is
//! taken over by the other. That check is not atomic across the two protocols' maps (a lock
//! order consumer → classic is kept, so there is no deadlock, but two first joins racing in
//! the same instant could both succeed).
//!
//! Regular-expression subscriptions (`subscribed_topic_regex`) are evaluated here, as Kafka
//! does: the pattern must match a whole topic name (Kafka uses RE2/J, whose syntax the `regex`
//! crate shares for what topic names can contain; a pattern that does not compile is
//! INVALID_REGULAR_EXPRESSION), only topics the member may describe count, and a group's
//! patterns are evaluated again at most every [`REGEX_REFRESH_INTERVAL`] on a heartbeat, so
//! topics created later join the subscription and deleted ones leave it. A member's topics
//! are its named topics and those its pattern matches.
//!
//! Not built: rack-aware
//! assignment (rack ids are kept and described only), a group size cap
//! (GROUP_MAX_SIZE_REACHED is never sent; Kafka's default cap is unbounded too), and members
//! of the classic protocol inside a consumer group (Kafka's online upgrade).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;
use tracing::{debug, info};
use uuid::Uuid;

use super::{Coordinator, GroupError, GroupState};
use crate::dynamic_config::{DynamicConfigs, StaticSettings};

/// Partitions by topic id, the shape of every assignment on the wire.
pub(crate) type Assignment = BTreeMap<Uuid, BTreeSet<i32>>;

/// Kafka's `group.consumer.heartbeat.interval.ms` default.
pub(crate) const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(5);
/// Kafka's `group.consumer.session.timeout.ms` default.
pub(crate) const SESSION_TIMEOUT: Duration = Duration::from_secs(45);
/// How often a group's regular expressions are evaluated again against the topics that
/// exist (Kafka's `REGEX_BATCH_REFRESH_INTERVAL_MS`). A new pattern is evaluated at once.
pub(crate) const REGEX_REFRESH_INTERVAL: Duration = Duration::from_secs(10);
/// The server-side assignors, the first being the default.
pub(crate) const ASSIGNORS: [&str; 2] = ["uniform", "range"];

/// Timing of the consumer protocol. The session timeout is the broker's (clients cannot set
/// it with this protocol): shorter notices dead consumers sooner, longer tolerates pauses.
/// Each group may set its own (Kafka's GROUP configs `consumer.session.timeout.ms` and
/// `consumer.heartbeat.interval.ms`), read from `groups` on every heartbeat and expiry pass,
/// so a change applies from the next one.
#[derive(Debug, Clone)]
pub(crate) struct ConsumerConfig {
    /// The node's settings and every group's own, kept current from the metadata store.
    pub(crate) groups: Arc<DynamicConfigs>,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        ConsumerConfig {
            groups: Arc::new(DynamicConfigs::new(None, StaticSettings::default())),
        }
    }
}

impl ConsumerConfig {
    /// A group's (session timeout, heartbeat interval).
    fn timing(&self, group: &str) -> (Duration, Duration) {
        self.groups.group_timing(group)
    }
}

/// What the coordinator needs to know of a topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TopicMeta {
    pub(crate) id: Uuid,
    pub(crate) partitions: i32,
}

/// The topics a heartbeat may subscribe to, as the member asking sees them.
pub(crate) trait TopicLookup {
    /// A topic's id and partition count, if it exists.
    fn meta(&self, name: &str) -> Option<TopicMeta>;
    /// Every topic the member may describe (what a regular expression is matched against).
    fn names(&self) -> Vec<String>;
}

/// A lookup by name that lists no topics (tests of subscriptions by name).
#[cfg(test)]
impl<F: Fn(&str) -> Option<TopicMeta>> TopicLookup for F {
    fn meta(&self, name: &str) -> Option<TopicMeta> {
        self(name)
    }
    fn names(&self) -> Vec<String> {
        Vec::new()
    }
}

/// A subscription pattern compiled to match whole topic names, as RE2/J's `matches()` does;
/// the error is the compiler's message.
fn compile_regex(pattern: &str) -> Result<regex::Regex, String> {
    regex::Regex::new(&format!("^(?:{pattern})$")).map_err(|e| match e {
        regex::Error::Syntax(m) => m,
        other => other.to_string(),
    })
}

/// A ConsumerGroupHeartbeat as the coordinator needs it. `None` fields did not change since
/// the member's previous heartbeat.
#[derive(Debug, Clone, Default)]
pub(crate) struct Heartbeat {
    pub(crate) version: i16,
    pub(crate) group: String,
    pub(crate) member_id: String,
    pub(crate) member_epoch: i32,
    pub(crate) instance_id: Option<String>,
    pub(crate) rack_id: Option<String>,
    /// -1 if unchanged.
    pub(crate) rebalance_timeout_ms: i32,
    pub(crate) subscribed_topic_names: Option<Vec<String>>,
    pub(crate) subscribed_topic_regex: Option<String>,
    pub(crate) server_assignor: Option<String>,
    /// The partitions the member owns right now.
    pub(crate) owned: Option<Assignment>,
    pub(crate) client_id: String,
    pub(crate) client_host: String,
}

/// A successful heartbeat's answer.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Beat {
    pub(crate) member_id: String,
    pub(crate) member_epoch: i32,
    pub(crate) heartbeat_interval_ms: i32,
    /// The member's whole current assignment, sent when it changed or on a full request.
    pub(crate) assignment: Option<Assignment>,
}

/// A refused request: the Kafka error and a message for the client.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Refused {
    pub(crate) error: GroupError,
    pub(crate) message: String,
}

fn refuse<T>(error: GroupError, message: impl Into<String>) -> Result<T, Refused> {
    Err(Refused {
        error,
        message: message.into(),
    })
}

/// Where a member stands in reconciling towards its target assignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MemberState {
    /// At the assignment epoch with everything it can have.
    Stable,
    /// Must revoke `pending_revocation` before it moves on; keeps its epoch meanwhile.
    UnrevokedPartitions,
    /// At the new epoch, but some target partitions are still held by their previous owners.
    UnreleasedPartitions,
}

#[derive(Debug, Clone)]
struct Member {
    id: String,
    instance_id: Option<String>,
    rack_id: Option<String>,
    client_id: String,
    client_host: String,
    /// -2 while a static member is away (it left with epoch -2).
    epoch: i32,
    previous_epoch: i32,
    state: MemberState,
    subscribed: BTreeSet<String>,
    /// The subscription pattern (never empty).
    regex: Option<String>,
    server_assignor: Option<String>,
    rebalance_timeout: Duration,
    /// What the member may own now (what it is told).
    assigned: Assignment,
    /// What it must give up; still counted as its own until it reports them revoked.
    pending_revocation: Assignment,
    last_seen: Instant,
    /// Set while revoking: the member is removed if it has not revoked by then.
    revoke_deadline: Option<Instant>,
}

impl Member {
    fn new(id: String, now: Instant) -> Member {
        Member {
            id,
            instance_id: None,
            rack_id: None,
            client_id: String::new(),
            client_host: String::new(),
            epoch: 0,
            previous_epoch: -1,
            state: MemberState::Stable,
            subscribed: BTreeSet::new(),
            regex: None,
            server_assignor: None,
            rebalance_timeout: Duration::from_secs(300),
            assigned: Assignment::new(),
            pending_revocation: Assignment::new(),
            last_seen: now,
            revoke_deadline: None,
        }
    }

    fn set_epoch(&mut self, epoch: i32) {
        if epoch != self.epoch {
            self.previous_epoch = self.epoch;
            self.epoch = epoch;
        }
    }
}

/// Whether `owned` still holds any of `revoking`. A member that did not report what it owns
/// (`None`) is assumed to still hold everything.
fn owns_any(owned: Option<&Assignment>, revoking: &Assignment) -> bool {
    let Some(owned) = owned else { return true };
    owned.iter().any(|(t, ps)| {
        revoking
            .get(t)
            .is_some_and(|r| ps.iter().any(|p| r.contains(p)))
    })
}

fn is_subset(a: &Assignment, b: &Assignment) -> bool {
    a.iter().all(|(t, ps)| {
        ps.is_empty() || b.get(t).is_some_and(|bs| ps.iter().all(|p| bs.contains(p)))
    })
}

/// One reconciliation step of `m` towards `target` (Kafka's CurrentAssignmentBuilder):
/// `taken` holds every partition another member owns or still has to revoke.
fn reconcile(
    m: &mut Member,
    target: &Assignment,
    target_epoch: i32,
    owned: Option<&Assignment>,
    taken: &HashSet<(Uuid, i32)>,
) {
    match m.state {
        MemberState::Stable if m.epoch == target_epoch => {}
        MemberState::UnrevokedPartitions if owns_any(owned, &m.pending_revocation) => {}
        _ => next_assignment(m, target, target_epoch, owned, taken),
    }
}

fn next_assignment(
    m: &mut Member,
    target: &Assignment,
    target_epoch: i32,
    owned: Option<&Assignment>,
    taken: &HashSet<(Uuid, i32)>,
) {
    let empty = BTreeSet::new();
    let mut keep = Assignment::new();
    let mut revoke = Assignment::new();
    let mut add = Assignment::new();
    let mut unreleased = false;
    let topics: BTreeSet<Uuid> = target.keys().chain(m.assigned.keys()).copied().collect();
    for t in topics {
        let want = target.get(&t).unwrap_or(&empty);
        let have = m.assigned.get(&t).unwrap_or(&empty);
        for p in have {
            let to = if want.contains(p) {
                &mut keep
            } else {
                &mut revoke
            };
            to.entry(t).or_default().insert(*p);
        }
        for p in want.difference(have) {
            if taken.contains(&(t, *p)) {
                unreleased = true;
            } else {
                add.entry(t).or_default().insert(*p);
            }
        }
    }
    if !revoke.is_empty() && owns_any(owned, &revoke) {
        // Revoke first, in the current epoch; nothing new until the member confirms.
        m.state = MemberState::UnrevokedPartitions;
        m.assigned = keep;
        m.pending_revocation = revoke;
        return;
    }
    for (t, ps) in add {
        keep.entry(t).or_default().extend(ps);
    }
    m.state = if unreleased {
        MemberState::UnreleasedPartitions
    } else {
        MemberState::Stable
    };
    m.set_epoch(target_epoch);
    m.assigned = keep;
    m.pending_revocation.clear();
}

/// What an assignor knows of one member.
#[derive(Debug, Clone, Default)]
pub(crate) struct MemberSpec {
    pub(crate) topics: BTreeSet<Uuid>,
    /// The member's previous target, which the uniform assignor keeps where it can.
    pub(crate) previous: Assignment,
}

/// The uniform assignor: every partition of a subscribed topic to some subscriber, members'
/// partition counts within one of each other wherever subscriptions allow, and sticky: a
/// member keeps its previous partitions unless balance requires moving them.
pub(crate) fn assign_uniform(
    members: &BTreeMap<String, MemberSpec>,
    topics: &BTreeMap<Uuid, i32>,
) -> BTreeMap<String, Assignment> {
    let mut out: BTreeMap<String, Assignment> = members
        .keys()
        .map(|id| (id.clone(), Assignment::new()))
        .collect();
    let mut count: BTreeMap<&str, usize> = members.keys().map(|id| (id.as_str(), 0)).collect();
    let mut owner: HashMap<(Uuid, i32), &str> = HashMap::new();
    let eligible = |t: Uuid| {
        members
            .iter()
            .filter(move |(_, s)| s.topics.contains(&t))
            .map(|(id, _)| id.as_str())
    };
    // 1. Keep what is still valid.
    for (id, spec) in members {
        for (t, ps) in &spec.previous {
            let Some(&n) = topics.get(t) else { continue };
            if !spec.topics.contains(t) {
                continue;
            }
            for &p in ps.iter().filter(|&&p| p < n) {
                if let std::collections::hash_map::Entry::Vacant(e) = owner.entry((*t, p)) {
                    e.insert(id.as_str());
                    *count.entry(id.as_str()).or_default() += 1;
                }
            }
        }
    }
    // 2. Give each free partition to its least loaded subscriber.
    for (&t, &n) in topics {
        for p in 0..n {
            if owner.contains_key(&(t, p)) {
                continue;
            }
            if let Some(id) = eligible(t).min_by_key(|id| (count[id], *id)) {
                owner.insert((t, p), id);
                *count.entry(id).or_default() += 1;
            }
        }
    }
    // 3. Move partitions from the most to the least loaded subscriber until no move helps.
    //    Each move lowers the sum of squared counts, so this ends.
    loop {
        let mut by_load: Vec<&str> = count.keys().copied().collect();
        by_load.sort_by_key(|id| (std::cmp::Reverse(count[id]), *id));
        let mut moved = None;
        'find: for from in by_load {
            let mut mine: Vec<(Uuid, i32)> = owner
                .iter()
                .filter(|(_, o)| **o == from)
                .map(|(k, _)| *k)
                .collect();
            mine.sort_unstable();
            for (t, p) in mine.into_iter().rev() {
                if let Some(to) = eligible(t)
                    .filter(|to| count[to] + 1 < count[from])
                    .min_by_key(|id| (count[id], *id))
                {
                    moved = Some(((t, p), from, to));
                    break 'find;
                }
            }
        }
        let Some((tp, from, to)) = moved else { break };
        owner.insert(tp, to);
        *count.entry(from).or_default() -= 1;
        *count.entry(to).or_default() += 1;
    }
    for ((t, p), id) in owner {
        if let Some(a) = out.get_mut(id) {
            a.entry(t).or_default().insert(p);
        }
    }
    out
}

/// The range assignor: per topic, its subscribers in member-id order each get one contiguous
/// range of partitions, the first `partitions % subscribers` one partition more.
pub(crate) fn assign_range(
    members: &BTreeMap<String, MemberSpec>,
    topics: &BTreeMap<Uuid, i32>,
) -> BTreeMap<String, Assignment> {
    let mut out: BTreeMap<String, Assignment> = members
        .keys()
        .map(|id| (id.clone(), Assignment::new()))
        .collect();
    for (&t, &n) in topics {
        let subs: Vec<&String> = members
            .iter()
            .filter(|(_, s)| s.topics.contains(&t))
            .map(|(id, _)| id)
            .collect();
        if subs.is_empty() {
            continue;
        }
        let m = subs.len() as i32;
        let (quota, extra) = (n / m, n % m);
        let mut start = 0;
        for (i, id) in subs.into_iter().enumerate() {
            let len = quota + i32::from((i as i32) < extra);
            if len > 0
                && let Some(a) = out.get_mut(id)
            {
                a.entry(t).or_default().extend(start..start + len);
            }
            start += len;
        }
    }
    out
}

#[derive(Debug)]
struct Group {
    epoch: i32,
    assignment_epoch: i32,
    assignor: &'static str,
    members: BTreeMap<String, Member>,
    /// Static membership: instance id → member id.
    statics: HashMap<String, String>,
    /// The target assignment of the assignment epoch, by member id.
    target: BTreeMap<String, Assignment>,
    /// The subscribed topics that exist, as of the last heartbeat.
    topics: BTreeMap<String, TopicMeta>,
    /// Each subscription pattern of a member and the topic names it matched when last
    /// evaluated.
    resolved: BTreeMap<String, BTreeSet<String>>,
    /// When the patterns were last evaluated.
    regexes_refreshed: Option<Instant>,
}

impl Group {
    fn new() -> Group {
        Group {
            epoch: 0,
            assignment_epoch: 0,
            assignor: ASSIGNORS[0],
            members: BTreeMap::new(),
            statics: HashMap::new(),
            target: BTreeMap::new(),
            topics: BTreeMap::new(),
            resolved: BTreeMap::new(),
            regexes_refreshed: None,
        }
    }

    /// A member's topics: those it names and those its pattern matched.
    fn member_topics<'a>(&'a self, m: &'a Member) -> impl Iterator<Item = &'a String> + 'a {
        let matched = m.regex.as_ref().and_then(|r| self.resolved.get(r));
        m.subscribed.iter().chain(matched.into_iter().flatten())
    }

    /// Every topic some member subscribes to, by name or by pattern.
    fn subscribed_names(&self) -> BTreeSet<String> {
        self.members
            .values()
            .flat_map(|m| self.member_topics(m))
            .cloned()
            .collect()
    }

    /// Forgets what patterns no member uses any more matched; returns the patterns in use.
    fn forget_unused_regexes(&mut self) -> BTreeSet<String> {
        let used: BTreeSet<String> = self
            .members
            .values()
            .filter_map(|m| m.regex.clone())
            .collect();
        self.resolved.retain(|r, _| used.contains(r));
        used
    }

    /// Evaluates the members' patterns against the topics `lookup` lists, when one has never
    /// been evaluated or the last evaluation is [`REGEX_REFRESH_INTERVAL`] old. Forgets
    /// patterns no member uses. True if what some pattern matches changed.
    fn refresh_regexes(&mut self, lookup: &dyn TopicLookup, now: Instant) -> bool {
        let used = self.forget_unused_regexes();
        let due = self
            .regexes_refreshed
            .is_none_or(|at| now >= at + REGEX_REFRESH_INTERVAL);
        let unresolved = used.iter().any(|r| !self.resolved.contains_key(r));
        if used.is_empty() || !(due || unresolved) {
            return false;
        }
        let names = lookup.names();
        let mut changed = false;
        for pattern in used {
            // Patterns were checked when members sent them.
            let Ok(re) = compile_regex(&pattern) else {
                continue;
            };
            let matched: BTreeSet<String> =
                names.iter().filter(|n| re.is_match(n)).cloned().collect();
            if self.resolved.get(&pattern) != Some(&matched) {
                changed = true;
                self.resolved.insert(pattern, matched);
            }
        }
        self.regexes_refreshed = Some(now);
        changed
    }

    /// Kafka's consumer group states.
    fn state(&self) -> &'static str {
        if self.members.is_empty() {
            "Empty"
        } else if self.epoch > self.assignment_epoch {
            "Assigning"
        } else if self
            .members
            .values()
            .any(|m| m.epoch != self.assignment_epoch || m.state != MemberState::Stable)
        {
            "Reconciling"
        } else {
            "Stable"
        }
    }

    /// The assignor most members asked for (the default if none did).
    fn preferred_assignor(&self) -> &'static str {
        let mut votes: BTreeMap<&'static str, usize> = BTreeMap::new();
        for m in self.members.values() {
            if let Some(a) = &m.server_assignor
                && let Some(known) = ASSIGNORS.iter().find(|k| *k == a)
            {
                *votes.entry(known).or_default() += 1;
            }
        }
        votes
            .into_iter()
            .max_by_key(|(name, n)| (*n, std::cmp::Reverse(*name)))
            .map_or(ASSIGNORS[0], |(name, _)| name)
    }

    /// Computes the target assignment for the group epoch.
    fn compute_target(&mut self) {
        let specs: BTreeMap<String, MemberSpec> = self
            .members
            .values()
            .map(|m| {
                let topics = self
                    .member_topics(m)
                    .filter_map(|n| self.topics.get(n).map(|t| t.id))
                    .collect();
                let previous = self.target.get(&m.id).cloned().unwrap_or_default();
                (m.id.clone(), MemberSpec { topics, previous })
            })
            .collect();
        let counts: BTreeMap<Uuid, i32> =
            self.topics.values().map(|t| (t.id, t.partitions)).collect();
        self.assignor = self.preferred_assignor();
        self.target = match self.assignor {
            "range" => assign_range(&specs, &counts),
            _ => assign_uniform(&specs, &counts),
        };
        self.assignment_epoch = self.epoch;
    }

    /// Refreshes the metadata of the subscribed topics; true if it changed.
    fn refresh_topics(&mut self, lookup: &dyn TopicLookup) -> bool {
        let fresh: BTreeMap<String, TopicMeta> = self
            .subscribed_names()
            .into_iter()
            .filter_map(|n| lookup.meta(&n).filter(|t| t.partitions > 0).map(|t| (n, t)))
            .collect();
        let changed = fresh != self.topics;
        self.topics = fresh;
        changed
    }

    /// Partitions owned or being revoked by members other than `except`.
    fn taken_by_others(&self, except: &str) -> HashSet<(Uuid, i32)> {
        let mut taken = HashSet::new();
        for m in self.members.values().filter(|m| m.id != except) {
            for a in [&m.assigned, &m.pending_revocation] {
                for (t, ps) in a {
                    taken.extend(ps.iter().map(|p| (*t, *p)));
                }
            }
        }
        taken
    }

    /// Removes a member for good: bumps the group epoch and reassigns.
    fn remove(&mut self, member_id: &str) -> Option<Member> {
        let m = self.members.remove(member_id)?;
        self.statics.retain(|_, v| v != member_id);
        self.target.remove(member_id);
        if m.regex.is_some() {
            self.forget_unused_regexes();
        }
        let names = self.subscribed_names();
        self.topics.retain(|n, _| names.contains(n));
        self.epoch += 1;
        self.compute_target();
        Some(m)
    }

    /// A heartbeat of a joining (epoch 0) or joined member.
    fn heartbeat(
        &mut self,
        group_id: &str,
        req: Heartbeat,
        lookup: &dyn TopicLookup,
        config: &ConsumerConfig,
        now: Instant,
    ) -> Result<Beat, Refused> {
        let joining = req.member_epoch == 0;
        let mut member_id = req.member_id.clone();
        // Find the member, or make room for a new one.
        let existing = match &req.instance_id {
            Some(instance) => match self.statics.get(instance).cloned() {
                Some(old) if joining && old != member_id => {
                    let away = self.members.get(&old).is_some_and(|m| m.epoch == -2);
                    if !away {
                        return refuse(
                            GroupError::UnreleasedInstanceId,
                            format!("static member {instance} is still in use by member {old}"),
                        );
                    }
                    // The static member is back under a new member id: it takes over the old
                    // member's epoch and partitions, and the group epoch does not move.
                    if member_id.is_empty() {
                        member_id = Uuid::new_v4().to_string();
                    }
                    let mut m = self.members.remove(&old).ok_or_else(|| Refused {
                        error: GroupError::UnknownMemberId,
                        message: format!("member {old} is not in the group"),
                    })?;
                    m.id = member_id.clone();
                    m.epoch = m.previous_epoch.max(0);
                    if let Some(t) = self.target.remove(&old) {
                        self.target.insert(member_id.clone(), t);
                    }
                    self.members.insert(member_id.clone(), m);
                    self.statics.insert(instance.clone(), member_id.clone());
                    true
                }
                Some(old) if old != member_id => {
                    return refuse(
                        GroupError::FencedInstanceId,
                        format!("static member {instance} belongs to member {old}"),
                    );
                }
                Some(_) => true,
                None if joining => self.members.contains_key(&member_id),
                None => {
                    return refuse(
                        GroupError::UnknownMemberId,
                        format!("static member {instance} is not in the group"),
                    );
                }
            },
            None => self.members.contains_key(&member_id),
        };
        if !existing && !joining {
            return refuse(
                GroupError::UnknownMemberId,
                format!("member {member_id} is not in the group"),
            );
        }
        if member_id.is_empty() {
            // v0: the coordinator names the member.
            member_id = Uuid::new_v4().to_string();
        }
        let old = self.members.get(&member_id).cloned();
        if let Some(m) = &old
            && !joining
        {
            let e = req.member_epoch;
            let lagging_but_consistent = e == m.previous_epoch
                && req
                    .owned
                    .as_ref()
                    .is_some_and(|o| is_subset(o, &m.assigned));
            if e > m.epoch || (e < m.epoch && !lagging_but_consistent) {
                return refuse(
                    GroupError::FencedMemberEpoch,
                    format!(
                        "member epoch {e} is fenced (the coordinator has {}); \
                         abandon all partitions and rejoin",
                        m.epoch
                    ),
                );
            }
        }
        let mut m = old
            .clone()
            .unwrap_or_else(|| Member::new(member_id.clone(), now));
        let mut bump = old.is_none();
        if let Some(i) = &req.instance_id {
            m.instance_id = Some(i.clone());
            self.statics.insert(i.clone(), member_id.clone());
        }
        if req.rack_id.is_some() {
            m.rack_id = req.rack_id.clone();
        }
        if req.rebalance_timeout_ms >= 0 {
            m.rebalance_timeout = Duration::from_millis(req.rebalance_timeout_ms as u64);
        }
        if let Some(names) = &req.subscribed_topic_names {
            let names: BTreeSet<String> = names.iter().cloned().collect();
            bump |= names != m.subscribed;
            m.subscribed = names;
        }
        if let Some(r) = &req.subscribed_topic_regex {
            // An empty pattern clears the member's.
            let r = (!r.is_empty()).then(|| r.clone());
            bump |= r != m.regex;
            m.regex = r;
        }
        if let Some(a) = &req.server_assignor {
            bump |= m.server_assignor.as_deref() != Some(a.as_str());
            m.server_assignor = Some(a.clone());
        }
        if m.epoch == -2 {
            // A static member back under its old member id.
            m.epoch = m.previous_epoch.max(0);
        }
        m.client_id = req.client_id.clone();
        m.client_host = req.client_host.clone();
        m.last_seen = now;
        self.members.insert(member_id.clone(), m);
        bump |= self.refresh_regexes(lookup, now);
        bump |= self.refresh_topics(lookup);
        if bump {
            self.epoch += 1;
            debug!(group = group_id, epoch = self.epoch, member = %member_id, "group epoch bumped");
        }
        if self.epoch > self.assignment_epoch {
            self.compute_target();
            info!(
                group = group_id,
                epoch = self.epoch,
                assignor = self.assignor,
                members = self.members.len(),
                "target assignment computed"
            );
        }
        // Reconcile this member.
        let taken = self.taken_by_others(&member_id);
        let target = self.target.get(&member_id).cloned().unwrap_or_default();
        let target_epoch = self.assignment_epoch;
        let Some(m) = self.members.get_mut(&member_id) else {
            return refuse(GroupError::UnknownServerError, "member vanished");
        };
        let before = (m.epoch, m.state, m.assigned.clone());
        reconcile(m, &target, target_epoch, req.owned.as_ref(), &taken);
        if m.state == MemberState::UnrevokedPartitions {
            if before.0 != m.epoch || before.1 != m.state || m.revoke_deadline.is_none() {
                m.revoke_deadline = Some(now + m.rebalance_timeout);
            }
        } else {
            m.revoke_deadline = None;
        }
        let full = joining
            || (req.rebalance_timeout_ms != -1
                && (req.subscribed_topic_names.is_some() || req.subscribed_topic_regex.is_some())
                && req.owned.is_some());
        let changed = before.2 != m.assigned || old.is_none();
        Ok(Beat {
            member_id,
            member_epoch: m.epoch,
            heartbeat_interval_ms: i32::try_from(config.timing(group_id).1.as_millis())
                .unwrap_or(i32::MAX),
            assignment: (full || changed).then(|| m.assigned.clone()),
        })
    }
}

/// One row of ListGroups.
#[derive(Debug, Clone)]
pub(crate) struct Listed {
    pub(crate) group: String,
    pub(crate) state: &'static str,
}

/// A member as ConsumerGroupDescribe shows it.
#[derive(Debug, Clone)]
pub(crate) struct MemberView {
    pub(crate) member_id: String,
    pub(crate) instance_id: Option<String>,
    pub(crate) rack_id: Option<String>,
    pub(crate) member_epoch: i32,
    pub(crate) client_id: String,
    pub(crate) client_host: String,
    pub(crate) subscribed: Vec<String>,
    pub(crate) regex: Option<String>,
    pub(crate) assignment: Assignment,
    pub(crate) target: Assignment,
}

/// A group as ConsumerGroupDescribe shows it.
#[derive(Debug, Clone)]
pub(crate) struct GroupView {
    pub(crate) state: &'static str,
    pub(crate) group_epoch: i32,
    pub(crate) assignment_epoch: i32,
    pub(crate) assignor: &'static str,
    pub(crate) members: Vec<MemberView>,
    /// Names of the topic ids in the assignments.
    pub(crate) topic_names: HashMap<Uuid, String>,
}

/// Every consumer-protocol group of this node.
#[derive(Debug, Default)]
pub(crate) struct ConsumerGroups {
    /// One lock for all groups: every operation is short and never awaits.
    groups: Mutex<HashMap<String, Group>>,
    pub(crate) config: ConsumerConfig,
}

impl ConsumerGroups {
    pub(crate) fn new(config: ConsumerConfig) -> ConsumerGroups {
        ConsumerGroups {
            groups: Mutex::new(HashMap::new()),
            config,
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Group>> {
        self.groups
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether `group` is a consumer-protocol group.
    pub(crate) fn contains(&self, group: &str) -> bool {
        self.lock().contains_key(group)
    }

    /// Lets the classic protocol have `group`: refused while it has consumer-protocol members;
    /// an empty consumer group is dropped (its committed offsets stay).
    pub(crate) fn release_to_classic(&self, group: &str) -> Result<(), GroupError> {
        let mut groups = self.lock();
        match groups.get(group) {
            Some(g) if !g.members.is_empty() => Err(GroupError::InconsistentGroupProtocol),
            Some(_) => {
                groups.remove(group);
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// Validates an OffsetCommit against a consumer group (Kafka's rules: a non-member may
    /// commit with epoch -1 only while the group is empty; a member commits with OffsetCommit
    /// v9+ and its current epoch). `None` if `group` is not a consumer group.
    pub(crate) fn check_commit(
        &self,
        group: &str,
        member_id: &str,
        epoch: i32,
        version: i16,
    ) -> Option<Result<(), GroupError>> {
        let groups = self.lock();
        let g = groups.get(group)?;
        if epoch < 0 && g.members.is_empty() {
            return Some(Ok(()));
        }
        let Some(m) = g.members.get(member_id) else {
            return Some(Err(GroupError::UnknownMemberId));
        };
        if version < 9 {
            return Some(Err(GroupError::UnsupportedVersion));
        }
        Some(if epoch == m.epoch {
            Ok(())
        } else {
            Err(GroupError::StaleMemberEpoch)
        })
    }

    /// Validates an OffsetFetch v9 against a consumer group: anyone may fetch without a member
    /// id and with epoch -1; a member gives its current epoch. `None` if `group` is not a
    /// consumer group.
    pub(crate) fn check_fetch(
        &self,
        group: &str,
        member_id: Option<&str>,
        epoch: i32,
    ) -> Option<Result<(), GroupError>> {
        let groups = self.lock();
        let g = groups.get(group)?;
        let member = match member_id {
            None if epoch < 0 => return Some(Ok(())),
            None => None,
            Some(id) => g.members.get(id),
        };
        Some(match member {
            None => Err(GroupError::UnknownMemberId),
            Some(m) if m.epoch != epoch => Err(GroupError::StaleMemberEpoch),
            Some(_) => Ok(()),
        })
    }

    /// Groups and their states, for ListGroups.
    pub(crate) fn list(&self) -> Vec<Listed> {
        let mut out: Vec<Listed> = self
            .lock()
            .iter()
            .map(|(id, g)| Listed {
                group: id.clone(),
                state: g.state(),
            })
            .collect();
        out.sort_by(|a, b| a.group.cmp(&b.group));
        out
    }

    /// A group for ConsumerGroupDescribe, `None` if it is not a consumer group.
    pub(crate) fn describe(&self, group: &str) -> Option<GroupView> {
        let groups = self.lock();
        let g = groups.get(group)?;
        Some(GroupView {
            state: g.state(),
            group_epoch: g.epoch,
            assignment_epoch: g.assignment_epoch,
            assignor: g.assignor,
            members: g
                .members
                .values()
                .map(|m| MemberView {
                    member_id: m.id.clone(),
                    instance_id: m.instance_id.clone(),
                    rack_id: m.rack_id.clone(),
                    member_epoch: m.epoch,
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    subscribed: m.subscribed.iter().cloned().collect(),
                    regex: m.regex.clone(),
                    assignment: m.assigned.clone(),
                    target: g.target.get(&m.id).cloned().unwrap_or_default(),
                })
                .collect(),
            topic_names: g.topics.iter().map(|(n, t)| (t.id, n.clone())).collect(),
        })
    }

    /// Subscribed topic names of a consumer group (for OffsetDelete), `None` if not one.
    pub(crate) fn subscriptions(&self, group: &str) -> Option<std::collections::HashSet<String>> {
        let groups = self.lock();
        let g = groups.get(group)?;
        Some(g.subscribed_names().into_iter().collect())
    }

    /// DeleteGroups of a consumer group; `None` if `group` is not one.
    pub(crate) fn remove_if_empty(&self, group: &str) -> Option<Result<(), GroupError>> {
        let mut groups = self.lock();
        let g = groups.get(group)?;
        if !g.members.is_empty() {
            return Some(Err(GroupError::NonEmptyGroup));
        }
        groups.remove(group);
        Some(Ok(()))
    }

    /// Removes members whose session expired or who did not revoke within their rebalance
    /// timeout, reassigning their partitions.
    pub(crate) fn expire(&self, now: Instant) {
        let mut groups = self.lock();
        for (id, g) in groups.iter_mut() {
            let session = self.config.timing(id).0;
            let gone: Vec<(String, &'static str)> = g
                .members
                .values()
                .filter_map(|m| {
                    if m.last_seen + session < now {
                        Some((m.id.clone(), "session expired"))
                    } else if m.revoke_deadline.is_some_and(|d| d < now) {
                        Some((m.id.clone(), "did not revoke within its rebalance timeout"))
                    } else {
                        None
                    }
                })
                .collect();
            for (member, why) in gone {
                g.remove(&member);
                info!(group = %id, member = %member, epoch = g.epoch, "member removed: {why}");
            }
        }
    }
}

impl Coordinator {
    /// ConsumerGroupHeartbeat: join (epoch 0), heartbeat, or leave (epoch -1, or -2 for a
    /// static member that will return). `lookup` tells a topic's id and partition count, and
    /// lists the topics the member may describe.
    pub(crate) fn consumer_heartbeat(
        &self,
        req: Heartbeat,
        lookup: &dyn TopicLookup,
    ) -> Result<Beat, Refused> {
        validate(&req)?;
        let now = self.now();
        let mut groups = self.consumer.lock();
        if req.member_epoch < 0 {
            let Some(g) = groups.get_mut(&req.group) else {
                return refuse(
                    GroupError::GroupIdNotFound,
                    format!("consumer group {} not found", req.group),
                );
            };
            return leave(&req.group, g, &req);
        }
        if !groups.contains_key(&req.group) {
            if req.member_epoch != 0 {
                // Membership is not kept across coordinator restarts: make the member rejoin.
                return refuse(
                    GroupError::UnknownMemberId,
                    format!("member {} is not in group {}", req.member_id, req.group),
                );
            }
            self.claim_from_classic(&req.group)?;
            groups.insert(req.group.clone(), Group::new());
        }
        let group = req.group.clone();
        let Some(g) = groups.get_mut(&group) else {
            return refuse(GroupError::UnknownServerError, "group vanished");
        };
        g.heartbeat(&group, req, lookup, &self.consumer.config, now)
    }

    /// Takes `group` from the classic protocol: refused while it has classic members.
    fn claim_from_classic(&self, group: &str) -> Result<(), Refused> {
        let mut map = self.map();
        let Some(classic) = map.get(group).cloned() else {
            return Ok(());
        };
        let mut g = classic.lock();
        if !g.members.is_empty() {
            return refuse(
                GroupError::InconsistentGroupProtocol,
                format!("group {group} has members of the classic protocol"),
            );
        }
        g.state = GroupState::Dead;
        drop(g);
        map.remove(group);
        Ok(())
    }
}

/// A member leaving (epoch -1), or a static member leaving for now (epoch -2).
fn leave(group_id: &str, g: &mut Group, req: &Heartbeat) -> Result<Beat, Refused> {
    let member_id = match &req.instance_id {
        Some(instance) => match g.statics.get(instance) {
            Some(id) if req.member_id.is_empty() || *id == req.member_id => id.clone(),
            Some(id) => {
                return refuse(
                    GroupError::FencedInstanceId,
                    format!("static member {instance} belongs to member {id}"),
                );
            }
            None => {
                return refuse(
                    GroupError::UnknownMemberId,
                    format!("static member {instance} is not in the group"),
                );
            }
        },
        None => req.member_id.clone(),
    };
    if !g.members.contains_key(&member_id) {
        return refuse(
            GroupError::UnknownMemberId,
            format!("member {member_id} is not in the group"),
        );
    }
    if req.member_epoch == -2 {
        // Keeps its partitions until it returns or its session expires.
        if let Some(m) = g.members.get_mut(&member_id) {
            m.set_epoch(-2);
            m.revoke_deadline = None;
        }
        info!(group = group_id, member = %member_id, "static member left temporarily");
    } else {
        g.remove(&member_id);
        info!(group = group_id, member = %member_id, epoch = g.epoch, "member left");
    }
    Ok(Beat {
        member_id,
        member_epoch: req.member_epoch,
        heartbeat_interval_ms: 0,
        assignment: None,
    })
}

/// Kafka's request checks, in its order.
fn validate(req: &Heartbeat) -> Result<(), Refused> {
    use GroupError::InvalidRequest;
    if req.group.is_empty() {
        return refuse(InvalidRequest, "GroupId can't be empty.");
    }
    if req.instance_id.as_deref() == Some("") {
        return refuse(InvalidRequest, "InstanceId can't be empty.");
    }
    if req.rack_id.as_deref() == Some("") {
        return refuse(InvalidRequest, "RackId can't be empty.");
    }
    if req.version >= 1 && req.member_id.is_empty() {
        return refuse(InvalidRequest, "MemberId can't be empty.");
    }
    if req.member_epoch != 0 && req.member_id.is_empty() && req.instance_id.is_none() {
        return refuse(InvalidRequest, "MemberId can't be empty.");
    }
    match req.member_epoch {
        0 => {
            if req.rebalance_timeout_ms == -1 {
                return refuse(
                    InvalidRequest,
                    "RebalanceTimeoutMs must be provided in first request.",
                );
            }
            if req.owned.as_ref().is_none_or(|o| !o.is_empty()) {
                return refuse(
                    InvalidRequest,
                    "TopicPartitions must be empty when (re-)joining.",
                );
            }
            if req.subscribed_topic_names.is_none() && req.subscribed_topic_regex.is_none() {
                return refuse(
                    InvalidRequest,
                    "SubscribedTopicNames or SubscribedTopicRegex must be set in first request.",
                );
            }
        }
        -2 if req.instance_id.is_none() => {
            return refuse(InvalidRequest, "InstanceId can't be null.");
        }
        e if e < -2 => return refuse(InvalidRequest, "MemberEpoch is invalid."),
        _ => {}
    }
    if let Some(r) = req
        .subscribed_topic_regex
        .as_deref()
        .filter(|r| !r.is_empty())
        && let Err(e) = compile_regex(r)
    {
        return refuse(
            GroupError::InvalidRegularExpression,
            format!("SubscribedTopicRegex `{r}` is not a valid regular expression: {e}."),
        );
    }
    if let Some(a) = &req.server_assignor
        && !ASSIGNORS.contains(&a.as_str())
    {
        return refuse(
            GroupError::UnsupportedAssignor,
            format!("ServerAssignor {a} is not supported. Supported assignors: uniform, range."),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::sync::Arc;

    use tokio_util::sync::CancellationToken;
    use tokio_util::task::TaskTracker;

    use super::super::offsets::OffsetStore;
    use super::super::{GroupConfig, JoinRequest, Wait};
    use super::*;

    fn t(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    fn spec(topics: &[Uuid], previous: Assignment) -> MemberSpec {
        MemberSpec {
            topics: topics.iter().copied().collect(),
            previous,
        }
    }

    fn a(parts: &[(Uuid, &[i32])]) -> Assignment {
        parts
            .iter()
            .map(|(t, ps)| (*t, ps.iter().copied().collect()))
            .collect()
    }

    fn size(a: &Assignment) -> usize {
        a.values().map(BTreeSet::len).sum()
    }

    /// Every partition of `topics` exactly once across `out`.
    fn assert_exact_cover(out: &BTreeMap<String, Assignment>, topics: &BTreeMap<Uuid, i32>) {
        let mut seen = BTreeSet::new();
        for a in out.values() {
            for (t, ps) in a {
                for p in ps {
                    assert!(seen.insert((*t, *p)), "{t} {p} assigned twice: {out:?}");
                }
            }
        }
        let all: BTreeSet<(Uuid, i32)> = topics
            .iter()
            .flat_map(|(t, n)| (0..*n).map(move |p| (*t, p)))
            .collect();
        assert_eq!(seen, all);
    }

    #[test]
    fn uniform_is_balanced_within_one_and_covers_everything() {
        let topics = BTreeMap::from([(t(1), 6), (t(2), 4)]);
        for n in 1..=7 {
            let members: BTreeMap<String, MemberSpec> = (0..n)
                .map(|i| (format!("m{i}"), spec(&[t(1), t(2)], Assignment::new())))
                .collect();
            let out = assign_uniform(&members, &topics);
            assert_exact_cover(&out, &topics);
            let sizes: Vec<usize> = out.values().map(size).collect();
            let (min, max) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
            assert!(max - min <= 1, "{n} members: {sizes:?}");
        }
    }

    #[test]
    fn uniform_moves_only_what_balance_needs_when_members_come_and_go() {
        let topics = BTreeMap::from([(t(1), 6)]);
        let two: BTreeMap<String, MemberSpec> = ["a", "b"]
            .iter()
            .map(|m| (m.to_string(), spec(&[t(1)], Assignment::new())))
            .collect();
        let before = assign_uniform(&two, &topics);
        // A third member joins: a and b each give up exactly one partition.
        let mut three: BTreeMap<String, MemberSpec> = before
            .iter()
            .map(|(m, prev)| (m.clone(), spec(&[t(1)], prev.clone())))
            .collect();
        three.insert("c".into(), spec(&[t(1)], Assignment::new()));
        let after = assign_uniform(&three, &topics);
        assert_exact_cover(&after, &topics);
        for m in ["a", "b"] {
            assert_eq!(size(&after[m]), 2);
            assert!(is_subset(&after[m], &before[m]), "{m} kept its partitions");
        }
        // Then b leaves: a and c keep theirs and split b's.
        let mut two_again: BTreeMap<String, MemberSpec> = after
            .iter()
            .filter(|(m, _)| *m != "b")
            .map(|(m, prev)| (m.clone(), spec(&[t(1)], prev.clone())))
            .collect();
        let last = assign_uniform(&two_again, &topics);
        assert_exact_cover(&last, &topics);
        for m in ["a", "c"] {
            assert_eq!(size(&last[m]), 3);
            assert!(is_subset(&after[m], &last[m]), "{m} kept its partitions");
        }
        // Stable inputs give the same answer.
        for (m, s) in &mut two_again {
            s.previous = last[m].clone();
        }
        assert_eq!(assign_uniform(&two_again, &topics), last);
    }

    #[test]
    fn uniform_gives_a_topic_only_to_its_subscribers() {
        let topics = BTreeMap::from([(t(1), 4), (t(2), 4)]);
        let members = BTreeMap::from([
            ("a".to_owned(), spec(&[t(1)], Assignment::new())),
            ("b".to_owned(), spec(&[t(1), t(2)], Assignment::new())),
        ]);
        let out = assign_uniform(&members, &topics);
        assert_exact_cover(&out, &topics);
        assert!(!out["a"].contains_key(&t(2)));
        assert_eq!(
            size(&out["a"]),
            4,
            "a takes all of t1, b all of t2: {out:?}"
        );
        assert_eq!(size(&out["b"]), 4);
    }

    #[test]
    fn range_gives_contiguous_ranges_per_topic() {
        let topics = BTreeMap::from([(t(1), 7), (t(2), 2)]);
        let members = BTreeMap::from([
            ("a".to_owned(), spec(&[t(1), t(2)], Assignment::new())),
            ("b".to_owned(), spec(&[t(1)], Assignment::new())),
            ("c".to_owned(), spec(&[t(1), t(2)], Assignment::new())),
        ]);
        let out = assign_range(&members, &topics);
        assert_exact_cover(&out, &topics);
        assert_eq!(out["a"], a(&[(t(1), &[0, 1, 2]), (t(2), &[0])]));
        assert_eq!(out["b"], a(&[(t(1), &[3, 4])]));
        assert_eq!(out["c"], a(&[(t(1), &[5, 6]), (t(2), &[1])]));
    }

    fn coordinator() -> Arc<Coordinator> {
        Arc::new(Coordinator {
            groups: Mutex::new(HashMap::new()),
            offsets: OffsetStore::new(Arc::new(tierlog_metadata::MemoryStore::new())),
            consumer: ConsumerGroups::default(),
            config: GroupConfig {
                initial_rebalance_delay: Duration::ZERO,
                min_session_timeout: Duration::from_millis(100),
                max_session_timeout: Duration::from_secs(600),
                offsets_retention: Duration::from_secs(3600),
                consumer: ConsumerConfig::default(),
            },
            clock: tierlog_metadata::SystemClock::shared(),
            tracker: TaskTracker::new(),
            cancel: CancellationToken::new(),
        })
    }

    const TOPIC: Uuid = Uuid::from_u128(7);

    fn lookup(name: &str) -> Option<TopicMeta> {
        (name == "orders").then_some(TopicMeta {
            id: TOPIC,
            partitions: 6,
        })
    }

    fn join(member: &str) -> Heartbeat {
        Heartbeat {
            version: 1,
            group: "g".into(),
            member_id: member.into(),
            member_epoch: 0,
            rebalance_timeout_ms: 30_000,
            subscribed_topic_names: Some(vec!["orders".into()]),
            owned: Some(Assignment::new()),
            ..Heartbeat::default()
        }
    }

    fn beat(member: &str, epoch: i32, owned: Option<&[i32]>) -> Heartbeat {
        Heartbeat {
            version: 1,
            group: "g".into(),
            member_id: member.into(),
            member_epoch: epoch,
            rebalance_timeout_ms: -1,
            owned: owned.map(|ps| a(&[(TOPIC, ps)])),
            ..Heartbeat::default()
        }
    }

    fn parts(b: &Beat) -> Vec<i32> {
        b.assignment
            .as_ref()
            .and_then(|a| a.get(&TOPIC))
            .map(|ps| ps.iter().copied().collect())
            .unwrap_or_default()
    }

    fn error(r: Result<Beat, Refused>) -> GroupError {
        r.unwrap_err().error
    }

    #[tokio::test(start_paused = true)]
    async fn a_partition_moves_only_after_its_owner_revoked_it() {
        let c = coordinator();
        let first = c.consumer_heartbeat(join("a"), &lookup).unwrap();
        assert_eq!(
            (first.member_epoch, parts(&first)),
            (1, vec![0, 1, 2, 3, 4, 5])
        );
        assert_eq!(first.heartbeat_interval_ms, 5000);

        // b joins: epoch 2, but every partition of its target is still a's.
        let b = c.consumer_heartbeat(join("b"), &lookup).unwrap();
        assert_eq!((b.member_epoch, parts(&b)), (2, vec![]));
        assert_eq!(c.consumer.describe("g").unwrap().state, "Reconciling");

        // a is asked to revoke half, staying in epoch 1.
        let a1 = c.consumer_heartbeat(beat("a", 1, None), &lookup).unwrap();
        assert_eq!(a1.member_epoch, 1);
        let kept = parts(&a1);
        assert_eq!(kept.len(), 3);
        // Still reporting the revoked partitions: no progress, no change sent.
        let all = [0, 1, 2, 3, 4, 5];
        let again = c
            .consumer_heartbeat(beat("a", 1, Some(&all)), &lookup)
            .unwrap();
        assert_eq!((again.member_epoch, again.assignment), (1, None));
        let b_waits = c.consumer_heartbeat(beat("b", 2, None), &lookup).unwrap();
        assert_eq!(b_waits.assignment, None, "b gets nothing before a revoked");

        // a revokes: it moves to epoch 2; then b gets the other half.
        let a2 = c
            .consumer_heartbeat(beat("a", 1, Some(&kept)), &lookup)
            .unwrap();
        assert_eq!(a2.member_epoch, 2);
        let b2 = c.consumer_heartbeat(beat("b", 2, None), &lookup).unwrap();
        let mut union = kept.clone();
        union.extend(parts(&b2));
        union.sort_unstable();
        assert_eq!(union, all);
        assert_eq!(c.consumer.describe("g").unwrap().state, "Stable");

        // a leaves: b takes everything in the next epoch.
        let left = c.consumer_heartbeat(beat("a", -1, None), &lookup).unwrap();
        assert_eq!(left.member_epoch, -1);
        let b3 = c.consumer_heartbeat(beat("b", 2, None), &lookup).unwrap();
        assert_eq!((b3.member_epoch, parts(&b3)), (3, all.to_vec()));
    }

    #[tokio::test(start_paused = true)]
    async fn epochs_are_fenced() {
        let c = coordinator();
        c.consumer_heartbeat(join("a"), &lookup).unwrap();
        assert_eq!(
            error(c.consumer_heartbeat(beat("a", 2, None), &lookup)),
            GroupError::FencedMemberEpoch
        );
        assert_eq!(
            error(c.consumer_heartbeat(beat("nobody", 1, None), &lookup)),
            GroupError::UnknownMemberId
        );
        c.consumer_heartbeat(join("b"), &lookup).unwrap();
        let a = c.consumer_heartbeat(beat("a", 1, None), &lookup).unwrap();
        let kept = parts(&a);
        let a2 = c
            .consumer_heartbeat(beat("a", 1, Some(&kept)), &lookup)
            .unwrap();
        assert_eq!(a2.member_epoch, 2);
        // The response with epoch 2 was lost: epoch 1 with a subset of the assignment is fine,
        // epoch 1 without owned partitions is fenced.
        let retry = c
            .consumer_heartbeat(beat("a", 1, Some(&kept)), &lookup)
            .unwrap();
        assert_eq!(retry.member_epoch, 2);
        assert_eq!(
            error(c.consumer_heartbeat(beat("a", 1, None), &lookup)),
            GroupError::FencedMemberEpoch
        );
        // An unknown group with a non-zero epoch (a restarted coordinator): rejoin.
        let mut other = beat("a", 3, None);
        other.group = "other".into();
        assert_eq!(
            error(c.consumer_heartbeat(other, &lookup)),
            GroupError::UnknownMemberId
        );
        // Commits and fetches need the current epoch.
        let check = |m: &str, e: i32, v: i16| c.consumer.check_commit("g", m, e, v).unwrap();
        assert_eq!(check("a", 2, 9), Ok(()));
        assert_eq!(check("a", 1, 9), Err(GroupError::StaleMemberEpoch));
        assert_eq!(check("a", 2, 8), Err(GroupError::UnsupportedVersion));
        assert_eq!(check("zz", 2, 9), Err(GroupError::UnknownMemberId));
        assert_eq!(check("", -1, 9), Err(GroupError::UnknownMemberId));
        assert_eq!(c.consumer.check_commit("classic", "", -1, 8), None);
        let fetch = |m: Option<&str>, e: i32| c.consumer.check_fetch("g", m, e).unwrap();
        assert_eq!(fetch(Some("a"), 2), Ok(()));
        assert_eq!(fetch(Some("a"), 1), Err(GroupError::StaleMemberEpoch));
        assert_eq!(fetch(None, -1), Ok(()));
    }

    #[tokio::test(start_paused = true)]
    async fn a_static_member_comes_back_to_its_partitions() {
        let c = coordinator();
        let static_join = |member: &str| {
            let mut j = join(member);
            j.instance_id = Some("i1".into());
            j
        };
        let first = c.consumer_heartbeat(static_join("m1"), &lookup).unwrap();
        assert_eq!(
            error(c.consumer_heartbeat(static_join("m2"), &lookup)),
            GroupError::UnreleasedInstanceId
        );
        let mut away = beat("m1", -2, None);
        away.instance_id = Some("i1".into());
        assert_eq!(
            c.consumer_heartbeat(away, &lookup).unwrap().member_epoch,
            -2
        );
        let back = c.consumer_heartbeat(static_join("m2"), &lookup).unwrap();
        assert_eq!(back.member_epoch, first.member_epoch);
        assert_eq!(parts(&back), parts(&first));
        assert_eq!(c.consumer.describe("g").unwrap().group_epoch, 1);
        let mut old = beat("m1", 1, None);
        old.instance_id = Some("i1".into());
        assert_eq!(
            error(c.consumer_heartbeat(old, &lookup)),
            GroupError::FencedInstanceId
        );
    }

    #[tokio::test(start_paused = true)]
    async fn silent_and_slow_members_are_removed() {
        let c = coordinator();
        c.consumer_heartbeat(join("a"), &lookup).unwrap();
        c.consumer_heartbeat(join("b"), &lookup).unwrap();
        // a is asked to revoke, never does, but keeps heartbeating: its rebalance timeout
        // (30 s) removes it, then b gets everything.
        c.consumer_heartbeat(beat("a", 1, None), &lookup).unwrap();
        for _ in 0..4 {
            tokio::time::advance(Duration::from_secs(10)).await;
            let _ = c.consumer_heartbeat(beat("a", 1, None), &lookup);
            c.consumer_heartbeat(beat("b", 2, None), &lookup).unwrap();
            c.consumer.expire(Instant::now());
        }
        let view = c.consumer.describe("g").unwrap();
        assert_eq!(view.members.len(), 1);
        let b = c
            .consumer_heartbeat(beat("b", view.members[0].member_epoch, None), &lookup)
            .unwrap();
        assert_eq!(parts(&b), vec![0, 1, 2, 3, 4, 5]);
        // b goes silent past the session timeout: the group is empty.
        tokio::time::advance(SESSION_TIMEOUT + Duration::from_secs(1)).await;
        c.consumer.expire(Instant::now());
        assert_eq!(c.consumer.describe("g").unwrap().state, "Empty");
    }

    #[tokio::test(start_paused = true)]
    async fn bad_requests_and_the_other_protocol_are_refused() {
        let c = coordinator();
        let mut no_id = join("");
        assert_eq!(
            error(c.consumer_heartbeat(no_id.clone(), &lookup)),
            GroupError::InvalidRequest
        );
        no_id.version = 0;
        let named = c.consumer_heartbeat(no_id, &lookup).unwrap();
        assert!(
            !named.member_id.is_empty(),
            "v0: the coordinator names the member"
        );
        let mut regex = join("r");
        regex.subscribed_topic_regex = Some("ord(".into());
        let refused = c.consumer_heartbeat(regex, &lookup).unwrap_err();
        assert_eq!(refused.error, GroupError::InvalidRegularExpression);
        assert!(
            refused
                .message
                .starts_with("SubscribedTopicRegex `ord(` is not a valid regular expression: "),
            "{}",
            refused.message
        );
        let mut assignor = join("x");
        assignor.server_assignor = Some("sticky".into());
        assert_eq!(
            error(c.consumer_heartbeat(assignor, &lookup)),
            GroupError::UnsupportedAssignor
        );
        let mut owning = join("o");
        owning.owned = Some(a(&[(TOPIC, &[1])]));
        assert_eq!(
            error(c.consumer_heartbeat(owning, &lookup)),
            GroupError::InvalidRequest
        );

        // A classic group with members refuses the new protocol, and the other way round.
        let classic = JoinRequest {
            group: "classic".into(),
            member_id: String::new(),
            instance_id: Some("s".into()),
            client_id: "c".into(),
            client_host: "/h".into(),
            session_timeout: Duration::from_secs(10),
            rebalance_timeout: Duration::from_secs(10),
            protocol_type: "consumer".into(),
            protocols: vec![("range".into(), bytes::Bytes::new())],
            require_known_member_id: false,
        };
        let Wait::Later(_joined) = c.join(classic) else {
            panic!("a first static join waits for the rebalance");
        };
        let mut hb = join("n");
        hb.group = "classic".into();
        assert_eq!(
            error(c.consumer_heartbeat(hb, &lookup)),
            GroupError::InconsistentGroupProtocol
        );
        assert_eq!(
            c.consumer.release_to_classic("g"),
            Err(GroupError::InconsistentGroupProtocol)
        );
        // An empty group of either protocol is taken over.
        c.ensure_group("empty");
        let mut hb = join("n");
        hb.group = "empty".into();
        c.consumer_heartbeat(hb, &lookup).unwrap();
        assert!(c.group("empty").is_none());
        assert!(c.consumer.contains("empty"));
    }

    /// Topics that come and go, listed for pattern subscriptions.
    struct Topics(Mutex<BTreeMap<String, TopicMeta>>);

    impl TopicLookup for Topics {
        fn meta(&self, name: &str) -> Option<TopicMeta> {
            self.0.lock().unwrap().get(name).copied()
        }
        fn names(&self) -> Vec<String> {
            self.0.lock().unwrap().keys().cloned().collect()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_pattern_subscription_follows_topics_as_they_come_and_go() {
        let c = coordinator();
        let meta = |n: u128| TopicMeta {
            id: t(n),
            partitions: 2,
        };
        let topics = Topics(Mutex::new(BTreeMap::from([
            ("orders-eu".to_owned(), meta(1)),
            ("payments".to_owned(), meta(2)),
            // A name the pattern matches only in part: patterns match whole names.
            ("x-orders-us".to_owned(), meta(3)),
        ])));
        let mut j = join("a");
        j.subscribed_topic_names = None;
        j.subscribed_topic_regex = Some("orders-.*".into());
        let first = c.consumer_heartbeat(j, &topics).unwrap();
        assert_eq!(first.assignment, Some(a(&[(t(1), &[0, 1])])));
        let view = c.consumer.describe("g").unwrap();
        assert_eq!(view.members[0].regex.as_deref(), Some("orders-.*"));

        // A matching topic created later joins once the patterns are evaluated again.
        topics
            .0
            .lock()
            .unwrap()
            .insert("orders-us".to_owned(), meta(4));
        let owned = [(t(1), &[0, 1][..])];
        let mut hb = beat("a", 1, None);
        hb.owned = Some(a(&owned));
        let same = c.consumer_heartbeat(hb.clone(), &topics).unwrap();
        assert_eq!(
            same.member_epoch, 1,
            "not evaluated again before the interval"
        );
        tokio::time::advance(REGEX_REFRESH_INTERVAL).await;
        let grown = c.consumer_heartbeat(hb, &topics).unwrap();
        assert_eq!(grown.member_epoch, 2);
        assert_eq!(
            grown.assignment,
            Some(a(&[(t(1), &[0, 1]), (t(4), &[0, 1])]))
        );

        // A deleted topic leaves the subscription at once.
        topics.0.lock().unwrap().remove("orders-eu");
        let mut hb = beat("a", 2, None);
        hb.owned = Some(a(&[(t(1), &[0, 1]), (t(4), &[0, 1])]));
        let revoke = c.consumer_heartbeat(hb, &topics).unwrap();
        assert_eq!(revoke.assignment, Some(a(&[(t(4), &[0, 1])])));

        // A second member subscribing by name shares the topic with the pattern's member.
        let mut j = join("b");
        j.subscribed_topic_names = Some(vec!["orders-us".into()]);
        c.consumer_heartbeat(j, &topics).unwrap();
        let view = c.consumer.describe("g").unwrap();
        let targets: Vec<usize> = view.members.iter().map(|m| size(&m.target)).collect();
        assert_eq!(targets, vec![1, 1]);
        // An empty pattern clears the subscription.
        let mut clear = beat("a", view.members[0].member_epoch, None);
        clear.subscribed_topic_regex = Some(String::new());
        c.consumer_heartbeat(clear, &topics).unwrap();
        let view = c.consumer.describe("g").unwrap();
        assert_eq!(view.members[0].regex, None);
        assert_eq!(size(&view.members[0].target), 0);
        assert_eq!(size(&view.members[1].target), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn range_is_used_when_members_ask_for_it_and_partition_growth_bumps_the_epoch() {
        let c = coordinator();
        let partitions = std::sync::atomic::AtomicI32::new(6);
        let lookup = |name: &str| {
            (name == "orders").then(|| TopicMeta {
                id: TOPIC,
                partitions: partitions.load(std::sync::atomic::Ordering::SeqCst),
            })
        };
        let mut j = join("a");
        j.server_assignor = Some("range".into());
        c.consumer_heartbeat(j, &lookup).unwrap();
        let mut j = join("b");
        j.server_assignor = Some("range".into());
        c.consumer_heartbeat(j, &lookup).unwrap();
        let view = c.consumer.describe("g").unwrap();
        assert_eq!(view.assignor, "range");
        assert_eq!(view.members[0].target, a(&[(TOPIC, &[0, 1, 2])]));
        assert_eq!(view.members[1].target, a(&[(TOPIC, &[3, 4, 5])]));
        partitions.store(8, std::sync::atomic::Ordering::SeqCst);
        c.consumer_heartbeat(beat("b", 2, None), &lookup).unwrap();
        let view = c.consumer.describe("g").unwrap();
        assert_eq!(view.group_epoch, 3);
        assert_eq!(view.members[1].target, a(&[(TOPIC, &[4, 5, 6, 7])]));
    }
}
