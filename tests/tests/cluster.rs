//! Cluster mode end to end: three real `tierlog serve` processes on one real etcd and one
//! shared object store ([`TestCluster`]), driven by librdkafka.
//!
//! What is checked is what a client sees: brokers, leaders, replicas and ISRs in Metadata,
//! acknowledgements, and the log read back. The faults are real: kill -9, SIGSTOP/SIGCONT past
//! the lease TTL, a node restarted on an empty disk, and etcd killed for longer than the lease
//! TTL. The durability checks all have one shape: a producer records the offset of every
//! acknowledged record, the survivors are made to serve the partition, and every acknowledged
//! record must be at exactly the offset it was acknowledged at, with offsets dense from 0.
//! Waits poll Metadata with a deadline; the only fixed sleeps are the length of a SIGSTOP and
//! of an etcd outage, which are the scenarios themselves.
//!
//! Outside CI a missing etcd (or moto, for the test on S3) skips these tests loudly; with `CI`
//! set it fails them.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use kafka_protocol::messages::FindCoordinatorRequest;
use kafka_protocol::protocol::StrBytes;
use rdkafka::Offset;
use rdkafka::consumer::{CommitMode, Consumer};
use tierlog_tests::clients::{assigned_consumer, consume_exactly, producer};
use tierlog_tests::cluster::{
    BackgroundProducer, ClusterOptions, LoadOptions, SharedStore, TestCluster, check_acked,
    read_partition,
};
use tierlog_tests::groups::{committed, offsets_by_partition, poll_until, subscribed};
use tierlog_tests::wait::{Poll, wait_for};
use tierlog_tests::wire::Conn;
use tierlog_tests::workload::{check_consumed, consume_timeout, produce_all, records};

/// Lease TTL of every node (the harness default); a SIGSTOP lasts this plus [`STOP_EXTRA`].
const LEASE_TTL: Duration = Duration::from_secs(2);
const STOP_EXTRA: Duration = Duration::from_secs(3);
/// Bound on "the producer makes progress again" after a fault.
const PROGRESS: Duration = Duration::from_secs(60);

/// A three-node cluster on `store` with `topic` created (replication factor 3, `configs`) and
/// every ISR full; `None` when the test skips.
async fn cluster_with_topic(
    test: &str,
    store: SharedStore,
    topic: &str,
    partitions: usize,
    configs: &[(&str, &str)],
) -> Option<TestCluster> {
    let opts = ClusterOptions {
        store,
        ..ClusterOptions::default()
    };
    let c = TestCluster::start_or_skip(test, opts).unwrap()?;
    assert_eq!(c.wait_brokers(3).unwrap(), BTreeSet::from([1, 2, 3]));
    c.create_topic(topic, i32::try_from(partitions).unwrap(), 3, configs)
        .await
        .unwrap();
    c.wait_topic_full(topic, partitions, 3).unwrap();
    Some(c)
}

/// A [`BackgroundProducer`] on partition 0 of `topic` that has had 100 records acknowledged.
fn running_load(c: &TestCluster, topic: &str) -> BackgroundProducer {
    let load = BackgroundProducer::start(&c.bootstrap(), topic, LoadOptions::default()).unwrap();
    load.wait_acked_since(Instant::now(), 100, PROGRESS)
        .unwrap();
    load
}

/// A producer that tolerates enqueueing `n` records at once.
fn bulk_producer(bootstrap: &str) -> rdkafka::producer::FutureProducer {
    producer(
        bootstrap,
        &[
            ("queue.buffering.max.messages", "1000000"),
            ("message.timeout.ms", "60000"),
        ],
    )
    .unwrap()
}

