"""Sound devices through PortAudio, against a private PulseAudio whose null sinks stand in for
sound cards (tests/support/audio_env.py): listing, picking a device by spec, real audio through the
PCMs, and what PortAudio does when a card goes away."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import pyaudio
import pytest

from gateway.hardware.sound.devices import (
    SoundDevice,
    SoundDeviceError,
    _quiet_stderr,
    describe_devices,
    devices_of,
    find_device,
    list_devices,
    open_portaudio,
)
from tests.support.waits import wait_for

if TYPE_CHECKING:
    from tests.support.audio_env import AudioEnv

# The `audio_env` fixture; imported by pytest (not above) so that its asserts are rewritten.
pytest_plugins = ["tests.support.audio_env"]

RATE = 48000
A = "sd_a"
B = "sd_b"


@pytest.fixture(scope="module")
def sinks(audio_env: AudioEnv) -> Iterator[tuple[str, str]]:
    yield audio_env.add_sink(A), audio_env.add_sink(B)


@pytest.fixture
def env(audio_env: AudioEnv) -> Iterator[AudioEnv]:
    """The module's AudioEnv; sinks a test adds and leaves (failing, say) are removed after it."""
    before = set(audio_env.sinks)
    yield audio_env
    for sink in set(audio_env.sinks) - before:
        audio_env.remove_sink(sink)


def tone(seconds: float, level: float = 0.5, freq: float = 1000.0) -> npt.NDArray[np.float32]:
    t = np.arange(round(seconds * RATE)) / RATE
    return (level * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def dbfs(samples: npt.NDArray[np.float32]) -> float:
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))
    return 20 * np.log10(max(rms, 1e-12))


def named(devices: list[SoundDevice], name: str) -> SoundDevice:
    return next(device for device in devices if device.name == name)


# --- listing ------------------------------------------------------------------------------------


def test_portaudio_lists_each_pcm_in_its_direction(
    audio_env: AudioEnv, sinks: tuple[str, str]
) -> None:
    devices = list_devices()
    for sink in sinks:
        play = named(devices, audio_env.pcm_play(sink))
        record = named(devices, audio_env.pcm_record(sink))
        assert (play.max_input_channels, record.max_output_channels) == (0, 0)
        assert play.max_output_channels >= 2 and record.max_input_channels >= 2
        assert play.host_api == record.host_api == "ALSA"
        assert play.default_rate > 0
    # The same as PyAudio's own device info, index for index.
    with open_portaudio() as audio:
        for device in devices:
            info = audio.get_device_info_by_index(device.index)
            assert info["name"] == device.name
            assert info["maxInputChannels"] == device.max_input_channels
            assert info["maxOutputChannels"] == device.max_output_channels


def test_describe_devices_has_a_line_per_device(sinks: tuple[str, str]) -> None:
    devices = list_devices()
    lines = describe_devices(devices)
    assert lines[0].split() == ["index", "in", "out", "rate", "api", "name"]
    assert len(lines) == len(devices) + 1
    rec = named(devices, f"{A}_rec")
    line = next(line for line in lines if line.endswith(f" {A}_rec"))
    assert line.split()[:4] == [str(rec.index), str(rec.max_input_channels), "0", "44100"]
    assert describe_devices([]) == ["no sound devices found"]


def test_listing_is_stale_while_another_portaudio_user_is_open(env: AudioEnv) -> None:
    # PortAudio scans devices only when its first user initialises it: a gateway that keeps a
    # stream open cannot see a card plugged in later by listing again in the same process.
    with open_portaudio():
        env.add_sink("sd_late")
        assert "sd_late_rec" not in {device.name for device in list_devices()}
    assert "sd_late_rec" in {device.name for device in list_devices()}


# --- find_device against the listed PCMs --------------------------------------------------------


def test_find_by_index_exact_name_and_substring(sinks: tuple[str, str]) -> None:
    devices = list_devices()
    rec_a = named(devices, f"{A}_rec")
    assert find_device(str(rec_a.index), "input", devices) == rec_a
    assert find_device(f"{A}_rec", "input", devices) == rec_a
    assert find_device("SD_A_RE", "input", devices) == rec_a
    assert find_device(f"{B}_pl", "output", devices) == named(devices, f"{B}_play")


