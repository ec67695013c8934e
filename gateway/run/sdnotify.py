"""Tell systemd how the daemon is doing: ready, reloading, stopping, alive (the sd_notify protocol).

Hand-written on purpose: the protocol is one datagram of `KEY=value` lines per message to the
AF_UNIX socket named by `NOTIFY_SOCKET`, so a dependency would be overkill, and the official
binding (systemd-python) must be compiled against libsystemd, which a technician's plain
`pip install` on a small board should not need.

Everything here is a no-op when the daemon is not started by systemd (`NOTIFY_SOCKET` unset), and
no method ever raises: a gateway must keep patching audio even if systemd cannot be told about it.
A failed send is logged once as a warning, not once per watchdog ping.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Mapping

log = logging.getLogger(__name__)


def _socket_address(value: str) -> str | bytes | None:
    """The address to send to, from `NOTIFY_SOCKET`; None if it is not one we can use."""
    if value.startswith("@"):
        # An abstract socket: its name starts with a NUL byte instead of the '@' systemd writes.
        return b"\0" + value[1:].encode()
    if value.startswith("/"):
        return value
    # systemd >= 254 may also pass vsock:CID:PORT (for VMs); a gateway never runs that way.
    return None


def _watchdog_usec(environ: Mapping[str, str]) -> int | None:
    """`WATCHDOG_USEC` if it is meant for this process and is a positive number, else None."""
    pid_text = environ.get("WATCHDOG_PID")
    if pid_text is not None:
        # systemd sets WATCHDOG_PID so that a child that inherited the environment does not
        # believe it is the watched process; garbage here also means "not ours".
        try:
            if int(pid_text) != os.getpid():
                return None
        except ValueError:
            return None
    usec_text = environ.get("WATCHDOG_USEC")
    if usec_text is None:
        return None
    try:
        usec = int(usec_text)
    except ValueError:
        return None
    return usec if usec > 0 else None


def _one_line(text: str) -> str:
    # A newline inside STATUS= would start a new KEY=value field in the datagram.
    return " ".join(text.splitlines())


class SystemdNotifier:
    """An sd_notify client built from the environment (`os.environ` unless one is given)."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        raw = env.get("NOTIFY_SOCKET") or None
        self._address = _socket_address(raw) if raw is not None else None
        self._watchdog_usec = _watchdog_usec(env) if self._address is not None else None
        self._socket: socket.socket | None = None
        self._lock = threading.Lock()
        self._warned = False
        if raw is not None and self._address is None:
            log.warning("NOTIFY_SOCKET=%s is not a socket path or @abstract name: ignored", raw)

    @property
    def enabled(self) -> bool:
        """True if systemd asked for notifications (NOTIFY_SOCKET is set and usable)."""
        return self._address is not None

    def watchdog_interval(self) -> float | None:
        """The watchdog timeout in seconds if systemd watches this process, else None.

        Ping with `watchdog()` at half this interval or more often, as sd_watchdog_enabled(3) asks.
        """
        return self._watchdog_usec / 1_000_000 if self._watchdog_usec is not None else None

    def ready(self, status: str | None = None) -> None:
        """Start-up is complete: ports are open and the engine runs."""
        self._send("READY=1" if status is None else f"READY=1\nSTATUS={_one_line(status)}")

    def reloading(self) -> None:
        """A reload has begun; send `ready()` when it is done.

        MONOTONIC_USEC is what systemd >= 253 requires with RELOADING=1 (for Type=notify-reload, to
        match the reload with its SIGHUP); older systemd and Type=notify ignore it.
        """
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        self._send(f"RELOADING=1\nMONOTONIC_USEC={usec}")

    def stopping(self) -> None:
        """Shutdown has begun (transmitters are being released)."""
        self._send("STOPPING=1")

    def status(self, text: str) -> None:
        """A one-line status shown by `systemctl status`."""
        self._send(f"STATUS={_one_line(text)}")

    def watchdog(self) -> None:
        """The daemon is alive; systemd restarts it if these stop for WatchdogSec."""
        self._send("WATCHDOG=1")

    def close(self) -> None:
        with self._lock:
            if self._socket is not None:
                self._socket.close()
                self._socket = None

    def _send(self, message: str) -> None:
        if self._address is None:
            return
        # The lock keeps the lazily created socket single; sends are tiny and never block long
        # (a full receive queue makes sendto fail with EAGAIN, not wait).
        with self._lock:
            try:
                if self._socket is None:
                    self._socket = socket.socket(
                        socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC
                    )
                    self._socket.setblocking(False)
                self._socket.sendto(message.encode(), self._address)
            except OSError as exc:
                if not self._warned:
                    self._warned = True
                    log.warning("cannot notify systemd (%s); further failures not logged", exc)
