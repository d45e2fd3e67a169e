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
//! the file and ends every watch stream.
//!
//! Leases are per process (see [`crate::local`]): which key is attached to which lease is
//! stored with the key (table `leased`), but the leases themselves live in memory. So `open`
//! deletes every key still attached to a lease, in one transaction (one revision): those leases
//! belonged to a process that has ended, and an ephemeral key must not outlive its owner.
//! Watch history starts at the revision the store was opened at.
//!
//! # Format (version 2)
//!
//! - table `kv` (`&str` → bytes): key → `create_revision` (u64 LE) ‖ `mod_revision` (u64 LE)
//!   ‖ value.
//! - table `leased` (`&str` → i64): key → the lease it is attached to (absent: no lease).
//! - table `meta` (`&str` → u64): `revision` (the store revision), `format_version` (2).
//!
//! Version 1 had no `leased` table; opening a version-1 file upgrades it in place (none of
//! its keys has a lease). A build that reads only version 1 refuses a version-2 file, rather
//! than keep leased keys forever.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use redb::{Database, ReadableDatabase, ReadableTable, Table, TableDefinition, WriteTransaction};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::apply::{Applied, TxnView, apply_txn, expire_lease};
use crate::error::{Error, Result};
use crate::local::{LeaseHost, LeaseTable, Watchers, lock, spawn_expiry, ttl_seconds};
use crate::store::{Compare, KeyValue, LeaseId, MetadataStore, Op, TxnResult, WatchStream};

const KV: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("kv");
const LEASED: TableDefinition<'_, &str, i64> = TableDefinition::new("leased");
const META: TableDefinition<'_, &str, u64> = TableDefinition::new("meta");
const REVISION: &str = "revision";
const FORMAT_VERSION_KEY: &str = "format_version";
const FORMAT_VERSION: u64 = 2;
/// The previous format, upgraded in place on open.
const FORMAT_VERSION_1: u64 = 1;
/// Bytes of revisions in front of each stored value.
const HEADER_LEN: usize = 16;

/// A durable, single-node [`MetadataStore`] backed by a `redb` file.
///
/// Share one instance as `Arc<dyn MetadataStore>`; the file admits a single opener.
pub struct EmbeddedStore {
    // Shared with blocking tasks, which may outlive a cancelled call, and weakly with lease
    // expiry tasks.
    inner: Arc<Shared>,
}

struct Shared {
    // redb's `Database` is internally synchronized.
    db: Database,
    // Queues writers on the async side: redb runs one write transaction at a time and its
    // `begin_write` blocks, so without this every waiting writer would pin a blocking-pool
    // thread. The owned guard moves into the blocking task, so a cancelled caller does not
    // let the next writer start before its transaction has finished. Holding it also orders
    // publications to the watchers by revision.
    write_lock: Arc<tokio::sync::Mutex<()>>,
    // Lease deadlines (in memory only). A std mutex, never held across an await; taken inside
    // write transactions to check that a lease is alive.
    leases: Mutex<LeaseTable>,
    watchers: Arc<Watchers>,
    // Never sent on; dropping it (with the store) stops the lease expiry tasks.
    closed: watch::Sender<()>,
    path: PathBuf,
}

