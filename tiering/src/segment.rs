//! One segment: its files (`.log`, `.index`, `.timeindex`, and `.txnindex` once it records an
//! aborted transaction), positional I/O on them, and the batch scanner recovery uses.
//!
//! Lifecycle: a segment is created empty when the log rolls (or is first opened), receives
//! appends while it is the active (last) segment, is sealed when the log rolls past it, and is
//! deleted by retention. All I/O is positional (`pread`/`pwrite` through
//! [`FileExt`]), so readers share the file handle with the writer without a lock: a reader
//! only ever reads below the committed size it snapshotted, and bytes below it never change.

use std::fs::{File, OpenOptions};
use std::io;
use std::ops::ControlFlow;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::batch::{self, BatchHeader, HEADER_SIZE, LOG_OVERHEAD};
use crate::error::{Error, Result};
use crate::files::{FilePool, PooledFile};
use crate::index::SegmentIndex;
use crate::producer::AbortedTxn;

pub(crate) const LOG_SUFFIX: &str = "log";
pub(crate) const INDEX_SUFFIX: &str = "index";
pub(crate) const TIME_INDEX_SUFFIX: &str = "timeindex";
pub(crate) const TXN_INDEX_SUFFIX: &str = "txnindex";

/// Window size of [`ChunkReader`]: large enough that locating a batch from an index entry
/// (at most `index.interval.bytes` away) is usually one `pread`.
pub(crate) const CHUNK: usize = 256 * 1024;

/// `{base_offset:020}.{suffix}`, Kafka's file naming.
pub(crate) fn file_name(base_offset: i64, suffix: &str) -> String {
    format!("{base_offset:020}.{suffix}")
}

/// Parses a `{base_offset:020}.log` file name.
pub(crate) fn parse_log_name(name: &str) -> Option<i64> {
    parse_name(name, LOG_SUFFIX)
}

/// Parses a `{offset:020}.{suffix}` file name.
pub(crate) fn parse_name(name: &str, suffix: &str) -> Option<i64> {
    let stem = name.strip_suffix(suffix)?.strip_suffix('.')?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

#[derive(Debug)]
pub(crate) struct Segment {
    pub(crate) base_offset: i64,
    pub(crate) log_path: PathBuf,
    index_path: PathBuf,
    time_path: PathBuf,
    /// The log file, open only while the pool lets it be (see `files.rs`). The index files
    /// are opened only to be written (by flushes) or read (by recovery): lookups use the
    /// in-memory `index`.
    log: PooledFile,
    /// Index entries were written since the index files were last fsynced.
    index_unsynced: AtomicBool,
    /// Sparse indexes. Mutated by the (single) appender and by flush when persisting; read by
    /// lookups. Held only for in-memory work, never across file I/O on the log file.
    index: Mutex<SegmentIndex>,
    txn_path: PathBuf,
    /// The transaction index: written by the appender (abort markers are rare, so it is held
    /// across the 34-byte write), read by `aborted_transactions`. A leaf lock.
    txn: Mutex<TxnIndex>,
    /// Quarantined ranges of the log file, by position (see `log/damage.rs`). Set by a survey
    /// of the segment (recovery, a read or the scrubber finding bad bytes), shrunk by
    /// repairs; readers copy it (it is almost always empty). A leaf lock.
    damaged: Mutex<Vec<DamagedRange>>,
}

/// A quarantined range of a local segment: batches in the middle of the log whose bytes
/// failed their CRC-32C or framing checks (bit rot, a bad sector, a file cut short or
/// overwritten), found with good batches after them — as opposed to a torn tail, which
/// recovery truncates. Reads of its offsets fail with [`Error::Damaged`]; the offsets
/// around it stay readable; a repair with the same batches from another copy lifts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DamagedRange {
    /// Base offset of the segment holding the range.
    pub segment_base: i64,
    /// First offset of the range.
    pub first_offset: i64,
    /// Last offset of the range (inclusive).
    pub last_offset: i64,
    /// Position of the first bad byte in the segment's `.log` file.
    pub start_pos: u64,
    /// Position just after the range (where the next good batch starts, or the end of the
    /// file).
    pub end_pos: u64,
    /// What was wrong with the first bad batch.
    pub reason: String,
}

