//! Typed registries over a [`MetadataStore`]: JSON values under `/tierlog/…` keys.
//!
//! A registry owns one key range and the rules for it (names, invariants), so callers never
//! build keys or parse values themselves. Writes are compare-and-swap: a create is a put-if-
//! absent, an update a read-modify-write loop that retries when another writer got there first.
//! See `metadata/README.md` for the key layout.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, ErrorKind, Result};
use crate::store::{Compare, KeyValue, MetadataStore, MetadataStoreExt, Op, Precondition};
use crate::types::TopicId;

/// Where topics live: `/tierlog/topics/<name>`.
const TOPICS_PREFIX: &str = "/tierlog/topics/";

/// How many times a compare-and-swap loop re-reads before giving up with the last
/// [`ErrorKind::Conflict`]. Each lost round means another writer succeeded, so hitting this
/// takes a pathological storm of writers on one key.
pub(crate) const MAX_CAS_ATTEMPTS: usize = 1000;

/// Read-modify-write of the JSON value at `key` under compare-and-swap, retried when another
/// writer got there first: `f` gets the current value (`None` if absent) and returns the next
/// (`None` deletes the key); an error from `f` ends the loop with it. Nothing is written when
/// the value does not change. Returns the value as written.
pub(crate) async fn update_json<T, F>(
    store: &dyn MetadataStore,
    key: &str,
    mut f: F,
) -> Result<Option<T>>
where
    T: Serialize + DeserializeOwned + PartialEq,
    F: FnMut(Option<&T>) -> Result<Option<T>>,
{
    let mut last_conflict = None;
    for _ in 0..MAX_CAS_ATTEMPTS {
        let current = store.get(key).await?;
        let (value, expect) = match &current {
            Some(kv) => (
                Some(decode_json::<T>(kv)?),
                Precondition::ModRevision(kv.mod_revision),
            ),
            None => (None, Precondition::Absent),
        };
        let next = f(value.as_ref())?;
        if next == value {
            return Ok(next);
        }
        let outcome = match &next {
            None => {
                let compares = vec![Compare::new(key.to_owned(), expect)];
                let ops = vec![Op::delete(key.to_owned())];
                match store.txn(compares, ops).await? {
                    r if r.succeeded => Ok(()),
                    _ => Err(Error::Conflict {
                        key: key.to_owned(),
                        expected: expect,
                    }),
                }
            }
            Some(v) => store
                .put_if(key, encode_json(key, v)?, expect)
                .await
                .map(|_| ()),
        };
        match outcome {
            Ok(()) => return Ok(next),
            Err(e) if e.kind() == ErrorKind::Conflict => {
                tracing::trace!(key, "update raced another writer; retrying");
                last_conflict = Some(e);
            }
            Err(e) => return Err(e),
        }
    }
    Err(last_conflict.unwrap_or_else(|| Error::internal("update made no attempt")))
}

/// The longest legal topic name, as in Kafka (249, so that `<name>-<partition>` directory
/// names stay under common 255-byte file name limits).
pub const MAX_TOPIC_NAME_LEN: usize = 249;

/// A topic's definition: what CreateTopics sets and DescribeConfigs/AlterConfigs read and change.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TopicMeta {
    /// The topic name; immutable (see [`validate_topic_name`]).
    pub name: String,
    /// The topic id, fixed at creation; immutable.
    pub id: TopicId,
    /// Number of partitions, at least 1.
    pub partitions: i32,
    /// Replicas per partition, at least 1.
    pub replication_factor: i16,
    /// Topic-level config overrides (`retention.ms`, `cleanup.policy`, …), by Kafka name.
    pub configs: BTreeMap<String, String>,
    /// Creation time, milliseconds since the Unix epoch.
    pub created_ms: i64,
}

/// Checks a topic name against Kafka's rules: 1 to 249 characters from `[a-zA-Z0-9._-]`, and
/// neither `.` nor `..`.
///
/// ```
/// use tierlog_metadata::{validate_topic_name, ErrorKind};
///
/// assert!(validate_topic_name("orders.v2_eu-west").is_ok());
/// assert_eq!(validate_topic_name("a/b").unwrap_err().kind(), ErrorKind::Invalid);
/// assert!(validate_topic_name("..").is_err());
/// ```
pub fn validate_topic_name(name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(Error::invalid("topic name is empty"));
    }
    if name == "." || name == ".." {
        return Err(Error::invalid(format!(
            "topic name `{name}` is not allowed"
        )));
    }
    if name.len() > MAX_TOPIC_NAME_LEN {
        return Err(Error::invalid(format!(
            "topic name is {} characters long, the limit is {MAX_TOPIC_NAME_LEN}",
            name.len()
        )));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(Error::invalid(format!(
            "topic name `{}` contains {c:?}; legal characters are [a-zA-Z0-9._-]",
            name.escape_debug()
        )));
    }
    Ok(())
}

