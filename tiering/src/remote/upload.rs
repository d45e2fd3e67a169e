//! Uploading a sealed segment and recording it in the manifest.
//!
//! # Lifecycle of one upload
//!
//! 1. A fresh upload id names new keys ([`super::layout::segment_keys`]).
//! 2. The three files are streamed to them concurrently, `chunk_size` bytes at a time, computing
//!    the CRC-32 of each data chunk and of each index file on the way, together with the
//!    segment's transaction index and the producer snapshot at its end when it has them (not
//!    checksummed by the manifest: found by key, see [`super::layout`]). Objects up to
//!    [`UploadOptions::multipart_threshold`] go up in one create-only put
//!    (`PutMode::Create`: `If-None-Match: *` on S3); bigger data objects as a multipart upload,
//!    which cannot be conditional but needs not be: the key is unique to this attempt.
//! 3. Only when all of them are durable is the [`RemoteSegment`] recorded in the manifest, with a
//!    create-only write keyed by base offset. From then on the segment is tiered.
//!
//! Failure anywhere before step 3 leaves only unreferenced objects of this attempt, which are
//! deleted on a best-effort basis; the caller retries later with a new upload id. If the
//! manifest write fails ambiguously (a timeout: it may have been applied), the objects are
//! left alone — they may be referenced — and the retry finds the entry (reported as already
//! tiered). If another upload already recorded this base offset, this attempt's objects are
//! deleted and the outcome says so ([`UploadOutcome::AlreadyTiered`]).
//!
//! Not cancel-safe in the sense that dropping the future midway may leave orphan objects (never
//! a manifest entry without its objects); run it in its own task.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{
    ObjectStore, ObjectStoreExt, PutMode, PutMultipartOptions, PutOptions, PutPayload,
    WriteMultipart,
};
use tierlog_metadata::RemoteSegment;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tracing::{debug, info, warn};
use uuid::Uuid;

use super::layout::{SegmentKeys, segment_keys};
use super::partition::RemotePartition;
use crate::batch::BatchStream;
use crate::error::{Error, Result};
pub use crate::log::{SealedSegment, SegmentSuffix};

/// Data objects larger than this go up as multipart uploads.
pub const MULTIPART_THRESHOLD: u64 = 64 << 20;
/// Part size of multipart uploads (S3 needs at least 5 MiB for every part but the last).
pub const PART_SIZE: usize = 16 << 20;
/// Multipart parts in flight at once: bounds memory to about `PART_SIZE * (this + 1)`.
const PARTS_IN_FLIGHT: usize = 4;

/// Tuning of uploads ([`RemoteOptions::upload`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadOptions {
    /// Data objects larger than this are uploaded in parts.
    pub multipart_threshold: u64,
    /// Size of each part (the last may be shorter).
    pub part_size: usize,
}

impl Default for UploadOptions {
    fn default() -> Self {
        UploadOptions {
            multipart_threshold: MULTIPART_THRESHOLD,
            part_size: PART_SIZE,
        }
    }
}

/// What [`RemotePartition::upload_outcome`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum UploadOutcome {
    /// This upload recorded the segment.
    Uploaded(RemoteSegment),
    /// The manifest already had a segment at this base offset (another upload won, or an
    /// earlier attempt whose reply was lost); this attempt's objects were deleted. `existing`
    /// is that entry, when it could be read back.
    AlreadyTiered {
        /// The recorded entry at the same base offset.
        existing: Option<RemoteSegment>,
    },
}

/// Whether `e` is [`RemotePartition::upload`]'s "another segment is already recorded at this base
/// offset and it does not cover this one" error.
pub fn is_already_tiered(e: &Error) -> bool {
    matches!(e, Error::Manifest(m) if m.kind() == tierlog_metadata::ErrorKind::AlreadyExists)
}