impl DamagedRange {
    /// Whether `offset` lies in the range.
    pub fn holds(&self, offset: i64) -> bool {
        self.first_offset <= offset && offset <= self.last_offset
    }
}

/// The aborted transactions whose markers are in one segment, in marker order, and whether
/// the `.txnindex` file holding them exists (it is created with the first entry: most
/// segments have none, and it is opened only to be written).
#[derive(Debug, Default)]
struct TxnIndex {
    entries: Vec<AbortedTxn>,
    file: bool,
    /// Written since the last fsync.
    dirty: bool,
}

impl Segment {
    /// Creates the files of a new, empty segment. Fails if its log file already exists.
    ///
    /// The log file is created last: it is what makes the segment exist (recovery lists
    /// `.log` files), so a creation that fails half-way — out of descriptors, say — leaves no
    /// `.log` behind, only side files that the next attempt truncates, and the next roll at
    /// the same offset succeeds once the cause is gone.
    pub(crate) fn create(dir: &Path, base_offset: i64) -> Result<Segment> {
        let log_path = dir.join(file_name(base_offset, LOG_SUFFIX));
        let seg = Self::with_log(
            dir,
            base_offset,
            log_path.clone(),
            PooledFile::lazy(FilePool::global(), log_path.clone()),
        );
        // Empty index files (any left by an earlier segment at this offset describe other
        // bytes), so that a reopen finds them even if no entry is ever written.
        for p in [&seg.index_path, &seg.time_path] {
            open_index(p)?
                .set_len(0)
                .map_err(|e| Error::io("truncate index", p, e))?;
        }
        remove_if_exists(&seg.txn_path)?;
        PooledFile::create_new(FilePool::global(), log_path.clone())
            .map_err(|e| Error::io("create segment", &log_path, e))?;
        Ok(seg)
    }

    /// Opens an existing segment (its log file is opened when first used). Also reports
    /// whether both index files already existed.
    pub(crate) fn open(dir: &Path, base_offset: i64) -> Result<(Segment, bool)> {
        let log_path = dir.join(file_name(base_offset, LOG_SUFFIX));
        if !log_path.is_file() {
            return Err(Error::io(
                "open segment",
                &log_path,
                io::Error::from(io::ErrorKind::NotFound),
            ));
        }
        let log = PooledFile::lazy(FilePool::global(), log_path.clone());
        let mut seg = Self::with_log(dir, base_offset, log_path, log);
        let existed = seg.index_path.exists() && seg.time_path.exists();
        if !existed {
            for p in [&seg.index_path, &seg.time_path] {
                open_index(p)?;
            }
        }
        seg.txn = Mutex::new(TxnIndex::load(&seg.txn_path)?);
        Ok((seg, existed))
    }

    fn with_log(dir: &Path, base_offset: i64, log_path: PathBuf, log: PooledFile) -> Segment {
        Segment {
            base_offset,
            log_path,
            index_path: dir.join(file_name(base_offset, INDEX_SUFFIX)),
            time_path: dir.join(file_name(base_offset, TIME_INDEX_SUFFIX)),
            log,
            index_unsynced: AtomicBool::new(false),
            index: Mutex::new(SegmentIndex::new(base_offset)),
            txn_path: dir.join(file_name(base_offset, TXN_INDEX_SUFFIX)),
            txn: Mutex::new(TxnIndex::default()),
            damaged: Mutex::new(Vec::new()),
        }
    }

