"""flup 1.0.3 FastCGI server for the benchmark: ``flup_server.py threaded|prefork ADDRESS``.

ADDRESS is ``HOST:PORT`` or a Unix socket path. Threaded: one process, up to 256 threads (flup
holds a thread per connection: with fewer threads than nginx's kept-alive connections it resets
the extra ones, which nginx answers with 502).
Prefork: exactly 2 worker processes (minSpare = maxSpare = maxChildren = 2).
"""

import sys

from benchapp import application


def main() -> None:
    mode, address = sys.argv[1], sys.argv[2]
    bind: str | tuple[str, int]
    if address.startswith("/"):
        bind = address
    else:
        host, port = address.rsplit(":", 1)
        bind = (host, int(port))
    if mode == "threaded":
        from flup.server.fcgi import WSGIServer

        WSGIServer(application, bindAddress=bind, umask=0, maxThreads=256, debug=False).run()
    else:
        from flup.server.fcgi_fork import WSGIServer as ForkServer

        ForkServer(
            application, bindAddress=bind, umask=0, minSpare=2, maxSpare=2, maxChildren=2, debug=False
        ).run()


if __name__ == "__main__":
    main()
