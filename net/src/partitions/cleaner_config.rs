//! A shard's log cleaner settings, from the broker's static `log.cleaner.*` settings.
//!
//! Kafka's cleaner threads share `log.cleaner.dedupe.buffer.size` and
//! `log.cleaner.io.max.bytes.per.second`; here every shard runs a cleaner of its own (for its
//! own logs, on its own thread), so each gets an even share, and the broker as a whole uses
//! what Kafka's would.

use std::time::Duration;

use runnel_engine::log::compaction::CleanerConfig;

use super::configs::broker_state::BrokerConfigs;

/// The cleaner settings of one of `shards` shards.
pub fn cleaner_config(broker: &BrokerConfigs, shards: usize) -> CleanerConfig {
    let defaults = CleanerConfig::default();
    let shards = shards.max(1);
    let dedupe_total = broker
        .static_parsed::<u64>("log.cleaner.dedupe.buffer.size")
        .map_or(defaults.dedupe_buffer_bytes, |n| {
            usize::try_from(n).unwrap_or(usize::MAX)
        });
    let rate_total = broker
        .static_parsed::<f64>("log.cleaner.io.max.bytes.per.second")
        .unwrap_or(defaults.io_max_bytes_per_second);
    CleanerConfig {
        enabled: broker
            .static_parsed("log.cleaner.enable")
            .unwrap_or(defaults.enabled),
        dedupe_buffer_bytes: dedupe_total / shards,
        // Unlimited stays unlimited (f64::MAX / n is still no limit, but reads as one).
        io_max_bytes_per_second: if rate_total == f64::MAX {
            f64::MAX
        } else {
            rate_total / shards as f64
        },
        backoff: broker
            .static_parsed::<u64>("log.cleaner.backoff.ms")
            .map_or(defaults.backoff, |ms| Duration::from_millis(ms.max(1))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn broker(pairs: &[(&str, &str)]) -> BrokerConfigs {
        BrokerConfigs {
            static_settings: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..BrokerConfigs::default()
        }
    }

    #[test]
    fn kafkas_defaults_without_settings() {
        assert_eq!(cleaner_config(&broker(&[]), 1), CleanerConfig::default());
    }

    #[test]
    fn memory_and_io_are_shared_by_the_shards() {
        let config = cleaner_config(
            &broker(&[
                ("log.cleaner.enable", "false"),
                ("log.cleaner.dedupe.buffer.size", "8388608"),
                ("log.cleaner.io.max.bytes.per.second", "1.0E8"),
                ("log.cleaner.backoff.ms", "50"),
            ]),
            4,
        );
        assert_eq!(
            config,
            CleanerConfig {
                enabled: false,
                dedupe_buffer_bytes: 2 << 20,
                io_max_bytes_per_second: 2.5e7,
                backoff: Duration::from_millis(50),
            }
        );
    }

    #[test]
    fn as_the_config_file_reports_them() {
        let config = crate::config::Config::default();
        let settings = config.kafka_broker_settings("h:1", "127.0.0.1:1".parse().unwrap());
        let broker = BrokerConfigs {
            static_settings: settings,
            ..BrokerConfigs::default()
        };
        let shared = cleaner_config(&broker, 2);
        assert!(shared.enabled);
        assert_eq!(shared.dedupe_buffer_bytes, 64 << 20);
        assert_eq!(shared.io_max_bytes_per_second, f64::MAX, "still unlimited");
        assert_eq!(shared.backoff, Duration::from_secs(15));
    }
}
