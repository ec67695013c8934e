"""A site's network links as one bank of ports, merged by `SiteRadios` into the engine's.

Every kind of link offers the same small surface (`NetworkLink`); `make_link` picks the class
by the config's `protocol` (`RtpLink` or `UsrpLink`). Links not marked `simulated:` are built
here; the simulated ones are the simulated radios' bank's. A link going down or coming back is
posted through `notify` as a `PortNotice` with a `port_offline` / `port_online` alarm, so the
engine takes it out of service (its PTT released, its patch carrying on without it) and back in.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from gateway.codecs.base import Pcm
from gateway.config import Config
from gateway.config.models import Link
from gateway.links import LinkError
from gateway.links.rtp_link import RtpLink, codec_problem
from gateway.links.usrp_link import UsrpLink
from gateway.ports.contract import PortNotice

FULL_SCALE = 32768.0


class NetworkLink(Protocol):
    """What `LinkPorts` needs of a link (see `gateway.links.rtp_link` for the contract)."""

    name: str

    def start(self) -> None: ...

    async def close(self) -> None: ...

    def receive(self) -> tuple[Pcm, bool]: ...

    def send(self, pcm: Pcm, ptt: bool) -> None: ...

    @property
    def online(self) -> bool: ...

    def stats(self) -> dict[str, Any]: ...


OnlineCallback = Callable[[str, bool, str], None]


def network_links(cfg: Config) -> dict[str, Link]:
    """The links that are real network streams (not `simulated:`)."""
    return {name: link for name, link in cfg.links.items() if link.simulated is None}


def link_problem(cfg: Config, name: str) -> str | None:
    """Why link `name` cannot run in this build, in one line, or None. (A link's frame rule is
    the config's: `check` refuses it already, and so does `run`, as both load the config.)"""
    link = cfg.links[name]
    if link.protocol == "usrp":
        return None  # linear audio: no codec to be missing
    problem = codec_problem(link.codec)
    return f"link '{name}': {problem}" if problem is not None else None


def talkgroup_id(cfg: Config, link: Link) -> int:
    """The numeric id of the talkgroup `link` carries, 0 if it has none (USRP's header)."""
    return cfg.talkgroup(link.talkgroup).id or 0


def make_link(
    name: str,
    link: Link,
    frame_samples: int,
    on_online: OnlineCallback,
    *,
    talkgroup_id: int = 0,
) -> NetworkLink:
    """The link for `link`'s protocol; raises LinkError (a key file, a codec). `talkgroup_id`
    is the numeric id of its talkgroup (USRP puts it in every header)."""
    if link.protocol == "rtp":
        return RtpLink(name, link, frame_samples=frame_samples, on_online=on_online)
    return UsrpLink(
        name, link, frame_samples=frame_samples, talkgroup_id=talkgroup_id, on_online=on_online
    )


class LinkPorts:
    """The network links among a site's ports (`names`, the engine's order)."""

    def __init__(
        self,
        cfg: Config,
        names: Sequence[str],
        frame_samples: int,
        *,
        notify: Callable[[PortNotice], None],
    ) -> None:
        self.names = tuple(names)
        self.frame_samples = frame_samples
        self._notify = notify
        index = {name: i for i, name in enumerate(self.names)}
        self.links: dict[str, NetworkLink] = {
            name: make_link(
                name, link, frame_samples, self._online, talkgroup_id=talkgroup_id(cfg, link)
            )
            for name, link in network_links(cfg).items()
        }
        self._rows = np.array([index[name] for name in self.links], dtype=np.int64)
        self._pcm = np.zeros((len(self.links), frame_samples), dtype=np.int16)

    def _online(self, name: str, online: bool, detail: str) -> None:
        kind = "port_online" if online else "port_offline"
        self._notify(PortNotice(name, online, alarm=(kind, detail)))

    # ------------------------------------------------------------------ life cycle (loop)
    def start(self) -> None:
        """Binds every link's socket (a LinkError names the first that cannot) and starts them."""
        try:
            for link in self.links.values():
                link.start()
        except LinkError:
            for link in self.links.values():
                task = asyncio.ensure_future(link.close())
                task.add_done_callback(lambda t: t.exception())
            raise

    async def close(self) -> None:
        """Tells every peer PTT is off and closes the sockets (after the engine has stopped)."""
        await asyncio.gather(*(link.close() for link in self.links.values()))

    # ------------------------------------------------------------------ engine thread
    def fill(self, rx: npt.NDArray[np.float32], carrier: npt.NDArray[np.bool_]) -> None:
        """Writes each link's next frame and carrier into its row of the engine's arrays."""
        pcm = self._pcm
        heard = np.zeros(len(self.links), dtype=bool)
        for i, link in enumerate(self.links.values()):
            pcm[i], heard[i] = link.receive()
        # One conversion for every link: numpy's cost is per call, not per sample.
        rx[self._rows] = pcm * np.float32(1 / FULL_SCALE)
        carrier[self._rows] = heard

    def frame(self) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.bool_]]:
        """As a `PortBank` of its own: silence and no carrier on every other port."""
        rx = np.zeros((len(self.names), self.frame_samples), dtype=np.float32)
        carrier = np.zeros(len(self.names), dtype=bool)
        self.fill(rx, carrier)
        return rx, carrier

    def transmit(self, tx: npt.NDArray[np.float32], ptt: npt.NDArray[np.bool_]) -> None:
        scaled = np.rint(tx[self._rows] * FULL_SCALE)
        pcm = np.clip(scaled, -FULL_SCALE, FULL_SCALE - 1, out=scaled).astype(np.int16)
        keyed = ptt[self._rows].tolist()
        for i, link in enumerate(self.links.values()):
            link.send(pcm[i], keyed[i])

    # ------------------------------------------------------------------ status
    def stats(self) -> dict[str, dict[str, Any]]:
        return {name: link.stats() for name, link in self.links.items()}
