"""What ``/proc`` says about processes: state, parent, children, how a zombie ended, which
processes carry a tag, and the CPU time and memory of a process tree.

Processes a test starts may daemonize or fork workers whose pids nobody is told, so the
tests find them by a tag in their environment (``VAR=tag``) or a path on their command line,
and wait for them with :func:`eventually` / :func:`wait_gone`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def read(path: str) -> bytes:
    """The file's bytes, or b"" if it cannot be read (the process is gone, or not ours)."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return b""


def pids() -> Iterator[int]:
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            yield int(entry)


def _fields(pid: int) -> list[str]:
    """The /proc/PID/stat fields after ``comm`` (0: state, 1: ppid), or [] if it is gone."""
    text = read(f"/proc/{pid}/stat").decode(errors="replace")
    return text.rpartition(")")[2].split() if text else []


def stat(pid: int) -> tuple[str, int] | None:
    """(state, ppid) of ``pid``, or None if it is gone."""
    fields = _fields(pid)
    return (fields[0], int(fields[1])) if fields else None


def alive(pid: int) -> bool:
    """``pid`` exists and is not a zombie (a zombie has exited)."""
    st = stat(pid)
    return st is not None and st[0] != "Z"


def threads(pid: int) -> list[int]:
    """The thread ids of process ``pid``."""
    try:
        return sorted(int(t) for t in os.listdir(f"/proc/{pid}/task"))
    except FileNotFoundError:
        return []


def children(pid: int) -> list[int]:
    """Live (not zombie) children of ``pid``."""
    out = []
    for child in pids():
        st = stat(child)
        if st and st[1] == pid and st[0] != "Z":
            out.append(child)
    return sorted(out)


def zombie_status(pid: int) -> str:
    """How a zombie ``pid`` ended ("exit 0", "signal 6"), if it is one (else "")."""
    fields = _fields(pid)
    if len(fields) < 50 or fields[0] != "Z":
        return ""
    code = int(fields[-1])  # exit_code, as waitpid() would report it
    return f"signal {code & 0x7F}" if code & 0x7F else f"exit {code >> 8}"


def tagged(mark: str, path: Path | None = None) -> list[int]:
    """Processes (not this one) whose environment holds ``mark`` (``VAR=tag``), or whose
    command line names ``path``."""
    me = os.getpid()
    env_mark = mark.encode()
    path_mark = str(path).encode() if path else None
    found = []
    for pid in pids():
        if pid == me:
            continue
        if env_mark in read(f"/proc/{pid}/environ").split(b"\0") or (
            path_mark and path_mark in read(f"/proc/{pid}/cmdline")
        ):
            found.append(pid)
    return found


def signal_all(pids: Sequence[int], sig: int = signal.SIGKILL) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def eventually(
    what: str, check: Callable[[], bool], timeout: float = 15.0, fail: bool = True
) -> bool:
    """Poll ``check`` until it is true (True) or ``timeout`` passes: then fail the test with
    ``what``, or return False if ``fail`` is false."""
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return True
        if time.monotonic() >= deadline:
            if fail:
                raise AssertionError(f"timed out after {timeout}s waiting for {what}")
            return False
        time.sleep(0.05)


def wait_gone(pids: Sequence[int], timeout: float) -> bool:
    """Whether every one of ``pids`` exited within ``timeout``."""
    return eventually("", lambda: not any(alive(p) for p in pids), timeout, fail=False)


def read_pid(pidfile: Path) -> int:
    return int(pidfile.read_text().split()[0])


# --------------------------------------------------------------------------- process trees


def table() -> dict[int, list[str]]:
    """pid -> its /proc/PID/stat fields after ``comm``, one snapshot of every process."""
    out = {pid: _fields(pid) for pid in pids()}
    return {pid: fields for pid, fields in out.items() if fields}


def tree(root: int, snapshot: dict[int, list[str]] | None = None) -> dict[int, list[str]]:
    """The process tree under ``root`` (root included), from one /proc snapshot."""
    snapshot = snapshot if snapshot is not None else table()
    kids: dict[int, list[int]] = {}
    for pid, f in snapshot.items():
        kids.setdefault(int(f[1]), []).append(pid)
    out: dict[int, list[str]] = {}
    todo = [root]
    while todo:
        pid = todo.pop()
        if pid in snapshot:
            out[pid] = snapshot[pid]
            todo.extend(kids.get(pid, []))
    return out


def tree_cpu_us(root: int) -> float:
    """utime+stime (+cutime+cstime: reaped children) of the whole tree, in microseconds."""
    ticks = sum(sum(int(x) for x in f[11:15]) for f in tree(root).values())
    return ticks * 1e6 / CLK_TCK


def tree_rss(root: int) -> int:
    """Sum of the tree's resident set sizes, in bytes (shared pages counted in every process)."""
    return sum(int(f[21]) for f in tree(root).values()) * PAGE
