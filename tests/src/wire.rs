//! Raw Kafka protocol for tests that need exact control of the bytes on the wire (malformed
//! frames, corrupted batches) or exact error codes that a client library would hide behind
//! retries.
//!
//! [`Conn`] is a blocking face on the node library's [`Connection`] (framing, request headers,
//! correlation ids, the response size limit), so tests speak the protocol exactly as the
//! replica fetcher and the CLI do. Requests are sent one at a time and each response is matched
//! to its correlation id; every call fails after [`IO_TIMEOUT`] rather than hanging a test.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchRequest, FetchTopic};
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::list_offsets_request::{
    ListOffsetsPartition, ListOffsetsRequest, ListOffsetsTopic,
};
use kafka_protocol::messages::metadata_request::{MetadataRequest, MetadataRequestTopic};
use kafka_protocol::messages::metadata_response::MetadataResponseTopic;
use kafka_protocol::messages::produce_request::{
    PartitionProduceData, ProduceRequest, TopicProduceData,
};
use kafka_protocol::messages::produce_response::PartitionProduceResponse;
use kafka_protocol::messages::{
    ApiVersionsRequest, ApiVersionsResponse, BrokerId, IncrementalAlterConfigsRequest,
    SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest, TopicName,
};
use kafka_protocol::protocol::{Request, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use tierlog_ingest::Connection;

/// Read/write timeout on raw connections: long enough for a long-poll Fetch, short enough that
/// a broker that neither answers nor closes fails the test instead of hanging it.
pub const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// The `client_id` raw requests carry.
pub const CLIENT_ID: &str = "tierlog-tests-wire";

/// Produce version used by the helpers (topics by name, non-flexible).
pub const PRODUCE_VERSION: i16 = 8;
/// ListOffsets version used by the helpers.
pub const LIST_OFFSETS_VERSION: i16 = 5;
/// Metadata version used by the helpers.
pub const METADATA_VERSION: i16 = 9;
/// Fetch version used by the helpers (topics by name).
pub const FETCH_VERSION: i16 = 11;

/// ListOffsets timestamp meaning "the log end offset".
pub const LATEST: i64 = -1;
/// ListOffsets timestamp meaning "the log start offset" (of the whole log, remote included).
pub const EARLIEST: i64 = -2;
/// ListOffsets timestamp meaning "the start of the local (hot) log" (KIP-405; ListOffsets v8+).
pub const EARLIEST_LOCAL: i64 = -4;
/// ListOffsets version that understands [`EARLIEST_LOCAL`].
pub const LIST_OFFSETS_TIERED_VERSION: i16 = 8;
/// Kafka error code KAFKA_STORAGE_ERROR.
pub const KAFKA_STORAGE_ERROR: i16 = 56;

/// One raw connection to a broker.
#[derive(Debug)]
pub struct Conn {
    conn: Connection,
}

impl Conn {
    /// Connects (within 5 s); every later call times out after [`IO_TIMEOUT`].
    pub fn connect(addr: SocketAddr) -> Result<Self> {
        let conn = block_on(Connection::connect(
            &addr.to_string(),
            Duration::from_secs(5),
        ))?
        .with_context(|| format!("connecting to {addr}"))?
        .with_client_id(CLIENT_ID);
        Ok(Conn { conn })
    }

    /// Writes bytes exactly as given (no length prefix added).
    pub fn send_raw(&mut self, bytes: &[u8]) -> Result<()> {
        io("writing raw bytes", self.conn.write_raw(bytes))
    }

    /// Writes one frame: the length prefix, then `payload`.
    pub fn send_frame(&mut self, payload: &[u8]) -> Result<()> {
        io("writing a frame", self.conn.write_frame(payload))
    }

    /// Reads one frame and returns its payload (without the length prefix).
    pub fn read_frame(&mut self) -> Result<Bytes> {
        io("reading a response", self.conn.read_frame())?
            .context("the broker closed the connection instead of responding")
    }

    /// Sends `request` at `version` and decodes the matching response.
    pub fn request<R: Request + Sync>(&mut self, request: &R, version: i16) -> Result<R::Response>
    where
        R::Response: Send,
    {
        let what = format!("api key {} v{version} request", R::KEY);
        io(&what, self.conn.request(version, request))
    }

    /// Waits until the broker closes the connection: a read returns end-of-file or a reset.
    /// Any bytes received before that are returned (a broker may legitimately say nothing).
    pub fn expect_closed(&mut self, within: Duration) -> Result<Vec<u8>> {
        let mut received = Vec::new();
        let conn = &mut self.conn;
        // The timer is made inside the block so that it belongs to the runtime that polls it.
        let wait =
            async { tokio::time::timeout(within, conn.read_until_closed(&mut received)).await };
        match block_on(wait)? {
            Ok(closed) => closed.context("reading while waiting for close")?,
            Err(_) => anyhow::bail!(
                "connection still open {within:?} later (received {} bytes)",
                received.len()
            ),
        }
        Ok(received)
    }

    /// SaslHandshake (v1) for `mechanism`, which must be accepted, then one SaslAuthenticate
    /// (v2) carrying `auth_bytes`; returns that answer (the caller judges its error code).
    pub fn sasl_authenticate(
        &mut self,
        mechanism: &str,
        auth_bytes: impl Into<Bytes>,
    ) -> Result<SaslAuthenticateResponse> {
        let hs = self.request(
            &SaslHandshakeRequest::default()
                .with_mechanism(StrBytes::from_string(mechanism.to_owned())),
            1,
        )?;
        ensure!(
            hs.error_code == 0,
            "SaslHandshake {mechanism}: error {}",
            hs.error_code
        );
        self.request(
            &SaslAuthenticateRequest::default().with_auth_bytes(auth_bytes.into()),
            2,
        )
    }

    /// ApiVersions at `version`.
    pub fn api_versions(&mut self, version: i16) -> Result<ApiVersionsResponse> {
        let request = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("tierlog-tests"))
            .with_client_software_version(StrBytes::from_static_str("0.1.0"));
        self.request(&request, version)
    }

    /// Produces one batch to one partition and returns that partition's response.
    pub fn produce(
        &mut self,
        topic: &str,
        partition: i32,
        batch: Bytes,
        acks: i16,
    ) -> Result<PartitionProduceResponse> {
        self.produce_v(topic, partition, batch, acks, PRODUCE_VERSION)
    }

    /// [`Self::produce`] at Produce `version`.
    pub fn produce_v(
        &mut self,
        topic: &str,
        partition: i32,
        batch: Bytes,
        acks: i16,
        version: i16,
    ) -> Result<PartitionProduceResponse> {
        let request = ProduceRequest::default()
            .with_acks(acks)
            .with_timeout_ms(30_000)
            .with_topic_data(vec![
                TopicProduceData::default()
                    .with_name(topic_name(topic))
                    .with_partition_data(vec![
                        PartitionProduceData::default()
                            .with_index(partition)
                            .with_records(Some(batch)),
                    ]),
            ]);
        let response = self.request(&request, version)?;
        let topic_response = response
            .responses
            .into_iter()
            .find(|t| t.name.0.as_str() == topic)
            .with_context(|| format!("produce response has no topic {topic}"))?;
        topic_response
            .partition_responses
            .into_iter()
            .find(|p| p.index == partition)
            .with_context(|| format!("produce response has no partition {topic}/{partition}"))
    }

    /// ListOffsets for one partition: returns `(error_code, offset, timestamp)`.
    pub fn list_offset(
        &mut self,
        topic: &str,
        partition: i32,
        timestamp: i64,
    ) -> Result<(i16, i64, i64)> {
        self.list_offset_v(topic, partition, timestamp, LIST_OFFSETS_VERSION)
    }

    /// The start of the local (hot) log: ListOffsets v8 with [`EARLIEST_LOCAL`]; fails on a
    /// partition error.
    pub fn earliest_local_offset(&mut self, topic: &str, partition: i32) -> Result<i64> {
        let (error, offset, _) = self.list_offset_v(
            topic,
            partition,
            EARLIEST_LOCAL,
            LIST_OFFSETS_TIERED_VERSION,
        )?;
        ensure!(
            error == 0,
            "ListOffsets(earliest-local) {topic}/{partition}: error code {error}"
        );
        Ok(offset)
    }

    /// The start of the whole log (remote tier included); fails on a partition error.
    pub fn earliest_offset(&mut self, topic: &str, partition: i32) -> Result<i64> {
        let (error, offset, _) = self.list_offset(topic, partition, EARLIEST)?;
        ensure!(
            error == 0,
            "ListOffsets(earliest) {topic}/{partition}: error code {error}"
        );
        Ok(offset)
    }

    /// ListOffsets for one partition at a given request `version`.
    pub fn list_offset_v(
        &mut self,
        topic: &str,
        partition: i32,
        timestamp: i64,
        version: i16,
    ) -> Result<(i16, i64, i64)> {
        let request = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![
                ListOffsetsTopic::default()
                    .with_name(topic_name(topic))
                    .with_partitions(vec![
                        ListOffsetsPartition::default()
                            .with_partition_index(partition)
                            .with_timestamp(timestamp),
                    ]),
            ]);
        let response = self.request(&request, version)?;
        let p = response
            .topics
            .into_iter()
            .find(|t| t.name.0.as_str() == topic)
            .and_then(|t| {
                t.partitions
                    .into_iter()
                    .find(|p| p.partition_index == partition)
            })
            .with_context(|| format!("list offsets response lacks {topic}/{partition}"))?;
        Ok((p.error_code, p.offset, p.timestamp))
    }

    /// The log end offset of a partition; fails on a partition error.
    pub fn log_end_offset(&mut self, topic: &str, partition: i32) -> Result<i64> {
        let (error, offset, _) = self.list_offset(topic, partition, LATEST)?;
        ensure!(
            error == 0,
            "ListOffsets(latest) {topic}/{partition}: error code {error}"
        );
        Ok(offset)
    }

    /// Metadata for one topic, with or without permission to auto-create it.
    pub fn metadata_topic(
        &mut self,
        topic: &str,
        allow_auto_topic_creation: bool,
    ) -> Result<MetadataResponseTopic> {
        let request = MetadataRequest::default()
            .with_topics(Some(vec![
                MetadataRequestTopic::default().with_name(Some(topic_name(topic))),
            ]))
            .with_allow_auto_topic_creation(allow_auto_topic_creation);
        let response = self.request(&request, METADATA_VERSION)?;
        response
            .topics
            .into_iter()
            .find(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == topic))
            .with_context(|| format!("metadata response lacks topic {topic}"))
    }

    /// One-partition Fetch (sessionless) and that partition's data.
    pub fn fetch(
        &mut self,
        topic: &str,
        partition: i32,
        offset: i64,
        max_wait_ms: i32,
        min_bytes: i32,
    ) -> Result<PartitionData> {
        self.fetch_limited(
            topic,
            partition,
            offset,
            max_wait_ms,
            min_bytes,
            16 * 1024 * 1024,
        )
    }

    /// One-partition Fetch with a `partition_max_bytes` limit (a broker still returns at least
    /// one whole batch, so `1` asks for exactly the batch holding `offset`).
    pub fn fetch_limited(
        &mut self,
        topic: &str,
        partition: i32,
        offset: i64,
        max_wait_ms: i32,
        min_bytes: i32,
        partition_max_bytes: i32,
    ) -> Result<PartitionData> {
        let request = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(max_wait_ms)
            .with_min_bytes(min_bytes)
            .with_max_bytes(64 * 1024 * 1024)
            .with_session_id(0)
            .with_session_epoch(-1)
            .with_topics(vec![
                FetchTopic::default()
                    .with_topic(topic_name(topic))
                    .with_partitions(vec![
                        FetchPartition::default()
                            .with_partition(partition)
                            .with_fetch_offset(offset)
                            .with_partition_max_bytes(partition_max_bytes),
                    ]),
            ]);
        let response = self.request(&request, FETCH_VERSION)?;
        ensure!(
            response.error_code == 0,
            "fetch top-level error code {}",
            response.error_code
        );
        response
            .responses
            .into_iter()
            .find(|t| t.topic.0.as_str() == topic)
            .and_then(|t| {
                t.partitions
                    .into_iter()
                    .find(|p| p.partition_index == partition)
            })
            .with_context(|| format!("fetch response lacks {topic}/{partition}"))
    }
}

