//! `runnel-bench`'s command line. Scripts (bench/latency-suite.sh), bench/RESULTS.md and the
//! README call these subcommands and flags by name: renaming one breaks them.

use std::path::PathBuf;

use clap::builder::{RangedI64ValueParser, RangedU64ValueParser};
use clap::{Parser, Subcommand};

/// Runnel's load generator: end-to-end throughput and latency against a running broker, and
/// this machine's limits to compare them with.
#[derive(Debug, Parser)]
#[command(name = "runnel-bench", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// This machine's limits: loopback bandwidth and round trip, page-cache and synced append
    /// bandwidth and fdatasync latency in --dir, and wake-up lateness.
    Limits {
        /// Directory the append and fdatasync measurements write their scratch files in.
        #[arg(long, value_name = "DIR", default_value = ".")]
        dir: PathBuf,
        /// Seconds spent on each bandwidth measurement.
        #[arg(long, value_name = "S", default_value_t = 5, value_parser = at_least_one())]
        seconds: u64,
    },
    /// Runs a workload file (bench/workloads/) and prints rates and latency percentiles.
    Run {
        /// The broker's Kafka address.
        #[arg(long, value_name = "HOST:PORT")]
        bootstrap: String,
        /// Workload file (TOML; see bench/workloads/).
        #[arg(long, value_name = "FILE")]
        workload: PathBuf,
        /// Shards of Runnel's runtime the generator's producers and consumers run on; 0: one
        /// per online core.
        #[arg(long, value_name = "N", default_value_t = 1)]
        cores: usize,
        /// Microseconds an idle generator shard spins before it sleeps (0: sleeps at once).
        /// Spinning keeps the generator's own wake-ups out of the latencies it measures, at
        /// the cost of a core per shard: for a generator pinned to cores of its own.
        #[arg(long, value_name = "US", default_value_t = 0)]
        idle_poll_us: u64,
        /// Also write the report as JSON to this file (default: not written).
        #[arg(long, value_name = "OUT")]
        json: Option<PathBuf>,
        /// Also write SVG plots (latency distribution, throughput over time) into this
        /// directory, created if missing (default: no plots).
        #[arg(long, value_name = "DIR")]
        plots: Option<PathBuf>,
    },
    /// TCP bandwidth over 127.0.0.1 (1 MiB writes).
    Loopback {
        /// Seconds to measure for.
        #[arg(long, value_name = "S", default_value_t = 5, value_parser = at_least_one())]
        seconds: u64,
    },
    /// Prints the broker's /metrics as served, one sample per line (`runnelctl stats` prints
    /// them as a table).
    Stats {
        /// The broker's admin address (its `admin_listen`).
        #[arg(long, value_name = "HOST:PORT")]
        admin: String,
    },
    /// A group of --members members over a new --partitions-partition topic; each round
    /// restarts one member and times until every member has synced the next generation.
    Rebalance {
        /// The broker's Kafka address.
        #[arg(long, value_name = "HOST:PORT")]
        bootstrap: String,
        /// Group members (one thread and connection each).
        #[arg(long, value_name = "N", default_value_t = 3, value_parser = at_least_one_usize())]
        members: usize,
        /// Partitions of the topic the group consumes.
        #[arg(long, value_name = "P", default_value_t = 12, value_parser = clap::value_parser!(i32).range(1..))]
        partitions: i32,
        /// The members' heartbeat interval, in milliseconds.
        #[arg(long, value_name = "MS", default_value_t = 100)]
        heartbeat_ms: u64,
        /// Restarts to time.
        #[arg(long, value_name = "R", default_value_t = 10, value_parser = at_least_one_usize())]
        rounds: usize,
    },
    /// Apache Iggy's pinned benchmarks in Kafka's protocol: --producers producers, each with a
    /// topic of one partition of its own, send a prebuilt batch over and over; --consumers of
    /// them are each read back by a consumer while written. Prints MB/s in and out and the CPU
    /// the generator (and, with --broker-pid, the broker) used.
    Pinned {
        /// The broker's Kafka address.
        #[arg(long, value_name = "HOST:PORT")]
        bootstrap: String,
        /// Producers (threads, connections and topics).
        #[arg(long, value_name = "N", default_value_t = 2, value_parser = at_least_one_usize())]
        producers: usize,
        /// Consumers, each reading one producer's topic (at most --producers).
        #[arg(long, value_name = "N", default_value_t = 0)]
        consumers: usize,
        /// Bytes of each message's value.
        #[arg(long, value_name = "B", default_value_t = 1000)]
        message_size: usize,
        /// Messages in each produce request's batch.
        #[arg(long, value_name = "N", default_value_t = 1000, value_parser = at_least_one_usize())]
        messages_per_batch: usize,
        /// Produce requests each producer keeps in flight.
        #[arg(long, value_name = "K", default_value_t = 1, value_parser = at_least_one_usize())]
        in_flight: usize,
        /// Kafka acks: 0, 1 or -1.
        #[arg(
            long,
            value_name = "A",
            default_value_t = 1,
            allow_negative_numbers = true,
            value_parser = kafka_acks()
        )]
        acks: i16,
        /// Seconds to run for.
        #[arg(long, value_name = "S", default_value_t = 10, value_parser = at_least_one())]
        seconds: u64,
        /// The topics are named <PREFIX>-<i>; they must not exist yet.
        #[arg(long, value_name = "PREFIX", default_value = "pinned")]
        topic_prefix: String,
        /// A topic config the topics are created with, NAME=VALUE (repeatable).
        #[arg(long = "topic-config", value_name = "NAME=VALUE", value_parser = name_value)]
        topic_configs: Vec<(String, String)>,
        /// The broker's process id, to report its CPU time (default: not reported).
        #[arg(long, value_name = "PID")]
        broker_pid: Option<u32>,
        /// Also write the report as JSON to this file (default: not written).
        #[arg(long, value_name = "OUT")]
        json: Option<PathBuf>,
    },
    /// Creates --topic (one partition, flush.policy=never) and produces the same batch to
    /// partition 0 over and over, --in-flight requests at a time.
    Produce {
        /// The broker's Kafka address.
        #[arg(long, value_name = "HOST:PORT")]
        bootstrap: String,
        /// Topic to create and produce to.
        #[arg(long, value_name = "T")]
        topic: String,
        /// Seconds to produce for.
        #[arg(long, value_name = "S", default_value_t = 5, value_parser = at_least_one())]
        seconds: u64,
        /// Records in each batch.
        #[arg(long, value_name = "N", default_value_t = 1000, value_parser = at_least_one_usize())]
        records_per_batch: usize,
        /// Bytes of each record's value.
        #[arg(long, value_name = "B", default_value_t = 1024)]
        record_bytes: usize,
        /// Kafka acks: 0 (no responses), 1 (the leader's append) or -1 (all in-sync replicas).
        #[arg(
            long,
            value_name = "A",
            default_value_t = 1,
            allow_negative_numbers = true,
            value_parser = kafka_acks()
        )]
        acks: i16,
        /// Produce requests in flight at once.
        #[arg(long, value_name = "K", default_value_t = 8, value_parser = at_least_one_usize())]
        in_flight: usize,
        /// Produce as an idempotent producer (a producer id, consecutive sequences), so the
        /// broker checks and records every batch's sequence.
        #[arg(long)]
        idempotent: bool,
        /// Produce as a transactional producer committing every N batches (0: no
        /// transactions): AddPartitionsToTxn, N batches, EndTxn; implies --idempotent.
        #[arg(long, value_name = "N", default_value_t = 0)]
        transaction_batches: u64,
    },
    /// Reads partition 0 of --topic from the start over and over; with --broker-pid, also the
    /// broker's CPU time per GiB served (from /proc).
    Fetch {
        /// The broker's Kafka address.
        #[arg(long, value_name = "HOST:PORT")]
        bootstrap: String,
        /// Topic to read (made by `produce`).
        #[arg(long, value_name = "T")]
        topic: String,
        /// Seconds to fetch for.
        #[arg(long, value_name = "S", default_value_t = 5, value_parser = at_least_one())]
        seconds: u64,
        /// The broker's process id, to report its CPU time per GiB (default: not reported).
        #[arg(long, value_name = "PID")]
        broker_pid: Option<u32>,
    },
}

