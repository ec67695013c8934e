"""`crosspatch demo`: the built-in simulated site, running in real time with a live view.

Simulated radios of Canadian and US agencies talk in generated bursts; the engine patches them
across the border frame by frame on a deadline clock, each frame through the daemon's own tick
(`gateway.run.tick.TickStep`); the terminal shows ports (carrier, PTT), patches and the last
calls. Without a terminal (a pipe, a log) it prints one line per event.
With `--mqtt URL` the same events, and the retained port, patch and status states, go to the
broker exactly as the daemon publishes them (through a throw-away outbox).
"""

from __future__ import annotations

import contextlib
import signal
import sys
import tempfile
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from types import FrameType

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from gateway.config import Config, load_config
from gateway.config.models import MqttSettings
from gateway.control.patch_control import PatchControl
from gateway.control.status import access_states, site_info, status_snapshot
from gateway.core.engine import PatchEngine
from gateway.core.event_types import Alarm, CallEnd
from gateway.core.events import Event, EventStamper, TickClock
from gateway.mqtt.sync_publisher import SyncMqttProcess
from gateway.mqtt.topics import Topics
from gateway.ports.simulated import SimulatedRadios
from gateway.run.site import Site, build_site, hardware_ports
from gateway.run.tick import EventSink, TickStep
from gateway.sim.simulate import SimulationError, add_configured_traffic

_LAST_CALLS = 8
_REFRESH_HZ = 5


def demo_config_path() -> Path:
    return Path(str(resources.files("gateway") / "data" / "demo.yaml"))


def _frequency(cfg: Config, talkgroup: str) -> str:
    agency, name = talkgroup.split("/", 1)
    tg = cfg.agencies[agency].talkgroups[name]
    if tg.rx_mhz is None:
        return "link"
    if tg.tx_mhz is None or tg.tx_mhz == tg.rx_mhz:
        return f"{tg.rx_mhz:.4f}"
    return f"{tg.rx_mhz:.4f}/{tg.tx_mhz:.4f}"


