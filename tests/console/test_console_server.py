"""`crosspatch console`: what it serves, what it refuses, how it stops, and the MQTT.js it ships."""

from __future__ import annotations

import hashlib
import http.client
import json
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.mqtt_env import free_port

ROOT = Path(__file__).resolve().parents[2]
STATIC = ROOT / "gateway" / "console" / "static"
CROSSPATCH = [sys.executable, "-m", "gateway.cli"]
BROKER = "ws://127.0.0.1:9001"


class Served:
    def __init__(self, *extra: str) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen(
            [*CROSSPATCH, "console", "--listen", f"127.0.0.1:{self.port}", *extra],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert self.proc.stdout is not None
        self.banner = self.proc.stdout.readline()

    def get(self, path: str, method: str = "GET") -> http.client.HTTPResponse:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        connection.request(method, path)
        return connection.getresponse()


@pytest.fixture
def served() -> Iterator[Served]:
    server = Served("--broker", BROKER, "--topic-prefix", "region/west")
    yield server
    if server.proc.poll() is None:
        server.proc.kill()
        server.proc.wait(5)


def test_it_serves_the_page_and_tells_it_where_the_broker_is(served: Served) -> None:
    assert f"serving http://127.0.0.1:{served.port}/" in served.banner
    page = served.get("/")
    assert page.status == 200
    assert page.getheader("Content-Type") == "text/html; charset=utf-8"
    assert b"crosspatch" in page.read()
    config = served.get("/config.json")
    assert json.loads(config.read()) == {
        "broker_url": BROKER,
        "topic_prefix": "region/west",
        "version": json.loads(served.get("/config.json").read())["version"],
    }
    script = served.get("/vendor/mqtt.min.js")
    assert script.status == 200 and script.getheader("Content-Type").startswith("text/javascript")
    assert len(script.read()) > 100_000


def test_the_page_may_load_nothing_but_its_own_files_and_reach_nothing_but_the_broker(
    served: Served,
) -> None:
    policy = served.get("/index.html").getheader("Content-Security-Policy") or ""
    assert "default-src 'self'" in policy
    assert "connect-src 'self' ws://127.0.0.1:9001;" in policy
    assert "frame-ancestors 'none'" in policy
    # Nothing in the console's own files points outside (closed networks have no internet).
    for name in ("index.html", "console.js", "console.css"):
        text = (STATIC / name).read_text()
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text), name


def test_unknown_paths_and_other_methods_are_refused(served: Served) -> None:
    for path in ("/nothing.js", "/../pyproject.toml", "/%2e%2e/pyproject.toml", "/static/"):
        assert served.get(path).status == 404, path
    assert served.get("/index.html", method="POST").status == 501
    head = served.get("/console.js", method="HEAD")
    assert head.status == 200 and head.read() == b""


def test_sigterm_stops_it_at_once(served: Served) -> None:
    assert served.get("/").status == 200
    started = time.monotonic()
    served.proc.send_signal(signal.SIGTERM)
    assert served.proc.wait(10) == 0
    assert time.monotonic() - started < 5


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--listen", "8080", "--broker", BROKER], "give HOST:PORT"),
        (["--listen", "127.0.0.1:99999", "--broker", BROKER], "give HOST:PORT"),
        (["--broker", "mqtt://127.0.0.1:1883"], "WebSocket listener"),
        (["--broker", BROKER, "--topic-prefix", "a/#"], "--topic-prefix"),
        (["--broker", BROKER, "--cert", "/nonexistent.pem"], "both --cert and --key"),
        (
            ["--broker", BROKER, "--cert", "/nonexistent.pem", "--key", "/nonexistent.key"],
            "cannot load them",
        ),
    ],
)
def test_bad_settings_get_one_clear_line(args: list[str], message: str) -> None:
    if "--listen" not in args:
        args = ["--listen", f"127.0.0.1:{free_port()}", *args]
    result = subprocess.run(
        [*CROSSPATCH, "console", *args], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert "Traceback" not in result.stderr


def test_a_port_in_use_is_one_clear_line() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [*CROSSPATCH, "console", "--listen", f"127.0.0.1:{port}", "--broker", BROKER],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"crosspatch console: cannot listen on 127.0.0.1:{port}: Address already in use"
    )


def test_the_shipped_mqtt_js_is_the_one_its_note_names() -> None:
    note = (STATIC / "vendor" / "README.md").read_text()
    bundle = (STATIC / "vendor" / "mqtt.min.js").read_bytes()
    version = re.search(r"\| `mqtt.min.js` \|[^|]*\| ([0-9.]+) \|", note)
    assert version is not None
    assert f'"{version.group(1)}"'.encode() in bundle  # MQTT.js embeds its own version
    assert hashlib.sha256(bundle).hexdigest() in note
    assert "MIT License" in (ROOT / "gateway/console/static/vendor/mqtt.LICENSE.md").read_text()