    /// The quarantined ranges of this segment, by position (usually none).
    pub(crate) fn damaged(&self) -> Vec<DamagedRange> {
        self.damaged
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Replaces the quarantined ranges (after a survey or a repair).
    pub(crate) fn set_damaged(&self, ranges: Vec<DamagedRange>) {
        *self.damaged.lock().unwrap_or_else(PoisonError::into_inner) = ranges;
    }

    /// Whether any range is quarantined (one lock, no copy).
    pub(crate) fn is_damaged(&self) -> bool {
        !self
            .damaged
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_empty()
    }

    /// The log file if open, else a handle not kept (for fsyncs and size checks).
    fn file_transient(&self) -> Result<Arc<File>> {
        self.log
            .get_transient()
            .map_err(|e| Error::io("open segment", &self.log_path, e))
    }

    /// The log file, opened if the pool had closed it.
    fn file(&self) -> Result<Arc<File>> {
        self.log
            .get()
            .map_err(|e| Error::io("open segment", &self.log_path, e))
    }

    /// Keeps the log file open for as long as this segment lives, before its path is deleted
    /// or replaced: readers still holding the segment keep reading what it held. Best effort
    /// (a reader racing the deletion of an unpinned file gets an I/O error and retries).
    pub(crate) fn pin(&self) {
        if let Err(e) = self.log.pin() {
            tracing::warn!(path = %self.log_path.display(), error = %e, "could not keep a retired segment open");
        }
    }

    /// Path of the offset index file.
    pub(crate) fn index_path(&self) -> &Path {
        &self.index_path
    }

    /// Path of the time index file.
    pub(crate) fn time_index_path(&self) -> &Path {
        &self.time_path
    }

    /// Path of the transaction index file, if this segment has one.
    pub(crate) fn txn_index_path(&self) -> Option<&Path> {
        self.txn().file.then_some(self.txn_path.as_path())
    }

    fn txn(&self) -> MutexGuard<'_, TxnIndex> {
        self.txn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records an aborted transaction whose marker is in this segment, unless an entry for a
    /// marker at or after it is already there (recovery replaying markers the index already
    /// holds). Not fsynced until the next [`sync_log`](Self::sync_log).
    pub(crate) fn append_txn(&self, t: AbortedTxn) -> Result<()> {
        let mut txn = self.txn();
        if txn
            .entries
            .last()
            .is_some_and(|l| l.last_offset >= t.last_offset)
        {
            return Ok(());
        }
        let at = (txn.entries.len() * AbortedTxn::SIZE) as u64;
        open_txn_file(&self.txn_path)?
            .write_all_at(&t.encode(), at)
            .map_err(|e| Error::io("write transaction index", &self.txn_path, e))?;
        txn.file = true;
        txn.entries.push(t);
        txn.dirty = true;
        Ok(())
    }

    /// Kafka's `TransactionIndex.collectAbortedTxns`: adds the entries overlapping
    /// `[from, upper)` (`last_offset >= from`, `first_offset < upper`) to `out`; returns
    /// `true` once an entry shows that no later segment can add more (its last stable offset
    /// reaches `upper`).
    pub(crate) fn collect_aborted(&self, from: i64, upper: i64, out: &mut Vec<AbortedTxn>) -> bool {
        for t in &self.txn().entries {
            if t.last_offset >= from && t.first_offset < upper {
                out.push(*t);
            }
            if t.last_stable_offset >= upper {
                return true;
            }
        }
        false
    }

    /// The `.txnindex` bytes of the entries whose marker is at or after `from` (a segment's
    /// tail uploaded on its own), `None` when there are none.
    pub(crate) fn txn_index_from(&self, from: i64) -> Option<Vec<u8>> {
        let txn = self.txn();
        let tail = &txn.entries[txn.entries.partition_point(|t| t.last_offset < from)..];
        (!tail.is_empty()).then(|| tail.iter().flat_map(AbortedTxn::encode).collect())
    }

    /// Drops the entries whose marker is at or after `end` (the segment was cut there).
    pub(crate) fn truncate_txn(&self, end: i64) -> Result<()> {
        let mut txn = self.txn();
        let keep = txn.entries.partition_point(|t| t.last_offset < end);
        if keep == txn.entries.len() {
            return Ok(());
        }
        txn.entries.truncate(keep);
        if txn.file {
            open_txn_file(&self.txn_path)?
                .set_len((keep * AbortedTxn::SIZE) as u64)
                .map_err(|e| Error::io("truncate transaction index", &self.txn_path, e))?;
            txn.dirty = true;
        }
        Ok(())
    }

    pub(crate) fn index(&self) -> MutexGuard<'_, SegmentIndex> {
        self.index.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Replaces the in-memory index (after loading or rebuilding it).
    pub(crate) fn set_index(&self, index: SegmentIndex) {
        *self.index() = index;
    }

    /// Reads the index files' raw bytes.
    pub(crate) fn read_index_files(&self) -> Result<(Vec<u8>, Vec<u8>)> {
        Ok((
            read_whole(&open_index(&self.index_path)?, &self.index_path)?,
            read_whole(&open_index(&self.time_path)?, &self.time_path)?,
        ))
    }

    pub(crate) fn file_len(&self) -> Result<u64> {
        Ok(self
            .file_transient()?
            .metadata()
            .map_err(|e| Error::io("stat segment", &self.log_path, e))?
            .len())
    }

    pub(crate) fn read_exact_at(&self, buf: &mut [u8], pos: u64) -> Result<()> {
        self.file()?
            .read_exact_at(buf, pos)
            .map_err(|e| Error::io("read segment", &self.log_path, e))
    }

    pub(crate) fn write_all_at(&self, buf: &[u8], pos: u64) -> Result<()> {
        self.file()?
            .write_all_at(buf, pos)
            .map_err(|e| Error::io("write segment", &self.log_path, e))
    }

    pub(crate) fn truncate(&self, size: u64) -> Result<()> {
        self.file()?
            .set_len(size)
            .map_err(|e| Error::io("truncate segment", &self.log_path, e))
    }

    /// fsyncs the log file (data and the size metadata needed to read it back), and the
    /// transaction index if it changed.
    pub(crate) fn sync_log(&self) -> Result<()> {
        self.file_transient()?
            .sync_data()
            .map_err(|e| Error::io("fsync segment", &self.log_path, e))?;
        let mut txn = self.txn();
        if txn.dirty && txn.file {
            open_txn_file(&self.txn_path)?
                .sync_data()
                .map_err(|e| Error::io("fsync transaction index", &self.txn_path, e))?;
            txn.dirty = false;
        }
        Ok(())
    }

    /// Writes index entries the files lack; with `fsync`, also makes them durable.
    pub(crate) fn persist_index(&self, fsync: bool) -> Result<()> {
        // Encode under the lock, write without it: lookups never wait on index file I/O.
        let pending = self.index().pending();
        let mut files = None;
        if let Some(w) = pending {
            let (i, t) = (open_index(&self.index_path)?, open_index(&self.time_path)?);
            self.index_unsynced.store(true, Ordering::Release);
            w.write(&i, &t)
                .map_err(|e| Error::io("write index", &self.index_path, e))?;
            self.index().mark_persisted(&w);
            files = Some((i, t));
        }
        if fsync && self.index_unsynced.swap(false, Ordering::AcqRel) {
            let mut sync = || {
                let (i, t) = match files.take() {
                    Some(f) => f,
                    None => (open_index(&self.index_path)?, open_index(&self.time_path)?),
                };
                i.sync_data()
                    .map_err(|e| Error::io("fsync index", &self.index_path, e))?;
                t.sync_data()
                    .map_err(|e| Error::io("fsync index", &self.time_path, e))
            };
            if let Err(e) = sync() {
                self.index_unsynced.store(true, Ordering::Release);
                return Err(e);
            }
        }
        Ok(())
    }

    /// Unlinks the segment's files, log first (so a crash midway leaves orphan indexes, which
    /// open() removes, never a log without the segments before it).
    pub(crate) fn delete_files(&self) -> Result<()> {
        for p in [
            &self.log_path,
            &self.index_path,
            &self.time_path,
            &self.txn_path,
        ] {
            remove_if_exists(p)?;
        }
        Ok(())
    }

    /// Reads `[pos, pos + len)` into a new buffer.
    pub(crate) fn read_vec(&self, pos: u64, len: usize) -> Result<Vec<u8>> {
        let mut buf = vec![0u8; len];
        self.read_exact_at(&mut buf, pos)?;
        Ok(buf)
    }

    /// Last modification time of the log file in ms since the epoch.
    pub(crate) fn modified_ms(&self) -> Option<i64> {
        let t = std::fs::metadata(&self.log_path).ok()?.modified().ok()?;
        let d = t.duration_since(std::time::UNIX_EPOCH).ok()?;
        i64::try_from(d.as_millis()).ok()
    }

    pub(crate) fn corrupt(&self, position: u64, reason: impl Into<String>) -> Error {
        Error::CorruptSegment {
            path: self.log_path.clone(),
            position,
            reason: reason.into(),
        }
    }
}

/// The whole content of an index file.
fn read_whole(f: &File, p: &Path) -> Result<Vec<u8>> {
    let len = f
        .metadata()
        .map_err(|e| Error::io("stat index", p, e))?
        .len();
    let mut buf = vec![0u8; len as usize];
    f.read_exact_at(&mut buf, 0)
        .map_err(|e| Error::io("read index", p, e))?;
    Ok(buf)
}

fn remove_if_exists(p: &Path) -> Result<()> {
    match std::fs::remove_file(p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("delete segment file", p, e)),
    }
}

