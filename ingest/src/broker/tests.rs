//! Leases and ISR lag on a manual clock, in-process: what used to need processes, SIGSTOP and
//! real waiting.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::create_topics_request::{CreatableReplicaAssignment, CreatableTopic};
use kafka_protocol::messages::*;

use tierlog_metadata::{Clock, NodeInfo};

use super::testing::{TestBroker, batch, name};
use crate::cluster::{Cluster, ClusterView};

/// Waits (on the view's change notifications, not a timer) until `cond` holds for the view.
pub(super) async fn until_view(cluster: &Cluster, cond: impl Fn(&ClusterView) -> bool) {
    let mut changes = cluster.subscribe();
    tokio::time::timeout(Duration::from_secs(10), async {
        while !cond(&cluster.view()) {
            changes.changed().await.unwrap();
        }
    })
    .await
    .expect("the cluster view never reached the expected state");
}

/// Registers a node 2 (no process behind it) under its own lease, and waits until the view
/// shows it.
async fn register_second_node(b: &TestBroker) {
    register_node(b, 2, None).await;
}

/// Registers node `id` in `rack` (no process behind it) under its own lease, and waits until
/// the view shows it.
pub(super) async fn register_node(b: &TestBroker, id: i32, rack: Option<&str>) {
    let cluster = &b.broker.host.cluster;
    let lease = cluster
        .store
        .grant_lease(Duration::from_secs(60))
        .await
        .unwrap();
    cluster
        .nodes
        .register(
            &NodeInfo {
                id,
                host: "127.0.0.1".into(),
                port: 1,
                rack: rack.map(str::to_owned),
                incarnation: uuid::Uuid::new_v4(),
                started_ms: b.clock.now_ms(),
                listeners: Vec::new(),
            },
            lease,
        )
        .await
        .unwrap();
    until_view(cluster, |v| v.nodes.contains_key(&id)).await;
}

#[tokio::test]
async fn writes_stop_once_the_lease_may_have_lapsed_and_resume_after_a_renewal() {
    let b = TestBroker::start().await;
    let r = b.create("t", 1).await;
    assert_eq!(r.topics[0].error_code, 0);
    let cluster = &b.broker.host.cluster;
    let m = &cluster.membership;
    assert!(m.renew(cluster.store.as_ref()).await.unwrap());
    assert_eq!(b.produce("t", 0, batch(1), 1).await, (0, 0));

    // No keep-alive answered for TTL − margin (60 s − 12 s): the store may expire the lease
    // any moment now, and another node may lead; this one acknowledges nothing.
    b.clock.advance(Duration::from_secs(47));
    assert!(m.lease_valid());
    b.clock.advance(Duration::from_secs(1));
    assert!(!m.lease_valid());
    assert_eq!(
        b.produce("t", 0, batch(1), 1).await.0,
        ResponseError::NotLeaderOrFollower.code()
    );

    // One answered keep-alive and writes resume, at the next offset: nothing was appended.
    assert!(m.renew(cluster.store.as_ref()).await.unwrap());
    assert_eq!(b.produce("t", 0, batch(1), 1).await, (0, 1));

    // The store dropped the lease (as after a long pause): the renewal says so, and the node
    // stops writing until it registers again.
    cluster
        .store
        .revoke_lease(m.lease().unwrap())
        .await
        .unwrap();
    assert!(!m.renew(cluster.store.as_ref()).await.unwrap());
    assert!(!m.lease_valid());
    assert_eq!(
        b.produce("t", 0, batch(1), 1).await.0,
        ResponseError::NotLeaderOrFollower.code()
    );
    b.stop().await;
}

