//! Client quotas: Kafka's quota entities (a user, a client id, both, or an IP, each named or
//! the default) and the quota values set for each, under `/tierlog/quotas/…`.
//!
//! AlterClientQuotas writes here, one entity at a time, read-modify-write under
//! compare-and-swap; an entity left with no values is deleted. Every node lists the prefix and
//! watches it ([`QUOTAS_PREFIX`]) to keep the table its throttling reads, so a change is
//! effective everywhere within a watch round trip. The registry does not know which keys an
//! entity may carry (Kafka's `producer_byte_rate`, `connection_creation_rate`, …): the API
//! layer validates them, so the store stays a plain map.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::registry::{decode_json, update_json};
use crate::store::MetadataStore;

/// Where quota entities live: `/tierlog/quotas/<entity path>` (see [`QuotaEntity::path`]).
pub const QUOTAS_PREFIX: &str = "/tierlog/quotas/";

/// One component of a quota entity: a specific name or Kafka's default entity (`<default>`,
/// a null name on the wire), which applies to every name without its own quota.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntityName {
    /// This name exactly.
    Named(String),
    /// The default for the entity type.
    Default,
}

impl EntityName {
    /// The wire form: `Some(name)`, or `None` for the default entity.
    pub fn as_option(&self) -> Option<&str> {
        match self {
            EntityName::Named(n) => Some(n),
            EntityName::Default => None,
        }
    }

    /// From the wire form (`None` is the default).
    pub fn from_option(name: Option<&str>) -> EntityName {
        name.map_or(EntityName::Default, |n| EntityName::Named(n.to_owned()))
    }

    /// The key segment: `<default>`, or the name percent-encoded (every byte outside
    /// `[A-Za-z0-9._-]`), so that `/` and `<` in a name cannot collide with the key layout or
    /// the default marker.
    pub(crate) fn segment(&self) -> String {
        match self {
            EntityName::Default => "<default>".to_owned(),
            EntityName::Named(n) => {
                let mut out = String::with_capacity(n.len());
                for b in n.bytes() {
                    if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-') {
                        out.push(char::from(b));
                    } else {
                        out.push_str(&format!("%{b:02X}"));
                    }
                }
                out
            }
        }
    }
}

impl fmt::Display for EntityName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EntityName::Named(n) => f.write_str(n),
            EntityName::Default => f.write_str("<default>"),
        }
    }
}

/// A client-quota entity, as Kafka's `ClientQuotaEntity`: `user`, `client-id`, `user` and
/// `client-id` together, or `ip` alone.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct QuotaEntity {
    /// The `user` component (a principal's name).
    pub user: Option<EntityName>,
    /// The `client-id` component.
    pub client_id: Option<EntityName>,
    /// The `ip` component (only ever alone).
    pub ip: Option<EntityName>,
}

impl QuotaEntity {
    /// `/users/<user>`.
    pub fn user(user: EntityName) -> QuotaEntity {
        QuotaEntity {
            user: Some(user),
            ..QuotaEntity::default()
        }
    }

    /// `/clients/<client>`.
    pub fn client(client: EntityName) -> QuotaEntity {
        QuotaEntity {
            client_id: Some(client),
            ..QuotaEntity::default()
        }
    }

    /// `/users/<user>/clients/<client>`.
    pub fn user_client(user: EntityName, client: EntityName) -> QuotaEntity {
        QuotaEntity {
            user: Some(user),
            client_id: Some(client),
            ip: None,
        }
    }

    /// `/ips/<ip>`.
    pub fn ip(ip: EntityName) -> QuotaEntity {
        QuotaEntity {
            ip: Some(ip),
            ..QuotaEntity::default()
        }
    }

    /// Checks the combination (user and/or client-id, or ip alone) and that no name is
    /// empty; [`ErrorKind::Invalid`] otherwise.
    pub fn validate(&self) -> Result<()> {
        match (&self.user, &self.client_id, &self.ip) {
            (None, None, None) => return Err(Error::invalid("empty client quota entity")),
            (Some(_) | None, Some(_) | None, None) | (None, None, Some(_)) => {}
            _ => {
                return Err(Error::invalid(
                    "an ip quota entity cannot be combined with user or client-id",
                ));
            }
        }
        for (kind, name) in self.components() {
            if name.as_option() == Some("") {
                return Err(Error::invalid(format!("empty {kind} not supported")));
            }
        }
        Ok(())
    }

