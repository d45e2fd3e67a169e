//! [`EmbeddedStore`]: the single-node backend, a `redb` database in one file.
//!
//! # Lifecycle
//!
//! [`EmbeddedStore::open`] creates or opens the file, takes redb's exclusive file lock (a
//! second process, or a second open in this one, fails with
//! [`ErrorKind::Unavailable`](crate::ErrorKind::Unavailable)), creates the tables, and checks
//! the format version. Every call then runs its redb work on tokio's blocking pool: reads in a
//! read transaction (a consistent snapshot), writes in a write transaction that also updates
//! the revision counter, committed with redb's default immediate durability (fsync) before the
//! call returns. redb admits one write transaction at a time, which is what serializes our
//! transactions; readers never block. Dropping the store (and every clone of its `Arc`) closes
//! the file.
//!
//! # Format
//!
//! - table `kv` (`&str` → bytes): key → `create_revision` (u64 LE) ‖ `mod_revision` (u64 LE)
//!   ‖ value.
//! - table `meta` (`&str` → u64): `revision` (the store revision), `format_version` (1).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use redb::{Database, ReadableDatabase, ReadableTable, Table, TableDefinition};

use crate::apply::{TxnView, apply_txn};
use crate::error::{Error, Result};
use crate::store::{Compare, KeyValue, MetadataStore, Op, TxnResult};

const KV: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("kv");
const META: TableDefinition<'_, &str, u64> = TableDefinition::new("meta");
const REVISION: &str = "revision";
const FORMAT_VERSION_KEY: &str = "format_version";
const FORMAT_VERSION: u64 = 1;
/// Bytes of revisions in front of each stored value.
const HEADER_LEN: usize = 16;

/// A durable, single-node [`MetadataStore`] backed by a `redb` file.
///
/// Share one instance as `Arc<dyn MetadataStore>`; the file admits a single opener.
pub struct EmbeddedStore {
    // Shared with blocking tasks, which may outlive a cancelled call; redb's `Database` is
    // internally synchronized.
    db: Arc<Database>,
    // Queues writers on the async side: redb runs one write transaction at a time and its
    // `begin_write` blocks, so without this every waiting writer would pin a blocking-pool
    // thread. The owned guard moves into the blocking task, so a cancelled caller does not
    // let the next writer start before its transaction has finished.
    write_lock: Arc<tokio::sync::Mutex<()>>,
    path: PathBuf,
}

