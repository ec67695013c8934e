"""Citations of Markdown documents in the code point into the repository: every `*.md` file named
in gateway/, hardware/, codecs/, tests/, bench/ or README.md exists at that path from the
repository's root, and every heading a citation names exists in that file.

A citation is a path ending in `.md`, optionally followed by headings in double quotes, each after
a comma: `docs/protocols.md, "Icom CI-V"` or `docs/design.md, "Duplex", "Floor policies"`. A
citation may wrap onto the next comment line (`# "Floor policies"`). Headings are compared with
the text of the document's `#` headings exactly, so renaming a heading fails here until the
citations follow.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest


def _repository_root() -> Path:
    """The folder holding pyproject.toml, however deep this test module sits."""
    for folder in Path(__file__).resolve().parents:
        if (folder / "pyproject.toml").is_file():
            return folder
    raise RuntimeError("no pyproject.toml above this test")


ROOT = _repository_root()
SCANNED_FOLDERS = ("gateway", "hardware", "codecs", "tests", "bench")
SCANNED_FILES = ("README.md",)
# Text files only: test data also holds audio and G.711 reference files. Markdown inside the
# scanned folders (tests/data/g711/README.md) describes where external data came from and names
# that source's own files, so it is not scanned.
TEXT_SUFFIXES = frozenset({".py", ".pyi", ".yaml", ".yml", ".toml", ".cfg", ".ini", ".txt", ".sh"})

# A relative path ending in .md (not part of a URL or an absolute path), then any quoted headings,
# each after a comma, possibly across a line break and a comment's `#`.
_CITATION = re.compile(
    r"""(?<![\w/.:-])(?P<path>[\w.-]+(?:/[\w.-]+)*\.md)\b"""
    r"""(?P<headings>(?:,[ \t]*(?:\n[ \t]*\#?[ \t]*)?"[^"\n]+")*)"""
)
_HEADING_TEXT = re.compile(r'"([^"\n]+)"')
# One more heading begun after a citation but not closed on its line: a heading split by a line
# wrap, which the pattern above cannot read (and would otherwise let pass unchecked).
_OPEN_HEADING = re.compile(r',[ \t]*(?:\n[ \t]*\#?[ \t]*)?"[^"\n]*\n')
_MARKDOWN_HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t]*#*[ \t]*$")


class Citation(NamedTuple):
    source: str  # where it was found: path:line
    document: str  # the cited path, from the repository's root
    headings: tuple[str, ...]
    split_heading: bool  # a heading after these is wrapped across lines


def citations_in(text: str, source: str) -> Iterator[Citation]:
    """Every citation of a .md file in `text`, with the headings it names."""
    for match in _CITATION.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        headings = tuple(_HEADING_TEXT.findall(match.group("headings")))
        split = _OPEN_HEADING.match(text, match.end()) is not None
        yield Citation(f"{source}:{line}", match.group("path"), headings, split)


def headings_of(markdown: str) -> set[str]:
    """The text of every `#` heading outside fenced code blocks."""
    found: set[str] = set()
    fenced = False
    for line in markdown.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        match = None if fenced else _MARKDOWN_HEADING.match(line)
        if match:
            found.add(match.group(1))
    return found


def _scanned_files() -> Iterator[Path]:
    for name in SCANNED_FILES:
        yield ROOT / name
    for folder in SCANNED_FOLDERS:
        for path in sorted((ROOT / folder).rglob("*")):
            if path.is_file() and path.suffix in TEXT_SUFFIXES and ".venv" not in path.parts:
                yield path


def _all_citations() -> list[Citation]:
    found: list[Citation] = []
    for path in _scanned_files():
        source = str(path.relative_to(ROOT))
        found.extend(citations_in(path.read_text(encoding="utf-8"), source))
    return found


CITATIONS = _all_citations()


def test_the_code_cites_its_documents() -> None:
    """The scan finds the citations it is meant to check (a broken pattern would pass vacuously)."""
    documents = {citation.document for citation in CITATIONS}
    assert {"docs/protocols.md", "docs/design.md"} <= documents
    assert any(citation.headings for citation in CITATIONS)


def test_every_cited_document_is_in_the_repository() -> None:
    missing = [
        f"{citation.source}: {citation.document}"
        for citation in CITATIONS
        if not (ROOT / citation.document).is_file()
    ]
    assert not missing, "cited documents that are not in the repository:\n" + "\n".join(missing)


def test_no_cited_heading_is_split_across_lines() -> None:
    split = [f"{c.source}: {c.document}" for c in CITATIONS if c.split_heading]
    assert not split, "keep each cited heading on one line:\n" + "\n".join(split)


def test_every_cited_heading_exists() -> None:
    headings: dict[str, set[str]] = {}
    missing = []
    for citation in CITATIONS:
        document = ROOT / citation.document
        if not citation.headings or not document.is_file():
            continue  # a missing document is the test above's failure
        known = headings.setdefault(
            citation.document, headings_of(document.read_text(encoding="utf-8"))
        )
        missing += [
            f'{citation.source}: {citation.document}, "{heading}"'
            for heading in citation.headings
            if heading not in known
        ]
    assert not missing, "cited headings that the documents lack:\n" + "\n".join(missing)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('see docs/design.md, "Duplex".', [("docs/design.md", ("Duplex",))]),
        (
            '# Rules (docs/design.md, "Timing rules per port", "Duplex",\n# "Floor policies"):',
            [("docs/design.md", ("Timing rules per port", "Duplex", "Floor policies"))],
        ),
        ("written from README.md and the manual", [("README.md", ())]),
        ('docs/protocols.md, "USRP" and "RTP"', [("docs/protocols.md", ("USRP",))]),
        ("https://example.org/guide.md and /usr/share/doc/x.md", []),
    ],
)
def test_citations_are_read_with_the_headings_they_name(
    text: str, expected: list[tuple[str, tuple[str, ...]]]
) -> None:
    assert [(c.document, c.headings) for c in citations_in(text, "example")] == expected


def test_a_heading_split_by_a_line_wrap_is_caught() -> None:
    document = "docs/design" + ".md"  # spelled apart, so the scan of this file does not see it
    (whole,) = citations_in(f'{document}, "Floor policies".', "example")
    (split,) = citations_in(f'{document}, "Floor\npolicies".', "example")
    assert not whole.split_heading
    assert split.split_heading


def test_headings_are_read_outside_code_blocks() -> None:
    markdown = "# Title\n\n## Icom CI-V\n\n```\n# not a heading\n```\n### Duplex ###\n"
    assert headings_of(markdown) == {"Title", "Icom CI-V", "Duplex"}
