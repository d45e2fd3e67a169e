//! Apache Kafka as a test peer, and Kafka's own tools as judges.
//!
//! `tests/install.sh` puts Apache Kafka's jars (the broker, `kafka-tools`, the Java client,
//! Streams, Connect) and the small Java programs of `tests/kafka/src/` into
//! `tests/kafka/target/` with Maven. This module runs them with `java -cp`:
//!
//! - [`KafkaServer`]: a real single-node Apache Kafka in KRaft combined mode (broker and
//!   controller in one process) on free loopback ports with its own data directory. Lifecycle:
//!   [`KafkaServer::start`] writes `server.properties`, formats the storage
//!   (`kafka.tools.StorageTool format`), spawns `kafka.Kafka` and polls until a Metadata request
//!   answers; dropping it kills the process. Start-up takes about 5–10 s on two cores.
//! - [`Broker`]: what a test needs from either a tierlog [`TestNode`] or a [`KafkaServer`]
//!   (a bootstrap address and a name), so one scenario runs against both.
//! - [`run_tool`]: one Kafka command-line tool (`kafka-topics`, `kafka-configs`, …, by main
//!   class: the `.sh` wrappers only add `java -cp`) with a deadline, its output captured.
//!
//! Outside CI, a machine without Java or without the installed jars skips these tests loudly
//! ([`require_kafka`]); with `CI` set that fails the test, so CI never passes by skipping.

use std::fs::File;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use kafka_protocol::messages::MetadataRequest;

use crate::node::{TestNode, free_port};
use crate::tools::{in_ci, require_tool, tests_dir};
use crate::wait::{tail_file, wait_until_serving};
use crate::wire::Conn;

/// How long Apache Kafka gets to format its storage and answer Metadata.
const READY_TIMEOUT: Duration = Duration::from_secs(90);
/// Lines of Kafka's log printed when something goes wrong.
const LOG_TAIL_LINES: usize = 60;

/// Main classes behind Kafka's `bin/*.sh` wrappers (Kafka 4.3).
pub mod class {
    /// `kafka-server-start.sh`.
    pub const KAFKA: &str = "kafka.Kafka";
    /// `kafka-storage.sh`.
    pub const STORAGE: &str = "kafka.tools.StorageTool";
    /// `kafka-topics.sh`.
    pub const TOPICS: &str = "org.apache.kafka.tools.TopicCommand";
    /// `kafka-configs.sh`.
    pub const CONFIGS: &str = "kafka.admin.ConfigCommand";
    /// `kafka-console-producer.sh`.
    pub const CONSOLE_PRODUCER: &str = "org.apache.kafka.tools.ConsoleProducer";
    /// `kafka-console-consumer.sh`.
    pub const CONSOLE_CONSUMER: &str = "org.apache.kafka.tools.consumer.ConsoleConsumer";
    /// `kafka-consumer-groups.sh`.
    pub const CONSUMER_GROUPS: &str = "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand";
    /// `kafka-get-offsets.sh`.
    pub const GET_OFFSETS: &str = "org.apache.kafka.tools.GetOffsetShell";
    /// `kafka-delete-records.sh`.
    pub const DELETE_RECORDS: &str = "org.apache.kafka.tools.DeleteRecordsCommand";
    /// `kafka-log-dirs.sh`.
    pub const LOG_DIRS: &str = "org.apache.kafka.tools.LogDirsCommand";
    /// `kafka-reassign-partitions.sh`.
    pub const REASSIGN_PARTITIONS: &str =
        "org.apache.kafka.tools.reassign.ReassignPartitionsCommand";
    /// `kafka-leader-election.sh`.
    pub const LEADER_ELECTION: &str = "org.apache.kafka.tools.LeaderElectionCommand";
    /// `kafka-transactions.sh`.
    pub const TRANSACTIONS: &str = "org.apache.kafka.tools.TransactionsCommand";
    /// `kafka-verifiable-producer.sh`.
    pub const VERIFIABLE_PRODUCER: &str = "org.apache.kafka.tools.VerifiableProducer";
    /// `kafka-verifiable-consumer.sh`.
    pub const VERIFIABLE_CONSUMER: &str = "org.apache.kafka.tools.VerifiableConsumer";
    /// `kafka-producer-perf-test.sh`.
    pub const PRODUCER_PERF: &str = "org.apache.kafka.tools.ProducerPerformance";
    /// `kafka-consumer-perf-test.sh`.
    pub const CONSUMER_PERF: &str = "org.apache.kafka.tools.ConsumerPerformance";
    /// `kafka-e2e-latency.sh`.
    pub const END_TO_END_LATENCY: &str = "org.apache.kafka.tools.EndToEndLatency";
    /// `connect-distributed.sh`.
    pub const CONNECT_DISTRIBUTED: &str = "org.apache.kafka.connect.cli.ConnectDistributed";
    /// The Java client check program in `tests/kafka/src`.
    pub const CLIENT_CHECK: &str = "dev.tierlog.compat.ClientCheck";
    /// The Kafka Streams word count in `tests/kafka/src`.
    pub const WORD_COUNT: &str = "dev.tierlog.compat.WordCount";
}

