//! The `tierlog` binary: thin wiring of the subcommands onto `tierlog-ingest` (`serve`) and
//! this crate's client commands.

use clap::{Parser, Subcommand};

use tierlog_cli as cli;
use tierlog_ingest::config::{NodeConfig, ServeArgs};
use tierlog_ingest::{Node, ShutdownSignal};

/// tierlog: a Kafka-compatible, tiered-storage log service.
#[derive(Debug, Parser)]
#[command(
    name = "tierlog",
    version,
    about = "tierlog: a Kafka-compatible, tiered-storage log service"
)]
struct Cli {
    /// Log line format on stderr: text, or one JSON object per line.
    #[arg(
        long,
        global = true,
        env = "TIERLOG_LOG_FORMAT",
        value_enum,
        default_value_t = cli::logging::LogFormat::Text
    )]
    log_format: cli::logging::LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a node (with no flags: one node, embedded metadata, data in ./tierlog-data).
    Serve(Box<ServeArgs>),
    /// Create, list, describe, delete and configure topics over the Kafka protocol.
    Topic(cli::topic::TopicArgs),
    /// List, describe, delete consumer groups and reset their offsets.
    Group(cli::group::GroupArgs),
    /// Load-generate against any Kafka-compatible broker.
    Bench(cli::bench::BenchArgs),
    /// Export a topic's tiered history as Hive-partitioned Parquet (no node needs to run).
    Export(cli::export::ExportArgs),
    /// Serve tiered history to batch readers (Arrow Flight).
    Query(cli::query::QueryArgs),
    /// Manage SASL/SCRAM users straight in the metadata store.
    User(cli::user::UserArgs),
    /// Drain nodes (move every replica off them) and see where replicas are.
    Node(cli::node::NodeArgs),
    /// List the ranges of a node's log quarantined because their bytes failed their checksum.
    Damage(cli::damage::DamageArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    cli::logging::init(cli.log_format);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async move {
        match cli.command {
            Command::Serve(args) => {
                let config = NodeConfig::load(&args)?;
                // Before the node serves, so that no early signal is lost (see ShutdownSignal).
                let signal = ShutdownSignal::install();
                Node::start(config).await?.run_until(signal).await
            }
            Command::Topic(args) => cli::topic::run(args).await,
            Command::Group(args) => cli::group::run(args).await,
            Command::Bench(args) => cli::bench::run(args).await,
            Command::Export(args) => cli::export::run(args).await,
            Command::Query(args) => cli::query::run(args).await,
            Command::User(args) => cli::user::run(args).await,
            Command::Node(args) => cli::node::run(args).await,
            Command::Damage(args) => cli::damage::run(args).await,
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
