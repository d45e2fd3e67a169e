//! Dynamic configs judged by Apache Kafka 4.3.1 (issue 19): the same raw requests against a
//! real Kafka and a default tierlog node, compared field by field
//! (`tierlog_tests::differential`):
//!
//! - `group_configs_match_kafka`: DescribeConfigs and IncrementalAlterConfigs of a consumer
//!   group (resource type 32, KIP-848's `consumer.session.timeout.ms` and
//!   `consumer.heartbeat.interval.ms`): defaults, every refusal (below/above the bounds, not a
//!   number, unknown name, the default group), the values after a change, and the heartbeat
//!   interval a member joining the group is then told.
//! - `broker_configs_match_kafka`: IncrementalAlterConfigs of the node and of the cluster
//!   default (dynamic ones stored, read-only ones refused with Kafka's INVALID_REQUEST,
//!   another node's id refused, custom names kept), DescribeConfigs of both afterwards
//!   (`broker.rack`, defaults and sources), and the effect: a cluster-wide `message.max.bytes`
//!   refuses a larger batch to a topic without its own `max.message.bytes`, and the topic
//!   reports the value with source DYNAMIC_DEFAULT_BROKER_CONFIG.
//!
//! `dynamic_broker_config_is_in_force_on_every_node` (tierlog only) sets the cluster default
//! through one node of two and sees the other enforce it, and a per-node value win there.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_configs_response::DescribeConfigsResult;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::{
    ConsumerGroupHeartbeatRequest, CreateTopicsRequest, DescribeConfigsRequest,
    FindCoordinatorRequest, IncrementalAlterConfigsRequest,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Compression;
use tierlog_tests::cluster::{ClusterOptions, TestCluster};
use tierlog_tests::differential::{
    Allowed, Fields, Pair, Report, allow, both, describe_configs_fields,
};
use tierlog_tests::groups::group_id;
use tierlog_tests::wait::{Poll, wait_for};
use tierlog_tests::wire::{Conn, encode_batch, topic_name};

const BROKER: i8 = 4;
const GROUP: i8 = 32;
const SET: i8 = 0;
const DELETE: i8 = 1;
const MESSAGE_TOO_LARGE: i16 = 10;
const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
const COORDINATOR_NOT_AVAILABLE: i16 = 15;
const NOT_COORDINATOR: i16 = 16;
/// How long a change may take to be in force (Kafka applies it through its controller).
const SETTLE: Duration = Duration::from_secs(30);

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_owned())
}

/// IncrementalAlterConfigs (v1) of one resource: its error code.
fn alter(
    conn: &mut Conn,
    resource_type: i8,
    name: &str,
    ops: &[(&str, i8, Option<&str>)],
) -> Result<i16> {
    let request = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(resource_type)
            .with_resource_name(s(name))
            .with_configs(
                ops.iter()
                    .map(|(k, op, v)| {
                        AlterableConfig::default()
                            .with_name(s(k))
                            .with_config_operation(*op)
                            .with_value(v.map(s))
                    })
                    .collect(),
            ),
    ]);
    let r = conn.request(&request, 1)?;
    Ok(r.responses
        .first()
        .context("no resource answered")?
        .error_code)
}

/// DescribeConfigs (v4, with synonyms) of one resource, limited to `keys` if given.
fn describe(
    conn: &mut Conn,
    resource_type: i8,
    name: &str,
    keys: Option<&[&str]>,
) -> Result<DescribeConfigsResult> {
    let request = DescribeConfigsRequest::default()
        .with_include_synonyms(true)
        .with_resources(vec![
            DescribeConfigsResource::default()
                .with_resource_type(resource_type)
                .with_resource_name(s(name))
                .with_configuration_keys(keys.map(|k| k.iter().map(|x| s(x)).collect())),
        ]);
    conn.request(&request, 4)?
        .results
        .into_iter()
        .next()
        .context("no resource described")
}

/// The fields of a DescribeConfigs result plus each config's synonyms by name and source.
fn described(r: &DescribeConfigsResult) -> Fields {
    let mut f = describe_configs_fields(r);
    for c in &r.configs {
        let synonyms: Vec<String> = c
            .synonyms
            .iter()
            .map(|x| format!("{}@{}", x.name.as_str(), x.source))
            .collect();
        f.set(
            format!("config[{}].synonym_names", c.name.as_str()),
            synonyms.join(","),
        );
    }
    f
}

/// Group configs of Kafka 4.3.1 that tierlog does not have.
const GROUP_ALLOWED: &[Allowed] = &[
    allow(
        "config[share.*",
        "tierlog has no share groups (KIP-932): no share.* group configs",
    ),
    allow(
        "config[streams.*",
        "tierlog has no streams groups (KIP-1071): no streams.* group configs",
    ),
    allow(
        "config[consumer.assignment.interval.ms]*",
        "tierlog computes a consumer group's target assignment at once, on the heartbeat that \
         changes the group: there is no assignment interval to configure",
    ),
];

