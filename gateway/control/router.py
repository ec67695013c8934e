"""One command from any transport (the control socket, MQTT): who asks, may they, run it, audit it.

Both transports end here, so there is one authorisation, consent and audit path:
- the principal: the control socket's peer is a technician (the socket's file mode already limits
  who can connect); an MQTT user is whatever `access` makes them (dispatcher of an agency, or
  technician) and nobody else;
- patch commands go to `PatchControl`, which authorises per agency, runs consent and audits;
- every other command (status, patch.list, port.key_test, reload) and every request that is
  refused before reaching a command (not JSON, no command, unknown user, unknown command, too
  large) is audited here, with the reason;
- the reply is `{"id", "ok": true, "result"}` or `{"id", "ok": false, "error": "one sentence"}`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from gateway.config import Config
from gateway.config.errors import clip
from gateway.control.patch_control import Command, Principal, Role
from gateway.control.payload import Oversized, Payload, RateLimited
from gateway.core.event_types import Audit, AuditResult
from gateway.core.events import Event

PATCH_COMMANDS = {c.value: c for c in Command}
TECHNICIAN_COMMANDS = ("port.key_test", "reload")
KEY_TEST_MAX_S = 10.0


class CommandRefused(Exception):
    """A command that was not carried out; the message is the one-sentence reason."""


class CommandHost(Protocol):
    """What the daemon offers the router (all on its asyncio loop)."""

    async def status(self) -> dict[str, Any]: ...

    async def patch_list(self) -> list[dict[str, Any]]: ...

    async def patch_command(
        self, who: Principal, command: Command, patch: str
    ) -> tuple[bool, str, str | None]: ...

    async def key_test(self, port: str, seconds: float) -> str: ...

    async def reload(self, by: str) -> dict[str, Any]: ...

    async def emit(self, make: Callable[[str], list[Event]]) -> None:
        """Emits the events `make(now)` builds, `now` being the engine's current event time."""


# Every command, with the string arguments it cannot do without. Declared once so every transport
# refuses an unknown command or a missing argument with the same words.
COMMANDS: dict[str, tuple[str, ...]] = {
    "status": (),
    "patch.list": (),
    "patch.enable": ("patch",),
    "patch.disable": ("patch",),
    "patch.approve": ("patch",),
    "patch.deny": ("patch",),
    "port.key_test": ("port",),
    "reload": (),
}


@dataclass(frozen=True)
class Request:
    command: str
    args: dict[str, Any]  # every key but `command` and `id`
    id: Any


class BadRequest(Exception):
    """A request that is not a command; the message is the sentence to answer."""

    def __init__(self, message: str, request_id: Any = None) -> None:
        super().__init__(message)
        self.request_id = request_id


