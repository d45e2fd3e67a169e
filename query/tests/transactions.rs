//! Committed history: reads drop aborted transactions (also one aborted by a marker in a later
//! segment), stop at the last stable offset (a transaction still open at the tiered end), and
//! `Isolation::ReadUncommitted` returns everything with the audit columns telling them apart.
//! The partition is built through a real `PartitionLog` (markers appended by
//! `append_control`, so the log writes the transaction indexes and producer snapshots) and
//! uploaded with `RemotePartition::upload`, as the broker does.

mod common;

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, BooleanArray, Int64Array};
use arrow::record_batch::RecordBatch;
use bytes::Bytes;
use futures::TryStreamExt;
use kafka_protocol::records::{Compression, Record, TimestampType};
use object_store::memory::InMemory;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};
use tierlog_metadata::{ManifestRegistry, MemoryStore, MetadataStore, TopicMeta, TopicRegistry};
use tierlog_query::{Isolation, QueryContext, Range, ReadOptions, Split};
use tierlog_tiering::remote::RemotePartition;
use tierlog_tiering::remote::cache::{CacheConfig, ChunkCache};
use tierlog_tiering::remote::layout::txn_index_key;
use tierlog_tiering::{ControlType, LogConfig, PartitionLog};

use common::encode;

const TOPIC: &str = "payments";

/// Appends batches of plain and transactional producers, tracking sequences.
struct Writer {
    log: PartitionLog,
    seqs: HashMap<i64, i32>,
}

impl Writer {
    /// `n` records of producer `pid` (`None`: a plain producer); their offsets.
    fn records(&mut self, pid: Option<i64>, n: usize) -> Vec<i64> {
        let seq = pid.map_or(-1, |p| *self.seqs.entry(p).or_insert(0));
        let recs: Vec<Record> = (0..n)
            .map(|i| Record {
                transactional: pid.is_some(),
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id: pid.unwrap_or(-1),
                producer_epoch: if pid.is_some() { 0 } else { -1 },
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                sequence: if seq < 0 { -1 } else { seq + i as i32 },
                timestamp: 1_700_000_000_000 + i as i64,
                key: None,
                value: Some(Bytes::from(format!("{pid:?}-{i}"))),
                headers: Default::default(),
            })
            .collect();
        if let Some(p) = pid {
            self.seqs.insert(p, seq + n as i32);
        }
        let r = self
            .log
            .append(encode(&recs, Compression::Lz4), 0, 0)
            .expect("append");
        (r.base_offset..r.base_offset + n as i64).collect()
    }

    fn marker(&mut self, pid: i64, control: ControlType) {
        self.log
            .append_control(pid, 0, control, 1, 0, 0)
            .expect("marker");
    }
}

struct Fixture {
    ctx: QueryContext,
    objects: Arc<dyn ObjectStore>,
    /// Offsets a committed read returns.
    committed: Vec<i64>,
    /// Offsets of aborted transactions.
    aborted: Vec<i64>,
    /// Every non-control offset.
    all: Vec<i64>,
    /// First offset of the transaction open at the end (the last stable offset).
    open_at: i64,
    _dir: tempfile::TempDir,
}

