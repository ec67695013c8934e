"""A radio on the far end of a pseudo-terminal: the driver opens `path` like a USB-serial port.

Subclasses implement `receive(data) -> bytes` (bytes from the driver in, the radio's reply out;
keep your own buffer for partial commands). Fault switches for the tests: `silent` (the radio
stops answering), `inject(data)` (bytes the radio sends unasked: garbage, auto-information),
`unplug()` (the far end goes away: the driver's reads fail like a USB cable pulled).
"""

from __future__ import annotations

import contextlib
import os
import select
import threading
import tty
from types import TracebackType
from typing import Self

# Radios still transmitting when a test closed them (still plugged in: an unplugged radio keeps
# whatever it was doing). Read and cleared by the leak check (tests/support/leaks.py).
keyed_at_close: list[str] = []


class PtyRadio:
    def __init__(self) -> None:
        self._master, self._slave = os.openpty()
        tty.setraw(self._master)
        tty.setraw(self._slave)
        self.path = os.ttyname(self._slave)
        self.silent = False
        self.received = bytearray()  # everything the driver sent, for assertions
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._serve, name=type(self).__name__, daemon=True)

    # ------------------------------------------------------------------ subclass hook
    def receive(self, data: bytes) -> bytes:
        raise NotImplementedError

    @property
    def left_keyed(self) -> bool:
        """Transmitting, and not because a fault made it refuse the unkey: the subclasses that
        model PTT keep it in `ptt`."""
        return bool(getattr(self, "ptt", False))

    # ------------------------------------------------------------------ test controls
    def start(self) -> Self:
        self._thread.start()
        return self

    def inject(self, data: bytes) -> None:
        with self._lock:
            os.write(self._master, data)

    def unread(self, wait_s: float = 0.0) -> bool:
        """True while bytes the radio sent wait on the driver's side of the line, unread; waits
        up to `wait_s` for some to get there (the kernel moves them across from a worker
        thread, a moment after the radio's write)."""
        ready, _, _ = select.select([self._slave], [], [], wait_s)
        return bool(ready)

    def unplug(self) -> None:
        """Closes the far end: reads on the driver's side now fail with EIO, as when a USB
        serial adapter is pulled."""
        self._stop.set()
        self._thread.join(timeout=2)
        for fd in (self._master, self._slave):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._master = self._slave = -1

    def close(self) -> None:
        if self._master != -1:
            if self.left_keyed:
                keyed_at_close.append(f"{type(self).__name__} on {self.path}")
            self.unplug()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # ------------------------------------------------------------------ the loop
    def _serve(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self._master], [], [], 0.05)
            if not ready:
                continue
            try:
                data = os.read(self._master, 4096)
            except OSError:
                return
            self.received.extend(data)
            reply = self.receive(data)
            if reply and not self.silent:
                with self._lock:
                    os.write(self._master, reply)
