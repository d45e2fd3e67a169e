//! Fetch long-poll: a fetch with nothing to return waits up to `max_wait_ms` on the broker
//! (so consumers do not busy-loop) and is answered as soon as data arrives.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use rdkafka::Offset;
use rdkafka::message::Message;
use rdkafka::producer::FutureRecord;
use tierlog_tests::TestNode;
use tierlog_tests::clients::{CLIENT_TIMEOUT, create_topic, producer};
use tierlog_tests::wait::{Poll, wait_for};
use tierlog_tests::wire::{self, Conn};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_fetch_waits_for_max_wait() {
    let node = TestNode::start_default().unwrap();
    create_topic(&node.bootstrap(), "lp-empty", 1, &[])
        .await
        .unwrap();
    let mut conn = Conn::connect(node.kafka_addr()).unwrap();
    let started = Instant::now();
    let data = conn.fetch("lp-empty", 0, 0, 1500, 1).unwrap();
    let waited = started.elapsed();
    assert_eq!(data.error_code, 0);
    let empty = data.records.as_ref().is_none_or(|r| r.is_empty());
    assert!(empty, "records in an empty partition");
    assert_eq!(data.high_watermark, 0);
    assert!(
        waited >= Duration::from_millis(1400),
        "an empty fetch with max_wait_ms=1500 returned after {waited:?}: clients would busy-loop"
    );
    assert!(waited < Duration::from_secs(10), "fetch waited {waited:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_raw_fetch_is_answered_when_data_arrives() {
    let node = TestNode::start_default().unwrap();
    let bootstrap = node.bootstrap();
    create_topic(&bootstrap, "lp-raw", 1, &[]).await.unwrap();
    let addr = node.kafka_addr();
    let fetcher = std::thread::spawn(move || {
        let mut conn = Conn::connect(addr).unwrap();
        let started = Instant::now();
        let data = conn.fetch("lp-raw", 0, 0, 20_000, 1).unwrap();
        (started, Instant::now(), data)
    });
    // Produce once the fetch is parked on the broker (it is counted when it arrives).
    wait_for(
        "the fetch to reach the broker",
        Duration::from_secs(10),
        Duration::from_millis(10),
        || {
            let fetches = node.metrics()?.counter("tierlog_fetch_requests_total");
            Ok(if fetches >= 1.0 {
                Poll::Ready(())
            } else {
                Poll::Pending(format!("{fetches} fetches seen"))
            })
        },
    )
    .unwrap();
    let p = producer(&bootstrap, &[("linger.ms", "0")]).unwrap();
    let produce_started = Instant::now();
    p.send(
        FutureRecord::to("lp-raw").key("k").payload("woke-up"),
        CLIENT_TIMEOUT,
    )
    .await
    .map_err(|(e, _)| e)
    .unwrap();
    let (started, answered, data) = tokio::task::spawn_blocking(move || fetcher.join().unwrap())
        .await
        .unwrap();
    assert_eq!(data.error_code, 0);
    let records = wire::decode_records(data.records.as_ref().unwrap()).unwrap();
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0].value.as_deref(), Some(&b"woke-up"[..]));
    assert!(
        answered >= produce_started,
        "the fetch was answered {:?} after it was sent, before anything was produced",
        answered - started
    );
    let latency = answered - produce_started;
    assert!(
        latency < Duration::from_secs(5),
        "fetch answered {latency:?} after the produce started (max_wait was 20 s)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_consumer_gets_record_produced_later() {
    let node = TestNode::start_default().unwrap();
    let bootstrap = node.bootstrap();
    create_topic(&bootstrap, "lp-client", 1, &[]).await.unwrap();
    let consumer_bootstrap = bootstrap.clone();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let consumer = std::thread::spawn(move || {
        let consumer = tierlog_tests::clients::consumer(
            &consumer_bootstrap,
            &[("fetch.wait.max.ms", "10000")],
        )
        .unwrap();
        let mut tpl = rdkafka::TopicPartitionList::new();
        tpl.add_partition_offset("lp-client", 0, Offset::Beginning)
            .unwrap();
        rdkafka::consumer::Consumer::assign(&consumer, &tpl).unwrap();
        // Nothing there yet: the first poll comes back empty.
        assert!(consumer.poll(Duration::from_millis(1500)).is_none());
        ready_tx.send(()).unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match consumer.poll(Duration::from_millis(100)) {
                Some(Ok(m)) => return (Instant::now(), m.detach()),
                _ => assert!(Instant::now() < deadline, "no record within 30 s"),
            }
        }
    });
    tokio::task::spawn_blocking(move || ready_rx.recv().unwrap())
        .await
        .unwrap();
    let p = producer(&bootstrap, &[("linger.ms", "0")]).unwrap();
    let produced = Instant::now();
    p.send(
        FutureRecord::to("lp-client").key("k").payload("late"),
        CLIENT_TIMEOUT,
    )
    .await
    .map_err(|(e, _)| e)
    .unwrap();
    let (received, msg) = tokio::task::spawn_blocking(move || consumer.join().unwrap())
        .await
        .unwrap();
    assert_eq!(msg.payload(), Some(&b"late"[..]));
    assert_eq!(msg.offset(), 0);
    let latency = received - produced;
    assert!(
        latency < Duration::from_secs(5),
        "the waiting consumer got the record {latency:?} after it was produced \
         (fetch.wait.max.ms = 10 s: the broker did not wake the parked fetch)"
    );
}
