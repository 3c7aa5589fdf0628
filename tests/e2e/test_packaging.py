"""Packaging (issue 14, item 14): what users install is what is tested.

``scripts/test.sh`` builds ferrocgi's wheel once (``maturin build --release``), installs it into
the test venv and names it in ``$FERROCGI_WHEEL``. These tests check that the suite runs that
wheel (not the checkout), that its metadata is complete, and that a brand-new venv with
``pip install 'ferrocgi[django]'`` (the wheel, with the extra) gets a supported Django and runs
``ferrocgi --version``, ``ferrocgi help`` and a ``manage.py runfcgi`` that serves a request.
"""

from __future__ import annotations

import email.parser
import hashlib
import importlib.metadata
import os
import re
import socket
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from support import harness, wire

# The Django releases the project tests (scripts/test.sh): 4.2 LTS, 5.2 LTS, 6.x.
SUPPORTED_DJANGO = re.compile(r"^(4\.2|5\.2|6\.\d+)(\.\d+)*$")


def built_wheel() -> Path:
    """The wheel scripts/test.sh built; its absence fails the test (never skips it)."""
    name = os.environ.get("FERROCGI_WHEEL")
    if not name:
        pytest.fail("FERROCGI_WHEEL is not set: run the suite with scripts/test.sh", pytrace=False)
    path = Path(name)
    assert path.is_file(), f"FERROCGI_WHEEL={name} does not exist"
    return path


def wheel_metadata(wheel: Path) -> email.message.Message:
    with zipfile.ZipFile(wheel) as z:
        (name,) = [n for n in z.namelist() if n.endswith(".dist-info/METADATA")]
        return email.parser.Parser().parsestr(z.read(name).decode())


def run(argv: list[str], cwd: Path | None = None, timeout: float = 300) -> str:
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{argv} exited {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_suite_runs_the_built_wheel() -> None:
    """The ferrocgi these tests import is the wheel's, installed in the venv, not python/."""
    import ferrocgi
    from ferrocgi import _ferrocgi

    wheel = built_wheel()
    package = Path(ferrocgi.__file__).resolve().parent
    assert package.is_relative_to(Path(sys.prefix).resolve()), package
    assert not package.is_relative_to(harness.ROOT / "python"), package
    ext = Path(_ferrocgi.__file__)
    with zipfile.ZipFile(wheel) as z:
        (member,) = [
            n for n in z.namelist() if n.startswith("ferrocgi/_ferrocgi") and n.endswith(".so")
        ]
        shipped = hashlib.sha256(z.read(member)).hexdigest()
    assert ext.name == Path(member).name
    assert hashlib.sha256(ext.read_bytes()).hexdigest() == shipped, "not the wheel's module"
    assert importlib.metadata.version("ferrocgi") == ferrocgi.__version__


def test_wheel_metadata_is_complete() -> None:
    """A real description, license, classifiers, the [django] extra; no placeholder URL."""
    meta = wheel_metadata(built_wheel())
    assert "FastCGI" in meta["Summary"] and "WSGI" in meta["Summary"], meta["Summary"]
    assert meta["License"] == "BSD-3-Clause"
    classifiers = meta.get_all("Classifier") or []
    for wanted in (
        "License :: OSI Approved :: BSD License",
        "Operating System :: POSIX :: Linux",
        "Programming Language :: Python :: 3.13",
        "Framework :: Django :: 4.2",
        "Framework :: Django :: 5.2",
        "Framework :: Django :: 6.0",
        "Topic :: Internet :: WWW/HTTP :: WSGI :: Server",
    ):
        assert wanted in classifiers, (wanted, classifiers)
    assert "django" in (meta.get_all("Provides-Extra") or [])
    requires = meta.get_all("Requires-Dist") or []
    extra = re.compile(r"""^django\b.*;\s*extra\s*==\s*["']django["']$""", re.I)
    assert any(extra.match(r) for r in requires), requires
    assert "example.invalid" not in meta.as_string()
    # The README is the long description PyPI shows.
    assert "ferrocgi serves Python web applications" in str(meta.get_payload())


def test_pip_install_ferrocgi_django_extra_in_a_new_venv(rundir: Path) -> None:
    """``pip install 'ferrocgi[django]'`` (the built wheel) in a brand-new venv: a supported
    Django comes with it, and the installed commands work as the README shows them."""
    wheel = built_wheel()
    d = harness.make_dir(rundir / "new-venv")
    venv = d / "venv"
    run([sys.executable, "-m", "venv", str(venv)])
    pip = [str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", "-q"]
    run([*pip, "install", f"{wheel}[django]"])
    django = run([str(venv / "bin" / "python"), "-c", "import django; print(django.__version__)"])
    assert SUPPORTED_DJANGO.match(django.strip()), f"the extra installed Django {django}"

    ferrocgi = str(venv / "bin" / "ferrocgi")
    version = importlib.metadata.version("ferrocgi")
    assert run([ferrocgi, "--version"]).strip() == f"ferrocgi {version}"
    help_text = run([ferrocgi, "help"])
    for option in ("socket", "method", "maxchildren", "threads", "protocol"):
        assert re.search(rf"^\s*{option}\b", help_text, re.M), (option, help_text[:3000])

    # A new Django project, as its tutorial makes it, with ferrocgi's app added.
    run([str(venv / "bin" / "django-admin"), "startproject", "newsite"], cwd=d)
    project = d / "newsite"
    settings = project / "newsite" / "settings.py"
    text = settings.read_text()
    settings.write_text(
        text.replace("INSTALLED_APPS = [", 'INSTALLED_APPS = [\n    "ferrocgi.django",')
    )
    port = harness.free_port()
    argv = [str(venv / "bin" / "python"), "manage.py", "runfcgi", "method=threaded"]
    argv += ["daemonize=false", "protocol=scgi", "host=127.0.0.1", f"port={port}"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FERROCGI_", "DJANGO_"))}
    with harness.spawn("runfcgi", argv, project, env=env) as proc:
        harness.wait_until(
            "runfcgi to listen", proc, lambda: harness.can_connect(("127.0.0.1", port))
        )
        params = [p for p in wire.cgi_params(path="/") if p[0] != "CONTENT_LENGTH"]
        params = [(k, "" if k == "SCRIPT_NAME" else v) for k, v in params]
        params.append(("HTTP_HOST", "localhost"))
        with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
            s.sendall(wire.scgi_request(params))
            reply = wire.parse_cgi(wire.recv_all(s))
    assert reply.status == 200, (reply.status, reply.body[:2000], proc.dump())
    # Django's welcome page for a new project (DEBUG, only the admin's URLs).
    assert b"The install worked successfully!" in reply.body, reply.body[:2000]
