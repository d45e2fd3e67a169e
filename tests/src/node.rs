//! A real `tierlog serve` process for a test.
//!
//! Lifecycle: [`TestNode::start`] picks free loopback ports, creates a temporary directory (the
//! node's data directory and its captured stdout/stderr live inside it), spawns the binary and
//! polls until both `GET /health` answers 200 and the Kafka port accepts a connection. The test
//! then drives it with real clients and may [`TestNode::kill9`], [`TestNode::terminate`] or
//! [`TestNode::restart`] it; a restart reuses the same data directory and ports, so clients that
//! hold the bootstrap address keep working. Dropping the node kills the process; if the test is
//! panicking, the tail of the node's logs is printed first so the failure explains itself.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, bail};
use tierlog_ingest::config::{ServeArgs, Setting};

use crate::http;
use crate::metrics::Metrics;
use crate::s3::{self, MotoServer};

/// The embedded metadata store's file name inside a node's data directory.
pub const METADATA_FILE: &str = "metadata.redb";

/// How long a node gets to become ready (health endpoint and Kafka port) after a spawn.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long [`TestNode::terminate`] waits for a clean exit after SIGTERM.
const TERMINATE_TIMEOUT: Duration = Duration::from_secs(30);
/// Poll interval for readiness and exit checks: short, so tests never wait much longer than the
/// node needs.
const POLL_INTERVAL: Duration = Duration::from_millis(20);
/// Lines of each log printed when something goes wrong.
const LOG_TAIL_LINES: usize = 60;

/// Options for one node. Every `None` leaves the node's own default in place (defaults live
/// only in `ingest/src/config.rs`), so the tests exercise the defaults `ingest/README.md`
/// documents. Each option is the node setting of the same name.
#[derive(Debug, Clone, Default)]
pub struct NodeOptions {
    /// `--flush-mode interval|always`.
    pub flush_mode: Option<String>,
    /// `--flush-interval` (e.g. `"50ms"`).
    pub flush_interval: Option<String>,
    /// `--auto-create-topics true|false`.
    pub auto_create_topics: Option<bool>,
    /// `--default-partitions N`.
    pub default_partitions: Option<u32>,
    /// `--max-frame-bytes N`.
    pub max_frame_bytes: Option<u64>,
    /// `--min-segment-bytes N`: lets topics set a `segment.bytes` below Kafka's 1 MiB floor
    /// (tests that want many small segments).
    pub min_segment_bytes: Option<u64>,
    /// `--node-id N`.
    pub node_id: Option<u32>,
    /// `--object-store URL` (`s3://bucket/prefix`, `file:///abs`, `memory://`).
    pub object_store: Option<String>,
    /// `--s3-endpoint URL`.
    pub s3_endpoint: Option<String>,
    /// `--s3-region R`.
    pub s3_region: Option<String>,
    /// `--s3-allow-http` when true.
    pub s3_allow_http: bool,
    /// `--s3-path-style` when true (moto and MinIO need it).
    pub s3_path_style: bool,
    /// `--cache-dir DIR`.
    pub cache_dir: Option<PathBuf>,
    /// `--cache-memory-bytes N`.
    pub cache_memory_bytes: Option<u64>,
    /// `--cache-disk-bytes N`.
    pub cache_disk_bytes: Option<u64>,
    /// `--upload-interval DURATION` (e.g. `"200ms"`).
    pub upload_interval: Option<String>,
    /// `--retention-check-interval DURATION` (e.g. `"200ms"`).
    pub retention_check_interval: Option<String>,
    /// `--metadata URL` (`embedded`, `etcd://host:port/prefix`, `memory://`).
    pub metadata: Option<String>,
    /// `--lease-ttl DURATION`: how long a cluster node's liveness lease outlives its last
    /// keep-alive (e.g. `"2s"`).
    pub lease_ttl: Option<String>,
    /// `--replica-lag-time-max DURATION`: how long a follower may lag before it leaves the ISR.
    pub replica_lag_time_max: Option<String>,
    /// `--default-replication-factor N`.
    pub default_replication_factor: Option<u32>,
    /// `--min-insync-replicas N`.
    pub min_insync_replicas: Option<u32>,
    /// `host:port` the node advertises instead of its own Kafka port (a proxy in front of it).
    pub advertise: Option<String>,
    /// Listeners besides the PLAINTEXT one on the harness's Kafka port: (name, security
    /// protocol), each given a free port (see [`TestNode::listener`]); with any, the node is
    /// started with `--listeners` and `--listener-security-protocol-map` instead of `--listen`.
    pub extra_listeners: Vec<(String, String)>,
    /// `--http-tls`: the admin endpoint speaks HTTPS, with the certificate the node's
    /// `--ssl-cert-file` names; the harness's readiness probe and [`TestNode::metrics`] then
    /// use HTTPS too, trusting this CA file.
    pub http_tls_ca: Option<PathBuf>,
    /// `--http-bearer-token-file` with this token (written into the node's directory); the
    /// harness sends it with [`TestNode::metrics`] (`/health` needs none).
    pub http_bearer_token: Option<String>,
    /// Extra command-line arguments appended after the ones above.
    pub extra_args: Vec<String>,
    /// Extra environment variables for the process.
    pub env: Vec<(String, String)>,
}

