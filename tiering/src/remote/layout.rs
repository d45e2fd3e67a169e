//! Object keys of tiered segments.
//!
//! Keys are relative to the store's prefix (see [`super::store::open_object_store`]) and are a
//! pure function of what they name, so a reader, an offline batch job or an operator listing
//! the bucket can find a partition's objects without the manifest's help:
//!
//! ```text
//! topics/<topic>-<topic id, 32 hex>/<partition>/<base offset, 20 digits>-e<leader epoch>-<upload id, 32 hex>.log
//!                                                                                            .index
//!                                                                                            .timeindex
//!                                                                                            .txnindex
//!                                                                                            .snapshot
//! ```
//!
//! The last two are optional and not in the manifest entry (whose type predates them): a
//! segment has a `.txnindex` object only if it holds abort markers, and a `.snapshot` (the
//! producer state as of its end offset) only if the uploader had one. Their keys are derived
//! from the data key ([`txn_index_key`], [`producer_snapshot_key`]), and readers treat a
//! missing one as "none".
//!
//! - The topic id makes a deleted-and-recreated topic of the same name a different prefix; the
//!   name is there for humans.
//! - The zero-padded base offset makes a plain prefix listing come back in offset order.
//! - The leader epoch says which leader uploaded it (fencing is by the manifest's create-only
//!   entry; the epoch in the key is for humans and for garbage collection).
//! - The upload id is fresh per attempt, so two uploads of the same segment (a retry after a
//!   crash, or a deposed leader racing the new one) never write the same key: every put can be
//!   create-only, multipart uploads (which cannot be conditional) are safe, and the objects of
//!   the losing upload are garbage that never shadows the winner's.

use uuid::Uuid;

/// Suffix of the data object (the segment's record batches).
pub const DATA_SUFFIX: &str = "log";
/// Suffix of the offset index object.
pub const INDEX_SUFFIX: &str = "index";
/// Suffix of the time index object.
pub const TIME_INDEX_SUFFIX: &str = "timeindex";
/// Suffix of the transaction index object (optional).
pub const TXN_INDEX_SUFFIX: &str = "txnindex";
/// Suffix of the producer-state snapshot object (optional).
pub const PRODUCER_SNAPSHOT_SUFFIX: &str = "snapshot";

/// The three object keys of one uploaded segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentKeys {
    /// The record batches (the local `.log` file's bytes).
    pub data: String,
    /// The sparse offset index (the local `.index` file's bytes).
    pub index: String,
    /// The time index (the local `.timeindex` file's bytes).
    pub time_index: String,
    /// The transaction index (the local `.txnindex` file's bytes), if the segment has one.
    pub txn_index: String,
    /// The producer-state snapshot as of the segment's end offset, if uploaded.
    pub producer_snapshot: String,
}

impl SegmentKeys {
    /// All five keys, the optional ones included.
    pub fn all(&self) -> [&str; 5] {
        [
            &self.data,
            &self.index,
            &self.time_index,
            &self.txn_index,
            &self.producer_snapshot,
        ]
    }
}

/// The key of the transaction index object uploaded with the data object `data_key`.
pub fn txn_index_key(data_key: &str) -> String {
    sidecar_key(data_key, TXN_INDEX_SUFFIX)
}

/// The key of the producer snapshot object uploaded with the data object `data_key`.
pub fn producer_snapshot_key(data_key: &str) -> String {
    sidecar_key(data_key, PRODUCER_SNAPSHOT_SUFFIX)
}

fn sidecar_key(data_key: &str, suffix: &str) -> String {
    let stem = data_key
        .strip_suffix(DATA_SUFFIX)
        .and_then(|s| s.strip_suffix('.'))
        .unwrap_or(data_key);
    format!("{stem}.{suffix}")
}

/// Every object key of a recorded segment: the three in its entry and the two optional ones
/// derived from its data key (which may not exist).
pub fn recorded_keys(seg: &tierlog_metadata::RemoteSegment) -> [String; 5] {
    [
        seg.data_key.clone(),
        seg.index_key.clone(),
        seg.time_index_key.clone(),
        txn_index_key(&seg.data_key),
        producer_snapshot_key(&seg.data_key),
    ]
}

/// `topics/<topic>-<topic id>/`: every object of one topic is under it.
pub fn topic_prefix(topic: &str, topic_id: Uuid) -> String {
    format!("topics/{topic}-{}/", topic_id.simple())
}

/// `topics/<topic>-<topic id>/<partition>/`: every object of one partition is under it.
pub fn partition_prefix(topic: &str, topic_id: Uuid, partition: i32) -> String {
    format!("topics/{topic}-{}/{partition}/", topic_id.simple())
}

/// The keys of one upload of the segment starting at `base_offset`.
pub fn segment_keys(
    topic: &str,
    topic_id: Uuid,
    partition: i32,
    base_offset: i64,
    leader_epoch: i32,
    upload_id: Uuid,
) -> SegmentKeys {
    let stem = format!(
        "{}{base_offset:020}-e{leader_epoch}-{}",
        partition_prefix(topic, topic_id, partition),
        upload_id.simple()
    );
    SegmentKeys {
        data: format!("{stem}.{DATA_SUFFIX}"),
        index: format!("{stem}.{INDEX_SUFFIX}"),
        time_index: format!("{stem}.{TIME_INDEX_SUFFIX}"),
        txn_index: format!("{stem}.{TXN_INDEX_SUFFIX}"),
        producer_snapshot: format!("{stem}.{PRODUCER_SNAPSHOT_SUFFIX}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_carry_everything_and_sort_by_offset() {
        let topic_id = Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef);
        let upload = Uuid::from_u128(0xfeed);
        let k = segment_keys("orders", topic_id, 3, 4096, 7, upload);
        assert_eq!(
            k.data,
            "topics/orders-0123456789abcdef0123456789abcdef/3/\
             00000000000000004096-e7-0000000000000000000000000000feed.log"
        );
        assert!(
            k.index
                .ends_with("-e7-0000000000000000000000000000feed.index")
        );
        assert!(k.time_index.ends_with(".timeindex"));
        assert_eq!(txn_index_key(&k.data), k.txn_index);
        assert_eq!(producer_snapshot_key(&k.data), k.producer_snapshot);
        assert!(k.producer_snapshot.ends_with("feed.snapshot"));
        let prefix = partition_prefix("orders", topic_id, 3);
        assert!(k.data.starts_with(&prefix) && k.index.starts_with(&prefix));
        // zero padding: lexical order is offset order
        let a = segment_keys("orders", topic_id, 3, 999, 0, upload).data;
        let b = segment_keys("orders", topic_id, 3, 1000, 0, upload).data;
        assert!(a < b);
        // another upload of the same segment never collides
        assert_ne!(
            segment_keys("orders", topic_id, 3, 4096, 7, Uuid::new_v4()).data,
            k.data
        );
    }

    #[test]
    fn keys_are_valid_object_store_paths() {
        let k = segment_keys("a.b_c-d", Uuid::new_v4(), 0, 0, -1, Uuid::new_v4());
        for key in k.all() {
            let p = object_store::path::Path::parse(key).expect("valid path");
            assert_eq!(p.as_ref(), key);
        }
    }
}
