//! `tierlog bench produce|consume`: load generators in the spirit of Kafka's
//! `kafka-producer-perf-test` and `kafka-consumer-perf-test`, on librdkafka.
//!
//! Lifecycle of a run:
//!
//! 1. On the async side, the admin client (`client`) looks up the topic's partitions;
//!    `produce` creates the topic first when it is missing and waits for leaders.
//! 2. The hot loop runs on a blocking thread (`spawn_blocking`), because librdkafka's calls
//!    block and a send loop must not starve the runtime. `produce` uses a `ThreadedProducer`,
//!    whose own thread polls delivery reports; `consume` polls a `BaseConsumer` that has
//!    every partition assigned from the beginning (no group, no commits).
//! 3. A reporter thread prints a progress line to stderr every `--report-interval`.
//! 4. The final report goes to stdout, as text or, with `--json`, as one JSON object. A run
//!    with failed or unacknowledged records, or that timed out, prints its report and then
//!    fails, so scripts can trust the exit code.
//!
//! Producing sends the same pre-built payload (random capital letters, like Kafka's tool)
//! without a key, partition chosen round-robin by the loop itself; the only per-record work
//! is librdkafka's copy of the payload. Latency is measured from the `send` call to the
//! delivery report, so without `--throughput` it includes time queued in the client — as in
//! Kafka's tool; cap the rate to measure latency at a given load.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use hdrhistogram::Histogram;
use rdkafka::ClientConfig;
use rdkafka::ClientContext;
use rdkafka::config::FromClientConfigAndContext;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError as RdKafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};
use serde::Serialize;

use super::args::parse_key_value;
use super::client::{AdminClient, KafkaError, NewTopic};

const MIB: f64 = 1024.0 * 1024.0;
/// Kafka's UNKNOWN_TOPIC_OR_PARTITION / LEADER_NOT_AVAILABLE / TOPIC_ALREADY_EXISTS.
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const LEADER_NOT_AVAILABLE: i16 = 5;
const TOPIC_ALREADY_EXISTS: i16 = 36;
/// How long `produce` waits for a freshly created topic to have leaders.
const TOPIC_READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Latencies are recorded in microseconds up to an hour, 3 significant digits.
const MAX_LATENCY_US: u64 = 3_600_000_000;

/// `tierlog bench …`
#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// Kafka bootstrap address(es), comma-separated host:port.
    #[arg(
        long,
        env = "TIERLOG_BOOTSTRAP",
        default_value = "127.0.0.1:9092",
        global = true
    )]
    pub bootstrap: String,
    /// Print the final report as one JSON object on stdout (progress stays on stderr).
    #[arg(long, global = true)]
    pub json: bool,
    /// How often to print a progress line on stderr; `0s` for none.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration, global = true)]
    pub report_interval: Duration,
    /// A raw librdkafka setting applied last, e.g. `-X socket.nagle.disable=true`; repeatable.
    #[arg(short = 'X', long = "property", value_name = "KEY=VALUE", value_parser = parse_key_value, global = true)]
    pub properties: Vec<(String, String)>,
    #[command(subcommand)]
    pub command: BenchCommand,
}

/// The bench subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum BenchCommand {
    /// Produce records as fast as possible (or at `--throughput`) and report rate and latency.
    Produce(ProduceArgs),
    /// Read a topic from the beginning and report the rate.
    Consume(ConsumeArgs),
    /// Commit consumer-group offsets as fast as possible (OffsetCommit, many groups at once)
    /// and report partition commits per second.
    Commits(CommitsArgs),
}

/// `tierlog bench commits`.
#[derive(clap::Args, Debug, Clone)]
pub struct CommitsArgs {
    /// Topic whose partitions the groups commit offsets for; created if missing.
    #[arg(long, default_value = "bench-commits")]
    pub topic: String,
    /// Number of groups committing concurrently.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub groups: u64,
    /// Partitions each group commits in every OffsetCommit request.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub partitions: u64,
    /// Client connections the groups are spread over.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub connections: u64,
    /// How long to run.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
}

/// The result of `bench commits`; also its `--json` shape.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct CommitsReport {
    mode: &'static str,
    groups: u64,
    partitions_per_commit: u64,
    connections: u64,
    requests: u64,
    partition_commits: u64,
    errors: u64,
    elapsed_secs: f64,
    requests_per_sec: f64,
    partition_commits_per_sec: f64,
    latency_ms_p50: f64,
    latency_ms_p99: f64,
}

fn format_commits_report(r: &CommitsReport) -> String {
    format!(
        "Committed {} partition offsets in {} OffsetCommit requests ({} groups x {} partitions, {} connections) in {:.3} s\n  throughput: {:.1} partition commits/s, {:.1} requests/s\n  latency ms: p50 {:.3}  p99 {:.3}\n  errors:     {}\n",
        r.partition_commits,
        r.requests,
        r.groups,
        r.partitions_per_commit,
        r.connections,
        r.elapsed_secs,
        r.partition_commits_per_sec,
        r.requests_per_sec,
        r.latency_ms_p50,
        r.latency_ms_p99,
        r.errors
    )
}

/// Runs `bench commits`: each connection cycles through its share of the groups, committing
/// `partitions` offsets per request, until `duration` passes.
async fn commits(bootstrap: &str, args: &CommitsArgs) -> anyhow::Result<CommitsReport> {
    let mut admin = AdminClient::connect(bootstrap).await?;
    let partitions = match admin.topic_partitions(&args.topic).await {
        Ok(p) if p.len() as u64 >= args.partitions => p.len() as u64,
        _ => {
            let topic = NewTopic {
                name: args.topic.clone(),
                partitions: args.partitions as i32,
                replication_factor: None,
                configs: Vec::new(),
            };
            admin
                .create_topic(&topic, false)
                .await
                .context("create the commit topic")?;
            args.partitions
        }
    };
    drop(admin);
    let per_commit = args.partitions.min(partitions);
    let deadline = Instant::now() + args.duration;
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..args.connections {
        let groups: Vec<String> = (0..args.groups)
            .filter(|g| g % args.connections == c)
            .map(|g| format!("bench-group-{g}"))
            .collect();
        if groups.is_empty() {
            continue;
        }
        let (bootstrap, topic) = (bootstrap.to_owned(), args.topic.clone());
        tasks.spawn(async move {
            let mut client = AdminClient::connect(&bootstrap).await?;
            let mut hist = Histogram::<u64>::new(3).context("histogram")?;
            let (mut requests, mut errors) = (0_u64, 0_u64);
            let mut offset = 0_i64;
            while Instant::now() < deadline {
                for g in &groups {
                    offset += 1;
                    let batch: Vec<(String, i32, i64)> = (0..per_commit as i32)
                        .map(|p| (topic.clone(), p, offset))
                        .collect();
                    let sent = Instant::now();
                    let results = client.commit_group_offsets(g, &batch).await?;
                    let _ = hist.record(sent.elapsed().as_micros() as u64);
                    requests += 1;
                    errors += results.iter().filter(|(_, r)| r.is_err()).count() as u64;
                }
            }
            anyhow::Ok((requests, errors, hist))
        });
    }
    let (mut requests, mut errors) = (0_u64, 0_u64);
    let mut hist = Histogram::<u64>::new(3).context("histogram")?;
    while let Some(joined) = tasks.join_next().await {
        let (r, e, h) = joined.context("commit task panicked")??;
        requests += r;
        errors += e;
        hist.add(&h).context("merge histograms")?;
    }
    let elapsed = start.elapsed().as_secs_f64().max(1e-9);
    Ok(CommitsReport {
        mode: "commits",
        groups: args.groups,
        partitions_per_commit: per_commit,
        connections: args.connections,
        requests,
        partition_commits: requests * per_commit,
        errors,
        elapsed_secs: elapsed,
        requests_per_sec: requests as f64 / elapsed,
        partition_commits_per_sec: (requests * per_commit) as f64 / elapsed,
        latency_ms_p50: hist.value_at_quantile(0.5) as f64 / 1000.0,
        latency_ms_p99: hist.value_at_quantile(0.99) as f64 / 1000.0,
    })
}

