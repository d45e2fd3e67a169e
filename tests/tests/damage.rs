//! Damage in the middle of a node's log, end to end: a real `tierlog` process tiering to a
//! real S3-compatible server (`moto_server`), bytes flipped in its segment files while it is
//! down after a `kill -9`, and librdkafka consumers with their default `check.crcs=false` (so
//! a bad batch that reached them would be handed to the application as data).
//!
//! What must hold: no acknowledged record after the damage is lost; a damaged range that
//! object storage holds is served from there and healed; one that exists nowhere else is
//! refused with KAFKA_STORAGE_ERROR (never served) while every offset around it is served;
//! the scrubber finds damage no reader touched; on three nodes, a leader whose damaged range
//! has no tiered copy hands leadership to a clean replica and both it and a damaged follower
//! repair from clean replicas, byte for byte.
//!
//! Outside CI a missing moto skips these tests loudly; with `CI` set it fails them.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use tierlog_tests::clients::producer;
use tierlog_tests::damage::{
    POLL, SEGMENT_BYTES, SETTLE, accept_loss, check_range, check_refused, damage_list, end_of,
    fill, flip_middle_batch, listed_range, segment_files, wait_gauge, wait_tiered,
};
use tierlog_tests::wait::{Poll, wait_for};
use tierlog_tests::workload::{produce_all, records};
use tierlog_tests::{MotoServer, NodeOptions, TestNode};

const BUCKET: &str = "tierlog-damage";

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damage_in_sealed_segments_is_healed_from_object_storage_or_refused_never_served() {
    let Some(moto) = moto("damage_sealed") else {
        return;
    };
    let mut node = TestNode::start(node_options(&moto, "sealed", "24h")).unwrap();
    let (tiered, local) = ("damage-tiered", "damage-local");
    let (all_t, acks_t) = fill(&node, tiered, true, 8_000).await.unwrap();
    let (all_l, acks_l) = fill(&node, local, false, 8_000).await.unwrap();
    wait_tiered(&node, tiered, 3.0).unwrap();

    node.kill9().unwrap();
    let segs_t = segment_files(&node.data_dir(), tiered).unwrap();
    let segs_l = segment_files(&node.data_dir(), local).unwrap();
    assert!(
        segs_t.len() >= 4 && segs_l.len() >= 4,
        "{segs_t:?} {segs_l:?}"
    );
    let (bad_t, bad_t_last) = flip_middle_batch(&segs_t[segs_t.len() / 2].1).unwrap();
    let (bad_l, bad_l_last) = flip_middle_batch(&segs_l[segs_l.len() / 2].1).unwrap();
    eprintln!("flipped batches {tiered} {bad_t}..={bad_t_last}, {local} {bad_l}..={bad_l_last}");
    node.start_again().unwrap();
    let bootstrap = node.bootstrap();

    // Tiered: every acknowledged record reads back right, the damaged range from object
    // storage, and the local copy is healed.
    let end_t = end_of(&acks_t);
    check_range(&bootstrap, tiered, &all_t, &acks_t, 0, end_t).unwrap();
    wait_gauge(&node, "tierlog_partition_damaged_ranges", tiered, 0.0).unwrap();
    assert!(
        node.metrics()
            .unwrap()
            .counter("tierlog_damaged_ranges_healed_total")
            >= 1.0
    );

    // Not tiered: the damaged batch is refused, never served; everything around it is.
    check_refused(&node, local, &all_l, &acks_l, bad_l, bad_l_last).unwrap();

    // The operator sees the range plainly, and accepts the loss by moving the log start.
    let line = listed_range(&node, local, bad_l, bad_l_last).unwrap();
    assert!(line.contains("replicas only"), "{line}");
    let listed = damage_list(&node).unwrap();
    assert!(
        !listed.contains(tiered),
        "healed ranges are not listed:\n{listed}"
    );
    accept_loss(&node, local, bad_l_last + 1).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scrubber_finds_and_heals_a_flipped_byte_no_reader_touched() {
    let Some(moto) = moto("damage_scrub") else {
        return;
    };
    let mut node = TestNode::start(node_options(&moto, "scrub", "2s")).unwrap();
    let topic = "damage-scrub";
    let (all, acks) = fill(&node, topic, true, 6_000).await.unwrap();
    wait_tiered(&node, topic, 3.0).unwrap();
    // Cleanly stopped, so the next open trusts the segment files and looks at none of them.
    assert!(node.terminate().unwrap().success());
    let segs = segment_files(&node.data_dir(), topic).unwrap();
    let (bad, bad_last) = flip_middle_batch(&segs[1].1).unwrap();
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
    let end = end_of(&acks);
    check_range(&node.bootstrap(), topic, &all, &acks, 0, end).unwrap();
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
        .unwrap()
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
    let end = end_of(&acks);
    c.wait_isr_full(topic, 0).unwrap();
    let leader = c.wait_leader(topic, 0).unwrap();
    let others: Vec<u32> = c.ids().into_iter().filter(|id| *id != leader).collect();
    let (follower, clean) = (others[0], others[1]);

    // Flipped under the running nodes (their reads go through the page cache, so they see
    // it): a segment in the middle on the leader, the one before it on the follower.
    let segs = segment_files(&c.node(leader).data_dir(), topic).unwrap();
    assert!(segs.len() >= 4, "{segs:?}");
    let on_leader = flip_middle_batch(&segs[segs.len() / 2].1).unwrap();
    let segs = segment_files(&c.node(follower).data_dir(), topic).unwrap();
    let on_follower = flip_middle_batch(&segs[segs.len() / 2 - 1].1).unwrap();
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
    check_range(&c.bootstrap(), topic, &all, &acks, 0, end).unwrap();

    // The once-damaged leader alone serves every acknowledged record.
    for id in others {
        c.kill9(id).unwrap();
    }
    c.wait_sole_leader(topic, 0, leader).unwrap();
    check_range(&c.node(leader).bootstrap(), topic, &all, &acks, 0, end).unwrap();
}
