#!/usr/bin/env bash
# A/B of two broker builds, back to back on this machine: the produce and fetch throughput
# benchmarks and the 10k msg/s latency workloads (one partition, and 100 partitions over both
# shards), each run against build A then build B, ROUNDS times, with the machine's limits
# measured before and after. One load generator (B's runnel-bench) drives both brokers, so only
# the broker differs.
#
# Usage: bench/ab.sh A_BIN_DIR B_BIN_DIR [work dir, default /tmp/runnel-ab] [rounds, default 2]
#   e.g. bench/ab.sh /tmp/before/target/release target/release
# Results: <work dir>/results.txt, and a JSON report per latency run.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
a_bin="$1"
b_bin="$2"
work="${3:-/tmp/runnel-ab}"
rounds="${4:-2}"
bench="$b_bin/runnel-bench"
addr=127.0.0.1:19510
mkdir -p "$work"

# The latency workloads, shortened (15 s measured after 3 s warm-up) so a round stays short.
for w in 1-topic-1-partition-1kb 1-topic-100-partitions-1kb; do
    sed -e 's/^warmup_seconds = .*/warmup_seconds = 3/' -e 's/^duration_seconds = .*/duration_seconds = 15/' \
        "$root/bench/workloads/$w.toml" > "$work/$w.toml"
done

broker_pid=
broker() { # broker BIN_DIR
    rm -rf "$work/data"
    "$1/runnel" --listen $addr --data-dir "$work/data" --cores 2 > "$work/broker.log" 2>&1 &
    broker_pid=$!
    sleep 1.5
}
# The broker's CPU seconds so far (user + system), from /proc.
broker_cpu() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$broker_pid/stat"; }
stop() {
    echo "broker CPU: $(broker_cpu) s"
    kill "$broker_pid"; wait "$broker_pid" || true; broker_pid=
}
trap '[ -n "$broker_pid" ] && kill "$broker_pid" 2>/dev/null || true' EXIT

latency() { # latency LABEL WORKLOAD   (publish delay: how late the generator sent)
    /usr/bin/time -f 'generator CPU: %U s user, %S s system over %e s' \
        "$bench" run --bootstrap $addr --workload "$work/$2.toml" --json "$work/$1-$2.json" 2>&1 |
        tr '\r' '\n' | grep -v '^\[' | grep -E 'published|latency|publish|end to end|generator CPU' || true
}

one_round() { # one_round LABEL BIN_DIR
    echo "## $1 ($2)"
    broker "$2"
    "$bench" produce --bootstrap $addr --topic t --seconds 4 | tail -3
    "$bench" fetch --bootstrap $addr --topic t --seconds 5 --broker-pid "$broker_pid" | tail -3
    stop
    for w in 1-topic-1-partition-1kb 1-topic-100-partitions-1kb; do
        broker "$2"
        echo "### $w"
        latency "$1" "$w"
        stop
    done
}

{
    echo "### limits (before)"; "$bench" limits --dir "$work" --seconds 3
    for round in $(seq "$rounds"); do
        one_round "A$round" "$a_bin"
        one_round "B$round" "$b_bin"
    done
    echo "### limits (after)"; "$bench" limits --dir "$work" --seconds 3
} 2>&1 | tee "$work/results.txt"
