"""Plumbing for the classic guide's recipes: the Django project, ``manage.py runfcgi``,
daemons, checks.

Theory of operation
-------------------
``prepare_template`` builds the recipes' project once per session (``tests/recipes/mysite``
copied, ``manage.py``'s first line pointed at this venv's Python, ``migrate``,
``collectstatic``, superuser ``admin``/``admin``); each recipe copies it with
``install_project`` into its own world-readable run dir (Apache runs as ``www-data``, nginx
workers as ``nobody``).

``runfcgi`` starts ``./manage.py runfcgi WORDS`` exactly as the docs write it. Django's
runfcgi detaches when an address is given, so the command may return at once, leaving a
daemon whose pid we do not know: every process is therefore tagged (``FERROCGI_RECIPE`` in its
environment; its command line names the run dir) and ``kill_tagged`` finds and stops what is
left, after the pidfile's pid, at teardown. Processes, ``/proc`` and web servers come from
the package ``tests/support`` (``harness``, ``procfs``).

The ``check_*`` functions are what every recipe verifies through its front end: a page with
``{% url %}`` links, the admin login page and its CSS (served by the web server), a
CSRF-protected login, a 5 MiB upload, and ``reverse()``'s public prefix.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import production

from support import harness, procfs
from support.harness import LOOPBACK, Proc

HERE = Path(__file__).resolve().parent
MYSITE = HERE / "mysite"
RECIPES = harness.WEBSERVERS / "recipes"
VENV_BIN = Path(sys.executable).parent
PYTHON = str(Path(sys.executable))
MIB = 1024 * 1024
UPLOAD = random.Random(20261122).randbytes(5 * MIB)
START_TIMEOUT = 20.0


# --------------------------------------------------------------------------- the project


def base_env(**extra: str) -> dict[str, str]:
    """A small, explicit environment (the docs' daemons do not inherit a test runner's)."""
    env = {
        "PATH": f"{VENV_BIN}:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
        "LANG": "C.UTF-8",
        "HOME": "/tmp",
    }
    env.update(extra)
    return env


def world_readable(root: Path) -> None:
    """a+rX on the tree, a+x on every parent: www-data and nobody must reach it."""
    for dirpath, _dirs, files in os.walk(root):
        os.chmod(dirpath, 0o755)
        for f in files:
            p = Path(dirpath, f)
            if not p.is_symlink():
                p.chmod(p.stat().st_mode | 0o444)


@dataclass
class Project:
    """A copy of the recipes' project: ``manage.py`` at the top, as Django makes it."""

    dir: Path

    @property
    def static_root(self) -> Path:
        return self.dir / "static"

    def manage(self, *args: str, env: Mapping[str, str] | None = None) -> str:
        done = subprocess.run(
            ["./manage.py", *args],
            cwd=self.dir,
            env=dict(env) if env is not None else base_env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        if done.returncode != 0:
            raise RuntimeError(f"manage.py {' '.join(args)}: exit {done.returncode}\n{done.stderr}")
        return done.stdout

    def set_version(self, value: int) -> None:
        (self.dir / "mysite" / "version.py").write_text(f"VERSION = {value}\n")


def prepare_template(dest: Path) -> Project:
    shutil.copytree(MYSITE, dest, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    manage = dest / "manage.py"
    lines = manage.read_text().splitlines(keepends=True)
    manage.write_text(f"#!{PYTHON}\n" + "".join(lines[1:]))
    manage.chmod(0o755)
    harness.make_dir(dest / "var")
    project = Project(dest)
    project.manage("migrate", "--noinput", "-v0")
    project.manage("collectstatic", "--noinput", "-v0")
    project.manage(
        "createsuperuser",
        "--noinput",
        "--username",
        "admin",
        "--email",
        "admin@example.com",
        env=base_env(DJANGO_SUPERUSER_PASSWORD="admin"),
    )
    world_readable(dest)
    return project


def install_project(template: Project, dest: Path) -> Project:
    shutil.copytree(template.dir, dest, symlinks=True)
    world_readable(dest)
    return Project(dest)


def chown_tree(root: Path, user: str = "www-data") -> None:
    shutil.chown(root, user, user)
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            os.lchown(Path(dirpath, name), *_ids(user))


def _ids(user: str) -> tuple[int, int]:
    import pwd

    pw = pwd.getpwnam(user)
    return pw.pw_uid, pw.pw_gid


def render(template: str, dest: Path, values: Mapping[str, str], mode: int = 0o644) -> Path:
    """Fill ``tests/webservers/recipes/TEMPLATE``'s ``@KEY@`` placeholders into ``dest``."""
    harness.render(f"recipes/{template}", dest, values)
    dest.chmod(mode)
    return dest


# --------------------------------------------------------------------------- daemons


def tagged_pids(tag: str, path: Path | None = None) -> list[int]:
    """Processes whose environment has ``FERROCGI_RECIPE=tag`` or whose command line names
    ``path`` (docs/apache.md's restart script clears the environment with ``env -``)."""
    return procfs.tagged(f"FERROCGI_RECIPE={tag}", path)


def kill_tagged(tag: str, path: Path | None = None, pidfile: Path | None = None) -> None:
    """Stop what a recipe left running: the pidfile's pid first (SIGTERM), then every tagged
    process (SIGTERM, then SIGKILL after 10 s)."""
    pids: list[int] = []
    if pidfile is not None:
        with contextlib.suppress(OSError, ValueError):
            pids.append(int(pidfile.read_text().split()[0]))
    pids += tagged_pids(tag, path)
    procfs.signal_all(pids, signal.SIGTERM)
    if not procfs.wait_gone(pids, 10.0):
        procfs.signal_all(pids + tagged_pids(tag, path), signal.SIGKILL)
        procfs.wait_gone(pids, 5.0)


Address = tuple[str, int] | str


@dataclass
class Runfcgi:
    """``./manage.py runfcgi WORDS`` as started: the launcher, which daemonizes or serves."""

    project: Project
    words: list[str]
    address: Address
    launcher: Proc
    tag: str
    pidfile: Path | None = None

    def log(self) -> str:
        return self.launcher.dump()


def wait_serving(
    what: str, address: Address, launcher: Proc | None, timeout: float = START_TIMEOUT
) -> None:
    """Until ``address`` accepts. The launcher may exit 0 meanwhile (it daemonized), not fail."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if harness.can_connect(address):
            return
        if launcher is not None and not launcher.alive() and launcher.popen.returncode != 0:
            raise RuntimeError(
                f"{what} exited ({launcher.popen.returncode}) before serving\n{launcher.dump()}"
            )
        time.sleep(0.05)
    dump = launcher.dump() if launcher else ""
    raise RuntimeError(f"{what}: {address} did not accept within {timeout}s\n{dump}")


@contextlib.contextmanager
def launch(
    project: Project,
    argv: Sequence[str],
    address: Address,
    env: Mapping[str, str] | None = None,
    pidfile: Path | None = None,
    user: str | None = None,
    name: str = "runfcgi",
) -> Iterator[Runfcgi]:
    """Run ``argv`` in the project dir (as ``user``) and wait until ``address`` accepts; at
    exit, stop it and anything it left behind (pidfile, tag, command lines naming the dir)."""
    tag = uuid.uuid4().hex
    full_env = base_env(**(env or {}), FERROCGI_RECIPE=tag)
    full = list(argv)
    if user:
        full = ["runuser", "-u", user, "--", *full]
    try:
        with harness.spawn(name, full, project.dir, env=full_env) as proc:
            server = Runfcgi(project, list(argv), address, proc, tag, pidfile)
            wait_serving(" ".join(argv), address, proc)
            yield server
    finally:
        kill_tagged(tag, project.dir, pidfile)


def runfcgi(
    project: Project,
    words: Sequence[str],
    address: Address,
    env: Mapping[str, str] | None = None,
    pidfile: Path | None = None,
    user: str | None = None,
) -> contextlib.AbstractContextManager[Runfcgi]:
    """``./manage.py runfcgi WORDS``, as the docs write it."""
    return launch(project, ["./manage.py", "runfcgi", *words], address, env, pidfile, user)


def stop_cleanly(server: Runfcgi, timeout: float = 15.0) -> int:
    """SIGTERM a foreground runfcgi; its exit status."""
    server.launcher.popen.send_signal(signal.SIGTERM)
    return server.launcher.popen.wait(timeout)


# --------------------------------------------------------------------------- HTTP checks


@dataclass
class Site:
    """One mount of a deployed project, seen through its web server."""

    name: str  # MYSITE_NAME of the install that should answer
    port: int
    prefix: str  # "" (mounted at /) or "/prefix"
    static_root: Path
    host: str | None = None  # Host header; default 127.0.0.1:port
    cookies: dict[str, str] = field(default_factory=dict)

    @property
    def host_header(self) -> str:
        return self.host or f"{LOOPBACK}:{self.port}"

    @property
    def origin(self) -> str:
        return f"http://{self.host_header}"


@dataclass
class Response:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self) -> dict[str, object]:
        return dict(json.loads(self.body))


def request(
    site: Site,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    conn = http.client.HTTPConnection(LOOPBACK, site.port, timeout=60)
    try:
        h = {"Host": site.host_header}
        if site.cookies:
            h["Cookie"] = "; ".join(f"{k}={v}" for k, v in site.cookies.items())
        h.update(headers or {})
        conn.request(method, path, body=body, headers=h)
        resp = conn.getresponse()
        data = resp.read()
        for value in resp.headers.get_all("Set-Cookie") or []:
            k, _, rest = value.partition("=")
            site.cookies[k.strip()] = rest.split(";", 1)[0]
        return Response(resp.status, resp.headers, data)
    finally:
        conn.close()


def get(site: Site, path: str) -> Response:
    return request(site, "GET", path)


def expect(resp: Response, status: int, what: str) -> Response:
    assert resp.status == status, f"{what}: HTTP {resp.status}, wanted {status}\n{resp.text[:2000]}"
    return resp


def check_page(site: Site) -> None:
    """The home page renders, and ``{% url %}`` links carry the public (pre-rewrite) prefix."""
    page = expect(get(site, f"{site.prefix}/"), 200, "home page").text
    assert f"{site.name} is served by ferrocgi" in page, page
    assert f'href="{site.prefix}/about/"' in page, page
    assert f'href="{site.prefix}/admin/"' in page, page
    expect(get(site, f"{site.prefix}/about/"), 200, "linked page")


def check_reverse(site: Site) -> None:
    """``reverse()`` and the script prefix are the public mount, whatever the rewrite."""
    info = expect(get(site, f"{site.prefix}/info/?x=1"), 200, "info").json()
    assert info["site"] == site.name, info
    assert info["reverse_about"] == f"{site.prefix}/about/", info
    assert info["script_prefix"] == f"{site.prefix}/", info
    assert info["path"] == f"{site.prefix}/info/", info
    assert info["path_info"] == "/info/", info


STYLESHEET = re.compile(r'<link rel="stylesheet"[^>]*href="([^"]+)"')


def check_admin_css(site: Site) -> None:
    """The admin login page renders, and its CSS comes from the web server (DEBUG is off,
    so Django serves no static files), byte for byte what collectstatic put there."""
    page = expect(get(site, f"{site.prefix}/admin/login/"), 200, "admin login").text
    assert "Django administration" in page, page[:2000]
    sheets = STYLESHEET.findall(page)
    assert sheets, f"no stylesheet on the login page:\n{page[:2000]}"
    for href in sheets:
        resp = expect(get(site, href), 200, f"stylesheet {href}")
        assert resp.headers.get("Content-Type", "").startswith("text/css"), dict(resp.headers)
        rel = href.split("/admin/", 1)[1]
        assert resp.body == (site.static_root / "admin" / rel).read_bytes(), href


CSRF_INPUT = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


def check_login(site: Site) -> None:
    """A CSRF-protected POST: the admin login succeeds and the redirect has the prefix."""
    site.cookies.clear()
    page = expect(get(site, f"{site.prefix}/admin/login/"), 200, "admin login").text
    token = CSRF_INPUT.search(page)
    assert token, "no CSRF token in the login form"
    assert "csrftoken" in site.cookies, "no csrftoken cookie"
    form = (
        f"csrfmiddlewaretoken={token.group(1)}&username=admin&password=admin"
        f"&next={site.prefix}/admin/"
    ).encode()
    resp = request(
        site,
        "POST",
        f"{site.prefix}/admin/login/?next={site.prefix}/admin/",
        body=form,
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Origin": site.origin,
            "Referer": f"{site.origin}{site.prefix}/admin/login/",
        },
    )
    expect(resp, 302, "login POST")
    assert resp.headers["Location"] == f"{site.prefix}/admin/", resp.headers["Location"]
    assert "sessionid" in site.cookies, "no session cookie after login"
    admin = expect(get(site, f"{site.prefix}/admin/"), 200, "admin index").text
    assert "Site administration" in admin, admin[:2000]
    site.cookies.clear()


def check_upload(site: Site) -> None:
    """A 5 MiB multipart upload reaches the view intact."""
    boundary = "ferrocgi-recipe-boundary"
    body = b"".join(
        [
            f"--{boundary}\r\n".encode(),
            b'Content-Disposition: form-data; name="file"; filename="five.bin"\r\n',
            b"Content-Type: application/octet-stream\r\n\r\n",
            UPLOAD,
            f"\r\n--{boundary}--\r\n".encode(),
        ]
    )
    resp = request(
        site,
        "POST",
        f"{site.prefix}/upload/",
        body=body,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    got = expect(resp, 200, "upload").json()
    assert got == {
        "name": "five.bin",
        "size": len(UPLOAD),
        "sha256": hashlib.sha256(UPLOAD).hexdigest(),
    }, got


CHECKS: list[Callable[[Site], None]] = [
    check_page,
    check_reverse,
    check_admin_css,
    check_login,
    check_upload,
]
CHECK_IDS = [c.__name__.removeprefix("check_") for c in CHECKS]


def info(site: Site) -> dict[str, object]:
    return expect(get(site, f"{site.prefix}/info/"), 200, "info").json()


# --------------------------------------------------------------------------- web servers


@contextlib.contextmanager
def apache(
    rundir: Path, template: str, values: Mapping[str, str], name: str = "apache"
) -> Iterator[Proc]:
    """A private Apache (``tests/webservers/apache-common.conf`` + a recipe's config) in the
    foreground; ``values`` fill the placeholders (``RUN`` and ``PORT`` are set here if absent)."""
    d = harness.make_dir(rundir / name)
    vals = {"RUN": str(d), **values}
    harness.render("apache-common.conf", d / "apache-common.conf", vals)
    if template in production.REPLACEMENTS:
        conf = harness.fill(production.apache_config(template), d / "httpd.conf", vals)
    else:
        conf = render(template, d / "httpd.conf", vals)
    ports = [int(vals[key]) for key in ("PORT", "PREFIX_PORT") if key in vals]
    with harness.run_webserver("apache", d, conf, ports, name) as proc:
        yield proc


@contextlib.contextmanager
def nginx(rundir: Path, template: str, values: Mapping[str, str]) -> Iterator[Proc]:
    d = harness.make_dir(rundir / "nginx")
    for sub in ("tmp", "logs"):
        harness.make_dir(d / sub)
    vals = {"RUN": str(d), **values}
    site = production.derive(template)
    conf = harness.fill(production.wrap("nginx.conf", site), d / "nginx.conf", vals)
    with harness.run_webserver("nginx", d, conf, [int(vals["PORT"])]) as proc:
        yield proc


@contextlib.contextmanager
def lighttpd(rundir: Path, template: str, values: Mapping[str, str]) -> Iterator[Proc]:
    d = harness.make_dir(rundir / "lighttpd")
    harness.make_dir(d / "tmp")
    vals = {"RUN": str(d), **values}
    site = production.derive(template)
    conf = harness.fill(production.wrap("lighttpd.conf", site), d / "lighttpd.conf", vals)
    with harness.run_webserver("lighttpd", d, conf, [int(vals["PORT"])]) as proc:
        yield proc
