//! Configs changed at run time and kept in the metadata store (`DynamicConfigRegistry`):
//! consumer groups' own settings (Kafka's GROUP resource, KIP-848) and Kafka's dynamic broker
//! configs, set for one node or as the cluster-wide default; and what DescribeConfigs reports
//! for a node's settings.
//!
//! Lifecycle: every node keeps a copy of the store's dynamic configs in a [`DynamicConfigs`],
//! read when the broker opens and kept current by [`run_sync`] (`crate::mirror`). After each
//! re-read the node derives what is in force for it: the topic defaults its partitions' logs
//! run with (a dynamic `log.retention.ms` is the `retention.ms` of every topic that does not
//! set its own; precedence as Kafka's: topic override, this node's dynamic config, the
//! cluster default, the node's static setting, Kafka's default) and its `min.insync.replicas`;
//! the group coordinator reads a group's `consumer.session.timeout.ms` and
//! `consumer.heartbeat.interval.ms` from the copy on each heartbeat. A change is therefore in
//! force on every node within a watch round trip, without a restart.
//!
//! Which node settings are dynamic: the broker-level defaults of topic configs
//! ([`BROKER_CONFIGS`] entries with a topic synonym) — they act through the partition logs,
//! which take new settings at once. Every other node setting is read-only (set in the config
//! file, env or flags), refused with Kafka's INVALID_REQUEST "Cannot update these configs
//! dynamically". Names tierlog does not know are stored and reported as Kafka stores custom
//! broker configs (read-only, sensitive, no value shown).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::info;

use tierlog_metadata::{CONFIGS_PREFIX, ConfigResource, DynamicConfigRegistry, NodeId};

use crate::broker::Identity;
use crate::config::NodeConfig;
use crate::error::{Error, Result};
use crate::host::Host;
use crate::topic_config::{self, ConfigSource, ConfigType, NodeDefaults};

/// One config as DescribeConfigs reports it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Described {
    pub(crate) name: String,
    /// `None`: no value (unset, or hidden).
    pub(crate) value: Option<String>,
    pub(crate) source: ConfigSource,
    pub(crate) read_only: bool,
    pub(crate) sensitive: bool,
    /// `None`: unknown (Kafka's UNKNOWN type, for custom configs).
    pub(crate) kind: Option<ConfigType>,
    pub(crate) doc: &'static str,
    /// Every level that sets it, most specific first: (name, value, source).
    pub(crate) synonyms: Vec<(String, Option<String>, ConfigSource)>,
}

// ---- the copy of the store ------------------------------------------------------------

/// The node's settings dynamic configs fall back to.
#[derive(Debug, Clone)]
pub(crate) struct StaticSettings {
    pub(crate) node_id: NodeId,
    pub(crate) min_insync_replicas: i32,
    pub(crate) group_session_timeout: Duration,
    pub(crate) group_heartbeat_interval: Duration,
}

impl Default for StaticSettings {
    fn default() -> Self {
        StaticSettings {
            node_id: 0,
            min_insync_replicas: 1,
            group_session_timeout: crate::group::consumer::SESSION_TIMEOUT,
            group_heartbeat_interval: crate::group::consumer::HEARTBEAT_INTERVAL,
        }
    }
}

/// Every dynamic config this node knows, by resource: a copy of the store, replaced whole on
/// each re-read, plus what it puts in force on this node. Readers take a read lock for one
/// lookup; writes are rare (config changes).
#[derive(Debug, Default)]
pub(crate) struct DynamicConfigs {
    entries: RwLock<HashMap<ConfigResource, BTreeMap<String, String>>>,
    /// Where they are stored; `None` in unit tests that set the copy by hand.
    registry: Option<DynamicConfigRegistry>,
    statics: StaticSettings,
    /// The topic defaults in force on this node, derived from `entries` at each change.
    topic_defaults: RwLock<NodeDefaults>,
    /// This node's `min.insync.replicas` (read on every acks=all produce).
    min_insync_replicas: AtomicI32,
}