impl Conn {
    /// IncrementalAlterConfigs (v0) SET of `configs` on `topic`; fails on an error code.
    pub fn set_topic_configs(&mut self, topic: &str, configs: &[(&str, &str)]) -> Result<()> {
        const TOPIC_RESOURCE: i8 = 2;
        const OP_SET: i8 = 0;
        let request = IncrementalAlterConfigsRequest::default().with_resources(vec![
            AlterConfigsResource::default()
                .with_resource_type(TOPIC_RESOURCE)
                .with_resource_name(StrBytes::from_string(topic.to_owned()))
                .with_configs(
                    configs
                        .iter()
                        .map(|(name, value)| {
                            AlterableConfig::default()
                                .with_name(StrBytes::from_string((*name).to_owned()))
                                .with_config_operation(OP_SET)
                                .with_value(Some(StrBytes::from_string((*value).to_owned())))
                        })
                        .collect(),
                ),
        ]);
        let response = self.request(&request, 0)?;
        for r in &response.responses {
            ensure!(
                r.error_code == 0,
                "IncrementalAlterConfigs {topic} {configs:?}: error code {} ({:?})",
                r.error_code,
                r.error_message
            );
        }
        Ok(())
    }
}

/// Runs one exchange of a [`Conn`], bounded by [`IO_TIMEOUT`].
fn io<T: Send>(
    what: &str,
    exchange: impl Future<Output = Result<T, tierlog_ingest::ConnectionError>> + Send,
) -> Result<T> {
    block_on(async { tokio::time::timeout(IO_TIMEOUT, exchange).await })?
        .map_err(|_| anyhow::anyhow!("{what}: timed out after {IO_TIMEOUT:?}"))?
        .with_context(|| what.to_owned())
}