impl RemotePartition {
    /// Uploads a sealed segment's three files with create-only puts (multipart for data
    /// objects above [`UploadOptions::multipart_threshold`]), computes the CRC-32 of each
    /// [`chunk_size`](super::partition::RemoteOptions::chunk_size) chunk of the data and of
    /// each index file, then records the [`RemoteSegment`] in the manifest (create-only).
    /// Returns what was recorded.
    ///
    /// If the manifest already holds a segment at this base offset that covers this one
    /// (`end_offset` at least as far), that entry is returned as success. If it holds one that
    /// does not, the error is the manifest's `AlreadyExists` ([`is_already_tiered`] tells it
    /// apart). Other errors are [`Error::ObjectStore`]/[`Error::Manifest`] (retry later) or
    /// [`Error::Io`] (the local files went away, e.g. deleted by DeleteRecords).
    pub async fn upload(
        &self,
        segment: &SealedSegment,
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<RemoteSegment> {
        let outcome = self.upload_outcome(segment, leader_epoch, now_ms).await?;
        recorded_or_conflict(outcome, segment, self.partition)
    }

    /// Like [`upload`](Self::upload), for the tail of a sealed segment
    /// ([`crate::PartitionLog::sealed_suffix`]): the data object is the local file from
    /// `suffix.data_start` on, the index objects are the freshly built
    /// `suffix.index`/`suffix.time_index`. Use it when the tiered end falls inside a local
    /// segment, so the remote tier continues without a hole or an overlap.
    pub async fn upload_suffix(
        &self,
        suffix: &SegmentSuffix,
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<RemoteSegment> {
        let src = Source {
            segment: &suffix.segment,
            data_start: suffix.data_start,
            index: IndexSource::Bytes(&suffix.index),
            time_index: IndexSource::Bytes(&suffix.time_index),
            txn_index: suffix.txn_index.as_deref().map(IndexSource::Bytes),
            producer_snapshot: suffix
                .segment
                .producer_snapshot_path
                .as_deref()
                .map(IndexSource::File),
        };
        let outcome = upload_source(self, src, leader_epoch, now_ms).await?;
        recorded_or_conflict(outcome, &suffix.segment, self.partition)
    }

    /// [`upload`](Self::upload), reporting whether this upload recorded the segment or found
    /// it already tiered.
    pub async fn upload_outcome(
        &self,
        segment: &SealedSegment,
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<UploadOutcome> {
        let src = Source {
            segment,
            data_start: 0,
            index: IndexSource::File(&segment.index_path),
            time_index: IndexSource::File(&segment.time_index_path),
            txn_index: segment.txn_index_path.as_deref().map(IndexSource::File),
            producer_snapshot: segment
                .producer_snapshot_path
                .as_deref()
                .map(IndexSource::File),
        };
        upload_source(self, src, leader_epoch, now_ms).await
    }
}

/// [`RemotePartition::upload`]'s reading of an [`UploadOutcome`].
fn recorded_or_conflict(
    outcome: UploadOutcome,
    segment: &SealedSegment,
    partition: i32,
) -> Result<RemoteSegment> {
    match outcome {
        UploadOutcome::Uploaded(r) => Ok(r),
        UploadOutcome::AlreadyTiered {
            existing: Some(existing),
        } if existing.end_offset >= segment.end_offset => Ok(existing),
        UploadOutcome::AlreadyTiered { existing } => Err(Error::Manifest(
            tierlog_metadata::Error::already_exists(format!(
                "tiered segment at base offset {} of partition {partition} ({})",
                segment.base_offset,
                match existing {
                    Some(e) => format!(
                        "recorded range {}..{} does not cover {}..{}",
                        e.base_offset, e.end_offset, segment.base_offset, segment.end_offset
                    ),
                    None => "entry vanished since".to_string(),
                }
            )),
        )),
    }
}

/// What to upload: `segment.size_bytes` bytes of `segment.log_path` from `data_start`, the
/// two indexes, and the optional transaction index and producer snapshot.
struct Source<'a> {
    segment: &'a SealedSegment,
    data_start: u64,
    index: IndexSource<'a>,
    time_index: IndexSource<'a>,
    txn_index: Option<IndexSource<'a>>,
    producer_snapshot: Option<IndexSource<'a>>,
}

enum IndexSource<'a> {
    File(&'a Path),
    Bytes(&'a [u8]),
}

async fn upload_source(
    part: &RemotePartition,
    src: Source<'_>,
    leader_epoch: i32,
    now_ms: i64,
) -> Result<UploadOutcome> {
    let RemotePartition {
        store,
        manifest,
        topic,
        topic_id,
        partition,
        options,
        ..
    } = part;
    let (topic, topic_id, partition) = (topic.as_str(), *topic_id, *partition);
    let (chunk_size, opts) = (options.chunk_size, options.upload);
    let segment = src.segment;
    if chunk_size == 0 || opts.part_size == 0 {
        return Err(Error::InvalidConfig {
            reason: format!(
                "chunk_size={chunk_size} and part_size={} must be positive",
                opts.part_size
            ),
        });
    }
    let upload_id = Uuid::new_v4();
    let keys = segment_keys(
        topic,
        topic_id,
        partition,
        segment.base_offset,
        leader_epoch,
        upload_id,
    );
    debug!(
        topic, partition, base_offset = segment.base_offset, key = %keys.data,
        size = segment.size_bytes, "uploading segment"
    );
    let uploaded = futures::try_join!(
        upload_data(
            store,
            &keys.data,
            &segment.log_path,
            src.data_start,
            segment.size_bytes,
            chunk_size,
            opts
        ),
        upload_small(store, &keys.index, &src.index),
        upload_small(store, &keys.time_index, &src.time_index),
        upload_optional(store, &keys.txn_index, src.txn_index.as_ref()),
        upload_optional(
            store,
            &keys.producer_snapshot,
            src.producer_snapshot.as_ref()
        ),
    );
    let (chunk_crcs, index_crc, time_index_crc, (), ()) = match uploaded {
        Ok(v) => v,
        Err(e) => {
            // Nothing references these objects yet.
            delete_objects(store, &keys).await;
            return Err(e);
        }
    };
    let remote = RemoteSegment {
        base_offset: segment.base_offset,
        end_offset: segment.end_offset,
        size_bytes: segment.size_bytes,
        first_timestamp: segment.first_timestamp,
        max_timestamp: segment.max_timestamp,
        leader_epoch,
        data_key: keys.data.clone(),
        index_key: keys.index.clone(),
        time_index_key: keys.time_index.clone(),
        chunk_size,
        chunk_crcs,
        index_crc,
        time_index_crc,
        uploaded_ms: now_ms,
    };
    match manifest.record(topic_id, partition, &remote).await {
        Ok(()) => {
            info!(
                topic, partition, base_offset = remote.base_offset, end_offset = remote.end_offset,
                bytes = remote.size_bytes, key = %remote.data_key, "segment tiered"
            );
            Ok(UploadOutcome::Uploaded(remote))
        }
        Err(e) if e.kind() == tierlog_metadata::ErrorKind::AlreadyExists => {
            delete_objects(store, &keys).await;
            let existing = manifest
                .list(topic_id, partition)
                .await?
                .into_iter()
                .find(|s| s.base_offset == segment.base_offset);
            info!(
                topic,
                partition,
                base_offset = segment.base_offset,
                existing_end = existing.as_ref().map(|s| s.end_offset),
                "segment already tiered by another upload"
            );
            Ok(UploadOutcome::AlreadyTiered { existing })
        }
        // Ambiguous or transient: the entry may exist, so the objects stay.
        Err(e) => Err(e.into()),
    }
}

/// Deletes an attempt's objects, best effort (a failure only leaves garbage).
pub(super) async fn delete_objects(store: &Arc<dyn ObjectStore>, keys: &SegmentKeys) {
    for key in keys.all() {
        match store.delete(&ObjectPath::from(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => {
                warn!(key = %key, error = %e, "could not delete the objects of a failed upload")
            }
        }
    }
}

pub(super) fn store_err<'a>(
    op: &'static str,
    key: &'a str,
) -> impl FnOnce(object_store::Error) -> Error + 'a {
    move |source| Error::ObjectStore {
        op,
        key: key.to_string(),
        source,
    }
}

/// Streams `size` bytes of the data file from `start` to `key`; returns the CRC-32 of each
/// chunk.
async fn upload_data(
    store: &Arc<dyn ObjectStore>,
    key: &str,
    path: &Path,
    start: u64,
    size: u64,
    chunk_size: u32,
    opts: UploadOptions,
) -> Result<Vec<u32>> {
    let mut file = tokio::fs::File::open(path)
        .await
        .map_err(|e| Error::io("open segment for upload", path, e))?;
    let on_disk = file
        .metadata()
        .await
        .map_err(|e| Error::io("stat segment for upload", path, e))?
        .len();
    if on_disk < start + size {
        return Err(Error::CorruptSegment {
            path: path.to_path_buf(),
            position: on_disk,
            reason: format!(
                "sealed segment is {on_disk} bytes, {} expected",
                start + size
            ),
        });
    }
    if start > 0 {
        file.seek(std::io::SeekFrom::Start(start))
            .await
            .map_err(|e| Error::io("seek segment for upload", path, e))?;
    }
    let location = ObjectPath::from(key);
    let mut chunks = ChunkStream {
        file: &mut file,
        path,
        start,
        left: size,
        chunk_size: chunk_size as usize,
        verify: BatchStream::default(),
    };
    let mut crcs = Vec::with_capacity(size.div_ceil(u64::from(chunk_size)) as usize);
    if size <= opts.multipart_threshold {
        let mut parts = Vec::with_capacity(crcs.capacity());
        while let Some(chunk) = chunks.next().await? {
            crcs.push(crc32fast::hash(&chunk));
            parts.push(chunk);
        }
        put_create(
            store,
            &location,
            parts.into_iter().collect(),
            &crcs,
            chunk_size,
        )
        .await?;
        return Ok(crcs);
    }
    let upload = store
        .put_multipart_opts(&location, PutMultipartOptions::default())
        .await
        .map_err(store_err("start multipart upload", key))?;
    let mut writer = WriteMultipart::new_with_chunk_size(upload, opts.part_size);
    let streamed: Result<()> = async {
        while let Some(chunk) = chunks.next().await? {
            crcs.push(crc32fast::hash(&chunk));
            writer
                .wait_for_capacity(PARTS_IN_FLIGHT)
                .await
                .map_err(store_err("upload part", key))?;
            writer.put(chunk);
        }
        Ok(())
    }
    .await;
    if let Err(e) = streamed {
        if let Err(a) = writer.abort().await {
            warn!(key, error = %a, "could not abort a failed multipart upload");
        }
        return Err(e);
    }
    writer
        .finish()
        .await
        .map_err(store_err("complete multipart upload", key))?;
    Ok(crcs)
}

/// Reads a file in fixed-size chunks, up to a known length, checking the CRC-32C of every
/// batch on the way: damaged bytes are never uploaded (their chunk checksums would vouch for
/// them), the upload fails with [`Error::CorruptSegment`] instead.
struct ChunkStream<'a> {
    file: &'a mut tokio::fs::File,
    path: &'a Path,
    /// Position in the file of the first byte streamed.
    start: u64,
    left: u64,
    chunk_size: usize,
    verify: BatchStream,
}

impl ChunkStream<'_> {
    async fn next(&mut self) -> Result<Option<Bytes>> {
        let (path, start) = (self.path, self.start);
        let corrupt = |(at, reason): (u64, String)| Error::CorruptSegment {
            path: path.to_path_buf(),
            position: start + at,
            reason,
        };
        if self.left == 0 {
            self.verify.finish().map_err(corrupt)?;
            return Ok(None);
        }
        let n = (self.chunk_size as u64).min(self.left) as usize;
        let mut buf = vec![0u8; n];
        self.file
            .read_exact(&mut buf)
            .await
            .map_err(|e| Error::io("read segment for upload", self.path, e))?;
        self.verify.feed(&buf).map_err(corrupt)?;
        self.left -= n as u64;
        Ok(Some(Bytes::from(buf)))
    }
}

