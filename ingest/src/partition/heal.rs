//! Healing damaged ranges of the hot tier, and the scrubber that finds them before a reader
//! does.
//!
//! A partition log quarantines batches whose bytes fail their CRC-32C in the middle of the
//! log (tiering's `log/damage.rs`): reads of them answer KAFKA_STORAGE_ERROR, the offsets
//! around them stay readable. Meanwhile:
//! - a fetch of a quarantined offset that is tiered is served from object storage instead
//!   ([`Partition::read`](super::Partition::read)), so no consumer waits for the repair;
//! - the upload scheduler gives a partition with damage a heal job ([`heal_from_tiered`]):
//!   each range that object storage holds is read back (its chunk checksums verified, every
//!   batch's CRC-32C checked again by the repair) and written over the bad bytes;
//! - the [`Scrubber`] re-reads every sealed local segment once per `scrub_interval` at no more
//!   than `scrub_bytes_per_sec`, which quarantines what it finds the same way, and heals it.
//!
//! A follower heals what is not tiered from its leader (`replication/heal.rs`). A range with
//! no copy stays quarantined (logged, and counted in `tierlog_partition_damaged_ranges_untiered`)
//! until the operator accepts the loss (DeleteRecords past it).
//!
//! The tiered copy is scrubbed too, less often: the [`TieredScrubber`] re-reads, once per
//! `scrub_tiered_interval` (7 days by default; the first pass at a random point of the first
//! interval, so restarts neither skip nor repeat passes on average and nodes do not start
//! together), the tiered objects of every partition this node leads — only the leader, so
//! the replicas do not all read the same objects — straight from the object store, bypassing
//! the chunk cache, every chunk against the manifest's CRC-32, every batch against its
//! CRC-32C, the indexes against theirs (`tierlog_tiering::remote::scrub`). It is paced by
//! `scrub_bytes_per_sec` like the local scrubber, as a budget of its own: it reads the
//! network, not the disk, and sharing one budget would let the weekly tiered pass hold up
//! the daily local one. A damaged segment is uploaded again from the hot tier when it holds
//! the range intact (new keys, swapped into the manifest; the damaged objects retired and
//! reaped after the orphan grace by the leader's sweep, their cached chunks evicted); readers
//! never serve its bad chunks meanwhile (the cache checks every chunk's CRC-32). One with no
//! intact copy here is logged, counted in `tierlog_tiered_ranges_unrecoverable` and listed by
//! `/damage` until a later pass finds it intact, repaired or gone.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use bytes::BytesMut;
use tierlog_tiering::{BatchHeader, DamagedRange, PartitionLog, RangeRepair};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{Partition, Tiering, TopicState, UploadGate};
use crate::error::{Error, Result};

/// Reads of the tiered copy are made in pieces of this size.
const HEAL_READ_BYTES: usize = 1 << 20;

/// Repairs every damaged range of `p` that object storage holds. Returns how many were
/// repaired; the others are left as they are (and logged).
pub(crate) async fn heal_from_tiered(p: &Partition, tiering: &Tiering) -> usize {
    let mut healed = 0;
    for range in p.log.damaged_ranges() {
        let tiered = p.remote.end().is_some_and(|end| end > range.last_offset)
            && p.remote.segment_for(range.first_offset).is_some();
        if !tiered {
            warn!(
                partition = %p.tp,
                first_offset = range.first_offset,
                last_offset = range.last_offset,
                "damaged range has no tiered copy; it stays quarantined"
            );
            continue;
        }
        let outcome = repair_from_tiered(p, tiering, &range).await;
        if log_heal(p, &range, "object storage", &outcome) {
            healed += 1;
        }
    }
    healed
}

/// Logs the outcome of a repair of `range` from `source`; returns whether it healed it.
pub(crate) fn log_heal(
    p: &Partition,
    range: &DamagedRange,
    source: &str,
    outcome: &Result<bool>,
) -> bool {
    let (first_offset, last_offset) = (range.first_offset, range.last_offset);
    match outcome {
        Ok(true) => {
            info!(partition = %p.tp, first_offset, last_offset, source, "damaged range healed");
            true
        }
        Ok(false) => {
            warn!(partition = %p.tp, first_offset, last_offset, source, "the copy did not repair the damaged range");
            false
        }
        Err(e) => {
            warn!(partition = %p.tp, first_offset, last_offset, source, error = %e, "could not heal a damaged range");
            false
        }
    }
}

