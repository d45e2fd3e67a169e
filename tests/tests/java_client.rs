//! The Apache Kafka Java client (4.3.1) judges tierlog: `ClientCheck` (tests/kafka/src) drives
//! Admin, KafkaProducer and KafkaConsumer through a round trip (create a 3-partition topic,
//! describe it and the cluster, list offsets, produce keyed records, consume them in a group,
//! commit, read the committed offsets back) and checks every answer itself.
//!
//! Each scenario also runs against a real Apache Kafka, which proves the program right: a
//! failure against tierlog then points at tierlog.
//!
//! The Java producer is idempotent by default (since Kafka 3.0); the scenarios run with the
//! defaults and with idempotence off.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use tierlog_tests::TestNode;
use tierlog_tests::kafka::{Broker, KafkaServer, require_kafka};
use tierlog_tests::programs::{Outcome, java_client_check};

/// The program's own deadline for one round trip.
const CHECK_TIMEOUT: Duration = Duration::from_secs(90);

const NO_IDEMPOTENCE: [&str; 2] = ["--producer-prop", "enable.idempotence=false"];
/// The KIP-848 consumer group protocol (ConsumerGroupHeartbeat) instead of the classic one.
const CONSUMER_PROTOCOL: [&str; 2] = ["--consumer-prop", "group.protocol=consumer"];

/// Runs one round trip and requires it to pass; prints its summary and time.
fn passes(broker: &dyn Broker, topic: &str, extra: &[&str]) -> Outcome {
    let started = Instant::now();
    let outcome = java_client_check(broker, topic, extra, CHECK_TIMEOUT).unwrap();
    let summary = outcome
        .expect_passed(&format!("ClientCheck {extra:?} against {}", broker.name()))
        .unwrap();
    assert_eq!(summary["produced"], 300, "{summary}");
    assert_eq!(summary["consumed"], 300, "{summary}");
    eprintln!(
        "ClientCheck {extra:?} against {}: {summary} ({:?})",
        broker.name(),
        started.elapsed()
    );
    outcome
}

#[test]
fn java_client_without_idempotence_round_trip_on_tierlog() {
    if !require_kafka("java_client_without_idempotence_round_trip_on_tierlog").unwrap() {
        return;
    }
    let node = TestNode::start_default().unwrap();
    passes(&node, "java-classic", &NO_IDEMPOTENCE);
}

#[test]
fn java_client_consumer_group_protocol_round_trip_on_tierlog() {
    if !require_kafka("java_client_consumer_group_protocol_round_trip_on_tierlog").unwrap() {
        return;
    }
    let node = TestNode::start_default().unwrap();
    let extra: Vec<&str> = NO_IDEMPOTENCE
        .into_iter()
        .chain(CONSUMER_PROTOCOL)
        .collect();
    passes(&node, "java-consumer-protocol", &extra);
}

#[test]
fn java_client_defaults_round_trip_on_tierlog() {
    if !require_kafka("java_client_defaults_round_trip_on_tierlog").unwrap() {
        return;
    }
    let node = TestNode::start_default().unwrap();
    passes(&node, "java-defaults", &[]);
}

/// The same scenarios against Apache Kafka: the program is right, defaults included.
#[test]
fn java_client_round_trips_on_apache_kafka() {
    let Some(kafka) =
        KafkaServer::start_or_skip("java_client_round_trips_on_apache_kafka").unwrap()
    else {
        return;
    };
    passes(&kafka, "java-defaults", &[]);
    passes(&kafka, "java-classic", &NO_IDEMPOTENCE);
    let extra: Vec<&str> = NO_IDEMPOTENCE
        .into_iter()
        .chain(CONSUMER_PROTOCOL)
        .collect();
    passes(&kafka, "java-consumer-protocol", &extra);
}
