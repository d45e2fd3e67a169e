//! Kafka v2 record batches: header parsing, validation of produced bytes, in-place patching.
//!
//! A produce request carries one or more concatenated batches. [`validate_batches`] checks all
//! of them in one pass (structure, magic, size, CRC-32C, record count and — for uncompressed
//! batches — that the records' varint lengths tile the batch exactly) without decompressing or
//! allocating per record. The log then patches the few header fields the broker owns:
//! `baseOffset` and `partitionLeaderEpoch` lie *before* the CRC'd range, so assigning offsets
//! never touches the CRC; stamping LogAppendTime changes CRC'd fields, so it recomputes the
//! CRC over the batch as it is (no re-encode).
//!
//! Header layout (big-endian), as in Kafka's `DefaultRecordBatch`:
//!
//! ```text
//! 0  baseOffset i64        | 27 firstTimestamp i64  | 53 baseSequence i32
//! 8  batchLength i32       | 35 maxTimestamp i64    | 57 recordCount i32
//! 12 partitionLeaderEpoch  | 43 producerId i64      | 61 records...
//! 16 magic i8              | 51 producerEpoch i16   |
//! 17 crc u32 (CRC-32C of bytes 21..end)
//! 21 attributes i16        (bits 0-2 codec, 3 timestamp type, 4 transactional, 5 control)
//! 23 lastOffsetDelta i32
//! ```

use crate::config::TimestampType;
use crate::error::{Error, Result};

/// Size of the fixed v2 batch header; records start here.
pub const HEADER_SIZE: usize = 61;
/// `baseOffset` + `batchLength`: the part of the header not counted in `batchLength`.
pub const LOG_OVERHEAD: usize = 12;

const BATCH_LENGTH_AT: usize = 8;
const LEADER_EPOCH_AT: usize = 12;
const MAGIC_AT: usize = 16;
const CRC_AT: usize = 17;
const ATTRIBUTES_AT: usize = 21;
const FIRST_TIMESTAMP_AT: usize = 27;
const MAX_TIMESTAMP_AT: usize = 35;

const COMPRESSION_MASK: i16 = 0x07;
const TIMESTAMP_TYPE_BIT: i16 = 0x08;
const TRANSACTIONAL_BIT: i16 = 0x10;
const CONTROL_BIT: i16 = 0x20;

/// The fixed 61-byte header of a v2 record batch, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    /// Offset of the first record (assigned by the broker on append).
    pub base_offset: i64,
    /// Bytes after this field: the batch is `batch_length + 12` bytes long.
    pub batch_length: i32,
    /// Leader epoch of the broker that appended the batch.
    pub partition_leader_epoch: i32,
    /// Format version; only 2 is supported.
    pub magic: i8,
    /// CRC-32C of the bytes from `attributes` to the end of the batch.
    pub crc: u32,
    /// Codec, timestamp type, transactional and control flags.
    pub attributes: i16,
    /// Offset of the last record minus `base_offset`.
    pub last_offset_delta: i32,
    /// Timestamp the records' timestamp deltas are relative to.
    pub first_timestamp: i64,
    /// Largest record timestamp (or the append time for LogAppendTime batches).
    pub max_timestamp: i64,
    /// Idempotent producer id, -1 when none.
    pub producer_id: i64,
    /// Idempotent producer epoch, -1 when none.
    pub producer_epoch: i16,
    /// Sequence number of the first record, -1 when none.
    pub base_sequence: i32,
    /// Number of records in the batch.
    pub record_count: i32,
}

impl BatchHeader {
    /// Decodes the header at the start of `buf`. Checks only that 61 bytes are there; the
    /// values are not validated.
    pub fn parse(buf: &[u8]) -> Result<BatchHeader> {
        if buf.len() < HEADER_SIZE {
            return Err(Error::corrupt(format!(
                "batch header truncated: {} of {HEADER_SIZE} bytes",
                buf.len()
            )));
        }
        Ok(BatchHeader {
            base_offset: be_i64(buf, 0),
            batch_length: be_i32(buf, BATCH_LENGTH_AT),
            partition_leader_epoch: be_i32(buf, LEADER_EPOCH_AT),
            magic: buf[MAGIC_AT] as i8,
            crc: be_u32(buf, CRC_AT),
            attributes: be_i16(buf, ATTRIBUTES_AT),
            last_offset_delta: be_i32(buf, 23),
            first_timestamp: be_i64(buf, FIRST_TIMESTAMP_AT),
            max_timestamp: be_i64(buf, MAX_TIMESTAMP_AT),
            producer_id: be_i64(buf, 43),
            producer_epoch: be_i16(buf, 51),
            base_sequence: be_i32(buf, 53),
            record_count: be_i32(buf, 57),
        })
    }