/// `tests/kafka/`: the Maven project.
pub fn kafka_dir() -> PathBuf {
    tests_dir().join("kafka")
}

/// The Java classpath: every dependency jar plus the compiled test programs.
pub fn classpath() -> String {
    let target = kafka_dir().join("target");
    format!(
        "{}/lib/*:{}/tierlog-kafka-compat.jar",
        target.display(),
        target.display()
    )
}

/// The log4j2 configuration every Java process of the tests gets (warnings and errors to
/// stderr; Kafka is very chatty at INFO).
pub fn log4j_config() -> PathBuf {
    kafka_dir().join("log4j2.yaml")
}

/// `Ok(true)` if Java and the installed Kafka jars are there; `Ok(false)` after a loud message
/// outside CI; an error in CI.
pub fn require_kafka(test: &str) -> Result<bool> {
    if !require_tool("java", &["-version"], test)? {
        return Ok(false);
    }
    let jar = kafka_dir().join("target/tierlog-kafka-compat.jar");
    let lib = kafka_dir().join("target/lib");
    if jar.is_file() && lib.is_dir() {
        return Ok(true);
    }
    if in_ci() {
        bail!(
            "Apache Kafka's jars are required in CI (run tests/install.sh): {} or {} missing",
            jar.display(),
            lib.display()
        );
    }
    eprintln!(
        "\n!!!!! SKIPPING {test}: Apache Kafka's jars are not installed in {}; run tests/install.sh !!!!!\n",
        lib.display()
    );
    Ok(false)
}

/// A `java` command with the Kafka classpath, the tests' log4j2 config and a small heap.
pub fn java(main_class: &str) -> Command {
    java_with(main_class, &[])
}

/// [`java`] with extra JVM options before the main class, such as `-Dname=value` system
/// properties (the Java client reads some settings only from those, e.g. Kafka 4's
/// `org.apache.kafka.sasl.oauthbearer.allowed.urls`).
pub fn java_with(main_class: &str, jvm_options: &[&str]) -> Command {
    let mut cmd = Command::new("java");
    cmd.args(jvm_options)
        .arg("-Xms64m")
        .arg("-Xmx512m")
        .arg("-XX:+UseSerialGC")
        .arg("-XX:TieredStopAtLevel=1")
        .arg(format!(
            "-Dlog4j2.configurationFile={}",
            log4j_config().display()
        ))
        .arg("-cp")
        .arg(classpath())
        .arg(main_class)
        .stdin(Stdio::null());
    cmd
}

/// What a finished tool printed.
#[derive(Debug)]
pub struct ToolOutput {
    /// The exit code (`None` if killed at the deadline).
    pub code: Option<i32>,
    /// Everything written to stdout.
    pub stdout: String,
    /// Everything written to stderr.
    pub stderr: String,
}

impl ToolOutput {
    /// The output if the tool exited 0, else an error with everything it printed.
    pub fn ok(self) -> Result<Self> {
        if self.code == Some(0) {
            Ok(self)
        } else {
            bail!(
                "tool exited with {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
                self.code,
                self.stdout,
                self.stderr
            )
        }
    }
}

/// Runs Kafka tool `main_class` with `args`, feeding `stdin` (if any), killing it after
/// `timeout`. Does not judge the exit code: see [`ToolOutput::ok`].
pub fn run_tool(
    main_class: &str,
    args: &[&str],
    stdin: Option<&[u8]>,
    timeout: Duration,
) -> Result<ToolOutput> {
    run_tool_with(main_class, &[], args, stdin, timeout)
}

