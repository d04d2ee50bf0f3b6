//! `runnelctl probe`: which I/O backend this machine runs (the first question an operator has
//! on a new machine).

use std::process::ExitCode;

use runnel_engine::rt;

pub fn run(require_uring: bool) -> ExitCode {
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
