"""Ports whose carrier and PTT are serial modem lines, as the engine sees them (a `KeyingBank`).

The squelch (COS) of each wired radio comes from a `CosPoller` thread per serial port; PTT
changes from the engine are handed to a writer thread, so the engine thread never waits on a
serial ioctl (a wedged USB adapter can stall one). Audio is not this bank's job: its frames are
silence and transmitted audio is dropped; the sound-card ports supply audio for the same radios.

A serial port that fails (USB unplugged) is reported once through `on_lost`; its radios read as
no carrier, and their PTT changes are dropped until the owner reopens the port.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import queue
import threading
import time
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from gateway.hardware.keying import DeviceLost, PttApplied
from gateway.hardware.serial.lines import (
    DEFAULT_DEBOUNCE_S,
    DEFAULT_POLL_S,
    CosPoller,
    SerialLines,
    SerialLinesError,
)

log = logging.getLogger(__name__)


class LinePortBank:
    """PTT and COS of the radios on serial modem lines: a `KeyingBank` (see the module doc)."""

    def __init__(
        self,
        port_names: Sequence[str],
        frame_samples: int,
        lines: Sequence[SerialLines],
        *,
        poll_s: float = DEFAULT_POLL_S,
        debounce_s: float = DEFAULT_DEBOUNCE_S,
        on_lost: DeviceLost | None = None,
        on_ptt_applied: PttApplied | None = None,
    ) -> None:
        self.names = tuple(port_names)
        self.index = {name: i for i, name in enumerate(self.names)}
        self.frame_samples = frame_samples
        self.lines = tuple(lines)
        self._poll_s = poll_s
        self._debounce_s = debounce_s
        self._on_lost = on_lost
        self._on_ptt_applied = on_ptt_applied
        self._carrier = np.zeros(len(self.names), dtype=bool)
        self._ptt = np.zeros(len(self.names), dtype=bool)
        self._ptt_lines: dict[int, SerialLines] = {}
        for wiring in self.lines:
            for p in wiring.ptt_lines:
                self._ptt_lines[self._port(p.radio)] = wiring
            for c in wiring.cos_lines:
                self._port(c.radio)
        self._pollers: list[CosPoller] = []
        self._writes: queue.SimpleQueue[tuple[int, bool] | None] = queue.SimpleQueue()
        self._writer = threading.Thread(target=self._write_ptt, name="ptt writer", daemon=True)
        self.lost: set[str] = set()  # urls of serial ports that failed
        self._lost_ids: set[int] = set()

    def _port(self, radio: str) -> int:
        try:
            return self.index[radio]
        except KeyError:
            raise SerialLinesError(f"serial lines name '{radio}', which is no port") from None

    # ------------------------------------------------------------------ life cycle
    def start(self, *, tolerate_missing: bool = False) -> None:
        """Opens every serial port (never keying) and starts polling squelch. A port that will
        not open raises, or with `tolerate_missing` is reported lost (the owner reopens it)."""
        for wiring in self.lines:
            try:
                wiring.open()
            except SerialLinesError as exc:
                if not tolerate_missing:
                    raise
                self._port_lost(wiring, str(exc))
        for wiring in self.lines:
            if id(wiring) not in self._lost_ids:
                self._start_poller(wiring)
        self._writer.start()

    def _start_poller(self, wiring: SerialLines) -> None:
        poller = CosPoller(
            wiring,
            self._cos_changed,
            functools.partial(self._port_lost, wiring),
            poll_s=self._poll_s,
            debounce_s=self._debounce_s,
        )
        poller.start()
        self._pollers.append(poller)

    def wiring(self, url: str) -> SerialLines:
        return next(w for w in self.lines if w.url == url)

    def reopen(self, url: str) -> None:
        """Blocking (run it in a thread): reopens a lost port, its PTT lines inactive from the
        first instant, and polls its squelch again. Raises `SerialLinesError` if it is still
        not there."""
        wiring = self.wiring(url)
        with contextlib.suppress(SerialLinesError):
            wiring.close()
        wiring.open()
        self._pollers = [p for p in self._pollers if p.running]
        self._lost_ids.discard(id(wiring))
        self.lost.discard(url)
        self._start_poller(wiring)

    def carrier(self) -> npt.NDArray[np.bool_]:
        """Each port's debounced squelch (False for ports with no COS line here)."""
        return self._carrier.copy()

    def close(self) -> None:
        """Stops polling and unkeys every wired radio before closing the ports. The ports close
        side by side (a device server's RFC 2217 port takes about 0.3 s to close: one after
        another, ten of them held a stop for 3 s), and one that cannot be unkeyed is named in a
        CRITICAL line without keeping the others open."""
        for poller in self._pollers:
            poller.stop()
        self._writes.put(None)
        if self._writer.is_alive():
            self._writer.join(timeout=2)
        closing = [
            threading.Thread(
                target=self._close_wiring, args=(wiring,), name=f"close {wiring.url}", daemon=True
            )
            for wiring in self.lines
        ]
        for thread in closing:
            thread.start()
        for thread in closing:  # (the caller bounds the whole stop: see radio_ports)
            thread.join()

    @staticmethod
    def _close_wiring(wiring: SerialLines) -> None:
        try:
            wiring.close()  # sets every PTT inactive first
        except SerialLinesError as exc:
            log.critical("UNKEY FAILED on a serial line, check the radio now: %s", exc)

    # ------------------------------------------------------------------ PortBank
    def frame(self) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.bool_]]:
        rx = np.zeros((len(self.names), self.frame_samples), dtype=np.float32)
        return rx, self._carrier.copy()

    def transmit(self, tx: npt.NDArray[np.float32], ptt: npt.NDArray[np.bool_]) -> None:
        changed = np.flatnonzero(ptt != self._ptt)
        if changed.size:
            self._ptt = ptt.copy()
            for i in changed:
                if int(i) in self._ptt_lines:
                    self._writes.put((int(i), bool(ptt[i])))

    # ------------------------------------------------------------------ threads
    def _cos_changed(self, radio: str, active: bool, at: float) -> None:
        self._carrier[self.index[radio]] = active  # one bool store: safe across threads

    def _port_lost(self, wiring: SerialLines, reason: str) -> None:
        if id(wiring) in self._lost_ids:
            return
        self._lost_ids.add(id(wiring))
        self.lost.add(wiring.url)
        for c in wiring.cos_lines:
            self._carrier[self.index[c.radio]] = False
        log.error("serial port %s lost: %s", wiring.url, reason)
        if self._on_lost is not None:
            self._on_lost(wiring.url, reason)

    def _write_ptt(self) -> None:
        while (item := self._writes.get()) is not None:
            port, keyed = item
            wiring = self._ptt_lines[port]
            if id(wiring) in self._lost_ids:
                continue
            try:
                wiring.set_ptt(self.names[port], keyed)
            except SerialLinesError as exc:
                log.error("PTT %s on %s failed: %s", "on" if keyed else "off", wiring.url, exc)
                continue
            if self._on_ptt_applied is not None:
                self._on_ptt_applied(self.names[port], keyed, time.monotonic())
