//! Reading batches and timestamps back from tiered segments.
//!
//! A [`RemoteReader`] answers the two questions the hot log answers for local segments — "the
//! batches from offset `o`" ([`read`](RemoteReader::read)) and "the first offset at or after
//! time `t`" ([`offset_for_timestamp`](RemoteReader::offset_for_timestamp)) — for one
//! [`RemoteSegment`], with the same results byte for byte, since the objects are the local
//! files. It never downloads a whole segment: the offset and time index objects (small,
//! cached whole) locate the first batch, a walk of batch headers from there finds the exact
//! one, and only the data chunks covering the answer are read through the [`ChunkCache`],
//! each verified against the manifest's CRC-32.
//!
//! Memory per read is bounded by the answer (`max_bytes`, or one batch if that is larger) plus
//! a few chunks in flight. After each read the next chunks of the segment are prefetched in the
//! background (read-ahead, [`RemoteReader::with_read_ahead`]), so a consumer catching up
//! sequentially mostly finds its next chunk in memory. Reads are cancel-safe.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures::{StreamExt, TryStreamExt};
use kafka_protocol::records::RecordBatchDecoder;
use object_store::ObjectStore;
use tierlog_metadata::RemoteSegment;

use crate::batch::{BatchHeader, HEADER_SIZE, LOG_OVERHEAD};
use crate::remote::cache::{ChunkCache, chunk_count};
use crate::{Error, Result, TimestampOffset, TimestampType};

/// Chunks prefetched after each read unless configured otherwise.
pub const DEFAULT_READ_AHEAD: usize = 2;
/// Chunks one read fetches concurrently when its answer spans several.
const FETCH_PARALLELISM: usize = 4;
const OFFSET_ENTRY: usize = 8;
const TIME_ENTRY: usize = 12;

/// Reads tiered segments through a shared [`ChunkCache`]. Cheap to clone.
#[derive(Clone)]
pub struct RemoteReader {
    store: Arc<dyn ObjectStore>,
    cache: ChunkCache,
    /// Chunks to prefetch after each read (0 = none).
    read_ahead: usize,
}

impl std::fmt::Debug for RemoteReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteReader")
            .field("store", &self.store.to_string())
            .field("read_ahead", &self.read_ahead)
            .finish()
    }
}

impl RemoteReader {
    /// A reader of objects in `store`, caching through `cache`, with
    /// [`DEFAULT_READ_AHEAD`] chunks of read-ahead.
    pub fn new(store: Arc<dyn ObjectStore>, cache: ChunkCache) -> Self {
        RemoteReader {
            store,
            cache,
            read_ahead: DEFAULT_READ_AHEAD,
        }
    }

    /// Sets how many chunks past the last one served each read prefetches (0 disables
    /// read-ahead). More hides more object-store latency from a sequential consumer at the
    /// cost of cache space and GETs that a consumer who stops early never uses.
    pub fn with_read_ahead(mut self, chunks: usize) -> Self {
        self.read_ahead = chunks;
        self
    }

    /// The cache reads go through.
    pub fn cache(&self) -> &ChunkCache {
        &self.cache
    }

