//! The Kafka listener and per-connection framing (the mini-redis shape).
//!
//! One task per connection, split in a reader and a writer. The reader reads length-prefixed
//! frames, runs the part of each request that must happen in arrival order (appends, topic
//! changes), and queues the rest — waiting for durability, long-poll fetches, encoding — as a
//! future. The writer awaits those futures in order and writes each response, so requests are
//! pipelined and answered in the order they came. The queue depth bounds read-ahead.
//!
//! Bad input closes the connection: a frame above `max_frame_bytes` or below the smallest
//! header, an unknown API key, an unsupported version (except ApiVersions, which gets Kafka's
//! v0 fallback answer), or a body that does not decode. Nothing of such a frame is applied.
//!
//! What one client can hold is bounded ([`Limits`]): a connection slot (`max_connections`, and
//! per address `max_connections_per_ip`) that an idle connection gives back after
//! `connections_max_idle`; request memory, taken from the node-wide `queued_max_request_bytes`
//! before a frame's body is read (a frame that does not fit stays in its socket: back-pressure)
//! and given back once the request is dispatched; and time, `request_read_timeout` for a
//! request's bytes once they start. When the process runs out of descriptors the accept loop
//! sheds one waiting connection through a reserved descriptor and backs off instead of
//! spinning, and logs it once per interval with a count.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{
    AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, BufWriter,
};
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, debug, info, warn};

mod auth;

use crate::api::{Dispatch, Pending, Reply};
use crate::broker::Broker;
use crate::config::NodeConfig;
use crate::metrics::{LogLimiter, Metrics};
use crate::security::Session;
use crate::security::listener::ListenerSpec;
use crate::security::quota::LOG_INTERVAL;
use crate::security::tls::TlsServer;
use auth::Intercept;

/// One bound listener: its socket, what it speaks, and (for SSL and SASL_SSL) its TLS.
pub(crate) struct BoundListener {
    pub(crate) socket: TcpListener,
    pub(crate) spec: ListenerSpec,
    pub(crate) tls: Option<Arc<TlsServer>>,
}

/// How long a client has to finish its TLS handshake before the connection is dropped (a
/// client that opens a socket and sends nothing must not hold a connection slot forever).
const TLS_HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The first pause after a failed accept; each further failure in a row doubles it.
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(5);
/// The longest pause after failed accepts: also the longest a new client waits once
/// descriptors are free again.
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_millis(500);

/// The node-wide budgets every listener and connection shares, and the log limiters that keep
/// a flood of refused, shed or timed-out connections to a line per interval.
#[derive(Debug)]
pub(crate) struct Limits {
    /// `max_connections`: a permit per open client connection.
    connections: Arc<Semaphore>,
    /// `queued_max_request_bytes`: a permit per byte of the requests being read.
    request_bytes: Arc<Semaphore>,
    /// The whole request budget (a larger frame waits for all of it).
    request_bytes_total: u32,
    /// `connections_max_idle`; zero = never.
    idle: Duration,
    /// `request_read_timeout`.
    read_timeout: Duration,
    accept_log: LogLimiter,
    timeout_log: LogLimiter,
}

impl Limits {
    pub(crate) fn new(config: &NodeConfig, clock: &tierlog_metadata::SharedClock) -> Limits {
        // Validated to fit a u32 (the semaphore hands out at most u32::MAX permits at once).
        let total = u32::try_from(config.queued_max_request_bytes).unwrap_or(u32::MAX);
        Limits {
            connections: Arc::new(Semaphore::new(config.max_connections)),
            request_bytes: Arc::new(Semaphore::new(total as usize)),
            request_bytes_total: total,
            idle: config.connections_max_idle,
            read_timeout: config.request_read_timeout,
            accept_log: LogLimiter::new(LOG_INTERVAL, clock.clone()),
            timeout_log: LogLimiter::new(LOG_INTERVAL, clock.clone()),
        }
    }
}

/// What the accept loop keeps between failed accepts: a reserved descriptor, and the pause.
struct AcceptFailures {
    /// An open `/dev/null`: when accepts fail for want of descriptors, it is closed so one
    /// waiting connection can be accepted and closed at once (the client sees a closed
    /// connection rather than a hang), then reopened.
    reserve: Option<std::fs::File>,
    backoff: Duration,
}

impl AcceptFailures {
    fn new() -> AcceptFailures {
        AcceptFailures {
            reserve: std::fs::File::open("/dev/null").ok(),
            backoff: ACCEPT_BACKOFF_MIN,
        }
    }

