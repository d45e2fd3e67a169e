//! Damage in the middle of a node's log, end to end: a real `tierlog` process tiering to a
//! real S3-compatible server (`moto_server`), bytes flipped in its segment files while it is
//! down after a `kill -9`, and librdkafka consumers with their default `check.crcs=false` (so
//! a bad batch that reached them would be handed to the application as data).
//!
//! What must hold: no acknowledged record after the damage is lost; a damaged range that
//! object storage holds is served from there and healed; one that exists nowhere else is
//! refused with KAFKA_STORAGE_ERROR (never served) while every offset around it is served;
//! the scrubber finds damage no reader touched.
//!
//! Outside CI a missing moto skips these tests loudly; with `CI` set it fails them.
#![allow(clippy::unwrap_used)]

use std::os::unix::fs::FileExt;
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

const BUCKET: &str = "tierlog-damage";
const SEGMENT_BYTES: &str = "65536";
/// Bound on every wait (uploads every 200 ms; slack for a debug broker on a busy machine).
const SETTLE: Duration = Duration::from_secs(120);
const POLL: Duration = Duration::from_millis(100);

fn moto(test: &str) -> Option<MotoServer> {
    let moto = MotoServer::start_or_skip(test).unwrap()?;
    moto.create_bucket(BUCKET).unwrap();
    Some(moto)
}

fn node_options(moto: &MotoServer, prefix: &str, scrub_interval: &str) -> NodeOptions {
    NodeOptions::default()
        .s3(moto, BUCKET, prefix)
        .min_segment_bytes(SEGMENT_BYTES.parse().unwrap())
        .upload_interval("200ms")
        .args(["--scrub-interval", scrub_interval])
}

