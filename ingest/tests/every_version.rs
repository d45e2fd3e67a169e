//! Every API at every version the node advertises: a representative request is sent over a
//! real socket to an in-process node, and the response must decode at that version with no
//! error where none is expected. This catches fields set on versions that do not carry them
//! (the encoder refuses those, which would close the client's connection).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use std::error::Error as _;
use std::time::Duration;

use tierlog_ingest::{Connection, Node, NodeConfig};

/// A [`Connection`] that panics on any failure and on trailing response bytes.
struct Client {
    conn: Connection,
}

impl Client {
    async fn connect(addr: std::net::SocketAddr) -> Client {
        let conn = Connection::connect(&addr.to_string(), Duration::from_secs(10))
            .await
            .unwrap()
            .with_client_id("every-version");
        Client { conn }
    }

    async fn send<Req: Encodable, Resp: Decodable>(
        &mut self,
        api: ApiKey,
        version: i16,
        req: &Req,
    ) -> Resp {
        let mut buf = self
            .conn
            .round_trip(api, version, req)
            .await
            .unwrap_or_else(|e| panic!("{api:?} v{version}: {e}: {:?}", e.source()));
        let resp =
            Resp::decode(&mut buf, version).unwrap_or_else(|e| panic!("{api:?} v{version}: {e}"));
        assert!(!buf.has_remaining(), "{api:?} v{version}: trailing bytes");
        resp
    }
}

fn batch(n: usize) -> Bytes {
    let records: Vec<Record> = (0..n)
        .map(|i| Record {
            transactional: false,
            control: false,
            partition_leader_epoch: 0,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // One batch: the encoder starts a new batch wherever `offset - sequence` changes;
            // the batch's base sequence is then -1 (no idempotent producer).
            sequence: i as i32 - 1,
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

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_owned()))
}

