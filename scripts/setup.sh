#!/usr/bin/env bash
# Installs what building and testing Runnel needs on a fresh Debian machine (run as root, or
# with sudo available). Idempotent: it only installs what is missing.
set -euo pipefail

# aarch64 cross-build and qemu-user to run the runtime's tests for it; kcat (librdkafka's CLI)
# as a real Kafka client in the integration tests.
DEBIAN_PACKAGES=(gcc-aarch64-linux-gnu g++-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user kcat)
RUST_TARGETS=(aarch64-unknown-linux-gnu)

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

missing=()
for pkg in "${DEBIAN_PACKAGES[@]}"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing Debian packages: ${missing[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

installed_targets=$(rustup target list --installed)
for target in "${RUST_TARGETS[@]}"; do
    if ! grep -qx "$target" <<<"$installed_targets"; then
        echo "setup: adding Rust target $target"
        rustup target add "$target"
    fi
done

# cargo fuzz for the fuzz targets (they build with the machine's nightly toolchain).
if ! command -v cargo-fuzz >/dev/null 2>&1; then
    echo "setup: installing cargo-fuzz"
    cargo install cargo-fuzz --locked --quiet
fi

# The Python Kafka clients (confluent-kafka, kafka-python) in .venv: scripts/compat.sh and the
# integration tests that drive kafka-python (tests/tests/compaction/) use them.
"$(dirname "$0")/python-clients.sh"
