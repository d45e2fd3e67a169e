//! A small Kafka admin client on `kafka-protocol`, for the `topic` and `bench` commands.
//!
//! librdkafka's AdminClient has no IncrementalAlterConfigs, does not expose topic ids and
//! cannot list offsets, so the admin side speaks the protocol itself. Lifecycle:
//!
//! 1. [`AdminClient::connect`] opens a connection to the first reachable bootstrap address and
//!    sends ApiVersions; every later request on a connection uses the highest version both
//!    sides support (min of our max and the broker's max), and fails clearly when the ranges
//!    do not overlap.
//! 2. [`AdminClient::metadata`] learns the brokers and the controller. Requests that Kafka
//!    routes to a particular node (CreateTopics and DeleteTopics to the controller,
//!    ListOffsets to each partition's leader) open further connections lazily, one per node,
//!    kept for the life of the client.
//! 3. Every operation returns plain structs (no wire types), so formatting is testable
//!    without a broker. A non-zero error code becomes a [`KafkaError`] naming the code.
//!
//! Requests on one connection are strictly sequential (send, then read the answer), which is
//! all an interactive admin tool needs.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::time::Duration;

use anyhow::{Context as _, bail};
use bytes::Bytes;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestGroup;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, BrokerId, CreateTopicsRequest,
    DeleteTopicsRequest, DescribeConfigsRequest, IncrementalAlterConfigsRequest,
    ListOffsetsRequest, MetadataRequest, MetadataResponse, TopicName,
};
use kafka_protocol::messages::{
    DeleteGroupsRequest, DescribeGroupsRequest, FindCoordinatorRequest, GroupId, ListGroupsRequest,
    OffsetCommitRequest, OffsetFetchRequest,
};
use kafka_protocol::protocol::{Decodable, Encodable, Request, StrBytes, VersionRange};
use tierlog_ingest::Connection;

/// How long to wait for a TCP connection to a broker.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long to wait for any one response; generous because CreateTopics waits for leaders.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// The broker-side timeout we ask for in CreateTopics/DeleteTopics.
const OPERATION_TIMEOUT_MS: i32 = 30_000;
/// The ApiVersions version we try first; brokers that do not know it answer at v0.
const API_VERSIONS_VERSION: i16 = 3;
/// `UNSUPPORTED_VERSION`: an ApiVersions answer with this code still lists the broker's range.
const UNSUPPORTED_VERSION: i16 = 35;

/// Kafka's resource type for topics in DescribeConfigs / IncrementalAlterConfigs.
const RESOURCE_TOPIC: i8 = 2;
/// ListOffsets timestamps that mean "log start" and "high watermark".
const EARLIEST_TIMESTAMP: i64 = -2;
const LATEST_TIMESTAMP: i64 = -1;
/// ListOffsets timestamp for the start of the local tier (KIP-405, ListOffsets v8+).
const EARLIEST_LOCAL_TIMESTAMP: i64 = -4;

/// A non-zero Kafka error code returned by a broker, with what we were doing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KafkaError {
    /// What failed, e.g. ``create topic `orders` ``.
    pub(crate) context: String,
    pub(crate) code: i16,
    /// The broker's free-text message, when it sent one.
    pub(crate) message: Option<String>,
}

impl KafkaError {
    pub(crate) fn new(context: impl Into<String>, code: i16, message: Option<&StrBytes>) -> Self {
        Self {
            context: context.into(),
            code,
            message: message
                .map(|m| m.as_str().to_owned())
                .filter(|m| !m.is_empty()),
        }
    }

    /// Turns a code into `Ok` when it is 0 and into this error otherwise.
    pub(crate) fn check(
        context: impl FnOnce() -> String,
        code: i16,
        message: Option<&StrBytes>,
    ) -> Result<(), Self> {
        if code == 0 {
            Ok(())
        } else {
            Err(Self::new(context(), code, message))
        }
    }
}

impl fmt::Display for KafkaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} failed: {} (error code {})",
            self.context,
            error_name(self.code),
            self.code
        )?;
        if let Some(message) = &self.message {
            write!(f, ": {message}")?;
        }
        Ok(())
    }
}

impl std::error::Error for KafkaError {}

/// The name Kafka's documentation uses for an error code: `TOPIC_ALREADY_EXISTS`.
pub(crate) fn error_name(code: i16) -> String {
    match ResponseError::try_from_code(code) {
        None => "NONE".to_owned(),
        Some(ResponseError::Unknown(code)) => format!("UNKNOWN_ERROR_CODE_{code}"),
        // `Display` gives the variant name in CamelCase; Kafka spells it SCREAMING_SNAKE.
        Some(known) => screaming_snake(&known.to_string()),
    }
}

fn screaming_snake(camel: &str) -> String {
    let mut out = String::with_capacity(camel.len() + 8);
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

/// Formats a topic id the way Kafka's tools print it (URL-safe base64, no padding); the nil
/// id (brokers or versions without topic ids) prints as `-`.
pub(crate) fn format_topic_id(id: &[u8; 16]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    if id.iter().all(|b| *b == 0) {
        return "-".to_owned();
    }
    let mut out = String::with_capacity(22);
    for chunk in id.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        // A chunk of k bytes yields k + 1 significant characters.
        for i in 0..=chunk.len() {
            let index = (n >> (18 - 6 * i)) & 0x3f;
            out.push(char::from(ALPHABET[index as usize]));
        }
    }
    out
}

/// Where a config value came from (DescribeConfigs `config_source`, v1+).
pub(crate) fn config_source_name(source: i8) -> &'static str {
    match source {
        1 => "DYNAMIC_TOPIC_CONFIG",
        2 => "DYNAMIC_BROKER_CONFIG",
        3 => "DYNAMIC_DEFAULT_BROKER_CONFIG",
        4 => "STATIC_BROKER_CONFIG",
        5 => "DEFAULT_CONFIG",
        6 => "DYNAMIC_BROKER_LOGGER_CONFIG",
        7 => "CLIENT_METRICS_CONFIG",
        8 => "GROUP_CONFIG",
        _ => "UNKNOWN",
    }
}