#[test]
fn group_configs_match_kafka() -> Result<()> {
    let Some(pair) = Pair::start_or_skip("group_configs_match_kafka")? else {
        return Ok(());
    };
    let mut sides = pair.sides()?;
    let mut report = Report::new();
    let group = "dc-group";
    let r = both(&mut sides, |side| {
        Ok(described(&describe(&mut side.conn, GROUP, group, None)?))
    })?;
    report.compare(
        "DescribeConfigs of a group without configs",
        &r,
        GROUP_ALLOWED,
    );

    let session = "consumer.session.timeout.ms";
    let heartbeat = "consumer.heartbeat.interval.ms";
    for (label, name, ops) in [
        (
            "session timeout 50000",
            group,
            vec![(session, SET, Some("50000"))],
        ),
        (
            "session timeout below the minimum",
            group,
            vec![(session, SET, Some("1000"))],
        ),
        (
            "session timeout above the maximum",
            group,
            vec![(session, SET, Some("70000"))],
        ),
        (
            "heartbeat below the minimum",
            group,
            vec![(heartbeat, SET, Some("1000"))],
        ),
        (
            "heartbeat not a number",
            group,
            vec![(heartbeat, SET, Some("abc"))],
        ),
        (
            "unknown group config",
            group,
            vec![("nope.config", SET, Some("1"))],
        ),
        (
            "the default group",
            "",
            vec![(heartbeat, SET, Some("6000"))],
        ),
        (
            "heartbeat 6000",
            group,
            vec![(heartbeat, SET, Some("6000"))],
        ),
        (
            "delete of an unset config",
            "dc-other",
            vec![(heartbeat, DELETE, None)],
        ),
    ] {
        let r = both(&mut sides, |side| {
            let mut f = Fields::new();
            f.set("error_code", alter(&mut side.conn, GROUP, name, &ops)?);
            Ok(f)
        })?;
        report.compare(&format!("IncrementalAlterConfigs group: {label}"), &r, &[]);
    }
    let keys = [session, heartbeat];
    let r = both(&mut sides, |side| {
        let conn = &mut side.conn;
        // Kafka applies a group config through its controller: wait until it shows.
        wait_for(
            &format!("{}: the group's configs", side.name),
            SETTLE,
            Duration::from_millis(50),
            || {
                let d = describe(conn, GROUP, group, Some(&keys))?;
                let set = d.configs.iter().filter(|c| c.config_source == 8).count();
                Ok(if set == 2 {
                    Poll::Ready(described(&d))
                } else {
                    Poll::Pending(format!("{set} of 2 set"))
                })
            },
        )
    })?;
    report.compare("DescribeConfigs of the group after the changes", &r, &[]);

    // A member joining the group is told the group's heartbeat interval.
    let r = both(&mut sides, |side| {
        let request = ConsumerGroupHeartbeatRequest::default()
            .with_group_id(group_id(group))
            .with_member_id(s("dc-member-0001"))
            .with_member_epoch(0)
            .with_rebalance_timeout_ms(30_000)
            .with_subscribed_topic_names(Some(vec![topic_name("dc-none")]))
            .with_topic_partitions(Some(vec![]));
        let conn = &mut side.conn;
        // Kafka's coordinator loads the group's partition after a first FindCoordinator.
        let hb = wait_for(
            &format!("{}: a coordinator for {group}", side.name),
            SETTLE,
            Duration::from_millis(100),
            || {
                let find = FindCoordinatorRequest::default()
                    .with_key_type(0)
                    .with_coordinator_keys(vec![s(group)]);
                conn.request(&find, 4)?;
                let hb = conn.request(&request, 1)?;
                Ok(match hb.error_code {
                    COORDINATOR_LOAD_IN_PROGRESS | COORDINATOR_NOT_AVAILABLE | NOT_COORDINATOR => {
                        Poll::Pending(format!("error {}", hb.error_code))
                    }
                    _ => Poll::Ready(hb),
                })
            },
        )?;
        let mut f = Fields::new();
        f.set("error_code", hb.error_code);
        f.set("heartbeat_interval_ms", hb.heartbeat_interval_ms);
        Ok(f)
    })?;
    report.compare("ConsumerGroupHeartbeat join of the group", &r, &[]);
    report.finish();
    Ok(())
}

/// Node settings compared after the changes: the dynamic ones set, defaults, the rack.
const NODE_KEYS: &[&str] = &[
    "log.retention.ms",
    "log.retention.bytes",
    "log.segment.bytes",
    "message.max.bytes",
    "log.cleanup.policy",
    "log.retention.hours",
    "broker.rack",
    "auto.create.topics.enable",
    "default.replication.factor",
    "nope.config",
];