/// Reads the batches of `range` from object storage and writes them over it. `Ok(true)` when
/// the range is gone afterwards.
async fn repair_from_tiered(
    p: &Partition,
    tiering: &Tiering,
    range: &DamagedRange,
) -> Result<bool> {
    let mut heal = RangeHeal::begin(p, range)?;
    let mut at = Some(range.first_offset);
    while let Some(from) = at {
        let Some(records) = p.remote.read(tiering, from, HEAL_READ_BYTES).await? else {
            return Ok(false);
        };
        at = heal.add(&records).await?;
    }
    heal.finish(p).await
}

/// Adds the batches of `records` (read at some offset of `range`) that lie in `range` to
/// `bytes`; returns the offset to read next, `None` once the range is covered (or `records`
/// is empty).
fn collect_range(
    range: &DamagedRange,
    records: &[u8],
    bytes: &mut BytesMut,
) -> Result<Option<i64>> {
    let mut next = None;
    let mut pos = 0;
    while pos < records.len() {
        let h = BatchHeader::parse(&records[pos..]).map_err(Error::Log)?;
        let size = h.size() as usize;
        if h.last_offset() > range.last_offset || pos + size > records.len() {
            return Ok(None);
        }
        if h.base_offset >= range.first_offset {
            bytes.extend_from_slice(&records[pos..pos + size]);
        }
        next = Some(h.last_offset() + 1).filter(|n| *n <= range.last_offset);
        pos += size;
    }
    Ok(next)
}

/// Bytes of a copy a heal holds before writing them: a range as large as a segment is healed
/// in pieces of about this size.
const HEAL_PIECE_BYTES: usize = 8 << 20;

/// The repair of one damaged range from another copy (object storage, the leader), written a
/// piece at a time so that healing a whole segment holds only a piece in memory: [`add`] the
/// copy's batches as they are read, then [`finish`]. The range stays quarantined until then.
///
/// [`add`]: RangeHeal::add
/// [`finish`]: RangeHeal::finish
pub(crate) struct RangeHeal {
    log: Arc<PartitionLog>,
    range: DamagedRange,
    /// `None` only while a piece is being written.
    repair: Option<RangeRepair>,
    /// Batches read and not yet written.
    pending: BytesMut,
    wrote: bool,
}

impl RangeHeal {
    /// Starts healing `range` of `p`'s log.
    pub(crate) fn begin(p: &Partition, range: &DamagedRange) -> Result<RangeHeal> {
        Ok(RangeHeal {
            repair: Some(p.log.begin_repair(range.first_offset)?),
            log: p.log.clone(),
            range: range.clone(),
            pending: BytesMut::new(),
            wrote: false,
        })
    }

    /// Takes the batches of `records` (read at the offset the previous call returned, the
    /// range's first at first) that lie in the range, writing them once a piece's worth is
    /// held. Returns the offset to read next, `None` once the range is covered (or `records`
    /// is empty).
    pub(crate) async fn add(&mut self, records: &[u8]) -> Result<Option<i64>> {
        let next = collect_range(&self.range, records, &mut self.pending)?;
        if self.pending.len() >= HEAL_PIECE_BYTES {
            self.write_pending().await?;
        }
        Ok(next)
    }

    async fn write_pending(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let bytes = std::mem::take(&mut self.pending).freeze();
        let Some(mut repair) = self.repair.take() else {
            return Err(Error::Internal(
                "an earlier piece of this repair failed".into(),
            ));
        };
        let log = self.log.clone();
        let repair = tokio::task::spawn_blocking(move || {
            log.repair_piece(&mut repair, &bytes).map(|()| repair)
        })
        .await
        .map_err(|e| Error::Internal(format!("repair: {e}")))??;
        self.repair = Some(repair);
        self.wrote = true;
        Ok(())
    }

