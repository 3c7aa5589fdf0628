"""``manage.py runfcgi`` and ``runfastcgi()`` hand the classic guide's words to ferrocgi unchanged.

No web server here: ``help`` prints without loading the project, bad words give one line and
exit status 2, a broken project fails before anything is bound, and ``runfastcgi``'s keywords
become ``key=value`` words.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

import kit
import pytest

from support import harness


@pytest.fixture(scope="module")
def project(rundir: Path, template: kit.Project) -> kit.Project:
    return kit.install_project(template, rundir / "myproject")


def manage(project: kit.Project, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["./manage.py", *args],
        cwd=project.dir,
        env=kit.base_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
    )


BROKEN = {"MYSITE_WSGI_APPLICATION": "mysite.nonexistent.application"}


@pytest.mark.parametrize("words", [["help"], ["--help"], ["-h"], ["method=threaded", "help"]])
def test_help_prints_without_loading_the_project(project: kit.Project, words: list[str]) -> None:
    done = manage(project, "runfcgi", *words, **BROKEN)
    assert done.returncode == 0, done.stderr
    assert "method=" in done.stdout and "maxrequests" in done.stdout, done.stdout
    assert "socket" in done.stdout and "pidfile" in done.stdout and "umask" in done.stdout


@pytest.mark.parametrize(
    "words, option",
    [
        (["port=http"], "port"),
        (["method=forked"], "method"),
        (["daemonize=perhaps"], "daemonize"),
        (["socket=/tmp/x.sock", "port=3033"], "socket"),
        (["nosuchoption=1"], "nosuchoption"),
    ],
)
def test_bad_words_one_line_exit_2(project: kit.Project, words: list[str], option: str) -> None:
    done = manage(project, "runfcgi", *words)
    assert done.returncode == 2, (done.returncode, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and option in lines[0], done.stderr


def test_settings_option_is_django_s(project: kit.Project) -> None:
    done = manage(project, "runfcgi", "--settings=mysite.settings", "help")
    assert done.returncode == 0, done.stderr


def test_broken_project_fails_before_binding(project: kit.Project) -> None:
    port = harness.free_port()
    done = manage(
        project, "runfcgi", "method=threaded", f"port={port}", "daemonize=false", **BROKEN
    )
    assert done.returncode != 0
    assert "nonexistent" in done.stderr, done.stderr
    assert not harness.can_connect(("127.0.0.1", port))


def _runfastcgi(project: kit.Project, call: str) -> subprocess.CompletedProcess[str]:
    code = (
        "import os, sys\n"
        f"sys.path.insert(0, {str(project.dir)!r})\n"
        "os.environ['DJANGO_SETTINGS_MODULE'] = 'mysite.settings'\n"
        "from ferrocgi.django import runfastcgi\n"
        f"{call}\n"
        "print('returned')\n"
    )
    return subprocess.run(
        [kit.PYTHON, "-c", code], env=kit.base_env(), capture_output=True, text=True, timeout=60
    )


def test_runfastcgi_help(project: kit.Project) -> None:
    done = _runfastcgi(project, "runfastcgi(['help'])")
    assert done.returncode == 0, done.stderr
    assert "maxrequests" in done.stdout and "returned" in done.stdout


def test_runfastcgi_bad_keyword_raises_systemexit_2(project: kit.Project) -> None:
    done = _runfastcgi(project, "runfastcgi(method='threaded', port='http')")
    assert done.returncode == 2, done.stderr
    assert "returned" not in done.stdout
    assert "port" in done.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize(
    "argset, kwargs, words",
    [
        ([], {"method": "threaded", "daemonize": "false"}, ["method=threaded", "daemonize=false"]),
        ([], {"daemonize": False, "debug": True}, ["daemonize=false", "debug=true"]),
        (["maxrequests=1"], {"pidfile": None, "port": 3033}, ["port=3033", "maxrequests=1"]),
        (["protocol=scgi"], {"protocol": "fcgi"}, ["protocol=fcgi", "protocol=scgi"]),
    ],
)
def test_runfastcgi_words(
    monkeypatch: pytest.MonkeyPatch,
    argset: list[str],
    kwargs: dict[str, object],
    words: Sequence[str],
) -> None:
    import ferrocgi.django

    seen: list[list[str]] = []
    monkeypatch.setattr(ferrocgi.django, "run", lambda w: seen.append(list(w)) or 0)
    ferrocgi.django.runfastcgi(argset, **kwargs)
    assert seen == [list(words)]