    /// The object store reads go to.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// Whole batches of `seg`, starting with the batch that contains `offset`
    /// (`seg.contains(offset)`, else [`Error::OffsetOutOfRange`] with the segment's bounds), up
    /// to `max_bytes` but always at least one whole batch (KIP-74), never past the segment:
    /// exactly what the hot log's `read` returned for this segment. Locates the start through
    /// the segment's offset index object (cached; not needed at the base offset, which is at
    /// byte 0), then reads only the needed chunks. After
    /// serving chunk `i`, chunks `i+1..` (see [`with_read_ahead`](Self::with_read_ahead)) are
    /// prefetched into the cache in the background (spawned, not awaited, errors ignored).
    ///
    /// Empty when every batch of the segment ends below `offset` (a compacted segment has
    /// holes; the caller reads on from `seg.end_offset`). Corrupt or short objects (or a
    /// manifest inconsistent with them) are
    /// [`Error::CorruptObject`]; an unreachable or missing object is [`Error::ObjectStore`].
    pub async fn read(&self, seg: &RemoteSegment, offset: i64, max_bytes: usize) -> Result<Bytes> {
        if !seg.contains(offset) {
            return Err(Error::OffsetOutOfRange {
                offset,
                start: seg.base_offset,
                end: seg.end_offset,
            });
        }
        let mut data = SegmentData::new(self, seg)?;
        // A consumer catching up enters each segment at its base offset, which is at byte 0:
        // no index needed, so a cold segment answers after a single GET.
        let mut pos = if offset == seg.base_offset {
            0
        } else {
            self.offset_position(seg, offset).await?
        };
        let first = loop {
            if pos >= seg.size_bytes {
                // Every batch ends below `offset`: a compacted segment whose last offsets
                // were cleaned away. The caller goes on at the next segment.
                return Ok(Bytes::new());
            }
            let h = data.header(pos).await?;
            if h.last_offset() >= offset {
                break h;
            }
            pos += h.size();
        };
        let want = (max_bytes as u64)
            .max(first.size())
            .min(seg.size_bytes - pos);
        let buf = data.range(pos, want).await?;
        // Whole batches only (the same cut as the hot log's).
        let mut cut = 0usize;
        while buf.len() - cut >= HEADER_SIZE {
            let h = BatchHeader::parse(&buf[cut..])
                .map_err(|e| data.corrupt(format!("at byte {}: {e}", pos + cut as u64)))?;
            let next = cut as u64 + h.size();
            if next > buf.len() as u64 || h.batch_length <= 0 {
                break;
            }
            cut = next as usize;
        }
        self.prefetch_after(&data, pos + cut as u64);
        Ok(buf.slice(..cut))
    }

    /// First offset in `seg` whose record timestamp is `>= ts` (Kafka ListOffsets semantics),
    /// with that timestamp; `None` if no record of this segment reaches `ts`. Same steps (and
    /// answers) as the hot log: the time index object gives the first offset that may qualify,
    /// the offset index its position, a header walk the first batch whose max timestamp
    /// reaches `ts`, and (CreateTime) its records the exact one. LogAppendTime batches answer
    /// their first offset. A compressed batch's `maxTimestamp` is trusted, as on the hot tier.
    pub async fn offset_for_timestamp(
        &self,
        seg: &RemoteSegment,
        ts: i64,
    ) -> Result<Option<TimestampOffset>> {
        if seg.max_timestamp < ts || seg.size_bytes == 0 {
            return Ok(None);
        }
        let start = self.time_lookup(seg, ts).await?;
        let mut pos = self.offset_position(seg, start).await?;
        let mut data = SegmentData::new(self, seg)?;
        while pos < seg.size_bytes {
            let h = data.header(pos).await?;
            if h.max_timestamp >= ts {
                if h.timestamp_type() == TimestampType::LogAppendTime {
                    return Ok(Some(TimestampOffset {
                        offset: h.base_offset,
                        timestamp: h.max_timestamp,
                    }));
                }
                let mut bytes = data.range(pos, h.size()).await?;
                let set = RecordBatchDecoder::decode(&mut bytes)
                    .map_err(|e| data.corrupt(format!("cannot decode batch at byte {pos}: {e}")))?;
                if let Some(r) = set.records.iter().find(|r| r.timestamp >= ts) {
                    return Ok(Some(TimestampOffset {
                        offset: r.offset,
                        timestamp: r.timestamp,
                    }));
                }
            }
            pos += h.size();
        }
        Ok(None)
    }

