//! Consumer groups end to end (issue 5): real `tierlog` processes, librdkafka consumers that
//! `subscribe`, a killable member in a child process, kafka-python as a second client, raw
//! group-protocol requests for exact error codes, and the `tierlog group` CLI.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use rdkafka::consumer::{CommitMode, Consumer, RebalanceProtocol};
use rdkafka::message::Message;
use rdkafka::producer::FutureRecord;
use rdkafka::{Offset, TopicPartitionList};
use tierlog_tests::TestNode;
use tierlog_tests::clients::{CLIENT_TIMEOUT, create_topic, producer, watermarks};
use tierlog_tests::groups::{
    MemberProcess, Observed, SESSION_TIMEOUT, codes, committed, disjoint_cover, heartbeat,
    join_and_sync, join_group, node_options, node_options_with_delay, offset_commit, offset_fetch,
    offsets_by_partition, poll_until, subscribed, sync_group,
};
use tierlog_tests::node::tierlog_binary;
use tierlog_tests::tools::{require_tool, tests_dir};
use tierlog_tests::wait::{Poll, wait_for};
use tierlog_tests::wire::Conn;

/// Generous bound for a group to settle after members join or leave: a rebalance needs every
/// member to rejoin, which librdkafka does on its next heartbeat (a fraction of a second).
const SETTLE: Duration = Duration::from_secs(20);

fn member_binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_group_member"))
}

/// Produces `per_partition` records to each of `partitions` partitions of `topic` (keys
/// `k-<p>-<i>`), waiting for every acknowledgement.
async fn produce(bootstrap: &str, topic: &str, partitions: i32, per_partition: usize) {
    let p = producer(bootstrap, &[]).unwrap();
    for partition in 0..partitions {
        for i in 0..per_partition {
            let key = format!("k-{partition}-{i}");
            p.send(
                FutureRecord::to(topic)
                    .partition(partition)
                    .key(&key)
                    .payload("v"),
                CLIENT_TIMEOUT,
            )
            .await
            .map_err(|(e, _)| e)
            .unwrap();
        }
    }
}

