//! The idempotent producer and transactions through the real request path of an in-process
//! broker (`TestBroker`): InitProducerId, deduplicated retries, AddPartitionsToTxn, EndTxn,
//! read_committed fetches and ListOffsets, TxnOffsetCommit, fencing and the timeout abort.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::txn_offset_commit_request::{
    TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::RecordBatchDecoder;

use crate::broker::testing::{Producer, TestBroker, name, produce_req, producer_batch};

fn txn_id(s: &str) -> TransactionalId {
    TransactionalId(StrBytes::from_string(s.to_owned()))
}

/// InitProducerId (v4) → (error, producer id, epoch), with a 60 s transaction timeout.
async fn init(b: &TestBroker, id: Option<&str>, expected: (i64, i16)) -> (i16, i64, i16) {
    init_with_timeout(b, id, expected, 60_000).await
}

async fn init_with_timeout(
    b: &TestBroker,
    id: Option<&str>,
    expected: (i64, i16),
    timeout_ms: i32,
) -> (i16, i64, i16) {
    let r: InitProducerIdResponse = b
        .request(
            ApiKey::InitProducerId,
            4,
            &InitProducerIdRequest::default()
                .with_transactional_id(id.map(txn_id))
                .with_transaction_timeout_ms(timeout_ms)
                .with_producer_id(ProducerId(expected.0))
                .with_producer_epoch(expected.1),
        )
        .await;
    (r.error_code, r.producer_id.0, r.producer_epoch)
}

/// AddPartitionsToTxn (v3) of partitions of one topic → the codes per partition.
async fn add_partitions(
    b: &TestBroker,
    id: &str,
    (pid, epoch): (i64, i16),
    topic: &str,
    partitions: &[i32],
) -> Vec<i16> {
    let r: AddPartitionsToTxnResponse = b
        .request(
            ApiKey::AddPartitionsToTxn,
            3,
            &AddPartitionsToTxnRequest::default()
                .with_v3_and_below_transactional_id(txn_id(id))
                .with_v3_and_below_producer_id(ProducerId(pid))
                .with_v3_and_below_producer_epoch(epoch)
                .with_v3_and_below_topics(vec![
                    AddPartitionsToTxnTopic::default()
                        .with_name(name(topic))
                        .with_partitions(partitions.to_vec()),
                ]),
        )
        .await;
    r.results_by_topic_v3_and_below[0]
        .results_by_partition
        .iter()
        .map(|p| p.partition_error_code)
        .collect()
}

async fn end(b: &TestBroker, id: &str, (pid, epoch): (i64, i16), commit: bool) -> i16 {
    let r: EndTxnResponse = b
        .request(
            ApiKey::EndTxn,
            3,
            &EndTxnRequest::default()
                .with_transactional_id(txn_id(id))
                .with_producer_id(ProducerId(pid))
                .with_producer_epoch(epoch)
                .with_committed(commit),
        )
        .await;
    assert_eq!(
        (r.producer_id.0, r.producer_epoch),
        (-1, -1),
        "EndTxn v3 has no bump"
    );
    r.error_code
}

/// A transactional produce (v9) → (error, base offset).
async fn produce_txn(b: &TestBroker, id: &str, topic: &str, p: i32, records: Bytes) -> (i16, i64) {
    produce_txn_at(b, 9, id, topic, p, records).await
}

