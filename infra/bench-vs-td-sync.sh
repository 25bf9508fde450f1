#!/usr/bin/env bash
# tdsync against td's own server (td-sync v0.62.0), measured by the same command: builds td-sync
# from td's vendored source (as infra/test.sh builds td) and a release tdsync, then runs
# `tdsync bench --url URL --token T --json` against td-sync and tdsync alternately, each run on a
# fresh server (free loopback port, fresh data directory, fresh key), and writes the side-by-side
# table BENCHMARKS.md quotes: per measurement, the median over runs of each server's figure (each
# figure itself a median of the bench's rounds), every run's figure, and the ratio.
#
# Usage: infra/bench-vs-td-sync.sh [--runs N] [--out DIR] [-- TDSYNC_BENCH_ARGS…]
#   --runs N   runs per server, alternating td-sync, tdsync, td-sync, … (default 2)
#   --out DIR  where the table (table.md), each run's JSON and the servers' logs go
#              (default target/bench-vs-td-sync/<UTC time>)
#   after --   passed to every `tdsync bench` run, e.g. `-- --only push,pull-head --rounds 2
#              --duration 0.5` for a short trial (defaults: every measurement, 5 rounds of 2 s)
# Environment: TD_SYNC_BIN (a td-sync binary; else built into target/tools/td-v0.62.0/),
# TDSYNC_BIN (a tdsync binary; else `cargo build --release`).
#
# td-sync is set up headlessly (../shared/reference/td-sync-server-internals.md §3, §6.4): its
# rate limits (per key per minute: push 60, pull 120, other 300) raised to 10^9, or the bench
# would be throttled within its first second; everything else is td-sync's default. Its key
# comes from `td-sync admin create-user`, `grant`, `create-key` (scope sync).
# tdsync runs `tdsync serve` on its defaults with a tenant and a write token, its rate limits
# raised the same way (to 10^9 a minute and at once). One server runs at
# a time; the load generator shares the machine with it, so run this on a quiet machine.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

runs=2
out=""
bench_args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --runs) runs=${2:?--runs needs a number}; shift 2 ;;
        --out) out=${2:?--out needs a directory}; shift 2 ;;
        --) shift; bench_args=("$@"); break ;;
        -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
    esac
