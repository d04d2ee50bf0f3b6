//! One file per Kafka API. Each handler gets the decoded request and its version and returns
//! the response body; the connection encodes it at the same version.

pub mod api_versions;
pub mod metadata;

use kafka_protocol::messages::{RequestHeader, RequestKind, ResponseKind};

use crate::kafka::BrokerInfo;

/// Kafka error codes the handlers answer with.
pub mod error_code {
    pub const NONE: i16 = 0;
    pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
    pub const UNSUPPORTED_VERSION: i16 = 35;
    pub const UNKNOWN_TOPIC_ID: i16 = 100;
}

/// Runs the handler for `request`. Only APIs listed in [`crate::kafka::versions::SUPPORTED`]
/// reach this point, at versions listed there.
pub async fn handle(
    broker: &BrokerInfo,
    _header: &RequestHeader,
    request: RequestKind,
    version: i16,
) -> ResponseKind {
    match request {
        RequestKind::ApiVersions(_) => ResponseKind::ApiVersions(api_versions::handle()),
        RequestKind::Metadata(request) => {
            ResponseKind::Metadata(metadata::handle(broker, &request, version))
        }
        other => unreachable!("dispatched an API missing from versions::SUPPORTED: {other:?}"),
    }
}
