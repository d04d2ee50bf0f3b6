//! The broker's configuration: built-in defaults, then a TOML file, then command-line flags.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use runnel_engine::rt::{BackendChoice, RuntimeConfig};
use serde::Deserialize;

/// Broker settings. Every field has a default, so an empty file (or none) is a valid config.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address the broker listens on (every shard binds it with SO_REUSEPORT).
    pub listen: String,
    /// Directory holding the partitions' logs and the broker's metadata.
    pub data_dir: PathBuf,
    /// Number of shards (threads pinned to cores); 0 means one per online core.
    pub cores: usize,
    /// I/O backend settings.
    pub io: IoConfig,
    /// Shutdown behaviour.
    pub shutdown: ShutdownConfig,
}

/// The `[io]` table.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct IoConfig {
    /// `auto`, `uring` or `epoll`.
    pub backend: String,
    /// Submission queue entries per shard ring.
    pub ring_entries: u32,
    /// Threads of the epoll backend's file I/O pool.
    pub blocking_threads: usize,
    /// Microseconds an idle shard polls before blocking (0: block at once; spends CPU to cut
    /// wake-up latency).
    pub idle_poll_us: u64,
}

/// The `[shutdown]` table.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ShutdownConfig {
    /// How long in-flight work may take to finish after SIGTERM/SIGINT, in milliseconds.
    pub grace_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:9092".into(),
            data_dir: PathBuf::from("./data"),
            cores: 0,
            io: IoConfig::default(),
            shutdown: ShutdownConfig::default(),
        }
    }
}

impl Default for IoConfig {
    fn default() -> Self {
        let runtime = RuntimeConfig::default();
        IoConfig {
            backend: "auto".into(),
            ring_entries: runtime.ring_entries,
            blocking_threads: runtime.blocking_threads,
            idle_poll_us: runtime.idle_poll.as_micros() as u64,
        }
    }
}

impl Default for ShutdownConfig {
    fn default() -> Self {
        ShutdownConfig {
            grace_ms: RuntimeConfig::default().shutdown_grace.as_millis() as u64,
        }
    }
}

/// A configuration that could not be loaded or makes no sense.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config {path}: {source}")]
    Parse {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
    #[error("invalid setting {setting}: {reason}")]
    Invalid {
        setting: &'static str,
        reason: String,
    },
}

impl Config {
    /// Loads a TOML file; settings it leaves out keep their defaults.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.into(),
            source,
        })?;
        Self::parse(&text).map_err(|source| ConfigError::Parse {
            path: path.into(),
            source: Box::new(source),
        })
    }

    /// Parses TOML text.
    pub fn parse(text: &str) -> Result<Config, toml::de::Error> {
        toml::from_str(text)
    }

    /// The listen address, resolved.
    pub fn listen_addr(&self) -> Result<SocketAddr, ConfigError> {
        use std::net::ToSocketAddrs;
        let invalid = |reason: String| ConfigError::Invalid {
            setting: "listen",
            reason,
        };
        self.listen
            .to_socket_addrs()
            .map_err(|e| invalid(format!("{:?}: {e}", self.listen)))?
            .next()
            .ok_or_else(|| invalid(format!("{:?} resolves to no address", self.listen)))
    }

    /// The runtime settings this config asks for.
    pub fn runtime(&self) -> Result<RuntimeConfig, ConfigError> {
        let backend: BackendChoice =
            self.io
                .backend
                .parse()
                .map_err(|reason| ConfigError::Invalid {
                    setting: "io.backend",
                    reason,
                })?;
        if self.io.ring_entries == 0 || !self.io.ring_entries.is_power_of_two() {
            return Err(ConfigError::Invalid {
                setting: "io.ring_entries",
                reason: format!("{} is not a power of two", self.io.ring_entries),
            });
        }
        Ok(RuntimeConfig {
            cores: self.cores,
            backend,
            ring_entries: self.io.ring_entries,
            blocking_threads: self.io.blocking_threads.max(1),
            shutdown_grace: Duration::from_millis(self.shutdown.grace_ms),
            idle_poll: Duration::from_micros(self.io.idle_poll_us),
            ..RuntimeConfig::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_means_defaults() {
        let config = Config::parse("").unwrap();
        assert_eq!(config, Config::default());
        assert_eq!(
            config.listen_addr().unwrap(),
            "127.0.0.1:9092".parse().unwrap()
        );
        assert_eq!(config.data_dir, PathBuf::from("./data"));
        assert_eq!(config.runtime().unwrap().backend, BackendChoice::Auto);
    }

    #[test]
    fn file_overrides_what_it_names() {
        let config = Config::parse("cores = 2\n[io]\nbackend = \"epoll\"\n").unwrap();
        assert_eq!(config.cores, 2);
        assert_eq!(config.runtime().unwrap().backend, BackendChoice::Epoll);
        assert_eq!(config.io.ring_entries, IoConfig::default().ring_entries);
    }

    #[test]
    fn typos_are_rejected() {
        assert!(Config::parse("listn = \"x\"").is_err());
        assert!(Config::parse("[io]\nbakend = \"epoll\"").is_err());
    }

    #[test]
    fn bad_values_name_the_setting() {
        let mut config = Config::default();
        config.io.backend = "kqueue".into();
        assert!(config
            .runtime()
            .unwrap_err()
            .to_string()
            .contains("io.backend"));
        config.io.backend = "auto".into();
        config.io.ring_entries = 1000;
        assert!(config
            .runtime()
            .unwrap_err()
            .to_string()
            .contains("io.ring_entries"));
        config.listen = "not an address".into();
        assert!(config.listen_addr().is_err());
    }
}
