"""What `pip install` gives a user: the installed distribution's metadata.

The suite runs against ferrocgi installed from its wheel (``pip install .``), so its metadata is
what PyPI and ``pip show`` would show.
"""

from __future__ import annotations

from importlib import metadata


def test_metadata_describes_the_project_and_offers_the_django_extra() -> None:
    meta = metadata.metadata("ferrocgi")
    assert "FastCGI" in meta["Summary"] and "Django" in meta["Summary"]
    assert "django" in meta.get_all("Provides-Extra", [])
    requires = metadata.requires("ferrocgi") or []
    extra = [r for r in requires if "extra ==" in r]
    assert len(extra) == 1 and extra[0].startswith("django>=4.2") and "django" in extra[0], requires
    classifiers = meta.get_all("Classifier", [])
    assert "Framework :: Django :: 5.2" in classifiers
    assert "Topic :: Internet :: WWW/HTTP :: WSGI :: Server" in classifiers
    assert "example.invalid" not in str(meta)
