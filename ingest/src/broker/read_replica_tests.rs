//! Fetching from the closest replica (KIP-392), in-process: the leader sends a consumer to an
//! in-sync replica in its rack, and a follower serves consumers up to its high watermark. The
//! other node is registered in the view with no process behind it; the test fetches as it.

#![allow(clippy::unwrap_used)]

use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::create_topics_request::{CreatableReplicaAssignment, CreatableTopic};
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::*;

use tierlog_metadata::{Clock, NodeId, TopicId};

use super::testing::{TestBroker, batch, name, wait_until};
use super::tests::{register_node, until_view};
use crate::cluster::ClusterView;
use crate::config::ReplicaSelector;

/// A Fetch of partition 0 of `topic` at `offset`: as follower `replica`, or as a consumer in
/// `rack` when `replica` is -1. Waits up to `max_wait` for one byte.
struct Fetch<'a> {
    version: i16,
    replica: NodeId,
    rack: &'a str,
    offset: i64,
    epoch: i32,
    max_wait: Duration,
}

impl Default for Fetch<'_> {
    fn default() -> Self {
        Fetch {
            version: 12,
            replica: -1,
            rack: "",
            offset: 0,
            epoch: -1,
            max_wait: Duration::ZERO,
        }
    }
}

impl Fetch<'_> {
    async fn send(&self, b: &TestBroker, topic: &str) -> PartitionData {
        let req = FetchRequest::default()
            .with_replica_id(BrokerId(self.replica))
            .with_max_wait_ms(self.max_wait.as_millis() as i32)
            .with_min_bytes(1)
            .with_max_bytes(1 << 20)
            .with_rack_id(kafka_protocol::protocol::StrBytes::from_string(
                self.rack.to_owned(),
            ))
            .with_topics(vec![
                fetch_request::FetchTopic::default()
                    .with_topic(name(topic))
                    .with_partitions(vec![
                        fetch_request::FetchPartition::default()
                            .with_partition(0)
                            .with_current_leader_epoch(self.epoch)
                            .with_fetch_offset(self.offset)
                            // A follower sends its log start; a consumer, none.
                            .with_log_start_offset(if self.replica < 0 { -1 } else { 0 })
                            .with_partition_max_bytes(1 << 20),
                    ]),
            ]);
        let r: FetchResponse = b.request(ApiKey::Fetch, self.version, &req).await;
        assert_eq!(r.error_code, 0);
        r.responses[0].partitions[0].clone()
    }
}

/// Creates `topic` with one partition on `replicas` (the first leads) and waits until the view
/// shows its ISR whole.
async fn create_on(b: &TestBroker, topic: &str, replicas: &[NodeId]) -> TopicId {
    let r = b
        .create_topic(
            CreatableTopic::default()
                .with_name(name(topic))
                .with_num_partitions(-1)
                .with_replication_factor(-1)
                .with_assignments(vec![
                    CreatableReplicaAssignment::default()
                        .with_partition_index(0)
                        .with_broker_ids(replicas.iter().map(|n| BrokerId(*n)).collect()),
                ]),
        )
        .await;
    assert_eq!(r.topics[0].error_code, 0, "{:?}", r.topics[0].error_message);
    let topic_id = r.topics[0].topic_id;
    let full = |v: &ClusterView| {
        v.state(topic_id, 0)
            .is_some_and(|s| s.leader == replicas[0] && s.isr.len() == replicas.len())
    };
    until_view(&b.broker.host.cluster, full).await;
    topic_id
}

/// `n` records as a batch based at `base` (offsets are outside the CRC).
fn batch_at(n: usize, base: i64) -> Bytes {
    let mut b = BytesMut::from(&batch(n)[..]);
    b[..8].copy_from_slice(&base.to_be_bytes());
    b.freeze()
}

/// Node 2 fetches partition 0 of `topic` from node 1 up to `end`, its log end, as its
/// fetcher would: it is caught up, and the high watermark reaches `end`.
async fn replicate_to(b: &TestBroker, topic: &str, end: i64) {
    for offset in [0, end] {
        let fetch = Fetch {
            replica: 2,
            offset,
            ..Fetch::default()
        };
        assert_eq!(fetch.send(b, topic).await.error_code, 0);
    }
}

/// Asserts that node 1 serves a consumer in `rack` itself: records, no preferred replica.
async fn assert_served_here(b: &TestBroker, topic: &str, version: i16, rack: &str) {
    let pd = Fetch {
        version,
        rack,
        ..Fetch::default()
    }
    .send(b, topic)
    .await;
    assert_eq!(pd.error_code, 0, "v{version} {rack}");
    assert_eq!(pd.preferred_read_replica, BrokerId(-1), "v{version} {rack}");
    assert!(
        pd.records.as_ref().is_some_and(|r| !r.is_empty()),
        "v{version} {rack}"
    );
}

