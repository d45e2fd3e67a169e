//! Exactly-once, judged: a checker over a recorded history, and the Java programs that make the
//! histories (`TxnCheck`, `EosPipeline` in `tests/kafka/src`).
//!
//! # The checker
//!
//! A test records a [`History`] as the clients saw it: what each producer sent (an id per
//! record, in send order, optionally inside a named transaction), what the broker acknowledged
//! (partition and, when known, offset), how each transaction ended as its producer saw it
//! ([`TxnOutcome`]: committed, aborted, or unknown when the producer died or its commit failed),
//! and what a `read_committed` consumer read (id, partition, offset). [`History::check`] then
//! lists every [`Violation`]:
//!
//! - an acknowledged record (outside a transaction) or a record of a committed transaction that
//!   was never read: **lost**;
//! - any record read more than once: **duplicate**;
//! - a record of an aborted transaction that was read: **aborted read**;
//! - a transaction of unknown outcome read in part: **partial transaction** (all or nothing);
//! - an acknowledged offset that differs from where the record was read: **moved**;
//! - a record read that nobody sent: **phantom**;
//! - two records of one producer read in one partition in the opposite order of their sends:
//!   **reordered** (one producer's records to one partition keep their order: idempotent and
//!   transactional producers guarantee it).
//!
//! Records sent but neither acknowledged nor in a committed transaction may be read at most
//! once. The [`Report`] prints counts and the violations (the first few of each kind).
//!
//! # The programs
//!
//! [`txn_check`] runs one `TxnCheck` scenario (commit/abort and the LSO, transactional offset
//! commits, zombie fencing, the coordinator's timeout abort, the idempotent producer's defaults,
//! a commit for outside fault injection). [`pipeline`] starts `EosPipeline`, a
//! consume-transform-produce loop that a test kills with SIGKILL and starts again; a
//! [`Program`] is such a background JVM whose `{"ev":…}` lines the test watches to time its
//! fault. [`read_committed`] drains a topic as a `read_committed` librdkafka consumer once no
//! transaction is open in it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs::File;
use std::path::PathBuf;
use std::process::Child;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use rdkafka::Offset;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Message, OwnedMessage};
use serde_json::Value;

use crate::clients::{CLIENT_TIMEOUT, consumer};
use crate::kafka::{ToolOutput, java, run_tool};
use crate::programs::Outcome;
use crate::wait::{Poll, tail_file, wait_for};

/// `dev.tierlog.compat.TxnCheck`: the transaction scenarios.
pub const TXN_CHECK: &str = "dev.tierlog.compat.TxnCheck";
/// `dev.tierlog.compat.EosPipeline`: the killable consume-transform-produce loop.
pub const EOS_PIPELINE: &str = "dev.tierlog.compat.EosPipeline";

/// How many violations of each kind a [`Report`] prints.
const SHOWN_PER_KIND: usize = 10;

// ---- the history -------------------------------------------------------------------------

/// How a transaction ended, as its producer saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnOutcome {
    /// `commitTransaction` returned: every record of it must be read exactly once.
    Committed,
    /// Aborted (by the producer, a successor's fencing or the coordinator's timeout): none of it
    /// may be read.
    Aborted,
    /// The producer died or its commit failed: all of it or none of it.
    Unknown,
}

/// Where a record is in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    /// Partition number.
    pub partition: i32,
    /// Offset in the partition.
    pub offset: i64,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.partition, self.offset)
    }
}

#[derive(Debug, Clone)]
struct Sent {
    id: String,
    producer: String,
    txn: Option<String>,
}

#[derive(Debug, Clone, Copy)]
struct Acked {
    partition: i32,
    offset: Option<i64>,
}

