//! Committed history: which records of a split belong to aborted or still-open transactions.
//!
//! A read (by default [`Isolation::ReadCommitted`]) learns, before it decodes anything, a
//! [`TxnFilter`] for its split, computed from the split's partition alone so that splits stay
//! independent (Flight endpoints are read in parallel, possibly by other servers):
//!
//! - **Aborted transactions** over `[start, upper)`: from the tiered transaction indexes
//!   (`.txnindex`, Kafka's format) of the segment holding `start` and the later ones, as
//!   Kafka's `collectAbortedTransactions` (and `RemotePartition::aborted_transactions`) scan
//!   them; a transaction that starts in this split's segment and is aborted by a marker in a
//!   later one is found there. The scan stops at the first entry whose last stable offset
//!   reaches `upper` (Kafka's rule) or, so that a partition without aborts is not scanned to
//!   its end by every split, after the first segment whose producer snapshot shows no
//!   transaction begun below `upper` still open: every marker that matters is then behind.
//!   Usually that is the split's own segment: a split costs its own index and snapshot, plus
//!   one of each per later segment a transaction open at its end spans. The objects are tiny
//!   and read through the context's chunk cache (absence cached too), so splits of one
//!   partition share them. A segment uploaded before these objects existed has none: no
//!   aborts known there, and the scan goes on past it.
//! - **The last stable offset** of the tiered history: the first offset of the oldest
//!   transaction with no marker by the tiered end, read from the producer snapshot uploaded
//!   with the newest tiered segment (the producers' state as of the tiered end; one small
//!   object). Records at or past it are not committed (Kafka's LSO), transactional or not.
//!   When the newest segment has no snapshot (uploaded before snapshots were, or its local
//!   snapshot was already gone), no open transaction is known and nothing is clipped.
//!
//! A record at offset `o` of a transactional batch of producer `p` is aborted iff an aborted
//! transaction of `p` has `first_offset <= o <= last_offset`. A batch belongs to one
//! transaction, so the test runs once per batch, on its base offset, before decoding: an
//! aborted batch is skipped undecoded, any other batch is decoded as before. The lookup is a
//! binary search in a sorted vector (empty for most partitions), with no allocation.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tierlog_metadata::{ManifestRegistry, RemoteSegment};
use tierlog_tiering::AbortedTxn;
use tierlog_tiering::remote::layout::{producer_snapshot_key, txn_index_key};
use tierlog_tiering::remote::reader::RemoteReader;

use uuid::Uuid;

use crate::{Error, QueryContext, Result, Split};

/// Which records a read returns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Isolation {
    /// Committed history only (the default): records of aborted transactions are dropped and
    /// the read stops at the last stable offset (the first offset of the oldest transaction
    /// with no marker in the tiered history). Kafka's `read_committed`.
    #[default]
    ReadCommitted,
    /// Every record, aborted and open transactions included (Kafka's `read_uncommitted`); the
    /// audit columns ([`crate::schema::AUDIT_COLUMNS`]) tell them apart.
    ReadUncommitted,
}

impl std::str::FromStr for Isolation {
    type Err = Error;

    fn from_str(s: &str) -> Result<Isolation> {
        match s {
            "read_committed" => Ok(Isolation::ReadCommitted),
            "read_uncommitted" => Ok(Isolation::ReadUncommitted),
            other => Err(Error::invalid(format!(
                "unknown isolation `{other}` (read_committed or read_uncommitted)"
            ))),
        }
    }
}

/// What a split needs to know about transactions: the aborted ones in its range and the last
/// stable offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TxnFilter {
    /// `(producer id, first offset, last offset)` of aborted transactions, sorted.
    aborted: Vec<(i64, i64, i64)>,
    /// First offset not stable (`i64::MAX` when no transaction is open at the tiered end).
    pub(crate) last_stable_offset: i64,
}

impl TxnFilter {
    /// A filter that drops nothing.
    #[cfg(test)]
    pub(crate) fn none() -> TxnFilter {
        TxnFilter::new(Vec::new(), i64::MAX)
    }

    pub(crate) fn new(aborted: Vec<AbortedTxn>, last_stable_offset: i64) -> TxnFilter {
        let mut aborted: Vec<_> = aborted
            .into_iter()
            .map(|t| (t.producer_id, t.first_offset, t.last_offset))
            .collect();
        aborted.sort_unstable();
        aborted.dedup();
        TxnFilter {
            aborted,
            last_stable_offset,
        }
    }

    /// Whether offset `offset` of a transactional batch of `producer_id` is in an aborted
    /// transaction. A producer's transactions do not overlap, so the candidate is the last one
    /// starting at or before `offset`.
    pub(crate) fn is_aborted(&self, producer_id: i64, offset: i64) -> bool {
        if self.aborted.is_empty() {
            return false;
        }
        let i = self
            .aborted
            .partition_point(|&(p, first, _)| (p, first) <= (producer_id, offset));
        i > 0 && {
            let (p, _, last) = self.aborted[i - 1];
            p == producer_id && offset <= last
        }
    }