def parse_request(data: Payload, what: str = "command") -> tuple[str, dict[str, Any], Any]:
    """One request (a control socket line without its newline, an MQTT payload) ->
    (command, args, id). Raises `BadRequest` with the sentence to answer; pure, so every bad
    input is easy to test."""
    if isinstance(data, Oversized):
        raise BadRequest(f"the {what} is {data.size} bytes; at most 16384 are accepted")
    if isinstance(data, RateLimited):
        raise BadRequest(
            f"{data.count} commands refused: rate limit ({data.per_s:g} a second, bursts of "
            f"{data.burst}); none of them was run"
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest(
            f"the {what} is not valid UTF-8 (bad byte at offset {exc.start})"
        ) from None
    try:
        message = json.loads(text)
    except RecursionError:
        raise BadRequest(f"the {what} is not JSON (it is nested too deeply)") from None
    except ValueError as exc:  # JSONDecodeError, and over-long integers
        raise BadRequest(f"the {what} is not JSON ({one_line(exc)})") from None
    if not isinstance(message, dict):
        raise BadRequest(f"the {what} must be a JSON object, not {json_kind(message)}")
    if "\\u" in text and _has_lone_surrogate(message):
        # Valid JSON, but not text: it could be neither audited nor answered as UTF-8.
        raise BadRequest(
            f"the {what} holds a lone UTF-16 surrogate (a \\ud800-\\udfff escape without its "
            "pair), which is not text"
        )
    request_id = message.get("id")
    command = message.get("command")
    known = ", ".join(COMMANDS)
    if command is None:
        raise BadRequest(f'the {what} has no "command" (known: {known})', request_id)
    if not isinstance(command, str):
        raise BadRequest(
            f'"command" must be a string, not {json_kind(command)} (known: {known})', request_id
        )
    if command not in COMMANDS:
        raise BadRequest(f"unknown command '{clip(command)}'; known: {known}", request_id)
    args = {key: value for key, value in message.items() if key not in ("command", "id")}
    for name in COMMANDS[command]:
        value = args.get(name)
        if not isinstance(value, str) or not value:
            raise BadRequest(
                f"'{command}' needs \"{name}\": the name of the {name}, as a string", request_id
            )
    return command, args, request_id


def _has_lone_surrogate(value: Any) -> bool:
    # A stack, not recursion: json.loads accepts nesting deeper than a recursive walk could go.
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return clip(text[0]) if text else type(exc).__name__


def audit_event(
    now: str, principal: str, command: str, args: dict[str, Any], result: AuditResult, reason: str
) -> Audit:
    return {
        "type": "audit",
        "time": now,
        "principal": principal,
        "command": command,
        "args": args,
        "result": result,
        "reason": reason,
    }


def principal_of(cfg: Config, user: str) -> Principal | None:
    """The principal an MQTT user is, by the config's `access` (None: nobody may act as them)."""
    dispatcher = cfg.access.dispatchers.get(user)
    if dispatcher is not None:
        return Principal(user, Role.DISPATCHER, dispatcher.agency)
    if user in cfg.access.technicians:
        return Principal(user, Role.TECHNICIAN)
    return None


class CommandRouter:
    def __init__(self, host: CommandHost, config: Callable[[], Config]) -> None:
        self._host = host
        self._config = config

    async def mqtt(self, user: str, payload: Payload) -> dict[str, Any]:
        """A command published on `cmd/USER`; never raises, the reply says what happened."""
        request_id: Any = None
        command = "?"
        args: dict[str, Any] = {}
        try:
            command, args, request_id = parse_request(payload)
            who = principal_of(self._config(), user)
            if who is None:
                raise BadRequest(
                    f"user '{user}' is not in this gateway's access list "
                    "(access.dispatchers or access.technicians)",
                    request_id,
                )
        except BadRequest as bad:
            await self._audit(user, command, args, "refused", str(bad))
            return {"id": bad.request_id, "ok": False, "error": str(bad)}
        return await self.run(who, Request(command, args, request_id))

    async def run(self, who: Principal, request: Request) -> dict[str, Any]:
        """Runs a parsed request for a known principal; never raises for a refusal."""
        try:
            result = await self._run(who, request)
        except CommandRefused as refusal:
            return {"id": request.id, "ok": False, "error": str(refusal)}
        return {"id": request.id, "ok": True, "result": result}

    async def _run(self, who: Principal, request: Request) -> dict[str, Any]:
        command, args = request.command, request.args
        patch_command = PATCH_COMMANDS.get(command)
        if patch_command is not None:
            patch = str(args["patch"])  # parse_request checked it
            ok, message, state = await self._host.patch_command(who, patch_command, patch)
            if not ok:  # PatchControl audited it
                raise CommandRefused(message)
            return {"patch": patch, "state": state, "message": message}
        if command in TECHNICIAN_COMMANDS and who.role is not Role.TECHNICIAN:
            await self._refuse(who, command, args, f"{command} is for technicians only")
        try:
            if command == "status":
                result = await self._host.status()
                reason = "status sent"
            elif command == "patch.list":
                result = {"patches": await self._host.patch_list()}
                reason = "patch list sent"
            elif command == "port.key_test":
                port, seconds = _key_test_args(args)
                reason = await self._host.key_test(port, seconds)
                result = {"port": port, "seconds": seconds, "message": reason}
            else:
                result = await self._host.reload(who.name)
                reason = "reloaded"
        except CommandRefused as refusal:
            await self._refuse(who, command, args, str(refusal))
        await self._audit(who.name, command, args, "accepted", reason)
        return result

    async def _refuse(self, who: Principal, command: str, args: dict[str, Any], why: str) -> None:
        await self._audit(who.name, command, args, "refused", why)
        raise CommandRefused(why)

    async def _audit(
        self, principal: str, command: str, args: dict[str, Any], result: AuditResult, reason: str
    ) -> None:
        # Only what an auditor needs and nothing a client could bloat the log with.
        kept = {k: v for k, v in list(args.items())[:8] if isinstance(v, str | int | float | bool)}
        kept = {k: (v[:200] if isinstance(v, str) else v) for k, v in kept.items()}
        await self._host.emit(
            lambda now: [audit_event(now, principal, command, kept, result, reason)]
        )


def _key_test_args(args: dict[str, Any]) -> tuple[str, float]:
    port = str(args["port"])  # parse_request checked it
    seconds = args.get("seconds", 3)
    if (
        isinstance(seconds, bool)
        or not isinstance(seconds, int | float)
        or not math.isfinite(seconds)
        or not 0.5 <= seconds <= KEY_TEST_MAX_S
    ):
        raise CommandRefused(f"seconds must be a number from 0.5 to {KEY_TEST_MAX_S:g}")
    return port, float(seconds)
