#!/usr/bin/env bash
# A throwaway S3 server that checks signatures, for the tests: Garage, single
# node, listening on free 127.0.0.1 ports, with generated credentials and one
# bucket.
#
#   scripts/s3-server.sh start DIR   starts it; writes DIR/env (source it)
#   scripts/s3-server.sh stop DIR    stops it (DIR itself stays)
#
# DIR/env exports VAULTPLUS_TEST_S3_ENDPOINT, VAULTPLUS_TEST_S3_BUCKET,
# AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION and
# AWS_ALLOW_HTTP.
#
# Garage is built from crates.io with `cargo install` when missing, into
# $VAULTPLUS_TOOLS_DIR (default: the cargo target dir's tools/), so later
# runs reuse it. A `garage` of the same version on PATH is used as it is.
set -euo pipefail

GARAGE_VERSION=2.5.0
BUCKET=vaultplus-test
REGION=us-east-1

usage() {
    echo "usage: $0 start|stop DIR" >&2
    exit 2
}
[ $# -eq 2 ] || usage
cmd=$1
dir=$2
repo=$(cd "$(dirname "$0")/.." && pwd)

garage_bin() {
    if command -v garage >/dev/null 2>&1 &&
        garage --version 2>/dev/null | grep -qF "$GARAGE_VERSION"; then
        command -v garage
        return
    fi
    local tools=${VAULTPLUS_TOOLS_DIR:-}
    if [ -z "$tools" ]; then
        local target
        target=$(cd "$repo" && cargo metadata --format-version 1 --no-deps |
            python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
        tools=$target/tools
    fi
    local root=$tools/garage-$GARAGE_VERSION
    if [ ! -x "$root/bin/garage" ]; then
        mkdir -p "$tools"
        # One install at a time, should two test runs start together.
        exec 9>"$tools/.garage.lock"
        flock 9
        if [ ! -x "$root/bin/garage" ]; then
            echo "s3-server: building Garage $GARAGE_VERSION from crates.io into $root" \
                "(once; takes a while)" >&2
            local started=$SECONDS
            # Only what a single test node needs: SQLite metadata, no
            # metrics or K2V.
            cargo install garage --version "$GARAGE_VERSION" --locked --quiet \
                --no-default-features --features bundled-libs,sqlite \
                --root "$root" >&2
            echo "s3-server: Garage built in $((SECONDS - started)) s" >&2
        fi
        exec 9>&-
    fi
    echo "$root/bin/garage"
}

free_ports() {
    python3 - <<'EOF'
import socket
socks = []
for _ in range(2):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}

start() {
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    if [ -f "$dir/garage.pid" ] && kill -0 "$(cat "$dir/garage.pid")" 2>/dev/null; then
        echo "s3-server: already running in $dir" >&2
        exit 1
    fi
    local garage
    garage=$(garage_bin)
    local s3_port rpc_port
    read -r s3_port rpc_port < <(free_ports)
    local key_id secret
    key_id=GK$(openssl rand -hex 12)
    secret=$(openssl rand -hex 32)
    mkdir -p "$dir/garage/meta" "$dir/garage/data"
    (
        umask 077
        cat >"$dir/garage/garage.toml" <<EOF
metadata_dir = "$dir/garage/meta"
data_dir = "$dir/garage/data"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:$rpc_port"
rpc_public_addr = "127.0.0.1:$rpc_port"
rpc_secret = "$(openssl rand -hex 32)"

[s3_api]
s3_region = "$REGION"
api_bind_addr = "127.0.0.1:$s3_port"
root_domain = ".s3.localhost"
EOF
    )
    # --single-node lays out the cluster; --default-bucket creates the key
    # and the bucket, with read/write on it, before the S3 API listens.
    GARAGE_DEFAULT_ACCESS_KEY=$key_id GARAGE_DEFAULT_SECRET_KEY=$secret \
        GARAGE_DEFAULT_BUCKET=$BUCKET RUST_LOG=${GARAGE_LOG:-warn} \
        setsid "$garage" -c "$dir/garage/garage.toml" server --single-node --default-bucket \
        >"$dir/garage.log" 2>&1 </dev/null &
    local pid=$!
    echo "$pid" >"$dir/garage.pid"

    local endpoint=http://127.0.0.1:$s3_port
    local waited=0
    # Any HTTP answer (an anonymous request gets 403) means it listens.
    until [ "$(curl -s -o /dev/null -w '%{http_code}' "$endpoint/$BUCKET" || true)" != 000 ]; do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "s3-server: Garage exited while starting; its log:" >&2
            cat "$dir/garage.log" >&2
            exit 1
        fi
        if [ "$waited" -ge 300 ]; then
            echo "s3-server: Garage did not listen on $endpoint within 30 s; its log:" >&2
            cat "$dir/garage.log" >&2
            stop
            exit 1
        fi
        sleep 0.1
        waited=$((waited + 1))
    done

    (
        umask 077
        cat >"$dir/env" <<EOF
export VAULTPLUS_TEST_S3_ENDPOINT=$endpoint
export VAULTPLUS_TEST_S3_BUCKET=$BUCKET
export AWS_ENDPOINT_URL=$endpoint
export AWS_ACCESS_KEY_ID=$key_id
export AWS_SECRET_ACCESS_KEY=$secret
export AWS_REGION=$REGION
export AWS_ALLOW_HTTP=true
EOF
    )
    echo "s3-server: Garage $GARAGE_VERSION on $endpoint, bucket $BUCKET (pid $pid); env in $dir/env" >&2
}

stop() {
    local pidfile=$dir/garage.pid
    [ -f "$pidfile" ] || return 0
    local pid
    pid=$(cat "$pidfile")
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$pidfile"
}

case $cmd in
start) start ;;
stop) stop ;;
*) usage ;;
esac
