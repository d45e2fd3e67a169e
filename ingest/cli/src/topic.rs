//! `tierlog topic`: create, list, describe, delete topics and alter their configs over the
//! Kafka protocol, against tierlog or any Kafka broker.
//!
//! Each subcommand connects (ApiVersions, then Metadata to find the controller and
//! leaders), does its requests, prints a human summary on stdout and returns. Any Kafka
//! error code ends the command with an error naming the code (`TOPIC_ALREADY_EXISTS`), which
//! the binary turns into a message on stderr and a non-zero exit.

use anyhow::bail;

use super::args::{parse_key_value, reject_duplicate_keys};
use super::client::{
    AdminClient, ConfigChange, ConfigEntry, CreatedTopic, NewTopic, SOURCE_TOPIC, TopicDescription,
    TopicSummary, config_source_name, error_name,
};
use super::table::{Align, Table};

/// `tierlog topic …`
#[derive(clap::Args, Debug)]
pub struct TopicArgs {
    /// Kafka bootstrap address(es), comma-separated host:port.
    #[arg(
        long,
        env = "TIERLOG_BOOTSTRAP",
        default_value = "127.0.0.1:9092",
        global = true
    )]
    pub bootstrap: String,
    #[command(subcommand)]
    pub command: TopicCommand,
}

/// The topic subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum TopicCommand {
    /// Create a topic (CreateTopics).
    Create {
        /// Topic name.
        name: String,
        /// Number of partitions.
        #[arg(long, value_parser = clap::value_parser!(i32).range(1..))]
        partitions: i32,
        /// Replicas per partition; the broker's default when omitted.
        #[arg(long, value_parser = clap::value_parser!(i16).range(1..))]
        replication_factor: Option<i16>,
        /// A topic config, e.g. `--config retention.ms=86400000`; repeatable.
        #[arg(long = "config", value_name = "KEY=VALUE", value_parser = parse_key_value)]
        configs: Vec<(String, String)>,
        /// Ask the broker to validate the request without creating the topic.
        #[arg(long)]
        validate_only: bool,
    },
    /// List all topics (Metadata).
    List,
    /// Show a topic's id, partitions (leader, replicas, ISR, earliest offset, start of the
    /// local tier — below it the data is in object storage — and latest offset) and
    /// configs (Metadata, ListOffsets, DescribeConfigs).
    Describe {
        /// Topic name.
        name: String,
    },
    /// Delete one or more topics (DeleteTopics).
    Delete {
        /// Topic names.
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Set or remove topic configs (IncrementalAlterConfigs).
    AlterConfig {
        /// Topic name.
        name: String,
        /// Set a config, e.g. `--set retention.ms=3600000`; repeatable.
        #[arg(long = "set", value_name = "KEY=VALUE", value_parser = parse_key_value)]
        set: Vec<(String, String)>,
        /// Remove a topic-level config so the default applies again; repeatable.
        #[arg(long = "delete", value_name = "KEY")]
        delete: Vec<String>,
        /// Ask the broker to validate the change without applying it.
        #[arg(long)]
        validate_only: bool,
    },
}

