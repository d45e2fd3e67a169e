//! Idempotent and transactional producers (KIP-98, KIP-360): what a partition remembers about
//! each producer id, transaction markers, and aborted transactions (Kafka's
//! `ProducerStateManager` and `TransactionIndex`).
//!
//! # Lifecycle
//!
//! A [`ProducerState`] lives inside the partition log and changes only under its writer lock.
//! The leader checks every client batch with a producer id against it
//! ([`ProducerState::check_client`]: duplicate, fenced epoch, sequence gap, transaction
//! state) before anything is written, and applies the batch once it is in the log
//! ([`ProducerState::apply`]); followers and recovery apply batches without checking, so every
//! replica derives the same state from the same bytes. A control batch (transaction marker,
//! built by [`control_batch`]) ends its producer's ongoing transaction; an abort marker yields
//! an [`AbortedTxn`] that the log writes to the transaction index of the segment holding the
//! marker, which is how `read_committed` consumers learn what to skip.
//!
//! The state is persisted as snapshots (`<offset>.snapshot`, see
//! [`ProducerState::encode_snapshot`] and `FORMAT.md`) at segment rolls and at close, and
//! rebuilt on open from the newest valid snapshot plus the batch headers after it.
//!
//! The checks cost one `HashMap` lookup per batch; the only allocation is a new producer's
//! entry (with its fixed ring of the last [`BATCHES_KEPT`] batches).

use std::collections::{BTreeMap, HashMap, VecDeque};

use bytes::{BufMut, Bytes, BytesMut};

use crate::batch::{self, BatchHeader, HEADER_SIZE, LOG_OVERHEAD, ValidBatch};
use crate::error::{Error, Result};

/// Batches remembered per producer to recognise a retried one (Kafka: 5, the most a producer
/// keeps in flight with idempotence on).
pub(crate) const BATCHES_KEPT: usize = 5;

/// Control batch attributes: transactional (0x10) and control (0x20).
const CONTROL_ATTRIBUTES: i16 = 0x30;

/// The kind of a transaction marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ControlType {
    /// The transaction's records are to be skipped by `read_committed` consumers.
    Abort,
    /// The transaction's records are visible.
    Commit,
}

impl ControlType {
    /// The type field of Kafka's control record key.
    fn code(self) -> i16 {
        match self {
            ControlType::Abort => 0,
            ControlType::Commit => 1,
        }
    }
}

/// An aborted transaction, as recorded in a segment's transaction index (Kafka's
/// `AbortedTxn`, and the `aborted_transactions` of a Fetch response).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxn {
    /// The producer that aborted.
    pub producer_id: i64,
    /// Offset of the transaction's first batch.
    pub first_offset: i64,
    /// Offset of the abort marker.
    pub last_offset: i64,
    /// The first unstable offset once this transaction was complete (the log end after the
    /// marker when no other transaction was ongoing).
    pub last_stable_offset: i64,
}

impl AbortedTxn {
    /// Size of one `.txnindex` entry.
    pub(crate) const SIZE: usize = 34;

    /// Kafka's on-disk entry: version i16 (0), producer id, first, last and last stable
    /// offsets, big-endian.
    pub(crate) fn encode(&self) -> [u8; Self::SIZE] {
        let mut b = [0u8; Self::SIZE];
        b[2..10].copy_from_slice(&self.producer_id.to_be_bytes());
        b[10..18].copy_from_slice(&self.first_offset.to_be_bytes());
        b[18..26].copy_from_slice(&self.last_offset.to_be_bytes());
        b[26..34].copy_from_slice(&self.last_stable_offset.to_be_bytes());
        b
    }

    /// Decodes one entry; `None` for a short buffer or an unknown version.
    pub(crate) fn decode(b: &[u8]) -> Option<AbortedTxn> {
        let mut r = Reader(b.get(..Self::SIZE)?);
        if r.i16()? != 0 {
            return None;
        }
        Some(AbortedTxn {
            producer_id: r.i64()?,
            first_offset: r.i64()?,
            last_offset: r.i64()?,
            last_stable_offset: r.i64()?,
        })
    }
}

