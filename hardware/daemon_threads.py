"""Blocking device calls run off the event loop on daemon threads, so a hung driver never holds
up a stop or the process's exit.

Not `asyncio.to_thread`: the default executor's threads are joined when the loop and then the
interpreter end, so a call hung in a driver (PortAudio on a sound server that stopped answering,
a serial port or device server that never returns from open or close) would keep the process
alive however short the limit put on the call. A daemon thread is left behind instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def off_loop(what: str, work: Callable[[], T]) -> asyncio.Future[T]:
    """Runs `work` on a daemon thread named `what`; the future is its outcome. Cancelling the
    future (a limit ran out, the stop gave up) leaves the thread to finish on its own."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[T] = loop.create_future()

    def settle(result: T | None, error: BaseException | None) -> None:
        if done.done():  # given up on
            return
        if error is None:
            done.set_result(result)  # type: ignore[arg-type]
        else:
            done.set_exception(error)

    def run() -> None:
        result: T | None = None
        error: BaseException | None = None
        try:
            result = work()
        except BaseException as exc:  # handed to the awaiting task
            error = exc
        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody waits any more
            loop.call_soon_threadsafe(settle, result, error)

    threading.Thread(target=run, name=what, daemon=True).start()
    return done
