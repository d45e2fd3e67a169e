//! DescribeConfigs, IncrementalAlterConfigs and the legacy AlterConfigs for topics (resource
//! type 2), nodes (type 4: this node's id, or "" for the cluster-wide default; the dynamic
//! ones are the node-level defaults of topic configs, the rest read-only) and consumer groups
//! (type 32, KIP-848's per-group `consumer.session.timeout.ms` and
//! `consumer.heartbeat.interval.ms`). Node and group configs are kept in the metadata store
//! (`crate::dynamic_config`).
//!
//! Both alter APIs turn each resource into one [`Change`] and share the checks, validation and
//! storage: IncrementalAlterConfigs applies its operations to the current values;
//! AlterConfigs replaces the values with exactly the configs it names. A [`Schema`] says what
//! each resource type accepts.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{
    AlterConfigsRequest, AlterConfigsResponse, DescribeConfigsRequest, DescribeConfigsResponse,
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse, alter_configs_response,
};
use tracing::info;

use super::RequestContext;
use crate::broker::Identity;
use crate::config::NodeConfig;
use crate::dynamic_config::{self, Described, DynamicConfigs};
use crate::error::{Error, Result};
use crate::host::Host;
use crate::protocol::str_bytes;
use crate::topic_config::{self, ConfigType};
use tierlog_metadata::{AclOperation, ConfigResource};

const TOPIC: i8 = 2;
const BROKER: i8 = 4;
/// Kafka's ConfigResource type GROUP (KIP-848 group configs).
const GROUP: i8 = 32;
/// Kafka's ConfigResource type BROKER_LOGGER.
const BROKER_LOGGER: i8 = 8;

