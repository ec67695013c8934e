"""The one open seam for serial lines: opening never keys a radio.

A serial port raises RTS and DTR when it opens, and many radio interfaces key the transmitter on
one of them; pyserial lets the levels be set on an unopened port, so they are set (inactive by
default) before `open()`. Device paths and pyserial URLs (`socket://host:port` for a simulator
over TCP, `loop://` for tests) go through the same call.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Callable
from typing import TypeVar

import serial
import serial_asyncio_fast

from gateway.hardware.cat.errors import CatLinkLost
from gateway.hardware.daemon_threads import off_loop

P = TypeVar("P", bound=asyncio.Protocol)


def unopened_serial(
    url: str,
    baudrate: int,
    *,
    rts: bool = False,
    dtr: bool = False,
    stopbits: float = serial.STOPBITS_ONE,
) -> serial.Serial:
    """A serial port object with its modem lines preset, not yet open."""
    port = serial.serial_for_url(
        url, do_not_open=True, baudrate=baudrate, timeout=0, stopbits=stopbits
    )
    port.rts = rts
    port.dtr = dtr
    return port


async def open_serial(
    url: str,
    baudrate: int,
    protocol_factory: Callable[[], P],
    *,
    rts: bool = False,
    dtr: bool = False,
    stopbits: float = serial.STOPBITS_ONE,
) -> tuple[asyncio.Transport, P]:
    """Opens `url` with RTS and DTR at the given levels from the first instant, and connects
    it to an asyncio protocol. Raises `CatLinkLost` with the reason if the port cannot open."""
    port = unopened_serial(url, baudrate, rts=rts, dtr=dtr, stopbits=stopbits)
    abandoned = threading.Event()
    settled = threading.Lock()

    def open_port() -> None:
        port.open()
        with settled:
            if abandoned.is_set():  # nobody waits for it any more (see below): not left open
                port.close()

    try:
        # On a daemon thread (gateway.hardware.daemon_threads): an open hung in the driver or
        # on a device server that stopped answering must not keep the process from exiting.
        await off_loop(f"opening {url}", open_port)
    except (serial.SerialException, OSError, ValueError) as exc:
        raise CatLinkLost(f"cannot open {url}: {_reason(exc)}") from None
    except asyncio.CancelledError:
        with settled:  # an open still under way closes the port itself; a finished one here
            abandoned.set()
            if port.is_open:
                port.close()
        raise
    loop = asyncio.get_running_loop()
    protocol = protocol_factory()
    transport = serial_asyncio_fast.SerialTransport(loop, protocol, port)
    return transport, protocol


def _reason(exc: BaseException) -> str:
    # pyserial wraps OSError text as "[Errno 2] could not open port X: [Errno 2] No such file...":
    # keep the innermost reason.
    text = str(exc)
    text = text.rsplit("] ", 1)[-1] if "] " in text else text
    return re.sub(r": '[^']*'$", "", text)  # the path is named already