impl NodeOptions {
    /// Adds a listener `name` speaking `protocol` (PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL).
    pub fn listener(mut self, name: &str, protocol: &str) -> Self {
        self.extra_listeners
            .push((name.to_owned(), protocol.to_owned()));
        self
    }

    /// Appends command-line arguments (`--flag value` pairs).
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.extra_args.extend(args.into_iter().map(Into::into));
        self
    }

    /// `--http-tls`, the harness trusting `ca` (see [`NodeOptions::http_tls_ca`]).
    pub fn http_tls(mut self, ca: &Path) -> Self {
        self.http_tls_ca = Some(ca.to_path_buf());
        self
    }

    /// `--http-bearer-token-file` holding `token` (see [`NodeOptions::http_bearer_token`]).
    pub fn http_bearer_token(mut self, token: &str) -> Self {
        self.http_bearer_token = Some(token.to_owned());
        self
    }

    /// `--flush-mode always`: every acknowledged batch has been fsynced.
    pub fn flush_always(mut self) -> Self {
        self.flush_mode = Some("always".to_owned());
        self
    }

    /// `--auto-create-topics <enabled>`.
    pub fn auto_create_topics(mut self, enabled: bool) -> Self {
        self.auto_create_topics = Some(enabled);
        self
    }

    /// `--default-partitions <n>`.
    pub fn default_partitions(mut self, n: u32) -> Self {
        self.default_partitions = Some(n);
        self
    }

    /// `--max-frame-bytes <n>`.
    pub fn max_frame_bytes(mut self, n: u64) -> Self {
        self.max_frame_bytes = Some(n);
        self
    }

    /// `--min-segment-bytes <n>`.
    pub fn min_segment_bytes(mut self, n: u64) -> Self {
        self.min_segment_bytes = Some(n);
        self
    }

    /// Tiered storage on `s3://<bucket>/<prefix>` served by `server`: path style, plain HTTP,
    /// the test region, and credentials through the standard AWS variables (moto accepts any;
    /// IMDS is disabled so the default chain never waits on a metadata endpoint).
    pub fn s3(mut self, server: &MotoServer, bucket: &str, prefix: &str) -> Self {
        self.object_store = Some(format!("s3://{bucket}/{prefix}"));
        self.s3_endpoint = Some(server.endpoint());
        self.s3_region = Some(s3::REGION.to_owned());
        self.s3_allow_http = true;
        self.s3_path_style = true;
        self.env.extend([
            ("AWS_ACCESS_KEY_ID".to_owned(), s3::ACCESS_KEY_ID.to_owned()),
            (
                "AWS_SECRET_ACCESS_KEY".to_owned(),
                s3::SECRET_ACCESS_KEY.to_owned(),
            ),
            ("AWS_EC2_METADATA_DISABLED".to_owned(), "true".to_owned()),
        ]);
        self
    }

    /// `--upload-interval <d>`.
    pub fn upload_interval(mut self, d: &str) -> Self {
        self.upload_interval = Some(d.to_owned());
        self
    }

    /// `--retention-check-interval <d>`.
    pub fn retention_check_interval(mut self, d: &str) -> Self {
        self.retention_check_interval = Some(d.to_owned());
        self
    }

    /// `--node-id <id>`.
    pub fn node_id(mut self, id: u32) -> Self {
        self.node_id = Some(id);
        self
    }

    /// `--object-store <url>` (for S3 use [`NodeOptions::s3`], which sets the endpoint too).
    pub fn object_store(mut self, url: &str) -> Self {
        self.object_store = Some(url.to_owned());
        self
    }

    /// `--metadata <url>`, e.g. [`crate::etcd::EtcdServer::url`].
    pub fn metadata(mut self, url: &str) -> Self {
        self.metadata = Some(url.to_owned());
        self
    }

    /// `--lease-ttl <d>`.
    pub fn lease_ttl(mut self, d: &str) -> Self {
        self.lease_ttl = Some(d.to_owned());
        self
    }

    /// `--replica-lag-time-max <d>`.
    pub fn replica_lag_time_max(mut self, d: &str) -> Self {
        self.replica_lag_time_max = Some(d.to_owned());
        self
    }

    /// `--default-replication-factor <n>`.
    pub fn default_replication_factor(mut self, n: u32) -> Self {
        self.default_replication_factor = Some(n);
        self
    }

    /// `--min-insync-replicas <n>`.
    pub fn min_insync_replicas(mut self, n: u32) -> Self {
        self.min_insync_replicas = Some(n);
        self
    }

    /// `--cache-memory-bytes <m> --cache-disk-bytes <d>`.
    pub fn cache_bytes(mut self, memory: u64, disk: u64) -> Self {
        self.cache_memory_bytes = Some(memory);
        self.cache_disk_bytes = Some(disk);
        self
    }
}

