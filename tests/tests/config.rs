//! `tierlog serve` configuration sources and their precedence, as the README documents them:
//! defaults → TOML file (`--config`) → `TIERLOG_*` environment → flags.
#![allow(clippy::unwrap_used)]

use std::process::Command;

use rdkafka::producer::FutureRecord;
use tierlog_ingest::config::{NodeConfig, SETTINGS};
use tierlog_tests::clients::{CLIENT_TIMEOUT, partition_count, producer};
use tierlog_tests::node::tierlog_binary;
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

/// Every setting of the node's one list is a flag and an environment variable of the binary
/// under test: `tierlog serve --help` with each variable set shows the flag and the variable
/// with its value (the value is not parsed by `--help`).
#[test]
fn every_setting_is_a_flag_and_a_variable_of_the_binary() {
    let mut cmd = Command::new(tierlog_binary().unwrap());
    cmd.args(["serve", "--help"]);
    for (key, _) in std::env::vars() {
        if key.starts_with("TIERLOG_") {
            cmd.env_remove(key);
        }
    }
    let values: Vec<(&str, String)> = SETTINGS
        .iter()
        .map(|s| {
            (
                s.env,
                s.default_value()
                    .unwrap_or_else(|| format!("{}-set", s.key)),
            )
        })
        .collect();
    cmd.envs(values.iter().map(|(k, v)| (*k, v.as_str())));
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let help = String::from_utf8(out.stdout).unwrap();
    for (s, (env, value)) in SETTINGS.iter().zip(&values) {
        assert!(
            help.contains(&format!("--{} ", s.flag)),
            "`tierlog serve` has no flag --{}:\n{help}",
            s.flag
        );
        assert!(
            help.contains(&format!("[env: {env}={value}]")),
            "`tierlog serve` does not read {env}:\n{help}"
        );
    }
}

/// A TOML file holding every setting (the defaults, written by `NodeConfig` itself) is accepted
/// by the binary: the file keys it knows are the settings' names.
#[test]
fn a_file_with_every_setting_is_accepted() {
    let text = toml::to_string(&NodeConfig {
        // Only what the harness does not set by flag matters; keep the node's data in its dir.
        object_store: Some("memory://".into()),
        ..NodeConfig::default()
    })
    .unwrap();
    for s in SETTINGS.iter().filter(|s| s.default_value().is_some()) {
        assert!(
            text.contains(&format!("{} = ", s.key)),
            "{}:\n{text}",
            s.key
        );
    }
    let (_dir, path) = config_file(&text);
    let opts = NodeOptions {
        extra_args: vec!["--config".into(), path],
        ..NodeOptions::default()
    };
    let node = TestNode::start(opts).unwrap();
    assert_eq!(node.health_status().unwrap(), 200);
}

/// The orphan sweep's settings: the variables the tiering tests set are settings like any other,
/// a zero interval is refused (naming the setting), a zero grace is allowed.
#[test]
fn orphan_sweep_settings_are_checked() {
    let opts = NodeOptions {
        env: vec![("TIERLOG_TIERING_GC_INTERVAL".into(), "0s".into())],
        ..NodeOptions::default()
    };
    let err = TestNode::start(opts).expect_err("a node started with a zero sweep interval");
    let text = format!("{err:#}");
    assert!(text.contains("tiering_gc_interval"), "{text}");

    let opts = NodeOptions {
        env: vec![("TIERLOG_TIERING_GC_INTERVAL".into(), "300ms".into())],
        extra_args: vec!["--tiering-gc-grace".into(), "0s".into()],
        ..NodeOptions::default()
    };
    let node = TestNode::start(opts).unwrap();
    assert_eq!(node.health_status().unwrap(), 200);
}

/// `ingest/README.md`'s configuration reference names every setting's flag and variable.
#[test]
fn the_configuration_reference_documents_every_setting() {
    let path = tierlog_tests::tools::tests_dir().join("../ingest/README.md");
    let readme = std::fs::read_to_string(&path).unwrap();
    for s in SETTINGS {
        assert!(
            readme.contains(&format!("`--{} ", s.flag))
                || readme.contains(&format!("`--{}`", s.flag)),
            "{} does not document --{}",
            path.display(),
            s.flag
        );
        assert!(
            readme.contains(&format!("`{}`", s.env)),
            "{} does not document {}",
            path.display(),
            s.env
        );
    }
}
