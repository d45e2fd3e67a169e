//! Moving replicas and leaders with Kafka's own tools (issue 17): `kafka-reassign-partitions`
//! (generate, execute, verify, list) and `kafka-leader-election`, against a four-node cluster
//! on real etcd and a real S3 server, under an acks=all load.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rdkafka::admin::{NewTopic, TopicReplication};
use tierlog_tests::cluster::{
    BackgroundProducer, ClusterOptions, LoadOptions, SharedStore, TestCluster, check_acked,
    read_partition,
};
use tierlog_tests::kafka::{ToolOutput, class, require_kafka, run_tool};
use tierlog_tests::wait::{Poll, wait_for};
use tierlog_tests::{NodeOptions, TestNode};

const TOOL_TIMEOUT: Duration = Duration::from_secs(120);
/// `kafka-reassign-partitions --throttle`, bytes per second.
const THROTTLE: u64 = 20_000;

fn tool(c: &TestCluster, main_class: &str, args: &[&str]) -> Result<ToolOutput> {
    let bootstrap = c.bootstrap();
    let mut all = vec!["--bootstrap-server", bootstrap.as_str()];
    all.extend_from_slice(args);
    run_tool(main_class, &all, None, TOOL_TIMEOUT)?
        .ok()
        .with_context(|| format!("{main_class} {}", args.join(" ")))
}

/// Checks that a replica's fetched bytes, sampled over time, kept to [`THROTTLE`]: over any
/// stretch no more than the rate allows, plus the one second's burst a bucket starts with and
/// a batch.
fn assert_throttled(samples: &[(Instant, f64)]) {
    for (i, (t0, b0)) in samples.iter().enumerate() {
        for (t1, b1) in &samples[i + 1..] {
            let allowed = THROTTLE as f64 * (t1.duration_since(*t0).as_secs_f64() + 1.0) + 16_384.0;
            assert!(
                b1 - b0 <= allowed,
                "{} bytes fetched in {:?} under a {THROTTLE} B/s throttle",
                b1 - b0,
                t1.duration_since(*t0)
            );
        }
    }
}

/// A per-partition gauge of node `node`'s metrics (0 when the node does not report it).
fn gauge(node: &TestNode, name: &str, topic: &str, p: i32) -> Result<f64> {
    Ok(node.metrics()?.partition(name, topic, p).unwrap_or(0.0))
}

