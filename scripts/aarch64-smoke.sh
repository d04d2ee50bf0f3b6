#!/usr/bin/env bash
# Runs the aarch64 broker under qemu-user (epoll backend: qemu-user has no io_uring) and drives
# it from the host with kcat (librdkafka): produce, consume back exactly, a consumer group that
# commits and resumes, a clean SIGTERM shutdown, then `runnelctl log verify` of what the aarch64
# broker wrote. Usage: scripts/aarch64-smoke.sh [RUNNEL_AARCH64_BINARY]
# (default target/aarch64-unknown-linux-gnu/debug/runnel; scripts/test.sh builds it).
set -euo pipefail
cd "$(dirname "$0")/.."

broker=${1:-target/aarch64-unknown-linux-gnu/debug/runnel}
runnelctl=target/debug/runnelctl
sysroot=/usr/aarch64-linux-gnu
say() { printf 'aarch64-smoke: %s\n' "$*"; }
fail() { say "FAILED: $*"; [ -f "${log:-}" ] && tail -30 "$log"; exit 1; }

[ -x "$broker" ] || fail "no broker at $broker (cargo build --target aarch64-unknown-linux-gnu -p runnel-net --bins)"
readelf -h "$broker" | grep -q 'Machine:.*AArch64' || fail "$broker is not an aarch64 binary"

work=$(mktemp -d)
log="$work/broker.log"
pid=""
cleanup() {
    [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# Groups settle after 300 ms instead of Kafka's 3 s group.initial.rebalance.delay.
printf '[groups]\ninitial_rebalance_delay_ms = 300\n' >"$work/runnel.toml"
RUNNEL_LOG=info qemu-aarch64 -L "$sysroot" "$broker" --config "$work/runnel.toml" \
    --listen 127.0.0.1:0 --data-dir "$work/data" --cores 2 --io-backend epoll 2>"$log" &
pid=$!
addr=""
for _ in $(seq 600); do  # emulated start-up is slow: up to 60 s
    addr=$(sed -n 's/.*runnel listening on \([0-9.:]*\).*/\1/p' "$log" | head -1)
    [ -n "$addr" ] && break
    kill -0 "$pid" 2>/dev/null || fail "the broker exited at start-up"
    sleep 0.1
done
[ -n "$addr" ] || fail "the broker did not start"
grep -q "backend=epoll" "$log" || fail "the broker does not say it runs on epoll"
say "aarch64 broker (qemu-user, epoll) on $addr"

kcat_() { timeout 60 kcat -b "$addr" -q "$@"; }
count() { grep -c . || true; }

# Produce 200 keyed messages in small batches, compressed and not.
seq 1 100 | sed 's/.*/key-&:value-&/' | kcat_ -P -t smoke -K: -X batch.num.messages=10 \
    || fail "produce (uncompressed)"
seq 101 200 | sed 's/.*/key-&:value-&/' | kcat_ -P -t smoke -K: -z lz4 || fail "produce (lz4)"
got=$(kcat_ -C -t smoke -o beginning -e -f '%k:%s\n' | sort -V)
want=$(seq 1 200 | sed 's/.*/key-&:value-&/')
[ "$got" = "$want" ] || fail "consumed records differ from those produced"
say "produced and consumed 200 records"

# A consumer group reads everything, commits, and resumes after its committed offsets.
# (kcat's -G mode sets a legacy property librdkafka warns about: its stderr goes to a file.)
group() {
    kcat_ -G smoke-group -X auto.offset.reset=earliest -e -f '%s\n' smoke 2>>"$work/kcat.log" \
        || { cat "$work/kcat.log"; fail "the group consumer"; }
}
n=$(group | count)
[ "$n" = 200 ] || fail "the group read $n records, expected 200"
seq 201 210 | sed 's/.*/value-&/' | kcat_ -P -t smoke || fail "produce (third)"
n=$(group | count)
[ "$n" = 10 ] || fail "the group resumed with $n records, expected the 10 new ones"
say "consumer group: committed and resumed (200, then 10)"

kill -TERM "$pid"
wait "$pid" || fail "the broker exited badly after SIGTERM"
pid=""
if grep -q " WARN \| ERROR " "$log"; then
    grep " WARN \| ERROR " "$log" | head -10
    fail "the broker logged warnings or errors"
fi
say "clean shutdown"

if [ -x "$runnelctl" ]; then
    "$runnelctl" log verify "$work/data" >/dev/null || fail "runnelctl log verify of the aarch64 broker's data"
    say "runnelctl log verify (on the host) passes on the aarch64 broker's data"
fi
say "passed"
