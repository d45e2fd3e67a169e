//! A tiered topic built for tests: batches encoded with kafka-protocol's encoder in every
//! codec (headers, null keys and values), appended to a real `PartitionLog`
//! with small segments, uploaded with `RemotePartition::upload` into an in-memory object store and
//! recorded in an in-memory manifest — the same path the broker takes.

#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use object_store::ObjectStore;
use object_store::memory::InMemory;
use tierlog_metadata::{ManifestRegistry, MemoryStore, MetadataStore, TopicMeta, TopicRegistry};
use tierlog_query::QueryContext;
pub use tierlog_tiering::TimestampType as TimestampTypeConfig;
use tierlog_tiering::remote::cache::{CacheConfig, ChunkCache};
use tierlog_tiering::remote::{RemoteOptions, RemotePartition};
use tierlog_tiering::{LogConfig, PartitionLog};

/// One record as produced.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub partition: i32,
    pub offset: i64,
    pub timestamp: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

pub struct Fixture {
    pub ctx: QueryContext,
    pub rows: Vec<Row>,
    pub topic: String,
    _dirs: Vec<tempfile::TempDir>,
}

pub const TOPIC: &str = "events";
pub const BASE_TS: i64 = 1_700_000_000_000;
pub const APPEND_TS: i64 = 1_800_000_000_000;

fn codec(i: usize) -> Compression {
    [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ][i % 5]
}

/// `records` as one Kafka batch (v2) in `compression`.
pub fn encode(records: &[Record], compression: Compression) -> Bytes {
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        records,
        &RecordEncodeOptions {
            version: 2,
            compression,
        },
    )
    .expect("encode");
    buf.freeze()
}

/// `partitions` partitions of `batches` batches each (3 to 11 records per batch), in
/// segments of 2 KiB.
pub async fn fixture(partitions: i32, batches: usize) -> Fixture {
    fixture_with(partitions, batches, TimestampTypeConfig::CreateTime).await
}

/// [`fixture`] on a topic with `message.timestamp.type` = `timestamp_type`; under
/// LogAppendTime the log stamps every batch with its append time, `APPEND_TS + batch index`,
/// which `Row::timestamp` then holds.
pub async fn fixture_with(
    partitions: i32,
    batches: usize,
    timestamp_type: TimestampTypeConfig,
) -> Fixture {
    let meta_store: Arc<dyn MetadataStore> = Arc::new(MemoryStore::new());
    let objects: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let topics = TopicRegistry::new(meta_store.clone());
    let manifest = ManifestRegistry::new(meta_store.clone());
    let id = uuid::Uuid::new_v4();
    topics
        .create(&TopicMeta {
            name: TOPIC.into(),
            id,
            partitions,
            replication_factor: 1,
            configs: Default::default(),
            created_ms: 0,
        })
        .await
        .expect("create topic");
    let mut rows = Vec::new();
    let mut dirs = Vec::new();
    for p in 0..partitions {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = PartitionLog::open(
            dir.path(),
            LogConfig {
                segment_bytes: 2048,
                index_interval_bytes: 128,
                message_timestamp_type: timestamp_type,
                ..LogConfig::default()
            },
        )
        .expect("open log");
        let mut n = 0i64;
        for b in 0..batches {
            let count = 3 + (b * 7 + p as usize) % 9;
            let mut recs = Vec::new();
            let mut expected = Vec::new();
            for i in 0..count {
                let ts = BASE_TS + (n + i as i64) * 10;
                let key = (i % 4 != 1).then(|| format!("k{p}-{b}-{i}").into_bytes());
                let value = (i % 5 != 2).then(|| vec![b'a' + (i % 26) as u8; 20 + i * 13]);
                let mut headers = Vec::new();
                if i % 3 == 0 {
                    headers.push(("trace".to_string(), Some(format!("t{b}.{i}").into_bytes())));
                    headers.push(("empty".to_string(), None));
                }
                let mut rec = Record {
                    transactional: false,
                    control: false,
                    delete_horizon: false,
                    partition_leader_epoch: -1,
                    producer_id: -1,
                    producer_epoch: -1,
                    timestamp_type: TimestampType::Creation,
                    offset: i as i64,
                    sequence: i as i32,
                    timestamp: ts,
                    key: key.clone().map(Bytes::from),
                    value: value.clone().map(Bytes::from),
                    headers: Default::default(),
                };
                for (k, v) in &headers {
                    rec.headers
                        .insert(StrBytes::from_string(k.clone()), v.clone().map(Bytes::from));
                }
                recs.push(rec);
                expected.push((ts, key, value, headers));
            }
            let append_ts = APPEND_TS + b as i64;
            let r = log
                .append(encode(&recs, codec(b)), 0, append_ts)
                .expect("append batch");
            for (i, (ts, key, value, headers)) in expected.into_iter().enumerate() {
                let ts = if timestamp_type == TimestampTypeConfig::LogAppendTime {
                    append_ts
                } else {
                    ts
                };
                rows.push(Row {
                    partition: p,
                    offset: r.base_offset + i as i64,
                    timestamp: ts,
                    key,
                    value,
                    headers,
                });
            }
            n += count as i64;
        }
        log.roll_now().expect("roll");
        for seg in log.sealed_segments().expect("sealed") {
            RemotePartition::new(objects.clone(), manifest.clone(), TOPIC, id, p)
                .with_options(RemoteOptions {
                    chunk_size: 512,
                    ..RemoteOptions::default()
                })
                .upload(&seg, 0, 0)
                .await
                .expect("upload");
        }
        dirs.push(dir);
    }
    let cache = ChunkCache::new(&CacheConfig {
        memory_bytes: 16 << 20,
        ..CacheConfig::default()
    })
    .await
    .expect("cache");
    Fixture {
        ctx: QueryContext::from_parts(meta_store, objects, cache),
        rows,
        topic: TOPIC.into(),
        _dirs: dirs,
    }
}
