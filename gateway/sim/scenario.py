"""Scenario files for `crosspatch simulate`: timed commands, received audio and carrier.

The file is read with the config's machinery, so its problems are reported the same way: every
one at once, each as `FILE:LINE: key.path: message`. The shape is checked first; names (ports,
patches, users) and WAV files are checked against the config only once the shape is right.
"""

from __future__ import annotations

import os
import wave
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from gateway.config.errors import ConfigError, ConfigIssue, YamlSourceError, did_you_mean
from gateway.config.loader import require_mapping, validate_document
from gateway.config.models import Config, RuleProblems, StrictModel
from gateway.config.yaml_source import KeyPath, YamlDocument, read_yaml_file
from gateway.core.timing import SAMPLE_RATE

DEFAULT_START = datetime(2000, 1, 1, tzinfo=UTC)
MAX_DURATION_S = 86400.0
DEFAULT_TONE_LEVEL_DBFS = -12.0

Command = Literal["enable", "disable", "approve", "deny"]


class ScenarioError(ConfigError):
    """The scenario cannot be run: unreadable, malformed, or naming what the config lacks.

    A ConfigError subclass: both are located problems in a file the user wrote, and whoever
    prints one (the command line) prints the other the same way, one line per issue.
    """


# --- what the simulator reads ------------------------------------------------------------------


@dataclass(frozen=True)
class CommandEvent:
    """A patch command issued at `at` seconds by `principal` (None: a technician)."""

    at: float
    command: Command
    patch: str
    principal: str | None


@dataclass(frozen=True)
class ReceiveEvent:
    """A port receives audio with carrier from `at`: a tone, a WAV file, or silence.

    Exactly one source: `tone_hz` (with `seconds`), `wav` (an absolute path; it lasts as long as the
    file), or neither (silence for `seconds`). `level_dbfs` None means the WAV as recorded.
    """

    at: float
    port: str
    tone_hz: float | None
    wav: Path | None
    level_dbfs: float | None
    seconds: float | None


@dataclass(frozen=True)
class CarrierEvent:
    """A port has carrier without audio from `at` for `seconds` (a stuck or open squelch)."""

    at: float
    port: str
    seconds: float


ScenarioEvent = CommandEvent | ReceiveEvent | CarrierEvent


@dataclass(frozen=True)
class Scenario:
    start: datetime
    duration_s: float
    events: list[ScenarioEvent]


# --- the file's shape --------------------------------------------------------------------------


class _ReceiveSpec(StrictModel):
    tone_hz: float | None = Field(default=None, ge=1, le=SAMPLE_RATE / 2 - 1)
    level_dbfs: float | None = Field(default=None, le=0)
    seconds: float | None = Field(default=None, gt=0)
    wav: str | None = Field(default=None, min_length=1)
    silence: bool | None = None

    @model_validator(mode="after")
    def _check_source(self) -> _ReceiveSpec:
        problems = RuleProblems()
        sources = [
            key
            for key, given in (
                ("tone_hz", self.tone_hz is not None),
                ("wav", self.wav is not None),
                ("silence", self.silence is not None),
            )
            if given
        ]
        if not sources:
            problems.add(
                (),
                "receive needs one of tone_hz (with seconds), wav, or silence: true (with seconds)",
            )
        for extra in sources[1:]:
            problems.add(
                (extra,),
                f"receive takes one of tone_hz, wav or silence; this one has {sources[0]} and "
                f"{extra}",
            )
        if self.silence is False:
            problems.add(
                ("silence",), "silence: false means nothing; write silence: true or remove it"
            )
        if sources and sources[0] in ("tone_hz", "silence") and self.seconds is None:
            problems.add(("seconds",), f"receive with {sources[0]} needs seconds")
        if sources and sources[0] == "wav" and self.seconds is not None:
            problems.add(
                ("seconds",),
                "a wav plays for its own length: remove seconds",
                self.seconds,
            )
        if sources and sources[0] == "silence" and self.level_dbfs is not None:
            problems.add(("level_dbfs",), "silence has no level: remove level_dbfs")
        problems.raise_if_any("receive")
        return self


class _CarrierSpec(StrictModel):
    seconds: float = Field(gt=0)


class _EventSpec(StrictModel):
    at: float = Field(ge=0)
    command: Command | None = None
    patch: str | None = None
    principal: str | None = Field(default=None, alias="as")
    port: str | None = None
    receive: _ReceiveSpec | None = None
    carrier: _CarrierSpec | None = None

    @model_validator(mode="after")
    def _check_kind(self) -> _EventSpec:
        problems = RuleProblems()
        kinds = [key for key in ("command", "receive", "carrier") if getattr(self, key) is not None]
        if not kinds:
            problems.add((), "an event needs one of command, receive or carrier")
        for extra in kinds[1:]:
            problems.add(
                (extra,),
                f"an event does one thing; this one has {kinds[0]} and {extra}: "
                "split it into two events",
            )
        if kinds and kinds[0] == "command":
            if self.patch is None:
                problems.add(("patch",), "missing required key 'patch' (the patch to command)")
            if self.port is not None:
                problems.add(("port",), "port does not apply to a command", self.port)
        elif kinds:
            if self.port is None:
                problems.add(("port",), f"missing required key 'port' (the port to {kinds[0]})")
            for key, alias in (("patch", "patch"), ("principal", "as")):
                if getattr(self, key) is not None:
                    problems.add((alias,), f"{alias} applies only to a command", getattr(self, key))
        problems.raise_if_any("event")
        return self


