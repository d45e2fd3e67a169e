//! Kafka's own `kafka-transactions` tool (Apache Kafka 4.3.1, `TransactionsCommand`) against
//! tierlog and against a real Apache Kafka: `list`, `describe`, `describe-producers`,
//! `find-hanging` and `abort`.
//!
//! The scenario is a function over a [`Broker`], run against both: its assertions hold for
//! the reference implementation, so a failure against tierlog is tierlog's. It opens a
//! transaction with raw requests (InitProducerId, AddPartitionsToTxn, a transactional
//! Produce) between two plain records and leaves it open, so a read_committed consumer
//! (librdkafka) stops at the transaction; the tool then lists and describes it, finds no
//! hanging transaction (the coordinator knows this one: a transactional batch the coordinator
//! never heard of is refused by both brokers' verification, so a truly hanging transaction
//! cannot be made from outside), and `abort --start-offset` writes the abort marker, which
//! unblocks the consumer.
//!
//! Only what the tool prints stably is asserted: the transactional id, producer id, state,
//! partition and start offset in its tables, never their layout.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use kafka_protocol::messages::CreateTopicsRequest;
use kafka_protocol::messages::FindCoordinatorRequest;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Compression;
use rdkafka::consumer::Consumer;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use tierlog_tests::TestNode;
use tierlog_tests::clients::consumer;
use tierlog_tests::differential::{
    Side, add_partitions, init_producer_id, producer_batch, retry_txn, txn_produce,
};
use tierlog_tests::kafka::{Broker, KafkaServer, ToolOutput, class, require_kafka, run_tool};
use tierlog_tests::wire::{encode_batch, topic_name};

/// A generous bound for one tool run (a JVM start on a busy two-core machine takes seconds).
const TOOL_TIMEOUT: Duration = Duration::from_secs(120);
const TOPIC: &str = "tools-txn";
const TXN_ID: &str = "tools-txn-id";
/// The CreateTime of every record.
const T: i64 = 1_600_000_000_000;

fn tool(broker: &dyn Broker, args: &[&str]) -> Result<ToolOutput> {
    let bootstrap = broker.bootstrap();
    let mut all = vec!["--bootstrap-server", bootstrap.as_str()];
    all.extend_from_slice(args);
    run_tool(class::TRANSACTIONS, &all, None, TOOL_TIMEOUT)?
        .ok()
        .with_context(|| {
            format!(
                "kafka-transactions {} against {}",
                args.join(" "),
                broker.name()
            )
        })
}

/// The table rows (after the header) of a tool's output, split on whitespace.
fn rows(out: &ToolOutput) -> Vec<Vec<String>> {
    out.stdout
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().map(str::to_owned).collect())
        .filter(|r: &Vec<String>| !r.is_empty())
        .collect()
}

/// Creates the topic and opens a transaction on it with raw requests: a plain record at
/// offset 0, three transactional records at 1–3 (left open), a plain record at 4. Returns
/// the producer id.
fn open_transaction(broker: &dyn Broker) -> Result<i64> {
    let mut conn = broker.connect()?;
    let request = CreateTopicsRequest::default()
        .with_timeout_ms(30_000)
        .with_topics(vec![
            CreatableTopic::default()
                .with_name(topic_name(TOPIC))
                .with_num_partitions(1)
                .with_replication_factor(1),
        ]);
    let created = conn.request(&request, 7)?;
    ensure!(
        created.topics.iter().all(|t| t.error_code == 0),
        "creating {TOPIC}: {created:?}"
    );
    Side::connect(broker)?.await_topic(TOPIC, 1)?;

    let plain = |value: &[u8]| encode_batch(&[(None, Some(value))], Compression::None, T);
    // Apache Kafka may list the new partition's leader in Metadata a moment before that
    // broker serves it (NOT_LEADER_OR_FOLLOWER, nothing appended): retry that one answer.
    let p = tierlog_tests::wait::wait_for(
        "the new partition to take a produce",
        Duration::from_secs(30),
        Duration::from_millis(50),
        || {
            let p = conn.produce_v(TOPIC, 0, plain(b"before")?, -1, 9)?;
            Ok(if p.error_code == 6 {
                tierlog_tests::wait::Poll::Pending(format!("{p:?}"))
            } else {
                tierlog_tests::wait::Poll::Ready(p)
            })
        },
    )?;
    ensure!(
        p.error_code == 0 && p.base_offset == 0,
        "plain produce: {p:?}"
    );

    // Kafka creates `__transaction_state` on the first FindCoordinator of a transactional id.
    let find = FindCoordinatorRequest::default()
        .with_key_type(1)
        .with_coordinator_keys(vec![StrBytes::from_static_str(TXN_ID)]);
    retry_txn(
        "the transaction coordinator",
        || conn.request(&find, 4),
        |r| r.coordinators.first().map_or(15, |c| c.error_code),
    )?;
    let init = init_producer_id(&mut conn, 4, Some(TXN_ID), 600_000, (-1, -1))?;
    ensure!(init.error_code == 0, "InitProducerId: {init:?}");
    let producer = (init.producer_id.0, init.producer_epoch);
    let added = add_partitions(&mut conn, TXN_ID, producer, TOPIC, &[0])?;
    ensure!(added == [(0, 0)], "AddPartitionsToTxn: {added:?}");
    let batch = producer_batch(producer, 0, true, &[b"t0", b"t1", b"t2"], T)?;
    let p = txn_produce(&mut conn, 9, Some(TXN_ID), TOPIC, 0, batch)?;
    ensure!(
        p.error_code == 0 && p.base_offset == 1,
        "transactional produce: {p:?}"
    );
    let p = conn.produce_v(TOPIC, 0, plain(b"after")?, -1, 9)?;
    ensure!(
        p.error_code == 0 && p.base_offset == 4,
        "plain produce: {p:?}"
    );
    Ok(producer.0)
}