/// A transactional produce at `version` → (error, base offset).
async fn produce_txn_at(
    b: &TestBroker,
    version: i16,
    id: &str,
    topic: &str,
    p: i32,
    records: Bytes,
) -> (i16, i64) {
    let r: ProduceResponse = b
        .request(
            ApiKey::Produce,
            version,
            &produce_req(topic, p, records, -1).with_transactional_id(Some(txn_id(id))),
        )
        .await;
    let p = &r.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

/// A consumer fetch (v12) of partition 0 from `offset` → (records' offsets without control
/// records, last stable offset, aborted transactions' (producer id, first offset)).
async fn fetch(
    b: &TestBroker,
    topic: &str,
    offset: i64,
    read_committed: bool,
) -> (Vec<i64>, i64, Option<Vec<(i64, i64)>>) {
    let r: FetchResponse = b
        .request(
            ApiKey::Fetch,
            12,
            &FetchRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_max_wait_ms(0)
                .with_max_bytes(1 << 20)
                .with_isolation_level(i8::from(read_committed))
                .with_topics(vec![
                    FetchTopic::default()
                        .with_topic(name(topic))
                        .with_partitions(vec![
                            FetchPartition::default()
                                .with_partition(0)
                                .with_fetch_offset(offset)
                                .with_partition_max_bytes(1 << 20),
                        ]),
                ]),
        )
        .await;
    let p = &r.responses[0].partitions[0];
    assert_eq!(p.error_code, 0);
    let mut offsets = Vec::new();
    if let Some(mut records) = p.records.clone() {
        for batch in RecordBatchDecoder::decode_all(&mut records).unwrap() {
            for rec in batch.records {
                if !rec.control {
                    offsets.push(rec.offset);
                }
            }
        }
    }
    let aborted = p.aborted_transactions.as_ref().map(|a| {
        a.iter()
            .map(|t| (t.producer_id.0, t.first_offset))
            .collect()
    });
    (offsets, p.last_stable_offset, aborted)
}

async fn latest(b: &TestBroker, topic: &str, read_committed: bool) -> i64 {
    let r: ListOffsetsResponse = b
        .request(
            ApiKey::ListOffsets,
            7,
            &ListOffsetsRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_isolation_level(i8::from(read_committed))
                .with_topics(vec![
                    ListOffsetsTopic::default()
                        .with_name(name(topic))
                        .with_partitions(vec![
                            ListOffsetsPartition::default()
                                .with_partition_index(0)
                                .with_timestamp(-1),
                        ]),
                ]),
        )
        .await;
    r.topics[0].partitions[0].offset
}

fn txn_batch(n: usize, (pid, epoch): (i64, i16), sequence: i32) -> Bytes {
    producer_batch(
        n,
        Producer {
            id: pid,
            epoch,
            sequence,
            transactional: true,
        },
    )
}

#[tokio::test]
async fn idempotent_producers_get_distinct_ids_and_retries_are_deduplicated() {
    let b = TestBroker::start().await;
    b.create("t", 1).await;
    let (code, pid, epoch) = init(&b, None, (-1, -1)).await;
    assert_eq!((code, epoch), (0, 0));
    let (_, other, _) = init(&b, None, (-1, -1)).await;
    assert_ne!(pid, other, "every idempotent producer gets its own id");

    let p = |sequence| Producer {
        id: pid,
        epoch: 0,
        sequence,
        transactional: false,
    };
    assert_eq!(b.produce("t", 0, producer_batch(3, p(0)), -1).await, (0, 0));
    assert_eq!(b.produce("t", 0, producer_batch(2, p(3)), -1).await, (0, 3));
    // A retry of the first batch gets its offset back and is not stored again.
    assert_eq!(b.produce("t", 0, producer_batch(3, p(0)), -1).await, (0, 0));
    assert_eq!(b.produce("t", 0, producer_batch(2, p(3)), -1).await, (0, 3));
    // A gap is refused.
    assert_eq!(
        b.produce("t", 0, producer_batch(1, p(9)), -1).await.0,
        ResponseError::OutOfOrderSequenceNumber.code()
    );
    assert_eq!(b.produce("t", 0, producer_batch(1, p(5)), -1).await, (0, 5));
    let (offsets, ..) = fetch(&b, "t", 0, false).await;
    assert_eq!(offsets, (0..6).collect::<Vec<_>>());
    b.stop().await;
}

#[tokio::test]
async fn committed_transactions_are_visible_to_read_committed_and_aborted_ones_are_listed() {
    let b = TestBroker::start().await;
    b.create("t", 1).await;
    let (code, pid, epoch) = init(&b, Some("tx"), (-1, -1)).await;
    assert_eq!(code, 0);
    let me = (pid, epoch);

    // Transaction 1: three records, aborted.
    assert_eq!(add_partitions(&b, "tx", me, "t", &[0]).await, vec![0]);
    assert_eq!(
        produce_txn(&b, "tx", "t", 0, txn_batch(3, me, 0)).await,
        (0, 0)
    );
    // Open: read_committed sees nothing past its first offset.
    assert_eq!(latest(&b, "t", true).await, 0);
    assert_eq!(latest(&b, "t", false).await, 3);
    let (offsets, lso, _) = fetch(&b, "t", 0, true).await;
    assert!(offsets.is_empty(), "{offsets:?}");
    assert_eq!(lso, 0);
    assert_eq!(end(&b, "tx", me, false).await, 0);

    // Transaction 2: two records, committed.
    assert_eq!(add_partitions(&b, "tx", me, "t", &[0]).await, vec![0]);
    assert_eq!(
        produce_txn(&b, "tx", "t", 0, txn_batch(2, me, 3)).await,
        (0, 4)
    );
    assert_eq!(end(&b, "tx", me, true).await, 0);
    // A retried EndTxn of the finished transaction succeeds again.
    assert_eq!(end(&b, "tx", me, true).await, 0);

    // 0..3 aborted data, 3 abort marker, 4..6 committed data, 6 commit marker.
    assert_eq!(latest(&b, "t", true).await, 7);
    let (offsets, lso, aborted) = fetch(&b, "t", 0, true).await;
    assert_eq!(lso, 7);
    assert_eq!(
        offsets,
        vec![0, 1, 2, 4, 5],
        "the client drops the aborted ones"
    );
    assert_eq!(aborted, Some(vec![(pid, 0)]));
    let (_, _, aborted) = fetch(&b, "t", 0, false).await;
    assert_eq!(aborted, None, "read_uncommitted gets a null list");
    b.stop().await;
}

#[tokio::test]
async fn a_new_producer_fences_the_old_one_and_aborts_its_transaction() {
    let b = TestBroker::start().await;
    b.create("t", 1).await;
    let (_, pid, epoch) = init(&b, Some("tx"), (-1, -1)).await;
    let old = (pid, epoch);
    add_partitions(&b, "tx", old, "t", &[0]).await;
    assert_eq!(
        produce_txn(&b, "tx", "t", 0, txn_batch(2, old, 0)).await.0,
        0
    );

    let (code, pid2, epoch2) = init(&b, Some("tx"), (-1, -1)).await;
    assert_eq!(code, 0);
    assert_eq!(pid2, pid, "same transactional id, same producer id");
    assert!(
        epoch2 > epoch + 1,
        "one bump to abort, one for the new producer"
    );
    // The zombie is fenced at the coordinator and at the partition.
    assert_eq!(
        end(&b, "tx", old, true).await,
        ResponseError::ProducerFenced.code()
    );
    assert_eq!(
        produce_txn(&b, "tx", "t", 0, txn_batch(1, old, 2)).await.0,
        ResponseError::InvalidProducerEpoch.code()
    );
    // Its open transaction was aborted: nothing of it is visible.
    let (offsets, lso, aborted) = fetch(&b, "t", 0, true).await;
    assert_eq!(
        offsets,
        vec![0, 1],
        "delivered, to be dropped by the client"
    );
    assert_eq!(aborted, Some(vec![(pid, 0)]));
    assert_eq!(lso, 3);
    b.stop().await;
}

#[tokio::test]
async fn an_abandoned_transaction_is_aborted_at_its_timeout() {
    let b = TestBroker::start_with(|c| {
        c.transaction_abort_check_interval = Duration::from_millis(20);
    })
    .await;
    b.create("t", 1).await;
    let (_, pid, epoch) = init_with_timeout(&b, Some("tx"), (-1, -1), 5_000).await;
    add_partitions(&b, "tx", (pid, epoch), "t", &[0]).await;
    produce_txn(&b, "tx", "t", 0, txn_batch(2, (pid, epoch), 0)).await;
    assert_eq!(latest(&b, "t", true).await, 0);
    // Short of the 60 s lease: the node still leads the partition.
    b.clock.advance(Duration::from_secs(6));
    crate::broker::testing::wait_until(|| async { latest(&b, "t", true).await == 3 }).await;
    let m = b.broker.txns.describe("tx").await.unwrap().unwrap();
    assert_eq!(m.state, tierlog_metadata::TxnState::CompleteAbort);
    assert_eq!(
        m.producer_epoch,
        epoch + 1,
        "the abandoned producer is fenced"
    );
    b.stop().await;
}

#[tokio::test]
async fn offsets_committed_in_a_transaction_reach_the_group_only_on_commit() {
    let b = TestBroker::start().await;
    b.create("t", 1).await;
    let (_, pid, epoch) = init(&b, Some("tx"), (-1, -1)).await;
    let me = (pid, epoch);
    let commit_offset = |offset: i64| {
        TxnOffsetCommitRequest::default()
            .with_transactional_id(txn_id("tx"))
            .with_group_id(GroupId(StrBytes::from_static_str("g")))
            .with_producer_id(ProducerId(pid))
            .with_producer_epoch(epoch)
            .with_generation_id(-1)
            .with_topics(vec![
                TxnOffsetCommitRequestTopic::default()
                    .with_name(name("t"))
                    .with_partitions(vec![
                        TxnOffsetCommitRequestPartition::default()
                            .with_partition_index(0)
                            .with_committed_offset(offset)
                            .with_committed_leader_epoch(-1),
                    ]),
            ])
    };
    let committed = || async {
        let r: OffsetFetchResponse = b
            .request(
                ApiKey::OffsetFetch,
                7,
                &OffsetFetchRequest::default()
                    .with_group_id(GroupId(StrBytes::from_static_str("g")))
                    .with_topics(Some(vec![
                        OffsetFetchRequestTopic::default()
                            .with_name(name("t"))
                            .with_partition_indexes(vec![0]),
                    ])),
            )
            .await;
        r.topics[0].partitions[0].committed_offset
    };
    for (offset, commit) in [(5, false), (7, true)] {
        let r: AddOffsetsToTxnResponse = b
            .request(
                ApiKey::AddOffsetsToTxn,
                3,
                &AddOffsetsToTxnRequest::default()
                    .with_transactional_id(txn_id("tx"))
                    .with_producer_id(ProducerId(pid))
                    .with_producer_epoch(epoch)
                    .with_group_id(GroupId(StrBytes::from_static_str("g"))),
            )
            .await;
        assert_eq!(r.error_code, 0);
        let r: TxnOffsetCommitResponse = b
            .request(ApiKey::TxnOffsetCommit, 3, &commit_offset(offset))
            .await;
        assert_eq!(r.topics[0].partitions[0].error_code, 0);
        assert_eq!(committed().await, -1, "not before the transaction ends");
        assert_eq!(end(&b, "tx", me, commit).await, 0);
    }
    assert_eq!(committed().await, 7, "the aborted 5 never, the committed 7");
    b.stop().await;
}

#[tokio::test]
async fn transactional_requests_of_unknown_ids_and_bad_timeouts_are_refused() {
    let b = TestBroker::start().await;
    b.create("t", 1).await;
    assert_eq!(
        end(&b, "nobody", (5, 0), true).await,
        ResponseError::InvalidProducerIdMapping.code()
    );
    let r: InitProducerIdResponse = b
        .request(
            ApiKey::InitProducerId,
            4,
            &InitProducerIdRequest::default()
                .with_transactional_id(Some(txn_id("tx")))
                .with_transaction_timeout_ms(24 * 3600 * 1000)
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1),
        )
        .await;
    assert_eq!(
        r.error_code,
        ResponseError::InvalidTransactionTimeout.code()
    );
    let (_, pid, epoch) = init(&b, Some("tx"), (-1, -1)).await;
    assert_eq!(
        add_partitions(&b, "tx", (pid, epoch), "t", &[0, 7]).await,
        vec![
            ResponseError::OperationNotAttempted.code(),
            ResponseError::UnknownTopicOrPartition.code()
        ]
    );
    // KIP-360: the producer bumps its own epoch; a retry of that bump gets the same answer;
    // an older epoch is fenced.
    let (code, same, bumped) = init(&b, Some("tx"), (pid, epoch)).await;
    assert_eq!((code, same, bumped), (0, pid, epoch + 1));
    assert_eq!(
        init(&b, Some("tx"), (pid, epoch)).await,
        (0, pid, epoch + 1)
    );
    assert_eq!(
        init(&b, Some("tx"), (pid, epoch + 1)).await,
        (0, pid, epoch + 2)
    );
    assert_eq!(
        init(&b, Some("tx"), (pid, epoch)).await.0,
        ResponseError::ProducerFenced.code()
    );
    b.stop().await;
}

