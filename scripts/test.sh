#!/usr/bin/env bash
# The whole test suite, on a fresh machine: formatting, lints, unit tests,
# the catalog and blob store conformance suites (the S3 one against a
# throwaway Garage server), integration tests against the real binary
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

echo "==> S3 server (Garage) for the S3 blob store tests"
s3_dir=$(mktemp -d)
stop_s3() { scripts/s3-server.sh stop "$s3_dir"; rm -rf "$s3_dir"; }
trap stop_s3 EXIT
scripts/s3-server.sh start "$s3_dir"
# shellcheck source=/dev/null
source "$s3_dir/env"

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
