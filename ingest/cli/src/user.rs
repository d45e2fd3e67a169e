//! `tierlog user add`: SCRAM credentials written straight into the metadata store, for a
//! cluster's first user before any node accepts SASL logins (with etcd, at any time; with the
//! embedded store, only while the node is stopped). Once a node runs, Kafka's
//! `kafka-configs --entity-type users` does the same over the protocol.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, Subcommand, ValueEnum};
use tierlog_metadata::ScramMechanism;

/// `tierlog user …`.
#[derive(Debug, Args)]
pub struct UserArgs {
    #[command(subcommand)]
    command: UserCommand,
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Create or replace a user's SCRAM credentials (PLAIN logins check them too).
    Add(AddArgs),
}

/// Which SCRAM credentials to write.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum MechanismChoice {
    #[value(name = "SCRAM-SHA-256")]
    Sha256,
    #[value(name = "SCRAM-SHA-512")]
    Sha512,
    #[value(name = "both")]
    Both,
}

#[derive(Debug, Args)]
struct AddArgs {
    #[command(flatten)]
    store: crate::store::StoreArgs,
    /// The user name (the principal is User:<name>).
    #[arg(long)]
    name: String,
    /// File whose first line is the password (so it is in no flag or shell history).
    #[arg(long)]
    password_file: PathBuf,
    /// Which credentials to write.
    #[arg(long, value_enum, default_value = "both")]
    mechanism: MechanismChoice,
    /// PBKDF2 iterations, 4096 to 16384.
    #[arg(long, default_value_t = 4096)]
    iterations: i32,
}

/// Runs `tierlog user …`.
pub async fn run(args: UserArgs) -> anyhow::Result<()> {
    match args.command {
        UserCommand::Add(a) => {
            let text = std::fs::read_to_string(&a.password_file)
                .with_context(|| format!("reading `{}`", a.password_file.display()))?;
            let password = text.lines().next().unwrap_or("").trim_end_matches('\r');
            let mechanisms: &[ScramMechanism] = match a.mechanism {
                MechanismChoice::Sha256 => &[ScramMechanism::Sha256],
                MechanismChoice::Sha512 => &[ScramMechanism::Sha512],
                MechanismChoice::Both => &ScramMechanism::ALL,
            };
            let tls = a.store.etcd_tls()?;
            tierlog_ingest::add_scram_user(
                &a.store.metadata,
                &a.store.data_dir,
                &tls,
                &a.name,
                password,
                mechanisms,
                a.iterations,
            )
            .await?;
            for m in mechanisms {
                println!("{}: {} credential written", a.name, m.name());
            }
            Ok(())
        }
    }
}
