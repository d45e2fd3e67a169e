//! The request handlers through the in-process broker (`broker::testing`): real dispatch,
//! real partitions and coordinator, in-memory metadata and object store, no sockets.

#![allow(clippy::unwrap_used)]

use bytes::Bytes;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use crate::api::Dispatch;
use crate::broker::testing::{TestBroker, batch, name, produce_req, raw_frame};

fn fetch_req(topic: &str, partition: i32, offset: i64, replica: i32) -> FetchRequest {
    FetchRequest::default()
        .with_replica_id(BrokerId(replica))
        .with_max_wait_ms(10)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_topics(vec![
            fetch_request::FetchTopic::default()
                .with_topic(name(topic))
                .with_partitions(vec![
                    fetch_request::FetchPartition::default()
                        .with_partition(partition)
                        .with_fetch_offset(offset)
                        .with_partition_max_bytes(1 << 20),
                ]),
        ])
}

async fn fetch(b: &TestBroker, topic: &str, offset: i64) -> fetch_response::PartitionData {
    let r: FetchResponse = b
        .request(ApiKey::Fetch, 11, &fetch_req(topic, 0, offset, -1))
        .await;
    r.responses[0].partitions[0].clone()
}

#[tokio::test]
async fn api_versions_lists_every_served_api() {
    let b = TestBroker::start().await;
    let r: ApiVersionsResponse = b
        .request(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default())
        .await;
    assert_eq!(r.error_code, 0);
    let keys: Vec<i16> = r.api_keys.iter().map(|k| k.api_key).collect();
    for api in [
        ApiKey::Produce,
        ApiKey::Fetch,
        ApiKey::Metadata,
        ApiKey::JoinGroup,
    ] {
        assert!(keys.contains(&(api as i16)), "{api:?} not advertised");
    }
    b.stop().await;
}

#[tokio::test]
async fn create_topics_then_metadata_shows_this_node_leading_every_partition() {
    let b = TestBroker::start().await;
    let r = b.create("orders", 3).await;
    assert_eq!(r.topics[0].error_code, 0, "{:?}", r.topics[0].error_message);
    let again = b.create("orders", 3).await;
    assert_eq!(
        again.topics[0].error_code,
        ResponseError::TopicAlreadyExists.code()
    );
    let md: MetadataResponse = b
        .request(
            ApiKey::Metadata,
            12,
            &MetadataRequest::default().with_topics(Some(vec![
                metadata_request::MetadataRequestTopic::default().with_name(Some(name("orders"))),
            ])),
        )
        .await;
    assert_eq!(md.brokers.len(), 1);
    assert_eq!(md.brokers[0].node_id, BrokerId(1));
    assert_eq!(md.brokers[0].port, 9092);
    let t = &md.topics[0];
    assert_eq!(t.error_code, 0);
    assert_eq!(t.topic_id, r.topics[0].topic_id);
    assert_eq!(t.partitions.len(), 3);
    assert!(t.partitions.iter().all(|p| p.leader_id == BrokerId(1)));
    b.stop().await;
}

#[tokio::test]
async fn produce_then_fetch_returns_the_same_bytes_and_list_offsets_the_end() {
    let b = TestBroker::start().await;
    b.create("t", 1).await;
    let first = batch(3);
    assert_eq!(b.produce("t", 0, first.clone(), -1).await, (0, 0));
    assert_eq!(b.produce("t", 0, batch(2), -1).await, (0, 3));

    let pd = fetch(&b, "t", 0).await;
    assert_eq!(pd.error_code, 0);
    assert_eq!(pd.high_watermark, 5);
    let records = pd.records.unwrap();
    // The first batch comes back byte for byte but for the base offset the log assigned (0,
    // as sent) — the hot path does not re-encode.
    assert_eq!(&records[..first.len()], &first[..]);

    let lo: ListOffsetsResponse = b
        .request(
            ApiKey::ListOffsets,
            7,
            &ListOffsetsRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_topics(vec![
                    list_offsets_request::ListOffsetsTopic::default()
                        .with_name(name("t"))
                        .with_partitions(vec![
                            list_offsets_request::ListOffsetsPartition::default()
                                .with_partition_index(0)
                                .with_timestamp(-1),
                        ]),
                ]),
        )
        .await;
    assert_eq!(lo.topics[0].partitions[0].offset, 5);
    b.stop().await;
}

