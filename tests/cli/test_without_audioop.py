"""Python 3.13 removed `audioop`, which pydub (sound-file announcements, MP3/Opus recordings)
imports; crosspatch declares `audioop-lts` for 3.13 and later. These tests run the command line
with `import audioop` made to fail, as on a 3.13 install that lacks audioop-lts, and prove each
path either works or says so in one line, never in a traceback; and that the same paths work
where audioop is there (this interpreter's own, or audioop-lts)."""

from __future__ import annotations

import json
import subprocess
import sys
import wave
from pathlib import Path
from typing import Any

import numpy as np

from tests.support.sites import SIMULATED_SITE

# `None` in sys.modules makes every `import audioop` raise ModuleNotFoundError, as on Python 3.13
# without audioop-lts; pydub then tries its fallback `pyaudioop`, which does not exist either.
WITHOUT_AUDIOOP = (
    "import sys; sys.modules['audioop'] = None; sys.argv[0] = 'crosspatch'; "
    "from gateway.cli import main; main()"
)
RATE = 16000


def crosspatch(*args: str, audioop: bool = True) -> subprocess.CompletedProcess[str]:
    command = ["-m", "gateway.cli"] if audioop else ["-c", WITHOUT_AUDIOOP]
    return subprocess.run(
        [sys.executable, *command, *args], capture_output=True, text=True, timeout=120, check=False
    )


def write_prompts(directory: Path) -> None:
    """on.wav and off.mp3: half a second of 1 kHz each."""
    t = np.arange(RATE // 2) / RATE
    pcm = (0.5 * 32767 * np.sin(2 * np.pi * 1000 * t)).astype("<i2")
    with wave.open(str(directory / "on.wav"), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(pcm.tobytes())
    subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-y", "-i", str(directory / "on.wav"),
         "-c:a", "libmp3lame", str(directory / "off.mp3")],
        check=True,
        timeout=60,
    )  # fmt: skip


def announcing_site(tmp_path: Path) -> Path:
    write_prompts(tmp_path)
    config = tmp_path / "site.yaml"
    config.write_text(
        SIMULATED_SITE
        + "announcements:\n  on_enable: {file: on.wav}\n  on_disable: {file: off.mp3}\n"
    )
    return config


def test_the_wrapper_blocks_audioop() -> None:
    probe = "import sys; sys.modules['audioop'] = None\ntry:\n import audioop\nexcept ImportError:"
    probe += "\n print('blocked')"
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=30, check=True
    )
    assert result.stdout.strip() == "blocked"


def test_check_with_file_announcements_works_where_audioop_is(tmp_path: Path) -> None:
    result = crosspatch("check", str(announcing_site(tmp_path)))
    assert result.returncode == 0, result.stderr


def test_check_without_audioop_names_what_to_install_in_one_line_per_file(
    tmp_path: Path,
) -> None:
    config = announcing_site(tmp_path)
    result = crosspatch("check", str(config), audioop=False)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2  # one located line per sound file
    for line, key, name in zip(
        lines, ("on_enable", "on_disable"), ("on.wav", "off.mp3"), strict=True
    ):
        assert line.startswith(f"{config}:")
        assert f"announcements.{key}.file: " in line and name in line
        assert "Python module 'audioop' is missing" in line
        assert "audioop-lts" in line
    # And as JSON, the same errors as objects.
    as_json = crosspatch("check", "--json", str(config), audioop=False)
    report: dict[str, Any] = json.loads(as_json.stdout)
    assert as_json.returncode == 1 and report["ok"] is False
    assert [e["path"] for e in report["errors"]] == [
        "announcements.on_enable.file",
        "announcements.on_disable.file",
    ]


def test_the_daemon_refuses_to_start_in_one_line_without_audioop(tmp_path: Path) -> None:
    # The daemon loads its announcements with the config (and again on reload): no traceback,
    # no start with prompts it cannot play.
    config = announcing_site(tmp_path)
    text = config.read_text().replace(
        "gateway: {id: peace-arch, frame_ms: 20}",
        f"gateway: {{id: peace-arch, frame_ms: 20, state_dir: {tmp_path / 'state'}}}",
    )
    config.write_text(text)
    result = crosspatch("run", str(config), audioop=False)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    problems = [line for line in result.stderr.splitlines() if "audioop-lts" in line]
    assert len(problems) == 2


SCENARIO = """\
start: "2026-01-01T00:00:00Z"
duration_s: 4
events:
  - {at: 0.0, command: enable, patch: border-tac, as: alice}
  - {at: 0.2, command: approve, patch: border-tac, as: bob}
  - {at: 0.5, port: rcmp-1, receive: {tone_hz: 1000, level_dbfs: -12, seconds: 1}}
"""


def simulate_recording(tmp_path: Path, fmt: str, audioop: bool) -> tuple[Path, str]:
    tmp_path.mkdir(exist_ok=True)
    config = tmp_path / "site.yaml"
    config.write_text(
        SIMULATED_SITE + f"recording: {{dir: {tmp_path / 'unused'}, format: {fmt}}}\n"
    )
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text(SCENARIO)
    out = tmp_path / "out"
    result = crosspatch("simulate", str(config), str(scenario), "--out", str(out), audioop=audioop)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return out, result.stderr


def test_mp3_and_opus_recordings_work_where_audioop_is(tmp_path: Path) -> None:
    for fmt in ("mp3", "opus"):
        out, _ = simulate_recording(tmp_path / fmt, fmt, audioop=True)
        files = list((out / "recordings").glob(f"*/*.{fmt}"))
        assert len(files) == 1 and files[0].stat().st_size > 0


def test_recordings_without_audioop_are_kept_or_fail_in_one_alarm_line(tmp_path: Path) -> None:
    # The dry run goes on either way: a recording is kept (in some format), or its call has one
    # `recording_failed` alarm of one line that names the module missing.
    out, _ = simulate_recording(tmp_path, "mp3", audioop=False)
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    assert len([e for e in events if e["type"] == "call_end"]) == 1
    kept = [p for p in (out / "recordings").glob("*/*") if not p.name.startswith(".")]
    alarms = [e for e in events if e["type"] == "alarm" and e["kind"] == "recording_failed"]
    if kept:
        assert alarms == [] or "wav" in kept[0].suffix
        return
    (alarm,) = alarms
    (detail,) = alarm["detail"].splitlines()
    assert "recording failed" in detail and "audioop" in detail
