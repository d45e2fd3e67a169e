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

use crate::broker::Broker;

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
    let gauges: [Gauge; 9] = [
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
        .flat_map(|t| t.partitions.clone())
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
