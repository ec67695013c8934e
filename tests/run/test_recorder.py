"""Call recordings end to end: the running engine records what a call's source said, as patched,
into real files (WAV, and MP3 / Ogg Opus through real ffmpeg), names them in `call_end`, survives
a recording directory it cannot write and a full disk, keeps up or drops audio with silence in its
place, and deletes old recordings."""

from __future__ import annotations

import json
import os
import time
import warnings
import wave
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from gateway.cli import run
from gateway.control.patch_control import PatchControl
from gateway.core.engine import MemberSpec, PatchEngine, PatchSpec, PortSpec, PortTiming
from gateway.core.events import Event, EventStamper, TickClock
from gateway.dsp.signals import to_pcm16, tone
from gateway.ports.simulated import SimulatedRadios
from gateway.run import recorder as recorder_module
from gateway.run.loop import EngineRuntime
from gateway.run.recorder import CallRecorder, RecordingFormat

RATE = 8000
FRAME = 160
TIMING = PortTiming(tx_delay_ms=0, hang_ms=200, timeout_s=60, rx_inhibit_ms=100)
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
DAY = "2026-01-01"
TONE_HZ, LEVEL_DBFS, TONE_S, AT_S = 1000.0, -12.0, 1.0, 0.2  # AT_S: on a frame boundary
CALL_ID = "gw-20260101T000000.200Z-a"  # gateway id, compact start time, source port


def build_engine() -> PatchEngine:
    ports = [PortSpec("a", "x/a", "x", TIMING), PortSpec("b", "y/b", "y", TIMING)]
    patch = PatchSpec("p", (MemberSpec("a"), MemberSpec("b")))
    engine = PatchEngine(ports, [patch], clock=TickClock(EPOCH, 20), gateway_id="gw")
    engine.enable_patch("p")
    return engine


def radios_with_a_call() -> SimulatedRadios:
    radios = SimulatedRadios(["a", "b"], FRAME)
    radios.receive_tone("a", TONE_HZ, TONE_S, LEVEL_DBFS, at_s=AT_S)
    return radios


def wait_for(what: Callable[[], Any], timeout: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := what():
            return value
        time.sleep(0.01)
    raise AssertionError("timed out")


def run_a_call(recorder: CallRecorder | None) -> list[Event]:
    """One call through the real-time engine thread: a 1 s tone received on port a, patched to
    b. Returns every published event once the runtime (and its recorder) has stopped."""
    events: list[Event] = []
    engine = build_engine()
    runtime = EngineRuntime(
        engine,
        PatchControl(engine, {}, {}),
        radios_with_a_call(),
        EventStamper("gw"),
        events.extend,
        recorder=recorder,
    )
    runtime.start()
    try:
        wait_for(lambda: [e for e in events if e["type"] == "call_end"])
    finally:
        assert runtime.stop()
    return events


def only(events: list[Event], kind: str) -> Event:
    (event,) = [e for e in events if e["type"] == kind]
    return event


def alarms(events: list[Event]) -> list[Event]:
    return [e for e in events if e["type"] == "alarm"]


def read_wav(path: Path) -> npt.NDArray[np.int16]:
    with wave.open(str(path), "rb") as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, RATE)
        return np.frombuffer(wav.readframes(wav.getnframes()), dtype=np.int16)


def decode(path: Path) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # pydub imports audioop
        from pydub import AudioSegment  # type: ignore[import-untyped, unused-ignore]
    return AudioSegment.from_file(str(path))


def expected_tone() -> npt.NDArray[np.int16]:
    return to_pcm16(tone(TONE_HZ, TONE_S, LEVEL_DBFS))


# ---------------------------------------------------------------------------- formats
def test_a_call_is_recorded_as_wav_exactly_as_received(tmp_path: Path) -> None:
    events = run_a_call(CallRecorder(tmp_path / "rec"))
    end = only(events, "call_end")
    assert end["call_id"] == CALL_ID and end["reason"] == "carrier_drop"
    path = Path(end["recording"])
    assert path == tmp_path / "rec" / DAY / f"{CALL_ID}.wav"
    samples = read_wav(path)
    # The call's whole duration, sample for sample what port a received.
    assert end["duration_s"] == TONE_S
    assert samples.size == round(end["duration_s"] * RATE)
    np.testing.assert_array_equal(samples, expected_tone())
    assert 20 * np.log10(np.abs(samples).max() / 32767) == pytest.approx(LEVEL_DBFS, abs=0.1)
    assert not alarms(events)
    assert sorted(p.name for p in (tmp_path / "rec" / DAY).iterdir()) == [path.name]