/// Six partitions on three nodes: every partition has three replicas, all in sync, and each
/// node leads two. A node killed with -9 disappears from the brokers, leads nothing and leaves
/// every ISR; restarted, it is a broker again and every ISR is full again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_lists_live_nodes_and_spreads_leaders() {
    let topic = "spread";
    let test = "metadata_lists_live_nodes_and_spreads_leaders";
    let Some(mut c) = cluster_with_topic(test, SharedStore::File, topic, 6, &[]).await else {
        return;
    };
    let view = c.metadata(topic).unwrap();
    for (p, part) in &view.partitions {
        let replicas: BTreeSet<u32> = part.replicas.iter().copied().collect();
        assert_eq!(
            replicas,
            BTreeSet::from([1, 2, 3]),
            "partition {p}: {part:?}"
        );
        assert_eq!(part.isr.len(), 3, "partition {p}: {part:?}");
    }
    let counts = view.leader_counts();
    assert_eq!(
        counts.values().copied().collect::<Vec<_>>(),
        vec![2, 2, 2],
        "leaders are not spread: {view:?}"
    );

    let victim = 2;
    c.kill9(victim).unwrap();
    let after_kill = c.wait_node_gone(topic, victim).unwrap();
    assert_eq!(after_kill.brokers, BTreeSet::from([1, 3]), "{after_kill:?}");
    for (p, part) in &after_kill.partitions {
        assert!(
            part.leader.is_some_and(|l| l != victim),
            "partition {p}: {part:?}"
        );
    }

    c.restart(victim).unwrap();
    assert_eq!(c.wait_brokers(3).unwrap(), BTreeSet::from([1, 2, 3]));
    let healed = c.wait_topic_full(topic, 6, 3).unwrap();
    assert!(
        healed.partitions.values().all(|p| p.isr.contains(&victim)),
        "{healed:?}"
    );
}

/// A continuous acks=all producer (min.insync.replicas=2) while the leader is killed with -9
/// three times, each time restarted and caught up: acknowledgements resume after every kill,
/// and at the end every acknowledged record is at the offset it was acknowledged at.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_all_survives_repeated_leader_kill9() {
    let topic = "kill-leader";
    let test = "acks_all_survives_repeated_leader_kill9";
    let configs = [("min.insync.replicas", "2")];
    let Some(mut c) = cluster_with_topic(test, SharedStore::File, topic, 1, &configs).await else {
        return;
    };
    let load = running_load(&c, topic);

    for round in 1..=3 {
        let leader = c.wait_leader(topic, 0).unwrap();
        let killed_at = Instant::now();
        c.kill9(leader).unwrap();
        let new_leader = c.wait_leader_not(topic, 0, leader).unwrap();
        load.wait_acked_since(killed_at, 50, PROGRESS)
            .unwrap_or_else(|e| panic!("round {round}: no progress after killing {leader}: {e:#}"));
        eprintln!(
            "round {round}: killed leader {leader}; node {new_leader} leads; acks resumed after \
             {:?}",
            killed_at.elapsed()
        );
        c.restart(leader).unwrap();
        let healed = c.wait_isr_full(topic, 0).unwrap();
        assert!(healed.isr.contains(&leader), "round {round}: {healed:?}");
    }

    let deliveries = load.stop().unwrap();
    eprintln!(
        "{} acknowledged, {} failed: {:?}",
        deliveries.acks.len(),
        deliveries.failures.len(),
        deliveries.failures.iter().take(5).collect::<Vec<_>>()
    );
    let log = read_partition(&c.bootstrap(), topic, 0).unwrap();
    check_acked(&log, 0, &deliveries.acks).unwrap();
    assert!(log.len() >= deliveries.acks.len());
}

