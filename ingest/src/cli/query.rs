//! `tierlog query serve`: the Arrow Flight service over a topic's tiered history.
//!
//! It finds the data the way `tierlog serve` does — the same `--config` file, `--data-dir`,
//! `--metadata`, `--object-store` and `--s3-*` flags and `TIERLOG_*` variables — and needs no
//! ingest node: only the metadata store and the object store. With the embedded metadata store
//! the node must be stopped first (the store's file is held by one process at a time; a clean
//! stop seals and tiers the active segments, so everything acknowledged is readable).
//!
//! The service runs until SIGINT or SIGTERM, then stops accepting and lets running reads
//! finish. Descriptors, tickets and errors are documented in `tierlog_query::flight`.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use tierlog_query::flight::{FlightConfig, default_location, serve};
use tierlog_query::{QueryConfig, QueryContext};
use tierlog_tiering::remote::store::S3Options;
use tracing::info;

use crate::config::{NodeConfig, ServeArgs};

/// `tierlog query …`
#[derive(clap::Args, Debug)]
pub struct QueryArgs {
    #[command(subcommand)]
    pub command: QueryCommand,
}

/// The query subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum QueryCommand {
    /// Serve the tiered history as Arrow Flight: one endpoint per split, DoGet streams a split.
    Serve(QueryServeArgs),
}

/// `tierlog query serve` flags: where to listen, and where the data is (as `tierlog serve`).
#[derive(clap::Args, Debug)]
pub struct QueryServeArgs {
    /// Flight (gRPC) listener address.
    #[arg(long, env = "TIERLOG_FLIGHT_LISTEN", default_value = "127.0.0.1:8815")]
    pub listen: String,
    /// host:port put in every endpoint for workers to DoGet from [default: the listener
    /// address; for 0.0.0.0, "reuse this connection"].
    #[arg(long, env = "TIERLOG_FLIGHT_ADVERTISE")]
    pub advertise: Option<String>,
    /// Records per Arrow batch.
    #[arg(long, env = "TIERLOG_FLIGHT_BATCH_ROWS", default_value_t = 8192)]
    pub batch_rows: usize,
    /// Splits read at once across all clients; more DoGets wait.
    #[arg(
        long,
        env = "TIERLOG_FLIGHT_MAX_CONCURRENT_READS",
        default_value_t = 64
    )]
    pub max_concurrent_reads: usize,
    /// TOML config file of the node (its data, metadata, object store and cache settings).
    #[arg(long, env = "TIERLOG_CONFIG")]
    pub config: Option<PathBuf>,
    /// Data directory [default: ./tierlog-data].
    #[arg(long, env = "TIERLOG_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Metadata store URL: embedded | etcd://… [default: embedded].
    #[arg(long, env = "TIERLOG_METADATA")]
    pub metadata: Option<String>,
    /// Object store URL: s3://bucket/prefix | file:///path [default: file://<data-dir>/objects].
    #[arg(long, env = "TIERLOG_OBJECT_STORE")]
    pub object_store: Option<String>,
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
    /// Memory of the segment chunk cache in bytes [default: the node's 268435456].
    #[arg(long, env = "TIERLOG_CACHE_MEMORY_BYTES")]
    pub cache_memory_bytes: Option<usize>,
}

impl QueryServeArgs {
    /// The node settings these flags (over the config file) describe: the same defaults,
    /// precedence and validation as `tierlog serve`.
    fn node_config(&self) -> anyhow::Result<NodeConfig> {
        NodeConfig::load(&ServeArgs {
            config: self.config.clone(),
            data_dir: self.data_dir.clone(),
            metadata: self.metadata.clone(),
            object_store: self.object_store.clone(),
            s3_region: self.s3_region.clone(),
            s3_endpoint: self.s3_endpoint.clone(),
            s3_allow_http: self.s3_allow_http,
            s3_path_style: self.s3_path_style,
            cache_memory_bytes: self.cache_memory_bytes,
            ..ServeArgs::default()
        })
    }
}

/// The query settings of a node's config.
fn query_config(node: &NodeConfig) -> anyhow::Result<QueryConfig> {
    Ok(QueryConfig {
        data_dir: node.data_dir.clone(),
        metadata: node.metadata.clone(),
        object_store: Some(node.object_store_url()?.to_string()),
        s3: S3Options {
            region: node.s3_region.clone(),
            endpoint: node.s3_endpoint.clone(),
            allow_http: node.s3_allow_http,
            path_style: node.s3_path_style,
        },
        cache_memory_bytes: node.cache_memory_bytes,
    })
}

/// Runs a `tierlog query` subcommand.
pub async fn run(args: QueryArgs) -> anyhow::Result<()> {
    match args.command {
        QueryCommand::Serve(a) => serve_flight(a).await,
    }
}

async fn serve_flight(args: QueryServeArgs) -> anyhow::Result<()> {
    if args.batch_rows == 0 {
        anyhow::bail!("--batch-rows must be at least 1");
    }
    if args.max_concurrent_reads == 0 {
        anyhow::bail!("--max-concurrent-reads must be at least 1");
    }
    let node = args.node_config()?;
    let config = query_config(&node)?;
    let ctx = QueryContext::open(&config).await.with_context(|| {
        format!(
            "opening the history in `{}` (metadata `{}`); with the embedded metadata store, \
             stop the node first",
            node.data_dir.display(),
            node.metadata
        )
    })?;
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("binding the Flight listener `{}`", args.listen))?;
    let addr = listener.local_addr()?;
    let location = match &args.advertise {
        Some(a) => format!("grpc+tcp://{a}"),
        None => default_location(addr),
    };
    info!(%addr, %location, data_dir = %node.data_dir.display(), "Flight service listening");
    println!(
        "tierlog query: Flight service listening on grpc+tcp://{addr} (endpoints: {location})"
    );
    let flight = FlightConfig {
        location: Some(location),
        batch_rows: args.batch_rows,
        max_concurrent_reads: args.max_concurrent_reads,
    };
    serve(Arc::new(ctx), listener, flight, wait_for_signal())
        .await
        .context("Flight server")?;
    info!("Flight service stopped");
    Ok(())
}

/// SIGINT or SIGTERM.
async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