/// Three segments:
/// 1. plain; producer 2's transaction, aborted; producer 3's, committed; producer 4 begins one.
/// 2. plain; producer 4 goes on and aborts (the abort entry is in this segment's index only);
///    producer 3 commits another.
/// 3. plain; producer 5 begins a transaction that has no marker by the end (the last stable
///    offset); after it plain records and producer 3's committed transaction, past the LSO.
async fn fixture() -> Fixture {
    let meta: Arc<dyn MetadataStore> = Arc::new(MemoryStore::new());
    let objects: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let manifest = ManifestRegistry::new(meta.clone());
    let id = uuid::Uuid::new_v4();
    TopicRegistry::new(meta.clone())
        .create(&TopicMeta {
            name: TOPIC.into(),
            id,
            partitions: 1,
            replication_factor: 1,
            configs: Default::default(),
            created_ms: 0,
        })
        .await
        .expect("create topic");
    let dir = tempfile::tempdir().expect("tempdir");
    let log = PartitionLog::open(dir.path(), LogConfig::default()).expect("open log");
    let mut w = Writer {
        log,
        seqs: HashMap::new(),
    };
    let (mut committed, mut aborted, mut all) = (Vec::new(), Vec::new(), Vec::new());
    fn keep(offsets: Vec<i64>, to: &mut Vec<i64>, all: &mut Vec<i64>) {
        all.extend(&offsets);
        to.extend(offsets);
    }
    let mut past_lso = Vec::new();

    keep(w.records(None, 2), &mut committed, &mut all);
    keep(w.records(Some(2), 2), &mut aborted, &mut all);
    w.marker(2, ControlType::Abort);
    keep(w.records(Some(3), 2), &mut committed, &mut all);
    w.marker(3, ControlType::Commit);
    keep(w.records(Some(4), 1), &mut aborted, &mut all);
    w.log.roll_now().expect("roll");

    keep(w.records(None, 1), &mut committed, &mut all);
    keep(w.records(Some(4), 1), &mut aborted, &mut all);
    w.marker(4, ControlType::Abort);
    keep(w.records(Some(3), 1), &mut committed, &mut all);
    w.marker(3, ControlType::Commit);
    w.log.roll_now().expect("roll");

    keep(w.records(None, 1), &mut committed, &mut all);
    keep(w.records(Some(5), 2), &mut past_lso, &mut all);
    keep(w.records(None, 1), &mut past_lso, &mut all);
    keep(w.records(Some(3), 1), &mut past_lso, &mut all);
    w.marker(3, ControlType::Commit);
    w.log.roll_now().expect("roll");

    let sealed = w.log.sealed_segments().expect("sealed");
    assert_eq!(sealed.len(), 3);
    let remote = RemotePartition::new(objects.clone(), manifest, TOPIC, id, 0);
    for seg in &sealed {
        remote.upload(seg, 0, 0).await.expect("upload");
    }
    all.sort_unstable();
    let cache = ChunkCache::new(&CacheConfig {
        memory_bytes: 4 << 20,
        ..CacheConfig::default()
    })
    .await
    .expect("cache");
    Fixture {
        ctx: QueryContext::from_parts(meta, objects.clone(), cache),
        objects,
        committed,
        aborted,
        all,
        open_at: past_lso[0],
        _dir: dir,
    }
}

