//! The request-time quota (`request_percentage`) around every request: Kafka's
//! `ClientRequestQuotaManager`.
//!
//! [`request_quota`] records how long the request's in-order handling took against the
//! client's request quota. Over it, the response carries the throttle time and the connection
//! is muted for that long once the response is ready (Kafka mutes the channel as it sends the
//! response). Responses are encoded by their handlers, so the throttle time is written into an
//! already encoded frame by decoding it, setting `throttle_time_ms` (the larger of what the
//! handler set and the request throttle) and encoding it again — only on the rare throttled
//! path. Exempt, as in Kafka: fetches (a consumer fetch records its own handling time with its
//! bytes; a follower's is replication), cluster actions (WriteTxnMarkers), and an acks=0
//! Produce, which gets no response.

use std::sync::Arc;
use std::time::Instant;

use bytes::{Buf, Bytes};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::Decodable;

use super::{Pending, Reply};
use crate::broker::Broker;
use crate::protocol::{self, Request};
use crate::security::Session;
use crate::security::quota::QuotaKind;

/// Wraps `pending` with the request quota of `req`, handled since `started`.
pub(super) fn request_quota(
    b: &Broker,
    session: &Arc<Session>,
    req: &Request,
    started: Instant,
    pending: Pending,
) -> Pending {
    if matches!(req.api_key, ApiKey::Fetch | ApiKey::WriteTxnMarkers) {
        return pending;
    }
    let handling = b.clock.now().saturating_duration_since(started);
    let ms = b.quotas.on_request(session, &req.client_id(), handling);
    if ms == 0 {
        return pending;
    }
    let (api, version) = (req.api_key, req.version);
    let quotas = b.quotas.clone();
    let session = session.clone();
    Box::pin(async move {
        match pending.await {
            Reply::Frame(frame) => {
                quotas.throttle(&session, QuotaKind::Request, ms);
                Reply::Frame(with_throttle(
                    frame,
                    api,
                    version,
                    i32::try_from(ms).unwrap_or(i32::MAX),
                ))
            }
            other => other,
        }
    })
}

