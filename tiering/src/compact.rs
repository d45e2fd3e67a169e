//! Log compaction's core, shared by the hot-tier cleaner (`log/clean.rs`) and tiered
//! compaction (`remote/compact.rs`): the key → latest-offset map, and the rewrite of a run of
//! stored batches keeping, for every key, only its latest record (Kafka's `LogCleaner`).
//!
//! # What is kept (Kafka's rules)
//!
//! - A record whose key has a later offset in the [`OffsetMap`] goes. A record without a key
//!   goes (a compacted topic refuses them on produce; older data may hold some).
//! - A tombstone (a null value) stays until its batch's *delete horizon* has passed: the
//!   first cleaning that keeps a batch holding a tombstone (or a transaction marker) sets the
//!   horizon to `now + delete.retention.ms`, as Kafka does since KIP-534 — the horizon goes
//!   in the batch's `firstTimestamp` with attribute bit 6 set, and the records' timestamp
//!   deltas are re-based on it, so every record keeps its timestamp. Consumers that read a
//!   key's tombstone within `delete.retention.ms` of that cleaning see the delete.
//! - Records of aborted transactions go (the aborted list comes from the transaction
//!   indexes). A transaction marker goes once nothing of its transaction is left and its own
//!   horizon has passed.
//! - The last batch of a producer that the producer state still tracks stays, emptied to its
//!   header if none of its records do, so the producer's last sequence survives a rebuild of
//!   the state from the log (Kafka keeps it the same way).
//!
//! Offsets never change: a rewritten batch keeps its base offset, `lastOffsetDelta`, leader
//! epoch, producer id/epoch/base sequence, timestamp type and codec; its records keep their
//! offset deltas. So a compacted log has holes, which every reader steps over. A batch that
//! loses nothing and needs no horizon is copied byte for byte.

use std::collections::{BTreeMap, HashMap};
use std::hash::{DefaultHasher, Hash, Hasher};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::compression::{Compressor, Decompressor, Gzip, Lz4, Snappy, Zstd};

use crate::batch::{self, BatchHeader, HEADER_SIZE, LOG_OVERHEAD};
use crate::producer::{AbortedTxn, ControlType, parse_control};

/// Attribute bit 6: `firstTimestamp` holds the batch's delete horizon (KIP-534).
pub(crate) const DELETE_HORIZON_BIT: i16 = 0x40;
const CODEC_MASK: i16 = 0x07;
const ATTRIBUTES_AT: usize = 21;

/// Memory one map entry costs, table overhead included (a 16-byte digest, an 8-byte offset,
/// control bytes and the spare capacity of the hash table).
pub const OFFSET_MAP_ENTRY_BYTES: usize = 40;

/// A 128-bit digest of a record key (two SipHash-1-3 passes with different prefixes). Two
/// keys colliding would make the cleaner drop the older one's latest value; at 128 bits
/// that takes about 2^64 keys. The digest only lives for one cleaning, so it needs no
/// stability across builds.
pub(crate) fn key_digest(key: &[u8]) -> u128 {
    let mut a = DefaultHasher::new();
    0xa5u8.hash(&mut a);
    key.hash(&mut a);
    let mut b = DefaultHasher::new();
    0x5au8.hash(&mut b);
    key.hash(&mut b);
    (u128::from(a.finish()) << 64) | u128::from(b.finish())
}

/// Key digest → offset of the key's latest record in the range scanned so far, bounded in
/// memory: Kafka's `SkimpyOffsetMap` (`log.cleaner.dedupe.buffer.size`).
#[derive(Debug)]
pub struct OffsetMap {
    map: HashMap<u128, i64>,
    capacity: usize,
    /// Offset of the last record added (-1 when none).
    latest: i64,
}

impl OffsetMap {
    /// A map that holds at most `memory_bytes / OFFSET_MAP_ENTRY_BYTES` keys (at least one).
    pub fn with_memory(memory_bytes: usize) -> Self {
        OffsetMap {
            map: HashMap::new(),
            capacity: (memory_bytes / OFFSET_MAP_ENTRY_BYTES).max(1),
            latest: -1,
        }
    }

