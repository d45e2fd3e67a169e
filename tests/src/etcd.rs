//! A real single-member etcd for tests: Debian's `etcd-server` (3.4), installed by
//! `tests/install.sh`.
//!
//! Lifecycle: [`EtcdServer::start`] picks two free loopback ports (client and peer), creates a
//! fresh data directory, spawns `etcd` in its own process group with its log in that
//! directory, and polls `GET /health` until etcd reports itself healthy. Tests then connect to
//! [`EtcdServer::endpoint`] (or [`EtcdServer::url`] for a `--metadata` flag).
//! With [`EtcdOptions::tls`] the client port speaks TLS (and may require client
//! certificates), and readiness is probed on a separate plain-HTTP metrics port instead.
//! [`EtcdServer::kill`] and [`EtcdServer::restart`] simulate an outage: SIGKILL, then a new
//! process on the same data directory and ports, so every key and revision survives. Dropping
//! the server kills it with SIGKILL: a 3.4 member given SIGTERM can hang in leadership
//! transfer.
//!
//! Outside CI a missing `etcd` binary skips the test loudly ([`EtcdServer::start_or_skip`]);
//! with `CI` set it fails the test.

use std::fs::File;
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result};

use crate::http;
use crate::node::free_port;
use crate::tools::require_tool;
use crate::wait::{tail_file, wait_until_serving};

/// How long etcd gets to become healthy (about a second on an idle machine).
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Extra settings for [`EtcdServer::start_with`].
#[derive(Clone, Debug, Default)]
pub struct EtcdOptions {
    /// `--max-txn-ops`: etcd's limit on operations per transaction (its default is 128).
    pub max_txn_ops: Option<u32>,
    /// TLS on the client port.
    pub tls: Option<EtcdServerTls>,
}

/// etcd's client-port TLS: `--cert-file`/`--key-file`, and with `client_ca_file`
/// `--client-cert-auth --trusted-ca-file` (clients must present a certificate it signed).
#[derive(Clone, Debug)]
pub struct EtcdServerTls {
    /// PEM certificate etcd serves (for 127.0.0.1).
    pub cert_file: PathBuf,
    /// Its PEM key.
    pub key_file: PathBuf,
    /// CA whose client certificates etcd requires, if any.
    pub client_ca_file: Option<PathBuf>,
}

impl EtcdServerTls {
    /// TLS with `cert_file` and `key_file`, requiring client certificates signed by
    /// `client_ca_file`.
    pub fn mutual(cert_file: &Path, key_file: &Path, client_ca_file: &Path) -> Self {
        EtcdServerTls {
            cert_file: cert_file.to_path_buf(),
            key_file: key_file.to_path_buf(),
            client_ca_file: Some(client_ca_file.to_path_buf()),
        }
    }
}

/// A running single-member etcd.
#[derive(Debug)]
pub struct EtcdServer {
    child: Option<Child>,
    client_port: u16,
    peer_port: u16,
    /// Plain-HTTP `/health` under TLS (`--listen-metrics-urls`).
    metrics_port: Option<u16>,
    options: EtcdOptions,
    /// Holds `data/` (etcd's data directory) and `etcd.log`.
    dir: tempfile::TempDir,
}

impl EtcdServer {
    /// For tests that need etcd: `Ok(Some(server))` if it starts; `Ok(None)` after a loud
    /// message if `etcd` is not installed and we are not in CI; an error in CI (so CI can never
    /// pass by skipping) or if etcd is installed but fails to start.
    pub fn start_or_skip(test: &str) -> Result<Option<Self>> {
        Self::start_with_or_skip(test, EtcdOptions::default())
    }

    /// [`Self::start_or_skip`] with settings.
    pub fn start_with_or_skip(test: &str, options: EtcdOptions) -> Result<Option<Self>> {
        if !require_tool("etcd", &["--version"], test)? {
            return Ok(None);
        }
        Self::start_with(options).map(Some)
    }

