"""The retained port and patch states on the broker, kept current from a gateway's events.

`PREFIX/GW/ports/PORT` and `PREFIX/GW/patches/PATCH` hold, retained, the fields of each port and
patch that `gateway.control.status.retained_states` picks from a status snapshot (the snapshot
`crosspatch status` shows, so the console and the broker never disagree). A port or patch that
a reload removed has its retained message cleared.

The daemon hands every tick's events to `RetainedStates.note` and runs `RetainedStates.run`: a
port's carrier and ptt follow its own `carrier` and `ptt` events, with no work on the engine
thread (in a flood they are nearly all the events); any other event that may change a retained
state takes a full snapshot on the engine thread. At a stop, `final` leaves every port unkeyed
and offline. The demo, which reads its engine on its own thread, gives snapshots to `apply`.

Next to them, the present for consoles that open late: `PREFIX/GW/calls/active/CALL_ID` and
`PREFIX/GW/alarms/active/KIND/SUBJECT` follow `gateway.control.present.Present`'s changes
(`present`: a few a call, none per carrier or ptt event), and `PREFIX/GW/info` and
`PREFIX/GW/access/USER` the config (`site`, at the start and after each reload; a login a reload
removed has its topic cleared). What a crashed run left in those trees is cleared by the
publisher after it connects (gateway.mqtt.client).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from gateway.control.present import Change
from gateway.control.status import retained_states
from gateway.core.events import Event
from gateway.mqtt.topics import Topics

STATES_EVERY_S = 0.2  # retained port and patch states follow changes this closely
# When events stop coming, what is left of the states' news goes out this long after the last
# tick's events at the earliest (see `RetainedStates._due`).
STATES_FALLBACK_S = 0.05
# What makes a retained port or patch state out of date.
_STATE_EVENTS = frozenset({"carrier", "ptt", "alarm", "patch", "call_start", "call_end"})
# Those that say all that changed: a port's carrier or ptt, with `port` and `on`.
_LIVE_STATE_EVENTS = ("carrier", "ptt")
# Calls that ended with nothing but carrier and ptt changing (their own events tell those); any
# other reason (a port out of service, a retune, a patch disabled) may change more.
_PLAIN_CALL_ENDS = frozenset({"carrier_drop", "timeout", "preempted"})

# A status snapshot, and the seq of the first event it does not include.
Snapshot = tuple[dict[str, Any], int]


class StateTarget(Protocol):
    """Where retained states go: the daemon's side of the publisher process (`MqttProcess`)."""

    topics: Topics

    def set_state(self, topic: str, state: Any) -> None: ...

    def forget_state(self, topic: str) -> None: ...


def set_retained(
    target: StateTarget, ports: dict[str, Any], patches: dict[str, Any], published: set[str]
) -> set[str]:
    """Sets the retained states of `ports` and `patches` (by name, as `retained_states` picks
    them) and clears those of `published` topics no longer among them (a port or patch a reload
    removed); returns the topics, to give back next time."""
    topics = target.topics
    now = {topics.port(name) for name in ports} | {topics.patch(name) for name in patches}
    for name, state in ports.items():
        target.set_state(topics.port(name), state)
    for name, state in patches.items():
        target.set_state(topics.patch(name), state)
    for gone in published - now:
        target.forget_state(gone)
    return now


