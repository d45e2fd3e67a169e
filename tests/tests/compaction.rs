//! Log compaction (`cleanup.policy=compact`) judged by librdkafka and by Apache Kafka itself:
//! every scenario runs against a tierlog node and against a real Kafka broker, and both must
//! give the same answers.
//!
//! - The seeds' example: keys K1 K2 K1 K1 K3 K2 K4 K5 K5 K2 K6 with values V1..V11 compact to
//!   V4 V5 V7 V9 V10 V11 at offsets 3 4 6 8 9 10, the offsets unchanged, and a consumer
//!   reading from the start steps over the holes.
//! - Tombstones: a key deleted with a null value shows as the tombstone for
//!   `delete.retention.ms` after the cleaning that reached it, then is gone.
//! - A keyless record is refused with INVALID_RECORD.
//!
//! The segments roll on time (`segment.ms`), so the scenarios wait a little longer than that
//! before the record whose append rolls the segment (Kafka rolls only on append).
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::FutureRecord;
use rdkafka::{Offset, TopicPartitionList};
use tierlog_tests::clients::{consumer, create_topic, producer, watermarks};
use tierlog_tests::cluster::{ClusterOptions, SharedStore, TestCluster};
use tierlog_tests::kafka::{Broker, KafkaServer, require_kafka};
use tierlog_tests::s3::MotoServer;
use tierlog_tests::wait::{Poll, wait_for};
use tierlog_tests::{NodeOptions, TestNode};

const SEGMENT_MS: u64 = 200;
/// Long enough for the waits below to see the tombstone before tierlog's cleaner (which cleans
/// again once the horizon passes) removes it, on a slow machine too.
const DELETE_RETENTION: Duration = Duration::from_secs(5);
/// How long the log cleaner may take to get to a dirty log (both brokers check every 100 ms).
const CLEAN_TIMEOUT: Duration = Duration::from_secs(60);

type Row = (i64, String, Option<String>);

fn compacted_topic_configs() -> Vec<(&'static str, String)> {
    vec![
        ("cleanup.policy", "compact".into()),
        ("segment.ms", SEGMENT_MS.to_string()),
        ("min.cleanable.dirty.ratio", "0.01".into()),
        (
            "delete.retention.ms",
            DELETE_RETENTION.as_millis().to_string(),
        ),
    ]
}

async fn produce(bootstrap: &str, topic: &str, rows: &[(&str, Option<&str>)]) {
    let p = producer(bootstrap, &[("linger.ms", "0")]).unwrap();
    for (k, v) in rows {
        let mut rec = FutureRecord::to(topic).key(*k).partition(0);
        if let Some(v) = v {
            rec = rec.payload(*v);
        }
        p.send(rec, Duration::from_secs(30)).await.unwrap();
    }
}

/// Every record of partition 0 from the start, as a fresh consumer reads it.
fn read_all(bootstrap: &str, topic: &str) -> anyhow::Result<Vec<Row>> {
    let (_, high) = watermarks(bootstrap, topic, 0)?;
    let c: BaseConsumer = consumer(bootstrap, &[])?;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)?;
    c.assign(&tpl)?;
    let mut out = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while out.last().is_none_or(|r: &Row| r.0 < high - 1) {
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "read {out:?} of {high}"
        );
        if let Some(m) = c.poll(Duration::from_millis(200)) {
            let m = m?;
            out.push((
                m.offset(),
                String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned(),
                m.payload().map(|v| String::from_utf8_lossy(v).into_owned()),
            ));
        }
    }
    Ok(out)
}

fn rows(list: &[(i64, &str, Option<&str>)]) -> Vec<Row> {
    list.iter()
        .map(|(o, k, v)| (*o, (*k).to_owned(), v.map(str::to_owned)))
        .collect()
}

/// Waits until a fresh read of the topic is `want`.
fn wait_for_log(bootstrap: &str, topic: &str, what: &str, want: &[Row]) {
    wait_for(what, CLEAN_TIMEOUT, Duration::from_millis(200), || {
        let got = read_all(bootstrap, topic)?;
        Ok(if got == want {
            Poll::Ready(())
        } else {
            Poll::Pending(format!("{got:?}"))
        })
    })
    .unwrap();
}

