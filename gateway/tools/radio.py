"""Technician tools: `crosspatch devices` and `crosspatch radio probe|tune|key|watch`.

A technician wiring a radio wants to know, before any patch goes live: is the cable there, does
the radio answer, does it tune where the talkgroup says, does it key, does its squelch report.
The radio is named either by the config (`--radio NAME --config FILE`) or ad hoc
(`--driver D --port P [--baud B] [--address A]`; rigctld takes `--port HOST:PORT`).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from gateway.hardware.cat.base import CatDriver, Tuning
from gateway.hardware.cat.errors import CatError, CatLinkLost, CatRejected, CatTimeout
from gateway.hardware.cat.registry import DriverSettings, make_driver
from gateway.hardware.keying import unkey_cat


@dataclass(frozen=True)
class SerialDevice:
    device: str
    description: str
    usb_id: str  # "VVVV:PPPP", or "" for a port that is not USB
    serial_number: str


def serial_devices() -> list[SerialDevice]:
    from serial.tools import list_ports

    found = []
    for port in sorted(list_ports.comports(), key=lambda p: p.device):
        usb = f"{port.vid:04x}:{port.pid:04x}" if port.vid is not None else ""
        found.append(
            SerialDevice(port.device, port.description or "", usb, port.serial_number or "")
        )
    return found


def sound_cards(cards_file: Path = Path("/proc/asound/cards")) -> list[tuple[int, str, str]]:
    """(index, id, description) of every ALSA card, from the kernel's own list."""
    try:
        text = cards_file.read_text()
    except OSError:
        return []
    cards = []
    for match in re.finditer(r"^\s*(\d+)\s+\[(\S+)\s*\]:\s*(.*)$", text, re.MULTILINE):
        cards.append((int(match.group(1)), match.group(2), match.group(3).strip()))
    return cards


def describe_devices() -> list[str]:
    lines = ["serial ports:"]
    ports = serial_devices()
    lines += [
        f"  {d.device:<16} {d.usb_id or '-':<10} {d.description}"
        + (f" (serial {d.serial_number})" if d.serial_number else "")
        for d in ports
    ] or ["  none found"]
    lines.append("sound cards:")
    cards = sound_cards()
    lines += [f"  card {i}: {card_id:<14} {desc}" for i, card_id, desc in cards] or ["  none found"]
    return lines


async def probe(driver: CatDriver) -> list[str]:
    identity = await driver.probe()
    detail = f" ({identity.detail})" if identity.detail else ""
    try:
        tuned = (await driver.read_tuning()).describe()
    except (CatRejected, CatTimeout, CatLinkLost):
        raise
    except CatError as exc:  # e.g. an HF rig left in SSB: say so, the probe itself worked
        tuned = f"not on an FM/AM channel the gateway can use ({exc})"
    busy = await driver.read_busy()
    return [
        f"radio: {identity.model}{detail}",
        f"tuned: {tuned}",
        f"squelch: {'open (busy)' if busy else 'closed'}",
    ]


async def tune(driver: CatDriver, tuning: Tuning) -> list[str]:
    got = await driver.tune_and_verify(tuning)
    return [f"tuned and verified: {got.describe()}"]


async def key(driver: CatDriver, seconds: float, stop: asyncio.Event) -> list[str]:
    started = time.monotonic()
    try:
        await driver.set_ptt(True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), seconds)
    finally:
        await unkey_cat(driver)  # retries: the one command that must get through
    return [f"keyed {time.monotonic() - started:.1f} s, unkeyed"]


async def watch(
    driver: CatDriver, stop: asyncio.Event, show: Callable[[str], None], poll_s: float = 0.1
) -> list[str]:
    last: bool | None = None
    changes = 0
    while not stop.is_set():
        busy = await driver.read_busy()
        if busy != last:
            show(f"{time.strftime('%H:%M:%S')} squelch {'OPEN' if busy else 'closed'}")
            changes += last is not None
            last = busy
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), poll_s)
    return [f"{changes} squelch changes seen"]


async def run_radio_action(
    settings: DriverSettings,
    action: str,
    *,
    tuning: Tuning | None = None,
    seconds: float = 1.0,
    show: Callable[[str], None] = print,
) -> list[str]:
    """Opens the radio, runs one action, and closes it; Ctrl-C and SIGTERM end `key` and
    `watch` early (and `key` always unkeys)."""
    driver = make_driver(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with driver:
            if action == "probe":
                return await probe(driver)
            if action == "tune":
                assert tuning is not None
                return await tune(driver, tuning)
            if action == "key":
                return await key(driver, seconds, stop)
            if action == "watch":
                return await watch(driver, stop, show)
            raise CatError(f"unknown radio action '{action}'")
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
