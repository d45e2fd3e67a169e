//! [`RemotePartition`]: one partition's handle on the remote tier.
//!
//! Everything the remote tier does for a partition — uploading a sealed segment and recording
//! it, the uploader's passes and loop ([`super::uploader`]), remote retention, the orphan
//! sweep — needs the same things: the object store, the manifest, the topic's name and id, the
//! partition index and a few settings. The handle holds them, so each operation takes only
//! what differs between calls (the segment, the leader epoch, the time).
//!
//! A handle is cheap to clone (the store and the manifest are shared) and holds no state of
//! its own: the tiered segments known to the node stay with its caller (see
//! [`super::uploader::UploaderHost`]), the truth stays in the manifest.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use object_store::memory::InMemory;
//! use tierlog_metadata::{ManifestRegistry, MemoryStore};
//! use tierlog_tiering::remote::partition::{RemoteOptions, RemotePartition};
//! use tierlog_tiering::remote::retention::RetentionLimits;
//!
//! let manifest = ManifestRegistry::new(Arc::new(MemoryStore::new()));
//! let remote = RemotePartition::new(Arc::new(InMemory::new()), manifest, "events", uuid::Uuid::new_v4(), 0)
//!     .with_options(RemoteOptions::default());
//! // nothing tiered yet: retention deletes nothing, a sweep finds nothing
//! assert!(remote.enforce_retention(&[], &RetentionLimits::default(), 0).await?.is_empty());
//! assert_eq!(remote.sweep_orphans(std::time::SystemTime::now()).await?.deleted, 0);
//! # Ok(()) }
//! ```

use std::sync::Arc;
use std::time::Duration;

use object_store::ObjectStore;
use tierlog_metadata::{Compare, ManifestRegistry, PartitionStateRegistry};
use uuid::Uuid;

use super::DEFAULT_CHUNK_SIZE;
use super::cache::ChunkCache;
use super::gc::GcConfig;
use super::upload::UploadOptions;

/// Default time between two upload passes of a partition when nothing wakes the uploader.
pub const DEFAULT_UPLOAD_INTERVAL: Duration = Duration::from_secs(1);

/// Settings of a [`RemotePartition`] (plain data; the defaults are the node's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoteOptions {
    /// Size of the chunks a data object is checksummed (and later read and cached) by. Smaller
    /// chunks mean finer-grained reads and a longer CRC list in each manifest entry.
    pub chunk_size: u32,
    /// Multipart threshold and part size of uploads.
    pub upload: UploadOptions,
    /// Time between two upload passes of the uploader loop when nothing wakes it (a roll wakes
    /// it at once). Shorter notices missed wake-ups sooner and costs a directory listing.
    pub upload_interval: Duration,
    /// Orphan sweep timing.
    pub gc: GcConfig,
}

impl Default for RemoteOptions {
    fn default() -> Self {
        RemoteOptions {
            chunk_size: DEFAULT_CHUNK_SIZE,
            upload: UploadOptions::default(),
            upload_interval: DEFAULT_UPLOAD_INTERVAL,
            gc: GcConfig::default(),
        }
    }
}

/// One partition's handle on the remote tier: object store, manifest, topic name and id,
/// partition, settings. See the module docs.
#[derive(Debug, Clone)]
pub struct RemotePartition {
    pub(super) store: Arc<dyn ObjectStore>,
    pub(super) manifest: ManifestRegistry,
    pub(super) topic: String,
    pub(super) topic_id: Uuid,
    pub(super) partition: i32,
    pub(super) options: RemoteOptions,
    /// Where the small optional objects (transaction indexes, producer snapshots) are read
    /// through; `None` reads them straight from the store.
    pub(super) cache: Option<ChunkCache>,
}

impl RemotePartition {
    /// A handle on partition `partition` of topic `topic` (id `topic_id`), with default
    /// [`RemoteOptions`].
    pub fn new(
        store: Arc<dyn ObjectStore>,
        manifest: ManifestRegistry,
        topic: impl Into<String>,
        topic_id: Uuid,
        partition: i32,
    ) -> Self {
        RemotePartition {
            store,
            manifest,
            topic: topic.into(),
            topic_id,
            partition,
            options: RemoteOptions::default(),
            cache: None,
        }
    }

    /// This handle reading transaction indexes and producer snapshots through `cache` (the
    /// node's chunk cache, shared with its remote readers).
    pub fn with_cache(mut self, cache: ChunkCache) -> Self {
        self.cache = Some(cache);
        self
    }

    /// This handle with `options`.
    pub fn with_options(mut self, options: RemoteOptions) -> Self {
        self.options = options;
        self
    }

    /// The object store segments are uploaded to.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// The manifest segments are recorded in.
    pub fn manifest(&self) -> &ManifestRegistry {
        &self.manifest
    }

    /// The topic's name (object keys carry it).
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The topic's id (manifest keys and object keys carry it).
    pub fn topic_id(&self) -> Uuid {
        self.topic_id
    }

    /// The partition index.
    pub fn partition(&self) -> i32 {
        self.partition
    }

    /// The settings.
    pub fn options(&self) -> &RemoteOptions {
        &self.options
    }

    /// This handle with a manifest that records only while the partition state is still at
    /// `state_revision` (the revision a leader leads at): an upload by a deposed leader is
    /// never recorded.
    pub fn leading_at(&self, state_revision: u64) -> RemotePartition {
        RemotePartition {
            manifest: self.manifest.guarded(vec![Compare::mod_revision(
                PartitionStateRegistry::key(self.topic_id, self.partition),
                state_revision,
            )]),
            ..self.clone()
        }
    }
}
