#!/usr/bin/env bash
# The cluster measured by the same script: a release tdsync, a throwaway Postgres and Redis
# (infra/services.sh), then, each on a fresh control-plane database and fresh data directories:
#   1. push and pull at the head through one gateway over 1 shard node, then over 3 (same run);
#   2. the gateway's hop: pull at the head (answered by the gateway from Redis) and a page of
#      events (forwarded to the owner) through the gateway, then straight to a shard node;
#   3. failover: a shard node owning --projects projects (one event each) killed with SIGKILL,
#      and the time until another node holds every one of them (tdsync cluster status).
# Writes table.md (and each run's JSON and the servers' logs) under --out.
#
# Usage: infra/bench-cluster.sh [--projects N] [--out DIR] [-- TDSYNC_BENCH_ARGS…]
#   --projects N  projects of the failover measurement (default 1000)
#   --out DIR     default target/bench-cluster/<UTC time>
#   after --      passed to every `tdsync bench` run (default: 5 rounds of 2 s)
# Environment: TDSYNC_BIN (a tdsync binary; else `cargo build --release`).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

projects=1000
out=""
bench_args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --projects) projects=${2:?--projects needs a number}; shift 2 ;;
        --out) out=${2:?--out needs a directory}; shift 2 ;;
        --) shift; bench_args=("$@"); break ;;
        -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
    esac
