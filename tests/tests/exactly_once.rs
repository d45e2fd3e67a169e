//! Exactly-once end to end, judged by clients we did not write: the Apache Kafka 4.3.1 Java
//! client (`TxnCheck`, `EosPipeline` in tests/kafka/src) and librdkafka, with the history
//! checker of `tierlog_tests::eos`.
//!
//! Every scenario that can run on one broker runs against a real Apache Kafka first, which
//! proves the programs and the assertions right; the same scenario against tierlog is its own
//! test. The failover scenarios need a cluster, so they run against tierlog only.
//!
//! - `TxnCheck` scenarios: commit/abort with the LSO and read_committed vs read_uncommitted,
//!   sendOffsetsToTransaction (offsets visible only after commit), zombie fencing, the
//!   coordinator's timeout abort, the producer's idempotent defaults.
//! - `EosPipeline` killed with SIGKILL inside a transaction, restarted, drained: every input
//!   exactly once in the output.
//! - Idempotent producers (librdkafka with enable.idempotence, the Java producer with
//!   defaults) while partition leaders are killed -9 and restarted: every acknowledged record
//!   exactly once, in order, at its acknowledged offset, and no error reaches the application.
//! - The transaction coordinator killed at the commit: the transaction is read entirely or not
//!   at all.
//! - librdkafka's idempotent producer while every connection is cut, ten times, through a
//!   proxy the broker advertises (Kafka and tierlog): every acknowledged record exactly once.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use kafka_protocol::messages::FindCoordinatorRequest;
use kafka_protocol::protocol::StrBytes;
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::Value;
use tierlog_tests::clients::{create_topic, producer};
use tierlog_tests::cluster::{
    BackgroundProducer, ClusterOptions, LoadOptions, TestCluster, read_partition,
};
use tierlog_tests::eos::{
    EOS_PIPELINE, History, PipelineOptions, Program, Report, TXN_CHECK, TxnOutcome, events,
    pipeline, read_all, read_committed, txn_check, value_text, verify_pipeline, wait_stable,
};
use tierlog_tests::kafka::{Broker, KafkaServer, require_kafka};
use tierlog_tests::programs::Outcome;
use tierlog_tests::proxy::CutProxy;
use tierlog_tests::wire::Conn;
use tierlog_tests::{NodeOptions, TestNode};

/// A `TxnCheck` run's own deadline.
const CHECK_TIMEOUT: Duration = Duration::from_secs(90);
/// transaction.timeout.ms of the `timeout` scenario: well under Kafka's
/// transaction.max.timeout.ms (900000 by default), long enough for the program to see the LSO
/// held before it passes.
const TXN_TIMEOUT_MS: &str = "4000";
/// Kafka checks for timed-out transactions every 10 s by default; every second here, so the
/// `timeout` scenario takes seconds, not tens of seconds.
const ABORT_CHECK: (&str, &str) = (
    "transaction.abort.timed.out.transaction.cleanup.interval.ms",
    "1000",
);

/// Starts Apache Kafka with [`ABORT_CHECK`]; `None` (skipped loudly) without Java or the jars.
fn kafka(test: &str) -> Option<KafkaServer> {
    require_kafka(test)
        .unwrap()
        .then(|| KafkaServer::start(&[ABORT_CHECK]).unwrap())
}

/// A tierlog node for a test that needs the Java programs; `None` when skipped.
fn tierlog(test: &str) -> Option<TestNode> {
    require_kafka(test)
        .unwrap()
        .then(|| TestNode::start_default().unwrap())
}

// ---- TxnCheck ------------------------------------------------------------------------------

/// Runs one scenario and requires it to pass; returns its summary.
fn scenario(broker: &dyn Broker, name: &str, extra: &[&str]) -> Value {
    let started = Instant::now();
    let prefix = format!("eos-{name}");
    let outcome = txn_check(&broker.bootstrap(), name, &prefix, extra, CHECK_TIMEOUT).unwrap();
    let summary = outcome
        .expect_passed(&format!("TxnCheck {name} against {}", broker.name()))
        .unwrap()
        .clone();
    eprintln!(
        "TxnCheck {name} against {}: {summary} ({:?})",
        broker.name(),
        started.elapsed()
    );
    summary
}

