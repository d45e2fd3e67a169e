//! Topic administration through librdkafka's AdminClient (CreateTopics, DeleteTopics,
//! CreatePartitions, DescribeConfigs) and raw IncrementalAlterConfigs, plus topic
//! auto-creation on Metadata and Produce, and turning it off.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use kafka_protocol::messages::IncrementalAlterConfigsRequest;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::admin::{NewPartitions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::producer::FutureRecord;
use tierlog_tests::clients::{
    CLIENT_TIMEOUT, admin, admin_options, create_topic, partition_count, producer, topic_names,
};
use tierlog_tests::wire::Conn;
use tierlog_tests::{NodeOptions, TestNode};

const TOPIC_RESOURCE: i8 = 2;
const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;

/// The value and is-default flag of one config of `topic`, via DescribeConfigs.
async fn describe(bootstrap: &str, topic: &str, name: &str) -> (Option<String>, bool) {
    let admin = admin(bootstrap).unwrap();
    let results = admin
        .describe_configs([&ResourceSpecifier::Topic(topic)], &admin_options())
        .await
        .unwrap();
    assert_eq!(results.len(), 1);
    let resource = results.into_iter().next().unwrap().unwrap();
    let entry = resource
        .get(name)
        .unwrap_or_else(|| panic!("DescribeConfigs({topic}) has no {name}: {resource:?}"));
    (entry.value.clone(), entry.is_default)
}

