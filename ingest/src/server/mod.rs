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

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, debug, info, warn};

mod auth;

use crate::api::{Dispatch, Pending, Reply};
use crate::broker::Broker;
use crate::metrics::Metrics;
use crate::security::Session;
use crate::security::listener::ListenerSpec;
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

/// Accepts connections on `listener` until `cancel` fires; each runs as a tracked task.
/// `limit` is the node-wide connection budget, shared by every listener.
pub(crate) async fn run_listener(
    listener: BoundListener,
    broker: Arc<Broker>,
    limit: Arc<Semaphore>,
    cancel: CancellationToken,
    tracker: TaskTracker,
) {
    static NEXT_ID: AtomicU64 = AtomicU64::new(1);
    let BoundListener { socket, spec, tls } = listener;
    let spec = Arc::new(spec);
    loop {
        let permit = tokio::select! {
            biased;
            () = cancel.cancelled() => break,
            p = limit.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
        };
        let (stream, peer) = tokio::select! {
            biased;
            () = cancel.cancelled() => break,
            r = socket.accept() => match r {
                Ok(s) => s,
                Err(e) => {
                    warn!(error = %e, "accept failed");
                    continue;
                }
            },
        };
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
        let cancel = cancel.child_token();
        let spec = spec.clone();
        let tls = tls.clone();
        let span = tracing::debug_span!("conn", conn_id, %peer, listener = %spec.name);
        tracker.spawn(
            async move {
                debug!("connection opened");
                let session = Session::new(peer, &spec.name, spec.protocol);
                match tls {
                    None => {
                        let (rd, wr) = stream.into_split();
                        serve(rd, wr, broker, cancel, session).await;
                    }
                    Some(tls) => {
                        if let Some(s) = accept_tls(&tls, stream, &broker, &cancel).await {
                            let mut session = session;
                            session.principal = tls.principal(s.get_ref().1);
                            let (rd, wr) = tokio::io::split(s);
                            serve(rd, wr, broker, cancel, session).await;
                        }
                    }
                }
                debug!("connection closed");
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

async fn serve<R, W>(rd: R, wr: W, broker: Arc<Broker>, cancel: CancellationToken, session: Session)
where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send,
{
    let (tx, rx) = mpsc::channel::<Pending>(broker.config.max_inflight_requests);
    let reader = read_requests(rd, tx, broker, cancel, session);
    let writer = write_replies(wr, rx);
    tokio::join!(reader, writer);
}

async fn read_requests<R: AsyncRead + Unpin>(
    rd: R,
    tx: mpsc::Sender<Pending>,
    broker: Arc<Broker>,
    cancel: CancellationToken,
    session: Session,
) {
    let mut session = Arc::new(session);
    let mut auth = auth::Auth::new(&session);
    let mut rd = BufReader::with_capacity(64 * 1024, rd);
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
        let len = tokio::select! {
            biased;
            () = cancel.cancelled() => break,
            r = rd.read_i32() => match r {
                Ok(n) => n,
                Err(_) => break, // EOF or reset: the client went away
            },
        };
        let Ok(len) = usize::try_from(len) else {
            warn!(len, "negative frame length; closing connection");
            break;
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
            break;
        }
        let frame = match crate::protocol::read_frame_body(&mut rd, len).await {
            Ok(f) => f,
            Err(e) => {
                debug!(error = %e, "connection ended mid-frame");
                break;
            }
        };
        match auth.intercept(&broker, &frame, &mut session).await {
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
        let pending = crate::api::dispatch(&broker, frame, &session).await;
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

async fn write_replies<W: AsyncWrite + Unpin>(wr: W, mut rx: mpsc::Receiver<Pending>) {
    let mut wr = BufWriter::with_capacity(64 * 1024, wr);
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
    }
    let _ = wr.flush().await;
    let _ = wr.shutdown().await;
}
