//! `runnelctl tune check`: this host's OS settings against what a tuning profile
//! (tuning/*.toml) expects, one line per item with a status (ok / warn / info) and, where it
//! matters, what to change and why. Advice only: exits 0 unless `--strict` and a warning.
//! Every read is best effort: a file the kernel doesn't have becomes an `info` line.

use std::path::{Path, PathBuf};

use runnel_engine::rt;
use runnel_net::config::Config;
use serde_json::json;

use crate::output::{Format, Report};
use crate::Global;

#[derive(Debug, clap::Subcommand)]
pub enum TuneCommand {
    /// Report io_uring, cores, SMT, NUMA, NIC IRQ affinity, transparent huge pages, dirty page
    /// write-back, the kernel's unbound workqueues, a VM's free page reporting, the data
    /// directory's file system and mount options, the right to run real-time shards, pipe
    /// sizes for zero-copy fetch, open-file limits and the page size, against a profile's
    /// expectations.
    Check {
        /// A tuning profile: low-latency, realtime, throughput, durable (tuning/NAME.toml), or
        /// a path. Without one, the broker's defaults.
        #[arg(long, value_name = "NAME")]
        profile: Option<String>,
        /// The broker's data directory (default: the profile's `data_dir`).
        #[arg(long, value_name = "PATH")]
        data_dir: Option<PathBuf>,
        /// Exit with 1 when any item is a warning.
        #[arg(long)]
        strict: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Ok,
    Warn,
    Info,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Info => "info",
        }
    }
}

/// One checked item.
#[derive(Debug, Clone)]
struct Item {
    name: &'static str,
    value: String,
    status: Status,
    advice: String,
}

fn item(name: &'static str, value: impl Into<String>, status: Status, advice: &str) -> Item {
    Item {
        name,
        value: value.into(),
        status,
        advice: advice.to_owned(),
    }
}

/// What the checks need to know of the profile.
#[derive(Debug, Clone)]
struct Expect {
    name: String,
    cores: usize,
    idle_poll_us: u64,
    inline_writes: bool,
    realtime_priority: u8,
    backend: String,
    flush_policy: String,
    data_dir: PathBuf,
}

impl Expect {
    fn from_config(name: String, config: &Config) -> Expect {
        Expect {
            name,
            cores: config.cores,
            idle_poll_us: config.io.idle_poll_us,
            inline_writes: config.io.inline_writes,
            realtime_priority: config.io.realtime_priority,
            backend: config.io.backend.clone(),
            flush_policy: config
                .topic_defaults
                .get("flush.policy")
                .cloned()
                .unwrap_or_else(|| "never".into()),
            data_dir: config.data_dir.clone(),
        }
    }

    /// Latency-sensitive: spinning shards or appends on the shard thread.
    fn latency_sensitive(&self) -> bool {
        self.idle_poll_us > 0 || self.inline_writes || self.realtime_priority > 0
    }
}

pub fn run(command: TuneCommand, global: &Global) -> Result<(), String> {
    match command {
        TuneCommand::Check {
            profile,
            data_dir,
            strict,
        } => check(profile.as_deref(), data_dir, strict, global.output),
    }
}

fn check(
    profile: Option<&str>,
    data_dir: Option<PathBuf>,
    strict: bool,
    format: Format,
) -> Result<(), String> {
    let mut expect = match profile {
        None => Expect::from_config("defaults".into(), &Config::default()),
        Some(name) => {
            let path = runnel_net::config::profile_path(name)?;
            let config = Config::load(&path).map_err(|e| e.to_string())?;
            Expect::from_config(name.to_owned(), &config)
        }
    };
    if let Some(dir) = data_dir {
        expect.data_dir = dir;
    }
    let items = vec![
        kernel(),
        io_uring(&expect),
        cores(&expect),
        smt(&expect),
        numa(),
        irq_affinity(&expect),
        thp(&expect),
        dirty_ratios(&expect),
        dirty_expire(&expect),
        unbound_workqueues(&expect),
        free_page_reporting(),
        realtime(&expect),
        data_dir_mount(&expect),
        pipe_max_size(),
        open_files(),
        page_size(),
    ];
    let warnings = items.iter().filter(|i| i.status == Status::Warn).count();
    let mut report = Report::new(&["item", "value", "status", "advice"]);
    for i in &items {
        report.row(vec![
            i.name.to_owned(),
            i.value.clone(),
            i.status.as_str().to_owned(),
            i.advice.clone(),
        ]);
    }
    report.json = Some(json!({
        "profile": expect.name,
        "data_dir": expect.data_dir.display().to_string(),
        "warnings": warnings,
        "checks": items.iter().map(|i| json!({
            "item": i.name, "value": i.value, "status": i.status.as_str(), "advice": i.advice,
        })).collect::<Vec<_>>(),
    }));
    if format == Format::Table {
        println!("profile: {}", expect.name);
    }
    report.print(format);
    if strict && warnings > 0 {
        return Err(format!("{warnings} warning(s) (--strict)"));
    }
    Ok(())
}

