"""One CAT-controlled radio in service: kept open, tuned, keyed and listened to, and brought back
after it disappears.

A `CatRadio` is a supervisor task on the daemon's asyncio loop around one `CatDriver`:
- it opens the line, asks the radio what it is, and unkeys it first (a radio left keyed by a crash
  or by another program is released before anything else happens);
- it tunes the radio to the talkgroup the engine wants (`want_talkgroup`), reads everything back,
  and only then reports the port ready: a radio that cannot be tuned, or whose wanted transmit
  frequency lies outside its `bands_mhz`, is reported offline with an alarm and never keyed;
- while in service it applies PTT changes first (an unkey is never queued behind a squelch poll
  for long: one request is in flight at most) and polls the squelch;
- a lost line (USB unplugged: EIO/ENODEV, a closed socket) or repeated silence takes the port
  offline with an alarm; it is reopened with exponential backoff, unkeyed and re-tuned;
- an unkey that fails is retried; if it still fails the alarm says the transmitter may be keyed.

The engine thread talks to it only through `want_ptt` / `want_talkgroup`, which hop onto the loop
with `call_soon_threadsafe`, and hears back through `notify` (a `PortNotice`) and `set_carrier`.
A driver's failure never blocks the engine or another radio.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from gateway.hardware.cat.base import CatDriver, Tuning
from gateway.hardware.cat.errors import CatError, CatLinkLost
from gateway.hardware.keying import UNKEY_TRIES
from gateway.ports.contract import PortNotice

log = logging.getLogger(__name__)

# Squelch poll period: a CAT read costs 2-20 ms at 9600 baud, so 50 ms keeps the line mostly
# free for PTT while an opening squelch is seen within about two frames.
DEFAULT_POLL_S = 0.05
BACKOFF_MIN_S = 0.5
BACKOFF_MAX_S = 30.0
# Consecutive failed squelch polls before the radio counts as gone (each already had retries).
MAX_POLL_FAILURES = 3
# Stop: the session has this long to end once cancelled; the final unkey and the close have
# their own limits. A stop is over within their sum whatever the radio does.
STOP_TIMEOUT_S = 0.5
UNKEY_TIMEOUT_S = 1.0
CLOSE_TIMEOUT_S = 0.5
STOP_BOUND_S = STOP_TIMEOUT_S + UNKEY_TIMEOUT_S + CLOSE_TIMEOUT_S


@dataclass(frozen=True)
class Channel:
    """A talkgroup as this radio must be tuned for it."""

    talkgroup: str
    tuning: Tuning


class _Offline(Exception):
    """Ends one session with the radio; the message is the alarm's detail."""


