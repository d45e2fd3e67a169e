//! Bounded waiting for a condition, instead of sleeping and hoping.
//!
//! [`wait_for`] polls a probe until it returns `Some`, failing after a deadline with the last
//! observation the probe described, so a timeout says what the system was doing.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};

/// What one poll of a condition saw.
#[derive(Debug)]
pub enum Poll<T> {
    /// The condition holds; the wait ends with this value.
    Ready(T),
    /// Not yet; the text describes the current state (reported if the wait times out).
    Pending(String),
}

/// Polls `probe` every `interval` until it is [`Poll::Ready`] or `timeout` passes. An error
/// from the probe is treated as "not yet" (services under test may be briefly unavailable) and
/// reported if the wait times out.
pub fn wait_for<T>(
    what: &str,
    timeout: Duration,
    interval: Duration,
    mut probe: impl FnMut() -> Result<Poll<T>>,
) -> Result<T> {
    let started = Instant::now();
    let deadline = started + timeout;
    let mut polls = 0u64;
    loop {
        polls += 1;
        let last = match probe() {
            Ok(Poll::Ready(v)) => return Ok(v),
            Ok(Poll::Pending(state)) => state,
            Err(e) => format!("probe failed: {e:#}"),
        };
        if Instant::now() >= deadline {
            bail!("timed out after {timeout:?} ({polls} polls) waiting for {what}; last: {last}");
        }
        std::thread::sleep(interval);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_when_ready_and_reports_the_last_state_on_timeout() {
        let mut n = 0;
        let v = wait_for(
            "n to reach 3",
            Duration::from_secs(5),
            Duration::ZERO,
            || {
                n += 1;
                Ok(if n >= 3 {
                    Poll::Ready(n)
                } else {
                    Poll::Pending(format!("n={n}"))
                })
            },
        )
        .expect("ready");
        assert_eq!(v, 3);
        let e = wait_for::<()>("never", Duration::ZERO, Duration::ZERO, || {
            Ok(Poll::Pending("still not".into()))
        })
        .expect_err("times out");
        assert!(e.to_string().contains("still not"), "{e}");
    }
}
