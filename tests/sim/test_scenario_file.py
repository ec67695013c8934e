"""Scenario files: the good one parses into sorted events; bad ones give located one-line issues."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.config import Config, ConfigIssue, LocatedError, load_config
from gateway.sim.scenario import (
    CarrierEvent,
    CommandEvent,
    ReceiveEvent,
    ScenarioError,
    load_scenario,
)
from tests.support import paths

DATA = paths.DATA / "scenarios"


@pytest.fixture(scope="module")
def cfg() -> Config:
    return load_config(DATA / "site.yaml")


def issues_of(tmp_path: Path, cfg: Config, text: str) -> list[ConfigIssue]:
    path = tmp_path / "scenario.yaml"
    path.write_text(text)
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path, cfg)
    return caught.value.issues


def line_of(text: str, needle: str) -> int:
    return next(number for number, line in enumerate(text.splitlines(), 1) if needle in line)


def test_good_scenario(cfg: Config) -> None:
    scenario = load_scenario(DATA / "border-tac.yaml", cfg)
    assert scenario.start == datetime(2026, 1, 1, tzinfo=UTC)
    assert scenario.duration_s == 30
    assert scenario.events == [
        CommandEvent(at=0.0, command="enable", patch="border-tac", principal="alice"),
        CommandEvent(at=0.0, command="approve", patch="border-tac", principal="bob"),
        ReceiveEvent(
            at=1.0, port="rcmp-1", tone_hz=1000.0, wav=None, level_dbfs=-12.0, seconds=3.0
        ),
        ReceiveEvent(
            at=6.0,
            port="usbp-1",
            tone_hz=None,
            wav=(DATA / "speech.wav").resolve(),
            level_dbfs=None,
            seconds=None,
        ),
        ReceiveEvent(
            at=6.0, port="to-blaine", tone_hz=None, wav=None, level_dbfs=None, seconds=1.5
        ),
        CarrierEvent(at=9.0, port="usbp-1", seconds=200.0),
        CommandEvent(at=29.5, command="disable", patch="border-tac", principal=None),
    ]


def test_defaults(tmp_path: Path, cfg: Config) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(
        "duration_s: 5\nevents:\n  - {at: 1, port: rcmp-1, receive: {tone_hz: 800, seconds: 1}}\n"
    )
    scenario = load_scenario(path, cfg)
    assert scenario.start == datetime(2000, 1, 1, tzinfo=UTC)
    assert scenario.events == [
        ReceiveEvent(at=1.0, port="rcmp-1", tone_hz=800.0, wav=None, level_dbfs=-12.0, seconds=1.0)
    ]
    path.write_text("duration_s: 5\nstart: 2026-06-01T12:00:00-07:00\n")
    assert load_scenario(path, cfg).start == datetime(2026, 6, 1, 19, tzinfo=UTC)


HEAD = 'start: "2026-01-01T00:00:00Z"\nduration_s: 30\nevents:\n'

# (id, events, text on the reported line, key path, part of the message)
BAD: list[tuple[str, str, str, str, str]] = [
    (
        "unknown-port",
        "  - {at: 1, port: rcmp-9, receive: {tone_hz: 1000, seconds: 1}}\n",
        "rcmp-9",
        "events.0.port",
        "port 'rcmp-9' is not in the config; did you mean 'rcmp-1'?",
    ),
    (
        "unknown-patch",
        "  - {at: 0, command: enable, patch: county}\n",
        "county",
        "events.0.patch",
        "patch 'county' is not in the config; the config has: border-tac",
    ),
    (
        "unknown-principal",
        "  - {at: 0, command: enable, patch: border-tac, as: carol}\n",
        "carol",
        "events.0.as",
        "'carol' is not a dispatcher or technician; access has: alice, bob, tech1",
    ),
    (
        "at-after-duration",
        "  - {at: 1, command: enable, patch: border-tac}\n"
        "  - {at: 31, port: usbp-1, carrier: {seconds: 1}}\n",
        "at: 31",
        "events.1.at",
        "at must be <= duration_s (30) (got 31)",
    ),
    (
        "negative-at",
        "  - {at: -1, port: usbp-1, carrier: {seconds: 1}}\n",
        "at: -1",
        "events.0.at",
        "at must be >= 0 (got -1)",
    ),
    (
        "missing-wav",
        "  - at: 2\n    port: usbp-1\n    receive:\n      wav: nowhere.wav\n",
        "wav: nowhere.wav",
        "events.0.receive.wav",
        "no such file: ",
    ),
    (
        "not-a-wav",
        "  - at: 2\n    port: usbp-1\n    receive:\n      wav: scenario.yaml\n",
        "wav: scenario.yaml",
        "events.0.receive.wav",
        "is not a valid WAV file",
    ),
    (
        "receive-and-carrier",
        "  - at: 2\n    port: usbp-1\n    receive: {tone_hz: 1000, seconds: 1}\n"
        "    carrier: {seconds: 1}\n",
        "carrier:",
        "events.0.carrier",
        "an event does one thing; this one has receive and carrier: split it into two events",
    ),
    (
        "nothing-to-do",
        "  - {at: 2, port: usbp-1}\n",
        "at: 2",
        "events.0",
        "an event needs one of command, receive or carrier",
    ),
    (
        "bad-tone",
        "  - {at: 1, port: rcmp-1, receive: {tone_hz: 5000, seconds: 1}}\n",
        "tone_hz",
        "events.0.receive.tone_hz",
        "tone_hz must be <= 3999 (got 5000)",
    ),
    (
        "negative-seconds",
        "  - at: 1\n    port: usbp-1\n    carrier:\n      seconds: -2\n",
        "seconds: -2",
        "events.0.carrier.seconds",
        "seconds must be > 0 (got -2)",
    ),
    (
        "tone-without-seconds",
        "  - at: 1\n    port: rcmp-1\n    receive:\n      tone_hz: 1000\n",
        "receive:",
        "events.0.receive.seconds",
        "receive with tone_hz needs seconds",
    ),
    (
        "unknown-command",
        "  - {at: 0, command: enabel, patch: border-tac}\n",
        "enabel",
        "events.0.command",
        "command must be one of enable, disable, approve, deny (got 'enabel'); "
        "did you mean 'enable'?",
    ),
    (
        "command-without-patch",
        "  - {at: 0, command: enable}\n",
        "command: enable",
        "events.0.patch",
        "missing required key 'patch'",
    ),
    (
        "unknown-key",
        "  - {at: 0, command: enable, patch: border-tac, principal: alice}\n",
        "principal: alice",
        "events.0.principal",
        "unknown key 'principal'; expected one of: at, command, patch, as, port",
    ),
    (
        "loud-level",
        "  - {at: 1, port: rcmp-1, receive: {tone_hz: 1000, seconds: 1, level_dbfs: 3}}\n",
        "level_dbfs",
        "events.0.receive.level_dbfs",
        "level_dbfs must be <= 0 (got 3)",
    ),
]


@pytest.mark.parametrize(
    ("events", "line_text", "path", "message"),
    [case[1:] for case in BAD],
    ids=[case[0] for case in BAD],
)
def test_bad_scenario(
    tmp_path: Path, cfg: Config, events: str, line_text: str, path: str, message: str
) -> None:
    text = HEAD + events
    issues = issues_of(tmp_path, cfg, text)
    assert len(issues) == 1, "\n".join(map(str, issues))
    issue = issues[0]
    assert issue.file == str(tmp_path / "scenario.yaml")
    assert (issue.line, issue.path) == (line_of(text, line_text), path)
    assert message in issue.message
    assert str(issue) == f"{issue.file}:{issue.line}: {path}: {issue.message}"


def test_several_problems_at_once(tmp_path: Path, cfg: Config) -> None:
    text = HEAD + (
        "  - {at: 0, command: enable, patch: nope, as: mallory}\n"
        "  - {at: 1, port: rcmp-9, carrier: {seconds: 1}}\n"
        "  - {at: 2, port: usbp-1, receive: {wav: missing.wav}}\n"
    )
    issues = issues_of(tmp_path, cfg, text)
    assert [(issue.line, issue.path) for issue in issues] == [
        (4, "events.0.patch"),
        (4, "events.0.as"),
        (5, "events.1.port"),
        (6, "events.2.receive.wav"),
    ]


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("", 1, "the file is empty"),
        ("- at: 1\n", 1, "must be a mapping of duration_s, start and events"),
        ("duration_s: 5\nduration_s: 6\n", 2, "duplicate key 'duration_s' (first at line 1)"),
        ("events: [\n", 2, "invalid YAML"),
    ],
    ids=["empty", "list", "duplicate-key", "syntax"],
)
def test_whole_file_problems(
    tmp_path: Path, cfg: Config, text: str, line: int, message: str
) -> None:
    issues = issues_of(tmp_path, cfg, text)
    assert len(issues) == 1 and issues[0].line == line
    assert message in issues[0].message


def test_missing_duration_and_file(tmp_path: Path, cfg: Config) -> None:
    issues = issues_of(tmp_path, cfg, "events: []\n")
    assert [(issue.line, issue.path, issue.message) for issue in issues] == [
        (1, "duration_s", "missing required key 'duration_s'")
    ]
    with pytest.raises(ScenarioError) as caught:
        load_scenario(tmp_path / "absent.yaml", cfg)
    assert str(caught.value) == f"{tmp_path / 'absent.yaml'}: no such file"
    assert isinstance(caught.value, LocatedError)
