//! Other people's Kafka clients as judges: the Java programs of `tests/kafka/src` (the Java
//! client's round trip, a Kafka Streams word count), a Kafka Connect distributed worker, and
//! the franz-go program of `tests/franz`, and the kafkajs programs of `tests/node`.
//!
//! Each program checks its own run and prints one JSON line (`{"ok":true,...}` or
//! `{"ok":false,"stage":...,"error":...}`) as its last line of stdout; [`Outcome`] holds that
//! summary together with everything the program printed, so a failed assertion shows the
//! program's own explanation. The same call runs against a tierlog [`crate::TestNode`] or an
//! Apache [`crate::kafka::KafkaServer`] (anything [`Broker`]).
//!
//! [`ConnectWorker`] is a long-running process: [`ConnectWorker::start`] writes the worker's
//! properties into a temporary directory (which also holds the connectors' files and the
//! worker's log), spawns `ConnectDistributed` with its REST API on a free loopback port, and
//! polls `GET /health` until the worker has joined its group; dropping it kills the process.
//! [`spawn_word_count`] likewise starts the word count in the background, for a test that kills
//! it mid-stream.

use std::collections::BTreeMap;
use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use rdkafka::Offset;
use rdkafka::message::Message;
use serde_json::Value;

use crate::clients;
use crate::eos::Program;
use crate::http;
use crate::kafka::{Broker, ToolOutput, class, java, run_tool, run_tool_with};
use crate::node::free_port;
use crate::tools::{in_ci, tests_dir};
use crate::wait::{Poll, wait_for};

/// How long a Connect worker gets to start and join its group (a JVM on two busy cores).
const CONNECT_READY_TIMEOUT: Duration = Duration::from_secs(120);
/// Lines of a worker's log printed when something goes wrong.
const LOG_TAIL_LINES: usize = 80;

/// What a check program concluded, and everything it printed.
#[derive(Debug)]
pub struct Outcome {
    /// The program's JSON summary line (`Value::Null` if it printed none).
    pub summary: Value,
    /// The raw output and exit code.
    pub output: ToolOutput,
}

impl Outcome {
    fn from_output(output: ToolOutput) -> Self {
        let summary = output
            .stdout
            .lines()
            .rev()
            .find(|l| l.trim_start().starts_with('{'))
            .and_then(|l| serde_json::from_str(l).ok())
            .unwrap_or(Value::Null);
        Outcome { summary, output }
    }

    /// Whether the program exited 0 and its summary says `"ok": true`.
    pub fn passed(&self) -> bool {
        self.output.code == Some(0) && self.summary["ok"] == Value::Bool(true)
    }

    /// The summary of a passed run, else an error with the program's summary and output.
    pub fn expect_passed(&self, what: &str) -> Result<&Value> {
        if self.passed() {
            return Ok(&self.summary);
        }
        bail!("{what} failed:\n{}", self.describe())
    }

    /// The error message of a failed run (`summary.error`), else an error saying it passed.
    pub fn expect_failed(&self, what: &str) -> Result<String> {
        if self.passed() {
            bail!("{what} was expected to fail but passed: {}", self.summary);
        }
        Ok(self.summary["error"]
            .as_str()
            .map_or_else(|| self.describe(), str::to_owned))
    }

    /// Exit code, summary, and the tail of stdout and stderr.
    pub fn describe(&self) -> String {
        format!(
            "exit {:?}, summary {}\n--- stdout (tail) ---\n{}\n--- stderr (tail) ---\n{}",
            self.output.code,
            self.summary,
            tail_text(&self.output.stdout, 40),
            tail_text(&self.output.stderr, LOG_TAIL_LINES)
        )
    }
}

// ---- the Java client ---------------------------------------------------------------------

/// Runs `ClientCheck` (the Java producer, consumer and admin with their defaults) against
/// `broker` on topic `topic` and group `<topic>-group`, plus `extra` arguments such as
/// `["--producer-prop", "enable.idempotence=false"]`.
pub fn java_client_check(
    broker: &dyn Broker,
    topic: &str,
    extra: &[&str],
    timeout: Duration,
) -> Result<Outcome> {
    java_client_check_with(broker, topic, &[], extra, timeout)
}

