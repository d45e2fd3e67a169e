//! A cluster benchmark: produce throughput with `acks=all` on a replicated partition, and how
//! long a partition is unavailable to producers when its leader is killed with -9.
//!
//! Usage: `cluster_bench [--records N] [--record-size BYTES] [--failovers N]`
//!
//! It starts a real etcd and three nodes of the `tierlog` binary under test (`TIERLOG_BIN`, else
//! the newest one under `target/`; build it with `--features etcd`) sharing a `file://` object
//! store, then prints one JSON object per line on stdout:
//!
//! 1. `{"produce": …}`: the report of `tierlog bench produce --acks all` on a new topic with one
//!    partition and replication factor 3.
//! 2. `{"failover_ms": {"min", "median", "max", "samples"}}`: `--failovers` times, the leader
//!    of a one-partition RF=3 topic is killed with -9 while a producer sends one record every
//!    20 ms (5 s message timeout); the sample is the time from the kill to the first
//!    acknowledgement of a record sent after it. The node is then restarted and the ISR waited
//!    on before the next round.
//!
//! Progress goes to stderr.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tierlog_tests::cluster::{BackgroundProducer, ClusterOptions, LoadOptions, TestCluster};
use tierlog_tests::node::tierlog_binary;

/// How long one failover may take before the run gives up.
const FAILOVER_TIMEOUT: Duration = Duration::from_secs(60);

struct Args {
    records: u64,
    record_size: u64,
    failovers: usize,
    /// `--lease-ttl` of the nodes (the harness's 2s unless given; the node default is 3s).
    lease_ttl: Option<String>,
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        records: 200_000,
        record_size: 100,
        failovers: 10,
        lease_ttl: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--records" => args.records = value.parse().context("--records")?,
            "--record-size" => args.record_size = value.parse().context("--record-size")?,
            "--failovers" => args.failovers = value.parse().context("--failovers")?,
            "--lease-ttl" => args.lease_ttl = Some(value),
            other => bail!(
                "unknown flag {other}; usage: cluster_bench [--records N] [--record-size BYTES] \
                 [--failovers N] [--lease-ttl DURATION]"
            ),
        }
    }
    Ok(args)
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = parse_args()?;
    let mut opts = ClusterOptions::default();
    if let Some(ttl) = &args.lease_ttl {
        opts.lease_ttl.clone_from(ttl);
    }
    eprintln!("cluster_bench: lease TTL {}", opts.lease_ttl);
    let mut cluster = TestCluster::start(opts)?;
    cluster.wait_brokers(3)?;
    eprintln!("cluster_bench: 3 nodes up at {}", cluster.bootstrap());

    let produce = bench_produce(&cluster, &args)?;
    println!("{}", serde_json::json!({ "produce": produce }));

    let mut samples = failovers(&mut cluster, args.failovers).await?;
    samples.sort_by(f64::total_cmp);
    let summary = match (samples.first(), samples.last()) {
        (Some(min), Some(max)) => serde_json::json!({
            "min": min,
            "median": samples[samples.len() / 2],
            "max": max,
            "samples": samples,
        }),
        _ => serde_json::json!({ "samples": samples }),
    };
    println!("{}", serde_json::json!({ "failover_ms": summary }));
    Ok(())
}

/// Runs `tierlog bench produce --acks all` against an RF=3 one-partition topic and returns its
/// JSON report.
fn bench_produce(cluster: &TestCluster, args: &Args) -> Result<serde_json::Value> {
    let binary = tierlog_binary()?;
    let output = Command::new(&binary)
        .args(["bench", "--bootstrap", &cluster.bootstrap(), "--json"])
        .args([
            "--report-interval",
            "0s",
            "produce",
            "--topic",
            "bench-produce",
        ])
        .args([
            "--acks",
            "all",
            "--partitions",
            "1",
            "--replication-factor",
            "3",
        ])
        .args(["--records", &args.records.to_string()])
        .args(["--record-size", &args.record_size.to_string()])
        .output()
        .with_context(|| format!("running {} bench produce", binary.display()))?;
    if !output.status.success() {
        bail!(
            "tierlog bench produce exited with {}:\n{}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    serde_json::from_slice(&output.stdout).with_context(|| {
        format!(
            "parsing the bench report: {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

/// Kills the leader `rounds` times and returns each unavailability window in milliseconds.
async fn failovers(cluster: &mut TestCluster, rounds: usize) -> Result<Vec<f64>> {
    let topic = "bench-failover";
    cluster.create_topic(topic, 1, 3, &[]).await?;
    cluster.wait_isr_full(topic, 0)?;
    let load = BackgroundProducer::start(
        &cluster.bootstrap(),
        topic,
        LoadOptions {
            window: 1000,
            interval: Some(Duration::from_millis(20)),
            extra: vec![
                ("message.timeout.ms".to_owned(), "5000".to_owned()),
                ("request.timeout.ms".to_owned(), "2000".to_owned()),
                ("socket.timeout.ms".to_owned(), "2000".to_owned()),
                ("linger.ms".to_owned(), "0".to_owned()),
            ],
        },
    )?;
    load.wait_acked_since(Instant::now(), 5, FAILOVER_TIMEOUT)?;
    let mut samples = Vec::with_capacity(rounds);
    for round in 1..=rounds {
        let leader = cluster.wait_leader(topic, 0)?;
        let killed_at = Instant::now();
        cluster.kill9(leader)?;
        let elapsed = first_ack_sent_after(&load, killed_at)?;
        let ms = elapsed.as_secs_f64() * 1000.0;
        eprintln!("cluster_bench: failover {round}/{rounds}: node {leader} killed, {ms:.0} ms");
        samples.push(ms);
        cluster.restart(leader)?;
        cluster.wait_isr_full(topic, 0)?;
    }
    let deliveries = load.stop()?;
    eprintln!(
        "cluster_bench: failover producer: {} acknowledged, {} failed",
        deliveries.acks.len(),
        deliveries.failures.len()
    );
    Ok(samples)
}

/// Time from `since` to the first acknowledgement of a record sent at or after `since`.
fn first_ack_sent_after(load: &BackgroundProducer, since: Instant) -> Result<Duration> {
    let deadline = since + FAILOVER_TIMEOUT;
    loop {
        let first = load
            .snapshot()
            .acks
            .iter()
            .filter(|a| a.sent_at >= since)
            .map(|a| a.acked_at)
            .min();
        if let Some(at) = first {
            return Ok(at - since);
        }
        if Instant::now() >= deadline {
            bail!("no record sent after the kill was acknowledged within {FAILOVER_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}
