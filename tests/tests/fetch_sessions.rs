//! Fetch sessions (KIP-227, issue 16): a full fetch opens a session, incremental fetches send
//! only what changed and get back only partitions with something new.
//!
//! - `fetch_sessions_match_kafka`: the same raw Fetch requests (open, incremental with and
//!   without new data, forget, a wrong epoch, an unknown session, close) against Apache Kafka
//!   and tierlog; each answer's shape (error, whether a session id came back, which partitions
//!   with how many records) must be the same on both, and what Kafka answers is also spelled
//!   out here.
//! - `an_incremental_fetch_long_polls`: an incremental fetch with nothing new waits on the
//!   broker and is answered with the data produced while it waits.
//! - `java_consumer_reads_many_partitions_in_a_session` and
//!   `franz_go_reads_many_partitions_in_a_session`: real clients, which use sessions by
//!   default, consume every record of a 120-partition topic; the node's metrics show that
//!   sessions were opened and incremental fetches served.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ForgottenTopic};
use kafka_protocol::messages::{BrokerId, CreateTopicsRequest, FetchRequest, FetchResponse};
use kafka_protocol::records::Compression;
use tierlog_tests::TestNode;
use tierlog_tests::differential::{Pair, Side, both};
use tierlog_tests::kafka::require_kafka;
use tierlog_tests::programs::{franz_check, java_client_check, require_franz};
use tierlog_tests::wait::{Poll, wait_for};
use tierlog_tests::wire::{Conn, encode_batch, topic_name};

/// Topics by name (v13+ names them by id, which differ between the two brokers).
const FETCH_V: i16 = 12;
const PRODUCE_V: i16 = 9;
const CREATE_TOPICS_V: i16 = 7;
const T: i64 = 1_600_000_000_000;

/// Creates `name` with `partitions` partitions and waits for their leaders.
fn create(side: &mut Side, name: &str, partitions: i32) -> Result<()> {
    let request = CreateTopicsRequest::default()
        .with_timeout_ms(30_000)
        .with_topics(vec![
            CreatableTopic::default()
                .with_name(topic_name(name))
                .with_num_partitions(partitions)
                .with_replication_factor(1),
        ]);
    let r = side.conn.request(&request, CREATE_TOPICS_V)?;
    ensure!(
        r.topics.first().is_some_and(|t| t.error_code == 0),
        "{}: creating {name}: {:?}",
        side.name,
        r.topics
    );
    side.await_topic(name, usize::try_from(partitions)?)?;
    Ok(())
}

/// Produces one batch of `n` records to `partition`.
fn produce(conn: &mut Conn, topic: &str, partition: i32, n: usize) -> Result<()> {
    let values: Vec<Vec<u8>> = (0..n).map(|i| format!("v{i}").into_bytes()).collect();
    let records: Vec<_> = values.iter().map(|v| (None, Some(v.as_slice()))).collect();
    let r = conn.produce_v(
        topic,
        partition,
        encode_batch(&records, Compression::None, T)?,
        -1,
        PRODUCE_V,
    )?;
    ensure!(
        r.error_code == 0,
        "produce to {partition}: {}",
        r.error_code
    );
    Ok(())
}

/// A Fetch of `topic` in session `id` at `epoch`: `partitions` as (partition, offset), and
/// `forget` partitions to drop from the session.
fn fetch_request(
    topic: &str,
    id: i32,
    epoch: i32,
    partitions: &[(i32, i64)],
    forget: &[i32],
    max_wait_ms: i32,
) -> FetchRequest {
    let topics = if partitions.is_empty() {
        vec![]
    } else {
        vec![
            FetchTopic::default()
                .with_topic(topic_name(topic))
                .with_partitions(
                    partitions
                        .iter()
                        .map(|&(p, offset)| {
                            FetchPartition::default()
                                .with_partition(p)
                                .with_fetch_offset(offset)
                                .with_partition_max_bytes(1 << 20)
                        })
                        .collect(),
                ),
        ]
    };
    let forgotten = if forget.is_empty() {
        vec![]
    } else {
        vec![
            ForgottenTopic::default()
                .with_topic(topic_name(topic))
                .with_partitions(forget.to_vec()),
        ]
    };
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(1)
        .with_max_bytes(64 << 20)
        .with_session_id(id)
        .with_session_epoch(epoch)
        .with_topics(topics)
        .with_forgotten_topics_data(forgotten)
}

