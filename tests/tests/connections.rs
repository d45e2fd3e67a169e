//! Connections and file descriptors: no client can starve, wedge or flood a node.
//!
//! Each case runs against a real `tierlog` process pushed into the corner the case is about —
//! out of descriptors (its limit lowered with `prlimit` while it runs), full of idle or
//! half-sent connections, flooded with partial 32 MiB frames — and then checks that a normal
//! client produces and consumes again, that the node's log said little about it (a few lines,
//! not one per event), and, for memory, that the node's resident size stayed bounded and came
//! back down.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use kafka_protocol::records::Compression;
use rdkafka::Message;
use rdkafka::Offset;
use rdkafka::producer::FutureRecord;
use tierlog_tests::clients::{assigned_consumer, consume_exactly, create_topic, producer};
use tierlog_tests::node::open_files_limits;
use tierlog_tests::wait::{Poll, wait_for};
use tierlog_tests::wire::{self, Conn, KAFKA_STORAGE_ERROR};
use tierlog_tests::{NodeOptions, TestNode};

/// Kafka's INVALID_CONFIG.
const INVALID_CONFIG: i16 = 40;
/// Kafka's UNKNOWN_TOPIC_OR_PARTITION.
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
/// How long a case waits for something the node should do within moments.
const PATIENCE: Duration = Duration::from_secs(20);

/// A normal client after the fault: an rdkafka producer writes one record to a new topic and a
/// consumer reads it back. Returns how long that took (reported, not asserted: it is a
/// wall-clock figure on a shared machine).
async fn a_normal_client_is_served(bootstrap: &str, topic: &str) -> Result<Duration> {
    let started = Instant::now();
    let p = producer(bootstrap, &[("message.timeout.ms", "20000")])?;
    let delivered = p
        .send(
            FutureRecord::to(topic).key("k").payload("after the fault"),
            Duration::from_secs(20),
        )
        .await
        .map_err(|(e, _)| anyhow::anyhow!("produce after the fault: {e}"))?;
    let consumer = assigned_consumer(
        bootstrap,
        topic,
        [delivered.partition],
        Offset::Offset(delivered.offset),
    )?;
    let got = consume_exactly(&consumer, 1, PATIENCE)?;
    ensure!(got[0].payload() == Some(&b"after the fault"[..]));
    let took = started.elapsed();
    eprintln!("a normal client produced and consumed in {took:?}");
    Ok(took)
}

/// The node's open descriptors.
fn open_fds(pid: u32) -> Result<usize> {
    Ok(std::fs::read_dir(format!("/proc/{pid}/fd"))?.count())
}

