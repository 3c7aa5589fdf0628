"""Every option the docs' tables name exists, as `ferrocgi help` lists it.

In a table whose header has an ``option`` column, each row's backquoted name there claims an
option; an option the docs claim and the command does not know is a doc that fails as written.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import harness

DOCS = sorted((harness.ROOT / "docs").glob("*.md"))
NAME = re.compile(r"^`([a-z_]+)`$")


def cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def claimed(doc: Path) -> set[str]:
    names: set[str] = set()
    column: int | None = None
    for line in doc.read_text().splitlines():
        if not line.startswith("|"):
            column = None
        elif column is None:
            header = cells(line)
            column = header.index("option") if "option" in header else -1
        elif column >= 0 and not set(line) <= set("|-: "):
            row = cells(line)
            m = NAME.match(row[column]) if column < len(row) else None
            if m:
                names.add(m.group(1))
    return names


def test_every_option_in_a_docs_table_exists() -> None:
    help_text = subprocess.run(
        [str(harness.ferrocgi_command()), "help"], capture_output=True, text=True, check=True
    ).stdout
    known = set(re.findall(r"^\s+--?([a-z_]+)", help_text, re.M)) | set(
        re.findall(r"\b([a-z_]+)=", help_text)
    )
    missing = {doc.name: sorted(claimed(doc) - known) for doc in DOCS}
    missing = {k: v for k, v in missing.items() if v}
    assert not missing, f"options the docs name but `ferrocgi help` does not list: {missing}"


#: Names of documents that live outside this repository, and words that only make sense to
#: someone who has read them: docs and comments cite only what a reader here can open.
OUTSIDE = re.compile(
    r"FRONTENDS(\.md)?\b|STYLE\.md|DESIGN\.md|RUNFCGI\.md|docs/paths\.md|seeds'|guides'"
    r"|Portuguese|Spanish|/work/shared"
)
SOURCES = ["docs/*.md", "README.md", "crates/**/*.rs", "python/**/*.py", "tests/**/*.py",
           "tests/webservers/**/*", "scripts/*", "bench/**/*.py", "fuzz/**/*.rs"]  # fmt: skip


def test_docs_and_comments_cite_only_what_the_repository_holds() -> None:
    found = []
    for pattern in SOURCES:
        for path in sorted(harness.ROOT.glob(pattern)):
            if not path.is_file() or "target" in path.parts or path == Path(__file__):
                continue
            for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
                if OUTSIDE.search(line):
                    found.append(f"{path.relative_to(harness.ROOT)}:{n}: {line.strip()}")
    assert not found, "\n".join(found)
