//! Where time comes from. Everything that reads the time — leases, ISR lag, retention, group
//! session timeouts — asks a [`Clock`], so tests can run those rules on a [`ManualClock`]
//! in-process instead of sleeping through them across processes (slatedb's shape).
//!
//! Two readings, as the standard library has them: a monotonic [`Instant`] for deadlines and
//! lag, and wall-clock milliseconds since the Unix epoch for what is stored or compared across
//! machines (record timestamps, retention, offset expiry).

use std::fmt::Debug;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A source of time. Implementations must be cheap to call and never go backwards in
/// [`Clock::now`].
pub trait Clock: Send + Sync + Debug {
    /// A monotonic instant, for deadlines and elapsed times.
    fn now(&self) -> Instant;
    /// Wall-clock milliseconds since the Unix epoch (0 if the system clock is before it).
    fn now_ms(&self) -> i64;
}

/// A shared clock handle, as components hold it.
pub type SharedClock = Arc<dyn Clock>;

/// The system's clocks.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl SystemClock {
    /// A shared handle to the system clock.
    pub fn shared() -> SharedClock {
        Arc::new(SystemClock)
    }
}

impl Clock for SystemClock {
    /// Tokio's reading of the monotonic clock, so that code under a paused tokio runtime
    /// (`tokio::time::pause`) sees the same time as its timers.
    #[allow(clippy::disallowed_methods)] // the one place that reads the system clock
    fn now(&self) -> Instant {
        tokio::time::Instant::now().into_std()
    }

    #[allow(clippy::disallowed_methods)] // the one place that reads the system clock
    fn now_ms(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0)
    }
}

/// A clock that moves only when told to: both readings advance together by
/// [`ManualClock::advance`].
#[derive(Debug)]
pub struct ManualClock {
    base: Instant,
    base_ms: i64,
    elapsed: Mutex<Duration>,
}

impl ManualClock {
    /// A manual clock starting at the current system time (so wall-clock readings look real).
    pub fn new() -> Arc<ManualClock> {
        let system = SystemClock;
        Self::starting_at(system.now(), system.now_ms())
    }

    /// A manual clock whose readings start at `base` and `base_ms`.
    pub fn starting_at(base: Instant, base_ms: i64) -> Arc<ManualClock> {
        Arc::new(ManualClock {
            base,
            base_ms,
            elapsed: Mutex::new(Duration::ZERO),
        })
    }

    /// Moves both readings forward by `by`.
    pub fn advance(&self, by: Duration) {
        let mut e = self
            .elapsed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *e += by;
    }

    fn elapsed(&self) -> Duration {
        *self
            .elapsed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        self.base + self.elapsed()
    }

    fn now_ms(&self) -> i64 {
        self.base_ms
            .saturating_add(i64::try_from(self.elapsed().as_millis()).unwrap_or(i64::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_advanced() {
        let c = ManualClock::starting_at(SystemClock.now(), 1_000);
        let (t0, ms0) = (c.now(), c.now_ms());
        assert_eq!(c.now(), t0);
        assert_eq!(ms0, 1_000);
        c.advance(Duration::from_millis(1_500));
        assert_eq!(c.now() - t0, Duration::from_millis(1_500));
        assert_eq!(c.now_ms(), 2_500);
    }

    #[test]
    fn system_clock_is_monotonic_and_after_2020() {
        let c = SystemClock;
        let a = c.now();
        assert!(c.now() >= a);
        assert!(c.now_ms() > 1_577_836_800_000);
    }
}
