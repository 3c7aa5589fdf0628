"""Type stubs for the Rust extension module (keep in sync with crates/ferrocgi-py)."""

from collections.abc import Callable, Iterable, Iterator
from typing import Any

__version__: str

class ClientDisconnected(OSError):
    """The web server aborted the request or its connection was lost."""

class RequestTimeout(BaseException):
    """Raised in a request's thread when it runs past ``request_timeout`` (a BaseException, so
    ``except Exception`` in the application does not swallow it)."""

class InputStream:
    """``wsgi.input``: the request body, complete and read-only."""
    def read(self, size: int | None = None) -> bytes: ...
    def readline(self, size: int | None = None) -> bytes: ...
    def readlines(self, hint: int | None = None) -> list[bytes]: ...
    def __iter__(self) -> Iterator[bytes]: ...
    def __next__(self) -> bytes: ...
    def readable(self) -> bool: ...
    def seekable(self) -> bool: ...
    def close(self) -> None: ...

class ErrorStream:
    """``wsgi.errors``: lines go to the server's error log, tagged with the request."""
    def write(self, s: str) -> int: ...
    def writelines(self, lines: Iterable[str]) -> None: ...
    def flush(self) -> None: ...

class FileWrapper:
    """``wsgi.file_wrapper``: a real file is sent by Rust without holding the GIL."""
    def __init__(self, filelike: Any, blksize: int = 8192) -> None: ...
    def __iter__(self) -> Iterator[bytes]: ...
    def __next__(self) -> bytes: ...
    def close(self) -> None: ...

class WriteFn:
    def __call__(self, data: bytes) -> None: ...

class StartResponse:
    def __call__(
        self,
        status: str,
        headers: list[tuple[str, str]],
        exc_info: tuple[Any, Any, Any] | None = None,
    ) -> WriteFn: ...

def main(
    argv: list[str],
    flavor_name: str = "cli",
    app: Callable[..., Any] | None = None,
    loader: Callable[[str], Callable[..., Any]] | None = None,
) -> int:
    """Parse the words with the one option parser and serve; returns the exit status.
    ``flavor_name``: ``cli`` (an APP word), ``django`` (runfcgi's words) or ``embedded`` (the
    application given as ``app``). ``loader`` is called for the application after binding and
    the privilege drop, with the ``interface=`` asked for (``auto``, ``wsgi`` or ``asgi``)."""

def check(argv: list[str], flavor_name: str = "cli") -> int | None:
    """Parse without serving: prints help/version/the error and returns its status, or None."""

def help_text(flavor_name: str = "cli") -> str:
    """Every option with its default."""
