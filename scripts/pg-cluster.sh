#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for tests.
#
#   scripts/pg-cluster.sh start DIR   initdb in DIR/data, start on a free
#                                     127.0.0.1 port, print the admin URL
#                                     and write it to DIR/url
#   scripts/pg-cluster.sh stop DIR    stop it and delete what start made
#                                     (safe to run twice, or with no cluster)
#
# Uses the machine's PostgreSQL binaries (PG_BIN, else the newest under
# /usr/lib/postgresql, else PATH). initdb refuses to run as root, so as root
# the server runs as the `postgres` user. Durability is off (fsync=off):
# the data is thrown away anyway, and tests run faster. PG_FSYNC=on keeps
# PostgreSQL's durable defaults (fsync, synchronous_commit and
# full_page_writes on), for benchmarks.
set -euo pipefail

usage() {
    echo "usage: $0 start|stop DIR" >&2
    exit 2
}
[ $# -eq 2 ] || usage
cmd=$1
dir=$2

pg_bin() {
    if [ -n "${PG_BIN:-}" ]; then
        echo "$PG_BIN"
        return
    fi
    local newest
    newest=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
    if [ -n "$newest" ]; then
        echo "$newest"
    else
        dirname "$(command -v pg_ctl)"
    fi
}
# Debian's PostgreSQL, installed when the machine has none (as root only).
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v pg_ctl >/dev/null \
    && [ -z "${PG_BIN:-}" ] && [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    echo "installing PostgreSQL (Debian package)" >&2
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; } >&2
fi
BIN=$(pg_bin)

# Runs a PostgreSQL binary as the cluster's owner.
as_owner() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

running() {
    [ -f "$1/postmaster.pid" ] && as_owner "$BIN/pg_ctl" -D "$1" status >/dev/null 2>&1
}

start() {
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    local data=$dir/data
    if running "$data" && [ -f "$dir/url" ]; then
        cat "$dir/url"
        return
    fi
    if [ ! -f "$data/PG_VERSION" ]; then
        mkdir -p "$data"
        if [ "$(id -u)" -eq 0 ]; then
            # The owner must reach DIR and own the data directory.
            chmod 755 "$dir"
            chown postgres: "$data"
        fi
        chmod 700 "$data"
        as_owner "$BIN/initdb" -D "$data" -U postgres -A trust -E UTF8 --locale=C \
            --no-sync >"$dir/initdb.log" 2>&1 || {
            cat "$dir/initdb.log" >&2
            exit 1
        }
    fi
    local durability="-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    case ${PG_FSYNC:-off} in
    on) durability="-c fsync=on -c synchronous_commit=on -c full_page_writes=on" ;;
    off) ;;
    *)
        echo "PG_FSYNC must be on or off, got ${PG_FSYNC}" >&2
        exit 2
        ;;
    esac
    local port tries=0
    # A port found free can be taken before the server binds it: try again.
    while :; do
        port=$(free_port)
        if as_owner "$BIN/pg_ctl" -D "$data" -l "$data/server.log" -w -t 60 \
            -o "-p $port -c listen_addresses=127.0.0.1 -c unix_socket_directories=$data \
                $durability \
                -c max_connections=300" \
            start >/dev/null; then
            break
        fi
        tries=$((tries + 1))
        if [ $tries -ge 3 ]; then
            cat "$data/server.log" >&2 || true
            exit 1
        fi
    done
    echo "postgres://postgres@127.0.0.1:$port/postgres" >"$dir/url"
    cat "$dir/url"
}

stop() {
    [ -d "$dir" ] || return 0
    local data=$dir/data
    if running "$data"; then
        as_owner "$BIN/pg_ctl" -D "$data" -m immediate -w stop >/dev/null
    fi
    rm -rf "$data" "$dir/url" "$dir/initdb.log"
    rmdir "$dir" 2>/dev/null || true
}

case $cmd in
start) start ;;
stop) stop ;;
*) usage ;;
esac
