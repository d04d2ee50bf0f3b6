//! `runnelctl stats`: a running broker's latency histograms and counters, from its admin port.

use std::process::ExitCode;

pub fn run(admin: &str, raw: bool) -> ExitCode {
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
            eprintln!("runnelctl: {e}");
            ExitCode::FAILURE
        }
    }
}
