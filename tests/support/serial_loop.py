"""pyserial's loop:// standing in for serial adapters: ports that record the modem-line levels
set, fail on demand as a pulled adapter does, the factory seam that makes them, and a collector
of COS changes."""

from __future__ import annotations

import os
import threading
import time
from typing import Any

from serial.urlhandler.protocol_loop import Serial as LoopSerial  # type: ignore[import-untyped, unused-ignore]


class RecordingLoop(LoopSerial):  # type: ignore[misc, unused-ignore]
    """loop://, recording the levels set before open and every level applied while open, and
    counting the reads of CTS (the poller's samples)."""

    cts_reads = 0

    def open(self) -> None:
        self.before_open = (self.rts, self.dtr)
        self.applied: list[tuple[str, bool]] = []
        super().open()

    @property
    def cts(self) -> bool:
        self.cts_reads += 1
        return bool(super().cts)

    def _update_rts_state(self) -> None:
        self.applied.append(("rts", self._rts_state))
        super()._update_rts_state()

    def _update_dtr_state(self) -> None:
        self.applied.append(("dtr", self._dtr_state))
        super()._update_dtr_state()


class FailingLoop(RecordingLoop):
    """loop:// whose status reads fail with `fail_errno` once armed: a USB adapter pulled out."""

    fail_errno: int | None = None

    @property
    def cts(self) -> bool:
        if self.fail_errno is not None:
            raise OSError(self.fail_errno, os.strerror(self.fail_errno))
        return bool(super().cts)


class Factory:
    """The open seam, recording each port it makes."""

    def __init__(self, cls: type[RecordingLoop] = RecordingLoop) -> None:
        self.cls = cls
        self.ports: list[Any] = []
        self.urls: list[str] = []

    def __call__(self, url: str, baudrate: int, *, rts: bool = False, dtr: bool = False) -> Any:
        port = self.cls(None)
        port.port = "loop://"  # whatever device the test names, loop:// stands in for it
        self.urls.append(url)
        port.baudrate = baudrate
        port.timeout = 0
        port.rts = rts
        port.dtr = dtr
        self.ports.append(port)
        return port


class Changes:
    """Collects on_change calls; `wait` blocks until a matching one arrives."""

    def __init__(self) -> None:
        self.items: list[tuple[str, bool, float]] = []
        self.arrived: list[float] = []
        self._cond = threading.Condition()
        self._cursor: dict[str, int] = {}

    def __call__(self, radio: str, active: bool, at: float) -> None:
        with self._cond:
            self.items.append((radio, active, at))
            self.arrived.append(time.monotonic())
            self._cond.notify_all()

    def wait(self, radio: str, active: bool, timeout: float = 5.0) -> tuple[float, float]:
        """The next change of `radio` (in order, per radio) must be `active`:
        (time of the change as reported, time the callback ran)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                start = self._cursor.get(radio, 0)
                for index in range(start, len(self.items)):
                    r, a, at = self.items[index]
                    if r == radio:
                        assert a == active, f"{radio}: expected {active}, got {self.items}"
                        self._cursor[radio] = index + 1
                        return at, self.arrived[index]
                left = deadline - time.monotonic()
                assert left > 0, f"no change {radio}={active}; got {self.items}"
                self._cond.wait(left)

    def of(self, radio: str) -> list[bool]:
        return [a for r, a, _ in self.items if r == radio]
