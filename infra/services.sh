#!/usr/bin/env bash
# Services the tests need, one function per service. Each installs what is missing from Debian's
# packages, starts a throwaway instance on a free loopback port in a temp dir, exports its URL
# for the tests, and registers how to stop it. Usage (infra/test.sh does this):
#
#   source infra/services.sh
#   trap services_cleanup EXIT
#   ensure_postgres            # exports TDSYNC_TEST_POSTGRES_URL
#   ensure_redis               # exports TDSYNC_TEST_REDIS_URL and TDSYNC_REDIS_SERVER
#   ensure_chromium            # exports TDSYNC_CHROMIUM (installs Debian's chromium if absent)
#   ensure_td                  # exports TD_BIN and TD_SYNC_BIN (builds td from its vendored source)
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
