"""One tick of the engine, the same for the daemon, `crosspatch simulate` and the demo.

`TickStep.run` does, in this order: the commands due before the tick (the daemon's queued jobs
and hardware notices, a scenario's commands), the periodic announcements, the engine's tick
with the ports' frame in and its transmit out, the tick's events, then the recorder's audio and
alarms. `TickStep.emit` is the one way events leave: the recorder sees them first (it fills
call_end's `recording`), then the announcer (a patch enabled or disabled is announced), then
they are stamped (`gateway`, `seq`) once and handed to every sink in turn.

Because the daemon's loop and `simulate` run this same step, a dry run takes the daemon's order
of operations by construction. What only a real-time run needs stays around it in
`gateway.run.loop`: the deadline clock, the tick statistics, and a port that fails heard as
silence.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from gateway.core.engine import PatchEngine, TickResult
from gateway.core.events import Event, EventStamper

if TYPE_CHECKING:
    from gateway.ports.contract import PortBank
    from gateway.run.announcer import Announcer
    from gateway.run.recorder import CallRecorder

# Where stamped events go: a file, a queue to the daemon's loop, a terminal view.
EventSink = Callable[[list[Event]], None]


class TickStep:
    """The engine and what rides on its ticks: the announcer, the recorder, the event sinks.

    Each part may be replaced between two ticks (a reload swaps the engine and the announcer);
    the step reads them afresh on every tick."""

    def __init__(
        self,
        engine: PatchEngine,
        stamper: EventStamper,
        sinks: list[EventSink],
        announcer: Announcer | None = None,
        recorder: CallRecorder | None = None,
    ) -> None:
        self.engine = engine
        self.stamper = stamper
        self.sinks = sinks
        self.announcer = announcer
        self.recorder = recorder

    def emit(self, events: list[Event]) -> None:
        """Hands events to the recorder and the announcer, stamps them, and sends them to every
        sink (the engine's thread only: `seq` is assigned here)."""
        if not events:
            return
        if self.recorder is not None:  # fills call_end's `recording` before the stamp
            self.recorder.on_events(events)
        if self.announcer is not None:
            self.announcer.on_events(self.engine, events)
        stamped = [self.stamper.stamp(event) for event in events]
        for sink in self.sinks:
            sink(stamped)

    def run(self, ports: PortBank, due: Callable[[], None] | None = None) -> TickResult:
        """One tick: `due()` first (commands, whose events go through `emit`), then the
        announcements, the engine, the ports, the events, and the recorder."""
        if due is not None:
            due()
        rx, carrier = ports.frame()
        if self.announcer is not None:
            self.announcer.on_tick(self.engine)
        result = self.engine.tick(rx, carrier)
        ports.transmit(result.tx, result.ptt)
        self.emit(result.events)
        recorder = self.recorder
        if recorder is not None:  # after emit: a call that started this tick is recording
            recorder.on_tick(self.engine, rx)
            self.emit(recorder.take_alarms(self.engine))
        return result

    def release_all(self) -> None:
        """Ends every call and unkeys every port in the engine (the last word of a run)."""
        self.emit(self.engine.release_all("shutdown"))