fn commit_abort(broker: &dyn Broker) {
    scenario(broker, "commit-abort", &["--records", "30"]);
}

fn send_offsets(broker: &dyn Broker) {
    let s = scenario(broker, "send-offsets", &["--records", "60"]);
    assert_eq!(s["output"], 60, "{s}");
}

/// Apache Kafka 4.3.1 (transaction version 2) fails the zombie's next send with
/// InvalidProducerEpochException; ProducerFencedException is what older protocols give. Either
/// is a fenced zombie.
fn zombie(broker: &dyn Broker) -> String {
    let s = scenario(broker, "zombie", &[]);
    let fenced_by = s["fenced_by"].as_str().unwrap_or_default().to_owned();
    assert!(
        ["InvalidProducerEpochException", "ProducerFencedException"].contains(&fenced_by.as_str()),
        "{s}"
    );
    fenced_by
}

fn timeout(broker: &dyn Broker) {
    scenario(broker, "timeout", &["--txn-timeout-ms", TXN_TIMEOUT_MS]);
}

fn idempotent_defaults(broker: &dyn Broker) {
    let s = scenario(broker, "idempotent-defaults", &["--records", "500"]);
    assert_eq!(s["consumed"], 500, "{s}");
}

#[test]
fn txn_scenarios_pass_on_apache_kafka() {
    let Some(kafka) = kafka("txn_scenarios_pass_on_apache_kafka") else {
        return;
    };
    commit_abort(&kafka);
    send_offsets(&kafka);
    let fenced_by = zombie(&kafka);
    assert_eq!(
        fenced_by, "InvalidProducerEpochException",
        "Apache Kafka 4.3.1's answer to a fenced zombie's send"
    );
    timeout(&kafka);
    idempotent_defaults(&kafka);
    // The glue of the cluster-only tests, proven without a fault: the Java producer's events
    // make a clean history, and so does a kill-commit run nobody kills.
    let events = txn_check(
        &kafka.bootstrap(),
        "idempotent-defaults",
        "eos-events",
        &["--records", "300", "--print-events", "true"],
        CHECK_TIMEOUT,
    )
    .unwrap();
    events
        .expect_passed("idempotent-defaults with events")
        .unwrap();
    let report = java_history(&events.output.stdout).check();
    report.ensure_clean("the Java producer's events").unwrap();
    assert_eq!(
        (report.required, report.distinct_read),
        (300, 300),
        "{report}"
    );
    let commit = txn_check(
        &kafka.bootstrap(),
        "kill-commit",
        "eos-no-kill",
        &["--records", "300", "--print-events", "true"],
        CHECK_TIMEOUT,
    )
    .unwrap();
    let summary = commit.expect_passed("kill-commit without a kill").unwrap();
    assert_eq!(summary["committed"], true, "{summary}");
    let report = kill_commit_report(&kafka.bootstrap(), "eos-no-kill", 300, &commit).unwrap();
    report.ensure_clean("kill-commit without a kill").unwrap();
    assert_eq!(report.distinct_read, 300, "{report}");
}

#[test]
fn txn_commit_abort_on_tierlog() {
    if let Some(node) = tierlog("txn_commit_abort_on_tierlog") {
        commit_abort(&node);
    }
}

#[test]
fn txn_send_offsets_on_tierlog() {
    if let Some(node) = tierlog("txn_send_offsets_on_tierlog") {
        send_offsets(&node);
    }
}

#[test]
fn txn_zombie_is_fenced_on_tierlog() {
    if let Some(node) = tierlog("txn_zombie_is_fenced_on_tierlog") {
        zombie(&node);
    }
}