    /// Starts etcd with default settings and waits until it is healthy.
    pub fn start() -> Result<Self> {
        Self::start_with(EtcdOptions::default())
    }

    /// Starts etcd with `options` and waits until it is healthy.
    pub fn start_with(options: EtcdOptions) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("tierlog-etcd-")
            .tempdir()
            .context("creating etcd's temporary directory")?;
        let client_port = free_port()?;
        let mut peer_port = free_port()?;
        while peer_port == client_port {
            peer_port = free_port()?;
        }
        let metrics_port = match options.tls {
            Some(_) => {
                let mut p = free_port()?;
                while p == client_port || p == peer_port {
                    p = free_port()?;
                }
                Some(p)
            }
            None => None,
        };
        let mut server = EtcdServer {
            child: None,
            client_port,
            peer_port,
            metrics_port,
            options,
            dir,
        };
        server.spawn()?;
        Ok(server)
    }

    /// `127.0.0.1:<port>`, the client endpoint (what `etcd-client` and the URL take).
    pub fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.client_port)
    }

    /// `etcd://127.0.0.1:<port><prefix>`, for `--metadata` and `MetadataUrl`.
    pub fn url(&self, prefix: &str) -> String {
        format!("etcd://{}{prefix}", self.endpoint())
    }

    /// The client address.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.client_port))
    }

    /// The process id, while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILL and reap: etcd is gone (its data directory stays).
    pub fn kill(&mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill().context("killing etcd")?;
            child.wait().context("reaping etcd")?;
        }
        Ok(())
    }

    /// Starts etcd again on the same data directory and ports (after [`Self::kill`]); waits
    /// until it is healthy.
    pub fn restart(&mut self) -> Result<()> {
        self.kill()?;
        self.spawn()
    }

    /// The tail of etcd's log, for failure messages.
    pub fn log_tail(&self, lines: usize) -> String {
        tail_file(&self.log_path(), lines)
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("etcd.log")
    }

    fn spawn(&mut self) -> Result<()> {
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.log_path())
            .context("opening etcd.log")?;
        let scheme = if self.options.tls.is_some() {
            "https"
        } else {
            "http"
        };
        let client = format!("{scheme}://127.0.0.1:{}", self.client_port);
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let data = self.dir.path().join("data");
        let mut command = Command::new("etcd");
        command
            .args(["--name", "n1", "--data-dir"])
            .arg(&data)
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &format!("n1={peer}")])
            .args(["--logger", "zap", "--log-outputs", "stderr"]);
        if let Some(tls) = &self.options.tls {
            command
                .arg("--cert-file")
                .arg(&tls.cert_file)
                .arg("--key-file")
                .arg(&tls.key_file);
            if let Some(ca) = &tls.client_ca_file {
                command
                    .arg("--client-cert-auth")
                    .arg("--trusted-ca-file")
                    .arg(ca);
            }
        }
        if let Some(port) = self.metrics_port {
            command.args(["--listen-metrics-urls", &format!("http://127.0.0.1:{port}")]);
        }
        if let Some(ops) = self.options.max_txn_ops {
            command.args(["--max-txn-ops", &ops.to_string()]);
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            // Own process group: a Ctrl-C of the test run does not reach it first.
            .process_group(0)
            .spawn()
            .context("spawning etcd")?;
        self.child = Some(child);
        self.wait_ready()
    }

    fn wait_ready(&mut self) -> Result<()> {
        let addr = match self.metrics_port {
            Some(port) => SocketAddr::from(([127, 0, 0, 1], port)),
            None => self.addr(),
        };
        let log = self.log_path();
        wait_until_serving(
            "etcd",
            &mut self.child,
            &log,
            READY_TIMEOUT,
            Duration::from_millis(50),
            || {
                let r = http::get(addr, "/health", Duration::from_secs(2))?;
                Ok((r.status != 200 || !r.text().contains("\"true\""))
                    .then(|| format!("GET /health -> {} {}", r.status, r.text())))
            },
        )
    }
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
