//! ApiVersions (key 18): which APIs and versions this broker serves.

use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::ApiVersionsResponse;

use super::error_code;
use crate::kafka::versions::SUPPORTED;

/// The answer to every supported version.
pub fn handle() -> ApiVersionsResponse {
    let mut response = ApiVersionsResponse::default();
    response.error_code = error_code::NONE;
    response.api_keys = SUPPORTED
        .iter()
        .map(|&(key, min, max)| {
            let mut api = ApiVersion::default();
            api.api_key = key as i16;
            api.min_version = min;
            api.max_version = max;
            api
        })
        .collect();
    response
}

/// The answer to a version we don't serve (sent as v0, per KIP-511).
pub fn unsupported_version() -> ApiVersionsResponse {
    let mut response = handle();
    response.error_code = error_code::UNSUPPORTED_VERSION;
    response
}
