"""Two `crosspatch run` gateways joined by an RTP link over loopback: a Canadian one on 127.0.0.2
and an American one on 127.0.0.3, with a UDP relay of the test's own on 127.0.0.4 between them
that can lose, delay and reorder packets, or cut the link altogether.

Each gateway patches its simulated radio with the talkgroup its link carries, so a call on the
Canadian radio keys the American one through the link, and back.
"""

from __future__ import annotations

import base64
import heapq
import itertools
import os
import random
import select
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from test_daemon import CROSSPATCH, Daemon, Site

CA_LINK, US_LINK = "to-blaine", "to-peace-arch"

CA_SITE = """\
gateway: {{id: peace-arch, frame_ms: 20, state_dir: {state_dir}}}
agencies:
  rcmp:
    name: Royal Canadian Mounted Police
    country: CA
    talkgroups:
      tac2: {{rx_mhz: 142.470, ctcss_hz: 131.8}}
  usbp:
    name: U.S. Border Patrol
    country: US
    talkgroups:
      ops: {{}}
radios:
  rcmp-1:
    talkgroup: rcmp/tac2
    simulated: {traffic}
    timing: {{tx_delay_ms: 0, hang_ms: 200}}
links:
  to-blaine:
    protocol: rtp
    local: {local}
    remote: {remote}
    codec: pcmu
    talkgroup: usbp/ops
    {security}
patches:
  border:
    members: [rcmp/tac2, usbp/ops]
    enabled: true
access:
  technicians: [tech1]
"""

US_SITE = """\
gateway: {{id: blaine, frame_ms: 20, state_dir: {state_dir}}}
agencies:
  usbp:
    name: U.S. Border Patrol
    country: US
    talkgroups:
      ch4: {{rx_mhz: 163.100, ctcss_hz: 100.0}}
  rcmp:
    name: Royal Canadian Mounted Police
    country: CA
    talkgroups:
      net: {{}}
radios:
  usbp-1:
    talkgroup: usbp/ch4
    simulated: {traffic}
    timing: {{tx_delay_ms: 0, hang_ms: 200}}
links:
  to-peace-arch:
    protocol: rtp
    local: {local}
    remote: {remote}
    codec: pcmu
    talkgroup: rcmp/net
    {security}
patches:
  border:
    members: [usbp/ch4, rcmp/net]
    enabled: true
access:
  technicians: [tech1]
"""

RELAY_HOST = "127.0.0.4"


def free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


def write_key(path: Path, key: bytes | None = None) -> Path:
    material = key if key is not None else os.urandom(30)
    path.write_text(f"# link key\ninline:{base64.b64encode(material).decode()}\n")
    path.chmod(0o600)
    return path


class Relay:
    """Forwards UDP between the two gateways' links, each side on its own socket (the address
    that gateway has as its `remote`). `loss` drops that share of packets, `jitter_s` delays each
    by a uniform 0..jitter_s (so packets overtake each other); `cut` closes both sockets."""

    def __init__(
        self, ca: tuple[str, int], us: tuple[str, int], loss: float = 0.0, jitter_s: float = 0.0
    ) -> None:
        self.ca, self.us = ca, us
        self.ca_side = (RELAY_HOST, free_port(RELAY_HOST))  # what the Canadian gateway sends to
        self.us_side = (RELAY_HOST, free_port(RELAY_HOST))
        self.loss, self.jitter_s = loss, jitter_s
        self.rng = random.Random(11)
        self.forwarded = 0
        self.dropped = 0
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._socks: dict[str, socket.socket] = {}

    def start(self) -> Relay:
        self._socks = {}
        for side, address in (("ca", self.ca_side), ("us", self.us_side)):
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
            self._socks[side] = sock
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def cut(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        for sock in self._socks.values():
            sock.close()

    def inject(self, to_us: bool, data: bytes) -> None:
        """Sends `data` from the relay's socket, so it comes from the configured remote."""
        if to_us:
            self._socks["us"].sendto(data, self.us)
        else:
            self._socks["ca"].sendto(data, self.ca)

    def _run(self) -> None:
        ca, us = self._socks["ca"], self._socks["us"]
        due: list[tuple[float, int, socket.socket, bytes, tuple[str, int]]] = []
        order = itertools.count()
        while not self._stop.is_set():
            now = time.monotonic()
            while due and due[0][0] <= now:
                _, _, sock, data, target = heapq.heappop(due)
                try:
                    sock.sendto(data, target)
                except OSError:  # the gateway is not up (yet): as the network would, drop it
                    continue
            wait = min(0.05, max(0.0, due[0][0] - now)) if due else 0.05
            ready, _, _ = select.select([ca, us], [], [], wait)
            for sock in ready:
                try:
                    data, source = sock.recvfrom(2048)
                except OSError:
                    continue
                if sock is ca and source == self.ca:
                    out, target = us, self.us
                elif sock is us and source == self.us:
                    out, target = ca, self.ca
                else:
                    continue
                if self.rng.random() < self.loss:
                    self.dropped += 1
                    continue
                self.forwarded += 1
                delay = self.rng.uniform(0, self.jitter_s)
                heapq.heappush(due, (time.monotonic() + delay, next(order), out, data, target))


class Gateways:
    """The two gateways and the relay between them."""

    def __init__(self, tmp_path: Path) -> None:
        self.ca_addr = ("127.0.0.2", free_port("127.0.0.2"))
        self.us_addr = ("127.0.0.3", free_port("127.0.0.3"))
        self.relay = Relay(self.ca_addr, self.us_addr)
        (tmp_path / "ca").mkdir()
        (tmp_path / "us").mkdir()
        self.ca = Site(tmp_path / "ca")
        self.us = Site(tmp_path / "us")
        self.key = write_key(tmp_path / "link.key")
        self.ca_daemon: Daemon | None = None
        self.us_daemon: Daemon | None = None

    def configure(
        self,
        ca_traffic: str = "{traffic: {every_s: 4, talk_s: 2, seed: 1}}",
        us_traffic: str = "{}",
        ca_key: Path | None = None,
        us_key: Path | None = None,
    ) -> None:
        for site, template, local, remote, traffic, key in (
            (self.ca, CA_SITE, self.ca_addr, self.relay.ca_side, ca_traffic, ca_key),
            (self.us, US_SITE, self.us_addr, self.relay.us_side, us_traffic, us_key),
        ):
            site.config.write_text(
                template.format(
                    state_dir=site.state_dir,
                    traffic=traffic,
                    local=f"{local[0]}:{local[1]}",
                    remote=f"{remote[0]}:{remote[1]}",
                    security=f"srtp_key_file: {key or self.key}",
                )
            )

    def start(self) -> tuple[Daemon, Daemon]:
        self.relay.start()
        self.ca_daemon, self.us_daemon = self.ca.start(), self.us.start()
        self.ca.wait_ready(self.ca_daemon)
        self.us.wait_ready(self.us_daemon)
        return self.ca_daemon, self.us_daemon

    def close(self) -> None:
        self.relay.cut()
        self.ca.close()
        self.us.close()


@pytest.fixture
def gateways(tmp_path: Path) -> Iterator[Gateways]:
    g = Gateways(tmp_path)
    yield g
    g.close()


def link_status(site: Site, name: str) -> dict[str, Any]:
    status: dict[str, Any] = site.status()["links"][name]
    return status


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


def calls_from(daemon: Daemon, kind: str, port: str, after: int = 0) -> list[dict[str, Any]]:
    return [e for e in daemon.events(kind)[after:] if e["source"]["port"] == port]


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
