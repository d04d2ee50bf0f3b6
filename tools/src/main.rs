//! `runnelctl`: Runnel's admin CLI. It answers the first question an operator has on a new
//! machine (which I/O backend will run here) and prints a running broker's measurements.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use runnel_engine::rt;

#[derive(Debug, Parser)]
#[command(version, about = "Runnel admin CLI")]
struct Cli {
    #[command(subcommand)]
    command: Command,
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
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Probe { require_uring } => probe(require_uring),
        Command::Stats { admin, raw } => stats(&admin, raw),
    }
}

fn stats(admin: &str, raw: bool) -> ExitCode {
    match runnel_net::metrics::report::fetch(admin) {
        Ok(text) if raw => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Ok(text) => {
            print!("{}", runnel_net::metrics::report::table(&text));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn probe(require_uring: bool) -> ExitCode {
    let kernel =
        std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_else(|_| "unknown".into());
    println!("kernel: {}", kernel.trim());
    println!("arch: {}", std::env::consts::ARCH);
    match rt::probe_uring() {
        Ok(()) => {
            println!("io_uring: available, all required operations supported");
            println!("auto backend: {}", rt::IoBackend::Uring);
            ExitCode::SUCCESS
        }
        Err(reason) => {
            println!("io_uring: unavailable: {reason}");
            println!("auto backend: {}", rt::IoBackend::Epoll);
            if require_uring {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
    }
}
