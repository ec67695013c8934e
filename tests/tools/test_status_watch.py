"""`crosspatch status --watch` on a real daemon of simulated radios: the picture fits 80x24 and
shows a call's lights, the watch goes on through a daemon that stops answering, and Ctrl-C ends it
with the terminal given back."""

from __future__ import annotations

import fcntl
import io
import os
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from gateway.cli import run
from gateway.config import load_config
from gateway.core.events import EventStamper, TickClock
from gateway.ports.simulated import SimulatedRadios
from gateway.run.site import build_site
from gateway.sim.demo import DemoView, demo_config_path
from gateway.sim.simulate import add_configured_traffic
from gateway.tools.status_watch import StatusScreen
from tests.support.daemon import Site

CROSSPATCH = [sys.executable, "-m", "gateway.cli"]
ALT_SCREEN_OFF = b"\x1b[?1049l"


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    s = Site(tmp_path)
    yield s
    s.close()


def screen_text(screen: StatusScreen, width: int = 80, height: int = 24) -> list[str]:
    console = Console(
        file=io.StringIO(), width=width, height=height, force_terminal=False, color_system=None
    )
    console.print(screen.render(width, height, time.monotonic()))
    text: str = console.file.getvalue()  # type: ignore[attr-defined]
    return text.splitlines()


def line_of(lines: list[str], start: str) -> str:
    found = [line for line in lines if line.startswith(start)]
    assert found, "\n".join(lines)
    return found[0]


class Pty:
    """A command on a pseudo-terminal of 80x24, its output collected."""

    def __init__(self, *args: str) -> None:
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
        env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
        env["TERM"] = "xterm-256color"
        self.proc = subprocess.Popen(
            [*CROSSPATCH, *args], stdin=slave, stdout=slave, stderr=slave, env=env
        )
        os.close(slave)
        self.master = master
        self.output = b""
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:  # the other side closed
                return
            if not chunk:
                return
            self.output += chunk

    def wait_for(self, what: Callable[[bytes], Any], timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if what(self.output):
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"not seen (exit {self.proc.poll()}): {self.output[-3000:]!r}")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        self._reader.join(5)
        os.close(self.master)


def test_watch_shows_a_call_fits_80x24_and_ends_on_ctrl_c(site: Site) -> None:
    daemon = site.start()
    site.wait_ready(daemon)
    # rcmp-1 talks 8 s in every 9 into border-tac: wait for a call on the air.
    status = daemon.wait_for(lambda: (s := site.status())["calls"] and s)
    screen = StatusScreen()
    screen.answered(status, time.monotonic())
    lines = screen_text(screen)
    assert len(lines) <= 24 and all(len(line) <= 80 for line in lines), "\n".join(lines)
    assert lines[0].startswith("crosspatch status test-gw  up ")
    assert "50.0 ticks/s" in lines[0]
    assert "● RX" in line_of(lines, "  rcmp-1 ") and "● TX" in line_of(lines, "  usbp-1 ")
    assert "border-tac" in line_of(lines, "  rcmp-1 ")
    calls = lines[lines.index("Calls in progress") + 1]
    assert "border-tac" in calls and "rcmp-1 (rcmp/tac2) → usbp-1" in calls
    assert line_of(lines, "  border-tac ").split()[1:3] == ["enabled", "first"]
    assert lines[lines.index("Alarms") + 1].strip() == "none"

    watch = Pty("status", "--watch", "--interval", "0.2", "--socket", str(site.socket))
    try:
        watch.wait_for(lambda out: b"test-gw" in out and "● TX".encode() in out)
        # The daemon stops: said at the top, and the watch goes on.
        assert daemon.stop() == 0
        watch.wait_for(lambda out: b"daemon not answering" in out)
        assert watch.proc.poll() is None
        watch.proc.send_signal(signal.SIGINT)
        assert watch.proc.wait(10) == 0
        watch._reader.join(5)
        assert ALT_SCREEN_OFF in watch.output  # the terminal given back as it was
        assert b"Traceback" not in watch.output
    finally:
        watch.close()


