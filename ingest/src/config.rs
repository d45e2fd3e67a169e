//! The node's settings and how they are loaded.
//!
//! Precedence, lowest first: built-in defaults → the TOML file given by `--config` →
//! `TIERLOG_*` environment variables → command-line flags. The file uses the flag names in
//! snake case (`data_dir = "/var/lib/tierlog"`); unknown keys are refused so a typo fails fast.
//! [`NodeConfig::validate`] checks every value and names the key at fault.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// When appended data is made durable with fsync.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum FlushMode {
    /// fsync in the background every `flush_interval`; an acknowledged write can be lost if
    /// the machine (not just the process) fails within that window. Kafka's default stance.
    Interval,
    /// fsync before acknowledging a produce (concurrent produces share one fsync).
    Always,
}

/// Everything `tierlog serve` needs. Plain data; see the README for each field's trade-off.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NodeConfig {
    /// Where partition logs, the embedded metadata store and the default object store live.
    pub data_dir: PathBuf,
    /// Kafka listener address.
    pub listen: String,
    /// `host:port` that Metadata responses tell clients to connect to (default: the listener).
    pub advertise: Option<String>,
    /// This node's id in Metadata responses and the cluster.
    pub node_id: i32,
    /// This node's rack or zone (Kafka's `broker.rack`): replicas of a partition go to
    /// different racks first, and Metadata reports it.
    pub rack: Option<String>,
    /// Metadata store URL: `embedded` (default), `memory://`, `etcd://host:port,…[/prefix]`.
    pub metadata: String,
    /// Object store URL: `s3://bucket/prefix`, `file:///path` (default `<data_dir>/objects`)
    /// or `memory://`.
    pub object_store: Option<String>,
    /// Region of an `s3://` object store (default: `AWS_REGION`, then the AWS config chain).
    pub s3_region: Option<String>,
    /// Endpoint of an S3-compatible server, e.g. `http://minio:9000` (default:
    /// `AWS_ENDPOINT_URL_S3` / `AWS_ENDPOINT_URL`, else AWS).
    pub s3_endpoint: Option<String>,
    /// Allow plain-HTTP endpoints (local S3-compatible servers).
    pub s3_allow_http: bool,
    /// Path-style requests (`http://host/bucket/key`), as MinIO and most local servers want.
    pub s3_path_style: bool,
    /// Directory of the tiered-read cache's disk tier (default `<data_dir>/cache`).
    pub cache_dir: Option<PathBuf>,
    /// Memory tier of the tiered-read cache, in bytes.
    pub cache_memory_bytes: usize,
    /// Disk tier of the tiered-read cache, in bytes (0 = memory only).
    pub cache_disk_bytes: u64,
    /// How often each partition looks for sealed segments to upload (also right after a roll).
    #[serde(with = "humantime_serde")]
    pub upload_interval: Duration,
    /// Admin HTTP address (`/health`, `/metrics`).
    pub http: String,
    /// When appended data is fsynced.
    pub flush_mode: FlushMode,
    /// Background fsync period under `flush_mode = "interval"`.
    #[serde(with = "humantime_serde")]
    pub flush_interval: Duration,
    /// Create topics on first use (Metadata request with auto-creation allowed).
    pub auto_create_topics: bool,
    /// Partition count of auto-created topics and of CreateTopics asking for the default.
    pub default_partitions: i32,
    /// Largest request frame accepted; larger ones close the connection.
    pub max_frame_bytes: usize,
    /// Most concurrent client connections; more wait in the accept queue.
    pub max_connections: usize,
    /// Most requests read ahead of their responses on one connection.
    pub max_inflight_requests: usize,
    /// Kafka's `group.initial.rebalance.delay.ms`: how long a group leaving Empty waits for
    /// more members before its first generation (longer: fewer rebalances when many consumers
    /// start together; shorter: a lone consumer starts sooner).
    #[serde(with = "humantime_serde")]
    pub group_initial_rebalance_delay: Duration,
    /// Kafka's `offsets.retention.minutes`: committed offsets of a group empty for this long
    /// are deleted.
    #[serde(with = "humantime_serde")]
    pub offsets_retention: Duration,
    /// How often segment rolling by time and retention are checked.
    #[serde(with = "humantime_serde")]
    pub retention_check_interval: Duration,
    /// How long shutdown waits for in-flight requests before aborting them.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
    /// TTL of this node's liveness lease in the metadata store: a node that cannot renew it
    /// for this long is dead to the cluster (its partitions get new leaders) and stops
    /// accepting writes itself. Bounds failover time.
    #[serde(with = "humantime_serde")]
    pub lease_ttl: Duration,
    /// Kafka's `replica.lag.time.max.ms`: a follower that has not caught up with the leader for
    /// this long leaves the ISR.
    #[serde(with = "humantime_serde")]
    pub replica_lag_time_max: Duration,
    /// Replication factor of topics created without one (capped by the live nodes).
    pub default_replication_factor: i16,
    /// Kafka's `min.insync.replicas` for topics that do not set it: acks=all produces fail
    /// with NOT_ENOUGH_REPLICAS while the ISR is smaller.
    pub min_insync_replicas: i32,
    /// KIP-848 consumer groups: the heartbeat interval members are told to keep (Kafka's
    /// `group.consumer.heartbeat.interval.ms`).
    #[serde(with = "humantime_serde")]
    pub group_consumer_heartbeat_interval: Duration,
    /// KIP-848 consumer groups: a member silent this long is removed (Kafka's
    /// `group.consumer.session.timeout.ms`).
    #[serde(with = "humantime_serde")]
    pub group_consumer_session_timeout: Duration,
    /// How often the controller moves leadership back to each partition's preferred replica
    /// (its first) where that replica is alive and in sync (Kafka's
    /// `auto.leader.rebalance.enable` + `leader.imbalance.check.interval.seconds`); 0 = never.
    #[serde(with = "humantime_serde")]
    pub leader_rebalance_interval: Duration,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            data_dir: PathBuf::from("./tierlog-data"),
            listen: "127.0.0.1:9092".to_owned(),
            advertise: None,
            node_id: 0,
            rack: None,
            metadata: "embedded".to_owned(),
            object_store: None,
            http: "127.0.0.1:9644".to_owned(),
            s3_region: None,
            s3_endpoint: None,
            s3_allow_http: false,
            s3_path_style: false,
            cache_dir: None,
            cache_memory_bytes: 256 * 1024 * 1024,
            cache_disk_bytes: 4 * 1024 * 1024 * 1024,
            upload_interval: Duration::from_secs(1),
            flush_mode: FlushMode::Interval,
            flush_interval: Duration::from_millis(50),
            auto_create_topics: true,
            default_partitions: 1,
            max_frame_bytes: 100 * 1024 * 1024,
            max_connections: 10_000,
            max_inflight_requests: 64,
            retention_check_interval: Duration::from_secs(30),
            group_initial_rebalance_delay: Duration::from_secs(3),
            offsets_retention: Duration::from_secs(7 * 24 * 3600),
            shutdown_grace: Duration::from_secs(10),
            lease_ttl: Duration::from_secs(3),
            replica_lag_time_max: Duration::from_secs(10),
            default_replication_factor: 3,
            min_insync_replicas: 1,
            leader_rebalance_interval: Duration::from_secs(60),
            group_consumer_heartbeat_interval: Duration::from_secs(5),
            group_consumer_session_timeout: Duration::from_secs(45),
        }
    }
}