/// The leader is frozen (SIGSTOP) past its lease while an acks=all producer runs: another node
/// takes over and acknowledgements continue. Resumed, the old leader rejoins as a follower and
/// gets back into the ISR. Then the other two nodes are killed, so the resumed node — the only
/// live ISR member — must lead, and its log must hold every acknowledged record at its
/// acknowledged offset: whatever it had accepted while deposed was truncated, not acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deposed_leader_after_sigstop_acks_nothing_and_converges() {
    let topic = "deposed";
    let test = "deposed_leader_after_sigstop_acks_nothing_and_converges";
    let configs = [];
    let Some(mut c) = cluster_with_topic(test, SharedStore::File, topic, 1, &configs).await else {
        return;
    };
    let load = running_load(&c, topic);

    let old = c.wait_leader(topic, 0).unwrap();
    let stopped_at = Instant::now();
    c.sigstop(old).unwrap();
    let new_leader = c.wait_leader_not(topic, 0, old).unwrap();
    load.wait_acked_since(Instant::now(), 50, PROGRESS)
        .unwrap_or_else(|e| panic!("no progress under new leader {new_leader}: {e:#}"));
    // The scenario: frozen for the lease TTL plus a few seconds, whatever the election took.
    if let Some(rest) = (LEASE_TTL + STOP_EXTRA).checked_sub(stopped_at.elapsed()) {
        std::thread::sleep(rest);
    }
    c.sigcont(old).unwrap();
    eprintln!(
        "node {old} frozen for {:?}; node {new_leader} leads",
        stopped_at.elapsed()
    );

    c.wait_in_isr(topic, 0, old).unwrap();
    load.wait_acked_since(Instant::now(), 50, PROGRESS).unwrap();
    let deliveries = load.stop().unwrap();
    eprintln!(
        "{} acknowledged, {} failed",
        deliveries.acks.len(),
        deliveries.failures.len()
    );

    // The ISR must still hold the resumed node when the others die.
    c.wait_in_isr(topic, 0, old).unwrap();
    for id in c.ids().into_iter().filter(|&id| id != old) {
        c.kill9(id).unwrap();
    }
    // Alone in the ISR, its high watermark is its log end: everything it has is readable.
    c.wait_sole_leader(topic, 0, old).unwrap();
    let log = read_partition(&c.node(old).bootstrap(), topic, 0).unwrap();
    check_acked(&log, 0, &deliveries.acks).unwrap();
}

/// Records acknowledged with acks=all survive losing a node's disk: the leader is killed, its
/// data directory wiped and the node restarted with the same id; it catches up and rejoins the
/// ISR, and once the other two are killed it leads and serves every record. On S3 (moto).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wiped_node_rejoins_and_serves() {
    let topic = "wiped";
    let test = "wiped_node_rejoins_and_serves";
    let Some(mut c) = cluster_with_topic(test, SharedStore::Moto, topic, 1, &[]).await else {
        return;
    };
    let n = 3000;
    let data = records(n, "wiped");
    let acks = produce_all(&bulk_producer(&c.bootstrap()), topic, &data)
        .await
        .unwrap();

    let x = c.wait_leader(topic, 0).unwrap();
    c.wipe_and_restart(x).unwrap();
    c.wait_in_isr(topic, 0, x).unwrap();
    c.wait_isr_full(topic, 0).unwrap();
    for id in c.ids().into_iter().filter(|&id| id != x) {
        c.kill9(id).unwrap();
    }
    c.wait_sole_leader(topic, 0, x).unwrap();
    let consumer =
        assigned_consumer(&c.node(x).bootstrap(), topic, [0], Offset::Beginning).unwrap();
    let consumed = consume_exactly(&consumer, n, consume_timeout(n)).unwrap();
    check_consumed(&consumed, &data, &acks).unwrap();
}

/// Ten thousand records over three partitions replicated three ways come back complete and in
/// order: keys, values, headers and offsets as acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follower_replicates_and_consumers_read_from_leader() {
    let topic = "replicated";
    let test = "follower_replicates_and_consumers_read_from_leader";
    let Some(c) = cluster_with_topic(test, SharedStore::File, topic, 3, &[]).await else {
        return;
    };
    let n = 10_000;
    let data = records(n, "replicated");
    let acks = produce_all(&bulk_producer(&c.bootstrap()), topic, &data)
        .await
        .unwrap();
    // Followers kept up: every ISR is still full after the load.
    c.wait_topic_full(topic, 3, 3).unwrap();
    let consumer = assigned_consumer(&c.bootstrap(), topic, 0..3, Offset::Beginning).unwrap();
    let consumed =
        consume_exactly(&consumer, n, consume_timeout(n) + Duration::from_secs(30)).unwrap();
    check_consumed(&consumed, &data, &acks).unwrap();
}