/// Runs one `tierlog topic` subcommand.
pub async fn run(args: TopicArgs) -> anyhow::Result<()> {
    // Validate arguments before touching the network.
    match &args.command {
        TopicCommand::Create { configs, .. } => {
            reject_duplicate_keys(configs.iter().map(|(k, _)| k.as_str()), "--config")?;
        }
        TopicCommand::AlterConfig { .. } => {
            alter_changes(&args.command)?;
        }
        TopicCommand::List | TopicCommand::Describe { .. } | TopicCommand::Delete { .. } => {}
    }

    let mut client = AdminClient::connect(&args.bootstrap).await?;
    match args.command {
        TopicCommand::Create {
            name,
            partitions,
            replication_factor,
            configs,
            validate_only,
        } => {
            let topic = NewTopic {
                name,
                partitions,
                replication_factor,
                configs,
            };
            let created = client.create_topic(&topic, validate_only).await?;
            print!("{}", format_created(&topic, &created, validate_only));
        }
        TopicCommand::List => {
            print!("{}", format_topic_list(&client.list_topics().await?));
        }
        TopicCommand::Describe { name } => {
            let description = client.describe_topic(&name).await?;
            print!("{}", format_description(&description));
            let problems = partition_problems(&description);
            if problems > 0 {
                bail!(
                    "describe topic `{name}`: {problems} partition(s) reported errors (see the ERROR column)"
                );
            }
        }
        TopicCommand::Delete { names } => {
            let results = client.delete_topics(&names).await?;
            let mut failures = Vec::new();
            for (name, result) in results {
                match result {
                    Ok(()) => println!("Deleted topic `{name}`."),
                    Err(e) => failures.push(e.to_string()),
                }
            }
            if !failures.is_empty() {
                bail!("{}", failures.join("\n"));
            }
        }
        command @ TopicCommand::AlterConfig { .. } => {
            let changes = alter_changes(&command)?;
            let TopicCommand::AlterConfig {
                name,
                validate_only,
                ..
            } = command
            else {
                bail!("internal: expected alter-config");
            };
            client
                .alter_topic_configs(&name, &changes, validate_only)
                .await?;
            print!("{}", format_altered(&name, &changes, validate_only));
        }
    }
    Ok(())
}

/// The changes an `alter-config` asks for, checked: at least one, no key twice.
fn alter_changes(command: &TopicCommand) -> anyhow::Result<Vec<ConfigChange>> {
    let TopicCommand::AlterConfig { set, delete, .. } = command else {
        return Ok(Vec::new());
    };
    if set.is_empty() && delete.is_empty() {
        bail!("alter-config needs at least one --set KEY=VALUE or --delete KEY");
    }
    if let Some(key) = delete.iter().find(|k| k.is_empty() || k.contains('=')) {
        bail!("--delete takes a config name, got `{key}`");
    }
    reject_duplicate_keys(
        set.iter()
            .map(|(k, _)| k.as_str())
            .chain(delete.iter().map(String::as_str)),
        "config",
    )?;
    Ok(set
        .iter()
        .map(|(k, v)| ConfigChange::Set(k.clone(), v.clone()))
        .chain(delete.iter().map(|k| ConfigChange::Delete(k.clone())))
        .collect())
}

fn format_created(topic: &NewTopic, created: &CreatedTopic, validate_only: bool) -> String {
    let rf = match created.replication_factor {
        rf if rf > 0 => rf.to_string(),
        _ => "broker default".to_owned(),
    };
    let partitions = if created.partitions > 0 {
        created.partitions
    } else {
        topic.partitions
    };
    if validate_only {
        format!(
            "Topic `{}` is valid (not created): {partitions} partition(s), replication factor {rf}.\n",
            topic.name
        )
    } else {
        format!(
            "Created topic `{}` (id {}): {partitions} partition(s), replication factor {rf}.\n",
            topic.name, created.id
        )
    }
}

fn format_altered(name: &str, changes: &[ConfigChange], validate_only: bool) -> String {
    let mut out = if validate_only {
        format!("Config change for topic `{name}` is valid (not applied):\n")
    } else {
        format!("Altered configs of topic `{name}`:\n")
    };
    for change in changes {
        match change {
            ConfigChange::Set(k, v) => out.push_str(&format!("  set     {k}={v}\n")),
            ConfigChange::Delete(k) => out.push_str(&format!("  delete  {k}\n")),
        }
    }
    out
}

fn format_topic_list(topics: &[TopicSummary]) -> String {
    if topics.is_empty() {
        return "No topics.\n".to_owned();
    }
    let mut table = Table::new(&[
        ("TOPIC", Align::Left),
        ("PARTITIONS", Align::Right),
        ("REPLICATION", Align::Right),
        ("ID", Align::Left),
        ("NOTE", Align::Left),
    ]);
    for t in topics {
        let mut notes = Vec::new();
        if t.internal {
            notes.push("internal".to_owned());
        }
        if t.error_code != 0 {
            notes.push(error_name(t.error_code));
        }
        table.row(vec![
            t.name.clone(),
            t.partitions.to_string(),
            t.replication_factor.to_string(),
            t.id.clone(),
            notes.join(", "),
        ]);
    }
    table.render()
}

