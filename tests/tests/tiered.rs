//! Tiered storage end to end: real `tierlog` processes on a real S3-compatible server
//! (`moto_server`), driven by librdkafka and raw Kafka frames.
//!
//! Every test gets its own moto, bucket prefix and topic, rolls many small segments
//! (`segment.bytes=65536`) and keeps almost nothing on the hot tier (`local.retention.ms=0`),
//! so reading history means reading object storage. What is checked is always an outcome a
//! client or an operator can see: objects in the bucket, local segment files, ListOffsets,
//! `/metrics`, and every record read back compared with what was acknowledged. Waits poll a
//! condition with a deadline and report the last state they saw; nothing sleeps blindly.
//!
//! Outside CI a missing moto skips these tests loudly; with `CI` set it fails them.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use rdkafka::message::OwnedMessage;
use rdkafka::producer::FutureProducer;
use rdkafka::{Offset, TopicPartitionList};
use tierlog_tests::clients::{
    RecordData, admin, admin_options, assigned_consumer, consume_exactly, create_topic, producer,
};
use tierlog_tests::wait::{Poll, wait_for};
use tierlog_tests::wire::{Conn, KAFKA_STORAGE_ERROR, decode_records};
use tierlog_tests::workload::{
    check_acks, check_consumed, consume_timeout, future_record, produce_all, records,
};
use tierlog_tests::{MotoServer, NodeOptions, TestNode};

const BUCKET: &str = "tierlog-tiered";
const SEGMENT_BYTES: &str = "65536";
/// Bound on every wait for the tiering machinery (uploads every 200 ms, retention every
/// 200 ms; the slack is for a debug broker on a busy two-core machine).
const SETTLE: Duration = Duration::from_secs(120);
const POLL: Duration = Duration::from_millis(100);
/// Kafka error OFFSET_OUT_OF_RANGE.
const OFFSET_OUT_OF_RANGE: i16 = 1;

// ---- setup ---------------------------------------------------------------------------------

/// moto with the test bucket, or `None` (skip) when moto is missing outside CI.
fn moto(test: &str) -> Option<MotoServer> {
    let moto = MotoServer::start_or_skip(test).unwrap()?;
    moto.create_bucket(BUCKET).unwrap();
    Some(moto)
}

/// A node tiering to `s3://BUCKET/<prefix>` on `moto`, uploading and checking retention often.
fn tiered_options(moto: &MotoServer, prefix: &str) -> NodeOptions {
    NodeOptions::default()
        .s3(moto, BUCKET, prefix)
        .min_segment_bytes(SEGMENT_BYTES.parse().expect("SEGMENT_BYTES"))
        .upload_interval("200ms")
        .retention_check_interval("200ms")
}

/// Topic configs: small segments, nothing kept locally once tiered, plus `extra`.
fn tiered_topic_configs<'a>(extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut configs = vec![
        ("segment.bytes", SEGMENT_BYTES),
        ("local.retention.ms", "0"),
        ("remote.storage.enable", "true"),
    ];
    configs.extend_from_slice(extra);
    configs
}

/// A producer whose batches are small enough that each 64 KiB segment holds several.
fn small_batch_producer(bootstrap: &str) -> FutureProducer {
    producer(
        bootstrap,
        &[
            ("queue.buffering.max.messages", "1000000"),
            ("batch.size", "16384"),
            ("linger.ms", "5"),
        ],
    )
    .unwrap()
}

fn now_ms() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

// ---- what the bucket and the data directory hold --------------------------------------------

/// One object of a tiered segment, parsed from
/// `<prefix>/topics/<topic>-<topicid>/<partition>/<base:020>-e<epoch>-<uploadid>.<ext>`.
#[derive(Debug, Clone)]
struct SegmentObject {
    key: String,
    partition: i32,
    base: i64,
    ext: String,
    size: u64,
}

fn parse_segment_key(key: &str, size: u64, prefix: &str, topic: &str) -> Option<SegmentObject> {
    let rest = key.strip_prefix(&format!("{prefix}/topics/{topic}-"))?;
    let mut parts = rest.split('/');
    let (_topic_id, partition, file) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let (stem, ext) = file.rsplit_once('.')?;
    let base = stem.get(..20)?.parse().ok()?;
    if !stem[20..].starts_with("-e") {
        return None;
    }
    Some(SegmentObject {
        key: key.to_owned(),
        partition: partition.parse().ok()?,
        base,
        ext: ext.to_owned(),
        size,
    })
}

/// Every object of `topic` under `prefix`; keys that do not follow the documented layout fail.
fn segment_objects(moto: &MotoServer, prefix: &str, topic: &str) -> Result<Vec<SegmentObject>> {
    let listed = moto.list_objects(BUCKET, &format!("{prefix}/topics/{topic}-"))?;
    listed
        .into_iter()
        .map(|o| {
            parse_segment_key(&o.key, o.size, prefix, topic).with_context(|| {
                format!(
                    "object key {:?} does not follow the documented layout",
                    o.key
                )
            })
        })
        .collect()
}

