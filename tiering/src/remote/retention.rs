//! Retention on the remote tier: deleting whole tiered segments.
//!
//! [`enforce_remote_retention`] decides from a manifest listing which of a partition's oldest
//! tiered segments have to go — by `retention.ms`, by `retention.bytes` (counting the local
//! bytes not yet tiered as part of the log), or because DeleteRecords moved the log start past
//! them — and deletes each one **manifest entry first, objects after**. A reader that found the
//! entry a moment earlier may still fetch the objects; a reader can never find an entry whose
//! objects are gone. A crash between the two leaves unreferenced objects (garbage), never a
//! dangling entry.
//!
//! Only a prefix of the tiered range is ever deleted, so the log keeps no holes: the remote
//! range and the hot range still join without a gap.

use std::sync::Arc;
use std::time::Duration;

use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};
use tierlog_metadata::{ManifestRegistry, RemoteSegment};
use tracing::{info, warn};
use uuid::Uuid;

use super::layout::recorded_keys;
use super::partition::RemotePartition;
use crate::error::Result;

/// What remote retention keeps a partition within: the topic's limits and the state of the
/// rest of the log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionLimits {
    /// `retention.ms`: segments whose newest record is older go (`None`: forever).
    pub retention_ms: Option<Duration>,
    /// `retention.bytes`: the oldest segments go while the log without them is still at
    /// least this big (`None`: no limit).
    pub retention_bytes: Option<u64>,
    /// Bytes on the local tier not yet tiered; they count towards `retention_bytes`.
    pub local_untiered_bytes: u64,
    /// The log start DeleteRecords set: segments entirely below it go.
    pub log_start: Option<i64>,
}

/// Which of `segments` (sorted by base offset) retention deletes: the longest prefix that
/// any one rule lets go. See [`enforce_remote_retention`] for the rules.
pub fn expired_prefix(
    segments: &[RemoteSegment],
    retention_ms: Option<Duration>,
    retention_bytes: Option<u64>,
    local_untiered_bytes: u64,
    log_start: Option<i64>,
    now_ms: i64,
) -> usize {
    let by_log_start = log_start.map_or(0, |start| {
        segments
            .iter()
            .take_while(|s| s.end_offset <= start)
            .count()
    });
    let by_time = retention_ms.map_or(0, |ret| {
        let ret = i64::try_from(ret.as_millis()).unwrap_or(i64::MAX);
        segments
            .iter()
            .take_while(|s| {
                // A segment without timestamps (-1 from old producers) ages from its upload,
                // as a local one ages from its file's mtime.
                let newest = if s.max_timestamp < 0 {
                    s.uploaded_ms
                } else {
                    s.max_timestamp
                };
                now_ms.saturating_sub(newest) > ret
            })
            .count()
    });
    let by_size = retention_bytes.map_or(0, |limit| {
        let total = segments
            .iter()
            .map(|s| s.size_bytes)
            .sum::<u64>()
            .saturating_add(local_untiered_bytes);
        // Kafka's rule: delete a segment only if the log without it is still at least the limit.
        let mut excess = total.saturating_sub(limit);
        segments
            .iter()
            .take_while(|s| {
                if excess >= s.size_bytes {
                    excess -= s.size_bytes;
                    true
                } else {
                    false
                }
            })
            .count()
    });
    by_log_start.max(by_time).max(by_size)
}

