"""MQTT: the broker the gateway publishes its events and states to."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from gateway.config.sections.common import ConfigPath, RuleProblems, StrictModel, rule_error

_MQTT_URL_RE = re.compile(r"(mqtts?)://([^\s:/@\[\]]+|\[[0-9A-Fa-f:.]+\])(?::(\d{1,5}))?/?")


class MqttSettings(StrictModel):
    url: str
    topic_prefix: str = "crosspatch"
    username: str | None = None
    password_file: ConfigPath | None = None
    ca_file: ConfigPath | None = None
    cert_file: ConfigPath | None = None
    key_file: ConfigPath | None = None
    protocol: Literal["3.1.1", "5"] = "5"
    # Disk the durable outbox may fill while the broker is away (about 1 KiB an event).
    outbox_mb: int = Field(default=256, ge=1, le=100_000)
    # Commands each login may have run over MQTT: so many a second, in bursts of up to so many;
    # more are refused and counted, in one audit a second (gateway.mqtt.command_limit).
    commands_per_s: float = Field(default=5.0, gt=0, le=1000)
    command_burst: int = Field(default=20, ge=1, le=10_000)

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        match = _MQTT_URL_RE.fullmatch(value)
        if match is None:
            raise rule_error(
                f"url must be mqtt://host[:port] or mqtts://host[:port] (got '{value}')"
            )
        if match.group(3) is not None and not 1 <= int(match.group(3)) <= 65535:
            raise rule_error(f"the port in url must be between 1 and 65535 (got {match.group(3)})")
        return value

    @field_validator("topic_prefix")
    @classmethod
    def _check_topic_prefix(cls, value: str) -> str:
        if not value or value.startswith("/") or value.endswith("/") or "//" in value:
            raise rule_error(f"topic_prefix must be topic levels like 'crosspatch' (got '{value}')")
        if any(char in value for char in "+#\0"):
            raise rule_error(f"topic_prefix may not contain the wildcards + or # (got '{value}')")
        return value

    @field_validator("protocol", mode="before")
    @classmethod
    def _protocol_as_text(cls, value: Any) -> Any:
        # `protocol: 5` is read by YAML as a number.
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @model_validator(mode="after")
    def _check_client_certificate(self) -> MqttSettings:
        problems = RuleProblems()
        if (self.cert_file is None) != (self.key_file is None):
            missing = "key_file" if self.key_file is None else "cert_file"
            problems.add((missing,), "a client certificate needs both cert_file and key_file")
        problems.raise_if_any(type(self).__name__)
        return self

    @property
    def tls(self) -> bool:
        return self.url.startswith("mqtts:")

    @property
    def host(self) -> str:
        match = _MQTT_URL_RE.fullmatch(self.url)
        assert match is not None  # checked by the validator
        return match.group(2).strip("[]")

    @property
    def port(self) -> int:
        match = _MQTT_URL_RE.fullmatch(self.url)
        assert match is not None  # checked by the validator
        if match.group(3) is not None:
            return int(match.group(3))
        return 8883 if self.tls else 1883