/// Opens (creating) a side file for reading and writing; `what` names it in errors.
fn open_side_file(p: &Path, what: &'static str) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(p)
        .map_err(|e| Error::io(what, p, e))
}

/// Opens (creating) an index file.
fn open_index(p: &Path) -> Result<File> {
    open_side_file(p, "open index")
}

/// Opens (creating) a transaction index file.
fn open_txn_file(p: &Path) -> Result<File> {
    open_side_file(p, "open transaction index")
}

impl TxnIndex {
    /// Reads an existing `.txnindex`; a partial last entry (torn write) or an entry with an
    /// unknown version ends it (the file is cut there).
    fn load(path: &Path) -> Result<TxnIndex> {
        if !path.exists() {
            return Ok(TxnIndex::default());
        }
        let file = open_txn_file(path)?;
        let buf = read_whole(&file, path)?;
        let len = buf.len() as u64;
        let entries: Vec<AbortedTxn> = buf
            .chunks_exact(AbortedTxn::SIZE)
            .map_while(AbortedTxn::decode)
            .collect();
        let valid = (entries.len() * AbortedTxn::SIZE) as u64;
        if valid != len {
            tracing::warn!(path = %path.display(), len, valid, "cutting a damaged transaction index");
            file.set_len(valid)
                .map_err(|e| Error::io("truncate transaction index", path, e))?;
        }
        Ok(TxnIndex {
            entries,
            file: true,
            dirty: valid != len,
        })
    }
}