pub(super) fn describe(
    ctx: &RequestContext<'_>,
    h: &Host,
    id: &Identity,
    config: &NodeConfig,
    body: DescribeConfigsRequest,
) -> DescribeConfigsResponse {
    let inc = Include {
        synonyms: body.include_synonyms,
        documentation: body.include_documentation,
    };
    let results = body
        .resources
        .into_iter()
        .map(|r| {
            let mut out = DescribeConfigsResult::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone());
            if let Err(e) = authorize(
                ctx,
                r.resource_type,
                r.resource_name.as_str(),
                AclOperation::DescribeConfigs,
            ) {
                out.error_code = e.kafka_code();
                out.error_message = Some(e.message());
                return out;
            }
            let keys = r.configuration_keys.as_ref();
            let wanted = |name: &str| {
                keys.is_none_or(|k| k.is_empty() || k.iter().any(|x| x.as_str() == name))
            };
            let name = r.resource_name.as_str();
            let described = match r.resource_type {
                TOPIC => match h.partitions.topic(name) {
                    Some(t) => {
                        let node = h.dynamic.topic_defaults();
                        Ok(topic_config::TOPIC_CONFIGS
                            .iter()
                            .map(|d| {
                                let (value, source) =
                                    topic_config::resolve(&t.meta.configs, d, &node);
                                // Kafka lists the node-level levels of an inherited value.
                                let mut synonyms =
                                    h.dynamic.topic_synonyms(d.name).unwrap_or_else(|| {
                                        vec![(d.name.to_owned(), Some(value.clone()), source)]
                                    });
                                if let Some(v) = t.meta.configs.get(d.name)
                                    && synonyms[0].2 != topic_config::ConfigSource::Topic
                                {
                                    synonyms
                                        .insert(0, (d.name.to_owned(), Some(v.clone()), source));
                                }
                                Described {
                                    name: d.name.to_owned(),
                                    value: Some(value.clone()),
                                    source,
                                    read_only: false,
                                    sensitive: false,
                                    kind: Some(d.kind),
                                    doc: d.doc,
                                    synonyms,
                                }
                            })
                            .collect())
                    }
                    None => Err(Error::UnknownTopicOrPartition(name.to_owned())),
                },
                BROKER => {
                    let node = h.node_id.to_string();
                    if name.is_empty() {
                        Ok(h.dynamic.describe_cluster_default())
                    } else if name == node {
                        Ok(h.dynamic.describe_node(config, id))
                    } else {
                        Err(Error::InvalidRequest(format!("this is node {node}")))
                    }
                }
                GROUP => Ok(h.dynamic.describe_group(name)),
                other => Err(Error::InvalidRequest(format!(
                    "resource type {other} is not supported"
                ))),
            };
            match described {
                Ok(configs) => {
                    out.configs = configs
                        .into_iter()
                        .filter(|d| wanted(&d.name))
                        .map(|d| entry(ctx, &inc, d))
                        .collect();
                }
                Err(e) => {
                    out.error_code = e.kafka_code();
                    out.error_message = Some(e.message());
                }
            }
            out
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

/// What the request asked to include with each config.
struct Include {
    synonyms: bool,
    documentation: bool,
}

/// One config of a DescribeConfigs answer, with its synonyms and documentation if asked.
fn entry(ctx: &RequestContext<'_>, inc: &Include, d: Described) -> DescribeConfigsResourceResult {
    let mut e = DescribeConfigsResourceResult::default()
        .with_name(str_bytes(&d.name))
        .with_value(d.value.as_deref().map(str_bytes))
        .with_read_only(d.read_only)
        .with_config_source(d.source.code())
        .with_is_sensitive(d.sensitive);
    if inc.synonyms {
        e.synonyms = d
            .synonyms
            .iter()
            .map(|(name, value, source)| {
                DescribeConfigsSynonym::default()
                    .with_name(str_bytes(name))
                    .with_value(value.as_deref().map(str_bytes))
                    .with_source(source.code())
            })
            .collect();
    }
    // Null unless asked for (the codec's default would be an empty string).
    e.documentation = None;
    if ctx.version() >= 3 {
        e.config_type = d.kind.map_or(0, ConfigType::code);
        if inc.documentation {
            e.documentation = Some(str_bytes(d.doc));
        }
    }
    e
}

pub(super) async fn incremental_alter(
    ctx: &RequestContext<'_>,
    h: &Arc<Host>,
    body: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let changes = body
        .resources
        .iter()
        .map(|r| Change {
            resource_type: r.resource_type,
            resource_name: r.resource_name.to_string(),
            replace: false,
            ops: r
                .configs
                .iter()
                .map(|c| {
                    (
                        c.name.to_string(),
                        c.config_operation,
                        c.value.as_ref().map(|v| v.to_string()),
                    )
                })
                .collect(),
        })
        .collect();
    let outcomes = alter_all(ctx, h, changes, body.validate_only).await;
    let responses = body
        .resources
        .into_iter()
        .zip(outcomes)
        .map(|(r, outcome)| {
            let (code, message) = wire_outcome(outcome);
            AlterConfigsResourceResponse::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name)
                .with_error_code(code)
                .with_error_message(message)
        })
        .collect();
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}

/// The legacy AlterConfigs: each resource's configs become its complete set of overrides
/// (a config not named reverts to its default), validated exactly as IncrementalAlterConfigs
/// validates a SET of each.
pub(super) async fn alter(
    ctx: &RequestContext<'_>,
    h: &Arc<Host>,
    body: AlterConfigsRequest,
) -> AlterConfigsResponse {
    let changes = body
        .resources
        .iter()
        .map(|r| Change {
            resource_type: r.resource_type,
            resource_name: r.resource_name.to_string(),
            replace: true,
            ops: r
                .configs
                .iter()
                .map(|c| {
                    (
                        c.name.to_string(),
                        OP_SET,
                        c.value.as_ref().map(|v| v.to_string()),
                    )
                })
                .collect(),
        })
        .collect();
    let outcomes = alter_all(ctx, h, changes, body.validate_only).await;
    let responses = body
        .resources
        .into_iter()
        .zip(outcomes)
        .map(|(r, outcome)| {
            let (code, message) = wire_outcome(outcome);
            alter_configs_response::AlterConfigsResourceResponse::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name)
                .with_error_code(code)
                .with_error_message(message)
        })
        .collect();
    AlterConfigsResponse::default().with_responses(responses)
}

/// The error code and message of one resource's outcome: no message on success (null, as
/// Kafka sends it; the codec's default would be an empty string).
fn wire_outcome(outcome: Result<()>) -> (i16, Option<kafka_protocol::protocol::StrBytes>) {
    match outcome {
        Ok(()) => (0, None),
        Err(e) => (e.kafka_code(), Some(e.message())),
    }
}

