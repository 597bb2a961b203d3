# shellcheck shell=bash
# Shared by scripts/run and scripts/test (sourced, not run):
#   install_packages  Debian packages mailops and its tests need (and any named), only those missing
#   ensure_database   a PostgreSQL to use: $MAILOPS_DATABASE_URL / $DATABASE_URL as given,
#                     else a private cluster under var/pg; exports DATABASE_URL
#   stop_database     stops the private cluster if ensure_database started it
#   install_cargo_fuzz cargo-fuzz for the fuzz targets, when missing
#   with_database_url a config with its database URL set; link_if_free a symlink where none is
# Idempotent: running them again, or after a run that was killed, is fine.

set -euo pipefail

# Postfix's and PostgreSQL's tools live in sbin, which a non-login PATH may lack.
PATH=$PATH:/usr/sbin:/sbin

MAILOPS_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export MAILOPS_ROOT

# The private cluster: a fixed port beside the system's 5432, so a URL for it stays valid
# from one run to the next.
MAILOPS_PG_PORT=54329
MAILOPS_PG_DIR=$MAILOPS_ROOT/var/pg

# Debian packages: Postfix with PostgreSQL lookups, PostgreSQL itself, swaks for sending
# test mail, openssl for the TLS tests' certificates, and a C toolchain for cargo's linker.
# (scripts/test adds what only the tests need.)
MAILOPS_PACKAGES=(postfix postfix-pgsql postgresql swaks openssl ca-certificates
    build-essential pkg-config)

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Runs a command as root: directly when we are root, else through sudo.
as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null; then
        sudo "$@"
    else
        die "'$*' needs root, and sudo is not installed"
    fi
}

