//! The chunk cache: verified pieces of tiered objects in a foyer hybrid (memory + disk) cache.
//!
//! Lifecycle: a node builds one [`ChunkCache`] at start ([`ChunkCache::new`]), shares clones of
//! it with every remote reader, and [`close`](ChunkCache::close)s it at shutdown. Data objects
//! are read in fixed-size chunks (the manifest's `chunk_size`, 1 MiB by default) and small
//! objects (the indexes) whole. Every piece is fetched with exactly one GET, its CRC-32 checked
//! against the manifest *before* it is cached or returned, and only then inserted: a corrupt or
//! short object is [`Error::CorruptObject`] (logged with its key, counted in
//! [`CacheStats::errors`]) and is never cached, so a repaired object is read correctly next
//! time.
//!
//! Concurrency: foyer's `get_or_fetch` is single-flight — concurrent misses on the same piece
//! wait on one in-flight fetch, which runs in its own task, so a caller that gives up (a
//! cancelled Fetch request) does not waste the GET: it still lands in the cache for the next
//! reader. Every method here is cancel-safe.
//!
//! Tiers: memory holds what readers use now; entries evicted from memory are written to the
//! disk tier (foyer's block engine) when one is configured. The disk tier is best effort:
//! foyer drops entries larger than its block size and under write pressure, and reclaims whole
//! blocks. Entries read back from disk are CRC-checked again (a bad one is dropped and fetched
//! anew), so neither disk rot nor a cache directory recovered after a restart can serve wrong
//! bytes.
//!
//! Keys are (object key, piece) with the object key behind an `Arc<str>`, so cloning a key —
//! which foyer does on every miss — is a reference-count bump; readers keep the `Arc` of a
//! segment's data key across the chunks of one read.

use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use foyer::{
    BlockEngineConfig, Code, DeviceBuilder, FsDeviceBuilder, HybridCache, HybridCacheBuilder,
    HybridCachePolicy, Source,
};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use serde::{Deserialize, Serialize};
use tracing::warn;

use crate::{Error, Result};

/// Piece number standing for "the whole object" (indexes are cached whole).
const WHOLE: u64 = u64::MAX;
/// Piece number of an optional whole object (see [`ChunkCache::optional_whole`]).
const OPTIONAL: u64 = u64::MAX - 1;
/// Header of a cached optional object: present flag (u8), CRC-32 (u32 BE) of the bytes.
const OPTIONAL_HEADER: usize = 5;
/// Bookkeeping charged per entry on top of its key and value bytes.
const ENTRY_OVERHEAD: usize = 64;
/// Longest object key accepted when decoding a key from the disk tier (a guard against
/// allocating from garbage).
const MAX_KEY_LEN: u64 = 64 * 1024;
/// Smallest disk tier: four blocks of the smallest block size below.
const MIN_DISK_BYTES: u64 = 4 * MIN_BLOCK_BYTES as u64;
/// foyer's block is its unit of disk eviction and the largest entry it stores: keep room for
/// a 1 MiB chunk plus its key and foyer's entry header.
const MIN_BLOCK_BYTES: usize = 2 << 20;
/// foyer's default block size, used once the disk tier is large enough for 16 such blocks.
const MAX_BLOCK_BYTES: usize = 16 << 20;

/// Sizes and place of the chunk cache.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CacheConfig {
    /// Bytes of chunks kept in memory (default 256 MiB). More memory means more warm reads
    /// served without touching disk; each catching-up consumer keeps a few chunks hot.
    pub memory_bytes: usize,
    /// Directory of the disk tier; `None` runs the cache in memory only. The directory is
    /// owned by the cache (foyer's files) and may be reused after a restart.
    pub disk_dir: Option<PathBuf>,
    /// Capacity of the disk tier in bytes (default 4 GiB, at least 8 MiB), always passed to
    /// foyer explicitly (its own default is 80% of the free disk). Ignored without `disk_dir`.
    pub disk_bytes: u64,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            memory_bytes: 256 << 20,
            disk_dir: None,
            disk_bytes: 4 << 30,
        }
    }
}

impl CacheConfig {
    /// Checks that every value is in range.
    pub fn validate(&self) -> Result<()> {
        if self.memory_bytes == 0 {
            return Err(Error::InvalidConfig {
                reason: "cache memory_bytes must be greater than 0".into(),
            });
        }
        if self.disk_dir.is_some()
            && (self.disk_bytes < MIN_DISK_BYTES || usize::try_from(self.disk_bytes).is_err())
        {
            return Err(Error::InvalidConfig {
                reason: format!(
                    "cache disk_bytes={} must be at least {MIN_DISK_BYTES} and fit in memory addresses",
                    self.disk_bytes
                ),
            });
        }
        Ok(())
    }

