//! An elastic cluster (issue 17), on real etcd and real nodes: a node lost for good has its
//! replicas re-created on the others, a node drained with `tierlog node drain` empties under
//! load without a single under-replicated moment, and a node that joins gets its share of
//! replicas and leaders.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use rdkafka::Offset;
use rdkafka::admin::{NewTopic, TopicReplication};
use tierlog_tests::NodeOptions;
use tierlog_tests::clients::{admin, admin_options, assigned_consumer, consume_exactly, producer};
use tierlog_tests::cluster::{
    BackgroundProducer, ClusterOptions, ClusterView, LoadOptions, TestCluster, check_acked,
    read_partition,
};
use tierlog_tests::node::tierlog_binary;
use tierlog_tests::workload::{check_consumed, consume_timeout, produce_all, records};

/// Creates `topic` with one partition per entry of `assignment`, on those nodes.
async fn create_on(c: &TestCluster, topic: &str, assignment: &[&[i32]], configs: &[(&str, &str)]) {
    let mut t = NewTopic::new(
        topic,
        i32::try_from(assignment.len()).unwrap(),
        TopicReplication::Variable(assignment),
    );
    for (k, v) in configs {
        t = t.set(k, v);
    }
    let created = admin(&c.bootstrap())
        .unwrap()
        .create_topics([&t], &admin_options())
        .await
        .unwrap();
    assert!(created.iter().all(Result::is_ok), "{created:?}");
}