/// Blocks on `future` on the runtime every [`Conn`] of this process shares (a one-worker
/// runtime that is never dropped, so a `Conn` may be made and dropped anywhere). A test may
/// call from inside its own tokio runtime, where blocking on another runtime is refused, so
/// then the future runs on a helper thread while this one waits.
fn block_on<F: Future + Send>(future: F) -> Result<F::Output>
where
    F::Output: Send,
{
    static RUNTIME: OnceLock<std::io::Result<tokio::runtime::Runtime>> = OnceLock::new();
    let rt = RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("wire-conn")
                .enable_all()
                .build()
        })
        .as_ref()
        .map_err(|e| anyhow::anyhow!("starting the raw connections' runtime: {e}"))?;
    if tokio::runtime::Handle::try_current().is_err() {
        return Ok(rt.block_on(future));
    }
    Ok(std::thread::scope(|s| {
        s.spawn(|| rt.block_on(future))
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    }))
}

/// A whole Metadata v4 request frame (header and body, no length prefix), for tests that
/// send it raw and expect the broker to answer or to hang up.
pub fn metadata_frame() -> Vec<u8> {
    use kafka_protocol::protocol::Encodable as _;
    let mut buf = raw_header_v1(3, 4, 7);
    MetadataRequest::default()
        .encode(&mut buf, 4)
        .expect("an empty Metadata request encodes");
    buf.to_vec()
}