/// Buffered positional reader over `[0, end)` of a segment, for walking batch headers.
pub(crate) struct ChunkReader<'a> {
    seg: &'a Segment,
    end: u64,
    chunk: usize,
    buf: Vec<u8>,
    buf_start: u64,
    /// The segment's damaged ranges as `(start, end)` positions when the reader was made:
    /// [`next_header`](Self::next_header) steps over them.
    holes: Vec<(u64, u64)>,
}

impl<'a> ChunkReader<'a> {
    pub(crate) fn new(seg: &'a Segment, end: u64) -> Self {
        Self::with_chunk(seg, end, CHUNK)
    }

    /// A reader whose reads are at least `chunk` bytes (when that much is left).
    pub(crate) fn with_chunk(seg: &'a Segment, end: u64, chunk: usize) -> Self {
        ChunkReader {
            seg,
            end,
            chunk,
            buf: Vec::new(),
            buf_start: 0,
            holes: seg
                .damaged()
                .iter()
                .map(|d| (d.start_pos, d.end_pos))
                .collect(),
        }
    }

    /// The next good batch at or after `pos` (stepping over damaged ranges) and its
    /// position, `None` at the end; bad framing is [`Error::CorruptSegment`].
    pub(crate) fn next_header(&mut self, pos: u64) -> Result<Option<(u64, BatchHeader)>> {
        let pos = self
            .holes
            .iter()
            .find(|(start, end)| *start <= pos && pos < *end)
            .map_or(pos, |(_, end)| *end);
        if pos >= self.end {
            return Ok(None);
        }
        let h = self.header(pos)?.map_err(|r| self.seg.corrupt(pos, r))?;
        Ok(Some((pos, h)))
    }

    /// Bytes `[pos, pos + len)`; the caller guarantees `pos + len <= end`.
    pub(crate) fn get(&mut self, pos: u64, len: usize) -> Result<&[u8]> {
        let have =
            pos >= self.buf_start && pos + len as u64 <= self.buf_start + self.buf.len() as u64;
        if !have {
            // Read ahead no further than the next damaged range (its bytes may not exist).
            let limit = self
                .holes
                .iter()
                .map(|(start, _)| *start)
                .filter(|start| *start >= pos + len as u64)
                .min()
                .unwrap_or(self.end);
            let want = (len.max(self.chunk) as u64).min(limit - pos) as usize;
            self.buf.resize(want, 0);
            self.buf_start = pos;
            self.seg.read_exact_at(&mut self.buf, pos)?;
        }
        let from = (pos - self.buf_start) as usize;
        Ok(&self.buf[from..from + len])
    }

