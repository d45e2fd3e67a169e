//! `tierlog group`: list, describe, delete consumer groups and reset their committed offsets
//! over the Kafka protocol, as Kafka's `kafka-consumer-groups` does, against tierlog or any
//! Kafka broker.
//!
//! Each subcommand connects (ApiVersions, Metadata), finds the group's coordinator
//! (FindCoordinator) and asks it (ListGroups, DescribeGroups, OffsetFetch, DeleteGroups,
//! OffsetCommit); log end offsets and timestamp lookups come from the partition leaders
//! (ListOffsets). Output is a plain table on stdout. Any Kafka error code ends the command
//! with an error naming the code (`GROUP_ID_NOT_FOUND`, `NON_EMPTY_GROUP`), which the binary
//! prints on stderr with a non-zero exit.
//!
//! `reset-offsets` only touches groups without members (state `Empty`, or `Dead` for a group
//! that has never existed), as Kafka's tool: a live member would overwrite the new offsets
//! with its own next commit. The check runs before anything is written, dry run or not, and
//! the broker enforces it again (a commit without a generation is refused for active groups).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, UNIX_EPOCH};

use anyhow::bail;

use super::client::{
    AdminClient, AssignedTopic, CommittedOffset, GroupDescription, GroupListing, OffsetSpec,
    decode_consumer_assignment, error_name,
};
use super::table::{Align, Table};

/// The protocol type of Kafka consumers; only their assignments have a known encoding.
const CONSUMER_PROTOCOL: &str = "consumer";

/// `tierlog group …`
#[derive(clap::Args, Debug)]
pub struct GroupArgs {
    /// Kafka bootstrap address(es), comma-separated host:port.
    #[arg(
        long,
        env = "TIERLOG_BOOTSTRAP",
        default_value = "127.0.0.1:9092",
        global = true
    )]
    pub bootstrap: String,
    #[command(subcommand)]
    pub command: GroupCommand,
}

/// The group subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum GroupCommand {
    /// List all groups with their state and protocol type (ListGroups on every broker).
    List,
    /// Show a group's state, assignor, members with their assigned partitions, and per
    /// partition the committed offset, log end offset, lag and owning member.
    Describe {
        /// Group id.
        group: String,
    },
    /// Delete groups without members, with their committed offsets (DeleteGroups).
    Delete {
        /// Group ids.
        #[arg(required = true)]
        groups: Vec<String>,
    },
    /// Move a group's committed offsets on one topic (only while the group has no members).
    ResetOffsets(ResetArgs),
}

/// `tierlog group reset-offsets …`
#[derive(clap::Args, Debug)]
pub struct ResetArgs {
    /// Group id.
    pub group: String,
    /// The topic whose offsets move.
    #[arg(long)]
    pub topic: String,
    /// Only these partitions (repeatable); all partitions of the topic when omitted.
    #[arg(long = "partition", value_parser = clap::value_parser!(i32).range(0..))]
    pub partitions: Vec<i32>,
    /// Where to move them.
    #[command(flatten)]
    pub target: ResetTarget,
    /// Show the new offsets without committing them.
    #[arg(long)]
    pub dry_run: bool,
}

/// Exactly one of the `--to-…` flags.
#[derive(clap::Args, Debug, Clone, PartialEq, Eq)]
#[group(required = true, multiple = false)]
pub struct ResetTarget {
    /// The log start offset of each partition.
    #[arg(long)]
    pub to_earliest: bool,
    /// The log end offset of each partition (skip everything written so far).
    #[arg(long)]
    pub to_latest: bool,
    /// The first offset whose timestamp is at or after this RFC 3339 time
    /// (`2024-05-01T12:00:00Z`, `2024-05-01T14:00:00.5+02:00`; no zone means UTC).
    #[arg(long, value_name = "RFC3339", value_parser = parse_datetime_ms)]
    pub to_datetime: Option<i64>,
    /// This offset, clamped to each partition's [log start, log end].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i64).range(0..))]
    pub to_offset: Option<i64>,
}

/// Where `reset-offsets` moves offsets, once parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reset {
    Earliest,
    Latest,
    /// Milliseconds since the Unix epoch.
    Datetime(i64),
    Offset(i64),
}

