//! Kafka's own command-line and system-test tools against tierlog: `kafka-topics`,
//! `kafka-configs`, `kafka-console-producer`/`-consumer`, `kafka-consumer-groups`,
//! `kafka-get-offsets`, `kafka-delete-records`, `kafka-verifiable-producer`/`-consumer`
//! (Apache Kafka 4.3.1, installed by `tests/install.sh`).
//!
//! Each scenario is a function over a [`Broker`], so it runs against tierlog and, in
//! `every_scenario_passes_against_apache_kafka`, against a real Apache Kafka: the assertions
//! hold for the reference implementation, so a failure against tierlog is tierlog's.
//!
//! The Java producer is idempotent by default (since Kafka 3.0): the producer scenarios run
//! with the default settings and with `enable.idempotence=false`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use tierlog_tests::TestNode;
use tierlog_tests::kafka::{Broker, KafkaServer, ToolOutput, class, require_kafka, run_tool};
use tierlog_tests::wait::{Poll, wait_for};

/// One scenario, run against either broker.
type Scenario = fn(&dyn Broker) -> Result<()>;

/// A generous bound for one tool run (a JVM start on a busy two-core machine takes seconds).
const TOOL_TIMEOUT: Duration = Duration::from_secs(120);

/// The producer setting of the scenarios that check the non-idempotent path.
const NO_IDEMPOTENCE: &str = "enable.idempotence=false";

fn tool(broker: &dyn Broker, main_class: &str, args: &[&str]) -> Result<ToolOutput> {
    let bootstrap = broker.bootstrap();
    let mut all = vec!["--bootstrap-server", bootstrap.as_str()];
    all.extend_from_slice(args);
    run_tool(main_class, &all, None, TOOL_TIMEOUT)?
        .ok()
        .with_context(|| format!("{} against {}", main_class, broker.name()))
}

fn tool_with_input(
    broker: &dyn Broker,
    main_class: &str,
    args: &[&str],
    input: &[u8],
) -> Result<ToolOutput> {
    let bootstrap = broker.bootstrap();
    let mut all = vec!["--bootstrap-server", bootstrap.as_str()];
    all.extend_from_slice(args);
    run_tool(main_class, &all, Some(input), TOOL_TIMEOUT)?
        .ok()
        .with_context(|| format!("{} against {}", main_class, broker.name()))
}

/// Runs `scenario` against a fresh default tierlog node (skips loudly without Kafka's jars).
fn against_tierlog(test: &str, scenario: Scenario) -> Result<()> {
    if !require_kafka(test)? {
        return Ok(());
    }
    let node = TestNode::start_default()?;
    scenario(&node).with_context(|| format!("{test} against tierlog:\n{}", node.log_tails()))
}

// ---- kafka-topics --------------------------------------------------------------------------