#[test]
fn txn_timeout_aborts_on_tierlog() {
    if let Some(node) = tierlog("txn_timeout_aborts_on_tierlog") {
        timeout(&node);
    }
}

#[test]
fn idempotent_defaults_on_tierlog() {
    if let Some(node) = tierlog("idempotent_defaults_on_tierlog") {
        idempotent_defaults(&node);
    }
}

// ---- the pipeline killed mid-transaction ---------------------------------------------------

const PIPELINE_PARTITIONS: i32 = 3;
const PIPELINE_RECORDS: usize = 1500;

/// Produces `n` input records `in-<i>` (partition i % P, no idempotence: the input is plain
/// data) and records them as sent and acknowledged by producer "input".
fn produce_input(bootstrap: &str, topic: &str, n: usize, history: &mut History) -> Result<()> {
    let producer: FutureProducer = producer(bootstrap, &[("linger.ms", "20")])?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let ids: Vec<String> = (0..n).map(|i| format!("in-{i}")).collect();
    let acks = runtime.block_on(async {
        let sends: Vec<_> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| {
                let key = format!("k{i}");
                let partition = i32::try_from(i).unwrap_or(0) % PIPELINE_PARTITIONS;
                let record = FutureRecord::to(topic)
                    .key(&key)
                    .payload(id)
                    .partition(partition);
                producer.send_result(record).map_err(|(e, _)| e)
            })
            .collect::<Result<_, _>>()?;
        let mut acks = Vec::with_capacity(n);
        for send in sends {
            let delivery = send.await.context("delivery future dropped")?;
            acks.push(delivery.map_err(|(e, _)| e)?);
        }
        anyhow::Ok(acks)
    })?;
    for (id, ack) in ids.iter().zip(acks) {
        history.send("input", id).ack(id, ack.partition, None);
    }
    Ok(())
}

/// The pipeline is killed (SIGKILL) with a transaction open after a few commits, started again
/// (its initTransactions fences the dead instance and aborts that transaction) and left to
/// drain the input: the output, read_committed, holds every input record exactly once, in input
/// order per partition (the checker and the program's own verify mode agree), while
/// read_uncommitted shows the aborted attempt's records too.
fn pipeline_killed_mid_transaction(broker: &dyn Broker) -> Result<()> {
    let bootstrap = broker.bootstrap();
    let (input, output) = ("eos-pipeline-in", "eos-pipeline-out");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    for topic in [input, output] {
        rt.block_on(create_topic(&bootstrap, topic, PIPELINE_PARTITIONS, &[]))?;
    }
    let mut history = History::new();
    produce_input(&bootstrap, input, PIPELINE_RECORDS, &mut history)?;

    let mut opts = PipelineOptions {
        input: input.to_owned(),
        output: output.to_owned(),
        name: "eos-pipeline".to_owned(),
        max_poll_records: 50,
        hold: Duration::from_millis(300),
        idle_exit: None,
    };
    let started = Instant::now();
    let mut first = pipeline(&bootstrap, &opts)?;
    // Three commits, then the next transaction open (sent and flushed, not committed).
    let seen = first.wait_events(
        "three commits, then an open transaction",
        Duration::from_secs(90),
        |evs| {
            let commits = evs.iter().filter(|e| e["ev"] == "commit").count();
            commits >= 3 && evs.last().is_some_and(|e| e["ev"] == "open")
        },
    )?;
    first.kill9()?;
    let open = seen.last().map(|e| e["records"].clone());
    eprintln!(
        "{}: killed EosPipeline with a transaction of {open:?} records open after {} events ({:?})",
        broker.name(),
        seen.len(),
        started.elapsed()
    );

    // The dead instance's transaction holds the output's LSO below its end until a successor
    // aborts it (also proof that `wait_stable` sees an open transaction).
    let held = wait_stable(
        &bootstrap,
        output,
        PIPELINE_PARTITIONS,
        Duration::from_secs(2),
    );
    ensure!(
        held.is_err(),
        "no open transaction in the output after the kill: {held:?}"
    );

    opts.idle_exit = Some(Duration::from_secs(5));
    let mut second = pipeline(&bootstrap, &opts)?;
    let done = second.wait_exit(Duration::from_secs(180))?;
    let summary = done.expect_passed("the restarted EosPipeline")?;
    eprintln!(
        "{}: restarted EosPipeline: {summary} ({:?})",
        broker.name(),
        started.elapsed()
    );

    let read = read_committed(
        &bootstrap,
        output,
        PIPELINE_PARTITIONS,
        PIPELINE_RECORDS,
        Duration::from_secs(90),
    )?;
    for m in &read {
        let value = value_text(m);
        let id = value.split('|').next().unwrap_or_default();
        history.read(id, m.partition(), m.offset());
    }
    let report = history.check();
    eprintln!("{}: pipeline history: {report}", broker.name());
    report.ensure_clean(&format!("EosPipeline against {}", broker.name()))?;
    ensure!(report.distinct_read == PIPELINE_RECORDS, "{report}");

    let verified = verify_pipeline(&bootstrap, input, output, Duration::from_secs(90))?;
    verified.expect_passed(&format!(
        "{EOS_PIPELINE} --mode verify against {}",
        broker.name()
    ))?;

    // The kill left the open transaction's records in the log, aborted.
    let open_records = usize::try_from(open.and_then(|v| v.as_u64()).unwrap_or(0))?;
    let raw = read_all(
        &bootstrap,
        output,
        PIPELINE_PARTITIONS,
        "read_uncommitted",
        PIPELINE_RECORDS + open_records,
        Duration::from_secs(60),
    )?;
    ensure!(
        raw.len() >= PIPELINE_RECORDS + open_records,
        "read_uncommitted sees {} records; want the {PIPELINE_RECORDS} committed plus the {open_records} \
         of the killed transaction",
        raw.len()
    );
    Ok(())
}

