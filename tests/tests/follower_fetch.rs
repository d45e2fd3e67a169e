//! Fetching from the closest replica (KIP-392) on a real three-node cluster, racks `a`, `b`
//! and `c`: a librdkafka consumer with `client.rack=b` reads everything from the replica in
//! rack b (the nodes' own counters say which node served it), and when that node is killed it
//! carries on from the leader, nothing missed.
//!
//! It also measures what follower fetching is for: the bytes nodes outside the consumer's rack
//! served it (cross-zone transfer), without and with `client.rack`. The Java consumer with
//! `client.rack` reads only from its rack too.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use rdkafka::admin::{NewTopic, TopicReplication};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::{Offset, TopicPartitionList};

use tierlog_tests::clients::{admin, admin_options, consume_exactly, consumer};
use tierlog_tests::cluster::{
    BackgroundProducer, ClusterOptions, Deliveries, LoadOptions, TestCluster, check_acked,
};
use tierlog_tests::kafka::{Broker, require_kafka};
use tierlog_tests::programs::java_client_check;

const TOPIC: &str = "near";
/// Records produced before the consumers read, and after the rack-b node is killed.
const FIRST: usize = 2000;
const AFTER_KILL: usize = 1000;
const CONSUME_TIMEOUT: Duration = Duration::from_secs(60);

/// Bytes each node has served to consumers: (in all, as a follower).
fn served(c: &TestCluster, ids: &[u32]) -> Result<BTreeMap<u32, (f64, f64)>> {
    ids.iter()
        .map(|&id| {
            let m = c.node(id).metrics()?;
            Ok((
                id,
                (
                    m.counter("tierlog_fetch_consumer_bytes_total"),
                    m.counter("tierlog_fetch_follower_bytes_total"),
                ),
            ))
        })
        .collect()
}

/// What each node served between two [`served`] readings.
fn since(
    before: &BTreeMap<u32, (f64, f64)>,
    after: &BTreeMap<u32, (f64, f64)>,
) -> BTreeMap<u32, (f64, f64)> {
    after
        .iter()
        .map(|(id, (all, follower))| {
            let (all0, follower0) = before.get(id).copied().unwrap_or_default();
            (*id, (all - all0, follower - follower0))
        })
        .collect()
}

/// A consumer of partition 0 from the beginning, with `extra` settings.
fn reader(bootstrap: &str, extra: &[(&str, &str)]) -> Result<BaseConsumer> {
    let consumer = consumer(bootstrap, extra)?;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(TOPIC, 0, Offset::Beginning)?;
    consumer.assign(&tpl).context("assigning the partition")?;
    Ok(consumer)
}

