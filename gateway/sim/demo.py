"""`crosspatch demo`: the built-in simulated site, running in real time with a live view.

Simulated radios of Canadian and US agencies talk in generated bursts; the engine patches them
across the border frame by frame on a deadline clock, each frame through the daemon's own tick
(`gateway.run.tick.TickStep`); the terminal shows ports (carrier, PTT), patches, calls in progress
and the last calls and alarms, cut to fit the terminal (80x24 at the least) as `status --watch`
draws a daemon (gateway.tools.live_view). Without a terminal (a pipe, a log) it prints one line
per event.
With `--mqtt URL` the same events, and the retained port, patch and status states, go to the
broker exactly as the daemon publishes them (through a throw-away outbox), and dispatchers'
commands from the broker (`crosspatch patch ... --mqtt`, the web console) run as on the daemon:
the same router, authorisation, consent and audit (`DemoCommands`).
"""

from __future__ import annotations

import contextlib
import signal
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from types import FrameType
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.text import Text

from gateway.config import Config, load_config
from gateway.config.models import MqttSettings
from gateway.control.patch_control import Command, PatchControl, Principal
from gateway.control.router import CommandRefused, CommandRouter
from gateway.control.status import access_states, patch_list, site_info, status_snapshot
from gateway.core.engine import PatchEngine
from gateway.core.event_types import Alarm, CallEnd
from gateway.core.events import Event, EventStamper, TickClock
from gateway.mqtt.client import CommandHandler
from gateway.mqtt.sync_publisher import SyncMqttProcess
from gateway.mqtt.topics import Topics
from gateway.ports.simulated import SimulatedRadios
from gateway.run.site import Site, build_site, hardware_ports
from gateway.run.tick import EventSink, TickStep
from gateway.sim.simulate import SimulationError, add_configured_traffic
from gateway.tools.live_view import (
    Section,
    alarm_lines,
    call_lines,
    fit,
    now_utc,
    patch_lines,
    port_lines,
)

_LAST_CALLS = 8
_REFRESH_HZ = 5


def demo_config_path() -> Path:
    return Path(str(resources.files("gateway") / "data" / "demo.yaml"))


class DemoView:
    """What the operator sees: built from the engine's state and the events of each tick, and
    drawn as `crosspatch status --watch` draws a daemon (gateway.tools.live_view)."""

    def __init__(self, site: Site, engine: PatchEngine, control: PatchControl) -> None:
        self.site = site
        self.engine = engine
        self.control = control
        self.calls: deque[CallEnd] = deque(maxlen=_LAST_CALLS)
        self.alarms: deque[Alarm] = deque(maxlen=3)
        self.call_count = 0
        self.started = time.monotonic()
        self.countries = {aid: a.country for aid, a in site.config.agencies.items()}

    def note(self, event: Event) -> None:
        if event["type"] == "call_end":
            self.calls.appendleft(event)
            self.call_count += 1
        elif event["type"] == "alarm":
            self.alarms.appendleft(event)

    def render(self, width: int = 80, height: int = 24) -> Group:
        elapsed = int(time.monotonic() - self.started)
        # The built-in site's id is "demo" itself: name the site only when it is another.
        site = self.site.gateway_id
        header = Text.assemble(
            ("crosspatch demo", "bold"),
            ("" if site == "demo" else " ", ""),
            ("" if site == "demo" else site, "bold cyan"),
            f"  simulated radios  up {elapsed // 60:02d}:{elapsed % 60:02d}",
            f"  calls {self.call_count}  Ctrl-C to stop",
        )
        snapshot = status_snapshot(self.engine, self.control, self.site.config)
        calls = snapshot["calls"]
        sections = [
            Section("Ports", port_lines(snapshot["ports"], self.countries), weight=2),
            Section("Patches", patch_lines(snapshot["patches"], calls)),
            Section("Calls in progress", call_lines(calls, now_utc())),
            Section("Last calls", [_ended(call) for call in self.calls]),
            Section("Last alarms", alarm_lines(list(self.alarms))),
        ]
        return fit([header], sections, width, height)


