"""The command layer: authorisation, cross-agency consent and the audit trail."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from gateway.control.patch_control import (
    DEFAULT_TECHNICIAN,
    Command,
    PatchControl,
    PatchPolicy,
    PatchState,
    Principal,
    Role,
)
from gateway.control.router import BadRequest, parse_request
from gateway.core.engine import MemberSpec, PatchEngine, PatchSpec, PortSpec
from gateway.core.events import Event, TickClock

ALICE = Principal("alice", Role.DISPATCHER, "rcmp")
BOB = Principal("bob", Role.DISPATCHER, "usbp")
CAROL = Principal("carol", Role.DISPATCHER, "sheriff")
DAVE = Principal("dave", Role.DISPATCHER, "cbsa")


@pytest.fixture
def control() -> PatchControl:
    return make_control()


def make_control(pending_expiry_s: float | None = None) -> PatchControl:
    ports = [
        PortSpec("rcmp-1", "rcmp/tac2", "rcmp"),
        PortSpec("usbp-1", "usbp/ch4", "usbp"),
        PortSpec("sheriff-1", "sheriff/ops", "sheriff"),
        PortSpec("cbsa-1", "cbsa/ops", "cbsa"),
    ]
    patches = [
        PatchSpec("border-tac", (MemberSpec("rcmp-1"), MemberSpec("usbp-1"))),
        PatchSpec("county", (MemberSpec("usbp-1"), MemberSpec("sheriff-1"))),
        PatchSpec("open", (MemberSpec("cbsa-1"), MemberSpec("sheriff-1"))),
    ]
    engine = PatchEngine(
        ports, patches, clock=TickClock(datetime(2026, 1, 1, tzinfo=UTC), 20), gateway_id="gw"
    )
    policies = {
        "border-tac": PatchPolicy(frozenset({"rcmp", "usbp"}), ("rcmp", "usbp")),
        "county": PatchPolicy(frozenset({"usbp", "sheriff"}), ("usbp", "sheriff")),
        "open": PatchPolicy(frozenset({"cbsa", "sheriff"}), ()),
    }
    principals = {p.name: p for p in (ALICE, BOB, CAROL, DAVE)}
    return PatchControl(engine, policies, principals, pending_expiry_s)


def audits(events: list[Event]) -> list[Event]:
    return [e for e in events if e["type"] == "audit"]


def patch_states(events: list[Event]) -> list[tuple[str, str, str]]:
    return [(e["patch"], e["state"], e["by"]) for e in events if e["type"] == "patch"]


def test_consent_keeps_patch_pending_until_every_agency_approved(control: PatchControl) -> None:
    requested = control.execute(ALICE, Command.ENABLE, "border-tac")
    assert requested.ok and requested.state is PatchState.PENDING
    assert "usbp" in requested.message
    assert patch_states(requested.events) == [("border-tac", "pending", "alice")]
    assert "border-tac" not in control.engine.enabled_patches

    approved = control.execute(BOB, Command.APPROVE, "border-tac")
    assert approved.ok and approved.state is PatchState.ENABLED
    assert patch_states(approved.events) == [("border-tac", "enabled", "bob")]
    assert "border-tac" in control.engine.enabled_patches
    assert sorted(control.approved_by("border-tac")) == ["alice", "bob"]


def test_dispatcher_cannot_act_on_another_agencys_patch(control: PatchControl) -> None:
    result = control.execute(DAVE, Command.ENABLE, "border-tac")
    assert not result.ok
    assert "cbsa" in result.message and "border-tac" in result.message
    (audit,) = audits(result.events)
    assert audit["result"] == "refused" and audit["principal"] == "dave"
    assert audit["command"] == "patch.enable" and audit["args"] == {"patch": "border-tac"}
    assert control.state("border-tac") is PatchState.DISABLED


def test_same_agency_cannot_approve_twice(control: PatchControl) -> None:
    control.execute(ALICE, Command.ENABLE, "border-tac")
    again = control.execute(ALICE, Command.APPROVE, "border-tac")
    assert not again.ok and "already approved" in again.message
    assert control.state("border-tac") is PatchState.PENDING


def test_approve_of_a_patch_that_is_not_pending_is_refused(control: PatchControl) -> None:
    result = control.execute(BOB, Command.APPROVE, "border-tac")
    assert not result.ok and "not pending" in result.message
    assert audits(result.events)[0]["result"] == "refused"


def test_deny_returns_pending_patch_to_disabled(control: PatchControl) -> None:
    control.execute(ALICE, Command.ENABLE, "border-tac")
    denied = control.execute(BOB, Command.DENY, "border-tac")
    assert denied.ok and denied.state is PatchState.DISABLED
    assert patch_states(denied.events) == [("border-tac", "disabled", "bob")]
    # A fresh request starts from nothing: alice's earlier approval does not linger.
    control.execute(BOB, Command.ENABLE, "border-tac")
    assert control.state("border-tac") is PatchState.PENDING
    assert control.approved_by("border-tac") == ["bob"]


def test_patch_without_consent_agencies_enables_at_once(control: PatchControl) -> None:
    result = control.execute(DAVE, Command.ENABLE, "open")
    assert result.ok and result.state is PatchState.ENABLED


def test_technician_enables_directly_and_the_audit_says_consent_was_waived(
    control: PatchControl,
) -> None:
    result = control.execute(DEFAULT_TECHNICIAN, Command.ENABLE, "border-tac")
    assert result.ok and result.state is PatchState.ENABLED
    assert "consent waived" in audits(result.events)[0]["reason"]


def test_conflicting_patch_is_refused_at_request_time_naming_the_other(
    control: PatchControl,
) -> None:
    control.execute(DEFAULT_TECHNICIAN, Command.ENABLE, "border-tac")
    result = control.execute(CAROL, Command.ENABLE, "county")
    assert not result.ok
    assert "usbp-1" in result.message and "border-tac" in result.message
    assert control.state("county") is PatchState.DISABLED


def test_any_member_agency_may_disable(control: PatchControl) -> None:
    control.execute(DEFAULT_TECHNICIAN, Command.ENABLE, "border-tac")
    result = control.execute(BOB, Command.DISABLE, "border-tac")
    assert result.ok and result.state is PatchState.DISABLED
    assert "border-tac" not in control.engine.enabled_patches


def test_unknown_patch_is_refused_with_the_known_names(control: PatchControl) -> None:
    result = control.execute(ALICE, Command.ENABLE, "no-such")
    assert not result.ok
    assert "no-such" in result.message and "border-tac" in result.message
    assert audits(result.events)[0]["result"] == "refused"


def test_every_command_is_audited_with_time(control: PatchControl) -> None:
    for who, command in ((ALICE, Command.ENABLE), (BOB, Command.APPROVE), (BOB, Command.DISABLE)):
        result = control.execute(who, command, "border-tac")
        (audit,) = audits(result.events)
        assert audit["result"] == "accepted"
        assert audit["time"] == "2026-01-01T00:00:00.000Z"
        assert audit["reason"]


def test_a_pending_request_expires_without_the_other_agencys_approval(
    control: PatchControl,
) -> None:
    expiring = PatchControl(
        control.engine, control.policies, control.principals, pending_expiry_s=60
    )
    assert expiring.execute(ALICE, Command.ENABLE, "border-tac").state is PatchState.PENDING
    quiet = np.zeros(len(control.engine.ports), dtype=bool)
    rx = np.zeros((len(control.engine.ports), control.engine.frame_samples), dtype=np.float32)
    for _ in range(60 * 50 - 1):  # one tick short of 60 s of 20 ms frames
        control.engine.tick(rx, quiet)
    assert expiring.expire_pending() == []
    control.engine.tick(rx, quiet)
    events = expiring.expire_pending()
    assert patch_states(events) == [("border-tac", "disabled", "expiry")]
    (audit,) = audits(events)
    assert audit["result"] == "refused" and "expired after 60 s" in audit["reason"]
    assert "usbp" in audit["reason"]  # whose approval it waited for
    assert expiring.state("border-tac") is PatchState.DISABLED
    late = expiring.execute(BOB, Command.APPROVE, "border-tac")
    assert not late.ok and "not pending" in late.message
    assert "border-tac" not in control.engine.enabled_patches


@pytest.mark.parametrize(
    "data",
    [
        b'{"command": "patch.enable", "patch": "\\ud800"}',
        b'{"command": "status", "id": "\\udfff"}',
        b'{"command": "status", "\\udc00": 1}',
        b'{"command": "status", "x": [[[{"y": "\\ud83d"}]]]}',
    ],
)
def test_a_lone_surrogate_is_refused_at_parse_time(data: bytes) -> None:
    with pytest.raises(BadRequest, match="lone UTF-16 surrogate"):
        parse_request(data)


def test_a_surrogate_pair_is_text() -> None:
    command, args, _ = parse_request(b'{"command": "patch.enable", "patch": "\\ud83d\\ude92"}')
    assert (command, args) == ("patch.enable", {"patch": "\U0001f692"})


TECH = Principal("tech1", Role.TECHNICIAN)


def put_in_state(control: PatchControl, patch: str, state: PatchState) -> None:
    if state is PatchState.ENABLED:
        assert control.execute(TECH, Command.ENABLE, patch).ok
    elif state is PatchState.PENDING:  # a request nobody has approved yet
        control.status[patch].state = PatchState.PENDING


@pytest.mark.parametrize("who", [ALICE, BOB, CAROL, DAVE, TECH], ids=lambda p: p.name)
def test_permissions_are_what_execute_accepts_in_some_state(who: Principal) -> None:
    """What a console offers a login (`permissions`) is exactly what `execute` accepts from it
    in at least one state of the patch (disabled, pending, enabled)."""
    for patch in ("border-tac", "county", "open"):
        accepted = set()
        for command in Command:
            for state in PatchState:
                fresh = make_control()
                put_in_state(fresh, patch, state)
                if fresh.execute(who, command, patch).ok:
                    accepted.add(command.value.removeprefix("patch."))
        allowed = make_control().permissions(who)
        assert set(allowed.get(patch, [])) == accepted, (who.name, patch)


def test_a_pending_patch_names_who_asked_what_is_missing_and_when_it_expires() -> None:
    control_ = make_control(pending_expiry_s=900)
    assert control_.requested_by("border-tac") is None
    assert control_.waiting_for("border-tac") == [] and control_.expires("border-tac") is None
    result = control_.execute(ALICE, Command.ENABLE, "border-tac")
    (event,) = [e for e in result.events if e["type"] == "patch"]
    assert event["waiting_for"] == ["usbp"]
    assert control_.requested_by("border-tac") == "alice"
    assert control_.waiting_for("border-tac") == ["usbp"]
    assert control_.expires("border-tac") == "2026-01-01T00:15:00.000Z"  # 900 s after tick 0
    approved = control_.execute(BOB, Command.APPROVE, "border-tac")
    (event,) = [e for e in approved.events if e["type"] == "patch"]
    assert "waiting_for" not in event  # only a pending state names it
    assert control_.requested_by("border-tac") is None
    assert control_.waiting_for("border-tac") == [] and control_.expires("border-tac") is None


def test_permissions_by_role() -> None:
    control_ = make_control()
    assert control_.permissions(BOB) == {
        "border-tac": ["enable", "disable", "approve", "deny"],
        "county": ["enable", "disable", "approve", "deny"],
    }
    assert control_.permissions(DAVE) == {"open": ["enable", "disable"]}  # no consent to give
    assert control_.permissions(TECH) == {
        p: ["enable", "disable", "approve", "deny"] for p in ("border-tac", "county", "open")
    }