#[test]
fn pipeline_killed_mid_transaction_on_apache_kafka() {
    let Some(kafka) = kafka("pipeline_killed_mid_transaction_on_apache_kafka") else {
        return;
    };
    pipeline_killed_mid_transaction(&kafka).unwrap();
}

#[test]
fn pipeline_killed_mid_transaction_on_tierlog() {
    let Some(node) = tierlog("pipeline_killed_mid_transaction_on_tierlog") else {
        return;
    };
    pipeline_killed_mid_transaction(&node)
        .with_context(|| node.log_tails())
        .unwrap();
}

// ---- failover (tierlog clusters only) ------------------------------------------------------

/// Three nodes, replication factor 3 by default, min.insync.replicas 2; `None` when skipped.
fn cluster(test: &str) -> Option<TestCluster> {
    if !require_kafka(test).unwrap() {
        return None;
    }
    let opts = ClusterOptions {
        default_replication_factor: Some(3),
        min_insync_replicas: Some(2),
        ..ClusterOptions::default()
    };
    let c = TestCluster::start_or_skip(test, opts).unwrap()?;
    assert_eq!(c.wait_brokers(3).unwrap(), BTreeSet::from([1, 2, 3]));
    Some(c)
}

/// The Java producer's history from `TxnCheck idempotent-defaults --print-events true`: its
/// acknowledgements and failures (in send order) and its own read-back.
fn java_history(stdout: &str) -> History {
    let mut h = History::new();
    for ev in events(stdout) {
        let id = ev["id"].as_str().unwrap_or_default();
        let (p, o) = (ev["p"].as_i64().unwrap_or(-1), ev["o"].as_i64());
        let p = i32::try_from(p).unwrap_or(-1);
        match ev["ev"].as_str() {
            Some("ack") => {
                h.send("java", id).ack(id, p, o);
            }
            Some("fail") => {
                h.send("java", id);
            }
            Some("read") => {
                h.read(id, p, o.unwrap_or(-1));
            }
            _ => {}
        }
    }
    h
}

