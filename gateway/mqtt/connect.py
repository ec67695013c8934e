"""The login and TLS set-up of every MQTT connection (the gateway's publisher, `tail` and
`patch ... --mqtt`).

Both read the password from a file and check the certificate files the same way, so a bad file
is reported in the same one line, whichever command met it: `MqttSetupError`, which `tail` passes
on as its own `TailError`.
"""

from __future__ import annotations

import ssl
import uuid
from pathlib import Path

import aiomqtt

from gateway.config.models import MqttSettings
from gateway.core.errors import UserError

PASSWORD_FILE = "mqtt.password_file"  # how the config's password file is named in errors


class MqttSetupError(UserError):
    """The MQTT settings cannot be used (an unreadable password or certificate file); one line."""


def read_password(path: Path | None, label: str = PASSWORD_FILE) -> str | None:
    """The password in `path` (its line end stripped); None without a file. `label`: how the
    file is named in the error (the config key or the command-line option)."""
    if path is None:
        return None
    try:
        return path.read_text().rstrip("\r\n")
    except OSError as exc:
        raise MqttSetupError(f"{label} {path}: {exc.strerror or exc}") from None


def tls_parameters(settings: MqttSettings) -> aiomqtt.TLSParameters | None:
    """The TLS parameters of an `mqtts://` broker (the server's certificate always checked);
    None for plain `mqtt://`."""
    if not settings.tls:
        return None
    for name in ("ca_file", "cert_file", "key_file"):
        path = getattr(settings, name)
        if path is not None and not path.is_file():
            raise MqttSetupError(f"mqtt.{name} {path}: no such file")
    return aiomqtt.TLSParameters(
        ca_certs=str(settings.ca_file) if settings.ca_file else None,  # None: the system's CAs
        certfile=str(settings.cert_file) if settings.cert_file else None,
        keyfile=str(settings.key_file) if settings.key_file else None,
        cert_reqs=ssl.CERT_REQUIRED,
        tls_version=ssl.PROTOCOL_TLS_CLIENT,
    )


def check_settings(settings: MqttSettings) -> None:
    """Raises `MqttSetupError` (one line) if the settings cannot be used: an unreadable password
    file, a missing certificate file."""
    read_password(settings.password_file)
    tls_parameters(settings)


def user_client(
    settings: MqttSettings,
    password: str | None,
    tls: aiomqtt.TLSParameters | None,
    purpose: str,
) -> aiomqtt.Client:
    """A client for a person's command (`tail`, `patch ... --mqtt`): their login, a fresh clean
    session named `crosspatch-PURPOSE-xxxxxxxx` (readable in the broker's log)."""
    version = (
        aiomqtt.ProtocolVersion.V5 if settings.protocol == "5" else aiomqtt.ProtocolVersion.V311
    )
    return aiomqtt.Client(
        settings.host,
        settings.port,
        username=settings.username,
        password=password,
        identifier=f"crosspatch-{purpose}-{uuid.uuid4().hex[:8]}",
        protocol=version,
        tls_params=tls,
        keepalive=15,
        timeout=10,
    )
