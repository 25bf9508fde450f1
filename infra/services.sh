#!/usr/bin/env bash
# Services the tests need, one function per service. Each installs what is missing from Debian's
# packages, starts a throwaway instance on a free loopback port in a temp dir, exports its URL
# for the tests, and registers how to stop it. Usage (infra/test.sh does this):
#
#   source infra/services.sh
#   trap services_cleanup EXIT
#   ensure_postgres            # exports TDSYNC_TEST_POSTGRES_URL
#   ensure_redis               # exports TDSYNC_TEST_REDIS_URL and TDSYNC_REDIS_SERVER
#   ensure_s3                  # exports TDSYNC_TEST_S3_{ENDPOINT,BUCKET,ACCESS_KEY,SECRET_KEY,REGION}
#                              # and TDSYNC_S3_SERVER (s3s-fs: tests that stop and restart one)
#   ensure_chromium            # exports TDSYNC_CHROMIUM (installs Debian's chromium if absent)
#   ensure_tmux                # installs Debian's tmux if absent (the deploy suite)
#   ensure_caddy               # installs Debian's caddy if absent (the deploy suite's TLS)
#   ensure_td                  # exports TD_BIN and TD_SYNC_BIN (builds td from its vendored source)
#   ensure_smtp                # exports TDSYNC_TEST_SMTP_URL and TDSYNC_TEST_MAILDIR (an SMTP sink,
#                              # infra/smtp_sink.py: every message received is a file there)
#
# To add a service, write ensure_<name> beside ensure_postgres: start it, export its URL, and
# call services_on_exit with the command that stops it.

SERVICES_CLEANUP=()

# Registers a command to run at exit (run in reverse order by services_cleanup).
services_on_exit() { SERVICES_CLEANUP+=("$1"); }