    /// Position of the last indexed batch whose base offset is `<= offset` (0 when none), from
    /// the offset index object: 8-byte entries (relative offset u32, position u32), searched
    /// in place.
    async fn offset_position(&self, seg: &RemoteSegment, offset: i64) -> Result<u64> {
        let index = self
            .cache
            .whole(&self.store, &seg.index_key, seg.index_crc)
            .await?;
        if !index.len().is_multiple_of(OFFSET_ENTRY) {
            return Err(Error::CorruptObject {
                key: seg.index_key.clone(),
                reason: format!(
                    "offset index of {} bytes is not made of {OFFSET_ENTRY}-byte entries",
                    index.len()
                ),
            });
        }
        if offset < seg.base_offset {
            return Ok(0);
        }
        let rel = (offset - seg.base_offset).clamp(0, i64::from(u32::MAX)) as u32;
        let entry = |i: usize| {
            let e = &index[i * OFFSET_ENTRY..(i + 1) * OFFSET_ENTRY];
            (
                u32::from_be_bytes([e[0], e[1], e[2], e[3]]),
                u32::from_be_bytes([e[4], e[5], e[6], e[7]]),
            )
        };
        let i = partition_point(index.len() / OFFSET_ENTRY, |i| entry(i).0 <= rel);
        let pos = if i == 0 { 0 } else { u64::from(entry(i - 1).1) };
        if pos > 0 && pos >= seg.size_bytes {
            return Err(Error::CorruptObject {
                key: seg.index_key.clone(),
                reason: format!(
                    "entry points at byte {pos}, past the {} bytes of batches",
                    seg.size_bytes
                ),
            });
        }
        Ok(pos)
    }

    /// First offset that may hold a record with timestamp `>= ts`, from the time index object:
    /// 12-byte entries (timestamp i64, relative offset u32); one past the last entry whose
    /// timestamp is `< ts`, or the segment base.
    async fn time_lookup(&self, seg: &RemoteSegment, ts: i64) -> Result<i64> {
        let index = self
            .cache
            .whole(&self.store, &seg.time_index_key, seg.time_index_crc)
            .await?;
        if !index.len().is_multiple_of(TIME_ENTRY) {
            return Err(Error::CorruptObject {
                key: seg.time_index_key.clone(),
                reason: format!(
                    "time index of {} bytes is not made of {TIME_ENTRY}-byte entries",
                    index.len()
                ),
            });
        }
        let entry = |i: usize| {
            let e = &index[i * TIME_ENTRY..(i + 1) * TIME_ENTRY];
            let mut t = [0u8; 8];
            t.copy_from_slice(&e[..8]);
            (
                i64::from_be_bytes(t),
                u32::from_be_bytes([e[8], e[9], e[10], e[11]]),
            )
        };
        let i = partition_point(index.len() / TIME_ENTRY, |i| entry(i).0 < ts);
        Ok(if i == 0 {
            seg.base_offset
        } else {
            seg.base_offset + i64::from(entry(i - 1).1) + 1
        })
    }

    /// Read-ahead: after a read that ended at byte `next_pos`, prefetch the chunks after the
    /// last one it touched, unless they are in memory already.
    fn prefetch_after(&self, data: &SegmentData<'_>, next_pos: u64) {
        if self.read_ahead == 0 || next_pos == 0 {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let seg = data.seg;
        let last_served = (next_pos - 1) / data.chunk_size;
        let chunks = chunk_count(seg.size_bytes, seg.chunk_size);
        let until = last_served
            .saturating_add(self.read_ahead as u64)
            .min(chunks.saturating_sub(1));
        for i in last_served + 1..=until {
            if self.cache.in_memory(&data.key, i) {
                continue;
            }
            let Some(&crc) = seg.chunk_crcs.get(i as usize) else {
                return;
            };
            let (cache, store, key) = (self.cache.clone(), self.store.clone(), data.key.clone());
            let (size, chunk_size) = (seg.size_bytes, seg.chunk_size);
            // Not awaited: a failure is logged and counted by the fetch, and the consumer
            // meets it again (as an error) only if it reads that far.
            runtime.spawn(async move {
                let _ = cache.chunk_of(&store, &key, size, chunk_size, i, crc).await;
            });
        }
    }
}

/// The first `i` in `0..n` for which `pred(i)` is false (`pred` true then false over `0..n`).
fn partition_point(n: usize, pred: impl Fn(usize) -> bool) -> usize {
    let (mut lo, mut hi) = (0, n);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if pred(mid) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo
}

/// The data object of one segment, read through the cache chunk by chunk.
struct SegmentData<'a> {
    reader: &'a RemoteReader,
    seg: &'a RemoteSegment,
    key: Arc<str>,
    chunk_size: u64,
    /// The chunk used last: header walks stay inside one chunk most of the time.
    last: Option<(u64, Bytes)>,
}

