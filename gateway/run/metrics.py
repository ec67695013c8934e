"""Prometheus metrics of the running daemon, served over HTTP when the config has `metrics:`.

Nothing here runs in a tick. A scrape (on the HTTP server's thread) asks the daemon's asyncio loop
for a `Sample`, as `crosspatch status` does: the engine's part (ports' carrier, PTT and service,
patches, tick statistics) is read by one small job between two ticks (`engine_view`), the rest
(alarms, the outbox, MQTT, sound cards, links) on the loop, where those live. Counters of what
happened (calls, PTT time) come from the event stream the daemon already receives
(`EventCounters`). Samples are reused for MIN_SAMPLE_S, so a scraper in a hurry cannot queue jobs
for the engine faster than that; a scrape that cannot get a sample within SAMPLE_TIMEOUT_S
answers with what it has (`crosspatch_engine_running 0`) instead of waiting on.

Every metric is named `crosspatch_...` and carries the `gateway` label, so one Prometheus can
scrape several gateways without relabelling; `port` and `patch` label what is per port or patch.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Iterable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from gateway import __version__
from gateway.core.errors import UserError
from gateway.core.events import Event

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from gateway.config.models import MetricsSettings
    from gateway.mqtt.outbox import Outbox
    from gateway.run.loop import EngineRuntime

log = logging.getLogger(__name__)

MIN_SAMPLE_S = 0.1  # at most ten engine jobs a second, however often it is scraped
SAMPLE_TIMEOUT_S = 2.0  # a scrape waits this long for the daemon's loop and engine at most
STOP_TIMEOUT_S = 2.0
# The tick histograms' bucket bounds (ms): a 20 ms frame's tick is due within a few ms; beyond
# one frame it is an overrun.
BUCKETS_MS = (0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 40.0, 100.0)
OUTBOX_PEEK = 10  # messages looked at for the oldest one's time (retained states have none)


class MetricsError(UserError):
    """The metrics server cannot start (its address is in use or not this host's)."""


# --- what a scrape reads ---------------------------------------------------------------------


@dataclass(frozen=True)
class PortView:
    name: str
    online: bool
    carrier: bool
    keyed: bool


@dataclass(frozen=True)
class PatchView:
    name: str
    enabled: bool
    members: tuple[str, ...]


@dataclass(frozen=True)
class TickView:
    ticks: int
    overruns: int
    port_errors: int
    ticks_per_s: float
    frame_s: float
    lateness: Bins
    duration: Bins


@dataclass(frozen=True)
class Bins:
    """A copy of one of the engine's tick histograms (`gateway.run.loop`): counts per bin."""

    counts: npt.NDArray[np.int64]
    bin_ms: float
    max_ms: float


@dataclass(frozen=True)
class EngineView:
    """What the engine thread hands a scrape: read between two ticks, in microseconds."""

    now: datetime  # the engine's time (the time its events carry)
    ports: tuple[PortView, ...]
    patches: tuple[PatchView, ...]
    ticks: TickView


def engine_view(rt: EngineRuntime) -> EngineView:
    """On the engine thread (a job of `EngineRuntime.submit`)."""
    engine = rt.engine
    carrier, ptt = engine.carrier, engine.ptt
    ports = tuple(
        PortView(spec.name, engine.online(spec.name), bool(carrier[i]), bool(ptt[i]))
        for i, spec in enumerate(engine.ports)
    )
    enabled = engine.enabled_patches
    patches = tuple(
        PatchView(name, name in enabled, tuple(m.port for m in engine.members(name)))
        for name in engine.patches
    )
    stats = rt.stats
    ticks = TickView(
        stats.ticks,
        stats.overruns,
        stats.port_errors,
        stats.ticks_per_s,
        rt.frame_s,
        Bins(stats.lateness.counts.copy(), stats.lateness.BIN_MS, stats.lateness.max_ms),
        Bins(stats.duration.counts.copy(), stats.duration.BIN_MS, stats.duration.max_ms),
    )
    return EngineView(engine.clock.at(engine.tick_index), ports, patches, ticks)


@dataclass(frozen=True)
class OutboxView:
    messages: int
    bytes: int
    oldest_age_s: float  # 0 when empty
    dropped: int
    full: bool
    held: int
    connected: bool
    published: int
    publisher_restarts: int


def outbox_view(
    outbox: Outbox, connected: bool, published: int, restarts: int, now: datetime
) -> OutboxView:
    """On the daemon's loop (the thread of its outbox connection)."""
    oldest = 0.0
    if outbox.count > 0:
        for message in outbox.peek(OUTBOX_PEEK):
            when = _event_time(message.payload)
            if when is not None:
                oldest = max((now - when).total_seconds(), 0.0)
                break
    return OutboxView(
        outbox.count,
        outbox.bytes,
        oldest,
        outbox.dropped,
        outbox.full,
        outbox.held,
        connected,
        published,
        restarts,
    )


def _event_time(payload: bytes) -> datetime | None:
    try:
        data = json.loads(payload)
        return datetime.fromisoformat(data["time"]) if isinstance(data, dict) else None
    except (ValueError, KeyError, TypeError):
        return None


@dataclass(frozen=True)
class Sample:
    """Everything one scrape shows. `engine` is None when the engine is not running."""

    gateway: str
    site: str | None
    uptime_s: float
    engine: EngineView | None
    counters: CounterValues
    alarms: dict[str, int]  # active now, by kind
    outbox: OutboxView | None = None
    audio: dict[str, dict[str, Any]] | None = None  # sound-card radios' stats (status "audio")
    audio_clock: dict[str, Any] | None = None
    links: dict[str, dict[str, Any]] | None = None  # network links' stats (status "links")
    taken: float = field(default_factory=time.monotonic)


# --- counters fed from the event stream -------------------------------------------------------


@dataclass(frozen=True)
class CounterValues:
    ptt_seconds: dict[str, float]
    keyups: dict[str, int]
    calls: dict[tuple[str, str], int]  # (patch, talker's port)
    call_seconds: dict[tuple[str, str], float]
    alarms_raised: dict[str, int]


class EventCounters:
    """Counts calls, key-ups, PTT time and alarms from the daemon's events (its loop only)."""

    def __init__(self) -> None:
        self._ptt_done: dict[str, float] = {}
        self._ptt_since: dict[str, datetime] = {}
        self._ptt_shown: dict[str, float] = {}  # what the last sample showed: never less after
        self._keyups: Counter[str] = Counter()
        self._calls: Counter[tuple[str, str]] = Counter()
        self._call_seconds: dict[tuple[str, str], float] = {}
        self._alarms: Counter[str] = Counter()

    def note(self, events: Iterable[Event]) -> None:
        for event in events:
            try:
                self._note(event)
            except (KeyError, TypeError, ValueError):  # a metric lost, never the event stream
                log.exception("metrics: event not counted: %s", event)

    def _note(self, event: Event) -> None:
        if event["type"] == "ptt":
            port = event["port"]
            if event["on"]:
                if port not in self._ptt_since:
                    self._ptt_since[port] = _parse_time(event["time"])
                    self._keyups[port] += 1
            else:
                since = self._ptt_since.pop(port, None)
                if since is not None:
                    held = (_parse_time(event["time"]) - since).total_seconds()
                    self._ptt_done[port] = self._ptt_done.get(port, 0.0) + max(held, 0.0)
        elif event["type"] == "call_start":
            self._calls[(event["patch"], event["source"]["port"])] += 1
        elif event["type"] == "call_end":
            key = (event["patch"], event["source"]["port"])
            self._call_seconds[key] = self._call_seconds.get(key, 0.0) + event["duration_s"]
        elif event["type"] == "alarm":
            self._alarms[event["kind"]] += 1

    def values(self, now: datetime | None) -> CounterValues:
        """The counts so far; PTT time includes transmitters keyed now, up to `now` (the
        engine's time; None: only what has ended)."""
        ptt = dict(self._ptt_done)
        if now is not None:
            for port, since in self._ptt_since.items():
                ptt[port] = ptt.get(port, 0.0) + max((now - since).total_seconds(), 0.0)
        for port, seconds in ptt.items():  # a counter never goes back
            ptt[port] = self._ptt_shown[port] = max(seconds, self._ptt_shown.get(port, 0.0))
        return CounterValues(
            ptt, dict(self._keyups), dict(self._calls), dict(self._call_seconds), dict(self._alarms)
        )


def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text)


