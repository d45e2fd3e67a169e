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

use std::sync::Arc;

use anyhow::Context;
use tierlog_query::QueryContext;
use tierlog_query::flight::{FlightConfig, default_location, serve};
use tracing::info;

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
    /// Where the node's data is (the flags `tierlog serve` takes for it).
    #[command(flatten)]
    pub location: super::data::DataLocation,
    /// Memory of the segment chunk cache in bytes [default: the node's 268435456].
    #[arg(long, env = "TIERLOG_CACHE_MEMORY_BYTES")]
    pub cache_memory_bytes: Option<usize>,
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
    let node = args.location.node_config(args.cache_memory_bytes)?;
    let config = super::data::query_config(&node, node.cache_memory_bytes)?;
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
