//! A bounded pool of open segment files, so that the number of partitions a node hosts is not
//! bounded by its file descriptors.
//!
//! A segment's log file is a [`PooledFile`]: a path plus, while it is in use, an open handle.
//! The handle is opened on first use and closed again when the pool holds more open files than
//! its capacity and this one was not used recently (the CLOCK approximation of LRU: a use sets
//! a bit; the eviction hand clears set bits and evicts the first file whose bit is clear). A
//! hit costs one uncontended mutex and one atomic store; only a miss takes the pool's lock.
//!
//! A reader that got a handle keeps it (an `Arc<File>`) until its read is done even if the
//! pool evicts it meanwhile, so the pool can be briefly over capacity by the number of reads
//! in flight, and a read never fails because of eviction.
//!
//! A file about to be deleted or replaced (retention, truncation, a cleaning swap) is
//! [`pin`](PooledFile::pin)ned first: opened if needed and never evicted again, so readers
//! still holding the segment read the old contents rather than reopening the path and finding
//! nothing (or the replacement). A pinned file is closed when its segment is dropped.
//!
//! One pool serves the whole process ([`FilePool::global`]); a node sizes it from its
//! descriptor limit with [`FilePool::set_capacity`].

use std::fs::{File, OpenOptions};
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, Weak};

/// Open files when no one has said otherwise.
const DEFAULT_CAPACITY: usize = 1024;

/// A process-wide bound on open segment files.
#[derive(Debug)]
pub struct FilePool {
    capacity: AtomicUsize,
    /// Slots currently holding an open file (pinned ones included).
    open: AtomicUsize,
    ring: Mutex<Ring>,
    opened: AtomicU64,
    evicted: AtomicU64,
}

/// The slots whose file the pool may close, in CLOCK order.
#[derive(Debug, Default)]
struct Ring {
    slots: Vec<Weak<Slot>>,
    hand: usize,
}

/// Counters of a [`FilePool`], for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FilePoolStats {
    /// The most files the pool keeps open (reads in flight may briefly exceed it).
    pub capacity: usize,
    /// Files open now.
    pub open: usize,
    /// Files opened since start.
    pub opened: u64,
    /// Files closed to stay within the capacity since start.
    pub evicted: u64,
}

impl FilePool {
    /// A pool that keeps at most `capacity` files open (at least 1).
    pub fn new(capacity: usize) -> Arc<FilePool> {
        Arc::new(FilePool {
            capacity: AtomicUsize::new(capacity.max(1)),
            open: AtomicUsize::new(0),
            ring: Mutex::new(Ring::default()),
            opened: AtomicU64::new(0),
            evicted: AtomicU64::new(0),
        })
    }