fn read(path: impl AsRef<Path>) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_owned())
}

fn read_num(path: impl AsRef<Path>) -> Option<u64> {
    read(path)?.parse().ok()
}

fn kernel() -> Item {
    let release = read("/proc/sys/kernel/osrelease").unwrap_or_else(|| "unknown".into());
    item(
        "kernel",
        format!("{release} ({})", std::env::consts::ARCH),
        Status::Info,
        "",
    )
}

fn io_uring(expect: &Expect) -> Item {
    match rt::probe_uring() {
        Ok(()) => item("io_uring", "available", Status::Ok, ""),
        Err(reason) => {
            let advice = if expect.backend == "uring" {
                "the profile forces io.backend = \"uring\": the broker will refuse to start. Allow io_uring (kernel.io_uring_disabled = 0; a seccomp profile that permits io_uring_setup, Docker's default does not) or use \"auto\""
            } else {
                "the broker falls back to epoll (more syscalls, blocking-pool file I/O, sendfile instead of splice). Allow io_uring: kernel.io_uring_disabled = 0, a seccomp profile that permits it"
            };
            item(
                "io_uring",
                format!("unavailable: {reason}"),
                Status::Warn,
                advice,
            )
        }
    }
}

fn online_cpus() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

fn cores(expect: &Expect) -> Item {
    let online = online_cpus();
    let shards = if expect.cores == 0 {
        online
    } else {
        expect.cores
    };
    let value = format!(
        "{online} usable, profile cores = {} ({shards} shards)",
        expect.cores
    );
    if shards > online {
        return item(
            "cores",
            value,
            Status::Warn,
            "more shards than cores: shards share cores and preempt each other; set cores to at most the usable cores",
        );
    }
    if expect.idle_poll_us > 0 && shards == online && online > 1 {
        return item(
            "cores",
            value,
            Status::Warn,
            "idle polling with a shard on every core leaves none for NIC interrupts, the kernel's write-back and other work; set cores to one or two fewer than the usable cores",
        );
    }
    item("cores", value, Status::Ok, "")
}

fn smt(expect: &Expect) -> Item {
    let active = read("/sys/devices/system/cpu/smt/active");
    let control = read("/sys/devices/system/cpu/smt/control");
    match (active.as_deref(), control.as_deref()) {
        (Some("1"), _) if expect.latency_sensitive() => item(
            "smt",
            "on",
            Status::Warn,
            "sibling hyper-threads share a core's execution units, so a shard's latency depends on its sibling's load: with low-latency, run one shard per physical core (cores = physical cores, siblings idle) or turn SMT off (echo off > /sys/devices/system/cpu/smt/control)",
        ),
        (Some("1"), _) => item(
            "smt",
            "on",
            Status::Info,
            "shards count hyper-threads as cores; for throughput that is usually fine",
        ),
        (Some("0"), Some(control @ ("off" | "forceoff"))) => item(
            "smt",
            format!("off ({control})"),
            Status::Ok,
            "SMT present but disabled: one hardware thread per core",
        ),
        _ => item(
            "smt",
            "none",
            Status::Ok,
            "no SMT: one hardware thread per core (as on Graviton and Ampere)",
        ),
    }
}

fn numa() -> Item {
    let nodes = std::fs::read_dir("/sys/devices/system/node")
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| {
                    let name = e.file_name();
                    let name = name.to_string_lossy();
                    name.strip_prefix("node")
                        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
                })
                .count()
        })
        .unwrap_or(0);
    match nodes {
        0 => item(
            "numa",
            "unknown",
            Status::Info,
            "no /sys/devices/system/node",
        ),
        1 => item("numa", "1 node", Status::Ok, ""),
        n => item(
            "numa",
            format!("{n} nodes"),
            Status::Warn,
            "shards on different nodes read each other's page cache and NIC buffers across the interconnect: run one broker per node (numactl --cpunodebind=N --membind=N, its own data dir and port) or give the broker the cores of one node (cores = cores per node, under taskset)",
        ),
    }
}

