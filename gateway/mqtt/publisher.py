"""The daemon's MQTT publisher, in a process of its own.

    daemon (engine thread + asyncio loop)          publisher (`python -m gateway.mqtt.publisher`)
    events -> outbox.put (SQLite WAL) ......... outbox.peek -> MqttClient: publish, QoS 1
              "queued" ------------ socket ---> (wakes the drain)   PUBACK -> outbox.ack
    retained states ------------------------>  retained publishes
    CommandRouter (authz, consent, audit) <---  "cmd" from PREFIX/GW/cmd/USER
              "reply" --------------------------> the reply topic
    status (connected, published, acked) <-----  "status", at most every STATUS_EVERY_S, on change

Why a process: the engine thread shares the interpreter lock with every other thread of the
daemon. The MQTT client (aiomqtt and paho) costs some 100 us of Python per event; in a flood of
2,500 events/s that is a third of a core taking the lock from the engine at every switch
interval, and the engine's p99 tick time more than doubled. Here the daemon's loop only writes
the outbox (a few us per event, one transaction per tick) and reads a few small messages a
second from the publisher; the publishing happens on the other core, outside the lock.

What does not change: the outbox is the one durable queue, written by the daemon before anything
is published (the publisher opens the same file over a connection of its own and deletes only
what the broker acknowledged), so a crash of either process loses nothing committed; and every
MQTT command goes through the daemon's one `CommandRouter` (the publisher carries the bytes and
the reply, nothing else).

The publisher ignores SIGINT and SIGTERM (a Ctrl-C in a terminal reaches the whole process
group): the daemon closes it in order at its own stop (a last drain of up to 2 s, then
`offline`). When the daemon goes away without closing it (killed), the publisher exits at once
without saying goodbye to the broker, which then publishes the last will, `offline`, as when
the client ran inside the daemon. A publisher that dies is started again (what it had not
published is still in the outbox).

The demo publishes through the same process (`gateway.mqtt.sync_publisher` runs the daemon's
side of it on the demo's own thread).

Messages on the socket: a 4-byte length, then a pickle (both ends are this module).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import pickle
import signal
import socket
import struct
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from gateway.config.models import MqttSettings
from gateway.control.payload import Payload
from gateway.core.events import Event
from gateway.mqtt.client import (
    BACKOFF_MAX_S,
    BACKOFF_MIN_S,
    CommandHandler,
    MqttClient,
    encode,
    outbox_messages,
)
from gateway.mqtt.connect import check_settings
from gateway.mqtt.outbox import Outbox, PutResult
from gateway.mqtt.topics import Topics

log = logging.getLogger(__name__)

STATUS_EVERY_S = 0.1  # how often the publisher reports, at most, while something changed
CLOSE_TIMEOUT_S = 5.0  # the publisher's own close takes up to 2 s of drain, then `offline`
RESTART_MIN_S = 0.5
RESTART_MAX_S = 10.0
_HEADER = struct.Struct("!I")


@dataclass(frozen=True)
class _Start:
    """What the publisher needs, sent as its first message."""

    settings: MqttSettings
    gateway_id: str
    outbox_path: Path
    budget_bytes: int
    verbose: bool
    backoff: tuple[float, float]


def _frame(message: tuple[Any, ...]) -> bytes:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return _HEADER.pack(len(data)) + data


async def _read(reader: asyncio.StreamReader) -> tuple[Any, ...]:
    """The next message; IncompleteReadError at the end of the stream."""
    (size,) = _HEADER.unpack(await reader.readexactly(_HEADER.size))
    message: tuple[Any, ...] = pickle.loads(await reader.readexactly(size))
    return message


# ---------------------------------------------------------------------------------- daemon side
class MqttProcess:
    """The daemon's side: queues events in the outbox and keeps the publisher process running.

    The same face to the daemon as an `MqttClient` (queue, set_state, forget_state, run, close,
    connected, published); `handle_command` runs in the daemon's loop."""

    def __init__(
        self,
        settings: MqttSettings,
        gateway_id: str,
        outbox: Outbox,
        handle_command: CommandHandler,
        *,
        verbose: bool = False,
        stderr: IO[bytes] | None = None,
        backoff_min_s: float = BACKOFF_MIN_S,
        backoff_max_s: float = BACKOFF_MAX_S,
    ) -> None:
        """`stderr`: where the publisher's log lines go (by default the daemon's stderr)."""
        check_settings(settings)  # a bad password or certificate file: one line, here, now
        self.settings = settings
        self.topics = Topics(settings.topic_prefix, gateway_id)
        self.outbox = outbox
        self._handle_command = handle_command
        self._stderr = stderr
        self._start = _Start(
            settings,
            gateway_id,
            outbox.path,
            outbox.budget_bytes,
            verbose,
            (backoff_min_s, backoff_max_s),
        )
        self._retained: dict[str, bytes] = {}
        self._states_out: dict[str, bytes | None] = {}  # changes not yet sent
        self._writer: asyncio.StreamWriter | None = None
        self._process: asyncio.subprocess.Process | None = None
        self._tasks: set[asyncio.Future[None]] = set()
        self._closing = False
        self._acked = (0, 0)  # what the running publisher acknowledged: messages, bytes
        self._published_before = 0  # by publishers that have exited
        self._published_now = 0  # by the running one
        self.connected = False
        self.restarts = 0  # publishers started again after one ended

    @property
    def pid(self) -> int | None:
        """The running publisher's process id (benchmarks measure its CPU time)."""
        process = self._process
        return process.pid if process is not None and process.returncode is None else None

    @property
    def started(self) -> bool:
        """Whether a publisher is running and has been given its start."""
        return self._writer is not None

    @property
    def published(self) -> int:
        """Messages the broker acknowledged since the daemon started."""
        return self._published_before + self._published_now

    # ------------------------------------------------------------------ from the daemon (loop)
    def queue(self, events: Sequence[Event], payloads: Sequence[bytes] | None = None) -> PutResult:
        """Writes events to the outbox (one transaction) and tells the publisher."""
        result = self.outbox.put(outbox_messages(self.topics, events, payloads))
        if result.queued:
            self._send(("queued", result.queued, result.queued_bytes, result.last_id))
        return result

    def set_state(self, topic: str, state: Any) -> None:
        """A retained state; published if it changed (now or at the next connection)."""
        payload = encode(state)
        if self._retained.get(topic) != payload:
            self._retained[topic] = payload
            self._state_changed(topic, payload)

    def forget_state(self, topic: str) -> None:
        """A port or patch that no longer exists: its retained message is cleared."""
        if self._retained.pop(topic, None) is not None:
            self._state_changed(topic, None)

    def _state_changed(self, topic: str, payload: bytes | None) -> None:
        # The changes of one pass of the loop go in one message (hundreds, in a flood).
        if not self._states_out:
            asyncio.get_running_loop().call_soon(self._send_states)
        self._states_out[topic] = payload

    def _send_states(self) -> None:
        states, self._states_out = self._states_out, {}
        self._send(("states", list(states.items())))

    def _send(self, message: tuple[Any, ...]) -> None:
        # No publisher (between a death and the restart): the next one reads the outbox itself
        # and is given every retained state when it starts.
        if self._writer is not None and not self._writer.is_closing():
            self._writer.write(_frame(message))

    # ------------------------------------------------------------------ the process
    async def run(self) -> None:
        """Starts the publisher, and starts it again if it dies, until `close`."""
        delay = RESTART_MIN_S
        loop = asyncio.get_running_loop()
        while not self._closing:
            began = loop.time()
            try:
                code: int | str | None = await self._run_once()
            except OSError as exc:  # no process could be started (out of memory, of fds)
                code = f"not started: {exc}"
            if self._closing:
                return
            if loop.time() - began > 60:
                delay = RESTART_MIN_S
            log.error(
                "the MQTT publisher process ended (exit status %s); starting it again in %g s; "
                "events wait in the outbox",
                code,
                delay,
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, RESTART_MAX_S)
            self.restarts += 1

    async def _run_once(self) -> int | None:
        # What a publisher that died acknowledged but never reported is gone from the file: count
        # afresh, now that no other process deletes.
        self.outbox.recount()
        ours, theirs = socket.socketpair()
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "gateway.mqtt.publisher",
                str(theirs.fileno()),
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                stderr=self._stderr,
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        self._process = process
        reader, writer = await asyncio.open_unix_connection(sock=ours)
        self._writer = writer
        self._send(("start", self._start))
        self._states_out.clear()  # all of them, now:
        self._send(("states", list(self._retained.items())))
        try:
            while True:
                self._on_message(await _read(reader))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the publisher has gone
        finally:
            self._writer = None
            writer.close()
            self.connected = False
            self._published_before += self._published_now
            self._published_now = 0
            self._acked = (0, 0)
            await self._reap(process)  # our end closed: a publisher still running exits now
        return process.returncode

    async def _reap(self, process: asyncio.subprocess.Process) -> None:
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT_S):
                await process.wait()
        except TimeoutError:
            process.kill()
            await process.wait()

    def _on_message(self, message: tuple[Any, ...]) -> None:
        kind = message[0]
        if kind == "status":
            _, connected, published, acked_count, acked_bytes = message
            count, nbytes = acked_count - self._acked[0], acked_bytes - self._acked[1]
            if count or nbytes:
                self.outbox.released(count, nbytes)
            self._acked = (acked_count, acked_bytes)
            self.connected = connected
            self._published_now = published
        elif kind == "cmd":
            _, number, user, payload = message
            task = asyncio.ensure_future(self._command(number, user, payload))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _command(self, number: int, user: str, payload: Payload) -> None:
        reply = await self._handle_command(user, payload)
        self._send(("reply", number, reply))

    async def close(self) -> None:
        """Lets the publisher send what is queued (up to 2 s), say `offline` and exit."""
        self._closing = True
        process = self._process
        if process is not None and process.returncode is None:
            self._send(("close",))
            if self._writer is not None:
                with contextlib.suppress(ConnectionError):
                    await self._writer.drain()
            await self._reap(process)
        for task in list(self._tasks):
            task.cancel()

    async def close_within(self, timeout_s: float) -> bool:
        """`close`, within `timeout_s`. A publisher still at it then (a broker that stopped
        answering) is killed and False returned: the broker then publishes its last will,
        `offline`, and what it had not sent waits in the outbox for the next start."""
        try:
            async with asyncio.timeout(timeout_s):
                await self.close()
        except TimeoutError:
            pid = self.pid
            if pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            return False
        return True


