//! The log as the uploader sees it: sealed segments, the tail of a sealed segment from a batch
//! boundary on, and the tiered end that local retention respects (see "Tiering hooks" in the
//! parent module's docs).

use super::*;

impl PartitionLog {
    /// Every sealed (non-active) segment, oldest first, with its index files complete on disk
    /// (pending entries are written first; they are not fsynced: the uploader reads them
    /// through the page cache). Safe while appends go on: sealed segments never change. A
    /// segment deleted by retention meanwhile may still be listed; opening its files then
    /// fails, and the caller skips it.
    pub fn sealed_segments(&self) -> Result<Vec<SealedSegment>> {
        let _no_truncation = rlock(&self.truncation);
        let metas = {
            let s = rlock(&self.shared);
            s.segments[..s.segments.len().saturating_sub(1)].to_vec()
        };
        let mut out = Vec::with_capacity(metas.len());
        for m in metas {
            m.seg.persist_index(false)?;
            // A compacted segment may be empty.
            let first_timestamp = if m.size == 0 {
                -1
            } else {
                let mut h = [0u8; HEADER_SIZE];
                m.seg.read_exact_at(&mut h, 0)?;
                BatchHeader::parse(&h)
                    .map_err(|e| m.seg.corrupt(0, e.to_string()))?
                    .first_timestamp
            };
            out.push(SealedSegment {
                base_offset: m.seg.base_offset,
                end_offset: m.next_offset,
                size_bytes: m.size,
                first_timestamp,
                max_timestamp: m.max_ts,
                log_path: m.seg.log_path.clone(),
                index_path: m.seg.index_path().to_path_buf(),
                time_index_path: m.seg.time_index_path().to_path_buf(),
                txn_index_path: m.seg.txn_index_path().map(Path::to_path_buf),
                producer_snapshot_path: self.producer_snapshot_path(m.next_offset),
            });
        }
        Ok(out)
    }

    /// The part of the sealed segment starting at `base_offset` from the batch holding `from`
    /// on, with freshly built indexes: what to upload when the tiered range ends inside a local
    /// segment (another leader rolled at other offsets), so that the remote tier continues
    /// exactly where it ends instead of leaving a hole or overlapping. Replicas hold the same
    /// batches, so `from` (a tiered end) is normally a batch boundary; if it is not, the tail
    /// starts at the batch containing it. [`Error::OffsetOutOfRange`] unless `base_offset` is
    /// a sealed segment that holds `from`.
    pub fn sealed_suffix(&self, base_offset: i64, from: i64) -> Result<SegmentSuffix> {
        let _no_truncation = rlock(&self.truncation);
        let (meta, start, end) = {
            let s = rlock(&self.shared);
            let sealed = &s.segments[..s.segments.len().saturating_sub(1)];
            let m = sealed
                .iter()
                .find(|m| m.seg.base_offset == base_offset)
                .cloned();
            (m, s.log_start(), s.log_end())
        };
        let Some(meta) = meta.filter(|m| base_offset <= from && from < m.next_offset) else {
            return Err(Error::OffsetOutOfRange {
                offset: from,
                start,
                end,
            });
        };
        let seg = &meta.seg;
        let interval = rlock(&self.config).index_interval_bytes;
        let (mut reader, mut pos, first) = locate(&meta, from, segment::CHUNK)?;
        let data_start = pos;
        let mut idx = SegmentIndex::new(first.base_offset);
        let mut max_ts = NO_TIMESTAMP;
        while pos < meta.size {
            let h = reader.header(pos)?.map_err(|r| seg.corrupt(pos, r))?;
            idx.add_batch(
                h.base_offset,
                h.last_offset(),
                pos - data_start,
                h.size(),
                h.max_timestamp,
                interval,
            );
            max_ts = max_ts.max(h.max_timestamp);
            pos += h.size();
        }
        idx.seal();
        let (index, time_index) = idx.encode();
        let txn_index = seg.txn_index_from(first.base_offset);
        Ok(SegmentSuffix {
            segment: SealedSegment {
                base_offset: first.base_offset,
                end_offset: meta.next_offset,
                size_bytes: meta.size - data_start,
                first_timestamp: first.first_timestamp,
                max_timestamp: max_ts,
                log_path: seg.log_path.clone(),
                index_path: seg.index_path().to_path_buf(),
                time_index_path: seg.time_index_path().to_path_buf(),
                // The whole segment's index (not to be uploaded: use `txn_index`).
                txn_index_path: seg.txn_index_path().map(Path::to_path_buf),
                producer_snapshot_path: self.producer_snapshot_path(meta.next_offset),
            },
            data_start,
            index,
            time_index,
            txn_index,
        })
    }