const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
const OP_APPEND: i8 = 2;
const OP_SUBTRACT: i8 = 3;

/// One resource of either alter API, in the form both share.
#[derive(Debug)]
struct Change {
    resource_type: i8,
    resource_name: String,
    /// AlterConfigs: `ops` (all SETs) start from no overrides instead of the current ones.
    replace: bool,
    /// (name, operation, value), applied in order.
    ops: Vec<(String, i8, Option<String>)>,
}

impl Change {
    /// The values after this change, given the current ones.
    fn apply(
        &self,
        current: &BTreeMap<String, String>,
        schema: &dyn Schema,
    ) -> Result<BTreeMap<String, String>> {
        if self.replace {
            apply_ops(&BTreeMap::new(), &self.ops, schema)
        } else {
            apply_ops(current, &self.ops, schema)
        }
    }

    /// What Kafka's brokers refuse before looking at the resource (`ConfigAdminManager`):
    /// a config named twice, and a missing value for anything but DELETE.
    fn check_shape(&self) -> Result<()> {
        let mut seen = HashSet::new();
        if self
            .ops
            .iter()
            .any(|(name, _, _)| !seen.insert(name.as_str()))
        {
            return Err(Error::InvalidRequest(format!(
                "`{}`: a config is named more than once",
                self.resource_name
            )));
        }
        let nulls: Vec<&str> = self
            .ops
            .iter()
            .filter(|(_, op, value)| *op != OP_DELETE && value.is_none())
            .map(|(name, _, _)| name.as_str())
            .collect();
        if !nulls.is_empty() {
            return Err(Error::InvalidRequest(format!(
                "`{}`: null value not supported for {}",
                self.resource_name,
                nulls.join(", ")
            )));
        }
        Ok(())
    }
}

/// Runs every change of one request in order; a resource named twice fails both times, as in
/// Kafka, and nothing of it is applied.
async fn alter_all(
    ctx: &RequestContext<'_>,
    h: &Arc<Host>,
    changes: Vec<Change>,
    validate_only: bool,
) -> Vec<Result<()>> {
    let mut count: HashMap<(i8, &str), usize> = HashMap::new();
    for c in &changes {
        *count
            .entry((c.resource_type, c.resource_name.as_str()))
            .or_default() += 1;
    }
    let duplicated: Vec<bool> = changes
        .iter()
        .map(|c| count[&(c.resource_type, c.resource_name.as_str())] > 1)
        .collect();
    let mut outcomes = Vec::with_capacity(changes.len());
    for (c, dup) in changes.iter().zip(duplicated) {
        outcomes.push(if dup {
            Err(Error::InvalidRequest(format!(
                "`{}`: each resource must appear at most once",
                c.resource_name
            )))
        } else if let Err(e) = authorize(
            ctx,
            c.resource_type,
            &c.resource_name,
            AclOperation::AlterConfigs,
        ) {
            Err(e)
        } else {
            alter_one(h, c, validate_only).await
        });
    }
    outcomes
}

/// Kafka's config authorization: `op` (DESCRIBE_CONFIGS or ALTER_CONFIGS) on the topic or
/// group, or on the cluster for node (broker) configs. Other resource types are left to the
/// handlers, which refuse them.
fn authorize(
    ctx: &RequestContext<'_>,
    resource_type: i8,
    name: &str,
    op: AclOperation,
) -> Result<()> {
    match resource_type {
        TOPIC if !ctx.topic(op, name) => Err(Error::TopicAuthorizationFailed(name.to_owned())),
        GROUP if !ctx.group(op, name) => Err(Error::GroupAuthorizationFailed(name.to_owned())),
        BROKER | BROKER_LOGGER if !ctx.cluster(op) => Err(Error::ClusterAuthorizationFailed(
            format!("{op} on the cluster"),
        )),
        _ => Ok(()),
    }
}

