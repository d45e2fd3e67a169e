//! Partition count is not bounded by file descriptors (issue 16): one node creates a
//! 10,000-partition topic in one request, serves records on 1,000 of its partitions, holds few
//! descriptors while doing so, and recovers them all after a restart. A node refused a topic
//! larger than its limits keeps creating and serving others, with no descriptor leaked.
#![allow(clippy::unwrap_used)]

use anyhow::{Context, Result, ensure};
use kafka_protocol::messages::CreateTopicsRequest;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::records::Compression;
use tierlog_tests::cluster::{ClusterOptions, TestCluster};
use tierlog_tests::wire::{Conn, decode_records, encode_batch, topic_name};
use tierlog_tests::{NodeOptions, TestNode};

/// Creates `name` with `partitions` partitions in one request; the error code and message.
fn create(conn: &mut Conn, name: &str, partitions: i32) -> Result<(i16, Option<String>)> {
    create_rf(conn, name, partitions, 1)
}

fn create_rf(
    conn: &mut Conn,
    name: &str,
    partitions: i32,
    rf: i16,
) -> Result<(i16, Option<String>)> {
    let request = CreateTopicsRequest::default()
        .with_timeout_ms(600_000)
        .with_topics(vec![
            CreatableTopic::default()
                .with_name(topic_name(name))
                .with_num_partitions(partitions)
                .with_replication_factor(rf),
        ]);
    let response = conn.request(&request, 7)?;
    let t = response
        .topics
        .first()
        .context("no topic in the response")?;
    Ok((
        t.error_code,
        t.error_message.as_ref().map(|m| m.to_string()),
    ))
}

/// Descriptors the process holds now.
fn descriptors(pid: u32) -> Result<usize> {
    Ok(std::fs::read_dir(format!("/proc/{pid}/fd"))?.count())
}

/// `n` distinct partitions out of `of`, spread pseudo-randomly (a fixed sequence: failures
/// reproduce).
fn sample(n: usize, of: i32) -> Vec<i32> {
    let mut chosen = std::collections::BTreeSet::new();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    while chosen.len() < n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chosen.insert((x % of as u64) as i32);
    }
    chosen.into_iter().collect()
}

fn produce_one(conn: &mut Conn, topic: &str, partition: i32) -> Result<()> {
    let value = format!("p{partition}");
    let records = encode_batch(&[(None, Some(value.as_bytes()))], Compression::None, 1)?;
    let r = conn.produce(topic, partition, records, 1)?;
    ensure!(
        r.error_code == 0 && r.base_offset == 0,
        "producing to {topic}-{partition}: error {} at {}",
        r.error_code,
        r.base_offset
    );
    Ok(())
}

fn read_one(conn: &mut Conn, topic: &str, partition: i32) -> Result<()> {
    let data = conn.fetch(topic, partition, 0, 1000, 1)?;
    ensure!(
        data.error_code == 0,
        "fetching {topic}-{partition}: {}",
        data.error_code
    );
    let records = decode_records(&data.records.unwrap_or_default())?;
    ensure!(
        records.len() == 1,
        "{topic}-{partition}: {} records",
        records.len()
    );
    let value = records[0].value.clone().unwrap_or_default();
    ensure!(
        value.as_ref() == format!("p{partition}").as_bytes(),
        "{topic}-{partition} holds {value:?}"
    );
    Ok(())
}

