//! A real S3-compatible HTTP server for tests: `moto_server` (PyPI `moto[s3]`, installed by
//! `tests/install.sh`).
//!
//! Lifecycle: [`MotoServer::start`] picks a free loopback port, spawns the server in its own
//! process group with its output in a temporary file, and polls `GET /` until it answers 200.
//! A test then creates buckets, points nodes at [`MotoServer::endpoint`], and may inspect or
//! tamper with objects through plain HTTP ([`MotoServer::list_objects`],
//! [`MotoServer::get_object`], [`MotoServer::put_object`]). [`MotoServer::stop`] and
//! [`MotoServer::cont`] send SIGSTOP/SIGCONT to simulate an outage that keeps every object
//! (moto keeps its state in memory): while stopped, connections are accepted by the kernel but
//! never answered. Dropping the server kills the whole process group.
//!
//! moto accepts unsigned requests, with two quirks the helpers handle: an anonymous `GET` of an
//! object is refused (403) by its ACL check, so every request carries a syntactically valid but
//! unsigned `Authorization` header (moto does not verify signatures); and a body sent with a
//! form content type is parsed as a form and stored empty, so puts say
//! `application/octet-stream`.
//!
//! The server is started through the real Python interpreter (`sys.executable`), not through a
//! `moto_server` wrapper: version-manager shims (pyenv) run the server as a *child* of a shell,
//! which SIGSTOP on the wrapper would not stop. Signals go to the process group anyway.

use std::fs::File;
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};

use crate::http;
use crate::node::free_port;
use crate::tools::in_ci;
use crate::wait::{tail_file, wait_until_serving};

/// How long moto gets to start (Python imports are slow on a busy two-core machine).
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// Per-request timeout of the helpers. A stopped server makes them fail after this long.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);
/// An `Authorization` header moto parses (for the access key) but never verifies.
const FAKE_AUTH: &str = "AWS4-HMAC-SHA256 Credential=tierlogtest/20260101/us-east-1/s3/aws4_request, \
                         SignedHeaders=host, Signature=0000";
/// Credentials the nodes get through the standard AWS variables; moto accepts any.
pub const ACCESS_KEY_ID: &str = "tierlogtest";
/// See [`ACCESS_KEY_ID`].
pub const SECRET_ACCESS_KEY: &str = "tierlogtestsecret";
/// Region the nodes are told to use.
pub const REGION: &str = "us-east-1";

/// One object in a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Full key.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
}

/// A running `moto_server`.
#[derive(Debug)]
pub struct MotoServer {
    child: Option<Child>,
    port: u16,
    /// Holds the server's combined stdout/stderr (`moto.log`).
    dir: tempfile::TempDir,
    stopped: bool,
}

impl MotoServer {
    /// For tests that need moto: `Ok(Some(server))` if it starts; `Ok(None)` after a loud
    /// message if moto is not installed and we are not in CI; an error in CI (so CI can never
    /// pass by skipping) or if moto is installed but fails to start.
    pub fn start_or_skip(test: &str) -> Result<Option<Self>> {
        match python_with_moto() {
            Ok(_) => Self::start().map(Some),
            Err(e) if !in_ci() => {
                eprintln!(
                    "\n!!!!! SKIPPING {test}: moto_server is not usable ({e:#}); install it \
                     with tests/install.sh !!!!!\n"
                );
                Ok(None)
            }
            Err(e) => Err(e.context("moto_server is required in CI (run tests/install.sh)")),
        }
    }

