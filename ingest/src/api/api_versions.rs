//! ApiVersions: advertises exactly the versions in `protocol::SUPPORTED_APIS`.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::api_versions_response::{
    ApiVersion, FinalizedFeatureKey, SupportedFeatureKey,
};
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

/// Kafka's feature naming the transaction protocol (KIP-890).
const TRANSACTION_VERSION: &str = "transaction.version";

/// ApiVersions; from v3 also the features (tagged fields): `transaction.version`, supported
/// up to 2 (listed from v4) and finalized at `transaction_version`, which is how Kafka's clients choose between
/// the classic transaction protocol and KIP-890's.
pub(super) fn handle(
    ctx: &RequestContext<'_>,
    transaction_version: i16,
    _body: ApiVersionsRequest,
) -> ApiVersionsResponse {
    let resp = ApiVersionsResponse::default()
        .with_error_code(0)
        .with_api_keys(api_keys());
    if ctx.version() < 3 {
        return resp;
    }
    let name = kafka_protocol::protocol::StrBytes::from_static_str(TRANSACTION_VERSION);
    // KIP-1022: v3 leaves out supported features whose minimum is 0 (older clients reject a
    // zero minimum), as Kafka does; v4 lists them.
    let supported = if ctx.version() >= 4 {
        vec![
            SupportedFeatureKey::default()
                .with_name(name.clone())
                .with_min_version(0)
                .with_max_version(2),
        ]
    } else {
        Vec::new()
    };
    // A feature finalized at level 0 is absent from Kafka's finalized features.
    let finalized = if transaction_version > 0 {
        vec![
            FinalizedFeatureKey::default()
                .with_name(name)
                .with_min_version_level(transaction_version)
                .with_max_version_level(transaction_version),
        ]
    } else {
        Vec::new()
    };
    resp.with_supported_features(supported)
        // The features never change while a node runs; the epoch only has to be non-negative.
        .with_finalized_features_epoch(1)
        .with_finalized_features(finalized)
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
