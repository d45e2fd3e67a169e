//! What several benchmarks build their logs from. Each benchmark is a crate of its own and
//! uses its share of these.
#![allow(dead_code)]

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType as KTimestampType,
};

/// Size of every record's value.
const VALUE_BYTES: usize = 100;

/// One uncompressed v2 batch of `n` 100-byte records (no key) from idempotent producer
/// `producer_id` at `producer_epoch` (sequences from 0), or with no producer for -1;
/// timestamps from 1,700,000,000,000 ms on.
pub(crate) fn records_batch(n: i64, producer_id: i64, producer_epoch: i16) -> Bytes {
    let records: Vec<Record> = (0..n)
        .map(|i| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id,
            producer_epoch,
            timestamp_type: KTimestampType::Creation,
            offset: i,
            sequence: i as i32,
            timestamp: 1_700_000_000_000 + i,
            key: None,
            value: Some(Bytes::from(vec![b'x'; VALUE_BYTES])),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .expect("encode benchmark batch");
    buf.freeze()
}

/// One batch of about `bytes` bytes with no producer.
pub(crate) fn batch_of(bytes: usize) -> Bytes {
    records_batch((bytes / (VALUE_BYTES + 10)).max(1) as i64, -1, -1)
}

/// The batch of the most records that stays within `bytes` (as [`records_batch`]), and its
/// record count.
pub(crate) fn batch_within(bytes: usize, producer_id: i64, producer_epoch: i16) -> (Bytes, u64) {
    let mut n = 1;
    loop {
        let batch = records_batch(n, producer_id, producer_epoch);
        if batch.len() + VALUE_BYTES + 10 > bytes {
            return (batch, n as u64);
        }
        n += 1;
    }
}
