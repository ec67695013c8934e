"""An adaptive jitter buffer for one incoming RTP stream: packets in as they arrive, one frame
out per engine tick.

- **Order.** Packets are slotted by extended sequence number (RFC 3550 A.1: 16-bit wrap, and a
  jump of more than MAX_DROPOUT forward or MAX_MISORDER back is taken as a restart only once the
  next packet follows it). A packet whose slot was already played is late: dropped and counted.
- **Delay.** The interarrival jitter J is estimated as in RFC 3550 A.8; the target delay is
  clamp(k * J, 20 ms, 200 ms) in whole frames. A talkspurt starts playing its first frame at
  the target after the time the fastest packets of the stream take to come (the least transit
  of the last BASE_WINDOW audio packets: it follows clock drift and route changes), and never
  later than the target after the first frame came: a first packet that was itself late does
  not add its lateness to the whole talkspurt. While it plays, a slot still empty is concealed
  in place (the delay grows by a frame: the network is slower than the target), a buffer deeper
  than the target plus FAST_EXCESS is cut back at once, and one that stayed deeper than needed
  for a whole WINDOW loses one frame (the delay shrinks back after the jitter has gone).
- **Loss.** A missing frame with later ones queued is lost: the decoder's `conceal()` stands in
  (given the next payload, for Opus's in-band FEC).
- **PTT and squelch travel with the audio.** Each slot carries the sender's ED-137 state; an
  R2S keep-alive is a slot without audio. So the end of a transmission (the sender's PTT-off
  keep-alive) plays out right after its last frame, not a buffer's length before it. A
  talkspurt with no packets for `hold_frames` (the sender vanished) ends on its own.

Single-threaded: the link hands packets over and the engine thread pushes and pops.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from gateway.codecs.base import FRAME_SAMPLES, SAMPLE_RATE, CodecError, Decoder, Pcm
from gateway.links.rtp import Ed137

# RFC 3550 A.1.
MAX_DROPOUT = 3000
MAX_MISORDER = 100
# Cut a buffer back at once when it runs this many frames deeper than the target (after a
# network stall that then delivered its backlog at once).
FAST_EXCESS = 3
# Shrink by one frame when the buffer stayed deeper than needed for this many frames (1 s).
WINDOW = 50
# A talkspurt whose packets stopped coming ends after this many frames (300 ms): longer than an
# R2S period (200 ms), so a lost PTT-off is made good by the next keep-alive first.
HOLD_FRAMES = 15
CAPACITY_FRAMES = 64
JITTER_K = 4.0
# The least transit is taken over this many audio packets (5 s of audio): long enough to hold
# the fastest path through any jitter, short enough to follow clock drift and a slower route.
BASE_WINDOW = 250
# A tick that comes this early still plays a frame due now (threads wake a little late or early).
START_TOLERANCE_S = 0.001

IDLE = Ed137()


@dataclass
class JitterStats:
    played: int = 0  # frames decoded from packets
    late: int = 0  # packets that came after their slot was played
    duplicates: int = 0
    lost: int = 0  # frames missing while later ones were queued
    underruns: int = 0  # frames with nothing queued during a talkspurt
    concealed: int = 0  # frames the decoder made up (lost or underrun)
    skipped: int = 0  # frames dropped to bring the delay back to the target
    undecodable: int = 0
    resyncs: int = 0  # sequence restarts (RFC 3550 A.1)


class _Slot(NamedTuple):
    payload: bytes | None  # None: state only (an R2S keep-alive)
    state: Ed137
    arrival: float
    sent: float  # the sender's time of the frame (s, from its timestamp); keep-alives: arrival


# One slot a packet: made with tuple's constructor, which skips the Python-level __new__ of a
# NamedTuple (or a dataclass's __init__) that would cost as much as the rest of `push`.
_new_slot = tuple.__new__


class JitterBuffer:
    def __init__(
        self,
        decoder: Decoder,
        *,
        frame_samples: int = FRAME_SAMPLES,
        timestamp_step: int = FRAME_SAMPLES,
        clock_rate: int = SAMPLE_RATE,
        min_ms: float = 20.0,
        max_ms: float = 200.0,
        k: float = JITTER_K,
        hold_frames: int = HOLD_FRAMES,
    ) -> None:
        self._decoder = decoder
        self.frame_samples = frame_samples
        self._step = timestamp_step
        self._clock_rate = clock_rate
        self.frame_ms = timestamp_step * 1000 / clock_rate
        self._min_ms, self._max_ms, self._k = min_ms, max_ms, k
        self._hold_frames = hold_frames
        self._shape = (frame_samples,)
        self._silence: Pcm = np.zeros(frame_samples, dtype=np.int16)
        self._silence.flags.writeable = False
        self.stats = JitterStats()
        self._jitter_ts = 0.0  # RFC 3550 J, in timestamp units
        self._reset()

    def _reset(self) -> None:
        self._slots: dict[int, _Slot] = {}
        self._max_ext: int | None = None
        self._bad_seq: int | None = None
        self._played: int | None = None  # last slot played (or skipped)
        self._next = 0
        self._playing = False
        self._state = IDLE
        self._hold = 0
        self._last_ts: int | None = None
        self._ext_ts = 0
        self._transit: float | None = None
        # Sliding minimum of the audio packets' transit (s): (packet number, transit), rising.
        self._transits: deque[tuple[int, float]] = deque()
        self._audio_count = 0
        self._window_min = math.inf
        self._window_count = 0

    def restart(self, decoder: Decoder) -> None:
        """A new source (SSRC): forget its predecessor's packets and sequence, keep the jitter
        estimate (it describes the network path) and the counters."""
        self._decoder = decoder
        self._reset()

    # ------------------------------------------------------------------ properties
    @property
    def jitter_ms(self) -> float:
        return self._jitter_ts * 1000 / self._clock_rate

    @property
    def target_frames(self) -> int:
        # min(max(k * jitter_ms, min_ms), max_ms) spelt out: asked once a frame by every link.
        ms = self._k * (self._jitter_ts * 1000 / self._clock_rate)
        if ms < self._min_ms:
            ms = self._min_ms
        if ms > self._max_ms:
            ms = self._max_ms
        frames = math.ceil(ms / self.frame_ms - 1e-9)
        return frames if frames > 1 else 1

    @property
    def target_ms(self) -> float:
        return self.target_frames * self.frame_ms

    @property
    def playing(self) -> bool:
        return self._playing

    @property
    def depth(self) -> int:
        """Frames queued, counting gaps, from the next one to play to the newest."""
        if self._max_ext is None or not self._slots:
            return 0
        start = self._next if self._playing else min(self._slots)
        return self._max_ext - start + 1

    # ------------------------------------------------------------------ in
    def push(
        self, sequence: int, timestamp: int, payload: bytes | None, state: Ed137, arrival_s: float
    ) -> bool:
        """Queues a packet (payload None: a keep-alive, state only) that arrived at `arrival_s`
        (a monotonic time). Returns whether it was queued; late, duplicate and stray packets are
        dropped and counted."""
        ext = self._extend(sequence)
        if ext is None:
            return False
        sent = arrival_s
        if payload is not None:  # keep-alives' timestamps may be 0 (ED-137): audio only
            sent = self._update_timing(timestamp, arrival_s)
        played = self._played
        if played is not None and ext <= played:
            if payload is not None:
                self.stats.late += 1
            return False
        slots = self._slots  # (after `_extend`: a restart makes a new dict)
        if ext in slots:
            self.stats.duplicates += 1
            return False
        if len(slots) >= CAPACITY_FRAMES:  # the engine stopped popping: keep the newest
            del slots[min(slots)]
            self.stats.skipped += 1
        slots[ext] = _new_slot(_Slot, (payload, state, arrival_s, sent))
        return True

    def _extend(self, sequence: int) -> int | None:
        if self._max_ext is None:
            self._max_ext = sequence
            return sequence
        max_ext = self._max_ext
        delta = (sequence - max_ext + 0x8000) % 0x10000 - 0x8000
        if -MAX_MISORDER <= delta <= MAX_DROPOUT:
            self._bad_seq = None
            if delta > 0:
                self._max_ext = max_ext + delta
            return max_ext + delta
        if sequence == self._bad_seq:  # two in a row after a jump: the sender restarted
            self.stats.resyncs += 1
            jitter, stats, decoder = self._jitter_ts, self.stats, self._decoder
            self._reset()
            self._jitter_ts, self.stats, self._decoder = jitter, stats, decoder
            self._max_ext = sequence
            return sequence
        self._bad_seq = (sequence + 1) & 0xFFFF
        return None

    def _update_timing(self, timestamp: int, arrival_s: float) -> float:
        """Updates the jitter and least-transit estimates; returns the frame's sender time."""
        # (Attributes read into locals once: this runs for every audio packet of every link.)
        clock_rate = self._clock_rate
        last_ts = self._last_ts
        if last_ts is None:
            ext_ts = timestamp
        else:
            ext_ts = (
                self._ext_ts + (timestamp - last_ts + 0x8000_0000) % 0x1_0000_0000 - 0x8000_0000
            )
        self._ext_ts = ext_ts
        self._last_ts = timestamp
        sent = ext_ts / clock_rate
        transit = arrival_s * clock_rate - ext_ts
        previous = self._transit
        if previous is not None:
            # Clamped to a second: a sender's clock jump must not blind the estimate for long.
            d = abs(transit - previous)
            if d > clock_rate:
                d = float(clock_rate)
            self._jitter_ts += (d - self._jitter_ts) / 16
        self._transit = transit
        transit_s = arrival_s - sent
        window = self._transits
        count = self._audio_count
        while window and window[-1][1] >= transit_s:
            window.pop()
        window.append((count, transit_s))
        if window[0][0] <= count - BASE_WINDOW:
            window.popleft()
        self._audio_count = count + 1
        return sent

    # ------------------------------------------------------------------ out
    def pop(self, now: float) -> tuple[Pcm, Ed137]:
        """The next frame to play at `now` (monotonic, the clock of the arrival times) and the
        sender's state with it (IDLE between talkspurts)."""
        if not self._playing and not self._start(now):
            return self._silence, IDLE
        self._trim()
        next_ = self._next
        slot = self._slots.pop(next_, None)
        if slot is not None:
            self._played = next_
            self._next = next_ + 1
            payload, state = slot.payload, slot.state
            self._state = state
            if payload is None:
                if not state.carrier:  # the sender unkeyed: the talkspurt is over
                    self._stop()
                    return self._silence, IDLE
                return self._silence, state
            self._hold = 0
            return self._decode(payload), state
        if self._slots:  # lost: later packets are here
            after = self._slots.get(self._next + 1)
            self._played = self._next
            self._next += 1
            self.stats.lost += 1
            self.stats.concealed += 1
            return self._conceal(after.payload if after is not None else None), self._state
        # Nothing queued: conceal in place, so the late packet still finds its slot.
        self.stats.underruns += 1
        self._hold += 1
        if self._hold > self._hold_frames:
            self._stop()
            return self._silence, IDLE
        self.stats.concealed += 1
        return self._conceal(None), self._state

    def _start(self, now: float) -> bool:
        """Starts a talkspurt once its first frame is due (see the module doc)."""
        if not self._slots:
            return False
        audio = (ext for ext, slot in self._slots.items() if slot.payload is not None)
        first = min(audio, default=None)
        # Keep-alives before the first audio belong to time already past.
        for ext in [e for e in self._slots if first is None or e < first]:
            del self._slots[ext]
            self._played = ext if self._played is None else max(self._played, ext)
        if first is None:
            return False
        slot = self._slots[first]
        target_s = self.target_ms / 1000
        due = slot.arrival + target_s
        if self._transits:  # the least transit of late
            due = min(due, slot.sent + self._transits[0][1] + target_s)
        if now < due - START_TOLERANCE_S:
            return False
        self._playing = True
        self._next = first
        self._hold = 0
        # The first frame itself came after its time (it was overtaken, and a later one is due
        # already): start where the talkspurt should be by now, not a frame behind for good.
        behind = int((now - due + START_TOLERANCE_S) * 1000 / self.frame_ms)
        if behind > 0 and slot.arrival > due and self._max_ext is not None:
            self._skip(min(behind, self._max_ext - first))
        self._window_min, self._window_count = math.inf, 0
        return True

    def _stop(self) -> None:
        self._playing = False
        self._state = IDLE
        self._hold = 0

    def _trim(self) -> None:
        max_ext = self._max_ext
        assert max_ext is not None  # playing means a packet came
        wanted = self.target_frames + 1  # the frame playing now, plus the target behind it
        depth = max_ext - self._next + 1
        if depth - wanted > FAST_EXCESS:
            self._skip(depth - wanted)
            depth = max_ext - self._next + 1
        window_min = self._window_min
        if depth < window_min:
            window_min = depth
        count = self._window_count + 1
        if count >= WINDOW:
            if window_min > wanted:
                self._skip(1)
            window_min, count = math.inf, 0
        self._window_min, self._window_count = window_min, count

    def _skip(self, frames: int) -> None:
        for _ in range(frames):
            slot = self._slots.get(self._next)
            if slot is not None and slot.payload is None:
                return  # a state change (PTT off) is never skipped
            if slot is not None:
                del self._slots[self._next]
                self.stats.skipped += 1
            self._played = self._next
            self._next += 1

    def _decode(self, payload: bytes) -> Pcm:
        try:
            pcm = self._decoder.decode(payload)
        except (CodecError, ValueError):
            pcm = None
        if pcm is None or pcm.shape != self._shape:
            self.stats.undecodable += 1
            self.stats.concealed += 1
            return self._conceal(None)
        self.stats.played += 1
        return pcm

    def _conceal(self, next_payload: bytes | None) -> Pcm:
        try:
            pcm = self._decoder.conceal(next_payload)
        except (CodecError, ValueError):
            return self._silence
        return pcm if pcm.shape == self._shape else self._silence
