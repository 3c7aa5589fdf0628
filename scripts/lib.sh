# shellcheck shell=bash
# Shared helpers for scripts/test.sh and scripts/demo.sh. Source it; it only defines things.

# Everything the end-to-end tests drive. A fresh Debian 12 machine has none of them.
# (Debian 12's lighttpd ships mod_ajp13 itself; lighttpd-mod-ajp13 is only a virtual package
# there, which dpkg never lists as installed, so naming it made every run call apt-get.)
# shellcheck disable=SC2034  # used by the scripts that source this file
FERROCGI_APT_PACKAGES=(nginx apache2 libapache2-mod-fcgid lighttpd libfcgi-bin python3-venv)

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
    for svc in nginx apache2 lighttpd; do
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
