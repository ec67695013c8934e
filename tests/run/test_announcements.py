"""Announcements: sound files decoded to 8 kHz at their level, click-free tone sequences, the
built-in prompts, and the plan the daemon asks what to play."""

from __future__ import annotations

import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest

from gateway.config import Config, ConfigError, load_config, parse_config_text
from gateway.dsp.signals import Samples, dbfs_to_amplitude, peak_dbfs
from gateway.run.announcements import (
    BUILTIN_TONES,
    AnnouncementError,
    AnnouncementPlan,
    announcement_problems,
    builtin,
    check_announcements,
    load_audio_file,
    tone_sequence,
)

RATE = 8000


SITE = """\
gateway: {id: test}
agencies:
  ca:
    name: Canadian agency
    country: CA
    talkgroups:
      tac: {rx_mhz: 142.47}
  us:
    name: US agency
    country: US
    talkgroups:
      ch4: {rx_mhz: 163.1}
radios:
  ca-1: {talkgroup: ca/tac, simulated: {}}
  us-1: {talkgroup: us/ch4, simulated: {}}
patches:
  cross: {members: [ca/tac, us/ch4]}
  quiet: {members: [ca/tac, us/ch4], announce: false}
"""


def write_wav(
    path: Path,
    seconds: float,
    *,
    rate: int = RATE,
    channels: int = 1,
    width: int = 2,
    hz: float = 1000.0,
    amplitude: float = 0.5,
) -> Path:
    """A sine at `hz` in every channel, as integer PCM of `width` bytes (8-bit is unsigned)."""
    t = np.arange(round(seconds * rate)) / rate
    mono = amplitude * np.sin(2 * np.pi * hz * t)
    frames = np.repeat(mono[:, None], channels, axis=1)
    if width == 1:
        data = np.round(frames * 127 + 128).astype(np.uint8).tobytes()
    else:
        data = np.round(frames * 32767).astype("<i2").tobytes()
    with wave.open(str(path), "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(width)
        out.setframerate(rate)
        out.writeframes(data)
    return path


def dominant_hz(samples: Samples) -> float:
    windowed = samples * np.hanning(samples.size)
    spectrum = np.abs(np.fft.rfft(windowed, n=1 << 16))
    return float(np.argmax(spectrum)) * RATE / (1 << 16)


def error_of(path: Path) -> str:
    with pytest.raises(AnnouncementError) as caught:
        load_audio_file(path)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: ")
    return message


# --- sound files -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rate", "channels", "width"),
    [(8000, 1, 2), (44100, 2, 2), (48000, 1, 2), (22050, 1, 1), (16000, 2, 1)],
    ids=["8k-mono", "44k1-stereo", "48k-mono", "22k-8bit", "16k-stereo-8bit"],
)
def test_wav_loads_at_8k_mono_at_its_level(
    tmp_path: Path, rate: int, channels: int, width: int
) -> None:
    path = write_wav(tmp_path / "prompt.wav", 1.5, rate=rate, channels=channels, width=width)
    samples = load_audio_file(path, level_dbfs=-6.0)
    assert samples.dtype == np.float32 and samples.ndim == 1
    assert samples.size == 12000  # 1.5 s at 8 kHz
    assert peak_dbfs(samples) == pytest.approx(-6.0, abs=0.01)
    # The level is the sound's, not an edge transient's.
    assert peak_dbfs(samples[RATE // 10 : -RATE // 10]) == pytest.approx(-6.0, abs=0.05)
    assert dominant_hz(samples) == pytest.approx(1000.0, abs=2.0)
    # Faded in and out: a recording cut mid-sound does not click.
    assert samples[0] == 0 and samples[-1] == 0
    assert np.max(np.abs(np.diff(samples[:4]))) < 0.01


def test_level_is_normalised_from_a_quiet_recording(tmp_path: Path) -> None:
    path = write_wav(tmp_path / "quiet.wav", 1.0, amplitude=0.01)
    assert peak_dbfs(load_audio_file(path)) == pytest.approx(-12.0, abs=0.01)
    assert peak_dbfs(load_audio_file(path, level_dbfs=-20)) == pytest.approx(-20.0, abs=0.01)


def test_sub_audible_content_is_removed(tmp_path: Path) -> None:
    # A 100 Hz hum (in the CTCSS band) under a 1 kHz voice-band tone: the hum is filtered out.
    t = np.arange(2 * RATE) / RATE
    mixed = 0.4 * np.sin(2 * np.pi * 100 * t) + 0.2 * np.sin(2 * np.pi * 1000 * t)
    path = tmp_path / "hum.wav"
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(np.round(mixed * 32767).astype("<i2").tobytes())
    samples = load_audio_file(path)
    spectrum = np.abs(np.fft.rfft(samples[RATE // 2 : -RATE // 2]))
    hz = np.fft.rfftfreq(RATE, 1 / RATE)
    hum = spectrum[np.argmin(np.abs(hz - 100))]
    voice = spectrum[np.argmin(np.abs(hz - 1000))]
    assert hum < voice / 100


@pytest.mark.parametrize(
    ("suffix", "codec"), [("mp3", "libmp3lame"), ("ogg", "libvorbis")], ids=["mp3", "ogg"]
)
def test_compressed_files_load_through_ffmpeg(tmp_path: Path, suffix: str, codec: str) -> None:
    source = write_wav(tmp_path / "source.wav", 2.0, rate=44100, channels=2, hz=800.0)
    encoded = tmp_path / f"prompt.{suffix}"
    subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-y", "-i", str(source), "-c:a", codec, str(encoded)],
        check=True,
        timeout=60,
    )
    samples = load_audio_file(encoded, level_dbfs=-9.0)
    assert samples.dtype == np.float32
    assert abs(samples.size - 2 * RATE) <= 0.03 * RATE  # encoder padding, at most 30 ms
    assert peak_dbfs(samples) == pytest.approx(-9.0, abs=0.01)
    assert dominant_hz(samples) == pytest.approx(800.0, abs=3.0)


def test_missing_file_is_one_line(tmp_path: Path) -> None:
    assert error_of(tmp_path / "nope.wav") == f"{tmp_path / 'nope.wav'}: no such file"


def test_text_renamed_wav_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "notes.wav"
    path.write_text("this is not a recording\n")
    message = error_of(path)
    assert message == (
        f"{path}: not a sound file (ffmpeg: invalid data found when processing input)"
    )


def test_empty_file_and_no_frames_are_one_line(tmp_path: Path) -> None:
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    assert error_of(empty) == f"{empty}: the file is empty"
    no_frames = write_wav(tmp_path / "no-frames.wav", 0.0)
    assert error_of(no_frames) == f"{no_frames}: the file holds no audio (0 s)"
    assert error_of(tmp_path) == f"{tmp_path}: is a directory, not a sound file"


def test_silent_file_is_one_line(tmp_path: Path) -> None:
    path = write_wav(tmp_path / "silence.wav", 1.0, amplitude=0.0)
    assert "the file is silent" in error_of(path)


def test_long_file_is_one_line(tmp_path: Path) -> None:
    path = write_wav(tmp_path / "speech.wav", 40.0)
    assert error_of(path) == (
        f"{path}: longer than 30 s; an announcement must be short (trim the recording)"
    )
    # 30 s exactly is allowed.
    assert load_audio_file(write_wav(tmp_path / "ok.wav", 30.0)).size == 30 * RATE


def test_wav_plays_without_ffmpeg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wav = write_wav(tmp_path / "prompt.wav", 0.5)
    other = tmp_path / "prompt.mp3"
    other.write_bytes(b"ID3 not really an mp3")
    monkeypatch.setenv("PATH", str(tmp_path / "no-tools-here"))
    assert load_audio_file(wav).size == RATE // 2
    message = error_of(other)
    assert "cannot decode it without ffmpeg" in message
    assert "only WAV files play without it" in message


# --- tones -------------------------------------------------------------------------------------


def test_tone_sequence_frequencies_and_length() -> None:
    tones = [(600.0, 120), (0.0, 30), (1450.0, 200), (2900.0, 100)]
    samples = tone_sequence(tones, level_dbfs=-12.0)
    assert samples.dtype == np.float32
    assert samples.size == (120 + 30 + 200 + 100) * RATE // 1000
    edges = np.cumsum([0] + [ms * RATE // 1000 for _, ms in tones])
    for (hz, _), start, end in zip(tones, edges[:-1], edges[1:], strict=True):
        segment = samples[start:end]
        if hz == 0:
            assert not np.any(segment)
        else:
            assert dominant_hz(segment) == pytest.approx(hz, abs=5.0)
            assert peak_dbfs(segment) == pytest.approx(-12.0, abs=0.05)


@pytest.mark.parametrize(
    "tones",
    [
        [(600.0, 120), (0.0, 30), (900.0, 120)],
        [(700.0, 100), (2400.0, 100), (700.0, 100)],  # back to back, no pause
        [(3000.0, 60), (300.0, 60)],
    ],
    ids=["with-pause", "back-to-back", "band-edges"],
)
def test_tone_edges_do_not_click(tones: list[tuple[float, int]]) -> None:
    amplitude = dbfs_to_amplitude(-12.0)
    samples = tone_sequence(tones, level_dbfs=-12.0)
    steps = np.abs(np.diff(samples.astype(np.float64)))
    boundaries = np.cumsum([0] + [ms * RATE // 1000 for _, ms in tones])
    for index in boundaries:
        # Every tone starts and ends at silence and leaves it slowly: the samples around each
        # boundary are near zero and move by a small fraction of the amplitude (a hard edge
        # steps by 0.46 of it at 600 Hz, 0.92 at 3000 Hz).
        near = samples[max(index - 2, 0) : index + 2]
        assert np.max(np.abs(near)) < 0.01 * amplitude
        around = steps[max(index - 3, 0) : index + 3]
        assert np.max(around) < 0.05 * amplitude
    # The whole first millisecond stays well below a hard edge's step.
    assert np.max(steps[:8]) < 0.2 * amplitude


def test_empty_tone_sequence() -> None:
    assert tone_sequence([]).size == 0


def test_builtins_exist_are_short_and_distinct() -> None:
    assert set(BUILTIN_TONES) == {"enable", "disable", "id"}
    sounds = {name: builtin(name) for name in ("enable", "disable", "id")}
    for name, samples in sounds.items():
        assert 0 < samples.size < RATE, name  # under one second
        # At most the level: a sampled sine's peak falls short of it by up to 0.5 dB.
        assert -12.5 < peak_dbfs(samples) <= -12.0 + 1e-6, name
        for hz, _ in BUILTIN_TONES[name]:
            assert hz == 0 or 300 <= hz <= 3000
    assert peak_dbfs(builtin("enable", level_dbfs=-20)) == pytest.approx(-20.0, abs=0.5)

    def pitches(name: str) -> list[float]:
        samples, pos, found = sounds[name], 0, []
        for hz, ms in BUILTIN_TONES[name]:
            n = ms * RATE // 1000
            if hz:
                found.append(dominant_hz(samples[pos : pos + n]))
            pos += n
        return found

    rising, falling = pitches("enable"), pitches("disable")
    assert rising == sorted(rising) and len(rising) == 3
    assert falling == sorted(falling, reverse=True) and len(falling) == 3
    assert len(set(map(round, pitches("id")))) == 1  # a pair of equal beeps


# --- the plan ----------------------------------------------------------------------------------


def site(tmp_path: Path, announcements: str) -> tuple[Config, Path]:
    """The config as parsed text (its sound files unchecked), and its directory."""
    path = tmp_path / "site.yaml"
    path.write_text(SITE + announcements)
    return parse_config_text(path.read_text(), str(path)), path.parent


def test_plan_from_config_with_files_tones_and_builtins(tmp_path: Path) -> None:
    (tmp_path / "sounds").mkdir()
    write_wav(tmp_path / "sounds" / "on.wav", 0.8, rate=16000)
    cfg, base_dir = site(
        tmp_path,
        "announcements:\n"
        "  level_dbfs: -10\n"
        "  on_enable: {file: sounds/on.wav, level_dbfs: -3}\n"
        "  on_disable: {tones: [[1000, 100], [0, 50], [500, 100]]}\n"
        "  patch_id: {every_s: 900}\n",
    )
    plan = AnnouncementPlan.from_config(cfg, base_dir)
    (tmp_path / "sounds" / "on.wav").unlink()  # loaded once, at config time
    on = plan.for_event("enable", "cross")
    assert on is not None and on.size == round(0.8 * RATE)
    assert peak_dbfs(on) == pytest.approx(-3.0, abs=0.01)
    off = plan.for_event("disable", "cross")
    assert off is not None and off.size == 250 * RATE // 1000
    assert peak_dbfs(off) == pytest.approx(-10.0, abs=0.05)
    ident = plan.for_event("id", "cross")
    assert ident is not None and np.array_equal(ident, builtin("id", -10.0))
    assert plan.id_every_s == 900
    # The same read-only array every time: the engine must not (and cannot) change it.
    assert plan.for_event("enable", "cross") is on
    assert not on.flags.writeable
    # announce: false silences that patch; an unknown patch is a programming error.
    assert plan.for_event("enable", "quiet") is None
    with pytest.raises(KeyError):
        plan.for_event("enable", "nope")


def test_plan_defaults_and_silence(tmp_path: Path) -> None:
    cfg, base_dir = site(tmp_path, "announcements: {on_disable: null}\n")
    plan = AnnouncementPlan.from_config(cfg, base_dir)
    on = plan.for_event("enable", "cross")
    assert on is not None and np.array_equal(on, builtin("enable"))
    assert plan.for_event("disable", "cross") is None
    assert plan.for_event("id", "cross") is None and plan.id_every_s is None
    # Without the section, or with enabled: false, nothing is announced (and nothing loaded).
    for text in ("", "announcements: {enabled: false, on_enable: {file: missing.wav}}\n"):
        cfg, base_dir = site(tmp_path, text)
        plan = AnnouncementPlan.from_config(cfg, base_dir)
        assert not plan.enabled and plan.id_every_s is None
        assert plan.for_event("enable", "cross") is None
        assert check_announcements(cfg, base_dir) == []


def test_bad_files_are_config_time_errors(tmp_path: Path) -> None:
    (tmp_path / "sounds").mkdir()
    write_wav(tmp_path / "sounds" / "long.wav", 40.0)
    cfg, base_dir = site(
        tmp_path,
        "announcements:\n"
        "  on_enable: {file: sounds/missing.wav}\n"
        "  on_disable: {builtin: disable}\n"
        "  patch_id:\n"
        "    announcement: {file: sounds/long.wav}\n",
    )
    missing, long = base_dir / "sounds" / "missing.wav", base_dir / "sounds" / "long.wav"
    assert check_announcements(cfg, base_dir) == [
        f"announcements.on_enable.file: {missing}: no such file",
        f"announcements.patch_id.announcement.file: {long}: longer than 30 s; an announcement "
        "must be short (trim the recording)",
    ]
    assert [problem.path for problem in announcement_problems(cfg, base_dir)] == [
        ("announcements", "on_enable", "file"),
        ("announcements", "patch_id", "announcement", "file"),
    ]
    with pytest.raises(AnnouncementError) as caught:
        AnnouncementPlan.from_config(cfg, base_dir)
    assert str(caught.value) == f"announcements.on_enable.file: {missing}: no such file"
    # Loading the file reports both, located at their lines.
    with pytest.raises(ConfigError) as located:
        load_config(tmp_path / "site.yaml")
    lines = [str(issue) for issue in located.value.issues]
    assert len(lines) == 2
    assert lines[0].startswith(f"{tmp_path / 'site.yaml'}:")
    assert "announcements.on_enable.file" in lines[0] and "no such file" in lines[0]
    assert "announcements.patch_id.announcement.file" in lines[1] and "longer than 30 s" in lines[1]


def test_absolute_file_ignores_base_dir(tmp_path: Path) -> None:
    prompt = write_wav(tmp_path / "prompt.wav", 0.25)
    cfg = parse_config_text(SITE + f"announcements: {{on_enable: {{file: '{prompt}'}}}}\n")
    plan = AnnouncementPlan.from_config(cfg, Path("/nonexistent"))
    on = plan.for_event("enable", "cross")
    assert on is not None and on.size == RATE // 4
