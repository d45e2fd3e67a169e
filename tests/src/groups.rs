//! Consumer-group helpers: group consumers (librdkafka with `subscribe`), polling several of
//! them until their assignments settle, a group member in a child process that can be killed
//! without a LeaveGroup, and raw group-protocol requests for exact error codes.
//!
//! Lifecycle of a typical test: start a node with [`node_options`] (a short
//! `--group-initial-rebalance-delay` so a group's first rebalance does not wait Kafka's 3 s),
//! create a topic, create [`group_consumer`]s, then drive them all with [`poll_until`] until a
//! condition over their assignments and received records holds. Every wait is bounded and a
//! timeout reports what each consumer last had.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    GroupId, HeartbeatRequest, JoinGroupRequest, JoinGroupResponse, OffsetCommitRequest,
    OffsetFetchRequest, SyncGroupRequest, SyncGroupResponse,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Message, OwnedMessage};

use crate::NodeOptions;
use crate::wire::{Conn, topic_name};

/// The initial rebalance delay the group tests give the broker: short, so tests are quick,
/// but not zero, so the delay path runs.
pub const INITIAL_REBALANCE_DELAY: Duration = Duration::from_millis(100);
/// `session.timeout.ms` of the test consumers: low, so evictions are observable quickly.
pub const SESSION_TIMEOUT: Duration = Duration::from_secs(6);
/// `heartbeat.interval.ms` of the test consumers (well below the session timeout).
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_millis(500);

/// Kafka error codes the group tests expect.
pub mod codes {
    /// No error.
    pub const NONE: i16 = 0;
    /// UNKNOWN_TOPIC_OR_PARTITION.
    pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
    /// OFFSET_METADATA_TOO_LARGE.
    pub const OFFSET_METADATA_TOO_LARGE: i16 = 12;
    /// ILLEGAL_GENERATION.
    pub const ILLEGAL_GENERATION: i16 = 22;
    /// UNKNOWN_MEMBER_ID.
    pub const UNKNOWN_MEMBER_ID: i16 = 25;
    /// REBALANCE_IN_PROGRESS.
    pub const REBALANCE_IN_PROGRESS: i16 = 27;
    /// MEMBER_ID_REQUIRED.
    pub const MEMBER_ID_REQUIRED: i16 = 79;
}

/// Node options with `--group-initial-rebalance-delay <delay>`.
pub fn node_options_with_delay(delay: Duration) -> NodeOptions {
    NodeOptions {
        extra_args: vec![
            "--group-initial-rebalance-delay".to_owned(),
            format!("{}ms", delay.as_millis()),
        ],
        ..NodeOptions::default()
    }
}

/// Node options with the tests' [`INITIAL_REBALANCE_DELAY`].
pub fn node_options() -> NodeOptions {
    node_options_with_delay(INITIAL_REBALANCE_DELAY)
}

/// A librdkafka consumer in `group` (manual commits, from the earliest offset when nothing is
/// committed, [`SESSION_TIMEOUT`], [`HEARTBEAT_INTERVAL`]) plus `extra` settings, which win.
/// Call `subscribe` on it, or use [`subscribed`].
pub fn group_consumer(
    bootstrap: &str,
    group: &str,
    extra: &[(&str, &str)],
) -> Result<BaseConsumer> {
    let session = SESSION_TIMEOUT.as_millis().to_string();
    let heartbeat = HEARTBEAT_INTERVAL.as_millis().to_string();
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        .set("session.timeout.ms", &session)
        .set("heartbeat.interval.ms", &heartbeat)
        .set("topic.metadata.refresh.interval.ms", "1000");
    for (k, v) in extra {
        config.set(*k, *v);
    }
    config.create().context("creating a group BaseConsumer")
}

/// A [`group_consumer`] already subscribed to `topic`.
pub fn subscribed(
    bootstrap: &str,
    group: &str,
    topic: &str,
    extra: &[(&str, &str)],
) -> Result<BaseConsumer> {
    let consumer = group_consumer(bootstrap, group, extra)?;
    consumer
        .subscribe(&[topic])
        .with_context(|| format!("subscribing to `{topic}`"))?;
    Ok(consumer)
}

/// The partitions of `topic` currently assigned to `consumer`.
pub fn assigned(consumer: &BaseConsumer, topic: &str) -> Result<BTreeSet<i32>> {
    let tpl = consumer.assignment().context("reading the assignment")?;
    Ok(tpl
        .elements()
        .iter()
        .filter(|e| e.topic() == topic)
        .map(|e| e.partition())
        .collect())
}