impl fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmbeddedStore")
            .field("path", &self.inner.path)
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
            txn.open_table(LEASED)
                .map_err(|e| Error::storage(context(), e))?;
            let mut meta = txn
                .open_table(META)
                .map_err(|e| Error::storage(context(), e))?;
            let version = meta
                .get(FORMAT_VERSION_KEY)
                .map_err(|e| Error::storage(context(), e))?
                .map(|g| g.value());
            match version {
                None | Some(FORMAT_VERSION_1) => {
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
        let (revision, orphans) = drop_orphaned_leased_keys(&db)?;
        if orphans > 0 {
            tracing::info!(
                path = %shown,
                keys = orphans,
                "deleted keys attached to leases of a previous process"
            );
        }
        tracing::debug!(path = %shown, revision, "opened embedded metadata store");
        Ok(Self {
            inner: Arc::new(Shared {
                db,
                write_lock: Arc::new(tokio::sync::Mutex::new(())),
                leases: Mutex::default(),
                watchers: Arc::new(Watchers::new(revision)),
                closed: watch::Sender::new(()),
                path: path.to_owned(),
            }),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Runs `f` on the blocking pool with the database.
    async fn blocking<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Shared) -> Result<T> + Send + 'static,
    {
        blocking(&self.inner, f).await
    }
}

/// Runs `f` on the blocking pool with the store's internals.
async fn blocking<T, F>(shared: &Arc<Shared>, f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce(&Shared) -> Result<T> + Send + 'static,
{
    let shared = Arc::clone(shared);
    tokio::task::spawn_blocking(move || f(&shared))
        .await
        .map_err(|source| Error::Task { source })?
}

/// Deletes every key attached to a lease (all from a previous process) in one transaction;
/// returns the store revision afterwards and how many keys went.
fn drop_orphaned_leased_keys(db: &Database) -> Result<(u64, usize)> {
    let txn = db.begin_write().map_err(write_err)?;
    let outcome = {
        let mut leased = txn.open_table(LEASED).map_err(write_err)?;
        let mut kv = txn.open_table(KV).map_err(write_err)?;
        let mut meta = txn.open_table(META).map_err(write_err)?;
        let mut revision = meta
            .get(REVISION)
            .map_err(read_err)?
            .map_or(0, |g| g.value());
        let mut keys = Vec::new();
        for entry in leased.iter().map_err(read_err)? {
            let (k, _) = entry.map_err(read_err)?;
            keys.push(k.value().to_owned());
        }
        let mut removed = 0;
        for key in &keys {
            leased.remove(key.as_str()).map_err(write_err)?;
            if kv.remove(key.as_str()).map_err(write_err)?.is_some() {
                removed += 1;
            }
        }
        if removed > 0 {
            revision += 1;
            meta.insert(REVISION, revision).map_err(write_err)?;
        }
        (revision, removed, !keys.is_empty())
    };
    let (revision, removed, touched) = outcome;
    if touched {
        txn.commit().map_err(|e| Error::storage("commit", e))?;
    } else {
        txn.abort().map_err(|e| Error::storage("abort", e))?;
    }
    Ok((revision, removed))
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

/// The `kv` and `leased` tables inside one write transaction.
struct RedbView<'t> {
    table: Table<'t, &'static str, &'static [u8]>,
    leased: Table<'t, &'static str, i64>,
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

    fn set_lease(&mut self, key: &str, lease: Option<LeaseId>) -> Result<()> {
        match lease {
            Some(lease) => {
                self.leased.insert(key, lease.0).map_err(write_err)?;
            }
            None => {
                self.leased.remove(key).map_err(write_err)?;
            }
        }
        Ok(())
    }

    fn keys_with_lease(&self, lease: LeaseId) -> Result<Vec<String>> {
        // A scan: leased keys are few (registrations, leadership claims).
        let mut out = Vec::new();
        for entry in self.leased.iter().map_err(read_err)? {
            let (k, v) = entry.map_err(read_err)?;
            if v.value() == lease.0 {
                out.push(k.value().to_owned());
            }
        }
        Ok(out)
    }
}

/// Runs `apply` on the tables in one redb write transaction, committing if it changed
/// anything, then publishes the change to the watchers. Callers hold the write lock, which
/// keeps publications in revision order.
fn write_txn(
    shared: &Shared,
    apply: impl FnOnce(&mut RedbView<'_>, u64) -> Result<Applied>,
) -> Result<TxnResult> {
    let txn: WriteTransaction = shared.db.begin_write().map_err(write_err)?;
    let applied = {
        let mut meta = txn.open_table(META).map_err(write_err)?;
        let current = meta
            .get(REVISION)
            .map_err(read_err)?
            .map_or(0, |g| g.value());
        let mut view = RedbView {
            table: txn.open_table(KV).map_err(write_err)?,
            leased: txn.open_table(LEASED).map_err(write_err)?,
        };
        // On error the write transaction is dropped, which aborts it: nothing is applied.
        let applied = apply(&mut view, current)?;
        if applied.changed {
            meta.insert(REVISION, applied.result.revision)
                .map_err(write_err)?;
        }
        applied
    };
    if applied.changed {
        txn.commit().map_err(|e| Error::storage("commit", e))?;
        shared
            .watchers
            .publish(applied.result.revision, applied.events);
    } else {
        txn.abort().map_err(|e| Error::storage("abort", e))?;
    }
    Ok(applied.result)
}

impl Shared {
    fn lock_leases(&self) -> MutexGuard<'_, LeaseTable> {
        lock(&self.leases)
    }
}

impl LeaseHost for Shared {
    fn lease_table(&self) -> MutexGuard<'_, LeaseTable> {
        self.lock_leases()
    }

    fn closed(&self) -> watch::Receiver<()> {
        self.closed.subscribe()
    }

    async fn expire(self: Arc<Self>, lease: LeaseId) -> Result<()> {
        expire(&self, lease).await
    }
}

/// Deletes `lease`'s keys in one transaction.
async fn expire(shared: &Arc<Shared>, lease: LeaseId) -> Result<()> {
    let turn = Arc::clone(&shared.write_lock).lock_owned().await;
    blocking(shared, move |shared| {
        let result = write_txn(shared, |view, current| expire_lease(view, current, lease));
        drop(turn);
        result.map(|_| ())
    })
    .await
}

#[async_trait::async_trait]
impl MetadataStore for EmbeddedStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        let key = key.to_owned();
        self.blocking(move |shared| {
            let txn = shared.db.begin_read().map_err(read_err)?;
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
        self.blocking(move |shared| {
            let txn = shared.db.begin_read().map_err(read_err)?;
            let table = txn.open_table(KV).map_err(read_err)?;
            scan(&table, &prefix)
        })
        .await
    }

    async fn txn(&self, compares: Vec<Compare>, ops: Vec<Op>) -> Result<TxnResult> {
        // Cheap checks first, without a trip to the blocking pool.
        crate::apply::validate(&compares, &ops)?;
        let turn = Arc::clone(&self.inner.write_lock).lock_owned().await;
        self.blocking(move |shared| {
            let now = Instant::now();
            let alive = |lease| shared.lock_leases().is_alive(lease, now);
            let result = write_txn(shared, |view, current| {
                apply_txn(view, current, &compares, &ops, &alive)
            });
            drop(turn);
            result
        })
        .await
    }

    async fn current_revision(&self) -> Result<u64> {
        self.blocking(|shared| {
            let txn = shared.db.begin_read().map_err(read_err)?;
            let meta = txn.open_table(META).map_err(read_err)?;
            Ok(meta
                .get(REVISION)
                .map_err(read_err)?
                .map_or(0, |g| g.value()))
        })
        .await
    }

    async fn grant_lease(&self, ttl: Duration) -> Result<LeaseId> {
        let ttl = Duration::from_secs(ttl_seconds(ttl)?.unsigned_abs());
        let id = self.inner.lock_leases().grant(ttl, Instant::now());
        spawn_expiry(&self.inner, id);
        Ok(id)
    }

    async fn keep_alive(&self, lease: LeaseId) -> Result<Duration> {
        self.inner
            .lock_leases()
            .keep_alive(lease, Instant::now())
            .ok_or_else(|| Error::not_found(format!("lease {lease}")))
    }

    async fn revoke_lease(&self, lease: LeaseId) -> Result<()> {
        self.inner.lock_leases().remove(lease);
        // Always delete the attached keys, even if the lease had lapsed already: its expiry
        // task may not have run yet, and the caller expects the keys gone on return.
        expire(&self.inner, lease).await
    }

    async fn watch(&self, prefix: &str, from_revision: u64) -> Result<WatchStream> {
        self.inner.watchers.watch(prefix, from_revision)
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
    async fn reopening_drops_keys_of_the_previous_process_leases() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("metadata.redb");
        {
            let store = EmbeddedStore::open(&path).expect("open");
            let lease = store
                .grant_lease(std::time::Duration::from_secs(600))
                .await
                .expect("grant");
            store.put("/plain", Bytes::from("p")).await.expect("put");
            store
                .put_with_lease("/eph/1", Bytes::from("1"), lease)
                .await
                .expect("put");
            store
                .put_with_lease("/eph/2", Bytes::from("2"), lease)
                .await
                .expect("put");
            assert_eq!(store.current_revision().await.expect("rev"), 3);
        }
        let store = EmbeddedStore::open(&path).expect("reopen");
        // Both leased keys went in one transaction; the plain key stays.
        assert_eq!(store.current_revision().await.expect("rev"), 4);
        let keys: Vec<String> = store
            .list("")
            .await
            .expect("list")
            .into_iter()
            .map(|kv| kv.key)
            .collect();
        assert_eq!(keys, ["/plain"]);
        // Watch history starts at the reopen: earlier revisions are not replayable.
        let err = store.watch("", 1).await.expect_err("before open");
        assert_eq!(err.kind(), ErrorKind::Compacted, "{err}");
        drop(store);
        // Nothing is left to drop the next time.
        let store = EmbeddedStore::open(&path).expect("reopen again");
        assert_eq!(store.current_revision().await.expect("rev"), 4);
    }

    #[tokio::test]
    async fn a_version_1_file_is_upgraded_in_place() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("metadata.redb");
        {
            // What a version-1 build wrote: `kv` and `meta`, no `leased`.
            let db = Database::create(&path).expect("create");
            let txn = db.begin_write().expect("begin");
            {
                let mut kv = txn.open_table(KV).expect("kv");
                let old = KeyValue {
                    key: "/old".into(),
                    value: Bytes::from("v"),
                    create_revision: 1,
                    mod_revision: 1,
                };
                kv.insert("/old", encode(&old).as_slice()).expect("insert");
                let mut meta = txn.open_table(META).expect("meta");
                meta.insert(FORMAT_VERSION_KEY, FORMAT_VERSION_1)
                    .expect("version");
                meta.insert(REVISION, 1).expect("revision");
            }
            txn.commit().expect("commit");
        }
        let store = EmbeddedStore::open(&path).expect("open v1");
        assert_eq!(store.current_revision().await.expect("rev"), 1);
        assert_eq!(
            store.get("/old").await.expect("get").expect("kept").value,
            "v"
        );
        let version = store
            .blocking(|shared| {
                let txn = shared.db.begin_read().map_err(read_err)?;
                let meta = txn.open_table(META).map_err(read_err)?;
                Ok(meta
                    .get(FORMAT_VERSION_KEY)
                    .map_err(read_err)?
                    .map(|g| g.value()))
            })
            .await
            .expect("read version");
        assert_eq!(version, Some(FORMAT_VERSION));
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
