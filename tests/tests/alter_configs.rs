//! The legacy AlterConfigs API (key 33, v0–2) over a raw socket, as kafkajs, confluent-kafka's
//! `alter_configs` and kafka-python's non-incremental path send it: each request replaces the
//! whole set of a topic's overrides, so a config it does not name reverts to its default.
//!
//! Checked on one node at every version (set two, then one; unknown topic; invalid value;
//! validate_only), in a two-node cluster (a change made through one node is what the other
//! describes, since configs live in the metadata store), and against Apache Kafka: the same
//! requests, per-resource error code by error code.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use kafka_protocol::messages::alter_configs_request::{AlterConfigsResource, AlterableConfig};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::{
    AlterConfigsRequest, CreateTopicsRequest, DescribeConfigsRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use tierlog_tests::cluster::{ClusterOptions, TestCluster};
use tierlog_tests::kafka::{Broker, KafkaServer};
use tierlog_tests::wait::{Poll, wait_for};
use tierlog_tests::wire::Conn;
use tierlog_tests::{NodeOptions, TestNode};

const TOPIC_RESOURCE: i8 = 2;
const BROKER_RESOURCE: i8 = 4;
/// DescribeConfigs' source of a topic-level override (DYNAMIC_TOPIC_CONFIG).
const SOURCE_TOPIC: i8 = 1;
const NONE: i16 = 0;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const INVALID_CONFIG: i16 = 40;
const INVALID_REQUEST: i16 = 42;
/// How long a change may take to show through another node (or Kafka's metadata cache).
const SETTLE: Duration = Duration::from_secs(30);

/// One resource of an AlterConfigs request: type, name, and (name, value) configs.
type Resource<'a> = (i8, &'a str, &'a [(&'a str, Option<&'a str>)]);

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_owned())
}

