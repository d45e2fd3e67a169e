//! Tiered compaction: Kafka's log cleaner for the segments in object storage
//! (`cleanup.policy=compact` with remote storage on, which Kafka's own tiered storage refuses).
//!
//! The batch-level rules are the hot tier's (`crate::compact`); this file is the remote
//! counterpart of `log/clean.rs`: range selection, the key map, rewriting segments in groups
//! and swapping them in — here in the manifest rather than in a directory.
//!
//! # A cleaning ([`RemotePartition::compact`])
//!
//! 1. The *cleanable* range: the tiered segments, in offset order, that end at or below the
//!    caller's bound (the first unstable offset: an open transaction may still abort, and its
//!    keys must not supersede anything yet) and whose newest record is older than
//!    `min.compaction.lag.ms`. Its *dirty* part starts at the remote cleaner checkpoint
//!    (`/tierlog/remote-clean/<topic id>/<partition>`, [`RemoteCleanCheckpoint`]). A cleaning
//!    runs when dirty bytes / cleanable bytes reach `min.cleanable.dirty.ratio`, when dirty
//!    records are older than `max.compaction.lag.ms`, when the delete horizon of a kept
//!    tombstone or marker has passed, or when forced.
//! 2. The key map: every key of the dirty segments, read from their data objects (one
//!    streamed GET each, every chunk checked against the manifest's CRC-32 like the reader
//!    does, every batch against its CRC-32C). If the map fills, the cleaning ends where the
//!    map ends.
//! 3. Every cleanable segment from the first up to the map's end is rewritten, in groups of
//!    adjacent segments that fit one segment (`segment.bytes`), with the aborted transactions
//!    of their `.txnindex` objects. A group in which nothing changes is left alone. A
//!    changed group becomes one new segment under **new** keys (a fresh upload id, the
//!    leader's epoch): data, `.index` and `.timeindex` (built like the hot cleaner's),
//!    `.txnindex` if aborted transactions are still needed, and the group's last
//!    `.snapshot` copied over (the producer state as of the same end offset).
//! 4. The swap ([`tierlog_metadata::ManifestRegistry::replace`]): one metadata transaction
//!    that compares every replaced entry's revision (a retention delete or another swap since
//!    the listing aborts it) and the leader guard (a deposed leader's rewrite is never
//!    recorded), deletes the group's other entries, puts the new entry at the group's base
//!    offset with the group's end offset, records the replaced objects as *retired*, and —
//!    on the last group — moves the checkpoint to the map's end. Offsets never change, so
//!    the tiered range keeps joining the hot range without a gap; readers step over holes.
//!    A crash or failure before the swap leaves the manifest as it was and the new objects
//!    as orphans for the sweep ([`super::gc`]); a failed compare deletes them at once.
//! 5. Retired objects stay readable for a grace period (readers in flight, other nodes'
//!    views of the manifest that predate the swap); the orphan sweep counts them as
//!    referenced. [`RemotePartition::reap_retired`] deletes them once `retired_ms + grace`
//!    has passed, objects first and the record after (a crash in between only repeats the
//!    deletes).
//!
//! Memory: the key map (`dedupe_buffer_bytes`), one chunk and one batch per streamed read,
//! and one cleaned group (at most `segment.bytes`) before it is uploaded.
//!
//! Not cancel-safe in the sense of upload: dropping the future midway may leave orphan
//! objects (never a manifest entry without its objects); run it in its own task.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use futures::TryStreamExt;
use futures::stream::BoxStream;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};
use tierlog_metadata::{
    RemoteCleanCheckpoint, RemoteSegment, RetiredObjects, RevisionedSegment, SegmentSwap,
};
use tracing::{debug, info, warn};
use uuid::Uuid;

use super::cache::{chunk_count, object_path};
use super::layout::{SegmentKeys, recorded_keys, segment_keys, txn_index_key};
use super::partition::RemotePartition;
use super::upload::{put_create, store_err};
use crate::batch::{self, BatchHeader, HEADER_SIZE, LOG_OVERHEAD};
use crate::compact::{self as rules, BatchCleaner, CleanContext, OffsetMap};
use crate::error::{Error, Result};
use crate::index::{NO_TIMESTAMP, SegmentIndex};
use crate::producer::AbortedTxn;
use crate::{CleanStats, LogConfig};

/// Prefix of the manifest's keys (`tierlog_metadata::ManifestRegistry`).
const MANIFEST_KEYS: &str = "/tierlog/manifest/";

/// What one tiered cleaning needs beyond the topic config.
#[derive(Debug, Clone, Default)]
pub struct RemoteCleanOptions {
    /// The current time (ms): compaction lags, delete horizons, the retired records' stamp.
    pub now_ms: i64,
    /// Leader epoch the new objects' keys carry.
    pub leader_epoch: i32,
    /// Memory for the key map (`log.cleaner.dedupe.buffer.size`).
    pub dedupe_buffer_bytes: usize,
    /// Clean whatever is dirty, whatever the dirty ratio (tests, admin).
    pub force: bool,
    /// Only segments ending at or below this offset are cleaned: the partition's first
    /// unstable offset (or the high watermark when no transaction is open).
    pub upper_bound: i64,
    /// Producer id → last offset of its last batch, for the producers the partition's state
    /// tracks ([`crate::PartitionLog::producer_last_offsets`]): those batches are kept.
    pub producer_last: HashMap<i64, i64>,
    /// Aborted transactions whose markers are not tiered yet (the hot log's, from
    /// [`crate::PartitionLog::aborted_transactions`]): their data in the tiered range must
    /// not count as committed. The tiered `.txnindex` objects supply the rest.
    pub hot_aborted: Vec<AbortedTxn>,
}

/// Why a cleaning stopped before swapping in every group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CleanInterrupted {
    /// A replaced entry changed since it was listed (retention removed it, or another
    /// compaction swapped it): the groups swapped before stay, the rest waits for the next
    /// cleaning (the checkpoint did not move).
    ManifestChanged,
    /// The leader guard failed: this node no longer leads; nothing more was recorded.
    Deposed,
}

/// What one tiered cleaning did: what a hot-tier cleaning reports ([`CleanStats`]: the
/// dirty range, the key map, bytes and records before and after), plus its object-store cost.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RemoteCleanStats {
    /// The cleaning itself. `bytes_read` counts data objects read (map building and
    /// rewriting) plus transaction indexes; `bytes_written` the objects written (data,
    /// indexes, transaction indexes; copies not included); `end` is the new checkpoint if
    /// the cleaning completed.
    pub clean: CleanStats,
    /// GET requests (data objects, transaction indexes).
    pub gets: u64,
    /// PUT requests (single puts; a multipart upload counts its start, parts and completion).
    pub puts: u64,
    /// COPY requests (producer snapshots carried over).
    pub copies: u64,
    /// DELETE requests (objects of a swap that failed its compares).
    pub deletes: u64,
    /// The entries swapped in, in offset order; each replaced the entries within its range.
    pub swapped: Vec<RemoteSegment>,
    /// The entries replaced.
    pub replaced: Vec<RemoteSegment>,
    /// Set when the cleaning stopped early.
    pub interrupted: Option<CleanInterrupted>,
}

impl RemoteCleanStats {
    /// Bytes the tiered range shrank by.
    pub fn bytes_removed(&self) -> u64 {
        self.clean.bytes_removed()
    }

    /// Object-store requests made.
    pub fn requests(&self) -> u64 {
        self.gets + self.puts + self.copies + self.deletes
    }
}

/// What [`RemotePartition::reap_retired`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReapReport {
    /// Retired records whose grace had passed, and that were removed.
    pub records: usize,
    /// Retired records still within their grace.
    pub waiting: usize,
    /// DELETE requests made (missing objects included).
    pub deletes: u64,
    /// Deletes that failed (their record stays for the next reap).
    pub failed: usize,
}