/// A setting that cannot be used, named by its key.
#[derive(Debug, thiserror::Error)]
#[error("invalid config `{key}`: {reason}")]
pub struct ConfigError {
    /// The key (as in the TOML file; the flag is the same in kebab case).
    pub key: &'static str,
    /// What is wrong with its value.
    pub reason: String,
}

fn bad(key: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        key,
        reason: reason.into(),
    }
}

/// Flag and environment overrides of [`NodeConfig`]; every one optional so that only what
/// was given replaces the file's value.
#[derive(Debug, Default, Clone, clap::Args)]
pub struct ServeArgs {
    /// TOML config file.
    #[arg(long, env = "TIERLOG_CONFIG")]
    pub config: Option<PathBuf>,
    /// Data directory [default: ./tierlog-data].
    #[arg(long, env = "TIERLOG_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Kafka listener address [default: 127.0.0.1:9092].
    #[arg(long, env = "TIERLOG_LISTEN")]
    pub listen: Option<String>,
    /// host:port advertised to clients [default: the listener address].
    #[arg(long, env = "TIERLOG_ADVERTISE")]
    pub advertise: Option<String>,
    /// Node id [default: 0].
    #[arg(long, env = "TIERLOG_NODE_ID")]
    pub node_id: Option<i32>,
    /// Rack or availability zone of this node (Kafka's broker.rack) [default: none].
    #[arg(long, env = "TIERLOG_RACK")]
    pub rack: Option<String>,
    /// Metadata store URL: embedded | memory:// | etcd://host:port[,host:port][/prefix] [default: embedded].
    #[arg(long, env = "TIERLOG_METADATA")]
    pub metadata: Option<String>,
    /// Object store URL: s3://bucket/prefix | file:///path | memory:// [default: file://<data-dir>/objects].
    #[arg(long, env = "TIERLOG_OBJECT_STORE")]
    pub object_store: Option<String>,
    /// Admin HTTP address [default: 127.0.0.1:9644].
    #[arg(long, env = "TIERLOG_HTTP")]
    pub http: Option<String>,
    /// Region of an s3:// object store [default: AWS_REGION, then the AWS config chain].
    #[arg(long, env = "TIERLOG_S3_REGION")]
    pub s3_region: Option<String>,
    /// S3-compatible endpoint, e.g. http://minio:9000 [default: AWS_ENDPOINT_URL, else AWS].
    #[arg(long, env = "TIERLOG_S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,
    /// Allow a plain-HTTP S3 endpoint.
    #[arg(long, env = "TIERLOG_S3_ALLOW_HTTP", num_args = 0..=1, default_missing_value = "true")]
    pub s3_allow_http: Option<bool>,
    /// Path-style S3 requests (MinIO and most local servers).
    #[arg(long, env = "TIERLOG_S3_PATH_STYLE", num_args = 0..=1, default_missing_value = "true")]
    pub s3_path_style: Option<bool>,
    /// Disk directory of the tiered-read cache [default: <data-dir>/cache].
    #[arg(long, env = "TIERLOG_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Memory tier of the tiered-read cache in bytes [default: 268435456].
    #[arg(long, env = "TIERLOG_CACHE_MEMORY_BYTES")]
    pub cache_memory_bytes: Option<usize>,
    /// Disk tier of the tiered-read cache in bytes, 0 = none [default: 4294967296].
    #[arg(long, env = "TIERLOG_CACHE_DISK_BYTES")]
    pub cache_disk_bytes: Option<u64>,
    /// How often partitions look for sealed segments to upload [default: 1s].
    #[arg(long, env = "TIERLOG_UPLOAD_INTERVAL", value_parser = parse_duration)]
    pub upload_interval: Option<Duration>,
    /// fsync policy: interval | always [default: interval].
    #[arg(long, env = "TIERLOG_FLUSH_MODE")]
    pub flush_mode: Option<FlushMode>,
    /// Background fsync period, e.g. 50ms [default: 50ms].
    #[arg(long, env = "TIERLOG_FLUSH_INTERVAL", value_parser = parse_duration)]
    pub flush_interval: Option<Duration>,
    /// Auto-create topics on first use [default: true].
    #[arg(long, env = "TIERLOG_AUTO_CREATE_TOPICS")]
    pub auto_create_topics: Option<bool>,
    /// Partitions of auto-created topics [default: 1].
    #[arg(long, env = "TIERLOG_DEFAULT_PARTITIONS")]
    pub default_partitions: Option<i32>,
    /// Largest accepted request frame in bytes [default: 104857600].
    #[arg(long, env = "TIERLOG_MAX_FRAME_BYTES")]
    pub max_frame_bytes: Option<usize>,
    /// Most concurrent connections [default: 10000].
    #[arg(long, env = "TIERLOG_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Delay before a new group's first rebalance completes [default: 3s].
    #[arg(long, env = "TIERLOG_GROUP_INITIAL_REBALANCE_DELAY", value_parser = parse_duration)]
    pub group_initial_rebalance_delay: Option<Duration>,
    /// Committed offsets of groups empty this long are deleted [default: 7days].
    #[arg(long, env = "TIERLOG_OFFSETS_RETENTION", value_parser = parse_duration)]
    pub offsets_retention: Option<Duration>,
    /// Retention and time-roll check period [default: 30s].
    #[arg(long, env = "TIERLOG_RETENTION_CHECK_INTERVAL", value_parser = parse_duration)]
    pub retention_check_interval: Option<Duration>,
    /// Shutdown grace period [default: 10s].
    #[arg(long, env = "TIERLOG_SHUTDOWN_GRACE", value_parser = parse_duration)]
    pub shutdown_grace: Option<Duration>,
    /// Liveness lease TTL; bounds failover time [default: 3s].
    #[arg(long, env = "TIERLOG_LEASE_TTL", value_parser = parse_duration)]
    pub lease_ttl: Option<Duration>,
    /// A follower behind the leader this long leaves the ISR [default: 10s].
    #[arg(long, env = "TIERLOG_REPLICA_LAG_TIME_MAX", value_parser = parse_duration)]
    pub replica_lag_time_max: Option<Duration>,
    /// Replication factor of topics created without one, capped by live nodes [default: 3].
    #[arg(long, env = "TIERLOG_DEFAULT_REPLICATION_FACTOR")]
    pub default_replication_factor: Option<i16>,
    /// min.insync.replicas of topics that do not set it [default: 1].
    #[arg(long, env = "TIERLOG_MIN_INSYNC_REPLICAS")]
    pub min_insync_replicas: Option<i32>,
    /// KIP-848 groups: heartbeat interval given to members [default: 5s].
    #[arg(long, env = "TIERLOG_GROUP_CONSUMER_HEARTBEAT_INTERVAL", value_parser = parse_duration)]
    pub group_consumer_heartbeat_interval: Option<Duration>,
    /// KIP-848 groups: members silent this long are removed [default: 45s].
    #[arg(long, env = "TIERLOG_GROUP_CONSUMER_SESSION_TIMEOUT", value_parser = parse_duration)]
    pub group_consumer_session_timeout: Option<Duration>,
    /// How often leadership moves back to preferred replicas, 0s = never [default: 60s].
    #[arg(long, env = "TIERLOG_LEADER_REBALANCE_INTERVAL", value_parser = parse_duration)]
    pub leader_rebalance_interval: Option<Duration>,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s)
        .map_err(|e| format!("`{s}` is not a duration like 50ms or 30s: {e}"))
}