/// librdkafka with enable.idempotence=true (keyed sequence numbers, partition 0 of a topic of
/// its own) and the Java producer with default settings (3 partitions) produce while the
/// leader of librdkafka's partition is killed -9 three times (kill, wait for a new leader,
/// restart, wait for a full ISR). Afterwards every acknowledged record is read exactly once, at
/// its acknowledged offset, in send order; no send failed (a fatal OUT_OF_ORDER_SEQUENCE or
/// any other error would surface as a failed delivery).
#[test]
fn idempotent_producers_survive_leader_kills_on_tierlog() {
    let test = "idempotent_producers_survive_leader_kills_on_tierlog";
    let Some(mut c) = cluster(test) else {
        return;
    };
    let topic = "eos-idempotent-failover";
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(c.create_topic(topic, 1, 3, &[])).unwrap();
    c.wait_topic_full(topic, 1, 3).unwrap();

    let load = BackgroundProducer::start(
        &c.bootstrap(),
        topic,
        LoadOptions {
            extra: vec![("enable.idempotence".to_owned(), "true".to_owned())],
            ..LoadOptions::default()
        },
    )
    .unwrap();
    load.wait_acked_since(Instant::now(), 100, Duration::from_secs(60))
        .unwrap();
    let bootstrap = c.bootstrap();
    let java = std::thread::spawn(move || {
        txn_check(
            &bootstrap,
            "idempotent-defaults",
            "eos-java-failover",
            &[
                "--records",
                "4000",
                "--interval-ms",
                "10",
                "--print-events",
                "true",
            ],
            Duration::from_secs(240),
        )
    });

    for round in 1..=3 {
        let leader = c.wait_leader(topic, 0).unwrap();
        let killed_at = Instant::now();
        c.kill9(leader).unwrap();
        let successor = c.wait_leader_not(topic, 0, leader).unwrap();
        load.wait_acked_since(killed_at, 50, Duration::from_secs(60))
            .unwrap_or_else(|e| panic!("round {round}: no progress after killing {leader}: {e:#}"));
        eprintln!(
            "round {round}: killed leader {leader}; node {successor} leads ({:?})",
            killed_at.elapsed()
        );
        c.restart(leader).unwrap();
        c.wait_isr_full(topic, 0).unwrap();
    }

    let report = check_background_producer(load, &c.bootstrap(), topic);
    eprintln!("librdkafka idempotent producer across leader kills: {report}");
    report.ensure_clean("librdkafka, idempotent").unwrap();

    let outcome = java.join().unwrap().unwrap();
    let java_report = java_history(&outcome.output.stdout).check();
    eprintln!("Java idempotent producer across leader kills: {java_report}");
    outcome
        .expect_passed("TxnCheck idempotent-defaults across leader kills")
        .unwrap();
    java_report.ensure_clean("Java producer, defaults").unwrap();
    assert_eq!(java_report.required, 4000, "{java_report}");
}

// ---- cut connections -----------------------------------------------------------------------

/// How many times the connections are cut.
const CUTS: usize = 10;