/// Runs `tierlog node <args>` against the cluster's metadata store.
fn node_tool(c: &TestCluster, args: &[&str]) -> Result<String> {
    let out = std::process::Command::new(tierlog_binary()?)
        .arg("node")
        .args(["--metadata", &c.metadata_url()])
        .args(args)
        .output()
        .context("running tierlog node")?;
    ensure!(
        out.status.success(),
        "tierlog node {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Replica and leader counts per node in a Metadata view.
fn counts(v: &ClusterView) -> (BTreeMap<u32, usize>, BTreeMap<u32, usize>) {
    let mut replicas = BTreeMap::new();
    for p in v.partitions.values() {
        for r in &p.replicas {
            *replicas.entry(*r).or_insert(0) += 1;
        }
    }
    (replicas, v.leader_counts())
}

fn options(args: &[&str]) -> ClusterOptions {
    ClusterOptions {
        nodes: 4,
        node: NodeOptions::default().args(args.iter().copied()),
        settle_timeout: Duration::from_secs(120),
        ..ClusterOptions::default()
    }
}

/// Node 1 dies and never returns. After `--replica-replacement-delay` (3 s here) the
/// controller re-creates its replicas on node 4, which starts empty: every partition is back to
/// three in-sync replicas on nodes 2, 3 and 4. Then node 2 dies too, and every acknowledged
/// record is still read back, from nodes 3 and 4.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_node_s_replicas_are_recreated_and_a_second_loss_loses_nothing() {
    let test = "a_lost_node_s_replicas_are_recreated_and_a_second_loss_loses_nothing";
    let opts = options(&[
        "--replica-replacement-delay",
        "3s",
        "--partition-balancing",
        "false",
    ]);
    let Some(mut c) = TestCluster::start_or_skip(test, opts).unwrap() else {
        return;
    };
    c.wait_brokers(4).unwrap();
    let topic = "healed";
    let on = [1, 2, 3];
    create_on(
        &c,
        topic,
        &[&on, &on, &on, &on],
        &[("min.insync.replicas", "2")],
    )
    .await;
    c.wait_topic_full(topic, 4, 3).unwrap();
    let data = records(4000, topic);
    let bulk = producer(
        &c.bootstrap(),
        &[
            ("queue.buffering.max.messages", "100000"),
            ("message.timeout.ms", "60000"),
        ],
    )
    .unwrap();
    let acks = produce_all(&bulk, topic, &data).await.unwrap();
    drop(bulk);

    c.kill9(1).unwrap();
    c.wait_view(
        "every partition on nodes 2, 3 and 4, all in sync",
        topic,
        |v| {
            let healed = v.partitions.len() == 4
                && v.partitions.values().all(|p| {
                    p.replicas.iter().copied().collect::<BTreeSet<_>>() == BTreeSet::from([2, 3, 4])
                        && p.isr_full()
                });
            healed.then_some(())
        },
    )
    .unwrap();

    c.kill9(2).unwrap();
    c.wait_node_gone(topic, 2).unwrap();
    let consumer = assigned_consumer(&c.bootstrap(), topic, 0..4, Offset::Beginning).unwrap();
    let consumed = consume_exactly(&consumer, data.len(), consume_timeout(data.len())).unwrap();
    check_consumed(&consumed, &data, &acks).unwrap();
}

/// `tierlog node drain` empties the node leading partition 0 while an acks=all producer writes
/// to it: its replicas and leaderships move to the other nodes, and at no moment does any
/// partition have fewer than three in-sync replicas. Once `tierlog node status` shows it
/// holding nothing, it is stopped; no produce failed and every acknowledged record is there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drained_node_empties_under_load_with_nothing_under_replicated() {
    let test = "a_drained_node_empties_under_load_with_nothing_under_replicated";
    let Some(mut c) = TestCluster::start_or_skip(test, options(&[])).unwrap() else {
        return;
    };
    c.wait_brokers(4).unwrap();
    let topic = "drained";
    c.create_topic(topic, 8, 3, &[("min.insync.replicas", "2")])
        .await
        .unwrap();
    c.wait_topic_full(topic, 8, 3).unwrap();
    let victim = c.wait_leader(topic, 0).unwrap();
    let load = BackgroundProducer::start(&c.bootstrap(), topic, LoadOptions::default()).unwrap();
    load.wait_acked_since(std::time::Instant::now(), 100, Duration::from_secs(60))
        .unwrap();

    node_tool(&c, &["drain", &victim.to_string()]).unwrap();
    c.wait_view(&format!("node {victim} holding no replica"), topic, |v| {
        for (i, p) in &v.partitions {
            assert!(
                p.isr.len() >= 3,
                "partition {i} under-replicated during the drain: {p:?}"
            );
        }
        let (replicas, leaders) = counts(v);
        (v.partitions.len() == 8
            && !replicas.contains_key(&victim)
            && !leaders.contains_key(&victim)
            && v.partitions.values().all(|p| p.isr_full()))
        .then_some(())
    })
    .unwrap();
    let status = node_tool(&c, &["status"]).unwrap();
    let line = status
        .lines()
        .find(|l| l.split_whitespace().next() == Some(&victim.to_string()))
        .unwrap_or_default()
        .to_owned();
    let cells: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(
        (cells.get(3).copied(), cells.get(4).copied()),
        (Some("yes"), Some("0")),
        "{status}"
    );

    c.terminate(victim).unwrap();
    load.wait_acked_since(std::time::Instant::now(), 100, Duration::from_secs(60))
        .unwrap();
    let deliveries = load.stop().unwrap();
    assert!(deliveries.failures.is_empty(), "{:?}", deliveries.failures);
    let log = read_partition(&c.bootstrap(), topic, 0).unwrap();
    check_acked(&log, 0, &deliveries.acks).unwrap();
}

/// Three nodes hold 60 partitions with three replicas each; a fourth joins with an empty disk.
/// Balancing (a few moves at a time) gives it its share: 45 of the 180 replicas and 15 of the
/// 60 leaderships, within one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_joining_node_gets_a_fair_share_of_replicas_and_leaders() {
    let test = "a_joining_node_gets_a_fair_share_of_replicas_and_leaders";
    let Some(mut c) =
        TestCluster::start_or_skip(test, options(&["--leader-rebalance-interval", "1s"])).unwrap()
    else {
        return;
    };
    c.terminate(4).unwrap();
    c.wait_brokers(3).unwrap();
    let topic = "balanced";
    c.create_topic(topic, 60, 3, &[]).await.unwrap();
    let before = c.wait_topic_full(topic, 60, 3).unwrap();
    assert!(!counts(&before).0.contains_key(&4));

    c.restart(4).unwrap();
    c.wait_view("node 4 holding its share", topic, |v| {
        let (replicas, leaders) = counts(v);
        let fair = v.partitions.len() == 60
            && v.partitions
                .values()
                .all(|p| p.isr_full() && p.replicas.len() == 3)
            && (1..=4).all(|n| (44..=46).contains(replicas.get(&n).unwrap_or(&0)))
            && (1..=4).all(|n| (14..=16).contains(leaders.get(&n).unwrap_or(&0)));
        fair.then_some(())
    })
    .unwrap();
}