    /// How many keys fit.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Keys held.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// No key held.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Records `offset` as the latest for `digest`. `false` (nothing changed) when the key is
    /// new and the map is full.
    pub(crate) fn put(&mut self, digest: u128, offset: i64) -> bool {
        if self.map.len() >= self.capacity && !self.map.contains_key(&digest) {
            return false;
        }
        self.map.insert(digest, offset);
        self.latest = self.latest.max(offset);
        true
    }

    /// The latest offset recorded for `digest`.
    pub(crate) fn get(&self, digest: u128) -> Option<i64> {
        self.map.get(&digest).copied()
    }

    /// Offset of the last record added, -1 when none.
    pub fn latest_offset(&self) -> i64 {
        self.latest
    }
}

/// One record of a batch's (decompressed) record section.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RawRecord<'a> {
    /// The record after its length varint: attributes, timestamp delta, offset delta, key,
    /// value, headers.
    pub(crate) body: &'a [u8],
    /// Where the timestamp delta's varlong starts and ends in `body`.
    ts_at: (usize, usize),
    pub(crate) ts_delta: i64,
    pub(crate) offset_delta: i32,
    /// `None` for a null key.
    pub(crate) key: Option<&'a [u8]>,
    /// The value is null (a tombstone).
    pub(crate) tombstone: bool,
}

/// Splits a record section into its `count` records, or says why it cannot.
pub(crate) fn parse_records(section: &[u8], count: i32) -> Result<Vec<RawRecord<'_>>, String> {
    let mut out = Vec::with_capacity(usize::try_from(count.max(0)).unwrap_or(0).min(1 << 16));
    let mut pos = 0usize;
    for i in 0..count {
        let bad = |what: &str| format!("record {i}: bad {what}");
        let (len, n) = batch::read_varint(&section[pos..]).ok_or_else(|| bad("length"))?;
        pos += n;
        let len = usize::try_from(len).map_err(|_| bad("length"))?;
        let body = section.get(pos..pos + len).ok_or_else(|| bad("length"))?;
        pos += len;
        let mut p = 1usize; // attributes
        let (ts_delta, n) = body
            .get(p..)
            .and_then(batch::read_varlong)
            .ok_or_else(|| bad("timestamp"))?;
        let ts_at = (p, p + n);
        p += n;
        let (offset_delta, n) = body
            .get(p..)
            .and_then(batch::read_varint)
            .ok_or_else(|| bad("offset delta"))?;
        p += n;
        let (key_len, n) = body
            .get(p..)
            .and_then(batch::read_varint)
            .ok_or_else(|| bad("key"))?;
        p += n;
        let key = if key_len < 0 {
            None
        } else {
            let k = body
                .get(p..p + key_len as usize)
                .ok_or_else(|| bad("key"))?;
            p += key_len as usize;
            Some(k)
        };
        let (value_len, _) = body
            .get(p..)
            .and_then(batch::read_varint)
            .ok_or_else(|| bad("value"))?;
        out.push(RawRecord {
            body,
            ts_at,
            ts_delta,
            offset_delta,
            key,
            tombstone: value_len < 0,
        });
    }
    if pos != section.len() {
        return Err(format!(
            "{count} records end at byte {pos} of a {}-byte record section",
            section.len()
        ));
    }
    Ok(out)
}

/// The record section of a stored batch, decompressed.
pub(crate) fn record_section(batch: &[u8], h: &BatchHeader) -> Result<Bytes, String> {
    if h.compression() == 0 {
        return Ok(Bytes::copy_from_slice(&batch[HEADER_SIZE..]));
    }
    if h.compression() == 3
        && let Some(section) = lz4_frame_blocks(&batch[HEADER_SIZE..])
    {
        return section.map(Bytes::from);
    }
    let mut payload = Bytes::copy_from_slice(&batch[HEADER_SIZE..]);
    let take = |b: &mut Bytes| Ok(b.copy_to_bytes(b.remaining()));
    let out = match h.compression() {
        0 => return Ok(payload),
        1 => Gzip::decompress(&mut payload, take),
        2 => Snappy::decompress(&mut payload, take),
        3 => Lz4::decompress(&mut payload, take),
        4 => Zstd::decompress(&mut payload, take),
        c => return Err(format!("unknown compression codec {c}")),
    };
    out.map_err(|e| format!("cannot decompress: {e:#}"))
}