impl RemotePartition {
    /// Cleans the tiered segments of a compacted topic if they are dirty enough (module
    /// docs). `None` when the topic is not compacted or there is nothing to do. The
    /// manifest should be guarded ([`RemotePartition::leading_at`]) so that a deposed
    /// leader's rewrite is never recorded.
    ///
    /// Errors (object store, metadata store, corrupt objects) stop the cleaning; groups
    /// swapped before stay swapped (re-list the manifest to learn them). A lost compare is
    /// not an error: the stats say [`CleanInterrupted`].
    pub async fn compact(
        &self,
        config: &LogConfig,
        opts: &RemoteCleanOptions,
    ) -> Result<Option<RemoteCleanStats>> {
        if !config.cleanup_compact {
            return Ok(None);
        }
        let listed = self
            .manifest
            .list_revisioned(self.topic_id, self.partition)
            .await?;
        let checkpoint = self
            .manifest
            .clean_checkpoint(self.topic_id, self.partition)
            .await?
            .unwrap_or_default();
        let now = opts.now_ms;
        let min_lag = config.min_compaction_lag_ms.max(0);
        let cleanable: Vec<&RevisionedSegment> = listed
            .iter()
            .take_while(|r| {
                let s = &r.segment;
                s.end_offset <= opts.upper_bound
                    && (min_lag == 0
                        || s.max_timestamp < 0
                        || s.max_timestamp <= now.saturating_sub(min_lag))
            })
            .collect();
        let (Some(first), Some(last)) = (cleanable.first(), cleanable.last()) else {
            return Ok(None);
        };
        let end = last.segment.end_offset;
        let first_dirty = checkpoint.first_dirty.clamp(first.segment.base_offset, end);
        let expired = checkpoint.next_delete_horizon.is_some_and(|h| h <= now);
        if first_dirty >= end && !expired {
            return Ok(None);
        }
        let (mut clean_bytes, mut dirty_bytes, mut oldest_dirty) = (0u64, 0u64, i64::MAX);
        for r in &cleanable {
            if r.segment.end_offset <= first_dirty {
                clean_bytes += r.segment.size_bytes;
            } else {
                dirty_bytes += r.segment.size_bytes;
                if r.segment.max_timestamp >= 0 {
                    oldest_dirty = oldest_dirty.min(r.segment.max_timestamp);
                }
            }
        }
        let lagging = config.max_compaction_lag_ms < i64::MAX
            && oldest_dirty != i64::MAX
            && oldest_dirty <= now.saturating_sub(config.max_compaction_lag_ms);
        let total = clean_bytes + dirty_bytes;
        let ratio = if total == 0 {
            0.0
        } else {
            dirty_bytes as f64 / total as f64
        };
        if !opts.force && !expired && !lagging && ratio < config.min_cleanable_dirty_ratio {
            return Ok(None);
        }
        let mut stats = RemoteCleanStats {
            clean: CleanStats {
                first_dirty,
                ..CleanStats::default()
            },
            ..RemoteCleanStats::default()
        };
        // Every tiered transaction index from the first cleanable segment on (a marker may
        // sit past the cleanable range), plus the hot log's.
        let indexed: Vec<&RevisionedSegment> = listed.iter().collect();
        let mut aborted = self.tiered_aborts(&indexed, &mut stats).await?;
        aborted.extend(opts.hot_aborted.iter().copied());

        // The key map over the dirty range.
        let mut map = OffsetMap::with_memory(opts.dedupe_buffer_bytes);
        let mut map_end = end;
        for r in cleanable
            .iter()
            .filter(|r| r.segment.end_offset > first_dirty)
        {
            let seg = &r.segment;
            let mut batches = self.batches(seg, &mut stats).await?;
            let mut aborted_open: HashMap<i64, bool> = HashMap::new();
            let mut full = false;
            while let Some((bytes, h)) = batches.next().await? {
                if h.last_offset() < first_dirty {
                    continue;
                }
                if h.is_control() {
                    aborted_open.remove(&h.producer_id);
                    continue;
                }
                if h.is_transactional() {
                    let is_aborted = *aborted_open.entry(h.producer_id).or_insert_with(|| {
                        aborted.iter().any(|t| {
                            t.producer_id == h.producer_id
                                && t.first_offset <= h.base_offset
                                && h.base_offset < t.last_offset
                        })
                    });
                    if is_aborted {
                        continue;
                    }
                }
                if !rules::add_keys(&mut map, &bytes, &h, first_dirty)
                    .map_err(|reason| corrupt(seg, reason))?
                {
                    full = true;
                    break;
                }
            }
            if full {
                map_end = map.latest_offset() + 1;
                break;
            }
        }
        stats.clean.end = map_end;
        stats.clean.map_keys = map.len();

        // Rewrite every cleanable segment below the map's end, group by group.
        let cx = CleanContext {
            map: &map,
            now_ms: now,
            delete_retention_ms: config.delete_retention_ms,
            producer_last: &opts.producer_last,
        };
        let mut cleaner = BatchCleaner::new(&aborted);
        let targets: Vec<&RevisionedSegment> = cleanable
            .iter()
            .copied()
            .take_while(|r| r.segment.base_offset < map_end)
            .collect();
        let groups = group_segments(&targets, config.segment_bytes);
        let mut checkpoint_written = false;
        for (i, group) in groups.iter().enumerate() {
            let is_last = i + 1 == groups.len();
            let step = self
                .clean_group(group, &cx, &mut cleaner, config, opts, &mut stats, |h| {
                    is_last.then(|| RemoteCleanCheckpoint {
                        first_dirty: map_end.max(first_dirty),
                        next_delete_horizon: h,
                    })
                })
                .await?;
            match step {
                GroupStep::Unchanged => {}
                GroupStep::Swapped => checkpoint_written |= is_last,
                GroupStep::Interrupted(why) => {
                    stats.interrupted = Some(why);
                    info!(
                        topic = %self.topic, partition = self.partition, reason = ?why,
                        swapped = stats.swapped.len(), "tiered compaction stopped early"
                    );
                    return Ok(Some(stats));
                }
            }
        }
        // Every segment cleaned before is below the map's end, so this pass saw every kept
        // tombstone and marker.
        let horizon = cleaner.next_horizon;
        stats.clean.next_delete_horizon = horizon;
        if !checkpoint_written {
            let cp = RemoteCleanCheckpoint {
                first_dirty: map_end.max(first_dirty),
                next_delete_horizon: horizon,
            };
            match self
                .manifest
                .set_clean_checkpoint(self.topic_id, self.partition, &cp)
                .await
            {
                Ok(()) => {}
                Err(e) if e.kind() == tierlog_metadata::ErrorKind::Conflict => {
                    stats.interrupted = Some(CleanInterrupted::Deposed);
                }
                Err(e) => return Err(e.into()),
            }
        }
        info!(
            topic = %self.topic, partition = self.partition, first_dirty, end = map_end,
            keys = stats.clean.map_keys, read = stats.clean.bytes_read, written = stats.clean.bytes_written,
            removed = stats.bytes_removed(), segments_before = stats.clean.segments_before,
            segments_after = stats.clean.segments_after, requests = stats.requests(),
            "tiered compaction"
        );
        Ok(Some(stats))
    }

