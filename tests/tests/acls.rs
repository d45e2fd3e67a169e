//! ACLs end to end: Kafka's own `kafka-acls` (AclCommand, Apache Kafka 4.x) adds, lists and
//! removes ACLs on a node with a PLAINTEXT listener (every client is `User:ANONYMOUS`, and
//! `allow_everyone_if_no_acl_found` defaults to true there), and a DENY on a topic stops an
//! rdkafka consumer with a topic authorization error until it is removed.

use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use rdkafka::Message;
use rdkafka::consumer::Consumer;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::FutureRecord;
use tierlog_tests::TestNode;
use tierlog_tests::clients;
use tierlog_tests::kafka::{require_kafka, run_tool};

/// `kafka-acls.sh` (moved from `kafka.admin` to the tools module in Kafka 4).
const ACL_COMMAND: &str = "org.apache.kafka.tools.AclCommand";

/// A generous bound for one tool run (a JVM start on a busy two-core machine takes seconds).
const TOOL_TIMEOUT: Duration = Duration::from_secs(120);

fn acls(node: &TestNode, args: &[&str]) -> Result<String> {
    let bootstrap = node.bootstrap();
    let mut all = vec!["--bootstrap-server", bootstrap.as_str()];
    all.extend_from_slice(args);
    let out = run_tool(ACL_COMMAND, &all, None, TOOL_TIMEOUT)?
        .ok()
        .with_context(|| format!("kafka-acls {}\n{}", args.join(" "), node.log_tails()))?;
    Ok(out.stdout)
}

/// The (resource, entry) lines of a `--list`, normalized: `TOPIC:LITERAL:orders
/// User:alice * READ ALLOW`.
fn listed(out: &str) -> Vec<String> {
    let mut resource = String::new();
    let mut lines = Vec::new();
    for line in out.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("Current ACLs for resource `ResourcePattern(") {
            let field = |name: &str| {
                rest.split(", ")
                    .find_map(|f| f.strip_prefix(name))
                    .map(|v| v.trim_end_matches(")`:").trim_end_matches(')'))
                    .unwrap_or_default()
                    .to_owned()
            };
            resource = format!(
                "{}:{}:{}",
                field("resourceType="),
                field("patternType="),
                field("name=")
            );
        } else if let Some(rest) = line.strip_prefix("(principal=") {
            let parts: Vec<&str> = rest
                .trim_end_matches(')')
                .split(", ")
                .map(|p| p.split_once('=').map_or(p, |(_, v)| v))
                .collect();
            lines.push(format!("{resource} {}", parts.join(" ")));
        }
    }
    lines.sort();
    lines.dedup();
    lines
}

#[test]
fn kafka_acls_adds_lists_and_removes() -> Result<()> {
    if !require_kafka("kafka_acls_adds_lists_and_removes")? {
        return Ok(());
    }
    let node = TestNode::start_default()?;
    acls(
        &node,
        &[
            "--add",
            "--allow-principal",
            "User:alice",
            "--operation",
            "Read",
            "--operation",
            "Describe",
            "--topic",
            "orders",
        ],
    )?;
    acls(
        &node,
        &[
            "--add",
            "--deny-principal",
            "User:bob",
            "--deny-host",
            "10.0.0.1",
            "--operation",
            "Write",
            "--topic",
            "orders-",
            "--resource-pattern-type",
            "prefixed",
        ],
    )?;
    acls(
        &node,
        &[
            "--add",
            "--allow-principal",
            "User:*",
            "--operation",
            "Read",
            "--group",
            "*",
        ],
    )?;
    let all = listed(&acls(&node, &["--list"])?);
    let expected = [
        "GROUP:LITERAL:* User:* * READ ALLOW",
        "TOPIC:LITERAL:orders User:alice * DESCRIBE ALLOW",
        "TOPIC:LITERAL:orders User:alice * READ ALLOW",
        "TOPIC:PREFIXED:orders- User:bob 10.0.0.1 WRITE DENY",
    ];
    ensure!(all == expected, "listed {all:#?}");
    // Listing one topic shows its literal ACLs; the prefixed pattern is listed by its own.
    let one = listed(&acls(&node, &["--list", "--topic", "orders"])?);
    ensure!(one == expected[1..3], "listed {one:#?}");
    let prefixed = listed(&acls(
        &node,
        &[
            "--list",
            "--topic",
            "orders-",
            "--resource-pattern-type",
            "prefixed",
        ],
    )?);
    ensure!(prefixed == expected[3..], "listed {prefixed:#?}");
    // `match`: every pattern that applies to the topic orders-eu.
    let matching = listed(&acls(
        &node,
        &[
            "--list",
            "--topic",
            "orders-eu",
            "--resource-pattern-type",
            "match",
        ],
    )?);
    ensure!(matching == expected[3..], "listed {matching:#?}");

    acls(
        &node,
        &[
            "--remove",
            "--force",
            "--allow-principal",
            "User:alice",
            "--operation",
            "Read",
            "--topic",
            "orders",
        ],
    )?;
    acls(
        &node,
        &[
            "--remove",
            "--force",
            "--topic",
            "orders-",
            "--resource-pattern-type",
            "prefixed",
        ],
    )?;
    let left = listed(&acls(&node, &["--list"])?);
    ensure!(left == [expected[0], expected[1]], "listed {left:#?}");
    Ok(())
}

