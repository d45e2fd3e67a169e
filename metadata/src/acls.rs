//! ACL bindings (Kafka's authorization model): who may do what to which resource.
//!
//! Kafka's model, as `kafka-acls` and the Admin API speak it: a binding is a *resource pattern*
//! (a resource type, a name, and whether the name is matched literally or as a prefix) and an
//! *entry* (a principal such as `User:alice` or `User:*`, a host, an operation, and ALLOW or
//! DENY). Bindings are grouped by resource pattern: one key per pattern, its value the JSON set
//! of entries, so adding or removing entries is one compare-and-swap on one key and a pattern
//! with no entries left has no key at all.
//!
//! Lifecycle: the admin APIs (CreateAcls, DeleteAcls) change the registry through
//! [`AclRegistry::add`] and [`AclRegistry::remove`]; every node lists it once
//! ([`AclRegistry::list_at`]) and then watches [`ACLS_PREFIX`] from the listed revision + 1,
//! applying each put ([`AclRegistry::decode`]) and delete ([`AclRegistry::resource_of_key`]) to
//! its in-memory index, so a change is in force on every node as soon as its watch delivers it.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::partition_state::Versioned;
use crate::registry::{MAX_CAS_ATTEMPTS, decode_json, encode_json};
use crate::store::{Compare, KeyValue, MetadataStore, Op, Precondition};

/// Where ACLs live: `/tierlog/acls/<resource type>/<pattern type>/<name, percent-encoded>`.
pub const ACLS_PREFIX: &str = "/tierlog/acls/";

/// Declares a Kafka enum: variants with their wire code and their Kafka name (which is also the
/// JSON spelling and the key segment).
macro_rules! kafka_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $variant:ident = $code:literal, $text:literal;)* }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        pub enum $name {
            $($(#[$vm])* #[serde(rename = $text)] $variant,)*
        }

        impl $name {
            /// Every value, in wire-code order.
            pub const ALL: &'static [$name] = &[$($name::$variant),*];

            /// The wire code (Kafka's `code()`).
            pub fn code(self) -> i8 {
                match self { $($name::$variant => $code,)* }
            }

            /// The value with wire code `code`, if it is one of these.
            pub fn from_code(code: i8) -> Option<$name> {
                match code { $($code => Some($name::$variant),)* _ => None }
            }

            /// Kafka's name (`TOPIC`, `PREFIXED`, `READ`, `ALLOW`).
            pub fn name(self) -> &'static str {
                match self { $($name::$variant => $text,)* }
            }

            /// The value named `s` (case-insensitive, as Kafka's `fromString`).
            pub fn parse(s: &str) -> Option<$name> {
                Self::ALL.iter().copied().find(|v| v.name().eq_ignore_ascii_case(s))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

kafka_enum! {
    /// What kind of resource a binding is about (Kafka's `ResourceType`, without the filter-only
    /// `ANY` and `UNKNOWN`).
    AclResourceType {
        /// A topic, by name.
        Topic = 2, "TOPIC";
        /// A consumer group, by group id.
        Group = 3, "GROUP";
        /// The cluster; its only name is `kafka-cluster`.
        Cluster = 4, "CLUSTER";
        /// A transactional id.
        TransactionalId = 5, "TRANSACTIONAL_ID";
        /// A delegation token, by token id.
        DelegationToken = 6, "DELEGATION_TOKEN";
        /// A user, by principal name (for creating and describing its tokens).
        User = 7, "USER";
    }
}

kafka_enum! {
    /// How a binding's resource name matches (Kafka's `PatternType`, without the filter-only
    /// `ANY`, `MATCH` and `UNKNOWN`).
    AclPatternType {
        /// The name exactly, or every resource of the type when the name is `*`.
        Literal = 3, "LITERAL";
        /// Every resource whose name starts with the name.
        Prefixed = 4, "PREFIXED";
    }
}

kafka_enum! {
    /// What a binding allows or denies (Kafka's `AclOperation`, without the filter-only `ANY`
    /// and `UNKNOWN`).
    AclOperation {
        /// Every operation.
        All = 2, "ALL";
        /// Consume (topics), join and commit (groups).
        Read = 3, "READ";
        /// Produce (topics), transactional writes (transactional ids).
        Write = 4, "WRITE";
        /// Create topics.
        Create = 5, "CREATE";
        /// Delete topics, records, groups.
        Delete = 6, "DELETE";
        /// Alter partitions, ACLs.
        Alter = 7, "ALTER";
        /// Describe: see that the resource exists, and its metadata.
        Describe = 8, "DESCRIBE";
        /// Broker-to-broker requests (replica fetches, transaction markers).
        ClusterAction = 9, "CLUSTER_ACTION";
        /// Read configs.
        DescribeConfigs = 10, "DESCRIBE_CONFIGS";
        /// Change configs.
        AlterConfigs = 11, "ALTER_CONFIGS";
        /// Idempotent produce (on the cluster).
        IdempotentWrite = 12, "IDEMPOTENT_WRITE";
        /// Create delegation tokens.
        CreateTokens = 13, "CREATE_TOKENS";
        /// Describe delegation tokens.
        DescribeTokens = 14, "DESCRIBE_TOKENS";
        /// Two-phase commit of transactions (KIP-939).
        TwoPhaseCommit = 15, "TWO_PHASE_COMMIT";
    }
}

kafka_enum! {
    /// Whether a binding allows or denies (Kafka's `AclPermissionType`).
    AclPermission {
        /// Denies; a matching DENY wins over any ALLOW.
        Deny = 2, "DENY";
        /// Allows.
        Allow = 3, "ALLOW";
    }
}

/// A resource pattern: which resources a set of entries applies to.
#[derive(
    Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct AclResource {
    /// The resource type.
    pub resource_type: AclResourceType,
    /// Literal or prefixed.
    pub pattern_type: AclPatternType,
    /// The name (or prefix); `*` as a literal name means every resource of the type.
    pub name: String,
}

impl AclResource {
    /// A pattern of `resource_type`, `pattern_type` and `name`.
    pub fn new(
        resource_type: AclResourceType,
        pattern_type: AclPatternType,
        name: impl Into<String>,
    ) -> AclResource {
        AclResource {
            resource_type,
            pattern_type,
            name: name.into(),
        }
    }
}

impl fmt::Display for AclResource {
    /// As Kafka prints a `ResourcePattern`'s parts: `TOPIC:LITERAL:orders`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}",
            self.resource_type, self.pattern_type, self.name
        )
    }
}

/// One access control entry: who, from where, what, allowed or denied.
#[derive(
    Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct AclEntry {
    /// `Type:name`, e.g. `User:alice`; `User:*` matches every user.
    pub principal: String,
    /// The client's IP address, or `*` for any host.
    pub host: String,
    /// The operation.
    pub operation: AclOperation,
    /// ALLOW or DENY.
    pub permission: AclPermission,
}

/// A resource pattern and one entry: what CreateAcls creates and DescribeAcls lists.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AclBinding {
    /// The resource pattern.
    pub resource: AclResource,
    /// The entry.
    pub entry: AclEntry,
}

