//! The log's side of idempotent and transactional producers (the state machine itself is in
//! `producer.rs`): transaction markers, the readers' view (first unstable offset, aborted
//! transactions, DescribeProducers), producer expiry, and the snapshots that persist the state.
//!
//! Snapshots: `<offset, 20 digits>.snapshot` holds the state as of `offset` (every batch below
//! it applied, none at or after it). One is written at each roll (at the new segment's base)
//! and at close (at the log end). On open and after a truncation the state is rebuilt from the
//! newest readable snapshot at or below the log end plus the batch headers after it (the whole
//! local log when there is none); a snapshot that fails its checks is deleted with a warning,
//! and those above the log end too. Snapshots below the log start and all but the newest
//! [`MAX_SNAPSHOTS`] are deleted whenever one is written and when the log start moves.

use super::*;

/// Suffix of producer-state snapshot files.
pub(crate) const SNAPSHOT_SUFFIX: &str = "snapshot";
/// Snapshots kept (the newest ones): enough for the uploader to ship one with each recently
/// sealed segment.
const MAX_SNAPSHOTS: usize = 5;
const SNAPSHOT_TMP: &str = "producer-snapshot.tmp";

impl PartitionLog {
    /// Writes a transaction marker (see [`crate::control_batch`]) for `producer_id` at the log
    /// end, as the transaction coordinator's WriteTxnMarkers asks the partition leader to.
    ///
    /// Ends the producer's ongoing transaction: for [`ControlType::Abort`], an
    /// [`AbortedTxn`] (from the transaction's first offset to the marker) is added to the
    /// active segment's transaction index. A marker for a producer with no ongoing transaction
    /// is still written (without an index entry). [`Error::InvalidProducerEpoch`] if
    /// `producer_epoch` is older than the producer's; a newer one becomes its epoch.
    pub fn append_control(
        &self,
        producer_id: i64,
        producer_epoch: i16,
        control: ControlType,
        coordinator_epoch: i32,
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<AppendResult> {
        let bytes = crate::producer::control_batch(
            producer_id,
            producer_epoch,
            control,
            coordinator_epoch,
            now_ms,
        );
        let batches = batch::validate_from(&bytes, u32::MAX, Origin::Replication)?;
        let buf = BytesMut::from(&bytes[..]);
        self.append_patched(
            buf,
            &batches,
            1,
            leader_epoch,
            now_ms,
            false,
            Some((control, coordinator_epoch)),
        )
    }

    /// The smallest first offset of the ongoing transactions, if any: the last stable offset
    /// (what `read_committed` consumers may read up to) is the smaller of this and the high
    /// watermark.
    pub fn first_unstable_offset(&self) -> Option<i64> {
        lock(&self.producers).first_unstable_offset()
    }

    /// The aborted transactions overlapping `[from, upper)` (`last_offset >= from` and
    /// `first_offset < upper`), from the transaction indexes of the segment holding `from` and
    /// the later ones, as Kafka's `collectAbortedTransactions` (a Fetch at `from` whose
    /// response ends below `upper`). Transactions whose markers were deleted with their
    /// segments are not reported.
    pub fn aborted_transactions(&self, from: i64, upper: i64) -> Result<Vec<AbortedTxn>> {
        let metas = rlock(&self.shared).segments.clone();
        let first = metas
            .partition_point(|m| m.seg.base_offset <= from)
            .saturating_sub(1);
        let mut out = Vec::new();
        for m in &metas[first.min(metas.len())..] {
            if m.seg.collect_aborted(from, upper, &mut out) {
                break;
            }
        }
        Ok(out)
    }

    /// Whether `producer_id` has a transaction open in this partition (a transactional batch
    /// written and no marker yet).
    pub fn in_transaction(&self, producer_id: i64) -> bool {
        lock(&self.producers).in_transaction(producer_id)
    }

    /// Producer id → last offset of its last batch in its current epoch, for every producer
    /// the state tracks: the batches log compaction keeps (possibly emptied) so the producer's
    /// last sequence survives. Tiered compaction takes it from the hot log, whose state
    /// covers the whole log.
    pub fn producer_last_offsets(&self) -> std::collections::HashMap<i64, i64> {
        lock(&self.producers).last_data_offsets()
    }

    /// Every producer this partition knows (DescribeProducers), by producer id.
    pub fn producers(&self) -> Vec<ProducerEntry> {
        lock(&self.producers).entries()
    }

    /// Forgets the producers with no ongoing transaction whose last write is at least
    /// `expiration_ms` older than `now_ms` (Kafka's `producer.id.expiration.ms`, default 1
    /// day); a later write from one is accepted at any sequence. Returns how many went.
    pub fn expire_producers(&self, now_ms: i64, expiration_ms: i64) -> usize {
        let _w = lock(&self.writer);
        lock(&self.producers).expire(now_ms, expiration_ms)
    }

    /// Applies written batches to the producer state and records the aborted transactions
    /// their markers complete in `seg`'s transaction index. Caller holds `writer`.
    pub(super) fn apply_producers(
        &self,
        seg: &Segment,
        infos: impl Iterator<Item = BatchInfo>,
    ) -> Result<()> {
        let mut producers = lock(&self.producers);
        apply_all(&mut producers, seg, infos)
    }

    /// Writes the producer state as `<offset>.snapshot` (through a temp file and a rename;
    /// with `fsync`, durably), then prunes old snapshots. Caller holds `writer`, so the state
    /// is that of the log end, which must be `offset`.
    pub(super) fn write_producer_snapshot(&self, offset: i64, fsync: bool) -> Result<()> {
        let bytes = lock(&self.producers).encode_snapshot(offset);
        let tmp = self.dir.join(SNAPSHOT_TMP);
        let path = snapshot_path(&self.dir, offset);
        (|| {
            let mut f = File::create(&tmp)?;
            std::io::Write::write_all(&mut f, &bytes)?;
            if fsync {
                f.sync_all()?;
            }
            Ok(())
        })()
        .map_err(|e| Error::io("write producer snapshot", &tmp, e))?;
        fs::rename(&tmp, &path).map_err(|e| Error::io("rename producer snapshot", &path, e))?;
        if fsync {
            sync_dir(&self.dir)?;
        }
        self.prune_snapshots()
    }

    /// Deletes the snapshots below the log start, and all but the newest [`MAX_SNAPSHOTS`] —
    /// except, with remote storage, those of segments not yet tiered: each travels with its
    /// segment, so it stays until the segment is uploaded. (Those above the log end go in
    /// `rebuild_producers`, under `writer`: retention calls this without it, and a roll racing
    /// it may write one above the end it read.)
    pub(super) fn prune_snapshots(&self) -> Result<()> {
        let start = self.log_start_offset();
        let untiered_from = if self.config().remote_storage {
            self.tiered_end()
        } else {
            i64::MAX
        };
        let snapshots = list_snapshots(&self.dir)?;
        let kept = snapshots.iter().filter(|(o, _)| *o >= start).count();
        let mut excess = kept.saturating_sub(MAX_SNAPSHOTS);
        for (offset, path) in &snapshots {
            let keep = *offset >= start && {
                let old = excess > 0;
                excess = excess.saturating_sub(1);
                !old || *offset > untiered_from
            };
            if !keep {
                remove_snapshot(path)?;
            }
        }
        Ok(())
    }

    /// The snapshot file at `offset`, if there is one.
    pub(super) fn producer_snapshot_path(&self, offset: i64) -> Option<PathBuf> {
        Some(snapshot_path(&self.dir, offset)).filter(|p| p.exists())
    }

    /// Rebuilds the producer state (open, truncation): cuts every segment's transaction index
    /// at the segment's end, deletes the snapshots above the log end, loads the newest readable
    /// snapshot at or below it (`seed`, the bytes of a snapshot from elsewhere, competes with
    /// the local ones), and replays the batches after it, adding the transaction-index entries
    /// the markers imply that are missing. Caller holds `writer` (or is `open`).
    pub(super) fn rebuild_producers(&self, seed: Option<&[u8]>) -> Result<()> {
        let metas = rlock(&self.shared).segments.clone();
        let end = metas.last().map_or(0, |m| m.next_offset);
        for m in &metas {
            m.seg.truncate_txn(m.next_offset)?;
        }
        let mut best: Option<(i64, ProducerState)> = None;
        for (offset, path) in list_snapshots(&self.dir)?.into_iter().rev() {
            if offset > end {
                remove_snapshot(&path)?;
                continue;
            }
            if best.is_some() {
                continue;
            }
            let decoded = fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|b| ProducerState::decode_snapshot(&b));
            match decoded {
                Ok((o, state)) if o == offset => best = Some((o, state)),
                Ok((o, _)) => {
                    warn!(path = %path.display(), offset = o, "producer snapshot names another offset; deleting it");
                    remove_snapshot(&path)?;
                }
                Err(reason) => {
                    warn!(path = %path.display(), reason, "producer snapshot is unreadable; deleting it");
                    remove_snapshot(&path)?;
                }
            }
        }
        let mut seeded = false;
        if let Some(bytes) = seed {
            match ProducerState::decode_snapshot(bytes) {
                Ok((o, state)) if o <= end && best.as_ref().is_none_or(|(b, _)| o > *b) => {
                    best = Some((o, state));
                    seeded = true;
                }
                Ok(_) => {}
                Err(reason) => {
                    warn!(dir = %self.dir.display(), reason, "ignoring an unreadable producer snapshot")
                }
            }
        }
        let (from, mut state) = best.unwrap_or_default();
        let mut replayed = 0usize;
        for m in metas.iter().filter(|m| m.next_offset > from && m.size > 0) {
            let (mut reader, mut pos) = if from > m.seg.base_offset {
                // `None`: the segment's batches all end below `from` (a compacted tail).
                let Some((reader, pos, _)) = locate_opt(m, from, segment::CHUNK)? else {
                    continue;
                };
                (reader, pos)
            } else {
                (ChunkReader::new(&m.seg, m.size), 0)
            };
            while let Some((at, h)) = reader.next_header(pos)? {
                pos = at;
                if h.producer_id >= 0 && h.base_offset >= from {
                    let bytes = if h.is_control() {
                        reader.get(pos, h.size() as usize)?
                    } else {
                        &[]
                    };
                    replayed += 1;
                    apply_all(&mut state, &m.seg, BatchInfo::stored(&h, bytes).into_iter())?;
                }
                pos += h.size();
            }
        }
        debug!(dir = %self.dir.display(), snapshot = from, seeded, replayed, producers = state.len(), "rebuilt producer state");
        *lock(&self.producers) = state;
        if seeded {
            self.write_producer_snapshot(from, true)?;
        }
        self.prune_snapshots()
    }

