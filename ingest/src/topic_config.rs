//! Kafka topic configs: the names tierlog knows, their defaults and types, validation, and
//! the translation into the partition log's [`LogConfig`].
//!
//! Overrides are stored with the topic in the metadata store as strings, exactly as clients
//! sent them (after validation); a config absent from the overrides has its default.

use std::collections::BTreeMap;
use std::time::Duration;

use tierlog_tiering::{LogConfig, TimestampType};

use crate::error::{Error, Result};

/// The value type of a config, as DescribeConfigs v3+ reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigType {
    /// true/false
    Boolean,
    /// 32-bit integer
    Int,
    /// 64-bit integer
    Long,
    /// A string from a fixed set.
    String,
    /// A comma-separated list.
    List,
    /// A fraction.
    Double,
}

impl ConfigType {
    /// The DescribeConfigs `config_type` code.
    pub fn code(self) -> i8 {
        match self {
            ConfigType::Boolean => 1,
            ConfigType::String => 2,
            ConfigType::Int => 3,
            ConfigType::Long => 5,
            ConfigType::Double => 6,
            ConfigType::List => 7,
        }
    }
}

/// One topic config tierlog accepts.
#[derive(Debug)]
pub struct ConfigDef {
    /// Kafka's name.
    pub name: &'static str,
    /// Default value as Kafka writes it.
    pub default: &'static str,
    /// Value type.
    pub kind: ConfigType,
    /// Smallest allowed numeric value, where numeric.
    pub min: i64,
    /// Allowed values for strings and list items, where the set is fixed.
    pub choices: &'static [&'static str],
    /// One-line documentation.
    pub doc: &'static str,
}

const fn def(
    name: &'static str,
    default: &'static str,
    kind: ConfigType,
    min: i64,
    choices: &'static [&'static str],
    doc: &'static str,
) -> ConfigDef {
    ConfigDef {
        name,
        default,
        kind,
        min,
        choices,
        doc,
    }
}

use ConfigType as C;

