"""Runs a test body against an open driver: the one harness every CAT driver test uses."""

from __future__ import annotations

import asyncio
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
