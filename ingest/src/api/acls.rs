//! CreateAcls, DescribeAcls and DeleteAcls: the ACL admin APIs `kafka-acls` and the Admin
//! client use, over the [`AclRegistry`] in the metadata store.
//!
//! As in Kafka: creating and deleting need ALTER on the cluster, describing DESCRIBE on the
//! cluster (otherwise every result carries CLUSTER_AUTHORIZATION_FAILED); a binding Kafka
//! would refuse (an unknown or filter-only enum value, an empty resource name, a CLUSTER
//! resource not named `kafka-cluster`, a principal without `Type:`) gets INVALID_REQUEST on its
//! own result while the others go ahead. Filters follow Kafka's `AclBindingFilter`: ANY
//! matches every value, a null string every string, and the MATCH pattern type every pattern
//! that would apply to the named resource (its literal name, the literal `*`, and prefixes of
//! it). Describe and delete read the registry itself, not this node's cached index, so a
//! listing right after a create shows it.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::delete_acls_response::{
    DeleteAclsFilterResult, DeleteAclsMatchingAcl,
};
use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::{
    CreateAclsRequest, CreateAclsResponse, DeleteAclsRequest, DeleteAclsResponse,
    DescribeAclsRequest, DescribeAclsResponse,
};
use kafka_protocol::protocol::StrBytes;
use tierlog_metadata::{
    AclEntry, AclOperation, AclPatternType, AclPermission, AclRegistry, AclResource,
    AclResourceType,
};
use tracing::{info, warn};

use super::RequestContext;
use crate::protocol::str_bytes;
use crate::security::acl::CLUSTER_NAME;

/// The filter-only `ANY` code of every ACL enum.
const ANY: i8 = 1;
/// The filter-only `MATCH` pattern type.
const MATCH: i8 = 2;

/// CreateAcls: adds each valid binding; one result per creation, in request order.
pub(super) async fn create(
    ctx: &RequestContext<'_>,
    acls: &AclRegistry,
    body: CreateAclsRequest,
) -> CreateAclsResponse {
    let authorized = ctx.cluster(AclOperation::Alter);
    let mut results = Vec::with_capacity(body.creations.len());
    for c in &body.creations {
        let outcome = if authorized {
            match binding(c) {
                Ok((resource, entry)) => acls
                    .add(&resource, std::slice::from_ref(&entry))
                    .await
                    .map(|()| {
                        info!(principal = %ctx.session.principal, resource = %resource, entry = ?entry, "ACL created");
                    })
                    .map_err(|e| {
                        warn!(error = %e, "creating an ACL failed");
                        let code = match e.kind() {
                            tierlog_metadata::ErrorKind::Invalid => ResponseError::InvalidRequest,
                            _ => ResponseError::UnknownServerError,
                        };
                        (code, e.to_string())
                    }),
                Err(message) => Err((ResponseError::InvalidRequest, message)),
            }
        } else {
            Err((
                ResponseError::ClusterAuthorizationFailed,
                "not authorized to alter ACLs".to_owned(),
            ))
        };
        results.push(match outcome {
            // Null on success, as Kafka sends it (the codec's default is an empty string).
            Ok(()) => AclCreationResult::default().with_error_message(None),
            Err((code, message)) => AclCreationResult::default()
                .with_error_code(code.code())
                .with_error_message(Some(str_bytes(&message))),
        });
    }
    CreateAclsResponse::default().with_results(results)
}

