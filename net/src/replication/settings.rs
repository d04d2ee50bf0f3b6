//! The replica settings (the config file's `[replication]` table), with Kafka's names and
//! defaults. `min.insync.replicas` is a topic config, with its broker default among the
//! topic defaults.

/// Settings for replication, leader and follower side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReplicationSettings {
    /// `replica.lag.time.max.ms`: an ISR member that has not been caught up with the leader's
    /// log end for this long leaves the ISR. Kafka's default is 30 s; failover tuning will
    /// lower it (it is also how long acks=all produces stall behind a dead follower).
    pub replica_lag_time_max_ms: i64,
    /// `replica.fetch.wait.max.ms`: a follower's Fetch long-polls this long. Must stay below
    /// the lag time, or an idle partition's followers would drop out of the ISR between polls.
    pub replica_fetch_wait_max_ms: i32,
    /// `replica.fetch.min.bytes`: the leader answers a follower's Fetch once this much is ready.
    pub replica_fetch_min_bytes: i32,
    /// `replica.fetch.max.bytes`: per partition in a follower's Fetch.
    pub replica_fetch_max_bytes: i32,
    /// `replica.fetch.response.max.bytes`: for a follower's whole Fetch response.
    pub replica_fetch_response_max_bytes: i32,
    /// `replica.fetch.backoff.ms`: how long a follower partition waits after an error. A tenth
    /// of Kafka's 1 s: right after an election a follower often asks the new leader before it
    /// knows it leads, and every backoff then delays acks=all by as much.
    pub replica_fetch_backoff_ms: i64,
    /// How long a leader waits before re-sending an AlterPartition whose outcome is unknown
    /// (Kafka retries through its controller channel with `retry.backoff.ms`, 100 ms).
    pub alter_partition_retry_backoff_ms: i64,
}

impl Default for ReplicationSettings {
    fn default() -> Self {
        ReplicationSettings {
            replica_lag_time_max_ms: 30_000,
            replica_fetch_wait_max_ms: 500,
            replica_fetch_min_bytes: 1,
            replica_fetch_max_bytes: 1024 * 1024,
            replica_fetch_response_max_bytes: 10 * 1024 * 1024,
            replica_fetch_backoff_ms: 100,
            alter_partition_retry_backoff_ms: 100,
        }
    }
}

/// A day: no replica timing needs more, and bounding them keeps `now + backoff` far from
/// overflow.
const MAX_MS: i64 = 24 * 60 * 60 * 1000;

impl ReplicationSettings {
    /// Checks each setting's range (Kafka's, where it has one), naming the first one wrong.
    pub fn validate(&self) -> Result<(), String> {
        in_range(
            "replica.lag.time.max.ms",
            self.replica_lag_time_max_ms,
            1,
            MAX_MS,
        )?;
        in_range(
            "replica.fetch.wait.max.ms",
            i64::from(self.replica_fetch_wait_max_ms),
            0,
            MAX_MS,
        )?;
        // Kafka refuses this too: followers of an idle partition would fall out of the ISR.
        if i64::from(self.replica_fetch_wait_max_ms) > self.replica_lag_time_max_ms {
            return Err(format!(
                "replica.fetch.wait.max.ms ({}) must not exceed replica.lag.time.max.ms ({})",
                self.replica_fetch_wait_max_ms, self.replica_lag_time_max_ms
            ));
        }
        in_range(
            "replica.fetch.min.bytes",
            i64::from(self.replica_fetch_min_bytes),
            1,
            i64::from(i32::MAX),
        )?;
        in_range(
            "replica.fetch.max.bytes",
            i64::from(self.replica_fetch_max_bytes),
            0,
            i64::from(i32::MAX),
        )?;
        in_range(
            "replica.fetch.response.max.bytes",
            i64::from(self.replica_fetch_response_max_bytes),
            0,
            i64::from(i32::MAX),
        )?;
        in_range(
            "replica.fetch.backoff.ms",
            self.replica_fetch_backoff_ms,
            0,
            MAX_MS,
        )?;
        in_range(
            "alter_partition_retry_backoff_ms",
            self.alter_partition_retry_backoff_ms,
            0,
            MAX_MS,
        )?;
        Ok(())
    }
}

fn in_range(name: &str, value: i64, min: i64, max: i64) -> Result<(), String> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(format!(
            "{name} must be between {min} and {max}, not {value}"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_defaults_are_valid() {
        let s = ReplicationSettings::default();
        assert_eq!(s.replica_lag_time_max_ms, 30_000);
        assert_eq!(s.replica_fetch_max_bytes, 1 << 20);
        assert_eq!(s.replica_fetch_response_max_bytes, 10 << 20);
        assert_eq!(s.validate(), Ok(()));
    }

    #[test]
    fn out_of_range_settings_are_named() {
        let bad = |f: fn(&mut ReplicationSettings)| {
            let mut s = ReplicationSettings::default();
            f(&mut s);
            s.validate().unwrap_err()
        };
        assert!(bad(|s| s.replica_lag_time_max_ms = 0).contains("replica.lag.time.max.ms"));
        assert!(bad(|s| s.replica_fetch_wait_max_ms = -1).contains("replica.fetch.wait.max.ms"));
        assert!(bad(|s| s.replica_fetch_wait_max_ms = 40_000).contains("must not exceed"));
        assert!(bad(|s| s.replica_fetch_min_bytes = 0).contains("replica.fetch.min.bytes"));
        assert!(bad(|s| s.replica_fetch_backoff_ms = i64::MAX).contains("backoff"));
    }
}