/// What [`poll_until`] has seen so far, one entry per consumer in the order given.
#[derive(Debug, Default)]
pub struct Observed {
    /// Each consumer's assignment (partitions of the topic) after the latest poll.
    pub assignments: Vec<BTreeSet<i32>>,
    /// Records each consumer received, in arrival order.
    pub records: Vec<Vec<OwnedMessage>>,
    /// Client errors each consumer reported (transient ones are normal during rebalances).
    pub errors: Vec<Vec<String>>,
}

impl Observed {
    /// Total records received by all consumers.
    pub fn record_count(&self) -> usize {
        self.records.iter().map(Vec::len).sum()
    }

    /// A one-line summary for failure messages.
    pub fn describe(&self) -> String {
        let parts: Vec<String> = self
            .assignments
            .iter()
            .enumerate()
            .map(|(i, a)| {
                format!(
                    "consumer {i}: assigned {a:?}, {} records, errors {:?}",
                    self.records[i].len(),
                    self.errors[i].iter().rev().take(3).collect::<Vec<_>>()
                )
            })
            .collect();
        parts.join("; ")
    }
}

/// Whether the assignments are pairwise disjoint, together exactly `0..partitions`, and (if
/// `all_busy`) each non-empty.
pub fn disjoint_cover(assignments: &[BTreeSet<i32>], partitions: i32, all_busy: bool) -> bool {
    let mut union = BTreeSet::new();
    for a in assignments {
        if all_busy && a.is_empty() {
            return false;
        }
        for p in a {
            if !union.insert(*p) {
                return false;
            }
        }
    }
    union == (0..partitions).collect()
}

/// Polls every consumer in turn (which also runs their rebalance callbacks) until `done`
/// holds for what has been observed, or fails after `timeout` describing each consumer.
pub fn poll_until(
    consumers: &[&BaseConsumer],
    topic: &str,
    timeout: Duration,
    what: &str,
    mut done: impl FnMut(&Observed) -> bool,
) -> Result<Observed> {
    let mut seen = Observed {
        assignments: vec![BTreeSet::new(); consumers.len()],
        records: vec![Vec::new(); consumers.len()],
        errors: vec![Vec::new(); consumers.len()],
    };
    let deadline = Instant::now() + timeout;
    loop {
        for (i, consumer) in consumers.iter().enumerate() {
            // Drain what is ready without blocking long on any one consumer.
            for _ in 0..500 {
                match consumer.poll(Duration::from_millis(10)) {
                    Some(Ok(m)) => seen.records[i].push(m.detach()),
                    Some(Err(e)) => {
                        if seen.errors[i].len() < 50 {
                            seen.errors[i].push(e.to_string());
                        }
                    }
                    None => break,
                }
            }
            seen.assignments[i] = assigned(consumer, topic)?;
        }
        if done(&seen) {
            return Ok(seen);
        }
        if Instant::now() >= deadline {
            bail!(
                "timed out after {timeout:?} waiting for {what}; {}",
                seen.describe()
            );
        }
    }
}

/// Per partition, the offsets of `records` in arrival order.
pub fn offsets_by_partition<'a>(
    records: impl IntoIterator<Item = &'a OwnedMessage>,
) -> BTreeMap<i32, Vec<i64>> {
    let mut map: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
    for m in records {
        map.entry(m.partition()).or_default().push(m.offset());
    }
    map
}

/// A group member in a child process (the `group_member` test binary): it subscribes and
/// prints its assignment as JSON lines; killing it with SIGKILL leaves the group without a
/// LeaveGroup, as a crashed consumer would.
#[derive(Debug)]
pub struct MemberProcess {
    child: Option<Child>,
    lines: Receiver<String>,
    /// The latest assignment the process printed.
    assignment: BTreeSet<i32>,
    /// Every line it printed (for failure messages).
    transcript: Vec<String>,
}