/// Compresses a rewritten batch's record section with its codec. LZ4 is written in fast mode
/// (kafka-protocol's encoder uses LZ4HC, whose 256 KiB state is set up again for every batch:
/// most of a cleaning's time on LZ4 topics); zstd reuses one compression context per thread.
fn compress(codec: u8, section: &[u8]) -> Result<Vec<u8>, String> {
    match codec {
        3 => return compress_lz4(section).map_err(|e| format!("cannot compress: {e}")),
        4 => return compress_zstd(section).map_err(|e| format!("cannot compress: {e}")),
        _ => {}
    }
    let mut out = BytesMut::new();
    let put = |b: &mut BytesMut| {
        b.put_slice(section);
        Ok(())
    };
    let r = match codec {
        0 => {
            out.put_slice(section);
            Ok(())
        }
        1 => Gzip::compress(&mut out, put),
        2 => Snappy::compress(&mut out, put),
        3 => Lz4::compress(&mut out, put),
        4 => Zstd::compress(&mut out, put),
        c => return Err(format!("unknown compression codec {c}")),
    };
    r.map_err(|e| format!("cannot compress: {e:#}"))?;
    Ok(out.to_vec())
}

/// Decodes an LZ4 frame block by block with the block API, or `None` for a frame that needs
/// the streaming decoder (blocks linked to each other, a dictionary). Most batches are one
/// block; this skips the frame decoder's per-frame context and buffers, which cost more than
/// the decompression itself on batches of a few KiB. Checksums present are not verified: the
/// batch's CRC-32C already covers these bytes.
fn lz4_frame_blocks(frame: &[u8]) -> Option<Result<Vec<u8>, String>> {
    const MAGIC: [u8; 4] = [0x04, 0x22, 0x4d, 0x18];
    if frame.len() < 7 || frame[..4] != MAGIC {
        return None;
    }
    let (flg, bd) = (frame[4], frame[5]);
    let independent = flg & 0x20 != 0;
    let block_checksum = flg & 0x10 != 0;
    let content_size = flg & 0x08 != 0;
    if flg & 0x01 != 0 || flg >> 6 != 1 {
        return None; // a dictionary, or an unknown version
    }
    let max_block = match (bd >> 4) & 0x07 {
        4 => 64 << 10,
        5 => 256 << 10,
        6 => 1 << 20,
        7 => 4 << 20,
        _ => return None,
    };
    let mut pos = 6 + if content_size { 8 } else { 0 } + 1; // descriptor, header checksum
    let mut out = Vec::new();
    let mut blocks = 0;
    loop {
        let Some(size) = frame.get(pos..pos + 4) else {
            return Some(Err("lz4 frame: truncated block size".into()));
        };
        let size = u32::from_le_bytes([size[0], size[1], size[2], size[3]]);
        pos += 4;
        if size == 0 {
            return Some(Ok(out));
        }
        blocks += 1;
        if blocks > 1 && !independent {
            return None;
        }
        let stored = size & 0x8000_0000 != 0;
        let len = (size & 0x7fff_ffff) as usize;
        let Some(block) = frame.get(pos..pos + len) else {
            return Some(Err("lz4 frame: truncated block".into()));
        };
        if stored {
            out.extend_from_slice(block);
        } else {
            // Into a scratch buffer zeroed once per thread (zeroing a block-sized buffer per
            // batch would cost more than decompressing it), then copied out.
            let r = LZ4_SCRATCH.with(|scratch| {
                let mut scratch = scratch.borrow_mut();
                if scratch.len() < max_block {
                    scratch.resize(max_block, 0);
                }
                let n = lz4::block::decompress_to_buffer(
                    block,
                    Some(max_block as i32),
                    &mut scratch[..max_block],
                )?;
                out.extend_from_slice(&scratch[..n]);
                Ok::<(), std::io::Error>(())
            });
            if let Err(e) = r {
                return Some(Err(format!("lz4 block: {e}")));
            }
        }
        pos += len + if block_checksum { 4 } else { 0 };
    }
}