    /// Forgets every producer and deletes every snapshot (the log restarts empty).
    pub(super) fn reset_producers(&self) -> Result<()> {
        *lock(&self.producers) = ProducerState::default();
        for (_, path) in list_snapshots(&self.dir)? {
            remove_snapshot(&path)?;
        }
        Ok(())
    }
}

fn apply_all(
    state: &mut ProducerState,
    seg: &Segment,
    infos: impl Iterator<Item = BatchInfo>,
) -> Result<()> {
    for info in infos {
        if let Some(t) = state.apply(&info) {
            seg.append_txn(t)?;
        }
    }
    Ok(())
}

fn snapshot_path(dir: &Path, offset: i64) -> PathBuf {
    dir.join(segment::file_name(offset, SNAPSHOT_SUFFIX))
}

/// The snapshot files in `dir`, by offset.
fn list_snapshots(dir: &Path) -> Result<Vec<(i64, PathBuf)>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| Error::io("list log directory", dir, e))? {
        let entry = entry.map_err(|e| Error::io("list log directory", dir, e))?;
        let name = entry.file_name();
        if let Some(offset) = name
            .to_str()
            .and_then(|n| segment::parse_name(n, SNAPSHOT_SUFFIX))
        {
            out.push((offset, entry.path()));
        }
    }
    out.sort_unstable();
    Ok(out)
}

fn remove_snapshot(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("delete producer snapshot", path, e)),
    }
}
