//! Injected storage faults, for testing what the broker does when its disk fails: a rule
//! makes one kind of file operation fail with an errno (or panic the thread) for paths that
//! contain a given text.
//!
//! Rules come from the `RUNNEL_FAULTS` environment variable, installed once per process
//! ([`install_from_env`]): `op:ERRNO:path-text[:count]`, separated by `;`. `op` is `open`,
//! `write`, `sync` (fdatasync and fsync), `replace` (the atomic replace of a small file),
//! `panic` (panics on open, for testing how a dead shard is handled) or `slow` (every write
//! first waits, for testing producers faster than the disk; its second field is the wait in
//! milliseconds) or `powercut` (a simulated power loss at the N-th write to a matching file,
//! N in the second field: every file opened since start-up is cut back to the length it had at
//! its last fsync or fdatasync, or when it was opened, and the process aborts);
//! `ERRNO` is EIO, ENOSPC, EMFILE, EACCES or a number; `count` limits how many calls fail
//! (default: every one).
//!
//! The power cut models what a crash of the machine loses and SIGKILL cannot show: appended
//! data that was never synced. It keeps new files (their directory entries) and never tears
//! a write in half, so it shows that acknowledged data was synced, not how the file system
//! recovers its own metadata.
//!
//! Without rules, files don't even remember their paths and each operation pays one atomic
//! load, so the seam costs nothing in production.

use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// The environment variable holding the rules.
pub const ENV: &str = "RUNNEL_FAULTS";

/// A kind of file operation a rule applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultOp {
    Open,
    Write,
    Sync,
    Replace,
    /// Panics instead of opening.
    Panic,
    /// Delays writes (its rule's errno field holds milliseconds).
    Slow,
    /// Cuts the power at the N-th matching write (N in the errno field).
    PowerCut,
}

/// One rule: `op` on a path containing `path_text` fails with `errno`, `remaining` more times
/// (`None`: always).
#[derive(Debug)]
pub struct Rule {
    op: FaultOp,
    errno: i32,
    path_text: String,
    remaining: Option<AtomicU64>,
}

static RULES: OnceLock<Vec<Rule>> = OnceLock::new();

/// Installs the rules in `RUNNEL_FAULTS`, if set. Returns them as text for the caller to log
/// (a broker running with injected faults should say so loudly), or why they don't parse.
pub fn install_from_env() -> Result<Option<String>, String> {
    let Ok(spec) = std::env::var(ENV) else {
        return Ok(None);
    };
    let rules = parse(&spec)?;
    if RULES.set(rules).is_err() {
        return Err(format!("{ENV}: faults are already installed"));
    }
    Ok(Some(spec))
}

/// Parses rules (see the module docs).
pub fn parse(spec: &str) -> Result<Vec<Rule>, String> {
    spec.split(';')
        .filter(|rule| !rule.trim().is_empty())
        .map(|rule| parse_rule(rule.trim()).map_err(|e| format!("{ENV}: {rule:?}: {e}")))
        .collect()
}

fn parse_rule(rule: &str) -> Result<Rule, String> {
    let mut fields = rule.splitn(4, ':');
    let op = match fields.next().unwrap_or_default() {
        "open" => FaultOp::Open,
        "write" => FaultOp::Write,
        "sync" => FaultOp::Sync,
        "replace" => FaultOp::Replace,
        "panic" => FaultOp::Panic,
        "slow" => FaultOp::Slow,
        "powercut" => FaultOp::PowerCut,
        other => return Err(format!("unknown operation {other:?}")),
    };
    let errno = match fields.next().ok_or("no errno")? {
        "EIO" => libc::EIO,
        "ENOSPC" => libc::ENOSPC,
        "EMFILE" => libc::EMFILE,
        "EACCES" => libc::EACCES,
        number => number
            .parse()
            .map_err(|_| format!("unknown errno {number:?}"))?,
    };
    let path_text = fields.next().ok_or("no path text")?.to_owned();
    let remaining = match fields.next() {
        None if op == FaultOp::PowerCut => Some(AtomicU64::new(errno.max(1) as u64)),
        None => None,
        Some(count) => Some(AtomicU64::new(
            count.parse().map_err(|_| format!("bad count {count:?}"))?,
        )),
    };
    Ok(Rule {
        op,
        errno,
        path_text,
        remaining,
    })
}

/// Whether any rule is installed (files then keep their paths for [`check`]).
pub(crate) fn active() -> bool {
    RULES.get().is_some_and(|rules| !rules.is_empty())
}

/// The injected outcome of `op` on `path`: an error, a panic, or `Ok` to go ahead.
pub(crate) fn check(op: FaultOp, path: &Path) -> io::Result<()> {
    let Some(rules) = RULES.get() else {
        return Ok(());
    };
    check_rules(rules, op, path)
}

fn check_rules(rules: &[Rule], op: FaultOp, path: &Path) -> io::Result<()> {
    let path = path.to_string_lossy();
    for rule in rules {
        let applies = match rule.op {
            FaultOp::Panic => op == FaultOp::Open,
            FaultOp::Slow | FaultOp::PowerCut => false,
            other => other == op,
        };
        if !applies || !path.contains(&rule.path_text) || !take_one(rule) {
            continue;
        }
        if rule.op == FaultOp::Panic {
            panic!("injected panic opening {path}");
        }
        return Err(io::Error::from_raw_os_error(rule.errno));
    }
    Ok(())
}

