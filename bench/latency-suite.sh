#!/usr/bin/env bash
# The latency measurement sequence, as recorded in bench/RESULTS.md: the machine's limits, then
# each latency and throughput workload against a fresh release broker, then the limits again.
# Usage: bench/latency-suite.sh [work dir, default /tmp/runnel-latency]   (about 8 minutes)
# PINNED=1: the broker runs one shard on the first core and the generator on the last
# (taskset), so neither takes the other's core, and the generator spins when idle rather than
# sleeping (its wake-ups stay out of what it measures), and during the `always` run the kernel's
# unbound workqueues are kept on the broker's core (see below); unset, everything floats.
# PROFILE=NAME: the broker runs with tuning/NAME.toml (e.g. realtime), the always run's config
# on top of it.
# HOLD_GUEST_MEMORY=1: on a VM that hands freed memory back to its host, keep it for the run
# (bench/lib/guest-memory.sh).
# Results: <work dir>/results.txt, a JSON report per run, SVG plots in <work dir>/plots-*.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
work="${1:-/tmp/runnel-latency}"
mkdir -p "$work"
cargo build --release --locked --manifest-path "$root/Cargo.toml" -p runnel-net -p runnel-bench >&2
bin="$root/target/release"
workloads="$root/bench/workloads"
addr=127.0.0.1:19500
admin=127.0.0.1:19644
printf '[topic_defaults]\n"flush.policy" = "always"\n' > "$work/always.toml"
broker_on=() generator_on=() generator_flags=()
if [ -n "${PINNED:-}" ]; then
    broker_on=(taskset -c 0) generator_on=(taskset -c "$(($(nproc) - 1))")
    generator_flags=(--idle-poll-us 1000)
fi

# shellcheck source=lib/guest-memory.sh
. "$root/bench/lib/guest-memory.sh"

# ext4 finishes each fdatasync of appended data in an unbound kernel workqueue (it converts the
# segment's preallocated, unwritten extents there, on the core that took the disk's interrupt).
# Left free to run on the generator's core, that work waits out the spinning generator's time
# slice, and the `always` run measures the generator (publish p99 up to 7.5 ms against
# 0.72-0.78 ms: RESULTS, "`always` and the kernel's unbound workqueue"). So, pinned, the
# `always` run keeps them on the broker's core. Only that run: the others don't wait for that
# work, and the kernel's write-back (also unbound workqueues) would then take the broker's core.
# The runs happen in a subshell (piped to tee), so the mask to restore is read here, where the
# exit trap can see it.
wq_mask=/sys/devices/virtual/workqueue/cpumask
original_wq_mask=
if [ -n "${PINNED:-}" ]; then
    if [ -w "$wq_mask" ]; then
        original_wq_mask=$(cat "$wq_mask")
    else
        echo "note: $wq_mask is not writable: the always run shares the generator's core with the kernel's workqueues" >&2
    fi
fi
kernel_work_on_broker_core() {
    if [ -n "$original_wq_mask" ]; then
        echo 1 > "$wq_mask"
        echo "### unbound workqueues on CPU 0 for this run (were $original_wq_mask)"
    fi
}
kernel_work_anywhere() {
    if [ -n "$original_wq_mask" ]; then
        echo "$original_wq_mask" > "$wq_mask"
    fi
}

broker_pid=
broker() {
    rm -rf "$work/data"
    local args=()
    [ -n "${PINNED:-}" ] && args=(--cores 1)
    [ -n "${PROFILE:-}" ] && args+=(--profile "$root/tuning/$PROFILE.toml")
    "${broker_on[@]}" "$bin/runnel" --listen $addr --data-dir "$work/data" --admin-listen $admin "${args[@]}" "$@" \
        > "$work/broker.log" 2>&1 &
    broker_pid=$!
    sleep 1.5
}
# Stops the broker and deletes its data (the throughput runs leave over 10 GB).
stop() { kill "$broker_pid"; wait "$broker_pid" || true; rm -rf "$work/data"; }
cleanup() {
    [ -n "$broker_pid" ] && kill "$broker_pid" 2>/dev/null || true
    kernel_work_anywhere
    release_guest_memory
}
trap cleanup EXIT
hold_guest_memory
run() {
    echo "### runnel-bench run $*"
    "${generator_on[@]}" "$bin/runnel-bench" run --bootstrap $addr "${generator_flags[@]}" "$@" 2>&1 | tr '\r' '\n' | grep -v '^\[' | grep -v '^$' || true
}
stats() {
    "$bin/runnel-bench" stats --admin $admin | grep -E 'quantile="0.(5|99|999)"' |
        grep -E 'Produce|Fetch|fsync|write|append|send' || true
}

{
    # This block is a subshell (piped to tee): its own exit stops its broker, whose pid the
    # parent's trap never sees.
    trap cleanup EXIT
    echo "### limits (before)"; "$bin/runnel-bench" limits --dir "$work" --seconds 3; guest_memory_state
    broker
    run --workload "$workloads/1-topic-1-partition-1kb.toml" --json "$work/interval.json" --plots "$work/plots-interval"
    stats; stop
    kernel_work_on_broker_core
    broker --config "$work/always.toml"
    run --workload "$workloads/1-topic-1-partition-1kb.toml" --json "$work/always.json" --plots "$work/plots-always"
    stats; stop
    kernel_work_anywhere
    broker
    run --workload "$workloads/100-concurrent-requests-3kb.toml" --json "$work/round-trip.json" --plots "$work/plots-round-trip"
    run --workload "$workloads/100-concurrent-requests-3kb-closed-loop.toml" --json "$work/round-trip-closed.json"
    run --workload "$workloads/1-topic-100-partitions-1kb.toml" --json "$work/100-partitions.json"
    stop
    broker
    run --workload "$workloads/max-sustainable-rate-1kb.toml" --json "$work/max-rate.json" --plots "$work/plots-max-rate"
    stop
    broker
    run --workload "$workloads/max-throughput-1kb.toml" --json "$work/max-throughput.json"
    stop
    echo "### limits (after)"; "$bin/runnel-bench" limits --dir "$work" --seconds 3; guest_memory_state
} 2>&1 | tee "$work/results.txt"
