//! SCRAM users through `kafka-configs --entity-type users` (AlterUserScramCredentials and
//! DescribeUserScramCredentials, KIP-554), against tierlog and against Apache Kafka: the same
//! scenario passes on both, so a failure against tierlog is tierlog's.
//!
//! Kafka 4 alters a user at most once per AlterUserScramCredentials request, so
//! `--add-config 'SCRAM-SHA-512=[…],SCRAM-SHA-256=[…]'` (one request) is refused with
//! DUPLICATE_RESOURCE; each mechanism is added with its own command.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use tierlog_tests::TestNode;
use tierlog_tests::kafka::{Broker, KafkaServer, ToolOutput, class, require_kafka, run_tool};

/// A generous bound for one tool run (a JVM start on a busy two-core machine takes seconds).
const TOOL_TIMEOUT: Duration = Duration::from_secs(120);

fn configs(broker: &dyn Broker, args: &[&str]) -> Result<ToolOutput> {
    let bootstrap = broker.bootstrap();
    let mut all = vec!["--bootstrap-server", bootstrap.as_str()];
    all.extend_from_slice(args);
    run_tool(class::CONFIGS, &all, None, TOOL_TIMEOUT)?
        .ok()
        .with_context(|| format!("kafka-configs {args:?} against {}", broker.name()))
}

/// The `--describe --entity-type users` line of `user`, e.g.
/// `SCRAM credential configs for user-principal 'alice' are SCRAM-SHA-256=iterations=8192, …`.
fn describe_line(broker: &dyn Broker, user: &str) -> Result<String> {
    let out = configs(broker, &["--describe", "--entity-type", "users"])?;
    Ok(out
        .stdout
        .lines()
        .find(|l| l.contains(&format!("'{user}'")) && l.contains("SCRAM"))
        .unwrap_or_default()
        .to_owned())
}

/// Runs kafka-configs expecting it to fail; returns its stdout and stderr together.
fn configs_failing(broker: &dyn Broker, args: &[&str]) -> Result<String> {
    let bootstrap = broker.bootstrap();
    let mut all = vec!["--bootstrap-server", bootstrap.as_str()];
    all.extend_from_slice(args);
    let out = run_tool(class::CONFIGS, &all, None, TOOL_TIMEOUT)?;
    ensure!(
        out.code != Some(0),
        "kafka-configs {args:?} succeeded: {}",
        out.stdout
    );
    Ok(format!("{}{}", out.stdout, out.stderr))
}

fn add(broker: &dyn Broker, user: &str, config: &str) -> Result<ToolOutput> {
    configs(
        broker,
        &[
            "--alter",
            "--add-config",
            config,
            "--entity-type",
            "users",
            "--entity-name",
            user,
        ],
    )
}

fn scenario(broker: &dyn Broker) -> Result<()> {
    // Kafka 4 (KRaft's ScramControlManager) alters each user at most once per request, and
    // kafka-configs sends both mechanisms in one request: DUPLICATE_RESOURCE, nothing written.
    let both = configs_failing(
        broker,
        &[
            "--alter",
            "--add-config",
            "SCRAM-SHA-512=[password=secret],SCRAM-SHA-256=[iterations=8192,password=s2]",
            "--entity-type",
            "users",
            "--entity-name",
            "alice",
        ],
    )?;
    ensure!(
        both.contains("A user credential cannot be altered twice in the same request"),
        "duplicate user refused: {both}"
    );
    ensure!(
        describe_line(broker, "alice")?.is_empty(),
        "nothing written"
    );

    // One mechanism per request.
    add(broker, "alice", "SCRAM-SHA-512=[password=secret]")?;
    add(
        broker,
        "alice",
        "SCRAM-SHA-256=[iterations=8192,password=s2]",
    )?;
    let line = describe_line(broker, "alice")?;
    ensure!(
        line.contains("SCRAM-SHA-256=iterations=8192")
            && line.contains("SCRAM-SHA-512=iterations=4096"),
        "both mechanisms with their iterations: {line:?}"
    );

    configs(
        broker,
        &[
            "--alter",
            "--delete-config",
            "SCRAM-SHA-512",
            "--entity-type",
            "users",
            "--entity-name",
            "alice",
        ],
    )?;
    let line = describe_line(broker, "alice")?;
    ensure!(
        line.contains("SCRAM-SHA-256=iterations=8192") && !line.contains("SCRAM-SHA-512"),
        "SCRAM-SHA-512 removed, SCRAM-SHA-256 kept: {line:?}"
    );

    // Deleting a credential that does not exist: RESOURCE_NOT_FOUND.
    let all = configs_failing(
        broker,
        &[
            "--alter",
            "--delete-config",
            "SCRAM-SHA-512",
            "--entity-type",
            "users",
            "--entity-name",
            "alice",
        ],
    )?;
    ensure!(
        all.contains("Attempt to delete a user credential that does not exist"),
        "missing credential: {all}"
    );
    Ok(())
}

#[test]
fn scram_users_through_kafka_configs() -> Result<()> {
    if !require_kafka("scram_users_through_kafka_configs")? {
        return Ok(());
    }
    let node = TestNode::start_default()?;
    scenario(&node).with_context(|| format!("against tierlog:\n{}", node.log_tails()))
}

#[test]
fn scram_users_scenario_passes_against_apache_kafka() -> Result<()> {
    let Some(kafka) =
        KafkaServer::start_or_skip("scram_users_scenario_passes_against_apache_kafka")?
    else {
        return Ok(());
    };
    scenario(&kafka).context("against Apache Kafka")
}
