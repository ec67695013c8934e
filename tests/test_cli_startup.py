"""A dispatcher's or technician's command starts fast: the thin clients load neither the engine
nor the signal-processing stack (numpy, scipy), which only the daemon and the audio tools need."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("numpy", "scipy", "gateway.engine", "gateway.daemon", "gateway.announcements")

PROBE = f"""
import json, sys
from gateway.cli import run
code = run(sys.argv[1:])
print(json.dumps({{"code": code, "heavy": [m for m in {HEAVY!r} if m in sys.modules]}}))
"""


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
    socket = tmp_path / "control.sock"
    result = subprocess.run(
        [sys.executable, "-c", PROBE, *args, "--socket", str(socket)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
    )
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["code"] == 1, result.stderr
    assert "no crosspatch daemon is listening" in result.stderr
    assert report["heavy"] == []


def test_thin_client_with_a_config_loads_no_engine_nor_dsp() -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, "status", "--config", str(ROOT / "config" / "demo.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
    )
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["code"] == 1 and report["heavy"] == [], result.stderr
