//! Differential testing: one scenario run against Apache Kafka and against tierlog, and the
//! observable results compared field by field.
//!
//! Lifecycle: [`Pair::start_or_skip`] starts a [`KafkaServer`] (the harness's defaults) and a
//! default single [`TestNode`]; [`Pair::sides`] opens one raw connection to each. A test runs
//! every step on both sides ([`both`]) and turns each response into [`Fields`] — flat
//! `path = value` pairs — with the flatteners below. The flatteners normalise only what
//! legitimately differs between two clusters: node ids become `self`, ports `present`, cluster
//! and topic ids `set`/`nil`, generated member ids `<client id>-<uuid>`; everything else is
//! kept as sent. [`Report::compare`] records every difference between the two sides;
//! [`Report::finish`] fails the test with each difference that is not an [`Allowed`] one, and
//! with each allowed difference that no longer occurs, so the list of excuses never outlives
//! the gap it explains.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::time::Duration;

use anyhow::{Context, Result};
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::describe_configs_response::DescribeConfigsResult;
use kafka_protocol::messages::describe_groups_response::DescribedGroup;
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::list_offsets_response::ListOffsetsPartitionResponse;
use kafka_protocol::messages::metadata_response::{MetadataResponse, MetadataResponseTopic};
use kafka_protocol::messages::offset_fetch_response::OffsetFetchResponseGroup;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::produce_response::PartitionProduceResponse;
use kafka_protocol::messages::{
    AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, BrokerId, EndTxnRequest, EndTxnResponse,
    InitProducerIdRequest, InitProducerIdResponse, MetadataRequest, ProduceRequest, ProducerId,
    TransactionalId,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

use crate::kafka::{Broker, KafkaServer};
use crate::node::TestNode;
use crate::wait::{Poll, wait_for};
use crate::wire::{CLIENT_ID, Conn};

/// How long a side gets to settle after an admin change (Kafka applies topic creation and
/// deletion asynchronously through its controller).
pub const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);

/// One response flattened to `path = value` pairs, normalised.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fields(BTreeMap<String, String>);

impl Fields {
    /// An empty set of fields.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `path` to `value`.
    pub fn set(&mut self, path: impl Into<String>, value: impl ToString) {
        self.0.insert(path.into(), value.to_string());
    }

    /// The value at `path`.
    pub fn get(&self, path: &str) -> Option<&str> {
        self.0.get(path).map(String::as_str)
    }

    /// Adds every field of `other` under `prefix.`.
    pub fn nest(&mut self, prefix: &str, other: Fields) {
        for (k, v) in other.0 {
            self.0.insert(format!("{prefix}.{k}"), v);
        }
    }

    /// Every `(path, value)`.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

/// A difference that is accepted, with the reason: `path` is a glob (`*` matches any run of
/// characters) over the field paths of one comparison.
#[derive(Debug, Clone, Copy)]
pub struct Allowed {
    /// The field paths this covers.
    pub path: &'static str,
    /// Why tierlog answers differently (also in tests/README.md).
    pub reason: &'static str,
}

/// An allowed difference at `path`, for `reason`.
pub const fn allow(path: &'static str, reason: &'static str) -> Allowed {
    Allowed { path, reason }
}

/// `*`-glob match (no other metacharacters).
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || text.len() < first.len() + last.len() || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(i) => rest = &rest[i + middle.len()..],
            None => return false,
        }
    }
    true
}

/// One field that differs: `None` where a side has no such field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    /// The field path.
    pub path: String,
    /// Apache Kafka's value.
    pub kafka: Option<String>,
    /// tierlog's value.
    pub tierlog: Option<String>,
}

/// Every field whose values differ between `kafka` and `tierlog`.
pub fn differences(kafka: &Fields, tierlog: &Fields) -> Vec<Difference> {
    let paths: BTreeSet<&String> = kafka.0.keys().chain(tierlog.0.keys()).collect();
    paths
        .into_iter()
        .filter_map(|p| {
            let (k, t) = (kafka.0.get(p), tierlog.0.get(p));
            (k != t).then(|| Difference {
                path: p.clone(),
                kafka: k.cloned(),
                tierlog: t.cloned(),
            })
        })
        .collect()
}