/// [`java_client_check`] with extra JVM options (`-Dname=value` system properties) for the
/// client's process.
pub fn java_client_check_with(
    broker: &dyn Broker,
    topic: &str,
    jvm_options: &[&str],
    extra: &[&str],
    timeout: Duration,
) -> Result<Outcome> {
    let bootstrap = broker.bootstrap();
    let group = format!("{topic}-group");
    let timeout_ms = timeout.as_millis().to_string();
    let mut args = vec![
        "--bootstrap",
        bootstrap.as_str(),
        "--topic",
        topic,
        "--group",
        group.as_str(),
        "--timeout-ms",
        timeout_ms.as_str(),
    ];
    args.extend_from_slice(extra);
    // The program enforces its own deadline; the harness's is a backstop for a hung JVM.
    let output = run_tool_with(
        class::CLIENT_CHECK,
        jvm_options,
        &args,
        None,
        timeout + Duration::from_secs(30),
    )?;
    Ok(Outcome::from_output(output))
}

// ---- franz-go ----------------------------------------------------------------------------

/// `tests/franz/target/franz-check`, built by `tests/install.sh`.
pub fn franz_binary() -> PathBuf {
    tests_dir().join("franz/target/franz-check")
}

/// `Ok(true)` if the franz-go program is built; `Ok(false)` after a loud message outside CI;
/// an error in CI.
pub fn require_franz(test: &str) -> Result<bool> {
    let binary = franz_binary();
    if binary.is_file() {
        return Ok(true);
    }
    if in_ci() {
        bail!(
            "the franz-go program is required in CI (run tests/install.sh): {} missing",
            binary.display()
        );
    }
    eprintln!(
        "\n!!!!! SKIPPING {test}: {} is not built; run tests/install.sh !!!!!\n",
        binary.display()
    );
    Ok(false)
}

/// Runs the franz-go check against `broker` on topic `topic` and group `<topic>-group`, plus
/// `extra` flags such as `["-idempotent=false"]`.
pub fn franz_check(
    broker: &dyn Broker,
    topic: &str,
    extra: &[&str],
    timeout: Duration,
) -> Result<Outcome> {
    let mut cmd = Command::new(franz_binary());
    cmd.arg(format!("-bootstrap={}", broker.bootstrap()))
        .arg(format!("-topic={topic}"))
        .arg(format!("-group={topic}-group"))
        .arg(format!("-timeout={}ms", timeout.as_millis()))
        .args(extra);
    let output = run_with_deadline(cmd, timeout + Duration::from_secs(30))?;
    Ok(Outcome::from_output(output))
}

// ---- kafkajs -----------------------------------------------------------------------------

/// `Ok(true)` if node and kafkajs (`npm ci` in `tests/node`, done by `tests/install.sh`) are
/// there; `Ok(false)` after a loud message outside CI; an error in CI.
pub fn require_kafkajs(test: &str) -> Result<bool> {
    let kafkajs = tests_dir().join("node/node_modules/kafkajs");
    crate::tools::require_tool(
        "node",
        &[
            "-e",
            "require(process.argv[1])",
            &kafkajs.display().to_string(),
        ],
        test,
    )
}

/// Runs the kafkajs program `tests/node/<script>` against `broker` on topic `topic`. The
/// program bounds its own run (`check.js`, 240 s); the harness's deadline is a backstop.
pub fn kafkajs_check(broker: &dyn Broker, script: &str, topic: &str) -> Result<Outcome> {
    let dir = tests_dir().join("node");
    let mut cmd = Command::new("node");
    cmd.arg(dir.join(script))
        .args(["--bootstrap", &broker.bootstrap(), "--topic", topic])
        .current_dir(&dir);
    let output = run_with_deadline(cmd, Duration::from_secs(300))?;
    Ok(Outcome::from_output(output))
}

// ---- Kafka Streams -----------------------------------------------------------------------

/// One run of the Kafka Streams word count.
#[derive(Debug, Clone)]
pub struct WordCountRun<'a> {
    /// `application.id` (also the prefix of its internal topics and its consumer group).
    pub app_id: &'a str,
    /// The topic of text lines.
    pub input: &'a str,
    /// The topic of (word, count) updates.
    pub output: &'a str,
    /// `processing.guarantee`: `at_least_once` or `exactly_once_v2`.
    pub guarantee: &'a str,
    /// Extra Streams properties (`producer.`/`consumer.` prefixes reach those clients).
    pub props: &'a [&'a str],
    /// What the output must end at.
    pub expected: &'a BTreeMap<String, i64>,
    /// The program's deadline.
    pub timeout: Duration,
}

