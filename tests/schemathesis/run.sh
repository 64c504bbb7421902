#!/usr/bin/env bash
# Schemathesis over the whole OpenAPI document (/openapi.json) of a running
# vaultplus wired to the demo upstream, then of one with no upstream, each
# with a valid ACCOUNT key and a seeded connection: every schema-valid
# request must be accepted, every invalid one refused, and every answer must
# be one the document declares (status, content type, headers, body schema).
# See driver.py (and hooks.py for what the run keeps steady).
#
# Usage: bash tests/schemathesis/run.sh path/to/vaultplus
#
# The venv lives in ${VAULTPLUS_SCHEMATHESIS_VENV:-<repo>/target/schemathesis-venv}
# and is reused when it already holds schemathesis $st_version; only PyPI is
# contacted to fill it. Seeded and bounded (VAULTPLUS_ST_SEED,
# VAULTPLUS_ST_MAX_EXAMPLES). Closes with a line "N passed, M failed"
# (operations); exits non-zero on any failure.
set -euo pipefail

if [ "$#" -ne 1 ]; then
    echo "usage: $0 BINARY" >&2
    exit 2
fi

here="$(cd "$(dirname "$0")" && pwd)"
binary="$1"
if [ ! -x "$binary" ]; then
    echo "not an executable: $binary" >&2
    echo "0 passed, 1 failed"
    exit 1
fi
binary="$(cd "$(dirname "$binary")" && pwd)/$(basename "$binary")"

venv="${VAULTPLUS_SCHEMATHESIS_VENV:-$(cd "$here/../.." && pwd)/target/schemathesis-venv}"
st_version="4.32.5"

summary_printed=0
on_exit() {
    local rc=$?
    if [ "$rc" -ne 0 ] && [ "$summary_printed" -eq 0 ]; then
        echo "schemathesis test setup failed (exit $rc)" >&2
        echo "0 passed, 1 failed"
    fi
}
trap on_exit EXIT

# shellcheck source=../python-venv.sh
source "$here/../python-venv.sh"
ensure_venv "$venv" schemathesis "$st_version"

# From here on the driver prints the summary line itself.
summary_printed=1
set +e
PYTHONDONTWRITEBYTECODE=1 "$venv/bin/python" "$here/driver.py" "$binary"
