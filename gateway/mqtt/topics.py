"""The MQTT topic tree of one gateway (docs/design.md, "MQTT topics"), in one place.

    PREFIX/GW/status          online | offline (retained; offline is the last will)
    PREFIX/GW/ports/PORT      a port's state (retained)
    PREFIX/GW/patches/PATCH   a patch's state and members (retained)
    PREFIX/GW/info            the gateway's id, site, version and agencies (retained)
    PREFIX/GW/access/USER     what USER may command on this gateway (retained)
    PREFIX/GW/calls/active/CALL_ID         a call in progress: its call_start (retained)
    PREFIX/GW/alarms/active/KIND/SUBJECT   an active alarm (retained; SUBJECT: port or gateway)
    PREFIX/GW/calls           call_start, call_end
    PREFIX/GW/events          ptt, carrier, alarm, patch
    PREFIX/GW/audit           audit
    PREFIX/GW/cmd/USER        commands from USER (the broker's ACL binds USER to the login)
    PREFIX/GW/reply/USER      replies, when the command gave no MQTT 5 response topic

`docs/mqtt-api.yaml` documents the same tree and payloads for integrators.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.core.events import Event

CALL_TYPES = frozenset({"call_start", "call_end"})


@dataclass(frozen=True)
class Topics:
    prefix: str
    gateway: str

    @property
    def base(self) -> str:
        return f"{self.prefix}/{self.gateway}"

    @property
    def status(self) -> str:
        return f"{self.base}/status"

    @property
    def calls(self) -> str:
        return f"{self.base}/calls"

    @property
    def events(self) -> str:
        return f"{self.base}/events"

    @property
    def audit(self) -> str:
        return f"{self.base}/audit"

    @property
    def commands(self) -> str:
        """The subscription that receives every user's commands."""
        return f"{self.base}/cmd/+"

    @property
    def info(self) -> str:
        return f"{self.base}/info"

    @property
    def present_trees(self) -> tuple[str, ...]:
        """The subscriptions that find what a gateway left retained in its trees of entries
        that come and go (calls, alarms, logins): after a crash some are out of date."""
        return (
            f"{self.base}/calls/active/#",
            f"{self.base}/alarms/active/#",
            f"{self.base}/access/#",
        )

    def access(self, user: str) -> str:
        return f"{self.base}/access/{user}"

    def present(self, path: str) -> str:
        """A present-state entry (`calls/active/ID`, `alarms/active/KIND/SUBJECT`)."""
        return f"{self.base}/{path}"

    def in_present_trees(self, topic: str) -> bool:
        return topic.startswith(
            (f"{self.base}/calls/active/", f"{self.base}/alarms/active/", f"{self.base}/access/")
        )

    def port(self, port: str) -> str:
        return f"{self.base}/ports/{port}"

    def patch(self, patch: str) -> str:
        return f"{self.base}/patches/{patch}"

    def reply(self, user: str) -> str:
        return f"{self.base}/reply/{user}"

    def for_event(self, event: Event) -> str:
        """Where an event is published."""
        kind = event["type"]
        if kind in CALL_TYPES:
            return self.calls
        if kind == "audit":
            return self.audit
        return self.events

    def command_user(self, topic: str) -> str | None:
        """USER of `PREFIX/GW/cmd/USER`, or None for any other topic."""
        head = f"{self.base}/cmd/"
        if not topic.startswith(head):
            return None
        user = topic[len(head) :]
        return user if user and "/" not in user else None