/// The outcome of the comparisons of one test.
#[derive(Debug, Default)]
pub struct Report {
    /// Differences no [`Allowed`] entry covers, by comparison.
    unexpected: Vec<(String, Difference)>,
    /// Allowed entries that matched no difference, by comparison.
    stale: Vec<(String, Allowed)>,
    /// Differences an [`Allowed`] entry covers, with its reason (printed, not failed).
    accepted: Vec<(String, Difference, &'static str)>,
    /// How many fields were compared in all.
    compared: usize,
    /// The names of the comparisons, in order.
    comparisons: Vec<String>,
    /// Whether [`Report::finish`] ran.
    finished: bool,
}

impl Report {
    /// An empty report.
    pub fn new() -> Self {
        Self::default()
    }

    /// Compares one step's results (`[kafka, tierlog]`) under `what`. Both sides must have
    /// produced at least one field.
    pub fn compare(&mut self, what: &str, sides: &[Fields; 2], allowed: &[Allowed]) {
        let [kafka, tierlog] = sides;
        self.compared += kafka.0.len().max(tierlog.0.len());
        self.comparisons.push(what.to_owned());
        if kafka.0.is_empty() || tierlog.0.is_empty() {
            self.unexpected.push((
                what.to_owned(),
                Difference {
                    path: "<no fields>".to_owned(),
                    kafka: Some(kafka.0.len().to_string()),
                    tierlog: Some(tierlog.0.len().to_string()),
                },
            ));
        }
        let diffs = differences(kafka, tierlog);
        let mut used = vec![false; allowed.len()];
        for d in diffs {
            match allowed.iter().position(|a| glob_match(a.path, &d.path)) {
                Some(i) => {
                    used[i] = true;
                    self.accepted.push((what.to_owned(), d, allowed[i].reason));
                }
                None => self.unexpected.push((what.to_owned(), d)),
            }
        }
        for (a, used) in allowed.iter().zip(used) {
            if !used {
                self.stale.push((what.to_owned(), *a));
            }
        }
    }

    /// Prints what was compared and accepted; panics listing every unexpected difference and
    /// every allowed difference that did not occur.
    pub fn finish(mut self) {
        self.finished = true;
        let out = self.render();
        eprintln!("{out}");
        assert!(
            self.unexpected.is_empty() && self.stale.is_empty(),
            "tierlog differs from Apache Kafka:\n{out}"
        );
    }

    fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "differential: {} comparisons, {} fields; {} accepted, {} unexpected differences, \
             {} stale allowances",
            self.comparisons.len(),
            self.compared,
            self.accepted.len(),
            self.unexpected.len(),
            self.stale.len()
        );
        for (what, d, reason) in &self.accepted {
            let _ = writeln!(
                out,
                "  accepted  [{what}] {}: kafka={} tierlog={} ({reason})",
                d.path,
                show(&d.kafka),
                show(&d.tierlog)
            );
        }
        for (what, d) in &self.unexpected {
            let _ = writeln!(
                out,
                "  DIFFERENT [{what}] {}: kafka={} tierlog={}",
                d.path,
                show(&d.kafka),
                show(&d.tierlog)
            );
        }
        for (what, a) in &self.stale {
            let _ = writeln!(
                out,
                "  STALE     [{what}] allowed difference `{}` no longer occurs: remove it ({})",
                a.path, a.reason
            );
        }
        out
    }
}

impl Drop for Report {
    /// A test that stops early (an error before [`Report::finish`]) still shows what its
    /// comparisons found so far.
    fn drop(&mut self) {
        if !self.finished && !self.comparisons.is_empty() {
            eprintln!("unfinished {}", self.render());
        }
    }
}

fn show(v: &Option<String>) -> String {
    match v {
        Some(v) => format!("{v:?}"),
        None => "<absent>".to_owned(),
    }
}

/// Apache Kafka and tierlog, side by side.
#[derive(Debug)]
pub struct Pair {
    /// Apache Kafka (KRaft, one node).
    pub kafka: KafkaServer,
    /// tierlog, one node with default flags.
    pub tierlog: TestNode,
}

