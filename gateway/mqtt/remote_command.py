"""Commands to a gateway over the MQTT broker: `crosspatch patch ... --mqtt URL`.

A dispatcher at their agency's console has no shell on the gateway box; the broker is where they
meet it. This sends the documented command (`{"command": "patch.enable", "patch": ..., "id": ...}`,
docs/mqtt-api.yaml "Commands") on `PREFIX/GW/cmd/USER` under the dispatcher's own broker login and
waits for its reply, which the CLI prints exactly as it prints the control socket's.

- MQTT 5 (the default): the reply comes on a response topic of this request alone,
  `PREFIX/GW/reply/USER/<random>` (inside what the documented ACL lets USER read), with correlation
  data. MQTT 3.1.1 (`protocol: "3.1.1"` in the config's `mqtt:` section): on `PREFIX/GW/reply/USER`,
  matched by the command's `id`.
- Which gateway: `--gateway GW`, else the gateways whose retained `PREFIX/+/status` is `online`.
  Retained messages come right after the subscription is granted, so a short quiet spell after it
  ends the roll call.
- Every failure is one line (`RemoteError`): the broker unreachable, the login refused, the gateway
  offline or unknown, several gateways online for an action, no reply in time (the command may still
  have been carried out: the gateway got it, or may get it, but its reply did not come back).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiomqtt
from aiomqtt.exceptions import MqttConnectError
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from pydantic import ValidationError

from gateway.config import load_config
from gateway.config.models import NAME_PATTERN, MqttSettings
from gateway.core.errors import UserError
from gateway.mqtt.connect import (
    PASSWORD_FILE,
    MqttSetupError,
    read_password,
    tls_parameters,
    user_client,
)
from gateway.mqtt.tail import LOGIN_REFUSED  # CONNACK codes no retry can cure

# The broker sends the retained statuses right behind the subscription's grant, back to back:
ROLL_CALL_FIRST_S = 0.5  # none within this after the grant: there is none
ROLL_CALL_QUIET_S = 0.2  # none for this long after one: that was the last
ROLL_CALL_MOST_S = 3.0  # a broker with very many gateways still answers within this


class RemoteError(UserError):
    """A command that could not be carried to a gateway or back; one line."""


@dataclass(frozen=True)
class RemoteSettings:
    mqtt: MqttSettings
    password: str | None
    tls: aiomqtt.TLSParameters | None
    username: str
    gateway: str | None  # None: the one gateway online

    @property
    def prefix(self) -> str:
        return self.mqtt.topic_prefix


def remote_settings(
    *,
    url: str,
    config: Path | None,
    username: str | None,
    password_file: Path | None,
    gateway: str | None,
    topic_prefix: str | None,
) -> RemoteSettings:
    """The broker, login and topics from the command line (the options of `tail`, plus
    --topic-prefix); with a config, its `mqtt:` section gives the prefix, protocol and TLS files,
    and its login when none is given."""
    if password_file is not None and username is None:
        raise RemoteError("--password-file needs --username")
    if gateway is not None and not re.fullmatch(NAME_PATTERN, gateway):
        raise RemoteError(f"--gateway must be a gateway id like peace-arch (got '{gateway}')")
    cfg = load_config(config) if config is not None else None
    base: dict[str, Any] = {}
    if cfg is not None and cfg.mqtt is not None:
        base = cfg.mqtt.model_dump(exclude={"url"})
        if username is not None:  # the command line's login replaces the config's
            base.update(username=username, password_file=password_file)
    else:
        base = {"username": username, "password_file": password_file}
    if topic_prefix is not None:
        base["topic_prefix"] = topic_prefix
    try:
        mqtt = MqttSettings(url=url, **base)
    except ValidationError as exc:  # the config checker's words for the URL or prefix
        error = exc.errors()[0]
        where = "--topic-prefix" if error["loc"][:1] == ("topic_prefix",) else "--mqtt"
        raise RemoteError(f"{where}: {error['msg'].removeprefix('Value error, ')}") from None
    if mqtt.username is None:
        raise RemoteError("--mqtt needs --username: commands go to the broker under your login")
    label = "--password-file" if username is not None else PASSWORD_FILE
    try:
        password = read_password(mqtt.password_file, label)
        tls = tls_parameters(mqtt)
    except MqttSetupError as exc:
        raise RemoteError(str(exc)) from None
    return RemoteSettings(mqtt, password, tls, mqtt.username, gateway)


# --- the exchange ------------------------------------------------------------------------------


@asynccontextmanager
async def _connected(settings: RemoteSettings) -> AsyncIterator[aiomqtt.Client]:
    mqtt = settings.mqtt
    client = user_client(mqtt, settings.password, settings.tls, "cmd")
    try:
        await client.__aenter__()
    except MqttConnectError as exc:
        code = getattr(exc, "rc", None)
        if getattr(code, "value", code) in LOGIN_REFUSED:
            raise RemoteError(
                f"the broker at {mqtt.url} refused the login of '{mqtt.username}': "
                "check --username and --password-file"
            ) from None
        raise RemoteError(f"the broker at {mqtt.url} refused the connection ({exc})") from None
    except aiomqtt.MqttError as exc:
        why = str(exc).strip() or type(exc).__name__
        raise RemoteError(f"cannot reach the broker at {mqtt.url} ({why})") from None
    try:
        yield client
    finally:
        with contextlib.suppress(aiomqtt.MqttError):  # already gone: nothing of ours waits on it
            await client.__aexit__(None, None, None)


async def _next_message(client: aiomqtt.Client, within_s: float) -> aiomqtt.Message | None:
    try:
        async with asyncio.timeout(max(within_s, 0.0)):
            return await anext(aiter(client.messages))
    except TimeoutError:
        return None


async def gateway_states(
    client: aiomqtt.Client, prefix: str, gateway: str | None
) -> dict[str, str]:
    """Gateway id -> its retained status ("online", "offline"), of `gateway` or of every one."""
    topic = f"{prefix}/{gateway or '+'}/status"
    granted = await client.subscribe(topic, qos=1)
    if any(getattr(code, "value", code) >= 0x80 for code in granted):
        raise RemoteError(f"the broker does not let this login read {topic}: see its ACL")
    loop = asyncio.get_running_loop()
    until = loop.time() + ROLL_CALL_MOST_S
    states: dict[str, str] = {}
    wait = ROLL_CALL_FIRST_S
    while (left := until - loop.time()) > 0:
        message = await _next_message(client, min(wait, left))
        if message is None:
            break
        wait = ROLL_CALL_QUIET_S
        parts = str(message.topic).split("/")
        payload = message.payload
        if len(parts) >= 2 and isinstance(payload, bytes | bytearray) and payload:
            states[parts[-2]] = bytes(payload).decode("utf-8", errors="replace").strip()
            if gateway is not None:  # the one status asked for: no need to wait for more
                break
    await client.unsubscribe(topic)
    return states


def choose_gateways(
    states: Mapping[str, str], wanted: str | None, url: str, *, several_ok: bool
) -> list[str]:
    """The gateway(s) to ask, or a RemoteError that says why there is none."""
    if wanted is not None:
        state = states.get(wanted)
        if state is None:
            raise RemoteError(f"no gateway '{wanted}' on the broker at {url} (no status from it)")
        if state != "online":
            raise RemoteError(f"gateway '{wanted}' is {state or 'not online'}")
        return [wanted]
    online = sorted(gw for gw, state in states.items() if state == "online")
    if not online:
        known = f" (known but offline: {', '.join(sorted(states))})" if states else ""
        raise RemoteError(f"no gateway is online on the broker at {url}{known}")
    if len(online) > 1 and not several_ok:
        raise RemoteError(
            f"several gateways are online ({', '.join(online)}): name one with --gateway"
        )
    return online


async def _ask_one(
    client: aiomqtt.Client,
    settings: RemoteSettings,
    gateway: str,
    command: dict[str, Any],
    timeout: float,
) -> dict[str, Any]:
    base = f"{settings.prefix}/{gateway}"
    user = settings.username
    request_id = uuid.uuid4().hex
    body = {**command, "id": request_id}
    own = f"{base}/reply/{user}"
    # The user's own reply topic too: a gateway speaking MQTT 3.1.1 answers there, by `id`.
    reply_topics = [own]
    properties = None
    if settings.mqtt.protocol == "5":
        reply_topics.append(f"{own}/{request_id[:12]}")
        properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        properties.ResponseTopic = reply_topics[-1]
        properties.CorrelationData = request_id.encode()
    granted = await client.subscribe([(topic, 1) for topic in reply_topics])
    if any(getattr(code, "value", code) >= 0x80 for code in granted):
        raise RemoteError(
            f"the broker does not let '{user}' read {reply_topics[-1]}: see its ACL "
            f"(pattern read {settings.prefix}/+/reply/%u/#)"
        )
    await client.publish(f"{base}/cmd/{user}", json.dumps(body), qos=1, properties=properties)
    loop = asyncio.get_running_loop()
    until = loop.time() + timeout
    try:
        while (left := until - loop.time()) > 0:
            message = await _next_message(client, left)
            if message is None:
                break
            if str(message.topic) not in reply_topics:
                continue
            reply = _reply(message.payload)
            if reply is None:
                continue
            correlation = getattr(message.properties, "CorrelationData", None)
            if correlation == request_id.encode() or reply.get("id") == request_id:
                return reply
    finally:
        await client.unsubscribe(reply_topics)
    raise RemoteError(
        f"no reply from gateway '{gateway}' within {timeout:g} s; the command may still have been "
        "carried out (look with `crosspatch patch list`)"
    )


def _reply(payload: Any) -> dict[str, Any] | None:
    try:
        reply = json.loads(payload)
    except (TypeError, ValueError):
        return None
    return reply if isinstance(reply, dict) and "ok" in reply else None


async def _ask(
    settings: RemoteSettings, command: dict[str, Any], timeout: float, several_ok: bool
) -> dict[str, dict[str, Any]]:
    async with _connected(settings) as client:
        try:
            states = await gateway_states(client, settings.prefix, settings.gateway)
            chosen = choose_gateways(
                states, settings.gateway, settings.mqtt.url, several_ok=several_ok
            )
            if len(chosen) == 1:
                return {chosen[0]: await _ask_one(client, settings, chosen[0], command, timeout)}
            replies: dict[str, dict[str, Any]] = {}
            for gw in chosen:  # one silent gateway must not hide the others' answers
                try:
                    replies[gw] = await _ask_one(client, settings, gw, command, timeout)
                except RemoteError as exc:
                    replies[gw] = {"ok": False, "error": str(exc)}
            return replies
        except aiomqtt.MqttError as exc:
            why = str(exc).strip() or type(exc).__name__
            raise RemoteError(
                f"lost the broker at {settings.mqtt.url} ({why}); the command may still have "
                "been carried out (look with `crosspatch patch list`)"
            ) from None


def ask(
    settings: RemoteSettings,
    command: str,
    fields: Mapping[str, Any] | None = None,
    *,
    timeout: float,
    several_ok: bool = False,
) -> dict[str, dict[str, Any]]:
    """Each chosen gateway's reply to `command` (`{"ok": ..., "result" | "error": ...}`), by
    gateway id: one gateway unless `several_ok` (then every gateway online). Raises RemoteError."""
    if timeout <= 0:
        raise RemoteError("--timeout must be a positive number of seconds")
    return asyncio.run(_ask(settings, {"command": command, **(fields or {})}, timeout, several_ok))