    /// Starts a server on a free loopback port and waits until it answers.
    pub fn start() -> Result<Self> {
        let python = python_with_moto()?;
        let dir = tempfile::Builder::new()
            .prefix("tierlog-moto-")
            .tempdir()
            .context("creating moto's temporary directory")?;
        let log = File::create(dir.path().join("moto.log"))?;
        let port = free_port()?;
        let child = Command::new(&python)
            .args([
                "-c",
                "import sys; from moto.server import main; sys.exit(main())",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            // Own process group: stop/cont/kill reach every process of the server.
            .process_group(0)
            .spawn()
            .with_context(|| format!("spawning {} -c 'moto.server.main()'", python.display()))?;
        let mut server = MotoServer {
            child: Some(child),
            port,
            dir,
            stopped: false,
        };
        server.wait_ready()?;
        Ok(server)
    }

    /// `http://127.0.0.1:<port>`, for `--s3-endpoint`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The process id (also the process group id).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether [`MotoServer::stop`] is in effect.
    pub fn is_stopped(&self) -> bool {
        self.stopped
    }

    /// SIGSTOP: the server freezes with all its state; requests hang until [`Self::cont`].
    pub fn stop(&mut self) -> Result<()> {
        self.signal("-STOP")?;
        self.stopped = true;
        Ok(())
    }

    /// SIGCONT: the server resumes and answers what queued up meanwhile.
    pub fn cont(&mut self) -> Result<()> {
        self.signal("-CONT")?;
        self.stopped = false;
        Ok(())
    }

    fn signal(&self, signal: &str) -> Result<()> {
        let pid = self.pid().context("moto_server is not running")?;
        let group = format!("-{pid}");
        let status = Command::new("kill")
            .args([signal, "--", group.as_str()])
            .status()
            .context("running kill")?;
        ensure!(
            status.success(),
            "kill {signal} -- {group} failed: {status}"
        );
        Ok(())
    }

    /// The tail of the server's log, for failure messages.
    pub fn log_tail(&self, lines: usize) -> String {
        tail_file(&self.log_path(), lines)
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("moto.log")
    }

    fn wait_ready(&mut self) -> Result<()> {
        let addr = self.addr();
        let log = self.log_path();
        wait_until_serving(
            "moto_server",
            &mut self.child,
            &log,
            READY_TIMEOUT,
            Duration::from_millis(50),
            || {
                let r = http::get(addr, "/", Duration::from_secs(2))?;
                Ok((r.status != 200).then(|| format!("GET / -> {}", r.status)))
            },
        )
    }

    /// One request with moto's quirks handled (see the module docs).
    fn call(
        &self,
        method: &str,
        path: &str,
        extra_headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<http::Response> {
        let mut headers = vec![("Authorization", FAKE_AUTH)];
        headers.extend_from_slice(extra_headers);
        http::request(self.addr(), method, path, &headers, body, REQUEST_TIMEOUT)
    }

    /// Creates a bucket (`PUT /<bucket>`), path style.
    pub fn create_bucket(&self, bucket: &str) -> Result<()> {
        let r = self.call("PUT", &format!("/{}", encode(bucket)), &[], &[])?;
        ensure!(
            r.status == 200,
            "creating bucket {bucket}: HTTP {} {}",
            r.status,
            r.text()
        );
        Ok(())
    }

    /// Every object whose key starts with `prefix` (ListObjectsV2, following continuation
    /// tokens), in key order.
    pub fn list_objects(&self, bucket: &str, prefix: &str) -> Result<Vec<ObjectInfo>> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut path = format!("/{}?list-type=2&prefix={}", encode(bucket), encode(prefix));
            if let Some(t) = &token {
                path.push_str(&format!("&continuation-token={}", encode(t)));
            }
            let r = self.call("GET", &path, &[], &[])?;
            ensure!(
                r.status == 200,
                "listing {bucket}/{prefix}: HTTP {} {}",
                r.status,
                r.text()
            );
            let xml = r.text();
            for contents in elements(&xml, "Contents") {
                let key = elements(contents, "Key")
                    .next()
                    .map(unescape)
                    .context("listing entry without <Key>")?;
                let size = elements(contents, "Size")
                    .next()
                    .context("listing entry without <Size>")?
                    .trim()
                    .parse()
                    .context("bad <Size>")?;
                out.push(ObjectInfo { key, size });
            }
            let truncated = elements(&xml, "IsTruncated").next() == Some("true");
            token = elements(&xml, "NextContinuationToken").next().map(unescape);
            if !truncated || token.is_none() {
                break;
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    /// The bytes of an object; fails unless the server answers 200.
    pub fn get_object(&self, bucket: &str, key: &str) -> Result<Vec<u8>> {
        let r = self.call("GET", &object_path(bucket, key), &[], &[])?;
        ensure!(
            r.status == 200,
            "GET {bucket}/{key}: HTTP {} {}",
            r.status,
            r.text()
        );
        Ok(r.body)
    }

    /// Whether an object exists (`HEAD`).
    pub fn object_exists(&self, bucket: &str, key: &str) -> Result<bool> {
        let r = self.call("HEAD", &object_path(bucket, key), &[], &[])?;
        match r.status {
            200 => Ok(true),
            404 => Ok(false),
            other => bail!("HEAD {bucket}/{key}: HTTP {other}"),
        }
    }

    /// Writes (or overwrites) an object.
    pub fn put_object(&self, bucket: &str, key: &str, bytes: &[u8]) -> Result<()> {
        let r = self.call(
            "PUT",
            &object_path(bucket, key),
            &[("Content-Type", "application/octet-stream")],
            bytes,
        )?;
        ensure!(
            r.status == 200,
            "PUT {bucket}/{key}: HTTP {} {}",
            r.status,
            r.text()
        );
        Ok(())
    }

    /// Deletes an object (succeeds if it did not exist).
    pub fn delete_object(&self, bucket: &str, key: &str) -> Result<()> {
        let r = self.call("DELETE", &object_path(bucket, key), &[], &[])?;
        ensure!(
            r.status == 204 || r.status == 200,
            "DELETE {bucket}/{key}: HTTP {} {}",
            r.status,
            r.text()
        );
        Ok(())
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "tierlog-tests: moto_server on {} at test failure (stopped: {}):\n{}",
                self.endpoint(),
                self.stopped,
                self.log_tail(30)
            );
        }
        if let Some(mut child) = self.child.take() {
            // SIGKILL ends a stopped process too; the group takes any helper processes along.
            let group = format!("-{}", child.id());
            let _ = Command::new("kill")
                .args(["-KILL", "--", group.as_str()])
                .stderr(Stdio::null())
                .status();
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The real Python interpreter that can import moto's server (`$TIERLOG_TEST_PYTHON`, default
/// `python3`), resolved through `sys.executable` so no wrapper sits in between.
pub fn python_with_moto() -> Result<PathBuf> {
    let python = std::env::var("TIERLOG_TEST_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let out = Command::new(&python)
        .args([
            "-c",
            "import sys, moto.server, flask, flask_cors; print(sys.executable)",
        ])
        .output()
        .with_context(|| format!("running {python}"))?;
    ensure!(
        out.status.success(),
        "{python} cannot import moto.server/flask/flask_cors: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    ensure!(
        path.is_file(),
        "{python} reports sys.executable {}",
        path.display()
    );
    Ok(path)
}

fn object_path(bucket: &str, key: &str) -> String {
    format!("/{}/{}", encode(bucket), encode(key))
}

/// Percent-encodes everything but unreserved characters and `/`.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The inner text of every `<tag>…</tag>` in `xml` (no nesting of the same tag, no attributes:
/// enough for S3 listings).
fn elements<'a>(xml: &'a str, tag: &str) -> impl Iterator<Item = &'a str> + 'a {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let mut rest = xml;
    std::iter::from_fn(move || {
        let start = rest.find(&open)? + open.len();
        let len = rest[start..].find(&close)?;
        let inner = &rest[start..start + len];
        rest = &rest[start + len + close.len()..];
        Some(inner)
    })
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_listings_and_encodes_keys() {
        let xml = "<R><IsTruncated>true</IsTruncated><Contents><Key>a/b&amp;c</Key><Size>5</Size>\
                   </Contents><Contents><Key>d</Key><Size>0</Size></Contents>\
                   <NextContinuationToken>t1</NextContinuationToken></R>";
        let keys: Vec<String> = elements(xml, "Contents")
            .filter_map(|c| elements(c, "Key").next().map(unescape))
            .collect();
        assert_eq!(keys, ["a/b&c", "d"]);
        assert_eq!(elements(xml, "IsTruncated").next(), Some("true"));
        assert_eq!(encode("t/p-1_0.log a+b"), "t/p-1_0.log%20a%2Bb");
    }
}