impl<'a> SegmentData<'a> {
    /// Checks that the manifest's chunk layout covers the object.
    fn new(reader: &'a RemoteReader, seg: &'a RemoteSegment) -> Result<Self> {
        let expected = chunk_count(seg.size_bytes, seg.chunk_size);
        if seg.chunk_size == 0 || seg.chunk_crcs.len() as u64 != expected {
            return Err(Error::CorruptObject {
                key: seg.data_key.clone(),
                reason: format!(
                    "manifest lists {} chunk checksums for {} bytes in chunks of {} bytes",
                    seg.chunk_crcs.len(),
                    seg.size_bytes,
                    seg.chunk_size
                ),
            });
        }
        Ok(SegmentData {
            reader,
            seg,
            key: Arc::from(seg.data_key.as_str()),
            chunk_size: u64::from(seg.chunk_size),
            last: None,
        })
    }

    fn corrupt(&self, reason: String) -> Error {
        Error::CorruptObject {
            key: self.seg.data_key.clone(),
            reason,
        }
    }

    async fn chunk(&mut self, i: u64) -> Result<Bytes> {
        if let Some((j, b)) = &self.last
            && *j == i
        {
            return Ok(b.clone());
        }
        let b = self.fetch(i).await?;
        self.last = Some((i, b.clone()));
        Ok(b)
    }