/// A request header v1 (api key, version, correlation id, client id) for hand-made frames with
/// keys or versions the crate cannot encode.
pub fn raw_header_v1(api_key: i16, api_version: i16, correlation_id: i32) -> BytesMut {
    let mut buf = BytesMut::new();
    buf.put_i16(api_key);
    buf.put_i16(api_version);
    buf.put_i32(correlation_id);
    let client = CLIENT_ID.as_bytes();
    buf.put_i16(i16::try_from(client.len()).unwrap_or(0));
    buf.put_slice(client);
    buf
}

/// An ApiVersions response in the v0 layout (what a broker answers to a version it does not
/// support).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiVersionsV0 {
    /// Correlation id from the response header.
    pub correlation_id: i32,
    /// Top-level error code.
    pub error_code: i16,
    /// `(api_key, min_version, max_version)` per supported API.
    pub apis: Vec<(i16, i16, i16)>,
}

/// A record for [`encode_batch`]: key and value.
pub type KeyValue<'a> = (Option<&'a [u8]>, Option<&'a [u8]>);

/// Parses an ApiVersions v0 response body (after the length prefix): correlation id, error
/// code, `(api_key, min, max)` list.
pub fn parse_api_versions_v0(mut frame: Bytes) -> Result<ApiVersionsV0> {
    ensure!(frame.remaining() >= 10, "api versions v0 frame too short");
    let correlation_id = frame.get_i32();
    let error = frame.get_i16();
    let count = frame.get_i32();
    ensure!(count >= 0, "negative api count {count}");
    let mut apis = Vec::new();
    for _ in 0..count {
        ensure!(frame.remaining() >= 6, "api versions v0 list truncated");
        apis.push((frame.get_i16(), frame.get_i16(), frame.get_i16()));
    }
    Ok(ApiVersionsV0 {
        correlation_id,
        error_code: error,
        apis,
    })
}

