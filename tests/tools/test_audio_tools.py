"""`crosspatch audio levels` and `crosspatch audio tone` as a technician runs them, with real
audio: a private PulseAudio with null sinks (tests/support/audio_env.py) stands in for the sound
cards, an RFC 2217 device server (tests/support/emulators/line_radio.py) for the serial line that
keys a radio on RTS and carries another's COS on CTS, a plain file for a CM108's hidraw, and the
Kenwood emulator on a pty for a CAT radio."""

from __future__ import annotations

import math
import os
import pty
import re
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import pytest
from scipy import signal as dsp

from gateway.control.state_store import StateLockedError, acquire_lock
from gateway.tools.audio_tone import LIMIT, tone_amplitude
from tests.support.emulators.kenwood import KenwoodRadio
from tests.support.emulators.line_radio import LineRadioServer

if TYPE_CHECKING:
    from tests.support.audio_env import AudioEnv, Recording

pytest_plugins = ["tests.support.audio_env"]

CROSSPATCH = [sys.executable, "-m", "gateway.cli"]
RATE = 48000
SINKS = ("a_rx", "a_tx", "b_rx", "b_tx")

# rcmp-1: keyed on RTS of the device server, VOX squelch with a CTCSS qualifier;
# usbp-1: keyed by a CM108 GPIO, COS on CTS of the same device server (left channel of card b);
# cbsa-1: CAT control, so CAT PTT and squelch (right channel of card b);
# nps-1: receive only, on a card that is not there; wcso-1: simulated.
SITE = """\
gateway: {{id: tools-gw, state_dir: {state_dir}}}
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
      ch4: {{rx_mhz: 148.100}}
  cbsa:
    name: Canada Border Services Agency
    country: CA
    talkgroups:
      ops: {{rx_mhz: 146.520, mode: fm}}
  nps:
    name: National Park Service
    country: US
    talkgroups:
      ranger: {{rx_mhz: 143.900}}
  wcso:
    name: Whatcom County Sheriff
    country: US
    talkgroups:
      main: {{rx_mhz: 155.550}}
radios:
  rcmp-1:
    talkgroup: rcmp/tac2
    audio: {{input: a_rx_rec, output: a_tx_play}}
    ptt: {{method: rts, port: "{line}"}}
    squelch: {{method: vox, vox_threshold_dbfs: -40, ctcss_hz: 100.0}}
    timing: {{tx_delay_ms: 300}}
  usbp-1:
    talkgroup: usbp/ch4
    audio: {{input: b_rx_rec, output: b_tx_play, channel: left}}
    ptt: {{method: cm108, port: {hidraw}}}
    squelch: {{method: cts, port: "{line}"}}
    timing: {{tx_delay_ms: 100}}
  cbsa-1:
    talkgroup: cbsa/ops
    audio: {{input: b_rx_rec, output: b_tx_play, channel: right}}
    control: {{driver: kenwood, port: {cat}}}
    timing: {{tx_delay_ms: 100}}
  nps-1:
    talkgroup: nps/ranger
    audio: {{input: c_rx_rec, output: c_tx_play}}
    ptt: {{method: none}}
    squelch: {{method: vox}}
  wcso-1:
    talkgroup: wcso/main
    simulated: {{}}
access:
  technicians: [tech1]
"""

METER = re.compile(
    r"^\s*(?P<t>[\d.]+) s  rms\s+(?P<rms>-?[\d.]+) dBFS  peak\s+(?P<peak>-?[\d.]+) dBFS"
    r"  vox (?P<vox>on|off)\s+(?:carrier (?P<carrier>open|closed|-)  )?"
    r"ctcss (?P<ctcss>.+?)  rx (?P<rx>yes|no)$"
)


@dataclass
class Site:
    config: Path
    state_dir: Path
    line: LineRadioServer
    cat: KenwoodRadio
    hidraw: Path
    env: AudioEnv

    @property
    def environ(self) -> dict[str, str]:
        return {**os.environ, **self.env.environ}


@pytest.fixture(scope="module")
def sinks(audio_env: AudioEnv) -> Iterator[AudioEnv]:
    for name in SINKS:
        audio_env.add_sink(name)
    yield audio_env
    for name in SINKS:
        audio_env.remove_sink(name)


