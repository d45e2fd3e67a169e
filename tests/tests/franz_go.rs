//! franz-go (github.com/twmb/franz-go, with its admin client kadm) judges tierlog: the Go
//! program in `tests/franz` creates a 3-partition topic, produces keyed records, consumes them
//! in a group, commits, and lists the start, end and committed offsets, checking every answer
//! itself. Each scenario also runs against a real Apache Kafka, which proves the program right.
//!
//! franz-go's producer is idempotent by default: it asks for a producer id (InitProducerId)
//! and writes with sequence numbers; the idempotent run checks that it got one.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use serde_json::Value;
use tierlog_tests::TestNode;
use tierlog_tests::kafka::{Broker, KafkaServer, require_kafka};
use tierlog_tests::programs::{franz_check, require_franz};

/// The program's own deadline for one round trip.
const CHECK_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs one round trip and requires it to pass; returns its summary.
fn passes(broker: &dyn Broker, topic: &str, extra: &[&str]) -> Value {
    let started = Instant::now();
    let outcome = franz_check(broker, topic, extra, CHECK_TIMEOUT).unwrap();
    let summary = outcome
        .expect_passed(&format!("franz-check {extra:?} against {}", broker.name()))
        .unwrap()
        .clone();
    assert_eq!(summary["produced"], 300, "{summary}");
    assert_eq!(summary["consumed"], 300, "{summary}");
    assert_eq!(summary["group_state"], "Stable", "{summary}");
    eprintln!(
        "franz-check {extra:?} against {}: {summary} ({:?})",
        broker.name(),
        started.elapsed()
    );
    summary
}

#[test]
fn franz_go_without_idempotence_round_trip_on_tierlog() {
    if !require_franz("franz_go_without_idempotence_round_trip_on_tierlog").unwrap() {
        return;
    }
    let node = TestNode::start_default().unwrap();
    let summary = passes(&node, "franz-plain", &["-idempotent=false"]);
    assert_eq!(summary["producer_id"], -1, "{summary}");
}

/// franz-go's defaults: an idempotent producer.
#[test]
fn franz_go_defaults_round_trip_on_tierlog() {
    if !require_franz("franz_go_defaults_round_trip_on_tierlog").unwrap() {
        return;
    }
    let node = TestNode::start_default().unwrap();
    passes(&node, "franz-defaults", &[]);
}

#[test]
fn franz_go_idempotent_producer_gets_a_producer_id_on_tierlog() {
    if !require_franz("franz_go_idempotent_producer_gets_a_producer_id_on_tierlog").unwrap() {
        return;
    }
    let node = TestNode::start_default().unwrap();
    let summary = passes(&node, "franz-idempotent", &[]);
    assert!(
        summary["producer_id"].as_i64().unwrap() >= 0,
        "records written without a producer id: {summary}"
    );
}

/// The same scenarios against Apache Kafka, where the idempotent producer gets a producer id.
#[test]
fn franz_go_round_trips_on_apache_kafka() {
    if !require_franz("franz_go_round_trips_on_apache_kafka").unwrap()
        || !require_kafka("franz_go_round_trips_on_apache_kafka").unwrap()
    {
        return;
    }
    let kafka = KafkaServer::start(&[]).unwrap();
    let summary = passes(&kafka, "franz-idempotent", &[]);
    assert!(
        summary["producer_id"].as_i64().unwrap() >= 0,
        "Apache Kafka gave no producer id: {summary}"
    );
    let summary = passes(&kafka, "franz-plain", &["-idempotent=false"]);
    assert_eq!(summary["producer_id"], -1, "{summary}");
}
