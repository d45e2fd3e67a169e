//! DescribeClientQuotas and AlterClientQuotas (`kafka-configs --entity-type users/clients/ips`):
//! read and change the client quotas of [`crate::security::quota`].
//!
//! Describe answers from this node's quota table (the store's copy every node keeps, as a
//! Kafka broker answers from its metadata image) with Kafka's filter semantics: each component
//! names an entity type and matches an exact name, the default entity, or any entity of the
//! type; a strict filter matches only entities with exactly the filtered types. Alter checks
//! each entity and its keys as Kafka's controller does, writes each entity with one
//! compare-and-swap, and re-reads the table so this node applies the change at once (the
//! others within a watch round trip).

use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;

use kafka_protocol::messages::alter_client_quotas_response::{EntityData, EntryData};
use kafka_protocol::messages::describe_client_quotas_response::{
    EntityData as DescribedEntity, EntryData as DescribedEntry, ValueData,
};
use kafka_protocol::messages::{
    AlterClientQuotasRequest, AlterClientQuotasResponse, DescribeClientQuotasRequest,
    DescribeClientQuotasResponse,
};
use tracing::info;

use kafka_protocol::ResponseError;
use tierlog_metadata::{AclOperation, EntityName, QuotaEntity};

use super::RequestContext;
use crate::error::Error;
use crate::protocol::str_bytes;
use crate::security::quota::{CLIENT_KEYS, IP_KEYS, QuotaManager};

/// Match the entity with exactly this name (Kafka's `MATCH_TYPE_EXACT`).
const MATCH_EXACT: i8 = 0;
/// Match the default entity (`MATCH_TYPE_DEFAULT`).
const MATCH_DEFAULT: i8 = 1;
/// Match any entity of the type (`MATCH_TYPE_SPECIFIED`).
const MATCH_SPECIFIED: i8 = 2;

/// Entity types Kafka knows.
const USER: &str = "user";
const CLIENT_ID: &str = "client-id";
const IP: &str = "ip";

/// One filter component, checked.
enum Component {
    /// The entity has this type with this name (`None`: the default entity).
    Exact(&'static str, Option<String>),
    /// The entity has this type, any name.
    Specified(&'static str),
}

pub(super) fn describe(
    ctx: &RequestContext<'_>,
    quotas: &QuotaManager,
    body: DescribeClientQuotasRequest,
) -> DescribeClientQuotasResponse {
    // Kafka: DESCRIBE_CONFIGS on CLUSTER, else CLUSTER_AUTHORIZATION_FAILED.
    if !ctx.cluster(AclOperation::DescribeConfigs) {
        return DescribeClientQuotasResponse::default()
            .with_error_code(ResponseError::ClusterAuthorizationFailed.code())
            .with_error_message(None)
            .with_entries(None);
    }
    match describe_entries(quotas, &body) {
        Ok(entries) => DescribeClientQuotasResponse::default()
            .with_error_message(None)
            .with_entries(Some(entries)),
        Err(e) => DescribeClientQuotasResponse::default()
            .with_error_code(e.kafka_code())
            .with_error_message(Some(e.message()))
            .with_entries(None),
    }
}

/// The checked filter, or Kafka's error for it.
fn parse_filter(body: &DescribeClientQuotasRequest) -> Result<Vec<Component>, Error> {
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(body.components.len());
    for c in &body.components {
        let kind = c.entity_type.as_str();
        if kind.is_empty() {
            return Err(Error::InvalidRequest("Invalid empty entity type.".into()));
        }
        if !seen.insert(kind.to_owned()) {
            return Err(Error::InvalidRequest(format!(
                "Entity type {kind} cannot appear more than once in the filter."
            )));
        }
        let kind = match kind {
            USER => USER,
            CLIENT_ID => CLIENT_ID,
            IP => IP,
            other => {
                return Err(Error::Unsupported(format!(
                    "Unsupported entity type {other}"
                )));
            }
        };
        let name = c._match.as_ref().map(|m| m.to_string());
        out.push(match (c.match_type, name) {
            (MATCH_EXACT, Some(n)) => Component::Exact(kind, Some(n)),
            (MATCH_EXACT, None) => {
                return Err(Error::InvalidRequest(
                    "Request specified MATCH_TYPE_EXACT, but set match string to null.".into(),
                ));
            }
            (MATCH_DEFAULT, None) => Component::Exact(kind, None),
            (MATCH_DEFAULT, Some(_)) => {
                return Err(Error::InvalidRequest(
                    "Request specified MATCH_TYPE_DEFAULT, but also specified a match string."
                        .into(),
                ));
            }
            (MATCH_SPECIFIED, None) => Component::Specified(kind),
            (MATCH_SPECIFIED, Some(_)) => {
                return Err(Error::InvalidRequest(
                    "Request specified MATCH_TYPE_SPECIFIED, but also specified a match string."
                        .into(),
                ));
            }
            (other, _) => {
                return Err(Error::InvalidRequest(format!("Unknown match type {other}")));
            }
        });
    }
    if seen.contains(IP) && (seen.contains(USER) || seen.contains(CLIENT_ID)) {
        return Err(Error::InvalidRequest(
            "Invalid entity filter component combination. IP filter component should not be \
             used with user or clientId filter component."
                .into(),
        ));
    }
    Ok(out)
}

/// The component of `entity` of type `kind`, if it has one.
fn component<'e>(entity: &'e QuotaEntity, kind: &str) -> Option<&'e EntityName> {
    match kind {
        USER => entity.user.as_ref(),
        CLIENT_ID => entity.client_id.as_ref(),
        IP => entity.ip.as_ref(),
        _ => None,
    }
}

