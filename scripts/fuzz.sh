#!/usr/bin/env bash
# Runs every fuzz target (fuzz/fuzz_targets: request decoding, record batch validation, segment
# recovery, the broker's own records and files: internal-topic records, markers, .txnindex,
# producer snapshots) for SECONDS each with cargo fuzz (libFuzzer, nightly toolchain, AddressSanitizer).
# A crash fails the run and leaves its input in fuzz/artifacts/<target>/; turn it into a
# regression test next to the code it broke.
# Usage: scripts/fuzz.sh [seconds per target, default 20]   (the test script runs a short pass;
# longer runs: scripts/fuzz.sh 3600)
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds="${1:-20}"
cargo +nightly fuzz build -O
log=$(mktemp)
trap 'rm -f "$log"' EXIT
for target in $(cargo +nightly fuzz list); do
    echo "fuzz: $target for ${seconds}s"
    status=0
    cargo +nightly fuzz run -O "$target" -- -max_total_time="$seconds" -rss_limit_mb=2048 \
        > "$log" 2>&1 || status=$?
    grep -E 'DONE' "$log" || true
    if [ "$status" -ne 0 ]; then
        echo "fuzz: $target failed (exit $status):"
        tail -60 "$log"
        exit 1
    fi
done
