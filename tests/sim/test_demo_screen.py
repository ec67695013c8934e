"""What `crosspatch demo` shows: a header that names the demo once, a view that fits an 80x24
terminal whole, and a last line that explains what it counts."""

from __future__ import annotations

import fcntl
import io
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from datetime import UTC, datetime

import pytest
from rich.console import Console

from gateway.config import load_config
from gateway.core.events import EventStamper, TickClock
from gateway.ports.simulated import SimulatedRadios
from gateway.run.site import build_site
from gateway.sim.demo import DemoView, demo_config_path, late_note
from gateway.sim.simulate import add_configured_traffic

WIDTH, HEIGHT = 80, 24


def busy_view(seconds: float = 40.0, gateway_id: str | None = None) -> DemoView:
    """The demo site's view after `seconds` of its traffic, run as fast as the machine goes."""
    cfg = load_config(demo_config_path())
    if gateway_id is not None:
        cfg = cfg.model_copy(update={"gateway": cfg.gateway.model_copy(update={"id": gateway_id})})
    site = build_site(cfg)
    engine, control = site.build(TickClock(datetime(2026, 1, 1, tzinfo=UTC), site.frame_ms))
    radios = SimulatedRadios([p.name for p in site.ports], engine.frame_samples)
    add_configured_traffic(cfg, radios)
    view = DemoView(site, engine, control)
    stamper = EventStamper(site.gateway_id)
    for event in control.enable_from_config(site.patches_enabled_in_config()):
        view.note(stamper.stamp(event))
    for _ in range(round(seconds * 1000 / site.frame_ms)):
        rx, carrier = radios.frame()
        for event in engine.tick(rx, carrier).events:
            view.note(stamper.stamp(event))
    return view


def screen(view: DemoView, width: int = WIDTH, height: int = HEIGHT) -> list[str]:
    console = Console(
        file=io.StringIO(), width=width, height=height, force_terminal=False, color_system=None
    )
    console.print(view.render(width, height))
    return console.file.getvalue().splitlines()  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def view() -> DemoView:
    return busy_view()


def test_header_names_the_demo_once(view: DemoView) -> None:
    header = screen(view)[0]
    assert header.startswith("crosspatch demo  simulated radios  up ")
    assert "demo demo" not in header
    assert header.rstrip().endswith("Ctrl-C to stop")


def test_header_names_a_site_of_its_own() -> None:
    header = screen(busy_view(0.1, gateway_id="peace-arch"))[0]
    assert header.startswith("crosspatch demo peace-arch  simulated radios")


def test_view_fits_80x24_with_every_port_and_patch_whole(view: DemoView) -> None:
    cfg = load_config(demo_config_path())
    lines = screen(view)
    assert len(lines) <= HEIGHT - 1  # a row to spare: the terminal never scrolls
    assert max(len(line) for line in lines) <= WIDTH
    for name in cfg.radios:
        (line,) = [line for line in lines if line.startswith(f"  {name} ")]
        assert "…" not in line  # not cut at the width
    for name in cfg.patches:
        patch_rows = [line for line in lines if line.startswith(f"  {name} ")]
        assert patch_rows and all("…" not in line for line in patch_rows)
    titles = ("Ports", "Patches", "Calls in progress", "Last calls", "Last alarms")
    assert all(title in {line.strip() for line in lines} for title in titles)


def test_last_lines_explain_late_frames() -> None:
    assert late_note(0, 500, 20) == ""
    note = late_note(3, 500, 20)
    assert note == "; 3 of 500 frames ran over 20 ms late (the machine was busy)"


def test_demo_ends_with_one_plain_line() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "demo", "--seconds", "1"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    (last,) = result.stderr.strip().splitlines()[-1:]
    assert last.startswith("demo stopped: ")
    assert "every transmitter released" in last
    assert "late frames" not in last


def test_demo_on_an_80x24_terminal_never_wraps_nor_scrolls() -> None:
    # The real thing: the demo on a pseudo-terminal of 80x24, as rich's live display draws it.
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", HEIGHT, WIDTH, 0, 0))
    env = {**os.environ, "TERM": "xterm-256color"}
    env.pop("COLUMNS", None)
    env.pop("LINES", None)
    demo = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "demo", "--seconds", "4"],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
    )
    os.close(slave)
    output = b""
    try:
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the demo ended and closed its side
                break
            if not chunk:
                break
            output += chunk
        assert demo.wait(timeout=30) == 0
    finally:
        os.close(master)
        if demo.poll() is None:
            demo.kill()
            demo.wait(timeout=10)
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", output.decode("utf-8", "replace"))
    plain = plain.replace("\r", "")
    assert max(len(line) for line in plain.split("\n")) <= WIDTH
    frames = plain.split("crosspatch demo  simulated radios")
    assert len(frames) >= 3  # redrawn while it ran
    for frame in frames[1:-1]:  # each whole frame: header to the next header
        assert frame.count("\n") <= HEIGHT - 1
    assert "demo demo" not in plain
    assert plain.rstrip().splitlines()[-1].startswith("demo stopped: ")
