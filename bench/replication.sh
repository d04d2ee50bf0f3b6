#!/usr/bin/env bash
# Replication latency, as recorded in bench/RESULTS.md: the machine's limits, then the latency
# workload's shape (1 partition, 1 KiB, 10k msg/s) against a fresh release cluster of three
# brokers on this machine, on a topic of three replicas (min.insync.replicas=2) led by the
# broker the load generator talks to: acks=1, then acks=all; then the same workload with acks=1
# against one lone broker for reference; then the limits again.
#
# The brokers share CPU 0 (each with one shard), the load generator runs on CPU 1; each run
# reports the generator's own lateness and CPU. Each workload runs twice.
# Usage: bench/replication.sh [work dir, default /tmp/runnel-replication]   (about 6 minutes)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
work="${1:-/tmp/runnel-replication}"
mkdir -p "$work"
cargo build --release --locked --manifest-path "$root/Cargo.toml" -p runnel-net -p runnel-bench >&2
bin="$root/target/release"
workloads="$root/bench/workloads"
voters="1@127.0.0.1:19511,2@127.0.0.1:19521,3@127.0.0.1:19531"

pids=()
stop_all() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    pids=()
}
trap stop_all EXIT
cluster() {
    rm -rf "$work"/data*
    for id in 1 2 3; do
        taskset -c 0 "$bin/runnel" --node-id "$id" --listen "127.0.0.1:195${id}0" \
            --data-dir "$work/data$id" --cores 1 --controller-quorum-voters "$voters" \
            > "$work/broker$id.log" 2>&1 &
        pids+=($!)
    done
    for _ in $(seq 100); do
        [ "$(cat "$work"/broker*.log | grep -c 'fenced=false')" -ge 3 ] && return 0
        sleep 0.1
    done
    echo "the cluster did not form"; tail "$work"/broker*.log; exit 1
}
lone() {
    rm -rf "$work"/data*
    taskset -c 0 "$bin/runnel" --listen 127.0.0.1:19510 --data-dir "$work/data" --cores 1 \
        > "$work/broker.log" 2>&1 &
    pids+=($!)
    sleep 1.5
}
run() {
    echo "### runnel-bench run $*"
    taskset -c 1 "$bin/runnel-bench" run --bootstrap 127.0.0.1:19510 "$@" 2>&1 |
        tr '\r' '\n' | grep -v '^\[' | grep -v '^$' || true
}

{
    echo "### limits (before)"; "$bin/runnel-bench" limits --dir "$work" --seconds 3
    for round in 1 2; do
        cluster
        run --workload "$workloads/replicated-acks-1-1kb.toml" --json "$work/acks-1-$round.json"
        run --workload "$workloads/replicated-acks-all-1kb.toml" --json "$work/acks-all-$round.json"
        stop_all
        lone
        run --workload "$workloads/1-topic-1-partition-1kb.toml" --json "$work/lone-$round.json"
        stop_all
    done
    echo "### limits (after)"; "$bin/runnel-bench" limits --dir "$work" --seconds 3
} 2>&1 | tee "$work/results.txt"