impl NodeConfig {
    /// Loads defaults, then the file named by `args.config`, then the given overrides, and
    /// validates the result.
    pub fn load(args: &ServeArgs) -> anyhow::Result<NodeConfig> {
        let mut cfg = match &args.config {
            Some(path) => Self::from_file(path)?,
            None => NodeConfig::default(),
        };
        cfg.apply(args);
        cfg.validate()?;
        Ok(cfg)
    }

    /// Parses a TOML file; unknown keys and bad values are errors naming the key.
    pub fn from_file(path: &Path) -> anyhow::Result<NodeConfig> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("reading config file `{}`: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| anyhow::anyhow!("config file `{}`: {e}", path.display()))
    }

    fn apply(&mut self, a: &ServeArgs) {
        macro_rules! set {
            ($($field:ident),*) => { $( if let Some(v) = &a.$field { self.$field = v.clone(); } )* };
        }
        set!(
            data_dir,
            listen,
            node_id,
            metadata,
            http,
            flush_mode,
            flush_interval
        );
        set!(
            auto_create_topics,
            default_partitions,
            max_frame_bytes,
            max_connections
        );
        set!(
            retention_check_interval,
            shutdown_grace,
            s3_allow_http,
            s3_path_style
        );
        set!(cache_memory_bytes, cache_disk_bytes, upload_interval);
        set!(group_initial_rebalance_delay, offsets_retention);
        set!(
            lease_ttl,
            replica_lag_time_max,
            default_replication_factor,
            min_insync_replicas,
            leader_rebalance_interval
        );
        set!(
            group_consumer_heartbeat_interval,
            group_consumer_session_timeout
        );
        for (dst, src) in [
            (&mut self.s3_region, &a.s3_region),
            (&mut self.s3_endpoint, &a.s3_endpoint),
        ] {
            if src.is_some() {
                dst.clone_from(src);
            }
        }
        if a.cache_dir.is_some() {
            self.cache_dir.clone_from(&a.cache_dir);
        }
        if a.advertise.is_some() {
            self.advertise.clone_from(&a.advertise);
        }
        if a.rack.is_some() {
            self.rack.clone_from(&a.rack);
        }
        if a.object_store.is_some() {
            self.object_store.clone_from(&a.object_store);
        }
    }

