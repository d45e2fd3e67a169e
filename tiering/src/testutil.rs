//! Test helpers: real v2 batches built with `kafka-protocol`'s encoder.

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

/// How to build one test batch.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Spec {
    pub(crate) records: usize,
    pub(crate) value_len: usize,
    pub(crate) first_ts: i64,
    /// Timestamp of record `i` is `first_ts + i * ts_step`.
    pub(crate) ts_step: i64,
    pub(crate) compression: Compression,
}

impl Default for Spec {
    fn default() -> Self {
        Spec {
            records: 1,
            value_len: 10,
            first_ts: 1_000,
            ts_step: 1,
            compression: Compression::None,
        }
    }
}

pub(crate) fn records_of(spec: Spec, timestamps: Option<&[i64]>) -> Vec<Record> {
    (0..spec.records)
        .map(|i| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: i as i32,
            timestamp: timestamps.map_or(spec.first_ts + i as i64 * spec.ts_step, |t| t[i]),
            key: Some(Bytes::from(format!("key-{i}"))),
            value: Some(Bytes::from(vec![b'a' + (i % 26) as u8; spec.value_len])),
            headers: Default::default(),
        })
        .collect()
}

pub(crate) fn encode(records: &[Record], compression: Compression) -> Bytes {
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        records,
        &RecordEncodeOptions {
            version: 2,
            compression,
        },
    )
    .expect("encode test batch");
    buf.freeze()
}

/// One batch per `spec`.
pub(crate) fn batch(spec: Spec) -> Bytes {
    encode(&records_of(spec, None), spec.compression)
}

/// One uncompressed batch of `n` records with timestamps `ts, ts+1, ...`.
pub(crate) fn simple(n: usize, ts: i64) -> Bytes {
    batch(Spec {
        records: n,
        first_ts: ts,
        ..Spec::default()
    })
}

/// Concatenation of batches.
pub(crate) fn concat(parts: &[Bytes]) -> Bytes {
    let mut b = BytesMut::new();
    for p in parts {
        b.extend_from_slice(p);
    }
    b.freeze()
}

/// Splits stored bytes into batches (base offset, record count, bytes).
pub(crate) fn split(mut bytes: &[u8]) -> Vec<(i64, i32, Vec<u8>)> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let h = crate::BatchHeader::parse(bytes).expect("header");
        let size = h.size() as usize;
        out.push((h.base_offset, h.record_count, bytes[..size].to_vec()));
        bytes = &bytes[size..];
    }
    out
}

/// Recomputes the CRC of a batch after a test edits it.
pub(crate) fn fix_crc(batch: &mut [u8]) {
    let crc = crc32c::crc32c(&batch[21..]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
}

/// One uncompressed batch of `n` records from producer `pid` at `epoch`, first sequence
/// `seq`, transactional or not.
pub(crate) fn producer_batch(pid: i64, epoch: i16, seq: i32, n: usize, txn: bool) -> Bytes {
    let mut recs = records_of(
        Spec {
            records: n,
            ..Spec::default()
        },
        None,
    );
    for (i, r) in recs.iter_mut().enumerate() {
        r.producer_id = pid;
        r.producer_epoch = epoch;
        r.transactional = txn;
        r.sequence = seq.wrapping_add(i as i32) & i32::MAX;
    }
    encode(&recs, Compression::None)
}