/// Producer acknowledgement level, as in Kafka's `acks`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(into = "String")]
pub enum Acks {
    /// Fire and forget.
    None,
    /// The leader has appended the batch.
    Leader,
    /// Every in-sync replica has it (the batch is below the high watermark).
    All,
}

impl Acks {
    /// The value of librdkafka's `acks` setting.
    pub fn as_config(self) -> &'static str {
        match self {
            Acks::None => "0",
            Acks::Leader => "1",
            Acks::All => "all",
        }
    }
}

impl std::fmt::Display for Acks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_config())
    }
}

impl From<Acks> for String {
    fn from(acks: Acks) -> Self {
        acks.as_config().to_owned()
    }
}

/// Parses `0`, `1`, `all` or `-1` (Kafka's synonym for `all`).
pub fn parse_acks(s: &str) -> Result<Acks, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "0" => Ok(Acks::None),
        "1" => Ok(Acks::Leader),
        "all" | "-1" => Ok(Acks::All),
        _ => Err(format!("expected 0, 1 or all, got `{s}`")),
    }
}

/// Producer compression codec.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Compression {
    /// The value of librdkafka's `compression.type` setting.
    pub fn as_config(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }
}

/// `tierlog bench produce`
#[derive(clap::Args, Debug)]
pub struct ProduceArgs {
    /// Topic to produce to; created with `--partitions` if missing.
    #[arg(long)]
    pub topic: String,
    /// Number of records to send.
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub records: u64,
    /// Payload size of each record in bytes.
    #[arg(long, default_value_t = 100)]
    pub record_size: usize,
    /// Acknowledgements: 0, 1 or all.
    #[arg(long, default_value = "all", value_parser = parse_acks)]
    pub acks: Acks,
    /// Partitions to create the topic with when it does not exist (records are spread
    /// round-robin over all of the topic's partitions either way).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(i32).range(1..))]
    pub partitions: i32,
    /// Replication factor when creating the topic; the broker default when omitted.
    #[arg(long, value_parser = clap::value_parser!(i16).range(1..))]
    pub replication_factor: Option<i16>,
    /// Compression codec.
    #[arg(long, value_enum, default_value_t = Compression::None)]
    pub compression: Compression,
    /// How long the producer waits to fill a batch (librdkafka `linger.ms`).
    #[arg(long, default_value_t = 5)]
    pub linger_ms: u64,
    /// Maximum batch size in bytes (librdkafka `batch.size`).
    #[arg(long, default_value_t = 1_048_576, value_parser = clap::value_parser!(u64).range(1..=2_147_483_647))]
    pub batch_size: u64,
    /// Maximum in-flight requests per connection.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub in_flight: u32,
    /// Cap on records per second; 0 for as fast as possible.
    #[arg(long, default_value_t = 0)]
    pub throughput: u64,
    /// How long a record may wait for its acknowledgement before it counts as failed.
    #[arg(long, default_value = "120s", value_parser = humantime::parse_duration)]
    pub delivery_timeout: Duration,
    /// Produce in transactions with this `transactional.id` (implies idempotence): begin,
    /// send `--transaction-records` records, wait for their acks, commit; each commit is timed.
    #[arg(long)]
    pub transactional_id: Option<String>,
    /// Records per transaction with `--transactional-id`.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..))]
    pub transaction_records: u64,
}

/// `tierlog bench consume`
#[derive(clap::Args, Debug)]
pub struct ConsumeArgs {
    /// Topic to read, all partitions from the beginning.
    #[arg(long)]
    pub topic: String,
    /// Stop after this many records; without it, stop when every partition is caught up.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub records: Option<u64>,
    /// Give up when no record arrives for this long.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// Maximum bytes per fetch response (librdkafka `fetch.max.bytes`).
    #[arg(long, default_value_t = 52_428_800, value_parser = clap::value_parser!(u64).range(1..=2_147_000_000))]
    pub fetch_max_bytes: u64,
    /// Maximum bytes per partition per fetch (librdkafka `max.partition.fetch.bytes`).
    #[arg(long, default_value_t = 10_485_760, value_parser = clap::value_parser!(u64).range(1..=2_147_000_000))]
    pub max_partition_fetch_bytes: u64,
    /// Longest the broker may hold a fetch waiting for data (librdkafka `fetch.wait.max.ms`).
    #[arg(long, default_value_t = 100)]
    pub fetch_wait_max_ms: u64,
    /// Consumer instances, each on its own thread with its share of the partitions (like the
    /// members of a group). librdkafka parses every record on one thread per instance, so one
    /// instance is usually the bottleneck, not the broker.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=64))]
    pub threads: u64,
}

/// Runs one `tierlog bench` subcommand.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let BenchArgs {
        bootstrap,
        json,
        report_interval,
        properties,
        command,
    } = args;
    match command {
        BenchCommand::Produce(produce_args) => {
            let partitions = prepare_produce_topic(&bootstrap, &produce_args).await?;
            let report = tokio::task::spawn_blocking(move || {
                produce(
                    &bootstrap,
                    &produce_args,
                    &properties,
                    &partitions,
                    report_interval,
                )
            })
            .await
            .context("produce thread panicked")??;
            print_report(&report, json, format_produce_report)?;
            report.check()
        }
        BenchCommand::Commits(commits_args) => {
            let report = commits(&bootstrap, &commits_args).await?;
            print_report(&report, json, format_commits_report)?;
            if report.errors > 0 {
                bail!("{} partition commits failed", report.errors);
            }
            Ok(())
        }
        BenchCommand::Consume(consume_args) => {
            let mut admin = AdminClient::connect(&bootstrap).await?;
            let partitions: Vec<i32> = admin
                .topic_partitions(&consume_args.topic)
                .await?
                .into_iter()
                .map(|(id, _)| id)
                .collect();
            drop(admin);
            let report = tokio::task::spawn_blocking(move || {
                consume(
                    &bootstrap,
                    &consume_args,
                    &properties,
                    &partitions,
                    report_interval,
                )
            })
            .await
            .context("consume thread panicked")??;
            print_report(&report, json, format_consume_report)?;
            report.check()
        }
    }
}

