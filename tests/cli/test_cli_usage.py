"""The command line as a user meets it: `crosspatch` alone, help for every argument, and
`check --json` for scripts and CI."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from gateway.cli import _parser, run
from gateway.config import config_summary, load_config
from gateway.sim.demo import demo_config_path
from tests.support.sites import SIMULATED_SITE

CROSSPATCH = [sys.executable, "-m", "gateway.cli"]


def crosspatch(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CROSSPATCH, *args], capture_output=True, text=True, timeout=60, check=False
    )


def commands() -> dict[str, argparse.ArgumentParser]:
    parser = _parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def test_crosspatch_alone_prints_the_help_and_exits_2() -> None:
    # As git does (usage on stdout, a failing status): a script that lost its command fails.
    result = crosspatch()
    assert result.returncode == 2
    assert result.stderr == ""
    assert result.stdout.startswith("usage: crosspatch")
    for name in commands():
        assert f"\n    {name} " in result.stdout or f"\n    {name}\n" in result.stdout
    assert crosspatch("--help").returncode == 0
    assert crosspatch("-v").returncode == 2


def test_every_positional_argument_has_help() -> None:
    missing = [
        f"{name} {action.dest}"
        for name, parser in commands().items()
        for action in parser._actions
        if not action.option_strings and not action.help
    ]
    assert missing == []
    # And the help shows it.
    result = crosspatch("check", "--help")
    assert "the gateway's config file" in result.stdout


# --- check --json -------------------------------------------------------------------------------


def check_json(*args: str) -> tuple[int, dict[str, Any], str]:
    result = crosspatch("check", "--json", *args)
    return result.returncode, json.loads(result.stdout), result.stderr


def test_check_json_of_a_good_config_counts_what_the_site_holds() -> None:
    path = demo_config_path()
    code, report, err = check_json(str(path))
    assert (code, err) == (0, "")
    cfg = load_config(path)
    assert report == {
        "ok": True,
        "file": str(path),
        "gateway": "demo",
        "agencies": len(cfg.agencies),
        "talkgroups": sum(len(a.talkgroups) for a in cfg.agencies.values()),
        "radios": len(cfg.radios),
        "links": len(cfg.links),
        "patches": len(cfg.patches),
        "patches_enabled": sum(1 for p in cfg.patches.values() if p.enabled),
        "summary": config_summary(cfg),
    }
    # The text form says the same in its line.
    assert crosspatch("check", str(path)).stdout.strip().endswith(report["summary"])


def test_check_json_lists_every_error_as_the_text_form_does(tmp_path: Path) -> None:
    path = tmp_path / "site.yaml"
    bad = SIMULATED_SITE.replace("frame_ms: 20", "frame_ms: 7").replace(
        "tx_delay_ms: 150", "tx_delay_ms: soon", 1
    )
    path.write_text(bad)
    code, report, err = check_json(str(path))
    assert (code, err) == (1, "")
    assert report["ok"] is False and report["file"] == str(path)
    errors = report["errors"]
    assert len(errors) >= 2
    for error in errors:
        assert set(error) == {"file", "line", "path", "message"}
        assert error["file"] == str(path) and isinstance(error["line"], int)
    assert {e["path"].split(".")[0] for e in errors} == {"gateway", "radios"}
    # Object for object what the text form prints, line for line.
    text = crosspatch("check", str(path))
    assert text.returncode == 1
    assert text.stderr.splitlines() == [
        f"{e['file']}:{e['line']}: {e['path']}: {e['message']}" for e in errors
    ]


def test_check_json_of_a_missing_file_is_one_error_without_a_line(tmp_path: Path) -> None:
    code, report, err = check_json(str(tmp_path / "nope.yaml"))
    assert (code, err) == (1, "")
    (error,) = report["errors"]
    assert error["file"] == str(tmp_path / "nope.yaml") and error["line"] is None
    assert error["message"]


@pytest.mark.parametrize("action", ["levels", "tone"])
def test_json_on_an_audio_action_without_it_is_one_line(
    action: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["audio", action, "--json"]) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line == f"crosspatch audio: --json goes with audio devices, not audio {action}"