/// An LZ4 frame as Kafka reads it (independent 64 KiB blocks), fast mode.
fn compress_lz4(section: &[u8]) -> std::io::Result<Vec<u8>> {
    use std::io::Write;
    let mut enc = lz4::EncoderBuilder::new()
        .level(0)
        .block_mode(lz4::BlockMode::Independent)
        .block_size(lz4::BlockSize::Max64KB)
        .build(Vec::with_capacity(section.len() / 2 + 64))?;
    enc.write_all(section)?;
    let (out, r) = enc.finish();
    r.map(|()| out)
}

thread_local! {
    static LZ4_SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    static ZSTD: std::cell::RefCell<Option<zstd::bulk::Compressor<'static>>> =
        const { std::cell::RefCell::new(None) };
}

/// A zstd frame at level 3 (kafka-protocol's and Kafka's default), with the thread's reused
/// compression context.
fn compress_zstd(section: &[u8]) -> std::io::Result<Vec<u8>> {
    ZSTD.with(|z| {
        let mut z = z.borrow_mut();
        let c = match &mut *z {
            Some(c) => c,
            None => z.insert(zstd::bulk::Compressor::new(3)?),
        };
        c.compress(section)
    })
}

/// Whether every record of the batch has a key (compacted topics refuse keyless records).
/// Decompresses compressed batches, as Kafka does for compacted topics.
pub(crate) fn all_records_keyed(batch: &[u8], h: &BatchHeader) -> Result<bool, String> {
    let section = record_section(batch, h)?;
    Ok(parse_records(&section, h.record_count)?
        .iter()
        .all(|r| r.key.is_some()))
}

/// Adds the keys of the records at or after `from` of one stored batch to `map` (the caller
/// skips control batches and aborted data). Returns `false` if the map filled before the
/// batch's last record; then the records before that one are in the map.
pub(crate) fn add_keys(
    map: &mut OffsetMap,
    batch: &[u8],
    h: &BatchHeader,
    from: i64,
) -> Result<bool, String> {
    let section = record_section(batch, h)?;
    for r in parse_records(&section, h.record_count)? {
        let offset = h.base_offset + i64::from(r.offset_delta);
        if offset < from {
            continue;
        }
        if let Some(k) = r.key
            && !map.put(key_digest(k), offset)
        {
            return Ok(false);
        }
    }
    Ok(true)
}

/// What one cleaning pass knows beyond the batches.
#[derive(Debug)]
pub(crate) struct CleanContext<'a> {
    pub(crate) map: &'a OffsetMap,
    pub(crate) now_ms: i64,
    /// `delete.retention.ms`.
    pub(crate) delete_retention_ms: i64,
    /// Producer id → last offset of its last data batch, for producers the state tracks.
    pub(crate) producer_last: &'a HashMap<i64, i64>,
}

/// Per-producer progress of a transaction through the batches cleaned so far.
#[derive(Debug, Clone, Copy, Default)]
struct OpenTxn {
    aborted: bool,
    /// A batch of it was kept (so its marker must stay).
    kept: bool,
}

