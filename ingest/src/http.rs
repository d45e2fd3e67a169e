//! Admin HTTP: `/health` (200 once the node serves) and `/metrics` (Prometheus text format).
//!
//! Two protections, each a node setting:
//!
//! - **HTTPS** (`http_tls`): the endpoint is served over TLS with the Kafka listeners'
//!   certificate and key, through the same reloader, so a rotated certificate reaches both
//!   without a restart. Connections are accepted by a loop that runs each TLS handshake in a
//!   task of its own (bounded by [`HANDSHAKE_TIMEOUT`], at most [`MAX_HANDSHAKES`] at once) and
//!   hands finished streams to axum through a channel ([`TlsListener`]), so a client that
//!   stalls its handshake holds up no one else. Failed handshakes count in
//!   `tierlog_tls_handshake_failures_total` with the listeners'.
//! - **A bearer token** (`http_bearer_token_file`): every endpoint except `/health` requires
//!   `Authorization: Bearer <token>` and answers 401 with `WWW-Authenticate: Bearer` without
//!   it. `/health` stays open because load balancers and orchestrators probe it without
//!   credentials, and it tells nothing but "up". The token is read once at start; presented
//!   tokens are compared as SHA-256 digests in constant time, so timing reveals neither its
//!   bytes nor its length.

use std::fmt::Write as _;
use std::future::IntoFuture;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::broker::Broker;
use crate::config::NodeConfig;
use crate::metrics::Metrics;
use crate::security::tls::TlsServer;

/// How long an HTTPS client has to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// TLS handshakes in progress at most; further connections wait in the kernel's backlog.
const MAX_HANDSHAKES: usize = 64;

/// How the admin endpoint is protected, from the node's settings.
pub(crate) struct HttpOptions {
    /// The TLS config under `http_tls`.
    tls: Option<Arc<rustls::ServerConfig>>,
    /// The token every endpoint but `/health` requires, if any.
    token: Option<Arc<BearerToken>>,
}

impl HttpOptions {
    /// Reads `http_tls` and the token file of `config`; `tls` is the node's TLS server (built
    /// whenever `http_tls` is on).
    pub(crate) fn from_config(
        config: &NodeConfig,
        tls: Option<&TlsServer>,
    ) -> anyhow::Result<HttpOptions> {
        let tls = match (config.http_tls, tls) {
            (false, _) => None,
            (true, Some(server)) => Some(server.http_config()?),
            (true, None) => anyhow::bail!("http_tls needs ssl_cert_file and ssl_key_file"),
        };
        let token = match &config.http_bearer_token_file {
            Some(path) => Some(Arc::new(BearerToken::read(path)?)),
            None => None,
        };
        Ok(HttpOptions { tls, token })
    }
}

/// The admin bearer token, kept only as its SHA-256 digest (so it is never printed, and
/// comparing digests of equal length leaks nothing about the token's length).
struct BearerToken {
    digest: [u8; 32],
}

impl BearerToken {
    /// The first line of `path`, trimmed; an empty token is refused (it would admit
    /// `Authorization: Bearer ` with nothing after it).
    fn read(path: &Path) -> anyhow::Result<BearerToken> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            anyhow::anyhow!("reading http_bearer_token_file `{}`: {e}", path.display())
        })?;
        let token = text.lines().next().unwrap_or_default().trim();
        if token.is_empty() {
            anyhow::bail!(
                "http_bearer_token_file `{}` has no token on its first line",
                path.display()
            );
        }
        Ok(BearerToken {
            digest: sha256(token.as_bytes()),
        })
    }

    /// Whether `presented` is the token, in time independent of where they differ.
    fn admits(&self, presented: &str) -> bool {
        use subtle::ConstantTimeEq as _;
        bool::from(sha256(presented.as_bytes()).ct_eq(&self.digest))
    }
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes).into()
}

/// The token of an `Authorization: Bearer <token>` header (the scheme is case-insensitive,
/// RFC 7235).
fn bearer(req: &Request) -> Option<&str> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

/// Middleware of the protected routes: 401 unless the request carries the token.
async fn require_bearer(
    State(token): State<Arc<BearerToken>>,
    req: Request,
    next: Next,
) -> Response {
    if bearer(&req).is_some_and(|t| token.admits(t)) {
        return next.run(req).await;
    }
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        "a valid bearer token is required\n",
    )
        .into_response()
}

