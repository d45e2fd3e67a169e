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
//! ```
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

/// The three object keys of one uploaded segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentKeys {
    /// The record batches (the local `.log` file's bytes).
    pub data: String,
    /// The sparse offset index (the local `.index` file's bytes).
    pub index: String,
    /// The time index (the local `.timeindex` file's bytes).
    pub time_index: String,
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
        for key in [&k.data, &k.index, &k.time_index] {
            let p = object_store::path::Path::parse(key).expect("valid path");
            assert_eq!(p.as_ref(), key.as_str());
        }
    }
}