/// Produces `n` acknowledged records (acks=all) and returns the delivery reports.
fn produce(bootstrap: &str, n: usize) -> Result<Deliveries> {
    let started = Instant::now();
    let producer = BackgroundProducer::start(bootstrap, TOPIC, LoadOptions::default())?;
    producer.wait_acked_since(started, n, CONSUME_TIMEOUT)?;
    let d = producer.stop()?;
    ensure!(d.failures.is_empty(), "produce failures: {:?}", d.failures);
    Ok(d)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_reads_from_the_replica_in_its_rack_and_fails_over_to_the_leader() -> Result<()>
{
    let opts = ClusterOptions {
        racks: vec!["a".into(), "b".into(), "c".into()],
        ..ClusterOptions::default()
    };
    let Some(mut c) = TestCluster::start_or_skip(
        "a_consumer_reads_from_the_replica_in_its_rack_and_fails_over_to_the_leader",
        opts,
    )?
    else {
        return Ok(());
    };
    c.wait_brokers(3)?;
    // Node 1 (rack a) leads; node 2 is the replica in rack b, node 3 in rack c.
    let topic = NewTopic::new(TOPIC, 1, TopicReplication::Variable(&[&[1, 2, 3]]));
    let created = admin(&c.bootstrap())?
        .create_topics([&topic], &admin_options())
        .await?;
    ensure!(
        created.iter().all(Result::is_ok),
        "CreateTopics: {created:?}"
    );
    c.wait_isr_full(TOPIC, 0)?;
    c.wait_leader_is(TOPIC, 0, 1)?;
    let bootstrap = c.bootstrap();
    let first = produce(&bootstrap, FIRST)?;
    let total_first = first.acks.len();

    // Without client.rack: the leader, in rack a, serves everything.
    let before = served(&c, &[1, 2, 3])?;
    let plain = reader(&bootstrap, &[])?;
    consume_exactly(&plain, total_first, CONSUME_TIMEOUT)?;
    drop(plain);
    let without_rack = since(&before, &served(&c, &[1, 2, 3])?);

    // With client.rack=b: node 2 serves everything, as a follower; the leader only points the
    // consumer there.
    let before = served(&c, &[1, 2, 3])?;
    let near = reader(&bootstrap, &[("client.rack", "b")])?;
    let mut read = consume_exactly(&near, total_first, CONSUME_TIMEOUT)?;
    let with_rack = since(&before, &served(&c, &[1, 2, 3])?);
    let cross_zone = |d: &BTreeMap<u32, (f64, f64)>| d[&1].0 + d[&3].0;
    eprintln!(
        "cross-zone bytes served to a rack-b consumer of {total_first} records: \
         {} without client.rack, {} with client.rack=b (node 2 served {} as a follower)",
        cross_zone(&without_rack),
        cross_zone(&with_rack),
        with_rack[&2].1
    );
    ensure!(
        without_rack[&1].0 > 0.0 && without_rack[&2].0 == 0.0,
        "without client.rack the leader serves: {without_rack:?}"
    );
    ensure!(
        with_rack[&2].1 > 0.0 && with_rack[&2].1 == with_rack[&2].0,
        "with client.rack=b node 2 serves as a follower: {with_rack:?}"
    );
    ensure!(
        cross_zone(&with_rack) == 0.0,
        "with client.rack=b no node outside rack b serves: {with_rack:?}"
    );

    // Node 2 dies: the consumer carries on from the leader with what is produced next.
    let before = served(&c, &[1, 3])?;
    let killed = Instant::now();
    c.kill9(2)?;
    let second = produce(&c.bootstrap(), AFTER_KILL)?;
    let total = total_first + second.acks.len();
    read.extend(consume_exactly(&near, second.acks.len(), CONSUME_TIMEOUT)?);
    let after_kill = since(&before, &served(&c, &[1, 3])?);
    eprintln!(
        "after node 2 died the leader served {} bytes to the rack-b consumer, which had read \
         the {} records produced since within {:?} of the kill",
        after_kill[&1].0,
        second.acks.len(),
        killed.elapsed()
    );
    ensure!(
        after_kill[&1].0 > 0.0,
        "the leader serves once node 2 is gone: {after_kill:?}"
    );

    // Every acknowledged record was read, at its offset; a record read twice (at-least-once
    // redelivery) is allowed, a gap is not.
    let mut log: BTreeMap<i64, OwnedMessage> = BTreeMap::new();
    let mut repeated = 0;
    for m in read {
        if log.insert(m.offset(), m).is_some() {
            repeated += 1;
        }
    }
    eprintln!("{repeated} records were delivered twice");
    let log: Vec<OwnedMessage> = log.into_values().collect();
    ensure!(
        log.len() == total && log.iter().enumerate().all(|(i, m)| m.offset() == i as i64),
        "read {} distinct records of {total}, offsets dense from 0",
        log.len()
    );
    // Each producer numbered its records from 0; each record is at its acknowledged offset.
    check_acked(&log, 0, &first.acks)?;
    check_acked(&log, 0, &second.acks)?;
    Ok(())
}

/// A cluster as the Java programs see it: its bootstrap list.
struct Bootstrap(String);

impl Broker for Bootstrap {
    fn bootstrap(&self) -> String {
        self.0.clone()
    }
    fn name(&self) -> &'static str {
        "tierlog"
    }
}

/// The Java client (`ClientCheck`: produce 300 keyed records to 3 partitions with RF 3, consume
/// them in a group) with `client.rack=b`: every record reaches it from node 2, the one node in
/// rack b, as leader or as follower; nodes 1 and 3 serve it nothing.
#[test]
fn the_java_consumer_with_client_rack_reads_only_from_its_rack() -> Result<()> {
    let test = "the_java_consumer_with_client_rack_reads_only_from_its_rack";
    if !require_kafka(test)? {
        return Ok(());
    }
    let opts = ClusterOptions {
        racks: vec!["a".into(), "b".into(), "c".into()],
        ..ClusterOptions::default()
    };
    let Some(c) = TestCluster::start_or_skip(test, opts)? else {
        return Ok(());
    };
    c.wait_brokers(3)?;
    let before = served(&c, &[1, 2, 3])?;
    let outcome = java_client_check(
        &Bootstrap(c.bootstrap()),
        "java-near",
        &["--consumer-prop", "client.rack=b"],
        Duration::from_secs(90),
    )?;
    let summary = outcome.expect_passed("ClientCheck with client.rack=b")?;
    ensure!(summary["consumed"] == 300, "{summary}");
    let d = since(&before, &served(&c, &[1, 2, 3])?);
    eprintln!("bytes served to the Java consumer in rack b (all, as follower): {d:?}");
    ensure!(
        d[&1].0 == 0.0 && d[&3].0 == 0.0 && d[&2].1 > 0.0,
        "only node 2 serves the rack-b consumer, as a follower where it does not lead: {d:?}"
    );
    Ok(())
}
