"""PTT and carrier (COS): the one seam between a radio's keying and squelch hardware and its users.

A radio is keyed on a serial modem line (RTS/DTR), a CM108/CM119 GPIO or through its CAT
driver, and its carrier comes from a modem input line, a CM108 GPIO or button, its CAT squelch,
or the audio itself (VOX, which the audio path measures and no device reports). Two kinds of
users drive them:

- the port banks (`LinePortBank`, `Cm108PortBank`), many radios per device, each device served
  by its own thread so the engine thread never waits on it. They are `KeyingBank`s: the engine
  hands them PTT with `transmit` and reads `carrier`; they report applied keying and lost
  devices through `PttApplied` and `DeviceLost`.
- the technician tools, one radio on the asyncio loop: a `Ptt` keyed and unkeyed once, a
  `Carrier` watched beside a meter. `ptt` adapters and `carrier` adapters here wrap the same
  device classes the banks use (`SerialLines`, `CosPoller`, `Cm108`, `CatDriver`).

Every `Ptt` opens with the radio unkeyed (the device's open sets every PTT it drives inactive,
inversion included) and leaves it unkeyed on close; `unkey` is the one step that must get
through, and says so loudly (`UnkeyFailed`) when it did not.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Protocol

import numpy as np
import numpy.typing as npt

from gateway.core.errors import UserError
from gateway.hardware.cat.base import CatDriver
from gateway.hardware.cat.errors import CatError
from gateway.hardware.cm108.gpio import Cm108, Cm108Error
from gateway.hardware.serial.lines import CosPoller, SerialLines, SerialLinesError

UNKEY_TRIES = 3  # CAT unkey attempts before the radio is declared possibly keyed
UNKEY_TIMEOUT_S = 10.0  # a CAT unkey, retries included, that takes longer has failed
CAT_POLL_S = 0.2  # CAT squelch reads: one request per read
CM108_POLL_S = 0.05  # CM108 COS reads: one GET_REPORT per read

PttApplied = Callable[[str, bool, float], None]  # radio, keyed, monotonic time applied
DeviceLost = Callable[[str, str], None]  # device (serial url, CM108), reason


class KeyingBank(Protocol):
    """PTT and carrier of the radios on one kind of keying hardware, as the engine drives them."""

    lost: set[str]  # devices that failed, until reopened

    def start(self, *, tolerate_missing: bool = False) -> None:
        """Opens every device, no radio keyed; a missing one raises or (tolerated) is lost."""

    def reopen(self, device: str, /) -> None:
        """Blocking: opens a lost device again, unkeyed. Raises while it is still missing."""

    def carrier(self) -> npt.NDArray[np.bool_]:
        """Each port's debounced carrier (False for ports not wired here)."""
        ...

    def transmit(self, tx: npt.NDArray[np.float32], ptt: npt.NDArray[np.bool_]) -> None:
        """Takes the engine's PTT (audio is not a keying bank's); never blocks."""

    def close(self) -> None:
        """Stops serving, unkeys every radio and closes every device; one that could not be
        unkeyed is logged CRITICAL (serial lines) or raised after trying the others (CM108)."""


class KeyingError(UserError):
    """Why a radio's PTT or squelch device cannot be used: one line."""


class UnkeyFailed(KeyingError):
    """The radio may still be keyed."""

    def __init__(self, problem: object) -> None:
        super().__init__(
            f"UNKEY FAILED, check the radio now (or run crosspatch unkey-all): {problem}"
        )


async def unkey_cat(driver: CatDriver) -> None:
    """Unkeys through CAT, retrying: the one command that must get through."""
    last: CatError | None = None
    for _ in range(UNKEY_TRIES):
        try:
            await driver.set_ptt(False)
            return
        except CatError as exc:
            last = exc
    assert last is not None
    raise CatError(f"UNKEY FAILED after {UNKEY_TRIES} tries, check the radio now: {last}")


