//! What several benchmarks build their logs from.

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType as KTimestampType,
};

/// Size of every record's value.
const VALUE_BYTES: usize = 100;

/// One uncompressed v2 batch of about `bytes` bytes made of 100-byte records (no key, no
/// producer), timestamps from 1,700,000,000,000 ms on.
pub(crate) fn batch_of(bytes: usize) -> Bytes {
    let n = (bytes / (VALUE_BYTES + 10)).max(1) as i64;
    let records: Vec<Record> = (0..n)
        .map(|i| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
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
