"""Agencies and their talkgroups: the voice channels the gateway can patch."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, field_validator, model_validator

from gateway.config.sections.common import (
    CtcssTone,
    Megahertz,
    Name,
    RuleProblems,
    StrictModel,
    _check_dcs,
    rule_error,
)

# --- agencies and talkgroups -------------------------------------------------------------------


def _empty_when_null(value: Any) -> Any:
    # `ops:` with nothing after it is YAML for null; for a talkgroup it plainly means "no settings".
    return {} if value is None else value


class Talkgroup(StrictModel):
    """One voice channel of an agency: an analog channel, or a network talkgroup on a link."""

    rx_mhz: Megahertz | None = None
    tx_mhz: Megahertz | None = None
    mode: Literal["nfm", "fm", "am"] | None = None
    ctcss_hz: CtcssTone | None = None
    dcs: Annotated[str, BeforeValidator(_check_dcs)] | None = None
    id: int | None = Field(default=None, ge=0)

    @property
    def has_frequencies(self) -> bool:
        return self.rx_mhz is not None

    @model_validator(mode="after")
    def _check_channel(self) -> Talkgroup:
        problems = RuleProblems()
        # One frequency given means simplex: receive and transmit on it.
        if self.rx_mhz is None:
            self.rx_mhz = self.tx_mhz
        if self.tx_mhz is None:
            self.tx_mhz = self.rx_mhz
        if self.ctcss_hz is not None and self.dcs is not None:
            problems.add(("dcs",), "give ctcss_hz or dcs, not both", self.dcs)
        if self.rx_mhz is None:
            for key in ("mode", "ctcss_hz", "dcs"):
                if getattr(self, key) is not None:
                    problems.add(
                        (key,),
                        f"{key} applies to a radio channel: add rx_mhz/tx_mhz, or remove {key} "
                        "for a network talkgroup",
                        getattr(self, key),
                    )
        problems.raise_if_any(type(self).__name__)
        return self


class Agency(StrictModel):
    name: str = Field(min_length=1)
    country: str
    talkgroups: dict[Name, Annotated[Talkgroup, BeforeValidator(_empty_when_null)]]

    @field_validator("country")
    @classmethod
    def _check_country(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Z]{2}", value):
            hint = f"; write '{value.upper()}'" if re.fullmatch(r"[A-Za-z]{2}", value) else ""
            raise rule_error(
                f"country must be an ISO 3166 alpha-2 code in upper case, like CA or US "
                f"(got '{value}'){hint}"
            )
        return value
