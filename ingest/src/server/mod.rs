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

use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, debug, info, warn};

use crate::api::{Dispatch, Pending, Reply};
use crate::broker::Broker;
use crate::security::{SecurityProtocol, Session};

/// Accepts connections until `cancel` fires; each runs as a tracked task.
pub(crate) async fn run_listener(
    listener: TcpListener,
    broker: Arc<Broker>,
    cancel: CancellationToken,
    tracker: TaskTracker,
) {
    let limit = Arc::new(Semaphore::new(broker.config.max_connections));
    let next_id = AtomicU64::new(1);
    loop {
        let permit = tokio::select! {
            biased;
            () = cancel.cancelled() => break,
            p = limit.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
        };
        let (stream, peer) = tokio::select! {
            biased;
            () = cancel.cancelled() => break,
            r = listener.accept() => match r {
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
        let conn_id = next_id.fetch_add(1, Ordering::Relaxed);
        let _ = stream.set_nodelay(true);
        let broker = broker.clone();
        let cancel = cancel.child_token();
        let span = tracing::debug_span!("conn", conn_id, %peer);
        tracker.spawn(
            async move {
                debug!("connection opened");
                let session =
                    Arc::new(Session::new(peer, "PLAINTEXT", SecurityProtocol::Plaintext));
                serve(stream, broker, cancel, session).await;
                debug!("connection closed");
                drop((permit, guard));
            }
            .instrument(span),
        );
    }
    info!("listener stopped accepting");
}

async fn serve(
    stream: TcpStream,
    broker: Arc<Broker>,
    cancel: CancellationToken,
    session: Arc<Session>,
) {
    let (rd, wr) = stream.into_split();
    let (tx, rx) = mpsc::channel::<Pending>(broker.config.max_inflight_requests);
    let reader = read_requests(rd, tx, broker, cancel, session);
    let writer = write_replies(wr, rx);
    tokio::join!(reader, writer);
}

async fn read_requests(
    rd: tokio::net::tcp::OwnedReadHalf,
    tx: mpsc::Sender<Pending>,
    broker: Arc<Broker>,
    cancel: CancellationToken,
    session: Arc<Session>,
) {
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
            warn!(
                len,
                max, "frame larger than max_frame_bytes; closing connection"
            );
            break;
        }
        let frame = match crate::protocol::read_frame_body(&mut rd, len).await {
            Ok(f) => f,
            Err(e) => {
                debug!(error = %e, "connection ended mid-frame");
                break;
            }
        };
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

async fn write_replies(wr: tokio::net::tcp::OwnedWriteHalf, mut rx: mpsc::Receiver<Pending>) {
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