/// The IRQs of each network interface (MSI vectors, else the legacy line), best effort.
fn nic_irqs() -> Vec<(String, Vec<u32>)> {
    let Ok(entries) = std::fs::read_dir("/sys/class/net") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == "lo" {
            continue;
        }
        let device = entry.path().join("device");
        let mut irqs: Vec<u32> = std::fs::read_dir(device.join("msi_irqs"))
            .map(|e| {
                e.filter_map(Result::ok)
                    .filter_map(|e| e.file_name().to_str()?.parse().ok())
                    .collect()
            })
            .unwrap_or_default();
        if irqs.is_empty() {
            irqs.extend(
                read(device.join("irq"))
                    .and_then(|s| s.parse::<u32>().ok())
                    .filter(|&n| n > 0),
            );
        }
        if !irqs.is_empty() {
            irqs.sort_unstable();
            out.push((name, irqs));
        }
    }
    out.sort();
    out
}

fn irq_affinity(expect: &Expect) -> Item {
    let nics = nic_irqs();
    if nics.is_empty() {
        return item(
            "nic irq affinity",
            "no NIC IRQs found",
            Status::Info,
            "virtual or software interfaces only (or no permission to read /sys/class/net/*/device)",
        );
    }
    let all = format!("0-{}", online_cpus().saturating_sub(1));
    let mut spread = Vec::new();
    let mut everywhere = 0;
    let mut total = 0;
    for (nic, irqs) in &nics {
        let lists: Vec<String> = irqs
            .iter()
            .filter_map(|irq| read(format!("/proc/irq/{irq}/smp_affinity_list")))
            .collect();
        total += lists.len();
        everywhere += lists.iter().filter(|l| **l == all).count();
        let mut distinct = lists.clone();
        distinct.sort();
        distinct.dedup();
        spread.push(format!(
            "{nic}: {} irqs on {}",
            irqs.len(),
            distinct.join(" ")
        ));
    }
    let value = spread.join("; ");
    if expect.latency_sensitive() && total > 0 && everywhere == total {
        return item(
            "nic irq affinity",
            value,
            Status::Warn,
            "NIC interrupts may land on any core, interrupting shards: steer them to cores without shards (stop irqbalance; echo CPUS > /proc/irq/N/smp_affinity_list) and leave those cores out of `cores`",
        );
    }
    item(
        "nic irq affinity",
        value,
        Status::Info,
        "with low-latency, keep NIC interrupts on cores that run no shard",
    )
}

/// The selected value of a sysfs choice list such as `always [madvise] never`.
fn selected(choices: &str) -> Option<&str> {
    let start = choices.find('[')?;
    let end = choices[start..].find(']')? + start;
    Some(&choices[start + 1..end])
}

fn thp(expect: &Expect) -> Item {
    let Some(text) = read("/sys/kernel/mm/transparent_hugepage/enabled") else {
        return item("transparent hugepages", "unknown", Status::Info, "");
    };
    let mode = selected(&text).unwrap_or("unknown").to_owned();
    if mode == "always" {
        let status = if expect.latency_sensitive() {
            Status::Warn
        } else {
            Status::Info
        };
        return item(
            "transparent hugepages",
            mode,
            status,
            "khugepaged compaction and huge-page faults stall threads for milliseconds; the broker gains nothing from huge pages (its memory is buffers, data lives in the page cache): echo madvise > /sys/kernel/mm/transparent_hugepage/enabled",
        );
    }
    item("transparent hugepages", mode, Status::Ok, "")
}