/// Runs `WordCount` against `broker` until its output shows `run.expected` (or its deadline);
/// its state directory is a fresh temporary directory.
pub fn word_count(broker: &dyn Broker, run: &WordCountRun<'_>) -> Result<Outcome> {
    let state = state_dir()?;
    let args = word_count_args(broker, run, state.path());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let output = run_tool(
        class::WORD_COUNT,
        &args,
        None,
        run.timeout + Duration::from_secs(30),
    )?;
    Ok(Outcome::from_output(output))
}

/// A `WordCount` running in the background, for a test that kills it; dropping it kills the
/// process, then removes its state directory.
#[derive(Debug)]
pub struct WordCountProcess {
    /// The JVM ([`Program::kill9`], [`Program::wait_exit`], [`Program::tails`]).
    pub program: Program,
    /// The Streams state directory (a fresh temporary one); declared after `program`, so the
    /// process is gone before the directory is removed.
    _state: tempfile::TempDir,
}

/// Starts `WordCount` against `broker` without waiting for it (see [`word_count`]).
pub fn spawn_word_count(broker: &dyn Broker, run: &WordCountRun<'_>) -> Result<WordCountProcess> {
    let state = state_dir()?;
    let args = word_count_args(broker, run, state.path());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Ok(WordCountProcess {
        program: Program::start(class::WORD_COUNT, &args)?,
        _state: state,
    })
}

/// A fresh Streams state directory.
fn state_dir() -> Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix("tierlog-streams-")
        .tempdir()
        .context("creating the Streams state directory")
}

