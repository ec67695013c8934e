"""MQTT benchmark: events per second through the outbox to mosquitto (QoS 1), and the engine's
tick time with that flood against without it.

    .venv/bin/python -m bench.mqtt [--only throughput|ticks] [--seconds 20] [--rounds 3]
        [--events 100000] [--load N]

Both parts run a private mosquitto on a free loopback port (tests/support/mqtt_env.py's
`Broker`) and a subscriber in a process of its own (paho; QoS 0 from the broker, see
`_subscriber_main`) that keeps the `seq` and arrival time of every event it receives, so every
figure is end to end and a lost event shows as a missing seq.

throughput: the daemon's MQTT path on its own, as the daemon runs it: an `Outbox` and an
`MqttProcess` on an asyncio loop (the daemon's side), and the publisher process it starts (an
`MqttClient` that drains the same outbox), fed every 20 ms (as the engine thread hands each
tick's events to the loop) with real engine events (carrier, ptt, call_start, call_end, as the
flooded site below emits them, re-stamped with a fresh seq and time). Rows: a fixed offered
rate, then as fast as the publisher acknowledges (the producer keeps 4096 events queued so the
publisher never waits; latency then includes that queue). queued/s is what went into the
outbox, acked/s what the broker acknowledged (deleted from the outbox), received/s what the
subscriber got; latency is from queueing to arrival at the subscriber; cpu us/ev the CPU time
per event of both processes (the daemon's side and the publisher), daemon us/ev that of the
daemon's side alone (what shares the interpreter with the engine thread), put us/ev the time in
`Outbox.put` (part of it); warnings the log records at WARNING or above, of both processes
(aiomqtt warns of "pending publish calls").

ticks: `crosspatch run` as a real process on a generated site of 384 simulated radios in 48
enabled patches of eight, no tx delay and no hang, so every 40 ms talk burst is a call of its
own (carrier, call_start, seven ptt on and off, call_end, carrier off: ~18 events). Three
conditions, alternated (A B C A B C) so machine noise falls on all alike: (A) quiet: a burst
every 25 s per radio (~250 events/s), with MQTT; (B) flood: a burst every 2.5 s per radio (~2,500
events/s), without an `mqtt:` section, so the engine does the flood's work but nothing is queued
or published; (C) the same flood with MQTT. C against B is what the MQTT path (outbox,
publisher, retained states) costs the engine thread; C against A adds the engine's own work for
ten times the traffic. emitted/s is counted in the daemon's event log, published/s and backlog
come from `crosspatch status` "mqtt", missing from the subscriber (seqs 1..last never
received). Tick time is the time spent in a tick (running queued jobs, reading the simulated
radios, which generate their talk bursts then, the engine), lateness how late a tick started
against its deadline: `crosspatch status` "ticks", which counts from the daemon's start.

Exit status 1 when the subscriber missed an event.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import multiprocessing
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from bench.machine import cpu_burners, describe
from gateway.config import load_config
from gateway.config.models import MqttSettings
from gateway.control.control_socket import ControlUnavailable, request
from gateway.core.events import Event, EventStamper, TickClock, iso_time
from gateway.mqtt.client import encode
from gateway.mqtt.outbox import Outbox, OutMessage, PutResult
from gateway.mqtt.publisher import MqttProcess
from gateway.ports.simulated import SimulatedRadios
from gateway.run.site import build_site
from gateway.sim.simulate import add_configured_traffic
from tests.support.mqtt_env import Broker

GATEWAY = "bench"
FRAME_S = 0.02
EVENT_TOPICS = ("calls", "events", "audit")
OFFERED_RATE = 2500  # events/s of the fixed-rate throughput row
BACKLOG = 4096  # what the as-fast-as-it-goes producer keeps queued (the publisher reports acks
# every 0.1-0.2 s: a smaller backlog would run dry between reports)
WARMUP_S = 2.0  # after the daemon is up, before the measured window
ROUNDS = 3  # of A B C, alternated


# ---------------------------------------------------------------------------------- sites
# Every radio talks 40 ms every EVERY_S seconds (at its own phase); with no tx delay, hang or rx
# inhibit each burst is a call of its own: the most events per burst the simulated radios make.
TALK_S = 0.04
QUIET_EVERY_S = 25.0  # ~250 events/s
FLOOD_EVERY_S = 2.5  # ~2,500 events/s
PATCHES, MEMBERS = 48, 8


def site_config(state_dir: Path, every_s: float, mqtt_port: int | None) -> str:
    lines = [f"gateway: {{id: {GATEWAY}, frame_ms: 20, state_dir: {state_dir}}}", "agencies:"]
    for a in range(PATCHES):
        lines += [
            f"  ag{a}:",
            f"    name: Agency {a}",
            f"    country: {'CA' if a % 2 else 'US'}",
            "    talkgroups:",
        ]
        lines += [
            f"      tg{k}: {{rx_mhz: {150 + a * 0.1 + k * 0.0125:.4f}}}" for k in range(MEMBERS)
        ]
    timing = "timing: {tx_delay_ms: 0, hang_ms: 0, rx_inhibit_ms: 0}"
    lines.append("radios:")
    for a in range(PATCHES):
        for k in range(MEMBERS):
            lines.append(
                f"  r{a}-{k}: {{talkgroup: ag{a}/tg{k}, {timing}, simulated: {{traffic: "
                f"{{every_s: {every_s}, talk_s: {TALK_S}, seed: {a * MEMBERS + k}}}}}}}"
            )
    lines.append("patches:")
    for a in range(PATCHES):
        members = ", ".join(f"ag{a}/tg{k}" for k in range(MEMBERS))
        floor = ("first", "priority", "mix")[a % 3]
        lines.append(f"  p{a}: {{members: [{members}], floor: {floor}, enabled: true}}")
    if mqtt_port is not None:
        lines.append(f"mqtt: {{url: 'mqtt://127.0.0.1:{mqtt_port}'}}")
    return "\n".join(lines) + "\n"


def flood_events(ticks: int) -> list[Event]:
    """The events the flooded site's engine emits in `ticks` ticks (unstamped), in order."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "flood.yaml"
        path.write_text(site_config(Path(tmp) / "state", FLOOD_EVERY_S, None))
        cfg = load_config(path)
    site = build_site(cfg)
    engine, control = site.build(TickClock(datetime.now(UTC), 20))
    radios = SimulatedRadios([p.name for p in site.ports], engine.frame_samples)
    add_configured_traffic(cfg, radios)
    control.enable_from_config(site.patches_enabled_in_config())
    events: list[Event] = []
    for _ in range(ticks):
        rx, carrier = radios.frame()
        result = engine.tick(rx, carrier)
        radios.transmit(result.tx, result.ptt)
        events += result.events
    return events