/// A node on ephemeral loopback ports with an in-memory metadata store.
async fn start_node() -> (tempfile::TempDir, Node) {
    let dir = tempfile::tempdir().unwrap();
    let config = NodeConfig {
        data_dir: dir.path().to_path_buf(),
        listen: "127.0.0.1:0".into(),
        http: "127.0.0.1:0".into(),
        metadata: "memory://".into(),
        group_initial_rebalance_delay: std::time::Duration::ZERO,
        ..NodeConfig::default()
    };
    let node = Node::start(config).await.unwrap();
    (dir, node)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_advertised_version_answers_decodably() {
    let (_dir, node) = start_node().await;
    let mut c = Client::connect(node.kafka_addr).await;

    let versions: ApiVersionsResponse = c
        .send(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default())
        .await;
    assert_eq!(versions.error_code, 0);
    let created: CreateTopicsResponse = c
        .send(
            ApiKey::CreateTopics,
            7,
            &CreateTopicsRequest::default().with_topics(vec![
                creatable_topic::CreatableTopic::default()
                    .with_name(name("t"))
                    .with_num_partitions(2)
                    .with_replication_factor(1),
            ]),
        )
        .await;
    assert_eq!(created.topics[0].error_code, 0);
    let topic_id = created.topics[0].topic_id;

    let mut checked = 0;
    for api in &versions.api_keys {
        let key = ApiKey::try_from(api.api_key).unwrap();
        for v in api.min_version..=api.max_version {
            check(&mut c, key, v, topic_id).await;
            checked += 1;
        }
    }
    assert!(checked > 60, "only {checked} api versions checked");
    node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_claiming_billions_of_topics_closes_only_its_connection() {
    let (_dir, node) = start_node().await;
    let mut bad = Client::connect(node.kafka_addr).await.conn;
    let mut frame = BytesMut::new();
    frame.put_u32(14);
    frame.put_i16(3); // Metadata
    frame.put_i16(1);
    frame.put_i32(1);
    frame.put_i16(-1);
    frame.put_i32(i32::MAX); // topics array count
    bad.write_raw(&frame).await.unwrap();
    assert!(
        bad.read_frame().await.unwrap().is_none(),
        "connection should be closed"
    );
    let mut c = Client::connect(node.kafka_addr).await;
    let r: ApiVersionsResponse = c
        .send(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default())
        .await;
    assert_eq!(r.error_code, 0);
    node.shutdown().await.unwrap();
}

mod creatable_topic {
    pub(crate) use kafka_protocol::messages::create_topics_request::CreatableTopic;
}

async fn check(c: &mut Client, key: ApiKey, v: i16, topic_id: uuid::Uuid) {
    match key {
        ApiKey::ApiVersions => {
            let r: ApiVersionsResponse = c.send(key, v, &ApiVersionsRequest::default()).await;
            assert_eq!(r.error_code, 0);
        }
        ApiKey::Metadata => {
            let mut t =
                metadata_request::MetadataRequestTopic::default().with_name(Some(name("t")));
            if v >= 10 {
                t.topic_id = topic_id;
            }
            let mut req = MetadataRequest::default().with_topics(Some(vec![t]));
            if (8..=10).contains(&v) {
                req.include_cluster_authorized_operations = true;
            }
            if v >= 8 {
                req.include_topic_authorized_operations = true;
            }
            let r: MetadataResponse = c.send(key, v, &req).await;
            assert_eq!(r.topics[0].error_code, 0, "metadata v{v}");
            assert_eq!(r.topics[0].partitions.len(), 2);
            assert_eq!(r.brokers.len(), 1);
        }
        ApiKey::Produce => {
            let mut td = produce_request::TopicProduceData::default()
                .with_name(name("t"))
                .with_partition_data(vec![
                    produce_request::PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(batch(3))),
                ]);
            if v >= 13 {
                td.topic_id = topic_id;
            }
            let req = ProduceRequest::default()
                .with_acks(-1)
                .with_timeout_ms(5000)
                .with_topic_data(vec![td]);
            let r: ProduceResponse = c.send(key, v, &req).await;
            let p = &r.responses[0].partition_responses[0];
            assert_eq!(p.error_code, 0, "produce v{v}");
            assert!(p.base_offset >= 0);
        }
        ApiKey::Fetch => {
            let mut ft = fetch_request::FetchTopic::default().with_partitions(vec![
                fetch_request::FetchPartition::default()
                    .with_partition(0)
                    .with_fetch_offset(0)
                    .with_partition_max_bytes(1 << 20),
            ]);
            if v >= 13 {
                ft.topic_id = topic_id;
            } else {
                ft.topic = name("t");
            }
            let mut req = FetchRequest::default()
                .with_max_wait_ms(0)
                .with_min_bytes(1)
                .with_max_bytes(1 << 20)
                .with_topics(vec![ft]);
            if v >= 15 {
                req.replica_state =
                    fetch_request::ReplicaState::default().with_replica_id(BrokerId(-1));
            } else {
                req.replica_id = BrokerId(-1);
            }
            let r: FetchResponse = c.send(key, v, &req).await;
            let p = &r.responses[0].partitions[0];
            assert_eq!(p.error_code, 0, "fetch v{v}");
            assert!(p.high_watermark > 0, "fetch v{v}: nothing produced yet?");
            assert!(
                p.records.as_ref().is_some_and(|r| !r.is_empty()),
                "fetch v{v}: no records"
            );
        }
        ApiKey::ListOffsets => {
            let parts = [-1i64, -2, 1_700_000_000_000]
                .iter()
                .map(|ts| {
                    list_offsets_request::ListOffsetsPartition::default()
                        .with_partition_index(0)
                        .with_timestamp(*ts)
                })
                .collect::<Vec<_>>();
            // One partition per request (Kafka refuses duplicates), so send three requests.
            for p in parts {
                let req = ListOffsetsRequest::default()
                    .with_replica_id(BrokerId(-1))
                    .with_topics(vec![
                        list_offsets_request::ListOffsetsTopic::default()
                            .with_name(name("t"))
                            .with_partitions(vec![p]),
                    ]);
                let r: ListOffsetsResponse = c.send(key, v, &req).await;
                assert_eq!(r.topics[0].partitions[0].error_code, 0, "list offsets v{v}");
            }
        }
        ApiKey::CreateTopics => {
            let t = creatable_topic::CreatableTopic::default()
                .with_name(name(&format!("ct-{v}")))
                .with_num_partitions(1)
                .with_replication_factor(-1)
                .with_configs(vec![
                    create_topics_request::CreatableTopicConfig::default()
                        .with_name(StrBytes::from_static_str("retention.ms"))
                        .with_value(Some(StrBytes::from_static_str("1000"))),
                ]);
            let r: CreateTopicsResponse = c
                .send(key, v, &CreateTopicsRequest::default().with_topics(vec![t]))
                .await;
            assert_eq!(
                r.topics[0].error_code, 0,
                "create topics v{v}: {:?}",
                r.topics[0].error_message
            );
        }
        ApiKey::DeleteTopics => {
            let topic = format!("ct-{}", (v + 1).min(7));
            let mut req = DeleteTopicsRequest::default();
            if v >= 6 {
                req.topics = vec![
                    delete_topics_request::DeleteTopicState::default()
                        .with_name(Some(name(&topic))),
                ];
            } else {
                req.topic_names = vec![name(&topic)];
            }
            let r: DeleteTopicsResponse = c.send(key, v, &req).await;
            assert_eq!(
                r.responses[0].error_code, 0,
                "delete topics v{v}: {:?}",
                r.responses[0].error_message
            );
        }
        ApiKey::CreatePartitions => {
            let req = CreatePartitionsRequest::default()
                .with_validate_only(true)
                .with_topics(vec![
                    create_partitions_request::CreatePartitionsTopic::default()
                        .with_name(name("t"))
                        .with_count(5)
                        // Null: place them (the codec's default, an empty list, assigns none).
                        .with_assignments(None),
                ]);
            let r: CreatePartitionsResponse = c.send(key, v, &req).await;
            assert_eq!(r.results[0].error_code, 0, "create partitions v{v}");
        }
        ApiKey::DescribeConfigs => {
            let req = DescribeConfigsRequest::default()
                .with_include_synonyms(v >= 1)
                .with_resources(vec![
                    describe_configs_request::DescribeConfigsResource::default()
                        .with_resource_type(2)
                        .with_resource_name(StrBytes::from_static_str("t")),
                    describe_configs_request::DescribeConfigsResource::default()
                        .with_resource_type(4)
                        .with_resource_name(StrBytes::from_static_str("0")),
                ]);
            let r: DescribeConfigsResponse = c.send(key, v, &req).await;
            assert!(
                r.results.iter().all(|x| x.error_code == 0),
                "describe configs v{v}"
            );
            assert!(
                r.results[0]
                    .configs
                    .iter()
                    .any(|e| e.name.as_str() == "retention.ms")
            );
        }
        ApiKey::IncrementalAlterConfigs => {
            let req = IncrementalAlterConfigsRequest::default().with_resources(vec![
                incremental_alter_configs_request::AlterConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(StrBytes::from_static_str("t"))
                    .with_configs(vec![
                        incremental_alter_configs_request::AlterableConfig::default()
                            .with_name(StrBytes::from_static_str("retention.ms"))
                            .with_config_operation(0)
                            .with_value(Some(StrBytes::from_static_str("86400000"))),
                    ]),
            ]);
            let r: IncrementalAlterConfigsResponse = c.send(key, v, &req).await;
            assert_eq!(r.responses[0].error_code, 0, "incremental alter v{v}");
        }
        ApiKey::AlterConfigs => {
            // Replaces t's overrides with exactly these two (dropping any others), then checks
            // they are all it has; an unknown topic fails alone.
            let set = |name: &'static str, value: &'static str| {
                alter_configs_request::AlterableConfig::default()
                    .with_name(StrBytes::from_static_str(name))
                    .with_value(Some(StrBytes::from_static_str(value)))
            };
            let value = format!("{}", 1_048_576 + i64::from(v));
            let req = AlterConfigsRequest::default().with_resources(vec![
                alter_configs_request::AlterConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(StrBytes::from_static_str("t"))
                    .with_configs(vec![
                        set("segment.bytes", "1048576"),
                        alter_configs_request::AlterableConfig::default()
                            .with_name(StrBytes::from_static_str("max.message.bytes"))
                            .with_value(Some(StrBytes::from_string(value.clone()))),
                    ]),
                alter_configs_request::AlterConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(StrBytes::from_static_str("no-such-topic"))
                    .with_configs(vec![set("retention.ms", "1000")]),
            ]);
            let r: AlterConfigsResponse = c.send(key, v, &req).await;
            assert_eq!(r.responses.len(), 2);
            assert_eq!(r.responses[0].error_code, 0, "alter configs v{v}");
            assert_eq!(r.responses[0].resource_name.as_str(), "t");
            assert_eq!(
                r.responses[1].error_code, 3,
                "alter configs v{v}: unknown topic"
            );
            let described: DescribeConfigsResponse = c
                .send(
                    ApiKey::DescribeConfigs,
                    4,
                    &DescribeConfigsRequest::default().with_resources(vec![
                        describe_configs_request::DescribeConfigsResource::default()
                            .with_resource_type(2)
                            .with_resource_name(StrBytes::from_static_str("t")),
                    ]),
                )
                .await;
            let mut overridden: Vec<(String, String)> = described.results[0]
                .configs
                .iter()
                .filter(|e| e.config_source == 1)
                .map(|e| {
                    (
                        e.name.to_string(),
                        e.value.as_ref().map(|v| v.to_string()).unwrap_or_default(),
                    )
                })
                .collect();
            overridden.sort();
            assert_eq!(
                overridden,
                vec![
                    ("max.message.bytes".to_owned(), value),
                    ("segment.bytes".to_owned(), "1048576".to_owned()),
                ],
                "alter configs v{v}"
            );
        }
        ApiKey::AlterPartitionReassignments => {
            let me = BrokerId(NodeConfig::default().node_id);
            let part = |i: i32, replicas: Option<Vec<BrokerId>>| {
                alter_partition_reassignments_request::ReassignablePartition::default()
                    .with_partition_index(i)
                    .with_replicas(replicas)
            };
            let req = AlterPartitionReassignmentsRequest::default()
                .with_allow_replication_factor_change(true)
                .with_topics(vec![
                    alter_partition_reassignments_request::ReassignableTopic::default()
                        .with_name(name("t"))
                        .with_partitions(vec![
                            // Onto the replicas it has: nothing to do.
                            part(0, Some(vec![me])),
                            // Nothing to cancel.
                            part(1, None),
                            part(0, Some(vec![BrokerId(99)])),
                        ]),
                ]);
            let r: AlterPartitionReassignmentsResponse = c.send(key, v, &req).await;
            assert_eq!(r.error_code, 0, "v{v}");
            let codes: Vec<i16> = r.responses[0]
                .partitions
                .iter()
                .map(|p| p.error_code)
                .collect();
            assert_eq!(codes, vec![0, 85, 39], "v{v}");
        }
        ApiKey::ListPartitionReassignments => {
            let req = ListPartitionReassignmentsRequest::default();
            let r: ListPartitionReassignmentsResponse = c.send(key, v, &req).await;
            assert_eq!(r.error_code, 0, "v{v}");
            assert!(r.topics.is_empty(), "v{v}: {:?}", r.topics);
        }
        ApiKey::ElectLeaders => {
            let req = ElectLeadersRequest::default()
                .with_election_type(if v >= 1 { 1 } else { 0 })
                .with_topic_partitions(Some(vec![
                    elect_leaders_request::TopicPartitions::default()
                        .with_topic(name("t"))
                        .with_partitions(vec![0, 7]),
                ]));
            let r: ElectLeadersResponse = c.send(key, v, &req).await;
            let codes: Vec<i16> = r.replica_election_results[0]
                .partition_result
                .iter()
                .map(|p| p.error_code)
                .collect();
            // The leader leads already; partition 7 does not exist.
            assert_eq!(codes, vec![84, 3], "v{v}");
        }
        ApiKey::DescribeCluster => {
            let req =
                DescribeClusterRequest::default().with_include_cluster_authorized_operations(true);
            let r: DescribeClusterResponse = c.send(key, v, &req).await;
            assert_eq!(r.error_code, 0);
            assert_eq!(r.brokers.len(), 1);
        }
        ApiKey::OffsetForLeaderEpoch => {
            let ask = |epoch: i32| {
                offset_for_leader_epoch_request::OffsetForLeaderPartition::default()
                    .with_partition(0)
                    .with_current_leader_epoch(-1)
                    .with_leader_epoch(epoch)
            };
            let req = OffsetForLeaderEpochRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_topics(vec![
                    offset_for_leader_epoch_request::OffsetForLeaderTopic::default()
                        .with_topic(name("t"))
                        .with_partitions(vec![ask(0), ask(99)]),
                ]);
            let r: OffsetForLeaderEpochResponse = c.send(key, v, &req).await;
            let p = &r.topics[0].partitions;
            assert_eq!(p[0].error_code, 0, "offset for leader epoch v{v}");
            assert_eq!(p[0].leader_epoch, 0, "v{v}: the current epoch");
            assert!(p[0].end_offset >= 0, "v{v}: {:?}", p[0]);
            assert_eq!(
                (p[1].leader_epoch, p[1].end_offset),
                (-1, -1),
                "v{v}: an epoch newer than the leader's is undefined"
            );
        }
        ApiKey::FindCoordinator => {
            let mut req = FindCoordinatorRequest::default();
            if v >= 4 {
                req.coordinator_keys = vec![StrBytes::from_static_str("g")];
            } else {
                req.key = StrBytes::from_static_str("g");
            }
            let r: FindCoordinatorResponse = c.send(key, v, &req).await;
            if v >= 4 {
                assert_eq!(r.coordinators[0].error_code, 0);
            } else {
                assert_eq!(r.error_code, 0);
            }
        }
        ApiKey::DeleteRecords => {
            // Delete nothing new (offset 0 is always at or below the log start here), so the
            // produce and fetch checks of other versions keep their data.
            let req = DeleteRecordsRequest::default()
                .with_timeout_ms(5000)
                .with_topics(vec![
                    delete_records_request::DeleteRecordsTopic::default()
                        .with_name(name("t"))
                        .with_partitions(vec![
                            delete_records_request::DeleteRecordsPartition::default()
                                .with_partition_index(1)
                                .with_offset(0),
                        ]),
                ]);
            let r: DeleteRecordsResponse = c.send(key, v, &req).await;
            let p = &r.topics[0].partitions[0];
            assert_eq!(p.error_code, 0, "delete records v{v}");
            assert_eq!(p.low_watermark, 0);
        }
        ApiKey::JoinGroup => {
            let group = format!("g-join-{v}");
            let (member, generation) = join(c, &group, v).await;
            assert!(!member.is_empty() && generation >= 1, "join v{v}");
        }
        ApiKey::SyncGroup => {
            let group = format!("g-sync-{v}");
            let (member, generation) = join(c, &group, 9).await;
            let r: SyncGroupResponse = c
                .send(key, v, &sync_request(&group, &member, generation, v))
                .await;
            assert_eq!(r.error_code, 0, "sync v{v}");
            assert_eq!(r.assignment.as_ref(), b"assignment");
        }
        ApiKey::Heartbeat => {
            let group = format!("g-hb-{v}");
            let (member, generation) = join_and_sync(c, &group).await;
            let req = HeartbeatRequest::default()
                .with_group_id(GroupId(StrBytes::from_string(group)))
                .with_generation_id(generation)
                .with_member_id(StrBytes::from_string(member));
            let r: HeartbeatResponse = c.send(key, v, &req).await;
            assert_eq!(r.error_code, 0, "heartbeat v{v}");
        }
        ApiKey::LeaveGroup => {
            let group = format!("g-leave-{v}");
            let (member, _) = join_and_sync(c, &group).await;
            let mut req =
                LeaveGroupRequest::default().with_group_id(GroupId(StrBytes::from_string(group)));
            if v >= 3 {
                req.members = vec![
                    leave_group_request::MemberIdentity::default()
                        .with_member_id(StrBytes::from_string(member)),
                ];
            } else {
                req.member_id = StrBytes::from_string(member);
            }
            let r: LeaveGroupResponse = c.send(key, v, &req).await;
            assert_eq!(r.error_code, 0, "leave v{v}");
            assert!(r.members.iter().all(|m| m.error_code == 0), "leave v{v}");
        }
        ApiKey::OffsetCommit => {
            let r: OffsetCommitResponse = c.send(key, v, &commit_request("g-commit", 42)).await;
            assert_eq!(
                r.topics[0].partitions[0].error_code, 0,
                "offset commit v{v}"
            );
        }
        ApiKey::OffsetFetch => {
            let _: OffsetCommitResponse = c
                .send(ApiKey::OffsetCommit, 8, &commit_request("g-fetch", 7))
                .await;
            let group = GroupId(StrBytes::from_static_str("g-fetch"));
            let req = if v >= 8 {
                OffsetFetchRequest::default().with_groups(vec![
                    offset_fetch_request::OffsetFetchRequestGroup::default()
                        .with_group_id(group)
                        .with_topics(Some(vec![
                            offset_fetch_request::OffsetFetchRequestTopics::default()
                                .with_name(name("t"))
                                .with_partition_indexes(vec![0]),
                        ])),
                ])
            } else {
                OffsetFetchRequest::default()
                    .with_group_id(group)
                    .with_topics(Some(vec![
                        offset_fetch_request::OffsetFetchRequestTopic::default()
                            .with_name(name("t"))
                            .with_partition_indexes(vec![0]),
                    ]))
            };
            let r: OffsetFetchResponse = c.send(key, v, &req).await;
            let committed = if v >= 8 {
                r.groups[0].topics[0].partitions[0].committed_offset
            } else {
                r.topics[0].partitions[0].committed_offset
            };
            assert_eq!(committed, 7, "offset fetch v{v}");
        }
        ApiKey::ListGroups => {
            let _: OffsetCommitResponse = c
                .send(ApiKey::OffsetCommit, 8, &commit_request("g-list", 1))
                .await;
            let r: ListGroupsResponse = c.send(key, v, &ListGroupsRequest::default()).await;
            assert_eq!(r.error_code, 0);
            let row = r
                .groups
                .iter()
                .find(|g| g.group_id.0.as_str() == "g-list")
                .unwrap_or_else(|| panic!("list groups v{v}: g-list missing"));
            if v >= 5 {
                assert_eq!(row.group_type.as_str(), "classic", "list groups v{v}");
                // A type filter that excludes classic groups hides it; one that names it
                // (in any case) keeps it.
                let only = |t: &'static str| {
                    ListGroupsRequest::default()
                        .with_types_filter(vec![StrBytes::from_static_str(t)])
                };
                let r: ListGroupsResponse = c.send(key, v, &only("consumer")).await;
                assert!(
                    r.groups.iter().all(|g| g.group_id.0.as_str() != "g-list"),
                    "list groups v{v}: consumer filter"
                );
                let r: ListGroupsResponse = c.send(key, v, &only("Classic")).await;
                assert!(
                    r.groups.iter().any(|g| g.group_id.0.as_str() == "g-list"),
                    "list groups v{v}: classic filter"
                );
            }
        }
        ApiKey::DescribeGroups => {
            let group = format!("g-desc-{v}");
            join_and_sync(c, &group).await;
            let req = DescribeGroupsRequest::default()
                .with_groups(vec![GroupId(StrBytes::from_string(group))]);
            let r: DescribeGroupsResponse = c.send(key, v, &req).await;
            assert_eq!(r.groups[0].error_code, 0);
            assert_eq!(
                r.groups[0].group_state.as_str(),
                "Stable",
                "describe groups v{v}"
            );
            assert_eq!(r.groups[0].members.len(), 1);
        }
        ApiKey::DeleteGroups => {
            let group = format!("g-del-{v}");
            let _: OffsetCommitResponse = c
                .send(ApiKey::OffsetCommit, 8, &commit_request(&group, 1))
                .await;
            let req = DeleteGroupsRequest::default()
                .with_groups_names(vec![GroupId(StrBytes::from_string(group))]);
            let r: DeleteGroupsResponse = c.send(key, v, &req).await;
            assert_eq!(r.results[0].error_code, 0, "delete groups v{v}");
        }
        ApiKey::OffsetDelete => {
            let _: OffsetCommitResponse = c
                .send(ApiKey::OffsetCommit, 8, &commit_request("g-od", 1))
                .await;
            let req = OffsetDeleteRequest::default()
                .with_group_id(GroupId(StrBytes::from_static_str("g-od")))
                .with_topics(vec![
                    offset_delete_request::OffsetDeleteRequestTopic::default()
                        .with_name(name("t"))
                        .with_partitions(vec![
                            offset_delete_request::OffsetDeleteRequestPartition::default()
                                .with_partition_index(0),
                        ]),
                ]);
            let r: OffsetDeleteResponse = c.send(key, v, &req).await;
            assert_eq!(r.error_code, 0, "offset delete v{v}");
            assert_eq!(r.topics[0].partitions[0].error_code, 0);
        }
        ApiKey::ConsumerGroupHeartbeat => {
            let group = format!("g-cgh-{v}");
            // v1: the client names itself; v0: the coordinator does.
            let member = if v >= 1 {
                uuid::Uuid::new_v4().to_string()
            } else {
                String::new()
            };
            let r: ConsumerGroupHeartbeatResponse =
                c.send(key, v, &consumer_join(&group, &member)).await;
            assert_eq!(r.error_code, 0, "heartbeat v{v}: {:?}", r.error_message);
            assert_eq!(r.member_epoch, 1, "heartbeat v{v}");
            let member = r.member_id.unwrap().to_string();
            let assigned = r
                .assignment
                .expect("a join is answered with the assignment");
            assert_eq!(assigned.topic_partitions[0].topic_id, topic_id);
            assert_eq!(assigned.topic_partitions[0].partitions, vec![0, 1]);
            // The member commits with its epoch (OffsetCommit v9) and fetches (OffsetFetch v9).
            let mut commit = commit_request(&group, 5);
            commit.generation_id_or_member_epoch = 1;
            commit.member_id = StrBytes::from_string(member.clone());
            let r: OffsetCommitResponse = c.send(ApiKey::OffsetCommit, 9, &commit).await;
            assert_eq!(r.topics[0].partitions[0].error_code, 0, "member commit");
            let fetch = |epoch: i32| {
                OffsetFetchRequest::default().with_groups(vec![
                    offset_fetch_request::OffsetFetchRequestGroup::default()
                        .with_group_id(GroupId(StrBytes::from_string(group.clone())))
                        .with_member_id(Some(StrBytes::from_string(member.clone())))
                        .with_member_epoch(epoch)
                        .with_topics(None),
                ])
            };
            let r: OffsetFetchResponse = c.send(ApiKey::OffsetFetch, 9, &fetch(1)).await;
            assert_eq!(r.groups[0].error_code, 0);
            assert_eq!(r.groups[0].topics[0].partitions[0].committed_offset, 5);
            let r: OffsetFetchResponse = c.send(ApiKey::OffsetFetch, 9, &fetch(0)).await;
            assert_eq!(r.groups[0].error_code, 113, "STALE_MEMBER_EPOCH");
            let leave = ConsumerGroupHeartbeatRequest::default()
                .with_group_id(GroupId(StrBytes::from_string(group)))
                .with_member_id(StrBytes::from_string(member))
                .with_member_epoch(-1);
            let r: ConsumerGroupHeartbeatResponse = c.send(key, v, &leave).await;
            assert_eq!((r.error_code, r.member_epoch), (0, -1), "leave v{v}");
        }
        ApiKey::ConsumerGroupDescribe => {
            let group = format!("g-cgd-{v}");
            let member = uuid::Uuid::new_v4().to_string();
            let r: ConsumerGroupHeartbeatResponse = c
                .send(
                    ApiKey::ConsumerGroupHeartbeat,
                    1,
                    &consumer_join(&group, &member),
                )
                .await;
            assert_eq!(r.error_code, 0);
            let req = ConsumerGroupDescribeRequest::default()
                .with_group_ids(vec![
                    GroupId(StrBytes::from_string(group)),
                    GroupId(StrBytes::from_static_str("g-nobody")),
                ])
                .with_include_authorized_operations(true);
            let r: ConsumerGroupDescribeResponse = c.send(key, v, &req).await;
            let g = &r.groups[0];
            assert_eq!(g.error_code, 0, "describe v{v}: {:?}", g.error_message);
            assert_eq!(g.group_state.as_str(), "Stable");
            assert_eq!((g.group_epoch, g.assignment_epoch), (1, 1));
            assert_eq!(g.assignor_name.as_str(), "uniform");
            assert_eq!(g.members.len(), 1);
            assert_eq!(g.members[0].member_id.as_str(), member);
            let assigned = &g.members[0].assignment.topic_partitions[0];
            assert_eq!(assigned.topic_name.0.as_str(), "t");
            assert_eq!(assigned.partitions, vec![0, 1]);
            assert_eq!(r.groups[1].error_code, 69, "GROUP_ID_NOT_FOUND");
        }
        ApiKey::InitProducerId => {
            let idempotent = InitProducerIdRequest::default()
                .with_transactional_id(None)
                .with_transaction_timeout_ms(60_000)
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1);
            let r: InitProducerIdResponse = c.send(key, v, &idempotent).await;
            assert_eq!((r.error_code, r.producer_epoch), (0, 0), "v{v}");
            assert!(r.producer_id.0 >= 0);
            let (pid, epoch) = init_txn(c, &format!("tx-init-{v}"), v).await;
            assert!(pid >= 0 && epoch == 0, "v{v}");
        }
        ApiKey::AddPartitionsToTxn => {
            let id = format!("tx-apt-{v}");
            let (pid, epoch) = init_txn(c, &id, 4).await;
            let topics = vec![
                add_partitions_to_txn_request::AddPartitionsToTxnTopic::default()
                    .with_name(name("t"))
                    .with_partitions(vec![0, 1]),
            ];
            let req = if v <= 3 {
                AddPartitionsToTxnRequest::default()
                    .with_v3_and_below_transactional_id(txn_id(&id))
                    .with_v3_and_below_producer_id(ProducerId(pid))
                    .with_v3_and_below_producer_epoch(epoch)
                    .with_v3_and_below_topics(topics)
            } else {
                AddPartitionsToTxnRequest::default().with_transactions(vec![
                    add_partitions_to_txn_request::AddPartitionsToTxnTransaction::default()
                        .with_transactional_id(txn_id(&id))
                        .with_producer_id(ProducerId(pid))
                        .with_producer_epoch(epoch)
                        .with_topics(topics),
                ])
            };
            let r: AddPartitionsToTxnResponse = c.send(key, v, &req).await;
            let results = if v <= 3 {
                &r.results_by_topic_v3_and_below
            } else {
                assert_eq!(r.error_code, 0);
                &r.results_by_transaction[0].topic_results
            };
            for p in &results[0].results_by_partition {
                assert_eq!(p.partition_error_code, 0, "v{v}");
            }
        }
        ApiKey::AddOffsetsToTxn => {
            let id = format!("tx-aot-{v}");
            let (pid, epoch) = init_txn(c, &id, 4).await;
            let r: AddOffsetsToTxnResponse =
                c.send(key, v, &add_offsets(&id, pid, epoch, "g-aot")).await;
            assert_eq!(r.error_code, 0, "v{v}");
        }
        ApiKey::EndTxn => {
            let id = format!("tx-end-{v}");
            let (pid, epoch) = begin_with_group(c, &id, "g-end").await;
            let req = EndTxnRequest::default()
                .with_transactional_id(txn_id(&id))
                .with_producer_id(ProducerId(pid))
                .with_producer_epoch(epoch)
                .with_committed(true);
            let r: EndTxnResponse = c.send(key, v, &req).await;
            assert_eq!(r.error_code, 0, "v{v}");
        }
        ApiKey::TxnOffsetCommit => {
            let id = format!("tx-toc-{v}");
            let (pid, epoch) = begin_with_group(c, &id, "g-toc").await;
            let mut req = TxnOffsetCommitRequest::default()
                .with_transactional_id(txn_id(&id))
                .with_group_id(GroupId(StrBytes::from_static_str("g-toc")))
                .with_producer_id(ProducerId(pid))
                .with_producer_epoch(epoch)
                .with_topics(vec![
                    txn_offset_commit_request::TxnOffsetCommitRequestTopic::default()
                        .with_name(name("t"))
                        .with_partitions(vec![
                            txn_offset_commit_request::TxnOffsetCommitRequestPartition::default()
                                .with_partition_index(0)
                                .with_committed_offset(3)
                                .with_committed_leader_epoch(if v >= 2 { 0 } else { -1 }),
                        ]),
                ]);
            if v >= 3 {
                req.generation_id = -1;
            }
            let r: TxnOffsetCommitResponse = c.send(key, v, &req).await;
            assert_eq!(r.topics[0].partitions[0].error_code, 0, "v{v}");
        }
        ApiKey::WriteTxnMarkers => {
            let req = WriteTxnMarkersRequest::default().with_markers(vec![
                write_txn_markers_request::WritableTxnMarker::default()
                    .with_producer_id(ProducerId(999_999))
                    .with_producer_epoch(0)
                    .with_transaction_result(false)
                    .with_topics(vec![
                        write_txn_markers_request::WritableTxnMarkerTopic::default()
                            .with_name(name("t"))
                            .with_partition_indexes(vec![1]),
                    ]),
            ]);
            let r: WriteTxnMarkersResponse = c.send(key, v, &req).await;
            assert_eq!(r.markers[0].topics[0].partitions[0].error_code, 0, "v{v}");
        }
        ApiKey::DescribeTopicPartitions => {
            // A page of one partition: the cursor names the next one.
            let req = DescribeTopicPartitionsRequest::default()
                .with_topics(vec![
                    describe_topic_partitions_request::TopicRequest::default().with_name(name("t")),
                ])
                .with_response_partition_limit(1);
            let r: DescribeTopicPartitionsResponse = c.send(key, v, &req).await;
            assert_eq!(r.topics[0].error_code, 0, "v{v}");
            assert_eq!(r.topics[0].topic_id, topic_id);
            assert_eq!(r.topics[0].partitions.len(), 1);
            let next = r.next_cursor.expect("a cursor to partition 1");
            assert_eq!((next.topic_name.0.as_str(), next.partition_index), ("t", 1));
        }
        ApiKey::DescribeLogDirs => {
            let req = DescribeLogDirsRequest::default().with_topics(Some(vec![
                describe_log_dirs_request::DescribableLogDirTopic::default()
                    .with_topic(name("t"))
                    .with_partitions(vec![0, 1]),
            ]));
            let r: DescribeLogDirsResponse = c.send(key, v, &req).await;
            assert_eq!(r.error_code, 0, "v{v}");
            assert_eq!(r.results.len(), 1);
            assert_eq!(r.results[0].error_code, 0);
            assert_eq!(r.results[0].topics[0].partitions.len(), 2, "v{v}");
            assert_eq!(r.results[0].total_bytes > 0, v >= 4, "v{v}");
        }
        ApiKey::DescribeProducers => {
            let req = DescribeProducersRequest::default().with_topics(vec![
                describe_producers_request::TopicRequest::default()
                    .with_name(name("t"))
                    .with_partition_indexes(vec![1]),
            ]);
            let r: DescribeProducersResponse = c.send(key, v, &req).await;
            let p = &r.topics[0].partitions[0];
            assert_eq!(p.error_code, 0, "v{v}");
            // The marker WriteTxnMarkers wrote for producer 999999.
            assert!(
                p.active_producers
                    .iter()
                    .any(|s| s.producer_id.0 == 999_999),
                "{p:?}"
            );
        }
        ApiKey::DescribeTransactions => {
            let id = format!("tx-dt-{v}");
            init_txn(c, &id, 4).await;
            let req = DescribeTransactionsRequest::default()
                .with_transactional_ids(vec![txn_id(&id), txn_id("tx-nobody")]);
            let r: DescribeTransactionsResponse = c.send(key, v, &req).await;
            assert_eq!(r.transaction_states[0].error_code, 0);
            assert_eq!(r.transaction_states[0].transaction_state.as_str(), "Empty");
            assert_eq!(
                r.transaction_states[1].error_code, 105,
                "TRANSACTIONAL_ID_NOT_FOUND"
            );
        }
        ApiKey::ListTransactions => {
            let id = format!("tx-lt-{v}");
            init_txn(c, &id, 4).await;
            let mut req = ListTransactionsRequest::default()
                .with_state_filters(vec![StrBytes::from_static_str("Empty")]);
            if v >= 1 {
                req.duration_filter = -1;
            }
            if v >= 2 {
                req.transactional_id_pattern = Some(StrBytes::from_static_str("tx-lt-.*"));
            }
            let r: ListTransactionsResponse = c.send(key, v, &req).await;
            assert_eq!(r.error_code, 0, "v{v}");
            assert!(
                r.transaction_states
                    .iter()
                    .any(|t| t.transactional_id.as_str() == id),
                "v{v}: {r:?}"
            );
        }
        ApiKey::SaslHandshake => {
            // A PLAINTEXT listener takes no SASL exchange: Kafka's ILLEGAL_SASL_STATE.
            let req = SaslHandshakeRequest::default()
                .with_mechanism(StrBytes::from_static_str("SCRAM-SHA-512"));
            let r: SaslHandshakeResponse = c.send(key, v, &req).await;
            assert_eq!(r.error_code, 34, "v{v}");
        }
        ApiKey::SaslAuthenticate => {
            let r: SaslAuthenticateResponse =
                c.send(key, v, &SaslAuthenticateRequest::default()).await;
            assert_eq!(r.error_code, 34, "v{v}");
        }
        ApiKey::DescribeUserScramCredentials => {
            let r: DescribeUserScramCredentialsResponse = c
                .send(key, v, &DescribeUserScramCredentialsRequest::default())
                .await;
            assert_eq!(r.error_code, 0, "v{v}");
            assert!(r.results.is_empty(), "v{v}: {r:?}");
        }
        ApiKey::AlterUserScramCredentials => {
            let r: AlterUserScramCredentialsResponse = c
                .send(key, v, &AlterUserScramCredentialsRequest::default())
                .await;
            assert!(r.results.is_empty(), "v{v}: {r:?}");
        }
        ApiKey::CreateAcls => {
            let req = CreateAclsRequest::default().with_creations(vec![
                create_acls_request::AclCreation::default()
                    .with_resource_type(2)
                    .with_resource_name(StrBytes::from_string(format!("acl-{v}")))
                    .with_resource_pattern_type(3)
                    .with_principal(StrBytes::from_static_str("User:alice"))
                    .with_host(StrBytes::from_static_str("*"))
                    .with_operation(3)
                    .with_permission_type(3),
            ]);
            let r: CreateAclsResponse = c.send(key, v, &req).await;
            assert_eq!(r.results[0].error_code, 0, "v{v}: {r:?}");
        }
        ApiKey::DescribeAcls => {
            let req = DescribeAclsRequest::default()
                .with_resource_type_filter(1)
                .with_pattern_type_filter(1)
                .with_operation(1)
                .with_permission_type(1);
            let r: DescribeAclsResponse = c.send(key, v, &req).await;
            assert_eq!(r.error_code, 0, "v{v}: {r:?}");
        }
        ApiKey::DeleteAcls => {
            let req = DeleteAclsRequest::default().with_filters(vec![
                delete_acls_request::DeleteAclsFilter::default()
                    .with_resource_type_filter(2)
                    .with_resource_name_filter(Some(StrBytes::from_static_str("nothing-here")))
                    .with_pattern_type_filter(1)
                    .with_operation(1)
                    .with_permission_type(1),
            ]);
            let r: DeleteAclsResponse = c.send(key, v, &req).await;
            assert_eq!(r.filter_results[0].error_code, 0, "v{v}: {r:?}");
            assert!(r.filter_results[0].matching_acls.is_empty());
        }
        ApiKey::AlterClientQuotas => {
            let client = format!("quota-client-v{v}");
            let req = AlterClientQuotasRequest::default().with_entries(vec![
                alter_client_quotas_request::EntryData::default()
                    .with_entity(vec![
                        alter_client_quotas_request::EntityData::default()
                            .with_entity_type(StrBytes::from_static_str("client-id"))
                            .with_entity_name(Some(StrBytes::from_string(client))),
                    ])
                    .with_ops(vec![
                        alter_client_quotas_request::OpData::default()
                            .with_key(StrBytes::from_static_str("producer_byte_rate"))
                            .with_value(1e12),
                    ]),
            ]);
            let r: AlterClientQuotasResponse = c.send(key, v, &req).await;
            assert_eq!(r.entries[0].error_code, 0, "v{v}: {r:?}");
        }
        ApiKey::DescribeClientQuotas => {
            let req = DescribeClientQuotasRequest::default().with_components(vec![
                describe_client_quotas_request::ComponentData::default()
                    .with_entity_type(StrBytes::from_static_str("client-id"))
                    .with_match_type(2)
                    .with_match(None),
            ]);
            let r: DescribeClientQuotasResponse = c.send(key, v, &req).await;
            assert_eq!(r.error_code, 0, "v{v}: {r:?}");
            assert!(r.entries.is_some(), "v{v}");
        }
        other => panic!("advertised {other:?} has no check here: add one"),
    }
}

