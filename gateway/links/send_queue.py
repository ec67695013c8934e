"""Links with frames to send, flushed on the daemon's loop: one wake-up per engine tick for every
link with something queued, RTP and USRP alike (a wake-up is a write to the loop's self-pipe, too
dear to pay once per link)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections import deque
from typing import Protocol

log = logging.getLogger(__name__)


class Flushable(Protocol):
    name: str

    def _flush(self) -> None: ...


class SendQueue:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._links: deque[Flushable] = deque()
        self._pending = False

    def want(self, link: Flushable) -> None:  # engine thread
        self._links.append(link)
        if not self._pending:
            self._pending = True
            with contextlib.suppress(RuntimeError):  # the loop is closed: we are stopping
                self._loop.call_soon_threadsafe(self._flush)

    def _flush(self) -> None:
        self._pending = False  # first: a link queued from here on wakes us again
        links = self._links
        while links:
            link = links.popleft()
            try:
                link._flush()
            except Exception:  # one link's bug must not hold up the others' audio
                log.exception("link %s: sending failed", link.name)


_SEND_QUEUES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, SendQueue] = (
    weakref.WeakKeyDictionary()
)


def send_queue(loop: asyncio.AbstractEventLoop) -> SendQueue:
    """The loop's one send queue."""
    queue = _SEND_QUEUES.get(loop)
    if queue is None:
        queue = _SEND_QUEUES[loop] = SendQueue(loop)
    return queue
