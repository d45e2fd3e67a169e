//! Transactions and idempotent producers on the remote tier.
//!
//! The uploader ships two optional objects with each segment ([`super::layout`]): its
//! transaction index (the aborted transactions whose markers it holds, Kafka's `.txnindex`
//! format) and the producer-state snapshot as of its end offset. A `read_committed` Fetch
//! below the hot tier needs the first ([`RemotePartition::aborted_transactions`]); a node
//! taking over a partition with an empty disk needs the second
//! ([`RemotePartition::latest_producer_snapshot`], passed to
//! [`crate::PartitionLog::open_at_with_producers`]) so that it deduplicates retries like the
//! previous leader without replaying the tiered history.
//!
//! Neither object is in the manifest entry: both are found by key, and a missing one (a
//! segment uploaded before they existed, or one without aborts) means "none". Reads go through
//! the handle's chunk cache when it has one ([`RemotePartition::with_cache`]), absence
//! included.

use bytes::Bytes;
use object_store::ObjectStoreExt;
use tierlog_metadata::RemoteSegment;

use super::cache::object_path;
use super::layout::{producer_snapshot_key, txn_index_key};
use super::partition::RemotePartition;
use crate::error::{Error, Result};
use crate::producer::AbortedTxn;

impl RemotePartition {
    /// The aborted transactions overlapping `[from, upper)` (`last_offset >= from`,
    /// `first_offset < upper`) recorded in the transaction indexes of the tiered segments, from
    /// the one holding `from` on (Kafka's `collectAbortedTransactions` over remote segments),
    /// stopping once an entry's last stable offset reaches `upper`. The caller adds the hot
    /// log's ([`crate::PartitionLog::aborted_transactions`]) for the range past the tiered
    /// end.
    pub async fn aborted_transactions(&self, from: i64, upper: i64) -> Result<Vec<AbortedTxn>> {
        let mut segments = self.manifest.list(self.topic_id, self.partition).await?;
        segments.sort_unstable_by_key(|s| s.base_offset);
        let first = segments.partition_point(|s| s.end_offset <= from);
        let mut out = Vec::new();
        for seg in &segments[first..] {
            let key = txn_index_key(&seg.data_key);
            let Some(bytes) = self.optional_object(&key).await? else {
                continue;
            };
            if !bytes.len().is_multiple_of(AbortedTxn::SIZE) {
                return Err(Error::CorruptObject {
                    key,
                    reason: format!(
                        "transaction index of {} bytes is not made of {}-byte entries",
                        bytes.len(),
                        AbortedTxn::SIZE
                    ),
                });
            }
            for chunk in bytes.chunks_exact(AbortedTxn::SIZE) {
                let t = AbortedTxn::decode(chunk).ok_or_else(|| Error::CorruptObject {
                    key: key.clone(),
                    reason: "transaction index entry of an unknown version".into(),
                })?;
                if t.last_offset >= from && t.first_offset < upper {
                    out.push(t);
                }
                if t.last_stable_offset >= upper {
                    return Ok(out);
                }
            }
        }
        Ok(out)
    }

    /// The producer snapshot uploaded with the newest tiered segment (the state as of the
    /// tiered end), or `None` when nothing is tiered or that segment has none. Only the newest
    /// segment's: an older snapshot would miss the producers' later batches and make their
    /// next sequences look like gaps, which is worse than not knowing them.
    pub async fn latest_producer_snapshot(&self) -> Result<Option<Bytes>> {
        let segments = self.manifest.list(self.topic_id, self.partition).await?;
        let Some(newest) = segments.iter().max_by_key(|s| s.base_offset) else {
            return Ok(None);
        };
        self.producer_snapshot_of(newest).await
    }

    /// The producer snapshot uploaded with `seg` (as of its end offset), if any.
    pub async fn producer_snapshot_of(&self, seg: &RemoteSegment) -> Result<Option<Bytes>> {
        self.optional_object(&producer_snapshot_key(&seg.data_key))
            .await
    }

