#!/usr/bin/env bash
# librdkafka's own integration tests (its tests/ directory, run by its test-runner) against a real
# Runnel broker. The librdkafka source is the one the rdkafka-sys crate in Cargo.lock bundles
# (cargo fetch puts it in ~/.cargo/registry); it is copied to target/librdkafka-tests/ and built
# there with its test runner (reused while the source version and build flags are unchanged).
#
# Each test number runs in its own test-runner process against a fresh broker (its own data
# directory and port), as librdkafka's runner would against a single Kafka 3.9 broker: broker-only
# tests (-L: the mock-cluster and client-only tests are skipped), not in quick mode (-Q would
# skip every sub-test not marked quick), one test at a time (-p1), the "default" scenario (auto-created topics with 4 partitions) or, for an
# entry written NNNN@noautocreate, the "noautocreate" scenario (auto_create_topics = false).
# See tests/LIBRDKAFKA.md for what runs, what doesn't apply and why.
#
# With --cluster, each test number runs against a fresh cluster of three brokers instead (every
# node a broker and a controller voter, on 127.0.0.1, the test clients bootstrapped with all
# three): partition leaders and group coordinators spread over the brokers.
#
# Usage: scripts/librdkafka-tests.sh [--broker path/to/runnel] [--cluster] [NNNN[@scenario][/subtest] ...]
#   NNNN: a test number (all its variants that apply); @noautocreate: that scenario; /subtest:
#   only the sub-tests whose name contains this text (the runner's SUBTESTS).
#   default broker: target/debug/runnel; default tests: DEFAULT_TESTS below.
# Environment: RUNNEL_LOG (broker log filter, default info), TEST_DEBUG (librdkafka debug
#   contexts for the test clients, e.g. protocol,broker), TEST_LEVEL (runner verbosity),
#   LIBRDKAFKA_TESTS_TIMEOUT (seconds a test number may take before it is killed, default 600).
# Logs: target/librdkafka-tests/logs/<test>.log (runner) and <test>.broker.log.
# Exit status: non-zero if any listed test failed (or ran nothing).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

# Tests that pass against Runnel (see tests/LIBRDKAFKA.md).
# Entries NNNN/text run only the sub-tests whose name holds text: the others need what Runnel
# lacks or fail on Runnel bugs listed there.
DEFAULT_TESTS=(
    0001 0002 0003 0005 0007 0008 0011
    0012 0013 0014 0015 0016 0017 0018 0019 0020 0021 0022 0026 0029 0030 0031 0033 0034
    0035 0036 0038 0039 0040 0041 0042 0044 0045 0048 0049 0050 0051 0054 0055 0056 0057 0059
    0060 0061 0063 0064 0065 0067 0068 0069 0070 0073 0075 0076
    0081/do_test_unclean_destroy 0081/do_test_DeleteTopics 0081/do_test_DescribeConfigs
    0081/do_test_DeleteRecords 0081/do_test_ListConsumerGroups
    0081/do_test_DescribeConsumerGroups 0081/do_test_DeleteGroups
    0081/do_test_DeleteConsumerGroupOffsets 0081/do_test_AlterConsumerGroupOffsets
    0081/do_test_ListConsumerGroupOffsets
    0081/do_test_CreateTopics 0081/do_test_CreatePartitions 0081/do_test_AlterConfigs
    0081/do_test_IncrementalAlterConfigs 0081/do_test_DescribeTopics 0081/do_test_DescribeCluster
    0081/do_test_ListOffsets
    0077 0082 0083 0084 0085 0086 0088 0089 0090 0091 0092 0093 0094 0099 0102 0103 0112 0114
    0118 0122 0123 0125 0127 0129 0130 0132 0137 0140
)

# Tests that create their topics with Kafka's bin/kafka-topics.sh --create: they run with
# KAFKA_PATH at scripts/librdkafka (a stand-in that creates topics with runnelctl) and
# BROKERS at the broker. Only these: with KAFKA_PATH set, other tests try Kafka's other tools.
KAFKA_TOPICS_TESTS=(0077)

