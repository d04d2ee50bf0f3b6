//! Process limits the broker needs raised before it opens its logs.

use nix::sys::resource::{getrlimit, setrlimit, Resource};

/// Raises the soft limit on open files to the hard limit and returns the new soft limit.
///
/// Every partition holds three descriptors (segment, offset index, time index) per open
/// segment, plus one per connection: the common default soft limit of 1024 runs out at a few
/// hundred partitions, while the hard limit is usually far higher. Kafka's documentation asks
/// operators to raise it; the broker does what it can itself.
///
/// Where the broker may raise the hard limit too (run as root, or with CAP_SYS_RESOURCE), it
/// asks for [`WANTED_OPEN_FILES`] (at most the kernel's `fs.nr_open`): ten thousand partitions
/// need more than the 20,000 some machines allow by default.
pub fn raise_open_file_limit() -> nix::Result<u64> {
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    let ceiling = kernel_open_file_ceiling().min(WANTED_OPEN_FILES);
    if hard < ceiling && setrlimit(Resource::RLIMIT_NOFILE, ceiling, ceiling).is_ok() {
        return Ok(ceiling);
    }
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard)?;
    }
    Ok(soft.max(hard))
}

/// Open files the broker asks for when it may raise its hard limit.
pub const WANTED_OPEN_FILES: u64 = 1 << 20;

/// The most open files the kernel lets a process have (`fs.nr_open`).
fn kernel_open_file_ceiling() -> u64 {
    std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(WANTED_OPEN_FILES)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn soft_limit_reaches_the_hard_limit() {
        // Lower the soft limit first (always allowed) so the raise has something to do.
        let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
        setrlimit(Resource::RLIMIT_NOFILE, (hard / 2).max(256), hard).unwrap();
        let raised = raise_open_file_limit().unwrap();
        let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
        assert_eq!(soft, hard);
        assert_eq!(raised, soft);
    }
}
