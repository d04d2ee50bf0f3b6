//! Python Kafka clients (kafka-python, confluent-kafka) from the tests: scripts run by the
//! interpreter of `.venv`, which `scripts/setup.sh` (through `scripts/python-clients.sh`)
//! installs, or `RUNNEL_TEST_PYTHON`.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

/// The Python interpreter with the clients installed; panics, saying how to install them, if
/// there is none (a test that needs a client must not pass without it).
pub fn interpreter() -> PathBuf {
    if let Some(path) = std::env::var_os("RUNNEL_TEST_PYTHON") {
        return PathBuf::from(path);
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python");
    assert!(
        venv.exists(),
        "{} is missing: run scripts/python-clients.sh (scripts/setup.sh runs it) to install \
         kafka-python and confluent-kafka",
        venv.display()
    );
    venv
}

/// Runs `script` (Python source) with `args` (as `sys.argv[1:]`); returns its output whatever
/// the exit status.
pub fn run(script: &str, args: &[&str]) -> Output {
    Command::new(interpreter())
        .arg("-c")
        .arg(script)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("the Python interpreter runs")
}

/// Runs `script` and returns its stdout; panics with its stderr if it fails.
pub fn run_ok(script: &str, args: &[&str]) -> String {
    let output = run(script, args);
    assert!(
        output.status.success(),
        "python script failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8 output")
}