/// `(base offset, bytes)` of every local `.log` segment of `topic`/`partition`, sorted. Finds
/// the partition directory `<topic>-<id>/<partition>` anywhere under the data directory.
fn local_segments(data_dir: &Path, topic: &str, partition: i32) -> Result<Vec<(i64, u64)>> {
    fn find_topic_dirs(dir: &Path, topic: &str, out: &mut Vec<std::path::PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if !path.is_dir() {
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            let is_topic_dir = name.strip_prefix(&format!("{topic}-")).is_some_and(|id| {
                !id.is_empty() && id.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
            });
            if is_topic_dir {
                out.push(path);
            } else {
                find_topic_dirs(&path, topic, out);
            }
        }
    }
    let mut dirs = Vec::new();
    find_topic_dirs(data_dir, topic, &mut dirs);
    let mut out = Vec::new();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(dir.join(partition.to_string())) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(stem) = name.strip_suffix(".log")
                && stem.len() == 20
                && let Ok(base) = stem.parse::<i64>()
            {
                out.push((base, entry.metadata()?.len()));
            }
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// Everything observable about one partition's tiering at one moment.
#[derive(Debug)]
struct View {
    earliest: i64,
    earliest_local: i64,
    latest: i64,
    /// Local `.log` segments `(base, bytes)`.
    local: Vec<(i64, u64)>,
    /// `.log` objects of this partition, sorted by base (orphans of retried uploads included).
    remote_logs: Vec<SegmentObject>,
    /// Every object of this partition (all extensions).
    remote_all: Vec<SegmentObject>,
    lag_bytes: Option<f64>,
    remote_segments_metric: Option<f64>,
    local_segments_metric: Option<f64>,
}

impl View {
    fn take(
        node: &TestNode,
        moto: &MotoServer,
        prefix: &str,
        topic: &str,
        partition: i32,
    ) -> Result<Self> {
        let mut conn = Conn::connect(node.kafka_addr())?;
        let earliest = conn.earliest_offset(topic, partition)?;
        let earliest_local = conn.earliest_local_offset(topic, partition)?;
        let latest = conn.log_end_offset(topic, partition)?;
        let local = local_segments(&node.data_dir(), topic, partition)?;
        let remote_all: Vec<SegmentObject> = segment_objects(moto, prefix, topic)?
            .into_iter()
            .filter(|o| o.partition == partition)
            .collect();
        let mut remote_logs: Vec<SegmentObject> = remote_all
            .iter()
            .filter(|o| o.ext == "log")
            .cloned()
            .collect();
        remote_logs.sort_by_key(|o| o.base);
        let metrics = node.metrics()?;
        Ok(View {
            earliest,
            earliest_local,
            latest,
            local,
            remote_logs,
            remote_all,
            lag_bytes: metrics.partition("tierlog_partition_upload_lag_bytes", topic, partition),
            remote_segments_metric: metrics.partition(
                "tierlog_partition_remote_segments",
                topic,
                partition,
            ),
            local_segments_metric: metrics.partition(
                "tierlog_partition_local_segments",
                topic,
                partition,
            ),
        })
    }

    /// Distinct base offsets of tiered `.log` objects.
    fn remote_bases(&self) -> Vec<i64> {
        let set: BTreeSet<i64> = self.remote_logs.iter().map(|o| o.base).collect();
        set.into_iter().collect()
    }

    fn describe(&self) -> String {
        format!(
            "earliest={} earliest_local={} latest={} local segments={:?} remote .log bases={:?} \
             ({} objects in all) upload_lag_bytes={:?} remote_segments metric={:?} \
             local_segments metric={:?}",
            self.earliest,
            self.earliest_local,
            self.latest,
            self.local,
            self.remote_bases(),
            self.remote_all.len(),
            self.lag_bytes,
            self.remote_segments_metric,
            self.local_segments_metric
        )
    }

    /// The settled state of a `local.retention.ms=0` partition after production stopped: no
    /// upload lag; every sealed segment tiered and gone locally, so the only local segment is
    /// the active one and it starts where the local log starts; the tiered segments reach from
    /// the log start up to below it; the gauges agree with the bucket.
    fn is_settled(&self) -> bool {
        let bases = self.remote_bases();
        self.lag_bytes == Some(0.0)
            && self.earliest_local > 0
            && self.local.iter().map(|(b, _)| *b).collect::<Vec<_>>() == [self.earliest_local]
            && bases.first().is_some_and(|b| *b <= self.earliest)
            && bases.last().is_some_and(|b| *b < self.earliest_local)
            && self.remote_segments_metric == Some(bases.len() as f64)
    }
}

/// Waits until [`View::is_settled`] holds and returns that view.
fn wait_settled(
    node: &TestNode,
    moto: &MotoServer,
    prefix: &str,
    topic: &str,
    partition: i32,
) -> View {
    wait_for(
        &format!("{topic}/{partition} to be tiered and trimmed locally"),
        SETTLE,
        POLL,
        || {
            let view = View::take(node, moto, prefix, topic, partition)?;
            Ok(if view.is_settled() {
                Poll::Ready(view)
            } else {
                Poll::Pending(view.describe())
            })
        },
    )
    .unwrap()
}

/// Consumes `topic`/`partition` from `from` to `to` (exclusive) with librdkafka.
fn consume_range(
    bootstrap: &str,
    topic: &str,
    partition: i32,
    from: i64,
    to: i64,
) -> Vec<OwnedMessage> {
    let n = usize::try_from(to - from).unwrap();
    let consumer = assigned_consumer(bootstrap, topic, [partition], Offset::Offset(from)).unwrap();
    consume_exactly(&consumer, n, consume_timeout(n))
        .with_context(|| format!("consuming {topic}/{partition} [{from}, {to})"))
        .unwrap()
}

/// The records (and their acks) of `partition` acknowledged at `from` or later.
fn acked_from(
    all: &[RecordData],
    acks: &[(i32, i64)],
    partition: i32,
    from: i64,
) -> (Vec<RecordData>, Vec<(i32, i64)>) {
    all.iter()
        .zip(acks)
        .filter(|(_, (p, o))| *p == partition && *o >= from)
        .map(|(r, a)| (r.clone(), *a))
        .unzip()
}

/// Checks a raw Fetch's records against what was acknowledged: every decoded record is the one
/// acknowledged at its offset. Returns how many records were checked.
fn check_fetched(
    fetched: &bytes::Bytes,
    all: &[RecordData],
    by_offset: &BTreeMap<i64, usize>,
) -> usize {
    let decoded = decode_records(fetched).unwrap();
    for r in &decoded {
        let i = by_offset
            .get(&r.offset)
            .unwrap_or_else(|| panic!("fetched offset {} was never acknowledged", r.offset));
        assert_eq!(
            r.value.as_deref(),
            all[*i].value.as_deref(),
            "value at offset {}",
            r.offset
        );
        assert_eq!(
            r.key.as_deref(),
            all[*i].key.as_deref(),
            "key at offset {}",
            r.offset
        );
    }
    decoded.len()
}

// ---- (a) tier, trim the hot tier, read everything back ---------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sealed_segments_are_tiered_trimmed_locally_and_read_back_from_offset_zero() {
    let Some(moto) = moto("tiered_round_trip") else {
        return;
    };
    let prefix = "round-trip";
    let topic = "tiered-rt";
    const PARTITIONS: i32 = 2;
    const N: usize = 12_000;
    let node = TestNode::start(tiered_options(&moto, prefix)).unwrap();
    let bootstrap = node.bootstrap();
    create_topic(&bootstrap, topic, PARTITIONS, &tiered_topic_configs(&[]))
        .await
        .unwrap();

    let all = records(N, "rt");
    let acks = produce_all(&small_batch_producer(&bootstrap), topic, &all)
        .await
        .unwrap();
    let counts = check_acks(&acks, &BTreeMap::new()).unwrap();

    for p in 0..PARTITIONS {
        let view = wait_settled(&node, &moto, prefix, topic, p);
        let bases = view.remote_bases();
        assert_eq!(view.earliest, 0, "log start moved without retention");
        assert_eq!(
            bases[0],
            0,
            "the first segment was not tiered: {}",
            view.describe()
        );
        assert!(
            bases.len() >= 5,
            "expected many small segments tiered: {}",
            view.describe()
        );
        assert_eq!(view.latest, counts[&p], "log end of partition {p}");
        // Uploaded once each, with its indexes.
        assert_eq!(
            bases.len(),
            view.remote_logs.len(),
            "a segment was uploaded twice: {:?}",
            view.remote_logs.iter().map(|o| &o.key).collect::<Vec<_>>()
        );
        for base in &bases {
            for ext in ["log", "index", "timeindex"] {
                assert!(
                    view.remote_all
                        .iter()
                        .any(|o| o.base == *base && o.ext == ext),
                    "segment {base} of {topic}/{p} has no .{ext} object: {}",
                    view.describe()
                );
            }
        }
        assert!(
            view.remote_logs.iter().all(|o| o.size > 0),
            "empty .log object"
        );
    }

    // Everything from offset 0 — almost all of it from the bucket — equals what was acked.
    let misses_before = node
        .metrics()
        .unwrap()
        .counter("tierlog_tiering_cache_misses_total");
    let consumer = assigned_consumer(&bootstrap, topic, 0..PARTITIONS, Offset::Offset(0)).unwrap();
    let consumed = consume_exactly(&consumer, N, consume_timeout(N)).unwrap();
    check_consumed(&consumed, &all, &acks).unwrap();

    let metrics = node.metrics().unwrap();
    assert!(
        metrics.counter("tierlog_tiering_cache_misses_total") > misses_before,
        "a cold read of tiered data counted no cache miss"
    );
    assert!(metrics.counter("tierlog_tiering_uploaded_segments_total") >= 10.0);
    assert_eq!(
        metrics.counter("tierlog_tiering_corrupt_objects_total"),
        0.0
    );
    assert_eq!(
        metrics.counter("tierlog_tiering_download_errors_total"),
        0.0
    );
    for p in 0..PARTITIONS {
        assert!(
            metrics
                .partition("tierlog_partition_remote_bytes", topic, p)
                .is_some_and(|b| b > 0.0),
            "tierlog_partition_remote_bytes of {topic}/{p} missing or zero"
        );
        assert!(
            metrics
                .partition("tierlog_partition_local_bytes", topic, p)
                .is_some(),
            "tierlog_partition_local_bytes of {topic}/{p} missing"
        );
    }

    // A second read of the same history is served (at least partly) from the cache.
    let hits_before = metrics.counter("tierlog_tiering_cache_hits_total");
    let consumer = assigned_consumer(&bootstrap, topic, 0..PARTITIONS, Offset::Offset(0)).unwrap();
    let consumed = consume_exactly(&consumer, N, consume_timeout(N)).unwrap();
    check_consumed(&consumed, &all, &acks).unwrap();
    assert!(
        node.metrics()
            .unwrap()
            .counter("tierlog_tiering_cache_hits_total")
            > hits_before,
        "re-reading tiered data counted no cache hit"
    );
}

