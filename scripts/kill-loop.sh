#!/usr/bin/env bash
# The long SIGKILL campaign: an acks=all librdkafka producer against a broker killed every
# 50-300 ms and restarted, then every acknowledged message checked (tests/tests/kill_loop.rs).
# Usage: scripts/kill-loop.sh [kills under flush.policy=always, default 1000]
# (interval and never get a fifth of that each). Figures go in tests/RELIABILITY.md.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --locked -p runnel-net
RUNNEL_KILLS="${1:-1000}" cargo test --locked -p runnel-tests --test kill_loop -- --nocapture