/// `config_source` value meaning "set on this topic", i.e. not a default.
pub(crate) const SOURCE_TOPIC: i8 = 1;

/// One TCP connection to one broker, with the API versions it announced.
struct BrokerConnection {
    conn: Connection,
    /// The broker's supported range per API key, from ApiVersions.
    versions: HashMap<i16, VersionRange>,
}

impl BrokerConnection {
    async fn connect(addr: &str) -> anyhow::Result<Self> {
        let conn = Connection::connect(addr, CONNECT_TIMEOUT)
            .await?
            .with_client_id("tierlog-cli");
        let mut conn = Self {
            conn,
            versions: HashMap::new(),
        };
        conn.negotiate().await?;
        Ok(conn)
    }

    /// Sends ApiVersions and records the broker's ranges.
    async fn negotiate(&mut self) -> anyhow::Result<()> {
        let request = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("tierlog-cli"))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let frame = self
            .round_trip(ApiKey::ApiVersions, API_VERSIONS_VERSION, &request)
            .await?;
        // A broker that does not know our version answers at v0 with UNSUPPORTED_VERSION.
        let response = match ApiVersionsResponse::decode(&mut frame.clone(), API_VERSIONS_VERSION) {
            Ok(response) if response.error_code != UNSUPPORTED_VERSION => response,
            _ => {
                let fallback =
                    ApiVersionsResponse::decode(&mut frame.clone(), 0).with_context(|| {
                        format!("decode ApiVersions response from `{}`", self.conn.addr())
                    })?;
                if fallback.error_code != UNSUPPORTED_VERSION {
                    KafkaError::check(|| "ApiVersions".to_owned(), fallback.error_code, None)?;
                }
                let retry = fallback
                    .api_keys
                    .iter()
                    .find(|k| k.api_key == ApiKey::ApiVersions as i16)
                    .map_or(0, |k| k.max_version.min(API_VERSIONS_VERSION));
                let request = if retry >= 3 {
                    request
                } else {
                    ApiVersionsRequest::default()
                };
                let mut frame = self
                    .round_trip(ApiKey::ApiVersions, retry, &request)
                    .await?;
                ApiVersionsResponse::decode(&mut frame, retry).with_context(|| {
                    format!("decode ApiVersions response from `{}`", self.conn.addr())
                })?
            }
        };
        KafkaError::check(|| "ApiVersions".to_owned(), response.error_code, None)?;
        self.versions = response
            .api_keys
            .iter()
            .map(|k| {
                (
                    k.api_key,
                    VersionRange {
                        min: k.min_version,
                        max: k.max_version,
                    },
                )
            })
            .collect();
        Ok(())
    }

    /// The version to use for `key`: the highest both sides support.
    fn version(&self, key: ApiKey) -> anyhow::Result<i16> {
        let ours = key.valid_versions();
        let Some(theirs) = self.versions.get(&(key as i16)) else {
            bail!(
                "broker `{}` does not support the {key:?} API",
                self.conn.addr()
            );
        };
        let common = ours.intersect(theirs);
        if common.is_empty() {
            bail!(
                "broker `{}` supports {key:?} versions {theirs}, this client {ours}: no common version",
                self.conn.addr()
            );
        }
        Ok(common.max)
    }

    /// Sends `request` at the negotiated version and decodes the answer.
    async fn send<R: Request>(&mut self, request: &R) -> anyhow::Result<R::Response> {
        let key =
            ApiKey::try_from(R::KEY).map_err(|()| anyhow::anyhow!("unknown api key {}", R::KEY))?;
        let version = self.version(key)?;
        Ok(self.send_at(key, version, request).await?.1)
    }

    /// Like [`send`](Self::send) but also returns the version used, for callers whose
    /// request or reading of the response depends on it.
    async fn send_versioned<R: Request>(
        &mut self,
        request_for: impl FnOnce(i16) -> R,
    ) -> anyhow::Result<(i16, R::Response)> {
        let key =
            ApiKey::try_from(R::KEY).map_err(|()| anyhow::anyhow!("unknown api key {}", R::KEY))?;
        let version = self.version(key)?;
        let request = request_for(version);
        self.send_at(key, version, &request).await
    }

    async fn send_at<R: Request>(
        &mut self,
        key: ApiKey,
        version: i16,
        request: &R,
    ) -> anyhow::Result<(i16, R::Response)> {
        let mut frame = self.round_trip(key, version, request).await?;
        let response = R::Response::decode(&mut frame, version).with_context(|| {
            format!(
                "decode {key:?} v{version} response from `{}`",
                self.conn.addr()
            )
        })?;
        Ok((version, response))
    }

    /// Writes one request frame and reads the matching response body (header stripped).
    async fn round_trip<R: Encodable>(
        &mut self,
        key: ApiKey,
        version: i16,
        request: &R,
    ) -> anyhow::Result<Bytes> {
        let addr = self.conn.addr().to_owned();
        tokio::time::timeout(REQUEST_TIMEOUT, self.conn.round_trip(key, version, request))
            .await
            .map_err(|_| {
                anyhow::anyhow!("{key:?} request to `{addr}` timed out after {REQUEST_TIMEOUT:?}")
            })?
            .with_context(|| format!("{key:?} request to `{addr}`"))
    }
}

/// A topic as `topic list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TopicSummary {
    pub(crate) name: String,
    pub(crate) id: String,
    pub(crate) partitions: usize,
    /// Replicas of the first partition (all partitions have the same count in practice).
    pub(crate) replication_factor: usize,
    pub(crate) internal: bool,
    /// The topic-level metadata error code, 0 when fine.
    pub(crate) error_code: i16,
}

/// One partition as `topic describe` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PartitionInfo {
    pub(crate) partition: i32,
    /// -1 when the partition has no leader.
    pub(crate) leader: i32,
    pub(crate) leader_epoch: i32,
    pub(crate) replicas: Vec<i32>,
    pub(crate) isr: Vec<i32>,
    pub(crate) offline: Vec<i32>,
    /// Log start offset, or why it is unknown.
    pub(crate) earliest: Result<i64, String>,
    /// Start of the local (hot) tier: offsets below it are served from object storage
    /// (ListOffsets -4, KIP-405); an error when the broker does not report it.
    pub(crate) earliest_local: Result<i64, String>,
    /// High watermark, or why it is unknown.
    pub(crate) latest: Result<i64, String>,
    /// A partition-level metadata error code (e.g. LEADER_NOT_AVAILABLE), 0 when fine.
    pub(crate) error_code: i16,
}