/// The routes: `/metrics` and `/damage` behind the token (when one is set), `/health` open.
fn router(token: Option<Arc<BearerToken>>, broker: Arc<Broker>) -> Router {
    let mut protected = Router::new()
        .route("/metrics", get(metrics))
        .route("/damage", get(damage));
    if let Some(token) = token {
        protected = protected.route_layer(middleware::from_fn_with_state(token, require_bearer));
    }
    protected.route("/health", get(health)).with_state(broker)
}

/// Serves the admin endpoint on `listener` until `cancel`, then finishes the requests in
/// flight.
pub(crate) async fn serve(
    listener: TcpListener,
    options: HttpOptions,
    broker: Arc<Broker>,
    cancel: CancellationToken,
) {
    let app = router(options.token, broker.clone());
    let shutdown = async move { cancel.cancelled().await };
    let result = match options.tls {
        None => {
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
        }
        Some(config) => {
            let local = match listener.local_addr() {
                Ok(a) => a,
                Err(e) => {
                    warn!(error = %e, "admin HTTPS: no local address");
                    return;
                }
            };
            let (tx, rx) = mpsc::channel(MAX_HANDSHAKES);
            let accept = accept_tls(listener, TlsAcceptor::from(config), tx, broker);
            let serve = axum::serve(TlsListener { rx, local }, app)
                .with_graceful_shutdown(shutdown)
                .into_future();
            // The accept loop ends only once axum has dropped the receiver, i.e. after the
            // server finished: it never cuts the graceful shutdown short.
            tokio::select! {
                r = serve => r,
                () = accept => Ok(()),
            }
        }
    };
    if let Err(e) = result {
        warn!(error = %e, "admin HTTP server failed");
    }
}

/// Accepts TCP connections and runs their TLS handshakes, each in its own task, sending the
/// finished streams to `tx`; returns when the receiver is gone.
async fn accept_tls(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    tx: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
    broker: Arc<Broker>,
) {
    // Owned here so that pending handshakes are aborted when the loop ends.
    let mut handshakes = JoinSet::new();
    loop {
        tokio::select! {
            () = tx.closed() => return,
            r = listener.accept(), if handshakes.len() < MAX_HANDSHAKES => match r {
                Ok((stream, peer)) => {
                    let acceptor = acceptor.clone();
                    handshakes.spawn(async move {
                        let r = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream));
                        (r.await, peer)
                    });
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    debug!(error = %e, "admin HTTPS: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(done) = handshakes.join_next(), if !handshakes.is_empty() => match done {
                Ok((Ok(Ok(stream)), peer)) => {
                    if tx.send((stream, peer)).await.is_err() {
                        return;
                    }
                }
                Ok((Ok(Err(e)), peer)) => {
                    Metrics::add(&broker.metrics.tls_handshake_failures, 1);
                    debug!(error = %e, %peer, "admin HTTPS: TLS handshake failed");
                }
                Ok((Err(_), peer)) => {
                    Metrics::add(&broker.metrics.tls_handshake_failures, 1);
                    debug!(%peer, "admin HTTPS: TLS handshake timed out");
                }
                Err(e) => debug!(error = %e, "admin HTTPS: handshake task failed"),
            },
        }
    }
}

/// What axum accepts from under `http_tls`: streams whose handshake [`accept_tls`] finished.
struct TlsListener {
    rx: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(conn) => conn,
            // The accept loop is gone (only after shutdown): accept nothing more.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

async fn health() -> &'static str {
    "ok\n"
}

