"""A real mosquitto broker for tests, on a free loopback port, and a client that watches topics.

`Broker` writes its own mosquitto.conf in a temporary folder: a listener on 127.0.0.1 and, where a
test needs them, a password file (made with `mosquitto_passwd`, as an operator would) and an ACL
file. It can be stopped and started again on the same port (a broker outage). Its persistence is off
unless asked for (`persistent=True`: sessions and their queued messages survive a restart, as a
production broker's would, so a durable subscriber misses nothing across an outage).

`Watcher` subscribes with paho-mqtt on its own network thread and keeps every message it gets,
so synchronous tests can wait for what they expect; it is closed with its broker at the latest,
so a test that fails half-way leaves no client thread behind. Use the `broker` fixture
(registered in conftest.py); it FAILS, never skips, when mosquitto is not installed:
scripts/setup installs it.
"""

from __future__ import annotations

import getpass
import json
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

MOSQUITTO = "/usr/sbin/mosquitto"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Broker:
    """One mosquitto on 127.0.0.1:`port` (see the module doc)."""

    def __init__(
        self,
        *,
        users: dict[str, str] | None = None,
        acl: str | None = None,
        persistent: bool = False,
        tls: bool = False,
        websockets: bool = False,
    ) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="crosspatch-mqtt-"))
        self.port = free_port()
        # A second listener for MQTT over WebSockets (the web console's browsers), same logins.
        self.ws_port = free_port() if websockets else None
        self.users = dict(users or {})
        self.acl = acl
        self.persistent = persistent
        self.tls = make_certificates(self.root / "tls") if tls else None
        self.log = self.root / "mosquitto.log"
        self._process: subprocess.Popen[bytes] | None = None
        self.watchers: list[Watcher] = []  # closed with the broker, even after a failed test
        self._write_config()

    @property
    def url(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        if self.ws_port is None:
            raise RuntimeError("this broker has no WebSockets listener (Broker(websockets=True))")
        return f"ws://127.0.0.1:{self.ws_port}"

    def _write_config(self) -> None:
        lines = [
            # Started as root, mosquitto would switch to its own user, which may not read this
            # temporary folder: stay who we are.
            f"user {getpass.getuser()}",
            f"listener {self.port} 127.0.0.1",
            *(
                ["persistence true", f"persistence_location {self.root}/"]
                if self.persistent
                else ["persistence false"]
            ),
            f"log_dest file {self.log}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "connection_messages true",
            "max_queued_messages 100000",
        ]
        if self.tls is not None:
            # TLS only, and a client certificate from our CA is required.
            lines += [
                f"cafile {self.tls.ca}",
                f"certfile {self.tls.server_cert}",
                f"keyfile {self.tls.server_key}",
                "require_certificate true",
                "tls_version tlsv1.2",
            ]
        if self.users:
            passwords = self.root / "passwd"
            passwords.write_text("")
            for user, password in self.users.items():
                subprocess.run(
                    ["mosquitto_passwd", "-b", str(passwords), user, password],
                    check=True,
                    capture_output=True,
                    timeout=60,
                )
            passwords.chmod(0o600)
            lines += ["allow_anonymous false", f"password_file {passwords}"]
        else:
            lines.append("allow_anonymous true")
        if self.acl is not None:
            acl = self.root / "acl"
            acl.write_text(self.acl)
            acl.chmod(0o600)
            lines.append(f"acl_file {acl}")
        if self.ws_port is not None:
            # Last: the TLS lines above belong to the first listener.
            lines += [f"listener {self.ws_port} 127.0.0.1", "protocol websockets"]
        (self.root / "mosquitto.conf").write_text("\n".join(lines) + "\n")

    def start(self) -> Broker:
        if self._process is not None:
            raise RuntimeError("the broker is running already")
        self._process = subprocess.Popen(
            [MOSQUITTO, "-c", str(self.root / "mosquitto.conf")],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            if self._process.poll() is not None:
                raise RuntimeError(f"mosquitto exited: {self.tail()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"mosquitto did not listen: {self.tail()}") from None
                time.sleep(0.02)

    @property
    def running(self) -> bool:
        return self._process is not None

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(5)
            self._process = None

    def tail(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-2000:]
        except OSError:
            return "(no log)"

    def close(self) -> None:
        for watcher in self.watchers:
            watcher.close()
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Broker:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()


@dataclass(frozen=True)
class Certificates:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    stranger_cert: Path  # a client certificate from another CA
    stranger_key: Path


def make_certificates(folder: Path) -> Certificates:
    """A CA, a server certificate for 127.0.0.1 and client certificates, made with openssl."""
    folder.mkdir(parents=True)

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True, timeout=60)

    for ca in ("ca", "other-ca"):
        run(
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-subj", f"/CN=crosspatch test {ca}", "-keyout", f"{ca}.key", "-out", f"{ca}.crt",
        )  # fmt: skip
    (folder / "server.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for name, ca, ext in (
        ("server", "ca", ["-extfile", "server.ext"]),
        ("client", "ca", []),
        ("stranger", "other-ca", []),
    ):
        run(
            "req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
            "-keyout", f"{name}.key", "-out", f"{name}.csr",
        )  # fmt: skip
        run(
            "x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
            "-CAcreateserial", "-days", "2", "-out", f"{name}.crt", *ext,
        )  # fmt: skip
    return Certificates(
        folder / "ca.crt",
        folder / "server.crt",
        folder / "server.key",
        folder / "client.crt",
        folder / "client.key",
        folder / "stranger.crt",
        folder / "stranger.key",
    )


@dataclass
class Message:
    topic: str
    payload: bytes
    retain: bool
    properties: Any = None
    received: float = field(default_factory=time.time)  # wall clock, as a browser's Date.now()

    def json(self) -> Any:
        return json.loads(self.payload)


class Watcher:
    """A paho client that keeps every message of its subscriptions (see the module doc)."""

    def __init__(
        self,
        broker: Broker,
        *topics: str,
        username: str | None = None,
        password: str | None = None,
        version: int = paho.MQTTv5,
        client_id: str = "",
        durable: bool = False,
        tls: Certificates | None = None,
    ) -> None:
        """`durable`: a persistent MQTT 3.1.1 session (give a client_id), so that the broker
        queues what arrives while this watcher is disconnected."""
        self.messages: list[Message] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self._connected = threading.Event()
        self.connect_code: Any = None
        if durable:
            self.client = paho.Client(
                CallbackAPIVersion.VERSION2,
                client_id=client_id,
                protocol=paho.MQTTv311,
                clean_session=False,
            )
        else:
            self.client = paho.Client(
                CallbackAPIVersion.VERSION2, client_id=client_id, protocol=version
            )
        self.client.reconnect_delay_set(min_delay=1, max_delay=2)
        if tls is not None:
            self.client.tls_set(
                ca_certs=str(tls.ca), certfile=str(tls.client_cert), keyfile=str(tls.client_key)
            )
        if username is not None:
            self.client.username_pw_set(username, password)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *args: self._subscribed.set()
        self.topics = topics
        self._closed = False
        broker.watchers.append(self)
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()
        if not self._connected.wait(10):
            raise RuntimeError("the watcher did not connect")
        if topics and self.connect_code == 0 and not self._subscribed.wait(10):
            raise RuntimeError("the watcher did not subscribe")

    def _on_connect(
        self, client: paho.Client, userdata: Any, flags: Any, code: Any, props: Any
    ) -> None:
        self.connect_code = code.value if hasattr(code, "value") else code
        if self.topics and self.connect_code == 0:
            client.subscribe([(t, 1) for t in self.topics])
        self._connected.set()

    def _on_message(self, client: paho.Client, userdata: Any, msg: paho.MQTTMessage) -> None:
        with self._lock:
            self.messages.append(
                Message(msg.topic, msg.payload, bool(msg.retain), getattr(msg, "properties", None))
            )

    def on(self, topic: str) -> list[Message]:
        with self._lock:
            return [m for m in self.messages if paho.topic_matches_sub(topic, m.topic)]

    def wait_for(self, what: Callable[[], Any], timeout: float = 15.0, message: str = "") -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = what()
            if value:
                return value
            time.sleep(0.02)
        raise AssertionError(message or f"not seen in {timeout} s; got {self.summary()}")

    def summary(self) -> str:
        with self._lock:
            return "; ".join(f"{m.topic} {m.payload[:120]!r}" for m in self.messages[-10:])

    def publish(
        self,
        topic: str,
        payload: str | bytes,
        *,
        response_topic: str | None = None,
        correlation: bytes | None = None,
    ) -> None:
        props = None
        if response_topic is not None or correlation is not None:
            props = Properties(PacketTypes.PUBLISH)
            if response_topic is not None:
                props.ResponseTopic = response_topic
            if correlation is not None:
                props.CorrelationData = correlation
        info = self.client.publish(topic, payload, qos=1, properties=props)
        info.wait_for_publish(10)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.client.loop_stop()
            self.client.disconnect()


@pytest.fixture
def broker() -> Iterator[Broker]:
    """A running anonymous broker for one test."""
    if not Path(MOSQUITTO).exists():
        pytest.fail("mosquitto is not installed: run scripts/setup, which installs it")
    with Broker() as running:
        yield running
