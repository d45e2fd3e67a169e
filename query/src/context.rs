//! [`QueryContext`]: the stores a query reads, opened from the settings `tierlog serve` takes.
//!
//! A context holds the metadata store (topics and the segment manifest), the object store and
//! a [`RemoteReader`] over a memory-only [`ChunkCache`]. It is cheap to clone and shared by all
//! concurrent reads; nothing in it belongs to a running node, so a context can be opened while
//! no node runs (with the embedded metadata store, only while no node holds its file).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use object_store::ObjectStore;
use tierlog_metadata::{ManifestRegistry, MetadataStore, MetadataUrl, TopicMeta, TopicRegistry};
use tierlog_tiering::remote::cache::{CacheConfig, ChunkCache};
use tierlog_tiering::remote::reader::RemoteReader;
use tierlog_tiering::remote::store::{ObjectStoreConfig, S3Options, open_object_store};

use crate::{Error, Result};

/// Default memory for cached chunks when [`QueryConfig::cache_memory_bytes`] is 0. Reads are
/// sequential, so a few chunks per concurrent split are enough.
const DEFAULT_CACHE_MEMORY: usize = 64 << 20;

/// Where the history is: the same settings `tierlog serve` takes.
#[derive(Debug, Clone, Default)]
pub struct QueryConfig {
    /// The node's data directory (holds the embedded metadata store and, by default, the
    /// object store directory `objects/`).
    pub data_dir: PathBuf,
    /// Metadata store URL: `embedded` (or empty) or `etcd://host:port,…/prefix`.
    pub metadata: String,
    /// Object store URL (default `file://<data_dir>/objects`).
    pub object_store: Option<String>,
    /// Settings of an `s3://` object store.
    pub s3: S3Options,
    /// Memory of the chunk cache (0 = 64 MiB).
    pub cache_memory_bytes: usize,
}

impl QueryConfig {
    /// The object store URL, defaulting to `<data_dir>/objects`.
    pub fn object_store_url(&self) -> Result<String> {
        if let Some(u) = &self.object_store {
            return Ok(u.clone());
        }
        let dir = absolute(&self.data_dir.join("objects"))?;
        Ok(format!("file://{}", dir.display()))
    }
}

fn absolute(p: &Path) -> Result<PathBuf> {
    std::path::absolute(p).map_err(|e| Error::io("resolve path", p, e))
}

/// The stores a query reads. Cheap to clone.
#[derive(Clone, Debug)]
pub struct QueryContext {
    pub(crate) topics: TopicRegistry,
    pub(crate) manifest: ManifestRegistry,
    pub(crate) reader: RemoteReader,
}

impl QueryContext {
    /// Opens the metadata store, the object store and a chunk cache from `config`. With the
    /// embedded metadata store this fails while a node holds the store's file.
    pub async fn open(config: &QueryConfig) -> Result<QueryContext> {
        let metadata = match config.metadata.trim() {
            "" => MetadataUrl::Embedded,
            s => s.parse::<MetadataUrl>()?,
        };
        if metadata == MetadataUrl::Embedded {
            let file = config.data_dir.join(tierlog_metadata::EMBEDDED_FILE_NAME);
            if !file.exists() {
                return Err(Error::invalid(format!(
                    "no embedded metadata store at `{}` (wrong --data-dir?)",
                    file.display()
                )));
            }
        }
        let store = tierlog_metadata::open_store(&metadata, &config.data_dir).await?;
        let url = config.object_store_url()?;
        let objects = open_object_store(&ObjectStoreConfig {
            url,
            s3: config.s3.clone(),
        })
        .await?;
        let memory_bytes = match config.cache_memory_bytes {
            0 => DEFAULT_CACHE_MEMORY,
            n => n,
        };
        let cache = ChunkCache::new(&CacheConfig {
            memory_bytes,
            disk_dir: None,
            ..CacheConfig::default()
        })
        .await?;
        Ok(QueryContext::from_parts(store, objects, cache))
    }

    /// A context over stores the caller opened (tests, or a process that has them already).
    pub fn from_parts(
        metadata: Arc<dyn MetadataStore>,
        objects: Arc<dyn ObjectStore>,
        cache: ChunkCache,
    ) -> QueryContext {
        QueryContext {
            topics: TopicRegistry::new(metadata.clone()),
            manifest: ManifestRegistry::new(metadata),
            reader: RemoteReader::new(objects, cache),
        }
    }

    /// Every topic, by name.
    pub async fn topics(&self) -> Result<Vec<TopicMeta>> {
        let mut t = self.topics.list().await?;
        t.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(t)
    }

    /// One topic; [`Error::Invalid`] if it does not exist.
    pub async fn topic(&self, name: &str) -> Result<TopicMeta> {
        self.topics
            .get(name)
            .await?
            .ok_or_else(|| Error::invalid(format!("unknown topic `{name}`")))
    }

    /// The reader splits are read through.
    pub fn reader(&self) -> &RemoteReader {
        &self.reader
    }
}
