"""The configuration as pydantic models: shapes, ranges, and the rules inside one section.

Every model forbids unknown keys: a misspelt `hang_ms` must be an error, never a silently ignored
safety setting. Rules that need two keys of one section (a simulated radio with a sound card, an
RTP link without encryption) live in the section's model validator and report each problem at the
key it concerns. Rules that look across sections (does this talkgroup exist, do two radios share a
serial line) are in `references.py` and run only once every section is well-formed.

Each section is a module of `gateway.config.sections`; this module joins them into `Config` and
re-exports their names, so `from gateway.config.models import Radio` works as it always has.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from gateway.config.sections.access import Access, Dispatcher
from gateway.config.sections.agencies import Agency, Talkgroup
from gateway.config.sections.announcements import (
    Announcement,
    Announcements,
    BuiltinAnnouncement,
    PatchId,
    Tone,
)
from gateway.config.sections.common import (
    ANNOUNCEMENT_TONE_HZ,
    ANNOUNCEMENT_TONE_MS,
    CAT_DRIVER_NAMES,
    CTCSS_TONES_HZ,
    DCS_CODES,
    DEFAULT_CM108_COS_BUTTON,
    DEFAULT_CM108_GPIO,
    DEFAULT_RIGCTLD_HOST,
    DEFAULT_RIGCTLD_PORT,
    DEFAULT_VOX_THRESHOLD_DBFS,
    DEVICE_RATES_HZ,
    MAX_ANNOUNCEMENT_S,
    NAME_PATTERN,
    NAME_RE,
    RULE_ERROR,
    SERIAL_DRIVERS,
    SERIAL_PTT_METHODS,
    SERIAL_SQUELCH_METHODS,
    STANDARD_BAUDS,
    Cm108Button,
    ConfigPath,
    CtcssTone,
    HostPort,
    Megahertz,
    Name,
    RuleProblems,
    StrictModel,
    TalkgroupRef,
    check_name,
    nearest_ctcss_tone,
    rule_error,
    split_host_port,
    split_talkgroup_ref,
)
from gateway.config.sections.links import (
    LINK_FRAME_MS,
    USRP_MAX_TALKGROUP_ID,
    USRP_ONLY_KEYS,
    USRP_TIMEOUT_PINGS,
    Link,
    is_loopback_or_private,
)
from gateway.config.sections.metrics import DEFAULT_METRICS_LISTEN, MetricsSettings
from gateway.config.sections.mqtt import MqttSettings
from gateway.config.sections.patches import Member, MemberItem, Patch
from gateway.config.sections.radios import (
    AudioSettings,
    ControlSettings,
    LinkTiming,
    PortSettings,
    PttSettings,
    Radio,
    SimulatedRadio,
    SquelchSettings,
    Timing,
    Traffic,
)
from gateway.config.sections.recording import RecordingSettings
from gateway.core.timing import DEFAULT_FRAME_MS, frame_samples

# Every name of the sections stays importable from here, as before the split.
__all__ = [
    "ANNOUNCEMENT_TONE_HZ",
    "ANNOUNCEMENT_TONE_MS",
    "CAT_DRIVER_NAMES",
    "CTCSS_TONES_HZ",
    "DCS_CODES",
    "DEFAULT_CM108_COS_BUTTON",
    "DEFAULT_CM108_GPIO",
    "DEFAULT_METRICS_LISTEN",
    "DEFAULT_RIGCTLD_HOST",
    "DEFAULT_RIGCTLD_PORT",
    "DEFAULT_VOX_THRESHOLD_DBFS",
    "DEVICE_RATES_HZ",
    "LINK_FRAME_MS",
    "MAX_ANNOUNCEMENT_S",
    "NAME_PATTERN",
    "NAME_RE",
    "RULE_ERROR",
    "SERIAL_DRIVERS",
    "SERIAL_PTT_METHODS",
    "SERIAL_SQUELCH_METHODS",
    "STANDARD_BAUDS",
    "UNIX_SOCKET_PATH_MAX",
    "USRP_MAX_TALKGROUP_ID",
    "USRP_ONLY_KEYS",
    "USRP_TIMEOUT_PINGS",
    "Access",
    "Agency",
    "Announcement",
    "Announcements",
    "AudioSettings",
    "BuiltinAnnouncement",
    "Cm108Button",
    "Config",
    "ConfigPath",
    "ControlSettings",
    "CtcssTone",
    "Dispatcher",
    "GatewaySettings",
    "HostPort",
    "Link",
    "LinkTiming",
    "Megahertz",
    "Member",
    "MemberItem",
    "MetricsSettings",
    "MqttSettings",
    "Name",
    "Patch",
    "PatchId",
    "PortSettings",
    "PttSettings",
    "Radio",
    "RecordingSettings",
    "RuleProblems",
    "SimulatedRadio",
    "SquelchSettings",
    "StrictModel",
    "Talkgroup",
    "TalkgroupRef",
    "Timing",
    "Tone",
    "Traffic",
    "check_name",
    "is_loopback_or_private",
    "nearest_ctcss_tone",
    "rule_error",
    "split_host_port",
    "split_talkgroup_ref",
]


# --- the whole file ----------------------------------------------------------------------------


# sizeof(sockaddr_un.sun_path) - 1 on Linux: a longer control socket path cannot be bound.
UNIX_SOCKET_PATH_MAX = 107


SITE_MAX_CHARS = 100


class GatewaySettings(StrictModel):
    id: Name
    # A display name of the site for consoles ("Peace Arch / Pacific Highway"); free text.
    site: str | None = None
    frame_ms: Literal[10, 20, 40] = DEFAULT_FRAME_MS
    state_dir: ConfigPath = Path("/var/lib/crosspatch")
    control_socket: ConfigPath | None = None

    @field_validator("site")
    @classmethod
    def _check_site(cls, value: str | None) -> str | None:
        if value is not None and not (
            1 <= len(value) <= SITE_MAX_CHARS and value.isprintable() and value.strip()
        ):
            raise rule_error(
                f"site must be 1 to {SITE_MAX_CHARS} printable characters on one line (a name "
                f"for consoles, like 'Peace Arch / Pacific Highway'); got {len(value)} characters"
                + ("" if value.isprintable() else " with a control character")
            )
        return value

    @model_validator(mode="after")
    def _check_socket_path(self) -> GatewaySettings:
        # `run` could not bind it: refused here, so that a config `check` accepts is one `run`
        # starts.
        path = self.control_socket_path
        size = len(os.fsencode(path))
        if size > UNIX_SOCKET_PATH_MAX:
            problems = RuleProblems()
            key = "control_socket" if self.control_socket is not None else "state_dir"
            problems.add(
                (key,),
                f"the control socket {path} is {size} bytes long; a Unix socket path has at "
                f"most {UNIX_SOCKET_PATH_MAX}: give gateway.control_socket a shorter path",
            )
            problems.raise_if_any(type(self).__name__)
        return self

    @property
    def control_socket_path(self) -> Path:
        """The control socket: as configured, else `control.sock` in the state directory."""
        return self.control_socket or self.state_dir / "control.sock"

    @property
    def samples_per_frame(self) -> int:
        return frame_samples(self.frame_ms)


class Config(StrictModel):
    """A whole gateway site; `gateway.config.load_config` builds it and checks its references."""

    gateway: GatewaySettings
    agencies: dict[Name, Agency]
    radios: dict[Name, Radio] = Field(default_factory=dict)
    links: dict[Name, Link] = Field(default_factory=dict)
    patches: dict[Name, Patch] = Field(default_factory=dict)
    access: Access = Field(default_factory=Access)
    mqtt: MqttSettings | None = None
    recording: RecordingSettings | None = None
    announcements: Announcements | None = None
    metrics: MetricsSettings | None = None

    def talkgroup(self, ref: str) -> Talkgroup:
        """The talkgroup `agency/name`; raises KeyError if it is not defined."""
        agency, name = split_talkgroup_ref(ref)
        try:
            return self.agencies[agency].talkgroups[name]
        except KeyError:
            raise KeyError(f"talkgroup {ref!r} is not defined") from None

    def talkgroup_refs(self) -> list[str]:
        """Every talkgroup as `agency/name`, in config order."""
        return [
            f"{agency_name}/{talkgroup_name}"
            for agency_name, agency in self.agencies.items()
            for talkgroup_name in agency.talkgroups
        ]

    def ports(self) -> list[str]:
        """Every port name in config order: radios first, then links."""
        return [*self.radios, *self.links]

    def port(self, name: str) -> Radio | Link:
        """The radio or link called `name`; raises KeyError."""
        if name in self.radios:
            return self.radios[name]
        if name in self.links:
            return self.links[name]
        raise KeyError(f"port {name!r} is not defined")

    def port_talkgroup(self, name: str) -> str | None:
        """The talkgroup (`agency/name`) the port `name` always serves, None for a pool radio;
        raises KeyError."""
        return self.port(name).talkgroup

    def ports_of_talkgroup(self, ref: str) -> list[str]:
        """Dedicated ports (not pool radios) that serve talkgroup `ref`, in config order."""
        return [name for name in self.ports() if self.port_talkgroup(name) == ref]

    def pool_radios(self) -> list[str]:
        """Radios tuned on demand (`pool:`), in config order."""
        return [name for name, radio in self.radios.items() if radio.pool is not None]

    def pool_candidates(self, ref: str) -> list[str]:
        """Pool radios that can be tuned to talkgroup `ref`: their bands_mhz cover both its
        rx_mhz and tx_mhz. In config order; none for a talkgroup without frequencies. Raises
        KeyError if `ref` is not defined."""
        talkgroup = self.talkgroup(ref)
        rx, tx = talkgroup.rx_mhz, talkgroup.tx_mhz
        if rx is None or tx is None:
            return []
        return [
            name
            for name in self.pool_radios()
            if self.radios[name].in_bands(rx) and self.radios[name].in_bands(tx)
        ]
