//! What the damaged-data tests (`tests/damage*.rs`) share: a topic of one partition filled
//! with small batches on a node with small segments, its segment files on disk (to damage
//! them while the node is down), the batches inside a file, consuming and checking ranges
//! with librdkafka (default `check.crcs=false`, so a bad batch that reached it would be handed
//! to the application as data), waiting on the damage metrics, `tierlog damage list`, and
//! accepting a loss with DeleteRecords.

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use rdkafka::message::OwnedMessage;
use rdkafka::{Offset, TopicPartitionList};

use crate::clients::{
    RecordData, admin, admin_options, assigned_consumer, consume_exactly, create_topic, producer,
};
use crate::cluster::{ClusterOptions, TestCluster};
use crate::node::tierlog_binary;
use crate::wait::{Poll, wait_for};
use crate::wire::{Conn, KAFKA_STORAGE_ERROR, decode_records};
use crate::workload::{check_consumed, consume_timeout, produce_all, records};
use crate::{NodeOptions, TestNode};

/// `segment.bytes` of the topics (the node's `min_segment_bytes` must allow it).
pub const SEGMENT_BYTES: &str = "65536";
/// Bound on every wait (uploads every 200 ms; slack for a debug broker on a busy machine).
pub const SETTLE: Duration = Duration::from_secs(120);
/// How often a wait looks.
pub const POLL: Duration = Duration::from_millis(100);

/// The directory of `topic`/0 under the node data directory `data_dir`.
pub fn partition_dir(data_dir: &Path, topic: &str) -> Result<PathBuf> {
    let logs = data_dir.join("logs");
    let found = std::fs::read_dir(&logs)
        .with_context(|| format!("listing {}", logs.display()))?
        .flatten()
        .find(|e| {
            e.file_name()
                .to_string_lossy()
                .strip_prefix(&format!("{topic}-"))
                .is_some_and(|id| id.len() == 32)
        })
        .with_context(|| format!("no directory of {topic} in {}", logs.display()))?;
    Ok(found.path().join("0"))
}

/// The local `.log` files of `topic`/0, sorted by base offset.
pub fn segment_files(data_dir: &Path, topic: &str) -> Result<Vec<(i64, PathBuf)>> {
    let dir = partition_dir(data_dir, topic)?;
    let mut out: Vec<(i64, PathBuf)> = std::fs::read_dir(&dir)
        .with_context(|| format!("listing {}", dir.display()))?
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let base = name.strip_suffix(".log")?.parse().ok()?;
            Some((base, e.path()))
        })
        .collect();
    out.sort();
    Ok(out)
}

/// Where one record batch lies in a segment file's bytes, and its offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchAt {
    /// Position of its first byte.
    pub start: usize,
    /// Position just after it.
    pub end: usize,
    /// Its first offset.
    pub base_offset: i64,
    /// Its last offset.
    pub last_offset: i64,
}

/// The batch of the segment file `bytes` holding the byte at `pos` (walking the batch
/// headers from the start).
pub fn batch_holding(bytes: &[u8], pos: usize) -> Result<BatchAt> {
    let field = |at: usize, n: usize| -> Result<&[u8]> {
        bytes
            .get(at..at + n)
            .with_context(|| format!("batch header cut short at {at}"))
    };
    let mut start = 0usize;
    while start < bytes.len() {
        let base_offset = i64::from_be_bytes(field(start, 8)?.try_into()?);
        let len = usize::try_from(i32::from_be_bytes(field(start + 8, 4)?.try_into()?))?;
        let delta = i32::from_be_bytes(field(start + 23, 4)?.try_into()?);
        let end = start + 12 + len;
        if pos < end {
            return Ok(BatchAt {
                start,
                end,
                base_offset,
                last_offset: base_offset + i64::from(delta),
            });
        }
        start = end;
    }
    bail!("no batch holds position {pos} of {} bytes", bytes.len())
}

/// Flips one byte inside the records of the batch in the middle of the segment file `path`;
/// returns the batch's first and last offsets.
pub fn flip_middle_batch(path: &Path) -> Result<(i64, i64)> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let b = batch_holding(&bytes, bytes.len() / 2)?;
    // Past the 61-byte header: inside the records, so only the CRC-32C tells.
    let at = b.start + 61 + (b.end - b.start - 61) / 2;
    let f = std::fs::OpenOptions::new().write(true).open(path)?;
    f.write_all_at(&[bytes[at] ^ 0x10], at as u64)?;
    Ok((b.base_offset, b.last_offset))
}

/// Consumes `[from, to)` of `topic`/0 with librdkafka (default `check.crcs=false`).
pub fn consume(bootstrap: &str, topic: &str, from: i64, to: i64) -> Result<Vec<OwnedMessage>> {
    let n = usize::try_from(to - from)?;
    let consumer = assigned_consumer(bootstrap, topic, [0], Offset::Offset(from))?;
    consume_exactly(&consumer, n, consume_timeout(n))
}

