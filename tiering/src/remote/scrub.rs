//! Scrubbing the tiered copy: re-reading a tiered segment's objects straight from the object
//! store (never through the chunk cache: the point is to check what the bucket holds), and
//! replacing a damaged one.
//!
//! # One segment ([`RemotePartition::scrub_segment`])
//!
//! 1. The check ([`RemotePartition::check_segment`]): the data object is streamed with one
//!    GET, every `chunk_size` chunk compared with the manifest's CRC-32 and every batch with
//!    its CRC-32C (compaction's reader, `compact::BatchStream`); the offset and time index
//!    objects are read whole and compared with theirs. A missing object is damage too.
//!    Object-store errors are not damage: they are returned, and the next pass tries again.
//! 2. A damaged segment is rebuilt from an intact copy of its batches: the data object itself
//!    when only an index is bad; else the hot tier of this node, when it still holds every
//!    batch of the segment's offset range, none damaged (every read checks CRC-32C), and none
//!    straddling its bounds. Otherwise it is [`TieredScrub::Unrecoverable`] from this node.
//! 3. The repair is a new upload under **new** keys (a fresh upload id, the caller's leader
//!    epoch; the indexes built from the batches, the transaction index and producer snapshot
//!    copied over) swapped into the manifest for the damaged entry the way a tiered
//!    compaction swaps a group ([`tierlog_metadata::ManifestRegistry::replace`]): only if the
//!    entry is still at the revision it was listed at and the leader guard holds. The damaged
//!    objects are *retired*, not deleted: readers that still hold the old entry fail on its
//!    checksums (they never serve its bytes) until they see the new one, and the reap after
//!    the orphan grace deletes them ([`RemotePartition::reap_retired`]). Their cached pieces
//!    are evicted at once. A lost compare (retention or a compaction changed the entry
//!    meanwhile) deletes the new objects and reports [`TieredScrub::Changed`].
//!
//! Readers never serve a bad chunk meanwhile: the chunk cache checks every chunk against the
//! manifest's CRC-32 before caching it and again on every hit.
//!
//! Not cancel-safe in the sense of upload: dropping the future midway may leave orphan
//! objects (never a manifest entry without its objects); run it in its own task.

use std::sync::Arc;

use object_store::ObjectStoreExt;
use tierlog_metadata::{RemoteSegment, RetiredObjects, RevisionedSegment, SegmentSwap};
use tracing::{info, warn};

use super::cache::object_path;
use super::compact::{RemoteCleanStats, SegmentParts, Sidecar};
use super::layout::{producer_snapshot_key, recorded_keys, txn_index_key};
use super::partition::RemotePartition;
use super::upload::store_err;
use crate::batch::{self, BatchHeader};
use crate::error::{Error, Result};
use crate::index::SegmentIndex;
use crate::{ErrorKind, PartitionLog};

/// Bytes asked of the hot tier per read when gathering a local copy.
const LOCAL_READ_BYTES: usize = 1 << 20;

/// What a repair needs beyond the segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TieredScrubOptions {
    /// The leader epoch the replacement's keys carry.
    pub leader_epoch: i32,
    /// The current time (ms): the retired record's stamp.
    pub now_ms: i64,
    /// Bytes between offset index entries of a rebuilt index (`index.interval.bytes`).
    pub index_interval_bytes: u32,
}

/// Where a repaired segment's batches came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RepairSource {
    /// The data object was intact (an index object was not): the batches were its own.
    TieredData,
    /// The hot tier of this node.
    Local,
}