/// [`run_tool`] with extra JVM options (see [`java_with`]).
pub fn run_tool_with(
    main_class: &str,
    jvm_options: &[&str],
    args: &[&str],
    stdin: Option<&[u8]>,
    timeout: Duration,
) -> Result<ToolOutput> {
    let mut cmd = java_with(main_class, jvm_options);
    cmd.args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
    let mut child = cmd
        .spawn()
        .with_context(|| format!("spawning {main_class} {}", args.join(" ")))?;
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().context("tool stdin")?;
        let input = input.to_vec();
        // A writer thread: a tool that does not read its input must not block us.
        std::thread::spawn(move || {
            let _ = pipe.write_all(&input);
        });
    }
    let output = wait_with_deadline(child, timeout)
        .with_context(|| format!("{main_class} {}", args.join(" ")))?;
    Ok(ToolOutput {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    })
}

/// Waits for `child` to exit, killing it at `timeout`; returns what it printed either way.
fn wait_with_deadline(child: Child, timeout: Duration) -> Result<Output> {
    let pid = child.id();
    // wait_with_output drains both pipes (a tool that fills one would otherwise block).
    let waiter = std::thread::spawn(move || child.wait_with_output());
    let deadline = Instant::now() + timeout;
    while !waiter.is_finished() {
        if Instant::now() >= deadline {
            // The tool hangs: kill it; its output so far still comes back through the waiter.
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = waiter
        .join()
        .map_err(|_| anyhow::anyhow!("waiter thread panicked"))?
        .context("waiting for the tool")?;
    Ok(output)
}

/// What a test needs from a broker, whichever implementation: tierlog or Apache Kafka.
pub trait Broker {
    /// `host:port` for clients.
    fn bootstrap(&self) -> String;
    /// `"tierlog"` or `"kafka"`, for messages.
    fn name(&self) -> &'static str;
    /// A raw protocol connection to the broker.
    fn connect(&self) -> Result<Conn> {
        let addr = self
            .bootstrap()
            .parse()
            .with_context(|| format!("parsing {}", self.bootstrap()))?;
        Conn::connect(addr)
    }
}

impl Broker for TestNode {
    fn bootstrap(&self) -> String {
        TestNode::bootstrap(self)
    }
    fn name(&self) -> &'static str {
        "tierlog"
    }
}

/// A running single-node Apache Kafka (KRaft, broker and controller in one process).
#[derive(Debug)]
pub struct KafkaServer {
    child: Option<Child>,
    port: u16,
    /// Holds `server.properties`, `data/` and `kafka.log`; removed on drop.
    dir: tempfile::TempDir,
}

impl KafkaServer {
    /// For tests that need Apache Kafka: `Ok(Some(server))` once it serves; `Ok(None)` after a
    /// loud message when Java or the jars are missing outside CI; an error in CI.
    pub fn start_or_skip(test: &str) -> Result<Option<Self>> {
        if !require_kafka(test)? {
            return Ok(None);
        }
        Self::start(&[]).map(Some)
    }

    /// Starts Apache Kafka with the tests' settings plus `extra` `key=value` properties, and
    /// waits until it answers Metadata.
    pub fn start(extra: &[(&str, &str)]) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("tierlog-apache-kafka-")
            .tempdir()
            .context("creating Kafka's temporary directory")?;
        let port = free_port()?;
        let mut controller_port = free_port()?;
        while controller_port == port {
            controller_port = free_port()?;
        }
        let data = dir.path().join("data");
        let mut props = vec![
            ("process.roles", "broker,controller".to_owned()),
            ("node.id", "1".to_owned()),
            (
                "controller.quorum.voters",
                format!("1@127.0.0.1:{controller_port}"),
            ),
            (
                "listeners",
                format!("PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}"),
            ),
            (
                "advertised.listeners",
                format!("PLAINTEXT://127.0.0.1:{port}"),
            ),
            ("controller.listener.names", "CONTROLLER".to_owned()),
            (
                "listener.security.protocol.map",
                "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT".to_owned(),
            ),
            ("log.dirs", data.display().to_string()),
            ("num.partitions", "1".to_owned()),
            ("offsets.topic.replication.factor", "1".to_owned()),
            ("offsets.topic.num.partitions", "4".to_owned()),
            ("transaction.state.log.replication.factor", "1".to_owned()),
            ("transaction.state.log.min.isr", "1".to_owned()),
            ("transaction.state.log.num.partitions", "4".to_owned()),
            (
                "share.coordinator.state.topic.replication.factor",
                "1".to_owned(),
            ),
            ("share.coordinator.state.topic.min.isr", "1".to_owned()),
            ("group.initial.rebalance.delay.ms", "0".to_owned()),
            // Tests write records with fixed create times years in the past; Kafka's first
            // retention pass, 30 s after it starts, would delete them from under a test that
            // runs long on a slow machine. Ten minutes: no test lasts that long.
            ("log.initial.task.delay.ms", "600000".to_owned()),
        ];
        for (k, v) in extra {
            props.retain(|(key, _)| key != k);
            props.push((k, (*v).to_owned()));
        }
        let config = dir.path().join("server.properties");
        let text: String = props.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
        std::fs::write(&config, text).context("writing server.properties")?;

        let cluster_id = random_cluster_id();
        let format = java(class::STORAGE)
            // `--cluster-id=ID`: an id may start with '-', which a separate argument would
            // make look like an option.
            .args(["format", &format!("--cluster-id={cluster_id}"), "-c"])
            .arg(&config)
            .output()
            .context("running kafka-storage format")?;
        if !format.status.success() {
            bail!(
                "kafka-storage format failed: {}\n{}",
                String::from_utf8_lossy(&format.stdout),
                String::from_utf8_lossy(&format.stderr)
            );
        }
        let mut server = KafkaServer {
            child: None,
            port,
            dir,
        };
        server.spawn(&config)?;
        Ok(server)
    }

    /// The process id, while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The data directory (`log.dirs`).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The tail of Kafka's log, for failure messages.
    pub fn log_tail(&self, lines: usize) -> String {
        tail_file(&self.dir.path().join("kafka.log"), lines)
    }

    fn spawn(&mut self, config: &Path) -> Result<()> {
        let log = File::create(self.dir.path().join("kafka.log")).context("creating kafka.log")?;
        let mut cmd = Command::new("java");
        cmd.arg("-Xms256m")
            .arg("-Xmx1g")
            .arg(format!(
                "-Dlog4j2.configurationFile={}",
                log4j_config().display()
            ))
            .arg("-cp")
            .arg(classpath())
            .arg(class::KAFKA)
            .arg(config)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            // Own process group: a Ctrl-C of the test run does not reach it first.
            .process_group(0);
        self.child = Some(cmd.spawn().context("spawning Apache Kafka")?);
        self.wait_ready()
    }

    fn wait_ready(&mut self) -> Result<()> {
        let bootstrap = self.bootstrap();
        wait_until_serving(
            "Apache Kafka",
            &mut self.child,
            &self.dir.path().join("kafka.log"),
            READY_TIMEOUT,
            Duration::from_millis(100),
            || {
                let addr = bootstrap.parse().context("bootstrap address")?;
                let m = Conn::connect(addr)?
                    .request(&MetadataRequest::default().with_topics(Some(vec![])), 12)?;
                Ok((m.brokers.is_empty() || m.controller_id.0 < 0)
                    .then(|| "Metadata lists no broker or controller yet".to_owned()))
            },
        )
    }
}