    /// The header of the batch at `pos`, checking that it is framed within `end`.
    pub(crate) fn header(&mut self, pos: u64) -> Result<std::result::Result<BatchHeader, String>> {
        let left = self.end - pos;
        if left < HEADER_SIZE as u64 {
            return Ok(Err(format!(
                "truncated batch header: {left} bytes left, need {HEADER_SIZE}"
            )));
        }
        let h = match BatchHeader::parse(self.get(pos, HEADER_SIZE)?) {
            Ok(h) => h,
            Err(e) => return Ok(Err(e.to_string())),
        };
        if h.batch_length < (HEADER_SIZE - LOG_OVERHEAD) as i32 {
            return Ok(Err(format!("batchLength {} too small", h.batch_length)));
        }
        if h.size() > left {
            return Ok(Err(format!(
                "truncated batch: batchLength {} needs {} bytes, {left} left",
                h.batch_length,
                h.size()
            )));
        }
        if h.magic != 2 {
            return Ok(Err(format!("magic {} is not 2", h.magic)));
        }
        if h.last_offset_delta < 0 {
            return Ok(Err(format!(
                "negative lastOffsetDelta {}",
                h.last_offset_delta
            )));
        }
        Ok(Ok(h))
    }

    /// CRC-32C of the batch at `pos`, computed over bounded windows (a corrupt length can
    /// claim up to 2 GiB; we never buffer more than one chunk of it).
    pub(crate) fn crc_ok(&mut self, pos: u64, h: &BatchHeader) -> Result<bool> {
        if h.size() <= CHUNK as u64 {
            let size = h.size() as usize;
            let b = self.get(pos, size)?;
            return Ok(batch::crc_matches(b, h));
        }
        let mut crc = 0u32;
        let mut at = pos + 21;
        let end = pos + h.size();
        while at < end {
            let n = ((end - at) as usize).min(CHUNK);
            crc = crc32c::crc32c_append(crc, self.get(at, n)?);
            at += n as u64;
        }
        Ok(crc == h.crc)
    }
}

/// Why a scan stopped.
#[derive(Debug)]
pub(crate) struct ScanEnd {
    /// Position just after the last batch that passed.
    pub(crate) valid_end: u64,
    /// `None` when the scan reached `end` cleanly (or the visitor stopped it), else why the
    /// bytes at `valid_end` are not a valid batch.
    pub(crate) problem: Option<String>,
}

/// Walks the batches in `[start, end)` of `seg`, checking framing, magic, and (with
/// `verify_crc`) CRC-32C, calling `visit(pos, header)` for each good batch. The visitor may
/// stop the scan (`Break(None)`) or declare the batch invalid (`Break(Some(reason))`).
pub(crate) fn scan(
    seg: &Segment,
    start: u64,
    end: u64,
    verify_crc: bool,
    mut visit: impl FnMut(u64, &BatchHeader) -> ControlFlow<Option<String>>,
) -> Result<ScanEnd> {
    let mut reader = ChunkReader::new(seg, end);
    let mut pos = start;
    while pos < end {
        let h = match reader.header(pos)? {
            Ok(h) => h,
            Err(problem) => {
                return Ok(ScanEnd {
                    valid_end: pos,
                    problem: Some(problem),
                });
            }
        };
        if verify_crc && !reader.crc_ok(pos, &h)? {
            return Ok(ScanEnd {
                valid_end: pos,
                problem: Some("crc-32c mismatch".into()),
            });
        }
        match visit(pos, &h) {
            ControlFlow::Continue(()) => {}
            ControlFlow::Break(None) => {
                return Ok(ScanEnd {
                    valid_end: pos,
                    problem: None,
                });
            }
            ControlFlow::Break(Some(problem)) => {
                return Ok(ScanEnd {
                    valid_end: pos,
                    problem: Some(problem),
                });
            }
        }
        pos += h.size();
    }
    Ok(ScanEnd {
        valid_end: pos,
        problem: None,
    })
}
