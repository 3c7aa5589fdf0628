"""Instructions per request of a ferrocgi server, counted by valgrind's callgrind.

Wall-clock numbers on a shared machine are noise; user-space instruction counts are not.
This starts ``ferrocgi APP method=...`` under ``valgrind --tool=callgrind`` (forked prefork
workers are followed), sends it N and then 3N FastCGI requests over kept-alive connections
straight from a small client (no nginx), and reports (instructions(3N) - instructions(N)) / 2N
summed over the server's processes, so start-up and shutdown cancel out. Kernel time (syscalls,
context switches) is not counted: pair it with ``perf stat -e task-clock`` when it matters.

    python3 bench/instructions.py --app hello --method threaded
    python3 bench/instructions.py --app post --method prefork --requests 500

The server is imported by ``--python`` (default: the bench venv's), which must have ferrocgi
installed; the WSGI app is ``bench/apps/benchapp.py`` (its ``hello``, ``payload`` and ``post``).
"""

import argparse
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
VENV = Path(os.environ.get("FERROCGI_BENCH_VENV", "/var/tmp/ferrocgi-bench-venv"))
METHODS = {
    "threaded": ["method=threaded", "threads=8"],
    "prefork": ["method=prefork", "maxchildren=2", "minspare=2", "maxspare=2"],
}


def record(rtype: int, content: bytes) -> bytes:
    return struct.pack("!BBHHBx", 1, rtype, 1, len(content), 0) + content


def pair(name: bytes, value: bytes) -> bytes:
    def length(n: int) -> bytes:
        return bytes([n]) if n < 128 else struct.pack("!I", n | 0x80000000)

    return length(len(name)) + length(len(value)) + name + value


def fcgi_request(path: bytes, body: bytes) -> bytes:
    """One keep-conn request with the params nginx's fastcgi_params would send."""
    params = {
        b"QUERY_STRING": b"",
        b"REQUEST_METHOD": b"POST" if body else b"GET",
        b"CONTENT_TYPE": b"application/octet-stream" if body else b"",
        b"CONTENT_LENGTH": str(len(body)).encode() if body else b"",
        b"SCRIPT_NAME": path,
        b"REQUEST_URI": path,
        b"DOCUMENT_URI": path,
        b"DOCUMENT_ROOT": b"/usr/share/nginx/html",
        b"SERVER_PROTOCOL": b"HTTP/1.1",
        b"REQUEST_SCHEME": b"http",
        b"GATEWAY_INTERFACE": b"CGI/1.1",
        b"SERVER_SOFTWARE": b"nginx/1.22.1",
        b"REMOTE_ADDR": b"127.0.0.1",
        b"REMOTE_PORT": b"41234",
        b"SERVER_ADDR": b"127.0.0.1",
        b"SERVER_PORT": b"8080",
        b"SERVER_NAME": b"localhost",
        b"REDIRECT_STATUS": b"200",
        b"HTTP_HOST": b"127.0.0.1:8080",
        b"HTTP_USER_AGENT": b"wrk",
    }
    block = b"".join(pair(k, v) for k, v in params.items())
    out = record(1, struct.pack("!HB5x", 1, 1)) + record(4, block) + record(4, b"")
    for i in range(0, len(body), 32768):
        out += record(5, body[i : i + 32768])
    return out + record(5, b"")


def drive(port: int, requests: int, connections: int, req: bytes) -> None:
    errors: list[str] = []

    def one(n: int) -> None:
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            f = s.makefile("rb")
            for _ in range(n):
                s.sendall(req)
                while True:
                    head = f.read(8)
                    if len(head) < 8:
                        errors.append("connection closed")
                        return
                    _, rtype, _, clen, plen = struct.unpack("!BBHHB", head[:7])
                    f.read(clen + plen)
                    if rtype == 3:  # FCGI_END_REQUEST
                        break

    threads = [threading.Thread(target=one, args=(requests // connections,)) for _ in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        sys.exit(f"client: {errors[0]}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def count(python: str, method: str, app: str, requests: int, connections: int, body: bytes) -> int:
    """Total instructions of every server process for a run of `requests` requests."""
    out = Path(tempfile.mkdtemp(prefix="ferrocgi-callgrind-"))
    port = free_port()
    cmd = [
        "valgrind",
        "--tool=callgrind",
        "-q",
        f"--callgrind-out-file={out}/cg.%p.out",
        python,
        "-m",
        "ferrocgi",
        "benchapp:application",
        f"pythonpath={HERE / 'apps'}",
        "host=127.0.0.1",
        f"port={port}",
        "log_level=warn",
        *METHODS[method],
    ]
    server = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(out / "server.log", "wb"))
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                socket.create_connection(("127.0.0.1", port)).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    sys.exit(f"server did not start; see {out}/server.log")
                time.sleep(0.5)
        req = fcgi_request(f"/{app}".encode(), body)
        drive(port, requests, connections, req)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=120)
    total = 0
    for f in out.glob("cg.*.out*"):
        m = re.search(rb"^(?:summary|totals): (\d+)", f.read_bytes(), re.M)
        total += int(m.group(1)) if m else 0
    shutil.rmtree(out)
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--app", choices=["hello", "payload", "post"], default="hello")
    ap.add_argument("--method", choices=sorted(METHODS), default="threaded")
    ap.add_argument("--requests", type=int, default=1000, help="N: the runs send N and 3N requests")
    ap.add_argument("--connections", type=int, default=4)
    ap.add_argument("--python", default=str(VENV / "bin" / "python"))
    args = ap.parse_args()
    body = b"x" * (16 * 1024) if args.app == "post" else b""
    n = args.requests
    small = count(args.python, args.method, args.app, n, args.connections, body)
    large = count(args.python, args.method, args.app, 3 * n, args.connections, body)
    per = (large - small) / (2 * n)
    print(f"{args.method} {args.app}: {per:,.0f} instructions/request (callgrind, {n} and {3 * n} requests)")


if __name__ == "__main__":
    main()