/// What the clients saw: sends, acknowledgements, transaction outcomes and reads. Ids are
/// unique per record; sends are recorded in send order.
#[derive(Debug, Default, Clone)]
pub struct History {
    sent: Vec<Sent>,
    /// Index into `sent` by id.
    by_id: BTreeMap<String, usize>,
    acked: BTreeMap<String, Acked>,
    txns: BTreeMap<String, TxnOutcome>,
    reads: Vec<(String, Position)>,
}

impl History {
    /// An empty history.
    pub fn new() -> Self {
        Self::default()
    }

    /// `producer` sent record `id` outside any transaction.
    pub fn send(&mut self, producer: &str, id: &str) -> &mut Self {
        self.push_sent(producer, id, None)
    }

    /// `producer` sent record `id` inside transaction `txn`.
    pub fn send_in_txn(&mut self, producer: &str, txn: &str, id: &str) -> &mut Self {
        self.push_sent(producer, id, Some(txn))
    }

    fn push_sent(&mut self, producer: &str, id: &str, txn: Option<&str>) -> &mut Self {
        self.by_id.insert(id.to_owned(), self.sent.len());
        self.sent.push(Sent {
            id: id.to_owned(),
            producer: producer.to_owned(),
            txn: txn.map(str::to_owned),
        });
        self
    }

    /// The broker acknowledged `id` on `partition`, at `offset` if the client reported one.
    pub fn ack(&mut self, id: &str, partition: i32, offset: Option<i64>) -> &mut Self {
        self.acked
            .insert(id.to_owned(), Acked { partition, offset });
        self
    }

    /// Transaction `txn` ended with `outcome`.
    pub fn end_txn(&mut self, txn: &str, outcome: TxnOutcome) -> &mut Self {
        self.txns.insert(txn.to_owned(), outcome);
        self
    }

    /// A `read_committed` consumer read `id` at `partition`@`offset`.
    pub fn read(&mut self, id: &str, partition: i32, offset: i64) -> &mut Self {
        self.reads
            .push((id.to_owned(), Position { partition, offset }));
        self
    }

    /// Whether record `s` must be read exactly once (else at most once, or never if aborted).
    fn required(&self, s: &Sent) -> bool {
        match &s.txn {
            None => self.acked.contains_key(&s.id),
            Some(txn) => self.txns.get(txn) == Some(&TxnOutcome::Committed),
        }
    }

    /// Every violation of exactly-once in this history.
    pub fn check(&self) -> Report {
        let mut violations = Vec::new();
        let mut reads: BTreeMap<&str, Vec<Position>> = BTreeMap::new();
        for (id, at) in &self.reads {
            reads.entry(id.as_str()).or_default().push(*at);
        }
        for (id, at) in &reads {
            let Some(&i) = self.by_id.get(*id) else {
                violations.push(Violation::Phantom {
                    id: (*id).to_owned(),
                    at: at[0],
                });
                continue;
            };
            if at.len() > 1 {
                violations.push(Violation::Duplicate {
                    id: (*id).to_owned(),
                    at: at.clone(),
                });
            }
            let sent = &self.sent[i];
            if let Some(txn) = &sent.txn
                && self.txns.get(txn) == Some(&TxnOutcome::Aborted)
            {
                violations.push(Violation::AbortedRead {
                    id: (*id).to_owned(),
                    txn: txn.clone(),
                    at: at[0],
                });
            }
            if let Some(acked) = self.acked.get(*id) {
                let moved = at.iter().find(|p| {
                    p.partition != acked.partition || acked.offset.is_some_and(|o| o != p.offset)
                });
                if let Some(read) = moved {
                    violations.push(Violation::Moved {
                        id: (*id).to_owned(),
                        acked: Position {
                            partition: acked.partition,
                            offset: acked.offset.unwrap_or(-1),
                        },
                        read: *read,
                    });
                }
            }
        }
        let mut required = 0;
        for s in &self.sent {
            if self.required(s) {
                required += 1;
                if !reads.contains_key(s.id.as_str()) {
                    violations.push(Violation::Lost {
                        id: s.id.clone(),
                        txn: s.txn.clone(),
                    });
                }
            }
        }
        self.check_all_or_nothing(&reads, &mut violations);
        self.check_order(&reads, &mut violations);
        Report {
            sent: self.sent.len(),
            required,
            read: self.reads.len(),
            distinct_read: reads.len(),
            violations,
        }
    }