impl MemberProcess {
    /// Starts `binary` (pass `env!("CARGO_BIN_EXE_group_member")`) as a member of `group` on
    /// `topic`, with `extra` librdkafka settings as `KEY=VALUE` arguments.
    pub fn spawn(
        binary: &Path,
        bootstrap: &str,
        group: &str,
        topic: &str,
        extra: &[(&str, &str)],
    ) -> Result<Self> {
        let mut cmd = Command::new(binary);
        cmd.args(["--bootstrap", bootstrap, "--group", group, "--topic", topic]);
        let defaults = [
            (
                "session.timeout.ms",
                SESSION_TIMEOUT.as_millis().to_string(),
            ),
            (
                "heartbeat.interval.ms",
                HEARTBEAT_INTERVAL.as_millis().to_string(),
            ),
        ];
        for (k, v) in &defaults {
            cmd.args(["--set", &format!("{k}={v}")]);
        }
        for (k, v) in extra {
            cmd.args(["--set", &format!("{k}={v}")]);
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("spawning {}", binary.display()))?;
        let stdout = child.stdout.take().context("child stdout")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Self {
            child: Some(child),
            lines: rx,
            assignment: BTreeSet::new(),
            transcript: Vec::new(),
        })
    }

    /// The last assignment the process reported.
    pub fn assignment(&self) -> &BTreeSet<i32> {
        &self.assignment
    }

    /// Reads the process's reports until `done` holds for its assignment; fails after
    /// `timeout` with its transcript.
    pub fn wait_assignment(
        &mut self,
        timeout: Duration,
        mut done: impl FnMut(&BTreeSet<i32>) -> bool,
    ) -> Result<BTreeSet<i32>> {
        let deadline = Instant::now() + timeout;
        loop {
            if done(&self.assignment) {
                return Ok(self.assignment.clone());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.absorb(&line)?,
                Err(RecvTimeoutError::Timeout) => bail!(
                    "group member process: condition not met within {timeout:?}; transcript: {:?}",
                    self.transcript
                ),
                Err(RecvTimeoutError::Disconnected) => bail!(
                    "group member process exited; transcript: {:?}",
                    self.transcript
                ),
            }
        }
    }

    /// Applies every report printed so far without waiting.
    pub fn drain(&mut self) -> Result<()> {
        while let Ok(line) = self.lines.try_recv() {
            self.absorb(&line)?;
        }
        Ok(())
    }

    fn absorb(&mut self, line: &str) -> Result<()> {
        self.transcript.push(line.to_owned());
        let v: serde_json::Value =
            serde_json::from_str(line).with_context(|| format!("member printed {line:?}"))?;
        if v["event"] == "assignment" {
            self.assignment = v["partitions"]
                .as_array()
                .context("partitions array")?
                .iter()
                .filter_map(|p| p.as_i64().and_then(|p| i32::try_from(p).ok()))
                .collect();
        }
        Ok(())
    }

    /// SIGKILL: the member vanishes without leaving the group.
    pub fn kill9(&mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill().context("SIGKILL to the group member")?;
            child.wait().context("reaping the group member")?;
        }
        Ok(())
    }
}

impl Drop for MemberProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Raw group protocol.
// ---------------------------------------------------------------------------------------------

/// A consumer-protocol subscription (version 0): the topics, no user data. What a consumer
/// puts in JoinGroup's protocol metadata.
pub fn consumer_subscription(topics: &[&str]) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(0);
    b.put_i32(i32::try_from(topics.len()).unwrap_or(i32::MAX));
    for t in topics {
        b.put_i16(i16::try_from(t.len()).unwrap_or(i16::MAX));
        b.put_slice(t.as_bytes());
    }
    b.put_i32(-1); // null user data
    b.freeze()
}

/// A consumer-protocol assignment (version 0) of `partitions` of `topic`, no user data.
pub fn consumer_assignment(topic: &str, partitions: &[i32]) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(0);
    b.put_i32(1);
    b.put_i16(i16::try_from(topic.len()).unwrap_or(i16::MAX));
    b.put_slice(topic.as_bytes());
    b.put_i32(i32::try_from(partitions.len()).unwrap_or(i32::MAX));
    for p in partitions {
        b.put_i32(*p);
    }
    b.put_i32(-1);
    b.freeze()
}

/// The group id type from a string.
pub fn group_id(group: &str) -> GroupId {
    GroupId(StrBytes::from_string(group.to_owned()))
}

