//! Kafka Streams and Kafka Connect (Apache Kafka 4.3.1) judge tierlog.
//!
//! - Streams: the word count of `tests/kafka/src` reads lines, re-keys them through a
//!   repartition topic, counts in a state store backed by a compacted changelog topic, and
//!   writes count updates; it runs until its own read of the output shows the expected counts.
//!   The test produces the lines, then reads the output itself and checks the internal topics.
//! - Streams killed: the word count under `exactly_once_v2` is SIGKILLed while it counts (a
//!   few commits in, with count updates of an open transaction in the output), the rest of the
//!   input is produced, and a restarted instance (same `application.id`, a fresh state
//!   directory: it restores from the changelog) finishes; the committed output then holds every
//!   count of every word exactly once (1, 2, …, the total). Under at-least-once the same kill
//!   shows words counted past their totals.
//! - Connect: a distributed worker (its configs, offsets and status in three topics, its group
//!   formed through the "connect" group protocol) runs the FileStream source connector (lines
//!   of a file into a topic) and the FileStream sink connector (that topic into another file),
//!   created through the REST API. Lines appended to the source file must arrive in the sink
//!   file, in order, exactly once, and the sink's group must commit up to the end. Connect's
//!   own producers are not idempotent by default; the exactly-once source variant uses
//!   transactions (and a fencing producer on the config topic).
//!
//! Every scenario also runs against a real Apache Kafka, which proves the program right.
//! Streams runs at-least-once with producer idempotence off and with the defaults (idempotent),
//! and exactly-once (`exactly_once_v2`: transactions, read_committed); Connect with its
//! defaults and with exactly-once source support (transactions).
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::ensure;

use rdkafka::admin::ResourceSpecifier;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::FutureRecord;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde_json::json;
use tierlog_tests::clients::{
    CLIENT_TIMEOUT, admin, admin_options, assigned_consumer, consume_exactly, consumer,
    create_topic, expect_no_more, producer, topic_names, watermarks,
};
use tierlog_tests::eos::read_committed;
use tierlog_tests::kafka::{Broker, KafkaServer, require_kafka};
use tierlog_tests::programs::{
    ConnectWorker, WordCountRun, check_word_count_updates, count_update, read_word_counts,
    spawn_word_count, word_count, word_count_lines,
};
use tierlog_tests::wait::{Poll, wait_for};
use tierlog_tests::{NodeOptions, TestNode};

/// Input lines of the word count.
const LINES: usize = 200;
/// The word count's own deadline.
const STREAMS_TIMEOUT: Duration = Duration::from_secs(120);
/// How long records take to flow through a running connector pair.
const CONNECT_FLOW_TIMEOUT: Duration = Duration::from_secs(60);

const NO_IDEMPOTENCE: &[&str] = &["producer.enable.idempotence=false"];

// ---- Kafka Streams -----------------------------------------------------------------------

