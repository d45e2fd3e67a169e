//! `tierlog node drain | undrain | status`: empty a node of replicas before stopping it for
//! good, written straight into the metadata store (the running controller does the moving;
//! see `ingest/README.md`, "Elastic cluster").

use std::collections::{BTreeMap, BTreeSet};

use clap::{Args, Subcommand};
use tierlog_metadata::{DrainRegistry, NodeId, NodeRegistry, PartitionStateRegistry};

use crate::table::{Align, Table};

/// `tierlog node …`.
#[derive(Debug, Args)]
pub struct NodeArgs {
    #[command(flatten)]
    store: crate::store::StoreArgs,
    #[command(subcommand)]
    command: NodeCommand,
}

#[derive(Debug, Subcommand)]
enum NodeCommand {
    /// Mark a node to be drained: the controller moves its replicas and leaderships to other
    /// nodes (new replicas catch up before old ones go) and places nothing new on it. Once
    /// `status` shows it holding no replica, it can be stopped with nothing under-replicated.
    Drain {
        /// The node id.
        id: NodeId,
    },
    /// Clear a node's drain mark: it takes replicas again (balancing gives it its share).
    Undrain {
        /// The node id.
        id: NodeId,
    },
    /// Every node that is live or holds replicas: rack, drain mark, replicas and leaderships.
    Status,
}

/// Runs `tierlog node …`.
pub async fn run(args: NodeArgs) -> anyhow::Result<()> {
    let store = args.store.open().await?;
    let drains = DrainRegistry::new(store.clone());
    match args.command {
        NodeCommand::Drain { id } => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64);
            drains.drain(id, now).await?;
            println!(
                "node {id} marked for draining; `tierlog node status` shows its replicas leave"
            );
        }
        NodeCommand::Undrain { id } => {
            if drains.undrain(id).await? {
                println!("node {id} no longer drained");
            } else {
                println!("node {id} was not marked for draining");
            }
        }
        NodeCommand::Status => print!("{}", status(store).await?),
    }
    Ok(())
}

async fn status(
    store: std::sync::Arc<dyn tierlog_metadata::MetadataStore>,
) -> anyhow::Result<String> {
    let live = NodeRegistry::new(store.clone()).list().await?;
    let drains = DrainRegistry::new(store.clone()).list().await?;
    let states = PartitionStateRegistry::new(store).list().await?;
    let mut replicas: BTreeMap<NodeId, usize> = BTreeMap::new();
    let mut leaders: BTreeMap<NodeId, usize> = BTreeMap::new();
    let mut moving = 0usize;
    for s in &states {
        for r in &s.value.replicas {
            *replicas.entry(*r).or_default() += 1;
        }
        if s.value.leader >= 0 {
            *leaders.entry(s.value.leader).or_default() += 1;
        }
        moving += usize::from(s.value.is_reassigning());
    }
    let racks: BTreeMap<NodeId, Option<String>> =
        live.iter().map(|n| (n.id, n.rack.clone())).collect();
    let ids: BTreeSet<NodeId> = racks
        .keys()
        .chain(replicas.keys())
        .chain(drains.keys())
        .copied()
        .collect();
    let mut t = Table::new(&[
        ("NODE", Align::Right),
        ("LIVE", Align::Left),
        ("RACK", Align::Left),
        ("DRAINING", Align::Left),
        ("REPLICAS", Align::Right),
        ("LEADERS", Align::Right),
    ]);
    for id in ids {
        t.row(vec![
            id.to_string(),
            if racks.contains_key(&id) { "yes" } else { "no" }.to_owned(),
            racks
                .get(&id)
                .cloned()
                .flatten()
                .unwrap_or_else(|| "-".into()),
            if drains.contains_key(&id) {
                "yes"
            } else {
                "no"
            }
            .to_owned(),
            replicas.get(&id).copied().unwrap_or(0).to_string(),
            leaders.get(&id).copied().unwrap_or(0).to_string(),
        ]);
    }
    Ok(format!(
        "{}{moving} partition reassignment(s) in progress\n",
        t.render()
    ))
}
