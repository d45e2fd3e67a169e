//! librdkafka (through the `rdkafka` crate) as the judge of the idempotent producer and of
//! transactions in Kafka's classic transaction protocol (librdkafka does not speak KIP-890's):
//! an idempotent producer's records arrive once each and in order; a transactional producer's
//! committed transactions are visible to a `read_committed` consumer and its aborted one is
//! not, while a `read_uncommitted` consumer sees all three (never the markers).
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::Offset;
use rdkafka::TopicPartitionList;
use rdkafka::consumer::Consumer;
use rdkafka::message::Message;
use rdkafka::producer::{FutureRecord, Producer};

use tierlog_tests::TestNode;
use tierlog_tests::clients::{self, CLIENT_TIMEOUT};

const PARTITIONS: i32 = 3;

/// A consumer of every partition of `topic` from the start, at `isolation`.
fn consumer_at(node: &TestNode, topic: &str, isolation: &str) -> rdkafka::consumer::BaseConsumer {
    let c = clients::consumer(&node.bootstrap(), &[("isolation.level", isolation)]).unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    c.assign(&tpl).unwrap();
    c
}

/// Values read, per partition, in offset order.
fn values_by_partition(messages: &[rdkafka::message::OwnedMessage]) -> BTreeMap<i32, Vec<String>> {
    let mut out: BTreeMap<i32, Vec<String>> = BTreeMap::new();
    for m in messages {
        let v = String::from_utf8(m.payload().unwrap().to_vec()).unwrap();
        out.entry(m.partition()).or_default().push(v);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn librdkafka_idempotent_producer_writes_each_record_once_in_order() {
    let node = TestNode::start_default().unwrap();
    clients::create_topic(&node.bootstrap(), "idem", PARTITIONS, &[])
        .await
        .unwrap();
    let producer = clients::producer(
        &node.bootstrap(),
        &[
            ("enable.idempotence", "true"),
            ("max.in.flight.requests.per.connection", "5"),
            ("linger.ms", "1"),
        ],
    )
    .unwrap();
    const N: usize = 3000;
    // Everything enqueued first, so up to five requests per partition are in flight.
    let mut deliveries = Vec::with_capacity(N);
    for i in 0..N {
        let value = format!("{i:06}");
        let p = i32::try_from(i).unwrap() % PARTITIONS;
        let record = FutureRecord::to("idem")
            .partition(p)
            .key("k")
            .payload(&value);
        deliveries.push(producer.send_result(record).map_err(|(e, _)| e).unwrap());
    }
    for d in deliveries {
        d.await.unwrap().map_err(|(e, _)| e).unwrap();
    }
    let consumer = consumer_at(&node, "idem", "read_uncommitted");
    let got = clients::consume_exactly(&consumer, N, CLIENT_TIMEOUT).unwrap();
    clients::expect_no_more(&consumer, Duration::from_millis(500)).unwrap();
    for (p, values) in values_by_partition(&got) {
        let expected: Vec<String> = (0..N)
            .filter(|i| i32::try_from(*i).unwrap() % PARTITIONS == p)
            .map(|i| format!("{i:06}"))
            .collect();
        assert_eq!(values, expected, "partition {p}: once each, in order");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn librdkafka_transactions_commit_visible_abort_invisible_to_read_committed() {
    let node = TestNode::start_default().unwrap();
    clients::create_topic(&node.bootstrap(), "txn", PARTITIONS, &[])
        .await
        .unwrap();
    let producer = clients::producer(
        &node.bootstrap(),
        &[
            ("transactional.id", "librdkafka-txn"),
            ("enable.idempotence", "true"),
        ],
    )
    .unwrap();
    producer.init_transactions(CLIENT_TIMEOUT).unwrap();
    const PER_TXN: usize = 30;
    for (name, commit) in [("a", true), ("b", false), ("c", true)] {
        producer.begin_transaction().unwrap();
        for i in 0..PER_TXN {
            let value = format!("{name}-{i:03}");
            let p = i32::try_from(i).unwrap() % PARTITIONS;
            producer
                .send(
                    FutureRecord::to("txn")
                        .partition(p)
                        .key(name)
                        .payload(&value),
                    CLIENT_TIMEOUT,
                )
                .await
                .map_err(|(e, _)| e)
                .unwrap();
        }
        if commit {
            producer.commit_transaction(CLIENT_TIMEOUT).unwrap();
        } else {
            producer.abort_transaction(CLIENT_TIMEOUT).unwrap();
        }
    }

    let committed = consumer_at(&node, "txn", "read_committed");
    let got = clients::consume_exactly(&committed, 2 * PER_TXN, CLIENT_TIMEOUT).unwrap();
    clients::expect_no_more(&committed, Duration::from_millis(500)).unwrap();
    let mut values: Vec<String> = got
        .iter()
        .map(|m| String::from_utf8(m.payload().unwrap().to_vec()).unwrap())
        .collect();
    values.sort();
    let expected: Vec<String> = ["a", "c"]
        .iter()
        .flat_map(|t| (0..PER_TXN).map(move |i| format!("{t}-{i:03}")))
        .collect();
    assert_eq!(values, expected, "committed transactions only");

    let everything = consumer_at(&node, "txn", "read_uncommitted");
    let got = clients::consume_exactly(&everything, 3 * PER_TXN, CLIENT_TIMEOUT).unwrap();
    clients::expect_no_more(&everything, Duration::from_millis(500)).unwrap();
    assert!(
        got.iter().any(|m| m.key() == Some(b"b".as_slice())),
        "read_uncommitted sees the aborted records"
    );
    // The markers take offsets: each partition ends past its records.
    let (_, high) = clients::watermarks(&node.bootstrap(), "txn", 0).unwrap();
    assert_eq!(high, 3 * 10 + 3, "30 records and 3 markers in partition 0");
}