/// Registers a second node (2, under its own lease; it fetches only when the test says) and
/// creates `topic` with `partitions` partitions led here and replicated to it.
async fn with_follower(b: &TestBroker, topic: &str, partitions: i32) -> CreateTopicsResponse {
    register_second_node(b).await;
    let r = b
        .create_topic(
            CreatableTopic::default()
                .with_name(name(topic))
                .with_num_partitions(-1)
                .with_replication_factor(-1)
                .with_assignments(
                    (0..partitions)
                        .map(|p| {
                            CreatableReplicaAssignment::default()
                                .with_partition_index(p)
                                .with_broker_ids(vec![BrokerId(1), BrokerId(2)])
                        })
                        .collect(),
                ),
        )
        .await;
    assert_eq!(r.topics[0].error_code, 0, "{:?}", r.topics[0].error_message);
    r
}

#[tokio::test]
async fn a_followers_fetch_is_capped_at_its_max_bytes_as_a_consumers() {
    let b = TestBroker::start().await;
    let r = with_follower(&b, "f", 2).await;
    let topic_id = r.topics[0].topic_id;
    let cluster = &b.broker.host.cluster;
    until_view(cluster, |v| {
        (0..2).all(|p| v.state(topic_id, p).is_some_and(|s| s.isr.len() == 2))
    })
    .await;
    let size = i32::try_from(batch(3).len()).unwrap();
    for p in 0..2 {
        for _ in 0..3 {
            assert_eq!(b.produce("f", p, batch(3), 1).await.0, 0);
        }
    }
    // Room for one and a half batches: one from the first partition, none from the second
    // (KIP-74: only the first partition with data may exceed what is left).
    let fetch = FetchRequest::default()
        .with_replica_id(BrokerId(2))
        .with_max_wait_ms(0)
        .with_min_bytes(0)
        .with_max_bytes(size * 3 / 2)
        .with_topics(vec![
            fetch_request::FetchTopic::default()
                .with_topic(name("f"))
                .with_partitions(
                    (0..2)
                        .map(|p| {
                            fetch_request::FetchPartition::default()
                                .with_partition(p)
                                .with_fetch_offset(0)
                                .with_partition_max_bytes(1 << 20)
                        })
                        .collect(),
                ),
        ]);
    let f: FetchResponse = b.request(ApiKey::Fetch, 11, &fetch).await;
    let sizes: Vec<usize> = f.responses[0]
        .partitions
        .iter()
        .map(|p| p.records.as_ref().map_or(0, Bytes::len))
        .collect();
    assert_eq!(sizes, vec![usize::try_from(size).unwrap(), 0]);
    b.stop().await;
}

