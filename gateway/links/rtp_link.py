"""One RTP link: a UDP socket on the daemon's asyncio loop carrying one talkgroup to a peer.

The public surface, which every kind of link (RTP here, USRP in `usrp_link`) offers to
`LinkPorts`:

    link = RtpLink(name, link_config, on_online=callback)  # reads the key file; LinkError
    link.start()                  # on the loop: binds the socket now (LinkError), runs in a task
    pcm, carrier = link.receive()  # engine thread, once per tick: the next frame, int16 8 kHz
    link.send(pcm, ptt)           # engine thread, once per tick: never blocks
    link.online                   # the peer is heard (keep-alives or audio)
    link.stats()                  # counters for `crosspatch status`
    await link.close()            # on the loop: a last PTT-off keep-alive, then the socket closes

`on_online(name, online, detail)` is called on the loop when the peer goes silent for
`keepalive_multiplier` keep-alive periods (10 x 200 ms) and when it is heard again. Frames are
int16 (what codecs and USRP carry); `LinkPorts` converts every link's rows to and from the
engine's float32 in one go.

Sending: while the engine keys the link, each tick's frame is queued (a deque: the engine thread
never waits; one loop wake-up serves every link with something queued) and the loop encodes it,
adds the ED-137 extension (PTT normal, SQU), protects it and sends it; the first packet of a
transmission has the marker bit. On unkey it sends
END_REPEATS R2S keep-alives with PTT off, a frame apart, so one lost packet does not leave the
peer keyed. Whenever nothing has gone out for a keep-alive period it sends an R2S keep-alive.
The RTP timestamp counts engine ticks, so it follows real time across silences (which the
jitter estimate relies on); sequence numbers count every packet, keep-alives included.

Receiving: a datagram from any address but the configured remote is dropped and counted; then
SRTP authentication (unless `insecure`), then RTP parsing; a packet that fails either is dropped
and counted, never raised. Good packets go to the engine thread, which feeds them into the
jitter buffer and plays one frame per tick; the carrier is the sender's ED-137 PTT or SQU as it
plays out (audio without the extension counts as keyed).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import socket
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from gateway.codecs import registry
from gateway.codecs.base import CodecError, Pcm
from gateway.config.models import Link
from gateway.links import LinkError
from gateway.links.jitter import IDLE, JitterBuffer
from gateway.links.rtp import (
    R2S_PAYLOAD_TYPE,
    Ed137,
    PttType,
    RtpError,
    RtpPacket,
    extension_block,
    looks_like_rtp,
    pack,
    parse_packet,
    ssrc_of,
)
from gateway.links.send_queue import SendQueue, send_queue
from gateway.links.srtp import SrtpContext, SrtpError, read_key_file

log = logging.getLogger(__name__)

OnlineCallback = Callable[[str, bool, str], None]

KEEPALIVE_S = 0.2  # R2S-KeepAlivePeriod (ms) 200
KEEPALIVE_MULTIPLIER = 10  # R2S-KeepAliveMultiplier: missed periods before the link is down
END_REPEATS = 3
PTT_ID = 1
QUEUE_FRAMES = 256  # 5 s either way: only a stalled thread fills it, then the oldest go

# What we send while keyed. Both bits: a peer acting as a radio keys on PTT, one acting as a
# controller opens on SQU; the other gateway takes either as carrier.
KEYED = Ed137(ptt_type=PttType.NORMAL, squ=True, ptt_id=PTT_ID)
UNKEYED = Ed137()
_KEYED_BLOCK, _UNKEYED_BLOCK = extension_block(KEYED), extension_block(UNKEYED)
# Audio from a sender that adds no ED-137 extension: it sends only while keyed.
_PLAIN_AUDIO = Ed137(ptt_type=PttType.NORMAL)


def codec_problem(name: str) -> str | None:
    """Why codec `name` cannot be used in this build, or None."""
    ok, reason = registry.available(name)
    if not ok:
        return reason
    try:
        codec = registry.get(name)
        codec.encoder()
        codec.decoder()
    except ImportError:
        return f"codec {name} is not in this build yet"
    except CodecError as exc:
        return str(exc)
    return None


@dataclass
class LinkCounters:
    """Counted on the loop thread (the jitter buffer counts on the engine thread)."""

    packets_in: int = 0  # good packets, keep-alives included
    packets_out: int = 0
    keepalives_in: int = 0
    keepalives_out: int = 0
    unknown_source: int = 0
    malformed: int = 0
    auth_failures: int = 0
    replayed: int = 0
    send_errors: int = 0


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, link: RtpLink) -> None:
        self._link = link

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        self._link._on_datagram(data, addr)

    def error_received(self, exc: Exception) -> None:
        # An ICMP error for something we sent (the peer's port is closed): the keep-alive
        # timeout is what decides the link is down.
        self._link.counters.send_errors += 1


class RtpLink:
    """One RTP link (see the module doc). `key` overrides the config's `srtp_key_file` (tests
    and benchmarks); `keepalive_s` and `keepalive_multiplier` are the R2S period and how many
    periods of silence mean the peer is down."""

    def __init__(
        self,
        name: str,
        link: Link,
        *,
        frame_samples: int = 160,
        key: bytes | None = None,
        on_online: OnlineCallback | None = None,
        keepalive_s: float = KEEPALIVE_S,
        keepalive_multiplier: int = KEEPALIVE_MULTIPLIER,
    ) -> None:
        if link.protocol != "rtp":
            raise LinkError(f"link '{name}': protocol {link.protocol} is not RTP")
        self.name = name
        self.config = link
        problem = codec_problem(link.codec)
        if problem is not None:
            raise LinkError(f"link '{name}': {problem}")
        self.codec = registry.get(link.codec)
        if frame_samples != self.codec.frame_samples:
            raise LinkError(
                f"link '{name}': RTP links send 20 ms packets and need gateway.frame_ms 20"
            )
        if key is None and link.srtp_key_file is not None:
            key = read_key_file(link.srtp_key_file)
        if key is None and not link.insecure:
            raise LinkError(f"link '{name}': no SRTP key, and not marked insecure")
        self._srtp = SrtpContext(key) if key is not None else None
        self._encoder = self.codec.encoder()
        self._jitter = JitterBuffer(
            self.codec.decoder(),
            frame_samples=frame_samples,
            timestamp_step=self.codec.timestamp_step,
            clock_rate=self.codec.clock_rate,
        )
        self._on_online = on_online
        self._period = keepalive_s
        self._timeout = keepalive_s * keepalive_multiplier
        self._frame_s = frame_samples / 8000
        self.counters = LinkCounters()
        # RFC 3550: random SSRC, first sequence number and timestamp.
        self._ssrc = secrets.randbits(32)
        self._seq = secrets.randbits(16)
        self._ts0 = secrets.randbits(32)
        self._remote: tuple[Any, ...] = ()
        self._sock: socket.socket | None = None
        self._transport: asyncio.DatagramTransport | None = None
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._send_queue: SendQueue | None = None
        self._online = True
        self._last_heard = self._last_sent = time.monotonic()
        # Engine thread -> loop: (tick, frame or None for unkeyed); loop -> engine: packets.
        self._outbox: deque[tuple[int, Pcm | None]] = deque(maxlen=QUEUE_FRAMES)
        self._inbox: deque[tuple[RtpPacket, float]] = deque(maxlen=QUEUE_FRAMES)
        self._tick = 0  # engine ticks so far (engine thread writes, loop reads)
        self._keyed = False  # engine thread's view
        self._sending_audio = False  # loop's view
        self._spurt = 0
        self._peer_ssrc: int | None = None
        self._remote_state = IDLE

    # ------------------------------------------------------------------ life cycle (loop)
    def start(self) -> None:
        """Binds the local address (a LinkError if it cannot) and starts sending keep-alives
        and listening. Call on the running loop."""
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
        """Sends what the engine queued last and a PTT-off keep-alive, then closes."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._transport is not None and not self._transport.is_closing():
            self._flush()
            self._sending_audio = False
            self._send_keepalive()
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
        self._transport = transport
        while True:
            now = time.monotonic()
            if now - self._last_sent >= self._period:
                self._send_keepalive()
            if self._online and now - self._last_heard > self._timeout:
                self._set_online(
                    False,
                    f"link down: nothing from {self.config.remote} for {self._timeout:g} s "
                    f"({round(self._timeout / self._period)} keep-alives missed)",
                )
            wake = self._last_sent + self._period
            if self._online:
                wake = min(wake, self._last_heard + self._timeout)
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

    def stats(self) -> dict[str, Any]:
        jitter = self._jitter
        return {
            "protocol": "rtp",
            "codec": self.codec.name,
            "srtp": self._srtp is not None,
            "local": self.config.local,
            "remote": self.config.remote,
            "online": self._online,
            "remote_keyed": self._remote_state.carrier,
            **asdict(self.counters),
            **{f"rx_{key}": value for key, value in asdict(jitter.stats).items()},
            "jitter_ms": round(jitter.jitter_ms, 2),
            "target_ms": round(jitter.target_ms, 1),
        }

    # ------------------------------------------------------------------ engine thread
    def receive(self) -> tuple[Pcm, bool]:
        """The next frame heard from the peer (int16 at 8 kHz) and whether it is keyed."""
        inbox = self._inbox
        jitter = self._jitter
        while inbox:
            packet, arrival = inbox.popleft()
            if packet.ssrc != self._peer_ssrc:
                if self._peer_ssrc is not None:  # the peer restarted: a new stream
                    jitter.restart(self.codec.decoder())
                self._peer_ssrc = packet.ssrc
            if packet.payload_type == R2S_PAYLOAD_TYPE:
                state = packet.ed137 if packet.ed137 is not None else IDLE
                jitter.push(packet.sequence, packet.timestamp, None, state, arrival)
            else:
                state = packet.ed137 if packet.ed137 is not None else _PLAIN_AUDIO
                jitter.push(packet.sequence, packet.timestamp, packet.payload, state, arrival)
        pcm, state = jitter.pop(time.monotonic())
        self._remote_state = state
        return pcm, state.carrier

    def send(self, pcm: Pcm, ptt: bool) -> None:
        """This tick's frame for the peer (int16 at 8 kHz) and whether the engine keys the
        link. Never blocks."""
        self._tick += 1
        if (ptt or self._keyed) and self._send_queue is not None:
            self._outbox.append((self._tick, pcm.copy() if ptt else None))
            self._send_queue.want(self)
        self._keyed = ptt

    # ------------------------------------------------------------------ loop: sending
    def _timestamp(self, tick: int) -> int:
        return (self._ts0 + tick * self.codec.timestamp_step) & 0xFFFF_FFFF

    def _next_seq(self) -> int:
        self._seq = (self._seq + 1) & 0xFFFF
        return self._seq

    def _flush(self) -> None:
        outbox = self._outbox
        while outbox:
            tick, pcm = outbox.popleft()
            if pcm is None:
                if self._sending_audio:
                    self._sending_audio = False
                    self._spurt += 1
                    self._send_end(self._spurt, END_REPEATS)
                continue
            try:
                payload = self._encoder.encode(pcm)
            except CodecError as exc:
                log.error("link %s: a frame could not be encoded: %s", self.name, exc)
                continue
            data = pack(
                self.codec.payload_type,
                self._next_seq(),
                self._timestamp(tick),
                self._ssrc,
                payload,
                not self._sending_audio,
                _KEYED_BLOCK,
            )
            self._sending_audio = True
            self._send(data)

    def _send_end(self, spurt: int, remaining: int) -> None:
        if spurt != self._spurt or self._sending_audio:
            return  # keyed again meanwhile: no stale PTT-off after the new audio
        self._send_keepalive()
        if remaining > 1 and self._loop is not None:
            self._loop.call_later(self._frame_s, self._send_end, spurt, remaining - 1)

    def _send_keepalive(self) -> None:
        """An R2S keep-alive with PTT off, stamped with the engine's current tick."""
        seq, ts = self._next_seq(), self._timestamp(self._tick)
        if self._send(pack(R2S_PAYLOAD_TYPE, seq, ts, self._ssrc, extension=_UNKEYED_BLOCK)):
            self.counters.keepalives_out += 1

    def _send(self, data: bytes) -> bool:
        transport = self._transport
        if transport is None or transport.is_closing():
            return False
        try:
            if self._srtp is not None:
                data = self._srtp.protect(data)
            transport.sendto(data, self._remote)
        except (OSError, SrtpError) as exc:
            self.counters.send_errors += 1
            log.debug("link %s: not sent: %s", self.name, exc)
            return False
        self._last_sent = time.monotonic()
        self.counters.packets_out += 1
        return True

    # ------------------------------------------------------------------ loop: receiving
    def _on_datagram(self, data: bytes, addr: tuple[Any, ...]) -> None:
        counters = self.counters
        if addr[:2] != self._remote[:2]:
            counters.unknown_source += 1
            return
        if not looks_like_rtp(data):
            counters.malformed += 1
            return
        if self._srtp is not None:
            if ssrc_of(data) == self._ssrc:
                # Both directions share the master key; the same SSRC both ways would reuse
                # a keystream. Whoever notices moves.
                self._ssrc = secrets.randbits(32)
            try:
                data = self._srtp.unprotect(data)
            except SrtpError as exc:
                if exc.replay:
                    counters.replayed += 1
                else:
                    counters.auth_failures += 1
                return
        try:
            packet = parse_packet(data)
        except RtpError:
            counters.malformed += 1
            return
        if packet.payload_type not in (self.codec.payload_type, R2S_PAYLOAD_TYPE):
            counters.malformed += 1
            return
        now = time.monotonic()
        self._last_heard = now
        counters.packets_in += 1
        if packet.payload_type == R2S_PAYLOAD_TYPE:
            counters.keepalives_in += 1
        if not self._online:
            self._set_online(True, f"link up: {self.config.remote} heard again")
        self._inbox.append((packet, now))
