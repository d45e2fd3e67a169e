//! `kill -9` while producing: with `--flush-mode always` and `acks=all`, every record whose
//! delivery report succeeded must be in the log at its acknowledged offset after a restart.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::Offset;
use rdkafka::message::Message;
use tierlog_tests::clients::{
    RecordData, assigned_consumer, consume_exactly, create_topic, producer, watermarks,
};
use tierlog_tests::workload::{consume_timeout, future_record, record};
use tierlog_tests::{NodeOptions, TestNode};

const PARTITIONS: i32 = 2;
/// Acknowledged records to wait for before pulling the plug.
const ACKED_BEFORE_KILL: usize = 3_000;

#[derive(Default)]
struct Progress {
    /// (record index, partition, offset) of every successful delivery report.
    acked: Mutex<Vec<(usize, i32, i64)>>,
    /// Failed delivery reports (expected once the broker is dead).
    failed: Mutex<usize>,
    stop: AtomicBool,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heavy_kill9_while_producing_loses_nothing_acknowledged() {
    let mut node = TestNode::start(NodeOptions::default().flush_always()).unwrap();
    let bootstrap = node.bootstrap();
    let topic = "crash";
    create_topic(&bootstrap, topic, PARTITIONS, &[])
        .await
        .unwrap();

    let producer = Arc::new(
        producer(
            &bootstrap,
            &[
                ("acks", "all"),
                ("linger.ms", "2"),
                ("message.timeout.ms", "5000"),
                ("request.timeout.ms", "3000"),
                ("queue.buffering.max.messages", "1000000"),
            ],
        )
        .unwrap(),
    );
    let progress = Arc::new(Progress::default());

    // Keep a steady stream of records in flight: rounds of 100, each awaited as a whole, so
    // at the moment of the kill there are batches written but not yet acknowledged.
    let task = {
        let producer = Arc::clone(&producer);
        let progress = Arc::clone(&progress);
        tokio::spawn(async move {
            let mut i = 0usize;
            while !progress.stop.load(Ordering::SeqCst) {
                let round: Vec<(usize, RecordData)> =
                    (i..i + 100).map(|j| (j, record(j, "crash"))).collect();
                i += 100;
                let mut pending = Vec::new();
                for (j, data) in &round {
                    match producer.send_result(future_record(topic, data)) {
                        Ok(f) => pending.push((*j, f)),
                        Err(_) => *progress.failed.lock().unwrap() += 1,
                    }
                }
                for (j, f) in pending {
                    match f.await {
                        Ok(Ok(d)) => {
                            progress
                                .acked
                                .lock()
                                .unwrap()
                                .push((j, d.partition, d.offset))
                        }
                        _ => *progress.failed.lock().unwrap() += 1,
                    }
                }
            }
        })
    };

    let deadline = Instant::now() + Duration::from_secs(120);
    while progress.acked.lock().unwrap().len() < ACKED_BEFORE_KILL {
        assert!(
            Instant::now() < deadline,
            "only {} records acknowledged in 120 s",
            progress.acked.lock().unwrap().len()
        );
        assert!(!task.is_finished(), "producer task ended early");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    node.kill9().unwrap();
    let acked_at_kill = progress.acked.lock().unwrap().len();
    progress.stop.store(true, Ordering::SeqCst);
    // Outstanding deliveries fail after message.timeout.ms; the task then sees `stop`.
    tokio::time::timeout(Duration::from_secs(60), task)
        .await
        .expect("producer task did not finish after the kill")
        .unwrap();
    drop(producer);
    let acked = progress.acked.lock().unwrap().clone();
    assert!(acked.len() >= acked_at_kill);
    eprintln!(
        "acknowledged {} records ({} by the time of the kill), {} failed",
        acked.len(),
        acked_at_kill,
        progress.failed.lock().unwrap()
    );

    node.start_again().unwrap();

    // Read every partition up to its log end offset after recovery.
    let mut ends = BTreeMap::new();
    let mut total = 0usize;
    for p in 0..PARTITIONS {
        let (low, high) = watermarks(&bootstrap, topic, p).unwrap();
        assert_eq!(low, 0, "partition {p} log start moved");
        ends.insert(p, high);
        total += usize::try_from(high).unwrap();
    }
    let consumer = assigned_consumer(&bootstrap, topic, 0..PARTITIONS, Offset::Beginning).unwrap();
    let consumed = consume_exactly(&consumer, total, consume_timeout(total)).unwrap();

    let mut log: BTreeMap<(i32, i64), RecordData> = BTreeMap::new();
    let mut next: BTreeMap<i32, i64> = BTreeMap::new();
    for m in &consumed {
        let expected = next.entry(m.partition()).or_insert(0);
        assert_eq!(
            m.offset(),
            *expected,
            "partition {}: offsets after recovery are not contiguous",
            m.partition()
        );
        *expected += 1;
        log.insert((m.partition(), m.offset()), RecordData::of(m));
    }
    for (i, p, o) in &acked {
        let end = ends[p];
        let got = log.get(&(*p, *o)).unwrap_or_else(|| {
            panic!("record {i} acknowledged at {p}/{o} is missing after kill -9 (log end {end})")
        });
        assert_eq!(
            got,
            &record(*i, "crash"),
            "record {i} acknowledged at {p}/{o} differs after kill -9"
        );
    }
}
