"""Two `crosspatch run` gateways joined by an RTP link over loopback: a Canadian one on 127.0.0.2
and an American one on 127.0.0.3, with a UDP relay of the test's own on 127.0.0.4 between them
that can lose, delay and reorder packets, or cut the link altogether.

Each gateway patches its simulated radio with the talkgroup its link carries, so a call on the
Canadian radio keys the American one through the link, and back.
"""

from __future__ import annotations

import base64
import os
import random
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.support.daemon import CROSSPATCH, Daemon, Site
from tests.support.daemon_links import (
    CA_LINK,
    RELAY_HOST,
    US_LINK,
    Gateways,
    calls_from,
    link_status,
    write_key,
)


@pytest.fixture
def gateways(tmp_path: Path) -> Iterator[Gateways]:
    g = Gateways(tmp_path)
    yield g
    g.close()


def link_status_when(
    site: Site, name: str, condition: Callable[[dict[str, Any]], bool], timeout: float = 10.0
) -> dict[str, Any]:
    """The link's status once `condition` holds for it."""
    deadline = time.monotonic() + timeout
    while True:
        stats = link_status(site, name)
        if condition(stats):
            return stats
        if time.monotonic() > deadline:
            raise AssertionError(f"{name}: the condition never held: {stats}")
        time.sleep(0.05)


