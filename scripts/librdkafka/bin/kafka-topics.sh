#!/usr/bin/env bash
# A stand-in for Kafka's bin/kafka-topics.sh, for librdkafka's tests that create their topics
# with it (0077 compaction: a compacted topic with its configs): `--create` only, through
# runnelctl. scripts/librdkafka-tests.sh points KAFKA_PATH here for those tests, with
# RUNNELCTL naming the runnelctl binary.
# Usage (as the tests call it): kafka-topics.sh --bootstrap-server HOST:PORT --create
#   --topic NAME [--partitions N] [--replication-factor N] [--config NAME=VALUE ...]
set -euo pipefail

bootstrap=""
topic=""
create=false
args=()
while [ $# -gt 0 ]; do
    case "$1" in
    --bootstrap-server) bootstrap=$2; shift 2 ;;
    --create) create=true; shift ;;
    --topic) topic=$2; shift 2 ;;
    --partitions) args+=(--partitions "$2"); shift 2 ;;
    --replication-factor) args+=(--replicas "$2"); shift 2 ;;
    --config) args+=(--config "$2"); shift 2 ;;
    *) echo "kafka-topics.sh stand-in: $1 is not supported (only --create)" >&2; exit 1 ;;
    esac
done
$create || { echo "kafka-topics.sh stand-in: only --create is supported" >&2; exit 1; }
[ -n "$bootstrap" ] && [ -n "$topic" ] || { echo "kafka-topics.sh stand-in: --bootstrap-server and --topic are required" >&2; exit 1; }
exec "${RUNNELCTL:?RUNNELCTL must name the runnelctl binary}" --bootstrap "$bootstrap" topic create "$topic" "${args[@]}"