fn txn_id(s: &str) -> TransactionalId {
    TransactionalId(StrBytes::from_string(s.to_owned()))
}

/// InitProducerId at `v` for transactional id `id` → (producer id, epoch).
async fn init_txn(c: &mut Client, id: &str, v: i16) -> (i64, i16) {
    let req = InitProducerIdRequest::default()
        .with_transactional_id(Some(txn_id(id)))
        .with_transaction_timeout_ms(60_000)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    let r: InitProducerIdResponse = c.send(ApiKey::InitProducerId, v, &req).await;
    assert_eq!(r.error_code, 0, "InitProducerId v{v} for {id}");
    (r.producer_id.0, r.producer_epoch)
}

/// A transaction of `id` with `group` added (AddOffsetsToTxn) → (producer id, epoch).
async fn begin_with_group(c: &mut Client, id: &str, group: &str) -> (i64, i16) {
    let (pid, epoch) = init_txn(c, id, 4).await;
    let r: AddOffsetsToTxnResponse = c
        .send(
            ApiKey::AddOffsetsToTxn,
            3,
            &add_offsets(id, pid, epoch, group),
        )
        .await;
    assert_eq!(r.error_code, 0);
    (pid, epoch)
}

fn add_offsets(id: &str, pid: i64, epoch: i16, group: &str) -> AddOffsetsToTxnRequest {
    AddOffsetsToTxnRequest::default()
        .with_transactional_id(txn_id(id))
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(epoch)
        .with_group_id(GroupId(StrBytes::from_string(group.to_owned())))
}

