"""Per-login command limits: bursts, the steady rate, and every refusal counted."""

from __future__ import annotations

import pytest

from gateway.mqtt.command_limit import CommandLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_then_the_rate_and_every_refusal_counted() -> None:
    clock = Clock()
    limiter = CommandLimiter(per_s=5, burst=20, clock=clock)
    taken = [limiter.take("alice") for _ in range(1000)]
    assert taken.count(True) == 20
    assert limiter.refusals() == {"alice": 980}
    assert limiter.refusals() == {}  # reported once
    clock.now += 1.0  # five more a second
    assert [limiter.take("alice") for _ in range(10)].count(True) == 5
    assert limiter.refusals() == {"alice": 5}
    assert limiter.refused_total == 985


def test_one_login_flooding_takes_nothing_from_another() -> None:
    limiter = CommandLimiter(per_s=5, burst=20, clock=Clock())
    for _ in range(500):
        limiter.take("alice")
    assert limiter.take("tech1")
    assert limiter.refusals() == {"alice": 480}


def test_an_idle_login_is_forgotten_once_full_again() -> None:
    clock = Clock()
    limiter = CommandLimiter(per_s=5, burst=20, clock=clock)
    for _ in range(20):
        limiter.take("alice")
    limiter.forget_idle()
    assert not limiter.take("alice")  # still empty: remembered
    clock.now += 4.0
    limiter.forget_idle()
    assert [limiter.take("alice") for _ in range(25)].count(True) == 20


def test_a_limit_must_let_something_through() -> None:
    with pytest.raises(ValueError, match="per_s > 0 and burst >= 1"):
        CommandLimiter(per_s=0, burst=20)
