"""The daemon's MQTT publisher process, for a synchronous program: the demo's real-time loop.

The demo publishes exactly as the daemon does, through the same publisher process
(`gateway.mqtt.publisher`) and the same retained-state bookkeeping (`gateway.mqtt.retained`),
over a throw-away outbox. What differs is only who runs the asyncio loop of the publisher's
daemon side: here, the program's own thread, a moment at each call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from gateway.config.models import MqttSettings
from gateway.control.payload import Payload
from gateway.control.present import Present
from gateway.core.events import Event
from gateway.mqtt.client import CommandHandler
from gateway.mqtt.connect import check_settings
from gateway.mqtt.outbox import Outbox
from gateway.mqtt.publisher import CLOSE_TIMEOUT_S, MqttProcess
from gateway.mqtt.retained import RetainedStates

log = logging.getLogger(__name__)


class SyncMqttProcess:
    """The publisher process for a synchronous program (the demo's real-time loop): an
    `MqttProcess`, with its retained states, whose asyncio loop runs in the program's own thread
    a moment at a time: at every call (queued events, a snapshot) and at the close.

    No thread of its own: between two calls the loop waits, and with it what the publisher
    sends back (its status, commands), which is little and nothing a tick waits for; `poll` gives
    it a moment when nothing else does. Commands go to `handle_command`, run on this loop (so in
    the program's thread, between two of its ticks); without one, each is answered that this
    program takes none."""

    def __init__(
        self,
        settings: MqttSettings,
        gateway_id: str,
        outbox_path: Path,
        *,
        start_timeout_s: float = CLOSE_TIMEOUT_S,
        handle_command: CommandHandler | None = None,
    ) -> None:
        check_settings(settings)  # before anything is made that would need closing
        self._loop = asyncio.new_event_loop()
        try:
            self._outbox = Outbox(outbox_path)
        except BaseException:
            self._loop.close()
            raise
        self.process = MqttProcess(
            settings, gateway_id, self._outbox, handle_command or _no_commands
        )
        self.retained = RetainedStates(self.process)
        self.present = Present()  # the active calls and alarms, retained as the daemon's
        self._runner = self._loop.create_task(self.process.run())
        # Started before the first tick: a close that came before the start would find no
        # publisher to tell.
        self._loop.run_until_complete(self._started(start_timeout_s))

    async def _started(self, timeout_s: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                while not self.process.started and not self._runner.done():
                    await asyncio.sleep(0.01)

    def _call(self, job: Callable[[], object]) -> None:
        """Runs `job` on the loop (where `MqttProcess` wants its callers), then lets the loop
        do what is due (send, read the publisher's news), without waiting for anything."""

        async def step() -> None:
            job()
            await asyncio.sleep(0)

        self._loop.run_until_complete(step())

    def queue(self, events: Sequence[Event]) -> None:
        """Events (stamped) into the outbox, and the publisher told; the active calls and
        alarms they start or end, retained."""
        changes = self.present.note(events)

        def job() -> None:
            self.process.queue(events)
            if changes:
                self.retained.present(changes)

        self._call(job)

    def poll(self) -> None:
        """Lets the loop do what is due (commands in, replies out) when there is nothing to send."""
        self._call(lambda: None)

    def site(self, info: dict[str, Any], access: dict[str, dict[str, Any]]) -> None:
        """The gateway's retained `info` and `access/USER` (see `RetainedStates.site`)."""
        self._call(lambda: self.retained.site(info, access))

    def states(self, snapshot: dict[str, Any]) -> None:
        """The retained port and patch states of a status snapshot."""
        self._call(lambda: self.retained.apply(snapshot))

    def close(self, timeout_s: float = 3.0) -> None:
        """Lets the publisher send what is queued, say `offline` and exit, within `timeout_s`
        (else it is killed)."""

        async def finish() -> None:
            if not await self.process.close_within(timeout_s):
                log.info("MQTT: the publisher did not close within %g s; killed", timeout_s)
            self._runner.cancel()
            await asyncio.gather(self._runner, return_exceptions=True)

        try:
            self._loop.run_until_complete(finish())
        finally:
            self._outbox.close()
            self._loop.close()


async def _no_commands(user: str, payload: Payload) -> dict[str, Any]:
    return {"id": None, "ok": False, "error": "this program takes no commands (it is the demo)"}
