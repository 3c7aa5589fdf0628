# shellcheck shell=bash
# Shared helpers for scripts/test.sh and scripts/demo.sh. Source it; it only defines things.

# Everything the end-to-end tests drive. A fresh Debian 12 machine has none of them.
# (Debian 12's lighttpd ships mod_ajp13 itself; lighttpd-mod-ajp13 is only a virtual package
# there, which dpkg never lists as installed, so naming it made every run call apt-get.)
# prometheus, chromium: the status page's tests (a scrape, a rendered page); logrotate: the
# docs' rotation config, run against a server; iproute2 (ip): the scale-out test's network
# namespaces (Debian's minimal images leave it out).
# g++: cargo-fuzz (scripts/fuzz-smoke.sh) builds libFuzzer, which is C++.
# shellcheck disable=SC2034  # used by the scripts that source this file
FERROCGI_APT_PACKAGES=(nginx apache2 libapache2-mod-fcgid lighttpd caddy haproxy h2o libfcgi-bin python3-venv strace g++ prometheus chromium logrotate iproute2)

section() { printf '\n==== %s ====\n' "$*"; }
info() { printf '  %s\n' "$*"; }
die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

# Run a command as root: directly when we are root, else through sudo.
as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "need root (or sudo) for: $*"
    fi
}

# Print the packages among "$@" that dpkg does not list as installed.
missing_packages() {
    local pkg
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}\n' "$pkg" 2>/dev/null | grep -q '^install ok installed$' || echo "$pkg"
    done
}

# Install whichever of "$@" are missing (apt-get update once), then stop the packaged
# services the install may have started: our tests and demo run private instances.
ensure_packages() {
    local missing=()
    mapfile -t missing < <(missing_packages "$@")
    if [ "${#missing[@]}" -eq 0 ]; then
        info "all present: $*"
        return 0
    fi
    info "installing: ${missing[*]}"
    command -v apt-get >/dev/null 2>&1 || die "apt-get not found: this script expects Debian 12"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
    stop_packaged_services
}

stop_packaged_services() {
    local svc
    for svc in nginx apache2 lighttpd caddy haproxy h2o prometheus prometheus-node-exporter; do
        if [ -x "/etc/init.d/$svc" ]; then
            as_root service "$svc" stop >/dev/null 2>&1 || true
        fi
    done
}

# Make sure cargo (with rustfmt and clippy when asked) is usable; fail with a clear message.
require_rust() {
    if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
        PATH="$HOME/.cargo/bin:$PATH"
        export PATH
    fi
    command -v cargo >/dev/null 2>&1 ||
        die "no Rust toolchain: install it with rustup (https://rustup.rs), then re-run"
    local component
    for component in "$@"; do
        cargo "$component" --version >/dev/null 2>&1 ||
            die "cargo $component is missing: rustup component add ${component/fmt/rustfmt}"
    done
    info "$(cargo --version)"
}

# Python interpreters for the test venv (scripts/test.sh: FERROCGI_PYTHON, FERROCGI_DJANGO).

# Succeed when "$1" runs and can build and run the test venv (venv, ensurepip, ssl, sqlite3), and
# is at least Python "$2" (e.g. 3.12; default 3.8).
python_usable() {
    local min=${2:-3.8}
    [ -x "$1" ] || [ -n "$(command -v "$1" 2>/dev/null)" ] || return 1
    timeout 60 "$1" -c "
import sys, ssl, sqlite3, venv, ensurepip
sys.exit(sys.version_info[:2] < tuple(map(int, '$min'.split('.'))))" >/dev/null 2>&1
}

# What a venv is bound to: the interpreter's version and (real) base prefix, one line.
python_identity() {
    "$1" -c 'import os, sys; print(sys.version.replace("\n", " "), os.path.realpath(sys.base_prefix))'
}

# Print a usable interpreter of at least Python "$1" (e.g. 3.12), the first of: the system
# python3, python3.N on PATH (newest first), pyenv's installations (newest first; in
# $(pyenv root)/versions, $PYENV_ROOT/versions, ~/.pyenv/versions, /root/.pyenv/versions).
# pyenv's shims on PATH run only the versions `pyenv global` selects, so its versions directory
# is searched too. Prints what it tried to stderr when there is none.
find_python() {
    local min=$1 candidates=() roots=" " root v exe
    candidates+=(/usr/bin/python3)
    for v in 15 14 13 12; do
        exe=$(command -v "python3.$v" 2>/dev/null) && candidates+=("$exe")
    done
    for root in "$(pyenv root 2>/dev/null)" "${PYENV_ROOT:-}" "$HOME/.pyenv" /root/.pyenv; do
        [ -n "$root" ] && [ -d "$root/versions" ] || continue
        root=$(realpath "$root")
        case "$roots" in *" $root "*) continue ;; esac
        roots+="$root "
        while read -r v; do
            # Only versions >= $min (sort -V puts the smaller first).
            [ "$(printf '%s\n' "$min" "$v" | sort -V | head -n1)" = "$min" ] || continue
            candidates+=("$root/versions/$v/bin/python3")
        done < <(find "$root/versions" -mindepth 1 -maxdepth 1 -printf '%f\n' |
            grep -E '^3\.[0-9]+\.[0-9]+$' | sort -rV)
    done
    for exe in "${candidates[@]}"; do
        # A pyenv shim stands for whichever version pyenv selects: name the real interpreter.
        if python_usable "$exe" "$min"; then
            "$exe" -c 'import sys; print(sys.executable)'
            return 0
        fi
    done
    printf '  tried: %s\n' "${candidates[@]}" >&2
    return 1
}

