//! Differential tests (issue 11): each scenario runs against a real Apache Kafka 4.3.1 (KRaft,
//! one node) and against a default single tierlog node, over raw protocol requests, and the
//! answers are compared field by field (`tierlog_tests::differential`). Only what legitimately
//! differs between two clusters is normalised (node ids, ports, cluster and topic ids,
//! generated member ids); everything else must match, or be an allowed difference listed here
//! with its reason (and in tests/README.md).
//!
//! One Kafka and one tierlog per test function; each function groups many checks:
//! - `metadata_matches_kafka`: brokers, cluster id, controller, topics and partitions,
//!   authorized operations, unknown and invalid topics, auto-creation.
//! - `offsets_and_data_errors_match_kafka`: Produce answers, ListOffsets (earliest, latest,
//!   max timestamp, by timestamp before/between/after the records), Fetch (data, end, out of
//!   range, the response and partition limits of KIP-74), and the error codes of Produce/Fetch/ListOffsets to unknown topics and
//!   partitions, invalid acks, two batches for one partition and a batch over
//!   `max.message.bytes`.
//! - `topic_admin_and_configs_match_kafka`: CreateTopics answers (with configs) and errors,
//!   DescribeConfigs of a topic, CreatePartitions and DeleteTopics errors.
//! - `groups_match_kafka`: FindCoordinator, JoinGroup/SyncGroup answers and errors, Heartbeat,
//!   DescribeGroups, OffsetCommit errors, OffsetFetch, LeaveGroup, DeleteGroups.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use bytes::Bytes;
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_groups_response::DescribedGroup;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::list_offsets_response::ListOffsetsPartitionResponse;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::offset_fetch_response::OffsetFetchResponseGroup;
use kafka_protocol::messages::produce_response::PartitionProduceResponse;
use kafka_protocol::messages::{
    BrokerId, CreatePartitionsRequest, CreateTopicsRequest, DeleteGroupsRequest,
    DeleteTopicsRequest, DescribeConfigsRequest, DescribeGroupsRequest, FetchRequest,
    FindCoordinatorRequest, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest,
    ListOffsetsRequest, MetadataRequest,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Compression;
use tierlog_tests::differential::{
    Allowed, Fields, Pair, Report, Side, WIRE_CLIENT_ID, allow, both, create_topic_fields,
    describe_configs_fields, described_group_fields, error_message, fetch_fields, hex,
    list_offsets_fields, member_id_shape, metadata_fields, offset_fetch_fields, opt,
    produce_fields, topic_fields,
};
use tierlog_tests::groups::{
    self, consumer_assignment, consumer_subscription, group_id, sync_group,
};
use tierlog_tests::wait::{Poll, wait_for};
use tierlog_tests::wire::{KeyValue, encode_batch, topic_name};

/// Versions used on both sides: ones both brokers speak, naming topics by name (Produce v13+,
/// Fetch v13+ and OffsetCommit/OffsetFetch v10 switch to topic ids).
const METADATA_V: i16 = 12;
const CREATE_TOPICS_V: i16 = 7;
const LIST_OFFSETS_V: i16 = 8;
const PRODUCE_V: i16 = 9;
const FETCH_V: i16 = 12;
const DESCRIBE_CONFIGS_V: i16 = 4;
const CREATE_PARTITIONS_V: i16 = 3;
const DELETE_TOPICS_V: i16 = 6;
const FIND_COORDINATOR_V: i16 = 4;
const JOIN_GROUP_V: i16 = 9;
const SYNC_GROUP_V: i16 = 5;
const HEARTBEAT_V: i16 = 4;
const DESCRIBE_GROUPS_V: i16 = 5;
const OFFSET_COMMIT_V: i16 = 8;
const OFFSET_FETCH_V: i16 = 8;
const LEAVE_GROUP_V: i16 = 5;
const DELETE_GROUPS_V: i16 = 2;

/// The CreateTime base of the records produced in the ListOffsets scenario: fixed and in the
/// past (Kafka 4 refuses timestamps more than an hour in the future by default).
const T: i64 = 1_600_000_000_000;

fn str(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_owned())
}

// ---------------------------------------------------------------------------------------------
// Request helpers (the same request on either side).
// ---------------------------------------------------------------------------------------------

/// CreateTopics (v7) of one topic; returns its result.
fn create_topic(
    side: &mut Side,
    name: &str,
    partitions: i32,
    replication_factor: i16,
    configs: &[(&str, &str)],
    validate_only: bool,
) -> Result<CreatableTopicResult> {
    let request = CreateTopicsRequest::default()
        .with_timeout_ms(30_000)
        .with_validate_only(validate_only)
        .with_topics(vec![
            CreatableTopic::default()
                .with_name(topic_name(name))
                .with_num_partitions(partitions)
                .with_replication_factor(replication_factor)
                .with_configs(
                    configs
                        .iter()
                        .map(|(k, v)| {
                            CreatableTopicConfig::default()
                                .with_name(str(k))
                                .with_value(Some(str(v)))
                        })
                        .collect(),
                ),
        ]);
    let response = side.conn.request(&request, CREATE_TOPICS_V)?;
    response
        .topics
        .into_iter()
        .next()
        .context("CreateTopics answered no topic")
}

/// Creates a topic that must succeed and waits until every partition has a leader.
fn create_ready(
    side: &mut Side,
    name: &str,
    partitions: i32,
    configs: &[(&str, &str)],
) -> Result<Fields> {
    let r = create_topic(side, name, partitions, 1, configs, false)?;
    ensure!(
        r.error_code == 0,
        "{}: creating {name}: error {} ({:?})",
        side.name,
        r.error_code,
        r.error_message
    );
    side.await_topic(name, usize::try_from(partitions)?)?;
    Ok(create_topic_fields(&r))
}

fn metadata(side: &mut Side, request: &MetadataRequest, version: i16) -> Result<Fields> {
    let m = side.conn.request(request, version)?;
    Ok(metadata_fields(side, &m, version))
}

