//! An in-process broker for unit tests: the real [`Broker`] and request path on an in-memory
//! metadata store, an in-memory object store and a [`ManualClock`], with no listener. Tests
//! send Kafka requests through `api::dispatch` exactly as a connection would and decode the
//! responses.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::{
    ApiKey, CreateTopicsRequest, CreateTopicsResponse, ProduceRequest, ProduceResponse,
    ResponseHeader, TopicName, produce_request,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use tierlog_metadata::ManualClock;

use super::Broker;
use crate::api::{Dispatch, Reply};
use crate::config::NodeConfig;

/// A broker running in this process.
pub(crate) struct TestBroker {
    pub(crate) broker: Arc<Broker>,
    pub(crate) clock: Arc<ManualClock>,
    cancel: CancellationToken,
    tracker: TaskTracker,
    correlation: std::sync::atomic::AtomicI32,
    /// The connection every request of this broker arrives on (`User:ANONYMOUS` unless a test
    /// sets another principal with [`TestBroker::as_principal`]).
    pub(crate) session: Arc<crate::security::Session>,
    _dir: tempfile::TempDir,
}

impl TestBroker {
    /// Node 1 on `memory://` metadata and object store, a manual clock, no rebalance delay,
    /// a 60 s lease (renewed every 20 s of real time, so a test moves the manual clock
    /// without a renewal in between).
    pub(crate) async fn start() -> TestBroker {
        Self::start_with(|_| {}).await
    }

    /// As [`TestBroker::start`], with `tweak` applied to the config first.
    pub(crate) async fn start_with(tweak: impl FnOnce(&mut NodeConfig)) -> TestBroker {
        let dir = tempfile::tempdir().unwrap();
        let mut config = NodeConfig {
            node_id: 1,
            data_dir: dir.path().to_path_buf(),
            metadata: "memory://".into(),
            object_store: Some("memory://".into()),
            listen: "127.0.0.1:0".into(),
            http: "127.0.0.1:0".into(),
            lease_ttl: Duration::from_secs(60),
            group_initial_rebalance_delay: Duration::ZERO,
            // The tests register fake nodes that never fetch: no replica or leader moves to
            // them unless a test asks.
            partition_balancing: false,
            ..NodeConfig::default()
        };
        tweak(&mut config);
        config.validate().unwrap();
        let clock = ManualClock::new();
        let cancel = CancellationToken::new();
        let tracker = TaskTracker::new();
        let broker = Broker::open(
            config,
            ("127.0.0.1".into(), 9092),
            Vec::new(),
            clock.clone(),
            &cancel,
            &tracker,
        )
        .await
        .unwrap();
        broker.spawn_cluster_tasks(&cancel, &tracker).await;
        TestBroker {
            broker,
            clock,
            cancel,
            tracker,
            correlation: std::sync::atomic::AtomicI32::new(1),
            session: Arc::new(crate::security::Session::for_tests(
                crate::security::Principal::anonymous(),
            )),
            _dir: dir,
        }
    }

    /// Sends the following requests as `principal`.
    #[allow(dead_code)]
    pub(crate) fn as_principal(&mut self, principal: crate::security::Principal) {
        self.session = Arc::new(crate::security::Session::for_tests(principal));
    }

    /// Sends one request through the dispatcher and returns the response, or None when the
    /// request gets no response (acks=0) — panics if the connection would be closed.
    pub(crate) async fn try_request<Req: Encodable, Resp: Decodable>(
        &self,
        api: ApiKey,
        version: i16,
        req: &Req,
    ) -> Option<Resp> {
        let correlation = self
            .correlation
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // The frame as a connection reads it: without its length prefix.
        let frame = crate::protocol::encode_request(api, version, correlation, "unit-test", req)
            .unwrap()
            .slice(4..);
        let reply = match self.dispatch(frame).await {
            Dispatch::Deferred(pending) => pending.await,
            Dispatch::Close => panic!("{api:?} v{version}: the connection would be closed"),
        };
        let mut buf = match reply {
            Reply::Frame(f) => f,
            Reply::Nothing => return None,
            Reply::Close => panic!("{api:?} v{version}: closed instead of answered"),
        };
        let len = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
        assert_eq!(usize::try_from(len).unwrap() + 4, buf.len());
        let _ = bytes::Buf::get_i32(&mut buf);
        let rh = ResponseHeader::decode(&mut buf, api.response_header_version(version)).unwrap();
        assert_eq!(rh.correlation_id, correlation);
        let resp = Resp::decode(&mut buf, version).unwrap();
        assert!(buf.is_empty(), "{api:?} v{version}: trailing bytes");
        Some(resp)
    }

