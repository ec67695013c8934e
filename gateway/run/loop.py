"""The engine's real-time loop: one thread that ticks the engine on a monotonic deadline clock.

The thread never waits on network or serial I/O. Everything else (control socket, reload, state
files, logs) runs on the daemon's asyncio loop and reaches the engine through `submit`, whose
work runs between two ticks, so the engine and the command layer are only ever touched by this
thread. Events leave through a callback that must not block (the daemon hands them to asyncio
with `call_soon_threadsafe`).

What a tick does, and in which order, is `gateway.run.tick.TickStep`, shared with `crosspatch
simulate` and the demo; this module adds what only real time needs around it: the deadline
clock, the tick statistics, hardware notices before the tick, and ports that fail heard as
silence rather than stopping the engine.

Deadline scheduling: tick n is due at `start + n * frame`; a tick that comes late is counted as
an overrun when it is more than one frame late, and the loop catches up rather than drifting.

With sound cards, the first input card is the clock (a bank's `pacer`, see
`gateway.hardware.sound.ports`): a tick is due when that card has delivered a whole frame, and
the deadline schedule follows it, so the engine never runs ahead of or behind the card it
listens to and needs no block of margin against it. The engine ticks exactly once per frame the
card delivered, whatever bursts it delivers them in; only when the card has delivered nothing
for the pacer's stall limit (lost, hung) does the timer tick instead, until the card is back
(`gateway.hardware.sound.frame_pacer`).
"""

from __future__ import annotations

import logging
import os
import queue
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import numpy.typing as npt

from gateway.control.patch_control import PatchControl
from gateway.core.engine import PatchEngine
from gateway.core.events import Event, EventStamper
from gateway.ports.contract import FrameClock, HardwarePorts, PortBank
from gateway.run.announcer import Announcer
from gateway.run.tick import TickStep

if TYPE_CHECKING:
    from gateway.run.recorder import CallRecorder

log = logging.getLogger(__name__)

T = TypeVar("T")

# The tick rate in `status` is measured over this many ticks (10 s at 20 ms frames).
RATE_TICKS = 500
# Lateness beyond this many frames is an overrun: the frame's audio could not go out on time.
OVERRUN_FRAMES = 1.0
SWITCH_INTERVAL_S = 0.0005
ENGINE_NICE = -10


class _Histogram:
    """Counts of millisecond values in fixed 0.05 ms bins up to 100 ms: exact enough percentiles
    over a whole run (weeks of ticks) in constant memory and constant time per value."""

    BIN_MS = 0.05
    BINS = 2000

    def __init__(self) -> None:
        self.counts = np.zeros(self.BINS + 1, dtype=np.int64)  # the last bin holds >= 100 ms
        self.max_ms = 0.0

    def add(self, value_ms: float) -> None:
        value_ms = max(value_ms, 0.0)  # a timed wait may wake a hair early
        self.counts[min(int(value_ms / self.BIN_MS), self.BINS)] += 1
        self.max_ms = max(self.max_ms, value_ms)

    def percentile(self, q: float) -> float:
        total = int(self.counts.sum())
        if not total:
            return 0.0
        index = int(np.searchsorted(np.cumsum(self.counts), q / 100 * total))
        return round(min((index + 1) * self.BIN_MS, self.max_ms), 3)  # the bin's upper edge

    def summary(self) -> dict[str, float]:
        return {
            "median": self.percentile(50),
            "p99": self.percentile(99),
            "max": round(self.max_ms, 3),
        }


@dataclass
class TickStats:
    """How well the engine keeps time, since it started."""

    ticks: int = 0
    overruns: int = 0
    port_errors: int = 0
    lateness: _Histogram = field(default_factory=_Histogram)  # start of tick after its deadline
    duration: _Histogram = field(default_factory=_Histogram)  # time spent in the tick
    # When the last RATE_TICKS ticks ended: the tick rate now (50/s at 20 ms frames; more
    # would mean the engine ticks faster than its clock, and audio piles up in the FIFOs).
    recent: deque[float] = field(default_factory=lambda: deque(maxlen=RATE_TICKS))

    @property
    def ticks_per_s(self) -> float:
        recent = list(self.recent)  # a copy: the engine thread appends meanwhile
        if len(recent) < 2 or recent[-1] <= recent[0]:
            return 0.0
        return round((len(recent) - 1) / (recent[-1] - recent[0]), 2)

    def summary(self) -> dict[str, Any]:
        return {
            "ticks": self.ticks,
            "ticks_per_s": self.ticks_per_s,
            "overruns": self.overruns,
            "port_errors": self.port_errors,
            "lateness_ms": self.lateness.summary(),
            "tick_ms": self.duration.summary(),
        }


