"""A request as a transport hands it to the command router: the bytes, or the transport's own
note in their place. A module of its own so a transport (the MQTT publisher process) can name
them without importing the router, the patch control and the engine behind it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Oversized:
    """What a transport passes instead of a payload too large to parse (it is audited)."""

    size: int


@dataclass(frozen=True)
class RateLimited:
    """What a transport passes for the commands of one login it refused over its rate limit,
    for one audit of them all."""

    count: int
    per_s: float
    burst: int


# A request as a transport hands it over: the bytes received, or what the transport did instead
# of passing them. Out of band: no payload a client sends can pass for a transport's own note.
Payload = bytes | Oversized | RateLimited