/// The acknowledged records of `[from, to)` and their acks.
pub fn acked(
    all: &[RecordData],
    acks: &[(i32, i64)],
    from: i64,
    to: i64,
) -> (Vec<RecordData>, Vec<(i32, i64)>) {
    all.iter()
        .zip(acks)
        .filter(|(_, (_, o))| (from..to).contains(o))
        .map(|(r, a)| (r.clone(), *a))
        .unzip()
}

/// Consumes `[from, to)` of `topic`/0 and checks it is exactly the acknowledged records there.
pub fn check_range(
    bootstrap: &str,
    topic: &str,
    all: &[RecordData],
    acks: &[(i32, i64)],
    from: i64,
    to: i64,
) -> Result<()> {
    let (want, want_acks) = acked(all, acks, from, to);
    check_consumed(&consume(bootstrap, topic, from, to)?, &want, &want_acks)
}

/// One past the last acknowledged offset.
pub fn end_of(acks: &[(i32, i64)]) -> i64 {
    acks.iter().map(|(_, o)| o + 1).max().unwrap_or(0)
}

/// Checks that the damaged range `[first, last]` of `topic`/0 on `node`, of which there is no
/// other copy, is refused, never served, while everything around it is: the log still ends
/// after the last acknowledged record, a fetch at either end of the range answers
/// KAFKA_STORAGE_ERROR with no records, librdkafka reads back the acknowledged records before
/// and after it, and the damage gauges count it as one range with no tiered copy.
pub fn check_refused(
    node: &TestNode,
    topic: &str,
    all: &[RecordData],
    acks: &[(i32, i64)],
    first: i64,
    last: i64,
) -> Result<()> {
    let end = end_of(acks);
    let mut conn = Conn::connect(node.kafka_addr())?;
    let log_end = conn.log_end_offset(topic, 0)?;
    ensure!(log_end == end, "log end {log_end}, {end} acknowledged");
    for offset in [first, last] {
        let data = conn.fetch_limited(topic, 0, offset, 0, 1, 1)?;
        ensure!(
            data.error_code == KAFKA_STORAGE_ERROR,
            "fetch at {offset}: error code {}",
            data.error_code
        );
        let served = match &data.records {
            Some(r) => decode_records(r)?.len(),
            None => 0,
        };
        ensure!(served == 0, "fetch at {offset} served {served} records");
    }
    let bootstrap = node.bootstrap();
    check_range(&bootstrap, topic, all, acks, 0, first)?;
    check_range(&bootstrap, topic, all, acks, last + 1, end)?;
    let m = node.metrics()?;
    for gauge in [
        "tierlog_partition_damaged_ranges",
        "tierlog_partition_damaged_ranges_untiered",
    ] {
        let got = m.partition(gauge, topic, 0);
        ensure!(got == Some(1.0), "{gauge} of {topic} = {got:?}");
    }
    Ok(())
}

/// Produces `n` records to a new topic of one partition (tiered or not) with small batches;
/// returns them and their acks.
pub async fn fill(
    node: &TestNode,
    topic: &str,
    tiered: bool,
    n: usize,
) -> Result<(Vec<RecordData>, Vec<(i32, i64)>)> {
    let remote = if tiered { "true" } else { "false" };
    create_topic(
        &node.bootstrap(),
        topic,
        1,
        &[
            ("segment.bytes", SEGMENT_BYTES),
            ("remote.storage.enable", remote),
        ],
    )
    .await?;
    let all = records(n, topic);
    let p = producer(
        &node.bootstrap(),
        &[("batch.size", "16384"), ("linger.ms", "5")],
    )?;
    let acks = produce_all(&p, topic, &all).await?;
    Ok((all, acks))
}

