"""An application module that fails at import time (``tests/e2e/test_cli.py``)."""


def explode_at_import() -> None:
    raise RuntimeError("broken module: raised at import time")


explode_at_import()
application = None