// ---- (b) a new node with an empty disk serves the tiered history -----------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_with_empty_data_dir_and_the_same_metadata_serves_all_tiered_history() {
    let Some(moto) = moto("tiered_empty_disk") else {
        return;
    };
    let prefix = "empty-disk";
    let topic = "tiered-fresh";
    const N: usize = 8_000;
    let mut a = TestNode::start(tiered_options(&moto, prefix)).unwrap();
    create_topic(&a.bootstrap(), topic, 1, &tiered_topic_configs(&[]))
        .await
        .unwrap();
    let all = records(N, "fresh");
    let acks = produce_all(&small_batch_producer(&a.bootstrap()), topic, &all)
        .await
        .unwrap();
    check_acks(&acks, &BTreeMap::new()).unwrap();
    let settled = wait_settled(&a, &moto, prefix, topic, 0);
    // Everything below the active segment is in the bucket and nowhere else.
    let tiered_end = settled.earliest_local;
    let status = a.terminate().unwrap();
    assert!(status.success(), "node A exited with {status}");

    // Node B: a fresh data directory holding only A's metadata, the same bucket and prefix.
    let b =
        TestNode::start_with_metadata(tiered_options(&moto, prefix), &a.metadata_file()).unwrap();
    // B holds no records locally: at most an empty active segment where the history ends.
    let b_local = local_segments(&b.data_dir(), topic, 0).unwrap();
    assert!(
        b_local
            .iter()
            .all(|(base, size)| *size == 0 && *base >= tiered_end),
        "node B has local data it cannot have: {b_local:?} (tiered end {tiered_end})"
    );
    let bootstrap = b.bootstrap();
    let mut conn = Conn::connect(b.kafka_addr()).unwrap();
    let earliest = conn.earliest_offset(topic, 0).unwrap();
    let latest = conn.log_end_offset(topic, 0).unwrap();
    assert_eq!(
        earliest, acks[0].1,
        "earliest offset is not the first record"
    );
    assert!(
        latest >= tiered_end,
        "node B's log ends at {latest}, before the end of the tiered history {tiered_end}"
    );
    assert!(
        latest == tiered_end || latest == i64::try_from(N).unwrap(),
        "node B's log end {latest} is neither the tiered end {tiered_end} nor A's log end {N}"
    );
    let consumed = consume_range(&bootstrap, topic, 0, 0, latest);
    let n = usize::try_from(latest).unwrap();
    check_consumed(&consumed, &all[..n], &acks[..n]).unwrap();

    // The log continues where the history ends: offsets never regress.
    let more = records(100, "fresh-after");
    let more_acks = produce_all(&small_batch_producer(&bootstrap), topic, &more)
        .await
        .unwrap();
    check_acks(&more_acks, &BTreeMap::from([(0, latest)])).unwrap();
    let consumed = consume_range(&bootstrap, topic, 0, latest, latest + 100);
    check_consumed(&consumed, &more, &more_acks).unwrap();
}

