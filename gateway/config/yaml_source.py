"""YAML text -> plain Python data, plus the line of every key and list item.

PyYAML's own loader keeps the last of two duplicate keys without a word, and plain values (ints,
booleans, None) cannot carry their position. So the document is composed into nodes and built here,
mapping by mapping: duplicates become errors citing both lines, and positions live beside the data
in a `SourceLines` table keyed by path.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gateway.config.errors import ConfigIssue, YamlSourceError

KeyPath = tuple[str | int, ...]

_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_MERGE_TAG = "tag:yaml.org,2002:merge"
# Aliases can expand a small file enormously ("billion laughs"); no config needs this many nodes.
_MAX_NODES = 200_000
# A config of 512 radios is about 100 KiB; parsing takes about a second per MiB.
MAX_FILE_BYTES = 2 * 1024 * 1024


def format_key_path(path: KeyPath) -> str:
    """`("patches", "border-tac", "members", 2)` -> `patches.border-tac.members.2`."""
    return ".".join(str(part) for part in path)


@dataclass
class SourceLines:
    """Line (1-based) of every key and list item of a document, keyed by path."""

    lines: dict[KeyPath, int] = field(default_factory=dict)

    def deepest_existing(self, path: KeyPath) -> KeyPath:
        """The longest prefix of `path` that is written in the file (the root `()` always is)."""
        for end in range(len(path), 0, -1):
            if path[:end] in self.lines:
                return path[:end]
        return ()

    def line_of(self, path: KeyPath) -> int | None:
        """Line of `path`, or of its nearest ancestor written in the file."""
        return self.lines.get(self.deepest_existing(path))


@dataclass
class YamlDocument:
    """A parsed file: its name as the user gave it, its plain data, and where each key is."""

    filename: str
    data: Any
    source: SourceLines

    @property
    def directory(self) -> Path:
        return Path(self.filename).parent

    def value_at(self, path: KeyPath) -> Any:
        """The data at `path`, or None if the path is not in the data."""
        value = self.data
        for part in path:
            in_mapping = isinstance(value, dict) and isinstance(part, str) and part in value
            in_list = isinstance(value, list) and isinstance(part, int) and 0 <= part < len(value)
            if not (in_mapping or in_list):
                return None
            value = value[part]
        return value

    def issue(self, path: KeyPath, message: str, *, trim: bool = False) -> ConfigIssue:
        """An issue at `path`; with `trim`, a path not written in the file is cut to what is.

        Trim paths that were derived from the data (a default, a string member written in short
        form); keep them whole for a missing key, whose full path is the useful news.
        """
        shown = self.source.deepest_existing(path) if trim else path
        return ConfigIssue(
            file=self.filename,
            line=self.source.line_of(path),
            path=format_key_path(shown),
            message=message,
        )


def _whole_file_issue(filename: str, message: str, line: int | None = None) -> YamlSourceError:
    return YamlSourceError([ConfigIssue(file=filename, line=line, path="", message=message)])


def read_yaml_file(path: str | os.PathLike[str]) -> YamlDocument:
    """Read and parse a YAML file; every failure is a `YamlSourceError` with one located line.
    Only a regular file of at most MAX_FILE_BYTES is read: a device (`/dev/zero`) would be read
    until memory runs out, a FIFO would block for ever, and a huge file would take minutes."""
    filename = os.fspath(path)
    if not filename:
        raise _whole_file_issue("''", "an empty path names no file")
    file_path = Path(filename)
    try:
        if file_path.is_dir():
            raise _whole_file_issue(filename, "is a directory, not a YAML file")
        if not stat.S_ISREG(file_path.stat().st_mode):
            raise _whole_file_issue(
                filename, "is not a regular file (a device, a FIFO or a socket): name a YAML file"
            )
        with file_path.open("rb") as file:
            raw = file.read(MAX_FILE_BYTES + 1)
        if len(raw) > MAX_FILE_BYTES:
            raise _whole_file_issue(
                filename,
                f"is larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB, far more than any site "
                "needs: is it the right file?",
            )
    except FileNotFoundError:
        raise _whole_file_issue(filename, "no such file") from None
    except PermissionError:
        raise _whole_file_issue(filename, "cannot read the file: permission denied") from None
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise _whole_file_issue(filename, f"cannot read the file: {reason}") from None
    try:
        # utf-8-sig: editors on Windows like to start files with a byte-order mark.
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        bad = raw[exc.start]
        raise _whole_file_issue(
            filename, f"the file is not UTF-8 text (byte 0x{bad:02x}); save it as UTF-8", line
        ) from None
    return parse_yaml_text(text, filename)


def parse_yaml_text(text: str, filename: str = "<string>") -> YamlDocument:
    """Parse YAML text into plain data and key lines; raises `YamlSourceError`."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        raise _yaml_syntax_error(exc, filename) from None
    except yaml.reader.ReaderError as exc:
        line = text[: exc.position].count("\n") + 1
        character = exc.character
        shown = f"U+{character:04X}" if isinstance(character, int) else repr(character)
        raise _whole_file_issue(
            filename, f"the file contains a character YAML does not allow ({shown})", line
        ) from None
    except yaml.YAMLError as exc:
        raise _whole_file_issue(filename, f"invalid YAML: {exc}") from None
    except RecursionError:
        raise _too_deep(text, filename) from None
    if node is None:
        return YamlDocument(filename=filename, data=None, source=SourceLines({(): 1}))
    builder = _DocumentBuilder(filename)
    try:
        data = builder.build(node, ())
    except RecursionError:
        raise _too_deep(text, filename) from None
    if builder.issues:
        raise YamlSourceError(builder.issues)
    builder.source.lines.setdefault((), node.start_mark.line + 1)
    return YamlDocument(filename=filename, data=data, source=builder.source)


