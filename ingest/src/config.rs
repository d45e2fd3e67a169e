//! The node's settings and how they are loaded.
//!
//! Every setting is declared once, in the `settings!` list below: its doc comment (the flag's
//! help and this documentation), name, type and default. From that one line follow the
//! [`NodeConfig`] field, its default, the `tierlog serve` flag (`--lease-ttl`), the environment
//! variable (`TIERLOG_LEASE_TTL`), the TOML key (`lease_ttl`) and its [`Setting`] entry, so a new
//! setting cannot be reachable one way and not another (`setting.rs` has the machinery).
//!
//! Precedence, lowest first: built-in defaults → the TOML file given by `--config` →
//! `TIERLOG_*` environment variables → command-line flags. Unknown file keys are refused so a
//! typo fails fast. [`NodeConfig::validate`] checks every value and names the key at fault.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

mod setting;

pub use setting::{Setting, SettingValue};
use setting::{env_of, flag_of, settings};

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

/// Which replica a consumer is sent to read from (Kafka's `replica.selector.class`, KIP-392).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum ReplicaSelector {
    /// Consumers always read from the leader (Kafka's default, no selector).
    Leader,
    /// A consumer that names its rack (`client.rack`) is sent to an in-sync replica in that
    /// rack when the leader is elsewhere (Kafka's `RackAwareReplicaSelector`).
    RackAware,
}

const MIB: usize = 1024 * 1024;