/// Metadata of `topics`, auto-creation not allowed (the protocol's default allows it).
fn metadata_of(topics: &[&str]) -> MetadataRequest {
    MetadataRequest::default()
        .with_allow_auto_topic_creation(false)
        .with_topics(Some(
            topics
                .iter()
                .map(|t| MetadataRequestTopic::default().with_name(Some(topic_name(t))))
                .collect(),
        ))
}

/// ListOffsets (v`version`) of one partition at `timestamp`.
fn list_offsets(
    side: &mut Side,
    version: i16,
    topic: &str,
    partition: i32,
    timestamp: i64,
) -> Result<ListOffsetsPartitionResponse> {
    let request = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![
            ListOffsetsTopic::default()
                .with_name(topic_name(topic))
                .with_partitions(vec![
                    ListOffsetsPartition::default()
                        .with_partition_index(partition)
                        .with_timestamp(timestamp)
                        .with_current_leader_epoch(-1),
                ]),
        ]);
    let r = side.conn.request(&request, version)?;
    r.topics
        .into_iter()
        .flat_map(|t| t.partitions)
        .find(|p| p.partition_index == partition)
        .context("ListOffsets answered no partition")
}

/// Produce (v9) of one batch with `acks`; the partition's answer.
fn produce(
    side: &mut Side,
    topic: &str,
    partition: i32,
    batch: Bytes,
    acks: i16,
) -> Result<PartitionProduceResponse> {
    side.conn
        .produce_v(topic, partition, batch, acks, PRODUCE_V)
}

/// Fetch (v12, sessionless, no wait) of one partition from `offset`; the partition's answer
/// and the top-level error code.
fn fetch(
    side: &mut Side,
    topic: &str,
    partition: i32,
    offset: i64,
) -> Result<(i16, PartitionData)> {
    let request = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_isolation_level(0)
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic(topic_name(topic))
                .with_partitions(vec![
                    FetchPartition::default()
                        .with_partition(partition)
                        .with_fetch_offset(offset)
                        .with_current_leader_epoch(-1)
                        .with_log_start_offset(-1)
                        .with_partition_max_bytes(1 << 20),
                ]),
        ]);
    let r = side.conn.request(&request, FETCH_V)?;
    let p = r
        .responses
        .into_iter()
        .flat_map(|t| t.partitions)
        .find(|p| p.partition_index == partition)
        .context("Fetch answered no partition")?;
    Ok((r.error_code, p))
}

/// Fetch (v12, sessionless, no wait) of partitions 0 and 1 of `topic` from offset 0 under
/// the given limits; per partition its error and the base offsets of the whole batches
/// returned (a trailing partial batch is left out).
fn fetch_whole_batches(
    side: &mut Side,
    topic: &str,
    max_bytes: i32,
    partition_max_bytes: i32,
) -> Result<Fields> {
    let request = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(max_bytes)
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic(topic_name(topic))
                .with_partitions(
                    (0..2)
                        .map(|p| {
                            FetchPartition::default()
                                .with_partition(p)
                                .with_fetch_offset(0)
                                .with_current_leader_epoch(-1)
                                .with_log_start_offset(-1)
                                .with_partition_max_bytes(partition_max_bytes)
                        })
                        .collect(),
                ),
        ]);
    let r = side.conn.request(&request, FETCH_V)?;
    let mut f = Fields::new();
    f.set("error_code", r.error_code);
    for p in r.responses.iter().flat_map(|t| &t.partitions) {
        let mut bases = Vec::new();
        let mut rest = p.records.as_deref().unwrap_or_default();
        while let (Some(base), Some(len)) = (rest.get(..8), rest.get(8..12)) {
            let base = i64::from_be_bytes(base.try_into()?);
            let len = 12 + usize::try_from(i32::from_be_bytes(len.try_into()?))?;
            if rest.len() < len {
                break;
            }
            bases.push(base.to_string());
            rest = &rest[len..];
        }
        let key = format!("partition[{}]", p.partition_index);
        f.set(format!("{key}.error_code"), p.error_code);
        f.set(
            format!("{key}.whole_batches"),
            format!("[{}]", bases.join(",")),
        );
    }
    Ok(f)
}

fn describe_configs(
    side: &mut Side,
    resource_type: i8,
    name: &str,
    keys: Option<&[&str]>,
    documentation: bool,
) -> Result<Fields> {
    let request = DescribeConfigsRequest::default()
        .with_include_documentation(documentation)
        .with_include_synonyms(false)
        .with_resources(vec![
            DescribeConfigsResource::default()
                .with_resource_type(resource_type)
                .with_resource_name(str(name))
                .with_configuration_keys(keys.map(|k| k.iter().map(|x| str(x)).collect())),
        ]);
    let r = side.conn.request(&request, DESCRIBE_CONFIGS_V)?;
    let result = r
        .results
        .into_iter()
        .next()
        .context("DescribeConfigs answered no resource")?;
    Ok(describe_configs_fields(&result))
}

// ---------------------------------------------------------------------------------------------
// Metadata.
// ---------------------------------------------------------------------------------------------

