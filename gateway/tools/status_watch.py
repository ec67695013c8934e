"""`crosspatch status --watch`: the running daemon live on a technician's terminal.

Asks the daemon's control socket for `status` every interval and redraws one screen in place (the
terminal's alternate screen, given back as it was on exit): the gateway, its uptime and tick rate,
ports with carrier and PTT lights and their online state, patches, calls in progress with their
running duration, and the active alarms, cut to fit the terminal (gateway.tools.live_view, the
demo's view too). A daemon that stops answering is said at the top while the last picture stays
and the asking goes on; Ctrl-C or SIGTERM ends it with exit 0.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.text import Text

from gateway.control.control_socket import request
from gateway.core.errors import UserError
from gateway.tools.live_view import (
    Section,
    alarm_lines,
    call_lines,
    fit,
    now_utc,
    patch_lines,
    port_lines,
)


class WatchError(UserError):
    """`status --watch` cannot run as asked; one line."""


class StatusScreen:
    """The picture of the last status reply (and whether the daemon still answers)."""

    def __init__(self) -> None:
        self.status: dict[str, Any] | None = None
        self.problem: str | None = None  # why the daemon did not answer the last time
        self.silent_since: float | None = None
        self._ticks: tuple[float, int] | None = None  # (monotonic time, ticks) of a reply
        self.ticks_per_s: float | None = None

    def answered(self, status: dict[str, Any], at: float) -> None:
        ticks = status.get("ticks") or {}
        rate = ticks.get("ticks_per_s")
        count = ticks.get("ticks")
        if isinstance(rate, int | float) and not isinstance(rate, bool):
            self.ticks_per_s = float(rate)
        elif isinstance(count, int) and self._ticks is not None and at > self._ticks[0]:
            # An older daemon without the rate: from two replies.
            self.ticks_per_s = (count - self._ticks[1]) / (at - self._ticks[0])
        if isinstance(count, int):
            self._ticks = (at, count)
        self.status = status
        self.problem = None
        self.silent_since = None

    def silent(self, why: str, at: float) -> None:
        self.problem = why
        if self.silent_since is None:
            self.silent_since = at

    def render(self, width: int, height: int, at: float) -> Group:
        status = self.status or {}
        gateway = status.get("gateway", "?")
        head = Text.assemble(("crosspatch status ", "bold"), (str(gateway), "bold cyan"))
        uptime = status.get("uptime_s")
        if isinstance(uptime, int | float):
            up = int(uptime)
            head.append(f"  up {up // 3600}:{up % 3600 // 60:02d}:{up % 60:02d}")
        if self.ticks_per_s is not None:
            head.append(f"  {self.ticks_per_s:.1f} ticks/s")
        head.append("  Ctrl-C to stop", "dim")
        header = [head]
        if self.problem is not None:
            since = at - (self.silent_since or at)
            header.append(
                Text(f"daemon not answering ({since:.0f} s): {self.problem}", "bold reverse red")
            )
        calls = status.get("calls", [])
        sections = [
            Section("Ports", port_lines(status.get("ports", []), {}), weight=2),
            Section("Patches", patch_lines(status.get("patches", []), calls)),
            Section("Calls in progress", call_lines(calls, now_utc())),
            Section("Alarms", alarm_lines(status.get("alarms", []))),
        ]
        return fit(header, sections, width, height)


@contextmanager
def _stop_on_signals() -> Iterator[list[bool]]:
    """A flag set by Ctrl-C or SIGTERM: the loop ends between two redraws, never mid-draw."""
    stop = [False]

    def handler(signum: int, frame: FrameType | None) -> None:
        stop[0] = True

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def watch_status(
    socket: Path, interval: float, timeout: float, console: Console | None = None
) -> int:
    """Redraws the daemon's status every `interval` seconds until Ctrl-C or SIGTERM (exit 0)."""
    if not 0.1 <= interval <= 3600:
        raise WatchError("--interval must be between 0.1 and 3600 seconds")
    console = console or Console()
    if not console.is_terminal:
        raise WatchError("--watch needs a terminal; scripts read `crosspatch status --json`")
    screen = StatusScreen()
    ask_timeout = min(timeout, max(interval, 1.0))  # a hung daemon must not freeze the screen
    with (
        _stop_on_signals() as stop,
        Live(console=console, screen=True, auto_refresh=False) as live,
    ):
        while not stop[0]:
            asked = time.monotonic()
            try:
                reply = request(socket, "status", timeout=ask_timeout)
                if reply.get("ok"):
                    screen.answered(reply.get("result", {}), time.monotonic())
                else:
                    screen.silent(str(reply.get("error", "refused")), time.monotonic())
            except UserError as exc:
                screen.silent(str(exc), time.monotonic())
            width, height = console.size
            live.update(screen.render(width, height, time.monotonic()), refresh=True)
            while not stop[0] and time.monotonic() < asked + interval:
                time.sleep(0.05)
    return 0
