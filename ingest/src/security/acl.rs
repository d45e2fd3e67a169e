//! Kafka's ACL model and the authorizer every request handler asks.
//!
//! The [`Authorizer`] answers "may this session do this operation on this resource?" exactly
//! as Kafka's `StandardAuthorizer` does:
//!
//! - a super user (`super_users`, Kafka's `super.users`) may do anything;
//! - the ACLs that apply to a resource are those of its literal name, the literal wildcard
//!   `*`, and every prefixed pattern its name starts with; of those, an entry matches when its
//!   principal is the session's or `User:*`, its host is the client's IP or `*`, and its
//!   operation is the one asked, or `ALL`, or (for ALLOW entries only) one that implies it
//!   (READ, WRITE, DELETE and ALTER imply DESCRIBE; ALTER_CONFIGS implies DESCRIBE_CONFIGS);
//! - a matching DENY wins; else a matching ALLOW allows; else, when no ACL at all applies to
//!   the resource (for anyone), `allow_everyone_if_no_acl_found` decides; else denied.
//!
//! Lifecycle: [`Authorizer::load`] lists the [`AclRegistry`] before the node serves, then
//! [`Authorizer::run`] watches it and applies every change to the in-memory state, rebuilding
//! the index, so an ACL created through any node is in force on every node as soon as its watch
//! delivers the change (well under a second). A lost watch re-lists.
//!
//! The index keeps every check cheap however many ACLs there are: per resource type, a hash
//! map by literal name and one by prefix, plus the sorted distinct prefix lengths, so a check
//! is a few hash lookups (the name, `*`, and one per prefix length present) and never a scan.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use futures::StreamExt;
use tierlog_metadata::{
    ACLS_PREFIX, AclEntry, AclOperation, AclPatternType, AclPermission, AclRegistry, AclResource,
    AclResourceType, SharedClock, WatchEvent,
};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{Principal, Session};
use crate::metrics::Metrics;

/// The name of the one CLUSTER resource (Kafka's `kafka-cluster`).
pub(crate) const CLUSTER_NAME: &str = "kafka-cluster";

/// The literal resource name that stands for every resource of its type.
const WILDCARD: &str = "*";

/// How many denials are logged per second at most; the rest are counted and summed up in the
/// next second's first line, so a client retrying a forbidden request cannot flood the log.
const DENIAL_LOGS_PER_SECOND: u32 = 10;

/// How long a failed list or watch waits before trying again.
const RETRY_DELAY: Duration = Duration::from_millis(500);

/// What the authorizer is configured with (node settings, resolved by the caller).
#[derive(Debug, Clone, Default)]
pub(crate) struct AuthorizerConfig {
    /// Principals allowed everything, whatever the ACLs (Kafka's `super.users`).
    pub(crate) super_users: Vec<Principal>,
    /// Whether a resource with no ACL at all is open to everyone (Kafka's
    /// `allow.everyone.if.no.acl.found`).
    pub(crate) allow_if_no_acls: bool,
}

impl AuthorizerConfig {
    /// The config from the node settings `super_users` and `allow_everyone_if_no_acl_found`;
    /// `authenticating` says whether any listener authenticates clients (which decides the
    /// unset `allow_everyone_if_no_acl_found`: true without, false with). Err for a
    /// malformed `super_users` (validated with the rest of the config).
    pub(crate) fn from_settings(
        super_users: &str,
        allow_everyone_if_no_acl_found: Option<bool>,
        authenticating: bool,
    ) -> Result<AuthorizerConfig, String> {
        Ok(AuthorizerConfig {
            super_users: Self::parse_super_users(super_users)?,
            allow_if_no_acls: allow_everyone_if_no_acl_found.unwrap_or(!authenticating),
        })
    }

    /// Parses Kafka's `super.users` format: principals separated by semicolons (blanks
    /// around them ignored). Err names the entry that is not `Type:name`.
    pub(crate) fn parse_super_users(s: &str) -> Result<Vec<Principal>, String> {
        s.split(';')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| {
                Principal::parse(p).ok_or_else(|| format!("`{p}` is not a Type:name principal"))
            })
            .collect()
    }
}