/// Uploads a whole (small) index; returns its CRC-32.
async fn upload_small(
    store: &Arc<dyn ObjectStore>,
    key: &str,
    src: &IndexSource<'_>,
) -> Result<u32> {
    let bytes = match src {
        IndexSource::File(path) => tokio::fs::read(path)
            .await
            .map_err(|e| Error::io("read index for upload", *path, e))?,
        IndexSource::Bytes(b) => b.to_vec(),
    };
    let crc = crc32fast::hash(&bytes);
    let len = bytes.len().max(1) as u32;
    put_create(
        store,
        &ObjectPath::from(key),
        PutPayload::from(bytes),
        &[crc],
        len,
    )
    .await?;
    Ok(crc)
}

/// Uploads an optional small object when there is one. A producer snapshot that vanished
/// meanwhile (pruned locally: only the newest few are kept) is skipped, not an error.
async fn upload_optional(
    store: &Arc<dyn ObjectStore>,
    key: &str,
    src: Option<&IndexSource<'_>>,
) -> Result<()> {
    let Some(src) = src else {
        return Ok(());
    };
    match upload_small(store, key, src).await {
        Ok(_) => Ok(()),
        Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            debug!(key, "optional object's local file is gone; not uploaded");
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// A create-only put. `AlreadyExists` on a key unique to this attempt can only be our own
/// earlier try whose reply was lost (object_store retried it): accept it if the object there
/// has exactly the expected CRCs (`crcs` per `chunk_size` chunk), else fail.
pub(super) async fn put_create(
    store: &Arc<dyn ObjectStore>,
    location: &ObjectPath,
    payload: PutPayload,
    crcs: &[u32],
    chunk_size: u32,
) -> Result<()> {
    let key = location.as_ref();
    let len = payload.content_length() as u64;
    match store
        .put_opts(location, payload, PutOptions::from(PutMode::Create))
        .await
    {
        Ok(_) => Ok(()),
        Err(source @ object_store::Error::AlreadyExists { .. }) => {
            let existing = read_crcs(store, location, chunk_size).await?;
            if existing.0 == len && existing.1 == crcs {
                debug!(key, "create-only put found its own earlier attempt");
                Ok(())
            } else {
                Err(Error::ObjectStore {
                    op: "create-only put",
                    key: key.to_string(),
                    source,
                })
            }
        }
        Err(e) => Err(store_err("create-only put", key)(e)),
    }
}

/// The length of an object and the CRC-32 of each `chunk_size` chunk, streamed.
async fn read_crcs(
    store: &Arc<dyn ObjectStore>,
    location: &ObjectPath,
    chunk_size: u32,
) -> Result<(u64, Vec<u32>)> {
    let key = location.as_ref();
    let mut stream = store
        .get(location)
        .await
        .map_err(store_err("read back object", key))?
        .into_stream();
    let chunk_size = chunk_size as usize;
    let (mut len, mut crcs) = (0u64, Vec::new());
    let (mut hasher, mut in_chunk) = (crc32fast::Hasher::new(), 0usize);
    while let Some(mut bytes) = stream
        .try_next()
        .await
        .map_err(store_err("read back object", key))?
    {
        len += bytes.len() as u64;
        while !bytes.is_empty() {
            let take = (chunk_size - in_chunk).min(bytes.len());
            hasher.update(&bytes.split_to(take));
            in_chunk += take;
            if in_chunk == chunk_size {
                crcs.push(std::mem::take(&mut hasher).finalize());
                in_chunk = 0;
            }
        }
    }
    if in_chunk > 0 || len == 0 {
        crcs.push(hasher.finalize());
    }
    Ok((len, crcs))
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used)]
    use object_store::memory::InMemory;
    use tierlog_metadata::{ManifestRegistry, MemoryStore};

    use crate::remote::RemoteOptions;

    use super::*;
    use crate::testutil::simple;
    use crate::{LogConfig, PartitionLog};

    pub(crate) fn small_log(dir: &Path) -> PartitionLog {
        PartitionLog::open(
            dir,
            LogConfig {
                segment_bytes: 4096,
                segment_ms: None,
                retention_ms: None,
                index_interval_bytes: 256,
                remote_storage: true,
                ..LogConfig::default()
            },
        )
        .unwrap()
    }

    pub(crate) fn fill(log: &PartitionLog, batches: usize) {
        for _ in 0..batches {
            let ts = 1000 + log.log_end_offset();
            log.append(simple(4, ts), 3, 0).unwrap();
        }
    }

    /// A handle with `chunk_size` and `upload` options.
    fn remote(
        store: &Arc<dyn ObjectStore>,
        manifest: &ManifestRegistry,
        topic: &str,
        topic_id: Uuid,
        partition: i32,
        chunk_size: u32,
        upload: UploadOptions,
    ) -> RemotePartition {
        RemotePartition::new(store.clone(), manifest.clone(), topic, topic_id, partition)
            .with_options(RemoteOptions {
                chunk_size,
                upload,
                ..RemoteOptions::default()
            })
    }

    /// [`remote`] of topic "t" with default upload options.
    fn plain(
        store: &Arc<dyn ObjectStore>,
        manifest: &ManifestRegistry,
        topic_id: Uuid,
        partition: i32,
        chunk_size: u32,
    ) -> RemotePartition {
        remote(
            store,
            manifest,
            "t",
            topic_id,
            partition,
            chunk_size,
            UploadOptions::default(),
        )
    }

    fn setup() -> (Arc<dyn ObjectStore>, ManifestRegistry) {
        (
            Arc::new(InMemory::new()),
            ManifestRegistry::new(Arc::new(MemoryStore::new())),
        )
    }

    async fn object(store: &Arc<dyn ObjectStore>, key: &str) -> Bytes {
        store
            .get(&ObjectPath::from(key))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
    }

    async fn count_objects(store: &Arc<dyn ObjectStore>) -> usize {
        store
            .list(None)
            .try_collect::<Vec<_>>()
            .await
            .unwrap()
            .len()
    }

    #[tokio::test]
    async fn a_segment_with_a_bad_batch_is_never_uploaded() {
        let dir = tempfile::tempdir().unwrap();
        let log = small_log(dir.path());
        fill(&log, 60);
        let seg = log.sealed_segments().unwrap().remove(0);
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&seg.log_path)
            .unwrap();
        std::os::unix::fs::FileExt::write_all_at(&f, b"!", seg.size_bytes / 2).unwrap();
        let (store, manifest) = setup();
        let err = plain(&store, &manifest, Uuid::new_v4(), 2, 1000)
            .upload(&seg, 5, 777)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::CorruptSegment { .. }), "{err}");
        assert_eq!(count_objects(&store).await, 0, "nothing left behind");
    }

    #[tokio::test]
    async fn uploads_a_real_sealed_segment_and_records_it() {
        let dir = tempfile::tempdir().unwrap();
        let log = small_log(dir.path());
        fill(&log, 60);
        let sealed = log.sealed_segments().unwrap();
        assert!(sealed.len() >= 2);
        let seg = &sealed[0];
        let (store, manifest) = setup();
        let topic_id = Uuid::new_v4();
        let chunk = 1000;
        let r = plain(&store, &manifest, topic_id, 2, chunk)
            .upload(seg, 5, 777)
            .await
            .unwrap();

        let data = std::fs::read(&seg.log_path).unwrap();
        let index = std::fs::read(&seg.index_path).unwrap();
        let time_index = std::fs::read(&seg.time_index_path).unwrap();
        assert!(!index.is_empty() && !time_index.is_empty());
        assert_eq!(object(&store, &r.data_key).await, data);
        assert_eq!(object(&store, &r.index_key).await, index);
        assert_eq!(object(&store, &r.time_index_key).await, time_index);
        let expected: Vec<u32> = data.chunks(chunk as usize).map(crc32fast::hash).collect();
        assert!(expected.len() > 1);
        assert_eq!(r.chunk_crcs, expected);
        assert_eq!(r.index_crc, crc32fast::hash(&index));
        assert_eq!(r.time_index_crc, crc32fast::hash(&time_index));
        assert_eq!(
            (r.base_offset, r.end_offset, r.size_bytes),
            (seg.base_offset, seg.end_offset, data.len() as u64)
        );
        assert_eq!(
            (r.first_timestamp, r.max_timestamp),
            (1000, seg.max_timestamp)
        );
        assert_eq!(
            (r.leader_epoch, r.chunk_size, r.uploaded_ms),
            (5, chunk, 777)
        );
        assert!(
            r.data_key.contains("/2/00000000000000000000-e5-"),
            "{}",
            r.data_key
        );
        // the producer snapshot at the segment's end goes along (no transaction index: the
        // segment holds no abort marker)
        let snapshot = std::fs::read(seg.producer_snapshot_path.as_ref().unwrap()).unwrap();
        let snapshot_key = super::super::layout::producer_snapshot_key(&r.data_key);
        assert_eq!(object(&store, &snapshot_key).await, snapshot);
        assert_eq!(manifest.list(topic_id, 2).await.unwrap(), vec![r]);
        assert_eq!(count_objects(&store).await, 4);
    }

    #[tokio::test]
    async fn second_upload_of_a_base_offset_is_already_tiered() {
        let dir = tempfile::tempdir().unwrap();
        let log = small_log(dir.path());
        fill(&log, 30);
        let seg = log.sealed_segments().unwrap().remove(0);
        let (store, manifest) = setup();
        let topic_id = Uuid::new_v4();
        let first = plain(&store, &manifest, topic_id, 0, 512)
            .upload(&seg, 1, 1)
            .await
            .unwrap();
        // a racing or retried upload: reported, its objects cleaned up
        let outcome = plain(&store, &manifest, topic_id, 0, 512)
            .upload_outcome(&seg, 2, 2)
            .await
            .unwrap();
        assert_eq!(
            outcome,
            UploadOutcome::AlreadyTiered {
                existing: Some(first.clone())
            }
        );
        // data, index, time index, producer snapshot
        assert_eq!(count_objects(&store).await, 4);
        // the plain API treats a covering entry as success and returns it
        let again = plain(&store, &manifest, topic_id, 0, 512)
            .upload(&seg, 2, 2)
            .await
            .unwrap();
        assert_eq!(again, first);
        // an entry that does not cover this segment is an error the caller can tell apart
        let longer = SealedSegment {
            end_offset: seg.end_offset + 10,
            ..seg.clone()
        };
        let e = plain(&store, &manifest, topic_id, 0, 512)
            .upload(&longer, 2, 2)
            .await
            .unwrap_err();
        assert!(is_already_tiered(&e), "{e}");
        assert_eq!(manifest.list(topic_id, 0).await.unwrap(), vec![first]);
        assert_eq!(count_objects(&store).await, 4);
    }

    #[tokio::test]
    async fn create_only_put_refuses_an_existing_key() {
        let (store, _) = setup();
        let p = ObjectPath::from("k");
        put_create(&store, &p, "one".into(), &[crc32fast::hash(b"one")], 3)
            .await
            .unwrap();
        // different bytes at the same key: refused, the object is untouched
        let e = put_create(&store, &p, "two".into(), &[crc32fast::hash(b"two")], 3)
            .await
            .unwrap_err();
        assert!(
            matches!(
                e,
                Error::ObjectStore {
                    source: object_store::Error::AlreadyExists { .. },
                    ..
                }
            ),
            "{e}"
        );
        assert_eq!(object(&store, "k").await, "one");
        // the same bytes again (our own retried put): accepted
        put_create(&store, &p, "one".into(), &[crc32fast::hash(b"one")], 3)
            .await
            .unwrap();
        // and the raw store refuses too
        let raw = store
            .put_opts(&p, "x".into(), PutOptions::from(PutMode::Create))
            .await
            .unwrap_err();
        assert!(matches!(raw, object_store::Error::AlreadyExists { .. }));
    }

    #[tokio::test]
    async fn multipart_path_uploads_the_same_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let log = small_log(dir.path());
        fill(&log, 30);
        let seg = log.sealed_segments().unwrap().remove(0);
        assert!(seg.size_bytes > 3000);
        let (store, manifest) = setup();
        let topic_id = Uuid::new_v4();
        let opts = UploadOptions {
            multipart_threshold: 100,
            part_size: 1000,
        };
        let UploadOutcome::Uploaded(r) = remote(&store, &manifest, "t", topic_id, 0, 700, opts)
            .upload_outcome(&seg, 0, 0)
            .await
            .unwrap()
        else {
            panic!("expected an upload")
        };
        let data = std::fs::read(&seg.log_path).unwrap();
        assert_eq!(object(&store, &r.data_key).await, data);
        let expected: Vec<u32> = data.chunks(700).map(crc32fast::hash).collect();
        assert_eq!(r.chunk_crcs, expected);
        assert_eq!(
            read_crcs(&store, &ObjectPath::from(r.data_key.as_str()), 700)
                .await
                .unwrap(),
            (data.len() as u64, expected)
        );
    }

    #[tokio::test]
    async fn a_vanished_file_fails_without_leaving_objects_or_entries() {
        let dir = tempfile::tempdir().unwrap();
        let log = small_log(dir.path());
        fill(&log, 30);
        let mut seg = log.sealed_segments().unwrap().remove(0);
        seg.time_index_path = dir.path().join("missing.timeindex");
        let (store, manifest) = setup();
        let topic_id = Uuid::new_v4();
        let e = plain(&store, &manifest, topic_id, 0, 512)
            .upload(&seg, 0, 0)
            .await
            .unwrap_err();
        assert!(matches!(e, Error::Io { .. }), "{e}");
        assert_eq!(count_objects(&store).await, 0);
        assert!(manifest.list(topic_id, 0).await.unwrap().is_empty());
        assert!(
            plain(&store, &manifest, topic_id, 0, 0)
                .upload(&seg, 0, 0)
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn a_segment_tail_uploads_as_a_segment_of_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let log = small_log(dir.path());
        fill(&log, 30);
        let seg = log.sealed_segments().unwrap().remove(0);
        // a tiered end inside the segment, on a batch boundary (batches hold 4 records)
        let from = seg.base_offset + 8;
        let suffix = log.sealed_suffix(seg.base_offset, from).unwrap();
        assert_eq!(suffix.segment.base_offset, from);
        assert_eq!(suffix.segment.end_offset, seg.end_offset);
        assert_eq!(suffix.segment.first_timestamp, 1000 + from);
        assert_eq!(suffix.segment.max_timestamp, seg.max_timestamp);
        let (store, manifest) = setup();
        let topic_id = Uuid::new_v4();
        let r = plain(&store, &manifest, topic_id, 0, 256)
            .upload_suffix(&suffix, 1, 0)
            .await
            .unwrap();
        let file = std::fs::read(&seg.log_path).unwrap();
        let data = object(&store, &r.data_key).await;
        assert_eq!(&data[..], &file[suffix.data_start as usize..]);
        assert_eq!(r.size_bytes, data.len() as u64);
        assert_eq!((r.base_offset, r.end_offset), (from, seg.end_offset));
        // the indexes are relative to the tail: every offset entry points at its batch
        let index = object(&store, &r.index_key).await;
        assert!(!index.is_empty());
        for e in index.chunks(8) {
            let rel = u32::from_be_bytes(e[..4].try_into().unwrap());
            let pos = u32::from_be_bytes(e[4..].try_into().unwrap()) as usize;
            let h = crate::BatchHeader::parse(&data[pos..]).unwrap();
            assert_eq!(h.base_offset, from + i64::from(rel));
        }
        let times = object(&store, &r.time_index_key).await;
        let last = &times[times.len() - 12..];
        assert_eq!(
            i64::from_be_bytes(last[..8].try_into().unwrap()),
            seg.max_timestamp
        );
        assert_eq!(
            i64::from(u32::from_be_bytes(last[8..].try_into().unwrap())),
            seg.end_offset - 1 - from
        );
        assert_eq!(r.index_crc, crc32fast::hash(&index));
        assert_eq!(
            r.chunk_crcs,
            data.chunks(256).map(crc32fast::hash).collect::<Vec<_>>()
        );
        // mid-batch: the tail starts at the batch holding the offset
        let mid = log.sealed_suffix(seg.base_offset, from + 2).unwrap();
        assert_eq!(mid.segment.base_offset, from);
        // not a sealed segment holding the offset
        for (base, at) in [
            (seg.base_offset + 1, from),
            (seg.base_offset, seg.end_offset),
        ] {
            assert_eq!(
                log.sealed_suffix(base, at).unwrap_err().kind(),
                crate::ErrorKind::OffsetOutOfRange
            );
        }
    }

    /// Against a real S3-compatible server, when one is named: `TIERLOG_TEST_S3_URL`
    /// (`s3://bucket/prefix`, the bucket must exist) and `TIERLOG_TEST_S3_ENDPOINT`, with
    /// credentials in the usual `AWS_*` variables (read through aws-config's chain).
    /// Skipped otherwise; unit tests never need the network.
    #[tokio::test]
    async fn real_s3_put_multipart_conflict_and_retention() {
        let (Ok(url), Ok(endpoint)) = (
            std::env::var("TIERLOG_TEST_S3_URL"),
            std::env::var("TIERLOG_TEST_S3_ENDPOINT"),
        ) else {
            eprintln!("skipped: TIERLOG_TEST_S3_URL / TIERLOG_TEST_S3_ENDPOINT not set");
            return;
        };
        let store =
            crate::remote::store::open_object_store(&crate::remote::store::ObjectStoreConfig {
                url,
                s3: crate::remote::store::S3Options {
                    region: Some("us-east-1".into()),
                    endpoint: Some(endpoint),
                    allow_http: true,
                    path_style: true,
                },
            })
            .await
            .unwrap();
        let manifest = ManifestRegistry::new(Arc::new(MemoryStore::new()));
        let dir = tempfile::tempdir().unwrap();
        let log = PartitionLog::open(
            dir.path(),
            LogConfig {
                segment_bytes: 12 << 20,
                segment_ms: None,
                retention_ms: None,
                remote_storage: true,
                ..LogConfig::default()
            },
        )
        .unwrap();
        let big = crate::testutil::batch(crate::testutil::Spec {
            records: 4,
            value_len: 64 << 10,
            ..crate::testutil::Spec::default()
        });
        while log.sealed_segments().unwrap().is_empty() {
            log.append(big.clone(), 0, 0).unwrap();
        }
        log.append(simple(3, 5), 0, 0).unwrap();
        log.roll_now().unwrap();
        let sealed = log.sealed_segments().unwrap();
        let topic_id = Uuid::new_v4();
        let opts = UploadOptions {
            multipart_threshold: 1 << 20,
            part_size: 5 << 20,
        };
        let mut recorded = Vec::new();
        for seg in &sealed {
            let UploadOutcome::Uploaded(r) =
                remote(&store, &manifest, "s3t", topic_id, 0, 1 << 20, opts)
                    .upload_outcome(seg, 1, 0)
                    .await
                    .unwrap()
            else {
                panic!("expected an upload")
            };
            let data = std::fs::read(&seg.log_path).unwrap();
            assert_eq!(object(&store, &r.data_key).await, data);
            assert_eq!(
                r.chunk_crcs,
                data.chunks(1 << 20)
                    .map(crc32fast::hash)
                    .collect::<Vec<_>>()
            );
            recorded.push(r);
        }
        assert!(sealed[0].size_bytes > (11 << 20), "multipart path used");
        // create-only against the real server
        let p = ObjectPath::from(recorded[1].index_key.as_str());
        let raw = store
            .put_opts(&p, "x".into(), PutOptions::from(PutMode::Create))
            .await
            .unwrap_err();
        assert!(
            matches!(raw, object_store::Error::AlreadyExists { .. }),
            "{raw}"
        );
        // a second upload of the same base offset
        let again = remote(&store, &manifest, "s3t", topic_id, 0, 1 << 20, opts)
            .upload_outcome(&sealed[1], 2, 0)
            .await
            .unwrap();
        assert!(matches!(
            again,
            UploadOutcome::AlreadyTiered { existing: Some(_) }
        ));
        // remote retention removes everything below the log start, entry then objects
        let deleted = remote(&store, &manifest, "s3t", topic_id, 0, 1 << 20, opts)
            .enforce_retention(
                &manifest.list(topic_id, 0).await.unwrap(),
                &crate::remote::retention::RetentionLimits {
                    log_start: Some(i64::MAX),
                    ..Default::default()
                },
                0,
            )
            .await
            .unwrap();
        assert_eq!(deleted.len(), recorded.len());
        let prefix =
            ObjectPath::from(crate::remote::layout::partition_prefix("s3t", topic_id, 0).as_str());
        let left: Vec<_> = store.list(Some(&prefix)).try_collect().await.unwrap();
        assert!(left.is_empty(), "{left:?}");
    }
}
