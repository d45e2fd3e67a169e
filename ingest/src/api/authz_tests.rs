//! Authorization of every protected API through the in-process broker: a principal without
//! ACLs is refused (allow-everyone off) with Kafka's error code, the right ACL lets it through,
//! a DENY overrides an ALLOW, prefixed patterns apply, and a super user is never refused.

#![allow(clippy::unwrap_used)]

use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use crate::broker::testing::{TestBroker, batch, name, produce_req, wait_until};
use crate::security::Principal;

const TOPIC_DENIED: i16 = 29;
const GROUP_DENIED: i16 = 30;
const CLUSTER_DENIED: i16 = 31;
const TXN_ID_DENIED: i16 = 53;
const INVALID_REQUEST: i16 = 42;

// Kafka's wire codes.
const TOPIC: i8 = 2;
const GROUP: i8 = 3;
const CLUSTER: i8 = 4;
const TXN_ID: i8 = 5;
const LITERAL: i8 = 3;
const PREFIXED: i8 = 4;
const ANY: i8 = 1;
const MATCH: i8 = 2;
const ALL: i8 = 2;
const READ: i8 = 3;
const WRITE: i8 = 4;
const CREATE: i8 = 5;
const DESCRIBE: i8 = 8;
const DENY: i8 = 2;
const ALLOW: i8 = 3;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_owned())
}

/// A broker where nothing is allowed without an ACL, `User:admin` is a super user, topic `t`
/// exists (one record in partition 0), and requests come from `User:alice`.
async fn locked_broker() -> TestBroker {
    let mut b = TestBroker::start_with(|c| {
        c.super_users = Some("User:admin".into());
        c.allow_everyone_if_no_acl_found = Some(false);
    })
    .await;
    b.as_principal(Principal::user("admin"));
    assert_eq!(b.create("t", 1).await.topics[0].error_code, 0);
    assert_eq!(b.produce("t", 0, batch(1), -1).await.0, 0);
    b.as_principal(Principal::user("alice"));
    b
}

/// Creates ACLs as the super user and waits until this node's authorizer holds `expect` ACLs.
async fn acl(b: &mut TestBroker, creations: &[(i8, &str, i8, &str, i8, i8)], expect: usize) {
    let me = b.session.principal.clone();
    b.as_principal(Principal::user("admin"));
    let req = CreateAclsRequest::default().with_creations(
        creations
            .iter()
            .map(|&(rt, n, pt, who, op, perm)| {
                create_acls_request::AclCreation::default()
                    .with_resource_type(rt)
                    .with_resource_name(s(n))
                    .with_resource_pattern_type(pt)
                    .with_principal(s(who))
                    .with_host(s("*"))
                    .with_operation(op)
                    .with_permission_type(perm)
            })
            .collect(),
    );
    let r: CreateAclsResponse = b.request(ApiKey::CreateAcls, 3, &req).await;
    assert!(r.results.iter().all(|x| x.error_code == 0), "{r:?}");
    let a = b.broker.authorizer.clone();
    wait_until(|| {
        let a = a.clone();
        async move { a.acl_count() == expect }
    })
    .await;
    b.as_principal(me);
}

async fn produce_code(b: &TestBroker, topic: &str) -> i16 {
    let r: ProduceResponse = b
        .request(ApiKey::Produce, 9, &produce_req(topic, 0, batch(1), -1))
        .await;
    r.responses[0].partition_responses[0].error_code
}

async fn fetch_code(b: &TestBroker, topic: &str) -> i16 {
    let req = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(10)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_topics(vec![
            fetch_request::FetchTopic::default()
                .with_topic(name(topic))
                .with_partitions(vec![
                    fetch_request::FetchPartition::default()
                        .with_partition(0)
                        .with_partition_max_bytes(1 << 20),
                ]),
        ]);
    let r: FetchResponse = b.request(ApiKey::Fetch, 11, &req).await;
    r.responses[0].partitions[0].error_code
}

async fn metadata(b: &TestBroker, topics: Option<&[&str]>) -> MetadataResponse {
    let req = MetadataRequest::default()
        .with_topics(topics.map(|ts| {
            ts.iter()
                .map(|t| metadata_request::MetadataRequestTopic::default().with_name(Some(name(t))))
                .collect()
        }))
        .with_allow_auto_topic_creation(false)
        .with_include_cluster_authorized_operations(true)
        .with_include_topic_authorized_operations(true);
    b.request(ApiKey::Metadata, 10, &req).await
}