/// Every topic config tierlog accepts. Those that change behaviour today are marked in the doc;
/// the rest are stored and reported so that tools that set them keep working.
pub const TOPIC_CONFIGS: &[ConfigDef] = &[
    def(
        "cleanup.policy",
        "delete",
        C::List,
        0,
        &["delete", "compact"],
        "delete old segments, compact them to the latest value per key, or both",
    ),
    def(
        "compression.type",
        "producer",
        C::String,
        0,
        &["producer", "uncompressed", "gzip", "snappy", "lz4", "zstd"],
        "batches are stored as the producer compressed them",
    ),
    def(
        "compression.gzip.level",
        "-1",
        C::Int,
        -1,
        &[],
        "stored; batches keep the producer's compression",
    ),
    def(
        "compression.lz4.level",
        "9",
        C::Int,
        1,
        &[],
        "stored; batches keep the producer's compression",
    ),
    def(
        "compression.zstd.level",
        "3",
        C::Int,
        -131072,
        &[],
        "stored; batches keep the producer's compression",
    ),
    def(
        "delete.retention.ms",
        "86400000",
        C::Long,
        0,
        &[],
        "how long delete tombstones are kept on compacted topics",
    ),
    def(
        "file.delete.delay.ms",
        "60000",
        C::Long,
        0,
        &[],
        "delay before deleting a file from the filesystem",
    ),
    def(
        "flush.messages",
        "9223372036854775807",
        C::Long,
        1,
        &[],
        "stored; the node's flush_mode decides fsync",
    ),
    def(
        "flush.ms",
        "9223372036854775807",
        C::Long,
        0,
        &[],
        "stored; the node's flush_mode decides fsync",
    ),
    def(
        "follower.replication.throttled.replicas",
        "",
        C::List,
        0,
        &[],
        "replicas that fetch as catching-up followers at most follower.replication.throttled.rate",
    ),
    def(
        "index.interval.bytes",
        "4096",
        C::Int,
        0,
        &[],
        "bytes between offset index entries",
    ),
    def(
        "leader.replication.throttled.replicas",
        "",
        C::List,
        0,
        &[],
        "replicas whose leader throttles catching-up followers to leader.replication.throttled.rate",
    ),
    def(
        "local.retention.bytes",
        "-2",
        C::Long,
        -2,
        &[],
        "hot-tier size retention (-2: same as retention.bytes)",
    ),
    def(
        "local.retention.ms",
        "-2",
        C::Long,
        -2,
        &[],
        "hot-tier time retention (-2: same as retention.ms)",
    ),
    def(
        "max.compaction.lag.ms",
        "9223372036854775807",
        C::Long,
        1,
        &[],
        "maximum time a message stays uncompacted",
    ),
    def(
        "max.message.bytes",
        "1048588",
        C::Int,
        0,
        &[],
        "largest record batch accepted (enforced)",
    ),
    def(
        "message.timestamp.after.max.ms",
        "9223372036854775807",
        C::Long,
        0,
        &[],
        "stored",
    ),
    def(
        "message.timestamp.before.max.ms",
        "9223372036854775807",
        C::Long,
        0,
        &[],
        "stored",
    ),
    def(
        "message.timestamp.type",
        "CreateTime",
        C::String,
        0,
        &["CreateTime", "LogAppendTime"],
        "which timestamp records carry (enforced)",
    ),
    def(
        "min.cleanable.dirty.ratio",
        "0.5",
        C::Double,
        0,
        &[],
        "clean a compacted log once this share of it is dirty",
    ),
    def(
        "min.compaction.lag.ms",
        "0",
        C::Long,
        0,
        &[],
        "minimum time a record stays uncompacted",
    ),
    def(
        "min.insync.replicas",
        "1",
        C::Int,
        1,
        &[],
        "acks=all needs this many in-sync replicas (enforced)",
    ),
    def("preallocate", "false", C::Boolean, 0, &[], "stored"),
    def(
        "remote.log.copy.disable",
        "false",
        C::Boolean,
        0,
        &[],
        "stored",
    ),
    def(
        "remote.log.delete.on.disable",
        "false",
        C::Boolean,
        0,
        &[],
        "stored",
    ),
    def(
        "remote.storage.enable",
        "true",
        C::Boolean,
        0,
        &[],
        "tier sealed segments to the object store (enforced)",
    ),
    def(
        "retention.bytes",
        "-1",
        C::Long,
        -1,
        &[],
        "size retention per partition, -1 = unlimited (enforced)",
    ),
    def(
        "retention.ms",
        "604800000",
        C::Long,
        -1,
        &[],
        "time retention, -1 = forever (enforced)",
    ),
    def(
        "segment.bytes",
        "1073741824",
        C::Int,
        14,
        &[],
        "segment file size before rolling (enforced)",
    ),
    def("segment.index.bytes", "10485760", C::Int, 4, &[], "stored"),
    def("segment.jitter.ms", "0", C::Long, 0, &[], "stored"),
    def(
        "segment.ms",
        "604800000",
        C::Long,
        1,
        &[],
        "time before rolling a segment (enforced)",
    ),
    def(
        "unclean.leader.election.enable",
        "false",
        C::Boolean,
        0,
        &[],
        "elect a replica outside the ISR when no in-sync one is alive, losing data (enforced)",
    ),
];

/// The definition of `name`, if tierlog knows it.
pub fn lookup(name: &str) -> Option<&'static ConfigDef> {
    TOPIC_CONFIGS.iter().find(|d| d.name == name)
}

