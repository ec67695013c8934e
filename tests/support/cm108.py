"""A CM119 sound-card chip behind a pseudo-terminal (the /dev/hidrawN the CM108 bank opens),
and the output reports it is expected to receive."""

from __future__ import annotations

import contextlib
import os
import select
import time
import tty
from pathlib import Path


class FakeCm119:
    """The chip behind a pseudo-terminal's master; `link` is the /dev/hidrawN the bank opens."""

    def __init__(self, link: Path) -> None:
        self.link = link
        self.master = self.slave = -1
        self.plug()

    def plug(self) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)  # bytes pass unchanged both ways, and nothing is echoed
        self.link.unlink(missing_ok=True)
        self.link.symlink_to(os.ttyname(self.slave))
        self._pending = b""

    def unplug(self) -> None:
        for fd in (self.master, self.slave):
            with contextlib.suppress(OSError):
                os.close(fd)

    def send(self, buttons: int, gpio: int) -> None:
        """An input report: byte 0 the buttons, byte 1 the GPIO levels."""
        os.write(self.master, bytes([buttons, gpio, 0, 0]))

    def report(self, timeout: float = 10.0) -> bytes:
        """The next output report the bank wrote."""
        deadline = time.monotonic() + timeout
        while len(self._pending) < 5:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.master], [], [], left)[0]:
                raise AssertionError(f"no report within {timeout} s")
            self._pending += os.read(self.master, 64)
        report, self._pending = self._pending[:5], self._pending[5:]
        return report

    def quiet(self, within: float = 0.15) -> bool:
        """True if nothing more is written within `within` seconds."""
        if self._pending:
            return False
        return not select.select([self.master], [], [], within)[0]


def report(data: int, mask: int) -> bytes:
    return bytes([0x00, 0x00, data, mask, 0x00])


IDLE = report(0b0000, 0b1100)  # GPIO 3 (radio a) and GPIO 4 (radio b) outputs, both low


A_KEYED = report(0b0100, 0b1100)


B_KEYED = report(0b1000, 0b1100)


BOTH_KEYED = report(0b1100, 0b1100)
