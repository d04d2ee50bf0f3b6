//! Kafka error codes the controller answers with that `crate::kafka::error_code` does not name
//! (yet). Taken from the codec's table like the others, so the numbers cannot drift; they can
//! move to `error_code.rs` when a handler needs them.

use kafka_protocol::error::ResponseError;

pub use crate::kafka::error_code::{ELECTION_NOT_NEEDED, FENCED_LEADER_EPOCH};
pub const STALE_BROKER_EPOCH: i16 = ResponseError::StaleBrokerEpoch.code();
pub const INVALID_UPDATE_VERSION: i16 = ResponseError::InvalidUpdateVersion.code();
pub const DUPLICATE_BROKER_REGISTRATION: i16 = ResponseError::DuplicateBrokerRegistration.code();
pub const BROKER_ID_NOT_REGISTERED: i16 = ResponseError::BrokerIdNotRegistered.code();
pub const INELIGIBLE_REPLICA: i16 = ResponseError::IneligibleReplica.code();
pub const PREFERRED_LEADER_NOT_AVAILABLE: i16 = ResponseError::PreferredLeaderNotAvailable.code();
pub const ELIGIBLE_LEADERS_NOT_AVAILABLE: i16 = ResponseError::EligibleLeadersNotAvailable.code();