#[tokio::test]
async fn a_transactional_write_to_a_partition_not_in_the_transaction_is_refused() {
    let b = TestBroker::start().await;
    b.create("t", 1).await;
    let (_, pid, epoch) = init(&b, Some("tx"), (-1, -1)).await;
    let me = (pid, epoch);
    // Without AddPartitionsToTxn the batch would open a transaction no marker closes.
    assert_eq!(
        produce_txn(&b, "tx", "t", 0, txn_batch(2, me, 0)).await.0,
        ResponseError::InvalidTxnState.code()
    );
    assert_eq!(latest(&b, "t", false).await, 0, "nothing stored");
    assert_eq!(add_partitions(&b, "tx", me, "t", &[0]).await, vec![0]);
    assert_eq!(
        produce_txn(&b, "tx", "t", 0, txn_batch(2, me, 0)).await,
        (0, 0)
    );
    assert_eq!(
        produce_txn(&b, "tx", "t", 0, txn_batch(1, me, 2)).await,
        (0, 2)
    );
    assert_eq!(end(&b, "tx", me, true).await, 0);
    // After the commit the partition is out of the transaction again.
    assert_eq!(
        produce_txn(&b, "tx", "t", 0, txn_batch(1, me, 3)).await.0,
        ResponseError::InvalidTxnState.code()
    );
    assert_eq!(latest(&b, "t", true).await, 4);
    b.stop().await;
}

