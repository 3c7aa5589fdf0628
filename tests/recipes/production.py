"""From the production snippets the docs show to the private configs the recipe tests run.

Theory of operation
-------------------
A web-server recipe in ``tests/webservers/recipes/`` is written for production: real paths
(``/srv/mysite``, ``/run/mysite/mysite.sock``), real ports (80, 3033…), Debian's layout
(``/etc/nginx/sites-available``). The docs show it verbatim (``test_recipe_docs.py`` checks
that). A test takes the text the doc shows (``shown``), replaces each production path or
port with its own (``derive``: every replaced string must be there, and no production path may
be left), and wraps it in the harness-only lines of ``tests/webservers/harness/`` (``wrap``:
``daemon off``, pid and log files, the private listen port). So the docs cannot drift from
what the tests run: a change to the snippet is a change to the test.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from support import harness

ROOT = Path(__file__).resolve().parents[2]
WRAPPERS = harness.WEBSERVERS / "harness"
INCLUDE = re.compile(r"<!-- include: (\S+) -->\n```[\w-]*\n(.*?)```\n<!-- end include -->", re.S)
# What a production snippet names that a private test instance must never use.
PRODUCTION = re.compile(r"/srv/|/run/mysite|\blisten 80;|\*:80\b")
VHOST = ("<VirtualHost *:80>", "<VirtualHost *:@PORT@>")
STATIC = ("/srv/mysite/static", "@STATIC_ROOT@")
PUBLIC_HTML = ("/srv/mysite/public_html", "@PUBLIC_HTML@")

#: recipe -> (production string, its test placeholder), replaced in this order.
REPLACEMENTS: dict[str, Sequence[tuple[str, str]]] = {
    "nginx-fastcgi.conf": [
        ("listen 80;", "listen 127.0.0.1:@PORT@;"),
        ("unix:/run/mysite/mysite.sock", "unix:@SOCKET@"),
        ("/srv/mysite/static/", "@STATIC_ROOT@/"),
    ],
    "nginx-scgi.conf": [
        ("listen 80;", "listen 127.0.0.1:@PORT@;"),
        ("127.0.0.1:3034", "127.0.0.1:@SCGI_PORT@"),
        ("/srv/mysite/static/", "@STATIC_ROOT@/"),
    ],
    "apache-threaded.conf": [
        VHOST,
        ("127.0.0.1:3033", "127.0.0.1:@FCGI_PORT@"),
        PUBLIC_HTML,
        STATIC,
    ],
    "apache-prefork.conf": [VHOST, ("/run/mysite/mysite.sock", "@SOCKET@"), PUBLIC_HTML, STATIC],
    "apache-scgi.conf": [VHOST, ("127.0.0.1:3034", "127.0.0.1:@SCGI_PORT@"), STATIC],
    "apache-ajp.conf": [
        VHOST,
        ("127.0.0.1:8009", "127.0.0.1:@AJP_PORT@"),
        ("127.0.0.1:8010", "127.0.0.1:@PREFIX_AJP_PORT@"),
        STATIC,
    ],
    "apache-fcgid.conf": [VHOST, ("/srv/mysite/public_html", "@HTDOCS@")],
    "lighttpd-sites.conf": [
        ("/srv/www.example1.com/htdocs", "@RUN@/site1"),
        ("/srv/www.example2.com/htdocs", "@RUN@/site2"),
        *[
            (f"/run/my{s}/mysite.sock", f"@{s.upper()}_SOCKET@")
            for s in ("site1", "site2", "site2b")
        ],
        ("/srv/mysite1/static/", "@SITE1_STATIC@/"),
        ("/srv/mysite2/static/", "@SITE2_STATIC@/"),
    ],
    "caddy.Caddyfile": [
        ("example.com {", "http://127.0.0.1:@PORT@ {"),
        ("/run/mysite/mysite.sock", "@SOCKET@"),
        ("/srv/mysite", "@SITE_DIR@"),
    ],
    "haproxy.cfg": [
        ("bind :80", "bind 127.0.0.1:@PORT@"),
        ("127.0.0.1:3033", "127.0.0.1:@FCGI_PORT@"),
        ("/srv/mysite", "@SITE_DIR@"),
    ],
    "nginx-status.conf": [],
    "prometheus.yml": [
        ("www.example.com:80", "127.0.0.1:@PORT@"),
        ("scrape_interval: 15s", "scrape_interval: 1s\n    scrape_timeout: 1s"),
    ],
    "caddy-prefix.Caddyfile": [
        ("example.com {", "http://127.0.0.1:@PORT@ {"),
        ("/run/mysite/mysite.sock", "@SOCKET@"),
        ("/srv/mysite", "@SITE_DIR@"),
    ],
    "haproxy-prefix.cfg": [
        ("bind :80", "bind 127.0.0.1:@PORT@"),
        ("127.0.0.1:3033", "127.0.0.1:@FCGI_PORT@"),
        ("/srv/mysite", "@SITE_DIR@"),
    ],
    "h2o-prefix.conf": [
        ("listen: 80", "listen:\n  host: 127.0.0.1\n  port: @PORT@"),
        ('"example.com":', "default:"),
        ("/srv/mysite", "@SITE_DIR@"),
        ("port: 3033", "port: @FCGI_PORT@"),
    ],
    "scaling-nginx.conf": [
        ("listen 80;", "listen 127.0.0.1:@PORT@;"),
        ("10.0.0.11:3033", "@HOST1@:3033"),
        ("10.0.0.12:3033", "@HOST2@:3033"),
        ("10.0.0.13:3033", "@HOST3@:3033"),
    ],
    "scaling-haproxy.cfg": [
        ("bind :80", "bind 127.0.0.1:@PORT@"),
        ("/srv/mysite", "@SITE_DIR@"),
        ("10.0.0.11:3033", "@HOST1@:3033"),
        ("10.0.0.12:3033", "@HOST2@:3033"),
        ("10.0.0.13:3033", "@HOST3@:3033"),
    ],
    "h2o.conf": [
        ("listen: 80", "listen:\n  host: 127.0.0.1\n  port: @PORT@"),
        ('"example.com":', "default:"),
        ("/srv/mysite", "@SITE_DIR@"),
        ("port: 3033", "port: @FCGI_PORT@"),
    ],
}
#: Harness-only lines a module needs in a private instance (mod_fcgid's defaults are under
#: /var/lib/apache2, shared with the system's Apache).
HARNESS_EXTRA = {"fcgid": 'FcgidIPCDir "@RUN@/fcgid"\nFcgidProcessTableFile "@RUN@/fcgid_shm"\n'}
#: Modules tests/webservers/apache-common.conf and harness/apache.conf load already.
LOADED = {"mpm_event", "authz_core", "setenvif", "proxy", "alias", "mime"}
MODS_AVAILABLE = Path("/etc/apache2/mods-available")


def shown(recipe: str) -> str:
    """The text the docs show for ``tests/webservers/recipes/RECIPE``."""
    want = f"tests/webservers/recipes/{recipe}"
    for doc in sorted((ROOT / "docs").glob("*.md")):
        for m in INCLUDE.finditer(doc.read_text()):
            if m.group(1) == want:
                return m.group(2)
    raise AssertionError(f"no doc shows {want}")


def derive(recipe: str) -> str:
    """The shown snippet with its production paths and ports replaced by placeholders."""
    text = shown(recipe)
    for old, new in REPLACEMENTS[recipe]:
        assert old in text, f"{recipe} no longer contains {old!r}: update production.py"
        text = text.replace(old, new)
    left = PRODUCTION.findall(text)
    assert not left, f"{recipe}: production paths the test does not replace: {left}"
    return text


def wrap(wrapper: str, site: str) -> str:
    """``tests/webservers/harness/WRAPPER`` with its ``@SITE@`` line replaced by ``site``."""
    text = (WRAPPERS / wrapper).read_text()
    assert text.count("\n@SITE@\n") == 1, f"{wrapper} needs one @SITE@ line"
    return text.replace("\n@SITE@\n", "\n" + site)


def apache_modules(site: str) -> str:
    """What ``a2enmod MOD…`` (named in the site file) enables: each module's ``.load`` (after
    the modules its ``# Depends:`` line names) and ``.conf``, as Debian's a2enmod does."""
    m = re.search(r"a2enmod ([\w ]+?) &&", site)
    assert m, "the site file names no `a2enmod MOD… &&` line"
    lines: list[str] = []
    done = set(LOADED)

    def enable(mod: str) -> None:
        if mod in done:
            return
        done.add(mod)
        load = (MODS_AVAILABLE / f"{mod}.load").read_text()
        for dep in re.findall(r"^# Depends: (.*)$", load, re.M):
            for d in dep.split():
                enable(d)
        lines.append(load)
        conf = MODS_AVAILABLE / f"{mod}.conf"
        if conf.exists():
            lines.append(f'Include "{conf}"\n')
        lines.append(HARNESS_EXTRA.get(mod, ""))

    for mod in m.group(1).split():
        enable(mod)
    return "".join(lines)


def apache_config(recipe: str) -> str:
    """The private httpd.conf for an Apache recipe, with ``@PLACEHOLDERS@`` left to fill."""
    site = derive(recipe)
    return wrap("apache.conf", site).replace("@MODULES@\n", apache_modules(site))