    /// A transaction of unknown outcome is read entirely or not at all.
    fn check_all_or_nothing(
        &self,
        reads: &BTreeMap<&str, Vec<Position>>,
        violations: &mut Vec<Violation>,
    ) {
        for (txn, _) in self.txns.iter().filter(|(_, o)| **o == TxnOutcome::Unknown) {
            let ids: Vec<&str> = self
                .sent
                .iter()
                .filter(|s| s.txn.as_deref() == Some(txn.as_str()))
                .map(|s| s.id.as_str())
                .collect();
            let missing: Vec<String> = ids
                .iter()
                .filter(|id| !reads.contains_key(*id))
                .map(|id| (*id).to_owned())
                .collect();
            if !missing.is_empty() && missing.len() < ids.len() {
                violations.push(Violation::PartialTxn {
                    txn: txn.clone(),
                    read: ids.len() - missing.len(),
                    of: ids.len(),
                    missing,
                });
            }
        }
    }

    /// One producer's records to one partition are read in send order.
    fn check_order(&self, reads: &BTreeMap<&str, Vec<Position>>, violations: &mut Vec<Violation>) {
        // (producer, partition) -> the last record read there, in send order.
        let mut last: BTreeMap<(&str, i32), (&str, i64)> = BTreeMap::new();
        for s in &self.sent {
            let Some(at) = reads.get(s.id.as_str()).map(|a| a[0]) else {
                continue;
            };
            let key = (s.producer.as_str(), at.partition);
            if let Some((earlier, earlier_offset)) = last.get(&key)
                && *earlier_offset >= at.offset
            {
                violations.push(Violation::Reordered {
                    producer: s.producer.clone(),
                    partition: at.partition,
                    earlier: ((*earlier).to_owned(), *earlier_offset),
                    later: (s.id.clone(), at.offset),
                });
            }
            last.insert(key, (s.id.as_str(), at.offset));
        }
    }
}

// ---- the verdict -------------------------------------------------------------------------

/// One way a history breaks exactly-once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Violation {
    /// Acknowledged (or in a committed transaction) but never read.
    Lost {
        /// The record.
        id: String,
        /// Its transaction, if any.
        txn: Option<String>,
    },
    /// Read more than once.
    Duplicate {
        /// The record.
        id: String,
        /// Every place it was read.
        at: Vec<Position>,
    },
    /// A record of an aborted transaction was read.
    AbortedRead {
        /// The record.
        id: String,
        /// Its transaction.
        txn: String,
        /// Where it was read.
        at: Position,
    },
    /// A transaction of unknown outcome was read in part.
    PartialTxn {
        /// The transaction.
        txn: String,
        /// How many of its records were read.
        read: usize,
        /// How many it has.
        of: usize,
        /// The ones not read.
        missing: Vec<String>,
    },
    /// Read somewhere other than where it was acknowledged (offset -1: acknowledged without
    /// one).
    Moved {
        /// The record.
        id: String,
        /// Where the broker said it is.
        acked: Position,
        /// Where it was read.
        read: Position,
    },
    /// Read, but nobody sent it.
    Phantom {
        /// The record.
        id: String,
        /// Where it was read.
        at: Position,
    },
    /// Two records of one producer in one partition read in the opposite order of their sends.
    Reordered {
        /// The producer.
        producer: String,
        /// The partition.
        partition: i32,
        /// The record sent first, and its offset.
        earlier: (String, i64),
        /// The record sent later, read at or before the first.
        later: (String, i64),
    },
}