/// A running (or stopped) `tierlog serve` process with its own data directory and ports.
#[derive(Debug)]
pub struct TestNode {
    /// The process, `None` while stopped.
    child: Option<Child>,
    /// Owns the data directory and log files; removed when the node is dropped.
    dir: tempfile::TempDir,
    binary: PathBuf,
    opts: NodeOptions,
    kafka_port: u16,
    http_port: u16,
    /// The ports of [`NodeOptions::extra_listeners`], in order.
    listener_ports: Vec<u16>,
    /// Incremented on every spawn; written into the logs so restarts are easy to tell apart.
    generation: u32,
}

impl TestNode {
    /// Starts a node with default options.
    pub fn start_default() -> Result<Self> {
        Self::start(NodeOptions::default())
    }

    /// Starts a node and waits until it is ready to serve Kafka clients.
    pub fn start(opts: NodeOptions) -> Result<Self> {
        Self::start_prepared(opts, |_| Ok(()))
    }

    /// Starts a node whose data directory holds only a copy of `metadata` (another node's
    /// [`METADATA_FILE`], copied while that node was stopped): the embedded metadata store lives
    /// in the data directory, so this is how a test gives a brand-new node with an empty disk
    /// the cluster state it would otherwise read from a shared store.
    pub fn start_with_metadata(opts: NodeOptions, metadata: &Path) -> Result<Self> {
        Self::start_prepared(opts, |data_dir| {
            std::fs::copy(metadata, data_dir.join(METADATA_FILE))
                .with_context(|| format!("copying {}", metadata.display()))?;
            Ok(())
        })
    }

