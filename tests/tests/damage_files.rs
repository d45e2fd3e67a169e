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

use tierlog_tests::damage::{
    SEGMENT_BYTES, accept_loss, batch_holding, check_follower_heals, check_range, check_refused,
    damage_list, end_of, fill, listed_range, segment_files, wait_gauge, wait_tiered,
};
use tierlog_tests::wire::{Conn, KAFKA_STORAGE_ERROR, decode_records};
use tierlog_tests::{MotoServer, NodeOptions, TestNode};

const BUCKET: &str = "tierlog-damage-files";

/// The side file `ext` (`index`, `timeindex`) of the segment whose log file is `log`.
fn side_file(log: &Path, ext: &str) -> PathBuf {
    log.with_extension(ext)
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
    let (all, acks) = fill(&node, topic, true, 14_000).await.unwrap();
    let end = end_of(&acks);
    wait_tiered(&node, topic, 4.0).unwrap();

    node.kill9().unwrap();
    let segs = segment_files(&node.data_dir(), topic).unwrap();
    assert!(segs.len() >= 5, "{segs:?}");
    // Three sealed, tiered segments: one cut in the middle of a batch, one with zeroed
    // indexes, one deleted. Their bytes as written, to compare the healed files with.
    let (cut, zeroed, deleted) = (&segs[1].1, &segs[2].1, &segs[3].1);
    let original: Vec<Vec<u8>> = [cut, zeroed, deleted]
        .iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    let cut_len = batch_holding(&original[0], original[0].len() / 2)
        .unwrap()
        .start as u64
        + 30;
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
    check_range(&bootstrap, topic, &all, &acks, 0, end).unwrap();
    // Both ranges (the cut tail and the deleted segment) are healed from object storage...
    wait_gauge(&node, "tierlog_partition_damaged_ranges", topic, 0.0).unwrap();
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
    assert_eq!(damage_list(&node).unwrap(), "no damaged ranges\n");
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
        )
        .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_untiered_segment_is_refused_never_skipped() {
    let mut node =
        TestNode::start(NodeOptions::default().min_segment_bytes(SEGMENT_BYTES.parse().unwrap()))
            .unwrap();
    let topic = "damage-files-local";
    let (all, acks) = fill(&node, topic, false, 8_000).await.unwrap();
    let end = end_of(&acks);

    node.kill9().unwrap();
    let segs = segment_files(&node.data_dir(), topic).unwrap();
    assert!(segs.len() >= 4, "{segs:?}");
    let i = segs.len() / 2;
    let (first, last) = (segs[i].0, segs[i + 1].0 - 1);
    std::fs::remove_file(&segs[i].1).unwrap();
    eprintln!("deleted {} (offsets {first}..={last})", segs[i].1.display());
    node.start_again().unwrap();
    let bootstrap = node.bootstrap();

    check_refused(&node, topic, &all, &acks, first, last).unwrap();
    // Not just at its ends: anywhere in it; and a fetch right before it stops before it.
    let mut conn = Conn::connect(node.kafka_addr()).unwrap();
    let data = conn.fetch_limited(topic, 0, first + 1, 0, 1, 1).unwrap();
    assert_eq!(data.error_code, KAFKA_STORAGE_ERROR);
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

    // The operator sees why, and accepts the loss by moving the log start past it.
    let line = listed_range(&node, topic, first, last).unwrap();
    assert!(
        line.contains("replicas only  segment file missing"),
        "{line}"
    );
    accept_loss(&node, topic, last + 1).await.unwrap();
    check_range(&bootstrap, topic, &all, &acks, last + 1, end).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_heals_a_deleted_segment_file_from_its_leader() {
    check_follower_heals("damage_files_follower", "damage-files-replicated", |segs| {
        let (base, path) = &segs[segs.len() / 2];
        std::fs::remove_file(path)?;
        Ok(format!("deleted the segment file at {base}"))
    })
    .await
    .unwrap();
}