impl Violation {
    /// A short name of the kind, for grouping.
    pub fn kind(&self) -> &'static str {
        match self {
            Violation::Lost { .. } => "lost",
            Violation::Duplicate { .. } => "duplicate",
            Violation::AbortedRead { .. } => "aborted read",
            Violation::PartialTxn { .. } => "partial transaction",
            Violation::Moved { .. } => "moved",
            Violation::Phantom { .. } => "phantom",
            Violation::Reordered { .. } => "reordered",
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Violation::Lost { id, txn: None } => write!(f, "{id} acknowledged but never read"),
            Violation::Lost { id, txn: Some(t) } => {
                write!(f, "{id} of committed transaction {t} never read")
            }
            Violation::Duplicate { id, at } => {
                let at: Vec<String> = at.iter().map(Position::to_string).collect();
                write!(f, "{id} read {} times, at {}", at.len(), at.join(", "))
            }
            Violation::AbortedRead { id, txn, at } => {
                write!(f, "{id} of aborted transaction {txn} read at {at}")
            }
            Violation::PartialTxn {
                txn,
                read,
                of,
                missing,
            } => write!(
                f,
                "transaction {txn} (outcome unknown) read in part: {read} of {of}; missing {:?}",
                &missing[..missing.len().min(5)]
            ),
            Violation::Moved { id, acked, read } => {
                write!(f, "{id} acknowledged at {acked} but read at {read}")
            }
            Violation::Phantom { id, at } => write!(f, "{id} read at {at} but never sent"),
            Violation::Reordered {
                producer,
                partition,
                earlier,
                later,
            } => write!(
                f,
                "{producer} sent {} before {} but partition {partition} has them at {} and {}",
                earlier.0, later.0, earlier.1, later.1
            ),
        }
    }
}

/// The result of [`History::check`].
#[derive(Debug, Clone)]
pub struct Report {
    /// Records sent.
    pub sent: usize,
    /// Records that had to be read exactly once.
    pub required: usize,
    /// Reads (duplicates included).
    pub read: usize,
    /// Distinct records read.
    pub distinct_read: usize,
    /// Everything wrong, grouped by kind in the order found.
    pub violations: Vec<Violation>,
}

impl Report {
    /// No violation.
    pub fn is_clean(&self) -> bool {
        self.violations.is_empty()
    }

    /// Violations of one kind (see [`Violation::kind`]).
    pub fn of_kind(&self, kind: &str) -> Vec<&Violation> {
        self.violations
            .iter()
            .filter(|v| v.kind() == kind)
            .collect()
    }

    /// `Ok` if clean, else an error carrying the whole report.
    pub fn ensure_clean(&self, what: &str) -> Result<()> {
        ensure!(self.is_clean(), "{what}: exactly-once violated\n{self}");
        Ok(())
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} sent, {} required exactly once, {} reads of {} distinct records, {} violations",
            self.sent,
            self.required,
            self.read,
            self.distinct_read,
            self.violations.len()
        )?;
        let kinds: BTreeSet<&str> = self.violations.iter().map(Violation::kind).collect();
        for kind in kinds {
            let all = self.of_kind(kind);
            write!(f, "\n  {kind}: {}", all.len())?;
            for v in all.iter().take(SHOWN_PER_KIND) {
                write!(f, "\n    {v}")?;
            }
            if all.len() > SHOWN_PER_KIND {
                write!(f, "\n    … {} more", all.len() - SHOWN_PER_KIND)?;
            }
        }
        Ok(())
    }
}

// ---- the programs ------------------------------------------------------------------------

/// A program's outcome: its last JSON line of stdout is the summary.
fn outcome(output: ToolOutput) -> Outcome {
    let summary = output
        .stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str::<Value>(l.trim()).ok())
        .filter(|v| v.get("ev").is_none())
        .unwrap_or(Value::Null);
    Outcome { summary, output }
}

/// The `{"ev":...}` lines a program printed (acknowledgements, reads, transaction steps).
pub fn events(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l.trim()).ok())
        .filter(|v| v.get("ev").is_some())
        .collect()
}