    /// A failed accept: counts and (once per interval) logs it, sheds a waiting connection if
    /// descriptors ran out, and pauses before the next accept (doubling up to the max), unless
    /// the listener stops first.
    async fn failed(
        &mut self,
        e: &io::Error,
        socket: &TcpListener,
        broker: &Broker,
        limits: &Limits,
        cancel: &CancellationToken,
    ) {
        Metrics::add(&broker.metrics.accept_errors, 1);
        if let Some(more) = limits.accept_log.check() {
            warn!(error = %e, more, backoff = ?self.backoff,
                "accept failed; backing off (more = failures not logged since the last line)");
        }
        // EMFILE (per-process limit) or ENFILE (system-wide).
        if matches!(e.raw_os_error(), Some(24 | 23))
            && let Some(reserve) = self.reserve.take()
        {
            drop(reserve);
            if let Ok(Ok((stream, _))) =
                tokio::time::timeout(ACCEPT_BACKOFF_MIN, socket.accept()).await
            {
                Metrics::add(&broker.metrics.connections_shed, 1);
                drop(stream);
            }
        }
        tokio::select! {
            () = cancel.cancelled() => {}
            () = tokio::time::sleep(self.backoff) => {}
        }
        self.backoff = (self.backoff * 2).min(ACCEPT_BACKOFF_MAX);
        if self.reserve.is_none() {
            self.reserve = std::fs::File::open("/dev/null").ok();
        }
    }

    fn succeeded(&mut self) {
        self.backoff = ACCEPT_BACKOFF_MIN;
    }
}

/// Accepts connections on `listener` until `cancel` fires; each runs as a tracked task.
/// `limits` are the node-wide budgets, shared by every listener.
pub(crate) async fn run_listener(
    listener: BoundListener,
    broker: Arc<Broker>,
    limits: Arc<Limits>,
    cancel: CancellationToken,
    tracker: TaskTracker,
) {
    static NEXT_ID: AtomicU64 = AtomicU64::new(1);
    let BoundListener { socket, spec, tls } = listener;
    let spec = Arc::new(spec);
    let mut failures = AcceptFailures::new();
    loop {
        let permit = tokio::select! {
            biased;
            () = cancel.cancelled() => break,
            p = limits.connections.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            biased;
            () = cancel.cancelled() => break,
            r = socket.accept() => match r {
                Ok(s) => s,
                Err(e) => {
                    drop(permit);
                    failures.failed(&e, &socket, &broker, &limits, &cancel).await;
                    continue;
                }
            },
        };
        failures.succeeded();
        let guard = match broker.quotas.connections.try_open(peer.ip()) {
            Ok(g) => g,
            Err(refused) => {
                broker
                    .quotas
                    .connections
                    .refuse(stream, peer, refused, &cancel, &tracker);
                continue;
            }
        };
        let conn_id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let _ = stream.set_nodelay(true);
        let broker = broker.clone();
        let limits = limits.clone();
        let cancel = cancel.child_token();
        let spec = spec.clone();
        let tls = tls.clone();
        let span = tracing::debug_span!("conn", conn_id, %peer, listener = %spec.name);
        tracker.spawn(
            async move {
                debug!("connection opened");
                broker
                    .metrics
                    .connections_open
                    .fetch_add(1, Ordering::Relaxed);
                let session = Session::new(peer, &spec.name, spec.protocol);
                match tls {
                    None => {
                        let (rd, wr) = stream.into_split();
                        serve(rd, wr, &broker, &limits, cancel, session).await;
                    }
                    Some(tls) => {
                        if let Some(s) = accept_tls(&tls, stream, &broker, &cancel).await {
                            let mut session = session;
                            session.principal = tls.principal(s.get_ref().1);
                            let (rd, wr) = tokio::io::split(s);
                            serve(rd, wr, &broker, &limits, cancel, session).await;
                        }
                    }
                }
                debug!("connection closed");
                broker
                    .metrics
                    .connections_open
                    .fetch_sub(1, Ordering::Relaxed);
                drop((permit, guard));
            }
            .instrument(span),
        );
    }
    info!(listener = %spec.name, "listener stopped accepting");
}

/// Runs the server side of a TLS handshake within [`TLS_HANDSHAKE_TIMEOUT`]; a failure or a
/// timeout is counted and yields `None` (the connection is dropped).
async fn accept_tls(
    tls: &TlsServer,
    stream: tokio::net::TcpStream,
    broker: &Broker,
    cancel: &CancellationToken,
) -> Option<tokio_rustls::server::TlsStream<tokio::net::TcpStream>> {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls.config.clone());
    let outcome = tokio::select! {
        () = cancel.cancelled() => return None,
        r = tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)) => r,
    };
    match outcome {
        Ok(Ok(s)) => Some(s),
        Ok(Err(e)) => {
            Metrics::add(&broker.metrics.tls_handshake_failures, 1);
            debug!(error = %e, "TLS handshake failed");
            None
        }
        Err(_) => {
            Metrics::add(&broker.metrics.tls_handshake_failures, 1);
            debug!("TLS handshake timed out");
            None
        }
    }
}