    /// Rewrites one group of adjacent tiered segments and swaps the result in.
    #[allow(clippy::too_many_arguments)]
    async fn clean_group(
        &self,
        group: &[&RevisionedSegment],
        cx: &CleanContext<'_>,
        cleaner: &mut BatchCleaner,
        config: &LogConfig,
        opts: &RemoteCleanOptions,
        stats: &mut RemoteCleanStats,
        checkpoint: impl FnOnce(Option<i64>) -> Option<RemoteCleanCheckpoint>,
    ) -> Result<GroupStep> {
        let (Some(first), Some(last)) = (group.first(), group.last()) else {
            return Ok(GroupStep::Unchanged);
        };
        let base = first.segment.base_offset;
        let end = last.segment.end_offset;
        let mut idx = SegmentIndex::new(base);
        let mut data: Vec<u8> = Vec::new();
        let mut max_ts = NO_TIMESTAMP;
        let mut changed = group.len() > 1;
        let (mut records_read, mut records_kept) = (0, 0);
        let aborts_before = cleaner.kept_aborts.len();
        let mut out = Vec::new();
        for r in group {
            let seg = &r.segment;
            let mut batches = self.batches(seg, stats).await?;
            while let Some((bytes, h)) = batches.next().await? {
                out.clear();
                let o = cleaner
                    .clean(&bytes, &h, cx, &mut out)
                    .map_err(|reason| corrupt(seg, reason))?;
                records_read += o.records_in;
                records_kept += o.records_kept;
                changed |= o.rewritten || !o.kept;
                if o.kept {
                    let kept = BatchHeader::parse(&out)?;
                    idx.add_batch(
                        kept.base_offset,
                        kept.last_offset(),
                        data.len() as u64,
                        kept.size(),
                        kept.max_timestamp,
                        config.index_interval_bytes,
                    );
                    max_ts = max_ts.max(kept.max_timestamp);
                    data.extend_from_slice(&out);
                }
            }
        }
        stats.clean.records_read += records_read;
        stats.clean.records_kept += records_kept;
        if !changed {
            return Ok(GroupStep::Unchanged);
        }
        idx.seal();
        let (index, time_index) = idx.encode();
        let aborts: Vec<u8> = cleaner.kept_aborts[aborts_before..]
            .iter()
            .flat_map(AbortedTxn::encode)
            .collect();

        let txn_index = if aborts.is_empty() {
            Sidecar::None
        } else {
            Sidecar::Put(aborts)
        };
        let parts = SegmentParts {
            data,
            index,
            time_index,
            txn_index,
            // The group's last snapshot: the producer state as of the same end offset.
            producer_snapshot: Sidecar::Copy(super::layout::producer_snapshot_key(
                &last.segment.data_key,
            )),
        };
        let written = self
            .write_new_segment(base, opts.leader_epoch, parts, stats)
            .await?;
        crash_point()?;

        let group_max = group
            .iter()
            .map(|r| r.segment.max_timestamp)
            .max()
            .unwrap_or(NO_TIMESTAMP);
        let new = RemoteSegment {
            base_offset: base,
            end_offset: end,
            first_timestamp: first.segment.first_timestamp,
            // An emptied group keeps ageing from its old newest record.
            max_timestamp: if max_ts == NO_TIMESTAMP {
                group_max
            } else {
                max_ts
            },
            uploaded_ms: opts.now_ms,
            ..written.entry(opts.leader_epoch)
        };
        let size = new.size_bytes;
        let swap = SegmentSwap {
            replaced: group.iter().map(|r| (*r).clone()).collect(),
            new: new.clone(),
            retired_name: format!("{base:020}-{}", written.upload_id.simple()),
            retired: RetiredObjects {
                keys: group
                    .iter()
                    .flat_map(|r| recorded_keys(&r.segment))
                    .collect(),
                retired_ms: opts.now_ms,
            },
            checkpoint: checkpoint(cleaner.next_horizon),
        };
        if let Some(key) = self.swap_in(&swap, &written.keys, stats).await? {
            debug!(topic = %self.topic, partition = self.partition, base, key, "tiered compaction swap lost its compare");
            // `replace` names the manifest entry that changed, or else the guard's key.
            return Ok(GroupStep::Interrupted(if key.starts_with(MANIFEST_KEYS) {
                CleanInterrupted::ManifestChanged
            } else {
                CleanInterrupted::Deposed
            }));
        }
        stats.clean.bytes_before += group.iter().map(|r| r.segment.size_bytes).sum::<u64>();
        stats.clean.bytes_after += size;
        stats.clean.segments_before += group.len();
        stats.clean.segments_after += 1;
        stats
            .replaced
            .extend(group.iter().map(|r| r.segment.clone()));
        stats.swapped.push(new);
        debug!(
            topic = %self.topic, partition = self.partition, base, end,
            segments = group.len(), bytes = size, "swapped in a compacted tiered segment"
        );
        Ok(GroupStep::Swapped)
    }

    /// Writes the objects of a segment that will replace recorded ones (a compacted group, a
    /// repaired segment) under fresh keys at `base` (a new upload id, `leader_epoch`): data,
    /// both indexes, and the optional sidecars. On failure nothing references them, and they
    /// are deleted before the error is returned.
    pub(super) async fn write_new_segment(
        &self,
        base: i64,
        leader_epoch: i32,
        parts: SegmentParts,
        stats: &mut RemoteCleanStats,
    ) -> Result<NewSegment> {
        let upload_id = Uuid::new_v4();
        let keys = segment_keys(
            &self.topic,
            self.topic_id,
            self.partition,
            base,
            leader_epoch,
            upload_id,
        );
        let chunk_size = self.options.chunk_size.max(1);
        let size = parts.data.len() as u64;
        let chunk_crcs: Vec<u32> = parts
            .data
            .chunks(chunk_size as usize)
            .map(crc32fast::hash)
            .collect();
        let written = async {
            self.put_data(&keys.data, parts.data, &chunk_crcs, chunk_size, stats)
                .await?;
            let index_crc = self.put_small(&keys.index, parts.index, stats).await?;
            let time_index_crc = self
                .put_small(&keys.time_index, parts.time_index, stats)
                .await?;
            for (sidecar, key) in [
                (parts.txn_index, &keys.txn_index),
                (parts.producer_snapshot, &keys.producer_snapshot),
            ] {
                match sidecar {
                    Sidecar::None => {}
                    Sidecar::Put(bytes) => {
                        self.put_small(key, bytes, stats).await?;
                    }
                    Sidecar::Copy(from) => self.copy_optional(&from, key, stats).await?,
                }
            }
            Ok::<_, Error>((index_crc, time_index_crc))
        }
        .await;
        match written {
            Ok((index_crc, time_index_crc)) => Ok(NewSegment {
                keys,
                upload_id,
                size,
                chunk_size,
                chunk_crcs,
                index_crc,
                time_index_crc,
            }),
            Err(e) => {
                // Nothing references these objects.
                stats.deletes += keys.all().len() as u64;
                super::upload::delete_objects(&self.store, &keys).await;
                Err(e)
            }
        }
    }

    /// Records `swap`, whose new entry's objects are `keys`. `Ok(None)` once recorded (the
    /// replaced objects' cached pieces are evicted: they will not be read again here);
    /// `Ok(Some(key))` when a compare failed (`key` names it: a replaced entry that changed,
    /// or the leader guard) and the new objects were deleted. An ambiguous failure is an
    /// error and leaves the new objects (the swap may have landed; the sweep takes them if
    /// not).
    pub(super) async fn swap_in(
        &self,
        swap: &SegmentSwap,
        keys: &SegmentKeys,
        stats: &mut RemoteCleanStats,
    ) -> Result<Option<String>> {
        match self
            .manifest
            .replace(self.topic_id, self.partition, swap)
            .await
        {
            Ok(()) => {}
            Err(tierlog_metadata::Error::Conflict { key, .. }) => {
                // Definitely not recorded: the new objects are garbage now.
                stats.deletes += keys.all().len() as u64;
                super::upload::delete_objects(&self.store, keys).await;
                return Ok(Some(key));
            }
            Err(e) => return Err(e.into()),
        }
        if let Some(cache) = &self.cache {
            for r in &swap.replaced {
                let s = &r.segment;
                cache.evict_object(&s.data_key, s.size_bytes, s.chunk_size);
                cache.evict_object(&s.index_key, 0, 0);
                cache.evict_object(&s.time_index_key, 0, 0);
                cache.evict_object(&txn_index_key(&s.data_key), 0, 0);
            }
        }
        Ok(None)
    }

