"""The engine's clock from a sound card: one tick per frame the clock card delivered, never more.

A card delivers its input in blocks, and a busy machine (or PulseAudio, PipeWire, a USB card)
hands over two to four blocks at once, then nothing for as long. Whatever the pattern, the
engine must tick exactly as often as the card delivered frames: each extra tick writes another
frame into every output FIFO, which drift control (a sample a frame) cannot take out again, and
the audio ends up to a second late. So the card's frames are the only source of ticks while the
card is alive; frames that come in together are ticked one after another at once.

The timer takes over only when the card has delivered nothing for `CARD_STALL_S` (unplugged,
hung): the engine must keep time without it (links, serial radios, hang and time-out timers).
Ticks the timer made are a debt: when the card comes back and catches up (delivers more frames
than real time since it came back allows), those frames pay the debt instead of ticking again,
and their input is dropped (`on_skip`) so it does not sit in the FIFOs as latency. A card that
comes back without catching up (its audio was lost) pays nothing, and the debt is forgiven one
`CARD_STALL_S` after its return.

Ticks the engine could not serve in time pile up to `MAX_BACKLOG` frames; older ones are skipped
with their input, so a stalled engine resumes with current audio rather than a queue of old.

`poll` is the decision, with the time passed in: the unit tests drive it with delivery patterns
in simulated time; `wait` is the same decision for the engine thread, blocking on the card.
While the timer ticks, the pacer keeps its deadlines (a frame apart from the stall on), so the
engine's schedule is the pacer's in both cases.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass

from gateway.ports.contract import Tick

# The clock card delivered nothing for this long: the timer ticks instead. Longer than the
# delivery gaps of a loaded machine (a 200 ms stall that then catches up ticks the card's frames
# and nothing else), short enough that links and serial radios keep time when a card is lost.
CARD_STALL_S = 0.5
# Frames waiting for a tick beyond this (the engine stalled half a second) are skipped.
MAX_BACKLOG = 25


@dataclass
class PacerStats:
    """What the pacer did since the card was opened, for `status`."""

    card_frames: int = 0  # whole frames the clock card delivered
    card_ticks: int = 0  # ticks made for them
    timer_ticks: int = 0  # ticks the timer made while the card delivered nothing
    repaid: int = 0  # card frames that caught up with timer ticks (input dropped, no tick)
    skipped: int = 0  # frames dropped because the engine fell MAX_BACKLOG behind

    def summary(self) -> dict[str, int]:
        return asdict(self)


class FramePacer:
    """Frame ticks from the clock card. The card's callback `feed`s the samples it delivered;
    the engine thread `wait`s for the next tick."""

    def __init__(
        self,
        frame_device_samples: int,
        frame_s: float,
        *,
        stall_s: float = CARD_STALL_S,
        max_backlog: int = MAX_BACKLOG,
        on_skip: Callable[[int], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.frame_device_samples = frame_device_samples
        self.frame_s = frame_s
        self.stall_s = stall_s
        self.max_backlog = max_backlog
        # Drops the input of `n` frames from the clock card's FIFOs (the card's thread).
        self.on_skip = on_skip
        self._clock = clock
        self.stats = PacerStats()
        self._ready = threading.Condition(threading.Lock())
        self._woken = False
        self._reset(clock())

    def _reset(self, now: float) -> None:
        self._pending = 0  # samples towards the next frame
        self._due: deque[float] = deque()  # arrival times of frames not yet ticked
        self._last_frame = now  # the card counts as alive from its (re)start
        self._debt = 0  # timer ticks not yet matched by the card's frames
        self._back_at: float | None = None  # when the card returned after timer ticks
        self._back_frames = 0  # frames it delivered since
        self._timer_next: float | None = None  # the timer's next deadline while it ticks

    # ------------------------------------------------------------------ the card's thread
    def feed(self, samples: int, now: float | None = None) -> None:
        """`samples` more came in (from the card's callback; microseconds, never blocks long)."""
        with self._ready:
            self._pending += samples
            frames, self._pending = divmod(self._pending, self.frame_device_samples)
            if not frames:
                return
            now = self._clock() if now is None else now
            self.stats.card_frames += frames
            self._last_frame = now
            dropped = 0
            for _ in range(frames):
                if self._repays(now):
                    dropped += 1
                    continue
                self._due.append(now)
            excess = len(self._due) - self.max_backlog
            if excess > 0:
                for _ in range(excess):
                    self._due.popleft()
                self.stats.skipped += excess
                dropped += excess
            self._ready.notify()
        if dropped and self.on_skip is not None:
            self.on_skip(dropped)

    def _repays(self, now: float) -> bool:
        """Whether a frame arriving now pays for a timer tick instead of ticking (lock held)."""
        if self._back_at is None:
            if not self._debt:
                return False
            self._back_at, self._back_frames = now, 0  # the card is back after a stall
        if now - self._back_at > self.stall_s:  # it has run in real time since: forgive the rest
            self._debt, self._back_at = 0, None
            return False
        self._back_frames += 1
        # Ahead of real time since its return (plus the frame that announced it, and half a
        # frame for jitter): catching up.
        ahead = self._back_frames > 1.5 + (now - self._back_at) / self.frame_s
        if ahead and self._debt:
            self._debt -= 1
            self.stats.repaid += 1
            return True
        return False

    # ------------------------------------------------------------------ the engine's thread
    def poll(self, now: float) -> Tick | None:
        """The tick due at `now`, if any (lock held by the caller, or a test's only thread)."""
        if self._due:
            self.stats.card_ticks += 1
            return Tick(self._due.popleft(), by_card=True)
        stall_at = self._last_frame + self.stall_s
        if now < stall_at:
            return None
        # The card is silent: the timer ticks from the stall on, on its own deadlines, and
        # catches up a late engine as far as MAX_BACKLOG frames (then starts afresh from now).
        if self._timer_next is None or self._timer_next < stall_at:
            self._timer_next = stall_at
        if now - self._timer_next > self.max_backlog * self.frame_s:
            self._timer_next = now
        if now < self._timer_next:
            return None
        due, self._timer_next = self._timer_next, self._timer_next + self.frame_s
        self.stats.timer_ticks += 1
        self._debt += 1
        self._back_at = None
        return Tick(due, by_card=False)

    def next_change(self) -> float:
        """When `poll` can next answer with no frame coming (lock held)."""
        stall_at = self._last_frame + self.stall_s
        return max(stall_at, self._timer_next or stall_at)

    def wait(self) -> Tick | None:
        """Blocks until the next tick is due; None after `wake`."""
        with self._ready:
            while True:
                if self._woken:
                    self._woken = False
                    return None
                tick = self.poll(self._clock())
                if tick is not None:
                    return tick
                self._ready.wait(max(0.0, self.next_change() - self._clock()))

    def wake(self) -> None:
        """Ends a `wait` at once (the engine is stopping)."""
        with self._ready:
            self._woken = True
            self._ready.notify()

    def reset(self, *, lost: bool = False) -> None:
        """After the card was lost or reopened: no stale ticks, no debt, count afresh. `lost`:
        the card is known gone, so the timer ticks from now on instead of after the stall
        limit."""
        with self._ready:
            now = self._clock()
            self._reset(now)
            if lost:
                self._last_frame = now - self.stall_s
            self._ready.notify()

    @property
    def backlog(self) -> int:
        """Frames delivered and not yet ticked."""
        return len(self._due)