    /// Block size of the disk tier: a sixteenth of it, between 2 and 16 MiB, 4 KiB aligned.
    fn block_bytes(&self) -> usize {
        let sixteenth = usize::try_from(self.disk_bytes / 16).unwrap_or(MAX_BLOCK_BYTES);
        sixteenth.clamp(MIN_BLOCK_BYTES, MAX_BLOCK_BYTES) / 4096 * 4096
    }
}

/// Counters of a [`ChunkCache`] since it was built.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Requests answered from the cache (memory or disk tier).
    pub hits: u64,
    /// Requests that needed the object store (including those that joined another request's
    /// in-flight GET).
    pub misses: u64,
    /// Bytes received from the object store.
    pub fetched_bytes: u64,
    /// Failed fetches: object store errors, short objects and checksum mismatches (one per
    /// GET, however many requests waited on it).
    pub errors: u64,
    /// Of the hits, those read back from the disk tier.
    pub disk_hits: u64,
    /// GET requests issued to the object store.
    pub gets: u64,
}

/// Cache key: an object and a piece of it (chunk number, or [`WHOLE`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct CacheKey {
    object: Arc<str>,
    piece: u64,
}

fn io_err(e: std::io::Error) -> foyer::Error {
    foyer::Error::io_error(e)
}

/// How a key is laid out in the disk tier: key length (u64 LE), key bytes, piece (u64 LE).
impl Code for CacheKey {
    fn encode(&self, writer: &mut impl std::io::Write) -> foyer::Result<()> {
        writer
            .write_all(&(self.object.len() as u64).to_le_bytes())
            .map_err(io_err)?;
        writer.write_all(self.object.as_bytes()).map_err(io_err)?;
        writer.write_all(&self.piece.to_le_bytes()).map_err(io_err)
    }

    fn decode(reader: &mut impl std::io::Read) -> foyer::Result<Self> {
        let mut word = [0u8; 8];
        reader.read_exact(&mut word).map_err(io_err)?;
        let len = u64::from_le_bytes(word);
        if len > MAX_KEY_LEN {
            return Err(foyer::Error::new(
                foyer::ErrorKind::Parse,
                format!("cache key of {len} bytes is too long"),
            ));
        }
        let mut key = vec![0u8; len as usize];
        reader.read_exact(&mut key).map_err(io_err)?;
        let key = String::from_utf8(key).map_err(|e| {
            foyer::Error::new(foyer::ErrorKind::Parse, "cache key is not utf-8").with_source(e)
        })?;
        reader.read_exact(&mut word).map_err(io_err)?;
        Ok(CacheKey {
            object: Arc::from(key),
            piece: u64::from_le_bytes(word),
        })
    }

    fn estimated_size(&self) -> usize {
        16 + self.object.len()
    }
}

#[derive(Debug, Default)]
struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    fetched_bytes: AtomicU64,
    errors: AtomicU64,
    disk_hits: AtomicU64,
    gets: AtomicU64,
}

impl Counters {
    fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// A failed fetch as foyer hands it to every waiter of the same in-flight GET: a plain,
/// clonable description from which each waiter rebuilds an [`Error`] of the same kind.
#[derive(Debug, Clone, thiserror::Error)]
enum FetchFailure {
    #[error("corrupt object: key=`{key}`: {reason}")]
    Corrupt { key: String, reason: String },
    #[error("object store error: {op} `{key}`: {message}")]
    Store {
        op: &'static str,
        key: String,
        not_found: bool,
        message: String,
    },
}

impl FetchFailure {
    fn to_error(&self) -> Error {
        match self {
            FetchFailure::Corrupt { key, reason } => Error::CorruptObject {
                key: key.clone(),
                reason: reason.clone(),
            },
            FetchFailure::Store {
                op,
                key,
                not_found,
                message,
            } => Error::ObjectStore {
                op,
                key: key.clone(),
                source: if *not_found {
                    object_store::Error::NotFound {
                        path: key.clone(),
                        source: message.clone().into(),
                    }
                } else {
                    object_store::Error::Generic {
                        store: "chunk cache",
                        source: message.clone().into(),
                    }
                },
            },
        }
    }
}

/// A verified-chunk cache over foyer's `HybridCache`. Cheap to clone (an `Arc` inside).
#[derive(Clone)]
pub struct ChunkCache {
    inner: Arc<Inner>,
}

struct Inner {
    cache: HybridCache<CacheKey, Bytes>,
    /// Shared with in-flight fetch tasks, which outlive the call that started them.
    counters: Arc<Counters>,
}

impl std::fmt::Debug for ChunkCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkCache")
            .field("hybrid", &self.inner.cache.is_hybrid())
            .field("stats", &self.stats())
            .finish()
    }
}

