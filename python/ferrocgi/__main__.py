"""The ``ferrocgi`` command and ``python -m ferrocgi``: a thin shim, every word goes to Rust."""

import sys

from ferrocgi import _ferrocgi


def main() -> None:
    sys.exit(_ferrocgi.main(sys.argv[1:], "cli"))


if __name__ == "__main__":
    main()
