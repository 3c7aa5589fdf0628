"""The ``ferrocgi`` command (and ``python -m ferrocgi``), tested as a user runs it.

The contract: ``ferrocgi APP [OPTIONS]``, APP is ``module:callable`` (callable defaults to
``application``); every option is accepted as ``--flag VALUE`` and as Django-style
``flag=VALUE``; ``help``/``--help`` print every option and exit 0; bad input prints one line
naming the option, exits 2 and starts nothing; an app that fails to import prints its
traceback and exits 1 before binding.

Requests go over raw FastCGI (``support.cli.fcgi_env``): the point here is the command line,
not a front end.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import pytest

from support import harness, wire
from support.cli import environ_via, fcgi_env, ferrocgi, python_m, run, serving

#: Every option the contract names; ``--help`` must list each of them.
OPTIONS = [
    "protocol",
    "host",
    "port",
    "socket",
    "socket_mode",
    "method",
    "threads",
    "script_name",
    "max_body",
    "spool_threshold",
    "log_level",
    "pythonpath",
    "debug",
    "ajp_lighttpd_compat",
]
APPS = str(harness.APPS)


# ----------------------------------------------------------------------------- help


@pytest.mark.parametrize("word", ["help", "--help"])
def test_help_lists_every_option(word: str) -> None:
    done = run(ferrocgi(word))
    assert done.returncode == 0, (done.returncode, done.stderr)
    text = done.stdout
    missing = [o for o in OPTIONS if o not in text and o.replace("_", "-") not in text]
    assert not missing, f"--help does not mention {missing}:\n{text}"


def test_python_m_ferrocgi_help_is_the_same() -> None:
    a, b = run(ferrocgi("--help")), run(python_m("--help"))
    assert (a.returncode, b.returncode) == (0, 0), (a.stderr, b.stderr)
    assert a.stdout == b.stdout


# ----------------------------------------------------------------------------- spellings


SPELLINGS = {
    "flags": lambda port: [
        "wsgi:application",
        "--protocol",
        "fcgi",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--method",
        "threaded",
        "--threads",
        "3",
        "--script_name",
        "/app",
        "--pythonpath",
        APPS,
        "--log_level",
        "debug",
    ],
    "key=value": lambda port: [
        "wsgi:application",
        "protocol=fcgi",
        "host=127.0.0.1",
        f"port={port}",
        "method=threaded",
        "threads=3",
        "script_name=/app",
        f"pythonpath={APPS}",
        "log_level=debug",
    ],
}


def test_both_spellings_behave_the_same(rundir: Path) -> None:
    seen = {}
    for name, words in SPELLINGS.items():
        port = harness.free_port()
        with serving(rundir, ferrocgi(*words(port)), (harness.LOOPBACK, port)) as proc:
            env = environ_via((harness.LOOPBACK, port), "/env/some/path")
            assert proc.alive()
        assert proc.popen.returncode == 0, f"{name}: SIGTERM should stop it cleanly"
        seen[name] = {
            k: env[k] for k in ("SCRIPT_NAME", "PATH_INFO", "wsgi.multithread", "REQUEST_METHOD")
        }
    assert seen["flags"] == seen["key=value"]
    assert seen["flags"]["SCRIPT_NAME"] == "/app"
    assert seen["flags"]["PATH_INFO"] == "/env/some/path"


def test_callable_defaults_to_application_and_python_m_serves(rundir: Path) -> None:
    port = harness.free_port()
    argv = python_m("wsgi", f"port={port}", f"pythonpath={APPS}", "method=threaded")
    with serving(rundir, argv, (harness.LOOPBACK, port)):
        assert environ_via((harness.LOOPBACK, port))["PATH_INFO"] == "/env/x"


def test_unix_socket_with_mode(rundir: Path) -> None:
    sock = str(harness.instance_dir(rundir, "cli-sock") / "app.sock")
    argv = ferrocgi("wsgi:application", f"socket={sock}", "socket_mode=666", f"pythonpath={APPS}")
    with serving(rundir, argv, sock):
        assert os.stat(sock).st_mode & 0o777 == 0o666
        assert environ_via(sock)["PATH_INFO"] == "/env/x"


def test_max_body_option_answers_413(rundir: Path) -> None:
    port = harness.free_port()
    argv = ferrocgi("wsgi:application", f"--port={port}", f"pythonpath={APPS}", "max_body=1K")
    with serving(rundir, argv, (harness.LOOPBACK, port)):
        with socket.create_connection((harness.LOOPBACK, port), timeout=10) as s:
            body = b"x" * 2048
            params = wire.cgi_params("POST", "/app/echo", body_length=len(body))
            s.sendall(wire.fcgi_request(params, body))
            assert wire.read_fcgi_response(s).cgi().status == 413


# ----------------------------------------------------------------------------- bad input


def bad_cases(port: int, sock: str) -> dict[str, tuple[list[str], str]]:
    """name -> (argv after the command, the option the one-line error must name)."""
    app = ["wsgi:application", f"pythonpath={APPS}"]
    return {
        "unknown-flag": ([*app, f"port={port}", "--no-such-option", "1"], "no-such-option"),
        "unknown-key": ([*app, f"port={port}", "nosuchoption=1"], "nosuchoption"),
        "port-not-a-number": ([*app, "port=http"], "port"),
        "bad-protocol": ([*app, f"port={port}", "protocol=http"], "protocol"),
        "bad-method": ([*app, f"port={port}", "method=forking"], "method"),
        "bad-threads": ([*app, f"port={port}", "threads=many"], "threads"),
        "bad-max-body": ([*app, f"port={port}", "max_body=huge"], "max_body"),
        "bad-debug": ([*app, f"port={port}", "debug=maybe"], "debug"),
        "bad-socket-mode": ([*app, f"socket={sock}", "socket_mode=999"], "socket_mode"),
        "socket-and-port": ([*app, f"socket={sock}", "host=127.0.0.1", f"port={port}"], "socket"),
        "minspare-above-maxspare": ([*app, f"port={port}", "minspare=9", "maxspare=2"], "spare"),
    }


BAD_CASE_NAMES = list(bad_cases(0, "").keys())


@pytest.mark.parametrize("case", BAD_CASE_NAMES)
def test_bad_input_exits_2_with_one_line_and_starts_nothing(rundir: Path, case: str) -> None:
    port = harness.free_port()
    sock = str(harness.instance_dir(rundir, "cli-bad") / "never.sock")
    argv, option = bad_cases(port, sock)[case]
    start = time.monotonic()
    done = run(ferrocgi(*argv), timeout=20)
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    assert time.monotonic() - start < 10, "it should fail at once"
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line, got:\n{done.stderr}"
    line = lines[0].lower()
    assert option in line or option.replace("_", "-") in line, line
    assert "traceback" not in done.stderr.lower()
    assert not Path(sock).exists(), "a socket was created"
    assert not harness.can_connect((harness.LOOPBACK, port)), "something listens on the port"


def test_import_error_exits_1_with_traceback_before_binding(rundir: Path) -> None:
    port = harness.free_port()
    sock = str(harness.instance_dir(rundir, "cli-import") / "never.sock")
    for where in ([f"port={port}"], [f"socket={sock}"]):
        done = run(ferrocgi("broken:application", f"pythonpath={APPS}", *where), timeout=30)
        assert done.returncode == 1, (done.returncode, done.stdout, done.stderr)
        assert "Traceback (most recent call last)" in done.stderr
        assert "explode_at_import" in done.stderr
        assert "RuntimeError: broken module: raised at import time" in done.stderr
        assert not harness.can_connect((harness.LOOPBACK, port))
        assert not Path(sock).exists()


def test_missing_module_exits_1(rundir: Path) -> None:
    port = harness.free_port()
    done = run(ferrocgi("no_such_module_for_ferrocgi:application", f"port={port}"))
    assert done.returncode == 1, (done.returncode, done.stderr)
    assert "ModuleNotFoundError" in done.stderr
    assert not harness.can_connect((harness.LOOPBACK, port))


@pytest.mark.parametrize("spelling", ["log_level=debug", "--log-level=debug"])
def test_log_level_debug_logs_to_stderr(rundir: Path, spelling: str) -> None:
    """The server log (stderr): ``listening on``, ``accepted connection`` at debug, and an
    application's traceback, tagged with the request."""
    port = harness.free_port()
    argv = ferrocgi("wsgi:application", f"port={port}", f"pythonpath={APPS}", spelling)
    with serving(rundir, argv, (harness.LOOPBACK, port)) as proc:
        assert fcgi_env((harness.LOOPBACK, port), "/fail-before-start").status == 500
        stderr = proc.logs[0]
        deadline = time.monotonic() + 5
        while (
            "fail_before_start_response" not in stderr.read_text() and time.monotonic() < deadline
        ):
            time.sleep(0.05)
        log = stderr.read_text()
    assert "listening on" in log, log
    assert "accepted connection" in log, log
    assert "fail_before_start_response" in log and "boom before start_response" in log, log