# ---------------------------------------------------------------------------------- subscriber
@dataclass
class Received:
    count: int  # messages on the event topics, repeats included
    seqs: dict[int, float]  # seq -> first arrival (time.monotonic, the same clock in every process)
    first: float
    last: float

    @property
    def repeats(self) -> int:
        return self.count - len(self.seqs)

    def missing(self, upto: int) -> int:
        """Seqs 1..upto never received."""
        return sum(1 for s in range(1, upto + 1) if s not in self.seqs)

    @property
    def rate(self) -> float:
        return (len(self.seqs) - 1) / (self.last - self.first) if self.last > self.first else 0.0


_SEQ = re.compile(rb'"seq":(\d+)')


def _subscriber_main(port: int, conn: Connection) -> None:
    """A QoS 1 subscriber to every event topic; commands on `conn`: reset, report, stop."""
    lock = threading.Lock()
    state: dict[str, Any] = {"count": 0, "seqs": {}}
    subscribed = threading.Event()

    def on_message(client: paho.Client, userdata: Any, msg: paho.MQTTMessage) -> None:
        now = time.monotonic()
        if msg.topic.rsplit("/", 1)[-1] not in EVENT_TOPICS:
            return
        found = _SEQ.search(msg.payload)  # cheaper than parsing the whole event
        seq = int(found[1]) if found else json.loads(msg.payload)["seq"]
        with lock:
            state["count"] += 1
            state["seqs"].setdefault(seq, now)

    def on_connect(client: paho.Client, userdata: Any, flags: Any, code: Any, props: Any) -> None:
        # QoS 0 from the broker to this subscriber (the gateway publishes with QoS 1, which is
        # what is measured): no PUBACK to send for each message, so this rig takes less CPU
        # from the engine it measures. Over loopback a connected QoS 0 subscriber loses nothing,
        # and `missing` would show it if it did.
        client.subscribe([(f"crosspatch/{GATEWAY}/{t}", 0) for t in EVENT_TOPICS])

    client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
    client.on_message = on_message
    client.on_connect = on_connect
    client.on_subscribe = lambda *args: subscribed.set()
    client.connect("127.0.0.1", port)
    client.loop_start()
    subscribed.wait(10)
    conn.send("ready")
    while True:
        command = conn.recv()
        with lock:
            count, seqs = state["count"], state["seqs"]
            if command == "reset":
                state["count"], state["seqs"] = 0, {}
        if command == "report":
            times = list(seqs.values())
            conn.send((count, seqs, min(times, default=0.0), max(times, default=0.0)))
        elif command == "reset":
            conn.send("ok")
        else:
            break
    client.loop_stop()
    client.disconnect()


