#!/usr/bin/env bash
# Runs every check and test Runnel has. This is the command CI runs (.ci/run) and the README's
# "run all tests" command.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "setup"
scripts/setup.sh

step "format"
cargo fmt --all -- --check

step "clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "build (the integration tests run the real binaries)"
cargo build --workspace --bins --locked

step "tests on x86_64, io_uring and epoll backends"
cargo test --workspace --locked

step "real Kafka clients (confluent-kafka, kafka-python, kcat) on each backend"
scripts/compat.sh target/debug/runnel

step "librdkafka's own tests, a short selection (scripts/librdkafka-tests.sh runs all that pass)"
scripts/librdkafka-tests.sh 0090 0092 0011 0103 0129 \
    0081/do_test_CreateTopics 0081/do_test_IncrementalAlterConfigs 0081/do_test_ListOffsets

step "librdkafka's tests against a cluster of three brokers, a short selection"
scripts/librdkafka-tests.sh --cluster 0090 0092 0011 0103 0129

step "fuzz targets, a short pass each (scripts/fuzz.sh SECONDS for longer runs)"
scripts/fuzz.sh 15

step "aarch64: cross-build the whole workspace (librdkafka's C and C++ with the cross compilers)"
CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc CXX_aarch64_unknown_linux_gnu=aarch64-linux-gnu-g++ \
    CC=aarch64-linux-gnu-gcc CXX=aarch64-linux-gnu-g++ HOST_CC=gcc HOST_CXX=g++ \
    cargo build --locked --workspace --target aarch64-unknown-linux-gnu --bins

step "aarch64: runtime tests under qemu-user (epoll backend: qemu-user has no io_uring)"
RUNNEL_TEST_BACKENDS=epoll cargo test --locked --target aarch64-unknown-linux-gnu -p runnel-engine

step "aarch64: the broker under qemu-user, driven from the host by kcat (produce, consume, a group)"
scripts/aarch64-smoke.sh target/aarch64-unknown-linux-gnu/debug/runnel

step "all checks passed"
