//! The `tierlog topic` and `tierlog bench` commands against a running node, as the README
//! shows them.
#![allow(clippy::unwrap_used)]

use std::process::{Command, Output};

use rdkafka::admin::ResourceSpecifier;
use tierlog_tests::TestNode;
use tierlog_tests::clients::{admin, admin_options, partition_count, watermarks};
use tierlog_tests::node::tierlog_binary;

fn tierlog(node: &TestNode, args: &[&str]) -> Output {
    let bin = tierlog_binary().unwrap();
    let out = Command::new(&bin)
        .args(args)
        .args(["--bootstrap", &node.bootstrap()])
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "tierlog {} failed: {}\nstdout:\n{}\nstderr:\n{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

async fn config_value(node: &TestNode, topic: &str, name: &str) -> Option<String> {
    let admin = admin(&node.bootstrap()).unwrap();
    let results = admin
        .describe_configs([&ResourceSpecifier::Topic(topic)], &admin_options())
        .await
        .unwrap();
    let resource = results.into_iter().next().unwrap().unwrap();
    resource.get(name).and_then(|e| e.value.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_commands() {
    let node = TestNode::start_default().unwrap();
    tierlog(
        &node,
        &[
            "topic",
            "create",
            "cli-topic",
            "--partitions",
            "3",
            "--config",
            "retention.ms=86400000",
        ],
    );
    assert_eq!(
        partition_count(&node.bootstrap(), "cli-topic").unwrap(),
        Some(3)
    );
    assert_eq!(
        config_value(&node, "cli-topic", "retention.ms")
            .await
            .as_deref(),
        Some("86400000")
    );

    let list = stdout(&tierlog(&node, &["topic", "list"]));
    assert!(list.contains("cli-topic"), "topic list:\n{list}");
    let describe = stdout(&tierlog(&node, &["topic", "describe", "cli-topic"]));
    assert!(
        describe.contains("retention.ms"),
        "topic describe:\n{describe}"
    );

    tierlog(
        &node,
        &[
            "topic",
            "alter-config",
            "cli-topic",
            "--set",
            "retention.ms=3600000",
        ],
    );
    assert_eq!(
        config_value(&node, "cli-topic", "retention.ms")
            .await
            .as_deref(),
        Some("3600000")
    );

    tierlog(&node, &["topic", "delete", "cli-topic"]);
    assert_eq!(
        partition_count(&node.bootstrap(), "cli-topic").unwrap(),
        None
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_produce_then_consume() {
    let node = TestNode::start_default().unwrap();
    tierlog(
        &node,
        &[
            "bench",
            "produce",
            "--topic",
            "cli-bench",
            "--records",
            "5000",
            "--partitions",
            "2",
            "--compression",
            "zstd",
        ],
    );
    let mut total = 0;
    for p in 0..2 {
        let (low, high) = watermarks(&node.bootstrap(), "cli-bench", p).unwrap();
        assert_eq!(low, 0);
        total += high;
    }
    assert_eq!(
        total, 5000,
        "records in the log after bench produce --records 5000"
    );
    tierlog(
        &node,
        &[
            "bench",
            "consume",
            "--topic",
            "cli-bench",
            "--records",
            "5000",
        ],
    );
}
