"""Patches: which talkgroups are joined, by whom, at what priority."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BeforeValidator, Field, model_validator

from gateway.config.sections.common import (
    Name,
    RuleProblems,
    StrictModel,
    TalkgroupRef,
    rule_error,
    split_talkgroup_ref,
)

if TYPE_CHECKING:
    from gateway.config.models import Config

# --- patches -----------------------------------------------------------------------------------


class Member(StrictModel):
    """One talkgroup of a patch, and whether it talks, listens or both."""

    talkgroup: TalkgroupRef
    mode: Literal["talk+listen", "listen", "talk"] = "talk+listen"
    priority: int = Field(default=0, ge=0, le=100)

    @property
    def agency(self) -> str:
        return split_talkgroup_ref(self.talkgroup)[0]

    @property
    def talks(self) -> bool:
        """Heard by the patch (its receive audio is sent to the others)."""
        return self.mode != "listen"

    @property
    def listens(self) -> bool:
        """Hears the patch (the others' audio is transmitted on it)."""
        return self.mode != "talk"


def _member_short_form(value: Any) -> Any:
    if isinstance(value, str):
        return {"talkgroup": value}
    if not isinstance(value, dict):
        raise rule_error(
            "a member is 'agency/talkgroup' or a mapping {talkgroup, mode, priority} "
            f"(got {value!r})"
        )
    return value


MemberItem = Annotated[
    Member, BeforeValidator(_member_short_form, json_schema_input_type=str | Member)
]


class Patch(StrictModel):
    members: list[MemberItem]
    floor: Literal["first", "priority", "mix"] = "first"
    enabled: bool = False
    consent: list[Name] | None = None
    announce: bool = True  # false: no announcements (enable, disable, id) for this patch

    def member_agencies(self) -> list[str]:
        """Agencies of the members, each once, in member order."""
        return list(dict.fromkeys(member.agency for member in self.members))

    def consent_agencies(self, cfg: Config | None = None) -> list[str]:
        """Agencies that must approve enabling: `consent`, or every member agency when omitted.

        `cfg` is accepted for callers that hold one; member agencies come from the references.
        """
        return list(self.consent) if self.consent is not None else self.member_agencies()

    @model_validator(mode="after")
    def _check_members(self) -> Patch:
        problems = RuleProblems()
        if len(self.members) < 2:
            problems.add(
                ("members",),
                f"a patch joins at least two talkgroups; this one has {len(self.members)}",
            )
        first_index: dict[str, int] = {}
        for index, member in enumerate(self.members):
            if member.talkgroup in first_index:
                problems.add(
                    ("members", index),
                    f"talkgroup '{member.talkgroup}' is already member "
                    f"{first_index[member.talkgroup]} of this patch",
                    member.talkgroup,
                )
            first_index.setdefault(member.talkgroup, index)
        for index, agency in enumerate(self.consent or []):
            if agency in (self.consent or [])[:index]:
                problems.add(("consent", index), f"agency '{agency}' is listed twice", agency)
        problems.raise_if_any(type(self).__name__)
        return self