fn topics_scenario(broker: &dyn Broker) -> Result<()> {
    let topic = "tools-topics";
    let out = tool(
        broker,
        class::TOPICS,
        &[
            "--create",
            "--topic",
            topic,
            "--partitions",
            "3",
            "--replication-factor",
            "1",
            "--config",
            "retention.ms=123456789",
            "--config",
            "max.message.bytes=2000000",
        ],
    )?;
    ensure!(
        out.stdout.contains(&format!("Created topic {topic}.")),
        "create: {}",
        out.stdout
    );

    let described = describe_topic(broker, topic)?;
    ensure!(described.partitions == 3, "describe: {described:?}");
    ensure!(described.replication_factor == 1, "describe: {described:?}");
    ensure!(
        described.configs.get("retention.ms").map(String::as_str) == Some("123456789")
            && described
                .configs
                .get("max.message.bytes")
                .map(String::as_str)
                == Some("2000000"),
        "describe shows the configs given at creation: {described:?}"
    );
    ensure!(
        described.leaders.len() == 3 && described.leaders.iter().all(|l| *l >= 0),
        "every partition has a leader: {described:?}"
    );

    // Creating it again is an error the tool reports (exit 1), as Kafka does.
    let again = run_tool(
        class::TOPICS,
        &[
            "--bootstrap-server",
            &broker.bootstrap(),
            "--create",
            "--topic",
            topic,
            "--partitions",
            "1",
        ],
        None,
        TOOL_TIMEOUT,
    )?;
    ensure!(
        again.code != Some(0) && again.stdout.contains("already exists")
            || again.stderr.contains("already exists"),
        "creating an existing topic must fail with TopicExistsException: {again:?}"
    );

    tool(
        broker,
        class::TOPICS,
        &["--alter", "--topic", topic, "--partitions", "5"],
    )?;
    let described = describe_topic(broker, topic)?;
    ensure!(described.partitions == 5, "after --alter: {described:?}");

    let list = tool(broker, class::TOPICS, &["--list"])?;
    ensure!(
        list.stdout.lines().any(|l| l.trim() == topic),
        "list: {}",
        list.stdout
    );

    tool(broker, class::TOPICS, &["--delete", "--topic", topic])?;
    wait_for(
        "the deleted topic to leave kafka-topics --list",
        Duration::from_secs(30),
        Duration::from_millis(200),
        || {
            let list = tool(broker, class::TOPICS, &["--list"])?;
            Ok(if list.stdout.lines().any(|l| l.trim() == topic) {
                Poll::Pending(list.stdout)
            } else {
                Poll::Ready(())
            })
        },
    )
}

#[derive(Debug, Default)]
struct TopicDescription {
    partitions: u32,
    replication_factor: u32,
    configs: BTreeMap<String, String>,
    leaders: Vec<i32>,
}

/// Parses `kafka-topics --describe` output: a summary line
/// (`Topic: t  TopicId: …  PartitionCount: 3  ReplicationFactor: 1  Configs: k=v,k=v`) and one
/// line per partition (`Topic: t  Partition: 0  Leader: 1  Replicas: 1  Isr: 1 …`).
fn describe_topic(broker: &dyn Broker, topic: &str) -> Result<TopicDescription> {
    let out = tool(broker, class::TOPICS, &["--describe", "--topic", topic])?;
    let mut d = TopicDescription::default();
    for line in out.stdout.lines() {
        let fields: Vec<&str> = line.split('\t').map(str::trim).collect();
        let field = |name: &str| {
            fields
                .iter()
                .find_map(|f| f.strip_prefix(name).map(str::trim))
        };
        if let Some(count) = field("PartitionCount:") {
            d.partitions = count.parse().context("PartitionCount")?;
            d.replication_factor = field("ReplicationFactor:")
                .context("ReplicationFactor")?
                .parse()?;
            for kv in field("Configs:").unwrap_or("").split(',') {
                if let Some((k, v)) = kv.split_once('=') {
                    d.configs.insert(k.to_owned(), v.to_owned());
                }
            }
        } else if let Some(leader) = field("Leader:") {
            d.leaders.push(leader.parse().context("Leader")?);
        }
    }
    ensure!(
        d.partitions > 0,
        "unparsable describe output: {}",
        out.stdout
    );
    Ok(d)
}

// ---- kafka-configs -------------------------------------------------------------------------