/// One config entry of a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ConfigEntry {
    pub(crate) name: String,
    pub(crate) value: Option<String>,
    /// Kafka's `config_source`; [`SOURCE_TOPIC`] means set on the topic.
    pub(crate) source: i8,
    pub(crate) sensitive: bool,
    pub(crate) read_only: bool,
}

/// Everything `topic describe` prints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TopicDescription {
    pub(crate) name: String,
    pub(crate) id: String,
    pub(crate) internal: bool,
    pub(crate) partitions: Vec<PartitionInfo>,
    pub(crate) configs: Vec<ConfigEntry>,
}

/// What CreateTopics answered for one topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CreatedTopic {
    pub(crate) id: String,
    /// -1 when the broker version does not report it.
    pub(crate) partitions: i32,
    pub(crate) replication_factor: i16,
}

/// A request to create one topic.
#[derive(Debug, Clone)]
pub(crate) struct NewTopic {
    pub(crate) name: String,
    pub(crate) partitions: i32,
    /// `None` asks for the broker default (CreateTopics v4+).
    pub(crate) replication_factor: Option<i16>,
    pub(crate) configs: Vec<(String, String)>,
}

/// One change in an IncrementalAlterConfigs request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ConfigChange {
    Set(String, String),
    Delete(String),
}

/// The admin client: one bootstrap connection plus lazily opened per-node connections.
pub(crate) struct AdminClient {
    bootstrap: BrokerConnection,
    /// node id -> `host:port`, from the last Metadata response.
    brokers: HashMap<i32, String>,
    /// The controller from the last Metadata response, if it named one we know.
    controller: Option<i32>,
    /// Connections to specific nodes, opened on first use.
    nodes: HashMap<i32, BrokerConnection>,
}

impl AdminClient {
    /// Connects to the first reachable address of a comma-separated bootstrap list.
    pub(crate) async fn connect(bootstrap: &str) -> anyhow::Result<Self> {
        let mut last_error = None;
        for addr in bootstrap
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
        {
            match BrokerConnection::connect(addr).await {
                Ok(bootstrap) => {
                    let mut client = Self {
                        bootstrap,
                        brokers: HashMap::new(),
                        controller: None,
                        nodes: HashMap::new(),
                    };
                    // Learn brokers and the controller up front.
                    client.metadata(Some(&[])).await?;
                    return Ok(client);
                }
                Err(e) => last_error = Some(e),
            }
        }
        match last_error {
            Some(e) => Err(e.context(format!("no bootstrap broker reachable in `{bootstrap}`"))),
            None => bail!("empty bootstrap address list"),
        }
    }

    /// Sends Metadata for `topics` (`None` = all topics) and refreshes the broker map.
    async fn metadata(&mut self, topics: Option<&[&str]>) -> anyhow::Result<MetadataResponse> {
        let (_, response) = self
            .bootstrap
            .send_versioned(|version| {
                let mut request = MetadataRequest::default().with_topics(topics.map(|names| {
                    names
                        .iter()
                        .map(|name| {
                            MetadataRequestTopic::default().with_name(Some(TopicName(
                                StrBytes::from_string((*name).to_owned()),
                            )))
                        })
                        .collect()
                }));
                // Before v4 the field does not exist and the broker's setting applies.
                request.allow_auto_topic_creation = version < 4;
                request
            })
            .await?;
        self.brokers = response
            .brokers
            .iter()
            .map(|b| (b.node_id.0, format!("{}:{}", b.host.as_str(), b.port)))
            .collect();
        self.controller = Some(response.controller_id.0).filter(|id| self.brokers.contains_key(id));
        Ok(response)
    }

    /// The connection to node `id`, opened on first use.
    async fn node(&mut self, id: i32) -> anyhow::Result<&mut BrokerConnection> {
        if !self.nodes.contains_key(&id) {
            let Some(addr) = self.brokers.get(&id) else {
                bail!("node {id} is not in the cluster metadata");
            };
            let conn = BrokerConnection::connect(addr)
                .await
                .with_context(|| format!("connect to node {id}"))?;
            self.nodes.insert(id, conn);
        }
        self.nodes
            .get_mut(&id)
            .ok_or_else(|| anyhow::anyhow!("node {id} connection vanished"))
    }

    /// The controller's connection, or the bootstrap connection when there is none (brokers
    /// that forward admin requests, or a single node).
    async fn controller(&mut self) -> anyhow::Result<&mut BrokerConnection> {
        match self.controller {
            Some(id) => self.node(id).await,
            None => Ok(&mut self.bootstrap),
        }
    }

    /// All topics, sorted by name.
    pub(crate) async fn list_topics(&mut self) -> anyhow::Result<Vec<TopicSummary>> {
        let response = self.metadata(None).await?;
        let mut topics = Vec::with_capacity(response.topics.len());
        for topic in &response.topics {
            let name = topic
                .name
                .as_ref()
                .map(|n| n.0.as_str().to_owned())
                .unwrap_or_default();
            // A topic-level error (say, LEADER_NOT_AVAILABLE while it is being created) is
            // shown beside the topic rather than failing the whole listing.
            topics.push(TopicSummary {
                error_code: topic.error_code,
                id: format_topic_id(topic.topic_id.as_bytes()),
                partitions: topic.partitions.len(),
                replication_factor: topic
                    .partitions
                    .first()
                    .map_or(0, |p| p.replica_nodes.len()),
                internal: topic.is_internal,
                name,
            });
        }
        topics.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(topics)
    }