def test_a_big_site_is_cut_to_fit_with_what_is_left_counted() -> None:
    now = datetime.now(UTC)
    ports = [
        {
            "port": f"radio-{i:02d}",
            "talkgroup": f"agency{i}/main",
            "agency": f"agency{i}",
            "rx_mhz": 851.0125,
            "tx_mhz": 806.0125,
            "online": i != 3,
            "carrier": i == 0,
            "ptt": i == 1,
            "patch": "a-very-long-patch-name-that-does-not-fit",
        }
        for i in range(40)
    ]
    patches = [
        {"patch": f"patch-{i}", "state": "pending", "floor": "first", "members": []}
        for i in range(12)
    ]
    calls = [
        {
            "patch": f"patch-{i}",
            "source": {"port": f"radio-{i:02d}", "talkgroup": f"agency{i}/main"},
            "destinations": [{"port": f"radio-{j:02d}"} for j in range(30)],
            "start": (now - timedelta(seconds=12)).isoformat(),
        }
        for i in range(6)
    ]
    alarms = [
        {"kind": "port_offline", "port": "radio-03", "detail": "x" * 200, "time": now.isoformat()}
    ] * 5
    screen = StatusScreen()
    status = {"gateway": "big", "uptime_s": 3725, "ticks": {"ticks": 10}, "ports": ports}
    screen.answered({**status, "patches": patches, "calls": calls, "alarms": alarms}, 1.0)
    screen.answered(
        {**status, "ticks": {"ticks": 60}, "patches": patches, "calls": calls, "alarms": alarms},
        2.0,
    )
    lines = screen_text(screen)
    assert len(lines) <= 23 and all(len(line) <= 80 for line in lines), "\n".join(lines)
    # Without a rate in the reply, from two replies a second apart.
    assert lines[0].startswith("crosspatch status big  up 1:02:05  50.0 ticks/s")
    for title in ("Ports", "Patches", "Calls in progress", "Alarms"):
        assert title in lines
    assert sum(" more" in line for line in lines) == 4
    assert "OFFLINE" in "\n".join(lines) or "+" in line_of(lines, "  +")
    assert "    12 s  patch-0" in "\n".join(lines)
    # A terminal of 120x40 shows more of it.
    assert len(screen_text(screen, 120, 40)) > len(lines)


def test_watch_needs_a_terminal_and_a_sane_interval(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    sock = str(site.socket)
    assert run(["status", "--watch", "--socket", sock]) == 1
    assert capsys.readouterr().err == (
        "crosspatch status: --watch needs a terminal; scripts read `crosspatch status --json`\n"
    )
    assert run(["status", "--watch", "--interval", "0", "--socket", sock]) == 1
    assert "--interval must be between" in capsys.readouterr().err
    assert run(["status", "--watch", "--json", "--socket", sock]) == 1
    assert "use one" in capsys.readouterr().err


def test_the_demos_view_fits_80x24_too() -> None:
    cfg = load_config(demo_config_path())
    site = build_site(cfg)
    engine, control = site.build(TickClock(datetime.now(UTC), site.frame_ms))
    radios = SimulatedRadios([p.name for p in site.ports], engine.frame_samples)
    add_configured_traffic(cfg, radios)
    view = DemoView(site, engine, control)
    stamper = EventStamper(site.gateway_id)
    for event in control.enable_from_config(site.patches_enabled_in_config()):
        view.note(stamper.stamp(event))
    for _ in range(40 * 50):  # 40 s of traffic
        rx, carrier = radios.frame()
        for event in engine.tick(rx, carrier).events:
            view.note(stamper.stamp(event))
    console = Console(
        file=io.StringIO(), width=80, height=24, force_terminal=False, color_system=None
    )
    console.print(view.render(80, 24))
    lines = console.file.getvalue().splitlines()  # type: ignore[attr-defined]
    assert len(lines) <= 23 and all(len(line) <= 80 for line in lines), "\n".join(lines)
    for port in cfg.radios:  # a small site: every port and patch, with room for the calls
        assert any(line.startswith(f"  {port} ") for line in lines), port
    for patch in cfg.patches:
        assert any(line.startswith(f"  {patch} ") for line in lines), patch
    ended = lines[lines.index("Last calls") + 1]
    assert " s " in ended and "dBFS carrier_drop" in ended