#[test]
fn metadata_matches_kafka() -> Result<()> {
    let Some(pair) = Pair::start_or_skip("metadata_matches_kafka")? else {
        return Ok(());
    };
    let started = Instant::now();
    let mut sides = pair.sides()?;
    let mut report = Report::new();

    // A fresh cluster: no topics at all (Kafka's internal topics appear only once used).
    let r = both(&mut sides, |s| {
        metadata(s, &MetadataRequest::default().with_topics(None), METADATA_V)
    })?;
    report.compare("Metadata v12, all topics, fresh cluster", &r, &[]);

    let r = both(&mut sides, |s| create_ready(s, "diff-meta", 3, &[]))?;
    report.compare("CreateTopics diff-meta (3 partitions)", &r, CONFIG_ALLOWED);

    // Every topic, without and with authorized operations; v10 also carries the cluster's.
    let r = both(&mut sides, |s| {
        metadata(s, &MetadataRequest::default().with_topics(None), METADATA_V)
    })?;
    report.compare("Metadata v12, all topics", &r, &[]);
    let r = both(&mut sides, |s| {
        metadata(
            s,
            &metadata_of(&["diff-meta"]).with_include_topic_authorized_operations(true),
            METADATA_V,
        )
    })?;
    report.compare("Metadata v12, topic authorized operations", &r, &[]);
    let r = both(&mut sides, |s| {
        metadata(
            s,
            &metadata_of(&["diff-meta"])
                .with_include_topic_authorized_operations(true)
                .with_include_cluster_authorized_operations(true),
            10,
        )
    })?;
    report.compare(
        "Metadata v10, topic and cluster authorized operations",
        &r,
        &[],
    );
    // v1 has no auto-creation flag (it always allows it): the topic exists here.
    let v1 = MetadataRequest::default().with_topics(Some(vec![
        MetadataRequestTopic::default().with_name(Some(topic_name("diff-meta"))),
    ]));
    let r = both(&mut sides, |s| metadata(s, &v1, 1))?;
    report.compare("Metadata v1, one topic", &r, &[]);

    // Unknown topics: auto-creation not allowed, an invalid name, and (v12) a topic id.
    let r = both(&mut sides, |s| {
        metadata(s, &metadata_of(&["diff-missing"]), METADATA_V)
    })?;
    report.compare("Metadata v12, unknown topic, no auto-creation", &r, &[]);
    let r = both(&mut sides, |s| {
        metadata(
            s,
            &metadata_of(&["bad name!"]).with_allow_auto_topic_creation(true),
            METADATA_V,
        )
    })?;
    report.compare("Metadata v12, invalid topic name, auto-creation", &r, &[]);
    let r = both(&mut sides, |s| {
        metadata(s, &metadata_of(&["diff-missing", "diff-meta"]), METADATA_V)
    })?;
    report.compare("Metadata v12, unknown and known topic", &r, &[]);

    // Auto-creation: the first answer, then the created topic once it has settled.
    let r = both(&mut sides, |s| {
        metadata(
            s,
            &metadata_of(&["diff-auto"]).with_allow_auto_topic_creation(true),
            METADATA_V,
        )
    })?;
    report.compare(
        "Metadata v12, unknown topic, auto-creation (first answer)",
        &r,
        &[allow(
            "topic[diff-auto].*",
            "tierlog creates the topic before answering and reports it ready; Kafka's broker \
             forwards the creation to its controller and answers before it is done",
        )],
    );
    let r = both(&mut sides, |s| {
        let t = s.await_topic("diff-auto", 1)?;
        Ok(topic_fields(s, &t))
    })?;
    report.compare("Metadata v12, auto-created topic (settled)", &r, &[]);

    eprintln!(
        "metadata_matches_kafka: compared in {:?}",
        started.elapsed()
    );
    report.finish();
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// ListOffsets, Produce and Fetch.
// ---------------------------------------------------------------------------------------------

#[test]
fn offsets_and_data_errors_match_kafka() -> Result<()> {
    let Some(pair) = Pair::start_or_skip("offsets_and_data_errors_match_kafka")? else {
        return Ok(());
    };
    let started = Instant::now();
    let mut sides = pair.sides()?;
    let mut report = Report::new();
    let topic = "diff-offsets";
    both(&mut sides, |s| create_ready(s, topic, 2, &[]))?;
    both(&mut sides, |s| {
        create_ready(s, "diff-small", 1, &[("max.message.bytes", "1024")])
    })?;

    // Empty partition first.
    for (label, ts) in [("earliest", -2), ("latest", -1), ("max timestamp", -3)] {
        let r = both(&mut sides, |s| {
            Ok(list_offsets_fields(&list_offsets(
                s,
                LIST_OFFSETS_V,
                topic,
                0,
                ts,
            )?))
        })?;
        report.compare(&format!("ListOffsets v8 {label}, empty partition"), &r, &[]);
    }

    // Three batches with CreateTime timestamps: T..T+2 (offsets 0-2), T+100..T+101 (3-4), and
    // T+50 (5): the largest timestamp is not in the last batch.
    let batches: [(usize, i64); 3] = [(3, T), (2, T + 100), (1, T + 50)];
    for (i, (count, ts)) in batches.iter().enumerate() {
        let values: Vec<Vec<u8>> = (0..*count)
            .map(|n| format!("v{i}-{n}").into_bytes())
            .collect();
        let records: Vec<KeyValue<'_>> =
            values.iter().map(|v| (None, Some(v.as_slice()))).collect();
        let batch = encode_batch(&records, Compression::None, *ts)?;
        let r = both(&mut sides, |s| {
            Ok(produce_fields(&produce(s, topic, 0, batch.clone(), -1)?))
        })?;
        report.compare(&format!("Produce v9 batch {i} (acks=all)"), &r, &[]);
    }

    for (label, ts) in [
        ("earliest", -2),
        ("latest", -1),
        ("max timestamp", -3),
        ("earliest local", -4),
        ("before every record", T - 10),
        ("first record's timestamp", T),
        ("inside the first batch", T + 1),
        ("between batches", T + 3),
        ("out-of-order record's timestamp", T + 50),
        ("between, past the out-of-order record", T + 60),
        ("largest timestamp", T + 101),
        ("after every record", T + 1_000),
    ] {
        let r = both(&mut sides, |s| {
            Ok(list_offsets_fields(&list_offsets(
                s,
                LIST_OFFSETS_V,
                topic,
                0,
                ts,
            )?))
        })?;
        report.compare(&format!("ListOffsets v8 {label} ({ts})"), &r, &[]);
    }
    for (label, ts) in [
        ("earliest", -2),
        ("latest", -1),
        ("between batches", T + 3),
        ("after every record", T + 1_000),
    ] {
        let r = both(&mut sides, |s| {
            Ok(list_offsets_fields(&list_offsets(s, 1, topic, 0, ts)?))
        })?;
        report.compare(&format!("ListOffsets v1 {label} ({ts})"), &r, &[]);
    }
    for (label, t, p) in [
        ("unknown topic", "diff-nope", 0),
        ("unknown partition", topic, 9),
        ("negative partition", topic, -1),
    ] {
        let r = both(&mut sides, |s| {
            Ok(list_offsets_fields(&list_offsets(
                s,
                LIST_OFFSETS_V,
                t,
                p,
                -1,
            )?))
        })?;
        report.compare(&format!("ListOffsets v8 {label}"), &r, &[]);
    }

    // Fetch: from the start, from the middle of a batch, at the end, and out of range.
    for (label, t, p, offset) in [
        ("from 0", topic, 0, 0),
        ("from 4 (inside a batch)", topic, 0, 4),
        ("at the log end", topic, 0, 6),
        ("past the log end", topic, 0, 100),
        ("negative offset", topic, 0, -5),
        ("empty partition", topic, 1, 0),
        ("unknown topic", "diff-nope", 0, 0),
        ("unknown partition", topic, 9, 0),
    ] {
        let r = both(&mut sides, |s| {
            let (top, p) = fetch(s, t, p, offset)?;
            let mut f = fetch_fields(&p);
            f.set("top_level_error_code", top);
            Ok(f)
        })?;
        report.compare(&format!("Fetch v12 {label}"), &r, &[]);
    }

    // Fetch limits (KIP-74): three ~2 KB batches in each of two partitions, fetched together
    // under a response limit (`max_bytes`) and a partition limit. Only whole batches are
    // compared: where a limit ends inside a batch Kafka sends that batch's first bytes, which
    // every client drops, and tierlog does not send them.
    let limits = "diff-limits";
    both(&mut sides, |s| create_ready(s, limits, 2, &[]))?;
    let value = vec![b'v'; 2_000];
    let batch = encode_batch(&[(None, Some(value.as_slice()))], Compression::None, T)?;
    let size = i32::try_from(batch.len())?;
    for p in 0..2 {
        for _ in 0..3 {
            both(&mut sides, |s| {
                let r = produce(s, limits, p, batch.clone(), -1)?;
                ensure!(
                    r.error_code == 0,
                    "{}: produce error {}",
                    s.name,
                    r.error_code
                );
                Ok(())
            })?;
        }
    }
    for (label, max_bytes, partition_max) in [
        ("max_bytes of one and a half batches", size * 3 / 2, 1 << 20),
        ("max_bytes smaller than a batch", 1, 1 << 20),
        ("partition_max_bytes smaller than a batch", 1 << 20, 1),
        (
            "max_bytes of three batches, two per partition",
            size * 3,
            size * 2,
        ),
        ("room for everything", 1 << 20, 1 << 20),
    ] {
        let r = both(&mut sides, |s| {
            fetch_whole_batches(s, limits, max_bytes, partition_max)
        })?;
        report.compare(&format!("Fetch v12 of two partitions, {label}"), &r, &[]);
    }

    // Produce errors.
    let one = encode_batch(&[(None, Some(b"x".as_slice()))], Compression::None, T)?;
    let big_value = vec![b'x'; 2_000];
    let big = encode_batch(&[(None, Some(big_value.as_slice()))], Compression::None, T)?;
    let two = [one.clone(), one.clone()].concat();
    for (label, t, p, batch, acks) in [
        (
            "two batches for one partition",
            topic,
            0,
            Bytes::from(two),
            1,
        ),
        ("unknown topic", "diff-nope", 0, one.clone(), 1),
        ("unknown partition", topic, 9, one.clone(), 1),
        ("invalid acks (2)", topic, 0, one.clone(), 2),
        (
            "batch over max.message.bytes",
            "diff-small",
            0,
            big.clone(),
            1,
        ),
    ] {
        let r = both(&mut sides, |s| {
            Ok(produce_fields(&produce(s, t, p, batch.clone(), acks)?))
        })?;
        report.compare(&format!("Produce v9 {label}"), &r, &[]);
    }
    // Nothing of the refused batches was stored.
    let r = both(&mut sides, |s| {
        let mut f = Fields::new();
        for (t, p) in [(topic, 0), ("diff-small", 0)] {
            let e = list_offsets(s, LIST_OFFSETS_V, t, p, -1)?;
            f.set(format!("{t}[{p}].log_end"), e.offset);
        }
        Ok(f)
    })?;
    report.compare("log ends after the refused produces", &r, &[]);

    eprintln!(
        "offsets_and_data_errors_match_kafka: compared in {:?}",
        started.elapsed()
    );
    report.finish();
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Topic administration and DescribeConfigs.
// ---------------------------------------------------------------------------------------------

/// Topic configs tierlog reports differently from Apache Kafka 4.3, each with the reason (also
/// in tests/README.md). Each must occur in every comparison it is given to.
const CONFIG_ALLOWED: &[Allowed] = &[
    allow(
        "*config[remote.storage.enable].value",
        "tierlog tiers every topic to object storage unless it opts out: its default is true, \
         Kafka's false",
    ),
    allow(
        "*config[message.timestamp.after.max.ms].value",
        "tierlog stores message.timestamp.after.max.ms and .before.max.ms but does not enforce \
         them, so it reports the limit it applies (none, Long.MAX); Kafka 4 refuses records \
         more than an hour ahead by default (3600000)",
    ),
    allow(
        "*config[min.insync.replicas].source",
        "Kafka 4's KRaft controller writes a cluster-wide min.insync.replicas at bootstrap \
         (DYNAMIC_DEFAULT_BROKER_CONFIG, 3); tierlog's comes from the node's \
         --min-insync-replicas (STATIC_BROKER_CONFIG, 4) or is the default (DEFAULT_CONFIG, 5)",
    ),
];

/// One CreateTopics case: label, topic name, partitions, replication factor, configs,
/// validate only.
type CreateCase<'a> = (&'a str, &'a str, i32, i16, Vec<(&'a str, &'a str)>, bool);

#[test]
fn topic_admin_and_configs_match_kafka() -> Result<()> {
    let Some(pair) = Pair::start_or_skip("topic_admin_and_configs_match_kafka")? else {
        return Ok(());
    };
    let started = Instant::now();
    let mut sides = pair.sides()?;
    let mut report = Report::new();
    let topic = "diff-cfg";

    let r = both(&mut sides, |s| {
        create_ready(
            s,
            topic,
            2,
            &[("retention.ms", "3600000"), ("cleanup.policy", "compact")],
        )
    })?;
    report.compare("CreateTopics v7 with two configs", &r, CONFIG_ALLOWED);

    let r = both(&mut sides, |s| describe_configs(s, 2, topic, None, true))?;
    report.compare(
        "DescribeConfigs v4 topic, every config, with documentation",
        &r,
        CONFIG_ALLOWED,
    );
    let r = both(&mut sides, |s| describe_configs(s, 2, topic, None, false))?;
    report.compare(
        "DescribeConfigs v4 topic, every config, no documentation",
        &r,
        CONFIG_ALLOWED,
    );
    let r = both(&mut sides, |s| {
        describe_configs(
            s,
            2,
            topic,
            Some(&["retention.ms", "segment.bytes", "no.such.config"]),
            false,
        )
    })?;
    report.compare("DescribeConfigs v4 topic, three keys", &r, &[]);
    let r = both(&mut sides, |s| {
        describe_configs(s, 2, "diff-nope", None, false)
    })?;
    report.compare("DescribeConfigs v4 unknown topic", &r, &[]);

    // CreateTopics errors, one topic per request.
    let long_name = "a".repeat(250);
    let cases: Vec<CreateCase<'_>> = vec![
        (
            "invalid config value",
            "diff-c1",
            1,
            1,
            vec![("retention.ms", "soon")],
            false,
        ),
        (
            "unknown config",
            "diff-c2",
            1,
            1,
            vec![("no.such.config", "1")],
            false,
        ),
        (
            "replication factor over the brokers",
            "diff-c3",
            1,
            3,
            vec![],
            false,
        ),
        ("replication factor 0", "diff-c4", 1, 0, vec![], false),
        ("zero partitions", "diff-c5", 0, 1, vec![], false),
        ("negative partitions", "diff-c6", -5, 1, vec![], false),
        ("invalid name", "bad name!", 1, 1, vec![], false),
        ("name too long", long_name.as_str(), 1, 1, vec![], false),
        ("name `.`", ".", 1, 1, vec![], false),
        ("existing topic", topic, 1, 1, vec![], false),
        ("validate only", "diff-c7", 3, 1, vec![], true),
        // Kafka 4's floor for segment.bytes is 1 MiB.
        (
            "segment.bytes below 1 MiB",
            "diff-c8",
            1,
            1,
            vec![("segment.bytes", "1048575")],
            false,
        ),
    ];
    for (label, name, partitions, rf, configs, validate_only) in &cases {
        let r = both(&mut sides, |s| {
            let r = create_topic(s, name, *partitions, *rf, configs, *validate_only)?;
            let mut f = create_topic_fields(&r);
            f.set(
                "error_message",
                error_message(r.error_code, r.error_message.as_deref()),
            );
            Ok(f)
        })?;
        // Only a topic that is (or would be) created comes back with its configs.
        let allowed = if *validate_only { CONFIG_ALLOWED } else { &[] };
        report.compare(&format!("CreateTopics v7 {label}"), &r, allowed);
    }
    // Validate-only created nothing.
    let r = both(&mut sides, |s| {
        metadata(s, &metadata_of(&["diff-c7"]), METADATA_V)
    })?;
    report.compare("Metadata after validate-only CreateTopics", &r, &[]);

    // CreatePartitions (an empty assignment list is a manual assignment of no partition).
    for (label, name, count, assignments) in [
        ("fewer partitions", topic, 1, None),
        ("same count", topic, 2, None),
        ("unknown topic", "diff-nope", 3, None),
        ("empty assignment list", topic, 3, Some(vec![])),
        ("grow to 4", topic, 4, None),
    ] {
        let r = both(&mut sides, |s| {
            let request = CreatePartitionsRequest::default()
                .with_timeout_ms(30_000)
                .with_topics(vec![
                    CreatePartitionsTopic::default()
                        .with_name(topic_name(name))
                        .with_count(count)
                        .with_assignments(assignments.clone()),
                ]);
            let r = s.conn.request(&request, CREATE_PARTITIONS_V)?;
            let t = r.results.first().context("no CreatePartitions result")?;
            let mut f = Fields::new();
            f.set("error_code", t.error_code);
            f.set(
                "error_message",
                error_message(t.error_code, t.error_message.as_deref()),
            );
            Ok(f)
        })?;
        report.compare(&format!("CreatePartitions v3 {label}"), &r, &[]);
    }
    let r = both(&mut sides, |s| {
        let t = s.await_topic(topic, 4)?;
        Ok(topic_fields(s, &t))
    })?;
    report.compare("Metadata after CreatePartitions to 4", &r, &[]);

    // DeleteTopics: unknown by name (v6 and v5), unknown by id, then a real one.
    // An id no topic has (Kafka and tierlog both draw random v4 ids).
    let random_id = "0f0e0d0c-0b0a-4908-8706-050403020100"
        .parse()
        .context("parsing a uuid")?;
    for (label, request, version) in [
        (
            "unknown topic by name",
            DeleteTopicsRequest::default().with_topics(vec![
                DeleteTopicState::default().with_name(Some(topic_name("diff-nope"))),
            ]),
            DELETE_TOPICS_V,
        ),
        (
            "unknown topic id",
            DeleteTopicsRequest::default()
                .with_topics(vec![DeleteTopicState::default().with_topic_id(random_id)]),
            DELETE_TOPICS_V,
        ),
        (
            "unknown topic by name (v5)",
            DeleteTopicsRequest::default().with_topic_names(vec![topic_name("diff-nope")]),
            5,
        ),
        (
            "existing topic",
            DeleteTopicsRequest::default().with_topics(vec![
                DeleteTopicState::default().with_name(Some(topic_name(topic))),
            ]),
            DELETE_TOPICS_V,
        ),
    ] {
        let r = both(&mut sides, |s| {
            let r = s
                .conn
                .request(&request.clone().with_timeout_ms(30_000), version)?;
            let t = r.responses.first().context("no DeleteTopics result")?;
            let mut f = Fields::new();
            f.set("error_code", t.error_code);
            f.set("name", opt(t.name.as_ref().map(|n| n.0.as_str())));
            f.set("topic_id", if t.topic_id.is_nil() { "nil" } else { "set" });
            if version >= 5 {
                f.set(
                    "error_message",
                    error_message(t.error_code, t.error_message.as_deref()),
                );
            }
            Ok(f)
        })?;
        report.compare(&format!("DeleteTopics v{version} {label}"), &r, &[]);
    }
    both(&mut sides, |s| s.await_topic_gone(topic))?;
    let r = both(&mut sides, |s| describe_configs(s, 2, topic, None, false))?;
    report.compare("DescribeConfigs v4 of the deleted topic", &r, &[]);

    eprintln!(
        "topic_admin_and_configs_match_kafka: compared in {:?}",
        started.elapsed()
    );
    report.finish();
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Consumer groups.
// ---------------------------------------------------------------------------------------------

/// FindCoordinator (v4, one group key); waits out COORDINATOR_NOT_AVAILABLE (Kafka creates
/// `__consumer_offsets` on first use).
fn find_coordinator(side: &mut Side, group: &str) -> Result<Coordinator> {
    let name = side.name;
    let conn = &mut side.conn;
    wait_for(
        &format!("{name}: a coordinator for {group}"),
        Duration::from_secs(60),
        Duration::from_millis(100),
        || {
            let request = FindCoordinatorRequest::default()
                .with_key_type(0)
                .with_coordinator_keys(vec![str(group)]);
            let r = conn.request(&request, FIND_COORDINATOR_V)?;
            let c = r
                .coordinators
                .into_iter()
                .next()
                .context("no coordinator")?;
            Ok(if c.error_code == 0 {
                Poll::Ready(c)
            } else {
                Poll::Pending(format!("error {}", c.error_code))
            })
        },
    )
}

fn describe_group(side: &mut Side, group: &str, operations: bool) -> Result<DescribedGroup> {
    let request = DescribeGroupsRequest::default()
        .with_groups(vec![group_id(group)])
        .with_include_authorized_operations(operations);
    let r = side.conn.request(&request, DESCRIBE_GROUPS_V)?;
    r.groups
        .into_iter()
        .next()
        .context("no DescribeGroups group")
}

fn offset_fetch(
    side: &mut Side,
    group: &str,
    topics: Option<&[(&str, &[i32])]>,
) -> Result<OffsetFetchResponseGroup> {
    let request = kafka_protocol::messages::OffsetFetchRequest::default().with_groups(vec![
        OffsetFetchRequestGroup::default()
            .with_group_id(group_id(group))
            .with_topics(topics.map(|ts| {
                ts.iter()
                    .map(|(t, ps)| {
                        OffsetFetchRequestTopics::default()
                            .with_name(topic_name(t))
                            .with_partition_indexes(ps.to_vec())
                    })
                    .collect()
            })),
    ]);
    let r = side.conn.request(&request, OFFSET_FETCH_V)?;
    r.groups.into_iter().next().context("no OffsetFetch group")
}

/// JoinGroup (v9) of a consumer subscribed to `topic` with the `range` protocol; a 30 s
/// session, so a member of one side outlives the other side's slower steps (tierlog waits
/// its initial rebalance delay, 3 s, where the harness sets Kafka's to 0).
fn join(side: &mut Side, group: &str, member_id: &str, topic: &str) -> Result<JoinGroupResponse> {
    let request = JoinGroupRequest::default()
        .with_group_id(group_id(group))
        .with_session_timeout_ms(30_000)
        .with_rebalance_timeout_ms(30_000)
        .with_member_id(str(member_id))
        .with_protocol_type(str("consumer"))
        .with_protocols(vec![
            JoinGroupRequestProtocol::default()
                .with_name(str("range"))
                .with_metadata(consumer_subscription(&[topic])),
        ]);
    side.conn.request(&request, JOIN_GROUP_V)
}

/// The member's join state on one side.
#[derive(Debug, Clone, Default)]
struct Member {
    id: String,
    generation: i32,
}

#[test]
fn groups_match_kafka() -> Result<()> {
    let Some(pair) = Pair::start_or_skip("groups_match_kafka")? else {
        return Ok(());
    };
    let started = Instant::now();
    let mut sides = pair.sides()?;
    let mut report = Report::new();
    let topic = "diff-group";
    let group = "diff-g";
    both(&mut sides, |s| create_ready(s, topic, 3, &[]))?;

    let r = both(&mut sides, |s| {
        let c = find_coordinator(s, group)?;
        let mut f = Fields::new();
        f.set("key", c.key.as_str());
        f.set("node", s.node(c.node_id));
        f.set("host", c.host.as_str());
        f.set("port", if c.port > 0 { "present" } else { "missing" });
        f.set("error_code", c.error_code);
        Ok(f)
    })?;
    report.compare("FindCoordinator v4", &r, &[]);
    // Kafka's coordinator answers FindCoordinator as soon as `__consumer_offsets` exists, and
    // NOT_COORDINATOR / COORDINATOR_LOAD_IN_PROGRESS until it has loaded the partition.
    both(&mut sides, |s| {
        let name = s.name;
        wait_for(
            &format!("{name}: the coordinator of {group} loaded"),
            Duration::from_secs(60),
            Duration::from_millis(100),
            || {
                let g = describe_group(s, group, false)?;
                Ok(if g.error_code == 0 {
                    Poll::Ready(())
                } else {
                    Poll::Pending(format!("DescribeGroups error {}", g.error_code))
                })
            },
        )
    })?;

    // Join: MEMBER_ID_REQUIRED first, then the real join; the single member leads.
    let mut members: [Member; 2] = Default::default();
    let r = both(&mut sides, |s| {
        let j = join(s, group, "", topic)?;
        let mut f = Fields::new();
        f.set("error_code", j.error_code);
        f.set("generation_id", j.generation_id);
        f.set(
            "member_id",
            member_id_shape(j.member_id.as_str(), WIRE_CLIENT_ID),
        );
        f.set("leader", j.leader.as_str());
        f.set("members.count", j.members.len());
        f.set("protocol_type", opt(j.protocol_type.as_deref()));
        f.set("protocol_name", opt(j.protocol_name.as_deref()));
        Ok((f, j.member_id.as_str().to_owned()))
    })?;
    let ids = [r[0].1.clone(), r[1].1.clone()];
    report.compare(
        "JoinGroup v9 without a member id",
        &[r[0].0.clone(), r[1].0.clone()],
        &[],
    );
    let mut i = 0;
    let r = both(&mut sides, |s| {
        let id = &ids[i];
        let j = join(s, group, id, topic)?;
        members[i] = Member {
            id: j.member_id.as_str().to_owned(),
            generation: j.generation_id,
        };
        i += 1;
        let mut f = Fields::new();
        f.set("error_code", j.error_code);
        f.set("generation_id", j.generation_id);
        f.set("member_is_the_one_given", j.member_id.as_str() == id);
        f.set("leader_is_self", j.leader.as_str() == id);
        f.set("skip_assignment", j.skip_assignment);
        f.set("protocol_type", opt(j.protocol_type.as_deref()));
        f.set("protocol_name", opt(j.protocol_name.as_deref()));
        f.set("members.count", j.members.len());
        for (n, m) in j.members.iter().enumerate() {
            f.set(format!("members[{n}].is_self"), m.member_id.as_str() == id);
            f.set(
                format!("members[{n}].group_instance_id"),
                opt(m.group_instance_id.as_deref()),
            );
            f.set(format!("members[{n}].metadata"), hex(&m.metadata));
        }
        Ok(f)
    })?;
    report.compare("JoinGroup v9 with the member id", &r, &[]);

    // SyncGroup: the leader assigns every partition to itself.
    let assignment = consumer_assignment(topic, &[0, 1, 2]);
    let mut i = 0;
    let r = both(&mut sides, |s| {
        let m = members[i].clone();
        i += 1;
        let sync = sync_group(
            &mut s.conn,
            SYNC_GROUP_V,
            group,
            m.generation,
            &m.id,
            &[(m.id.as_str(), assignment.clone())],
        )?;
        let mut f = Fields::new();
        f.set("error_code", sync.error_code);
        f.set("protocol_type", opt(sync.protocol_type.as_deref()));
        f.set("protocol_name", opt(sync.protocol_name.as_deref()));
        f.set("assignment", hex(&sync.assignment));
        Ok(f)
    })?;
    report.compare("SyncGroup v5 by the leader", &r, &[]);

    let r = both(&mut sides, |s| {
        Ok(described_group_fields(&describe_group(s, group, true)?))
    })?;
    report.compare(
        "DescribeGroups v5 stable group, authorized operations",
        &r,
        &[],
    );
    let r = both(&mut sides, |s| {
        Ok(described_group_fields(&describe_group(s, group, false)?))
    })?;
    report.compare("DescribeGroups v5 stable group", &r, &[]);
    let r = both(&mut sides, |s| {
        Ok(described_group_fields(&describe_group(
            s,
            "diff-unknown-group",
            false,
        )?))
    })?;
    report.compare("DescribeGroups v5 unknown group", &r, &[]);

    // Heartbeat, SyncGroup and JoinGroup errors of the stable group.
    let mut i = 0;
    let r = both(&mut sides, |s| {
        let m = members[i].clone();
        i += 1;
        let mut f = Fields::new();
        f.set(
            "heartbeat",
            groups::heartbeat(&mut s.conn, HEARTBEAT_V, group, m.generation, &m.id)?,
        );
        f.set(
            "heartbeat wrong generation",
            groups::heartbeat(&mut s.conn, HEARTBEAT_V, group, m.generation + 1, &m.id)?,
        );
        f.set(
            "heartbeat stale generation",
            groups::heartbeat(&mut s.conn, HEARTBEAT_V, group, m.generation - 1, &m.id)?,
        );
        f.set(
            "heartbeat unknown member",
            groups::heartbeat(&mut s.conn, HEARTBEAT_V, group, m.generation, "ghost")?,
        );
        f.set(
            "heartbeat unknown group",
            groups::heartbeat(&mut s.conn, HEARTBEAT_V, "diff-no-group", 1, "ghost")?,
        );
        let sync = |s: &mut Side, generation: i32, member: &str| -> Result<i16> {
            Ok(sync_group(&mut s.conn, SYNC_GROUP_V, group, generation, member, &[])?.error_code)
        };
        f.set("sync wrong generation", sync(s, m.generation + 1, &m.id)?);
        f.set("sync stale generation", sync(s, m.generation - 1, &m.id)?);
        f.set("sync unknown member", sync(s, m.generation, "ghost")?);
        let j = join(s, group, "ghost", topic)?;
        f.set("join unknown member", j.error_code);
        f.set("join unknown member.generation_id", j.generation_id);
        f.set(
            "heartbeat after the errors",
            groups::heartbeat(&mut s.conn, HEARTBEAT_V, group, m.generation, &m.id)?,
        );
        Ok(f)
    })?;
    report.compare("group error codes", &r, &[]);

    // OffsetCommit: by the member, and refused ones.
    let mut i = 0;
    let r = both(&mut sides, |s| {
        let m = members[i].clone();
        i += 1;
        let mut f = Fields::new();
        let mut commit = |label: &str,
                          group: &str,
                          generation: i32,
                          member: &str,
                          version: i16,
                          commits: &[groups::Commit<'_>]|
         -> Result<()> {
            for ((t, p), code) in
                groups::offset_commit(&mut s.conn, version, group, generation, member, commits)?
            {
                f.set(format!("{label}.{t}[{p}]"), code);
            }
            Ok(())
        };
        commit(
            "member",
            group,
            m.generation,
            &m.id,
            OFFSET_COMMIT_V,
            &[(topic, 0, 5, Some("m0")), (topic, 1, 7, None)],
        )?;
        commit(
            "unknown member",
            group,
            m.generation,
            "ghost",
            OFFSET_COMMIT_V,
            &[(topic, 0, 9, None)],
        )?;
        commit(
            "stale generation",
            group,
            m.generation - 1,
            &m.id,
            OFFSET_COMMIT_V,
            &[(topic, 0, 9, None)],
        )?;
        commit(
            "newer generation",
            group,
            m.generation + 1,
            &m.id,
            OFFSET_COMMIT_V,
            &[(topic, 0, 9, None)],
        )?;
        commit(
            "no member, no generation",
            group,
            -1,
            "",
            OFFSET_COMMIT_V,
            &[(topic, 0, 9, None)],
        )?;
        commit(
            "unknown partition",
            group,
            m.generation,
            &m.id,
            OFFSET_COMMIT_V,
            &[(topic, 9, 1, None)],
        )?;
        commit(
            "unknown topic",
            group,
            m.generation,
            &m.id,
            OFFSET_COMMIT_V,
            &[("diff-nope", 0, 1, None)],
        )?;
        commit(
            "unknown group v8",
            "diff-no-group",
            1,
            "ghost",
            8,
            &[(topic, 0, 1, None)],
        )?;
        commit(
            "unknown group v9",
            "diff-no-group",
            1,
            "ghost",
            9,
            &[(topic, 0, 1, None)],
        )?;
        commit(
            "simple group",
            "diff-simple",
            -1,
            "",
            OFFSET_COMMIT_V,
            &[(topic, 2, 11, Some("s"))],
        )?;
        Ok(f)
    })?;
    report.compare("OffsetCommit v8 error codes", &r, &[]);

    let wanted: &[(&str, &[i32])] = &[(topic, &[0, 1, 2]), ("diff-nope", &[0])];
    let r = both(&mut sides, |s| {
        Ok(offset_fetch_fields(&offset_fetch(s, group, Some(wanted))?))
    })?;
    report.compare("OffsetFetch v8 of named partitions", &r, &[]);
    let r = both(&mut sides, |s| {
        Ok(offset_fetch_fields(&offset_fetch(s, group, None)?))
    })?;
    report.compare("OffsetFetch v8 of every committed partition", &r, &[]);
    let r = both(&mut sides, |s| {
        Ok(offset_fetch_fields(&offset_fetch(s, "diff-simple", None)?))
    })?;
    report.compare("OffsetFetch v8 of a simple group", &r, &[]);
    let r = both(&mut sides, |s| {
        Ok(offset_fetch_fields(&offset_fetch(
            s,
            "diff-unknown-group",
            Some(wanted),
        )?))
    })?;
    report.compare("OffsetFetch v8 of an unknown group", &r, &[]);

    // LeaveGroup, then the group is Empty.
    let mut i = 0;
    let r = both(&mut sides, |s| {
        let m = members[i].clone();
        i += 1;
        let request = LeaveGroupRequest::default()
            .with_group_id(group_id(group))
            .with_members(vec![MemberIdentity::default().with_member_id(str(&m.id))]);
        let r = s.conn.request(&request, LEAVE_GROUP_V)?;
        let mut f = Fields::new();
        f.set("error_code", r.error_code);
        for (n, m) in r.members.iter().enumerate() {
            f.set(format!("members[{n}].error_code"), m.error_code);
        }
        Ok(f)
    })?;
    report.compare("LeaveGroup v5", &r, &[]);
    let r = both(&mut sides, |s| {
        let name = s.name;
        let g = wait_for(
            &format!("{name}: {group} to settle after the member left"),
            Duration::from_secs(30),
            Duration::from_millis(50),
            || {
                let g = describe_group(s, group, false)?;
                Ok(if g.group_state.as_str() == "PreparingRebalance" {
                    Poll::Pending(g.group_state.to_string())
                } else {
                    Poll::Ready(g)
                })
            },
        )?;
        Ok(described_group_fields(&g))
    })?;
    report.compare("DescribeGroups v5 after the member left", &r, &[]);
    let r = both(&mut sides, |s| {
        let mut f = Fields::new();
        for ((t, p), code) in groups::offset_commit(
            &mut s.conn,
            OFFSET_COMMIT_V,
            group,
            -1,
            "",
            &[(topic, 2, 3, None)],
        )? {
            f.set(format!("{t}[{p}]"), code);
        }
        Ok(f)
    })?;
    report.compare("OffsetCommit v8 to the empty group, no member", &r, &[]);
    let r = both(&mut sides, |s| {
        Ok(offset_fetch_fields(&offset_fetch(s, group, None)?))
    })?;
    report.compare("OffsetFetch v8 of the empty group", &r, &[]);

    let r = both(&mut sides, |s| {
        let request = DeleteGroupsRequest::default()
            .with_groups_names(vec![group_id(group), group_id("diff-unknown-group")]);
        let r = s.conn.request(&request, DELETE_GROUPS_V)?;
        let mut f = Fields::new();
        for g in &r.results {
            f.set(
                format!("{}.error_code", g.group_id.0.as_str()),
                g.error_code,
            );
        }
        Ok(f)
    })?;
    report.compare("DeleteGroups v2", &r, &[]);
    let r = both(&mut sides, |s| {
        Ok(offset_fetch_fields(&offset_fetch(s, group, None)?))
    })?;
    report.compare("OffsetFetch v8 of the deleted group", &r, &[]);

    eprintln!("groups_match_kafka: compared in {:?}", started.elapsed());
    report.finish();
    Ok(())
}