#[test]
fn ten_thousand_partitions_on_one_node_serve_and_recover() -> Result<()> {
    const PARTITIONS: i32 = 10_000;
    let mut node = TestNode::start(NodeOptions::default())?;
    let mut conn = Conn::connect(node.kafka_addr())?;
    let (code, message) = create(&mut conn, "wide", PARTITIONS)?;
    ensure!(code == 0, "creating 10,000 partitions: {code} {message:?}");
    let chosen = sample(1000, PARTITIONS);
    for &p in &chosen {
        produce_one(&mut conn, "wide", p)?;
    }
    for &p in &chosen {
        read_one(&mut conn, "wide", p)?;
    }
    // Partitions at rest hold no descriptor: the node's count is far below one per
    // partition (the segment-file pool, sockets, the metadata store, the cache).
    let pid = node.pid().context("node pid")?;
    let open = descriptors(pid)?;
    ensure!(
        open < 2_000,
        "{open} descriptors open for {PARTITIONS} partitions"
    );
    // The pool holds the files of the partitions written and read, no more.
    let metrics = node.metrics()?;
    let pooled = metrics
        .get("tierlog_segment_files_open", &[])
        .context("no tierlog_segment_files_open")?;
    ensure!(
        (1.0..=1000.0).contains(&pooled),
        "{pooled} segment files open"
    );

    node.restart()?;
    let mut conn = Conn::connect(node.kafka_addr())?;
    for &p in &chosen {
        read_one(&mut conn, "wide", p)
            .with_context(|| format!("after the restart:\n{}", node.log_tails()))?;
    }
    // Every partition is open and writable again, not only those that held data.
    for p in [0, PARTITIONS / 2, PARTITIONS - 1] {
        if !chosen.contains(&p) {
            produce_one(&mut conn, "wide", p)?;
        }
    }
    let log = node.stderr_text();
    let per_partition = log.matches("opening partition log").count();
    ensure!(
        per_partition == 0,
        "{per_partition} per-partition lines at INFO in the log"
    );
    Ok(())
}

#[test]
fn a_refused_creation_leaves_the_node_creating_and_serving() -> Result<()> {
    // 4,096 descriptors (set right after start), a pool of 1,024 segment files, and limits
    // below what the big topics ask for.
    let node = TestNode::start(NodeOptions::default().args([
        "--max-partitions-per-node",
        "3000",
        "--max-create-partitions",
        "5000",
        "--max-open-segment-files",
        "1024",
    ]))?;
    let pid = node.pid().context("node pid")?;
    rlimit::prlimit(
        pid as i32,
        rlimit::Resource::NOFILE,
        Some((4096, 4096)),
        None,
    )
    .context("lowering the node's open-file limit")?;
    let mut conn = Conn::connect(node.kafka_addr())?;
    let (code, _) = create(&mut conn, "small-first", 2)?;
    ensure!(code == 0, "creating a small topic: {code}");
    produce_one(&mut conn, "small-first", 1)?;
    let before = descriptors(pid)?;

    // INVALID_PARTITIONS (37), with a message naming the limit.
    let (code, message) = create(&mut conn, "too-many-at-once", 6000)?;
    ensure!(code == 37, "6,000 partitions at once: {code} {message:?}");
    ensure!(
        message
            .as_deref()
            .is_some_and(|m| m.contains("max_create_partitions")),
        "{message:?}"
    );
    let (code, message) = create(&mut conn, "too-many-here", 4000)?;
    ensure!(
        code == 37,
        "4,000 partitions on a 3,000 node: {code} {message:?}"
    );
    ensure!(
        message
            .as_deref()
            .is_some_and(|m| m.contains("max_partitions_per_node")),
        "{message:?}"
    );
    // Nothing of them is left: not in the metadata, not on disk.
    let topics = conn.metadata_topic("too-many-here", false)?;
    ensure!(
        topics.error_code == 3,
        "refused topic exists: {}",
        topics.error_code
    );
    let dirs: Vec<String> = std::fs::read_dir(node.data_dir().join("logs"))?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<std::io::Result<_>>()?;
    ensure!(
        dirs.iter().all(|d| !d.starts_with("too-many")),
        "directories left: {dirs:?}"
    );

    // Within the limits, 2,500 partitions fit in 4,096 descriptors (each used to hold five).
    let (code, message) = create(&mut conn, "fits", 2500)?;
    ensure!(code == 0, "2,500 partitions: {code} {message:?}");
    for p in sample(200, 2500) {
        produce_one(&mut conn, "fits", p)?;
        read_one(&mut conn, "fits", p)?;
    }
    let (code, _) = create(&mut conn, "small-after", 3)?;
    ensure!(code == 0, "creating a small topic afterwards: {code}");
    produce_one(&mut conn, "small-after", 2)?;
    read_one(&mut conn, "small-after", 2)?;
    read_one(&mut conn, "small-first", 1)?;
    let after = descriptors(pid)?;
    // The pool holds at most its 1,024 files; nothing else grows with partitions.
    ensure!(
        after <= before + 1100,
        "{after} descriptors after, {before} before"
    );
    Ok(())
}