    /// Total size of the batch in bytes, header included (`batch_length + 12`).
    pub fn size(&self) -> u64 {
        // A negative batchLength is rejected by every validator before size() matters.
        (self.batch_length.max(0) as u64) + LOG_OVERHEAD as u64
    }

    /// Offset of the last record.
    pub fn last_offset(&self) -> i64 {
        self.base_offset
            .saturating_add(i64::from(self.last_offset_delta))
    }

    /// Compression codec id: 0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd.
    pub fn compression(&self) -> u8 {
        (self.attributes & COMPRESSION_MASK) as u8
    }

    /// Whether record timestamps are producer (create) or broker (append) times.
    pub fn timestamp_type(&self) -> TimestampType {
        if self.attributes & TIMESTAMP_TYPE_BIT != 0 {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        }
    }

    /// Part of a transaction.
    pub fn is_transactional(&self) -> bool {
        self.attributes & TRANSACTIONAL_BIT != 0
    }

    /// A control batch (transaction marker).
    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL_BIT != 0
    }
}

/// A batch that passed [`validate`], with what the walk learned about it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ValidBatch {
    pub(crate) header: BatchHeader,
    /// Largest record timestamp computed from the records, for uncompressed batches (the
    /// header's `maxTimestamp` is the producer's claim and may disagree).
    pub(crate) records_max_timestamp: Option<i64>,
}

/// Validates the raw `records` field of one partition of a Produce request: one or more
/// concatenated v2 batches. Returns the headers in order, or the first problem found.
///
/// Checks, per batch and in this order: enough bytes for the header and a `batchLength`
/// consistent with the input ([`Error::CorruptMessage`]); magic 2 ([`Error::InvalidRecord`]);
/// size within `max_message_bytes` ([`Error::MessageTooLarge`]); CRC-32C
/// ([`Error::CorruptMessage`]); a known codec, `recordCount > 0`, `lastOffsetDelta ==
/// recordCount - 1`, no control flag, producer fields present when they must be (a
/// transactional batch, or any batch with `producerId >= 0`, needs `producerId`,
/// `producerEpoch` and `baseSequence` all `>= 0`), and for uncompressed batches that the
/// records (by their varint lengths) are exactly `recordCount` with offset deltas `0..count`
/// filling the batch ([`Error::InvalidRecord`]). Compressed batches are never decompressed.
pub fn validate_batches(records: &[u8], max_message_bytes: u32) -> Result<Vec<BatchHeader>> {
    Ok(validate(records, max_message_bytes)?
        .into_iter()
        .map(|b| b.header)
        .collect())
}

/// Who wrote the batches being validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    /// A producer (Produce request): no control batches, producer fields checked.
    Client,
    /// The partition leader (a follower copying its log): markers and transactional batches
    /// are taken as the leader wrote them.
    Replication,
}

/// [`validate_batches`] keeping what the log needs beyond the header.
pub(crate) fn validate(records: &[u8], max_message_bytes: u32) -> Result<Vec<ValidBatch>> {
    validate_from(records, max_message_bytes, Origin::Client)
}