impl Pair {
    /// Both brokers, or `None` when Apache Kafka is not installed outside CI (see
    /// [`KafkaServer::start_or_skip`]).
    pub fn start_or_skip(test: &str) -> Result<Option<Self>> {
        let Some(kafka) = KafkaServer::start_or_skip(test)? else {
            return Ok(None);
        };
        let tierlog = TestNode::start_default()?;
        Ok(Some(Pair { kafka, tierlog }))
    }

    /// A connection to each broker, Kafka first.
    pub fn sides(&self) -> Result<[Side; 2]> {
        Ok([Side::connect(&self.kafka)?, Side::connect(&self.tierlog)?])
    }
}

/// One broker under comparison: its name, a raw connection and its own node id.
#[derive(Debug)]
pub struct Side {
    /// `"kafka"` or `"tierlog"`.
    pub name: &'static str,
    /// A raw protocol connection.
    pub conn: Conn,
    /// The broker's node id (from Metadata), normalised to `self`.
    pub node_id: i32,
    /// `host:port`.
    pub bootstrap: String,
}

impl Side {
    /// Connects and learns the node id.
    pub fn connect(broker: &dyn Broker) -> Result<Self> {
        let mut conn = broker.connect()?;
        let m = conn.request(&MetadataRequest::default().with_topics(Some(vec![])), 12)?;
        let node_id = match m.brokers.as_slice() {
            [only] => only.node_id.0,
            other => anyhow::bail!(
                "{}: expected one broker in Metadata, got {}",
                broker.name(),
                other.len()
            ),
        };
        Ok(Side {
            name: broker.name(),
            conn,
            node_id,
            bootstrap: broker.bootstrap(),
        })
    }

    /// A broker id as compared: `self`, `-1`, or `other:<id>`.
    pub fn node(&self, id: BrokerId) -> String {
        match id.0 {
            id if id == self.node_id => "self".to_owned(),
            -1 => "-1".to_owned(),
            other => format!("other:{other}"),
        }
    }

    /// A list of broker ids as compared.
    pub fn nodes(&self, ids: &[BrokerId]) -> String {
        let v: Vec<String> = ids.iter().map(|i| self.node(*i)).collect();
        format!("[{}]", v.join(","))
    }

    /// Waits until Metadata lists `topic` with `partitions` partitions, each with a leader.
    pub fn await_topic(&mut self, topic: &str, partitions: usize) -> Result<MetadataResponseTopic> {
        let name = self.name;
        let conn = &mut self.conn;
        wait_for(
            &format!("{name}: topic {topic} with {partitions} led partitions"),
            SETTLE_TIMEOUT,
            Duration::from_millis(50),
            || {
                let t = conn.metadata_topic(topic, false)?;
                let ready = t.error_code == 0
                    && t.partitions.len() == partitions
                    && t.partitions
                        .iter()
                        .all(|p| p.error_code == 0 && p.leader_id.0 >= 0);
                Ok(if ready {
                    Poll::Ready(t)
                } else {
                    Poll::Pending(format!(
                        "error {}, {} partitions, leaders {:?}",
                        t.error_code,
                        t.partitions.len(),
                        t.partitions
                            .iter()
                            .map(|p| p.leader_id.0)
                            .collect::<Vec<_>>()
                    ))
                })
            },
        )
    }

    /// Waits until Metadata no longer lists `topic`.
    pub fn await_topic_gone(&mut self, topic: &str) -> Result<()> {
        let name = self.name;
        let conn = &mut self.conn;
        wait_for(
            &format!("{name}: topic {topic} gone"),
            SETTLE_TIMEOUT,
            Duration::from_millis(50),
            || {
                let t = conn.metadata_topic(topic, false)?;
                Ok(if t.error_code == 3 {
                    Poll::Ready(())
                } else {
                    Poll::Pending(format!("error {}", t.error_code))
                })
            },
        )
    }
}

/// Runs `step` on both sides, Kafka first; the results in the same order.
pub fn both<T>(
    sides: &mut [Side; 2],
    mut step: impl FnMut(&mut Side) -> Result<T>,
) -> Result<[T; 2]> {
    let [kafka, tierlog] = sides;
    let k = step(kafka).with_context(|| format!("on {}", kafka.name))?;
    let t = step(tierlog).with_context(|| format!("on {}", tierlog.name))?;
    Ok([k, t])
}