class Subscriber:
    def __init__(self, port: int) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(target=_subscriber_main, args=(port, child), daemon=True)
        self._process.start()
        if not self._conn.poll(30) or self._conn.recv() != "ready":
            raise SystemExit("the subscriber did not start")

    def reset(self) -> None:
        self._conn.send("reset")
        self._conn.recv()

    def report(self, settle_s: float = 1.0) -> Received:
        """What arrived since the last reset, once nothing more came for `settle_s`."""
        last = -1
        while True:
            self._conn.send("report")
            count, seqs, first, latest = self._conn.recv()
            if count == last:
                return Received(count, seqs, first, latest)
            last = count
            time.sleep(settle_s)

    def close(self) -> None:
        self._conn.send("stop")
        self._process.join(5)


# ---------------------------------------------------------------------------------- throughput
class TimedOutbox(Outbox):
    """The real outbox, with the time spent queueing (the daemon's side of it) added up."""

    put_s = 0.0

    def put(self, messages: Sequence[OutMessage]) -> PutResult:
        started = time.perf_counter()
        try:
            return super().put(messages)
        finally:
            self.put_s += time.perf_counter() - started


@dataclass
class Flow:
    label: str
    queued: int = 0
    seconds: float = 0.0  # from the first queueing to the last acknowledgement
    queue_s: float = 0.0  # from the first queueing to the last
    cpu_s: float = 0.0  # this process's CPU time (every thread): the daemon's side
    publisher_cpu_s: float = 0.0  # the publisher process's
    put_s: float = 0.0  # in Outbox.put
    warnings: int = 0  # log lines at WARNING or above of the publisher process
    queued_at: dict[int, float] = field(default_factory=dict)  # seq -> time.monotonic