    fn fetch(&self, i: u64) -> impl Future<Output = Result<Bytes>> + use<'a> {
        let (r, seg, key) = (self.reader, self.seg, self.key.clone());
        async move {
            let crc = *seg
                .chunk_crcs
                .get(i as usize)
                .ok_or_else(|| Error::Internal {
                    reason: format!("chunk {i} of `{}` has no checksum", seg.data_key),
                })?;
            r.cache
                .chunk_of(&r.store, &key, seg.size_bytes, seg.chunk_size, i, crc)
                .await
        }
    }

    /// Bytes `[pos, pos + len)` of the object; the caller keeps them inside it. A slice of the
    /// cached chunk when they lie in one chunk; assembled (fetching up to
    /// [`FETCH_PARALLELISM`] chunks at once) otherwise.
    async fn range(&mut self, pos: u64, len: u64) -> Result<Bytes> {
        if len == 0 {
            return Ok(Bytes::new());
        }
        let end = pos + len;
        if end > self.seg.size_bytes {
            return Err(self.corrupt(format!(
                "bytes {pos}..{end} run past the {} bytes of batches",
                self.seg.size_bytes
            )));
        }
        let cs = self.chunk_size;
        let (first, last) = (pos / cs, (end - 1) / cs);
        if first == last {
            let c = self.chunk(first).await?;
            let from = (pos - first * cs) as usize;
            return c
                .get(from..from + len as usize)
                .map(|_| c.slice(from..from + len as usize))
                .ok_or_else(|| self.corrupt(format!("chunk {first} is {} bytes", c.len())));
        }
        let mut out = BytesMut::with_capacity(len as usize);
        let mut tail = None;
        {
            let mut chunks = futures::stream::iter(first..=last)
                .map(|i| {
                    let f = self.fetch(i);
                    async move { f.await.map(|b| (i, b)) }
                })
                .buffered(FETCH_PARALLELISM);
            while let Some((i, c)) = chunks.try_next().await? {
                let c_start = i * cs;
                let from = pos.max(c_start) - c_start;
                let to = end.min(c_start + cs) - c_start;
                let piece =
                    c.get(from as usize..to as usize)
                        .ok_or_else(|| Error::CorruptObject {
                            key: self.seg.data_key.clone(),
                            reason: format!("chunk {i} is {} bytes", c.len()),
                        })?;
                out.extend_from_slice(piece);
                tail = Some((i, c));
            }
        }
        if tail.is_some() {
            self.last = tail;
        }
        Ok(out.freeze())
    }

    /// The header of the batch at `pos`, checked to be framed within the object (the hot
    /// log's checks).
    async fn header(&mut self, pos: u64) -> Result<BatchHeader> {
        let left = self.seg.size_bytes.saturating_sub(pos);
        if left < HEADER_SIZE as u64 {
            return Err(self.corrupt(format!(
                "truncated batch header at byte {pos}: {left} bytes left, need {HEADER_SIZE}"
            )));
        }
        let b = self.range(pos, HEADER_SIZE as u64).await?;
        let h = BatchHeader::parse(&b).map_err(|e| self.corrupt(format!("at byte {pos}: {e}")))?;
        let problem = if h.batch_length < (HEADER_SIZE - LOG_OVERHEAD) as i32 {
            Some(format!("batchLength {} too small", h.batch_length))
        } else if h.size() > left {
            Some(format!(
                "truncated batch: batchLength {} needs {} bytes, {left} left",
                h.batch_length,
                h.size()
            ))
        } else if h.magic != 2 {
            Some(format!("magic {} is not 2", h.magic))
        } else if h.last_offset_delta < 0 {
            Some(format!("negative lastOffsetDelta {}", h.last_offset_delta))
        } else {
            None
        };
        match problem {
            Some(p) => Err(self.corrupt(format!("batch at byte {pos}: {p}"))),
            None => Ok(h),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::path::Path as FsPath;
    use std::time::Duration;

    use kafka_protocol::records::Compression;
    use object_store::memory::InMemory;
    use object_store::path::Path;
    use object_store::{ObjectStoreExt, PutPayload};

    use super::*;
    use crate::remote::cache::CacheConfig;
    use crate::remote::cache::tests::CountingStore;
    use crate::testutil::{self, Spec};
    use crate::{ErrorKind, LogConfig, PartitionLog};

    const CHUNK: u32 = 4096;

    /// A closed-and-reopened log of a few ~32 KiB segments: small and large (multi-chunk)
    /// batches, compressed ones, and batches with out-of-order create times.
    fn build_log(dir: &FsPath) -> PartitionLog {
        let config = LogConfig {
            segment_bytes: 32 * 1024,
            segment_ms: None,
            retention_ms: None,
            retention_bytes: None,
            index_interval_bytes: 512,
            ..LogConfig::default()
        };
        let log = PartitionLog::open(dir, config.clone()).unwrap();
        let mut ts = 1_000_000i64;
        for i in 0..240usize {
            let batch = if i % 29 == 3 {
                testutil::batch(Spec {
                    records: 20,
                    value_len: 300,
                    first_ts: ts,
                    ..Spec::default()
                })
            } else if i % 7 == 0 {
                testutil::batch(Spec {
                    records: 10,
                    value_len: 50,
                    first_ts: ts,
                    compression: Compression::Gzip,
                    ..Spec::default()
                })
            } else if i % 5 == 0 {
                let times = [ts + 30, ts - 20, ts + 5, ts + 31, ts];
                let spec = Spec {
                    records: times.len(),
                    ..Spec::default()
                };
                testutil::encode(&testutil::records_of(spec, Some(&times)), Compression::None)
            } else {
                testutil::batch(Spec {
                    records: 1 + i % 9,
                    value_len: 40 + (i * 7) % 120,
                    first_ts: ts,
                    ..Spec::default()
                })
            };
            log.append(batch, 0, ts).unwrap();
            ts += 25;
        }
        log.close().unwrap();
        drop(log);
        PartitionLog::open(dir, config).unwrap()
    }

    /// Puts every segment's three files into `store` (under `seg/<name>`) and describes them
    /// as the uploader would.
    async fn tier(dir: &FsPath, store: &Arc<dyn ObjectStore>, log_end: i64) -> Vec<RemoteSegment> {
        let mut bases: Vec<i64> = std::fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| {
                let name = e.unwrap().file_name().into_string().unwrap();
                name.strip_suffix(".log").map(|s| s.parse().unwrap())
            })
            .collect();
        bases.sort_unstable();
        let mut segs = Vec::new();
        for (i, &base) in bases.iter().enumerate() {
            let read =
                |suffix: &str| std::fs::read(dir.join(format!("{base:020}.{suffix}"))).unwrap();
            let (data, index, time_index) = (read("log"), read("index"), read("timeindex"));
            if data.is_empty() {
                continue;
            }
            let mut max_timestamp = i64::MIN;
            let mut first_timestamp = None;
            let mut rest = &data[..];
            while !rest.is_empty() {
                let h = BatchHeader::parse(rest).unwrap();
                first_timestamp.get_or_insert(h.first_timestamp);
                max_timestamp = max_timestamp.max(h.max_timestamp);
                rest = &rest[h.size() as usize..];
            }
            let key = |suffix: &str| format!("seg/{base:020}.{suffix}");
            for (k, bytes) in [
                (key("log"), &data),
                (key("index"), &index),
                (key("timeindex"), &time_index),
            ] {
                store
                    .put(&Path::from(k), PutPayload::from(bytes.clone()))
                    .await
                    .unwrap();
            }
            segs.push(RemoteSegment {
                base_offset: base,
                end_offset: bases.get(i + 1).copied().unwrap_or(log_end),
                size_bytes: data.len() as u64,
                first_timestamp: first_timestamp.unwrap(),
                max_timestamp,
                leader_epoch: 0,
                data_key: key("log"),
                index_key: key("index"),
                time_index_key: key("timeindex"),
                chunk_size: CHUNK,
                chunk_crcs: data.chunks(CHUNK as usize).map(crc32fast::hash).collect(),
                index_crc: crc32fast::hash(&index),
                time_index_crc: crc32fast::hash(&time_index),
                uploaded_ms: 0,
            });
        }
        segs
    }

    struct Fixture {
        _dir: tempfile::TempDir,
        log: PartitionLog,
        segs: Vec<RemoteSegment>,
        mem: Arc<dyn ObjectStore>,
        counting: Arc<CountingStore>,
    }

    async fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let log = build_log(dir.path());
        let mem: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let segs = tier(dir.path(), &mem, log.log_end_offset()).await;
        assert!(segs.len() >= 4, "want several segments, got {}", segs.len());
        assert!(segs.iter().all(|s| s.chunk_crcs.len() >= 3));
        let counting = CountingStore::new(mem.clone(), Duration::ZERO);
        Fixture {
            _dir: dir,
            log,
            segs,
            mem,
            counting,
        }
    }

    impl Fixture {
        async fn reader(&self) -> RemoteReader {
            let cache = ChunkCache::new(&CacheConfig {
                memory_bytes: 64 << 20,
                ..CacheConfig::default()
            })
            .await
            .unwrap();
            RemoteReader::new(self.counting.clone(), cache)
        }

        fn seg_of(&self, offset: i64) -> &RemoteSegment {
            self.segs.iter().find(|s| s.contains(offset)).unwrap()
        }
    }

    #[tokio::test]
    async fn read_at_every_offset_matches_the_hot_log() {
        let f = fixture().await;
        let reader = f.reader().await;
        let end = f.log.log_end_offset();
        assert_eq!(f.segs.last().unwrap().end_offset, end);
        for max_bytes in [0usize, 1, 700, 5_000, 1 << 20] {
            for offset in 0..end {
                let hot = f.log.read(offset, max_bytes).unwrap().records;
                let remote = reader
                    .read(f.seg_of(offset), offset, max_bytes)
                    .await
                    .unwrap();
                assert_eq!(remote, hot, "offset {offset}, max_bytes {max_bytes}");
                // max_bytes bounds the answer unless one batch is larger (KIP-74).
                let batches = testutil::split(&remote);
                assert!(!batches.is_empty());
                let first = batches[0].2.len();
                assert!(remote.len() <= max_bytes.max(first), "offset {offset}");
                let (base, count, _) = &batches[0];
                assert!(*base <= offset && offset < base + i64::from(*count));
            }
        }
        assert_eq!(reader.cache().stats().errors, 0);
        let e = reader
            .read(&f.segs[1], f.segs[0].base_offset, 100)
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::OffsetOutOfRange);
    }

    #[tokio::test]
    async fn offset_for_timestamp_matches_the_hot_log() {
        let f = fixture().await;
        let reader = f.reader().await;
        let lo = f.segs.iter().map(|s| s.first_timestamp).min().unwrap() - 50;
        let hi = f.segs.iter().map(|s| s.max_timestamp).max().unwrap() + 5;
        let mut found = 0;
        for ts in (lo..=hi).step_by(3) {
            let hot = f.log.offset_for_timestamp(ts).unwrap();
            let mut remote = None;
            for seg in &f.segs {
                if let Some(r) = reader.offset_for_timestamp(seg, ts).await.unwrap() {
                    remote = Some(r);
                    break;
                }
            }
            assert_eq!(remote, hot, "ts {ts}");
            found += usize::from(hot.is_some());
        }
        assert!(found > 100);
    }

    /// Position and header of every batch of a data object.
    fn batches(data: &[u8]) -> Vec<(u64, BatchHeader)> {
        let mut out = Vec::new();
        let mut pos = 0usize;
        while pos < data.len() {
            let h = BatchHeader::parse(&data[pos..]).unwrap();
            out.push((pos as u64, h));
            pos += h.size() as usize;
        }
        out
    }

    #[tokio::test]
    async fn a_flipped_byte_is_an_error_until_the_object_is_repaired() {
        let f = fixture().await;
        let reader = f.reader().await.with_read_ahead(0);
        let seg = &f.segs[1];
        let path = Path::from(seg.data_key.as_str());
        let good = f.mem.get(&path).await.unwrap().bytes().await.unwrap();
        // Corrupt the first batch that starts in chunk 1 and read from it.
        let (pos, h) = batches(&good)
            .into_iter()
            .find(|(pos, _)| *pos / u64::from(CHUNK) == 1)
            .unwrap();
        let offset = h.base_offset;
        let mut bad = good.to_vec();
        bad[pos as usize + 1] ^= 0x01;
        f.mem.put(&path, PutPayload::from(bad)).await.unwrap();
        let e = reader.read(seg, offset, 100).await.unwrap_err();
        assert!(
            matches!(&e, Error::CorruptObject { key, .. } if *key == seg.data_key),
            "{e}"
        );
        assert_eq!(e.kind(), ErrorKind::Data);
        assert_eq!(reader.cache().stats().errors, 1);
        // Again: still an error, fetched again (nothing corrupt was cached).
        let gets = f.counting.gets();
        assert!(reader.read(seg, offset, 100).await.is_err());
        assert_eq!(f.counting.gets(), gets + 1);

        f.mem.put(&path, PutPayload::from(good)).await.unwrap();
        assert_eq!(
            reader.read(seg, offset, 100).await.unwrap(),
            f.log.read(offset, 100).unwrap().records
        );

        // A corrupt index object is caught too.
        let ipath = Path::from(f.segs[2].index_key.as_str());
        let mut index = f
            .mem
            .get(&ipath)
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
            .to_vec();
        index[5] ^= 0x80;
        f.mem.put(&ipath, PutPayload::from(index)).await.unwrap();
        // (Not at the base offset, which is read without the index.)
        let e = reader
            .read(&f.segs[2], f.segs[2].base_offset + 1, 100)
            .await
            .unwrap_err();
        assert!(
            matches!(&e, Error::CorruptObject { key, .. } if *key == f.segs[2].index_key),
            "{e}"
        );
    }

    #[tokio::test]
    async fn missing_objects_are_object_store_errors() {
        let f = fixture().await;
        let reader = f.reader().await;
        let seg = &f.segs[0];
        f.mem
            .delete(&Path::from(seg.data_key.as_str()))
            .await
            .unwrap();
        let e = reader.read(seg, seg.base_offset, 100).await.unwrap_err();
        assert!(
            matches!(&e, Error::ObjectStore { key, .. } if *key == seg.data_key),
            "{e}"
        );
        assert_eq!(e.kind(), ErrorKind::Data);
        let seg = &f.segs[1];
        f.mem
            .delete(&Path::from(seg.time_index_key.as_str()))
            .await
            .unwrap();
        let e = reader
            .offset_for_timestamp(seg, seg.first_timestamp)
            .await
            .unwrap_err();
        assert!(
            matches!(&e, Error::ObjectStore { key, .. } if *key == seg.time_index_key),
            "{e}"
        );
        // A manifest whose checksums do not cover the object.
        let mut broken = f.segs[2].clone();
        broken.chunk_crcs.pop();
        let e = reader
            .read(&broken, broken.base_offset, 100)
            .await
            .unwrap_err();
        assert!(matches!(e, Error::CorruptObject { .. }), "{e}");
    }

    #[tokio::test]
    async fn second_read_hits_and_read_ahead_prefetches_the_next_chunks() {
        let f = fixture().await;
        let reader = f.reader().await;
        let seg = &f.segs[0];
        let good = f
            .mem
            .get(&Path::from(seg.data_key.as_str()))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let all = batches(&good);
        let chunks = seg.chunk_crcs.len() as u64;
        let first = reader.read(seg, seg.base_offset, 100).await.unwrap();
        // The chunks of the first batch (no index needed at the base offset), then two more in
        // the background.
        let last_served = (first.len() as u64 - 1) / u64::from(CHUNK);
        let prefetched = 2.min(chunks - 1 - last_served);
        assert!(prefetched > 0);
        let want = last_served + 1 + prefetched;
        let mut waited = 0;
        while f.counting.gets() < want && waited < 200 {
            tokio::time::sleep(Duration::from_millis(10)).await;
            waited += 1;
        }
        assert_eq!(f.counting.gets(), want);
        let before = reader.cache().stats();
        assert_eq!(reader.read(seg, seg.base_offset, 100).await.unwrap(), first);
        let after = reader.cache().stats();
        assert_eq!(after.misses, before.misses);
        assert!(after.hits > before.hits);
        assert_eq!(f.counting.gets(), want);
        // A batch lying wholly in the prefetched chunks is read without a GET.
        let (_, h) = all
            .iter()
            .find(|(pos, h)| {
                let (a, b) = (
                    pos / u64::from(CHUNK),
                    (pos + h.size() - 1) / u64::from(CHUNK),
                );
                a > last_served && b <= last_served + prefetched
            })
            .unwrap();
        let no_read_ahead =
            RemoteReader::new(f.counting.clone(), reader.cache().clone()).with_read_ahead(0);
        no_read_ahead.read(seg, h.base_offset, 0).await.unwrap();
        assert_eq!(
            f.counting.gets(),
            want + 1,
            "only the offset index was fetched"
        );
    }
}