/// An entry as the index holds it: the principal split, the host parsed once.
#[derive(Debug, Clone)]
struct IndexedEntry {
    /// The principal type (`User`).
    kind: String,
    /// The principal name; `*` matches every principal of the type `User` (Kafka's
    /// `User:*` wildcard).
    name: String,
    host: HostMatch,
    operation: AclOperation,
    permission: AclPermission,
}

/// Which clients an entry's host covers.
#[derive(Debug, Clone, Copy)]
enum HostMatch {
    Any,
    Ip(IpAddr),
    /// A host string that is no IP address: it matches no client.
    Never,
}

impl IndexedEntry {
    fn new(e: &AclEntry) -> IndexedEntry {
        let (kind, name) = e.principal.split_once(':').unwrap_or(("", &e.principal));
        let host = if e.host == WILDCARD {
            HostMatch::Any
        } else {
            e.host.parse().map_or(HostMatch::Never, HostMatch::Ip)
        };
        IndexedEntry {
            kind: kind.to_owned(),
            name: name.to_owned(),
            host,
            operation: e.operation,
            permission: e.permission,
        }
    }

    /// Kafka's `findResult`: `None` when the entry does not apply to this principal, host and
    /// operation; else whether it allows.
    fn result(&self, principal: &Principal, host: IpAddr, op: AclOperation) -> Option<bool> {
        let wildcard = self.kind == "User" && self.name == "*";
        if !wildcard && (self.kind != principal.kind || self.name != principal.name) {
            return None;
        }
        match self.host {
            HostMatch::Any => {}
            HostMatch::Ip(ip) if ip == host => {}
            _ => return None,
        }
        let allow = self.permission == AclPermission::Allow;
        if self.operation != AclOperation::All && self.operation != op {
            let implied = allow
                && match op {
                    AclOperation::Describe => matches!(
                        self.operation,
                        AclOperation::Read
                            | AclOperation::Write
                            | AclOperation::Delete
                            | AclOperation::Alter
                    ),
                    AclOperation::DescribeConfigs => self.operation == AclOperation::AlterConfigs,
                    _ => false,
                };
            if !implied {
                return None;
            }
        }
        Some(allow)
    }
}

/// The ACLs of one resource type, indexed for lookups by name.
#[derive(Debug, Default)]
struct TypeIndex {
    literal: HashMap<String, Vec<IndexedEntry>>,
    prefixed: HashMap<String, Vec<IndexedEntry>>,
    /// The distinct byte lengths of the prefixes, ascending: the only prefixes of a name
    /// worth looking up.
    prefix_lens: Vec<usize>,
}

/// Every ACL, indexed; rebuilt from the state on each change and swapped in whole.
#[derive(Debug, Default)]
struct Index {
    by_type: HashMap<AclResourceType, TypeIndex>,
}

impl Index {
    fn build(state: &BTreeMap<AclResource, BTreeSet<AclEntry>>) -> Index {
        let mut by_type: HashMap<AclResourceType, TypeIndex> = HashMap::new();
        for (resource, entries) in state {
            let t = by_type.entry(resource.resource_type).or_default();
            let map = match resource.pattern_type {
                AclPatternType::Literal => &mut t.literal,
                AclPatternType::Prefixed => &mut t.prefixed,
            };
            map.insert(
                resource.name.clone(),
                entries.iter().map(IndexedEntry::new).collect(),
            );
        }
        for t in by_type.values_mut() {
            let lens: BTreeSet<usize> = t.prefixed.keys().map(String::len).collect();
            t.prefix_lens = lens.into_iter().collect();
        }
        Index { by_type }
    }