impl DynamicConfigs {
    pub(crate) fn new(registry: Option<DynamicConfigRegistry>, statics: StaticSettings) -> Self {
        let c = DynamicConfigs {
            min_insync_replicas: AtomicI32::new(statics.min_insync_replicas),
            registry,
            statics,
            ..DynamicConfigs::default()
        };
        c.derive();
        c
    }

    pub(crate) fn registry(&self) -> Option<&DynamicConfigRegistry> {
        self.registry.as_ref()
    }

    /// The values of `resource` (empty if none).
    pub(crate) fn values(&self, resource: &ConfigResource) -> BTreeMap<String, String> {
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        entries.get(resource).cloned().unwrap_or_default()
    }

    /// Puts `values` in the copy for `resource` (after this node wrote them, so that its next
    /// request reads its own write before the watch brings it back). True if the topic
    /// defaults in force changed.
    pub(crate) fn set(&self, resource: ConfigResource, values: BTreeMap<String, String>) -> bool {
        {
            let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
            if values.is_empty() {
                entries.remove(&resource);
            } else {
                entries.insert(resource, values);
            }
        }
        self.derive()
    }

    /// Re-reads every dynamic config from the store. True if the topic defaults in force
    /// changed.
    pub(crate) async fn refresh(&self) -> tierlog_metadata::Result<bool> {
        let Some(r) = &self.registry else {
            return Ok(false);
        };
        let next = r
            .list()
            .await?
            .into_iter()
            .map(|c| (c.resource, c.values))
            .collect();
        *self.entries.write().unwrap_or_else(|e| e.into_inner()) = next;
        Ok(self.derive())
    }

