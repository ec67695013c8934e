"""A test fails if it leaves something running: a thread, a child process, a PulseAudio module
it loaded into an `AudioEnv`, or a radio emulator transmitting (closed while its PTT was on).

What a test owns is what appeared between the start of its set-up and the end of its tear-down,
less what its module- or session-scoped fixtures started (the private PulseAudio server, say):
those are long-lived on purpose and are taken out of the count as they are set up. A thread or a
process on its way out is given a grace period before it counts, so a clean test never fails on
timing; what is still there after it is a leak, named in the failure.

Not counted: threads that Python did not start (`_DummyThread`: a PortAudio callback thread seen
from Python), zombies (exited children not yet reaped hold nothing), and multiprocessing's own
helper processes (its resource tracker lives for the session once started).

`-p no:leak-check` turns the check off for a run. Leaked child processes are ended (SIGKILL)
once reported, so the next test starts clean; a leaked thread cannot be, and is only reported.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pytest

from tests.support.emulators import pty_radio

GRACE_S = 10.0  # a daemon stopping, a reader thread seeing EOF: ample under scripts/test-under-load
_LONG_LIVED_CHILDREN = ("multiprocessing.resource_tracker", "multiprocessing.forkserver")


class _PulseServer(Protocol):
    @property
    def pid(self) -> int | None: ...

    def pactl(self, *args: str) -> str: ...


def _threads() -> set[threading.Thread]:
    return {
        t
        for t in threading.enumerate()
        if t.is_alive() and not isinstance(t, threading._DummyThread)  # type: ignore[attr-defined]
    }


def _children() -> set[int]:
    """This process's live children (any thread's), less zombies and multiprocessing's helpers."""
    pids: set[int] = set()
    for task in Path("/proc/self/task").iterdir():
        try:
            pids.update(int(p) for p in (task / "children").read_text().split())
        except OSError:  # the thread ended meanwhile
            continue
    live = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, IndexError):  # gone meanwhile
            continue
        if state != "Z" and not any(name in cmdline for name in _LONG_LIVED_CHILDREN):
            live.add(pid)
    return live


def _describe(pid: int) -> str:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        cmdline = "?"
    return f"pid {pid}: {cmdline.strip()[:160]}"


def _modules(server: _PulseServer) -> set[str]:
    """The ids of the modules loaded in a running PulseAudio ("" lines left out)."""
    if server.pid is None:
        return set()
    try:
        listing = server.pactl("list", "short", "modules")
    except Exception:  # a server on its way down: its modules go with it
        return set()
    return {line.split("\t", 1)[0] for line in listing.splitlines() if line.strip()}


@dataclass
class _Baseline:
    threads: set[threading.Thread] = field(default_factory=set)
    children: set[int] = field(default_factory=set)
    modules: dict[int, set[str]] = field(default_factory=dict)  # by id() of the server


class LeakCheck:
    """The pytest plugin: registered from conftest.py."""

    def __init__(self) -> None:
        self.servers: list[_PulseServer] = []
        self.baseline = _Baseline()

    def _snapshot(self) -> _Baseline:
        return _Baseline(
            _threads(), _children(), {id(s): _modules(s) for s in self.servers if s.pid}
        )

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> Generator[None, None, None]:
        self.baseline = self._snapshot()
        pty_radio.keyed_at_close.clear()
        return (yield)

    @pytest.hookimpl(wrapper=True)
    def pytest_fixture_setup(
        self, fixturedef: pytest.FixtureDef[Any], request: pytest.FixtureRequest
    ) -> Generator[None, object, object]:
        if fixturedef.scope == "function":
            return (yield)
        before = self._snapshot()
        value = yield
        # What a longer-lived fixture starts is its own, not the test's that happened to set it up.
        after = self._snapshot()
        self.baseline.threads |= after.threads - before.threads
        self.baseline.children |= after.children - before.children
        for server, modules in after.modules.items():
            loaded = modules - before.modules.get(server, set())
            self.baseline.modules[server] = self.baseline.modules.get(server, set()) | loaded
        if hasattr(value, "pactl") and hasattr(value, "pid"):  # an AudioEnv
            self.servers.append(value)
            self.baseline.modules[id(value)] = _modules(value)
        return value

    def pytest_fixture_post_finalizer(self, fixturedef: pytest.FixtureDef[Any]) -> None:
        result = fixturedef.cached_result
        value = result[0] if result is not None and result[2] is None else None
        if value is not None and value in self.servers:
            self.servers.remove(value)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_teardown(
        self, item: pytest.Item, nextitem: pytest.Item | None
    ) -> Generator[None, None, None]:
        yield
        left = [f"radio keyed: {radio}" for radio in pty_radio.keyed_at_close]
        pty_radio.keyed_at_close.clear()
        left += self._left_behind()
        if left:
            pytest.fail("left running after its tear-down:\n  " + "\n  ".join(left), pytrace=False)

    def _left_behind(self) -> list[str]:
        base = self.baseline

        def leaks() -> list[str]:
            found = [f"thread {t.name!r}" for t in _threads() - base.threads]
            found += [f"child {_describe(pid)}" for pid in sorted(_children() - base.children)]
            for server in self.servers:
                if id(server) in base.modules and server.pid:
                    new = _modules(server) - base.modules[id(server)]
                    found += [f"PulseAudio module {m}" for m in sorted(new, key=int)]
            return found

        found = _settled(leaks)
        # Ended here, so the next test does not start beside them.
        for pid in _children() - base.children:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        return found


def _settled(leaks: Callable[[], list[str]]) -> list[str]:
    """The leaks still there after the grace period (the first look is usually already clean)."""
    deadline = time.monotonic() + GRACE_S
    found = leaks()
    while found and time.monotonic() < deadline:
        time.sleep(0.05)
        found = leaks()
    return found
