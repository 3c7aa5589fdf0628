"""Every config the docs show is the very file the recipe tests run.

A doc block between ``<!-- include: PATH -->`` and ``<!-- end include -->`` must hold one
fenced code block whose text is exactly PATH's (placeholders such as ``@PORT@`` included);
every file in ``tests/webservers/recipes/`` must be shown somewhere.
"""

from __future__ import annotations

import re
from pathlib import Path

import kit
import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = sorted((ROOT / "docs").glob("*.md"))
INCLUDE = re.compile(r"<!-- include: (\S+) -->\n(.*?)<!-- end include -->", re.S)
FENCED = re.compile(r"\A```[\w-]*\n(.*)```\n\Z", re.S)


def blocks() -> list[tuple[str, str, str]]:
    return [
        (doc.name, m.group(1), m.group(2))
        for doc in DOCS
        for m in INCLUDE.finditer(doc.read_text())
    ]


def test_docs_exist() -> None:
    names = {d.name for d in DOCS}
    for name in ("nginx.md", "apache.md", "shared-hosting.md", "lighttpd.md"):
        assert name in names
    assert "migrating-from-flup.md" in names


@pytest.mark.parametrize("doc, path, block", blocks(), ids=lambda v: str(v)[:40])
def test_doc_block_is_the_file(doc: str, path: str, block: str) -> None:
    fenced = FENCED.match(block)
    assert fenced, f"{doc}: the include of {path} must be exactly one fenced code block"
    assert fenced.group(1) == (ROOT / path).read_text(), (
        f"{doc} shows an old copy of {path}: paste the file again between the markers"
    )


def test_every_recipe_config_is_documented() -> None:
    shown = {path for _doc, path, _block in blocks()}
    for f in sorted(kit.RECIPES.iterdir()):
        rel = str(f.relative_to(ROOT))
        assert rel in shown, f"{rel} is not shown in any doc (add an include block)"