/// What [`RemotePartition::scrub_segment`] found and did.
#[derive(Debug, Clone, PartialEq)]
pub enum TieredScrub {
    /// Every object matched its checksums.
    Intact,
    /// An object was damaged (`damage` says how) and the segment was uploaded again from
    /// `source`; `new` is the entry that replaced the damaged one.
    Repaired {
        /// What the check found.
        damage: String,
        /// The new manifest entry.
        new: RemoteSegment,
        /// Where its batches came from.
        source: RepairSource,
    },
    /// An object was damaged and this node holds no intact copy of the segment's batches.
    Unrecoverable {
        /// What the check found.
        damage: String,
    },
    /// An object was damaged, but the repair was not recorded: the manifest entry changed
    /// (retention removed it, a compaction replaced it) or this node no longer leads. The
    /// new objects were deleted; the next pass (of whichever node leads) looks again.
    Changed {
        /// What the check found.
        damage: String,
    },
}

/// [`RemotePartition::scrub_segment`]'s answer.
#[derive(Debug, Clone, PartialEq)]
pub struct TieredScrubReport {
    /// Bytes of the objects the check read from the object store (data and indexes; not
    /// the repair).
    pub bytes: u64,
    /// The outcome.
    pub outcome: TieredScrub,
}

impl RemotePartition {
    /// Reads the objects of `seg` straight from the store and checks them (module docs, step
    /// 1). Returns the bytes read and, if an object is damaged or missing, what is wrong with
    /// the data object (`.0`) or else an index (`.1`); object-store errors are errors.
    pub async fn check_segment(&self, seg: &RemoteSegment) -> Result<(u64, SegmentDamage)> {
        let mut stats = RemoteCleanStats::default();
        let mut read = 0u64;
        let data = match self.batches(seg, &mut stats).await {
            // The object's bytes count as read once its GET started (a damaged one is read
            // only up to its first bad chunk).
            Ok(mut batches) => loop {
                match batches.next().await {
                    Ok(Some(_)) => {}
                    Ok(None) => break None,
                    Err(e) => break damage_of(e)?,
                }
            },
            Err(e) => damage_of(e)?,
        };
        read += stats.clean.bytes_read;
        let mut index = None;
        for (key, crc, what) in [
            (&seg.index_key, seg.index_crc, "offset index"),
            (&seg.time_index_key, seg.time_index_crc, "time index"),
        ] {
            match self.store.get(&object_path(key)).await {
                Ok(got) => {
                    let bytes = got.bytes().await.map_err(store_err("get index", key))?;
                    read += bytes.len() as u64;
                    let actual = crc32fast::hash(&bytes);
                    if actual != crc && index.is_none() {
                        index = Some(format!(
                            "{what} object `{key}` checksum mismatch: expected={crc:08x}, actual={actual:08x}"
                        ));
                    }
                }
                Err(object_store::Error::NotFound { .. }) => {
                    index.get_or_insert_with(|| format!("{what} object `{key}` is missing"));
                }
                Err(e) => return Err(store_err("get index", key)(e)),
            }
        }
        Ok((read, SegmentDamage { data, index }))
    }