settings! {
    /// Where partition logs, the embedded metadata store and the default object store live.
    data_dir: PathBuf = PathBuf::from("./tierlog-data");
    /// Kafka listener address.
    listen: String = "127.0.0.1:9092".to_owned();
    /// host:port that Metadata responses tell clients to connect to (default: the listener
    /// address); set it when clients reach the node by another name.
    advertise: Option<String> = None;
    /// This node's id in Metadata responses and the cluster.
    node_id: i32 = 0;
    /// This node's rack or availability zone (Kafka's broker.rack): replicas of a partition go
    /// to different racks first, and Metadata reports it (default: none).
    rack: Option<String> = None;
    /// Metadata store URL: embedded | memory:// | etcd://host:port[,host:port][/prefix].
    metadata: String = "embedded".to_owned();
    /// PEM CA certificates that an etcd metadata store's server certificate must chain to;
    /// set, the etcd:// endpoints are reached over TLS (etcd's --cacert).
    etcd_ca_file: Option<PathBuf> = None;
    /// PEM certificate this node presents to etcd (for an etcd run with --client-cert-auth);
    /// needs etcd_key_file and etcd_ca_file.
    etcd_cert_file: Option<PathBuf> = None;
    /// PEM private key of etcd_cert_file.
    etcd_key_file: Option<PathBuf> = None;
    /// Object store URL: s3://bucket/prefix | file:///path | memory:// (default:
    /// file://<data-dir>/objects).
    object_store: Option<String> = None;
    /// Region of an s3:// object store (default: AWS_REGION, then the AWS config chain).
    s3_region: Option<String> = None;
    /// Endpoint of an S3-compatible server, e.g. http://minio:9000 (default:
    /// AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL, else AWS).
    s3_endpoint: Option<String> = None;
    /// Allow a plain-HTTP S3 endpoint (local S3-compatible servers).
    s3_allow_http: bool = false;
    /// Path-style S3 requests (http://host/bucket/key), as MinIO and most local servers want.
    s3_path_style: bool = false;
    /// Directory of the tiered-read cache's disk tier (default: <data-dir>/cache).
    cache_dir: Option<PathBuf> = None;
    /// Memory tier of the tiered-read cache, in bytes (at least 1 MiB).
    cache_memory_bytes: usize = 256 * MIB;
    /// Disk tier of the tiered-read cache, in bytes; 0 = memory only.
    cache_disk_bytes: u64 = 4 * 1024 * 1024 * 1024;
    /// How often each partition looks for sealed segments to upload (also right after a roll).
    upload_interval: Duration = Duration::from_secs(1);
    /// How often the scrubber starts a pass that re-reads every sealed local segment and
    /// checks each batch's CRC-32C, so that bit rot is found (and healed from the tiered copy)
    /// before a reader finds it. A pass takes at least its bytes / scrub_bytes_per_sec.
    scrub_interval: Duration = Duration::from_secs(24 * 3600);
    /// The scrubber's read rate bound in bytes per second (its share of the disk); 0 = no
    /// scrubbing.
    scrub_bytes_per_sec: u64 = 16 * 1024 * 1024;
    /// How often each partition leader starts a pass that re-reads the partition's tiered
    /// objects from the object store and checks every chunk, batch and index against its
    /// checksums, re-uploading a damaged segment from the hot tier when it still holds it.
    /// Rarer than scrub_interval: object stores keep their own checksums, and every read
    /// costs GET requests. Paced by its own scrub_bytes_per_sec (network, not disk); 0 = off.
    scrub_tiered_interval: Duration = Duration::from_secs(7 * 24 * 3600);
    /// How often each partition leader sweeps its object-store prefix for orphaned objects (a
    /// LIST and two manifest reads per sweep, so rarely).
    tiering_gc_interval: Duration = Duration::from_secs(10 * 60);
    /// How old an object no manifest entry references must be before a sweep deletes it: far
    /// longer than any upload takes plus clock skew with the object store (0 = no grace).
    tiering_gc_grace: Duration = tierlog_tiering::remote::gc::DEFAULT_GRACE;
    /// For tests and test clusters only: faults to inject into every object-store call, e.g.
    /// fail_first=3,ops=put;latency=50ms (syntax: tiering/src/remote/faults.rs; default: none).
    object_store_faults: Option<String> = None;
    /// Kafka's listeners: comma-separated NAME://host:port, e.g.
    /// PLAINTEXT://0.0.0.0:9092,SASL_SSL://0.0.0.0:9093; a name is its security protocol
    /// (PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL) unless listener_security_protocol_map maps
    /// it (default: one PLAINTEXT listener at `listen`).
    listeners: Option<String> = None;
    /// Kafka's advertised.listeners: NAME://host:port per listener, what Metadata tells
    /// clients that arrived on that listener (default: each listener's bound address).
    advertised_listeners: Option<String> = None;
    /// Kafka's listener.security.protocol.map for custom listener names, e.g.
    /// INTERNAL:SSL,EXTERNAL:SASL_SSL (default: each name is its own protocol).
    listener_security_protocol_map: Option<String> = None;
    /// Kafka's inter.broker.listener.name: the listener nodes replicate over (default: the
    /// first listener).
    inter_broker_listener_name: Option<String> = None;
    /// PEM certificate chain of the TLS listeners (SSL, SASL_SSL), reloaded when the file
    /// changes.
    ssl_cert_file: Option<PathBuf> = None;
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of `ssl_cert_file`, reloaded with it.
    ssl_key_file: Option<PathBuf> = None;
    /// PEM CA certificates: trusted issuers of client certificates (mutual TLS) and of other
    /// nodes' certificates when nodes connect to each other over TLS.
    ssl_ca_file: Option<PathBuf> = None;
    /// Kafka's ssl.client.auth: none, requested or required (a client certificate's subject
    /// becomes the principal, mapped by ssl_principal_mapping_rules).
    ssl_client_auth: String = "none".to_owned();
    /// Kafka's ssl.principal.mapping.rules: RULE:pattern/replacement/[LU] rules tried in
    /// order against the certificate subject (RFC 2253), then DEFAULT (the whole subject).
    ssl_principal_mapping_rules: String = "DEFAULT".to_owned();
    /// The user this node authenticates as on other nodes' inter-broker listener when that
    /// listener uses SASL (make it a super user).
    inter_broker_sasl_username: Option<String> = None;
    /// File whose first line is inter_broker_sasl_username's password.
    inter_broker_sasl_password_file: Option<PathBuf> = None;
    /// Kafka's sasl.mechanism.inter.broker.protocol: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.
    inter_broker_sasl_mechanism: String = "SCRAM-SHA-512".to_owned();
    /// How often the TLS certificate and key files are checked for changes (a rotated
    /// certificate is served from the next handshake on, without a restart).
    ssl_reload_interval: Duration = Duration::from_secs(10);
    /// Kafka's connections.max.reauth.ms: an authenticated connection must re-authenticate
    /// within this long (KIP-368) or is closed at its next request; 0s = never.
    connections_max_reauth: Duration = Duration::ZERO;
    /// Admin HTTP address (/health, /metrics).
    http: String = "127.0.0.1:9644".to_owned();
    /// Serve the admin HTTP endpoint over HTTPS with ssl_cert_file and ssl_key_file (reloaded
    /// as the Kafka listeners' are); scrapers then need the issuing CA.
    http_tls: bool = false;
    /// File whose first line is the bearer token every admin HTTP endpoint except /health
    /// requires (`Authorization: Bearer <token>`, else 401); read at start (default: none, so
    /// /metrics is open to anyone who reaches the address).
    http_bearer_token_file: Option<PathBuf> = None;
    /// When appended data is fsynced: interval (in the background; a machine crash can lose
    /// one flush_interval of acknowledged writes) or always (before acknowledging).
    flush_mode: FlushMode = FlushMode::Interval;
    /// Background fsync period under flush_mode = interval.
    flush_interval: Duration = Duration::from_millis(50);
    /// Check every batch's CRC-32C before the hot tier serves it (to consumers, followers,
    /// the uploader), so a bad batch is quarantined, never sent. Off, bytes are served
    /// unchecked as Kafka serves them (the scrubber still checks); for measuring the cost.
    verify_reads: bool = true;
    /// Create topics on first use (a Metadata request that allows auto-creation).
    auto_create_topics: bool = true;
    /// Most topics one client address may auto-create per minute; Metadata for more topics
    /// answers UNKNOWN_TOPIC_OR_PARTITION until the minute is over (CreateTopics is not
    /// limited by this).
    auto_create_topics_per_ip_per_minute: usize = 100;
    /// Partition count of auto-created topics and of CreateTopics asking for the default.
    default_partitions: i32 = 1;
    /// Most partitions one topic of a CreateTopics request, or one CreatePartitions increase,
    /// may create; more is refused with INVALID_PARTITIONS.
    max_create_partitions: usize = 100_000;
    /// Most partition replicas one node may host; a CreateTopics or CreatePartitions that
    /// would place more on any node is refused with INVALID_PARTITIONS.
    max_partitions_per_node: usize = 100_000;
    /// Most segment log files held open at once (a process-wide pool; partitions at rest
    /// hold none). 0: half the open-file limit the node has after raising it.
    max_open_segment_files: usize = 0;
    /// Smallest `segment.bytes` a topic may set: Kafka 4's floor, 1 MiB (each segment costs
    /// descriptors and index files, so tiny segments let one client exhaust them). Lower it
    /// only for tests that want many small segments (as Kafka's `internal.segment.bytes`).
    min_segment_bytes: u64 = 1024 * 1024;
    /// Largest request frame accepted, in bytes; a larger one closes the connection.
    max_frame_bytes: usize = 100 * MIB;
    /// Most concurrent client connections; more wait in the accept queue.
    max_connections: usize = 10_000;
    /// Kafka's max.connections.per.ip: most open connections from one client address; the
    /// next is closed at once (default: unlimited).
    max_connections_per_ip: usize = i32::MAX as usize;
    /// Kafka's max.connections.per.ip.overrides: per-address limits, `ip:n,ip:n` (IPv6 as
    /// `[::1]:n`), replacing max_connections_per_ip for those addresses.
    max_connections_per_ip_overrides: Option<String> = None;
    /// Kafka's connections.max.idle.ms: a client connection with no request for this long
    /// (and none being answered) is closed, so idle sockets cannot hold the connection slots
    /// new clients need (0s = never).
    connections_max_idle: Duration = Duration::from_secs(10 * 60);
    /// Once a request's first bytes arrive, the whole request must arrive within this long or
    /// the connection is closed: a stalled or trickling sender holds neither memory nor a slot
    /// for ever (longer: more patience for large requests over slow links).
    request_read_timeout: Duration = Duration::from_secs(30);
    /// Kafka's queued.max.request.bytes: most bytes of requests being read at once over all
    /// connections; a request that does not fit is left unread in its socket (back-pressure)
    /// until earlier ones are handled. One larger than the whole budget waits for all of it.
    queued_max_request_bytes: usize = 256 * MIB;
    /// Kafka's quota.window.num: how many windows client-quota rates are sampled over (more:
    /// smoother rates, slower to forget a burst).
    quota_window_num: usize = 11;
    /// Kafka's quota.window.size.seconds: the length of one quota sampling window.
    quota_window_size: Duration = Duration::from_secs(1);
    /// Kafka's max.request.partition.size.limit: most partitions one DescribeTopicPartitions
    /// response holds, whatever the client asks for (a client pages through the rest; larger:
    /// fewer round trips, bigger responses).
    max_request_partition_size_limit: i32 = 2000;
    /// Kafka's max.incremental.fetch.session.cache.slots: most fetch sessions (KIP-227) the
    /// node keeps; each lets a consumer or follower of many partitions send only what changed
    /// (more: more memory, about 100 bytes a partition; 0: every fetch is a full one).
    max_incremental_fetch_session_cache_slots: usize = 1000;
    /// Most requests read ahead of their responses on one connection.
    max_inflight_requests: usize = 64;
    /// Kafka's group.initial.rebalance.delay.ms: how long a group leaving Empty waits for more
    /// members before its first generation (longer: fewer rebalances when many consumers start
    /// together; shorter: a lone consumer starts sooner).
    group_initial_rebalance_delay: Duration = Duration::from_secs(3);
    /// Kafka's offsets.retention.minutes: committed offsets of a group empty for this long are
    /// deleted.
    offsets_retention: Duration = Duration::from_secs(7 * 24 * 3600);
    /// How often segment rolling by time and retention are checked.
    retention_check_interval: Duration = Duration::from_secs(30);
    /// Kafka's log.cleaner.enable: run the log cleaner for `cleanup.policy=compact` topics
    /// (both tiers). Off, compacted topics grow without bound.
    log_cleaner_enable: bool = true;
    /// Kafka's log.cleaner.dedupe.buffer.size: memory for the cleaner's key map, in bytes
    /// (40 bytes a key). A dirty range with more keys is cleaned in several passes.
    log_cleaner_dedupe_buffer_size: usize = 128 * MIB;
    /// Kafka's log.cleaner.io.max.bytes.per.second: the cleaner's read + write rate limit
    /// (default: unlimited).
    log_cleaner_io_max_bytes_per_second: Option<u64> = None;
    /// Kafka's log.cleaner.backoff.ms: how long the cleaner sleeps when no log needs
    /// cleaning.
    log_cleaner_backoff: Duration = Duration::from_secs(15);
    /// How long shutdown waits for in-flight requests before aborting them.
    shutdown_grace: Duration = Duration::from_secs(10);
    /// TTL of this node's liveness lease in the metadata store: a node that cannot renew it for
    /// this long is dead to the cluster (its partitions get new leaders) and stops accepting
    /// writes itself. Bounds failover time.
    lease_ttl: Duration = Duration::from_secs(3);
    /// Kafka's replica.lag.time.max.ms: a follower that has not caught up with the leader for
    /// this long leaves the ISR.
    replica_lag_time_max: Duration = Duration::from_secs(10);
    /// Kafka's replica.selector.class (KIP-392): rack-aware sends a consumer that sets
    /// client.rack to an in-sync replica in its rack when the leader is in another one, so it
    /// pays no cross-zone transfer (followers serve reads up to their high watermark, a fetch
    /// round trip behind the leader's); leader keeps every consumer on the leader.
    replica_selector: ReplicaSelector = ReplicaSelector::RackAware;
    /// Replication factor of topics created without one (capped by the live nodes).
    default_replication_factor: i16 = 3;
    /// Kafka's min.insync.replicas for topics that do not set it: acks=all produces fail with
    /// NOT_ENOUGH_REPLICAS while the ISR is smaller.
    min_insync_replicas: i32 = 1;
    /// KIP-848 consumer groups: the heartbeat interval members are told to keep (Kafka's
    /// group.consumer.heartbeat.interval.ms).
    group_consumer_heartbeat_interval: Duration = Duration::from_secs(5);
    /// KIP-848 consumer groups: a member silent this long is removed (Kafka's
    /// group.consumer.session.timeout.ms).
    group_consumer_session_timeout: Duration = Duration::from_secs(45);
    /// How often the controller moves leadership back to each partition's preferred replica
    /// (its first) where that replica is alive and in sync (Kafka's
    /// auto.leader.rebalance.enable + leader.imbalance.check.interval.seconds); 0s = never.
    leader_rebalance_interval: Duration = Duration::from_secs(60);
    /// How long a node that holds replicas may be absent (no live registration) before the
    /// controller re-creates its replicas on live nodes, restoring the replication factor. A
    /// node that comes back after that is treated as new (it holds nothing until balanced).
    replica_replacement_delay: Duration = Duration::from_secs(300);
    /// Move replicas between live nodes so that each holds an even share of replicas and
    /// preferred leaders (after a node joins, say), a few partitions at a time.
    partition_balancing: bool = true;
    /// Most partition reassignments the controller keeps in progress at once for healing,
    /// draining and balancing (reassignments asked for through the Kafka API count too).
    max_concurrent_reassignments: usize = 4;
    /// The transaction protocol clients are told to use (Kafka's finalized
    /// `transaction.version` feature): 2 = KIP-890 (the partition is added to the transaction
    /// by its first Produce, and every commit or abort bumps the producer epoch, so a late
    /// request of a finished transaction cannot touch the next one); 1 = the classic protocol.
    /// Clients that know only the classic protocol (librdkafka) use it either way.
    transaction_version: i16 = 2;
    /// Kafka's transaction.max.timeout.ms: the longest `transaction.timeout.ms` a
    /// transactional producer may ask for (InitProducerId refuses longer ones).
    transaction_max_timeout: Duration = Duration::from_secs(15 * 60);
    /// Kafka's transaction.abort.timed.out.transaction.cleanup.interval.ms: how often the
    /// coordinator aborts transactions open past their timeout and finishes ones a dead node
    /// left half-completed.
    transaction_abort_check_interval: Duration = Duration::from_secs(10);
    /// Kafka's transactional.id.expiration.ms: a transactional id idle this long is forgotten.
    transactional_id_expiration: Duration = Duration::from_secs(7 * 24 * 3600);
    /// Kafka's producer.id.expiration.ms: an idempotent producer idle this long is forgotten
    /// by the partitions it wrote to (its next write starts a new sequence).
    producer_id_expiration: Duration = Duration::from_secs(24 * 3600);
    /// SASL mechanisms clients may use on SASL listeners, comma-separated (Kafka's
    /// sasl.enabled.mechanisms): PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER. PLAIN checks
    /// passwords against the users' SCRAM credentials. OAUTHBEARER is added automatically when
    /// sasl_oauthbearer_jwks is set, and may only be listed when it is.
    sasl_enabled_mechanisms: String = "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512".to_owned();
    /// OAUTHBEARER: the identity provider's JWKS, a file path or an http(s):// URL, reloaded
    /// hourly and when a token names an unknown key (default: none, OAUTHBEARER off).
    sasl_oauthbearer_jwks: Option<String> = None;
    /// OAUTHBEARER: the `iss` every token must carry (Kafka's
    /// sasl.oauthbearer.expected.issuer; default: any).
    sasl_oauthbearer_expected_issuer: Option<String> = None;
    /// OAUTHBEARER: a value every token's `aud` must contain (Kafka's
    /// sasl.oauthbearer.expected.audience; default: any).
    sasl_oauthbearer_expected_audience: Option<String> = None;
    /// OAUTHBEARER: the claim naming the principal (Kafka's sasl.oauthbearer.sub.claim.name).
    sasl_oauthbearer_sub_claim_name: String = "sub".to_owned();
    /// A user given SCRAM-SHA-256 and SCRAM-SHA-512 credentials at start if it has none: the
    /// first admin of a SASL-only cluster (needs sasl_bootstrap_password_file).
    sasl_bootstrap_user: Option<String> = None;
    /// File whose first line is sasl_bootstrap_user's password (a file, so the password is
    /// in no flag, environment or config file).
    sasl_bootstrap_password_file: Option<PathBuf> = None;
    /// Kafka's super.users: principals allowed every operation whatever the ACLs, separated
    /// by semicolons (`User:admin;User:ops`). Default: none.
    super_users: Option<String> = None;
    /// Kafka's allow.everyone.if.no.acl.found: whether a resource no ACL applies to (for
    /// anyone) is open to every principal. Unset: true while no listener authenticates
    /// clients (every client is User:ANONYMOUS, so ACLs are opt-in), false once one does.
    allow_everyone_if_no_acl_found: Option<bool> = None;
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

impl NodeConfig {
    /// Loads defaults, then the file named by `args.config`, then the given overrides, and
    /// validates the result.
    pub fn load(args: &ServeArgs) -> anyhow::Result<NodeConfig> {
        let mut cfg = match &args.config {
            Some(path) => Self::from_file(path)?,
            None => NodeConfig::default(),
        };
        args.apply_to(&mut cfg);
        cfg.validate()?;
        Ok(cfg)
    }

    /// Parses a TOML file; unknown keys and bad values are errors naming the key.
    pub fn from_file(path: &Path) -> anyhow::Result<NodeConfig> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("reading config file `{}`: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| anyhow::anyhow!("config file `{}`: {e}", path.display()))
    }

    /// Checks every field and the fields against each other.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.data_dir.as_os_str().is_empty() {
            return Err(bad("data_dir", "must not be empty"));
        }
        if !(1..=2).contains(&self.transaction_version) {
            return Err(bad(
                "transaction_version",
                format!("must be 1 or 2, got {}", self.transaction_version),
            ));
        }
        self.listen_addr()?;
        let listeners = crate::security::listener::Listeners::from_config(self)
            .map_err(|(key, reason)| bad(key, reason))?;
        if !matches!(
            self.ssl_client_auth.as_str(),
            "none" | "requested" | "required"
        ) {
            return Err(bad(
                "ssl_client_auth",
                format!(
                    "must be none, requested or required, got `{}`",
                    self.ssl_client_auth
                ),
            ));
        }
        crate::security::tls::MappingRules::parse(&self.ssl_principal_mapping_rules)
            .map_err(|r| bad("ssl_principal_mapping_rules", r))?;
        if listeners.any_tls() && (self.ssl_cert_file.is_none() || self.ssl_key_file.is_none()) {
            return Err(bad(
                "ssl_cert_file",
                "a TLS listener (SSL, SASL_SSL) needs ssl_cert_file and ssl_key_file",
            ));
        }
        if self.http_tls && (self.ssl_cert_file.is_none() || self.ssl_key_file.is_none()) {
            return Err(bad(
                "http_tls",
                "HTTPS on the admin endpoint needs ssl_cert_file and ssl_key_file",
            ));
        }
        if self.ssl_client_auth != "none" && self.ssl_ca_file.is_none() {
            return Err(bad(
                "ssl_ca_file",
                "ssl_client_auth other than none needs ssl_ca_file to verify client certificates",
            ));
        }
        if self.ssl_reload_interval.is_zero() {
            return Err(bad("ssl_reload_interval", "must be greater than zero"));
        }
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
        crate::security::acl::AuthorizerConfig::parse_super_users(
            self.super_users.as_deref().unwrap_or_default(),
        )
        .map_err(|r| bad("super_users", r))?;
        if self.node_id < 0 {
            return Err(bad(
                "node_id",
                format!("must be >= 0, got {}", self.node_id),
            ));
        }
        self.metadata
            .parse::<tierlog_metadata::MetadataUrl>()
            .map_err(|e| bad("metadata", e.to_string()))?;
        self.etcd_tls()
            .validate()
            .map_err(|e| bad("etcd_cert_file", e.to_string()))?;
        self.object_store_url()?;
        if self.flush_interval.is_zero() {
            return Err(bad("flush_interval", "must be greater than zero"));
        }
        if self.max_create_partitions < 1 {
            return Err(bad("max_create_partitions", "must be at least 1"));
        }
        if self.max_partitions_per_node < 1 {
            return Err(bad("max_partitions_per_node", "must be at least 1"));
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
        if self.max_connections_per_ip == 0 {
            return Err(bad("max_connections_per_ip", "must be at least 1"));
        }
        crate::security::quota::parse_overrides(
            self.max_connections_per_ip_overrides
                .as_deref()
                .unwrap_or(""),
        )
        .map_err(|r| bad("max_connections_per_ip_overrides", r))?;
        if self.request_read_timeout.is_zero() {
            return Err(bad("request_read_timeout", "must be greater than zero"));
        }
        if self.queued_max_request_bytes < 64 * 1024
            || self.queued_max_request_bytes > u32::MAX as usize
        {
            return Err(bad(
                "queued_max_request_bytes",
                format!(
                    "must be between 65536 and {}, got {}",
                    u32::MAX,
                    self.queued_max_request_bytes
                ),
            ));
        }
        if self.auto_create_topics_per_ip_per_minute == 0 {
            return Err(bad(
                "auto_create_topics_per_ip_per_minute",
                "must be at least 1 (auto_create_topics = false turns auto-creation off)",
            ));
        }
        if !(14..=i32::MAX as u64).contains(&self.min_segment_bytes) {
            return Err(bad(
                "min_segment_bytes",
                format!(
                    "must be between 14 and {}, got {}",
                    i32::MAX,
                    self.min_segment_bytes
                ),
            ));
        }
        if self.quota_window_num == 0 {
            return Err(bad("quota_window_num", "must be at least 1"));
        }
        if self.quota_window_size < Duration::from_secs(1) {
            return Err(bad("quota_window_size", "must be at least 1s"));
        }
        if self.max_request_partition_size_limit < 1 {
            return Err(bad(
                "max_request_partition_size_limit",
                format!(
                    "must be at least 1, got {}",
                    self.max_request_partition_size_limit
                ),
            ));
        }
        if self.max_inflight_requests == 0 {
            return Err(bad("max_inflight_requests", "must be at least 1"));
        }
        if self.upload_interval.is_zero() {
            return Err(bad("upload_interval", "must be greater than zero"));
        }
        if self.scrub_interval.is_zero() {
            return Err(bad("scrub_interval", "must be greater than zero"));
        }
        if self.tiering_gc_interval.is_zero() {
            return Err(bad("tiering_gc_interval", "must be greater than zero"));
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
        if self.log_cleaner_backoff.is_zero() {
            return Err(bad("log_cleaner_backoff", "must be greater than zero"));
        }
        if self.log_cleaner_dedupe_buffer_size < 1024 {
            return Err(bad(
                "log_cleaner_dedupe_buffer_size",
                "must be at least 1024 bytes",
            ));
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
        crate::security::sasl::enabled_mechanisms(self)
            .map_err(|r| bad("sasl_enabled_mechanisms", r))?;
        if self.sasl_oauthbearer_sub_claim_name.is_empty() {
            return Err(bad("sasl_oauthbearer_sub_claim_name", "must not be empty"));
        }
        if self.sasl_bootstrap_user.is_some() != self.sasl_bootstrap_password_file.is_some() {
            return Err(bad(
                "sasl_bootstrap_user",
                "sasl_bootstrap_user and sasl_bootstrap_password_file go together",
            ));
        }
        if self.sasl_bootstrap_user.as_deref() == Some("") {
            return Err(bad("sasl_bootstrap_user", "must not be empty"));
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

    /// TLS to an etcd metadata store, from the `etcd_*_file` settings (off without a CA).
    pub fn etcd_tls(&self) -> tierlog_metadata::EtcdTls {
        let mut tls = tierlog_metadata::EtcdTls::default();
        tls.ca_file = self.etcd_ca_file.clone();
        tls.cert_file = self.etcd_cert_file.clone();
        tls.key_file = self.etcd_key_file.clone();
        tls
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use clap::{CommandFactory as _, FromArgMatches as _};

    /// A value other than the given one, for the round-trip tests of every setting.
    pub(super) trait Changed {
        fn changed(&self) -> Self;
    }
    impl Changed for String {
        fn changed(&self) -> Self {
            format!("{self}-changed")
        }
    }
    impl Changed for PathBuf {
        fn changed(&self) -> Self {
            self.join("changed")
        }
    }
    impl Changed for Option<String> {
        fn changed(&self) -> Self {
            Some(self.as_deref().unwrap_or("set").to_owned() + "-changed")
        }
    }
    impl Changed for Option<PathBuf> {
        fn changed(&self) -> Self {
            Some(self.clone().unwrap_or_default().join("changed"))
        }
    }
    impl Changed for Option<u64> {
        fn changed(&self) -> Self {
            Some(self.unwrap_or(1_000_000) + 1)
        }
    }
    impl Changed for Option<bool> {
        fn changed(&self) -> Self {
            Some(!self.unwrap_or(false))
        }
    }
    impl Changed for bool {
        fn changed(&self) -> Self {
            !self
        }
    }
    impl Changed for Duration {
        fn changed(&self) -> Self {
            *self + Duration::from_millis(1500)
        }
    }
    impl Changed for FlushMode {
        fn changed(&self) -> Self {
            match self {
                FlushMode::Interval => FlushMode::Always,
                FlushMode::Always => FlushMode::Interval,
            }
        }
    }
    impl Changed for ReplicaSelector {
        fn changed(&self) -> Self {
            match self {
                ReplicaSelector::Leader => ReplicaSelector::RackAware,
                ReplicaSelector::RackAware => ReplicaSelector::Leader,
            }
        }
    }
    macro_rules! changed_by_one {
        ($($ty:ty),*) => {$(
            impl Changed for $ty {
                fn changed(&self) -> Self {
                    self + 1
                }
            }
        )*};
    }
    changed_by_one!(i16, i32, u64, usize);

    /// `tierlog serve` as the binary declares it: a command with [`ServeArgs`].
    #[derive(clap::Parser, Debug)]
    struct Serve {
        #[command(flatten)]
        args: ServeArgs,
    }

    fn parse(argv: &[String]) -> ServeArgs {
        let matches = Serve::command()
            .try_get_matches_from(std::iter::once("serve".to_owned()).chain(argv.iter().cloned()))
            .unwrap();
        Serve::from_arg_matches(&matches).unwrap().args
    }

    #[test]
    fn every_setting_has_its_flag_and_variable() {
        let cmd = Serve::command();
        for s in SETTINGS {
            let arg = cmd
                .get_arguments()
                .find(|a| a.get_id().as_str() == s.key)
                .unwrap_or_else(|| panic!("no flag for `{}`", s.key));
            assert_eq!(arg.get_long(), Some(s.key.replace('_', "-").as_str()));
            assert_eq!(s.flag, s.key.replace('_', "-"));
            let env = format!("TIERLOG_{}", s.key.to_uppercase());
            assert_eq!(arg.get_env().and_then(|e| e.to_str()), Some(env.as_str()));
            assert_eq!(s.env, env);
            assert!(!s.doc.is_empty(), "`{}` has no doc comment", s.key);
            assert_eq!(Setting::by_key(s.key).map(|b| b.flag), Some(s.flag));
        }
        // Nothing else: `--config` and the settings are the whole of `tierlog serve`'s flags.
        let flags = cmd
            .get_arguments()
            .filter(|a| a.get_long().is_some())
            .count();
        assert_eq!(flags, SETTINGS.len() + 1);
    }

    #[test]
    fn every_setting_round_trips_through_its_flag() {
        let changed = NodeConfig::all_changed();
        let mut argv = Vec::new();
        for s in SETTINGS {
            let value = s.value(&changed).unwrap();
            assert_ne!(Some(&value), s.default_value().as_ref(), "{}", s.key);
            argv.push(format!("--{}", s.flag));
            argv.push(value);
        }
        let mut cfg = NodeConfig::default();
        parse(&argv).apply_to(&mut cfg);
        assert_eq!(cfg, changed);
    }

    #[test]
    fn every_setting_round_trips_through_its_file_key() {
        let changed = NodeConfig::all_changed();
        let text = toml::to_string(&changed).unwrap();
        for s in SETTINGS {
            assert!(
                text.lines()
                    .any(|l| l.starts_with(&format!("{} = ", s.key))),
                "`{}` missing from\n{text}",
                s.key
            );
        }
        assert_eq!(toml::from_str::<NodeConfig>(&text).unwrap(), changed);
        // The file holds each value the way its flag and variable take it.
        let table: toml::Table = toml::from_str(&text).unwrap();
        for s in SETTINGS {
            let in_file = match &table[s.key] {
                toml::Value::String(v) => v.clone(),
                other => other.to_string(),
            };
            assert_eq!(Some(in_file), s.value(&changed), "{}", s.key);
        }
        // Unset optional settings are left out, and read back as unset.
        let defaults = toml::to_string(&NodeConfig::default()).unwrap();
        assert_eq!(
            toml::from_str::<NodeConfig>(&defaults).unwrap(),
            NodeConfig::default()
        );
    }

    #[test]
    fn precedence_is_defaults_then_file_then_flags() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.toml");
        std::fs::write(
            &path,
            "lease_ttl = \"5s\"\ntiering_gc_grace = \"0s\"\nrack = \"a\"\n",
        )
        .unwrap();
        let args = parse(&[
            "--config".into(),
            path.display().to_string(),
            "--rack".into(),
            "b".into(),
            "--tiering-gc-interval=2m".into(),
        ]);
        let cfg = NodeConfig::load(&args).unwrap();
        let defaults = NodeConfig::default();
        assert_eq!(cfg.lease_ttl, Duration::from_secs(5), "file over default");
        assert_eq!(cfg.tiering_gc_grace, Duration::ZERO, "file over default");
        assert_eq!(cfg.rack.as_deref(), Some("b"), "flag over file");
        assert_eq!(
            cfg.tiering_gc_interval,
            Duration::from_secs(120),
            "flag over default"
        );
        assert_eq!(cfg.replica_lag_time_max, defaults.replica_lag_time_max);
    }

    #[test]
    fn flags_keep_their_syntax() {
        // Booleans: bare means true, or an explicit value; sizes are bytes; durations human.
        let a = parse(&[
            "--s3-path-style".into(),
            "--auto-create-topics".into(),
            "false".into(),
            "--cache-disk-bytes".into(),
            "0".into(),
            "--offsets-retention".into(),
            "7days".into(),
            "--flush-mode".into(),
            "always".into(),
        ]);
        assert_eq!(a.s3_path_style, Some(true));
        assert_eq!(a.auto_create_topics, Some(false));
        assert_eq!(a.cache_disk_bytes, Some(0));
        assert_eq!(
            a.offsets_retention,
            Some(Duration::from_secs(7 * 24 * 3600))
        );
        assert_eq!(a.flush_mode, Some(FlushMode::Always));
        let err = Serve::command()
            .try_get_matches_from(["serve", "--lease-ttl", "soon"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a duration like 50ms"), "{err}");
    }

    #[test]
    fn help_shows_each_default() {
        let help = Serve::command().render_long_help().to_string();
        assert!(help.contains("[default: 10m]"), "{help}");
        assert!(help.contains("[default: 1h]"), "{help}");
        assert!(help.contains("[default: 127.0.0.1:9092]"), "{help}");
        assert!(
            help.contains("[env: TIERLOG_MAX_INFLIGHT_REQUESTS"),
            "{help}"
        );
    }

    #[test]
    fn orphan_sweep_settings() {
        let d = NodeConfig::default();
        assert_eq!(d.tiering_gc_interval, Duration::from_secs(600));
        assert_eq!(
            d.tiering_gc_grace,
            tierlog_tiering::remote::gc::DEFAULT_GRACE
        );
        let zero_grace = NodeConfig {
            tiering_gc_grace: Duration::ZERO,
            ..NodeConfig::default()
        };
        zero_grace.validate().unwrap();
        let zero_interval = NodeConfig {
            tiering_gc_interval: Duration::ZERO,
            ..NodeConfig::default()
        };
        assert_eq!(
            zero_interval.validate().unwrap_err().key,
            "tiering_gc_interval"
        );
    }

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