class DemoView:
    """What the operator sees: built from the engine's state and the events of each tick."""

    def __init__(self, site: Site, engine: PatchEngine, control: PatchControl) -> None:
        self.site = site
        self.engine = engine
        self.control = control
        self.calls: deque[CallEnd] = deque(maxlen=_LAST_CALLS)
        self.alarms: deque[Alarm] = deque(maxlen=3)
        self.call_count = 0
        self.started = time.monotonic()

    def note(self, event: Event) -> None:
        if event["type"] == "call_end":
            self.calls.appendleft(event)
            self.call_count += 1
        elif event["type"] == "alarm":
            self.alarms.appendleft(event)

    def render(self) -> Group:
        cfg = self.site.config
        engine = self.engine
        elapsed = int(time.monotonic() - self.started)
        header = Text.assemble(
            ("crosspatch demo ", "bold"),
            (f"{self.site.gateway_id}", "bold cyan"),
            f"  simulated radios  up {elapsed // 60:02d}:{elapsed % 60:02d}",
            f"  calls {self.call_count}   Ctrl-C to stop",
        )

        ports = Table(title="Ports", title_justify="left", expand=True)
        for column in ("port", "agency", "talkgroup", "MHz", "RX", "TX", "patch"):
            ports.add_column(column)
        carrier, ptt = engine.carrier, engine.ptt
        for i, spec in enumerate(engine.ports):
            talkgroup, agency_name = engine.port_serves(spec.name)
            if not talkgroup:  # an idle pool radio
                agency_text, talkgroup, mhz = "-", f"(pool {spec.pool})", ""
            else:
                agency_text = f"{agency_name} ({cfg.agencies[agency_name].country})"
                mhz = _frequency(cfg, talkgroup)
            ports.add_row(
                spec.name,
                agency_text,
                talkgroup,
                mhz,
                Text("● carrier", "bold green") if carrier[i] else Text("·", "dim"),
                Text("● PTT", "bold red") if ptt[i] else Text("·", "dim"),
                engine.patch_of_port(spec.name) or "",
            )

        patches = Table(title="Patches", title_justify="left", expand=True)
        for column in ("patch", "state", "floor", "members", "on the air"):
            patches.add_column(column)
        talking = {c["patch"]: c for c in engine.active_calls()}
        styles = {"enabled": "bold green", "pending": "yellow", "disabled": "dim"}
        for name, patch in engine.patches.items():
            state = str(self.control.state(name))
            call = talking.get(name)
            air = (
                Text(
                    f"{call['source']['port']} → "
                    + ", ".join(d["port"] for d in call["destinations"]),
                    "bold",
                )
                if call
                else Text("")
            )
            members = ", ".join(
                [
                    m.port + ("" if m.mode == "talk+listen" else f" ({m.mode})")
                    for m in engine.members(name)
                ]
                + [
                    f"{p.talkgroup} (pool)"
                    for p in patch.pooled
                    if name not in engine.enabled_patches
                ]
            )
            patches.add_row(name, Text(state, styles[state]), str(patch.floor), members, air)

        calls = Table(title="Last calls", title_justify="left", expand=True)
        for column in ("start", "patch", "from", "to", "s", "peak dBFS", "end"):
            calls.add_column(column)
        for ended in self.calls:
            src = ended["source"]
            calls.add_row(
                ended["start"][11:19],
                ended["patch"],
                f"{src['port']} ({src['talkgroup']})",
                ", ".join(d["port"] for d in ended["destinations"]) or "nobody",
                f"{ended['duration_s']:.1f}",
                f"{ended['peak_dbfs']:.1f}",
                ended["reason"],
            )
        parts: list[Table | Text] = [header, ports, patches, calls]
        for alarm in self.alarms:
            parts.append(Text(f"ALARM {alarm['kind']} {alarm.get('port', '')}: {alarm['detail']}"))
        return Group(*parts)


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
    broker = _publisher(mqtt, site.gateway_id, resources) if mqtt is not None else None

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
    late = 0
    live = Live(view.render(), console=console, refresh_per_second=_REFRESH_HZ, screen=False)
    with resources, _StopSignals().installed() as stop:
        step.emit(control.enable_from_config(site.patches_enabled_in_config()))
        if live_view:
            live.start()
        try:
            start = time.monotonic()
            refresh_every = max(1, round(1 / (_REFRESH_HZ * frame_s)))
            states_every = max(1, round(1 / frame_s))  # and at every change
            tick = 0
            while (total is None or tick < total) and not stop.requested:
                # Deadline scheduling: tick n is due at start + n * frame, so no drift builds up.
                delay = start + tick * frame_s - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                elif delay < -frame_s:
                    late += 1
                result = step.run(radios)
                if broker is not None and (result.events or tick % states_every == 0):
                    broker.states(status_snapshot(engine, control, cfg))
                if live_view and tick % refresh_every == 0:
                    live.update(view.render())
                tick += 1
        finally:
            step.release_all()
            if broker is not None:
                broker.states(status_snapshot(engine, control, cfg))
            if live_view:
                live.update(view.render())
                live.stop()
    late_note = f", {late} late frames" if late else ""
    print(
        f"demo stopped: {view.call_count} calls patched; every transmitter released{late_note}",
        file=sys.stderr,
    )
    return 0


def _publisher(
    mqtt: MqttSettings, gateway_id: str, resources: contextlib.ExitStack
) -> SyncMqttProcess:
    """The demo's MQTT publisher: the daemon's publisher process, with a throw-away outbox;
    closed (after a last drain) when `resources` closes. Its log lines (broker unreachable, and
    back) go to this terminal's stderr."""
    scratch = resources.enter_context(tempfile.TemporaryDirectory(prefix="crosspatch-demo-"))
    broker = SyncMqttProcess(mqtt, gateway_id, Path(scratch) / "outbox.sqlite3")
    resources.callback(broker.close)
    base = Topics(mqtt.topic_prefix, gateway_id).base
    print(f"publishing to {mqtt.url} under {base}/", file=sys.stderr)
    return broker