fn configs_scenario(broker: &dyn Broker) -> Result<()> {
    let topic = "tools-configs";
    tool(
        broker,
        class::TOPICS,
        &["--create", "--topic", topic, "--partitions", "1"],
    )?;
    let entity = ["--entity-type", "topics", "--entity-name", topic];
    let configs = |extra: &[&str]| -> Result<String> {
        let mut args = entity.to_vec();
        args.extend_from_slice(extra);
        Ok(tool(broker, class::CONFIGS, &args)?.stdout)
    };

    let before = configs(&["--describe"])?;
    ensure!(
        dynamic_configs(&before).is_empty(),
        "a new topic has no dynamic configs: {before}"
    );

    let altered = configs(&[
        "--alter",
        "--add-config",
        "retention.ms=99999,segment.bytes=20000000",
    ])?;
    ensure!(
        altered.contains("Completed updating config"),
        "alter: {altered}"
    );
    let described = dynamic_configs(&configs(&["--describe"])?);
    ensure!(
        described.get("retention.ms").map(String::as_str) == Some("99999")
            && described.get("segment.bytes").map(String::as_str) == Some("20000000")
            && described.len() == 2,
        "after --add-config: {described:?}"
    );

    configs(&["--alter", "--delete-config", "retention.ms"])?;
    let described = dynamic_configs(&configs(&["--describe"])?);
    ensure!(
        !described.contains_key("retention.ms") && described.contains_key("segment.bytes"),
        "after --delete-config retention.ms: {described:?}"
    );

    // --all lists every topic config with its value: the defaults Kafka documents, and the
    // dynamic one that is set.
    let all = dynamic_configs(&configs(&["--describe", "--all"])?);
    for (name, value) in [
        ("retention.ms", "604800000"),
        ("cleanup.policy", "delete"),
        ("segment.bytes", "20000000"),
        ("min.insync.replicas", "1"),
    ] {
        ensure!(
            all.get(name).map(String::as_str) == Some(value),
            "--describe --all: {name} should be {value}, got {:?}",
            all.get(name)
        );
    }

    // An invalid value is refused and changes nothing.
    let bad = run_tool(
        class::CONFIGS,
        &[
            "--bootstrap-server",
            &broker.bootstrap(),
            "--entity-type",
            "topics",
            "--entity-name",
            topic,
            "--alter",
            "--add-config",
            "retention.ms=not-a-number",
        ],
        None,
        TOOL_TIMEOUT,
    )?;
    ensure!(bad.code != Some(0), "an invalid value must fail: {bad:?}");
    let described = dynamic_configs(&configs(&["--describe"])?);
    ensure!(
        !described.contains_key("retention.ms"),
        "a refused alter changed the configs: {described:?}"
    );
    Ok(())
}

/// `name=value` pairs of `kafka-configs --describe` output (lines `  name=value sensitive=…`).
fn dynamic_configs(output: &str) -> BTreeMap<String, String> {
    output
        .lines()
        .filter(|l| l.starts_with("  "))
        .filter_map(|l| {
            let first = l.trim().split(' ').next()?;
            let (k, v) = first.split_once('=')?;
            Some((k.to_owned(), v.to_owned()))
        })
        .collect()
}

// ---- console producer and consumer, consumer groups ------------------------------------------

/// Produces `lines` with `kafka-console-producer` (`producer_props` as `--command-property`)
/// and reads them back with `kafka-console-consumer` in group `group`.
fn console_roundtrip(
    broker: &dyn Broker,
    topic: &str,
    group: &str,
    producer_props: &[&str],
) -> Result<Vec<String>> {
    tool(
        broker,
        class::TOPICS,
        &["--create", "--topic", topic, "--partitions", "3"],
    )?;
    let lines: Vec<String> = (0..100).map(|i| format!("key-{i}:value-{i}")).collect();
    let mut input = lines.join("\n");
    input.push('\n');
    let mut args = vec![
        "--topic",
        topic,
        "--reader-property",
        "parse.key=true",
        "--reader-property",
        "key.separator=:",
    ];
    for prop in producer_props {
        args.extend(["--command-property", prop]);
    }
    let produced = tool_with_input(broker, class::CONSOLE_PRODUCER, &args, input.as_bytes())?;
    // The console producer logs send failures and still exits 0: an error line is a failure.
    ensure!(
        !produced.stderr.contains("ERROR"),
        "console producer reported errors:\n{}",
        produced.stderr
    );

    let consumed = tool(
        broker,
        class::CONSOLE_CONSUMER,
        &[
            "--topic",
            topic,
            "--group",
            group,
            "--from-beginning",
            "--max-messages",
            "100",
            "--timeout-ms",
            "60000",
            "--formatter-property",
            "print.key=true",
            "--formatter-property",
            "key.separator=:",
        ],
    )?;
    let got: BTreeSet<&str> = consumed.stdout.lines().collect();
    let want: BTreeSet<&str> = lines.iter().map(String::as_str).collect();
    ensure!(
        got == want,
        "console consumer read {} distinct lines, {} expected; missing {:?}",
        got.len(),
        want.len(),
        want.difference(&got).take(5).collect::<Vec<_>>()
    );
    ensure!(
        consumed
            .stderr
            .contains("Processed a total of 100 messages"),
        "console consumer summary: {}",
        consumed.stderr
    );
    Ok(lines)
}

