"""Runs a test body against an open driver: the one harness every CAT driver test uses; and
`until`, a wait for a condition that leaves the event loop running (the link tests use it too)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from gateway.hardware.cat.base import CatDriver

D = TypeVar("D", bound=CatDriver)
T = TypeVar("T")


def drive(make: Callable[[], D], body: Callable[[D], Awaitable[T]]) -> T:
    """Makes the driver inside a fresh event loop, opens it, runs `body`, and closes it."""

    async def main() -> T:
        async with make() as driver:
            return await body(driver)

    return asyncio.run(main())


async def until(condition: Callable[[], object], timeout: float = 10.0, what: str = "") -> None:
    """Returns once `condition()` holds, polling without blocking the loop (the driver, the
    link, the server under test go on meanwhile); AssertionError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or condition}")
        await asyncio.sleep(0.005)