# Deeper than this, a mapping or list is named as too deep (no config goes past ten levels).
_REPORTED_DEPTH = 100


def _too_deep(text: str, filename: str) -> YamlSourceError:
    """The error for a document nested deeper than the parser's recursion allows, at the line
    where it first goes past _REPORTED_DEPTH levels (found with the event parser, which does
    not recurse)."""
    depth = 0
    line: int | None = None
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                depth += 1
                if depth > _REPORTED_DEPTH:
                    mark = event.start_mark
                    line = mark.line + 1 if mark is not None else None
                    break
            elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                depth -= 1
    except yaml.YAMLError:
        pass
    return _whole_file_issue(
        filename, f"invalid YAML: nested more than {_REPORTED_DEPTH} levels deep", line
    )


def _yaml_syntax_error(exc: yaml.MarkedYAMLError, filename: str) -> YamlSourceError:
    mark = exc.problem_mark or exc.context_mark
    problem = exc.problem or exc.context or "cannot be parsed"
    where = ""
    line: int | None = None
    if mark is not None:
        line = mark.line + 1
        where = f" at column {mark.column + 1}"
    message = f"invalid YAML{where}: {problem}"
    if "'\\t'" in problem:
        message += " (YAML indents with spaces, not tabs)"
    elif exc.context and exc.problem and exc.context_mark is not None and line is not None:
        context_line = exc.context_mark.line + 1
        if context_line != line:
            message += f" ({exc.context} at line {context_line})"
    return _whole_file_issue(filename, message, line)


class _DocumentBuilder:
    """Builds plain data from composed nodes, recording lines and collecting problems."""

    def __init__(self, filename: str) -> None:
        self.filename = filename
        self.source = SourceLines()
        self.issues: list[ConfigIssue] = []
        self._scalars = yaml.SafeLoader("")
        self._open_nodes: set[int] = set()
        self._node_count = 0

    def _problem(self, node: yaml.Node, path: KeyPath, message: str) -> None:
        self.issues.append(
            ConfigIssue(
                file=self.filename,
                line=node.start_mark.line + 1,
                path=format_key_path(path),
                message=message,
            )
        )

    def build(self, node: yaml.Node, path: KeyPath) -> Any:
        self._node_count += 1
        if self._node_count > _MAX_NODES:
            if self._node_count == _MAX_NODES + 1:
                self._problem(node, path, "the document is too large once aliases are expanded")
            return None
        if id(node) in self._open_nodes:
            self._problem(node, path, "an alias refers to the mapping or list that contains it")
            return None
        if isinstance(node, yaml.ScalarNode):
            return self._build_scalar(node, path)
        self._open_nodes.add(id(node))
        try:
            if isinstance(node, yaml.MappingNode):
                if node.tag != _MAP_TAG:
                    self._problem(node, path, f"unsupported YAML tag {node.tag!r} on a mapping")
                return self._build_mapping(node, path)
            if isinstance(node, yaml.SequenceNode):
                if node.tag != _SEQ_TAG:
                    self._problem(node, path, f"unsupported YAML tag {node.tag!r} on a list")
                items: list[Any] = []
                for index, item in enumerate(node.value):
                    self.source.lines.setdefault((*path, index), item.start_mark.line + 1)
                    items.append(self.build(item, (*path, index)))
                return items
        finally:
            self._open_nodes.discard(id(node))
        return None  # pragma: no cover - the composer makes only the three node kinds

    def _build_scalar(self, node: yaml.ScalarNode, path: KeyPath) -> Any:
        try:
            return self._scalars.construct_object(node)
        except yaml.MarkedYAMLError as exc:
            self._problem(node, path, f"invalid value: {exc.problem}")
        except ValueError as exc:
            # e.g. a timestamp like 2026-13-45 that the YAML grammar accepts but no calendar has
            self._problem(node, path, f"invalid value {node.value!r}: {exc}")
        return None

    def _build_mapping(self, node: yaml.MappingNode, path: KeyPath) -> dict[str, Any]:
        result: dict[str, Any] = {}
        first_line: dict[str, int] = {}
        merged: list[tuple[yaml.Node, KeyPath]] = []
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                merged.append((value_node, path))
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                self._problem(key_node, path, "a key must be a plain name, not a mapping or list")
                continue
            # Keys are taken as written: `911:` is the name "911", and `no:` is not False.
            key = str(key_node.value)
            line = key_node.start_mark.line + 1
            key_path = (*path, key)
            if key in first_line:
                self._problem(
                    key_node,
                    key_path,
                    f"duplicate key '{key}' (first at line {first_line[key]}); "
                    "YAML would silently keep only the last, so remove one",
                )
                continue
            first_line[key] = line
            # setdefault: explicit keys come first, so a merged-in key never moves their line
            self.source.lines.setdefault(key_path, line)
            result[key] = self.build(value_node, key_path)
        # `<<: *defaults` fills in keys not written explicitly (YAML merge keys).
        for merge_node, merge_path in merged:
            is_list = isinstance(merge_node, yaml.SequenceNode)
            for source in merge_node.value if is_list else [merge_node]:
                if not isinstance(source, yaml.MappingNode):
                    self._problem(source, merge_path, "'<<' merges only mappings")
                    continue
                for key, value in self._build_mapping(source, merge_path).items():
                    result.setdefault(key, value)
        return result