async fn serve<R, W>(
    rd: R,
    wr: W,
    broker: &Arc<Broker>,
    limits: &Limits,
    cancel: CancellationToken,
    session: Session,
) where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send,
{
    let (tx, rx) = mpsc::channel::<Pending>(broker.config.max_inflight_requests);
    let activity = Activity::new();
    let reader = read_requests(rd, tx, broker, limits, &activity, cancel, session);
    let writer = write_replies(wr, rx, &activity);
    tokio::join!(reader, writer);
}

/// Size of a connection's read and write buffers. Small requests and answers go through them;
/// larger ones bypass them (a request body is read into its own buffer, an answer at least
/// this large is written straight to the socket), so their size only sets how much memory an
/// idle connection holds.
const CONNECTION_BUFFER: usize = 8 * 1024;

/// What the idle timeout looks at: requests read and not yet answered, and when the last
/// answer was written. Shared by a connection's reader (which counts a request in) and writer
/// (which counts it out).
struct Activity {
    origin: Instant,
    /// Requests queued for the writer and not yet answered: while any is, the connection is
    /// not idle (a long-poll fetch may take its time).
    pending: AtomicUsize,
    /// Milliseconds after `origin` of the last answer written.
    last_answer_ms: AtomicU64,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            origin: Instant::now(),
            pending: AtomicUsize::new(0),
            last_answer_ms: AtomicU64::new(0),
        }
    }

    fn answered(&self) {
        let ms = u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_answer_ms.store(ms, Ordering::Relaxed);
        self.pending.fetch_sub(1, Ordering::Relaxed);
    }

    /// When the connection becomes idle if nothing happens: `idle` after the later of the last
    /// request read (`since`) and the last answer written; `None` while requests are pending.
    fn idle_at(&self, since: Instant, idle: Duration) -> Option<Instant> {
        if self.pending.load(Ordering::Relaxed) > 0 {
            return None;
        }
        let answered =
            self.origin + Duration::from_millis(self.last_answer_ms.load(Ordering::Relaxed));
        Some(since.max(answered) + idle)
    }
}

/// How waiting for a request's first bytes ended.
enum Next {
    /// Bytes are buffered.
    Request,
    /// The client went away, or the node is stopping.
    Closed,
    /// Nothing for `connections_max_idle`.
    Idle,
}