fn print_report<R: Serialize>(
    report: &R,
    json: bool,
    human: fn(&R) -> String,
) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string(report)?);
    } else {
        print!("{}", human(report));
    }
    Ok(())
}

/// The topic's partition ids, creating the topic when it is missing and waiting until every
/// partition has a leader.
async fn prepare_produce_topic(bootstrap: &str, args: &ProduceArgs) -> anyhow::Result<Vec<i32>> {
    let mut admin = AdminClient::connect(bootstrap).await?;
    match admin.topic_partitions(&args.topic).await {
        Ok(partitions) if !partitions.is_empty() => {
            let count = i32::try_from(partitions.len()).unwrap_or(i32::MAX);
            if count != args.partitions && args.partitions != 1 {
                eprintln!(
                    "note: topic `{}` exists with {count} partition(s); --partitions {} only applies when creating it",
                    args.topic, args.partitions
                );
            }
            if partitions.iter().all(|(_, leader)| *leader >= 0) {
                return Ok(partitions.into_iter().map(|(id, _)| id).collect());
            }
        }
        Ok(_) => {}
        Err(e) if kafka_code(&e) == Some(UNKNOWN_TOPIC_OR_PARTITION) => {
            let topic = NewTopic {
                name: args.topic.clone(),
                partitions: args.partitions,
                replication_factor: args.replication_factor,
                configs: Vec::new(),
            };
            match admin.create_topic(&topic, false).await {
                Ok(_) => eprintln!(
                    "created topic `{}` with {} partition(s)",
                    args.topic, args.partitions
                ),
                // Someone else created it meanwhile: fine, use theirs.
                Err(e) if kafka_code(&e) == Some(TOPIC_ALREADY_EXISTS) => {}
                Err(e) => return Err(e),
            }
        }
        Err(e) if kafka_code(&e) == Some(LEADER_NOT_AVAILABLE) => {}
        Err(e) => return Err(e),
    }

    let deadline = Instant::now() + TOPIC_READY_TIMEOUT;
    loop {
        let last = match admin.topic_partitions(&args.topic).await {
            Ok(partitions) if !partitions.is_empty() && partitions.iter().all(|(_, l)| *l >= 0) => {
                return Ok(partitions.into_iter().map(|(id, _)| id).collect());
            }
            Ok(partitions) => format!(
                "{} partition(s), {} without a leader",
                partitions.len(),
                partitions.iter().filter(|(_, l)| *l < 0).count()
            ),
            Err(e)
                if matches!(
                    kafka_code(&e),
                    Some(UNKNOWN_TOPIC_OR_PARTITION | LEADER_NOT_AVAILABLE)
                ) =>
            {
                format!("{e:#}")
            }
            Err(e) => return Err(e),
        };
        if Instant::now() >= deadline {
            bail!(
                "topic `{}` not ready after {TOPIC_READY_TIMEOUT:?}: {last}",
                args.topic
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn kafka_code(e: &anyhow::Error) -> Option<i16> {
    e.downcast_ref::<KafkaError>().map(|k| k.code)
}

/// Latency histograms: one for the whole run, one per progress window.
struct Latencies {
    total: Histogram<u64>,
    window: Histogram<u64>,
}

/// Counters shared by the send loop, the delivery callback (on the producer's poll thread)
/// and the reporter thread. Atomics because three threads touch them; the histograms sit
/// behind a mutex that only the poll thread takes per record (uncontended) and the reporter
/// once per interval.
struct ProduceStats {
    /// Send timestamps are nanoseconds since this instant (fits the `usize` opaque).
    start: Instant,
    sent: AtomicU64,
    acked: AtomicU64,
    failed: AtomicU64,
    latencies: Mutex<Latencies>,
    first_error: Mutex<Option<String>>,
}

impl ProduceStats {
    fn new() -> anyhow::Result<Self> {
        let histogram = || Histogram::<u64>::new_with_bounds(1, MAX_LATENCY_US, 3);
        Ok(Self {
            start: Instant::now(),
            sent: AtomicU64::new(0),
            acked: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            latencies: Mutex::new(Latencies {
                total: histogram()?,
                window: histogram()?,
            }),
            first_error: Mutex::new(None),
        })
    }

    fn now_nanos(&self) -> usize {
        usize::try_from(self.start.elapsed().as_nanos()).unwrap_or(usize::MAX)
    }

    fn record_error(&self, error: String) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        self.first_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_or_insert(error);
    }
}

/// The producer context: turns delivery reports into counts and latencies.
struct BenchContext {
    stats: Arc<ProduceStats>,
}

impl ClientContext for BenchContext {}

impl ProducerContext for BenchContext {
    /// Nanoseconds since `stats.start` at send time: no allocation per record.
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, sent_at: usize) {
        match result {
            Ok(_) => {
                let latency_us = (self.stats.now_nanos().saturating_sub(sent_at) / 1000) as u64;
                let mut latencies = self
                    .stats
                    .latencies
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                latencies.total.saturating_record(latency_us.max(1));
                latencies.window.saturating_record(latency_us.max(1));
                drop(latencies);
                self.stats.acked.fetch_add(1, Ordering::Relaxed);
            }
            Err((e, _)) => self.stats.record_error(e.to_string()),
        }
    }
}

/// The librdkafka producer settings for a run; user `-X` properties come last and win.
fn producer_config(
    bootstrap: &str,
    args: &ProduceArgs,
    properties: &[(String, String)],
) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("client.id", "tierlog-bench")
        .set("acks", args.acks.as_config())
        .set("compression.type", args.compression.as_config())
        .set("linger.ms", args.linger_ms.to_string())
        .set("batch.size", args.batch_size.to_string())
        // Let batch.size, not a message count, bound batches.
        .set("batch.num.messages", "1000000")
        .set(
            "max.in.flight.requests.per.connection",
            args.in_flight.to_string(),
        )
        // A large client queue so the send loop rarely sees QueueFull.
        .set("queue.buffering.max.kbytes", "1048576")
        .set("queue.buffering.max.messages", "2000000")
        // A request must fit at least one full batch.
        .set(
            "message.max.bytes",
            (args.batch_size + 65_536)
                .clamp(1_000_000, 1_000_000_000)
                .to_string(),
        )
        .set(
            "message.timeout.ms",
            args.delivery_timeout.as_millis().to_string(),
        );
    if let Some(id) = &args.transactional_id {
        // librdkafka insists on message.timeout.ms <= transaction.timeout.ms (default 60 s).
        config.set("transactional.id", id).set(
            "transaction.timeout.ms",
            args.delivery_timeout.as_millis().max(1000).to_string(),
        );
    }
    for (k, v) in properties {
        config.set(k, v);
    }
    config
}

/// A payload of pseudo-random capital letters, built once per run.
fn build_payload(size: usize) -> Vec<u8> {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..size)
        .map(|_| {
            // xorshift64: fast, deterministic, good enough to defeat trivial compression.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            b'A' + (state % 26) as u8
        })
        .collect()
}

