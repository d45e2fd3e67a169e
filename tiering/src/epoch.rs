//! The leader-epoch cache of one partition (Kafka's `leader-epoch-checkpoint`, KIP-101).
//!
//! A sorted list of `(epoch, start_offset)`: the first offset written in each leader epoch.
//! A follower that rejoins asks the leader for the end offset of its latest epoch
//! (OffsetForLeaderEpoch) and truncates its log there. This module is the pure in-memory
//! structure and its text encoding; `log.rs` owns the file I/O, the locking and when the cache
//! changes.
//!
//! Invariants: epochs strictly increase, start offsets strictly increase, and both are
//! non-negative (batches stamped with a negative epoch, "no epoch", never enter the cache).

/// `UNDEFINED_EPOCH` / `UNDEFINED_EPOCH_OFFSET` of OffsetForLeaderEpoch.
pub(crate) const UNDEFINED: (i32, i64) = (-1, -1);

/// Version written on the first line of the checkpoint file (Kafka's is 0 too).
const VERSION: u32 = 0;

/// The cache. Cheap to clone; the log keeps it behind a mutex.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct EpochCache {
    /// `(epoch, start_offset)`, both strictly increasing.
    entries: Vec<(i32, i64)>,
}

impl EpochCache {
    /// The cache holding exactly `entries` (which must respect the invariants; the decoder
    /// checks them).
    #[cfg(test)]
    pub(crate) fn from_entries(entries: Vec<(i32, i64)>) -> Self {
        EpochCache { entries }
    }

    pub(crate) fn entries(&self) -> &[(i32, i64)] {
        &self.entries
    }

    /// The latest epoch, or -1 when the cache is empty.
    pub(crate) fn latest(&self) -> i32 {
        self.entries.last().map_or(-1, |e| e.0)
    }

    /// Records that `epoch` starts at `start`, if `epoch` is newer than the latest cached
    /// epoch (and not negative). Like Kafka's `assign`, entries starting at or after `start`
    /// are dropped first, so that an epoch that began at the same offset as the previous one
    /// (leadership changed twice with no append between) replaces it. Returns whether the
    /// cache changed.
    pub(crate) fn assign(&mut self, epoch: i32, start: i64) -> bool {
        if epoch < 0 || start < 0 || epoch <= self.latest() {
            return false;
        }
        while self.entries.last().is_some_and(|e| e.1 >= start) {
            self.entries.pop();
        }
        self.entries.push((epoch, start));
        true
    }

    /// Drops every entry starting at or after `end` (the log was truncated to `end`, or a
    /// crash lost the tail). Returns whether the cache changed.
    pub(crate) fn truncate_from_end(&mut self, end: i64) -> bool {
        let keep = self.entries.partition_point(|e| e.1 < end);
        let changed = keep < self.entries.len();
        self.entries.truncate(keep);
        changed
    }

    /// The log start moved to `start`: entries starting at or below it go, except the last of
    /// them (the epoch covering `start`), which now starts at `start` (Kafka's
    /// `truncateFromStart`). Returns whether the cache changed.
    pub(crate) fn truncate_from_start(&mut self, start: i64) -> bool {
        let covered = self.entries.partition_point(|e| e.1 <= start);
        if covered == 0 || (covered == 1 && self.entries[0].1 == start) {
            return false;
        }
        let epoch = self.entries[covered - 1].0;
        self.entries.drain(..covered - 1);
        self.entries[0] = (epoch, start);
        true
    }

    /// Kafka's `LeaderEpochFileCache.endOffsetFor(requested)`, as `(epoch, end_offset)`:
    ///
    /// - `requested` is the latest cached epoch: `(requested, log_end)`;
    /// - no cached epoch is larger than `requested` (empty cache, negative `requested`, or
    ///   `requested` beyond the latest epoch): [`UNDEFINED`], `(-1, -1)`;
    /// - `requested` is below the earliest cached epoch: `(requested, start of the earliest
    ///   epoch)` (the data before it is gone; the follower truncates to where the cache
    ///   begins);
    /// - otherwise: the largest cached epoch `<= requested`, ending where the smallest cached
    ///   epoch `> requested` starts.
    pub(crate) fn end_offset_for(&self, requested: i32, log_end: i64) -> (i32, i64) {
        if requested < 0 {
            return UNDEFINED;
        }
        if self.entries.last().is_some_and(|e| e.0 == requested) {
            return (requested, log_end);
        }
        let higher = self.entries.partition_point(|e| e.0 <= requested);
        let Some(&(_, end)) = self.entries.get(higher) else {
            return UNDEFINED;
        };
        match higher.checked_sub(1) {
            None => (requested, end),
            Some(floor) => (self.entries[floor].0, end),
        }
    }

    /// The checkpoint file's text: a version line, a count line, then `epoch start` lines.
    pub(crate) fn encode(&self) -> String {
        let mut s = format!("{VERSION}\n{}\n", self.entries.len());
        for (epoch, start) in &self.entries {
            s.push_str(&format!("{epoch} {start}\n"));
        }
        s
    }