    /// Writes what is held and lifts what the copy repaired. `Ok(true)` when no offset of the
    /// range is damaged any more (counted in `tierlog_damaged_ranges_healed_total`).
    pub(crate) async fn finish(mut self, p: &Partition) -> Result<bool> {
        self.write_pending().await?;
        let Some(repair) = self.repair.take().filter(|_| self.wrote) else {
            return Ok(false);
        };
        let log = self.log.clone();
        let left = tokio::task::spawn_blocking(move || log.finish_repair(repair))
            .await
            .map_err(|e| Error::Internal(format!("repair: {e}")))??;
        let (first, last) = (self.range.first_offset, self.range.last_offset);
        let healed = !left
            .iter()
            .any(|d| d.first_offset <= last && d.last_offset >= first);
        if healed {
            p.tiering
                .metrics
                .damaged_ranges_healed
                .fetch_add(1, Ordering::Relaxed);
        }
        Ok(healed)
    }
}

/// See the module docs. One per node.
#[derive(Debug)]
pub(crate) struct Scrubber {
    /// Time from the start of one pass to the start of the next.
    pub(crate) interval: Duration,
    /// Read rate bound; 0 turns scrubbing off.
    pub(crate) bytes_per_sec: u64,
}

impl Scrubber {
    /// Scrub passes until cancelled, the first at once.
    pub(crate) async fn run(
        self,
        topics: Arc<RwLock<HashMap<String, Arc<TopicState>>>>,
        tiering: Arc<Tiering>,
        cancel: CancellationToken,
    ) {
        if self.bytes_per_sec == 0 {
            return;
        }
        let rate = Some(self.bytes_per_sec);
        let first = tokio::time::Instant::now();
        passes(first, self.interval, &topics, &cancel, |p| {
            let (tiering, cancel) = (tiering.clone(), cancel.clone());
            async move {
                scrub_partition(&p, &tiering, rate, &cancel).await;
            }
        })
        .await;
    }
}

/// Calls `scrub` on every partition of `topics` once per pass, the first pass at `first`, the
/// next ones `interval` after the start of the previous one (later if a pass takes longer),
/// until `cancel` fires. Partitions being removed are skipped.
async fn passes<F, Fut>(
    first: tokio::time::Instant,
    interval: Duration,
    topics: &RwLock<HashMap<String, Arc<TopicState>>>,
    cancel: &CancellationToken,
    mut scrub: F,
) where
    F: FnMut(Arc<Partition>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut tick = tokio::time::interval_at(first, interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            () = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        let partitions: Vec<Arc<Partition>> = topics
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .flat_map(|t| t.partitions.iter().cloned())
            .collect();
        for p in partitions {
            if cancel.is_cancelled() {
                return;
            }
            if !p.cancel.is_cancelled() {
                scrub(p).await;
            }
        }
    }
}

/// After reading `bytes`, waits long enough to stay under `bytes_per_sec` (when given: else
/// returns at once). `false` when `cancel` fired during the wait.
async fn pace(bytes: u64, bytes_per_sec: Option<u64>, cancel: &CancellationToken) -> bool {
    let Some(rate) = bytes_per_sec.filter(|r| *r > 0) else {
        return true;
    };
    let pause = Duration::from_secs_f64(bytes as f64 / rate as f64);
    tokio::select! {
        biased;
        () = cancel.cancelled() => false,
        () = tokio::time::sleep(pause) => true,
    }
}

/// Scrubs the sealed segments of one partition (pausing after each so as to stay under
/// `bytes_per_sec`, when given), counts what it read and the damaged ranges it found, and
/// heals them from the tiered copy where there is one. Returns how many ranges it found.
pub(crate) async fn scrub_partition(
    p: &Partition,
    tiering: &Tiering,
    bytes_per_sec: Option<u64>,
    cancel: &CancellationToken,
) -> u64 {
    let mut found = 0u64;
    for (base, _) in p.log.sealed_bases() {
        let log = p.log.clone();
        let before = log
            .damaged_ranges()
            .iter()
            .filter(|d| d.segment_base == base)
            .count();
        let scrubbed = tokio::task::spawn_blocking(move || log.scrub_segment(base)).await;
        let bytes = match scrubbed {
            Ok(Ok(Some((bytes, damaged)))) => {
                found += damaged.len().saturating_sub(before) as u64;
                bytes
            }
            Ok(Ok(None)) => continue,
            Ok(Err(e)) => {
                warn!(partition = %p.tp, base_offset = base, error = %e, "scrub of a segment failed");
                continue;
            }
            Err(e) => {
                warn!(partition = %p.tp, base_offset = base, error = %e, "scrub task failed");
                continue;
            }
        };
        tiering
            .metrics
            .scrubbed_bytes
            .fetch_add(bytes, Ordering::Relaxed);
        if !pace(bytes, bytes_per_sec, cancel).await {
            return found;
        }
    }
    tiering
        .metrics
        .damaged_ranges_found
        .fetch_add(found, Ordering::Relaxed);
    if p.log.has_damage() && p.log.config().remote_storage {
        heal_from_tiered(p, tiering).await;
    }
    found
}