/// A follower heals from its leader what `damage` does to its segment files (of a topic not
/// tiered, so the leader is the only other copy) while it is down after a `kill -9`, and then
/// serves every acknowledged record alone. On a three-node cluster (skipped, as
/// [`TestCluster::start_or_skip`] says, without etcd); `name` names the cluster's files.
/// `damage` gets the follower's `.log` files by base offset and says what it did.
pub async fn check_follower_heals(
    name: &str,
    topic: &str,
    damage: impl FnOnce(&[(i64, PathBuf)]) -> Result<String>,
) -> Result<()> {
    let opts = ClusterOptions {
        node: NodeOptions::default()
            .min_segment_bytes(SEGMENT_BYTES.parse()?)
            .args(["--scrub-interval", "2s"]),
        ..ClusterOptions::default()
    };
    let Some(mut c) = TestCluster::start_or_skip(name, opts)? else {
        return Ok(());
    };
    c.wait_brokers(3)?;
    c.create_topic(
        topic,
        1,
        3,
        &[
            ("segment.bytes", SEGMENT_BYTES),
            ("remote.storage.enable", "false"),
        ],
    )
    .await?;
    let all = records(8_000, topic);
    let p = producer(
        &c.bootstrap(),
        &[("acks", "all"), ("batch.size", "16384"), ("linger.ms", "5")],
    )?;
    let acks = produce_all(&p, topic, &all).await?;
    c.wait_isr_full(topic, 0)?;
    let leader = c.wait_leader(topic, 0)?;
    let follower = c
        .ids()
        .into_iter()
        .find(|id| *id != leader)
        .context("no follower")?;

    c.kill9(follower)?;
    let segs = segment_files(&c.node(follower).data_dir(), topic)?;
    ensure!(segs.len() >= 4, "{segs:?}");
    let did = damage(&segs)?;
    eprintln!("{did} on follower {follower} (leader {leader})");
    c.restart(follower)?;
    wait_for(
        "the follower to find and heal the damage",
        SETTLE,
        POLL,
        || {
            let m = c.node(follower).metrics()?;
            let healed = m.counter("tierlog_damaged_ranges_healed_total");
            let damaged = m.partition("tierlog_partition_damaged_ranges", topic, 0);
            Ok(if healed >= 1.0 && damaged == Some(0.0) {
                Poll::Ready(())
            } else {
                Poll::Pending(format!("healed={healed} damaged={damaged:?}"))
            })
        },
    )?;
    c.wait_in_isr(topic, 0, follower)?;

    // The healed follower alone serves every acknowledged record.
    for id in c.ids().into_iter().filter(|id| *id != follower) {
        c.kill9(id)?;
    }
    c.wait_sole_leader(topic, 0, follower)?;
    check_range(
        &c.node(follower).bootstrap(),
        topic,
        &all,
        &acks,
        0,
        end_of(&acks),
    )
}

/// Waits until every sealed segment of `topic`/0 is tiered (and at least `min` are).
pub fn wait_tiered(node: &TestNode, topic: &str, min: f64) -> Result<()> {
    wait_for(&format!("{topic} to be tiered"), SETTLE, POLL, || {
        let m = node.metrics()?;
        let lag = m.partition("tierlog_partition_upload_lag_bytes", topic, 0);
        let tiered = m.partition("tierlog_partition_remote_segments", topic, 0);
        Ok(if lag == Some(0.0) && tiered.is_some_and(|t| t >= min) {
            Poll::Ready(())
        } else {
            Poll::Pending(format!("upload lag {lag:?}, tiered segments {tiered:?}"))
        })
    })
}

/// Waits until the gauge `name` of `topic`/0 reads `want`.
pub fn wait_gauge(node: &TestNode, name: &str, topic: &str, want: f64) -> Result<()> {
    wait_for(&format!("{name} of {topic} = {want}"), SETTLE, POLL, || {
        let got = node.metrics()?.partition(name, topic, 0);
        Ok(if got == Some(want) {
            Poll::Ready(())
        } else {
            Poll::Pending(format!("{name}={got:?}"))
        })
    })
}

/// `tierlog damage list` against `node`'s admin endpoint.
pub fn damage_list(node: &TestNode) -> Result<String> {
    let out = std::process::Command::new(tierlog_binary()?)
        .args(["damage", "list", "--http", &node.http_addr().to_string()])
        .env("RUST_LOG", "warn")
        .output()?;
    ensure!(
        out.status.success(),
        "tierlog damage list: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8(out.stdout)?)
}

/// The line of `tierlog damage list` for `topic`, checked to name exactly the range
/// `[first, last]`.
pub fn listed_range(node: &TestNode, topic: &str, first: i64, last: i64) -> Result<String> {
    let listed = damage_list(node)?;
    let line = listed
        .lines()
        .find(|l| l.starts_with(topic))
        .with_context(|| format!("{topic} not listed:\n{listed}"))?;
    let cells: Vec<&str> = line.split_whitespace().collect();
    ensure!(
        cells.get(2..4) == Some(&[first.to_string().as_str(), last.to_string().as_str()][..]),
        "{topic} {first}..={last} not listed:\n{listed}"
    );
    Ok(line.to_owned())
}

/// Accepts the loss of everything below `offset` of `topic`/0 — DeleteRecords moves its log
/// start there — and checks that `node` then lists no damaged range and counts none for it.
pub async fn accept_loss(node: &TestNode, topic: &str, offset: i64) -> Result<()> {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Offset(offset))?;
    let result = admin(&node.bootstrap())?
        .delete_records(&tpl, &admin_options())
        .await?;
    result
        .find_partition(topic, 0)
        .context("no DeleteRecords result")?
        .error()?;
    let listed = damage_list(node)?;
    ensure!(listed == "no damaged ranges\n", "still listed:\n{listed}");
    let got = node
        .metrics()?
        .partition("tierlog_partition_damaged_ranges", topic, 0);
    ensure!(
        got == Some(0.0),
        "tierlog_partition_damaged_ranges of {topic} = {got:?}"
    );
    Ok(())
}