done
out=${out:-$root/target/bench-vs-td-sync/$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$out"
out=$(cd "$out" && pwd)

say() { printf '==> %s\n' "$*" >&2; }

source infra/services.sh
server_pid=""
stop_server() {
    if [ -n "$server_pid" ]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
        server_pid=""
    fi
}
trap 'stop_server; services_cleanup' EXIT

for tool in jq curl; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        say "$tool not installed: installing Debian's $tool package"
        services_as_root apt-get update -qq
        services_as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$tool" >/dev/null
    fi
done

if [ -z "${TD_SYNC_BIN:-}" ]; then
    TD_BIN="" ensure_td >&2
fi
[ -x "$TD_SYNC_BIN" ] || { echo "TD_SYNC_BIN=$TD_SYNC_BIN is not executable" >&2; exit 1; }
if [ -z "${TDSYNC_BIN:-}" ]; then
    say "cargo build --release (tdsync)"
    cargo build --release --locked --bin tdsync >&2
    TDSYNC_BIN=$root/${CARGO_TARGET_DIR:-target}/release/tdsync
    [[ "${CARGO_TARGET_DIR:-}" = /* ]] && TDSYNC_BIN=$CARGO_TARGET_DIR/release/tdsync
fi
[ -x "$TDSYNC_BIN" ] || { echo "TDSYNC_BIN=$TDSYNC_BIN is not executable" >&2; exit 1; }

# Waits until URL/healthz answers 200 (the server's pid must stay alive meanwhile).
wait_healthy() {
    local url=$1 log=$2 _
    for _ in $(seq 1 300); do
        if curl -sf -o /dev/null "$url/healthz"; then return 0; fi
        if ! kill -0 "$server_pid" 2>/dev/null; then
            echo "the server exited before answering; its log:" >&2
            tail -n 30 "$log" >&2
            return 1
        fi
        sleep 0.1 # polling the server's health until it answers (bounded above)
    done
    echo "the server did not answer $url/healthz within 30 s" >&2
    return 1
}

# Starts a fresh td-sync in DIR on a free port; sets url and token.
start_td_sync() {
    local dir=$1 port
    port=$(services_free_port)
    local email=bench@example.test db=$dir/server.db
    "$TD_SYNC_BIN" admin create-user --email "$email" --db "$db" >/dev/null
    "$TD_SYNC_BIN" admin grant --email "$email" --db "$db" >/dev/null
    token=$("$TD_SYNC_BIN" admin create-key --email "$email" --name bench --db "$db" |
        awk '$1 == "key:" {print $2}')
    [ -n "$token" ] || { echo "td-sync admin create-key printed no key" >&2; return 1; }
    SYNC_LISTEN_ADDR=127.0.0.1:$port SYNC_SERVER_DB_PATH=$db SYNC_PROJECT_DATA_DIR=$dir/projects \
        SYNC_RATE_LIMIT_PUSH=1000000000 SYNC_RATE_LIMIT_PULL=1000000000 \
        SYNC_RATE_LIMIT_OTHER=1000000000 \
        "$TD_SYNC_BIN" >"$dir/server.log" 2>&1 &
    server_pid=$!
    url=http://127.0.0.1:$port
    wait_healthy "$url" "$dir/server.log"
}

# Starts a fresh `tdsync serve` in DIR on a free port; sets url and token.
start_tdsync() {
    local dir=$1 port tenant
    port=$(services_free_port)
    tenant=$(TDSYNC_DATA_DIR=$dir/data "$TDSYNC_BIN" tenant create cmp)
    token=$(TDSYNC_DATA_DIR=$dir/data "$TDSYNC_BIN" token mint --tenant "$tenant" --scope write \
        --name bench --json | jq -r .token)
    local limits=() class
    for class in push pull other ip auth-failures; do
        limits+=(--rate-limit-$class 1000000000 --rate-limit-$class-burst 1000000000)
    done
    TDSYNC_DATA_DIR=$dir/data "$TDSYNC_BIN" serve --listen "127.0.0.1:$port" "${limits[@]}" \
        >"$dir/server.log" 2>&1 &
    server_pid=$!
    url=http://127.0.0.1:$port
    wait_healthy "$url" "$dir/server.log"
}

say "td-sync: $TD_SYNC_BIN; tdsync: $TDSYNC_BIN; $runs run(s) each; bench args: ${bench_args[*]:-(defaults)}"
say "results in $out"
for run in $(seq 1 "$runs"); do
    for server in td-sync tdsync; do
        dir=$out/$server-$run
        mkdir -p "$dir"
        "start_${server//-/_}" "$dir"
        say "run $run, $server at $url (load $(cut -d' ' -f1-3 /proc/loadavg))"
        "$TDSYNC_BIN" bench --url "$url" --token "$token" --json "${bench_args[@]}" \
            >"$dir/bench.json" 2>"$dir/bench.log" || {
            echo "tdsync bench against $server failed; its output:" >&2
            tail -n 30 "$dir/bench.log" >&2
            exit 1
        }
        stop_server
    done
done

# The table: one row per measurement (and the pull-at-the-head baseline, GET /healthz on the
# same server), the median over runs for each server with every run's figure, p50/p99 where the
# bench reports them, and tdsync / td-sync.
jq -rs --argjson runs "$runs" '
    def commas: tostring as $s | ($s | length) as $n
        | [range(0; $n) | $s[.:.+1] + (if . < $n - 1 and ($n - . - 1) % 3 == 0 then "," else "" end)]
        | join("");
    def fmt: if . == null then "–"
        elif . >= 1000 then round | commas
        elif . >= 100 then round | tostring
        elif . >= 10 then (. * 10 | round) / 10 | tostring
        elif . >= 1 then (. * 100 | round) / 100 | tostring
        else (. * 1000 | round) / 1000 | tostring end;
    def median: sort | if length == 0 then null
        elif length % 2 == 1 then .[length / 2 | floor]
        else (.[length / 2 - 1] + .[length / 2]) / 2 end;
    # rows[server][key] = {title, unit, medians: [..], p50: [..], p99: [..]}
    def rows_of($server): [.[] | select(.server == $server) | .doc.measurements[]
        | ({key: .name, title: .title, unit: .unit, s: .measured},
           (select(.name == "pull_head" and .baseline != null)
            | {key: "healthz", title: "GET /healthz, same pollers (the pull-at-the-head baseline)",
               unit: .unit, s: .baseline}))]
        | group_by(.key) | map({key: .[0].key, value: {title: .[0].title, unit: .[0].unit,
            runs: map(.s.median), p50: map(.s.p50_ms // empty), p99: map(.s.p99_ms // empty)}})
        | from_entries;
    def cell: if . == null then "–" else
        "**\(.runs | median | fmt)** (runs: \(.runs | map(fmt) | join(" / "))"
        + (if (.p50 | length) > 0 then "; p50 \(.p50 | median | fmt) ms, p99 \(.p99 | median | fmt) ms" else "" end)
        + ")" end;
    (rows_of("tdsync")) as $ours | (rows_of("td-sync")) as $theirs
    | [.[] | .doc] as $docs
    | ["push", "pull_head", "healthz", "pull_page", "snapshot_build", "snapshot_cached"] as $order
    | ($order + (($ours | keys) - $order)) as $keys
    | "tdsync against td-sync v0.62.0, same command (`tdsync bench --url URL --token T --json`), \($runs) run(s) each, alternating td-sync, tdsync; bench settings: \($docs[0].rounds) rounds of \($docs[0].duration_secs) s, \($docs[0].devices) devices, \($docs[0].pollers) pollers; load average (1 min) before each run: \([.[] | "\(.server) \(.doc.load_average_before[0] // "?")"] | join(", ")).",
      "",
      "| measurement | unit | tdsync | td-sync | ratio tdsync / td-sync |",
      "|---|---|---|---|---|",
      ($keys[] | select($ours[.] != null or $theirs[.] != null) as $k
        | ($ours[$k] // $theirs[$k]) as $any
        | (if $ours[$k] != null and $theirs[$k] != null
            then ($ours[$k].runs | median) / ($theirs[$k].runs | median) | fmt else "–" end) as $ratio
        | "| \($any.title) | \($any.unit) | \($ours[$k] | cell) | \($theirs[$k] | cell) | \($ratio) |"),
      "",
      "For latencies (ms) a ratio below 1 means tdsync is faster; for rates (events/s, req/s, MB/s) above 1."
' < <(for run in $(seq 1 "$runs"); do
        for server in td-sync tdsync; do
            jq -c --arg server "$server" '{server: $server, doc: .}' "$out/$server-$run/bench.json"
        done
    done) | tee "$out/table.md"
say "table written to $out/table.md"