    /// The topic defaults in force on this node.
    pub(crate) fn topic_defaults(&self) -> NodeDefaults {
        self.topic_defaults
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// A whole-number node config as in force here: this node's value, else the cluster-wide
    /// default (`None` if neither is set or it is not a number).
    pub(crate) fn node_u64(&self, name: &str) -> Option<u64> {
        let node = self.values(&ConfigResource::Broker(Some(self.statics.node_id)));
        let cluster = self.values(&ConfigResource::Broker(None));
        node.get(name).or(cluster.get(name))?.trim().parse().ok()
    }

    /// This node's `min.insync.replicas` for topics that do not set it.
    pub(crate) fn min_insync_replicas(&self) -> i32 {
        self.min_insync_replicas.load(Ordering::Relaxed)
    }

    /// A group's (session timeout, heartbeat interval): its own configs, else the node's.
    pub(crate) fn group_timing(&self, group: &str) -> (Duration, Duration) {
        let values = self.values(&ConfigResource::Group(group.to_owned()));
        let ms = |name: &str, fallback: Duration| {
            values
                .get(name)
                .and_then(|v| v.parse::<u64>().ok())
                .map_or(fallback, Duration::from_millis)
        };
        (
            ms(GROUP_SESSION_TIMEOUT, self.statics.group_session_timeout),
            ms(
                GROUP_HEARTBEAT_INTERVAL,
                self.statics.group_heartbeat_interval,
            ),
        )
    }

    /// Recomputes what is in force on this node; true if the topic defaults changed.
    fn derive(&self) -> bool {
        let node = self.values(&ConfigResource::Broker(Some(self.statics.node_id)));
        let cluster = self.values(&ConfigResource::Broker(None));
        let mut defaults = NodeDefaults::default();
        let min_insync = self.statics.min_insync_replicas.to_string();
        if let Some(d) = topic_config::lookup("min.insync.replicas")
            && min_insync != d.default
        {
            defaults.insert(
                "min.insync.replicas",
                min_insync,
                ConfigSource::StaticBroker,
            );
        }
        for def in BROKER_CONFIGS {
            let Some(topic) = def.topic else { continue };
            if let Some(v) = node.get(def.name) {
                defaults.insert(topic, v.clone(), ConfigSource::DynamicBroker);
            } else if let Some(v) = cluster.get(def.name) {
                defaults.insert(topic, v.clone(), ConfigSource::DynamicDefaultBroker);
            }
        }
        let min = defaults
            .get("min.insync.replicas")
            .and_then(|(v, _)| v.parse().ok())
            .unwrap_or(1);
        self.min_insync_replicas.store(min, Ordering::Relaxed);
        let mut current = self
            .topic_defaults
            .write()
            .unwrap_or_else(|e| e.into_inner());
        let changed = *current != defaults;
        *current = defaults;
        changed
    }
}

/// Puts the topic defaults in force on this node into its partitions' logs.
pub(crate) fn apply(h: &Host) {
    h.partitions.set_log_defaults(h.dynamic.topic_defaults());
}

/// Keeps `h.dynamic` equal to the store until `cancel`, applying each change to the node.
pub(crate) async fn run_sync(h: Arc<Host>, cancel: CancellationToken) {
    let Some(registry) = h.dynamic.registry().cloned() else {
        return;
    };
    let store = registry.store().clone();
    crate::mirror::follow_prefix(
        store,
        CONFIGS_PREFIX,
        "dynamic configs",
        || async {
            if h.dynamic.refresh().await? {
                info!("dynamic broker configs changed; topic defaults re-applied");
                apply(&h);
            }
            Ok(())
        },
        cancel,
    )
    .await;
}

// ---- groups ---------------------------------------------------------------------------

/// Kafka's GroupConfig names tierlog applies.
pub(crate) const GROUP_SESSION_TIMEOUT: &str = "consumer.session.timeout.ms";
pub(crate) const GROUP_HEARTBEAT_INTERVAL: &str = "consumer.heartbeat.interval.ms";
/// Kafka's bounds of both (`group.consumer.{min,max}.{session.timeout,heartbeat.interval}.ms`
/// defaults), widened to include the node's own settings.
const SESSION_BOUNDS_MS: (u64, u64) = (45_000, 60_000);
const HEARTBEAT_BOUNDS_MS: (u64, u64) = (5_000, 15_000);

/// A group config: (name, broker synonym, node setting, Kafka's bounds in ms, doc).
type GroupDef = (
    &'static str,
    &'static str,
    Duration,
    (u64, u64),
    &'static str,
);

/// Each group config.
fn group_defs(s: &StaticSettings) -> [GroupDef; 2] {
    [
        (
            GROUP_SESSION_TIMEOUT,
            "group.consumer.session.timeout.ms",
            s.group_session_timeout,
            SESSION_BOUNDS_MS,
            "a member of this group silent this long is removed",
        ),
        (
            GROUP_HEARTBEAT_INTERVAL,
            "group.consumer.heartbeat.interval.ms",
            s.group_heartbeat_interval,
            HEARTBEAT_BOUNDS_MS,
            "how often members of this group heartbeat",
        ),
    ]
}

impl DynamicConfigs {
    /// DescribeConfigs of a group: its own values over the node's.
    pub(crate) fn describe_group(&self, group: &str) -> Vec<Described> {
        let own = self.values(&ConfigResource::Group(group.to_owned()));
        group_defs(&self.statics)
            .into_iter()
            .map(|(name, synonym, node, (default, _), doc)| {
                let node_ms = node.as_millis().to_string();
                let node_source = if node.as_millis() == u128::from(default) {
                    ConfigSource::Default
                } else {
                    ConfigSource::StaticBroker
                };
                let mut synonyms = Vec::new();
                if let Some(v) = own.get(name) {
                    synonyms.push((name.to_owned(), Some(v.clone()), ConfigSource::Group));
                }
                synonyms.push((synonym.to_owned(), Some(node_ms.clone()), node_source));
                let (value, source) = match own.get(name) {
                    Some(v) => (v.clone(), ConfigSource::Group),
                    None => (node_ms, node_source),
                };
                Described {
                    name: name.to_owned(),
                    value: Some(value),
                    source,
                    read_only: false,
                    sensitive: false,
                    kind: Some(ConfigType::Int),
                    doc,
                    synonyms,
                }
            })
            .collect()
    }

