//! `tierlog damage list`: the ranges of a node's hot tier that are quarantined because their
//! bytes failed their CRC-32C (see `ingest/README.md`, "Damaged ranges"), read from the
//! node's admin endpoint (`GET /damage`). A range marked tiered is served from object storage
//! and healed on its own; a follower heals the others from its leader; what is left has no
//! copy, and the operator accepts the loss by moving the log start past it (DeleteRecords, e.g.
//! Kafka's `kafka-delete-records`) or moves consumers past it (`tierlog group reset-offsets`).
//!
//! The node also lists the tiered segments its tiered scrub found damaged and could not
//! upload again, having no intact copy in its hot tier (`"tier": "remote"`): their COPY is
//! `none (tiered)`, and the reason names the damaged object.

use clap::{Args, Subcommand};
use serde::Deserialize;

use crate::table::{Align, Table};

/// `tierlog damage …`.
#[derive(Debug, Args)]
pub struct DamageArgs {
    #[command(subcommand)]
    command: DamageCommand,
}

#[derive(Debug, Subcommand)]
enum DamageCommand {
    /// List a node's quarantined ranges: topic, partition, offsets, whether object storage
    /// holds a copy, and what was wrong.
    List {
        /// The node's admin HTTP address (its `--http`), plain HTTP.
        #[arg(long, default_value = "127.0.0.1:9644")]
        http: String,
        /// File whose first line is the node's admin bearer token (its
        /// `--http-bearer-token-file`).
        #[arg(long)]
        http_bearer_token_file: Option<std::path::PathBuf>,
    },
}

/// One range as `/damage` reports it.
#[derive(Debug, Deserialize)]
struct Range {
    topic: String,
    partition: i32,
    first_offset: i64,
    last_offset: i64,
    segment_base: i64,
    tiered: bool,
    reason: String,
    /// `local` (the hot tier) or `remote` (a tiered object); nodes before the tiered scrub
    /// send only local ranges, without the field.
    #[serde(default)]
    tier: Option<String>,
}

/// Runs `tierlog damage …`.
pub async fn run(args: DamageArgs) -> anyhow::Result<()> {
    match args.command {
        DamageCommand::List {
            http,
            http_bearer_token_file,
        } => {
            let mut req = reqwest::Client::new().get(format!("http://{http}/damage"));
            if let Some(path) = http_bearer_token_file {
                let text = std::fs::read_to_string(&path).map_err(|e| {
                    anyhow::anyhow!("reading the token file `{}`: {e}", path.display())
                })?;
                req = req.bearer_auth(text.lines().next().unwrap_or_default().trim());
            }
            let resp = req
                .send()
                .await
                .map_err(|e| anyhow::anyhow!("asking {http} for its damaged ranges: {e}"))?;
            anyhow::ensure!(
                resp.status().is_success(),
                "{http} answered {} to GET /damage",
                resp.status()
            );
            let ranges: Vec<Range> = serde_json::from_str(&resp.text().await?)?;
            print!("{}", render(&ranges));
        }
    }
    Ok(())
}

fn render(ranges: &[Range]) -> String {
    if ranges.is_empty() {
        return "no damaged ranges\n".to_owned();
    }
    let mut t = Table::new(&[
        ("TOPIC", Align::Left),
        ("PARTITION", Align::Right),
        ("FIRST", Align::Right),
        ("LAST", Align::Right),
        ("SEGMENT", Align::Right),
        ("COPY", Align::Left),
        ("REASON", Align::Left),
    ]);
    for r in ranges {
        t.row(vec![
            r.topic.clone(),
            r.partition.to_string(),
            r.first_offset.to_string(),
            r.last_offset.to_string(),
            r.segment_base.to_string(),
            if r.tier.as_deref() == Some("remote") {
                "none (tiered)"
            } else if r.tiered {
                "tiered"
            } else {
                "replicas only"
            }
            .to_owned(),
            r.reason.clone(),
        ]);
    }
    t.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_each_range_on_a_line() {
        let ranges: Vec<Range> = serde_json::from_str(
            r#"[{"topic":"t","partition":0,"first_offset":10,"last_offset":19,"segment_base":0,
                 "start_pos":1,"end_pos":2,"tiered":false,"reason":"crc-32c mismatch"}]"#,
        )
        .expect("json");
        let text = render(&ranges);
        assert!(text.starts_with("TOPIC"), "{text}");
        assert!(text.contains("t  "), "{text}");
        assert!(text.contains("replicas only  crc-32c mismatch"), "{text}");
        let remote: Vec<Range> = serde_json::from_str(
            r#"[{"topic":"t","partition":1,"first_offset":0,"last_offset":99,"segment_base":0,
                 "tier":"remote","object":"topics/t-00/1/x.log","tiered":false,
                 "reason":"`topics/t-00/1/x.log`: chunk 0 checksum mismatch"}]"#,
        )
        .expect("json");
        let text = render(&remote);
        assert!(
            text.contains("none (tiered)  `topics/t-00/1/x.log`: chunk 0"),
            "{text}"
        );
        assert_eq!(render(&[]), "no damaged ranges\n");
    }
}