/// `/damage`: every quarantined range of this node's hot tier as a JSON array (what
/// `tierlog damage list` prints): topic, partition, offsets, where in which segment, whether
/// object storage holds a copy, and what was wrong; then every damaged tiered segment the
/// tiered scrub could not repair from this node (`"tier": "remote"`, with its data object).
async fn damage(State(b): State<Arc<Broker>>) -> impl IntoResponse {
    let mut out = Vec::new();
    for t in b.host.partitions.all().iter() {
        for p in t.partitions.iter().filter(|p| p.log.has_damage()) {
            let tiered_end = p.remote.end().unwrap_or(i64::MIN);
            for d in p.log.damaged_ranges() {
                out.push(serde_json::json!({
                    "topic": p.tp.topic,
                    "partition": p.tp.partition,
                    "first_offset": d.first_offset,
                    "last_offset": d.last_offset,
                    "segment_base": d.segment_base,
                    "tier": "local",
                    "start_pos": d.start_pos,
                    "end_pos": d.end_pos,
                    "tiered": d.last_offset < tiered_end,
                    "reason": d.reason,
                }));
            }
        }
        for p in t.partitions.iter() {
            for d in p.remote.tiered_damage() {
                out.push(serde_json::json!({
                    "topic": p.tp.topic,
                    "partition": p.tp.partition,
                    "first_offset": d.base_offset,
                    "last_offset": d.end_offset - 1,
                    "segment_base": d.base_offset,
                    "tier": "remote",
                    "object": d.key,
                    "tiered": false,
                    "reason": d.reason,
                }));
            }
        }
    }
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::Value::Array(out).to_string(),
    )
}

/// A per-partition gauge: name, help, and how to read it.
type Gauge = (
    &'static str,
    &'static str,
    fn(&crate::partition::Partition) -> u64,
);