    /// Starts a node after `prepare` has filled its (empty) data directory.
    pub fn start_prepared(
        opts: NodeOptions,
        prepare: impl FnOnce(&Path) -> Result<()>,
    ) -> Result<Self> {
        let binary = tierlog_binary()?;
        let dir = tempfile::Builder::new()
            .prefix("tierlog-test-")
            .tempdir()
            .context("creating the node's temporary directory")?;
        std::fs::create_dir_all(dir.path().join("data"))?;
        prepare(&dir.path().join("data")).context("preparing the data directory")?;
        let kafka_port = free_port()?;
        let mut http_port = free_port()?;
        while http_port == kafka_port {
            http_port = free_port()?;
        }
        let mut node = TestNode {
            child: None,
            dir,
            binary,
            listener_ports: other_ports(opts.extra_listeners.len(), &[kafka_port, http_port])?,
            opts,
            kafka_port,
            http_port,
            generation: 0,
        };
        // A port found free can be taken by another process (a client, a JVM) before the node
        // binds it; on a first start that is no fault of the node's, so pick new ports.
        let mut attempts = 0;
        loop {
            attempts += 1;
            match node.spawn_and_wait() {
                Err(e) if attempts < 3 && format!("{e:#}").contains("Address already in use") => {
                    node.kafka_port = free_port()?;
                    node.http_port = free_port()?;
                    while node.http_port == node.kafka_port {
                        node.http_port = free_port()?;
                    }
                    node.listener_ports = other_ports(
                        node.opts.extra_listeners.len(),
                        &[node.kafka_port, node.http_port],
                    )?;
                }
                other => return other.map(|()| node),
            }
        }
    }