    /// The pool every partition log of this process uses.
    pub fn global() -> &'static Arc<FilePool> {
        static GLOBAL: OnceLock<Arc<FilePool>> = OnceLock::new();
        GLOBAL.get_or_init(|| FilePool::new(DEFAULT_CAPACITY))
    }

    /// Changes the capacity (at least 1); files over it are closed as they are next touched.
    pub fn set_capacity(&self, capacity: usize) {
        self.capacity.store(capacity.max(1), Ordering::Relaxed);
        self.evict_over_capacity(&mut self.ring());
    }

    /// The counters.
    pub fn stats(&self) -> FilePoolStats {
        FilePoolStats {
            capacity: self.capacity.load(Ordering::Relaxed),
            open: self.open.load(Ordering::Relaxed),
            opened: self.opened.load(Ordering::Relaxed),
            evicted: self.evicted.load(Ordering::Relaxed),
        }
    }

    fn ring(&self) -> MutexGuard<'_, Ring> {
        self.ring.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts a slot that just opened its file and evicts others if over capacity.
    fn admit(&self, slot: &Arc<Slot>) {
        self.open.fetch_add(1, Ordering::AcqRel);
        self.opened.fetch_add(1, Ordering::Relaxed);
        let mut ring = self.ring();
        ring.slots.push(Arc::downgrade(slot));
        // Slots of dropped segments leave dead entries; clear them before they pile up.
        if ring.slots.len() > 2 * self.open.load(Ordering::Acquire) + 64 {
            ring.slots.retain(|w| w.strong_count() > 0);
            ring.hand = 0;
        }
        self.evict_over_capacity(&mut ring);
    }

    /// The CLOCK sweep. Never blocks on a slot (a slot being opened or read right now is
    /// skipped), so it cannot deadlock with [`PooledFile::get`].
    fn evict_over_capacity(&self, ring: &mut Ring) {
        let capacity = self.capacity.load(Ordering::Relaxed);
        // Two passes clear every use bit once; after that whatever is left is in use.
        let mut budget = 2 * ring.slots.len() + 1;
        while self.open.load(Ordering::Acquire) > capacity && budget > 0 && !ring.slots.is_empty() {
            budget -= 1;
            if ring.hand >= ring.slots.len() {
                ring.hand = 0;
            }
            let at = ring.hand;
            let Some(slot) = ring.slots[at].upgrade() else {
                ring.slots.swap_remove(at);
                continue;
            };
            if slot.pinned.load(Ordering::Acquire) {
                // Never evicted; counted until its segment is dropped.
                ring.slots.swap_remove(at);
                continue;
            }
            if slot.used.swap(false, Ordering::AcqRel) {
                ring.hand += 1;
                continue;
            }
            let Ok(mut file) = slot.file.try_lock() else {
                ring.hand += 1;
                continue;
            };
            if file.take().is_some() {
                self.open.fetch_sub(1, Ordering::AcqRel);
                self.evicted.fetch_add(1, Ordering::Relaxed);
            }
            drop(file);
            ring.slots.swap_remove(at);
        }
    }
}