#[tokio::test]
async fn produce_refusals_carry_kafka_error_codes() {
    let b = TestBroker::start().await;
    b.create("t", 1).await;
    assert_eq!(
        b.produce("nope", 0, batch(1), -1).await.0,
        ResponseError::UnknownTopicOrPartition.code()
    );
    assert_eq!(
        b.produce("t", 7, batch(1), -1).await.0,
        ResponseError::UnknownTopicOrPartition.code()
    );
    let r: ProduceResponse = b
        .request(ApiKey::Produce, 9, &produce_req("t", 0, batch(1), 5))
        .await;
    assert_eq!(
        r.responses[0].partition_responses[0].error_code,
        ResponseError::InvalidRequiredAcks.code()
    );
    // Two batches in one partition's records: INVALID_RECORD, nothing appended.
    let two = [batch(1), batch(1)].concat();
    assert_eq!(
        b.produce("t", 0, Bytes::from(two), -1).await.0,
        ResponseError::InvalidRecord.code()
    );
    // A corrupt batch (flipped byte in the records, CRC now wrong): CORRUPT_MESSAGE.
    let mut bad = batch(2).to_vec();
    let last = bad.len() - 1;
    bad[last] ^= 0xff;
    assert_eq!(
        b.produce("t", 0, Bytes::from(bad), -1).await.0,
        ResponseError::CorruptMessage.code()
    );
    assert_eq!(fetch(&b, "t", 0).await.high_watermark, 0);
    b.stop().await;
}

#[tokio::test]
async fn acks_zero_gets_no_response_but_is_appended() {
    let b = TestBroker::start().await;
    b.create("t", 1).await;
    let none: Option<ProduceResponse> = b
        .try_request(ApiKey::Produce, 9, &produce_req("t", 0, batch(4), 0))
        .await;
    assert!(none.is_none());
    assert_eq!(fetch(&b, "t", 0).await.high_watermark, 4);
    b.stop().await;
}

#[tokio::test]
async fn fetch_past_the_end_is_offset_out_of_range_and_at_the_end_is_empty() {
    let b = TestBroker::start().await;
    b.create("t", 1).await;
    b.produce("t", 0, batch(2), -1).await;
    let past = fetch(&b, "t", 9).await;
    assert_eq!(past.error_code, ResponseError::OffsetOutOfRange.code());
    let at_end = fetch(&b, "t", 2).await;
    assert_eq!(at_end.error_code, 0);
    assert!(at_end.records.unwrap().is_empty());
    b.stop().await;
}

/// The whole batches' base offsets in `records` (a trailing partial batch is not counted).
fn batch_bases(records: &[u8]) -> Vec<i64> {
    let mut bases = Vec::new();
    let mut rest = records;
    while rest.len() >= 12 {
        let base = i64::from_be_bytes(rest[..8].try_into().unwrap());
        let len =
            12 + usize::try_from(i32::from_be_bytes(rest[8..12].try_into().unwrap())).unwrap();
        if rest.len() < len {
            break;
        }
        bases.push(base);
        rest = &rest[len..];
    }
    bases
}

#[tokio::test]
async fn fetch_caps_the_response_at_max_bytes_and_only_the_first_partition_may_exceed_it() {
    let b = TestBroker::start().await;
    b.create("t", 2).await;
    let one = batch(3);
    let size = i32::try_from(one.len()).unwrap();
    for p in 0..2 {
        for _ in 0..3 {
            b.produce("t", p, batch(3), -1).await;
        }
    }
    // (request max_bytes, partition_max_bytes) -> whole batches from partitions 0 and 1.
    let cases = [
        // The request's limit caps the first partition too (it allowed all three before).
        (size * 3 / 2, 1 << 20, vec![0], vec![]),
        // Smaller than one batch: the first partition still gets one, the second none.
        (1, 1 << 20, vec![0], vec![]),
        // A partition limit smaller than one batch: only the first partition exceeds it.
        (1 << 20, 1, vec![0], vec![]),
        // Room for everything.
        (1 << 20, 1 << 20, vec![0, 3, 6], vec![0, 3, 6]),
        // Room for two batches of the first and one of the second.
        (size * 3, size * 2, vec![0, 3], vec![0]),
    ];
    for (max_bytes, partition_max, want0, want1) in cases {
        let mut req = fetch_req("t", 0, 0, -1).with_max_bytes(max_bytes);
        let second = req.topics[0].partitions[0].clone().with_partition(1);
        req.topics[0].partitions.push(second);
        for p in &mut req.topics[0].partitions {
            p.partition_max_bytes = partition_max;
        }
        let r: FetchResponse = b.request(ApiKey::Fetch, 11, &req).await;
        let got: Vec<Vec<i64>> = r.responses[0]
            .partitions
            .iter()
            .map(|p| batch_bases(p.records.as_deref().unwrap_or_default()))
            .collect();
        assert_eq!(
            got,
            vec![want0, want1],
            "max_bytes {max_bytes}, partition_max_bytes {partition_max}"
        );
    }
    b.stop().await;
}

