//! Produce and consume through real librdkafka clients: every codec, offsets by timestamp,
//! and a restart (SIGTERM, start again) that must keep everything.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, ensure};
use kafka_protocol::records::Compression;
use rdkafka::consumer::Consumer;
use rdkafka::producer::FutureRecord;
use rdkafka::{Offset, TopicPartitionList};
use tierlog_tests::clients::{
    CLIENT_TIMEOUT, assigned_consumer, consume_exactly, create_topic, expect_no_more, producer,
    watermarks,
};
use tierlog_tests::wire::{self, Conn};
use tierlog_tests::workload::{check_acks, check_consumed, consume_timeout, produce_all, records};
use tierlog_tests::{NodeOptions, TestNode};

const PARTITIONS: i32 = 4;
const CODEC_RECORDS: usize = 100_000;

/// Produces `CODEC_RECORDS` keyed records with headers under `codec` to a 4-partition topic,
/// then checks the acknowledgements, the consumed log, the watermarks, and that the broker
/// kept the producer's batches in `codec` (it must not decompress or re-encode them).
async fn roundtrip_codec(codec: &str, compression: Compression) -> Result<()> {
    let node = TestNode::start_default()?;
    let bootstrap = node.bootstrap();
    let topic = format!("codec-{codec}");
    create_topic(&bootstrap, &topic, PARTITIONS, &[]).await?;

    let producer = producer(
        &bootstrap,
        &[
            ("compression.type", codec),
            ("linger.ms", "20"),
            ("queue.buffering.max.messages", "1000000"),
        ],
    )?;
    let data = records(CODEC_RECORDS, codec);
    let acks = produce_all(&producer, &topic, &data).await?;
    let per_partition = check_acks(&acks, &BTreeMap::new())?;
    ensure!(
        per_partition.len() == PARTITIONS as usize,
        "keys should spread over all {PARTITIONS} partitions, got {per_partition:?}"
    );

    let consumer = assigned_consumer(&bootstrap, &topic, 0..PARTITIONS, Offset::Beginning)?;
    let consumed = consume_exactly(&consumer, data.len(), consume_timeout(data.len()))?;
    check_consumed(&consumed, &data, &acks)?;
    expect_no_more(&consumer, Duration::from_millis(500))?;

    for (&p, &count) in &per_partition {
        let (low, high) = watermarks(&bootstrap, &topic, p)?;
        ensure!(
            (low, high) == (0, count),
            "partition {p}: watermarks ({low}, {high}), expected (0, {count})"
        );
    }

    // The stored batches are the producer's, still compressed with its codec.
    let mut conn = Conn::connect(node.kafka_addr())?;
    for p in 0..PARTITIONS {
        let fetched = conn.fetch(&topic, p, 0, 0, 1)?;
        ensure!(
            fetched.error_code == 0,
            "fetch {topic}/{p}: error {}",
            fetched.error_code
        );
        let bytes = fetched.records.context("fetch returned no records")?;
        let codecs = wire::batch_compressions(&bytes)?;
        ensure!(!codecs.is_empty(), "fetch {topic}/{p} returned no batches");
        ensure!(
            codecs.iter().all(|c| *c == compression),
            "{topic}/{p}: batches stored as {codecs:?}, produced as {compression:?}{}",
            if compression == Compression::Lz4 {
                " (librdkafka only lz4-compresses when the broker's ApiVersions lists \
                 FindCoordinator: it gates its LZ4 feature on that API, see \
                 rdkafka_feature.c; otherwise it silently sends lz4 batches uncompressed)"
            } else {
                ""
            }
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heavy_codec_none() {
    roundtrip_codec("none", Compression::None).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heavy_codec_gzip() {
    roundtrip_codec("gzip", Compression::Gzip).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heavy_codec_snappy() {
    roundtrip_codec("snappy", Compression::Snappy)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heavy_codec_lz4() {
    roundtrip_codec("lz4", Compression::Lz4).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heavy_codec_zstd() {
    roundtrip_codec("zstd", Compression::Zstd).await.unwrap();
}

/// ListOffsets by timestamp (rdkafka `offsets_for_times` and raw ListOffsets) returns the
/// earliest offset whose timestamp is at or after the target, across many batches.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_for_times_finds_earliest_offset_at_or_after_timestamp() {
    let node = TestNode::start_default().unwrap();
    let bootstrap = node.bootstrap();
    let topic = "by-time";
    create_topic(&bootstrap, topic, 2, &[]).await.unwrap();

    let now_ms = i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap();
    // An hour ago, well inside the default retention; 10 ms apart; partition p offset by p.
    let base = now_ms - 3_600_000;
    let per_partition = 300;
    let producer = producer(&bootstrap, &[("linger.ms", "2")]).unwrap();
    // (partition, timestamp) -> acknowledged offset
    let mut acked: BTreeMap<i32, Vec<(i64, i64)>> = BTreeMap::new();
    for chunk in 0..(per_partition / 30) {
        // 30 records per partition per round, awaited together: many batches of a few records.
        let mut round = Vec::new();
        for j in (chunk * 30)..((chunk + 1) * 30) {
            for p in 0..2 {
                let ts = base + i64::from(j) * 10 + i64::from(p);
                round.push((p, ts, format!("t-{p}-{j}")));
            }
        }
        let mut pending = Vec::new();
        for (p, ts, value) in &round {
            let rec = FutureRecord::<(), _>::to(topic)
                .partition(*p)
                .timestamp(*ts)
                .payload(value.as_str());
            let future = producer.send_result(rec).map_err(|(e, _)| e).unwrap();
            pending.push((*ts, future));
        }
        for (ts, fut) in pending {
            let delivery = fut.await.unwrap().map_err(|(e, _)| e).unwrap();
            acked
                .entry(delivery.partition)
                .or_default()
                .push((ts, delivery.offset));
        }
    }

    let consumer = tierlog_tests::clients::consumer(&bootstrap, &[]).unwrap();
    let mut conn = Conn::connect(node.kafka_addr()).unwrap();
    for (&p, entries) in &acked {
        let mut entries = entries.clone();
        entries.sort();
        let first_ts = entries[0].0;
        let last_ts = entries[entries.len() - 1].0;
        // Targets: before everything, exact timestamps, between two records, after the end.
        let mut probes = vec![first_ts - 100_000, last_ts + 1];
        for k in [0usize, 1, 29, 30, 31, 150, 299] {
            probes.push(entries[k].0);
            probes.push(entries[k].0 - 3);
        }
        for target in probes {
            let expected = entries
                .iter()
                .filter(|(ts, _)| *ts >= target)
                .map(|(ts, off)| (*off, *ts))
                .min();
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition_offset(topic, p, Offset::Offset(target))
                .unwrap();
            let result = consumer.offsets_for_times(tpl, CLIENT_TIMEOUT).unwrap();
            let got = result.find_partition(topic, p).unwrap();
            assert!(
                got.error().is_ok(),
                "offsets_for_times error: {:?}",
                got.error()
            );
            match expected {
                Some((offset, _)) => assert_eq!(
                    got.offset(),
                    Offset::Offset(offset),
                    "offsets_for_times({p}, {target})"
                ),
                None => assert_eq!(
                    got.offset(),
                    Offset::End,
                    "offsets_for_times({p}, {target})"
                ),
            }

            let (error, offset, ts) = conn.list_offset(topic, p, target).unwrap();
            assert_eq!(error, 0, "raw ListOffsets({p}, {target}) error");
            match expected {
                Some((want_offset, want_ts)) => {
                    assert_eq!(offset, want_offset, "raw ListOffsets({p}, {target}) offset");
                    assert_eq!(ts, want_ts, "raw ListOffsets({p}, {target}) timestamp");
                }
                None => assert_eq!(offset, -1, "raw ListOffsets({p}, {target}) past the end"),
            }
        }
        let (_, earliest, _) = conn.list_offset(topic, p, wire::EARLIEST).unwrap();
        let latest = conn.log_end_offset(topic, p).unwrap();
        assert_eq!(earliest, 0);
        assert_eq!(latest, i64::try_from(entries.len()).unwrap());
    }
}

/// A clean stop (SIGTERM) exits 0 and keeps every record; after starting again on the same
/// data directory everything reads back identically and new records continue the offsets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heavy_restart_after_sigterm_keeps_everything() {
    let mut node = TestNode::start_default().unwrap();
    let bootstrap = node.bootstrap();
    let topic = "restart";
    create_topic(
        &bootstrap,
        topic,
        PARTITIONS,
        &[("segment.bytes", "1048576")],
    )
    .await
    .unwrap();
    let producer_config = [
        ("compression.type", "lz4"),
        ("queue.buffering.max.messages", "1000000"),
    ];
    let first = records(30_000, "before-restart");
    let acks = {
        let producer = producer(&bootstrap, &producer_config).unwrap();
        produce_all(&producer, topic, &first).await.unwrap()
    };
    let counts = check_acks(&acks, &BTreeMap::new()).unwrap();
    let consumed = {
        let consumer =
            assigned_consumer(&bootstrap, topic, 0..PARTITIONS, Offset::Beginning).unwrap();
        consume_exactly(&consumer, first.len(), consume_timeout(first.len())).unwrap()
    };
    check_consumed(&consumed, &first, &acks).unwrap();

    let status = node.terminate().unwrap();
    assert!(
        status.success(),
        "SIGTERM exit status: {status}\n{}",
        node.log_tails()
    );
    node.start_again().unwrap();

    let consumer = assigned_consumer(&bootstrap, topic, 0..PARTITIONS, Offset::Beginning).unwrap();
    let again = consume_exactly(&consumer, first.len(), consume_timeout(first.len())).unwrap();
    check_consumed(&again, &first, &acks).unwrap();
    expect_no_more(&consumer, Duration::from_millis(500)).unwrap();

    // New records continue each partition's offsets where they ended.
    let second = records(5_000, "after-restart");
    let producer = producer(&bootstrap, &producer_config).unwrap();
    let acks2 = produce_all(&producer, topic, &second).await.unwrap();
    check_acks(&acks2, &counts).unwrap();
    let consumer = assigned_consumer(&bootstrap, topic, 0..PARTITIONS, Offset::Beginning).unwrap();
    let all = consume_exactly(
        &consumer,
        first.len() + second.len(),
        consume_timeout(40_000),
    )
    .unwrap();
    let mut all_records = first.clone();
    all_records.extend(second.iter().cloned());
    let mut all_acks = acks.clone();
    all_acks.extend(acks2.iter().copied());
    check_consumed(&all, &all_records, &all_acks).unwrap();
}

/// SIGINT is a clean stop too: exit 0, and records written with the default interval flush
/// policy survive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_exits_zero_and_keeps_data() {
    let mut node = TestNode::start(NodeOptions::default()).unwrap();
    let bootstrap = node.bootstrap();
    let topic = "sigint";
    create_topic(&bootstrap, topic, 1, &[]).await.unwrap();
    let data = records(500, "sigint");
    let acks = produce_all(&producer(&bootstrap, &[]).unwrap(), topic, &data)
        .await
        .unwrap();
    let status = node.interrupt().unwrap();
    assert!(
        status.success(),
        "SIGINT exit status: {status}\n{}",
        node.log_tails()
    );
    node.start_again().unwrap();
    let consumer = assigned_consumer(&bootstrap, topic, [0], Offset::Beginning).unwrap();
    let consumed = consume_exactly(&consumer, data.len(), consume_timeout(data.len())).unwrap();
    check_consumed(&consumed, &data, &acks).unwrap();
}

/// Batches compressed by another encoder (kafka-protocol's) under every codec are stored as
/// sent and decoded by librdkafka: the broker's handling of each codec does not depend on
/// which client produced it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_batches_in_every_codec_are_served_to_librdkafka() {
    let node = TestNode::start_default().unwrap();
    let bootstrap = node.bootstrap();
    let codecs = [
        ("none", Compression::None),
        ("gzip", Compression::Gzip),
        ("snappy", Compression::Snappy),
        ("lz4", Compression::Lz4),
        ("zstd", Compression::Zstd),
    ];
    let mut conn = Conn::connect(node.kafka_addr()).unwrap();
    for (name, compression) in codecs {
        let topic = format!("raw-{name}");
        create_topic(&bootstrap, &topic, 1, &[]).await.unwrap();
        let mut expected = Vec::new();
        for batch_no in 0..5 {
            let kv: Vec<(String, String)> = (0..200)
                .map(|i| {
                    (
                        format!("{name}-k-{batch_no}-{i}"),
                        format!("{name}-v-{batch_no}-{i}-").repeat(1 + i % 4),
                    )
                })
                .collect();
            let refs: Vec<wire::KeyValue<'_>> = kv
                .iter()
                .map(|(k, v)| (Some(k.as_bytes()), Some(v.as_bytes())))
                .collect();
            let batch = wire::encode_batch(&refs, compression, 1_700_000_000_000).unwrap();
            let r = conn.produce(&topic, 0, batch, -1).unwrap();
            assert_eq!(r.error_code, 0, "{topic} batch {batch_no}");
            assert_eq!(r.base_offset, batch_no * 200, "{topic} batch {batch_no}");
            expected.extend(kv);
        }
        let fetched = conn.fetch(&topic, 0, 0, 0, 1).unwrap();
        let stored = wire::batch_compressions(fetched.records.as_ref().unwrap()).unwrap();
        assert!(
            !stored.is_empty() && stored.iter().all(|c| *c == compression),
            "{topic}: stored as {stored:?}, produced as {compression:?}"
        );

        let consumer = assigned_consumer(&bootstrap, &topic, [0], Offset::Beginning).unwrap();
        let consumed = consume_exactly(&consumer, expected.len(), Duration::from_secs(60)).unwrap();
        for (i, (m, (k, v))) in consumed.iter().zip(&expected).enumerate() {
            use rdkafka::message::Message;
            assert_eq!(m.offset(), i64::try_from(i).unwrap(), "{topic}");
            assert_eq!(m.key(), Some(k.as_bytes()), "{topic} offset {i}");
            assert_eq!(m.payload(), Some(v.as_bytes()), "{topic} offset {i}");
        }
    }
}
