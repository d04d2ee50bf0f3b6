//! One file per Kafka API. Each declares its [`Api`](crate::kafka::dispatch::Api): the key, the
//! versions it honours and how it runs; [`APIS`] lists them all, and is the table the
//! connections dispatch through and ApiVersions advertises.

pub mod add_offsets_to_txn;
pub mod add_partitions_to_txn;
pub mod alter_configs;
pub mod alter_partition_reassignments;
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
pub mod describe_producers;
pub mod describe_quorum;
pub mod describe_transactions;
pub mod elect_leaders;
pub mod end_txn;
pub mod fetch;
pub mod find_coordinator;
pub mod heartbeat;
pub mod incremental_alter_configs;
pub mod init_producer_id;
pub mod join_group;
pub mod leave_group;
pub mod list_groups;
pub mod list_offsets;
pub mod list_partition_reassignments;
pub mod list_transactions;
pub mod metadata;
pub mod offset_commit;
pub mod offset_delete;
pub mod offset_fetch;
pub mod offset_for_leader_epoch;
pub mod produce;
pub mod sync_group;
pub mod txn_offset_commit;
pub mod write_txn_markers;

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
    elect_leaders::API,
    alter_partition_reassignments::API,
    list_partition_reassignments::API,
    describe_configs::API,
    alter_configs::API,
    incremental_alter_configs::API,
    describe_cluster::API,
    describe_log_dirs::API,
    describe_producers::API,
    describe_quorum::API,
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
    add_partitions_to_txn::API,
    add_offsets_to_txn::API,
    end_txn::API,
    write_txn_markers::API,
    offset_for_leader_epoch::API,
    txn_offset_commit::API,
    describe_transactions::API,
    list_transactions::API,
]);

/// The Kafka error code and message for a refused topic change.
pub fn topic_change_error(e: CreateError) -> (i16, String) {
    let code = match &e {
        CreateError::Exists(_) => error_code::TOPIC_ALREADY_EXISTS,
        CreateError::Unknown(_) => error_code::UNKNOWN_TOPIC_OR_PARTITION,
        CreateError::InvalidName(_) => error_code::INVALID_TOPIC_EXCEPTION,
        CreateError::InvalidPartitions(_) => error_code::INVALID_PARTITIONS,
        CreateError::InvalidConfig(_) => error_code::INVALID_CONFIG,
        CreateError::InvalidRequest(_) => error_code::INVALID_REQUEST,
        CreateError::InvalidReplicaAssignment(_) => error_code::INVALID_REPLICA_ASSIGNMENT,
        CreateError::InvalidReplicationFactor(_) => error_code::INVALID_REPLICATION_FACTOR,
        CreateError::Storage(_) => error_code::KAFKA_STORAGE_ERROR,
        CreateError::Refused { code, .. } => *code,
    };
    (code, e.to_string())
}

/// Config resource types.
pub mod resource_type {
    pub const TOPIC: i8 = 2;
    pub const BROKER: i8 = 4;
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use kafka_protocol::messages::ApiKey;

    #[test]
    fn every_api_is_served_once_at_versions_the_codec_knows() {
        let mut seen = HashSet::new();
        for api in APIS.0 {
            assert!(seen.insert(api.key), "{:?} is in the table twice", api.key);
            let codec = api.key.valid_versions();
            assert!(api.min_version <= api.max_version, "{:?}", api.key);
            assert!(
                codec.min <= api.min_version && api.max_version <= codec.max,
                "{:?} {}..={} vs the codec's {codec:?}",
                api.key,
                api.min_version,
                api.max_version
            );
            for version in api.min_version..=api.max_version {
                let found = APIS.at_version(api.key, version).map(|a| a.key);
                assert_eq!(found, Some(api.key), "v{version}");
            }
            assert!(APIS.at_version(api.key, api.max_version + 1).is_none());
        }
        assert!(APIS.get(ApiKey::DescribeAcls).is_none());
    }

    #[test]
    fn api_versions_advertises_exactly_the_table() {
        let advertised: Vec<_> = APIS
            .api_versions()
            .api_keys
            .iter()
            .map(|v| (v.api_key, v.min_version, v.max_version))
            .collect();
        let table: Vec<_> = APIS
            .0
            .iter()
            .map(|a| (a.key as i16, a.min_version, a.max_version))
            .collect();
        assert_eq!(advertised, table);
        assert_eq!(APIS.api_versions().error_code, error_code::NONE);
        assert_eq!(
            APIS.api_versions_unsupported().error_code,
            error_code::UNSUPPORTED_VERSION
        );
    }
}