/// What a partition knows about one producer (DescribeProducers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerEntry {
    /// The producer id.
    pub producer_id: i64,
    /// Its current epoch.
    pub producer_epoch: i16,
    /// Sequence of its last record appended, -1 when none in this epoch.
    pub last_sequence: i32,
    /// Max timestamp of its last batch or marker (ms).
    pub last_timestamp: i64,
    /// Coordinator epoch of its last marker, -1 when none.
    pub coordinator_epoch: i32,
    /// First offset of its ongoing transaction, if any.
    pub current_txn_start_offset: Option<i64>,
}

/// Builds one transaction marker (Kafka's `EndTransactionMarker`): a control, transactional
/// batch at base offset 0 with one record whose key is (version 0, type: 0 abort / 1
/// commit) and whose value is (version 0, `coordinator_epoch`), CRC-32C set. The log patches
/// the offset and leader epoch when it appends it.
pub fn control_batch(
    producer_id: i64,
    producer_epoch: i16,
    control: ControlType,
    coordinator_epoch: i32,
    timestamp_ms: i64,
) -> Bytes {
    // The record: length, attributes, timestamp delta, offset delta, key length, key (4),
    // value length, value (6), header count. Every varint here is one byte.
    const RECORD_BODY: u8 = 16;
    let size = HEADER_SIZE + 1 + usize::from(RECORD_BODY);
    let mut b = BytesMut::with_capacity(size);
    b.put_i64(0); // baseOffset
    b.put_i32((size - LOG_OVERHEAD) as i32);
    b.put_i32(-1); // partitionLeaderEpoch
    b.put_i8(2); // magic
    b.put_u32(0); // crc, set below
    b.put_i16(CONTROL_ATTRIBUTES);
    b.put_i32(0); // lastOffsetDelta
    b.put_i64(timestamp_ms);
    b.put_i64(timestamp_ms);
    b.put_i64(producer_id);
    b.put_i16(producer_epoch);
    b.put_i32(-1); // baseSequence
    b.put_i32(1); // recordCount
    b.put_u8(RECORD_BODY << 1); // zigzag length
    b.put_u8(0); // attributes
    b.put_u8(0); // timestamp delta
    b.put_u8(0); // offset delta
    b.put_u8(4 << 1); // key length
    b.put_i16(0);
    b.put_i16(control.code());
    b.put_u8(6 << 1); // value length
    b.put_i16(0);
    b.put_i32(coordinator_epoch);
    b.put_u8(0); // headers
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b.freeze()
}

/// The marker type and coordinator epoch of a control batch (the whole batch's bytes), or
/// `None` if it is not a well-formed uncompressed control batch.
pub fn parse_control(batch_bytes: &[u8]) -> Option<(ControlType, i32)> {
    let h = BatchHeader::parse(batch_bytes).ok()?;
    if !h.is_control() || h.record_count < 1 || h.compression() != 0 {
        return None;
    }
    let body = batch_bytes.get(HEADER_SIZE..usize::try_from(h.size()).ok()?)?;
    let (_, n) = batch::read_varint(body)?;
    let mut p = n + 1; // the record's length, then its attributes
    let (_, n) = batch::read_varlong(body.get(p..)?)?;
    p += n;
    let (_, n) = batch::read_varint(body.get(p..)?)?;
    p += n;
    let (key_len, n) = batch::read_varint(body.get(p..)?)?;
    p += n;
    let key_len = usize::try_from(key_len).ok().filter(|l| *l >= 4)?;
    let control = match Reader(body.get(p + 2..p + 4)?).i16()? {
        0 => ControlType::Abort,
        1 => ControlType::Commit,
        _ => return None,
    };
    p += key_len;
    let (value_len, n) = batch::read_varint(body.get(p..)?)?;
    p += n;
    let coordinator_epoch = if value_len >= 6 {
        Reader(body.get(p + 2..p + 6)?).i32()?
    } else {
        -1
    };
    Some((control, coordinator_epoch))
}

/// The sequence of a batch's last record: `base + delta`, wrapping to 0 after `i32::MAX`
/// (Kafka's `DefaultRecordBatch.incrementSequence`). -1 stays -1.
pub(crate) fn last_sequence(base: i32, delta: i32) -> i32 {
    if base < 0 {
        return base;
    }
    ((i64::from(base) + i64::from(delta.max(0))) % (i64::from(i32::MAX) + 1)) as i32
}