    /// Checks the objects of `seg` and repairs a damaged one (module docs). `local` is this
    /// node's hot tier of the partition, if it has one. Use a handle that is
    /// [`leading_at`](Self::leading_at) the partition state this node leads at, so that a
    /// deposed leader's repair is never recorded.
    pub async fn scrub_segment(
        &self,
        seg: &RevisionedSegment,
        local: Option<Arc<PartitionLog>>,
        opts: &TieredScrubOptions,
    ) -> Result<TieredScrubReport> {
        let s = &seg.segment;
        let (bytes, found) = self.check_segment(s).await?;
        let Some(damage) = found.describe() else {
            return Ok(TieredScrubReport {
                bytes,
                outcome: TieredScrub::Intact,
            });
        };
        warn!(
            topic = %self.topic, partition = self.partition, base_offset = s.base_offset,
            end_offset = s.end_offset, key = %s.data_key, damage = %damage,
            "tiered segment damaged"
        );
        let source = if found.data.is_none() {
            self.tiered_copy(s)
                .await?
                .map(|b| (b, RepairSource::TieredData))
        } else {
            None
        };
        let source = match (source, local) {
            (Some(found), _) => Some(found),
            (None, Some(log)) => {
                let (base, end) = (s.base_offset, s.end_offset);
                tokio::task::spawn_blocking(move || local_copy(&log, base, end))
                    .await
                    .map_err(|e| Error::Internal {
                        reason: format!("gathering a local copy: {e}"),
                    })??
                    .map(|b| (b, RepairSource::Local))
            }
            (None, None) => None,
        };
        let Some((batches, source)) = source else {
            warn!(
                topic = %self.topic, partition = self.partition, base_offset = s.base_offset,
                end_offset = s.end_offset, key = %s.data_key,
                "damaged tiered segment has no intact copy on this node: unrecoverable here"
            );
            return Ok(TieredScrubReport {
                bytes,
                outcome: TieredScrub::Unrecoverable { damage },
            });
        };
        let outcome = match self.replace_segment(seg, batches, opts).await? {
            Some(new) => {
                info!(
                    topic = %self.topic, partition = self.partition, base_offset = s.base_offset,
                    end_offset = s.end_offset, old = %s.data_key, new = %new.data_key, ?source,
                    "damaged tiered segment uploaded again"
                );
                TieredScrub::Repaired {
                    damage,
                    new,
                    source,
                }
            }
            None => TieredScrub::Changed { damage },
        };
        Ok(TieredScrubReport { bytes, outcome })
    }

    /// The batches of `seg`'s data object, verified, or `None` if they are not intact.
    async fn tiered_copy(&self, seg: &RemoteSegment) -> Result<Option<Vec<u8>>> {
        let mut stats = RemoteCleanStats::default();
        let mut out = Vec::with_capacity(seg.size_bytes as usize);
        let mut batches = self.batches(seg, &mut stats).await?;
        loop {
            match batches.next().await {
                Ok(Some((bytes, _))) => out.extend_from_slice(&bytes),
                Ok(None) => return Ok(Some(out)),
                Err(e) => return damage_of(e).map(|_| None),
            }
        }
    }

    /// Uploads `batches` (the whole of `seg`'s offset range) as a new segment and swaps it in
    /// for `seg` (module docs, step 3). `None` when the entry changed meanwhile.
    async fn replace_segment(
        &self,
        seg: &RevisionedSegment,
        batches: Vec<u8>,
        opts: &TieredScrubOptions,
    ) -> Result<Option<RemoteSegment>> {
        let old = &seg.segment;
        let base = old.base_offset;
        let mut idx = SegmentIndex::new(base);
        let mut pos = 0usize;
        while pos < batches.len() {
            let h = BatchHeader::parse(&batches[pos..])?;
            idx.add_batch(
                h.base_offset,
                h.last_offset(),
                pos as u64,
                h.size(),
                h.max_timestamp,
                opts.index_interval_bytes,
            );
            pos += h.size() as usize;
        }
        idx.seal();
        let (index, time_index) = idx.encode();
        let parts = SegmentParts {
            data: batches,
            index,
            time_index,
            txn_index: Sidecar::Copy(txn_index_key(&old.data_key)),
            producer_snapshot: Sidecar::Copy(producer_snapshot_key(&old.data_key)),
        };
        let mut stats = RemoteCleanStats::default();
        let written = self
            .write_new_segment(base, opts.leader_epoch, parts, &mut stats)
            .await?;
        let new = RemoteSegment {
            // Offsets, timestamps and the upload time (which a segment without timestamps
            // ages from) stay the damaged entry's: the records are the same.
            base_offset: old.base_offset,
            end_offset: old.end_offset,
            first_timestamp: old.first_timestamp,
            max_timestamp: old.max_timestamp,
            uploaded_ms: old.uploaded_ms,
            ..written.entry(opts.leader_epoch)
        };
        let swap = SegmentSwap {
            replaced: vec![seg.clone()],
            new: new.clone(),
            retired_name: format!("{base:020}-{}", written.upload_id.simple()),
            retired: RetiredObjects {
                keys: recorded_keys(old).to_vec(),
                retired_ms: opts.now_ms,
            },
            checkpoint: None,
        };
        if let Some(key) = self.swap_in(&swap, &written.keys, &mut stats).await? {
            info!(topic = %self.topic, partition = self.partition, base, key, "repair of a tiered segment lost its compare; the entry changed");
            return Ok(None);
        }
        Ok(Some(new))
    }
}