fn describe_entries(
    quotas: &QuotaManager,
    body: &DescribeClientQuotasRequest,
) -> Result<Vec<DescribedEntry>, Error> {
    let filter = parse_filter(body)?;
    if filter.is_empty() && body.strict {
        return Ok(Vec::new());
    }
    let mut matched: Vec<_> = quotas
        .table
        .snapshot()
        .into_iter()
        .filter(|(entity, _)| {
            let all = filter.iter().all(|c| match c {
                Component::Exact(kind, name) => {
                    component(entity, kind).is_some_and(|n| n.as_option() == name.as_deref())
                }
                Component::Specified(kind) => component(entity, kind).is_some(),
            });
            all && (!body.strict || entity.components().len() == filter.len())
        })
        .collect();
    matched.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(matched
        .into_iter()
        .map(|(entity, values)| {
            DescribedEntry::default()
                .with_entity(
                    entity
                        .components()
                        .into_iter()
                        .map(|(kind, name)| {
                            DescribedEntity::default()
                                .with_entity_type(str_bytes(kind))
                                .with_entity_name(name.as_option().map(str_bytes))
                        })
                        .collect(),
                )
                .with_values(
                    values
                        .into_iter()
                        .map(|(k, v)| ValueData::default().with_key(str_bytes(&k)).with_value(v))
                        .collect(),
                )
        })
        .collect())
}

pub(super) async fn alter(
    ctx: &RequestContext<'_>,
    quotas: &QuotaManager,
    body: AlterClientQuotasRequest,
) -> AlterClientQuotasResponse {
    // Kafka: ALTER_CONFIGS on CLUSTER, else CLUSTER_AUTHORIZATION_FAILED for every entry.
    let allowed = ctx.cluster(AclOperation::AlterConfigs);
    let mut seen = HashSet::new();
    let mut entries = Vec::with_capacity(body.entries.len());
    let mut changed = false;
    for entry in body.entries {
        let echo: Vec<EntityData> = entry
            .entity
            .iter()
            .map(|e| {
                EntityData::default()
                    .with_entity_type(e.entity_type.clone())
                    .with_entity_name(e.entity_name.clone())
            })
            .collect();
        let outcome = match parse_alteration(&entry) {
            _ if !allowed => Err(Error::ClusterAuthorizationFailed(
                "Cluster authorization failed.".to_owned(),
            )),
            Ok((entity, _)) if !seen.insert(entity.clone()) => Err(Error::InvalidRequest(format!(
                "Ignoring duplicate entity {entity}"
            ))),
            Ok((entity, changes)) if body.validate_only => {
                let _ = (entity, changes);
                Ok(())
            }
            Ok((entity, changes)) => match quotas.registry() {
                Some(r) => match r.alter(&entity, &changes).await {
                    Ok(values) => {
                        info!(%entity, ?values, client = %ctx.client_id(), "client quotas altered");
                        changed = true;
                        Ok(())
                    }
                    Err(e) => Err(Error::from(e)),
                },
                None => Err(Error::InvalidRequest("this node has no quota store".into())),
            },
            Err(e) => Err(e),
        };
        // Kafka sends a null message on success.
        let mut r = EntryData::default()
            .with_entity(echo)
            .with_error_message(None);
        if let Err(e) = outcome {
            r.error_code = e.kafka_code();
            r.error_message = Some(e.message());
        }
        entries.push(r);
    }
    if changed && let Err(e) = quotas.refresh().await {
        tracing::warn!(error = %e, "re-reading client quotas after an alter failed");
    }
    AlterClientQuotasResponse::default().with_entries(entries)
}

