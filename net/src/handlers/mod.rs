//! One file per Kafka API. Each declares its [`Api`](crate::kafka::dispatch::Api): the key, the
//! versions it honours and how it runs; [`APIS`] lists them all, and is the table the
//! connections dispatch through and ApiVersions advertises.

pub mod alter_configs;
pub mod api_versions;
pub mod create_partitions;
pub mod create_topics;
pub mod delete_groups;
pub mod delete_records;
pub mod delete_topics;
pub mod describe_cluster;
pub mod describe_configs;
pub mod describe_groups;
pub mod describe_log_dirs;
pub mod fetch;
pub mod find_coordinator;
pub mod heartbeat;
pub mod incremental_alter_configs;
pub mod init_producer_id;
pub mod join_group;
pub mod leave_group;
pub mod list_groups;
pub mod list_offsets;
pub mod metadata;
pub mod offset_commit;
pub mod offset_delete;
pub mod offset_fetch;
pub mod produce;
pub mod sync_group;

use crate::kafka::dispatch::Apis;
use crate::kafka::error_code;
use crate::partitions::shard::CreateError;

/// Every API this broker serves. Each appears once (a test checks), in no particular order.
pub static APIS: Apis = Apis(&[
    produce::API,
    fetch::API,
    list_offsets::API,
    metadata::API,
    api_versions::API,
    create_topics::API,
    delete_topics::API,
    delete_records::API,
    create_partitions::API,
    describe_configs::API,
    alter_configs::API,
    incremental_alter_configs::API,
    describe_cluster::API,
    describe_log_dirs::API,
    init_producer_id::API,
    find_coordinator::API,
    join_group::API,
    sync_group::API,
    heartbeat::API,
    leave_group::API,
    offset_commit::API,
    offset_fetch::API,
    list_groups::API,
    describe_groups::API,
    delete_groups::API,
    offset_delete::API,
]);

/// The Kafka error code and message for a refused topic change.
pub fn topic_change_error(e: CreateError) -> (i16, String) {
    let code = match &e {
        CreateError::Exists(_) => error_code::TOPIC_ALREADY_EXISTS,
        CreateError::Unknown(_) => error_code::UNKNOWN_TOPIC_OR_PARTITION,
        CreateError::InvalidName(_) => error_code::INVALID_TOPIC_EXCEPTION,
        CreateError::InvalidPartitions(_) => error_code::INVALID_PARTITIONS,
        CreateError::InvalidConfig(_) => error_code::INVALID_CONFIG,
        CreateError::Storage(_) => error_code::KAFKA_STORAGE_ERROR,
    };
    (code, e.to_string())
}

/// Config resource types.
pub mod resource_type {
    pub const TOPIC: i8 = 2;
    pub const BROKER: i8 = 4;
}
