//! The segment manifest: which sealed segments of a partition live in object storage.
//!
//! A segment counts as tiered only once its entry is here; the uploader writes the entry after
//! every object of the segment is durable, with a create-only put, so one base offset is
//! recorded once however many uploads race (a deposed leader's upload is never recorded).
//! Remote retention deletes the entry first and the objects after, so a reader never finds an
//! entry without its objects.
//!
//! Keys: `/tierlog/manifest/<topic id>/<partition>/<base offset, 20 digits>` → JSON
//! [`RemoteSegment`], so a prefix list returns a partition's segments in offset order; and
//! `/tierlog/log-start/<topic id>/<partition>` → the partition's log start offset as moved by
//! DeleteRecords (absent = not moved).
//!
//! Tiered compaction adds two more:
//!
//! - `/tierlog/remote-clean/<topic id>/<partition>` → JSON [`RemoteCleanCheckpoint`]: where the
//!   remote cleaner's next dirty range starts, and when kept tombstones need another pass.
//! - `/tierlog/retired/<topic id>/<partition>/<base offset, 20 digits>-<upload id>` → JSON
//!   [`RetiredObjects`]: objects of segments a compaction replaced, kept for a grace period
//!   (in-flight readers, other nodes' stale views) and counted as referenced by the orphan
//!   sweep until the reaper deletes them.
//!
//! A compaction swaps its result in with [`ManifestRegistry::replace`]: one transaction that
//! checks every replaced entry is unchanged since it was listed
//! ([`ManifestRegistry::list_revisioned`]) and the leader guard holds, then deletes the
//! replaced entries, puts the new one, records the replaced objects as retired and (optionally)
//! moves the checkpoint.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Result};
use crate::registry::{decode_json, encode_json};
use crate::store::{Compare, MetadataStore, MetadataStoreExt, Op, Precondition};
use crate::types::TopicId;

const MANIFEST_PREFIX: &str = "/tierlog/manifest/";
const LOG_START_PREFIX: &str = "/tierlog/log-start/";
const REMOTE_CLEAN_PREFIX: &str = "/tierlog/remote-clean/";
const RETIRED_PREFIX: &str = "/tierlog/retired/";

/// One tiered segment: where its objects are and what they hold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RemoteSegment {
    /// First offset in the segment.
    pub base_offset: i64,
    /// One past the last offset in the segment.
    pub end_offset: i64,
    /// Bytes of record batches (the size of the data object).
    pub size_bytes: u64,
    /// Timestamp of the first batch (its first timestamp), for time-based lookups.
    pub first_timestamp: i64,
    /// Largest record timestamp in the segment; time retention compares against it.
    pub max_timestamp: i64,
    /// Leader epoch of the node that uploaded it (also part of the object keys).
    pub leader_epoch: i32,
    /// Object key of the batches, exactly the local segment file's bytes.
    pub data_key: String,
    /// Object key of the sparse offset index (the local `.index` file's bytes).
    pub index_key: String,
    /// Object key of the time index (the local `.timeindex` file's bytes).
    pub time_index_key: String,
    /// Size of the chunks `chunk_crcs` covers; the last chunk may be shorter.
    pub chunk_size: u32,
    /// CRC-32 (`crc32fast`) of each `chunk_size` chunk of the data object, so every ranged
    /// read can be verified.
    pub chunk_crcs: Vec<u32>,
    /// CRC-32 of the whole offset index object.
    pub index_crc: u32,
    /// CRC-32 of the whole time index object.
    pub time_index_crc: u32,
    /// When the upload was recorded (ms since the epoch).
    pub uploaded_ms: i64,
}

impl RemoteSegment {
    /// Whether `offset` falls inside this segment.
    pub fn contains(&self, offset: i64) -> bool {
        self.base_offset <= offset && offset < self.end_offset
    }
}

