"""`crosspatch run` with ONE stereo sound card serving two radios, through a real PulseAudio (null
sinks, ALSA `pulse` PCMs) and PortAudio.

The card is a pair of null sinks: what the receivers play goes into `card_rx` (radio A, rcmp-1,
on the left channel; radio B, usbp-1, on the right), and the gateway's transmit audio goes into
`card_tx` (A's transmitter on the left, B's on the right). A tone on one receive channel must come
out on the OTHER radio's transmit channel only, at the level it went in, with that radio keyed.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import pytest
from scipy import signal

from tests.support.daemon import Daemon, Site

if TYPE_CHECKING:
    from tests.support.audio_env import AudioEnv

pytest_plugins = ["tests.support.audio_env"]

RATE = 48000
LEVEL_DBFS = -12.0
SITE = """\
gateway: {{id: stereo-gw, frame_ms: 20, state_dir: {state_dir}}}
agencies:
  rcmp:
    name: Royal Canadian Mounted Police
    country: CA
    talkgroups:
      tac2: {{rx_mhz: 142.470}}
  usbp:
    name: U.S. Border Patrol
    country: US
    talkgroups:
      ch4: {{rx_mhz: 163.100}}
radios:
  rcmp-1:
    talkgroup: rcmp/tac2
    audio: {{input: {card_in}, output: {card_out}, channel: left, auto_level: false}}
    ptt: {{method: none}}
    squelch: {{method: vox, vox_threshold_dbfs: -40}}
    timing: {{tx_delay_ms: 0, hang_ms: 300}}
  usbp-1:
    talkgroup: usbp/ch4
    audio: {{input: {card_in}, output: {card_out}, channel: right, auto_level: false}}
    ptt: {{method: none}}
    squelch: {{method: vox, vox_threshold_dbfs: -40}}
    timing: {{tx_delay_ms: 0, hang_ms: 300}}
patches:
  border-tac: {{members: [rcmp/tac2, usbp/ch4], enabled: true}}
access:
  technicians: [tech1]