// ---- (c) the object store goes away while producing -----------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_outage_while_producing_loses_nothing_and_uploads_resume() {
    let Some(mut moto) = moto("tiered_outage") else {
        return;
    };
    let prefix = "outage";
    let topic = "tiered-outage";
    let node = TestNode::start(tiered_options(&moto, prefix)).unwrap();
    let bootstrap = node.bootstrap();
    create_topic(&bootstrap, topic, 1, &tiered_topic_configs(&[]))
        .await
        .unwrap();
    let producer = small_batch_producer(&bootstrap);

    let before = records(3_000, "before");
    let before_acks = produce_all(&producer, topic, &before).await.unwrap();
    wait_for("a first tiered segment", SETTLE, POLL, || {
        let view = View::take(&node, &moto, prefix, topic, 0)?;
        Ok(if view.remote_bases().is_empty() {
            Poll::Pending(view.describe())
        } else {
            Poll::Ready(())
        })
    })
    .unwrap();

    moto.stop().unwrap();
    // The hot tier takes every write while the object store hangs.
    let during = records(6_000, "during");
    let during_acks = tokio::time::timeout(
        Duration::from_secs(60),
        produce_all(&producer, topic, &during),
    )
    .await
    .expect("producing while S3 is stopped did not finish within 60 s")
    .unwrap();
    let mut acks = before_acks.clone();
    acks.extend_from_slice(&during_acks);
    check_acks(&acks, &BTreeMap::new()).unwrap();
    // Sealed segments pile up un-tiered, and are kept locally despite local.retention.ms=0.
    wait_for(
        "un-tiered segments to pile up locally during the outage",
        SETTLE,
        POLL,
        || {
            let local = local_segments(&node.data_dir(), topic, 0)?;
            Ok(if local.len() >= 3 {
                Poll::Ready(())
            } else {
                Poll::Pending(format!("local={local:?}"))
            })
        },
    )
    .unwrap();
    // The upload-lag gauge reports the sealed, un-tiered bytes: with local.retention.ms=0 those
    // are every local segment but the active one, once local retention has removed segments
    // tiered just before the outage (so both sides are re-read on every poll). A wrong gauge is
    // reported at the end, after the checks that nothing was lost.
    let lag_problem = wait_for(
        "the upload-lag gauge to report the un-tiered sealed bytes",
        Duration::from_secs(20),
        POLL,
        || {
            let local = local_segments(&node.data_dir(), topic, 0)?;
            let sealed = &local[..local.len().saturating_sub(1)];
            let sealed_bytes: u64 = sealed.iter().map(|(_, s)| s).sum();
            let lag = node
                .metrics()?
                .partition("tierlog_partition_upload_lag_bytes", topic, 0);
            Ok(if lag == Some(sealed_bytes as f64) {
                Poll::Ready(())
            } else {
                Poll::Pending(format!(
                    "tierlog_partition_upload_lag_bytes={lag:?}, sealed un-tiered local bytes \
                     {sealed_bytes} in {sealed:?}"
                ))
            })
        },
    )
    .err();
    moto.cont().unwrap();

    let view = wait_settled(&node, &moto, prefix, topic, 0);
    assert_eq!(view.earliest, 0);
    assert_eq!(view.latest, i64::try_from(acks.len()).unwrap());
    let mut all = before;
    all.extend(during);
    let consumed = consume_range(&bootstrap, topic, 0, 0, view.latest);
    check_consumed(&consumed, &all, &acks).unwrap();
    if let Some(e) = lag_problem {
        panic!("during the outage: {e:#}");
    }
}

// ---- (d) a corrupted object is an error, never data -----------------------------------------

