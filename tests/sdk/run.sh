#!/usr/bin/env bash
# Compatibility test: the official Python SDK `onlyfans-sdk` 3.1.0, pointed at
# vaultplus by base_url, must work unchanged for its Vault+ calls
# (test_sdk.py), and its webhook verifier, beside the `svix` package's, must
# accept every webhook vaultplus delivers (test_webhooks.py); PyNaCl must
# verify every erasure receipt (test_receipts.py).
#
# Usage: bash tests/sdk/run.sh path/to/vaultplus
#
# The venv lives in ${VAULTPLUS_SDK_VENV:-<repo>/target/sdk-venv} and is reused
# when it already holds onlyfans-sdk 3.1.0, svix 2.9.1 and PyNaCl 1.5.0; only PyPI is
# contacted to fill it.
# Closes with a line "N passed, M failed"; exits non-zero on any failure.
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

venv="${VAULTPLUS_SDK_VENV:-$(cd "$here/../.." && pwd)/target/sdk-venv}"
sdk_version="3.1.0"
svix_version="2.9.1"
pynacl_version="1.5.0"

summary_printed=0
on_exit() {
    local rc=$?
    if [ "$rc" -ne 0 ] && [ "$summary_printed" -eq 0 ]; then
        echo "sdk compatibility test setup failed (exit $rc)" >&2
        echo "0 passed, 1 failed"
    fi
}
trap on_exit EXIT

# shellcheck source=../python-venv.sh
source "$here/../python-venv.sh"
ensure_venv "$venv" onlyfans-sdk "$sdk_version"
ensure_venv "$venv" svix "$svix_version"
ensure_venv "$venv" PyNaCl "$pynacl_version"

# From here on the runner prints the summary line itself.
summary_printed=1
set +e
PYTHONDONTWRITEBYTECODE=1 VAULTPLUS_BIN="$binary" "$venv/bin/python" - "$here/test_sdk.py" "$here/test_webhooks.py" "$here/test_receipts.py" <<'EOF'
import os
import sys
import unittest

test_files = sys.argv[1:]
sys.path.insert(0, os.path.dirname(test_files[0]))
suite = unittest.defaultTestLoader.loadTestsFromNames(
    [os.path.splitext(os.path.basename(f))[0] for f in test_files])
result = unittest.TextTestRunner(verbosity=2, stream=sys.stdout).run(suite)
# Count tests, not subtests: a test with failing subtests fails once.
# Errors in setUpModule/setUpClass have no TestCase and count as one each.
bad_cases, bad_other = set(), 0
for t, _ in result.failures + result.errors:
    case = getattr(t, "test_case", t)
    if isinstance(case, unittest.TestCase):
        bad_cases.add(case.id())
    else:
        bad_other += 1
for t in result.unexpectedSuccesses:
    bad_cases.add(t.id())
failed = len(bad_cases) + bad_other
passed = max(0, result.testsRun - len(bad_cases) - len(result.skipped))
sys.stdout.flush()
print(f"{passed} passed, {failed} failed")
sys.exit(0 if failed == 0 and passed > 0 else 1)
EOF
rc=$?
exit "$rc"