    /// The partitions (id, leader) of `topic`, failing with the Kafka error when it does not
    /// exist. Used by `bench` before producing/consuming.
    pub(crate) async fn topic_partitions(
        &mut self,
        topic: &str,
    ) -> anyhow::Result<Vec<(i32, i32)>> {
        let response = self.metadata(Some(&[topic])).await?;
        let Some(t) = response.topics.first() else {
            bail!("metadata for topic `{topic}` returned no topic");
        };
        KafkaError::check(
            || format!("metadata for topic `{topic}`"),
            t.error_code,
            None,
        )?;
        let mut partitions: Vec<(i32, i32)> = t
            .partitions
            .iter()
            .map(|p| (p.partition_index, p.leader_id.0))
            .collect();
        partitions.sort_unstable();
        Ok(partitions)
    }

    /// Metadata, offsets and configs of one topic.
    pub(crate) async fn describe_topic(&mut self, name: &str) -> anyhow::Result<TopicDescription> {
        let response = self.metadata(Some(&[name])).await?;
        let Some(topic) = response.topics.into_iter().next() else {
            bail!("metadata for topic `{name}` returned no topic");
        };
        KafkaError::check(
            || format!("describe topic `{name}`"),
            topic.error_code,
            None,
        )?;

        let mut partitions: Vec<PartitionInfo> = topic
            .partitions
            .iter()
            .map(|p| PartitionInfo {
                partition: p.partition_index,
                leader: p.leader_id.0,
                leader_epoch: p.leader_epoch,
                replicas: p.replica_nodes.iter().map(|b| b.0).collect(),
                isr: p.isr_nodes.iter().map(|b| b.0).collect(),
                offline: p.offline_replicas.iter().map(|b| b.0).collect(),
                earliest: Err("no leader".to_owned()),
                earliest_local: Err("no leader".to_owned()),
                latest: Err("no leader".to_owned()),
                error_code: p.error_code,
            })
            .collect();
        partitions.sort_by_key(|p| p.partition);
        self.fill_offsets(name, &mut partitions).await;

        Ok(TopicDescription {
            name: name.to_owned(),
            id: format_topic_id(topic.topic_id.as_bytes()),
            internal: topic.is_internal,
            partitions,
            configs: self.describe_configs(name).await?,
        })
    }

    /// Asks each partition's leader for its earliest and latest offsets. Failures are
    /// recorded per partition rather than failing the whole describe.
    async fn fill_offsets(&mut self, topic: &str, partitions: &mut [PartitionInfo]) {
        let mut by_leader: BTreeMap<i32, Vec<usize>> = BTreeMap::new();
        for (i, p) in partitions.iter().enumerate() {
            if p.leader >= 0 {
                by_leader.entry(p.leader).or_default().push(i);
            }
        }
        for (leader, indexes) in by_leader {
            let ids: Vec<i32> = indexes.iter().map(|i| partitions[*i].partition).collect();
            for timestamp in [
                EARLIEST_TIMESTAMP,
                EARLIEST_LOCAL_TIMESTAMP,
                LATEST_TIMESTAMP,
            ] {
                let result = self.list_offsets(leader, topic, &ids, timestamp).await;
                for &i in &indexes {
                    let partition = partitions[i].partition;
                    let value = match &result {
                        Ok(offsets) => offsets
                            .get(&partition)
                            .cloned()
                            .unwrap_or_else(|| Err("missing from response".to_owned())),
                        Err(e) => Err(format!("{e:#}")),
                    };
                    match timestamp {
                        EARLIEST_TIMESTAMP => partitions[i].earliest = value,
                        EARLIEST_LOCAL_TIMESTAMP => partitions[i].earliest_local = value,
                        _ => partitions[i].latest = value,
                    }
                }
            }
        }
    }