fn join_ids(ids: &[i32]) -> String {
    if ids.is_empty() {
        return "-".to_owned();
    }
    ids.iter().map(i32::to_string).collect::<Vec<_>>().join(",")
}

fn format_offset(offset: &Result<i64, String>) -> String {
    match offset {
        Ok(o) => o.to_string(),
        Err(_) => "?".to_owned(),
    }
}

/// Partitions whose row carries an error (metadata error code or failed offset lookup).
fn partition_problems(d: &TopicDescription) -> usize {
    d.partitions
        .iter()
        .filter(|p| p.error_code != 0 || p.earliest.is_err() || p.latest.is_err())
        .count()
}

fn format_description(d: &TopicDescription) -> String {
    let rf = d.partitions.first().map_or(0, |p| p.replicas.len());
    let mut out = format!(
        "Topic:              {}{}\nId:                 {}\nPartitions:         {}\nReplication factor: {}\n\n",
        d.name,
        if d.internal { " (internal)" } else { "" },
        d.id,
        d.partitions.len(),
        rf
    );

    let mut partitions = Table::new(&[
        ("PARTITION", Align::Right),
        ("LEADER", Align::Right),
        ("EPOCH", Align::Right),
        ("REPLICAS", Align::Left),
        ("ISR", Align::Left),
        ("OFFLINE", Align::Left),
        ("EARLIEST", Align::Right),
        ("LOCAL-START", Align::Right),
        ("LATEST", Align::Right),
        ("ERROR", Align::Left),
    ]);
    for p in &d.partitions {
        let mut errors = Vec::new();
        if p.error_code != 0 {
            errors.push(error_name(p.error_code));
        }
        // One message when both lookups failed the same way (usually: leader unreachable).
        match (&p.earliest, &p.latest) {
            (Err(a), Err(b)) if a == b && p.leader >= 0 => errors.push(format!("offsets: {a}")),
            (Err(_), Err(_)) if p.leader < 0 => {}
            (earliest, latest) => {
                if let Err(e) = earliest {
                    errors.push(format!("earliest: {e}"));
                }
                if let Err(e) = latest {
                    errors.push(format!("latest: {e}"));
                }
            }
        }
        if p.leader < 0 && p.error_code == 0 {
            errors.push("no leader".to_owned());
        }
        partitions.row(vec![
            p.partition.to_string(),
            if p.leader >= 0 {
                p.leader.to_string()
            } else {
                "none".to_owned()
            },
            p.leader_epoch.to_string(),
            join_ids(&p.replicas),
            join_ids(&p.isr),
            if p.offline.is_empty() {
                String::new()
            } else {
                join_ids(&p.offline)
            },
            format_offset(&p.earliest),
            format_offset(&p.earliest_local),
            format_offset(&p.latest),
            errors.join("; "),
        ]);
    }
    out.push_str(&partitions.render());
    out.push('\n');
    out.push_str(&format_configs(&d.configs));
    out
}

