"""Prometheus metrics of a running `crosspatch run`, scraped over HTTP as Prometheus does: the
gauges follow a call on simulated radios, the counters count it, the outbox shows only with
MQTT, a port in use is a one-line error, and every metric the example Grafana dashboard queries
is in a scrape of a site with a sound card, a link and MQTT."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway.core.events import iso_time
from gateway.run.metrics import EventCounters
from tests.support.daemon import CROSSPATCH, Daemon, Site
from tests.support.paths import ROOT

if TYPE_CHECKING:
    from tests.support.audio_env import AudioEnv

pytest_plugins = ["tests.support.audio_env"]

DASHBOARD = ROOT / "docs" / "grafana-crosspatch.json"

# rcmp-1 talks 1.5 s every 4 s into border-tac; usbp-1 is keyed for it.
SITE = """\
gateway: {{id: metrics-gw, site: Peace Arch test, frame_ms: 20, state_dir: {state_dir}}}
agencies:
  rcmp:
    name: Royal Canadian Mounted Police
    country: CA
    talkgroups:
      tac2: {{rx_mhz: 142.470}}
  usbp:
    name: U.S. Border Patrol
    country: US
    talkgroups:
      ch4: {{rx_mhz: 163.100}}
radios:
  rcmp-1:
    talkgroup: rcmp/tac2
    simulated: {{traffic: {{every_s: 4, talk_s: 1.5, seed: 1}}}}
    timing: {{tx_delay_ms: 0, hang_ms: 300}}
  usbp-1:
    talkgroup: usbp/ch4
    simulated: {{}}
    timing: {{tx_delay_ms: 0, hang_ms: 300}}
patches:
  border-tac:
    members: [rcmp/tac2, usbp/ch4]
    enabled: true
access:
  technicians: [tech1]
{more}
"""

# A sound-card radio, a simulated one, an RTP link to a loopback peer that never answers (and
# times out usbp-1's 1 s talks: an alarm), and a broker that is not there: every kind of metric.
FULL_SITE = """\
gateway: {{id: full-gw, frame_ms: 20, state_dir: {state_dir}}}
agencies:
  rcmp:
    name: Royal Canadian Mounted Police
    country: CA
    talkgroups:
      tac2: {{rx_mhz: 142.470}}
  usbp:
    name: U.S. Border Patrol
    country: US
    talkgroups:
      ch4: {{rx_mhz: 163.100}}
      ops: {{}}
radios:
  rcmp-1:
    talkgroup: rcmp/tac2
    audio: {{input: {a_in}, output: {a_out}, auto_level: false}}
    ptt: {{method: none}}
    squelch: {{method: vox, vox_threshold_dbfs: -40}}
  usbp-1:
    talkgroup: usbp/ch4
    simulated: {{traffic: {{every_s: 3, talk_s: 1, seed: 2}}}}
links:
  to-blaine:
    protocol: rtp
    local: 127.0.0.1:{link_local}
    remote: 127.0.0.1:{link_remote}
    codec: pcmu
    talkgroup: usbp/ops
    insecure: true
    timing: {{timeout_s: 0.5}}
patches:
  border:
    members: [rcmp/tac2, usbp/ch4, usbp/ops]
    enabled: true
access:
  technicians: [tech1]