fn next_sequence(last: i32) -> i32 {
    if last == i32::MAX { 0 } else { last + 1 }
}

/// One batch as the producer state sees it, at its final offsets.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BatchInfo {
    producer_id: i64,
    epoch: i16,
    first_seq: i32,
    last_seq: i32,
    first_offset: i64,
    last_offset: i64,
    timestamp: i64,
    transactional: bool,
    /// For a control batch: the marker it carries.
    control: Option<(ControlType, i32)>,
}

impl BatchInfo {
    /// The batch with header `h` written at `first_offset`, with max timestamp `timestamp`.
    /// `control` is the parsed marker of a control batch. `None` for batches without a
    /// producer id and for control batches whose marker could not be parsed (no state change).
    pub(crate) fn new(
        h: &BatchHeader,
        first_offset: i64,
        timestamp: i64,
        control: Option<(ControlType, i32)>,
    ) -> Option<BatchInfo> {
        if h.producer_id < 0 || (h.is_control() && control.is_none()) {
            return None;
        }
        Some(BatchInfo {
            producer_id: h.producer_id,
            epoch: h.producer_epoch,
            first_seq: h.base_sequence,
            last_seq: last_sequence(h.base_sequence, h.last_offset_delta),
            first_offset,
            last_offset: first_offset + i64::from(h.last_offset_delta),
            timestamp,
            transactional: h.is_transactional(),
            control: control.filter(|_| h.is_control()),
        })
    }

    /// A stored batch (its bytes, offsets in place); the marker is parsed from the bytes.
    pub(crate) fn stored(h: &BatchHeader, batch_bytes: &[u8]) -> Option<BatchInfo> {
        let control = if h.is_control() {
            parse_control(batch_bytes)
        } else {
            None
        };
        Self::new(h, h.base_offset, h.max_timestamp, control)
    }
}

/// Offsets and sequences of one appended batch, kept for duplicate detection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct BatchMeta {
    first_seq: i32,
    last_seq: i32,
    first_offset: i64,
    last_offset: i64,
    timestamp: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Producer {
    epoch: i16,
    /// The last [`BATCHES_KEPT`] batches of the current epoch, oldest first (capacity fixed at
    /// creation: pushing never reallocates).
    batches: VecDeque<BatchMeta>,
    last_timestamp: i64,
    coordinator_epoch: i32,
    txn_first_offset: Option<i64>,
}

impl Producer {
    fn new(epoch: i16) -> Producer {
        Producer {
            epoch,
            batches: VecDeque::with_capacity(BATCHES_KEPT),
            last_timestamp: -1,
            coordinator_epoch: -1,
            txn_first_offset: None,
        }
    }

    fn view(&self) -> View {
        View {
            epoch: self.epoch,
            last_seq: self.batches.back().map(|b| b.last_seq),
            in_txn: self.txn_first_offset.is_some(),
        }
    }

    /// Kafka's `maybeUpdateProducerEpoch`: a new epoch forgets the old epoch's batches.
    fn set_epoch(&mut self, epoch: i16) {
        if epoch != self.epoch {
            self.epoch = epoch;
            self.batches.clear();
        }
    }
}

/// What the sequence check compares a batch against.
#[derive(Debug, Clone, Copy)]
struct View {
    epoch: i16,
    last_seq: Option<i32>,
    in_txn: bool,
}

/// The outcome of [`ProducerState::check_client`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Write the batches.
    Append,
    /// A retry of a batch already in the log, at these offsets, with its max timestamp:
    /// write nothing.
    Duplicate {
        first_offset: i64,
        last_offset: i64,
        timestamp: i64,
    },
}

/// Every producer's state in one partition, plus its ongoing transactions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ProducerState {
    producers: HashMap<i64, Producer>,
    /// Ongoing transactions, first offset → producer id: the smallest key is the first
    /// unstable offset.
    ongoing: BTreeMap<i64, i64>,
}