#[tokio::test]
async fn delete_topics_removes_the_topic() {
    let b = TestBroker::start().await;
    b.create("gone", 2).await;
    let r: DeleteTopicsResponse = b
        .request(
            ApiKey::DeleteTopics,
            4,
            &DeleteTopicsRequest::default().with_topic_names(vec![name("gone")]),
        )
        .await;
    assert_eq!(r.responses[0].error_code, 0);
    assert_eq!(
        b.produce("gone", 0, batch(1), -1).await.0,
        ResponseError::UnknownTopicOrPartition.code()
    );
    let md: MetadataResponse = b
        .request(
            ApiKey::Metadata,
            12,
            &MetadataRequest::default()
                .with_allow_auto_topic_creation(false)
                .with_topics(Some(vec![
                    metadata_request::MetadataRequestTopic::default().with_name(Some(name("gone"))),
                ])),
        )
        .await;
    assert_eq!(
        md.topics[0].error_code,
        ResponseError::UnknownTopicOrPartition.code()
    );
    b.stop().await;
}

#[tokio::test]
async fn describe_configs_reports_topic_overrides_and_defaults() {
    let b = TestBroker::start().await;
    let r = b
        .create_topic(
            CreatableTopic::default()
                .with_name(name("c"))
                .with_num_partitions(1)
                .with_replication_factor(-1)
                .with_configs(vec![
                    create_topics_request::CreatableTopicConfig::default()
                        .with_name(StrBytes::from_static_str("retention.ms"))
                        .with_value(Some(StrBytes::from_static_str("60000"))),
                ]),
        )
        .await;
    assert_eq!(r.topics[0].error_code, 0);
    let d: DescribeConfigsResponse = b
        .request(
            ApiKey::DescribeConfigs,
            4,
            &DescribeConfigsRequest::default().with_resources(vec![
                describe_configs_request::DescribeConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(StrBytes::from_static_str("c"))
                    .with_configuration_keys(None),
            ]),
        )
        .await;
    let res = &d.results[0];
    assert_eq!(res.error_code, 0);
    let get = |k: &str| {
        res.configs
            .iter()
            .find(|c| c.name.as_str() == k)
            .unwrap_or_else(|| panic!("{k} missing"))
    };
    let retention = get("retention.ms");
    assert_eq!(retention.value.as_ref().unwrap().as_str(), "60000");
    assert_eq!(retention.config_source, 1, "DYNAMIC_TOPIC_CONFIG");
    assert_ne!(get("cleanup.policy").config_source, 1);
    b.stop().await;
}

#[tokio::test]
async fn find_coordinator_names_this_node() {
    let b = TestBroker::start().await;
    let r: FindCoordinatorResponse = b
        .request(
            ApiKey::FindCoordinator,
            4,
            &FindCoordinatorRequest::default()
                .with_key_type(0)
                .with_coordinator_keys(vec![StrBytes::from_static_str("g")]),
        )
        .await;
    let c = &r.coordinators[0];
    assert_eq!(c.error_code, 0);
    assert_eq!((c.node_id, c.port), (BrokerId(1), 9092));
    b.stop().await;
}