    /// Checks every field and the fields against each other.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.data_dir.as_os_str().is_empty() {
            return Err(bad("data_dir", "must not be empty"));
        }
        self.listen_addr()?;
        self.http.parse::<SocketAddr>().map_err(|e| {
            bad(
                "http",
                format!("`{}` is not an ip:port address: {e}", self.http),
            )
        })?;
        if let Some(adv) = &self.advertise {
            parse_host_port(adv).map_err(|r| bad("advertise", r))?;
        }
        if self
            .rack
            .as_deref()
            .is_some_and(|r| r.is_empty() || r.len() > 255)
        {
            return Err(bad("rack", "must be 1 to 255 characters"));
        }
        if self.node_id < 0 {
            return Err(bad(
                "node_id",
                format!("must be >= 0, got {}", self.node_id),
            ));
        }
        self.metadata
            .parse::<tierlog_metadata::MetadataUrl>()
            .map_err(|e| bad("metadata", e.to_string()))?;
        self.object_store_url()?;
        if self.flush_interval.is_zero() {
            return Err(bad("flush_interval", "must be greater than zero"));
        }
        if self.default_partitions < 1 {
            return Err(bad(
                "default_partitions",
                format!("must be >= 1, got {}", self.default_partitions),
            ));
        }
        if self.max_frame_bytes < 64 * 1024 || self.max_frame_bytes > i32::MAX as usize {
            return Err(bad(
                "max_frame_bytes",
                format!(
                    "must be between 65536 and {}, got {}",
                    i32::MAX,
                    self.max_frame_bytes
                ),
            ));
        }
        if self.max_connections == 0 {
            return Err(bad("max_connections", "must be at least 1"));
        }
        if self.max_inflight_requests == 0 {
            return Err(bad("max_inflight_requests", "must be at least 1"));
        }
        if self.upload_interval.is_zero() {
            return Err(bad("upload_interval", "must be greater than zero"));
        }
        if self.cache_memory_bytes < 1024 * 1024 {
            return Err(bad(
                "cache_memory_bytes",
                format!("must be at least 1048576, got {}", self.cache_memory_bytes),
            ));
        }
        if let Some(e) = &self.s3_endpoint {
            let u = url::Url::parse(e)
                .map_err(|err| bad("s3_endpoint", format!("`{e}` is not a URL: {err}")))?;
            if !matches!(u.scheme(), "http" | "https") {
                return Err(bad(
                    "s3_endpoint",
                    format!("`{e}` must be http:// or https://"),
                ));
            }
        }
        if self.retention_check_interval.is_zero() {
            return Err(bad("retention_check_interval", "must be greater than zero"));
        }
        if self.lease_ttl < Duration::from_secs(1) {
            return Err(bad(
                "lease_ttl",
                format!("must be at least 1s, got {:?}", self.lease_ttl),
            ));
        }
        if self.replica_lag_time_max < Duration::from_millis(100) {
            return Err(bad(
                "replica_lag_time_max",
                format!(
                    "must be at least 100ms, got {:?}",
                    self.replica_lag_time_max
                ),
            ));
        }
        if self.group_consumer_heartbeat_interval.is_zero()
            || self.group_consumer_heartbeat_interval >= self.group_consumer_session_timeout
        {
            return Err(bad(
                "group_consumer_heartbeat_interval",
                format!(
                    "must be above zero and below group_consumer_session_timeout ({:?}), got {:?}",
                    self.group_consumer_session_timeout, self.group_consumer_heartbeat_interval
                ),
            ));
        }
        if self.default_replication_factor < 1 {
            return Err(bad(
                "default_replication_factor",
                format!("must be >= 1, got {}", self.default_replication_factor),
            ));
        }
        if self.min_insync_replicas < 1 {
            return Err(bad(
                "min_insync_replicas",
                format!("must be >= 1, got {}", self.min_insync_replicas),
            ));
        }
        Ok(())
    }

    /// The parsed listener address.
    pub fn listen_addr(&self) -> Result<SocketAddr, ConfigError> {
        self.listen.parse().map_err(|e| {
            bad(
                "listen",
                format!("`{}` is not an ip:port address: {e}", self.listen),
            )
        })
    }

    /// The directory of the tiered-read cache's disk tier.
    pub fn cache_dir(&self) -> PathBuf {
        self.cache_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("cache"))
    }

    /// The object store URL, defaulting to a directory inside the data directory.
    pub fn object_store_url(&self) -> Result<url::Url, ConfigError> {
        let raw = match &self.object_store {
            Some(s) => s.clone(),
            None => {
                let dir = absolute(&self.data_dir.join("objects"));
                format!("file://{}", dir.display())
            }
        };
        let url = url::Url::parse(&raw)
            .map_err(|e| bad("object_store", format!("`{raw}` is not a URL: {e}")))?;
        match url.scheme() {
            "file" | "memory" => Ok(url),
            "s3" if url.host_str().is_some_and(|h| !h.is_empty()) => Ok(url),
            "s3" => Err(bad(
                "object_store",
                format!("`{raw}` names no bucket (s3://bucket/prefix)"),
            )),
            other => Err(bad(
                "object_store",
                format!("unsupported scheme `{other}` (s3://, file://, memory://)"),
            )),
        }
    }
}

