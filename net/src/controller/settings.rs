//! The `[cluster]` table checked and resolved: who the voters are, what this node is, and where
//! its controller listener is. A config with no voters is a single broker and yields `None`, so
//! `cargo run` needs no quorum set-up.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use crate::config::{ClusterConfig, ConfigError};

/// One voter of the controller quorum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Voter {
    pub id: i32,
    /// Its controller listener, as written in the config (resolved when connecting, so a
    /// voter whose name does not resolve yet does not stop the others from starting).
    pub address: String,
}

/// What this node does in the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Roles {
    /// Serves clients and holds partitions.
    pub broker: bool,
    /// Votes in the controller quorum and may become the active controller.
    pub controller: bool,
}

/// The resolved `[cluster]` settings of a node that is part of a cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumSettings {
    pub node_id: i32,
    pub roles: Roles,
    /// Sorted by id.
    pub voters: Vec<Voter>,
    /// Where this node's controller listener binds; `None` for a broker-only node.
    pub controller_listen: Option<SocketAddr>,
    pub election_timeout: Duration,
    pub broker_heartbeat_interval: Duration,
    pub broker_session_timeout: Duration,
    pub metadata_snapshot_bytes: u64,
    pub auto_leader_rebalance: bool,
    pub leader_imbalance_check_interval: Duration,
    pub leader_imbalance_per_broker_percentage: u32,
    pub unclean_leader_election: bool,
}

impl QuorumSettings {
    /// The quorum settings of node `node_id`, or `None` when no voters are configured.
    pub fn resolve(node_id: i32, cluster: &ClusterConfig) -> Result<Option<Self>, ConfigError> {
        let voters = parse_voters(&cluster.controller_quorum_voters)?;
        if voters.is_empty() {
            if !cluster.process_roles.is_empty() || cluster.controller_listen.is_some() {
                return Err(invalid(
                    "cluster.controller_quorum_voters",
                    "process_roles and controller_listen need the quorum's voters",
                ));
            }
            return Ok(None);
        }
        let own_voter = voters.iter().find(|v| v.id == node_id);
        let roles = parse_roles(&cluster.process_roles, own_voter.is_some())?;
        if roles.controller && own_voter.is_none() {
            return Err(invalid(
                "cluster.process_roles",
                &format!("node {node_id} is a controller but not one of the voters"),
            ));
        }
        if !roles.controller && own_voter.is_some() {
            return Err(invalid(
                "cluster.process_roles",
                &format!("node {node_id} is a voter, so it must have the controller role"),
            ));
        }
        let controller_listen = match (roles.controller, &cluster.controller_listen, own_voter) {
            (false, None, _) => None,
            (false, Some(_), _) => {
                return Err(invalid(
                    "cluster.controller_listen",
                    "only a controller has a controller listener",
                ))
            }
            (true, Some(listen), _) => Some(resolve("cluster.controller_listen", listen)?),
            (true, None, Some(voter)) => {
                Some(resolve("cluster.controller_quorum_voters", &voter.address)?)
            }
            (true, None, None) => unreachable!("a controller is a voter (checked above)"),
        };
        if !(100..=60_000).contains(&cluster.election_timeout_ms) {
            // A tenth of it is the quorum's tick; below 10 ms a tick is lost in scheduling noise.
            return Err(invalid(
                "cluster.election_timeout_ms",
                &format!(
                    "{} is not between 100 and 60000",
                    cluster.election_timeout_ms
                ),
            ));
        }
        for (setting, ms) in [
            (
                "cluster.broker_heartbeat_interval_ms",
                cluster.broker_heartbeat_interval_ms,
            ),
            (
                "cluster.broker_session_timeout_ms",
                cluster.broker_session_timeout_ms,
            ),
        ] {
            if !(10..=3_600_000).contains(&ms) {
                return Err(invalid(
                    setting,
                    &format!("{ms} is not between 10 and 3600000"),
                ));
            }
        }
        if cluster.broker_heartbeat_interval_ms > cluster.broker_session_timeout_ms / 2 {
            // One lost heartbeat must not cost a broker its session.
            return Err(invalid(
                "cluster.broker_heartbeat_interval_ms",
                "must be at most half of broker_session_timeout_ms",
            ));
        }
        if cluster.metadata_snapshot_bytes < 1024 {
            return Err(invalid(
                "cluster.metadata_snapshot_bytes",
                "must be at least 1024",
            ));
        }
        if !(100..=86_400_000).contains(&cluster.leader_imbalance_check_interval_ms) {
            // Each check scans every partition: more often than the controller ticks is waste.
            return Err(invalid(
                "cluster.leader_imbalance_check_interval_ms",
                &format!(
                    "{} is not between 100 and 86400000",
                    cluster.leader_imbalance_check_interval_ms
                ),
            ));
        }
        if cluster.leader_imbalance_per_broker_percentage > 100 {
            return Err(invalid(
                "cluster.leader_imbalance_per_broker_percentage",
                "must be between 0 and 100",
            ));
        }
        Ok(Some(QuorumSettings {
            node_id,
            roles,
            voters,
            controller_listen,
            election_timeout: Duration::from_millis(cluster.election_timeout_ms),
            broker_heartbeat_interval: Duration::from_millis(cluster.broker_heartbeat_interval_ms),
            broker_session_timeout: Duration::from_millis(cluster.broker_session_timeout_ms),
            metadata_snapshot_bytes: cluster.metadata_snapshot_bytes,
            auto_leader_rebalance: cluster.auto_leader_rebalance,
            leader_imbalance_check_interval: Duration::from_millis(
                cluster.leader_imbalance_check_interval_ms,
            ),
            leader_imbalance_per_broker_percentage: cluster.leader_imbalance_per_broker_percentage,
            unclean_leader_election: cluster.unclean_leader_election_enable,
        }))
    }