/// The seeds' keys, in offset order 0..10, with values V1..V11.
const SEED_KEYS: [&str; 11] = [
    "K1", "K2", "K1", "K1", "K3", "K2", "K4", "K5", "K5", "K2", "K6",
];

fn seed_values() -> Vec<String> {
    (1..=11).map(|i| format!("V{i}")).collect()
}

fn seed_rows(values: &[String]) -> Vec<(&'static str, Option<&str>)> {
    SEED_KEYS
        .iter()
        .zip(values)
        .map(|(k, v)| (*k, Some(v.as_str())))
        .collect()
}

/// Produces the seeds' eleven records, then (after `segment.ms`) K7=V12 at offset 11, whose
/// append rolls the segment holding the eleven (Kafka rolls only on append).
async fn produce_seeds(bootstrap: &str, topic: &str) {
    produce(bootstrap, topic, &seed_rows(&seed_values())).await;
    tokio::time::sleep(Duration::from_millis(2 * SEGMENT_MS)).await;
    produce(bootstrap, topic, &[("K7", Some("V12"))]).await;
}

/// The seeds' log compacted, plus K7 at offset 11.
fn seeds_compacted() -> Vec<Row> {
    rows(&[
        (3, "K1", Some("V4")),
        (4, "K3", Some("V5")),
        (6, "K4", Some("V7")),
        (8, "K5", Some("V9")),
        (9, "K2", Some("V10")),
        (10, "K6", Some("V11")),
        (11, "K7", Some("V12")),
    ])
}

