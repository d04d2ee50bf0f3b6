#!/usr/bin/env bash
# What transactions cost a producer: `runnel-bench produce` as an idempotent producer and as a
# transactional one committing every N batches (AddPartitionsToTxn, N batches, EndTxn),
# 100 x 1 KiB records a batch, acks=1, 8 batches in flight, one partition. Every run gets a
# fresh broker and data directory, `sync` and 3 s of rest first; the arms alternate, ROUNDS
# times. The broker runs on core 0 (one shard), the generator on core 1, with its CPU
# reported; the machine's limits are measured first.
#
# Usage: bench/transactions.sh [bin dir, default target/release] [work dir] [rounds, 2]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="${1:-$root/target/release}"
work="${2:-/tmp/runnel-transactions-bench}"
rounds="${3:-2}"
addr=127.0.0.1:19530
arms=(idempotent 1 10 100)
mkdir -p "$work"

broker_pid=
trap '[ -n "$broker_pid" ] && kill "$broker_pid" 2>/dev/null || true' EXIT
run() { # run ARM ROUND (ARM: idempotent, or batches per transaction)
    rm -rf "$work/data"
    sync
    sleep 3
    taskset -c 0 "$bin/runnel" --listen $addr --data-dir "$work/data" --cores 1 \
        >"$work/broker.log" 2>&1 &
    broker_pid=$!
    sleep 1.5
    local mode=(--idempotent)
    [ "$1" = idempotent ] || mode=(--transaction-batches "$1")
    echo "## $1, round $2"
    taskset -c 1 /usr/bin/time -f 'generator CPU: %U s user, %S s system over %e s' \
        "$bin/runnel-bench" produce --bootstrap $addr --topic "txn-bench-$1-$2" --seconds 4 \
        --records-per-batch 100 --record-bytes 1024 --acks 1 --in-flight 8 "${mode[@]}" 2>&1
    kill "$broker_pid"
    wait "$broker_pid" || true
    broker_pid=
}

echo "# limits"
taskset -c 1 "$bin/runnel-bench" limits --dir "$work" --seconds 2
for round in $(seq "$rounds"); do
    # Alternate the order so no arm always follows the same one.
    if [ $((round % 2)) = 1 ]; then order=("${arms[@]}"); else order=(100 10 1 idempotent); fi
    for arm in "${order[@]}"; do run "$arm" "$round"; done
done
