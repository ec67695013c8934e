"""Events as JSON: compact, in their own key order, never lost to a string UTF-8 cannot carry."""

from __future__ import annotations

import json

from gateway.core.events import to_json_bytes, to_json_line


def test_events_are_compact_utf8_in_their_own_key_order() -> None:
    event = {"type": "audit", "gateway": "pa-1", "seq": 7, "patch": "Zone à l'est", "ok": True}
    assert to_json_bytes(event) == (
        '{"type":"audit","gateway":"pa-1","seq":7,"patch":"Zone à l\'est","ok":true}'.encode()
    )
    assert to_json_line(event) == to_json_bytes(event).decode()


def test_a_lone_surrogate_is_written_as_its_escape_and_the_event_is_kept() -> None:
    # Valid JSON from a dispatcher can carry "\ud800"; UTF-8 cannot. The record must survive.
    event = {"type": "audit", "seq": 8, "patch": "\ud800x", "by": "alice"}
    payload = to_json_bytes(event)
    assert payload.isascii()
    assert json.loads(payload) == event
    assert b'"patch":"\\ud800x"' in payload


def test_numbers_json_cannot_carry_become_null() -> None:
    assert json.loads(to_json_bytes({"level_dbfs": float("-inf"), "x": float("nan")})) == {
        "level_dbfs": None,
        "x": None,
    }
