#!/usr/bin/env bash
# The latency measurement sequence, as recorded in bench/RESULTS.md: the machine's limits, then
# each latency and throughput workload against a fresh release broker, then the limits again.
# Usage: bench/latency-suite.sh [work dir, default /tmp/runnel-latency]   (about 8 minutes)
# PINNED=1: the broker runs one shard on the first core and the generator on the last
# (taskset), so neither takes the other's core, and the generator spins when idle rather than
# sleeping (its wake-ups stay out of what it measures); unset, both float over every core.
# PROFILE=NAME: the broker runs with tuning/NAME.toml (e.g. realtime), the always run's config
# on top of it.
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
trap '[ -n "$broker_pid" ] && kill "$broker_pid" 2>/dev/null || true' EXIT
run() {
    echo "### runnel-bench run $*"
    "${generator_on[@]}" "$bin/runnel-bench" run --bootstrap $addr "${generator_flags[@]}" "$@" 2>&1 | tr '\r' '\n' | grep -v '^\[' | grep -v '^$' || true
}
stats() {
    "$bin/runnel-bench" stats --admin $admin | grep -E 'quantile="0.(5|99|999)"' |
        grep -E 'Produce|Fetch|fsync|write|append|send' || true
}

{
    echo "### limits (before)"; "$bin/runnel-bench" limits --dir "$work" --seconds 3
    broker
    run --workload "$workloads/1-topic-1-partition-1kb.toml" --json "$work/interval.json" --plots "$work/plots-interval"
    stats; stop
    broker --config "$work/always.toml"
    run --workload "$workloads/1-topic-1-partition-1kb.toml" --json "$work/always.json" --plots "$work/plots-always"
    stats; stop
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
    echo "### limits (after)"; "$bin/runnel-bench" limits --dir "$work" --seconds 3
} 2>&1 | tee "$work/results.txt"
