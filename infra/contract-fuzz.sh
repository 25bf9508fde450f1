#!/usr/bin/env bash
# The contract fuzz: schemathesis over every operation of the served OpenAPI document, with all
# its checks, against a throwaway `tdsync serve`. It fails on any failure or server error, so the
# document (openapi/tdsync.openapi.json) keeps saying exactly what the server does.
#
#   ./infra/contract-fuzz.sh              # on its own (builds nothing: needs target/debug/tdsync)
#   source infra/contract-fuzz.sh         # infra/test.sh does this after `cargo test`,
#   run_contract_fuzz                     # which leaves target/debug/tdsync built
#
# Settings (environment): TDSYNC_BIN (default target/debug/tdsync), CONTRACT_FUZZ_SEED,
# CONTRACT_FUZZ_MAX_EXAMPLES. Schemathesis is installed from PyPI, pinned, into a venv cached at
# target/tools/schemathesis-<version>/. Its configuration is infra/schemathesis.toml.

CONTRACT_FUZZ_SCHEMATHESIS_VERSION=4.32.5
# A fixed seed and a bounded budget (examples per operation and phase): the same cases every
# run, about 40 s for both passes on a 2-core machine.
CONTRACT_FUZZ_SEED=${CONTRACT_FUZZ_SEED:-20261204}
CONTRACT_FUZZ_MAX_EXAMPLES=${CONTRACT_FUZZ_MAX_EXAMPLES:-75}

contract_fuzz_log() { printf '    [contract-fuzz] %s\n' "$*"; }

contract_fuzz_venv() {
    echo "${CARGO_TARGET_DIR:-$PWD/target}/tools/schemathesis-$CONTRACT_FUZZ_SCHEMATHESIS_VERSION"
}

# A command that stops the fuzz server and removes its data (only what this script started).
contract_fuzz_stop() {
    if [ -n "${CONTRACT_FUZZ_PID:-}" ]; then
        kill "$CONTRACT_FUZZ_PID" 2>/dev/null || true
        wait "$CONTRACT_FUZZ_PID" 2>/dev/null || true
        CONTRACT_FUZZ_PID=
    fi
    if [ -n "${CONTRACT_FUZZ_DIR:-}" ]; then
        rm -rf "$CONTRACT_FUZZ_DIR"
        CONTRACT_FUZZ_DIR=
    fi
}

# Installs the pinned schemathesis into its venv when missing; prints the path of its binary.
ensure_schemathesis() {
    local venv bin
    venv=$(contract_fuzz_venv)
    bin="$venv/bin/schemathesis"
    if [ -x "$bin" ] &&
        [ "$("$bin" --version 2>/dev/null | awk '{print $NF}')" = "$CONTRACT_FUZZ_SCHEMATHESIS_VERSION" ]; then
        echo "$bin"
        return 0
    fi
    contract_fuzz_log "installing schemathesis $CONTRACT_FUZZ_SCHEMATHESIS_VERSION from PyPI into $venv" >&2
    rm -rf "$venv"
    if ! python3 -m venv "$venv" >/dev/null 2>&1; then
        rm -rf "$venv"
        # Debian keeps venv (and pip) in a package of its own.
        if command -v apt-get >/dev/null && declare -F services_as_root >/dev/null; then
            contract_fuzz_log "python3 cannot make a venv: installing Debian's python3-venv" >&2
            services_as_root apt-get update -qq >&2
            services_as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >&2
        fi
        python3 -m venv "$venv" >&2 || {
            rm -rf "$venv"
            echo "python3 cannot make a venv for schemathesis (Debian: apt-get install python3-venv)" >&2
            return 1
        }
    fi
    if ! "$venv/bin/pip" install --quiet --disable-pip-version-check \
        "schemathesis==$CONTRACT_FUZZ_SCHEMATHESIS_VERSION" >&2; then
        rm -rf "$venv"
        echo "installing schemathesis $CONTRACT_FUZZ_SCHEMATHESIS_VERSION from PyPI failed" >&2
        return 1
    fi
    echo "$bin"
}

# Pushes one event on issue td-1 of `project` as `device` (td's wire format).
contract_fuzz_push() {
    local addr=$1 project=$2 token=$3 device=$4 action=$5 payload=$6
    curl -sf -o /dev/null -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
        -d "{\"device_id\":\"$device\",\"session_id\":\"fuzz\",\"events\":[{\"client_action_id\":1,
             \"action_type\":\"$action\",\"entity_type\":\"issues\",\"entity_id\":\"td-1\",
             \"payload\":$payload,\"client_timestamp\":\"2026-01-01T00:00:00Z\"}]}" \
        "http://$addr/v1/projects/$project/sync/push"
}

# Gives the fixture project a conflict (id 1, the first of a fresh project): device `a` creates
# issue td-1, device `b` renames it over a title it had not seen. So the recovery routes answer
# with real conflicts, restores and history, not only with empty lists and 404s.
contract_fuzz_seed_conflict() {
    local addr=$1 project=$2 token=$3
    contract_fuzz_push "$addr" "$project" "$token" a create \
        '{"new_data":{"id":"td-1","title":"a"},"previous_data":{},"schema_version":1}' &&
        contract_fuzz_push "$addr" "$project" "$token" b update \
            '{"new_data":{"id":"td-1","title":"b"},"previous_data":{"id":"td-1","title":"x"},"schema_version":1}' &&
        curl -sf -H "Authorization: Bearer $token" "http://$addr/v1/projects/$project/conflicts" |
        grep -q '"id":1,' || {
        echo "giving the fixture project a conflict failed" >&2
        return 1
    }
}

