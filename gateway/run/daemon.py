"""`crosspatch run CONFIG`: the daemon.

Two threads meet here. The engine thread (`gateway.run.loop`) ticks the engine in real time and
never waits on I/O. The asyncio loop of this module owns everything else: the control socket,
MQTT (the outbox, retained states, commands), reload on SIGHUP, the persisted patch state, logs,
and systemd's notify/watchdog protocol. They meet through `EngineRuntime.submit` (work run
between two ticks) and the event callback. Commands from the control socket and from MQTT go
through one `CommandRouter` (authorisation, consent, audit).

Safety: every exit path unkeys (the engine thread's last act is `release_all`), a second daemon on
the same state directory is refused, and a bad config at reload leaves the running one in place.
"""

from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import functools
import gc
import logging
import signal
import time
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from gateway.config import Config, ConfigError, load_config
from gateway.config.errors import clip
from gateway.control.control_socket import ControlRefused, ControlRequest, ControlServer
from gateway.control.patch_control import Command, PatchControl, PatchState, Principal, Role
from gateway.control.payload import Payload
from gateway.control.present import Change, Present
from gateway.control.router import CommandRefused, CommandRouter, Request
from gateway.control.state_store import PatchRecord, StateStore, acquire_lock
from gateway.control.status import access_states, patch_list, site_info, status_snapshot
from gateway.core.errors import UnsupportedHardwareError
from gateway.core.event_types import CallEnd
from gateway.core.events import Event, EventStamper, TickClock, to_json_bytes
from gateway.core.logs import EACH_LINE
from gateway.dsp.signals import tone
from gateway.mqtt.outbox import Outbox, OutboxError
from gateway.mqtt.publisher import MqttProcess
from gateway.mqtt.retained import RetainedStates
from gateway.ports.contract import PortBank
from gateway.ports.simulated import SimulatedRadios
from gateway.run.announcements import AnnouncementPlan
from gateway.run.announcer import Announcer
from gateway.run.loop import EngineRuntime
from gateway.run.metrics import (
    EventCounters,
    MetricsServer,
    Sample,
    active_alarms,
    engine_view,
    outbox_view,
)
from gateway.run.recorder import CallRecorder
from gateway.run.sdnotify import SystemdNotifier
from gateway.run.site import Site, build_site, hardware_ports, traffic_patterns
from gateway.sim.simulate import add_configured_traffic

if TYPE_CHECKING:
    from gateway.ports.site_radios import SiteRadios

log = logging.getLogger("gateway.daemon")
event_log = logging.getLogger("gateway.events")

T = TypeVar("T")

STATE_FILE = "patches.json"
OUTBOX_FILE = "outbox.sqlite3"
RECENT_CALLS = 20
STOP_TIMEOUT_S = 2.0
# At a stop, the MQTT publisher's last drain and `offline` (alongside the radios' closes); a
# publisher still at it then is killed, so that a broker that stopped answering cannot hold up
# the stop (its own drain would wait for it for 2 s).
MQTT_CLOSE_TIMEOUT_S = 1.0
EXPIRY_CHECK_S = 1.0
# A patch state that could not be saved (a full or failing disk) is saved again after this long,
# doubling up to STATE_RETRY_MAX_S, until it is.
STATE_RETRY_FIRST_S = 1.0
STATE_RETRY_MAX_S = 10.0
KEY_TEST_DBFS = -10.0


def require_supported_ports(cfg: Config) -> None:
    """Refuses, in one sentence, a config that asks for hardware this build cannot drive."""
    if not hardware_ports(cfg) and not has_radio_control(cfg):
        return
    from gateway.ports.site_radios import unsupported_hardware

    problems = unsupported_hardware(cfg)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise UnsupportedHardwareError(problems[0] + more)


def has_radio_control(cfg: Config) -> bool:
    return any(radio.has_hardware_control for radio in cfg.radios.values())