    /// Kafka's `findAclRule`: `Some(allowed)` from the matching entries, or `None` when no
    /// ACL applies to the resource at all.
    fn decide(
        &self,
        principal: &Principal,
        host: IpAddr,
        op: AclOperation,
        rt: AclResourceType,
        name: &str,
    ) -> Option<bool> {
        let t = self.by_type.get(&rt)?;
        let mut has_acls = false;
        let mut allowed = false;
        // Visits one section; true when a DENY matched (which decides at once).
        let mut denies = |entries: Option<&Vec<IndexedEntry>>| {
            for e in entries.into_iter().flatten() {
                has_acls = true;
                match e.result(principal, host, op) {
                    Some(false) => return true,
                    Some(true) => allowed = true,
                    None => {}
                }
            }
            false
        };
        if denies(t.literal.get(name)) {
            return Some(false);
        }
        if name != WILDCARD && denies(t.literal.get(WILDCARD)) {
            return Some(false);
        }
        for &len in &t.prefix_lens {
            if len > name.len() {
                break;
            }
            if let Some(p) = name.get(..len)
                && denies(t.prefixed.get(p))
            {
                return Some(false);
            }
        }
        has_acls.then_some(allowed)
    }
}

/// The rate limit on denial log lines.
#[derive(Debug, Default)]
struct DenialLog {
    /// The second (ms / 1000) the count is for.
    second: i64,
    logged: u32,
    /// Denials not logged since the last line that reported them.
    suppressed: u64,
}

/// The authorizer every request handler asks (see the module docs).
#[derive(Debug)]
pub(crate) struct Authorizer {
    config: AuthorizerConfig,
    /// The current index. Readers clone the `Arc` and check without holding the lock; the
    /// watch task swaps in a new one per change (a write lock held only for the swap).
    index: RwLock<Arc<Index>>,
    /// Every pattern's entries as last listed or watched; only the watch task changes it.
    state: Mutex<BTreeMap<AclResource, BTreeSet<AclEntry>>>,
    /// How many ACL entries the index holds (for tests and logs).
    count: std::sync::atomic::AtomicUsize,
    metrics: Arc<Metrics>,
    clock: SharedClock,
    denials: Mutex<DenialLog>,
}

impl Authorizer {
    /// An authorizer with no ACLs yet (call [`Authorizer::load`] before serving).
    pub(crate) fn new(config: AuthorizerConfig, metrics: Arc<Metrics>, clock: SharedClock) -> Self {
        Authorizer {
            config,
            index: RwLock::new(Arc::new(Index::default())),
            state: Mutex::new(BTreeMap::new()),
            count: std::sync::atomic::AtomicUsize::new(0),
            metrics,
            clock,
            denials: Mutex::new(DenialLog::default()),
        }
    }

    /// Lists every ACL, indexes them, and returns the revision to watch from.
    pub(crate) async fn load(&self, registry: &AclRegistry) -> tierlog_metadata::Result<u64> {
        let (all, from) = registry.list_at().await?;
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        *state = all.into_iter().collect();
        self.publish(&state);
        Ok(from)
    }

    /// Keeps the index fresh: watches [`ACLS_PREFIX`] from `from`, applies each change (a
    /// burst of ready changes at once), and re-lists when the watch breaks. Returns when
    /// cancelled.
    pub(crate) async fn run(
        self: Arc<Self>,
        registry: AclRegistry,
        mut from: u64,
        cancel: CancellationToken,
    ) {
        loop {
            let mut watch = tokio::select! {
                biased;
                () = cancel.cancelled() => return,
                w = registry.store().watch(ACLS_PREFIX, from) => match w {
                    Ok(w) => w,
                    Err(e) => {
                        warn!(error = %e, "watching ACLs failed; retrying");
                        if pause(&cancel).await { return; }
                        from = match self.load(&registry).await { Ok(f) => f, Err(_) => from };
                        continue;
                    }
                },
            };
            loop {
                let event = tokio::select! {
                    biased;
                    () = cancel.cancelled() => return,
                    e = watch.next() => e,
                };
                match event {
                    Some(Ok(first)) => {
                        let mut events = vec![first];
                        while let Some(Some(Ok(e))) = futures::FutureExt::now_or_never(watch.next())
                        {
                            events.push(e);
                        }
                        self.apply(&events);
                    }
                    Some(Err(e)) => {
                        warn!(error = %e, "ACL watch ended; re-listing");
                        break;
                    }
                    None => return,
                }
            }
            loop {
                match self.load(&registry).await {
                    Ok(f) => {
                        from = f;
                        break;
                    }
                    Err(e) => {
                        warn!(error = %e, "listing ACLs failed; retrying");
                        if pause(&cancel).await {
                            return;
                        }
                    }
                }
            }
        }
    }