/// Sends one AlterConfigs request at `version`; the (error code, message) of each resource.
fn alter(
    conn: &mut Conn,
    version: i16,
    resources: &[Resource<'_>],
    validate_only: bool,
) -> Vec<(i16, Option<String>)> {
    let request = AlterConfigsRequest::default()
        .with_validate_only(validate_only)
        .with_resources(
            resources
                .iter()
                .map(|(kind, name, configs)| {
                    AlterConfigsResource::default()
                        .with_resource_type(*kind)
                        .with_resource_name(s(name))
                        .with_configs(
                            configs
                                .iter()
                                .map(|(k, v)| {
                                    AlterableConfig::default()
                                        .with_name(s(k))
                                        .with_value(v.map(s))
                                })
                                .collect(),
                        )
                })
                .collect(),
        );
    let response = conn.request(&request, version).unwrap();
    assert_eq!(response.responses.len(), resources.len(), "{response:?}");
    // Answered in request order (Kafka reassembles its answer in that order too).
    for (r, (kind, name, _)) in response.responses.iter().zip(resources) {
        assert_eq!((r.resource_type, r.resource_name.as_str()), (*kind, *name));
    }
    response
        .responses
        .iter()
        .map(|r| {
            (
                r.error_code,
                r.error_message.as_ref().map(|m| m.to_string()),
            )
        })
        .collect()
}

/// The error code of the only resource of a request.
fn alter_code(conn: &mut Conn, version: i16, resource: Resource<'_>, validate_only: bool) -> i16 {
    alter(conn, version, &[resource], validate_only)[0].0
}

/// The topic-level overrides of `topic`, via DescribeConfigs v4.
fn overrides(conn: &mut Conn, topic: &str) -> BTreeMap<String, String> {
    let request = DescribeConfigsRequest::default().with_resources(vec![
        DescribeConfigsResource::default()
            .with_resource_type(TOPIC_RESOURCE)
            .with_resource_name(s(topic)),
    ]);
    let response = conn.request(&request, 4).unwrap();
    let result = &response.results[0];
    assert_eq!(result.error_code, NONE, "{:?}", result.error_message);
    result
        .configs
        .iter()
        .filter(|c| c.config_source == SOURCE_TOPIC)
        .map(|c| {
            (
                c.name.to_string(),
                c.value.as_ref().map(|v| v.to_string()).unwrap_or_default(),
            )
        })
        .collect()
}

/// Waits until `topic`'s overrides, as `conn`'s broker describes them, are `want`.
fn await_overrides(conn: &mut Conn, topic: &str, want: &[(&str, &str)]) {
    let want: BTreeMap<String, String> = want
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    wait_for(
        &format!("{topic} overridden with exactly {want:?}"),
        SETTLE,
        Duration::from_millis(50),
        || {
            let now = overrides(conn, topic);
            Ok(if now == want {
                Poll::Ready(())
            } else {
                Poll::Pending(format!("{now:?}"))
            })
        },
    )
    .unwrap();
}

/// Creates `topic` (one partition, one replica) with CreateTopics v7.
fn create_topic(conn: &mut Conn, topic: &str) {
    let request = CreateTopicsRequest::default()
        .with_timeout_ms(30_000)
        .with_topics(vec![
            CreatableTopic::default()
                .with_name(TopicName(s(topic)))
                .with_num_partitions(1)
                .with_replication_factor(1),
        ]);
    let response = conn.request(&request, 7).unwrap();
    let t = &response.topics[0];
    assert_eq!(
        t.error_code, NONE,
        "creating {topic}: {:?}",
        t.error_message
    );
}

#[test]
fn legacy_alter_configs_replaces_the_whole_set_at_every_version() {
    let node = TestNode::start(NodeOptions::default()).unwrap();
    let mut conn = Conn::connect(node.kafka_addr()).unwrap();
    for v in 0..=2 {
        let topic = format!("legacy-v{v}");
        let topic = topic.as_str();
        create_topic(&mut conn, topic);

        // Two configs set: both are overrides.
        let two = [
            ("retention.ms", Some("7200000")),
            ("max.message.bytes", Some("65536")),
        ];
        assert_eq!(
            alter(&mut conn, v, &[(TOPIC_RESOURCE, topic, &two)], false),
            vec![(NONE, None)],
            "v{v}"
        );
        await_overrides(
            &mut conn,
            topic,
            &[("max.message.bytes", "65536"), ("retention.ms", "7200000")],
        );

        // Only one named: the other reverts to its default.
        let one = [("max.message.bytes", Some("131072"))];
        assert_eq!(
            alter_code(&mut conn, v, (TOPIC_RESOURCE, topic, &one), false),
            NONE
        );
        await_overrides(&mut conn, topic, &[("max.message.bytes", "131072")]);

        // validate_only: accepted, nothing changes, even a change that would drop everything.
        assert_eq!(
            alter_code(&mut conn, v, (TOPIC_RESOURCE, topic, &two), true),
            NONE
        );
        assert_eq!(
            alter_code(&mut conn, v, (TOPIC_RESOURCE, topic, &[]), true),
            NONE
        );
        await_overrides(&mut conn, topic, &[("max.message.bytes", "131072")]);

        // Refusals change nothing: an invalid value, an unknown name, a missing value, a
        // config named twice, an unknown topic, a node's static settings.
        let cases: [(Resource<'_>, i16); 6] = [
            (
                (
                    TOPIC_RESOURCE,
                    topic,
                    &[
                        ("retention.ms", Some("soon")),
                        ("segment.bytes", Some("1048576")),
                    ],
                ),
                INVALID_CONFIG,
            ),
            (
                (TOPIC_RESOURCE, topic, &[("no.such.config", Some("1"))]),
                INVALID_CONFIG,
            ),
            (
                (TOPIC_RESOURCE, topic, &[("retention.ms", None)]),
                INVALID_REQUEST,
            ),
            (
                (
                    TOPIC_RESOURCE,
                    topic,
                    &[
                        ("retention.ms", Some("1000")),
                        ("retention.ms", Some("2000")),
                    ],
                ),
                INVALID_REQUEST,
            ),
            (
                (
                    TOPIC_RESOURCE,
                    "no-such-topic",
                    &[("retention.ms", Some("1000"))],
                ),
                UNKNOWN_TOPIC_OR_PARTITION,
            ),
            (
                // A read-only node setting (Kafka: "Cannot update these configs dynamically").
                (BROKER_RESOURCE, "", &[("num.partitions", Some("3"))]),
                INVALID_REQUEST,
            ),
        ];
        for (resource, want) in cases {
            let got = alter(&mut conn, v, &[resource], false);
            assert_eq!(got[0].0, want, "v{v} {resource:?}: {:?}", got[0].1);
            assert!(
                got[0].1.is_some(),
                "v{v} {resource:?}: an error carries a message"
            );
        }
        await_overrides(&mut conn, topic, &[("max.message.bytes", "131072")]);

        // A resource named twice fails every copy and changes nothing (what Kafka's
        // ConfigAdminManager decides; Apache Kafka 4.3.1 then fails to encode that answer and
        // sends none, so this is not in the differential test below).
        let twice = [("retention.ms", Some("1000"))];
        let codes: Vec<i16> = alter(
            &mut conn,
            v,
            &[
                (TOPIC_RESOURCE, topic, &twice),
                (TOPIC_RESOURCE, topic, &twice),
            ],
            false,
        )
        .into_iter()
        .map(|(code, _)| code)
        .collect();
        assert_eq!(codes, vec![INVALID_REQUEST, INVALID_REQUEST]);
        await_overrides(&mut conn, topic, &[("max.message.bytes", "131072")]);

        // Resources of one request succeed or fail alone.
        let good = [("segment.bytes", Some("2097152"))];
        let codes: Vec<i16> = alter(
            &mut conn,
            v,
            &[
                (TOPIC_RESOURCE, "no-such-topic", &good),
                (TOPIC_RESOURCE, topic, &good),
            ],
            false,
        )
        .into_iter()
        .map(|(code, _)| code)
        .collect();
        assert_eq!(codes, vec![UNKNOWN_TOPIC_OR_PARTITION, NONE]);
        await_overrides(&mut conn, topic, &[("segment.bytes", "2097152")]);

        // No configs at all: every override reverts.
        assert_eq!(
            alter_code(&mut conn, v, (TOPIC_RESOURCE, topic, &[]), false),
            NONE
        );
        await_overrides(&mut conn, topic, &[]);
    }
}

#[test]
fn legacy_alter_configs_in_a_cluster_is_seen_by_every_node() {
    let opts = ClusterOptions {
        nodes: 2,
        ..ClusterOptions::default()
    };
    let Some(cluster) =
        TestCluster::start_or_skip("legacy_alter_configs_in_a_cluster", opts).unwrap()
    else {
        return;
    };
    cluster.wait_brokers(2).unwrap();
    let mut one = Conn::connect(cluster.node(1).kafka_addr()).unwrap();
    let mut two = Conn::connect(cluster.node(2).kafka_addr()).unwrap();
    create_topic(&mut one, "legacy-cluster");
    cluster.wait_leader("legacy-cluster", 0).unwrap();

    let both = [
        ("retention.ms", Some("7200000")),
        ("cleanup.policy", Some("compact")),
    ];
    assert_eq!(
        alter_code(
            &mut one,
            1,
            (TOPIC_RESOURCE, "legacy-cluster", &both),
            false
        ),
        NONE
    );
    let want = [("cleanup.policy", "compact"), ("retention.ms", "7200000")];
    await_overrides(&mut one, "legacy-cluster", &want);
    await_overrides(&mut two, "legacy-cluster", &want);

    // Replaced through the other node: both see only what that request named.
    let only = [("retention.ms", Some("600000"))];
    assert_eq!(
        alter_code(
            &mut two,
            2,
            (TOPIC_RESOURCE, "legacy-cluster", &only),
            false
        ),
        NONE
    );
    await_overrides(&mut two, "legacy-cluster", &[("retention.ms", "600000")]);
    await_overrides(&mut one, "legacy-cluster", &[("retention.ms", "600000")]);
}

/// One differential step: what it sends, and whether tierlog must answer as Kafka does.
struct Step {
    what: &'static str,
    resources: Vec<Resource<'static>>,
    validate_only: bool,
    /// `Some(reason)` where tierlog knowingly answers differently.
    differs: Option<&'static str>,
}

fn step(
    what: &'static str,
    resources: &[Resource<'static>],
    validate_only: bool,
    differs: Option<&'static str>,
) -> Step {
    Step {
        what,
        resources: resources.to_vec(),
        validate_only,
        differs,
    }
}

/// Per resource: the error code and message.
type Answer = Vec<(i16, Option<String>)>;

/// Runs every step against `broker` (on a fresh topic `diff`); the answer to each, and the
/// topic's overrides at the end.
fn run_steps(broker: &dyn Broker, steps: &[Step]) -> (Vec<Answer>, BTreeMap<String, String>) {
    let mut conn = broker.connect().unwrap();
    create_topic(&mut conn, "diff");
    let codes = steps
        .iter()
        .map(|st| alter(&mut conn, 1, &st.resources, st.validate_only))
        .collect();
    // Kafka's brokers apply a change when the controller's record reaches them: wait for the
    // state both must reach.
    await_overrides(&mut conn, "diff", &[("max.message.bytes", "65536")]);
    (codes, overrides(&mut conn, "diff"))
}

#[test]
fn legacy_alter_configs_answers_as_apache_kafka_does() {
    let Some(kafka) =
        KafkaServer::start_or_skip("legacy_alter_configs_answers_as_apache_kafka_does").unwrap()
    else {
        return;
    };
    let node = TestNode::start(NodeOptions::default()).unwrap();
    let steps = vec![
        step(
            "set two",
            &[(
                TOPIC_RESOURCE,
                "diff",
                &[
                    ("retention.ms", Some("7200000")),
                    ("segment.bytes", Some("2097152")),
                ],
            )],
            false,
            None,
        ),
        step(
            "set one (the other reverts)",
            &[(TOPIC_RESOURCE, "diff", &[("retention.ms", Some("3600000"))])],
            false,
            None,
        ),
        step(
            "validate only",
            &[(
                TOPIC_RESOURCE,
                "diff",
                &[("cleanup.policy", Some("compact"))],
            )],
            true,
            None,
        ),
        step(
            "invalid number",
            &[(TOPIC_RESOURCE, "diff", &[("retention.ms", Some("soon"))])],
            false,
            None,
        ),
        step(
            "value below the minimum",
            &[(
                TOPIC_RESOURCE,
                "diff",
                &[("min.insync.replicas", Some("0"))],
            )],
            false,
            None,
        ),
        step(
            "value not among the choices",
            &[(
                TOPIC_RESOURCE,
                "diff",
                &[("cleanup.policy", Some("sometimes"))],
            )],
            false,
            None,
        ),
        step(
            "unknown config name",
            &[(TOPIC_RESOURCE, "diff", &[("no.such.config", Some("1"))])],
            false,
            None,
        ),
        step(
            "null value",
            &[(TOPIC_RESOURCE, "diff", &[("retention.ms", None)])],
            false,
            None,
        ),
        step(
            "config named twice",
            &[(
                TOPIC_RESOURCE,
                "diff",
                &[
                    ("retention.ms", Some("1000")),
                    ("retention.ms", Some("2000")),
                ],
            )],
            false,
            None,
        ),
        step(
            "unknown topic",
            &[(TOPIC_RESOURCE, "nope", &[("retention.ms", Some("1000"))])],
            false,
            None,
        ),
        step(
            "unknown topic, validate only",
            &[(TOPIC_RESOURCE, "nope", &[("retention.ms", Some("1000"))])],
            true,
            None,
        ),
        step(
            "unknown topic with an invalid value (validated first)",
            &[(TOPIC_RESOURCE, "nope", &[("retention.ms", Some("soon"))])],
            false,
            None,
        ),
        step(
            "unknown resource type",
            &[(99, "x", &[("a", Some("b"))])],
            false,
            None,
        ),
        step(
            "one bad resource, one good",
            &[
                (TOPIC_RESOURCE, "nope", &[("retention.ms", Some("1000"))]),
                (
                    TOPIC_RESOURCE,
                    "diff",
                    &[("max.message.bytes", Some("65536"))],
                ),
            ],
            false,
            None,
        ),
        step(
            "node config",
            // Cluster-wide; with min.insync.replicas, which Kafka 4 (with ELR) keeps set.
            &[(
                BROKER_RESOURCE,
                "",
                &[
                    ("min.insync.replicas", Some("1")),
                    ("log.retention.ms", Some("604800000")),
                ],
            )],
            false,
            None,
        ),
        step(
            "read-only node config",
            &[(BROKER_RESOURCE, "", &[("num.partitions", Some("3"))])],
            false,
            None,
        ),
        step(
            "node config of another node",
            &[(BROKER_RESOURCE, "7", &[("log.retention.ms", Some("1000"))])],
            false,
            None,
        ),
    ];
    let (kafka_answers, kafka_overrides) = run_steps(&kafka, &steps);
    let (tierlog_answers, tierlog_overrides) = run_steps(&node, &steps);
    // Compared: each resource's error code, and whether a message came with it (the texts
    // differ).
    let shape = |a: &Answer| -> Vec<(i16, bool)> {
        a.iter().map(|(code, m)| (*code, m.is_some())).collect()
    };
    let mut mismatches = Vec::new();
    for ((st, k), t) in steps.iter().zip(&kafka_answers).zip(&tierlog_answers) {
        let same = shape(k) == shape(t);
        match st.differs {
            None if !same => mismatches.push(format!("{}: kafka {k:?}, tierlog {t:?}", st.what)),
            Some(reason) if same => mismatches.push(format!(
                "{}: now answered as Kafka does (kafka {k:?}, tierlog {t:?}); drop the excuse \
                 `{reason}`",
                st.what
            )),
            _ => {}
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
    assert_eq!(tierlog_overrides, kafka_overrides);
}
