"""Fixtures every test module may use: a real mosquitto (`broker`, see support/mqtt_env.py).

Registered here, before any test module imports `mqtt_env` for its classes, so pytest can
rewrite its asserts. Every test is checked for what it leaves running (support/leaks.py).

The property-based tests' profiles are set here too: `suite` (bounded, the default) and `deep`
(`HYPOTHESIS_PROFILE=deep`, many more examples, for a hunt), or any count
(`HYPOTHESIS_MAX_EXAMPLES=N`)."""

import os

import pytest
from hypothesis import HealthCheck, settings

from tests.support.leaks import LeakCheck

pytest_plugins = ["tests.support.mqtt_env"]


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(LeakCheck(), "leak-check")


_PROFILE = {
    "deadline": None,  # a busy machine is slow, not wrong
    "database": None,  # nothing is written into the checkout
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
}
settings.register_profile("suite", max_examples=150, **_PROFILE)  # type: ignore[arg-type]
settings.register_profile("deep", max_examples=5000, **_PROFILE)  # type: ignore[arg-type]
# bench/hostile_input.py sets the count itself.
_EXAMPLES = os.environ.get("HYPOTHESIS_MAX_EXAMPLES")
if _EXAMPLES:
    settings.register_profile("count", max_examples=int(_EXAMPLES), **_PROFILE)  # type: ignore[arg-type]
settings.load_profile("count" if _EXAMPLES else os.environ.get("HYPOTHESIS_PROFILE", "suite"))
