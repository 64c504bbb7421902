#!/usr/bin/env bash
# The whole test suite, on a fresh machine: formatting, lints, unit tests,
# the catalog conformance suite, integration tests against the real binary
# over HTTP, and the official Python SDK against a running server.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TERM_COLOR=never

echo "==> cargo fmt --check"
cargo fmt --all -- --check

echo "==> cargo clippy"
cargo clippy --all-targets --locked -- -D warnings

echo "==> cargo build"
cargo build --locked --all-targets

# A throwaway PostgreSQL cluster for the PostgreSQL catalog tests, unless
# the caller gives one; stopped and deleted on exit.
if [ -z "${VAULTPLUS_TEST_POSTGRES_URL:-}" ]; then
    echo "==> PostgreSQL test cluster"
    pg_dir=$(mktemp -d)
    trap 'scripts/pg-cluster.sh stop "$pg_dir"' EXIT
    VAULTPLUS_TEST_POSTGRES_URL=$(scripts/pg-cluster.sh start "$pg_dir")
    export VAULTPLUS_TEST_POSTGRES_URL
fi

echo "==> Rust tests"
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --locked --all-targets --no-fail-fast
else
    cargo test --locked --all-targets --no-fail-fast
fi

echo "==> onlyfans-sdk (Python) against vaultplus"
# The binary cargo just built, wherever CARGO_TARGET_DIR puts it.
target_dir=$(cargo metadata --format-version 1 --no-deps \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
bash tests/sdk/run.sh "$target_dir/debug/vaultplus"