broker=target/debug/runnel
tests=()
cluster=false
while [ $# -gt 0 ]; do
    case "$1" in
    --broker) broker="$2"; shift 2 ;;
    --cluster) cluster=true; shift ;;
    -h | --help) sed -n '2,/^set -e/p' "$0" | sed '$d'; exit 0 ;;
    *) tests+=("$1"); shift ;;
    esac
done
[ ${#tests[@]} -gt 0 ] || tests=("${DEFAULT_TESTS[@]}")
broker=$(realpath "$broker")
[ -x "$broker" ] || { echo "librdkafka-tests: no broker binary at $broker (cargo build -p runnel-net)"; exit 1; }

# --- librdkafka source: the rdkafka-sys version Cargo.lock pins -----------------------------------
version=$(awk '/^name = "rdkafka-sys"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)
[ -n "$version" ] || { echo "librdkafka-tests: rdkafka-sys is not in Cargo.lock"; exit 1; }
find_source() {
    ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/"rdkafka-sys-$version"/librdkafka 2>/dev/null | head -1
}
src=$(find_source)
if [ -z "$src" ]; then
    echo "librdkafka-tests: fetching crates (rdkafka-sys $version)"
    cargo fetch --locked >/dev/null
    src=$(find_source)
fi
[ -n "$src" ] || { echo "librdkafka-tests: rdkafka-sys-$version/librdkafka not found in the cargo registry"; exit 1; }

# --- build librdkafka and the test runner ---------------------------------------------------------
# Optimisation off: the build is about twice as fast and the tests are not CPU-bound. SSL, SASL
# (GSSAPI) and curl are left out: Runnel serves PLAINTEXT only.
configure_flags=(--no-download --disable-ssl --disable-gssapi --disable-curl --disable-optimization)
work=target/librdkafka-tests
build="$work/librdkafka"
# 0103 transactions creates its topics with replication factor 3, which needs three brokers;
# on one broker it runs with factor 1 (the transactional behaviour it checks is the same).
single_broker_patch='s/test_create_topic_wait_exists(\(.*\), 3, 5000)/test_create_topic_wait_exists(\1, 1, 5000)/'
stamp="rdkafka-sys $version; configure ${configure_flags[*]}; 0103 patch: $single_broker_patch"
if [ ! -x "$build/tests/test-runner" ] || [ "$(cat "$work/build.stamp" 2>/dev/null)" != "$stamp" ]; then
    echo "librdkafka-tests: building librdkafka $version and its test runner in $build"
    started=$(date +%s)
    rm -rf "$build" "$work/build.stamp"
    mkdir -p "$work"
    cp -r "$src" "$build"
    chmod -R u+w "$build"
    sed -i "$single_broker_patch" "$build/tests/0103-transactions.c"
    grep -q ', 3, 5000)' "$build/tests/0103-transactions.c" && { echo "librdkafka-tests: 0103 still asks for 3 replicas"; exit 1; }
    (
        cd "$build"
        # (not configure.log here: mklove takes ./configure.* files for its modules)
        ./configure "${configure_flags[@]}" >../build.log 2>&1 || { tail -30 ../build.log; exit 1; }
        make -j1 libs >>../build.log 2>&1 || { tail -40 ../build.log; exit 1; }
        make -j1 -C tests test-runner >>../build.log 2>&1 || { tail -40 ../build.log; exit 1; }
    )
    echo "$stamp" >"$work/build.stamp"
    echo "librdkafka-tests: built in $(($(date +%s) - started)) s"
fi
runner_dir="$root/$build/tests"
export LD_LIBRARY_PATH="$root/$build/src:$root/$build/src-cpp${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

# --- run ------------------------------------------------------------------------------------------
logs="$work/logs"
mkdir -p "$logs"
tmp=$(mktemp -d)
broker_pids=()
cleanup() {
    for pid in "${broker_pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
    rm -rf "$tmp"
}
trap cleanup EXIT

# A free TCP port on 127.0.0.1 (bound and released).
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Starts one broker with config $1, logging to $2, data in $3; adds its pid to broker_pids and
# its address to addrs.
start_one() {
    local config=$1 log=$2 data=$3
    RUNNEL_LOG="${RUNNEL_LOG:-info}" "$broker" --config "$config" --listen 127.0.0.1:0 \
        --data-dir "$data" --cores 2 2>>"$log" &
    local pid=$!
    broker_pids+=("$pid")
    local found=""
    for _ in $(seq 100); do
        found=$(sed -n 's/.*runnel listening on \([0-9.:]*\).*/\1/p' "$log" | tail -1)
        [ -n "$found" ] && [[ ",$addrs," != *",$found,"* ]] && break
        found=""
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if [ -z "$found" ]; then
        local status=0
        wait "$pid" 2>/dev/null || status=$?
        echo "librdkafka-tests: a broker did not start (exit status $status):"; cat "$log"
        return 1
    fi
    addrs="${addrs:+$addrs,}$found"
}

# Starts a fresh broker (with --cluster, three) for scenario $1, logging to $2; sets
# broker_pids and addr (the bootstrap list).
start_broker() {
    local scenario=$1 log=$2 run="$tmp/run-$RANDOM$RANDOM"
    local autocreate=true
    [ "$scenario" = noautocreate ] && autocreate=false
    mkdir -p "$run"
    : >"$log"
    broker_pids=()
    addrs=""
    # librdkafka's test clusters: auto-created topics get 4 partitions; groups settle after
    # 300 ms instead of Kafka's 3 s group.initial.rebalance.delay.
    local common="auto_create_topics = $autocreate
num_partitions = 4

[groups]
initial_rebalance_delay_ms = 300
"
    if ! $cluster; then
        printf '%s' "$common" >"$run/runnel.toml"
        start_one "$run/runnel.toml" "$log" "$run/data" || return 1
        addr=$addrs
        return 0
    fi
    local ports=() voters="" id
    for id in 1 2 3; do
        ports[id]=$(free_port)
        voters="${voters:+$voters,}$id@127.0.0.1:${ports[id]}"
    done
    for id in 1 2 3; do
        printf 'node_id = %s\n%s\n[cluster]\ncontroller_quorum_voters = "%s"\ncontroller_listen = "127.0.0.1:%s"\n' \
            "$id" "$common" "$voters" "${ports[id]}" >"$run/node$id.toml"
        start_one "$run/node$id.toml" "$log" "$run/data$id" || return 1
    done
    addr=$addrs
    # Served once every broker is registered and unfenced.
    for _ in $(seq 300); do
        [ "$(grep -c 'broker state changed by the controller fenced=false' "$log")" -ge 3 ] && return 0
        sleep 0.1
    done
    echo "librdkafka-tests: the cluster did not form:"; tail -20 "$log"
    return 1
}

stop_broker() {
    local clean=0 pid
    for pid in "${broker_pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${broker_pids[@]}"; do wait "$pid" || clean=$?; done
    broker_pids=()
    return $clean
}

passed=()
failed=()
test_timeout="${LIBRDKAFKA_TESTS_TIMEOUT:-600}"
if $cluster; then
    echo "librdkafka-tests: librdkafka $version test-runner against three brokers of $broker"
else
    echo "librdkafka-tests: librdkafka $version test-runner against $broker"
fi
for entry in "${tests[@]}"; do
    # NNNN[@scenario][/subtest]
    name=$entry
    subtests=""
    if [[ "$entry" == */* ]]; then subtests=${entry#*/}; entry=${entry%%/*}; fi
    num=${entry%%@*}
    scenario=default
    [ "$entry" != "$num" ] && scenario=${entry#*@}
    file=${name//\//_}
    log="$root/$logs/$file.log"
    blog="$root/$logs/$file.broker.log"
    rm -f "$log" "$blog"
    if ! start_broker "$scenario" "$blog"; then
        # Once seen: an abort before the first log line. Reported, then retried once.
        echo "librdkafka-tests: retrying the broker's start for $name"
        start_broker "$scenario" "$blog"
    fi
    printf 'bootstrap.servers=%s\n' "$addr" >"$tmp/test.conf"
    kafka_env=()
    if [[ " ${KAFKA_TOPICS_TESTS[*]} " == *" $num "* ]]; then
        [ -x "$root/target/debug/runnelctl" ] || { echo "librdkafka-tests: $num needs target/debug/runnelctl (cargo build -p runnel-tools)"; exit 1; }
        kafka_env=(KAFKA_PATH="$root/scripts/librdkafka" BROKERS="$addr" RUNNELCTL="$root/target/debug/runnelctl")
    fi
    started=$(date +%s)
    status=0
    # The runner abort()s when a test failed: no core files; the subshell reports it in the log.
    (
        ulimit -c 0
        cd "$runner_dir"
        [ -z "$subtests" ] || export SUBTESTS="$subtests"
        env "${kafka_env[@]}" TESTS="$num" TEST_SCENARIO="$scenario" TEST_KAFKA_VERSION=3.9.0 \
            RDKAFKA_TEST_CONF="$tmp/test.conf" \
            timeout --kill-after=10 "$test_timeout" ./test-runner -L -p1 || exit $?
    ) >"$log" 2>&1 || status=$?
    elapsed=$(($(date +%s) - started))
    broker_status=0
    stop_broker || broker_status=$?
    # The runner's summary table: "| 0090_idempotence | PASSED | 1.234s |".
    summary=$(sed 's/\x1b\[[0-9;]*m//g' "$log" | grep -E '^\| *[0-9]{4}_[^ ]* +\| +(PASSED|FAILED|SKIPPED|RUNNING|NOT_STARTED)' || true)
    ran=$(grep -c 'PASSED\|FAILED' <<<"$summary" || true)
    why=""
    if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
        why="timed out after ${test_timeout}s"
    elif [ "$status" -ne 0 ]; then
        why="test-runner exit status $status"
    elif [ "$ran" -eq 0 ]; then
        why="no test ran (wrong number or scenario?)"
    elif [ "$broker_status" -ne 0 ]; then
        why="the broker exited with status $broker_status"
    fi
    plain=$(sed 's/\x1b\[[0-9;]*m//g' "$log")
    subs=$(grep -c '^\[.*\] \[ .*: PASS (' <<<"$plain" || true)
    skips=$(grep -c '^\[.*\] \[ .*: SKIP' <<<"$plain" || true)
    if [ -z "$why" ] && [ -n "$subtests" ] && [ "$subs" -eq 0 ]; then
        why="no sub-test matched \"$subtests\""
    fi
    if [ -z "$why" ]; then
        passed+=("$name")
        printf 'librdkafka-tests: %-24s PASS (%ss; sub-tests: %s passed, %s skipped)\n' "$name" "$elapsed" "$subs" "$skips"
    else
        failed+=("$name")
        printf 'librdkafka-tests: %-24s FAIL (%ss): %s\n' "$name" "$elapsed" "$why"
        [ -n "$summary" ] && sed 's/^/    /' <<<"$summary"
        sed 's/\x1b\[[0-9;]*m//g' "$log" | grep -E 'FAIL|Test failure|assert' | head -8 | sed 's/^/    /' || true
        grep -E ' (WARN|ERROR) ' "$blog" | head -5 | sed 's/^/    broker: /' || true
        echo "    logs: $logs/$file.log, $logs/$file.broker.log"
    fi
done

echo
echo "librdkafka-tests: ${#passed[@]} passed: ${passed[*]:-}"
if [ ${#failed[@]} -gt 0 ]; then
    echo "librdkafka-tests: ${#failed[@]} FAILED: ${failed[*]}"
    exit 1
fi
