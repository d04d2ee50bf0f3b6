#!/usr/bin/env bash
# Runnel next to Apache Iggy, back to back on this machine, with the same shape of load:
# Iggy's own benchmark (`iggy-bench pinned-producer` and `pinned-producer-and-consumer`, TCP
# with --nodelay) against its server, and `runnel-bench pinned` (the same producers, consumers,
# message size and batch size, in Kafka's protocol) against Runnel. Loopback bandwidth is
# measured in the same run, and every figure comes with the CPU the server and the load
# generator used.
#
# Usage: bench/compare.sh IGGY_BIN_DIR [WORK_DIR]
#   IGGY_BIN_DIR holds iggy-server and iggy-bench, built from Iggy's repository outside this
#   tree (only its `server` and `iggy-bench` packages):
#     apt-get install -y libhwloc-dev libudev-dev pkg-config
#     git clone https://github.com/apache/iggy && cd iggy
#     RUSTUP_TOOLCHAIN=stable cargo build --release --locked -p server -p iggy-bench
#   (RUSTUP_TOOLCHAIN: its rust-toolchain.toml names a newer toolchain than this machine's;
#   the workspace builds with 1.95.) The binaries land in target/release/.
# Settings (environment): ROUNDS (2), SECONDS_PER_RUN (10, Runnel's runs; Iggy's move the same
#   data as Runnel's run before them), MESSAGE_SIZE (1000), MESSAGES_PER_BATCH (1000),
#   PRODUCERS (2), SETUPS ("unpinned pinned": pinned puts the server on core 0 with one shard
#   and the generator on core 1), RUNNEL_FLUSH ("never interval": flush.policy of Runnel's
#   topics; never is Iggy's default durability, page cache only), HOLD_GUEST_MEMORY (on a VM
#   that hands freed memory back to its host: keep it for the run, bench/lib/guest-memory.sh).
# Results: WORK_DIR/results.txt (a table at the end), each run's output beside it. WORK_DIR
# needs room for one run's data (about 15 GB at 1.5 GB/s for 10 s), deleted after each run.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
iggy_bin="${1:?usage: bench/compare.sh IGGY_BIN_DIR [WORK_DIR]}"
work="${2:-/tmp/runnel-compare}"
rounds="${ROUNDS:-2}"
seconds="${SECONDS_PER_RUN:-10}"
message_size="${MESSAGE_SIZE:-1000}"
per_batch="${MESSAGES_PER_BATCH:-1000}"
producers="${PRODUCERS:-2}"
setups="${SETUPS:-unpinned pinned}"
flushes="${RUNNEL_FLUSH:-never interval}"
for bin in iggy-server iggy-bench; do
    [ -x "$iggy_bin/$bin" ] || { echo "no $bin in $iggy_bin" >&2; exit 2; }
done
mkdir -p "$work"
cargo build --release --locked --manifest-path "$root/Cargo.toml" -p runnel-net -p runnel-bench >&2
bin="$root/target/release"
cores=$(nproc)
results="$work/results.txt"
: > "$results"
table="$work/table.txt"
: > "$table"
: > "$work/limits-summary.txt"

# shellcheck source=lib/guest-memory.sh
. "$root/bench/lib/guest-memory.sh"
server_pid=
cleanup() {
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
    release_guest_memory
}
trap cleanup EXIT
hold_guest_memory

# Pinning: the server's command prefix and the generator's, per setup.
server_prefix() { [ "$1" = pinned ] && echo "taskset -c 0" || true; }
generator_prefix() { [ "$1" = pinned ] && echo "taskset -c $((cores - 1))" || true; }

cpu_of() { # utime + stime of a process, in clock ticks
    awk '{ print $14 + $15 }' "/proc/$1/stat"
}
ticks=$(getconf CLK_TCK)

