#!/usr/bin/env bash
# What the log cleaner costs produce and end-to-end latency: the compacted-1-partition-1kb
# workload (10k msg/s of 1 KiB keyed values on a compacted topic with 8 MiB segments) against
# a broker with the cleaner on (backoff 1 s, so it compacts the partition every few seconds
# while it is produced to) and off, alternating, ROUNDS times each. The broker runs on core 0,
# the load generator on core 1; the machine's limits are measured before and after, and the
# generator's CPU and lateness are reported with each run.
#
# Usage: bench/compaction-latency.sh [bin dir, default target/release] [work dir] [rounds, 2]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="${1:-$root/target/release}"
work="${2:-/tmp/runnel-compaction-latency}"
rounds="${3:-2}"
addr=127.0.0.1:19520
mkdir -p "$work"
sed -e 's/^warmup_seconds = .*/warmup_seconds = 5/' -e 's/^duration_seconds = .*/duration_seconds = 30/' \
    "$root/bench/workloads/compacted-1-partition-1kb.toml" > "$work/workload.toml"

broker_pid=
broker() { # broker on|off
    rm -rf "$work/data"
    cat > "$work/broker.toml" <<CONF
log_cleaner_enable = $([ "$1" = on ] && echo true || echo false)
log_cleaner_backoff_ms = 1000
admin_listen = "127.0.0.1:19521"
CONF
    taskset -c 0 "$bin/runnel" --listen $addr --data-dir "$work/data" --cores 1 \
        --config "$work/broker.toml" > "$work/broker.log" 2>&1 &
    broker_pid=$!
    sleep 1.5
}
broker_cpu() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$broker_pid/stat"; }
stop() {
    echo "broker CPU: $(broker_cpu) s"
    echo "partition directory: $(du -sh "$work/data"/compacted-* 2>/dev/null | cut -f1 | tr '\n' ' ')"
    kill "$broker_pid"; wait "$broker_pid" || true; broker_pid=
}
trap '[ -n "$broker_pid" ] && kill "$broker_pid" 2>/dev/null || true' EXIT

run() { # run on|off ROUND
    echo "## cleaner $1, round $2"
    broker "$1"
    taskset -c 1 /usr/bin/time -f 'generator CPU: %U s user, %S s system over %e s' \
        "$bin/runnel-bench" run --bootstrap $addr --workload "$work/workload.toml" \
        --json "$work/$1-$2.json" 2>&1 |
        tr '\r' '\n' | grep -v '^\[' | grep -E 'published|latency|publish|end to end|generator CPU' || true
    if [ "$1" = on ]; then
        curl -s "http://127.0.0.1:19521/metrics" 2>/dev/null | grep -E '^runnel_(cleaner|partition_dirty)' | grep -v '^#' || true
    fi
    stop
}

{
    echo "### limits (before)"; "$bin/runnel-bench" limits --dir "$work" --seconds 3
    for round in $(seq "$rounds"); do
        run on "$round"
        run off "$round"
    done
    echo "### limits (after)"; "$bin/runnel-bench" limits --dir "$work" --seconds 3
} 2>&1 | tee "$work/results.txt"