/// Checks one config name and value; returns the value as it will be stored.
pub fn validate(name: &str, value: &str) -> Result<String> {
    let d = lookup(name)
        .ok_or_else(|| Error::InvalidConfig(format!("unknown topic config `{name}`")))?;
    let bad = |why: String| Error::InvalidConfig(format!("`{name}` = `{value}`: {why}"));
    let v = value.trim();
    match d.kind {
        C::Boolean => {
            if !v.eq_ignore_ascii_case("true") && !v.eq_ignore_ascii_case("false") {
                return Err(bad("expected true or false".into()));
            }
            Ok(v.to_ascii_lowercase())
        }
        C::Int | C::Long => {
            let n: i64 = v.parse().map_err(|_| bad("expected an integer".into()))?;
            if d.kind == C::Int && i32::try_from(n).is_err() {
                return Err(bad("out of range for a 32-bit integer".into()));
            }
            if n < d.min {
                return Err(bad(format!("must be at least {}", d.min)));
            }
            Ok(n.to_string())
        }
        C::Double => {
            let f: f64 = v.parse().map_err(|_| bad("expected a number".into()))?;
            if !(0.0..=1.0).contains(&f) {
                return Err(bad("must be between 0 and 1".into()));
            }
            Ok(v.to_owned())
        }
        C::String => {
            if !d.choices.is_empty() && !d.choices.contains(&v) {
                return Err(bad(format!("must be one of {}", d.choices.join(", "))));
            }
            Ok(v.to_owned())
        }
        C::List => {
            let items: Vec<&str> = v
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect();
            // A list whose default is empty (the throttled-replica lists) may be emptied again.
            if items.is_empty() && !d.default.is_empty() {
                return Err(bad("must not be empty".into()));
            }
            for item in &items {
                if !d.choices.is_empty() && !d.choices.contains(item) {
                    return Err(bad(format!(
                        "`{item}` is not one of {}",
                        d.choices.join(", ")
                    )));
                }
            }
            Ok(items.join(","))
        }
    }
}

/// Checks what depends on the node's settings: `segment.bytes` not below `min_segment_bytes`
/// (Kafka 4's floor is 1 MiB; each segment costs descriptors, so tiny ones let a client
/// exhaust them).
pub(crate) fn check_floors(
    configs: &BTreeMap<String, String>,
    min_segment_bytes: u64,
) -> Result<()> {
    if let Some(v) = configs.get("segment.bytes")
        && v.parse::<i64>().is_ok_and(|n| n < min_segment_bytes as i64)
    {
        return Err(Error::InvalidConfig(format!(
            "`segment.bytes` = `{v}`: must be at least {min_segment_bytes}"
        )));
    }
    Ok(())
}

/// Validates a whole set of overrides.
pub fn validate_all<'a>(
    configs: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for (k, v) in configs {
        out.insert(k.to_owned(), validate(k, v)?);
    }
    Ok(out)
}

/// The effective value of `name` given the overrides.
pub fn effective<'a>(overrides: &'a BTreeMap<String, String>, d: &'a ConfigDef) -> &'a str {
    overrides
        .get(d.name)
        .map(String::as_str)
        .unwrap_or(d.default)
}

/// Where a topic's value of a config comes from, as DescribeConfigs and CreateTopics report
/// it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigSource {
    /// The topic overrides it.
    Topic,
    /// A dynamic config of this node (Kafka's DYNAMIC_BROKER_CONFIG).
    DynamicBroker,
    /// The cluster-wide dynamic default (Kafka's DYNAMIC_DEFAULT_BROKER_CONFIG).
    DynamicDefaultBroker,
    /// The node's own setting (a flag, the config file or the environment).
    StaticBroker,
    /// Kafka's default.
    Default,
    /// A consumer group's own setting (Kafka's GROUP_CONFIG).
    Group,
}

impl ConfigSource {
    /// The `config_source` code (Kafka's `ConfigSource`).
    pub fn code(self) -> i8 {
        match self {
            ConfigSource::Topic => 1,
            ConfigSource::DynamicBroker => 2,
            ConfigSource::DynamicDefaultBroker => 3,
            ConfigSource::StaticBroker => 4,
            ConfigSource::Default => 5,
            ConfigSource::Group => 8,
        }
    }
}

/// The defaults a node gives the topics that do not override a config, by topic config name,
/// with where each comes from: a dynamic broker config (Kafka's synonym, `log.retention.ms`
/// for `retention.ms`, …) of this node or of the cluster, or the node's own setting
/// (`min.insync.replicas` from `--min-insync-replicas`). A config absent here has Kafka's
/// default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeDefaults(BTreeMap<String, (String, ConfigSource)>);

impl NodeDefaults {
    /// Sets the default of topic config `name`.
    pub fn insert(&mut self, name: &str, value: String, source: ConfigSource) {
        self.0.insert(name.to_owned(), (value, source));
    }

    /// The node's default of topic config `name`, if it has one.
    pub fn get(&self, name: &str) -> Option<&(String, ConfigSource)> {
        self.0.get(name)
    }

