//! `runnelctl`: Runnel's admin CLI. One module per command group; the options every command
//! shares are [`Global`]. Commands that talk to a broker use [`client::Client`] (admin
//! requests) and print through [`output::Report`] (a table, or JSON with `--output json`).
//! Errors are one line on stderr and exit code 1.

mod client;
mod cluster;
mod config;
mod consume;
mod group;
mod logs;
mod lookup;
mod output;
mod probe;
mod produce;
mod stats;
mod topic;
mod tune;

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(version, about = "Runnel admin CLI")]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

/// Options every command takes.
#[derive(Debug, Clone, clap::Args)]
pub struct Global {
    /// Brokers' Kafka addresses, comma-separated (as Kafka's --bootstrap-server): the first
    /// that answers is used.
    #[arg(
        long,
        global = true,
        value_name = "HOST:PORT[,HOST:PORT...]",
        default_value = "127.0.0.1:9092"
    )]
    pub bootstrap: String,
    /// How to print results.
    #[arg(long, global = true, value_enum, default_value = "table")]
    pub output: output::Format,
    /// Seconds to wait for the broker (connecting, and each answer).
    #[arg(long, global = true, value_name = "S", default_value_t = 30)]
    pub timeout: u64,
}

impl Global {
    /// A connection to the first bootstrap broker that answers.
    pub fn connect(&self) -> Result<client::Client, String> {
        let timeout = Duration::from_secs(self.timeout.max(1));
        let mut failures = Vec::new();
        for addr in self.bootstrap_addrs() {
            match client::Client::connect(addr, timeout) {
                Ok(client) => return Ok(client),
                Err(e) => failures.push(e),
            }
        }
        Err(match failures.len() {
            0 => "--bootstrap names no broker".to_owned(),
            _ => failures.join("; "),
        })
    }

    /// Whether `addr` is one of the bootstrap addresses.
    pub fn is_bootstrap(&self, addr: &str) -> bool {
        self.bootstrap_addrs().any(|a| a == addr)
    }

    /// The addresses `--bootstrap` lists, in order.
    fn bootstrap_addrs(&self) -> impl Iterator<Item = &str> {
        self.bootstrap
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check whether io_uring works on this machine and which backend `io.backend = "auto"`
    /// picks. Exits with 1 when io_uring is unavailable and --require-uring is given.
    Probe {
        /// Fail (exit code 1) unless io_uring is usable.
        #[arg(long)]
        require_uring: bool,
    },
    /// Print a broker's latency histograms (per API and version, append, fsync, write,
    /// queueing, response send; merged over shards) and its counters, from its admin port.
    Stats {
        /// The broker's admin address (`admin_listen` / `--admin-listen`).
        #[arg(long, default_value = "127.0.0.1:9644")]
        admin: String,
        /// Print the Prometheus text as served instead of the table.
        #[arg(long)]
        raw: bool,
    },
    /// The cluster: its id, brokers and controller.
    #[command(subcommand)]
    Cluster(cluster::ClusterCommand),
    /// Topics: create, list, describe, alter-config, delete, add-partitions.
    #[command(subcommand)]
    Topic(topic::TopicCommand),
    /// Broker configs and the cluster-wide defaults: get, set.
    #[command(subcommand)]
    Config(config::ConfigCommand),
    /// Write the lines of stdin to a topic, one record each.
    Produce(produce::ProduceArgs),
    /// Print a topic's records (from chosen offsets, or in a consumer group).
    Consume(consume::ConsumeArgs),
    /// Consumer groups: list, describe (lag), delete, reset-offsets, seek.
    #[command(subcommand)]
    Group(group::GroupCommand),
    /// Offline tools for a stopped broker's data directory: dump and verify segments.
    #[command(subcommand)]
    Log(logs::LogCommand),
    /// This host's OS settings against a tuning profile, with what to change and why.
    #[command(subcommand)]
    Tune(tune::TuneCommand),
}

/// Runs a command that reports failure as one line.
fn exit_code(result: Result<(), String>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("runnelctl: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Parses the command line. A usage mistake is one line (clap's first, with a pointer to
/// `--help`) and exit code 2; `--help` and `--version` print as clap prints them.
fn parse() -> Result<Cli, ExitCode> {
    use clap::error::ErrorKind;
    match Cli::try_parse() {
        Ok(cli) => Ok(cli),
        Err(e)
            if matches!(
                e.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) =>
        {
            e.exit()
        }
        Err(e) => {
            // The message is the lines before the blank line that precedes clap's tips and
            // usage ("required arguments were not provided:" lists them on the next lines).
            let rendered = e.to_string();
            let message: Vec<&str> = rendered
                .lines()
                .take_while(|l| !l.trim().is_empty() && !l.starts_with("Usage:"))
                .map(str::trim)
                .collect();
            let message = message.join(" ");
            let message = message.strip_prefix("error: ").unwrap_or(&message);
            eprintln!("runnelctl: {message} (see --help)");
            Err(ExitCode::from(2))
        }
    }
}

fn main() -> ExitCode {
    let cli = match parse() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    let global = &cli.global;
    match cli.command {
        Command::Probe { require_uring } => probe::run(require_uring),
        Command::Stats { admin, raw } => stats::run(&admin, raw),
        Command::Cluster(command) => exit_code(cluster::run(command, global)),
        Command::Topic(command) => exit_code(topic::run(command, global)),
        Command::Config(command) => exit_code(config::run(command, global)),
        Command::Produce(args) => exit_code(produce::run(args, global)),
        Command::Consume(args) => exit_code(consume::run(args, global)),
        Command::Group(command) => exit_code(group::run(command, global)),
        Command::Log(command) => exit_code(logs::run(command, global)),
        Command::Tune(command) => exit_code(tune::run(command, global)),
    }
}
