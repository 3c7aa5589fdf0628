"""Shared plumbing for everything that starts ferrocgi and web servers outside cargo test:
the suites ``tests/e2e`` and ``tests/recipes``, ``fuzz/capture.py``, ``scripts/soak.py`` and
``bench/driver.py``.

Modules
-------
- ``harness``: processes started in their own session and stopped by group (``Proc``,
  ``spawn``, ``LIVE``), the echo and WSGI backends, the private nginx / Apache / lighttpd
  (``start_*`` for a backend, ``run_webserver`` for a rendered config), ``render``, HTTP
  replies.
- ``wire``: FastCGI, SCGI and AJP13 encoders and parsers, for tests that speak raw protocol.
- ``procfs``: ``/proc`` readers (state, children, tagged processes, CPU and RSS of a tree),
  ``eventually``, ``read_pid``.
- ``proc_server``: ferrocgi serving ``tests/apps/proc_app.py`` for the process-model tests
  (``ferrocgi``, ``Server``, ``Load``, raw FastCGI clients).
- ``cli``: the console script as a user runs it (``run``, ``serving``, ``project``).
- ``fixtures``: ``session_dir`` / ``rundir`` and the failure-report hook both conftests share.

How it is found
---------------
``tests/`` is the one directory on ``sys.path`` that holds it, and nothing inserts it at run
time:

- pytest: ``pythonpath = ["tests"]`` under ``[tool.pytest.ini_options]`` in the repository's
  ``pyproject.toml`` (pytest's rootdir, as ``scripts/test.sh`` runs it from the root).
- the scripts, started by path as their docs show (``python scripts/soak.py``): unless
  ``tests/`` is already on ``PYTHONPATH``, each puts it there and re-executes itself once
  (the four lines after its imports), so the interpreter starts with it on ``sys.path``.
"""