/// Deletes tiered segments of one partition past retention: whole segments whose
/// `max_timestamp` is older than `now - retention_ms`, or the oldest ones while remote bytes +
/// `local_untiered_bytes` exceed `retention_bytes` (as long as the log stays at least that
/// big), or those entirely below `log_start` (DeleteRecords). Only a prefix (oldest first) is
/// deleted. Each goes manifest entry first, then its objects, the optional transaction index
/// and producer snapshot included (a missing object is fine; a failed delete is logged and
/// leaves garbage, since the entry is already gone). Returns the deleted entries, oldest
/// first.
///
/// `segments` is the partition's manifest listing (any order). An error from the manifest
/// stops the run; the entries removed until then are gone, and a rerun on a fresh listing
/// carries on.
pub async fn enforce_remote_retention(
    store: &Arc<dyn ObjectStore>,
    manifest: &ManifestRegistry,
    topic_id: Uuid,
    partition: i32,
    segments: &[RemoteSegment],
    limits: &RetentionLimits,
    now_ms: i64,
) -> Result<Vec<RemoteSegment>> {
    let mut sorted = segments.to_vec();
    sorted.sort_by_key(|s| s.base_offset);
    let n = expired_prefix(
        &sorted,
        limits.retention_ms,
        limits.retention_bytes,
        limits.local_untiered_bytes,
        limits.log_start,
        now_ms,
    );
    let mut deleted = Vec::with_capacity(n);
    for seg in sorted.into_iter().take(n) {
        // Entry first: from here on no reader can find the objects.
        if !manifest
            .remove(topic_id, partition, seg.base_offset)
            .await?
        {
            // Already removed by a concurrent run; its objects are that run's to delete.
            continue;
        }
        for key in recorded_keys(&seg) {
            match store.delete(&ObjectPath::from(key.as_str())).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => warn!(
                    key = %key, error = %e,
                    "deleting an expired tiered object failed; it is left as garbage"
                ),
            }
        }
        info!(
            topic_id = %topic_id, partition, base_offset = seg.base_offset,
            end_offset = seg.end_offset, bytes = seg.size_bytes, "remote retention deleted segment"
        );
        deleted.push(seg);
    }
    Ok(deleted)
}