impl ProducerState {
    /// Checks a client's batches (Kafka's `ProducerAppendInfo` for client appends), in
    /// order: the first batch that repeats one of its producer's last [`BATCHES_KEPT`]
    /// batches (same epoch and sequence range) makes the whole append a duplicate; otherwise
    /// an epoch older than the producer's is [`Error::InvalidProducerEpoch`], a sequence that
    /// does not follow is [`Error::OutOfOrderSequence`] (a new epoch must start at 0), and a
    /// non-transactional batch during the producer's transaction is
    /// [`Error::InvalidTxnState`]. An unknown producer id may start at any sequence (KIP-360).
    pub(crate) fn check_client(&self, batches: &[ValidBatch]) -> Result<Verdict> {
        // Earlier batches of the same producer in this request stand in for its stored entry
        // (only allocated for multi-batch requests).
        let mut seen: Vec<(i64, View)> = Vec::new();
        for b in batches {
            let h = &b.header;
            if h.producer_id < 0 {
                continue;
            }
            let stored = self.producers.get(&h.producer_id);
            let last_seq = last_sequence(h.base_sequence, h.last_offset_delta);
            if let Some(dup) = stored
                .filter(|p| p.epoch == h.producer_epoch)
                .and_then(|p| {
                    p.batches
                        .iter()
                        .find(|m| m.first_seq == h.base_sequence && m.last_seq == last_seq)
                })
            {
                return Ok(Verdict::Duplicate {
                    first_offset: dup.first_offset,
                    last_offset: dup.last_offset,
                    timestamp: dup.timestamp,
                });
            }
            let view = seen
                .iter()
                .rev()
                .find(|(pid, _)| *pid == h.producer_id)
                .map(|(_, v)| *v)
                .or_else(|| stored.map(Producer::view));
            if let Some(view) = view {
                check_against(h, view)?;
            }
            if batches.len() > 1 {
                let in_txn = view.is_some_and(|v| v.in_txn) || h.is_transactional();
                seen.push((
                    h.producer_id,
                    View {
                        epoch: h.producer_epoch,
                        last_seq: Some(last_seq),
                        in_txn,
                    },
                ));
            }
        }
        Ok(Verdict::Append)
    }

    /// Fences a marker whose epoch is older than its producer's.
    pub(crate) fn check_marker(&self, producer_id: i64, producer_epoch: i16) -> Result<()> {
        match self.producers.get(&producer_id) {
            Some(p) if producer_epoch < p.epoch => Err(Error::InvalidProducerEpoch {
                producer_id,
                current: p.epoch,
                found: producer_epoch,
            }),
            _ => Ok(()),
        }
    }

    /// Applies one written batch without checking it (the leader after its checks, followers,
    /// recovery). Returns the aborted transaction an abort marker completes, for the
    /// transaction index.
    pub(crate) fn apply(&mut self, b: &BatchInfo) -> Option<AbortedTxn> {
        let p = self
            .producers
            .entry(b.producer_id)
            .or_insert_with(|| Producer::new(b.epoch));
        p.set_epoch(b.epoch);
        p.last_timestamp = b.timestamp;
        if let Some((control, coordinator_epoch)) = b.control {
            p.coordinator_epoch = coordinator_epoch;
            let first = p.txn_first_offset.take()?;
            self.ongoing.remove(&first);
            return (control == ControlType::Abort).then(|| AbortedTxn {
                producer_id: b.producer_id,
                first_offset: first,
                last_offset: b.last_offset,
                last_stable_offset: self.first_unstable_offset().unwrap_or(b.last_offset + 1),
            });
        }
        if p.batches.len() == BATCHES_KEPT {
            p.batches.pop_front();
        }
        p.batches.push_back(BatchMeta {
            first_seq: b.first_seq,
            last_seq: b.last_seq,
            first_offset: b.first_offset,
            last_offset: b.last_offset,
            timestamp: b.timestamp,
        });
        if b.transactional && p.txn_first_offset.is_none() {
            p.txn_first_offset = Some(b.first_offset);
            self.ongoing.insert(b.first_offset, b.producer_id);
        }
        None
    }

    /// The smallest first offset of the ongoing transactions.
    /// Whether `producer_id` has a transaction open in this partition.
    pub(crate) fn in_transaction(&self, producer_id: i64) -> bool {
        self.producers
            .get(&producer_id)
            .is_some_and(|p| p.txn_first_offset.is_some())
    }