    /// Checks one group config name (INVALID_CONFIG for a name Kafka does not know).
    pub(crate) fn check_group_name(&self, name: &str) -> Result<()> {
        if group_defs(&self.statics).iter().any(|d| d.0 == name) {
            Ok(())
        } else {
            Err(Error::InvalidConfig(format!(
                "Unknown group config name: {name}"
            )))
        }
    }

    /// Checks one group config value as Kafka's `GroupConfig` does: an INT within the
    /// bounds (INVALID_CONFIG otherwise).
    pub(crate) fn check_group_value(&self, name: &str, value: &str) -> Result<String> {
        let Some((_, synonym, node, (min, max), _)) =
            group_defs(&self.statics).into_iter().find(|d| d.0 == name)
        else {
            return Err(Error::InvalidConfig(format!(
                "Unknown group config name: {name}"
            )));
        };
        let v: i32 = value.trim().parse().map_err(|_| {
            Error::InvalidConfig(format!(
                "Invalid value {value} for configuration {name}: Not a number of type INT"
            ))
        })?;
        let node = u64::try_from(node.as_millis()).unwrap_or(u64::MAX);
        let (min, max) = (min.min(node), max.max(node));
        let bound = synonym.replacen("group.consumer.", "", 1);
        if u64::try_from(v).unwrap_or(0) < min {
            return Err(Error::InvalidConfig(format!(
                "{name} must be greater than or equal to group.consumer.min.{bound}"
            )));
        }
        if u64::try_from(v).unwrap_or(0) > max {
            return Err(Error::InvalidConfig(format!(
                "{name} must be less than or equal to group.consumer.max.{bound}"
            )));
        }
        Ok(v.to_string())
    }
}

// ---- nodes ----------------------------------------------------------------------------

/// One node setting as Kafka names it.
#[derive(Debug)]
pub(crate) struct BrokerDef {
    pub(crate) name: &'static str,
    pub(crate) kind: ConfigType,
    /// The topic config it is the node-level default of; these are the dynamic ones.
    pub(crate) topic: Option<&'static str>,
    /// Kafka's default (`None`: no value).
    pub(crate) default: Option<&'static str>,
    /// A coarser setting Kafka falls back to when this one has no value (`log.retention.hours`
    /// for `log.retention.ms`), listed among the synonyms of a value that is set.
    pub(crate) fallback: Option<(&'static str, &'static str)>,
}

const fn broker(
    name: &'static str,
    kind: ConfigType,
    topic: Option<&'static str>,
    default: Option<&'static str>,
) -> BrokerDef {
    BrokerDef {
        name,
        kind,
        topic,
        default,
        fallback: None,
    }
}

use ConfigType as C;

/// The node settings DescribeConfigs reports: the dynamic defaults of topic configs, then
/// the read-only settings tierlog has.
pub(crate) const BROKER_CONFIGS: &[BrokerDef] = &[
    BrokerDef {
        fallback: Some(("log.retention.hours", "168")),
        ..broker("log.retention.ms", C::Long, Some("retention.ms"), None)
    },
    broker(
        "log.retention.bytes",
        C::Long,
        Some("retention.bytes"),
        Some("-1"),
    ),
    broker(
        "log.segment.bytes",
        C::Int,
        Some("segment.bytes"),
        Some("1073741824"),
    ),
    BrokerDef {
        fallback: Some(("log.roll.hours", "168")),
        ..broker("log.roll.ms", C::Long, Some("segment.ms"), None)
    },
    broker(
        "message.max.bytes",
        C::Int,
        Some("max.message.bytes"),
        Some("1048588"),
    ),
    broker(
        "log.cleanup.policy",
        C::List,
        Some("cleanup.policy"),
        Some("delete"),
    ),
    broker(
        "log.cleaner.min.compaction.lag.ms",
        C::Long,
        Some("min.compaction.lag.ms"),
        Some("0"),
    ),
    broker(
        "log.cleaner.max.compaction.lag.ms",
        C::Long,
        Some("max.compaction.lag.ms"),
        Some("9223372036854775807"),
    ),
    broker(
        "log.cleaner.delete.retention.ms",
        C::Long,
        Some("delete.retention.ms"),
        Some("86400000"),
    ),
    broker(
        "log.cleaner.min.cleanable.ratio",
        C::Double,
        Some("min.cleanable.dirty.ratio"),
        Some("0.5"),
    ),
    broker(
        "log.index.interval.bytes",
        C::Int,
        Some("index.interval.bytes"),
        Some("4096"),
    ),
    broker(
        "log.message.timestamp.type",
        C::String,
        Some("message.timestamp.type"),
        Some("CreateTime"),
    ),
    broker(
        "log.local.retention.ms",
        C::Long,
        Some("local.retention.ms"),
        Some("-2"),
    ),
    broker(
        "log.local.retention.bytes",
        C::Long,
        Some("local.retention.bytes"),
        Some("-2"),
    ),
    broker(
        "min.insync.replicas",
        C::Int,
        Some("min.insync.replicas"),
        Some("1"),
    ),
    broker("log.retention.hours", C::Int, None, Some("168")),
    broker("log.roll.hours", C::Int, None, Some("168")),
    broker("node.id", C::Int, None, None),
    broker("broker.id", C::Int, None, Some("-1")),
    broker("broker.rack", C::String, None, None),
    broker("auto.create.topics.enable", C::Boolean, None, Some("true")),
    broker("num.partitions", C::Int, None, Some("1")),
    broker("default.replication.factor", C::Int, None, Some("1")),
    broker("socket.request.max.bytes", C::Int, None, Some("104857600")),
    broker("log.dirs", C::List, None, None),
    broker("advertised.listeners", C::List, None, None),
    broker("log.cleaner.enable", C::Boolean, None, Some("true")),
    broker(
        "group.initial.rebalance.delay.ms",
        C::Int,
        None,
        Some("3000"),
    ),
    broker(
        "group.consumer.session.timeout.ms",
        C::Int,
        None,
        Some("45000"),
    ),
    broker(
        "group.consumer.heartbeat.interval.ms",
        C::Int,
        None,
        Some("5000"),
    ),
    broker("offsets.retention.minutes", C::Int, None, Some("10080")),
    broker("replica.lag.time.max.ms", C::Long, None, Some("30000")),
    broker("transaction.max.timeout.ms", C::Int, None, Some("900000")),
    broker("max.connections.per.ip", C::Int, None, Some("2147483647")),
];

fn broker_def(name: &str) -> Option<&'static BrokerDef> {
    BROKER_CONFIGS.iter().find(|d| d.name == name)
}