async fn alter_one(h: &Arc<Host>, c: &Change, validate_only: bool) -> Result<()> {
    c.check_shape()?;
    match c.resource_type {
        TOPIC => alter_topic(h, c, validate_only).await,
        GROUP => {
            if c.resource_name.is_empty() {
                return Err(Error::InvalidRequest(
                    "Default group resources are not allowed.".into(),
                ));
            }
            let resource = ConfigResource::Group(c.resource_name.clone());
            alter_dynamic(h, resource, c, &GroupSchema(&h.dynamic), validate_only).await
        }
        BROKER => {
            let node = h.node_id;
            let resource = match c.resource_name.as_str() {
                "" => ConfigResource::Broker(None),
                n if n == node.to_string() => ConfigResource::Broker(Some(node)),
                n => {
                    return Err(Error::InvalidRequest(format!(
                        "Unexpected broker id, expected {node}, but received {n}"
                    )));
                }
            };
            dynamic_config::check_broker_names(c.ops.iter().map(|(n, _, _)| n.as_str()))?;
            alter_dynamic(h, resource, c, &BrokerSchema, validate_only).await
        }
        other => Err(Error::InvalidRequest(format!(
            "resource type {other} is not supported"
        ))),
    }
}

/// What a resource type's configs accept.
trait Schema: Sync {
    /// Checks a name any operation names.
    fn check_name(&self, name: &str) -> Result<()>;
    /// Checks a value to set; returns it as stored.
    fn check_value(&self, name: &str, value: &str) -> Result<String>;
    /// For a list config, its value in force given the current values (what APPEND and
    /// SUBTRACT start from); `None` if it is not a list.
    fn list_value(&self, values: &BTreeMap<String, String>, name: &str) -> Option<String>;
}

/// Topic configs ([`topic_config`]).
struct TopicSchema;

impl Schema for TopicSchema {
    fn check_name(&self, name: &str) -> Result<()> {
        topic_config::lookup(name)
            .map(|_| ())
            .ok_or_else(|| Error::InvalidConfig(format!("unknown topic config `{name}`")))
    }
    fn check_value(&self, name: &str, value: &str) -> Result<String> {
        topic_config::validate(name, value)
    }
    fn list_value(&self, values: &BTreeMap<String, String>, name: &str) -> Option<String> {
        topic_config::lookup(name)
            .filter(|d| d.kind == ConfigType::List)
            .map(|d| topic_config::effective(values, d).to_owned())
    }
}

/// A consumer group's configs.
struct GroupSchema<'a>(&'a DynamicConfigs);

impl Schema for GroupSchema<'_> {
    fn check_name(&self, name: &str) -> Result<()> {
        self.0.check_group_name(name)
    }
    fn check_value(&self, name: &str, value: &str) -> Result<String> {
        self.0.check_group_value(name, value)
    }
    fn list_value(&self, _: &BTreeMap<String, String>, _: &str) -> Option<String> {
        None
    }
}

/// A node's dynamic configs (read-only names are refused before, all at once).
struct BrokerSchema;

impl Schema for BrokerSchema {
    fn check_name(&self, _: &str) -> Result<()> {
        Ok(())
    }
    fn check_value(&self, name: &str, value: &str) -> Result<String> {
        dynamic_config::check_broker_value(name, value)
    }
    fn list_value(&self, values: &BTreeMap<String, String>, name: &str) -> Option<String> {
        dynamic_config::broker_list_value(values, name)
    }
}

/// Validates `c` against the resource's current values and stores the result in the
/// metadata store unless `validate_only`, then puts it in force on this node at once (the
/// others follow their watch). Applied inside the store's compare-and-swap, so a concurrent
/// change from another node is re-read and kept rather than overwritten.
async fn alter_dynamic(
    h: &Arc<Host>,
    resource: ConfigResource,
    c: &Change,
    schema: &dyn Schema,
    validate_only: bool,
) -> Result<()> {
    c.apply(&h.dynamic.values(&resource), schema)?;
    if validate_only {
        return Ok(());
    }
    let Some(registry) = h.dynamic.registry() else {
        return Err(Error::Internal(
            "no metadata store for dynamic configs".into(),
        ));
    };
    let mut refused = None;
    let written = registry
        .update(&resource, |current| {
            c.apply(current, schema).map_err(|e| {
                let message = e.to_string();
                refused = Some(e);
                tierlog_metadata::Error::invalid(message)
            })
        })
        .await;
    let written = match written {
        Ok(w) => w,
        Err(e) => return Err(refused.unwrap_or(Error::Metadata(e))),
    };
    if h.dynamic.set(resource.clone(), written) {
        dynamic_config::apply(h);
    }
    info!(%resource, "dynamic configs changed");
    Ok(())
}