    pub(crate) fn first_unstable_offset(&self) -> Option<i64> {
        self.ongoing.keys().next().copied()
    }

    /// Every producer, by id.
    pub(crate) fn entries(&self) -> Vec<ProducerEntry> {
        let mut out: Vec<ProducerEntry> = self
            .producers
            .iter()
            .map(|(&producer_id, p)| ProducerEntry {
                producer_id,
                producer_epoch: p.epoch,
                last_sequence: p.batches.back().map_or(-1, |b| b.last_seq),
                last_timestamp: p.last_timestamp,
                coordinator_epoch: p.coordinator_epoch,
                current_txn_start_offset: p.txn_first_offset,
            })
            .collect();
        out.sort_unstable_by_key(|e| e.producer_id);
        out
    }

    /// Removes the producers without an ongoing transaction whose last write is at least
    /// `expiration_ms` old (Kafka's `producer.id.expiration.ms`). Returns how many.
    pub(crate) fn expire(&mut self, now_ms: i64, expiration_ms: i64) -> usize {
        let before = self.producers.len();
        self.producers.retain(|_, p| {
            p.txn_first_offset.is_some() || now_ms.saturating_sub(p.last_timestamp) < expiration_ms
        });
        before - self.producers.len()
    }

    /// Producer id → last offset of its last batch, for every producer with batches in its
    /// current epoch (the batches log compaction must keep).
    pub(crate) fn last_data_offsets(&self) -> HashMap<i64, i64> {
        self.producers
            .iter()
            .filter_map(|(&pid, p)| p.batches.back().map(|b| (pid, b.last_offset)))
            .collect()
    }

    /// Number of producers.
    pub(crate) fn len(&self) -> usize {
        self.producers.len()
    }

    /// The snapshot file's bytes for this state as of `offset` (format in `FORMAT.md`):
    ///
    /// ```text
    /// magic "TLPS" | version u16 = 1 | crc u32 (CRC-32C of the rest) | offset i64 | count u32
    /// count × (producer_id i64, epoch i16, coordinator_epoch i32, last_timestamp i64,
    ///          txn_first_offset i64 (-1: none), batches u8 (<= 5),
    ///          batches × (first_seq i32, last_seq i32, first_offset i64, last_offset i64,
    ///                     timestamp i64))
    /// ```
    pub(crate) fn encode_snapshot(&self, offset: i64) -> Vec<u8> {
        let mut ids: Vec<i64> = self.producers.keys().copied().collect();
        ids.sort_unstable();
        let mut b = Vec::with_capacity(SNAPSHOT_HEADER + ids.len() * (31 + 32 * BATCHES_KEPT));
        b.extend_from_slice(SNAPSHOT_MAGIC);
        b.put_u16(SNAPSHOT_VERSION);
        b.put_u32(0);
        b.put_i64(offset);
        b.put_u32(ids.len() as u32);
        for id in ids {
            let Some(p) = self.producers.get(&id) else {
                continue;
            };
            b.put_i64(id);
            b.put_i16(p.epoch);
            b.put_i32(p.coordinator_epoch);
            b.put_i64(p.last_timestamp);
            b.put_i64(p.txn_first_offset.unwrap_or(-1));
            b.put_u8(p.batches.len() as u8);
            for m in &p.batches {
                b.put_i32(m.first_seq);
                b.put_i32(m.last_seq);
                b.put_i64(m.first_offset);
                b.put_i64(m.last_offset);
                b.put_i64(m.timestamp);
            }
        }
        let crc = crc32c::crc32c(&b[CRC_END..]);
        b[CRC_END - 4..CRC_END].copy_from_slice(&crc.to_be_bytes());
        b
    }

