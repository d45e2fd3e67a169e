//! Whole segment files damaged while a node is down, end to end: a real `tierlog` process
//! (tiering to a real S3-compatible server, `moto_server`, where the case needs one), a
//! `kill -9`, then a segment file cut short in the middle, an index file zeroed, a segment
//! file deleted; librdkafka consumers with their default `check.crcs=false`.
//!
//! What must hold: every acknowledged record reads back right — what object storage holds is
//! served from there and healed locally, byte for byte; a deleted segment that exists nowhere
//! else is refused with KAFKA_STORAGE_ERROR (never skipped as if it were a compacted hole)
//! while every offset around it is served, until the operator accepts the loss.
//!
//! Outside CI a missing moto skips the tiered test loudly; with `CI` set it fails it.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use rdkafka::message::OwnedMessage;
use rdkafka::{Offset, TopicPartitionList};
use tierlog_tests::clients::{
    RecordData, admin, admin_options, assigned_consumer, consume_exactly, create_topic, producer,
};
use tierlog_tests::node::tierlog_binary;
use tierlog_tests::wait::{Poll, wait_for};
use tierlog_tests::wire::{Conn, KAFKA_STORAGE_ERROR, decode_records};
use tierlog_tests::workload::{check_consumed, consume_timeout, produce_all, records};
use tierlog_tests::{MotoServer, NodeOptions, TestNode};

const BUCKET: &str = "tierlog-damage-files";
const SEGMENT_BYTES: &str = "65536";
/// Bound on every wait (uploads every 200 ms; slack for a debug broker on a busy machine).
const SETTLE: Duration = Duration::from_secs(120);
const POLL: Duration = Duration::from_millis(100);

/// The directory of `topic`/0 under `data_dir`.
fn partition_dir(data_dir: &Path, topic: &str) -> PathBuf {
    let logs = data_dir.join("logs");
    std::fs::read_dir(&logs)
        .unwrap()
        .flatten()
        .find(|e| {
            e.file_name()
                .to_string_lossy()
                .strip_prefix(&format!("{topic}-"))
                .is_some_and(|id| id.len() == 32)
        })
        .unwrap_or_else(|| panic!("no directory of {topic} in {}", logs.display()))
        .path()
        .join("0")
}

/// The local `.log` files of `topic`/0, sorted by base offset.
fn segment_files(data_dir: &Path, topic: &str) -> Vec<(i64, PathBuf)> {
    let mut out: Vec<(i64, PathBuf)> = std::fs::read_dir(partition_dir(data_dir, topic))
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let base = name.strip_suffix(".log")?.parse().ok()?;
            Some((base, e.path()))
        })
        .collect();
    out.sort();
    out
}

/// Consumes `[from, to)` of `topic`/0 with librdkafka (default `check.crcs=false`).
fn consume(bootstrap: &str, topic: &str, from: i64, to: i64) -> Vec<OwnedMessage> {
    let n = usize::try_from(to - from).unwrap();
    let consumer = assigned_consumer(bootstrap, topic, [0], Offset::Offset(from)).unwrap();
    consume_exactly(&consumer, n, consume_timeout(n)).unwrap()
}

/// Consumes `[from, to)` of `topic`/0 and checks it against the acknowledged records there.
fn check_range(
    bootstrap: &str,
    topic: &str,
    all: &[RecordData],
    acks: &[(i32, i64)],
    from: i64,
    to: i64,
) {
    let (want, want_acks): (Vec<RecordData>, Vec<(i32, i64)>) = all
        .iter()
        .zip(acks)
        .filter(|(_, (_, o))| (from..to).contains(o))
        .map(|(r, a)| (r.clone(), *a))
        .unzip();
    check_consumed(&consume(bootstrap, topic, from, to), &want, &want_acks).unwrap();
}

/// Produces `n` records to a new topic with small batches; returns them, their acks and the
/// log end.
async fn fill(
    node: &TestNode,
    topic: &str,
    tiered: bool,
    n: usize,
) -> (Vec<RecordData>, Vec<(i32, i64)>, i64) {
    let remote = if tiered { "true" } else { "false" };
    create_topic(
        &node.bootstrap(),
        topic,
        1,
        &[
            ("segment.bytes", SEGMENT_BYTES),
            ("remote.storage.enable", remote),
        ],
    )
    .await
    .unwrap();
    let all = records(n, topic);
    let p = producer(
        &node.bootstrap(),
        &[("batch.size", "16384"), ("linger.ms", "5")],
    )
    .unwrap();
    let acks = produce_all(&p, topic, &all).await.unwrap();
    let end = acks.iter().map(|(_, o)| o + 1).max().unwrap();
    (all, acks, end)
}