/// Cleans a run of batches in offset order (Kafka's `LogCleaner.cleanInto`), tracking
/// transactions across batches and segments.
#[derive(Debug)]
pub(crate) struct BatchCleaner {
    /// Aborted transactions by first offset, consumed as the batches pass them.
    aborted: BTreeMap<(i64, i64), AbortedTxn>,
    open: HashMap<i64, OpenTxn>,
    /// Markers kept whose transaction was aborted (for the cleaned transaction index).
    pub(crate) kept_aborts: Vec<AbortedTxn>,
    aborted_by_marker: HashMap<i64, AbortedTxn>,
    /// The earliest delete horizon of the tombstones and markers kept: the log needs
    /// cleaning again then, dirty or not (KIP-534).
    pub(crate) next_horizon: Option<i64>,
}

/// What became of one batch.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Outcome {
    pub(crate) records_in: u64,
    pub(crate) records_kept: u64,
    /// The batch was written (whole or rewritten).
    pub(crate) kept: bool,
    /// It was rewritten (not copied byte for byte).
    pub(crate) rewritten: bool,
}

impl BatchCleaner {
    /// A cleaner that knows the aborted transactions overlapping the range it will clean.
    pub(crate) fn new(aborted: &[AbortedTxn]) -> Self {
        BatchCleaner {
            aborted: aborted
                .iter()
                .map(|t| ((t.first_offset, t.producer_id), *t))
                .collect(),
            open: HashMap::new(),
            kept_aborts: Vec::new(),
            aborted_by_marker: aborted.iter().map(|t| (t.last_offset, *t)).collect(),
            next_horizon: None,
        }
    }

    /// Moves the aborted transactions starting at or before `offset` into `open`.
    fn start_aborted_up_to(&mut self, offset: i64) {
        while let Some((&k, t)) = self.aborted.first_key_value() {
            if k.0 > offset {
                break;
            }
            let pid = t.producer_id;
            self.aborted.remove(&k);
            self.open.insert(
                pid,
                OpenTxn {
                    aborted: true,
                    kept: false,
                },
            );
        }
    }

    fn note_horizon(&mut self, horizon: i64) {
        self.next_horizon = Some(self.next_horizon.map_or(horizon, |h| h.min(horizon)));
    }

    /// Cleans one stored batch into `out`. Errors name what is wrong with the batch.
    pub(crate) fn clean(
        &mut self,
        batch: &[u8],
        h: &BatchHeader,
        cx: &CleanContext<'_>,
        out: &mut Vec<u8>,
    ) -> Result<Outcome, String> {
        self.start_aborted_up_to(h.last_offset());
        let horizon = (h.attributes & DELETE_HORIZON_BIT != 0).then_some(h.first_timestamp);
        let horizon_passed = horizon.is_some_and(|t| t <= cx.now_ms);
        let records_in = u64::try_from(h.record_count.max(0)).unwrap_or(0);
        if h.is_control() {
            let marker = parse_control(batch);
            let txn = self.open.remove(&h.producer_id).unwrap_or_default();
            // A marker whose transaction kept nothing may go once its horizon has passed.
            let discard = !txn.kept && horizon_passed;
            if discard {
                return Ok(Outcome {
                    records_in,
                    ..Outcome::default()
                });
            }
            if matches!(marker, Some((ControlType::Abort, _)))
                && let Some(t) = self.aborted_by_marker.get(&h.base_offset)
            {
                self.kept_aborts.push(*t);
            }
            let new_horizon = cx.now_ms.saturating_add(cx.delete_retention_ms);
            self.note_horizon(horizon.unwrap_or(new_horizon));
            if horizon.is_none() {
                let section = record_section(batch, h)?;
                let records = parse_records(&section, h.record_count)?;
                let all: Vec<usize> = (0..records.len()).collect();
                write_batch(h, &records, &all, Some(new_horizon), out)?;
                return Ok(Outcome {
                    records_in,
                    records_kept: records_in,
                    kept: true,
                    rewritten: true,
                });
            }
            out.extend_from_slice(batch);
            return Ok(Outcome {
                records_in,
                records_kept: records_in,
                kept: true,
                rewritten: false,
            });
        }

        let in_aborted =
            h.is_transactional() && self.open.get(&h.producer_id).is_some_and(|t| t.aborted);
        if h.is_transactional() && !self.open.contains_key(&h.producer_id) {
            self.open.insert(h.producer_id, OpenTxn::default());
        }
        let section = record_section(batch, h)?;
        let records = parse_records(&section, h.record_count)?;
        let mut keep = Vec::with_capacity(records.len());
        let mut has_tombstone = false;
        if !in_aborted {
            for (i, r) in records.iter().enumerate() {
                let Some(key) = r.key else { continue };
                let offset = h.base_offset + i64::from(r.offset_delta);
                if cx
                    .map
                    .get(key_digest(key))
                    .is_some_and(|latest| offset < latest)
                {
                    continue;
                }
                if r.tombstone {
                    if horizon_passed {
                        continue;
                    }
                    has_tombstone = true;
                }
                keep.push(i);
            }
        }
        let last_of_producer =
            h.producer_id >= 0 && cx.producer_last.get(&h.producer_id) == Some(&h.last_offset());
        if keep.is_empty() && !last_of_producer {
            return Ok(Outcome {
                records_in,
                ..Outcome::default()
            });
        }
        if h.is_transactional()
            && let Some(t) = self.open.get_mut(&h.producer_id)
        {
            t.kept = true;
        }
        let set_horizon = has_tombstone && horizon.is_none();
        if has_tombstone {
            self.note_horizon(horizon.unwrap_or(cx.now_ms.saturating_add(cx.delete_retention_ms)));
        }
        if keep.len() == records.len() && !set_horizon {
            out.extend_from_slice(batch);
            return Ok(Outcome {
                records_in,
                records_kept: records_in,
                kept: true,
                rewritten: false,
            });
        }
        let new_horizon = if set_horizon {
            Some(cx.now_ms.saturating_add(cx.delete_retention_ms))
        } else {
            horizon
        };
        write_batch(h, &records, &keep, new_horizon, out)?;
        Ok(Outcome {
            records_in,
            records_kept: keep.len() as u64,
            kept: true,
            rewritten: true,
        })
    }
}

