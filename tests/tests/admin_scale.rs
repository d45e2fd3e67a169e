//! Admin at scale (issue 16): DescribeTopicPartitions, the paged API the Java admin (3.8+)
//! uses for `describeTopics`, and DescribeLogDirs (`kafka-log-dirs`).
//!
//! Each scenario is a function over a [`Broker`] and runs against a tierlog node and against
//! a real Apache Kafka 4.3.1, both limited to [`PAGE`] partitions per DescribeTopicPartitions
//! response (tierlog's `--max-request-partition-size-limit`, Kafka's
//! `max.request.partition.size.limit`), so a topic of [`PARTITIONS`] partitions takes several
//! pages without creating thousands of partitions. The assertions hold for Kafka, so a failure
//! against tierlog is tierlog's.
//!
//! One test (tierlog only) keeps the default page of 2000 and describes a topic of 2,500
//! partitions: about five open files a partition, so the node needs a file limit above ~13,000
//! (it raises its soft limit to the hard one at start).

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use kafka_protocol::messages::describe_topic_partitions_request::{Cursor, TopicRequest};
use kafka_protocol::messages::{DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse};
use kafka_protocol::records::Compression;
use serde_json::Value;
use tierlog_tests::kafka::{Broker, KafkaServer, ToolOutput, class, require_kafka, run_tool};
use tierlog_tests::wait::{Poll, wait_for};
use tierlog_tests::wire::{encode_batch, topic_name};
use tierlog_tests::{NodeOptions, TestNode};

/// Most partitions in one DescribeTopicPartitions response, on both brokers.
const PAGE: i32 = 10;
/// Partitions of the described topic: two full pages and a part.
const PARTITIONS: i32 = 25;
/// A JVM start on a busy two-core machine takes seconds.
const TOOL_TIMEOUT: Duration = Duration::from_secs(120);

type Scenario = fn(&dyn Broker) -> Result<()>;

fn tool(broker: &dyn Broker, main_class: &str, args: &[&str]) -> Result<ToolOutput> {
    let bootstrap = broker.bootstrap();
    let mut all = vec!["--bootstrap-server", bootstrap.as_str()];
    all.extend_from_slice(args);
    run_tool(main_class, &all, None, TOOL_TIMEOUT)?
        .ok()
        .with_context(|| format!("{} against {}", main_class, broker.name()))
}

fn create_topic(broker: &dyn Broker, topic: &str, partitions: i32) -> Result<()> {
    let n = partitions.to_string();
    tool(
        broker,
        class::TOPICS,
        &["--create", "--topic", topic, "--partitions", &n],
    )?;
    Ok(())
}

fn against_tierlog(test: &str, scenario: Scenario) -> Result<()> {
    if !require_kafka(test)? {
        return Ok(());
    }
    let node = TestNode::start(
        NodeOptions::default().args(["--max-request-partition-size-limit", &PAGE.to_string()]),
    )?;
    scenario(&node).with_context(|| format!("{test} against tierlog:\n{}", node.log_tails()))
}

fn against_kafka(test: &str, scenario: Scenario) -> Result<()> {
    if !require_kafka(test)? {
        return Ok(());
    }
    let kafka = KafkaServer::start(&[("max.request.partition.size.limit", &PAGE.to_string())])?;
    scenario(&kafka).with_context(|| format!("{test} against kafka:\n{}", kafka.log_tail(40)))
}

// ---- DescribeTopicPartitions ---------------------------------------------------------------