#[tokio::test]
async fn a_classic_group_joins_syncs_commits_and_fetches_offsets() {
    let b = TestBroker::start().await;
    b.create("t", 1).await;
    let join = |member: &str| {
        JoinGroupRequest::default()
            .with_group_id(GroupId(StrBytes::from_static_str("g")))
            .with_session_timeout_ms(10_000)
            .with_rebalance_timeout_ms(10_000)
            .with_member_id(StrBytes::from_string(member.to_owned()))
            .with_protocol_type(StrBytes::from_static_str("consumer"))
            .with_protocols(vec![
                join_group_request::JoinGroupRequestProtocol::default()
                    .with_name(StrBytes::from_static_str("range"))
                    .with_metadata(Bytes::from_static(b"m")),
            ])
    };
    // v4+: the first join is refused with MEMBER_ID_REQUIRED and a member id to use.
    let first: JoinGroupResponse = b.request(ApiKey::JoinGroup, 5, &join("")).await;
    assert_eq!(first.error_code, ResponseError::MemberIdRequired.code());
    let member = first.member_id.to_string();
    let joined: JoinGroupResponse = b.request(ApiKey::JoinGroup, 5, &join(&member)).await;
    assert_eq!(joined.error_code, 0);
    assert_eq!(joined.leader.as_str(), member);
    assert_eq!(joined.members.len(), 1);
    let synced: SyncGroupResponse = b
        .request(
            ApiKey::SyncGroup,
            3,
            &SyncGroupRequest::default()
                .with_group_id(GroupId(StrBytes::from_static_str("g")))
                .with_generation_id(joined.generation_id)
                .with_member_id(joined.member_id.clone())
                .with_assignments(vec![
                    sync_group_request::SyncGroupRequestAssignment::default()
                        .with_member_id(joined.member_id.clone())
                        .with_assignment(Bytes::from_static(b"assigned")),
                ]),
        )
        .await;
    assert_eq!(synced.error_code, 0);
    assert_eq!(&synced.assignment[..], b"assigned");

    let commit: OffsetCommitResponse = b
        .request(
            ApiKey::OffsetCommit,
            7,
            &OffsetCommitRequest::default()
                .with_group_id(GroupId(StrBytes::from_static_str("g")))
                .with_generation_id_or_member_epoch(joined.generation_id)
                .with_member_id(joined.member_id.clone())
                .with_topics(vec![
                    offset_commit_request::OffsetCommitRequestTopic::default()
                        .with_name(name("t"))
                        .with_partitions(vec![
                            offset_commit_request::OffsetCommitRequestPartition::default()
                                .with_partition_index(0)
                                .with_committed_offset(42),
                        ]),
                ]),
        )
        .await;
    assert_eq!(commit.topics[0].partitions[0].error_code, 0);
    let fetched: OffsetFetchResponse = b
        .request(
            ApiKey::OffsetFetch,
            5,
            &OffsetFetchRequest::default()
                .with_group_id(GroupId(StrBytes::from_static_str("g")))
                .with_topics(Some(vec![
                    offset_fetch_request::OffsetFetchRequestTopic::default()
                        .with_name(name("t"))
                        .with_partition_indexes(vec![0]),
                ])),
        )
        .await;
    assert_eq!(fetched.error_code, 0);
    assert_eq!(fetched.topics[0].partitions[0].committed_offset, 42);
    b.stop().await;
}

#[tokio::test]
async fn malformed_and_unknown_frames_close_the_connection_and_are_counted() {
    let b = TestBroker::start().await;
    // Unknown api key.
    assert!(matches!(
        b.dispatch(raw_frame(999, 0, &[])).await,
        Dispatch::Close
    ));
    // Metadata v1 claiming i32::MAX topics in a 4-byte body.
    assert!(matches!(
        b.dispatch(raw_frame(3, 1, &i32::MAX.to_be_bytes())).await,
        Dispatch::Close
    ));
    // Too short for a header.
    assert!(matches!(
        b.dispatch(Bytes::from_static(&[0, 3])).await,
        Dispatch::Close
    ));
    let m = &b.broker.metrics;
    assert_eq!(m.bad_requests.load(std::sync::atomic::Ordering::Relaxed), 3);
    // The broker still answers.
    let r: ApiVersionsResponse = b
        .request(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default())
        .await;
    assert_eq!(r.error_code, 0);
    b.stop().await;
}

#[test]
fn client_host_is_the_address_without_the_port() {
    assert_eq!(super::client_host("127.0.0.1:40312"), "/127.0.0.1");
    assert_eq!(super::client_host("[::1]:9092"), "/::1");
    assert_eq!(super::client_host("somewhere"), "/somewhere");
}
