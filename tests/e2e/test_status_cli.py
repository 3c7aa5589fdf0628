"""``ferrocgi status ADDRESS [--watch] [--json]`` (issue 16, item 3): against prefork and
threaded servers over FastCGI, SCGI and AJP, against ``manage.py runfcgi``, refreshing with
``--watch``, and its errors."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from support import cli, harness, phpfpm
from support.proc_server import fcgi_json, ferrocgi, prefork

STATUS = "status_path=/status"


def status_cmd(*args: str) -> subprocess.CompletedProcess[str]:
    return cli.run(cli.ferrocgi("status", *args))


def address_word(address: tuple[str, int] | str) -> str:
    return address if isinstance(address, str) else f"{address[0]}:{address[1]}"


@pytest.mark.parametrize(
    ("model", "protocol", "transport"),
    [
        ("prefork", "fcgi", "unix"),
        ("prefork", "scgi", "tcp"),
        ("prefork", "ajp13", "tcp"),
        ("threaded", "fcgi", "tcp"),
        ("threaded", "scgi", "unix"),
        ("threaded", "ajp13", "tcp"),
    ],
)
def test_status_shows_the_pool_and_its_workers(
    rundir: Path, model: str, protocol: str, transport: str
) -> None:
    words = (
        prefork("maxchildren=2", "minspare=2", "maxspare=2")
        if model == "prefork"
        else [
            "method=threaded",
            "threads=3",
        ]
    )
    words = [*words, STATUS, f"protocol={protocol}"]
    with ferrocgi(rundir, words, transport=transport, name=f"{model}-{protocol}") as server:
        if protocol == "fcgi":
            fcgi_json(server.address)
        addr = address_word(server.address)
        out = status_cmd(addr, "--protocol", protocol)
        assert out.returncode == 0, out.stderr
        manager = "dynamic" if model == "prefork" else "static"
        assert out.stdout.startswith("pool "), out.stdout
        assert f" · {manager} · " in out.stdout
        rows = re.findall(r"^\s+(\d+)\s+(Idle|Running|Ending)\s", out.stdout, re.M)
        expected = len(server.workers()) if model == "prefork" else 3
        assert len(rows) == expected, out.stdout
        if model == "prefork":
            assert {int(pid) for pid, _ in rows} == set(server.workers())
        as_json = status_cmd(addr, "--protocol", protocol, "--json")
        assert as_json.returncode == 0, as_json.stderr
        data = phpfpm.parse_json(as_json.stdout.encode())
        assert data["total processes"] == expected
        assert len(data["processes"]) == expected


def test_status_of_a_django_project_started_with_runfcgi(rundir: Path) -> None:
    project = harness.instance_dir(rundir, "django")
    subprocess.run(
        [sys.executable, "-m", "django", "startproject", "site1", str(project)],
        check=True,
        capture_output=True,
        env=cli.clean_env(),
    )
    settings = project / "site1" / "settings.py"
    text = settings.read_text()
    settings.write_text(
        text.replace("INSTALLED_APPS = [", 'INSTALLED_APPS = [\n    "ferrocgi.django",')
    )
    sock = str(project / "site1.sock")
    argv = [sys.executable, "manage.py", "runfcgi", "method=prefork", f"socket={sock}"]
    argv += ["daemonize=false", "maxchildren=2", "minspare=1", "maxspare=2", STATUS]
    env = cli.clean_env()
    env.pop("DJANGO_SETTINGS_MODULE", None)
    with harness.spawn("runfcgi", argv, project, env=env) as proc:
        harness.wait_until("runfcgi to listen", proc, lambda: harness.can_connect(sock))
        out = status_cmd(sock)
        assert out.returncode == 0, (out.stderr, proc.dump())
        assert re.search(r"^pool .*site1\.sock · dynamic", out.stdout, re.M), out.stdout


def test_watch_refreshes_until_interrupted(rundir: Path) -> None:
    with ferrocgi(rundir, [STATUS, "method=threaded", "threads=2"]) as server:
        argv = cli.ferrocgi("status", address_word(server.address), "--watch", "0.2", "--json")
        with subprocess.Popen(
            argv, stdout=subprocess.PIPE, text=True, env=cli.clean_env()
        ) as watch:
            time.sleep(0.3)
            for _ in range(3):
                fcgi_json(server.address)
            time.sleep(1.2)
            watch.send_signal(signal.SIGINT)
            out, _ = watch.communicate(timeout=10)
        pages = [json.loads(line) for line in out.splitlines() if line.strip()]
        assert len(pages) >= 4, out
        counts = [p["accepted conn"] for p in pages]
        assert counts[0] < counts[-1] == 3, counts


def test_a_server_without_status_path_gets_a_hint(rundir: Path) -> None:
    with ferrocgi(rundir, ["method=threaded"]) as server:
        out = status_cmd(address_word(server.address))
        assert out.returncode == 1
        assert "is the server started with status_path=/status?" in out.stderr, out.stderr


def test_nothing_listening_is_one_clear_line(rundir: Path) -> None:
    port = harness.free_port()
    out = status_cmd(f"127.0.0.1:{port}")
    assert out.returncode == 1
    assert out.stderr.startswith(f"ferrocgi status: 127.0.0.1:{port}: ")
    assert "refused" in out.stderr.lower()
    missing = status_cmd(os.path.join(str(rundir), "no-such.sock"))
    assert missing.returncode == 1 and "No such file" in missing.stderr
