"""docs/mqtt-api.yaml against the code: every topic, every event emitted, commands, states.

The events come from the real producers: `crosspatch simulate` on config/example.yaml with a
scenario that makes every event type happen, the engine driven directly for what a simulation
cannot do (ports going offline, retunes, key tests), and the command router for audits and
replies. Events are schema'd with `additionalProperties: false` and enums, so a field or a value
the code starts to emit without documenting it fails here. Each event schema also has exactly the
fields of its TypedDict in gateway/core/event_types.py, so what mypy checks the producers against
is what the document says.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import types
import typing
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any, Literal, NotRequired, TypedDict

import numpy as np
import pytest
import yaml
from jsonschema import Draft7Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

from gateway.cli import run
from gateway.config import load_config
from gateway.control.patch_control import Command, Principal, Role
from gateway.control.present import Present, alarm_path, call_path
from gateway.control.router import CommandRouter
from gateway.control.status import (
    access_states,
    patch_list,
    retained_states,
    site_info,
    status_snapshot,
)
from gateway.core import event_types
from gateway.core.events import Event, EventStamper, TickClock
from gateway.mqtt.topics import Topics
from gateway.run.site import build_site
from tests.support.mqtt_env import Broker, Watcher
from tests.support.paths import ROOT

DOC_PATH = ROOT / "docs" / "mqtt-api.yaml"
EXAMPLE = ROOT / "config" / "example.yaml"
DOC_URI = "urn:crosspatch:mqtt-api"
EPOCH = datetime(2026, 11, 28, 5, 10, tzinfo=UTC)
TECH1 = Principal("tech1", Role.TECHNICIAN)
EVENT_TYPES = {"call_start", "call_end", "ptt", "carrier", "patch", "alarm", "audit"}

# On config/example.yaml: border-tac needs rcmp and usbp, county-command (priority floor) is
# enabled by a technician, interop-800 is requested and denied, and refusals happen. rcmp-1 holds
# its carrier past the 180 s time-out of its destinations (alarms timeout + stuck_carrier, call_end
# timeout); what-comm (priority 90) preempts wcso-1 (50); chloe disables county-command mid-call;
# a call is still up at the end (shutdown). The patch announcements key ports (ptt announcement).
SCENARIO = """\
start: "2026-11-28T05:10:00Z"
duration_s: 186
events:
  - {at: 0.0, command: enable, patch: border-tac, as: alice}
  - {at: 0.2, command: approve, patch: border-tac, as: bob}
  - {at: 0.2, command: approve, patch: border-tac, as: bob}
  - {at: 0.2, command: enable, patch: county-command, as: alice}
  - {at: 0.4, command: enable, patch: county-command, as: tech1}
  - {at: 0.4, command: enable, patch: interop-800, as: coml-us}
  - {at: 0.6, command: deny, patch: interop-800, as: coml-ca}
  - {at: 2.0, port: rcmp-1, carrier: {seconds: 200}}
  - {at: 4.0, port: wcso-1, receive: {tone_hz: 1000, level_dbfs: -12, seconds: 6}}
  - {at: 6.0, port: what-comm, receive: {tone_hz: 700, level_dbfs: -10, seconds: 2}}
  - {at: 12.0, port: vcall10, receive: {tone_hz: 1000, seconds: 2}}
  - {at: 20.0, port: cbsa-1, receive: {tone_hz: 1000, seconds: 10}}
  - {at: 24.0, command: disable, patch: county-command, as: chloe}
  - {at: 184.0, port: ca-call, receive: {tone_hz: 1000, seconds: 5}}
