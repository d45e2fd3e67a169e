//! Collecting orphaned segment objects: objects under a partition's prefix that no manifest
//! entry references.
//!
//! An upload puts its three objects first and records them in the manifest after
//! ([`super::upload`]); remote retention removes the entry first and deletes the objects
//! after ([`super::retention`]). A crash, a deposed leader, or an ambiguous manifest error
//! between the two steps leaves objects nothing references. They are harmless to readers
//! (nothing finds them) but cost money forever, so the partition leader sweeps them now and
//! then with [`sweep_orphans`].
//!
//! # Safety of a sweep
//!
//! An object is deleted only if all of these hold:
//!
//! 1. its key parses as a segment object of *this* partition
//!    ([`parse_segment_key`]): anything else under the prefix is someone else's and is left
//!    alone (and logged);
//! 2. it is older than `grace` by its `last_modified`: an upload in flight has written its
//!    objects but not yet its manifest entry, so the grace must comfortably exceed the longest
//!    upload (an hour by default in the node) plus any clock skew between the node and the
//!    object store;
//! 3. no manifest entry references it (data, index or time-index key, or the transaction
//!    index and producer snapshot keys derived from its data key), and no retired record of
//!    a compaction names it (those wait for the compaction reaper), in a listing taken
//!    *after* the object listing, and again in a listing taken right before each batch of
//!    deletes (an ambiguous record may land at any time; this narrows the window to one batch,
//!    and the grace closes it).
//!
//! The manifest is the only truth about what is referenced: if it cannot be read, nothing is
//! deleted. A sweep may run concurrently with uploads, retention and other sweeps: deleting a
//! missing object is fine, and a referenced object is never a candidate.
//!
//! Not cancel-sensitive: dropping the future midway only leaves some orphans for the next
//! sweep.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::TryStreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt};
use tierlog_metadata::ManifestRegistry;
use tracing::{debug, info, warn};
use uuid::Uuid;

use super::layout::{
    DATA_SUFFIX, INDEX_SUFFIX, PRODUCER_SNAPSHOT_SUFFIX, TIME_INDEX_SUFFIX, TXN_INDEX_SUFFIX,
    partition_prefix, recorded_keys,
};
use super::partition::RemotePartition;
use crate::error::{Error, Result};

/// Default minimum age of an unreferenced object before a sweep deletes it.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(60 * 60);
/// Default time between two sweeps of one partition.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10 * 60);

/// When a partition's leader sweeps its prefix for orphans (plain settings, no environment).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GcConfig {
    /// Time between two sweeps of one partition. Each sweep is a LIST of the partition's
    /// prefix and two manifest reads: shorter frees garbage sooner and costs more requests.
    /// Must be positive.
    pub interval: Duration,
    /// How old an unreferenced object must be before a sweep deletes it: far longer than any
    /// upload takes (its objects exist before its manifest record) plus clock skew between
    /// nodes and the object store. Shorter frees space sooner; too short deletes the objects of
    /// an upload still in flight on another node. Zero is allowed (tests).
    pub grace: Duration,
}

impl GcConfig {
    /// Checks the settings: the interval must be positive (a zero interval would sweep after
    /// every upload pass); any grace, zero included, is accepted.
    pub fn validate(&self) -> Result<()> {
        if self.interval.is_zero() {
            return Err(Error::InvalidConfig {
                reason: "orphan sweep interval must be greater than zero".into(),
            });
        }
        Ok(())
    }
}

impl Default for GcConfig {
    fn default() -> Self {
        GcConfig {
            interval: DEFAULT_INTERVAL,
            grace: DEFAULT_GRACE,
        }
    }
}

/// Deletes between two re-reads of the manifest.
const DELETE_BATCH: usize = 100;

/// What [`sweep_orphans`] found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Objects under the partition prefix.
    pub listed: usize,
    /// Objects a manifest entry references (kept).
    pub referenced: usize,
    /// Unreferenced objects younger than the grace (kept: maybe an upload in flight).
    pub young: usize,
    /// Objects whose key is not a segment object of this partition (kept, logged).
    pub foreign: usize,
    /// Unreferenced, old objects that the manifest referenced by the time of the delete (kept).
    pub recorded_meanwhile: usize,
    /// Objects deleted (or found already gone).
    pub deleted: usize,
    /// Bytes of the deleted objects, as listed.
    pub deleted_bytes: u64,
    /// Deletes that failed (logged; the next sweep retries).
    pub failed: usize,
}