/// How long a write to `path` waits first, if a `slow` rule matches it. The slow device does
/// one write at a time: each write ends a rule's delay after the previous one ended (or after
/// it arrived, if the device was idle), so a flood of writes queues instead of overlapping.
pub(crate) fn write_delay(path: &Path) -> Option<std::time::Duration> {
    let rules = RULES.get()?;
    let path = path.to_string_lossy();
    let rule = rules
        .iter()
        .find(|rule| rule.op == FaultOp::Slow && path.contains(&rule.path_text))?;
    let per_write = std::time::Duration::from_millis(rule.errno.max(0) as u64);
    static BUSY_UNTIL: std::sync::Mutex<Option<std::time::Instant>> = std::sync::Mutex::new(None);
    let now = std::time::Instant::now();
    let mut busy_until = BUSY_UNTIL.lock().unwrap_or_else(|e| e.into_inner());
    let done = busy_until.map_or(now, |until| until.max(now)) + per_write;
    *busy_until = Some(done);
    Some(done - now)
}

/// Every file opened while a power cut is armed, with the length known to be durable.
static DURABLE: std::sync::Mutex<std::collections::BTreeMap<std::path::PathBuf, u64>> =
    std::sync::Mutex::new(std::collections::BTreeMap::new());

fn durable() -> std::sync::MutexGuard<'static, std::collections::BTreeMap<std::path::PathBuf, u64>>
{
    DURABLE.lock().unwrap_or_else(|e| e.into_inner())
}

/// Whether a power cut is armed (files then record what is durable).
pub(crate) fn power_cut_armed() -> bool {
    RULES
        .get()
        .is_some_and(|rules| rules.iter().any(|rule| rule.op == FaultOp::PowerCut))
}

/// A file was opened with `len` bytes: what it held then counts as durable.
pub(crate) fn opened(path: &Path, len: u64) {
    durable().entry(path.to_path_buf()).or_insert(len);
}

/// A sync of the file at `path` completed with the file `len` bytes long.
pub(crate) fn synced(path: &Path, len: u64) {
    durable().insert(path.to_path_buf(), len);
}

/// Before a write to `path`: cuts the power if this is the armed write (never returns then).
pub(crate) fn before_write(path: &Path) {
    let Some(rules) = RULES.get() else {
        return;
    };
    let text = path.to_string_lossy();
    for rule in rules {
        if rule.op != FaultOp::PowerCut || !text.contains(&rule.path_text) {
            continue;
        }
        let left = rule
            .remaining
            .as_ref()
            .map(|n| n.fetch_sub(1, Ordering::SeqCst));
        if left == Some(1) {
            cut_power();
        }
    }
}

/// Cuts every known file back to its durable length and aborts, as a machine losing power
/// loses what was never synced.
fn cut_power() -> ! {
    for (path, len) in durable().iter() {
        if let Ok(file) = std::fs::OpenOptions::new().write(true).open(path) {
            if file.metadata().is_ok_and(|m| m.len() > *len) {
                let _ = file.set_len(*len);
            }
        }
    }
    eprintln!("injected power cut: unsynced data dropped, aborting");
    std::process::abort();
}

/// Consumes one of the rule's failures; false once they are used up.
fn take_one(rule: &Rule) -> bool {
    match &rule.remaining {
        None => true,
        Some(left) => left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_parse_and_fail_matching_calls_as_often_as_told() {
        let rules = parse("write:EIO:orders-1/; replace:ENOSPC:topics.toml:2;sync:28:x").unwrap();
        let path = Path::new("/data/orders-1/00000000000000000000.log");
        let err = check_rules(&rules, FaultOp::Write, path).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EIO));
        assert!(
            check_rules(&rules, FaultOp::Sync, path).is_ok(),
            "another op"
        );
        assert!(check_rules(&rules, FaultOp::Write, Path::new("/data/orders-10/a")).is_ok());
        let topics = Path::new("/data/topics.toml");
        for _ in 0..2 {
            let err = check_rules(&rules, FaultOp::Replace, topics).unwrap_err();
            assert_eq!(err.raw_os_error(), Some(libc::ENOSPC));
        }
        assert!(
            check_rules(&rules, FaultOp::Replace, topics).is_ok(),
            "count used up"
        );
        let err = check_rules(&rules, FaultOp::Sync, Path::new("/x")).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(28));
    }

    #[test]
    fn bad_rules_are_refused_with_a_reason() {
        for bad in [
            "read:EIO:x",
            "write:EWHAT:x",
            "write:EIO",
            "write:EIO:x:many",
        ] {
            let err = parse(bad).unwrap_err();
            assert!(err.contains(ENV), "{bad}: {err}");
        }
        assert!(parse("").unwrap().is_empty());
        let slow = parse("slow:20:slowdisk-0/").unwrap();
        let path = Path::new("/data/slowdisk-0/x.log");
        assert!(
            check_rules(&slow, FaultOp::Write, path).is_ok(),
            "slow never fails a write"
        );
    }

    #[test]
    #[should_panic(expected = "injected panic opening")]
    fn a_panic_rule_panics_on_open() {
        let rules = parse("panic:0:doomed-").unwrap();
        let _ = check_rules(&rules, FaultOp::Open, Path::new("/data/doomed-0/x.log"));
    }
}