fn validate_topic(meta: &TopicMeta) -> Result<()> {
    validate_topic_name(&meta.name)?;
    if meta.partitions < 1 {
        return Err(Error::invalid(format!(
            "topic `{}`: partitions must be at least 1, got {}",
            meta.name, meta.partitions
        )));
    }
    if meta.replication_factor < 1 {
        return Err(Error::invalid(format!(
            "topic `{}`: replication factor must be at least 1, got {}",
            meta.name, meta.replication_factor
        )));
    }
    Ok(())
}

pub(crate) fn encode_json<T: Serialize>(key: &str, value: &T) -> Result<Bytes> {
    serde_json::to_vec(value)
        .map(Bytes::from)
        .map_err(|source| Error::Encode {
            key: key.to_owned(),
            source,
        })
}

/// Reads `key`, decodes it, and if `wanted` accepts the value deletes it in a transaction
/// comparing the mod revision it read, re-reading after a lost race. Returns exactly what it
/// deleted; `None` if the key is absent or `wanted` refuses it. Gives up with
/// [`ErrorKind::Conflict`] after [`MAX_CAS_ATTEMPTS`] lost races.
pub(crate) async fn delete_if<T: DeserializeOwned>(
    store: &dyn MetadataStore,
    key: &str,
    wanted: impl Fn(&T) -> bool,
) -> Result<Option<T>> {
    for _ in 0..MAX_CAS_ATTEMPTS {
        let Some(kv) = store.get(key).await? else {
            return Ok(None);
        };
        // Decode first: what we return must be exactly what we deleted.
        let value: T = decode_json(&kv)?;
        if !wanted(&value) {
            return Ok(None);
        }
        let result = store
            .txn(
                vec![Compare::mod_revision(key, kv.mod_revision)],
                vec![Op::delete(key)],
            )
            .await?;
        if result.succeeded {
            return Ok(Some(value));
        }
        tracing::trace!(key, "delete raced another writer; re-reading");
    }
    Err(Error::Conflict {
        key: key.to_owned(),
        expected: Precondition::Any,
    })
}

pub(crate) fn decode_json<T: DeserializeOwned>(kv: &KeyValue) -> Result<T> {
    serde_json::from_slice(&kv.value).map_err(|source| Error::Decode {
        key: kv.key.clone(),
        source,
    })
}

/// Topics and their configs, under `/tierlog/topics/<name>`.
///
/// ```
/// use std::sync::Arc;
/// use tierlog_metadata::{ErrorKind, MemoryStore, TopicId, TopicMeta, TopicRegistry};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> tierlog_metadata::Result<()> {
/// let topics = TopicRegistry::new(Arc::new(MemoryStore::new()));
/// let meta = TopicMeta {
///     name: "orders".into(),
///     id: TopicId::new_v4(),
///     partitions: 3,
///     replication_factor: 1,
///     configs: Default::default(),
///     created_ms: 0,
/// };
/// topics.create(&meta).await?;
/// assert_eq!(topics.create(&meta).await.unwrap_err().kind(), ErrorKind::AlreadyExists);
///
/// let updated = topics
///     .update("orders", |t| {
///         t.configs.insert("retention.ms".into(), "-1".into());
///         Ok(())
///     })
///     .await?;
/// assert_eq!(topics.get("orders").await?, Some(updated));
///
/// assert_eq!(topics.delete("orders").await?.map(|t| t.id), Some(meta.id));
/// assert!(topics.list().await?.is_empty());
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct TopicRegistry {
    store: Arc<dyn MetadataStore>,
}

impl TopicRegistry {
    /// A registry over `store`.
    pub fn new(store: Arc<dyn MetadataStore>) -> Self {
        Self { store }
    }

    fn key(name: &str) -> String {
        format!("{TOPICS_PREFIX}{name}")
    }

    /// Creates a topic; [`ErrorKind::AlreadyExists`] if the name is taken,
    /// [`ErrorKind::Invalid`] for a bad name, partition count or replication factor.
    pub async fn create(&self, meta: &TopicMeta) -> Result<()> {
        validate_topic(meta)?;
        let key = Self::key(&meta.name);
        let value = encode_json(&key, meta)?;
        match self.store.put_if(&key, value, Precondition::Absent).await {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == ErrorKind::Conflict => {
                Err(Error::already_exists(format!("topic `{}`", meta.name)))
            }
            Err(e) => Err(e),
        }
    }

    /// The topic named `name`, if it exists.
    pub async fn get(&self, name: &str) -> Result<Option<TopicMeta>> {
        match self.store.get(&Self::key(name)).await? {
            Some(kv) => decode_json(&kv).map(Some),
            None => Ok(None),
        }
    }