/// Writes a batch holding `keep` (indexes into `records`) of the original batch `h`, with
/// `horizon` as its delete horizon (records re-based on it) or the original first
/// timestamp. An empty `keep` writes an empty, uncompressed batch (header only).
fn write_batch(
    h: &BatchHeader,
    records: &[RawRecord<'_>],
    keep: &[usize],
    horizon: Option<i64>,
    out: &mut Vec<u8>,
) -> Result<(), String> {
    let old_base_ts = h.first_timestamp;
    let base_ts = horizon.unwrap_or(old_base_ts);
    let mut section = Vec::with_capacity(keep.iter().map(|&i| records[i].body.len() + 5).sum());
    let mut max_ts = i64::MIN;
    for &i in keep {
        let r = &records[i];
        let ts = old_base_ts.saturating_add(r.ts_delta);
        max_ts = max_ts.max(ts);
        if base_ts == old_base_ts {
            put_varint(&mut section, r.body.len() as i64);
            section.extend_from_slice(r.body);
        } else {
            let mut ts_bytes = Vec::with_capacity(10);
            put_varint(&mut ts_bytes, ts.saturating_sub(base_ts));
            let len = r.body.len() - (r.ts_at.1 - r.ts_at.0) + ts_bytes.len();
            put_varint(&mut section, len as i64);
            section.extend_from_slice(&r.body[..r.ts_at.0]);
            section.extend_from_slice(&ts_bytes);
            section.extend_from_slice(&r.body[r.ts_at.1..]);
        }
    }
    let mut attributes = h.attributes;
    if horizon.is_some() {
        attributes |= DELETE_HORIZON_BIT;
    }
    let payload = if keep.is_empty() {
        attributes &= !CODEC_MASK;
        Vec::new()
    } else {
        compress(h.compression(), &section)?
    };
    // LogAppendTime batches keep their stamp; CreateTime ones the kept records' maximum.
    let max_timestamp =
        if h.timestamp_type() == crate::TimestampType::LogAppendTime || keep.is_empty() {
            h.max_timestamp
        } else {
            max_ts
        };
    let start = out.len();
    let batch_length = (HEADER_SIZE - LOG_OVERHEAD + payload.len()) as i32;
    out.extend_from_slice(&h.base_offset.to_be_bytes());
    out.extend_from_slice(&batch_length.to_be_bytes());
    out.extend_from_slice(&h.partition_leader_epoch.to_be_bytes());
    out.push(2);
    out.extend_from_slice(&[0u8; 4]); // CRC, below
    out.extend_from_slice(&attributes.to_be_bytes());
    out.extend_from_slice(&h.last_offset_delta.to_be_bytes());
    out.extend_from_slice(&base_ts.to_be_bytes());
    out.extend_from_slice(&max_timestamp.to_be_bytes());
    out.extend_from_slice(&h.producer_id.to_be_bytes());
    out.extend_from_slice(&h.producer_epoch.to_be_bytes());
    out.extend_from_slice(&h.base_sequence.to_be_bytes());
    out.extend_from_slice(&(keep.len() as i32).to_be_bytes());
    out.extend_from_slice(&payload);
    let crc = crc32c::crc32c(&out[start + ATTRIBUTES_AT..]);
    out[start + 17..start + 21].copy_from_slice(&crc.to_be_bytes());
    Ok(())
}

/// Zigzag varint/varlong (Kafka's record encoding).
fn put_varint(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use kafka_protocol::records::{Compression, RecordBatchDecoder};

    use super::*;
    use crate::testutil::{Spec, encode, records_of};

    fn keyed(pairs: &[(&str, Option<&str>)], base: i64, compression: Compression) -> Vec<u8> {
        let mut recs = records_of(
            Spec {
                records: pairs.len(),
                ..Spec::default()
            },
            None,
        );
        for (r, (k, v)) in recs.iter_mut().zip(pairs) {
            r.key = Some(Bytes::from(k.to_string()));
            r.value = v.map(|v| Bytes::from(v.to_string()));
            r.offset += base;
        }
        let mut b = encode(&recs, compression).to_vec();
        batch::patch_offset_and_epoch(&mut b, base, 3);
        b
    }

    fn decoded(bytes: &[u8]) -> Vec<(i64, String, Option<String>, i64)> {
        let mut b = Bytes::copy_from_slice(bytes);
        let mut out = Vec::new();
        while b.has_remaining() {
            let set = RecordBatchDecoder::decode(&mut b).unwrap();
            for r in set.records {
                out.push((
                    r.offset,
                    String::from_utf8(r.key.unwrap().to_vec()).unwrap(),
                    r.value.map(|v| String::from_utf8(v.to_vec()).unwrap()),
                    r.timestamp,
                ));
            }
        }
        out
    }

    #[test]
    fn keeps_the_latest_value_per_key_in_every_codec_and_rebases_tombstones() {
        for codec in [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let b1 = keyed(
                &[("a", Some("1")), ("b", Some("2")), ("a", Some("3"))],
                10,
                codec,
            );
            let b2 = keyed(&[("b", None), ("c", Some("5"))], 13, codec);
            let mut map = OffsetMap::with_memory(1 << 20);
            for b in [&b1, &b2] {
                let h = BatchHeader::parse(b).unwrap();
                assert!(add_keys(&mut map, b, &h, 0).unwrap());
            }
            assert_eq!(map.len(), 3);
            let none = HashMap::new();
            let cx = CleanContext {
                map: &map,
                now_ms: 50_000,
                delete_retention_ms: 1_000,
                producer_last: &none,
            };
            let mut cleaner = BatchCleaner::new(&[]);
            let mut out = Vec::new();
            for b in [&b1, &b2] {
                let h = BatchHeader::parse(b).unwrap();
                cleaner.clean(b, &h, &cx, &mut out).unwrap();
            }
            // a@12 and the tombstone b@13 and c@14; timestamps unchanged
            assert_eq!(
                decoded(&out),
                vec![
                    (12, "a".into(), Some("3".into()), 1002),
                    (13, "b".into(), None, 1000),
                    (14, "c".into(), Some("5".into()), 1001),
                ],
                "{codec:?}"
            );
            let hs: Vec<BatchHeader> =
                batch::validate_from(&out, u32::MAX, batch::Origin::Replication)
                    .unwrap()
                    .into_iter()
                    .map(|v| v.header)
                    .collect();
            assert_eq!(hs[0].last_offset_delta, 2, "offsets keep their place");
            assert_eq!(
                hs[0].compression(),
                BatchHeader::parse(&b1).unwrap().compression()
            );
            assert_eq!(hs[1].attributes & DELETE_HORIZON_BIT, DELETE_HORIZON_BIT);
            assert_eq!(hs[1].first_timestamp, 51_000);

            // Past the horizon, the next cleaning drops the tombstone.
            let map2 = OffsetMap::with_memory(1 << 20);
            let cx2 = CleanContext {
                now_ms: 51_000,
                map: &map2,
                ..cx
            };
            let mut again = Vec::new();
            let mut cleaner = BatchCleaner::new(&[]);
            for v in batch::validate_from(&out, u32::MAX, batch::Origin::Replication).unwrap() {
                let start = (v.header.base_offset, v.header.size());
                let pos = split_pos(&out, start.0);
                let b = &out[pos..pos + start.1 as usize];
                cleaner.clean(b, &v.header, &cx2, &mut again).unwrap();
            }
            assert_eq!(
                decoded(&again),
                vec![
                    (12, "a".into(), Some("3".into()), 1002),
                    (14, "c".into(), Some("5".into()), 1001),
                ]
            );
        }
    }

    fn split_pos(all: &[u8], base: i64) -> usize {
        let mut pos = 0;
        loop {
            let h = BatchHeader::parse(&all[pos..]).unwrap();
            if h.base_offset == base {
                return pos;
            }
            pos += h.size() as usize;
        }
    }

    #[test]
    fn lz4_frames_decode_block_by_block_like_the_frame_decoder() {
        // One block (the usual batch), many independent blocks, and an incompressible one.
        let small: Vec<u8> = (0..5_000u32).flat_map(|i| (i % 97).to_le_bytes()).collect();
        let big: Vec<u8> = (0..300_000u32)
            .flat_map(|i| (i % 1013).to_le_bytes())
            .collect();
        let noise: Vec<u8> = (0..70_000u64)
            .map(|i| (i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 56) as u8)
            .collect();
        for data in [&small, &big, &noise] {
            for frame in [compress_lz4(data).unwrap(), compress(3, data).unwrap()] {
                let fast = lz4_frame_blocks(&frame)
                    .expect("independent blocks")
                    .unwrap();
                assert_eq!(&fast, data);
            }
            // kafka-protocol's own frames (LZ4HC) decode the same way
            let mut b = BytesMut::new();
            Lz4::compress(&mut b, |t: &mut BytesMut| {
                t.put_slice(data);
                Ok(())
            })
            .unwrap();
            assert_eq!(&lz4_frame_blocks(&b).unwrap().unwrap(), data);
        }
        assert!(lz4_frame_blocks(b"not a frame").is_none());
    }

    #[test]
    fn a_full_map_refuses_new_keys_only() {
        let mut m = OffsetMap::with_memory(2 * OFFSET_MAP_ENTRY_BYTES);
        assert!(m.put(1, 10) && m.put(2, 11));
        assert!(!m.put(3, 12));
        assert!(m.put(1, 13));
        assert_eq!(
            (m.get(1), m.get(3), m.latest_offset()),
            (Some(13), None, 13)
        );
    }

    #[test]
    fn varints_round_trip() {
        for v in [0i64, 1, -1, 63, -64, 64, 1 << 40, i64::MIN, i64::MAX] {
            let mut b = Vec::new();
            put_varint(&mut b, v);
            assert_eq!(batch::read_varlong(&b), Some((v, b.len())));
        }
    }
}