/// A creation that runs out of descriptors part-way is rolled back: no topic, no leaked
/// descriptor, and once descriptors are back the same name can be created and served.
#[test]
fn a_creation_out_of_descriptors_is_rolled_back() -> Result<()> {
    let node = TestNode::start(NodeOptions::default())?;
    let pid = node.pid().context("node pid")?;
    let mut conn = Conn::connect(node.kafka_addr())?;
    let (code, _) = create(&mut conn, "grows", 2)?;
    ensure!(code == 0, "creating a small topic: {code}");
    produce_one(&mut conn, "grows", 1)?;
    let before = descriptors(pid)?;
    let (mut soft, mut hard) = (0u64, 0u64);
    rlimit::prlimit(
        pid as i32,
        rlimit::Resource::NOFILE,
        None,
        Some((&mut soft, &mut hard)),
    )?;
    let starve = |extra: u64| {
        let limit = before as u64 + extra;
        rlimit::prlimit(
            pid as i32,
            rlimit::Resource::NOFILE,
            Some((limit, hard)),
            None,
        )
    };
    // A few descriptors to spare: each partition's open needs a few briefly.
    starve(2)?;
    let (code, message) = create(&mut conn, "starved", 200)?;
    let (add_code, add_message) = {
        let request = kafka_protocol::messages::CreatePartitionsRequest::default()
            .with_timeout_ms(60_000)
            .with_topics(vec![
                kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic::default()
                    .with_name(topic_name("grows"))
                    .with_count(202)
                    .with_assignments(None),
            ]);
        let r = conn.request(&request, 1)?;
        let t = r.results.first().context("no result")?;
        (
            t.error_code,
            t.error_message.as_ref().map(|m| m.to_string()),
        )
    };
    rlimit::prlimit(
        pid as i32,
        rlimit::Resource::NOFILE,
        Some((soft, hard)),
        None,
    )?;
    ensure!(
        code != 0,
        "200 partitions with 2 spare descriptors were created"
    );
    // KAFKA_STORAGE_ERROR (56), saying why.
    ensure!(code == 56, "creating: {code} {message:?}");
    ensure!(add_code == 56, "adding: {add_code} {add_message:?}");
    ensure!(
        message
            .as_deref()
            .is_some_and(|m| m.contains("Too many open files")),
        "{message:?}"
    );
    let after = descriptors(pid)?;
    ensure!(
        after <= before + 2,
        "{after} descriptors after the failed creations, {before} before"
    );
    // Nothing is left of them: the names are free and the old count stands.
    let starved = conn.metadata_topic("starved", false)?;
    ensure!(
        starved.error_code == 3,
        "the failed topic exists: {}",
        starved.error_code
    );
    let grows = conn.metadata_topic("grows", false)?;
    ensure!(
        grows.partitions.len() == 2,
        "{} partitions",
        grows.partitions.len()
    );
    let (code, message) = create(&mut conn, "starved", 200)?;
    ensure!(code == 0, "creating it again: {code} {message:?}");
    produce_one(&mut conn, "starved", 199)?;
    read_one(&mut conn, "starved", 199)?;
    read_one(&mut conn, "grows", 1)?;
    Ok(())
}