impl fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmbeddedStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl EmbeddedStore {
    /// Opens the database file at `path`, creating it (and its parent directory) if missing.
    ///
    /// Blocking: call it from `spawn_blocking` (as [`open_store`](crate::open_store) does) or
    /// before the runtime is busy.
    pub fn open(path: &Path) -> Result<Self> {
        let shown = path.display();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| {
                Error::storage(
                    format!("create directory `{}` for `{shown}`", parent.display()),
                    e,
                )
            })?;
        }
        let db =
            Database::create(path).map_err(|e| Error::storage(format!("open `{shown}`"), e))?;
        let context = || format!("initialize `{shown}`");
        let txn = db.begin_write().map_err(|e| Error::storage(context(), e))?;
        {
            txn.open_table(KV)
                .map_err(|e| Error::storage(context(), e))?;
            let mut meta = txn
                .open_table(META)
                .map_err(|e| Error::storage(context(), e))?;
            let version = meta
                .get(FORMAT_VERSION_KEY)
                .map_err(|e| Error::storage(context(), e))?
                .map(|g| g.value());
            match version {
                None => {
                    meta.insert(FORMAT_VERSION_KEY, FORMAT_VERSION)
                        .map_err(|e| Error::storage(context(), e))?;
                }
                Some(FORMAT_VERSION) => {}
                Some(other) => {
                    return Err(Error::Corrupt {
                        key: FORMAT_VERSION_KEY.to_owned(),
                        message: format!(
                            "`{shown}` has format version {other}, this build reads {FORMAT_VERSION}"
                        ),
                    });
                }
            }
        }
        txn.commit().map_err(|e| Error::storage(context(), e))?;
        tracing::debug!(path = %shown, "opened embedded metadata store");
        Ok(Self {
            db: Arc::new(db),
            write_lock: Arc::new(tokio::sync::Mutex::new(())),
            path: path.to_owned(),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` on the blocking pool with the database.
    async fn blocking<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Database) -> Result<T> + Send + 'static,
    {
        let db = Arc::clone(&self.db);
        tokio::task::spawn_blocking(move || f(&db))
            .await
            .map_err(|source| Error::Task { source })?
    }
}

fn encode(kv: &KeyValue) -> Vec<u8> {
    let mut buf = Vec::with_capacity(HEADER_LEN + kv.value.len());
    buf.extend_from_slice(&kv.create_revision.to_le_bytes());
    buf.extend_from_slice(&kv.mod_revision.to_le_bytes());
    buf.extend_from_slice(&kv.value);
    buf
}

fn decode(key: &str, raw: &[u8]) -> Result<KeyValue> {
    let corrupt = || Error::Corrupt {
        key: key.to_owned(),
        message: format!(
            "stored value is {} bytes, shorter than its {HEADER_LEN}-byte header",
            raw.len()
        ),
    };
    let (create, rest) = raw.split_first_chunk::<8>().ok_or_else(corrupt)?;
    let (modified, value) = rest.split_first_chunk::<8>().ok_or_else(corrupt)?;
    Ok(KeyValue {
        key: key.to_owned(),
        value: Bytes::copy_from_slice(value),
        create_revision: u64::from_le_bytes(*create),
        mod_revision: u64::from_le_bytes(*modified),
    })
}

fn read_err(e: impl Into<redb::Error>) -> Error {
    Error::storage("read", e)
}

fn write_err(e: impl Into<redb::Error>) -> Error {
    Error::storage("write", e)
}

/// Collects every entry of `table` whose key starts with `prefix`, in order.
fn scan(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    prefix: &str,
) -> Result<Vec<KeyValue>> {
    let mut out = Vec::new();
    for entry in table.range::<&str>(prefix..).map_err(read_err)? {
        let (k, v) = entry.map_err(read_err)?;
        let key = k.value();
        if !key.starts_with(prefix) {
            break;
        }
        out.push(decode(key, v.value())?);
    }
    Ok(out)
}

/// The `kv` table inside one write transaction.
struct RedbView<'t> {
    table: Table<'t, &'static str, &'static [u8]>,
}

impl TxnView for RedbView<'_> {
    fn read(&self, key: &str) -> Result<Option<KeyValue>> {
        match self.table.get(key).map_err(read_err)? {
            Some(raw) => Ok(Some(decode(key, raw.value())?)),
            None => Ok(None),
        }
    }

    fn write(&mut self, kv: KeyValue) -> Result<()> {
        self.table
            .insert(kv.key.as_str(), encode(&kv).as_slice())
            .map_err(write_err)?;
        Ok(())
    }

    fn remove(&mut self, key: &str) -> Result<bool> {
        Ok(self.table.remove(key).map_err(write_err)?.is_some())
    }

    fn keys_with_prefix(&self, prefix: &str) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for entry in self.table.range::<&str>(prefix..).map_err(read_err)? {
            let (k, _) = entry.map_err(read_err)?;
            let key = k.value();
            if !key.starts_with(prefix) {
                break;
            }
            out.push(key.to_owned());
        }
        Ok(out)
    }
}

fn run_txn(db: &Database, compares: &[Compare], ops: &[Op]) -> Result<TxnResult> {
    let txn = db.begin_write().map_err(write_err)?;
    let applied = {
        let mut meta = txn.open_table(META).map_err(write_err)?;
        let current = meta
            .get(REVISION)
            .map_err(read_err)?
            .map_or(0, |g| g.value());
        let mut view = RedbView {
            table: txn.open_table(KV).map_err(write_err)?,
        };
        // On error the write transaction is dropped, which aborts it: nothing is applied.
        let applied = apply_txn(&mut view, current, compares, ops)?;
        if applied.changed {
            meta.insert(REVISION, applied.result.revision)
                .map_err(write_err)?;
        }
        applied
    };
    if applied.changed {
        txn.commit().map_err(|e| Error::storage("commit", e))?;
    } else {
        txn.abort().map_err(|e| Error::storage("abort", e))?;
    }
    Ok(applied.result)
}

#[async_trait::async_trait]
impl MetadataStore for EmbeddedStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        let key = key.to_owned();
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(read_err)?;
            let table = txn.open_table(KV).map_err(read_err)?;
            match table.get(key.as_str()).map_err(read_err)? {
                Some(raw) => Ok(Some(decode(&key, raw.value())?)),
                None => Ok(None),
            }
        })
        .await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<KeyValue>> {
        let prefix = prefix.to_owned();
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(read_err)?;
            let table = txn.open_table(KV).map_err(read_err)?;
            scan(&table, &prefix)
        })
        .await
    }

    async fn txn(&self, compares: Vec<Compare>, ops: Vec<Op>) -> Result<TxnResult> {
        // Cheap checks first, without a trip to the blocking pool.
        crate::apply::validate(&compares, &ops)?;
        let turn = Arc::clone(&self.write_lock).lock_owned().await;
        self.blocking(move |db| {
            let result = run_txn(db, &compares, &ops);
            drop(turn);
            result
        })
        .await
    }

    async fn current_revision(&self) -> Result<u64> {
        self.blocking(|db| {
            let txn = db.begin_read().map_err(read_err)?;
            let meta = txn.open_table(META).map_err(read_err)?;
            Ok(meta
                .get(REVISION)
                .map_err(read_err)?
                .map_or(0, |g| g.value()))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;
    use crate::store::MetadataStoreExt;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn conformance() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = EmbeddedStore::open(&dir.path().join("metadata.redb")).expect("open");
        crate::conformance::run(Arc::new(store)).await;
    }

    #[tokio::test]
    async fn survives_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("nested/metadata.redb");
        {
            let store = EmbeddedStore::open(&path).expect("open");
            store.put("/a", Bytes::from("1")).await.expect("put");
            store.put("/a", Bytes::from("2")).await.expect("put");
            store.put("/b", Bytes::from("3")).await.expect("put");
            assert!(store.delete("/b").await.expect("delete"));
        }
        let store = EmbeddedStore::open(&path).expect("reopen");
        assert_eq!(store.current_revision().await.expect("rev"), 4);
        let a = store.get("/a").await.expect("get").expect("present");
        assert_eq!(a.value, "2");
        assert_eq!((a.create_revision, a.mod_revision), (1, 2));
        assert!(store.get("/b").await.expect("get").is_none());
        // The counter continues where it left off.
        assert_eq!(store.put("/c", Bytes::new()).await.expect("put"), 5);
    }

    #[tokio::test]
    async fn second_open_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("metadata.redb");
        let _first = EmbeddedStore::open(&path).expect("open");
        let err = EmbeddedStore::open(&path).expect_err("second open");
        assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    }

    #[test]
    fn decode_rejects_short_values() {
        let err = decode("/k", &[1, 2, 3]).expect_err("short");
        assert_eq!(err.kind(), ErrorKind::Data);
        assert!(err.to_string().contains("`/k`"), "{err}");
        let kv = KeyValue {
            key: "/k".into(),
            value: Bytes::from("v"),
            create_revision: 3,
            mod_revision: 9,
        };
        assert_eq!(decode("/k", &encode(&kv)).expect("decode"), kv);
    }
}