/// Sets the node's open-file limit while it runs (the hard limit is left alone: an
/// unprivileged process could not raise it back).
fn set_nofile(pid: u32, (soft, hard): (u64, u64)) -> Result<()> {
    let out = Command::new("prlimit")
        .arg(format!("--pid={pid}"))
        .arg(format!("--nofile={soft}:{hard}"))
        .output()
        .context("running prlimit")?;
    ensure!(
        out.status.success(),
        "prlimit failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// The node's resident memory, in MiB.
fn rss_mib(pid: u32) -> Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS in /proc/<pid>/status")?;
    Ok(kb / 1024.0)
}

/// Lines of the node's log that mention any of `words`.
fn log_lines_about(node: &TestNode, words: &[&str]) -> usize {
    node.stderr_text()
        .lines()
        .filter(|l| words.iter().any(|w| l.contains(w)))
        .count()
}

/// At most a few lines a second: one per log interval and kind, plus a little slack.
fn ensure_quiet(node: &TestNode, words: &[&str], over: Duration) -> Result<()> {
    let lines = log_lines_about(node, words);
    let allowed = 5 + usize::try_from(over.as_secs()).unwrap_or(usize::MAX);
    ensure!(
        lines <= allowed,
        "{lines} log lines about {words:?} in {over:?} (at most {allowed})"
    );
    eprintln!("{lines} log lines about {words:?} in {over:?}");
    Ok(())
}

fn batch(value: &[u8]) -> bytes::Bytes {
    wire::encode_batch(
        &[(Some(b"k"), Some(value))],
        Compression::None,
        1_700_000_000_000,
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_descriptors_the_accept_loop_backs_off_sheds_and_recovers() -> Result<()> {
    let node = TestNode::start(NodeOptions::default())?;
    let pid = node.pid().context("node pid")?;
    let addr = node.kafka_addr();
    let before = open_files_limits(pid)?;
    let started = Instant::now();
    // No descriptor to spare: every accept fails with EMFILE.
    set_nofile(pid, (open_fds(pid)? as u64, before.1))?;
    let waiting: Vec<TcpStream> = (0..50)
        .map(|_| TcpStream::connect(addr))
        .collect::<std::io::Result<_>>()?;
    for s in &waiting {
        s.set_nonblocking(true)?;
    }
    // The node closes waiting connections one by one through its reserved descriptor, pausing
    // longer after each failure (one or two may be served instead, if the node closed a file
    // of its own meanwhile): ten are closed within moments.
    wait_for(
        "ten waiting connections closed by the node",
        PATIENCE,
        Duration::from_millis(20),
        || {
            let closed = waiting
                .iter()
                .filter(|s| match std::io::Read::read(&mut &**s, &mut [0u8; 1]) {
                    Ok(0) => true,
                    Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
                    Ok(_) => false,
                })
                .count();
            Ok(if closed >= 10 {
                Poll::Ready(())
            } else {
                Poll::Pending(format!("{closed} closed"))
            })
        },
    )?;
    let starved = started.elapsed();
    drop(waiting);
    set_nofile(pid, before)?;

    a_normal_client_is_served(&node.bootstrap(), "after-emfile").await?;
    let m = node.metrics()?;
    let errors = m.counter("tierlog_accept_errors_total");
    let shed = m.counter("tierlog_connections_shed_total");
    eprintln!("{starved:?} out of descriptors: {errors} accept errors, {shed} shed");
    ensure!(
        errors >= 10.0 && shed >= 10.0,
        "{errors} errors, {shed} shed"
    );
    // Backing off: a few dozen failed accepts at most, not millions.
    ensure!(
        errors < 1000.0,
        "{errors} accept errors in {starved:?}: no back-off"
    );
    ensure_quiet(&node, &["accept failed"], started.elapsed())?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_roll_that_runs_out_of_descriptors_does_not_wedge_the_partition() -> Result<()> {
    let node = TestNode::start(NodeOptions::default().min_segment_bytes(1024))?;
    let pid = node.pid().context("node pid")?;
    create_topic(&node.bootstrap(), "rolls", 1, &[("segment.bytes", "1024")]).await?;
    let mut conn = Conn::connect(node.kafka_addr())?;
    let value = vec![b'x'; 600];
    let first = conn.produce("rolls", 0, batch(&value), -1)?;
    ensure!(first.error_code == 0, "first produce: {}", first.error_code);
    let before = open_files_limits(pid)?;
    // No descriptor to spare: the next roll cannot open its files.
    set_nofile(pid, (open_fds(pid)? as u64, before.1))?;
    // Each produce rolls; the first roll without a descriptor fails (another may succeed
    // first if the node closed a file of its own meanwhile), and so do the next ones.
    let mut refused = 0;
    for _ in 0..50 {
        let r = conn.produce("rolls", 0, batch(&value), -1)?;
        if r.error_code == KAFKA_STORAGE_ERROR {
            refused += 1;
            if refused == 3 {
                break;
            }
        } else {
            ensure!(r.error_code == 0, "produce answered {}", r.error_code);
        }
    }
    ensure!(
        refused == 3,
        "{refused} produces failed while out of descriptors"
    );
    set_nofile(pid, before)?;
    // Descriptors are back: the partition rolls and takes writes again, without a restart.
    let r = conn.produce("rolls", 0, batch(&value), -1)?;
    ensure!(
        r.error_code == 0,
        "produce after the fault: {}",
        r.error_code
    );
    for _ in 0..5 {
        let r = conn.produce("rolls", 0, batch(&value), -1)?;
        ensure!(r.error_code == 0, "a later roll: {}", r.error_code);
    }
    let segments = segment_files(&node.data_dir(), "rolls")?;
    ensure!(segments >= 7, "{segments} segments after at least 7 rolls");
    a_normal_client_is_served(&node.bootstrap(), "after-roll").await?;
    Ok(())
}

/// The segment log files of `topic` under the data directory `root` (partition logs live in
/// `logs/<topic>-<id>/…`).
fn segment_files(root: &std::path::Path, topic: &str) -> Result<usize> {
    let mut stack = vec![(root.to_path_buf(), false)];
    let mut n = 0;
    while let Some((dir, in_topic)) = stack.pop() {
        for e in std::fs::read_dir(&dir)?.filter_map(|e| e.ok()) {
            let name = e.file_name().to_string_lossy().into_owned();
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push((e.path(), in_topic || name.starts_with(&format!("{topic}-"))));
            } else if in_topic && name.ends_with(".log") {
                n += 1;
            }
        }
    }
    Ok(n)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_trickling_connections_are_closed_and_free_their_slots() -> Result<()> {
    let node = TestNode::start(NodeOptions::default().args([
        "--connections-max-idle",
        "1s",
        "--request-read-timeout",
        "1s",
        "--max-connections",
        "20",
    ]))?;
    let addr = node.kafka_addr();
    let started = Instant::now();
    // Every slot taken by a socket that never says anything: without an idle timeout, no new
    // client would ever be served. They are closed once idle.
    let mut silent: Vec<Conn> = (0..20)
        .map(|_| Conn::connect(addr))
        .collect::<Result<_>>()?;
    for c in &mut silent {
        c.expect_closed(PATIENCE)?;
    }
    // A client that made a request, then went quiet.
    let mut quiet = Conn::connect(addr)?;
    quiet.api_versions(3)?;
    quiet.expect_closed(PATIENCE)?;
    // A slowloris: a request's length and a few of its bytes, then nothing.
    let mut slow = Conn::connect(addr)?;
    slow.send_raw(&[0, 0, 4, 0, 0, 18, 0, 3])?;
    slow.expect_closed(PATIENCE)?;
    // A busy connection is never idle: requests 300 ms apart for twice the idle timeout.
    let mut busy = Conn::connect(addr)?;
    for _ in 0..7 {
        busy.api_versions(3)?;
        std::thread::sleep(Duration::from_millis(300));
    }
    busy.api_versions(3)?;

    a_normal_client_is_served(&node.bootstrap(), "after-idle").await?;
    let m = node.metrics()?;
    let idle = m.counter("tierlog_connections_idle_closed_total");
    let timeouts = m.counter("tierlog_request_read_timeouts_total");
    ensure!(idle >= 21.0, "{idle} idle connections closed");
    ensure!(timeouts >= 1.0, "{timeouts} read timeouts");
    ensure_quiet(&node, &["request_read_timeout", "idle"], started.elapsed())?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_frames_wait_for_the_request_budget_and_memory_stays_bounded() -> Result<()> {
    const SENDERS: usize = 8;
    const FRAME: usize = 32 << 20;
    const SENT: usize = 12 << 20;
    let node = TestNode::start(NodeOptions::default().args([
        "--queued-max-request-bytes",
        "16777216",
        "--request-read-timeout",
        "1s",
    ]))?;
    let pid = node.pid().context("node pid")?;
    let addr = node.kafka_addr();
    a_normal_client_is_served(&node.bootstrap(), "before-flood").await?;
    let baseline = rss_mib(pid)?;
    let started = Instant::now();
    // Each sender announces a 32 MiB request, sends 12 MiB of it as fast as the node reads,
    // and then nothing more, until the node closes the connection.
    let senders: Vec<_> = (0..SENDERS)
        .map(|_| std::thread::spawn(move || partial_frame(addr, FRAME, SENT)))
        .collect();
    let mut peak = baseline;
    while !senders.iter().all(|s| s.is_finished()) {
        peak = peak.max(rss_mib(pid)?);
        std::thread::sleep(Duration::from_millis(20));
    }
    for s in senders {
        s.join().unwrap()?;
    }
    let m = node.metrics()?;
    let waits = m.counter("tierlog_request_memory_waits_total");
    let timeouts = m.counter("tierlog_request_read_timeouts_total");
    eprintln!(
        "rss: baseline {baseline:.0} MiB, peak {peak:.0} MiB while {SENDERS} clients sent {} MiB \
         of partial frames; {waits} waits, {timeouts} read timeouts",
        (SENDERS * SENT) >> 20
    );
    ensure!(waits >= 1.0, "no request waited for the budget");
    ensure!(timeouts >= SENDERS as f64, "{timeouts} read timeouts");
    // Unbounded, the node would hold every byte sent (96 MiB); bounded, the one frame
    // allowed at a time (the frame is larger than the whole budget).
    ensure!(
        peak - baseline < 48.0,
        "memory grew {:.0} MiB (baseline {baseline:.0}, peak {peak:.0})",
        peak - baseline
    );
    a_normal_client_is_served(&node.bootstrap(), "after-flood").await?;
    let after = wait_for(
        "memory back near its baseline",
        PATIENCE,
        Duration::from_millis(100),
        || {
            let now = rss_mib(pid)?;
            Ok(if now - baseline < 32.0 {
                Poll::Ready(now)
            } else {
                Poll::Pending(format!("{now:.0} MiB (baseline {baseline:.0})"))
            })
        },
    )?;
    eprintln!("rss after: {after:.0} MiB");
    ensure_quiet(&node, &["request_read_timeout"], started.elapsed())?;
    Ok(())
}

/// Connects, announces a frame of `len` bytes and sends `send` bytes of it (or as many as the
/// node takes before closing the connection), then waits for the node to close it.
fn partial_frame(addr: SocketAddr, len: usize, send: usize) -> Result<()> {
    let mut s = TcpStream::connect(addr)?;
    s.set_write_timeout(Some(Duration::from_secs(60)))?;
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    s.write_all(&i32::try_from(len)?.to_be_bytes())?;
    let chunk = vec![0u8; 64 << 10];
    let mut sent = 0;
    while sent < send {
        if s.write_all(&chunk).is_err() {
            return Ok(()); // closed by the node (read timeout)
        }
        sent += chunk.len();
    }
    match std::io::Read::read(&mut s, &mut [0u8; 1]) {
        Ok(0) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => Ok(()),
        other => bail!("a half-sent request's connection was not closed: {other:?}"),
    }
}

#[test]
fn the_per_ip_limit_and_its_override_close_the_next_connection() -> Result<()> {
    let node = TestNode::start(NodeOptions::default().args([
        "--max-connections-per-ip",
        "2",
        "--max-connections-per-ip-overrides",
        "127.0.0.1:4",
    ]))?;
    let addr = node.kafka_addr();
    let mut open = Vec::new();
    for _ in 0..4 {
        let mut c = Conn::connect(addr)?;
        c.api_versions(3)?;
        open.push(c);
    }
    Conn::connect(addr)?.expect_closed(PATIENCE)?;
    let m = node.metrics()?;
    ensure!(m.counter("tierlog_connections_refused_total") >= 1.0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segment_bytes_below_a_mebibyte_is_refused() -> Result<()> {
    let node = TestNode::start(NodeOptions::default())?;
    let bootstrap = node.bootstrap();
    for tiny in ["14", "1048575"] {
        let err = create_topic(&bootstrap, "tiny", 1, &[("segment.bytes", tiny)])
            .await
            .expect_err("a tiny segment.bytes is refused");
        ensure!(
            format!("{err:#}").contains("InvalidConfig"),
            "segment.bytes={tiny}: {err:#}"
        );
    }
    create_topic(&bootstrap, "mib", 1, &[("segment.bytes", "1048576")]).await?;
    let mut conn = Conn::connect(node.kafka_addr())?;
    let err = conn
        .set_topic_configs("mib", &[("segment.bytes", "4096")])
        .expect_err("altering to a tiny segment.bytes is refused");
    ensure!(
        format!("{err:#}").contains(&INVALID_CONFIG.to_string()),
        "{err:#}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_auto_creates_a_bounded_number_of_topics() -> Result<()> {
    let node = TestNode::start(
        NodeOptions::default().args(["--auto-create-topics-per-ip-per-minute", "5"]),
    )?;
    let mut conn = Conn::connect(node.kafka_addr())?;
    let mut created = 0;
    let mut refused = 0;
    for i in 0..8 {
        let t = conn.metadata_topic(&format!("auto-{i}"), true)?;
        match t.error_code {
            0 => created += 1,
            UNKNOWN_TOPIC_OR_PARTITION => refused += 1,
            other => bail!("auto-{i}: error {other}"),
        }
    }
    ensure!(
        (created, refused) == (5, 3),
        "{created} created, {refused} refused"
    );
    // Topics that exist are described as usual.
    ensure!(conn.metadata_topic("auto-0", true)?.error_code == 0);
    let m = node.metrics()?;
    ensure!(m.counter("tierlog_auto_create_refused_total") == 3.0);
    Ok(())
}