async fn seeds_and_tombstones(broker: &dyn Broker) {
    let b = broker.bootstrap();
    let topic = "compacted";
    let cfgs = compacted_topic_configs();
    let cfgs: Vec<(&str, &str)> = cfgs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    create_topic(&b, topic, 1, &cfgs).await.unwrap();
    produce_seeds(&b, topic).await;
    let compacted = seeds_compacted();
    wait_for_log(
        &b,
        topic,
        &format!("{}: the seeds' example compacted", broker.name()),
        &compacted,
    );

    // Delete K1 with a tombstone; roll past it.
    produce(&b, topic, &[("K1", None)]).await;
    tokio::time::sleep(Duration::from_millis(2 * SEGMENT_MS)).await;
    produce(&b, topic, &[("K8", Some("V13"))]).await;
    let mut with_tombstone: Vec<Row> = compacted[1..].to_vec();
    with_tombstone.extend(rows(&[(12, "K1", None), (13, "K8", Some("V13"))]));
    wait_for_log(
        &b,
        topic,
        &format!("{}: K1 deleted, its tombstone kept", broker.name()),
        &with_tombstone,
    );
    // Past delete.retention.ms (counted from the cleaning that reached the tombstone) the
    // next cleaning removes it. Kafka cleans again only when new records make the log dirty;
    // tierlog also cleans a log once a delete horizon in it passes, so it drops the tombstone
    // sooner; after the next records both agree.
    tokio::time::sleep(DELETE_RETENTION + Duration::from_millis(500)).await;
    produce(&b, topic, &[("K9", Some("V14"))]).await;
    tokio::time::sleep(Duration::from_millis(2 * SEGMENT_MS)).await;
    produce(&b, topic, &[("K10", Some("V15"))]).await;
    let mut gone = with_tombstone.clone();
    gone.retain(|r| r.0 != 12);
    gone.extend(rows(&[(14, "K9", Some("V14")), (15, "K10", Some("V15"))]));
    wait_for_log(
        &b,
        topic,
        &format!("{}: K1's tombstone removed", broker.name()),
        &gone,
    );

    // A keyless record is refused.
    let p = producer(&b, &[("linger.ms", "0"), ("retries", "0")]).unwrap();
    let r = p
        .send(
            FutureRecord::<(), str>::to(topic)
                .payload("no key")
                .partition(0),
            Duration::from_secs(30),
        )
        .await;
    match r {
        Err((KafkaError::MessageProduction(code), _)) => {
            assert_eq!(code, RDKafkaErrorCode::InvalidRecord, "{}", broker.name())
        }
        other => panic!(
            "{}: a keyless record was not refused: {other:?}",
            broker.name()
        ),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_seeds_example_and_tombstones_on_tierlog() {
    let node = TestNode::start(NodeOptions {
        retention_check_interval: Some("100ms".into()),
        extra_args: vec!["--log-cleaner-backoff".into(), "100ms".into()],
        ..NodeOptions::default()
    })
    .unwrap();
    seeds_and_tombstones(&node).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_seeds_example_and_tombstones_on_apache_kafka() {
    if !require_kafka("compaction_seeds_example_and_tombstones_on_apache_kafka").unwrap() {
        return;
    }
    let kafka = KafkaServer::start(&[("log.cleaner.backoff.ms", "100")]).unwrap();
    seeds_and_tombstones(&kafka).await;
}

/// Records of the crash scenario: many versions of few keys, so cleaning removes most bytes.
const CRASH_RECORDS: usize = 30_000;
const CRASH_KEYS: usize = 500;

/// Every record of partition 0 from the start, by a fresh consumer (any number of records).
fn read_everything(bootstrap: &str, topic: &str) -> anyhow::Result<Vec<Row>> {
    read_all(bootstrap, topic)
}

/// A node is killed (SIGKILL) while its cleaner is in the middle of a throttled cleaning;
/// restarted, it has lost nothing: every key's latest value is at its original offset, no
/// offset repeats, no cleaning leftovers stay on disk, and the next cleaning finishes the job
/// exactly (the latest record per key and nothing else).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_mid_cleaning_loses_nothing() {
    let mut node = TestNode::start(NodeOptions {
        retention_check_interval: Some("100ms".into()),
        // 256 KiB segments, below Kafka's 1 MiB floor.
        min_segment_bytes: Some(262_144),
        extra_args: vec![
            "--log-cleaner-backoff".into(),
            "100ms".into(),
            "--log-cleaner-io-max-bytes-per-second".into(),
            "1000000".into(),
        ],
        ..NodeOptions::default()
    })
    .unwrap();
    let b = node.bootstrap();
    let topic = "compacted-crash";
    create_topic(
        &b,
        topic,
        1,
        &[
            ("cleanup.policy", "compact"),
            ("segment.bytes", "262144"),
            ("segment.ms", "1000"),
            ("min.cleanable.dirty.ratio", "0.01"),
            // Nothing is cleaned while the records are produced.
            ("min.compaction.lag.ms", "10000"),
            ("remote.storage.enable", "false"),
        ],
    )
    .await
    .unwrap();
    let p = producer(&b, &[("linger.ms", "20")]).unwrap();
    let mut latest = std::collections::BTreeMap::new();
    let mut pending = Vec::with_capacity(CRASH_RECORDS);
    for i in 0..CRASH_RECORDS {
        let key = format!("key-{:04}", (i * 7919) % CRASH_KEYS);
        let value = format!("{i:08}-{}", "x".repeat(150));
        pending.push((
            key.clone(),
            value.clone(),
            p.send_result(
                FutureRecord::to(topic)
                    .key(&key)
                    .payload(&value)
                    .partition(0),
            )
            .unwrap(),
        ));
    }
    for (key, value, f) in pending {
        let d = f.await.unwrap().unwrap();
        latest.insert(key, (d.offset, value));
    }
    // Kill it while the throttled cleaner is writing a cleaned copy of some segments (its
    // `.cleaned` files are on disk), before any cleaning finished.
    let logs = node.data_dir().join("logs");
    wait_for(
        "the cleaner to be mid-cleaning",
        CLEAN_TIMEOUT,
        Duration::from_millis(10),
        || {
            let cleaning = files_under(&logs).iter().any(|n| n.ends_with(".cleaned"));
            Ok(if cleaning {
                Poll::Ready(())
            } else {
                Poll::Pending("no .cleaned file yet".into())
            })
        },
    )
    .unwrap();
    node.kill9().unwrap();
    node.start_again().unwrap();

    let check = |rows: &[Row]| -> anyhow::Result<()> {
        let offsets: Vec<i64> = rows.iter().map(|r| r.0).collect();
        anyhow::ensure!(
            offsets.windows(2).all(|w| w[0] < w[1]),
            "offsets repeat or go back"
        );
        let mut last = std::collections::BTreeMap::new();
        for r in rows {
            last.insert(r.1.clone(), (r.0, r.2.clone().unwrap_or_default()));
        }
        anyhow::ensure!(last == latest, "the latest value of some key was lost");
        Ok(())
    };
    let after_crash = read_everything(&b, topic).unwrap();
    check(&after_crash).unwrap();
    let leftovers: Vec<String> = files_under(&node.data_dir().join("logs"))
        .into_iter()
        .filter(|n| n.ends_with(".cleaned") || n.ends_with(".swap"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // The next cleanings (the active segment rolls by time) finish: exactly one record per key.
    let mut want: Vec<Row> = latest
        .iter()
        .map(|(k, (o, v))| (*o, k.clone(), Some(v.clone())))
        .collect();
    want.sort();
    wait_for_log(&b, topic, "the log compacted after the restart", &want);
}

/// Names of every file under `dir`, recursively.
fn files_under(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.path().is_dir() {
            out.extend(files_under(&e.path()));
        } else {
            out.push(e.file_name().to_string_lossy().into_owned());
        }
    }
    out
}

/// Three replicas: each cleans its own copy below the high watermark it knows. Once every node's
/// cleaner has removed something, the leader is killed and the new leader (a follower that
/// cleaned its own copy) serves exactly the compacted log; the killed node, restarted on an
/// empty disk, copies the compacted log with its holes and leads it after another failover.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_clean_their_own_copies_and_any_of_them_serves_the_compacted_log() {
    let opts = ClusterOptions {
        store: SharedStore::File,
        node: NodeOptions {
            retention_check_interval: Some("100ms".into()),
            extra_args: vec!["--log-cleaner-backoff".into(), "100ms".into()],
            ..NodeOptions::default()
        },
        ..ClusterOptions::default()
    };
    let test = "replicas_clean_their_own_copies_and_any_of_them_serves_the_compacted_log";
    let Some(mut c) = TestCluster::start_or_skip(test, opts).unwrap() else {
        return;
    };
    c.wait_brokers(3).unwrap();
    let topic = "compacted-replicated";
    let mut cfgs = compacted_topic_configs();
    cfgs.push(("remote.storage.enable", "false".into()));
    let cfgs: Vec<(&str, &str)> = cfgs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    c.create_topic(topic, 1, 3, &cfgs).await.unwrap();
    c.wait_topic_full(topic, 1, 3).unwrap();
    produce_seeds(&c.bootstrap(), topic).await;
    let compacted = seeds_compacted();
    wait_for_log(
        &c.bootstrap(),
        topic,
        "the leader's log compacted",
        &compacted,
    );
    wait_for(
        "every replica to clean its own copy",
        CLEAN_TIMEOUT,
        Duration::from_millis(100),
        || {
            let removed: Vec<f64> = c
                .live_ids()
                .iter()
                .map(|id| {
                    c.node(*id)
                        .metrics()
                        .map(|m| m.counter("tierlog_cleaner_removed_bytes_total"))
                })
                .collect::<anyhow::Result<_>>()?;
            Ok(if removed.iter().all(|r| *r > 0.0) {
                Poll::Ready(())
            } else {
                Poll::Pending(format!("{removed:?}"))
            })
        },
    )
    .unwrap();
    let leader = c.wait_isr_full(topic, 0).unwrap().leader.unwrap();
    c.kill9(leader).unwrap();
    let successor = c.wait_leader_not(topic, 0, leader).unwrap();
    wait_for_log(
        &c.bootstrap(),
        topic,
        &format!("node {successor}, the new leader, serving its own compacted copy"),
        &compacted,
    );
    // The old leader comes back with an empty disk, copies the compacted log (holes and all)
    // from the new leader, and serves it once it leads.
    c.wipe_and_restart(leader).unwrap();
    c.wait_isr_full(topic, 0).unwrap();
    c.kill9(successor).unwrap();
    let third = c.wait_leader_not(topic, 0, successor).unwrap();
    wait_for_log(
        &c.bootstrap(),
        topic,
        &format!("node {third} serving the compacted log after a second failover"),
        &compacted,
    );
}

const BUCKET: &str = "compaction";

/// The data objects (`.log`) of the tiered segments in the bucket: (base offset, key).
fn data_objects(moto: &MotoServer) -> anyhow::Result<Vec<(i64, String)>> {
    Ok(moto
        .list_objects(BUCKET, "")?
        .into_iter()
        .filter(|o| o.key.ends_with(".log"))
        .filter_map(|o| {
            let name = o.key.rsplit('/').next()?.to_owned();
            let base = name.split('-').next()?.parse().ok()?;
            Some((base, o.key))
        })
        .collect())
}

/// A compacted topic tiered to a real S3 server (moto), its local copies deleted once tiered:
/// the leader compacts the tiered segments in object storage (new objects, an atomic manifest
/// swap). The node is killed (SIGKILL) while it writes the compacted copy — each PUT slowed
/// to 300 ms so the kill lands mid-rewrite — and restarted: nothing is lost, the compaction
/// finishes, consumers read exactly the seeds' compacted log from object storage, and once
/// the grace passes the bucket holds exactly one data object per manifest entry (the killed
/// rewrite's orphans swept, the replaced objects reaped).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiered_segments_compact_in_object_storage_and_a_kill_mid_rewrite_loses_nothing() {
    let test = "tiered_segments_compact_in_object_storage_and_a_kill_mid_rewrite_loses_nothing";
    let Some(moto) = MotoServer::start_or_skip(test).unwrap() else {
        return;
    };
    moto.create_bucket(BUCKET).unwrap();
    let mut opts = NodeOptions::default()
        .s3(&moto, BUCKET, "t")
        .upload_interval("100ms")
        .retention_check_interval("100ms");
    opts.extra_args = vec![
        "--log-cleaner-backoff".into(),
        "100ms".into(),
        "--tiering-gc-interval".into(),
        "500ms".into(),
        "--tiering-gc-grace".into(),
        "2s".into(),
    ];
    let mut slow = opts.clone();
    slow.extra_args.extend([
        "--object-store-faults".into(),
        "ops=put,latency=300ms".into(),
    ]);
    let mut node = TestNode::start(slow).unwrap();
    let b = node.bootstrap();
    let topic = "compacted-tiered";
    let mut cfgs = compacted_topic_configs();
    cfgs.push(("remote.storage.enable", "true".into()));
    cfgs.push(("local.retention.ms", "0".into()));
    let cfgs: Vec<(&str, &str)> = cfgs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    create_topic(&b, topic, 1, &cfgs).await.unwrap();
    produce_seeds(&b, topic).await;

    // A second data object for base offset 0: the compacted copy of the first segment is
    // being written. Kill the node then.
    wait_for(
        "tiered compaction writing a new copy of segment 0",
        CLEAN_TIMEOUT,
        Duration::from_millis(10),
        || {
            let at_zero = data_objects(&moto)?.iter().filter(|o| o.0 == 0).count();
            Ok(if at_zero >= 2 {
                Poll::Ready(())
            } else {
                Poll::Pending(format!("{at_zero} data objects at base offset 0"))
            })
        },
    )
    .unwrap();
    node.kill9().unwrap();
    node.start_again_with(opts).unwrap();

    let compacted = seeds_compacted();
    wait_for_log(
        &b,
        topic,
        "the tiered log compacted after the restart",
        &compacted,
    );
    wait_for(
        "the bucket to hold exactly one data object per tiered segment",
        CLEAN_TIMEOUT,
        Duration::from_millis(200),
        || {
            let m = node.metrics()?;
            let (swaps, local, remote) = (
                m.counter("tierlog_remote_cleaner_passes_total"),
                m.partition("tierlog_partition_local_bytes", topic, 0).unwrap_or(-1.0),
                m.partition("tierlog_partition_remote_segments", topic, 0).unwrap_or(-1.0),
            );
            let objects = data_objects(&moto)?;
            let bases: std::collections::BTreeSet<i64> = objects.iter().map(|o| o.0).collect();
            Ok(
                if swaps >= 1.0
                    && objects.len() as f64 == remote
                    && bases.len() == objects.len()
                    && local == 0.0
                {
                    Poll::Ready(())
                } else {
                    Poll::Pending(format!(
                        "{swaps} swaps, {remote} tiered segments, local bytes {local}, objects {objects:?}"
                    ))
                },
            )
        },
    )
    .unwrap();
    // Everything read above came from object storage (nothing is kept locally).
    wait_for_log(
        &b,
        topic,
        "the compacted log read from object storage",
        &compacted,
    );
}

/// Every (offset, key, value) of the Parquet files under `dir`, read by pyarrow, sorted.
fn parquet_rows(dir: &std::path::Path) -> Vec<Row> {
    let script = r#"
import json, pathlib, sys
import pyarrow.parquet as pq
rows = []
for f in sorted(pathlib.Path(sys.argv[1]).rglob("*.parquet")):
    t = pq.read_table(f)
    for o, k, v in zip(t.column("offset").to_pylist(), t.column("key").to_pylist(), t.column("value").to_pylist()):
        rows.append([o, k.decode(), None if v is None else v.decode()])
print(json.dumps(sorted(rows)))
"#;
    let out = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn export(node: &TestNode, topic: &str, output: &std::path::Path, extra: &[&str]) {
    let out = std::process::Command::new(tierlog_tests::node::tierlog_binary().unwrap())
        .args(["export", "--topic", topic, "--data-dir"])
        .arg(node.data_dir())
        .arg("--output")
        .arg(output)
        .args(extra)
        .env_remove("TIERLOG_CONFIG")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "tierlog export: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The history of a compacted topic, exported with no node running, reads the compacted
/// tiered segments (holes and all); `--latest-per-key` exports a table snapshot: the latest
/// value of every key, deleted keys left out, even of a log not compacted yet.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_reads_compacted_history_and_latest_per_key_snapshots() {
    let mut node = TestNode::start(NodeOptions {
        upload_interval: Some("100ms".into()),
        retention_check_interval: Some("100ms".into()),
        extra_args: vec!["--log-cleaner-backoff".into(), "100ms".into()],
        ..NodeOptions::default()
    })
    .unwrap();
    let b = node.bootstrap();
    let mut cfgs = compacted_topic_configs();
    cfgs.push(("remote.storage.enable", "true".into()));
    cfgs.push(("local.retention.ms", "0".into()));
    let compacted: Vec<(&str, &str)> = cfgs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    create_topic(&b, "history", 1, &compacted).await.unwrap();
    // Not compacted yet: records stay uncleaned for an hour.
    let mut table = compacted.clone();
    table.push(("min.compaction.lag.ms", "3600000"));
    create_topic(&b, "table", 1, &table).await.unwrap();
    produce_seeds(&b, "history").await;
    let values = seed_values();
    produce(&b, "table", &seed_rows(&values)).await;
    produce(&b, "table", &[("K7", Some("V12")), ("K3", None)]).await;
    let history = seeds_compacted();
    wait_for_log(&b, "history", "the tiered history compacted", &history);
    wait_for(
        "tiered compaction of the history",
        CLEAN_TIMEOUT,
        Duration::from_millis(100),
        || {
            let swaps = node
                .metrics()?
                .counter("tierlog_remote_cleaner_passes_total");
            Ok(if swaps >= 1.0 {
                Poll::Ready(())
            } else {
                Poll::Pending("no tiered compaction yet".into())
            })
        },
    )
    .unwrap();
    assert_eq!(read_all(&b, "table").unwrap().len(), 13);
    // A clean stop tiers everything; export runs with no node.
    assert!(node.terminate().unwrap().success());
    let out = tempfile::tempdir().unwrap();
    export(&node, "history", &out.path().join("history"), &[]);
    assert_eq!(parquet_rows(&out.path().join("history")), history);
    export(
        &node,
        "table",
        &out.path().join("table"),
        &["--latest-per-key"],
    );
    let snapshot = rows(&[
        (3, "K1", Some("V4")),
        (6, "K4", Some("V7")),
        (8, "K5", Some("V9")),
        (9, "K2", Some("V10")),
        (10, "K6", Some("V11")),
        (11, "K7", Some("V12")),
    ]);
    assert_eq!(parquet_rows(&out.path().join("table")), snapshot);
}
