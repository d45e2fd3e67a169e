//! The `tierlog` binary's log output: `--log-format json` (or `TIERLOG_LOG_FORMAT=json`)
//! writes one JSON object per line, and logs that do not go to a terminal carry no colour
//! codes.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use tierlog_tests::node::tierlog_binary;
use tierlog_tests::{NodeOptions, TestNode};

/// The start of an ANSI escape sequence (colours, bold).
const ANSI_ESCAPE: &str = "\x1b[";

/// A node started with `opts` and stopped, and everything it wrote to stderr (a file).
fn stderr_of_a_node_run(opts: NodeOptions) -> String {
    let mut node = TestNode::start(opts).unwrap();
    let status = node.terminate().unwrap();
    assert!(status.success(), "tierlog serve exited with {status}");
    node.stderr_text()
}

#[test]
fn json_log_format_writes_one_json_object_per_line() {
    let by_flag = NodeOptions {
        extra_args: vec!["--log-format".to_owned(), "json".to_owned()],
        ..NodeOptions::default()
    };
    let by_env = NodeOptions {
        env: vec![("TIERLOG_LOG_FORMAT".to_owned(), "json".to_owned())],
        ..NodeOptions::default()
    };
    for (how, opts) in [
        ("--log-format json", by_flag),
        ("TIERLOG_LOG_FORMAT", by_env),
    ] {
        let stderr = stderr_of_a_node_run(opts);
        assert!(
            !stderr.contains(ANSI_ESCAPE),
            "{how}: colour codes in\n{stderr}"
        );
        // The harness heads each spawn's log with a `===== tierlog-tests: …` line of its own.
        let lines: Vec<&str> = stderr
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with("===== tierlog-tests:"))
            .collect();
        assert!(lines.len() >= 2, "{how}: too few log lines:\n{stderr}");
        for line in lines {
            let event: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{how}: not a JSON line ({e}): {line}"));
            assert!(
                event["level"].is_string() && event["fields"]["message"].is_string(),
                "{how}: a log event without level or message: {line}"
            );
        }
    }
}

#[test]
fn text_logs_to_a_file_have_no_colour_codes() {
    let stderr = stderr_of_a_node_run(NodeOptions::default());
    assert!(stderr.contains(" INFO "), "no INFO lines in\n{stderr}");
    assert!(!stderr.contains(ANSI_ESCAPE), "colour codes in\n{stderr}");
}

#[test]
fn text_logs_to_a_pipe_have_no_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(tierlog_binary().unwrap());
    cmd.args(["serve", "--data-dir"])
        .arg(dir.path().join("data"))
        .args(["--listen", "127.0.0.1:0", "--http", "127.0.0.1:0"])
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .env("RUST_LOG", "info");
    for (key, _) in std::env::vars() {
        if key.starts_with("TIERLOG_") || key.starts_with("AWS_") {
            cmd.env_remove(key);
        }
    }
    let mut child = cmd.spawn().unwrap();
    // A node logs a few lines as it starts; read those, then stop it.
    let mut lines = Vec::new();
    for line in BufReader::new(child.stderr.take().unwrap()).lines() {
        lines.push(line.unwrap());
        if lines.len() == 3 {
            break;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let text = lines.join("\n");
    assert_eq!(lines.len(), 3, "the node logged too little:\n{text}");
    assert!(text.contains(" INFO "), "no INFO lines in\n{text}");
    assert!(!text.contains(ANSI_ESCAPE), "colour codes in\n{text}");
}
