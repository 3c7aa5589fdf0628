"""Real frameworks on ferrocgi behind nginx FastCGI: Flask (``tests/apps/flaskapp.py``) and a
minimal Django project (``tests/apps/djangosite``) with the admin, sessions, CSRF, static files
served by nginx and a file upload. Every Django test runs twice: the project's WSGI
application, and its ASGI one (``djangosite.asgi``, Django's ``ASGIHandler``); async views,
async streaming, ``request_finished`` and Django's own disconnect handling are ASGI-only tests.

nginx mounts the app at ``/fcgi`` (SCRIPT_NAME=/fcgi). Its Debian ``fastcgi_params`` send
``HTTP_HOST=$host``, without the port, so Django only accepts the browser's Origin
(``http://127.0.0.1:PORT``) because the site lists it in ``CSRF_TRUSTED_ORIGINS``; the test
picks nginx's port first and hands it to the settings.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import re
import socket
import subprocess
import sys
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

import django
import pytest

from support import harness
from support.harness import Backend, Frontend, Reply

MIB = 1024 * 1024
ADMIN_PASSWORD = "ferrocgi-admin-pw-1"


@dataclass
class Browser:
    """Just enough of a browser: one host, a cookie jar, an Origin header on POSTs."""

    front: Frontend
    cookies: dict[str, str] = field(default_factory=dict)

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.front.port}"

    def request(
        self,
        method: str,
        target: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        hdrs = dict(headers or {})
        if self.cookies:
            hdrs["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        conn = self.front.connection()
        try:
            conn.request(method, target, body=body, headers=hdrs)
            resp = conn.getresponse()
            reply = Reply(resp.status, resp.reason, resp.getheaders(), resp.read())
        finally:
            conn.close()
        for name, value in reply.headers:
            if name.lower() == "set-cookie":
                jar: SimpleCookie = SimpleCookie()
                jar.load(value)
                for key, morsel in jar.items():
                    self.cookies[key] = morsel.value
        return reply

    def get(self, target: str) -> Reply:
        return self.request("GET", target)

    def post_form(self, target: str, fields: dict[str, str], origin: str | None = None) -> Reply:
        body = urllib.parse.urlencode(fields).encode()
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "Origin": origin or self.origin,
            "Referer": self.origin + target,
        }
        return self.request("POST", target, body, headers)


def multipart(field_name: str, filename: str, data: bytes) -> tuple[bytes, str]:
    boundary = "ferrocgi-" + hashlib.sha256(data[:64]).hexdigest()[:24]
    body = (
        (
            f"--{boundary}\r\n"
            f'Content-Disposition: form-data; name="{field_name}"; filename="{filename}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


def run_stack(
    rundir: Path, app: str, *, env: dict[str, str] | None = None, port: int | None = None
) -> contextlib.AbstractContextManager[tuple[Backend, Frontend]]:
    @contextlib.contextmanager
    def stack() -> Iterator[tuple[Backend, Frontend]]:
        with harness.start_wsgi(rundir, app, env=env) as backend:
            with harness.start_nginx(rundir, backend, port) as front:
                yield backend, front

    return stack()


def started(cm: contextlib.AbstractContextManager[Any], stack: contextlib.ExitStack) -> Any:
    try:
        return stack.enter_context(cm)
    except (RuntimeError, subprocess.CalledProcessError) as exc:
        problem = f"{exc}\n{getattr(exc, 'stderr', '') or ''}"
    pytest.fail(problem, pytrace=False)


# ----------------------------------------------------------------------------- Flask


@pytest.fixture(scope="module")
def flask_site(rundir: Path) -> Iterator[Browser]:
    with contextlib.ExitStack() as stack:
        _, front = started(run_stack(rundir, "flaskapp:app"), stack)
        yield Browser(front)


def test_flask_page_renders(flask_site: Browser) -> None:
    reply = flask_site.get("/fcgi/")
    assert reply.status == 200, reply.body[:500]
    assert reply.header("Content-Type") == "text/html; charset=utf-8"
    assert "<h1>Hello from Flask, world!</h1>" in reply.text()
    assert 'href="/fcgi/hello/world"' in reply.text()


def test_flask_url_for_knows_the_mount_point(flask_site: Browser) -> None:
    data = flask_site.get("/fcgi/where").json()
    assert data["url_for"] == "/fcgi/hello/x"
    assert data["script_root"] == "/fcgi"
    assert data["path"] == "/where"
    assert data["external"].startswith("http://") and data["external"].endswith("/fcgi/hello/x")


def test_flask_redirect_and_404(flask_site: Browser) -> None:
    reply = flask_site.get("/fcgi/go")
    assert reply.status == 302
    assert (reply.header("Location") or "").endswith("/fcgi/")
    assert flask_site.get("/fcgi/no/such/page").status == 404


def test_flask_form_post(flask_site: Browser) -> None:
    reply = flask_site.post_form("/fcgi/form?q=1", {"name": "Zoë", "n": "42"})
    assert reply.json() == {"fields": {"name": "Zoë", "n": "42"}, "query": {"q": "1"}}


def test_flask_upload(flask_site: Browser) -> None:
    data = random.Random(7).randbytes(3 * MIB)
    body, ctype = multipart("file", "blob.bin", data)
    reply = flask_site.request("POST", "/fcgi/upload", body, {"Content-Type": ctype})
    assert reply.json() == {
        "filename": "blob.bin",
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }


# ----------------------------------------------------------------------------- Django


@dataclass
class DjangoSite:
    browser: Browser
    backend: Backend
    data_dir: Path
    static_root: Path
    interface: str  # wsgi | asgi
    events: Path  # $DJANGO_EVENTS

    def event_lines(self) -> list[str]:
        return self.events.read_text().splitlines() if self.events.exists() else []


def django_env(data_dir: Path, port: int) -> dict[str, str]:
    return {
        "DJANGO_SETTINGS_MODULE": "djangosite.settings",
        "DJANGO_TEST_DIR": str(data_dir),
        "DJANGO_CSRF_TRUSTED_ORIGINS": f"http://127.0.0.1:{port},http://localhost:{port}",
        "PYTHONPATH": str(harness.APPS),
    }


def manage(env: dict[str, str], *args: str) -> None:
    full = {k: v for k, v in os.environ.items() if not k.startswith("FERROCGI_")}
    full.update(env)
    manage_py = harness.APPS / "djangosite" / "manage.py"
    subprocess.run(
        [sys.executable, str(manage_py), *args],
        env=full,
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module", params=["wsgi", "asgi"])
def django_site(rundir: Path, request: pytest.FixtureRequest) -> Iterator[DjangoSite]:
    """migrate + a superuser in a fresh sqlite DB, ferrocgi + nginx, collectstatic into the
    directory nginx serves (its ``html/``, outside the /fcgi/ location)."""
    interface: str = request.param
    data_dir = harness.make_dir(rundir / f"django-data-{interface}")
    port = harness.free_port()
    env = django_env(data_dir, port)
    events = data_dir / "events.txt"
    env["DJANGO_EVENTS"] = str(events)
    with contextlib.ExitStack() as stack:
        try:
            manage(env, "migrate", "--noinput")
            manage(
                {**env, "DJANGO_SUPERUSER_PASSWORD": ADMIN_PASSWORD},
                "createsuperuser",
                "--noinput",
                "--username",
                "admin",
                "--email",
                "admin@example.com",
            )
        except subprocess.CalledProcessError as exc:
            pytest.fail(f"manage.py {exc.cmd[2:]} failed:\n{exc.stderr}", pytrace=False)
        backend, front = started(
            run_stack(rundir, f"djangosite.{interface}:application", env=env, port=port), stack
        )
        # nginx runs in its instance directory (-p); its default root is html/ there.
        static_root = Path(front.proc.logs[0]).parent / "html" / "static"
        manage({**env, "DJANGO_STATIC_ROOT": str(static_root)}, "collectstatic", "--noinput")
        yield DjangoSite(Browser(front), backend, data_dir, static_root, interface, events)


@pytest.fixture
def asgi_site(django_site: DjangoSite) -> DjangoSite:
    if django_site.interface != "asgi":
        pytest.skip("an ASGI-only behaviour")
    return django_site


def test_django_is_served_by_the_interface_asked_for(django_site: DjangoSite) -> None:
    want = "ASGI 3" if django_site.interface == "asgi" else "WSGI"
    assert f"serving the application as {want}" in django_site.backend.log()


def test_django_async_view(asgi_site: DjangoSite) -> None:
    data = asgi_site.browser.get("/fcgi/async/").json()
    assert data == {"async": True, "path": "/fcgi/async/", "method": "GET"}


def test_django_streaming_response_over_an_async_iterator(asgi_site: DjangoSite) -> None:
    reply = asgi_site.browser.get("/fcgi/async/stream/")
    assert reply.status == 200
    assert reply.text() == "".join(f"chunk {i}\n" for i in range(50))


def test_django_request_finished_is_sent(asgi_site: DjangoSite) -> None:
    before = asgi_site.event_lines().count("request_finished")
    for _ in range(3):
        assert asgi_site.browser.get("/fcgi/").status == 200
    harness_wait(lambda: asgi_site.event_lines().count("request_finished") >= before + 3)


def test_django_cancels_the_view_when_the_client_goes_away(asgi_site: DjangoSite) -> None:
    """Django (5.0+) listens for http.disconnect while a view runs and cancels it."""
    token = uuid.uuid4().hex
    s = socket.create_connection((harness.LOOPBACK, asgi_site.browser.front.port), timeout=5)
    s.sendall(f"GET /fcgi/async/slow/?token={token} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    time.sleep(0.5)  # the view is asleep by now
    s.close()
    harness_wait(lambda: f"cancelled {token}" in asgi_site.event_lines(), timeout=10)


def harness_wait(check: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_django_page_renders(django_site: DjangoSite) -> None:
    reply = django_site.browser.get("/fcgi/")
    assert reply.status == 200, reply.body[:2000]
    assert "<h1>Hello from Django</h1>" in reply.text()


def test_django_pages_keep_the_upstream_connection_for_clients_quick_to_hang_up(
    django_site: DjangoSite,
) -> None:
    """Django's close() (request_finished) runs after the response has ended: 100 clients that
    close as soon as they have the page cost nginx no upstream connection."""
    front, backend = django_site.browser.front, django_site.backend
    error_log = Path(front.proc.logs[0]).parent / "error.log"
    dropped = error_log.read_text().count("upstream connection is closed too")
    accepted = backend.accepted()
    for _ in range(100):
        assert b"Hello from Django" in harness.impatient_get(front.port, "/fcgi/")
    assert error_log.read_text().count("upstream connection is closed too") == dropped
    assert backend.accepted() - accepted <= 8


def test_django_admin_login_page_and_its_css_from_nginx(django_site: DjangoSite) -> None:
    browser = Browser(django_site.browser.front)
    reply = browser.get("/fcgi/admin/login/?next=/fcgi/admin/")
    assert reply.status == 200, reply.body[:2000]
    html = reply.text()
    assert 'name="csrfmiddlewaretoken"' in html
    assert 'action="/fcgi/admin/login/?next=/fcgi/admin/"' in html
    stylesheets = re.findall(r'<link rel="stylesheet" href="([^"]+\.css)"', html)
    assert "/static/admin/css/base.css" in stylesheets, stylesheets
    admin_static = Path(django.__file__).parent / "contrib" / "admin" / "static"
    # /static/ is outside nginx's /fcgi/ location: nginx serves it from the collectstatic dir.
    for href in stylesheets:
        css = browser.get(href)
        assert css.status == 200, (href, css.status)
        assert css.body == (admin_static / href.removeprefix("/static/")).read_bytes(), href
        assert (django_site.static_root / href.removeprefix("/static/")).is_file()


def login(browser: Browser, origin: str | None = None) -> Reply:
    page = browser.get("/fcgi/admin/login/?next=/fcgi/admin/")
    assert page.status == 200
    m = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text())
    assert m and "csrftoken" in browser.cookies, (browser.cookies, page.text()[:500])
    fields = {
        "csrfmiddlewaretoken": m.group(1),
        "username": "admin",
        "password": ADMIN_PASSWORD,
        "next": "/fcgi/admin/",
    }
    return browser.post_form("/fcgi/admin/login/?next=/fcgi/admin/", fields, origin)


def test_django_admin_login_with_csrf(django_site: DjangoSite) -> None:
    browser = Browser(django_site.browser.front)
    reply = login(browser)
    assert reply.status == 302, (reply.status, reply.text()[:2000])
    assert reply.header("Location") == "/fcgi/admin/"
    assert "sessionid" in browser.cookies
    index = browser.get("/fcgi/admin/")
    assert index.status == 200, index.text()[:2000]
    assert "Site administration" in index.text()
    assert 'href="/fcgi/admin/auth/user/"' in index.text()


def test_django_csrf_rejects_an_untrusted_origin(django_site: DjangoSite) -> None:
    browser = Browser(django_site.browser.front)
    reply = login(browser, origin="http://evil.example")
    assert reply.status == 403, reply.status
    assert "sessionid" not in browser.cookies


def test_django_upload_5mib(django_site: DjangoSite) -> None:
    data = random.Random(5).randbytes(5 * MIB)
    body, ctype = multipart("file", "five.bin", data)
    reply = django_site.browser.request("POST", "/fcgi/upload/", body, {"Content-Type": ctype})
    info = reply.json()
    assert info["size"] == len(data)
    assert info["sha256"] == hashlib.sha256(data).hexdigest()
    assert info["content_length"] == str(len(body))
    stored = Path(info["path"])
    assert stored.is_relative_to(django_site.data_dir / "media")
    assert stored.read_bytes() == data


def test_django_upload_chunked_gets_content_length(django_site: DjangoSite) -> None:
    """A chunked upload (nginx buffers it) still reaches Django whole, with CONTENT_LENGTH."""
    data = random.Random(6).randbytes(2 * MIB)
    body, ctype = multipart("file", "chunked.bin", data)
    pieces = (body[i : i + 65536] for i in range(0, len(body), 65536))
    conn = django_site.browser.front.connection()
    try:
        conn.request(
            "POST",
            "/fcgi/upload/",
            body=pieces,
            headers={"Content-Type": ctype},
            encode_chunked=True,
        )
        resp = conn.getresponse()
        info = Reply(resp.status, resp.reason, resp.getheaders(), resp.read()).json()
    finally:
        conn.close()
    assert info["sha256"] == hashlib.sha256(data).hexdigest()
    assert info["content_length"] == str(len(body))


def test_django_reverse_uses_nginx_script_name(django_site: DjangoSite) -> None:
    data = django_site.browser.get("/fcgi/where/").json()
    assert data == {
        "reverse": "/fcgi/where/",
        "admin": "/fcgi/admin/",
        "script_name": "/fcgi",
        "path": "/fcgi/where/",
        "path_info": "/where/",
    }


def test_django_reverse_uses_script_name_option(rundir: Path) -> None:
    """AJP sends no SCRIPT_NAME: ``script_name=/app`` gives Django its public prefix."""
    data_dir = harness.make_dir(rundir / "django-ajp")
    env = django_env(data_dir, 0)
    with contextlib.ExitStack() as stack:
        backend = started(
            harness.start_wsgi(
                rundir, "djangosite.wsgi:application", "ajp", script_name="/app", env=env
            ),
            stack,
        )
        front = started(harness.start_apache(rundir, backend), stack)
        data = Browser(front).get("/app/where/").json()
    assert data == {
        "reverse": "/app/where/",
        "admin": "/app/admin/",
        "script_name": "/app",
        "path": "/app/where/",
        "path_info": "/where/",
    }
