#!/usr/bin/env bash
# Demo: an example Django project served by ferrocgi behind a private nginx, over FastCGI.
#
#   scripts/demo.sh            # http://127.0.0.1:8080/ (admin: http://127.0.0.1:8080/admin/)
#   PORT=9090 scripts/demo.sh  # another port
#
# Installs what is missing (nginx, python3-venv), builds ferrocgi's wheel (maturin build) and
# installs it into the venv the tests use ($FERROCGI_VENV, default /var/tmp/ferrocgi-venv, with
# tests/requirements.txt; FERROCGI_WHEEL=FILE.whl installs that wheel instead of building one),
# creates the demo site from tests/recipes/mysite (migrate, collectstatic, a superuser
# admin/admin), starts `manage.py runfcgi method=threaded daemonize=false socket=…` and nginx
# with the site file docs/nginx.md shows (tests/webservers/recipes/nginx-fastcgi.conf), prints the
# URL, and stops both cleanly on Ctrl-C. The home page says what serves it (protocol, process
# model, workers, ferrocgi version) and links to the admin. Needs Debian 12, root or sudo, Rust.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

port=${PORT:-8080}
venv=${FERROCGI_VENV:-/var/tmp/ferrocgi-venv}

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
port_busy "$port" && die "port $port is in use: try PORT=NNNN $0"

section "packages"
ensure_packages nginx python3-venv

section "python venv ($venv) and ferrocgi"
# shellcheck disable=SC2119  # no component checks needed here
require_rust
umask 022 # the venv must be readable by nginx's and Apache's users (tests share it)
ensure_venv "$venv" /usr/bin/python3
wheel=${FERROCGI_WHEEL:-}
[ -n "$wheel" ] || wheel=$(build_wheel "$venv")
install_wheel "$venv" "$wheel"
info "$("$venv/bin/python" -c 'import ferrocgi, django; print("ferrocgi", ferrocgi.__version__, "/ Django", django.get_version())')"

# World-searchable run dir: nginx workers run as nobody.
run=$(mktemp -d /tmp/ferrocgi-demo.XXXXXX)
chmod 755 "$run"
mkdir -p "$run/nginx/tmp" "$run/nginx/logs"

site_pid=
nginx_pid=
# shellcheck disable=SC2317  # invoked by the trap
cleanup() {
    trap - EXIT INT TERM
    local pid
    for pid in $nginx_pid $site_pid; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in $nginx_pid $site_pid; do
        for _ in $(seq 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$run"
    printf '\nstopped nginx and the Django site\n'
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

section "demo site ($run/myproject)"
project=$run/myproject
cp -r tests/recipes/mysite "$project"
find "$project" -name __pycache__ -prune -exec rm -rf {} +
sed -i "1s|.*|#!$venv/bin/python|" "$project/manage.py"
mkdir -p "$project/var"
export MYSITE_NAME="The demo site" MYSITE_PUBLIC_PORT=$port
(
    cd "$project"
    ./manage.py migrate --noinput -v0
    ./manage.py collectstatic --noinput -v0
    DJANGO_SUPERUSER_PASSWORD="admin" ./manage.py createsuperuser --noinput \
        --username admin --email admin@example.com >/dev/null
)
chmod -R a+rX "$project"
info "superuser: admin / admin"

section "start"
socket=$run/mysite.sock
(cd "$project" && exec ./manage.py runfcgi method=threaded daemonize=false \
    "socket=$socket" umask=000 status_path=/status 2>"$run/site.log") &
site_pid=$!
for _ in $(seq 200); do
    [ -S "$socket" ] && break
    kill -0 "$site_pid" 2>/dev/null || die "runfcgi did not start: $(tail -20 "$run/site.log")"
    sleep 0.05
done
[ -S "$socket" ] || die "runfcgi did not create $socket: $(tail -20 "$run/site.log")"
info "Django: ./manage.py runfcgi method=threaded daemonize=false socket=$socket umask=000 status_path=/status (pid $site_pid)"

# The site file docs/nginx.md shows, its production paths replaced, inside a private nginx.conf:
# the same derivation the recipe tests run (tests/recipes/production.py).
PYTHONPATH=tests/recipes:tests "$venv/bin/python" - "$run/nginx" "$port" "$socket" \
    "$project/static" <<'EOF'
import sys
from pathlib import Path

import production
from support import harness

run, port, socket, static = sys.argv[1:]
site = production.derive("nginx-fastcgi.conf")
values = {"RUN": run, "PORT": port, "SOCKET": socket, "STATIC_ROOT": static}
harness.fill(production.wrap("nginx.conf", site), Path(run) / "nginx.conf", values)
EOF
nginx -p "$run/nginx" -c "$run/nginx/nginx.conf" -e "$run/nginx/error.log" &
nginx_pid=$!
for _ in $(seq 100); do
    port_busy "$port" && break
    kill -0 "$nginx_pid" 2>/dev/null || die "nginx did not start: $(tail -5 "$run/nginx/error.log")"
    sleep 0.05
done
port_busy "$port" || die "nginx is not listening on $port"

cat <<MSG

ferrocgi demo is up: http://127.0.0.1:$port/
  admin:         http://127.0.0.1:$port/admin/   (user admin, password admin)
  same site at:  http://127.0.0.1:$port/prefix/  ({% url %} links follow the prefix)
  status page:   http://127.0.0.1:$port/status?html   (also ?json&full, ?openmetrics;
                 or: $venv/bin/ferrocgi status $socket --watch)
  curl -s http://127.0.0.1:$port/info/           # script prefix, reverse(), pid as JSON
Logs: $run/site.log, $run/nginx/error.log. Press Ctrl-C to stop.
MSG

# Wait until Ctrl-C (the INT trap exits, the EXIT trap cleans up) or one of them dies.
set +e
wait -n "$site_pid" "$nginx_pid"
printf '\na process exited unexpectedly:\n' >&2
tail -n 20 "$run/site.log" "$run/nginx/error.log" >&2
exit 1