    /// Parses [`encode`](Self::encode)'s text, checking the version, the count and the
    /// invariants. The error says what is wrong.
    pub(crate) fn decode(text: &str) -> Result<EpochCache, String> {
        let mut lines = text.lines();
        let version = lines.next().ok_or("empty file")?;
        if version.trim() != VERSION.to_string() {
            return Err(format!("unsupported version {version:?}"));
        }
        let count: usize = lines
            .next()
            .and_then(|l| l.trim().parse().ok())
            .ok_or("missing or bad count line")?;
        let mut cache = EpochCache::default();
        for (i, line) in lines.enumerate() {
            let mut parts = line.split_whitespace();
            let parsed = match (parts.next(), parts.next(), parts.next()) {
                (Some(e), Some(o), None) => e.parse::<i32>().ok().zip(o.parse::<i64>().ok()),
                _ => None,
            };
            let (epoch, start) = parsed.ok_or_else(|| format!("entry {i}: bad line {line:?}"))?;
            let ordered = cache
                .entries
                .last()
                .is_none_or(|l| l.0 < epoch && l.1 < start);
            if epoch < 0 || start < 0 || !ordered {
                return Err(format!(
                    "entry {i}: ({epoch}, {start}) breaks the ordering of the cache"
                ));
            }
            cache.entries.push((epoch, start));
        }
        if cache.entries.len() != count {
            return Err(format!(
                "count line says {count} entries, file has {}",
                cache.entries.len()
            ));
        }
        Ok(cache)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn assign_keeps_epochs_and_offsets_increasing() {
        let mut c = EpochCache::default();
        assert_eq!(c.latest(), -1);
        assert!(c.assign(0, 0));
        assert!(!c.assign(0, 5), "same epoch again: no change");
        assert!(c.assign(1, 5));
        assert!(!c.assign(0, 9), "an older epoch never enters");
        assert!(!c.assign(-1, 9), "no epoch never enters");
        assert!(c.assign(3, 12));
        assert_eq!(c.entries(), &[(0, 0), (1, 5), (3, 12)]);
        // two leadership changes with no append between: the later epoch replaces
        assert!(c.assign(4, 12));
        assert_eq!(c.entries(), &[(0, 0), (1, 5), (4, 12)]);
        assert_eq!(c.latest(), 4);
    }

    #[test]
    fn end_offset_for_follows_kafka() {
        let empty = EpochCache::default();
        assert_eq!(empty.end_offset_for(0, 10), UNDEFINED);
        assert_eq!(empty.end_offset_for(-1, 10), UNDEFINED);

        let c = EpochCache::from_entries(vec![(1, 10), (3, 20), (4, 35)]);
        // below the earliest epoch: where the cache begins
        assert_eq!(c.end_offset_for(0, 50), (0, 10));
        // a cached, non-latest epoch ends where the next one starts
        assert_eq!(c.end_offset_for(1, 50), (1, 20));
        assert_eq!(c.end_offset_for(3, 50), (3, 35));
        // a gap epoch: the epoch before it, ending where the one after it starts
        assert_eq!(c.end_offset_for(2, 50), (1, 20));
        // the latest epoch ends at the log end
        assert_eq!(c.end_offset_for(4, 50), (4, 50));
        // beyond the latest epoch: undefined
        assert_eq!(c.end_offset_for(5, 50), UNDEFINED);
        assert_eq!(c.end_offset_for(-1, 50), UNDEFINED);
    }

    #[test]
    fn truncation_from_both_ends() {
        let mut c = EpochCache::from_entries(vec![(1, 10), (3, 20), (4, 35)]);
        assert!(!c.truncate_from_end(36));
        assert!(c.truncate_from_end(35));
        assert_eq!(c.entries(), &[(1, 10), (3, 20)]);
        assert!(!c.truncate_from_start(5));
        assert!(!c.truncate_from_start(10), "the entry already starts there");
        assert!(c.truncate_from_start(25));
        assert_eq!(c.entries(), &[(3, 25)]);
        assert!(c.truncate_from_end(0));
        assert!(c.entries().is_empty());
        assert!(!c.truncate_from_start(7));
    }

    #[test]
    fn text_round_trip_and_rejects_garbage() {
        let c = EpochCache::from_entries(vec![(0, 0), (2, 7), (5, 100)]);
        let text = c.encode();
        assert_eq!(text, "0\n3\n0 0\n2 7\n5 100\n");
        assert_eq!(EpochCache::decode(&text).unwrap(), c);
        assert_eq!(EpochCache::decode("0\n0\n").unwrap(), EpochCache::default());
        for bad in [
            "",
            "1\n0\n",
            "0\n",
            "0\nx\n",
            "0\n2\n0 0\n",
            "0\n1\n0 0 0\n",
            "0\n2\n1 5\n1 9\n",
            "0\n2\n1 5\n2 5\n",
            "0\n1\n-1 0\n",
        ] {
            assert!(EpochCache::decode(bad).is_err(), "{bad:?}");
        }
    }
}