/// A manifest entry with the revision it was last modified at: what a compare-and-swap on
/// it ([`ManifestRegistry::replace`]) expects.
#[derive(Debug, Clone, PartialEq)]
pub struct RevisionedSegment {
    /// The entry.
    pub segment: RemoteSegment,
    /// Its key's `mod_revision` when it was listed.
    pub mod_revision: u64,
}

/// The remote cleaner's progress for one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RemoteCleanCheckpoint {
    /// Tiered segments ending after this offset are dirty (not yet in a key map).
    pub first_dirty: i64,
    /// The earliest delete horizon of the tombstones and markers the last pass kept: the
    /// tiered range needs cleaning again then, dirty or not (KIP-534).
    pub next_delete_horizon: Option<i64>,
}

/// Objects a compaction replaced, waiting out their grace period before deletion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetiredObjects {
    /// Every object key of the replaced segments (optional ones included; they may not exist).
    pub keys: Vec<String>,
    /// When they were replaced (ms since the epoch).
    pub retired_ms: i64,
}

/// One retired-objects record, as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetiredRecord {
    /// Its name within the partition: `<base offset, 20 digits>-<upload id>`.
    pub name: String,
    /// What it holds.
    pub objects: RetiredObjects,
    /// Its key's `mod_revision`.
    pub mod_revision: u64,
}

/// A compaction's swap of a run of adjacent manifest entries for one entry
/// ([`ManifestRegistry::replace`]).
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentSwap {
    /// The entries replaced, each with the revision it was listed at; adjacent, in offset
    /// order. The first one's base offset is the new entry's.
    pub replaced: Vec<RevisionedSegment>,
    /// The entry that takes their place.
    pub new: RemoteSegment,
    /// Name of the retired-objects record (`<base offset, 20 digits>-<upload id>`).
    pub retired_name: String,
    /// The replaced objects.
    pub retired: RetiredObjects,
    /// The cleaner checkpoint to store with the swap, if it moves now.
    pub checkpoint: Option<RemoteCleanCheckpoint>,
}

/// The manifest of every partition, over a [`MetadataStore`].
#[derive(Debug, Clone)]
pub struct ManifestRegistry {
    store: Arc<dyn MetadataStore>,
    /// Compares every [`record`](Self::record) also requires (see [`guarded`](Self::guarded)).
    guard: Arc<[Compare]>,
}

impl ManifestRegistry {
    /// A registry over `store`.
    pub fn new(store: Arc<dyn MetadataStore>) -> Self {
        ManifestRegistry {
            store,
            guard: Arc::from(Vec::new()),
        }
    }

    /// This registry, with [`record`](Self::record) writing only while every compare in
    /// `guard` holds, in the same transaction: a leader passes "the partition state is still
    /// the revision I lead at", so an upload by a deposed leader is never recorded.
    pub fn guarded(&self, guard: Vec<Compare>) -> ManifestRegistry {
        ManifestRegistry {
            store: self.store.clone(),
            guard: Arc::from(guard),
        }
    }

    fn prefix(topic: TopicId, partition: i32) -> String {
        format!("{MANIFEST_PREFIX}{}/{partition}/", topic.simple())
    }

    fn key(topic: TopicId, partition: i32, base_offset: i64) -> String {
        format!("{}{base_offset:020}", Self::prefix(topic, partition))
    }

    fn log_start_key(topic: TopicId, partition: i32) -> String {
        format!("{LOG_START_PREFIX}{}/{partition}", topic.simple())
    }

    fn clean_key(topic: TopicId, partition: i32) -> String {
        format!("{REMOTE_CLEAN_PREFIX}{}/{partition}", topic.simple())
    }

    fn retired_prefix(topic: TopicId, partition: i32) -> String {
        format!("{RETIRED_PREFIX}{}/{partition}/", topic.simple())
    }

    /// The partition's tiered segments in offset order, each with its `mod_revision` (what
    /// [`replace`](Self::replace) compares).
    pub async fn list_revisioned(
        &self,
        topic: TopicId,
        partition: i32,
    ) -> Result<Vec<RevisionedSegment>> {
        self.store
            .list(&Self::prefix(topic, partition))
            .await?
            .iter()
            .map(|kv| {
                Ok(RevisionedSegment {
                    segment: decode_json(kv)?,
                    mod_revision: kv.mod_revision,
                })
            })
            .collect()
    }