impl ResetTarget {
    fn reset(&self) -> anyhow::Result<Reset> {
        match (
            self.to_earliest,
            self.to_latest,
            self.to_datetime,
            self.to_offset,
        ) {
            (true, false, None, None) => Ok(Reset::Earliest),
            (false, true, None, None) => Ok(Reset::Latest),
            (false, false, Some(ms), None) => Ok(Reset::Datetime(ms)),
            (false, false, None, Some(offset)) => Ok(Reset::Offset(offset)),
            _ => bail!(
                "reset-offsets needs exactly one of --to-earliest, --to-latest, --to-datetime, --to-offset"
            ),
        }
    }
}

/// Runs one `tierlog group` subcommand.
pub async fn run(args: GroupArgs) -> anyhow::Result<()> {
    // Validate arguments before touching the network.
    if let GroupCommand::ResetOffsets(reset) = &args.command {
        reset.target.reset()?;
    }
    let mut client = AdminClient::connect(&args.bootstrap).await?;
    match args.command {
        GroupCommand::List => {
            print!("{}", format_group_list(&client.list_groups().await?));
        }
        GroupCommand::Describe { group } => {
            let description = client.describe_group(&group).await?;
            if description.state == "Dead" {
                bail!(
                    "describe group `{group}` failed: GROUP_ID_NOT_FOUND (the group does not exist)"
                );
            }
            let offsets = client.fetch_group_offsets(&group).await?;
            let rows = partition_rows(&mut client, &description, &offsets).await?;
            print!("{}", format_description(&description, &rows));
            let problems: Vec<&PartitionRow> =
                rows.iter().filter(|r| !r.error.is_empty()).collect();
            if !problems.is_empty() {
                bail!(
                    "describe group `{group}`: {} partition(s) reported errors (see the ERROR column)",
                    problems.len()
                );
            }
        }
        GroupCommand::Delete { groups } => {
            let mut failures = Vec::new();
            for (group, result) in client.delete_groups(&groups).await? {
                match result {
                    Ok(()) => println!("Deleted group `{group}`."),
                    Err(e) => failures.push(e.to_string()),
                }
            }
            if !failures.is_empty() {
                bail!("{}", failures.join("\n"));
            }
        }
        GroupCommand::ResetOffsets(reset) => reset_offsets(&mut client, reset).await?,
    }
    Ok(())
}

/// One partition row of `describe`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PartitionRow {
    topic: String,
    partition: i32,
    /// `None` when nothing is committed.
    committed: Option<i64>,
    /// `None` when the log end offset could not be read (see `error`).
    log_end: Option<i64>,
    /// Member id of the member the partition is assigned to.
    owner: Option<String>,
    /// Why something is missing, empty when nothing is.
    error: String,
}

impl PartitionRow {
    fn lag(&self) -> Option<i64> {
        Some((self.log_end? - self.committed?).max(0))
    }
}

/// The partitions a group has committed offsets for or has assigned, with log end offsets.
async fn partition_rows(
    client: &mut AdminClient,
    description: &GroupDescription,
    offsets: &[CommittedOffset],
) -> anyhow::Result<Vec<PartitionRow>> {
    let mut rows: BTreeMap<(String, i32), PartitionRow> = BTreeMap::new();
    let row = |topic: &str, partition: i32| PartitionRow {
        topic: topic.to_owned(),
        partition,
        committed: None,
        log_end: None,
        owner: None,
        error: String::new(),
    };
    for o in offsets {
        let mut r = row(&o.topic, o.partition);
        r.committed = (o.offset >= 0).then_some(o.offset);
        if o.error_code != 0 {
            r.error = error_name(o.error_code);
        }
        rows.insert((o.topic.clone(), o.partition), r);
    }
    if description.protocol_type == CONSUMER_PROTOCOL {
        for m in &description.members {
            // An undecodable assignment is shown in the member table; nothing to add here.
            let Ok(assigned) = decode_consumer_assignment(&m.assignment) else {
                continue;
            };
            for t in assigned {
                for p in t.partitions {
                    rows.entry((t.topic.clone(), p))
                        .or_insert_with(|| row(&t.topic, p))
                        .owner = Some(m.member_id.clone());
                }
            }
        }
    }
    let mut by_topic: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    for (topic, partition) in rows.keys() {
        by_topic.entry(topic.clone()).or_default().push(*partition);
    }
    for (topic, partitions) in by_topic {
        let ends = match client
            .partition_offsets(&topic, &partitions, OffsetSpec::Latest)
            .await
        {
            Ok(ends) => ends,
            // The topic may be gone while offsets for it remain; say so per row.
            Err(e) => partitions
                .iter()
                .map(|p| (*p, Err(format!("{e:#}"))))
                .collect(),
        };
        for (partition, end) in ends {
            if let Some(r) = rows.get_mut(&(topic.clone(), partition)) {
                match end {
                    Ok(end) => r.log_end = Some(end),
                    Err(e) if r.error.is_empty() => r.error = format!("log end: {e}"),
                    Err(_) => {}
                }
            }
        }
    }
    Ok(rows.into_values().collect())
}