/// What is compared of a Fetch answer: the top-level error, whether a session id came back,
/// and each partition answered as `partition:error:high_watermark:records`.
fn shape(r: &FetchResponse) -> String {
    let mut parts: Vec<String> = r
        .responses
        .iter()
        .flat_map(|t| t.partitions.iter())
        .map(|p| {
            let records = p
                .records
                .as_ref()
                .map_or(0, |b| tierlog_tests::wire::decode_records(b).unwrap().len());
            format!(
                "{}:{}:{}:{}",
                p.partition_index, p.error_code, p.high_watermark, records
            )
        })
        .collect();
    parts.sort();
    format!(
        "error={} session={} [{}]",
        r.error_code,
        if r.session_id == 0 { "none" } else { "set" },
        parts.join(" ")
    )
}

/// Runs one Fetch on both sides; the answers (Kafka first).
fn fetch_both(
    sides: &mut [Side; 2],
    ids: [i32; 2],
    make: impl Fn(i32) -> FetchRequest,
) -> Result<[FetchResponse; 2]> {
    let mut which = 0;
    both(sides, |side| {
        let request = make(ids[which]);
        which += 1;
        side.conn.request(&request, FETCH_V)
    })
}

#[test]
fn fetch_sessions_match_kafka() -> Result<()> {
    let Some(pair) = Pair::start_or_skip("fetch_sessions_match_kafka")? else {
        return Ok(());
    };
    let mut sides = pair.sides()?;
    let topic = "fs-diff";
    for side in sides.iter_mut() {
        create(side, topic, 3)?;
        for p in 0..3 {
            produce(&mut side.conn, topic, p, 2)?;
        }
    }
    let mut steps: Vec<(&str, [String; 2])> = Vec::new();
    let mut check = |what: &'static str, r: &[FetchResponse; 2], expected: &str| {
        let s = [shape(&r[0]), shape(&r[1])];
        steps.push((what, s.clone()));
        assert_eq!(s[0], expected, "{what}: Kafka answered otherwise");
        assert_eq!(s[1], s[0], "{what}: tierlog differs from Kafka");
    };

    // A full fetch (epoch 0) opens a session and answers every partition.
    let all = [(0, 0), (1, 0), (2, 0)];
    let r = fetch_both(&mut sides, [0, 0], |id| {
        fetch_request(topic, id, 0, &all, &[], 5000)
    })?;
    check(
        "full fetch",
        &r,
        "error=0 session=set [0:0:2:2 1:0:2:2 2:0:2:2]",
    );
    let ids = [r[0].session_id, r[1].session_id];

    // New data on partition 1 only: an incremental fetch moving every position on answers
    // just partition 1.
    produce(&mut sides[0].conn, topic, 1, 1)?;
    produce(&mut sides[1].conn, topic, 1, 1)?;
    let r = fetch_both(&mut sides, ids, |id| {
        fetch_request(topic, id, 1, &[(0, 2), (1, 2), (2, 2)], &[], 5000)
    })?;
    check(
        "incremental, new data on 1",
        &r,
        "error=0 session=set [1:0:3:1]",
    );
    assert_eq!([r[0].session_id, r[1].session_id], ids, "same session");

    // Nothing new (partition 1's position moved on): an empty answer after max_wait_ms.
    let r = fetch_both(&mut sides, ids, |id| {
        fetch_request(topic, id, 2, &[(1, 3)], &[], 100)
    })?;
    check("incremental, nothing new", &r, "error=0 session=set []");

    // Partition 2 is forgotten: its new data is not answered.
    produce(&mut sides[0].conn, topic, 2, 1)?;
    produce(&mut sides[1].conn, topic, 2, 1)?;
    let r = fetch_both(&mut sides, ids, |id| {
        fetch_request(topic, id, 3, &[], &[2], 100)
    })?;
    check("incremental, 2 forgotten", &r, "error=0 session=set []");

    // The epoch just used again: INVALID_FETCH_SESSION_EPOCH, and no session id.
    let r = fetch_both(&mut sides, ids, |id| {
        fetch_request(topic, id, 3, &[], &[], 100)
    })?;
    let invalid = ResponseError::InvalidFetchSessionEpoch.code();
    check(
        "wrong epoch",
        &r,
        &format!("error={invalid} session=none []"),
    );

    // A session id the broker never gave: FETCH_SESSION_ID_NOT_FOUND.
    let r = fetch_both(&mut sides, ids, |id| {
        fetch_request(topic, id.wrapping_add(1).max(1), 1, &[], &[], 100)
    })?;
    let not_found = ResponseError::FetchSessionIdNotFound.code();
    check(
        "unknown session",
        &r,
        &format!("error={not_found} session=none []"),
    );

    // The session is still there at epoch 4; a FINAL (-1) fetch closes it and is answered
    // without one.
    let r = fetch_both(&mut sides, ids, |id| {
        fetch_request(topic, id, 4, &[(0, 2)], &[], 100)
    })?;
    check("incremental after errors", &r, "error=0 session=set []");
    let r = fetch_both(&mut sides, ids, |id| {
        fetch_request(topic, id, -1, &[(0, 0)], &[], 100)
    })?;
    check("final", &r, "error=0 session=none [0:0:2:2]");
    let r = fetch_both(&mut sides, ids, |id| {
        fetch_request(topic, id, 5, &[], &[], 100)
    })?;
    check(
        "after close",
        &r,
        &format!("error={not_found} session=none []"),
    );
    for (what, [k, t]) in &steps {
        eprintln!("{what}: kafka {k} | tierlog {t}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incremental_fetch_long_polls() {
    let node = TestNode::start_default().unwrap();
    tierlog_tests::clients::create_topic(&node.bootstrap(), "fs-poll", 2, &[])
        .await
        .unwrap();
    let addr = node.kafka_addr();
    let mut conn = Conn::connect(addr).unwrap();
    let open: FetchResponse = conn
        .request(
            &fetch_request("fs-poll", 0, 0, &[(0, 0), (1, 0)], &[], 0),
            FETCH_V,
        )
        .unwrap();
    assert_eq!(open.error_code, 0);
    let id = open.session_id;
    assert_ne!(id, 0, "no session opened");
    let fetcher = std::thread::spawn(move || {
        let r: FetchResponse = conn
            .request(&fetch_request("fs-poll", id, 1, &[], &[], 60_000), FETCH_V)
            .unwrap();
        r
    });
    // Produce once the incremental fetch is parked on the broker.
    wait_for(
        "the incremental fetch to reach the broker",
        Duration::from_secs(30),
        Duration::from_millis(10),
        || {
            let n = node.metrics()?.counter("tierlog_incremental_fetches_total");
            Ok(if n >= 1.0 {
                Poll::Ready(())
            } else {
                Poll::Pending(format!("{n} incremental fetches"))
            })
        },
    )
    .unwrap();
    let mut producer = Conn::connect(addr).unwrap();
    produce(&mut producer, "fs-poll", 1, 3).unwrap();
    let r = fetcher.join().unwrap();
    assert_eq!(r.error_code, 0);
    assert_eq!(r.session_id, id);
    assert_eq!(shape(&r), "error=0 session=set [1:0:3:3]");
}

/// Requires the node to have opened sessions and served incremental fetches.
fn sessions_were_used(node: &TestNode) -> Result<()> {
    let m = node.metrics()?;
    let created = m.counter("tierlog_fetch_sessions_created_total");
    let incremental = m.counter("tierlog_incremental_fetches_total");
    ensure!(
        created >= 1.0 && incremental >= 1.0,
        "sessions created {created}, incremental fetches {incremental}"
    );
    eprintln!("sessions created {created}, incremental fetches {incremental}");
    Ok(())
}

#[test]
fn java_consumer_reads_many_partitions_in_a_session() {
    if !require_kafka("java_consumer_reads_many_partitions_in_a_session").unwrap() {
        return;
    }
    let node = TestNode::start_default().unwrap();
    let outcome = java_client_check(
        &node,
        "fs-java",
        &["--partitions", "120", "--records", "3000"],
        Duration::from_secs(120),
    )
    .unwrap();
    let summary = outcome
        .expect_passed("ClientCheck over 120 partitions")
        .unwrap();
    assert_eq!(summary["produced"], 3000, "{summary}");
    assert_eq!(summary["consumed"], 3000, "{summary}");
    sessions_were_used(&node)
        .context("the Java consumer fetched without sessions")
        .unwrap();
}

#[test]
fn franz_go_reads_many_partitions_in_a_session() {
    if !require_franz("franz_go_reads_many_partitions_in_a_session").unwrap() {
        return;
    }
    let node = TestNode::start_default().unwrap();
    let outcome = franz_check(
        &node,
        "fs-franz",
        &["-partitions", "120", "-count", "3000"],
        Duration::from_secs(120),
    )
    .unwrap();
    let summary = outcome
        .expect_passed("franz-check over 120 partitions")
        .unwrap();
    assert_eq!(summary["consumed"], 3000, "{summary}");
    sessions_were_used(&node)
        .context("franz-go fetched without sessions")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn followers_replicate_in_incremental_sessions() {
    use rdkafka::producer::FutureRecord;
    use tierlog_tests::cluster::{ClusterOptions, TestCluster};

    let Some(c) = TestCluster::start_or_skip(
        "followers_replicate_in_incremental_sessions",
        ClusterOptions::default(),
    )
    .unwrap() else {
        return;
    };
    c.wait_brokers(3).unwrap();
    let topic = "fs-followers";
    c.create_topic(topic, 6, 3, &[]).await.unwrap();
    c.wait_topic_full(topic, 6, 3).unwrap();
    // acks=all: each record is acknowledged once every in-sync follower has fetched it.
    let producer = tierlog_tests::clients::producer(&c.bootstrap(), &[]).unwrap();
    for i in 0..60 {
        let value = format!("v{i}");
        producer
            .send(
                FutureRecord::<(), _>::to(topic)
                    .partition(i % 6)
                    .payload(&value),
                Duration::from_secs(30),
            )
            .await
            .map_err(|(e, _)| e)
            .unwrap();
    }
    // Every replica of every partition reaches the same log end (10 records each), and the
    // leaders served the followers' fetches incrementally.
    wait_for(
        "every replica at offset 10 through incremental fetches",
        Duration::from_secs(60),
        Duration::from_millis(50),
        || {
            let mut incremental = 0.0;
            let mut behind = Vec::new();
            for id in c.ids() {
                let m = c.node(id).metrics()?;
                incremental += m.counter("tierlog_incremental_fetches_total");
                for p in 0..6 {
                    let p = p.to_string();
                    let end = m.get(
                        "tierlog_partition_log_end_offset",
                        &[("topic", topic), ("partition", &p)],
                    );
                    if end != Some(10.0) {
                        behind.push(format!("node {id} partition {p} at {end:?}"));
                    }
                }
            }
            Ok(if behind.is_empty() && incremental >= 1.0 {
                Poll::Ready(())
            } else {
                Poll::Pending(format!("{incremental} incremental fetches; {behind:?}"))
            })
        },
    )
    .unwrap();
}