/// Number of `chunk_size` chunks of an object of `object_size` bytes.
pub(crate) fn chunk_count(object_size: u64, chunk_size: u32) -> u64 {
    if chunk_size == 0 {
        0
    } else {
        object_size.div_ceil(u64::from(chunk_size))
    }
}

/// `object_store` path of an object key: keys are path strings as `Path` prints them; a key
/// that is not one (illegal characters) is taken as `Path::from` would encode it.
pub(crate) fn object_path(key: &str) -> Path {
    Path::parse(key).unwrap_or_else(|_| Path::from(key))
}

impl ChunkCache {
    /// Builds the cache: memory only, or memory plus a disk tier in `config.disk_dir` (created
    /// if missing; entries a previous run left there are reused, and re-verified when read).
    pub async fn new(config: &CacheConfig) -> Result<ChunkCache> {
        config.validate()?;
        // One shard per 16 MiB, up to foyer's default of 8: a shard smaller than a chunk
        // could hold nothing.
        let shards = (config.memory_bytes / (16 << 20)).clamp(1, 8);
        let builder = HybridCacheBuilder::new()
            .with_name("tierlog-chunks")
            // Disk writes only for what memory evicts: a chunk read once and dropped while
            // still in memory costs no disk bandwidth.
            .with_policy(HybridCachePolicy::WriteOnEviction)
            // Everything cached can be fetched again: don't slow shutdown down by spilling
            // memory to disk.
            .with_flush_on_close(false)
            .memory(config.memory_bytes)
            .with_shards(shards)
            .with_weighter(|k: &CacheKey, v: &Bytes| k.object.len() + v.len() + ENTRY_OVERHEAD)
            .storage();
        let cache = match &config.disk_dir {
            None => builder.build().await.map_err(|e| Error::Internal {
                reason: format!("cannot build the chunk cache: {e}"),
            })?,
            Some(dir) => {
                // foyer's device builder unwraps these itself: fail politely first.
                std::fs::create_dir_all(dir)
                    .map_err(|e| Error::io("create chunk cache directory", dir, e))?;
                let disk_bytes = usize::try_from(config.disk_bytes).unwrap_or(usize::MAX);
                let device = FsDeviceBuilder::new(dir)
                    .with_capacity(disk_bytes)
                    .build()
                    .map_err(|e| {
                        Error::io("open chunk cache device", dir, std::io::Error::other(e))
                    })?;
                builder
                    .with_engine_config(
                        BlockEngineConfig::new(device).with_block_size(config.block_bytes()),
                    )
                    .build()
                    .await
                    .map_err(|e| Error::io("open chunk cache", dir, std::io::Error::other(e)))?
            }
        };
        Ok(ChunkCache {
            inner: Arc::new(Inner {
                cache,
                counters: Arc::new(Counters::default()),
            }),
        })
    }

    /// Chunk `index` of object `key` (`object_size` bytes, `chunk_size` per chunk, last one
    /// shorter): served from the hybrid cache or fetched with ONE ranged GET; concurrent misses
    /// for the same chunk share one GET (single-flight); the CRC-32 is checked against
    /// `expected_crc` before the bytes are cached or returned — a mismatch or a short object is
    /// [`Error::CorruptObject`] (logged with the key) and is never cached. An index past the
    /// object is [`Error::Internal`].
    pub async fn chunk(
        &self,
        store: &Arc<dyn ObjectStore>,
        key: &str,
        object_size: u64,
        chunk_size: u32,
        index: u64,
        expected_crc: u32,
    ) -> Result<Bytes> {
        self.chunk_of(
            store,
            &Arc::from(key),
            object_size,
            chunk_size,
            index,
            expected_crc,
        )
        .await
    }

    /// [`chunk`](Self::chunk) with the key already in an `Arc` (no allocation per call).
    pub(crate) async fn chunk_of(
        &self,
        store: &Arc<dyn ObjectStore>,
        key: &Arc<str>,
        object_size: u64,
        chunk_size: u32,
        index: u64,
        expected_crc: u32,
    ) -> Result<Bytes> {
        if index >= chunk_count(object_size, chunk_size) {
            return Err(Error::Internal {
                reason: format!(
                    "chunk {index} of `{key}` out of range: object_size={object_size}, chunk_size={chunk_size}"
                ),
            });
        }
        let start = index * u64::from(chunk_size);
        let end = (start + u64::from(chunk_size)).min(object_size);
        let ckey = CacheKey {
            object: key.clone(),
            piece: index,
        };
        self.get_verified(store, ckey, Some(start..end), expected_crc, "get chunk")
            .await
    }