/// `nil` or `set` for a topic id (given whether it is nil).
fn uuid_shape(is_nil: bool) -> &'static str {
    if is_nil { "nil" } else { "set" }
}

/// `null`, `""` or `present` for an optional string whose text legitimately differs.
pub fn presence(s: Option<&str>) -> &'static str {
    match s {
        None => "null",
        Some("") => "empty",
        Some(_) => "present",
    }
}

/// An error message as compared: on success it must be null (`null`/`empty`/`present`); on
/// an error its text and presence are free-form and not compared.
pub fn error_message(error_code: i16, message: Option<&str>) -> &'static str {
    if error_code == 0 {
        presence(message)
    } else {
        "(not compared)"
    }
}

/// An optional string as compared (`null` for none).
pub fn opt(s: Option<&str>) -> String {
    match s {
        None => "null".to_owned(),
        Some(v) => format!("{v:?}"),
    }
}

/// Bytes as lowercase hex.
pub fn hex(b: &Bytes) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Metadata, normalised: brokers, cluster id, controller, and each topic.
pub fn metadata_fields(side: &Side, m: &MetadataResponse, version: i16) -> Fields {
    let mut f = Fields::new();
    f.set("brokers.count", m.brokers.len());
    for b in &m.brokers {
        let key = format!("broker[{}]", side.node(b.node_id));
        f.set(format!("{key}.host"), b.host.as_str());
        f.set(
            format!("{key}.port"),
            if b.port > 0 { "present" } else { "missing" },
        );
        f.set(format!("{key}.rack"), opt(b.rack.as_deref()));
    }
    f.set("cluster_id", presence(m.cluster_id.as_deref()));
    f.set("controller_id", side.node(m.controller_id));
    if (8..=10).contains(&version) {
        f.set(
            "cluster_authorized_operations",
            m.cluster_authorized_operations,
        );
    }
    // The order of the topics carries no meaning.
    let mut names: Vec<&str> = m
        .topics
        .iter()
        .filter_map(|t| t.name.as_ref().map(|n| n.0.as_str()))
        .collect();
    names.sort_unstable();
    f.set("topics", names.join(","));
    for t in &m.topics {
        let name = t.name.as_ref().map_or("<null>", |n| n.0.as_str());
        f.nest(&format!("topic[{name}]"), topic_fields(side, t));
    }
    f
}

/// One Metadata topic, normalised.
pub fn topic_fields(side: &Side, t: &MetadataResponseTopic) -> Fields {
    let mut f = Fields::new();
    f.set("error_code", t.error_code);
    f.set("topic_id", uuid_shape(t.topic_id.is_nil()));
    f.set("is_internal", t.is_internal);
    f.set("authorized_operations", t.topic_authorized_operations);
    f.set("partitions.count", t.partitions.len());
    for p in &t.partitions {
        let key = format!("partition[{}]", p.partition_index);
        f.set(format!("{key}.error_code"), p.error_code);
        f.set(format!("{key}.leader"), side.node(p.leader_id));
        f.set(format!("{key}.leader_epoch"), p.leader_epoch);
        f.set(format!("{key}.replicas"), side.nodes(&p.replica_nodes));
        f.set(format!("{key}.isr"), side.nodes(&p.isr_nodes));
        f.set(format!("{key}.offline"), side.nodes(&p.offline_replicas));
    }
    f
}

/// One ListOffsets partition answer.
pub fn list_offsets_fields(p: &ListOffsetsPartitionResponse) -> Fields {
    let mut f = Fields::new();
    f.set("error_code", p.error_code);
    f.set("offset", p.offset);
    f.set("timestamp", p.timestamp);
    f.set("leader_epoch", p.leader_epoch);
    f
}

/// One Produce partition answer (the error message's text is free-form and not compared).
pub fn produce_fields(p: &PartitionProduceResponse) -> Fields {
    let mut f = Fields::new();
    f.set("error_code", p.error_code);
    f.set("base_offset", p.base_offset);
    f.set("log_append_time_ms", p.log_append_time_ms);
    f.set("log_start_offset", p.log_start_offset);
    f.set("record_errors", p.record_errors.len());
    f
}

