"""One `TypedDict` per event type: the fields each event carries, as docs/mqtt-api.yaml lists them.

Producers build these (mypy checks every field they write) and readers narrow an `Event` by its
`type` to read them. A producer writes `type`, `time` and the type's own fields; `gateway` and
`seq` are the stamp `EventStamper` adds once the event is final, so they are `NotRequired` here
while the document requires them of every published event (tests/mqtt/test_mqtt_api_doc.py ties the
two together, field by field).

No `from __future__ import annotations`: Python 3.11 reads `NotRequired` out of a TypedDict's
annotations only when they are real objects, and the test reads the required keys at run time.
"""

from typing import Any, Literal, NotRequired, TypedDict

# The keys `EventStamper` adds to every event.
STAMP_KEYS = frozenset({"gateway", "seq"})

# Why the gateway ended a call or unkeyed a transmitter by itself; port_offline / retune: the port
# went out of service, or was retuned, mid-call.
ReleaseReason = Literal["patch_disabled", "shutdown", "port_offline", "retune"]
CallEndReason = Literal["carrier_drop", "timeout", "preempted", ReleaseReason]
# What an announcement keys a port for: a patch prompt or ID, or a technician's key test.
AnnounceReason = Literal["announcement", "key_test"]
PttReason = Literal["call", AnnounceReason, "hang_elapsed", "timeout", ReleaseReason]
AuditResult = Literal["accepted", "refused"]


class _Stamp(TypedDict):
    gateway: NotRequired[str]
    seq: NotRequired[int]


class PortRef(TypedDict):
    """A port in a call, with the talkgroup (`agency/name`) and agency it served then."""

    port: str
    talkgroup: str
    agency: str


class CallStart(_Stamp):
    type: Literal["call_start"]
    time: str
    call_id: str
    patch: str
    source: PortRef
    destinations: list[PortRef]


class CallEnd(_Stamp):
    type: Literal["call_end"]
    time: str
    call_id: str
    patch: str
    source: PortRef
    destinations: list[PortRef]
    start: str
    end: str
    duration_s: float
    reason: CallEndReason
    peak_dbfs: float
    # None until the recorder (if any) names the call's file.
    recording: str | None


class Ptt(_Stamp):
    type: Literal["ptt"]
    time: str
    port: str
    on: bool
    reason: PttReason


class Carrier(_Stamp):
    type: Literal["carrier"]
    time: str
    port: str
    on: bool


class PatchChange(_Stamp):
    type: Literal["patch"]
    time: str
    patch: str
    state: str
    by: str
    # When pending: the consent agencies that have not approved yet.
    waiting_for: NotRequired[list[str]]


class Alarm(_Stamp):
    type: Literal["alarm"]
    time: str
    kind: str
    # The port concerned; none for an alarm about the whole gateway.
    port: NotRequired[str]
    # Reserved for alarms about a patch (none is raised yet).
    patch: NotRequired[str]
    detail: str


class Audit(_Stamp):
    type: Literal["audit"]
    time: str
    principal: str
    command: str
    args: dict[str, Any]
    result: AuditResult
    reason: str


Event = CallStart | CallEnd | Ptt | Carrier | PatchChange | Alarm | Audit

# Each event type's name (its `type` value) and TypedDict.
EVENT_TYPES: dict[str, type[Any]] = {
    "call_start": CallStart,
    "call_end": CallEnd,
    "ptt": Ptt,
    "carrier": Carrier,
    "patch": PatchChange,
    "alarm": Alarm,
    "audit": Audit,
}
