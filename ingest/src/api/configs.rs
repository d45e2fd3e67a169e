//! DescribeConfigs and IncrementalAlterConfigs for topics (resource type 2) and this node
//! (resource type 4, read-only: node settings come from its config file, env and flags).

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{
    DescribeConfigsRequest, DescribeConfigsResponse, IncrementalAlterConfigsRequest,
    IncrementalAlterConfigsResponse,
};
use tracing::info;

use super::str_bytes;
use crate::error::{Error, Result};
use crate::node::Broker;
use crate::protocol::Request;
use crate::topic_config::{self, ConfigType};

const TOPIC: i8 = 2;
const BROKER: i8 = 4;
/// DescribeConfigs config sources.
const SOURCE_TOPIC: i8 = 1;
const SOURCE_STATIC_BROKER: i8 = 4;
const SOURCE_DEFAULT: i8 = 5;

pub(super) fn describe(
    b: &Broker,
    req: &Request,
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
            let keys = r.configuration_keys.as_ref();
            let wanted = |name: &str| {
                keys.is_none_or(|k| k.is_empty() || k.iter().any(|x| x.as_str() == name))
            };
            match r.resource_type {
                TOPIC => match b.partitions.topic(r.resource_name.as_str()) {
                    Some(t) => {
                        out.configs = topic_config::TOPIC_CONFIGS
                            .iter()
                            .filter(|d| wanted(d.name))
                            .map(|d| {
                                let value = topic_config::effective(&t.meta.configs, d);
                                let source = if t.meta.configs.contains_key(d.name) {
                                    SOURCE_TOPIC
                                } else {
                                    SOURCE_DEFAULT
                                };
                                entry(req, &inc, d.name, value, source, d.kind, d.doc, false)
                            })
                            .collect();
                    }
                    None => {
                        let e = Error::UnknownTopicOrPartition(r.resource_name.to_string());
                        out.error_code = e.kafka_code();
                        out.error_message = Some(e.message());
                    }
                },
                BROKER => {
                    let node = b.node_id.to_string();
                    if !r.resource_name.is_empty() && r.resource_name.as_str() != node {
                        out.error_code = ResponseError::InvalidRequest.code();
                        out.error_message = Some(str_bytes(&format!("this is node {node}")));
                    } else {
                        out.configs = broker_configs(b)
                            .into_iter()
                            .filter(|(n, _, _)| wanted(n))
                            .map(|(n, v, kind)| {
                                entry(
                                    req,
                                    &inc,
                                    n,
                                    &v,
                                    SOURCE_STATIC_BROKER,
                                    kind,
                                    "node setting (read-only)",
                                    true,
                                )
                            })
                            .collect();
                    }
                }
                other => {
                    out.error_code = ResponseError::InvalidRequest.code();
                    out.error_message = Some(str_bytes(&format!(
                        "resource type {other} is not supported"
                    )));
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

#[allow(clippy::too_many_arguments)]
fn entry(
    req: &Request,
    inc: &Include,
    name: &str,
    value: &str,
    source: i8,
    kind: ConfigType,
    doc: &str,
    read_only: bool,
) -> DescribeConfigsResourceResult {
    let mut e = DescribeConfigsResourceResult::default()
        .with_name(str_bytes(name))
        .with_value(Some(str_bytes(value)))
        .with_read_only(read_only)
        .with_config_source(source)
        .with_is_sensitive(false);
    if inc.synonyms {
        e.synonyms = vec![
            DescribeConfigsSynonym::default()
                .with_name(str_bytes(name))
                .with_value(Some(str_bytes(value)))
                .with_source(source),
        ];
    }
    if req.version >= 3 {
        e.config_type = kind.code();
        if inc.documentation {
            e.documentation = Some(str_bytes(doc));
        }
    }
    e
}

fn broker_configs(b: &Broker) -> Vec<(&'static str, String, ConfigType)> {
    let c = &b.config;
    vec![
        ("node.id", c.node_id.to_string(), ConfigType::Int),
        ("broker.id", c.node_id.to_string(), ConfigType::Int),
        (
            "auto.create.topics.enable",
            c.auto_create_topics.to_string(),
            ConfigType::Boolean,
        ),
        (
            "num.partitions",
            c.default_partitions.to_string(),
            ConfigType::Int,
        ),
        (
            "socket.request.max.bytes",
            c.max_frame_bytes.to_string(),
            ConfigType::Int,
        ),
        (
            "log.dirs",
            c.data_dir.display().to_string(),
            ConfigType::String,
        ),
        (
            "advertised.listeners",
            format!("PLAINTEXT://{}:{}", b.advertised_host, b.advertised_port),
            ConfigType::String,
        ),
        (
            "default.replication.factor",
            "1".to_owned(),
            ConfigType::Int,
        ),
    ]
}

pub(super) async fn incremental_alter(
    b: &Arc<Broker>,
    _req: &Request,
    body: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let mut responses = Vec::with_capacity(body.resources.len());
    for r in body.resources {
        let mut out = AlterConfigsResourceResponse::default()
            .with_resource_type(r.resource_type)
            .with_resource_name(r.resource_name.clone());
        let outcome = match r.resource_type {
            TOPIC => {
                let ops: Vec<(String, i8, Option<String>)> = r
                    .configs
                    .iter()
                    .map(|c| {
                        (
                            c.name.to_string(),
                            c.config_operation,
                            c.value.as_ref().map(|v| v.to_string()),
                        )
                    })
                    .collect();
                alter_topic(b, r.resource_name.as_str(), &ops, body.validate_only).await
            }
            BROKER => Err(Error::InvalidConfig(
                "node settings are static: set them in the config file, env or flags".into(),
            )),
            other => Err(Error::InvalidRequest(format!(
                "resource type {other} is not supported"
            ))),
        };
        if let Err(e) = outcome {
            out.error_code = e.kafka_code();
            out.error_message = Some(e.message());
        }
        responses.push(out);
    }
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}

/// Applies SET (0), DELETE (1), APPEND (2) and SUBTRACT (3) to a copy of the overrides,
/// validates the result, and stores it unless `validate_only`.
fn apply_ops(
    current: &BTreeMap<String, String>,
    ops: &[(String, i8, Option<String>)],
) -> Result<BTreeMap<String, String>> {
    let mut next = current.clone();
    for (name, op, value) in ops {
        let def = topic_config::lookup(name)
            .ok_or_else(|| Error::InvalidConfig(format!("unknown topic config `{name}`")))?;
        match op {
            0 => {
                let v = value
                    .as_deref()
                    .ok_or_else(|| Error::InvalidConfig(format!("SET `{name}` without a value")))?;
                next.insert(name.clone(), topic_config::validate(name, v)?);
            }
            1 => {
                next.remove(name);
            }
            2 | 3 => {
                if def.kind != ConfigType::List {
                    return Err(Error::InvalidConfig(format!(
                        "`{name}` is not a list; APPEND/SUBTRACT need a list config"
                    )));
                }
                let v = value.as_deref().unwrap_or("");
                let mut items: Vec<String> = topic_config::effective(&next, def)
                    .split(',')
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty())
                    .collect();
                for item in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    if *op == 2 && !items.iter().any(|i| i == item) {
                        items.push(item.to_owned());
                    } else if *op == 3 {
                        items.retain(|i| i != item);
                    }
                }
                next.insert(
                    name.clone(),
                    topic_config::validate(name, &items.join(","))?,
                );
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

async fn alter_topic(
    b: &Arc<Broker>,
    name: &str,
    ops: &[(String, i8, Option<String>)],
    validate_only: bool,
) -> Result<()> {
    let _admin = b.admin.lock().await;
    let current = b
        .topics
        .get(name)
        .await?
        .ok_or_else(|| Error::UnknownTopicOrPartition(name.to_owned()))?;
    let next = apply_ops(&current.configs, ops)?;
    if validate_only {
        return Ok(());
    }
    let meta = b
        .topics
        .update(name, |m| {
            m.configs = next.clone();
            Ok(())
        })
        .await?;
    b.partitions.install(meta).await?;
    info!(topic = %name, "topic configs changed");
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn op(name: &str, op: i8, v: Option<&str>) -> (String, i8, Option<String>) {
        (name.to_owned(), op, v.map(str::to_owned))
    }

    #[test]
    fn set_delete_append_subtract() {
        let cur = BTreeMap::from([("retention.ms".to_owned(), "1000".to_owned())]);
        let next = apply_ops(
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
        let next = apply_ops(&next, &[op("cleanup.policy", 3, Some("delete"))]).unwrap();
        assert_eq!(next["cleanup.policy"], "compact");
    }

    #[test]
    fn bad_ops_are_refused() {
        let cur = BTreeMap::new();
        assert!(apply_ops(&cur, &[op("nope", 0, Some("1"))]).is_err());
        assert!(apply_ops(&cur, &[op("retention.ms", 0, None)]).is_err());
        assert!(apply_ops(&cur, &[op("retention.ms", 2, Some("5"))]).is_err());
        assert!(apply_ops(&cur, &[op("retention.ms", 9, Some("5"))]).is_err());
        assert!(apply_ops(&cur, &[op("cleanup.policy", 3, Some("delete"))]).is_err());
    }
}
