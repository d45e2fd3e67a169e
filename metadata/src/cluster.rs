//! Cluster-wide identity: the cluster id every node reports in Metadata responses.
//!
//! The first node to start on an empty store creates the id (put-if-absent); every later call,
//! on any node, reads the stored one. So concurrent first starts still agree.

use crate::error::{ErrorKind, Result};
use crate::registry::{decode_json, encode_json};
use crate::store::{MetadataStore, MetadataStoreExt, Precondition};

/// Where the cluster's identity lives.
const CLUSTER_KEY: &str = "/tierlog/cluster";

/// The cluster's identity, created once.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ClusterMeta {
    /// Kafka-style cluster id: a random UUID as 22 characters of unpadded URL-safe base64.
    pub cluster_id: String,
    /// When the cluster was created, milliseconds since the Unix epoch.
    pub created_ms: i64,
}

/// The cluster's metadata, creating it on first call.
pub async fn cluster_meta(store: &dyn MetadataStore) -> Result<ClusterMeta> {
    if let Some(kv) = store.get(CLUSTER_KEY).await? {
        return decode_json(&kv);
    }
    let fresh = ClusterMeta {
        cluster_id: new_cluster_id(),
        created_ms: now_ms(),
    };
    let value = encode_json(CLUSTER_KEY, &fresh)?;
    match store.put_if(CLUSTER_KEY, value, Precondition::Absent).await {
        Ok(_) => {
            tracing::info!(cluster_id = %fresh.cluster_id, "created cluster id");
            Ok(fresh)
        }
        // Another node created it between our read and write: theirs is the one.
        Err(e) if e.kind() == ErrorKind::Conflict => match store.get(CLUSTER_KEY).await? {
            Some(kv) => decode_json(&kv),
            None => Err(crate::Error::internal(
                "cluster id vanished right after a conflicting create",
            )),
        },
        Err(e) => Err(e),
    }
}

/// The cluster id: created randomly once (put-if-absent), the stored one thereafter.
///
/// ```
/// use tierlog_metadata::{cluster_id, MemoryStore};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> tierlog_metadata::Result<()> {
/// let store = MemoryStore::new();
/// let id = cluster_id(&store).await?;
/// assert_eq!(id.len(), 22);
/// assert_eq!(cluster_id(&store).await?, id);
/// # Ok(())
/// # }
/// ```
pub async fn cluster_id(store: &dyn MetadataStore) -> Result<String> {
    cluster_meta(store).await.map(|m| m.cluster_id)
}

/// When the cluster was created (stored once, with the id).
fn now_ms() -> i64 {
    crate::clock::Clock::now_ms(&crate::clock::SystemClock)
}

/// A random UUID in Kafka's cluster id format (unpadded URL-safe base64, 22 characters).
fn new_cluster_id() -> String {
    base64url(uuid::Uuid::new_v4().as_bytes())
}

fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        // A chunk of k bytes carries k + 1 sextets; unpadded output stops there.
        for i in 0..=chunk.len() {
            let sextet = (n >> (18 - 6 * i)) & 0x3f;
            out.push(char::from(ALPHABET[sextet as usize]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::{EmbeddedStore, MemoryStore};

    #[test]
    fn base64url_matches_known_vectors() {
        assert_eq!(base64url(b""), "");
        assert_eq!(base64url(b"f"), "Zg");
        assert_eq!(base64url(b"fo"), "Zm8");
        assert_eq!(base64url(b"foo"), "Zm9v");
        assert_eq!(base64url(b"foob"), "Zm9vYg");
        assert_eq!(base64url(&[0xfb, 0xff]), "-_8");
        let id = new_cluster_id();
        assert_eq!(id.len(), 22);
        assert!(
            id.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
    }

    #[tokio::test]
    async fn stable_across_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("metadata.redb");
        let first = {
            let store = EmbeddedStore::open(&path).expect("open");
            let id = cluster_id(&store).await.expect("create");
            assert_eq!(cluster_id(&store).await.expect("read"), id);
            id
        };
        let store = EmbeddedStore::open(&path).expect("reopen");
        assert_eq!(cluster_id(&store).await.expect("after reopen"), first);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_first_calls_agree() {
        let store: Arc<dyn MetadataStore> = Arc::new(MemoryStore::new());
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..16 {
            let store = Arc::clone(&store);
            set.spawn(async move { cluster_id(store.as_ref()).await });
        }
        let mut ids = Vec::new();
        while let Some(joined) = set.join_next().await {
            ids.push(joined.expect("join").expect("cluster id"));
        }
        ids.dedup();
        assert_eq!(ids.len(), 1, "{ids:?}");
    }
}