    /// Applies watched changes to the state and publishes a new index.
    fn apply(&self, events: &[WatchEvent]) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        for event in events {
            match event {
                WatchEvent::Put(kv) => match AclRegistry::decode(kv) {
                    Ok((resource, entries)) => {
                        state.insert(resource, entries);
                    }
                    Err(e) => warn!(key = %kv.key, error = %e, "ignoring an undecodable ACL"),
                },
                WatchEvent::Delete { key, .. } => {
                    if let Some(resource) = AclRegistry::resource_of_key(key) {
                        state.remove(&resource);
                    }
                }
            }
        }
        self.publish(&state);
    }

    fn publish(&self, state: &BTreeMap<AclResource, BTreeSet<AclEntry>>) {
        let index = Arc::new(Index::build(state));
        let n = state.values().map(BTreeSet::len).sum();
        *self.index.write().unwrap_or_else(|e| e.into_inner()) = index;
        self.count.store(n, std::sync::atomic::Ordering::Relaxed);
    }

    /// How many ACL entries are in force on this node.
    pub(crate) fn acl_count(&self) -> usize {
        self.count.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn snapshot(&self) -> Arc<Index> {
        self.index.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn is_super_user(&self, principal: &Principal) -> bool {
        self.config.super_users.iter().any(|s| s == principal)
    }

    /// Whether `principal` from `host` may do `op` on the resource `rt`/`name`; no logging.
    pub(crate) fn allowed_for(
        &self,
        principal: &Principal,
        host: IpAddr,
        op: AclOperation,
        rt: AclResourceType,
        name: &str,
    ) -> bool {
        if self.is_super_user(principal) {
            return true;
        }
        self.snapshot()
            .decide(principal, host, op, rt, name)
            .unwrap_or(self.config.allow_if_no_acls)
    }

    /// Whether the session may do `op` on `rt`/`name`, without logging a denial: for
    /// filtering lists (Kafka's `logIfDenied = false`), where a denial is not a refusal.
    pub(crate) fn allowed(
        &self,
        session: &Session,
        op: AclOperation,
        rt: AclResourceType,
        name: &str,
    ) -> bool {
        self.allowed_for(&session.principal, session.host(), op, rt, name)
    }

    /// Whether the session may do `op` on `rt`/`name`; a denial is counted and logged (rate
    /// limited). `api` names the request in the log line.
    pub(crate) fn authorize(
        &self,
        session: &Session,
        api: &str,
        op: AclOperation,
        rt: AclResourceType,
        name: &str,
    ) -> bool {
        let ok = self.allowed(session, op, rt, name);
        if !ok {
            self.denied(session, api, op, rt, name);
        }
        ok
    }

    /// Counts a denial and logs it unless this second's quota of lines is used up.
    fn denied(
        &self,
        session: &Session,
        api: &str,
        op: AclOperation,
        rt: AclResourceType,
        name: &str,
    ) {
        Metrics::add(&self.metrics.authorization_denials, 1);
        let second = self.clock.now_ms().div_euclid(1000);
        let mut log = self.denials.lock().unwrap_or_else(|e| e.into_inner());
        if log.second != second {
            log.second = second;
            log.logged = 0;
        }
        if log.logged >= DENIAL_LOGS_PER_SECOND {
            log.suppressed += 1;
            return;
        }
        log.logged += 1;
        let suppressed = std::mem::take(&mut log.suppressed);
        drop(log);
        info!(
            principal = %session.principal,
            host = %session.host(),
            operation = %op,
            resource = %format_args!("{rt}:{name}"),
            api,
            suppressed_since_last = suppressed,
            "authorization denied"
        );
    }

    /// Kafka's `authorizeByResourceType`: whether the session may do `op` on at least one
    /// resource of type `rt` — it may on a resource with no ACLs (when that is allowed), or
    /// has a matching ALLOW that no matching DENY of the same or a shorter prefix (or the
    /// wildcard) overrides. Used where Kafka accepts "WRITE on any topic" for idempotence.
    pub(crate) fn allowed_on_any(
        &self,
        session: &Session,
        op: AclOperation,
        rt: AclResourceType,
    ) -> bool {
        // Kafka's shortcut: a made-up name covers super users, wildcard ACLs and
        // allow-if-no-ACLs.
        if self.allowed(session, op, rt, "hardcode") {
            return true;
        }
        let principal = &session.principal;
        let host = session.host();
        let index = self.snapshot();
        let Some(t) = index.by_type.get(&rt) else {
            return false;
        };
        // Only the operation itself or ALL count here (no implied operations), as in Kafka.
        let matches = |e: &IndexedEntry, permission: AclPermission| {
            e.permission == permission
                && (e.operation == op || e.operation == AclOperation::All)
                && e.result(principal, host, e.operation).is_some()
        };
        let any = |entries: &Vec<IndexedEntry>, permission| {
            entries.iter().any(|e| matches(e, permission))
        };
        if t.literal
            .get(WILDCARD)
            .is_some_and(|es| any(es, AclPermission::Deny))
        {
            return false;
        }
        if t.literal
            .get(WILDCARD)
            .is_some_and(|es| any(es, AclPermission::Allow))
        {
            return true;
        }
        let deny_prefixes: BTreeSet<&str> = t
            .prefixed
            .iter()
            .filter(|(_, es)| any(es, AclPermission::Deny))
            .map(|(p, _)| p.as_str())
            .collect();
        let dominated = |name: &str| deny_prefixes.iter().any(|p| name.starts_with(p));
        let literal_ok = t.literal.iter().any(|(name, es)| {
            any(es, AclPermission::Allow) && !any(es, AclPermission::Deny) && !dominated(name)
        });
        literal_ok
            || t.prefixed
                .iter()
                .any(|(name, es)| any(es, AclPermission::Allow) && !dominated(name))
    }

    /// Kafka's authorized-operations bit field of a resource: bit `code` set for each of
    /// `supported` the session may do on it (no logging).
    pub(crate) fn authorized_operations(
        &self,
        session: &Session,
        rt: AclResourceType,
        name: &str,
        supported: &[AclOperation],
    ) -> i32 {
        supported
            .iter()
            .filter(|op| self.allowed(session, **op, rt, name))
            .fold(0, |bits, op| bits | (1 << op.code()))
    }
}

/// The operations Kafka reports as authorized operations of a topic.
pub(crate) const TOPIC_OPERATIONS: &[AclOperation] = &[
    AclOperation::Read,
    AclOperation::Write,
    AclOperation::Create,
    AclOperation::Delete,
    AclOperation::Alter,
    AclOperation::Describe,
    AclOperation::DescribeConfigs,
    AclOperation::AlterConfigs,
];

/// The operations Kafka reports as authorized operations of a group.
pub(crate) const GROUP_OPERATIONS: &[AclOperation] = &[
    AclOperation::Read,
    AclOperation::Delete,
    AclOperation::Describe,
    AclOperation::DescribeConfigs,
    AclOperation::AlterConfigs,
];

/// The operations Kafka reports as authorized operations of the cluster.
pub(crate) const CLUSTER_OPERATIONS: &[AclOperation] = &[
    AclOperation::Create,
    AclOperation::Alter,
    AclOperation::Describe,
    AclOperation::ClusterAction,
    AclOperation::DescribeConfigs,
    AclOperation::AlterConfigs,
    AclOperation::IdempotentWrite,
];

/// Sleeps [`RETRY_DELAY`]; true if cancelled meanwhile.
async fn pause(cancel: &CancellationToken) -> bool {
    tokio::select! {
        () = cancel.cancelled() => true,
        () = tokio::time::sleep(RETRY_DELAY) => false,
    }
}

#[cfg(test)]
mod tests;