    /// `host:port` for `bootstrap.servers`.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.kafka_port)
    }

    /// `host:port` of the extra listener `name` (see [`NodeOptions::listener`]).
    pub fn listener(&self, name: &str) -> String {
        let i = self
            .opts
            .extra_listeners
            .iter()
            .position(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("the node has no listener `{name}`"));
        format!("127.0.0.1:{}", self.listener_ports[i])
    }

    /// The Kafka listener's address.
    pub fn kafka_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.kafka_port))
    }

    /// The admin HTTP address.
    pub fn http_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.http_port))
    }

    /// The node's data directory (kept across restarts).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The embedded metadata store's file inside the data directory.
    pub fn metadata_file(&self) -> PathBuf {
        self.data_dir().join(METADATA_FILE)
    }

    /// `GET path` on the admin endpoint, over HTTPS under [`NodeOptions::http_tls_ca`], with
    /// `headers` (nothing added: a test of the bearer token chooses what to send).
    pub fn http_get(&self, path: &str, headers: &[(&str, &str)]) -> Result<http::Response> {
        let timeout = Duration::from_secs(10);
        match &self.opts.http_tls_ca {
            Some(ca) => http::request_tls(self.http_addr(), ca, "GET", path, headers, &[], timeout),
            None => http::request(self.http_addr(), "GET", path, headers, &[], timeout),
        }
    }

    /// The text of `GET /metrics` (Prometheus exposition format), with the node's bearer
    /// token if it has one.
    pub fn metrics_text(&self) -> Result<String> {
        let auth = self
            .opts
            .http_bearer_token
            .as_ref()
            .map(|t| format!("Bearer {t}"));
        let headers: Vec<(&str, &str)> = auth
            .as_deref()
            .map(|a| ("Authorization", a))
            .into_iter()
            .collect();
        let r = self.http_get("/metrics", &headers)?;
        if r.status != 200 {
            bail!("GET /metrics -> {}: {}", r.status, r.text());
        }
        Ok(r.text())
    }

    /// The parsed samples of `GET /metrics`.
    pub fn metrics(&self) -> Result<Metrics> {
        Ok(Metrics::parse(&self.metrics_text()?))
    }

    /// The process id, if running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the process is still running (reaps it if it exited).
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut().map(Child::try_wait) {
            Some(Ok(None)) => true,
            Some(Ok(Some(_))) | Some(Err(_)) | None => false,
        }
    }

    /// SIGKILL: the process dies without flushing anything.
    pub fn kill9(&mut self) -> Result<()> {
        let Some(mut child) = self.child.take() else {
            bail!("kill9: node is not running");
        };
        child.kill().context("sending SIGKILL")?;
        child.wait().context("reaping the killed node")?;
        Ok(())
    }

    /// SIGSTOP: the process freezes (its leases stop being kept alive, its sockets accept but
    /// never answer) until [`TestNode::sigcont`].
    pub fn sigstop(&self) -> Result<()> {
        self.signal("-STOP")
    }

    /// SIGCONT: a node frozen by [`TestNode::sigstop`] runs again.
    pub fn sigcont(&self) -> Result<()> {
        self.signal("-CONT")
    }

    /// Sends `signal` (as `kill` spells it, e.g. `"-STOP"`) without waiting for anything.
    fn signal(&self, signal: &str) -> Result<()> {
        let pid = self.pid().context("node is not running")?.to_string();
        let status = Command::new("kill")
            .args([signal, pid.as_str()])
            .status()
            .context("running kill")?;
        if !status.success() {
            bail!("kill {signal} {pid} failed: {status}");
        }
        Ok(())
    }

    /// SIGTERM, then waits for the process to exit and returns its exit status.
    pub fn terminate(&mut self) -> Result<ExitStatus> {
        self.signal_and_wait("-TERM")
    }

    /// SIGINT, then waits for the process to exit and returns its exit status.
    pub fn interrupt(&mut self) -> Result<ExitStatus> {
        self.signal_and_wait("-INT")
    }

    fn signal_and_wait(&mut self, signal: &str) -> Result<ExitStatus> {
        let Some(mut child) = self.child.take() else {
            bail!("node is not running");
        };
        let pid = child.id().to_string();
        let status = Command::new("kill")
            .args([signal, pid.as_str()])
            .status()
            .context("running kill")?;
        if !status.success() {
            // The process may already have exited on its own; report what it did.
            if let Some(exit) = child.try_wait()? {
                return Ok(exit);
            }
            bail!("kill {signal} {pid} failed: {status}");
        }
        let deadline = Instant::now() + TERMINATE_TIMEOUT;
        loop {
            if let Some(exit) = child.try_wait().context("waiting for the node to exit")? {
                return Ok(exit);
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!(
                    "node did not exit within {TERMINATE_TIMEOUT:?} of {signal}; killed it\n{}",
                    self.log_tails()
                );
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// Stops the node with SIGTERM if it is running (the exit status must be success), then
    /// starts it again on the same data directory and ports and waits until it is ready.
    pub fn restart(&mut self) -> Result<()> {
        if self.is_running() {
            let status = self.terminate()?;
            if !status.success() {
                bail!("node exited with {status} on SIGTERM\n{}", self.log_tails());
            }
        }
        self.child = None;
        self.spawn_and_wait()
    }

    /// Starts a stopped node again (after [`TestNode::kill9`] or [`TestNode::terminate`]).
    pub fn start_again(&mut self) -> Result<()> {
        if self.is_running() {
            bail!("start_again: node is still running");
        }
        self.child = None;
        self.spawn_and_wait()
    }

    /// Starts a stopped node again with other options (same data directory and ports), e.g.
    /// without the faults it was first started with.
    pub fn start_again_with(&mut self, opts: NodeOptions) -> Result<()> {
        self.opts = opts;
        self.start_again()
    }

    /// The tail of stdout and stderr, for failure messages.
    pub fn log_tails(&self) -> String {
        let mut out = String::new();
        for name in ["stdout.log", "stderr.log"] {
            let path = self.dir.path().join(name);
            out.push_str(&format!(
                "----- tail of {} -----\n{}\n",
                path.display(),
                tail(&path, LOG_TAIL_LINES)
            ));
        }
        out
    }

    /// The full text of the node's stderr log (all generations).
    pub fn stderr_text(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default()
    }

    /// `tierlog serve` and its flags: the node's directories and ports, the options that were
    /// set, then [`NodeOptions::extra_args`]. Flag names come from the node's own list of
    /// settings ([`Setting`]), keyed by the [`ServeArgs`] field of the same name, so the harness
    /// spells no flag itself and cannot name one the node lacks.
    fn args(&self) -> Result<Vec<String>> {
        let kafka = format!("127.0.0.1:{}", self.kafka_port);
        let o = &self.opts;
        let mut settings: Vec<(&str, Option<String>)> = Vec::new();
        // `key => value`: `key` must be a field of `ServeArgs` (checked when this compiles).
        macro_rules! set {
            ($($key:ident => $value:expr),* $(,)?) => {$(
                let _ = |a: &ServeArgs| a.$key.is_some();
                settings.push((stringify!($key), $value));
            )*};
        }
        // The options that are settings, each under its own name.
        macro_rules! options {
            ($($key:ident),* $(,)?) => {
                set!($($key => o.$key.as_ref().map(ToString::to_string)),*);
            };
        }
        let listeners = (!o.extra_listeners.is_empty()).then(|| {
            let mut l = vec![format!("PLAINTEXT://{kafka}")];
            let mut map = vec!["PLAINTEXT:PLAINTEXT".to_owned()];
            for ((name, protocol), port) in o.extra_listeners.iter().zip(&self.listener_ports) {
                l.push(format!("{name}://127.0.0.1:{port}"));
                map.push(format!("{name}:{protocol}"));
            }
            (l.join(","), map.join(","))
        });
        let plain = listeners.is_none();
        set!(
            data_dir => Some(self.data_dir().display().to_string()),
            listen => plain.then(|| kafka.clone()),
            advertise => plain.then(|| o.advertise.clone().unwrap_or(kafka)),
            listeners => listeners.as_ref().map(|l| l.0.clone()),
            listener_security_protocol_map => listeners.as_ref().map(|l| l.1.clone()),
            http => Some(format!("127.0.0.1:{}", self.http_port)),
            cache_dir => o.cache_dir.as_ref().map(|d| d.display().to_string()),
            s3_allow_http => o.s3_allow_http.then(|| true.to_string()),
            s3_path_style => o.s3_path_style.then(|| true.to_string()),
            http_tls => o.http_tls_ca.is_some().then(|| true.to_string()),
            http_bearer_token_file => match &o.http_bearer_token {
                Some(token) => {
                    let file = self.dir.path().join("http-bearer-token");
                    std::fs::write(&file, format!("{token}\n"))?;
                    Some(file.display().to_string())
                }
                None => None,
            },
        );
        options!(
            node_id,
            flush_mode,
            flush_interval,
            auto_create_topics,
            default_partitions,
            max_frame_bytes,
            min_segment_bytes,
            object_store,
            s3_endpoint,
            s3_region,
            cache_memory_bytes,
            cache_disk_bytes,
            upload_interval,
            metadata,
            lease_ttl,
            replica_lag_time_max,
            default_replication_factor,
            min_insync_replicas,
            retention_check_interval,
        );
        let mut args = vec!["serve".to_owned()];
        for (key, value) in settings {
            let Some(value) = value else { continue };
            let setting =
                Setting::by_key(key).with_context(|| format!("`{key}` is not a node setting"))?;
            args.push(format!("--{}", setting.flag));
            args.push(value);
        }
        args.extend(o.extra_args.iter().cloned());
        Ok(args)
    }

    fn spawn_and_wait(&mut self) -> Result<()> {
        self.generation += 1;
        let args = self.args()?;
        let stdout = self.open_log("stdout.log")?;
        let stderr = self.open_log("stderr.log")?;
        let mut cmd = Command::new(&self.binary);
        cmd.args(&args)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .current_dir(self.dir.path());
        // Nothing from the test's own environment should configure the node by accident
        // (AWS_* would reach the S3 credential chain, endpoint and region).
        for (key, _) in std::env::vars() {
            if key.starts_with("TIERLOG_") || key.starts_with("AWS_") {
                cmd.env_remove(key);
            }
        }
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "info");
        }
        for (key, value) in &self.opts.env {
            cmd.env(key, value);
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("spawning {} {}", self.binary.display(), args.join(" ")))?;
        self.child = Some(child);
        self.wait_ready()
            .with_context(|| format!("tierlog {}", args.join(" ")))
    }

    fn open_log(&self, name: &str) -> Result<File> {
        let path = self.dir.path().join(name);
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        writeln!(
            file,
            "===== tierlog-tests: spawn #{} of {} =====",
            self.generation,
            self.binary.display()
        )?;
        Ok(file)
    }

    fn wait_ready(&mut self) -> Result<()> {
        let started = Instant::now();
        let deadline = started + READY_TIMEOUT;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                self.child = None;
                bail!(
                    "node exited during startup with {status}\n{}",
                    self.log_tails()
                );
            }
            let last_problem = match (self.health_status(), self.kafka_port_open()) {
                (Ok(200), true) => return Ok(()),
                (Ok(code), kafka) => format!("GET /health -> {code}, kafka port open: {kafka}"),
                (Err(e), kafka) => format!("GET /health failed: {e:#}, kafka port open: {kafka}"),
            };
            if Instant::now() >= deadline {
                if let Some(mut child) = self.child.take() {
                    let _ = child.kill();
                    let _ = child.wait();
                }
                bail!(
                    "node not ready after {READY_TIMEOUT:?} ({last_problem})\n{}",
                    self.log_tails()
                );
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// The status code of `GET /health` (a minimal HTTP/1.1 client, no dependency needed).
    pub fn health_status(&self) -> Result<u16> {
        if self.opts.http_tls_ca.is_some() {
            return Ok(self.http_get("/health", &[])?.status);
        }
        http_get_status(self.http_addr(), "/health")
    }

    fn kafka_port_open(&self) -> bool {
        TcpStream::connect_timeout(&self.kafka_addr(), Duration::from_millis(200)).is_ok()
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "tierlog-tests: node on {} (data dir {}) at test failure:\n{}",
                self.bootstrap(),
                self.data_dir().display(),
                self.log_tails()
            );
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Sends `GET <path>` and returns the status code.
pub fn http_get_status(addr: SocketAddr, path: &str) -> Result<u16> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(200))?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.set_write_timeout(Some(Duration::from_secs(2)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut head = Vec::new();
    let mut buf = [0u8; 256];
    // The status line is all we need.
    while !head.windows(2).any(|w| w == b"\r\n") {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&head);
    let code = line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse::<u16>().ok())
        .with_context(|| format!("malformed HTTP status line: {line:?}"))?;
    Ok(code)
}

/// `n` free ports, none of them in `taken` or repeated.
fn other_ports(n: usize, taken: &[u16]) -> Result<Vec<u16>> {
    let mut out: Vec<u16> = Vec::new();
    while out.len() < n {
        let p = free_port()?;
        if !taken.contains(&p) && !out.contains(&p) {
            out.push(p);
        }
    }
    Ok(out)
}

/// A loopback port that was free a moment ago (bind to port 0, read it, release it).
pub fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("binding 127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// The `tierlog` binary under test: `$TIERLOG_BIN`, else the newest of
/// `{$CARGO_TARGET_DIR,<workspace>/target}/{release,debug}/tierlog`.
pub fn tierlog_binary() -> Result<PathBuf> {
    if let Some(bin) = std::env::var_os("TIERLOG_BIN") {
        let bin = PathBuf::from(bin);
        if !bin.is_file() {
            bail!("TIERLOG_BIN={} does not exist", bin.display());
        }
        return Ok(bin);
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("tests crate has no parent directory")?
        .to_path_buf();
    let mut target_dirs = vec![workspace.join("target")];
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        target_dirs.insert(0, PathBuf::from(dir));
    }
    let mut best: Option<(SystemTime, PathBuf)> = None;
    let mut looked = Vec::new();
    for target in &target_dirs {
        for profile in ["release", "debug"] {
            let path = target.join(profile).join("tierlog");
            looked.push(path.display().to_string());
            if let Ok(modified) = std::fs::metadata(&path).and_then(|m| m.modified())
                && best.as_ref().is_none_or(|(t, _)| modified > *t)
            {
                best = Some((modified, path));
            }
        }
    }
    match best {
        Some((_, path)) => Ok(path),
        None => bail!(
            "no tierlog binary found: set TIERLOG_BIN or build it with \
             `cargo build --release -p tierlog-cli --bin tierlog` (looked at: {})",
            looked.join(", ")
        ),
    }
}

fn tail(path: &Path, lines: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("<cannot read: {e}>"),
    }
}

/// (soft, hard) "Max open files" of process `pid`, from `/proc/PID/limits`.
pub fn open_files_limits(pid: u32) -> Result<(u64, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/limits"))?;
    let line = text
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .context("no open-files line")?;
    let nums: Vec<u64> = line
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    anyhow::ensure!(nums.len() >= 2, "unexpected line {line:?}");
    Ok((nums[0], nums[1]))
}