/// DescribeAcls: every binding the filter matches, grouped by resource pattern.
pub(super) async fn describe(
    ctx: &RequestContext<'_>,
    acls: &AclRegistry,
    body: DescribeAclsRequest,
) -> DescribeAclsResponse {
    let resp = DescribeAclsResponse::default().with_error_message(None);
    if !ctx.cluster(AclOperation::Describe) {
        return resp
            .with_error_code(ResponseError::ClusterAuthorizationFailed.code())
            .with_error_message(Some(str_bytes("not authorized to describe ACLs")));
    }
    let filter = Filter {
        resource_type: body.resource_type_filter,
        name: body.resource_name_filter.map(|s| s.to_string()),
        pattern_type: body.pattern_type_filter,
        principal: body.principal_filter.map(|s| s.to_string()),
        host: body.host_filter.map(|s| s.to_string()),
        operation: body.operation,
        permission: body.permission_type,
    };
    if let Err(message) = filter.validate() {
        return resp
            .with_error_code(ResponseError::InvalidRequest.code())
            .with_error_message(Some(str_bytes(&message)));
    }
    let all = match acls.list().await {
        Ok(all) => all,
        Err(e) => {
            warn!(error = %e, "listing ACLs failed");
            return resp
                .with_error_code(ResponseError::UnknownServerError.code())
                .with_error_message(Some(str_bytes(&e.to_string())));
        }
    };
    let resources = all
        .iter()
        .filter(|(r, _)| filter.matches_resource(r))
        .filter_map(|(r, entries)| {
            let matching: Vec<AclDescription> = entries
                .iter()
                .filter(|e| filter.matches_entry(e))
                .map(|e| {
                    AclDescription::default()
                        .with_principal(str_bytes(&e.principal))
                        .with_host(str_bytes(&e.host))
                        .with_operation(e.operation.code())
                        .with_permission_type(e.permission.code())
                })
                .collect();
            (!matching.is_empty()).then(|| {
                DescribeAclsResource::default()
                    .with_resource_type(r.resource_type.code())
                    .with_resource_name(str_bytes(&r.name))
                    .with_pattern_type(r.pattern_type.code())
                    .with_acls(matching)
            })
        })
        .collect();
    resp.with_resources(resources)
}

/// DeleteAcls: removes every binding each filter matches; one result per filter listing what
/// it removed.
pub(super) async fn delete(
    ctx: &RequestContext<'_>,
    acls: &AclRegistry,
    body: DeleteAclsRequest,
) -> DeleteAclsResponse {
    let authorized = ctx.cluster(AclOperation::Alter);
    let mut results = Vec::with_capacity(body.filters.len());
    for f in body.filters {
        let fail = |code: ResponseError, message: &str| {
            DeleteAclsFilterResult::default()
                .with_error_code(code.code())
                .with_error_message(Some(str_bytes(message)))
        };
        if !authorized {
            results.push(fail(
                ResponseError::ClusterAuthorizationFailed,
                "not authorized to alter ACLs",
            ));
            continue;
        }
        let filter = Filter::of_delete(f);
        if let Err(message) = filter.validate() {
            results.push(fail(ResponseError::InvalidRequest, &message));
            continue;
        }
        match delete_matching(acls, &filter).await {
            Ok(removed) => {
                for (r, e) in &removed {
                    info!(principal = %ctx.session.principal, resource = %r, entry = ?e, "ACL deleted");
                }
                results.push(
                    DeleteAclsFilterResult::default()
                        .with_error_message(None)
                        .with_matching_acls(
                            removed
                                .into_iter()
                                .map(|(r, e)| {
                                    DeleteAclsMatchingAcl::default()
                                        .with_error_message(None)
                                        .with_resource_type(r.resource_type.code())
                                        .with_resource_name(str_bytes(&r.name))
                                        .with_pattern_type(r.pattern_type.code())
                                        .with_principal(str_bytes(&e.principal))
                                        .with_host(str_bytes(&e.host))
                                        .with_operation(e.operation.code())
                                        .with_permission_type(e.permission.code())
                                })
                                .collect(),
                        ),
                );
            }
            Err(e) => {
                warn!(error = %e, "deleting ACLs failed");
                results.push(fail(ResponseError::UnknownServerError, &e.to_string()));
            }
        }
    }
    DeleteAclsResponse::default().with_filter_results(results)
}

/// Removes every entry `filter` matches, pattern by pattern.
async fn delete_matching(
    acls: &AclRegistry,
    filter: &Filter,
) -> tierlog_metadata::Result<Vec<(AclResource, AclEntry)>> {
    let mut removed = Vec::new();
    for (resource, _) in acls.list().await? {
        if !filter.matches_resource(&resource) {
            continue;
        }
        for e in acls.remove(&resource, |e| filter.matches_entry(e)).await? {
            removed.push((resource.clone(), e));
        }
    }
    Ok(removed)
}