def _ended(call: CallEnd) -> Text:
    src = call["source"]
    to = ", ".join(d["port"] for d in call["destinations"]) or "nobody"
    return Text(
        # The short fields first: a long list of listeners is what the width cuts.
        f"  {call['start'][11:19]} {call['duration_s']:4.1f} s {call['peak_dbfs']:5.1f} dBFS "
        f"{call['reason']:<12} {call['patch']} {src['port']} → {to}"
    )


def describe_event(event: Event) -> str | None:
    """One readable line for the events an operator cares about (plain output mode)."""
    when = event["time"][11:23]
    # Tested on event["type"] itself, so mypy reads each branch's fields as that type's.
    if event["type"] == "call_start":
        src = event["source"]
        to = ", ".join(f"{d['port']} ({d['talkgroup']})" for d in event["destinations"])
        return f"{when} CALL  {event['patch']}: {src['port']} ({src['talkgroup']}) -> {to}"
    if event["type"] == "call_end":
        return (
            f"{when} END   {event['patch']}: {event['source']['port']} after "
            f"{event['duration_s']:.1f} s ({event['reason']}, peak {event['peak_dbfs']:.1f} dBFS)"
        )
    if event["type"] == "patch":
        return f"{when} PATCH {event['patch']} {event['state']} by {event['by']}"
    if event["type"] == "alarm":
        return f"{when} ALARM {event['kind']} {event.get('port', '')}: {event['detail']}"
    return None


class _StopSignals:
    """Ctrl-C and SIGTERM ask the loop to stop at the next frame: no exception can land in the
    middle of a tick or of the final unkey."""

    def __init__(self) -> None:
        self.requested = False

    @contextmanager
    def installed(self) -> Iterator[_StopSignals]:
        def handler(signum: int, frame: FrameType | None) -> None:
            self.requested = True

        previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield self
        finally:
            for sig, old in previous.items():
                signal.signal(sig, old)


class DemoCommands:
    """The demo's side of the command router (`gateway.control.router.CommandHost`): status,
    patch list and patch commands, as the daemon runs them; no key test, no reload.

    It runs on the publisher's loop, which the demo's own thread runs between two ticks, so the
    engine and the patch control are never read mid-tick. The events a command makes wait in
    `pending` for the next tick (`take`): emitting them here would feed the publisher from
    inside its own loop.
    """

    def __init__(self, engine: PatchEngine, control: PatchControl, cfg: Config) -> None:
        self.engine = engine
        self.control = control
        self.cfg = cfg
        self.pending: list[Event] = []
        self.alarms: Callable[[], list[Event]] = list

    def take(self) -> list[Event]:
        events, self.pending = self.pending, []
        return events

    async def status(self) -> dict[str, Any]:
        snapshot = status_snapshot(self.engine, self.control, self.cfg)
        snapshot["alarms"] = self.alarms()
        return snapshot

    async def patch_list(self) -> list[dict[str, Any]]:
        return patch_list(self.engine, self.control)

    async def patch_command(
        self, who: Principal, command: Command, patch: str
    ) -> tuple[bool, str, str | None]:
        result = self.control.execute(who, command, patch)
        self.pending.extend(result.events)
        return result.ok, result.message, str(result.state) if result.state is not None else None

    async def key_test(self, port: str, seconds: float) -> str:
        raise CommandRefused("the demo's radios are simulated: there is nothing to key-test")

    async def reload(self, by: str) -> dict[str, Any]:
        raise CommandRefused("the demo runs its built-in site: there is no config to reload")

    async def emit(self, make: Callable[[str], list[Event]]) -> None:
        self.pending.extend(make(self.engine.clock.iso(self.engine.tick_index)))