#[tokio::test]
async fn produce_fetch_metadata_need_their_topic_acls() {
    let mut b = locked_broker().await;
    assert_eq!(produce_code(&b, "t").await, TOPIC_DENIED);
    assert_eq!(fetch_code(&b, "t").await, TOPIC_DENIED);
    assert_eq!(
        metadata(&b, Some(&["t"])).await.topics[0].error_code,
        TOPIC_DENIED
    );
    assert!(
        metadata(&b, None).await.topics.is_empty(),
        "t is not listed"
    );
    // An unknown topic the principal may not describe is refused, not revealed.
    assert_eq!(
        metadata(&b, Some(&["nope"])).await.topics[0].error_code,
        TOPIC_DENIED
    );

    acl(
        &mut b,
        &[
            (TOPIC, "t", LITERAL, "User:alice", WRITE, ALLOW),
            (TOPIC, "t", LITERAL, "User:alice", READ, ALLOW),
        ],
        2,
    )
    .await;
    assert_eq!(produce_code(&b, "t").await, 0);
    assert_eq!(fetch_code(&b, "t").await, 0);
    let m = metadata(&b, None).await;
    assert_eq!(m.topics.len(), 1);
    // READ and WRITE, and the DESCRIBE they imply; nothing on the cluster.
    assert_eq!(
        m.topics[0].topic_authorized_operations,
        (1 << 3) | (1 << 4) | (1 << 8)
    );
    assert_eq!(m.cluster_authorized_operations, 0);

    // DENY overrides ALLOW, even through a wildcard principal and a prefix.
    acl(&mut b, &[(TOPIC, "t", PREFIXED, "User:*", READ, DENY)], 3).await;
    assert_eq!(fetch_code(&b, "t").await, TOPIC_DENIED);
    assert_eq!(produce_code(&b, "t").await, 0);

    // The super user is never refused.
    b.as_principal(Principal::user("admin"));
    assert_eq!(fetch_code(&b, "t").await, 0);
    b.stop().await;
}

#[tokio::test]
async fn prefixed_acls_cover_topics_they_start() {
    let mut b = locked_broker().await;
    acl(
        &mut b,
        &[(TOPIC, "orders-", PREFIXED, "User:alice", ALL, ALLOW)],
        1,
    )
    .await;
    let r: CreateTopicsResponse = b
        .request(
            ApiKey::CreateTopics,
            7,
            &CreateTopicsRequest::default().with_topics(vec![
                create_topics_request::CreatableTopic::default()
                    .with_name(name("orders-eu"))
                    .with_num_partitions(1)
                    .with_replication_factor(-1),
                create_topics_request::CreatableTopic::default()
                    .with_name(name("other"))
                    .with_num_partitions(1)
                    .with_replication_factor(-1),
            ]),
        )
        .await;
    assert_eq!(r.topics[0].error_code, 0);
    assert_eq!(r.topics[1].error_code, TOPIC_DENIED);
    assert_eq!(produce_code(&b, "orders-eu").await, 0);
    assert_eq!(produce_code(&b, "t").await, TOPIC_DENIED);
    b.stop().await;
}

