"""`crosspatch demo`: runs the built-in site in real time, ends cleanly on --seconds and Ctrl-C."""

from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime

from rich.console import Console

from gateway.config import load_config
from gateway.core.events import EventStamper, TickClock
from gateway.ports.simulated import SimulatedRadios
from gateway.run.site import build_site
from gateway.sim.demo import DemoView, demo_config_path
from gateway.sim.simulate import add_configured_traffic
from tests.support.child_lines import ChildLines
from tests.support.mqtt_env import Broker, Watcher
from tests.support.paths import ROOT

CROSSPATCH = [sys.executable, "-m", "gateway.cli"]


def test_demo_site_has_two_canadian_and_two_us_agencies_and_a_cross_border_patch() -> None:
    cfg = load_config(demo_config_path())
    countries = [a.country for a in cfg.agencies.values()]
    assert countries.count("CA") >= 2 and countries.count("US") >= 2
    assert all(r.simulated is not None and r.simulated.traffic for r in cfg.radios.values())
    cross_border = [
        name
        for name, patch in cfg.patches.items()
        if patch.enabled
        and {cfg.agencies[m.talkgroup.split("/")[0]].country for m in patch.members} == {"CA", "US"}
    ]
    assert cross_border


def test_demo_runs_for_the_given_seconds_and_patches_traffic() -> None:
    started = time.monotonic()
    result = subprocess.run(
        [*CROSSPATCH, "demo", "--seconds", "12"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert 11.5 < elapsed < 30  # real time, not as fast as possible
    lines = result.stdout.splitlines()
    assert any(" PATCH " in line and "enabled" in line for line in lines)
    calls = [line for line in lines if " CALL " in line]
    assert calls, result.stdout
    assert "->" in calls[0]
    assert "every transmitter released" in result.stderr
    assert "Traceback" not in result.stderr


def test_ctrl_c_ends_the_demo_cleanly_and_releases_every_transmitter() -> None:
    proc = subprocess.Popen(
        [*CROSSPATCH, "demo"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stderr is not None
        errors = ChildLines(proc.stderr)  # drained meanwhile: a full pipe would block the demo
        # Wait until the demo is running (the config's patches are enabled first thing).
        lines = ChildLines(proc.stdout)
        assert " PATCH " in lines.next(timeout_s=30)
        time.sleep(1.0)  # a second of traffic before the Ctrl-C
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=10)
        out = lines.rest()
        err = errors.rest()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    assert proc.returncode == 0, err
    assert "every transmitter released" in err
    assert "Traceback" not in err + out


def test_sigterm_ends_the_demo_cleanly() -> None:
    proc = subprocess.Popen(
        [*CROSSPATCH, "demo"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        ChildLines(proc.stdout).next(timeout_s=30)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    assert proc.returncode == 0 and "every transmitter released" in err


def test_demo_refuses_a_config_with_hardware_radios() -> None:
    example = ROOT / "config" / "example.yaml"
    result = subprocess.run(
        [*CROSSPATCH, "demo", "--config", str(example), "--seconds", "1"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert "simulated ports only" in line and "crosspatch simulate" in line


def test_live_view_shows_ports_patches_and_calls() -> None:
    cfg = load_config(demo_config_path())
    site = build_site(cfg)
    engine, control = site.build(TickClock(datetime(2026, 1, 1, tzinfo=UTC), site.frame_ms))
    radios = SimulatedRadios([p.name for p in site.ports], engine.frame_samples)
    add_configured_traffic(cfg, radios)
    view = DemoView(site, engine, control)
    stamper = EventStamper(site.gateway_id)
    for event in control.enable_from_config(site.patches_enabled_in_config()):
        view.note(stamper.stamp(event))
    for _ in range(40 * 50):  # 40 s of traffic
        rx, carrier = radios.frame()
        result = engine.tick(rx, carrier)
        for event in result.events:
            view.note(stamper.stamp(event))

    console = Console(file=io.StringIO(), width=140, force_terminal=False, color_system=None)
    console.print(view.render())
    screen = console.file.getvalue()  # type: ignore[attr-defined]
    for port in cfg.radios:
        assert port in screen
    for patch in cfg.patches:
        assert patch in screen
    assert "Last calls" in screen and "carrier_drop" in screen
    assert view.call_count > 0


def test_demo_publishes_its_traffic_to_mqtt(broker: Broker) -> None:
    watcher = Watcher(broker, "crosspatch/demo/#")
    result = subprocess.run(
        [*CROSSPATCH, "demo", "--seconds", "8", "--mqtt", broker.url],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    calls = watcher.wait_for(lambda: [m.json() for m in watcher.on("crosspatch/demo/calls")])
    assert {c["type"] for c in calls} >= {"call_start", "call_end"}
    countries = {"rcmp": "CA", "cbsa": "CA", "usbp": "US", "wcso": "US"}
    assert all(c["gateway"] == "demo" and c["source"]["agency"] for c in calls)
    assert {countries.get(c["source"]["agency"]) for c in calls} - {None}
    ports = watcher.on("crosspatch/demo/ports/+")
    assert ports and {"port", "online", "talkgroup", "carrier", "ptt"} <= set(ports[0].json())
    assert watcher.on("crosspatch/demo/patches/border-tac")
    status = watcher.wait_for(lambda: watcher.on("crosspatch/demo/status"))
    assert status[0].payload == b"online"
    watcher.wait_for(lambda: watcher.on("crosspatch/demo/status")[-1].payload == b"offline")
    watcher.close()


def test_demo_takes_dispatchers_commands_from_the_broker(broker: Broker) -> None:
    """With --mqtt the demo is a gateway a console can drive: commands run, are refused and
    audited as on the daemon."""
    watcher = Watcher(broker, "crosspatch/demo/#")
    demo = subprocess.Popen(
        [*CROSSPATCH, "demo", "--seconds", "60", "--mqtt", broker.url],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        watcher.wait_for(
            lambda: [m for m in watcher.on("crosspatch/demo/status") if m.payload == b"online"],
            timeout=30,
        )

        def ask(user: str, command: str, patch: str, n: int) -> dict[str, object]:
            watcher.publish(
                f"crosspatch/demo/cmd/{user}",
                json.dumps({"command": command, "patch": patch, "id": f"t{n}"}),
            )
            (reply,) = watcher.wait_for(
                lambda: [
                    r
                    for m in watcher.on(f"crosspatch/demo/reply/{user}")
                    if (r := m.json()).get("id") == f"t{n}"
                ],
                timeout=15,
            )
            return reply  # type: ignore[no-any-return]

        # county-assist shares wcso/main with port-of-entry, which runs: refused, with the reason.
        refused = ask("dan", "patch.enable", "county-assist", 1)
        assert refused["ok"] is False and "port-of-entry" in str(refused["error"])
        done = ask("bob", "patch.disable", "border-tac", 2)
        assert done["ok"] is True and done["result"] == {  # type: ignore[comparison-overlap]
            "patch": "border-tac",
            "state": "disabled",
            "message": "'border-tac' disabled",
        }
        watcher.wait_for(
            lambda: [
                m
                for m in watcher.on("crosspatch/demo/patches/border-tac")
                if m.payload and m.json()["state"] == "disabled"
            ]
        )

        def audited() -> list[tuple[str, str]]:
            audits = [m.json() for m in watcher.on("crosspatch/demo/audit")]
            return [(a["principal"], a["result"]) for a in audits if a["principal"] != "config"]

        watcher.wait_for(lambda: len(audited()) >= 2)
        assert audited() == [("dan", "refused"), ("bob", "accepted")]
    finally:
        demo.send_signal(signal.SIGINT)
        assert demo.wait(30) == 0, demo.stderr.read() if demo.stderr else ""
    watcher.close()


def test_demo_with_a_bad_mqtt_url_is_one_line() -> None:
    result = subprocess.run(
        [*CROSSPATCH, "demo", "--seconds", "1", "--mqtt", "http://broker"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        "crosspatch demo: --mqtt must be mqtt://host[:port] or mqtts://host[:port] "
        "(got 'http://broker')"
    ]