def run_demo(
    config_path: Path | None,
    seconds: float | None,
    console: Console | None = None,
    mqtt: MqttSettings | None = None,
) -> int:
    cfg = load_config(config_path or demo_config_path())
    hardware = hardware_ports(cfg)
    if hardware:
        raise SimulationError(
            f"the demo runs simulated ports only; {', '.join(hardware)} "
            "need hardware (use `crosspatch simulate` for a dry run of this config)"
        )
    console = console or Console()
    site = build_site(cfg)
    clock = TickClock(datetime.now(UTC), site.frame_ms)
    engine, control = site.build(clock)
    radios = SimulatedRadios([p.name for p in site.ports], engine.frame_samples)
    add_configured_traffic(cfg, radios)
    view = DemoView(site, engine, control)
    live_view = console.is_terminal
    resources = contextlib.ExitStack()
    commands = DemoCommands(engine, control, cfg)
    router = CommandRouter(commands, lambda: cfg)
    broker = _publisher(mqtt, site.gateway_id, resources, router.mqtt) if mqtt is not None else None
    if broker is not None:
        commands.alarms = broker.present.alarms

    def show(stamped_events: list[Event]) -> None:
        for stamped in stamped_events:
            view.note(stamped)
            if not live_view and (line := describe_event(stamped)):
                print(line, flush=True)

    sinks: list[EventSink] = [show]
    if broker is not None:
        sinks.append(broker.queue)
    step = TickStep(engine, EventStamper(site.gateway_id), sinks)
    if broker is not None:
        broker.site(site_info(cfg), access_states(control))

    frame_s = site.frame_ms / 1000
    total = None if seconds is None else round(seconds / frame_s)
    late = 0  # frames run more than a frame behind their deadline
    tick = 0
    live = Live(
        view.render(*console.size), console=console, refresh_per_second=_REFRESH_HZ, screen=False
    )
    with resources, _StopSignals().installed() as stop:
        step.emit(control.enable_from_config(site.patches_enabled_in_config()))
        if live_view:
            live.start()
        try:
            start = time.monotonic()
            refresh_every = max(1, round(1 / (_REFRESH_HZ * frame_s)))
            states_every = max(1, round(1 / frame_s))  # and at every change
            while (total is None or tick < total) and not stop.requested:
                # Deadline scheduling: tick n is due at start + n * frame, so no drift builds up.
                delay = start + tick * frame_s - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                elif delay < -frame_s:
                    late += 1
                if commands.pending:  # what dispatchers' commands did since the last tick
                    step.emit(commands.take())
                    changed = True
                else:
                    changed = False
                result = step.run(radios)
                if broker is not None:
                    if changed or result.events or tick % states_every == 0:
                        broker.states(status_snapshot(engine, control, cfg))
                    else:
                        broker.poll()  # commands in, replies out
                if live_view and tick % refresh_every == 0:
                    live.update(view.render(*console.size))
                tick += 1
        finally:
            step.release_all()
            if broker is not None:
                broker.states(status_snapshot(engine, control, cfg))
            if live_view:
                live.update(view.render(*console.size))
                live.stop()
    print(
        f"demo stopped: {view.call_count} calls patched; every transmitter released"
        + late_note(late, tick, site.frame_ms),
        file=sys.stderr,
    )
    return 0


def late_note(late: int, ticks: int, frame_ms: int) -> str:
    """The footer's word on frames run more than a frame behind real time, if any: a sign that
    the machine was too busy to keep the demo's clock."""
    if not late:
        return ""
    return f"; {late} of {ticks} frames ran over {frame_ms} ms late (the machine was busy)"


def _publisher(
    mqtt: MqttSettings,
    gateway_id: str,
    resources: contextlib.ExitStack,
    handle_command: CommandHandler,
) -> SyncMqttProcess:
    """The demo's MQTT publisher: the daemon's publisher process, with a throw-away outbox;
    closed (after a last drain) when `resources` closes. Its log lines (broker unreachable, and
    back) go to this terminal's stderr."""
    scratch = resources.enter_context(tempfile.TemporaryDirectory(prefix="crosspatch-demo-"))
    broker = SyncMqttProcess(
        mqtt, gateway_id, Path(scratch) / "outbox.sqlite3", handle_command=handle_command
    )
    resources.callback(broker.close)
    base = Topics(mqtt.topic_prefix, gateway_id).base
    print(f"publishing to {mqtt.url} under {base}/", file=sys.stderr)
    return broker