    /// Reads the filter of `split` from its partition's tiered transaction indexes and
    /// producer snapshots. `upper_at_lso`: collect aborts only below the last stable offset (a
    /// committed read stops there; an audit read wants the whole split).
    pub(crate) async fn load(
        reader: &RemoteReader,
        manifest: &ManifestRegistry,
        split: &Split,
        upper_at_lso: bool,
    ) -> Result<TxnFilter> {
        let mut segs = manifest.list(split.topic_id, split.partition).await?;
        segs.sort_unstable_by_key(|s| s.base_offset);
        let lso = match segs.last() {
            Some(newest) => first_unstable_at_end(reader, newest)
                .await?
                .unwrap_or(i64::MAX),
            None => i64::MAX,
        };
        let upper = if upper_at_lso {
            split.end_offset.min(lso)
        } else {
            split.end_offset
        };
        let from = split.start_offset;
        let mut aborted = Vec::new();
        if from >= upper {
            return Ok(TxnFilter::new(aborted, lso));
        }
        // The markers of the transactions with records in [from, upper) are at or after
        // `from`: in the segment holding it or a later one.
        let first = segs.partition_point(|s| s.end_offset <= from);
        for seg in &segs[first..] {
            let (entries, key) = transaction_index(reader, seg).await?;
            let mut stable_past_upper = false;
            for chunk in entries.chunks_exact(TXN_ENTRY) {
                let t = decode_entry(chunk).ok_or_else(|| Error::Decode {
                    key: key.clone(),
                    offset: seg.base_offset,
                    reason: "transaction index entry of an unknown version".into(),
                })?;
                if t.last_offset >= from && t.first_offset < upper {
                    aborted.push(t);
                }
                // Kafka's stop: once the log was stable past `upper`, every transaction
                // with records below it had ended
                stable_past_upper |= t.last_stable_offset >= upper;
            }
            if stable_past_upper {
                break;
            }
            // Our stop, which also holds when nothing aborts: no transaction begun below
            // `upper` is still open at this segment's end, so every marker that matters is in
            // this segment or an earlier one. Without a snapshot, go on (Kafka's scan).
            if let Some(unstable) = first_unstable_at_end(reader, seg).await?
                && unstable >= upper
            {
                break;
            }
        }
        Ok(TxnFilter::new(aborted, lso))
    }
}

impl QueryContext {
    /// The last stable offset of a partition's tiered history: the first offset of the oldest
    /// transaction with no marker by the tiered end (from the newest segment's producer
    /// snapshot), or `None` when none is open (or the newest segment has no snapshot). A
    /// committed read of a split stops there; `tierlog export` exports only the splits that
    /// end at or below it, so that a file, once written, never needs more rows.
    pub async fn last_stable_offset(&self, topic_id: Uuid, partition: i32) -> Result<Option<i64>> {
        let segs = self.manifest.list(topic_id, partition).await?;
        let Some(newest) = segs.iter().max_by_key(|s| s.base_offset) else {
            return Ok(None);
        };
        let lso = first_unstable_at_end(&self.reader, newest).await?;
        Ok(lso.filter(|&o| o != i64::MAX))
    }
}

/// The first offset of the oldest transaction open at the end of `seg` (`i64::MAX` when
/// none), from the producer snapshot uploaded with it; `None` when it has no snapshot.
async fn first_unstable_at_end(reader: &RemoteReader, seg: &RemoteSegment) -> Result<Option<i64>> {
    let key = producer_snapshot_key(&seg.data_key);
    let Some(snapshot) = reader.cache().optional_whole(reader.store(), &key).await? else {
        return Ok(None);
    };
    let oldest = oldest_open_transaction(&snapshot).map_err(|reason| Error::Decode {
        key,
        offset: seg.end_offset,
        reason,
    })?;
    Ok(Some(oldest.unwrap_or(i64::MAX)))
}

/// Bytes of one `.txnindex` entry (Kafka's `AbortedTxn`).
const TXN_ENTRY: usize = 34;

/// One `.txnindex` entry: version i16 (0), producer id, first, last and last stable offsets,
/// big-endian; `None` for another version.
fn decode_entry(b: &[u8]) -> Option<AbortedTxn> {
    let i64_at = |at: usize| Some(i64::from_be_bytes(b.get(at..at + 8)?.try_into().ok()?));
    if b.get(..2)? != [0, 0] {
        return None;
    }
    Some(AbortedTxn {
        producer_id: i64_at(2)?,
        first_offset: i64_at(10)?,
        last_offset: i64_at(18)?,
        last_stable_offset: i64_at(26)?,
    })
}