def test_find_ambiguous_substring_names_the_candidates(sinks: tuple[str, str]) -> None:
    devices = list_devices()
    with pytest.raises(SoundDeviceError) as caught:
        find_device("sd_", "input", devices)
    message = str(caught.value)
    assert "\n" not in message
    assert "'sd_' is ambiguous for input" in message
    for name in (f"{A}_rec", f"{B}_rec"):
        assert f"{named(devices, name).index} {name}" in message
    assert f"{A}_play" not in message  # not an input


def test_find_missing_lists_what_exists_in_one_line(sinks: tuple[str, str]) -> None:
    devices = list_devices()
    with pytest.raises(SoundDeviceError) as caught:
        find_device("USB Audio", "input", devices)
    message = str(caught.value)
    inputs = [device for device in devices if device.max_input_channels > 0]
    listing = ", ".join(f"{device.index} {device.name}" for device in inputs)
    assert message == f"no input sound device matches 'USB Audio'; input devices: {listing}"


def test_find_device_without_channels_that_way(sinks: tuple[str, str]) -> None:
    devices = list_devices()
    play_a = named(devices, f"{A}_play")
    for spec in (f"{A}_play", str(play_a.index)):
        with pytest.raises(SoundDeviceError, match=r"has no input channels; input devices: "):
            find_device(spec, "input", devices)
    with pytest.raises(SoundDeviceError, match=r"matches only devices without output channels"):
        find_device(f"{A}_re", "output", devices)


# --- find_device on made-up lists: the rules ----------------------------------------------------


def _dev(index: int, name: str, inputs: int = 1, outputs: int = 2) -> SoundDevice:
    return SoundDevice(index, name, inputs, outputs, 48000.0, "ALSA")


CARDS = [
    _dev(0, "USB Audio Device: - (hw:1,0)"),
    _dev(1, "USB Audio Device: - (hw:2,0)"),
    _dev(2, "pulse", 32, 32),
    _dev(3, "pulse_monitor", 32, 0),
    _dev(4, "Speaker", 0, 2),
]


def test_exact_name_wins_over_a_longer_match() -> None:
    assert find_device("pulse", "input", CARDS).index == 2
    assert find_device("PULSE", "input", CARDS).index == 2  # one case-insensitive exact match
    assert find_device("monitor", "input", CARDS).index == 3


def test_two_identical_cards_need_more_than_their_common_name() -> None:
    with pytest.raises(SoundDeviceError, match=r"matches 0 USB Audio.*, 1 USB Audio"):
        find_device("usb audio", "output", CARDS)
    assert find_device("hw:2,0", "output", CARDS).index == 1


def test_index_errors() -> None:
    with pytest.raises(SoundDeviceError, match=r"^no sound device has index 9; output devices: 0 "):
        find_device("9", "output", CARDS)
    with pytest.raises(SoundDeviceError, match=r"^sound device 4 'Speaker' has no input channels"):
        find_device(" 4 ", "input", CARDS)
    with pytest.raises(SoundDeviceError, match=r"input devices: none$"):
        find_device("x", "input", [_dev(0, "Speaker", 0, 2)])
    with pytest.raises(SoundDeviceError, match=r"^empty sound device name"):
        find_device("  ", "input", CARDS)


# --- real audio ---------------------------------------------------------------------------------