#[derive(Debug)]
struct Slot {
    path: PathBuf,
    pool: Arc<FilePool>,
    file: Mutex<Option<Arc<File>>>,
    /// Set on every use, cleared by the eviction hand.
    used: AtomicBool,
    pinned: AtomicBool,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let held = self
            .file
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if held.is_some() {
            self.pool.open.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// A file opened (read-write) on demand through a [`FilePool`].
#[derive(Debug)]
pub(crate) struct PooledFile {
    slot: Arc<Slot>,
}

impl PooledFile {
    /// A file at `path`, not opened until used.
    pub(crate) fn lazy(pool: &Arc<FilePool>, path: PathBuf) -> PooledFile {
        PooledFile {
            slot: Arc::new(Slot {
                path,
                pool: pool.clone(),
                file: Mutex::new(None),
                used: AtomicBool::new(false),
                pinned: AtomicBool::new(false),
            }),
        }
    }

    /// Creates the file, failing if it exists; it is opened when first used (a partition
    /// created and never written holds no descriptor).
    pub(crate) fn create_new(pool: &Arc<FilePool>, path: PathBuf) -> io::Result<PooledFile> {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)?;
        Ok(PooledFile::lazy(pool, path))
    }

    #[cfg(test)]
    pub(crate) fn path(&self) -> &std::path::Path {
        &self.slot.path
    }

    fn lock(&self) -> MutexGuard<'_, Option<Arc<File>>> {
        self.slot
            .file
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The open file, opening it if the pool closed it (or it was never opened).
    pub(crate) fn get(&self) -> io::Result<Arc<File>> {
        let mut held = self.lock();
        self.slot.used.store(true, Ordering::Release);
        if let Some(f) = &*held {
            return Ok(f.clone());
        }
        let f = Arc::new(self.open()?);
        *held = Some(f.clone());
        // Admit after releasing the slot: the sweep takes the ring lock, then slots'.
        drop(held);
        self.slot.pool.admit(&self.slot);
        Ok(f)
    }

    /// The open file if the pool holds it, else a handle opened just for the caller and not
    /// kept (an fsync or a size check of a file at rest keeps it at rest).
    pub(crate) fn get_transient(&self) -> io::Result<Arc<File>> {
        if let Some(f) = &*self.lock() {
            self.slot.used.store(true, Ordering::Release);
            return Ok(f.clone());
        }
        Ok(Arc::new(self.open()?))
    }

    /// A new read-write handle on the (existing) file.
    fn open(&self) -> io::Result<File> {
        OpenOptions::new()
            .read(true)
            .write(true)
            .open(&self.slot.path)
    }

    /// Opens the file if needed and keeps it open until this is dropped (see the module docs).
    pub(crate) fn pin(&self) -> io::Result<()> {
        self.slot.pinned.store(true, Ordering::Release);
        self.get().map(drop)
    }

    /// Whether the file is open now (for tests).
    #[cfg(test)]
    pub(crate) fn is_open(&self) -> bool {
        self.lock().is_some()
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::FileExt;

    use std::path::Path;

    use super::*;

    fn files(pool: &Arc<FilePool>, dir: &Path, n: usize) -> Vec<PooledFile> {
        (0..n)
            .map(|i| {
                let f = PooledFile::create_new(pool, dir.join(format!("{i}.log"))).expect("create");
                f.get()
                    .expect("open")
                    .write_all_at(format!("file {i}").as_bytes(), 0)
                    .expect("write");
                f
            })
            .collect()
    }

    fn read(f: &PooledFile) -> String {
        let file = f.get().expect("open");
        let mut b = vec![0u8; file.metadata().expect("stat").len() as usize];
        file.read_exact_at(&mut b, 0).expect("read");
        String::from_utf8(b).expect("utf8")
    }

    #[test]
    fn keeps_at_most_capacity_files_open_and_reopens_on_use() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pool = FilePool::new(4);
        let fs = files(&pool, dir.path(), 20);
        assert!(pool.stats().open <= 4, "{:?}", pool.stats());
        for round in 0..3 {
            for (i, f) in fs.iter().enumerate() {
                assert_eq!(read(f), format!("file {i}"), "round {round}");
                assert!(pool.stats().open <= 4, "{:?}", pool.stats());
            }
        }
        let s = pool.stats();
        assert!(s.evicted >= 16 && s.opened >= 20, "{s:?}");
        drop(fs);
        assert_eq!(pool.stats().open, 0);
    }

    #[test]
    fn a_file_used_since_the_last_sweep_stays_open() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pool = FilePool::new(4);
        // Five files for four places: the sweep has cleared the use bits of the survivors.
        let fs = files(&pool, dir.path(), 5);
        let hot = fs
            .iter()
            .position(PooledFile::is_open)
            .expect("some file is open");
        for i in 0..10 {
            read(&fs[hot]);
            let extra =
                PooledFile::create_new(&pool, dir.path().join(format!("x{i}"))).expect("create");
            assert!(!extra.is_open(), "a new file is opened when first used");
            extra.get_transient().expect("open");
            assert!(!extra.is_open(), "a transient handle is not kept");
            extra.get().expect("open");
            assert!(fs[hot].is_open(), "evicted after being used (round {i})");
            assert!(pool.stats().open <= 4, "{:?}", pool.stats());
            drop(extra);
        }
    }

    #[test]
    fn a_pinned_file_reads_its_old_contents_after_the_path_is_replaced() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pool = FilePool::new(1);
        let fs = files(&pool, dir.path(), 2);
        fs[0].pin().expect("pin");
        let other = dir.path().join("other");
        std::fs::write(&other, "replacement").expect("write");
        std::fs::rename(&other, fs[0].path()).expect("rename");
        // Evictions cannot close it, however many other files are used.
        for _ in 0..3 {
            read(&fs[1]);
        }
        assert_eq!(read(&fs[0]), "file 0");
        std::fs::remove_file(fs[1].path()).expect("remove");
        drop(fs);
        assert_eq!(pool.stats().open, 0);
    }

    #[test]
    fn a_handle_in_use_survives_eviction() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pool = FilePool::new(1);
        let fs = files(&pool, dir.path(), 1);
        let held = fs[0].get().expect("open");
        let other = PooledFile::create_new(&pool, dir.path().join("b")).expect("create");
        other.get().expect("open");
        let mut b = [0u8; 6];
        held.read_exact_at(&mut b, 0).expect("read");
        assert_eq!(&b, b"file 0");
    }
}
