//! Running the `runnelctl` binary from the tests, and the checks every runnelctl test makes of
//! its outcome: success with output, or a clean failure (one line on stderr, exit code 1).

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::{workspace_binary, Broker};

/// The runnelctl binary next to the test executable.
pub fn command() -> Command {
    Command::new(workspace_binary("runnelctl", "runnel-tools"))
}

/// Runs runnelctl against `broker` with `args`.
pub fn against(broker: &Broker, args: &[&str]) -> Output {
    with_stdin(broker, args, b"")
}

/// Runs runnelctl against `broker` with `args` and `stdin`, killed if it runs past a minute
/// (a hang fails the test instead of stalling the suite).
pub fn with_stdin(broker: &Broker, args: &[&str], stdin: &[u8]) -> Output {
    let bootstrap = broker.addr.to_string();
    let mut child = command()
        .args(["--bootstrap", &bootstrap])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("runnelctl runs");
    let mut input = child.stdin.take().expect("stdin");
    input.write_all(stdin).expect("write stdin");
    drop(input);
    let pid = child.id() as libc::pid_t;
    let (done, watchdog) = mpsc::channel::<()>();
    let killer = std::thread::spawn(move || {
        if watchdog.recv_timeout(Duration::from_secs(60)).is_err() {
            // SAFETY: kill(2) on the pid of a child not yet reaped (wait_with_output below
            // reaps it only after it exits).
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    });
    let output = child.wait_with_output().expect("runnelctl output");
    let _ = done.send(());
    killer.join().expect("watchdog");
    assert!(
        output.status.code().is_some(),
        "runnelctl {args:?} hung and was killed: {}",
        String::from_utf8_lossy(&output.stdout)
    );
    output
}

/// stdout of a command that must succeed.
pub fn ok(output: Output) -> String {
    assert!(
        output.status.success(),
        "runnelctl failed: {}\n{}",
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(&output.stdout)
    );
    String::from_utf8(output.stdout).expect("UTF-8 output")
}

/// (stdout, the one-line stderr) of a command that must fail cleanly with exit code 1.
pub fn fails_with_stdout(output: Output) -> (String, String) {
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = String::from_utf8(output.stderr).expect("UTF-8 errors");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr:?}");
    assert!(stderr.starts_with("runnelctl: "), "{stderr:?}");
    (String::from_utf8(output.stdout).expect("UTF-8"), stderr)
}

/// The one-line stderr of a command that must fail cleanly with exit code 1.
pub fn fails(output: Output) -> String {
    fails_with_stdout(output).1
}