    /// Every topic, sorted by name.
    pub async fn list(&self) -> Result<Vec<TopicMeta>> {
        self.store
            .list(TOPICS_PREFIX)
            .await?
            .iter()
            .map(decode_json)
            .collect()
    }

    /// Deletes the topic; returns what was deleted, or `None` if there was no such topic.
    pub async fn delete(&self, name: &str) -> Result<Option<TopicMeta>> {
        delete_if(self.store.as_ref(), &Self::key(name), |_: &TopicMeta| true).await
    }

    /// Read-modify-write: applies `f` to the current topic and writes it back if nothing
    /// changed it meanwhile, re-reading and re-applying `f` otherwise (so `f` may run more
    /// than once and must not have side effects). `f` returning `Err` aborts with that error.
    ///
    /// Returns the topic as written. [`ErrorKind::NotFound`] if there is no such topic;
    /// [`ErrorKind::Invalid`] if `f` changes the name or id or breaks an invariant.
    pub async fn update(
        &self,
        name: &str,
        mut f: impl FnMut(&mut TopicMeta) -> Result<()> + Send,
    ) -> Result<TopicMeta> {
        let key = Self::key(name);
        let mut last_conflict = None;
        for _ in 0..MAX_CAS_ATTEMPTS {
            let Some(kv) = self.store.get(&key).await? else {
                return Err(Error::not_found(format!("topic `{name}`")));
            };
            let mut meta: TopicMeta = decode_json(&kv)?;
            let (old_name, old_id) = (meta.name.clone(), meta.id);
            f(&mut meta)?;
            if meta.name != old_name || meta.id != old_id {
                return Err(Error::invalid(format!(
                    "topic `{name}`: update may not change the name or id"
                )));
            }
            validate_topic(&meta)?;
            let value = encode_json(&key, &meta)?;
            match self
                .store
                .put_if(&key, value, Precondition::ModRevision(kv.mod_revision))
                .await
            {
                Ok(_) => return Ok(meta),
                Err(e) if e.kind() == ErrorKind::Conflict => {
                    tracing::trace!(topic = name, "topic update raced another writer; retrying");
                    last_conflict = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last_conflict.unwrap_or_else(|| Error::internal("topic update made no attempt")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryStore;
    use crate::embedded::EmbeddedStore;

    fn topic(name: &str) -> TopicMeta {
        TopicMeta {
            name: name.into(),
            id: TopicId::new_v4(),
            partitions: 1,
            replication_factor: 1,
            configs: BTreeMap::new(),
            created_ms: 1_700_000_000_000,
        }
    }

    async fn registry_suite(store: Arc<dyn MetadataStore>) {
        let topics = TopicRegistry::new(Arc::clone(&store));
        assert!(topics.list().await.expect("list").is_empty());
        assert_eq!(topics.get("a").await.expect("get"), None);

        let b = topic("b");
        let a = topic("a");
        topics.create(&b).await.expect("create b");
        topics.create(&a).await.expect("create a");
        let err = topics.create(&topic("a")).await.expect_err("duplicate");
        assert_eq!(err.kind(), ErrorKind::AlreadyExists);
        assert_eq!(err.to_string(), "topic `a` already exists");
        // The original survives the failed duplicate.
        assert_eq!(topics.get("a").await.expect("get"), Some(a.clone()));
        assert_eq!(
            topics.list().await.expect("list"),
            vec![a.clone(), b.clone()]
        );

        // Invalid definitions are rejected before touching the store.
        let mut bad = topic("c");
        bad.partitions = 0;
        assert_eq!(
            topics.create(&bad).await.expect_err("p").kind(),
            ErrorKind::Invalid
        );
        let mut bad = topic("c");
        bad.replication_factor = 0;
        assert_eq!(
            topics.create(&bad).await.expect_err("rf").kind(),
            ErrorKind::Invalid
        );
        let bad = topic("c/d");
        assert_eq!(
            topics.create(&bad).await.expect_err("name").kind(),
            ErrorKind::Invalid
        );

        // Update: applied, persisted, returned.
        let updated = topics
            .update("a", |t| {
                t.partitions = 4;
                t.configs.insert("cleanup.policy".into(), "compact".into());
                Ok(())
            })
            .await
            .expect("update");
        assert_eq!(updated.partitions, 4);
        assert_eq!(topics.get("a").await.expect("get"), Some(updated.clone()));

        // Update: the closure's error aborts without writing.
        let rev = store.current_revision().await.expect("rev");
        let err = topics
            .update("a", |_| Err(Error::fenced("stale epoch")))
            .await
            .expect_err("abort");
        assert_eq!(err.kind(), ErrorKind::Fenced);
        assert_eq!(store.current_revision().await.expect("rev"), rev);

        // Update: name and id are immutable; invariants hold.
        let err = topics
            .update("a", |t| {
                t.name = "z".into();
                Ok(())
            })
            .await
            .expect_err("rename");
        assert_eq!(err.kind(), ErrorKind::Invalid);
        let err = topics
            .update("a", |t| {
                t.id = TopicId::new_v4();
                Ok(())
            })
            .await
            .expect_err("new id");
        assert_eq!(err.kind(), ErrorKind::Invalid);
        let err = topics
            .update("a", |t| {
                t.partitions = -1;
                Ok(())
            })
            .await
            .expect_err("partitions");
        assert_eq!(err.kind(), ErrorKind::Invalid);
        assert_eq!(topics.get("a").await.expect("get"), Some(updated.clone()));

        let err = topics
            .update("nope", |_| Ok(()))
            .await
            .expect_err("missing");
        assert_eq!(err.kind(), ErrorKind::NotFound);
        assert_eq!(err.to_string(), "topic `nope` not found");

        // Delete returns what was deleted, once.
        assert_eq!(topics.delete("a").await.expect("delete"), Some(updated));
        assert_eq!(topics.delete("a").await.expect("delete again"), None);
        assert_eq!(topics.list().await.expect("list"), vec![b]);

        // A name can be reused after deletion.
        let a2 = topic("a");
        topics.create(&a2).await.expect("re-create");
        assert_eq!(topics.get("a").await.expect("get"), Some(a2));

        // Concurrent updates all land: the CAS loop retries lost races.
        let tasks = 32;
        let mut set = tokio::task::JoinSet::new();
        for i in 0..tasks {
            let topics = topics.clone();
            set.spawn(async move {
                topics
                    .update("b", move |t| {
                        t.partitions += 1;
                        t.configs.insert(format!("k{i}"), i.to_string());
                        Ok(())
                    })
                    .await
            });
        }
        while let Some(joined) = set.join_next().await {
            joined.expect("join").expect("update");
        }
        let b = topics.get("b").await.expect("get").expect("present");
        assert_eq!(b.partitions, 1 + tasks);
        assert_eq!(b.configs.len(), usize::try_from(tasks).expect("small"));

        // Undecodable values are Data errors naming the key.
        store
            .put("/tierlog/topics/junk", Bytes::from("not json"))
            .await
            .expect("put");
        let err = topics.get("junk").await.expect_err("junk");
        assert_eq!(err.kind(), ErrorKind::Data);
        assert!(err.to_string().contains("/tierlog/topics/junk"), "{err}");
        assert_eq!(
            topics.list().await.expect_err("list").kind(),
            ErrorKind::Data
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn registry_memory() {
        registry_suite(Arc::new(MemoryStore::new())).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn registry_embedded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = EmbeddedStore::open(&dir.path().join("metadata.redb")).expect("open");
        registry_suite(Arc::new(store)).await;
    }

    #[test]
    fn topic_names() {
        let max = "a".repeat(MAX_TOPIC_NAME_LEN);
        for ok in [
            "a",
            "A-z_0.9",
            "...",
            ".a",
            "__consumer_offsets",
            max.as_str(),
        ] {
            validate_topic_name(ok).unwrap_or_else(|e| panic!("{ok:?}: {e}"));
        }
        let too_long = "a".repeat(MAX_TOPIC_NAME_LEN + 1);
        for bad in [
            "",
            ".",
            "..",
            too_long.as_str(),
            "a b",
            "a/b",
            "a:b",
            "tópico",
            "a\nb",
            "a*",
        ] {
            let err = validate_topic_name(bad).expect_err(bad);
            assert_eq!(err.kind(), ErrorKind::Invalid, "{bad:?}");
        }
    }

    #[test]
    fn topic_meta_json_is_stable() {
        let mut t = topic("t");
        t.id = TopicId::nil();
        t.configs.insert("retention.ms".into(), "1000".into());
        let json = serde_json::to_string(&t).expect("encode");
        assert_eq!(
            json,
            r#"{"name":"t","id":"00000000-0000-0000-0000-000000000000","partitions":1,"replication_factor":1,"configs":{"retention.ms":"1000"},"created_ms":1700000000000}"#
        );
    }

    /// Callers spawn registry calls on tokio; their futures and errors must be `Send`.
    #[allow(dead_code)]
    fn futures_are_send(registry: &TopicRegistry) {
        fn is_send<T: Send>(_: &T) {}
        fn is_error<T: std::error::Error + Send + Sync + 'static>() {}
        is_error::<Error>();
        is_send(&registry.update("t", |_| Ok(())));
        is_send(&registry.create(&TopicMeta {
            name: String::new(),
            id: TopicId::nil(),
            partitions: 1,
            replication_factor: 1,
            configs: BTreeMap::new(),
            created_ms: 0,
        }));
        is_send(&registry.delete("t"));
    }
}