/// How long etcd stays down in [`etcd_outage_loses_nothing_and_recovers`]: past the lease TTL,
/// so every node's lease deadline passes while etcd cannot be reached.
const ETCD_OUTAGE: Duration = Duration::from_secs(4);

/// etcd is killed (SIGKILL) for longer than the lease TTL while an acks=all producer runs
/// (min.insync.replicas=2). Every node fences itself once its lease deadline passes, so
/// nothing is acknowledged while etcd is away and the producer sees only retriable errors,
/// which it retries. Restarted on the same data directory and port, etcd lets the cluster come
/// back: acknowledgements resume, all three brokers return with a full ISR, no record fails for
/// good, every acknowledged record is at exactly its acknowledged offset (offsets dense from
/// 0), and no offset was acknowledged for two records, nor a record at two offsets: no split
/// brain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_outage_loses_nothing_and_recovers() {
    let topic = "etcd-outage";
    let test = "etcd_outage_loses_nothing_and_recovers";
    let configs = [("min.insync.replicas", "2")];
    let Some(mut c) = cluster_with_topic(test, SharedStore::File, topic, 1, &configs).await else {
        return;
    };
    let load = running_load(&c, topic);

    let etcd_pid = c.etcd().pid();
    let killed_at = Instant::now();
    c.etcd_mut().kill().unwrap();
    assert_eq!(c.etcd().pid(), None, "etcd {etcd_pid:?} still running");
    // The scenario: etcd is unreachable for the whole outage.
    std::thread::sleep(ETCD_OUTAGE);
    // Every lease deadline has passed by now (a second of slack for delivery reports that were
    // already on their way): nothing may have been acknowledged since.
    let fenced_from = killed_at + LEASE_TTL + Duration::from_secs(1);
    let acked_while_fenced = load.acked_since(fenced_from);
    let during = load.snapshot();
    let restarting_at = Instant::now();
    c.etcd_mut().restart().unwrap();
    let restarted_at = Instant::now();
    eprintln!(
        "etcd (pid {etcd_pid:?}) killed for {:?}, then healthy {:?} after its restart as pid \
         {:?}; {} failures so far",
        restarting_at - killed_at,
        restarted_at - restarting_at,
        c.etcd().pid(),
        during.failures.len()
    );
    assert_eq!(
        acked_while_fenced,
        0,
        "records acknowledged more than the lease TTL after etcd died: {:?}",
        during
            .acks
            .iter()
            .filter(|a| a.acked_at >= fenced_from)
            .take(5)
            .map(|a| (a.seq, a.offset, a.acked_at - killed_at))
            .collect::<Vec<_>>()
    );

    load.wait_acked_since(restarted_at, 50, PROGRESS)
        .unwrap_or_else(|e| {
            panic!(
                "no progress after etcd came back: {e:#}\netcd log:\n{}",
                c.etcd().log_tail(30)
            )
        });
    assert_eq!(c.wait_brokers(3).unwrap(), BTreeSet::from([1, 2, 3]));
    let healed = c.wait_isr_full(topic, 0).unwrap();
    // Still making progress once settled.
    load.wait_acked_since(Instant::now(), 50, PROGRESS).unwrap();
    let deliveries = load.stop().unwrap();

    // How long acknowledgements stalled: the longest gap between consecutive ones.
    let mut acked_at: Vec<Instant> = deliveries.acks.iter().map(|a| a.acked_at).collect();
    acked_at.sort();
    let stall = acked_at
        .windows(2)
        .map(|w| w[1] - w[0])
        .max()
        .unwrap_or_default();
    let last_before = acked_at.iter().rev().find(|&&t| t < restarted_at);
    let first_after = acked_at.iter().find(|&&t| t >= restarted_at);
    eprintln!(
        "acks stalled for {stall:?} at most; last ack {:?} after the kill, first ack {:?} after \
         the restart; {} acknowledged, {} failed; healed: {healed:?}",
        last_before.map(|&t| t.saturating_duration_since(killed_at)),
        first_after.map(|&t| t - restarted_at),
        deliveries.acks.len(),
        deliveries.failures.len()
    );
    assert!(
        deliveries.failures.is_empty(),
        "records failed for good (errors during an etcd outage must be retriable): {:?}",
        deliveries.failures.iter().take(5).collect::<Vec<_>>()
    );

    // No split brain: each offset acknowledged for one record, each record at one offset.
    let mut by_offset = std::collections::BTreeMap::new();
    let mut seqs = BTreeSet::new();
    for a in &deliveries.acks {
        assert_eq!(a.partition, 0, "{a:?}");
        if let Some(other) = by_offset.insert(a.offset, a.seq) {
            panic!(
                "offset {} acknowledged for records {other} and {}",
                a.offset, a.seq
            );
        }
        assert!(seqs.insert(a.seq), "record {} acknowledged twice", a.seq);
    }

    let log = read_partition(&c.bootstrap(), topic, 0).unwrap();
    check_acked(&log, 0, &deliveries.acks).unwrap();
    assert!(log.len() >= deliveries.acks.len());
}