class CatRadio:
    def __init__(
        self,
        name: str,
        make_driver: Callable[[], CatDriver],
        channels: dict[str, Tuning],
        *,
        bands_mhz: Sequence[tuple[float, float]] | None,
        cat_ptt: bool,
        cat_squelch: bool,
        notify: Callable[[PortNotice], None],
        set_carrier: Callable[[bool], None],
        poll_s: float = DEFAULT_POLL_S,
        backoff_min_s: float = BACKOFF_MIN_S,
        backoff_max_s: float = BACKOFF_MAX_S,
    ) -> None:
        self.name = name
        self._make_driver = make_driver
        self.channels = channels
        self._bands = tuple(bands_mhz) if bands_mhz is not None else None
        self.cat_ptt = cat_ptt
        self._cat_squelch = cat_squelch
        self._notify = notify
        self._set_carrier = set_carrier
        self._poll_s = poll_s
        self._backoff = (backoff_min_s, backoff_max_s)
        self._wake = asyncio.Event()
        self._ptt_wanted = False
        self._ptt_applied = False
        self._talkgroup: str | None = None  # what the engine wants; "" = nothing (idle pool)
        self._online = False
        self._announced_offline = False
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._driver: CatDriver | None = None
        self.identity = ""
        self.tuned: str | None = None

    # ------------------------------------------------------------------ from the engine side
    def want_ptt(self, on: bool) -> None:
        """Loop thread only (callers on other threads use call_soon_threadsafe)."""
        self._ptt_wanted = on
        self._wake.set()

    def want_talkgroup(self, talkgroup: str) -> None:
        """Tune to `talkgroup` (again, even if it is the same: its channel may have changed);
        out of service until verified."""
        self._talkgroup = talkgroup
        self.tuned = None
        self._wake.set()

    # ------------------------------------------------------------------ life cycle
    def start(self) -> None:
        self._task = asyncio.ensure_future(self._supervise())

    async def stop(self) -> None:
        """Unkeys (best effort, bounded) and closes the line, within STOP_TIMEOUT_S plus the
        unkey's and the close's own limits."""
        self._stopping = True  # the session and the supervisor end at their next look
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            done, _ = await asyncio.wait({task}, timeout=STOP_TIMEOUT_S)
            if not done:
                log.error(
                    "%s: the CAT session did not stop within %.1f s; closing its line anyway",
                    self.name,
                    STOP_TIMEOUT_S,
                )
            elif not task.cancelled():
                task.exception()  # retrieved: an ended session is no news at stop
        await self._close_driver(unkey=True)

    # ------------------------------------------------------------------ the supervisor
    async def _supervise(self) -> None:
        delay = self._backoff[0]
        while not self._stopping:
            try:
                await self._session()
            except CatLinkLost as exc:
                reason = f"lost the CAT link ({exc}): unplugged or switched off?"
            except (_Offline, CatError) as exc:
                reason = str(exc)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a driver bug must not end supervision of this radio
                log.exception("%s: unexpected failure", self.name)
                reason = f"unexpected failure: {exc}"
            else:
                reason = "session ended"
            if self._stopping:
                return
            if self._online:  # a fresh failure: start the backoff over
                delay = self._backoff[0]
            self._go_offline(reason)
            await self._close_driver(unkey=True)
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._backoff[1])

    async def _session(self) -> None:
        driver = self._make_driver()
        self._driver = driver
        await driver.open()
        identity = await driver.probe()
        self.identity = identity.model
        await self._unkey(driver)  # before anything else: never inherit a keyed transmitter
        self.tuned = None
        failures = 0
        while not self._stopping:
            self._wake.clear()
            wanted = self._talkgroup
            if wanted is not None and wanted != self.tuned:
                await self._tune(driver, wanted)
            if (
                self.cat_ptt
                and self._ptt_wanted != self._ptt_applied
                and (not self._ptt_wanted or self._in_service())
            ):
                await self._apply_ptt(driver)
                continue  # look again before polling: another change may be waiting
            if self._cat_squelch and self._online:
                try:
                    self._set_carrier(await driver.read_busy())
                    failures = 0
                except CatLinkLost:
                    raise
                except CatError as exc:
                    failures += 1
                    if failures >= MAX_POLL_FAILURES:
                        raise _Offline(f"squelch reads failing: {exc}") from None
            # Not asyncio.wait_for: on Python 3.11 it swallows a cancel that arrives in the
            # same loop pass as the wake (gh-86296), and a stop would then never end.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._poll_s):
                    await self._wake.wait()

    async def _tune(self, driver: CatDriver, talkgroup: str) -> None:
        if talkgroup == "":  # an idle pool radio: left where it is, out of service
            self.tuned = ""
            self._report(online=True, tuned_to="")
            return
        tuning = self.channels.get(talkgroup)
        if tuning is None:
            raise _Offline(f"talkgroup '{talkgroup}' has no frequencies to tune to")
        band_problem = self._outside_bands(tuning)
        if band_problem is not None:
            raise _Offline(band_problem)
        if self._ptt_applied:
            await self._unkey(driver)  # never retune a keyed transmitter
        try:
            await driver.tune_and_verify(tuning)
        except CatLinkLost:
            raise
        except CatError as exc:
            raise _Offline(f"tuning to {talkgroup} ({tuning.describe()}) failed: {exc}") from None
        if self._talkgroup != talkgroup:
            return  # the engine changed its mind meanwhile; tune again on the next pass
        self.tuned = talkgroup
        log.info("%s: %s tuned to %s (%s)", self.name, self.identity, talkgroup, tuning.describe())
        self._report(online=True, tuned_to=talkgroup)

    def _outside_bands(self, tuning: Tuning) -> str | None:
        if self._bands is None:
            return None
        for hz, what in ((tuning.tx_hz, "transmit"), (tuning.rx_hz, "receive")):
            mhz = hz / 1e6
            if not any(low <= mhz <= high for low, high in self._bands):
                bands = ", ".join(f"{low:g}-{high:g}" for low, high in self._bands)
                return (
                    f"refusing to tune: {what} frequency {mhz:g} MHz is outside the radio's "
                    f"bands_mhz ({bands} MHz)"
                )
        return None

    def _in_service(self) -> bool:
        """Online and tuned to what the engine wants: only then may it be keyed."""
        return self._online and bool(self.tuned) and self.tuned == self._talkgroup

    async def _apply_ptt(self, driver: CatDriver) -> None:
        if not self._ptt_wanted:
            await self._unkey(driver)
            return
        await driver.set_ptt(True)
        self._ptt_applied = True

    async def _unkey(self, driver: CatDriver) -> None:
        last: CatError | None = None
        for _ in range(UNKEY_TRIES):
            try:
                await driver.set_ptt(False)
            except CatError as exc:
                last = exc
                if isinstance(exc, CatLinkLost):
                    break
                continue
            self._ptt_applied = False
            return
        self._notify(
            PortNotice(
                self.name,
                online=False,
                alarm=(
                    "unkey_failed",
                    f"could not unkey after {UNKEY_TRIES} tries ({last}); the transmitter may "
                    "still be keyed: check the radio",
                ),
            )
        )
        raise _Offline(f"unkey failed: {last}")

    # ------------------------------------------------------------------ reporting
    def _report(self, *, online: bool, tuned_to: str | None) -> None:
        alarm = None
        if online and self._announced_offline:
            alarm = ("port_online", f"{self.identity} back in service")
            self._announced_offline = False
        self._online = online
        self._notify(PortNotice(self.name, online=online, tuned_to=tuned_to, alarm=alarm))

    def _go_offline(self, reason: str) -> None:
        self._set_carrier(False)
        self.tuned = None
        if self._announced_offline:
            log.info("%s: still offline: %s", self.name, reason)
            return
        log.error("%s: offline: %s", self.name, reason)
        self._online = False
        self._announced_offline = True
        self._notify(PortNotice(self.name, online=False, alarm=("port_offline", reason)))

    async def _close_driver(self, *, unkey: bool) -> None:
        driver, self._driver = self._driver, None
        if driver is None:
            return
        if unkey and self._ptt_applied and driver.is_open:
            with contextlib.suppress(CatError, TimeoutError):
                async with asyncio.timeout(UNKEY_TIMEOUT_S):
                    await driver.set_ptt(False)
        self._ptt_applied = False
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT_S):
                await driver.close()
        except TimeoutError:
            log.error("%s: closing the CAT line took over %.1f s; left", self.name, CLOSE_TIMEOUT_S)
        except Exception:
            log.debug("%s: closing the CAT line failed", self.name, exc_info=True)