    /// Swaps a run of adjacent entries for one (a compacted group), atomically: only if every
    /// replaced entry is still at the revision it was listed at (not removed by retention, not
    /// replaced by another compaction) and the [guard](Self::guarded) holds (a deposed
    /// leader's rewrite is never recorded). In one transaction it deletes the replaced
    /// entries, puts `swap.new` at the first one's base offset, records the retired objects
    /// and, when given, the cleaner checkpoint.
    ///
    /// [`ErrorKind::Conflict`] when a compare failed (nothing changed): the error's key names
    /// the first replaced entry that changed, or the guard's key when they all still hold.
    /// [`ErrorKind::Invalid`] for a swap that is not a run of entries starting at the new
    /// entry's base offset and ending at its end offset.
    pub async fn replace(&self, topic: TopicId, partition: i32, swap: &SegmentSwap) -> Result<()> {
        let (Some(first), Some(last)) = (swap.replaced.first(), swap.replaced.last()) else {
            return Err(Error::invalid("a segment swap replaces at least one entry"));
        };
        let adjacent = swap
            .replaced
            .windows(2)
            .all(|w| w[0].segment.end_offset <= w[1].segment.base_offset);
        if first.segment.base_offset != swap.new.base_offset
            || last.segment.end_offset != swap.new.end_offset
            || !adjacent
        {
            return Err(Error::invalid(format!(
                "segment swap of {}..{} does not cover its {} replaced entries in order",
                swap.new.base_offset,
                swap.new.end_offset,
                swap.replaced.len()
            )));
        }
        let new_key = Self::key(topic, partition, swap.new.base_offset);
        let mut compares: Vec<Compare> = swap
            .replaced
            .iter()
            .map(|r| {
                Compare::mod_revision(
                    Self::key(topic, partition, r.segment.base_offset),
                    r.mod_revision,
                )
            })
            .collect();
        compares.extend(self.guard.iter().cloned());
        let mut ops: Vec<Op> = swap.replaced[1..]
            .iter()
            .map(|r| Op::delete(Self::key(topic, partition, r.segment.base_offset)))
            .collect();
        ops.push(Op::put(&new_key, encode_json(&new_key, &swap.new)?));
        let retired_key = format!(
            "{}{}",
            Self::retired_prefix(topic, partition),
            swap.retired_name
        );
        ops.push(Op::put(
            &retired_key,
            encode_json(&retired_key, &swap.retired)?,
        ));
        if let Some(cp) = &swap.checkpoint {
            let key = Self::clean_key(topic, partition);
            ops.push(Op::put(&key, encode_json(&key, cp)?));
        }
        if self.store.txn(compares.clone(), ops).await?.succeeded {
            return Ok(());
        }
        // Say which compare failed: a changed entry, or else the guard.
        for c in &compares {
            let current = self.store.get(&c.key).await?;
            if !c.expect.holds(current.as_ref()) {
                return Err(Error::Conflict {
                    key: c.key.clone(),
                    expected: c.expect,
                });
            }
        }
        Err(Error::Conflict {
            key: new_key,
            expected: Precondition::ModRevision(first.mod_revision),
        })
    }

    /// The remote cleaner's checkpoint of a partition (`None`: never cleaned).
    pub async fn clean_checkpoint(
        &self,
        topic: TopicId,
        partition: i32,
    ) -> Result<Option<RemoteCleanCheckpoint>> {
        match self.store.get(&Self::clean_key(topic, partition)).await? {
            Some(kv) => decode_json(&kv).map(Some),
            None => Ok(None),
        }
    }