/// Runs `TxnCheck --scenario <scenario>` against `bootstrap` with topic prefix `prefix`, plus
/// `extra` arguments (e.g. `["--txn-timeout-ms", "3000"]`). The program enforces `timeout`
/// itself; the harness kills it 30 s later.
pub fn txn_check(
    bootstrap: &str,
    scenario: &str,
    prefix: &str,
    extra: &[&str],
    timeout: Duration,
) -> Result<Outcome> {
    let timeout_ms = timeout.as_millis().to_string();
    let mut args = vec![
        "--bootstrap",
        bootstrap,
        "--scenario",
        scenario,
        "--topic",
        prefix,
        "--timeout-ms",
        timeout_ms.as_str(),
    ];
    args.extend_from_slice(extra);
    let output = run_tool(TXN_CHECK, &args, None, timeout + Duration::from_secs(30))?;
    Ok(outcome(output))
}

/// The settings of one `EosPipeline --mode run` ([`pipeline`]).
#[derive(Debug, Clone)]
pub struct PipelineOptions {
    /// The input topic.
    pub input: String,
    /// The output topic (as many partitions as the input: record p goes to partition p).
    pub output: String,
    /// Consumer group and transactional.id prefix.
    pub name: String,
    /// `max.poll.records`: the largest transaction.
    pub max_poll_records: u32,
    /// Pause between a transaction's flushed sends and its commit: a window for a kill.
    pub hold: Duration,
    /// Exit (0, with a summary) after this long without input; `None`: run until killed.
    pub idle_exit: Option<Duration>,
}

/// Starts `EosPipeline --mode run` against `bootstrap`.
pub fn pipeline(bootstrap: &str, opts: &PipelineOptions) -> Result<Program> {
    let group = format!("{}-group", opts.name);
    let txn = format!("{}-txn", opts.name);
    let polls = opts.max_poll_records.to_string();
    let hold = opts.hold.as_millis().to_string();
    let idle = opts.idle_exit.map_or(0, |d| d.as_millis()).to_string();
    let args = [
        "--mode",
        "run",
        "--bootstrap",
        bootstrap,
        "--input",
        &opts.input,
        "--output",
        &opts.output,
        "--group",
        &group,
        "--transactional-id",
        &txn,
        "--max-poll-records",
        &polls,
        "--hold-ms",
        &hold,
        "--idle-exit-ms",
        &idle,
    ];
    Program::start(EOS_PIPELINE, &args)
}

/// A Java program running in the background (a JVM) whose stdout a test watches for `{"ev":…}`
/// lines, to inject a fault at the right moment; dropping it kills it.
#[derive(Debug)]
pub struct Program {
    main_class: &'static str,
    child: Option<Child>,
    /// Holds `stdout.txt` and `stderr.txt`.
    dir: tempfile::TempDir,
}

impl Program {
    /// Starts `main_class` with `args`.
    pub fn start(main_class: &'static str, args: &[&str]) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("tierlog-eos-program-")
            .tempdir()
            .context("creating the program's directory")?;
        let stdout = File::create(dir.path().join("stdout.txt"))?;
        let stderr = File::create(dir.path().join("stderr.txt"))?;
        let child = java(main_class)
            .args(args)
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .with_context(|| format!("spawning {main_class}"))?;
        Ok(Program {
            main_class,
            child: Some(child),
            dir,
        })
    }

    fn stdout_path(&self) -> PathBuf {
        self.dir.path().join("stdout.txt")
    }

