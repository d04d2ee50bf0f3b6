//! Authorized operations (KIP-430): what a client may do with a topic, a group or the cluster,
//! reported by Metadata, DescribeCluster and DescribeGroups when the client asks.
//!
//! Kafka encodes them as a 32-bit field with bit `i` set for AclOperation code `i`, holding
//! the operations the resource type supports that the authorizer allows. This broker has no
//! ACLs yet, so every supported operation is allowed, as in Kafka without an authorizer; an
//! authorizer would filter [`Resource::supported`] here, in one place.
//!
//! When the client did not ask, Kafka sends the field's schema default, INT32_MIN ("not
//! provided"), which clients read as "unknown" rather than "nothing allowed".

/// The field's value when the operations were not asked for (the JSON specs' default).
pub const NOT_PROVIDED: i32 = i32::MIN;

/// Kafka's AclOperation codes (org.apache.kafka.common.acl.AclOperation) this broker reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum AclOperation {
    Read = 3,
    Write = 4,
    Create = 5,
    Delete = 6,
    Alter = 7,
    Describe = 8,
    ClusterAction = 9,
    DescribeConfigs = 10,
    AlterConfigs = 11,
    IdempotentWrite = 12,
}

/// The resource types whose operations are reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    Topic,
    Group,
    Cluster,
}

impl Resource {
    /// The operations Kafka 3.9 defines for the resource type (AclEntry.supportedOperations).
    pub fn supported(self) -> &'static [AclOperation] {
        use AclOperation::*;
        match self {
            Resource::Topic => &[
                Read,
                Write,
                Create,
                Delete,
                Alter,
                Describe,
                DescribeConfigs,
                AlterConfigs,
            ],
            Resource::Group => &[Read, Delete, Describe],
            Resource::Cluster => &[
                Create,
                ClusterAction,
                DescribeConfigs,
                AlterConfigs,
                IdempotentWrite,
                Alter,
                Describe,
            ],
        }
    }
}

/// The bit field of `operations`: bit `code` set for each.
pub fn bits(operations: &[AclOperation]) -> i32 {
    operations
        .iter()
        .fold(0, |field, &op| field | 1 << op as u8)
}

/// The field for a resource: its allowed operations when `requested`, else [`NOT_PROVIDED`].
pub fn authorized(resource: Resource, requested: bool) -> i32 {
    if requested {
        bits(resource.supported())
    } else {
        NOT_PROVIDED
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_match_kafkas_encoding() {
        // Computed by hand from the AclOperation codes, as a Kafka 3.9 broker without an
        // authorizer reports them.
        // Topic: READ 3, WRITE 4, CREATE 5, DELETE 6, ALTER 7, DESCRIBE 8, DESCRIBE_CONFIGS 10,
        // ALTER_CONFIGS 11.
        assert_eq!(authorized(Resource::Topic, true), 0b1101_1111_1000);
        assert_eq!(authorized(Resource::Topic, true), 3576);
        // Group: READ 3, DELETE 6, DESCRIBE 8.
        assert_eq!(authorized(Resource::Group, true), 0b1_0100_1000);
        // Cluster: CREATE 5, ALTER 7, DESCRIBE 8, CLUSTER_ACTION 9, DESCRIBE_CONFIGS 10,
        // ALTER_CONFIGS 11, IDEMPOTENT_WRITE 12.
        assert_eq!(authorized(Resource::Cluster, true), 0b1_1111_1010_0000);
    }

    #[test]
    fn not_asked_is_int32_min_for_every_resource() {
        for resource in [Resource::Topic, Resource::Group, Resource::Cluster] {
            assert_eq!(authorized(resource, false), i32::MIN);
        }
    }

    #[test]
    fn each_supported_operation_once() {
        for resource in [Resource::Topic, Resource::Group, Resource::Cluster] {
            let ops = resource.supported();
            assert_eq!(bits(ops).count_ones() as usize, ops.len(), "{resource:?}");
        }
    }
}
