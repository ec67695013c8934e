"""Lint, format and type checks run as part of the tests, so CI enforces them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support.paths import ROOT

BIN = Path(sys.executable).parent


def _run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)


def test_ruff_lint() -> None:
    result = _run(str(BIN / "ruff"), "check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format() -> None:
    result = _run(str(BIN / "ruff"), "format", "--check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy(tmp_path: Path) -> None:
    # codecs/ and hardware/ are installed as gateway.codecs and gateway.hardware (pyproject's
    # package-dir); mypy cannot follow that mapping through an editable install, so it checks a
    # tree of links laid out as the installed package.
    tree = tmp_path / "gateway"
    tree.mkdir()
    for entry in (ROOT / "gateway").iterdir():
        if entry.name != "__pycache__":
            (tree / entry.name).symlink_to(entry)
    (tree / "hardware").symlink_to(ROOT / "hardware")
    (tree / "codecs").symlink_to(ROOT / "codecs")
    result = subprocess.run(
        [str(BIN / "mypy"), "--config-file", str(ROOT / "pyproject.toml"), "-p", "gateway"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