/// The partitions `kafka-topics --describe --topic topic` (plus `extra`) lists, in order,
/// each checked to have a leader, replicas and an ISR.
fn described_partitions(broker: &dyn Broker, topic: &str, extra: &[&str]) -> Result<Vec<i32>> {
    let mut args = vec!["--describe", "--topic", topic];
    args.extend_from_slice(extra);
    let out = tool(broker, class::TOPICS, &args)?;
    let mut seen = Vec::new();
    for line in out.stdout.lines() {
        let fields: Vec<&str> = line.split('\t').map(str::trim).collect();
        let field = |name: &str| {
            fields
                .iter()
                .find_map(|f| f.strip_prefix(name).map(str::trim))
        };
        if let Some(p) = field("Partition:") {
            let leader: i32 = field("Leader:").context("Leader")?.parse()?;
            ensure!(leader >= 0, "partition {p} has no leader: {line}");
            ensure!(
                field("Replicas:").is_some_and(|r| !r.is_empty())
                    && field("Isr:").is_some_and(|r| !r.is_empty()),
                "replicas and ISR listed: {line}"
            );
            seen.push(p.parse::<i32>().context("Partition")?);
        }
    }
    Ok(seen)
}

/// `kafka-topics --describe` (the Java admin's paged describeTopics) lists every partition of
/// a topic larger than one response, with the broker's page and with a smaller client page.
fn kafka_topics_describe_scenario(broker: &dyn Broker) -> Result<()> {
    let topic = "scale-describe";
    create_topic(broker, topic, PARTITIONS)?;
    for extra in [&[][..], &["--partition-size-limit-per-response", "4"][..]] {
        let seen = described_partitions(broker, topic, extra)?;
        ensure!(
            seen == (0..PARTITIONS).collect::<Vec<_>>(),
            "every partition once, in order ({extra:?}): {seen:?}"
        );
    }
    Ok(())
}

fn dtp_request(
    topics: &[&str],
    limit: i32,
    cursor: Option<(&str, i32)>,
) -> DescribeTopicPartitionsRequest {
    DescribeTopicPartitionsRequest::default()
        .with_topics(
            topics
                .iter()
                .map(|t| TopicRequest::default().with_name(topic_name(t)))
                .collect(),
        )
        .with_response_partition_limit(limit)
        .with_cursor(cursor.map(|(t, p)| {
            Cursor::default()
                .with_topic_name(topic_name(t))
                .with_partition_index(p)
        }))
}

/// Raw DescribeTopicPartitions v0: a client asking for more than the broker's limit gets
/// pages of the limit, each cursor naming the next partition, until every partition of both
/// topics came back exactly once; an unknown topic answers UNKNOWN_TOPIC_OR_PARTITION and a
/// cursor outside the named topics INVALID_REQUEST.
fn raw_paging_scenario(broker: &dyn Broker) -> Result<()> {
    let (big, small) = ("scale-paging-a", "scale-paging-b");
    // The big one last: once it is known, so is the other.
    create_topic(broker, small, 3)?;
    create_topic(broker, big, PARTITIONS)?;
    let mut conn = broker.connect()?;
    let topics = [small, big, "scale-paging-unknown"];
    // A new topic reaches the broker's metadata cache shortly after CreateTopics answers.
    let first: DescribeTopicPartitionsResponse = wait_for(
        "both topics in DescribeTopicPartitions",
        Duration::from_secs(30),
        Duration::from_millis(100),
        || {
            let r = conn.request(&dtp_request(&topics, 1000, None), 0)?;
            let first = r.topics.first();
            Ok(
                if first.is_some_and(|t| t.error_code == 0 && t.partitions.len() == PAGE as usize) {
                    Poll::Ready(r)
                } else {
                    Poll::Pending(format!("{r:?}"))
                },
            )
        },
    )?;
    let mut seen: Vec<(String, i32)> = Vec::new();
    let mut page = first;
    let mut pages = 1;
    loop {
        let listed: usize = page.topics.iter().map(|t| t.partitions.len()).sum();
        ensure!(
            listed <= PAGE as usize,
            "page {pages} holds {listed} partitions, more than the limit {PAGE}"
        );
        for t in &page.topics {
            let name = t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default();
            if name == "scale-paging-unknown" {
                ensure!(t.error_code == 3, "unknown topic: {t:?}");
                continue;
            }
            ensure!(t.error_code == 0 && !t.topic_id.is_nil(), "{t:?}");
            for p in &t.partitions {
                ensure!(p.error_code == 0 && p.leader_id.0 >= 0, "{name}: {p:?}");
                ensure!(
                    !p.replica_nodes.is_empty() && !p.isr_nodes.is_empty(),
                    "{p:?}"
                );
                seen.push((name.clone(), p.partition_index));
            }
        }
        let Some(next) = page.next_cursor.clone() else {
            break;
        };
        ensure!(pages < 10, "too many pages: {seen:?}");
        let cursor = (next.topic_name.0.to_string(), next.partition_index);
        page = conn.request(&dtp_request(&topics, 1000, Some((&cursor.0, cursor.1))), 0)?;
        pages += 1;
    }
    let want: Vec<(String, i32)> = (0..PARTITIONS)
        .map(|p| (big.to_owned(), p))
        .chain((0..3).map(|p| (small.to_owned(), p)))
        .collect();
    ensure!(
        seen == want,
        "every partition once, in name order: {seen:?}"
    );
    ensure!(
        pages == 3,
        "28 partitions in pages of {PAGE}: {pages} pages"
    );

    let r = conn.request(&dtp_request(&[big], 5, Some((small, 0))), 0)?;
    ensure!(
        r.topics.len() == 1 && r.topics[0].error_code == 42 && r.next_cursor.is_none(),
        "a cursor outside the named topics: {r:?}"
    );
    Ok(())
}

