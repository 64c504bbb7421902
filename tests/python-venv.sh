# Sourced by the Python test runners (tests/sdk/run.sh,
# tests/schemathesis/run.sh): one rule for their virtualenvs.
#
# ensure_venv VENV PACKAGE VERSION: makes VENV hold PACKAGE==VERSION,
# reusing it when it already does; only PyPI is contacted to fill it.
# Uses $PYTHON (default python3) to create it.

venv_has() {
    [ -x "$1/bin/python" ] && "$1/bin/python" - "$2" "$3" <<'PY' 2>/dev/null
import importlib.metadata as m, sys
sys.exit(0 if m.version(sys.argv[1]) == sys.argv[2] else 1)
PY
}

ensure_venv() {
    local venv="$1" package="$2" version="$3"
    if venv_has "$venv" "$package" "$version"; then
        return 0
    fi
    echo "preparing venv $venv with $package==$version" >&2
    if [ ! -x "$venv/bin/python" ]; then
        mkdir -p "$(dirname "$venv")"
        "${PYTHON:-python3}" -m venv "$venv"
    fi
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        "$package==$version"
    venv_has "$venv" "$package" "$version"
}
