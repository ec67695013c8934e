"""Load a config file and report every problem in it, each as one located line.

Passes run in order: read the file, parse YAML (with duplicate keys), validate the schema
(pydantic), then check references across sections. A file that cannot be read or parsed stops
there; schema errors do not stop the reference checks, which run on every entry that passed
(`_valid_part`), so a technician sees all of a file's errors in one run.
"""

from __future__ import annotations

import copy
import os
import re
import types
import typing
from collections.abc import Sequence
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from gateway.config.errors import (
    ConfigError,
    ConfigIssue,
    LocatedError,
    YamlSourceError,
    did_you_mean,
)
from gateway.config.files import announcement_problems, key_file_problems
from gateway.config.models import RULE_ERROR, Config
from gateway.config.references import ReferenceProblem, Unchecked, check_references
from gateway.config.yaml_source import KeyPath, YamlDocument, parse_yaml_text, read_yaml_file

ModelT = TypeVar("ModelT", bound=BaseModel)

_CONFIG_SECTIONS = "gateway, agencies, radios, links, patches, access, mqtt, recording, metrics"


def load_config(path: str | os.PathLike[str], *, for_run: bool = False) -> Config:
    """Read, parse and check the config file at `path`; raises ConfigError listing every problem.

    With `for_run`, also the files only a running gateway reads (SRTP key files): `check` and
    `run` pass it, so that a config `check` accepts is one `run` starts; `simulate`, the demo
    and the radio tools, which open no link, do not.
    """
    try:
        document = read_yaml_file(path)
    except YamlSourceError as exc:
        raise ConfigError(exc.issues) from None
    cfg = _config_from_document(document)
    problems = _file_problems(cfg, document, for_run)
    issues = [document.issue(p.path, p.message, trim=True) for p in problems]
    if issues:
        raise ConfigError(issues)
    return cfg


def _file_problems(cfg: Config, document: YamlDocument, for_run: bool) -> list[ReferenceProblem]:
    """The files the config names that could not be used: sound files, and with `for_run` the
    SRTP key files.

    Checked where the config file's place is known (sound files are named relative to it), so
    a missing prompt or key is a located config error, not a refusal at start or a surprise at
    the first patch.
    """
    problems = announcement_problems(cfg, document.directory)
    if for_run:
        problems += key_file_problems(cfg)
    return problems


def parse_config_text(text: str, filename: str = "<string>") -> Config:
    """As `load_config`, from YAML text; `filename` is only used in the messages."""
    try:
        document = parse_yaml_text(text, filename)
    except YamlSourceError as exc:
        raise ConfigError(exc.issues) from None
    return _config_from_document(document)


def _config_from_document(document: YamlDocument) -> Config:
    require_mapping(document, "config", f"sections such as {_CONFIG_SECTIONS}", ConfigError)
    try:
        cfg = Config.model_validate(document.data)
    except ValidationError as exc:
        issues = issues_from_validation_error(exc, document, Config)
        part = _valid_part(document.data, exc)
        if part is not None:
            issues += _reference_issues(document, *part)
        raise ConfigError(issues) from None
    issues = _reference_issues(document, cfg, Unchecked())
    if issues:
        raise ConfigError(issues)
    return cfg


def _reference_issues(
    document: YamlDocument, cfg: Config, unchecked: Unchecked
) -> list[ConfigIssue]:
    return [
        document.issue(problem.path, problem.message, trim=True)
        for problem in check_references(cfg, unchecked)
    ]


# Sections that are mappings of named entries: an entry that fails the schema is left out alone.
_ENTRY_SECTIONS = ("agencies", "radios", "links", "patches")


def _valid_part(data: dict[str, Any], exc: ValidationError) -> tuple[Config, Unchecked] | None:
    """The config without what failed the schema, and what was left out; None if nothing is left
    that validates (a reference check on it would only guess).

    An unknown key is dropped alone (a typo must not hide the rest of its radio); any other error
    leaves out its whole entry (`radios.r1`), a broken section its section, and a broken gateway
    key its key (the gateway id, required, is replaced: no reference concerns it).
    """
    part = copy.deepcopy(data)
    sections: set[str] = set()
    entries: dict[tuple[str, str], None] = {}  # an ordered set
    gateway_keys: set[str] = set()
    for _attempt in range(3):  # what a removal uncovers (a required key) is met on the next try
        for error in exc.errors(include_url=False):
            loc = _data_path(error["loc"], error["type"])
            if not loc or not isinstance(loc[0], str):
                return None
            section = loc[0]
            if error["type"] == "extra_forbidden" and len(loc) >= 2:
                _drop_key(part, loc)
            elif section in _ENTRY_SECTIONS and len(loc) >= 2 and isinstance(loc[1], str):
                _drop_key(part, loc[:2])
                entries[(section, loc[1])] = None
            elif section == "gateway" and len(loc) >= 2 and isinstance(loc[1], str):
                gateway = part.get("gateway")
                if isinstance(gateway, dict):
                    gateway.pop(loc[1], None)
                    gateway_keys.add(loc[1])
                    if loc[1] == "id":
                        gateway["id"] = "unchecked"
            elif section in ("agencies", "gateway"):  # required: an empty stand-in
                part[section] = {} if section == "agencies" else {"id": "unchecked"}
                sections.add(section)
                if section == "gateway":
                    gateway_keys.add("frame_ms")
            else:
                part.pop(section, None)
                sections.add(section)
        try:
            cfg = Config.model_validate(part)
        except ValidationError as again:
            exc = again
            continue
        return cfg, Unchecked(frozenset(sections), tuple(entries), frozenset(gateway_keys))
    return None


