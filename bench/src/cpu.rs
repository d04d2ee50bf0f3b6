//! CPU time used by a process, so every throughput figure can say what it cost and a run
//! whose load generator ran out of CPU shows as one.

/// utime + stime of process `pid`, in seconds (from `/proc/<pid>/stat`).
pub fn process_seconds(pid: u32) -> Result<f64, String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_err(|e| format!("process {pid}: {e}"))?;
    let bad = || format!("process {pid}: unexpected /proc/{pid}/stat format");
    // After the command: state is field 3; utime and stime are fields 14 and 15.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .ok_or_else(bad)?
        .1
        .split_whitespace()
        .collect();
    let field = |i: usize| -> Result<u64, String> {
        fields.get(i).and_then(|f| f.parse().ok()).ok_or_else(bad)
    };
    let ticks = field(11)? + field(12)?;
    // SAFETY: sysconf has no memory-safety preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Ok(ticks as f64 / hz)
}

/// User + system CPU time of this process, all threads, in seconds.
pub fn own_seconds() -> Result<f64, String> {
    process_seconds(std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_time_grows_with_work_and_unknown_processes_are_errors() {
        let before = own_seconds().unwrap();
        let mut x = 0u64;
        let started = std::time::Instant::now();
        while started.elapsed() < std::time::Duration::from_millis(200) {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        std::hint::black_box(x);
        let spent = own_seconds().unwrap() - before;
        assert!(spent > 0.1, "{spent}");
        assert!(process_seconds(u32::MAX).is_err());
    }
}