# ---------------------------------------------------------------------------------- PTT
class Ptt(Protocol):
    """One radio's transmitter switch, driven from the asyncio loop."""

    @property
    def description(self) -> str:
        """Where it keys, for a technician: the line or GPIO and the device."""
        ...

    async def open(self) -> None:
        """Opens with the radio unkeyed. Raises `KeyingError` (or the driver's error)."""

    async def key(self) -> None: ...

    async def unkey(self) -> None:
        """Raises `UnkeyFailed` if the radio may still be keyed."""

    async def close(self) -> None:
        """Closes, leaving every line it drives inactive; never raises."""


class _ThreadedPtt:
    """A PTT on a blocking device (one quick ioctl or HID report per change, but a wedged USB
    adapter can stall one): each step runs in a thread, its error becomes a `KeyingError`."""

    description = ""
    _errors: type[Exception] = Exception

    def _open(self) -> None:
        raise NotImplementedError

    def _set(self, on: bool) -> None:
        raise NotImplementedError

    def _close(self) -> None:
        raise NotImplementedError

    async def open(self) -> None:
        try:
            await asyncio.to_thread(self._open)
        except self._errors as exc:
            raise KeyingError(str(exc)) from None

    async def key(self) -> None:
        try:
            await asyncio.to_thread(self._set, True)
        except self._errors as exc:
            raise KeyingError(str(exc)) from None

    async def unkey(self) -> None:
        try:
            await asyncio.to_thread(self._set, False)
        except self._errors as exc:
            raise UnkeyFailed(exc) from None

    async def close(self) -> None:
        with contextlib.suppress(self._errors):  # the device's close unkeys first
            await asyncio.to_thread(self._close)


class LinePtt(_ThreadedPtt):
    """PTT on a modem line of a serial port; the port holds every PTT wired to it inactive."""

    _errors = SerialLinesError

    def __init__(self, lines: SerialLines, radio: str) -> None:
        self._lines = lines
        self._radio = radio
        ptt = next(p for p in lines.ptt_lines if p.radio == radio)
        inverted = " (inverted)" if ptt.invert else ""
        self.description = f"{ptt.line.upper()}{inverted} of {lines.url}"

    def _open(self) -> None:
        self._lines.open()  # every PTT on the port inactive

    def _set(self, on: bool) -> None:
        self._lines.set_ptt(self._radio, on)

    def _close(self) -> None:
        self._lines.close()  # sets every output inactive first


class Cm108Ptt(_ThreadedPtt):
    """PTT on a CM108 GPIO."""

    _errors = Cm108Error

    def __init__(self, cm108: Cm108) -> None:
        self._cm108 = cm108
        inverted = " (inverted)" if cm108.ptt_invert else ""
        self.description = f"CM108 GPIO {cm108.ptt_gpio}{inverted} of {cm108.path}"

    def _open(self) -> None:
        self._cm108.open()  # writes the inactive level at once

    def _set(self, on: bool) -> None:
        self._cm108.set_ptt(on)

    def _close(self) -> None:
        self._cm108.close()  # unkeys once more first


class CatPtt:
    """PTT through the radio's CAT driver (its errors are the user's to read as they are)."""

    def __init__(self, driver: CatDriver, where: str) -> None:
        self._driver = driver
        self.description = f"CAT ({where})"

    async def open(self) -> None:
        await self._driver.open()

    async def key(self) -> None:
        await self._driver.set_ptt(True)

    async def unkey(self) -> None:
        try:
            await asyncio.wait_for(unkey_cat(self._driver), UNKEY_TIMEOUT_S)
        except (CatError, TimeoutError) as exc:
            raise UnkeyFailed(exc) from None

    async def close(self) -> None:
        with contextlib.suppress(CatError, OSError):
            await self._driver.close()