    /// The aborted transactions recorded in the `.txnindex` objects of `segments` (read
    /// directly, one GET each; a missing object means none).
    async fn tiered_aborts(
        &self,
        segments: &[&RevisionedSegment],
        stats: &mut RemoteCleanStats,
    ) -> Result<Vec<AbortedTxn>> {
        let mut out = Vec::new();
        for r in segments {
            let key = txn_index_key(&r.segment.data_key);
            stats.gets += 1;
            let bytes = match self.store.get(&object_path(&key)).await {
                Ok(g) => g.bytes().await.map_err(store_err("get txn index", &key))?,
                Err(object_store::Error::NotFound { .. }) => continue,
                Err(e) => return Err(store_err("get txn index", &key)(e)),
            };
            stats.clean.bytes_read += bytes.len() as u64;
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
                out.push(
                    AbortedTxn::decode(chunk).ok_or_else(|| Error::CorruptObject {
                        key: key.clone(),
                        reason: "transaction index entry of an unknown version".into(),
                    })?,
                );
            }
        }
        Ok(out)
    }

    /// The batches of a tiered segment's data object, streamed with one GET.
    pub(super) async fn batches(
        &self,
        seg: &RemoteSegment,
        stats: &mut RemoteCleanStats,
    ) -> Result<BatchStream> {
        if seg.chunk_size == 0
            || seg.chunk_crcs.len() as u64 != chunk_count(seg.size_bytes, seg.chunk_size)
        {
            return Err(corrupt(
                seg,
                format!(
                    "manifest lists {} chunk checksums for {} bytes in chunks of {} bytes",
                    seg.chunk_crcs.len(),
                    seg.size_bytes,
                    seg.chunk_size
                ),
            ));
        }
        stats.gets += 1;
        stats.clean.bytes_read += seg.size_bytes;
        let stream = if seg.size_bytes == 0 {
            Box::pin(futures::stream::empty()) as BoxStream<'static, _>
        } else {
            self.store
                .get(&object_path(&seg.data_key))
                .await
                .map_err(store_err("get data object", &seg.data_key))?
                .into_stream()
        };
        Ok(BatchStream {
            seg: seg.clone(),
            stream,
            pending: BytesMut::new(),
            verified: BytesMut::new(),
            chunk: 0,
            pos: 0,
            done: false,
        })
    }

    /// Puts a cleaned data object: create-only in one request up to the multipart threshold,
    /// in parts above it (a key unique to this attempt needs no condition).
    pub(super) async fn put_data(
        &self,
        key: &str,
        data: Vec<u8>,
        crcs: &[u32],
        chunk_size: u32,
        stats: &mut RemoteCleanStats,
    ) -> Result<()> {
        let len = data.len() as u64;
        stats.clean.bytes_written += len;
        let location = ObjectPath::from(key);
        let opts = self.options.upload;
        if len <= opts.multipart_threshold {
            stats.puts += 1;
            return put_create(
                &self.store,
                &location,
                PutPayload::from(data),
                crcs,
                chunk_size,
            )
            .await;
        }
        let upload = self
            .store
            .put_multipart_opts(&location, object_store::PutMultipartOptions::default())
            .await
            .map_err(store_err("start multipart upload", key))?;
        let part = opts.part_size.max(1);
        stats.puts += 2 + data.len().div_ceil(part) as u64;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, part);
        writer.write(&data);
        writer
            .finish()
            .await
            .map_err(store_err("complete multipart upload", key))?;
        Ok(())
    }

    /// Puts a whole small object create-only; returns its CRC-32.
    pub(super) async fn put_small(
        &self,
        key: &str,
        bytes: Vec<u8>,
        stats: &mut RemoteCleanStats,
    ) -> Result<u32> {
        let crc = crc32fast::hash(&bytes);
        let len = bytes.len().max(1) as u32;
        stats.puts += 1;
        stats.clean.bytes_written += bytes.len() as u64;
        put_create(
            &self.store,
            &ObjectPath::from(key),
            PutPayload::from(bytes),
            &[crc],
            len,
        )
        .await?;
        Ok(crc)
    }

    /// Copies the optional object `from` (a producer snapshot, a transaction index) to `to`;
    /// a missing `from` is not an error (there is nothing to copy).
    pub(super) async fn copy_optional(
        &self,
        from: &str,
        to: &str,
        stats: &mut RemoteCleanStats,
    ) -> Result<()> {
        stats.copies += 1;
        match self
            .store
            .copy(&object_path(from), &ObjectPath::from(to))
            .await
        {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(store_err("copy optional object", to)(e)),
        }
    }

    /// Deletes the objects of segments a compaction replaced once `grace` has passed since
    /// (`retired_ms + grace <= now_ms`), then their retired records. An object a manifest
    /// entry references again is never deleted (it cannot happen — keys are unique per
    /// upload — but the manifest is the truth). A failed delete keeps the record for the
    /// next reap. Safe to run on any node, concurrently with anything.
    pub async fn reap_retired(&self, now_ms: i64, grace: Duration) -> Result<ReapReport> {
        let grace_ms = i64::try_from(grace.as_millis()).unwrap_or(i64::MAX);
        let records = self
            .manifest
            .list_retired(self.topic_id, self.partition)
            .await?;
        let mut report = ReapReport::default();
        let (due, waiting): (Vec<_>, Vec<_>) = records
            .into_iter()
            .partition(|r| r.objects.retired_ms.saturating_add(grace_ms) <= now_ms);
        report.waiting = waiting.len();
        if due.is_empty() {
            return Ok(report);
        }
        let live: HashSet<String> = self
            .manifest
            .list(self.topic_id, self.partition)
            .await?
            .iter()
            .flat_map(recorded_keys)
            .collect();
        for record in due {
            let mut failed = false;
            for key in record.objects.keys.iter().filter(|k| !live.contains(*k)) {
                report.deletes += 1;
                match self.store.delete(&object_path(key)).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => {
                        failed = true;
                        report.failed += 1;
                        warn!(key = %key, error = %e, "deleting a retired object failed; retrying at the next reap");
                    }
                }
            }
            if !failed
                && self
                    .manifest
                    .remove_retired(self.topic_id, self.partition, &record)
                    .await?
            {
                report.records += 1;
            }
        }
        if report.records > 0 {
            info!(
                topic = %self.topic, partition = self.partition, records = report.records,
                deletes = report.deletes, "reaped retired tiered objects"
            );
        }
        Ok(report)
    }
}

/// What a replacement segment is written from ([`RemotePartition::write_new_segment`]).
pub(super) struct SegmentParts {
    /// The record batches.
    pub(super) data: Vec<u8>,
    /// The `.index` bytes.
    pub(super) index: Vec<u8>,
    /// The `.timeindex` bytes.
    pub(super) time_index: Vec<u8>,
    /// The `.txnindex` object.
    pub(super) txn_index: Sidecar,
    /// The `.snapshot` object.
    pub(super) producer_snapshot: Sidecar,
}

/// An optional object of a replacement segment.
pub(super) enum Sidecar {
    /// None.
    None,
    /// These bytes.
    Put(Vec<u8>),
    /// A copy of this object, if it exists.
    Copy(String),
}

/// The objects [`RemotePartition::write_new_segment`] wrote.
pub(super) struct NewSegment {
    pub(super) keys: SegmentKeys,
    pub(super) upload_id: Uuid,
    pub(super) size: u64,
    pub(super) chunk_size: u32,
    pub(super) chunk_crcs: Vec<u32>,
    pub(super) index_crc: u32,
    pub(super) time_index_crc: u32,
}