# Runs a command as the postgres user (initdb and the server refuse to run as root), from /
# (the checkout may be a directory postgres cannot enter; every path given is absolute).
as_postgres() (
    cd /
    if [ "$(id -un)" = postgres ]; then
        "$@"
    elif [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@"
    else
        sudo -u postgres -- "$@"
    fi
)

# with_database_url FILE URL: FILE (a mailops config) with [database] url set to URL, on stdout.
with_database_url() {
    awk -v url="$2" '
        function put() { if (!done) { printf "url = '"'"'%s'"'"'\n", url; done = 1 } }
        /^[[:space:]]*\[/ {
            if (in_db) put()
            in_db = ($0 ~ /^[[:space:]]*\[database\][[:space:]]*(#.*)?$/)
            print; next
        }
        in_db && /^[[:space:]]*url[[:space:]]*=/ { put(); next }
        { print }
        END { if (!done) { if (!in_db) print "\n[database]"; put() } }
    ' "$1"
}

# link_if_free TARGET LINK: makes LINK a symlink to TARGET unless something else is there;
# false when LINK is someone else's.
link_if_free() {
    if [ -L "$2" ] && [ "$(readlink -- "$2")" = "$1" ]; then
        return 0
    fi
    if [ -e "$2" ] || [ -L "$2" ]; then
        return 1
    fi
    as_root mkdir -p -- "$(dirname -- "$2")"
    as_root ln -s -- "$1" "$2"
}

# install_without_starting PACKAGE: installs PACKAGE (when missing) without starting the
# service it ships (for a tool that comes with a server, such as promtool with prometheus): a
# policy-rc.d refusing only that service stands in for the install when the machine has none.
install_without_starting() {
    local policy=/usr/sbin/policy-rc.d
    if dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; then
        return 0
    fi
    if [ -e "$policy" ]; then
        install_packages "$1"
        return
    fi
    printf '#!/bin/sh\n[ "$1" = "%s" ] && exit 101\nexit 0\n' "$1" | as_root tee "$policy" >/dev/null
    as_root chmod 0755 "$policy"
    local status=0
    install_packages "$1" || status=$?
    as_root rm -f "$policy"
    return "$status"
}

# install_packages [EXTRA...]: MAILOPS_PACKAGES and any extra packages named.
# shellcheck disable=SC2120 # extra packages are optional
install_packages() {
    local missing=() p
    for p in "${MAILOPS_PACKAGES[@]}" "$@"; do
        if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
            missing+=("$p")
        fi
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        say "installing ${missing[*]}"
        # Postfix's installer would otherwise ask how to configure the system's MTA; mailops
        # runs an instance of its own and leaves the system's unconfigured.
        echo 'postfix postfix/main_mailer_type select No configuration' |
            as_root debconf-set-selections
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
            --no-install-recommends "${missing[@]}"
    fi
    if ! command -v cargo >/dev/null; then
        # Toolchains cannot be installed from here; say how.
        die "cargo not found. Install Rust with rustup (https://rustup.rs):
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh
then open a new shell (or 'source \"\$HOME/.cargo/env\"') and run this again."
    fi
}

# The directory holding initdb and pg_ctl.
pg_bindir() {
    local dir
    dir=$(pg_config --bindir 2>/dev/null || true)
    if [ -z "$dir" ] || [ ! -x "$dir/initdb" ]; then
        # pg_config may be the libpq-dev one, or missing: take the newest server installed.
        dir=$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null |
            sort -V | tail -n 1)
    fi
    if [ -z "$dir" ] || [ ! -x "$dir/initdb" ]; then
        die "PostgreSQL's initdb not found (package postgresql)"
    fi
    echo "$dir"
}

ensure_database() {
    if [ -n "${MAILOPS_DATABASE_URL:-}" ]; then
        # mailops prefers MAILOPS_DATABASE_URL; the tests read DATABASE_URL.
        export DATABASE_URL=${DATABASE_URL:-$MAILOPS_DATABASE_URL}
        say "using the database in MAILOPS_DATABASE_URL"
        return
    fi
    if [ -n "${DATABASE_URL:-}" ]; then
        export DATABASE_URL
        say "using the database in DATABASE_URL"
        return
    fi

    local bin data run log
    bin=$(pg_bindir)
    mkdir -p "$MAILOPS_ROOT/var"
    as_root install -d -o postgres -g postgres -m 0700 "$MAILOPS_PG_DIR"
    if ! as_postgres test -x "$MAILOPS_PG_DIR"; then
        # A checkout under a private directory (/root, a 0700 home): the server, which runs
        # as postgres, cannot reach var/pg. Keep this checkout's cluster where it can.
        as_root rmdir "$MAILOPS_PG_DIR" 2>/dev/null || true
        MAILOPS_PG_DIR=/var/tmp/mailops-pg-$(printf '%s' "$MAILOPS_ROOT" | cksum | cut -d ' ' -f 1)
        say "postgres cannot reach $MAILOPS_ROOT/var/pg; the private cluster lives in $MAILOPS_PG_DIR"
        as_root install -d -o postgres -g postgres -m 0700 "$MAILOPS_PG_DIR"
    fi
    data=$MAILOPS_PG_DIR/data
    run=$MAILOPS_PG_DIR/run
    log=$MAILOPS_PG_DIR/server.log
    as_root install -d -o postgres -g postgres -m 0700 "$run"

    if [ ! -s "$data/PG_VERSION" ]; then
        # An initdb that was interrupted leaves a directory initdb refuses: start over.
        as_root rm -rf "$data"
        say "creating a private PostgreSQL cluster in $data"
        # trust: only this machine can connect (it listens on 127.0.0.1 and a socket in
        # var/pg), and tests create and drop databases freely.
        as_postgres "$bin/initdb" -D "$data" -U postgres --auth=trust -E UTF8 --locale=C \
            >"$MAILOPS_PG_DIR/initdb.log" ||
            die "initdb failed, see $MAILOPS_PG_DIR/initdb.log"
        echo "include_if_exists = 'mailops.conf'" | as_postgres tee -a "$data/postgresql.conf" >/dev/null
    fi
    # Rewritten every time, so a change here reaches existing clusters at their next start.
    # fsync stays on (the default): mailops's durability is measured against this cluster.
    as_postgres tee "$data/mailops.conf" >/dev/null <<EOF
# Written by scripts/lib.sh (ensure_database) on every run; edit that, not this.
listen_addresses = '127.0.0.1'
port = $MAILOPS_PG_PORT
unix_socket_directories = '$run'
max_connections = 200
EOF

    if lock_is_live "$data/postmaster.pid" "$data"; then
        say "private PostgreSQL already running on 127.0.0.1:$MAILOPS_PG_PORT"
    elif "$bin/pg_isready" -q -h 127.0.0.1 -p "$MAILOPS_PG_PORT"; then
        # Another checkout's private cluster holds the port (CI runs in a fresh clone beside
        # the developer's): it is set up the same way, so use it rather than fail to bind.
        say "reusing the PostgreSQL already listening on 127.0.0.1:$MAILOPS_PG_PORT"
    else
        remove_stale_lock "$data/postmaster.pid" "$data"
        remove_stale_lock "$run/.s.PGSQL.$MAILOPS_PG_PORT.lock" "$data"
        say "starting the private PostgreSQL on 127.0.0.1:$MAILOPS_PG_PORT (log: $log)"
        # After a kill -9 the old server's processes may need a moment to notice and exit.
        as_postgres "$bin/pg_ctl" -D "$data" -l "$log" -w -t 60 start >/dev/null ||
            { sleep 3 && as_postgres "$bin/pg_ctl" -D "$data" -l "$log" -w -t 60 start >/dev/null; } ||
            die "PostgreSQL did not start; its log ($log) ends with:
$(as_root tail -n 20 "$log")"
        MAILOPS_PG_STARTED=1
    fi

    local psql=("$bin/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$MAILOPS_PG_PORT" -U postgres -d postgres)
    # CREATEDB: the tests create a database of their own each.
    "${psql[@]}" <<'EOF'
SELECT 'CREATE ROLE mailops LOGIN CREATEDB'
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'mailops') \gexec
ALTER ROLE mailops LOGIN CREATEDB;
SELECT 'CREATE DATABASE mailops OWNER mailops'
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'mailops') \gexec
EOF
    export DATABASE_URL="postgres://mailops@127.0.0.1:$MAILOPS_PG_PORT/mailops"
}

# True when lock file $1 names a live server for data directory $2 (pg_ctl starts it as
# "postgres -D <absolute data dir>").
lock_is_live() {
    local pid
    pid=$(as_root head -n 1 "$1" 2>/dev/null || true)
    [[ $pid =~ ^[0-9]+$ ]] && tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -qF -- "-D $2"
}

# Removes lock file $1 unless a live server for $2 holds it. PostgreSQL itself ignores a
# lock whose process is gone, but not one whose number another process has taken since.
remove_stale_lock() {
    if as_root test -e "$1" && ! lock_is_live "$1" "$2"; then
        say "removing stale $1"
        as_root rm -f "$1"
    fi
}

stop_database() {
    if [ -n "${MAILOPS_PG_STARTED:-}" ]; then
        say "stopping the private PostgreSQL"
        as_postgres "$(pg_bindir)/pg_ctl" -D "$MAILOPS_PG_DIR/data" -m fast -w stop >/dev/null || true
        MAILOPS_PG_STARTED=
    fi
}

# cargo-fuzz, the runner of the fuzz targets in fuzz/ (docs/fuzzing.md), from crates.io when
# missing; this version builds with the stable toolchain.
MAILOPS_CARGO_FUZZ_VERSION=0.13.2
install_cargo_fuzz() {
    if ! cargo fuzz --version 2>/dev/null | grep -qxF "cargo-fuzz $MAILOPS_CARGO_FUZZ_VERSION"; then
        say "installing cargo-fuzz $MAILOPS_CARGO_FUZZ_VERSION"
        cargo install cargo-fuzz --version "$MAILOPS_CARGO_FUZZ_VERSION" --locked
    fi
}