/// Word count with `guarantee` and Streams properties `props` on topics prefixed `name`.
async fn word_count_scenario(broker: &dyn Broker, name: &str, guarantee: &str, props: &[&str]) {
    let started = Instant::now();
    let bootstrap = broker.bootstrap();
    let (input, output, app_id) = (
        format!("{name}-lines"),
        format!("{name}-counts"),
        format!("{name}-app"),
    );
    create_topic(&bootstrap, &input, 2, &[]).await.unwrap();
    create_topic(&bootstrap, &output, 2, &[]).await.unwrap();
    let (lines, expected) = word_count_lines(LINES);
    produce_lines(&bootstrap, &input, &lines, 0).await;

    let run = WordCountRun {
        app_id: &app_id,
        input: &input,
        output: &output,
        guarantee,
        props,
        expected: &expected,
        timeout: STREAMS_TIMEOUT,
    };
    let outcome = word_count(broker, &run).unwrap();
    let summary = outcome
        .expect_passed(&format!("WordCount {guarantee} against {}", broker.name()))
        .unwrap();
    eprintln!(
        "WordCount {guarantee} {props:?} against {}: {summary}",
        broker.name()
    );

    // The test's own reading of the output agrees.
    let counts = read_word_counts(&bootstrap, &output, 2, &expected, CLIENT_TIMEOUT).unwrap();
    assert_eq!(counts, expected);

    // The internal topics Streams created through the admin API: a repartition topic and a
    // compacted changelog.
    let topics = topic_names(&bootstrap).unwrap();
    let repartition = format!("{app_id}-words-repartition");
    let changelog = format!("{app_id}-counts-changelog");
    for t in [&repartition, &changelog] {
        assert!(topics.contains(t), "{t} missing from {topics:?}");
    }
    let configs = admin(&bootstrap)
        .unwrap()
        .describe_configs([&ResourceSpecifier::Topic(&changelog)], &admin_options())
        .await
        .unwrap();
    let config = configs.into_iter().next().unwrap().unwrap();
    assert_eq!(
        config
            .get("cleanup.policy")
            .and_then(|e| e.value.as_deref()),
        Some("compact"),
        "{changelog} configs: {:?}",
        config.entry_map().keys().collect::<Vec<_>>()
    );
    eprintln!(
        "word count {guarantee} {props:?} on {}: passed in {:?}",
        broker.name(),
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_word_count_at_least_once_on_tierlog() {
    if !require_kafka("streams_word_count_at_least_once_on_tierlog").unwrap() {
        return;
    }
    let node = TestNode::start_default().unwrap();
    word_count_scenario(&node, "wc-alos", "at_least_once", NO_IDEMPOTENCE).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_word_count_at_least_once_defaults_on_tierlog() {
    if !require_kafka("streams_word_count_at_least_once_defaults_on_tierlog").unwrap() {
        return;
    }
    let node = TestNode::start_default().unwrap();
    word_count_scenario(&node, "wc-defaults", "at_least_once", &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_word_count_exactly_once_on_tierlog() {
    if !require_kafka("streams_word_count_exactly_once_on_tierlog").unwrap() {
        return;
    }
    let node = TestNode::start_default().unwrap();
    word_count_scenario(&node, "wc-eos", "exactly_once_v2", &[]).await;
}

/// The same word counts against Apache Kafka, exactly-once included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_word_counts_on_apache_kafka() {
    let Some(kafka) = KafkaServer::start_or_skip("streams_word_counts_on_apache_kafka").unwrap()
    else {
        return;
    };
    word_count_scenario(&kafka, "wc-alos", "at_least_once", NO_IDEMPOTENCE).await;
    word_count_scenario(&kafka, "wc-defaults", "at_least_once", &[]).await;
    word_count_scenario(&kafka, "wc-eos", "exactly_once_v2", &[]).await;
}

// ---- Kafka Streams killed mid-stream -----------------------------------------------------

/// Input lines of the killed word count: the first `KILLED_FIRST_LINES` (about 24 000 words)
/// before the kill, the rest after it.
const KILLED_LINES: usize = 8000;
const KILLED_FIRST_LINES: usize = 6000;
/// The first instance is killed once this many words are counted in committed output (a few
/// commits in) and the output holds count updates not committed yet (a transaction open).
const KILL_AFTER_WORDS: i64 = 1000;
/// The first instance's wait for that (a JVM starting, Streams creating its internal topics and
/// joining its group, on two busy cores).
const FIRST_COMMIT_TIMEOUT: Duration = Duration::from_secs(120);
/// Streams properties of the killed word count:
/// - Small transactions, so the kill lands mid-stream, with much of the first part left: a
///   commit every 100 ms (Streams' default under exactly-once; the program's own is 200 ms) and
///   at most 200 records a poll (Streams commits between polls; 1000 by default).
/// - The restarted instance is a new group member: the killed one must time out of the group
///   (`session.timeout.ms`, 45 s by default, 6 s here: the least Apache Kafka allows) before the
///   restart is given its tasks.
///
/// The store's changelog (a compacted topic Streams creates) rolls a segment a second and is
/// cleaned as soon as it is dirty at all (`topic.*` configs go to Streams' internal topics), so
/// on tierlog the restarted instance restores its KTable from a compacted changelog.
const KILLED_PROPS: &[&str] = &[
    "commit.interval.ms=100",
    "consumer.max.poll.records=200",
    "consumer.session.timeout.ms=6000",
    "consumer.heartbeat.interval.ms=1000",
    "topic.segment.ms=1000",
    "topic.min.cleanable.dirty.ratio=0.01",
];

/// Produces `lines` to `input` keyed by their line number, counting from `first`.
async fn produce_lines(bootstrap: &str, input: &str, lines: &[String], first: usize) {
    let producer = producer(bootstrap, &[]).unwrap();
    let keys: Vec<String> = (first..first + lines.len())
        .map(|i| i.to_string())
        .collect();
    let pending: Vec<_> = lines
        .iter()
        .zip(&keys)
        .map(|(line, key)| {
            producer
                .send_result(FutureRecord::to(input).key(key).payload(line))
                .map_err(|(e, _)| e)
                .unwrap()
        })
        .collect();
    for delivery in pending {
        delivery.await.unwrap().map_err(|(e, _)| e).unwrap();
    }
}

/// A consumer of partitions `0..2` of `topic` from the beginning at `isolation` (with
/// `enable.partition.eof`: it reports reaching the end, for `read_committed` the last stable
/// offset).
fn output_reader(bootstrap: &str, topic: &str, isolation: &str) -> BaseConsumer {
    let reader = consumer(
        bootstrap,
        &[
            ("isolation.level", isolation),
            ("enable.partition.eof", "true"),
        ],
    )
    .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..2 {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    reader.assign(&tpl).unwrap();
    reader
}

/// The latest committed count of each word in `topic` (2 partitions): read `read_committed`
/// up to the last stable offset of both partitions.
fn committed_counts(bootstrap: &str, topic: &str) -> BTreeMap<String, i64> {
    let reader = output_reader(bootstrap, topic, "read_committed");
    let mut latest = BTreeMap::new();
    let mut at_end = BTreeSet::new();
    wait_for(
        &format!("the committed end of {topic}"),
        CLIENT_TIMEOUT,
        Duration::ZERO,
        || {
            while let Some(event) = reader.poll(Duration::from_millis(100)) {
                match event {
                    Ok(message) => {
                        let (word, count) = count_update(&message)?;
                        latest.insert(word, count);
                    }
                    Err(KafkaError::PartitionEOF(p)) => {
                        at_end.insert(p);
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            Ok(if at_end.len() == 2 {
                Poll::Ready(())
            } else {
                Poll::Pending(format!("at the end of partitions {at_end:?}"))
            })
        },
    )
    .unwrap();
    latest
}

/// Word count with `exactly_once_v2`, SIGKILLed while it counts the first part of the input,
/// then restarted (same `application.id`, a fresh state directory, so it restores its counts
/// from the changelog) after the rest of the input is produced: the committed output counts
/// every word exactly once.
/// `cleaned_bytes`, when given, reads how many bytes the broker's log cleaner has removed: the
/// restart then waits until the changelog has been compacted.
async fn word_count_killed_scenario(
    broker: &dyn Broker,
    name: &str,
    cleaned_bytes: Option<&dyn Fn() -> anyhow::Result<f64>>,
) {
    let started = Instant::now();
    let bootstrap = broker.bootstrap();
    let (input, output, app_id) = (
        format!("{name}-lines"),
        format!("{name}-counts"),
        format!("{name}-app"),
    );
    create_topic(&bootstrap, &input, 2, &[]).await.unwrap();
    create_topic(&bootstrap, &output, 2, &[]).await.unwrap();
    let (lines, expected) = word_count_lines(KILLED_LINES);
    let (_, first_counts) = word_count_lines(KILLED_FIRST_LINES);
    let first_words: i64 = first_counts.values().sum();
    let total_words: i64 = expected.values().sum();
    produce_lines(&bootstrap, &input, &lines[..KILLED_FIRST_LINES], 0).await;

    // The final counts are out of the first instance's reach: it runs until it is killed.
    let run = WordCountRun {
        app_id: &app_id,
        input: &input,
        output: &output,
        guarantee: "exactly_once_v2",
        props: KILLED_PROPS,
        expected: &expected,
        timeout: STREAMS_TIMEOUT,
    };
    let mut first = spawn_word_count(broker, &run).unwrap();
    // Two readers of the output: read_committed for the counts, read_uncommitted to see a
    // transaction's records before its commit.
    let committed = output_reader(&bootstrap, &output, "read_committed");
    let uncommitted = output_reader(&bootstrap, &output, "read_uncommitted");
    let mut latest = BTreeMap::new();
    let (mut committed_end, mut uncommitted_end) = ([0i64; 2], [0i64; 2]);
    let seen = wait_for(
        &format!(
            "{KILL_AFTER_WORDS} words counted and committed by the first instance, then count \
             updates not committed yet"
        ),
        FIRST_COMMIT_TIMEOUT,
        Duration::from_millis(5),
        || {
            if let Err(e) = first.program.ensure_running() {
                return Ok(Poll::Ready(Err(e)));
            }
            while let Some(Ok(m)) = uncommitted.poll(Duration::ZERO) {
                let p = usize::try_from(m.partition())?;
                uncommitted_end[p] = uncommitted_end[p].max(m.offset() + 1);
            }
            while let Some(Ok(m)) = committed.poll(Duration::ZERO) {
                let p = usize::try_from(m.partition())?;
                committed_end[p] = committed_end[p].max(m.offset() + 1);
                let (word, count) = count_update(&m)?;
                latest.insert(word, count);
            }
            let counted: i64 = latest.values().sum();
            let ahead = (0..2).any(|p| uncommitted_end[p] > committed_end[p]);
            Ok(if counted >= KILL_AFTER_WORDS && ahead {
                Poll::Ready(Ok(counted))
            } else {
                Poll::Pending(format!(
                    "{counted} words committed; output read to {committed_end:?} \
                         read_committed, {uncommitted_end:?} read_uncommitted"
                ))
            })
        },
    )
    .and_then(|r| r)
    .unwrap();
    first.program.kill9().unwrap();
    let killed_at = started.elapsed();

    // What the killed instance had committed: part of the first lines, not all of them.
    let at_kill = committed_counts(&bootstrap, &output);
    let counted: i64 = at_kill.values().sum();
    // ListOffsets carries librdkafka's isolation level: the log end, and the last stable offset,
    // held below it by a transaction the kill left open (a commit may have raced the kill).
    let mut open = Vec::new();
    for p in 0..2 {
        let (_, end) = uncommitted
            .fetch_watermarks(&output, p, CLIENT_TIMEOUT)
            .unwrap();
        let (_, stable) = committed
            .fetch_watermarks(&output, p, CLIENT_TIMEOUT)
            .unwrap();
        open.push(end - stable);
    }
    eprintln!(
        "WordCount exactly_once_v2 on {}: killed after {killed_at:?} ({seen} words seen \
         committed); at the kill {counted} of the first {first_words} words committed, output \
         records past the last stable offset {open:?}",
        broker.name(),
    );
    assert!(
        counted > 0 && counted < first_words,
        "the kill should land mid-stream: {counted} of {first_words} words committed"
    );
    for (word, count) in &at_kill {
        assert!(
            *count <= first_counts[word],
            "word {word:?} counted {count} before the kill; its first-part total is {}",
            first_counts[word]
        );
    }

    if let Some(cleaned) = cleaned_bytes {
        let removed = wait_cleaned(cleaned, "the store's changelog compacted");
        eprintln!("the log cleaner removed {removed} bytes of the changelog before the restart");
    }

    produce_lines(
        &bootstrap,
        &input,
        &lines[KILLED_FIRST_LINES..],
        KILLED_FIRST_LINES,
    )
    .await;
    let mut second = spawn_word_count(broker, &run).unwrap();
    let outcome = second
        .program
        .wait_exit(STREAMS_TIMEOUT + Duration::from_secs(30))
        .unwrap();
    let summary = outcome
        .expect_passed(&format!(
            "the restarted WordCount exactly_once_v2 against {}",
            broker.name()
        ))
        .unwrap();
    eprintln!(
        "restarted WordCount exactly_once_v2 on {}: {summary}",
        broker.name()
    );

    // The whole committed output, once no transaction is open.
    let messages = read_committed(
        &bootstrap,
        &output,
        2,
        usize::try_from(total_words).unwrap(),
        Duration::from_secs(60),
    )
    .unwrap();
    check_word_count_updates(&messages, &expected).unwrap();
    eprintln!(
        "word count exactly_once_v2 killed and restarted on {}: {} committed updates, \
         passed in {:?}",
        broker.name(),
        messages.len(),
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_word_count_exactly_once_killed_on_tierlog() {
    if !require_kafka("streams_word_count_exactly_once_killed_on_tierlog").unwrap() {
        return;
    }
    let node = cleaning_node();
    word_count_killed_scenario(&node, "wc-eos-killed", Some(&|| cleaned_bytes(&node))).await;
}

/// The restarted instance has a new transactional id (a fresh state directory, a new process
/// id), so the killed one's open transaction ends by timing out (Streams'
/// `transaction.timeout.ms`, 10 s); Kafka looks for timed-out transactions every second here
/// rather than every 10 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_word_count_exactly_once_killed_on_apache_kafka() {
    if !require_kafka("streams_word_count_exactly_once_killed_on_apache_kafka").unwrap() {
        return;
    }
    let kafka = KafkaServer::start(&[(
        "transaction.abort.timed.out.transaction.cleanup.interval.ms",
        "1000",
    )])
    .unwrap();
    word_count_killed_scenario(&kafka, "wc-eos-killed", None).await;
}

// ---- Kafka Connect -----------------------------------------------------------------------

/// FileStream source → topic → FileStream sink through one distributed worker. Connect's
/// producers are not idempotent by default (the worker sets `enable.idempotence=false`), so the
/// defaults need no producer id; `exactly_once` turns on exactly-once source support (a
/// transactional producer per source task and for the config topic) and a `read_committed`
/// sink.
///
/// The worker's three internal topics are created beforehand, compacted (Connect checks that)
/// with a segment rolled every half second and cleaned as soon as it is dirty. `cleaned_bytes`,
/// when given, reads how many bytes the broker's log cleaner has removed: the scenario then also
/// waits until the status and config topics (rewritten per connector and task state change)
/// have been compacted, and checks that lines still flow afterwards.
async fn connect_scenario(
    broker: &dyn Broker,
    name: &str,
    exactly_once: bool,
    cleaned_bytes: Option<&dyn Fn() -> anyhow::Result<f64>>,
) {
    let started = Instant::now();
    let bootstrap = broker.bootstrap();
    let topic = format!("{name}-lines");
    // One partition: the sink file keeps the source file's order.
    create_topic(&bootstrap, &topic, 1, &[]).await.unwrap();
    let group = format!("{name}-worker");
    for internal in ["configs", "offsets", "status"] {
        create_topic(
            &bootstrap,
            &format!("{group}-{internal}"),
            1,
            &[
                ("cleanup.policy", "compact"),
                ("segment.ms", "500"),
                ("min.cleanable.dirty.ratio", "0.01"),
            ],
        )
        .await
        .unwrap();
    }
    let worker_props: &[(&str, &str)] = if exactly_once {
        &[("exactly.once.source.support", "enabled")]
    } else {
        &[]
    };
    let worker = ConnectWorker::start(&bootstrap, &group, worker_props).unwrap();
    eprintln!(
        "Connect worker on {} ready after {:?}",
        broker.name(),
        started.elapsed()
    );

    let source_file = worker.dir().join("source.txt");
    let sink_file = worker.dir().join("sink.txt");
    let first: Vec<String> = (0..50)
        .map(|i| format!("line {i} before the connectors"))
        .collect();
    std::fs::write(&source_file, first.join("\n") + "\n").unwrap();
    let (source, sink) = (format!("{name}-source"), format!("{name}-sink"));
    let mut source_config = json!({
        "connector.class": "org.apache.kafka.connect.file.FileStreamSourceConnector",
        "tasks.max": "1",
        "file": source_file.display().to_string(),
        "topic": topic,
    });
    let mut sink_config = json!({
        "connector.class": "org.apache.kafka.connect.file.FileStreamSinkConnector",
        "tasks.max": "1",
        "file": sink_file.display().to_string(),
        "topics": topic,
    });
    if exactly_once {
        source_config["exactly.once.support"] = json!("required");
        sink_config["consumer.override.isolation.level"] = json!("read_committed");
    }
    worker.create_connector(&source, &source_config).unwrap();
    worker.create_connector(&sink, &sink_config).unwrap();
    for connector in [&source, &sink] {
        worker
            .wait_running(connector, CONNECT_FLOW_TIMEOUT)
            .unwrap();
    }
    wait_for_sink(&worker, &sink_file, &first);

    // Lines appended while both connectors run follow, each once.
    let mut all = first.clone();
    all.extend((50..120).map(|i| format!("line {i} appended later")));
    std::fs::write(&source_file, all.join("\n") + "\n").unwrap();
    wait_for_sink(&worker, &sink_file, &all);

    // The topic holds each line once, in order (under exactly-once also commit markers, which
    // take offsets but are no records), and the sink's group commits the offset after the
    // last line.
    let (low, high) = watermarks(&bootstrap, &topic, 0).unwrap();
    let reader = assigned_consumer(&bootstrap, &topic, [0], Offset::Beginning).unwrap();
    let records = consume_exactly(&reader, all.len(), CLIENT_TIMEOUT).unwrap();
    let values: Vec<String> = records
        .iter()
        .map(|m| String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned())
        .collect();
    assert_eq!(values, all, "the lines in {topic}");
    expect_no_more(&reader, Duration::from_millis(500)).unwrap();
    let end = records.last().unwrap().offset() + 1;
    if exactly_once {
        assert!(
            low == 0 && high > end,
            "{topic}: watermarks {low}..{high}, last line at {}: want commit markers",
            end - 1
        );
    } else {
        assert_eq!((low, high), (0, end), "{topic} watermarks");
    }
    let group = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", format!("connect-{sink}"))
        .set("enable.auto.commit", "false")
        .create::<BaseConsumer>()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(&topic, 0);
    wait_for(
        "the sink's committed offset to pass the last line",
        CONNECT_FLOW_TIMEOUT,
        Duration::from_millis(200),
        || {
            let committed = group.committed_offsets(tpl.clone(), CLIENT_TIMEOUT)?;
            let offset = committed.find_partition(&topic, 0).map(|e| e.offset());
            Ok(if offset == Some(Offset::Offset(end)) {
                Poll::Ready(())
            } else {
                Poll::Pending(format!("committed {offset:?}, want {end}"))
            })
        },
    )
    .unwrap();
    if let Some(cleaned) = cleaned_bytes {
        let removed = wait_cleaned(cleaned, "Connect's internal topics compacted");
        all.extend((120..150).map(|i| format!("line {i} after compaction")));
        std::fs::write(&source_file, all.join("\n") + "\n").unwrap();
        wait_for_sink(&worker, &sink_file, &all);
        eprintln!("the log cleaner removed {removed} bytes of Connect's topics; lines still flow");
    }
    eprintln!(
        "Connect file source -> sink (exactly once: {exactly_once}) on {}: passed in {:?}",
        broker.name(),
        started.elapsed()
    );
}

/// Waits (a minute at most) until `cleaned` reports bytes removed by the log cleaner.
fn wait_cleaned(cleaned: &dyn Fn() -> anyhow::Result<f64>, what: &str) -> f64 {
    wait_for(
        what,
        Duration::from_secs(60),
        Duration::from_millis(100),
        || {
            let removed = cleaned()?;
            Ok(if removed > 0.0 {
                Poll::Ready(removed)
            } else {
                Poll::Pending("nothing cleaned yet".into())
            })
        },
    )
    .unwrap()
}

/// A node whose log cleaner and time-based rolling run often, and a reader of how many bytes
/// its cleaner has removed.
fn cleaning_node() -> TestNode {
    TestNode::start(NodeOptions {
        retention_check_interval: Some("200ms".into()),
        extra_args: vec!["--log-cleaner-backoff".into(), "200ms".into()],
        ..NodeOptions::default()
    })
    .unwrap()
}

fn cleaned_bytes(node: &TestNode) -> anyhow::Result<f64> {
    Ok(node
        .metrics()?
        .counter("tierlog_cleaner_removed_bytes_total"))
}

/// Waits until the sink file is exactly `lines`, failing early if it holds anything else.
fn wait_for_sink(worker: &ConnectWorker, sink: &Path, lines: &[String]) {
    wait_for(
        &format!("{} lines in the sink file", lines.len()),
        CONNECT_FLOW_TIMEOUT,
        Duration::from_millis(100),
        || {
            let text = std::fs::read_to_string(sink).unwrap_or_default();
            let got: Vec<&str> = text.lines().collect();
            ensure!(
                got.len() <= lines.len() && got.iter().zip(lines).all(|(g, w)| g == w),
                "sink file is not a prefix of the source lines: {got:?}"
            );
            Ok(if got.len() == lines.len() {
                Poll::Ready(())
            } else {
                Poll::Pending(format!("{} of {} lines", got.len(), lines.len()))
            })
        },
    )
    .unwrap_or_else(|e| panic!("{e:#}\nworker log:\n{}", worker.log_tail(60)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_file_source_to_sink_on_tierlog() {
    if !require_kafka("connect_file_source_to_sink_on_tierlog").unwrap() {
        return;
    }
    let node = cleaning_node();
    connect_scenario(&node, "connect", false, Some(&|| cleaned_bytes(&node))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_exactly_once_source_on_tierlog() {
    if !require_kafka("connect_exactly_once_source_on_tierlog").unwrap() {
        return;
    }
    let node = cleaning_node();
    connect_scenario(&node, "connect-eos", true, Some(&|| cleaned_bytes(&node))).await;
}

/// The same pipelines against Apache Kafka, exactly-once source included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_file_source_to_sink_on_apache_kafka() {
    let Some(kafka) =
        KafkaServer::start_or_skip("connect_file_source_to_sink_on_apache_kafka").unwrap()
    else {
        return;
    };
    connect_scenario(&kafka, "connect", false, None).await;
    connect_scenario(&kafka, "connect-eos", true, None).await;
}
