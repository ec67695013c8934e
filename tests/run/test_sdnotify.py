"""The sd_notify client: exact datagrams on a real AF_UNIX socket, and the watchdog settings."""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.run.sdnotify import SystemdNotifier


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def listener(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clean_env: None
) -> Iterator[socket.socket]:
    """systemd's side: a datagram socket in tmp_path, named by NOTIFY_SOCKET."""
    path = tmp_path / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(2)
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    yield sock
    sock.close()


def _received(sock: socket.socket) -> bytes:
    return sock.recv(4096)


def test_each_message_is_one_exact_datagram(listener: socket.socket) -> None:
    notifier = SystemdNotifier()
    assert notifier.enabled
    notifier.ready()
    notifier.ready("3 ports, 1 patch on")
    notifier.status("reloading config")
    notifier.watchdog()
    notifier.stopping()
    assert _received(listener) == b"READY=1"
    assert _received(listener) == b"READY=1\nSTATUS=3 ports, 1 patch on"
    assert _received(listener) == b"STATUS=reloading config"
    assert _received(listener) == b"WATCHDOG=1"
    assert _received(listener) == b"STOPPING=1"
    notifier.close()


def test_reloading_carries_the_monotonic_clock_in_microseconds(listener: socket.socket) -> None:
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    SystemdNotifier().reloading()
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    first, second = _received(listener).decode().split("\n")
    assert first == "RELOADING=1"
    key, _, value = second.partition("=")
    assert key == "MONOTONIC_USEC"
    assert before <= int(value) <= after


def test_a_status_cannot_inject_fields(listener: socket.socket) -> None:
    SystemdNotifier().status("bad\nREADY=1")
    assert _received(listener) == b"STATUS=bad READY=1"


def test_abstract_socket(monkeypatch: pytest.MonkeyPatch, clean_env: None) -> None:
    name = f"crosspatch-test-{os.getpid()}-{time.monotonic_ns()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(2)
    monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
    try:
        SystemdNotifier().ready()
        assert sock.recv(4096) == b"READY=1"
    finally:
        sock.close()


def test_without_notify_socket_everything_is_a_no_op(clean_env: None) -> None:
    notifier = SystemdNotifier()
    assert not notifier.enabled
    assert notifier.watchdog_interval() is None
    for call in (notifier.ready, notifier.stopping, notifier.watchdog, notifier.reloading):
        call()
    notifier.status("nobody listens")


def test_a_failing_send_warns_once_and_never_raises(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    clean_env: None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "nobody-listens"))
    notifier = SystemdNotifier()
    with caplog.at_level(logging.WARNING, logger="gateway.run.sdnotify"):
        for _ in range(3):
            notifier.watchdog()
        notifier.ready("still fine")
    warnings = [r for r in caplog.records if r.name == "gateway.run.sdnotify"]
    assert len(warnings) == 1
    assert "cannot notify systemd" in warnings[0].getMessage()


def test_an_unusable_notify_socket_value_disables_notifications(
    monkeypatch: pytest.MonkeyPatch, clean_env: None
) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", "relative/path")
    notifier = SystemdNotifier()
    assert not notifier.enabled
    notifier.ready()


@pytest.mark.parametrize(
    ("usec", "pid", "expected"),
    [
        ("10000000", "self", 10.0),  # WatchdogSec=10
        ("2500000", None, 2.5),  # no WATCHDOG_PID: for whoever reads it
        ("10000000", "1", None),  # meant for another process
        ("10000000", "not-a-pid", None),
        ("ten seconds", "self", None),
        ("", "self", None),
        ("0", "self", None),
        ("-5", "self", None),
        (None, "self", None),
    ],
)
def test_watchdog_interval(
    monkeypatch: pytest.MonkeyPatch,
    listener: socket.socket,
    usec: str | None,
    pid: str | None,
    expected: float | None,
) -> None:
    if usec is not None:
        monkeypatch.setenv("WATCHDOG_USEC", usec)
    if pid is not None:
        monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()) if pid == "self" else pid)
    assert SystemdNotifier().watchdog_interval() == expected


def test_the_environment_can_be_given(listener: socket.socket) -> None:
    notifier = SystemdNotifier({"WATCHDOG_USEC": "4000000"})  # no NOTIFY_SOCKET in it
    assert not notifier.enabled
    assert notifier.watchdog_interval() is None