@pytest.fixture
def site(tmp_path: Path, sinks: AudioEnv) -> Iterator[Site]:
    with LineRadioServer() as line, KenwoodRadio() as cat:
        state_dir = tmp_path / "state"
        acquire_lock(state_dir).release()  # a daemon ran here before, and stopped
        hidraw = tmp_path / "hidraw0"  # a file stands in for the CM108: it keeps the reports
        hidraw.touch()
        config = tmp_path / "crosspatch.yaml"
        config.write_text(
            SITE.format(state_dir=state_dir, line=line.url, cat=cat.path, hidraw=hidraw)
        )
        yield Site(config, state_dir, line, cat, hidraw, sinks)
        assert not line.rts, "rcmp-1 was left keyed"
        assert not cat.ptt, "cbsa-1 was left keyed"


class Tool:
    """A `crosspatch audio ...` subprocess whose output lines are stamped as they arrive."""

    def __init__(self, site: Site, *args: str) -> None:
        self.proc = subprocess.Popen(
            [*CROSSPATCH, "audio", *args, "--config", str(site.config)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=site.environ,
        )
        self.lines: list[tuple[float, str]] = []
        self.err = ""
        self._threads = [
            threading.Thread(target=self._read_out, daemon=True),
            threading.Thread(target=self._read_err, daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def _read_out(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append((time.monotonic(), line.rstrip("\n")))

    def _read_err(self) -> None:
        assert self.proc.stderr is not None
        self.err = self.proc.stderr.read()

    @property
    def out(self) -> str:
        return "\n".join(line for _, line in self.lines)

    def wait_for_line(self, what: Callable[[str], bool], timeout: float = 20.0) -> float:
        """When the first line `what` accepts arrived."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for at, line in list(self.lines):
                if what(line):
                    return at
            if self.proc.poll() is not None and not self._threads[0].is_alive():
                break
            time.sleep(0.02)
        raise AssertionError(f"no such line; output:\n{self.out}\nstderr:\n{self.err}")

    def finish(self, timeout: float = 30.0) -> int:
        try:
            code = self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
        for thread in self._threads:
            thread.join(5)
        return code

    def meters(self, start: float = 0.0, end: float = math.inf) -> list[dict[str, str]]:
        """The meter lines that arrived between `start` and `end` (time.monotonic())."""
        found = []
        for at, line in self.lines:
            match = METER.match(line)
            if match and start <= at <= end:
                found.append(match.groupdict())
        return found


def tone(hz: float, seconds: float, dbfs: float) -> npt.NDArray[np.float32]:
    t = np.arange(round(seconds * RATE)) / RATE
    return (10 ** (dbfs / 20) * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def level_at(x: npt.NDArray[np.float32], hz: float) -> float:
    """Peak level in dBFS of a sine at `hz` in x, from the power within 20 Hz of it."""
    freqs, psd = dsp.welch(x.astype(np.float64), RATE, nperseg=4800)
    band = np.abs(freqs - hz) <= 20
    power = float(psd[band].sum() * (freqs[1] - freqs[0]))
    return 20 * math.log10(math.sqrt(2 * power))


def sample_time(recording: Recording, index: int) -> float:
    """When sample `index` of a recording came in (time.monotonic()): its first block of 480
    frames arrived at `started_at`."""
    assert recording.started_at is not None
    return recording.started_at + (index - 480) / RATE


def assert_clean(tool: Tool, code: int) -> None:
    """Exit 0 and no error; stderr may hold ALSA's own notices (an underrun under load)."""
    assert code == 0, f"exit {code}\n{tool.out}\n{tool.err}"
    assert "Traceback" not in tool.err + tool.out, tool.err
    assert "crosspatch audio:" not in tool.err, tool.err


def assert_one_line_error(code: int, out: str, err: str, *expected: str) -> None:
    assert code == 1, (out, err)
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("crosspatch audio: "), err
    for text in expected:
        assert text in lines[0]
    assert "Traceback" not in err


# ------------------------------------------------------------------------------------ levels
def test_levels_shows_the_level_vox_and_ctcss_of_what_the_receiver_plays(site: Site) -> None:
    tool = Tool(site, "levels", "--radio", "rcmp-1")
    try:
        tool.wait_for_line(lambda line: METER.match(line) is not None)
        played = time.monotonic()
        # Voice-band tone at -12 dBFS, then the same with RCMP's 100 Hz CTCSS tone under it.
        voice = np.concatenate([tone(1000, 2.0, -12), tone(1000, 2.0, -12) + tone(100, 2.0, -20)])
        site.env.play(site.env.pcm_play("a_rx"), voice, RATE)
        ended = time.monotonic()
        # The stretches below count from when the tool heard the voice begin: the player may
        # take a while to start on a busy machine.
        onset = next(
            (
                at
                for at, line in list(tool.lines)
                if (meter := METER.match(line)) and at >= played and float(meter["peak"]) > -30
            ),
            played,  # never heard: the checks below say so
        )
        # Silence: VOX hangs 500 ms, the CTCSS decoder lets go in ~120 ms; meters of it.
        deadline = time.monotonic() + 20
        while len(tool.meters(ended + 1.2)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        tool.proc.send_signal(signal.SIGINT)
        code = tool.finish()
    finally:
        tool.finish()
    assert_clean(tool, code)

    alone = tool.meters(onset + 0.5, onset + 1.6)
    assert len(alone) >= 3, tool.out
    for meter in alone:
        assert float(meter["peak"]) == pytest.approx(-12, abs=1.5), tool.out
        assert float(meter["rms"]) == pytest.approx(-15, abs=1.5), tool.out  # a sine: 3 dB less
        assert meter["vox"] == "on"
        assert meter["ctcss"] == "none (configured 100.0 Hz)"
        assert meter["rx"] == "no"  # the carrier counts only with its tone
    with_tone = tool.meters(onset + 2.6, onset + 3.6)
    assert len(with_tone) >= 3, tool.out
    for meter in with_tone:
        assert meter["ctcss"] == "100.0 Hz (configured)", tool.out
        assert meter["vox"] == "on" and meter["rx"] == "yes"
    silence = tool.meters(ended + 1.2)
    assert len(silence) >= 2, tool.out
    for meter in silence:
        assert meter["vox"] == "off", tool.out
        assert meter["ctcss"] == "none (configured 100.0 Hz)"
        assert float(meter["rms"]) < -90 and meter["rx"] == "no"
    assert "CTCSS tones seen: 100.0 Hz" in tool.lines[-1][1]


def test_levels_shows_the_carrier_of_a_squelch_line_and_holds_the_daemon_off(
    site: Site,
) -> None:
    keyed_before = site.line.levels("rts")
    tool = Tool(site, "levels", "--radio", "usbp-1", "--seconds", "3")
    try:
        tool.wait_for_line(lambda line: "carrier closed" in line)
        with pytest.raises(StateLockedError, match=f"pid {tool.proc.pid}"):
            acquire_lock(site.state_dir)  # the daemon cannot start under the tool
        opened = site.line.set_input("cts", True)
        code = tool.finish()
    finally:
        tool.finish()
    assert_clean(tool, code)
    after = tool.meters(opened + 0.3)
    assert after and all(m["carrier"] == "open" and m["rx"] == "yes" for m in after), tool.out
    assert "squelch: CTS of " + site.line.url in tool.out
    # Opening the port for usbp-1's COS held rcmp-1's RTS (on the same port) unkeyed.
    assert not any(site.line.levels("rts")[len(keyed_before) :])


def test_levels_on_a_terminal_is_one_updating_line(site: Site) -> None:
    config = ["--config", str(site.config)]
    parent, child = pty.openpty()
    proc = subprocess.Popen(
        [*CROSSPATCH, "audio", "levels", "--radio", "rcmp-1", "--seconds", "1.5", *config],
        stdout=child,
        stderr=child,
        env=site.environ,
    )
    os.close(child)
    data = b""
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline:
            if select.select([parent], [], [], 0.5)[0]:
                data += os.read(parent, 4096)  # EIO once the tool has exited
    except OSError:
        pass
    finally:
        os.close(parent)
        if proc.poll() is None:
            proc.kill()
    assert proc.wait(10) == 0
    text = data.decode()
    lines = text.split("\r\n")
    meter_line = next(line for line in lines if line.startswith("\r["))
    updates = meter_line.split("\r")[1:]
    assert len(updates) >= 4, text  # four a second, all on one line
    assert all(update.endswith("\x1b[K") and " vox " in update for update in updates), text
    summary = [i for i, line in enumerate(lines) if re.match(r"\d+\.\d s: highest peak", line)]
    assert summary and summary[0] > lines.index(meter_line), text  # on a line of its own


# ------------------------------------------------------------------------------------ tone
def test_tone_keys_sends_the_tone_at_its_level_and_unkeys(site: Site) -> None:
    # As long as a slow start-up may take; ended half a second after the tool, whose PTT off
    # comes once the tone is out.
    recording = site.env.start_recording(site.env.pcm_record("a_tx"), 60.0, RATE)
    history_before = len(site.line.history)
    tool = Tool(site, "tone", "--radio", "rcmp-1", "--seconds", "2", "--level-dbfs", "-10")
    code = tool.finish()
    recording.stop_at(time.monotonic() + 0.5)
    out = recording.result(20)
    assert_clean(tool, code)
    lines = tool.out.splitlines()
    assert lines[2:5] == ["PTT on", "tone on", "tone off: 2.0 s sent"], tool.out
    assert re.fullmatch(r"PTT off after 2\.\d s on the air", lines[5]) and len(lines) == 6
    assert "PTT RTS of " + site.line.url in tool.out and "tx delay 300 ms" in tool.out
    assert "1000 Hz at -10.0 dBFS, output gain +0.0 dB, -10.0 dBFS at the card" in tool.out

    rts = [(at, level) for at, line, level in site.line.history[history_before:] if line == "rts"]
    keyed = [at for at, level in rts if level]
    assert len(keyed) == 1, rts
    unkeyed = [at for at, level in rts if not level and at > keyed[0]]
    assert unkeyed, rts
    loud = np.flatnonzero(np.abs(out) > 0.05)
    assert loud.size, "no tone was recorded"
    start, end = sample_time(recording, loud[0]), sample_time(recording, loud[-1])
    assert start - keyed[0] > 0.2  # after the 300 ms tx delay (null sinks: +-50 ms)
    assert unkeyed[0] > end - 0.05  # unkeyed once the tone was out
    assert (loud[-1] - loud[0]) / RATE == pytest.approx(2.0, abs=0.1)
    middle = out[loud[0] + RATE // 2 : loud[-1] - RATE // 2]
    assert level_at(middle, 1000) == pytest.approx(-10, abs=1.5)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_signal_mid_tone_unkeys_and_exits_0(site: Site, sig: int) -> None:
    tool = Tool(site, "tone", "--radio", "rcmp-1", "--seconds", "60")
    try:
        tool.wait_for_line(lambda line: line == "tone on")
        site.line.wait_for("rts", True)
        time.sleep(0.5)  # mid-tone: half a second of it on the air
        stopped = time.monotonic()
        tool.proc.send_signal(sig)
        code = tool.finish(timeout=10)
    finally:
        tool.finish()
    assert_clean(tool, code)
    # Unkeyed at once: after a 5 ms fade, the 100 ms tail and the card's queue (~0.3 s here).
    assert site.line.wait_for("rts", False) - stopped < 2.0, site.line.history
    assert re.search(r"^tone off: \d+\.\d s sent \(stopped\)$", tool.out, re.MULTILINE), tool.out
    assert tool.out.splitlines()[-1].startswith("PTT off after ")


def test_tone_keys_a_cm108_gpio_and_a_cat_radio(site: Site) -> None:
    tool = Tool(site, "tone", "--radio", "usbp-1", "--seconds", "1")
    assert_clean(tool, tool.finish())
    assert "PTT CM108 GPIO 3 of " + str(site.hidraw) in tool.out
    data = site.hidraw.read_bytes()
    reports = [data[i : i + 5] for i in range(0, len(data), 5)]
    off, on = bytes([0, 0, 0, 0x04, 0]), bytes([0, 0, 0x04, 0x04, 0])  # GPIO 3 low / high
    assert reports[:3] == [off, on, off], reports  # opened unkeyed, keyed, unkeyed
    assert set(reports[3:]) <= {off}

    tool = Tool(site, "tone", "--radio", "cbsa-1", "--seconds", "1")
    assert_clean(tool, tool.finish())
    assert "PTT CAT (" + site.cat.path + ")" in tool.out
    commands = site.cat.commands
    assert commands.count("TX") == 1 and commands.index("RX") > commands.index("TX")
    assert not site.cat.ptt


# ------------------------------------------------------------------------------------ refusals
@pytest.mark.parametrize(
    ("args", "expected"),
    [
        pytest.param(
            ["levels", "--radio", "nope"],
            ["no radio named 'nope'", "(radios: rcmp-1, usbp-1, cbsa-1, nps-1, wcso-1)"],
            id="unknown-radio",
        ),
        pytest.param(
            ["tone", "--radio", "wcso-1", "--seconds", "2"],
            ["radio 'wcso-1' has no sound card: it is simulated"],
            id="no-sound-card",
        ),
        pytest.param(
            ["tone", "--radio", "nps-1", "--seconds", "2"],
            ["radio 'nps-1' has no PTT (ptt method none)"],
            id="ptt-none",
        ),
        pytest.param(
            ["levels", "--radio", "nps-1"],
            ["no input sound device matches 'c_rx_rec'", "a_rx_rec"],  # and lists what exists
            id="missing-card",
        ),
        pytest.param(
            ["tone", "--radio", "rcmp-1", "--seconds", "0"],
            ["--seconds must be between 1 and 300 for a test tone"],
            id="seconds-0",
        ),
        pytest.param(
            ["tone", "--radio", "rcmp-1", "--seconds", "301"],
            ["--seconds must be between 1 and 300"],
            id="seconds-301",
        ),
        pytest.param(
            ["tone", "--radio", "rcmp-1", "--seconds", "nan"],
            ["--seconds must be between 1 and 300"],
            id="seconds-nan",
        ),
        pytest.param(
            ["tone", "--radio", "rcmp-1"], ["audio tone needs --seconds S"], id="no-seconds"
        ),
        pytest.param(
            ["tone", "--radio", "rcmp-1", "--seconds", "2", "--hz", "5000"],
            ["--hz must be between"],
            id="hz",
        ),
        pytest.param(
            ["tone", "--radio", "rcmp-1", "--seconds", "2", "--level-dbfs", "3"],
            ["--level-dbfs must be between -60 and 0"],
            id="level",
        ),
        pytest.param(
            ["levels", "--radio", "rcmp-1", "--seconds", "-1"],
            ["--seconds must be a positive number"],
            id="levels-seconds",
        ),
        pytest.param(["levels"], ["audio levels needs --radio NAME --config FILE"], id="no-radio"),
    ],
)
def test_bad_input_is_one_line_and_keys_nothing(
    site: Site, args: list[str], expected: list[str]
) -> None:
    result = subprocess.run(
        [*CROSSPATCH, "audio", *args, "--config", str(site.config)],
        capture_output=True,
        text=True,
        timeout=30,
        env=site.environ,
        check=False,
    )
    assert_one_line_error(result.returncode, result.stdout, result.stderr, *expected)
    assert not any(site.line.levels("rts"))


def test_a_ptt_device_that_will_not_open_is_one_line_and_keys_nothing(site: Site) -> None:
    site.hidraw.unlink()  # the CM108 unplugged
    args = ["tone", "--radio", "usbp-1", "--seconds", "1", "--config", str(site.config)]
    result = subprocess.run(
        [*CROSSPATCH, "audio", *args],
        capture_output=True,
        text=True,
        timeout=30,
        env=site.environ,
        check=False,
    )
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert result.stderr.splitlines() == [
        f"crosspatch audio: cannot open {site.hidraw}: No such file or directory"
    ]
    assert "PTT on" not in result.stdout
    assert not site.hidraw.exists()  # never created


def test_a_running_gateway_is_refused_and_left_alone(site: Site) -> None:
    config = ["--config", str(site.config)]
    with acquire_lock(site.state_dir):  # as the daemon holds it
        result = subprocess.run(
            [*CROSSPATCH, "audio", "tone", "--radio", "rcmp-1", "--seconds", "2", *config],
            capture_output=True,
            text=True,
            timeout=30,
            env=site.environ,
            check=False,
        )
    expected = (
        f"stop the gateway first: it drives these radios (crosspatch daemon pid {os.getpid()}"
    )
    assert_one_line_error(result.returncode, result.stdout, result.stderr, expected)
    assert site.line.history == []  # the serial line was never opened


def test_the_tone_level_goes_through_the_output_gain_and_limiter() -> None:
    for level, gain, at_card in ((-10, 0, -10), (-10, 6, -4), (-20, 19, -1)):
        amplitude, limited = tone_amplitude(level, gain)
        assert 20 * math.log10(amplitude) == pytest.approx(at_card) and not limited
    assert tone_amplitude(-10, 15) == (LIMIT, True)  # cut to -1 dBFS, as the daemon would