    /// ListOffsets on `leader` for `partitions` of `topic` at `timestamp`; per partition the
    /// offset or the error name.
    async fn list_offsets(
        &mut self,
        leader: i32,
        topic: &str,
        partitions: &[i32],
        timestamp: i64,
    ) -> anyhow::Result<HashMap<i32, Result<i64, String>>> {
        let request = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![
                ListOffsetsTopic::default()
                    .with_name(TopicName(StrBytes::from_string(topic.to_owned())))
                    .with_partitions(
                        partitions
                            .iter()
                            .map(|p| {
                                ListOffsetsPartition::default()
                                    .with_partition_index(*p)
                                    .with_timestamp(timestamp)
                            })
                            .collect(),
                    ),
            ]);
        let response = self.node(leader).await?.send(&request).await?;
        let mut offsets = HashMap::new();
        for t in response
            .topics
            .iter()
            .filter(|t| t.name.0.as_str() == topic)
        {
            for p in &t.partitions {
                let value = if p.error_code == 0 {
                    Ok(p.offset)
                } else {
                    Err(error_name(p.error_code))
                };
                offsets.insert(p.partition_index, value);
            }
        }
        Ok(offsets)
    }

    /// All configs of a topic, sorted by name.
    pub(crate) async fn describe_configs(
        &mut self,
        topic: &str,
    ) -> anyhow::Result<Vec<ConfigEntry>> {
        let request = DescribeConfigsRequest::default().with_resources(vec![
            DescribeConfigsResource::default()
                .with_resource_type(RESOURCE_TOPIC)
                .with_resource_name(StrBytes::from_string(topic.to_owned()))
                .with_configuration_keys(None),
        ]);
        let response = self.bootstrap.send(&request).await?;
        let Some(result) = response.results.into_iter().next() else {
            bail!("DescribeConfigs for topic `{topic}` returned no result");
        };
        KafkaError::check(
            || format!("describe configs of topic `{topic}`"),
            result.error_code,
            result.error_message.as_ref(),
        )?;
        let mut configs: Vec<ConfigEntry> = result
            .configs
            .into_iter()
            .map(|c| ConfigEntry {
                name: c.name.as_str().to_owned(),
                value: c.value.map(|v| v.as_str().to_owned()),
                source: c.config_source,
                sensitive: c.is_sensitive,
                read_only: c.read_only,
            })
            .collect();
        configs.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(configs)
    }

    /// CreateTopics for one topic, sent to the controller.
    pub(crate) async fn create_topic(
        &mut self,
        topic: &NewTopic,
        validate_only: bool,
    ) -> anyhow::Result<CreatedTopic> {
        let creatable = CreatableTopic::default()
            .with_name(TopicName(StrBytes::from_string(topic.name.clone())))
            .with_num_partitions(topic.partitions)
            .with_replication_factor(topic.replication_factor.unwrap_or(-1))
            .with_configs(
                topic
                    .configs
                    .iter()
                    .map(|(k, v)| {
                        CreatableTopicConfig::default()
                            .with_name(StrBytes::from_string(k.clone()))
                            .with_value(Some(StrBytes::from_string(v.clone())))
                    })
                    .collect(),
            );
        let request = CreateTopicsRequest::default()
            .with_topics(vec![creatable])
            .with_timeout_ms(OPERATION_TIMEOUT_MS)
            .with_validate_only(validate_only);
        let conn = self.controller().await?;
        let key = ApiKey::CreateTopics;
        let version = conn.version(key)?;
        if topic.replication_factor.is_none() && version < 4 {
            bail!(
                "broker only supports CreateTopics v{version}, which needs an explicit --replication-factor"
            );
        }
        let (_, response) = conn.send_at(key, version, &request).await?;
        let Some(result) = response
            .topics
            .into_iter()
            .find(|t| t.name.0.as_str() == topic.name)
        else {
            bail!(
                "CreateTopics response does not mention topic `{}`",
                topic.name
            );
        };
        KafkaError::check(
            || format!("create topic `{}`", topic.name),
            result.error_code,
            result.error_message.as_ref(),
        )?;
        Ok(CreatedTopic {
            id: format_topic_id(result.topic_id.as_bytes()),
            partitions: if version >= 5 {
                result.num_partitions
            } else {
                topic.partitions
            },
            replication_factor: if version >= 5 {
                result.replication_factor
            } else {
                topic.replication_factor.unwrap_or(-1)
            },
        })
    }

    /// DeleteTopics, sent to the controller; per topic `Ok` or the Kafka error.
    pub(crate) async fn delete_topics(
        &mut self,
        names: &[String],
    ) -> anyhow::Result<Vec<(String, Result<(), KafkaError>)>> {
        let conn = self.controller().await?;
        let (_, response) = conn
            .send_versioned(|version| {
                let request = DeleteTopicsRequest::default().with_timeout_ms(OPERATION_TIMEOUT_MS);
                let topic_name = |n: &String| TopicName(StrBytes::from_string(n.clone()));
                if version >= 6 {
                    request.with_topics(
                        names
                            .iter()
                            .map(|n| DeleteTopicState::default().with_name(Some(topic_name(n))))
                            .collect(),
                    )
                } else {
                    request.with_topic_names(names.iter().map(topic_name).collect())
                }
            })
            .await?;
        let mut results = Vec::with_capacity(names.len());
        for name in names {
            let Some(r) = response
                .responses
                .iter()
                .find(|r| r.name.as_ref().is_some_and(|n| n.0.as_str() == name))
            else {
                results.push((
                    name.clone(),
                    Err(KafkaError {
                        context: format!("delete topic `{name}`"),
                        code: -1,
                        message: Some("the response does not mention this topic".to_owned()),
                    }),
                ));
                continue;
            };
            let outcome = KafkaError::check(
                || format!("delete topic `{name}`"),
                r.error_code,
                r.error_message.as_ref(),
            );
            results.push((name.clone(), outcome));
        }
        Ok(results)
    }

    /// IncrementalAlterConfigs on one topic.
    pub(crate) async fn alter_topic_configs(
        &mut self,
        topic: &str,
        changes: &[ConfigChange],
        validate_only: bool,
    ) -> anyhow::Result<()> {
        const OP_SET: i8 = 0;
        const OP_DELETE: i8 = 1;
        let configs = changes
            .iter()
            .map(|change| match change {
                ConfigChange::Set(k, v) => AlterableConfig::default()
                    .with_name(StrBytes::from_string(k.clone()))
                    .with_config_operation(OP_SET)
                    .with_value(Some(StrBytes::from_string(v.clone()))),
                ConfigChange::Delete(k) => AlterableConfig::default()
                    .with_name(StrBytes::from_string(k.clone()))
                    .with_config_operation(OP_DELETE)
                    .with_value(None),
            })
            .collect();
        let request = IncrementalAlterConfigsRequest::default()
            .with_resources(vec![
                AlterConfigsResource::default()
                    .with_resource_type(RESOURCE_TOPIC)
                    .with_resource_name(StrBytes::from_string(topic.to_owned()))
                    .with_configs(configs),
            ])
            .with_validate_only(validate_only);
        let response = self.bootstrap.send(&request).await?;
        let Some(result) = response.responses.first() else {
            bail!("IncrementalAlterConfigs for topic `{topic}` returned no result");
        };
        KafkaError::check(
            || format!("alter configs of topic `{topic}`"),
            result.error_code,
            result.error_message.as_ref(),
        )?;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Consumer groups (`tierlog group`): FindCoordinator routes each group's requests to its
// coordinator; ListGroups asks every broker; the rest go to the coordinator.
// ---------------------------------------------------------------------------------------------

/// FindCoordinator `key_type` for consumer groups.
const COORDINATOR_KEY_GROUP: i8 = 0;

/// A group as ListGroups reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GroupListing {
    pub(crate) group_id: String,
    /// `consumer` for Kafka consumers, empty for groups that only store offsets.
    pub(crate) protocol_type: String,
    /// The state (ListGroups v4+); `None` from older brokers.
    pub(crate) state: Option<String>,
}

/// One member of a group as DescribeGroups reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GroupMemberInfo {
    pub(crate) member_id: String,
    /// `group.instance.id` of a static member.
    pub(crate) instance_id: Option<String>,
    pub(crate) client_id: String,
    pub(crate) client_host: String,
    /// The assignment bytes the leader sent through SyncGroup (consumer protocol encoding for
    /// `protocol_type` `consumer`); empty while a rebalance is in progress.
    pub(crate) assignment: Bytes,
}