wait_for_port() {
    for _ in $(seq 1 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    echo "nothing listening on port $1" >&2
    return 1
}

start_runnel() { # setup flush
    rm -rf "$work/runnel-data"
    local shards=0
    [ "$1" = pinned ] && shards=1
    printf '[topic_defaults]\n"flush.policy" = "%s"\n' "$2" > "$work/runnel-$2.toml"
    $(server_prefix "$1") "$bin/runnel" --listen 127.0.0.1:19700 --data-dir "$work/runnel-data" \
        --admin-listen 127.0.0.1:19701 --cores $shards --config "$work/runnel-$2.toml" \
        > "$work/runnel.log" 2>&1 &
    server_pid=$!
    wait_for_port 19700
}

start_iggy() { # setup
    rm -rf "$work/iggy-data"
    local allocation=all
    [ "$1" = pinned ] && allocation=1
    IGGY_SYSTEM_PATH="$work/iggy-data" IGGY_TCP_ADDRESS=127.0.0.1:18090 \
        IGGY_HTTP_ENABLED=false IGGY_QUIC_ENABLED=false IGGY_WEBSOCKET_ENABLED=false \
        IGGY_SYSTEM_SHARDING_CPU_ALLOCATION=$allocation \
        $(server_prefix "$1") "$iggy_bin/iggy-server" --with-default-root-credentials \
        > "$work/iggy.log" 2>&1 &
    server_pid=$!
    wait_for_port 18090
}

# Stops the server and deletes its data: a 10 s run at these rates writes over 10 GB.
stop_server() {
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=
    rm -rf "$work/runnel-data" "$work/iggy-data"
}

# Runs a generator command, printing "generator_cpu_s=<s>" (its CPU time, children included)
# after its own output.
timed() {
    python3 -c '
import resource, subprocess, sys
code = subprocess.call(sys.argv[1:])
r = resource.getrusage(resource.RUSAGE_CHILDREN)
print(f"generator_cpu_s={r.ru_utime + r.ru_stime:.2f}")
sys.exit(code)' "$@"
}

# The total throughput iggy-bench prints for its producers and consumers (MB/s).
iggy_rate() { # log actor
    grep -E "$2" "$1" | grep -oE '[0-9]+(\.[0-9]+)? MB/s' | head -1 | cut -d' ' -f1
}

row() { printf '%-9s %-6s %-33s %9s %9s %8s %8s %11s %9s\n' "$@" >> "$table"; }
row setup round "server, load" "in MB/s" "out MB/s" "srv CPU" "gen CPU" "srv CPU/GB" "in/ceil"
# The rate taken in as a share of the one-core ceiling (TCP into the page cache, `limits`):
# meaningful only for a server held to one core.
of_ceiling() { # setup rate
    [ "$1" = pinned ] || { echo -; return; }
    awk -v r="$2" -v c="$ceiling" 'BEGIN { printf "%.2f", (c > 0) ? r / c : 0 }'
}

# CPU seconds per GB (10^9 bytes) moved in and out.
per_gb() { # cpu in_mb_s out_mb_s seconds
    awk -v c="$1" -v i="$2" -v o="$3" -v s="$4" 'BEGIN { o = (o == "-") ? 0 : o; printf "%.2f", c / ((i + o) * s / 1000) }'
}

for round in $(seq 1 "$rounds"); do
    for setup in $setups; do
        echo "### round $round, $setup: this machine's limits" | tee -a "$results"
        { "$bin/runnel-bench" limits --dir "$work" --seconds 2; guest_memory_state; } > "$work/limits.txt"
        tee -a "$results" < "$work/limits.txt"
        lo=$(grep -oE '^loopback: [0-9.]+ GiB/s' "$work/limits.txt" | grep -oE '[0-9.]+')
        cache=$(grep -oE '[0-9]+ MiB/s into the page cache' "$work/limits.txt" | grep -oE '^[0-9]+')
        ingest=$(grep -oE 'TCP into the page cache on one core.*: [0-9]+ MiB/s' "$work/limits.txt" | grep -oE '[0-9]+ MiB/s$' | cut -d' ' -f1)
        # The one-core ceiling in MB/s (the rates' unit): what a server held to one core can take in.
        ceiling=$(awk -v m="$ingest" 'BEGIN { printf "%.0f", m * 1.048576 }')
        echo "$setup round $round: loopback $lo GiB/s, page-cache appends $cache MiB/s (one writer), TCP into the page cache on one core $ceiling MB/s" >> "$work/limits-summary.txt"
        for consumers in 0 "$producers"; do
            kind=produce; [ "$consumers" -gt 0 ] && kind=produce+consume
            # Runnel first: its run sets the data volume Iggy's run then moves.
            volume=0
            for flush in $flushes; do
                start_runnel "$setup" "$flush"
                before=$(cpu_of "$server_pid")
                out="$work/runnel-$round-$setup-$kind-$flush.txt"
                timed $(generator_prefix "$setup") "$bin/runnel-bench" pinned \
                    --bootstrap 127.0.0.1:19700 --producers "$producers" --consumers "$consumers" \
                    --message-size "$message_size" --messages-per-batch "$per_batch" \
                    --seconds "$seconds" > "$out" 2>&1 || { cat "$out" >&2; exit 1; }
                srv=$(awk -v a="$before" -v b="$(cpu_of "$server_pid")" -v t="$ticks" 'BEGIN { printf "%.2f", (b - a) / t }')
                stop_server
                cat "$out" >> "$results"
                in=$(grep -oE 'produce_mb_s=[0-9.]+' "$out" | cut -d= -f2)
                outr=$(grep -oE 'consume_mb_s=[0-9.]+' "$out" | cut -d= -f2)
                gen=$(grep -oE 'generator_cpu_s=[0-9.]+' "$out" | tail -1 | cut -d= -f2)
                row "$setup" "$round" "runnel $kind, flush $flush" "$in" "$outr" "$srv" "$gen" "$(per_gb "$srv" "$in" "$outr" "$seconds")" "$(of_ceiling "$setup" "$in")"
                [ "$volume" = 0 ] && volume=$(awk -v r="$in" -v s="$seconds" 'BEGIN { printf "%d", r * s }')
            done

            start_iggy "$setup"
            before=$(cpu_of "$server_pid")
            out="$work/iggy-$round-$setup-$kind.txt"
            iggy_kind=pinned-producer
            actors=(--producers "$producers" --streams "$producers")
            if [ "$consumers" -gt 0 ]; then
                iggy_kind=pinned-producer-and-consumer
                actors+=(--consumers "$consumers")
            fi
            timed $(generator_prefix "$setup") "$iggy_bin/iggy-bench" \
                --message-size "$message_size" --messages-per-batch "$per_batch" \
                --total-data "${volume}MB" \
                "$iggy_kind" "${actors[@]}" tcp --server-address 127.0.0.1:18090 --nodelay \
                > "$out" 2>&1 || { cat "$out" >&2; exit 1; }
            srv=$(awk -v a="$before" -v b="$(cpu_of "$server_pid")" -v t="$ticks" 'BEGIN { printf "%.2f", (b - a) / t }')
            stop_server
            cat "$out" >> "$results"
            in=$(iggy_rate "$out" 'Producers Results')
            outr=-
            [ "$consumers" -gt 0 ] && outr=$(iggy_rate "$out" 'Consumers Results')
            gen=$(grep -oE 'generator_cpu_s=[0-9.]+' "$out" | tail -1 | cut -d= -f2)
            # Iggy's run moves `volume` MB in (and out); its CPU is per GB of that.
            row "$setup" "$round" "iggy $kind" "$in" "$outr" "$srv" "$gen" \
                "$(awk -v c="$srv" -v v="$volume" -v k="$consumers" 'BEGIN { printf "%.2f", c / (v * (k > 0 ? 2 : 1) / 1000) }')" \
                "$(of_ceiling "$setup" "$in")"
        done
    done
done
{
    echo "### limits"
    cat "$work/limits-summary.txt"
    echo "### table (MB = 10^6 bytes of message payload; CPU in seconds over the run; srv CPU/GB:"
    echo "### the server's CPU seconds per GB moved in and out; in/ceil: the rate taken in as a share"
    echo "### of one core's TCP-into-page-cache rate, the ceiling of a server pinned to one core)"
    cat "$table"
} | tee -a "$results"