/// The node's own value of a setting it has (its config file, env or flags).
fn static_value(name: &str, c: &NodeConfig, id: &Identity) -> Option<String> {
    let ms = |d: Duration| d.as_millis().to_string();
    Some(match name {
        "node.id" | "broker.id" => c.node_id.to_string(),
        "broker.rack" => c.rack.clone()?,
        "auto.create.topics.enable" => c.auto_create_topics.to_string(),
        "num.partitions" => c.default_partitions.to_string(),
        "default.replication.factor" => c.default_replication_factor.to_string(),
        "min.insync.replicas" => c.min_insync_replicas.to_string(),
        "socket.request.max.bytes" => c.max_frame_bytes.to_string(),
        "log.dirs" => c.data_dir.join("logs").display().to_string(),
        "advertised.listeners" => {
            if id.listeners.is_empty() {
                format!("PLAINTEXT://{}:{}", id.host, id.port)
            } else {
                id.listeners
                    .iter()
                    .map(|l| format!("{}://{}:{}", l.name, l.host, l.port))
                    .collect::<Vec<_>>()
                    .join(",")
            }
        }
        "log.cleaner.enable" => c.log_cleaner_enable.to_string(),
        "group.initial.rebalance.delay.ms" => ms(c.group_initial_rebalance_delay),
        "group.consumer.session.timeout.ms" => ms(c.group_consumer_session_timeout),
        "group.consumer.heartbeat.interval.ms" => ms(c.group_consumer_heartbeat_interval),
        "offsets.retention.minutes" => (c.offsets_retention.as_secs() / 60).to_string(),
        "replica.lag.time.max.ms" => ms(c.replica_lag_time_max),
        "transaction.max.timeout.ms" => ms(c.transaction_max_timeout),
        "max.connections.per.ip" => c.max_connections_per_ip.to_string(),
        _ => return None,
    })
}