fn dirty_ratios(expect: &Expect) -> Item {
    let ratio = read_num("/proc/sys/vm/dirty_ratio");
    let background = read_num("/proc/sys/vm/dirty_background_ratio");
    let bytes = read_num("/proc/sys/vm/dirty_bytes").unwrap_or(0);
    let background_bytes = read_num("/proc/sys/vm/dirty_background_bytes").unwrap_or(0);
    let (Some(ratio), Some(background)) = (ratio, background) else {
        return item("vm.dirty_ratio", "unknown", Status::Info, "");
    };
    let value = if bytes > 0 || background_bytes > 0 {
        format!("dirty_bytes={bytes} dirty_background_bytes={background_bytes}")
    } else {
        format!("dirty_ratio={ratio} dirty_background_ratio={background}")
    };
    if bytes == 0 && background_bytes == 0 {
        if background >= ratio {
            return item(
                "vm.dirty_ratio",
                value,
                Status::Warn,
                "background write-back starts no earlier than writers are throttled: set vm.dirty_background_ratio well below vm.dirty_ratio (e.g. 5 and 20)",
            );
        }
        if expect.inline_writes && (background > 10 || ratio < 20) {
            return item(
                "vm.dirty_ratio",
                value,
                Status::Warn,
                "appends are written on the shard thread (inline_writes), so a throttled write stalls the whole shard: start write-back early and throttle late (vm.dirty_background_ratio = 5, vm.dirty_ratio >= 20)",
            );
        }
        if expect.flush_policy == "never" && ratio < 20 {
            return item(
                "vm.dirty_ratio",
                value,
                Status::Warn,
                "with flush.policy = never the page cache absorbs bursts; writers are throttled past vm.dirty_ratio: raise it to 20-40 on machines with the memory",
            );
        }
    }
    item(
        "vm.dirty_ratio",
        value,
        Status::Ok,
        "lower both for steadier latency, raise vm.dirty_ratio for burst absorption",
    )
}

fn dirty_expire(expect: &Expect) -> Item {
    let Some(expire) = read_num("/proc/sys/vm/dirty_expire_centisecs") else {
        return item("vm.dirty_expire_centisecs", "unknown", Status::Info, "");
    };
    let advice = match expect.flush_policy.as_str() {
        "always" => "flush.policy = always syncs every append itself; write-back age does not matter for durability",
        "interval" => "the broker flushes on flush.ms itself; this only bounds data the kernel writes earlier",
        _ => "with flush.policy = never, acknowledged data reaches the disk only by write-back: this is (roughly) how long it may live only in memory; lower it (e.g. 500) to shrink what a power loss takes",
    };
    let status = if expect.flush_policy == "never" && expire > 3000 {
        Status::Warn
    } else {
        Status::Info
    };
    item(
        "vm.dirty_expire_centisecs",
        expire.to_string(),
        status,
        advice,
    )
}

fn unbound_workqueues(expect: &Expect) -> Item {
    unbound_workqueues_item(expect, read("/sys/devices/virtual/workqueue/cpumask"))
}

/// `flush.policy = always` waits on kernel work that no broker setting places: ext4 ends each
/// fdatasync of appended data by converting the segment's preallocated (unwritten) extents in
/// an unbound workqueue, on whichever core the scheduler finds. Measured (bench/RESULTS.md):
/// publish p99 0.72-0.78 ms with that work on the broker's core, up to 7.5 ms with it free to
/// land on a core a spinning process held.
fn unbound_workqueues_item(expect: &Expect, mask: Option<String>) -> Item {
    let value = mask.map_or_else(|| "unknown".into(), |m| format!("cpumask {m}"));
    let advice = if expect.flush_policy == "always" {
        "each fdatasync of appended data finishes in a kernel worker on any core of this mask: keep cores that a busy-polling or saturated process holds out of it (e.g. only the broker's cores when it is pinned: echo HEXMASK > /sys/devices/virtual/workqueue/cpumask), or the acknowledgements wait for that process's time slice"
    } else {
        ""
    };
    item("unbound workqueues", value, Status::Info, advice)
}

fn free_page_reporting() -> Item {
    // The parameter exists without a device to report to: only a bound balloon reports.
    let balloon = std::fs::read_dir("/sys/bus/virtio/drivers/virtio_balloon")
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .any(|e| e.file_name().to_string_lossy().starts_with("virtio"))
        })
        .unwrap_or(false);
    let order = read_num("/sys/module/page_reporting/parameters/page_reporting_order");
    free_page_reporting_item(order.filter(|_| balloon))
}

/// A VM whose balloon reports free pages hands memory the guest frees back to its host, and
/// page cache allocated from it later faults in from the host on first touch. Measured
/// (bench/RESULTS.md): 2 GiB of appends at 0.33-0.43 GB/s into such memory, 3.3-5.4 GB/s into
/// memory the host still backed.
fn free_page_reporting_item(order: Option<u64>) -> Item {
    match order {
        None => item("free page reporting", "none", Status::Ok, ""),
        Some(order) => item(
            "free page reporting",
            format!("blocks of order {order} and up"),
            Status::Info,
            "this VM gives memory it frees back to its host (virtio-balloon); page cache the broker allocates later (after deleted segments, restarts) is then faulted in from the host at a fraction of memory speed: where the host can spare the memory, turn reporting off for broker VMs",
        ),
    }
}

