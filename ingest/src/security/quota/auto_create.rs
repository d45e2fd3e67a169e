//! A per-address allowance of auto-created topics: at most `auto_create_topics_per_ip_per_minute`
//! topics a minute created by Metadata requests from one client address. Kafka has no such
//! limit (its controller-mutation quota is permissive for auto-creation), but every topic
//! costs descriptors, files and metadata, so one client asking for ever new names must not be
//! able to create them without bound.
//!
//! The minute is a fixed window per address that starts with its first creation; the table
//! forgets addresses whose window is over once it grows large.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tierlog_metadata::SharedClock;

/// The window the allowance is counted over.
const WINDOW: Duration = Duration::from_secs(60);
/// Addresses kept before windows that are over are dropped.
const PRUNE_AT: usize = 4096;

/// Auto-created topics per client address in its current window.
#[derive(Debug)]
pub(crate) struct AutoCreateLimiter {
    per_window: usize,
    clock: SharedClock,
    /// Each address's window start and the creations counted in it.
    windows: Mutex<HashMap<IpAddr, (Instant, usize)>>,
}

impl AutoCreateLimiter {
    pub(crate) fn new(per_window: usize, clock: SharedClock) -> AutoCreateLimiter {
        AutoCreateLimiter {
            per_window,
            clock,
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one creation from `ip`'s allowance; false when it is used up for this minute.
    pub(crate) fn try_take(&self, ip: IpAddr) -> bool {
        let now = self.clock.now();
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        if windows.len() >= PRUNE_AT {
            windows.retain(|_, (start, _)| now.saturating_duration_since(*start) < WINDOW);
        }
        let (start, used) = windows.entry(ip).or_insert((now, 0));
        if now.saturating_duration_since(*start) >= WINDOW {
            *start = now;
            *used = 0;
        }
        if *used >= self.per_window {
            return false;
        }
        *used += 1;
        true
    }

    /// Gives back a creation taken for a topic that turned out to exist already.
    pub(crate) fn give_back(&self, ip: IpAddr) {
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, used)) = windows.get_mut(&ip) {
            *used = used.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tierlog_metadata::ManualClock;

    #[test]
    fn an_address_gets_its_allowance_each_minute() {
        let clock = ManualClock::new();
        let l = AutoCreateLimiter::new(3, clock.clone());
        let a: IpAddr = "10.0.0.1".parse().expect("ip");
        let b: IpAddr = "10.0.0.2".parse().expect("ip");
        assert!((0..3).all(|_| l.try_take(a)));
        assert!(!l.try_take(a));
        l.give_back(a);
        assert!(l.try_take(a));
        assert!(!l.try_take(a));
        // Another address has its own.
        assert!(l.try_take(b));
        clock.advance(WINDOW);
        assert!(l.try_take(a));
    }
}
