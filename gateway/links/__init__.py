"""Links: ports that are audio streams to other gateways and networks (RTP with ED-137B
signalling, optionally SRTP). `rtp` and `jitter` are pure packet and buffer logic; `rtp_link` runs
one link on the daemon's asyncio loop; `link_ports` is a site's links as one port bank."""

from __future__ import annotations


class LinkError(Exception):
    """A link that cannot be set up (key file, address, codec): one line saying which and why."""