def active_alarms(alarms: Sequence[Event]) -> dict[str, int]:
    """How many alarms of each kind are active, from `Present.alarms()`."""
    return dict(Counter(a["kind"] for a in alarms if a["type"] == "alarm"))


# --- the collector -----------------------------------------------------------------------------


class GatewayCollector(Collector):
    """Turns a `Sample` into metric families at each scrape (on the HTTP server's thread)."""

    def __init__(self, gateway: str, take: Callable[[], Sample | None]) -> None:
        self._gateway = gateway
        self._take = take
        self._alarm_kinds: set[str] = set()  # kinds seen active: shown as 0 once they end

    def collect(self) -> Iterator[Metric]:
        sample = self._take()
        if sample is None:
            running = GaugeMetricFamily(
                "crosspatch_engine_running", "1 while the engine ticks", labels=["gateway"]
            )
            running.add_metric([self._gateway], 0)
            yield running
            return
        yield from _Families(sample, self._alarm_kinds).all()


class _Families:
    def __init__(self, sample: Sample, alarm_kinds: set[str]) -> None:
        self.s = sample
        self.gw = sample.gateway
        self.alarm_kinds = alarm_kinds

    def gauge(self, name: str, doc: str, labels: Sequence[str] = ()) -> GaugeMetricFamily:
        return GaugeMetricFamily(name, doc, labels=["gateway", *labels])

    def counter(self, name: str, doc: str, labels: Sequence[str] = ()) -> CounterMetricFamily:
        return CounterMetricFamily(name, doc, labels=["gateway", *labels])

    def all(self) -> Iterator[Metric]:
        s, gw = self.s, self.gw
        info = GaugeMetricFamily(
            "crosspatch_info",
            "The gateway: its id, site and version",
            labels=["gateway", "site", "version"],
        )
        info.add_metric([gw, s.site or "", __version__], 1)
        yield info
        uptime = self.gauge("crosspatch_uptime_seconds", "Seconds since the daemon started")
        uptime.add_metric([gw], round(s.uptime_s, 3))
        yield uptime
        running = self.gauge("crosspatch_engine_running", "1 while the engine ticks")
        running.add_metric([gw], 1 if s.engine is not None else 0)
        yield running
        if s.engine is not None:
            yield from self.engine(s.engine)
        yield from self.events(s.counters, s.engine)
        yield from self.alarms()
        if s.outbox is not None:
            yield from self.outbox(s.outbox)
        if s.audio is not None:
            yield from self.audio(s.audio, s.audio_clock)
        if s.links is not None:
            yield from self.links(s.links)

    def engine(self, e: EngineView) -> Iterator[Metric]:
        gw, t = self.gw, e.ticks
        for name, doc, value in (
            ("crosspatch_ticks_total", "Engine ticks (one a frame)", t.ticks),
            (
                "crosspatch_tick_overruns_total",
                "Ticks that started more than a frame late: their audio could not go out on time",
                t.overruns,
            ),
            ("crosspatch_port_errors_total", "Port reads or sends that failed", t.port_errors),
        ):
            family = self.counter(name, doc)
            family.add_metric([gw], value)
            yield family
        rate = self.gauge(
            "crosspatch_ticks_per_second", "Engine ticks a second, over the last 500 ticks"
        )
        rate.add_metric([gw], t.ticks_per_s)
        yield rate
        frame = self.gauge("crosspatch_frame_seconds", "The engine's frame: a tick's audio")
        frame.add_metric([gw], t.frame_s)
        yield frame
        yield self.histogram(
            "crosspatch_tick_lateness_seconds",
            "How late each tick started after its deadline",
            t.lateness,
        )
        yield self.histogram(
            "crosspatch_tick_duration_seconds", "Time spent in each tick", t.duration
        )
        online = self.gauge("crosspatch_port_online", "1 while the port is in service", ["port"])
        carrier = self.gauge(
            "crosspatch_port_carrier", "1 while the port hears someone (COS)", ["port"]
        )
        keyed = self.gauge(
            "crosspatch_port_keyed", "1 while the gateway keys the port's transmitter", ["port"]
        )
        for p in e.ports:
            online.add_metric([gw, p.name], int(p.online))
            carrier.add_metric([gw, p.name], int(p.carrier))
            keyed.add_metric([gw, p.name], int(p.keyed))
        yield from (online, carrier, keyed)
        enabled = self.gauge("crosspatch_patch_enabled", "1 while the patch is enabled", ["patch"])
        for patch in e.patches:
            enabled.add_metric([gw, patch.name], int(patch.enabled))
        yield enabled

    def histogram(self, name: str, doc: str, bins: Bins) -> HistogramMetricFamily:
        counts = bins.counts
        cumulative = np.cumsum(counts)
        buckets: list[tuple[str, float]] = []
        for bound_ms in BUCKETS_MS:
            upto = min(round(bound_ms / bins.bin_ms), len(counts))  # bins below the bound
            buckets.append((_le(bound_ms / 1000), float(cumulative[upto - 1])))
        total = float(cumulative[-1])
        buckets.append(("+Inf", total))
        # The sum from the bins' middles (each within half a bin, 25 us, of the truth); the last
        # bin holds everything from its lower edge up, counted at the largest value seen.
        middles = (np.arange(len(counts) - 1) + 0.5) * bins.bin_ms
        sum_ms = float(np.dot(counts[:-1], middles)) + float(counts[-1]) * bins.max_ms
        family = HistogramMetricFamily(name, doc, labels=["gateway"])
        family.add_metric([self.gw], buckets, sum_value=sum_ms / 1000)
        return family

    def events(self, c: CounterValues, e: EngineView | None) -> Iterator[Metric]:
        gw = self.gw
        ports = [p.name for p in e.ports] if e is not None else []
        ptt = self.counter(
            "crosspatch_port_ptt_seconds", "Seconds the port's transmitter was keyed", ["port"]
        )
        keyups = self.counter("crosspatch_port_keyups", "Times the port was keyed", ["port"])
        for port in sorted({*ports, *c.ptt_seconds}):
            ptt.add_metric([gw, port], round(c.ptt_seconds.get(port, 0.0), 3))
        for port in sorted({*ports, *c.keyups}):
            keyups.add_metric([gw, port], c.keyups.get(port, 0))
        yield from (ptt, keyups)
        # Every member of every patch from the start, so that the first call is an increase.
        pairs = {(p.name, m) for p in (e.patches if e is not None else ()) for m in p.members}
        calls = self.counter(
            "crosspatch_calls",
            "Calls started, by patch and by the talker's port",
            ["patch", "port"],
        )
        seconds = self.counter(
            "crosspatch_call_seconds",
            "Seconds of calls that ended, by patch and by the talker's port",
            ["patch", "port"],
        )
        for key in sorted(pairs | set(c.calls)):
            calls.add_metric([gw, *key], c.calls.get(key, 0))
        for key in sorted(pairs | set(c.call_seconds)):
            seconds.add_metric([gw, *key], round(c.call_seconds.get(key, 0.0), 3))
        yield from (calls, seconds)
        raised = self.counter("crosspatch_alarms_raised", "Alarms raised, by kind", ["kind"])
        for kind, count in sorted(c.alarms_raised.items()):
            raised.add_metric([gw, kind], count)
        yield raised

    def alarms(self) -> Iterator[Metric]:
        active = self.s.alarms
        self.alarm_kinds.update(active)
        family = self.gauge("crosspatch_alarms_active", "Alarms active now, by kind", ["kind"])
        for kind in sorted(self.alarm_kinds):
            family.add_metric([self.gw, kind], active.get(kind, 0))
        yield family

    def outbox(self, o: OutboxView) -> Iterator[Metric]:
        gw = self.gw
        for name, doc, value in (
            ("crosspatch_mqtt_connected", "1 while the MQTT publisher is connected", o.connected),
            ("crosspatch_outbox_messages", "Messages waiting for the broker", o.messages),
            ("crosspatch_outbox_bytes", "Bytes waiting in the outbox", o.bytes),
            (
                "crosspatch_outbox_oldest_age_seconds",
                "Age of the oldest event waiting in the outbox (0 when empty)",
                round(o.oldest_age_s, 3),
            ),
            ("crosspatch_outbox_full", "1 while the outbox is at its budget", o.full),
            ("crosspatch_outbox_held", "Messages held in memory: the disk had no room", o.held),
        ):
            family = self.gauge(name, doc)
            family.add_metric([gw], float(value))
            yield family
        for name, doc, value in (
            ("crosspatch_outbox_dropped", "Changes a full outbox dropped", o.dropped),
            ("crosspatch_mqtt_published", "Messages the broker acknowledged", o.published),
            ("crosspatch_mqtt_publisher_restarts", "Publisher restarts", o.publisher_restarts),
        ):
            counter = self.counter(name, doc)
            counter.add_metric([gw], value)
            yield counter

    def audio(
        self, audio: dict[str, dict[str, Any]], clock: dict[str, Any] | None
    ) -> Iterator[Metric]:
        gw = self.gw
        fifo = self.gauge(
            "crosspatch_audio_fifo_seconds",
            "Audio waiting in a sound-card radio's FIFO",
            ["port", "direction"],
        )
        drift = self.counter(
            "crosspatch_audio_drift_corrections",
            "Samples dropped or added to follow a sound card's clock",
            ["port", "direction"],
        )
        resyncs = self.counter(
            "crosspatch_audio_resyncs", "FIFO resynchronisations", ["port", "direction"]
        )
        underruns = self.counter("crosspatch_audio_underruns", "FIFO underruns", ["port"])
        overruns = self.counter("crosspatch_audio_overruns", "FIFO overruns", ["port"])
        for port, st in sorted(audio.items()):
            for d in ("rx", "tx"):
                fifo.add_metric([gw, port, d], float(st.get(f"{d}_fifo_ms", 0.0)) / 1000)
                drift.add_metric([gw, port, d], st.get(f"{d}_drift_corrections", 0))
                resyncs.add_metric([gw, port, d], st.get(f"{d}_resyncs", 0))
            underruns.add_metric([gw, port], st.get("underruns", 0))
            overruns.add_metric([gw, port], st.get("overruns", 0))
        yield from (fifo, drift, resyncs, underruns, overruns)
        if clock is not None:
            backlog = self.gauge(
                "crosspatch_audio_clock_backlog_frames",
                "Frames the clock card delivered that the engine has not ticked yet",
                ["card"],
            )
            backlog.add_metric([gw, str(clock.get("card", ""))], float(clock.get("backlog", 0)))
            yield backlog

    def links(self, links: dict[str, dict[str, Any]]) -> Iterator[Metric]:
        gw = self.gw
        online = self.gauge("crosspatch_link_online", "1 while the peer is heard", ["port"])
        jitter = self.gauge("crosspatch_link_jitter_seconds", "Measured jitter", ["port"])
        target = self.gauge(
            "crosspatch_link_jitter_target_seconds", "The jitter buffer's delay target", ["port"]
        )
        packets = self.counter("crosspatch_link_packets", "Good packets", ["port", "direction"])
        counted = {
            "lost": ("crosspatch_link_lost_frames", "Frames lost (later ones arrived)"),
            "late": ("crosspatch_link_late_packets", "Packets that came after their slot played"),
            "concealed": ("crosspatch_link_concealed_frames", "Frames the decoder made up"),
            "underruns": ("crosspatch_link_underruns", "Frames with nothing queued in a talkspurt"),
        }
        families = {key: self.counter(name, doc, ["port"]) for key, (name, doc) in counted.items()}
        errors = self.counter("crosspatch_link_send_errors", "Packets not sent", ["port"])
        for port, st in sorted(links.items()):
            online.add_metric([gw, port], int(bool(st.get("online"))))
            jitter.add_metric([gw, port], float(st.get("jitter_ms", 0.0)) / 1000)
            target.add_metric([gw, port], float(st.get("target_ms", 0.0)) / 1000)
            packets.add_metric([gw, port, "in"], st.get("packets_in", 0))
            packets.add_metric([gw, port, "out"], st.get("packets_out", 0))
            for key, family in families.items():
                family.add_metric([gw, port], st.get(f"rx_{key}", 0))
            errors.add_metric([gw, port], st.get("send_errors", 0))
        yield from (online, jitter, target, packets, *families.values(), errors)


