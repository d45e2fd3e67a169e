//! Producer ids: the cluster-wide counter behind Kafka's idempotent and transactional producers.
//!
//! Lifecycle: a node that answers InitProducerId does not go to the store for every producer.
//! It [allocates a block](ProducerIdRegistry::allocate_block) of consecutive ids, hands them
//! out from memory, and allocates the next block when the current one runs out (as Kafka's
//! `ProducerIdManager` does with `AllocateProducerIds`). Ids of a block that a node never hands
//! out (it stopped) are simply skipped: ids are unique, not dense.
//!
//! Key: `/tierlog/producer-ids/next` → JSON `{"next": <id>}`, the first id no block has
//! taken yet. Absent means 0, so the first block starts at 0 as in Kafka. Every allocation is a
//! compare-and-swap on that one key, so two allocators never get overlapping blocks.

use std::ops::Range;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::registry::{MAX_CAS_ATTEMPTS, decode_json, encode_json};
use crate::store::{Compare, MetadataStore, Op, Precondition};

/// The producer-id counter's key.
pub const PRODUCER_IDS_KEY: &str = "/tierlog/producer-ids/next";

/// The stored counter: the first producer id no block has taken.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct NextProducerId {
    /// Not negative; blocks so far cover `0..next`.
    next: i64,
}

/// Hands out blocks of producer ids, unique across the cluster, under
/// `/tierlog/producer-ids/next`.
///
/// ```
/// use std::sync::Arc;
/// use tierlog_metadata::{ErrorKind, MemoryStore, ProducerIdRegistry};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> tierlog_metadata::Result<()> {
/// let ids = ProducerIdRegistry::new(Arc::new(MemoryStore::new()));
/// assert_eq!(ids.allocate_block(1000).await?, 0..1000);
/// assert_eq!(ids.allocate_block(10).await?, 1000..1010);
/// assert_eq!(ids.allocate_block(0).await.unwrap_err().kind(), ErrorKind::Invalid);
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct ProducerIdRegistry {
    store: Arc<dyn MetadataStore>,
}

impl ProducerIdRegistry {
    /// A registry over `store`.
    pub fn new(store: Arc<dyn MetadataStore>) -> Self {
        Self { store }
    }

    /// Takes the next `size` consecutive producer ids: no other call, on any node, ever gets
    /// any of them. Blocks follow each other (the first starts at 0), but a caller must not
    /// rely on that: another node may take the block in between.
    ///
    /// A read, then a compare-and-swap on the counter's mod revision, re-read after each lost
    /// race. Not cancel-safe in one way only: a cancelled call may have taken a block it never
    /// returns (those ids are skipped, never handed out twice).
    ///
    /// [`ErrorKind::Invalid`](crate::ErrorKind::Invalid) if `size` is not positive;
    /// [`ErrorKind::Internal`](crate::ErrorKind::Internal) if the ids up to `i64::MAX` are
    /// spent; [`ErrorKind::Data`](crate::ErrorKind::Data) if the counter does not decode or is
    /// negative; [`ErrorKind::Conflict`](crate::ErrorKind::Conflict) after
    /// 1000 lost races in a row.
    pub async fn allocate_block(&self, size: i64) -> Result<Range<i64>> {
        if size <= 0 {
            return Err(Error::invalid(format!(
                "producer id block size must be positive, got {size}"
            )));
        }
        let key = PRODUCER_IDS_KEY;
        for _ in 0..MAX_CAS_ATTEMPTS {
            let (start, expect) = match self.store.get(key).await? {
                None => (0, Precondition::Absent),
                Some(kv) => {
                    let stored: NextProducerId = decode_json(&kv)?;
                    if stored.next < 0 {
                        return Err(Error::Corrupt {
                            key: key.to_owned(),
                            message: format!("next producer id is negative: {}", stored.next),
                        });
                    }
                    (stored.next, Precondition::ModRevision(kv.mod_revision))
                }
            };
            let Some(end) = start.checked_add(size) else {
                return Err(Error::internal(format!(
                    "producer ids exhausted: next={start}, requested block size={size}"
                )));
            };
            let value = encode_json(key, &NextProducerId { next: end })?;
            let result = self
                .store
                .txn(vec![Compare::new(key, expect)], vec![Op::put(key, value)])
                .await?;
            if result.succeeded {
                return Ok(start..end);
            }
            tracing::trace!(
                start,
                size,
                "producer id allocation raced another node; re-reading"
            );
        }
        Err(Error::Conflict {
            key: key.to_owned(),
            expected: Precondition::Any,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance;
    use crate::embedded::EmbeddedStore;
    use crate::memory::MemoryStore;

    #[tokio::test]
    async fn producer_ids_memory() {
        conformance::producer_ids(Arc::new(MemoryStore::new())).await;
    }

    #[tokio::test]
    async fn producer_ids_embedded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = EmbeddedStore::open(&dir.path().join("metadata.redb")).expect("open");
        conformance::producer_ids(Arc::new(store)).await;
    }

    /// Many tasks on a multi-threaded runtime, racing for blocks of different sizes: the
    /// blocks are disjoint and together cover `0..total` exactly.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_blocks_never_overlap() {
        let ids = ProducerIdRegistry::new(Arc::new(MemoryStore::new()));
        let mut tasks = tokio::task::JoinSet::new();
        for t in 0..32_i64 {
            let ids = ids.clone();
            tasks.spawn(async move {
                let mut blocks = Vec::new();
                for i in 0..25 {
                    blocks.push(ids.allocate_block(1 + (t + i) % 7).await.expect("allocate"));
                }
                blocks
            });
        }
        let mut blocks: Vec<Range<i64>> = tasks.join_all().await.into_iter().flatten().collect();
        assert_eq!(blocks.len(), 32 * 25);
        let next = conformance::assert_contiguous(&mut blocks, 0);
        assert_eq!(ids.allocate_block(1).await.expect("after"), next..next + 1);
    }

    #[tokio::test]
    async fn corrupt_or_exhausted_counter() {
        use crate::store::MetadataStoreExt;
        let store = Arc::new(MemoryStore::new());
        let ids = ProducerIdRegistry::new(store.clone());
        store
            .put(PRODUCER_IDS_KEY, "{\"next\":-5}".into())
            .await
            .expect("put");
        let err = ids.allocate_block(1).await.expect_err("negative");
        assert_eq!(err.kind(), crate::ErrorKind::Data);
        store
            .put(PRODUCER_IDS_KEY, "not json".into())
            .await
            .expect("put");
        let err = ids.allocate_block(1).await.expect_err("garbage");
        assert_eq!(err.kind(), crate::ErrorKind::Data);
        let near_end = format!("{{\"next\":{}}}", i64::MAX - 10);
        store
            .put(PRODUCER_IDS_KEY, near_end.into())
            .await
            .expect("put");
        assert_eq!(
            ids.allocate_block(10).await.expect("last block"),
            i64::MAX - 10..i64::MAX
        );
        let err = ids.allocate_block(1).await.expect_err("exhausted");
        assert_eq!(err.kind(), crate::ErrorKind::Internal);
        assert_eq!(
            ids.allocate_block(-1).await.expect_err("size").kind(),
            crate::ErrorKind::Invalid
        );
    }
}