def wait_linked(g: Gateways, timeout: float = 15.0) -> None:
    """Until each side has heard the other (keep-alives at least)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ca, us = link_status(g.ca, CA_LINK), link_status(g.us, US_LINK)
        if ca["online"] and us["online"] and ca["packets_in"] and us["packets_in"]:
            return
        time.sleep(0.1)
    raise AssertionError(f"the link did not come up: {ca} / {us}")


def alarms(daemon: Daemon, kind: str, port: str, after: int = 0) -> list[dict[str, Any]]:
    found = daemon.events("alarm")[after:]
    return [a for a in found if a["kind"] == kind and a.get("port") == port]


def keyed(daemon: Daemon, port: str, after: int = 0) -> list[dict[str, Any]]:
    return [e for e in daemon.events("ptt")[after:] if e["port"] == port and e["on"]]


def released(daemon: Daemon, port: str, after: int = 0) -> bool:
    """Whether `port` was keyed or unkeyed since event `after`, and unkeyed last."""
    changes = [e for e in daemon.events("ptt")[after:] if e["port"] == port]
    return bool(changes) and not changes[-1]["on"]


def test_calls_cross_the_srtp_link_both_ways(gateways: Gateways) -> None:
    g = gateways
    g.configure(
        ca_traffic="{traffic: {every_s: 5, talk_s: 1.5, seed: 1}}",
        us_traffic="{traffic: {every_s: 5, talk_s: 1.5, seed: 2}}",
    )
    ca, us = g.start()
    wait_linked(g)
    # A Canadian radio's call reaches the American gateway: the link is the source there.
    call = us.wait_for(lambda: calls_from(us, "call_start", US_LINK), timeout=20)[0]
    assert [d["port"] for d in call["destinations"]] == ["usbp-1"]
    assert call["source"]["talkgroup"] == "rcmp/net"
    us.wait_for(lambda: keyed(us, "usbp-1"))
    # ...and an American radio's call reaches the Canadian gateway.
    back = ca.wait_for(lambda: calls_from(ca, "call_start", CA_LINK), timeout=20)[0]
    assert [d["port"] for d in back["destinations"]] == ["rcmp-1"]
    ca.wait_for(lambda: keyed(ca, "rcmp-1"))
    for site, name in ((g.ca, CA_LINK), (g.us, US_LINK)):
        # Frames keep coming while the call lasts: wait for them (a busy machine is slower).
        stats = link_status_when(site, name, lambda s: s["rx_played"] > 20)
        assert stats["srtp"] and stats["codec"] == "pcmu" and stats["online"]
        assert stats["keepalives_in"] > 0
        assert stats["auth_failures"] == stats["malformed"] == stats["unknown_source"] == 0
    text = g.us.cli("status")
    assert text.returncode == 0 and f"{US_LINK:<16} up   pcmu/srtp" in text.stdout
    assert ca.stop() == 0 and us.stop() == 0


def start_of(event: dict[str, Any]) -> float:
    return datetime.fromisoformat(event["start"]).timestamp()


def test_audio_survives_loss_and_jitter_without_ptt_chatter(gateways: Gateways) -> None:
    g = gateways
    g.relay.loss, g.relay.jitter_s = 0.10, 0.040
    g.configure(ca_traffic="{traffic: {every_s: 3, talk_s: 1.6, seed: 3}}")
    ca, us = g.start()
    wait_linked(g)
    mark_us = len(us.events("call_end"))
    us.wait_for(lambda: len(calls_from(us, "call_end", US_LINK, mark_us)) >= 4, timeout=30)
    # Every call sent so far: one that ended on the Canadian side just before `mark_us` may end
    # on the American side, a link's delay later, just after it.
    sent = [c for c in calls_from(ca, "call_end", "rcmp-1") if c["reason"] == "carrier_drop"]
    heard = calls_from(us, "call_end", US_LINK, mark_us)
    assert len(heard) >= 4
    for call in heard:
        # Each call heard through the link is one sent: as long, as loud, nothing chopped.
        match = min(sent, key=lambda c: abs(start_of(c) - start_of(call)))
        assert abs(start_of(match) - start_of(call)) < 1.0
        assert abs(call["duration_s"] - match["duration_s"]) <= 0.2, (call, match)
        assert abs(call["peak_dbfs"] - match["peak_dbfs"]) <= 1.5, (call, match)
        assert call["reason"] == "carrier_drop"
    # The far radio keyed once per call: no chatter from lost or late packets.
    first_heard = us.events("call_end").index(heard[0])
    keys = [e for e in keyed(us, "usbp-1") if e["time"] >= heard[0]["start"]]
    ends = [e for e in us.events("call_end")[first_heard:] if e["source"]["port"] == US_LINK]
    assert len(keys) <= len(ends) + 1
    stats = link_status(g.us, US_LINK)
    assert stats["rx_lost"] > 0 and stats["rx_concealed"] >= stats["rx_lost"]
    assert stats["jitter_ms"] > 5 and stats["target_ms"] >= 40  # adapted to the jitter
    assert stats["rx_late"] <= 0.05 * stats["rx_played"]
    assert ca.stop() == 0 and us.stop() == 0


def test_cutting_the_link_alarms_both_sides_and_restoring_it_rejoins(gateways: Gateways) -> None:
    g = gateways
    g.configure(ca_traffic="{traffic: {every_s: 2.5, talk_s: 2, seed: 4}}")
    ca, us = g.start()
    wait_linked(g)
    us.wait_for(lambda: calls_from(us, "call_start", US_LINK), timeout=20)
    ca.wait_for(lambda: keyed(ca, CA_LINK))
    marks = {ca: len(ca.events("alarm")), us: len(us.events("alarm"))}
    ptt_marks = {ca: len(ca.events("ptt")), us: len(us.events("ptt"))}
    g.relay.cut()
    cut_at = time.monotonic()
    ca.wait_for(lambda: alarms(ca, "port_offline", CA_LINK, marks[ca]), timeout=6)
    us.wait_for(lambda: alarms(us, "port_offline", US_LINK, marks[us]), timeout=6)
    assert time.monotonic() - cut_at >= 1.5  # 10 keep-alives of 200 ms
    offline = alarms(ca, "port_offline", CA_LINK, marks[ca])[0]
    assert "keep-alives missed" in offline["detail"]
    # PTT released: the link is out of service, and the American radio is no longer keyed by it.
    ca.wait_for(lambda: released(ca, CA_LINK, ptt_marks[ca]))
    us.wait_for(lambda: released(us, "usbp-1", ptt_marks[us]))
    statuses = {p["port"]: p for p in g.ca.status()["ports"]}
    assert not statuses[CA_LINK]["online"] and not statuses[CA_LINK]["ptt"]
    # The patch carries on without the link: rcmp-1's traffic still makes calls.
    calls_before = len(calls_from(ca, "call_start", "rcmp-1"))
    ca.wait_for(lambda: len(calls_from(ca, "call_start", "rcmp-1")) > calls_before, timeout=10)

    mark_us_calls = len(us.events("call_start"))
    g.relay.start()
    ca.wait_for(lambda: alarms(ca, "port_online", CA_LINK, marks[ca]), timeout=6)
    us.wait_for(lambda: alarms(us, "port_online", US_LINK, marks[us]), timeout=6)
    # Back in the patch: calls pass again.
    us.wait_for(lambda: calls_from(us, "call_start", US_LINK, mark_us_calls), timeout=15)
    assert ca.stop() == 0 and us.stop() == 0


def test_a_wrong_key_passes_nothing_and_counts_auth_failures(
    gateways: Gateways, tmp_path: Path
) -> None:
    g = gateways
    g.configure(us_key=write_key(tmp_path / "other.key"))
    ca, us = g.start()
    # Not one packet authenticates, so neither side ever hears the other: both links are down
    # (and the Canadian patch never keys a link that is down).
    us.wait_for(lambda: alarms(us, "port_offline", US_LINK), timeout=10)
    ca.wait_for(lambda: alarms(ca, "port_offline", CA_LINK), timeout=10)
    ca.wait_for(lambda: calls_from(ca, "call_start", "rcmp-1"), timeout=20)
    time.sleep(1)  # not happening, a second into a Canadian call: anything reaching the US side
    for site, name in ((g.us, US_LINK), (g.ca, CA_LINK)):
        stats = link_status_when(site, name, lambda s: s["auth_failures"] > 5)
        assert stats["packets_in"] == 0 and not stats["online"]
        assert stats["rx_played"] == 0
    assert alarms(us, "port_online", US_LINK) == alarms(ca, "port_online", CA_LINK) == []
    assert calls_from(us, "call_start", US_LINK) == []
    assert keyed(us, "usbp-1") == []
    assert ca.stop() == 0 and us.stop() == 0


def test_strangers_and_garbage_are_dropped_and_counted_and_calls_carry_on(
    gateways: Gateways,
) -> None:
    g = gateways
    g.configure()
    ca, us = g.start()
    wait_linked(g)
    stranger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    stranger.bind(("127.0.0.5", 0))
    rng = random.Random(9)
    for _ in range(30):  # from an address nobody configured
        stranger.sendto(os.urandom(rng.randrange(0, 300)), g.us_addr)
    stranger.close()
    garbage = [b"", b"\x80", b"\xff" * 40, bytes(3000)]
    garbage += [bytes([0x80 | rng.randrange(64)]) + os.urandom(rng.randrange(11, 200))] * 10
    for data in garbage:  # from the relay, the configured remote: garbage and forgeries
        g.relay.inject(True, data)

    def counted(s: dict[str, Any]) -> bool:
        dropped = s["malformed"] + s["auth_failures"] + s["replayed"]
        return bool(s["unknown_source"] >= 30 and dropped >= len(garbage) - 1)

    stats = link_status_when(g.us, US_LINK, counted)
    assert stats["unknown_source"] == 30
    assert stats["malformed"] >= 3  # short, not version 2
    assert stats["malformed"] + stats["auth_failures"] + stats["replayed"] >= len(garbage) - 1
    assert stats["online"] and us.proc.poll() is None
    mark = len(us.events("call_start"))
    us.wait_for(lambda: calls_from(us, "call_start", US_LINK, mark), timeout=15)
    assert ca.stop() == 0 and us.stop() == 0


def run_once(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CROSSPATCH, *args, str(config)], capture_output=True, text=True, timeout=30, check=False
    )


def test_bad_key_files_and_plain_rtp_to_the_internet_are_one_line_errors(
    gateways: Gateways, tmp_path: Path
) -> None:
    g = gateways
    short = tmp_path / "short.key"
    short.write_text(base64.b64encode(os.urandom(16)).decode() + "\n")
    for key, words in (
        (tmp_path / "missing.key", "missing.key: No such file or directory"),
        (short, "the key is 16 bytes"),
    ):
        g.configure(ca_key=key)
        # `check` refuses what `run` would, in the same located line.
        for command in ("check", "run"):
            result = run_once(g.ca.config, command)
            assert result.returncode == 1, result.stderr
            lines = result.stderr.strip().splitlines()
            assert words in lines[-1] and "links.to-blaine.srtp_key_file" in lines[-1], command
            assert "Traceback" not in result.stderr

    g.configure()
    g.ca.config.write_text(
        g.ca.config.read_text()
        .replace(f"remote: {RELAY_HOST}", "remote: 198.51.100.7")
        .replace(f"srtp_key_file: {g.key}", "insecure: true")
    )
    result = run_once(g.ca.config, "check")
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert "links.to-blaine.insecure: insecure: true is only for a loopback or private" in line