/// The produce hot loop; blocking, run on its own thread.
fn produce(
    bootstrap: &str,
    args: &ProduceArgs,
    properties: &[(String, String)],
    partitions: &[i32],
    report_interval: Duration,
) -> anyhow::Result<ProduceReport> {
    if partitions.is_empty() {
        bail!("topic `{}` has no partitions", args.topic);
    }
    let stats = Arc::new(ProduceStats::new()?);
    let producer: ThreadedProducer<BenchContext> = ThreadedProducer::from_config_and_context(
        &producer_config(bootstrap, args, properties),
        BenchContext {
            stats: Arc::clone(&stats),
        },
    )
    .context("create producer")?;
    let payload = build_payload(args.record_size);
    let txn_timeout = args.delivery_timeout + Duration::from_secs(10);
    let mut txn = match &args.transactional_id {
        Some(_) => {
            producer
                .init_transactions(txn_timeout)
                .context("init_transactions")?;
            Some(TransactionStats::new()?)
        }
        None => None,
    };

    let reporter = {
        let stats = Arc::clone(&stats);
        let record_size = args.record_size as f64;
        let mut last_acked = 0;
        Reporter::spawn(report_interval, move |window| {
            let acked = stats.acked.load(Ordering::Relaxed);
            let delta = acked.saturating_sub(last_acked) as f64;
            last_acked = acked;
            let secs = window.as_secs_f64().max(1e-9);
            let mut latencies = stats
                .latencies
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let line = format!(
                "{} sent, {} acked, {:.1} records/s, {:.2} MiB/s, latency avg {:.2} ms, p99 {:.2} ms, max {:.2} ms, {} errors",
                stats.sent.load(Ordering::Relaxed),
                acked,
                delta / secs,
                delta * record_size / MIB / secs,
                latencies.window.mean() / 1000.0,
                latencies.window.value_at_quantile(0.99) as f64 / 1000.0,
                latencies.window.max() as f64 / 1000.0,
                stats.failed.load(Ordering::Relaxed),
            );
            latencies.window.reset();
            line
        })?
    };

    let pacer_start = Instant::now();
    for i in 0..args.records {
        if args.throughput > 0 {
            // Sleep until this record's slot; coarse sleeps keep CPU use low at low rates.
            let due = Duration::from_secs_f64(i as f64 / args.throughput as f64);
            let elapsed = pacer_start.elapsed();
            if due > elapsed + Duration::from_micros(200) {
                std::thread::sleep(due - elapsed);
            }
        }
        if txn.is_some() && i % args.transaction_records == 0 {
            producer.begin_transaction().context("begin_transaction")?;
        }
        let partition = partitions[(i % partitions.len() as u64) as usize];
        let mut record =
            BaseRecord::<(), [u8], usize>::with_opaque_to(&args.topic, stats.now_nanos())
                .payload(&payload[..])
                .partition(partition);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((RdKafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    // The client queue is full: wait for the poll thread to drain acks.
                    record = back;
                    std::thread::sleep(Duration::from_micros(500));
                }
                Err((e, _)) => {
                    stats.record_error(e.to_string());
                    break;
                }
            }
        }
        stats.sent.store(i + 1, Ordering::Relaxed);
        if let Some(txn) = txn.as_mut()
            && ((i + 1) % args.transaction_records == 0 || i + 1 == args.records)
        {
            txn.commit(&producer, &stats, txn_timeout)?;
        }
    }
    let flush = producer.flush(args.delivery_timeout + Duration::from_secs(10));
    let elapsed = stats.start.elapsed();
    reporter.stop();

    let latencies = stats
        .latencies
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    let sent = stats.sent.load(Ordering::Relaxed);
    let acked = stats.acked.load(Ordering::Relaxed);
    let errors = stats.failed.load(Ordering::Relaxed);
    let mut first_error = stats
        .first_error
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    if let Err(e) = flush {
        first_error.get_or_insert(format!("flush: {e}"));
    }
    let mut report = ProduceReport::new(
        args,
        partitions.len(),
        sent,
        acked,
        errors,
        elapsed,
        LatencySummary::from_histogram(&latencies.total),
        first_error,
    );
    report.transactions = txn.map(|t| t.summary(args.transaction_records, elapsed));
    Ok(report)
}

/// Transactional mode: the commits and their latencies.
struct TransactionStats {
    /// `commit_transaction` alone (the records are acknowledged just before).
    commit: Histogram<u64>,
    /// `begin_transaction` to the end of `commit_transaction`.
    whole: Histogram<u64>,
    began: Instant,
    commits: u64,
}

impl TransactionStats {
    fn new() -> anyhow::Result<Self> {
        Ok(Self {
            commit: Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)?,
            whole: Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)?,
            began: Instant::now(),
            commits: 0,
        })
    }

    /// Waits until the transaction's records are acknowledged, then commits it, timing the
    /// commit alone. (Not `flush`: on a `ThreadedProducer` it notices the drained queue only
    /// at the poll thread's 100 ms tick.)
    fn commit(
        &mut self,
        producer: &ThreadedProducer<BenchContext>,
        stats: &ProduceStats,
        timeout: Duration,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        let sent = stats.sent.load(Ordering::Relaxed);
        while stats.acked.load(Ordering::Relaxed) + stats.failed.load(Ordering::Relaxed) < sent {
            if Instant::now() >= deadline {
                bail!("records not acknowledged before commit_transaction after {timeout:?}");
            }
            std::thread::sleep(Duration::from_micros(50));
        }
        let t0 = Instant::now();
        producer
            .commit_transaction(timeout)
            .context("commit_transaction")?;
        let us = |d: Duration| (d.as_micros() as u64).max(1);
        self.commit.saturating_record(us(t0.elapsed()));
        self.whole.saturating_record(us(self.began.elapsed()));
        self.began = Instant::now();
        self.commits += 1;
        Ok(())
    }

    fn summary(&self, records_per_transaction: u64, elapsed: Duration) -> TransactionSummary {
        TransactionSummary {
            records_per_transaction,
            commits: self.commits,
            commits_per_sec: self.commits as f64 / elapsed.as_secs_f64().max(1e-9),
            commit_latency_ms: LatencySummary::from_histogram(&self.commit),
            transaction_latency_ms: LatencySummary::from_histogram(&self.whole),
        }
    }
}

/// The transactional part of a produce report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct TransactionSummary {
    records_per_transaction: u64,
    commits: u64,
    commits_per_sec: f64,
    /// `commit_transaction` alone (EndTxn; the records were acknowledged first).
    commit_latency_ms: LatencySummary,
    /// `begin_transaction` to committed: sending, flushing and committing the records.
    transaction_latency_ms: LatencySummary,
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct LatencySummary {
    avg: f64,
    p50: f64,
    p95: f64,
    p99: f64,
    p999: f64,
    max: f64,
}

