//! The segment manifest: which sealed segments of a partition live in object storage.
//!
//! A segment counts as tiered only once its entry is here; the uploader writes the entry after
//! every object of the segment is durable, with a create-only put, so one base offset is
//! recorded once however many uploads race (a deposed leader's upload is never recorded).
//! Remote retention deletes the entry first and the objects after, so a reader never finds an
//! entry without its objects.
//!
//! Keys: `/tierlog/manifest/<topic id>/<partition>/<base offset, 20 digits>` → JSON
//! [`RemoteSegment`], so a prefix list returns a partition's segments in offset order; and
//! `/tierlog/log-start/<topic id>/<partition>` → the partition's log start offset as moved by
//! DeleteRecords (absent = not moved).

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Result};
use crate::registry::{decode_json, encode_json};
use crate::store::{Compare, MetadataStore, MetadataStoreExt, Op, Precondition};
use crate::types::TopicId;

const MANIFEST_PREFIX: &str = "/tierlog/manifest/";
const LOG_START_PREFIX: &str = "/tierlog/log-start/";

/// One tiered segment: where its objects are and what they hold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RemoteSegment {
    /// First offset in the segment.
    pub base_offset: i64,
    /// One past the last offset in the segment.
    pub end_offset: i64,
    /// Bytes of record batches (the size of the data object).
    pub size_bytes: u64,
    /// Timestamp of the first batch (its first timestamp), for time-based lookups.
    pub first_timestamp: i64,
    /// Largest record timestamp in the segment; time retention compares against it.
    pub max_timestamp: i64,
    /// Leader epoch of the node that uploaded it (also part of the object keys).
    pub leader_epoch: i32,
    /// Object key of the batches, exactly the local segment file's bytes.
    pub data_key: String,
    /// Object key of the sparse offset index (the local `.index` file's bytes).
    pub index_key: String,
    /// Object key of the time index (the local `.timeindex` file's bytes).
    pub time_index_key: String,
    /// Size of the chunks `chunk_crcs` covers; the last chunk may be shorter.
    pub chunk_size: u32,
    /// CRC-32 (`crc32fast`) of each `chunk_size` chunk of the data object, so every ranged
    /// read can be verified.
    pub chunk_crcs: Vec<u32>,
    /// CRC-32 of the whole offset index object.
    pub index_crc: u32,
    /// CRC-32 of the whole time index object.
    pub time_index_crc: u32,
    /// When the upload was recorded (ms since the epoch).
    pub uploaded_ms: i64,
}

impl RemoteSegment {
    /// Whether `offset` falls inside this segment.
    pub fn contains(&self, offset: i64) -> bool {
        self.base_offset <= offset && offset < self.end_offset
    }
}

/// The manifest of every partition, over a [`MetadataStore`].
#[derive(Debug, Clone)]
pub struct ManifestRegistry {
    store: Arc<dyn MetadataStore>,
    /// Compares every [`record`](Self::record) also requires (see [`guarded`](Self::guarded)).
    guard: Arc<[Compare]>,
}

impl ManifestRegistry {
    /// A registry over `store`.
    pub fn new(store: Arc<dyn MetadataStore>) -> Self {
        ManifestRegistry {
            store,
            guard: Arc::from(Vec::new()),
        }
    }

    /// This registry, with [`record`](Self::record) writing only while every compare in
    /// `guard` holds, in the same transaction: a leader passes "the partition state is still
    /// the revision I lead at", so an upload by a deposed leader is never recorded.
    pub fn guarded(&self, guard: Vec<Compare>) -> ManifestRegistry {
        ManifestRegistry {
            store: self.store.clone(),
            guard: Arc::from(guard),
        }
    }

    fn prefix(topic: TopicId, partition: i32) -> String {
        format!("{MANIFEST_PREFIX}{}/{partition}/", topic.simple())
    }

    fn key(topic: TopicId, partition: i32, base_offset: i64) -> String {
        format!("{}{base_offset:020}", Self::prefix(topic, partition))
    }

    fn log_start_key(topic: TopicId, partition: i32) -> String {
        format!("{LOG_START_PREFIX}{}/{partition}", topic.simple())
    }

    /// Records a tiered segment. [`ErrorKind::AlreadyExists`] if a segment with this base
    /// offset is recorded already (another upload won; the caller's objects are garbage);
    /// [`ErrorKind::Conflict`] if a [guard](Self::guarded) failed (nothing was recorded).
    pub async fn record(
        &self,
        topic: TopicId,
        partition: i32,
        segment: &RemoteSegment,
    ) -> Result<()> {
        let key = Self::key(topic, partition, segment.base_offset);
        let value = encode_json(&key, segment)?;
        let mut compares = vec![Compare::absent(&key)];
        compares.extend(self.guard.iter().cloned());
        let result = self.store.txn(compares, vec![Op::put(&key, value)]).await?;
        if result.succeeded {
            return Ok(());
        }
        if self.store.get(&key).await?.is_some() {
            return Err(Error::already_exists(format!("tiered segment `{key}`")));
        }
        Err(Error::Conflict {
            key,
            expected: Precondition::Absent,
        })
    }

    /// The partition's tiered segments in offset order.
    pub async fn list(&self, topic: TopicId, partition: i32) -> Result<Vec<RemoteSegment>> {
        self.store
            .list(&Self::prefix(topic, partition))
            .await?
            .iter()
            .map(decode_json)
            .collect()
    }

