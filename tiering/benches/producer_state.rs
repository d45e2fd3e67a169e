//! Memory of the idempotent-producer state: what one idle producer id costs a partition.
//!
//! Appends one small batch (one 100-byte record) for each of `N` producer ids (epoch 0,
//! sequence 0) to a `PartitionLog` in a temp dir, then reports the growth of the process's
//! `VmRSS` divided by `N`, against the same appends without a producer id (the log's own
//! memory: index, buffers), and the size of the producer snapshot written at close.
//!
//! `cargo bench -p tierlog-tiering --bench producer_state` (`-- 10000` for another `N`; the
//! default is 100,000). Each case runs in a child process of its own, so the allocator's
//! leftovers from one case do not hide the other's growth. Linux only (`/proc/self/status`).

use std::path::Path;
use std::process::Command;

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType as KTimestampType,
};
use tierlog_tiering::{LogConfig, PartitionLog};

const DEFAULT_PRODUCERS: u64 = 100_000;
const VALUE_BYTES: usize = 100;
/// Set in a child: which case to run (`idempotent` or `plain`) and how many batches.
const CASE_ENV: &str = "TIERLOG_PRODUCER_STATE_CASE";

/// One v2 batch of one record from `producer_id` (epoch 0, sequence 0), or with no producer
/// for -1.
fn batch(producer_id: i64) -> Bytes {
    let (epoch, sequence) = if producer_id >= 0 { (0, 0) } else { (-1, -1) };
    let record = Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: -1,
        producer_id,
        producer_epoch: epoch,
        timestamp_type: KTimestampType::Creation,
        offset: 0,
        sequence,
        timestamp: 1_700_000_000_000,
        key: None,
        value: Some(Bytes::from(vec![b'x'; VALUE_BYTES])),
        headers: Default::default(),
    };
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        [&record],
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .expect("encode batch");
    buf.freeze()
}

/// `VmRSS` of this process in bytes.
fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kb| kb.parse::<u64>().ok())
        .expect("VmRSS in /proc/self/status")
        * 1024
}

fn snapshot_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    for entry in walk(dir) {
        if entry.extension().is_some_and(|e| e == "snapshot") {
            total += std::fs::metadata(&entry).map(|m| m.len()).unwrap_or(0);
        }
    }
    total
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// One case, in this (child) process: prints `rss_growth snapshot_bytes`.
fn run_case(idempotent: bool, n: u64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = LogConfig {
        segment_bytes: 1 << 30,
        retention_bytes: None,
        retention_ms: None,
        ..LogConfig::default()
    };
    let log = PartitionLog::open(dir.path(), config).expect("open log");
    // Warm up: the first appends allocate the log's buffers.
    log.append(batch(-1), 0, 1_700_000_000_000)
        .expect("warm-up append");
    let before = rss_bytes();
    for i in 0..n {
        let pid = if idempotent { i as i64 } else { -1 };
        log.append(batch(pid), 0, 1_700_000_000_000)
            .expect("append");
    }
    let after = rss_bytes();
    log.close().expect("close");
    println!(
        "{} {}",
        after.saturating_sub(before),
        snapshot_bytes(dir.path())
    );
}

fn child(case: &str, n: u64) -> (u64, u64) {
    let out = Command::new(std::env::current_exe().expect("current exe"))
        .arg(n.to_string())
        .env(CASE_ENV, case)
        .output()
        .expect("run child");
    assert!(
        out.status.success(),
        "{case} case failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let mut fields = text
        .split_whitespace()
        .map(|f| f.parse::<u64>().expect("child output"));
    (
        fields.next().expect("rss growth"),
        fields.next().expect("snapshot bytes"),
    )
}

fn main() {
    // `cargo bench` passes `--bench`; the first plain number is N.
    let n = std::env::args()
        .skip(1)
        .find_map(|a| a.parse::<u64>().ok())
        .unwrap_or(DEFAULT_PRODUCERS)
        .max(1);
    if let Ok(case) = std::env::var(CASE_ENV) {
        run_case(case == "idempotent", n);
        return;
    }
    let (plain_rss, plain_snap) = child("plain", n);
    let (idem_rss, idem_snap) = child("idempotent", n);
    let per = |b: u64| b as f64 / n as f64;
    let state = idem_rss.saturating_sub(plain_rss);
    println!("producer_state: {n} batches of one {VALUE_BYTES}-byte record");
    println!(
        "  without producer ids: RSS +{:.1} MiB ({:.0} B/batch), snapshot {} B",
        plain_rss as f64 / 1048576.0,
        per(plain_rss),
        plain_snap
    );
    println!(
        "  {n} producer ids:   RSS +{:.1} MiB ({:.0} B/batch), snapshot {} B ({:.1} B/producer)",
        idem_rss as f64 / 1048576.0,
        per(idem_rss),
        idem_snap,
        per(idem_snap)
    );
    println!(
        "  producer state: {:.1} MiB, {:.0} B per idle producer id",
        state as f64 / 1048576.0,
        per(state)
    );
    println!(
        "{{\"producers\":{n},\"rss_growth_plain\":{plain_rss},\"rss_growth_idempotent\":{idem_rss},\"state_bytes_per_producer\":{:.1},\"snapshot_bytes\":{idem_snap},\"snapshot_bytes_per_producer\":{:.1}}}",
        per(state),
        per(idem_snap)
    );
}