# Starts `tdsync serve` on a free port with a fresh data dir and a fixture project, mints a write
# and an admin token, runs schemathesis over every operation (then the admin routes again with the
# admin token), stops the server. Returns non-zero on any failure or server error.
run_contract_fuzz() {
    local tdsync=${TDSYNC_BIN:-${CARGO_TARGET_DIR:-$PWD/target}/debug/tdsync}
    local schemathesis
    if ! schemathesis=$(ensure_schemathesis); then
        if [ "${TDSYNC_REQUIRE_SERVICES:-}" = 1 ]; then
            return 1
        fi
        printf '\n    ******** contract fuzz SKIPPED: schemathesis could not be installed ********\n\n' >&2
        return 0
    fi
    [ -x "$tdsync" ] || { echo "$tdsync not found: cargo build -p tdsync-cli" >&2; return 1; }

    CONTRACT_FUZZ_DIR=$(mktemp -d "${TMPDIR:-/tmp}/tdsync-fuzz.XXXXXX")
    local data="$CONTRACT_FUZZ_DIR/data" tenant project writer admin addr _
    tenant=$("$tdsync" --data-dir "$data" tenant create acme) || return 1
    project=$("$tdsync" --data-dir "$data" project create --tenant "$tenant" web) || return 1
    writer=$("$tdsync" --data-dir "$data" token mint --tenant "$tenant" --scope write \
        --name fuzz-writer 2>/dev/null) || return 1
    admin=$("$tdsync" --data-dir "$data" token mint --tenant "$tenant" --scope admin,mint \
        --name fuzz-admin 2>/dev/null) || return 1

    # Rate limits on, so every request goes through them, but out of reach: the fuzz sends
    # thousands of requests a minute with one token from one address, many with bad tokens on
    # purpose, and a 429 would only hide the answer it checks.
    local limits=(--rate-limits on) class
    for class in push pull other ip auth-failures; do
        limits+=(--rate-limit-$class 1000000000 --rate-limit-$class-burst 1000000000)
    done
    : >"$CONTRACT_FUZZ_DIR/serve.log"
    "$tdsync" serve --listen 127.0.0.1:0 --data-dir "$data" "${limits[@]}" \
        >"$CONTRACT_FUZZ_DIR/serve.log" 2>&1 &
    CONTRACT_FUZZ_PID=$!
    for _ in $(seq 1 100); do
        addr=$(sed -n 's|^tdsync: serving on http://\([^ ]*\).*|\1|p' "$CONTRACT_FUZZ_DIR/serve.log" 2>/dev/null || true)
        [ -n "$addr" ] && break
        sleep 0.1
    done
    if [ -z "$addr" ]; then
        cat "$CONTRACT_FUZZ_DIR/serve.log" >&2
        echo "tdsync serve did not start" >&2
        contract_fuzz_stop
        return 1
    fi
    contract_fuzz_log "tdsync serve on http://$addr (tenant $tenant, project $project)"
    contract_fuzz_seed_conflict "$addr" "$project" "$writer" || { contract_fuzz_stop; return 1; }

    # The ids infra/schemathesis.toml gives the members and recovery routes: the project and the
    # writer's token id (`tds_<id>_<secret>`).
    export CONTRACT_FUZZ_PROJECT=$project CONTRACT_FUZZ_MEMBER=${writer:4:12}
    # --workers 1: one request at a time, so a run is the same sequence of cases every time.
    # No example database: earlier runs' finds do not change what is generated.
    local common=(--checks all --seed "$CONTRACT_FUZZ_SEED" --max-examples "$CONTRACT_FUZZ_MAX_EXAMPLES"
        --workers 1 --generation-database none)
    # The served document, as a file: loaded from its URL, schemathesis leaves out the operation
    # that served it (GET /openapi.json), and every operation is to be tested.
    local doc="$CONTRACT_FUZZ_DIR/openapi.json" status=0
    curl -sf -o "$doc" "http://$addr/openapi.json" || {
        echo "GET /openapi.json failed" >&2
        contract_fuzz_stop
        return 1
    }
    contract_fuzz_log "every operation, as td's users call them: a write token"
    "$schemathesis" --no-color --config-file infra/schemathesis.toml run "$doc" --url "http://$addr" \
        "${common[@]}" --header "Authorization: Bearer $writer" || status=$?
    # A write token gets 403 from the routes that manage tokens and members and from the device
    # cursors, so their answers (token listings, members, role changes, cursors) are checked in
    # a second pass with an admin token.
    if [ "$status" = 0 ]; then
        contract_fuzz_log "the routes that need admin (tags tokens, members; cursors): an admin,mint token"
        "$schemathesis" --no-color --config-file infra/schemathesis.toml run "$doc" --url "http://$addr" \
            "${common[@]}" --include-tag tokens --include-tag members \
            --include-name "GET /v1/projects/{id}/sync/cursors" \
            --header "Authorization: Bearer $admin" || status=$?
    fi
    if [ "$status" != 0 ]; then
        echo "contract fuzz failed (exit $status): the document and the server disagree (above)." \
             "The server's errors:" >&2
        grep -E 'ERROR|panicked' "$CONTRACT_FUZZ_DIR/serve.log" | tail -n 20 >&2 || true
    fi
    contract_fuzz_stop
    return "$status"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    set -euo pipefail
    cd "$(dirname "$0")/.."
    trap contract_fuzz_stop EXIT
    started=$SECONDS
    run_contract_fuzz
    contract_fuzz_log "passed in $((SECONDS - started)) s"
fi