/// JoinGroup at `version` for a consumer subscribed to `topic` with the `range` protocol.
pub fn join_group(
    conn: &mut Conn,
    version: i16,
    group: &str,
    member_id: &str,
    instance_id: Option<&str>,
    topic: &str,
) -> Result<JoinGroupResponse> {
    let request = JoinGroupRequest::default()
        .with_group_id(group_id(group))
        .with_session_timeout_ms(i32::try_from(SESSION_TIMEOUT.as_millis())?)
        .with_rebalance_timeout_ms(i32::try_from(SESSION_TIMEOUT.as_millis())?)
        .with_member_id(StrBytes::from_string(member_id.to_owned()))
        .with_group_instance_id(instance_id.map(|i| StrBytes::from_string(i.to_owned())))
        .with_protocol_type(StrBytes::from_static_str("consumer"))
        .with_protocols(vec![
            JoinGroupRequestProtocol::default()
                .with_name(StrBytes::from_static_str("range"))
                .with_metadata(consumer_subscription(&[topic])),
        ]);
    conn.request(&request, version)
}

/// SyncGroup at `version`; `assignments` is what a leader hands out (empty for followers).
pub fn sync_group(
    conn: &mut Conn,
    version: i16,
    group: &str,
    generation: i32,
    member_id: &str,
    assignments: &[(&str, Bytes)],
) -> Result<SyncGroupResponse> {
    // The protocol type and name exist from v5 on; earlier versions must leave them unset.
    let (protocol_type, protocol_name) = if version >= 5 {
        (
            Some(StrBytes::from_static_str("consumer")),
            Some(StrBytes::from_static_str("range")),
        )
    } else {
        (None, None)
    };
    let request = SyncGroupRequest::default()
        .with_group_id(group_id(group))
        .with_generation_id(generation)
        .with_member_id(StrBytes::from_string(member_id.to_owned()))
        .with_protocol_type(protocol_type)
        .with_protocol_name(protocol_name)
        .with_assignments(
            assignments
                .iter()
                .map(|(m, a)| {
                    SyncGroupRequestAssignment::default()
                        .with_member_id(StrBytes::from_string((*m).to_owned()))
                        .with_assignment(a.clone())
                })
                .collect(),
        );
    conn.request(&request, version)
}

/// Heartbeat at `version`; returns the error code.
pub fn heartbeat(
    conn: &mut Conn,
    version: i16,
    group: &str,
    generation: i32,
    member_id: &str,
) -> Result<i16> {
    let request = HeartbeatRequest::default()
        .with_group_id(group_id(group))
        .with_generation_id(generation)
        .with_member_id(StrBytes::from_string(member_id.to_owned()));
    Ok(conn.request(&request, version)?.error_code)
}

/// One partition to commit: topic, partition, offset, metadata.
pub type Commit<'a> = (&'a str, i32, i64, Option<&'a str>);

/// OffsetCommit at `version`; per `(topic, partition)` the error code, in request order.
pub fn offset_commit(
    conn: &mut Conn,
    version: i16,
    group: &str,
    generation: i32,
    member_id: &str,
    commits: &[Commit<'_>],
) -> Result<Vec<((String, i32), i16)>> {
    let mut topics: Vec<OffsetCommitRequestTopic> = Vec::new();
    for (topic, partition, offset, metadata) in commits {
        let partition = OffsetCommitRequestPartition::default()
            .with_partition_index(*partition)
            .with_committed_offset(*offset)
            .with_committed_leader_epoch(-1)
            .with_committed_metadata(metadata.map(|m| StrBytes::from_string(m.to_owned())));
        match topics.iter_mut().find(|t| t.name.0.as_str() == *topic) {
            Some(t) => t.partitions.push(partition),
            None => topics.push(
                OffsetCommitRequestTopic::default()
                    .with_name(topic_name(topic))
                    .with_partitions(vec![partition]),
            ),
        }
    }
    let request = OffsetCommitRequest::default()
        .with_group_id(group_id(group))
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(StrBytes::from_string(member_id.to_owned()))
        .with_retention_time_ms(-1)
        .with_topics(topics);
    let response = conn.request(&request, version)?;
    let mut out = Vec::new();
    for (topic, partition, _, _) in commits {
        let code = response
            .topics
            .iter()
            .filter(|t| t.name.0.as_str() == *topic)
            .flat_map(|t| &t.partitions)
            .find(|p| p.partition_index == *partition)
            .map(|p| p.error_code)
            .with_context(|| format!("OffsetCommit response lacks {topic}/{partition}"))?;
        out.push((((*topic).to_owned(), *partition), code));
    }
    Ok(out)
}

/// A committed offset as OffsetFetch returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// -1 when nothing is committed.
    pub offset: i64,
    /// The commit's metadata string.
    pub metadata: Option<String>,
    /// The partition-level error code.
    pub error_code: i16,
}

