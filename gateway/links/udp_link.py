"""What every link over UDP shares, RTP (`rtp_link`) and USRP (`usrp_link`) alike: the socket
bound at `start()` and served on the daemon's asyncio loop, frames queued by the engine thread
and flushed from the loop (`send_queue`), the end of a transmission repeated a frame apart,
online and offline with its callback, and the close that sends what was queued last.

A subclass supplies the protocol: `_flush` (encode and send the queued frames), `_send_end_packet`
(the packet that says the transmission ended), `_housekeeping` (keep-alives, pings, the timeout;
returns when it next wants to run), `_goodbye` (what to send at close) and `_on_datagram`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

from gateway.config.models import Link
from gateway.core.timing import SAMPLE_RATE
from gateway.links import LinkError
from gateway.links.jitter import JitterBuffer
from gateway.links.send_queue import SendQueue, send_queue

log = logging.getLogger(__name__)

OnlineCallback = Callable[[str, bool, str], None]

END_REPEATS = 3  # the end of a transmission, sent this many times a frame apart
QUEUE_FRAMES = 256  # 5 s either way: only a stalled thread fills it, then the oldest go
# What one read from the socket may take: any UDP datagram (65,507 bytes over IPv4, 65,527 over
# IPv6), so nothing is cut short. asyncio's selector transport reads into a 256 KiB buffer by
# default (its `max_size`) and then shrinks it: an allocation glibc serves with mmap and munmap,
# for every datagram. With 64 links at 50 packets a second that was half the CPU of the bare
# sockets (bench/links.py); a 64 KiB buffer comes from the heap.
READ_BYTES = 65536


@dataclass
class UdpCounters:
    """Counted on the loop thread; each protocol's counters add their own."""

    packets_in: int = 0  # good packets from the peer
    packets_out: int = 0
    unknown_source: int = 0
    malformed: int = 0
    send_errors: int = 0


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, link: UdpLink) -> None:
        self._link = link
        # The transport calls the link's own method for each datagram, not one that passes it
        # on: a Python call less per packet received.
        self.datagram_received = link._on_datagram  # type: ignore[method-assign]

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        self._link._on_datagram(data, addr)

    def error_received(self, exc: Exception) -> None:
        # An ICMP error for something we sent (nobody listens at the peer's port yet, or any
        # more): the protocol's own timeout, not this, decides the peer is down.
        self._link.counters.send_errors += 1