/// Settings that are the node's own whatever their value (Kafka reports them as
/// STATIC_BROKER_CONFIG: every node sets them).
const ALWAYS_STATIC: &[&str] = &["node.id", "broker.id", "log.dirs", "advertised.listeners"];

/// A custom config (a name tierlog does not know): stored, reported without its value.
fn custom(name: &str, source: ConfigSource) -> Described {
    Described {
        name: name.to_owned(),
        value: None,
        source,
        read_only: true,
        sensitive: true,
        kind: None,
        doc: "",
        synonyms: vec![(name.to_owned(), None, source)],
    }
}

impl DynamicConfigs {
    /// DescribeConfigs of this node: each setting's value in force and every level that sets
    /// it, and the custom configs stored for it.
    pub(crate) fn describe_node(&self, c: &NodeConfig, id: &Identity) -> Vec<Described> {
        let node = self.values(&ConfigResource::Broker(Some(self.statics.node_id)));
        let cluster = self.values(&ConfigResource::Broker(None));
        let mut out: Vec<Described> = BROKER_CONFIGS
            .iter()
            .map(|d| {
                let mut levels = self.dynamic_levels(d.name);
                if let Some(v) = static_value(d.name, c, id)
                    .filter(|v| ALWAYS_STATIC.contains(&d.name) || Some(v.as_str()) != d.default)
                {
                    levels.push((d.name.to_owned(), Some(v), ConfigSource::StaticBroker));
                }
                if let Some(v) = d.default {
                    levels.push((d.name.to_owned(), Some(v.to_owned()), ConfigSource::Default));
                }
                if let Some((name, v)) = d.fallback.filter(|_| !levels.is_empty()) {
                    levels.push((name.to_owned(), Some(v.to_owned()), ConfigSource::Default));
                }
                let (value, source) = levels
                    .first()
                    .map_or((None, ConfigSource::Default), |(_, v, s)| (v.clone(), *s));
                Described {
                    name: d.name.to_owned(),
                    value,
                    source,
                    read_only: d.topic.is_none(),
                    sensitive: false,
                    kind: Some(d.kind),
                    doc: if d.topic.is_some() {
                        "node-level default of the topic config (dynamic)"
                    } else {
                        "node setting (read-only: the config file, env or flags)"
                    },
                    synonyms: levels,
                }
            })
            .collect();
        for (name, source) in node.keys().map(|n| (n, ConfigSource::DynamicBroker)).chain(
            cluster
                .keys()
                .map(|n| (n, ConfigSource::DynamicDefaultBroker)),
        ) {
            if broker_def(name).is_none() && !out.iter().any(|d| d.name == *name) {
                out.push(custom(name, source));
            }
        }
        out
    }

