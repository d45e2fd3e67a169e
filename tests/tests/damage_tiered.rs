//! Damage in the tiered copy, end to end: a real `tierlog` process tiering to a real
//! S3-compatible server (`moto_server`), one byte of a tiered data object flipped in the bucket
//! behind the node's back (an S3 PUT over it), and the tiered scrub (`--scrub-tiered-interval`)
//! that must find it without any reader's help.
//!
//! What must hold: a damaged tiered object whose range the leader's hot tier still holds is
//! uploaded again (new object, same bytes as before the damage) and consumers reading from
//! object storage afterwards — librdkafka with its default `check.crcs=false`, so a bad batch
//! would reach the application as data — get every acknowledged record; one whose range the
//! hot tier no longer holds is reported unrecoverable (the gauge, `tierlog damage list`) and its
//! bad bytes are refused, never served.
//!
//! Outside CI a missing moto skips these tests loudly; with `CI` set it fails them.
#![allow(clippy::unwrap_used)]

use rdkafka::admin::{AlterConfig, ResourceSpecifier};
use tierlog_tests::clients::{RecordData, admin, admin_options, create_topic, producer};
use tierlog_tests::damage::{POLL, SEGMENT_BYTES, SETTLE, check_range, damage_list, end_of};
use tierlog_tests::s3::ObjectInfo;
use tierlog_tests::wait::{Poll, wait_for};
use tierlog_tests::wire::{Conn, KAFKA_STORAGE_ERROR, decode_records};
use tierlog_tests::workload::{produce_all, records};
use tierlog_tests::{MotoServer, NodeOptions, TestNode};

const BUCKET: &str = "tierlog-damage-tiered";

fn moto(test: &str) -> Option<MotoServer> {
    let moto = MotoServer::start_or_skip(test).unwrap()?;
    moto.create_bucket(BUCKET).unwrap();
    Some(moto)
}

/// A node tiering to `moto` under `prefix`, scrubbing its tiered objects every 2 s (the local
/// scrubber rarely: it is not what is tested here).
fn start_node(moto: &MotoServer, prefix: &str) -> TestNode {
    TestNode::start(
        NodeOptions::default()
            .s3(moto, BUCKET, prefix)
            .min_segment_bytes(SEGMENT_BYTES.parse().unwrap())
            .upload_interval("200ms")
            .retention_check_interval("200ms")
            .args(["--scrub-interval", "24h", "--scrub-tiered-interval", "2s"]),
    )
    .unwrap()
}

/// Topic configs: small segments, tiered, `local.retention.ms` as given (`None`: default).
fn configs(local_retention_ms: Option<&'static str>) -> Vec<(&'static str, &'static str)> {
    let mut c = vec![
        ("segment.bytes", SEGMENT_BYTES),
        ("remote.storage.enable", "true"),
    ];
    c.extend(local_retention_ms.map(|ms| ("local.retention.ms", ms)));
    c
}