impl LatencySummary {
    fn from_histogram(h: &Histogram<u64>) -> Self {
        let ms = |us: u64| us as f64 / 1000.0;
        if h.is_empty() {
            return Self {
                avg: 0.0,
                p50: 0.0,
                p95: 0.0,
                p99: 0.0,
                p999: 0.0,
                max: 0.0,
            };
        }
        Self {
            avg: h.mean() / 1000.0,
            p50: ms(h.value_at_quantile(0.50)),
            p95: ms(h.value_at_quantile(0.95)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
        }
    }
}

/// The result of `bench produce`; also its `--json` shape.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct ProduceReport {
    mode: &'static str,
    topic: String,
    partitions: usize,
    /// Records asked for.
    records: u64,
    record_size: usize,
    acks: Acks,
    compression: Compression,
    linger_ms: u64,
    batch_size: u64,
    in_flight: u32,
    /// `--throughput`: the records/s cap, 0 for none.
    throughput_limit: u64,
    /// Records handed to the client.
    sent: u64,
    acked: u64,
    errors: u64,
    /// Sent but neither acknowledged nor failed when the run ended (flush timed out).
    unacked: u64,
    elapsed_secs: f64,
    /// Acknowledged records per second over the whole run.
    records_per_sec: f64,
    /// Acknowledged payload MiB (2^20 bytes) per second.
    mib_per_sec: f64,
    latency_ms: LatencySummary,
    first_error: Option<String>,
    /// With `--transactional-id`: commits and their latencies.
    #[serde(skip_serializing_if = "Option::is_none")]
    transactions: Option<TransactionSummary>,
}

impl ProduceReport {
    #[allow(clippy::too_many_arguments)]
    fn new(
        args: &ProduceArgs,
        partitions: usize,
        sent: u64,
        acked: u64,
        errors: u64,
        elapsed: Duration,
        latency_ms: LatencySummary,
        first_error: Option<String>,
    ) -> Self {
        let secs = elapsed.as_secs_f64().max(1e-9);
        Self {
            mode: "produce",
            topic: args.topic.clone(),
            partitions,
            records: args.records,
            record_size: args.record_size,
            acks: args.acks,
            compression: args.compression,
            linger_ms: args.linger_ms,
            batch_size: args.batch_size,
            in_flight: args.in_flight,
            throughput_limit: args.throughput,
            sent,
            acked,
            errors,
            unacked: sent.saturating_sub(acked + errors),
            elapsed_secs: elapsed.as_secs_f64(),
            records_per_sec: acked as f64 / secs,
            mib_per_sec: acked as f64 * args.record_size as f64 / MIB / secs,
            latency_ms,
            first_error,
            transactions: None,
        }
    }

    /// Fails when any record was not acknowledged.
    fn check(&self) -> anyhow::Result<()> {
        if self.errors > 0 || self.unacked > 0 || self.acked < self.records {
            bail!(
                "{} of {} records were not acknowledged ({} failed, {} unacknowledged); first error: {}",
                self.records.saturating_sub(self.acked),
                self.records,
                self.errors,
                self.unacked,
                self.first_error.as_deref().unwrap_or("none reported")
            );
        }
        Ok(())
    }
}

fn format_produce_report(r: &ProduceReport) -> String {
    let l = &r.latency_ms;
    let mut out = format!(
        "Produced {} of {} records ({} bytes each) to `{}` ({} partition(s), acks={}, compression={}) in {:.3} s\n\
         \x20 throughput: {:.1} records/s, {:.2} MiB/s\n\
         \x20 latency ms: avg {:.3}  p50 {:.3}  p95 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}\n\
         \x20 errors:     {}\n",
        r.acked,
        r.records,
        r.record_size,
        r.topic,
        r.partitions,
        r.acks,
        r.compression.as_config(),
        r.elapsed_secs,
        r.records_per_sec,
        r.mib_per_sec,
        l.avg,
        l.p50,
        l.p95,
        l.p99,
        l.p999,
        l.max,
        r.errors,
    );
    if let Some(t) = &r.transactions {
        let (c, w) = (&t.commit_latency_ms, &t.transaction_latency_ms);
        out.push_str(&format!(
            "  transactions: {} commits of {} records, {:.1} commits/s\n\
             \x20 commit ms:  p50 {:.3}  p99 {:.3}  max {:.3}  (commit_transaction after the acks)\n\
             \x20 txn ms:     p50 {:.3}  p99 {:.3}  max {:.3}  (begin to committed)\n",
            t.commits,
            t.records_per_transaction,
            t.commits_per_sec,
            c.p50,
            c.p99,
            c.max,
            w.p50,
            w.p99,
            w.max,
        ));
    }
    if r.unacked > 0 {
        out.push_str(&format!("  unacked:    {}\n", r.unacked));
    }
    if let Some(e) = &r.first_error {
        out.push_str(&format!("  first error: {e}\n"));
    }
    out
}

/// The librdkafka consumer settings for a run; user `-X` properties come last and win.
fn consumer_config(
    bootstrap: &str,
    args: &ConsumeArgs,
    properties: &[(String, String)],
) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("client.id", "tierlog-bench")
        // librdkafka's assign() needs a group id even though a manual assignment never joins
        // the group; with commits off the group is never written to.
        .set("group.id", "tierlog-bench")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        // Tells us when a partition is caught up.
        .set("enable.partition.eof", "true")
        .set("fetch.max.bytes", args.fetch_max_bytes.to_string())
        .set(
            "max.partition.fetch.bytes",
            args.max_partition_fetch_bytes.to_string(),
        )
        .set("fetch.wait.max.ms", args.fetch_wait_max_ms.to_string())
        // librdkafka insists that a response can hold a full fetch.
        .set(
            "receive.message.max.bytes",
            (args.fetch_max_bytes + 512).max(100_000_000).to_string(),
        )
        // Prefetch deep so the poll loop never waits on the network.
        .set("queued.max.messages.kbytes", "262144")
        .set("queued.min.messages", "1000000");
    for (k, v) in properties {
        config.set(k, v);
    }
    config
}

/// The consumer context: librdkafka also reports each partition EOF as a global error on the
/// main queue; those duplicates of what `poll` returns are dropped instead of logged.
struct ConsumeContext;

impl ClientContext for ConsumeContext {
    fn error(&self, error: RdKafkaError, reason: &str) {
        if !matches!(error, RdKafkaError::Global(RDKafkaErrorCode::PartitionEOF)) {
            eprintln!("librdkafka: {error}: {reason}");
        }
    }
}

impl ConsumerContext for ConsumeContext {}

/// Records and bytes seen so far, published by the poll loop for the reporter.
#[derive(Default)]
struct ConsumeStats {
    records: AtomicU64,
    bytes: AtomicU64,
}

/// Why a consume run stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ConsumeOutcome {
    /// `--records` were read.
    Complete,
    /// Every partition reached its end (no `--records`).
    CaughtUp,
    /// Nothing arrived for `--timeout`.
    TimedOut,
}