    /// Stores the remote cleaner's checkpoint, only while the [guard](Self::guarded) holds
    /// ([`ErrorKind::Conflict`] otherwise).
    pub async fn set_clean_checkpoint(
        &self,
        topic: TopicId,
        partition: i32,
        checkpoint: &RemoteCleanCheckpoint,
    ) -> Result<()> {
        let key = Self::clean_key(topic, partition);
        let value = encode_json(&key, checkpoint)?;
        let result = self
            .store
            .txn(self.guard.to_vec(), vec![Op::put(&key, value)])
            .await?;
        if result.succeeded {
            return Ok(());
        }
        let guard = self.guard.first().map(|c| (c.key.clone(), c.expect));
        let (key, expected) = guard.unwrap_or((key, Precondition::Any));
        Err(Error::Conflict { key, expected })
    }

    /// The partition's retired-objects records, oldest base offset first.
    pub async fn list_retired(&self, topic: TopicId, partition: i32) -> Result<Vec<RetiredRecord>> {
        let prefix = Self::retired_prefix(topic, partition);
        self.store
            .list(&prefix)
            .await?
            .iter()
            .map(|kv| {
                Ok(RetiredRecord {
                    name: kv.key.strip_prefix(&prefix).unwrap_or(&kv.key).to_string(),
                    objects: decode_json(kv)?,
                    mod_revision: kv.mod_revision,
                })
            })
            .collect()
    }

    /// Removes a retired-objects record once its objects are deleted (only if unchanged since
    /// listed). Returns whether it was removed.
    pub async fn remove_retired(
        &self,
        topic: TopicId,
        partition: i32,
        record: &RetiredRecord,
    ) -> Result<bool> {
        let key = format!("{}{}", Self::retired_prefix(topic, partition), record.name);
        Ok(self
            .store
            .txn(
                vec![Compare::mod_revision(&key, record.mod_revision)],
                vec![Op::delete(&key)],
            )
            .await?
            .succeeded)
    }

    /// Records a tiered segment. [`ErrorKind::AlreadyExists`] if a segment with this base
    /// offset is recorded already (another upload won; the caller's objects are garbage);
    /// [`ErrorKind::Conflict`] if a [guard](Self::guarded) failed (nothing was recorded).
    pub async fn record(
        &self,
        topic: TopicId,
        partition: i32,
        segment: &RemoteSegment,
    ) -> Result<()> {
        let key = Self::key(topic, partition, segment.base_offset);
        let value = encode_json(&key, segment)?;
        let mut compares = vec![Compare::absent(&key)];
        compares.extend(self.guard.iter().cloned());
        let result = self.store.txn(compares, vec![Op::put(&key, value)]).await?;
        if result.succeeded {
            return Ok(());
        }
        if self.store.get(&key).await?.is_some() {
            return Err(Error::already_exists(format!("tiered segment `{key}`")));
        }
        Err(Error::Conflict {
            key,
            expected: Precondition::Absent,
        })
    }

    /// The partition's tiered segments in offset order.
    pub async fn list(&self, topic: TopicId, partition: i32) -> Result<Vec<RemoteSegment>> {
        self.store
            .list(&Self::prefix(topic, partition))
            .await?
            .iter()
            .map(decode_json)
            .collect()
    }

    /// Every partition's tiered segments of a topic, in offset order, by partition: one read
    /// for a whole topic (opening thousands of partitions costs one request, not thousands).
    pub async fn list_topic(
        &self,
        topic: TopicId,
    ) -> Result<std::collections::HashMap<i32, Vec<RemoteSegment>>> {
        let prefix = format!("{MANIFEST_PREFIX}{}/", topic.simple());
        let mut out: std::collections::HashMap<i32, Vec<RemoteSegment>> = Default::default();
        for kv in self.store.list(&prefix).await? {
            let Some(partition) = kv.key[prefix.len()..]
                .split_once('/')
                .and_then(|(p, _)| p.parse().ok())
            else {
                continue;
            };
            out.entry(partition).or_default().push(decode_json(&kv)?);
        }
        // Keys sort by (partition text, base offset): each partition's entries are in order.
        Ok(out)
    }