#[test]
fn kafka_topics_describe_pages_through_a_large_topic_on_tierlog() -> Result<()> {
    against_tierlog(
        "kafka_topics_describe_pages_through_a_large_topic_on_tierlog",
        kafka_topics_describe_scenario,
    )
}

#[test]
fn raw_describe_topic_partitions_pages_on_tierlog() -> Result<()> {
    against_tierlog(
        "raw_describe_topic_partitions_pages_on_tierlog",
        raw_paging_scenario,
    )
}

/// With the default page (2000, as Kafka's `max.request.partition.size.limit`), a topic of
/// 2,500 partitions takes two pages, whatever more a client asks for; `kafka-topics
/// --describe` lists all of them.
#[test]
fn a_topic_of_2500_partitions_is_described_in_two_pages_on_tierlog() -> Result<()> {
    let test = "a_topic_of_2500_partitions_is_described_in_two_pages_on_tierlog";
    if !require_kafka(test)? {
        return Ok(());
    }
    let node = TestNode::start_default()?;
    let run = || -> Result<()> {
        let topic = "scale-2500";
        create_topic(&node, topic, 2500)?;
        let mut conn = node.connect()?;
        let first = conn.request(&dtp_request(&[topic], 5000, None), 0)?;
        ensure!(
            first.topics[0].error_code == 0,
            "{:?}",
            first.topics[0].error_code
        );
        ensure!(
            first.topics[0].partitions.len() == 2000,
            "a page of the default limit"
        );
        let next = first.next_cursor.context("a cursor after the first page")?;
        ensure!(
            (next.topic_name.0.as_str(), next.partition_index) == (topic, 2000),
            "{next:?}"
        );
        let second = conn.request(&dtp_request(&[topic], 5000, Some((topic, 2000))), 0)?;
        let indexes: Vec<i32> = second.topics[0]
            .partitions
            .iter()
            .map(|p| p.partition_index)
            .collect();
        ensure!(indexes == (2000..2500).collect::<Vec<_>>(), "{indexes:?}");
        ensure!(second.next_cursor.is_none());
        let seen = described_partitions(&node, topic, &[])?;
        ensure!(
            seen == (0..2500).collect::<Vec<_>>(),
            "kafka-topics --describe: {} partitions",
            seen.len()
        );
        Ok(())
    };
    run().with_context(|| format!("{test}:\n{}", node.log_tails()))
}

// ---- DescribeLogDirs -----------------------------------------------------------------------

/// (`<topic>-<partition>`, size, offset lag) as `kafka-log-dirs` prints a partition.
type LogDirPartition = (String, i64, i64);