def _le(seconds: float) -> str:
    return f"{seconds:g}"


# --- the HTTP server -------------------------------------------------------------------------


class MetricsServer:
    """Serves /metrics of gateway `gateway` on `settings.listen`; samples come from `sample`, a
    coroutine run on `loop` (the daemon's)."""

    def __init__(
        self,
        gateway: str,
        settings: MetricsSettings,
        sample: Callable[[], Coroutine[Any, Any, Sample]],
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.gateway = gateway
        self.settings = settings
        self._sample = sample
        self._loop = loop
        self._last: Sample | None = None
        self._lock = threading.Lock()  # one scrape samples at a time; the others reuse it
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Binds and serves; raises MetricsError in one line if it cannot."""
        registry = CollectorRegistry()
        registry.register(GatewayCollector(self.gateway, self._take))
        ProcessCollector(registry=registry)  # CPU, memory, open files of the daemon
        listen = self.settings.listen
        try:
            self._server, self._thread = start_http_server(
                self.settings.port, addr=self.settings.host, registry=registry
            )
        except OSError as exc:
            why = exc.strerror or str(exc)
            raise MetricsError(
                f"metrics.listen {listen}: cannot serve metrics there ({why}); free that port "
                "or give metrics.listen another address"
            ) from None
        log.info("metrics on http://%s/metrics", listen)

    def _take(self) -> Sample | None:
        with self._lock:
            last = self._last
            if last is not None and time.monotonic() - last.taken < MIN_SAMPLE_S:
                return last
            future: Future[Sample] | None = None
            try:
                future = asyncio.run_coroutine_threadsafe(self._sample(), self._loop)
                self._last = future.result(SAMPLE_TIMEOUT_S)
            except Exception as exc:
                if future is not None:
                    future.cancel()  # a stopping daemon, a busy loop: answer without it
                log.warning("metrics: no sample of the daemon (%s)", exc or type(exc).__name__)
                return None
            return self._last

    def stop(self) -> None:
        """Stops serving (within about half a second: the server's poll interval)."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(STOP_TIMEOUT_S)
