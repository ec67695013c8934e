"""Events: the objects the gateway emits, and the stamp (gateway, seq, time) that makes them final.

Every event is a plain JSON object as docs/design.md, "Events" lists them. Producers (the engine,
the command layer) build the type-specific fields and the `time`; an `EventStamper` adds `gateway`
and `seq` in one place, so `seq` increases by one per event of this gateway whoever produced it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast, get_args

import orjson

# event_types has one TypedDict per event type; `Event`, their union, is re-exported here.
from gateway.core.event_types import CallEndReason
from gateway.core.event_types import Event as Event

CALL_END_REASONS: tuple[str, ...] = get_args(CallEndReason)


def iso_time(moment: datetime) -> str:
    """UTC, ISO 8601 with milliseconds and a Z: 2026-01-01T00:00:01.020Z."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


@dataclass(frozen=True)
class TickClock:
    """Maps engine ticks to wall time: tick t starts at `epoch + t * frame_ms`.

    The engine counts frames, never reads a clock: the daemon gives it the wall time of its first
    tick, the simulator a scenario's start, so simulated runs are exact and repeatable.
    """

    epoch: datetime
    frame_ms: int

    def at(self, tick: int) -> datetime:
        return self.epoch + timedelta(milliseconds=tick * self.frame_ms)

    def iso(self, tick: int) -> str:
        return iso_time(self.at(tick))

    def compact(self, tick: int) -> str:
        """A time usable inside ids and file names: 20260101T000001.020Z."""
        return self.iso(tick).replace("-", "").replace(":", "")


@dataclass
class EventStamper:
    """Adds `gateway` and the gateway-wide `seq` to events, in the order they are given."""

    gateway: str
    next_seq: int = 1
    _key_order: tuple[str, ...] = field(default=("type", "gateway", "seq", "time"), repr=False)

    def stamp(self, event: Event) -> Event:
        stamped: dict[str, Any] = {
            "type": event["type"],
            "gateway": self.gateway,
            "seq": self.next_seq,
        }
        stamped["time"] = event["time"]
        for key, value in event.items():
            if key not in self._key_order:
                stamped[key] = value
        self.next_seq += 1
        # The same event with its stamp: the type's fields, in the producer's order.
        return cast(Event, stamped)


def to_json_bytes(value: Any) -> bytes:
    """Compact UTF-8 JSON in the dict's own key order (so outputs are byte-identical).

    orjson, not json: in a flood the event loop encodes thousands of events a second, and the
    standard encoder's time is time the engine thread waits for the interpreter lock (it was
    the largest share of the loop's lock time); orjson takes a tenth of it. NaN and infinities
    become null. A string JSON input can carry but UTF-8 cannot (a lone UTF-16 surrogate) is
    written as its \\u escape by the json module instead: the record is kept, never dropped."""
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)
    except orjson.JSONEncodeError:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=True).encode()


def to_json_line(event: Event) -> str:
    """One event as one compact JSON line (stable key order, so outputs are byte-identical)."""
    return to_json_bytes(event).decode()