impl NewSegment {
    /// A manifest entry for these objects; the offsets, timestamps and upload time are the
    /// caller's to fill in (struct update syntax).
    pub(super) fn entry(&self, leader_epoch: i32) -> RemoteSegment {
        RemoteSegment {
            base_offset: 0,
            end_offset: 0,
            size_bytes: self.size,
            first_timestamp: NO_TIMESTAMP,
            max_timestamp: NO_TIMESTAMP,
            leader_epoch,
            data_key: self.keys.data.clone(),
            index_key: self.keys.index.clone(),
            time_index_key: self.keys.time_index.clone(),
            chunk_size: self.chunk_size,
            chunk_crcs: self.chunk_crcs.clone(),
            index_crc: self.index_crc,
            time_index_crc: self.time_index_crc,
            uploaded_ms: 0,
        }
    }
}

/// What became of one group.
enum GroupStep {
    Unchanged,
    Swapped,
    Interrupted(CleanInterrupted),
}

/// Adjacent segments grouped so that each group fits one segment: total bytes at most
/// `max_bytes` and an offset span the 32-bit relative offsets of the index can address.
fn group_segments<'a>(
    segs: &'a [&'a RevisionedSegment],
    max_bytes: u64,
) -> Vec<&'a [&'a RevisionedSegment]> {
    let mut groups = Vec::new();
    let mut i = 0;
    while i < segs.len() {
        let base = segs[i].segment.base_offset;
        let mut size = segs[i].segment.size_bytes;
        let mut j = i + 1;
        while j < segs.len()
            && size + segs[j].segment.size_bytes <= max_bytes
            && segs[j].segment.end_offset - base <= i64::from(i32::MAX)
        {
            size += segs[j].segment.size_bytes;
            j += 1;
        }
        groups.push(&segs[i..j]);
        i = j;
    }
    groups
}

fn corrupt(seg: &RemoteSegment, reason: impl Into<String>) -> Error {
    Error::CorruptObject {
        key: seg.data_key.clone(),
        reason: reason.into(),
    }
}

/// The batches of one data object as its GET streams in: each `chunk_size` chunk is checked
/// against the manifest's CRC-32 before any of its bytes are used, and each batch against
/// its CRC-32C. Holds one chunk and one batch.
pub(super) struct BatchStream {
    seg: RemoteSegment,
    stream: BoxStream<'static, object_store::Result<Bytes>>,
    /// Bytes of the chunk being received (not verified yet).
    pending: BytesMut,
    /// Verified bytes not yet returned, starting at object byte `pos`.
    verified: BytesMut,
    /// Index of the chunk `pending` belongs to.
    chunk: usize,
    pos: u64,
    /// The GET stream ended.
    done: bool,
}

impl BatchStream {
    /// The next batch, or `None` at the end of the object.
    pub(super) async fn next(&mut self) -> Result<Option<(Bytes, BatchHeader)>> {
        loop {
            if self.verified.len() >= HEADER_SIZE {
                let h = BatchHeader::parse(&self.verified)
                    .map_err(|e| corrupt(&self.seg, format!("at byte {}: {e}", self.pos)))?;
                let left = self.seg.size_bytes - self.pos;
                let problem = if h.batch_length < (HEADER_SIZE - LOG_OVERHEAD) as i32 {
                    Some(format!("batchLength {} too small", h.batch_length))
                } else if h.size() > left {
                    Some(format!(
                        "truncated batch: needs {} bytes, {left} left",
                        h.size()
                    ))
                } else if h.magic != 2 {
                    Some(format!("magic {} is not 2", h.magic))
                } else {
                    None
                };
                if let Some(p) = problem {
                    return Err(corrupt(
                        &self.seg,
                        format!("batch at byte {}: {p}", self.pos),
                    ));
                }
                let size = h.size() as usize;
                if self.verified.len() >= size {
                    let bytes = self.verified.split_to(size).freeze();
                    if !batch::crc_matches(&bytes, &h) {
                        return Err(corrupt(
                            &self.seg,
                            format!("batch at byte {}: crc-32c mismatch", self.pos),
                        ));
                    }
                    self.pos += size as u64;
                    return Ok(Some((bytes, h)));
                }
            }
            if self.done {
                if self.verified.is_empty() {
                    return Ok(None);
                }
                return Err(corrupt(
                    &self.seg,
                    format!(
                        "truncated batch header at byte {}: {} bytes left",
                        self.pos,
                        self.verified.len()
                    ),
                ));
            }
            self.receive().await?;
        }
    }