/// The node every live node names as `group`'s coordinator (FindCoordinator v3 to each): they
/// must agree.
fn agreed_coordinator(c: &TestCluster, group: &str) -> u32 {
    let answers: BTreeSet<i32> = c
        .live_ids()
        .iter()
        .map(|id| {
            let mut conn = Conn::connect(c.node(*id).kafka_addr()).unwrap();
            let req = FindCoordinatorRequest::default()
                .with_key(StrBytes::from_string(group.to_owned()))
                .with_key_type(0);
            let r = conn.request(&req, 3).unwrap();
            assert_eq!(r.error_code, 0, "FindCoordinator on node {id}");
            r.node_id.0
        })
        .collect();
    assert_eq!(
        answers.len(),
        1,
        "nodes disagree on the coordinator: {answers:?}"
    );
    u32::try_from(answers.into_iter().next().unwrap()).unwrap()
}

/// A consumer group's committed offsets survive the death of its coordinator: every node names
/// the same coordinator; a member consumes and commits half the records and leaves; the
/// coordinator is killed (-9); the survivors agree on a new one, which returns the same
/// committed offsets; and a new member of the group resumes exactly there, consuming the rest
/// and nothing twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_offsets_survive_a_coordinator_kill() {
    let topic = "group-failover";
    let test = "group_offsets_survive_a_coordinator_kill";
    let Some(mut c) = cluster_with_topic(test, SharedStore::File, topic, 3, &[]).await else {
        return;
    };
    let n = 600;
    let data = records(n, "group-failover");
    produce_all(&bulk_producer(&c.bootstrap()), topic, &data)
        .await
        .unwrap();
    let group = "g-failover";
    let partitions = [0, 1, 2];
    let coordinator = agreed_coordinator(&c, group);

    let first = subscribed(&c.bootstrap(), group, topic, &[]).unwrap();
    let seen = poll_until(&[&first], topic, PROGRESS, "half the records", |o| {
        o.record_count() >= n / 2
    })
    .unwrap();
    first.commit_consumer_state(CommitMode::Sync).unwrap();
    drop(first);
    let before = committed(c.node(coordinator).kafka_addr(), group, topic, &partitions).unwrap();
    let committed_total: i64 = before.values().map(|o| (*o).max(0)).sum();
    assert_eq!(
        committed_total,
        seen.record_count() as i64,
        "committed offsets {before:?} cover what was consumed"
    );

    c.kill9(coordinator).unwrap();
    c.wait_brokers(2).unwrap();
    let successor = agreed_coordinator(&c, group);
    assert_ne!(successor, coordinator);
    let after = committed(c.node(successor).kafka_addr(), group, topic, &partitions).unwrap();
    assert_eq!(after, before, "the new coordinator has the same offsets");

    let rest = n - seen.record_count();
    let second = subscribed(&c.bootstrap(), group, topic, &[]).unwrap();
    let resumed = poll_until(&[&second], topic, PROGRESS, "the rest", |o| {
        o.record_count() >= rest
    })
    .unwrap();
    assert_eq!(resumed.record_count(), rest, "nothing consumed twice");
    for (p, offsets) in offsets_by_partition(&resumed.records[0]) {
        let from = before.get(&p).copied().unwrap_or(-1).max(0);
        assert_eq!(
            offsets.first().copied(),
            Some(from),
            "partition {p} resumes at its commit"
        );
    }
}

