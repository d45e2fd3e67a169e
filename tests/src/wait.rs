//! Bounded waiting for a condition, instead of sleeping and hoping.
//!
//! [`wait_for`] polls a probe until it returns `Some`, failing after a deadline with the last
//! observation the probe described, so a timeout says what the system was doing.
//! [`wait_until_serving`] is the start-up wait of a spawned service (etcd, moto, Apache Kafka):
//! the same, but it fails at once if the process exits first, and shows the tail of its log.

use std::path::Path;
use std::process::Child;
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

/// Lines of a service's log shown when its start-up fails.
const STARTUP_LOG_LINES: usize = 60;

/// Polls `probe` every `interval` until it answers `Ok(None)` (the service serves). Fails as
/// soon as `child` exits (and takes it, so the caller sees the service stopped), or after
/// `timeout` with the probe's last answer (`Ok(Some(state))` or an error); both failures show
/// the tail of the service's `log`.
pub fn wait_until_serving(
    what: &str,
    child: &mut Option<Child>,
    log: &Path,
    timeout: Duration,
    interval: Duration,
    mut probe: impl FnMut() -> Result<Option<String>>,
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(running) = child.as_mut()
            && let Some(status) = running.try_wait()?
        {
            *child = None;
            bail!(
                "{what} exited during startup with {status}:\n{}",
                tail_file(log, STARTUP_LOG_LINES)
            );
        }
        let problem = match probe() {
            Ok(None) => return Ok(()),
            Ok(Some(state)) => state,
            Err(e) => format!("{e:#}"),
        };
        if Instant::now() >= deadline {
            bail!(
                "{what} not serving after {timeout:?} ({problem}):\n{}",
                tail_file(log, STARTUP_LOG_LINES)
            );
        }
        std::thread::sleep(interval);
    }
}

/// The last `lines` lines of a log file (empty if it cannot be read).
pub fn tail_file(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
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