/// Waits until the next request's first bytes are buffered in `rd` (cancel-safe: what is read
/// stays in the buffer), or the connection has been idle for `idle` (zero: never).
async fn next_request<R: AsyncRead + Unpin>(
    rd: &mut BufReader<R>,
    activity: &Activity,
    idle: Duration,
    cancel: &CancellationToken,
) -> Next {
    let since = Instant::now();
    loop {
        // While requests are pending, look again after a whole idle period.
        let wake = match activity.idle_at(since, idle) {
            _ if idle.is_zero() => None,
            Some(at) if at <= Instant::now() => return Next::Idle,
            Some(at) => Some(at),
            None => Some(Instant::now() + idle),
        };
        let sleep = async {
            match wake {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            () = cancel.cancelled() => return Next::Closed,
            r = rd.fill_buf() => {
                return match r {
                    Ok(b) if !b.is_empty() => Next::Request,
                    _ => Next::Closed, // EOF or reset: the client went away
                };
            }
            () = sleep => {}
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn read_requests<R: AsyncRead + Unpin>(
    rd: R,
    tx: mpsc::Sender<Pending>,
    broker: &Arc<Broker>,
    limits: &Limits,
    activity: &Activity,
    cancel: CancellationToken,
    session: Session,
) {
    let mut session = Arc::new(session);
    let mut auth = auth::Auth::new(&session);
    let mut rd = BufReader::with_capacity(CONNECTION_BUFFER, rd);
    let max = broker.config.max_frame_bytes;
    loop {
        if let Some(until) = session.muted_until() {
            // A throttled client: its next request waits out the throttle (Kafka mutes the
            // channel), so a client that ignores throttle_time_ms is held to its quota too.
            tokio::select! {
                biased;
                () = cancel.cancelled() => break,
                () = tokio::time::sleep_until(until.into()) => {}
            }
        }
        match next_request(&mut rd, activity, limits.idle, &cancel).await {
            Next::Request => {}
            Next::Closed => break,
            Next::Idle => {
                Metrics::add(&broker.metrics.connections_idle_closed, 1);
                debug!(idle = ?limits.idle, "closing an idle connection (connections_max_idle)");
                break;
            }
        }
        let frame = tokio::select! {
            biased;
            () = cancel.cancelled() => break,
            r = read_frame(&mut rd, broker, limits, &session, max) => match r {
                Some(f) => f,
                None => break,
            },
        };
        let (frame, _memory) = frame;
        activity.pending.fetch_add(1, Ordering::Relaxed);
        match auth.intercept(broker, &frame, &mut session).await {
            Intercept::Pass => {}
            Intercept::Reply(reply) => {
                if tx.send(reply).await.is_err() {
                    break;
                }
                continue;
            }
            Intercept::ReplyAndClose(reply) => {
                let _ = tx.send(reply).await;
                let _ = tx.send(Box::pin(async { Reply::Close })).await;
                break;
            }
            Intercept::Close => {
                let _ = tx.send(Box::pin(async { Reply::Close })).await;
                break;
            }
        }
        let pending = crate::api::dispatch(broker, frame, &session).await;
        let close = matches!(pending, Dispatch::Close);
        let fut = match pending {
            Dispatch::Deferred(f) => f,
            Dispatch::Close => Box::pin(async { Reply::Close }) as Pending,
        };
        if tx.send(fut).await.is_err() || close {
            break;
        }
    }
}

/// Reads one whole frame whose first bytes are buffered: its length, room for it in the
/// node's request budget, then its body, all within `request_read_timeout` (not counting the
/// wait for room). `None` closes the connection (bad length, timeout, EOF). The permit is the
/// frame's share of the budget, to be held until the request is dispatched.
async fn read_frame<R: AsyncRead + Unpin>(
    rd: &mut BufReader<R>,
    broker: &Broker,
    limits: &Limits,
    session: &Session,
    max: usize,
) -> Option<(bytes::Bytes, OwnedSemaphorePermit)> {
    let mut deadline = Instant::now() + limits.read_timeout;
    let len = match tokio::time::timeout_at(deadline, rd.read_i32()).await {
        Ok(Ok(n)) => n,
        Ok(Err(_)) => return None, // EOF or reset: the client went away
        Err(_) => {
            read_timed_out(broker, limits, session);
            return None;
        }
    };
    let Ok(len) = usize::try_from(len) else {
        warn!(len, "negative frame length; closing connection");
        return None;
    };
    if len > max {
        if len >> 16 == 0x1603 {
            // 0x16 0x03: a TLS ClientHello read as a length.
            warn!(
                listener = %session.listener,
                "a TLS handshake arrived on a listener without TLS; closing connection"
            );
        } else {
            warn!(
                len,
                max, "frame larger than max_frame_bytes; closing connection"
            );
        }
        return None;
    }
    // A frame larger than the whole budget waits for all of it.
    let want = u32::try_from(len)
        .unwrap_or(u32::MAX)
        .clamp(1, limits.request_bytes_total);
    let permit = match limits.request_bytes.clone().try_acquire_many_owned(want) {
        Ok(p) => p,
        Err(_) => {
            Metrics::add(&broker.metrics.request_memory_waits, 1);
            let waited_from = Instant::now();
            let p = limits
                .request_bytes
                .clone()
                .acquire_many_owned(want)
                .await
                .ok()?;
            deadline += waited_from.elapsed();
            p
        }
    };
    match tokio::time::timeout_at(deadline, crate::protocol::read_frame_body(rd, len)).await {
        Ok(Ok(f)) => Some((f, permit)),
        Ok(Err(e)) => {
            debug!(error = %e, "connection ended mid-frame");
            None
        }
        Err(_) => {
            read_timed_out(broker, limits, session);
            None
        }
    }
}

fn read_timed_out(broker: &Broker, limits: &Limits, session: &Session) {
    Metrics::add(&broker.metrics.request_read_timeouts, 1);
    if let Some(more) = limits.timeout_log.check() {
        info!(peer = %session.peer, timeout = ?limits.read_timeout, more,
            "closing a connection whose request did not arrive within request_read_timeout");
    }
}

async fn write_replies<W: AsyncWrite + Unpin>(
    wr: W,
    mut rx: mpsc::Receiver<Pending>,
    activity: &Activity,
) {
    let mut wr = BufWriter::with_capacity(CONNECTION_BUFFER, wr);
    while let Some(fut) = rx.recv().await {
        match fut.await {
            Reply::Frame(bytes) => {
                if wr.write_all(&bytes).await.is_err() {
                    break;
                }
            }
            Reply::Nothing => {}
            Reply::Close => break,
        }
        if rx.is_empty() && wr.flush().await.is_err() {
            break;
        }
        activity.answered();
    }
    let _ = wr.flush().await;
    let _ = wr.shutdown().await;
}