const BROKER_ALLOWED: &[Allowed] = &[allow(
    "config[default.replication.factor]*",
    "tierlog's default replication factor is 3 (capped by the live nodes), reported as the \
     node's setting; Kafka's is 1",
)];

/// A produce of one batch of one `bytes`-long record to `topic`/0: its error code.
fn produce_value(conn: &mut Conn, topic: &str, bytes: usize) -> Result<i16> {
    let value = vec![b'x'; bytes];
    let batch = encode_batch(&[(None, Some(value.as_slice()))], Compression::None, 0)?;
    Ok(conn.produce_v(topic, 0, batch, -1, 9)?.error_code)
}

/// Waits until a produce of `bytes` to `topic` through `conn` (of `who`) answers `want`.
fn await_produce(conn: &mut Conn, who: &str, topic: &str, bytes: usize, want: i16) -> Result<()> {
    wait_for(
        &format!("{who}: a {bytes}-byte record answered {want}"),
        SETTLE,
        Duration::from_millis(50),
        || {
            let got = produce_value(conn, topic, bytes)?;
            Ok(if got == want {
                Poll::Ready(())
            } else {
                Poll::Pending(format!("error {got}"))
            })
        },
    )
}

#[test]
fn broker_configs_match_kafka() -> Result<()> {
    let Some(pair) = Pair::start_or_skip("broker_configs_match_kafka")? else {
        return Ok(());
    };
    let mut sides = pair.sides()?;
    let mut report = Report::new();
    let r = both(&mut sides, |side| {
        let id = side.node_id.to_string();
        Ok(described(&describe(
            &mut side.conn,
            BROKER,
            &id,
            Some(NODE_KEYS),
        )?))
    })?;
    report.compare("DescribeConfigs of the node, defaults", &r, BROKER_ALLOWED);

    for (label, this_node, ops) in [
        (
            "cluster log.retention.ms",
            false,
            vec![("log.retention.ms", SET, Some("7200000"))],
        ),
        (
            "node message.max.bytes",
            true,
            vec![("message.max.bytes", SET, Some("2000000"))],
        ),
        (
            "node log.segment.bytes",
            true,
            vec![("log.segment.bytes", SET, Some("2000000"))],
        ),
        (
            "node.id (read-only)",
            true,
            vec![("node.id", SET, Some("5"))],
        ),
        (
            "cluster broker.rack (read-only)",
            false,
            vec![("broker.rack", SET, Some("r1"))],
        ),
        (
            "num.partitions (read-only)",
            true,
            vec![("num.partitions", SET, Some("3"))],
        ),
        (
            "default.replication.factor (read-only)",
            true,
            vec![("default.replication.factor", SET, Some("2"))],
        ),
        (
            "a custom config",
            true,
            vec![("nope.config", SET, Some("1"))],
        ),
        (
            "a bad value",
            true,
            vec![("log.retention.ms", SET, Some("abc"))],
        ),
    ] {
        let r = both(&mut sides, |side| {
            let name = if this_node {
                side.node_id.to_string()
            } else {
                String::new()
            };
            let mut f = Fields::new();
            f.set("error_code", alter(&mut side.conn, BROKER, &name, &ops)?);
            Ok(f)
        })?;
        report.compare(&format!("IncrementalAlterConfigs node: {label}"), &r, &[]);
    }
    let r = both(&mut sides, |side| {
        let other = (side.node_id + 7).to_string();
        let mut f = Fields::new();
        let ops = [("log.retention.ms", SET, Some("1000"))];
        f.set("error_code", alter(&mut side.conn, BROKER, &other, &ops)?);
        Ok(f)
    })?;
    report.compare("IncrementalAlterConfigs of another node's id", &r, &[]);

    let r = both(&mut sides, |side| {
        let id = side.node_id.to_string();
        let conn = &mut side.conn;
        wait_for(
            &format!("{}: the node's dynamic configs", side.name),
            SETTLE,
            Duration::from_millis(50),
            || {
                let d = describe(conn, BROKER, &id, Some(NODE_KEYS))?;
                let dynamic = d
                    .configs
                    .iter()
                    .filter(|c| matches!(c.config_source, 2 | 3))
                    .count();
                Ok(if dynamic == 4 {
                    Poll::Ready(described(&d))
                } else {
                    Poll::Pending(format!("{dynamic} of 4 dynamic"))
                })
            },
        )
    })?;
    report.compare(
        "DescribeConfigs of the node after the changes",
        &r,
        BROKER_ALLOWED,
    );
    let r = both(&mut sides, |side| {
        Ok(described(&describe(&mut side.conn, BROKER, "", None)?))
    })?;
    report.compare(
        "DescribeConfigs of the cluster default",
        &r,
        &[allow(
            "config[min.insync.replicas]*",
            "Kafka 4's controller writes a cluster-wide min.insync.replicas at bootstrap; \
             tierlog's comes from the node's --min-insync-replicas",
        )],
    );

    // The effect: a cluster-wide message.max.bytes caps a topic that does not set its own.
    let topic = "dc-effect";
    both(&mut sides, |side| {
        let request = CreateTopicsRequest::default().with_topics(vec![
            kafka_protocol::messages::create_topics_request::CreatableTopic::default()
                .with_name(topic_name(topic))
                .with_num_partitions(1)
                .with_replication_factor(1),
        ]);
        let r = side.conn.request(&request, 7)?;
        ensure!(r.topics[0].error_code == 0, "{}: create {topic}", side.name);
        side.await_topic(topic, 1)?;
        await_produce(&mut side.conn, side.name, topic, 2_000, 0)
    })?;
    let r = both(&mut sides, |side| {
        let mut f = Fields::new();
        let ops = [("message.max.bytes", SET, Some("1024"))];
        f.set("error_code", alter(&mut side.conn, BROKER, "", &ops)?);
        // The node's own value (2000000, set above) wins over the cluster default: remove it.
        let id = side.node_id.to_string();
        let ops = [("message.max.bytes", DELETE, None)];
        f.set("node_error_code", alter(&mut side.conn, BROKER, &id, &ops)?);
        await_produce(&mut side.conn, side.name, topic, 2_000, MESSAGE_TOO_LARGE)?;
        let d = describe(&mut side.conn, 2, topic, Some(&["max.message.bytes"]))?;
        f.nest("topic", described(&d));
        Ok(f)
    })?;
    report.compare(
        "a cluster-wide message.max.bytes refuses a larger batch",
        &r,
        &[],
    );
    both(&mut sides, |side| {
        let ops = [("message.max.bytes", DELETE, None)];
        ensure!(alter(&mut side.conn, BROKER, "", &ops)? == 0);
        await_produce(&mut side.conn, side.name, topic, 2_000, 0)
    })?;
    report.finish();
    Ok(())
}