def test_tone_played_into_a_sink_is_recorded_from_its_monitor_only(
    audio_env: AudioEnv, sinks: tuple[str, str]
) -> None:
    level = 0.5
    expected = 20 * np.log10(level / np.sqrt(2))  # -9.03 dBFS
    on_a = audio_env.start_recording(audio_env.pcm_record(A), 1.0, RATE)
    on_b = audio_env.start_recording(audio_env.pcm_record(B), 1.0, RATE)
    audio_env.play(audio_env.pcm_play(A), tone(0.5, level), RATE)
    heard_a, heard_b = on_a.result(10), on_b.result(10)

    loud = np.flatnonzero(np.abs(heard_a) > level / 2)
    assert loud.size, f"nothing recorded from {A}: peak {np.abs(heard_a).max()}"
    start, end = loud[0], loud[-1]
    assert (end - start) / RATE == pytest.approx(0.5, abs=0.01)
    middle = heard_a[start + RATE // 20 : end - RATE // 20]
    assert dbfs(middle) == pytest.approx(expected, abs=1.0)
    assert dbfs(heard_b) < -80  # digital silence, really


def test_stereo_record_of_a_mono_play(audio_env: AudioEnv, sinks: tuple[str, str]) -> None:
    # Mono played into a stereo sink reaches both channels at its own level.
    recording = audio_env.start_recording(audio_env.pcm_record(B), 0.8, RATE, channels=2)
    audio_env.play(audio_env.pcm_play(B), tone(0.4, 0.25), RATE)
    heard = recording.result(10)
    assert heard.shape == (round(0.8 * RATE), 2)
    loud = np.flatnonzero(np.abs(heard[:, 0]) > 0.2)
    middle = heard[loud[0] + RATE // 20 : loud[-1] - RATE // 20]
    for channel in (0, 1):
        assert dbfs(middle[:, channel]) == pytest.approx(20 * np.log10(0.25 / np.sqrt(2)), abs=1.0)


# --- a card that goes away ----------------------------------------------------------------------


def _open(audio: pyaudio.PyAudio, index: int, direction: str) -> pyaudio.Stream:
    if direction == "input":
        return audio.open(
            rate=RATE, channels=1, format=pyaudio.paFloat32, input=True, input_device_index=index
        )
    return audio.open(
        rate=RATE, channels=1, format=pyaudio.paFloat32, output=True, output_device_index=index
    )


def test_unplugged_card_fails_to_open_and_leaves_the_listing(env: AudioEnv) -> None:
    # Its PCMs vanish with it, as a USB card's hw devices do: a PortAudio initialised before
    # still has its index, and opening fails in snd_pcm_open ("Unknown PCM sd_gone_play" on
    # stderr), which PortAudio reports as paBadIODeviceCombination.
    sink = env.add_sink("sd_gone")
    play, record = env.pcm_play(sink), env.pcm_record(sink)
    with open_portaudio() as audio:
        by_name = {device.name: device.index for device in devices_of(audio)}
        env.remove_sink(sink)
        for name, direction in ((play, "output"), (record, "input")):
            with pytest.raises(OSError) as caught:
                _open(audio, by_name[name], direction)
            assert caught.value.errno == pyaudio.paBadIODeviceCombination == -9993
            assert caught.value.strerror == "Illegal combination of I/O devices"
    listed = list_devices()
    assert {play, record}.isdisjoint(device.name for device in listed)
    with pytest.raises(SoundDeviceError, match=r"^no input sound device matches 'sd_gone_rec'"):
        find_device(record, "input", listed)

    env.add_sink(sink)  # plugged in again
    try:
        recording = env.start_recording(record, 0.6, RATE)
        env.play(play, tone(0.3), RATE)
        assert np.abs(recording.result(10)).max() > 0.4
    finally:
        env.remove_sink(sink)


def test_vanished_pulse_sink_behind_a_kept_pcm_fails_to_open(env: AudioEnv) -> None:
    # A PCM of the ALSA configuration that names a PulseAudio sink stays listed when the sink
    # goes; opening it fails when the pulse plugin creates its stream ("PulseAudio: Unable to
    # create stream: No such entity"), which PortAudio reports as paUnanticipatedHostError.
    sink = env.add_sink("sd_kept")
    env.remove_sink(sink, keep_pcms=True)
    with open_portaudio() as audio:
        by_name = {device.name: device.index for device in devices_of(audio)}
        for name, direction in (
            (env.pcm_play(sink), "output"),
            (env.pcm_record(sink), "input"),
        ):
            with pytest.raises(OSError) as caught:
                _open(audio, by_name[name], direction)
            assert caught.value.errno == pyaudio.paUnanticipatedHostError == -9999


def _stream_owner(audio_env: AudioEnv, kind: str) -> list[str]:
    """Names of the sinks or sources that PortAudio's streams (ALSA plug-in clients) are on."""
    devices = "sinks" if kind == "sink-inputs" else "sources"
    names = dict(
        line.split()[:2] for line in audio_env.pactl("list", "short", devices).splitlines()
    )
    streams = audio_env.pactl("list", "short", kind).splitlines()
    return [names[line.split()[1]] for line in streams if "protocol-native" in line]


def test_sink_removed_mid_stream(env: AudioEnv, sinks: tuple[str, str]) -> None:
    # A card behind PulseAudio that goes away while the gateway streams: PulseAudio moves the
    # streams to the default sink and source (the orphan sink here, so nothing leaks into
    # another card), and PortAudio carries on without an error: reads go on (silence), and so
    # do writes until the first underrun, whose recovery re-creates the pulse stream by the
    # sink's name and fails: that write raises paUnanticipatedHostError and PyAudio closes the
    # stream.
    sink = env.add_sink("sd_unplugged")
    listening_b = env.start_recording(env.pcm_record(B), 1.5, RATE)
    with open_portaudio() as audio:
        by_name = {device.name: device.index for device in devices_of(audio)}
        out = _open(audio, by_name[env.pcm_play(sink)], "output")
        into = _open(audio, by_name[env.pcm_record(sink)], "input")
        try:
            for _ in range(10):
                out.write(tone(0.01).tobytes())
            into.read(4800, exception_on_overflow=False)
            env.remove_sink(sink)
            assert _stream_owner(env, "sink-inputs") == [env.orphan_sink]
            assert sorted(_stream_owner(env, "source-outputs")) == [
                f"{env.orphan_sink}.monitor",
                f"{B}.monitor",  # listening_b
            ]

            after = np.frombuffer(into.read(4800, exception_on_overflow=False), np.float32)
            assert into.is_active() and after.size == 4800

            time.sleep(0.3)  # nothing written for a while, deliberately: an underrun
            with pytest.raises(OSError) as caught:
                for _ in range(10):
                    out.write(tone(0.01).tobytes())
            assert caught.value.errno == pyaudio.paUnanticipatedHostError
            with pytest.raises(OSError, match="Stream not open"):
                out.is_active()
        finally:
            out.close()
            into.close()
    assert np.abs(listening_b.result(10)).max() == 0.0


def test_callback_stream_keeps_running_after_its_sink_is_removed(env: AudioEnv) -> None:
    # No underrun in callback mode: PortAudio keeps calling back, with no status flag, into a
    # stream that PulseAudio moved to the orphan sink. Device loss is invisible here.
    sink = env.add_sink("sd_callback")
    calls: list[float] = []

    def callback(
        in_data: bytes | None, frames: int, time_info: object, status: int
    ) -> tuple[bytes | None, int]:
        calls.append(time.monotonic())
        assert status == 0
        return np.zeros(frames, np.float32).tobytes(), pyaudio.paContinue

    with open_portaudio() as audio:
        index = {device.name: device.index for device in devices_of(audio)}[f"{sink}_play"]
        stream = audio.open(
            rate=RATE,
            channels=1,
            format=pyaudio.paFloat32,
            output=True,
            output_device_index=index,
            frames_per_buffer=480,
            stream_callback=callback,
        )
        try:
            wait_for(lambda: len(calls) >= 10)  # the stream is running
            env.remove_sink(sink)
            removed = time.monotonic()
            # It goes on: 30 more calls (0.3 s of them, at 100 a second).
            wait_for(lambda: len([at for at in calls if at > removed]) > 30)
            assert stream.is_active()
        finally:
            stream.close()


def test_audio_devices_command_lists_the_test_pcms(audio_env: AudioEnv) -> None:
    sink = audio_env.add_sink("cli_listing")
    result = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "audio", "devices"],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, **audio_env.environ},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert audio_env.pcm_record(sink) in result.stdout
    assert audio_env.pcm_play(sink) in result.stdout
    assert result.stdout.splitlines()[0].split()[:4] == ["index", "in", "out", "rate"]


def test_probe_noise_and_jack_metadata_errors_are_dropped_but_other_lines_kept(
    capfd: pytest.CaptureFixture[str],
) -> None:
    # What PortAudio's probe prints on Debian 13 when /dev/shm holds a JACK metadata database of
    # another libdb build (a chroot or container sharing its host's /dev/shm), around a line of
    # someone else's that must survive.
    noise = (
        b"ALSA lib pcm.c:2666:(snd_pcm_open_noupdate) Unknown PCM cards.pcm.front\n"
        b"BDB1539 Build signature doesn't match environment\n"
        b"Cannot open DB environment: BDB0091 DB_VERSION_MISMATCH: Database environment "
        b"version mismatch\n"
        b"JackShmReadWritePtr::~JackShmReadWritePtr - Init not done for -1, skipping unlock\n"
        b"Cannot connect to server socket err = No such file or directory\n"
        b"jack server is not running or cannot be started\n"
        b"\n"
    )
    with _quiet_stderr():
        os.write(2, noise)
        os.write(2, b"another thread's warning\n")
        os.write(2, noise)
    assert capfd.readouterr().err == "another thread's warning\n"