    /// Every DeleteRecords log start of a topic's partitions, by partition, in one read.
    pub async fn log_starts(&self, topic: TopicId) -> Result<std::collections::HashMap<i32, i64>> {
        let prefix = format!("{LOG_START_PREFIX}{}/", topic.simple());
        let mut out = std::collections::HashMap::new();
        for kv in self.store.list(&prefix).await? {
            if let Ok(partition) = kv.key[prefix.len()..].parse() {
                out.insert(partition, decode_json(&kv)?);
            }
        }
        Ok(out)
    }

    /// Removes everything of a topic (its deletion): every partition's entries, log starts,
    /// remote cleaner checkpoints and retired records, in one transaction.
    pub async fn remove_topic(&self, topic: TopicId) -> Result<()> {
        let t = topic.simple();
        self.store
            .txn(
                vec![],
                [
                    MANIFEST_PREFIX,
                    LOG_START_PREFIX,
                    REMOTE_CLEAN_PREFIX,
                    RETIRED_PREFIX,
                ]
                .iter()
                .map(|p| Op::delete_prefix(format!("{p}{t}/")))
                .collect(),
            )
            .await
            .map(|_| ())
    }

    /// Removes one segment's entry (before its objects are deleted). Returns whether it existed.
    pub async fn remove(&self, topic: TopicId, partition: i32, base_offset: i64) -> Result<bool> {
        self.store
            .delete(&Self::key(topic, partition, base_offset))
            .await
    }

    /// Removes every entry, the log start, the remote cleaner checkpoint and the retired
    /// records of a partition (topic deletion).
    pub async fn remove_partition(&self, topic: TopicId, partition: i32) -> Result<()> {
        self.store
            .txn(
                vec![],
                vec![
                    Op::delete_prefix(Self::prefix(topic, partition)),
                    Op::delete(Self::log_start_key(topic, partition)),
                    Op::delete(Self::clean_key(topic, partition)),
                    Op::delete_prefix(Self::retired_prefix(topic, partition)),
                ],
            )
            .await
            .map(|_| ())
    }

    /// The log start offset DeleteRecords set, if any.
    pub async fn log_start(&self, topic: TopicId, partition: i32) -> Result<Option<i64>> {
        match self
            .store
            .get(&Self::log_start_key(topic, partition))
            .await?
        {
            Some(kv) => decode_json(&kv).map(Some),
            None => Ok(None),
        }
    }