/// `reset-offsets`: check the group is inactive, compute the new offsets, commit them unless
/// `--dry-run`.
async fn reset_offsets(client: &mut AdminClient, args: ResetArgs) -> anyhow::Result<()> {
    let reset = args.target.reset()?;
    let group = &args.group;
    let description = client.describe_group(group).await?;
    if !matches!(description.state.as_str(), "Empty" | "Dead") {
        bail!(
            "reset offsets of group `{group}`: offsets can only be reset while the group is \
             inactive, but its state is {} with {} member(s); stop its consumers first",
            description.state,
            description.members.len()
        );
    }
    let existing: Vec<i32> = client
        .topic_partitions(&args.topic)
        .await?
        .into_iter()
        .map(|(p, _)| p)
        .collect();
    let partitions = select_partitions(&args.topic, &existing, &args.partitions)?;
    let previous: BTreeMap<i32, i64> = client
        .fetch_group_offsets(group)
        .await?
        .into_iter()
        .filter(|o| o.topic == args.topic && o.offset >= 0)
        .map(|o| (o.partition, o.offset))
        .collect();

    let targets = match reset {
        Reset::Earliest | Reset::Offset(_) => {
            let earliest = client
                .partition_offsets(&args.topic, &partitions, OffsetSpec::Earliest)
                .await?;
            if let Reset::Offset(offset) = reset {
                let latest = client
                    .partition_offsets(&args.topic, &partitions, OffsetSpec::Latest)
                    .await?;
                let mut out = BTreeMap::new();
                for p in &partitions {
                    let value = match (earliest.get(p), latest.get(p)) {
                        (Some(Ok(lo)), Some(Ok(hi))) => Ok(offset.clamp(*lo, (*hi).max(*lo))),
                        (Some(Err(e)), _) | (_, Some(Err(e))) => Err(e.clone()),
                        _ => Err("missing from response".to_owned()),
                    };
                    out.insert(*p, value);
                }
                out
            } else {
                earliest
            }
        }
        Reset::Latest => {
            client
                .partition_offsets(&args.topic, &partitions, OffsetSpec::Latest)
                .await?
        }
        Reset::Datetime(ms) => {
            client
                .partition_offsets(&args.topic, &partitions, OffsetSpec::Timestamp(ms))
                .await?
        }
    };
    let mut plan = Vec::with_capacity(partitions.len());
    for p in &partitions {
        match targets.get(p) {
            Some(Ok(offset)) => plan.push(PlannedReset {
                partition: *p,
                previous: previous.get(p).copied(),
                new: *offset,
            }),
            Some(Err(e)) => bail!(
                "reset offsets of group `{group}`: cannot resolve the new offset of `{}` partition {p}: {e}",
                args.topic
            ),
            None => bail!(
                "reset offsets of group `{group}`: no offset for `{}` partition {p}",
                args.topic
            ),
        }
    }

    if !args.dry_run {
        let commits: Vec<(String, i32, i64)> = plan
            .iter()
            .map(|r| (args.topic.clone(), r.partition, r.new))
            .collect();
        let failures: Vec<String> = client
            .commit_group_offsets(group, &commits)
            .await?
            .into_iter()
            .filter_map(|(_, result)| result.err().map(|e| e.to_string()))
            .collect();
        if !failures.is_empty() {
            bail!("reset offsets of group `{group}`:\n{}", failures.join("\n"));
        }
    }
    print!(
        "{}",
        format_reset(group, &args.topic, &plan, reset, args.dry_run)
    );
    Ok(())
}

