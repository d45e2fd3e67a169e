//! kafkajs 2.2.4 judges the idempotent producer and transactions (`tests/node/eos_kafkajs.js`):
//! an idempotent producer's records are each read once, in order, at their acknowledged
//! offsets; a transactional producer commits A, aborts B and commits C, and a read_committed
//! consumer sees A and C only, a read_uncommitted one all three, the group A's and C's staged
//! offsets only. kafkajs speaks older protocol versions than the Java client (at most
//! InitProducerId, AddPartitionsToTxn, AddOffsetsToTxn, EndTxn and TxnOffsetCommit v1, Produce
//! v7, Fetch v11). The script runs against tierlog and against a real Apache Kafka, which proves
//! it right.
#![allow(clippy::unwrap_used)]

use std::time::Instant;

use tierlog_tests::TestNode;
use tierlog_tests::kafka::{Broker, KafkaServer};
use tierlog_tests::programs::{kafkajs_check, require_kafkajs};

fn have_kafkajs(test: &str) -> bool {
    require_kafkajs(test).unwrap()
}

/// Runs the script against `broker` and requires its verdict to be ok.
fn passes(broker: &dyn Broker, topic: &str) {
    let started = Instant::now();
    let outcome = kafkajs_check(broker, "eos_kafkajs.js", topic).unwrap();
    let summary = outcome
        .expect_passed(&format!("kafkajs against {}", broker.name()))
        .unwrap();
    eprintln!(
        "kafkajs against {}: {summary} ({:?})",
        broker.name(),
        started.elapsed()
    );
}

#[test]
fn kafkajs_exactly_once_on_tierlog() {
    if !have_kafkajs("kafkajs_exactly_once_on_tierlog") {
        return;
    }
    let node = TestNode::start_default().unwrap();
    passes(&node, "kafkajs");
}

#[test]
fn kafkajs_exactly_once_on_apache_kafka() {
    if !have_kafkajs("kafkajs_exactly_once_on_apache_kafka") {
        return;
    }
    let Some(kafka) = KafkaServer::start_or_skip("kafkajs_exactly_once_on_apache_kafka").unwrap()
    else {
        return;
    };
    passes(&kafka, "kafkajs");
}