/// Which of a segment's three objects a key names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegmentObjectKind {
    /// The `.log` data object.
    Data,
    /// The `.index` offset index object.
    Index,
    /// The `.timeindex` time index object.
    TimeIndex,
    /// The optional `.txnindex` transaction index object.
    TxnIndex,
    /// The optional `.snapshot` producer-state snapshot object.
    ProducerSnapshot,
}

/// A parsed segment object key (see [`super::layout`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentObjectName {
    /// Base offset of the uploaded segment.
    pub base_offset: i64,
    /// Leader epoch of the uploader.
    pub leader_epoch: i32,
    /// The upload attempt.
    pub upload_id: Uuid,
    /// Which of the three objects.
    pub kind: SegmentObjectKind,
}

/// Parses `key` as an object of the partition whose prefix is `prefix`
/// ([`partition_prefix`]): `<prefix><base, 20 digits>-e<epoch>-<upload id, 32 hex>.<ext>`.
/// `None` for anything else, including keys in sub-folders of the prefix.
pub fn parse_segment_key(prefix: &str, key: &str) -> Option<SegmentObjectName> {
    let file = key.strip_prefix(prefix)?;
    if file.contains('/') {
        return None;
    }
    let (stem, ext) = file.rsplit_once('.')?;
    let kind = match ext {
        DATA_SUFFIX => SegmentObjectKind::Data,
        INDEX_SUFFIX => SegmentObjectKind::Index,
        TIME_INDEX_SUFFIX => SegmentObjectKind::TimeIndex,
        TXN_INDEX_SUFFIX => SegmentObjectKind::TxnIndex,
        PRODUCER_SNAPSHOT_SUFFIX => SegmentObjectKind::ProducerSnapshot,
        _ => return None,
    };
    let (rest, upload) = stem.rsplit_once('-')?;
    if upload.len() != 32 || !upload.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let upload_id = Uuid::try_parse(upload).ok()?;
    let (base, epoch) = (rest.get(..20)?, rest.get(20..)?.strip_prefix("-e")?);
    if !base.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Reject `+7` and the like: only what `segment_keys` writes.
    if epoch.is_empty() || epoch.starts_with('+') {
        return None;
    }
    Some(SegmentObjectName {
        base_offset: base.parse().ok()?,
        leader_epoch: epoch.parse().ok()?,
        upload_id,
        kind,
    })
}

impl RemotePartition {
    /// Sweeps this partition's prefix: [`sweep_orphans`] with the grace of its
    /// [`GcConfig`](super::partition::RemoteOptions::gc), `now` being the current time.
    pub async fn sweep_orphans(&self, now: SystemTime) -> Result<GcReport> {
        sweep_orphans(
            &self.store,
            &self.manifest,
            &self.topic,
            self.topic_id,
            self.partition,
            self.options.gc.grace,
            now,
        )
        .await
    }
}

/// Deletes the objects of one partition that no manifest entry references and whose
/// `last_modified` is more than `grace` before `now`. See the module docs for why each
/// condition is needed. Returns what was kept and deleted.
///
/// Errors listing the objects or reading the manifest stop the sweep (what was deleted until
/// then stays deleted); a failed delete is logged, counted in [`GcReport::failed`] and
/// skipped.
pub async fn sweep_orphans(
    store: &Arc<dyn ObjectStore>,
    manifest: &ManifestRegistry,
    topic: &str,
    topic_id: Uuid,
    partition: i32,
    grace: Duration,
    now: SystemTime,
) -> Result<GcReport> {
    let prefix = partition_prefix(topic, topic_id, partition);
    let listed: Vec<ObjectMeta> = store
        .list(Some(&ObjectPath::from(prefix.as_str())))
        .try_collect()
        .await
        .map_err(|source| Error::ObjectStore {
            op: "list partition objects",
            key: prefix.clone(),
            source,
        })?;
    // Read after the listing: an entry recorded before an object was listed is seen here.
    let mut referenced = referenced_keys(manifest, topic_id, partition).await?;
    let mut report = GcReport {
        listed: listed.len(),
        ..GcReport::default()
    };
    let mut candidates = Vec::new();
    for meta in listed {
        let key = meta.location.as_ref();
        if referenced.contains(key) {
            report.referenced += 1;
            continue;
        }
        if parse_segment_key(&prefix, key).is_none() {
            report.foreign += 1;
            warn!(
                topic,
                partition,
                key,
                "object under a partition prefix is not a segment object; left alone"
            );
            continue;
        }
        let modified = SystemTime::from(meta.last_modified);
        // A last_modified in the future (clock skew) counts as young.
        if now.duration_since(modified).unwrap_or(Duration::ZERO) <= grace {
            report.young += 1;
            continue;
        }
        candidates.push(meta);
    }
    for batch in candidates.chunks(DELETE_BATCH) {
        // Right before deleting: a record may have landed since the listing above.
        referenced = referenced_keys(manifest, topic_id, partition).await?;
        for meta in batch {
            let key = meta.location.as_ref();
            if referenced.contains(key) {
                report.recorded_meanwhile += 1;
                info!(
                    topic,
                    partition, key, "orphan candidate was recorded meanwhile; kept"
                );
                continue;
            }
            match store.delete(&meta.location).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {
                    report.deleted += 1;
                    report.deleted_bytes += meta.size;
                    debug!(
                        topic,
                        partition,
                        key,
                        bytes = meta.size,
                        "orphan object deleted"
                    );
                }
                Err(e) => {
                    report.failed += 1;
                    warn!(topic, partition, key, error = %e, "deleting an orphan object failed");
                }
            }
        }
    }
    if report.deleted > 0 || report.failed > 0 {
        info!(
            topic,
            partition,
            deleted = report.deleted,
            bytes = report.deleted_bytes,
            failed = report.failed,
            young = report.young,
            foreign = report.foreign,
            "orphan sweep"
        );
    }
    Ok(report)
}