# ---------------------------------------------------------------------------------- carrier
class Carrier(Protocol):
    """One radio's squelch, watched from the asyncio loop: `state` None until known; `problem`
    once the source was lost (the watcher carries on without it)."""

    @property
    def description(self) -> str: ...

    @property
    def state(self) -> bool | None:
        """Is the carrier up (the radio receiving)."""
        ...

    @property
    def problem(self) -> str | None: ...

    async def start(self) -> None:
        """Opens the source without keying anything. Raises `KeyingError` (or the driver's)."""

    async def close(self) -> None:
        """Stops watching and closes; never raises for the device."""


class LineCarrier:
    """COS on a modem line, debounced as the port bank does it (a `CosPoller`)."""

    def __init__(self, lines: SerialLines, radio: str) -> None:
        self._lines = lines
        self._radio = radio
        cos = next(c for c in lines.cos_lines if c.radio == radio)
        inverted = " (inverted)" if cos.invert else ""
        self.description = f"{cos.line.upper()}{inverted} of {lines.url}"
        self.state: bool | None = None
        self.problem: str | None = None
        self._poller: CosPoller | None = None

    def _changed(self, radio: str, receiving: bool, at: float) -> None:
        if radio == self._radio:
            self.state = receiving

    def _lost(self, reason: str) -> None:
        self.problem = reason

    async def start(self) -> None:
        try:
            # Opened with every PTT wired to this port held inactive (the port's whole wiring).
            await asyncio.to_thread(self._lines.open)
        except SerialLinesError as exc:
            raise KeyingError(str(exc)) from None
        self._poller = CosPoller(self._lines, self._changed, self._lost)
        self._poller.start()

    async def close(self) -> None:
        if self._poller is not None:
            self._poller.stop()
        with contextlib.suppress(SerialLinesError):
            await asyncio.to_thread(self._lines.close)


class _PolledCarrier:
    """A carrier read every `_period_s` by a task; the first error ends the reads."""

    _period_s = 0.0
    _errors: type[Exception] = Exception

    def __init__(self) -> None:
        self.state: bool | None = None
        self.problem: str | None = None
        self._task: asyncio.Task[None] | None = None

    async def _read(self) -> bool:
        raise NotImplementedError

    async def _poll(self) -> None:
        try:
            while True:
                self.state = await self._read()
                await asyncio.sleep(self._period_s)
        except self._errors as exc:
            self.problem = str(exc)

    def _start_polling(self) -> None:
        self._task = asyncio.create_task(self._poll())

    async def _stop_polling(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


class CatCarrier(_PolledCarrier):
    """The radio's squelch as its CAT driver reads it, polled."""

    _period_s = CAT_POLL_S
    _errors = CatError

    def __init__(self, driver: CatDriver, where: str) -> None:
        super().__init__()
        self._driver = driver
        self.description = f"CAT ({where})"

    async def _read(self) -> bool:
        return await self._driver.read_busy()

    async def start(self) -> None:
        await self._driver.open()
        self._start_polling()

    async def close(self) -> None:
        await self._stop_polling()
        await self._driver.close()


class Cm108Carrier(_PolledCarrier):
    """COS on a CM108 GPIO or volume-button input, polled; the device is opened for reading
    only (no PTT GPIO), so nothing is written to it."""

    _period_s = CM108_POLL_S
    _errors = Cm108Error

    def __init__(self, cm108: Cm108) -> None:
        super().__init__()
        self._cm108 = cm108
        where = f"GPIO {cm108.cos_gpio}" if cm108.cos_gpio is not None else cm108.cos_button
        self.description = f"CM108 {where} of {cm108.path}"

    async def _read(self) -> bool:
        return await asyncio.to_thread(self._cm108.read_cos)

    async def start(self) -> None:
        try:
            await asyncio.to_thread(self._cm108.open)
        except Cm108Error as exc:
            raise KeyingError(str(exc)) from None
        self._start_polling()

    async def close(self) -> None:
        await self._stop_polling()
        with contextlib.suppress(Cm108Error):
            self._cm108.close()