fn alter(
    conn: &mut Conn,
    topic: &str,
    configs: &[(&str, i8, Option<&str>)],
    validate_only: bool,
) -> (i16, Option<String>) {
    let request = IncrementalAlterConfigsRequest::default()
        .with_validate_only(validate_only)
        .with_resources(vec![
            AlterConfigsResource::default()
                .with_resource_type(TOPIC_RESOURCE)
                .with_resource_name(StrBytes::from_string(topic.to_owned()))
                .with_configs(
                    configs
                        .iter()
                        .map(|(name, op, value)| {
                            AlterableConfig::default()
                                .with_name(StrBytes::from_string((*name).to_owned()))
                                .with_config_operation(*op)
                                .with_value(value.map(|v| StrBytes::from_string(v.to_owned())))
                        })
                        .collect(),
                ),
        ]);
    let response = conn.request(&request, 0).unwrap();
    assert_eq!(response.responses.len(), 1);
    let r = &response.responses[0];
    (
        r.error_code,
        r.error_message.as_ref().map(|m| m.to_string()),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_admin_lifecycle() {
    let node = TestNode::start_default().unwrap();
    let bootstrap = node.bootstrap();
    let admin = admin(&bootstrap).unwrap();
    let opts = admin_options();

    // Create with configs.
    let topic = NewTopic::new("admin-a", 3, TopicReplication::Fixed(1))
        .set("retention.ms", "3600000")
        .set("segment.bytes", "1048576");
    let results = admin.create_topics([&topic], &opts).await.unwrap();
    assert_eq!(results, vec![Ok("admin-a".to_owned())]);
    assert_eq!(partition_count(&bootstrap, "admin-a").unwrap(), Some(3));

    // validate_only: accepted, nothing created.
    let v = NewTopic::new("admin-validate", 2, TopicReplication::Fixed(1));
    let results = admin
        .create_topics([&v], &admin_options().validate_only(true))
        .await
        .unwrap();
    assert_eq!(results, vec![Ok("admin-validate".to_owned())]);
    assert!(
        !topic_names(&bootstrap)
            .unwrap()
            .contains(&"admin-validate".to_owned()),
        "validate_only created the topic"
    );

    // Duplicate.
    let dup = NewTopic::new("admin-a", 1, TopicReplication::Fixed(1));
    let results = admin.create_topics([&dup], &opts).await.unwrap();
    assert_eq!(
        results,
        vec![Err((
            "admin-a".to_owned(),
            RDKafkaErrorCode::TopicAlreadyExists
        ))]
    );
    assert_eq!(partition_count(&bootstrap, "admin-a").unwrap(), Some(3));

    // A config value of the wrong type is refused and creates nothing.
    let bad = NewTopic::new("admin-bad", 1, TopicReplication::Fixed(1)).set("retention.ms", "soon");
    let results = admin.create_topics([&bad], &opts).await.unwrap();
    assert_eq!(
        results,
        vec![Err((
            "admin-bad".to_owned(),
            RDKafkaErrorCode::InvalidConfig
        ))]
    );
    assert!(
        !topic_names(&bootstrap)
            .unwrap()
            .contains(&"admin-bad".to_owned())
    );

    // DescribeConfigs: overrides as set, others at their defaults.
    assert_eq!(
        describe(&bootstrap, "admin-a", "retention.ms").await,
        (Some("3600000".to_owned()), false)
    );
    assert_eq!(
        describe(&bootstrap, "admin-a", "segment.bytes").await,
        (Some("1048576".to_owned()), false)
    );
    let (cleanup, cleanup_default) = describe(&bootstrap, "admin-a", "cleanup.policy").await;
    assert_eq!(cleanup.as_deref(), Some("delete"));
    assert!(cleanup_default, "cleanup.policy was never set");
    for name in [
        "retention.bytes",
        "segment.ms",
        "max.message.bytes",
        "message.timestamp.type",
    ] {
        let (value, _) = describe(&bootstrap, "admin-a", name).await;
        assert!(value.is_some(), "{name} has no value");
    }

    // IncrementalAlterConfigs: validate_only changes nothing, SET changes, DELETE reverts.
    let mut conn = Conn::connect(node.kafka_addr()).unwrap();
    let (code, msg) = alter(
        &mut conn,
        "admin-a",
        &[("retention.ms", OP_SET, Some("7200000"))],
        true,
    );
    assert_eq!(code, 0, "validate-only alter: {msg:?}");
    assert_eq!(
        describe(&bootstrap, "admin-a", "retention.ms")
            .await
            .0
            .as_deref(),
        Some("3600000")
    );
    let (code, msg) = alter(
        &mut conn,
        "admin-a",
        &[
            ("retention.ms", OP_SET, Some("7200000")),
            ("max.message.bytes", OP_SET, Some("65536")),
        ],
        false,
    );
    assert_eq!(code, 0, "alter: {msg:?}");
    assert_eq!(
        describe(&bootstrap, "admin-a", "retention.ms").await,
        (Some("7200000".to_owned()), false)
    );
    assert_eq!(
        describe(&bootstrap, "admin-a", "max.message.bytes").await,
        (Some("65536".to_owned()), false)
    );
    let (code, msg) = alter(
        &mut conn,
        "admin-a",
        &[("max.message.bytes", OP_DELETE, None)],
        false,
    );
    assert_eq!(code, 0, "delete config: {msg:?}");
    let (_, is_default) = describe(&bootstrap, "admin-a", "max.message.bytes").await;
    assert!(
        is_default,
        "max.message.bytes still overridden after DELETE"
    );
    let (code, _) = alter(
        &mut conn,
        "admin-a",
        &[("retention.ms", OP_SET, Some("not-a-number"))],
        false,
    );
    assert_eq!(code, 40, "invalid value must be INVALID_CONFIG");
    let (code, _) = alter(
        &mut conn,
        "no-such-topic",
        &[("retention.ms", OP_SET, Some("1000"))],
        false,
    );
    assert_eq!(code, 3, "unknown topic must be UNKNOWN_TOPIC_OR_PARTITION");

    // CreatePartitions: grow, then the new partition takes writes; shrinking is refused.
    let results = admin
        .create_partitions([&NewPartitions::new("admin-a", 5)], &opts)
        .await
        .unwrap();
    assert_eq!(results, vec![Ok("admin-a".to_owned())]);
    assert_eq!(partition_count(&bootstrap, "admin-a").unwrap(), Some(5));
    let p = producer(&bootstrap, &[]).unwrap();
    let delivery = p
        .send(
            FutureRecord::<(), _>::to("admin-a")
                .partition(4)
                .payload("x"),
            CLIENT_TIMEOUT,
        )
        .await
        .map_err(|(e, _)| e)
        .unwrap();
    assert_eq!((delivery.partition, delivery.offset), (4, 0));
    let results = admin
        .create_partitions([&NewPartitions::new("admin-a", 2)], &opts)
        .await
        .unwrap();
    assert_eq!(
        results,
        vec![Err((
            "admin-a".to_owned(),
            RDKafkaErrorCode::InvalidPartitions
        ))]
    );

    // Delete, then deleting again is an unknown topic.
    let results = admin.delete_topics(&["admin-a"], &opts).await.unwrap();
    assert_eq!(results, vec![Ok("admin-a".to_owned())]);
    assert_eq!(partition_count(&bootstrap, "admin-a").unwrap(), None);
    let results = admin.delete_topics(&["admin-a"], &opts).await.unwrap();
    assert_eq!(
        results,
        vec![Err((
            "admin-a".to_owned(),
            RDKafkaErrorCode::UnknownTopicOrPartition
        ))]
    );
}

/// Polls Metadata until `topic` is listed with `partitions` partitions.
fn await_topic(bootstrap: &str, topic: &str, partitions: usize) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let count = partition_count(bootstrap, topic).unwrap();
        if count == Some(partitions) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{topic}: expected {partitions} partitions, Metadata says {count:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_create_on_metadata_and_produce() {
    let node = TestNode::start(NodeOptions::default().default_partitions(3)).unwrap();
    let bootstrap = node.bootstrap();

    // Produce to a topic nobody created.
    let p = producer(&bootstrap, &[]).unwrap();
    let delivery = p
        .send(
            FutureRecord::to("auto-produced").key("k").payload("v"),
            CLIENT_TIMEOUT,
        )
        .await
        .map_err(|(e, _)| e)
        .unwrap();
    assert_eq!(delivery.offset, 0);
    await_topic(&bootstrap, "auto-produced", 3);

    // Metadata that allows auto-creation creates the topic; one that does not, does not.
    let mut conn = Conn::connect(node.kafka_addr()).unwrap();
    let t = conn.metadata_topic("auto-meta", true).unwrap();
    assert!(
        t.error_code == 0 || t.error_code == 5,
        "Metadata(auto-meta, allow) error {} (want NONE or LEADER_NOT_AVAILABLE)",
        t.error_code
    );
    await_topic(&bootstrap, "auto-meta", 3);
    let t = conn.metadata_topic("auto-meta-denied", false).unwrap();
    assert_eq!(t.error_code, 3, "Metadata(allow=false) for a missing topic");
    assert_eq!(
        partition_count(&bootstrap, "auto-meta-denied").unwrap(),
        None
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_create_disabled() {
    let node = TestNode::start(NodeOptions::default().auto_create_topics(false)).unwrap();
    let bootstrap = node.bootstrap();

    let mut conn = Conn::connect(node.kafka_addr()).unwrap();
    let t = conn.metadata_topic("not-auto", true).unwrap();
    assert_eq!(t.error_code, 3, "Metadata(allow) with auto-create disabled");
    assert_eq!(partition_count(&bootstrap, "not-auto").unwrap(), None);

    let p = producer(&bootstrap, &[("message.timeout.ms", "3000")]).unwrap();
    let result = p
        .send(
            FutureRecord::to("not-auto").key("k").payload("v"),
            CLIENT_TIMEOUT,
        )
        .await;
    assert!(
        result.is_err(),
        "produce to a missing topic succeeded: {result:?}"
    );
    assert_eq!(partition_count(&bootstrap, "not-auto").unwrap(), None);

    // Explicit creation still works, and then producing does.
    create_topic(&bootstrap, "not-auto", 2, &[]).await.unwrap();
    assert_eq!(partition_count(&bootstrap, "not-auto").unwrap(), Some(2));
    let p = producer(&bootstrap, &[]).unwrap();
    p.send(
        FutureRecord::to("not-auto").key("k").payload("v"),
        CLIENT_TIMEOUT,
    )
    .await
    .map_err(|(e, _)| e)
    .unwrap();
}