#[tokio::test]
async fn a_follower_that_stops_fetching_leaves_the_isr_after_the_lag_time() {
    let lag = Duration::from_secs(10);
    let b = TestBroker::start_with(|c| c.replica_lag_time_max = lag).await;
    let cluster = &b.broker.host.cluster;
    let r = with_follower(&b, "r", 1).await;
    let topic_id = r.topics[0].topic_id;
    let isr = |v: &ClusterView| v.state(topic_id, 0).map(|s| s.isr.clone());
    until_view(cluster, |v| isr(v) == Some(vec![1, 2])).await;
    assert_eq!(b.produce("r", 0, batch(1), 1).await, (0, 0));

    // The follower fetches the batch, then fetches at the end: caught up as of now.
    for offset in [0, 1] {
        let f: FetchResponse = b
            .request(
                ApiKey::Fetch,
                11,
                &FetchRequest::default()
                    .with_replica_id(BrokerId(2))
                    .with_max_wait_ms(0)
                    .with_min_bytes(0)
                    .with_max_bytes(1 << 20)
                    .with_topics(vec![
                        fetch_request::FetchTopic::default()
                            .with_topic(name("r"))
                            .with_partitions(vec![
                                fetch_request::FetchPartition::default()
                                    .with_partition(0)
                                    .with_fetch_offset(offset)
                                    .with_partition_max_bytes(1 << 20),
                            ]),
                    ]),
            )
            .await;
        let pd = &f.responses[0].partitions[0];
        assert_eq!(pd.error_code, 0);
        if offset == 0 {
            assert!(pd.records.as_ref().is_some_and(|r: &Bytes| !r.is_empty()));
        }
    }
    let p = b
        .broker
        .host
        .partitions
        .topic("r")
        .unwrap()
        .partitions
        .get(0)
        .unwrap()
        .clone();
    assert_eq!(
        p.high_watermark(),
        1,
        "the follower's fetch at 1 commits the batch"
    );

    let shrink = |now| {
        crate::replication::shrink_isrs(
            &b.broker.host.partitions,
            &b.broker.host.isr_queue,
            now,
            lag,
        )
    };
    // Within the lag time: still in sync.
    b.clock.advance(lag / 2);
    shrink(b.clock.now());
    assert_eq!(isr(&cluster.view()), Some(vec![1, 2]));
    assert_eq!(p.isr_len(), 2);

    // Past it: out, written to the store by compare-and-swap (the node's ISR queue), and
    // counted.
    b.clock.advance(lag);
    shrink(b.clock.now());
    until_view(cluster, |v| isr(v) == Some(vec![1])).await;
    let stored = cluster.states.get(topic_id, 0).await.unwrap().unwrap();
    assert_eq!(stored.value.isr, vec![1]);
    assert_eq!(
        b.broker
            .metrics
            .isr_shrinks
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    until_view(cluster, |v| isr(v) == Some(vec![1])).await;
    b.stop().await;
}

#[tokio::test]
async fn a_node_opens_only_the_partitions_it_replicates_and_follows_their_moves() {
    let b = TestBroker::start().await;
    register_second_node(&b).await;
    let assign = |i: i32, nodes: &[i32]| {
        CreatableReplicaAssignment::default()
            .with_partition_index(i)
            .with_broker_ids(nodes.iter().map(|n| BrokerId(*n)).collect())
    };
    let r = b
        .create_topic(
            CreatableTopic::default()
                .with_name(name("m"))
                .with_num_partitions(-1)
                .with_replication_factor(-1)
                .with_assignments(vec![assign(0, &[1]), assign(1, &[2]), assign(2, &[2, 1])]),
        )
        .await;
    assert_eq!(r.topics[0].error_code, 0, "{:?}", r.topics[0].error_message);
    let topic_id = r.topics[0].topic_id;
    let host = &b.broker.host;
    let hosted = |i| host.partitions.partition("m", i).is_some();
    let dir = host
        .partitions
        .log_dir()
        .join(format!("m-{}", topic_id.simple()));
    assert!(hosted(0) && !hosted(1) && hosted(2));
    assert!(dir.join("0").exists() && !dir.join("1").exists());

    // Partition 1 is elsewhere: NOT_LEADER_OR_FOLLOWER, as Kafka answers for a replica it
    // does not host; past the topic's partitions, UNKNOWN_TOPIC_OR_PARTITION.
    let not_here = ResponseError::NotLeaderOrFollower.code();
    assert_eq!(b.produce("m", 1, batch(1), 1).await.0, not_here);
    assert_eq!(
        b.produce("m", 3, batch(1), 1).await.0,
        ResponseError::UnknownTopicOrPartition.code()
    );
    let offsets: ListOffsetsResponse = b
        .request(
            ApiKey::ListOffsets,
            7,
            &ListOffsetsRequest::default().with_topics(vec![
                list_offsets_request::ListOffsetsTopic::default()
                    .with_name(name("m"))
                    .with_partitions(vec![
                        list_offsets_request::ListOffsetsPartition::default()
                            .with_partition_index(1)
                            .with_timestamp(-1),
                    ]),
            ]),
        )
        .await;
    assert_eq!(offsets.topics[0].partitions[0].error_code, not_here);

    // Reassigned: partition 1 gains a replica here, partition 0 moves to node 2.
    let states = &host.cluster.states;
    let moved = |s: &tierlog_metadata::PartitionState, replicas: Vec<i32>| {
        let mut next = s.clone();
        if !replicas.contains(&next.leader) {
            next.leader = replicas[0];
            next.leader_epoch += 1;
        }
        next.isr.retain(|r| replicas.contains(r));
        if next.isr.is_empty() {
            next.isr = vec![next.leader];
        }
        next.replicas = replicas;
        next.partition_epoch += 1;
        next
    };
    for (partition, replicas) in [(1, vec![2, 1]), (0, vec![2])] {
        let current = states.get(topic_id, partition).await.unwrap().unwrap();
        let next = moved(&current.value, replicas);
        states.cas(&current, &next, &[]).await.unwrap().unwrap();
    }
    super::testing::wait_until(|| async { hosted(1) && !hosted(0) }).await;
    assert!(
        !dir.join("0").exists(),
        "a replica moved away leaves no files"
    );
    assert!(dir.join("1").exists());
    b.stop().await;
}

#[tokio::test]
async fn a_reassignment_is_listed_while_it_runs_and_cancelled_back_to_the_original_replicas() {
    let b = TestBroker::start().await;
    register_second_node(&b).await;
    let cluster = &b.broker.host.cluster;
    let me = cluster.me;
    let r = b
        .create_topic(
            CreatableTopic::default()
                .with_name(name("x"))
                .with_num_partitions(-1)
                .with_replication_factor(-1)
                .with_assignments(vec![
                    CreatableReplicaAssignment::default()
                        .with_partition_index(0)
                        .with_broker_ids(vec![BrokerId(me)]),
                ]),
        )
        .await;
    assert_eq!(r.topics[0].error_code, 0);
    let topic_id = r.topics[0].topic_id;
    until_view(cluster, |v| v.state(topic_id, 0).is_some()).await;
    let alter = |replicas: Option<Vec<i32>>| {
        AlterPartitionReassignmentsRequest::default().with_topics(vec![
            alter_partition_reassignments_request::ReassignableTopic::default()
                .with_name(name("x"))
                .with_partitions(vec![
                    alter_partition_reassignments_request::ReassignablePartition::default()
                        .with_partition_index(0)
                        .with_replicas(replicas.map(|r| r.into_iter().map(BrokerId).collect())),
                ]),
        ])
    };
    // Node 2 never fetches: the move to [me, 2] stays in progress.
    let started: AlterPartitionReassignmentsResponse = b
        .request(
            ApiKey::AlterPartitionReassignments,
            0,
            &alter(Some(vec![me, 2])),
        )
        .await;
    assert_eq!(started.responses[0].partitions[0].error_code, 0);
    until_view(cluster, |v| {
        v.state(topic_id, 0)
            .is_some_and(|s| s.adding_replicas == vec![2])
    })
    .await;
    let listed: ListPartitionReassignmentsResponse = b
        .request(
            ApiKey::ListPartitionReassignments,
            0,
            &ListPartitionReassignmentsRequest::default(),
        )
        .await;
    let p = &listed.topics[0].partitions[0];
    assert_eq!(
        (
            p.replicas.clone(),
            p.adding_replicas.clone(),
            p.removing_replicas.clone()
        ),
        (vec![BrokerId(me), BrokerId(2)], vec![BrokerId(2)], vec![])
    );
    // The controller leaves it be: node 2 is not in sync.
    let s = cluster.view().state(topic_id, 0).cloned().unwrap();
    assert!(s.is_reassigning() && s.isr == vec![me]);

    let cancelled: AlterPartitionReassignmentsResponse = b
        .request(ApiKey::AlterPartitionReassignments, 0, &alter(None))
        .await;
    assert_eq!(cancelled.responses[0].partitions[0].error_code, 0);
    until_view(cluster, |v| {
        v.state(topic_id, 0)
            .is_some_and(|s| s.replicas == vec![me] && !s.is_reassigning())
    })
    .await;
    let again: AlterPartitionReassignmentsResponse = b
        .request(ApiKey::AlterPartitionReassignments, 0, &alter(None))
        .await;
    assert_eq!(
        again.responses[0].partitions[0].error_code,
        ResponseError::NoReassignmentInProgress.code()
    );
    b.stop().await;
}
