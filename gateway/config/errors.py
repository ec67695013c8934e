"""Located problems in a YAML file, and the exceptions that carry them.

Every problem the gateway finds in a file the user wrote is a `ConfigIssue` that prints as one line,
`FILE:LINE: key.path: message`, so that editors and CI can jump to it. Exceptions carry the whole
list, because a user fixing a file wants every problem at once, not one per run.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass

from gateway.core.errors import UserError


@dataclass(frozen=True)
class ConfigIssue:
    """One problem at one place in a file; `line` is None when the problem is the whole file."""

    file: str
    line: int | None
    path: str
    message: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        if self.path:
            return escape_unprintable(f"{where}: {self.path}: {self.message}")
        return escape_unprintable(f"{where}: {self.message}")


# Line breaks, other control characters and lone surrogates: what a key or value written in a
# file may hold (a quoted YAML key "\n" is one), shown escaped so that an issue stays one line.
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")


def escape_unprintable(text: str) -> str:
    """`text` with every line break and control character escaped (`\\n`, `\\x00`)."""
    return _UNPRINTABLE.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


def sort_issues(issues: Iterable[ConfigIssue]) -> list[ConfigIssue]:
    """Issues in file order: by file (first seen first), then line; ties keep their pass order."""
    listed = list(issues)
    file_rank: dict[str, int] = {}
    for issue in listed:
        file_rank.setdefault(issue.file, len(file_rank))
    # Whole-file problems (no line) come first: they usually explain everything after them.
    return sorted(listed, key=lambda issue: (file_rank[issue.file], issue.line or 0))


class LocatedError(UserError):
    """Base of the user-facing errors about a file: one or more located issues.

    The command line catches this one class and prints `str(error)`: one line per issue.
    """

    def __init__(self, issues: Iterable[ConfigIssue]) -> None:
        self.issues: list[ConfigIssue] = sort_issues(issues)
        super().__init__("\n".join(str(issue) for issue in self.issues))

    def __str__(self) -> str:
        return "\n".join(str(issue) for issue in self.issues)


class ConfigError(LocatedError):
    """The config cannot be used: missing or unreadable file, bad YAML, schema or references."""


class YamlSourceError(LocatedError):
    """The file could not be read as YAML; callers re-raise its issues as their own error class."""


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`"; did you mean 'timing'?"` when a choice is close to `word`, else an empty string."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


def clip(text: str, limit: int = 80) -> str:
    """What a user wrote, fit to quote in a one-line message: escaped, and cut at `limit`."""
    text = escape_unprintable(text)
    return text if len(text) <= limit else text[: limit - 3] + "..."