    /// Moves the log start forward to `offset` (never back). Returns the log start now stored.
    pub async fn advance_log_start(
        &self,
        topic: TopicId,
        partition: i32,
        offset: i64,
    ) -> Result<i64> {
        let key = Self::log_start_key(topic, partition);
        loop {
            let current = self.store.get(&key).await?;
            let (stored, expect) = match &current {
                Some(kv) => (
                    decode_json::<i64>(kv)?,
                    Precondition::ModRevision(kv.mod_revision),
                ),
                None => (i64::MIN, Precondition::Absent),
            };
            if stored >= offset {
                return Ok(stored);
            }
            match self
                .store
                .put_if(&key, encode_json(&key, &offset)?, expect)
                .await
            {
                Ok(_) => return Ok(offset),
                Err(e) if e.kind() == ErrorKind::Conflict => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::memory::MemoryStore;

    fn seg(base: i64, end: i64) -> RemoteSegment {
        RemoteSegment {
            base_offset: base,
            end_offset: end,
            size_bytes: 100,
            first_timestamp: 1,
            max_timestamp: 2,
            leader_epoch: 0,
            data_key: format!("d/{base}"),
            index_key: format!("i/{base}"),
            time_index_key: format!("t/{base}"),
            chunk_size: 1 << 20,
            chunk_crcs: vec![7],
            index_crc: 1,
            time_index_crc: 2,
            uploaded_ms: 3,
        }
    }

    #[tokio::test]
    async fn a_guarded_record_needs_its_guard_to_hold() {
        let store: Arc<dyn MetadataStore> = Arc::new(MemoryStore::new());
        let rev = store.put("/lead", "epoch-1".into()).await.unwrap();
        let m = ManifestRegistry::new(store.clone());
        let t = TopicId::new_v4();
        let leader = m.guarded(vec![Compare::mod_revision("/lead", rev)]);
        leader.record(t, 0, &seg(0, 100)).await.unwrap();
        // Leadership moves on: the deposed leader's next upload is not recorded.
        store.put("/lead", "epoch-2".into()).await.unwrap();
        let err = leader.record(t, 0, &seg(100, 200)).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Conflict);
        assert_eq!(m.list(t, 0).await.unwrap(), vec![seg(0, 100)]);
        // A taken base offset is still AlreadyExists, guard or not.
        let err = leader.record(t, 0, &seg(0, 100)).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AlreadyExists);
    }

    #[tokio::test]
    async fn record_list_remove_in_offset_order() {
        let m = ManifestRegistry::new(Arc::new(MemoryStore::new()));
        let t = TopicId::new_v4();
        for (b, e) in [(200, 300), (0, 100), (100, 200)] {
            m.record(t, 0, &seg(b, e)).await.unwrap();
        }
        m.record(t, 1, &seg(0, 5)).await.unwrap();
        let bases: Vec<i64> = m
            .list(t, 0)
            .await
            .unwrap()
            .iter()
            .map(|s| s.base_offset)
            .collect();
        assert_eq!(bases, vec![0, 100, 200]);
        assert_eq!(
            m.record(t, 0, &seg(100, 150)).await.unwrap_err().kind(),
            ErrorKind::AlreadyExists
        );
        assert!(m.remove(t, 0, 0).await.unwrap());
        assert!(!m.remove(t, 0, 0).await.unwrap());
        assert_eq!(m.list(t, 0).await.unwrap().len(), 2);
        m.remove_partition(t, 0).await.unwrap();
        assert!(m.list(t, 0).await.unwrap().is_empty());
        assert_eq!(m.list(t, 1).await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn log_start_only_moves_forward() {
        let m = ManifestRegistry::new(Arc::new(MemoryStore::new()));
        let t = TopicId::new_v4();
        assert_eq!(m.log_start(t, 0).await.unwrap(), None);
        assert_eq!(m.advance_log_start(t, 0, 50).await.unwrap(), 50);
        assert_eq!(m.advance_log_start(t, 0, 10).await.unwrap(), 50);
        assert_eq!(m.advance_log_start(t, 0, 70).await.unwrap(), 70);
        assert_eq!(m.log_start(t, 0).await.unwrap(), Some(70));
        assert!(seg(0, 10).contains(9) && !seg(0, 10).contains(10));
    }

    fn swap_of(replaced: Vec<RevisionedSegment>, new: RemoteSegment, name: &str) -> SegmentSwap {
        SegmentSwap {
            retired: RetiredObjects {
                keys: replaced
                    .iter()
                    .map(|r| r.segment.data_key.clone())
                    .collect(),
                retired_ms: 9,
            },
            replaced,
            new,
            retired_name: name.into(),
            checkpoint: None,
        }
    }

    #[tokio::test]
    async fn replace_swaps_a_run_of_entries_atomically() {
        let store: Arc<dyn MetadataStore> = Arc::new(MemoryStore::new());
        let m = ManifestRegistry::new(store.clone());
        let t = TopicId::new_v4();
        for (b, e) in [(0, 100), (100, 200), (200, 300), (300, 400)] {
            m.record(t, 0, &seg(b, e)).await.unwrap();
        }
        let listed = m.list_revisioned(t, 0).await.unwrap();
        assert_eq!(listed.len(), 4);
        assert!(listed.iter().all(|r| r.mod_revision > 0));
        let mut new = seg(0, 300);
        new.data_key = "d/new".into();
        let mut swap = swap_of(listed[..3].to_vec(), new.clone(), "00000000000000000000-a");
        swap.checkpoint = Some(RemoteCleanCheckpoint {
            first_dirty: 300,
            next_delete_horizon: Some(77),
        });
        m.replace(t, 0, &swap).await.unwrap();
        assert_eq!(
            m.list(t, 0).await.unwrap(),
            vec![new.clone(), seg(300, 400)]
        );
        assert_eq!(m.clean_checkpoint(t, 0).await.unwrap(), swap.checkpoint);
        let retired = m.list_retired(t, 0).await.unwrap();
        assert_eq!(retired.len(), 1);
        assert_eq!(retired[0].name, "00000000000000000000-a");
        assert_eq!(retired[0].objects.keys, vec!["d/0", "d/100", "d/200"]);
        // the same swap again: its entries changed since listed
        let err = m.replace(t, 0, &swap).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Conflict);
        assert_eq!(m.list_retired(t, 0).await.unwrap().len(), 1);
        // a removed entry (retention) aborts a swap that read it
        let listed = m.list_revisioned(t, 0).await.unwrap();
        assert!(m.remove(t, 0, 300).await.unwrap());
        let err = m
            .replace(t, 0, &swap_of(listed.clone(), seg(0, 400), "x"))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("00000000000000000300"), "{err}");
        assert_eq!(m.list(t, 0).await.unwrap(), vec![new]);
        // swaps that are not a run covering the new entry are refused
        for bad in [seg(1, 300), seg(0, 299)] {
            let err = m
                .replace(t, 0, &swap_of(listed[..1].to_vec(), bad, "y"))
                .await
                .unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Invalid);
        }
        assert_eq!(
            m.replace(t, 0, &swap_of(vec![], seg(0, 1), "z"))
                .await
                .unwrap_err()
                .kind(),
            ErrorKind::Invalid
        );
        // a retired record goes only while unchanged
        let r = m.list_retired(t, 0).await.unwrap().remove(0);
        assert!(m.remove_retired(t, 0, &r).await.unwrap());
        assert!(!m.remove_retired(t, 0, &r).await.unwrap());
        // topic deletion takes the checkpoint and retired records along
        m.replace(
            t,
            0,
            &swap_of(m.list_revisioned(t, 0).await.unwrap(), seg(0, 300), "w"),
        )
        .await
        .unwrap();
        m.remove_partition(t, 0).await.unwrap();
        assert!(m.list_retired(t, 0).await.unwrap().is_empty());
        assert_eq!(m.clean_checkpoint(t, 0).await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_deposed_leader_cannot_swap_or_move_the_checkpoint() {
        let store: Arc<dyn MetadataStore> = Arc::new(MemoryStore::new());
        let rev = store.put("/lead", "epoch-1".into()).await.unwrap();
        let m = ManifestRegistry::new(store.clone());
        let t = TopicId::new_v4();
        for (b, e) in [(0, 100), (100, 200)] {
            m.record(t, 0, &seg(b, e)).await.unwrap();
        }
        let leader = m.guarded(vec![Compare::mod_revision("/lead", rev)]);
        let cp = RemoteCleanCheckpoint {
            first_dirty: 200,
            next_delete_horizon: None,
        };
        leader.set_clean_checkpoint(t, 0, &cp).await.unwrap();
        store.put("/lead", "epoch-2".into()).await.unwrap();
        let listed = leader.list_revisioned(t, 0).await.unwrap();
        let err = leader
            .replace(t, 0, &swap_of(listed, seg(0, 200), "n"))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Conflict);
        assert!(err.to_string().contains("/lead"), "{err}");
        assert_eq!(
            m.list(t, 0).await.unwrap(),
            vec![seg(0, 100), seg(100, 200)]
        );
        assert!(m.list_retired(t, 0).await.unwrap().is_empty());
        let moved = RemoteCleanCheckpoint {
            first_dirty: 0,
            ..cp
        };
        let err = leader.set_clean_checkpoint(t, 0, &moved).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Conflict);
        assert_eq!(m.clean_checkpoint(t, 0).await.unwrap(), Some(cp));
    }
}