/// [`validate`] for batches from `origin`.
pub(crate) fn validate_from(
    records: &[u8],
    max_message_bytes: u32,
    origin: Origin,
) -> Result<Vec<ValidBatch>> {
    if records.is_empty() {
        return Err(Error::invalid("empty record set"));
    }
    // Batches are usually >= 1 KiB; a rough guess avoids regrowth without over-allocating.
    let mut out = Vec::with_capacity(records.len().div_ceil(16 * 1024).min(64));
    let mut pos = 0usize;
    let mut index = 0usize;
    while pos < records.len() {
        let rest = &records[pos..];
        let (batch, header) = frame(rest)
            .map_err(|reason| Error::corrupt(format!("batch {index} at byte {pos}: {reason}")))?;
        if header.magic != 2 {
            return Err(Error::invalid(format!(
                "batch {index} at byte {pos}: magic {} is not supported (only 2)",
                header.magic
            )));
        }
        if header.size() > u64::from(max_message_bytes) {
            return Err(Error::MessageTooLarge {
                size: header.size(),
                max: max_message_bytes,
            });
        }
        let actual = crc32c::crc32c(&batch[ATTRIBUTES_AT..]);
        if actual != header.crc {
            return Err(Error::corrupt(format!(
                "batch {index} at byte {pos}: crc-32c mismatch: stored={:#010x}, computed={actual:#010x}",
                header.crc
            )));
        }
        let records_max_timestamp = check_contents(batch, &header, origin)
            .map_err(|reason| Error::invalid(format!("batch {index} at byte {pos}: {reason}")))?;
        out.push(ValidBatch {
            header,
            records_max_timestamp,
        });
        pos += batch.len();
        index += 1;
    }
    Ok(out)
}

/// Splits the first batch off `buf`: header present, `batchLength` within bounds. Returns the
/// batch bytes and its header, or why it cannot be framed.
pub(crate) fn frame(buf: &[u8]) -> std::result::Result<(&[u8], BatchHeader), String> {
    if buf.len() < HEADER_SIZE {
        return Err(format!(
            "truncated: {} bytes left, a batch header needs {HEADER_SIZE}",
            buf.len()
        ));
    }
    let header = BatchHeader::parse(buf).map_err(|e| e.to_string())?;
    if header.batch_length < (HEADER_SIZE - LOG_OVERHEAD) as i32 {
        return Err(format!(
            "batchLength {} is shorter than the {} header bytes it must cover",
            header.batch_length,
            HEADER_SIZE - LOG_OVERHEAD
        ));
    }
    let size = header.size();
    if size > buf.len() as u64 {
        return Err(format!(
            "batchLength {} needs {size} bytes but only {} remain",
            header.batch_length,
            buf.len()
        ));
    }
    Ok((&buf[..size as usize], header))
}

/// Semantic checks after the CRC: flags, counts and (uncompressed) the record framing.
/// Returns the largest record timestamp for uncompressed batches.
fn check_contents(
    batch: &[u8],
    header: &BatchHeader,
    origin: Origin,
) -> std::result::Result<Option<i64>, String> {
    let codec = header.compression();
    if codec > 4 {
        return Err(format!("unknown compression codec {codec}"));
    }
    if origin == Origin::Client {
        if header.is_control() {
            return Err("control batches may not be produced".into());
        }
        check_producer_fields(header)?;
    }
    // A compacted log holds batches that lost records (their offsets keep their places, so
    // `lastOffsetDelta` may exceed `recordCount - 1`) and emptied batches: a follower copies
    // them as the leader has them. A producer's batch is always whole.
    let compacted = origin == Origin::Replication;
    if header.record_count < 0 || (header.record_count == 0 && !compacted) {
        return Err(format!(
            "record count {} must be positive",
            header.record_count
        ));
    }
    let whole = i64::from(header.last_offset_delta) == i64::from(header.record_count) - 1;
    if !(whole || (compacted && header.last_offset_delta >= header.record_count - 1)) {
        return Err(format!(
            "lastOffsetDelta {} does not match record count {}",
            header.last_offset_delta, header.record_count
        ));
    }
    if codec != 0 {
        return Ok(None);
    }
    if header.record_count == 0 {
        if batch.len() != HEADER_SIZE {
            return Err("an empty batch holds bytes after its header".into());
        }
        return Ok(Some(header.max_timestamp));
    }
    walk_records(&batch[HEADER_SIZE..], header, whole).map(Some)
}

/// A transactional batch, or any batch with a producer id, must carry a producer id, epoch
/// and base sequence (Kafka's `LogValidator`).
fn check_producer_fields(h: &BatchHeader) -> std::result::Result<(), String> {
    if !h.is_transactional() && h.producer_id < 0 {
        return Ok(());
    }
    if h.producer_id < 0 || h.producer_epoch < 0 || h.base_sequence < 0 {
        let what = if h.is_transactional() {
            "transactional"
        } else {
            "idempotent"
        };
        return Err(format!(
            "{what} batch needs producerId, producerEpoch and baseSequence >= 0: producer_id={}, producer_epoch={}, base_sequence={}",
            h.producer_id, h.producer_epoch, h.base_sequence
        ));
    }
    Ok(())
}