@pytest.mark.parametrize(("fmt", "frame_rate"), [("mp3", 8000), ("opus", 48000)])
def test_mp3_and_opus_recordings_decode_at_the_calls_duration(
    tmp_path: Path, fmt: RecordingFormat, frame_rate: int
) -> None:
    events = run_a_call(CallRecorder(tmp_path / "rec", fmt))
    end = only(events, "call_end")
    path = Path(end["recording"])
    assert path == tmp_path / "rec" / DAY / f"{CALL_ID}.{fmt}"
    # The temporary WAV and the encoder's partial file are gone; only the recording is left.
    assert [p.name for p in path.parent.iterdir()] == [path.name]
    audio = decode(path)
    assert (audio.channels, audio.frame_rate) == (1, frame_rate)  # libopus decodes at 48 kHz
    assert audio.duration_seconds == pytest.approx(end["duration_s"], abs=0.05)
    assert audio.max_dBFS == pytest.approx(LEVEL_DBFS, abs=1.0)  # lossy, but the same level
    assert not alarms(events)


def test_without_a_recorder_call_end_names_no_recording() -> None:
    end = only(run_a_call(None), "call_end")
    assert end["recording"] is None and end["duration_s"] == TONE_S


# ---------------------------------------------------------------------------- failures
def test_a_directory_that_cannot_be_created_gives_alarms_and_no_path(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a regular file where the recordings' parent should be\n")
    events = run_a_call(CallRecorder(blocker / "rec"))
    end = only(events, "call_end")
    assert end["recording"] is None
    assert (end["reason"], end["duration_s"]) == ("carrier_drop", TONE_S)  # the call went on
    found = alarms(events)
    assert {a["kind"] for a in found} == {"recording_failed"}
    # One at start for the directory, one for the call (on its source port), naming it.
    assert [a.get("port") for a in found] == [None, "a"]
    assert "Not a directory" in found[0]["detail"]
    assert CALL_ID in found[1]["detail"] and "Not a directory" in found[1]["detail"]


def test_a_full_disk_mid_call_keeps_the_path_and_raises_an_alarm(tmp_path: Path) -> None:
    # The call's file is /dev/full: opening works, writing fails with ENOSPC (no mock needed).
    day = tmp_path / "rec" / DAY
    day.mkdir(parents=True)
    (day / f"{CALL_ID}.wav").symlink_to("/dev/full")
    events = run_a_call(CallRecorder(tmp_path / "rec"))
    end = only(events, "call_end")
    assert end["recording"] == str(day / f"{CALL_ID}.wav")  # opened: what it holds is named
    assert end["reason"] == "carrier_drop"
    (alarm,) = alarms(events)
    assert alarm["kind"] == "recording_failed" and alarm["port"] == "a"
    assert CALL_ID in alarm["detail"] and "No space left on device" in alarm["detail"]


def test_an_overloaded_writer_drops_audio_for_silence_and_keeps_the_timing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The engine side as the runtime drives it, with a writer that has not started yet: it
    # falls behind from the first tick, so past the backlog limit audio is dropped.
    monkeypatch.setattr(recorder_module, "MAX_BACKLOG_S", 0.2)  # 10 ticks
    recorder = CallRecorder(tmp_path / "rec")
    engine, radios = build_engine(), radios_with_a_call()
    events: list[Event] = []
    for _ in range(round((AT_S + TONE_S) * 1000 / 20) + 5):
        rx, carrier = radios.frame()
        result = engine.tick(rx, carrier)
        recorder.on_events(result.events)
        recorder.on_tick(engine, rx)
        events += result.events + recorder.take_alarms(engine)
    recorder.start()
    assert recorder.close()

    end = only(events, "call_end")
    assert recorder.stats.dropped_frames == 40  # 50 ticks of call, 10 queued
    (alarm,) = alarms(events)
    assert alarm["port"] == "a" and "0.8 s of its audio are silence" in alarm["detail"]
    samples = read_wav(Path(end["recording"]))
    assert samples.size == round(end["duration_s"] * RATE)  # the timing is kept
    np.testing.assert_array_equal(samples[: 10 * FRAME], expected_tone()[: 10 * FRAME])
    assert not samples[10 * FRAME :].any()


# ---------------------------------------------------------------------------- retention
def test_keep_days_deletes_old_recordings_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "rec"
    ten_days_ago = time.time() - 10 * 86400

    def make(relative: str, old: bool) -> Path:
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"audio")
        if old:
            os.utime(path, (ten_days_ago, ten_days_ago))
        return path

    gone = [make("2025-01-01/a.wav", True), make("2025-01-02/b.mp3", True)]
    kept = [
        make("2025-01-02/c.opus", False),  # recent: its folder stays too
        make("2025-01-03/notes.txt", True),  # not a recording
        make("other/d.wav", True),  # not in a date folder
    ]
    monkeypatch.setattr(recorder_module, "PRUNE_EVERY_S", 0.05)
    with CallRecorder(root, keep_days=7):
        wait_for(lambda: not any(p.exists() for p in gone))
        assert not (root / "2025-01-01").exists()  # emptied date folder removed
        later = make("2025-01-04/e.wav", True)  # the hourly run (here every 50 ms) takes it
        wait_for(lambda: not later.exists())
    assert all(p.exists() for p in kept)


