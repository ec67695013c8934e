"""`crosspatch unkey-all`: release every transmitter a config names, without the daemon.

systemd runs this in ExecStopPost, also after a crash, so it must be quick, must not hang on a
missing or wedged device, and must try every radio even when one fails. Each device is released
in its own daemon thread with a shared deadline: a device stuck in the kernel costs one "no
answer" line, never the other radios or the stop of the unit.

Per PTT method:
- rts / dtr: open the serial line so that opening never keys it (levels set before `open()`).
  On Linux the last close of a tty drops RTS and DTR (HUPCL), which is what leaves a normally
  wired radio unkeyed; for an inverted PTT (inactive = asserted) the drop would KEY it, so there
  HUPCL is cleared before close and the lines stay as set.
- cm108: one HID output report to the CM108/CM119 sets the PTT GPIO to output, inactive level.
- cat: the radio's CAT driver sends its unkey (and, where the protocol can, reads back that the
  radio is unkeyed).
- none, simulated radios, links: no transmitter line to release.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Literal, Protocol

# pyserial ships no type hints; the hardware issue may add stubs or an override, hence the
# second code (an unused ignore is itself an error under strict mypy).
import serial  # type: ignore[import-untyped, unused-ignore]

from gateway.config import Config, ControlSettings, Radio
from gateway.config.models import DEFAULT_CM108_GPIO
from gateway.hardware.cm108.gpio import cm108_report
from gateway.hardware.serial.lines import keep_lines_after_close

Method = Literal["rts", "dtr", "cm108", "cat", "none", "simulated", "link"]

# ExecStopPost runs under TimeoutStopSec (10 s in crosspatch.service); devices are released in
# parallel, so the whole command stays well inside it.
DEFAULT_TIMEOUT_S = 3.0
DEFAULT_BAUD = 9600


class SerialLine(Protocol):
    """What unkey-all needs of an unopened pyserial port (the seam tests use to watch levels)."""

    baudrate: int
    rts: bool
    dtr: bool

    def open(self) -> None: ...

    def close(self) -> None: ...

    def fileno(self) -> int: ...


SerialFactory = Callable[[str], SerialLine]


def unopened_serial(port: str) -> SerialLine:
    """A pyserial port for `port` (a device path, or a pyserial URL like loop://), not opened."""
    line: SerialLine = serial.serial_for_url(port, do_not_open=True)
    return line


@dataclass(frozen=True)
class UnkeyResult:
    """What happened to one port's transmitter."""

    port: str
    method: Method
    ok: bool
    detail: str
    needed: bool = True  # False: nothing to release (simulated, link, ptt none)

    @property
    def state(self) -> str:
        if not self.needed:
            return "nothing to release"
        return "released" if self.ok else "NOT RELEASED"

    def line(self) -> str:
        return f"{self.port}: {self.method}: {self.state}: {self.detail}"


@dataclass(frozen=True)
class UnkeyReport:
    results: tuple[UnkeyResult, ...]

    @property
    def failures(self) -> tuple[UnkeyResult, ...]:
        return tuple(result for result in self.results if not result.ok)

    @property
    def exit_code(self) -> int:
        """0 only if every transmitter that needed releasing was released."""
        return 1 if self.failures else 0

    def summary(self) -> str:
        released = sum(1 for r in self.results if r.needed and r.ok)
        idle = sum(1 for r in self.results if not r.needed)
        text = f"unkey-all: {released} released"
        if self.failures:
            names = ", ".join(r.port for r in self.failures)
            text += f", {len(self.failures)} NOT released ({names})"
        return f"{text}, {idle} with nothing to release"

    def lines(self) -> list[str]:
        """One line per port, in config order, then the summary."""
        return [*(result.line() for result in self.results), self.summary()]


# --- planning: which device gets which levels ---------------------------------------------------


@dataclass
class _SerialJob:
    device: str
    baud: int
    # Level each modem line is left at (True = asserted); lines no radio keys with stay negated,
    # the level the kernel's hang-up on close would leave them at anyway.
    levels: dict[str, bool] = field(default_factory=lambda: {"rts": False, "dtr": False})
    radios: list[tuple[str, Method]] = field(default_factory=list)


@dataclass
class _Cm108Job:
    device: str
    mask: int = 0  # GPIOs made outputs: bit n-1 for GPIO n
    data: int = 0  # their levels: only inverted PTTs are driven high
    radios: list[tuple[str, Method]] = field(default_factory=list)


@dataclass
class _CatJob:
    radio: str
    control: ControlSettings

    @property
    def device(self) -> str:
        c = self.control
        return c.port if c.driver != "rigctld" and c.port else f"{c.host}:{c.tcp_port}"


def _serial_detail(job: _SerialJob, method: Method) -> str:
    asserted = job.levels[method]
    level = "asserted (inverted PTT)" if asserted else "negated"
    return f"{method.upper()} {level} on {job.device}"


def _plan(
    cfg: Config,
) -> tuple[
    list[UnkeyResult | None], list[_SerialJob], list[_Cm108Job], list[_CatJob], dict[str, int]
]:
    """Results known without touching a device, and one job per device for the rest.

    Devices are grouped because one open sets both modem lines (and one CM108 report sets every
    GPIO's direction): releasing radio A by RTS must not assert radio B's DTR on the same cable.
    """
    names = cfg.ports()
    slots: list[UnkeyResult | None] = [None] * len(names)
    index = {name: i for i, name in enumerate(names)}
    serial_jobs: dict[str, _SerialJob] = {}
    cm108_jobs: dict[str, _Cm108Job] = {}
    cat_jobs: list[_CatJob] = []
    for name, radio in cfg.radios.items():
        slots[index[name]] = _plan_radio(name, radio, serial_jobs, cm108_jobs, cat_jobs)
    for name in cfg.links:
        slots[index[name]] = UnkeyResult(
            name, "link", True, "a network link keys no transmitter here", needed=False
        )
    return slots, list(serial_jobs.values()), list(cm108_jobs.values()), cat_jobs, index


def _plan_radio(
    name: str,
    radio: Radio,
    serial_jobs: dict[str, _SerialJob],
    cm108_jobs: dict[str, _Cm108Job],
    cat_jobs: list[_CatJob],
) -> UnkeyResult | None:
    if radio.is_simulated and not radio.has_hardware_control:
        return UnkeyResult(name, "simulated", True, "a simulated radio", needed=False)
    ptt = radio.ptt
    if ptt is None or ptt.method == "none":
        return UnkeyResult(name, "none", True, "no PTT line (ptt method none)", needed=False)
    control = radio.control
    if ptt.method == "cat":
        if control is None:
            return UnkeyResult(name, "cat", False, "ptt method cat but no control section")
        cat_jobs.append(_CatJob(name, control))
        return None
    if ptt.method == "cm108":
        hidraw = ptt.port
        if hidraw is None:
            from gateway.hardware.cm108.gpio import Cm108Error, find_hidraw

            card = radio.audio.output if radio.audio is not None else "?"
            try:
                hidraw = str(find_hidraw(card))
            except Cm108Error as exc:
                return UnkeyResult(name, "cm108", False, f"{exc}; or set ptt.port: /dev/hidrawN")
        gpio = ptt.gpio or DEFAULT_CM108_GPIO
        cm108 = cm108_jobs.setdefault(hidraw, _Cm108Job(hidraw))
        cm108.mask |= 1 << (gpio - 1)
        if ptt.invert:
            cm108.data |= 1 << (gpio - 1)
        cm108.radios.append((name, "cm108"))
        return None
    device = ptt.port or (control.port if control is not None else None)
    if device is None:
        return UnkeyResult(name, ptt.method, False, "no serial port for PTT (ptt.port)")
    same_as_cat = control is not None and control.port == device
    baud = (control.baud if same_as_cat and control is not None else None) or DEFAULT_BAUD
    job = serial_jobs.setdefault(device, _SerialJob(device, baud))
    # Inverted wiring: the transmitter is keyed while the line is negated.
    job.levels[ptt.method] = ptt.invert
    job.radios.append((name, ptt.method))
    return None


# --- releasing ----------------------------------------------------------------------------------


def _reason(exc: BaseException) -> str:
    """One line saying why, without pyserial's repeated '[Errno 2] could not open port ...'."""
    errno_value = getattr(exc, "errno", None)
    if isinstance(errno_value, int):
        return os.strerror(errno_value)
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _release_serial(job: _SerialJob, factory: SerialFactory) -> list[UnkeyResult]:
    try:
        line = factory(job.device)
        line.baudrate = job.baud
        # Set before open(): pyserial applies them as part of opening, so the lines go straight
        # to these levels instead of the asserted default that keys most interfaces.
        line.rts = job.levels["rts"]
        line.dtr = job.levels["dtr"]
    except Exception as exc:
        return _all(job.radios, False, f"cannot use {job.device}: {_reason(exc)}")
    try:
        line.open()
    except Exception as exc:
        return _all(job.radios, False, f"cannot open {job.device}: {_reason(exc)}")
    try:
        if any(job.levels.values()):
            keep_lines_after_close(line)
    except Exception as exc:
        return _all(
            job.radios,
            False,
            f"cannot keep the lines of {job.device} set after close (HUPCL): {_reason(exc)}",
        )
    finally:
        # The levels are applied by now; a failing close changes nothing on the line.
        with contextlib.suppress(Exception):
            line.close()
    return [
        UnkeyResult(name, method, True, _serial_detail(job, method)) for name, method in job.radios
    ]


def _release_cm108(job: _Cm108Job) -> list[UnkeyResult]:
    report = cm108_report(job.mask, job.data)
    try:
        # No O_CREAT: a missing /dev/hidrawN is an error, never a new regular file.
        fd = os.open(job.device, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        return _all(job.radios, False, f"cannot open {job.device}: {_reason(exc)}")
    try:
        written = os.write(fd, report)
    except OSError as exc:
        return _all(job.radios, False, f"cannot write to {job.device}: {_reason(exc)}")
    finally:
        os.close(fd)
    if written != len(report):
        return _all(job.radios, False, f"short write to {job.device} ({written} of 5 bytes)")
    levels = "high (inverted PTT)" if job.data else "low"
    gpios = ", ".join(str(bit + 1) for bit in range(8) if job.mask & (1 << bit))
    return _all(job.radios, True, f"GPIO {gpios} set {levels} on {job.device}")


def _release_cat(job: _CatJob) -> list[UnkeyResult]:
    import asyncio

    from gateway.hardware.cat.errors import CatError
    from gateway.hardware.cat.registry import make_driver
    from gateway.ports.wiring import driver_settings

    settings = driver_settings(job.control)

    async def release() -> None:
        async with make_driver(settings) as driver:
            await driver.set_ptt(False)

    try:
        asyncio.run(release())
    except CatError as exc:
        return [UnkeyResult(job.radio, "cat", False, str(exc))]
    return [UnkeyResult(job.radio, "cat", True, f"{settings.driver} unkey sent on {job.device}")]


def _all(radios: Sequence[tuple[str, Method]], ok: bool, detail: str) -> list[UnkeyResult]:
    return [UnkeyResult(name, method, ok, detail) for name, method in radios]


@dataclass(frozen=True)
class _Work:
    radios: Sequence[tuple[str, Method]]
    device: str
    release: Callable[[], list[UnkeyResult]]


def _run_bounded(work: Sequence[_Work], timeout_s: float) -> list[UnkeyResult]:
    """Run every job in its own daemon thread; a job still running at the deadline fails.

    Daemon threads, not a thread pool: interpreter exit would wait for a pool's thread stuck in
    open() on a wedged USB device, and the unit's stop with it.
    """
    outcomes: list[list[UnkeyResult] | None] = [None] * len(work)

    def runner(slot: int, item: _Work) -> None:
        try:
            outcomes[slot] = item.release()
        except Exception as exc:  # a bug here must not cost the other radios
            outcomes[slot] = _all(item.radios, False, f"{item.device}: {_reason(exc)}")

    threads = []
    for slot, item in enumerate(work):
        thread = threading.Thread(
            target=runner, args=(slot, item), name=f"unkey {item.device}", daemon=True
        )
        thread.start()
        threads.append(thread)
    deadline = time.monotonic() + timeout_s
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    results: list[UnkeyResult] = []
    for slot, item in enumerate(work):
        outcome = outcomes[slot]
        if outcome is None:
            outcome = _all(
                item.radios, False, f"no answer from {item.device} within {timeout_s:g} s"
            )
        results.extend(outcome)
    return results


def unkey_all(
    cfg: Config,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    serial_factory: SerialFactory = unopened_serial,
) -> UnkeyReport:
    """Release every transmitter `cfg` names; one result per port, in config order.

    Never raises for a device problem: each is a failed result with a one-line reason.
    `serial_factory` makes an unopened pyserial port for a device (tests pass one that records
    the levels set before open).
    """
    slots, serial_jobs, cm108_jobs, cat_jobs, index = _plan(cfg)
    work = [
        *(
            _Work(j.radios, j.device, partial(_release_serial, j, serial_factory))
            for j in serial_jobs
        ),
        *(_Work(j.radios, j.device, partial(_release_cm108, j)) for j in cm108_jobs),
        *(_Work([(j.radio, "cat")], j.device, partial(_release_cat, j)) for j in cat_jobs),
    ]
    for result in _run_bounded(work, timeout_s):
        slots[index[result.port]] = result
    return UnkeyReport(tuple(result for result in slots if result is not None))