def needs_site_radios(cfg: Config) -> bool:
    """Whether the ports need `SiteRadios`: radios with hardware control, or network links."""
    return has_radio_control(cfg) or any(link.simulated is None for link in cfg.links.values())


def patch_records(control: PatchControl) -> dict[str, PatchRecord]:
    return {
        name: PatchRecord(state=str(status.state), approved_by=dict(status.approved_by))
        for name, status in control.status.items()
        if status.state is not PatchState.DISABLED
    }


@dataclass
class _Restart(Exception):
    """A reload that changes what only a restart can (gateway id, frame size, state dir)."""

    what: str


class Daemon:
    def __init__(self, config_path: Path, cfg: Config) -> None:
        self.config_path = config_path
        self.cfg = cfg
        self.site: Site = build_site(cfg)
        self.state_dir = cfg.gateway.state_dir
        self.store = StateStore(self.state_dir, cfg.gateway.id)
        self.notifier = SystemdNotifier()
        self.recent_calls: deque[CallEnd] = deque(maxlen=RECENT_CALLS)
        self.present = Present()  # calls in progress and active alarms (status, MQTT)
        self.started = time.monotonic()
        self.exit_code = 0
        self._stop = asyncio.Event()
        self._noted_signal_while_stopping = False
        self._reload_lock = asyncio.Lock()
        self._tasks: set[asyncio.Future[None]] = set()
        self._save_lock = asyncio.Lock()
        # Why the patch state on disk is behind the engine's, while it is (see `_save`).
        self.state_error: str | None = None
        self._state_tries = 0
        self._state_retry: asyncio.Task[None] | None = None
        self._outbox_failing = False  # the last put to the outbox wrote nothing
        self._loop = asyncio.get_running_loop()
        self.hardware: SiteRadios | None = None
        self.outbox: Outbox | None = None
        self.mqtt: MqttProcess | None = None
        self.retained: RetainedStates | None = None
        if cfg.mqtt is not None:
            self.outbox = Outbox(
                self.state_dir / OUTBOX_FILE, cfg.mqtt.outbox_mb * 1024 * 1024, reserve=True
            )
            # The MQTT client runs in a process of its own (see gateway.mqtt.publisher): its work
            # would otherwise take the interpreter lock from the engine thread.
            verbose = logging.getLogger().getEffectiveLevel() <= logging.DEBUG
            self.mqtt = MqttProcess(
                cfg.mqtt, cfg.gateway.id, self.outbox, self._mqtt_command, verbose=verbose
            )
            self.retained = RetainedStates(self.mqtt)
        self.router = CommandRouter(self, lambda: self.cfg)
        self.runtime = self._build_runtime()
        # Prometheus metrics (`metrics:` in the config): counted from the events, sampled at
        # each scrape like `status` (gateway.run.metrics).
        self.counters = EventCounters()
        self.metrics: MetricsServer | None = None
        if cfg.metrics is not None:
            self.metrics = MetricsServer(
                self.site.gateway_id, cfg.metrics, self._metrics_sample, self._loop
            )

    # ------------------------------------------------------------------ start-up
    def _build_runtime(self) -> EngineRuntime:
        clock = TickClock(datetime.now(UTC), self.site.frame_ms)
        engine, control = self.site.build(clock)
        names = [p.name for p in self.site.ports]
        radios = SimulatedRadios(names, engine.frame_samples)
        add_configured_traffic(self.cfg, radios)
        stamper = EventStamper(self.site.gateway_id)
        if self.outbox is not None:  # seq goes on from where the last run stopped
            stamper.next_seq = self.outbox.last_seq + 1
        bank: PortBank = radios
        if needs_site_radios(self.cfg):
            from gateway.ports.site_radios import SiteRadios

            self.hardware = SiteRadios(
                self.cfg, names, engine.frame_samples, self._loop, audio=radios
            )
            bank = self.hardware

        def publish(events: list[Event]) -> None:  # engine thread: hand over, never block
            self._loop.call_soon_threadsafe(self._on_events, events)

        recording = self.cfg.recording
        recorder = CallRecorder.from_settings(recording) if recording is not None else None
        runtime = EngineRuntime(engine, control, bank, stamper, publish, recorder=recorder)
        runtime.announcer = self._announcer(self.cfg)
        return runtime

    def _announcer(self, cfg: Config) -> Announcer:
        return Announcer(AnnouncementPlan.from_config(cfg, self.config_path.parent))

    def _restore(self) -> None:
        """Patches as they were before the restart, or, at first start, as the config says."""
        state_file = self.state_dir / STATE_FILE
        existed = state_file.exists()
        loaded = self.store.load(list(self.site.config.patches))
        for warning in loaded.warnings:
            log.warning("%s", warning)
        control = self.runtime.control
        if existed and state_file.exists():  # present and not set aside as corrupt
            for name, record in loaded.patches.items():
                events, error = control.restore(name, PatchState(record.state), record.approved_by)
                self.runtime.emit(events)
                if error:
                    log.warning("patch %s not restored: %s", name, error)
        else:
            self.runtime.emit(control.enable_from_config(self.site.patches_enabled_in_config()))

    async def serve(self) -> int:
        if self.metrics is not None:  # a port in use stops us here, before anything is opened
            self.metrics.start()
        if self.hardware is not None:  # sound cards first: a missing one stops us here, cleanly
            self.hardware.start()
        self._restore()
        # Everything loaded so far (numpy, scipy, pydantic, the config) lives for the whole run:
        # take it out of the cyclic collector's reach, so a full collection, which holds the GIL
        # and so stalls the engine thread, scans only what came after (tens of ms otherwise).
        gc.collect()
        gc.freeze()
        await self._save(patch_records(self.runtime.control))
        self.runtime.start()
        server = ControlServer(self.cfg.gateway.control_socket_path, self._handle)
        await server.start()
        loop = self._loop
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop.set)
        loop.add_signal_handler(signal.SIGHUP, self._reload_on_signal)
        watchdog = asyncio.create_task(self._watch_engine())
        background = [asyncio.create_task(self._expire_requests())]
        states: asyncio.Task[None] | None = None
        if self.mqtt is not None and self.retained is not None:
            self.retained.site(site_info(self.cfg), access_states(self.runtime.control))
            states = asyncio.create_task(self.retained.run(self._retained_snapshot))
            background += [asyncio.create_task(self.mqtt.run()), states]
        ports = len(self.site.ports)
        log.info(
            "running %s: %d ports, %d patches, control socket %s",
            self.site.gateway_id,
            ports,
            len(self.site.patches),
            self.cfg.gateway.control_socket_path,
        )
        self.notifier.ready(f"{ports} ports, {len(self.runtime.engine.enabled_patches)} patches on")
        try:
            await self._stop.wait()
        finally:
            self.notifier.stopping()
            log.info("stopping: ending calls and releasing every transmitter")
            watchdog.cancel()
            if self.metrics is not None:  # first: no scrape is to queue work for a stopping engine
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.to_thread(self.metrics.stop), STOP_TIMEOUT_S)
            # A second SIGTERM (an impatient operator, a service manager's repeat) must not kill
            # the stop half-way, before every transmitter is released: it is noted and ignored.
            # The stop is bounded by itself; systemd's SIGKILL after TimeoutStopSec remains.
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.add_signal_handler(sig, self._signal_while_stopping, sig)
            await server.close()
            stopped = await asyncio.to_thread(self.runtime.stop, STOP_TIMEOUT_S)
            if not stopped:
                log.error("the engine did not stop within %.0f s", STOP_TIMEOUT_S)
                self.exit_code = 1
            await asyncio.sleep(0)  # let the engine's last events through (into the outbox)
            if self.retained is not None and states is not None:
                states.cancel()
                self.retained.final(_snapshot(self.runtime, self.cfg))
            # The radios and the MQTT publisher close at once, each within its own limit.
            closing: list[Coroutine[Any, Any, None]] = []
            if self.hardware is not None:  # unkeys every radio and closes every line
                closing.append(self.hardware.close())
            if self.mqtt is not None:
                closing.append(self._close_mqtt(self.mqtt))
            await asyncio.gather(*closing)
            for task in background:
                task.cancel()
            await self._last_save()
            if self.outbox is not None:
                self.outbox.close()
            log.info("stopped")
        return self.exit_code

    async def _close_mqtt(self, mqtt: MqttProcess) -> None:
        """The publisher's last drain and `offline`, within MQTT_CLOSE_TIMEOUT_S. One that runs
        out (a broker that stopped answering) is named in the log and killed: the broker then
        publishes its last will, `offline`, and what it had not sent waits in the outbox for
        the next start."""
        pid = mqtt.pid
        if not await mqtt.close_within(MQTT_CLOSE_TIMEOUT_S):
            log.error(
                "stop: the MQTT publisher did not close within %.1f s; killed (process %s): what "
                "it had not published waits in the outbox",
                MQTT_CLOSE_TIMEOUT_S,
                pid,
            )

    # ------------------------------------------------------------------ events
    def _on_events(self, events: list[Event]) -> None:
        # Each event is encoded once: the same JSON line goes to the log and to the outbox.
        payloads = [to_json_bytes(e) for e in events]
        if event_log.isEnabledFor(logging.INFO):  # one record for the batch, one line an event
            event_log.info("%s", b"\n".join(payloads).decode(), extra={EACH_LINE: True})
        for event in events:
            if event["type"] == "call_end":
                self.recent_calls.appendleft(event)
        self.counters.note(events)
        changes = self.present.note(events)
        if self.retained is not None:
            self.retained.note(events)
        try:
            self._queue(events, payloads)
        finally:
            changes += self._alarms_over()
            if self.retained is not None and changes:
                self.retained.present(changes)

    def _alarms_over(self) -> list[Change]:
        """The outbox alarms whose condition has passed (they have no end event of their own):
        `outbox_not_written` once a put wrote again, `outbox_full` once the outbox keeps every event
        again (its backlog sent down to 90 % of the budget)."""
        changes: list[Change] = []
        if not self._outbox_failing:
            changes += self.present.clear("outbox_not_written")
        if self.outbox is not None and not self.outbox.full:
            changes += self.present.clear("outbox_full")
        return changes

    def _queue(self, events: list[Event], payloads: list[bytes]) -> None:
        if self.mqtt is not None:
            try:
                queued = self.mqtt.queue(events, payloads)
            except OutboxError as exc:  # nothing written: held in memory (see gateway.mqtt.outbox)
                if not self._outbox_failing:
                    self._outbox_failing = True
                    why = str(exc)
                    log.error("MQTT outbox: %s", why)
                    self._raise_alarm("outbox_not_written", why)
                return
            if self._outbox_failing:
                self._outbox_failing = False
                log.warning("MQTT outbox: written again, the messages held in memory included")
            if queued.reserve_spent is not None:
                detail = (
                    f"the disk of {self.state_dir} is full ({queued.reserve_spent}): the MQTT "
                    "outbox goes on in its reserve, about 8,000 events; free space now"
                )
                log.error("%s", detail)
                self._raise_alarm("disk_full", detail)
            if queued.reserve_back:
                detail = f"the disk of {self.state_dir} has room again: the outbox reserve is back"
                log.warning("%s", detail)
                self._raise_alarm("disk_ok", detail)
            if queued.became_full:
                assert self.outbox is not None
                detail = (
                    f"MQTT outbox holds {self.outbox.bytes // 1024} KiB, its budget: call "
                    "records, audit and alarms are still kept; ptt and carrier changes are "
                    "dropped (counted) until the broker takes the backlog"
                )
                log.error("%s", detail)
                self._raise_alarm("outbox_full", detail)

    async def _retained_snapshot(self) -> tuple[dict[str, Any], int]:
        """For the retained states: a snapshot on the engine thread (RuntimeError once the
        engine has stopped), with the seq of the first event it does not include."""
        return await self._on_engine(partial(_snapshot_at, cfg=self.cfg))

    async def _expire_requests(self) -> None:
        while True:
            await asyncio.sleep(EXPIRY_CHECK_S)

            def expire(rt: EngineRuntime) -> dict[str, PatchRecord] | None:
                events = rt.control.expire_pending()
                rt.emit(events)
                return patch_records(rt.control) if events else None

            try:
                records = await self._on_engine(expire)
            except RuntimeError:  # the engine has stopped
                return
            if records is not None:
                await self._save(records)

    # ------------------------------------------------------------------ engine health
    async def _watch_engine(self) -> None:
        interval = self.notifier.watchdog_interval()
        period = min(interval / 2, 1.0) if interval else 1.0
        while True:
            await asyncio.sleep(period)
            if self.runtime.healthy():
                self.notifier.watchdog()
            elif not self.runtime.engine_alive():
                log.critical("the engine thread has died; stopping so the service restarts")
                self.exit_code = 1
                self._stop.set()
                return

    # ------------------------------------------------------------------ commands
    async def _on_engine(self, job: Callable[[EngineRuntime], T]) -> T:
        return await asyncio.wrap_future(self.runtime.submit(job))

    async def _save(self, records: dict[str, PatchRecord]) -> str | None:
        """Saves the patch state; returns None, or why it could not be saved. A change is in
        effect before it is saved, and no command is refused for a failing disk: a dispatcher
        must always be able to switch a patch off, and an incident must not lose its patch to a
        full disk. Instead the failure is loud and repaired: alarm `state_not_saved`, `status`
        says so, every reply says the change is not yet saved, and the state is saved again
        until it is (then alarm `state_saved`)."""
        async with self._save_lock:
            try:
                await asyncio.to_thread(self.store.save, records)
            except Exception as exc:  # a full or read-only disk must not stop the gateway
                why = str(exc)
                self._state_not_saved(why)
                return why
            if self.state_error is not None:
                self._state_saved()
            return None

    def _state_not_saved(self, why: str) -> None:
        self._state_tries += 1
        if self.state_error is not None:  # already raised: the retries go on
            self.state_error = why
            return
        self.state_error = why
        detail = (
            f"patch state not saved: {why}; the patches are as the last commands left them, "
            "but a restart now would bring back the last saved state (saving again until it works)"
        )
        log.error("%s", detail)
        self._raise_alarm("state_not_saved", detail)
        self._state_retry = asyncio.create_task(self._save_again())

    def _state_saved(self) -> None:
        detail = f"patch state saved to {self.store.path} after {self._state_tries} failed tries"
        log.warning("%s", detail)
        self.state_error, self._state_tries = None, 0
        self._raise_alarm("state_saved", detail)

    async def _save_again(self) -> None:
        delay = STATE_RETRY_FIRST_S
        while self.state_error is not None:
            await asyncio.sleep(delay)
            delay = min(delay * 2, STATE_RETRY_MAX_S)
            try:  # the state as it is now, not as it was at the failed save
                records = await self._on_engine(lambda rt: patch_records(rt.control))
            except RuntimeError:  # the engine has stopped: the stop saves a last time
                return
            await self._save(records)

    async def _last_save(self) -> None:
        """At a stop, with the engine stopped: the state that could not be saved, once more."""
        if self._state_retry is not None:
            self._state_retry.cancel()
        if self.state_error is None:
            return
        records = patch_records(self.runtime.control)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._save(records), STOP_TIMEOUT_S)
        if self.state_error is not None:
            log.critical(
                "stopping with the patch state NOT SAVED (%s): the next start restores the last "
                "saved state, not the patches as they were",
                self.state_error,
            )
            self.exit_code = self.exit_code or 1

    def _raise_alarm(self, kind: str, detail: str) -> None:
        def raise_it(rt: EngineRuntime) -> None:
            rt.emit([rt.engine.alarm(kind, detail)])

        if self.runtime.engine_alive():
            self.runtime.submit(raise_it)
        else:  # the first save comes before the engine starts
            raise_it(self.runtime)

    async def _handle(self, request: ControlRequest) -> dict[str, Any]:
        """A control socket request: its peer is a technician (the socket's mode decides who)."""
        who = Principal(request.user, Role.TECHNICIAN)
        reply = await self.router.run(who, Request(request.command, request.args, request.id))
        if not reply["ok"]:
            raise ControlRefused(reply["error"])
        result: dict[str, Any] = reply["result"]
        return result

    async def _mqtt_command(self, user: str, payload: Payload) -> dict[str, Any]:
        return await self.router.mqtt(user, payload)

    # ------------------------------------------------------------------ CommandHost
    async def patch_list(self) -> list[dict[str, Any]]:
        return await self._on_engine(lambda rt: patch_list(rt.engine, rt.control))

    async def patch_command(
        self, who: Principal, command: Command, patch: str
    ) -> tuple[bool, str, str | None]:
        def execute(rt: EngineRuntime) -> tuple[bool, str, str | None, dict[str, PatchRecord]]:
            result = rt.control.execute(who, command, patch)
            rt.emit(result.events)
            state = str(result.state) if result.state is not None else None
            return result.ok, result.message, state, patch_records(rt.control)

        ok, message, state, records = await self._on_engine(execute)
        if ok:
            why = await self._save(records)
            if why is not None:
                message += f" (in effect, but NOT SAVED: {why}; saving again until it works)"
        return ok, message, state

    async def key_test(self, port: str, seconds: float) -> str:
        def queue(rt: EngineRuntime) -> str:
            engine = rt.engine
            if port not in engine.port_index:
                known = ", ".join(p.name for p in engine.ports)
                raise CommandRefused(f"no port named '{clip(port)}' (ports: {known})")
            if not engine.online(port):
                raise CommandRefused(f"port '{port}' is out of service")
            if not engine.port_serves(port)[0]:
                raise CommandRefused(f"port '{port}' is an idle pool radio: it has no channel")
            test_tone = tone(1000.0, seconds, KEY_TEST_DBFS)
            engine.announce([port], test_tone, reason="key_test")
            return (
                f"'{port}' keyed for {seconds:g} s with a 1 kHz tone at {KEY_TEST_DBFS:g} dBFS "
                "as soon as it is free"
            )

        return await self._on_engine(queue)

    async def emit(self, make: Callable[[str], list[Event]]) -> None:
        def run(rt: EngineRuntime) -> None:
            rt.emit(make(rt.engine.clock.iso(rt.engine.tick_index)))

        await self._on_engine(run)

    async def status(self) -> dict[str, Any]:
        cfg = self.cfg
        snapshot = await self._on_engine(lambda rt: _snapshot(rt, cfg))
        over = self._alarms_over()
        if over and self.retained is not None:
            self.retained.present(over)
        snapshot.update(
            {
                "gateway": self.site.gateway_id,
                "config": str(self.config_path),
                "uptime_s": round(time.monotonic() - self.started, 1),
                "recent_calls": list(self.recent_calls),
                "alarms": self.present.alarms(),  # active now, oldest first
                "ticks": self.runtime.stats.summary(),
            }
        )
        if self.hardware is not None and self.hardware.sound is not None:
            # Per sound-card radio: FIFO under/overruns, clock-drift corrections, FIFO depths;
            # and the clock card's frames against the engine's ticks.
            snapshot["audio"] = self.hardware.sound.stats()
            snapshot["audio_clock"] = self.hardware.sound.clock_stats()
        if self.hardware is not None and self.hardware.links is not None:
            # Per network link: packets, drops by cause, concealment, jitter and its target.
            snapshot["links"] = self.hardware.links.stats()
        snapshot["state"] = {
            "file": str(self.store.path),
            "saved": self.state_error is None,
            "error": self.state_error,
            "failed_tries": self._state_tries,
        }
        if self.runtime.recorder is not None:
            snapshot["recording"] = vars(self.runtime.recorder.stats)
        if self.mqtt is not None and self.outbox is not None:
            snapshot["mqtt"] = {
                "url": self.mqtt.settings.url,
                "connected": self.mqtt.connected,
                "queued": self.outbox.count,
                "queued_bytes": self.outbox.bytes,
                "outbox_full": self.outbox.full,
                "dropped": self.outbox.dropped,
                "held_in_memory": self.outbox.held,  # the disk had no room for them
                "on_reserve": self.outbox.on_reserve,  # the disk is (or was lately) full
                "published": self.mqtt.published,
                "publisher_restarts": self.mqtt.restarts,
            }
        return snapshot

    async def _metrics_sample(self) -> Sample:
        """What a scrape of the metrics shows: as `status`, the engine's part read between two
        ticks and the rest here, on the loop."""
        try:
            view = await self._on_engine(engine_view)
        except RuntimeError:  # the engine is not running (yet, or any more)
            view = None
        outbox = None
        if self.mqtt is not None and self.outbox is not None:
            now = view.now if view is not None else datetime.now(UTC)
            mqtt = self.mqtt
            outbox = outbox_view(self.outbox, mqtt.connected, mqtt.published, mqtt.restarts, now)
        audio = audio_clock = links = None
        if self.hardware is not None and self.hardware.sound is not None:
            audio = self.hardware.sound.stats()
            audio_clock = self.hardware.sound.clock_stats()
        if self.hardware is not None and self.hardware.links is not None:
            links = self.hardware.links.stats()
        return Sample(
            gateway=self.site.gateway_id,
            site=self.cfg.gateway.site,
            uptime_s=time.monotonic() - self.started,
            engine=view,
            counters=self.counters.values(view.now if view is not None else None),
            alarms=active_alarms(self.present.alarms()),
            outbox=outbox,
            audio=audio,
            audio_clock=audio_clock,
            links=links,
        )

    # ------------------------------------------------------------------ reload
    def _signal_while_stopping(self, sig: signal.Signals) -> None:
        if not self._noted_signal_while_stopping:
            self._noted_signal_while_stopping = True
            log.warning(
                "%s while stopping: already stopping, releasing every transmitter first",
                sig.name,
            )

    def _reload_on_signal(self) -> None:
        async def run() -> None:
            try:
                await self.reload("SIGHUP")
            except CommandRefused as refusal:
                log.error("reload refused: %s", refusal)

        task = asyncio.ensure_future(run())
        self._tasks.add(task)  # keep a reference until it is done (asyncio holds only weak ones)
        task.add_done_callback(self._tasks.discard)

    async def reload(self, by: str) -> dict[str, Any]:
        """Validates the config file again and, if it is good, applies only what changed."""
        async with self._reload_lock:
            log.info("reload requested by %s", by)
            self.notifier.reloading()
            try:
                return await self._reload(by)
            finally:
                self.notifier.ready()

    async def _reload(self, by: str) -> dict[str, Any]:
        try:
            cfg = await asyncio.to_thread(
                functools.partial(load_config, self.config_path, for_run=True)
            )
            require_supported_ports(cfg)
            self._check_restart_only(cfg)
        except ConfigError as exc:
            for issue in exc.issues:
                log.error("reload: %s", issue)
            first = exc.issues[0] if exc.issues else exc
            raise CommandRefused(
                f"the new config has {len(exc.issues)} error(s); still running the previous "
                f"one. First: {first}"
            ) from None
        except (UnsupportedHardwareError, _Restart) as exc:
            text = exc.what if isinstance(exc, _Restart) else str(exc)
            raise CommandRefused(f"{text}; still running the previous config") from None
        site = build_site(cfg)
        patterns = traffic_patterns(cfg)
        names = [p.name for p in site.ports]
        hardware = self.hardware
        if hardware is not None and not hardware.compatible(cfg, names):
            raise CommandRefused(
                "the new config changes the ports or the wiring of radios with hardware control; "
                "restart the daemon to apply it; still running the previous config"
            )
        if hardware is None and needs_site_radios(cfg):
            raise CommandRefused(
                "the new config adds hardware control to a radio or a network link; restart "
                "the daemon to apply it; still running the previous config"
            )
        retune = _changed_channels(self.cfg, cfg)
        announcer = self._announcer(cfg)

        def swap(rt: EngineRuntime) -> tuple[list[str], dict[str, PatchRecord]]:
            engine, events = rt.engine.successor(site.ports, site.patches)
            control, more = rt.control.successor(
                engine, site.policies, site.principals, site.patches_enabled_in_config()
            )
            audio = hardware.audio if hardware is not None else rt.ports
            assert isinstance(audio, SimulatedRadios)
            radios = audio.successor(names)
            for port, pattern in patterns.items():
                radios.add_traffic(port, pattern)
            rt.engine, rt.control, rt.announcer = engine, control, announcer
            if hardware is not None:
                hardware.audio = radios
                hardware.set_channels(cfg)
                rt.forget_tuning(retune)
            else:
                rt.ports = radios
            rt.emit(events + more)
            return sorted(engine.enabled_patches), patch_records(control)

        enabled, records = await self._on_engine(swap)
        self.cfg, self.site = cfg, site
        gone = self.present.keep_ports(names)  # the alarms of ports a reload removed end
        if self.retained is not None:  # ports, patches or logins may have come or gone
            self.retained.reloaded()
            self.retained.present(gone)
            self.retained.site(site_info(cfg), access_states(self.runtime.control))
        await self._save(records)
        log.info("reloaded %s: enabled patches: %s", self.config_path, ", ".join(enabled))
        return {"reloaded": str(self.config_path), "enabled": enabled}

    def _check_restart_only(self, cfg: Config) -> None:
        old, new = self.cfg.gateway, cfg.gateway
        for key in ("id", "frame_ms", "state_dir", "control_socket"):
            if getattr(old, key) != getattr(new, key):
                raise _Restart(f"gateway.{key} changed: restart the daemon to apply it")
        for section in ("mqtt", "recording", "metrics"):
            if getattr(self.cfg, section) != getattr(cfg, section):
                raise _Restart(f"the {section} section changed: restart the daemon to apply it")