/// Polls a read_committed consumer for `quiet` and returns every value it got so far.
fn poll_values(c: &rdkafka::consumer::BaseConsumer, seen: &mut Vec<String>, quiet: Duration) {
    let deadline = Instant::now() + quiet;
    while Instant::now() < deadline {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(200)) {
            seen.push(String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned());
        }
    }
}

fn transactions_scenario(broker: &dyn Broker) -> Result<()> {
    let pid = open_transaction(broker)?.to_string();
    let broker_id = Side::connect(broker)?.node_id.to_string();

    // A read_committed consumer stops at the open transaction (offset 1).
    let reader = consumer(
        &broker.bootstrap(),
        &[("isolation.level", "read_committed")],
    )?;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(TOPIC, 0, Offset::Beginning)?;
    reader.assign(&tpl).context("assigning")?;
    let mut seen = Vec::new();
    poll_values(&reader, &mut seen, Duration::from_secs(5));
    ensure!(
        seen == ["before"],
        "read_committed before the abort: {seen:?}"
    );

    // list: the transaction, Ongoing, with its producer id.
    let list = tool(broker, &["list"])?;
    ensure!(
        rows(&list)
            .iter()
            .any(|r| r.first().map(String::as_str) == Some(TXN_ID)
                && r.contains(&pid)
                && r.iter().any(|c| c == "Ongoing")),
        "list: {}",
        list.stdout
    );

    // describe: Ongoing, with the partition.
    let described = tool(broker, &["describe", "--transactional-id", TXN_ID])?;
    ensure!(
        rows(&described).iter().any(|r| r.contains(&pid)
            && r.iter().any(|c| c == "Ongoing")
            && r.iter().any(|c| c.contains(&format!("{TOPIC}-0")))),
        "describe: {}",
        described.stdout
    );

    // describe-producers: the producer, its open transaction starting at offset 1.
    let producers = tool(
        broker,
        &["describe-producers", "--topic", TOPIC, "--partition", "0"],
    )?;
    let row = rows(&producers)
        .into_iter()
        .find(|r| r.first() == Some(&pid))
        .with_context(|| format!("describe-producers lists no {pid}: {}", producers.stdout))?;
    ensure!(
        row.last().map(String::as_str) == Some("1"),
        "describe-producers: the current transaction starts at 1: {}",
        producers.stdout
    );

    // find-hanging: the coordinator knows this transaction, so it is not hanging, even when
    // every open transaction is a candidate (--max-transaction-timeout 0).
    for extra in [&[][..], &["--max-transaction-timeout", "0"][..]] {
        let mut args = vec!["find-hanging", "--broker-id", broker_id.as_str()];
        args.extend_from_slice(extra);
        let hanging = tool(broker, &args)?;
        ensure!(
            !rows(&hanging).iter().any(|r| r.contains(&pid)),
            "find-hanging {extra:?} reports the open transaction: {}",
            hanging.stdout
        );
    }

    // abort: writes the abort marker for the transaction starting at offset 1.
    tool(
        broker,
        &[
            "abort",
            "--topic",
            TOPIC,
            "--partition",
            "0",
            "--start-offset",
            "1",
        ],
    )?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while seen.len() < 2 && Instant::now() < deadline {
        poll_values(&reader, &mut seen, Duration::from_millis(500));
    }
    poll_values(&reader, &mut seen, Duration::from_secs(2));
    ensure!(
        seen == ["before", "after"],
        "read_committed after the abort: the aborted records are skipped and the record after \
         them arrives: {seen:?}"
    );
    let producers = tool(
        broker,
        &["describe-producers", "--topic", TOPIC, "--partition", "0"],
    )?;
    ensure!(
        rows(&producers)
            .iter()
            .any(|r| r.first() == Some(&pid) && r.last().map(String::as_str) == Some("None")),
        "describe-producers after the abort: the producer, with no open transaction: {}",
        producers.stdout
    );
    Ok(())
}

#[test]
fn kafka_transactions_tool_against_tierlog() -> Result<()> {
    if !require_kafka("kafka_transactions_tool_against_tierlog")? {
        return Ok(());
    }
    let started = Instant::now();
    let node = TestNode::start_default()?;
    transactions_scenario(&node)
        .with_context(|| format!("against tierlog:\n{}", node.log_tails()))?;
    eprintln!(
        "kafka-transactions against tierlog: {:?}",
        started.elapsed()
    );
    Ok(())
}

#[test]
fn kafka_transactions_tool_against_apache_kafka() -> Result<()> {
    let Some(kafka) = KafkaServer::start_or_skip("kafka_transactions_tool_against_apache_kafka")?
    else {
        return Ok(());
    };
    let started = Instant::now();
    transactions_scenario(&kafka).context("against Apache Kafka")?;
    eprintln!(
        "kafka-transactions against Apache Kafka: {:?}",
        started.elapsed()
    );
    Ok(())
}