def _drop_key(data: Any, path: KeyPath) -> None:
    for key in path[:-1]:
        try:
            data = data[key]
        except (KeyError, IndexError, TypeError):
            return
    if isinstance(data, dict):
        data.pop(path[-1], None)


def config_summary(cfg: Config) -> str:
    """One line for `crosspatch check`: what the site holds."""
    talkgroups = sum(len(agency.talkgroups) for agency in cfg.agencies.values())
    enabled = sum(1 for patch in cfg.patches.values() if patch.enabled)
    return (
        f"{cfg.gateway.id}: {_count(len(cfg.agencies), 'agency', 'agencies')}, "
        f"{_count(talkgroups, 'talkgroup')}, {_count(len(cfg.radios), 'radio')}, "
        f"{_count(len(cfg.links), 'link')}, {_count(len(cfg.patches), 'patch', 'patches')} "
        f"({enabled} enabled)"
        + (f", metrics on {cfg.metrics.listen}" if cfg.metrics is not None else "")
    )


def _count(number: int, singular: str, plural: str | None = None) -> str:
    return f"{number} {singular if number == 1 else plural or singular + 's'}"


def config_json_schema() -> dict[str, Any]:
    """The JSON Schema of the config file (for editors and `crosspatch schema`)."""
    schema = Config.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "crosspatch gateway configuration"
    return schema


# --- shared with the scenario loader -----------------------------------------------------------


def require_mapping(
    document: YamlDocument, what: str, expected: str, error: type[LocatedError]
) -> None:
    """The top level of a file must be a mapping; say so in one line if it is empty or not."""
    data = document.data
    if isinstance(data, dict):
        return
    if data is None:
        message = f"the file is empty; a {what} is a mapping of {expected}"
    else:
        message = (
            f"the top level of a {what} must be a mapping of {expected}, not {describe_value(data)}"
        )
    raise error([ConfigIssue(document.filename, document.source.line_of(()), "", message)])


def validate_document(
    model: type[ModelT], document: YamlDocument, error: type[LocatedError]
) -> ModelT:
    """Validate the document's data against `model`; raise `error` with every located problem."""
    try:
        return model.model_validate(document.data)
    except ValidationError as exc:
        raise error(issues_from_validation_error(exc, document, model)) from None


def issues_from_validation_error(
    exc: ValidationError, document: YamlDocument, model: type[BaseModel]
) -> list[ConfigIssue]:
    """One located issue per pydantic error, with a message a technician can act on."""
    issues: list[ConfigIssue] = []
    for error in exc.errors(include_url=False):
        path = _data_path(error["loc"], error["type"])
        message = _message(error, path, model)
        issues.append(
            document.issue(path, message, trim=_is_rewritten_value(error, path, document))
        )
    return issues


def _is_rewritten_value(error: ErrorDetails, path: KeyPath, document: YamlDocument) -> bool:
    """Whether the error is about a value written in a short form (a member as a plain string).

    Pydantic then reports it below what the file holds (`members.1.talkgroup` for `members.1`);
    its path is cut back to the written value. A missing key keeps its full path.
    """
    if error["type"] == "missing" or path in document.source.lines:
        return False
    written = document.value_at(document.source.deepest_existing(path))
    return written is not None and written == error.get("input")


def _data_path(loc: Sequence[int | str], kind: str = "") -> KeyPath:
    """The path into the file's data of a pydantic error's `loc`.

    Pydantic ends the loc of an error in a dict key with '[key]' and names validators in it
    ('function-after[_check(), Radio]'); a key written in the file may look the same, so only a
    last '[key]' of an error about a key's value is taken for the marker.
    """
    parts = [part for part in loc if not (isinstance(part, str) and _VALIDATOR_TAG.match(part))]
    if parts and parts[-1] == "[key]" and kind not in ("extra_forbidden", "missing"):
        parts.pop()
    return tuple(parts)


_VALIDATOR_TAG = re.compile(r"function-(after|before|wrap|plain)\[.*\]\Z", re.DOTALL)


# --- messages ----------------------------------------------------------------------------------


def describe_value(value: Any) -> str:
    """How a wrong value is shown in a message: short, and in YAML's words."""
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    shown = repr(value) if isinstance(value, str) else str(value)
    return shown if len(shown) <= 40 else shown[:37] + "..."


