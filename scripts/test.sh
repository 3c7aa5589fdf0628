#!/usr/bin/env bash
# The one test command (CI's .ci/run calls exactly this).
#
#   scripts/test.sh [--quick] [--e2e-only] [-- PYTEST_ARGS...]
#
# On Debian 12, as root or with sudo: installs the web servers the end-to-end tests drive,
# then runs cargo fmt --check, clippy -D warnings, cargo test, builds the examples, runs the
# fuzz smoke test (scripts/fuzz-smoke.sh, when present), builds ferrocgi's wheel once (maturin
# build), installs it into the test venv and runs the pytest end-to-end suites (pass 1, Django
# 5.2 LTS); then pass 2 runs tests/recipes again on the newest Django 6.x with the newest Python
# found (same wheel). Either pass failing fails the run; both pytest closing lines come last.
#   --quick      skip the fuzz smoke test
#   --e2e-only   skip fmt, clippy, cargo test and fuzz (still builds the examples)
#   -- ARGS      passed to pytest, e.g. -- -k nginx, or -- tests/e2e/test_malformed.py
#                (a run with ARGS is one pass: pass 2 is skipped)
# Environment:
#   FERROCGI_DJANGO=X.Y.Z  one pass only, on another Django than tests/requirements.txt's 5.2
#                          LTS: 4.2.30, or 6.x.y, which needs Python >= 3.12 (found on PATH or
#                          in pyenv's versions)
#   FERROCGI_DJANGO_NEWEST=X.Y.Z  pass 2's Django (default 6.1.3); "none" skips pass 2
#   FERROCGI_PYTHON=PATH   the interpreter pass 1's venv is made from (default /usr/bin/python3)
#   FERROCGI_VENV=DIR      pass 1's venv, default /var/tmp/ferrocgi-venv (-pyXY for another
#                          interpreter); pass 2's is DIR-pyXY (default /var/tmp/ferrocgi-venv-pyXY)
#   FERROCGI_WHEEL=FILE    install this ferrocgi wheel instead of building one
#   FERROCGI_E2E_KEEP=1    keeps the tests' run dirs
set -euo pipefail

