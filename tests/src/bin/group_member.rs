//! A consumer-group member for tests that must kill a consumer without it leaving the group.
//!
//! Usage: `group_member --bootstrap H:P --group G --topic T [--set KEY=VALUE]...`
//!
//! It subscribes to the topic with librdkafka (manual commits, earliest offsets, the `--set`
//! settings on top), prints `{"event":"started"}` and then, whenever its assignment changes,
//! `{"event":"assignment","partitions":[…]}` on stdout, one JSON object per line, and polls
//! until it is killed. Client errors go to stderr. It never exits on its own unless setup fails.

use std::collections::BTreeSet;
use std::io::Write;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};

fn main() -> Result<()> {
    let mut bootstrap = None;
    let mut group = None;
    let mut topic = None;
    let mut settings = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--bootstrap" => bootstrap = Some(value),
            "--group" => group = Some(value),
            "--topic" => topic = Some(value),
            "--set" => {
                let (k, v) = value
                    .split_once('=')
                    .with_context(|| format!("--set expects KEY=VALUE, got {value:?}"))?;
                settings.push((k.to_owned(), v.to_owned()));
            }
            other => bail!("unknown flag {other}"),
        }
    }
    let (Some(bootstrap), Some(group), Some(topic)) = (bootstrap, group, topic) else {
        bail!("usage: group_member --bootstrap H:P --group G --topic T [--set KEY=VALUE]...");
    };

    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", &group)
        .set("client.id", "tierlog-tests-group-member")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false");
    for (k, v) in &settings {
        config.set(k, v);
    }
    let consumer: BaseConsumer = config.create().context("creating the consumer")?;
    consumer
        .subscribe(&[topic.as_str()])
        .context("subscribing")?;
    emit(&serde_json::json!({"event": "started"}))?;

    let mut last: Option<BTreeSet<i32>> = None;
    loop {
        if let Some(Err(e)) = consumer.poll(Duration::from_millis(50)) {
            eprintln!("group_member: client error: {e}");
        }
        let now: BTreeSet<i32> = consumer
            .assignment()
            .context("reading the assignment")?
            .elements()
            .iter()
            .filter(|e| e.topic() == topic)
            .map(|e| e.partition())
            .collect();
        if last.as_ref() != Some(&now) {
            emit(&serde_json::json!({"event": "assignment", "partitions": now}))?;
            last = Some(now);
        }
    }
}

fn emit(value: &serde_json::Value) -> Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{value}")?;
    out.flush()?;
    Ok(())
}
