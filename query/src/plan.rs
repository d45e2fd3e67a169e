//! Planning: a topic, partitions and a [`Range`] become [`Split`]s, one per tiered segment.
//!
//! Offsets bound a range directly. A timestamp bound is resolved as Kafka's ListOffsets does:
//! to the first offset whose record timestamp is at or after it, found through the segment's
//! time index ([`RemoteReader::offset_for_timestamp`]); segments whose `max_timestamp` is
//! below it are pruned without reading anything. A range is half-open: `to` is exclusive.
//!
//! [`RemoteReader::offset_for_timestamp`]: tierlog_tiering::remote::reader::RemoteReader::offset_for_timestamp

use serde::{Deserialize, Serialize};
use tierlog_metadata::RemoteSegment;
use uuid::Uuid;

use crate::{Error, QueryContext, Result};

/// One end of a [`Range`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Bound {
    /// An offset.
    Offset(i64),
    /// A time (ms since the epoch): the first offset whose timestamp is at or after it.
    TimestampMs(i64),
}

/// A range of a partition's history: `[from, to)`, open ends meaning the whole tiered log.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Range {
    /// First offset (or time) included.
    pub from: Option<Bound>,
    /// First offset (or time) excluded.
    pub to: Option<Bound>,
}

/// One unit of parallel reading: one tiered segment clipped to the range. Serializable (it is
/// the Flight ticket).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Split {
    /// Topic name.
    pub topic: String,
    /// Topic id (a re-created topic of the same name is another topic).
    pub topic_id: Uuid,
    /// Partition.
    pub partition: i32,
    /// The tiered segment read.
    pub segment: RemoteSegment,
    /// First offset read.
    pub start_offset: i64,
    /// One past the last offset read.
    pub end_offset: i64,
    /// Rows expected (offsets in range; fewer when control records or compaction gaps).
    pub estimated_rows: u64,
    /// Bytes of the data object expected to be read.
    pub estimated_bytes: u64,
}

impl QueryContext {
    /// Splits covering `range` of `topic` (all partitions, or those listed), in partition then
    /// offset order. Only tiered segments are planned. An unknown topic or partition, or a
    /// range with `from` after `to` of the same kind, is [`Error::Invalid`].
    pub async fn plan(
        &self,
        topic: &str,
        partitions: Option<&[i32]>,
        range: &Range,
    ) -> Result<Vec<Split>> {
        let meta = self.topic(topic).await?;
        if let (Some(Bound::Offset(a)), Some(Bound::Offset(b)))
        | (Some(Bound::TimestampMs(a)), Some(Bound::TimestampMs(b))) = (range.from, range.to)
            && a > b
        {
            return Err(Error::invalid(format!(
                "range starts after it ends ({a} > {b})"
            )));
        }
        let parts: Vec<i32> = match partitions {
            None => (0..meta.partitions).collect(),
            Some(p) => {
                let mut p = p.to_vec();
                p.sort_unstable();
                p.dedup();
                if let Some(bad) = p.iter().find(|&&p| p < 0 || p >= meta.partitions) {
                    return Err(Error::invalid(format!(
                        "topic `{topic}` has no partition {bad} (it has {})",
                        meta.partitions
                    )));
                }
                p
            }
        };
        let mut splits = Vec::new();
        for p in parts {
            let segs = self.manifest.list(meta.id, p).await?;
            let Some(start) = self.resolve(&segs, range.from).await? else {
                continue;
            };
            let end = match range.to {
                None => i64::MAX,
                to => self.resolve(&segs, to).await?.unwrap_or(i64::MAX),
            };
            for seg in segs {
                let s = start.max(seg.base_offset);
                let e = end.min(seg.end_offset);
                if s >= e {
                    continue;
                }
                let span = (seg.end_offset - seg.base_offset).max(1) as u128;
                let bytes = (seg.size_bytes as u128 * (e - s) as u128 / span) as u64;
                splits.push(Split {
                    topic: meta.name.clone(),
                    topic_id: meta.id,
                    partition: p,
                    start_offset: s,
                    end_offset: e,
                    estimated_rows: (e - s) as u64,
                    estimated_bytes: bytes,
                    segment: seg,
                });
            }
        }
        Ok(splits)
    }

    /// The offset `bound` names in a partition with tiered `segs`: `Some(i64::MIN)` for none
    /// (an open start), `None` when a time is past every record (nothing at or after it).
    async fn resolve(&self, segs: &[RemoteSegment], bound: Option<Bound>) -> Result<Option<i64>> {
        match bound {
            None => Ok(Some(i64::MIN)),
            Some(Bound::Offset(o)) => Ok(Some(o)),
            Some(Bound::TimestampMs(t)) => {
                for seg in segs.iter().filter(|s| s.max_timestamp >= t) {
                    if let Some(found) = self.reader.offset_for_timestamp(seg, t).await? {
                        return Ok(Some(found.offset));
                    }
                }
                Ok(None)
            }
        }
    }
}