/// Three nodes on etcd, many partitions with three replicas each: created, a node killed
/// (every partition it led gets another leader and it leaves every ISR), the node restarted
/// (it rejoins every ISR). `TIERLOG_TEST_CLUSTER_PARTITIONS` sets the count (default 3,000;
/// the 30,000 is measured with the release build, see `tests/bench/README.md`).
#[test]
fn many_partitions_fail_over_and_rejoin_in_a_three_node_cluster() -> Result<()> {
    let partitions: i32 = std::env::var("TIERLOG_TEST_CLUSTER_PARTITIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3_000);
    let Some(mut cluster) = TestCluster::start_or_skip(
        "many_partitions_fail_over_and_rejoin_in_a_three_node_cluster",
        ClusterOptions {
            settle_timeout: std::time::Duration::from_secs(300),
            ..ClusterOptions::default()
        },
    )?
    else {
        return Ok(());
    };
    let t0 = std::time::Instant::now();
    let phase = |what: &str| eprintln!("{:>8.1} s  {what}", t0.elapsed().as_secs_f64());
    let mut conn = Conn::connect(cluster.node(1).kafka_addr())?;
    let (code, message) = create_rf(&mut conn, "wide3", partitions, 3)?;
    ensure!(
        code == 0,
        "creating {partitions} partitions: {code} {message:?}"
    );
    phase("created");
    let count = usize::try_from(partitions)?;
    let before = cluster.wait_topic_full("wide3", count, 3)?;
    phase("every ISR full");
    let victim = 2;
    let led = before
        .partitions
        .values()
        .filter(|p| p.leader == Some(victim))
        .count();
    ensure!(led > 0, "node {victim} leads nothing");
    cluster.kill9(victim)?;
    phase(&format!("node {victim} killed ({led} partitions led)"));
    let after = cluster.wait_node_gone("wide3", victim)?;
    ensure!(
        after.partitions.len() == count,
        "{} partitions listed",
        after.partitions.len()
    );
    phase("every partition led elsewhere, the node in no ISR");
    cluster.restart(victim)?;
    phase("node restarted");
    cluster.wait_topic_full("wide3", count, 3)?;
    phase("every ISR full again");
    Ok(())
}

/// The partitions under a node's log directory for `topic` (its `<topic>-<id>` directory).
fn partition_dirs(node: &TestNode, topic: &str) -> Result<std::collections::BTreeSet<i32>> {
    let mut found = std::collections::BTreeSet::new();
    for entry in std::fs::read_dir(node.data_dir().join("logs"))? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name
            .rsplit_once('-')
            .is_some_and(|(t, id)| t == topic && id.len() == 32)
        {
            for p in std::fs::read_dir(entry.path())? {
                if let Ok(i) = p?.file_name().to_string_lossy().parse::<i32>() {
                    found.insert(i);
                }
            }
        }
    }
    Ok(found)
}

/// Each node opens only the partitions whose replicas it holds: with RF 2 on three nodes,
/// each node's log directory holds exactly the partitions Metadata places on it, before and
/// after a restart, and every partition serves what is produced to its leader.
#[test]
fn each_node_holds_only_the_partitions_it_replicates() -> Result<()> {
    const PARTITIONS: i32 = 120;
    let Some(mut cluster) = TestCluster::start_or_skip(
        "each_node_holds_only_the_partitions_it_replicates",
        ClusterOptions::default(),
    )?
    else {
        return Ok(());
    };
    let mut conn = Conn::connect(cluster.node(1).kafka_addr())?;
    let (code, message) = create_rf(&mut conn, "rf2", PARTITIONS, 2)?;
    ensure!(code == 0, "creating rf2: {code} {message:?}");
    let view = cluster.wait_topic_full("rf2", PARTITIONS as usize, 2)?;
    let check_dirs = |cluster: &TestCluster| -> Result<()> {
        for id in cluster.ids() {
            let placed: std::collections::BTreeSet<i32> = view
                .partitions
                .iter()
                .filter(|(_, p)| p.replicas.contains(&id))
                .map(|(i, _)| *i)
                .collect();
            ensure!(
                placed.len() < PARTITIONS as usize,
                "node {id} replicates every partition"
            );
            let held = partition_dirs(cluster.node(id), "rf2")?;
            ensure!(
                held == placed,
                "node {id} holds {held:?}, replicates {placed:?}"
            );
        }
        Ok(())
    };
    check_dirs(&cluster)?;
    let mut conns = std::collections::BTreeMap::new();
    for (i, p) in &view.partitions {
        let leader = p.leader.context("no leader")?;
        let c = match conns.entry(leader) {
            std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::btree_map::Entry::Vacant(e) => {
                e.insert(Conn::connect(cluster.node(leader).kafka_addr())?)
            }
        };
        produce_one(c, "rf2", *i)?;
        read_one(c, "rf2", *i)?;
    }
    drop(conns);
    cluster.restart(2)?;
    cluster.wait_topic_full("rf2", PARTITIONS as usize, 2)?;
    check_dirs(&cluster)
}