class RetainedStates:
    """The retained port and patch states of one gateway, and when they go to `target`."""

    def __init__(self, target: StateTarget) -> None:
        self.target = target
        self._published: set[str] = set()  # the topics set by the last snapshot
        self._dirty = True  # a full snapshot is due
        self._port_states: dict[str, dict[str, Any]] = {}  # retained port states, by port
        # The last carrier and ptt event of each port: (port, kind) -> (seq, on).
        self._live: dict[tuple[str, str], tuple[int, bool]] = {}
        self._live_changed: set[str] = set()  # ports with carrier or ptt news to publish
        self._sent = 0.0  # when the states were last brought up to date (loop time)
        self._wanted = asyncio.Event()  # bring them up to date now
        self._wanted.set()  # (the first snapshot)
        self._timer: asyncio.TimerHandle | None = None
        self._access: set[str] = set()  # the access/USER topics set

    # ------------------------------------------------------------------ present and site
    def present(self, changes: Sequence[Change]) -> None:
        """Active calls and alarms that began or ended (`Present.note`, `Present.clear`)."""
        target = self.target
        for path, event in changes:
            topic = target.topics.present(path)
            if event is None:
                target.forget_state(topic)
            else:
                target.set_state(topic, event)

    def site(self, info: dict[str, Any], access: dict[str, dict[str, Any]]) -> None:
        """The gateway's `info` and each login's `access` (`gateway.control.status`); the
        access topics of logins no longer in the config are cleared."""
        target = self.target
        topics = target.topics
        target.set_state(topics.info, info)
        now = {topics.access(user) for user in access}
        for user, state in access.items():
            target.set_state(topics.access(user), state)
        for gone in self._access - now:
            target.forget_state(gone)
        self._access = now

    # ------------------------------------------------------------------ news (daemon loop)
    def note(self, events: Sequence[Event]) -> None:
        """A tick's events (stamped): what they make out of date goes out soon (see `_due`)."""
        for event in events:
            kind = event["type"]
            if event["type"] == "carrier" or event["type"] == "ptt":  # _LIVE_STATE_EVENTS
                self._live[(event["port"], kind)] = (event["seq"], bool(event["on"]))
                self._live_changed.add(event["port"])
            elif kind in _STATE_EVENTS and not (
                kind == "call_start"
                or (kind == "call_end" and event.get("reason") in _PLAIN_CALL_ENDS)
            ):
                self._dirty = True
        self._due()

    def reloaded(self) -> None:
        """Ports or patches may have come or gone: a full snapshot is due."""
        self._dirty = True
        self._due()

    def _due(self) -> None:
        """After a tick's events (or, when they stop, from a timer): the states' news go out now
        if STATES_EVERY_S has passed since they last did, else later.

        Now means right after a tick, while the engine thread waits for its next one: work on
        the daemon's loop then takes no interpreter lock from a tick. A free-running timer would
        wake that loop mid-tick as often as not, and each wake-up mid-tick costs the tick a
        thread switch. So the timer is only a fallback, armed no sooner than STATES_FALLBACK_S
        (more than a frame) ahead and re-armed by every tick's events: while they come, it
        never fires."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not (self._dirty or self._live_changed):
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        due = self._sent + STATES_EVERY_S
        if now >= due:
            self._wanted.set()
        else:
            later = max(due, now + STATES_FALLBACK_S)
            self._timer = loop.call_at(later, self._due)

    # ------------------------------------------------------------------ sending
    async def run(self, snapshot: Callable[[], Awaitable[Snapshot]]) -> None:
        """Keeps the retained states on the broker current, until cancelled or until `snapshot`
        (taken on the engine thread) raises RuntimeError: the engine has stopped.

        Carrier and ptt events newer than a snapshot (by seq) win over it, whichever reached
        the loop first."""
        loop = asyncio.get_running_loop()
        try:
            while True:
                await self._wanted.wait()
                self._wanted.clear()
                self._sent = loop.time()
                if self._dirty:
                    self._dirty = False
                    try:
                        state, next_seq = await snapshot()
                    except RuntimeError:  # the engine has stopped
                        return
                    self.apply(state, next_seq)
                elif self._live_changed:
                    self._send_live()
        finally:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

    def apply(self, snapshot: dict[str, Any], next_seq: int | None = None) -> None:
        """The states of a status snapshot; `next_seq`: the seq of the first event it does not
        include (carrier and ptt events from it on are newer than the snapshot)."""
        ports, patches = retained_states(snapshot)
        for key, (seq, on) in list(self._live.items()):
            port, kind = key
            if next_seq is None or seq < next_seq or port not in ports:
                del self._live[key]  # the snapshot has it
            else:
                ports[port][kind] = on
        self._port_states = ports
        self._live_changed.clear()
        self._published = set_retained(self.target, ports, patches, self._published)

    def _send_live(self) -> None:
        """The retained states of the ports with carrier or ptt news."""
        target = self.target
        changed, self._live_changed = self._live_changed, set()
        for port in changed:
            state = self._port_states.get(port)
            if state is None:  # a port a reload removed (a snapshot follows)
                continue
            state = dict(state)
            for kind in _LIVE_STATE_EVENTS:
                live = self._live.get((port, kind))
                if live is not None:
                    state[kind] = live[1]
            self._port_states[port] = state
            target.set_state(target.topics.port(port), state)

    def final(self, snapshot: dict[str, Any]) -> None:
        """At a stop, with the engine stopped (`snapshot` read after its last tick): every
        port's state unkeyed, without carrier and offline, and every patch's as it is, ahead of
        the gateway's `offline`. Without it a console would keep showing the states of the last
        tick that published them, a transmitter keyed among them."""
        ports, patches = retained_states(snapshot)
        for state in ports.values():
            state.update(online=False, carrier=False, ptt=False)
        set_retained(self.target, ports, patches, set())