"""


# --- the document ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(DOC_PATH.read_text())
    return loaded


@pytest.fixture(scope="module")
def schema_of(doc: dict[str, Any]) -> Callable[[str], Draft7Validator]:
    """components/schemas/NAME as a validator, its $refs resolved inside the document."""
    registry: Registry[Any] = Registry().with_resource(
        DOC_URI, Resource.from_contents(doc, default_specification=DRAFT7)
    )

    def validator(name: str) -> Draft7Validator:
        assert name in doc["components"]["schemas"], f"no schema '{name}' in the document"
        return Draft7Validator(
            {"$ref": f"{DOC_URI}#/components/schemas/{name}"},
            registry=registry,
            format_checker=Draft7Validator.FORMAT_CHECKER,
        )

    return validator


def problems(validator: Draft7Validator, value: Any) -> list[str]:
    return [
        f"{'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}"
        for e in validator.iter_errors(value)
    ]


def ref_name(ref: str) -> str:
    return ref.rsplit("/", 1)[-1]


def channel_topics() -> dict[str, str]:
    """What mqtt_topics.Topics produces, with AsyncAPI parameters for its variable levels."""
    topics = Topics("{prefix}", "{gateway}")
    return {
        "status": topics.status,
        "port": topics.port("{port}"),
        "patch": topics.patch("{patch}"),
        "calls": topics.calls,
        "events": topics.events,
        "audit": topics.audit,
        "cmd": topics.commands.replace("+", "{user}"),  # the gateway's wildcard, one USER each
        "reply": topics.reply("{user}"),
        "info": topics.info,
        "access": topics.access("{user}"),
        "active_call": topics.present(call_path("{call_id}")),
        "active_alarm": topics.present(alarm_path("{kind}", "{subject}")),
    }


RETAINED = {"status", "port", "patch", "info", "access", "active_call", "active_alarm"}


def channel_messages(doc: dict[str, Any], channel: str) -> list[str]:
    """Names of the messages of a channel's (single) operation."""
    item = doc["channels"][channel]
    operation = item.get("subscribe") or item.get("publish")
    message = operation["message"]
    refs = message.get("oneOf", [message])
    return [ref_name(m["$ref"]) for m in refs]


def test_the_document_is_asyncapi_2_6(doc: dict[str, Any]) -> None:
    assert doc["asyncapi"] == "2.6.0"
    assert doc["info"]["title"] and doc["info"]["version"]
    assert doc["defaultContentType"] == "application/json"
    for server in doc["servers"].values():
        assert server["protocol"] in ("mqtt", "secure-mqtt")
        will = server["bindings"]["mqtt"]["lastWill"]
        assert will == {
            "topic": "crosspatch/{gateway}/status",
            "qos": 1,
            "message": "offline",
            "retain": True,
        }
    description = doc["info"]["description"]
    for acl in (
        "pattern write crosspatch/+/cmd/%u",
        "pattern read crosspatch/+/reply/%u",
        "pattern read crosspatch/+/calls",
        "pattern read crosspatch/+/events",
        "pattern read crosspatch/+/info",
        "pattern read crosspatch/+/calls/active/#",
        "pattern read crosspatch/+/alarms/active/#",
        "pattern read crosspatch/+/access/%u",
    ):
        assert acl in description


def test_every_topic_of_the_code_is_a_channel(doc: dict[str, Any]) -> None:
    topics = channel_topics()
    assert set(doc["channels"]) == set(topics.values())
    retained = RETAINED
    for key, topic in topics.items():
        item = doc["channels"][topic]
        assert set(re.findall(r"\{(\w+)\}", topic)) == set(item["parameters"]), topic
        for parameter in item["parameters"].values():
            assert ref_name(parameter["$ref"]) in doc["components"]["parameters"]
        # AsyncAPI 2: `publish` is what clients send the gateway; only commands go that way.
        operations = [op for op in ("publish", "subscribe") if op in item]
        assert operations == (["publish"] if key == "cmd" else ["subscribe"]), topic
        binding = item[operations[0]]["bindings"]["mqtt"]
        assert binding["qos"] == 1, topic
        assert binding["retain"] is (key in retained), topic
        for name in channel_messages(doc, topic):
            message = doc["components"]["messages"][name]
            assert ref_name(message["payload"]["$ref"]) in doc["components"]["schemas"]