done
out=${out:-$root/target/bench-cluster/$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$out"
out=$(cd "$out" && pwd)
say() { printf '==> %s\n' "$*" >&2; }

source infra/services.sh
pids=()
stop_all() {
    local pid
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    pids=()
}
trap 'stop_all; services_cleanup' EXIT
ensure_postgres
ensure_redis

if [ -z "${TDSYNC_BIN:-}" ]; then
    say "building a release tdsync"
    cargo build --release -p tdsync-cli >&2
    TDSYNC_BIN=$root/target/release/tdsync
fi

# launch LOG ARGS…: `tdsync ARGS… --listen 127.0.0.1:PORT` on a free port, until it answers
# /healthz (another port when the chosen one was taken meanwhile); sets LAUNCHED_PID and
# LAUNCHED_URL.
launch() {
    local log=$1 port attempt
    shift
    for attempt in 1 2 3; do
        port=$(services_free_port)
        "$TDSYNC_BIN" "$@" --listen "127.0.0.1:$port" >"$log" 2>&1 &
        LAUNCHED_PID=$!
        LAUNCHED_URL="http://127.0.0.1:$port"
        for _ in $(seq 1 100); do
            kill -0 "$LAUNCHED_PID" 2>/dev/null || break
            if curl -sf "$LAUNCHED_URL/healthz" >/dev/null; then
                pids+=("$LAUNCHED_PID")
                return 0
            fi
            sleep 0.1
        done
        kill "$LAUNCHED_PID" 2>/dev/null || true
        say "tdsync did not start on port $port (attempt $attempt): $(tail -n 1 "$log")"
    done
    echo "tdsync did not start; see $log" >&2
    exit 1
}

setup=0
# fresh_cluster NODES: a new control-plane database, NODES shard nodes and one gateway; sets
# PG, GATEWAY, NODE_URLS, NODE_PIDS and TOKEN.
fresh_cluster() {
    local nodes=$1 dir n
    setup=$((setup + 1))
    local db="bench_cluster_$setup"
    psql -q "$TDSYNC_TEST_POSTGRES_URL" -c "CREATE DATABASE $db" >/dev/null
    PG=${TDSYNC_TEST_POSTGRES_URL%/*}/$db
    dir=$out/setup-$setup
    mkdir -p "$dir"
    NODE_URLS=()
    NODE_PIDS=()
    for n in $(seq 0 $((nodes - 1))); do
        launch "$dir/node-$n.log" --data-dir "$dir/node-$n" --control-plane "$PG" serve \
            --role shard --node-id "node-$n" \
            --redis "$TDSYNC_TEST_REDIS_URL" --redis-prefix "bench$setup:" \
            --backup-to "file://$dir/backup" --rate-limits off --log warn
        NODE_PIDS+=("$LAUNCHED_PID")
        NODE_URLS+=("$LAUNCHED_URL")
    done
    launch "$dir/gateway.log" --data-dir "$dir/gateway" --control-plane "$PG" serve \
        --role gateway --redis "$TDSYNC_TEST_REDIS_URL" --redis-prefix "bench$setup:" \
        --rate-limits off --log warn
    GATEWAY=$LAUNCHED_URL
    local tenant
    tenant=$("$TDSYNC_BIN" --control-plane "$PG" tenant create bench)
    TOKEN=$("$TDSYNC_BIN" --control-plane "$PG" token mint --tenant "$tenant" --scope write \
        --name bench --json | jq -r .token)
}

bench() { # URL NAME ARGS…: one tdsync bench run, its JSON kept
    local url=$1 name=$2
    shift 2
    say "tdsync bench $* against $url ($name)"
    TDSYNC_BENCH_TOKEN=$TOKEN "$TDSYNC_BIN" bench --url "$url" --json "$@" "${bench_args[@]}" \
        >"$out/$name.json" 2>"$out/$name.err"
}
figure() { # NAME MEASUREMENT FIELD
    jq -r --arg m "$2" ".measurements[] | select(.name == \$m) | .measured.$3" "$out/$1.json"
}

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
for nodes in 1 3; do
    fresh_cluster "$nodes"
    if [ "$nodes" = 1 ]; then
        bench "$GATEWAY" "gateway-$nodes-nodes" --only push,pull-head,pull-page --devices 6 \
            --push-projects 6
        bench "${NODE_URLS[0]}" "direct-1-node" --only pull-head,pull-page
    else
        bench "$GATEWAY" "gateway-$nodes-nodes" --only push,pull-head --devices 6 --push-projects 6
    fi
    stop_all
done

say "failover: $projects projects on node-0, then node-0 killed"
fresh_cluster 2
TDSYNC_BENCH_TOKEN=$TOKEN "$TDSYNC_BIN" bench --url "${NODE_URLS[0]}" --only many-projects \
    --projects "$projects" --project-events 1 --pollers 4 --rounds 1 --duration 0.5 --json \
    >"$out/failover-setup.json" 2>"$out/failover-setup.err"
held() { "$TDSYNC_BIN" --control-plane "$PG" cluster status --json |
    jq --arg n "$1" '[.projects[] | select(.node == $n and .lease_left_secs > 0)] | length'; }
owned=$(held node-0)
kill -9 "${NODE_PIDS[0]}"
killed=$(date +%s.%N)
while [ "$(held node-1)" -lt "$owned" ]; do sleep 0.2; done
failover=$(echo "$(date +%s.%N) - $killed" | bc)
stop_all
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

push1=$(figure gateway-1-nodes push median)
push3=$(figure gateway-3-nodes push median)
{
    echo "tdsync cluster on $(nproc) cores, $(date -u +%Y-%m-%d), load $load_before → $load_after"
    echo
    echo "| measurement | figure | baseline | ratio |"
    echo "|---|---|---|---|"
    printf '| push through a gateway, 6 devices into 6 projects, 3 shard nodes | %.0f events/s | 1 shard node: %.0f events/s | %.2f |\n' \
        "$push3" "$push1" "$(echo "$push3 / $push1" | bc -l)"
    printf '| pull at the head through a gateway (1 node), p50 / p99 | %.2f / %.2f ms | straight to the shard node: %.2f / %.2f ms | +%.2f ms at p50 |\n' \
        "$(figure gateway-1-nodes pull_head p50_ms)" "$(figure gateway-1-nodes pull_head p99_ms)" \
        "$(figure direct-1-node pull_head p50_ms)" "$(figure direct-1-node pull_head p99_ms)" \
        "$(echo "$(figure gateway-1-nodes pull_head p50_ms) - $(figure direct-1-node pull_head p50_ms)" | bc -l)"
    printf '| pull at the head through a gateway (1 node), req/s | %.0f | straight: %.0f | %.2f |\n' \
        "$(figure gateway-1-nodes pull_head median)" "$(figure direct-1-node pull_head median)" \
        "$(echo "$(figure gateway-1-nodes pull_head median) / $(figure direct-1-node pull_head median)" | bc -l)"
    printf '| a 1,000-event page through a gateway (forwarded), p50 / p99 | %.2f / %.2f ms | straight to the shard node: %.2f / %.2f ms | +%.2f ms at p50 |\n' \
        "$(figure gateway-1-nodes pull_page p50_ms)" "$(figure gateway-1-nodes pull_page p99_ms)" \
        "$(figure direct-1-node pull_page p50_ms)" "$(figure direct-1-node pull_page p99_ms)" \
        "$(echo "$(figure gateway-1-nodes pull_page p50_ms) - $(figure direct-1-node pull_page p50_ms)" | bc -l)"
    printf '| failover of a node owning %s projects (SIGKILL → all held by the other node, lease 10 s) | %.1f s | — | — |\n' \
        "$owned" "$failover"
} | tee "$out/table.md"
