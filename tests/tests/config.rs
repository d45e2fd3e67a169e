//! `tierlog serve` configuration sources and their precedence, as the README documents them:
//! defaults → TOML file (`--config`) → `TIERLOG_*` environment → flags.
#![allow(clippy::unwrap_used)]

use rdkafka::producer::FutureRecord;
use tierlog_tests::clients::{CLIENT_TIMEOUT, partition_count, producer};
use tierlog_tests::{NodeOptions, TestNode};

/// Produces one record to `topic` (auto-creating it) and returns its partition count.
async fn auto_created_partitions(node: &TestNode, topic: &str) -> Option<usize> {
    let p = producer(&node.bootstrap(), &[("message.timeout.ms", "5000")]).unwrap();
    let _ = p
        .send(
            FutureRecord::to(topic).key("k").payload("v"),
            CLIENT_TIMEOUT,
        )
        .await;
    partition_count(&node.bootstrap(), topic).unwrap()
}

fn config_file(contents: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tierlog.toml");
    std::fs::write(&path, contents).unwrap();
    (dir, path.display().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn toml_file_is_read() {
    let (_dir, path) = config_file("default_partitions = 2\n");
    let opts = NodeOptions {
        extra_args: vec!["--config".into(), path],
        ..NodeOptions::default()
    };
    let node = TestNode::start(opts).unwrap();
    assert_eq!(auto_created_partitions(&node, "from-toml").await, Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn environment_overrides_toml_and_flags_override_environment() {
    let (_dir, path) = config_file("default_partitions = 2\nauto_create_topics = true\n");
    let opts = NodeOptions {
        extra_args: vec!["--config".into(), path],
        env: vec![("TIERLOG_DEFAULT_PARTITIONS".into(), "3".into())],
        ..NodeOptions::default()
    };
    let node = TestNode::start(opts).unwrap();
    assert_eq!(
        auto_created_partitions(&node, "from-env").await,
        Some(3),
        "TIERLOG_DEFAULT_PARTITIONS must override the TOML file"
    );
    drop(node);

    let opts = NodeOptions {
        env: vec![("TIERLOG_AUTO_CREATE_TOPICS".into(), "false".into())],
        ..NodeOptions::default()
    }
    .auto_create_topics(true);
    let node = TestNode::start(opts).unwrap();
    assert_eq!(
        auto_created_partitions(&node, "flag-wins").await,
        Some(1),
        "--auto-create-topics true must override TIERLOG_AUTO_CREATE_TOPICS=false"
    );
    drop(node);

    let opts = NodeOptions {
        env: vec![("TIERLOG_AUTO_CREATE_TOPICS".into(), "false".into())],
        ..NodeOptions::default()
    };
    let node = TestNode::start(opts).unwrap();
    assert_eq!(
        auto_created_partitions(&node, "env-disabled").await,
        None,
        "TIERLOG_AUTO_CREATE_TOPICS=false must disable auto-creation"
    );
}

#[test]
fn unknown_toml_key_is_refused() {
    let (_dir, path) = config_file("no_such_setting = 1\n");
    let opts = NodeOptions {
        extra_args: vec!["--config".into(), path],
        ..NodeOptions::default()
    };
    let err = TestNode::start(opts).expect_err("a node started with an unknown config key");
    let text = format!("{err:#}");
    assert!(
        text.contains("exited during startup"),
        "expected a startup failure, got: {text}"
    );
    assert!(
        text.contains("no_such_setting"),
        "the error should name the key: {text}"
    );
}
