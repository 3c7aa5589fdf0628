#!/usr/bin/env bash
# Demo: the echo example behind a private nginx, over FastCGI (TCP).
#
#   scripts/demo.sh            # serves http://127.0.0.1:8080/fcgi/
#   PORT=9090 scripts/demo.sh  # another port
#   FERROCGI_ECHO_BIN=path     # use a prebuilt backend instead of building it
#
# Builds the echo example (release), starts it on a free loopback port, starts nginx in the
# foreground with tests/webservers/nginx.conf, prints the URL and an example curl, and stops
# both cleanly on Ctrl-C. Needs Debian 12, root or sudo (to install nginx), and Rust.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

port=${PORT:-8080}
root=$(pwd)

section "packages"
ensure_packages nginx

section "build"
if [ -n "${FERROCGI_ECHO_BIN:-}" ]; then
    echo_bin=$FERROCGI_ECHO_BIN # a prebuilt backend, as in the e2e tests
    info "using FERROCGI_ECHO_BIN=$echo_bin"
else
    # shellcheck disable=SC2119  # no component checks needed here
    require_rust
    cargo build --release --example echo
    echo_bin=$root/target/release/examples/echo
fi

# World-searchable run dir: nginx workers run as nobody.
run=$(mktemp -d /tmp/ferrocgi-demo.XXXXXX)
chmod 755 "$run"
mkdir -p "$run/tmp" "$run/logs" "$run/html"

backend_pid=
nginx_pid=
# shellcheck disable=SC2317  # invoked by the trap
cleanup() {
    trap - EXIT INT TERM
    local pid
    for pid in $nginx_pid $backend_pid; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in $nginx_pid $backend_pid; do
        for _ in $(seq 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$run"
    printf '\nstopped nginx and the backend\n'
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

section "start"
port_busy "$port" && die "port $port is in use: try PORT=NNNN $0"

# The backend: first free port from 9000 on where it manages to bind.
backend_port=
for candidate in $(seq 9000 9100); do
    port_busy "$candidate" && continue
    "$echo_bin" --protocol fcgi --bind "127.0.0.1:$candidate" 2>"$run/backend.log" &
    backend_pid=$!
    for _ in $(seq 100); do
        grep -q 'listening on' "$run/backend.log" 2>/dev/null && break
        kill -0 "$backend_pid" 2>/dev/null || break
        sleep 0.05
    done
    if kill -0 "$backend_pid" 2>/dev/null && grep -q 'listening on' "$run/backend.log"; then
        backend_port=$candidate
        break
    fi
    wait "$backend_pid" 2>/dev/null || true
    backend_pid=
done
[ -n "$backend_port" ] || die "the echo backend did not start: $(cat "$run/backend.log")"
info "backend: $echo_bin on 127.0.0.1:$backend_port (pid $backend_pid, log $run/backend.log)"

sed -e "s|@RUN@|$run|g" -e "s|@PORT@|$port|g" \
    -e "s|@FCGI_UPSTREAM@|127.0.0.1:$backend_port|g" -e "s|@SCGI_UPSTREAM@|127.0.0.1:$backend_port|g" \
    tests/webservers/nginx.conf >"$run/nginx.conf"
nginx -p "$run" -c "$run/nginx.conf" -e "$run/error.log" &
nginx_pid=$!
for _ in $(seq 100); do
    port_busy "$port" && break
    kill -0 "$nginx_pid" 2>/dev/null || die "nginx did not start: $(tail -5 "$run/error.log")"
    sleep 0.05
done
port_busy "$port" || die "nginx is not listening on $port"

cat <<MSG

ferrocgi echo demo is up: http://127.0.0.1:$port/fcgi/
  curl -s 'http://127.0.0.1:$port/fcgi/some/path?x=1'          # the CGI params the app saw, as JSON
  curl -s --data-binary @/etc/os-release 'http://127.0.0.1:$port/fcgi/upload'   # body length + sha256
  curl -si 'http://127.0.0.1:$port/fcgi/?status=404%20Custom'   # a custom status
Logs: $run/backend.log, $run/error.log. Press Ctrl-C to stop.
MSG

# Wait until Ctrl-C (the INT trap exits, the EXIT trap cleans up) or one of them dies.
set +e
wait -n "$backend_pid" "$nginx_pid"
printf '\na process exited unexpectedly:\n' >&2
tail -n 20 "$run/backend.log" "$run/error.log" >&2
exit 1