/// What lets this process run threads under `SCHED_FIFO`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct RealtimeRights {
    /// `CAP_SYS_NICE` among the effective capabilities (root has it unless dropped).
    cap_sys_nice: bool,
    /// The soft `RLIMIT_RTPRIO`, the highest priority an unprivileged process may take.
    rtprio_limit: u64,
}

fn realtime_rights() -> Option<RealtimeRights> {
    const CAP_SYS_NICE: u32 = 23;
    let status = read("/proc/self/status")?;
    let caps = status.lines().find_map(|l| l.strip_prefix("CapEff:"))?;
    let caps = u64::from_str_radix(caps.trim(), 16).ok()?;
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into the live local.
    if unsafe { libc::getrlimit(libc::RLIMIT_RTPRIO, &mut limit) } != 0 {
        return None;
    }
    Some(RealtimeRights {
        cap_sys_nice: caps & (1 << CAP_SYS_NICE) != 0,
        rtprio_limit: limit.rlim_cur,
    })
}

fn realtime(expect: &Expect) -> Item {
    let rt_runtime_us = read("/proc/sys/kernel/sched_rt_runtime_us")
        .and_then(|text| text.trim().parse::<i64>().ok());
    // The broker's own start-up check: warn exactly where it would refuse.
    let host_pid_namespace = Some(rt::realtime_workers_identifiable().is_ok());
    realtime_item(expect, realtime_rights(), rt_runtime_us, host_pid_namespace)
}

/// `io.realtime_priority` against what this process may do, the kernel's real-time
/// throttling (`rt_runtime_us`: the share of each second real-time threads may use; -1 none)
/// and whether it runs in the host's PID namespace (where shards can find their io_uring
/// workers by name).
fn realtime_item(
    expect: &Expect,
    rights: Option<RealtimeRights>,
    rt_runtime_us: Option<i64>,
    host_pid_namespace: Option<bool>,
) -> Item {
    const NAME: &str = "real-time shards";
    let priority = expect.realtime_priority;
    if priority == 0 {
        return item(
            NAME,
            "off",
            Status::Info,
            "where other processes share the broker's cores, io.realtime_priority (the realtime profile) keeps them from preempting shards mid-request",
        );
    }
    let value = format!("SCHED_FIFO {priority}");
    let allowed = rights.map(|r| r.cap_sys_nice || r.rtprio_limit >= u64::from(priority));
    if allowed == Some(false) {
        return item(
            NAME,
            value,
            Status::Warn,
            "this user may not use SCHED_FIFO at that priority and the broker would refuse to start: run it as root, grant CAP_SYS_NICE (AmbientCapabilities=CAP_SYS_NICE in the systemd unit) or raise RLIMIT_RTPRIO (LimitRTPRIO=)",
        );
    }
    if host_pid_namespace == Some(false) {
        return item(
            NAME,
            value,
            Status::Warn,
            "this process is in its own PID namespace (a container), where shards can't find their io_uring workers by name and the broker refuses real-time shards: run it in the host's PID namespace (Docker: --pid=host)",
        );
    }
    if rt_runtime_us == Some(-1) {
        return item(
            NAME,
            value,
            Status::Warn,
            "kernel.sched_rt_runtime_us = -1: nothing stops a real-time thread from keeping its core forever, so a shard stuck in a loop would starve the kernel's own work there; keep the default 950000",
        );
    }
    item(NAME, value, Status::Ok, "")
}

/// A mount from /proc/self/mountinfo.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Mount {
    point: String,
    options: String,
    fstype: String,
    source: String,
    super_options: String,
}

/// Undoes mountinfo's octal escapes (`\040` for a space).
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 3 < bytes.len() {
            if let Ok(v) = u8::from_str_radix(&field[i + 1..i + 4], 8) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_mountinfo(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let left: Vec<&str> = left.split(' ').collect();
            let right: Vec<&str> = right.split(' ').collect();
            Some(Mount {
                point: unescape(left.get(4)?),
                options: left.get(5)?.to_string(),
                fstype: right.first()?.to_string(),
                source: unescape(right.get(1)?),
                super_options: right.get(2).unwrap_or(&"").to_string(),
            })
        })
        .collect()
}