/// Waits until the gauge `name` of `topic`/0 reads `want`.
fn wait_gauge(node: &TestNode, name: &str, topic: &str, want: f64) {
    wait_for(&format!("{name} of {topic} = {want}"), SETTLE, POLL, || {
        let got = node.metrics()?.partition(name, topic, 0);
        Ok(if got == Some(want) {
            Poll::Ready(())
        } else {
            Poll::Pending(format!("{name}={got:?}"))
        })
    })
    .unwrap();
}

/// `tierlog damage list` against `node`'s admin endpoint.
fn damage_list(node: &TestNode) -> String {
    let out = std::process::Command::new(tierlog_binary().unwrap())
        .args(["damage", "list", "--http", &node.http_addr().to_string()])
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "tierlog damage list: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The path of the side file `ext` (`index`, `timeindex`) of the segment at `log`.
fn side_file(log: &Path, ext: &str) -> PathBuf {
    log.with_extension(ext)
}

/// A position 30 bytes into the batch (v2 batches are 61 bytes or more) holding the middle
/// byte of the segment `bytes`: cutting the file there leaves half a batch.
fn inside_middle_batch(bytes: &[u8]) -> u64 {
    let mid = bytes.len() / 2;
    let mut pos = 0usize;
    loop {
        let len = usize::try_from(i32::from_be_bytes(
            bytes[pos + 8..pos + 12].try_into().unwrap(),
        ))
        .unwrap();
        let end = pos + 12 + len;
        if mid < end {
            return pos as u64 + 30;
        }
        pos = end;
    }
}

/// Overwrites the file at `path` with zeros, keeping its length.
fn zero(path: &Path) {
    let len = std::fs::metadata(path).unwrap().len();
    assert!(len > 0, "{} is empty", path.display());
    std::fs::write(path, vec![0u8; usize::try_from(len).unwrap()]).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_zeroed_and_deleted_segment_files_are_served_from_object_storage_and_healed() {
    let Some(moto) = MotoServer::start_or_skip("damage_files").unwrap() else {
        return;
    };
    moto.create_bucket(BUCKET).unwrap();
    let mut node = TestNode::start(
        NodeOptions::default()
            .s3(&moto, BUCKET, "files")
            .min_segment_bytes(SEGMENT_BYTES.parse().unwrap())
            .upload_interval("200ms")
            .args(["--scrub-interval", "24h"]),
    )
    .unwrap();
    let topic = "damage-files";
    let (all, acks, end) = fill(&node, topic, true, 14_000).await;
    wait_for(&format!("{topic} to be tiered"), SETTLE, POLL, || {
        let m = node.metrics()?;
        let lag = m.partition("tierlog_partition_upload_lag_bytes", topic, 0);
        let tiered = m.partition("tierlog_partition_remote_segments", topic, 0);
        Ok(if lag == Some(0.0) && tiered.is_some_and(|t| t >= 4.0) {
            Poll::Ready(())
        } else {
            Poll::Pending(format!("upload lag {lag:?}, tiered segments {tiered:?}"))
        })
    })
    .unwrap();

    node.kill9().unwrap();
    let segs = segment_files(&node.data_dir(), topic);
    assert!(segs.len() >= 5, "{segs:?}");
    // Three sealed, tiered segments: one cut in the middle, one with zeroed indexes, one
    // deleted. Their bytes as written, to compare the healed files with.
    let (cut, zeroed, deleted) = (&segs[1].1, &segs[2].1, &segs[3].1);
    let original: Vec<Vec<u8>> = [cut, zeroed, deleted]
        .iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    let cut_len = inside_middle_batch(&original[0]);
    std::fs::OpenOptions::new()
        .write(true)
        .open(cut)
        .unwrap()
        .set_len(cut_len)
        .unwrap();
    zero(&side_file(zeroed, "index"));
    zero(&side_file(zeroed, "timeindex"));
    std::fs::remove_file(deleted).unwrap();
    eprintln!(
        "cut {} to {cut_len} bytes, zeroed the indexes of {}, deleted {}",
        cut.display(),
        zeroed.display(),
        deleted.display()
    );
    node.start_again().unwrap();
    let bootstrap = node.bootstrap();

    // Every acknowledged record reads back right: the damaged ranges from object storage
    // (or from the healed local copy, whichever comes first).
    check_range(&bootstrap, topic, &all, &acks, 0, end);
    // Both ranges (the cut tail and the deleted segment) are healed from object storage...
    wait_gauge(&node, "tierlog_partition_damaged_ranges", topic, 0.0);
    let healed = node
        .metrics()
        .unwrap()
        .counter("tierlog_damaged_ranges_healed_total");
    assert!(healed >= 2.0, "healed {healed} ranges");
    // ... byte for byte, the deleted file included; the zeroed indexes were rebuilt.
    for (path, bytes) in [cut, zeroed, deleted].iter().zip(&original) {
        assert!(
            std::fs::read(path).unwrap() == *bytes,
            "{} healed to what was written",
            path.display()
        );
    }
    for ext in ["index", "timeindex"] {
        let rebuilt = std::fs::read(side_file(zeroed, ext)).unwrap();
        assert!(
            rebuilt.iter().any(|b| *b != 0),
            "{ext} of {} rebuilt",
            zeroed.display()
        );
    }
    assert_eq!(damage_list(&node), "no damaged ranges\n");

    // Reads starting inside the healed segments find their batches through the rebuilt
    // indexes.
    for offset in [
        segs[1].0 + 7,
        segs[2].0 + 5,
        segs[3].0,
        segs[3].0 + 1,
        segs[4].0 - 1,
    ] {
        check_range(
            &bootstrap,
            topic,
            &all,
            &acks,
            offset,
            (offset + 200).min(end),
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_untiered_segment_is_refused_never_skipped() {
    let mut node =
        TestNode::start(NodeOptions::default().min_segment_bytes(SEGMENT_BYTES.parse().unwrap()))
            .unwrap();
    let topic = "damage-files-local";
    let (all, acks, end) = fill(&node, topic, false, 8_000).await;

    node.kill9().unwrap();
    let segs = segment_files(&node.data_dir(), topic);
    assert!(segs.len() >= 4, "{segs:?}");
    let i = segs.len() / 2;
    let (first, last) = (segs[i].0, segs[i + 1].0 - 1);
    std::fs::remove_file(&segs[i].1).unwrap();
    eprintln!("deleted {} (offsets {first}..={last})", segs[i].1.display());
    node.start_again().unwrap();
    let bootstrap = node.bootstrap();

    let mut conn = Conn::connect(node.kafka_addr()).unwrap();
    assert_eq!(
        conn.log_end_offset(topic, 0).unwrap(),
        end,
        "nothing after the missing segment is lost"
    );
    for offset in [first, first + 1, last] {
        let data = conn.fetch_limited(topic, 0, offset, 0, 1, 1).unwrap();
        assert_eq!(data.error_code, KAFKA_STORAGE_ERROR, "fetch at {offset}");
        assert!(
            data.records
                .as_ref()
                .is_none_or(|r| decode_records(r).unwrap().is_empty())
        );
    }
    // A fetch right before the gap stops before it.
    let before = conn
        .fetch_limited(topic, 0, first - 1, 0, 1, 1 << 20)
        .unwrap();
    assert_eq!(before.error_code, 0);
    let served = decode_records(before.records.as_ref().unwrap()).unwrap();
    assert!(!served.is_empty());
    assert!(
        served.iter().all(|r| r.offset < first),
        "served {:?} from before the gap",
        served.iter().map(|r| r.offset).collect::<Vec<_>>()
    );
    check_range(&bootstrap, topic, &all, &acks, 0, first);
    check_range(&bootstrap, topic, &all, &acks, last + 1, end);
    let m = node.metrics().unwrap();
    assert_eq!(
        m.partition("tierlog_partition_damaged_ranges", topic, 0),
        Some(1.0)
    );
    assert_eq!(
        m.partition("tierlog_partition_damaged_ranges_untiered", topic, 0),
        Some(1.0)
    );

    // The operator sees why, and accepts the loss by moving the log start past it.
    let listed = damage_list(&node);
    let line = listed
        .lines()
        .find(|l| l.starts_with(topic))
        .unwrap_or_else(|| panic!("{topic} not listed:\n{listed}"));
    let cells: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(
        cells[2..4],
        [first.to_string(), last.to_string()],
        "{listed}"
    );
    assert!(line.contains("segment file missing"), "{listed}");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Offset(last + 1))
        .unwrap();
    let result = admin(&bootstrap)
        .unwrap()
        .delete_records(&tpl, &admin_options())
        .await
        .unwrap();
    result.find_partition(topic, 0).unwrap().error().unwrap();
    assert_eq!(damage_list(&node), "no damaged ranges\n");
    assert_eq!(
        node.metrics()
            .unwrap()
            .partition("tierlog_partition_damaged_ranges", topic, 0),
        Some(0.0)
    );
}