    /// A whole small object (an index), verified against `expected_crc`, cached.
    pub async fn whole(
        &self,
        store: &Arc<dyn ObjectStore>,
        key: &str,
        expected_crc: u32,
    ) -> Result<Bytes> {
        let ckey = CacheKey {
            object: Arc::from(key),
            piece: WHOLE,
        };
        self.get_verified(store, ckey, None, expected_crc, "get object")
            .await
    }

    /// A whole small object that the manifest has no checksum for and that may not exist (a
    /// segment's transaction index or producer snapshot): `None` when the store says it is not
    /// found. Absence is cached as well, so segments without one cost one GET, not one per
    /// read. The cached entry carries its own CRC-32, checked on every disk hit (a bad entry is
    /// dropped and fetched again).
    pub async fn optional_whole(
        &self,
        store: &Arc<dyn ObjectStore>,
        key: &str,
    ) -> Result<Option<Bytes>> {
        let ckey = CacheKey {
            object: Arc::from(key),
            piece: OPTIONAL,
        };
        let counters = &self.inner.counters;
        let fetch = || fetch_optional(store.clone(), ckey.object.clone(), counters.clone());
        let entry = self
            .inner
            .cache
            .get_or_fetch(&ckey, fetch)
            .await
            .map_err(|e| match e.downcast_ref::<FetchFailure>() {
                Some(f) => f.to_error(),
                None => Error::ObjectStore {
                    op: "get optional object",
                    key: key.to_string(),
                    source: object_store::Error::Generic {
                        store: "chunk cache",
                        source: Box::new(e),
                    },
                },
            })?;
        let outer = matches!(entry.source(), Source::Outer);
        Counters::add(
            if outer {
                &counters.misses
            } else {
                &counters.hits
            },
            1,
        );
        if let Some(v) = decode_optional(entry.value()) {
            return Ok(v);
        }
        warn!(
            key,
            "chunk cache: optional object entry fails its checksum, fetching it again"
        );
        drop(entry);
        self.inner.cache.remove(&ckey);
        let fresh = fetch_optional(store.clone(), ckey.object.clone(), counters.clone())
            .await
            .map_err(|f| f.to_error())?;
        let value = decode_optional(&fresh).flatten();
        self.inner.cache.insert(ckey, fresh);
        Ok(value)
    }

    /// Drops every cached piece of object `key` (its chunks, for an object of `object_size`
    /// bytes in `chunk_size` chunks, and its whole and optional entries) from both tiers. For
    /// objects that will never be read again (a compaction replaced their segment); keys are
    /// unique per upload, so a stale entry could never be served for another object, this
    /// only frees the space sooner.
    pub fn evict_object(&self, key: &str, object_size: u64, chunk_size: u32) {
        let object: Arc<str> = Arc::from(key);
        for piece in (0..chunk_count(object_size, chunk_size)).chain([WHOLE, OPTIONAL]) {
            self.inner.cache.remove(&CacheKey {
                object: object.clone(),
                piece,
            });
        }
    }

    /// Whether chunk `index` of `key` is in the memory tier now (read-ahead skips those).
    pub(crate) fn in_memory(&self, key: &Arc<str>, index: u64) -> bool {
        self.inner.cache.memory().contains(&CacheKey {
            object: key.clone(),
            piece: index,
        })
    }

    /// Counters since the cache was built.
    pub fn stats(&self) -> CacheStats {
        let c = &self.inner.counters;
        CacheStats {
            hits: c.hits.load(Ordering::Relaxed),
            misses: c.misses.load(Ordering::Relaxed),
            fetched_bytes: c.fetched_bytes.load(Ordering::Relaxed),
            errors: c.errors.load(Ordering::Relaxed),
            disk_hits: c.disk_hits.load(Ordering::Relaxed),
            gets: c.gets.load(Ordering::Relaxed),
        }
    }

    /// Waits for the disk tier to finish its pending writes and stops it. Later calls on any
    /// clone still work, but may fail or miss the disk tier.
    pub async fn close(&self) -> Result<()> {
        self.inner.cache.close().await.map_err(|e| Error::Internal {
            reason: format!("cannot close the chunk cache: {e}"),
        })
    }

    /// Test hook: waits until the disk tier has written what was queued.
    #[cfg(test)]
    pub(crate) async fn wait_disk(&self) {
        self.inner.cache.storage().wait().await;
    }