/// The stored value of one resource pattern's key.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct StoredAcls {
    /// The pattern, repeated so a value under the wrong key is caught.
    resource: AclResource,
    /// Never empty: a pattern without entries has no key.
    entries: BTreeSet<AclEntry>,
}

/// Checks what the store would refuse to hold: an empty resource name, or a principal without
/// the `Type:` part (Kafka's `AclControlManager.validateNewAcl`).
pub fn validate_binding(resource: &AclResource, entry: &AclEntry) -> Result<()> {
    if resource.name.is_empty() {
        return Err(Error::invalid("resource name should not be empty"));
    }
    if !entry.principal.contains(':') {
        return Err(Error::invalid(format!(
            "could not parse principal from `{}` (no colon is present separating the principal \
             type from the principal name)",
            entry.principal
        )));
    }
    if entry.host.is_empty() {
        return Err(Error::invalid("host should not be empty"));
    }
    Ok(())
}

/// ACL bindings, one key per resource pattern, under [`ACLS_PREFIX`].
///
/// ```
/// use std::sync::Arc;
/// use tierlog_metadata::{
///     AclEntry, AclOperation, AclPatternType, AclPermission, AclRegistry, AclResource,
///     AclResourceType, MemoryStore,
/// };
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> tierlog_metadata::Result<()> {
/// let acls = AclRegistry::new(Arc::new(MemoryStore::new()));
/// let orders = AclResource::new(AclResourceType::Topic, AclPatternType::Prefixed, "orders-");
/// let read = AclEntry {
///     principal: "User:alice".into(),
///     host: "*".into(),
///     operation: AclOperation::Read,
///     permission: AclPermission::Allow,
/// };
/// acls.add(&orders, std::slice::from_ref(&read)).await?;
/// assert_eq!(acls.list().await?.len(), 1);
///
/// let removed = acls.remove(&orders, |e| e.principal == "User:alice").await?;
/// assert_eq!(removed, vec![read]);
/// assert!(acls.list().await?.is_empty());
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct AclRegistry {
    store: Arc<dyn MetadataStore>,
}

impl AclRegistry {
    /// A registry over `store`.
    pub fn new(store: Arc<dyn MetadataStore>) -> Self {
        Self { store }
    }

    /// The store the registry is over (for watching [`ACLS_PREFIX`]).
    pub fn store(&self) -> &Arc<dyn MetadataStore> {
        &self.store
    }

    /// Key: `/tierlog/acls/<TYPE>/<PATTERN>/<name with % → %25 and / → %2F>`.
    pub fn key(resource: &AclResource) -> String {
        format!(
            "{ACLS_PREFIX}{}/{}/{}",
            resource.resource_type,
            resource.pattern_type,
            escape(&resource.name)
        )
    }

    /// The resource pattern a key under [`ACLS_PREFIX`] stands for (for watch deletes);
    /// `None` for a key of another shape.
    pub fn resource_of_key(key: &str) -> Option<AclResource> {
        let rest = key.strip_prefix(ACLS_PREFIX)?;
        let mut parts = rest.splitn(3, '/');
        let resource_type = AclResourceType::parse(parts.next()?)?;
        let pattern_type = AclPatternType::parse(parts.next()?)?;
        let name = unescape(parts.next()?)?;
        Some(AclResource::new(resource_type, pattern_type, name))
    }

    /// Decodes one stored key: its pattern and entries. A value stored under another
    /// pattern's key is [`ErrorKind::Data`](crate::ErrorKind::Data).
    pub fn decode(kv: &KeyValue) -> Result<(AclResource, BTreeSet<AclEntry>)> {
        let stored: StoredAcls = decode_json(kv)?;
        if kv.key != Self::key(&stored.resource) {
            return Err(Error::Corrupt {
                key: kv.key.clone(),
                message: format!("holds the ACLs of `{}`", stored.resource),
            });
        }
        Ok((stored.resource, stored.entries))
    }

    /// The entries of one resource pattern and their mod revision; `None` if it has none.
    pub async fn get(
        &self,
        resource: &AclResource,
    ) -> Result<Option<Versioned<BTreeSet<AclEntry>>>> {
        match self.store.get(&Self::key(resource)).await? {
            Some(kv) => {
                let (_, entries) = Self::decode(&kv)?;
                Ok(Some(Versioned {
                    value: entries,
                    mod_revision: kv.mod_revision,
                }))
            }
            None => Ok(None),
        }
    }

    /// Adds `entries` to `resource`'s set (entries already there stay once): a
    /// read-modify-write on the pattern's key, re-read after a lost race. Writes nothing when
    /// every entry is already there.
    ///
    /// [`ErrorKind::Invalid`](crate::ErrorKind::Invalid) for a binding
    /// [`validate_binding`] refuses.
    pub async fn add(&self, resource: &AclResource, entries: &[AclEntry]) -> Result<()> {
        for e in entries {
            validate_binding(resource, e)?;
        }
        let key = Self::key(resource);
        for _ in 0..MAX_CAS_ATTEMPTS {
            let current = self.store.get(&key).await?;
            let (mut set, compare) = match &current {
                Some(kv) => (
                    Self::decode(kv)?.1,
                    Compare::mod_revision(&key, kv.mod_revision),
                ),
                None => (BTreeSet::new(), Compare::absent(&key)),
            };
            let before = set.len();
            set.extend(entries.iter().cloned());
            if set.len() == before && current.is_some() {
                return Ok(());
            }
            let value = encode_json(
                &key,
                &StoredAcls {
                    resource: resource.clone(),
                    entries: set,
                },
            )?;
            if self
                .store
                .txn(vec![compare], vec![Op::put(&key, value)])
                .await?
                .succeeded
            {
                return Ok(());
            }
            tracing::trace!(key, "ACL add raced another writer; re-reading");
        }
        Err(Error::Conflict {
            key,
            expected: Precondition::Any,
        })
    }

    /// Removes the entries of `resource` that `wanted` accepts and returns exactly those (in
    /// the set's order); the key goes when no entry is left. A read-modify-write re-read after
    /// a lost race, so `wanted` must be free of side effects.
    pub async fn remove(
        &self,
        resource: &AclResource,
        wanted: impl Fn(&AclEntry) -> bool,
    ) -> Result<Vec<AclEntry>> {
        let key = Self::key(resource);
        for _ in 0..MAX_CAS_ATTEMPTS {
            let Some(kv) = self.store.get(&key).await? else {
                return Ok(Vec::new());
            };
            let (_, set) = Self::decode(&kv)?;
            let (removed, kept): (Vec<AclEntry>, Vec<AclEntry>) =
                set.into_iter().partition(|e| wanted(e));
            if removed.is_empty() {
                return Ok(removed);
            }
            let op = if kept.is_empty() {
                Op::delete(&key)
            } else {
                Op::put(
                    &key,
                    encode_json(
                        &key,
                        &StoredAcls {
                            resource: resource.clone(),
                            entries: kept.into_iter().collect(),
                        },
                    )?,
                )
            };
            if self
                .store
                .txn(vec![Compare::mod_revision(&key, kv.mod_revision)], vec![op])
                .await?
                .succeeded
            {
                return Ok(removed);
            }
            tracing::trace!(key, "ACL remove raced another writer; re-reading");
        }
        Err(Error::Conflict {
            key,
            expected: Precondition::Any,
        })
    }

    /// Every resource pattern with its entries, sorted by key.
    pub async fn list(&self) -> Result<Vec<(AclResource, BTreeSet<AclEntry>)>> {
        Ok(self.list_at().await?.0)
    }

    /// [`AclRegistry::list`] and a revision to watch [`ACLS_PREFIX`] from so that no later
    /// change is missed (one made between the two reads shows up in both).
    pub async fn list_at(&self) -> Result<(Vec<(AclResource, BTreeSet<AclEntry>)>, u64)> {
        let from = self.store.current_revision().await? + 1;
        let all = self
            .store
            .list(ACLS_PREFIX)
            .await?
            .iter()
            .map(Self::decode)
            .collect::<Result<Vec<_>>>()?;
        Ok((all, from))
    }

    /// Every binding, one per entry.
    pub async fn bindings(&self) -> Result<Vec<AclBinding>> {
        Ok(self
            .list()
            .await?
            .into_iter()
            .flat_map(|(resource, entries)| {
                entries.into_iter().map(move |entry| AclBinding {
                    resource: resource.clone(),
                    entry,
                })
            })
            .collect())
    }
}

/// Percent-encodes the two characters that would break a key segment: `%` and `/`.
fn escape(s: &str) -> String {
    s.replace('%', "%25").replace('/', "%2F")
}

/// Reverses [`escape`]; `None` for an escape it never writes.
fn unescape(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('%') {
        out.push_str(&rest[..i]);
        let code = rest.get(i + 1..i + 3)?;
        out.push(match code {
            "25" => '%',
            "2F" => '/',
            _ => return None,
        });
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embedded::EmbeddedStore;
    use crate::memory::MemoryStore;
    use crate::store::WatchEvent;

    fn entry(principal: &str, op: AclOperation, permission: AclPermission) -> AclEntry {
        AclEntry {
            principal: principal.into(),
            host: "*".into(),
            operation: op,
            permission,
        }
    }

    /// The registry's contract, run against each local backend.
    async fn conformance(store: Arc<dyn MetadataStore>) {
        let acls = AclRegistry::new(store.clone());
        let (listed, from) = acls.list_at().await.expect("list");
        assert!(listed.is_empty());
        let mut watch = store.watch(ACLS_PREFIX, from).await.expect("watch");

        let topic = AclResource::new(AclResourceType::Topic, AclPatternType::Literal, "a/b%c");
        let prefixed = AclResource::new(AclResourceType::Topic, AclPatternType::Prefixed, "a");
        let read = entry("User:alice", AclOperation::Read, AclPermission::Allow);
        let deny = entry("User:*", AclOperation::Write, AclPermission::Deny);

        acls.add(&topic, std::slice::from_ref(&read))
            .await
            .expect("add");
        // Adding again changes nothing (no new revision).
        let rev = store.current_revision().await.expect("rev");
        acls.add(&topic, std::slice::from_ref(&read))
            .await
            .expect("add again");
        assert_eq!(store.current_revision().await.expect("rev"), rev);
        acls.add(&topic, std::slice::from_ref(&deny))
            .await
            .expect("add deny");
        acls.add(&prefixed, std::slice::from_ref(&read))
            .await
            .expect("add prefixed");

        let got = acls.get(&topic).await.expect("get").expect("present");
        assert_eq!(got.value, BTreeSet::from([read.clone(), deny.clone()]));
        assert_eq!(acls.bindings().await.expect("bindings").len(), 3);

        // The watch sees each change, decodable back to its pattern.
        let WatchEvent::Put(kv) = crate::conformance::next_event(&mut watch).await else {
            panic!("expected a put");
        };
        assert_eq!(AclRegistry::decode(&kv).expect("decode").0, topic);

        // Removing takes exactly what matches; the key goes with the last entry.
        let removed = acls
            .remove(&topic, |e| e.permission == AclPermission::Deny)
            .await
            .expect("remove");
        assert_eq!(removed, vec![deny.clone()]);
        assert!(
            acls.remove(&topic, |_| false)
                .await
                .expect("none")
                .is_empty()
        );
        acls.remove(&topic, |_| true).await.expect("remove rest");
        assert_eq!(acls.get(&topic).await.expect("get"), None);
        assert!(
            store
                .get(&AclRegistry::key(&topic))
                .await
                .expect("get")
                .is_none()
        );
        let listed = acls.list().await.expect("list");
        assert_eq!(
            listed,
            vec![(prefixed.clone(), BTreeSet::from([read.clone()]))]
        );

        // Deletes name their pattern through the key.
        loop {
            match crate::conformance::next_event(&mut watch).await {
                WatchEvent::Delete { key, .. } => {
                    assert_eq!(AclRegistry::resource_of_key(&key), Some(topic.clone()));
                    break;
                }
                WatchEvent::Put(_) => {}
            }
        }

        // Invalid bindings are refused.
        let empty = AclResource::new(AclResourceType::Topic, AclPatternType::Literal, "");
        assert!(acls.add(&empty, std::slice::from_ref(&read)).await.is_err());
        let bad = entry("alice", AclOperation::Read, AclPermission::Allow);
        assert!(acls.add(&prefixed, &[bad]).await.is_err());

        // Concurrent adders both land (compare-and-swap, re-read on a lost race).
        let group = AclResource::new(AclResourceType::Group, AclPatternType::Literal, "g");
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let acls = acls.clone();
                let group = group.clone();
                tokio::spawn(async move {
                    let e = entry(
                        &format!("User:u{i}"),
                        AclOperation::Read,
                        AclPermission::Allow,
                    );
                    acls.add(&group, &[e]).await
                })
            })
            .collect();
        for t in tasks {
            t.await.expect("join").expect("add");
        }
        assert_eq!(
            acls.get(&group)
                .await
                .expect("get")
                .expect("set")
                .value
                .len(),
            8
        );
    }

    #[tokio::test]
    async fn acls_memory() {
        conformance(Arc::new(MemoryStore::new())).await;
    }

    #[tokio::test]
    async fn acls_embedded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = EmbeddedStore::open(&dir.path().join("metadata.redb")).expect("open");
        conformance(Arc::new(store)).await;
    }

    #[test]
    fn keys_round_trip_and_names_are_kafkas() {
        let r = AclResource::new(
            AclResourceType::TransactionalId,
            AclPatternType::Prefixed,
            "a/b%2F",
        );
        let key = AclRegistry::key(&r);
        assert_eq!(key, "/tierlog/acls/TRANSACTIONAL_ID/PREFIXED/a%2Fb%252F");
        assert_eq!(AclRegistry::resource_of_key(&key), Some(r));
        assert_eq!(
            AclRegistry::resource_of_key("/tierlog/acls/NOPE/LITERAL/x"),
            None
        );
        assert_eq!(
            AclOperation::from_code(9),
            Some(AclOperation::ClusterAction)
        );
        assert_eq!(
            AclOperation::parse("describe_configs"),
            Some(AclOperation::DescribeConfigs)
        );
        assert_eq!(AclResourceType::Cluster.code(), 4);
        assert_eq!(AclPermission::from_code(1), None);
        let json = serde_json::to_string(&entry(
            "User:a",
            AclOperation::IdempotentWrite,
            AclPermission::Deny,
        ))
        .expect("json");
        assert_eq!(
            json,
            r#"{"principal":"User:a","host":"*","operation":"IDEMPOTENT_WRITE","permission":"DENY"}"#
        );
    }
}