/// `kafka-log-dirs --describe --topic-list topic` of the one broker: its one log dir and the
/// topic's partitions there, sorted.
fn log_dirs(broker: &dyn Broker, topic: &str) -> Result<(String, Vec<LogDirPartition>)> {
    let out = tool(
        broker,
        class::LOG_DIRS,
        &["--describe", "--topic-list", topic],
    )?;
    let json = out
        .stdout
        .lines()
        .find(|l| l.trim_start().starts_with('{'))
        .with_context(|| format!("no JSON in kafka-log-dirs output:\n{}", out.stdout))?;
    let v: Value = serde_json::from_str(json).context("kafka-log-dirs JSON")?;
    let brokers = v["brokers"].as_array().context("brokers")?;
    ensure!(brokers.len() == 1, "one broker: {v}");
    let dirs = brokers[0]["logDirs"].as_array().context("logDirs")?;
    ensure!(dirs.len() == 1, "one log dir: {v}");
    let dir = &dirs[0];
    ensure!(dir["error"].is_null(), "log dir error: {v}");
    let mut partitions = Vec::new();
    for p in dir["partitions"].as_array().context("partitions")? {
        ensure!(p["isFuture"] == Value::Bool(false), "{p}");
        partitions.push((
            p["partition"].as_str().context("partition")?.to_owned(),
            p["size"].as_i64().context("size")?,
            p["offsetLag"].as_i64().context("offsetLag")?,
        ));
    }
    partitions.sort();
    let name = dir["logDir"].as_str().context("logDir")?.to_owned();
    Ok((name, partitions))
}

/// The topic's partitions are listed with size 0 and no lag; after records are produced to
/// partition 1 its size grows by at least their bytes, and partition 0 stays empty.
fn log_dirs_scenario(broker: &dyn Broker) -> Result<()> {
    let topic = "scale-log-dirs";
    create_topic(broker, topic, 2)?;
    let (dir, before) = log_dirs(broker, topic)?;
    ensure!(dir.starts_with('/'), "an absolute log dir: {dir}");
    let names = |ps: &[LogDirPartition]| ps.iter().map(|p| p.0.clone()).collect::<BTreeSet<_>>();
    let want: BTreeSet<String> = [format!("{topic}-0"), format!("{topic}-1")].into();
    ensure!(names(&before) == want, "{before:?}");
    ensure!(before.iter().all(|p| p.1 == 0 && p.2 == 0), "{before:?}");

    let value = vec![b'x'; 1000];
    let records: Vec<_> = (0..20).map(|_| (None, Some(&value[..]))).collect();
    let batch = encode_batch(&records, Compression::None, 1_700_000_000_000)?;
    let batch_len = i64::try_from(batch.len())?;
    let mut conn = broker.connect()?;
    let r = conn.produce(topic, 1, batch, -1)?;
    if r.error_code != 0 {
        bail!("produce: {r:?}");
    }
    let (_, after) = log_dirs(broker, topic)?;
    ensure!(names(&after) == want, "{after:?}");
    ensure!(after[0].1 == 0, "partition 0 untouched: {after:?}");
    ensure!(
        after[1].1 >= batch_len,
        "partition 1 grew by the batch ({batch_len} bytes): {after:?}"
    );
    ensure!(
        after.iter().all(|p| p.2 == 0),
        "a leader has no lag: {after:?}"
    );
    Ok(())
}

#[test]
fn kafka_log_dirs_lists_partition_sizes_on_tierlog() -> Result<()> {
    against_tierlog(
        "kafka_log_dirs_lists_partition_sizes_on_tierlog",
        log_dirs_scenario,
    )
}

/// Every scenario against Apache Kafka itself, with one broker start.
#[test]
fn every_scenario_passes_against_apache_kafka() -> Result<()> {
    against_kafka("every_scenario_passes_against_apache_kafka", |kafka| {
        kafka_topics_describe_scenario(kafka).context("kafka-topics --describe")?;
        raw_paging_scenario(kafka).context("raw DescribeTopicPartitions")?;
        log_dirs_scenario(kafka).context("kafka-log-dirs")
    })
}
