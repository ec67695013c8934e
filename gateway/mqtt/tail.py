"""`crosspatch tail`: a dispatcher's live view of the call log, read from the MQTT broker.

Subscribes with QoS 1 to `PREFIX/GW/calls` and `PREFIX/GW/events` (GW `+`: every gateway on the
broker) and prints one line per call start, call end, alarm and patch change:

    2026-11-28 05:10:01Z peace-arch border-tac  CALL  rcmp-1 RCMP rcmp/tac2 -> usbp-1 USBP usbp/ch4
    2026-11-28 05:10:05Z peace-arch border-tac  END   rcmp-1 4.2 s carrier_drop peak -12.0 dBFS
    2026-11-28 05:13:02Z peace-arch ALARM timeout usbp-1: transmitter keyed 180 s without a break
    2026-11-28 05:09:58Z peace-arch PATCH border-tac pending by alice: waiting for usbp
    2026-11-28 05:09:58Z peace-arch PATCH border-tac enabled by bob

`ptt` and `carrier` events (several per call) only with `--all`. With a config, agencies show as
its display names and countries. Anything that is not a crosspatch event is one `?` line, never a
crash. The broker may come and go: a line on stderr says it waits (once per outage, not per
attempt), another when it is back. What was published meanwhile is not replayed: a live view.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import aiomqtt
from aiomqtt.exceptions import MqttConnectError
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
from gateway.mqtt.topics import Topics

BACKOFF_MIN_S = 0.5
BACKOFF_MAX_S = 5.0  # a person is watching: never make them wait long once the broker is back
RAW_CHARS = 200  # of a payload that is not an event, shown as is
REPEATS_KEPT = 4096  # (gateway, seq, time) remembered to drop QoS 1 repeats

# CONNACK codes that no retry can cure (MQTT 3.1.1: 4, 5; MQTT 5: 0x86, 0x87, 0x8C).
LOGIN_REFUSED = frozenset({4, 5, 134, 135, 140})


class TailError(UserError):
    """A command line or settings `tail` cannot work with; one line."""


@dataclass(frozen=True)
class TailSettings:
    mqtt: MqttSettings
    password: str | None
    tls: aiomqtt.TLSParameters | None
    gateway: str = "+"
    show_all: bool = False
    # agency id -> how it is shown, e.g. "Royal Canadian Mounted Police (E Division) [CA]"
    agencies: Mapping[str, str] = field(default_factory=dict)

    @property
    def topics(self) -> Topics:
        return Topics(self.mqtt.topic_prefix, self.gateway)


def tail_settings(
    *,
    url: str | None,
    config: Path | None,
    gateway: str | None,
    username: str | None,
    password_file: Path | None,
    show_all: bool = False,
) -> TailSettings:
    """The broker, login and topics from the command line and the config.

    The config gives agency names and the topic prefix; its `mqtt:` section (URL, login, TLS
    files, protocol) is used when no --mqtt names another broker, with --username and
    --password-file taking the place of its login.
    """
    if password_file is not None and username is None:
        raise TailError("--password-file needs --username")
    gw = gateway or "+"
    if gw != "+" and not re.fullmatch(NAME_PATTERN, gw):
        raise TailError(f"--gateway must be a gateway id like peace-arch, or + (got '{gw}')")
    cfg = load_config(config) if config is not None else None
    agencies = (
        {aid: f"{a.name} [{a.country}]" for aid, a in cfg.agencies.items()}
        if cfg is not None
        else {}
    )
    if url is None:
        if cfg is None:
            raise TailError("name the broker: --mqtt URL, or --config FILE with an mqtt: section")
        if cfg.mqtt is None:
            raise TailError(f"{config} has no mqtt: section; name the broker with --mqtt URL")
        login: dict[str, Any] = {}
        if username is not None:
            login = {"username": username, "password_file": password_file}
        mqtt = cfg.mqtt.model_copy(update=login)
        label = "--password-file" if username is not None else PASSWORD_FILE
    else:
        prefix = cfg.mqtt.topic_prefix if cfg is not None and cfg.mqtt is not None else None
        try:
            mqtt = MqttSettings(
                url=url,
                username=username,
                password_file=password_file,
                **({"topic_prefix": prefix} if prefix else {}),
            )
        except ValidationError as exc:  # the URL's rule, in the config checker's words
            raise TailError(f"--mqtt: {exc.errors()[0]['msg']}") from None
        label = "--password-file"
    try:
        password = read_password(mqtt.password_file, label)
        tls = tls_parameters(mqtt)
    except MqttSetupError as exc:
        raise TailError(str(exc)) from None
    return TailSettings(
        mqtt=mqtt,
        password=password,
        tls=tls,
        gateway=gw,
        show_all=show_all,
        agencies=agencies,
    )


# --- one line per message -------------------------------------------------------------------


class _NotAnEvent(Exception):
    pass


class EventLines:
    """Turns one MQTT message into the line a person reads (None: not shown)."""

    def __init__(self, agencies: Mapping[str, str], show_all: bool = False) -> None:
        self.agencies = agencies
        self.show_all = show_all

    def line(self, topic: str, payload: bytes) -> str | None:
        try:
            event = json.loads(payload)
            if not isinstance(event, dict):
                raise _NotAnEvent
            text = self._event(event)
        except (ValueError, KeyError, TypeError, AttributeError, _NotAnEvent):
            text = f"? {topic}: {_raw(payload)} (not a crosspatch event)"
        return None if text is None else _printable(text)

    def _event(self, event: dict[str, Any]) -> str | None:
        kind = _text(event["type"])
        head = f"{_when(event['time'])} {_text(event['gateway'])}"
        if kind == "call_start":
            dests = ", ".join(self._port(d) for d in _list(event["destinations"])) or "nobody"
            return f"{head} {_text(event['patch'])}  CALL  {self._port(event['source'])} -> {dests}"
        if kind == "call_end":
            recording = event["recording"]
            rec = f" rec {_text(recording)}" if recording is not None else ""
            return (
                f"{head} {_text(event['patch'])}  END   {_text(event['source']['port'])} "
                f"{_number(event['duration_s']):.1f} s {_text(event['reason'])} "
                f"peak {_number(event['peak_dbfs']):.1f} dBFS{rec}"
            )
        if kind == "alarm":
            where = event.get("port", event.get("patch"))
            at = f" {_text(where)}" if where is not None else ""
            return f"{head} ALARM {_text(event['kind'])}{at}: {_text(event['detail'])}"
        if kind == "patch":
            line = (
                f"{head} PATCH {_text(event['patch'])} {_text(event['state'])} "
                f"by {_text(event['by'])}"
            )
            waiting = event.get("waiting_for")
            if isinstance(waiting, list) and waiting:  # who the other dispatchers are waiting on
                line += f": waiting for {', '.join(_text(a) for a in waiting)}"
            return line
        if kind in ("ptt", "carrier"):
            if not self.show_all:
                return None
            on = "on" if _flag(event["on"]) else "off"
            if kind == "ptt":
                return f"{head} PTT   {_text(event['port'])} {on} ({_text(event['reason'])})"
            return f"{head} CARRIER {_text(event['port'])} {on}"
        # A type newer than this program: still shown, with what it says.
        rest = {k: v for k, v in event.items() if k not in ("type", "gateway", "seq", "time")}
        return f"{head} {kind} {json.dumps(rest, separators=(',', ':'), ensure_ascii=False)}"

    def _port(self, ref: Any) -> str:
        agency = _text(ref["agency"])
        shown = self.agencies.get(agency, agency.upper())
        return f"{_text(ref['port'])} {shown} {_text(ref['talkgroup'])}"


def _when(value: Any) -> str:
    moment = datetime.fromisoformat(_text(value).replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise _NotAnEvent
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise _NotAnEvent
    return value


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _NotAnEvent
    return float(value)


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _NotAnEvent
    return value


def _list(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise _NotAnEvent
    return value


def _raw(payload: bytes) -> str:
    text = " ".join(payload.decode("utf-8", errors="replace").split())
    if not text:
        return "(empty)"
    return text if len(text) <= RAW_CHARS else text[: RAW_CHARS - 3] + "..."


def _printable(text: str) -> str:
    # Whatever anyone published must not drive the dispatcher's terminal (escape sequences).
    return "".join(c if c.isprintable() else "?" for c in text)


class _Repeats:
    """QoS 1 is at least once: an event seen again after a reconnect is dropped."""

    def __init__(self) -> None:
        self._order: deque[tuple[Any, ...]] = deque()
        self._seen: set[tuple[Any, ...]] = set()

    def seen(self, payload: bytes) -> bool:
        try:
            event = json.loads(payload)
            key = (event["gateway"], event["seq"], event["time"])
            hash(key)
        except (ValueError, KeyError, TypeError):
            return False
        if key in self._seen:
            return True
        self._seen.add(key)
        self._order.append(key)
        if len(self._order) > REPEATS_KEPT:
            self._seen.discard(self._order.popleft())
        return False


# --- following the broker -------------------------------------------------------------------


def _client(settings: TailSettings) -> aiomqtt.Client:
    return user_client(settings.mqtt, settings.password, settings.tls, "tail")


def _refused(granted: Any) -> bool:
    code = getattr(granted, "value", granted)
    return isinstance(code, int) and code >= 0x80


async def follow(settings: TailSettings, out: TextIO, err: TextIO) -> None:
    """Prints the broker's call log until cancelled; raises TailError if the login is refused."""
    topics = settings.topics
    wanted = [topics.calls, topics.events]
    lines = EventLines(settings.agencies, settings.show_all)
    repeats = _Repeats()
    url = settings.mqtt.url
    delay = BACKOFF_MIN_S
    said = False  # "waiting" said for this outage: once per outage, not per attempt
    while True:
        connected = False
        try:
            async with _client(settings) as client:
                granted = await client.subscribe([(t, 1) for t in wanted])
                for topic, code in zip(wanted, granted, strict=False):
                    if _refused(code):
                        _say(err, f"the broker does not let us read {topic} ({code}): see its ACL")
                _say(err, f"following {', '.join(wanted)} on {url}")
                connected, said, delay = True, False, BACKOFF_MIN_S
                async for message in client.messages:
                    payload = message.payload
                    data = payload if isinstance(payload, bytes) else str(payload or "").encode()
                    if repeats.seen(data):
                        continue
                    line = lines.line(str(message.topic), data)
                    if line is not None:
                        print(line, file=out, flush=True)
        except aiomqtt.MqttError as exc:
            code = getattr(exc, "rc", None)
            if isinstance(exc, MqttConnectError) and getattr(code, "value", code) in LOGIN_REFUSED:
                raise TailError(
                    f"the broker at {url} refused the login ({exc}): check --username and "
                    "--password-file (or the config's mqtt.username and mqtt.password_file)"
                ) from None
            why = str(exc).strip() or type(exc).__name__
            if connected:
                _say(err, f"lost the broker at {url} ({why}); waiting for it to come back")
            elif not said:
                _say(err, f"waiting for the broker at {url} ({why}); retrying")
            said = True
        await asyncio.sleep(delay)
        delay = min(delay * 2, BACKOFF_MAX_S)


def _say(err: TextIO, text: str) -> None:
    print(f"crosspatch tail: {text}", file=err, flush=True)


async def _until_stopped(settings: TailSettings, out: TextIO, err: TextIO) -> None:
    # Ctrl-C and SIGTERM end the view quietly; only a refused login ends it with an error.
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    following = asyncio.ensure_future(follow(settings, out, err))
    stopping = asyncio.ensure_future(stop.wait())
    done: set[asyncio.Future[Any]] = set()
    try:
        done, _ = await asyncio.wait({following, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (following, stopping):
            task.cancel()
        await asyncio.gather(following, stopping, return_exceptions=True)
    if following in done:
        following.result()  # a refused login (TailError) or a closed stdout


def run_tail(settings: TailSettings, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    """Follows the broker until Ctrl-C or SIGTERM (exit 0)."""
    try:
        asyncio.run(_until_stopped(settings, out, err))
    except KeyboardInterrupt:  # before the loop took over SIGINT
        return 0
    except BrokenPipeError:  # `crosspatch tail | head`: the reader is gone, so are we
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, out.fileno())  # no second error when Python flushes stdout at exit
        return 0
    return 0