/// The partitions to reset: the requested ones (each must exist, none twice), or all.
fn select_partitions(topic: &str, existing: &[i32], requested: &[i32]) -> anyhow::Result<Vec<i32>> {
    if requested.is_empty() {
        let mut all = existing.to_vec();
        all.sort_unstable();
        return Ok(all);
    }
    let mut seen = BTreeSet::new();
    for p in requested {
        if !existing.contains(p) {
            bail!(
                "topic `{topic}` has no partition {p} (it has {} partition(s))",
                existing.len()
            );
        }
        if !seen.insert(*p) {
            bail!("--partition {p} given more than once");
        }
    }
    Ok(seen.into_iter().collect())
}

/// One partition's move in `reset-offsets`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PlannedReset {
    partition: i32,
    previous: Option<i64>,
    new: i64,
}

/// Parses an RFC 3339 date-time into milliseconds since the Unix epoch. Accepts `T` or a
/// space between date and time, fractional seconds, and a zone of `Z` or `±HH:MM`; no zone
/// means UTC.
fn parse_datetime_ms(s: &str) -> Result<i64, String> {
    let bad = |why: &str| {
        format!("invalid date-time `{s}`: {why} (expected RFC 3339, e.g. 2024-05-01T12:00:00Z)")
    };
    let trimmed = s.trim();
    // Split off a numeric zone: a `+`/`-` after the time part (the date's `-`s come earlier).
    let time_start = trimmed
        .find(['T', 't', ' '])
        .ok_or_else(|| bad("no time part"))?;
    let (local, offset_secs) = match trimmed[time_start..].rfind(['+', '-']) {
        Some(i) => {
            let at = time_start + i;
            let zone = &trimmed[at..];
            let sign = if zone.starts_with('-') { -1 } else { 1 };
            let (h, m) = zone[1..]
                .split_once(':')
                .ok_or_else(|| bad("zone must be ±HH:MM"))?;
            let h: i64 = h.parse().map_err(|_| bad("zone hours"))?;
            let m: i64 = m.parse().map_err(|_| bad("zone minutes"))?;
            if h.to_string().len() > 2 || h > 23 || m > 59 {
                return Err(bad("zone out of range"));
            }
            (&trimmed[..at], sign * (h * 3600 + m * 60))
        }
        None => (trimmed.trim_end_matches(['Z', 'z']), 0),
    };
    let utc = format!("{}Z", local.replacen([' ', 't'], "T", 1));
    let time = humantime::parse_rfc3339(&utc).map_err(|e| bad(&e.to_string()))?;
    let ms = match time.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).map_err(|_| bad("too far in the future"))?,
        Err(_) => return Err(bad("before 1970")),
    };
    let ms = ms - offset_secs * 1000;
    if ms < 0 {
        return Err(bad("before 1970"));
    }
    Ok(ms)
}

/// Formats milliseconds since the epoch as RFC 3339 UTC, for messages.
fn format_datetime_ms(ms: i64) -> String {
    let time = UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    humantime::format_rfc3339_millis(time).to_string()
}

fn format_group_list(groups: &[GroupListing]) -> String {
    if groups.is_empty() {
        return "No groups.\n".to_owned();
    }
    let mut table = Table::new(&[
        ("GROUP", Align::Left),
        ("STATE", Align::Left),
        ("PROTOCOL-TYPE", Align::Left),
    ]);
    for g in groups {
        table.row(vec![
            g.group_id.clone(),
            g.state.clone().unwrap_or_else(|| "?".to_owned()),
            if g.protocol_type.is_empty() {
                "-".to_owned()
            } else {
                g.protocol_type.clone()
            },
        ]);
    }
    table.render()
}

/// `topic:0,1,2 other:3`, or `-` for none.
fn format_assignment(assigned: &[AssignedTopic]) -> String {
    let parts: Vec<String> = assigned
        .iter()
        .filter(|t| !t.partitions.is_empty())
        .map(|t| {
            let mut ps = t.partitions.clone();
            ps.sort_unstable();
            let ps: Vec<String> = ps.iter().map(i32::to_string).collect();
            format!("{}:{}", t.topic, ps.join(","))
        })
        .collect();
    if parts.is_empty() {
        "-".to_owned()
    } else {
        parts.join(" ")
    }
}