    /// The components present, as Kafka names their types: `("user", name)`,
    /// `("client-id", name)`, `("ip", name)`.
    pub fn components(&self) -> Vec<(&'static str, &EntityName)> {
        let mut out = Vec::with_capacity(2);
        if let Some(u) = &self.user {
            out.push(("user", u));
        }
        if let Some(c) = &self.client_id {
            out.push(("client-id", c));
        }
        if let Some(i) = &self.ip {
            out.push(("ip", i));
        }
        out
    }

    /// The key path below [`QUOTAS_PREFIX`]: `users/<u>`, `users/<u>/clients/<c>`,
    /// `clients/<c>` or `ips/<ip>`.
    pub fn path(&self) -> String {
        let mut parts = Vec::with_capacity(4);
        if let Some(u) = &self.user {
            parts.push(format!("users/{}", u.segment()));
        }
        if let Some(c) = &self.client_id {
            parts.push(format!("clients/{}", c.segment()));
        }
        if let Some(i) = &self.ip {
            parts.push(format!("ips/{}", i.segment()));
        }
        parts.join("/")
    }
}

impl fmt::Display for QuotaEntity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .components()
            .into_iter()
            .map(|(k, n)| format!("{k}={n}"))
            .collect();
        write!(f, "[{}]", parts.join(", "))
    }
}

/// One entity and its quota values (`producer_byte_rate` → bytes/s, …): the stored value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClientQuota {
    /// Whom the values apply to.
    pub entity: QuotaEntity,
    /// Quota key → value, never empty in the store.
    pub values: BTreeMap<String, f64>,
}

/// Client quotas under `/tierlog/quotas/…`.
///
/// ```
/// use std::collections::BTreeMap;
/// use std::sync::Arc;
/// use tierlog_metadata::{EntityName, MemoryStore, QuotaEntity, QuotaRegistry};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> tierlog_metadata::Result<()> {
/// let quotas = QuotaRegistry::new(Arc::new(MemoryStore::new()));
/// let c1 = QuotaEntity::client(EntityName::Named("c1".into()));
/// let set = BTreeMap::from([("producer_byte_rate".to_owned(), Some(1024.0))]);
/// quotas.alter(&c1, &set).await?;
/// assert_eq!(quotas.list().await?[0].values["producer_byte_rate"], 1024.0);
///
/// let remove = BTreeMap::from([("producer_byte_rate".to_owned(), None)]);
/// quotas.alter(&c1, &remove).await?;
/// assert!(quotas.list().await?.is_empty());
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct QuotaRegistry {
    store: Arc<dyn MetadataStore>,
}

impl QuotaRegistry {
    /// A registry over `store`.
    pub fn new(store: Arc<dyn MetadataStore>) -> Self {
        Self { store }
    }

    /// The store, for watching [`QUOTAS_PREFIX`].
    pub fn store(&self) -> &Arc<dyn MetadataStore> {
        &self.store
    }

    fn key(entity: &QuotaEntity) -> String {
        format!("{QUOTAS_PREFIX}{}", entity.path())
    }

    /// Every entity with quotas, in key order.
    pub async fn list(&self) -> Result<Vec<ClientQuota>> {
        self.store
            .list(QUOTAS_PREFIX)
            .await?
            .iter()
            .map(decode_json)
            .collect()
    }

    /// The quotas of `entity`, if it has any.
    pub async fn get(&self, entity: &QuotaEntity) -> Result<Option<ClientQuota>> {
        match self.store.get(&Self::key(entity)).await? {
            Some(kv) => decode_json(&kv).map(Some),
            None => Ok(None),
        }
    }

