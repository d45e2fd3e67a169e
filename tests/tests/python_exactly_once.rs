//! Python clients judge the idempotent producer and transactions (`tests/python/eos_python.py`):
//! kafka-python 3 with its default (idempotent) producer and transactions, and aiokafka with
//! idempotence and transactions switched on; read_committed consumers see commits only. Each
//! client runs against tierlog and against a real Apache Kafka, which proves the script right.
#![allow(clippy::unwrap_used)]

use std::process::{Command, Stdio};
use std::time::Instant;

use tierlog_tests::TestNode;
use tierlog_tests::kafka::{Broker, KafkaServer};
use tierlog_tests::tools::{require_tool, tests_dir};

const CLIENTS: [&str; 2] = ["kafka-python", "aiokafka"];

/// Whether the Python clients are installed (kafka-python 3 and aiokafka).
fn have_clients(test: &str) -> bool {
    require_tool(
        "python3",
        &[
            "-c",
            "import kafka, aiokafka; assert int(kafka.__version__.split('.')[0]) >= 3",
        ],
        test,
    )
    .unwrap()
}

/// Runs the script for `client` against `broker` and requires its verdict to be ok.
fn passes(broker: &dyn Broker, client: &str, topic: &str) {
    let started = Instant::now();
    let script = tests_dir().join("python").join("eos_python.py");
    // The script bounds each of its waits (60 s); nextest ends a hung interpreter.
    let out = Command::new("python3")
        .arg(&script)
        .args(["--bootstrap", &broker.bootstrap(), "--client", client])
        .args(["--topic", topic])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let verdict = stdout.lines().last().unwrap_or_default();
    assert!(
        out.status.success() && verdict.contains("\"ok\": true"),
        "{client} against {}: {verdict}\nstderr:\n{stderr}",
        broker.name()
    );
    eprintln!(
        "{client} against {}: {verdict} ({:?})",
        broker.name(),
        started.elapsed()
    );
}

#[test]
fn python_clients_exactly_once_on_tierlog() {
    if !have_clients("python_clients_exactly_once_on_tierlog") {
        return;
    }
    let node = TestNode::start_default().unwrap();
    for client in CLIENTS {
        passes(&node, client, &format!("py-{client}"));
    }
}

#[test]
fn python_clients_exactly_once_on_apache_kafka() {
    if !have_clients("python_clients_exactly_once_on_apache_kafka") {
        return;
    }
    let Some(kafka) =
        KafkaServer::start_or_skip("python_clients_exactly_once_on_apache_kafka").unwrap()
    else {
        return;
    };
    for client in CLIENTS {
        passes(&kafka, client, &format!("py-{client}"));
    }
}
