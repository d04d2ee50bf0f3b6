#!/usr/bin/env bash
# Each tuning profile's measured effect, as recorded in tuning/README.md: the machine's limits,
# then for the built-in defaults and every profile in tuning/, against a fresh release broker
# pinned to core 0 (`--cores 1`) with runnel-bench pinned to core 1: the 10k msg/s end-to-end
# latency workload (1 KiB, one partition; 15 s measured after 3 s warm-up) and a 4 s produce
# throughput run (1000 x 1 KiB batches, acks=1, 8 in flight). Rounds alternate the order.
# Usage: bench/profile-effects.sh [work dir, default /tmp/runnel-profiles] [rounds, default 2]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
work="${1:-/tmp/runnel-profiles}"
rounds="${2:-2}"
mkdir -p "$work"
cargo build --release --locked --manifest-path "$root/Cargo.toml" -p runnel-net -p runnel-bench >&2
bin="$root/target/release"
addr=127.0.0.1:19520
sed -e 's/^warmup_seconds = .*/warmup_seconds = 3/' -e 's/^duration_seconds = .*/duration_seconds = 15/' \
    "$root/bench/workloads/1-topic-1-partition-1kb.toml" > "$work/latency.toml"

broker_pid=
broker() {
    rm -rf "$work/data"
    sync
    taskset -c 0 "$bin/runnel" --listen $addr --data-dir "$work/data" --cores 1 "$@" \
        > "$work/broker.log" 2>&1 &
    broker_pid=$!
    sleep 1.5
}
stop() { kill "$broker_pid"; wait "$broker_pid" || true; broker_pid=; rm -rf "$work/data"; }
trap '[ -n "$broker_pid" ] && kill "$broker_pid" 2>/dev/null || true' EXIT

measure() {
    local name=$1; shift
    echo "### profile: $name"
    broker "$@"
    taskset -c 1 "$bin/runnel-bench" run --bootstrap $addr --workload "$work/latency.toml" 2>&1 |
        tr '\r' '\n' | grep -E 'msg/s|latency \(ms\)|publish|end to end' || true
    stop
    broker "$@"
    taskset -c 1 "$bin/runnel-bench" produce --bootstrap $addr --topic t --seconds 4
    stop
}

profiles=(default low-latency realtime throughput durable)
{
    echo "### limits (before)"; "$bin/runnel-bench" limits --dir "$work" --seconds 3
    for round in $(seq "$rounds"); do
        order=("${profiles[@]}")
        if [ $((round % 2)) = 0 ]; then order=(durable throughput realtime low-latency default); fi
        for p in "${order[@]}"; do
            if [ "$p" = default ]; then measure default; else measure "$p" --profile "$root/tuning/$p.toml"; fi
        done
    done
    echo "### limits (after)"; "$bin/runnel-bench" limits --dir "$work" --seconds 3
} 2>&1 | tee "$work/results.txt"