/// Picks a byte inside the records of the batch at the middle of a segment object (raw v2
/// batches: base offset i64, length i32, then `length` bytes; 61-byte header), returning
/// `(byte position, base offset of that batch)`. Falls back to the middle byte and the
/// segment's base offset if the object is not laid out as raw batches.
fn corruption_target(bytes: &[u8], segment_base: i64) -> (usize, i64) {
    let mid = bytes.len() / 2;
    let mut pos = 0usize;
    while pos + 61 <= bytes.len() {
        let base = i64::from_be_bytes(bytes[pos..pos + 8].try_into().unwrap());
        let len = i32::from_be_bytes(bytes[pos + 8..pos + 12].try_into().unwrap());
        let Ok(len) = usize::try_from(len) else { break };
        let end = pos + 12 + len;
        if len < 49 || end > bytes.len() || base < segment_base {
            break;
        }
        if mid < end {
            return (pos + 61 + (end - pos - 61) / 2, base);
        }
        pos = end;
    }
    (mid, segment_base)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flipped_byte_in_a_tiered_object_is_a_storage_error_not_data() {
    let Some(moto) = moto("tiered_corruption") else {
        return;
    };
    let prefix = "corrupt";
    let topic = "tiered-corrupt";
    let mut node = TestNode::start(tiered_options(&moto, prefix)).unwrap();
    create_topic(&node.bootstrap(), topic, 1, &tiered_topic_configs(&[]))
        .await
        .unwrap();
    let all = records(8_000, "corrupt");
    let acks = produce_all(&small_batch_producer(&node.bootstrap()), topic, &all)
        .await
        .unwrap();
    let by_offset: BTreeMap<i64, usize> =
        acks.iter().enumerate().map(|(i, (_, o))| (*o, i)).collect();
    let view = wait_settled(&node, &moto, prefix, topic, 0);
    let bases = view.remote_bases();
    assert!(
        bases.len() >= 3,
        "need three tiered segments: {}",
        view.describe()
    );
    let victim = &view.remote_logs[view.remote_logs.len() / 2];
    let next_base = bases[bases.iter().position(|b| *b == victim.base).unwrap() + 1];

    // Nothing of the victim may be cached: stop the node and drop its cache directory.
    assert!(node.terminate().unwrap().success());
    let cache = node.data_dir().join("cache");
    if cache.exists() {
        std::fs::remove_dir_all(&cache).unwrap();
    }
    let mut bytes = moto.get_object(BUCKET, &victim.key).unwrap();
    let (pos, bad_offset) = corruption_target(&bytes, victim.base);
    bytes[pos] ^= 0xFF;
    moto.put_object(BUCKET, &victim.key, &bytes).unwrap();
    eprintln!(
        "flipped byte {pos} of {} (batch at offset {bad_offset}; segment {}..{next_base})",
        victim.key, victim.base
    );
    node.start_again().unwrap();

    let mut conn = Conn::connect(node.kafka_addr()).unwrap();
    let data = conn.fetch_limited(topic, 0, bad_offset, 0, 1, 1).unwrap();
    let returned = data.records.as_ref().map_or(0, |r| r.len());
    assert_eq!(
        data.error_code, KAFKA_STORAGE_ERROR,
        "fetching the corrupted batch at {bad_offset}: error {} with {returned} record bytes",
        data.error_code
    );
    if returned > 0 {
        // Whatever came back must still be exactly what was produced.
        check_fetched(data.records.as_ref().unwrap(), &all, &by_offset);
    }
    wait_for("the corrupt-object counter", SETTLE, POLL, || {
        let n = node
            .metrics()?
            .counter("tierlog_tiering_corrupt_objects_total");
        Ok(if n >= 1.0 {
            Poll::Ready(())
        } else {
            Poll::Pending(format!("tierlog_tiering_corrupt_objects_total={n}"))
        })
    })
    .unwrap();

    // Other tiered ranges still read, byte for byte what was produced.
    for offset in [0, next_base] {
        let data = conn.fetch_limited(topic, 0, offset, 0, 1, 1).unwrap();
        assert_eq!(data.error_code, 0, "fetching intact tiered offset {offset}");
        let n = check_fetched(data.records.as_ref().unwrap(), &all, &by_offset);
        assert!(n > 0, "no records at intact tiered offset {offset}");
    }
    // So does the hot tier.
    let (records_local, acks_local) = acked_from(&all, &acks, 0, view.earliest_local);
    let consumed = consume_range(
        &node.bootstrap(),
        topic,
        0,
        view.earliest_local,
        view.latest,
    );
    check_consumed(&consumed, &records_local, &acks_local).unwrap();
}

// ---- (e) remote retention ---------------------------------------------------------------------

/// Waits until every object of a segment based below `start` is gone from the bucket and
/// returns the view then.
fn wait_objects_below_gone(
    node: &TestNode,
    moto: &MotoServer,
    prefix: &str,
    topic: &str,
    start: i64,
) -> View {
    wait_for(
        &format!("objects of segments ending at or below {start} to be deleted"),
        SETTLE,
        POLL,
        || {
            let view = View::take(node, moto, prefix, topic, 0)?;
            // A segment is wholly below `start` when the next segment (or the local log, after
            // the last tiered one) starts at or below it.
            let mut bases = view.remote_bases();
            if bases.last().is_some_and(|b| *b < view.earliest_local) {
                bases.push(view.earliest_local);
            }
            let doomed: Vec<i64> = bases
                .windows(2)
                .filter(|w| w[1] <= start)
                .map(|w| w[0])
                .collect();
            let left: Vec<&str> = view
                .remote_all
                .iter()
                .filter(|o| doomed.contains(&o.base))
                .map(|o| o.key.as_str())
                .collect();
            Ok(if left.is_empty() {
                Poll::Ready(view)
            } else {
                Poll::Pending(format!("still there: {left:?}; {}", view.describe()))
            })
        },
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_ms_deletes_exactly_the_expired_tiered_segments() {
    let Some(moto) = moto("tiered_retention_ms") else {
        return;
    };
    let prefix = "retention-ms";
    let topic = "tiered-ret-ms";
    let node = TestNode::start(tiered_options(&moto, prefix)).unwrap();
    let bootstrap = node.bootstrap();
    create_topic(
        &bootstrap,
        topic,
        1,
        &tiered_topic_configs(&[("retention.ms", "-1")]),
    )
    .await
    .unwrap();
    let producer = small_batch_producer(&bootstrap);

    // Records stamped two days ago, then records stamped now.
    let old_ts = now_ms() - 2 * 86_400_000;
    let old = records(5_000, "old");
    let mut pending = Vec::new();
    for data in &old {
        let rec = future_record(topic, data).timestamp(old_ts);
        pending.push(producer.send_result(rec).map_err(|(e, _)| e).unwrap());
    }
    let mut acks = Vec::new();
    for f in pending {
        let d = f.await.unwrap().map_err(|(e, _)| e).unwrap();
        acks.push((d.partition, d.offset));
    }
    let fresh = records(4_000, "fresh");
    acks.extend(produce_all(&producer, topic, &fresh).await.unwrap());
    check_acks(&acks, &BTreeMap::new()).unwrap();
    let first_fresh = i64::try_from(old.len()).unwrap();
    let mut all = old;
    all.extend(fresh);

    let before = wait_settled(&node, &moto, prefix, topic, 0);
    assert_eq!(before.earliest, 0);
    // The segment holding the first fresh record is the first one retention must keep.
    let bases = before.remote_bases();
    let keep_from = *bases.iter().rev().find(|b| **b <= first_fresh).unwrap();
    assert!(
        keep_from > 0,
        "the old records do not fill a whole segment: {}",
        before.describe()
    );

    let mut conn = Conn::connect(node.kafka_addr()).unwrap();
    // Lookups by timestamp reach into the tiered segments.
    for (ts, expected) in [(old_ts, 0), (old_ts + 1, first_fresh)] {
        let (error, offset, _) = conn.list_offset(topic, 0, ts).unwrap();
        assert_eq!(
            (error, offset),
            (0, expected),
            "ListOffsets(timestamp {ts}) over tiered segments {bases:?}"
        );
    }
    conn.set_topic_configs(topic, &[("retention.ms", "86400000")])
        .unwrap();
    let after = wait_for(
        "retention.ms to advance the log start",
        SETTLE,
        POLL,
        || {
            let earliest = conn.earliest_offset(topic, 0)?;
            Ok(if earliest > 0 {
                Poll::Ready(earliest)
            } else {
                Poll::Pending(format!("earliest={earliest}"))
            })
        },
    )
    .unwrap();
    assert_eq!(
        after, keep_from,
        "retention.ms=1d: expected the log to start at segment {keep_from} (the first holding a \
         record newer than a day; first fresh record at {first_fresh}); tiered bases were {bases:?}"
    );
    let view = wait_objects_below_gone(&node, &moto, prefix, topic, keep_from);
    // Nothing at or after the kept segment was deleted, objects included.
    for base in bases.iter().filter(|b| **b >= keep_from) {
        assert!(
            view.remote_logs.iter().any(|o| o.base == *base),
            "segment {base} (not expired) lost its object: {}",
            view.describe()
        );
    }
    let (kept, kept_acks) = acked_from(&all, &acks, 0, keep_from);
    let consumed = consume_range(&bootstrap, topic, 0, keep_from, view.latest);
    check_consumed(&consumed, &kept, &kept_acks).unwrap();
    // Below the log start is out of range.
    let data = conn.fetch(topic, 0, keep_from - 1, 0, 1).unwrap();
    assert_eq!(
        data.error_code, OFFSET_OUT_OF_RANGE,
        "fetch below the log start"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_bytes_deletes_the_oldest_tiered_segments_and_nothing_more() {
    let Some(moto) = moto("tiered_retention_bytes") else {
        return;
    };
    let prefix = "retention-bytes";
    let topic = "tiered-ret-bytes";
    let node = TestNode::start(tiered_options(&moto, prefix)).unwrap();
    let bootstrap = node.bootstrap();
    create_topic(
        &bootstrap,
        topic,
        1,
        &tiered_topic_configs(&[("retention.bytes", "-1")]),
    )
    .await
    .unwrap();
    let all = records(8_000, "bytes");
    let acks = produce_all(&small_batch_producer(&bootstrap), topic, &all)
        .await
        .unwrap();
    let before = wait_settled(&node, &moto, prefix, topic, 0);
    let segs: Vec<(i64, u64)> = before
        .remote_logs
        .iter()
        .map(|o| (o.base, o.size))
        .collect();
    assert!(
        segs.len() >= 6,
        "need six tiered segments: {}",
        before.describe()
    );
    let active: u64 = before.local.iter().map(|(_, s)| s).sum();

    // Keep the newest three sealed segments and half of the fourth newest: retention must stop
    // once deleting one more segment would drop the log below the limit.
    const KEEP: usize = 3;
    let newest: u64 = segs[segs.len() - KEEP..].iter().map(|(_, s)| s).sum();
    let limit = newest + segs[segs.len() - KEEP - 1].1 / 2;
    let mut conn = Conn::connect(node.kafka_addr()).unwrap();
    conn.set_topic_configs(topic, &[("retention.bytes", &limit.to_string())])
        .unwrap();
    let earliest = wait_for(
        "retention.bytes to advance the log start",
        SETTLE,
        POLL,
        || {
            let earliest = conn.earliest_offset(topic, 0)?;
            Ok(if earliest > 0 {
                Poll::Ready(earliest)
            } else {
                Poll::Pending(format!("earliest={earliest}"))
            })
        },
    )
    .unwrap();
    let view = wait_objects_below_gone(&node, &moto, prefix, topic, earliest);
    let kept: Vec<(i64, u64)> = segs
        .iter()
        .copied()
        .filter(|(b, _)| *b >= earliest)
        .collect();
    assert_eq!(
        kept.first().map(|(b, _)| *b),
        Some(earliest),
        "the log start {earliest} is not a tiered segment's base; segments were {segs:?}"
    );
    let kept_bytes: u64 = kept.iter().map(|(_, s)| s).sum();
    assert!(
        kept_bytes + active >= limit,
        "retention.bytes={limit}: deleted too much, {kept_bytes} tiered + {active} active bytes \
         kept; segments were {segs:?}, log start now {earliest}"
    );
    assert!(
        kept_bytes - kept[0].1 < limit,
        "retention.bytes={limit}: deleted too little, the oldest kept segment could go too; \
         segments were {segs:?}, log start now {earliest}"
    );
    for (base, _) in &kept {
        assert!(
            view.remote_logs.iter().any(|o| o.base == *base),
            "kept segment {base} lost its object: {}",
            view.describe()
        );
    }
    let (kept_records, kept_acks) = acked_from(&all, &acks, 0, earliest);
    let consumed = consume_range(&bootstrap, topic, 0, earliest, view.latest);
    check_consumed(&consumed, &kept_records, &kept_acks).unwrap();
    let expected = Some(kept.len() as f64);
    wait_for(
        "the remote segment gauge to follow retention",
        SETTLE,
        POLL,
        || {
            let gauge = node
                .metrics()?
                .partition("tierlog_partition_remote_segments", topic, 0);
            Ok(if gauge == expected {
                Poll::Ready(())
            } else {
                Poll::Pending(format!("gauge {gauge:?}, expected {expected:?}"))
            })
        },
    )
    .unwrap();
}

// ---- (f) DeleteRecords across both tiers --------------------------------------------------------

async fn delete_records(bootstrap: &str, topic: &str, before: i64) -> Result<i64> {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Offset(before))?;
    let result = admin(bootstrap)?
        .delete_records(&tpl, &admin_options())
        .await
        .context("DeleteRecords")?;
    let elem = result
        .find_partition(topic, 0)
        .context("DeleteRecords result lacks the partition")?;
    elem.error().context("DeleteRecords partition error")?;
    elem.offset()
        .to_raw()
        .context("DeleteRecords returned no low watermark")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_records_advances_the_log_start_across_both_tiers() {
    let Some(moto) = moto("tiered_delete_records") else {
        return;
    };
    let prefix = "delete-records";
    let topic = "tiered-delrec";
    let node = TestNode::start(tiered_options(&moto, prefix)).unwrap();
    let bootstrap = node.bootstrap();
    create_topic(&bootstrap, topic, 1, &tiered_topic_configs(&[]))
        .await
        .unwrap();
    let all = records(8_000, "delrec");
    let acks = produce_all(&small_batch_producer(&bootstrap), topic, &all)
        .await
        .unwrap();
    let before = wait_settled(&node, &moto, prefix, topic, 0);
    let bases = before.remote_bases();
    assert!(
        bases.len() >= 4,
        "need four tiered segments: {}",
        before.describe()
    );

    // 1. Into the middle of a tiered segment: the log starts there, mid-segment.
    let cut = bases[2] + 3;
    let low = delete_records(&bootstrap, topic, cut).await.unwrap();
    assert_eq!(low, cut, "DeleteRecords low watermark");
    let mut conn = Conn::connect(node.kafka_addr()).unwrap();
    assert_eq!(conn.earliest_offset(topic, 0).unwrap(), cut);
    let data = conn.fetch(topic, 0, cut - 1, 0, 1).unwrap();
    assert_eq!(
        data.error_code, OFFSET_OUT_OF_RANGE,
        "fetch just below the new log start"
    );
    let (kept, kept_acks) = acked_from(&all, &acks, 0, cut);
    let consumed = consume_range(&bootstrap, topic, 0, cut, before.latest);
    check_consumed(&consumed, &kept, &kept_acks).unwrap();
    // Segments wholly below the log start leave the bucket; the one holding it stays.
    let view = wait_objects_below_gone(&node, &moto, prefix, topic, cut);
    assert!(
        view.remote_logs.iter().any(|o| o.base == bases[2]),
        "the segment holding the new log start lost its object: {}",
        view.describe()
    );
    assert!(view.remote_bases().iter().all(|b| *b >= bases[2]));

    // 2. Into the hot tier: everything tiered goes below the log start.
    let cut = before.earliest_local + 1;
    assert!(
        cut < before.latest,
        "the active segment holds a single record"
    );
    let low = delete_records(&bootstrap, topic, cut).await.unwrap();
    assert_eq!(low, cut, "DeleteRecords low watermark in the hot tier");
    assert_eq!(conn.earliest_offset(topic, 0).unwrap(), cut);
    let (kept, kept_acks) = acked_from(&all, &acks, 0, cut);
    let consumed = consume_range(&bootstrap, topic, 0, cut, before.latest);
    check_consumed(&consumed, &kept, &kept_acks).unwrap();
    let view = wait_objects_below_gone(&node, &moto, prefix, topic, cut);
    assert!(
        view.remote_bases().is_empty(),
        "tiered segments wholly below the log start {cut} are still in the bucket: {}",
        view.describe()
    );
}

// ---- (g) orphaned objects ---------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_deletes_orphaned_objects_and_keeps_every_referenced_one() {
    let Some(moto) = moto("tiered_orphan_gc") else {
        return;
    };
    let prefix = "orphan-gc";
    let topic = "tiered-gc";
    // Sweep every 300 ms, deleting unreferenced objects older than 2 s (the node's defaults
    // are 10 min and 1 h, far beyond a test).
    let mut opts = tiered_options(&moto, prefix);
    opts.env.extend([
        ("TIERLOG_TIERING_GC_INTERVAL".to_owned(), "300ms".to_owned()),
        ("TIERLOG_TIERING_GC_GRACE".to_owned(), "2s".to_owned()),
    ]);
    let node = TestNode::start(opts).unwrap();
    let bootstrap = node.bootstrap();
    create_topic(&bootstrap, topic, 1, &tiered_topic_configs(&[]))
        .await
        .unwrap();
    let all = records(6_000, "gc");
    let acks = produce_all(&small_batch_producer(&bootstrap), topic, &all)
        .await
        .unwrap();
    let settled = wait_settled(&node, &moto, prefix, topic, 0);
    let bases = settled.remote_bases();
    assert!(
        bases.len() >= 3,
        "need several tiered segments: {}",
        settled.describe()
    );
    // Settled with exactly four objects per tiered segment (log, offset and time indexes, the
    // producer snapshot of its end; no transaction index without transactions): every
    // object is referenced.
    assert_eq!(
        settled.remote_all.len(),
        4 * bases.len(),
        "objects beyond the recorded segments before any orphan was made: {}",
        settled.describe()
    );
    let referenced: BTreeSet<String> = settled.remote_all.iter().map(|o| o.key.clone()).collect();

    // Orphans as a crashed or deposed uploader leaves them: another upload of a recorded base
    // offset, and an upload past the tiered end; plus an object that is not ours.
    let dir = settled.remote_logs[0]
        .key
        .rsplit_once('/')
        .map(|(d, _)| d.to_owned())
        .unwrap();
    let mut orphans = Vec::new();
    for (base, upload) in [
        (bases[1], "0123456789abcdef0123456789abcdef"),
        (settled.latest + 1_000, "fedcba9876543210fedcba9876543210"),
    ] {
        for ext in ["log", "index", "timeindex"] {
            let key = format!("{dir}/{base:020}-e0-{upload}.{ext}");
            moto.put_object(BUCKET, &key, b"orphan").unwrap();
            orphans.push(key);
        }
    }
    let foreign = format!("{dir}/operator-notes.txt");
    moto.put_object(BUCKET, &foreign, b"keep me").unwrap();

    wait_for("the orphans to be deleted", SETTLE, POLL, || {
        let left: Vec<&String> = orphans
            .iter()
            .filter(|k| moto.object_exists(BUCKET, k).unwrap_or(true))
            .collect();
        Ok(if left.is_empty() {
            Poll::Ready(())
        } else {
            Poll::Pending(format!("still there: {left:?}"))
        })
    })
    .unwrap();
    assert_eq!(
        node.metrics()
            .unwrap()
            .counter("tierlog_tiering_orphans_deleted_total"),
        orphans.len() as f64
    );
    assert!(
        moto.object_exists(BUCKET, &foreign).unwrap(),
        "an object that is not a segment object was deleted"
    );
    // (not in the documented layout: the views below would refuse it)
    moto.delete_object(BUCKET, &foreign).unwrap();

    // The sweeps that deleted the orphans saw every referenced object just as old: all stay.
    let after = View::take(&node, &moto, prefix, topic, 0).unwrap();
    let now: BTreeSet<String> = after.remote_all.iter().map(|o| o.key.clone()).collect();
    let lost: Vec<&String> = referenced.difference(&now).collect();
    assert!(
        lost.is_empty(),
        "referenced objects deleted: {lost:?}; {}",
        after.describe()
    );
    assert_eq!(after.earliest, 0);
    let consumed = consume_range(&bootstrap, topic, 0, 0, settled.latest);
    check_consumed(&consumed, &all, &acks).unwrap();
}

// ---- (h) object-store faults injected through the node's test-only setting --------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_retry_through_injected_503s_and_tier_every_segment_once() {
    let Some(moto) = moto("tiered_injected_faults") else {
        return;
    };
    let prefix = "faults";
    let topic = "tiered-faults";
    // The first 3 object writes fail with a 503 (what S3 answers when it sheds load), and
    // every read is 5 ms slow.
    let mut opts = tiered_options(&moto, prefix);
    opts.extra_args.extend([
        "--object-store-faults".to_owned(),
        "ops=put+multipart,fail_first=3,error=503;ops=get,latency=5ms".to_owned(),
    ]);
    let node = TestNode::start(opts).unwrap();
    let bootstrap = node.bootstrap();
    create_topic(&bootstrap, topic, 1, &tiered_topic_configs(&[]))
        .await
        .unwrap();
    let all = records(6_000, "faults");
    let acks = produce_all(&small_batch_producer(&bootstrap), topic, &all)
        .await
        .unwrap();

    let view = wait_settled(&node, &moto, prefix, topic, 0);
    let bases = view.remote_bases();
    assert!(
        bases.len() >= 3,
        "need several tiered segments: {}",
        view.describe()
    );
    assert_eq!(bases[0], 0, "the first segment was not tiered");
    assert_eq!(
        bases.len(),
        view.remote_logs.len(),
        "a segment was recorded or uploaded twice: {}",
        view.describe()
    );
    let metrics = node.metrics().unwrap();
    assert!(
        metrics.counter("tierlog_tiering_upload_errors_total") >= 1.0,
        "the injected 503s were not seen by the uploader"
    );
    // Everything acknowledged reads back from offset 0, most of it from the bucket.
    let consumed = consume_range(&bootstrap, topic, 0, 0, view.latest);
    check_consumed(&consumed, &all, &acks).unwrap();
}