/// Every key the partition's manifest entries reference, and the retired keys of segments a
/// compaction replaced (the reaper deletes those once their grace has passed; see
/// [`super::compact`]). Retired records are read after the entries: a swap that lands in
/// between moved keys from the entries to a retired record, which this read sees.
async fn referenced_keys(
    manifest: &ManifestRegistry,
    topic_id: Uuid,
    partition: i32,
) -> Result<HashSet<String>> {
    let mut keys: HashSet<String> = manifest
        .list(topic_id, partition)
        .await?
        .into_iter()
        .flat_map(|s| recorded_keys(&s))
        .collect();
    for r in manifest.list_retired(topic_id, partition).await? {
        keys.extend(r.objects.keys);
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::sync::Mutex;

    use object_store::memory::InMemory;
    use tierlog_metadata::{
        Compare, KeyValue, MemoryStore, MetadataStore, Op, RemoteSegment, TxnResult,
    };

    use super::*;
    use crate::remote::layout::{SegmentKeys, segment_keys};

    const TOPIC: Uuid = Uuid::from_u128(0xabc);

    /// Far enough ahead that everything the in-memory store holds is older than the grace.
    fn later() -> SystemTime {
        SystemTime::now() + DEFAULT_GRACE * 2
    }

    fn entry(base: i64, keys: &SegmentKeys) -> RemoteSegment {
        RemoteSegment {
            base_offset: base,
            end_offset: base + 100,
            size_bytes: 3,
            first_timestamp: 0,
            max_timestamp: 0,
            leader_epoch: 1,
            data_key: keys.data.clone(),
            index_key: keys.index.clone(),
            time_index_key: keys.time_index.clone(),
            chunk_size: 1 << 20,
            chunk_crcs: vec![0],
            index_crc: 0,
            time_index_crc: 0,
            uploaded_ms: 0,
        }
    }

    /// Puts all five objects of an upload (the optional ones too).
    async fn put_all(store: &Arc<dyn ObjectStore>, keys: &SegmentKeys) {
        for k in keys.all() {
            store.put(&ObjectPath::from(k), "xyz".into()).await.unwrap();
        }
    }

    async fn exists(store: &Arc<dyn ObjectStore>, key: &str) -> bool {
        store.head(&ObjectPath::from(key)).await.is_ok()
    }

    async fn all_exist(store: &Arc<dyn ObjectStore>, keys: &SegmentKeys) -> [bool; 5] {
        let mut out = [false; 5];
        for (i, k) in keys.all().into_iter().enumerate() {
            out[i] = exists(store, k).await;
        }
        out
    }

    /// Partition 0 of `t`: two recorded segments and two orphaned uploads (one of a recorded
    /// base offset, one past the tiered end).
    async fn setup(
        meta: Arc<dyn MetadataStore>,
    ) -> (
        Arc<dyn ObjectStore>,
        ManifestRegistry,
        Vec<SegmentKeys>,
        Vec<SegmentKeys>,
    ) {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let manifest = ManifestRegistry::new(meta);
        let mut recorded = Vec::new();
        for base in [0, 100] {
            let keys = segment_keys("t", TOPIC, 0, base, 1, Uuid::new_v4());
            put_all(&store, &keys).await;
            manifest
                .record(TOPIC, 0, &entry(base, &keys))
                .await
                .unwrap();
            recorded.push(keys);
        }
        let orphans = vec![
            segment_keys("t", TOPIC, 0, 100, 2, Uuid::new_v4()),
            segment_keys("t", TOPIC, 0, 200, 1, Uuid::new_v4()),
        ];
        for keys in &orphans {
            put_all(&store, keys).await;
        }
        (store, manifest, recorded, orphans)
    }

    #[tokio::test]
    async fn old_orphans_go_and_referenced_objects_stay() {
        let (store, manifest, recorded, orphans) = setup(Arc::new(MemoryStore::new())).await;
        // another partition's orphan is outside this sweep
        let other = segment_keys("t", TOPIC, 1, 0, 1, Uuid::new_v4());
        put_all(&store, &other).await;
        let report = sweep_orphans(&store, &manifest, "t", TOPIC, 0, DEFAULT_GRACE, later())
            .await
            .unwrap();
        assert_eq!(
            report,
            GcReport {
                // five objects per upload: the three recorded ones, the transaction index
                // and the producer snapshot
                listed: 20,
                referenced: 10,
                deleted: 10,
                deleted_bytes: 30,
                ..GcReport::default()
            }
        );
        for keys in &recorded {
            assert_eq!(all_exist(&store, keys).await, [true; 5]);
        }
        for keys in &orphans {
            assert_eq!(all_exist(&store, keys).await, [false; 5]);
        }
        assert_eq!(all_exist(&store, &other).await, [true; 5]);
        // a second sweep finds nothing to do
        let again = sweep_orphans(&store, &manifest, "t", TOPIC, 0, DEFAULT_GRACE, later())
            .await
            .unwrap();
        assert_eq!((again.listed, again.deleted), (10, 0));
    }

    #[tokio::test]
    async fn young_orphans_stay_within_the_grace() {
        let (store, manifest, _, orphans) = setup(Arc::new(MemoryStore::new())).await;
        let now = SystemTime::now();
        let report = sweep_orphans(&store, &manifest, "t", TOPIC, 0, DEFAULT_GRACE, now)
            .await
            .unwrap();
        assert_eq!((report.young, report.deleted), (10, 0));
        // a `now` before the objects were written (clock skew) counts as young too
        let skewed = now - Duration::from_secs(600);
        let report = sweep_orphans(&store, &manifest, "t", TOPIC, 0, Duration::ZERO, skewed)
            .await
            .unwrap();
        assert_eq!((report.young, report.deleted), (10, 0));
        for keys in &orphans {
            assert_eq!(all_exist(&store, keys).await, [true; 5]);
        }
        // the grace is a parameter: a short one lets them go
        let report = sweep_orphans(
            &store,
            &manifest,
            "t",
            TOPIC,
            0,
            Duration::from_secs(1),
            now + Duration::from_secs(5),
        )
        .await
        .unwrap();
        assert_eq!(report.deleted, 10);
    }

    /// A metadata store that records `pending` in the manifest right after the first manifest
    /// listing was answered: an upload's record landing between the sweep's object listing
    /// (and first manifest read) and its deletes.
    #[derive(Debug)]
    struct LateRecord {
        inner: Arc<MemoryStore>,
        pending: Mutex<Option<RemoteSegment>>,
    }

    #[async_trait::async_trait]
    impl MetadataStore for LateRecord {
        async fn get(&self, key: &str) -> tierlog_metadata::Result<Option<KeyValue>> {
            self.inner.get(key).await
        }
        async fn list(&self, prefix: &str) -> tierlog_metadata::Result<Vec<KeyValue>> {
            let listed = self.inner.list(prefix).await;
            let pending = self.pending.lock().unwrap().take();
            if let Some(seg) = pending {
                ManifestRegistry::new(self.inner.clone())
                    .record(TOPIC, 0, &seg)
                    .await
                    .unwrap();
            }
            listed
        }
        async fn txn(
            &self,
            compares: Vec<Compare>,
            ops: Vec<Op>,
        ) -> tierlog_metadata::Result<TxnResult> {
            self.inner.txn(compares, ops).await
        }
        async fn current_revision(&self) -> tierlog_metadata::Result<u64> {
            self.inner.current_revision().await
        }
    }

    #[tokio::test]
    async fn a_record_landing_before_the_delete_keeps_its_objects() {
        let late = Arc::new(LateRecord {
            inner: Arc::new(MemoryStore::new()),
            pending: Mutex::new(None),
        });
        let (store, manifest, recorded, orphans) = setup(late.clone()).await;
        // the upload of base 200 is recorded only after the sweep read the manifest once
        *late.pending.lock().unwrap() = Some(entry(200, &orphans[1]));
        let report = sweep_orphans(&store, &manifest, "t", TOPIC, 0, DEFAULT_GRACE, later())
            .await
            .unwrap();
        assert_eq!(
            (report.referenced, report.recorded_meanwhile, report.deleted),
            (10, 5, 5)
        );
        assert_eq!(all_exist(&store, &orphans[0]).await, [false; 5]);
        assert_eq!(all_exist(&store, &orphans[1]).await, [true; 5]);
        for keys in &recorded {
            assert_eq!(all_exist(&store, keys).await, [true; 5]);
        }
        assert_eq!(manifest.list(TOPIC, 0).await.unwrap().len(), 3);
    }

    #[tokio::test]
    async fn foreign_keys_under_the_prefix_are_left_alone() {
        let (store, manifest, _, _) = setup(Arc::new(MemoryStore::new())).await;
        let prefix = partition_prefix("t", TOPIC, 0);
        let foreign = [
            format!("{prefix}notes.txt"),
            format!("{prefix}00000000000000000000-e1-zz.log"),
            format!(
                "{prefix}00000000000000000000-e1-{}.bak",
                Uuid::new_v4().simple()
            ),
            format!(
                "{prefix}sub/00000000000000000000-e1-{}.log",
                Uuid::new_v4().simple()
            ),
            format!(
                "{prefix}0000000000000000000x-e1-{}.log",
                Uuid::new_v4().simple()
            ),
        ];
        for k in &foreign {
            store
                .put(&ObjectPath::from(k.as_str()), "?".into())
                .await
                .unwrap();
        }
        let report = sweep_orphans(&store, &manifest, "t", TOPIC, 0, DEFAULT_GRACE, later())
            .await
            .unwrap();
        assert_eq!((report.foreign, report.deleted), (5, 10));
        for k in &foreign {
            assert!(exists(&store, k).await, "{k}");
        }
    }

    #[test]
    fn gc_config_defaults_and_validation() {
        let c = GcConfig::default();
        assert_eq!((c.interval, c.grace), (DEFAULT_INTERVAL, DEFAULT_GRACE));
        c.validate().unwrap();
        GcConfig {
            grace: Duration::ZERO,
            ..c
        }
        .validate()
        .unwrap();
        let e = GcConfig {
            interval: Duration::ZERO,
            ..c
        }
        .validate()
        .unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Invalid, "{e}");
    }

    #[test]
    fn parses_exactly_what_layout_writes() {
        let upload = Uuid::new_v4();
        let prefix = partition_prefix("a.b", TOPIC, 7);
        for (epoch, kind, key) in [
            (
                3,
                SegmentObjectKind::Data,
                segment_keys("a.b", TOPIC, 7, 4096, 3, upload).data,
            ),
            (
                -1,
                SegmentObjectKind::Index,
                segment_keys("a.b", TOPIC, 7, 4096, -1, upload).index,
            ),
            (
                0,
                SegmentObjectKind::TimeIndex,
                segment_keys("a.b", TOPIC, 7, 4096, 0, upload).time_index,
            ),
            (
                0,
                SegmentObjectKind::TxnIndex,
                segment_keys("a.b", TOPIC, 7, 4096, 0, upload).txn_index,
            ),
            (
                0,
                SegmentObjectKind::ProducerSnapshot,
                segment_keys("a.b", TOPIC, 7, 4096, 0, upload).producer_snapshot,
            ),
        ] {
            assert_eq!(
                parse_segment_key(&prefix, &key),
                Some(SegmentObjectName {
                    base_offset: 4096,
                    leader_epoch: epoch,
                    upload_id: upload,
                    kind,
                }),
                "{key}"
            );
        }
        // another partition's prefix, or a mangled key
        let key = segment_keys("a.b", TOPIC, 70, 0, 1, upload).data;
        assert_eq!(parse_segment_key(&prefix, &key), None);
        let u = upload.simple();
        for bad in [
            format!("{prefix}0000000000000000000-e1-{u}.log"),
            format!("{prefix}00000000000000000000-e+1-{u}.log"),
            format!("{prefix}00000000000000000000-e-{u}.log"),
            format!("{prefix}00000000000000000000-x1-{u}.log"),
            format!(
                "{prefix}00000000000000000000-e1-{}.log",
                upload.hyphenated()
            ),
        ] {
            assert_eq!(parse_segment_key(&prefix, &bad), None, "{bad}");
        }
    }
}
