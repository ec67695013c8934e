"""A site's radios as the engine sees them: one `PortBank` over simulated radios, radios keyed and
heard on serial modem lines, and CAT-controlled radios.

Each port's parts come from where the config says:
- audio: the radio's sound card (`SoundCardAudio`), or the simulated bank's for a simulated
  radio;
- carrier: the simulated bank's for a simulated radio; the squelch line (`LinePortBank`), the
  CM108 GPIO input of its sound card (`Cm108PortBank`) or the CAT squelch poll (`CatRadio`) for a
  radio with real squelch;
- PTT: the line writer thread, the CM108's device thread, or the radio's CAT supervisor; a
  receive-only radio (`none`) is never keyed.
Network links (not `simulated:`) are ports too: `LinkPorts` gives their audio and carrier and
takes their frames and PTT; a link whose peer goes silent is offline like an unplugged radio.

A port is online only while every part it depends on is (its sound card's input and output
streams, its CAT link, its CM108 and the serial ports of its PTT and squelch lines). Parts
report in from their own threads; the engine thread collects the merged news with
`take_notices` at each tick, so it never waits on a device. Lost serial ports, CM108s and sound
cards are reopened here with exponential backoff; CAT radios reopen themselves.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from functools import partial
from typing import Any

import numpy as np
import numpy.typing as npt

from gateway.config import Config
from gateway.hardware.cat.radio import BACKOFF_MAX_S, BACKOFF_MIN_S, STOP_BOUND_S, CatRadio
from gateway.hardware.cat.registry import make_driver
from gateway.hardware.cm108.gpio import Cm108Error
from gateway.hardware.cm108.ports import Cm108PortBank
from gateway.hardware.daemon_threads import off_loop
from gateway.hardware.keying import KeyingBank
from gateway.hardware.serial.line_ports import LinePortBank
from gateway.hardware.serial.lines import SerialLinesError
from gateway.hardware.sound.frame_pacer import FramePacer
from gateway.hardware.sound.ports import (
    SoundCardAudio,
    SoundCardLost,
    sound_card_radios,
)
from gateway.ports.contract import PortNotice
from gateway.ports.link_ports import LinkPorts, link_problem, network_links, talkgroup_id
from gateway.ports.simulated import SimulatedRadios
from gateway.ports.wiring import (
    channels,
    cm108_wirings,
    driver_settings,
    hardware_radios,
    serial_line_wirings,
)

log = logging.getLogger(__name__)

SOUND_CHECK_S = 0.1  # how often the sound cards' streams are checked for a vanished device


def unsupported_hardware(cfg: Config) -> list[str]:
    """Why each radio or link the daemon cannot drive yet cannot be driven (empty: all can)."""
    problems: list[str] = []
    for name in network_links(cfg):
        problem = link_problem(cfg, name)
        if problem is not None:
            problems.append(problem)
    return problems


# Stop: each part of the bank has this long to close; a CAT radio's stop has its own limits
# inside (`gateway.hardware.cat.radio`), and a margin on their sum here.
CLOSE_TIMEOUT_S = 1.0
CAT_STOP_TIMEOUT_S = STOP_BOUND_S + 0.5


async def _bounded(what: str, step: Awaitable[Any], limit_s: float) -> None:
    """Awaits one part of the stop for at most `limit_s`; a part that runs out is named in the
    log, and a part that fails is logged, without stopping the others."""
    try:
        async with asyncio.timeout(limit_s):
            await step
    except TimeoutError:
        log.error("stop: %s did not close within %.1f s; left behind", what, limit_s)
    except Exception:
        log.exception("stop: closing %s failed", what)


class SiteRadios:
    """The engine's `PortBank` for a site with real radio control (see the module doc)."""

    def __init__(
        self,
        cfg: Config,
        names: Sequence[str],
        frame_samples: int,
        loop: asyncio.AbstractEventLoop,
        *,
        audio: SimulatedRadios,
        cat_poll_s: float | None = None,
        backoff_min_s: float = BACKOFF_MIN_S,
        backoff_max_s: float = BACKOFF_MAX_S,
    ) -> None:
        # The daemon refuses what `unsupported_hardware` names before building this bank.
        self.names = tuple(names)
        self.index = {name: i for i, name in enumerate(self.names)}
        self.audio = audio
        self._loop = loop
        self._backoff = (backoff_min_s, backoff_max_s)
        self._notices: queue.SimpleQueue[PortNotice] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._down: dict[str, set[str]] = {}  # port -> parts that are offline
        radios = hardware_radios(cfg)
        self._real_squelch = np.zeros(len(self.names), dtype=bool)
        self._cat_carrier = np.zeros(len(self.names), dtype=bool)
        self._cat_ptt_ports: dict[int, CatRadio] = {}
        self.cat: dict[str, CatRadio] = {}
        wanted = channels(cfg)
        for name, radio in radios.items():
            i = self.index[name]
            self._real_squelch[i] = radio.squelch is not None
            if radio.control is None:
                continue
            settings = driver_settings(radio.control)
            extra = {} if cat_poll_s is None else {"poll_s": cat_poll_s}
            cat = CatRadio(
                name,
                lambda settings=settings: make_driver(settings),  # type: ignore[misc]
                wanted,
                bands_mhz=radio.bands_mhz,
                cat_ptt=radio.ptt is not None and radio.ptt.method == "cat",
                cat_squelch=radio.squelch is not None and radio.squelch.method == "cat",
                notify=lambda notice: self._part_notice(notice, "cat"),
                set_carrier=lambda on, i=i: self._set_cat_carrier(i, on),  # type: ignore[misc]
                backoff_min_s=backoff_min_s,
                backoff_max_s=backoff_max_s,
                **extra,
            )
            self.cat[name] = cat
            if cat.cat_ptt:
                self._cat_ptt_ports[i] = cat
        self.lines = LinePortBank(
            self.names, frame_samples, serial_line_wirings(cfg), on_lost=self._line_lost
        )
        self._has_lines = bool(self.lines.lines)
        wirings = cm108_wirings(cfg)
        self.cm108 = (
            Cm108PortBank(self.names, wirings, on_lost=self._cm108_lost) if wirings else None
        )
        # The keying hardware in use: the engine's PTT goes to it, and real squelch comes from it
        # (besides the CAT radios').
        self._keying: list[KeyingBank] = [
            *([self.lines] if self._has_lines else []),
            *([self.cm108] if self.cm108 is not None else []),
        ]
        sound = sound_card_radios(self.names, cfg.radios)
        self.sound = SoundCardAudio(sound, frame_samples) if sound else None
        self._sound_rows = np.array([self.index[n] for n in sound], dtype=np.int64)
        self._vox_rows = self._sound_rows[self.sound.vox_ports] if self.sound else self._sound_rows
        self._ctcss_rows = (
            self._sound_rows[self.sound.ctcss_wanted] if self.sound else self._sound_rows
        )
        self._ptt = np.zeros(len(self.names), dtype=bool)
        self._reopening: set[str] = set()
        self._tasks: set[asyncio.Future[None]] = set()
        self._signature = hardware_signature(cfg)
        # Reads the links' key files now: a bad one stops the daemon before anything opens.
        self.links = (
            LinkPorts(cfg, self.names, frame_samples, notify=lambda n: self._part_notice(n, "link"))
            if network_links(cfg)
            else None
        )

    # ------------------------------------------------------------------ life cycle (loop)
    def start(self) -> None:
        """Opens the serial lines (a missing one is reported and retried) and starts every CAT
        radio's supervisor. Call on the loop, before the engine starts."""
        if self.sound is not None:
            self.sound.open()  # a missing card is a one-line error naming what exists
            self._spawn(self._watch_sound())
        if self.links is not None:  # an address in use is a one-line error too
            self.links.start()
        for bank in self._keying:
            bank.start(tolerate_missing=True)
        for cat in self.cat.values():
            cat.start()

    async def close(self) -> None:
        """Unkeys every radio and closes every line (after the engine has stopped). Each part
        has its own time limit; one that runs out is named in the log and left behind, so a
        hung device never holds up the stop (the engine's last frame already unkeyed the line
        and CM108 radios, and asked the CAT radios to unkey)."""
        for task in list(self._tasks):
            task.cancel()
        if self.links is not None:  # first: the peers hear PTT off at once
            await _bounded("the links", self.links.close(), CLOSE_TIMEOUT_S)
        # The rest at once, each within its own limit: the stop takes the longest of them.
        parts = [
            _bounded(f"CAT radio {name}", cat.stop(), CAT_STOP_TIMEOUT_S)
            for name, cat in self.cat.items()
        ]
        closes: list[tuple[str, Callable[[], object]]] = []
        if self._has_lines:
            closes.append(("the serial lines", self.lines.close))
        if self.cm108 is not None:
            closes.append(("the CM108 GPIO", self._close_cm108))
        if self.sound is not None:
            closes.append(("the sound cards", self.sound.close))
        parts += [_bounded(what, off_loop(what, close), CLOSE_TIMEOUT_S) for what, close in closes]
        await asyncio.gather(*parts)

    def _close_cm108(self) -> None:
        assert self.cm108 is not None
        try:
            self.cm108.close()
        except Cm108Error as exc:
            log.critical("UNKEY FAILED on a CM108, check the radio now: %s", exc)

    @property
    def pacer(self) -> FramePacer | None:
        """The engine's clock: the first input sound card's (None: the engine's timer)."""
        return self.sound.pacer if self.sound is not None else None

    # ------------------------------------------------------------------ PortBank (engine thread)
    def frame(self) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.bool_]]:
        rx, simulated = self.audio.frame()
        real = self._cat_carrier.copy()
        for bank in self._keying:
            real |= bank.carrier()
        carrier = np.where(self._real_squelch, real, simulated)
        if self.sound is not None:
            rx[self._sound_rows] = self.sound.receive()
            carrier[self._vox_rows] = self.sound.vox[self.sound.vox_ports]
            # The CTCSS qualifier: carrier counts only while the radio's tone is present.
            carrier[self._ctcss_rows] &= self.sound.tone[self.sound.ctcss_wanted]
        if self.links is not None:
            self.links.fill(rx, carrier)
        return rx, carrier

    def transmit(self, tx: npt.NDArray[np.float32], ptt: npt.NDArray[np.bool_]) -> None:
        self.audio.transmit(tx, ptt)
        if self.sound is not None:
            self.sound.send(tx[self._sound_rows])
        for bank in self._keying:
            bank.transmit(tx, ptt)
        if self.links is not None:
            self.links.transmit(tx, ptt)
        changed = np.flatnonzero(ptt != self._ptt)
        if changed.size:
            self._ptt = ptt.copy()
            for i in changed:
                cat = self._cat_ptt_ports.get(int(i))
                if cat is not None:
                    self._loop.call_soon_threadsafe(cat.want_ptt, bool(ptt[i]))

    # ------------------------------------------------------------------ HardwarePorts
    def take_notices(self) -> list[PortNotice]:
        notices: list[PortNotice] = []
        while True:
            try:
                notices.append(self._notices.get_nowait())
            except queue.Empty:
                return notices

    def tunable_ports(self) -> list[str]:
        return list(self.cat)

    def tune(self, port: str, talkgroup: str) -> None:
        self._loop.call_soon_threadsafe(self.cat[port].want_talkgroup, talkgroup)

    # ------------------------------------------------------------------ parts reporting in
    def _set_cat_carrier(self, i: int, on: bool) -> None:
        self._cat_carrier[i] = on  # one bool store, read by the engine thread

    def _part_notice(self, notice: PortNotice, part: str) -> None:
        """Merges one part's news into the port's: online only while no part is down."""
        with self._lock:
            down = self._down.setdefault(notice.port, set())
            if notice.online:
                down.discard(part)
            else:
                down.add(part)
            merged = PortNotice(notice.port, not down, notice.tuned_to, notice.alarm)
        self._notices.put(merged)

    def _line_lost(self, url: str, reason: str) -> None:
        """A serial port of modem lines failed (poller thread, or at start)."""
        wiring = self.lines.wiring(url)
        radios = dict.fromkeys(
            [p.radio for p in wiring.ptt_lines] + [c.radio for c in wiring.cos_lines]
        )
        for radio in radios:
            self._part_notice(PortNotice(radio, False, alarm=("port_offline", reason)), url)
        self._loop.call_soon_threadsafe(self._start_reopen, url, list(radios))

    def _cm108_lost(self, device: str, reason: str) -> None:
        """A CM108 failed or vanished (its device thread, or at start)."""
        assert self.cm108 is not None
        cm108 = self.cm108
        part = f"CM108 {device}"
        radios = list(cm108.wiring(device).radios)
        for radio in radios:
            self._part_notice(PortNotice(radio, False, alarm=("port_offline", reason)), part)
        self._loop.call_soon_threadsafe(
            self._bring_back, part, radios, lambda: cm108.reopen(device), Cm108Error
        )

    def _start_reopen(self, url: str, radios: list[str]) -> None:
        self._bring_back(url, radios, lambda: self.lines.reopen(url), SerialLinesError)

    async def _watch_sound(self) -> None:
        """Takes the radios of a vanished sound card out of service and brings them back."""
        assert self.sound is not None
        sound = self.sound
        while True:
            await asyncio.sleep(SOUND_CHECK_S)
            for stream, reason in sound.check_streams():
                log.warning("%s lost: %s", stream.label, reason)
                for radio in stream.radio_names:
                    self._part_notice(
                        PortNotice(
                            radio, False, alarm=("port_offline", f"{stream.label} lost: {reason}")
                        ),
                        stream.label,
                    )
                await off_loop(f"closing {stream.label}", partial(sound.drop_stream, stream))
                self._bring_back(
                    stream.label,
                    stream.radio_names,
                    lambda stream=stream: sound.reopen_stream(stream),  # type: ignore[misc]
                    SoundCardLost,
                )

    def _bring_back(
        self,
        part: str,
        radios: list[str],
        reopen: Callable[[], None],
        still_missing: type[Exception],
    ) -> None:
        """Retries `reopen` (off the loop) with exponential backoff until it stops raising
        `still_missing`; then `part` of each radio is back in service."""
        if part in self._reopening:
            return
        self._reopening.add(part)

        async def retry() -> None:
            delay = self._backoff[0]
            try:
                while True:
                    await asyncio.sleep(delay)
                    try:
                        await off_loop(f"reopening {part}", reopen)
                    except still_missing as exc:
                        log.info("%s still unavailable: %s", part, exc)
                        delay = min(delay * 2, self._backoff[1])
                        continue
                    log.info("%s is back", part)
                    for radio in radios:
                        self._part_notice(
                            PortNotice(radio, True, alarm=("port_online", f"{part} is back")), part
                        )
                    return
            finally:
                self._reopening.discard(part)

        self._spawn(retry())

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------------ reload
    def compatible(self, cfg: Config, names: Sequence[str]) -> bool:
        """True when `cfg` has the same ports and wires the same hardware, so a reload can keep
        this bank (and every open device) as it is."""
        return tuple(names) == self.names and hardware_signature(cfg) == self._signature

    def set_channels(self, cfg: Config) -> None:
        """New frequencies for the talkgroups (a reload); the runtime asks for the re-tuning."""
        wanted = channels(cfg)
        for cat in self.cat.values():
            cat.channels = wanted


def hardware_signature(cfg: Config) -> list[tuple[object, ...]]:
    """What a reload cannot change without a restart: how each radio is wired, and each
    network link's settings (its socket and keys are set up at start)."""
    control: list[tuple[object, ...]] = [
        (name, r.control, r.ptt, r.squelch, r.bands_mhz, r.pool)
        for name, r in hardware_radios(cfg).items()
    ]
    sound: list[tuple[object, ...]] = [
        (name, r.audio) for name, r in sound_card_radios(list(cfg.radios), cfg.radios).items()
    ]
    links: list[tuple[object, ...]] = [
        (
            name,
            k.protocol,
            k.local,
            k.remote,
            k.codec,
            k.srtp_key_file,
            k.insecure,
            k.usrp_type_byte_order,
            k.usrp_ping_s,
            k.usrp_timeout_s,
            talkgroup_id(cfg, k),
        )
        for name, k in network_links(cfg).items()
    ]
    return control + sound + links