/// See the module docs. One per node.
#[derive(Debug)]
pub(crate) struct TieredScrubber {
    /// Time from the start of one pass to the start of the next; zero turns it off.
    pub(crate) interval: Duration,
    /// Read rate bound; 0 turns scrubbing off.
    pub(crate) bytes_per_sec: u64,
}

impl TieredScrubber {
    /// Tiered scrub passes until cancelled, the first at a random point of the first
    /// interval (module docs).
    pub(crate) async fn run(
        self,
        topics: Arc<RwLock<HashMap<String, Arc<TopicState>>>>,
        tiering: Arc<Tiering>,
        cancel: CancellationToken,
    ) {
        if self.bytes_per_sec == 0 || self.interval.is_zero() {
            return;
        }
        let jitter = self
            .interval
            .mul_f64((uuid::Uuid::new_v4().as_u128() % 1000) as f64 / 1000.0);
        let rate = Some(self.bytes_per_sec);
        let first = tokio::time::Instant::now() + jitter;
        passes(first, self.interval, &topics, &cancel, |p| {
            let (tiering, cancel) = (tiering.clone(), cancel.clone());
            async move {
                scrub_tiered_partition(&p, &tiering, rate, &cancel).await;
            }
        })
        .await;
    }
}

/// Scrubs the tiered segments of `p` if this node leads it (pausing after each so as to stay
/// under `bytes_per_sec`, when given). Returns how many damaged segments it found.
pub(crate) async fn scrub_tiered_partition(
    p: &Partition,
    tiering: &Tiering,
    bytes_per_sec: Option<u64>,
    cancel: &CancellationToken,
) -> u64 {
    if !matches!(p.upload_gate(), UploadGate::Lead { .. }) {
        // What this node found as leader is the new leader's to find again.
        p.remote.clear_tiered_damage();
        return 0;
    }
    let listed = match tiering
        .manifest
        .list_revisioned(p.remote.topic_id, p.remote.partition)
        .await
    {
        Ok(listed) => listed,
        Err(e) => {
            warn!(partition = %p.tp, error = %e, "tiered scrub: listing the manifest failed");
            return 0;
        }
    };
    let mut found = 0;
    for seg in listed {
        if cancel.is_cancelled() || p.cancel.is_cancelled() {
            break;
        }
        // Leadership is asked again for each segment: a deposed leader stops.
        let lead = p.upload_gate();
        let report = match p.remote.scrub_tiered(&p.log, tiering, lead, &seg).await {
            Ok(Some(report)) => report,
            Ok(None) => break,
            Err(e) => {
                warn!(partition = %p.tp, base_offset = seg.segment.base_offset, error = %e, "tiered scrub of a segment failed; the next pass tries again");
                continue;
            }
        };
        if report.outcome != tierlog_tiering::remote::TieredScrub::Intact {
            found += 1;
        }
        if !pace(report.bytes, bytes_per_sec, cancel).await {
            break;
        }
    }
    found
}

/// Quarantined ranges of `p` that object storage does not hold (for `/metrics`).
pub(crate) fn untiered_damage(p: &Partition) -> u64 {
    if !p.log.has_damage() {
        return 0;
    }
    let end = p.remote.end().unwrap_or(i64::MIN);
    p.log
        .damaged_ranges()
        .iter()
        .filter(|d| d.last_offset >= end || p.remote.segment_for(d.first_offset).is_none())
        .count() as u64
}
