#!/usr/bin/env bash
# The long replication campaign: three brokers, a topic of three replicas with
# min.insync.replicas=2, an idempotent acks=all librdkafka producer and a consumer, and the
# partition's leader SIGKILLed (every fifth fault: SIGSTOPped until another leads, then
# resumed) again and again. Every acknowledged message is checked present once and in order,
# nothing a consumer read may be lost later, and the replicas must end byte for byte equal
# (tests/tests/cluster/replication.rs). It prints the failover times (leader killed to the
# producer's next acknowledgement): p50, p99 and max. The same checks then run through network
# partitions of the leader (cut off from the other brokers, the controller and the clients
# while it keeps running), one for every five faults.
# Usage: scripts/replication-kills.sh [faults, default 100] [--release]
set -euo pipefail
cd "$(dirname "$0")/.."
faults="${1:-100}"
profile=()
if [[ "${2:-}" == "--release" ]]; then profile=(--release); fi
cargo build --locked "${profile[@]}" -p runnel-net
RUNNEL_REPLICATION_KILLS="$faults" RUNNEL_REPLICATION_PARTITIONS=$(( (faults + 4) / 5 )) cargo test --locked "${profile[@]}" -p runnel-tests \
    --test cluster replication::acknowledged_records_survive -- --nocapture