    /// An optional object, through the cache when there is one.
    async fn optional_object(&self, key: &str) -> Result<Option<Bytes>> {
        if let Some(cache) = &self.cache {
            return cache.optional_whole(&self.store, key).await;
        }
        match self.store.get(&object_path(key)).await {
            Ok(g) => g.bytes().await.map(Some),
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => Err(e),
        }
        .map_err(|source| Error::ObjectStore {
            op: "get optional object",
            key: key.to_string(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::path::Path;
    use std::sync::Arc;

    use futures::TryStreamExt;
    use object_store::ObjectStore;
    use object_store::memory::InMemory;
    use tierlog_metadata::{ManifestRegistry, MemoryStore};
    use uuid::Uuid;

    use super::*;
    use crate::remote::cache::{CacheConfig, ChunkCache};
    use crate::remote::layout::segment_keys;
    use crate::remote::retention::RetentionLimits;
    use crate::remote::upload::tests::small_log;
    use crate::testutil::producer_batch;
    use crate::{ControlType, PartitionLog};

    /// Three sealed segments: an aborted transaction of producer 2 in the first, producer 3's
    /// transaction spanning the second and third (aborted in the third), and idempotent
    /// producer 1 throughout.
    fn txn_log(dir: &Path) -> PartitionLog {
        let log = small_log(dir);
        let append = |b| log.append(b, 0, 0).unwrap();
        append(producer_batch(2, 0, 0, 2, true));
        append(producer_batch(1, 0, 0, 1, false));
        log.append_control(2, 0, ControlType::Abort, 1, 0, 0)
            .unwrap();
        log.roll_now().unwrap();
        append(producer_batch(3, 0, 0, 1, true));
        append(producer_batch(1, 0, 1, 1, false));
        log.roll_now().unwrap();
        append(producer_batch(1, 0, 2, 1, false));
        log.append_control(3, 0, ControlType::Abort, 1, 0, 0)
            .unwrap();
        log.roll_now().unwrap();
        log
    }

    async fn all_aborted(remote: &RemotePartition) -> Vec<AbortedTxn> {
        remote.aborted_transactions(0, i64::MAX).await.unwrap()
    }

    async fn objects(store: &Arc<dyn ObjectStore>) -> Vec<String> {
        let listed: Vec<_> = store.list(None).try_collect().await.unwrap();
        listed.into_iter().map(|m| m.location.to_string()).collect()
    }

    #[tokio::test]
    async fn transaction_indexes_and_snapshots_are_tiered_read_back_and_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let log = txn_log(dir.path());
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let manifest = ManifestRegistry::new(Arc::new(MemoryStore::new()));
        let remote = RemotePartition::new(store.clone(), manifest, "t", Uuid::new_v4(), 0);
        assert_eq!(all_aborted(&remote).await, vec![]);
        assert_eq!(remote.latest_producer_snapshot().await.unwrap(), None);

        let sealed = log.sealed_segments().unwrap();
        assert_eq!(sealed.len(), 3);
        assert!(
            sealed[1].txn_index_path.is_none(),
            "no marker in the middle one"
        );
        let mut recorded = Vec::new();
        for seg in &sealed {
            assert!(seg.producer_snapshot_path.is_some());
            recorded.push(remote.upload(seg, 0, 0).await.unwrap());
        }
        // 3 × (data, index, time index, snapshot) + 2 transaction indexes
        let keys = objects(&store).await;
        assert_eq!(keys.len(), 14);
        assert_eq!(keys.iter().filter(|k| k.ends_with(".txnindex")).count(), 2);

        let cached = remote
            .clone()
            .with_cache(ChunkCache::new(&CacheConfig::default()).await.unwrap());
        for (from, upper) in [
            (0, 100),
            (0, 3),
            (3, 100),
            (4, 5),
            (5, 100),
            (9, 100),
            (0, 1),
        ] {
            let local = log.aborted_transactions(from, upper).unwrap();
            assert_eq!(
                remote.aborted_transactions(from, upper).await.unwrap(),
                local
            );
            assert_eq!(
                cached.aborted_transactions(from, upper).await.unwrap(),
                local
            );
        }
        assert_eq!(all_aborted(&remote).await.len(), 2);

        // a node taking over with an empty disk starts from the newest segment's snapshot
        let snapshot = cached.latest_producer_snapshot().await.unwrap().unwrap();
        let end = recorded[2].end_offset;
        assert_eq!(
            snapshot,
            std::fs::read(sealed[2].producer_snapshot_path.clone().unwrap()).unwrap()
        );
        let empty = tempfile::tempdir().unwrap();
        let taker =
            PartitionLog::open_at_with_producers(empty.path(), log.config(), end, Some(&snapshot))
                .unwrap();
        assert_eq!(taker.producers(), log.producers());
        assert!(
            taker
                .append(producer_batch(1, 0, 2, 1, false), 1, 0)
                .unwrap()
                .duplicate
        );

        // remote retention takes the optional objects with the segment
        let limits = RetentionLimits {
            log_start: Some(end),
            ..RetentionLimits::default()
        };
        assert_eq!(
            remote
                .enforce_retention(&recorded, &limits, 0)
                .await
                .unwrap()
                .len(),
            3
        );
        assert!(objects(&store).await.is_empty());
    }

    #[tokio::test]
    async fn segments_without_the_optional_objects_read_as_none() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let manifest = ManifestRegistry::new(Arc::new(MemoryStore::new()));
        let topic_id = Uuid::new_v4();
        let dir = tempfile::tempdir().unwrap();
        let log = txn_log(dir.path());
        let mut seg = log.sealed_segments().unwrap().remove(0);
        // as uploaded before this change
        seg.txn_index_path = None;
        seg.producer_snapshot_path = None;
        let remote = RemotePartition::new(store.clone(), manifest, "t", topic_id, 0)
            .with_cache(ChunkCache::new(&CacheConfig::default()).await.unwrap());
        let recorded = remote.upload(&seg, 0, 0).await.unwrap();
        assert_eq!(objects(&store).await.len(), 3);
        for _ in 0..2 {
            assert_eq!(all_aborted(&remote).await, vec![]);
            assert_eq!(remote.producer_snapshot_of(&recorded).await.unwrap(), None);
        }
        // a damaged transaction index is an error, not silently empty
        let key = txn_index_key(&recorded.data_key);
        store
            .put(
                &object_path(&key),
                bytes::Bytes::from_static(&[0u8; 7]).into(),
            )
            .await
            .unwrap();
        let fresh =
            RemotePartition::new(store.clone(), remote.manifest().clone(), "t", topic_id, 0);
        let e = fresh.aborted_transactions(0, 100).await.unwrap_err();
        assert!(matches!(e, Error::CorruptObject { .. }), "{e}");
        // keys of an upload carry the optional objects' names
        let keys = segment_keys("t", topic_id, 0, 0, 0, Uuid::new_v4());
        assert_eq!(txn_index_key(&keys.data), keys.txn_index);
    }
}
