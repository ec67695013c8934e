"""The command layer: who may switch which patch, cross-agency consent, and the audit trail.

Every way of changing the patch table (a scenario, the control socket, MQTT) comes through
`PatchControl.execute`, so authorisation, consent and audit live in one place:
- a dispatcher may request, approve, deny or disable only patches that include a talkgroup of
  their agency; a technician may do everything (a technician's enable overrides consent and the
  audit record says so);
- a patch with consent agencies is `pending` after a dispatcher's request (which counts as their
  own agency's approval) and `enabled` only once a dispatcher of every consent agency approved;
- a pending request expires after `pending_expiry_s` (config `access`) if not every agency
  approved: the patch goes back to disabled, `by: expiry`;
- every command, accepted or refused, yields an `audit` event with the reason.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from gateway.config.errors import clip
from gateway.core.engine import EngineError, PatchEngine
from gateway.core.event_types import Audit, AuditResult, PatchChange
from gateway.core.events import Event
from gateway.core.timing import seconds_to_ticks


class Role(StrEnum):
    DISPATCHER = "dispatcher"
    TECHNICIAN = "technician"


@dataclass(frozen=True)
class Principal:
    name: str
    role: Role
    agency: str | None = None  # dispatchers only

    def describe(self) -> str:
        return f"{self.name} ({self.agency})" if self.agency else f"{self.name} (technician)"


# Who acts when a scenario names nobody, and what the config's own `enabled: true` is recorded as.
DEFAULT_TECHNICIAN = Principal("technician", Role.TECHNICIAN)
CONFIG_PRINCIPAL = Principal("config", Role.TECHNICIAN)
RELOAD_PRINCIPAL = Principal("reload", Role.TECHNICIAN)
RESTORE_PRINCIPAL = Principal("restore", Role.TECHNICIAN)
EXPIRY_PRINCIPAL = Principal("expiry", Role.TECHNICIAN)


class PatchState(StrEnum):
    DISABLED = "disabled"
    PENDING = "pending"
    ENABLED = "enabled"


class Command(StrEnum):
    ENABLE = "patch.enable"
    DISABLE = "patch.disable"
    APPROVE = "patch.approve"
    DENY = "patch.deny"


@dataclass
class PatchStatus:
    state: PatchState = PatchState.DISABLED
    approved_by: dict[str, str] = field(default_factory=dict)  # agency -> principal name
    pending_since: int = 0  # the tick the request became pending
    requested_by: str | None = None  # the login whose request made it pending, if known


@dataclass(frozen=True)
class PatchPolicy:
    """What the command layer must know of a patch: its agencies and whose consent it needs."""

    agencies: frozenset[str]
    consent: tuple[str, ...]


@dataclass
class CommandResult:
    ok: bool
    message: str  # the reason: what happened, or why it was refused
    events: list[Event]
    state: PatchState | None = None

    def as_reply(self) -> dict[str, Any]:
        if self.ok:
            return {"ok": True, "result": {"state": self.state, "message": self.message}}
        return {"ok": False, "error": self.message}


class _Refused(Exception):
    pass


def _verb(command: Command) -> str:
    """`enable` of `patch.enable`: the word a console's access list uses."""
    return command.value.removeprefix("patch.")