    /// Decodes [`encode_snapshot`](Self::encode_snapshot)'s bytes: the offset and the state,
    /// or why they are not a valid snapshot.
    pub(crate) fn decode_snapshot(
        bytes: &[u8],
    ) -> std::result::Result<(i64, ProducerState), String> {
        if bytes.len() < SNAPSHOT_HEADER || &bytes[..4] != SNAPSHOT_MAGIC {
            return Err(format!("not a producer snapshot ({} bytes)", bytes.len()));
        }
        let mut r = Reader(&bytes[4..CRC_END]);
        let version = r.u16().unwrap_or(0);
        let stored = r.u32().unwrap_or(0);
        if version != SNAPSHOT_VERSION {
            return Err(format!("unknown snapshot version {version}"));
        }
        let computed = crc32c::crc32c(&bytes[CRC_END..]);
        if stored != computed {
            return Err(format!(
                "snapshot checksum mismatch: stored={stored:#010x}, computed={computed:#010x}"
            ));
        }
        let truncated = || "snapshot truncated".to_string();
        let mut r = Reader(&bytes[CRC_END..]);
        let offset = r.i64().ok_or_else(truncated)?;
        let count = r.u32().ok_or_else(truncated)?;
        let mut state = ProducerState::default();
        for _ in 0..count {
            let id = r.i64().ok_or_else(truncated)?;
            let mut p = Producer::new(r.i16().ok_or_else(truncated)?);
            p.coordinator_epoch = r.i32().ok_or_else(truncated)?;
            p.last_timestamp = r.i64().ok_or_else(truncated)?;
            let txn = r.i64().ok_or_else(truncated)?;
            let n = r.u8().ok_or_else(truncated)?;
            if usize::from(n) > BATCHES_KEPT {
                return Err(format!(
                    "producer {id} has {n} batches (at most {BATCHES_KEPT})"
                ));
            }
            for _ in 0..n {
                p.batches.push_back(BatchMeta {
                    first_seq: r.i32().ok_or_else(truncated)?,
                    last_seq: r.i32().ok_or_else(truncated)?,
                    first_offset: r.i64().ok_or_else(truncated)?,
                    last_offset: r.i64().ok_or_else(truncated)?,
                    timestamp: r.i64().ok_or_else(truncated)?,
                });
            }
            if txn >= 0 {
                p.txn_first_offset = Some(txn);
                state.ongoing.insert(txn, id);
            }
            state.producers.insert(id, p);
        }
        if !r.0.is_empty() {
            return Err(format!("{} bytes after the last producer", r.0.len()));
        }
        Ok((offset, state))
    }
}

const SNAPSHOT_MAGIC: &[u8; 4] = b"TLPS";
const SNAPSHOT_VERSION: u16 = 1;
/// Magic, version and CRC: the CRC covers everything after them.
const CRC_END: usize = 10;
/// Through the producer count.
const SNAPSHOT_HEADER: usize = CRC_END + 12;

/// Kafka's `checkProducerEpoch` and `checkSequence` for a producer it knows, then the
/// transaction state.
fn check_against(h: &BatchHeader, view: View) -> Result<()> {
    let producer_id = h.producer_id;
    if h.producer_epoch < view.epoch {
        return Err(Error::InvalidProducerEpoch {
            producer_id,
            current: view.epoch,
            found: h.producer_epoch,
        });
    }
    let expected = if h.producer_epoch > view.epoch {
        0
    } else {
        view.last_seq.map_or(0, next_sequence)
    };
    if h.base_sequence != expected {
        return Err(Error::OutOfOrderSequence {
            producer_id,
            expected,
            found: h.base_sequence,
        });
    }
    if view.in_txn && !h.is_transactional() {
        return Err(Error::InvalidTxnState {
            reason: format!(
                "producer {producer_id} wrote a non-transactional batch during its transaction"
            ),
        });
    }
    Ok(())
}