usage() { sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'; }

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

# The newest Django 6.x when this was written (pip index versions django): pass 2 runs the
# recipes on it, since new projects start there.
newest_django=${FERROCGI_DJANGO_NEWEST:-6.1.3}

# Print the interpreter for Django "$1" (empty: the pinned 5.2) and pass "$2" (1 or 2):
# FERROCGI_PYTHON (pass 1), else the system python3 for Django < 6, else the newest Python
# >= 3.12 that find_python (scripts/lib.sh) finds. Copied for www-data when needed.
pick_python() {
    local django=$1 pass=$2 major=0 min=3.8 python
    if [ -n "$django" ]; then
        major=${django%%.*}
        [[ "$major" =~ ^[0-9]+$ ]] || die "Django $django: expected a version such as 4.2.30"
    fi
    [ "$major" -lt 6 ] || min=3.12
    if [ "$pass" = 1 ] && [ -n "${FERROCGI_PYTHON:-}" ]; then
        python=$FERROCGI_PYTHON
        python_usable "$python" ||
            die "FERROCGI_PYTHON=$python does not run, or cannot import venv, ensurepip, ssl and sqlite3"
        python_usable "$python" "$min" ||
            die "Django ${django:-5.2} needs Python >= $min;" \
                "FERROCGI_PYTHON=$python is $("$python" --version 2>&1)"
    elif [ "$major" -ge 6 ]; then
        python=$(find_python "$min") ||
            die "Django $django needs Python >= $min (with venv, ensurepip, ssl, sqlite3)" \
                "and none was found (tried the above): install one (e.g. pyenv install 3.13)" \
                "and re-run, or name it: FERROCGI_PYTHON=/path/to/python3.13" \
                "FERROCGI_DJANGO=$django scripts/test.sh"
    else
        python=/usr/bin/python3
        python_usable "$python" || die "$python cannot create venvs (apt-get install python3-venv)"
    fi
    # Under a world-searchable directory: Apache's www-data children and nginx's nobody workers
    # may have to execute the venv's python (mod_fcgid tests). pyenv's interpreters are copied
    # out of /root.
    python_for_www_data "$python"
}

# Print the venv for interpreter "$1": "$2" (default /var/tmp/ferrocgi-venv), with -pyXY
# appended for another interpreter than the system python3, so switching back and forth does
# not rebuild either.
venv_for() {
    local venv=${2:-/var/tmp/ferrocgi-venv}
    if ! [ -x /usr/bin/python3 ] || [ "$(python_identity "$1")" != "$(python_identity /usr/bin/python3)" ]; then
        venv+=-py$("$1" -c 'import sys; print("%d%d" % sys.version_info[:2])')
    fi
    echo "$venv"
}

# Make venv "$1" from interpreter "$2" with Django "$3" and the wheel; say what it holds.
prepare_venv() {
    info "interpreter: $2 ($("$2" --version 2>&1))"
    ensure_venv "$1" "$2" "$3"
    install_wheel "$1" "$wheel"
    info "$1: Django $("$1/bin/python" -c 'import django; print(django.get_version())')," \
        "$("$1/bin/python" --version), $("$1/bin/pytest" --version 2>&1)," \
        "$("$1/bin/python" -c 'import ferrocgi; print("ferrocgi", ferrocgi.__version__)')"
}

# Run pytest in venv "$1" on "${@:2}"; its closing line is appended to $closing.
closing=()
run_pytest() {
    local venv=$1 rc=0 log
    shift
    log=$(mktemp)
    # FERROCGI_WHEEL: tests/e2e/test_packaging.py installs the same wheel into a new venv.
    FERROCGI_WHEEL=$wheel "$venv/bin/python" -m pytest -q -p no:cacheprovider "$@" |
        tee "$log" || rc=${PIPESTATUS[0]}
    closing+=("$(grep -v '^[[:space:]]*$' "$log" | tail -n 1)")
    rm -f "$log"
    if [ "$rc" -eq 5 ]; then
        printf 'error: pytest collected no tests (exit 5): that counts as a failure\n' >&2
        rc=1
    fi
    return "$rc"
}

django=${FERROCGI_DJANGO:-}
umask 022
section "python venv (Django ${django:-5.2 LTS})"
python=$(pick_python "$django" 1)
venv=${FERROCGI_VENV:-$(venv_for "$python")}
ensure_venv "$venv" "$python" "$django"

section "ferrocgi wheel (maturin build --release)"
wheel=${FERROCGI_WHEEL:-}
if [ -n "$wheel" ]; then
    [ -f "$wheel" ] || die "FERROCGI_WHEEL=$wheel: no such file"
    info "FERROCGI_WHEEL=$wheel: not building one"
else
    wheel=$(build_wheel "$venv")
fi
wheel=$(realpath "$wheel")
info "$wheel"
prepare_venv "$venv" "$python" "$django"

section "python lint (ruff)"
"$venv/bin/ruff" format --config tests/ruff.toml --check tests/ python/
"$venv/bin/ruff" check --config tests/ruff.toml tests/ python/

# Default target unless the caller named test files or node ids themselves.
targets=(tests/e2e tests/recipes)
for arg in "${pytest_args[@]}"; do
    if [ "${arg#-}" = "$arg" ] && [ -e "${arg%%::*}" ]; then
        targets=()
        break
    fi
done
second=0
if [ -z "$django" ] && [ "${#pytest_args[@]}" -eq 0 ] && [ "$newest_django" != none ]; then
    second=1
fi

words=("${targets[@]}" "${pytest_args[@]}")
section "pass 1: end-to-end tests (pytest ${words[*]})"
rc=0
run_pytest "$venv" "${targets[@]}" "${pytest_args[@]}" || rc=$?
passes=("pass 1, Django ${django:-5.2 LTS}, $("$venv/bin/python" --version)")

if [ "$second" -eq 1 ]; then
    section "pass 2: tests/recipes on Django $newest_django (the newest 6.x), same wheel"
    python2=$(pick_python "$newest_django" 2)
    venv2=$(venv_for "$python2" "${FERROCGI_VENV:-}")
    [ "$venv2" != "$venv" ] || venv2+=-django$newest_django
    prepare_venv "$venv2" "$python2" "$newest_django"
    rc2=0
    run_pytest "$venv2" tests/recipes || rc2=$?
    [ "$rc" -ne 0 ] || rc=$rc2
    passes+=("pass 2, Django $newest_django, $("$venv2/bin/python" --version)")
fi

section "pytest results"
for i in "${!passes[@]}"; do
    info "${passes[$i]}:"
    printf '%s\n' "${closing[$i]}"
done
exit "$rc"