    /// Applies `changes` to `entity`'s quotas: `Some(v)` sets a key, `None` removes it.
    /// Read-modify-write under compare-and-swap, retried when another writer got there first;
    /// an entity left with no values is deleted. Returns the values as written (empty if
    /// deleted). [`ErrorKind::Invalid`] for a bad entity.
    pub async fn alter(
        &self,
        entity: &QuotaEntity,
        changes: &BTreeMap<String, Option<f64>>,
    ) -> Result<BTreeMap<String, f64>> {
        entity.validate()?;
        let written = update_json(self.store.as_ref(), &Self::key(entity), |current| {
            let mut values = current
                .map(|q: &ClientQuota| q.values.clone())
                .unwrap_or_default();
            for (k, v) in changes {
                match v {
                    Some(v) => values.insert(k.clone(), *v),
                    None => values.remove(k),
                };
            }
            Ok((!values.is_empty()).then(|| ClientQuota {
                entity: entity.clone(),
                values,
            }))
        })
        .await?;
        Ok(written.map(|q| q.values).unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ErrorKind, MemoryStore};

    fn named(s: &str) -> EntityName {
        EntityName::Named(s.to_owned())
    }

    #[test]
    fn entity_paths_keep_names_apart_from_the_layout() {
        assert_eq!(
            QuotaEntity::user_client(named("a/b"), EntityName::Default).path(),
            "users/a%2Fb/clients/<default>"
        );
        assert_eq!(
            QuotaEntity::client(named("<default>")).path(),
            "clients/%3Cdefault%3E"
        );
        assert_eq!(QuotaEntity::ip(named("10.0.0.1")).path(), "ips/10.0.0.1");
    }

    #[test]
    fn entities_are_validated() {
        assert!(QuotaEntity::default().validate().is_err());
        let mixed = QuotaEntity {
            user: Some(named("u")),
            client_id: None,
            ip: Some(EntityName::Default),
        };
        assert_eq!(
            mixed.validate().expect_err("ip+user").kind(),
            ErrorKind::Invalid
        );
        assert!(QuotaEntity::user(named("")).validate().is_err());
        assert!(
            QuotaEntity::user_client(EntityName::Default, named("c"))
                .validate()
                .is_ok()
        );
    }

    #[tokio::test]
    async fn alter_sets_merges_removes_and_deletes_empty_entities() {
        let store: Arc<dyn MetadataStore> = Arc::new(MemoryStore::new());
        let quotas = QuotaRegistry::new(store.clone());
        let u = QuotaEntity::user(named("alice"));
        let set = BTreeMap::from([
            ("producer_byte_rate".to_owned(), Some(100.0)),
            ("consumer_byte_rate".to_owned(), Some(200.0)),
        ]);
        quotas.alter(&u, &set).await.expect("set");
        let more = BTreeMap::from([
            ("producer_byte_rate".to_owned(), Some(150.0)),
            ("request_percentage".to_owned(), None),
        ]);
        let v = quotas.alter(&u, &more).await.expect("merge");
        assert_eq!(v["producer_byte_rate"], 150.0);
        assert_eq!(v["consumer_byte_rate"], 200.0);
        assert_eq!(
            quotas.get(&u).await.expect("get").expect("present").values,
            v
        );

        // A no-op change writes nothing.
        let rev = store.current_revision().await.expect("rev");
        quotas.alter(&u, &more).await.expect("same");
        assert_eq!(store.current_revision().await.expect("rev"), rev);

        let remove = BTreeMap::from([
            ("producer_byte_rate".to_owned(), None),
            ("consumer_byte_rate".to_owned(), None),
        ]);
        assert!(quotas.alter(&u, &remove).await.expect("rm").is_empty());
        assert_eq!(quotas.get(&u).await.expect("get"), None);
        assert!(quotas.list().await.expect("list").is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_alters_all_land() {
        let quotas = QuotaRegistry::new(Arc::new(MemoryStore::new()));
        let e = QuotaEntity::client(EntityName::Default);
        let mut set = tokio::task::JoinSet::new();
        for i in 0..16 {
            let quotas = quotas.clone();
            let e = e.clone();
            set.spawn(async move {
                let ch = BTreeMap::from([(format!("k{i}"), Some(f64::from(i)))]);
                quotas.alter(&e, &ch).await
            });
        }
        while let Some(r) = set.join_next().await {
            r.expect("join").expect("alter");
        }
        let got = quotas.get(&e).await.expect("get").expect("present");
        assert_eq!(got.values.len(), 16);
    }
}
