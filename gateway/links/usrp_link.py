"""One USRP link: a UDP socket on the daemon's asyncio loop carrying one talkgroup to an
AllStarLink node (chan_usrp), a DVSwitch Analog_Bridge or USRP_Client, or another crosspatch.

The public surface is RtpLink's (see `gateway.links.rtp_link`): the constructor, `start()` on
the loop (binds now, LinkError), `receive()` and `send(pcm, ptt)` on the engine thread once per
tick (never blocking), `online`, `stats()` and `await close()`. The packet format is
`gateway.links.usrp`.

Sending: while the engine keys the link, one VOICE packet per tick (keyup 1, 160 samples,
the talkgroup's numeric `id` in the header, 0 if it has none), queued on the engine thread and
sent from the loop like RtpLink's. On unkey, the header alone with keyup 0, END_REPEATS times a
frame apart, so one lost packet does not leave the peer keyed (ASL sends it once). One sequence
counter numbers every packet, pings included, as ASL does: ASL logs "possible data loss" for a
gap. When nothing has gone out for `usrp_ping_s`, a PING (DVSwitch type 3, header only) says
we are here: a crosspatch or DVSwitch peer counts it as heard, and ASL is not harmed by it
(chan_usrp checks the magic, notes the sequence number and silently drops any packet whose
payload is not 320 bytes, as it does our unkeys). `usrp_ping_s: 0` turns it off.

Receiving: a datagram from any address but the configured remote is dropped and counted;
so is one that does not parse (by reason: truncated, oversized, bad magic, unknown type, wrong
voice length) and one whose header names a talkgroup other than ours (0 means unspecified and
passes; a link whose talkgroup has no `id` takes any). Voice (linear, or mu-law converted on
arrival) goes through the RTP links' jitter buffer with timestamps made from the sequence
numbers, since USRP has none; each talkspurt starts the buffer afresh (the sender's count went
on through its pings and unkeys, so its numbers say nothing of the time between spurts).
DTMF, TEXT, TLV and ADPCM packets are heard but not played.

Carrier: USRP has no squelch bit that counts. As in ASL, arriving voice is carrier whatever its
keyup says (ASL ignores keyup on receive). It drops when the header-only keyup 0 packet plays
out, right after the last frame, or, when that packet is lost, after RX_HANG_FRAMES frames with
nothing to play. ASL drops its receive key after MAX_RXKEY_TIME (4) idle polls, 80 ms: the same
idea, plus one frame because our tick is not in phase with the sender's, and counted only once
the jitter buffer has run dry (so the network's jitter is already allowed for).

Online: USRP has no keep-alive standard, and ASL sends nothing at all while idle. So by default
a USRP peer is never declared down (`online` stays true; `stats()` says when it was last heard).
With `usrp_timeout_s` set (for a peer that pings: crosspatch, DVSwitch), `online` means heard
anything, pings included, in the last `usrp_timeout_s`; going silent and being heard again raise
the `port_offline` / `port_online` alarms through `on_online`, as RtpLink's do.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from gateway.codecs.base import FadeConcealer, Pcm
from gateway.config.models import USRP_MAX_TALKGROUP_ID, Link
from gateway.links import LinkError, usrp
from gateway.links.jitter import IDLE, JitterBuffer
from gateway.links.rtp import Ed137, PttType
from gateway.links.udp_link import (
    END_REPEATS,
    QUEUE_FRAMES,
    OnlineCallback,
    UdpCounters,
    UdpLink,
)
from gateway.links.usrp import UsrpError, UsrpType

log = logging.getLogger(__name__)

__all__ = ["END_REPEATS", "RX_HANG_FRAMES", "UsrpLink"]

RX_HANG_FRAMES = 5  # ASL's MAX_RXKEY_TIME (4 polls of 20 ms) plus one: see the module doc
# A packet at most this far behind the newest one taken, arriving between talkspurts, is a
# straggler of the last one (dropped as late), unless the next number follows it: then the
# sender started counting again.
MAX_MISORDER = 100
IDLE_WAKE_S = 1.0  # the loop's longest sleep when it has neither pings nor a timeout to mind
_U32 = 0xFFFF_FFFF
_WIRE_SAMPLES = np.dtype("<i2")

# The jitter buffer carries the sender's state with each frame: voice is keyed.
_KEYED = Ed137(ptt_type=PttType.NORMAL)


class _LinearDecoder:
    """The jitter buffer's codec: payloads are 320 bytes of little-endian int16 (mu-law voice is
    converted on arrival); a lost frame is the last one fading out."""

    def __init__(self, frame_samples: int) -> None:
        self._concealer = FadeConcealer(frame_samples)

    def decode(self, payload: bytes) -> Pcm:
        pcm = usrp.linear_samples(payload)
        self._concealer.good(pcm)
        return pcm

    def conceal(self, next_payload: bytes | None = None) -> Pcm:
        return self._concealer.conceal()


@dataclass
class UsrpCounters(UdpCounters):
    """Counted on the loop thread (the jitter buffer counts on the engine thread); packets_in
    counts good packets of every type; malformed every parse failure (by reason in `dropped`)."""

    voice_in: int = 0
    voice_out: int = 0
    unkeys_in: int = 0
    unkeys_out: int = 0
    pings_in: int = 0
    pings_out: int = 0
    not_audio: int = 0  # DTMF, TEXT, TLV, ADPCM: heard, not played
    wrong_talkgroup: int = 0


class UsrpLink(UdpLink):
    """One USRP link (see the module doc). `talkgroup_id` is the numeric id of the talkgroup the
    link carries (0: none); `hang_frames` how long a carrier outlives its last frame when the
    unkey packet is lost."""

    counters: UsrpCounters

    def __init__(
        self,
        name: str,
        link: Link,
        *,
        frame_samples: int = usrp.VOICE_SAMPLES,
        talkgroup_id: int = 0,
        on_online: OnlineCallback | None = None,
        hang_frames: int = RX_HANG_FRAMES,
    ) -> None:
        if link.protocol != "usrp":
            raise LinkError(f"link '{name}': protocol {link.protocol} is not USRP")
        if not 0 <= talkgroup_id <= USRP_MAX_TALKGROUP_ID:
            raise LinkError(f"link '{name}': talkgroup id {talkgroup_id} does not fit 32 bits")
        super().__init__(name, link, frame_samples=frame_samples, on_online=on_online)
        self.talkgroup_id = talkgroup_id
        self._order: usrp.TypeOrder = link.usrp_type_byte_order
        self._ping_s = link.usrp_ping_s
        self._timeout_s = link.usrp_timeout_s
        self._frame_samples = frame_samples
        self._jitter = JitterBuffer(
            _LinearDecoder(frame_samples), frame_samples=frame_samples, hold_frames=hang_frames
        )
        self.counters = UsrpCounters()
        self._dropped: dict[str, int] = {}
        self._seq = 0  # ASL starts its count at 0 too
        self._heard = False
        # Engine thread -> loop: a frame, or None for unkeyed; loop -> engine: (seq, payload or
        # None for an unkey, arrival).
        self._outbox: deque[Pcm | None] = deque(maxlen=QUEUE_FRAMES)
        self._inbox: deque[tuple[int, bytes | None, float]] = deque(maxlen=QUEUE_FRAMES)
        # Engine thread: the talkspurt being received.
        self._spurt_seq0 = 0
        self._newest: int | None = None
        self._stray: int | None = None
        self._remote_state = IDLE

    # ------------------------------------------------------------------ loop: pings, timeout
    def _housekeeping(self, now: float) -> float:
        ping_s, timeout_s = self._ping_s, self._timeout_s
        if ping_s > 0 and not self._sending_audio and now - self._last_sent >= ping_s:
            self._send_ping()
        if timeout_s is not None and self._online and now - self._last_heard > timeout_s:
            self._set_online(
                False, f"link down: nothing from {self.config.remote} for {timeout_s:g} s"
            )
        wake = now + IDLE_WAKE_S
        if ping_s > 0:
            wake = min(wake, self._last_sent + ping_s)
        if timeout_s is not None and self._online:
            wake = min(wake, self._last_heard + timeout_s)
        return wake

    def _goodbye(self) -> None:
        if self.counters.voice_out:  # one more unkey, if we ever keyed the peer
            self._send_unkey()

    # ------------------------------------------------------------------ state
    def stats(self) -> dict[str, Any]:
        jitter = self._jitter
        counters = self.counters
        dropped = {
            "unknown_source": counters.unknown_source,
            "wrong_talkgroup": counters.wrong_talkgroup,
            **self._dropped,
            "late": jitter.stats.late,
        }
        return {
            "protocol": "usrp",
            "local": self.config.local,
            "remote": self.config.remote,
            "online": self._online,
            "remote_keyed": self._remote_state.carrier,
            "talkgroup_id": self.talkgroup_id,
            "type_byte_order": self._order,
            "ping_s": self._ping_s,
            "timeout_s": self._timeout_s,
            "last_heard_s": (
                round(time.monotonic() - self._last_heard, 1) if self._heard else None
            ),
            **asdict(counters),
            "dropped": {reason: n for reason, n in dropped.items() if n},
            **self._receive_stats(),
        }

    # ------------------------------------------------------------------ engine thread
    def receive(self) -> tuple[Pcm, bool]:
        """The next frame heard from the peer (int16 at 8 kHz) and whether it is keyed."""
        inbox = self._inbox
        jitter = self._jitter
        while inbox:
            seq, payload, arrival = inbox.popleft()
            idle = not jitter.playing and jitter.depth == 0
            if payload is None:  # the unkey: plays out after the frames before it
                if not idle:  # (between talkspurts there is nothing to end)
                    self._take(seq)
                    jitter.push(seq & 0xFFFF, 0, None, IDLE, arrival)
                continue
            if idle:
                if self._straggler(seq):
                    jitter.stats.late += 1
                    continue
                # A new talkspurt: its own sequence and timing (see the module doc).
                jitter.restart(_LinearDecoder(self._frame_samples))
                self._spurt_seq0 = self._newest = seq
            else:
                self._take(seq)
            timestamp = ((seq - self._spurt_seq0) * self._frame_samples) & _U32
            jitter.push(seq & 0xFFFF, timestamp, payload, _KEYED, arrival)
        pcm, state = jitter.pop(time.monotonic())
        self._remote_state = state
        return pcm, state.carrier

    def _take(self, seq: int) -> None:
        """Notes `seq` as the newest number taken if it is (serial arithmetic, 32 bits)."""
        newest = self._newest
        if newest is None or 0 < (seq - newest) & _U32 < 0x8000_0000:
            self._newest = seq

    def _straggler(self, seq: int) -> bool:
        """Whether voice arriving between talkspurts is a late packet of the last one."""
        newest = self._newest
        if newest is None or (newest - seq) & _U32 >= MAX_MISORDER:
            self._stray = None
            return False
        if seq == self._stray:  # the numbers go on from the "straggler": the peer restarted
            self._stray = None
            return False
        self._stray = (seq + 1) & _U32
        return True

    def send(self, pcm: Pcm, ptt: bool) -> None:
        """This tick's frame for the peer (int16 at 8 kHz) and whether the engine keys the
        link. Never blocks."""
        if (ptt or self._keyed) and self._send_queue is not None:
            self._outbox.append(pcm.copy() if ptt else None)
            self._send_queue.want(self)
        self._keyed = ptt

    # ------------------------------------------------------------------ loop: sending
    def _next_seq(self) -> int:
        seq = self._seq
        self._seq = (seq + 1) & _U32
        return seq

    def _flush(self) -> None:
        outbox = self._outbox
        while outbox:
            pcm = outbox.popleft()
            if pcm is None:
                self._end_transmission()
                continue
            data = usrp.voice(
                self._next_seq(), pcm, talkgroup=self.talkgroup_id, type_order=self._order
            )
            self._sending_audio = True
            if self._send(data):
                self.counters.voice_out += 1

    def _send_end_packet(self) -> None:
        self._send_unkey()

    def _send_unkey(self) -> None:
        data = usrp.unkey(self._next_seq(), talkgroup=self.talkgroup_id, type_order=self._order)
        if self._send(data):
            self.counters.unkeys_out += 1

    def _send_ping(self) -> None:
        data = usrp.ping(self._next_seq(), talkgroup=self.talkgroup_id, type_order=self._order)
        if self._send(data):
            self.counters.pings_out += 1
        else:
            self._last_sent = time.monotonic()  # not sent: try again a period later, not now

    # ------------------------------------------------------------------ loop: receiving
    def _drop(self, reason: str, detail: str) -> None:
        """Counts a dropped packet; the first of each reason is logged as a warning."""
        first = reason not in self._dropped
        self._dropped[reason] = self._dropped.get(reason, 0) + 1
        (log.warning if first else log.debug)(
            "link %s: dropped a packet from %s: %s", self.name, self.config.remote, detail
        )

    def _on_datagram(self, data: bytes, addr: tuple[Any, ...]) -> None:
        counters = self.counters
        if addr[:2] != self._remote[:2]:
            counters.unknown_source += 1
            return
        try:
            packet = usrp.parse(data, self._order)
        except UsrpError as exc:
            counters.malformed += 1
            self._drop(exc.reason, str(exc))
            return
        if packet.talkgroup and self.talkgroup_id and packet.talkgroup != self.talkgroup_id:
            counters.wrong_talkgroup += 1
            if counters.wrong_talkgroup == 1:
                log.warning(
                    "link %s: dropped a packet for talkgroup %d (this link carries %d)",
                    self.name,
                    packet.talkgroup,
                    self.talkgroup_id,
                )
            return
        now = time.monotonic()
        self._heard = True
        self._heard_from_peer(now)
        if packet.is_audio:
            counters.voice_in += 1
            payload = packet.payload
            if packet.type == UsrpType.VOICE_ULAW:
                payload = packet.samples().astype(_WIRE_SAMPLES).tobytes()
            self._inbox.append((packet.seq, payload, now))
        elif packet.is_unkey:
            counters.unkeys_in += 1
            self._inbox.append((packet.seq, None, now))
        elif packet.type == UsrpType.PING:
            counters.pings_in += 1
        elif packet.type not in (UsrpType.VOICE, UsrpType.VOICE_ULAW):
            counters.not_audio += 1
        # (A voice header with keyup 1 and no audio says nothing we act on: heard, that is all.)