/// librdkafka's idempotent producer writes through a [`CutProxy`] (the broker advertises the
/// proxy, so every connection of the producer passes it) while every connection is cut
/// [`CUTS`] times, each cut once the producer has been acknowledged again: requests in flight
/// die unanswered and are retried on new connections. Every acknowledged record must be in
/// the log once, in order, at its acknowledged offset, and no send may fail.
fn idempotent_through_cuts(broker: &dyn Broker, proxy: &CutProxy) {
    let started = Instant::now();
    let topic = "eos-cut-connections";
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(create_topic(&broker.bootstrap(), topic, 1, &[]))
        .unwrap();
    let load = BackgroundProducer::start(
        &proxy.address(),
        topic,
        LoadOptions {
            // Many records in flight, so a cut catches some appended but unanswered.
            window: 512,
            extra: vec![
                ("enable.idempotence".to_owned(), "true".to_owned()),
                // librdkafka doubles its reconnect backoff after every lost connection, up to
                // 10 s by default: cap it so ten cuts take seconds.
                ("reconnect.backoff.max.ms".to_owned(), "500".to_owned()),
            ],
            ..LoadOptions::default()
        },
    )
    .unwrap();
    load.wait_acked_since(started, 500, Duration::from_secs(60))
        .unwrap();
    for round in 1..=CUTS {
        let cut_at = Instant::now();
        let cut = proxy.cut();
        assert!(cut > 0, "round {round}: no connection to cut");
        load.wait_acked_since(cut_at, 500, Duration::from_secs(60))
            .unwrap_or_else(|e| panic!("round {round}: no progress after the cut: {e:#}"));
        eprintln!(
            "cut {round}: {cut} connection(s); 500 acknowledged after it in {:?}",
            cut_at.elapsed()
        );
    }
    let report = check_background_producer(load, &broker.bootstrap(), topic);
    eprintln!(
        "librdkafka idempotent producer through {CUTS} connection cuts against {}: {report} ({:?})",
        broker.name(),
        started.elapsed()
    );
    report
        .ensure_clean("librdkafka, idempotent, cut connections")
        .unwrap();
}

/// Stops `load` and checks its history: no send failed, and partition 0 of `topic` holds
/// every acknowledged record exactly once, in order, at its acknowledged offset.
fn check_background_producer(load: BackgroundProducer, bootstrap: &str, topic: &str) -> Report {
    let deliveries = load.stop().unwrap();
    assert!(
        deliveries.failures.is_empty(),
        "{} sends failed, first: {:?}",
        deliveries.failures.len(),
        deliveries.failures.iter().take(5).collect::<Vec<_>>()
    );
    let mut h = History::new();
    let mut acks = deliveries.acks.clone();
    acks.sort_by_key(|a| a.seq);
    for a in &acks {
        let id = a.seq.to_string();
        h.send("librdkafka", &id)
            .ack(&id, a.partition, Some(a.offset));
    }
    for m in read_partition(bootstrap, topic, 0).unwrap() {
        let key = String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned();
        h.read(&key, m.partition(), m.offset());
    }
    let report = h.check();
    assert_eq!(report.distinct_read, acks.len(), "{report}");
    report
}

#[test]
fn idempotent_producer_survives_cut_connections_on_apache_kafka() {
    let test = "idempotent_producer_survives_cut_connections_on_apache_kafka";
    if !require_kafka(test).unwrap() {
        return;
    }
    let proxy = CutProxy::start().unwrap();
    let advertised = format!("PLAINTEXT://{}", proxy.address());
    let kafka = KafkaServer::start(&[("advertised.listeners", &advertised)]).unwrap();
    proxy.forward_to(kafka.bootstrap().parse().unwrap());
    idempotent_through_cuts(&kafka, &proxy);
}

#[test]
fn idempotent_producer_survives_cut_connections_on_tierlog() {
    let proxy = CutProxy::start().unwrap();
    let node = TestNode::start(NodeOptions {
        advertise: Some(proxy.address()),
        ..NodeOptions::default()
    })
    .unwrap();
    proxy.forward_to(node.bootstrap().parse().unwrap());
    idempotent_through_cuts(&node, &proxy);
}

/// The node every live node names as the transaction coordinator of `txn_id`
/// (FindCoordinator v4, key type 1): they must agree.
fn txn_coordinator(c: &TestCluster, txn_id: &str) -> Result<u32> {
    let mut answers = BTreeSet::new();
    for id in c.live_ids() {
        let mut conn = Conn::connect(c.node(id).kafka_addr())?;
        let req = FindCoordinatorRequest::default()
            .with_key_type(1)
            .with_coordinator_keys(vec![StrBytes::from_string(txn_id.to_owned())]);
        let r = conn.request(&req, 4)?;
        let coordinator = r.coordinators.first().context("no coordinator answered")?;
        ensure!(
            coordinator.error_code == 0,
            "FindCoordinator on node {id}: error {}",
            coordinator.error_code
        );
        answers.insert(coordinator.node_id.0);
    }
    ensure!(answers.len() == 1, "nodes disagree: {answers:?}");
    let node = answers.into_iter().next().context("no answers")?;
    u32::try_from(node).context("negative coordinator id")
}

