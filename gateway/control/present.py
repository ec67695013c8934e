"""What is going on now: the calls in progress and the alarms whose condition lasts.

`Present.note` follows a gateway's stamped events and says which of its present-state entries
changed: `calls/active/CALL_ID` (the call_start event, while the call lasts) and
`alarms/active/KIND/SUBJECT` (the alarm event, while its condition lasts; SUBJECT is the port,
or `gateway` for an alarm about the whole gateway). The daemon publishes them retained under
PREFIX/GW (gateway.mqtt.retained) and lists the active alarms in `status`, from this one tracker.

When an alarm ends, by kind (an alarm raised again while active replaces the first):
- `port_offline`, `unkey_failed`: at that port's `port_online` (back in service: its control
  answers again, and a radio that answers after an unkey failure has been seen to);
- `stuck_carrier`: when that port's carrier drops (its `carrier` event with `on` false);
- `timeout`: when the lock-out ends: the talker that was sending to the port drops its carrier
  (the call may have ended before, when the port was its last destination), or the port is
  keyed again; a timeout of a port no known talker was sending to ends with the next call that
  lists it among its destinations;
- `recording_failed`: at the next call from that port that was recorded (a `call_end` with a
  `recording`);
- `state_not_saved` at `state_saved`; `disk_full` at `disk_ok`;
- `outbox_full` and `outbox_not_written` have no end event of their own: the daemon clears them
  (`clear`) once the outbox takes every event again (the backlog sent down to 90 % of its
  budget), or is written again, as it learns it (a tick's events, a `status`);
- any alarm of a port that a reload removed: at that reload (`keep_ports`);
- any other kind (unknown today): until the gateway restarts.
The ends themselves (`port_online`, `state_saved`, `disk_ok`) are never active. A call ends at
its `call_end`, whatever the reason (at a clean stop every call ends with `shutdown`).

Work per event is a type test: the flood of `carrier` and `ptt` events costs a dictionary look-up
only while a stuck carrier or a time-out is active.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

from gateway.core.event_types import Alarm, CallEnd
from gateway.core.events import Event

GATEWAY_SUBJECT = "gateway"  # SUBJECT of an alarm without a port
# An alarm kind, and the kinds it ends on the same subject.
_ENDS = {
    "port_online": ("port_offline", "unkey_failed"),
    "state_saved": ("state_not_saved",),
    "disk_ok": ("disk_full",),
}
_RECORDING_FAILED = "recording_failed"  # gateway.run.recorder's ALARM_KIND (not imported: run room)

# A change of the present state: the topic below PREFIX/GW, and the event now there (None: cleared).
Change = tuple[str, Event | None]


def call_path(call_id: str) -> str:
    return f"calls/active/{call_id}"


def alarm_path(kind: str, subject: str) -> str:
    return f"alarms/active/{kind}/{subject}"


def alarm_subject(event: Alarm) -> str:
    subject = event.get("port") or event.get("patch")
    return subject if isinstance(subject, str) and subject else GATEWAY_SUBJECT


class Present:
    """The calls in progress and the active alarms of one gateway, from its events."""

    def __init__(self) -> None:
        self.calls: dict[str, Event] = {}  # call_id -> call_start
        self._alarms: dict[tuple[str, str], Event] = {}  # (kind, subject) -> alarm, oldest first
        # Alarms that end when a port's carrier drops: port -> {(kind, subject)}.
        self._on_drop: dict[str, set[tuple[str, str]]] = {}
        self._held: dict[str, str] = {}  # timed-out port -> the talker whose drop ends it
        self._talker: dict[str, str] = {}  # port -> the source of the last call sent to it

    def alarms(self) -> list[Event]:
        """The active alarm events, oldest first."""
        return list(self._alarms.values())

    def active(self, kind: str, subject: str = GATEWAY_SUBJECT) -> bool:
        return (kind, subject) in self._alarms

    def entries(self) -> list[Change]:
        """Every present-state entry now (what the broker should hold)."""
        out: list[Change] = [(call_path(c), e) for c, e in self.calls.items()]
        out += [(alarm_path(k, s), e) for (k, s), e in self._alarms.items()]
        return out

    def note(self, events: Iterable[Event]) -> list[Change]:
        """A batch of stamped events; returns the entries they changed, in order."""
        changes: list[Change] = []
        for event in events:
            # Compared on event["type"] itself, which narrows the event's TypedDict.
            if event["type"] == "carrier":
                if self._on_drop and not event["on"] and event["port"] in self._on_drop:
                    for kind, subject in sorted(self._on_drop[event["port"]]):
                        changes += self._end(kind, subject)
            elif event["type"] == "ptt":
                if self._held and event["on"] and event["port"] in self._held:
                    changes += self._end("timeout", event["port"])
            elif event["type"] == "call_start":
                self.calls[event["call_id"]] = event
                source = event["source"]["port"]
                for destination in event["destinations"]:
                    self._talker[destination["port"]] = source
                changes.append((call_path(event["call_id"]), event))
            elif event["type"] == "call_end":
                self._call_end(event, changes)
            elif event["type"] == "alarm":
                self._alarm(event, changes)
        return changes

    def clear(self, kind: str, subject: str = GATEWAY_SUBJECT) -> list[Change]:
        """Ends an alarm whose end has no event of its own (see the module doc)."""
        return self._end(kind, subject)

    def keep_ports(self, ports: Collection[str]) -> list[Change]:
        """After a reload: the alarms of ports no longer in the config end."""
        changes: list[Change] = []
        for kind, subject in list(self._alarms):
            if "port" in self._alarms[(kind, subject)] and subject not in ports:
                changes += self._end(kind, subject)
        return changes

    def _call_end(self, event: CallEnd, changes: list[Change]) -> None:
        call_id = event["call_id"]
        if self.calls.pop(call_id, None) is not None:
            changes.append((call_path(call_id), None))
        if not self._alarms:
            return
        for destination in event["destinations"]:
            if destination["port"] not in self._held:  # else its talker's drop ends it
                changes += self._end("timeout", destination["port"])
        if event.get("recording"):
            changes += self._end(_RECORDING_FAILED, event["source"]["port"])

    def _alarm(self, event: Alarm, changes: list[Change]) -> None:
        kind, subject = event["kind"], alarm_subject(event)
        ends = _ENDS.get(kind)
        if ends is not None:
            for ended in ends:
                changes += self._end(ended, subject)
            return
        self._alarms.pop((kind, subject), None)  # raised again: the newest, last in order
        self._alarms[(kind, subject)] = event
        if kind == "stuck_carrier":
            self._on_drop.setdefault(subject, set()).add((kind, subject))
        elif kind == "timeout" and (talker := self._talker.get(subject)) is not None:
            self._held[subject] = talker
            self._on_drop.setdefault(talker, set()).add((kind, subject))
        changes.append((alarm_path(kind, subject), event))

    def _end(self, kind: str, subject: str) -> list[Change]:
        if self._alarms.pop((kind, subject), None) is None:
            return []
        watcher = subject if kind == "stuck_carrier" else None
        if kind == "timeout":
            watcher = self._held.pop(subject, None)
        if watcher is not None and (waiting := self._on_drop.get(watcher)) is not None:
            waiting.discard((kind, subject))
            if not waiting:
                del self._on_drop[watcher]
        return [(alarm_path(kind, subject), None)]