/// Applies SET (0), DELETE (1), APPEND (2) and SUBTRACT (3) to a copy of the values and
/// validates the result against `schema`.
fn apply_ops(
    current: &BTreeMap<String, String>,
    ops: &[(String, i8, Option<String>)],
    schema: &dyn Schema,
) -> Result<BTreeMap<String, String>> {
    let mut next = current.clone();
    for (name, op, value) in ops {
        schema.check_name(name)?;
        match *op {
            OP_SET => {
                let v = value
                    .as_deref()
                    .ok_or_else(|| Error::InvalidConfig(format!("SET `{name}` without a value")))?;
                next.insert(name.clone(), schema.check_value(name, v)?);
            }
            OP_DELETE => {
                next.remove(name);
            }
            OP_APPEND | OP_SUBTRACT => {
                let Some(list) = schema.list_value(&next, name) else {
                    return Err(Error::InvalidConfig(format!(
                        "`{name}` is not a list; APPEND/SUBTRACT need a list config"
                    )));
                };
                let v = value.as_deref().unwrap_or("");
                let mut items: Vec<String> = list
                    .split(',')
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty())
                    .collect();
                for item in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    if *op == OP_APPEND && !items.iter().any(|i| i == item) {
                        items.push(item.to_owned());
                    } else if *op == OP_SUBTRACT {
                        items.retain(|i| i != item);
                    }
                }
                next.insert(name.clone(), schema.check_value(name, &items.join(","))?);
            }
            other => {
                return Err(Error::InvalidRequest(format!(
                    "unknown config operation {other}"
                )));
            }
        }
    }
    Ok(next)
}