/// Walks the uncompressed records by their varint lengths: exactly `record_count` records with
/// offset deltas `0, 1, ...` (`whole`), or strictly increasing up to `lastOffsetDelta` (a
/// compacted batch), must fill `body`. Returns the largest record timestamp.
fn walk_records(
    body: &[u8],
    header: &BatchHeader,
    whole: bool,
) -> std::result::Result<i64, String> {
    let mut pos = 0usize;
    let mut max_delta = i64::MIN;
    let mut prev_delta = -1i32;
    for i in 0..header.record_count {
        let (len, n) = read_varint(&body[pos..])
            .ok_or_else(|| format!("record {i}: bad length varint at byte {pos}"))?;
        pos += n;
        if len <= 0 || len as usize > body.len() - pos {
            return Err(format!(
                "record {i}: length {len} does not fit the {} bytes left",
                body.len() - pos
            ));
        }
        let end = pos + len as usize;
        let rec = &body[pos..end];
        // attributes (1 byte), timestampDelta varlong, offsetDelta varint
        let (ts_delta, n1) = rec
            .get(1..)
            .and_then(read_varlong)
            .ok_or_else(|| format!("record {i}: bad timestamp delta"))?;
        let (off_delta, _) = rec
            .get(1 + n1..)
            .and_then(read_varint)
            .ok_or_else(|| format!("record {i}: bad offset delta"))?;
        if whole && off_delta != i {
            return Err(format!(
                "record {i}: offset delta {off_delta}, expected {i}"
            ));
        }
        if !whole && (off_delta <= prev_delta || off_delta > header.last_offset_delta) {
            return Err(format!(
                "record {i}: offset delta {off_delta} after {prev_delta}, last {}",
                header.last_offset_delta
            ));
        }
        prev_delta = off_delta;
        max_delta = max_delta.max(ts_delta);
        pos = end;
    }
    if pos != body.len() {
        return Err(format!(
            "{} records end at byte {pos} of a {}-byte record section",
            header.record_count,
            body.len()
        ));
    }
    Ok(header.first_timestamp.saturating_add(max_delta))
}

/// Zigzag varint (i32), as Kafka encodes record fields. Returns value and bytes consumed.
pub(crate) fn read_varint(buf: &[u8]) -> Option<(i32, usize)> {
    let (raw, n) = read_unsigned(buf, 5)?;
    let raw = u32::try_from(raw).ok()?;
    Some((((raw >> 1) as i32) ^ -((raw & 1) as i32), n))
}

/// Zigzag varlong (i64). Returns value and bytes consumed.
pub(crate) fn read_varlong(buf: &[u8]) -> Option<(i64, usize)> {
    let (raw, n) = read_unsigned(buf, 10)?;
    Some((((raw >> 1) as i64) ^ -((raw & 1) as i64), n))
}

