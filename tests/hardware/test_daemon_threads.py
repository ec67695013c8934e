"""Blocking device calls off the loop: a call hung in a driver never keeps the process alive."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import threading

import pytest

from gateway.hardware.daemon_threads import off_loop

HUNG_CALL = textwrap.dedent(
    """
    import asyncio, threading
    from gateway.hardware.daemon_threads import off_loop

    async def main():
        never = threading.Event()
        try:
            await asyncio.wait_for(off_loop("a hung open", never.wait), 0.2)
        except TimeoutError:
            print("gave up", flush=True)

    asyncio.run(main())
    """
)


@pytest.mark.parametrize("how", ["off_loop", "asyncio.to_thread"])
def test_a_process_exits_with_a_device_call_still_hung(how: str) -> None:
    code = HUNG_CALL.replace('off_loop("a hung open", never.wait)', "asyncio.to_thread(never.wait)")
    code = HUNG_CALL if how == "off_loop" else code
    try:
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=10
        )
    except subprocess.TimeoutExpired:
        hung = True
    else:
        hung = False
        assert done.returncode == 0 and done.stdout == "gave up\n", done.stderr
    # The reason off_loop exists: asyncio.to_thread's thread is joined at exit, for ever.
    assert hung is (how == "asyncio.to_thread")


def test_the_result_and_the_error_come_back() -> None:
    async def main() -> tuple[int, str]:
        value = await off_loop("adding", lambda: 2 + 2)
        try:
            await off_loop("failing", lambda: int("x"))
        except ValueError as exc:
            return value, str(exc)
        return value, ""

    assert asyncio.run(main()) == (4, "invalid literal for int() with base 10: 'x'")


def test_a_call_given_up_on_finishes_on_its_own_thread() -> None:
    finished = threading.Event()
    release = threading.Event()

    def slow() -> None:
        release.wait(5)
        finished.set()

    async def main() -> None:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(off_loop("slow", slow), 0.05)
        release.set()

    asyncio.run(main())
    assert finished.wait(5)