    /// Receives more of the object, moving every complete chunk, once verified, to
    /// `verified`.
    async fn receive(&mut self) -> Result<()> {
        let key = self.seg.data_key.clone();
        let next = self
            .stream
            .try_next()
            .await
            .map_err(store_err("get data object", &key))?;
        let chunk_size = self.seg.chunk_size as usize;
        match next {
            Some(mut bytes) => {
                while bytes.has_remaining() {
                    let take = (chunk_size - self.pending.len()).min(bytes.len());
                    self.pending.extend_from_slice(&bytes.split_to(take));
                    if self.pending.len() == chunk_size {
                        self.verify_chunk()?;
                    }
                }
            }
            None => {
                self.done = true;
                if !self.pending.is_empty() {
                    self.verify_chunk()?;
                }
                let received = self.pos + self.verified.len() as u64;
                if received != self.seg.size_bytes || self.chunk != self.seg.chunk_crcs.len() {
                    return Err(corrupt(
                        &self.seg,
                        format!(
                            "object ended after {} chunks, the manifest lists {} ({} bytes)",
                            self.chunk,
                            self.seg.chunk_crcs.len(),
                            self.seg.size_bytes
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    fn verify_chunk(&mut self) -> Result<()> {
        let i = self.chunk;
        let Some(&expected) = self.seg.chunk_crcs.get(i) else {
            return Err(corrupt(
                &self.seg,
                format!(
                    "object is longer than the {} bytes the manifest lists",
                    self.seg.size_bytes
                ),
            ));
        };
        let actual = crc32fast::hash(&self.pending);
        if actual != expected {
            return Err(corrupt(
                &self.seg,
                format!(
                    "chunk {i} checksum mismatch: expected={expected:08x}, actual={actual:08x}"
                ),
            ));
        }
        self.verified.extend_from_slice(&self.pending);
        self.pending.clear();
        self.chunk += 1;
        Ok(())
    }
}

#[cfg(test)]
thread_local! {
    /// Tests: the next cleaning "crashes" after writing a group's objects, before its swap.
    static CRASH_BEFORE_SWAP: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

#[cfg(test)]
fn crash_point() -> Result<()> {
    if CRASH_BEFORE_SWAP.with(std::cell::Cell::get) {
        return Err(Error::Internal {
            reason: "injected crash before the swap".into(),
        });
    }
    Ok(())
}

#[cfg(not(test))]
#[inline]
fn crash_point() -> Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::sync::Arc;
    use std::time::SystemTime;

    use kafka_protocol::records::{Compression, RecordBatchDecoder};
    use object_store::ObjectStore;
    use object_store::memory::InMemory;
    use tierlog_metadata::{
        Compare, KeyValue, ManifestRegistry, MemoryStore, MetadataStore, MetadataStoreExt, Op,
        PartitionStateRegistry, TxnResult,
    };

    use super::*;
    use crate::PartitionLog;
    use crate::remote::cache::{CacheConfig, ChunkCache};
    use crate::remote::partition::RemoteOptions;
    use crate::remote::reader::RemoteReader;
    use crate::testutil::{Spec, encode, records_of};

    const NOW: i64 = 10_000;
    const HOUR: Duration = Duration::from_secs(3600);

    fn config() -> LogConfig {
        LogConfig {
            segment_bytes: 1 << 20,
            segment_ms: None,
            retention_ms: None,
            index_interval_bytes: 64,
            remote_storage: true,
            cleanup_compact: true,
            cleanup_delete: false,
            delete_retention_ms: 1_000,
            ..LogConfig::default()
        }
    }

    /// One batch holding one record `key` → `value` (None: a tombstone) at time `ts`.
    fn record(key: &str, value: Option<&str>, ts: i64) -> Bytes {
        let mut r = records_of(
            Spec {
                records: 1,
                first_ts: ts,
                ..Spec::default()
            },
            None,
        );
        r[0].key = Some(Bytes::from(key.to_string()));
        r[0].value = value.map(|v| Bytes::from(v.to_string()));
        encode(&r, Compression::None)
    }

    struct Fx {
        _dir: tempfile::TempDir,
        log: PartitionLog,
        store: Arc<dyn ObjectStore>,
        meta: Arc<dyn MetadataStore>,
        manifest: ManifestRegistry,
        remote: RemotePartition,
        topic_id: Uuid,
    }

    /// A compacted log holding `records` (one batch each, timestamps 1000 + offset), sealed
    /// into segments of `sizes` records, all tiered; `meta` is the metadata store.
    async fn tiered_with(
        records: &[(&str, Option<&str>)],
        sizes: &[usize],
        meta: Arc<dyn MetadataStore>,
    ) -> Fx {
        let dir = tempfile::tempdir().unwrap();
        let log = PartitionLog::open(dir.path(), config()).unwrap();
        let mut at = 0;
        for &n in sizes {
            for (k, v) in &records[at..at + n] {
                log.append(record(k, *v, 1000 + at as i64), 1, 0).unwrap();
                at += 1;
            }
            log.roll_now().unwrap();
        }
        assert_eq!(at, records.len());
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let manifest = ManifestRegistry::new(meta.clone());
        let topic_id = Uuid::new_v4();
        let remote = RemotePartition::new(store.clone(), manifest.clone(), "t", topic_id, 0)
            .with_options(RemoteOptions {
                chunk_size: 128,
                ..RemoteOptions::default()
            });
        for seg in log.sealed_segments().unwrap() {
            remote.upload(&seg, 1, 0).await.unwrap();
        }
        assert_eq!(manifest.list(topic_id, 0).await.unwrap().len(), sizes.len());
        Fx {
            _dir: dir,
            log,
            store,
            meta,
            manifest,
            remote,
            topic_id,
        }
    }

    async fn tiered(records: &[(&str, Option<&str>)], sizes: &[usize]) -> Fx {
        tiered_with(records, sizes, Arc::new(MemoryStore::new())).await
    }

    fn opts(now_ms: i64, force: bool) -> RemoteCleanOptions {
        RemoteCleanOptions {
            now_ms,
            leader_epoch: 2,
            dedupe_buffer_bytes: 1 << 20,
            force,
            upper_bound: i64::MAX,
            producer_last: HashMap::new(),
            hot_aborted: Vec::new(),
        }
    }

    impl Fx {
        /// Appends `records` (one batch each) as one more segment and tiers it.
        async fn tier_more(&self, records: &[(&str, Option<&str>)]) {
            for (k, v) in records {
                let at = self.log.log_end_offset();
                self.log.append(record(k, *v, 1000 + at), 1, 0).unwrap();
            }
            self.log.roll_now().unwrap();
            let seg = self.log.sealed_segments().unwrap().pop().unwrap();
            self.remote.upload(&seg, 1, 0).await.unwrap();
        }

        /// Every record of the tiered range read back through a `RemoteReader`, stepping
        /// over holes as the node does: (offset, key, value).
        async fn read_all(&self) -> Vec<(i64, String, Option<String>)> {
            let cache = ChunkCache::new(&CacheConfig {
                memory_bytes: 16 << 20,
                ..CacheConfig::default()
            })
            .await
            .unwrap();
            let reader = RemoteReader::new(self.store.clone(), cache);
            let mut out = Vec::new();
            let mut offset = 0;
            for seg in self.manifest.list(self.topic_id, 0).await.unwrap() {
                offset = offset.max(seg.base_offset);
                while offset < seg.end_offset {
                    let mut b = reader.read(&seg, offset, 64).await.unwrap();
                    if b.is_empty() {
                        break;
                    }
                    while b.has_remaining() {
                        let h = BatchHeader::parse(&b).unwrap();
                        offset = h.last_offset() + 1;
                        let set = RecordBatchDecoder::decode(&mut b).unwrap();
                        for r in set.records {
                            out.push((
                                r.offset,
                                String::from_utf8(r.key.unwrap().to_vec()).unwrap(),
                                r.value.map(|v| String::from_utf8(v.to_vec()).unwrap()),
                            ));
                        }
                    }
                }
            }
            out
        }

        /// A cleaning that recorded nothing: no retired objects, no checkpoint.
        async fn assert_nothing_retired_or_checkpointed(&self) {
            assert!(
                self.manifest
                    .list_retired(self.topic_id, 0)
                    .await
                    .unwrap()
                    .is_empty()
            );
            assert_eq!(
                self.manifest
                    .clean_checkpoint(self.topic_id, 0)
                    .await
                    .unwrap(),
                None
            );
        }

        async fn objects(&self) -> Vec<String> {
            self.store
                .list(None)
                .map_ok(|m| m.location.to_string())
                .try_collect()
                .await
                .unwrap()
        }
    }

    fn expect(v: &[(i64, &str, Option<&str>)]) -> Vec<(i64, String, Option<String>)> {
        v.iter()
            .map(|(o, k, v)| (*o, k.to_string(), v.map(str::to_string)))
            .collect()
    }

    const SEEDS: [(&str, Option<&str>); 11] = [
        ("K1", Some("V1")),
        ("K2", Some("V2")),
        ("K1", Some("V3")),
        ("K1", Some("V4")),
        ("K3", Some("V5")),
        ("K2", Some("V6")),
        ("K4", Some("V7")),
        ("K5", Some("V8")),
        ("K5", Some("V9")),
        ("K2", Some("V10")),
        ("K6", Some("V11")),
    ];

    #[tokio::test]
    async fn the_seeds_example_compacts_to_the_latest_value_per_key() {
        let fx = tiered(&SEEDS, &[3, 3, 3, 2]).await;
        let before = fx.manifest.list(fx.topic_id, 0).await.unwrap();
        let old_objects = fx.objects().await;
        // Not dirty enough is not a reason here: never cleaned, everything is dirty.
        let stats = fx
            .remote
            .compact(&config(), &opts(NOW, false))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            fx.read_all().await,
            expect(&[
                (3, "K1", Some("V4")),
                (4, "K3", Some("V5")),
                (6, "K4", Some("V7")),
                (8, "K5", Some("V9")),
                (9, "K2", Some("V10")),
                (10, "K6", Some("V11")),
            ])
        );
        let after = fx.manifest.list(fx.topic_id, 0).await.unwrap();
        assert_eq!(after.len(), 1);
        assert_eq!((after[0].base_offset, after[0].end_offset), (0, 11));
        assert_eq!(after[0].leader_epoch, 2);
        assert_eq!(stats.swapped, after);
        assert_eq!(stats.replaced, before);
        assert_eq!(
            (stats.clean.segments_before, stats.clean.segments_after),
            (4, 1)
        );
        assert_eq!(
            (stats.clean.records_read, stats.clean.records_kept),
            (11, 6)
        );
        assert_eq!(
            (
                stats.clean.first_dirty,
                stats.clean.end,
                stats.clean.map_keys
            ),
            (0, 11, 6)
        );
        let total_before: u64 = before.iter().map(|s| s.size_bytes).sum();
        assert_eq!(stats.clean.bytes_before, total_before);
        assert_eq!(stats.clean.bytes_after, after[0].size_bytes);
        assert!(stats.bytes_removed() > 0);
        // 4 txn index lookups + 4 data GETs (map) + 4 data GETs (rewrite); data, index and
        // time index puts; one snapshot copy.
        assert_eq!(
            (stats.gets, stats.puts, stats.copies, stats.deletes),
            (12, 3, 1, 0)
        );
        assert_eq!(stats.clean.bytes_read, 2 * total_before);
        assert!(stats.clean.bytes_written > stats.clean.bytes_after);
        assert_eq!(
            fx.manifest.clean_checkpoint(fx.topic_id, 0).await.unwrap(),
            Some(RemoteCleanCheckpoint {
                first_dirty: 11,
                next_delete_horizon: None
            })
        );
        // The producer snapshot as of offset 11 came along.
        let snap = super::super::layout::producer_snapshot_key(&after[0].data_key);
        assert!(fx.objects().await.contains(&snap));
        // Nothing dirty now.
        assert!(
            fx.remote
                .compact(&config(), &opts(NOW, false))
                .await
                .unwrap()
                .is_none()
        );

        // The replaced objects are retired: the sweep keeps them, the reaper waits.
        let swept = fx
            .remote
            .sweep_orphans(SystemTime::now() + 2 * HOUR)
            .await
            .unwrap();
        assert_eq!(swept.deleted, 0);
        let objects = fx.objects().await;
        assert!(old_objects.iter().all(|k| objects.contains(k)));
        let r = fx.remote.reap_retired(NOW + 1_000, HOUR).await.unwrap();
        assert_eq!((r.records, r.waiting, r.deletes), (0, 1, 0));
        let r = fx
            .remote
            .reap_retired(NOW + HOUR.as_millis() as i64, HOUR)
            .await
            .unwrap();
        assert_eq!((r.records, r.waiting, r.failed), (1, 0, 0));
        assert_eq!(r.deletes, 4 * 5);
        let objects = fx.objects().await;
        assert!(
            old_objects.iter().all(|k| !objects.contains(k)),
            "{objects:?}"
        );
        assert!(
            fx.manifest
                .list_retired(fx.topic_id, 0)
                .await
                .unwrap()
                .is_empty()
        );
        // What is left is exactly the new segment's objects, and still reads the same.
        assert_eq!(objects.len(), 4);
        assert_eq!(fx.read_all().await.len(), 6);
    }

    #[tokio::test]
    async fn tombstones_go_after_delete_retention_on_a_later_pass() {
        let fx = tiered(
            &[
                ("K1", Some("V1")),
                ("K2", Some("V2")),
                ("K1", None),
                ("K3", Some("V3")),
            ],
            &[2, 2],
        )
        .await;
        let stats = fx
            .remote
            .compact(&config(), &opts(NOW, true))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stats.clean.next_delete_horizon, Some(NOW + 1_000));
        assert_eq!(
            fx.read_all().await,
            expect(&[
                (1, "K2", Some("V2")),
                (2, "K1", None),
                (3, "K3", Some("V3"))
            ])
        );
        // Nothing dirty and the horizon still ahead: nothing to do.
        assert!(
            fx.remote
                .compact(&config(), &opts(NOW + 999, false))
                .await
                .unwrap()
                .is_none()
        );
        // Past the horizon a pass runs by itself and drops the tombstone.
        let stats = fx
            .remote
            .compact(&config(), &opts(NOW + 1_000, false))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (stats.clean.segments_before, stats.clean.segments_after),
            (1, 1)
        );
        assert_eq!(stats.clean.next_delete_horizon, None);
        assert_eq!(
            fx.read_all().await,
            expect(&[(1, "K2", Some("V2")), (3, "K3", Some("V3"))])
        );
        let segs = fx.manifest.list(fx.topic_id, 0).await.unwrap();
        assert_eq!((segs[0].base_offset, segs[0].end_offset), (0, 4));
        assert_eq!(
            fx.manifest.clean_checkpoint(fx.topic_id, 0).await.unwrap(),
            Some(RemoteCleanCheckpoint {
                first_dirty: 4,
                next_delete_horizon: None
            })
        );
    }

    #[tokio::test]
    async fn groups_follow_segment_bytes_and_unchanged_groups_are_left_alone() {
        let fx = tiered(
            &[
                ("A", Some("1")),
                ("B", Some("2")),
                ("C", Some("3")),
                ("D", Some("4")),
                ("A", Some("5")),
                ("E", Some("6")),
            ],
            &[2, 2, 2],
        )
        .await;
        let before = fx.manifest.list(fx.topic_id, 0).await.unwrap();
        let one = before[0].size_bytes;
        // Groups of one segment each: only the first segment loses a record.
        let cfg = LogConfig {
            segment_bytes: one + 1,
            ..config()
        };
        let stats = fx
            .remote
            .compact(&cfg, &opts(NOW, true))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (stats.clean.segments_before, stats.clean.segments_after),
            (1, 1)
        );
        let after = fx.manifest.list(fx.topic_id, 0).await.unwrap();
        assert_eq!(after[1..], before[1..]);
        assert_ne!(after[0].data_key, before[0].data_key);
        assert_eq!(fx.read_all().await.len(), 5);
        // The checkpoint moved even though the last group did not change.
        assert_eq!(
            fx.manifest
                .clean_checkpoint(fx.topic_id, 0)
                .await
                .unwrap()
                .unwrap()
                .first_dirty,
            6
        );
    }

    #[tokio::test]
    async fn min_compaction_lag_and_the_upper_bound_limit_the_range() {
        let fx = tiered(&SEEDS, &[3, 3, 3, 2]).await;
        // Records are stamped 1000..1010: with a lag of 9000 at 10_005, only segments whose
        // newest record is at or before 1005 (the first two) may be cleaned.
        let cfg = LogConfig {
            min_compaction_lag_ms: 9_000,
            ..config()
        };
        let stats = fx
            .remote
            .compact(&cfg, &opts(10_005, true))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stats.clean.end, 6);
        assert_eq!(stats.clean.segments_before, 2);
        // and the upper bound (an open transaction) stops it too
        let fx = tiered(&SEEDS, &[3, 3, 3, 2]).await;
        let stats = fx
            .remote
            .compact(
                &config(),
                &RemoteCleanOptions {
                    upper_bound: 9,
                    ..opts(NOW, true)
                },
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stats.clean.end, 9);
        let segs = fx.manifest.list(fx.topic_id, 0).await.unwrap();
        assert_eq!(
            segs.iter()
                .map(|s| (s.base_offset, s.end_offset))
                .collect::<Vec<_>>(),
            vec![(0, 9), (9, 11)]
        );
    }

    #[tokio::test]
    async fn a_deposed_leaders_compaction_is_not_recorded() {
        let meta: Arc<dyn MetadataStore> = Arc::new(MemoryStore::new());
        let fx = tiered_with(&SEEDS, &[3, 3, 3, 2], meta).await;
        let state_key = PartitionStateRegistry::key(fx.topic_id, 0);
        let rev = fx.meta.put(&state_key, "epoch 1".into()).await.unwrap();
        let leader = fx.remote.leading_at(rev);
        // Leadership moves on before the swap.
        fx.meta.put(&state_key, "epoch 2".into()).await.unwrap();
        let before = fx.manifest.list(fx.topic_id, 0).await.unwrap();
        let objects = fx.objects().await;
        let stats = leader
            .compact(&config(), &opts(NOW, true))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stats.interrupted, Some(CleanInterrupted::Deposed));
        assert!(stats.swapped.is_empty());
        assert_eq!(fx.manifest.list(fx.topic_id, 0).await.unwrap(), before);
        fx.assert_nothing_retired_or_checkpointed().await;
        // The rewrite's objects were deleted again (garbage the sweep would take otherwise).
        assert_eq!(fx.objects().await, objects);
        assert_eq!(fx.read_all().await.len(), 11);
    }

    /// A metadata store on which remote retention deletes the entry at base offset 0 right
    /// before the first compaction swap.
    #[derive(Debug)]
    struct RetentionRace {
        inner: MemoryStore,
        victim: std::sync::Mutex<Option<String>>,
    }

    #[async_trait::async_trait]
    impl MetadataStore for RetentionRace {
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
            let swap = ops
                .iter()
                .any(|o| matches!(o, Op::Put { key, .. } if key.starts_with("/tierlog/retired/")));
            let victim = if swap {
                self.victim.lock().unwrap().take()
            } else {
                None
            };
            if let Some(victim) = victim {
                self.inner.delete(&victim).await?;
            }
            self.inner.txn(compares, ops).await
        }
        async fn current_revision(&self) -> tierlog_metadata::Result<u64> {
            self.inner.current_revision().await
        }
    }