class _ScenarioFile(StrictModel):
    start: datetime = DEFAULT_START
    duration_s: float = Field(gt=0, le=MAX_DURATION_S)
    events: list[_EventSpec] = Field(default_factory=list)

    @field_validator("start")
    @classmethod
    def _in_utc(cls, value: datetime) -> datetime:
        # A time without an offset is taken as UTC, the scenario's only clock.
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    @model_validator(mode="after")
    def _check_times(self) -> _ScenarioFile:
        problems = RuleProblems()
        for index, event in enumerate(self.events):
            if event.at > self.duration_s:
                problems.add(
                    ("events", index, "at"),
                    f"at must be <= duration_s ({self.duration_s:g}) (got {event.at:g})",
                    event.at,
                )
        problems.raise_if_any("scenario")
        return self


# --- loading -----------------------------------------------------------------------------------


def load_scenario(path: str | os.PathLike[str], cfg: Config) -> Scenario:
    """Read the scenario at `path` and check it against `cfg`; raises ScenarioError listing all."""
    try:
        document = read_yaml_file(path)
    except YamlSourceError as exc:
        raise ScenarioError(exc.issues) from None
    require_mapping(document, "scenario", "duration_s, start and events", ScenarioError)
    spec = validate_document(_ScenarioFile, document, ScenarioError)
    issues: list[ConfigIssue] = []
    events: list[ScenarioEvent] = []
    for index, event_spec in enumerate(spec.events):
        event = _resolve_event(event_spec, ("events", index), cfg, document, issues)
        if event is not None:
            events.append(event)
    if issues:
        raise ScenarioError(issues)
    # sorted() is stable: events at the same time keep their file order.
    events = sorted(events, key=lambda event: event.at)
    return Scenario(start=spec.start, duration_s=spec.duration_s, events=events)


def _resolve_event(
    spec: _EventSpec,
    path: KeyPath,
    cfg: Config,
    document: YamlDocument,
    issues: list[ConfigIssue],
) -> ScenarioEvent | None:
    """The event the simulator runs, or None after adding its problems to `issues`."""
    count = len(issues)
    if spec.command is not None:
        assert spec.patch is not None  # checked by _EventSpec
        if spec.patch not in cfg.patches:
            issues.append(
                document.issue((*path, "patch"), _unknown("patch", spec.patch, list(cfg.patches)))
            )
        if spec.principal is not None and not cfg.access.is_principal(spec.principal):
            users = [*cfg.access.dispatchers, *cfg.access.technicians]
            hint = did_you_mean(spec.principal, users) or (
                "; access has: " + (", ".join(users) or "nobody")
            )
            issues.append(
                document.issue(
                    (*path, "as"),
                    f"'{spec.principal}' is not a dispatcher or technician{hint}",
                )
            )
        if len(issues) > count:
            return None
        return CommandEvent(
            at=spec.at, command=spec.command, patch=spec.patch, principal=spec.principal
        )
    assert spec.port is not None  # checked by _EventSpec
    if spec.port not in cfg.ports():
        issues.append(document.issue((*path, "port"), _unknown("port", spec.port, cfg.ports())))
    if spec.carrier is not None:
        if len(issues) > count:
            return None
        return CarrierEvent(at=spec.at, port=spec.port, seconds=spec.carrier.seconds)
    receive = spec.receive
    assert receive is not None  # one of command, receive, carrier, checked by _EventSpec
    wav: Path | None = None
    if receive.wav is not None:
        wav = (document.directory / receive.wav).resolve()
        problem = _wav_problem(wav)
        if problem is not None:
            issues.append(document.issue((*path, "receive", "wav"), problem))
    if len(issues) > count:
        return None
    level = receive.level_dbfs
    if receive.tone_hz is not None and level is None:
        level = DEFAULT_TONE_LEVEL_DBFS
    return ReceiveEvent(
        at=spec.at,
        port=spec.port,
        tone_hz=receive.tone_hz,
        wav=wav,
        level_dbfs=level,
        seconds=receive.seconds,
    )


def _unknown(kind: str, name: str, known: list[str]) -> str:
    hint = did_you_mean(name, known) or (f"; the config has: {', '.join(known) or 'none'}")
    return f"{kind} '{name}' is not in the config{hint}"


def _wav_problem(path: Path) -> str | None:
    """Why `path` is not a readable WAV file, or None; reads the header only."""
    if not path.exists():
        return f"no such file: {path}"
    if path.is_dir():
        return f"{path} is a directory, not a WAV file"
    try:
        with wave.open(str(path), "rb") as reader:
            reader.getnframes()
    except wave.Error as exc:
        if "unknown format" in str(exc):
            # The stdlib reads integer PCM only; float and extensible WAVs are still WAVs.
            return _wav_problem_with_scipy(path)
        return f"{path} is not a valid WAV file ({exc})"
    except EOFError:
        return f"{path} is not a valid WAV file (it ends too soon)"
    except OSError as exc:
        return f"cannot read {path}: {exc.strerror or exc}"
    return None


def _wav_problem_with_scipy(path: Path) -> str | None:
    from scipy.io import wavfile  # imported here: only odd WAV formats need it

    try:
        # mmap: the samples are mapped, not read.
        wavfile.read(path, mmap=True)
    except (ValueError, OSError, EOFError) as exc:
        return f"{path} is not a WAV file this gateway can play ({exc})"
    return None
