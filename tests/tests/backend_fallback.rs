//! The broker under a seccomp filter that denies io_uring (as Docker's default profile does):
//! `auto` falls back to epoll and says why; a forced `uring` refuses to start and says why.

use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::Duration;

use runnel_tests::{broker_binary, Broker, TempDir};
use seccompiler::{BpfProgram, SeccompAction, SeccompFilter, TargetArch};

/// A filter that fails io_uring_setup with EPERM and allows everything else.
fn deny_io_uring() -> BpfProgram {
    let arch: TargetArch = std::env::consts::ARCH.try_into().expect("supported arch");
    let rules = BTreeMap::from([(libc::SYS_io_uring_setup, vec![])]);
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        arch,
    )
    .expect("valid filter");
    filter.try_into().expect("compiles to BPF")
}

fn broker_without_io_uring(args: &[&str]) -> Command {
    let program = deny_io_uring();
    let mut command = Command::new(broker_binary());
    command
        .args(["--listen", "127.0.0.1:0", "--cores", "1"])
        .args(args)
        .env("RUNNEL_LOG", "info");
    // SAFETY: the closure only makes the prctl/seccomp system calls of `apply_filter` on a
    // program built before fork; it allocates nothing.
    unsafe {
        command
            .pre_exec(move || seccompiler::apply_filter(&program).map_err(std::io::Error::other));
    }
    command
}

#[test]
fn auto_falls_back_to_epoll_and_logs_why() {
    let dir = TempDir::new("fallback");
    let mut broker = Broker::spawn(broker_without_io_uring(&[
        "--data-dir",
        dir.path().to_str().unwrap(),
    ]))
    .unwrap();
    std::net::TcpStream::connect(broker.addr).expect("serves on the fallback backend");
    broker.signal(libc::SIGTERM);
    let status = broker.wait_exit(Duration::from_secs(15)).unwrap();
    let log = broker.log.join("\n");
    assert!(status.success(), "{status:?}\n{log}");
    assert!(log.contains("falling back to epoll"), "{log}");
    assert!(log.contains("seccomp"), "names the likely cause: {log}");
    assert!(log.contains("backend=epoll"), "{log}");
    assert_eq!(
        log.matches("falling back to epoll").count(),
        1,
        "logged once: {log}"
    );
}

#[test]
fn forced_uring_refuses_to_start_and_names_the_reason() {
    let dir = TempDir::new("forced");
    let out = broker_without_io_uring(&[
        "--io-backend",
        "uring",
        "--data-dir",
        dir.path().to_str().unwrap(),
    ])
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("io.backend = \"uring\""), "{stderr}");
    assert!(stderr.contains("Operation not permitted"), "{stderr}");
}