/// EndTxn v5 (KIP-890) → (error, next producer id, next epoch).
async fn end_v5(
    b: &TestBroker,
    id: &str,
    (pid, epoch): (i64, i16),
    commit: bool,
) -> (i16, i64, i16) {
    let r: EndTxnResponse = b
        .request(
            ApiKey::EndTxn,
            5,
            &EndTxnRequest::default()
                .with_transactional_id(txn_id(id))
                .with_producer_id(ProducerId(pid))
                .with_producer_epoch(epoch)
                .with_committed(commit),
        )
        .await;
    (r.error_code, r.producer_id.0, r.producer_epoch)
}

#[tokio::test]
async fn kip_890_produce_adds_partitions_and_every_end_bumps_the_epoch() {
    let b = TestBroker::start().await;
    b.create("t", 1).await;
    let (_, pid, epoch) = init(&b, Some("tx"), (-1, -1)).await;
    let first = (pid, epoch);
    // Produce v12 adds the partition itself: no AddPartitionsToTxn.
    assert_eq!(
        produce_txn_at(&b, 12, "tx", "t", 0, txn_batch(2, first, 0)).await,
        (0, 0)
    );
    let (code, pid1, epoch1) = end_v5(&b, "tx", first, true).await;
    assert_eq!((code, pid1, epoch1), (0, pid, epoch + 1));
    // A retried EndTxn of that transaction names the old epoch and gets the same answer.
    assert_eq!(end_v5(&b, "tx", first, true).await, (0, pid, epoch + 1));

    // The next transaction runs under the new epoch, its sequences from 0.
    let second = (pid1, epoch1);
    assert_eq!(
        produce_txn_at(&b, 12, "tx", "t", 0, txn_batch(3, second, 0)).await,
        (0, 3)
    );
    // Jepsen's case: a late commit of the first transaction must not commit this one.
    assert_eq!(
        end_v5(&b, "tx", first, true).await.0,
        ResponseError::ProducerFenced.code()
    );
    assert_eq!(
        latest(&b, "t", true).await,
        3,
        "the second transaction is still open"
    );
    // And a late write of the first transaction is fenced at the partition.
    assert_eq!(
        produce_txn_at(&b, 12, "tx", "t", 0, txn_batch(1, first, 2))
            .await
            .0,
        ResponseError::InvalidProducerEpoch.code()
    );
    let (code, _, epoch2) = end_v5(&b, "tx", second, false).await;
    assert_eq!((code, epoch2), (0, epoch + 2));
    let (offsets, lso, aborted) = fetch(&b, "t", 0, true).await;
    assert_eq!(lso, 7);
    assert_eq!(offsets, vec![0, 1, 3, 4, 5]);
    assert_eq!(aborted, Some(vec![(pid, 3)]));
    // As Kafka: committing a transaction that wrote nothing is refused; aborting it still
    // moves to a new epoch.
    assert_eq!(
        end_v5(&b, "tx", (pid, epoch2), true).await,
        (ResponseError::InvalidTxnState.code(), -1, -1)
    );
    assert_eq!(
        end_v5(&b, "tx", (pid, epoch2), false).await,
        (0, pid, epoch + 3)
    );
    // A retry of that abort names the epoch before it; a commit retried there is refused.
    assert_eq!(
        end_v5(&b, "tx", (pid, epoch2), false).await,
        (0, pid, epoch + 3)
    );
    assert_eq!(
        end_v5(&b, "tx", (pid, epoch2), true).await,
        (ResponseError::InvalidTxnState.code(), -1, -1)
    );
    b.stop().await;
}

