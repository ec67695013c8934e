"""`crosspatch run` with sound-card radios, through a real PulseAudio (null sinks, ALSA `pulse`
PCMs) and PortAudio: what a radio's receiver plays into its card comes out of the other radio's
card, at the expected level, with PTT, and without the first agency's CTCSS tone."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import pytest
from scipy import signal

from tests.support.daemon import Daemon, Site, first_alarm

if TYPE_CHECKING:
    from tests.support.audio_env import AudioEnv

pytest_plugins = ["tests.support.audio_env"]

RATE = 48000
# A guard, not a measure: a recording of a few seconds may take this long on a starved machine.
RECORDING_LIMIT_S = 60
SITE = """\
gateway: {{id: audio-gw, frame_ms: 20, state_dir: {state_dir}}}
agencies:
  rcmp:
    name: Royal Canadian Mounted Police
    country: CA
    talkgroups:
      tac2: {{rx_mhz: 142.470, ctcss_hz: 100.0}}
  usbp:
    name: U.S. Border Patrol
    country: US
    talkgroups:
      ch4: {{rx_mhz: 163.100}}
radios:
  rcmp-1:
    talkgroup: rcmp/tac2
    audio: {{input: {a_in}, output: {a_out}, auto_level: false}}
    ptt: {{method: none}}
    squelch: {{method: vox, vox_threshold_dbfs: -40, ctcss_hz: 100.0}}
    timing: {{tx_delay_ms: 0, hang_ms: 300}}
  usbp-1:
    talkgroup: usbp/ch4
    audio: {{input: {b_in}, output: {b_out}, auto_level: false}}
    ptt: {{method: none}}
    squelch: {{method: vox, vox_threshold_dbfs: -40}}
    timing: {{tx_delay_ms: 0, hang_ms: 300}}
patches:
  border-tac: {{members: [rcmp/tac2, usbp/ch4], enabled: true}}
access:
  technicians: [tech1]