def process_cpu_s(pid: int) -> float:
    """A process's user + system CPU time so far (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _no_commands(user: str, payload: bytes) -> dict[str, Any]:
    return {"id": None, "ok": False, "error": "the benchmark takes no commands"}


async def publish_flow(
    port: int, pool: list[Event], rate: float | None, seconds: float, max_events: int, label: str
) -> Flow:
    """Feeds an outbox every 20 ms for `seconds` (or `max_events`) at `rate` events/s (None: as
    fast as the publisher acknowledges) and returns once the broker acknowledged everything."""
    flow = Flow(label)
    with tempfile.TemporaryDirectory() as tmp:
        outbox = TimedOutbox(Path(tmp) / "outbox.sqlite3")
        settings = MqttSettings(url=f"mqtt://127.0.0.1:{port}")
        publisher_log = Path(tmp) / "publisher.log"
        stderr = publisher_log.open("wb")
        client = MqttProcess(settings, GATEWAY, outbox, _no_commands, stderr=stderr)
        runner = asyncio.create_task(client.run())
        try:
            while not client.connected:
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.2)  # the online status and the subscription are through
            assert client.pid is not None
            stamper = EventStamper(GATEWAY)
            cursor = tick = 0
            cpu0, publisher_cpu0 = time.process_time(), process_cpu_s(client.pid)
            start = time.monotonic()
            while flow.queued < max_events:
                due = start + tick * FRAME_S
                if due >= start + seconds:
                    break
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                if rate is not None:
                    n = int((tick + 1) * rate * FRAME_S) - int(tick * rate * FRAME_S)
                else:
                    n = max(0, BACKLOG - outbox.count)
                n = min(n, max_events - flow.queued)
                now = time.monotonic()
                stamp = iso_time(datetime.now(UTC))
                batch = []
                for _ in range(n):
                    event = pool[cursor % len(pool)]
                    cursor += 1
                    batch.append(stamper.stamp({**event, "time": stamp}))
                if batch:
                    client.queue(batch)
                    for event in batch:
                        flow.queued_at[event["seq"]] = now
                flow.queued += n
                tick += 1
            flow.queue_s = time.monotonic() - start
            deadline = time.monotonic() + 120
            while outbox.count and time.monotonic() < deadline:
                await asyncio.sleep(0.001)
            flow.seconds = time.monotonic() - start
            flow.cpu_s = time.process_time() - cpu0
            flow.publisher_cpu_s = process_cpu_s(client.pid) - publisher_cpu0
            flow.put_s = outbox.put_s
            if outbox.count:
                raise SystemExit(f"{outbox.count} events still queued after 120 s")
        finally:
            await client.close()
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
            outbox.close()
            stderr.close()
        flow.warnings = warning_lines(publisher_log)
    return flow


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))] if ordered else 0.0


def run_throughput(broker: Broker, sub: Subscriber, seconds: float, max_events: int) -> bool:
    pool = flood_events(1000)
    kinds: dict[str, list[int]] = {}
    stamper, now = EventStamper(GATEWAY), iso_time(datetime.now(UTC))
    for e in pool:
        size = len(encode(stamper.stamp({**e, "time": now})))  # as published
        kinds.setdefault(e["type"], []).append(size)
    mix = ", ".join(
        f"{k} {len(v) * 100 / len(pool):.0f}% ~{statistics.mean(v):.0f} B" for k, v in kinds.items()
    )
    print(
        "MQTT throughput: outbox (SQLite WAL) -> publisher process (aiomqtt, QoS 1) -> mosquitto "
        "-> subscriber"
    )
    print(f"events: {mix} (as the flooded site's engine emits them)")
    header = ("offered", "events", "queued/s", "acked/s", "received/s", "missing", "repeats")
    header += ("lat p50 ms", "lat p99 ms", "cpu us/ev", "daemon us/ev", "put us/ev")
    header += ("warnings",)
    print(" ".join(f"{h:>12}" for h in header))
    # As in the daemon, log records go through a handler (counted here, not printed).
    warnings = WarningCounter()
    logging.getLogger().addHandler(warnings)
    ok = True
    for label, rate in ((f"{OFFERED_RATE}/s", float(OFFERED_RATE)), ("max", None)):
        sub.reset()
        warnings.count = 0
        flow = asyncio.run(publish_flow(broker.port, pool, rate, seconds, max_events, label))
        got = sub.report()
        missing = got.missing(flow.queued)
        latencies = [(got.seqs[s] - t) * 1e3 for s, t in flow.queued_at.items() if s in got.seqs]
        row = (
            label,
            f"{flow.queued}",
            f"{flow.queued / flow.queue_s:.0f}",
            f"{flow.queued / flow.seconds:.0f}",
            f"{got.rate:.0f}",
            f"{missing}",
            f"{got.repeats}",
            f"{percentile(latencies, 50):.1f}",
            f"{percentile(latencies, 99):.1f}",
            f"{(flow.cpu_s + flow.publisher_cpu_s) / flow.queued * 1e6:.0f}",
            f"{flow.cpu_s / flow.queued * 1e6:.1f}",
            f"{flow.put_s / flow.queued * 1e6:.1f}",
            f"{warnings.count + flow.warnings}",
        )
        print(" ".join(f"{v:>12}" for v in row), flush=True)
        ok = ok and missing == 0
    logging.getLogger().removeHandler(warnings)
    return ok


class WarningCounter(logging.Handler):
    """Counts log records at WARNING and above (aiomqtt's "pending publish calls" among them)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1


# ---------------------------------------------------------------------------------- ticks
@dataclass
class DaemonRun:
    label: str
    ticks: dict[str, Any]
    published_per_s: float
    backlog: int
    received: Received | None
    last_seq: int
    warnings: int  # lines the daemon logged at WARNING or above
    emitted_per_s: float  # events the engine emitted (the daemon's event log)


class DaemonStopped(Exception):
    """The daemon went away mid-run (on a shared machine, something else may stop it)."""


def tail(log: Path) -> str:
    """The daemon's log without its event lines (every event is logged)."""
    lines = log.read_text(errors="replace").splitlines()
    return "\n".join(line for line in lines if " INFO events: " not in line)[-3000:]


def events_logged(log: Path, start: datetime, end: datetime) -> int:
    """Events the daemon logged (it logs every one, at INFO) between two wall-clock times."""
    first, last = iso_time(start), iso_time(end)
    with log.open(errors="replace") as f:
        return sum(1 for line in f if " INFO events: " in line and first <= line[:24] < last)


def warning_lines(log: Path) -> int:
    """Log lines at WARNING or above (the daemon logs every event at INFO)."""
    with log.open(errors="replace") as f:
        return sum(1 for line in f if " INFO " not in line and line[:1].isdigit())


def status(sock: Path) -> dict[str, Any]:
    result: dict[str, Any] = request(sock, "status", timeout=10)["result"]
    return result


def run_daemon(
    label: str, every_s: float, broker: Broker | None, sub: Subscriber | None, seconds: float
) -> DaemonRun:
    if broker is None:
        sub = None  # nothing is published
    with tempfile.TemporaryDirectory() as tmp:
        state_dir = Path(tmp) / "state"
        config = Path(tmp) / "bench.yaml"
        config.write_text(site_config(state_dir, every_s, broker.port if broker else None))
        sock = state_dir / "control.sock"
        if sub is not None:
            sub.reset()
        log = Path(tmp) / "daemon.log"
        with log.open("wb") as stderr:
            proc = subprocess.Popen(
                [sys.executable, "-m", "gateway.cli", "run", str(config)],
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    up = status(sock)
                    if broker is None or up["mqtt"]["connected"]:
                        break
                except ControlUnavailable:
                    pass
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise SystemExit(f"{label}: the daemon did not start: {tail(log)}")
                time.sleep(0.1)
            time.sleep(WARMUP_S)
            before, t0, wall0 = status(sock), time.monotonic(), datetime.now(UTC)
            time.sleep(seconds)
            after, t1, wall1 = status(sock), time.monotonic(), datetime.now(UTC)
        except ControlUnavailable as exc:
            raise DaemonStopped(f"{label}: {exc}\n{tail(log)}") from None
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(15)
        warnings = warning_lines(log)
        emitted = events_logged(log, wall0, wall1) / (t1 - t0)
    published, backlog = 0.0, 0
    if "mqtt" in after:
        published = (after["mqtt"]["published"] - before["mqtt"]["published"]) / (t1 - t0)
        backlog = after["mqtt"]["queued"]
    received = sub.report() if sub is not None else None
    last_seq = max(received.seqs, default=0) if received is not None else 0
    return DaemonRun(
        label, after["ticks"], published, backlog, received, last_seq, warnings, emitted
    )


def run_ticks(broker: Broker, sub: Subscriber, seconds: float, rounds: int) -> bool:
    print(
        f"engine ticks with and without an MQTT flood: crosspatch run, {PATCHES * MEMBERS} "
        f"simulated radios in {PATCHES} patches of {MEMBERS}, {seconds:.0f} s measured per run, "
        f"{os.cpu_count()} cores"
    )
    conditions = (
        ("A quiet+MQTT", QUIET_EVERY_S, True),
        ("B flood", FLOOD_EVERY_S, False),
        ("C flood+MQTT", FLOOD_EVERY_S, True),
    )
    header = ("condition", "emitted/s", "published/s", "backlog", "missing")
    header += ("tick med", "tick p99", "tick max", "late med", "late p99", "late max", "overruns")
    header += ("warnings",)
    widths = (14, 9, 11, 8, 8, 9, 9, 9, 9, 9, 9, 9, 9)
    print(" ".join(f"{h:>{w}}" for h, w in zip(header, widths, strict=True)))
    runs: dict[str, list[DaemonRun]] = {label: [] for label, _, _ in conditions}
    ok = True
    for _ in range(rounds):
        for label, every_s, with_mqtt in conditions:
            try:
                run = run_daemon(label, every_s, broker if with_mqtt else None, sub, seconds)
            except DaemonStopped as exc:  # once more; a second failure ends the benchmark
                print(f"(run again: {exc})", flush=True)
                run = run_daemon(label, every_s, broker if with_mqtt else None, sub, seconds)
            runs[label].append(run)
            missing = "-"
            if run.received is not None:
                lost = run.received.missing(run.last_seq)
                ok = ok and lost == 0
                missing = f"{lost}"
            tick, late = run.ticks["tick_ms"], run.ticks["lateness_ms"]
            row = (
                label,
                f"{run.emitted_per_s:.0f}",
                f"{run.published_per_s:.0f}" if with_mqtt else "-",
                f"{run.backlog}" if with_mqtt else "-",
                missing,
                *(f"{tick[k]:.2f}" for k in ("median", "p99", "max")),
                *(f"{late[k]:.2f}" for k in ("median", "p99", "max")),
                f"{run.ticks['overruns']}",
                f"{run.warnings}",
            )
            print(" ".join(f"{v:>{w}}" for v, w in zip(row, widths, strict=True)), flush=True)

    def mean_p99(label: str, key: str) -> float:
        return statistics.mean(r.ticks[key]["p99"] for r in runs[label])

    rate = statistics.mean(r.published_per_s for r in runs["C flood+MQTT"])
    emitted = statistics.mean(r.emitted_per_s for r in runs["C flood+MQTT"])
    verdict = "met" if rate >= 2000 else "missed"
    print(
        f"C: {emitted:.0f} events/s emitted, {rate:.0f} published through MQTT "
        f"(mean of {rounds} runs); target at least 2000: {verdict}"
    )
    for key, name in (("tick_ms", "tick time"), ("lateness_ms", "lateness")):
        a, b, c = (mean_p99(label, key) for label, _, _ in conditions)
        print(
            f"p99 {name} (mean of {rounds} runs): A {a:.2f} ms, B {b:.2f} ms, C {c:.2f} ms; "
            f"C/B x{c / b:.2f} (the MQTT path's cost), C/A x{c / a:.2f} (and ten times the "
            "traffic)"
        )
    ratio = mean_p99("C flood+MQTT", "tick_ms") / mean_p99("B flood", "tick_ms")
    verdict = "met" if ratio <= 1.2 else "missed"
    print(f"target p99 tick time with the flood at most x1.2 that without (C/B): {verdict}")
    return ok


# ---------------------------------------------------------------------------------- main
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("throughput", "ticks"), help="run one part")
    parser.add_argument(
        "--seconds", type=float, default=20, help="length of each measured run (default: 20)"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=ROUNDS,
        help=f"rounds of the three tick conditions (default: {ROUNDS})",
    )
    parser.add_argument(
        "--events",
        type=int,
        default=100_000,
        help="at most this many events per throughput row (default: 100000)",
    )
    parser.add_argument(
        "--load", type=int, default=0, metavar="N", help="N CPU-burning processes beside it"
    )
    args = parser.parse_args()
    if args.seconds <= 0 or args.events < 1 or args.rounds < 1:
        parser.error("--seconds, --rounds and --events must be positive")
    ok = True
    with cpu_burners(args.load), Broker() as broker:
        print(describe(args.load))
        sub = Subscriber(broker.port)
        try:
            if args.only in (None, "throughput"):
                ok = run_throughput(broker, sub, args.seconds, args.events) and ok
            if args.only is None:
                print()
            if args.only in (None, "ticks"):
                ok = run_ticks(broker, sub, args.seconds, args.rounds) and ok
        finally:
            sub.close()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
