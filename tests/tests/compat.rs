//! Compatibility smoke tests with other clients: kcat (Debian's, on the old librdkafka 2.0.2)
//! and kafka-python (a pure-Python protocol implementation).
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use rdkafka::producer::FutureRecord;
use tierlog_tests::TestNode;
use tierlog_tests::clients::{CLIENT_TIMEOUT, create_topic, producer};
use tierlog_tests::kafka::{Broker, KafkaServer};
use tierlog_tests::tools::{require_tool, tests_dir};

/// Runs a command with `stdin` and a wall-clock limit; kills it if it overruns.
fn run(cmd: &mut Command, stdin: &[u8], limit: Duration) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}"));
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin).unwrap();
    drop(input);
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            panic!("{cmd:?} did not finish within {limit:?}");
        }
    }
}

fn ok(out: &Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed: {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// Consumes `topic` from the beginning to the end with kcat, with `extra` arguments and output
/// `format`; returns what it printed.
fn kcat_read(bootstrap: &str, topic: &str, extra: &[&str], format: &str) -> String {
    let mut cmd = Command::new("kcat");
    cmd.args([
        "-b",
        bootstrap,
        "-C",
        "-t",
        topic,
        "-o",
        "beginning",
        "-e",
        "-q",
    ])
    .args(extra)
    .args(["-f", format]);
    let out = run(&mut cmd, b"", Duration::from_secs(60));
    ok(&out, &format!("kcat -C of {topic} from {bootstrap}"))
}

/// Consumes `topic` from the beginning to the end with kcat; returns `(partition, offset, key,
/// value)` rows.
fn kcat_consume(bootstrap: &str, topic: &str) -> Vec<(i32, i64, String, String)> {
    let text = kcat_read(bootstrap, topic, &[], "%p\t%o\t%k\t%s\n");
    text.lines()
        .map(|line| {
            let cols: Vec<&str> = line.splitn(4, '\t').collect();
            assert_eq!(cols.len(), 4, "kcat line {line:?}");
            (
                cols[0].parse().unwrap(),
                cols[1].parse().unwrap(),
                cols[2].to_owned(),
                cols[3].to_owned(),
            )
        })
        .collect()
}

/// Rows must be each partition's offsets 0.. in order, and (key, value) pairs exactly `want`.
fn check_rows(rows: &[(i32, i64, String, String)], mut want: Vec<(String, String)>) {
    let mut next: BTreeMap<i32, i64> = BTreeMap::new();
    for (p, o, _, _) in rows {
        let e = next.entry(*p).or_insert(0);
        assert_eq!(*o, *e, "partition {p}: offsets not contiguous from 0");
        *e += 1;
    }
    let mut got: Vec<(String, String)> = rows
        .iter()
        .map(|(_, _, k, v)| (k.clone(), v.clone()))
        .collect();
    got.sort();
    want.sort();
    assert_eq!(got, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kcat_metadata_produce_consume() {
    if !require_tool("kcat", &["-V"], "kcat_metadata_produce_consume").unwrap() {
        return;
    }
    let node = TestNode::start_default().unwrap();
    let bootstrap = node.bootstrap();
    create_topic(&bootstrap, "kcat", 2, &[]).await.unwrap();

    // -L: the broker and the topic, as JSON.
    let out = run(
        Command::new("kcat").args(["-b", &bootstrap, "-L", "-J"]),
        b"",
        Duration::from_secs(30),
    );
    let meta: serde_json::Value = serde_json::from_str(&ok(&out, "kcat -L")).unwrap();
    let brokers = meta["brokers"].as_array().unwrap();
    assert_eq!(brokers.len(), 1, "{meta}");
    assert_eq!(
        brokers[0]["name"].as_str(),
        Some(bootstrap.as_str()),
        "{meta}"
    );
    let topic = meta["topics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["topic"] == "kcat")
        .unwrap_or_else(|| panic!("kcat -L lacks the topic: {meta}"));
    assert_eq!(topic["partitions"].as_array().unwrap().len(), 2, "{meta}");

    // -P with keys, snappy-compressed, then -C from the beginning.
    let want: Vec<(String, String)> = (0..300)
        .map(|i| (format!("kc-key-{i}"), format!("kc-value-{i}")))
        .collect();
    let input: String = want.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    let out = run(
        Command::new("kcat").args([
            "-b", &bootstrap, "-P", "-t", "kcat", "-K", ":", "-z", "snappy",
        ]),
        input.as_bytes(),
        Duration::from_secs(60),
    );
    ok(&out, "kcat -P");
    check_rows(&kcat_consume(&bootstrap, "kcat"), want);

    // The old client reads what the new one wrote (zstd batches with headers).
    create_topic(&bootstrap, "kcat-from-rdkafka", 1, &[])
        .await
        .unwrap();
    let p = producer(&bootstrap, &[("compression.type", "zstd")]).unwrap();
    let mut want = Vec::new();
    for i in 0..100 {
        let (k, v) = (format!("rd-key-{i}"), format!("rd-value-{i}"));
        p.send(
            FutureRecord::to("kcat-from-rdkafka").key(&k).payload(&v),
            CLIENT_TIMEOUT,
        )
        .await
        .map_err(|(e, _)| e)
        .unwrap();
        want.push((k, v));
    }
    check_rows(&kcat_consume(&bootstrap, "kcat-from-rdkafka"), want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_python_smoke() {
    if !require_tool("python3", &["-c", "import kafka"], "kafka_python_smoke").unwrap() {
        return;
    }
    let node = TestNode::start_default().unwrap();
    let script = tests_dir().join("python").join("smoke_kafka_python.py");
    let started = Instant::now();
    let out = run(
        Command::new("python3").arg(&script).args([
            "--bootstrap",
            &node.bootstrap(),
            "--topic",
            "kafka-python",
        ]),
        b"",
        Duration::from_secs(180),
    );
    let stdout = ok(&out, "smoke_kafka_python.py");
    assert!(stdout.contains("ok:"), "{stdout}");
    eprintln!("{} ({:?})", stdout.trim(), started.elapsed());
}

/// Ten ~900 KB records, one batch each, read by kcat with a response limit (1 MB) far below
/// its partition limit (20 MB) and a receive limit just above the response limit: the broker
/// must cap each response at the request's `max_bytes` (only one batch may exceed it, KIP-74),
/// or librdkafka refuses the response ("Invalid response size") and reads nothing.
async fn kcat_reads_large_records_within_fetch_max_bytes(broker: &dyn Broker) {
    const SIZE: usize = 900_000;
    let bootstrap = broker.bootstrap();
    let topic = "kcat-large";
    create_topic(&bootstrap, topic, 1, &[]).await.unwrap();
    let p = producer(&bootstrap, &[("batch.size", "1000000")]).unwrap();
    for i in 0..10u8 {
        let value = vec![b'a' + i; SIZE];
        p.send(
            FutureRecord::<(), _>::to(topic).payload(&value),
            CLIENT_TIMEOUT,
        )
        .await
        .map_err(|(e, _)| e)
        .unwrap();
    }
    let text = kcat_read(
        &bootstrap,
        topic,
        &[
            "-X",
            "fetch.max.bytes=1000000",
            "-X",
            "max.partition.fetch.bytes=20000000",
            "-X",
            "receive.message.max.bytes=1000512",
        ],
        "%o %S\n",
    );
    let want: Vec<String> = (0..10).map(|o| format!("{o} {SIZE}")).collect();
    assert_eq!(text.lines().collect::<Vec<_>>(), want, "{}", broker.name());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kcat_large_records_with_small_fetch_max_bytes() {
    let test = "kcat_large_records_with_small_fetch_max_bytes";
    if !require_tool("kcat", &["-V"], test).unwrap() {
        return;
    }
    let node = TestNode::start_default().unwrap();
    kcat_reads_large_records_within_fetch_max_bytes(&node).await;
    if let Some(kafka) = KafkaServer::start_or_skip(test).unwrap() {
        kcat_reads_large_records_within_fetch_max_bytes(&kafka).await;
    }
}