def test_every_message_example_fits_its_schema(
    doc: dict[str, Any], schema_of: Callable[[str], Draft7Validator]
) -> None:
    for name, message in doc["components"]["messages"].items():
        validator = schema_of(ref_name(message["payload"]["$ref"]))
        assert message.get("examples"), f"message {name} has no example"
        for example in message["examples"]:
            assert not problems(validator, example["payload"]), (name, example)


# --- the events the code emits ------------------------------------------------------------------


@pytest.fixture(scope="module")
def simulated_events(tmp_path_factory: pytest.TempPathFactory) -> list[Event]:
    tmp = tmp_path_factory.mktemp("mqtt-api")
    scenario = tmp / "scenario.yaml"
    scenario.write_text(SCENARIO)
    out = tmp / "out"
    assert run(["simulate", str(EXAMPLE), str(scenario), "--out", str(out)]) == 0
    lines = (out / "events.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def engine_events() -> list[Event]:
    """What only live hardware and technicians cause, from the engine itself: a port going
    offline and a radio retuning mid-call, a key test, and the alarms hardware raises."""
    cfg = load_config(EXAMPLE)
    site = build_site(cfg)
    engine, control = site.build(TickClock(EPOCH, site.frame_ms))
    names = [p.name for p in site.ports]
    n, frame = len(names), engine.frame_samples
    events: list[Event] = []
    tone = (0.25 * np.sin(np.arange(frame) * 2 * np.pi / 8)).astype(np.float32)

    def ticks(count: int, talking: set[str]) -> None:
        rx = np.zeros((n, frame), np.float32)
        carrier = np.zeros(n, bool)
        for port in talking:
            rx[names.index(port)] = tone
            carrier[names.index(port)] = True
        for _ in range(count):
            events.extend(engine.tick(rx, carrier).events)

    events.extend(control.execute(TECH1, Command.ENABLE, "border-tac").events)
    ticks(20, {"rcmp-1"})
    events.extend(engine.set_port_online("rcmp-1", False))  # call_end + ptt port_offline
    events.append(engine.alarm("port_offline", "serial line /dev/ttyUSB0 lost", port="rcmp-1"))
    ticks(5, set())
    events.extend(engine.set_port_online("rcmp-1", True))
    events.append(engine.alarm("port_online", "rcmp-1 back in service", port="rcmp-1"))
    ticks(60, set())
    ticks(20, {"usbp-1"})
    events.extend(engine.set_port_ready("usbp-1", False, "retune"))  # call_end + ptt retune
    events.extend(engine.set_port_ready("usbp-1", True))
    ticks(60, set())
    engine.announce(["usbp-1"], np.zeros(frame * 10, np.float32), reason="key_test")
    ticks(60, set())
    events.append(engine.alarm("unkey_failed", "could not unkey after 3 tries", port="usbp-1"))
    events.append(engine.alarm("outbox_full", "MQTT outbox holds 262144 KiB, its budget"))
    events.extend(engine.release_all("shutdown"))
    return events


class FakeHost:
    """The daemon's side of the command router, on a real engine and command layer."""

    def __init__(self) -> None:
        cfg = load_config(EXAMPLE)
        self.cfg = cfg
        site = build_site(cfg)
        self.engine, self.control = site.build(TickClock(EPOCH, site.frame_ms))
        self.events: list[Event] = []

    async def status(self) -> dict[str, Any]:
        # What the daemon adds to the site's snapshot, in miniature.
        extra = {"gateway": "peace-arch", "config": str(EXAMPLE), "uptime_s": 1.0}
        extra |= {"recent_calls": [], "alarms": [], "ticks": {"ticks": 0}}
        return status_snapshot(self.engine, self.control, self.cfg) | extra

    async def patch_list(self) -> list[dict[str, Any]]:
        return patch_list(self.engine, self.control)

    async def patch_command(
        self, who: Principal, command: Command, patch: str
    ) -> tuple[bool, str, str | None]:
        result = self.control.execute(who, command, patch)
        self.events.extend(result.events)
        return result.ok, result.message, str(result.state) if result.state else None

    async def key_test(self, port: str, seconds: float) -> str:
        return f"'{port}' keyed for {seconds:g} s with a 1 kHz tone as soon as it is free"

    async def reload(self, by: str) -> dict[str, Any]:
        return {"reloaded": str(EXAMPLE), "enabled": sorted(self.engine.enabled_patches)}

    async def emit(self, make: Callable[[str], list[Event]]) -> None:
        self.events.extend(make(self.engine.clock.iso(self.engine.tick_index)))


# Every command, accepted and refused, as MQTT users send them.
COMMANDS: list[tuple[str, bytes]] = [
    ("alice", b'{"command": "status", "id": 1}'),
    ("bob", b'{"command": "patch.list", "id": "b-1"}'),
    ("alice", b'{"command": "patch.enable", "patch": "border-tac", "id": [1, 2]}'),
    ("bob", b'{"command": "patch.approve", "patch": "border-tac"}'),
    ("alice", b'{"command": "patch.disable", "patch": "border-tac"}'),
    ("dan", b'{"command": "patch.enable", "patch": "county-command"}'),
    ("chloe", b'{"command": "patch.deny", "patch": "county-command"}'),
    ("alice", b'{"command": "patch.enable", "patch": "county-command"}'),
    ("tech1", b'{"command": "port.key_test", "port": "usbp-1", "seconds": 2}'),
    ("tech1", b'{"command": "port.key_test", "port": "usbp-1", "seconds": 60}'),
    ("alice", b'{"command": "port.key_test", "port": "usbp-1"}'),
    ("tech1", b'{"command": "reload"}'),
    ("alice", b'{"command": "reload"}'),
    ("mallory", b'{"command": "status"}'),
    ("alice", b'{"command": "launch"}'),
    ("alice", b"not json"),
    ("alice", b'{"command": "patch.enable"}'),
]


@pytest.fixture(scope="module")
def router_run() -> tuple[list[Event], list[dict[str, Any]]]:
    host = FakeHost()
    router = CommandRouter(host, lambda: host.cfg)

    async def send_all() -> list[dict[str, Any]]:
        return [await router.mqtt(user, payload) for user, payload in COMMANDS]

    replies = asyncio.run(send_all())
    return host.events, replies


@pytest.fixture(scope="module")
def every_event(
    simulated_events: list[Event], router_run: tuple[list[Event], list[dict[str, Any]]]
) -> list[Event]:
    stamper = EventStamper("peace-arch")
    direct = [stamper.stamp(e) for e in [*engine_events(), *router_run[0]]]
    return [*simulated_events, *direct]


def test_every_event_type_happens(every_event: list[Event]) -> None:
    assert {e["type"] for e in every_event} == EVENT_TYPES
    telling = {"call_end": "reason", "ptt": "reason", "audit": "result", "patch": "state"}
    seen = {(e["type"], e.get(telling.get(e["type"], ""))) for e in every_event}
    for expected in (
        ("call_end", "carrier_drop"),
        ("call_end", "timeout"),
        ("call_end", "preempted"),
        ("call_end", "patch_disabled"),
        ("call_end", "shutdown"),
        ("call_end", "port_offline"),
        ("call_end", "retune"),
        ("ptt", "call"),
        ("ptt", "announcement"),
        ("ptt", "key_test"),
        ("ptt", "hang_elapsed"),
        ("ptt", "timeout"),
        ("audit", "accepted"),
        ("audit", "refused"),
        ("patch", "enabled"),
        ("patch", "disabled"),
        ("patch", "pending"),
    ):
        assert expected in seen, expected
    kinds = {e["kind"] for e in every_event if e["type"] == "alarm"}
    assert {"timeout", "stuck_carrier"} <= kinds


def test_every_event_fits_its_schema_and_channel(
    doc: dict[str, Any],
    schema_of: Callable[[str], Draft7Validator],
    every_event: list[Event],
) -> None:
    topics = Topics("{prefix}", "{gateway}")
    failures = []
    for event in every_event:
        found = problems(schema_of(event["type"]), event)
        if found:
            failures.append(f"{json.dumps(event)}\n    " + "\n    ".join(found))
        # The channel the code publishes it on documents it.
        assert event["type"] in channel_messages(doc, topics.for_event(event)), event["type"]
    assert not failures, "events the document does not describe:\n" + "\n".join(failures)


def test_a_field_or_value_not_documented_fails(
    schema_of: Callable[[str], Draft7Validator], every_event: list[Event]
) -> None:
    by_type = {e["type"]: e for e in every_event}
    assert problems(schema_of("ptt"), {**by_type["ptt"], "level": 3})
    assert problems(schema_of("call_end"), {**by_type["call_end"], "reason": "lightning"})
    assert problems(schema_of("audit"), {**by_type["audit"], "result": "maybe"})
    assert problems(schema_of("call_start"), {**by_type["call_start"], "time": "yesterday"})


def json_types(hint: Any) -> set[str]:
    """The JSON types a Python type hint of an event field allows."""
    origin = typing.get_origin(hint)
    if origin is typing.Literal:
        return set().union(*(json_types(type(value)) for value in typing.get_args(hint)))
    if origin in (types.UnionType, typing.Union):
        return set().union(*(json_types(arg) for arg in typing.get_args(hint)))
    if origin is typing.NotRequired:
        return json_types(typing.get_args(hint)[0])
    simple = {str: "string", bool: "boolean", int: "integer", float: "number", type(None): "null"}
    if hint in simple:
        return {simple[hint]}
    if origin is list:
        return {"array"}
    if origin is dict or typing.is_typeddict(hint):
        return {"object"}
    raise AssertionError(f"no JSON type for {hint!r}")


def schema_types(doc: dict[str, Any], schema: dict[str, Any]) -> set[str]:
    """The JSON types a (document) schema allows, through its $ref, allOf and oneOf."""
    if "$ref" in schema:
        return schema_types(doc, doc["components"]["schemas"][ref_name(schema["$ref"])])
    if "allOf" in schema:
        return set.intersection(*(schema_types(doc, s) for s in schema["allOf"]))
    if "oneOf" in schema:
        return set().union(*(schema_types(doc, s) for s in schema["oneOf"]))
    if "const" in schema:
        return json_types(type(schema["const"]))
    declared = schema["type"]
    return {declared} if isinstance(declared, str) else set(declared)


def schema_values(doc: dict[str, Any], schema: dict[str, Any]) -> set[Any] | None:
    """The values a schema's `const` or `enum` allows (through $ref and allOf); None: any."""
    if "$ref" in schema:
        return schema_values(doc, doc["components"]["schemas"][ref_name(schema["$ref"])])
    if "allOf" in schema:
        return schema_values(doc, schema["allOf"][0])
    if "const" in schema:
        return {schema["const"]}
    return set(schema["enum"]) if "enum" in schema else None


def assert_schema_is_typed_dict(
    doc: dict[str, Any], name: str, typed: Any, stamp: frozenset[str]
) -> None:
    """The schema `name` has exactly the TypedDict's fields, required as it requires them
    (and the stamp), each of a JSON type its Python type allows."""
    schema = doc["components"]["schemas"][name]
    hints = typing.get_type_hints(typed, include_extras=True)
    assert schema["additionalProperties"] is False, name
    assert set(schema["properties"]) == set(hints), name
    assert set(schema["required"]) == typed.__required_keys__ | stamp, name
    for key, hint in hints.items():
        allowed = schema_types(doc, schema["properties"][key])
        wanted = json_types(hint)
        if "number" in allowed:  # a JSON number holds every integer too
            wanted = {"number" if kind == "integer" else kind for kind in wanted}
        assert wanted == allowed, (name, key, hint, allowed)
        # A Literal is a closed set of values: the document lists the same ones.
        if typing.get_origin(hint) is typing.Literal:
            values = set(typing.get_args(hint))
            assert values == schema_values(doc, schema["properties"][key]), (name, key, values)


def test_every_event_type_is_a_typed_dict_with_the_documented_fields(
    doc: dict[str, Any],
) -> None:
    schemas = doc["components"]["schemas"]
    documented = {
        name
        for name, schema in schemas.items()
        if "const" in schema.get("properties", {}).get("type", {})
    }
    assert set(event_types.EVENT_TYPES) == documented == EVENT_TYPES
    for name, typed in event_types.EVENT_TYPES.items():
        hints = typing.get_type_hints(typed)
        assert hints["type"] == typing.Literal[name]
        assert schemas[name]["properties"]["type"] == {"const": name}
        # The stamp is the stamper's, never the producer's: not required of what it builds.
        assert typed.__optional_keys__ >= event_types.STAMP_KEYS, name
        assert_schema_is_typed_dict(doc, name, typed, event_types.STAMP_KEYS)
    assert_schema_is_typed_dict(doc, "portRef", event_types.PortRef, frozenset())


def test_the_field_check_catches_a_difference(doc: dict[str, Any]) -> None:
    alarm = typing.get_type_hints(event_types.Alarm, include_extras=True)
    ptt = typing.get_type_hints(event_types.Ptt, include_extras=True)
    for name, fields in (
        ("alarm", {**alarm, "level": int}),  # a field the document does not have
        ("alarm", {k: v for k, v in alarm.items() if k != "detail"}),  # a field missing
        ("alarm", {**alarm, "port": str}),  # optional in the document, required here
        ("alarm", {**alarm, "detail": NotRequired[str]}),  # required in the document, not here
        ("alarm", {**alarm, "detail": int}),  # another type
        ("alarm", {**alarm, "kind": Literal["timeout"]}),  # a closed set the document leaves open
        ("ptt", {**ptt, "reason": Literal["call", "timeout"]}),  # fewer values than documented
    ):
        with pytest.raises(AssertionError):
            assert_schema_is_typed_dict(
                doc, name, TypedDict("Changed", fields), event_types.STAMP_KEYS
            )


def test_replies_fit_the_document(
    schema_of: Callable[[str], Draft7Validator],
    router_run: tuple[list[Event], list[dict[str, Any]]],
) -> None:
    replies = router_run[1]
    assert len(replies) == len(COMMANDS)
    assert {r["ok"] for r in replies} == {True, False}
    for (user, payload), reply in zip(COMMANDS, replies, strict=True):
        assert not problems(schema_of("reply"), reply), (user, payload, reply)


def test_commands_fit_the_document(schema_of: Callable[[str], Draft7Validator]) -> None:
    command = schema_of("command")
    for body in (
        {"command": "status"},
        {"command": "patch.list", "id": 7},
        {"command": "patch.approve", "patch": "border-tac", "id": "console-3"},
        {"command": "port.key_test", "port": "usbp-1"},
        {"command": "port.key_test", "port": "usbp-1", "seconds": 10},
        {"command": "reload", "id": None},
    ):
        assert not problems(command, body), body
    for body in (
        {"command": "launch"},
        {"command": "patch.enable"},
        {"command": "port.key_test", "port": "usbp-1", "seconds": 60},
        {"patch": "border-tac"},
    ):
        assert problems(command, body), body


def test_retained_states_fit_the_document(schema_of: Callable[[str], Draft7Validator]) -> None:
    host = FakeHost()
    control = host.control
    control.execute(TECH1, Command.ENABLE, "border-tac")
    control.execute(Principal("coml-us", Role.DISPATCHER, "interop"), Command.ENABLE, "interop-800")
    ports, patches = retained_states(status_snapshot(host.engine, host.control, host.cfg))
    assert {p["kind"] for p in ports.values()} >= {"radio", "link", "simulated"}
    assert {p["state"] for p in patches.values()} == {"enabled", "disabled", "pending"}
    for state in ports.values():
        assert not problems(schema_of("portState"), state), state
    for state in patches.values():
        assert not problems(schema_of("patchState"), state), state
    assert not problems(schema_of("status"), "online")
    assert problems(schema_of("status"), "maybe")


def test_info_and_access_fit_the_document(schema_of: Callable[[str], Draft7Validator]) -> None:
    host = FakeHost()
    info = site_info(host.cfg)
    assert info["site"] and info["agencies"]
    assert not problems(schema_of("info"), info)
    access = access_states(host.control)
    assert {a["role"] for a in access.values()} == {"dispatcher", "technician"}
    for state in access.values():
        assert not problems(schema_of("access"), state), state
    assert problems(schema_of("access"), {**state, "patches": {"border-tac": ["launch"]}})


def test_present_entries_fit_their_channels(
    doc: dict[str, Any],
    schema_of: Callable[[str], Draft7Validator],
    every_event: list[Event],
) -> None:
    """Every call in progress and active alarm the tracker makes of the emitted events lands on
    its documented channel with its documented message; ends are empty (cleared)."""
    present = Present()
    channels = {
        "calls/active/": "{prefix}/{gateway}/calls/active/{call_id}",
        "alarms/active/": "{prefix}/{gateway}/alarms/active/{kind}/{subject}",
    }
    seen: set[str] = set()
    for event in every_event:
        for path, entry in present.note([event]):
            head = next(h for h in channels if path.startswith(h))
            channel = channels[head]
            levels = path.split("/")[2:]
            assert len(levels) == channel.count("{") - 2, path
            if entry is None:
                continue
            seen.add(head)
            (message,) = channel_messages(doc, channel)
            payload = doc["components"]["messages"][message]["payload"]
            assert not problems(schema_of(ref_name(payload["$ref"])), entry), entry
    assert seen == set(channels)


def iter_refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from iter_refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from iter_refs(item)


def test_every_reference_resolves(doc: dict[str, Any]) -> None:
    for ref in iter_refs(doc):
        assert ref.startswith("#/"), ref
        node: Any = doc
        for part in ref[2:].split("/"):
            assert isinstance(node, dict) and part in node, ref
            node = node[part]


def test_the_documented_acl_works_on_mosquitto(doc: dict[str, Any]) -> None:
    acl = doc["info"]["description"].split("```")[1]
    users = {"peace-arch": "gw", "alice": "a", "bob": "b", "auditor": "x"}
    gw = "crosspatch/peace-arch"
    with Broker(users=users, acl=acl) as broker:
        gateway = Watcher(broker, f"{gw}/cmd/+", username="peace-arch", password="gw")
        alice = Watcher(broker, "crosspatch/#", username="alice", password="a")
        auditor = Watcher(broker, "crosspatch/+/audit", username="auditor", password="x")
        try:
            # reply/alice/c3 last: once alice has it, she would have had reply/bob before it.
            for topic in (
                "calls",
                "events",
                "audit",
                "info",
                "calls/active/c1",
                "alarms/active/timeout/usbp-1",
                "access/alice",
                "access/bob",
                "reply/alice",
                "reply/bob",
                "reply/alice/c3",
            ):
                gateway.publish(f"{gw}/{topic}", b"{}")
            alice.publish(f"{gw}/cmd/bob", b'{"command": "status"}')  # posing as bob: dropped
            alice.publish(f"{gw}/cmd/alice", b'{"command": "status"}')
            gateway.wait_for(lambda: gateway.on(f"{gw}/cmd/+"))
            auditor.wait_for(lambda: auditor.on(f"{gw}/audit"))
            alice.wait_for(lambda: alice.on(f"{gw}/reply/alice/c3"))
            time.sleep(0.5)  # not happening: whatever else would arrive has by now
            assert [m.topic for m in gateway.on(f"{gw}/cmd/+")] == [f"{gw}/cmd/alice"]
            assert sorted(m.topic for m in alice.messages) == [
                f"{gw}/access/alice",  # her own access, not bob's
                f"{gw}/alarms/active/timeout/usbp-1",
                f"{gw}/calls",
                f"{gw}/calls/active/c1",
                f"{gw}/events",
                f"{gw}/info",
                f"{gw}/reply/alice",
                f"{gw}/reply/alice/c3",
            ]
        finally:
            for watcher in (gateway, alice, auditor):
                watcher.close()