#[tokio::test]
async fn topic_admin_apis_need_their_operations() {
    let mut b = locked_broker().await;
    let delete = DeleteTopicsRequest::default().with_topic_names(vec![name("t")]);
    let r: DeleteTopicsResponse = b.request(ApiKey::DeleteTopics, 4, &delete).await;
    assert_eq!(r.responses[0].error_code, TOPIC_DENIED);
    let grow = CreatePartitionsRequest::default()
        .with_topics(vec![
            create_partitions_request::CreatePartitionsTopic::default()
                .with_name(name("t"))
                .with_count(2),
        ])
        .with_timeout_ms(5000);
    let r: CreatePartitionsResponse = b.request(ApiKey::CreatePartitions, 3, &grow).await;
    assert_eq!(r.results[0].error_code, TOPIC_DENIED);
    let describe = DescribeConfigsRequest::default().with_resources(vec![
        describe_configs_request::DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(s("t")),
        describe_configs_request::DescribeConfigsResource::default()
            .with_resource_type(4)
            .with_resource_name(s("1")),
    ]);
    let r: DescribeConfigsResponse = b.request(ApiKey::DescribeConfigs, 4, &describe).await;
    assert_eq!(r.results[0].error_code, TOPIC_DENIED);
    assert_eq!(r.results[1].error_code, CLUSTER_DENIED);
    let alter = IncrementalAlterConfigsRequest::default().with_resources(vec![
        incremental_alter_configs_request::AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(s("t"))
            .with_configs(vec![
                incremental_alter_configs_request::AlterableConfig::default()
                    .with_name(s("retention.ms"))
                    .with_value(Some(s("1000"))),
            ]),
    ]);
    let r: IncrementalAlterConfigsResponse =
        b.request(ApiKey::IncrementalAlterConfigs, 1, &alter).await;
    assert_eq!(r.responses[0].error_code, TOPIC_DENIED);
    let offsets = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![
            list_offsets_request::ListOffsetsTopic::default()
                .with_name(name("t"))
                .with_partitions(vec![
                    list_offsets_request::ListOffsetsPartition::default().with_timestamp(-1),
                ]),
        ]);
    let r: ListOffsetsResponse = b.request(ApiKey::ListOffsets, 7, &offsets).await;
    assert_eq!(r.topics[0].partitions[0].error_code, TOPIC_DENIED);
    let cluster: DescribeClusterResponse = b
        .request(
            ApiKey::DescribeCluster,
            0,
            &DescribeClusterRequest::default(),
        )
        .await;
    assert_eq!(cluster.error_code, CLUSTER_DENIED);

    // ALTER_CONFIGS implies DESCRIBE_CONFIGS; DESCRIBE on the topic opens ListOffsets.
    acl(
        &mut b,
        &[
            (TOPIC, "t", LITERAL, "User:alice", 11, ALLOW),
            (TOPIC, "t", LITERAL, "User:alice", DESCRIBE, ALLOW),
            (
                CLUSTER,
                "kafka-cluster",
                LITERAL,
                "User:alice",
                DESCRIBE,
                ALLOW,
            ),
        ],
        3,
    )
    .await;
    let r: DescribeConfigsResponse = b.request(ApiKey::DescribeConfigs, 4, &describe).await;
    assert_eq!(r.results[0].error_code, 0);
    let r: IncrementalAlterConfigsResponse =
        b.request(ApiKey::IncrementalAlterConfigs, 1, &alter).await;
    assert_eq!(r.responses[0].error_code, 0);
    let r: ListOffsetsResponse = b.request(ApiKey::ListOffsets, 7, &offsets).await;
    assert_eq!(r.topics[0].partitions[0].error_code, 0);
    let cluster: DescribeClusterResponse = b
        .request(
            ApiKey::DescribeCluster,
            0,
            &DescribeClusterRequest::default(),
        )
        .await;
    assert_eq!(cluster.error_code, 0);
    b.stop().await;
}

#[tokio::test]
async fn group_apis_need_group_acls() {
    let mut b = locked_broker().await;
    let find = FindCoordinatorRequest::default()
        .with_key_type(0)
        .with_coordinator_keys(vec![s("g")]);
    let r: FindCoordinatorResponse = b.request(ApiKey::FindCoordinator, 4, &find).await;
    assert_eq!(r.coordinators[0].error_code, GROUP_DENIED);
    let commit = OffsetCommitRequest::default()
        .with_group_id(GroupId(s("g")))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![
            offset_commit_request::OffsetCommitRequestTopic::default()
                .with_name(name("t"))
                .with_partitions(vec![
                    offset_commit_request::OffsetCommitRequestPartition::default()
                        .with_committed_offset(1),
                ]),
        ]);
    let r: OffsetCommitResponse = b.request(ApiKey::OffsetCommit, 8, &commit).await;
    assert_eq!(r.topics[0].partitions[0].error_code, GROUP_DENIED);
    let describe = DescribeGroupsRequest::default().with_groups(vec![GroupId(s("g"))]);
    let r: DescribeGroupsResponse = b.request(ApiKey::DescribeGroups, 5, &describe).await;
    assert_eq!(r.groups[0].error_code, GROUP_DENIED);
    let delete = DeleteGroupsRequest::default().with_groups_names(vec![GroupId(s("g"))]);
    let r: DeleteGroupsResponse = b.request(ApiKey::DeleteGroups, 2, &delete).await;
    assert_eq!(r.results[0].error_code, GROUP_DENIED);

    // READ on the group: the commit now stops at the topic.
    acl(
        &mut b,
        &[(GROUP, "g", LITERAL, "User:alice", READ, ALLOW)],
        1,
    )
    .await;
    let r: FindCoordinatorResponse = b.request(ApiKey::FindCoordinator, 4, &find).await;
    assert_eq!(r.coordinators[0].error_code, 0, "READ implies DESCRIBE");
    let r: OffsetCommitResponse = b.request(ApiKey::OffsetCommit, 8, &commit).await;
    assert_eq!(r.topics[0].partitions[0].error_code, TOPIC_DENIED);
    acl(
        &mut b,
        &[(TOPIC, "t", LITERAL, "User:alice", READ, ALLOW)],
        2,
    )
    .await;
    let r: OffsetCommitResponse = b.request(ApiKey::OffsetCommit, 8, &commit).await;
    assert_eq!(r.topics[0].partitions[0].error_code, 0);
    // ListGroups shows only the groups the principal may describe.
    let listed: ListGroupsResponse = b
        .request(ApiKey::ListGroups, 4, &ListGroupsRequest::default())
        .await;
    assert_eq!(listed.groups.len(), 1);
    // DENY READ would not do: a DENY hides nothing it does not name (DESCRIBE stays implied
    // by the ALLOW READ).
    acl(
        &mut b,
        &[(GROUP, "g", LITERAL, "User:alice", DESCRIBE, DENY)],
        3,
    )
    .await;
    let listed: ListGroupsResponse = b
        .request(ApiKey::ListGroups, 4, &ListGroupsRequest::default())
        .await;
    assert!(listed.groups.is_empty());
    b.stop().await;
}