mqtt: {{url: "mqtt://127.0.0.1:1"}}
metrics: {{listen: "127.0.0.1:{metrics}"}}
"""

CALL_SECONDS = "crosspatch_call_seconds_total"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def scrape(port: int) -> Samples:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=20) as reply:
        assert reply.status == 200
        assert reply.headers["Content-Type"].startswith("text/plain")
        text = reply.read().decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    """The sample `name` whose labels include `labels`; None if there is none."""
    wanted = set(labels.items())
    found = [v for (n, have), v in samples.items() if n == name and wanted <= have]
    assert len(found) <= 1, (name, labels, found)
    return found[0] if found else None


def names(samples: Samples) -> set[str]:
    return {name for name, _ in samples}


class MetricsSite(Site):
    def __init__(self, tmp_path: Path, more: str = "") -> None:
        self.more = more
        super().__init__(tmp_path)

    def write(self, border_enabled: bool = True, county_second: str = "") -> None:
        self.config.write_text(SITE.format(state_dir=self.state_dir, more=self.more))


@pytest.fixture
def port() -> int:
    return free_port()


@pytest.fixture
def site(tmp_path: Path, port: int) -> Iterator[MetricsSite]:
    s = MetricsSite(tmp_path, f'metrics: {{listen: "127.0.0.1:{port}"}}')
    yield s
    s.close()


def test_a_call_moves_the_gauges_and_counters_a_user_watches(site: MetricsSite, port: int) -> None:
    daemon = site.start()
    site.wait_ready(daemon)
    first = scrape(port)
    gw = {"gateway": "metrics-gw"}
    assert value(first, "crosspatch_info", site="Peace Arch test", **gw) == 1
    assert value(first, "crosspatch_engine_running", **gw) == 1
    for p in ("rcmp-1", "usbp-1"):
        assert value(first, "crosspatch_port_online", port=p, **gw) == 1
    assert value(first, "crosspatch_patch_enabled", patch="border-tac", **gw) == 1
    assert value(first, "crosspatch_alarms_active", **gw) is None  # no alarm kind seen yet
    # Without MQTT, nothing of it; without sound cards or links, nothing of theirs.
    assert not {n for n in names(first) if re.match(r"crosspatch_(outbox|mqtt|audio|link)_", n)}
    calls_before = value(first, "crosspatch_calls_total", patch="border-tac", port="rcmp-1", **gw)
    assert calls_before is not None  # every member's series exists from the start

    # During a call: rcmp-1 heard, usbp-1 keyed, the call counted.
    def during() -> Samples | None:
        s = scrape(port)
        heard = value(s, "crosspatch_port_carrier", port="rcmp-1", **gw) == 1
        keyed = value(s, "crosspatch_port_keyed", port="usbp-1", **gw) == 1
        return s if heard and keyed else None

    on_air = daemon.wait_for(during, timeout=30)
    calls = value(on_air, "crosspatch_calls_total", patch="border-tac", port="rcmp-1", **gw)
    assert calls is not None and calls >= 1
    assert value(on_air, "crosspatch_port_keyed", port="rcmp-1", **gw) == 0  # no echo

    # After it: the gauges back to 0, the call's seconds and usbp-1's PTT time counted.
    def after() -> Samples | None:
        s = scrape(port)
        quiet = value(s, "crosspatch_port_carrier", port="rcmp-1", **gw) == 0
        unkeyed = value(s, "crosspatch_port_keyed", port="usbp-1", **gw) == 0
        talked = value(s, CALL_SECONDS, patch="border-tac", port="rcmp-1", **gw)
        return s if quiet and unkeyed and (talked or 0) > 0 else None

    off_air = daemon.wait_for(after, timeout=30)
    call_s = value(off_air, CALL_SECONDS, patch="border-tac", port="rcmp-1", **gw)
    assert call_s is not None and call_s >= 1.0  # 1.5 s talks
    ptt_s = value(off_air, "crosspatch_port_ptt_seconds_total", port="usbp-1", **gw)
    assert ptt_s is not None and ptt_s >= 1.0
    assert (value(off_air, "crosspatch_port_keyups_total", port="usbp-1", **gw) or 0) >= 1
    assert value(off_air, "crosspatch_port_ptt_seconds_total", port="rcmp-1", **gw) == 0

    # The next call: the counter goes up and the PTT time grows.
    def next_call() -> Samples | None:
        s = scrape(port)
        now = value(s, "crosspatch_calls_total", patch="border-tac", port="rcmp-1", **gw)
        return s if (now or 0) > calls else None

    later = daemon.wait_for(next_call, timeout=30)
    assert (value(later, "crosspatch_port_ptt_seconds_total", port="usbp-1", **gw) or 0) > ptt_s

    # The engine's clock: ticks counted, about 50 a second, lateness a histogram of every tick.
    ticks = value(later, "crosspatch_ticks_total", **gw)
    assert ticks is not None and ticks > (value(first, "crosspatch_ticks_total", **gw) or 0)
    assert (value(later, "crosspatch_ticks_per_second", **gw) or 0) > 10
    buckets = sorted(
        (float(dict(labels)["le"]), v)
        for (n, labels), v in later.items()
        if n == "crosspatch_tick_lateness_seconds_bucket"
    )
    counts = [v for _, v in buckets]
    assert counts == sorted(counts) and buckets[-1][0] == float("inf")
    assert counts[-1] == value(later, "crosspatch_tick_lateness_seconds_count", **gw) > 0
    assert (value(later, "crosspatch_tick_overruns_total", **gw) or 0) < ticks

    # `status` tells the same story.
    status = site.status()
    assert status["ticks"]["ticks"] >= ticks

    assert daemon.stop() == 0
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=5):
        pass  # stopped with the daemon


def test_ptt_time_counts_to_the_engine_time_and_never_goes_back() -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)

    def at(seconds: float) -> datetime:
        return t0 + timedelta(seconds=seconds)

    def ptt(on: bool, seconds: float) -> dict[str, object]:
        return {"type": "ptt", "time": iso_time(at(seconds)), "port": "p", "on": on}

    counters = EventCounters()
    counters.note([ptt(True, 0)])
    assert counters.values(at(1.5)).ptt_seconds == {"p": 1.5}  # keyed now: up to the engine's time
    counters.note([ptt(False, 2)])
    done = counters.values(at(1.0))  # a sample of an earlier engine time cannot take it back
    assert done.ptt_seconds == {"p": 2.0} and done.keyups == {"p": 1}
    counters.note([ptt(True, 10), ptt(True, 10.5)])
    later = counters.values(at(11))
    assert later.ptt_seconds == {"p": 3.0} and later.keyups == {"p": 2}
    assert counters.values(None).ptt_seconds == {"p": 3.0}


def test_a_port_in_use_is_a_one_line_error_at_start(site: MetricsSite, port: int) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        result = subprocess.run(
            [*CROSSPATCH, "run", str(site.config)], capture_output=True, text=True, timeout=60
        )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if "metrics" in line]
    assert len(lines) == 1, result.stderr
    assert f"metrics.listen 127.0.0.1:{port}" in lines[0] and "in use" in lines[0], lines[0]
    assert not site.socket.exists()  # nothing started


def test_without_the_section_nothing_listens(tmp_path: Path) -> None:
    site = MetricsSite(tmp_path)
    try:
        daemon = site.start()
        site.wait_ready(daemon)
        assert not any("metrics on" in line for line in daemon.lines)
        assert daemon.stop() == 0
    finally:
        site.close()


@pytest.fixture
def full_site(tmp_path: Path, audio_env: AudioEnv) -> Iterator[tuple[Site, int]]:
    sinks = {name: audio_env.add_sink(name) for name in ("m_rx", "m_tx")}
    metrics = free_port()
    site = Site(tmp_path)
    site.config.write_text(
        FULL_SITE.format(
            state_dir=site.state_dir,
            a_in=audio_env.pcm_record(sinks["m_rx"]),
            a_out=audio_env.pcm_play(sinks["m_tx"]),
            link_local=free_port(socket.SOCK_DGRAM),
            link_remote=free_port(socket.SOCK_DGRAM),
            metrics=metrics,
        )
    )
    yield site, metrics
    site.close()
    for sink in sinks.values():
        if sink in audio_env.sinks:
            audio_env.remove_sink(sink)


def dashboard_metrics() -> set[str]:
    board = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    exprs = [t["expr"] for panel in board["panels"] for t in panel.get("targets", [])]
    return {m for expr in exprs for m in re.findall(r"\bcrosspatch_[a-z_]+", expr)}


def test_the_dashboard_is_grafana_json_on_a_prometheus_variable() -> None:
    board = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for panel in board["panels"]:
        if panel.get("type") == "row":
            continue
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"], panel["title"]
    assert len(dashboard_metrics()) >= 20


def test_every_metric_of_the_dashboard_is_in_a_scrape(full_site: tuple[Site, int]) -> None:
    site, port = full_site
    daemon: Daemon = site.start()
    site.wait_ready(daemon)
    gw = {"gateway": "full-gw"}

    def complete() -> Samples | None:
        s = scrape(port)
        out = value(s, "crosspatch_link_packets_total", port="to-blaine", direction="out", **gw)
        waiting = value(s, "crosspatch_outbox_messages", **gw)
        alarms = value(s, "crosspatch_alarms_raised_total", kind="timeout", **gw)
        return s if (out or 0) > 0 and (waiting or 0) > 0 and (alarms or 0) > 0 else None

    samples = daemon.wait_for(complete, timeout=30)
    missing = dashboard_metrics() - names(samples)
    assert not missing, sorted(missing)
    # With MQTT: the broker is not there, so the events wait, and the oldest grows older.
    assert value(samples, "crosspatch_mqtt_connected", **gw) == 0
    age = value(samples, "crosspatch_outbox_oldest_age_seconds", **gw)
    assert age is not None and age >= 0

    def older() -> bool:
        later = value(scrape(port), "crosspatch_outbox_oldest_age_seconds", **gw)
        return (later or 0) > age + 0.5

    daemon.wait_for(older, timeout=30)
    assert value(samples, "crosspatch_link_online", port="to-blaine", **gw) in (0, 1)
    fifo = value(samples, "crosspatch_audio_fifo_seconds", port="rcmp-1", direction="tx", **gw)
    assert fifo is not None and 0 <= fifo < 1
    assert daemon.stop() == 0
