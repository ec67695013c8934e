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

import logging
import secrets
import time
from collections import deque
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

from gateway.codecs import registry
from gateway.codecs.base import FRAME_SAMPLES, CodecError, Pcm
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
from gateway.links.srtp import SrtpContext, SrtpError, read_key_file
from gateway.links.udp_link import QUEUE_FRAMES, OnlineCallback, UdpCounters, UdpLink

log = logging.getLogger(__name__)

KEEPALIVE_S = 0.2  # R2S-KeepAlivePeriod (ms) 200
KEEPALIVE_MULTIPLIER = 10  # R2S-KeepAliveMultiplier: missed periods before the link is down
PTT_ID = 1

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
class LinkCounters(UdpCounters):
    """Counted on the loop thread (the jitter buffer counts on the engine thread); packets_in
    counts keep-alives too."""

    keepalives_in: int = 0
    keepalives_out: int = 0
    auth_failures: int = 0
    replayed: int = 0


class RtpLink(UdpLink):
    """One RTP link (see the module doc). `key` overrides the config's `srtp_key_file` (tests
    and benchmarks); `keepalive_s` and `keepalive_multiplier` are the R2S period and how many
    periods of silence mean the peer is down."""

    counters: LinkCounters

    _SEND_ERRORS: ClassVar[tuple[type[Exception], ...]] = (OSError, SrtpError)

    def __init__(
        self,
        name: str,
        link: Link,
        *,
        frame_samples: int = FRAME_SAMPLES,
        key: bytes | None = None,
        on_online: OnlineCallback | None = None,
        keepalive_s: float = KEEPALIVE_S,
        keepalive_multiplier: int = KEEPALIVE_MULTIPLIER,
    ) -> None:
        if link.protocol != "rtp":
            raise LinkError(f"link '{name}': protocol {link.protocol} is not RTP")
        super().__init__(name, link, frame_samples=frame_samples, on_online=on_online)
        problem = codec_problem(link.codec)
        if problem is not None:
            raise LinkError(f"link '{name}': {problem}")
        self.codec = registry.get(link.codec)
        if key is None and link.srtp_key_file is not None:
            key = read_key_file(link.srtp_key_file)
        if key is None and not link.insecure:
            raise LinkError(f"link '{name}': no SRTP key, and not marked insecure")
        self._srtp = SrtpContext(key) if key is not None else None
        self._encoder = self.codec.encoder()
        # Read for every packet: kept here rather than looked up through the codec each time.
        self._payload_type = self.codec.payload_type
        self._timestamp_step = self.codec.timestamp_step
        self._jitter = JitterBuffer(
            self.codec.decoder(),
            frame_samples=frame_samples,
            timestamp_step=self.codec.timestamp_step,
            clock_rate=self.codec.clock_rate,
        )
        self._period = keepalive_s
        self._timeout = keepalive_s * keepalive_multiplier
        self.counters = LinkCounters()
        # RFC 3550: random SSRC, first sequence number and timestamp.
        self._ssrc = secrets.randbits(32)
        self._seq = secrets.randbits(16)
        self._ts0 = secrets.randbits(32)
        # Engine thread -> loop: (tick, frame or None for unkeyed); loop -> engine: packets.
        self._outbox: deque[tuple[int, Pcm | None]] = deque(maxlen=QUEUE_FRAMES)
        self._inbox: deque[tuple[RtpPacket, float]] = deque(maxlen=QUEUE_FRAMES)
        self._tick = 0  # engine ticks so far (engine thread writes, loop reads)
        self._peer_ssrc: int | None = None
        self._remote_state = IDLE

    # ------------------------------------------------------------------ loop: keep-alives
    def _housekeeping(self, now: float) -> float:
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
        return wake

    def _goodbye(self) -> None:
        self._send_keepalive()  # PTT off

    # ------------------------------------------------------------------ state
    def stats(self) -> dict[str, Any]:
        return {
            "protocol": "rtp",
            "codec": self.codec.name,
            "srtp": self._srtp is not None,
            "local": self.config.local,
            "remote": self.config.remote,
            "online": self._online,
            "remote_keyed": self._remote_state.carrier,
            **asdict(self.counters),
            **self._receive_stats(),
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
        return (self._ts0 + tick * self._timestamp_step) & 0xFFFF_FFFF

    def _next_seq(self) -> int:
        self._seq = (self._seq + 1) & 0xFFFF
        return self._seq

    def _flush(self) -> None:
        outbox = self._outbox
        encode = self._encoder.encode
        while outbox:
            tick, pcm = outbox.popleft()
            if pcm is None:
                self._end_transmission()
                continue
            try:
                payload = encode(pcm)
            except CodecError as exc:
                log.error("link %s: a frame could not be encoded: %s", self.name, exc)
                continue
            # `_next_seq` and `_timestamp` written out: this runs for every frame of every link.
            self._seq = seq = (self._seq + 1) & 0xFFFF
            data = pack(
                self._payload_type,
                seq,
                (self._ts0 + tick * self._timestamp_step) & 0xFFFF_FFFF,
                self._ssrc,
                payload,
                not self._sending_audio,
                _KEYED_BLOCK,
            )
            self._sending_audio = True
            self._send(data)

    def _send_end_packet(self) -> None:
        self._send_keepalive()  # PTT off

    def _send_keepalive(self) -> None:
        """An R2S keep-alive with PTT off, stamped with the engine's current tick."""
        seq, ts = self._next_seq(), self._timestamp(self._tick)
        if self._send(pack(R2S_PAYLOAD_TYPE, seq, ts, self._ssrc, extension=_UNKEYED_BLOCK)):
            self.counters.keepalives_out += 1

    def _protect(self, data: bytes) -> bytes:
        return data if self._srtp is None else self._srtp.protect(data)

    # ------------------------------------------------------------------ loop: receiving
    def _on_datagram(self, data: bytes, addr: tuple[Any, ...]) -> None:
        counters = self.counters
        if addr[:2] != self._remote[:2]:
            counters.unknown_source += 1
            return
        if not looks_like_rtp(data):
            counters.malformed += 1
            return
        srtp = self._srtp
        if srtp is not None:
            if ssrc_of(data) == self._ssrc:
                # Both directions share the master key; the same SSRC both ways would reuse
                # a keystream. Whoever notices moves.
                self._ssrc = secrets.randbits(32)
            try:
                data = srtp.unprotect(data)
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
        payload_type = packet.payload_type
        if payload_type != self._payload_type and payload_type != R2S_PAYLOAD_TYPE:
            counters.malformed += 1
            return
        now = time.monotonic()
        self._heard_from_peer(now)
        if payload_type == R2S_PAYLOAD_TYPE:
            counters.keepalives_in += 1
        self._inbox.append((packet, now))
