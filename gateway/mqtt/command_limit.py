"""How many MQTT commands each login may have run: a token bucket per login, and a count of
what was refused, for one audit line per login and second instead of one per command.

A broker login can publish as fast as its connection carries (a stuck script, a hostile or
careless client): thousands of commands a second, each a task, a reply and an audit. So each
login gets `per_s` commands a second with bursts of up to `burst`; what is over is not run,
only counted, and the count is audited as one refusal ("1974 commands refused: rate limit").
Every command is then either run or counted. A login's flood never takes another's share.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Bucket:
    tokens: float
    at: float


class CommandLimiter:
    """Per-login token buckets; `take` says whether a command may run now."""

    def __init__(
        self, per_s: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if per_s <= 0 or burst < 1:
            raise ValueError("a command limit needs per_s > 0 and burst >= 1")
        self.per_s = per_s
        self.burst = burst
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._refused: dict[str, int] = {}
        self.refused_total = 0

    def take(self, login: str) -> bool:
        """True if `login` may run one more command now (and counts it); False counts it as
        refused, to be reported by `refusals`."""
        now = self._clock()
        bucket = self._buckets.get(login)
        if bucket is None:
            bucket = self._buckets[login] = _Bucket(float(self.burst), now)
        else:
            bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.at) * self.per_s)
            bucket.at = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return True
        self.refuse(login)
        return False

    def refuse(self, login: str) -> None:
        """Counts a command of `login` as refused (over its rate, or no room to queue it)."""
        self._refused[login] = self._refused.get(login, 0) + 1
        self.refused_total += 1

    def refusals(self) -> dict[str, int]:
        """The commands refused per login since the last call, and forgets them."""
        refused, self._refused = self._refused, {}
        return refused

    def forget_idle(self) -> None:
        """Drops the buckets of logins that are full again (nothing to remember about them)."""
        now = self._clock()
        full = [
            login
            for login, bucket in self._buckets.items()
            if bucket.tokens + (now - bucket.at) * self.per_s >= self.burst
        ]
        for login in full:
            del self._buckets[login]