class UdpLink(ABC):
    """The shared part of a link (see the module doc)."""

    counters: UdpCounters
    _jitter: JitterBuffer  # the subclass's receive buffer
    # What `_send` counts as a packet not sent (logged at debug, counted), besides OSError.
    _SEND_ERRORS: ClassVar[tuple[type[Exception], ...]] = (OSError,)

    def __init__(
        self,
        name: str,
        link: Link,
        *,
        frame_samples: int,
        on_online: OnlineCallback | None,
    ) -> None:
        self.name = name
        self.config = link
        self._frame_s = frame_samples / SAMPLE_RATE
        self._on_online = on_online
        self._remote: tuple[Any, ...] = ()
        self._sock: socket.socket | None = None
        self._transport: asyncio.DatagramTransport | None = None
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._send_queue: SendQueue | None = None
        self._online = True
        self._last_heard = self._last_sent = time.monotonic()
        self._keyed = False  # engine thread's view
        self._sending_audio = False  # loop's view
        self._spurt = 0  # transmissions ended so far (loop)

    # ------------------------------------------------------------------ life cycle (loop)
    def start(self) -> None:
        """Binds the local address (a LinkError if it cannot) and starts serving the link.
        Call on the running loop."""
        self._loop = asyncio.get_running_loop()
        self._send_queue = send_queue(self._loop)
        local_host, local_port = self.config.local_address
        remote_host, remote_port = self.config.remote_address
        try:
            family, _, _, _, local = socket.getaddrinfo(
                local_host, local_port, type=socket.SOCK_DGRAM, flags=socket.AI_PASSIVE
            )[0]
            remote = socket.getaddrinfo(remote_host, remote_port, family, socket.SOCK_DGRAM)[0]
        except (OSError, IndexError) as exc:
            raise LinkError(
                f"link '{self.name}': cannot resolve {self.config.local} / "
                f"{self.config.remote}: {exc}"
            ) from None
        self._remote = remote[4]
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            sock.bind(local)
        except OSError as exc:
            sock.close()
            raise LinkError(
                f"link '{self.name}': cannot listen on {self.config.local}: {exc.strerror or exc}"
            ) from None
        self._sock = sock
        self._last_heard = self._last_sent = time.monotonic()
        self._task = asyncio.ensure_future(self._run())

    async def close(self) -> None:
        """Sends what the engine queued last and the protocol's goodbye, then closes."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._transport is not None and not self._transport.is_closing():
            self._flush()
            self._sending_audio = False
            self._spurt += 1  # no end repeats after the goodbye
            self._goodbye()
            self._transport.close()
        elif self._sock is not None and self._transport is None:
            self._sock.close()

    async def _run(self) -> None:
        try:
            await self._serve()
        except asyncio.CancelledError:
            raise
        except Exception:  # a bug here must not pass silently: the link would just go quiet
            log.exception("link %s stopped", self.name)

    async def _serve(self) -> None:
        assert self._loop is not None and self._sock is not None
        transport, _ = await self._loop.create_datagram_endpoint(
            lambda: _Protocol(self), sock=self._sock
        )
        if hasattr(transport, "max_size"):  # a selector loop's transport (see READ_BYTES)
            transport.max_size = READ_BYTES
        self._transport = transport
        while True:
            wake = self._housekeeping(time.monotonic())
            await asyncio.sleep(max(wake - time.monotonic(), 0.005))

    # ------------------------------------------------------------------ state
    @property
    def online(self) -> bool:
        return self._online

    def _set_online(self, online: bool, detail: str) -> None:
        self._online = online
        (log.info if online else log.warning)("link %s: %s", self.name, detail)
        if self._on_online is not None:
            self._on_online(self.name, online, detail)

    def _receive_stats(self) -> dict[str, Any]:
        """The jitter buffer's part of `stats()`."""
        jitter = self._jitter
        return {
            **{f"rx_{key}": value for key, value in asdict(jitter.stats).items()},
            "jitter_ms": round(jitter.jitter_ms, 2),
            "target_ms": round(jitter.target_ms, 1),
        }

    def _heard_from_peer(self, now: float) -> None:
        """A good packet from the peer: it is online (again)."""
        self._last_heard = now
        self.counters.packets_in += 1
        if not self._online:
            self._set_online(True, f"link up: {self.config.remote} heard again")

    # ------------------------------------------------------------------ loop: sending
    def _end_transmission(self) -> None:
        """The engine unkeyed the link: the end packet, END_REPEATS times a frame apart, so one
        lost packet does not leave the peer keyed."""
        if self._sending_audio:
            self._sending_audio = False
            self._spurt += 1
            self._send_end(self._spurt, END_REPEATS)

    def _send_end(self, spurt: int, remaining: int) -> None:
        if spurt != self._spurt or self._sending_audio:
            return  # keyed again meanwhile: no stale end after the new audio
        self._send_end_packet()
        if remaining > 1 and self._loop is not None:
            self._loop.call_later(self._frame_s, self._send_end, spurt, remaining - 1)

    def _send(self, data: bytes) -> bool:
        transport = self._transport
        if transport is None or transport.is_closing():
            return False
        try:
            transport.sendto(self._protect(data), self._remote)
        except self._SEND_ERRORS as exc:
            self.counters.send_errors += 1
            log.debug("link %s: not sent: %s", self.name, exc)
            return False
        self._last_sent = time.monotonic()
        self.counters.packets_out += 1
        return True

    # ------------------------------------------------------------------ the protocol's part
    def _protect(self, data: bytes) -> bytes:
        """A packet as it goes on the wire (SRTP encrypts it here)."""
        return data

    @abstractmethod
    def _flush(self) -> None:
        """Encodes and sends what the engine queued (`_end_transmission` on an unkey)."""

    @abstractmethod
    def _send_end_packet(self) -> None:
        """Sends the packet that says a transmission ended."""

    @abstractmethod
    def _goodbye(self) -> None:
        """Sends what the peer should hear last, at close."""

    @abstractmethod
    def _housekeeping(self, now: float) -> float:
        """Keep-alives, pings, the peer's timeout; returns when to run again (monotonic)."""

    @abstractmethod
    def _on_datagram(self, data: bytes, addr: tuple[Any, ...]) -> None:
        """A datagram from anywhere: checked, counted, and handed to the engine thread."""