/// Validates `c` against the topic's overrides and stores the result unless `validate_only`.
///
/// As in Kafka's controller, the new configs are validated before the topic's existence is
/// checked: a bad value for a missing topic is INVALID_CONFIG. The change is applied inside
/// the metadata store's compare-and-swap, so a concurrent change from another node is
/// re-read and kept rather than overwritten.
async fn alter_topic(h: &Arc<Host>, c: &Change, validate_only: bool) -> Result<()> {
    let name = c.resource_name.as_str();
    let _admin = h.admin.lock().await;
    let current = h.topics.get(name).await?;
    let overrides = current
        .as_ref()
        .map(|m| m.configs.clone())
        .unwrap_or_default();
    topic_config::check_floors(
        &c.apply(&overrides, &TopicSchema)?,
        h.defaults.min_segment_bytes,
    )?;
    if current.is_none() {
        return Err(Error::UnknownTopicOrPartition(name.to_owned()));
    }
    if validate_only {
        return Ok(());
    }
    // `update` may re-run the closure after a conflict; the first refusal is kept to return
    // it with its own code.
    let mut refused = None;
    let updated = h
        .topics
        .update(name, |m| match c.apply(&m.configs, &TopicSchema) {
            Ok(next) => {
                m.configs = next;
                Ok(())
            }
            Err(e) => {
                let message = e.to_string();
                refused = Some(e);
                Err(tierlog_metadata::Error::invalid(message))
            }
        })
        .await;
    let meta = match updated {
        Ok(meta) => meta,
        Err(e) => return Err(refused.unwrap_or(Error::Metadata(e))),
    };
    // Only the configs changed: which partitions are open here stays as it is.
    h.partitions
        .install(meta, |_| crate::partition::Want::Keep)
        .await?;
    info!(topic = %name, "topic configs changed");
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use kafka_protocol::ResponseError;

    fn apply_ops_t(
        current: &BTreeMap<String, String>,
        ops: &[(String, i8, Option<String>)],
    ) -> Result<BTreeMap<String, String>> {
        apply_ops(current, ops, &TopicSchema)
    }

    fn op(name: &str, op: i8, v: Option<&str>) -> (String, i8, Option<String>) {
        (name.to_owned(), op, v.map(str::to_owned))
    }

    #[test]
    fn set_delete_append_subtract() {
        let cur = BTreeMap::from([("retention.ms".to_owned(), "1000".to_owned())]);
        let next = apply_ops_t(
            &cur,
            &[
                op("retention.ms", 1, None),
                op("segment.bytes", 0, Some("4096")),
                op("cleanup.policy", 2, Some("compact")),
            ],
        )
        .unwrap();
        assert!(!next.contains_key("retention.ms"));
        assert_eq!(next["segment.bytes"], "4096");
        assert_eq!(next["cleanup.policy"], "delete,compact");
        let next = apply_ops_t(&next, &[op("cleanup.policy", 3, Some("delete"))]).unwrap();
        assert_eq!(next["cleanup.policy"], "compact");
    }

    fn change(replace: bool, ops: &[(&str, i8, Option<&str>)]) -> Change {
        Change {
            resource_type: TOPIC,
            resource_name: "t".to_owned(),
            replace,
            ops: ops.iter().map(|(n, o, v)| op(n, *o, *v)).collect(),
        }
    }

    #[test]
    fn replace_reverts_what_it_does_not_name() {
        let cur = BTreeMap::from([
            ("retention.ms".to_owned(), "1000".to_owned()),
            ("segment.bytes".to_owned(), "4096".to_owned()),
        ]);
        let next = change(true, &[("segment.bytes", OP_SET, Some("8192"))])
            .apply(&cur, &TopicSchema)
            .unwrap();
        assert_eq!(
            next,
            BTreeMap::from([("segment.bytes".to_owned(), "8192".to_owned())])
        );
        assert!(
            change(true, &[])
                .apply(&cur, &TopicSchema)
                .unwrap()
                .is_empty()
        );
        // The incremental form of the same SET keeps the rest.
        let next = change(false, &[("segment.bytes", OP_SET, Some("8192"))])
            .apply(&cur, &TopicSchema)
            .unwrap();
        assert_eq!(next["retention.ms"], "1000");
    }

    #[test]
    fn replace_and_incremental_refuse_the_same_sets_with_the_same_code() {
        let cur = BTreeMap::new();
        for (name, value) in [
            ("nope", "1"),
            ("retention.ms", "soon"),
            ("cleanup.policy", "sometimes"),
            ("min.insync.replicas", "0"),
        ] {
            let legacy = change(true, &[(name, OP_SET, Some(value))]).apply(&cur, &TopicSchema);
            let incremental =
                change(false, &[(name, OP_SET, Some(value))]).apply(&cur, &TopicSchema);
            let (legacy, incremental) = (legacy.unwrap_err(), incremental.unwrap_err());
            assert_eq!(
                legacy.kafka_code(),
                incremental.kafka_code(),
                "{name}={value}"
            );
            assert_eq!(legacy.kafka_code(), ResponseError::InvalidConfig.code());
        }
    }

    #[test]
    fn duplicate_names_and_missing_values_are_invalid_requests() {
        let invalid_request = ResponseError::InvalidRequest.code();
        for replace in [true, false] {
            let dup = change(
                replace,
                &[
                    ("retention.ms", OP_SET, Some("1")),
                    ("retention.ms", OP_SET, Some("2")),
                ],
            );
            assert_eq!(dup.check_shape().unwrap_err().kafka_code(), invalid_request);
            let null = change(replace, &[("retention.ms", OP_SET, None)]);
            assert_eq!(
                null.check_shape().unwrap_err().kafka_code(),
                invalid_request
            );
        }
        let append_null = change(false, &[("cleanup.policy", OP_APPEND, None)]);
        assert!(append_null.check_shape().is_err());
        let delete = change(false, &[("retention.ms", OP_DELETE, None)]);
        assert!(delete.check_shape().is_ok());
    }

    #[test]
    fn bad_ops_are_refused() {
        let cur = BTreeMap::new();
        assert!(apply_ops_t(&cur, &[op("nope", 0, Some("1"))]).is_err());
        assert!(apply_ops_t(&cur, &[op("retention.ms", 0, None)]).is_err());
        assert!(apply_ops_t(&cur, &[op("retention.ms", 2, Some("5"))]).is_err());
        assert!(apply_ops_t(&cur, &[op("retention.ms", 9, Some("5"))]).is_err());
        assert!(apply_ops_t(&cur, &[op("cleanup.policy", 3, Some("delete"))]).is_err());
    }
}