/// A group as DescribeGroups reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GroupDescription {
    pub(crate) group_id: String,
    /// `Empty`, `PreparingRebalance`, `CompletingRebalance`, `Stable` or `Dead` (the group
    /// does not exist).
    pub(crate) state: String,
    pub(crate) protocol_type: String,
    /// The chosen protocol, for consumers the assignor (`range`, `cooperative-sticky`, …).
    pub(crate) protocol: String,
    pub(crate) members: Vec<GroupMemberInfo>,
}

/// One committed offset of a group (OffsetFetch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CommittedOffset {
    pub(crate) topic: String,
    pub(crate) partition: i32,
    /// -1 when nothing is committed.
    pub(crate) offset: i64,
    pub(crate) metadata: Option<String>,
    /// A partition-level error code, 0 when fine.
    pub(crate) error_code: i16,
}

/// Which offset ListOffsets should look up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OffsetSpec {
    /// The log start offset.
    Earliest,
    /// The log end offset (high watermark).
    Latest,
    /// The first offset whose timestamp is at or after this many ms since the epoch; the
    /// log end offset when no record is that recent.
    Timestamp(i64),
}

impl AdminClient {
    /// FindCoordinator for a group: the coordinating node's id, with its address recorded so
    /// [`node`](Self::node) can reach it.
    async fn find_group_coordinator(&mut self, group: &str) -> anyhow::Result<i32> {
        let (version, response) = self
            .bootstrap
            .send_versioned(|version| {
                let request =
                    FindCoordinatorRequest::default().with_key_type(COORDINATOR_KEY_GROUP);
                if version >= 4 {
                    request.with_coordinator_keys(vec![StrBytes::from_string(group.to_owned())])
                } else {
                    request.with_key(StrBytes::from_string(group.to_owned()))
                }
            })
            .await?;
        let (node, host, port, code, message) = if version >= 4 {
            let Some(c) = response.coordinators.into_iter().next() else {
                bail!("FindCoordinator for group `{group}` returned no coordinator");
            };
            (c.node_id.0, c.host, c.port, c.error_code, c.error_message)
        } else {
            (
                response.node_id.0,
                response.host,
                response.port,
                response.error_code,
                response.error_message,
            )
        };
        KafkaError::check(
            || format!("find the coordinator of group `{group}`"),
            code,
            message.as_ref(),
        )?;
        self.brokers
            .entry(node)
            .or_insert_with(|| format!("{}:{port}", host.as_str()));
        Ok(node)
    }

    /// The connection to a group's coordinator.
    async fn group_coordinator(&mut self, group: &str) -> anyhow::Result<&mut BrokerConnection> {
        let node = self.find_group_coordinator(group).await?;
        self.node(node).await
    }

    /// ListGroups on every broker, merged and sorted by group id.
    pub(crate) async fn list_groups(&mut self) -> anyhow::Result<Vec<GroupListing>> {
        let mut ids: Vec<i32> = self.brokers.keys().copied().collect();
        ids.sort_unstable();
        let mut groups: BTreeMap<String, GroupListing> = BTreeMap::new();
        for id in ids {
            let (version, response) = self
                .node(id)
                .await?
                .send_versioned(|_| ListGroupsRequest::default())
                .await?;
            KafkaError::check(
                || format!("list groups on node {id}"),
                response.error_code,
                None,
            )?;
            for g in response.groups {
                let group_id = g.group_id.0.as_str().to_owned();
                groups.insert(
                    group_id.clone(),
                    GroupListing {
                        group_id,
                        protocol_type: g.protocol_type.as_str().to_owned(),
                        state: (version >= 4).then(|| g.group_state.as_str().to_owned()),
                    },
                );
            }
        }
        Ok(groups.into_values().collect())
    }

    /// DescribeGroups for one group, on its coordinator. A group that does not exist is
    /// reported by Kafka either as state `Dead` or as `GROUP_ID_NOT_FOUND`.
    pub(crate) async fn describe_group(&mut self, group: &str) -> anyhow::Result<GroupDescription> {
        let request = DescribeGroupsRequest::default()
            .with_groups(vec![GroupId(StrBytes::from_string(group.to_owned()))]);
        let response = self.group_coordinator(group).await?.send(&request).await?;
        let Some(g) = response
            .groups
            .into_iter()
            .find(|g| g.group_id.0.as_str() == group)
        else {
            bail!("DescribeGroups response does not mention group `{group}`");
        };
        KafkaError::check(
            || format!("describe group `{group}`"),
            g.error_code,
            g.error_message.as_ref(),
        )?;
        Ok(GroupDescription {
            group_id: group.to_owned(),
            state: g.group_state.as_str().to_owned(),
            protocol_type: g.protocol_type.as_str().to_owned(),
            protocol: g.protocol_data.as_str().to_owned(),
            members: g
                .members
                .into_iter()
                .map(|m| GroupMemberInfo {
                    member_id: m.member_id.as_str().to_owned(),
                    instance_id: m.group_instance_id.map(|i| i.as_str().to_owned()),
                    client_id: m.client_id.as_str().to_owned(),
                    client_host: m.client_host.as_str().to_owned(),
                    assignment: m.member_assignment,
                })
                .collect(),
        })
    }

    /// OffsetFetch of every committed offset of a group, sorted by topic and partition.
    pub(crate) async fn fetch_group_offsets(
        &mut self,
        group: &str,
    ) -> anyhow::Result<Vec<CommittedOffset>> {
        let group_id = GroupId(StrBytes::from_string(group.to_owned()));
        let (version, response) = self
            .group_coordinator(group)
            .await?
            .send_versioned(|version| {
                if version >= 8 {
                    OffsetFetchRequest::default().with_groups(vec![
                        OffsetFetchRequestGroup::default()
                            .with_group_id(group_id.clone())
                            .with_topics(None),
                    ])
                } else {
                    // A null topic list (v2+) asks for every committed offset.
                    OffsetFetchRequest::default()
                        .with_group_id(group_id.clone())
                        .with_topics(None)
                }
            })
            .await?;
        let context = || format!("fetch the committed offsets of group `{group}`");
        let mut offsets = Vec::new();
        if version >= 8 {
            let Some(g) = response
                .groups
                .into_iter()
                .find(|g| g.group_id.0.as_str() == group)
            else {
                bail!("OffsetFetch response does not mention group `{group}`");
            };
            KafkaError::check(context, g.error_code, None)?;
            for t in g.topics {
                for p in t.partitions {
                    offsets.push(CommittedOffset {
                        topic: t.name.0.as_str().to_owned(),
                        partition: p.partition_index,
                        offset: p.committed_offset,
                        metadata: p.metadata.map(|m| m.as_str().to_owned()),
                        error_code: p.error_code,
                    });
                }
            }
        } else {
            KafkaError::check(context, response.error_code, None)?;
            for t in response.topics {
                for p in t.partitions {
                    offsets.push(CommittedOffset {
                        topic: t.name.0.as_str().to_owned(),
                        partition: p.partition_index,
                        offset: p.committed_offset,
                        metadata: p.metadata.map(|m| m.as_str().to_owned()),
                        error_code: p.error_code,
                    });
                }
            }
        }
        offsets.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        Ok(offsets)
    }