/// A `TopicName` from a `&str`.
pub fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_owned()))
}

/// Encodes one record batch (magic 2, base offset 0) holding `(key, value)` records with
/// create-time timestamps `timestamp_ms + i`.
pub fn encode_batch(
    records: &[KeyValue<'_>],
    compression: Compression,
    timestamp_ms: i64,
) -> Result<Bytes> {
    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, (key, value))| {
            let i = i64::try_from(i).unwrap_or(i64::MAX);
            Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: i,
                // One batch: the encoder starts a new batch wherever `offset - sequence`
                // changes; the batch's base sequence is then -1 (no idempotent producer).
                sequence: i32::try_from(i).unwrap_or(i32::MAX).wrapping_sub(1),
                timestamp: timestamp_ms + i,
                key: key.map(Bytes::copy_from_slice),
                value: value.map(Bytes::copy_from_slice),
                headers: Default::default(),
            }
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression,
        },
    )
    .context("encoding a record batch")?;
    Ok(buf.freeze())
}

/// Byte range of the CRC field inside a v2 record batch header.
pub const BATCH_CRC_RANGE: std::ops::Range<usize> = 17..21;

/// The compression codecs of every batch in fetched `records`.
pub fn batch_compressions(records: &Bytes) -> Result<Vec<Compression>> {
    let mut buf = records.clone();
    let infos = RecordBatchDecoder::decode_batch_info(&mut buf).context("decoding batch info")?;
    Ok(infos.into_iter().map(|i| i.compression).collect())
}

/// Decodes every record in fetched `records` (all codecs).
pub fn decode_records(records: &Bytes) -> Result<Vec<Record>> {
    let mut buf = records.clone();
    let sets = RecordBatchDecoder::decode_all(&mut buf).context("decoding record batches")?;
    Ok(sets.into_iter().flat_map(|s| s.records).collect())
}
