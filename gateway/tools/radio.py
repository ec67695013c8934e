"""Technician tools: `crosspatch radio probe|tune|key|watch` (`devices` lists what to name).

A technician wiring a radio wants to know, before any patch goes live: is the cable there, does
the radio answer, does it tune where the talkgroup says, does it key, does its squelch report.
The radio is named either by the config (`--radio NAME --config FILE`) or ad hoc
(`--driver D --port P [--baud B] [--address A]`; rigctld takes `--port HOST:PORT`).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Callable

from gateway.hardware.cat.base import CatDriver, Tuning
from gateway.hardware.cat.errors import CatError, CatLinkLost, CatRejected, CatTimeout
from gateway.hardware.cat.registry import DriverSettings, make_driver
from gateway.hardware.keying import unkey_cat


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
