//! ApiVersions: advertises exactly the versions in `protocol::SUPPORTED_APIS`.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse};

use super::Reply;
use super::RequestContext;
use crate::protocol;

fn api_keys() -> Vec<ApiVersion> {
    protocol::SUPPORTED_APIS
        .iter()
        .map(|(k, min, max)| {
            ApiVersion::default()
                .with_api_key(*k as i16)
                .with_min_version(*min)
                .with_max_version(*max)
        })
        .collect()
}

pub(super) fn handle(_ctx: &RequestContext<'_>, _body: ApiVersionsRequest) -> ApiVersionsResponse {
    // No features are advertised: old clients (librdkafka 2.0) must not see tagged fields
    // they do not expect, and we finalize none.
    ApiVersionsResponse::default()
        .with_error_code(0)
        .with_api_keys(api_keys())
}

/// The v0 answer to an ApiVersions request of a version we do not speak.
pub(super) fn unsupported_version_reply(correlation_id: i32) -> Reply {
    let resp = ApiVersionsResponse::default()
        .with_error_code(ResponseError::UnsupportedVersion.code())
        .with_api_keys(api_keys());
    match protocol::encode_response(ApiKey::ApiVersions, 0, correlation_id, &resp) {
        Ok(f) => Reply::Frame(f),
        Err(_) => Reply::Close,
    }
}