/// `frame` (a whole response frame) with its `throttle_time_ms` raised to at least `ms`; the
/// frame unchanged for an API without the field or if it cannot be re-encoded.
fn with_throttle(frame: Bytes, api: ApiKey, version: i16, ms: i32) -> Bytes {
    let header_version = api.response_header_version(version);
    let mut buf = frame.clone();
    if buf.remaining() < 4 {
        return frame;
    }
    buf.advance(4);
    let Ok(header) = ResponseHeader::decode(&mut buf, header_version) else {
        return frame;
    };
    let id = header.correlation_id;
    macro_rules! patch {
        ($($key:ident => $ty:ty),* $(,)?) => {
            match api {
                $(ApiKey::$key => match <$ty>::decode(&mut buf, version) {
                    Ok(mut r) => {
                        r.throttle_time_ms = r.throttle_time_ms.max(ms);
                        protocol::encode_response(api, version, id, &r).ok()
                    }
                    Err(_) => None,
                },)*
                _ => None,
            }
        };
    }
    let patched = patch! {
        Produce => ProduceResponse,
        Metadata => MetadataResponse,
        ListOffsets => ListOffsetsResponse,
        OffsetCommit => OffsetCommitResponse,
        OffsetFetch => OffsetFetchResponse,
        FindCoordinator => FindCoordinatorResponse,
        JoinGroup => JoinGroupResponse,
        Heartbeat => HeartbeatResponse,
        LeaveGroup => LeaveGroupResponse,
        SyncGroup => SyncGroupResponse,
        DescribeGroups => DescribeGroupsResponse,
        ListGroups => ListGroupsResponse,
        DeleteGroups => DeleteGroupsResponse,
        OffsetDelete => OffsetDeleteResponse,
        ApiVersions => ApiVersionsResponse,
        CreateTopics => CreateTopicsResponse,
        DeleteTopics => DeleteTopicsResponse,
        DeleteRecords => DeleteRecordsResponse,
        DescribeConfigs => DescribeConfigsResponse,
        CreatePartitions => CreatePartitionsResponse,
        AlterConfigs => AlterConfigsResponse,
        IncrementalAlterConfigs => IncrementalAlterConfigsResponse,
        DescribeCluster => DescribeClusterResponse,
        DescribeTopicPartitions => DescribeTopicPartitionsResponse,
        DescribeLogDirs => DescribeLogDirsResponse,
        OffsetForLeaderEpoch => OffsetForLeaderEpochResponse,
        ConsumerGroupHeartbeat => ConsumerGroupHeartbeatResponse,
        ConsumerGroupDescribe => ConsumerGroupDescribeResponse,
        InitProducerId => InitProducerIdResponse,
        AddPartitionsToTxn => AddPartitionsToTxnResponse,
        AddOffsetsToTxn => AddOffsetsToTxnResponse,
        EndTxn => EndTxnResponse,
        TxnOffsetCommit => TxnOffsetCommitResponse,
        DescribeProducers => DescribeProducersResponse,
        DescribeTransactions => DescribeTransactionsResponse,
        ListTransactions => ListTransactionsResponse,
        DescribeClientQuotas => DescribeClientQuotasResponse,
        AlterClientQuotas => AlterClientQuotasResponse,
    };
    patched.unwrap_or(frame)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use super::*;
    use crate::broker::testing::TestBroker;
    use tierlog_metadata::{ClientQuota, EntityName, QuotaEntity};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn metadata_over_the_request_quota_carries_the_throttle_and_mutes() {
        let tb = TestBroker::start().await;
        tb.broker.quotas.table.replace(vec![ClientQuota {
            entity: QuotaEntity::client(EntityName::Default),
            values: BTreeMap::from([("request_percentage".to_owned(), 0.0)]),
        }]);
        // With a zero quota, any handling time is over it. The manual clock does not move
        // while a request is handled, so charge the test client a second of handling first.
        let s = tb.session.clone();
        assert!(
            tb.broker
                .quotas
                .on_request(&s, "unit-test", Duration::from_secs(1))
                > 0
        );
        let resp: MetadataResponse = tb
            .request(ApiKey::Metadata, 12, &MetadataRequest::default())
            .await;
        assert_eq!(resp.throttle_time_ms, 1000);
        assert!(tb.session.muted_until().is_some());
        assert!(
            tb.broker
                .metrics
                .request_throttled
                .load(std::sync::atomic::Ordering::Relaxed)
                >= 1
        );
        tb.stop().await;
    }

    fn quota(entity: QuotaEntity, key: &str, v: f64) -> ClientQuota {
        ClientQuota {
            entity,
            values: BTreeMap::from([(key.to_owned(), v)]),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn produce_over_the_byte_rate_answers_at_once_with_the_throttle() {
        use crate::broker::testing::{batch, produce_req};
        let tb = TestBroker::start().await;
        tb.create("t", 1).await;
        tb.broker.quotas.table.replace(vec![quota(
            QuotaEntity::client(EntityName::Named("unit-test".into())),
            "producer_byte_rate",
            10.0,
        )]);
        // 10 B/s spread over 10 s allows 100 bytes: the first batch is already over.
        let r: ProduceResponse = tb
            .request(ApiKey::Produce, 9, &produce_req("t", 0, batch(10), 1))
            .await;
        let p = &r.responses[0].partition_responses[0];
        assert_eq!(p.error_code, 0, "the produce is applied, only throttled");
        assert!(r.throttle_time_ms > 0);
        assert!(tb.session.muted_until().is_some());
        let m = &tb.broker.metrics;
        assert_eq!(
            m.produce_throttled
                .load(std::sync::atomic::Ordering::Relaxed),
            1
        );
        tb.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_consumer_fetch_over_the_byte_rate_is_answered_empty() {
        use crate::broker::testing::batch;
        let tb = TestBroker::start().await;
        tb.create("t", 1).await;
        assert_eq!(tb.produce("t", 0, batch(50), -1).await.0, 0);
        tb.broker.quotas.table.replace(vec![quota(
            QuotaEntity::user(EntityName::Default),
            "consumer_byte_rate",
            10.0,
        )]);
        let req = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(10)
            .with_max_bytes(1 << 20)
            .with_topics(vec![
                fetch_request::FetchTopic::default()
                    .with_topic(crate::broker::testing::name("t"))
                    .with_partitions(vec![
                        fetch_request::FetchPartition::default()
                            .with_partition(0)
                            .with_fetch_offset(0)
                            .with_partition_max_bytes(1 << 20),
                    ]),
            ]);
        let r: FetchResponse = tb.request(ApiKey::Fetch, 11, &req).await;
        assert!(r.throttle_time_ms > 0);
        assert!(r.responses.is_empty(), "a throttled fetch returns nothing");
        assert!(tb.session.muted_until().is_some());
        let m = &tb.broker.metrics;
        assert_eq!(
            m.fetch_throttled.load(std::sync::atomic::Ordering::Relaxed),
            1
        );
        tb.stop().await;
    }

    #[test]
    fn throttle_is_written_into_an_encoded_response() {
        let frame = protocol::encode_response(
            ApiKey::Heartbeat,
            4,
            7,
            &HeartbeatResponse::default().with_throttle_time_ms(5),
        )
        .expect("encode");
        let out = with_throttle(frame, ApiKey::Heartbeat, 4, 300);
        let mut buf = out.slice(4..);
        let h = ResponseHeader::decode(&mut buf, ApiKey::Heartbeat.response_header_version(4))
            .expect("header");
        assert_eq!(h.correlation_id, 7);
        let r = HeartbeatResponse::decode(&mut buf, 4).expect("body");
        assert_eq!(r.throttle_time_ms, 300);
    }
}