/// `WordCount`'s command line for `run` with state in `state`.
fn word_count_args(broker: &dyn Broker, run: &WordCountRun<'_>, state: &Path) -> Vec<String> {
    let expect = run
        .expected
        .iter()
        .map(|(w, n)| format!("{w}={n}"))
        .collect::<Vec<_>>()
        .join(",");
    let mut args: Vec<String> = [
        "--bootstrap",
        &broker.bootstrap(),
        "--app-id",
        run.app_id,
        "--input",
        run.input,
        "--output",
        run.output,
        "--guarantee",
        run.guarantee,
        "--state-dir",
        &state.display().to_string(),
        "--timeout-ms",
        &run.timeout.as_millis().to_string(),
        "--expect",
        &expect,
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    for prop in run.props {
        args.extend(["--streams-prop".to_owned(), (*prop).to_owned()]);
    }
    args
}

/// `n` deterministic lines of text over a small vocabulary (mixed case, commas and
/// exclamation marks between words, as Kafka Streams' `\W+` split must handle) and the count
/// of each lowercase word in them.
pub fn word_count_lines(n: usize) -> (Vec<String>, BTreeMap<String, i64>) {
    const WORDS: [&str; 12] = [
        "log", "tier", "segment", "offset", "broker", "stream", "kafka", "object", "store",
        "epoch", "leader", "replica",
    ];
    let mut lines = Vec::with_capacity(n);
    let mut counts = BTreeMap::new();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..n {
        let mut line = String::new();
        let len = 1 + (x % 6) as usize;
        for j in 0..len {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            let word = WORDS[((x >> 33) % WORDS.len() as u64) as usize];
            *counts.entry(word.to_owned()).or_insert(0) += 1;
            if j > 0 {
                line.push_str(match (x >> 20) % 3 {
                    0 => " ",
                    1 => ", ",
                    _ => "! ",
                });
            }
            if (x >> 40).is_multiple_of(4) {
                line.push_str(&word.to_uppercase());
            } else {
                line.push_str(word);
            }
        }
        lines.push(line);
    }
    (lines, counts)
}

/// Reads `topic` (partitions `0..partitions`, from the start) as (word, big-endian i64 count)
/// updates until the latest count of every word equals `expected`, failing at `timeout` (or at
/// once on a count above the expected one, which would mean a line was counted twice).
pub fn read_word_counts(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    expected: &BTreeMap<String, i64>,
    timeout: Duration,
) -> Result<BTreeMap<String, i64>> {
    let consumer = clients::assigned_consumer(bootstrap, topic, 0..partitions, Offset::Beginning)?;
    let mut latest: BTreeMap<String, i64> = BTreeMap::new();
    let mut updates = 0usize;
    wait_for(
        &format!("the word counts in {topic}"),
        timeout,
        Duration::ZERO,
        || {
            while let Some(message) = consumer.poll(Duration::from_millis(100)) {
                let message = message.context("polling the word counts")?;
                let (word, count) = count_update(&message)?;
                updates += 1;
                ensure!(
                    expected.get(&word).is_some_and(|&want| count <= want),
                    "word {word:?} counted {count}, want {:?}",
                    expected.get(&word)
                );
                latest.insert(word, count);
            }
            Ok(if &latest == expected {
                Poll::Ready(latest.clone())
            } else {
                Poll::Pending(format!("{updates} updates, latest {latest:?}"))
            })
        },
    )
}

/// One update of the word count's output: the word (key) and its count (value, a big-endian
/// i64).
pub fn count_update(message: &impl Message) -> Result<(String, i64)> {
    let word = String::from_utf8_lossy(message.key().unwrap_or_default()).into_owned();
    let value = message.payload().unwrap_or_default();
    let bytes: [u8; 8] = value
        .try_into()
        .with_context(|| format!("count of {word:?} is {} bytes", value.len()))?;
    Ok((word, i64::from_be_bytes(bytes)))
}

/// Exactly-once judged from the word count's committed output (`messages`, in partition
/// order): with the record cache off every counted word emits its new count, so each word's
/// updates (all in the word's one partition) must be exactly 1, 2, …, its `expected` total. A
/// crash under at-least-once shows a count repeated (a line counted again from a stale state)
/// or running past the total (a line counted again on top of restored counts).
pub fn check_word_count_updates<M: Message>(
    messages: &[M],
    expected: &BTreeMap<String, i64>,
) -> Result<()> {
    let mut updates: BTreeMap<String, (i32, Vec<i64>)> = BTreeMap::new();
    for m in messages {
        let (word, count) = count_update(m)?;
        let (partition, counts) = updates
            .entry(word.clone())
            .or_insert_with(|| (m.partition(), Vec::new()));
        ensure!(
            *partition == m.partition(),
            "word {word:?} in partitions {partition} and {}",
            m.partition()
        );
        counts.push(count);
    }
    ensure!(
        updates.keys().eq(expected.keys()),
        "words in the output {:?}, want {:?}",
        updates.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>()
    );
    for (word, (partition, counts)) in &updates {
        let want = expected[word];
        if let Some(i) = counts.windows(2).position(|w| w[1] <= w[0]) {
            bail!(
                "word {word:?} (partition {partition}): committed count {} followed by {} \
                 (update {} of {}): counted again",
                counts[i],
                counts[i + 1],
                i + 2,
                counts.len()
            );
        }
        ensure!(
            counts.last() == Some(&want),
            "word {word:?} (partition {partition}): last committed count {:?}, want {want}",
            counts.last()
        );
        ensure!(
            counts.first() == Some(&1) && counts.len() == usize::try_from(want)?,
            "word {word:?} (partition {partition}): {} committed updates from {:?} to {want}, \
             want every count from 1",
            counts.len(),
            counts.first()
        );
    }
    Ok(())
}

// ---- Kafka Connect -----------------------------------------------------------------------

/// A Kafka Connect distributed worker (one process, its own group) with the FileStream
/// connectors, configured through its REST API.
#[derive(Debug)]
pub struct ConnectWorker {
    child: Option<Child>,
    rest_port: u16,
    /// Holds `worker.properties`, `connect.log` and the connectors' files; removed on drop.
    dir: tempfile::TempDir,
}

impl ConnectWorker {
    /// Starts a worker in group `group` against `bootstrap` with string converters, its three
    /// internal topics named `<group>-configs/-offsets/-status`, plus `extra` worker properties
    /// (which win); waits until `GET /health` says the worker is ready.
    pub fn start(bootstrap: &str, group: &str, extra: &[(&str, &str)]) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("tierlog-connect-")
            .tempdir()
            .context("creating the Connect worker's directory")?;
        let rest_port = free_port()?;
        let converter = "org.apache.kafka.connect.storage.StringConverter";
        let mut props: Vec<(String, String)> = [
            ("bootstrap.servers", bootstrap.to_owned()),
            ("group.id", group.to_owned()),
            ("key.converter", converter.to_owned()),
            ("value.converter", converter.to_owned()),
            ("config.storage.topic", format!("{group}-configs")),
            ("offset.storage.topic", format!("{group}-offsets")),
            ("status.storage.topic", format!("{group}-status")),
            ("config.storage.replication.factor", "1".to_owned()),
            ("offset.storage.replication.factor", "1".to_owned()),
            ("status.storage.replication.factor", "1".to_owned()),
            ("offset.storage.partitions", "2".to_owned()),
            ("status.storage.partitions", "2".to_owned()),
            // Source offsets reach their topic quickly, so a restart would resume from them.
            ("offset.flush.interval.ms", "500".to_owned()),
            ("listeners", format!("http://127.0.0.1:{rest_port}")),
            ("rest.advertised.host.name", "127.0.0.1".to_owned()),
            ("rest.advertised.port", rest_port.to_string()),
            // The FileStream connectors are on the classpath (connect-file); scanning it finds
            // them without a plugin.path.
            ("plugin.discovery", "only_scan".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        for (k, v) in extra {
            props.retain(|(key, _)| key != k);
            props.push(((*k).to_owned(), (*v).to_owned()));
        }
        let config = dir.path().join("worker.properties");
        let text: String = props.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
        std::fs::write(&config, text).context("writing worker.properties")?;
        let log = File::create(dir.path().join("connect.log")).context("creating connect.log")?;
        let mut cmd = java(class::CONNECT_DISTRIBUTED);
        cmd.arg(&config).stdout(log.try_clone()?).stderr(log);
        let child = cmd.spawn().context("spawning ConnectDistributed")?;
        let mut worker = ConnectWorker {
            child: Some(child),
            rest_port,
            dir,
        };
        worker.wait_ready()?;
        Ok(worker)
    }

    /// The REST API's address.
    pub fn rest_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.rest_port))
    }

    /// The worker's directory (a place for the connectors' files).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The tail of the worker's log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(self.dir.path().join("connect.log")).unwrap_or_default();
        tail_text(&text, lines)
    }

    /// `POST /connectors` with `{"name": name, "config": config}`; fails unless 201 Created.
    pub fn create_connector(&self, name: &str, config: &Value) -> Result<()> {
        let body = serde_json::json!({ "name": name, "config": config }).to_string();
        let r = http::request(
            self.rest_addr(),
            "POST",
            "/connectors",
            &[("Content-Type", "application/json")],
            body.as_bytes(),
            Duration::from_secs(60),
        )?;
        ensure!(
            r.status == 201,
            "POST /connectors ({name}) -> {}: {}",
            r.status,
            r.text()
        );
        Ok(())
    }

    /// `GET /connectors/<name>/status` as JSON.
    pub fn status(&self, name: &str) -> Result<Value> {
        let r = http::get(
            self.rest_addr(),
            &format!("/connectors/{name}/status"),
            Duration::from_secs(30),
        )?;
        ensure!(
            r.status == 200,
            "GET /connectors/{name}/status -> {}: {}",
            r.status,
            r.text()
        );
        serde_json::from_slice(&r.body).context("parsing the connector status")
    }

    /// Waits until connector `name` and all of its `tasks` (at least one) are RUNNING; fails at
    /// once if any is FAILED (with its trace).
    pub fn wait_running(&self, name: &str, timeout: Duration) -> Result<Value> {
        wait_for(
            &format!("connector {name} and its tasks RUNNING"),
            timeout,
            Duration::from_millis(200),
            || {
                let status = self.status(name)?;
                let mut states = vec![status["connector"]["state"].clone()];
                let tasks = status["tasks"].as_array().cloned().unwrap_or_default();
                states.extend(tasks.iter().map(|t| t["state"].clone()));
                if states.iter().any(|s| s == "FAILED") {
                    bail!("connector {name} failed: {status}");
                }
                Ok(
                    if !tasks.is_empty() && states.iter().all(|s| s == "RUNNING") {
                        Poll::Ready(status)
                    } else {
                        Poll::Pending(status.to_string())
                    },
                )
            },
        )
        .with_context(|| format!("worker log:\n{}", self.log_tail(LOG_TAIL_LINES)))
    }

    fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + CONNECT_READY_TIMEOUT;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                self.child = None;
                bail!(
                    "the Connect worker exited during startup with {status}:\n{}",
                    self.log_tail(LOG_TAIL_LINES)
                );
            }
            // 200 once the worker has started and joined its group; 503 while starting.
            let last = match http::get(self.rest_addr(), "/health", Duration::from_secs(10)) {
                Ok(r) if r.status == 200 => return Ok(()),
                Ok(r) => format!("GET /health -> {}: {}", r.status, r.text()),
                Err(e) => format!("{e:#}"),
            };
            if Instant::now() >= deadline {
                bail!(
                    "the Connect worker is not ready after {CONNECT_READY_TIMEOUT:?} ({last}):\n{}",
                    self.log_tail(LOG_TAIL_LINES)
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for ConnectWorker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if std::thread::panicking() {
                eprintln!(
                    "----- Kafka Connect worker log (last {LOG_TAIL_LINES} lines) -----\n{}",
                    self.log_tail(LOG_TAIL_LINES)
                );
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

// ---- helpers -------------------------------------------------------------------------------

/// Runs `cmd` to completion with its output captured, killing it at `timeout`.
fn run_with_deadline(mut cmd: Command, timeout: Duration) -> Result<ToolOutput> {
    let what = format!("{cmd:?}");
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("spawning {what}"))?;
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let output = match rx.recv_timeout(timeout) {
        Ok(output) => output.with_context(|| format!("waiting for {what}"))?,
        Err(_) => {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            // The waiter still returns what the program printed before it was killed.
            rx.recv()
                .context("the waiter thread died")?
                .with_context(|| format!("waiting for {what}"))?
        }
    };
    Ok(ToolOutput {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    })
}

fn tail_text(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use rdkafka::Timestamp;
    use rdkafka::message::OwnedMessage;

    use super::*;

    /// Count updates `(partition, word, count)` as the output topic would hold them.
    fn updates(list: &[(i32, &str, i64)]) -> Vec<OwnedMessage> {
        list.iter()
            .enumerate()
            .map(|(i, &(partition, word, count))| {
                OwnedMessage::new(
                    Some(count.to_be_bytes().to_vec()),
                    Some(word.as_bytes().to_vec()),
                    "counts".to_owned(),
                    Timestamp::NotAvailable,
                    partition,
                    i64::try_from(i).unwrap_or(0),
                    None,
                )
            })
            .collect()
    }

    fn totals(list: &[(&str, i64)]) -> BTreeMap<String, i64> {
        list.iter().map(|&(w, n)| (w.to_owned(), n)).collect()
    }

    #[test]
    fn exactly_once_word_count_updates_pass_and_recounts_fail() {
        let expected = totals(&[("log", 3), ("tier", 2)]);
        let clean = [
            (0, "log", 1),
            (1, "tier", 1),
            (0, "log", 2),
            (1, "tier", 2),
            (0, "log", 3),
        ];
        check_word_count_updates(&updates(&clean), &expected).expect("clean");

        // A restore from a stale state counts a line again: 2 follows 2.
        let repeated = [
            (0, "log", 1),
            (0, "log", 2),
            (0, "log", 2),
            (0, "log", 3),
            (1, "tier", 1),
            (1, "tier", 2),
        ];
        let e = check_word_count_updates(&updates(&repeated), &expected).expect_err("repeat");
        assert!(e.to_string().contains("counted again"), "{e}");

        // Restored counts plus a replayed line: past the total.
        let over = [
            (0, "log", 1),
            (0, "log", 2),
            (0, "log", 3),
            (0, "log", 4),
            (1, "tier", 1),
            (1, "tier", 2),
        ];
        let e = check_word_count_updates(&updates(&over), &expected).expect_err("over");
        assert!(
            e.to_string().contains("last committed count Some(4)"),
            "{e}"
        );

        // An update lost: the total is reached, but 2 was never committed.
        let gap = [(0, "log", 1), (0, "log", 3), (1, "tier", 1), (1, "tier", 2)];
        let e = check_word_count_updates(&updates(&gap), &expected).expect_err("gap");
        assert!(e.to_string().contains("want every count from 1"), "{e}");

        // A word in two partitions, and a word missing.
        let split = [(0, "log", 1), (1, "log", 2)];
        let e = check_word_count_updates(&updates(&split), &expected).expect_err("split");
        assert!(e.to_string().contains("in partitions 0 and 1"), "{e}");
        let missing = [(0, "log", 1), (0, "log", 2), (0, "log", 3)];
        let e = check_word_count_updates(&updates(&missing), &expected).expect_err("missing");
        assert!(e.to_string().contains("words in the output"), "{e}");
    }
}
