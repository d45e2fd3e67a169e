//! Real Kafka clients (librdkafka through the `rdkafka` crate) pointed at a [`crate::TestNode`].
//!
//! Consumers never join a group (the broker has no group coordinator yet): they are assigned
//! partitions by hand and start from an explicit offset. Every wait is bounded by a deadline and
//! fails with what was seen so far.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message, OwnedMessage};
use rdkafka::producer::FutureProducer;
use rdkafka::{Offset, TopicPartitionList};

/// Default bound for client operations that should complete quickly.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);

/// A `FutureProducer` with test-friendly defaults (`acks=all`, no idempotence, so tests of
/// plain produce paths stay plain) plus `extra` settings, which win.
pub fn producer(bootstrap: &str, extra: &[(&str, &str)]) -> Result<FutureProducer> {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("enable.idempotence", "false")
        .set("message.timeout.ms", "30000")
        .set("linger.ms", "5");
    for (k, v) in extra {
        config.set(*k, *v);
    }
    config.create().context("creating FutureProducer")
}

/// A `BaseConsumer` that never joins a group and never commits.
///
/// librdkafka refuses `assign()` without a `group.id`, so one is set; since the consumer never
/// subscribes or commits, the group is never joined (librdkafka only looks for a coordinator,
/// and the broker advertises no group APIs, so it does not even ask).
pub fn consumer(bootstrap: &str, extra: &[(&str, &str)]) -> Result<BaseConsumer> {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "tierlog-tests-manual-assignment")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false")
        .set("auto.offset.reset", "error");
    for (k, v) in extra {
        config.set(*k, *v);
    }
    config.create().context("creating BaseConsumer")
}

/// A consumer assigned to `partitions` of `topic`, each starting at `offset`.
pub fn assigned_consumer(
    bootstrap: &str,
    topic: &str,
    partitions: impl IntoIterator<Item = i32>,
    offset: Offset,
) -> Result<BaseConsumer> {
    let consumer = consumer(bootstrap, &[])?;
    let mut tpl = TopicPartitionList::new();
    for p in partitions {
        tpl.add_partition_offset(topic, p, offset)?;
    }
    consumer.assign(&tpl).context("assigning partitions")?;
    Ok(consumer)
}

/// An admin client.
pub fn admin(bootstrap: &str) -> Result<AdminClient<DefaultClientContext>> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .context("creating AdminClient")
}

/// Admin options with a bounded operation timeout.
pub fn admin_options() -> AdminOptions {
    AdminOptions::new()
        .request_timeout(Some(CLIENT_TIMEOUT))
        .operation_timeout(Some(CLIENT_TIMEOUT))
}

/// Creates one topic (replication factor 1) with `configs` and fails on any per-topic error.
pub async fn create_topic(
    bootstrap: &str,
    name: &str,
    partitions: i32,
    configs: &[(&str, &str)],
) -> Result<()> {
    let admin = admin(bootstrap)?;
    let mut topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    for (k, v) in configs {
        topic = topic.set(k, v);
    }
    let results = admin
        .create_topics([&topic], &admin_options())
        .await
        .context("CreateTopics request")?;
    for result in results {
        if let Err((topic, code)) = result {
            bail!("creating topic {topic}: {code:?}");
        }
    }
    Ok(())
}

/// The partition count of `topic` as Metadata reports it, `None` if the topic is not listed.
/// Lists all topics, so it never triggers auto-creation.
pub fn partition_count(bootstrap: &str, topic: &str) -> Result<Option<usize>> {
    let consumer = consumer(bootstrap, &[])?;
    let metadata = consumer
        .fetch_metadata(None, CLIENT_TIMEOUT)
        .context("Metadata request")?;
    Ok(metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .map(|t| t.partitions().len()))
}

/// All topic names Metadata reports.
pub fn topic_names(bootstrap: &str) -> Result<Vec<String>> {
    let consumer = consumer(bootstrap, &[])?;
    let metadata = consumer
        .fetch_metadata(None, CLIENT_TIMEOUT)
        .context("Metadata request")?;
    Ok(metadata
        .topics()
        .iter()
        .map(|t| t.name().to_owned())
        .collect())
}

/// Polls until exactly `n` records arrived or `timeout` passed. Errors reported by the client
/// are collected and returned with the failure; a client error does not end the wait, since
/// librdkafka reports transient ones (e.g. a broker restarting) and recovers.
pub fn consume_exactly(
    consumer: &BaseConsumer,
    n: usize,
    timeout: Duration,
) -> Result<Vec<OwnedMessage>> {
    let deadline = Instant::now() + timeout;
    let mut out = Vec::with_capacity(n);
    let mut errors = Vec::new();
    while out.len() < n {
        let now = Instant::now();
        if now >= deadline {
            bail!(
                "consumed {} of {n} records within {timeout:?}; client errors: {:?}",
                out.len(),
                errors
            );
        }
        let wait = (deadline - now).min(Duration::from_millis(200));
        match consumer.poll(wait) {
            Some(Ok(msg)) => out.push(msg.detach()),
            Some(Err(e)) if errors.len() < 20 => errors.push(e.to_string()),
            Some(Err(_)) => {}
            None => {}
        }
    }
    Ok(out)
}

/// Polls for `quiet` and fails if any record arrives: proof that nothing beyond what was
/// expected is in the log.
pub fn expect_no_more(consumer: &BaseConsumer, quiet: Duration) -> Result<()> {
    let deadline = Instant::now() + quiet;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        if let Some(Ok(msg)) = consumer.poll(left.min(Duration::from_millis(100))) {
            bail!(
                "unexpected extra record: partition {} offset {}",
                msg.partition(),
                msg.offset()
            );
        }
    }
    Ok(())
}

/// `(low, high)` watermarks of one partition (ListOffsets earliest and latest).
pub fn watermarks(bootstrap: &str, topic: &str, partition: i32) -> Result<(i64, i64)> {
    let consumer = consumer(bootstrap, &[])?;
    consumer
        .fetch_watermarks(topic, partition, CLIENT_TIMEOUT)
        .with_context(|| format!("watermarks of {topic}/{partition}"))
}

/// A record as the tests compare them: key, value, headers (name, value) in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordData {
    /// Record key.
    pub key: Option<Vec<u8>>,
    /// Record value.
    pub value: Option<Vec<u8>>,
    /// Headers in wire order; a `None` value is a null header value.
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

impl RecordData {
    /// Extracts the comparable parts of a consumed message.
    pub fn of(msg: &OwnedMessage) -> Self {
        let headers = msg
            .headers()
            .map(|hs| {
                hs.iter()
                    .map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec)))
                    .collect()
            })
            .unwrap_or_default();
        RecordData {
            key: msg.key().map(<[u8]>::to_vec),
            value: msg.payload().map(<[u8]>::to_vec),
            headers,
        }
    }
}

/// Consumed messages grouped by partition, each partition's list in consumption order.
pub fn by_partition(messages: &[OwnedMessage]) -> BTreeMap<i32, Vec<&OwnedMessage>> {
    let mut map: BTreeMap<i32, Vec<&OwnedMessage>> = BTreeMap::new();
    for m in messages {
        map.entry(m.partition()).or_default().push(m);
    }
    map
}