/// Joins `group` as its only member at JoinGroup `v` (answering MEMBER_ID_REQUIRED on v4+).
async fn join(c: &mut Client, group: &str, v: i16) -> (String, i32) {
    let req = |member: &str| {
        JoinGroupRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(group.to_owned())))
            .with_session_timeout_ms(30_000)
            .with_rebalance_timeout_ms(if v >= 1 { 30_000 } else { -1 })
            .with_member_id(StrBytes::from_string(member.to_owned()))
            .with_protocol_type(StrBytes::from_static_str("consumer"))
            .with_protocols(vec![
                join_group_request::JoinGroupRequestProtocol::default()
                    .with_name(StrBytes::from_static_str("range"))
                    .with_metadata(Bytes::from_static(b"\0\x01\0\0\0\x01\0\x01t")),
            ])
    };
    let mut r: JoinGroupResponse = c.send(ApiKey::JoinGroup, v, &req("")).await;
    if v >= 4 {
        assert_eq!(
            r.error_code, 79,
            "join v{v}: MEMBER_ID_REQUIRED expected first"
        );
        let id = r.member_id.to_string();
        r = c.send(ApiKey::JoinGroup, v, &req(&id)).await;
    }
    assert_eq!(r.error_code, 0, "join v{v}");
    assert_eq!(r.leader, r.member_id, "a lone member leads");
    assert_eq!(r.members.len(), 1);
    (r.member_id.to_string(), r.generation_id)
}