/// What every consumer thread shares: progress counters, the partitions at their end, and
/// the signal to stop.
#[derive(Default)]
struct ConsumeShared {
    stats: ConsumeStats,
    /// Partitions whose end has been seen since their last record.
    at_end: std::sync::Mutex<HashSet<i32>>,
    errors: AtomicU64,
    first_error: std::sync::Mutex<Option<String>>,
    stop: std::sync::atomic::AtomicBool,
}

impl ConsumeShared {
    fn lock_at_end(&self) -> std::sync::MutexGuard<'_, HashSet<i32>> {
        self.at_end
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The consume run: `--threads` consumer instances, partitions dealt round-robin; blocking.
fn consume(
    bootstrap: &str,
    args: &ConsumeArgs,
    properties: &[(String, String)],
    partitions: &[i32],
    report_interval: Duration,
) -> anyhow::Result<ConsumeReport> {
    let threads = (args.threads as usize).clamp(1, partitions.len().max(1));
    let mut consumers = Vec::with_capacity(threads);
    for t in 0..threads {
        let consumer: BaseConsumer<ConsumeContext> = consumer_config(bootstrap, args, properties)
            .create_with_context(ConsumeContext)
            .context("create consumer")?;
        let mut assignment = TopicPartitionList::new();
        for p in partitions.iter().skip(t).step_by(threads) {
            assignment
                .add_partition_offset(&args.topic, *p, Offset::Beginning)
                .context("build assignment")?;
        }
        consumer.assign(&assignment).context("assign partitions")?;
        consumers.push(consumer);
    }

    let shared = Arc::new(ConsumeShared::default());
    let reporter = {
        let shared = Arc::clone(&shared);
        let (mut last_records, mut last_bytes) = (0, 0);
        Reporter::spawn(report_interval, move |window| {
            let records = shared.stats.records.load(Ordering::Relaxed);
            let bytes = shared.stats.bytes.load(Ordering::Relaxed);
            let secs = window.as_secs_f64().max(1e-9);
            let line = format!(
                "{records} records, {:.1} records/s, {:.2} MiB/s",
                records.saturating_sub(last_records) as f64 / secs,
                bytes.saturating_sub(last_bytes) as f64 / MIB / secs,
            );
            (last_records, last_bytes) = (records, bytes);
            line
        })?
    };

    let start = Instant::now();
    let outcomes: Vec<(ConsumeOutcome, Instant)> = std::thread::scope(|scope| {
        let handles: Vec<_> = consumers
            .iter()
            .map(|consumer| {
                let shared = &shared;
                scope.spawn(move || poll_loop(consumer, args, partitions.len(), shared))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or((ConsumeOutcome::TimedOut, Instant::now()))
            })
            .collect()
    });
    reporter.stop();
    // The run ends when the last thread does; it timed out if any thread did.
    let end = outcomes.iter().map(|(_, at)| *at).max().unwrap_or(start);
    let outcome = if outcomes.iter().any(|(o, _)| *o == ConsumeOutcome::TimedOut) {
        ConsumeOutcome::TimedOut
    } else if args.records.is_some() {
        ConsumeOutcome::Complete
    } else {
        ConsumeOutcome::CaughtUp
    };
    let records = shared.stats.records.load(Ordering::Relaxed);
    let bytes = shared.stats.bytes.load(Ordering::Relaxed);
    let first_error = shared
        .first_error
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();

    let elapsed = end.saturating_duration_since(start);
    let secs = elapsed.as_secs_f64().max(1e-9);
    Ok(ConsumeReport {
        mode: "consume",
        topic: args.topic.clone(),
        partitions: partitions.len(),
        target: args.records,
        records,
        bytes,
        elapsed_secs: elapsed.as_secs_f64(),
        records_per_sec: records as f64 / secs,
        mib_per_sec: bytes as f64 / MIB / secs,
        errors: shared.errors.load(Ordering::Relaxed),
        first_error,
        outcome,
        timeout_secs: args.timeout.as_secs_f64(),
    })
}

/// Records are published to the shared counters in chunks this large, so threads do not
/// contend on one cache line per record.
const PUBLISH_EVERY: u64 = 4096;

/// One consumer thread's hot loop. Returns why and when it stopped.
fn poll_loop(
    consumer: &BaseConsumer<ConsumeContext>,
    args: &ConsumeArgs,
    partitions: usize,
    shared: &ConsumeShared,
) -> (ConsumeOutcome, Instant) {
    // Counted here and published in chunks; `base` is the shared total as of the last publish,
    // so with one thread the run stops exactly at `--records`.
    let (mut records, mut bytes, mut base) = (0_u64, 0_u64, 0_u64);
    let publish = |records: &mut u64, bytes: &mut u64| -> u64 {
        let n = std::mem::take(records);
        shared
            .stats
            .bytes
            .fetch_add(std::mem::take(bytes), Ordering::Relaxed);
        shared.stats.records.fetch_add(n, Ordering::Relaxed) + n
    };
    // Progress is checked only when a poll comes back empty, so the hot path stays free of
    // clock reads.
    let (mut idle_since, mut last_total) = (Instant::now(), 0_u64);
    loop {
        if shared.stop.load(Ordering::Relaxed) {
            publish(&mut records, &mut bytes);
            return (ConsumeOutcome::Complete, Instant::now());
        }
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(message)) => {
                records += 1;
                bytes += (message.payload_len() + message.key().map_or(0, <[u8]>::len)) as u64;
                if records == 1 {
                    shared.lock_at_end().remove(&message.partition());
                }
                if args.records.is_some_and(|target| base + records >= target) {
                    publish(&mut records, &mut bytes);
                    shared.stop.store(true, Ordering::Relaxed);
                    return (ConsumeOutcome::Complete, Instant::now());
                }
                if records >= PUBLISH_EVERY {
                    shared.lock_at_end().remove(&message.partition());
                    base = publish(&mut records, &mut bytes);
                }
                continue;
            }
            Some(Err(RdKafkaError::PartitionEOF(partition))) => {
                publish(&mut records, &mut bytes);
                let done = {
                    let mut at_end = shared.lock_at_end();
                    at_end.insert(partition);
                    args.records.is_none() && at_end.len() >= partitions
                };
                if done {
                    shared.stop.store(true, Ordering::Relaxed);
                    return (ConsumeOutcome::CaughtUp, Instant::now());
                }
            }
            Some(Err(e)) => {
                shared.errors.fetch_add(1, Ordering::Relaxed);
                shared
                    .first_error
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .get_or_insert_with(|| e.to_string());
            }
            None => {}
        }
        base = publish(&mut records, &mut bytes);
        if target_reached(args, shared) {
            return (ConsumeOutcome::Complete, Instant::now());
        }
        if base != last_total {
            (last_total, idle_since) = (base, Instant::now());
        } else if idle_since.elapsed() >= args.timeout {
            shared.stop.store(true, Ordering::Relaxed);
            return (ConsumeOutcome::TimedOut, idle_since);
        }
    }
}

