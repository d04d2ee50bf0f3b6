//! ApiVersions (key 18): which APIs and versions this broker serves, read from the dispatch
//! table ([`super::APIS`]) so the answer can't drift from what the connection runs.

crate::api!(ApiVersions, 0..=4, |call, request| {
    let _ = request; // nothing in it changes the answer
    super::APIS.api_versions()
});