    /// The dynamic levels that set node config `name` for this node, most specific first:
    /// this node's value, then the cluster default.
    fn dynamic_levels(&self, name: &str) -> Vec<(String, Option<String>, ConfigSource)> {
        [
            (Some(self.statics.node_id), ConfigSource::DynamicBroker),
            (None, ConfigSource::DynamicDefaultBroker),
        ]
        .into_iter()
        .filter_map(|(node, source)| {
            let v = self.values(&ConfigResource::Broker(node)).remove(name)?;
            Some((name.to_owned(), Some(v), source))
        })
        .collect()
    }

    /// The node-level synonyms of topic config `topic` (Kafka's broker name for it), most
    /// specific first, when a dynamic config sets it for this node or the cluster; `None`
    /// otherwise.
    pub(crate) fn topic_synonyms(
        &self,
        topic: &str,
    ) -> Option<Vec<(String, Option<String>, ConfigSource)>> {
        let d = BROKER_CONFIGS.iter().find(|d| d.topic == Some(topic))?;
        let mut out = self.dynamic_levels(d.name);
        if out.is_empty() {
            return None;
        }
        let fallback = d.fallback.map(|(name, v)| (name, Some(v)));
        if let Some((name, v)) = d.default.map(|v| (d.name, Some(v))).or(fallback) {
            out.push((name.to_owned(), v.map(str::to_owned), ConfigSource::Default));
        }
        Some(out)
    }

    /// DescribeConfigs of the cluster-wide default (the broker resource named ""): only what
    /// is set there, as Kafka reports it.
    pub(crate) fn describe_cluster_default(&self) -> Vec<Described> {
        let source = ConfigSource::DynamicDefaultBroker;
        self.values(&ConfigResource::Broker(None))
            .into_iter()
            .map(|(name, v)| match broker_def(&name) {
                Some(d) => Described {
                    synonyms: vec![(name.clone(), Some(v.clone()), source)],
                    name,
                    value: Some(v),
                    source,
                    read_only: false,
                    sensitive: false,
                    kind: Some(d.kind),
                    doc: "node-level default of the topic config (dynamic)",
                },
                None => custom(&name, source),
            })
            .collect()
    }
}

/// Checks that every name a change of a node's configs touches may change at run time:
/// Kafka's INVALID_REQUEST "Cannot update these configs dynamically: [...]" names the
/// read-only ones.
pub(crate) fn check_broker_names<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<()> {
    let fixed: Vec<&str> = names
        .into_iter()
        .filter(|n| broker_def(n).is_some_and(|d| d.topic.is_none()))
        .collect();
    if fixed.is_empty() {
        Ok(())
    } else {
        Err(Error::InvalidRequest(format!(
            "Cannot update these configs dynamically: [{}]",
            fixed.join(", ")
        )))
    }
}

/// Checks one dynamic node config value (as its topic config's); a custom name is kept as
/// given. A bad value is INVALID_REQUEST, as Kafka answers for broker resources.
pub(crate) fn check_broker_value(name: &str, value: &str) -> Result<String> {
    match broker_def(name).and_then(|d| d.topic) {
        Some(topic) => topic_config::validate(topic, value).map_err(|e| {
            Error::InvalidRequest(format!(
                "Invalid value {value} for configuration {name}: {e}"
            ))
        }),
        None => Ok(value.to_owned()),
    }
}