    /// The voters' ids, sorted.
    pub fn voter_ids(&self) -> Vec<i32> {
        self.voters.iter().map(|v| v.id).collect()
    }

    /// The voter `id`'s controller listener, if `id` is a voter.
    pub fn voter_address(&self, id: i32) -> Option<&str> {
        self.voters
            .iter()
            .find(|v| v.id == id)
            .map(|v| v.address.as_str())
    }
}

/// Parses Kafka's `controller.quorum.voters`: `id@host:port` entries separated by commas.
pub fn parse_voters(text: &str) -> Result<Vec<Voter>, ConfigError> {
    const SETTING: &str = "cluster.controller_quorum_voters";
    let mut voters = Vec::new();
    for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (id, address) = entry
            .split_once('@')
            .ok_or_else(|| invalid(SETTING, &format!("{entry:?} is not id@host:port")))?;
        let id: i32 = id
            .trim()
            .parse()
            .ok()
            .filter(|id| *id >= 0)
            .ok_or_else(|| invalid(SETTING, &format!("{entry:?}: the id is not a node id")))?;
        let address = address.trim();
        let port_ok = address
            .rsplit_once(':')
            .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
        if !port_ok {
            return Err(invalid(
                SETTING,
                &format!("{entry:?}: {address:?} is not host:port"),
            ));
        }
        if voters.iter().any(|v: &Voter| v.id == id) {
            return Err(invalid(SETTING, &format!("voter {id} is listed twice")));
        }
        voters.push(Voter {
            id,
            address: address.to_owned(),
        });
    }
    voters.sort_by_key(|v| v.id);
    Ok(voters)
}

fn parse_roles(roles: &[String], is_voter: bool) -> Result<Roles, ConfigError> {
    if roles.is_empty() {
        return Ok(Roles {
            broker: true,
            controller: is_voter,
        });
    }
    let mut parsed = Roles {
        broker: false,
        controller: false,
    };
    for role in roles {
        match role.as_str() {
            "broker" => parsed.broker = true,
            "controller" => parsed.controller = true,
            other => {
                return Err(invalid(
                    "cluster.process_roles",
                    &format!("{other:?} is neither \"broker\" nor \"controller\""),
                ))
            }
        }
    }
    Ok(parsed)
}