async fn metrics(State(b): State<Arc<Broker>>) -> impl IntoResponse {
    let m = &b.metrics;
    let mut out = String::new();
    let n = |c: &AtomicU64| c.load(Ordering::Relaxed);
    let t = &b.tiering.metrics;
    let cache = b.tiering.reader.cache().stats();
    let sessions = b.fetch_sessions.stats();
    let counters = [
        (
            "tierlog_requests_total",
            "Kafka requests received",
            n(&m.requests_total),
        ),
        (
            "tierlog_bad_requests_total",
            "Frames refused (malformed, unknown api or version, too large)",
            n(&m.bad_requests),
        ),
        (
            "tierlog_tls_handshake_failures_total",
            "TLS handshakes that failed or timed out",
            n(&m.tls_handshake_failures),
        ),
        (
            "tierlog_sasl_authentications_total",
            "Successful SASL authentications (re-authentications included)",
            n(&m.sasl_authentications),
        ),
        (
            "tierlog_sasl_authentication_failures_total",
            "SASL authentications refused (SASL_AUTHENTICATION_FAILED)",
            n(&m.sasl_authentication_failures),
        ),
        (
            "tierlog_reauthentications_total",
            "Successful KIP-368 re-authentications",
            n(&m.reauthentications),
        ),
        (
            "tierlog_expired_sessions_closed_total",
            "Connections closed because their session expired without re-authentication",
            n(&m.expired_sessions_closed),
        ),
        (
            "tierlog_produce_requests_total",
            "Produce requests",
            n(&m.produce_requests),
        ),
        (
            "tierlog_produced_bytes_total",
            "Record batch bytes appended",
            n(&m.produced_bytes),
        ),
        (
            "tierlog_produce_errors_total",
            "Partition appends refused",
            n(&m.produce_errors),
        ),
        (
            "tierlog_fetch_requests_total",
            "Fetch requests",
            n(&m.fetch_requests),
        ),
        (
            "tierlog_fetched_bytes_total",
            "Record batch bytes returned by fetches",
            n(&m.fetched_bytes),
        ),
        (
            "tierlog_fetch_consumer_bytes_total",
            "Record batch bytes returned to consumers (not followers)",
            n(&m.consumer_fetched_bytes),
        ),
        (
            "tierlog_fetch_follower_bytes_total",
            "Record batch bytes returned to consumers from partitions this node follows",
            n(&m.follower_fetched_bytes),
        ),
        (
            "tierlog_fetch_preferred_replica_total",
            "Consumer fetch partitions answered with a preferred read replica",
            n(&m.preferred_replica_answers),
        ),
        (
            "tierlog_fetch_session_evictions_total",
            "Fetch sessions evicted to make room for another",
            sessions.evictions,
        ),
        (
            "tierlog_fetch_sessions_created_total",
            "Fetch sessions opened by full fetches",
            sessions.created,
        ),
        (
            "tierlog_incremental_fetches_total",
            "Incremental fetches served in a fetch session",
            sessions.incremental,
        ),
        (
            "tierlog_authorization_denials_total",
            "Authorization checks denied (each logged at most 10 times a second)",
            n(&m.authorization_denials),
        ),
        (
            "tierlog_isr_expands_total",
            "Followers added to an ISR by this node as leader",
            n(&m.isr_expands),
        ),
        (
            "tierlog_isr_shrinks_total",
            "ISR shrinks by this node as leader (followers that fell behind)",
            n(&m.isr_shrinks),
        ),
        (
            "tierlog_cleaner_passes_total",
            "Log cleanings (compaction passes) of hot-tier logs",
            n(&m.cleaner_passes),
        ),
        (
            "tierlog_cleaner_read_bytes_total",
            "Bytes the log cleaner read",
            n(&m.cleaner_read_bytes),
        ),
        (
            "tierlog_cleaner_written_bytes_total",
            "Bytes the log cleaner wrote",
            n(&m.cleaner_written_bytes),
        ),
        (
            "tierlog_cleaner_removed_bytes_total",
            "Bytes the log cleaner removed from hot-tier logs",
            n(&m.cleaner_removed_bytes),
        ),
        (
            "tierlog_cleaner_errors_total",
            "Log cleanings that failed (the log is left as it was)",
            n(&m.cleaner_errors),
        ),
        (
            "tierlog_remote_cleaner_passes_total",
            "Tiered compactions (object-storage cleanings) that swapped segments",
            n(&m.remote_cleaner_passes),
        ),
        (
            "tierlog_remote_cleaner_read_bytes_total",
            "Bytes tiered compaction read from object storage",
            n(&m.remote_cleaner_read_bytes),
        ),
        (
            "tierlog_remote_cleaner_written_bytes_total",
            "Bytes tiered compaction wrote to object storage",
            n(&m.remote_cleaner_written_bytes),
        ),
        (
            "tierlog_remote_cleaner_removed_bytes_total",
            "Bytes of tiered segments tiered compaction removed",
            n(&m.remote_cleaner_removed_bytes),
        ),
        (
            "tierlog_remote_cleaner_requests_total",
            "Object-store requests of tiered compaction",
            n(&m.remote_cleaner_requests),
        ),
        (
            "tierlog_remote_cleaner_errors_total",
            "Tiered compactions that failed (the manifest is left as it was)",
            n(&m.remote_cleaner_errors),
        ),
        (
            "tierlog_produce_throttled_total",
            "Produce responses throttled by producer_byte_rate (connection muted)",
            n(&m.produce_throttled),
        ),
        (
            "tierlog_produce_throttle_time_ms_total",
            "Milliseconds of producer_byte_rate throttling handed out",
            n(&m.produce_throttle_ms),
        ),
        (
            "tierlog_fetch_throttled_total",
            "Consumer fetches throttled by consumer_byte_rate (answered empty, connection muted)",
            n(&m.fetch_throttled),
        ),
        (
            "tierlog_fetch_throttle_time_ms_total",
            "Milliseconds of consumer_byte_rate throttling handed out",
            n(&m.fetch_throttle_ms),
        ),
        (
            "tierlog_request_throttled_total",
            "Requests throttled by request_percentage",
            n(&m.request_throttled),
        ),
        (
            "tierlog_request_throttle_time_ms_total",
            "Milliseconds of request_percentage throttling handed out",
            n(&m.request_throttle_ms),
        ),
        (
            "tierlog_connections_refused_total",
            "Connections closed because their address had max_connections_per_ip open",
            n(&m.connections_refused),
        ),
        (
            "tierlog_connections_throttled_total",
            "Connections closed (after a delay) for exceeding connection_creation_rate",
            n(&m.connections_throttled),
        ),
        (
            "tierlog_accept_errors_total",
            "Failed accepts (mostly: out of file descriptors); each is followed by a back-off",
            n(&m.accept_errors),
        ),
        (
            "tierlog_connections_shed_total",
            "Connections accepted and closed at once because the node was out of descriptors",
            n(&m.connections_shed),
        ),
        (
            "tierlog_connections_idle_closed_total",
            "Connections closed after connections_max_idle without a request",
            n(&m.connections_idle_closed),
        ),
        (
            "tierlog_request_read_timeouts_total",
            "Connections closed because a request did not arrive within request_read_timeout",
            n(&m.request_read_timeouts),
        ),
        (
            "tierlog_request_memory_waits_total",
            "Requests that waited for room in queued_max_request_bytes before being read",
            n(&m.request_memory_waits),
        ),
        (
            "tierlog_auto_create_refused_total",
            "Topics not auto-created: the client address was over its per-minute allowance",
            n(&m.auto_create_refused),
        ),
        (
            "tierlog_tiering_uploaded_segments_total",
            "Segments uploaded and recorded in the manifest",
            n(&t.uploaded_segments),
        ),
        (
            "tierlog_tiering_uploaded_bytes_total",
            "Bytes of segments uploaded",
            n(&t.uploaded_bytes),
        ),
        (
            "tierlog_tiering_upload_errors_total",
            "Upload passes that failed (retried)",
            n(&t.upload_errors),
        ),
        (
            "tierlog_tiering_download_errors_total",
            "Tiered reads that failed",
            n(&t.download_errors),
        ),
        (
            "tierlog_tiering_corrupt_objects_total",
            "Tiered reads refused because an object did not match its checksum",
            n(&t.corrupt_objects),
        ),
        (
            "tierlog_tiering_remote_deleted_segments_total",
            "Tiered segments deleted by retention",
            n(&t.remote_deleted_segments),
        ),
        (
            "tierlog_scrubbed_bytes_total",
            "Bytes of sealed local segments the scrubber re-read and checked",
            n(&t.scrubbed_bytes),
        ),
        (
            "tierlog_damaged_ranges_found_total",
            "Damaged (quarantined) ranges the scrubber or the uploader found in local segments",
            n(&t.damaged_ranges_found),
        ),
        (
            "tierlog_damaged_ranges_healed_total",
            "Damaged ranges repaired from the tiered copy",
            n(&t.damaged_ranges_healed),
        ),
        (
            "tierlog_tiered_scrubbed_bytes_total",
            "Bytes of tiered objects the tiered scrub re-read from the object store and checked",
            n(&t.tiered_scrubbed_bytes),
        ),
        (
            "tierlog_tiered_damage_found_total",
            "Tiered segments the tiered scrub found damaged (an object failing its checksums, or missing)",
            n(&t.tiered_damage_found),
        ),
        (
            "tierlog_tiered_repaired_total",
            "Damaged tiered segments uploaded again from an intact copy",
            n(&t.tiered_repaired),
        ),
        (
            "tierlog_tiering_orphans_deleted_total",
            "Unreferenced segment objects deleted by the leaders' orphan sweeps",
            n(&t.orphans_deleted),
        ),
        (
            "tierlog_tiering_cache_hits_total",
            "Tiered-read chunk cache hits",
            cache.hits,
        ),
        (
            "tierlog_tiering_cache_misses_total",
            "Tiered-read chunk lookups not in the cache (callers joining one GET each count)",
            cache.misses,
        ),
        (
            "tierlog_tiering_object_gets_total",
            "GETs the tiered-read cache sent to the object store",
            cache.gets,
        ),
        (
            "tierlog_tiering_cache_fetched_bytes_total",
            "Bytes fetched from the object store by the cache",
            cache.fetched_bytes,
        ),
    ];
    for (name, help, v) in counters {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
        );
    }
    let pool = tierlog_tiering::FilePool::global().stats();
    for (name, help, v) in [
        (
            "tierlog_segment_files_opened_total",
            "Segment log files opened by the pool",
            pool.opened,
        ),
        (
            "tierlog_segment_files_evicted_total",
            "Segment log files the pool closed to stay within its capacity",
            pool.evicted,
        ),
    ] {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
        );
    }
    for (name, help, v) in [
        (
            "tierlog_segment_files_open",
            "Segment log files open now (partitions at rest hold none)",
            pool.open,
        ),
        (
            "tierlog_segment_files_capacity",
            "The most segment log files the pool keeps open",
            pool.capacity,
        ),
        (
            "tierlog_fetch_sessions",
            "Fetch sessions (KIP-227) cached",
            sessions.sessions,
        ),
        (
            "tierlog_fetch_session_partitions",
            "Partitions held by cached fetch sessions",
            sessions.partitions,
        ),
        (
            "tierlog_connections_open",
            "Client connections open now",
            b.metrics.connections_open.load(Ordering::Relaxed) as usize,
        ),
    ] {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
    }
    let gauges: [Gauge; 13] = [
        (
            "tierlog_partition_high_watermark",
            "Offset below which records are committed (visible to consumers)",
            |p| p.high_watermark().max(0) as u64,
        ),
        (
            "tierlog_partition_leader",
            "1 if this node leads the partition",
            |p| u64::from(p.is_leader()),
        ),
        (
            "tierlog_partition_under_replicated",
            "1 if this node leads the partition and its ISR is smaller than its replica set",
            |p| u64::from(p.is_under_replicated()),
        ),
        (
            "tierlog_partition_log_end_offset",
            "Next offset to be written",
            |p| p.log.log_end_offset().max(0) as u64,
        ),
        (
            "tierlog_partition_local_bytes",
            "Bytes of the partition on local disk (hot tier)",
            |p| p.log.size_bytes(),
        ),
        (
            "tierlog_partition_local_segments",
            "Segments on local disk",
            |p| p.log.segment_count() as u64,
        ),
        (
            "tierlog_partition_replicated_bytes",
            "Bytes this node appended as a follower, fetched from leaders since it opened the partition",
            |p| {
                p.replicated_bytes
                    .load(std::sync::atomic::Ordering::Relaxed)
            },
        ),
        (
            "tierlog_partition_remote_bytes",
            "Bytes of the partition in object storage",
            |p| p.remote.totals().0,
        ),
        (
            "tierlog_partition_remote_segments",
            "Segments in object storage",
            |p| p.remote.totals().1 as u64,
        ),
        (
            "tierlog_partition_damaged_ranges",
            "Ranges of the local log quarantined because their bytes failed their CRC-32C (reads of them fail)",
            |p| {
                if p.log.has_damage() {
                    p.log.damaged_ranges().len() as u64
                } else {
                    0
                }
            },
        ),
        (
            "tierlog_partition_damaged_ranges_untiered",
            "Quarantined ranges that object storage does not hold, so cannot be healed from it",
            crate::partition::untiered_damage,
        ),
        (
            "tierlog_tiered_ranges_unrecoverable",
            "Damaged tiered segments the last tiered scrub could not repair from this node (no intact local copy)",
            |p| p.remote.tiered_damage().len() as u64,
        ),
        (
            "tierlog_partition_upload_lag_bytes",
            "Bytes sealed but not yet tiered",
            |p| p.log.sealed_untiered_bytes(),
        ),
    ];
    let partitions: Vec<_> = b
        .host
        .partitions
        .all()
        .iter()
        .flat_map(|t| t.partitions.iter().cloned().collect::<Vec<_>>())
        .collect();
    for (name, help, f) in gauges {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
        for p in &partitions {
            let _ = writeln!(
                out,
                "{name}{{topic=\"{}\",partition=\"{}\"}} {}",
                p.tp.topic,
                p.tp.partition,
                f(p)
            );
        }
    }
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        out,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(auth: Option<&str>) -> Request {
        let mut b = axum::http::Request::builder().uri("/metrics");
        if let Some(a) = auth {
            b = b.header(header::AUTHORIZATION, a);
        }
        b.body(axum::body::Body::empty()).expect("request")
    }

    #[test]
    fn the_token_is_the_first_line_and_compared_exactly() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("token");
        std::fs::write(&path, "  s3cret  \nignored\n").expect("write");
        let token = BearerToken::read(&path).expect("read");
        assert!(token.admits("s3cret"));
        for wrong in ["", "s3cre", "s3cret ", "S3CRET", "s3cretX", "ignored"] {
            assert!(!token.admits(wrong), "{wrong:?}");
        }
        std::fs::write(&path, "\n").expect("write");
        assert!(BearerToken::read(&path).is_err());
        assert!(BearerToken::read(&dir.path().join("missing")).is_err());
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        assert_eq!(bearer(&request(Some("Bearer abc"))), Some("abc"));
        assert_eq!(bearer(&request(Some("bearer abc"))), Some("abc"));
        assert_eq!(bearer(&request(Some("Basic abc"))), None);
        assert_eq!(bearer(&request(Some("Bearer"))), None);
        assert_eq!(bearer(&request(None)), None);
    }
}