/// Whether `--records` have been read in all; tells the other threads to stop if so.
fn target_reached(args: &ConsumeArgs, shared: &ConsumeShared) -> bool {
    let reached = args
        .records
        .is_some_and(|target| shared.stats.records.load(Ordering::Relaxed) >= target);
    if reached {
        shared.stop.store(true, Ordering::Relaxed);
    }
    reached
}

/// The result of `bench consume`; also its `--json` shape.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct ConsumeReport {
    mode: &'static str,
    topic: String,
    partitions: usize,
    /// `--records`, if given.
    target: Option<u64>,
    records: u64,
    /// Payload plus key bytes.
    bytes: u64,
    /// From assignment to the last record (or to catching up); excludes the idle timeout.
    elapsed_secs: f64,
    records_per_sec: f64,
    mib_per_sec: f64,
    errors: u64,
    first_error: Option<String>,
    outcome: ConsumeOutcome,
    timeout_secs: f64,
}

impl ConsumeReport {
    /// Fails when the run timed out.
    fn check(&self) -> anyhow::Result<()> {
        if self.outcome == ConsumeOutcome::TimedOut {
            let wanted = match self.target {
                Some(t) => format!("{t} wanted"),
                None => "not all partitions caught up".to_owned(),
            };
            bail!(
                "timed out: no record for {:.1} s after {} record(s) ({wanted}); first error: {}",
                self.timeout_secs,
                self.records,
                self.first_error.as_deref().unwrap_or("none reported")
            );
        }
        Ok(())
    }
}

fn format_consume_report(r: &ConsumeReport) -> String {
    let outcome = match r.outcome {
        ConsumeOutcome::Complete => "done",
        ConsumeOutcome::CaughtUp => "caught up",
        ConsumeOutcome::TimedOut => "timed out",
    };
    let mut out = format!(
        "Consumed {} records ({:.2} MiB) from `{}` ({} partition(s)) in {:.3} s, {outcome}\n\
         \x20 throughput: {:.1} records/s, {:.2} MiB/s\n\
         \x20 errors:     {}\n",
        r.records,
        r.bytes as f64 / MIB,
        r.topic,
        r.partitions,
        r.elapsed_secs,
        r.records_per_sec,
        r.mib_per_sec,
        r.errors,
    );
    if let Some(e) = &r.first_error {
        out.push_str(&format!("  first error: {e}\n"));
    }
    out
}

/// A thread printing a progress line to stderr every interval until stopped.
struct Reporter {
    /// Dropping the sender wakes the thread and ends it.
    stop: Option<mpsc::Sender<()>>,
    handle: Option<JoinHandle<()>>,
}

impl Reporter {
    /// Starts reporting; `line` gets the time since its previous call. A zero interval
    /// reports nothing.
    fn spawn(
        interval: Duration,
        mut line: impl FnMut(Duration) -> String + Send + 'static,
    ) -> anyhow::Result<Self> {
        if interval.is_zero() {
            return Ok(Self {
                stop: None,
                handle: None,
            });
        }
        let (stop, stopped) = mpsc::channel::<()>();
        let handle = std::thread::Builder::new()
            .name("bench-reporter".to_owned())
            .spawn(move || {
                let mut last = Instant::now();
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(interval) {
                    let now = Instant::now();
                    eprintln!("{}", line(now - last));
                    last = now;
                }
            })
            .context("spawn reporter thread")?;
        Ok(Self {
            stop: Some(stop),
            handle: Some(handle),
        })
    }

