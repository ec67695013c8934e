"""`crosspatch radio probe|tune|key|watch` and `crosspatch devices`, as a technician runs them,
against the Kenwood emulator on a real pty and a real rigctld."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.cli import run
from tests.support.child_lines import ChildLines
from tests.support.emulators.kenwood import KenwoodRadio

CROSSPATCH = [sys.executable, "-m", "gateway.cli"]


@pytest.fixture
def radio() -> Iterator[KenwoodRadio]:
    with KenwoodRadio() as r:
        yield r
        assert not r.ptt, "the radio was left keyed"


def test_probe_names_the_radio_and_its_channel(
    radio: KenwoodRadio, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["radio", "probe", "--driver", "kenwood", "--port", radio.path]) == 0
    out = capsys.readouterr().out
    assert "TS-2000" in out
    # The emulated TS-2000 starts on 14.074 MHz USB: the probe says it is no usable channel.
    assert "tuned: not on an FM/AM channel" in out and "MD2" in out
    assert "squelch: closed" in out
    radio.vfo_a.mode = "4"  # FM
    assert run(["radio", "probe", "--driver", "kenwood", "--port", radio.path]) == 0
    assert "tuned: 14.07400 MHz FM" in capsys.readouterr().out


def test_tune_sets_and_verifies_the_channel(
    radio: KenwoodRadio, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["radio", "tune", "--driver", "kenwood", "--port", radio.path]
    assert run([*args, "--rx-mhz", "146.52", "--ctcss", "100.0", "--mode", "fm"]) == 0
    assert "tuned and verified: 146.52000 MHz FM, CTCSS 100 Hz" in capsys.readouterr().out
    assert radio.vfo_a.hz == 146_520_000


def test_tune_to_a_configured_radios_talkgroup(
    radio: KenwoodRadio, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "site.yaml"
    config.write_text(
        f"""\
gateway: {{id: bench}}
agencies:
  rcmp:
    name: Royal Canadian Mounted Police
    country: CA
    talkgroups:
      tac2: {{rx_mhz: 146.52, mode: fm, ctcss_hz: 131.8}}
radios:
  rcmp-1:
    talkgroup: rcmp/tac2
    audio: {{input: "USB Audio", output: "USB Audio"}}
    control: {{driver: kenwood, port: {radio.path}, baud: 9600}}
"""
    )
    assert run(["radio", "tune", "--radio", "rcmp-1", "--config", str(config)]) == 0
    assert "146.52000 MHz FM, CTCSS 131.8 Hz" in capsys.readouterr().out
    assert radio.vfo_a.hz == 146_520_000


def test_key_transmits_for_the_given_time_and_unkeys(
    radio: KenwoodRadio, capsys: pytest.CaptureFixture[str]
) -> None:
    started = time.monotonic()
    assert (
        run(["radio", "key", "--driver", "kenwood", "--port", radio.path, "--seconds", "0.5"]) == 0
    )
    assert time.monotonic() - started >= 0.5
    assert "unkeyed" in capsys.readouterr().out
    assert not radio.ptt
    commands = radio.commands
    assert "TX" in commands and commands.index("RX") > commands.index("TX")


def test_ctrl_c_during_key_unkeys_at_once(radio: KenwoodRadio) -> None:
    proc = subprocess.Popen(
        [
            *CROSSPATCH,
            "radio",
            "key",
            "--driver",
            "kenwood",
            "--port",
            radio.path,
            "--seconds",
            "30",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 15
        while not radio.ptt and time.monotonic() < deadline:
            time.sleep(0.02)
        assert radio.ptt, "the radio never keyed"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    assert proc.returncode == 0, err
    assert not radio.ptt
    assert "unkeyed" in out and "Traceback" not in err


def test_watch_reports_squelch_changes(radio: KenwoodRadio) -> None:
    # Each line reaches a pipe when it is printed, without PYTHONUNBUFFERED in the environment
    # (grep, logger and scripts read `watch` through a pipe).
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    proc = subprocess.Popen(
        [*CROSSPATCH, "radio", "watch", "--driver", "kenwood", "--port", radio.path],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        lines = ChildLines(proc.stdout)
        assert "squelch closed" in lines.next(timeout_s=30)  # the first: once it has started
        radio.squelch_open = True
        assert "squelch OPEN" in lines.next()
        radio.squelch_open = False
        assert "squelch closed" in lines.next()
        proc.send_signal(signal.SIGINT)
        out = lines.rest()
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    assert "2 squelch changes seen" in out


def test_a_radio_that_does_not_answer_is_one_line(
    radio: KenwoodRadio, capsys: pytest.CaptureFixture[str]
) -> None:
    radio.silent = True
    assert run(["radio", "probe", "--driver", "kenwood", "--port", radio.path]) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("crosspatch radio: ") and "no answer" in line


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--driver", "kenwood", "--port", "/dev/no-such-tty"], "cannot open /dev/no-such-tty"),
        (["--driver", "nosuch", "--port", "/dev/null"], "unknown CAT driver 'nosuch'"),
        (["--driver", "icom", "--port", "/dev/null"], "CI-V address"),
        (["--driver", "rigctld", "--port", "localhost"], "HOST:PORT"),
        (["--radio", "x"], "--radio needs --config"),
        ([], "name the radio"),
    ],
)
def test_bad_radio_arguments_are_one_line(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["radio", "probe", *args]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    (line,) = err.strip().splitlines()
    assert message in line


def test_key_refuses_a_long_test_transmission(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["radio", "key", "--driver", "kenwood", "--port", "/dev/null", "--seconds", "120"]
    assert run(args) == 1
    assert "between 0 and 60" in capsys.readouterr().err


def test_devices_lists_serial_ports_and_sound_devices(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["devices"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("serial ports:") and "\nsound devices (" in out