    /// Everything printed to stdout so far.
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(self.stdout_path()).unwrap_or_default()
    }

    /// The tail of its stdout and stderr, for failure messages.
    pub fn tails(&self) -> String {
        format!(
            "--- {0} stdout ---\n{1}\n--- {0} stderr ---\n{2}",
            self.main_class,
            tail_file(&self.stdout_path(), 20),
            tail_file(&self.dir.path().join("stderr.txt"), 60)
        )
    }

    /// Waits until the events printed so far satisfy `done`; fails at once if the process
    /// exits first, and after `timeout` with the number of events seen.
    pub fn wait_events(
        &mut self,
        what: &str,
        timeout: Duration,
        mut done: impl FnMut(&[Value]) -> bool,
    ) -> Result<Vec<Value>> {
        let deadline = Instant::now() + timeout;
        loop {
            let events = events(&self.stdout());
            if done(&events) {
                return Ok(events);
            }
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                bail!(
                    "{} exited with {status} while waiting for {what}\n{}",
                    self.main_class,
                    self.tails()
                );
            }
            if Instant::now() >= deadline {
                bail!(
                    "timed out after {timeout:?} waiting for {what} ({} events)\n{}",
                    events.len(),
                    self.tails()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// An error (with its exit status and output) if the program has exited; `Ok` while it
    /// runs. For a probe that waits on something else while the program must stay up.
    pub fn ensure_running(&mut self) -> Result<()> {
        if let Some(child) = self.child.as_mut()
            && let Some(status) = child.try_wait()?
        {
            bail!("{} exited with {status}\n{}", self.main_class, self.tails());
        }
        ensure!(self.child.is_some(), "{} was killed", self.main_class);
        Ok(())
    }

    /// SIGKILL the JVM and reap it.
    pub fn kill9(&mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill().context("killing the program")?;
            child.wait().context("reaping the program")?;
        }
        Ok(())
    }

    /// Waits (at most `timeout`) for the program to exit by itself and returns its outcome.
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<Outcome> {
        let deadline = Instant::now() + timeout;
        let mut child = self.child.take().context("the program is not running")?;
        let status = loop {
            if let Some(status) = child.try_wait()? {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!(
                    "{} still running after {timeout:?}\n{}",
                    self.main_class,
                    self.tails()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        Ok(outcome(ToolOutput {
            code: status.code(),
            stdout: self.stdout(),
            stderr: std::fs::read_to_string(self.dir.path().join("stderr.txt")).unwrap_or_default(),
        }))
    }
}

impl Drop for Program {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.tails());
        }
        let _ = self.kill9();
    }
}

/// Runs `EosPipeline --mode verify`: the output holds every input record exactly once, in input
/// order per partition (its own, independent check).
pub fn verify_pipeline(
    bootstrap: &str,
    input: &str,
    output: &str,
    timeout: Duration,
) -> Result<Outcome> {
    let timeout_ms = timeout.as_millis().to_string();
    let args = [
        "--mode",
        "verify",
        "--bootstrap",
        bootstrap,
        "--input",
        input,
        "--output",
        output,
        "--timeout-ms",
        timeout_ms.as_str(),
    ];
    let out = run_tool(EOS_PIPELINE, &args, None, timeout + Duration::from_secs(30))?;
    Ok(outcome(out))
}

// ---- reading back ------------------------------------------------------------------------

/// A librdkafka consumer at `isolation.level` (`read_committed` or `read_uncommitted`).
fn isolated_consumer(bootstrap: &str, isolation: &str) -> Result<BaseConsumer> {
    consumer(bootstrap, &[("isolation.level", isolation)])
}

/// Waits until no transaction is open in partitions `0..partitions` of `topic`: the
/// `read_committed` end (the LSO: librdkafka's ListOffsets carries the consumer's isolation
/// level) equals the log end. Returns the ends.
pub fn wait_stable(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    timeout: Duration,
) -> Result<Vec<i64>> {
    let committed = isolated_consumer(bootstrap, "read_committed")?;
    let uncommitted = isolated_consumer(bootstrap, "read_uncommitted")?;
    wait_for(
        &format!("no open transaction in {topic}"),
        timeout,
        Duration::from_millis(200),
        || {
            let mut ends = Vec::new();
            let mut open = Vec::new();
            for p in 0..partitions {
                let (_, lso) = committed.fetch_watermarks(topic, p, CLIENT_TIMEOUT)?;
                let (_, end) = uncommitted.fetch_watermarks(topic, p, CLIENT_TIMEOUT)?;
                if lso != end {
                    open.push(format!("{p}: LSO {lso} < end {end}"));
                }
                ends.push(end);
            }
            Ok(if open.is_empty() {
                Poll::Ready(ends)
            } else {
                Poll::Pending(open.join(", "))
            })
        },
    )
}

/// Reads partitions `0..partitions` of `topic` from the beginning at `isolation`, until at
/// least `expected` records arrived and then nothing more for `quiet` (or `timeout` passed:
/// what arrived is returned, for the checker to judge).
pub fn read_all(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    isolation: &str,
    expected: usize,
    timeout: Duration,
) -> Result<Vec<OwnedMessage>> {
    let consumer = isolated_consumer(bootstrap, isolation)?;
    let mut tpl = rdkafka::TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)?;
    }
    consumer.assign(&tpl).context("assigning partitions")?;
    let quiet = Duration::from_secs(2);
    let deadline = Instant::now() + timeout;
    let mut out = Vec::new();
    let mut last_record = Instant::now();
    loop {
        let now = Instant::now();
        if now >= deadline || (out.len() >= expected && now >= last_record + quiet) {
            return Ok(out);
        }
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            out.push(m.detach());
            last_record = Instant::now();
        }
    }
}