/// A creation as a binding, or why Kafka would refuse it.
fn binding(c: &AclCreation) -> Result<(AclResource, AclEntry), String> {
    let resource_type = AclResourceType::from_code(c.resource_type)
        .ok_or_else(|| format!("invalid resource type {}", c.resource_type))?;
    let pattern_type = AclPatternType::from_code(c.resource_pattern_type)
        .ok_or_else(|| format!("invalid pattern type {}", c.resource_pattern_type))?;
    let operation = AclOperation::from_code(c.operation)
        .ok_or_else(|| format!("invalid operation {}", c.operation))?;
    let permission = AclPermission::from_code(c.permission_type)
        .ok_or_else(|| format!("invalid permission type {}", c.permission_type))?;
    let name = c.resource_name.to_string();
    if resource_type == AclResourceType::Cluster && name != CLUSTER_NAME {
        return Err(format!(
            "The only valid name for the CLUSTER resource is {CLUSTER_NAME}"
        ));
    }
    if name.is_empty() {
        return Err("Invalid empty resource name".to_owned());
    }
    let resource = AclResource::new(resource_type, pattern_type, name);
    let entry = AclEntry {
        principal: c.principal.to_string(),
        host: c.host.to_string(),
        operation,
        permission,
    };
    tierlog_metadata::validate_binding(&resource, &entry).map_err(|e| e.to_string())?;
    Ok((resource, entry))
}

/// Kafka's `AclBindingFilter`, with the wire codes as sent.
#[derive(Debug)]
struct Filter {
    resource_type: i8,
    name: Option<String>,
    pattern_type: i8,
    principal: Option<String>,
    host: Option<String>,
    operation: i8,
    permission: i8,
}

impl Filter {
    fn of_delete(f: DeleteAclsFilter) -> Filter {
        let s = |v: Option<StrBytes>| v.map(|s| s.to_string());
        Filter {
            resource_type: f.resource_type_filter,
            name: s(f.resource_name_filter),
            pattern_type: f.pattern_type_filter,
            principal: s(f.principal_filter),
            host: s(f.host_filter),
            operation: f.operation,
            permission: f.permission_type,
        }
    }

    /// Kafka refuses a filter with an UNKNOWN (or unrecognised) value.
    fn validate(&self) -> Result<(), String> {
        let known = |code: i8, known: bool| code == ANY || known;
        if !known(
            self.resource_type,
            AclResourceType::from_code(self.resource_type).is_some(),
        ) {
            return Err(format!(
                "unknown resource type filter {}",
                self.resource_type
            ));
        }
        if !(self.pattern_type == MATCH
            || known(
                self.pattern_type,
                AclPatternType::from_code(self.pattern_type).is_some(),
            ))
        {
            return Err(format!("unknown pattern type filter {}", self.pattern_type));
        }
        if !known(
            self.operation,
            AclOperation::from_code(self.operation).is_some(),
        ) {
            return Err(format!("unknown operation filter {}", self.operation));
        }
        if !known(
            self.permission,
            AclPermission::from_code(self.permission).is_some(),
        ) {
            return Err(format!(
                "unknown permission type filter {}",
                self.permission
            ));
        }
        Ok(())
    }

    /// Kafka's `ResourcePatternFilter.matches`.
    fn matches_resource(&self, r: &AclResource) -> bool {
        if self.resource_type != ANY && self.resource_type != r.resource_type.code() {
            return false;
        }
        let exact_pattern = self.pattern_type == r.pattern_type.code();
        if !(self.pattern_type == ANY || self.pattern_type == MATCH || exact_pattern) {
            return false;
        }
        let Some(name) = &self.name else {
            return true;
        };
        if self.pattern_type == ANY || exact_pattern {
            return *name == r.name;
        }
        // MATCH: the patterns that would apply to a resource named `name`.
        match r.pattern_type {
            AclPatternType::Literal => *name == r.name || r.name == "*",
            AclPatternType::Prefixed => name.starts_with(&r.name),
        }
    }

    /// Kafka's `AccessControlEntryFilter.matches`.
    fn matches_entry(&self, e: &AclEntry) -> bool {
        self.principal.as_ref().is_none_or(|p| *p == e.principal)
            && self.host.as_ref().is_none_or(|h| *h == e.host)
            && (self.operation == ANY || self.operation == e.operation.code())
            && (self.permission == ANY || self.permission == e.permission.code())
    }
}
