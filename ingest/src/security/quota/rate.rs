//! Kafka's sampled rate (`org.apache.kafka.common.metrics.stats.Rate` over a `SampledStat`):
//! the sum of the values recorded in the last `samples` windows of `window_ms`, divided by the
//! time those windows cover.
//!
//! The arithmetic follows Kafka's exactly, because throttle times are computed from it and
//! clients see them: a window is complete once `window_ms` has passed since it started; the
//! next record then starts a new one, reusing the oldest slot; windows older than
//! `samples × window_ms` are reset before measuring; and the elapsed time the sum is divided
//! by is at least `samples - 1` whole windows, so a burst right after a quiet spell is spread
//! over the full history instead of looking like an infinite rate.

/// How a rate is sampled: Kafka's `quota.window.num` and `quota.window.size.seconds`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RateConfig {
    /// Number of windows kept (Kafka's default 11).
    pub(crate) samples: usize,
    /// Length of one window, in milliseconds (Kafka's default 1 s).
    pub(crate) window_ms: u64,
}

impl Default for RateConfig {
    fn default() -> Self {
        RateConfig {
            samples: 11,
            window_ms: 1000,
        }
    }
}

/// One window: when it started and what was recorded in it.
#[derive(Debug, Clone, Copy)]
struct Sample {
    start_ms: u64,
    value: f64,
}

impl Sample {
    fn new(now_ms: u64) -> Sample {
        Sample {
            start_ms: now_ms,
            value: 0.0,
        }
    }
}

/// A rate over sampled windows. Times are milliseconds on any monotonic origin; callers pass
/// non-decreasing times (an earlier one only counts into the current window).
#[derive(Debug, Clone, Default)]
pub(crate) struct SampledRate {
    samples: Vec<Sample>,
    current: usize,
}

impl SampledRate {
    /// Adds `value` at `now_ms` (negative to take back an earlier record).
    pub(crate) fn record(&mut self, cfg: RateConfig, value: f64, now_ms: u64) {
        if self.samples.is_empty() {
            self.samples.push(Sample::new(now_ms));
            self.current = 0;
        }
        if now_ms.saturating_sub(self.samples[self.current].start_ms) >= cfg.window_ms {
            self.current = (self.current + 1) % cfg.samples.max(1);
            if self.current >= self.samples.len() {
                self.samples.push(Sample::new(now_ms));
            } else {
                self.samples[self.current] = Sample::new(now_ms);
            }
        }
        self.samples[self.current].value += value;
    }

    /// Resets windows too old to count.
    fn purge(&mut self, cfg: RateConfig, now_ms: u64) {
        let expire = cfg.samples as u64 * cfg.window_ms;
        for s in &mut self.samples {
            if now_ms.saturating_sub(s.start_ms) >= expire {
                *s = Sample::new(now_ms);
            }
        }
    }

    /// The time the rate divides by, in milliseconds: since the oldest window started, but at
    /// least `samples - 1` whole windows, and at least 1 ms (Kafka's `Rate.windowSize`).
    pub(crate) fn window_size_ms(&mut self, cfg: RateConfig, now_ms: u64) -> u64 {
        self.purge(cfg, now_ms);
        let oldest = self
            .samples
            .iter()
            .map(|s| s.start_ms)
            .min()
            .unwrap_or(now_ms);
        let mut elapsed = now_ms.saturating_sub(oldest);
        let full = elapsed / cfg.window_ms.max(1);
        let min_full = cfg.samples.saturating_sub(1) as u64;
        if full < min_full {
            elapsed += (min_full - full) * cfg.window_ms;
        }
        elapsed.max(1)
    }

    /// The rate per second at `now_ms`.
    pub(crate) fn rate(&mut self, cfg: RateConfig, now_ms: u64) -> f64 {
        let window = self.window_size_ms(cfg, now_ms);
        let total: f64 = self.samples.iter().map(|s| s.value).sum();
        total / (window as f64 / 1000.0)
    }
}

/// Kafka's `QuotaUtils.throttleTime`: how long, in milliseconds, until a rate measured at
/// `observed` over `window_ms` falls back to `bound` if nothing more is recorded —
/// `(observed - bound) / bound × window`. 0 when within the bound.
pub(crate) fn throttle_ms(observed: f64, bound: f64, window_ms: u64) -> u64 {
    if observed <= bound {
        return 0;
    }
    if bound <= 0.0 {
        // A zero quota allows nothing: hold the client for the whole sampled history.
        return window_ms;
    }
    let ms = (observed - bound) / bound * window_ms as f64;
    if ms.is_finite() { ms.round() as u64 } else { 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CFG: RateConfig = RateConfig {
        samples: 11,
        window_ms: 1000,
    };

    #[test]
    fn a_fresh_burst_is_spread_over_ten_windows() {
        let mut r = SampledRate::default();
        r.record(CFG, 10_000.0, 0);
        // One partial window: the elapsed time is padded to 10 whole windows.
        assert_eq!(r.window_size_ms(CFG, 0), 10_000);
        assert!((r.rate(CFG, 0) - 1_000.0).abs() < 1e-9);
        assert_eq!(r.window_size_ms(CFG, 500), 10_500);
    }

    #[test]
    fn a_steady_rate_measures_as_itself() {
        let mut r = SampledRate::default();
        // 100 bytes every 100 ms: 1000 bytes/s, for 30 s.
        for t in (0..30_000).step_by(100) {
            r.record(CFG, 100.0, t);
        }
        let rate = r.rate(CFG, 30_000);
        assert!((rate - 1000.0).abs() < 50.0, "{rate}");
        // 11 windows kept, the oldest started at 20 s.
        assert_eq!(r.window_size_ms(CFG, 30_000), 10_000);
    }

    #[test]
    fn old_windows_expire() {
        let mut r = SampledRate::default();
        r.record(CFG, 1e6, 0);
        r.record(CFG, 1.0, 20_000);
        // The first window is older than 11 s at 20 s and no longer counts.
        assert!((r.rate(CFG, 20_000) - 0.1).abs() < 1e-9);
    }

    #[test]
    fn unrecording_takes_a_value_back() {
        let mut r = SampledRate::default();
        r.record(CFG, 5_000.0, 0);
        r.record(CFG, 3_000.0, 10);
        r.record(CFG, -3_000.0, 10);
        assert!((r.rate(CFG, 10) - 5_000.0 / 10.01).abs() < 1e-6);
    }

    #[test]
    fn throttle_time_is_kafkas_formula() {
        // Twice the quota over a 10 s window: 10 s to drain.
        assert_eq!(throttle_ms(2_000.0, 1_000.0, 10_000), 10_000);
        assert_eq!(throttle_ms(1_100.0, 1_000.0, 10_000), 1_000);
        assert_eq!(throttle_ms(1_000.0, 1_000.0, 10_000), 0);
        assert_eq!(throttle_ms(10.0, 0.0, 10_000), 10_000);
    }
}