fn absolute(p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|d| d.join(p))
            .unwrap_or_else(|_| p.to_path_buf())
    }
}

/// Splits `host:port`, checking the port.
pub(crate) fn parse_host_port(s: &str) -> Result<(String, u16), String> {
    let (host, port) = s
        .rsplit_once(':')
        .ok_or_else(|| format!("`{s}` is not host:port"))?;
    let port: u16 = port
        .parse()
        .map_err(|_| format!("`{s}` has no valid port"))?;
    if host.is_empty() {
        return Err(format!("`{s}` has no host"));
    }
    Ok((
        host.trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned(),
        port,
    ))
}

/// serde for durations written the human way ("50ms", "30s").
mod humantime_serde {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn defaults_are_valid() {
        NodeConfig::default().validate().unwrap();
    }

    #[test]
    fn file_then_flags_override() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.toml");
        std::fs::write(&path, "node_id = 3\nflush_mode = \"always\"\nflush_interval = \"5ms\"\nlisten = \"127.0.0.1:1234\"\n").unwrap();
        let args = ServeArgs {
            config: Some(path),
            node_id: Some(9),
            ..Default::default()
        };
        let cfg = NodeConfig::load(&args).unwrap();
        assert_eq!(cfg.node_id, 9);
        assert_eq!(cfg.flush_mode, FlushMode::Always);
        assert_eq!(cfg.flush_interval, Duration::from_millis(5));
        assert_eq!(cfg.listen, "127.0.0.1:1234");
    }

    #[test]
    fn unknown_key_in_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.toml");
        std::fs::write(&path, "lissten = \"x\"\n").unwrap();
        let err = NodeConfig::load(&ServeArgs {
            config: Some(path),
            ..Default::default()
        })
        .unwrap_err();
        assert!(err.to_string().contains("lissten"), "{err}");
    }

    #[test]
    fn bad_values_name_their_key() {
        let cases: Vec<(&str, ServeArgs)> = vec![
            (
                "listen",
                ServeArgs {
                    listen: Some("nope".into()),
                    ..Default::default()
                },
            ),
            (
                "http",
                ServeArgs {
                    http: Some("localhost".into()),
                    ..Default::default()
                },
            ),
            (
                "advertise",
                ServeArgs {
                    advertise: Some("host-without-port".into()),
                    ..Default::default()
                },
            ),
            (
                "node_id",
                ServeArgs {
                    node_id: Some(-1),
                    ..Default::default()
                },
            ),
            (
                "metadata",
                ServeArgs {
                    metadata: Some("zk://x".into()),
                    ..Default::default()
                },
            ),
            (
                "object_store",
                ServeArgs {
                    object_store: Some("ftp://x".into()),
                    ..Default::default()
                },
            ),
            (
                "object_store",
                ServeArgs {
                    object_store: Some("s3:///prefix-only".into()),
                    ..Default::default()
                },
            ),
            (
                "s3_endpoint",
                ServeArgs {
                    s3_endpoint: Some("minio:9000".into()),
                    ..Default::default()
                },
            ),
            (
                "upload_interval",
                ServeArgs {
                    upload_interval: Some(Duration::ZERO),
                    ..Default::default()
                },
            ),
            (
                "default_partitions",
                ServeArgs {
                    default_partitions: Some(0),
                    ..Default::default()
                },
            ),
            (
                "max_frame_bytes",
                ServeArgs {
                    max_frame_bytes: Some(10),
                    ..Default::default()
                },
            ),
        ];
        for (key, args) in cases {
            let err = NodeConfig::load(&args).unwrap_err().to_string();
            assert!(err.contains(&format!("`{key}`")), "{key}: {err}");
        }
    }
}