fn format_configs(configs: &[ConfigEntry]) -> String {
    if configs.is_empty() {
        return "Configs: none reported.\n".to_owned();
    }
    let mut table = Table::new(&[
        ("", Align::Left),
        ("CONFIG", Align::Left),
        ("VALUE", Align::Left),
        ("SOURCE", Align::Left),
    ]);
    for c in configs {
        let value = match (&c.value, c.sensitive) {
            (_, true) => "(sensitive)".to_owned(),
            (Some(v), false) => v.clone(),
            (None, false) => "(null)".to_owned(),
        };
        let source = if c.read_only {
            format!("{} (read-only)", config_source_name(c.source))
        } else {
            config_source_name(c.source).to_owned()
        };
        table.row(vec![
            if c.source == SOURCE_TOPIC { "*" } else { "" }.to_owned(),
            c.name.clone(),
            value,
            source,
        ]);
    }
    format!(
        "Configs (* = set on this topic, others are defaults):\n{}",
        table.render()
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use clap::Parser;

    use super::super::client::PartitionInfo;
    use super::*;

    #[derive(clap::Parser, Debug)]
    struct Cli {
        #[command(subcommand)]
        command: Top,
    }

    #[derive(clap::Subcommand, Debug)]
    enum Top {
        Topic(TopicArgs),
    }

    fn parse(args: &[&str]) -> Result<TopicArgs, clap::Error> {
        let mut argv = vec!["tierlog", "topic"];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv).map(|cli| match cli.command {
            Top::Topic(args) => args,
        })
    }

    #[test]
    fn create_parses_configs_and_bootstrap_after_subcommand() {
        let args = parse(&[
            "create",
            "orders",
            "--partitions",
            "3",
            "--config",
            "retention.ms=1000",
            "--config",
            "cleanup.policy=compact",
            "--bootstrap",
            "h:1",
            "--validate-only",
        ])
        .unwrap();
        assert_eq!(args.bootstrap, "h:1");
        let TopicCommand::Create {
            name,
            partitions,
            replication_factor,
            configs,
            validate_only,
        } = args.command
        else {
            panic!("expected create");
        };
        assert_eq!(name, "orders");
        assert_eq!(partitions, 3);
        assert_eq!(replication_factor, None);
        assert!(validate_only);
        assert_eq!(
            configs,
            vec![
                ("retention.ms".to_owned(), "1000".to_owned()),
                ("cleanup.policy".to_owned(), "compact".to_owned())
            ]
        );
    }

    #[test]
    fn create_rejects_bad_input() {
        assert!(parse(&["create", "t"]).is_err(), "partitions are required");
        assert!(parse(&["create", "t", "--partitions", "0"]).is_err());
        assert!(
            parse(&[
                "create",
                "t",
                "--partitions",
                "1",
                "--replication-factor",
                "0"
            ])
            .is_err()
        );
        let e = parse(&["create", "t", "--partitions", "1", "--config", "novalue"]).unwrap_err();
        assert!(e.to_string().contains("expected KEY=VALUE"), "{e}");
    }

    #[test]
    fn delete_needs_names_and_takes_many() {
        assert!(parse(&["delete"]).is_err());
        let args = parse(&["delete", "a", "b"]).unwrap();
        assert!(matches!(args.command, TopicCommand::Delete { names } if names == ["a", "b"]));
    }

    #[test]
    fn alter_config_collects_changes() {
        let args = parse(&[
            "alter-config",
            "t",
            "--set",
            "retention.ms=5",
            "--delete",
            "cleanup.policy",
        ])
        .unwrap();
        assert_eq!(
            alter_changes(&args.command).unwrap(),
            vec![
                ConfigChange::Set("retention.ms".into(), "5".into()),
                ConfigChange::Delete("cleanup.policy".into())
            ]
        );
    }

    #[test]
    fn alter_config_rejects_empty_and_conflicting_changes() {
        let args = parse(&["alter-config", "t"]).unwrap();
        assert!(
            alter_changes(&args.command)
                .unwrap_err()
                .to_string()
                .contains("at least one")
        );
        let args = parse(&["alter-config", "t", "--set", "a=1", "--delete", "a"]).unwrap();
        assert_eq!(
            alter_changes(&args.command).unwrap_err().to_string(),
            "config `a` given more than once"
        );
        let args = parse(&["alter-config", "t", "--delete", "a=1"]).unwrap();
        assert!(alter_changes(&args.command).is_err());
    }

    #[test]
    fn list_is_an_aligned_table() {
        let topics = vec![
            TopicSummary {
                name: "__consumer_offsets".into(),
                id: "AAAAAAAAAAAAAAAAAAAAAQ".into(),
                partitions: 50,
                replication_factor: 3,
                internal: true,
                error_code: 0,
            },
            TopicSummary {
                name: "orders".into(),
                id: "-".into(),
                partitions: 3,
                replication_factor: 1,
                internal: false,
                error_code: 5,
            },
        ];
        assert_eq!(
            format_topic_list(&topics),
            "TOPIC               PARTITIONS  REPLICATION  ID                      NOTE\n\
             __consumer_offsets          50            3  AAAAAAAAAAAAAAAAAAAAAQ  internal\n\
             orders                       3            1  -                       LEADER_NOT_AVAILABLE\n"
        );
        assert_eq!(format_topic_list(&[]), "No topics.\n");
    }

    fn partition(partition: i32, leader: i32) -> PartitionInfo {
        PartitionInfo {
            partition,
            leader,
            leader_epoch: 4,
            replicas: vec![1, 2],
            isr: vec![1, 2],
            offline: vec![],
            earliest: Ok(0),
            earliest_local: Ok(600),
            latest: Ok(1200),
            error_code: 0,
        }
    }

    #[test]
    fn describe_shows_partitions_offsets_and_marks_topic_configs() {
        let mut lagging = partition(1, -1);
        lagging.error_code = 5; // LEADER_NOT_AVAILABLE
        lagging.earliest = Err("no leader".into());
        lagging.earliest_local = Err("no leader".into());
        lagging.latest = Err("no leader".into());
        lagging.isr = vec![2];
        let mut unreachable = partition(2, 2);
        unreachable.earliest = Err("connect to node 2: refused".into());
        unreachable.earliest_local = Err("connect to node 2: refused".into());
        unreachable.latest = Err("connect to node 2: refused".into());
        let d = TopicDescription {
            name: "orders".into(),
            id: "AAAAAAAAAAAAAAAAAAAAAQ".into(),
            internal: false,
            partitions: vec![partition(0, 1), lagging, unreachable],
            configs: vec![
                ConfigEntry {
                    name: "retention.ms".into(),
                    value: Some("1000".into()),
                    source: SOURCE_TOPIC,
                    sensitive: false,
                    read_only: false,
                },
                ConfigEntry {
                    name: "segment.bytes".into(),
                    value: Some("1073741824".into()),
                    source: 5,
                    sensitive: false,
                    read_only: false,
                },
                ConfigEntry {
                    name: "secret".into(),
                    value: None,
                    source: 5,
                    sensitive: true,
                    read_only: true,
                },
            ],
        };
        let expected = "\
Topic:              orders
Id:                 AAAAAAAAAAAAAAAAAAAAAQ
Partitions:         3
Replication factor: 2

PARTITION  LEADER  EPOCH  REPLICAS  ISR  OFFLINE  EARLIEST  LOCAL-START  LATEST  ERROR
        0       1      4  1,2       1,2                  0          600    1200
        1    none      4  1,2       2                    ?            ?       ?  LEADER_NOT_AVAILABLE
        2       2      4  1,2       1,2                  ?            ?       ?  offsets: connect to node 2: refused

Configs (* = set on this topic, others are defaults):
   CONFIG         VALUE        SOURCE
*  retention.ms   1000         DYNAMIC_TOPIC_CONFIG
   segment.bytes  1073741824   DEFAULT_CONFIG
   secret         (sensitive)  DEFAULT_CONFIG (read-only)
";
        assert_eq!(format_description(&d), expected);
        assert_eq!(partition_problems(&d), 2);
    }

    #[test]
    fn created_and_altered_messages() {
        let topic = NewTopic {
            name: "t".into(),
            partitions: 3,
            replication_factor: None,
            configs: vec![],
        };
        let created = CreatedTopic {
            id: "X".into(),
            partitions: 3,
            replication_factor: -1,
        };
        assert_eq!(
            format_created(&topic, &created, false),
            "Created topic `t` (id X): 3 partition(s), replication factor broker default.\n"
        );
        assert!(format_created(&topic, &created, true).contains("is valid (not created)"));
        assert_eq!(
            format_altered(
                "t",
                &[
                    ConfigChange::Set("a".into(), "1".into()),
                    ConfigChange::Delete("b".into())
                ],
                false
            ),
            "Altered configs of topic `t`:\n  set     a=1\n  delete  b\n"
        );
    }
}
