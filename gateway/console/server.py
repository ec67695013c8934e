"""`crosspatch console`: serves the dispatcher's web console to browsers.

The console is static files (`static/`) and one small JSON, `/config.json`, that tells the page
where the broker's MQTT-over-WebSockets listener is and under which topic prefix the gateways
publish. The browser then talks to the broker itself, with the dispatcher's own login: this
server holds no credentials, no state and no second user database (the broker's password file and
ACL stay the one authority). Nothing is loaded from elsewhere at run time: MQTT.js is one of
the static files (see gateway/console/static/vendor/README.md), and the Content-Security-Policy
forbids any other origin but the broker.

The standard library's threading HTTP server is enough for a handful of static files; every file
is read once at start, so a request never touches the disk and no path from a request is ever
joined to a directory.
"""

from __future__ import annotations

import http.server
import json
import signal
import ssl
import threading
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import urlsplit

from gateway import __version__
from gateway.core.errors import UserError

STATIC_PACKAGE = "gateway.console"
STATIC_DIR = "static"
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".md": "text/markdown; charset=utf-8",
    ".png": "image/png",
    ".svg": "image/svg+xml",
}
STOP_TIMEOUT_S = 5.0  # a stop never waits longer than this for requests in progress


class ConsoleError(UserError):
    """A console setting the user must fix (listen address, broker URL, certificate)."""


@dataclass(frozen=True)
class ConsoleSettings:
    host: str
    port: int
    broker_url: str  # ws://host:port[/path] or wss://...
    topic_prefix: str = "crosspatch"
    cert_file: Path | None = None  # HTTPS (pages served over https must use a wss:// broker)
    key_file: Path | None = None


def parse_listen(text: str) -> tuple[str, int]:
    """`HOST:PORT` (or `[v6]:PORT`) -> (host, port), with a clear error."""
    host, sep, port_text = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ConsoleError(f"--listen {text!r}: give HOST:PORT, e.g. 127.0.0.1:8080")
    return host, int(port_text)


def check_broker_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise ConsoleError(
            f"--broker {url!r}: give the broker's WebSocket listener, "
            "ws://HOST:PORT (wss://HOST:PORT with TLS), e.g. ws://127.0.0.1:9001"
        )
    return url


def check_topic_prefix(prefix: str) -> str:
    if (
        not prefix
        or any(c in prefix for c in "#+")
        or prefix.startswith("/")
        or prefix.endswith("/")
    ):
        raise ConsoleError(
            f"--topic-prefix {prefix!r}: one or more topic levels without + or #, "
            "like the gateways' mqtt.topic_prefix (default crosspatch)"
        )
    return prefix


def load_static() -> dict[str, bytes]:
    """Every static file by its URL path ('/index.html', '/vendor/mqtt.min.js', ...)."""
    files: dict[str, bytes] = {}
    root = resources.files(STATIC_PACKAGE).joinpath(STATIC_DIR)

    def walk(node: Any, prefix: str) -> None:
        for child in node.iterdir():
            if child.is_dir():
                walk(child, f"{prefix}{child.name}/")
            elif child.is_file():
                files[f"{prefix}{child.name}"] = child.read_bytes()

    walk(root, "/")
    return files


def security_headers(broker_url: str) -> dict[str, str]:
    broker = urlsplit(broker_url)
    # The page may connect to the broker only (and nothing loads from anywhere else).
    connect = f"{broker.scheme}://{broker.netloc}"
    return {
        "Content-Security-Policy": (
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            f"connect-src 'self' {connect}; frame-ancestors 'none'; base-uri 'none'; "
            "form-action 'none'"
        ),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-cache",
    }


class ConsoleServer:
    """The console's HTTP(S) server, on its own thread once `start`ed."""

    def __init__(self, settings: ConsoleSettings) -> None:
        self.settings = settings
        files = load_static()
        files["/config.json"] = json.dumps(
            {
                "broker_url": settings.broker_url,
                "topic_prefix": settings.topic_prefix,
                "version": __version__,
            }
        ).encode()
        files["/"] = files["/index.html"]
        headers = security_headers(settings.broker_url)
        handler = _handler_class(files, headers)
        try:
            self._httpd = http.server.ThreadingHTTPServer((settings.host, settings.port), handler)
        except OSError as exc:
            raise ConsoleError(
                f"cannot listen on {settings.host}:{settings.port}: {exc.strerror or exc}"
            ) from None
        self._httpd.daemon_threads = True
        if settings.cert_file is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            try:
                context.load_cert_chain(settings.cert_file, settings.key_file)
            except (OSError, ssl.SSLError) as exc:
                self._httpd.server_close()
                raise ConsoleError(f"--cert/--key: cannot load them: {exc}") from None
            self._httpd.socket = context.wrap_socket(self._httpd.socket, server_side=True)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.settings.host, self._httpd.server_port
        scheme = "https" if self.settings.cert_file is not None else "http"
        shown = f"[{host}]" if ":" in host else host
        return f"{scheme}://{shown}:{port}/"

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.2}, name="console-http"
        )
        self._thread.start()

    def stop(self) -> None:
        """Stops serving; bounded by STOP_TIMEOUT_S (request threads are daemons)."""
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(STOP_TIMEOUT_S)
            self._thread = None
        self._httpd.server_close()


def _handler_class(
    files: dict[str, bytes], headers: dict[str, str]
) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        server_version = "crosspatch-console"
        sys_version = ""

        def do_GET(self) -> None:
            self._send(with_body=True)

        def do_HEAD(self) -> None:
            self._send(with_body=False)

        def _send(self, *, with_body: bool) -> None:
            path = urlsplit(self.path).path
            body = files.get(path)
            if body is None:
                self.send_error(404, "not found")
                return
            suffix = Path(path).suffix if path != "/" else ".html"
            self.send_response(200)
            self.send_header("Content-Type", CONTENT_TYPES.get(suffix, "application/octet-stream"))
            self.send_header("Content-Length", str(len(body)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            if with_body:
                self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # a console's page loads are not worth a log line each

    return Handler


def run_console(settings: ConsoleSettings) -> int:
    """Serves until SIGINT or SIGTERM; prints where."""
    server = ConsoleServer(settings)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    server.start()
    print(
        f"crosspatch console: serving {server.url} (broker {settings.broker_url}, "
        f"topics {settings.topic_prefix}/...)",
        flush=True,
    )
    try:
        stop.wait()
    finally:
        server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
