"""Fixtures every test module may use: a real mosquitto (`broker`, see mqtt_env.py).

Registered here, before any test module imports `mqtt_env` for its classes, so pytest can
rewrite its asserts."""

pytest_plugins = ["mqtt_env"]