    /// Removes one segment's entry (before its objects are deleted). Returns whether it existed.
    pub async fn remove(&self, topic: TopicId, partition: i32, base_offset: i64) -> Result<bool> {
        self.store
            .delete(&Self::key(topic, partition, base_offset))
            .await
    }

    /// Removes every entry and the log start of a partition (topic deletion).
    pub async fn remove_partition(&self, topic: TopicId, partition: i32) -> Result<()> {
        self.store
            .txn(
                vec![],
                vec![
                    Op::delete_prefix(Self::prefix(topic, partition)),
                    Op::delete(Self::log_start_key(topic, partition)),
                ],
            )
            .await
            .map(|_| ())
    }

    /// The log start offset DeleteRecords set, if any.
    pub async fn log_start(&self, topic: TopicId, partition: i32) -> Result<Option<i64>> {
        match self
            .store
            .get(&Self::log_start_key(topic, partition))
            .await?
        {
            Some(kv) => decode_json(&kv).map(Some),
            None => Ok(None),
        }
    }

    /// Moves the log start forward to `offset` (never back). Returns the log start now stored.
    pub async fn advance_log_start(
        &self,
        topic: TopicId,
        partition: i32,
        offset: i64,
    ) -> Result<i64> {
        let key = Self::log_start_key(topic, partition);
        loop {
            let current = self.store.get(&key).await?;
            let (stored, expect) = match &current {
                Some(kv) => (
                    decode_json::<i64>(kv)?,
                    Precondition::ModRevision(kv.mod_revision),
                ),
                None => (i64::MIN, Precondition::Absent),
            };
            if stored >= offset {
                return Ok(stored);
            }
            match self
                .store
                .put_if(&key, encode_json(&key, &offset)?, expect)
                .await
            {
                Ok(_) => return Ok(offset),
                Err(e) if e.kind() == ErrorKind::Conflict => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::memory::MemoryStore;

    fn seg(base: i64, end: i64) -> RemoteSegment {
        RemoteSegment {
            base_offset: base,
            end_offset: end,
            size_bytes: 100,
            first_timestamp: 1,
            max_timestamp: 2,
            leader_epoch: 0,
            data_key: format!("d/{base}"),
            index_key: format!("i/{base}"),
            time_index_key: format!("t/{base}"),
            chunk_size: 1 << 20,
            chunk_crcs: vec![7],
            index_crc: 1,
            time_index_crc: 2,
            uploaded_ms: 3,
        }
    }

    #[tokio::test]
    async fn a_guarded_record_needs_its_guard_to_hold() {
        let store: Arc<dyn MetadataStore> = Arc::new(MemoryStore::new());
        let rev = store.put("/lead", "epoch-1".into()).await.unwrap();
        let m = ManifestRegistry::new(store.clone());
        let t = TopicId::new_v4();
        let leader = m.guarded(vec![Compare::mod_revision("/lead", rev)]);
        leader.record(t, 0, &seg(0, 100)).await.unwrap();
        // Leadership moves on: the deposed leader's next upload is not recorded.
        store.put("/lead", "epoch-2".into()).await.unwrap();
        let err = leader.record(t, 0, &seg(100, 200)).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Conflict);
        assert_eq!(m.list(t, 0).await.unwrap(), vec![seg(0, 100)]);
        // A taken base offset is still AlreadyExists, guard or not.
        let err = leader.record(t, 0, &seg(0, 100)).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AlreadyExists);
    }

    #[tokio::test]
    async fn record_list_remove_in_offset_order() {
        let m = ManifestRegistry::new(Arc::new(MemoryStore::new()));
        let t = TopicId::new_v4();
        for (b, e) in [(200, 300), (0, 100), (100, 200)] {
            m.record(t, 0, &seg(b, e)).await.unwrap();
        }
        m.record(t, 1, &seg(0, 5)).await.unwrap();
        let bases: Vec<i64> = m
            .list(t, 0)
            .await
            .unwrap()
            .iter()
            .map(|s| s.base_offset)
            .collect();
        assert_eq!(bases, vec![0, 100, 200]);
        assert_eq!(
            m.record(t, 0, &seg(100, 150)).await.unwrap_err().kind(),
            ErrorKind::AlreadyExists
        );
        assert!(m.remove(t, 0, 0).await.unwrap());
        assert!(!m.remove(t, 0, 0).await.unwrap());
        assert_eq!(m.list(t, 0).await.unwrap().len(), 2);
        m.remove_partition(t, 0).await.unwrap();
        assert!(m.list(t, 0).await.unwrap().is_empty());
        assert_eq!(m.list(t, 1).await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn log_start_only_moves_forward() {
        let m = ManifestRegistry::new(Arc::new(MemoryStore::new()));
        let t = TopicId::new_v4();
        assert_eq!(m.log_start(t, 0).await.unwrap(), None);
        assert_eq!(m.advance_log_start(t, 0, 50).await.unwrap(), 50);
        assert_eq!(m.advance_log_start(t, 0, 10).await.unwrap(), 50);
        assert_eq!(m.advance_log_start(t, 0, 70).await.unwrap(), 70);
        assert_eq!(m.log_start(t, 0).await.unwrap(), Some(70));
        assert!(seg(0, 10).contains(9) && !seg(0, 10).contains(10));
    }
}