/// The entity and the changes of one AlterClientQuotas entry (`None`: remove the key), checked
/// as Kafka's controller checks them.
type Alteration = (QuotaEntity, BTreeMap<String, Option<f64>>);

fn parse_alteration(
    entry: &kafka_protocol::messages::alter_client_quotas_request::EntryData,
) -> Result<Alteration, Error> {
    let invalid = |m: String| Error::InvalidRequest(m);
    if entry.entity.is_empty() {
        return Err(invalid("Invalid empty client quota entity".into()));
    }
    let mut entity = QuotaEntity::default();
    for e in &entry.entity {
        let kind = e.entity_type.as_str();
        let slot = match kind {
            USER => &mut entity.user,
            CLIENT_ID => &mut entity.client_id,
            IP => &mut entity.ip,
            other => {
                return Err(invalid(format!(
                    "Unhandled client quota entity type: {other}"
                )));
            }
        };
        if slot.is_some() {
            return Err(invalid(format!(
                "Invalid empty client quota entity, duplicate entity entry {kind}"
            )));
        }
        let name = e.entity_name.as_ref().map(|n| n.as_str());
        if name == Some("") {
            return Err(invalid(format!("Empty {kind} not supported")));
        }
        *slot = Some(EntityName::from_option(name));
    }
    let keys = match (&entity.user, &entity.client_id, &entity.ip) {
        (_, _, None) => CLIENT_KEYS,
        (None, None, Some(ip)) => {
            if let EntityName::Named(n) = ip
                && n.parse::<IpAddr>().is_err()
            {
                return Err(invalid(format!(
                    "{n} is not a valid IP or resolvable host."
                )));
            }
            IP_KEYS
        }
        _ => return Err(invalid("Invalid empty client quota entity".into())),
    };
    let mut changes = BTreeMap::new();
    for op in &entry.ops {
        let key = op.key.to_string();
        if changes.contains_key(&key) {
            return Err(invalid(format!(
                "Duplicate quota key {key} not updating quota for this entity {entity}"
            )));
        }
        if op.remove {
            changes.insert(key, None);
            continue;
        }
        let Some((_, whole)) = keys.iter().find(|(k, _)| *k == key) else {
            return Err(invalid(format!("Invalid configuration key {key}")));
        };
        let v = op.value;
        if !v.is_finite() || v < 0.0 {
            return Err(invalid(format!(
                "Configuration {key} must be a non-negative number, got {v}"
            )));
        }
        if *whole && ((v + 1e-6).trunc() - v).abs() > 1e-6 {
            return Err(invalid(format!("Configuration {key} must be a Long value")));
        }
        changes.insert(key, Some(v));
    }
    Ok((entity, changes))
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::alter_client_quotas_request::{
        EntityData as AlterEntity, EntryData as AlterEntry, OpData,
    };
    use kafka_protocol::messages::describe_client_quotas_request::ComponentData;
    use kafka_protocol::messages::{ApiKey, DescribeClientQuotasRequest};
    use kafka_protocol::protocol::StrBytes;

    use super::*;
    use crate::broker::testing::TestBroker;

    fn s(v: &str) -> StrBytes {
        StrBytes::from_string(v.to_owned())
    }

    fn entity(parts: &[(&str, Option<&str>)]) -> Vec<AlterEntity> {
        parts
            .iter()
            .map(|(t, n)| {
                AlterEntity::default()
                    .with_entity_type(s(t))
                    .with_entity_name(n.map(s))
            })
            .collect()
    }

    fn set(key: &str, value: f64) -> OpData {
        OpData::default().with_key(s(key)).with_value(value)
    }

    async fn alter(
        tb: &TestBroker,
        entries: Vec<AlterEntry>,
        validate_only: bool,
    ) -> Vec<(i16, Option<String>)> {
        let resp: AlterClientQuotasResponse = tb
            .request(
                ApiKey::AlterClientQuotas,
                1,
                &AlterClientQuotasRequest::default()
                    .with_entries(entries)
                    .with_validate_only(validate_only),
            )
            .await;
        resp.entries
            .iter()
            .map(|e| {
                (
                    e.error_code,
                    e.error_message.as_ref().map(|m| m.to_string()),
                )
            })
            .collect()
    }

    async fn describe(
        tb: &TestBroker,
        components: Vec<ComponentData>,
        strict: bool,
    ) -> DescribeClientQuotasResponse {
        tb.request(
            ApiKey::DescribeClientQuotas,
            1,
            &DescribeClientQuotasRequest::default()
                .with_components(components)
                .with_strict(strict),
        )
        .await
    }

    fn component(kind: &str, match_type: i8, name: Option<&str>) -> ComponentData {
        ComponentData::default()
            .with_entity_type(s(kind))
            .with_match_type(match_type)
            .with_match(name.map(s))
    }

    /// `(entity as "type=name,…", key=value,…)` of each described entry, sorted.
    fn summary(resp: &DescribeClientQuotasResponse) -> Vec<String> {
        let mut out: Vec<String> = resp
            .entries
            .as_ref()
            .expect("entries")
            .iter()
            .map(|e| {
                let ent: Vec<String> = e
                    .entity
                    .iter()
                    .map(|c| {
                        format!(
                            "{}={}",
                            c.entity_type.as_str(),
                            c.entity_name.as_ref().map_or("<default>", |n| n.as_str())
                        )
                    })
                    .collect();
                let vals: Vec<String> = e
                    .values
                    .iter()
                    .map(|v| format!("{}={}", v.key.as_str(), v.value))
                    .collect();
                format!("{} {}", ent.join(","), vals.join(","))
            })
            .collect();
        out.sort();
        out
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn alter_then_describe_with_kafkas_filters() {
        let tb = TestBroker::start().await;
        let ok = alter(
            &tb,
            vec![
                AlterEntry::default()
                    .with_entity(entity(&[("client-id", Some("c1"))]))
                    .with_ops(vec![
                        set("producer_byte_rate", 1_048_576.0),
                        set("consumer_byte_rate", 2_097_152.0),
                    ]),
                AlterEntry::default()
                    .with_entity(entity(&[("user", Some("alice")), ("client-id", None)]))
                    .with_ops(vec![set("request_percentage", 12.5)]),
                AlterEntry::default()
                    .with_entity(entity(&[("user", None)]))
                    .with_ops(vec![set("producer_byte_rate", 100.0)]),
                AlterEntry::default()
                    .with_entity(entity(&[("ip", Some("10.0.0.1"))]))
                    .with_ops(vec![set("connection_creation_rate", 5.0)]),
            ],
            false,
        )
        .await;
        assert_eq!(ok, vec![(0, None); 4]);

        // Everything, non-strict with no components.
        assert_eq!(
            describe(&tb, vec![], false)
                .await
                .entries
                .expect("all")
                .len(),
            4
        );
        // Strict with no components: nothing.
        assert!(
            describe(&tb, vec![], true)
                .await
                .entries
                .expect("e")
                .is_empty()
        );
        // Exact client c1, strict: only the client entity.
        assert_eq!(
            summary(&describe(&tb, vec![component("client-id", 0, Some("c1"))], true).await),
            vec!["client-id=c1 consumer_byte_rate=2097152,producer_byte_rate=1048576"]
        );
        // Default user, strict: /users/<default> only; non-strict adds nothing else here.
        assert_eq!(
            summary(&describe(&tb, vec![component("user", 1, None)], true).await),
            vec!["user=<default> producer_byte_rate=100"]
        );
        // Any user, non-strict: both user entities (alice+default client too).
        assert_eq!(
            summary(&describe(&tb, vec![component("user", 2, None)], false).await),
            vec![
                "user=<default> producer_byte_rate=100",
                "user=alice,client-id=<default> request_percentage=12.5",
            ]
        );
        // Any user, strict: only entities with just a user.
        assert_eq!(
            summary(&describe(&tb, vec![component("user", 2, None)], true).await),
            vec!["user=<default> producer_byte_rate=100"]
        );
        // Exact user alice + default client, strict.
        assert_eq!(
            summary(
                &describe(
                    &tb,
                    vec![
                        component("user", 0, Some("alice")),
                        component("client-id", 1, None)
                    ],
                    true
                )
                .await
            ),
            vec!["user=alice,client-id=<default> request_percentage=12.5"]
        );

        // Removing the last key removes the entity.
        let rm = alter(
            &tb,
            vec![
                AlterEntry::default()
                    .with_entity(entity(&[("user", None)]))
                    .with_ops(vec![
                        OpData::default()
                            .with_key(s("producer_byte_rate"))
                            .with_remove(true),
                    ]),
            ],
            false,
        )
        .await;
        assert_eq!(rm, vec![(0, None)]);
        assert!(
            describe(&tb, vec![component("user", 1, None)], true)
                .await
                .entries
                .expect("e")
                .is_empty()
        );
        // The node enforces what it stores: alice's request quota is in the table.
        assert_eq!(tb.broker.quotas.request.quota("alice", "x"), Some(12.5));
        tb.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bad_filters_and_alterations_get_kafkas_errors() {
        let tb = TestBroker::start().await;
        let bad_filters = [
            (vec![component("", 0, Some("x"))], 42),
            (vec![component("group", 0, Some("x"))], 35),
            (vec![component("user", 0, None)], 42),
            (vec![component("user", 1, Some("x"))], 42),
            (vec![component("user", 2, Some("x"))], 42),
            (vec![component("user", 7, None)], 42),
            (
                vec![component("user", 2, None), component("user", 1, None)],
                42,
            ),
            (
                vec![component("ip", 2, None), component("client-id", 2, None)],
                42,
            ),
        ];
        for (filter, code) in bad_filters {
            let r = describe(&tb, filter, false).await;
            assert_eq!(r.error_code, code);
            assert!(r.entries.is_none());
            assert!(r.error_message.is_some());
        }

        let c1 = || entity(&[("client-id", Some("c1"))]);
        let cases = vec![
            // Unknown key.
            AlterEntry::default()
                .with_entity(c1())
                .with_ops(vec![set("bogus", 1.0)]),
            // An ip key on a client entity.
            AlterEntry::default()
                .with_entity(c1())
                .with_ops(vec![set("connection_creation_rate", 1.0)]),
            // Negative.
            AlterEntry::default()
                .with_entity(c1())
                .with_ops(vec![set("producer_byte_rate", -1.0)]),
            // Not a whole number for a LONG key.
            AlterEntry::default()
                .with_entity(c1())
                .with_ops(vec![set("producer_byte_rate", 1.5)]),
            // Empty entity, unknown type, empty name, ip with user, bad ip.
            AlterEntry::default().with_ops(vec![set("producer_byte_rate", 1.0)]),
            AlterEntry::default()
                .with_entity(entity(&[("group", Some("g"))]))
                .with_ops(vec![set("producer_byte_rate", 1.0)]),
            AlterEntry::default()
                .with_entity(entity(&[("user", Some(""))]))
                .with_ops(vec![set("producer_byte_rate", 1.0)]),
            AlterEntry::default()
                .with_entity(entity(&[("user", Some("u")), ("ip", None)]))
                .with_ops(vec![set("producer_byte_rate", 1.0)]),
            AlterEntry::default()
                .with_entity(entity(&[("ip", Some("not-an-ip"))]))
                .with_ops(vec![set("connection_creation_rate", 1.0)]),
            // Duplicate key.
            AlterEntry::default()
                .with_entity(entity(&[("client-id", Some("c2"))]))
                .with_ops(vec![
                    set("producer_byte_rate", 1.0),
                    set("producer_byte_rate", 2.0),
                ]),
        ];
        let n = cases.len();
        let got = alter(&tb, cases, false).await;
        assert_eq!(got.len(), n);
        for (code, msg) in &got {
            assert_eq!(*code, 42, "{msg:?}");
        }
        // Nothing was written.
        assert!(
            describe(&tb, vec![], false)
                .await
                .entries
                .expect("e")
                .is_empty()
        );

        // validate_only checks but does not write; a second entry for one entity is refused.
        let v = alter(
            &tb,
            vec![
                AlterEntry::default()
                    .with_entity(c1())
                    .with_ops(vec![set("producer_byte_rate", 10.0)]),
                AlterEntry::default()
                    .with_entity(c1())
                    .with_ops(vec![set("consumer_byte_rate", 10.0)]),
            ],
            true,
        )
        .await;
        assert_eq!(v[0], (0, None));
        assert_eq!(v[1].0, 42);
        assert!(
            describe(&tb, vec![], false)
                .await
                .entries
                .expect("e")
                .is_empty()
        );
        tb.stop().await;
    }
}