/// Reads `topic` from the start, subscribed in group `group`, until `want` records arrive or a
/// topic authorization error does; returns how many records it read, or the error.
/// (librdkafka reports a topic's authorization failure to a subscribed consumer; an assigned
/// one only retries its metadata quietly.)
fn read(
    node: &TestNode,
    topic: &str,
    group: &str,
    want: usize,
) -> Result<std::result::Result<usize, String>> {
    let consumer = clients::consumer(
        &node.bootstrap(),
        &[("group.id", group), ("auto.offset.reset", "earliest")],
    )?;
    consumer.subscribe(&[topic])?;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut n = 0;
    let mut errors = Vec::new();
    while std::time::Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                ensure!(m.payload().is_some());
                n += 1;
                if n == want {
                    return Ok(Ok(n));
                }
            }
            Some(Err(KafkaError::MessageConsumption(
                code @ RDKafkaErrorCode::TopicAuthorizationFailed,
            ))) => return Ok(Err(format!("{code:?}"))),
            Some(Err(e)) => {
                if e.to_string().contains("authoriz") {
                    return Ok(Err(e.to_string()));
                }
                if errors.len() < 10 {
                    errors.push(e.to_string());
                }
            }
            None => {}
        }
    }
    bail!(
        "read {n} of {want} records of {topic} and saw no authorization error; errors: {errors:?}\n{}",
        node.log_tails()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deny_stops_a_consumer_and_its_removal_restores_it() -> Result<()> {
    if !require_kafka("a_deny_stops_a_consumer_and_its_removal_restores_it")? {
        return Ok(());
    }
    let node = TestNode::start_default()?;
    let bootstrap = node.bootstrap();
    let topic = "acl-read";
    clients::create_topic(&bootstrap, topic, 1, &[]).await?;
    let producer = clients::producer(&bootstrap, &[])?;
    producer
        .send(
            FutureRecord::to(topic).payload("v").key("k").partition(0),
            clients::CLIENT_TIMEOUT,
        )
        .await
        .map_err(|(e, _)| e)?;

    let node = std::sync::Arc::new(node);
    let deny = [
        "--deny-principal",
        "User:ANONYMOUS",
        "--operation",
        "Read",
        "--topic",
        topic,
    ];
    let n = node.clone();
    tokio::task::spawn_blocking(move || {
        let mut args = vec!["--add"];
        args.extend_from_slice(&deny);
        acls(&n, &args)
    })
    .await??;
    let n = node.clone();
    let outcome = tokio::task::spawn_blocking(move || read(&n, topic, "g-denied", 1)).await??;
    ensure!(outcome.is_err(), "read {outcome:?} despite the DENY");

    let n = node.clone();
    tokio::task::spawn_blocking(move || {
        let mut args = vec!["--remove", "--force"];
        args.extend_from_slice(&deny);
        acls(&n, &args)
    })
    .await??;
    let n = node.clone();
    let outcome = tokio::task::spawn_blocking(move || read(&n, topic, "g-allowed", 1)).await??;
    ensure!(outcome == Ok(1), "after removing the DENY: {outcome:?}");
    Ok(())
}