fn sync_request(group: &str, member: &str, generation: i32, v: i16) -> SyncGroupRequest {
    let mut req = SyncGroupRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.to_owned())))
        .with_generation_id(generation)
        .with_member_id(StrBytes::from_string(member.to_owned()))
        .with_assignments(vec![
            sync_group_request::SyncGroupRequestAssignment::default()
                .with_member_id(StrBytes::from_string(member.to_owned()))
                .with_assignment(Bytes::from_static(b"assignment")),
        ]);
    if v >= 5 {
        req.protocol_type = Some(StrBytes::from_static_str("consumer"));
        req.protocol_name = Some(StrBytes::from_static_str("range"));
    }
    req
}

async fn join_and_sync(c: &mut Client, group: &str) -> (String, i32) {
    let (member, generation) = join(c, group, 9).await;
    let r: SyncGroupResponse = c
        .send(
            ApiKey::SyncGroup,
            5,
            &sync_request(group, &member, generation, 5),
        )
        .await;
    assert_eq!(r.error_code, 0);
    (member, generation)
}

/// A next-generation join (epoch 0) of `member` subscribed to `t`.
fn consumer_join(group: &str, member: &str) -> ConsumerGroupHeartbeatRequest {
    ConsumerGroupHeartbeatRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.to_owned())))
        .with_member_id(StrBytes::from_string(member.to_owned()))
        .with_member_epoch(0)
        .with_rebalance_timeout_ms(30_000)
        .with_subscribed_topic_names(Some(vec![name("t")]))
        .with_topic_partitions(Some(vec![]))
}

/// A commit of offset `offset` for t-0 by a non-member (generation -1).
fn commit_request(group: &str, offset: i64) -> OffsetCommitRequest {
    OffsetCommitRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.to_owned())))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![
            offset_commit_request::OffsetCommitRequestTopic::default()
                .with_name(name("t"))
                .with_partitions(vec![
                    offset_commit_request::OffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(offset),
                ]),
        ])
}