/// Big-endian reads off the front of a slice.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_first_chunk::<N>()?;
        self.0 = rest;
        Some(*head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take::<1>().map(|b| b[0])
    }
    fn i16(&mut self) -> Option<i16> {
        self.take().map(i16::from_be_bytes)
    }
    fn u16(&mut self) -> Option<u16> {
        self.take().map(u16::from_be_bytes)
    }
    fn i32(&mut self) -> Option<i32> {
        self.take().map(i32::from_be_bytes)
    }
    fn u32(&mut self) -> Option<u32> {
        self.take().map(u32::from_be_bytes)
    }
    fn i64(&mut self) -> Option<i64> {
        self.take().map(i64::from_be_bytes)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use kafka_protocol::records::RecordBatchDecoder;

    use super::*;

    #[test]
    fn control_batches_decode_as_kafka_end_transaction_markers() {
        let b = control_batch(42, 3, ControlType::Commit, 17, 1_000);
        let h = BatchHeader::parse(&b).unwrap();
        assert!(h.is_control() && h.is_transactional());
        assert_eq!(
            (h.producer_id, h.producer_epoch, h.base_sequence),
            (42, 3, -1)
        );
        assert_eq!(h.size(), b.len() as u64);
        assert!(batch::crc_matches(&b, &h));
        let set = RecordBatchDecoder::decode(&mut b.clone()).unwrap();
        let r = &set.records[0];
        assert!(r.control && r.transactional);
        assert_eq!(r.timestamp, 1_000);
        assert_eq!(r.key.as_deref(), Some(&[0u8, 0, 0, 1][..]));
        assert_eq!(r.value.as_deref(), Some(&[0u8, 0, 0, 0, 0, 17][..]));
        assert_eq!(parse_control(&b), Some((ControlType::Commit, 17)));
        let abort = control_batch(42, 3, ControlType::Abort, -1, 1_000);
        assert_eq!(parse_control(&abort), Some((ControlType::Abort, -1)));
        assert_eq!(parse_control(&crate::testutil::simple(1, 0)), None);
        assert_eq!(parse_control(&abort[..70]), None);
    }

    #[test]
    fn last_sequence_wraps_like_kafka() {
        assert_eq!(last_sequence(0, 4), 4);
        assert_eq!(last_sequence(i32::MAX, 0), i32::MAX);
        assert_eq!(last_sequence(i32::MAX, 1), 0);
        assert_eq!(last_sequence(i32::MAX - 1, 3), 1);
        assert_eq!(last_sequence(-1, 0), -1);
        assert_eq!(next_sequence(i32::MAX), 0);
    }

    fn sample() -> ProducerState {
        let mut s = ProducerState::default();
        let h = |pid: i64, seq: i32, txn: bool| {
            let b = crate::testutil::producer_batch(pid, 1, seq, 2, txn);
            BatchHeader::parse(&b).unwrap()
        };
        for (i, seq) in [0, 2, 4, 6, 8, 10].into_iter().enumerate() {
            let info = BatchInfo::new(&h(1, seq, false), i as i64 * 2, 100, None).unwrap();
            s.apply(&info);
        }
        s.apply(&BatchInfo::new(&h(2, 0, true), 20, 200, None).unwrap());
        s
    }

    #[test]
    fn snapshots_round_trip_and_detect_damage() {
        let s = sample();
        assert_eq!(s.producers[&1].batches.len(), BATCHES_KEPT);
        let bytes = s.encode_snapshot(22);
        let (offset, back) = ProducerState::decode_snapshot(&bytes).unwrap();
        assert_eq!((offset, &back), (22, &s));
        assert_eq!(back.first_unstable_offset(), Some(20));
        let empty = ProducerState::default().encode_snapshot(0);
        assert_eq!(
            ProducerState::decode_snapshot(&empty).unwrap(),
            (0, ProducerState::default())
        );
        for cut in [0, 5, 21, bytes.len() - 1] {
            assert!(
                ProducerState::decode_snapshot(&bytes[..cut]).is_err(),
                "{cut}"
            );
        }
        let mut flipped = bytes.clone();
        flipped[30] ^= 0x10;
        let e = ProducerState::decode_snapshot(&flipped).unwrap_err();
        assert!(e.contains("checksum"), "{e}");
        let mut version = bytes;
        version[5] = 9;
        assert!(ProducerState::decode_snapshot(&version).is_err());
    }

    #[test]
    fn aborted_txn_entries_are_kafkas_34_bytes() {
        let t = AbortedTxn {
            producer_id: 5,
            first_offset: 10,
            last_offset: 20,
            last_stable_offset: 21,
        };
        let b = t.encode();
        assert_eq!(&b[..2], &[0, 0]);
        assert_eq!(&b[2..10], &5i64.to_be_bytes());
        assert_eq!(AbortedTxn::decode(&b), Some(t));
        let mut v1 = b;
        v1[1] = 1;
        assert_eq!(AbortedTxn::decode(&v1), None);
        assert_eq!(AbortedTxn::decode(&b[..33]), None);
    }
}