#[tokio::test]
async fn aborted_transactions_are_reported_from_the_tiered_history() {
    use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
    let b = TestBroker::start_with(|c| c.min_segment_bytes = 14).await;
    let config = |k: &str, v: &str| {
        CreatableTopicConfig::default()
            .with_name(StrBytes::from_string(k.into()))
            .with_value(Some(StrBytes::from_string(v.into())))
    };
    // One batch per segment; everything tiered is deleted locally.
    let r = b
        .create_topic(
            CreatableTopic::default()
                .with_name(name("t"))
                .with_num_partitions(1)
                .with_replication_factor(-1)
                .with_configs(vec![
                    config("segment.bytes", "14"),
                    config("local.retention.bytes", "1"),
                    // The test batches carry 2023 timestamps: keep them.
                    config("retention.ms", "-1"),
                ]),
        )
        .await;
    assert_eq!(r.topics[0].error_code, 0);
    let (_, pid, epoch) = init(&b, Some("tx"), (-1, -1)).await;
    let me = (pid, epoch);
    add_partitions(&b, "tx", me, "t", &[0]).await;
    produce_txn(&b, "tx", "t", 0, txn_batch(3, me, 0)).await;
    assert_eq!(end(&b, "tx", me, false).await, 0);
    add_partitions(&b, "tx", me, "t", &[0]).await;
    produce_txn(&b, "tx", "t", 0, txn_batch(2, me, 3)).await;
    assert_eq!(end(&b, "tx", me, true).await, 0);
    // A last plain batch seals the segment holding the commit marker.
    b.produce("t", 0, crate::broker::testing::batch(1), -1)
        .await;

    let p = b.broker.host.partitions.partition("t", 0).unwrap();
    crate::broker::testing::wait_until(|| async { p.log.tiered_end() >= 7 }).await;
    b.broker
        .host
        .partitions
        .enforce_retention(tierlog_metadata::Clock::now_ms(b.clock.as_ref()))
        .await;
    assert!(
        p.log.log_start_offset() >= 7,
        "the history is only in object storage now"
    );
    let (offsets, _, aborted) = fetch(&b, "t", 0, true).await;
    assert_eq!(offsets, vec![0, 1, 2], "one tiered segment per fetch");
    assert_eq!(
        aborted,
        Some(vec![(pid, 0)]),
        "from the tiered transaction index"
    );
    let (offsets, _, aborted) = fetch(&b, "t", 4, true).await;
    assert_eq!(offsets, vec![4, 5]);
    assert_eq!(aborted, Some(vec![]));
    b.stop().await;
}