    /// A topic's configs with these defaults under its overrides: what its log runs with.
    pub fn under(&self, overrides: &BTreeMap<String, String>) -> BTreeMap<String, String> {
        let mut out: BTreeMap<String, String> = self
            .0
            .iter()
            .map(|(k, (v, _))| (k.clone(), v.clone()))
            .collect();
        out.extend(overrides.iter().map(|(k, v)| (k.clone(), v.clone())));
        out
    }
}

/// The value a topic has for `d`, and where it comes from: the topic's override, else the
/// node's default (see [`NodeDefaults`]), else Kafka's default.
pub fn resolve(
    overrides: &BTreeMap<String, String>,
    d: &ConfigDef,
    node: &NodeDefaults,
) -> (String, ConfigSource) {
    if let Some(v) = overrides.get(d.name) {
        return (v.clone(), ConfigSource::Topic);
    }
    if let Some((v, source)) = node.get(d.name) {
        return (v.clone(), *source);
    }
    (d.default.to_owned(), ConfigSource::Default)
}

fn long(overrides: &BTreeMap<String, String>, name: &str) -> i64 {
    let d = lookup(name);
    overrides
        .get(name)
        .map(String::as_str)
        .or(d.map(|d| d.default))
        .and_then(|v| v.parse().ok())
        .unwrap_or(-1)
}

fn millis(v: i64) -> Option<Duration> {
    (v >= 0).then(|| Duration::from_millis(v as u64))
}

/// The partition log settings for a topic with these overrides.
pub fn log_config(overrides: &BTreeMap<String, String>) -> LogConfig {
    let ts_type = match overrides.get("message.timestamp.type").map(String::as_str) {
        Some("LogAppendTime") => TimestampType::LogAppendTime,
        _ => TimestampType::CreateTime,
    };
    let policy: Vec<&str> = overrides
        .get("cleanup.policy")
        .map_or("delete", String::as_str)
        .split(',')
        .map(str::trim)
        .collect();
    let retention_bytes = long(overrides, "retention.bytes");
    let retention_ms = long(overrides, "retention.ms");
    // -2: "the same as the total retention", Kafka's default for the local tier.
    let local_ms = match long(overrides, "local.retention.ms") {
        -2 => retention_ms,
        v => v,
    };
    let local_bytes = match long(overrides, "local.retention.bytes") {
        -2 => retention_bytes,
        v => v,
    };
    LogConfig {
        segment_bytes: long(overrides, "segment.bytes").max(14) as u64,
        segment_ms: millis(long(overrides, "segment.ms")),
        retention_ms: millis(retention_ms),
        retention_bytes: (retention_bytes >= 0).then_some(retention_bytes as u64),
        max_message_bytes: long(overrides, "max.message.bytes").clamp(0, i32::MAX as i64) as u32,
        message_timestamp_type: ts_type,
        index_interval_bytes: long(overrides, "index.interval.bytes").clamp(0, i32::MAX as i64)
            as u32,
        remote_storage: overrides
            .get("remote.storage.enable")
            .is_none_or(|v| v == "true"),
        local_retention_ms: millis(local_ms),
        local_retention_bytes: (local_bytes >= 0).then_some(local_bytes as u64),
        cleanup_delete: policy.contains(&"delete"),
        cleanup_compact: policy.contains(&"compact"),
        min_cleanable_dirty_ratio: overrides
            .get("min.cleanable.dirty.ratio")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.5),
        min_compaction_lag_ms: long(overrides, "min.compaction.lag.ms").max(0),
        max_compaction_lag_ms: long(overrides, "max.compaction.lag.ms").max(1),
        delete_retention_ms: long(overrides, "delete.retention.ms").max(0),
    }
}

/// The topic's `min.insync.replicas`, or the node's default when the topic does not set it.
pub(crate) fn min_insync_replicas(configs: &BTreeMap<String, String>, node_default: i32) -> i32 {
    configs
        .get("min.insync.replicas")
        .and_then(|v| v.parse().ok())
        .unwrap_or(node_default)
}

