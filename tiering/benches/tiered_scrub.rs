//! The tiered scrub's CPU cost: [`RemotePartition::check_segment`] over every segment of a
//! tiered partition (each data object streamed once, every 1 MiB chunk's CRC-32 and every
//! batch's CRC-32C checked, the index objects read whole and checked).
//!
//! Run with `cargo bench -p tierlog-tiering --bench tiered_scrub`. The data set is
//! `TIERLOG_BENCH_SCRUB_MB` MiB (default 256) of 100-byte records in ~16 KiB batches, in 16 MiB
//! segments, tiered to an in-memory object store (so what is measured is the scrub's own work,
//! not the network). Prints, per pass, wall time and the process's CPU time (user + system,
//! from `/proc/self/stat`) per GiB checked, on a current-thread runtime.

use std::sync::Arc;
use std::time::Instant;

use object_store::ObjectStore;
use object_store::memory::InMemory;
use tierlog_metadata::{ManifestRegistry, MemoryStore};
use tierlog_tiering::remote::{DEFAULT_CHUNK_SIZE, RemoteOptions, RemotePartition};
use tierlog_tiering::{LogConfig, PartitionLog};

mod common;

const SEGMENT_BYTES: u64 = 16 << 20;
const PASSES: usize = 5;

/// User + system CPU time of this process, in seconds (Linux; 0 elsewhere).
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after the name.
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // USER_HZ is 100 on every Linux this runs on.
    (ticks(11) + ticks(12)) / 100.0
}

fn main() {
    let mb: u64 = std::env::var("TIERLOG_BENCH_SCRUB_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    let dir = tempfile::tempdir().expect("temp dir");
    let log = PartitionLog::open(
        dir.path(),
        LogConfig {
            segment_bytes: SEGMENT_BYTES,
            segment_ms: None,
            retention_ms: None,
            remote_storage: true,
            ..LogConfig::default()
        },
    )
    .expect("open log");
    let batch = common::batch_of(16 * 1024);
    let mut written = 0u64;
    while written < mb << 20 {
        log.append(batch.clone(), 0, 1_700_000_000_000)
            .expect("append");
        written += batch.len() as u64;
    }
    log.roll_now().expect("roll");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let manifest = ManifestRegistry::new(Arc::new(MemoryStore::new()));
    let topic_id = uuid::Uuid::new_v4();
    let remote = RemotePartition::new(store, manifest.clone(), "bench", topic_id, 0).with_options(
        RemoteOptions {
            chunk_size: DEFAULT_CHUNK_SIZE,
            ..RemoteOptions::default()
        },
    );
    let segments = rt.block_on(async {
        for seg in log.sealed_segments().expect("sealed") {
            remote.upload(&seg, 0, 0).await.expect("upload");
        }
        manifest.list(topic_id, 0).await.expect("list")
    });
    println!(
        "tiered scrub: {} segments, {:.1} MiB",
        segments.len(),
        segments.iter().map(|s| s.size_bytes).sum::<u64>() as f64 / (1 << 20) as f64
    );
    for pass in 0..PASSES {
        let (cpu0, wall0) = (cpu_seconds(), Instant::now());
        let bytes = rt.block_on(async {
            let mut bytes = 0u64;
            for seg in &segments {
                let (read, damage) = remote.check_segment(seg).await.expect("check");
                assert!(damage.describe().is_none(), "{damage:?}");
                bytes += read;
            }
            bytes
        });
        let (cpu, wall) = (cpu_seconds() - cpu0, wall0.elapsed().as_secs_f64());
        let gib = bytes as f64 / (1u64 << 30) as f64;
        println!(
            "pass {pass}: {bytes} bytes in {wall:.3} s wall, {cpu:.2} s CPU: \
             {:.2} CPU s/GiB, {:.2} GiB/s",
            cpu / gib,
            gib / wall
        );
    }
}