    /// DeleteGroups, each group sent to its coordinator; per group `Ok` or the Kafka error.
    pub(crate) async fn delete_groups(
        &mut self,
        names: &[String],
    ) -> anyhow::Result<Vec<(String, Result<(), KafkaError>)>> {
        let mut by_coordinator: BTreeMap<i32, Vec<String>> = BTreeMap::new();
        let mut results: HashMap<String, Result<(), KafkaError>> = HashMap::new();
        for name in names {
            match self.find_group_coordinator(name).await {
                Ok(node) => by_coordinator.entry(node).or_default().push(name.clone()),
                Err(e) => match e.downcast::<KafkaError>() {
                    Ok(kafka) => {
                        results.insert(name.clone(), Err(kafka));
                    }
                    Err(other) => return Err(other),
                },
            }
        }
        for (node, groups) in by_coordinator {
            let request = DeleteGroupsRequest::default().with_groups_names(
                groups
                    .iter()
                    .map(|g| GroupId(StrBytes::from_string(g.clone())))
                    .collect(),
            );
            let response = self.node(node).await?.send(&request).await?;
            for group in groups {
                let outcome = match response
                    .results
                    .iter()
                    .find(|r| r.group_id.0.as_str() == group)
                {
                    Some(r) => {
                        KafkaError::check(|| format!("delete group `{group}`"), r.error_code, None)
                    }
                    None => Err(KafkaError {
                        context: format!("delete group `{group}`"),
                        code: -1,
                        message: Some("the response does not mention this group".to_owned()),
                    }),
                };
                results.insert(group, outcome);
            }
        }
        Ok(names
            .iter()
            .map(|n| {
                let outcome = results.remove(n).unwrap_or(Ok(()));
                (n.clone(), outcome)
            })
            .collect())
    }

    /// OffsetCommit as an administrator (generation -1, no member id), which Kafka accepts only
    /// while the group has no members. Returns per `(topic, partition)` `Ok` or the error.
    pub(crate) async fn commit_group_offsets(
        &mut self,
        group: &str,
        offsets: &[(String, i32, i64)],
    ) -> anyhow::Result<Vec<((String, i32), Result<(), KafkaError>)>> {
        let mut by_topic: BTreeMap<&str, Vec<OffsetCommitRequestPartition>> = BTreeMap::new();
        for (topic, partition, offset) in offsets {
            by_topic.entry(topic.as_str()).or_default().push(
                OffsetCommitRequestPartition::default()
                    .with_partition_index(*partition)
                    .with_committed_offset(*offset)
                    .with_committed_leader_epoch(-1)
                    .with_committed_metadata(Some(StrBytes::from_static_str(""))),
            );
        }
        let request = OffsetCommitRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(group.to_owned())))
            .with_generation_id_or_member_epoch(-1)
            .with_member_id(StrBytes::from_static_str(""))
            .with_retention_time_ms(-1)
            .with_topics(
                by_topic
                    .into_iter()
                    .map(|(topic, partitions)| {
                        OffsetCommitRequestTopic::default()
                            .with_name(TopicName(StrBytes::from_string(topic.to_owned())))
                            .with_partitions(partitions)
                    })
                    .collect(),
            );
        let response = self.group_coordinator(group).await?.send(&request).await?;
        let mut results = Vec::with_capacity(offsets.len());
        for (topic, partition, _) in offsets {
            let code = response
                .topics
                .iter()
                .filter(|t| t.name.0.as_str() == topic)
                .flat_map(|t| &t.partitions)
                .find(|p| p.partition_index == *partition)
                .map(|p| p.error_code);
            let context = || format!("commit offset of `{topic}` partition {partition}");
            let outcome = match code {
                Some(code) => KafkaError::check(context, code, None),
                None => Err(KafkaError {
                    context: context(),
                    code: -1,
                    message: Some("the response does not mention this partition".to_owned()),
                }),
            };
            results.push(((topic.clone(), *partition), outcome));
        }
        Ok(results)
    }

    /// ListOffsets for `partitions` of `topic` (each asked of its leader); per partition the
    /// offset or why it is unknown. A timestamp later than every record resolves to the log
    /// end offset, as Kafka's tools do.
    pub(crate) async fn partition_offsets(
        &mut self,
        topic: &str,
        partitions: &[i32],
        spec: OffsetSpec,
    ) -> anyhow::Result<BTreeMap<i32, Result<i64, String>>> {
        let leaders: HashMap<i32, i32> = self.topic_partitions(topic).await?.into_iter().collect();
        let mut by_leader: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
        let mut out = BTreeMap::new();
        for p in partitions {
            match leaders.get(p) {
                Some(leader) if *leader >= 0 => by_leader.entry(*leader).or_default().push(*p),
                Some(_) => {
                    out.insert(*p, Err("no leader".to_owned()));
                }
                None => {
                    out.insert(*p, Err("no such partition".to_owned()));
                }
            }
        }
        let timestamp = match spec {
            OffsetSpec::Earliest => EARLIEST_TIMESTAMP,
            OffsetSpec::Latest => LATEST_TIMESTAMP,
            OffsetSpec::Timestamp(ms) => ms,
        };
        for (leader, ids) in by_leader {
            let mut found = match self.list_offsets(leader, topic, &ids, timestamp).await {
                Ok(found) => found,
                Err(e) => ids.iter().map(|p| (*p, Err(format!("{e:#}")))).collect(),
            };
            if matches!(spec, OffsetSpec::Timestamp(_)) {
                let past_the_end: Vec<i32> = ids
                    .iter()
                    .copied()
                    .filter(|p| matches!(found.get(p), Some(Ok(-1))))
                    .collect();
                if !past_the_end.is_empty() {
                    let ends = self
                        .list_offsets(leader, topic, &past_the_end, LATEST_TIMESTAMP)
                        .await;
                    for p in past_the_end {
                        let end = match &ends {
                            Ok(ends) => ends
                                .get(&p)
                                .cloned()
                                .unwrap_or_else(|| Err("missing from response".to_owned())),
                            Err(e) => Err(format!("{e:#}")),
                        };
                        found.insert(p, end);
                    }
                }
            }
            for p in ids {
                let value = found
                    .remove(&p)
                    .unwrap_or_else(|| Err("missing from response".to_owned()));
                out.insert(p, value);
            }
        }
        Ok(out)
    }
}

