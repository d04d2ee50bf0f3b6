//! Helpers for integration tests that run the real `runnel` binary.

pub mod cluster;
pub mod kafka;
pub mod proxy;
pub mod python;
pub mod requests;
pub mod runnelctl;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The `runnel` binary next to this test executable (target/<profile>/runnel), or `RUNNEL_BIN`.
pub fn broker_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("RUNNEL_BIN") {
        return PathBuf::from(path);
    }
    workspace_binary("runnel", "runnel-net")
}

/// The workspace binary `name` (of package `package`) next to this test executable
/// (target/<profile>/deps/<test> -> target/<profile>/<name>).
pub fn workspace_binary(name: &str, package: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test executable lives in target/<profile>/deps");
    let binary = profile_dir.join(name);
    assert!(
        binary.exists(),
        "{} is missing: build it first (`cargo build -p {package}`; scripts/test.sh builds every binary)",
        binary.display()
    );
    binary
}

/// Backends under test: `RUNNEL_TEST_BACKENDS` (comma-separated), default `uring,epoll`.
pub fn backends_under_test() -> Vec<&'static str> {
    let list = std::env::var("RUNNEL_TEST_BACKENDS").unwrap_or_else(|_| "uring,epoll".into());
    ["uring", "epoll"]
        .into_iter()
        .filter(|b| list.split(',').any(|x| x.trim() == *b))
        .collect()
}

/// A fresh, empty directory under the system temp dir, removed on drop.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!("runnel-test-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running broker process, killed on drop if still alive.
#[derive(Debug)]
pub struct Broker {
    child: Child,
    pub addr: SocketAddr,
    /// Every log line seen so far.
    pub log: Vec<String>,
    lines: mpsc::Receiver<String>,
}

impl Broker {
    /// Starts `runnel` with `args` (plus `--listen 127.0.0.1:0` unless given) and waits for its
    /// "listening" line.
    pub fn start(args: &[&str]) -> Result<Broker, String> {
        let mut command = Command::new(broker_binary());
        if !args.contains(&"--listen") {
            command.args(["--listen", "127.0.0.1:0"]);
        }
        command.args(args);
        Self::spawn(command)
    }

    /// Starts `runnel` on `backend` with two shards (unless `extra` says `--cores`) and its
    /// data in `<dir>/data`, plus `extra` arguments; panics if it doesn't start.
    pub fn start_in(dir: &TempDir, backend: &str, extra: &[&str]) -> Broker {
        Self::start_in_env(dir, backend, extra, &[])
    }

    /// [`start_in`](Self::start_in) with environment variables set for the broker (such as
    /// `RUNNEL_FAULTS`).
    pub fn start_in_env(
        dir: &TempDir,
        backend: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Broker {
        let data = dir.path().join("data");
        let mut args = vec!["--io-backend", backend];
        if !extra.contains(&"--cores") {
            args.extend(["--cores", "2"]);
        }
        args.push("--data-dir");
        args.push(data.to_str().expect("UTF-8 temp path"));
        args.extend_from_slice(extra);
        let mut command = Command::new(broker_binary());
        if !args.contains(&"--listen") {
            command.args(["--listen", "127.0.0.1:0"]);
        }
        command.args(&args).envs(env.iter().copied());
        Broker::spawn(command).unwrap_or_else(|e| panic!("broker did not start: {e}"))
    }

    /// Starts a prepared `runnel` command (its stderr is captured) and waits for its
    /// "listening" line.
    pub fn spawn(mut command: Command) -> Result<Broker, String> {
        // RUNNEL_TEST_BROKER_LOG=<filter> turns up the broker's logging and echoes it to the
        // test's stderr, for debugging a test.
        let echo = std::env::var("RUNNEL_TEST_BROKER_LOG").ok();
        command
            .env("RUNNEL_LOG", echo.as_deref().unwrap_or("info"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = command
            .spawn()
            .map_err(|e| format!("cannot start runnel: {e}"))?;
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, lines) = mpsc::channel();
        let pid = child.id();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if echo.is_some() {
                    eprintln!("broker[{pid}]: {line}");
                }
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut broker = Broker {
            child,
            addr: "0.0.0.0:0".parse().expect("valid"),
            log: Vec::new(),
            lines,
        };
        let line = broker.wait_for_log("runnel listening on ", Duration::from_secs(20))?;
        let addr = line
            .split("runnel listening on ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .ok_or_else(|| format!("no address in {line:?}"))?;
        broker.addr = addr
            .parse()
            .map_err(|e| format!("bad address {addr:?}: {e}"))?;
        Ok(broker)
    }

    /// Waits until a log line containing `needle` appears; returns it.
    pub fn wait_for_log(&mut self, needle: &str, timeout: Duration) -> Result<String, String> {
        if let Some(line) = self.log.iter().find(|l| l.contains(needle)) {
            return Ok(line.clone());
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let found = line.contains(needle);
                    self.log.push(line.clone());
                    if found {
                        return Ok(line);
                    }
                }
                Err(_) => {
                    return Err(format!(
                        "no log line with {needle:?}; log so far:\n{}",
                        self.log.join("\n")
                    ))
                }
            }
        }
    }

    /// Sends a signal to the broker.
    pub fn signal(&self, signal: libc::c_int) {
        // SAFETY: kill(2) on our own child's pid has no memory-safety preconditions.
        unsafe { libc::kill(self.child.id() as libc::pid_t, signal) };
    }

    /// Waits for the broker to exit, up to `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<ExitStatus, String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().map_err(|e| e.to_string())? {
                while let Ok(line) = self.lines.recv_timeout(Duration::from_millis(200)) {
                    self.log.push(line);
                }
                return Ok(status);
            }
            if Instant::now() >= deadline {
                return Err(format!("broker still running after {timeout:?}"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The broker's resident memory in bytes (VmRSS in /proc).
    pub fn rss_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("the broker's /proc status");
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|kb| kb.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kb| kb * 1024)
            .expect("VmRSS in /proc/<pid>/status")
    }

    /// The admin port's address, from the broker's log (started with `--admin-listen`).
    pub fn admin_addr(&self) -> String {
        self.log
            .iter()
            .find_map(|l| l.split("admin port (GET /metrics) on ").nth(1))
            .and_then(|rest| rest.split_whitespace().next())
            .expect("the admin port is logged")
            .to_owned()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