# ---------------------------------------------------------------------------- simulate
SITE = """\
gateway: {id: peace-arch, frame_ms: 20}
agencies:
  rcmp:
    name: Royal Canadian Mounted Police
    country: CA
    talkgroups:
      tac2: {rx_mhz: 142.470}
  usbp:
    name: U.S. Border Patrol
    country: US
    talkgroups:
      ch4: {rx_mhz: 163.100}
radios:
  rcmp-1: {talkgroup: rcmp/tac2, simulated: {}}
  usbp-1: {talkgroup: usbp/ch4, simulated: {}}
patches:
  border-tac: {members: [rcmp/tac2, usbp/ch4], enabled: true}
recording: {dir: /nonexistent/recordings, format: wav, keep_days: 30}
"""

SCENARIO = """\
start: "2026-01-01T00:00:00Z"
duration_s: 4
events:
  - {at: 1.0, port: rcmp-1, receive: {tone_hz: 1000, level_dbfs: -12, seconds: 2}}
"""


def test_simulate_records_calls_into_its_out_dir(tmp_path: Path) -> None:
    config, scenario = tmp_path / "site.yaml", tmp_path / "scenario.yaml"
    config.write_text(SITE)
    scenario.write_text(SCENARIO)
    out = tmp_path / "out"
    for _ in range(2):  # a second run replaces the first one's files
        assert run(["simulate", str(config), str(scenario), "--out", str(out)]) == 0
    lines = (out / "events.jsonl").read_text().splitlines()
    (end,) = [e for e in map(json.loads, lines) if e["type"] == "call_end"]
    path = out / "recordings" / DAY / "peace-arch-20260101T000001.000Z-rcmp-1.wav"
    assert end["recording"] == str(path)
    samples = read_wav(path)
    assert samples.size == round(end["duration_s"] * RATE) == 2 * RATE
    np.testing.assert_array_equal(samples, to_pcm16(tone(1000.0, 2.0, -12.0)))
    assert [p.name for p in (out / "recordings" / DAY).iterdir()] == [path.name]


SCENARIO_TWO_CALLS = """\
start: "2026-01-01T00:00:00Z"
duration_s: 8
events:
  - {at: 1.0, port: rcmp-1, receive: {tone_hz: 1000, level_dbfs: -12, seconds: 2}}
  - {at: 5.0, port: usbp-1, receive: {tone_hz: 1000, level_dbfs: -12, seconds: 1}}
"""


def test_simulate_encodes_after_the_run_and_reports_a_failed_file_as_an_alarm(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, scenario = tmp_path / "site.yaml", tmp_path / "scenario.yaml"
    config.write_text(SITE.replace("format: wav", "format: opus"))
    scenario.write_text(SCENARIO_TWO_CALLS)
    out = tmp_path / "out"
    day = out / "recordings" / DAY
    blocked = day / "peace-arch-20260101T000005.000Z-usbp-1.opus"
    blocked.mkdir(parents=True)  # the second call's file cannot be put in place
    assert run(["simulate", str(config), str(scenario), "--out", str(out)]) == 0
    assert "2 recordings written in" in capsys.readouterr().out
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    ends = [e for e in events if e["type"] == "call_end"]
    first = Path(ends[0]["recording"])
    assert first == day / "peace-arch-20260101T000001.000Z-rcmp-1.opus"
    assert decode(first).duration_seconds == pytest.approx(ends[0]["duration_s"], abs=0.05)
    # The failure is the last event: an alarm naming the file, after the run's shutdown.
    assert events[-1]["type"] == "alarm" and events[-1]["kind"] == "recording_failed"
    assert str(blocked) in events[-1]["detail"] and events[-1]["port"] == "usbp-1"
    # Nothing temporary is left: the two recordings' places only.
    assert sorted(p.name for p in day.iterdir()) == sorted([first.name, blocked.name])