# Succeed when Apache's mod_fcgid children (www-data) can run interpreter "$1".
runs_as_www_data() {
    as_root runuser -u www-data -- "$1" -c 'import ssl, sqlite3' >/dev/null 2>&1
}

# Print an interpreter equivalent to "$1" that Apache's www-data children (mod_fcgid) can run:
# "$1" itself when they can. Otherwise (pyenv's interpreters live under /root, mode 700 on Debian,
# and their python reaches libpython through an absolute RUNPATH into that tree) a copy of its
# installation in /var/tmp/ferrocgi-pythonX.Y, made once: CPython finds its standard library
# from its executable's location, so the tree is relocatable once each ELF file's RUNPATH into
# the old prefix is rewritten $ORIGIN-relative (patchelf). /root's mode is left alone.
python_for_www_data() {
    local py=$1 src ver dest tmp stamp f rpath new entry entries
    if runs_as_www_data "$py"; then
        echo "$py"
        return 0
    fi
    src=$("$py" -c 'import os, sys; print(os.path.realpath(sys.base_prefix))')
    ver=$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
    stamp=$(python_identity "$py")
    dest=/var/tmp/ferrocgi-python$ver
    if [ "$(cat "$dest/.ferrocgi-copy-of" 2>/dev/null || true)" = "$stamp" ] &&
        runs_as_www_data "$dest/bin/python$ver"; then
        echo "$dest/bin/python$ver"
        return 0
    fi
    info "www-data cannot run $py: copying $src to $dest" >&2
    ensure_packages patchelf >&2
    tmp=$dest.tmp.$$
    rm -rf "$tmp"
    cp -a "$src" "$tmp"
    chmod -R a+rX "$tmp"
    while IFS= read -r -d '' f; do
        rpath=$(patchelf --print-rpath "$f" 2>/dev/null) || continue # not an ELF file
        case "$rpath" in *"$src"*) ;; *) continue ;; esac
        new=
        IFS=: read -ra entries <<<"$rpath"
        for entry in "${entries[@]}"; do
            if [ "$entry" = "$src" ] || [ "${entry#"$src"/}" != "$entry" ]; then
                entry=$(realpath -m --relative-to="$(dirname "$f")" "$tmp${entry#"$src"}")
                entry="\$ORIGIN/$entry"
            fi
            new=${new:+$new:}$entry
        done
        patchelf --set-rpath "$new" "$f"
    done < <(find "$tmp" -type f \( -name '*.so*' -o -perm -u+x \) -print0)
    echo "$stamp" >"$tmp/.ferrocgi-copy-of"
    rm -rf "$dest"
    mv "$tmp" "$dest"
    runs_as_www_data "$dest/bin/python$ver" ||
        die "the copy $dest/bin/python$ver does not run as www-data"
    # Same sys.version (build date included); only the prefix (the identity's last word) moved.
    f=$(python_identity "$dest/bin/python$ver")
    [ "${f% *}" = "${stamp% *}" ] || die "the copy $dest/bin/python$ver is not $py"
    echo "$dest/bin/python$ver"
}

# Make venv "$1" from interpreter "$2" (recreated when another interpreter made it), with
# tests/requirements.txt (maturin included) and Django "$3" when given (else the pinned one).
# ferrocgi itself comes from the wheel: install_wheel. The caller sets the umask: nginx's and
# Apache's users may have to run the venv's python.
ensure_venv() {
    local venv=$1 python=$2 django=${3:-} want have req_sum
    want=$(python_identity "$python")
    have=$(python_identity "$venv/bin/python" 2>/dev/null || true)
    if [ "$have" != "$want" ]; then
        if [ -e "$venv" ]; then
            info "recreating $venv: made by ${have:-an interpreter that no longer runs}, not $want"
        else
            info "creating $venv"
        fi
        rm -rf "$venv"
        "$python" -m venv "$venv"
    fi
    req_sum=$( (cat tests/requirements.txt; echo "$django") | sha256sum | cut -d' ' -f1)
    if [ "$(cat "$venv/.requirements.sha256" 2>/dev/null || true)" != "$req_sum" ]; then
        "$venv/bin/python" -m pip install -q --disable-pip-version-check -r tests/requirements.txt
        if [ -n "$django" ]; then
            "$venv/bin/python" -m pip install -q --disable-pip-version-check "django==$django"
        fi
        echo "$req_sum" >"$venv/.requirements.sha256"
    fi
}

# Build ferrocgi's wheel from this checkout the way a release is built (maturin build
# --release: the abi3 wheel, CPython >= 3.8) with the maturin of venv "$1", into
# target/ferrocgi-wheel/ (emptied first); print its path. Build output goes to stderr.
build_wheel() {
    local venv=$1 out=target/ferrocgi-wheel wheels=()
    rm -rf "$out"
    "$venv/bin/maturin" build --release --locked --interpreter "$venv/bin/python" --out "$out" >&2
    mapfile -t wheels < <(find "$out" -maxdepth 1 -name 'ferrocgi-*.whl')
    [ "${#wheels[@]}" -eq 1 ] || die "maturin build left ${#wheels[@]} wheels in $out, not one"
    realpath "${wheels[0]}"
}

# Install wheel "$2" into venv "$1" as a user does (pip install FILE.whl), replacing any
# ferrocgi there: the tests run what users install, not the checkout.
install_wheel() {
    "$1/bin/python" -m pip install -q --disable-pip-version-check --force-reinstall --no-deps "$2"
}