class PatchControl:
    def __init__(
        self,
        engine: PatchEngine,
        policies: Mapping[str, PatchPolicy],
        principals: Mapping[str, Principal],
        pending_expiry_s: float | None = None,
    ) -> None:
        self.engine = engine
        self.policies = dict(policies)
        self.principals = dict(principals)
        self.status = {name: PatchStatus() for name in self.policies}
        self.pending_expiry_s = pending_expiry_s
        frame_ms = engine.clock.frame_ms
        self._expiry_ticks = (
            None
            if pending_expiry_s is None
            else max(1, seconds_to_ticks(pending_expiry_s, frame_ms))
        )

    def principal(self, name: str | None) -> Principal | None:
        if name is None:
            return DEFAULT_TECHNICIAN
        return self.principals.get(name)

    def state(self, patch: str) -> PatchState:
        return self.status[patch].state

    def approved_by(self, patch: str) -> list[str]:
        return list(self.status[patch].approved_by.values())

    def waiting_for(self, patch: str) -> list[str]:
        """The consent agencies that have not approved a pending request yet ([] otherwise)."""
        status = self.status[patch]
        if status.state is not PatchState.PENDING:
            return []
        return [a for a in self.policies[patch].consent if a not in status.approved_by]

    def requested_by(self, patch: str) -> str | None:
        status = self.status[patch]
        return status.requested_by if status.state is PatchState.PENDING else None

    def expires(self, patch: str) -> str | None:
        """When a pending request will be withdrawn (`pending_expiry_s`), else None."""
        status = self.status[patch]
        if status.state is not PatchState.PENDING or self._expiry_ticks is None:
            return None
        return self.engine.clock.iso(status.pending_since + self._expiry_ticks)

    def permissions(self, who: Principal) -> dict[str, list[str]]:
        """Per patch, the commands (`enable`, `disable`, `approve`, `deny`) that `execute`
        would authorise for `who` in some state of the patch: what a console may offer. The
        same rules as `_authorise` and `_pending`; the state of the moment decides the rest."""
        verbs: dict[str, list[str]] = {}
        for patch, policy in self.policies.items():
            if who.role is Role.TECHNICIAN:
                verbs[patch] = [_verb(c) for c in Command]
                continue
            if who.agency not in policy.agencies:
                continue
            allowed = [Command.ENABLE, Command.DISABLE]
            if who.agency in policy.consent:
                allowed += [Command.APPROVE, Command.DENY]
            verbs[patch] = [_verb(c) for c in allowed]
        return verbs

    def execute(self, who: Principal, command: Command, patch: str) -> CommandResult:
        """Runs one command; never raises for a refused one: the result says why."""
        events: list[Event] = []
        try:
            policy = self._policy(patch)
            if command is Command.ENABLE:
                message = self._enable(who, patch, policy, events)
            elif command is Command.APPROVE:
                message = self._approve(who, patch, policy, events)
            elif command is Command.DENY:
                message = self._deny(who, patch, policy, events)
            else:
                message = self._disable(who, patch, policy, events)
        except _Refused as refusal:
            events.append(self._audit(who, command, patch, "refused", str(refusal)))
            return CommandResult(False, str(refusal), events)
        events.append(self._audit(who, command, patch, "accepted", message))
        return CommandResult(True, message, events, self.status[patch].state)

    def enable_from_config(self, names: Sequence[str]) -> list[Event]:
        """Enables the patches a config marks `enabled: true` (the technician who wrote it)."""
        events: list[Event] = []
        for name in names:
            events.extend(self.execute(CONFIG_PRINCIPAL, Command.ENABLE, name).events)
        return events

    def expire_pending(self) -> list[Event]:
        """Withdraws requests that waited longer than `pending_expiry_s` for their approvals."""
        if self._expiry_ticks is None:
            return []
        events: list[Event] = []
        now = self.engine.tick_index
        for patch, status in self.status.items():
            if (
                status.state is PatchState.PENDING
                and now - status.pending_since >= self._expiry_ticks
            ):
                missing = [a for a in self.policies[patch].consent if a not in status.approved_by]
                status.state = PatchState.DISABLED
                status.approved_by = {}
                events.append(self._patch_event(patch, EXPIRY_PRINCIPAL))
                events.append(
                    self._audit(
                        EXPIRY_PRINCIPAL,
                        Command.ENABLE,
                        patch,
                        "refused",
                        f"request for '{patch}' expired after {self.pending_expiry_s:g} s "
                        f"without approval by {', '.join(missing)}",
                    )
                )
        return events

    def successor(
        self,
        engine: PatchEngine,
        policies: Mapping[str, PatchPolicy],
        principals: Mapping[str, Principal],
        enabled_in_config: Sequence[str],
    ) -> tuple[PatchControl, list[Event]]:
        """The command layer for a reloaded patch table, on `engine` (from
        `PatchEngine.successor`), keeping every patch's state where it still holds:
        - a patch the engine kept running stays enabled with its approvals;
        - a patch that changed comes back enabled only if the approvals it had still cover the
          consent it now needs (a technician's enable covers all); otherwise it is pending for
          the agencies that have not agreed to the new membership;
        - a pending patch stays pending; a patch gone from the config is disabled;
        - a new patch marked `enabled: true` in the config is enabled (its first start).
        """
        new = PatchControl(engine, policies, principals, self.pending_expiry_s)
        events: list[Event] = []
        for name, status in self.status.items():
            if status.state is PatchState.DISABLED:
                continue
            if name not in new.policies:
                events.append(new._patch_event(name, RELOAD_PRINCIPAL, PatchState.DISABLED))
                continue
            target = new.status[name]
            target.approved_by = dict(status.approved_by)
            if name in engine.enabled_patches:
                target.state = PatchState.ENABLED
                continue
            consent = new.policies[name].consent
            covered = "*" in status.approved_by or all(a in status.approved_by for a in consent)
            if status.state is PatchState.ENABLED and covered:
                try:
                    new._activate(RELOAD_PRINCIPAL, name, events)
                except _Refused:
                    target.state = PatchState.DISABLED
                    target.approved_by = {}
                    events.append(new._patch_event(name, RELOAD_PRINCIPAL))
                continue
            target.approved_by = {a: who for a, who in status.approved_by.items() if a in consent}
            target.pending_since = (
                status.pending_since if status.state is PatchState.PENDING else engine.tick_index
            )
            target.requested_by = (
                status.requested_by if status.state is PatchState.PENDING else RELOAD_PRINCIPAL.name
            )
            target.state = PatchState.PENDING
            events.append(new._patch_event(name, RELOAD_PRINCIPAL))
        fresh = [n for n in enabled_in_config if n not in self.status and n in new.policies]
        events.extend(new.enable_from_config(fresh))
        return new, events

    def restore(
        self, name: str, state: PatchState, approved_by: Mapping[str, str]
    ) -> tuple[list[Event], str | None]:
        """Puts a patch back as the persisted state had it (after a restart); returns its
        events and, if it could not be restored, why."""
        status = self.status[name]
        status.approved_by = dict(approved_by)
        events: list[Event] = []
        if state is PatchState.ENABLED:
            try:
                self._activate(RESTORE_PRINCIPAL, name, events)
            except _Refused as refusal:
                status.approved_by = {}
                return events, str(refusal)
        elif state is PatchState.PENDING:
            status.state = PatchState.PENDING
            status.pending_since = self.engine.tick_index  # a fresh window after a restart
            events.append(self._patch_event(name, RESTORE_PRINCIPAL))
        return events, None

    # ------------------------------------------------------------------ the commands
    def _policy(self, patch: str) -> PatchPolicy:
        if patch not in self.policies:
            known = ", ".join(sorted(self.policies)) or "none"
            raise _Refused(f"no patch named '{clip(patch)}' (patches: {known})")
        return self.policies[patch]

    def _authorise(self, who: Principal, patch: str, policy: PatchPolicy, verb: str) -> None:
        if who.role is Role.TECHNICIAN:
            return
        if who.agency not in policy.agencies:
            raise _Refused(
                f"{who.describe()} may not {verb} '{patch}': it has no talkgroup of {who.agency}"
            )

    def _enable(self, who: Principal, patch: str, policy: PatchPolicy, events: list[Event]) -> str:
        self._authorise(who, patch, policy, "enable")
        status = self.status[patch]
        if status.state is PatchState.ENABLED:
            return f"'{patch}' is already enabled"
        self._check_conflict(patch)
        if who.role is Role.TECHNICIAN:
            status.approved_by = {"*": who.name}
            self._activate(who, patch, events)
            waived = " (consent waived by a technician)" if policy.consent else ""
            return f"'{patch}' enabled{waived}"
        assert who.agency is not None
        if status.state is PatchState.DISABLED:
            status.approved_by = {}
        status.approved_by.setdefault(who.agency, who.name)
        return self._advance(who, patch, policy, events)

    def _approve(self, who: Principal, patch: str, policy: PatchPolicy, events: list[Event]) -> str:
        status = self._pending(who, patch, policy, "approve")
        if who.role is Role.TECHNICIAN:
            self._check_conflict(patch)
            for agency in policy.consent:
                status.approved_by.setdefault(agency, who.name)
            return self._advance(who, patch, policy, events)
        assert who.agency is not None
        if who.agency not in policy.consent:
            raise _Refused(f"'{patch}' does not need the consent of {who.agency}")
        if who.agency in status.approved_by:
            by = status.approved_by[who.agency]
            raise _Refused(f"{who.agency} already approved '{patch}' (by {by})")
        self._check_conflict(patch)
        status.approved_by[who.agency] = who.name
        return self._advance(who, patch, policy, events)

    def _deny(self, who: Principal, patch: str, policy: PatchPolicy, events: list[Event]) -> str:
        status = self._pending(who, patch, policy, "deny")
        if who.role is Role.DISPATCHER and who.agency not in policy.consent:
            raise _Refused(f"'{patch}' does not need the consent of {who.agency}")
        status.state = PatchState.DISABLED
        status.approved_by = {}
        events.append(self._patch_event(patch, who))
        return f"request for '{patch}' denied"

    def _disable(self, who: Principal, patch: str, policy: PatchPolicy, events: list[Event]) -> str:
        self._authorise(who, patch, policy, "disable")
        status = self.status[patch]
        if status.state is PatchState.DISABLED:
            return f"'{patch}' is already disabled"
        was = status.state
        events.extend(self.engine.disable_patch(patch))
        status.state = PatchState.DISABLED
        status.approved_by = {}
        events.append(self._patch_event(patch, who))
        return (
            f"'{patch}' disabled"
            if was is PatchState.ENABLED
            else f"request for '{patch}' withdrawn"
        )

    # ------------------------------------------------------------------ helpers
    def _pending(self, who: Principal, patch: str, policy: PatchPolicy, verb: str) -> PatchStatus:
        self._authorise(who, patch, policy, verb)
        status = self.status[patch]
        if status.state is not PatchState.PENDING:
            raise _Refused(f"'{patch}' is {status.state}, not pending: there is nothing to {verb}")
        return status

    def _advance(self, who: Principal, patch: str, policy: PatchPolicy, events: list[Event]) -> str:
        status = self.status[patch]
        missing = [a for a in policy.consent if a not in status.approved_by]
        if not missing:
            self._activate(who, patch, events)
            return f"'{patch}' enabled"
        if status.state is not PatchState.PENDING:
            status.state = PatchState.PENDING
            status.pending_since = self.engine.tick_index
            status.requested_by = who.name
            events.append(self._patch_event(patch, who))
        return f"'{patch}' pending: waiting for approval by {', '.join(missing)}"

    def _activate(self, who: Principal, patch: str, events: list[Event]) -> None:
        try:
            self.engine.enable_patch(patch)
        except EngineError as exc:
            raise _Refused(str(exc)) from None
        self.status[patch].state = PatchState.ENABLED
        events.append(self._patch_event(patch, who))

    def _check_conflict(self, patch: str) -> None:
        """Refuses early (at request time, not only at the last approval) a patch that would
        share a port with an enabled one, or that needs a pool radio when none is free."""
        if patch in self.engine.enabled_patches:
            return
        try:
            self.engine.check_enable(patch)
        except EngineError as exc:
            raise _Refused(str(exc)) from None

    def _now(self) -> str:
        return self.engine.clock.iso(self.engine.tick_index)

    def _patch_event(
        self, patch: str, who: Principal, state: PatchState | None = None
    ) -> PatchChange:
        event: PatchChange = {
            "type": "patch",
            "time": self._now(),
            "patch": patch,
            "state": str(state or self.status[patch].state),
            "by": who.name,
        }
        if event["state"] == PatchState.PENDING:
            event["waiting_for"] = self.waiting_for(patch)
        return event

    def _audit(
        self, who: Principal, command: Command, patch: str, result: AuditResult, reason: str
    ) -> Audit:
        return {
            "type": "audit",
            "time": self._now(),
            "principal": who.name,
            "command": str(command),
            "args": {"patch": patch},
            "result": result,
            "reason": reason,
        }