/// One Fetch partition answer (records summarised by their decoded offsets).
pub fn fetch_fields(p: &PartitionData) -> Fields {
    let mut f = Fields::new();
    f.set("error_code", p.error_code);
    f.set("high_watermark", p.high_watermark);
    f.set("last_stable_offset", p.last_stable_offset);
    f.set("log_start_offset", p.log_start_offset);
    f.set(
        "aborted_transactions",
        p.aborted_transactions
            .as_ref()
            .map_or("null".to_owned(), |a| a.len().to_string()),
    );
    f.set("preferred_read_replica", p.preferred_read_replica.0);
    let records = match &p.records {
        None => "null".to_owned(),
        Some(b) if b.is_empty() => "empty".to_owned(),
        Some(b) => match crate::wire::decode_records(b) {
            Ok(rs) => {
                let offsets: Vec<String> = rs.iter().map(|r| r.offset.to_string()).collect();
                format!("offsets [{}]", offsets.join(","))
            }
            Err(e) => format!("undecodable: {e}"),
        },
    };
    f.set("records", records);
    f
}

/// DescribeConfigs of one resource: per config its value, source, read-only and sensitive
/// flags, type, and whether documentation came back.
pub fn describe_configs_fields(r: &DescribeConfigsResult) -> Fields {
    let mut f = Fields::new();
    f.set("error_code", r.error_code);
    for c in &r.configs {
        let key = format!("config[{}]", c.name.as_str());
        f.set(format!("{key}.value"), opt(c.value.as_deref()));
        f.set(format!("{key}.source"), c.config_source);
        f.set(format!("{key}.read_only"), c.read_only);
        f.set(format!("{key}.sensitive"), c.is_sensitive);
        f.set(format!("{key}.type"), c.config_type);
        f.set(format!("{key}.doc"), presence(c.documentation.as_deref()));
        f.set(format!("{key}.synonyms"), c.synonyms.len());
    }
    f
}

/// One CreateTopics result: error, counts, topic id, and (v5+) the topic's configs.
pub fn create_topic_fields(r: &CreatableTopicResult) -> Fields {
    let mut f = Fields::new();
    f.set("error_code", r.error_code);
    f.set("num_partitions", r.num_partitions);
    f.set("replication_factor", r.replication_factor);
    f.set("topic_id", uuid_shape(r.topic_id.is_nil()));
    f.set("topic_config_error_code", r.topic_config_error_code);
    match &r.configs {
        None => f.set("configs", "null"),
        Some(cs) => {
            for c in cs {
                let key = format!("config[{}]", c.name.as_str());
                f.set(format!("{key}.value"), opt(c.value.as_deref()));
                f.set(format!("{key}.source"), c.config_source);
                f.set(format!("{key}.read_only"), c.read_only);
                f.set(format!("{key}.sensitive"), c.is_sensitive);
            }
        }
    }
    f
}

/// A generated member id as compared: `<client id>-<uuid>` when it has Kafka's shape, else
/// as sent.
pub fn member_id_shape(id: &str, client_id: &str) -> String {
    let is_uuid = |s: &str| {
        s.len() == 36
            && s.char_indices().all(|(i, c)| {
                if [8, 13, 18, 23].contains(&i) {
                    c == '-'
                } else {
                    c.is_ascii_hexdigit()
                }
            })
    };
    match id.strip_prefix(client_id).and_then(|r| r.strip_prefix('-')) {
        Some(rest) if is_uuid(rest) => format!("{client_id}-<uuid>"),
        _ => id.to_owned(),
    }
}

/// One DescribeGroups group, normalised.
pub fn described_group_fields(g: &DescribedGroup) -> Fields {
    let mut f = Fields::new();
    f.set("error_code", g.error_code);
    f.set("state", g.group_state.as_str());
    f.set("protocol_type", g.protocol_type.as_str());
    f.set("protocol", g.protocol_data.as_str());
    f.set("authorized_operations", g.authorized_operations);
    f.set("members.count", g.members.len());
    for (i, m) in g.members.iter().enumerate() {
        let key = format!("member[{i}]");
        f.set(
            format!("{key}.member_id"),
            member_id_shape(m.member_id.as_str(), m.client_id.as_str()),
        );
        f.set(
            format!("{key}.group_instance_id"),
            opt(m.group_instance_id.as_deref()),
        );
        f.set(format!("{key}.client_id"), m.client_id.as_str());
        f.set(format!("{key}.client_host"), m.client_host.as_str());
        f.set(format!("{key}.metadata"), hex(&m.member_metadata));
        f.set(format!("{key}.assignment"), hex(&m.member_assignment));
    }
    f
}