/// The mount holding `path` (the last, i.e. topmost, mount with the longest matching prefix).
fn mount_of<'a>(mounts: &'a [Mount], path: &Path) -> Option<&'a Mount> {
    mounts
        .iter()
        .filter(|m| path.starts_with(&m.point))
        .max_by_key(|m| Path::new(&m.point).components().count())
}

fn data_dir_mount(expect: &Expect) -> Item {
    let name = "data dir file system";
    // The data dir may not exist yet: its nearest existing ancestor will hold it.
    let mut path = std::path::absolute(&expect.data_dir).unwrap_or(expect.data_dir.clone());
    while !path.exists() {
        match path.parent() {
            Some(parent) => path = parent.to_path_buf(),
            None => break,
        }
    }
    let path = path.canonicalize().unwrap_or(path);
    let Some(text) = read("/proc/self/mountinfo") else {
        return item(name, "unknown", Status::Info, "no /proc/self/mountinfo");
    };
    let mounts = parse_mountinfo(&text);
    let Some(mount) = mount_of(&mounts, &path) else {
        return item(
            name,
            "unknown",
            Status::Info,
            "no mount found for the data dir",
        );
    };
    let value = format!(
        "{} on {} ({}; {}) for {}",
        mount.fstype,
        mount.point,
        mount.options,
        mount.super_options,
        expect.data_dir.display()
    );
    let opts: Vec<&str> = mount
        .options
        .split(',')
        .chain(mount.super_options.split(','))
        .collect();
    let mut warnings: Vec<&str> = Vec::new();
    match mount.fstype.as_str() {
        "xfs" | "ext4" => {}
        "tmpfs" | "ramfs" => warnings.push(
            "tmpfs keeps the log in memory: nothing survives a reboot and fsync means nothing; use a disk (xfs or ext4)",
        ),
        "overlay" => warnings.push(
            "overlayfs (a container's writable layer): put the data dir on a volume (xfs or ext4), copy-up and its metadata cost every new segment",
        ),
        "nfs" | "nfs4" | "cifs" | "fuse" => warnings.push(
            "a network file system: fsync and page-cache semantics differ; Kafka-style logs want a local disk",
        ),
        _ => warnings.push("not xfs or ext4 (what Runnel is tested on)"),
    }
    if opts.contains(&"sync") || opts.contains(&"dirsync") {
        warnings.push(
            "mounted sync: every write waits for the disk; flush.policy does this better per topic",
        );
    }
    if opts.contains(&"strictatime") {
        warnings
            .push("strictatime: every read updates inode times; mount with noatime or relatime");
    }
    if (opts.contains(&"nobarrier") || opts.contains(&"barrier=0"))
        && expect.flush_policy == "always"
    {
        warnings.push("barriers off: fdatasync may return before data is on stable storage, which breaks flush.policy = always");
    }
    if opts.contains(&"data=journal") {
        warnings.push("ext4 data=journal writes every byte twice; use data=ordered");
    }
    if warnings.is_empty() {
        let advice = if opts.contains(&"noatime") {
            ""
        } else {
            "noatime saves an inode update per read burst (relatime is nearly as good)"
        };
        return item(name, value, Status::Ok, advice);
    }
    item(name, value, Status::Warn, &warnings.join("; "))
}

fn pipe_max_size() -> Item {
    let Some(max) = read_num("/proc/sys/fs/pipe-max-size") else {
        return item("fs.pipe-max-size", "unknown", Status::Info, "");
    };
    if max < 1 << 20 {
        return item(
            "fs.pipe-max-size",
            max.to_string(),
            Status::Warn,
            "zero-copy fetch splices through 1 MiB pipes; an unprivileged broker gets at most this (else 64 KiB pipes and more splices per fetch): sysctl fs.pipe-max-size=1048576",
        );
    }
    item("fs.pipe-max-size", max.to_string(), Status::Ok, "")
}

fn open_files() -> Item {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into the live local.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    if rc != 0 {
        return item("open files", "unknown", Status::Info, "");
    }
    let show = |v: libc::rlim_t| {
        if v == libc::RLIM_INFINITY {
            "unlimited".to_string()
        } else {
            v.to_string()
        }
    };
    let value = format!(
        "soft {} hard {}",
        show(limit.rlim_cur),
        show(limit.rlim_max)
    );
    if limit.rlim_cur < 65536 {
        return item(
            "open files",
            value,
            Status::Warn,
            "each segment holds 3 files, each partition directory 1, each connection 1: raise the limit (ulimit -n 1048576, or LimitNOFILE= in the systemd unit)",
        );
    }
    item("open files", value, Status::Ok, "")
}

