//! ApiVersions (key 18): which APIs and versions this broker serves, read from the dispatch
//! table ([`super::APIS`]) so the answer can't drift from what the connection runs; a broker
//! running alone leaves out DescribeQuorum.

crate::api!(ApiVersions, 0..=4, |call, request| {
    let _ = request; // nothing in it changes the answer
    let mut versions = super::APIS.api_versions();
    if !call.broker.in_cluster {
        // A broker without a controller quorum has none to describe, as a Kafka broker that
        // isn't a KRaft node doesn't serve DescribeQuorum.
        let describe_quorum = kafka_protocol::messages::ApiKey::DescribeQuorum as i16;
        versions
            .api_keys
            .retain(|api| api.api_key != describe_quorum);
    }
    versions
});