/// One OffsetFetch (v8+) group: its error and every partition's offset, epoch, metadata.
pub fn offset_fetch_fields(g: &OffsetFetchResponseGroup) -> Fields {
    let mut f = Fields::new();
    f.set("error_code", g.error_code);
    let mut topics: Vec<&str> = g.topics.iter().map(|t| t.name.0.as_str()).collect();
    topics.sort_unstable();
    f.set("topics", topics.join(","));
    for t in &g.topics {
        for p in &t.partitions {
            let key = format!("{}[{}]", t.name.0.as_str(), p.partition_index);
            f.set(format!("{key}.offset"), p.committed_offset);
            f.set(format!("{key}.leader_epoch"), p.committed_leader_epoch);
            f.set(format!("{key}.metadata"), opt(p.metadata.as_deref()));
            f.set(format!("{key}.error_code"), p.error_code);
        }
    }
    f
}

/// The client id every raw request carries (DescribeGroups reports it per member).
pub const WIRE_CLIENT_ID: &str = CLIENT_ID;

// ---------------------------------------------------------------------------------------------
// Transactions: the raw requests of a transactional producer, shared by the transaction
// differential tests and the `kafka-transactions` tool tests.
// ---------------------------------------------------------------------------------------------

/// Error codes a transaction coordinator answers while it is not ready yet (Kafka creates and
/// loads `__transaction_state` on first use) or while the previous transaction's markers are
/// still being written: COORDINATOR_LOAD_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE,
/// NOT_COORDINATOR, CONCURRENT_TRANSACTIONS. A client retries them.
pub const TXN_RETRIABLE: [i16; 4] = [14, 15, 16, 51];

/// How long a coordinator gets to become ready or finish the previous transaction.
pub const TXN_SETTLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Sends what `request` builds until its error code (`code`) is not one of [`TXN_RETRIABLE`]
/// (a real client does the same); the last answer.
pub fn retry_txn<T>(
    what: &str,
    mut request: impl FnMut() -> Result<T>,
    code: impl Fn(&T) -> i16,
) -> Result<T> {
    wait_for(what, TXN_SETTLE_TIMEOUT, Duration::from_millis(50), || {
        let answer = request()?;
        let c = code(&answer);
        Ok(if TXN_RETRIABLE.contains(&c) {
            Poll::Pending(format!("error {c}"))
        } else {
            Poll::Ready(answer)
        })
    })
}

/// InitProducerId (`version`): `transactional_id` (none for an idempotent producer),
/// `timeout_ms`, and the current `(producer id, epoch)` or `(-1, -1)`. Retries while the
/// coordinator is not ready ([`retry_txn`]).
pub fn init_producer_id(
    conn: &mut Conn,
    version: i16,
    transactional_id: Option<&str>,
    timeout_ms: i32,
    current: (i64, i16),
) -> Result<InitProducerIdResponse> {
    let request = InitProducerIdRequest::default()
        .with_transactional_id(transactional_id.map(txn_id))
        .with_transaction_timeout_ms(timeout_ms)
        .with_producer_id(ProducerId(current.0))
        .with_producer_epoch(current.1);
    retry_txn(
        "InitProducerId",
        || conn.request(&request, version),
        |r| r.error_code,
    )
}

