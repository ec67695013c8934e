"""Two `crosspatch run` gateways joined by an RTP link over loopback (a Canadian one on 127.0.0.2,
an American one on 127.0.0.3), with a UDP relay on 127.0.0.4 between them that can lose, delay
and reorder packets, or cut the link."""

from __future__ import annotations

import base64
import heapq
import itertools
import os
import random
import select
import socket
import threading
import time
from pathlib import Path
from typing import Any

from tests.support.daemon import Daemon, Site

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


def link_status(site: Site, name: str) -> dict[str, Any]:
    status: dict[str, Any] = site.status()["links"][name]
    return status


def calls_from(daemon: Daemon, kind: str, port: str, after: int = 0) -> list[dict[str, Any]]:
    return [e for e in daemon.events(kind)[after:] if e["source"]["port"] == port]