fn page_size() -> Item {
    let size = rt::page_size();
    match size {
        4096 => item("page size", "4 KiB", Status::Ok, ""),
        _ => item(
            "page size",
            format!("{} KiB", size / 1024),
            Status::Info,
            "large pages (common on aarch64 kernels): the page cache and splice work in these units, so small fetches and index reads touch more memory; see tuning/README.md (aarch64)",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn realtime_shards_need_the_right_and_the_kernels_throttle() {
        let mut expect = Expect::from_config("defaults".into(), &Config::default());
        let root = Some(RealtimeRights {
            cap_sys_nice: true,
            rtprio_limit: 0,
        });
        assert_eq!(
            realtime_item(&expect, root, Some(950_000), Some(true)).status,
            Status::Info
        );
        expect.realtime_priority = 10;
        assert_eq!(
            realtime_item(&expect, root, Some(950_000), Some(true)).status,
            Status::Ok
        );
        let limited = |rtprio_limit| {
            Some(RealtimeRights {
                cap_sys_nice: false,
                rtprio_limit,
            })
        };
        assert_eq!(
            realtime_item(&expect, limited(10), Some(950_000), Some(true)).status,
            Status::Ok
        );
        let refused = realtime_item(&expect, limited(9), Some(950_000), Some(true));
        assert_eq!(refused.status, Status::Warn);
        assert!(
            refused.advice.contains("CAP_SYS_NICE"),
            "{}",
            refused.advice
        );
        let unthrottled = realtime_item(&expect, root, Some(-1), Some(true));
        assert_eq!(unthrottled.status, Status::Warn);
        assert!(unthrottled.advice.contains("sched_rt_runtime_us"));
        let contained = realtime_item(&expect, root, Some(950_000), Some(false));
        assert_eq!(contained.status, Status::Warn);
        assert!(
            contained.advice.contains("--pid=host"),
            "{}",
            contained.advice
        );
        // Unknown rights: the broker's own start says; nothing to warn of here.
        assert_eq!(realtime_item(&expect, None, None, None).status, Status::Ok);
    }

    #[test]
    fn the_workqueue_mask_matters_to_always_only() {
        let mut expect = Expect::from_config("defaults".into(), &Config::default());
        let shown = unbound_workqueues_item(&expect, Some("3".into()));
        assert_eq!(
            (shown.value.as_str(), shown.advice.as_str()),
            ("cpumask 3", "")
        );
        expect.flush_policy = "always".into();
        let advised = unbound_workqueues_item(&expect, Some("3".into()));
        assert!(
            advised.advice.contains("workqueue/cpumask"),
            "{}",
            advised.advice
        );
        assert_eq!(advised.status, Status::Info);
        assert_eq!(unbound_workqueues_item(&expect, None).value, "unknown");
    }

    #[test]
    fn free_page_reporting_is_explained_where_the_vm_has_it() {
        assert_eq!(free_page_reporting_item(None).status, Status::Ok);
        let on = free_page_reporting_item(Some(5));
        assert_eq!(
            (on.status, on.value.as_str()),
            (Status::Info, "blocks of order 5 and up")
        );
        assert!(on.advice.contains("virtio-balloon"), "{}", on.advice);
    }

    #[test]
    fn choice_lists_and_mountinfo_parse() {
        assert_eq!(selected("always [madvise] never"), Some("madvise"));
        assert_eq!(selected("[always] madvise never"), Some("always"));
        let text = "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw,errors=remount-ro\n\
                    40 22 8:2 / /srv/kafka\\040data rw,noatime shared:2 - xfs /dev/sdb1 rw,attr2\n";
        let mounts = parse_mountinfo(text);
        assert_eq!(mounts.len(), 2);
        assert_eq!(mounts[1].point, "/srv/kafka data");
        assert_eq!(mounts[1].fstype, "xfs");
        let m = mount_of(&mounts, Path::new("/srv/kafka data/orders-0")).unwrap();
        assert_eq!(m.source, "/dev/sdb1");
        assert_eq!(
            mount_of(&mounts, Path::new("/srv/kafka")).unwrap().point,
            "/"
        );
    }
}
