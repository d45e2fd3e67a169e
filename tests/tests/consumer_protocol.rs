//! The next-generation consumer group protocol (KIP-848) end to end: a real `tierlog` node and
//! librdkafka consumers with `group.protocol=consumer`, whose partitions the node assigns
//! (ConsumerGroupHeartbeat), checked with raw ConsumerGroupDescribe, ListGroups and OffsetFetch.
//!
//! With this protocol the heartbeat interval is the broker's (5 s, as Kafka), and a member
//! only gets a partition after its previous owner revoked it, so a reassignment takes up to
//! two heartbeat intervals: the waits below are sized for that.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use anyhow::{Context, Result};
use kafka_protocol::messages::{
    ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, ConsumerGroupHeartbeatRequest,
    ListGroupsRequest,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Compression;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::FutureRecord;
use rdkafka::{Offset, TopicPartitionList};
use tierlog_tests::TestNode;
use tierlog_tests::clients::{self, create_topic};
use tierlog_tests::groups::{
    committed, disjoint_cover, group_id, join_group, node_options, offsets_by_partition, poll_until,
};
use tierlog_tests::kafka::{Broker, KafkaServer};
use tierlog_tests::wire::{Conn, KeyValue, encode_batch};

/// Bound for a group to settle after members join or leave (a few broker heartbeat
/// intervals of 5 s each).
const SETTLE: Duration = Duration::from_secs(60);

/// A node whose KIP-848 members heartbeat every second (Kafka's default is 5 s), so that
/// hand-overs, which take a heartbeat or two, are quick.
fn consumer_protocol_node() -> TestNode {
    let mut opts = node_options();
    opts.extra_args.extend([
        "--group-consumer-heartbeat-interval".to_owned(),
        "1s".to_owned(),
    ]);
    TestNode::start(opts).unwrap()
}
/// INCONSISTENT_GROUP_PROTOCOL.
const INCONSISTENT_GROUP_PROTOCOL: i16 = 23;

/// A librdkafka consumer of the next-generation protocol in `group` (manual commits, from the
/// earliest offset when nothing is committed), subscribed to `topic`. Session timeout and
/// heartbeat interval are the broker's with this protocol, so they are not set.
fn consumer(
    bootstrap: &str,
    group: &str,
    topic: &str,
    extra: &[(&str, &str)],
) -> Result<BaseConsumer> {
    let mut settings = vec![
        ("group.id", group),
        ("group.protocol", "consumer"),
        ("auto.offset.reset", "earliest"),
        ("topic.metadata.refresh.interval.ms", "1000"),
    ];
    settings.extend_from_slice(extra);
    let c = clients::consumer(bootstrap, &settings)?;
    c.subscribe(&[topic])
        .with_context(|| format!("subscribing to `{topic}`"))?;
    Ok(c)
}

/// Produces `per_partition` records to each partition of `topic`, one batch per partition.
fn produce(node: &TestNode, topic: &str, partitions: i32, per_partition: usize) {
    let records: Vec<KeyValue<'_>> =
        vec![(Some(b"k".as_slice()), Some(b"v".as_slice())); per_partition];
    let batch = encode_batch(&records, Compression::None, 1_700_000_000_000).unwrap();
    let mut conn = Conn::connect(node.kafka_addr()).unwrap();
    for p in 0..partitions {
        let r = conn.produce(topic, p, batch.clone(), -1).unwrap();
        assert_eq!(r.error_code, 0, "produce to {topic}/{p}");
    }
}

/// ConsumerGroupDescribe v0 of one group over a raw socket.
fn describe(node: &TestNode, group: &str) -> ConsumerGroupDescribeResponse {
    let mut conn = Conn::connect(node.kafka_addr()).unwrap();
    conn.request(
        &ConsumerGroupDescribeRequest::default().with_group_ids(vec![group_id(group)]),
        0,
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_consumers_split_six_partitions_uniformly_and_take_over_when_one_leaves() {
    let node = consumer_protocol_node();
    let bootstrap = node.bootstrap();
    create_topic(&bootstrap, "kip848", 6, &[]).await.unwrap();
    produce(&node, "kip848", 6, 10);

    let group = "kip848-group";
    let a = consumer(&bootstrap, group, "kip848", &[("client.id", "a")]).unwrap();
    let b = consumer(&bootstrap, group, "kip848", &[("client.id", "b")]).unwrap();
    let c = consumer(&bootstrap, group, "kip848", &[("client.id", "c")]).unwrap();
    let seen = poll_until(
        &[&a, &b, &c],
        "kip848",
        SETTLE,
        "three members with two partitions each, disjoint, covering all 6",
        // Reconciliation passes through uneven states (a member keeps a partition until it has
        // revoked it): wait for the converged one.
        |o| disjoint_cover(&o.assignments, 6, true) && o.assignments.iter().all(|a| a.len() == 2),
    )
    .unwrap();

    // The coordinator's view: three members, the uniform assignor, current assignments that
    // match what the clients own.
    let d = describe(&node, group);
    let g = &d.groups[0];
    assert_eq!(g.error_code, 0, "{:?}", g.error_message);
    assert_eq!(g.assignor_name.as_str(), "uniform");
    assert_eq!(g.members.len(), 3);
    let mut described: Vec<BTreeSet<i32>> = g
        .members
        .iter()
        .map(|m| {
            m.assignment
                .topic_partitions
                .iter()
                .filter(|tp| tp.topic_name.0.as_str() == "kip848")
                .flat_map(|tp| tp.partitions.iter().copied())
                .collect()
        })
        .collect();
    described.sort();
    let mut owned = seen.assignments.clone();
    owned.sort();
    assert_eq!(described, owned);
    let clients: BTreeSet<&str> = g.members.iter().map(|m| m.client_id.as_str()).collect();
    assert_eq!(clients, BTreeSet::from(["a", "b", "c"]));

    // ListGroups shows it as a "consumer" group; the classic protocol cannot join it.
    let mut conn = Conn::connect(node.kafka_addr()).unwrap();
    let listed = conn.request(&ListGroupsRequest::default(), 4).unwrap();
    let row = listed
        .groups
        .iter()
        .find(|l| l.group_id.0.as_str() == group)
        .expect("the group is listed");
    assert_eq!(row.protocol_type.as_str(), "consumer");
    let classic = join_group(&mut conn, 5, group, "", None, "kip848").unwrap();
    assert_eq!(classic.error_code, INCONSISTENT_GROUP_PROTOCOL);

    // c leaves (epoch -1 on close): a and b take its partitions.
    drop(c);
    let after = poll_until(
        &[&a, &b],
        "kip848",
        SETTLE,
        "two remaining members covering all 6 partitions",
        |o| disjoint_cover(&o.assignments, 6, true),
    )
    .unwrap();
    assert_eq!(
        after
            .assignments
            .iter()
            .map(BTreeSet::len)
            .collect::<Vec<_>>(),
        vec![3, 3],
        "{}",
        after.describe()
    );
    // The coordinator marks the group Stable once both members have acknowledged (a heartbeat).
    tierlog_tests::wait::wait_for(
        "the group Stable with two members",
        SETTLE,
        Duration::from_millis(100),
        || {
            let d = describe(&node, group);
            let g = &d.groups[0];
            Ok(
                if g.members.len() == 2 && g.group_state.as_str() == "Stable" {
                    tierlog_tests::wait::Poll::Ready(())
                } else {
                    tierlog_tests::wait::Poll::Pending(format!(
                        "{} members, state {}",
                        g.members.len(),
                        g.group_state.as_str()
                    ))
                },
            )
        },
    )
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_range_assignor_group_gets_contiguous_ranges() {
    let node = consumer_protocol_node();
    let bootstrap = node.bootstrap();
    create_topic(&bootstrap, "ranged", 6, &[]).await.unwrap();

    let group = "ranged-group";
    let range = [("group.remote.assignor", "range")];
    let a = consumer(&bootstrap, group, "ranged", &range).unwrap();
    let b = consumer(&bootstrap, group, "ranged", &range).unwrap();
    let seen = poll_until(
        &[&a, &b],
        "ranged",
        SETTLE,
        "two members with 3 partitions each",
        |o| disjoint_cover(&o.assignments, 6, true) && o.assignments.iter().all(|a| a.len() == 3),
    )
    .unwrap();
    let mut got = seen.assignments.clone();
    got.sort();
    assert_eq!(
        got,
        vec![BTreeSet::from([0, 1, 2]), BTreeSet::from([3, 4, 5])],
        "range gives each member one contiguous range"
    );
    let d = describe(&node, group);
    assert_eq!(d.groups[0].assignor_name.as_str(), "range");
}

/// Commits half of what each partition delivered, stops every consumer, starts new ones and
/// checks they resume exactly at the committed offsets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumption_resumes_at_committed_offsets_after_all_consumers_restart() {
    let node = consumer_protocol_node();
    let bootstrap = node.bootstrap();
    create_topic(&bootstrap, "resume848", 6, &[]).await.unwrap();
    produce(&node, "resume848", 6, 20);

    let group = "resume848-group";
    let a = consumer(&bootstrap, group, "resume848", &[]).unwrap();
    let b = consumer(&bootstrap, group, "resume848", &[]).unwrap();
    let first = poll_until(
        &[&a, &b],
        "resume848",
        SETTLE,
        "two settled members and all 120 records",
        |o| {
            disjoint_cover(&o.assignments, 6, true)
                && offsets_by_partition(o.records.iter().flatten())
                    .values()
                    .map(|v| v.iter().collect::<BTreeSet<_>>().len())
                    .sum::<usize>()
                    == 120
        },
    )
    .unwrap();

    // Each member commits offset 10 (halfway) for every partition it owns, with its member
    // epoch (OffsetCommit v9). A commit racing an epoch change is retried.
    let mut commit_points = BTreeMap::new();
    for (i, member) in [&a, &b].into_iter().enumerate() {
        let mut tpl = TopicPartitionList::new();
        for p in &first.assignments[i] {
            tpl.add_partition_offset("resume848", *p, Offset::Offset(10))
                .unwrap();
            commit_points.insert(*p, 10i64);
        }
        let mut attempts = 0;
        loop {
            match member.commit(&tpl, CommitMode::Sync) {
                Ok(()) => break,
                Err(e) if attempts < 10 => {
                    attempts += 1;
                    eprintln!("commit attempt {attempts} failed: {e}; retrying");
                    let _ = member.poll(Duration::from_millis(500));
                }
                Err(e) => panic!("commit failed: {e}"),
            }
        }
    }
    drop(a);
    drop(b);
    let stored = committed(node.kafka_addr(), group, "resume848", &[0, 1, 2, 3, 4, 5]).unwrap();
    assert_eq!(stored, commit_points, "committed offsets in the store");

    let a = consumer(&bootstrap, group, "resume848", &[]).unwrap();
    let b = consumer(&bootstrap, group, "resume848", &[]).unwrap();
    let second = poll_until(
        &[&a, &b],
        "resume848",
        SETTLE,
        "the 60 records after the commit points",
        |o| disjoint_cover(&o.assignments, 6, true) && o.records.iter().flatten().count() >= 60,
    )
    .unwrap();
    let by_partition = offsets_by_partition(second.records.iter().flatten());
    for p in 0..6 {
        let got: BTreeSet<i64> = by_partition
            .get(&p)
            .map(|v| v.iter().copied().collect())
            .unwrap_or_default();
        assert_eq!(
            got,
            (10..20).collect::<BTreeSet<i64>>(),
            "partition {p} resumes at its committed offset; {}",
            second.describe()
        );
    }
    assert!(
        second
            .records
            .iter()
            .flatten()
            .all(|m| m.offset() >= 10 && m.topic() == "resume848")
    );
}

/// A librdkafka consumer of the next-generation protocol subscribed to the pattern
/// `^regex-.*`, which the coordinator evaluates (RE2/J in Kafka): it is assigned the matching
/// topic that exists and reads it, never the topic that does not match, and is assigned a
/// matching topic created after it subscribed and reads that too.
async fn regex_subscription_follows_new_topics(broker: &dyn Broker) {
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "regex-a", 2, &[]).await.unwrap();
    create_topic(&bootstrap, "other-b", 1, &[]).await.unwrap();
    let p = clients::producer(&bootstrap, &[]).unwrap();
    let send = |topic: &'static str, partition: i32| {
        let p = p.clone();
        async move {
            p.send(
                FutureRecord::<(), _>::to(topic)
                    .partition(partition)
                    .payload(topic),
                clients::CLIENT_TIMEOUT,
            )
            .await
            .map_err(|(e, _)| e)
            .unwrap();
        }
    };
    for (topic, partition) in [("regex-a", 0), ("regex-a", 1), ("other-b", 0)] {
        send(topic, partition).await;
    }
    let c = consumer(&bootstrap, "regex-group", "^regex-.*", &[]).unwrap();
    let mut read: BTreeSet<(String, i32)> = BTreeSet::new();
    let mut until = |want: &[(&str, i32)]| {
        let want: BTreeSet<(String, i32)> = want.iter().map(|(t, p)| (t.to_string(), *p)).collect();
        tierlog_tests::wait::wait_for(
            &format!("{}: assigned and read {want:?}", broker.name()),
            SETTLE,
            Duration::from_millis(1),
            || {
                while let Some(m) = c.poll(Duration::from_millis(100)) {
                    if let Ok(m) = m {
                        read.insert((m.topic().to_owned(), m.partition()));
                    }
                }
                let assigned: BTreeSet<(String, i32)> = c
                    .assignment()?
                    .elements()
                    .iter()
                    .map(|e| (e.topic().to_owned(), e.partition()))
                    .collect();
                Ok(if assigned == want && read == want {
                    tierlog_tests::wait::Poll::Ready(())
                } else {
                    tierlog_tests::wait::Poll::Pending(format!(
                        "assigned {assigned:?}, read {read:?}"
                    ))
                })
            },
        )
        .unwrap();
    };
    until(&[("regex-a", 0), ("regex-a", 1)]);
    create_topic(&bootstrap, "regex-c", 1, &[]).await.unwrap();
    send("regex-c", 0).await;
    until(&[("regex-a", 0), ("regex-a", 1), ("regex-c", 0)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_regex_subscription_gets_matching_topics_including_new_ones() {
    regex_subscription_follows_new_topics(&consumer_protocol_node()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_regex_subscription_gets_matching_topics_including_new_ones_on_apache_kafka() {
    let test = "a_regex_subscription_gets_matching_topics_including_new_ones_on_apache_kafka";
    if let Some(kafka) = KafkaServer::start_or_skip(test).unwrap() {
        regex_subscription_follows_new_topics(&kafka).await;
    }
}

#[test]
fn an_invalid_regex_subscription_is_invalid_regular_expression() {
    // Kafka compiles the pattern (RE2/J) and answers INVALID_REGULAR_EXPRESSION (128).
    let node = consumer_protocol_node();
    let mut conn = Conn::connect(node.kafka_addr()).unwrap();
    let request = ConsumerGroupHeartbeatRequest::default()
        .with_group_id(group_id("bad-regex"))
        .with_member_id(StrBytes::from_static_str("m-1"))
        .with_member_epoch(0)
        .with_rebalance_timeout_ms(30_000)
        .with_subscribed_topic_regex(Some(StrBytes::from_static_str("regex-(")))
        .with_topic_partitions(Some(vec![]));
    let r = conn.request(&request, 1).unwrap();
    assert_eq!(r.error_code, 128, "{:?}", r.error_message);
}