"""

Samples = npt.NDArray[np.float32]


def level_at(x: Samples, hz: float) -> float:
    """Amplitude of a sine at `hz` in x, from the power within 20 Hz of it (Welch's method, so
    the phase steps of clock-drift corrections do not count as a loss of level)."""
    freqs, psd = signal.welch(x.astype(np.float64), RATE, nperseg=4800)
    band = np.abs(freqs - hz) <= 20
    power = float(psd[band].sum() * (freqs[1] - freqs[0]))
    return float(np.sqrt(2 * power))


def present_level_at(x: Samples, hz: float) -> tuple[float, float]:
    """(amplitude of the sine at `hz`, fraction of x it is present in), over the 10 ms blocks
    that carry it: on a busy machine the test's own player can underrun and leave gaps, which
    are no loss of level in the gateway (the fraction says how much of it came through)."""
    blocks = x[: x.size // 480 * 480].reshape(-1, 480).astype(np.float64)
    rms = np.sqrt(np.mean(np.square(blocks), axis=1))
    present = blocks[rms > 0.01]
    if not present.size:
        return 0.0, 0.0
    return level_at(present.reshape(-1), hz), present.shape[0] / blocks.shape[0]


def dbfs(amplitude: float) -> float:
    return float(20 * np.log10(max(amplitude, 1e-9)))


def tone(hz: float, seconds: float, level_dbfs: float) -> Samples:
    t = np.arange(round(seconds * RATE)) / RATE
    return (10 ** (level_dbfs / 20) * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def on_one_channel(mono: Samples, channel: int) -> Samples:
    """A stereo block (frames x 2) with `mono` on `channel` (0 left, 1 right), silence on the
    other."""
    stereo = np.zeros((mono.size, 2), dtype=np.float32)
    stereo[:, channel] = mono
    return stereo


def keyed(daemon: Daemon, port: str) -> list[dict[str, Any]]:
    return [e for e in daemon.events("ptt") if e["port"] == port and e["on"]]


@pytest.fixture
def stereo_site(tmp_path: Path, audio_env: AudioEnv) -> Iterator[tuple[Site, AudioEnv]]:
    sinks = [audio_env.add_sink(name, channels=2) for name in ("card_rx", "card_tx")]
    site = Site(tmp_path)
    site.config.write_text(
        SITE.format(
            state_dir=site.state_dir,
            card_in=audio_env.pcm_record("card_rx"),  # both radios' receivers, left and right
            card_out=audio_env.pcm_play("card_tx"),  # both radios' transmitters, left and right
        )
    )
    yield site, audio_env
    site.close()
    for sink in sinks:
        audio_env.remove_sink(sink)


def check_crossing(
    site: Site,
    env: AudioEnv,
    daemon: Daemon,
    *,
    hz: float,
    talker: tuple[str, int],
    listener: tuple[str, int],
) -> None:
    """Plays a tone on the talker radio's receive channel; asserts it comes out of the listener
    radio's transmit channel only, at its level, with the listener keyed for a call."""
    talker_port, talker_channel = talker
    listener_port, listener_channel = listener
    keyed_before = len(keyed(daemon, talker_port))
    recording = env.start_recording(env.pcm_record("card_tx"), 4.5, RATE, channels=2)
    env.play(
        env.pcm_play("card_rx"), on_one_channel(tone(hz, 3.0, LEVEL_DBFS), talker_channel), RATE
    )
    out = recording.result(15)
    assert out.shape[1] == 2

    ptt = daemon.wait_for(lambda: keyed(daemon, listener_port))
    assert ptt[-1]["reason"] == "call", ptt
    calls = daemon.wait_for(lambda: daemon.events("call_start"))
    assert calls[-1]["source"]["port"] == talker_port, calls[-1]
    # The talker's own transmitter was never keyed: its receive audio was not heard as the
    # listener's (the channels of the card do not leak into each other).
    assert len(keyed(daemon, talker_port)) == keyed_before, daemon.events("ptt")

    heard, quiet = out[:, listener_channel], out[:, talker_channel]
    loud = np.flatnonzero(np.abs(heard) > 0.05)
    assert loud.size > RATE, (
        f"{hz:g} Hz played on channel {talker_channel} ({talker_port}) came out of channel "
        f"{listener_channel} ({listener_port}) for {loud.size / RATE:.2f} s, not ~3 s "
        f"(peak there {np.abs(heard).max():.4f}, on the other channel {np.abs(quiet).max():.4f})"
    )
    middle = heard[loud[0] + RATE // 2 : loud[0] + 3 * RATE // 2]
    level, present = present_level_at(middle, hz)
    assert present >= 0.8, f"the tone was there for {present:.0%} of the middle second"
    assert dbfs(level) == pytest.approx(LEVEL_DBFS, abs=1.5)
    # The talker's transmit channel stays silent: a stereo card's columns are not mixed.
    assert np.abs(quiet).max() < 1e-3, (
        f"{talker_port}'s transmit channel {talker_channel} carries "
        f"{dbfs(float(np.abs(quiet).max())):.1f} dBFS while only {listener_port} transmits"
    )


def test_one_stereo_card_crosses_left_receive_to_right_transmit_and_back(
    stereo_site: tuple[Site, AudioEnv],
) -> None:
    site, env = stereo_site
    daemon = site.start()
    site.wait_ready(daemon)

    # Radio A (left) receives 1 kHz: radio B (right) transmits it.
    check_crossing(site, env, daemon, hz=1000, talker=("rcmp-1", 0), listener=("usbp-1", 1))
    daemon.wait_for(lambda: daemon.events("call_end"))
    daemon.wait_for(
        lambda: (p := daemon.events("ptt")) and p[-1]["port"] == "usbp-1" and not p[-1]["on"]
    )

    # Radio B (right) receives 1.5 kHz: radio A (left) transmits it.
    check_crossing(site, env, daemon, hz=1500, talker=("usbp-1", 1), listener=("rcmp-1", 0))
    ends = daemon.wait_for(
        lambda: len(daemon.events("call_end")) >= 2 and daemon.events("call_end")
    )
    assert [e["source"]["port"] for e in ends] == ["rcmp-1", "usbp-1"]

    audio = site.status()["audio"]
    assert set(audio) == {"rcmp-1", "usbp-1"}
    assert daemon.stop() == 0
