#!/usr/bin/env bash
# Runs every tdsync test on a fresh machine of this kind: installs and starts what the tests need
# when it is missing, then formatting, lints and the whole test suite. CI runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }
started=$SECONDS

# Services (each a throwaway instance, stopped at exit): see infra/services.sh.
source infra/services.sh
source infra/contract-fuzz.sh
trap services_cleanup EXIT
step "services: PostgreSQL (control-plane tests)"
ensure_postgres
step "services: Redis (the shared live state's tests)"
ensure_redis
step "services: S3-compatible object storage (backup tests)"
ensure_s3
step "services: SMTP (login and invitation emails)"
ensure_smtp
step "tools: headless Chromium (harness dashboard test)"
ensure_chromium
step "tools: tmux (the deploy suite's terminal)"
ensure_tmux
step "tools: Caddy (the deploy suite's TLS)"
ensure_caddy
step "tools: td $TD_VERSION (the interop suite, td_golden, td_writer_vs_td)"
ensure_td
# A one-off build gains nothing from incremental caches, which roughly double target/'s size.
export CARGO_INCREMENTAL=0
# Tests that need a service or td fail, rather than skip, when it is missing.
export TDSYNC_REQUIRE_SERVICES=1

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo test (workspace)"
# Property tests run at least 500 cases here (proptest's own default is 256).
PROPTEST_CASES="${PROPTEST_CASES:-500}" cargo test --workspace --locked

# The API document against the server: schemathesis (pinned, from PyPI) over every operation of
# GET /openapi.json, all checks, a fixed seed, against target/debug/tdsync (built by cargo test).
step "contract fuzz: schemathesis $CONTRACT_FUZZ_SCHEMATHESIS_VERSION, every operation, all checks (seed $CONTRACT_FUZZ_SEED)"
services_on_exit contract_fuzz_stop
run_contract_fuzz

step "all tests passed in $((SECONDS - started)) s"