/// The local `.log` files of `topic`/0, sorted by base offset.
fn segment_files(data_dir: &Path, topic: &str) -> Vec<(i64, PathBuf)> {
    let logs = data_dir.join("logs");
    let dir = std::fs::read_dir(&logs)
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
        .join("0");
    let mut out: Vec<(i64, PathBuf)> = std::fs::read_dir(&dir)
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

/// Flips one byte inside the records of the batch in the middle of the segment file `path`;
/// returns the batch's first and last offsets.
fn flip_middle_batch(path: &Path) -> (i64, i64) {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let bytes = std::fs::read(path).unwrap();
    let mid = bytes.len() / 2;
    let mut pos = 0usize;
    loop {
        let base = i64::from_be_bytes(bytes[pos..pos + 8].try_into().unwrap());
        let len = usize::try_from(i32::from_be_bytes(
            bytes[pos + 8..pos + 12].try_into().unwrap(),
        ))
        .unwrap();
        let delta = i32::from_be_bytes(bytes[pos + 23..pos + 27].try_into().unwrap());
        let end = pos + 12 + len;
        if mid < end {
            let at = (pos + 61 + (end - pos - 61) / 2) as u64;
            f.write_all_at(&[bytes[at as usize] ^ 0x10], at).unwrap();
            return (base, base + i64::from(delta));
        }
        pos = end;
    }
}

/// Consumes `[from, to)` of `topic`/0 with librdkafka (default `check.crcs=false`).
fn consume(bootstrap: &str, topic: &str, from: i64, to: i64) -> Vec<OwnedMessage> {
    let n = usize::try_from(to - from).unwrap();
    let consumer = assigned_consumer(bootstrap, topic, [0], Offset::Offset(from)).unwrap();
    consume_exactly(&consumer, n, consume_timeout(n)).unwrap()
}

/// The acknowledged records of `[from, to)` and their acks.
fn acked(
    all: &[RecordData],
    acks: &[(i32, i64)],
    from: i64,
    to: i64,
) -> (Vec<RecordData>, Vec<(i32, i64)>) {
    all.iter()
        .zip(acks)
        .filter(|(_, (_, o))| (from..to).contains(o))
        .map(|(r, a)| (r.clone(), *a))
        .unzip()
}

/// Produces `n` records to a new topic with small batches; returns them and their acks.
async fn fill(
    node: &TestNode,
    topic: &str,
    tiered: bool,
    n: usize,
) -> (Vec<RecordData>, Vec<(i32, i64)>) {
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
    (all, acks)
}

/// Waits until every sealed segment of `topic`/0 is tiered (and at least `min` are).
fn wait_tiered(node: &TestNode, topic: &str, min: f64) {
    wait_for(&format!("{topic} to be tiered"), SETTLE, POLL, || {
        let m = node.metrics()?;
        let lag = m.partition("tierlog_partition_upload_lag_bytes", topic, 0);
        let tiered = m.partition("tierlog_partition_remote_segments", topic, 0);
        Ok(if lag == Some(0.0) && tiered.is_some_and(|t| t >= min) {
            Poll::Ready(())
        } else {
            Poll::Pending(format!("upload lag {lag:?}, tiered segments {tiered:?}"))
        })
    })
    .unwrap();
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damage_in_sealed_segments_is_healed_from_object_storage_or_refused_never_served() {
    let Some(moto) = moto("damage_sealed") else {
        return;
    };
    let mut node = TestNode::start(node_options(&moto, "sealed", "24h")).unwrap();
    let (tiered, local) = ("damage-tiered", "damage-local");
    let (all_t, acks_t) = fill(&node, tiered, true, 8_000).await;
    let (all_l, acks_l) = fill(&node, local, false, 8_000).await;
    wait_tiered(&node, tiered, 3.0);

    node.kill9().unwrap();
    let segs_t = segment_files(&node.data_dir(), tiered);
    let segs_l = segment_files(&node.data_dir(), local);
    assert!(
        segs_t.len() >= 4 && segs_l.len() >= 4,
        "{segs_t:?} {segs_l:?}"
    );
    let (bad_t, bad_t_last) = flip_middle_batch(&segs_t[segs_t.len() / 2].1);
    let (bad_l, bad_l_last) = flip_middle_batch(&segs_l[segs_l.len() / 2].1);
    eprintln!("flipped batches {tiered} {bad_t}..={bad_t_last}, {local} {bad_l}..={bad_l_last}");
    node.start_again().unwrap();
    let bootstrap = node.bootstrap();

    // Tiered: every acknowledged record reads back right, the damaged range from object
    // storage, and the local copy is healed.
    let end_t = acks_t.iter().map(|(_, o)| o + 1).max().unwrap();
    let (want, want_acks) = acked(&all_t, &acks_t, 0, end_t);
    check_consumed(&consume(&bootstrap, tiered, 0, end_t), &want, &want_acks).unwrap();
    wait_gauge(&node, "tierlog_partition_damaged_ranges", tiered, 0.0);
    assert!(
        node.metrics()
            .unwrap()
            .counter("tierlog_damaged_ranges_healed_total")
            >= 1.0
    );

    // Not tiered: the damaged batch is refused, never served; everything around it is.
    let end_l = acks_l.iter().map(|(_, o)| o + 1).max().unwrap();
    let mut conn = Conn::connect(node.kafka_addr()).unwrap();
    assert_eq!(
        conn.log_end_offset(local, 0).unwrap(),
        end_l,
        "nothing acknowledged is lost"
    );
    for offset in [bad_l, bad_l_last] {
        let data = conn.fetch_limited(local, 0, offset, 0, 1, 1).unwrap();
        assert_eq!(data.error_code, KAFKA_STORAGE_ERROR, "fetch at {offset}");
        assert!(
            data.records
                .as_ref()
                .is_none_or(|r| decode_records(r).unwrap().is_empty())
        );
    }
    let (want, want_acks) = acked(&all_l, &acks_l, 0, bad_l);
    check_consumed(&consume(&bootstrap, local, 0, bad_l), &want, &want_acks).unwrap();
    let (want, want_acks) = acked(&all_l, &acks_l, bad_l_last + 1, end_l);
    check_consumed(
        &consume(&bootstrap, local, bad_l_last + 1, end_l),
        &want,
        &want_acks,
    )
    .unwrap();
    let m = node.metrics().unwrap();
    assert_eq!(
        m.partition("tierlog_partition_damaged_ranges", local, 0),
        Some(1.0)
    );
    assert_eq!(
        m.partition("tierlog_partition_damaged_ranges_untiered", local, 0),
        Some(1.0)
    );

    // The operator sees the range plainly, and accepts the loss by moving the log start.
    let listed = damage_list(&node);
    let line = listed
        .lines()
        .find(|l| l.starts_with(local))
        .unwrap_or_else(|| panic!("{local} not listed:\n{listed}"));
    let cells: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(
        cells[2..4],
        [bad_l.to_string(), bad_l_last.to_string()],
        "{listed}"
    );
    assert!(line.contains("replicas only"), "{listed}");
    assert!(
        !listed.contains(tiered),
        "healed ranges are not listed:\n{listed}"
    );
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(local, 0, Offset::Offset(bad_l_last + 1))
        .unwrap();
    let result = admin(&bootstrap)
        .unwrap()
        .delete_records(&tpl, &admin_options())
        .await
        .unwrap();
    result.find_partition(local, 0).unwrap().error().unwrap();
    assert_eq!(damage_list(&node), "no damaged ranges\n");
    assert_eq!(
        node.metrics()
            .unwrap()
            .partition("tierlog_partition_damaged_ranges", local, 0),
        Some(0.0)
    );
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scrubber_finds_and_heals_a_flipped_byte_no_reader_touched() {
    let Some(moto) = moto("damage_scrub") else {
        return;
    };
    let mut node = TestNode::start(node_options(&moto, "scrub", "2s")).unwrap();
    let topic = "damage-scrub";
    let (all, acks) = fill(&node, topic, true, 6_000).await;
    wait_tiered(&node, topic, 3.0);
    // Cleanly stopped, so the next open trusts the segment files and looks at none of them.
    assert!(node.terminate().unwrap().success());
    let segs = segment_files(&node.data_dir(), topic);
    let (bad, bad_last) = flip_middle_batch(&segs[1].1);
    eprintln!("flipped batch {bad}..={bad_last}");
    node.start_again().unwrap();

    wait_for(
        "the scrubber to find and heal the damage",
        SETTLE,
        POLL,
        || {
            let m = node.metrics()?;
            let found = m.counter("tierlog_damaged_ranges_found_total");
            let healed = m.counter("tierlog_damaged_ranges_healed_total");
            let scrubbed = m.counter("tierlog_scrubbed_bytes_total");
            Ok(if found >= 1.0 && healed >= 1.0 {
                Poll::Ready(())
            } else {
                Poll::Pending(format!("found={found} healed={healed} scrubbed={scrubbed}"))
            })
        },
    )
    .unwrap();
    assert_eq!(
        node.metrics()
            .unwrap()
            .partition("tierlog_partition_damaged_ranges", topic, 0),
        Some(0.0)
    );
    // The healed local copy is what was produced (raw fetch of the local bytes).
    let end = acks.iter().map(|(_, o)| o + 1).max().unwrap();
    let (want, want_acks) = acked(&all, &acks, 0, end);
    check_consumed(
        &consume(&node.bootstrap(), topic, 0, end),
        &want,
        &want_acks,
    )
    .unwrap();
}

/// The bytes of the batches of the segment file `path` whose base offsets lie in
/// `[first, last]`, concatenated.
fn batches_in(path: &Path, first: i64, last: i64) -> Vec<u8> {
    let bytes = std::fs::read(path).unwrap();
    let mut out = Vec::new();
    let mut pos = 0usize;
    while pos + 12 <= bytes.len() {
        let base = i64::from_be_bytes(bytes[pos..pos + 8].try_into().unwrap());
        let len = usize::try_from(i32::from_be_bytes(
            bytes[pos + 8..pos + 12].try_into().unwrap(),
        ))
        .unwrap();
        let end = (pos + 12 + len).min(bytes.len());
        if (first..=last).contains(&base) {
            out.extend_from_slice(&bytes[pos..end]);
        }
        pos = end;
    }
    out
}

/// The segment file of `topic`/0 in `data_dir` that holds `offset`.
fn segment_holding(data_dir: &Path, topic: &str, offset: i64) -> PathBuf {
    segment_files(data_dir, topic)
        .into_iter()
        .rev()
        .find(|(base, _)| *base <= offset)
        .unwrap()
        .1
}

/// Three nodes, RF 3, no tiered copy: a byte flipped under the running leader and another
/// under a running follower (different segments). The scrubbers find both; the leader, whose
/// damaged range exists nowhere it could repair it from as leader, hands leadership to a
/// clean in-sync replica and repairs the range from it as a follower; the follower repairs
/// from its leader. Afterwards both damaged files hold the same batches as the clean
/// replica's, and every acknowledged record reads back right (librdkafka, `check.crcs=false`),
/// also from the once-damaged leader alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damage_on_the_leader_and_a_follower_is_healed_from_clean_replicas() {
    use tierlog_tests::cluster::{ClusterOptions, TestCluster};
    let opts = ClusterOptions {
        node: NodeOptions::default()
            .min_segment_bytes(SEGMENT_BYTES.parse().unwrap())
            .args(["--scrub-interval", "2s"]),
        ..ClusterOptions::default()
    };
    let Some(mut c) = TestCluster::start_or_skip("damage_replicated", opts).unwrap() else {
        return;
    };
    c.wait_brokers(3).unwrap();
    let topic = "damage-replicated";
    c.create_topic(
        topic,
        1,
        3,
        &[
            ("segment.bytes", SEGMENT_BYTES),
            ("remote.storage.enable", "false"),
        ],
    )
    .await
    .unwrap();
    let all = records(8_000, topic);
    let p = producer(
        &c.bootstrap(),
        &[("acks", "all"), ("batch.size", "16384"), ("linger.ms", "5")],
    )
    .unwrap();
    let acks = produce_all(&p, topic, &all).await.unwrap();
    let end = acks.iter().map(|(_, o)| o + 1).max().unwrap();
    c.wait_isr_full(topic, 0).unwrap();
    let leader = c.wait_leader(topic, 0).unwrap();
    let others: Vec<u32> = c.ids().into_iter().filter(|id| *id != leader).collect();
    let (follower, clean) = (others[0], others[1]);

    // Flipped under the running nodes (their reads go through the page cache, so they see
    // it): a segment in the middle on the leader, the one before it on the follower.
    let segs = segment_files(&c.node(leader).data_dir(), topic);
    assert!(segs.len() >= 4, "{segs:?}");
    let on_leader = flip_middle_batch(&segs[segs.len() / 2].1);
    let segs = segment_files(&c.node(follower).data_dir(), topic);
    let on_follower = flip_middle_batch(&segs[segs.len() / 2 - 1].1);
    eprintln!(
        "flipped batches {on_leader:?} on leader {leader}, {on_follower:?} on follower {follower}"
    );

    // No copy on the leader can repair its range: leadership moves to a clean replica.
    let new_leader = c.wait_leader_not(topic, 0, leader).unwrap();
    eprintln!("leadership moved from {leader} to {new_leader}");
    for (id, flipped) in [(leader, on_leader), (follower, on_follower)] {
        wait_for(
            "the damaged replica to find and heal its range",
            SETTLE,
            POLL,
            || {
                let m = c.node(id).metrics()?;
                let healed = m.counter("tierlog_damaged_ranges_healed_total");
                let damaged = m.partition("tierlog_partition_damaged_ranges", topic, 0);
                Ok(if healed >= 1.0 && damaged == Some(0.0) {
                    Poll::Ready(())
                } else {
                    Poll::Pending(format!("node {id}: healed={healed} damaged={damaged:?}"))
                })
            },
        )
        .unwrap();
        // The repaired batches are the clean replica's, byte for byte.
        let (first, last) = flipped;
        let healed = batches_in(
            &segment_holding(&c.node(id).data_dir(), topic, first),
            first,
            last,
        );
        let good = batches_in(
            &segment_holding(&c.node(clean).data_dir(), topic, first),
            first,
            last,
        );
        assert!(!good.is_empty());
        assert!(
            healed == good,
            "node {id}: batches {first}..={last} differ from node {clean}'s"
        );
    }
    c.wait_isr_full(topic, 0).unwrap();
    let (want, want_acks) = acked(&all, &acks, 0, end);
    check_consumed(&consume(&c.bootstrap(), topic, 0, end), &want, &want_acks).unwrap();

    // The once-damaged leader alone serves every acknowledged record.
    for id in others {
        c.kill9(id).unwrap();
    }
    c.wait_sole_leader(topic, 0, leader).unwrap();
    check_consumed(
        &consume(&c.node(leader).bootstrap(), topic, 0, end),
        &want,
        &want_acks,
    )
    .unwrap();
}
