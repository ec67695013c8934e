"""A dispatcher's or technician's command starts fast: the thin clients load neither the engine
nor the signal-processing stack (numpy, scipy), which only the daemon and the audio tools need.
And what goes wrong is the user's to fix is one line: every such error derives from `UserError`,
the one class the command line catches."""

from __future__ import annotations

import importlib
import inspect
import json
import pkgutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from gateway.core.errors import UnsupportedHardwareError, UserError
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


# The errors the command line once listed by module and class name, and the other one-line errors
# that can reach it: each must be a UserError, or a renamed class would become a traceback.
ONE_LINE_ERRORS = [
    ("gateway.cli", "UsageError"),
    ("gateway.cli", "DaemonRefused"),
    ("gateway.config", "ConfigError"),
    ("gateway.sim.scenario", "ScenarioError"),
    ("gateway.sim.simulate", "SimulationError"),
    ("gateway.dsp.signals", "AudioFileError"),
    ("gateway.core.engine", "EngineError"),
    ("gateway.core.errors", "UnsupportedHardwareError"),
    ("gateway.control.control_socket", "ControlError"),
    ("gateway.control.state_store", "StateStoreError"),
    ("gateway.hardware.cat.errors", "CatError"),
    ("gateway.hardware.cm108.gpio", "Cm108Error"),
    ("gateway.hardware.serial.lines", "SerialLinesError"),
    ("gateway.hardware.sound.devices", "SoundDeviceError"),
    ("gateway.run.announcements", "AnnouncementError"),
    ("gateway.dsp.sound_files", "SoundFileError"),
    ("gateway.hardware.keying", "KeyingError"),
    ("gateway.tools.audio", "AudioToolError"),
    ("gateway.mqtt.connect", "MqttSetupError"),
    ("gateway.mqtt.tail", "TailError"),
    ("gateway.links", "LinkError"),
]

# `*Error` classes that are not the user's to fix at the command line: each is caught where it is
# raised and counted, logged or re-raised as a UserError that says which link or file.
INTERNAL_ERRORS = {
    "gateway.codecs.base.CodecError",  # the codecs import nothing of the gateway; LinkError wraps
    "gateway.links.rtp.RtpError",  # a malformed packet: dropped and counted
    "gateway.links.usrp.UsrpError",  # likewise
    "gateway.links.srtp.SrtpError",  # a packet that fails authentication: dropped and counted
    "gateway.mqtt.outbox.OutboxError",  # a full outbox: logged by the publisher
}


@pytest.mark.parametrize(("module", "name"), ONE_LINE_ERRORS, ids=lambda v: v)
def test_one_line_errors_are_user_errors(module: str, name: str) -> None:
    assert issubclass(getattr(importlib.import_module(module), name), UserError)


def test_every_error_of_the_gateway_is_a_user_error_or_named_internal() -> None:
    import gateway.codecs
    import gateway.hardware

    errors: dict[str, type] = {}
    for package in (gateway, gateway.hardware, gateway.codecs):
        for info in pkgutil.walk_packages(package.__path__, f"{package.__name__}."):
            if info.name.endswith(".__main__"):
                continue  # a program, not a module to import
            module = importlib.import_module(info.name)
            for name, cls in inspect.getmembers(module, inspect.isclass):
                if name.endswith("Error") and cls.__module__ == info.name:
                    errors[f"{info.name}.{name}"] = cls
    assert errors.keys() >= INTERNAL_ERRORS, "an internal error was renamed or removed"
    not_user = [
        path
        for path, cls in errors.items()
        if path not in INTERNAL_ERRORS and not issubclass(cls, UserError)
    ]
    # Each of these: derive it from gateway.core.errors.UserError, or name it internal above.
    assert not_user == []


def test_unsupported_hardware_is_its_own_user_error() -> None:
    from gateway.sim.simulate import SimulationError

    assert issubclass(UnsupportedHardwareError, UserError)
    assert not issubclass(UnsupportedHardwareError, SimulationError)
