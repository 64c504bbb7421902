#!/usr/bin/env bash
# The whole test suite, on a fresh machine: formatting, lints, unit tests
# of every workspace member (the server and crates/*),
# the catalog and blob store conformance suites (the S3 one against a
# throwaway Garage server), integration tests against the real binary
# over HTTP, the official Python SDK against a running server, and
# schemathesis over its OpenAPI document.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TERM_COLOR=never

echo "==> cargo fmt --check"
cargo fmt --all -- --check

echo "==> cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "==> cargo build"
cargo build --locked --workspace --all-targets

# The services the tests run against, stopped and deleted on exit: a
# throwaway PostgreSQL cluster (unless the caller gives one) and an S3
# server that checks signatures.
cleanup=()
stop_services() {
    for c in "${cleanup[@]}"; do eval "$c" || true; done
}
trap stop_services EXIT
if [ -z "${VAULTPLUS_TEST_POSTGRES_URL:-}" ]; then
    echo "==> PostgreSQL test cluster"
    pg_dir=$(mktemp -d)
    cleanup+=('scripts/pg-cluster.sh stop "$pg_dir"')
    VAULTPLUS_TEST_POSTGRES_URL=$(scripts/pg-cluster.sh start "$pg_dir")
    export VAULTPLUS_TEST_POSTGRES_URL
fi
echo "==> S3 test server"
s3_dir=$(mktemp -d)
cleanup+=('scripts/s3-server.sh stop "$s3_dir"; rm -rf "$s3_dir"')
scripts/s3-server.sh start "$s3_dir"
# shellcheck source=/dev/null
source "$s3_dir/env"

echo "==> Prometheus (for the scrape test)"
if ! command -v prometheus >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y --no-install-recommends prometheus >/dev/null \
        || { apt-get update >/dev/null && apt-get install -y --no-install-recommends prometheus >/dev/null; }
fi
VAULTPLUS_TEST_PROMETHEUS=$(command -v prometheus)
export VAULTPLUS_TEST_PROMETHEUS

echo "==> Rust tests"
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --locked --workspace --all-targets --no-fail-fast
else
    cargo test --locked --workspace --all-targets --no-fail-fast
fi

echo "==> Integration tests again, every server on PostgreSQL + S3"
# multi_node and cluster_coherence run on the cluster stores in the first
# pass already.
if cargo nextest --version >/dev/null 2>&1; then
    VAULTPLUS_TEST_BACKEND=cluster cargo nextest run --locked --test integration \
        --no-fail-fast -E 'not test(/^(multi_node|cluster_coherence)::/)'
else
    VAULTPLUS_TEST_BACKEND=cluster cargo test --locked --test integration \
        --no-fail-fast -- --skip multi_node:: --skip cluster_coherence::
fi

echo "==> onlyfans-sdk (Python) against vaultplus"
# The binary cargo just built, wherever CARGO_TARGET_DIR puts it.
target_dir=$(cargo metadata --format-version 1 --no-deps \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
bash tests/sdk/run.sh "$target_dir/debug/vaultplus"

echo "==> schemathesis over /openapi.json against vaultplus"
bash tests/schemathesis/run.sh "$target_dir/debug/vaultplus"