fn read_unsigned(buf: &[u8], max_bytes: usize) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for (i, &b) in buf.iter().take(max_bytes).enumerate() {
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

/// Writes the broker-owned fields outside the CRC: `baseOffset` and `partitionLeaderEpoch`.
pub(crate) fn patch_offset_and_epoch(batch: &mut [u8], base_offset: i64, leader_epoch: i32) {
    batch[..8].copy_from_slice(&base_offset.to_be_bytes());
    batch[LEADER_EPOCH_AT..LEADER_EPOCH_AT + 4].copy_from_slice(&leader_epoch.to_be_bytes());
}

/// Stamps a batch with LogAppendTime: sets the timestamp-type bit and first/max timestamps to
/// `now_ms`, then recomputes the CRC.
pub(crate) fn set_log_append_time(batch: &mut [u8], now_ms: i64) {
    let attributes = be_i16(batch, ATTRIBUTES_AT) | TIMESTAMP_TYPE_BIT;
    batch[ATTRIBUTES_AT..ATTRIBUTES_AT + 2].copy_from_slice(&attributes.to_be_bytes());
    batch[FIRST_TIMESTAMP_AT..FIRST_TIMESTAMP_AT + 8].copy_from_slice(&now_ms.to_be_bytes());
    batch[MAX_TIMESTAMP_AT..MAX_TIMESTAMP_AT + 8].copy_from_slice(&now_ms.to_be_bytes());
    recompute_crc(batch);
}

/// Corrects a producer's `maxTimestamp` to the records' real maximum (Kafka does the same),
/// then recomputes the CRC.
pub(crate) fn set_max_timestamp(batch: &mut [u8], max_timestamp: i64) {
    batch[MAX_TIMESTAMP_AT..MAX_TIMESTAMP_AT + 8].copy_from_slice(&max_timestamp.to_be_bytes());
    recompute_crc(batch);
}

fn recompute_crc(batch: &mut [u8]) {
    let crc = crc32c::crc32c(&batch[ATTRIBUTES_AT..]);
    batch[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
}

/// Checks a stored batch's CRC (recovery and reads).
/// Checks the framing and CRC-32C of a run of record batches that arrives in pieces of any
/// size (a segment streamed to object storage), buffering nothing but one header.
#[derive(Debug, Default)]
pub(crate) struct BatchStream {
    /// Bytes fed so far.
    pos: u64,
    /// The current batch's header while it is incomplete.
    header: Vec<u8>,
    /// Bytes of the current batch still to come after its header (0: between batches).
    left: u64,
    /// CRC-32C so far of the current batch (from `attributes`) and the one it must reach.
    crc: u32,
    expected: u32,
    /// Where the current batch starts.
    start: u64,
}

impl BatchStream {
    /// Feeds the next piece; `Err((position of the bad batch, what was wrong))` at the first
    /// batch that fails.
    pub(crate) fn feed(&mut self, mut piece: &[u8]) -> std::result::Result<(), (u64, String)> {
        while !piece.is_empty() {
            if self.left == 0 {
                if self.header.is_empty() {
                    self.start = self.pos;
                }
                let n = (HEADER_SIZE - self.header.len()).min(piece.len());
                self.header.extend_from_slice(&piece[..n]);
                self.pos += n as u64;
                piece = &piece[n..];
                if self.header.len() < HEADER_SIZE {
                    return Ok(());
                }
                let h =
                    BatchHeader::parse(&self.header).map_err(|e| (self.start, e.to_string()))?;
                if h.magic != 2 || h.batch_length < (HEADER_SIZE - LOG_OVERHEAD) as i32 {
                    return Err((
                        self.start,
                        format!("magic {} / batchLength {}", h.magic, h.batch_length),
                    ));
                }
                self.crc = crc32c::crc32c(&self.header[ATTRIBUTES_AT..]);
                self.expected = h.crc;
                self.left = h.size() - HEADER_SIZE as u64;
                self.header.clear();
            } else {
                let n = (self.left.min(piece.len() as u64)) as usize;
                self.crc = crc32c::crc32c_append(self.crc, &piece[..n]);
                self.left -= n as u64;
                self.pos += n as u64;
                piece = &piece[n..];
            }
            if self.left == 0 && self.header.is_empty() && self.crc != self.expected {
                return Err((self.start, "crc-32c mismatch".into()));
            }
        }
        Ok(())
    }

    /// The stream ended: `Err` if it ended inside a batch.
    pub(crate) fn finish(&self) -> std::result::Result<(), (u64, String)> {
        if self.left > 0 || !self.header.is_empty() {
            return Err((self.start, "the last batch is cut short".into()));
        }
        Ok(())
    }
}

pub(crate) fn crc_matches(batch: &[u8], header: &BatchHeader) -> bool {
    crc32c::crc32c(&batch[ATTRIBUTES_AT..]) == header.crc
}

fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}

fn be_i32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn be_u32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn be_i64(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(a)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use bytes::Bytes;
    use kafka_protocol::records::Compression;

    use super::*;
    use crate::ErrorKind;
    use crate::testutil::{Spec, batch, concat, fix_crc, simple};

    #[test]
    fn a_batch_stream_checks_batches_cut_into_any_pieces() {
        let run = concat(&[simple(3, 0), simple(7, 0), simple(1, 0)]);
        let second = simple(3, 0).len();
        for piece in [1, 7, 61, 62, 1000] {
            let mut ok = BatchStream::default();
            run.chunks(piece).for_each(|c| ok.feed(c).unwrap());
            ok.finish().unwrap();

            let mut bad = run.to_vec();
            bad[second + 70] ^= 1;
            let mut v = BatchStream::default();
            let err = bad.chunks(piece).find_map(|c| v.feed(c).err()).unwrap();
            assert_eq!(err.0, second as u64, "piece size {piece}");

            let mut cut = BatchStream::default();
            cut.feed(&run[..run.len() - 1]).unwrap();
            assert_eq!(
                cut.finish().unwrap_err().0,
                (run.len() - simple(1, 0).len()) as u64
            );
        }
    }

    fn edit(b: &Bytes, f: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
        let mut v = b.to_vec();
        f(&mut v);
        v
    }

    fn assert_corrupt(r: Result<Vec<BatchHeader>>) {
        match r {
            Err(e @ Error::CorruptMessage { .. }) => assert_eq!(e.kind(), ErrorKind::Invalid),
            other => panic!("expected CorruptMessage, got {other:?}"),
        }
    }

    fn assert_invalid(r: Result<Vec<BatchHeader>>, needle: &str) {
        match r {
            Err(e @ Error::InvalidRecord { .. }) => {
                assert!(
                    e.to_string().contains(needle),
                    "{e} should mention {needle:?}"
                );
                assert_eq!(e.kind(), ErrorKind::Invalid);
            }
            other => panic!("expected InvalidRecord({needle}), got {other:?}"),
        }
    }

    #[test]
    fn accepts_well_formed_batches() {
        let input = concat(&[
            simple(3, 10),
            batch(Spec {
                records: 7,
                compression: Compression::Gzip,
                ..Spec::default()
            }),
            batch(Spec {
                records: 2,
                compression: Compression::Zstd,
                ..Spec::default()
            }),
        ]);
        let headers = validate_batches(&input, 1 << 20).unwrap();
        assert_eq!(headers.len(), 3);
        assert_eq!(headers[0].record_count, 3);
        assert_eq!(headers[0].last_offset_delta, 2);
        assert_eq!(
            (headers[0].first_timestamp, headers[0].max_timestamp),
            (10, 12)
        );
        assert_eq!(headers[1].compression(), 1);
        assert_eq!(headers[2].compression(), 4);
        assert_eq!(headers[0].timestamp_type(), TimestampType::CreateTime);
        let total: u64 = headers.iter().map(|h| h.size()).sum();
        assert_eq!(total, input.len() as u64);
        let v = validate(&input, 1 << 20).unwrap();
        assert_eq!(v[0].records_max_timestamp, Some(12));
        assert_eq!(
            v[1].records_max_timestamp, None,
            "compressed: not decompressed"
        );
    }

    #[test]
    fn compressed_payload_is_not_decompressed() {
        // garbage in a "gzip" batch with a valid CRC passes: validation never inflates it
        let b = batch(Spec {
            records: 4,
            compression: Compression::Gzip,
            ..Spec::default()
        });
        let bad = edit(&b, |v| {
            for x in &mut v[HEADER_SIZE..] {
                *x = 0x5a;
            }
            fix_crc(v);
        });
        validate_batches(&bad, 1 << 20).unwrap();
    }

    #[test]
    fn rejects_empty_and_truncated_input() {
        assert_invalid(validate_batches(&[], 100), "empty");
        let b = simple(3, 0);
        assert_corrupt(validate_batches(&b[..40], 1 << 20));
        assert_corrupt(validate_batches(&b[..b.len() - 1], 1 << 20));
        // a whole batch followed by a partial one
        let two = concat(&[b.clone(), b.clone()]);
        assert_corrupt(validate_batches(&two[..two.len() - 10], 1 << 20));
        // trailing bytes shorter than a header
        let tail = concat(&[b.clone(), Bytes::from_static(&[0u8; 7])]);
        assert_corrupt(validate_batches(&tail, 1 << 20));
    }

    #[test]
    fn rejects_inconsistent_batch_length() {
        let b = simple(3, 0);
        let short = edit(&b, |v| v[8..12].copy_from_slice(&40i32.to_be_bytes()));
        assert_corrupt(validate_batches(&short, 1 << 20));
        let negative = edit(&b, |v| v[8..12].copy_from_slice(&(-1i32).to_be_bytes()));
        assert_corrupt(validate_batches(&negative, 1 << 20));
        let long = edit(&b, |v| {
            let len = i32::from_be_bytes([v[8], v[9], v[10], v[11]]) + 1;
            v[8..12].copy_from_slice(&len.to_be_bytes());
        });
        assert_corrupt(validate_batches(&long, 1 << 20));
    }

    #[test]
    fn rejects_old_magic() {
        let b = simple(1, 0);
        let v1 = edit(&b, |v| v[MAGIC_AT] = 1);
        assert_invalid(validate_batches(&v1, 1 << 20), "magic 1");
    }

    #[test]
    fn rejects_crc_mismatch() {
        let b = simple(3, 0);
        let flipped = edit(&b, |v| {
            let last = v.len() - 1;
            v[last] ^= 0x40;
        });
        assert_corrupt(validate_batches(&flipped, 1 << 20));
        // the fields outside the CRC are free to change
        let patched = edit(&b, |v| patch_offset_and_epoch(v, 12345, 77));
        validate_batches(&patched, 1 << 20).unwrap();
    }

    #[test]
    fn rejects_too_large_batch() {
        let b = simple(3, 0);
        let size = b.len() as u64;
        match validate_batches(&b, (size - 1) as u32) {
            Err(Error::MessageTooLarge { size: s, max }) => {
                assert_eq!((s, u64::from(max)), (size, size - 1));
            }
            other => panic!("expected MessageTooLarge, got {other:?}"),
        }
        validate_batches(&b, size as u32).unwrap();
    }

    #[test]
    fn rejects_bad_record_counts() {
        let b = simple(3, 0);
        let zero = edit(&b, |v| {
            v[57..61].copy_from_slice(&0i32.to_be_bytes());
            fix_crc(v);
        });
        assert_invalid(validate_batches(&zero, 1 << 20), "record count 0");
        let neg = edit(&b, |v| {
            v[57..61].copy_from_slice(&(-3i32).to_be_bytes());
            fix_crc(v);
        });
        assert_invalid(validate_batches(&neg, 1 << 20), "record count -3");
        let delta = edit(&b, |v| {
            v[23..27].copy_from_slice(&5i32.to_be_bytes());
            fix_crc(v);
        });
        assert_invalid(validate_batches(&delta, 1 << 20), "lastOffsetDelta 5");
        // claims 4 records, holds 3
        let more = edit(&b, |v| {
            v[57..61].copy_from_slice(&4i32.to_be_bytes());
            v[23..27].copy_from_slice(&3i32.to_be_bytes());
            fix_crc(v);
        });
        assert_invalid(validate_batches(&more, 1 << 20), "record 3");
        // claims 2 records, holds 3: the records do not fill the batch
        let fewer = edit(&b, |v| {
            v[57..61].copy_from_slice(&2i32.to_be_bytes());
            v[23..27].copy_from_slice(&1i32.to_be_bytes());
            fix_crc(v);
        });
        assert_invalid(validate_batches(&fewer, 1 << 20), "record section");
    }

    #[test]
    fn rejects_records_with_wrong_offset_deltas() {
        let spec = Spec {
            records: 3,
            ..Spec::default()
        };
        let mut recs = crate::testutil::records_of(spec, None);
        recs[2].offset = 3;
        recs[2].sequence = 3;
        let b = crate::testutil::encode(&recs, Compression::None);
        assert_invalid(validate_batches(&b, 1 << 20), "lastOffsetDelta 3");
        let fixed_delta = edit(&b, |v| {
            v[23..27].copy_from_slice(&2i32.to_be_bytes());
            fix_crc(v);
        });
        assert_invalid(validate_batches(&fixed_delta, 1 << 20), "offset delta 3");
    }

    #[test]
    fn rejects_bad_record_lengths() {
        let b = simple(2, 0);
        // first record's length varint (zigzag) made huge
        let huge = edit(&b, |v| {
            v[HEADER_SIZE] = 0xfe;
            fix_crc(v);
        });
        assert_invalid(validate_batches(&huge, 1 << 20), "record 0");
        let zero = edit(&b, |v| {
            v[HEADER_SIZE] = 0x00;
            fix_crc(v);
        });
        assert_invalid(validate_batches(&zero, 1 << 20), "record 0");
    }

    #[test]
    fn rejects_control_and_unknown_codec_accepts_transactions() {
        let b = simple(1, 0);
        let set_attr = |bits: i16| {
            edit(&b, |v| {
                let a = be_i16(v, ATTRIBUTES_AT) | bits;
                v[ATTRIBUTES_AT..ATTRIBUTES_AT + 2].copy_from_slice(&a.to_be_bytes());
                fix_crc(v);
            })
        };
        assert_invalid(validate_batches(&set_attr(CONTROL_BIT), 1 << 20), "control");
        // transactional without a producer id
        assert_invalid(
            validate_batches(&set_attr(TRANSACTIONAL_BIT), 1 << 20),
            "transactional",
        );
        assert_invalid(validate_batches(&set_attr(5), 1 << 20), "codec 5");
        // a transactional batch straight from the encoder is accepted
        let spec = Spec::default();
        let with = |txn: bool, pid: i64, epoch: i16, seq: i32| {
            let mut recs = crate::testutil::records_of(spec, None);
            recs[0].transactional = txn;
            recs[0].producer_id = pid;
            recs[0].producer_epoch = epoch;
            recs[0].sequence = seq;
            crate::testutil::encode(&recs, Compression::None)
        };
        let h = validate_batches(&with(true, 5, 0, 0), 1 << 20).unwrap()[0];
        assert!(h.is_transactional());
        assert_eq!(
            (h.producer_id, h.producer_epoch, h.base_sequence),
            (5, 0, 0)
        );
        assert_invalid(
            validate_batches(&with(true, 5, -1, 0), 1 << 20),
            "transactional",
        );
        // idempotent batches need an epoch and a sequence too
        validate_batches(&with(false, 5, 3, 7), 1 << 20).unwrap();
        assert_invalid(
            validate_batches(&with(false, 5, 0, -1), 1 << 20),
            "idempotent",
        );
        assert_invalid(
            validate_batches(&with(false, 5, -1, 0), 1 << 20),
            "idempotent",
        );
        // followers take markers and transactional batches as the leader wrote them
        let marker = set_attr(CONTROL_BIT | TRANSACTIONAL_BIT);
        validate_from(&marker, 1 << 20, Origin::Replication).unwrap();
    }

    #[test]
    fn rejection_in_a_later_batch_names_it() {
        let bad = edit(&simple(1, 0), |v| v[MAGIC_AT] = 0);
        let input = concat(&[simple(1, 0), simple(2, 0), Bytes::from(bad)]);
        let e = validate_batches(&input, 1 << 20).unwrap_err();
        assert!(
            e.to_string().starts_with("invalid record: batch 2 at byte"),
            "{e}"
        );
    }

    #[test]
    fn log_append_time_patch_keeps_crc_valid() {
        let b = simple(3, 100);
        let mut v = b.to_vec();
        set_log_append_time(&mut v, 999);
        let h = validate_batches(&v, 1 << 20).unwrap()[0];
        assert_eq!(h.timestamp_type(), TimestampType::LogAppendTime);
        assert_eq!((h.first_timestamp, h.max_timestamp), (999, 999));
        assert_eq!(&v[HEADER_SIZE..], &b[HEADER_SIZE..], "records untouched");
    }

    #[test]
    fn varints_decode_like_kafka() {
        assert_eq!(read_varint(&[0x00]), Some((0, 1)));
        assert_eq!(read_varint(&[0x01]), Some((-1, 1)));
        assert_eq!(read_varint(&[0x02]), Some((1, 1)));
        assert_eq!(read_varint(&[0xac, 0x02]), Some((150, 2)));
        assert_eq!(
            read_varint(&[0xff, 0xff, 0xff, 0xff, 0x0f]),
            Some((i32::MIN, 5))
        );
        assert_eq!(read_varint(&[0x80, 0x80]), None, "unterminated");
        assert_eq!(
            read_varint(&[0xff, 0xff, 0xff, 0xff, 0xff, 0x01]),
            None,
            "too long"
        );
        assert_eq!(read_varlong(&[0x03]), Some((-2, 1)));
    }
}
