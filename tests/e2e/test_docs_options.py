"""Every option the docs name is one ``ferrocgi help`` lists, and the limit tables say what
``ferrocgi help`` says.

- an inline code span that starts with ``name=`` (``socket_mode=660``) and every ``name=`` word
  of a shell line that runs ``ferrocgi`` or ``runfcgi``, in README.md and docs/*.md, must be an
  option;
- the option column of the tables in docs/protocols.md ("Limits") and docs/security.md
  ("Limits", "Timeouts") names real options, with ``ferrocgi help``'s default, and every option
  ``ferrocgi help`` lists under "limits" appears in docs/security.md's tables.
- in any docs table whose header has an ``option`` column, each backquoted name there is an
  option;
- docs and comments cite only what a reader of this repository can open.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from support import harness

ROOT = harness.ROOT
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
HELP_LINE = re.compile(r"^  ([a-z_]+)=\S+\s+\(--[\w-]+, FERROCGI_\w+\)\s+\[default: (.*)\]$")
INLINE = re.compile(r"`([a-z_]+)=[^`]*`")
WORD = re.compile(r"(?:^|\s)([a-z_]+)=")
# ``name=value`` words the docs show that are not ferrocgi's: the generic spelling itself, and
# Apache's ProxyPass / BalancerMember parameters (``enablereuse=on``, ``ping=``, ``secret=``),
# nginx's upstream server parameters (``max_fails=``, ``fail_timeout=``).
NOT_OPTIONS = {"name", "key", "enablereuse", "ping", "secret", "max_fails", "fail_timeout"}


def help_text() -> str:
    done = subprocess.run(
        [str(harness.ferrocgi_command()), "help"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def help_options() -> dict[str, str]:
    """option name -> default, as ``ferrocgi help`` prints them."""
    found = {}
    for line in help_text().splitlines():
        m = HELP_LINE.match(line)
        if m:
            found[m.group(1)] = m.group(2)
    assert len(found) > 30, f"could not parse `ferrocgi help`:\n{help_text()}"
    return found


def help_sections() -> dict[str, list[str]]:
    """section title (lower case, without the colon) -> option names under it."""
    sections: dict[str, list[str]] = {}
    current = ""
    for line in help_text().splitlines():
        if line and not line.startswith(" ") and line.endswith(":"):
            current = line[:-1].lower()
        m = HELP_LINE.match(line)
        if m:
            sections.setdefault(current, []).append(m.group(1))
    return sections


def named_in_docs() -> list[tuple[str, str]]:
    """(doc, option) for every option-looking word the docs show."""
    found = []
    for doc in DOCS:
        text = doc.read_text()
        found += [(doc.name, m.group(1)) for m in INLINE.finditer(text)]
        for line in text.splitlines():
            if re.search(r"(^|[\s/])(ferrocgi|\./manage\.py runfcgi|manage\.py runfcgi) ", line):
                code = line.split("#", 1)[0]
                found += [(doc.name, m.group(1)) for m in WORD.finditer(code)]
    return sorted(set(found))


def test_every_option_named_in_the_docs_exists() -> None:
    options = help_options()
    named = named_in_docs()
    assert any(o == "socket_mode" for _d, o in named), "the scan found nothing: fix the test"
    unknown = [(d, o) for d, o in named if o not in options and o not in NOT_OPTIONS]
    assert not unknown, f"options named in the docs that `ferrocgi help` does not list: {unknown}"


def table_rows(doc: str, heading: str) -> list[list[str]]:
    """The rows (cells stripped) of the first table under ``## heading`` in docs/DOC."""
    text = (ROOT / "docs" / doc).read_text()
    section = text.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("|")]
    return [[c.strip() for c in r.strip("|").split("|")] for r in rows[2:]]


def same_default(doc_value: str, help_value: str) -> bool:
    """``256 KiB`` is ``256K``, ``60 s`` is ``60s``, ``off`` is ``none``."""

    def norm(v: str) -> str:
        v = v.strip("`").replace(" ", "").replace("iB", "").lower()
        return {"off": "none"}.get(v, v)

    return norm(doc_value) == norm(help_value)


LIMIT_TABLES = [
    ("protocols.md", "Limits", 1, 2),
    ("security.md", "Limits", 0, 1),
    ("security.md", "Timeouts", 0, 1),
]


@pytest.mark.parametrize("doc, heading, col, default_col", LIMIT_TABLES)
def test_limit_table_is_true_to_help(doc: str, heading: str, col: int, default_col: int) -> None:
    options = help_options()
    rows = table_rows(doc, heading)
    assert rows, f"docs/{doc} has no table under ## {heading}"
    for row in rows:
        cell = row[col]
        m = re.fullmatch(r"`([a-z_]+)`", cell)
        if not m:
            # Not an option: only for a limit that is fixed, said so in words.
            assert cell == "(fixed)" or not cell.startswith("`"), (doc, row)
            assert cell != "—", f"docs/{doc}: a limit without its option: {row}"
            continue
        name = m.group(1)
        assert name in options, f"docs/{doc}: {name} is not an option of `ferrocgi help`"
        assert same_default(row[default_col], options[name]), (
            f"docs/{doc}: {name} default {row[default_col]!r}, `ferrocgi help` says "
            f"{options[name]!r}"
        )


def test_every_limit_option_is_in_the_security_tables() -> None:
    sections = help_sections()
    limits = next((names for title, names in sections.items() if "limit" in title), None)
    assert limits, f"`ferrocgi help` has no limits section: {list(sections)}"
    documented = {
        re.sub(r"`", "", row[0])
        for heading in ("Limits", "Timeouts")
        for row in table_rows("security.md", heading)
    }
    missing = [name for name in limits if name not in documented]
    assert not missing, f"limits in `ferrocgi help` missing from docs/security.md: {missing}"


TABLE_NAME = re.compile(r"^`([a-z_]+)`$")


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
            m = TABLE_NAME.match(row[column]) if column < len(row) else None
            if m:
                names.add(m.group(1))
    return names


def test_every_option_in_a_docs_table_exists() -> None:
    options = help_options()
    missing = {doc.name: sorted(claimed(doc) - set(options)) for doc in DOCS}
    missing = {k: v for k, v in missing.items() if v}
    assert not missing, f"options in the docs' tables that `ferrocgi help` lacks: {missing}"


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
