#!/usr/bin/env bash
# The data directory's own limits, for bench/RESULTS.md ratios (installs fio if missing):
# - page-cache write bandwidth: sequential 128 KiB buffered writes, no sync (what `never`
#   appends are compared with);
# - sequential write bandwidth to the device: the same with a final fsync;
# - fdatasync latency: 4 KiB appends each followed by fdatasync (what `always` costs at best).
# Usage: scripts/disk-limits.sh [DIR]   (default: a directory under $TMPDIR or /tmp)
set -euo pipefail

if ! command -v fio >/dev/null; then
    sudo_cmd=""
    [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq fio >/dev/null
fi

dir="${1:-${TMPDIR:-/tmp}/runnel-disk-limits}"
mkdir -p "$dir"
trap 'rm -rf "$dir"' EXIT
echo "# $(date -u +%FT%TZ) $(uname -m) $(nproc) cpus, dir $dir ($(df -T "$dir" | awk 'NR==2 {print $2}'))"

run() {
    fio --output-format=json --directory="$dir" --ioengine=psync --group_reporting "$@"
}

json_field() {
    python3 -c "import json,sys; j=json.load(sys.stdin)['jobs'][0]; print($1)"
}

# Three runs each: these VMs are noisy. `sync` first, so earlier dirty pages don't throttle.
# Two shapes: fio's default (128 KiB writes into a file fallocate'd up front: page-aligned
# overwrites, the best case) and what a log append does (103 KiB writes, the benchmark's batch
# size, appended to a growing file: unaligned, extending the file each time).
for i in 1 2 3; do
    sync
    run --name="pagecache$i" --rw=write --bs=128k --size=1g |
        json_field '"page-cache write, 128 KiB aligned, preallocated: %.0f MiB/s" % (j["write"]["bw_bytes"] / 2**20)'
    rm -f "$dir"/pagecache*
    sync
    run --name="append$i" --rw=write --bs=103k --size=1g --fallocate=none |
        json_field '"page-cache write, 103 KiB appends to a growing file: %.0f MiB/s" % (j["write"]["bw_bytes"] / 2**20)'
    rm -f "$dir"/append*
done
sync
run --name=device --rw=write --bs=128k --size=2g --end_fsync=1 |
    json_field '"sequential write with end fsync: %.0f MiB/s" % (j["write"]["bw_bytes"] / 2**20)'
for i in 1 2 3; do
    run --name="fdatasync$i" --rw=write --bs=4k --size=16m --fdatasync=1 |
        json_field '"fdatasync after each 4 KiB write: p50 %.0f us, p99 %.0f us, mean %.0f us" % tuple(v / 1000 for v in (j["sync"]["lat_ns"]["percentile"]["50.000000"], j["sync"]["lat_ns"]["percentile"]["99.000000"], j["sync"]["lat_ns"]["mean"]))'
done
