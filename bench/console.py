"""Web console benchmark: how soon an event at the broker shows on a dispatcher's page, and
whether a page following a large region keeps up with a burst.

    .venv/bin/python -m bench.console [--gateways 4] [--ports 64] [--rate 50] [--seconds 20]
        [--samples 60] [--load N]

A private mosquitto with a WebSockets listener (tests/support/mqtt_env.py's `Broker`), the
console served as `crosspatch console` serves it, and headless Chromium (Debian's, via
Selenium) logged in at 1280x800. `--gateways` gateways are played by one MQTT client publishing
what a gateway publishes (retained status, info, `--ports` port states and two patch states
each, then live events), with QoS 1 as a gateway does.

Each sample publishes one change and waits until the page shows it; its lag runs from just
before the publish to the moment a MutationObserver in the page sees the changed element (both
on this machine's wall clock), so it holds the broker, the WebSocket, MQTT.js, the console's
model and its redraw.

Rows:
- `quiet`: carrier on for one port at a time, one sample every 100 ms (10 events/s);
- `burst`: meanwhile every gateway publishes `--rate` events/s (carrier and PTT changes on
  random ports, and a call start and end now and then) for `--seconds`; a sample every 0.25 s;
- `after burst`: one sample published right after the burst's last event: what is left of a
  backlog (the page is caught up when this is small).
`received` counts the messages the page took against those published to it (none may be lost);
`longest task` is the page's longest main-thread task (PerformanceObserver "longtask", 50 ms
and up) during the row: a page that stalls for seconds would show it here.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from tempfile import mkdtemp
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from bench.machine import cpu_burners, describe
from gateway.console.server import ConsoleServer, ConsoleSettings
from tests.support.browser import Browser
from tests.support.mqtt_env import Broker, free_port

PREFIX = "crosspatch"
PROBE_STATE = {
    "kind": "radio",
    "online": True,
    "talkgroup": None,
    "agency": None,
    "rx_mhz": None,
    "tx_mhz": None,
    "carrier": True,
    "ptt": False,
}

# Keeps, in the page, the first time (Date.now()) each watched selector matched.
WATCH_JS = """
window.__seen = window.__seen || {};
window.__watch = window.__watch || {};
Object.assign(window.__watch, arguments[0]);
if (!window.__observer) {
  const check = () => {
    for (const [name, sel] of Object.entries(window.__watch)) {
      if (document.querySelector(sel)) {
        window.__seen[name] = Date.now();
        delete window.__watch[name];
      }
    }
  };
  window.__observer = new MutationObserver(check);
  window.__observer.observe(document.body, {subtree: true, childList: true, attributes: true});
  window.__longtasks = [];
  new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) window.__longtasks.push(entry.duration);
  }).observe({type: "longtask", buffered: true});
}
"""


@dataclass
class Row:
    name: str
    rate: float
    lags_ms: list[float]
    published: int
    received: int
    longest_task_ms: float


class Region:
    """Plays `gateways` gateways of `ports` ports each on one MQTT client."""

    def __init__(self, broker: Broker, gateways: int, ports: int) -> None:
        self.client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
        self.client.max_inflight_messages_set(200)
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()
        self.gateways = [f"gw-{n}" for n in range(gateways)]
        self.ports = [f"port-{n:03d}" for n in range(ports)]
        self.state: dict[tuple[str, str], dict[str, Any]] = {}
        self.seq = dict.fromkeys(self.gateways, 0)
        self.published = 0  # messages the page subscribes to
        self.calls = 0

    def publish(self, topic: str, payload: Any, retain: bool = False) -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.client.publish(f"{PREFIX}/{topic}", data, qos=1, retain=retain)
        self.published += 1

    def announce(self) -> None:
        for gw in self.gateways:
            self.publish(f"{gw}/status", b"online", retain=True)
            self.publish(
                f"{gw}/info",
                {
                    "gateway": gw,
                    "site": f"bench site {gw}",
                    "version": "bench",
                    "agencies": {"rcmp": {"name": "RCMP", "country": "CA"}},
                    "pending_expiry_s": 900,
                },
                retain=True,
            )
            for n, port in enumerate(self.ports):
                state = {
                    "port": port,
                    "kind": "radio",
                    "online": True,
                    "talkgroup": f"rcmp/tg{n}",
                    "agency": "rcmp",
                    "rx_mhz": 142.0 + n / 100,
                    "tx_mhz": 142.0 + n / 100,
                    "carrier": False,
                    "ptt": False,
                }
                self.state[(gw, port)] = state
                self.publish(f"{gw}/ports/{port}", state, retain=True)
            for name in ("border-tac", "county"):
                self.publish(
                    f"{gw}/patches/{name}",
                    {
                        "patch": name,
                        "state": "enabled",
                        "members": [{"port": p, "talkgroup": f"rcmp/{p}"} for p in self.ports[:4]],
                        "approved_by": [],
                    },
                    retain=True,
                )

    def event(self, gw: str, body: dict[str, Any], topic: str = "events") -> None:
        self.seq[gw] += 1
        self.publish(
            f"{gw}/{topic}",
            {"gateway": gw, "seq": self.seq[gw], "time": _now_iso(), **body},
        )

    def random_event(self, rng: random.Random) -> None:
        gw = rng.choice(self.gateways)
        if rng.random() < 0.05:
            self.calls += 1
            call = {
                "call_id": f"{gw}-c{self.calls}",
                "patch": "border-tac",
                "source": {"port": "port-000", "talkgroup": "rcmp/tg0", "agency": "rcmp"},
                "destinations": [{"port": "port-001", "talkgroup": "rcmp/tg1", "agency": "rcmp"}],
            }
            self.event(gw, {"type": "call_start", **call}, topic="calls")
            self.event(
                gw,
                {"type": "call_end", **call, "duration_s": 1.0, "reason": "carrier_drop"},
                topic="calls",
            )
            return
        port = rng.choice(self.ports[1:])  # port-000 is the samples'
        kind = rng.choice(("carrier", "ptt"))
        state = self.state[(gw, port)]
        state[kind] = not state[kind]
        self.event(gw, {"type": kind, "port": port, "on": state[kind]})

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def _now_iso() -> str:
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"


class Sampler:
    """One sample: a fresh probe row appears on the page (a retained port state of a port no
    one has seen), then is cleared again."""

    def __init__(self, browser: Browser, region: Region) -> None:
        self.browser = browser
        self.region = region
        self.count = 0
        self.pending: dict[str, tuple[float, str]] = {}  # name -> (published at, topic)

    def publish(self) -> str:
        self.count += 1
        gw = self.region.gateways[self.count % len(self.region.gateways)]
        port = f"zz-probe-{self.count:05d}"
        name = f"s{self.count}"
        self.browser.run(WATCH_JS, {name: f'#ports tr[data-gateway="{gw}"][data-port="{port}"]'})
        topic = f"{gw}/ports/{port}"
        state = dict(PROBE_STATE, port=port)
        self.pending[name] = (time.time(), topic)
        self.region.publish(topic, state, retain=True)
        return name

    def collect(self, timeout: float = 30.0) -> list[float]:
        """The lags (ms) of every published sample, in order; clears the probe rows."""
        deadline = time.monotonic() + timeout
        seen: dict[str, float] = {}
        while len(seen) < len(self.pending):
            got = self.browser.run("return window.__seen")
            seen = {k: v for k, v in got.items() if k in self.pending}
            if time.monotonic() > deadline:
                raise SystemExit(f"the page never showed {len(self.pending) - len(seen)} sample(s)")
            time.sleep(0.02)
        lags = [seen[name] - at * 1000 for name, (at, _) in self.pending.items()]
        for _, topic in self.pending.values():
            self.region.publish(topic, b"", retain=True)
        self.pending.clear()
        return lags


def page_counts(browser: Browser) -> tuple[int, float]:
    messages = browser.run("return window.crosspatchConsole.stats.messages")
    tasks = browser.run("const t = window.__longtasks; window.__longtasks = []; return t")
    return int(messages), max(tasks or [0.0])


def caught_up(
    browser: Browser, region: Region, from_published: int, from_messages: int
) -> tuple[int, int, float]:
    """(published, received by the page, its longest task) since the marks, once the page has
    every message published to it (QoS 1 both ways: none may be lost) or 30 s have passed."""
    deadline = time.monotonic() + 30
    while True:
        received, longest = page_counts(browser)
        published = region.published - from_published
        if received - from_messages >= published or time.monotonic() > deadline:
            return published, received - from_messages, longest
        time.sleep(0.1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--gateways", type=int, default=4)
    parser.add_argument("--ports", type=int, default=64, help="ports per gateway")
    parser.add_argument("--rate", type=float, default=50.0, help="burst events/s per gateway")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the burst")
    parser.add_argument("--samples", type=int, default=60, help="quiet samples")
    parser.add_argument("--load", type=int, default=0, metavar="N", help="N CPU burners beside it")
    args = parser.parse_args()
    with cpu_burners(args.load):
        run(args)


def run(args: argparse.Namespace) -> None:
    print(describe(args.load))
    shots = Path(mkdtemp(prefix="crosspatch-bench-console-"))
    with Broker(websockets=True) as broker:
        server = ConsoleServer(
            ConsoleSettings(host="127.0.0.1", port=free_port(), broker_url=broker.ws_url)
        )
        server.start()
        region = Region(broker, args.gateways, args.ports)
        browser = Browser(shots)
        try:
            rows = measure(args, server, region, browser)
        finally:
            browser.close()
            region.close()
            server.stop()
    total_ports = args.gateways * args.ports
    print(
        f"\n{args.gateways} gateways x {args.ports} ports ({total_ports} port rows), "
        f"headless Chromium at 1280x800; lag = broker publish -> element on the page"
    )
    print(
        f"{'row':<12} {'events/s':>9} {'samples':>8} {'p50 ms':>8} {'p95 ms':>8} "
        f"{'max ms':>8} {'received':>17} {'longest task ms':>16}"
    )
    for row in rows:
        lags = sorted(row.lags_ms)
        p95 = lags[min(len(lags) - 1, int(0.95 * len(lags)))]
        print(
            f"{row.name:<12} {row.rate:>9.0f} {len(lags):>8} {statistics.median(lags):>8.1f} "
            f"{p95:>8.1f} {lags[-1]:>8.1f} {f'{row.received}/{row.published}':>17} "
            f"{row.longest_task_ms:>16.0f}"
        )
    print(f"(screenshot of the page after the burst: {shots / 'after-burst.png'})")


def measure(
    args: argparse.Namespace, server: ConsoleServer, region: Region, browser: Browser
) -> list[Row]:
    region.announce()
    browser.open(server.url)
    browser.wait_for("the login form", lambda: browser.find_all("#username"))
    browser.find("#username").send_keys("bench")
    browser.find("#password").send_keys("bench")
    browser.find("#login-button").click()
    want_rows = args.gateways * args.ports
    browser.wait_for(
        "every port row", lambda: len(browser.find_all("#ports tr")) == want_rows, timeout=60
    )
    browser.run(WATCH_JS, {})
    sampler = Sampler(browser, region)
    rows: list[Row] = []

    start_messages, _ = page_counts(browser)
    start_published = region.published
    quiet: list[float] = []
    for _ in range(args.samples):
        sampler.publish()
        quiet += sampler.collect()
        time.sleep(0.1)
    published, received, longest = caught_up(browser, region, start_published, start_messages)
    rows.append(Row("quiet", 10, quiet, published, received, longest))

    rng = random.Random(1)
    burst_from_messages, _ = page_counts(browser)
    burst_from_published = region.published
    per_tick = args.rate * len(region.gateways) / 100  # events every 10 ms
    owed = 0.0
    started = time.monotonic()
    next_sample = started + 0.25
    tick = started
    while time.monotonic() - started < args.seconds:
        owed += per_tick
        while owed >= 1:
            region.random_event(rng)
            owed -= 1
        if time.monotonic() >= next_sample:
            sampler.publish()
            next_sample += 0.25
        tick += 0.01
        time.sleep(max(0.0, tick - time.monotonic()))
    rate = (region.published - burst_from_published) / (time.monotonic() - started)
    burst = sampler.collect(timeout=120)
    sampler.publish()
    after_lags = sampler.collect(timeout=120)
    published, received, longest = caught_up(
        browser, region, burst_from_published, burst_from_messages
    )
    rows.append(Row("burst", rate, burst, published, received, longest))
    rows.append(Row("after burst", 0, after_lags, published, received, 0))
    browser.screenshot("after-burst")
    return rows


if __name__ == "__main__":
    main()