fn column<'a, T: 'static>(b: &'a RecordBatch, name: &str) -> &'a T {
    b.column_by_name(name)
        .expect("column")
        .as_any()
        .downcast_ref::<T>()
        .expect("type")
}

async fn read(ctx: &QueryContext, splits: &[Split], options: &ReadOptions) -> Vec<RecordBatch> {
    let mut out = Vec::new();
    for s in splits {
        let batches: Vec<RecordBatch> = ctx
            .read(s.clone(), options.clone())
            .try_collect()
            .await
            .expect("read");
        out.extend(batches);
    }
    out
}

async fn splits(f: &Fixture) -> Vec<Split> {
    f.ctx
        .plan(TOPIC, None, &Range::default())
        .await
        .expect("plan")
}

fn offsets(batches: &[RecordBatch]) -> Vec<i64> {
    batches
        .iter()
        .flat_map(|b| column::<Int64Array>(b, "offset").values().to_vec())
        .collect()
}

#[tokio::test]
async fn committed_history_drops_aborted_and_open_transactions() {
    let f = fixture().await;
    let splits = splits(&f).await;
    assert_eq!(splits.len(), 3);
    let options = ReadOptions::default();
    assert_eq!(offsets(&read(&f.ctx, &splits, &options).await), f.committed);
    // each split on its own (Flight reads them independently): the first knows producer 4's
    // transaction is aborted though the marker and index entry are in the second segment
    let mut one_by_one = Vec::new();
    for s in &splits {
        one_by_one.extend(offsets(
            &read(&f.ctx, std::slice::from_ref(s), &options).await,
        ));
    }
    assert_eq!(one_by_one, f.committed);
    let first = offsets(&read(&f.ctx, &splits[..1], &options).await);
    assert!(!first.contains(&f.aborted[2]), "producer 4's first record");
    // the default schema is unchanged
    let names: Vec<String> = f
        .ctx
        .schema(&options)
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(
        names,
        [
            "offset",
            "timestamp",
            "timestamp_type",
            "key",
            "value",
            "headers"
        ]
    );
}

#[tokio::test]
async fn read_uncommitted_returns_everything_with_audit_columns() {
    let f = fixture().await;
    let splits = splits(&f).await;
    let plain = ReadOptions {
        isolation: Isolation::ReadUncommitted,
        ..ReadOptions::default()
    };
    assert_eq!(offsets(&read(&f.ctx, &splits, &plain).await), f.all);

    let audit = ReadOptions {
        isolation: Isolation::ReadUncommitted,
        projection: Some(
            [
                "committed",
                "offset",
                "aborted",
                "producer_id",
                "is_transactional",
            ]
            .map(String::from)
            .to_vec(),
        ),
        batch_rows: 4,
        ..ReadOptions::default()
    };
    let batches = read(&f.ctx, &splits, &audit).await;
    assert_eq!(offsets(&batches), f.all);
    let (mut aborted, mut committed, mut transactional) = (Vec::new(), Vec::new(), 0);
    for b in &batches {
        let o = column::<Int64Array>(b, "offset");
        let a = column::<BooleanArray>(b, "aborted");
        let c = column::<BooleanArray>(b, "committed");
        let t = column::<BooleanArray>(b, "is_transactional");
        let p = column::<Int64Array>(b, "producer_id");
        for i in 0..b.num_rows() {
            if a.value(i) {
                aborted.push(o.value(i));
            }
            if c.value(i) {
                committed.push(o.value(i));
            }
            assert_eq!(
                t.value(i),
                p.is_valid(i),
                "plain batches have no producer id"
            );
            transactional += usize::from(t.value(i));
        }
    }
    assert_eq!(aborted, f.aborted);
    assert_eq!(committed, f.committed);
    assert_eq!(transactional, 10);
    // a committed read with the audit columns: all rows committed, none aborted
    let batches = read(
        &f.ctx,
        &splits,
        &ReadOptions {
            isolation: Isolation::ReadCommitted,
            ..audit
        },
    )
    .await;
    assert_eq!(offsets(&batches), f.committed);
    for b in &batches {
        assert_eq!(
            column::<BooleanArray>(b, "committed").true_count(),
            b.num_rows()
        );
        assert_eq!(column::<BooleanArray>(b, "aborted").true_count(), 0);
    }
}

#[tokio::test]
async fn segments_without_transaction_objects_read_as_before() {
    let f = fixture().await;
    // as uploaded before transaction indexes and snapshots were tiered
    let listed: Vec<_> = f.objects.list(None).try_collect().await.expect("list");
    for m in listed {
        let key = m.location.to_string();
        if key.ends_with(".txnindex") || key.ends_with(".snapshot") {
            f.objects.delete(&m.location).await.expect("delete");
        }
    }
    let splits = splits(&f).await;
    let read_all = read(&f.ctx, &splits, &ReadOptions::default()).await;
    assert_eq!(
        offsets(&read_all),
        f.all,
        "no aborts and no open transaction known"
    );
}

#[tokio::test]
async fn a_split_reads_only_the_transaction_objects_it_needs() {
    let f = fixture().await;
    let meta = f.ctx.topic(TOPIC).await.expect("topic");
    assert_eq!(
        f.ctx.last_stable_offset(meta.id, 0).await.expect("lso"),
        Some(f.open_at)
    );
    let splits = splits(&f).await;
    // a damaged index in the last segment: the first two splits stop their scan before it
    // (the first at the abort whose last stable offset passes its end, the second since no
    // transaction is open at its segment's end), the third reads it and fails
    let key = txn_index_key(&splits[2].segment.data_key);
    f.objects
        .put(
            &ObjectPath::from(key.as_str()),
            Bytes::from_static(&[0; 7]).into(),
        )
        .await
        .expect("put");
    let options = ReadOptions::default();
    let first_two = offsets(&read(&f.ctx, &splits[..2], &options).await);
    assert_eq!(first_two, f.committed[..f.committed.len() - 1]);
    let e = f
        .ctx
        .read(splits[2].clone(), options)
        .try_collect::<Vec<_>>()
        .await
        .expect_err("damaged index");
    assert!(e.to_string().contains("34-byte entries"), "{e}");
}