fn or_dash(value: Option<i64>) -> String {
    value.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

fn format_description(d: &GroupDescription, rows: &[PartitionRow]) -> String {
    let dash = |s: &str| {
        if s.is_empty() {
            "-".to_owned()
        } else {
            s.to_owned()
        }
    };
    let mut out = format!(
        "Group:          {}\nState:          {}\nProtocol type:  {}\nAssignor:       {}\nMembers:        {}\n",
        d.group_id,
        d.state,
        dash(&d.protocol_type),
        dash(&d.protocol),
        d.members.len()
    );
    if !d.members.is_empty() {
        let mut members = Table::new(&[
            ("MEMBER-ID", Align::Left),
            ("INSTANCE-ID", Align::Left),
            ("CLIENT-ID", Align::Left),
            ("HOST", Align::Left),
            ("ASSIGNMENT", Align::Left),
        ]);
        let mut sorted: Vec<_> = d.members.iter().collect();
        sorted.sort_by(|a, b| a.member_id.cmp(&b.member_id));
        for m in sorted {
            let assignment = if d.protocol_type != CONSUMER_PROTOCOL {
                format!("({} bytes)", m.assignment.len())
            } else {
                match decode_consumer_assignment(&m.assignment) {
                    Ok(assigned) => format_assignment(&assigned),
                    Err(e) => format!("(undecodable: {e})"),
                }
            };
            members.row(vec![
                m.member_id.clone(),
                m.instance_id.clone().unwrap_or_else(|| "-".to_owned()),
                dash(&m.client_id),
                dash(&m.client_host),
                assignment,
            ]);
        }
        out.push('\n');
        out.push_str(&members.render());
    }
    out.push('\n');
    if rows.is_empty() {
        out.push_str("No committed offsets and no assigned partitions.\n");
        return out;
    }
    let mut partitions = Table::new(&[
        ("TOPIC", Align::Left),
        ("PARTITION", Align::Right),
        ("COMMITTED", Align::Right),
        ("LOG-END", Align::Right),
        ("LAG", Align::Right),
        ("OWNER", Align::Left),
        ("ERROR", Align::Left),
    ]);
    for r in rows {
        partitions.row(vec![
            r.topic.clone(),
            r.partition.to_string(),
            or_dash(r.committed),
            or_dash(r.log_end),
            or_dash(r.lag()),
            r.owner.clone().unwrap_or_else(|| "-".to_owned()),
            r.error.clone(),
        ]);
    }
    out.push_str(&partitions.render());
    out
}

fn format_reset(
    group: &str,
    topic: &str,
    plan: &[PlannedReset],
    reset: Reset,
    dry_run: bool,
) -> String {
    let to = match reset {
        Reset::Earliest => "the earliest offsets".to_owned(),
        Reset::Latest => "the latest offsets".to_owned(),
        Reset::Datetime(ms) => format!("the offsets at {}", format_datetime_ms(ms)),
        Reset::Offset(o) => format!("offset {o} (clamped to each partition's range)"),
    };
    let mut out = if dry_run {
        format!(
            "Dry run: would reset group `{group}` on topic `{topic}` to {to} (nothing committed):\n"
        )
    } else {
        format!("Reset group `{group}` on topic `{topic}` to {to}:\n")
    };
    let mut table = Table::new(&[
        ("TOPIC", Align::Left),
        ("PARTITION", Align::Right),
        ("PREVIOUS", Align::Right),
        ("NEW", Align::Right),
    ]);
    for r in plan {
        table.row(vec![
            topic.to_owned(),
            r.partition.to_string(),
            or_dash(r.previous),
            r.new.to_string(),
        ]);
    }
    out.push_str(&table.render());
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use bytes::{BufMut, Bytes, BytesMut};
    use clap::Parser;

    use super::super::client::GroupMemberInfo;
    use super::*;

    #[derive(clap::Parser, Debug)]
    struct Cli {
        #[command(subcommand)]
        command: Top,
    }

    #[derive(clap::Subcommand, Debug)]
    enum Top {
        Group(GroupArgs),
    }

    fn parse(args: &[&str]) -> Result<GroupArgs, clap::Error> {
        let mut argv = vec!["tierlog", "group"];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv).map(|cli| match cli.command {
            Top::Group(args) => args,
        })
    }

    /// Encodes a consumer-protocol assignment the way Kafka clients do.
    fn assignment(version: i16, topics: &[(&str, &[i32])], user_data: Option<&[u8]>) -> Bytes {
        let mut b = BytesMut::new();
        b.put_i16(version);
        b.put_i32(i32::try_from(topics.len()).unwrap());
        for (topic, partitions) in topics {
            b.put_i16(i16::try_from(topic.len()).unwrap());
            b.put_slice(topic.as_bytes());
            b.put_i32(i32::try_from(partitions.len()).unwrap());
            for p in *partitions {
                b.put_i32(*p);
            }
        }
        match user_data {
            Some(d) => {
                b.put_i32(i32::try_from(d.len()).unwrap());
                b.put_slice(d);
            }
            None => b.put_i32(-1),
        }
        b.freeze()
    }

    #[test]
    fn list_describe_delete_parse() {
        let args = parse(&["list", "--bootstrap", "h:1"]).unwrap();
        assert_eq!(args.bootstrap, "h:1");
        assert!(matches!(args.command, GroupCommand::List));
        let args = parse(&["describe", "g"]).unwrap();
        assert!(matches!(args.command, GroupCommand::Describe { group } if group == "g"));
        assert!(parse(&["describe"]).is_err(), "describe needs a group");
        assert!(parse(&["delete"]).is_err(), "delete needs a group");
        let args = parse(&["delete", "a", "b"]).unwrap();
        assert!(matches!(args.command, GroupCommand::Delete { groups } if groups == ["a", "b"]));
    }

    #[test]
    fn reset_offsets_parses_each_target() {
        let args = parse(&[
            "reset-offsets",
            "g",
            "--topic",
            "t",
            "--partition",
            "0",
            "--partition",
            "2",
            "--to-offset",
            "7",
            "--dry-run",
        ])
        .unwrap();
        let GroupCommand::ResetOffsets(r) = args.command else {
            panic!("expected reset-offsets");
        };
        assert_eq!(r.group, "g");
        assert_eq!(r.topic, "t");
        assert_eq!(r.partitions, [0, 2]);
        assert!(r.dry_run);
        assert_eq!(r.target.reset().unwrap(), Reset::Offset(7));

        for (flag, want) in [
            ("--to-earliest", Reset::Earliest),
            ("--to-latest", Reset::Latest),
        ] {
            let args = parse(&["reset-offsets", "g", "--topic", "t", flag]).unwrap();
            let GroupCommand::ResetOffsets(r) = args.command else {
                panic!("expected reset-offsets");
            };
            assert_eq!(r.target.reset().unwrap(), want);
            assert!(!r.dry_run);
            assert!(r.partitions.is_empty());
        }
        let args = parse(&[
            "reset-offsets",
            "g",
            "--topic",
            "t",
            "--to-datetime",
            "2024-05-01T12:00:00Z",
        ])
        .unwrap();
        let GroupCommand::ResetOffsets(r) = args.command else {
            panic!("expected reset-offsets");
        };
        assert_eq!(
            r.target.reset().unwrap(),
            Reset::Datetime(1_714_564_800_000)
        );
    }

    #[test]
    fn reset_offsets_rejects_bad_input() {
        let base = ["reset-offsets", "g", "--topic", "t"];
        assert!(parse(&base).is_err(), "a --to-… target is required");
        let mut two = base.to_vec();
        two.extend(["--to-earliest", "--to-latest"]);
        assert!(parse(&two).is_err(), "only one target");
        let mut negative = base.to_vec();
        negative.extend(["--to-offset", "-1"]);
        assert!(parse(&negative).is_err());
        let mut bad_partition = base.to_vec();
        bad_partition.extend(["--to-earliest", "--partition", "-3"]);
        assert!(parse(&bad_partition).is_err());
        let mut bad_time = base.to_vec();
        bad_time.extend(["--to-datetime", "yesterday"]);
        let e = parse(&bad_time).unwrap_err();
        assert!(e.to_string().contains("invalid date-time"), "{e}");
        assert!(
            parse(&["reset-offsets", "g", "--to-latest"]).is_err(),
            "--topic is required"
        );
    }

    #[test]
    fn datetimes_parse_with_zones_and_fractions() {
        assert_eq!(parse_datetime_ms("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(
            parse_datetime_ms("2024-05-01T12:00:00Z"),
            Ok(1_714_564_800_000)
        );
        assert_eq!(
            parse_datetime_ms("2024-05-01T12:00:00.250Z"),
            Ok(1_714_564_800_250)
        );
        // No zone means UTC; a space may separate date and time.
        assert_eq!(
            parse_datetime_ms("2024-05-01 12:00:00"),
            Ok(1_714_564_800_000)
        );
        assert_eq!(
            parse_datetime_ms("2024-05-01T14:00:00+02:00"),
            Ok(1_714_564_800_000)
        );
        assert_eq!(
            parse_datetime_ms("2024-05-01T07:30:00-04:30"),
            Ok(1_714_564_800_000)
        );
        for bad in [
            "2024-05-01",
            "2024-13-01T00:00:00Z",
            "2024-05-01T12:00:00+2",
            "2024-05-01T12:00:00+25:00",
            "nonsense",
            "",
        ] {
            assert!(parse_datetime_ms(bad).is_err(), "{bad} should not parse");
        }
        assert_eq!(
            format_datetime_ms(1_714_564_800_250),
            "2024-05-01T12:00:00.250Z"
        );
    }

    #[test]
    fn assignments_decode_every_version_and_reject_corruption() {
        let bytes = assignment(0, &[("orders", &[2, 0]), ("audit", &[1])], None);
        let decoded = decode_consumer_assignment(&bytes).unwrap();
        assert_eq!(
            decoded,
            vec![
                AssignedTopic {
                    topic: "orders".into(),
                    partitions: vec![2, 0]
                },
                AssignedTopic {
                    topic: "audit".into(),
                    partitions: vec![1]
                },
            ]
        );
        assert_eq!(format_assignment(&decoded), "orders:0,2 audit:1");
        // Cooperative-sticky (v1+) carries user data; it is skipped.
        let bytes = assignment(3, &[("t", &[5])], Some(b"sticky"));
        assert_eq!(
            format_assignment(&decode_consumer_assignment(&bytes).unwrap()),
            "t:5"
        );
        // No assignment yet.
        assert_eq!(decode_consumer_assignment(&[]).unwrap(), vec![]);
        assert_eq!(format_assignment(&[]), "-");
        let bytes = assignment(0, &[], None);
        assert_eq!(
            format_assignment(&decode_consumer_assignment(&bytes).unwrap()),
            "-"
        );

        let whole = assignment(0, &[("orders", &[0, 1, 2])], Some(b"x"));
        for cut in 1..whole.len() {
            assert!(
                decode_consumer_assignment(&whole[..cut]).is_err()
                    // Cutting exactly before the user data leaves a valid v0 assignment.
                    || cut == whole.len() - 5,
                "truncated at {cut} should fail"
            );
        }
        // A huge count must fail, not allocate.
        let mut huge = BytesMut::new();
        huge.put_i16(0);
        huge.put_i32(i32::MAX);
        assert!(decode_consumer_assignment(&huge).is_err());
    }

    fn member(id: &str, instance: Option<&str>, assignment: Bytes) -> GroupMemberInfo {
        GroupMemberInfo {
            member_id: id.into(),
            instance_id: instance.map(Into::into),
            client_id: format!("client-{id}"),
            client_host: "/127.0.0.1".into(),
            assignment,
        }
    }

    #[test]
    fn list_is_an_aligned_table() {
        let groups = vec![
            GroupListing {
                group_id: "billing".into(),
                protocol_type: "consumer".into(),
                state: Some("Stable".into()),
            },
            GroupListing {
                group_id: "offsets-only".into(),
                protocol_type: String::new(),
                state: None,
            },
        ];
        assert_eq!(
            format_group_list(&groups),
            "GROUP         STATE   PROTOCOL-TYPE\n\
             billing       Stable  consumer\n\
             offsets-only  ?       -\n"
        );
        assert_eq!(format_group_list(&[]), "No groups.\n");
    }

    #[test]
    fn describe_shows_members_offsets_lag_and_owners() {
        let d = GroupDescription {
            group_id: "billing".into(),
            state: "Stable".into(),
            protocol_type: "consumer".into(),
            protocol: "range".into(),
            members: vec![
                member("m-2", Some("static-b"), assignment(0, &[("t", &[1])], None)),
                member("m-1", None, assignment(0, &[("t", &[0])], None)),
            ],
        };
        let rows = vec![
            PartitionRow {
                topic: "t".into(),
                partition: 0,
                committed: Some(40),
                log_end: Some(100),
                owner: Some("m-1".into()),
                error: String::new(),
            },
            PartitionRow {
                topic: "t".into(),
                partition: 1,
                committed: None,
                log_end: Some(7),
                owner: Some("m-2".into()),
                error: String::new(),
            },
            PartitionRow {
                topic: "gone".into(),
                partition: 0,
                committed: Some(5),
                log_end: None,
                owner: None,
                error: "log end: UNKNOWN_TOPIC_OR_PARTITION".into(),
            },
        ];
        let expected = "\
Group:          billing
State:          Stable
Protocol type:  consumer
Assignor:       range
Members:        2

MEMBER-ID  INSTANCE-ID  CLIENT-ID   HOST        ASSIGNMENT
m-1        -            client-m-1  /127.0.0.1  t:0
m-2        static-b     client-m-2  /127.0.0.1  t:1

TOPIC  PARTITION  COMMITTED  LOG-END  LAG  OWNER  ERROR
t              0         40      100   60  m-1
t              1          -        7    -  m-2
gone           0          5        -    -  -      log end: UNKNOWN_TOPIC_OR_PARTITION
";
        assert_eq!(format_description(&d, &rows), expected);
    }

    #[test]
    fn describe_of_an_empty_group_and_opaque_protocols() {
        let d = GroupDescription {
            group_id: "g".into(),
            state: "Empty".into(),
            protocol_type: "consumer".into(),
            protocol: String::new(),
            members: vec![],
        };
        let text = format_description(&d, &[]);
        assert!(text.contains("State:          Empty\n"), "{text}");
        assert!(text.contains("Assignor:       -\n"), "{text}");
        assert!(
            text.ends_with("No committed offsets and no assigned partitions.\n"),
            "{text}"
        );

        let d = GroupDescription {
            group_id: "connect".into(),
            state: "Stable".into(),
            protocol_type: "connect".into(),
            protocol: "sessioned".into(),
            members: vec![member("w", None, Bytes::from_static(b"abc"))],
        };
        assert!(format_description(&d, &[]).contains("(3 bytes)"));
        let d = GroupDescription {
            protocol_type: "consumer".into(),
            ..d
        };
        assert!(format_description(&d, &[]).contains("(undecodable:"));
    }

    #[test]
    fn lag_never_goes_negative() {
        let row = PartitionRow {
            topic: "t".into(),
            partition: 0,
            committed: Some(10),
            log_end: Some(4),
            owner: None,
            error: String::new(),
        };
        assert_eq!(row.lag(), Some(0));
    }

    #[test]
    fn partitions_to_reset_are_checked() {
        assert_eq!(select_partitions("t", &[2, 0, 1], &[]).unwrap(), [0, 1, 2]);
        assert_eq!(select_partitions("t", &[0, 1, 2], &[2, 0]).unwrap(), [0, 2]);
        assert_eq!(
            select_partitions("t", &[0, 1], &[5])
                .unwrap_err()
                .to_string(),
            "topic `t` has no partition 5 (it has 2 partition(s))"
        );
        assert!(select_partitions("t", &[0, 1], &[1, 1]).is_err());
    }

    #[test]
    fn reset_report_names_previous_and_new_offsets() {
        let plan = [
            PlannedReset {
                partition: 0,
                previous: Some(50),
                new: 0,
            },
            PlannedReset {
                partition: 1,
                previous: None,
                new: 0,
            },
        ];
        assert_eq!(
            format_reset("g", "t", &plan, Reset::Earliest, false),
            "Reset group `g` on topic `t` to the earliest offsets:\n\
             TOPIC  PARTITION  PREVIOUS  NEW\n\
             t              0        50    0\n\
             t              1         -    0\n"
        );
        let text = format_reset("g", "t", &plan, Reset::Datetime(0), true);
        assert!(
            text.starts_with(
                "Dry run: would reset group `g` on topic `t` to the offsets at \
                 1970-01-01T00:00:00.000Z (nothing committed):\n"
            ),
            "{text}"
        );
    }
}