/// The transaction index of `seg` (empty when it has none) and its key.
async fn transaction_index(reader: &RemoteReader, seg: &RemoteSegment) -> Result<(Bytes, String)> {
    let key = txn_index_key(&seg.data_key);
    let bytes = reader
        .cache()
        .optional_whole(reader.store(), &key)
        .await?
        .unwrap_or_default();
    if !bytes.len().is_multiple_of(TXN_ENTRY) {
        return Err(Error::Decode {
            key,
            offset: seg.base_offset,
            reason: format!(
                "transaction index of {} bytes is not made of {TXN_ENTRY}-byte entries",
                bytes.len()
            ),
        });
    }
    Ok((bytes, key))
}
/// The smallest first offset of an ongoing transaction in a producer snapshot (tiering's
/// `TLPS` v1 format, `tiering/FORMAT.md`), or `None` when no transaction is ongoing. Only the
/// fields needed are read; the checksum is verified.
///
/// ```text
/// magic "TLPS" | version u16 = 1 | crc u32 (CRC-32C of the rest) | offset i64 | count u32
/// count × (producer_id i64, epoch i16, coordinator_epoch i32, last_timestamp i64,
///          txn_first_offset i64 (-1: none), batches u8, batches × 32 bytes)
/// ```
pub(crate) fn oldest_open_transaction(snapshot: &[u8]) -> std::result::Result<Option<i64>, String> {
    const CRC_END: usize = 10;
    const PRODUCER: usize = 8 + 2 + 4 + 8 + 8 + 1;
    const BATCH: usize = 32;
    if snapshot.len() < CRC_END + 12 || &snapshot[..4] != b"TLPS" {
        return Err(format!(
            "not a producer snapshot ({} bytes)",
            snapshot.len()
        ));
    }
    let be_u32 = |b: &[u8]| b.try_into().map(u32::from_be_bytes).ok();
    let version = u16::from_be_bytes([snapshot[4], snapshot[5]]);
    if version != 1 {
        return Err(format!("unknown producer snapshot version {version}"));
    }
    let stored = be_u32(&snapshot[6..CRC_END]).unwrap_or(0);
    let computed = crc32c::crc32c(&snapshot[CRC_END..]);
    if stored != computed {
        return Err(format!(
            "producer snapshot checksum mismatch: stored={stored:#010x}, computed={computed:#010x}"
        ));
    }
    let count = be_u32(&snapshot[CRC_END + 8..CRC_END + 12]).unwrap_or(0);
    let mut pos = CRC_END + 12;
    let mut oldest: Option<i64> = None;
    for _ in 0..count {
        let p = snapshot
            .get(pos..pos + PRODUCER)
            .ok_or("producer snapshot truncated")?;
        let first = i64::from_be_bytes(p[22..30].try_into().map_err(|_| "truncated")?);
        if first >= 0 {
            oldest = Some(oldest.map_or(first, |o| o.min(first)));
        }
        pos += PRODUCER + usize::from(p[30]) * BATCH;
    }
    if pos != snapshot.len() {
        return Err("producer snapshot length does not match its producers".into());
    }
    Ok(oldest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn txn(producer_id: i64, first_offset: i64, last_offset: i64) -> AbortedTxn {
        AbortedTxn {
            producer_id,
            first_offset,
            last_offset,
            last_stable_offset: last_offset + 1,
        }
    }

    #[test]
    fn aborted_ranges_are_per_producer_and_inclusive() {
        let f = TxnFilter::new(vec![txn(7, 10, 20), txn(3, 0, 4), txn(7, 30, 31)], 100);
        assert!(f.is_aborted(7, 10) && f.is_aborted(7, 20) && f.is_aborted(7, 31));
        assert!(!f.is_aborted(7, 9) && !f.is_aborted(7, 21) && !f.is_aborted(7, 32));
        assert!(f.is_aborted(3, 2) && !f.is_aborted(3, 10) && !f.is_aborted(8, 10));
        assert!(!TxnFilter::none().is_aborted(7, 10));
        assert_eq!(
            "read_uncommitted".parse::<Isolation>().ok(),
            Some(Isolation::ReadUncommitted)
        );
        assert!("dirty".parse::<Isolation>().is_err());
    }

    #[test]
    fn damaged_snapshots_are_errors() {
        assert!(oldest_open_transaction(b"nope").is_err());
        let mut s = b"TLPS\x00\x01".to_vec();
        s.extend_from_slice(&[0; 4 + 12]);
        assert!(oldest_open_transaction(&s).is_err(), "bad checksum");
        let crc = crc32c::crc32c(&s[10..]);
        s[6..10].copy_from_slice(&crc.to_be_bytes());
        assert_eq!(oldest_open_transaction(&s), Ok(None));
    }
}
