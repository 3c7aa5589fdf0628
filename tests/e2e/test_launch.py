"""One start-up path for every host: ``ferrocgi.serve()`` and the pure-Rust example.

``ferrocgi.serve(app, bind, **options)`` turns its keywords into the option words the command
takes (one parser, one set of defaults), and ``examples/echo`` — no Python at all — gets the
process models, the daemon mode and the pid file from the same launcher as the command.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from support import harness
from support.cli import clean_env, environ_via, run
from support.procfs import children, eventually


def serve_script(d: Path, call: str) -> Path:
    """A script that imports the suite's WSGI app (found through ``app_env``'s PYTHONPATH) and
    runs ``call``, a ferrocgi.serve line."""
    script = d / "serve_it.py"
    script.write_text(
        textwrap.dedent(
            f"""\
            import ferrocgi
            from wsgi import application
            {call}
            """
        )
    )
    return script


def app_env() -> dict[str, str]:
    return {**clean_env(), "PYTHONPATH": str(harness.APPS)}


def test_serve_keywords_are_the_commands_options(rundir: Path) -> None:
    """``method="threaded", threads=2``: one process serving with two Python threads; SIGTERM
    stops it with status 0."""
    d = harness.instance_dir(rundir, "serve-threaded")
    port = harness.free_port()
    script = serve_script(
        d, f'ferrocgi.serve(application, "127.0.0.1:{port}", method="threaded", threads=2)'
    )
    with harness.spawn("serve", [sys.executable, str(script)], d, env=app_env()) as proc:
        address = (harness.LOOPBACK, port)
        harness.wait_until("the socket to accept", proc, lambda: harness.can_connect(address))
        env = environ_via(address)
        assert env["wsgi.multithread"]["value"] is True
        assert env["wsgi.multiprocess"]["value"] is False
        assert children(proc.pid) == []
        proc.popen.send_signal(signal.SIGTERM)
        assert proc.popen.wait(10) == 0, proc.dump()


def test_serve_defaults_are_the_commands_defaults(rundir: Path) -> None:
    """No method given: prefork, as for the command (it used to be threaded, 8 threads)."""
    d = harness.instance_dir(rundir, "serve-default")
    sock = d / "app.sock"
    script = serve_script(d, f'ferrocgi.serve(application, "unix:{sock}", minspare=1)')
    with harness.spawn("serve", [sys.executable, str(script)], d, env=app_env()) as proc:
        harness.wait_until("the socket to accept", proc, lambda: harness.can_connect(str(sock)))
        env = environ_via(str(sock))
        assert env["wsgi.multiprocess"]["value"] is True
        assert env["wsgi.multithread"]["value"] is False
        assert children(proc.pid), "prefork forks workers"


def test_serve_with_a_bad_option_says_so_and_exits_2(rundir: Path) -> None:
    d = harness.instance_dir(rundir, "serve-bad")
    script = serve_script(d, 'ferrocgi.serve(application, "127.0.0.1:0", maxchilds=3)')
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, env=app_env(), timeout=30
    )
    assert done.returncode == 2, done
    assert "maxchilds" in done.stderr and "maxchildren" in done.stderr, done.stderr


def test_the_pure_rust_example_runs_prefork_as_a_daemon(rundir: Path) -> None:
    """``echo -- method=prefork daemonize pidfile=…``: the launcher detaches, writes the pid
    file, forks workers that answer, and a SIGTERM to the pid removes socket and pid file."""
    d = harness.instance_dir(rundir, "echo-daemon")
    sock, pidfile, log = d / "echo.sock", d / "echo.pid", d / "echo.log"
    argv = [str(harness.echo_binary()), "--socket", str(sock), "--"]
    argv += ["method=prefork", "minspare=2", "maxspare=2", "maxchildren=3", "daemonize"]
    argv += [f"pidfile={pidfile}", f"errlog={log}"]
    done = run(argv, cwd=d)
    assert done.returncode == 0, done
    pid = int(pidfile.read_text())
    try:
        assert f"running in the background as pid {pid}" in done.stdout + done.stderr, done
        reply = environ_via(str(sock), "/anything")
        assert reply["params"], reply
        eventually("two workers", lambda: len(children(pid)) >= 2, 10)
    finally:
        os.kill(pid, signal.SIGTERM)
    eventually("the daemon to exit", lambda: not Path(f"/proc/{pid}").exists(), 15)
    assert not sock.exists() and not pidfile.exists()
    assert "graceful stop" in log.read_text()