/// [`read_all`] at `read_committed` once [`wait_stable`] says no transaction is open.
pub fn read_committed(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    expected: usize,
    timeout: Duration,
) -> Result<Vec<OwnedMessage>> {
    wait_stable(bootstrap, topic, partitions, timeout)?;
    read_all(
        bootstrap,
        topic,
        partitions,
        "read_committed",
        expected,
        timeout,
    )
}

/// A record's value as UTF-8 (lossy), empty for a null value.
pub fn value_text(m: &OwnedMessage) -> String {
    String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Producer `p` sends `a0..a3` acknowledged at 0..3 of partition 0, and a transaction `t`
    /// of `b0, b1` on partition 1 (committed); a reader reads them all once.
    fn clean() -> History {
        let mut h = History::new();
        for i in 0..4 {
            let id = format!("a{i}");
            h.send("p", &id).ack(&id, 0, Some(i)).read(&id, 0, i);
        }
        h.send_in_txn("q", "t", "b0").send_in_txn("q", "t", "b1");
        h.end_txn("t", TxnOutcome::Committed)
            .read("b0", 1, 0)
            .read("b1", 1, 1);
        h
    }

    fn kinds(r: &Report) -> Vec<&'static str> {
        r.violations.iter().map(Violation::kind).collect()
    }

    #[test]
    fn a_clean_history_passes() {
        let r = clean().check();
        assert!(r.is_clean(), "{r}");
        assert_eq!((r.sent, r.required, r.read), (6, 6, 6));
        assert!(r.ensure_clean("clean").is_ok());
    }

    #[test]
    fn a_duplicate_is_found() {
        let mut h = clean();
        h.read("a2", 0, 4);
        let r = h.check();
        // Read twice, and the second copy is not where it was acknowledged.
        assert_eq!(kinds(&r), ["duplicate", "moved"], "{r}");
        assert!(
            r.to_string().contains("a2 read 2 times, at 0@2, 0@4"),
            "{r}"
        );
        assert!(r.ensure_clean("dup").is_err());
    }

    #[test]
    fn a_loss_is_found() {
        let mut h = clean();
        h.send("p", "a4").ack("a4", 0, Some(4));
        h.send_in_txn("q", "t", "b2");
        let r = h.check();
        assert_eq!(kinds(&r), ["lost", "lost"], "{r}");
        assert!(
            r.to_string()
                .contains("b2 of committed transaction t never read")
        );
    }

    #[test]
    fn unacknowledged_records_may_be_missing_but_not_doubled() {
        let mut h = clean();
        h.send("p", "maybe-lost");
        h.send("p", "maybe-twice")
            .read("maybe-twice", 0, 4)
            .read("maybe-twice", 0, 5);
        assert_eq!(kinds(&h.check()), ["duplicate"]);
    }

    #[test]
    fn a_reorder_is_found() {
        let mut h = History::new();
        for id in ["x0", "x1", "x2"] {
            h.send("p", id);
        }
        h.read("x0", 0, 0).read("x2", 0, 1).read("x1", 0, 2);
        let r = h.check();
        assert_eq!(kinds(&r), ["reordered"], "{r}");
        assert!(
            r.to_string()
                .contains("p sent x1 before x2 but partition 0 has them at 2 and 1"),
            "{r}"
        );
        // Another producer, or another partition, imposes no order.
        let mut h = History::new();
        h.send("p", "x0").send("q", "y0").send("p", "x1");
        h.read("y0", 0, 0).read("x1", 1, 0).read("x0", 0, 1);
        assert!(h.check().is_clean());
    }

    #[test]
    fn an_aborted_read_is_found() {
        let mut h = clean();
        h.send_in_txn("q", "u", "c0").send_in_txn("q", "u", "c1");
        h.end_txn("u", TxnOutcome::Aborted).read("c1", 1, 3);
        let r = h.check();
        assert_eq!(kinds(&r), ["aborted read"], "{r}");
        assert!(
            r.to_string()
                .contains("c1 of aborted transaction u read at 1@3")
        );
        // Not read at all: fine.
        let mut h = clean();
        h.send_in_txn("q", "u", "c0")
            .end_txn("u", TxnOutcome::Aborted);
        assert!(h.check().is_clean());
    }

    #[test]
    fn an_unknown_transaction_is_all_or_nothing() {
        let unknown = |read: &[&str]| {
            let mut h = clean();
            for id in ["d0", "d1", "d2"] {
                h.send_in_txn("q", "v", id);
            }
            h.end_txn("v", TxnOutcome::Unknown);
            for (i, id) in read.iter().enumerate() {
                h.read(id, 2, i as i64);
            }
            h.check()
        };
        assert!(unknown(&[]).is_clean());
        assert!(unknown(&["d0", "d1", "d2"]).is_clean());
        let r = unknown(&["d0", "d2"]);
        assert_eq!(kinds(&r), ["partial transaction"], "{r}");
        assert!(r.to_string().contains("read in part: 2 of 3"), "{r}");
    }

    #[test]
    fn phantoms_and_moved_records_are_found() {
        let mut h = clean();
        h.read("ghost", 3, 0);
        h.send("p", "m").ack("m", 0, Some(9)).read("m", 0, 4);
        let r = h.check();
        assert_eq!(kinds(&r), ["phantom", "moved"], "{r}");
        assert!(
            r.to_string()
                .contains("m acknowledged at 0@9 but read at 0@4")
        );
    }

    #[test]
    fn the_report_caps_each_kind() {
        let mut h = History::new();
        for i in 0..25 {
            let id = format!("l{i}");
            h.send("p", &id).ack(&id, 0, None);
        }
        let text = h.check().to_string();
        assert!(text.contains("lost: 25"), "{text}");
        assert!(text.contains("… 15 more"), "{text}");
    }

    #[test]
    fn events_and_summaries_are_told_apart() {
        let out = ToolOutput {
            code: Some(0),
            stdout: "noise\n{\"ev\":\"ack\",\"id\":\"a\",\"p\":0,\"o\":1}\n{\"ok\":true}\n"
                .to_owned(),
            stderr: String::new(),
        };
        assert_eq!(events(&out.stdout).len(), 1);
        assert!(outcome(out).passed());
    }
}