#[tokio::test]
async fn transactional_and_idempotent_producers_need_their_acls() {
    let mut b = locked_broker().await;
    let init = |id: Option<&str>| {
        InitProducerIdRequest::default()
            .with_transactional_id(id.map(|i| TransactionalId(s(i))))
            .with_transaction_timeout_ms(60_000)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1)
    };
    let r: InitProducerIdResponse = b
        .request(ApiKey::InitProducerId, 4, &init(Some("tx")))
        .await;
    assert_eq!(r.error_code, TXN_ID_DENIED);
    let r: InitProducerIdResponse = b.request(ApiKey::InitProducerId, 4, &init(None)).await;
    assert_eq!(r.error_code, CLUSTER_DENIED);
    let end = EndTxnRequest::default()
        .with_transactional_id(TransactionalId(s("tx")))
        .with_producer_id(ProducerId(1));
    let r: EndTxnResponse = b.request(ApiKey::EndTxn, 3, &end).await;
    assert_eq!(r.error_code, TXN_ID_DENIED);
    let describe = DescribeTransactionsRequest::default()
        .with_transactional_ids(vec![TransactionalId(s("tx"))]);
    let r: DescribeTransactionsResponse =
        b.request(ApiKey::DescribeTransactions, 0, &describe).await;
    assert_eq!(r.transaction_states[0].error_code, TXN_ID_DENIED);
    let markers = WriteTxnMarkersRequest::default().with_markers(vec![
        write_txn_markers_request::WritableTxnMarker::default()
            .with_producer_id(ProducerId(5))
            .with_topics(vec![
                write_txn_markers_request::WritableTxnMarkerTopic::default()
                    .with_name(name("t"))
                    .with_partition_indexes(vec![0]),
            ]),
    ]);
    let r: WriteTxnMarkersResponse = b.request(ApiKey::WriteTxnMarkers, 1, &markers).await;
    assert_eq!(
        r.markers[0].topics[0].partitions[0].error_code,
        CLUSTER_DENIED
    );

    // WRITE on the transactional id; WRITE on any topic makes an idempotent producer.
    acl(
        &mut b,
        &[
            (TXN_ID, "tx", LITERAL, "User:alice", WRITE, ALLOW),
            (TOPIC, "t", LITERAL, "User:alice", WRITE, ALLOW),
        ],
        2,
    )
    .await;
    let r: InitProducerIdResponse = b
        .request(ApiKey::InitProducerId, 4, &init(Some("tx")))
        .await;
    assert_eq!(r.error_code, 0);
    let r: InitProducerIdResponse = b.request(ApiKey::InitProducerId, 4, &init(None)).await;
    assert_eq!(r.error_code, 0);
    let r: DescribeTransactionsResponse =
        b.request(ApiKey::DescribeTransactions, 0, &describe).await;
    assert_eq!(
        r.transaction_states[0].error_code, 0,
        "WRITE implies DESCRIBE"
    );
    b.stop().await;
}

