"""The walls between the package's rooms: every import-linter contract of pyproject.toml holds,
a wall broken on purpose fails the check, and the port contract loads nothing else
(docs/architecture.md says the plan)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
# Where each top-level folder is installed (pyproject's package-dir).
INSTALLED_AS = {"gateway": "gateway", "hardware": "gateway/hardware", "codecs": "gateway/codecs"}


def package_tree(tmp_path: Path) -> Path:
    """A tree of links to the checkout's modules, laid out as the installed package.

    import-linter finds a package's modules by walking its folder; through the editable
    install it would see `gateway/` without `hardware/` and `codecs/`, which pyproject maps
    into it, and the contracts about them would check nothing.
    """
    tree = tmp_path / "tree"
    for folder, installed in INSTALLED_AS.items():
        for source in (ROOT / folder).rglob("*.py"):
            target = tree / installed / source.relative_to(ROOT / folder)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(source)
    return tree


def lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    # Run from the tree: lint-imports puts its working directory first on the import path.
    return subprocess.run(
        [str(BIN / "lint-imports"), "--no-cache", str(ROOT / "pyproject.toml")],
        cwd=tree,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_every_contract_holds(tmp_path: Path) -> None:
    result = lint_imports(package_tree(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout, result.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        ("gateway/core/events.py", "import gateway.run.loop", "The core imports nothing above it"),
        (
            "gateway/hardware/cat/radio.py",
            "from gateway.run.loop import EngineRuntime",
            "Hardware imports only the core, dsp, codecs and the port contract",
        ),
        ("gateway/codecs/base.py", "import gateway.core.engine", "Codecs import nothing"),
        ("gateway/config/loader.py", "import gateway.ports.simulated", "Config imports no runtime"),
        ("gateway/sim/demo.py", "import gateway.cli", "Nothing imports the CLI"),
        ("gateway/tools/radio.py", "import gateway.run.daemon", "Only the CLI imports the daemon"),
        ("gateway/control/router.py", "import gateway.mqtt.topics", "Rooms in layers"),
        ("gateway/ports/wiring.py", "import serial", "Only hardware and the technician tools"),
        ("gateway/run/daemon.py", "import aiomqtt", "Only the MQTT room speaks MQTT"),
        ("gateway/run/daemon.py", "import prometheus_client", "Only the daemon's metrics module"),
        ("gateway/codecs/g711.py", "import yaml", "The core and the codecs use no device"),
    ],
)
def test_a_broken_wall_fails(tmp_path: Path, module: str, line: str, contract: str) -> None:
    tree = package_tree(tmp_path)
    broken = tree / module
    text = broken.read_text(encoding="utf-8")
    broken.unlink()  # a copy in place of the link: the checkout stays as it is
    broken.write_text(f"{text}\n{line}\n", encoding="utf-8")
    result = lint_imports(tree)
    assert result.returncode != 0, result.stdout + result.stderr
    # import-linter's summary: one row a contract, `NAME KEPT` or `NAME BROKEN (...)`.
    broken_rows = [row for row in result.stdout.splitlines() if " BROKEN" in row]
    assert any(row.startswith(contract) for row in broken_rows), result.stdout


def test_the_port_contract_loads_nothing_else() -> None:
    # Hardware imports the contract: it must not drag in the engine, numpy or another room.
    probe = (
        "import json, sys, gateway.ports.contract; "
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith(('gateway', 'numpy')))))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert json.loads(result.stdout) == ["gateway", "gateway.ports", "gateway.ports.contract"]


def test_the_mqtt_publisher_process_loads_no_engine() -> None:
    # The publisher runs in a process of its own beside the engine's: it must not pay for (or
    # depend on) the engine, the patch control or the loop it only carries the news of.
    probe = (
        "import json, sys, gateway.mqtt.publisher; "
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('gateway'))))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    loaded = set(json.loads(result.stdout))
    unwanted = {"gateway.core.engine", "gateway.control.patch_control", "gateway.run.loop"}
    assert not loaded & unwanted, sorted(loaded & unwanted)
