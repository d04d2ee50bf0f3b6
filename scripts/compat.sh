#!/usr/bin/env bash
# Real Kafka clients against the real broker: confluent-kafka (librdkafka), kafka-python and
# kcat (scripts/compat.py), consumer groups included, once per I/O backend. The Python clients
# live in .venv (scripts/python-clients.sh installs them on first use); kcat comes from
# scripts/setup.sh.
# Usage: scripts/compat.sh [path/to/runnel]   (default: target/debug/runnel)
set -euo pipefail
cd "$(dirname "$0")/.."

broker="${1:-target/debug/runnel}"
venv=.venv
scripts/python-clients.sh

backends="${RUNNEL_TEST_BACKENDS:-uring,epoll}"
status=0
for backend in ${backends//,/ }; do
    data=$(mktemp -d)
    log="$data/broker.log"
    # Groups settle after 300 ms instead of Kafka's 3 s group.initial.rebalance.delay.
    printf '[groups]\ninitial_rebalance_delay_ms = 300\n' >"$data/runnel.toml"
    RUNNEL_LOG=info "$broker" --config "$data/runnel.toml" --listen 127.0.0.1:0 --data-dir "$data/data" \
        --cores 2 --io-backend "$backend" 2>"$log" &
    pid=$!
    addr=""
    for _ in $(seq 100); do
        addr=$(sed -n 's/.*runnel listening on \([0-9.:]*\).*/\1/p' "$log" | head -1)
        [ -n "$addr" ] && break
        sleep 0.1
    done
    if [ -z "$addr" ]; then
        echo "compat: the broker did not start on $backend:"; cat "$log"
        kill "$pid" 2>/dev/null || true
        exit 1
    fi
    echo "compat: $backend broker on $addr"
    if ! "$venv/bin/python" scripts/compat.py "$addr"; then
        status=1
        echo "compat: failed on $backend; broker log:"; tail -50 "$log"
    fi
    kill -TERM "$pid"
    wait "$pid" || { status=1; echo "compat: broker exited badly on $backend"; tail -20 "$log"; }
    if grep -q " WARN \| ERROR " "$log"; then
        echo "compat: the broker logged warnings or errors on $backend:"; grep " WARN \| ERROR " "$log" | head -20
        status=1
    fi
    rm -rf "$data"
done
exit $status
