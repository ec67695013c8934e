"""Access: the dispatchers and technicians who may command the gateway."""

from __future__ import annotations

from pydantic import Field, model_validator

from gateway.config.sections.common import Name, RuleProblems, StrictModel

# --- access, MQTT, recording -------------------------------------------------------------------


class Dispatcher(StrictModel):
    agency: Name


class Access(StrictModel):
    """Who may command the gateway: dispatchers act for their agency, technicians for the site."""

    dispatchers: dict[Name, Dispatcher] = Field(default_factory=dict)
    technicians: list[Name] = Field(default_factory=list)
    # A request still waiting for another agency's approval after this long is withdrawn: an
    # approval given much later may no longer fit the situation it was asked for.
    pending_expiry_s: int = Field(default=900, ge=10, le=86400)

    def is_principal(self, user: str) -> bool:
        return user in self.dispatchers or user in self.technicians

    @model_validator(mode="after")
    def _check_roles(self) -> Access:
        problems = RuleProblems()
        for index, user in enumerate(self.technicians):
            if user in self.technicians[:index]:
                problems.add(("technicians", index), f"technician '{user}' is listed twice", user)
            elif user in self.dispatchers:
                problems.add(
                    ("technicians", index),
                    f"'{user}' is already a dispatcher; a user is a dispatcher or a technician, "
                    "not both",
                    user,
                )
        problems.raise_if_any(type(self).__name__)
        return self
