//! External tools some tests shell out to (kcat, python3 with kafka-python).
//!
//! `tests/install.sh` installs them. Outside CI a missing tool skips the test with a loud
//! message; with `CI` set in the environment a missing tool fails the test, so CI can never
//! pass by skipping.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Result, bail};

/// Whether the tests run in CI (`CI` set to anything but `false`/`0`/empty).
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// `Ok(true)` if `program --version`-style probe `args` runs successfully; `Ok(false)` (after a
/// loud message) if it does not and we are not in CI; an error in CI.
pub fn require_tool(program: &str, probe_args: &[&str], test: &str) -> Result<bool> {
    let ok = Command::new(program)
        .args(probe_args)
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        return Ok(true);
    }
    if in_ci() {
        bail!(
            "{program} is required in CI (run tests/install.sh), but `{program} {}` failed",
            probe_args.join(" ")
        );
    }
    eprintln!(
        "\n!!!!! SKIPPING {test}: `{program} {}` failed; install it with tests/install.sh !!!!!\n",
        probe_args.join(" ")
    );
    Ok(false)
}

/// The `tests/` directory of the workspace (where `python/` lives).
pub fn tests_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}