fn console_scenario(broker: &dyn Broker) -> Result<()> {
    console_roundtrip(
        broker,
        "tools-console",
        "tools-console-group",
        &[NO_IDEMPOTENCE],
    )?;
    Ok(())
}

fn console_default_settings_scenario(broker: &dyn Broker) -> Result<()> {
    console_roundtrip(
        broker,
        "tools-console-default",
        "tools-console-default",
        &[],
    )?;
    Ok(())
}

/// One row of `kafka-consumer-groups --describe`.
#[derive(Debug)]
struct GroupRow {
    partition: i32,
    current: Option<i64>,
    log_end: i64,
    lag: Option<i64>,
}

fn describe_group(broker: &dyn Broker, group: &str) -> Result<Vec<GroupRow>> {
    let out = tool(
        broker,
        class::CONSUMER_GROUPS,
        &["--describe", "--group", group],
    )?;
    let mut rows = Vec::new();
    for line in out.stdout.lines() {
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols.len() < 6 || cols[0] != group {
            continue;
        }
        let num = |s: &str| s.parse::<i64>().ok();
        rows.push(GroupRow {
            partition: cols[2].parse().context("PARTITION")?,
            current: num(cols[3]),
            log_end: cols[4].parse().context("LOG-END-OFFSET")?,
            lag: num(cols[5]),
        });
    }
    rows.sort_by_key(|r| r.partition);
    ensure!(!rows.is_empty(), "no rows for {group}: {}", out.stdout);
    Ok(rows)
}

fn reset(broker: &dyn Broker, group: &str, topic: &str, how: &[&str]) -> Result<()> {
    let mut args = vec![
        "--reset-offsets",
        "--group",
        group,
        "--topic",
        topic,
        "--execute",
    ];
    args.extend_from_slice(how);
    tool(broker, class::CONSUMER_GROUPS, &args)?;
    Ok(())
}

fn consumer_groups_scenario(broker: &dyn Broker) -> Result<()> {
    let (topic, group) = ("tools-groups", "tools-groups-group");
    console_roundtrip(broker, topic, group, &[NO_IDEMPOTENCE])?;

    let list = tool(broker, class::CONSUMER_GROUPS, &["--list"])?;
    ensure!(
        list.stdout.lines().any(|l| l.trim() == group),
        "--list: {}",
        list.stdout
    );

    // The console consumer committed everything it read: no lag anywhere.
    let rows = describe_group(broker, group)?;
    ensure!(rows.len() == 3, "three partitions: {rows:?}");
    let total: i64 = rows.iter().map(|r| r.log_end).sum();
    ensure!(total == 100, "log end offsets add up to 100: {rows:?}");
    ensure!(
        rows.iter()
            .all(|r| r.current == Some(r.log_end) && r.lag == Some(0)),
        "committed at the log end, lag 0: {rows:?}"
    );

    reset(broker, group, topic, &["--to-earliest"])?;
    let rows = describe_group(broker, group)?;
    ensure!(
        rows.iter()
            .all(|r| r.current == Some(0) && r.lag == Some(r.log_end)),
        "after --to-earliest: {rows:?}"
    );

    reset(broker, group, topic, &["--to-latest"])?;
    reset(broker, group, topic, &["--shift-by", "-1"])?;
    let rows = describe_group(broker, group)?;
    ensure!(
        rows.iter()
            .all(|r| r.current == Some((r.log_end - 1).max(0))),
        "after --to-latest then --shift-by -1: {rows:?}"
    );

    // Every record was written moments ago: a datetime in the past resets to the start, one
    // in the future to the end.
    reset(
        broker,
        group,
        topic,
        &["--to-datetime", "2020-01-01T00:00:00.000"],
    )?;
    let rows = describe_group(broker, group)?;
    ensure!(
        rows.iter().all(|r| r.current == Some(0)),
        "after --to-datetime 2020: {rows:?}"
    );
    reset(
        broker,
        group,
        topic,
        &["--to-datetime", "2999-01-01T00:00:00.000"],
    )?;
    let rows = describe_group(broker, group)?;
    ensure!(
        rows.iter().all(|r| r.current == Some(r.log_end)),
        "after --to-datetime 2999: {rows:?}"
    );

    let deleted = tool(
        broker,
        class::CONSUMER_GROUPS,
        &["--delete", "--group", group],
    )?;
    ensure!(
        deleted
            .stdout
            .contains("Deletion of requested consumer groups")
            && deleted.stdout.contains("was successful"),
        "--delete: {}",
        deleted.stdout
    );
    let list = tool(broker, class::CONSUMER_GROUPS, &["--list"])?;
    ensure!(
        !list.stdout.lines().any(|l| l.trim() == group),
        "the deleted group is still listed: {}",
        list.stdout
    );
    Ok(())
}

