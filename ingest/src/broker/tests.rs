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
async fn until_view(cluster: &Cluster, cond: impl Fn(&ClusterView) -> bool) {
    let mut changes = cluster.subscribe();
    tokio::time::timeout(Duration::from_secs(10), async {
        while !cond(&cluster.view()) {
            changes.changed().await.unwrap();
        }
    })
    .await
    .expect("the cluster view never reached the expected state");
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
                id: 2,
                host: "127.0.0.1".into(),
                port: 1,
                rack: None,
                incarnation: uuid::Uuid::new_v4(),
                started_ms: b.clock.now_ms(),
                listeners: Vec::new(),
            },
            lease,
        )
        .await
        .unwrap();
    until_view(cluster, |v| v.nodes.len() == 2).await;
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
    let p = b.broker.host.partitions.topic("r").unwrap().partitions[0].clone();
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