/// `NAME=VALUE`, split at the first `=`.
fn name_value(arg: &str) -> Result<(String, String), String> {
    arg.split_once('=')
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .ok_or_else(|| format!("{arg:?} is not NAME=VALUE"))
}

/// The acks Kafka knows: 0 (no responses), 1 (the leader's append), -1 (all in-sync replicas).
fn kafka_acks() -> RangedI64ValueParser<i16> {
    RangedI64ValueParser::new().range(-1..=1)
}

/// Counts and durations where zero would divide by zero or never finish.
fn at_least_one() -> RangedU64ValueParser<u64> {
    RangedU64ValueParser::new().range(1..)
}

fn at_least_one_usize() -> RangedU64ValueParser<usize> {
    RangedU64ValueParser::new().range(1..)
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::{Cli, Command};

    fn parse(line: &str) -> Command {
        Cli::try_parse_from(line.split_whitespace())
            .unwrap_or_else(|e| panic!("{line}: {e}"))
            .command
    }

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    /// The command lines bench/latency-suite.sh, bench/RESULTS.md and the README use.
    #[test]
    fn the_documented_command_lines_parse() {
        for line in [
            "runnel-bench loopback --seconds 3",
            "runnel-bench limits --dir /tmp/b --seconds 3",
            "runnel-bench produce --bootstrap 127.0.0.1:19102 --topic t --seconds 4",
            "runnel-bench fetch --bootstrap 127.0.0.1:19102 --topic t --seconds 5 --broker-pid 42",
            "runnel-bench rebalance --bootstrap 127.0.0.1:19400 --rounds 20 --heartbeat-ms 100",
            "runnel-bench rebalance --bootstrap 127.0.0.1:19400 --rounds 5 --heartbeat-ms 3000",
            "runnel-bench run --bootstrap 127.0.0.1:19500 --workload w.toml --json r.json",
            "runnel-bench run --bootstrap 127.0.0.1:19500 --workload w.toml --json r.json --plots p",
            "runnel-bench stats --admin 127.0.0.1:19644",
            "runnel-bench run --bootstrap 127.0.0.1:19500 --idle-poll-us 1000 --workload w.toml",
            "runnel-bench pinned --bootstrap 127.0.0.1:19700 --producers 2 --consumers 2 --message-size 1000 --messages-per-batch 1000 --seconds 10",
            "runnel-bench pinned --bootstrap 127.0.0.1:19700 --producers 2 --seconds 10 --broker-pid 42",
        ] {
            parse(line);
        }
    }

    /// The defaults the hand-written parser had.
    #[test]
    fn defaults_are_unchanged() {
        match parse("runnel-bench limits") {
            Command::Limits { dir, seconds } => {
                assert_eq!((dir.to_str(), seconds), (Some("."), 5));
            }
            other => panic!("{other:?}"),
        }
        match parse("runnel-bench run --bootstrap b --workload w") {
            Command::Run {
                cores, json, plots, ..
            } => assert_eq!((cores, json, plots), (1, None, None)),
            other => panic!("{other:?}"),
        }
        match parse("runnel-bench rebalance --bootstrap b") {
            Command::Rebalance {
                members,
                partitions,
                heartbeat_ms,
                rounds,
                ..
            } => assert_eq!(
                (members, partitions, heartbeat_ms, rounds),
                (3, 12, 100, 10)
            ),
            other => panic!("{other:?}"),
        }
        match parse("runnel-bench produce --bootstrap b --topic t") {
            Command::Produce {
                seconds,
                records_per_batch,
                record_bytes,
                acks,
                in_flight,
                ..
            } => assert_eq!(
                (seconds, records_per_batch, record_bytes, acks, in_flight),
                (5, 1000, 1024, 1, 8)
            ),
            other => panic!("{other:?}"),
        }
        match parse("runnel-bench pinned --bootstrap b --topic-config flush.policy=never") {
            Command::Pinned {
                producers,
                consumers,
                message_size,
                messages_per_batch,
                in_flight,
                topic_configs,
                ..
            } => assert_eq!(
                (
                    producers,
                    consumers,
                    message_size,
                    messages_per_batch,
                    in_flight,
                    topic_configs
                ),
                (
                    2,
                    0,
                    1000,
                    1000,
                    1,
                    vec![("flush.policy".into(), "never".into())]
                )
            ),
            other => panic!("{other:?}"),
        }
        assert!(Cli::try_parse_from([
            "runnel-bench",
            "pinned",
            "--bootstrap",
            "b",
            "--topic-config",
            "x"
        ])
        .is_err());
        match parse("runnel-bench fetch --bootstrap b --topic t") {
            Command::Fetch {
                seconds,
                broker_pid,
                ..
            } => assert_eq!((seconds, broker_pid), (5, None)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn acks_takes_minus_one_but_nothing_kafka_does_not_know() {
        match parse("runnel-bench produce --bootstrap b --topic t --acks -1") {
            Command::Produce { acks, .. } => assert_eq!(acks, -1),
            other => panic!("{other:?}"),
        }
        for bad in ["2", "-2", "all"] {
            let line = [
                "runnel-bench",
                "produce",
                "--bootstrap",
                "b",
                "--topic",
                "t",
            ];
            assert!(Cli::try_parse_from(line.into_iter().chain(["--acks", bad])).is_err());
        }
        match parse("runnel-bench pinned --bootstrap b --acks -1") {
            Command::Pinned { acks, .. } => assert_eq!(acks, -1),
            other => panic!("{other:?}"),
        }
        for bad in ["2", "-2", "all"] {
            let line = ["runnel-bench", "pinned", "--bootstrap", "b", "--acks", bad];
            assert!(Cli::try_parse_from(line).is_err());
        }
    }

    /// Zero would divide by zero or never finish; clap refuses it up front.
    #[test]
    fn counts_that_cannot_be_zero_are_refused() {
        for line in [
            "runnel-bench loopback --seconds 0",
            "runnel-bench rebalance --bootstrap b --members 0",
            "runnel-bench rebalance --bootstrap b --rounds 0",
            "runnel-bench rebalance --bootstrap b --partitions 0",
            "runnel-bench produce --bootstrap b --topic t --in-flight 0",
            "runnel-bench produce --bootstrap b --topic t --records-per-batch 0",
        ] {
            assert!(
                Cli::try_parse_from(line.split_whitespace()).is_err(),
                "{line}"
            );
        }
    }
}