#[tokio::test]
async fn a_txn_offset_commit_from_an_unknown_member_is_refused_and_not_staged() {
    let b = TestBroker::start().await;
    b.create("t", 1).await;
    let (_, pid, epoch) = init(&b, Some("tx"), (-1, -1)).await;
    let group = || GroupId(StrBytes::from_static_str("g"));
    let r: AddOffsetsToTxnResponse = b
        .request(
            ApiKey::AddOffsetsToTxn,
            3,
            &AddOffsetsToTxnRequest::default()
                .with_transactional_id(txn_id("tx"))
                .with_producer_id(ProducerId(pid))
                .with_producer_epoch(epoch)
                .with_group_id(group()),
        )
        .await;
    assert_eq!(r.error_code, 0);
    let r: TxnOffsetCommitResponse = b
        .request(
            ApiKey::TxnOffsetCommit,
            3,
            &TxnOffsetCommitRequest::default()
                .with_transactional_id(txn_id("tx"))
                .with_group_id(group())
                .with_producer_id(ProducerId(pid))
                .with_producer_epoch(epoch)
                .with_generation_id(5)
                .with_member_id(StrBytes::from_static_str("ghost"))
                .with_topics(vec![
                    TxnOffsetCommitRequestTopic::default()
                        .with_name(name("t"))
                        .with_partitions(vec![
                            TxnOffsetCommitRequestPartition::default()
                                .with_partition_index(0)
                                .with_committed_offset(9),
                        ]),
                ]),
        )
        .await;
    assert_ne!(
        r.topics[0].partitions[0].error_code, 0,
        "a member of no generation"
    );
    let m = b.broker.txns.describe("tx").await.unwrap().unwrap();
    assert!(m.pending_offsets.is_empty(), "nothing staged: {m:?}");
    b.stop().await;
}