def _number(value: Any) -> str:
    """`3999.0` -> `3999`: bounds read as they would be written."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"{value:g}"
    return str(value)


def _field_name(path: KeyPath) -> str:
    """The key a message speaks of: `hang_ms`, or `bands_mhz item 1` inside a list."""
    for index in range(len(path) - 1, -1, -1):
        part = path[index]
        if isinstance(part, str):
            items = [str(item) for item in path[index + 1 :]]
            return f"{part} item {'.'.join(items)}" if items else part
    return "the value"


_TYPE_WORDS = {
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "finite_number": "a finite number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "string_type": "text",
    "list_type": "a list",
    "tuple_type": "a list",
    "dict_type": "a mapping (key: value)",
    "model_type": "a mapping (key: value)",
    "model_attributes_type": "a mapping (key: value)",
    "path_type": "a file path",
    "datetime_type": "a date and time like 2026-01-01T00:00:00Z",
    "datetime_parsing": "a date and time like 2026-01-01T00:00:00Z",
    "datetime_from_date_parsing": "a date and time like 2026-01-01T00:00:00Z",
}

_BOUND_WORDS = {
    "greater_than": ("gt", ">"),
    "greater_than_equal": ("ge", ">="),
    "less_than": ("lt", "<"),
    "less_than_equal": ("le", "<="),
}


def _message(error: ErrorDetails, path: KeyPath, model: type[BaseModel]) -> str:
    kind = error["type"]
    ctx = error.get("ctx", {})
    name = _field_name(path)
    value = error.get("input")
    if kind == RULE_ERROR:
        return error["msg"]
    if kind == "value_error":
        return str(ctx.get("error", error["msg"]))
    if kind == "missing":
        return f"missing required key '{path[-1]}'" if path else "a value is required"
    if kind == "extra_forbidden":
        return _unknown_key_message(path, model)
    if kind == "literal_error":
        return _choice_message(name, path, value, model, str(ctx.get("expected", "")))
    if kind in _BOUND_WORDS:
        bound_key, symbol = _BOUND_WORDS[kind]
        return (
            f"{name} must be {symbol} {_number(ctx.get(bound_key))} (got {describe_value(value)})"
        )
    if kind in ("too_short", "string_too_short"):
        minimum = ctx.get("min_length", 1)
        if kind == "string_too_short" and minimum == 1:
            return f"{name} must not be empty"
        return f"{name} must have at least {minimum} item(s) (got {ctx.get('actual_length')})"
    if kind == "too_long":
        return f"{name} must have at most {ctx.get('max_length')} items"
    if kind in _TYPE_WORDS:
        message = f"{name} must be {_TYPE_WORDS[kind]} (got {describe_value(value)})"
        if kind == "string_type" and isinstance(value, bool):
            message += "; YAML reads yes/no/on/off as true/false, so put the text in quotes"
        elif kind == "string_type" and isinstance(value, (int, float)):
            message += "; put it in quotes"
        return message
    return f"{name}: {error['msg']} (got {describe_value(value)})"


def _unknown_key_message(path: KeyPath, model: type[BaseModel]) -> str:
    if not path:
        return "unknown key"
    key = str(path[-1])
    allowed = _allowed_keys(_annotation_at(model, path[:-1]))
    if not allowed:
        return f"unknown key '{key}'"
    hint = did_you_mean(key, allowed) or "; expected one of: " + ", ".join(allowed)
    return f"unknown key '{key}'{hint}"


def _choice_message(
    name: str, path: KeyPath, value: Any, model: type[BaseModel], expected: str
) -> str:
    annotation = _annotation_at(model, path)
    if typing.get_origin(annotation) is Literal:
        choices = [str(choice) for choice in typing.get_args(annotation)]
        listed = ", ".join(choices)
        hint = did_you_mean(str(value), choices) if isinstance(value, str) else ""
        return f"{name} must be one of {listed} (got {describe_value(value)}){hint}"
    return f"{name} must be {expected} (got {describe_value(value)})"


def _unwrap(annotation: Any) -> Any:
    """Strip Annotated[...] and `| None` to the type that holds the data."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            options = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
            if len(options) != 1:
                return annotation
            annotation = options[0]
        else:
            return annotation


def _annotation_at(model: type[BaseModel], path: KeyPath) -> Any:
    """The declared type at `path` below `model`, or None where the path leaves the schema."""
    annotation: Any = model
    for part in path:
        annotation = _unwrap(annotation)
        origin = typing.get_origin(annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            field = _model_field(annotation, part)
            if field is None:
                return None
            annotation = field
        elif origin is dict:
            annotation = typing.get_args(annotation)[1]
        elif origin is list and isinstance(part, int):
            annotation = typing.get_args(annotation)[0]
        elif origin is tuple and isinstance(part, int):
            args = typing.get_args(annotation)
            annotation = args[0] if len(args) == 2 and args[1] is Ellipsis else args[part]
        else:
            return None
    return _unwrap(annotation)


def _model_field(model: type[BaseModel], key: str | int) -> Any:
    for field_name, field in model.model_fields.items():
        if key in (field_name, field.alias):
            return field.annotation
    return None


def _allowed_keys(annotation: Any) -> list[str]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [field.alias or name for name, field in annotation.model_fields.items()]
    return []