    fn stop(mut self) {
        drop(self.stop.take());
        if let Some(handle) = self.handle.take() {
            // A panicking reporter only loses progress lines.
            let _ = handle.join();
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use clap::Parser;

    use super::*;

    #[derive(clap::Parser, Debug)]
    struct Cli {
        #[command(subcommand)]
        command: Top,
    }

    #[derive(clap::Subcommand, Debug)]
    enum Top {
        Bench(BenchArgs),
    }

    fn parse(args: &[&str]) -> Result<BenchArgs, clap::Error> {
        let mut argv = vec!["tierlog", "bench"];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv).map(|cli| match cli.command {
            Top::Bench(args) => args,
        })
    }

    fn produce_args(args: &[&str]) -> ProduceArgs {
        let mut argv = vec!["produce", "--topic", "t"];
        argv.extend_from_slice(args);
        match parse(&argv).unwrap().command {
            BenchCommand::Produce(p) => p,
            other => panic!("expected produce, got {other:?}"),
        }
    }

    #[test]
    fn acks_accepts_kafka_spellings() {
        assert_eq!(parse_acks("0"), Ok(Acks::None));
        assert_eq!(parse_acks("1"), Ok(Acks::Leader));
        assert_eq!(parse_acks("all"), Ok(Acks::All));
        assert_eq!(parse_acks("ALL"), Ok(Acks::All));
        assert_eq!(parse_acks("-1"), Ok(Acks::All));
        assert_eq!(parse_acks("2"), Err("expected 0, 1 or all, got `2`".into()));
        assert!(parse_acks("").is_err());
        assert_eq!(Acks::All.to_string(), "all");
    }

    #[test]
    fn transactional_mode_takes_an_id_and_a_transaction_size() {
        let p = produce_args(&[]);
        assert_eq!(p.transactional_id, None);
        assert_eq!(p.transaction_records, 100);
        let p = produce_args(&["--transactional-id", "tx", "--transaction-records", "50"]);
        assert_eq!(p.transactional_id.as_deref(), Some("tx"));
        assert_eq!(p.transaction_records, 50);
        assert!(parse(&["produce", "--topic", "t", "--transaction-records", "0"]).is_err());
        let config = producer_config("b:1", &p, &[]);
        assert_eq!(config.get("transactional.id"), Some("tx"));
        assert_eq!(config.get("transaction.timeout.ms"), Some("120000"));
    }

    #[test]
    fn produce_defaults_are_the_documented_ones() {
        let p = produce_args(&[]);
        assert_eq!(p.records, 1_000_000);
        assert_eq!(p.record_size, 100);
        assert_eq!(p.acks, Acks::All);
        assert_eq!(p.partitions, 1);
        assert_eq!(p.compression, Compression::None);
        assert_eq!(p.linger_ms, 5);
        assert_eq!(p.batch_size, 1_048_576);
        assert_eq!(p.in_flight, 5);
        assert_eq!(p.throughput, 0);
    }

    #[test]
    fn produce_parses_all_flags_and_globals_after_subcommand() {
        let args = parse(&[
            "produce",
            "--topic",
            "t",
            "--records",
            "10",
            "--record-size",
            "1024",
            "--acks",
            "1",
            "--partitions",
            "6",
            "--compression",
            "zstd",
            "--linger-ms",
            "0",
            "--batch-size",
            "65536",
            "--in-flight",
            "1",
            "--json",
            "--bootstrap",
            "h:9",
            "-X",
            "socket.nagle.disable=true",
            "--report-interval",
            "500ms",
        ])
        .unwrap();
        assert!(args.json);
        assert_eq!(args.bootstrap, "h:9");
        assert_eq!(args.report_interval, Duration::from_millis(500));
        assert_eq!(
            args.properties,
            vec![("socket.nagle.disable".to_owned(), "true".to_owned())]
        );
        let BenchCommand::Produce(p) = args.command else {
            panic!("expected produce");
        };
        assert_eq!((p.records, p.record_size, p.acks), (10, 1024, Acks::Leader));
        assert_eq!((p.partitions, p.compression), (6, Compression::Zstd));
        assert_eq!((p.linger_ms, p.batch_size, p.in_flight), (0, 65_536, 1));
    }

    #[test]
    fn produce_rejects_bad_values() {
        for bad in [
            &["produce"][..],
            &["produce", "--topic", "t", "--acks", "2"],
            &["produce", "--topic", "t", "--records", "0"],
            &["produce", "--topic", "t", "--partitions", "0"],
            &["produce", "--topic", "t", "--compression", "brotli"],
            &["produce", "--topic", "t", "-X", "novalue"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?} should not parse");
        }
    }

    #[test]
    fn consume_parses_flags() {
        let args = parse(&[
            "consume",
            "--topic",
            "t",
            "--records",
            "5",
            "--timeout",
            "2s",
            "--fetch-max-bytes",
            "1000",
            "--threads",
            "2",
        ])
        .unwrap();
        let BenchCommand::Consume(c) = args.command else {
            panic!("expected consume");
        };
        assert_eq!(c.threads, 2);
        assert_eq!(c.records, Some(5));
        assert_eq!(c.timeout, Duration::from_secs(2));
        assert_eq!(c.fetch_max_bytes, 1000);
        assert!(parse(&["consume", "--topic", "t", "--timeout", "soon"]).is_err());
        assert!(parse(&["consume", "--topic", "t", "--threads", "0"]).is_err());
    }

    #[test]
    fn producer_config_applies_flags_then_properties() {
        let p = produce_args(&["--acks", "0", "--compression", "lz4", "--batch-size", "10"]);
        let config = producer_config("b:1", &p, &[("linger.ms".to_owned(), "50".to_owned())]);
        assert_eq!(config.get("bootstrap.servers"), Some("b:1"));
        assert_eq!(config.get("acks"), Some("0"));
        assert_eq!(config.get("compression.type"), Some("lz4"));
        assert_eq!(config.get("batch.size"), Some("10"));
        assert_eq!(config.get("message.max.bytes"), Some("1000000"));
        assert_eq!(config.get("linger.ms"), Some("50"), "-X wins over flags");
    }

    #[test]
    fn payload_is_fixed_size_capital_letters() {
        let payload = build_payload(1000);
        assert_eq!(payload.len(), 1000);
        assert!(payload.iter().all(u8::is_ascii_uppercase));
        assert_eq!(payload, build_payload(1000), "deterministic");
        assert!(build_payload(0).is_empty());
    }

    #[test]
    fn latency_summary_reads_percentiles_in_ms() {
        let mut h = Histogram::<u64>::new_with_bounds(1, MAX_LATENCY_US, 3).unwrap();
        for us in 1..=1000 {
            h.record(us * 1000).unwrap(); // 1 ms .. 1000 ms
        }
        let s = LatencySummary::from_histogram(&h);
        assert!((s.p50 - 500.0).abs() < 1.0, "{s:?}");
        assert!((s.p99 - 990.0).abs() < 1.0, "{s:?}");
        assert!((s.max - 1000.0).abs() < 1.0, "{s:?}");
        let empty = Histogram::<u64>::new_with_bounds(1, MAX_LATENCY_US, 3).unwrap();
        assert_eq!(LatencySummary::from_histogram(&empty).max, 0.0);
    }

    fn sample_produce_report(acked: u64, errors: u64) -> ProduceReport {
        let args = produce_args(&["--records", "1000"]);
        ProduceReport::new(
            &args,
            3,
            1000,
            acked,
            errors,
            Duration::from_secs(2),
            LatencySummary {
                avg: 1.5,
                p50: 1.0,
                p95: 2.0,
                p99: 3.0,
                p999: 4.0,
                max: 5.0,
            },
            (errors > 0).then(|| "Broker: Request timed out".to_owned()),
        )
    }

    #[test]
    fn produce_report_text_and_json() {
        let r = sample_produce_report(1000, 0);
        assert_eq!(r.records_per_sec, 500.0);
        assert!(r.check().is_ok());
        assert_eq!(
            format_produce_report(&r),
            "Produced 1000 of 1000 records (100 bytes each) to `t` (3 partition(s), acks=all, compression=none) in 2.000 s\n\
             \x20 throughput: 500.0 records/s, 0.05 MiB/s\n\
             \x20 latency ms: avg 1.500  p50 1.000  p95 2.000  p99 3.000  p99.9 4.000  max 5.000\n\
             \x20 errors:     0\n"
        );
        let json: serde_json::Value = serde_json::to_value(&r).unwrap();
        assert_eq!(json["mode"], "produce");
        assert_eq!(json["acks"], "all");
        assert_eq!(json["compression"], "none");
        assert_eq!(json["acked"], 1000);
        assert_eq!(json["latency_ms"]["p999"], 4.0);
        assert_eq!(json["linger_ms"], 5);
        assert_eq!(json["batch_size"], 1_048_576);
        assert_eq!(json["first_error"], serde_json::Value::Null);
    }

    #[test]
    fn produce_report_with_failures_fails_the_run() {
        let r = sample_produce_report(990, 4);
        assert_eq!(r.unacked, 6);
        let text = format_produce_report(&r);
        assert!(text.contains("unacked:    6"), "{text}");
        assert!(
            text.contains("first error: Broker: Request timed out"),
            "{text}"
        );
        let e = r.check().unwrap_err().to_string();
        assert!(
            e.contains("10 of 1000 records were not acknowledged (4 failed, 6 unacknowledged)"),
            "{e}"
        );
    }

    #[test]
    fn consume_report_text_json_and_timeout() {
        let mut r = ConsumeReport {
            mode: "consume",
            topic: "t".into(),
            partitions: 2,
            target: None,
            records: 2048,
            bytes: 2 * 1024 * 1024,
            elapsed_secs: 0.5,
            records_per_sec: 4096.0,
            mib_per_sec: 4.0,
            errors: 0,
            first_error: None,
            outcome: ConsumeOutcome::CaughtUp,
            timeout_secs: 10.0,
        };
        assert_eq!(
            format_consume_report(&r),
            "Consumed 2048 records (2.00 MiB) from `t` (2 partition(s)) in 0.500 s, caught up\n\
             \x20 throughput: 4096.0 records/s, 4.00 MiB/s\n\
             \x20 errors:     0\n"
        );
        assert!(r.check().is_ok());
        let json: serde_json::Value = serde_json::to_value(&r).unwrap();
        assert_eq!(json["outcome"], "caught_up");
        assert_eq!(json["records"], 2048);
        r.outcome = ConsumeOutcome::TimedOut;
        r.target = Some(5000);
        let e = r.check().unwrap_err().to_string();
        assert!(e.contains("after 2048 record(s) (5000 wanted)"), "{e}");
    }
}
