#!/usr/bin/env bash
# The one test command (CI's .ci/run calls exactly this).
#
#   scripts/test.sh [--quick] [--e2e-only] [-- PYTEST_ARGS...]
#
# On Debian 12, as root or with sudo: installs the web servers the end-to-end tests drive,
# then runs cargo fmt --check, clippy -D warnings, cargo test, builds the examples, runs the
# fuzz smoke test (scripts/fuzz-smoke.sh, when present) and the pytest end-to-end suite.
#   --quick      skip the fuzz smoke test
#   --e2e-only   skip fmt, clippy, cargo test and fuzz (still builds the examples)
#   -- ARGS      passed to pytest, e.g. -- -k nginx, or -- tests/e2e/test_malformed.py
# Environment: FERROCGI_VENV (default /var/tmp/ferrocgi-venv), FERROCGI_E2E_KEEP=1 keeps run dirs,
# FERROCGI_DJANGO=VERSION tests against another Django (e.g. 4.2.30, the previous LTS).
set -euo pipefail

usage() { sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; }

quick=0
e2e_only=0
pytest_args=()
while [ $# -gt 0 ]; do
    case "$1" in
    --quick) quick=1 ;;
    --e2e-only) e2e_only=1 ;;
    -h | --help)
        usage
        exit 0
        ;;
    --)
        shift
        pytest_args=("$@")
        break
        ;;
    *)
        usage >&2
        exit 2
        ;;
    esac
    shift
done

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

started=$SECONDS
# shellcheck disable=SC2317  # invoked by the EXIT trap
finish() {
    local rc=$?
    local elapsed=$((SECONDS - started))
    if [ "$rc" -eq 0 ]; then
        printf '\n==== PASSED in %dm%02ds ====\n' $((elapsed / 60)) $((elapsed % 60))
    else
        printf '\n==== FAILED (exit %d) after %dm%02ds ====\n' "$rc" $((elapsed / 60)) $((elapsed % 60)) >&2
    fi
}
trap finish EXIT

section "system packages"
ensure_packages "${FERROCGI_APT_PACKAGES[@]}"

section "rust toolchain"
if [ "$e2e_only" -eq 1 ]; then
    require_rust
else
    require_rust fmt clippy
fi

if [ "$e2e_only" -eq 0 ]; then
    section "cargo fmt --all --check"
    cargo fmt --all --check

    section "cargo clippy --workspace --all-targets -- -D warnings"
    cargo clippy --workspace --all-targets -- -D warnings

    section "cargo test --workspace"
    cargo test --workspace
fi

section "cargo build --examples"
cargo build --workspace --examples

section "fuzz smoke"
if [ "$quick" -eq 1 ] || [ "$e2e_only" -eq 1 ]; then
    info "skipped (--quick / --e2e-only)"
elif [ -f scripts/fuzz-smoke.sh ]; then
    bash scripts/fuzz-smoke.sh
else
    info "skipped: scripts/fuzz-smoke.sh does not exist yet"
fi

section "python venv"
# Under a world-searchable directory, from the system python: Apache's www-data children and
# nginx's nobody workers may have to execute it (mod_fcgid tests).
venv=${FERROCGI_VENV:-/var/tmp/ferrocgi-venv}
/usr/bin/python3 -c 'import venv, ensurepip' 2>/dev/null ||
    die "/usr/bin/python3 cannot create venvs (apt-get install python3-venv)"
umask 022
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import sys' 2>/dev/null; then
    info "creating $venv"
    rm -rf "$venv"
    /usr/bin/python3 -m venv "$venv"
fi
# FERROCGI_DJANGO=4.2.30 runs the suites against another Django (the documented matrix mode:
# tests/requirements.txt pins the newest this Python can install).
req_sum=$( (cat tests/requirements.txt; echo "${FERROCGI_DJANGO:-}") | sha256sum | cut -d' ' -f1)
if [ "$(cat "$venv/.requirements.sha256" 2>/dev/null || true)" != "$req_sum" ]; then
    "$venv/bin/python" -m pip install -q --disable-pip-version-check -r tests/requirements.txt
    if [ -n "${FERROCGI_DJANGO:-}" ]; then
        "$venv/bin/python" -m pip install -q --disable-pip-version-check "django==$FERROCGI_DJANGO"
    fi
    echo "$req_sum" >"$venv/.requirements.sha256"
fi
info "Django $("$venv/bin/python" -c 'import django; print(django.get_version())')"
info "$("$venv/bin/python" --version), $("$venv/bin/pytest" --version 2>&1)"

section "python package (pip install .)"
# What a user does: builds the abi3 wheel with maturin (release) and installs it.
"$venv/bin/python" -m pip install -q --disable-pip-version-check --force-reinstall --no-deps .
info "$("$venv/bin/python" -c 'import ferrocgi; print("ferrocgi", ferrocgi.__version__)')"

section "python lint (ruff)"
"$venv/bin/ruff" format --config tests/ruff.toml --check tests/ python/
"$venv/bin/ruff" check --config tests/ruff.toml tests/ python/

section "end-to-end tests (pytest tests/e2e)"
# Default target unless the caller named test files or node ids themselves.
targets=(tests/e2e tests/recipes)
for arg in "${pytest_args[@]}"; do
    if [ "${arg#-}" = "$arg" ] && [ -e "${arg%%::*}" ]; then
        targets=()
        break
    fi
done
rc=0
"$venv/bin/python" -m pytest -q -p no:cacheprovider "${targets[@]}" "${pytest_args[@]}" || rc=$?
if [ "$rc" -eq 5 ]; then
    die "pytest collected no tests (exit 5): that counts as a failure"
fi
exit "$rc"