/// Whether a node config is a list (APPEND/SUBTRACT apply to it), and its value in force
/// before a change, given the stored values.
pub(crate) fn broker_list_value(values: &BTreeMap<String, String>, name: &str) -> Option<String> {
    let d = broker_def(name).filter(|d| d.kind == ConfigType::List && d.topic.is_some())?;
    Some(
        values
            .get(name)
            .cloned()
            .or(d.default.map(str::to_owned))
            .unwrap_or_default(),
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn configs() -> DynamicConfigs {
        DynamicConfigs::new(
            None,
            StaticSettings {
                node_id: 1,
                min_insync_replicas: 2,
                ..StaticSettings::default()
            },
        )
    }

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn node_configs_win_over_the_cluster_default_over_the_static_setting() {
        let c = configs();
        assert_eq!(c.min_insync_replicas(), 2);
        let d = c.topic_defaults();
        assert_eq!(
            d.get("min.insync.replicas"),
            Some(&("2".to_owned(), ConfigSource::StaticBroker))
        );
        assert!(c.set(
            ConfigResource::Broker(None),
            map(&[("log.retention.ms", "5000"), ("min.insync.replicas", "3")]),
        ));
        assert_eq!(c.min_insync_replicas(), 3);
        assert!(c.set(
            ConfigResource::Broker(Some(1)),
            map(&[("log.retention.ms", "1000")]),
        ));
        // Another node's configs are not this node's.
        assert!(!c.set(
            ConfigResource::Broker(Some(2)),
            map(&[("log.retention.ms", "7")]),
        ));
        let d = c.topic_defaults();
        assert_eq!(
            d.get("retention.ms"),
            Some(&("1000".to_owned(), ConfigSource::DynamicBroker))
        );
        assert_eq!(
            d.get("min.insync.replicas"),
            Some(&("3".to_owned(), ConfigSource::DynamicDefaultBroker))
        );
    }

    #[test]
    fn group_configs_fall_back_to_the_node_and_are_bounded() {
        let c = configs();
        assert_eq!(
            c.group_timing("g"),
            (Duration::from_secs(45), Duration::from_secs(5))
        );
        c.set(
            ConfigResource::Group("g".into()),
            map(&[(GROUP_SESSION_TIMEOUT, "50000")]),
        );
        assert_eq!(c.group_timing("g").0, Duration::from_secs(50));
        assert_eq!(c.group_timing("other").0, Duration::from_secs(45));
        let code = |r: Result<String>| r.unwrap_err().kafka_code();
        let invalid_config = kafka_protocol::ResponseError::InvalidConfig.code();
        assert_eq!(
            code(c.check_group_value(GROUP_SESSION_TIMEOUT, "1000")),
            invalid_config
        );
        assert_eq!(
            code(c.check_group_value(GROUP_SESSION_TIMEOUT, "70000")),
            invalid_config
        );
        assert_eq!(
            code(c.check_group_value(GROUP_HEARTBEAT_INTERVAL, "abc")),
            invalid_config
        );
        assert_eq!(
            c.check_group_value(GROUP_HEARTBEAT_INTERVAL, "14000")
                .unwrap(),
            "14000"
        );
        assert!(c.check_group_name("nope.config").is_err());
        let described = c.describe_group("g");
        assert_eq!(described[0].value.as_deref(), Some("50000"));
        assert_eq!(described[0].source, ConfigSource::Group);
        assert_eq!(described[1].value.as_deref(), Some("5000"));
        assert_eq!(described[1].source, ConfigSource::Default);
    }

    #[test]
    fn read_only_node_settings_are_refused_and_values_checked() {
        let invalid_request = kafka_protocol::ResponseError::InvalidRequest.code();
        let e = check_broker_names(["log.retention.ms", "node.id", "broker.rack"]).unwrap_err();
        assert_eq!(e.kafka_code(), invalid_request);
        assert!(e.to_string().contains("[node.id, broker.rack]"), "{e}");
        assert!(check_broker_names(["log.retention.ms", "custom.thing"]).is_ok());
        assert_eq!(
            check_broker_value("log.retention.ms", "abc")
                .unwrap_err()
                .kafka_code(),
            invalid_request
        );
        assert_eq!(check_broker_value("custom.thing", "x").unwrap(), "x");
        assert_eq!(
            broker_list_value(&BTreeMap::new(), "log.cleanup.policy").as_deref(),
            Some("delete")
        );
    }
}