// ---- kafka-get-offsets and kafka-delete-records ----------------------------------------------

/// `topic:partition:offset` lines of `kafka-get-offsets`.
fn get_offsets(broker: &dyn Broker, topic: &str, time: &str) -> Result<BTreeMap<i32, i64>> {
    let out = tool(
        broker,
        class::GET_OFFSETS,
        &["--topic", topic, "--time", time],
    )?;
    let mut offsets = BTreeMap::new();
    for line in out.stdout.lines() {
        let mut parts = line.trim().rsplitn(3, ':');
        let (Some(offset), Some(partition), Some(name)) =
            (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if name == topic {
            offsets.insert(partition.parse()?, offset.parse()?);
        }
    }
    Ok(offsets)
}

fn offsets_and_delete_records_scenario(broker: &dyn Broker) -> Result<()> {
    let topic = "tools-offsets";
    // The records' create times are years old: without `retention.ms=-1` a broker's retention
    // may delete them mid-scenario (Kafka's first check runs 30 s after it starts).
    tool(
        broker,
        class::TOPICS,
        &[
            "--create",
            "--topic",
            topic,
            "--partitions",
            "2",
            "--config",
            "retention.ms=-1",
        ],
    )?;
    // The verifiable producer sends increasing integers; with a fixed create time the records'
    // timestamps are known.
    let base_ts: i64 = 1_700_000_000_000;
    let acked = verifiable_produce(broker, topic, 60, &[NO_IDEMPOTENCE], Some(base_ts))?;
    ensure!(acked.len() == 60, "60 acknowledged, got {}", acked.len());
    let mut per_partition: BTreeMap<i32, i64> = BTreeMap::new();
    for (partition, _) in &acked {
        *per_partition.entry(*partition).or_default() += 1;
    }

    let latest = get_offsets(broker, topic, "-1")?;
    let earliest = get_offsets(broker, topic, "-2")?;
    ensure!(
        earliest.values().all(|o| *o == 0) && earliest.len() == 2,
        "earliest: {earliest:?}"
    );
    for p in 0..2 {
        ensure!(
            latest.get(&p).copied() == Some(per_partition.get(&p).copied().unwrap_or(0)),
            "latest {latest:?} vs acknowledged per partition {per_partition:?}"
        );
    }
    // Every record has a timestamp at or after `base_ts`: a time before it finds each
    // non-empty partition's first offset; a time after every record finds none (Kafka's tool
    // prints no line for a partition without an answer).
    let before_all = get_offsets(broker, topic, &(base_ts - 1).to_string())?;
    let non_empty: BTreeMap<i32, i64> = per_partition.keys().map(|p| (*p, 0)).collect();
    ensure!(
        before_all == non_empty,
        "a timestamp before every record: {before_all:?}, want {non_empty:?}"
    );
    let after_all = get_offsets(broker, topic, "99999999999999")?;
    ensure!(
        after_all.is_empty(),
        "a timestamp after every record finds none: {after_all:?}"
    );

    // Delete the first 5 records of the partition that got the most (the sticky partitioner
    // decides which).
    let (&busiest, &count) = per_partition
        .iter()
        .max_by_key(|(_, c)| **c)
        .context("no partition got records")?;
    ensure!(count >= 5, "partition {busiest} has {count} records");
    let dir = tempfile::tempdir()?;
    let json = dir.path().join("delete.json");
    std::fs::write(
        &json,
        format!(
            r#"{{"partitions":[{{"topic":"{topic}","partition":{busiest},"offset":5}}],"version":1}}"#
        ),
    )?;
    let json_arg = json.display().to_string();
    let out = tool(
        broker,
        class::DELETE_RECORDS,
        &["--offset-json-file", &json_arg],
    )?;
    ensure!(
        out.stdout.contains("low_watermark: 5"),
        "delete-records: {}",
        out.stdout
    );
    let earliest = get_offsets(broker, topic, "-2")?;
    ensure!(
        earliest.get(&busiest) == Some(&5),
        "earliest after delete-records: {earliest:?}"
    );
    Ok(())
}

// ---- verifiable producer and consumer --------------------------------------------------------

/// Runs `kafka-verifiable-producer` for `count` messages; returns the acknowledged
/// (partition, offset) pairs, checking the tool reported no failed send.
fn verifiable_produce(
    broker: &dyn Broker,
    topic: &str,
    count: u32,
    producer_props: &[&str],
    create_time: Option<i64>,
) -> Result<Vec<(i32, i64)>> {
    let dir = tempfile::tempdir()?;
    let config = dir.path().join("producer.properties");
    std::fs::write(&config, producer_props.join("\n"))?;
    let config_arg = config.display().to_string();
    let count_arg = count.to_string();
    let ts_arg = create_time.map(|t| t.to_string());
    let mut args = vec![
        "--topic",
        topic,
        "--max-messages",
        &count_arg,
        "--command-config",
        &config_arg,
    ];
    if let Some(ts) = &ts_arg {
        args.extend(["--message-create-time", ts]);
    }
    let out = tool(broker, class::VERIFIABLE_PRODUCER, &args)?;
    let mut acked = Vec::new();
    for event in json_lines(&out.stdout) {
        match event["name"].as_str() {
            Some("producer_send_success") => acked.push((
                i32::try_from(event["partition"].as_i64().context("partition")?)?,
                event["offset"].as_i64().context("offset")?,
            )),
            Some("producer_send_error") => bail!("verifiable producer: a send failed: {event}"),
            _ => {}
        }
    }
    Ok(acked)
}

fn json_lines(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn verifiable_scenario_with(
    broker: &dyn Broker,
    topic: &str,
    producer_props: &[&str],
) -> Result<()> {
    tool(
        broker,
        class::TOPICS,
        &["--create", "--topic", topic, "--partitions", "4"],
    )?;
    let acked = verifiable_produce(broker, topic, 2000, producer_props, None)?;
    ensure!(
        acked.len() == 2000,
        "2000 acknowledged, got {}",
        acked.len()
    );
    let unique: BTreeSet<_> = acked.iter().collect();
    ensure!(
        unique.len() == acked.len(),
        "an offset was acknowledged twice"
    );

    let out = tool(
        broker,
        class::VERIFIABLE_CONSUMER,
        &[
            "--topic",
            topic,
            "--group-id",
            &format!("{topic}-verifier"),
            "--max-messages",
            "2000",
            "--reset-policy",
            "earliest",
        ],
    )?;
    let mut consumed: BTreeSet<(i32, i64)> = BTreeSet::new();
    let mut committed_ok = false;
    for event in json_lines(&out.stdout) {
        match event["name"].as_str() {
            Some("records_consumed") => {
                for p in event["partitions"].as_array().context("partitions")? {
                    let partition = i32::try_from(p["partition"].as_i64().context("partition")?)?;
                    let (min, max) = (
                        p["minOffset"].as_i64().context("minOffset")?,
                        p["maxOffset"].as_i64().context("maxOffset")?,
                    );
                    consumed.extend((min..=max).map(|o| (partition, o)));
                }
            }
            Some("offsets_committed") => {
                ensure!(
                    event["success"].as_bool() == Some(true),
                    "a commit failed: {event}"
                );
                committed_ok = true;
            }
            _ => {}
        }
    }
    let missing: Vec<_> = unique.iter().filter(|a| !consumed.contains(a)).collect();
    ensure!(
        missing.is_empty(),
        "{} acknowledged records were not consumed, e.g. {:?}",
        missing.len(),
        missing.iter().take(5).collect::<Vec<_>>()
    );
    ensure!(committed_ok, "the verifiable consumer committed nothing");
    Ok(())
}

fn verifiable_scenario(broker: &dyn Broker) -> Result<()> {
    verifiable_scenario_with(broker, "tools-verifiable", &[NO_IDEMPOTENCE, "acks=all"])
}

fn verifiable_default_settings_scenario(broker: &dyn Broker) -> Result<()> {
    verifiable_scenario_with(broker, "tools-verifiable-default", &[])
}

// ---- the tests -----------------------------------------------------------------------------

#[test]
fn kafka_topics_creates_describes_alters_and_deletes() -> Result<()> {
    against_tierlog("kafka_topics", topics_scenario)
}

#[test]
fn kafka_configs_describes_alters_and_deletes_topic_configs() -> Result<()> {
    against_tierlog("kafka_configs", configs_scenario)
}

#[test]
fn console_producer_and_consumer_round_trip() -> Result<()> {
    against_tierlog("console", console_scenario)
}

#[test]
fn console_producer_with_default_settings() -> Result<()> {
    against_tierlog("console_default", console_default_settings_scenario)
}

#[test]
fn kafka_consumer_groups_lists_describes_resets_and_deletes() -> Result<()> {
    against_tierlog("consumer_groups", consumer_groups_scenario)
}

#[test]
fn kafka_get_offsets_and_delete_records() -> Result<()> {
    against_tierlog("get_offsets", offsets_and_delete_records_scenario)
}

#[test]
fn verifiable_producer_and_consumer_lose_nothing() -> Result<()> {
    against_tierlog("verifiable", verifiable_scenario)
}

#[test]
fn verifiable_producer_with_default_settings() -> Result<()> {
    against_tierlog("verifiable_default", verifiable_default_settings_scenario)
}

/// Runs `scenarios` against one real Apache Kafka: the assertions are Kafka's behaviour, not
/// tierlog's. Split over a few tests so that each stays well inside the per-test time limit.
fn against_apache_kafka(test: &str, scenarios: &[(&str, Scenario)]) -> Result<()> {
    let Some(kafka) = KafkaServer::start_or_skip(test)? else {
        return Ok(());
    };
    for (name, scenario) in scenarios {
        scenario(&kafka).with_context(|| format!("scenario {name} against Apache Kafka"))?;
    }
    Ok(())
}

#[test]
fn admin_scenarios_pass_against_apache_kafka() -> Result<()> {
    against_apache_kafka(
        "admin scenarios against Apache Kafka",
        &[
            ("topics", topics_scenario),
            ("configs", configs_scenario),
            ("get_offsets", offsets_and_delete_records_scenario),
        ],
    )
}

#[test]
fn group_scenarios_pass_against_apache_kafka() -> Result<()> {
    against_apache_kafka(
        "group scenarios against Apache Kafka",
        &[("consumer_groups", consumer_groups_scenario)],
    )
}

#[test]
fn client_scenarios_pass_against_apache_kafka() -> Result<()> {
    against_apache_kafka(
        "client scenarios against Apache Kafka",
        &[
            ("console", console_scenario),
            ("console_default", console_default_settings_scenario),
            ("verifiable", verifiable_scenario),
            ("verifiable_default", verifiable_default_settings_scenario),
        ],
    )
}