#[tokio::test]
async fn a_consumer_is_sent_to_the_in_sync_replica_in_its_rack_until_it_leaves_the_isr() {
    let lag = Duration::from_secs(10);
    let b = TestBroker::start_with(|c| {
        c.rack = Some("a".into());
        c.replica_lag_time_max = lag;
    })
    .await;
    register_node(&b, 2, Some("b")).await;
    let topic_id = create_on(&b, "f", &[1, 2]).await;
    assert_eq!(b.produce("f", 0, batch(3), 1).await, (0, 0));
    replicate_to(&b, "f", 3).await;

    // In rack b: sent to node 2, with the leader's offsets and no records, at once.
    let sent = Fetch {
        rack: "b",
        max_wait: Duration::from_secs(30),
        ..Fetch::default()
    }
    .send(&b, "f")
    .await;
    assert_eq!(sent.error_code, 0);
    assert_eq!(sent.preferred_read_replica, BrokerId(2));
    assert_eq!(sent.records.as_deref(), Some(&[][..]));
    assert_eq!(
        (
            sent.high_watermark,
            sent.last_stable_offset,
            sent.log_start_offset
        ),
        (3, 3, 0)
    );
    let answers = &b.broker.metrics.preferred_replica_answers;
    assert_eq!(answers.load(Ordering::Relaxed), 1);

    // The leader serves its own rack, clients without a rack, unknown racks, and fetches
    // before v11 (no rack field, no preferred replica).
    for (version, rack) in [(12, "a"), (12, ""), (12, "z"), (10, "b")] {
        assert_served_here(&b, "f", version, rack).await;
    }
    // A consumer past what node 2 holds stays with the leader.
    let past = Fetch {
        rack: "b",
        offset: 4,
        ..Fetch::default()
    };
    assert_eq!(
        past.send(&b, "f").await.preferred_read_replica,
        BrokerId(-1)
    );
    assert_eq!(answers.load(Ordering::Relaxed), 1);

    // Node 2 stops fetching and leaves the ISR: rack b reads from the leader again.
    let cluster = &b.broker.host.cluster;
    b.clock.advance(lag * 2);
    crate::replication::shrink_isrs(
        &b.broker.host.partitions,
        &b.broker.host.isr_queue,
        b.clock.now(),
        lag,
    );
    until_view(cluster, |v| {
        v.state(topic_id, 0).is_some_and(|s| s.isr == vec![1])
    })
    .await;
    let p = b.broker.host.partitions.partition("f", 0).unwrap();
    wait_until(|| async { p.isr_len() == 1 }).await;
    assert_served_here(&b, "f", 12, "b").await;
    b.stop().await;
}

#[tokio::test]
async fn the_leader_selector_keeps_consumers_on_the_leader() {
    let b = TestBroker::start_with(|c| {
        c.rack = Some("a".into());
        c.replica_selector = ReplicaSelector::Leader;
    })
    .await;
    register_node(&b, 2, Some("b")).await;
    create_on(&b, "f", &[1, 2]).await;
    assert_eq!(b.produce("f", 0, batch(3), 1).await, (0, 0));
    replicate_to(&b, "f", 3).await;
    assert_served_here(&b, "f", 12, "b").await;
    b.stop().await;
}

#[tokio::test]
async fn a_follower_serves_consumers_up_to_its_high_watermark_while_in_sync() {
    let b = TestBroker::start().await;
    register_node(&b, 2, Some("b")).await;
    // Node 2 leads (nothing runs behind it, so node 1's fetcher never reaches it); the test
    // appends to node 1's copy as its fetcher would.
    let topic_id = create_on(&b, "f", &[2, 1]).await;
    let p = b.broker.host.partitions.partition("f", 0).unwrap();
    wait_until(|| async { matches!(p.check_consumer_read(-1, true), Ok(false)) }).await;
    let now = b.clock.now_ms();
    p.append_follower(batch_at(2, 0), 0, now).unwrap();
    p.append_follower(batch_at(2, 2), 2, now).unwrap();

    // Up to its high watermark (2) of its log end (4).
    let pd = Fetch::default().send(&b, "f").await;
    assert_eq!(pd.error_code, 0);
    assert_eq!((pd.high_watermark, pd.last_stable_offset), (2, 2));
    assert_eq!(pd.records.as_ref().unwrap(), &batch_at(2, 0));
    let served = &b.broker.metrics.follower_fetched_bytes;
    assert_eq!(served.load(Ordering::Relaxed), batch_at(2, 0).len() as u64);

    // Between its high watermark and its log end: nothing yet, and a long-poll is answered
    // when the leader's high watermark reaches it.
    let waiting = Fetch {
        offset: 2,
        max_wait: Duration::from_secs(30),
        ..Fetch::default()
    };
    let (pd, ()) = tokio::join!(waiting.send(&b, "f"), async {
        tokio::task::yield_now().await;
        p.append_follower(Bytes::new(), 4, now).unwrap();
    });
    assert_eq!(pd.error_code, 0);
    assert_eq!(pd.records.as_ref().unwrap(), &batch_at(2, 2));

    // Past its log end: OFFSET_OUT_OF_RANGE with no offsets (librdkafka then goes back to
    // the leader); a newer leader epoch than it knows, UNKNOWN_LEADER_EPOCH; a fetch before
    // v11 (which knows no preferred replicas), NOT_LEADER_OR_FOLLOWER.
    let out = Fetch {
        offset: 5,
        ..Fetch::default()
    };
    let pd = out.send(&b, "f").await;
    assert_eq!(pd.error_code, ResponseError::OffsetOutOfRange.code());
    assert_eq!(pd.high_watermark, -1);
    let newer = Fetch {
        epoch: 1,
        ..Fetch::default()
    };
    let code = newer.send(&b, "f").await.error_code;
    assert_eq!(code, ResponseError::UnknownLeaderEpoch.code());
    let old = Fetch {
        version: 10,
        ..Fetch::default()
    };
    let not_here = ResponseError::NotLeaderOrFollower.code();
    assert_eq!(old.send(&b, "f").await.error_code, not_here);

    // Out of the ISR (as the leader committed it): NOT_LEADER_OR_FOLLOWER, so the consumer
    // returns to the leader.
    let states = &b.broker.host.cluster.states;
    let current = states.get(topic_id, 0).await.unwrap().unwrap();
    let mut next = current.value.clone();
    next.isr = vec![2];
    next.partition_epoch += 1;
    states.cas(&current, &next, &[]).await.unwrap().unwrap();
    wait_until(|| async { p.check_consumer_read(-1, true).is_err() }).await;
    assert_eq!(Fetch::default().send(&b, "f").await.error_code, not_here);
    b.stop().await;
}
