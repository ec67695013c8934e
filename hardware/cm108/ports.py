"""Radios keyed and heard through CM108/CM119 USB sound-card GPIO, as the engine sees them.

The counterpart of `LinePortBank` for sound-card GPIO: `carrier()` gives each port's debounced
COS, `transmit()` (or `set_ptt()`) takes the engine's PTT. Audio is not this bank's job.

Every radio on one CM108 goes through one `Cm108Device` (one open hidraw): its output reports
carry the PTT GPIOs of all of them, and one input report serves all their COS inputs. Which
hidraw: the `port` of the radio's ptt/squelch, else the one on the USB device of the radio's
sound card, found through sysfs again at each open, since a card plugged in again may come back
as another /dev/hidrawN.

Threading: one thread per device owns its I/O. It reads the COS inputs every `poll_s` and
writes the PTT report when the engine's wanted PTT differs from the one last written; the
engine thread only stores what it wants and wakes that thread, so it never waits on USB (a
hidraw write is a SET_REPORT control transfer, and a wedged card can hold one for seconds).
One thread per device, rather than a poller and a writer, so a device's reads and writes never
race each other, and a wedged card stalls only its own radios.

A device that fails (unplugged: ENODEV/EIO on a read or write, or its /dev node gone) is
reported once through `on_lost`; its radios read as no carrier and their PTT changes are
dropped until the owner `reopen`s it. A reopened device starts unkeyed: a PTT the engine still
holds is keyed again by its next `transmit`, which compares with what was last written.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from gateway.hardware.cm108.gpio import (
    Cm108Device,
    Cm108Error,
    CosInput,
    PttGpio,
    check_gpio_use,
    find_hidraw_of_sound_device,
)
from gateway.hardware.keying import DeviceLost, PttApplied
from gateway.hardware.serial.lines import Debouncer

log = logging.getLogger(__name__)

# Each COS read is a GET_REPORT control transfer (about 1 ms of the card's full-speed USB bus,
# which also carries its audio), not a free ioctl like a serial line's TIOCMGET: 10 ms, half
# the serial lines' rate, keeps that to 100 transfers a second and still sees a change within
# half an engine frame (20 ms).
DEFAULT_POLL_S = 0.010
# With a 10 ms poll, 5 ms of hold means two consecutive reads must agree: a spike one read
# sees is dropped (relay bounce, RF picked up on the COS wire), and a real change counts one
# poll late, stamped with the time it was first seen.
DEFAULT_DEBOUNCE_S = 0.005
# A device with no COS input is only looked at for its presence (a stat, no USB traffic), so
# an unplugged PTT-only card is reported within this time rather than at the next keying.
PRESENCE_CHECK_S = 0.2
_JOIN_S = 2.0


@dataclass(frozen=True)
class Cm108Wiring:
    """The radios on one CM108: their PTT GPIOs and COS inputs.

    `device` names it: the ptt/squelch `port` (/dev/hidrawN), or, when `sound_devices` is
    given, the radio's audio output selector, the hidraw being found from those sound devices'
    card (the first that resolves).
    """

    device: str
    ptt: tuple[PttGpio, ...] = ()
    cos: tuple[CosInput, ...] = ()
    sound_devices: tuple[str, ...] = ()

    @property
    def radios(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys([*(p.radio for p in self.ptt), *(c.radio for c in self.cos)]))

    def find(self, sysfs: Path = Path("/sys"), dev: Path = Path("/dev")) -> Path:
        """The hidraw now: the port, or the one on the sound card. Raises `Cm108Error`."""
        if not self.sound_devices:
            return Path(self.device)
        first: Cm108Error | None = None
        for selector in self.sound_devices:
            try:
                return find_hidraw_of_sound_device(selector, sysfs, dev)
            except Cm108Error as exc:
                first = first or exc
        assert first is not None
        raise first


@dataclass(eq=False)
class _Run:
    """One device thread; replaced at each (re)open so a stale thread can never be woken."""

    thread: threading.Thread | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    wake: threading.Event = field(default_factory=threading.Event)


@dataclass(eq=False)
class _Device:
    wiring: Cm108Wiring
    ptt_rows: tuple[tuple[str, int], ...]  # (radio, port index) of each PTT GPIO
    hw: Cm108Device | None = None
    run: _Run | None = None
    lost: bool = False
    wanted: frozenset[str] = frozenset()  # radios the engine wants keyed


class Cm108PortBank:
    """PTT and COS of the radios on CM108 GPIO: a `KeyingBank` (see the module doc)."""

    def __init__(
        self,
        port_names: Sequence[str],
        wirings: Sequence[Cm108Wiring],
        *,
        poll_s: float = DEFAULT_POLL_S,
        debounce_s: float = DEFAULT_DEBOUNCE_S,
        on_lost: DeviceLost | None = None,
        on_ptt_applied: PttApplied | None = None,
        sysfs: Path = Path("/sys"),
        dev: Path = Path("/dev"),
    ) -> None:
        if poll_s <= 0:
            raise ValueError("poll_s must be positive")
        self.names = tuple(port_names)
        self.index = {name: i for i, name in enumerate(self.names)}
        self.wirings = tuple(wirings)
        self._poll_s = poll_s
        self._debounce_s = debounce_s
        self._on_lost = on_lost
        self._on_ptt_applied = on_ptt_applied
        self._sysfs = sysfs
        self._dev = dev
        self._carrier = np.zeros(len(self.names), dtype=bool)
        self._devices: dict[str, _Device] = {}
        keyed_on: dict[str, str] = {}
        for wiring in self.wirings:
            if wiring.device in self._devices:
                raise Cm108Error(f"CM108 {wiring.device} is wired twice")
            check_gpio_use(wiring.device, wiring.ptt, wiring.cos)
            for radio in wiring.radios:
                self._port(radio)
            for p in wiring.ptt:
                if p.radio in keyed_on:
                    raise Cm108Error(
                        f"{p.radio} is keyed through both {keyed_on[p.radio]} and {wiring.device}"
                    )
                keyed_on[p.radio] = wiring.device
            rows = tuple((p.radio, self.index[p.radio]) for p in wiring.ptt)
            self._devices[wiring.device] = _Device(wiring, rows)
        self._keying = [d for d in self._devices.values() if d.ptt_rows]
        self._lock = threading.Lock()
        self.lost: set[str] = set()  # devices that failed, until reopened

    def _port(self, radio: str) -> int:
        try:
            return self.index[radio]
        except KeyError:
            raise Cm108Error(f"CM108 wiring names '{radio}', which is no port") from None

    # ------------------------------------------------------------------ life cycle
    def start(self, *, tolerate_missing: bool = False) -> None:
        """Opens every device (all PTTs unkeyed) and starts serving it. A device that will not
        open raises `Cm108Error`, or with `tolerate_missing` is reported lost (the owner
        reopens it)."""
        devices = list(self._devices.values())
        for device in devices:
            try:
                device.hw = self._open(device)
            except Cm108Error as exc:
                if not tolerate_missing:
                    for opened in devices:
                        if opened.hw is not None:
                            with contextlib.suppress(Cm108Error):
                                opened.hw.close()
                            opened.hw = None
                    raise
                self._mark_lost(device, None, str(exc))
        for device in devices:
            if device.hw is not None:
                self._serve(device, device.hw)

    def wiring(self, device: str) -> Cm108Wiring:
        return self._device(device).wiring

    def hidraw(self, device: str) -> Path | None:
        """The hidraw `device` is open on, None while it is lost."""
        d = self._device(device)
        return d.hw.path if d.hw is not None and not d.lost else None

    def reopen(self, device: str) -> None:
        """Blocking (run it in a thread): opens `device` again, every PTT unkeyed, and serves
        it. Raises `Cm108Error` (one line) while it is still missing."""
        d = self._device(device)
        with self._lock:
            d.lost = True  # until it is open again: no PTT changes meanwhile
            self.lost.add(device)
        self._stop(d)
        if d.hw is not None:
            with contextlib.suppress(Cm108Error):
                d.hw.close()
            d.hw = None
        hw = self._open(d)
        self._serve(d, hw)
        log.info("CM108 %s is back on %s", device, hw.path)

    def carrier(self) -> npt.NDArray[np.bool_]:
        """Each port's debounced COS (False for ports with no COS input here)."""
        return self._carrier.copy()

    def close(self) -> None:
        """Stops serving, then unkeys every radio and closes every device. Raises `Cm108Error`
        (after trying every device) if a device that is there could not be unkeyed."""
        for device in self._devices.values():
            self._stop(device)
        problems: list[str] = []
        for device in self._devices.values():
            if device.hw is None:
                continue
            try:
                device.hw.close()
            except Cm108Error as exc:
                problems.append(str(exc))
        if problems:
            raise Cm108Error("; ".join(problems))

    # ------------------------------------------------------------------ engine thread
    def transmit(self, tx: npt.NDArray[np.float32], ptt: npt.NDArray[np.bool_]) -> None:
        """The engine's `PortBank.transmit`: only `ptt` matters here (audio is not ours)."""
        self.set_ptt(ptt)

    def set_ptt(self, ptt: npt.NDArray[np.bool_]) -> None:
        """Wants each port keyed where `ptt` is True. Never blocks: a device whose last report
        differs is woken to write it."""
        for device in self._keying:
            wanted = frozenset(radio for radio, i in device.ptt_rows if ptt[i])
            device.wanted = wanted
            hw, run = device.hw, device.run
            if not device.lost and hw is not None and run is not None and wanted != hw.keyed:
                run.wake.set()

    # ------------------------------------------------------------------ devices
    def _device(self, device: str) -> _Device:
        try:
            return self._devices[device]
        except KeyError:
            known = ", ".join(self._devices) or "none"
            raise Cm108Error(f"no CM108 {device} here (CM108s: {known})") from None

    def _open(self, device: _Device) -> Cm108Device:
        wiring = device.wiring
        path = wiring.find(self._sysfs, self._dev)
        # Two wirings reaching one chip (a port on one radio, the sound card on another) would
        # each write reports that make the other's PTT GPIO an input.
        for other in self._devices.values():
            hw = other.hw
            if other is device or hw is None or other.lost:
                continue
            if hw.path.resolve() == path.resolve():
                raise Cm108Error(
                    f"{path} is already the CM108 of {', '.join(other.wiring.radios)} "
                    f"(through {other.wiring.device}): give the radios on one CM108 the "
                    "same port"
                )
        opened = Cm108Device(path, ptt=wiring.ptt, cos=wiring.cos)
        opened.open()
        return opened

    def _serve(self, device: _Device, hw: Cm108Device) -> None:
        # Reopened unkeyed, and nothing keyed until the engine asks again (its next transmit).
        device.wanted = frozenset()
        run = _Run()
        run.thread = threading.Thread(
            target=self._run,
            args=(device, hw, run),
            name=f"cm108 {device.wiring.device}",
            daemon=True,
        )
        device.hw, device.run = hw, run
        with self._lock:
            device.lost = False
            self.lost.discard(device.wiring.device)
        run.thread.start()

    def _stop(self, device: _Device) -> None:
        run, device.run = device.run, None
        if run is None:
            return
        run.stop.set()
        run.wake.set()
        if run.thread is not None and run.thread is not threading.current_thread():
            run.thread.join(_JOIN_S)

    def _mark_lost(self, device: _Device, run: _Run | None, reason: str) -> bool:
        with self._lock:
            if device.lost or (run is not None and run.stop.is_set()):
                return False  # reported already, or being closed by its owner
            device.lost = True
            self.lost.add(device.wiring.device)
        for c in device.wiring.cos:
            self._carrier[self.index[c.radio]] = False
        log.error("CM108 %s lost: %s", device.wiring.device, reason)
        if self._on_lost is not None:
            self._call(self._on_lost, device.wiring.device, reason)
        return True

    # ------------------------------------------------------------------ device thread
    def _run(self, device: _Device, hw: Cm108Device, run: _Run) -> None:
        period = self._poll_s if hw.cos else PRESENCE_CHECK_S
        debouncers = {c.radio: Debouncer(self._debounce_s) for c in hw.cos}
        due = time.monotonic()
        try:
            while True:
                delay = due - time.monotonic()
                if delay > 0:
                    run.wake.wait(delay)
                if run.stop.is_set():
                    return
                run.wake.clear()  # before reading `wanted`, so no change is missed
                self._apply_ptt(device, hw)
                now = time.monotonic()
                if now >= due:
                    hw.check_present()
                    if hw.cos:
                        self._poll_cos(hw, debouncers)
                    # An absolute schedule; after a stall, go on from now, not in a burst.
                    due = max(due + period, time.monotonic())
        except Cm108Error as exc:
            if self._mark_lost(device, run, str(exc)):
                with contextlib.suppress(Cm108Error):
                    hw.close()  # unkeys if the chip still answers

    def _apply_ptt(self, device: _Device, hw: Cm108Device) -> None:
        wanted, before = device.wanted, hw.keyed
        if wanted == before:
            return
        hw.set_ptt(wanted)
        if self._on_ptt_applied is not None:
            at = time.monotonic()
            for radio in sorted(wanted ^ before):
                self._call(self._on_ptt_applied, radio, radio in wanted, at)

    def _poll_cos(self, hw: Cm108Device, debouncers: dict[str, Debouncer]) -> None:
        squelch = hw.squelch()
        now = time.monotonic()
        for radio, receiving in squelch.items():
            change = debouncers[radio].update(receiving, now)
            if change is not None:
                self._carrier[self.index[radio]] = change[0]  # one bool store: thread-safe

    def _call(self, callback: Callable[..., None], *args: object) -> None:
        # A bug in a consumer must not end PTT and COS service for the radios of a device.
        try:
            callback(*args)
        except Exception as exc:
            log.error("CM108 callback failed: %s", exc)