services_cleanup() {
    local i
    for ((i = ${#SERVICES_CLEANUP[@]} - 1; i >= 0; i--)); do
        eval "${SERVICES_CLEANUP[i]}" || true
    done
    SERVICES_CLEANUP=()
}

services_log() { printf '    [services] %s\n' "$*"; }

# Runs a command as root (directly when we are root, as CI is; else through sudo).
services_as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

# A TCP port on 127.0.0.1 that nothing listens on right now.
services_free_port() {
    local port _
    for _ in $(seq 1 200); do
        port=$(((RANDOM % 20000) + 40000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return 0
        fi
    done
    echo "no free port found" >&2
    return 1
}

# --- PostgreSQL --------------------------------------------------------------------------------

# The newest installed server's bin directory (Debian keeps them per major version).
postgres_bindir() {
    local dir
    dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    if [ -n "$dir" ] && [ -x "$dir/initdb" ]; then
        echo "$dir"
        return 0
    fi
    if command -v pg_config >/dev/null && [ -x "$(pg_config --bindir)/initdb" ]; then
        pg_config --bindir
        return 0
    fi
    return 1
}

# Starts a throwaway PostgreSQL cluster (initdb in a temp dir, a free port, trust auth on
# loopback only, durability off: it lives for one test run) and exports
# TDSYNC_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:PORT/postgres. An already exported
# TDSYNC_TEST_POSTGRES_URL is used as it is.
ensure_postgres() {
    if [ -n "${TDSYNC_TEST_POSTGRES_URL:-}" ]; then
        services_log "PostgreSQL: using TDSYNC_TEST_POSTGRES_URL from the environment"
        return 0
    fi
    local bin
    if ! bin=$(postgres_bindir); then
        services_log "PostgreSQL not installed: installing Debian's postgresql package"
        services_as_root apt-get update -qq
        services_as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
        bin=$(postgres_bindir) || {
            echo "PostgreSQL binaries not found after installing postgresql" >&2
            return 1
        }
    fi
    PG_BIN=$bin
    PG_DIR=$(mktemp -d "${TMPDIR:-/tmp}/tdsync-pg.XXXXXX")
    PG_RUN_AS=()
    # initdb refuses to run as root: the cluster belongs to the postgres user.
    if [ "$(id -u)" = 0 ]; then
        chown postgres:postgres "$PG_DIR"
        PG_RUN_AS=(runuser -u postgres --)
    fi
    services_on_exit stop_postgres
    if ! "${PG_RUN_AS[@]}" "$PG_BIN/initdb" -D "$PG_DIR/data" -U postgres -A trust -E UTF8 \
        --no-sync >"$PG_DIR/initdb.log" 2>&1; then
        cat "$PG_DIR/initdb.log" >&2
        return 1
    fi
    local port attempt
    for attempt in 1 2 3; do
        port=$(services_free_port) || return 1
        if "${PG_RUN_AS[@]}" "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w -t 60 \
            -o "-p $port -k $PG_DIR -c listen_addresses=127.0.0.1 -c max_connections=300 \
                -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
            start >/dev/null; then
            export TDSYNC_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$port/postgres"
            services_log "PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$port (data in $PG_DIR)"
            return 0
        fi
        services_log "PostgreSQL did not start on port $port (attempt $attempt); retrying"
    done
    cat "$PG_DIR/server.log" >&2
    return 1
}

stop_postgres() {
    [ -n "${PG_DIR:-}" ] || return 0
    if [ -f "$PG_DIR/data/postmaster.pid" ]; then
        "${PG_RUN_AS[@]}" "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m immediate -w stop >/dev/null 2>&1 || true
    fi
    rm -rf "$PG_DIR"
    PG_DIR=
}

# --- Redis -------------------------------------------------------------------------------------

# Starts a throwaway redis-server (Debian's redis-server package, installed only when absent) on
# a free loopback port, in a temp dir, with no persistence (it holds only what the live layer can
# derive again), and exports TDSYNC_TEST_REDIS_URL=redis://127.0.0.1:PORT and
# TDSYNC_REDIS_SERVER (the binary: tests that kill and restart Redis start their own). An already
# exported TDSYNC_TEST_REDIS_URL is used as it is.
ensure_redis() {
    if [ -n "${TDSYNC_TEST_REDIS_URL:-}" ]; then
        services_log "Redis: using TDSYNC_TEST_REDIS_URL from the environment"
        return 0
    fi
    if ! command -v redis-server >/dev/null 2>&1; then
        services_log "Redis not installed: installing Debian's redis-server package"
        services_as_root apt-get update -qq
        services_as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
        command -v redis-server >/dev/null 2>&1 || {
            echo "redis-server not found after installing redis-server" >&2
            return 1
        }
    fi
    export TDSYNC_REDIS_SERVER
    TDSYNC_REDIS_SERVER=$(command -v redis-server)
    REDIS_DIR=$(mktemp -d "${TMPDIR:-/tmp}/tdsync-redis.XXXXXX")
    services_on_exit stop_redis
    local port attempt _
    for attempt in 1 2 3; do
        port=$(services_free_port) || return 1
        "$TDSYNC_REDIS_SERVER" --bind 127.0.0.1 --port "$port" --dir "$REDIS_DIR" \
            --save "" --appendonly no --daemonize yes --pidfile "$REDIS_DIR/redis.pid" \
            --logfile "$REDIS_DIR/redis.log" || true
        for _ in $(seq 1 100); do
            if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
                export TDSYNC_TEST_REDIS_URL="redis://127.0.0.1:$port"
                services_log "Redis $("$TDSYNC_REDIS_SERVER" --version | awk '{print $3}' | sed 's/^v=//') on 127.0.0.1:$port (in $REDIS_DIR)"
                return 0
            fi
            sleep 0.1
        done
        services_log "Redis did not start on port $port (attempt $attempt); retrying"
    done
    cat "$REDIS_DIR/redis.log" >&2
    return 1
}

stop_redis() {
    [ -n "${REDIS_DIR:-}" ] || return 0
    local pid _
    if [ -f "$REDIS_DIR/redis.pid" ]; then
        pid=$(cat "$REDIS_DIR/redis.pid")
        kill "$pid" 2>/dev/null || true
        # Gone before its directory is: it writes its log until it exits.
        for _ in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
    fi
    rm -rf "$REDIS_DIR"
    REDIS_DIR=
}

# --- S3-compatible object storage (the backup tests write to it) -------------------------------

S3S_FS_VERSION=0.14.1

# Where s3s-fs is kept between runs.
s3_tools_dir() { echo "${CARGO_TARGET_DIR:-$PWD/target}/tools/s3s-fs-$S3S_FS_VERSION"; }

# Installs s3s-fs $S3S_FS_VERSION (Apache-2.0, an S3 server that keeps objects as plain files)
# from crates.io with cargo when missing, pinned and --locked (about 3 minutes on 2 cores the
# first time; newer versions need a newer rustc), and prints the path of its binary.
ensure_s3s_fs() {
    local root bin build log
    root=$(s3_tools_dir)
    bin="$root/bin/s3s-fs"
    if [ -x "$bin" ] && [ "$("$bin" --version 2>/dev/null)" = "s3s-fs $S3S_FS_VERSION" ]; then
        echo "$bin"
        return 0
    fi
    services_log "S3: installing s3s-fs $S3S_FS_VERSION from crates.io into $root" >&2
    # Built in a directory of its own (not the workspace's target/, even when CARGO_TARGET_DIR
    # is set), removed afterwards: only the binary is kept.
    build=$(mktemp -d "${TMPDIR:-/tmp}/tdsync-s3s-build.XXXXXX")
    log="$build/install.log"
    if ! cargo install s3s-fs --version "$S3S_FS_VERSION" --features binary --locked \
        --root "$root" --target-dir "$build/target" >"$log" 2>&1; then
        sed 's/^/    cargo install: /' "$log" | tail -n 30 >&2
        rm -rf "$build"
        echo "installing s3s-fs $S3S_FS_VERSION with cargo failed (see above)" >&2
        return 1
    fi
    rm -rf "$build"
    echo "$bin"
}

# Starts a throwaway s3s-fs on a free loopback port with a fresh root directory, one bucket and
# signature checking on (an access key and a random secret key: requests signed with other
# credentials are refused with 403), and exports TDSYNC_TEST_S3_ENDPOINT=http://127.0.0.1:PORT,
# TDSYNC_TEST_S3_BUCKET, TDSYNC_TEST_S3_ACCESS_KEY, TDSYNC_TEST_S3_SECRET_KEY and
# TDSYNC_TEST_S3_REGION=us-east-1. Requests must be path-style (ENDPOINT/BUCKET/KEY). An already
# exported TDSYNC_TEST_S3_ENDPOINT is used as it is, with the other four from the environment
# (the region defaults to us-east-1). s3s-fs answers a conditional PUT (If-None-Match: *, If-Match)
# with 412 when it fails, but checks before it writes, not atomically: of concurrent creates of
# one key, all may succeed.
ensure_s3() {
    # The binary too: a test that takes its target down and back up runs an s3s-fs of its own.
    export TDSYNC_S3_SERVER
    TDSYNC_S3_SERVER=$(ensure_s3s_fs) || return 1
    if [ -n "${TDSYNC_TEST_S3_ENDPOINT:-}" ]; then
        local var
        for var in TDSYNC_TEST_S3_BUCKET TDSYNC_TEST_S3_ACCESS_KEY TDSYNC_TEST_S3_SECRET_KEY; do
            if [ -z "${!var:-}" ]; then
                echo "TDSYNC_TEST_S3_ENDPOINT is set but $var is not: set it too" >&2
                return 1
            fi
        done
        export TDSYNC_TEST_S3_REGION="${TDSYNC_TEST_S3_REGION:-us-east-1}"
        services_log "S3: using TDSYNC_TEST_S3_ENDPOINT=$TDSYNC_TEST_S3_ENDPOINT from the environment"
        return 0
    fi
    local bin=$TDSYNC_S3_SERVER
    S3_DIR=$(mktemp -d "${TMPDIR:-/tmp}/tdsync-s3.XXXXXX")
    services_on_exit stop_s3
    local bucket=tdsync-test access_key=tdsync-test secret_key
    secret_key=$(od -An -tx1 -N20 /dev/urandom | tr -d ' \n')
    # A bucket of s3s-fs is a directory under its root.
    mkdir -p "$S3_DIR/data/$bucket"
    local port attempt _
    for attempt in 1 2 3; do
        port=$(services_free_port) || return 1
        RUST_LOG=info "$bin" --host 127.0.0.1 --port "$port" --access-key "$access_key" \
            --secret-key "$secret_key" "$S3_DIR/data" </dev/null >"$S3_DIR/s3s-fs.log" 2>&1 &
        S3_PID=$!
        for _ in $(seq 1 100); do
            # Exited (the port was taken meanwhile): try another one.
            kill -0 "$S3_PID" 2>/dev/null || break
            if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
                # The bucket is there and our credentials are accepted: a signed ListObjectsV2
                # (curl 7.x does not send the payload's hash, which S3 requires: the empty one).
                if ! curl -sSf -o /dev/null --aws-sigv4 "aws:amz:us-east-1:s3" \
                    --user "$access_key:$secret_key" -H "x-amz-content-sha256: $(
                        printf '' | sha256sum | cut -d' ' -f1)" \
                    "http://127.0.0.1:$port/$bucket?list-type=2"; then
                    echo "s3s-fs on 127.0.0.1:$port refused a signed listing of bucket $bucket" >&2
                    cat "$S3_DIR/s3s-fs.log" >&2
                    return 1
                fi
                export TDSYNC_TEST_S3_ENDPOINT="http://127.0.0.1:$port" \
                    TDSYNC_TEST_S3_BUCKET=$bucket TDSYNC_TEST_S3_ACCESS_KEY=$access_key \
                    TDSYNC_TEST_S3_SECRET_KEY=$secret_key TDSYNC_TEST_S3_REGION=us-east-1
                services_log "S3: s3s-fs $S3S_FS_VERSION on 127.0.0.1:$port, bucket $bucket (data in $S3_DIR/data)"
                return 0
            fi
            sleep 0.1
        done
        services_log "S3: s3s-fs did not start on port $port (attempt $attempt); retrying"
        kill "$S3_PID" 2>/dev/null || true
        wait "$S3_PID" 2>/dev/null || true
        S3_PID=
    done
    cat "$S3_DIR/s3s-fs.log" >&2
    return 1
}

stop_s3() {
    if [ -n "${S3_PID:-}" ]; then
        kill "$S3_PID" 2>/dev/null || true
        wait "$S3_PID" 2>/dev/null || true
        S3_PID=
    fi
    [ -n "${S3_DIR:-}" ] || return 0
    rm -rf "$S3_DIR"
    S3_DIR=
}

# --- Chromium (the dashboard test renders the harness page in it) ------------------------------

# Not a server: makes sure headless Chromium is there (Debian's chromium package, installed
# only when absent) and exports TDSYNC_CHROMIUM. An already exported TDSYNC_CHROMIUM is used as
# it is.
ensure_chromium() {
    if [ -n "${TDSYNC_CHROMIUM:-}" ]; then
        services_log "Chromium: using TDSYNC_CHROMIUM=$TDSYNC_CHROMIUM from the environment"
        return 0
    fi
    if [ ! -x /usr/bin/chromium ]; then
        services_log "Chromium not installed: installing Debian's chromium package"
        services_as_root apt-get update -qq
        services_as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
        [ -x /usr/bin/chromium ] || {
            echo "/usr/bin/chromium not found after installing chromium" >&2
            return 1
        }
    fi
    export TDSYNC_CHROMIUM=/usr/bin/chromium
    services_log "$(/usr/bin/chromium --version 2>/dev/null | head -n 1)"
}

# --- tmux and Caddy (the deploy suite: a person's terminal, and its TLS step) ---------------------

# Installs Debian's package PACKAGE when the command COMMAND is missing.
services_apt_tool() {
    local command=$1 package=$2
    if ! command -v "$command" >/dev/null; then
        services_log "$command not installed: installing Debian's $package package"
        services_as_root apt-get update -qq
        services_as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$package" >/dev/null
        command -v "$command" >/dev/null || {
            echo "$command not found after installing $package" >&2
            return 1
        }
    fi
}

ensure_tmux() {
    services_apt_tool tmux tmux
    services_log "$(tmux -V)"
}

# Installing Caddy starts nothing here without systemd; the deploy suite runs its own Caddy on a
# free port.
ensure_caddy() {
    services_apt_tool caddy caddy
    services_log "Caddy $(caddy version | awk '{print $1}')"
}

# --- td (the interop suite, td_golden and td_writer_vs_td drive the real td CLI) -----------------

TD_VERSION=v0.62.0

# td's build script, beside td's vendored source (v0.62.0, MIT, unchanged):
# ../shared/third_party/build-td.sh from the checkout (a git worktree may sit one level deeper,
# so ../../shared is tried too), or $TD_BUILD_SCRIPT.
td_build_script() {
    local candidate
    for candidate in "${TD_BUILD_SCRIPT:-}" "$PWD/../shared/third_party/build-td.sh" \
        "$PWD/../../shared/third_party/build-td.sh"; do
        if [ -n "$candidate" ] && [ -x "$candidate" ]; then
            (cd "$(dirname "$candidate")" && echo "$PWD/$(basename "$candidate")")
            return 0
        fi
    done
    echo "td's build script was not found at ../shared/third_party/build-td.sh (nor" \
         "../../shared/…); set TD_BUILD_SCRIPT to it, or TD_BIN to a td $TD_VERSION binary." >&2
    return 1
}

# Where td and td-sync are kept between runs (build-td.sh skips when both are there).
td_tools_dir() { echo "${CARGO_TARGET_DIR:-$PWD/target}/tools/td-$TD_VERSION"; }

# Not a server: builds td $TD_VERSION and td's own server td-sync from td's vendored source with
# the Go toolchain of this machine (about 1–2 minutes the first time; cached in td_tools_dir
# after that) and exports TD_BIN and TD_SYNC_BIN. An exported TD_BIN is used as it is. Fails
# (and so fails the run) when Go is missing or the build fails. Call it from the workspace root.
ensure_td() {
    if [ -n "${TD_BIN:-}" ]; then
        [ -x "$TD_BIN" ] || { echo "TD_BIN=$TD_BIN is not an executable file" >&2; return 1; }
        services_log "td: using TD_BIN=$TD_BIN from the environment ($("$TD_BIN" version 2>/dev/null | head -n 1))"
        return 0
    fi
    if ! command -v go >/dev/null 2>&1; then
        echo "td $TD_VERSION is built from source with Go, and Go is not installed: install Go" \
             "1.25 or newer (https://go.dev/doc/install; Debian's golang-go is too old) and run" \
             "this again, or set TD_BIN to a td $TD_VERSION binary." >&2
        return 1
    fi
    local script dir log
    script=$(td_build_script) || return 1
    dir=$(td_tools_dir)
    if [ ! -x "$dir/td" ] || [ ! -x "$dir/td-sync" ]; then
        services_log "td: building td and td-sync $TD_VERSION with $(go version | awk '{print $3}') into $dir"
    fi
    log=$(mktemp)
    if ! "$script" "$dir" >"$log" 2>&1; then
        sed 's/^/    build-td: /' "$log" | tail -n 30 >&2
        rm -f "$log"
        echo "building td $TD_VERSION failed (see above): $script $dir" >&2
        return 1
    fi
    rm -f "$log"
    export TD_BIN="$dir/td" TD_SYNC_BIN="$dir/td-sync"
    services_log "td: $("$TD_BIN" version 2>/dev/null | head -n 1) at $TD_BIN; td-sync at $TD_SYNC_BIN"
}

# --- SMTP (the login and invitation emails' tests send to it) ----------------------------------

AIOSMTPD_VERSION=1.4.6

# The venv aiosmtpd is kept in between runs.
smtp_venv() { echo "${CARGO_TARGET_DIR:-$PWD/target}/tools/smtp-venv"; }

# infra/smtp_sink.py, found beside this file (whatever the caller's working directory).
SMTP_SINK_SCRIPT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/smtp_sink.py"

# Installs aiosmtpd $AIOSMTPD_VERSION (Apache-2.0) from PyPI into smtp_venv when it is missing
# or another version, and prints the path of the venv's python.
ensure_aiosmtpd() {
    local venv python
    venv=$(smtp_venv)
    python="$venv/bin/python3"
    if [ -x "$python" ] && [ "$("$python" -c 'import aiosmtpd; print(aiosmtpd.__version__)' \
        2>/dev/null)" = "$AIOSMTPD_VERSION" ]; then
        echo "$python"
        return 0
    fi
    services_log "SMTP: installing aiosmtpd $AIOSMTPD_VERSION from PyPI into $venv" >&2
    rm -rf "$venv"
    if ! python3 -m venv "$venv" >/dev/null 2>&1; then
        rm -rf "$venv"
        # Debian keeps venv (and pip) in a package of its own.
        services_log "python3 cannot make a venv: installing Debian's python3-venv" >&2
        services_as_root apt-get update -qq >&2
        services_as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >&2
        python3 -m venv "$venv" >&2 || {
            rm -rf "$venv"
            echo "python3 cannot make a venv for aiosmtpd (Debian: apt-get install python3-venv)" >&2
            return 1
        }
    fi
    if ! "$venv/bin/pip" install --quiet --disable-pip-version-check \
        "aiosmtpd==$AIOSMTPD_VERSION" >&2; then
        rm -rf "$venv"
        echo "installing aiosmtpd $AIOSMTPD_VERSION from PyPI failed" >&2
        return 1
    fi
    echo "$python"
}

# Starts a throwaway SMTP server (infra/smtp_sink.py on aiosmtpd; no TLS, no authentication) on
# a free loopback port that delivers every message it accepts to a fresh directory, one
# `<sequence>-<first recipient>.eml` file each, as received; refuses recipients at
# reject.invalid with 550. Exports TDSYNC_TEST_SMTP_URL=smtp://127.0.0.1:PORT and
# TDSYNC_TEST_MAILDIR (that directory). An already exported TDSYNC_TEST_SMTP_URL is used as it
# is, with TDSYNC_TEST_MAILDIR from the environment (where that server's messages appear).
ensure_smtp() {
    if [ -n "${TDSYNC_TEST_SMTP_URL:-}" ]; then
        if [ -z "${TDSYNC_TEST_MAILDIR:-}" ]; then
            echo "TDSYNC_TEST_SMTP_URL is set but TDSYNC_TEST_MAILDIR is not: set it to the" \
                 "directory that server delivers to (the tests read the messages there)" >&2
            return 1
        fi
        services_log "SMTP: using TDSYNC_TEST_SMTP_URL=$TDSYNC_TEST_SMTP_URL from the environment"
        return 0
    fi
    local python
    python=$(ensure_aiosmtpd) || return 1
    SMTP_DIR=$(mktemp -d "${TMPDIR:-/tmp}/tdsync-smtp.XXXXXX")
    services_on_exit stop_smtp
    mkdir "$SMTP_DIR/maildir"
    local port attempt _
    for attempt in 1 2 3; do
        port=$(services_free_port) || return 1
        "$python" -u "$SMTP_SINK_SCRIPT" --host 127.0.0.1 --port "$port" \
            --maildir "$SMTP_DIR/maildir" </dev/null >"$SMTP_DIR/smtp.log" 2>&1 &
        SMTP_PID=$!
        # Up to 10 s: the first start compiles the venv's modules.
        for _ in $(seq 1 100); do
            # Exited (the port was taken meanwhile): try another one.
            kill -0 "$SMTP_PID" 2>/dev/null || break
            if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
                export TDSYNC_TEST_SMTP_URL="smtp://127.0.0.1:$port" \
                    TDSYNC_TEST_MAILDIR="$SMTP_DIR/maildir"
                services_log "SMTP: aiosmtpd $AIOSMTPD_VERSION sink on 127.0.0.1:$port (messages in $TDSYNC_TEST_MAILDIR, log $SMTP_DIR/smtp.log)"
                return 0
            fi
            sleep 0.1
        done
        if kill -0 "$SMTP_PID" 2>/dev/null; then
            services_log "SMTP: the sink did not accept connections on port $port within 10 s (attempt $attempt of 3)"
        else
            services_log "SMTP: the sink exited before accepting connections on port $port (attempt $attempt of 3)"
        fi
        kill "$SMTP_PID" 2>/dev/null || true
        wait "$SMTP_PID" 2>/dev/null || true
        SMTP_PID=
    done
    cat "$SMTP_DIR/smtp.log" >&2
    echo "the SMTP sink ($SMTP_SINK_SCRIPT) never accepted connections on 127.0.0.1 (its log is above)" >&2
    return 1
}

stop_smtp() {
    if [ -n "${SMTP_PID:-}" ]; then
        kill "$SMTP_PID" 2>/dev/null || true
        wait "$SMTP_PID" 2>/dev/null || true
        SMTP_PID=
    fi
    [ -n "${SMTP_DIR:-}" ] || return 0
    rm -rf "$SMTP_DIR"
    SMTP_DIR=
}