    async fn get_verified(
        &self,
        store: &Arc<dyn ObjectStore>,
        ckey: CacheKey,
        range: Option<Range<u64>>,
        expected_crc: u32,
        op: &'static str,
    ) -> Result<Bytes> {
        let counters = &self.inner.counters;
        // foyer builds the fetch future on every call (hits included) and only runs it on a
        // miss, in its own task: keep it cheap to build and self-contained.
        let fetch = || {
            fetch_verified(
                store.clone(),
                ckey.object.clone(),
                range.clone(),
                expected_crc,
                op,
                self.inner.counters.clone(),
            )
        };
        let entry = match self.inner.cache.get_or_fetch(&ckey, fetch).await {
            Ok(entry) => entry,
            Err(e) => {
                // The failure was logged and counted by the fetch that saw it.
                return Err(match e.downcast_ref::<FetchFailure>() {
                    Some(f) => f.to_error(),
                    None => Error::ObjectStore {
                        op,
                        key: ckey.object.to_string(),
                        source: object_store::Error::Generic {
                            store: "chunk cache",
                            source: Box::new(e),
                        },
                    },
                });
            }
        };
        match entry.source() {
            Source::Memory => {
                Counters::add(&counters.hits, 1);
                Ok(entry.value().clone())
            }
            Source::Outer => {
                Counters::add(&counters.misses, 1);
                Ok(entry.value().clone())
            }
            Source::Disk => {
                if crc32fast::hash(entry.value()) == expected_crc {
                    Counters::add(&counters.hits, 1);
                    Counters::add(&counters.disk_hits, 1);
                    return Ok(entry.value().clone());
                }
                warn!(key = %ckey.object, piece = ckey.piece, "chunk cache: disk entry fails its checksum, fetching it again");
                drop(entry);
                self.inner.cache.remove(&ckey);
                Counters::add(&counters.misses, 1);
                let bytes = fetch_verified(
                    store.clone(),
                    ckey.object.clone(),
                    range,
                    expected_crc,
                    op,
                    counters.clone(),
                )
                .await
                .map_err(|f| f.to_error())?;
                self.inner.cache.insert(ckey, bytes.clone());
                Ok(bytes)
            }
        }
    }
}

/// One GET of the optional object `key`, encoded for the cache: present flag, CRC-32, bytes
/// (a flag of 0 and nothing else when the store says it is not found).
async fn fetch_optional(
    store: Arc<dyn ObjectStore>,
    key: Arc<str>,
    counters: Arc<Counters>,
) -> std::result::Result<Bytes, FetchFailure> {
    Counters::add(&counters.gets, 1);
    let got = match store.get(&object_path(&key)).await {
        Ok(g) => g.bytes().await,
        Err(e) => Err(e),
    };
    let mut out = bytes::BytesMut::with_capacity(OPTIONAL_HEADER);
    match got {
        Ok(bytes) => {
            Counters::add(&counters.fetched_bytes, bytes.len() as u64);
            out.extend_from_slice(&[1]);
            out.extend_from_slice(&crc32fast::hash(&bytes).to_be_bytes());
            out.extend_from_slice(&bytes);
        }
        Err(object_store::Error::NotFound { .. }) => {
            out.extend_from_slice(&[0, 0, 0, 0, 0]);
        }
        Err(e) => {
            Counters::add(&counters.errors, 1);
            warn!(key = %key, error = %e, "remote read failed");
            return Err(FetchFailure::Store {
                op: "get optional object",
                key: key.to_string(),
                not_found: false,
                message: e.to_string(),
            });
        }
    }
    Ok(out.freeze())
}

/// [`fetch_optional`]'s encoding back: `Some(object or None)`, or `None` if the entry is
/// damaged.
fn decode_optional(v: &Bytes) -> Option<Option<Bytes>> {
    let (head, body) = (v.get(..OPTIONAL_HEADER)?, v.slice(OPTIONAL_HEADER..));
    let crc = u32::from_be_bytes([head[1], head[2], head[3], head[4]]);
    match head[0] {
        0 if body.is_empty() => Some(None),
        1 if crc32fast::hash(&body) == crc => Some(Some(body)),
        _ => None,
    }
}

/// One GET of `range` of `key` (the whole object for `None`), checked: complete and matching
/// `expected_crc`. Logs and counts failures.
async fn fetch_verified(
    store: Arc<dyn ObjectStore>,
    key: Arc<str>,
    range: Option<Range<u64>>,
    expected_crc: u32,
    op: &'static str,
    counters: Arc<Counters>,
) -> std::result::Result<Bytes, FetchFailure> {
    let result = fetch_checked(&store, &key, range, expected_crc, op, &counters).await;
    if let Err(f) = &result {
        Counters::add(&counters.errors, 1);
        warn!(key = %key, error = %f, "remote read failed");
    }
    result
}