/// Produces `n` records with small batches to a new topic; returns them and their acks.
async fn fill(
    node: &TestNode,
    topic: &str,
    configs: &[(&str, &str)],
    n: usize,
) -> (Vec<RecordData>, Vec<(i32, i64)>) {
    create_topic(&node.bootstrap(), topic, 1, configs)
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

/// Waits until every sealed segment of `topic`/0 is tiered (and at least `min` are), and,
/// when `local_at_most` is given, the hot tier holds at most that many segments.
fn wait_tiered(node: &TestNode, topic: &str, min: f64, local_at_most: Option<f64>) {
    wait_for(&format!("{topic} to be tiered"), SETTLE, POLL, || {
        let m = node.metrics()?;
        let lag = m.partition("tierlog_partition_upload_lag_bytes", topic, 0);
        let tiered = m.partition("tierlog_partition_remote_segments", topic, 0);
        let local = m.partition("tierlog_partition_local_segments", topic, 0);
        let local_ok = local_at_most.is_none_or(|max| local.is_some_and(|l| l <= max));
        Ok(
            if lag == Some(0.0) && tiered.is_some_and(|t| t >= min) && local_ok {
                Poll::Ready(())
            } else {
                Poll::Pending(format!(
                    "upload lag {lag:?}, tiered segments {tiered:?}, local segments {local:?}"
                ))
            },
        )
    })
    .unwrap();
}

/// The tiered data objects (`.log`) of `topic`/0 under `prefix`, in offset order.
fn data_objects(moto: &MotoServer, prefix: &str, topic: &str) -> Vec<ObjectInfo> {
    moto.list_objects(BUCKET, &format!("{prefix}/topics/{topic}-"))
        .unwrap()
        .into_iter()
        .filter(|o| o.key.ends_with(".log") && o.key.contains("/0/"))
        .collect()
}

/// The base offset a data object's key names.
fn base_of(key: &str) -> i64 {
    let name = key.rsplit('/').next().unwrap();
    name.split('-').next().unwrap().parse().unwrap()
}

/// Flips one byte in the middle of object `key` with an S3 PUT over it; returns the bytes it
/// held before.
fn flip_object(moto: &MotoServer, key: &str) -> Vec<u8> {
    let before = moto.get_object(BUCKET, key).unwrap();
    let mut bad = before.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0x10;
    moto.put_object(BUCKET, key, &bad).unwrap();
    before
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flipped_byte_in_a_tiered_object_is_found_and_uploaded_again_from_the_hot_tier() {
    let Some(moto) = moto("damage_tiered_repair") else {
        return;
    };
    let prefix = "repair";
    let node = start_node(&moto, prefix);
    let topic = "tiered-repair";
    let (all, acks) = fill(&node, topic, &configs(None), 6_000).await;
    wait_tiered(&node, topic, 3.0, None);
    let objects = data_objects(&moto, prefix, topic);
    assert!(objects.len() >= 3, "{objects:?}");
    let bad = &objects[1];
    let base = base_of(&bad.key);
    let original = flip_object(&moto, &bad.key);
    eprintln!("flipped a byte of {} ({} bytes)", bad.key, bad.size);

    wait_for(
        "the tiered scrub to find and repair the damage",
        SETTLE,
        POLL,
        || {
            let m = node.metrics()?;
            let found = m.counter("tierlog_tiered_damage_found_total");
            let repaired = m.counter("tierlog_tiered_repaired_total");
            let scrubbed = m.counter("tierlog_tiered_scrubbed_bytes_total");
            Ok(if found >= 1.0 && repaired >= 1.0 {
                Poll::Ready(())
            } else {
                Poll::Pending(format!(
                    "found={found} repaired={repaired} scrubbed={scrubbed}"
                ))
            })
        },
    )
    .unwrap();
    let m = node.metrics().unwrap();
    assert!(m.counter("tierlog_tiered_scrubbed_bytes_total") >= bad.size as f64);
    assert_eq!(
        m.partition("tierlog_tiered_ranges_unrecoverable", topic, 0),
        Some(0.0)
    );
    // A new data object for the same base offset holds the bytes as uploaded before the
    // damage; the damaged one is retired (kept for the orphan grace), not yet deleted.
    let now = data_objects(&moto, prefix, topic);
    let replacement = now
        .iter()
        .find(|o| base_of(&o.key) == base && o.key != bad.key)
        .unwrap_or_else(|| panic!("no new object at {base}: {now:?}"));
    assert_eq!(moto.get_object(BUCKET, &replacement.key).unwrap(), original);
    assert!(moto.object_exists(BUCKET, &bad.key).unwrap());
    assert_eq!(damage_list(&node).unwrap(), "no damaged ranges\n");

    // Now drop the hot tier's copy and read everything back from object storage.
    let mut local_now = AlterConfig::new(ResourceSpecifier::Topic(topic));
    for (k, v) in configs(Some("0")) {
        local_now = local_now.set(k, v);
    }
    let altered = admin(&node.bootstrap())
        .unwrap()
        .alter_configs([&local_now], &admin_options())
        .await
        .unwrap();
    assert!(altered.iter().all(Result::is_ok), "{altered:?}");
    wait_tiered(&node, topic, 3.0, Some(1.0));
    let end = acks.iter().map(|(_, o)| o + 1).max().unwrap();
    check_range(&node.bootstrap(), topic, &all, &acks, 0, end).unwrap();
    let found = node
        .metrics()
        .unwrap()
        .counter("tierlog_tiered_damage_found_total");
    assert_eq!(found, 1.0, "later passes found everything intact");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damage_with_no_local_copy_is_reported_unrecoverable_and_never_served() {
    let Some(moto) = moto("damage_tiered_lost") else {
        return;
    };
    let prefix = "lost";
    let node = start_node(&moto, prefix);
    let topic = "tiered-lost";
    let (all, acks) = fill(&node, topic, &configs(Some("0")), 6_000).await;
    wait_tiered(&node, topic, 3.0, Some(1.0));
    let objects = data_objects(&moto, prefix, topic);
    let bad = &objects[1];
    let (base, next) = (base_of(&bad.key), base_of(&objects[2].key));
    flip_object(&moto, &bad.key);
    eprintln!("flipped a byte of {} (offsets {base}..{next})", bad.key);

    wait_for(
        "the tiered scrub to report the damage unrecoverable",
        SETTLE,
        POLL,
        || {
            let got = node
                .metrics()?
                .partition("tierlog_tiered_ranges_unrecoverable", topic, 0);
            Ok(if got == Some(1.0) {
                Poll::Ready(())
            } else {
                Poll::Pending(format!("unrecoverable={got:?}"))
            })
        },
    )
    .unwrap();
    let m = node.metrics().unwrap();
    assert_eq!(m.counter("tierlog_tiered_repaired_total"), 0.0);
    // The operator sees it plainly.
    let listed = damage_list(&node).unwrap();
    let line = listed
        .lines()
        .find(|l| l.starts_with(topic))
        .unwrap_or_else(|| panic!("{topic} not listed:\n{listed}"));
    let cells: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(
        cells[2..4],
        [base.to_string(), (next - 1).to_string()],
        "{listed}"
    );
    assert!(line.contains("none (tiered)"), "{listed}");
    assert!(line.contains("checksum mismatch"), "{listed}");
    // Its bad bytes are refused, never served; the segments around it are.
    let mut conn = Conn::connect(node.kafka_addr()).unwrap();
    let data = conn.fetch_limited(topic, 0, base, 0, 1, 1 << 20).unwrap();
    assert_eq!(data.error_code, KAFKA_STORAGE_ERROR, "fetch at {base}");
    assert!(
        data.records
            .as_ref()
            .is_none_or(|r| decode_records(r).unwrap().is_empty())
    );
    for (from, to) in [(0, base), (next, end_of(&acks))] {
        check_range(&node.bootstrap(), topic, &all, &acks, from, to).unwrap();
    }
}