    /// Records that offsets below `end` are tiered (in the manifest); local retention may now
    /// delete segments entirely below it. Never moves back.
    pub fn set_tiered_end(&self, end: i64) {
        self.tiered_end.fetch_max(end, Ordering::AcqRel);
    }

    /// Offsets below this are known to be tiered (0 until [`set_tiered_end`](Self::set_tiered_end)).
    pub fn tiered_end(&self) -> i64 {
        self.tiered_end.load(Ordering::Acquire)
    }

    /// Bytes of the local segments not entirely below [`tiered_end`](Self::tiered_end): sealed
    /// but not yet uploaded, plus the active segment (the "upload lag", and what
    /// `retention.bytes` adds to the remote bytes). A segment the tiered end falls inside
    /// (another leader rolled at different offsets) counts whole.
    pub fn untiered_bytes(&self) -> u64 {
        let end = self.tiered_end();
        rlock(&self.shared)
            .segments
            .iter()
            .filter(|m| m.next_offset > end)
            .map(|m| m.size)
            .sum()
    }

    /// Bytes of sealed (non-active) segments not yet tiered: the upload lag. Cheap (no I/O).
    pub fn sealed_untiered_bytes(&self) -> u64 {
        let end = self.tiered_end();
        let shared = rlock(&self.shared);
        let sealed = shared.segments.len().saturating_sub(1);
        shared.segments[..sealed]
            .iter()
            .filter(|m| m.next_offset > end)
            .map(|m| m.size)
            .sum()
    }
}

/// A sealed (rolled, no longer appended to) local segment, as the uploader sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedSegment {
    /// Offset of the first record.
    pub base_offset: i64,
    /// One past the offset of the last record.
    pub end_offset: i64,
    /// Size of the `.log` file (bytes of record batches).
    pub size_bytes: u64,
    /// `firstTimestamp` of the first batch.
    pub first_timestamp: i64,
    /// Largest batch max-timestamp in the segment.
    pub max_timestamp: i64,
    /// The `.log` file.
    pub log_path: PathBuf,
    /// The `.index` file, complete on disk (not necessarily fsynced).
    pub index_path: PathBuf,
    /// The `.timeindex` file, complete on disk (not necessarily fsynced).
    pub time_index_path: PathBuf,
    /// The `.txnindex` file (aborted transactions whose markers are in this segment), `None`
    /// when the segment has none.
    pub txn_index_path: Option<PathBuf>,
    /// The producer-state snapshot as of `end_offset` (the next segment's base), `None` when
    /// it is gone (only the newest few are kept) or was never written.
    pub producer_snapshot_path: Option<PathBuf>,
}

/// The tail of a sealed segment from a batch boundary on, described as a segment of its own
/// (see [`PartitionLog::sealed_suffix`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentSuffix {
    /// The tail as a segment: `base_offset` is the first batch's base offset, `size_bytes` the
    /// tail's length, `log_path` the whole local file (read from `data_start`), and the index
    /// paths those of the whole segment (not to be uploaded: use `index`/`time_index`).
    pub segment: SealedSegment,
    /// Byte position of the tail in `segment.log_path`.
    pub data_start: u64,
    /// The tail's offset index, relative to its own base offset and position 0.
    pub index: Vec<u8>,
    /// The tail's time index, relative to its own base offset.
    pub time_index: Vec<u8>,
    /// The tail's transaction index (the entries whose markers are in the tail), `None` when
    /// there are none.
    pub txn_index: Option<Vec<u8>>,
}