impl Broker for KafkaServer {
    fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
    fn name(&self) -> &'static str {
        "kafka"
    }
}

impl Drop for KafkaServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if std::thread::panicking() {
                eprintln!(
                    "----- Apache Kafka log (last {LOG_TAIL_LINES} lines) -----\n{}",
                    self.log_tail(LOG_TAIL_LINES)
                );
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A KRaft cluster id: 16 random bytes, URL-safe base64 without padding.
fn random_cluster_id() -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
        ^ u128::from(std::process::id()) << 64;
    let mut x = seed | 1;
    let mut bytes = [0u8; 16];
    for b in &mut bytes {
        // xorshift: uniqueness, not secrecy, is all a test cluster id needs.
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = (x >> 32) as u8;
    }
    let mut out = String::with_capacity(22);
    let mut acc = 0u32;
    let mut bits = 0;
    for &b in &bytes {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 6 {
            bits -= 6;
            out.push(ALPHABET[((acc >> bits) & 63) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((acc << (6 - bits)) & 63) as usize] as char);
    }
    out
}

/// One listener of a tierlog node (`host:port`), as a [`Broker`] for the client harnesses:
/// a node's SASL_SSL or SSL listener rather than its PLAINTEXT one.
#[derive(Debug, Clone)]
pub struct Listener(pub String);

impl Broker for Listener {
    fn bootstrap(&self) -> String {
        self.0.clone()
    }
    fn name(&self) -> &'static str {
        "tierlog"
    }
}
