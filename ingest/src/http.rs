//! Admin HTTP: `/health` (200 once the node serves) and `/metrics` (Prometheus text format).

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::node::Broker;

/// Counters of the node, exported on `/metrics`.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    pub(crate) produce_requests: AtomicU64,
    pub(crate) produced_bytes: AtomicU64,
    pub(crate) produce_errors: AtomicU64,
    pub(crate) fetch_requests: AtomicU64,
    pub(crate) fetched_bytes: AtomicU64,
    pub(crate) requests_total: AtomicU64,
    pub(crate) bad_requests: AtomicU64,
}

impl Metrics {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

pub(crate) async fn serve(listener: TcpListener, broker: Arc<Broker>, cancel: CancellationToken) {
    let app = Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .with_state(broker);
    let shutdown = async move { cancel.cancelled().await };
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
    {
        warn!(error = %e, "admin HTTP server failed");
    }
}

async fn health() -> &'static str {
    "ok\n"
}

async fn metrics(State(b): State<Arc<Broker>>) -> impl IntoResponse {
    let m = &b.metrics;
    let mut out = String::new();
    let counters = [
        (
            "tierlog_requests_total",
            "Kafka requests received",
            &m.requests_total,
        ),
        (
            "tierlog_bad_requests_total",
            "Frames refused (malformed, unknown api or version, too large)",
            &m.bad_requests,
        ),
        (
            "tierlog_produce_requests_total",
            "Produce requests",
            &m.produce_requests,
        ),
        (
            "tierlog_produced_bytes_total",
            "Record batch bytes appended",
            &m.produced_bytes,
        ),
        (
            "tierlog_produce_errors_total",
            "Partition appends refused",
            &m.produce_errors,
        ),
        (
            "tierlog_fetch_requests_total",
            "Fetch requests",
            &m.fetch_requests,
        ),
        (
            "tierlog_fetched_bytes_total",
            "Record batch bytes returned by fetches",
            &m.fetched_bytes,
        ),
    ];
    for (name, help, c) in counters {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
            c.load(Ordering::Relaxed)
        );
    }
    let _ = writeln!(
        out,
        "# HELP tierlog_partition_log_end_offset Next offset to be written\n# TYPE tierlog_partition_log_end_offset gauge"
    );
    let mut sizes = String::from(
        "# HELP tierlog_partition_local_bytes Bytes of the partition on local disk\n# TYPE tierlog_partition_local_bytes gauge\n",
    );
    for t in b.partitions.all() {
        for p in &t.partitions {
            let labels = format!("topic=\"{}\",partition=\"{}\"", p.tp.topic, p.tp.partition);
            let _ = writeln!(
                out,
                "tierlog_partition_log_end_offset{{{labels}}} {}",
                p.log.log_end_offset()
            );
            let _ = writeln!(
                sizes,
                "tierlog_partition_local_bytes{{{labels}}} {}",
                p.log.size_bytes()
            );
        }
    }
    out.push_str(&sizes);
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        out,
    )
}
