"""The wheel a user installs: it carries the package data and builds without setuptools'
deprecation warnings, and it states the Python versions crosspatch is tested on."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from email.parser import HeaderParser
from pathlib import Path

from tests.support.paths import ROOT


def test_wheel_carries_package_data_and_states_what_it_needs(tmp_path: Path) -> None:
    # Built from a copy: setuptools leaves build/ and *.egg-info beside the sources.
    source = tmp_path / "source"
    shutil.copytree(
        ROOT,
        source,
        ignore=shutil.ignore_patterns(
            ".venv", ".git", "build", "*.egg-info", "__pycache__", ".*_cache"
        ),
    )
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    output = result.stdout + result.stderr
    assert "deprecated" not in output, output
    assert "is absent from the `packages` configuration" not in output, output

    (wheel,) = tmp_path.glob("crosspatch-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        (metadata_name,) = (n for n in names if n.endswith(".dist-info/METADATA"))
        metadata = HeaderParser().parsestr(archive.read(metadata_name).decode())
    # The demo's site, the type marker, the console's files and the packages installed from
    # codecs/ and hardware/.
    for name in (
        "gateway/data/demo.yaml",
        "gateway/py.typed",
        "gateway/console/static/index.html",
        "gateway/console/static/console.js",
        "gateway/console/static/console.css",
        "gateway/console/static/vendor/mqtt.min.js",
        "gateway/console/static/vendor/mqtt.LICENSE.md",
        "gateway/codecs/g711.py",
        "gateway/hardware/cat/kenwood.py",
    ):
        assert name in names
    assert metadata["License-Expression"] == "Apache-2.0"
    assert metadata["Requires-Python"] == "<3.14,>=3.11"
    # pydub imports audioop, gone from the standard library in Python 3.13.
    assert 'audioop-lts>=0.2.1; python_version >= "3.13"' in metadata.get_all("Requires-Dist")