impl RemotePartition {
    /// Remote retention for this partition: [`enforce_remote_retention`] over `segments` (its
    /// manifest listing, any order) within `limits`.
    pub async fn enforce_retention(
        &self,
        segments: &[RemoteSegment],
        limits: &RetentionLimits,
        now_ms: i64,
    ) -> Result<Vec<RemoteSegment>> {
        enforce_remote_retention(
            &self.store,
            &self.manifest,
            self.topic_id,
            self.partition,
            segments,
            limits,
            now_ms,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::sync::Mutex;

    use futures::TryStreamExt;
    use object_store::memory::InMemory;
    use tierlog_metadata::{Compare, KeyValue, MemoryStore, MetadataStore, Op, TxnResult};

    use super::*;
    use crate::remote::layout::segment_keys;

    /// A metadata store that, at every manifest change, notes how many objects the object
    /// store holds: proves the entry goes before its objects.
    #[derive(Debug)]
    struct Watching {
        inner: MemoryStore,
        objects: Arc<dyn ObjectStore>,
        seen: Mutex<Vec<usize>>,
    }

    #[async_trait::async_trait]
    impl MetadataStore for Watching {
        async fn get(&self, key: &str) -> tierlog_metadata::Result<Option<KeyValue>> {
            self.inner.get(key).await
        }
        async fn list(&self, prefix: &str) -> tierlog_metadata::Result<Vec<KeyValue>> {
            self.inner.list(prefix).await
        }
        async fn txn(
            &self,
            compares: Vec<Compare>,
            ops: Vec<Op>,
        ) -> tierlog_metadata::Result<TxnResult> {
            let n = self
                .objects
                .list(None)
                .try_collect::<Vec<_>>()
                .await
                .unwrap()
                .len();
            self.seen.lock().unwrap().push(n);
            self.inner.txn(compares, ops).await
        }
        async fn current_revision(&self) -> tierlog_metadata::Result<u64> {
            self.inner.current_revision().await
        }
    }

    const TOPIC: Uuid = Uuid::from_u128(42);

    /// Ten segments of 100 offsets and 1000 bytes, max timestamps 1000, 2000, ..., 10000, all
    /// recorded with their three objects.
    async fn setup() -> (
        Arc<dyn ObjectStore>,
        Arc<Watching>,
        ManifestRegistry,
        Vec<RemoteSegment>,
    ) {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let watching = Arc::new(Watching {
            inner: MemoryStore::new(),
            objects: store.clone(),
            seen: Mutex::new(Vec::new()),
        });
        let manifest = ManifestRegistry::new(watching.clone());
        let mut segs = Vec::new();
        for i in 0..10i64 {
            let keys = segment_keys("t", TOPIC, 0, i * 100, 1, Uuid::new_v4());
            for k in [&keys.data, &keys.index, &keys.time_index] {
                store
                    .put(&ObjectPath::from(k.as_str()), "x".into())
                    .await
                    .unwrap();
            }
            let s = RemoteSegment {
                base_offset: i * 100,
                end_offset: (i + 1) * 100,
                size_bytes: 1000,
                first_timestamp: i * 1000 + 1,
                max_timestamp: (i + 1) * 1000,
                leader_epoch: 1,
                data_key: keys.data,
                index_key: keys.index,
                time_index_key: keys.time_index,
                chunk_size: 1 << 20,
                chunk_crcs: vec![0],
                index_crc: 0,
                time_index_crc: 0,
                uploaded_ms: 0,
            };
            manifest.record(TOPIC, 0, &s).await.unwrap();
            segs.push(s);
        }
        watching.seen.lock().unwrap().clear();
        (store, watching, manifest, segs)
    }

    async fn objects(store: &Arc<dyn ObjectStore>) -> usize {
        store
            .list(None)
            .try_collect::<Vec<_>>()
            .await
            .unwrap()
            .len()
    }

    fn bases(segs: &[RemoteSegment]) -> Vec<i64> {
        segs.iter().map(|s| s.base_offset).collect()
    }

    #[tokio::test]
    async fn time_retention_deletes_the_expired_prefix_entry_first() {
        let (store, watching, manifest, segs) = setup().await;
        // now = 5500, retention 2s: max timestamps 1000..3000 are older than 3500
        let deleted = enforce_remote_retention(
            &store,
            &manifest,
            TOPIC,
            0,
            &segs,
            &RetentionLimits {
                retention_ms: Some(Duration::from_secs(2)),
                retention_bytes: None,
                local_untiered_bytes: 0,
                log_start: None,
            },
            5_500,
        )
        .await
        .unwrap();
        assert_eq!(bases(&deleted), vec![0, 100, 200]);
        assert_eq!(
            bases(&manifest.list(TOPIC, 0).await.unwrap()),
            (3..10).map(|i| i * 100).collect::<Vec<_>>()
        );
        assert_eq!(objects(&store).await, 21);
        for s in &deleted {
            assert!(
                store
                    .head(&ObjectPath::from(s.data_key.as_str()))
                    .await
                    .is_err()
            );
        }
        // each entry was removed while all objects of it (and of the later ones) still existed
        assert_eq!(*watching.seen.lock().unwrap(), vec![30, 27, 24]);
        // nothing more on a second run
        let left = manifest.list(TOPIC, 0).await.unwrap();
        let again = enforce_remote_retention(
            &store,
            &manifest,
            TOPIC,
            0,
            &left,
            &RetentionLimits {
                retention_ms: Some(Duration::from_secs(2)),
                retention_bytes: None,
                local_untiered_bytes: 0,
                log_start: None,
            },
            5_500,
        )
        .await
        .unwrap();
        assert!(again.is_empty());
    }

    #[tokio::test]
    async fn size_retention_counts_local_untiered_bytes() {
        let (store, _, manifest, segs) = setup().await;
        // 10_000 remote + 2_500 local, limit 8_000: 4_500 over → 4 whole segments
        let deleted = enforce_remote_retention(
            &store,
            &manifest,
            TOPIC,
            0,
            &segs,
            &RetentionLimits {
                retention_ms: None,
                retention_bytes: Some(8_000),
                local_untiered_bytes: 2_500,
                log_start: None,
            },
            0,
        )
        .await
        .unwrap();
        assert_eq!(bases(&deleted), vec![0, 100, 200, 300]);
        assert_eq!(objects(&store).await, 18);
        // exactly at the limit: nothing goes
        let left = manifest.list(TOPIC, 0).await.unwrap();
        assert_eq!(expired_prefix(&left, None, Some(6_000), 0, None, 0), 0);
    }

    #[tokio::test]
    async fn log_start_deletes_only_whole_segments_below_it() {
        let (store, _, manifest, segs) = setup().await;
        // 250 is inside segment [200, 300): it stays
        let deleted = enforce_remote_retention(
            &store,
            &manifest,
            TOPIC,
            0,
            &segs,
            &RetentionLimits {
                retention_ms: None,
                retention_bytes: None,
                local_untiered_bytes: 0,
                log_start: Some(250),
            },
            0,
        )
        .await
        .unwrap();
        assert_eq!(bases(&deleted), vec![0, 100]);
        assert_eq!(manifest.list(TOPIC, 0).await.unwrap()[0].base_offset, 200);
    }

    #[tokio::test]
    async fn nothing_is_deleted_without_a_reason_and_missing_objects_are_fine() {
        let (store, _, manifest, segs) = setup().await;
        let none = enforce_remote_retention(
            &store,
            &manifest,
            TOPIC,
            0,
            &segs,
            &RetentionLimits {
                retention_ms: None,
                retention_bytes: None,
                local_untiered_bytes: u64::MAX,
                log_start: None,
            },
            i64::MAX,
        )
        .await
        .unwrap();
        assert!(none.is_empty());
        // far-future retention keeps everything too
        let none = enforce_remote_retention(
            &store,
            &manifest,
            TOPIC,
            0,
            &segs,
            &RetentionLimits {
                retention_ms: Some(Duration::from_secs(1 << 40)),
                retention_bytes: Some(u64::MAX),
                local_untiered_bytes: u64::MAX,
                log_start: Some(0),
            },
            20_000,
        )
        .await
        .unwrap();
        assert!(none.is_empty());
        assert_eq!(objects(&store).await, 30);

        store
            .delete(&ObjectPath::from(segs[0].index_key.as_str()))
            .await
            .unwrap();
        let deleted = enforce_remote_retention(
            &store,
            &manifest,
            TOPIC,
            0,
            &segs,
            &RetentionLimits {
                retention_ms: None,
                retention_bytes: None,
                local_untiered_bytes: 0,
                log_start: Some(100),
            },
            0,
        )
        .await
        .unwrap();
        assert_eq!(bases(&deleted), vec![0]);
        assert_eq!(objects(&store).await, 27);
        // a stale listing naming an already removed entry is skipped, not an error
        let deleted = enforce_remote_retention(
            &store,
            &manifest,
            TOPIC,
            0,
            &segs,
            &RetentionLimits {
                retention_ms: None,
                retention_bytes: None,
                local_untiered_bytes: 0,
                log_start: Some(100),
            },
            0,
        )
        .await
        .unwrap();
        assert!(deleted.is_empty());
    }

    #[test]
    fn segments_without_timestamps_age_from_their_upload() {
        let s = RemoteSegment {
            base_offset: 0,
            end_offset: 1,
            size_bytes: 1,
            first_timestamp: -1,
            max_timestamp: -1,
            leader_epoch: 0,
            data_key: String::new(),
            index_key: String::new(),
            time_index_key: String::new(),
            chunk_size: 1,
            chunk_crcs: vec![],
            index_crc: 0,
            time_index_crc: 0,
            uploaded_ms: 10_000,
        };
        let ret = Some(Duration::from_secs(1));
        assert_eq!(
            expired_prefix(std::slice::from_ref(&s), ret, None, 0, None, 10_500),
            0
        );
        assert_eq!(expired_prefix(&[s], ret, None, 0, None, 11_001), 1);
    }
}