/// After a failover and the old leader's return, the controller moves leadership back to each
/// partition's preferred replica (its first), so leaders spread evenly again
/// (`--leader-rebalance-interval`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leadership_returns_to_preferred_replicas() {
    let topic = "preferred";
    let node = tierlog_tests::node::NodeOptions {
        extra_args: vec!["--leader-rebalance-interval".into(), "1s".into()],
        ..Default::default()
    };
    let opts = ClusterOptions {
        node,
        ..ClusterOptions::default()
    };
    let Some(mut c) =
        TestCluster::start_or_skip("leadership_returns_to_preferred_replicas", opts).unwrap()
    else {
        return;
    };
    c.wait_brokers(3).unwrap();
    c.create_topic(topic, 3, 3, &[]).await.unwrap();
    let view = c.wait_topic_full(topic, 3, 3).unwrap();
    let preferred: Vec<u32> = (0..3)
        .map(|p| view.partition(p).unwrap().replicas[0])
        .collect();
    let victim = preferred[0];
    c.kill9(victim).unwrap();
    c.wait_leader_not(topic, 0, victim).unwrap();
    c.restart(victim).unwrap();
    c.wait_view(
        "every partition led by its preferred replica again",
        topic,
        |v| {
            (0..3)
                .all(|p| v.partition(p).and_then(|x| x.leader) == Some(preferred[p as usize]))
                .then_some(())
        },
    )
    .unwrap();
    let counts = c.metadata(topic).unwrap().leader_counts();
    assert_eq!(counts.values().copied().collect::<Vec<_>>(), vec![1, 1, 1]);
}

/// DeleteRecords on the leader reaches the followers (they take the leader's log start from
/// its fetch responses), so after the leader dies the new one starts the log at the same
/// offset: deleted records never come back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_records_stay_deleted_after_failover() {
    let topic = "delrec-failover";
    let test = "deleted_records_stay_deleted_after_failover";
    let Some(mut c) = cluster_with_topic(test, SharedStore::File, topic, 1, &[]).await else {
        return;
    };
    let n = 1000;
    produce_all(&bulk_producer(&c.bootstrap()), topic, &records(n, "delrec"))
        .await
        .unwrap();
    let cut = 400;
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Offset(cut))
        .unwrap();
    let result = tierlog_tests::clients::admin(&c.bootstrap())
        .unwrap()
        .delete_records(&tpl, &tierlog_tests::clients::admin_options())
        .await
        .unwrap();
    let elem = result.find_partition(topic, 0).unwrap();
    elem.error().unwrap();
    assert_eq!(elem.offset().to_raw(), Some(cut));

    let leader = c.wait_isr_full(topic, 0).unwrap().leader.unwrap();
    // Followers learn the new start with their next fetch; give them that long.
    let followers: Vec<u32> = c
        .live_ids()
        .into_iter()
        .filter(|id| *id != leader)
        .collect();
    c.kill9(leader).unwrap();
    let successor = c.wait_leader_not(topic, 0, leader).unwrap();
    assert!(followers.contains(&successor));
    let (low, high) = wait_for(
        "the new leader's watermarks",
        Duration::from_secs(30),
        Duration::from_millis(100),
        || {
            Ok(
                match tierlog_tests::clients::watermarks(&c.bootstrap(), topic, 0) {
                    Ok(w) => Poll::Ready(w),
                    Err(e) => Poll::Pending(format!("{e:#}")),
                },
            )
        },
    )
    .unwrap();
    assert_eq!(low, cut, "the new leader starts where DeleteRecords cut");
    assert_eq!(high, n as i64);
}

