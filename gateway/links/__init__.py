"""Links: ports that are audio streams to other gateways and networks (RTP with ED-137B
signalling, optionally SRTP; USRP, as AllStarLink and DVSwitch speak it). `rtp`, `usrp` and
`jitter` are pure packet and buffer logic; `rtp_link` and `usrp_link` run one link on the
daemon's asyncio loop, on the socket, queueing and online handling they share in `udp_link`
(`send_queue` wakes the loop once per tick for all of them); `link_ports` is a site's links as
one port bank."""

from __future__ import annotations

from gateway.core.errors import UserError


class LinkError(UserError):
    """A link that cannot be set up (key file, address, codec): one line saying which and why."""
