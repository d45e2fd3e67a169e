//! Process limits a node sets for itself: started under a low soft open-file limit (as many
//! shells and service managers leave it, 1024 or less), a node raises it to the hard limit
//! before opening anything, and says so in its log.
#![allow(clippy::unwrap_used)]

use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use tierlog_tests::node::{free_port, open_files_limits, tierlog_binary};
use tierlog_tests::tools::require_tool;
use tierlog_tests::wait::{Poll, wait_for};

#[test]
fn a_node_raises_its_soft_open_file_limit_to_the_hard_limit() -> Result<()> {
    if !require_tool(
        "prlimit",
        &["--version"],
        "a_node_raises_its_soft_open_file_limit_to_the_hard_limit",
    )? {
        return Ok(());
    }
    let (_, hard_here) = open_files_limits(std::process::id())?;
    // A hard limit this process may set for its child (not above its own), well above the
    // soft one the child starts with.
    let hard = hard_here.min(8192);
    ensure!(
        hard > 256,
        "the test's own hard limit {hard_here} is too low to test with"
    );
    let dir = tempfile::tempdir()?;
    let (kafka, http) = (free_port()?, free_port()?);
    let log = std::fs::File::create(dir.path().join("stderr.log"))?;
    let mut child = Command::new("prlimit")
        .arg(format!("--nofile=256:{hard}"))
        .arg(tierlog_binary()?)
        .args(["serve", "--data-dir"])
        .arg(dir.path().join("data"))
        .args(["--listen", &format!("127.0.0.1:{kafka}")])
        .args(["--http", &format!("127.0.0.1:{http}")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .context("starting tierlog under prlimit")?;
    // prlimit execs the node: same pid.
    let pid = child.id();
    let result = wait_for(
        "the node to log its open-file limit",
        Duration::from_secs(30),
        Duration::from_millis(50),
        || {
            let text = std::fs::read_to_string(dir.path().join("stderr.log"))?;
            Ok(if text.contains("open-file limit raised") {
                Poll::Ready(text)
            } else {
                Poll::Pending(text.lines().last().unwrap_or("").to_owned())
            })
        },
    )
    .and_then(|text| {
        let (soft, hard_now) = open_files_limits(pid)?;
        ensure!(
            (soft, hard_now) == (hard, hard),
            "the node runs with soft {soft} / hard {hard_now}, expected {hard} / {hard}"
        );
        ensure!(
            text.contains("was=256") && text.contains(&format!("hard={hard}")),
            "the log does not name both limits:\n{text}"
        );
        Ok(())
    });
    let _ = child.kill();
    let _ = child.wait();
    result
}