#[test]
fn dynamic_broker_config_is_in_force_on_every_node() -> Result<()> {
    let opts = ClusterOptions {
        nodes: 2,
        ..ClusterOptions::default()
    };
    let Some(cluster) = TestCluster::start_or_skip("dynamic_broker_config", opts)? else {
        return Ok(());
    };
    cluster.wait_brokers(2)?;
    let mut conns = [
        Conn::connect(cluster.node(1).kafka_addr())?,
        Conn::connect(cluster.node(2).kafka_addr())?,
    ];
    let topic = "dc-cluster";
    let request = CreateTopicsRequest::default().with_topics(vec![
        kafka_protocol::messages::create_topics_request::CreatableTopic::default()
            .with_name(topic_name(topic))
            .with_num_partitions(1)
            .with_replication_factor(1),
    ]);
    ensure!(conns[0].request(&request, 7)?.topics[0].error_code == 0);
    let leader = cluster.wait_leader(topic, 0)?;
    let (lead, other) = if leader == 1 { (0, 1) } else { (1, 0) };
    let leader_name = format!("leader {leader}");
    let produce =
        |conn: &mut Conn, want: i16| await_produce(conn, &leader_name, topic, 2_000, want);
    produce(&mut conns[lead], 0)?;
    // Set through the node that does not lead the partition: the leader enforces it.
    let ops = [("message.max.bytes", SET, Some("1024"))];
    ensure!(alter(&mut conns[other], BROKER, "", &ops)? == 0);
    produce(&mut conns[lead], MESSAGE_TOO_LARGE)?;
    // The leader's own value wins over the cluster default.
    let leader_id = leader.to_string();
    let ops = [("message.max.bytes", SET, Some("100000"))];
    ensure!(
        alter(&mut conns[other], BROKER, &leader_id, &ops)? != 0,
        "only the node itself takes its id"
    );
    ensure!(alter(&mut conns[lead], BROKER, &leader_id, &ops)? == 0);
    produce(&mut conns[lead], 0)?;
    // Both nodes describe the same cluster default.
    for conn in &mut conns {
        let d = describe(conn, BROKER, "", None)?;
        let values: Vec<(String, Option<String>)> = d
            .configs
            .iter()
            .map(|c| (c.name.to_string(), c.value.as_deref().map(str::to_owned)))
            .collect();
        ensure!(
            values == vec![("message.max.bytes".to_owned(), Some("1024".to_owned()))],
            "{values:?}"
        );
    }
    Ok(())
}