/// AddPartitionsToTxn v3 (a client's version) of `partitions` of `topic`: the per-partition
/// error codes. Retries while the previous transaction completes ([`retry_txn`]).
pub fn add_partitions(
    conn: &mut Conn,
    transactional_id: &str,
    producer: (i64, i16),
    topic: &str,
    partitions: &[i32],
) -> Result<Vec<(i32, i16)>> {
    let request = AddPartitionsToTxnRequest::default()
        .with_v3_and_below_transactional_id(txn_id(transactional_id))
        .with_v3_and_below_producer_id(ProducerId(producer.0))
        .with_v3_and_below_producer_epoch(producer.1)
        .with_v3_and_below_topics(vec![
            AddPartitionsToTxnTopic::default()
                .with_name(crate::wire::topic_name(topic))
                .with_partitions(partitions.to_vec()),
        ]);
    let codes = |r: &AddPartitionsToTxnResponse| -> Vec<(i32, i16)> {
        r.results_by_topic_v3_and_below
            .iter()
            .flat_map(|t| &t.results_by_partition)
            .map(|p| (p.partition_index, p.partition_error_code))
            .collect()
    };
    let r = retry_txn(
        "AddPartitionsToTxn",
        || conn.request(&request, 3),
        |r| codes(r).first().map_or(0, |(_, c)| *c),
    )?;
    Ok(codes(&r))
}

/// EndTxn (`version`): commit or abort. Retries while the coordinator is busy
/// ([`retry_txn`]).
pub fn end_txn(
    conn: &mut Conn,
    version: i16,
    transactional_id: &str,
    producer: (i64, i16),
    commit: bool,
) -> Result<EndTxnResponse> {
    let request = EndTxnRequest::default()
        .with_transactional_id(txn_id(transactional_id))
        .with_producer_id(ProducerId(producer.0))
        .with_producer_epoch(producer.1)
        .with_committed(commit);
    retry_txn(
        "EndTxn",
        || conn.request(&request, version),
        |r| r.error_code,
    )
}

/// One record batch (base offset 0) of a producer: `values` with sequence numbers from
/// `base_sequence`, create-time timestamps `timestamp_ms + i`, transactional or only
/// idempotent.
pub fn producer_batch(
    producer: (i64, i16),
    base_sequence: i32,
    transactional: bool,
    values: &[&[u8]],
    timestamp_ms: i64,
) -> Result<Bytes> {
    let records: Vec<Record> = values
        .iter()
        .zip(0..)
        .map(|(value, i)| Record {
            transactional,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: producer.0,
            producer_epoch: producer.1,
            timestamp_type: TimestampType::Creation,
            offset: i64::from(i),
            sequence: base_sequence + i,
            timestamp: timestamp_ms + i64::from(i),
            key: None,
            value: Some(Bytes::copy_from_slice(value)),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .context("encoding a producer's record batch")?;
    Ok(buf.freeze())
}

/// Produce (`version`, acks=all) of one batch to one partition, carrying `transactional_id`
/// as a transactional producer's requests do: the partition's answer.
pub fn txn_produce(
    conn: &mut Conn,
    version: i16,
    transactional_id: Option<&str>,
    topic: &str,
    partition: i32,
    batch: Bytes,
) -> Result<PartitionProduceResponse> {
    let request = ProduceRequest::default()
        .with_transactional_id(transactional_id.map(txn_id))
        .with_acks(-1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(crate::wire::topic_name(topic))
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(partition)
                        .with_records(Some(batch)),
                ]),
        ]);
    let r = conn.request(&request, version)?;
    r.responses
        .into_iter()
        .flat_map(|t| t.partition_responses)
        .find(|p| p.index == partition)
        .context("Produce answered no partition")
}

/// A `TransactionalId` from a `&str`.
pub fn txn_id(id: &str) -> TransactionalId {
    TransactionalId(StrBytes::from_string(id.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("a.b", "a.b"));
        assert!(!glob_match("a.b", "a.bc"));
        assert!(glob_match("config[x].*", "config[x].value"));
        assert!(glob_match("*.doc", "config[x].doc"));
        assert!(glob_match("*config[x]*", "t.config[x].value"));
        assert!(!glob_match("config[x].*", "config[y].value"));
        assert!(glob_match("a*b*c", "aXbYc"));
        assert!(!glob_match("a*b*c", "aXcYb"));
    }

    #[test]
    fn member_ids() {
        assert_eq!(
            member_id_shape("c-3f2a1b4c-1111-2222-3333-444455556666", "c"),
            "c-<uuid>"
        );
        assert_eq!(member_id_shape("c-1", "c"), "c-1");
    }
}