/// Partition 0 of `moving`, replicated on nodes 1, 2 and 3 with most of its history tiered,
/// moves to nodes 2, 3 and 4 while an acks=all producer writes to it: `--generate` proposes a
/// plan, `--execute` starts the move, `--list` shows it while it runs, `--verify` reports it
/// complete. Nothing acknowledged is lost, node 4 copied only the un-tiered tail from its
/// peers (what it fetched from leaders falls short of what an old follower fetched by at
/// least what was tiered before the move), node 1 no longer holds the partition, and leadership went to the
/// first new replica. Then `kafka-leader-election` moves leadership back to the preferred
/// replica after a failover.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reassign_partitions_moves_a_replica_under_load_copying_only_the_untiered_tail() {
    let test = "reassign_partitions_moves_a_replica_under_load_copying_only_the_untiered_tail";
    if !require_kafka(test).unwrap() {
        return;
    }
    let opts = ClusterOptions {
        nodes: 4,
        store: SharedStore::Moto,
        // No automatic moves: the reassignment and the election below are the tools' doing.
        node: NodeOptions::default()
            .upload_interval("200ms")
            .min_segment_bytes(65536)
            .args([
                "--leader-rebalance-interval",
                "0s",
                "--partition-balancing",
                "false",
            ]),
        ..ClusterOptions::default()
    };
    let Some(mut c) = TestCluster::start_or_skip(test, opts).unwrap() else {
        return;
    };
    assert_eq!(c.wait_brokers(4).unwrap(), BTreeSet::from([1, 2, 3, 4]));
    let topic = "moving";
    // Small segments (below what Kafka's own tools accept) so that the history tiers fast:
    // created through the protocol, on nodes 1, 2 and 3.
    let created = tierlog_tests::clients::admin(&c.bootstrap())
        .unwrap()
        .create_topics(
            [
                &NewTopic::new(topic, 1, TopicReplication::Variable(&[&[1, 2, 3]]))
                    .set("segment.bytes", "65536")
                    .set("local.retention.ms", "0")
                    .set("min.insync.replicas", "2"),
            ],
            &tierlog_tests::clients::admin_options(),
        )
        .await
        .unwrap();
    assert!(created.iter().all(Result::is_ok), "{created:?}");
    c.wait_isr_full(topic, 0).unwrap();
    let load = BackgroundProducer::start(&c.bootstrap(), topic, LoadOptions::default()).unwrap();
    // Enough history that most of it is tiered (and gone from the leader's disk).
    let leader = c.node(1);
    wait_for(
        "300 KB of moving-0 tiered",
        Duration::from_secs(120),
        Duration::from_millis(200),
        || {
            let tiered = gauge(leader, "tierlog_partition_remote_bytes", topic, 0)?;
            Ok(if tiered >= 300_000.0 {
                Poll::Ready(())
            } else {
                Poll::Pending(format!("{tiered} bytes tiered"))
            })
        },
    )
    .unwrap();
    let tiered_before = gauge(leader, "tierlog_partition_remote_bytes", topic, 0).unwrap();

    // --generate: a plan over nodes 2, 3 and 4 (printed, not applied).
    let dir = tempfile::tempdir().unwrap();
    let topics_json = dir.path().join("topics.json");
    std::fs::write(
        &topics_json,
        format!(r#"{{"version":1,"topics":[{{"topic":"{topic}"}}]}}"#),
    )
    .unwrap();
    let generated = tool(
        &c,
        class::REASSIGN_PARTITIONS,
        &[
            "--generate",
            "--topics-to-move-json-file",
            topics_json.to_str().unwrap(),
            "--broker-list",
            "2,3,4",
        ],
    )
    .unwrap();
    assert!(
        generated
            .stdout
            .contains("Proposed partition reassignment configuration")
            && generated.stdout.contains(r#""replicas":[1,2,3]"#),
        "{}",
        generated.stdout
    );

    let plan = dir.path().join("plan.json");
    std::fs::write(
        &plan,
        format!(r#"{{"version":1,"partitions":[{{"topic":"{topic}","partition":0,"replicas":[2,3,4]}}]}}"#),
    )
    .unwrap();
    let plan = plan.to_str().unwrap();
    // The move itself runs beside a slower load (below the throttle, or the new replica could
    // never catch up, as in Kafka), with the replication throttle at THROTTLE bytes/s.
    let fast = load.stop().unwrap();
    assert!(fast.failures.is_empty(), "{:?}", fast.failures);
    let load = BackgroundProducer::start(
        &c.bootstrap(),
        topic,
        LoadOptions {
            interval: Some(Duration::from_millis(20)),
            ..LoadOptions::default()
        },
    )
    .unwrap();
    let throttle = THROTTLE.to_string();
    let executed = tool(
        &c,
        class::REASSIGN_PARTITIONS,
        &[
            "--execute",
            "--reassignment-json-file",
            plan,
            "--throttle",
            &throttle,
        ],
    )
    .unwrap();
    assert!(
        executed
            .stdout
            .contains("Successfully started partition reassignment"),
        "{}",
        executed.stdout
    );
    // What node 4 has fetched, sampled until the move completes.
    let mut samples: Vec<(Instant, f64)> = Vec::new();
    let moved = c
        .wait_view("moving-0 on nodes 2, 3, 4, all in sync", topic, |v| {
            let copied = gauge(c.node(4), "tierlog_partition_replicated_bytes", topic, 0).ok()?;
            samples.push((Instant::now(), copied));
            let p = v.partition(0)?;
            (p.replicas == vec![2, 3, 4] && p.isr_full()).then(|| p.clone())
        })
        .unwrap();
    assert_eq!(
        moved.leader,
        Some(2),
        "leadership moves to the first new replica"
    );
    assert_throttled(&samples);
    // --verify reports the move complete and removes the throttle configs it set.
    let verified = tool(
        &c,
        class::REASSIGN_PARTITIONS,
        &["--verify", "--reassignment-json-file", plan],
    )
    .unwrap();
    assert!(
        verified
            .stdout
            .contains(&format!("Reassignment of partition {topic}-0 is completed"))
            && verified.stdout.contains("Clearing broker-level throttles"),
        "{}",
        verified.stdout
    );
    let listed = tool(&c, class::REASSIGN_PARTITIONS, &["--list"]).unwrap();
    assert!(
        !listed.stdout.contains(&format!("{topic}-0")),
        "nothing in progress any more: {}",
        listed.stdout
    );

    // The load ran across the move: every acknowledged record is there.
    let since = Instant::now();
    load.wait_acked_since(since, 200, Duration::from_secs(60))
        .unwrap();
    let deliveries = load.stop().unwrap();
    assert!(deliveries.failures.is_empty(), "{:?}", deliveries.failures);
    let log = read_partition(&c.bootstrap(), topic, 0).unwrap();
    check_acked(&log, 0, &fast.acks).unwrap();
    check_acked(&log, 0, &deliveries.acks).unwrap();

    // Node 4 copied the un-tiered tail only; node 3 (a follower from the start, of node 1 then
    // of node 2) everything. Both may fetch a few batches twice (a follower truncates to the
    // new leader's epoch boundary when leadership moves), hence the slack.
    c.wait_isr_full(topic, 0).unwrap();
    let copied_by_new = gauge(c.node(4), "tierlog_partition_replicated_bytes", topic, 0).unwrap();
    let copied_by_old = gauge(c.node(3), "tierlog_partition_replicated_bytes", topic, 0).unwrap();
    assert!(copied_by_new > 0.0, "node 4 fetched nothing");
    assert!(
        copied_by_new + tiered_before <= copied_by_old + 16_384.0,
        "node 4 fetched {copied_by_new} bytes from its leaders, node 3 {copied_by_old}, \
         {tiered_before} were tiered before the move"
    );
    // Node 1 closed its replica and deleted its files.
    let logs = c.node(1).data_dir().join("logs");
    let leftover: Vec<_> = std::fs::read_dir(&logs)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("moving-"))
        .flat_map(|e| std::fs::read_dir(e.path()).unwrap().flatten())
        .map(|e| e.path())
        .collect();
    assert!(leftover.is_empty(), "node 1 still holds {leftover:?}");

    // kafka-leader-election: after node 2 restarts, another node leads; a preferred election
    // moves leadership back to node 2.
    c.kill9(2).unwrap();
    c.wait_leader_not(topic, 0, 2).unwrap();
    c.restart(2).unwrap();
    c.wait_isr_full(topic, 0).unwrap();
    let elected = tool(
        &c,
        class::LEADER_ELECTION,
        &["--election-type", "preferred", "--all-topic-partitions"],
    )
    .unwrap();
    assert!(
        elected
            .stdout
            .contains("Successfully completed leader election")
            || elected.stdout.contains("Valid replica already elected"),
        "{}",
        elected.stdout
    );
    c.wait_leader_is(topic, 0, 2).unwrap();
}

/// One side of the replication throttle alone, set with `kafka-configs` as an operator would:
/// the `<side>.replication.throttled.rate` cluster-wide and the topic's
/// `<side>.replication.throttled.replicas` (the leader's replicas for the leader's side, the
/// new replica for the follower's). A replica added by `kafka-reassign-partitions` (no
/// `--throttle`) copies 150 KB at no more than the rate, then joins the ISR.
async fn one_side_of_the_throttle_bounds_a_new_replicas_copy(
    test: &str,
    side: &str,
    replicas: &str,
) {
    if !require_kafka(test).unwrap() {
        return;
    }
    let opts = ClusterOptions {
        nodes: 4,
        node: NodeOptions::default().args(["--partition-balancing", "false"]),
        ..ClusterOptions::default()
    };
    let Some(c) = TestCluster::start_or_skip(test, opts).unwrap() else {
        return;
    };
    c.wait_brokers(4).unwrap();
    let topic = "throttled";
    let created = tierlog_tests::clients::admin(&c.bootstrap())
        .unwrap()
        .create_topics(
            [&NewTopic::new(
                topic,
                1,
                TopicReplication::Variable(&[&[1, 2, 3]]),
            )],
            &tierlog_tests::clients::admin_options(),
        )
        .await
        .unwrap();
    assert!(created.iter().all(Result::is_ok), "{created:?}");
    c.wait_isr_full(topic, 0).unwrap();
    let data = tierlog_tests::workload::records(1500, topic);
    // Small batches: a throttled read still sends one whole batch, as Kafka's does, so the
    // bound below holds to within a batch.
    let producer = tierlog_tests::clients::producer(
        &c.bootstrap(),
        &[
            ("queue.buffering.max.messages", "100000"),
            ("batch.size", "8192"),
        ],
    )
    .unwrap();
    tierlog_tests::workload::produce_all(&producer, topic, &data)
        .await
        .unwrap();
    let rate = format!("{side}.replication.throttled.rate={THROTTLE}");
    tool(
        &c,
        class::CONFIGS,
        &[
            "--alter",
            "--entity-type",
            "brokers",
            "--entity-default",
            "--add-config",
            &rate,
        ],
    )
    .unwrap();
    let list = format!("{side}.replication.throttled.replicas=[{replicas}]");
    tool(
        &c,
        class::CONFIGS,
        &[
            "--alter",
            "--entity-type",
            "topics",
            "--entity-name",
            topic,
            "--add-config",
            &list,
        ],
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("plan.json");
    std::fs::write(
        &plan,
        format!(r#"{{"version":1,"partitions":[{{"topic":"{topic}","partition":0,"replicas":[1,2,3,4]}}]}}"#),
    )
    .unwrap();
    tool(
        &c,
        class::REASSIGN_PARTITIONS,
        &[
            "--execute",
            "--reassignment-json-file",
            plan.to_str().unwrap(),
        ],
    )
    .unwrap();
    let mut samples: Vec<(Instant, f64)> = Vec::new();
    c.wait_view("node 4 in the ISR", topic, |v| {
        let copied = gauge(c.node(4), "tierlog_partition_replicated_bytes", topic, 0).ok()?;
        samples.push((Instant::now(), copied));
        let p = v.partition(0)?;
        (p.replicas.len() == 4 && p.isr_full()).then_some(())
    })
    .unwrap();
    let copied = samples.last().map_or(0.0, |s| s.1);
    assert!(copied > 3.0 * THROTTLE as f64, "only {copied} bytes copied");
    assert_throttled(&samples);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leaders_replication_throttle_bounds_a_new_replicas_copy() {
    let test = "the_leaders_replication_throttle_bounds_a_new_replicas_copy";
    one_side_of_the_throttle_bounds_a_new_replicas_copy(test, "leader", "0:1,0:2,0:3").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_followers_replication_throttle_bounds_a_new_replicas_copy() {
    let test = "the_followers_replication_throttle_bounds_a_new_replicas_copy";
    one_side_of_the_throttle_bounds_a_new_replicas_copy(test, "follower", "0:4").await;
}