#[tokio::test]
async fn acl_admin_apis_create_describe_delete_with_kafkas_filters() {
    let mut b = locked_broker().await;
    // Without ALTER/DESCRIBE on the cluster, alice may not touch ACLs.
    // Null strings match everything (the codec's defaults are empty strings).
    let describe_all = DescribeAclsRequest::default()
        .with_resource_name_filter(None)
        .with_principal_filter(None)
        .with_host_filter(None)
        .with_resource_type_filter(ANY)
        .with_pattern_type_filter(ANY)
        .with_operation(ANY)
        .with_permission_type(ANY);
    let r: DescribeAclsResponse = b.request(ApiKey::DescribeAcls, 3, &describe_all).await;
    assert_eq!(r.error_code, CLUSTER_DENIED);
    let create = |rt, n: &str, pt, op| {
        CreateAclsRequest::default().with_creations(vec![
            create_acls_request::AclCreation::default()
                .with_resource_type(rt)
                .with_resource_name(s(n))
                .with_resource_pattern_type(pt)
                .with_principal(s("User:bob"))
                .with_host(s("*"))
                .with_operation(op)
                .with_permission_type(ALLOW),
        ])
    };
    let r: CreateAclsResponse = b
        .request(ApiKey::CreateAcls, 3, &create(TOPIC, "x", LITERAL, READ))
        .await;
    assert_eq!(r.results[0].error_code, CLUSTER_DENIED);

    b.as_principal(Principal::user("admin"));
    for (rt, n, pt, op) in [
        (TOPIC, "", LITERAL, READ),
        (CLUSTER, "not-the-cluster", LITERAL, CREATE),
        (TOPIC, "x", MATCH, READ),
        (TOPIC, "x", LITERAL, ANY),
        (ANY, "x", LITERAL, READ),
    ] {
        let r: CreateAclsResponse = b
            .request(ApiKey::CreateAcls, 3, &create(rt, n, pt, op))
            .await;
        assert_eq!(
            r.results[0].error_code, INVALID_REQUEST,
            "{rt} {n} {pt} {op}"
        );
    }
    for (rt, n, pt) in [
        (TOPIC, "orders", LITERAL),
        (TOPIC, "orders-", PREFIXED),
        (TOPIC, "*", LITERAL),
        (GROUP, "orders", LITERAL),
    ] {
        let r: CreateAclsResponse = b
            .request(ApiKey::CreateAcls, 3, &create(rt, n, pt, READ))
            .await;
        assert_eq!(r.results[0].error_code, 0);
    }
    let count = |r: &DescribeAclsResponse| r.resources.iter().map(|x| x.acls.len()).sum::<usize>();
    let r: DescribeAclsResponse = b.request(ApiKey::DescribeAcls, 3, &describe_all).await;
    assert_eq!(count(&r), 4, "{r:?}");
    // MATCH: every pattern that applies to the topic `orders-eu`: the prefix and `*`.
    let matching = DescribeAclsRequest::default()
        .with_resource_type_filter(TOPIC)
        .with_resource_name_filter(Some(s("orders-eu")))
        .with_principal_filter(None)
        .with_host_filter(None)
        .with_pattern_type_filter(MATCH)
        .with_operation(ANY)
        .with_permission_type(ANY);
    let r: DescribeAclsResponse = b.request(ApiKey::DescribeAcls, 3, &matching).await;
    let mut names: Vec<_> = r
        .resources
        .iter()
        .map(|x| x.resource_name.to_string())
        .collect();
    names.sort();
    assert_eq!(names, ["*", "orders-"]);
    // An unknown filter value is INVALID_REQUEST.
    let r: DescribeAclsResponse = b
        .request(
            ApiKey::DescribeAcls,
            3,
            &describe_all.clone().with_operation(0),
        )
        .await;
    assert_eq!(r.error_code, INVALID_REQUEST);
    // Delete the literal `orders` of any type: the topic and the group ACL.
    let delete = DeleteAclsRequest::default().with_filters(vec![
        delete_acls_request::DeleteAclsFilter::default()
            .with_resource_type_filter(ANY)
            .with_resource_name_filter(Some(s("orders")))
            .with_pattern_type_filter(LITERAL)
            .with_principal_filter(Some(s("User:bob")))
            .with_host_filter(None)
            .with_operation(ANY)
            .with_permission_type(ALLOW),
    ]);
    let r: DeleteAclsResponse = b.request(ApiKey::DeleteAcls, 3, &delete).await;
    assert_eq!(r.filter_results[0].error_code, 0);
    assert_eq!(r.filter_results[0].matching_acls.len(), 2);
    let r: DescribeAclsResponse = b.request(ApiKey::DescribeAcls, 3, &describe_all).await;
    assert_eq!(count(&r), 2);
    b.stop().await;
}