/// What [`RemotePartition::check_segment`] found wrong, if anything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SegmentDamage {
    /// The data object: a chunk checksum, a batch CRC-32C, its length, or it is missing.
    pub data: Option<String>,
    /// The offset or time index object.
    pub index: Option<String>,
}

impl SegmentDamage {
    /// One line saying what is wrong, `None` when nothing is.
    pub fn describe(&self) -> Option<String> {
        match (&self.data, &self.index) {
            (None, None) => None,
            (Some(d), None) => Some(d.clone()),
            (None, Some(i)) => Some(i.clone()),
            (Some(d), Some(i)) => Some(format!("{d}; {i}")),
        }
    }
}

/// `e` as damage (`Ok(Some(reason))`): a corrupt object, or a missing one; other errors stay
/// errors.
fn damage_of(e: Error) -> Result<Option<String>> {
    match e {
        Error::CorruptObject { key, reason } => Ok(Some(format!("`{key}`: {reason}"))),
        Error::ObjectStore {
            key,
            source: object_store::Error::NotFound { .. },
            ..
        } => Ok(Some(format!("`{key}`: object is missing"))),
        e => Err(e),
    }
}

/// Every batch of `[base, end)` from the hot tier, if it holds them all intact and none
/// straddles a bound; `None` otherwise. Blocking file I/O.
pub fn local_copy(log: &PartitionLog, base: i64, end: i64) -> Result<Option<Vec<u8>>> {
    if log.log_start_offset() > base || log.log_end_offset() < end {
        return Ok(None);
    }
    let mut out = Vec::new();
    let mut at = base;
    while at < end {
        let records = match log.read(at, LOCAL_READ_BYTES) {
            Ok(r) => r.records,
            Err(e) if matches!(e.kind(), ErrorKind::Data | ErrorKind::OffsetOutOfRange) => {
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        if records.is_empty() {
            return Ok(None);
        }
        let mut pos = 0;
        while pos < records.len() && at < end {
            let h = BatchHeader::parse(&records[pos..])?;
            let size = h.size() as usize;
            let Some(bytes) = records.get(pos..pos + size) else {
                return Ok(None);
            };
            if h.base_offset < base || (h.last_offset() >= end && h.base_offset < end) {
                // A batch across a bound of the segment (a compacted or differently rolled
                // hot tier): the local batches do not make this segment.
                return Ok(None);
            }
            if h.base_offset >= end {
                // The range ends in a hole of a compacted hot tier.
                at = end;
                break;
            }
            if !batch::crc_matches(bytes, &h) {
                return Ok(None);
            }
            out.extend_from_slice(bytes);
            at = h.last_offset() + 1;
            pos += size;
        }
    }
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use bytes::Bytes;
    use futures::StreamExt;
    use object_store::memory::InMemory;
    use object_store::path::Path as ObjectPath;
    use object_store::{ObjectStore, PutPayload};
    use tierlog_metadata::{ManifestRegistry, MemoryStore};
    use uuid::Uuid;

    use super::*;
    use crate::LogConfig;
    use crate::remote::cache::{CacheConfig, ChunkCache};
    use crate::remote::partition::RemoteOptions;
    use crate::remote::reader::RemoteReader;
    use crate::remote::upload::tests::{fill, small_log};

    const CHUNK: u32 = 512;
    const OPTS: TieredScrubOptions = TieredScrubOptions {
        leader_epoch: 4,
        now_ms: 50_000,
        index_interval_bytes: 256,
    };

    struct Fx {
        _dir: tempfile::TempDir,
        log: Arc<PartitionLog>,
        store: Arc<dyn ObjectStore>,
        manifest: ManifestRegistry,
        remote: RemotePartition,
        cache: ChunkCache,
        topic_id: Uuid,
    }

    /// A log of 150 four-record batches in ~4 KiB segments (`small_log`), every sealed segment tiered in
    /// 512-byte chunks through a handle with a chunk cache.
    async fn tiered() -> Fx {
        let dir = tempfile::tempdir().unwrap();
        let log = small_log(dir.path());
        fill(&log, 150);
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let manifest = ManifestRegistry::new(Arc::new(MemoryStore::new()));
        let topic_id = Uuid::new_v4();
        let cache = ChunkCache::new(&CacheConfig {
            memory_bytes: 16 << 20,
            ..CacheConfig::default()
        })
        .await
        .unwrap();
        let remote = RemotePartition::new(store.clone(), manifest.clone(), "t", topic_id, 0)
            .with_options(RemoteOptions {
                chunk_size: CHUNK,
                ..RemoteOptions::default()
            })
            .with_cache(cache.clone());
        let sealed = log.sealed_segments().unwrap();
        assert!(sealed.len() >= 3);
        for seg in &sealed {
            remote.upload(seg, 3, 0).await.unwrap();
        }
        Fx {
            _dir: dir,
            log: Arc::new(log),
            store,
            manifest,
            remote,
            cache,
            topic_id,
        }
    }

    impl Fx {
        async fn listed(&self) -> Vec<RevisionedSegment> {
            self.manifest
                .list_revisioned(self.topic_id, 0)
                .await
                .unwrap()
        }

        async fn get(&self, key: &str) -> Bytes {
            let got = self.store.get(&ObjectPath::from(key)).await.unwrap();
            got.bytes().await.unwrap()
        }

        /// Flips one byte of object `key` in the bucket, at `at`.
        async fn flip(&self, key: &str, at: usize) {
            let mut bytes = self.get(key).await.to_vec();
            bytes[at] ^= 0x40;
            self.store
                .put(&ObjectPath::from(key), PutPayload::from(bytes))
                .await
                .unwrap();
        }

        /// Every tiered batch, read segment by segment through `reader` in 300-byte reads.
        async fn read_all(&self, reader: &RemoteReader) -> Result<Vec<u8>> {
            let mut out = Vec::new();
            for seg in self.manifest.list(self.topic_id, 0).await.unwrap() {
                let mut offset = seg.base_offset;
                while offset < seg.end_offset {
                    let b = reader.read(&seg, offset, 300).await?;
                    let mut pos = 0;
                    while pos < b.len() {
                        let h = BatchHeader::parse(&b[pos..]).unwrap();
                        offset = h.last_offset() + 1;
                        pos += h.size() as usize;
                    }
                    out.extend_from_slice(&b);
                }
            }
            Ok(out)
        }

        /// The hot tier's bytes of every tiered segment.
        async fn local_bytes(&self) -> Vec<u8> {
            let end = self.listed().await.last().unwrap().segment.end_offset;
            local_copy(&self.log, 0, end).unwrap().unwrap()
        }

        async fn fresh_reader(&self) -> RemoteReader {
            let cache = ChunkCache::new(&CacheConfig {
                memory_bytes: 16 << 20,
                ..CacheConfig::default()
            })
            .await
            .unwrap();
            RemoteReader::new(self.store.clone(), cache)
        }
    }

    #[tokio::test]
    async fn a_flipped_byte_is_found_and_the_segment_uploaded_again_from_the_hot_tier() {
        let fx = tiered().await;
        let expected = fx.local_bytes().await;
        // a reader sharing the handle's cache, warmed before the damage
        let reader = RemoteReader::new(fx.store.clone(), fx.cache.clone());
        assert_eq!(fx.read_all(&reader).await.unwrap(), expected);
        let before = fx.listed().await;
        let bad = before[1].clone();
        assert!(bad.segment.chunk_crcs.len() > 2);
        fx.flip(&bad.segment.data_key, CHUNK as usize + 100).await;
        // the bad chunk is never served: a cold reader refuses it
        let cold = fx.fresh_reader().await;
        let e = fx.read_all(&cold).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Data, "{e}");

        let mut outcomes = Vec::new();
        let mut scrubbed = 0;
        for seg in &before {
            let r = fx
                .remote
                .scrub_segment(seg, Some(fx.log.clone()), &OPTS)
                .await
                .unwrap();
            scrubbed += r.bytes;
            outcomes.push(r.outcome);
        }
        let objects: u64 = before.iter().map(|s| s.segment.size_bytes).sum::<u64>()
            + futures::future::join_all(before.iter().flat_map(|s| {
                [&s.segment.index_key, &s.segment.time_index_key].map(|k| fx.get(k))
            }))
            .await
            .iter()
            .map(|b| b.len() as u64)
            .sum::<u64>();
        assert_eq!(scrubbed, objects, "every object was read");
        for (i, o) in outcomes.iter().enumerate() {
            if i != 1 {
                assert_eq!(*o, TieredScrub::Intact, "segment {i}");
            }
        }
        let TieredScrub::Repaired {
            damage,
            new,
            source,
        } = &outcomes[1]
        else {
            panic!("expected a repair, got {:?}", outcomes[1]);
        };
        assert_eq!(*source, RepairSource::Local);
        assert!(damage.contains("chunk 1 checksum mismatch"), "{damage}");
        assert!(damage.contains(&bad.segment.data_key), "{damage}");
        // the manifest points at new objects holding the hot tier's bytes of the range
        let after = fx.listed().await;
        assert_eq!(after.len(), before.len());
        assert_eq!(after[1].segment, *new);
        assert_ne!(new.data_key, bad.segment.data_key);
        assert!(new.data_key.contains("-e4-"), "{}", new.data_key);
        assert_eq!(
            (new.base_offset, new.end_offset, new.uploaded_ms),
            (
                bad.segment.base_offset,
                bad.segment.end_offset,
                bad.segment.uploaded_ms
            )
        );
        let local = local_copy(&fx.log, new.base_offset, new.end_offset)
            .unwrap()
            .unwrap();
        assert_eq!(fx.get(&new.data_key).await, local);
        // the old objects are retired, not deleted: a reader holding the old entry fails on
        // its checksums rather than on a missing object, until the reap
        let retired = fx.manifest.list_retired(fx.topic_id, 0).await.unwrap();
        assert_eq!(retired.len(), 1);
        assert!(retired[0].objects.keys.contains(&bad.segment.data_key));
        // the old object's chunks left the cache
        let old: Arc<str> = Arc::from(bad.segment.data_key.as_str());
        assert!((0..bad.segment.chunk_crcs.len() as u64).all(|i| !fx.cache.in_memory(&old, i)));
        // reads return the right bytes, through the warm cache and a cold one
        assert_eq!(fx.read_all(&reader).await.unwrap(), expected);
        assert_eq!(
            fx.read_all(&fx.fresh_reader().await).await.unwrap(),
            expected
        );
        // and the timestamps index of the new segment works
        let ts = reader
            .offset_for_timestamp(new, 1000 + new.base_offset + 5)
            .await
            .unwrap();
        assert!(ts.is_some());
        // a second pass finds everything intact
        for seg in &after {
            let r = fx.remote.scrub_segment(seg, None, &OPTS).await.unwrap();
            assert_eq!(r.outcome, TieredScrub::Intact);
        }
        // the reap after the grace deletes the damaged objects
        let reaped = fx
            .remote
            .reap_retired(OPTS.now_ms + 1, std::time::Duration::ZERO)
            .await
            .unwrap();
        assert_eq!(reaped.records, 1);
        assert!(
            fx.store
                .head(&ObjectPath::from(bad.segment.data_key.as_str()))
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn without_a_copy_the_damage_is_unrecoverable_and_nothing_changes() {
        let fx = tiered().await;
        let before = fx.listed().await;
        let bad = &before[0];
        fx.flip(&bad.segment.data_key, 70).await;
        let no_local = fx.remote.scrub_segment(bad, None, &OPTS).await.unwrap();
        let TieredScrub::Unrecoverable { damage } = &no_local.outcome else {
            panic!("{no_local:?}");
        };
        assert!(damage.contains("chunk 0 checksum mismatch"), "{damage}");
        // a hot tier that no longer holds the range is no copy either
        let dir = tempfile::tempdir().unwrap();
        let empty = Arc::new(PartitionLog::open(dir.path(), LogConfig::default()).unwrap());
        let r = fx
            .remote
            .scrub_segment(bad, Some(empty), &OPTS)
            .await
            .unwrap();
        assert!(matches!(r.outcome, TieredScrub::Unrecoverable { .. }));
        assert_eq!(fx.listed().await, before);
        assert!(
            fx.manifest
                .list_retired(fx.topic_id, 0)
                .await
                .unwrap()
                .is_empty()
        );
        // a missing object is damage
        fx.store
            .delete(&ObjectPath::from(before[2].segment.data_key.as_str()))
            .await
            .unwrap();
        let r = fx
            .remote
            .scrub_segment(&before[2], None, &OPTS)
            .await
            .unwrap();
        let TieredScrub::Unrecoverable { damage } = &r.outcome else {
            panic!("{r:?}");
        };
        assert!(damage.contains("missing"), "{damage}");
        // and the hot tier repairs it
        let r = fx
            .remote
            .scrub_segment(&before[2], Some(fx.log.clone()), &OPTS)
            .await
            .unwrap();
        assert!(matches!(
            r.outcome,
            TieredScrub::Repaired {
                source: RepairSource::Local,
                ..
            }
        ));
    }

    #[tokio::test]
    async fn a_bad_index_is_rebuilt_from_the_intact_data_object() {
        let fx = tiered().await;
        let before = fx.listed().await;
        let seg = &before[0];
        fx.flip(&seg.segment.time_index_key, 3).await;
        let r = fx.remote.scrub_segment(seg, None, &OPTS).await.unwrap();
        let TieredScrub::Repaired {
            damage,
            new,
            source,
        } = &r.outcome
        else {
            panic!("{r:?}");
        };
        assert_eq!(*source, RepairSource::TieredData);
        assert!(damage.contains("time index"), "{damage}");
        assert_eq!(
            fx.get(&new.data_key).await,
            fx.get(&seg.segment.data_key).await
        );
        let reader = fx.fresh_reader().await;
        assert_eq!(fx.read_all(&reader).await.unwrap(), fx.local_bytes().await);
        assert!(
            reader
                .offset_for_timestamp(new, 1000 + new.base_offset + 5)
                .await
                .unwrap()
                .is_some()
        );
    }

    #[tokio::test]
    async fn an_entry_changed_meanwhile_is_left_alone() {
        let fx = tiered().await;
        let before = fx.listed().await;
        fx.flip(&before[0].segment.data_key, 10).await;
        let objects = fx.store.list(None).count().await;
        // the entry as listed before a retention delete or a compaction changed it
        let stale = RevisionedSegment {
            mod_revision: before[0].mod_revision - 1,
            ..before[0].clone()
        };
        let r = fx
            .remote
            .scrub_segment(&stale, Some(fx.log.clone()), &OPTS)
            .await
            .unwrap();
        assert!(matches!(r.outcome, TieredScrub::Changed { .. }), "{r:?}");
        assert_eq!(fx.listed().await, before);
        assert_eq!(
            fx.store.list(None).count().await,
            objects,
            "new objects deleted"
        );
    }
}