/// One topic's partitions in a consumer-protocol assignment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AssignedTopic {
    pub(crate) topic: String,
    pub(crate) partitions: Vec<i32>,
}

/// Decodes a `ConsumerProtocolAssignment` (the bytes a consumer group leader hands each member
/// through SyncGroup, versions 0-3 share one layout): version `i16`, an `i32`-counted array of
/// (topic as `i16`-length string, `i32`-counted array of `i32` partitions), then user data as
/// nullable `i32`-length bytes. Empty input (no assignment yet) decodes to no topics.
pub(crate) fn decode_consumer_assignment(bytes: &[u8]) -> anyhow::Result<Vec<AssignedTopic>> {
    fn take<'a>(buf: &mut &'a [u8], n: usize, what: &str) -> anyhow::Result<&'a [u8]> {
        if buf.len() < n {
            bail!(
                "assignment truncated reading {what}: need {n} bytes, {} left",
                buf.len()
            );
        }
        let (head, tail) = buf.split_at(n);
        *buf = tail;
        Ok(head)
    }
    fn i16_at(buf: &mut &[u8], what: &str) -> anyhow::Result<i16> {
        let b = take(buf, 2, what)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }
    fn i32_at(buf: &mut &[u8], what: &str) -> anyhow::Result<i32> {
        let b = take(buf, 4, what)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn count(buf: &mut &[u8], what: &str, min_item: usize) -> anyhow::Result<usize> {
        let n = i32_at(buf, what)?;
        if n < 0 {
            return Ok(0);
        }
        let n = usize::try_from(n).unwrap_or(usize::MAX);
        // A count the remaining bytes cannot hold is corruption, not a reason to allocate.
        if n.saturating_mul(min_item) > buf.len() {
            bail!("assignment {what} {n} exceeds the {} bytes left", buf.len());
        }
        Ok(n)
    }

    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    let mut buf = bytes;
    let version = i16_at(&mut buf, "version")?;
    if version < 0 {
        bail!("assignment has negative version {version}");
    }
    let topics = count(&mut buf, "topic count", 6)?;
    let mut out = Vec::with_capacity(topics);
    for _ in 0..topics {
        let len = i16_at(&mut buf, "topic name length")?;
        let len = usize::try_from(len).map_err(|_| anyhow::anyhow!("null topic name"))?;
        let name = std::str::from_utf8(take(&mut buf, len, "topic name")?)
            .map_err(|_| anyhow::anyhow!("topic name is not UTF-8"))?
            .to_owned();
        let n = count(&mut buf, "partition count", 4)?;
        let mut partitions = Vec::with_capacity(n);
        for _ in 0..n {
            partitions.push(i32_at(&mut buf, "partition")?);
        }
        out.push(AssignedTopic {
            topic: name,
            partitions,
        });
    }
    // User data follows; its content is the assignor's business, but it must be intact.
    if !buf.is_empty() {
        let len = i32_at(&mut buf, "user data length")?;
        if len > 0 {
            take(
                &mut buf,
                usize::try_from(len).unwrap_or(usize::MAX),
                "user data",
            )?;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn error_names_match_kafka_spelling() {
        assert_eq!(error_name(36), "TOPIC_ALREADY_EXISTS");
        assert_eq!(error_name(3), "UNKNOWN_TOPIC_OR_PARTITION");
        assert_eq!(error_name(-1), "UNKNOWN_SERVER_ERROR");
        assert_eq!(error_name(0), "NONE");
        assert_eq!(error_name(9999), "UNKNOWN_ERROR_CODE_9999");
    }

    #[test]
    fn kafka_error_display_names_code_and_message() {
        let e = KafkaError::new(
            "create topic `orders`",
            36,
            Some(&StrBytes::from_static_str("Topic 'orders' already exists.")),
        );
        assert_eq!(
            e.to_string(),
            "create topic `orders` failed: TOPIC_ALREADY_EXISTS (error code 36): \
             Topic 'orders' already exists."
        );
        let e = KafkaError::new("delete topic `x`", 3, Some(&StrBytes::from_static_str("")));
        assert_eq!(
            e.to_string(),
            "delete topic `x` failed: UNKNOWN_TOPIC_OR_PARTITION (error code 3)"
        );
    }

    #[test]
    fn topic_ids_print_as_kafka_base64() {
        assert_eq!(format_topic_id(&[0; 16]), "-");
        // All-ones: 16 bytes -> 22 characters, last one carries 4 significant bits.
        assert_eq!(format_topic_id(&[0xff; 16]), "_____________________w");
        let mut id = [0_u8; 16];
        id[15] = 1;
        assert_eq!(format_topic_id(&id), "AAAAAAAAAAAAAAAAAAAAAQ");
    }

    #[test]
    fn config_sources_have_names() {
        assert_eq!(config_source_name(SOURCE_TOPIC), "DYNAMIC_TOPIC_CONFIG");
        assert_eq!(config_source_name(5), "DEFAULT_CONFIG");
        assert_eq!(config_source_name(42), "UNKNOWN");
    }
}
