"""Network links (RTP and USRP): addresses, codecs, encryption and the frame they carry."""

from __future__ import annotations

import ipaddress
from typing import Literal

from pydantic import Field, model_validator

from gateway.config.sections.common import (
    ConfigPath,
    HostPort,
    RuleProblems,
    TalkgroupRef,
    split_host_port,
)
from gateway.config.sections.radios import LinkTiming, PortSettings

# --- links -------------------------------------------------------------------------------------

# Where plain RTP may go: loopback, and networks that never route across the internet.
_PRIVATE_NETWORKS = tuple(
    ipaddress.ip_network(net)
    for net in (
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "169.254.0.0/16",
        "fc00::/7",
        "fe80::/10",
    )
)


def is_loopback_or_private(host: str) -> bool:
    """Whether `host` (an address, or `localhost`) is a loopback or private address. Other host
    names are not: what they resolve to can change after the config was checked."""
    if host.lower() == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback or any(address in net for net in _PRIVATE_NETWORKS)


USRP_ONLY_KEYS = ("usrp_type_byte_order", "usrp_ping_s", "usrp_timeout_s")
USRP_TIMEOUT_PINGS = 3
USRP_MAX_TALKGROUP_ID = 0xFFFF_FFFF  # the header's talkgroup is a uint32


# RTP and USRP links carry 20 ms packets, one a frame: only a gateway of 20 ms frames drives them.
LINK_FRAME_MS = 20


class Link(PortSettings):
    """A port to another gateway or network: an RTP or USRP audio stream."""

    talkgroup: TalkgroupRef
    protocol: Literal["rtp", "usrp"]
    local: HostPort
    remote: HostPort
    codec: Literal["pcmu", "pcma", "dvi4", "opus"] = "pcmu"
    srtp_key_file: ConfigPath | None = None
    insecure: bool = False
    timing: LinkTiming = Field(default_factory=LinkTiming)
    duplex: Literal["half", "full"] = "full"
    # USRP only (gateway.links.usrp_link). The byte order of the header's `type` field: ASL and
    # DVSwitch put it little-endian, some other implementations big-endian.
    usrp_type_byte_order: Literal["little", "big"] = "little"
    # A PING (DVSwitch type 3, header only) after this long with nothing sent; 0: never. ASL
    # ignores header-only packets, so pinging it is harmless.
    usrp_ping_s: float = Field(default=1.0, ge=0, le=60)
    # The peer is down after this long unheard; None: never (ASL sends nothing while idle).
    usrp_timeout_s: float | None = Field(default=None, gt=0, le=3600)

    @property
    def local_address(self) -> tuple[str, int]:
        return split_host_port(self.local)

    @property
    def remote_address(self) -> tuple[str, int]:
        return split_host_port(self.remote)

    @model_validator(mode="after")
    def _check_security(self) -> Link:
        problems = RuleProblems()
        if self.protocol == "rtp":
            if self.srtp_key_file is None and not self.insecure:
                problems.add(
                    ("srtp_key_file",),
                    "an RTP link needs srtp_key_file, or insecure: true to send audio unencrypted "
                    "(an unencrypted link must be asked for)",
                )
            elif self.srtp_key_file is not None and self.insecure:
                problems.add(
                    ("insecure",),
                    "give srtp_key_file or insecure: true, not both",
                    self.insecure,
                )
            elif self.insecure and not is_loopback_or_private(self.remote_address[0]):
                problems.add(
                    ("insecure",),
                    f"insecure: true is only for a loopback or private remote address "
                    f"(127.0.0.0/8, ::1, 10/8, 172.16/12, 192.168/16, 169.254/16, fc00::/7, "
                    f"fe80::/10), and {self.remote_address[0]} is none: give srtp_key_file",
                    self.insecure,
                )
            for key in USRP_ONLY_KEYS:
                if key in self.model_fields_set:
                    problems.add(
                        (key,),
                        f"{key} applies to USRP links: remove it, or use protocol usrp",
                        getattr(self, key),
                    )
        else:
            if self.srtp_key_file is not None:
                problems.add(
                    ("srtp_key_file",),
                    "USRP has no encryption: remove srtp_key_file, or use protocol rtp",
                    str(self.srtp_key_file),
                )
            if "codec" in self.model_fields_set:
                problems.add(
                    ("codec",),
                    "USRP always carries 16-bit linear audio: remove codec",
                    self.codec,
                )
            host = self.remote_address[0]
            if not self.insecure and not is_loopback_or_private(host):
                problems.add(
                    ("remote",),
                    f"USRP audio is unencrypted and {host} is not a loopback or private address: "
                    "add insecure: true to send it there anyway, or use protocol rtp with "
                    "srtp_key_file",
                    self.remote,
                )
            self._check_usrp_timeout(problems)
        problems.raise_if_any(type(self).__name__)
        return self

    def _check_usrp_timeout(self, problems: RuleProblems) -> None:
        timeout, ping = self.usrp_timeout_s, self.usrp_ping_s
        # A peer configured like this link pings as often as we do: a timeout of fewer than
        # three of its pings would declare it down whenever one or two are lost.
        if timeout is not None and ping > 0 and timeout < USRP_TIMEOUT_PINGS * ping - 1e-9:
            problems.add(
                ("usrp_timeout_s",),
                f"usrp_timeout_s {timeout:g} is shorter than {USRP_TIMEOUT_PINGS} pings of "
                f"usrp_ping_s {ping:g}: make it at least {USRP_TIMEOUT_PINGS * ping:g}, so a peer "
                "pinging like this link is not declared down when a ping or two are lost",
                timeout,
            )