/// OffsetFetch at `version` (1–8) for `partitions` of `topic`; fails on a group-level error.
pub fn offset_fetch(
    conn: &mut Conn,
    version: i16,
    group: &str,
    topic: &str,
    partitions: &[i32],
) -> Result<BTreeMap<i32, Fetched>> {
    let request = if version >= 8 {
        OffsetFetchRequest::default().with_groups(vec![
            OffsetFetchRequestGroup::default()
                .with_group_id(group_id(group))
                .with_topics(Some(vec![
                    OffsetFetchRequestTopics::default()
                        .with_name(topic_name(topic))
                        .with_partition_indexes(partitions.to_vec()),
                ])),
        ])
    } else {
        OffsetFetchRequest::default()
            .with_group_id(group_id(group))
            .with_topics(Some(vec![
                OffsetFetchRequestTopic::default()
                    .with_name(topic_name(topic))
                    .with_partition_indexes(partitions.to_vec()),
            ]))
    };
    let response = conn.request(&request, version)?;
    let mut out = BTreeMap::new();
    if version >= 8 {
        let g = response
            .groups
            .into_iter()
            .next()
            .context("OffsetFetch v8 response has no group")?;
        if g.error_code != 0 {
            bail!("OffsetFetch v{version}: group error code {}", g.error_code);
        }
        for t in g.topics.into_iter().filter(|t| t.name.0.as_str() == topic) {
            for p in t.partitions {
                out.insert(
                    p.partition_index,
                    Fetched {
                        offset: p.committed_offset,
                        metadata: p.metadata.map(|m| m.as_str().to_owned()),
                        error_code: p.error_code,
                    },
                );
            }
        }
    } else {
        if response.error_code != 0 {
            bail!(
                "OffsetFetch v{version}: group error code {}",
                response.error_code
            );
        }
        for t in response
            .topics
            .into_iter()
            .filter(|t| t.name.0.as_str() == topic)
        {
            for p in t.partitions {
                out.insert(
                    p.partition_index,
                    Fetched {
                        offset: p.committed_offset,
                        metadata: p.metadata.map(|m| m.as_str().to_owned()),
                        error_code: p.error_code,
                    },
                );
            }
        }
    }
    Ok(out)
}

/// The committed offsets of `partitions` of `topic` (-1 for none), via OffsetFetch v8.
pub fn committed(
    addr: std::net::SocketAddr,
    group: &str,
    topic: &str,
    partitions: &[i32],
) -> Result<BTreeMap<i32, i64>> {
    let mut conn = Conn::connect(addr)?;
    Ok(offset_fetch(&mut conn, 8, group, topic, partitions)?
        .into_iter()
        .map(|(p, f)| (p, f.offset))
        .collect())
}

/// A full single-member join on a raw connection: JoinGroup (v5, answering
/// MEMBER_ID_REQUIRED), then SyncGroup assigning `partitions` of `topic` to itself. Returns
/// `(member_id, generation)`.
pub fn join_and_sync(
    conn: &mut Conn,
    group: &str,
    topic: &str,
    partitions: &[i32],
) -> Result<(String, i32)> {
    let first = join_group(conn, 5, group, "", None, topic)?;
    let member_id = match first.error_code {
        codes::MEMBER_ID_REQUIRED => first.member_id.as_str().to_owned(),
        codes::NONE => first.member_id.as_str().to_owned(),
        code => bail!("first JoinGroup: error code {code}"),
    };
    let mut joined = first;
    if joined.error_code == codes::MEMBER_ID_REQUIRED {
        joined = join_group(conn, 5, group, &member_id, None, topic)?;
    }
    if joined.error_code != codes::NONE {
        bail!("JoinGroup with member id: error code {}", joined.error_code);
    }
    let generation = joined.generation_id;
    let synced = sync_group(
        conn,
        3,
        group,
        generation,
        &member_id,
        &[(member_id.as_str(), consumer_assignment(topic, partitions))],
    )?;
    if synced.error_code != codes::NONE {
        bail!("SyncGroup: error code {}", synced.error_code);
    }
    Ok((member_id, generation))
}