fn high_watermarks(bootstrap: &str, topic: &str, partitions: i32) -> BTreeMap<i32, i64> {
    (0..partitions)
        .map(|p| (p, watermarks(bootstrap, topic, p).unwrap().1))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_consumer_joins_quickly() {
    let delay = Duration::from_secs(1);
    let node = TestNode::start(node_options_with_delay(delay)).unwrap();
    let bootstrap = node.bootstrap();
    create_topic(&bootstrap, "fast-join", 3, &[]).await.unwrap();

    let started = Instant::now();
    let c = subscribed(&bootstrap, "fast-join-group", "fast-join", &[]).unwrap();
    poll_until(&[&c], "fast-join", SETTLE, "the assignment", |o| {
        disjoint_cover(&o.assignments, 3, true)
    })
    .unwrap();
    let took = started.elapsed();
    assert!(
        took <= delay + Duration::from_secs(3),
        "a lone consumer waited {took:?} for its assignment (initial rebalance delay {delay:?})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_consumers_split_six_partitions_and_take_over_when_one_leaves() {
    let node = TestNode::start(node_options()).unwrap();
    let bootstrap = node.bootstrap();
    create_topic(&bootstrap, "six", 6, &[]).await.unwrap();
    produce(&bootstrap, "six", 6, 20).await;

    let a = subscribed(&bootstrap, "six-group", "six", &[("client.id", "a")]).unwrap();
    let b = subscribed(&bootstrap, "six-group", "six", &[("client.id", "b")]).unwrap();
    let c = subscribed(&bootstrap, "six-group", "six", &[("client.id", "c")]).unwrap();
    let seen = poll_until(
        &[&a, &b, &c],
        "six",
        SETTLE,
        "three members with disjoint partitions covering all 6",
        |o| disjoint_cover(&o.assignments, 6, true),
    )
    .unwrap();
    for (i, assignment) in seen.assignments.iter().enumerate() {
        assert_eq!(
            assignment.len(),
            2,
            "consumer {i} should own 2 of 6 partitions: {}",
            seen.describe()
        );
    }

    // Close one (librdkafka sends LeaveGroup); the other two take its partitions well within
    // the session timeout, since a leave needs no timeout to be noticed.
    let left = Instant::now();
    drop(c);
    let after = poll_until(
        &[&a, &b],
        "six",
        SESSION_TIMEOUT,
        "two remaining members covering all 6 partitions",
        |o| disjoint_cover(&o.assignments, 6, true),
    )
    .unwrap();
    assert_eq!(
        after.assignments.iter().map(BTreeSet::len).sum::<usize>(),
        6,
        "{}",
        after.describe()
    );
    eprintln!("takeover after LeaveGroup took {:?}", left.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_member_is_evicted_after_the_session_timeout() {
    let node = TestNode::start(node_options()).unwrap();
    let bootstrap = node.bootstrap();
    create_topic(&bootstrap, "evict", 6, &[]).await.unwrap();

    let mut child =
        MemberProcess::spawn(member_binary(), &bootstrap, "evict-group", "evict", &[]).unwrap();
    let a = subscribed(&bootstrap, "evict-group", "evict", &[]).unwrap();
    // Drive the in-process member and watch the child until they split the partitions.
    poll_until(
        &[&a],
        "evict",
        SETTLE,
        "the in-process member and the child process splitting 6 partitions",
        |o| {
            child.drain().unwrap();
            disjoint_cover(
                &[o.assignments[0].clone(), child.assignment().clone()],
                6,
                true,
            )
        },
    )
    .unwrap_or_else(|e| panic!("{e:#}; child has {:?}", child.assignment()));

    // SIGKILL: no LeaveGroup. The coordinator notices only when heartbeats stop for the
    // session timeout, then rebalances the survivor onto all partitions.
    let killed = Instant::now();
    child.kill9().unwrap();
    poll_until(
        &[&a],
        "evict",
        SESSION_TIMEOUT + SETTLE,
        "the survivor owning all 6 partitions",
        |o| o.assignments[0].len() == 6,
    )
    .unwrap();
    let took = killed.elapsed();
    // The last heartbeat came at most a heartbeat interval before the kill, so eviction cannot
    // legitimately come much sooner than the session timeout (Kafka does not evict on a
    // closed connection).
    assert!(
        took >= SESSION_TIMEOUT - Duration::from_secs(2),
        "the killed member was evicted after {took:?}, before the {SESSION_TIMEOUT:?} session timeout"
    );
    assert!(
        took <= SESSION_TIMEOUT + Duration::from_secs(10),
        "the killed member was evicted only after {took:?} (session timeout {SESSION_TIMEOUT:?})"
    );
}

/// Commits half of what each partition delivered, stops every consumer, restarts the group and
/// checks consumption resumes exactly at the committed offsets: nothing skipped, nothing
/// before the commit point redelivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumption_resumes_at_committed_offsets_after_a_restart_of_all_consumers() {
    let node = TestNode::start(node_options()).unwrap();
    let bootstrap = node.bootstrap();
    create_topic(&bootstrap, "resume", 6, &[]).await.unwrap();
    produce(&bootstrap, "resume", 6, 50).await;

    let group = "resume-group";
    let a = subscribed(&bootstrap, group, "resume", &[]).unwrap();
    let b = subscribed(&bootstrap, group, "resume", &[]).unwrap();
    let first = poll_until(&[&a, &b], "resume", SETTLE * 2, "all 300 records", |o| {
        disjoint_cover(&o.assignments, 6, true) && distinct(o) == 300
    })
    .unwrap();
    // Each member commits, for each partition it owns, the offset halfway through.
    let mut commit_points = BTreeMap::new();
    for (i, consumer) in [&a, &b].into_iter().enumerate() {
        let mut tpl = TopicPartitionList::new();
        for p in &first.assignments[i] {
            let point = 25 + i64::from(*p);
            tpl.add_partition_offset("resume", *p, Offset::Offset(point))
                .unwrap();
            commit_points.insert(*p, point);
        }
        consumer.commit(&tpl, CommitMode::Sync).unwrap();
    }
    let stored = committed(node.kafka_addr(), group, "resume", &[0, 1, 2, 3, 4, 5]).unwrap();
    assert_eq!(stored, commit_points, "OffsetFetch after the commits");
    drop(a);
    drop(b);

    // More records while nobody consumes, then a fresh pair of members.
    produce(&bootstrap, "resume", 6, 10).await;
    let ends = high_watermarks(&bootstrap, "resume", 6);
    let expected: usize = commit_points
        .iter()
        .map(|(p, point)| usize::try_from(ends[p] - point).unwrap())
        .sum();
    let c = subscribed(&bootstrap, group, "resume", &[]).unwrap();
    let d = subscribed(&bootstrap, group, "resume", &[]).unwrap();
    let second = poll_until(
        &[&c, &d],
        "resume",
        SETTLE * 2,
        "everything after the commit points",
        |o| distinct(o) >= expected && disjoint_cover(&o.assignments, 6, true),
    )
    .unwrap();
    let all: Vec<_> = second.records.iter().flatten().collect();
    for (p, offsets) in offsets_by_partition(all.iter().copied()) {
        let distinct: BTreeSet<i64> = offsets.iter().copied().collect();
        let want: BTreeSet<i64> = (commit_points[&p]..ends[&p]).collect();
        assert_eq!(
            distinct, want,
            "partition {p}: resumed consumption must be exactly [committed {}, end {})",
            commit_points[&p], ends[&p]
        );
    }
}

/// Distinct (partition, offset) pairs received by all consumers.
fn distinct(o: &Observed) -> usize {
    o.records
        .iter()
        .flatten()
        .map(|m| (m.partition(), m.offset()))
        .collect::<BTreeSet<_>>()
        .len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cooperative_sticky_members_keep_their_partitions_across_rebalances() {
    let node = TestNode::start(node_options()).unwrap();
    let bootstrap = node.bootstrap();
    create_topic(&bootstrap, "coop", 6, &[]).await.unwrap();
    let cooperative = [("partition.assignment.strategy", "cooperative-sticky")];

    let a = subscribed(&bootstrap, "coop-group", "coop", &cooperative).unwrap();
    let b = subscribed(&bootstrap, "coop-group", "coop", &cooperative).unwrap();
    let two = poll_until(&[&a, &b], "coop", SETTLE, "two members sharing 6", |o| {
        disjoint_cover(&o.assignments, 6, true)
    })
    .unwrap();
    assert!(matches!(
        a.rebalance_protocol(),
        RebalanceProtocol::Cooperative
    ));

    // A third member joins: incremental rebalancing only moves partitions to it; the first
    // two keep a subset of what they had.
    let c = subscribed(&bootstrap, "coop-group", "coop", &cooperative).unwrap();
    let three = poll_until(
        &[&a, &b, &c],
        "coop",
        SETTLE,
        "three members sharing 6",
        |o| disjoint_cover(&o.assignments, 6, true) && o.assignments.iter().all(|a| a.len() == 2),
    )
    .unwrap();
    for i in 0..2 {
        assert!(
            three.assignments[i].is_subset(&two.assignments[i]),
            "member {i} had {:?} and now has {:?}: cooperative-sticky must not shuffle",
            two.assignments[i],
            three.assignments[i]
        );
    }

    // One leaves; the others gain its partitions and keep their own.
    drop(c);
    let back = poll_until(&[&a, &b], "coop", SETTLE, "two members again", |o| {
        disjoint_cover(&o.assignments, 6, true)
    })
    .unwrap();
    for i in 0..2 {
        assert!(
            three.assignments[i].is_subset(&back.assignments[i]),
            "member {i} lost partitions when another member left: {:?} -> {:?}",
            three.assignments[i],
            back.assignments[i]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_static_member_rejoins_with_its_old_partitions_without_a_rebalance() {
    let node = TestNode::start(node_options()).unwrap();
    let bootstrap = node.bootstrap();
    create_topic(&bootstrap, "static", 6, &[]).await.unwrap();
    let as_a = [("group.instance.id", "static-a")];
    let as_b = [("group.instance.id", "static-b")];

    let a = subscribed(&bootstrap, "static-group", "static", &as_a).unwrap();
    let b = subscribed(&bootstrap, "static-group", "static", &as_b).unwrap();
    let before = poll_until(&[&a, &b], "static", SETTLE, "two static members", |o| {
        disjoint_cover(&o.assignments, 6, true)
    })
    .unwrap();

    // A static member closing does not leave the group (KIP-345): its partitions stay
    // reserved for the session timeout, so `b` keeps exactly what it had…
    drop(a);
    let bounced = Instant::now();
    let a2 = subscribed(&bootstrap, "static-group", "static", &as_a).unwrap();
    // …and the same instance coming back gets its old partitions, before the session timeout
    // could have expired it.
    let after = poll_until(
        &[&a2, &b],
        "static",
        SESSION_TIMEOUT,
        "the static member back with its partitions",
        |o| {
            assert_eq!(
                o.assignments[1], before.assignments[1],
                "the other static member's assignment changed while `static-a` bounced"
            );
            o.assignments[0] == before.assignments[0]
        },
    )
    .unwrap();
    assert!(
        bounced.elapsed() < SESSION_TIMEOUT,
        "rejoin took {:?}",
        bounced.elapsed()
    );
    assert!(disjoint_cover(&after.assignments, 6, true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_python_group_members_share_a_topic() {
    if !require_tool(
        "python3",
        &["-c", "import kafka"],
        "kafka_python_group_members_share_a_topic",
    )
    .unwrap()
    {
        return;
    }
    let node = TestNode::start(node_options_with_delay(Duration::from_secs(1))).unwrap();
    let bootstrap = node.bootstrap();
    create_topic(&bootstrap, "py-group", 4, &[]).await.unwrap();
    produce(&bootstrap, "py-group", 4, 25).await;

    let script = tests_dir().join("python").join("groups_kafka_python.py");
    let out = Command::new("python3")
        .arg(&script)
        .args([
            "--bootstrap",
            &bootstrap,
            "--topic",
            "py-group",
            "--group",
            "py-group-id",
            "--expect",
            "100",
            "--partitions",
            "4",
            "--timeout",
            "90",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "kafka-python group script failed: {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).trim()).unwrap();
    eprintln!("kafka-python report: {report}");
    // Both members committed their positions: the group is at the end of every partition.
    let stored = committed(node.kafka_addr(), "py-group-id", "py-group", &[0, 1, 2, 3]).unwrap();
    assert_eq!(stored, high_watermarks(&bootstrap, "py-group", 4));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_offsets_survive_a_node_restart() {
    let mut node = TestNode::start(node_options()).unwrap();
    let bootstrap = node.bootstrap();
    create_topic(&bootstrap, "durable", 2, &[]).await.unwrap();
    produce(&bootstrap, "durable", 2, 30).await;

    // A librdkafka member commits 10 and 20.
    let c = subscribed(&bootstrap, "durable-group", "durable", &[]).unwrap();
    poll_until(&[&c], "durable", SETTLE, "the assignment", |o| {
        o.assignments[0].len() == 2
    })
    .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("durable", 0, Offset::Offset(10))
        .unwrap();
    tpl.add_partition_offset("durable", 1, Offset::Offset(20))
        .unwrap();
    c.commit(&tpl, CommitMode::Sync).unwrap();
    drop(c);
    // A raw commit with metadata to another group (an empty group accepts generation -1).
    let mut conn = Conn::connect(node.kafka_addr()).unwrap();
    let codes_seen = offset_commit(
        &mut conn,
        8,
        "durable-raw",
        -1,
        "",
        &[("durable", 0, 7, Some("checkpoint-7"))],
    )
    .unwrap();
    assert_eq!(codes_seen[0].1, codes::NONE);
    drop(conn);

    node.restart().unwrap();

    assert_eq!(
        committed(node.kafka_addr(), "durable-group", "durable", &[0, 1]).unwrap(),
        BTreeMap::from([(0, 10), (1, 20)])
    );
    let mut conn = Conn::connect(node.kafka_addr()).unwrap();
    for version in 1..=8 {
        let fetched = offset_fetch(&mut conn, version, "durable-raw", "durable", &[0]).unwrap();
        assert_eq!(fetched[&0].offset, 7, "OffsetFetch v{version}");
        assert_eq!(
            fetched[&0].metadata.as_deref(),
            Some("checkpoint-7"),
            "OffsetFetch v{version}"
        );
    }

    // And a new member resumes there.
    let c = subscribed(&bootstrap, "durable-group", "durable", &[]).unwrap();
    let seen = poll_until(
        &[&c],
        "durable",
        SETTLE,
        "the rest after the commits",
        |o| distinct(o) >= 30,
    )
    .unwrap();
    let offsets = offsets_by_partition(seen.records[0].iter());
    assert_eq!(offsets[&0].first(), Some(&10), "partition 0 resumes at 10");
    assert_eq!(offsets[&1].first(), Some(&20), "partition 1 resumes at 20");
}

#[test]
fn join_group_asks_for_a_member_id_then_accepts_it() {
    let node = TestNode::start(node_options()).unwrap();
    let mut conn = Conn::connect(node.kafka_addr()).unwrap();
    // v4+: the first join without a member id is refused with the id to use.
    let first = join_group(&mut conn, 5, "join-group", "", None, "any-topic").unwrap();
    assert_eq!(first.error_code, codes::MEMBER_ID_REQUIRED);
    let member = first.member_id.as_str().to_owned();
    assert!(!member.is_empty(), "MEMBER_ID_REQUIRED must carry the id");
    let joined = join_group(&mut conn, 5, "join-group", &member, None, "any-topic").unwrap();
    assert_eq!(joined.error_code, codes::NONE);
    assert_eq!(joined.member_id.as_str(), member);
    assert_eq!(joined.leader.as_str(), member, "a lone member leads");
    assert!(joined.generation_id >= 1);
    assert_eq!(joined.members.len(), 1, "the leader sees the members");
    assert_eq!(
        joined.protocol_name.as_ref().map(|p| p.as_str()),
        Some("range")
    );
    let synced = sync_group(
        &mut conn,
        5,
        "join-group",
        joined.generation_id,
        &member,
        &[(
            member.as_str(),
            tierlog_tests::groups::consumer_assignment("any-topic", &[0]),
        )],
    )
    .unwrap();
    assert_eq!(synced.error_code, codes::NONE);
    assert_eq!(
        synced.assignment,
        tierlog_tests::groups::consumer_assignment("any-topic", &[0])
    );
    assert_eq!(
        heartbeat(&mut conn, 4, "join-group", joined.generation_id, &member).unwrap(),
        codes::NONE
    );

    // Before v4 the broker assigns the id in the same round trip.
    let old = join_group(&mut conn, 3, "join-group-v3", "", None, "any-topic").unwrap();
    assert_eq!(old.error_code, codes::NONE);
    assert!(!old.member_id.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_group_requests_get_kafka_error_codes() {
    let node = TestNode::start(node_options()).unwrap();
    create_topic(&node.bootstrap(), "codes", 2, &[])
        .await
        .unwrap();
    let mut conn = Conn::connect(node.kafka_addr()).unwrap();
    let group = "codes-group";
    let (member, generation) = join_and_sync(&mut conn, group, "codes", &[0, 1]).unwrap();
    let commit =
        |conn: &mut Conn, generation: i32, member: &str, c: (&str, i32, i64, Option<&str>)| {
            offset_commit(conn, 8, group, generation, member, &[c]).unwrap()[0].1
        };

    assert_eq!(
        commit(&mut conn, generation, &member, ("codes", 0, 5, Some("ok"))),
        codes::NONE,
        "a valid commit"
    );
    assert_eq!(
        commit(
            &mut conn,
            generation,
            &member,
            ("no-such-topic", 0, 5, None)
        ),
        codes::UNKNOWN_TOPIC_OR_PARTITION,
        "commit to an unknown topic"
    );
    assert_eq!(
        commit(&mut conn, generation, &member, ("codes", 99, 5, None)),
        codes::UNKNOWN_TOPIC_OR_PARTITION,
        "commit to an unknown partition"
    );
    assert_eq!(
        commit(&mut conn, generation + 1, &member, ("codes", 0, 6, None)),
        codes::ILLEGAL_GENERATION,
        "commit with a generation that is not the group's"
    );
    assert_eq!(
        commit(
            &mut conn,
            generation,
            "no-such-member",
            ("codes", 0, 6, None)
        ),
        codes::UNKNOWN_MEMBER_ID,
        "commit from an unknown member"
    );
    let at_limit = "m".repeat(4096);
    assert_eq!(
        commit(
            &mut conn,
            generation,
            &member,
            ("codes", 1, 6, Some(&at_limit))
        ),
        codes::NONE,
        "4096 bytes of metadata is within offset.metadata.max.bytes"
    );
    let too_large = "m".repeat(4097);
    assert_eq!(
        commit(
            &mut conn,
            generation,
            &member,
            ("codes", 1, 7, Some(&too_large))
        ),
        codes::OFFSET_METADATA_TOO_LARGE,
        "4097 bytes of metadata"
    );
    assert_eq!(
        heartbeat(&mut conn, 4, group, generation - 1, &member).unwrap(),
        codes::ILLEGAL_GENERATION,
        "heartbeat with a stale generation"
    );
    assert_eq!(
        heartbeat(&mut conn, 4, group, generation, "no-such-member").unwrap(),
        codes::UNKNOWN_MEMBER_ID,
        "heartbeat from an unknown member"
    );
    let sync = sync_group(&mut conn, 5, group, generation + 1, &member, &[]).unwrap();
    assert_eq!(
        sync.error_code,
        codes::ILLEGAL_GENERATION,
        "SyncGroup with the wrong generation"
    );

    // Only the valid commits are stored: the failed ones changed nothing.
    let stored = offset_fetch(&mut conn, 8, group, "codes", &[0, 1]).unwrap();
    assert_eq!(stored[&0].offset, 5);
    assert_eq!(stored[&0].metadata.as_deref(), Some("ok"));
    assert_eq!(stored[&1].offset, 6);

    // An administrative commit (generation -1, no member) is refused while the group has a
    // member: it would be overwritten by that member's next commit.
    assert_ne!(
        commit(&mut conn, -1, "", ("codes", 0, 0, None)),
        codes::NONE,
        "a commit without a generation into an active group"
    );
}

#[test]
fn offset_commit_and_fetch_work_at_every_version() {
    let node = TestNode::start(node_options()).unwrap();
    let mut conn = Conn::connect(node.kafka_addr()).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(create_topic(&node.bootstrap(), "versions", 1, &[]))
        .unwrap();
    for (i, version) in (2..=8).enumerate() {
        let offset = 100 + i64::try_from(i).unwrap();
        let metadata = format!("v{version}");
        let result = offset_commit(
            &mut conn,
            version,
            "versions-group",
            -1,
            "",
            &[("versions", 0, offset, Some(&metadata))],
        )
        .unwrap();
        assert_eq!(result[0].1, codes::NONE, "OffsetCommit v{version}");
        for fetch_version in 1..=8 {
            let fetched =
                offset_fetch(&mut conn, fetch_version, "versions-group", "versions", &[0]).unwrap();
            assert_eq!(
                fetched[&0].offset, offset,
                "OffsetFetch v{fetch_version} after OffsetCommit v{version}"
            );
            assert_eq!(fetched[&0].metadata.as_deref(), Some(metadata.as_str()));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The `tierlog group` CLI.
// ---------------------------------------------------------------------------------------------

fn tierlog(node: &TestNode, args: &[&str]) -> Output {
    Command::new(tierlog_binary().unwrap())
        .args(args)
        .args(["--bootstrap", &node.bootstrap()])
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

fn tierlog_ok(node: &TestNode, args: &[&str]) -> String {
    let out = tierlog(node, args);
    assert!(
        out.status.success(),
        "tierlog {} failed: {}\nstdout:\n{}\nstderr:\n{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs a command that must fail; returns its stderr.
fn tierlog_err(node: &TestNode, args: &[&str]) -> String {
    let out = tierlog(node, args);
    assert!(
        !out.status.success(),
        "tierlog {} should have failed\nstdout:\n{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The table row whose first columns are `prefix` (split on whitespace).
fn row<'a>(text: &'a str, prefix: &[&str]) -> Option<Vec<&'a str>> {
    text.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|cols| cols.len() >= prefix.len() && cols[..prefix.len()] == *prefix)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_cli_lists_describes_resets_and_deletes() {
    let node = TestNode::start(node_options()).unwrap();
    let bootstrap = node.bootstrap();
    create_topic(&bootstrap, "cli-groups", 3, &[])
        .await
        .unwrap();
    // Per partition: 5 records at t=1e12 ms (2001), then 5 at t=1.5e12 ms (2017).
    let p = producer(&bootstrap, &[]).unwrap();
    for partition in 0..3 {
        for i in 0..10 {
            let ts = if i < 5 {
                1_000_000_000_000
            } else {
                1_500_000_000_000
            };
            p.send(
                FutureRecord::to("cli-groups")
                    .partition(partition)
                    .key("k")
                    .payload("v")
                    .timestamp(ts),
                CLIENT_TIMEOUT,
            )
            .await
            .map_err(|(e, _)| e)
            .unwrap();
        }
    }

    let group = "cli-group";
    let c = subscribed(
        &bootstrap,
        group,
        "cli-groups",
        &[("client.id", "cli-member")],
    )
    .unwrap();
    poll_until(&[&c], "cli-groups", SETTLE, "all 30 records", |o| {
        o.assignments[0].len() == 3 && distinct(o) == 30
    })
    .unwrap();
    c.commit_consumer_state(CommitMode::Sync).unwrap();
    let addr = node.kafka_addr();
    assert_eq!(
        committed(addr, group, "cli-groups", &[0, 1, 2]).unwrap(),
        BTreeMap::from([(0, 10), (1, 10), (2, 10)])
    );

    // While the member is alive (its heartbeats keep running in librdkafka's threads).
    let list = tierlog_ok(&node, &["group", "list"]);
    assert_eq!(
        row(&list, &[group]),
        Some(vec![group, "Stable", "consumer"]),
        "group list:\n{list}"
    );
    let describe = tierlog_ok(&node, &["group", "describe", group]);
    assert!(describe.contains("State:          Stable"), "{describe}");
    assert!(describe.contains("Assignor:       range"), "{describe}");
    assert!(describe.contains("Members:        1"), "{describe}");
    assert!(describe.contains("cli-member"), "client id in:\n{describe}");
    assert!(
        describe.contains("cli-groups:0,1,2"),
        "assignment in:\n{describe}"
    );
    for partition in ["0", "1", "2"] {
        let r = row(&describe, &["cli-groups", partition])
            .unwrap_or_else(|| panic!("no row for partition {partition}:\n{describe}"));
        assert_eq!(
            &r[2..5],
            ["10", "10", "0"],
            "committed, log end, lag:\n{describe}"
        );
        assert_ne!(r[5], "-", "partition {partition} has an owner:\n{describe}");
    }
    let refused = tierlog_err(
        &node,
        &[
            "group",
            "reset-offsets",
            group,
            "--topic",
            "cli-groups",
            "--to-earliest",
        ],
    );
    assert!(
        refused.contains("Stable"),
        "reset of an active group:\n{refused}"
    );
    let refused = tierlog_err(&node, &["group", "delete", group]);
    assert!(
        refused.contains("NON_EMPTY_GROUP"),
        "delete of an active group:\n{refused}"
    );

    drop(c);
    wait_for(
        "the group to become Empty",
        SETTLE,
        Duration::from_millis(100),
        || {
            let out = tierlog_ok(&node, &["group", "list"]);
            Ok(match row(&out, &[group, "Empty"]) {
                Some(_) => Poll::Ready(()),
                None => Poll::Pending(out),
            })
        },
    )
    .unwrap();
    let describe = tierlog_ok(&node, &["group", "describe", group]);
    assert!(describe.contains("State:          Empty"), "{describe}");
    assert!(describe.contains("Members:        0"), "{describe}");

    let reset = |args: &[&str]| {
        let mut all = vec!["group", "reset-offsets", group, "--topic", "cli-groups"];
        all.extend_from_slice(args);
        tierlog_ok(&node, &all)
    };
    let dry = reset(&["--to-earliest", "--dry-run"]);
    assert_eq!(
        row(&dry, &["cli-groups", "0"]),
        Some(vec!["cli-groups", "0", "10", "0"]),
        "{dry}"
    );
    assert_eq!(
        committed(addr, group, "cli-groups", &[0, 1, 2]).unwrap(),
        BTreeMap::from([(0, 10), (1, 10), (2, 10)]),
        "a dry run commits nothing"
    );
    reset(&["--to-earliest"]);
    assert_eq!(
        committed(addr, group, "cli-groups", &[0, 1, 2]).unwrap(),
        BTreeMap::from([(0, 0), (1, 0), (2, 0)])
    );
    reset(&["--to-offset", "4", "--partition", "1"]);
    assert_eq!(
        committed(addr, group, "cli-groups", &[0, 1, 2]).unwrap(),
        BTreeMap::from([(0, 0), (1, 4), (2, 0)])
    );
    reset(&["--to-offset", "1000", "--partition", "2"]);
    assert_eq!(
        committed(addr, group, "cli-groups", &[2]).unwrap()[&2],
        10,
        "--to-offset is clamped to the log end"
    );
    // Between the two timestamps: the first record of the second half.
    reset(&["--to-datetime", "2001-09-09T01:46:41Z"]);
    assert_eq!(
        committed(addr, group, "cli-groups", &[0, 1, 2]).unwrap(),
        BTreeMap::from([(0, 5), (1, 5), (2, 5)]),
        "--to-datetime between the halves"
    );
    reset(&["--to-datetime", "2100-01-01T00:00:00Z"]);
    assert_eq!(
        committed(addr, group, "cli-groups", &[0, 1, 2]).unwrap(),
        BTreeMap::from([(0, 10), (1, 10), (2, 10)]),
        "--to-datetime after every record resolves to the log end"
    );
    reset(&["--to-datetime", "1990-01-01T00:00:00Z"]);
    assert_eq!(
        committed(addr, group, "cli-groups", &[0]).unwrap()[&0],
        0,
        "--to-datetime before every record resolves to the log start"
    );
    reset(&["--to-latest"]);
    let describe = tierlog_ok(&node, &["group", "describe", group]);
    assert_eq!(
        row(&describe, &["cli-groups", "0"]),
        Some(vec!["cli-groups", "0", "10", "10", "0", "-"]),
        "{describe}"
    );
    let bad = tierlog_err(
        &node,
        &[
            "group",
            "reset-offsets",
            group,
            "--topic",
            "cli-groups",
            "--to-earliest",
            "--partition",
            "7",
        ],
    );
    assert!(bad.contains("no partition 7"), "{bad}");

    // Delete, then it is gone everywhere.
    let deleted = tierlog_ok(&node, &["group", "delete", group]);
    assert!(
        deleted.contains(&format!("Deleted group `{group}`")),
        "{deleted}"
    );
    let list = tierlog_ok(&node, &["group", "list"]);
    assert!(
        row(&list, &[group]).is_none(),
        "deleted group still listed:\n{list}"
    );
    assert_eq!(
        committed(addr, group, "cli-groups", &[0]).unwrap()[&0],
        -1,
        "a deleted group has no committed offsets"
    );
    let missing = tierlog_err(&node, &["group", "describe", group]);
    assert!(missing.contains("GROUP_ID_NOT_FOUND"), "{missing}");
    let missing = tierlog_err(&node, &["group", "delete", group]);
    assert!(missing.contains("GROUP_ID_NOT_FOUND"), "{missing}");
}

/// Kafka's FENCED_INSTANCE_ID.
const FENCED_INSTANCE_ID: i16 = 82;
/// Kafka's GROUP_SUBSCRIBED_TO_TOPIC.
const GROUP_SUBSCRIBED_TO_TOPIC: i16 = 86;

/// Joins `group` as static member `instance` (answering MEMBER_ID_REQUIRED if asked) and
/// syncs; returns `(member id, generation)`.
fn join_static(conn: &mut Conn, group: &str, instance: &str, topic: &str) -> (String, i32) {
    let mut joined = join_group(conn, 5, group, "", Some(instance), topic).unwrap();
    if joined.error_code == codes::MEMBER_ID_REQUIRED {
        let id = joined.member_id.as_str().to_owned();
        joined = join_group(conn, 5, group, &id, Some(instance), topic).unwrap();
    }
    assert_eq!(joined.error_code, codes::NONE, "static join");
    let member = joined.member_id.as_str().to_owned();
    let assignment = tierlog_tests::groups::consumer_assignment(topic, &[0]);
    let synced = sync_group(
        conn,
        5,
        group,
        joined.generation_id,
        &member,
        &[(member.as_str(), assignment)],
    )
    .unwrap();
    assert!(
        synced.error_code == codes::NONE || synced.error_code == codes::REBALANCE_IN_PROGRESS,
        "sync: {}",
        synced.error_code
    );
    (member, joined.generation_id)
}

/// Static membership (KIP-345): when a new process joins with a `group.instance.id` already in
/// use, it takes the instance over, and the old process's member id is fenced — its heartbeat,
/// its rejoin and its offset commits all get FENCED_INSTANCE_ID — while the new one works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_static_member_is_fenced() {
    let node = TestNode::start(node_options()).unwrap();
    create_topic(&node.bootstrap(), "static-fence", 1, &[])
        .await
        .unwrap();
    let (group, instance, topic) = ("static-fence-g", "instance-1", "static-fence");
    let mut old = Conn::connect(node.kafka_addr()).unwrap();
    let (old_id, _) = join_static(&mut old, group, instance, topic);
    let mut new = Conn::connect(node.kafka_addr()).unwrap();
    let (new_id, generation) = join_static(&mut new, group, instance, topic);
    assert_ne!(old_id, new_id, "the new process gets a new member id");

    let beat = |conn: &mut Conn, member: &str| {
        let req = kafka_protocol::messages::HeartbeatRequest::default()
            .with_group_id(tierlog_tests::groups::group_id(group))
            .with_generation_id(generation)
            .with_member_id(kafka_protocol::protocol::StrBytes::from_string(
                member.to_owned(),
            ))
            .with_group_instance_id(Some(kafka_protocol::protocol::StrBytes::from_string(
                instance.to_owned(),
            )));
        conn.request(&req, 4).unwrap().error_code
    };
    assert_eq!(beat(&mut old, &old_id), FENCED_INSTANCE_ID, "old heartbeat");
    let rejoin = join_group(&mut old, 5, group, &old_id, Some(instance), topic).unwrap();
    assert_eq!(rejoin.error_code, FENCED_INSTANCE_ID, "old rejoin");
    let commit = kafka_protocol::messages::OffsetCommitRequest::default()
        .with_group_id(tierlog_tests::groups::group_id(group))
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(kafka_protocol::protocol::StrBytes::from_string(old_id))
        .with_group_instance_id(Some(kafka_protocol::protocol::StrBytes::from_string(
            instance.to_owned(),
        )))
        .with_topics(vec![
            kafka_protocol::messages::offset_commit_request::OffsetCommitRequestTopic::default()
                .with_name(tierlog_tests::wire::topic_name(topic))
                .with_partitions(vec![
                    kafka_protocol::messages::offset_commit_request::OffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(5),
                ]),
        ]);
    let r = old.request(&commit, 7).unwrap();
    assert_eq!(
        r.topics[0].partitions[0].error_code, FENCED_INSTANCE_ID,
        "old commit"
    );
    assert_eq!(
        beat(&mut new, &new_id),
        codes::NONE,
        "the new process works"
    );
    let stored = committed(node.kafka_addr(), group, topic, &[0]).unwrap();
    assert_eq!(stored[&0], -1, "nothing was committed by the fenced member");
}

/// OffsetDelete removes a group's committed offsets of a topic nobody in the group consumes,
/// and refuses (GROUP_SUBSCRIBED_TO_TOPIC) while a member is subscribed to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offset_delete_removes_offsets_of_topics_no_member_consumes() {
    let node = TestNode::start(node_options()).unwrap();
    for t in ["od-old", "od-live"] {
        create_topic(&node.bootstrap(), t, 2, &[]).await.unwrap();
    }
    let group = "offset-delete-g";
    let mut conn = Conn::connect(node.kafka_addr()).unwrap();
    // A standalone commit (no member) of both topics.
    let codes_back = offset_commit(
        &mut conn,
        7,
        group,
        -1,
        "",
        &[
            ("od-old", 0, 3, None),
            ("od-old", 1, 4, None),
            ("od-live", 0, 5, None),
        ],
    )
    .unwrap();
    assert!(
        codes_back.iter().all(|(_, c)| *c == codes::NONE),
        "{codes_back:?}"
    );
    // A member subscribed to od-live only.
    let (_member, _generation) = join_and_sync(&mut conn, group, "od-live", &[0, 1]).unwrap();

    let delete = |conn: &mut Conn, topic: &str| {
        let req = kafka_protocol::messages::OffsetDeleteRequest::default()
            .with_group_id(tierlog_tests::groups::group_id(group))
            .with_topics(vec![
                kafka_protocol::messages::offset_delete_request::OffsetDeleteRequestTopic::default()
                    .with_name(tierlog_tests::wire::topic_name(topic))
                    .with_partitions(vec![
                        kafka_protocol::messages::offset_delete_request::OffsetDeleteRequestPartition::default()
                            .with_partition_index(0),
                        kafka_protocol::messages::offset_delete_request::OffsetDeleteRequestPartition::default()
                            .with_partition_index(1),
                    ]),
            ]);
        let r = conn.request(&req, 0).unwrap();
        assert_eq!(r.error_code, codes::NONE, "OffsetDelete {topic}");
        r.topics[0]
            .partitions
            .iter()
            .map(|p| p.error_code)
            .collect::<Vec<_>>()
    };
    let mut other = Conn::connect(node.kafka_addr()).unwrap();
    assert_eq!(delete(&mut other, "od-old"), vec![codes::NONE, codes::NONE]);
    assert_eq!(
        delete(&mut other, "od-live"),
        vec![GROUP_SUBSCRIBED_TO_TOPIC, GROUP_SUBSCRIBED_TO_TOPIC]
    );
    let old = committed(node.kafka_addr(), group, "od-old", &[0, 1]).unwrap();
    assert_eq!(old.values().copied().collect::<Vec<_>>(), vec![-1, -1]);
    let live = committed(node.kafka_addr(), group, "od-live", &[0]).unwrap();
    assert_eq!(live[&0], 5, "offsets of a consumed topic stay");
}

/// `--offsets-retention`: the committed offsets of a group that stays empty past the retention
/// are deleted (Kafka's `offsets.retention.minutes`); until then they are kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_of_a_long_empty_group_expire() {
    let mut opts = node_options();
    opts.extra_args
        .extend(["--offsets-retention".to_owned(), "3s".to_owned()]);
    let node = TestNode::start(opts).unwrap();
    create_topic(&node.bootstrap(), "expiring", 1, &[])
        .await
        .unwrap();
    let group = "expiring-g";
    let mut conn = Conn::connect(node.kafka_addr()).unwrap();
    let committed_at = Instant::now();
    let back = offset_commit(&mut conn, 7, group, -1, "", &[("expiring", 0, 42, None)]).unwrap();
    assert_eq!(back[0].1, codes::NONE);
    assert_eq!(
        committed(node.kafka_addr(), group, "expiring", &[0]).unwrap()[&0],
        42
    );
    wait_for(
        "the offsets of the empty group to expire",
        Duration::from_secs(30),
        Duration::from_millis(100),
        || {
            let now = committed(node.kafka_addr(), group, "expiring", &[0])?;
            Ok(if now[&0] == -1 {
                Poll::Ready(())
            } else {
                Poll::Pending(format!("still {now:?}"))
            })
        },
    )
    .unwrap();
    assert!(
        committed_at.elapsed() >= Duration::from_secs(3),
        "expired after {:?}, before the retention",
        committed_at.elapsed()
    );
}