"""


def level_at(x: npt.NDArray[np.float32], hz: float) -> float:
    """Amplitude of a sine at `hz` in x, from the power within 20 Hz of it (Welch's method, so
    the phase steps of clock-drift corrections do not count as a loss of level)."""
    freqs, psd = signal.welch(x.astype(np.float64), RATE, nperseg=4800)
    band = np.abs(freqs - hz) <= 20
    power = float(psd[band].sum() * (freqs[1] - freqs[0]))
    return float(np.sqrt(2 * power))


def tone(hz: float, seconds: float, dbfs: float) -> npt.NDArray[np.float32]:
    t = np.arange(round(seconds * RATE)) / RATE
    return (10 ** (dbfs / 20) * np.sin(2 * np.pi * hz * t)).astype(np.float32)


@pytest.fixture
def audio_site(tmp_path: Path, audio_env: AudioEnv) -> Iterator[tuple[Site, AudioEnv]]:
    sinks = {name: audio_env.add_sink(name) for name in ("a_rx", "a_tx", "b_rx", "b_tx")}
    site = Site(tmp_path)
    site.config.write_text(
        SITE.format(
            state_dir=site.state_dir,
            a_in=audio_env.pcm_record(sinks["a_rx"]),  # the gateway hears what A's receiver plays
            a_out=audio_env.pcm_play(sinks["a_tx"]),  # and plays into A's transmitter
            b_in=audio_env.pcm_record(sinks["b_rx"]),
            b_out=audio_env.pcm_play(sinks["b_tx"]),
        )
    )
    yield site, audio_env
    site.close()
    for sink in sinks.values():
        if sink in audio_env.sinks:  # a test that failed while a card was unplugged
            audio_env.remove_sink(sink)


def test_a_tone_on_radio_a_comes_out_of_radio_b_with_ptt_and_without_the_ctcss(
    audio_site: tuple[Site, AudioEnv],
) -> None:
    site, env = audio_site
    daemon = site.start()
    site.wait_ready(daemon)
    # Voice (1 kHz at -12 dBFS) with RCMP's 100 Hz CTCSS tone under it, as a receiver delivers.
    voice = tone(1000, 3.0, -12) + tone(100, 3.0, -20)
    recording_b = env.start_recording(env.pcm_record("b_tx"), 4.0, RATE)
    recording_a = env.start_recording(env.pcm_record("a_tx"), 4.0, RATE)
    env.play(env.pcm_play("a_rx"), voice, RATE)
    out_b, out_a = recording_b.result(RECORDING_LIMIT_S), recording_a.result(RECORDING_LIMIT_S)

    ptt = daemon.wait_for(
        lambda: [e for e in daemon.events("ptt") if e["port"] == "usbp-1" and e["on"]]
    )
    assert ptt[0]["reason"] == "call"
    loud = np.flatnonzero(np.abs(out_b) > 0.05)
    assert loud.size > RATE  # more than a second of it came through
    middle = out_b[loud[0] + RATE // 2 : loud[0] + 3 * RATE // 2]
    one_khz = level_at(middle, 1000)
    assert 20 * np.log10(one_khz) == pytest.approx(-12, abs=1.5)  # at the level it went in
    ctcss = level_at(middle, 100)
    assert 20 * np.log10(max(ctcss, 1e-9) / 10 ** (-20 / 20)) < -30  # 100 Hz at least 30 dB down
    assert np.abs(out_a).max() < 0.01  # the talker does not hear itself
    status = site.status()
    audio = status["audio"]
    assert set(audio) == {"rcmp-1", "usbp-1"}
    assert {"underruns", "overruns", "rx_drift_corrections"} <= set(audio["usbp-1"])
    # The engine ticks once per frame of its clock card, at 50 a second, and the transmit FIFO
    # holds about a card block (10 ms) and a frame (20 ms) with PulseAudio's bursts on top, and
    # never more than the 120 ms at which a card that stalled is caught up with: not the second
    # of backlog a stalled card or extra ticks left behind. Sampled a few times: a sample falls
    # anywhere in a burst.
    clock = status["audio_clock"]
    assert clock["card_frames"] - clock["card_ticks"] - clock["repaid"] <= 1 + clock["backlog"]
    assert 45 <= status["ticks"]["ticks_per_s"] <= 55
    depths = []
    for _ in range(5):
        depths.append(site.status()["audio"]["usbp-1"]["tx_fifo_ms"])
        time.sleep(0.1)  # samples spread over half a second
    assert sorted(depths)[2] <= 120 + 40, depths
    assert daemon.stop() == 0


def test_without_its_ctcss_tone_the_carrier_is_ignored(audio_site: tuple[Site, AudioEnv]) -> None:
    site, env = audio_site
    daemon = site.start()
    site.wait_ready(daemon)
    recording_b = env.start_recording(env.pcm_record("b_tx"), 3.0, RATE)
    env.play(env.pcm_play("a_rx"), tone(1000, 2.0, -12), RATE)  # no 100 Hz tone: someone else
    out_b = recording_b.result(RECORDING_LIMIT_S)
    assert np.abs(out_b).max() < 0.01
    assert not daemon.events("call_start")
    assert daemon.stop() == 0


def test_a_missing_sound_card_is_one_line_naming_what_exists(
    audio_site: tuple[Site, AudioEnv],
) -> None:
    site, env = audio_site
    site.config.write_text(
        site.config.read_text().replace(env.pcm_record("b_rx"), "no_such_card", 1)
    )
    daemon = site.start()
    code = daemon.proc.wait(60)
    daemon.stop()
    assert code == 1
    errors = [line for line in daemon.lines if "no_such_card" in line]
    assert len(errors) == 1, daemon.log()
    assert "no input sound device matches 'no_such_card'" in errors[0]
    assert env.pcm_record("a_rx") in errors[0]  # what exists is listed
    assert "Traceback" not in daemon.log()


def a_is_heard_on_b(env: AudioEnv) -> bool:
    """Whether 2 s of RCMP voice (with its CTCSS) on radio A's receiver reach B's transmitter."""
    recording_b = env.start_recording(env.pcm_record("b_tx"), 3.0, RATE)
    env.play(env.pcm_play("a_rx"), tone(1000, 2.0, -12) + tone(100, 2.0, -20), RATE)
    out_b = recording_b.result(RECORDING_LIMIT_S)
    return bool(np.flatnonzero(np.abs(out_b) > 0.05).size > RATE)


def heard_again_after_replug(site: Site, daemon: Daemon, env: AudioEnv) -> None:
    """Radio A is heard on B again within three tries (a sound server starved by a busy machine
    may take a second or two to start a re-plugged card's stream); if not, the failure says
    where the audio stopped: A's carrier, B's PTT and both radios' sound-card counters."""
    since = len(daemon.events())
    for _ in range(3):
        if a_is_heard_on_b(env):
            return
    seen = [
        {k: e[k] for k in ("type", "port", "on", "reason", "time") if k in e}
        for e in daemon.events()[since:]
        if e["type"] in ("carrier", "ptt", "alarm")
    ]
    ports = {p["port"]: p for p in site.status()["ports"]}
    raise AssertionError(
        f"A not heard on B after the re-plug; events since: {seen}; "
        f"status: {json.dumps(ports)}\n" + daemon.log()[-6000:]
    )


def port_status(site: Site, port: str) -> dict[str, object]:
    ports: dict[str, dict[str, object]] = {p["port"]: p for p in site.status()["ports"]}
    return ports[port]


def test_an_unplugged_card_unkeys_its_radio_and_it_returns_when_plugged_back(
    audio_site: tuple[Site, AudioEnv],
) -> None:
    site, env = audio_site
    daemon = site.start()
    site.wait_ready(daemon)
    voice = tone(1000, 4.0, -12) + tone(100, 4.0, -20)
    talking = threading.Thread(target=env.play, args=(env.pcm_play("a_rx"), voice, RATE))
    talking.start()
    daemon.wait_for(lambda: [e for e in daemon.events("ptt") if e["port"] == "usbp-1" and e["on"]])

    env.unplug_sink("b_tx")  # radio B's transmit card goes, mid-call
    alarm = first_alarm(daemon, "port_offline", "usbp-1")
    assert env.pcm_play("b_tx") in alarm["detail"] and "output" in alarm["detail"]
    unkeyed = daemon.wait_for(
        lambda: [e for e in daemon.events("ptt") if e["port"] == "usbp-1" and not e["on"]]
    )
    assert unkeyed[0]["reason"] == "port_offline"
    assert port_status(site, "usbp-1")["online"] is False
    talking.join()

    env.replug_sink("b_tx")
    first_alarm(daemon, "port_online", "usbp-1", timeout=20)
    assert port_status(site, "usbp-1")["online"] is True
    heard_again_after_replug(site, daemon, env)  # patched again
    assert "Traceback" not in daemon.log()
    assert daemon.stop() == 0


def test_an_unplugged_receive_card_is_an_alarm_and_its_radio_is_heard_again_after(
    audio_site: tuple[Site, AudioEnv],
) -> None:
    site, env = audio_site
    daemon = site.start()
    site.wait_ready(daemon)
    env.unplug_sink("a_rx")
    alarm = first_alarm(daemon, "port_offline", "rcmp-1")
    assert env.pcm_record("a_rx") in alarm["detail"] and "input" in alarm["detail"]
    assert port_status(site, "rcmp-1")["online"] is False
    assert port_status(site, "usbp-1")["online"] is True  # the other radio carries on

    env.replug_sink("a_rx")
    first_alarm(daemon, "port_online", "rcmp-1", timeout=20)
    heard_again_after_replug(site, daemon, env)
    assert daemon.stop() == 0


ANNOUNCEMENTS = """\
announcements:
  level_dbfs: -6
  on_enable: {{tones: [[1000, 600]]}}
  on_disable: {{file: {disable_wav}}}
"""


def test_announcements_are_heard_on_every_member_card_with_ptt(
    audio_site: tuple[Site, AudioEnv], tmp_path: Path
) -> None:
    """A dispatcher enables the patch: both agencies' transmitters play the enable prompt; on
    disable they play the recorded prompt (a WAV file read through pydub), each keyed for it."""
    import wave

    site, env = audio_site
    disable_wav = tmp_path / "patch-down.wav"
    with wave.open(str(disable_wav), "wb") as out:  # a 1.5 kHz prompt recorded at 16 kHz
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        t = np.arange(8000) / 16000
        out.writeframes((0.3 * 32767 * np.sin(2 * np.pi * 1500 * t)).astype(np.int16).tobytes())
    text = site.config.read_text().replace("enabled: true", "enabled: false")
    site.config.write_text(text + ANNOUNCEMENTS.format(disable_wav=disable_wav))
    daemon = site.start()
    site.wait_ready(daemon)

    def prompt_over(since: int) -> bool:
        """Both transmitters were keyed for a prompt after event `since`, and unkeyed after."""
        ptt = daemon.events("ptt")[since:]
        keyed = {
            e["port"]: i for i, e in enumerate(ptt) if e["on"] and e["reason"] == "announcement"
        }
        return all(
            port in keyed and any(not e["on"] and e["port"] == port for e in ptt[keyed[port] :])
            for port in ("rcmp-1", "usbp-1")
        )

    def heard(command: str, hz: float) -> list[npt.NDArray[np.float32]]:
        # Recorded until the daemon says both prompts are over, however long the CLI's start-up
        # takes on a busy machine, plus the way out through the sound server.
        since = len(daemon.events("ptt"))
        recordings = [
            env.start_recording(env.pcm_record(s), RECORDING_LIMIT_S, RATE)
            for s in ("a_tx", "b_tx")
        ]
        result = site.cli("patch", command, "border-tac")
        assert result.returncode == 0, result.stderr
        daemon.wait_for(lambda: prompt_over(since), timeout=RECORDING_LIMIT_S / 2)
        for recording in recordings:
            recording.stop_at(time.monotonic() + 1.0)
        outs = [r.result(RECORDING_LIMIT_S) for r in recordings]
        for out in outs:
            loud = np.flatnonzero(np.abs(out) > 0.05)
            assert loud.size > RATE // 4, (command, "no prompt")  # a quarter second or more
            middle = out[loud[0] + RATE // 10 : loud[0] + RATE // 4]
            # The prompt at its peak level and pitch (the WAV resampled from its 16 kHz).
            assert 20 * np.log10(level_at(middle, hz)) == pytest.approx(-6, abs=1.5)
        return outs

    heard("enable", 1000)
    keyed = daemon.wait_for(
        lambda: (
            {e["port"] for e in daemon.events("ptt") if e["on"] and e["reason"] == "announcement"}
            >= {"rcmp-1", "usbp-1"}
        )
    )
    assert keyed
    heard("disable", 1500)
    assert daemon.wait_for(
        lambda: (
            len([e for e in daemon.events("ptt") if e["on"] and e["reason"] == "announcement"]) >= 4
        )
    )
    assert daemon.stop() == 0
