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
# Environment:
#   FERROCGI_DJANGO=X.Y.Z  another Django than tests/requirements.txt's 5.2 LTS: 4.2.30, or 6.x.y,
#                          which needs Python >= 3.12 (found on PATH or in pyenv's versions)
#   FERROCGI_PYTHON=PATH   the interpreter the venv is made from (default /usr/bin/python3)
#   FERROCGI_VENV=DIR      default /var/tmp/ferrocgi-venv (-pyXY for another interpreter)
#   FERROCGI_E2E_KEEP=1    keeps the tests' run dirs
set -euo pipefail

usage() { sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; }

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

section "python venv and ferrocgi (pip install .)"
# FERROCGI_DJANGO=X.Y.Z runs the suites against another Django (the documented matrix mode:
# tests/requirements.txt pins the current LTS). Django 6 needs Python >= 3.12, newer than
# Debian 12's: without FERROCGI_PYTHON, one is looked for (find_python in scripts/lib.sh).
django=${FERROCGI_DJANGO:-}
django_major=0
if [ -n "$django" ]; then
    django_major=${django%%.*}
    [[ "$django_major" =~ ^[0-9]+$ ]] ||
        die "FERROCGI_DJANGO=$django: expected a version such as 4.2.30"
fi
min_python=3.8
[ "$django_major" -lt 6 ] || min_python=3.12
if [ -n "${FERROCGI_PYTHON:-}" ]; then
    python=$FERROCGI_PYTHON
    python_usable "$python" ||
        die "FERROCGI_PYTHON=$python does not run, or cannot import venv, ensurepip, ssl and sqlite3"
    python_usable "$python" "$min_python" ||
        die "Django ${django:-5.2} needs Python >= $min_python;" \
            "FERROCGI_PYTHON=$python is $("$python" --version 2>&1)"
elif [ "$django_major" -ge 6 ]; then
    python=$(find_python "$min_python") ||
        die "Django $django needs Python >= $min_python (with venv, ensurepip, ssl, sqlite3)" \
            "and none was found (tried the above): install one (e.g. pyenv install 3.13)" \
            "and re-run, or name it: FERROCGI_PYTHON=/path/to/python3.13" \
            "FERROCGI_DJANGO=$django scripts/test.sh"
else
    python=/usr/bin/python3
    python_usable "$python" || die "$python cannot create venvs (apt-get install python3-venv)"
fi
# Under a world-searchable directory: Apache's www-data children and nginx's nobody workers may
# have to execute the venv's python (mod_fcgid tests). pyenv's interpreters are copied out of /root.
umask 022
python=$(python_for_www_data "$python")
info "interpreter: $python ($("$python" --version 2>&1))"
# The system python's venv is the default one; another interpreter gets its own, so switching
# back and forth does not rebuild either.
venv=/var/tmp/ferrocgi-venv
if ! [ -x /usr/bin/python3 ] || [ "$(python_identity "$python")" != "$(python_identity /usr/bin/python3)" ]; then
    venv+=-py$("$python" -c 'import sys; print("%d%d" % sys.version_info[:2])')
fi
venv=${FERROCGI_VENV:-$venv}
ensure_venv "$venv" "$python" "$django"
info "Django $("$venv/bin/python" -c 'import django; print(django.get_version())')"
info "$("$venv/bin/python" --version), $("$venv/bin/pytest" --version 2>&1)"
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
