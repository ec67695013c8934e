"""`crosspatch completion bash`, loaded into a real bash and asked what Tab would offer."""

from __future__ import annotations

import argparse
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.cli import _parser

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")


@pytest.fixture(scope="module")
def script(tmp_path_factory: pytest.TempPathFactory) -> Path:
    result = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "completion", "bash"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    path = tmp_path_factory.mktemp("completion") / "crosspatch.bash"
    path.write_text(result.stdout)
    return path


def offered(script: Path, line: str, cwd: Path | None = None) -> list[str]:
    """What bash completes for the last word of `line` (an empty last word after a space)."""
    words = shlex.split(line) + ([""] if line.endswith(" ") else [])
    program = (
        f"source {shlex.quote(str(script))}\n"
        f"COMP_WORDS=({' '.join(shlex.quote(w) for w in words)})\n"
        f"COMP_CWORD={len(words) - 1}\n"
        "_crosspatch\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    result = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", program],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
        cwd=cwd,
    )
    assert result.stderr == ""
    return [w for w in result.stdout.splitlines() if w]


def test_the_script_is_valid_bash(script: Path) -> None:
    subprocess.run(["bash", "-n", str(script)], check=True, timeout=30)
    assert "complete -F _crosspatch crosspatch" in script.read_text()


def test_every_command_is_offered(script: Path) -> None:
    parser = _parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert set(offered(script, "crosspatch ")) >= set(sub.choices)
    assert offered(script, "crosspatch pa") == ["patch"]
    assert offered(script, "crosspatch -v che") == ["check"]
    assert "--version" in offered(script, "crosspatch --")


def test_choices_and_options_of_a_command(script: Path) -> None:
    assert offered(script, "crosspatch patch ") == ["list", "enable", "disable", "approve", "deny"]
    # An option's value is not a positional word.
    assert offered(script, "crosspatch patch --timeout 5 en") == ["enable"]
    assert offered(script, "crosspatch patch list ") == []  # NAME: only the user knows it
    options = offered(script, "crosspatch patch --")
    assert {"--json", "--mqtt", "--socket", "--config", "--help"} <= set(options)
    assert offered(script, "crosspatch radio tune --mode ") == ["nfm", "fm", "am"]
    assert offered(script, "crosspatch audio ") == ["devices", "levels", "tone"]
    assert offered(script, "crosspatch completion ") == ["bash"]
    assert "--json" in offered(script, "crosspatch check --")


def test_file_names_where_a_word_is_a_file(script: Path, tmp_path: Path) -> None:
    (tmp_path / "site.yaml").write_text("")
    (tmp_path / "scenario.yaml").write_text("")
    (tmp_path / "sub").mkdir()
    assert offered(script, "crosspatch check si", cwd=tmp_path) == ["site.yaml"]
    assert offered(script, "crosspatch simulate site.yaml sc", cwd=tmp_path) == ["scenario.yaml"]
    assert offered(script, "crosspatch status --config si", cwd=tmp_path) == ["site.yaml"]
    # --out takes a directory: files are not offered.
    assert offered(script, "crosspatch simulate --out s", cwd=tmp_path) == ["sub"]