/// A transaction of 3000 records over 3 partitions is acknowledged; its coordinator, found
/// (FindCoordinator on every node) once the producer is initialised, is killed -9 the moment
/// the program starts the commit (within ~10 ms: during the commit, or just after it), then
/// restarted. Whatever the commit returned, once no transaction is open a read_committed
/// consumer sees all of the transaction or none of it; if the commit returned success, all.
#[test]
fn coordinator_killed_mid_commit_on_tierlog() {
    let test = "coordinator_killed_mid_commit_on_tierlog";
    let Some(mut c) = cluster(test) else {
        return;
    };
    let prefix = "eos-kill-commit";
    let records = 3000;
    let bootstrap = c.bootstrap();
    let records_arg = records.to_string();
    let mut program = Program::start(
        TXN_CHECK,
        &[
            "--bootstrap",
            &bootstrap,
            "--scenario",
            "kill-commit",
            "--topic",
            prefix,
            "--records",
            &records_arg,
            "--print-events",
            "true",
            "--txn-timeout-ms",
            "20000",
            "--timeout-ms",
            "180000",
        ],
    )
    .unwrap();
    program
        .wait_events("initTransactions", Duration::from_secs(90), |evs| {
            evs.iter().any(|e| e["ev"] == "initialized")
        })
        .unwrap();
    let coordinator = txn_coordinator(&c, &format!("{prefix}-kill-commit-txn")).unwrap();
    program
        .wait_events("the commit to start", Duration::from_secs(90), |evs| {
            evs.iter().any(|e| e["ev"] == "committing")
        })
        .unwrap();
    c.kill9(coordinator).unwrap();
    let killed_at = Instant::now();
    std::thread::sleep(Duration::from_secs(2));
    c.restart(coordinator).unwrap();
    let outcome = program.wait_exit(Duration::from_secs(200)).unwrap();
    let summary = outcome
        .expect_passed("TxnCheck kill-commit")
        .unwrap()
        .clone();
    eprintln!(
        "killed coordinator {coordinator} at the commit; the program says {summary} ({:?} later)",
        killed_at.elapsed()
    );

    let report = kill_commit_report(&c.bootstrap(), prefix, records, &outcome).unwrap();
    eprintln!("transaction across a coordinator kill: {report}");
    report
        .ensure_clean("coordinator killed mid-commit")
        .unwrap();
}

/// The history of a `TxnCheck kill-commit` run: its acknowledged records in one transaction,
/// committed if the program's commit returned, else of unknown outcome; and what a
/// read_committed consumer reads of its topic once no transaction is open.
fn kill_commit_report(
    bootstrap: &str,
    prefix: &str,
    records: usize,
    outcome: &Outcome,
) -> Result<Report> {
    let committed = outcome.summary["committed"] == true;
    let mut h = History::new();
    for ev in events(&outcome.output.stdout) {
        if ev["ev"] == "ack" {
            let id = ev["id"].as_str().unwrap_or_default();
            let p = i32::try_from(ev["p"].as_i64().unwrap_or(-1))?;
            h.send_in_txn("java", "t", id).ack(id, p, ev["o"].as_i64());
        }
    }
    let outcome = if committed {
        TxnOutcome::Committed
    } else {
        TxnOutcome::Unknown
    };
    h.end_txn("t", outcome);
    let topic = format!("{prefix}-kill-commit");
    let expected = if committed { records } else { 0 };
    for m in read_committed(bootstrap, &topic, 3, expected, Duration::from_secs(120))? {
        h.read(&value_text(&m), m.partition(), m.offset());
    }
    Ok(h.check())
}
