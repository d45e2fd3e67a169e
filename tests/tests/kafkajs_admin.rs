//! kafkajs 2.2.4's admin changes topic configs (`tests/node/admin_kafkajs.js`): its
//! `alterConfigs` is the legacy AlterConfigs API (key 33), which replaces the whole set of a
//! topic's overrides, so a config the request leaves out reverts to its default; validate-only
//! requests and invalid values (INVALID_CONFIG) change nothing. The same script runs against
//! tierlog and against a real Apache Kafka, which proves it right.
#![allow(clippy::unwrap_used)]

use std::time::Instant;

use tierlog_tests::TestNode;
use tierlog_tests::kafka::{Broker, KafkaServer};
use tierlog_tests::programs::{kafkajs_check, require_kafkajs};

fn alter_configs_passes(broker: &dyn Broker) {
    let started = Instant::now();
    let outcome = kafkajs_check(broker, "admin_kafkajs.js", "kafkajs-configs").unwrap();
    let summary = outcome
        .expect_passed(&format!("kafkajs alterConfigs against {}", broker.name()))
        .unwrap();
    eprintln!(
        "kafkajs alterConfigs against {}: {summary} ({:?})",
        broker.name(),
        started.elapsed()
    );
}

#[test]
fn kafkajs_alter_configs_on_tierlog() {
    if !require_kafkajs("kafkajs_alter_configs_on_tierlog").unwrap() {
        return;
    }
    alter_configs_passes(&TestNode::start_default().unwrap());
}

#[test]
fn kafkajs_alter_configs_on_apache_kafka() {
    let test = "kafkajs_alter_configs_on_apache_kafka";
    if !require_kafkajs(test).unwrap() {
        return;
    }
    if let Some(kafka) = KafkaServer::start_or_skip(test).unwrap() {
        alter_configs_passes(&kafka);
    }
}