async fn fetch_checked(
    store: &Arc<dyn ObjectStore>,
    key: &Arc<str>,
    range: Option<Range<u64>>,
    expected_crc: u32,
    op: &'static str,
    counters: &Counters,
) -> std::result::Result<Bytes, FetchFailure> {
    let path = object_path(key);
    Counters::add(&counters.gets, 1);
    let got = match &range {
        Some(r) => store.get_range(&path, r.clone()).await,
        None => match store.get(&path).await {
            Ok(g) => g.bytes().await,
            Err(e) => Err(e),
        },
    };
    let bytes = match got {
        Ok(b) => b,
        Err(e) => {
            let not_found = matches!(e, object_store::Error::NotFound { .. });
            // A range starting past the end is refused in store-specific ways: tell a short
            // object (corruption) from an outage by asking for its size.
            if !not_found
                && let Some(r) = &range
                && let Ok(meta) = store.head(&path).await
                && meta.size < r.end
            {
                return Err(FetchFailure::Corrupt {
                    key: key.to_string(),
                    reason: format!(
                        "object is {} bytes, shorter than the manifest says (range {}..{} refused)",
                        meta.size, r.start, r.end
                    ),
                });
            }
            return Err(FetchFailure::Store {
                op,
                key: key.to_string(),
                not_found,
                message: e.to_string(),
            });
        }
    };
    Counters::add(&counters.fetched_bytes, bytes.len() as u64);
    if let Some(r) = &range
        && bytes.len() as u64 != r.end - r.start
    {
        return Err(FetchFailure::Corrupt {
            key: key.to_string(),
            reason: format!(
                "short object: range {}..{} returned {} bytes",
                r.start,
                r.end,
                bytes.len()
            ),
        });
    }
    let actual = crc32fast::hash(&bytes);
    if actual != expected_crc {
        let what = match &range {
            Some(r) => format!("bytes {}..{}", r.start, r.end),
            None => format!("whole object of {} bytes", bytes.len()),
        };
        return Err(FetchFailure::Corrupt {
            key: key.to_string(),
            reason: format!(
                "crc-32 mismatch in {what}: expected={expected_crc:#010x}, actual={actual:#010x}"
            ),
        });
    }
    Ok(bytes)
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::atomic::AtomicU64;
    use std::time::Duration;

    use async_trait::async_trait;
    use futures::stream::BoxStream;
    use object_store::memory::InMemory;
    use object_store::{
        CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta,
        PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions,
    };

    use super::*;
    use crate::ErrorKind;

    /// Forwards every call to `inner`, counting GETs (`get_opts`, which every read goes
    /// through) and optionally delaying them so that concurrent callers overlap.
    #[derive(Debug)]
    pub(crate) struct CountingStore {
        pub(crate) inner: Arc<dyn ObjectStore>,
        pub(crate) gets: AtomicU64,
        pub(crate) get_delay: Duration,
    }

    impl CountingStore {
        pub(crate) fn new(inner: Arc<dyn ObjectStore>, get_delay: Duration) -> Arc<Self> {
            Arc::new(CountingStore {
                inner,
                gets: AtomicU64::new(0),
                get_delay,
            })
        }

        pub(crate) fn gets(&self) -> u64 {
            self.gets.load(Ordering::SeqCst)
        }
    }

    impl std::fmt::Display for CountingStore {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "Counting({})", self.inner)
        }
    }

    #[async_trait]
    impl ObjectStore for CountingStore {
        async fn put_opts(
            &self,
            location: &Path,
            payload: PutPayload,
            opts: PutOptions,
        ) -> object_store::Result<PutResult> {
            self.inner.put_opts(location, payload, opts).await
        }

        async fn put_multipart_opts(
            &self,
            location: &Path,
            opts: PutMultipartOptions,
        ) -> object_store::Result<Box<dyn MultipartUpload>> {
            self.inner.put_multipart_opts(location, opts).await
        }

        async fn get_opts(
            &self,
            location: &Path,
            options: GetOptions,
        ) -> object_store::Result<GetResult> {
            if !options.head {
                self.gets.fetch_add(1, Ordering::SeqCst);
                if !self.get_delay.is_zero() {
                    tokio::time::sleep(self.get_delay).await;
                }
            }
            self.inner.get_opts(location, options).await
        }

        async fn get_ranges(
            &self,
            location: &Path,
            ranges: &[Range<u64>],
        ) -> object_store::Result<Vec<Bytes>> {
            self.gets.fetch_add(1, Ordering::SeqCst);
            self.inner.get_ranges(location, ranges).await
        }

        fn delete_stream(
            &self,
            locations: BoxStream<'static, object_store::Result<Path>>,
        ) -> BoxStream<'static, object_store::Result<Path>> {
            self.inner.delete_stream(locations)
        }

        fn list(
            &self,
            prefix: Option<&Path>,
        ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
            self.inner.list(prefix)
        }

        fn list_with_offset(
            &self,
            prefix: Option<&Path>,
            offset: &Path,
        ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
            self.inner.list_with_offset(prefix, offset)
        }

        async fn list_with_delimiter(
            &self,
            prefix: Option<&Path>,
        ) -> object_store::Result<ListResult> {
            self.inner.list_with_delimiter(prefix).await
        }

        async fn copy_opts(
            &self,
            from: &Path,
            to: &Path,
            options: CopyOptions,
        ) -> object_store::Result<()> {
            self.inner.copy_opts(from, to, options).await
        }

        async fn rename_opts(
            &self,
            from: &Path,
            to: &Path,
            options: RenameOptions,
        ) -> object_store::Result<()> {
            self.inner.rename_opts(from, to, options).await
        }
    }

    const CHUNK: u32 = 4096;

    fn object(len: usize) -> Bytes {
        (0..len)
            .map(|i| (i * 31 % 251) as u8)
            .collect::<Vec<u8>>()
            .into()
    }

    fn crcs(data: &[u8]) -> Vec<u32> {
        data.chunks(CHUNK as usize).map(crc32fast::hash).collect()
    }

    async fn put(store: &Arc<dyn ObjectStore>, key: &str, data: Bytes) {
        store.put(&Path::from(key), data.into()).await.unwrap();
    }

    async fn memory_cache() -> ChunkCache {
        ChunkCache::new(&CacheConfig {
            memory_bytes: 16 << 20,
            ..CacheConfig::default()
        })
        .await
        .unwrap()
    }

    fn expect_chunk(data: &Bytes, i: u64) -> Bytes {
        let start = i as usize * CHUNK as usize;
        data.slice(start..(start + CHUNK as usize).min(data.len()))
    }

    #[tokio::test]
    async fn concurrent_misses_share_one_get_and_the_next_call_hits() {
        let data = object(10 * CHUNK as usize + 123);
        let mem: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        put(&mem, "a/data", data.clone()).await;
        let counting = CountingStore::new(mem, Duration::from_millis(100));
        let store: Arc<dyn ObjectStore> = counting.clone();
        let cache = memory_cache().await;
        let crc = crcs(&data);
        let size = data.len() as u64;
        let calls = (0..16).map(|_| cache.chunk(&store, "a/data", size, CHUNK, 3, crc[3]));
        for got in futures::future::join_all(calls).await {
            assert_eq!(got.unwrap(), expect_chunk(&data, 3));
        }
        assert_eq!(counting.gets(), 1, "one GET for 16 concurrent misses");
        let s = cache.stats();
        assert_eq!((s.gets, s.hits, s.misses), (1, 0, 16));
        assert_eq!(s.fetched_bytes, u64::from(CHUNK));

        // Served from memory now; the last (short) chunk works too.
        assert_eq!(
            cache
                .chunk(&store, "a/data", size, CHUNK, 3, crc[3])
                .await
                .unwrap(),
            expect_chunk(&data, 3)
        );
        assert_eq!(cache.stats().hits, 1);
        assert_eq!(counting.gets(), 1);
        assert_eq!(
            cache
                .chunk(&store, "a/data", size, CHUNK, 10, crc[10])
                .await
                .unwrap(),
            expect_chunk(&data, 10)
        );
        assert_eq!(counting.gets(), 2);
        // Past the object: a caller bug, no GET.
        let e = cache
            .chunk(&store, "a/data", size, CHUNK, 11, 0)
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Internal);
        assert_eq!(counting.gets(), 2);
        cache.close().await.unwrap();
    }

    #[tokio::test]
    async fn corrupt_and_short_objects_are_errors_and_never_cached() {
        let data = object(8 * CHUNK as usize + 100);
        let crc = crcs(&data);
        let size = data.len() as u64;
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let cache = memory_cache().await;

        let mut bad = data.to_vec();
        bad[2 * CHUNK as usize + 17] ^= 0x40;
        put(&store, "k", bad.into()).await;
        // Concurrent waiters all see the corruption.
        let calls = (0..4).map(|_| cache.chunk(&store, "k", size, CHUNK, 2, crc[2]));
        for got in futures::future::join_all(calls).await {
            match got.unwrap_err() {
                Error::CorruptObject { key, reason } => {
                    assert_eq!(key, "k");
                    assert!(reason.contains("crc-32 mismatch"), "{reason}");
                }
                e => panic!("unexpected {e}"),
            }
        }
        assert_eq!(cache.stats().errors, 1);
        // Other chunks are fine.
        assert_eq!(
            cache
                .chunk(&store, "k", size, CHUNK, 1, crc[1])
                .await
                .unwrap(),
            expect_chunk(&data, 1)
        );

        // Repaired: the next read fetches again and succeeds.
        put(&store, "k", data.clone()).await;
        assert_eq!(
            cache
                .chunk(&store, "k", size, CHUNK, 2, crc[2])
                .await
                .unwrap(),
            expect_chunk(&data, 2)
        );

        // Truncated inside the last chunk: short read.
        put(&store, "short", data.slice(..data.len() - 10)).await;
        let e = cache
            .chunk(&store, "short", size, CHUNK, 8, crc[8])
            .await
            .unwrap_err();
        assert!(
            matches!(&e, Error::CorruptObject { reason, .. } if reason.contains("short")),
            "{e}"
        );
        assert_eq!(e.kind(), ErrorKind::Data);
        // Truncated before the chunk starts: the store refuses the range; still corruption.
        put(&store, "shorter", data.slice(..CHUNK as usize)).await;
        let e = cache
            .chunk(&store, "shorter", size, CHUNK, 5, crc[5])
            .await
            .unwrap_err();
        assert!(matches!(&e, Error::CorruptObject { .. }), "{e}");

        // Whole objects are verified too.
        put(&store, "idx", data.slice(..100)).await;
        let good = crc32fast::hash(&data[..100]);
        assert!(matches!(
            cache.whole(&store, "idx", good ^ 1).await.unwrap_err(),
            Error::CorruptObject { .. }
        ));
        assert_eq!(
            cache.whole(&store, "idx", good).await.unwrap(),
            data.slice(..100)
        );
        cache.close().await.unwrap();
    }

    #[tokio::test]
    async fn missing_object_is_an_object_store_error() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let cache = memory_cache().await;
        let calls = (0..3).map(|_| cache.chunk(&store, "nope", 10_000, CHUNK, 1, 0));
        for got in futures::future::join_all(calls).await {
            let e = got.unwrap_err();
            assert!(
                matches!(&e, Error::ObjectStore { key, source: object_store::Error::NotFound { .. }, .. } if key == "nope"),
                "{e}"
            );
            // Missing data that the manifest promises: a data error, not a retry.
            assert_eq!(e.kind(), ErrorKind::Data);
        }
        let e = cache.whole(&store, "nope", 0).await.unwrap_err();
        assert!(matches!(e, Error::ObjectStore { .. }), "{e}");
        assert_eq!(cache.stats().errors, 2);
    }

    #[tokio::test]
    async fn config_is_validated() {
        assert!(
            ChunkCache::new(&CacheConfig {
                memory_bytes: 0,
                ..CacheConfig::default()
            })
            .await
            .is_err()
        );
        let dir = tempfile::tempdir().unwrap();
        assert!(
            ChunkCache::new(&CacheConfig {
                disk_dir: Some(dir.path().into()),
                disk_bytes: 1 << 20,
                ..CacheConfig::default()
            })
            .await
            .is_err()
        );
        assert_eq!(CacheConfig::default().block_bytes(), 16 << 20);
        let small = CacheConfig {
            disk_bytes: 8 << 20,
            ..CacheConfig::default()
        };
        assert_eq!(small.block_bytes(), 2 << 20);
        let back: CacheConfig = serde_json::from_str(r#"{"memory_bytes": 1024}"#).unwrap();
        assert_eq!(back.memory_bytes, 1024);
        assert_eq!(back.disk_bytes, CacheConfig::default().disk_bytes);
    }

    #[tokio::test]
    async fn chunks_come_back_from_disk_after_memory_eviction() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ChunkCache::new(&CacheConfig {
            // Room for about two chunks.
            memory_bytes: 10 * 1024,
            disk_dir: Some(dir.path().join("cache")),
            disk_bytes: 16 << 20,
        })
        .await
        .unwrap();
        let data = object(64 * CHUNK as usize);
        let crc = crcs(&data);
        let size = data.len() as u64;
        let mem: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        put(&mem, "d", data.clone()).await;
        let counting = CountingStore::new(mem, Duration::ZERO);
        let store: Arc<dyn ObjectStore> = counting.clone();
        for i in 0..64 {
            cache
                .chunk(&store, "d", size, CHUNK, i, crc[i as usize])
                .await
                .unwrap();
        }
        assert_eq!(counting.gets(), 64);
        cache.wait_disk().await;
        // Memory holds only the newest chunks; the rest is on disk (best effort: foyer may
        // drop entries, which then are fetched again — never served wrong).
        for i in 0..64 {
            let got = cache
                .chunk(&store, "d", size, CHUNK, i, crc[i as usize])
                .await
                .unwrap();
            assert_eq!(got, expect_chunk(&data, i));
        }
        let s = cache.stats();
        assert!(s.disk_hits > 0, "nothing came back from disk: {s:?}");
        assert!(counting.gets() < 128, "{s:?}");
        assert_eq!(s.errors, 0);
        cache.close().await.unwrap();
    }
}