    /// [`TestBroker::try_request`] for requests that always get a response.
    pub(crate) async fn request<Req: Encodable, Resp: Decodable>(
        &self,
        api: ApiKey,
        version: i16,
        req: &Req,
    ) -> Resp {
        self.try_request(api, version, req)
            .await
            .unwrap_or_else(|| panic!("{api:?} v{version}: no response"))
    }

    /// CreateTopics (v7) of one topic as `spec` describes it.
    pub(crate) async fn create_topic(&self, spec: CreatableTopic) -> CreateTopicsResponse {
        self.request(
            ApiKey::CreateTopics,
            7,
            &CreateTopicsRequest::default().with_topics(vec![spec]),
        )
        .await
    }

    /// Creates `topic` with `partitions` partitions and the default replication factor.
    pub(crate) async fn create(&self, topic: &str, partitions: i32) -> CreateTopicsResponse {
        self.create_topic(
            CreatableTopic::default()
                .with_name(name(topic))
                .with_num_partitions(partitions)
                .with_replication_factor(-1),
        )
        .await
    }

    /// Produces `records` (Produce v9) and returns the partition's error code and base offset.
    pub(crate) async fn produce(
        &self,
        topic: &str,
        partition: i32,
        records: Bytes,
        acks: i16,
    ) -> (i16, i64) {
        let r: ProduceResponse = self
            .request(
                ApiKey::Produce,
                9,
                &produce_req(topic, partition, records, acks),
            )
            .await;
        let p = &r.responses[0].partition_responses[0];
        (p.error_code, p.base_offset)
    }

    /// Runs one raw frame (header and body, no length prefix) through the dispatcher.
    pub(crate) async fn dispatch(&self, frame: Bytes) -> Dispatch {
        crate::api::dispatch(&self.broker, frame, &self.session).await
    }

    /// Stops the broker's tasks and closes its logs.
    pub(crate) async fn stop(self) {
        self.cancel.cancel();
        self.tracker.close();
        let _ = tokio::time::timeout(Duration::from_secs(10), self.tracker.wait()).await;
        self.broker.host.partitions.close_all().await;
    }
}

/// A topic name.
pub(crate) fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_owned()))
}

/// A Produce request of one batch to one partition.
pub(crate) fn produce_req(
    topic: &str,
    partition: i32,
    records: Bytes,
    acks: i16,
) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(5000)
        .with_topic_data(vec![
            produce_request::TopicProduceData::default()
                .with_name(name(topic))
                .with_partition_data(vec![
                    produce_request::PartitionProduceData::default()
                        .with_index(partition)
                        .with_records(Some(records)),
                ]),
        ])
}

/// One uncompressed record batch of `n` records `k{i}`/`v{i}`.
pub(crate) fn batch(n: usize) -> Bytes {
    producer_batch(n, Producer::NONE)
}

/// Who writes a batch: an idempotent or transactional producer, or none.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Producer {
    pub(crate) id: i64,
    pub(crate) epoch: i16,
    /// Sequence of the batch's first record.
    pub(crate) sequence: i32,
    pub(crate) transactional: bool,
}

impl Producer {
    /// A batch of no producer (id, epoch and sequence -1).
    pub(crate) const NONE: Producer = Producer {
        id: -1,
        epoch: -1,
        sequence: -1,
        transactional: false,
    };
}

/// One uncompressed record batch of `n` records `k{i}`/`v{i}` from `producer`.
pub(crate) fn producer_batch(n: usize, producer: Producer) -> Bytes {
    let records: Vec<Record> = (0..n)
        .map(|i| Record {
            transactional: producer.transactional,
            control: false,
            partition_leader_epoch: 0,
            producer_id: producer.id,
            producer_epoch: producer.epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // The encoder keeps records in one batch while `offset - sequence` is constant;
            // the batch's base sequence is the first record's (-1 for no producer).
            sequence: producer.sequence + i as i32,
            timestamp: 1_700_000_000_000 + i as i64,
            key: Some(Bytes::from(format!("k{i}"))),
            value: Some(Bytes::from(format!("v{i}"))),
            headers: Default::default(),
            delete_horizon: false,
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
    .unwrap();
    buf.freeze()
}

/// A request frame with a header claiming `api` at `version` and `body` as its body bytes.
pub(crate) fn raw_frame(api: i16, version: i16, body: &[u8]) -> Bytes {
    let mut f = BytesMut::new();
    f.put_i16(api);
    f.put_i16(version);
    f.put_i32(7);
    f.put_i16(-1); // null client id
    f.extend_from_slice(body);
    f.freeze()
}

/// Waits (up to 10 s of real time) until `cond` holds, checking every 10 ms: for outcomes of
/// the broker's background tasks, which no request can await.
pub(crate) async fn wait_until<F, Fut>(mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !cond().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not met within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