# ---------------------------------------------------------------------------------- publisher
async def _publisher(fd: int) -> None:
    reader, writer = await asyncio.open_unix_connection(sock=socket.socket(fileno=fd))
    kind, start = await _read(reader)
    assert kind == "start" and isinstance(start, _Start)
    from gateway.core.logs import setup_logging

    setup_logging(start.verbose)
    outbox = Outbox(start.outbox_path, start.budget_bytes)
    loop = asyncio.get_running_loop()
    replies: dict[int, asyncio.Future[dict[str, Any]]] = {}
    numbers = itertools.count(1)

    async def forward(user: str, payload: Payload) -> dict[str, Any]:
        number = next(numbers)
        reply: asyncio.Future[dict[str, Any]] = loop.create_future()
        replies[number] = reply
        writer.write(_frame(("cmd", number, user, payload)))
        try:
            return await reply
        finally:
            replies.pop(number, None)

    client = MqttClient(
        start.settings,
        start.gateway_id,
        outbox,
        forward,
        backoff_min_s=start.backoff[0],
        backoff_max_s=start.backoff[1],
    )

    def status() -> tuple[Any, ...]:
        return (
            "status",
            client.connected,
            client.published,
            outbox.acked_count,
            outbox.acked_bytes,
        )

    # The status goes to the daemon in answer to its "queued" (sent right after an engine
    # tick), so it arrives while the engine thread waits for its next tick: a message arriving
    # mid-tick would wake the daemon's loop, which would take the interpreter lock from the
    # tick. Only when no "queued" came for STATUS_EVERY_S (events stopped) does a timer send it.
    last_status: tuple[Any, ...] | None = None
    status_sent = queued_at = 0.0

    def report_status() -> None:
        nonlocal last_status, status_sent
        now = status()
        if now != last_status:
            writer.write(_frame(now))
            last_status, status_sent = now, loop.time()

    async def report() -> None:
        while True:
            await asyncio.sleep(STATUS_EVERY_S)
            if loop.time() - queued_at >= STATUS_EVERY_S:
                report_status()

    runner = asyncio.ensure_future(client.run())

    def runner_ended(task: asyncio.Future[None]) -> None:
        # client.run only ends by cancellation; anything else would leave this process reading
        # the daemon's news and publishing none of it. Exiting makes the daemon say so and start
        # a new publisher, which reads the outbox from where the broker last acknowledged.
        if not task.cancelled() and task.exception() is not None:
            log.critical(
                "the MQTT connection failed: %s; restarting the publisher", task.exception()
            )
            os._exit(3)

    runner.add_done_callback(runner_ended)
    reporter = asyncio.ensure_future(report())
    try:
        while True:
            try:
                message = await _read(reader)
            except (asyncio.IncompleteReadError, ConnectionError):
                # The daemon is gone without closing us (killed): go at once, without a
                # DISCONNECT, so the broker publishes the last will (`offline`).
                os._exit(0)
            kind = message[0]
            if kind == "queued":
                outbox.queued_elsewhere(message[1], message[2], message[3])
                client.wake()
                queued_at = loop.time()
                if queued_at - status_sent >= STATUS_EVERY_S:
                    report_status()
            elif kind == "states":
                for topic, payload in message[1]:
                    client.set_payload(topic, payload)
            elif kind == "reply":
                waiting = replies.get(message[1])
                if waiting is not None and not waiting.done():
                    waiting.set_result(message[2])
            elif kind == "close":
                await client.close()
                writer.write(_frame(status()))
                await writer.drain()
                return
    finally:
        for task in (runner, reporter):
            task.cancel()
        await asyncio.gather(runner, reporter, return_exceptions=True)
        outbox.close()
        writer.close()


def main(argv: list[str]) -> int:
    # The daemon stops us in order (see the module doc); a signal to the process group must not.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    os.nice(int(os.environ.get("XPNICE", "0")))
    asyncio.run(_publisher(int(argv[1])))
    return 0


if __name__ == "__main__":
    # Run as this module's importable self, not as __main__: the start message names its
    # classes by their module (pickle).
    from gateway.mqtt.publisher import main as publisher_main

    sys.exit(publisher_main(sys.argv))