class EngineRuntime:
    def __init__(
        self,
        engine: PatchEngine,
        control: PatchControl,
        ports: PortBank,
        stamper: EventStamper,
        publish: Callable[[list[Event]], None],
        recorder: CallRecorder | None = None,
    ) -> None:
        self.control = control
        self.ports = ports
        self._publish = publish
        # The tick itself, shared with `simulate` and the demo; its one sink hands the events
        # to `publish`, held during a tick (see `emit`).
        self.step = TickStep(engine, stamper, [self._deliver], recorder=recorder)
        self._guarded = _GuardedPorts(self)
        # Events emitted during a tick, published once it is over (see `emit`).
        self._held: list[Event] = []
        self._holding = False
        self.stats = TickStats()
        self._jobs: queue.SimpleQueue[tuple[Callable[[EngineRuntime], Any], Future[Any]]] = (
            queue.SimpleQueue()
        )
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="engine", daemon=True)
        self.last_tick = time.monotonic()  # for the watchdog: a hung engine stops its pings
        self.frame_s = engine.clock.frame_ms / 1000
        self._wanted: dict[str, str] = {}  # talkgroup each tunable port was asked to tune to

    # The step's parts, replaced between two ticks at reload (engine thread, or before start).
    @property
    def engine(self) -> PatchEngine:
        return self.step.engine

    @engine.setter
    def engine(self, engine: PatchEngine) -> None:
        self.step.engine = engine

    @property
    def stamper(self) -> EventStamper:
        return self.step.stamper

    @property
    def announcer(self) -> Announcer | None:  # set before start; replaced at reload
        return self.step.announcer

    @announcer.setter
    def announcer(self, announcer: Announcer | None) -> None:
        self.step.announcer = announcer

    @property
    def recorder(self) -> CallRecorder | None:
        """Records calls' source audio; started and closed with the engine thread."""
        return self.step.recorder

    @property
    def ports(self) -> PortBank:
        return self._ports

    @ports.setter
    def ports(self, bank: PortBank) -> None:  # engine thread (or before start)
        self._ports = bank
        self._hardware = bank if isinstance(bank, HardwarePorts) else None

    # ------------------------------------------------------------------ from other threads
    def start(self) -> None:
        # The engine thread needs the GIL within a fraction of a frame when its deadline comes;
        # CPython's default switch interval (5 ms) lets a busy control thread keep it that long.
        sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL_S))
        if self.recorder is not None:
            self.recorder.start()
        self._thread.start()

    def submit(self, job: Callable[[EngineRuntime], T]) -> Future[T]:
        """Runs `job(runtime)` on the engine thread between two ticks."""
        future: Future[T] = Future()
        if not self._thread.is_alive():
            future.set_exception(RuntimeError("the engine is not running"))
            return future
        self._jobs.put((job, future))
        return future

    def stop(self, timeout: float = 2.0) -> bool:
        """Ends every call, unkeys every port, publishes the last events, and stops the thread;
        then the recorder finishes its files (after the last call_end, outside `timeout`:
        encoding the last calls may take longer). Returns False if the engine thread did not
        finish in time."""
        self._stop.set()
        pacer: FrameClock | None = getattr(self._ports, "pacer", None)
        if pacer is not None:
            pacer.wake()
        self._thread.join(timeout)
        stopped = not self._thread.is_alive()
        if self.recorder is not None:
            self.recorder.close()
        return stopped

    def engine_alive(self) -> bool:
        return self._thread.is_alive()

    def healthy(self, max_silence_s: float = 2.0) -> bool:
        return self._thread.is_alive() and time.monotonic() - self.last_tick < max_silence_s

    # ------------------------------------------------------------------ on the engine thread
    def emit(self, events: list[Event]) -> None:
        """Stamps and publishes events (engine thread only: `seq` is assigned here).

        During a tick they are held and published together when it is over: publishing wakes
        the thread that handles them (the daemon's loop), which then wants the interpreter
        lock; woken mid-tick, it takes the lock from the tick at the next switch interval and
        the tick waits until that thread is scheduled and done. After the tick, the engine
        thread sleeps until its next deadline and the handling costs it nothing."""
        self.step.emit(events)

    def _deliver(self, stamped: list[Event]) -> None:
        if self._holding:
            self._held.extend(stamped)
        else:
            self._publish(stamped)

    def _publish_held(self) -> None:
        self._holding = False
        held, self._held = self._held, []
        if held:
            self._publish(held)

    def _raise_priority(self) -> None:
        """Asks the OS to run this thread before the control plane when both want a core (a
        negative nice value; needs root or CAP_SYS_NICE, which the systemd unit grants). Without
        the right the engine still runs, only with less margin on a busy machine."""
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), ENGINE_NICE)
        except OSError as exc:
            log.info("engine thread keeps normal priority (%s)", exc.strerror)

    def _run(self) -> None:
        self._raise_priority()
        self._reconcile_tuning()
        frame_s = self.frame_s
        start = time.monotonic()
        tick = 0
        try:
            while not self._stop.is_set():
                due = start + tick * frame_s
                pacer: FrameClock | None = getattr(self._ports, "pacer", None)
                if pacer is not None:
                    # One tick per frame the card delivered; the pacer's own timer only when
                    # the card has been silent for its stall limit. `stop` wakes it.
                    paced = pacer.wait()
                    if self._stop.is_set():
                        break
                    if paced is None:
                        continue
                    due = paced.due  # the schedule follows the pacer's
                    start = due - tick * frame_s
                else:
                    wait = due - time.monotonic()
                    if wait > 0:
                        self._stop.wait(wait)  # returns at once on stop
                        if self._stop.is_set():
                            break
                began = time.monotonic()
                lateness = began - due
                if lateness > OVERRUN_FRAMES * frame_s:
                    self.stats.overruns += 1
                    if lateness > 50 * frame_s:  # a long stall (suspend, debugger): resync
                        log.warning("engine stalled %.0f ms; resynchronising", lateness * 1000)
                        start = began - tick * frame_s
                self._holding = True
                self.step.run(self._guarded, self._due)
                ended = time.monotonic()
                self.last_tick = ended
                self.stats.ticks += 1
                self.stats.recent.append(ended)
                self.stats.lateness.add(lateness * 1000)
                self.stats.duration.add((ended - began) * 1000)
                tick += 1
                self._publish_held()
        finally:
            self._publish_held()  # a tick that failed: what it emitted still goes out
            # Every exit path unkeys: the last word of the engine thread is release_all.
            self._run_jobs()
            try:
                self.step.release_all()
                n = len(self.engine.ports)
                self.ports.transmit(
                    np.zeros((n, self.engine.frame_samples), np.float32), np.zeros(n, bool)
                )
            except Exception:
                log.exception("while releasing every port at stop")
            self._fail_jobs()

    def _due(self) -> None:
        """Before the tick: the queued jobs (commands, reload), then the hardware's news."""
        self._run_jobs()
        if self._hardware is not None:
            self._apply_notices(self._hardware)

    def _apply_notices(self, ports: HardwarePorts) -> None:
        engine = self.engine
        events: list[Event] = []
        for notice in ports.take_notices():
            if notice.port not in engine.port_index:
                continue  # a port a reload removed
            events += engine.set_port_online(notice.port, notice.online)
            if notice.tuned_to is not None:
                ready = notice.online and notice.tuned_to == self._wanted.get(notice.port)
                events += engine.set_port_ready(notice.port, ready)
            if notice.alarm is not None:
                events.append(engine.alarm(notice.alarm[0], notice.alarm[1], port=notice.port))
        self.emit(events)

    def forget_tuning(self, talkgroups: set[str]) -> None:
        """Engine thread: the channels of `talkgroups` changed; radios on them tune again."""
        for port, talkgroup in list(self._wanted.items()):
            if talkgroup in talkgroups:
                del self._wanted[port]

    def _reconcile_tuning(self) -> None:
        """Asks the hardware to tune every radio whose talkgroup changed (a pool radio taken or
        released, a reload); until it reports the radio tuned, the port is out of service, so
        it is never keyed on the channel it had before."""
        hardware = self._hardware
        if hardware is None:
            return
        engine = self.engine
        for port in hardware.tunable_ports():
            if port not in engine.port_index:
                continue
            want = engine.port_serves(port)[0]
            if self._wanted.get(port) == want:
                continue
            self._wanted[port] = want
            self.emit(engine.set_port_ready(port, False, "retune"))
            hardware.tune(port, want)

    def _run_jobs(self) -> None:
        # Only jobs (commands, reload) change what a port serves: reconcile after them.
        if self._run_queued_jobs():
            self._reconcile_tuning()

    def _run_queued_jobs(self) -> bool:
        ran = False
        while True:
            try:
                job, future = self._jobs.get_nowait()
            except queue.Empty:
                return ran
            ran = True
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(job(self))
            except BaseException as exc:  # a failing command is reported to its caller
                future.set_exception(exc)

    def _fail_jobs(self) -> None:
        while True:
            try:
                _, future = self._jobs.get_nowait()
            except queue.Empty:
                return
            if future.set_running_or_notify_cancel():
                future.set_exception(RuntimeError("the engine has stopped"))


class _GuardedPorts:
    """The runtime's port bank as the tick sees it: a failing port must not stop the engine, so
    a frame that cannot be read is heard as silence, and a failed send is logged and counted."""

    def __init__(self, runtime: EngineRuntime) -> None:
        self.runtime = runtime

    def frame(self) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.bool_]]:
        runtime = self.runtime
        try:
            return runtime.ports.frame()
        except Exception:
            runtime.stats.port_errors += 1
            log.exception("reading the ports failed; this frame is silence")
            engine = runtime.engine
            n = len(engine.ports)
            return np.zeros((n, engine.frame_samples), np.float32), np.zeros(n, bool)

    def transmit(self, tx: npt.NDArray[np.float32], ptt: npt.NDArray[np.bool_]) -> None:
        try:
            self.runtime.ports.transmit(tx, ptt)
        except Exception:
            self.runtime.stats.port_errors += 1
            log.exception("sending to the ports failed")