/// Whether the topic allows electing a leader outside the ISR.
pub(crate) fn unclean_leader_election(configs: &BTreeMap<String, String>) -> bool {
    configs
        .get("unclean.leader.election.enable")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn defaults_match_kafka() {
        let c = log_config(&BTreeMap::new());
        assert_eq!(c.segment_bytes, 1 << 30);
        assert_eq!(c.retention_ms, Some(Duration::from_millis(604_800_000)));
        assert_eq!(c.retention_bytes, None);
        assert_eq!(c.max_message_bytes, 1_048_588);
        assert_eq!(c.message_timestamp_type, TimestampType::CreateTime);
        assert!(c.remote_storage);
        assert_eq!(c.local_retention_ms, c.retention_ms);
        assert_eq!(c.local_retention_bytes, None);
    }

    #[test]
    fn overrides_reach_the_log_config() {
        let o = validate_all([
            ("retention.ms", "-1"),
            ("retention.bytes", "1000"),
            ("segment.bytes", "4096"),
            ("message.timestamp.type", "LogAppendTime"),
        ])
        .unwrap();
        let c = log_config(&o);
        assert_eq!(c.retention_ms, None);
        assert_eq!(c.retention_bytes, Some(1000));
        assert_eq!(c.segment_bytes, 4096);
        assert_eq!(c.message_timestamp_type, TimestampType::LogAppendTime);
        let o = validate_all([
            ("local.retention.ms", "0"),
            ("local.retention.bytes", "10"),
            ("remote.storage.enable", "false"),
        ])
        .unwrap();
        let c = log_config(&o);
        assert_eq!(c.local_retention_ms, Some(Duration::ZERO));
        assert_eq!(c.local_retention_bytes, Some(10));
        assert!(!c.remote_storage);
    }

    #[test]
    fn segment_bytes_has_the_nodes_floor() {
        let with = |v: &str| BTreeMap::from([("segment.bytes".to_owned(), v.to_owned())]);
        assert!(check_floors(&with("1048576"), 1 << 20).is_ok());
        assert!(matches!(
            check_floors(&with("1048575"), 1 << 20),
            Err(Error::InvalidConfig(m)) if m.contains("at least 1048576")
        ));
        assert!(check_floors(&with("14"), 14).is_ok());
        assert!(check_floors(&BTreeMap::new(), 1 << 20).is_ok());
    }

    #[test]
    fn rejects_bad_names_and_values() {
        for (k, v) in [
            ("no.such.config", "1"),
            ("retention.ms", "soon"),
            ("retention.ms", "-5"),
            ("segment.bytes", "99999999999"),
            ("cleanup.policy", "shred"),
            ("message.timestamp.type", "Whenever"),
            ("preallocate", "maybe"),
            ("min.cleanable.dirty.ratio", "2"),
        ] {
            assert!(
                matches!(validate(k, v), Err(Error::InvalidConfig(_))),
                "{k}={v}"
            );
        }
        assert_eq!(
            validate("cleanup.policy", "compact, delete").unwrap(),
            "compact,delete"
        );
        assert!(validate("cleanup.policy", "").is_err());
        assert_eq!(
            validate("leader.replication.throttled.replicas", "").unwrap(),
            ""
        );
    }

    #[test]
    fn resolves_overrides_node_settings_and_defaults() {
        let d = lookup("min.insync.replicas").unwrap();
        let none = BTreeMap::new();
        let plain = NodeDefaults::default();
        assert_eq!(
            resolve(&none, d, &plain),
            ("1".into(), ConfigSource::Default)
        );
        let mut node = NodeDefaults::default();
        node.insert(
            "min.insync.replicas",
            "2".into(),
            ConfigSource::StaticBroker,
        );
        node.insert("retention.ms", "1000".into(), ConfigSource::DynamicBroker);
        assert_eq!(
            resolve(&none, d, &node),
            ("2".into(), ConfigSource::StaticBroker)
        );
        let set = BTreeMap::from([("min.insync.replicas".to_owned(), "3".to_owned())]);
        assert_eq!(resolve(&set, d, &node), ("3".into(), ConfigSource::Topic));
        let r = lookup("retention.ms").unwrap();
        assert_eq!(
            resolve(&none, r, &plain),
            ("604800000".into(), ConfigSource::Default)
        );
        assert_eq!(
            resolve(&none, r, &node),
            ("1000".into(), ConfigSource::DynamicBroker)
        );
        // What the log runs with: the node's defaults under the topic's overrides.
        let under = node.under(&set);
        assert_eq!(under["min.insync.replicas"], "3");
        assert_eq!(under["retention.ms"], "1000");
    }
}