    #[tokio::test]
    async fn a_concurrent_retention_delete_aborts_the_swap() {
        let race = Arc::new(RetentionRace {
            inner: MemoryStore::new(),
            victim: std::sync::Mutex::new(None),
        });
        let fx = tiered_with(&SEEDS, &[3, 3, 3, 2], race.clone()).await;
        let before = fx.manifest.list(fx.topic_id, 0).await.unwrap();
        *race.victim.lock().unwrap() = Some(format!(
            "/tierlog/manifest/{}/0/{:020}",
            fx.topic_id.simple(),
            0
        ));
        let objects = fx.objects().await;
        let stats = fx
            .remote
            .compact(&config(), &opts(NOW, true))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stats.interrupted, Some(CleanInterrupted::ManifestChanged));
        assert!(stats.swapped.is_empty());
        assert_eq!(fx.manifest.list(fx.topic_id, 0).await.unwrap(), before[1..]);
        fx.assert_nothing_retired_or_checkpointed().await;
        assert_eq!(fx.objects().await, objects);
        // The next cleaning works on what is left.
        let stats = fx
            .remote
            .compact(&config(), &opts(NOW, true))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stats.interrupted, None);
        assert_eq!(
            (stats.clean.segments_before, stats.clean.segments_after),
            (3, 1)
        );
        let segs = fx.manifest.list(fx.topic_id, 0).await.unwrap();
        assert_eq!((segs[0].base_offset, segs[0].end_offset), (3, 11));
    }

    #[tokio::test]
    async fn a_crash_before_the_swap_leaves_orphans_for_the_sweep() {
        let fx = tiered(&SEEDS, &[3, 3, 3, 2]).await;
        let before = fx.manifest.list(fx.topic_id, 0).await.unwrap();
        let objects = fx.objects().await;
        CRASH_BEFORE_SWAP.with(|c| c.set(true));
        let err = fx
            .remote
            .compact(&config(), &opts(NOW, true))
            .await
            .unwrap_err();
        CRASH_BEFORE_SWAP.with(|c| c.set(false));
        assert!(err.to_string().contains("injected crash"), "{err}");
        assert_eq!(fx.manifest.list(fx.topic_id, 0).await.unwrap(), before);
        let with_orphans = fx.objects().await;
        // data, index, time index and the snapshot copy
        assert_eq!(with_orphans.len(), objects.len() + 4);
        // Young orphans stay; past the grace the sweep takes exactly them.
        let young = fx.remote.sweep_orphans(SystemTime::now()).await.unwrap();
        assert_eq!((young.deleted, young.young), (0, 4));
        let swept = fx
            .remote
            .sweep_orphans(SystemTime::now() + 2 * HOUR)
            .await
            .unwrap();
        assert_eq!(swept.deleted, 4);
        assert_eq!(fx.objects().await, objects);
        assert_eq!(fx.read_all().await.len(), 11);
    }

    #[tokio::test]
    async fn a_corrupt_chunk_stops_the_cleaning_before_anything_is_written() {
        let fx = tiered(&SEEDS, &[3, 3, 3, 2]).await;
        let segs = fx.manifest.list(fx.topic_id, 0).await.unwrap();
        let path = ObjectPath::from(segs[2].data_key.as_str());
        let mut data = fx
            .store
            .get(&path)
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
            .to_vec();
        data[100] ^= 1;
        fx.store.put(&path, data.into()).await.unwrap();
        let objects = fx.objects().await;
        let err = fx
            .remote
            .compact(&config(), &opts(NOW, true))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::CorruptObject { .. }), "{err}");
        assert_eq!(fx.manifest.list(fx.topic_id, 0).await.unwrap(), segs);
        assert_eq!(fx.objects().await, objects);
    }

    #[tokio::test]
    async fn an_abort_marker_past_the_cleanable_range_still_counts() {
        let fx = tiered(&[("key-0", Some("committed"))], &[1]).await;
        // producer 2's transactional write of key-0, its abort marker in the next segment
        fx.log
            .append(crate::testutil::producer_batch(2, 0, 0, 1, true), 1, 0)
            .unwrap();
        fx.log.roll_now().unwrap();
        fx.log
            .append_control(2, 0, crate::ControlType::Abort, 1, 1, 0)
            .unwrap();
        fx.log.roll_now().unwrap();
        for seg in fx.log.sealed_segments().unwrap().into_iter().skip(1) {
            fx.remote.upload(&seg, 1, 0).await.unwrap();
        }
        // Only the first two segments are cleanable; the marker is in the third.
        let stats = fx
            .remote
            .compact(
                &config(),
                &RemoteCleanOptions {
                    upper_bound: 2,
                    ..opts(NOW, true)
                },
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stats.clean.end, 2);
        let read = fx.read_all().await;
        assert_eq!(
            read[0],
            (0, "key-0".to_string(), Some("committed".to_string()))
        );
        assert!(
            read.iter().all(|r| r.0 != 1),
            "aborted data dropped: {read:?}"
        );
    }

    /// The object-store cost of a pass over a realistic shape: 200 keys each updated 10
    /// times (100-byte values), in 10 tiered segments; then 200 more updates and a second,
    /// incremental pass. Prints the numbers (`--nocapture`).
    #[tokio::test]
    async fn cost_per_byte_removed() {
        let keys: Vec<String> = (0..200).map(|k| format!("key-{k:04}")).collect();
        let value = "v".repeat(100);
        let mut recs: Vec<(&str, Option<&str>)> = Vec::new();
        for _ in 0..10 {
            for k in &keys {
                recs.push((k, Some(&value)));
            }
        }
        let fx = tiered(&recs, &[200; 10]).await;
        let cfg = LogConfig {
            segment_bytes: 256 << 10,
            ..config()
        };
        let s = fx
            .remote
            .compact(&cfg, &opts(NOW, false))
            .await
            .unwrap()
            .unwrap();
        assert_eq!((s.clean.records_read, s.clean.records_kept), (2000, 200));
        let per = |s: &RemoteCleanStats| {
            (s.clean.bytes_read + s.clean.bytes_written) as f64 / s.bytes_removed().max(1) as f64
        };
        println!(
            "pass 1: before={} after={} removed={} read={} written={} (read+written)/removed={:.2} \
             requests={} (gets={} puts={} copies={} deletes={}) segments {}->{}",
            s.clean.bytes_before,
            s.clean.bytes_after,
            s.bytes_removed(),
            s.clean.bytes_read,
            s.clean.bytes_written,
            per(&s),
            s.requests(),
            s.gets,
            s.puts,
            s.copies,
            s.deletes,
            s.clean.segments_before,
            s.clean.segments_after
        );
        assert!(per(&s) < 3.0, "{}", per(&s));
        // One more round of updates tiered as one more segment: an incremental pass
        // (dirty ratio about 1/2 of the now small log).
        let round: Vec<(&str, Option<&str>)> = keys
            .iter()
            .map(|k| (k.as_str(), Some(value.as_str())))
            .collect();
        fx.tier_more(&round).await;
        let s2 = fx
            .remote
            .compact(&cfg, &opts(NOW, false))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(s2.clean.records_kept, 200);
        println!(
            "pass 2 (incremental): before={} after={} removed={} read={} written={} ratio={:.2} \
             requests={} (gets={} puts={} copies={}) segments {}->{}",
            s2.clean.bytes_before,
            s2.clean.bytes_after,
            s2.bytes_removed(),
            s2.clean.bytes_read,
            s2.clean.bytes_written,
            per(&s2),
            s2.requests(),
            s2.gets,
            s2.puts,
            s2.copies,
            s2.clean.segments_before,
            s2.clean.segments_after
        );
        assert_eq!(fx.read_all().await.len(), 200);
    }
}
