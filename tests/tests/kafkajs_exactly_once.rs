//! kafkajs 2.2.4 judges the idempotent producer and transactions (`tests/node/eos_kafkajs.js`):
//! an idempotent producer's records are each read once, in order, at their acknowledged
//! offsets; a transactional producer commits A, aborts B and commits C, and a read_committed
//! consumer sees A and C only, a read_uncommitted one all three, the group A's and C's staged
//! offsets only. kafkajs speaks older protocol versions than the Java client (at most
//! InitProducerId, AddPartitionsToTxn, AddOffsetsToTxn, EndTxn and TxnOffsetCommit v1, Produce
//! v7, Fetch v11). The script runs against tierlog and against a real Apache Kafka, which proves
//! it right.
#![allow(clippy::unwrap_used)]

use std::process::{Command, Stdio};
use std::time::Instant;

use tierlog_tests::TestNode;
use tierlog_tests::kafka::{Broker, KafkaServer};
use tierlog_tests::tools::{require_tool, tests_dir};

/// Whether node and kafkajs (`npm ci` in `tests/node`, done by `tests/install.sh`) are there.
fn have_kafkajs(test: &str) -> bool {
    let kafkajs = tests_dir()
        .join("node")
        .join("node_modules")
        .join("kafkajs");
    require_tool(
        "node",
        &[
            "-e",
            "require(process.argv[1])",
            &kafkajs.display().to_string(),
        ],
        test,
    )
    .unwrap()
}

/// Runs the script against `broker` and requires its verdict to be ok.
fn passes(broker: &dyn Broker, topic: &str) {
    let started = Instant::now();
    let dir = tests_dir().join("node");
    // The script bounds each of its waits (60 s) and the whole run (240 s).
    let out = Command::new("node")
        .arg(dir.join("eos_kafkajs.js"))
        .args(["--bootstrap", &broker.bootstrap(), "--topic", topic])
        .current_dir(&dir)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let verdict = stdout.lines().last().unwrap_or_default();
    let ok = serde_json::from_str::<serde_json::Value>(verdict)
        .is_ok_and(|v| v["ok"] == serde_json::Value::Bool(true));
    assert!(
        out.status.success() && ok,
        "kafkajs against {}: {verdict}\nstderr:\n{stderr}",
        broker.name()
    );
    eprintln!(
        "kafkajs against {}: {verdict} ({:?})",
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
