"""`crosspatch devices` and `crosspatch audio devices` name the same sound devices, the ones a
radio's `audio.input` / `audio.output` can name, and both have a `--json` form for scripts. The
"sound cards" are the null sinks of a private PulseAudio (tests/support/audio_env.py), which a
machine with no sound card of its own reaches through ALSA PCMs, as a gateway whose audio goes
through PulseAudio or asound.conf would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import TYPE_CHECKING, Any

import pytest

from gateway.cli import run

if TYPE_CHECKING:
    from tests.support.audio_env import AudioEnv

pytest_plugins = ["tests.support.audio_env"]


def crosspatch(env: AudioEnv, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **env.environ},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def sink(audio_env: AudioEnv) -> str:
    return audio_env.add_sink("devices_card")


def test_devices_and_audio_devices_list_the_same_sound_devices(
    audio_env: AudioEnv, sink: str
) -> None:
    report: dict[str, Any] = json.loads(crosspatch(audio_env, "devices", "--json"))
    listed: list[dict[str, Any]] = json.loads(crosspatch(audio_env, "audio", "devices", "--json"))
    assert set(report) == {"serial_ports", "sound_devices"}
    assert report["sound_devices"] == listed
    by_name = {device["name"]: device for device in listed}
    play, record = by_name[audio_env.pcm_play(sink)], by_name[audio_env.pcm_record(sink)]
    assert (play["input_channels"], play["output_channels"] >= 2) == (0, True)
    assert (record["input_channels"] >= 2, record["output_channels"]) == (True, 0)
    for device in listed:
        assert set(device) == {
            "index",
            "name",
            "input_channels",
            "output_channels",
            "default_rate",
            "host_api",
        }
    for port in report["serial_ports"]:
        assert set(port) == {"device", "usb_id", "description", "serial_number"}


def test_devices_text_shows_the_audio_devices_table(audio_env: AudioEnv, sink: str) -> None:
    devices = crosspatch(audio_env, "devices").splitlines()
    table = crosspatch(audio_env, "audio", "devices").splitlines()
    assert devices[0] == "serial ports:"
    heading = devices.index("sound devices (what audio.input and audio.output name):")
    # The very table of `audio devices`, indented under its heading, and not "none found".
    assert devices[heading + 1 :] == [f"  {line}" for line in table]
    assert any(line.endswith(f" {audio_env.pcm_record(sink)}") for line in table)


def test_a_sink_unplugged_leaves_both_lists_alike(audio_env: AudioEnv) -> None:
    gone = audio_env.add_sink("devices_gone")
    audio_env.remove_sink(gone)
    report = json.loads(crosspatch(audio_env, "devices", "--json"))
    listed = json.loads(crosspatch(audio_env, "audio", "devices", "--json"))
    assert report["sound_devices"] == listed
    assert audio_env.pcm_record(gone) not in {device["name"] for device in listed}


def test_devices_rejects_stray_arguments_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        run(["devices", "--jsn"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "unrecognized arguments: --jsn" in err