/// `--rack` (Kafka's `broker.rack`) is part of a node's registration: every node reports every
/// live node's rack in Metadata and DescribeCluster.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_reports_each_nodes_rack() {
    let node = tierlog_tests::node::NodeOptions {
        extra_args: vec!["--rack".into(), "zone-a".into()],
        ..Default::default()
    };
    let opts = ClusterOptions {
        node,
        ..ClusterOptions::default()
    };
    let Some(c) = TestCluster::start_or_skip("metadata_reports_each_nodes_rack", opts).unwrap()
    else {
        return;
    };
    c.wait_brokers(3).unwrap();
    for id in c.live_ids() {
        let mut conn = Conn::connect(c.node(id).kafka_addr()).unwrap();
        let metadata = conn
            .request(&kafka_protocol::messages::MetadataRequest::default(), 12)
            .unwrap();
        let racks: Vec<(i32, Option<String>)> = metadata
            .brokers
            .iter()
            .map(|b| (b.node_id.0, b.rack.as_ref().map(|r| r.to_string())))
            .collect();
        assert_eq!(
            racks,
            vec![
                (1, Some("zone-a".to_owned())),
                (2, Some("zone-a".to_owned())),
                (3, Some("zone-a".to_owned()))
            ],
            "Metadata from node {id}"
        );
        let cluster = conn
            .request(
                &kafka_protocol::messages::DescribeClusterRequest::default(),
                1,
            )
            .unwrap();
        assert!(
            cluster
                .brokers
                .iter()
                .all(|b| b.rack.as_ref().map(|r| r.as_str()) == Some("zone-a")),
            "DescribeCluster from node {id}"
        );
    }
}

/// A clean stop (SIGTERM) hands leadership over at once: the node gives up its roles and ends
/// its lease, so the controller moves its partitions without waiting for the lease to lapse.
/// The lease TTL here is 60 s and every wait is bounded by 20 s, so only the hand-over can pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_stop_hands_leadership_over_without_waiting_for_the_lease() {
    let topic = "handover";
    let opts = ClusterOptions {
        lease_ttl: "60s".to_owned(),
        settle_timeout: Duration::from_secs(20),
        ..ClusterOptions::default()
    };
    let Some(mut c) = TestCluster::start_or_skip(
        "a_clean_stop_hands_leadership_over_without_waiting_for_the_lease",
        opts,
    )
    .unwrap() else {
        return;
    };
    c.wait_brokers(3).unwrap();
    c.create_topic(topic, 3, 3, &[]).await.unwrap();
    c.wait_topic_full(topic, 3, 3).unwrap();
    let load = running_load(&c, topic);
    let leader = c.wait_isr_full(topic, 0).unwrap().leader.unwrap();
    let status = c.terminate(leader).unwrap();
    assert!(status.success(), "clean exit: {status:?}");
    c.wait_brokers(2).unwrap();
    c.wait_leader_not(topic, 0, leader).unwrap();
    load.wait_acked_since(Instant::now(), 50, Duration::from_secs(20))
        .unwrap();
    let deliveries = load.stop().unwrap();
    let log = read_partition(&c.bootstrap(), topic, 0).unwrap();
    check_acked(&log, 0, &deliveries.acks).unwrap();
}
