//! `tierlog query serve` (Arrow Flight) read by pyarrow's Flight client, end to end.
//!
//! A real node takes records from librdkafka into a topic of small segments, is stopped with
//! SIGTERM (a clean stop seals and tiers the active segments), and `tierlog query serve` is
//! started on the same data directory with no node running. `tests/python/flight_read.py`
//! then does what a batch job does — GetFlightInfo for the topic, every endpoint DoGet-read in
//! parallel threads — and the count and an order-independent checksum of (partition, offset,
//! key, value) must equal what the producer had acknowledged. The script also checks the
//! Flight errors of a few bad requests.
//!
//! pyarrow comes from `tests/install.sh`; without it the test is skipped loudly, and in CI
//! (`CI` set) it fails.

#![allow(clippy::unwrap_used)]

use std::io::Read as _;
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tierlog_tests::clients::{create_topic, producer};
use tierlog_tests::node::{free_port, tierlog_binary};
use tierlog_tests::tools::{require_tool, tests_dir};
use tierlog_tests::workload::{produce_all, records};
use tierlog_tests::{NodeOptions, TestNode};

const TOPIC: &str = "flight-history";
const PARTITIONS: i32 = 3;
const RECORDS: usize = 6_000;

/// 64-bit FNV-1a, as `flight_read.py` computes it.
fn fnv1a(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in data {
        h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

fn push_field(buf: &mut Vec<u8>, field: Option<&[u8]>) {
    match field {
        None => buf.push(0),
        Some(b) => {
            buf.push(1);
            buf.extend_from_slice(&(b.len() as i32).to_be_bytes());
            buf.extend_from_slice(b);
        }
    }
}

/// The script's checksum of one record.
fn record_hash(partition: i32, offset: i64, key: Option<&[u8]>, value: Option<&[u8]>) -> u64 {
    let mut buf = Vec::with_capacity(64);
    buf.extend_from_slice(&partition.to_be_bytes());
    buf.extend_from_slice(&offset.to_be_bytes());
    push_field(&mut buf, key);
    push_field(&mut buf, value);
    fnv1a(&buf)
}

/// A `tierlog query serve` process, killed on drop.
struct QueryServer {
    child: Child,
    addr: SocketAddr,
}

impl QueryServer {
    fn start(data_dir: &std::path::Path) -> Result<QueryServer> {
        let port = free_port()?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let child = Command::new(tierlog_binary()?)
            .args([
                "query",
                "serve",
                "--listen",
                &addr.to_string(),
                "--data-dir",
            ])
            .arg(data_dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("spawning tierlog query serve")?;
        let mut server = QueryServer { child, addr };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            if let Some(status) = server.child.try_wait()? {
                bail!(
                    "tierlog query serve exited early with {status}: {}",
                    server.output()
                );
            }
            if Instant::now() > deadline {
                bail!("tierlog query serve did not listen on {addr} within 30s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(server)
    }

    /// Everything the process wrote (only after it exited).
    fn output(&mut self) -> String {
        let mut text = String::new();
        for pipe in [
            self.child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn std::io::Read>),
            self.child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn std::io::Read>),
        ]
        .into_iter()
        .flatten()
        {
            let mut pipe = pipe;
            let _ = pipe.read_to_string(&mut text);
        }
        text
    }

    /// SIGTERM; the server must exit cleanly.
    fn stop(mut self) -> Result<()> {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status()?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait()? {
                if !status.success() {
                    bail!(
                        "tierlog query serve exited with {status}: {}",
                        self.output()
                    );
                }
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("tierlog query serve ignored SIGTERM for 30s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for QueryServer {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pyarrow_reads_every_split_in_parallel() {
    if !require_tool(
        "python3",
        &["-c", "import pyarrow.flight"],
        "pyarrow_reads_every_split_in_parallel",
    )
    .unwrap()
    {
        return;
    }
    let mut node = TestNode::start(NodeOptions::default().min_segment_bytes(65536)).unwrap();
    let bootstrap = node.bootstrap();
    create_topic(&bootstrap, TOPIC, PARTITIONS, &[("segment.bytes", "65536")])
        .await
        .unwrap();
    let data = records(RECORDS, "flight");
    // Batches well under `segment.bytes`, so each partition rolls into several segments even
    // when a loaded machine lets the producer gather everything into one request.
    let p = producer(&bootstrap, &[("linger.ms", "5"), ("batch.size", "16384")]).unwrap();
    let acks = produce_all(&p, TOPIC, &data).await.unwrap();
    drop(p);

    let mut want: u64 = 0;
    for (rec, &(partition, offset)) in data.iter().zip(&acks) {
        want = want.wrapping_add(record_hash(
            partition,
            offset,
            rec.key.as_deref(),
            rec.value.as_deref(),
        ));
    }

    let status = node.terminate().unwrap();
    assert!(
        status.success(),
        "node exited with {status}\n{}",
        node.log_tails()
    );

    let server = QueryServer::start(&node.data_dir()).unwrap();
    let script = tests_dir().join("python").join("flight_read.py");
    let out = Command::new("python3")
        .arg(&script)
        .args([
            "--location",
            &format!("grpc+tcp://{}", server.addr),
            "--topic",
            TOPIC,
            "--workers",
            "6",
            "--check-errors",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "flight_read.py failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    eprintln!("flight_read.py: {report}");
    assert_eq!(report["count"], RECORDS as u64, "{report}");
    assert_eq!(report["checksum"], want.to_string(), "{report}");
    assert_eq!(report["total_records"], RECORDS as u64, "{report}");
    let endpoints = report["endpoints"].as_u64().unwrap();
    assert!(
        endpoints > PARTITIONS as u64,
        "small segments should give several splits per partition: {report}"
    );
    for partition in 0..PARTITIONS {
        let acked = acks.iter().filter(|(p, _)| *p == partition).count() as u64;
        assert_eq!(
            report["partitions"][partition.to_string()],
            acked,
            "{report}"
        );
    }
    server.stop().unwrap();
}
