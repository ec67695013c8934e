"""A dispatcher's or technician's command starts fast: the thin clients load neither the engine
nor the signal-processing stack (numpy, scipy), which only the daemon and the audio tools need."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.paths import ROOT

HEAVY = ("numpy", "scipy", "gateway.core.engine", "gateway.run.daemon", "gateway.run.announcements")

PROBE = f"""
import json, sys
from gateway.cli import run
code = run(sys.argv[1:])
print(json.dumps({{"code": code, "heavy": [m for m in {HEAVY!r} if m in sys.modules]}}))
"""


def probe(args: list[str]) -> tuple[dict[str, Any], str]:
    """Runs the CLI with `args` in a fresh interpreter: (its exit code and the heavy modules it
    loaded, its stderr)."""
    result = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
    )
    report: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return report, result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["status"],
        ["status", "--json"],
        ["patch", "list"],
        ["patch", "enable", "border-tac"],
        ["reload"],
        ["port", "key-test", "rcmp-1"],
    ],
    ids=lambda a: " ".join(a),
)
def test_thin_clients_load_no_engine_nor_dsp(args: list[str], tmp_path: Path) -> None:
    # No daemon listens: the command fails in one line, having loaded only what it needs.
    report, stderr = probe([*args, "--socket", str(tmp_path / "control.sock")])
    assert report["code"] == 1, stderr
    assert "no crosspatch daemon is listening" in stderr
    assert report["heavy"] == []


def test_thin_client_with_a_config_loads_no_engine_nor_dsp() -> None:
    report, stderr = probe(["status", "--config", str(ROOT / "config" / "demo.yaml")])
    assert report["code"] == 1 and report["heavy"] == [], stderr