fn resolve(setting: &'static str, address: &str) -> Result<SocketAddr, ConfigError> {
    address
        .to_socket_addrs()
        .map_err(|e| invalid(setting, &format!("{address:?}: {e}")))?
        .next()
        .ok_or_else(|| invalid(setting, &format!("{address:?} resolves to no address")))
}

fn invalid(setting: &'static str, reason: &str) -> ConfigError {
    ConfigError::Invalid {
        setting,
        reason: reason.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(voters: &str, roles: &[&str]) -> ClusterConfig {
        ClusterConfig {
            controller_quorum_voters: voters.into(),
            process_roles: roles.iter().map(|r| r.to_string()).collect(),
            ..ClusterConfig::default()
        }
    }

    const THREE: &str = "1@127.0.0.1:19093, 2@127.0.0.1:29093,3@127.0.0.1:39093";

    #[test]
    fn no_voters_is_a_single_broker() {
        assert_eq!(
            QuorumSettings::resolve(0, &ClusterConfig::default()).unwrap(),
            None
        );
    }

    #[test]
    fn a_voter_defaults_to_combined_mode_on_its_voter_address() {
        let settings = QuorumSettings::resolve(2, &cluster(THREE, &[]))
            .unwrap()
            .unwrap();
        assert_eq!(
            settings.roles,
            Roles {
                broker: true,
                controller: true
            }
        );
        assert_eq!(settings.voter_ids(), vec![1, 2, 3]);
        assert_eq!(
            settings.controller_listen,
            Some("127.0.0.1:29093".parse().unwrap())
        );
        assert_eq!(settings.voter_address(3), Some("127.0.0.1:39093"));
    }

    #[test]
    fn a_non_voter_is_a_broker_only() {
        let settings = QuorumSettings::resolve(7, &cluster(THREE, &[]))
            .unwrap()
            .unwrap();
        assert_eq!(
            settings.roles,
            Roles {
                broker: true,
                controller: false
            }
        );
        assert_eq!(settings.controller_listen, None);
    }

    #[test]
    fn roles_must_agree_with_the_voter_list() {
        assert!(QuorumSettings::resolve(7, &cluster(THREE, &["controller"])).is_err());
        assert!(QuorumSettings::resolve(1, &cluster(THREE, &["broker"])).is_err());
        assert!(QuorumSettings::resolve(1, &cluster(THREE, &["broker", "voter"])).is_err());
        let controller_only = QuorumSettings::resolve(1, &cluster(THREE, &["controller"]))
            .unwrap()
            .unwrap();
        assert!(!controller_only.roles.broker);
    }

    #[test]
    fn bad_voter_lists_are_refused_with_the_entry_named() {
        for bad in [
            "1127.0.0.1:9093",
            "x@127.0.0.1:9093",
            "-1@127.0.0.1:9093",
            "1@127.0.0.1",
            "1@:9093",
            "1@127.0.0.1:9093,1@127.0.0.1:9094",
        ] {
            let err = parse_voters(bad).unwrap_err().to_string();
            assert!(err.contains("controller_quorum_voters"), "{bad}: {err}");
        }
    }

    #[test]
    fn quorum_settings_without_voters_are_refused() {
        let mut config = cluster("", &["broker"]);
        assert!(QuorumSettings::resolve(0, &config).is_err());
        config.process_roles.clear();
        config.controller_listen = Some("127.0.0.1:9093".into());
        assert!(QuorumSettings::resolve(0, &config).is_err());
    }

    #[test]
    fn heartbeats_must_come_more_often_than_the_session_times_out() {
        let mut config = cluster(THREE, &[]);
        config.broker_heartbeat_interval_ms = 4501;
        assert!(QuorumSettings::resolve(1, &config).is_err());
        config.broker_heartbeat_interval_ms = 4500;
        assert!(QuorumSettings::resolve(1, &config).is_ok());
        config.election_timeout_ms = 99;
        assert!(QuorumSettings::resolve(1, &config).is_err());
    }
}