def _changed_channels(old: Config, new: Config) -> set[str]:
    """Talkgroups whose frequencies or tones differ between two configs (radios must retune)."""
    changed = set()
    for ref in new.talkgroup_refs():
        try:
            before = old.talkgroup(ref)
        except KeyError:
            continue
        if before != new.talkgroup(ref):
            changed.add(ref)
    return changed


def _snapshot(rt: EngineRuntime, cfg: Config) -> dict[str, Any]:
    return status_snapshot(rt.engine, rt.control, cfg)


def _snapshot_at(rt: EngineRuntime, cfg: Config) -> tuple[dict[str, Any], int]:
    """A snapshot, and the seq of the first event it does not include."""
    return status_snapshot(rt.engine, rt.control, cfg), rt.stamper.next_seq


async def _serve(config_path: Path, cfg: Config) -> int:
    return await Daemon(config_path, cfg).serve()


def run_daemon(config_path: Path) -> int:
    # A crash in a C library (PortAudio, alsa-lib) prints every thread's Python stack to stderr
    # (the journal) before the process dies: the one clue systemd's restart would otherwise erase.
    faulthandler.enable()
    cfg = load_config(config_path, for_run=True)
    require_supported_ports(cfg)
    lock = acquire_lock(cfg.gateway.state_dir)
    try:
        return asyncio.run(_serve(config_path, cfg))
    finally:
        # Closing the loop put the default handlers back: a late signal must not turn a clean
        # stop's exit code into a death by signal.
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        lock.release()
