"""Link benchmark: latency a link adds beyond its jitter-buffer target, and CPU per stream.

    .venv/bin/python -m bench.links [--seconds 10] [--streams 64] [--only latency|cpu] [--load N]

Latency: two `RtpLink`s over loopback (PCMU over SRTP), each ticked by its own "engine" thread on
a 20 ms deadline clock, the receiver's ticks `phase` ms after the sender's (two gateways never
tick in step). The sender keys a talkspurt with a click in it; the latency is the time from the
sender's tick that sent the click to the receiver's tick that plays it, set against the jitter
buffer's target when that talkspurt began to play. Rows: straight loopback, and through a relay
that delays each packet by a uniform 0..jitter (reordering them) and loses some.

CPU: this process runs N links, keyed all the time, each receiving a stream from a peer process
with N links that is keyed all the time too: N streams each way. The figure is this process's
CPU time (engine thread and asyncio loop together) over the wall time, as a share of one core.

The first line says the machine (CPU model, cores, Python, load average); --load N runs N
CPU-burning processes beside everything, for the figures of a busy box.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import heapq
import itertools
import json
import os
import random
import resource
import select
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bench.machine import cpu_burners, describe
from gateway.config.models import Link
from gateway.links.rtp_link import RtpLink

FRAME = 160
FRAME_S = 0.02
SENDER, RECEIVER, RELAY = "127.0.0.2", "127.0.0.3", "127.0.0.4"


def free_ports(host: str, count: int) -> list[int]:
    socks = []
    for _ in range(count):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((host, 0))
        socks.append(sock)
    ports = [s.getsockname()[1] for s in socks]
    for sock in socks:
        sock.close()
    return ports


def link(local: str, remote: str, codec: str, key_file: Path | None) -> Link:
    settings: dict[str, Any] = {"protocol": "rtp", "local": local, "remote": remote}
    settings.update(talkgroup="bench/net", codec=codec)
    if key_file is None:
        settings["insecure"] = True
    else:
        settings["srtp_key_file"] = str(key_file)
    return Link.model_validate(settings)


def write_key(directory: Path) -> Path:
    path = directory / "bench.key"
    path.write_text(base64.b64encode(os.urandom(30)).decode() + "\n")
    path.chmod(0o600)
    return path


class Ticker(threading.Thread):
    """An engine thread: `tick(n)` every 20 ms on a deadline clock from `start`."""

    def __init__(self, start: float, tick: Callable[[int, float], None]) -> None:
        super().__init__(daemon=True)
        self._start, self._tick = start, tick
        self.stop = threading.Event()
        self.busy_s = 0.0

    def run(self) -> None:
        n = 0
        while not self.stop.is_set():
            due = self._start + n * FRAME_S
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            began = time.thread_time()
            self._tick(n, due)
            self.busy_s += time.thread_time() - began
            n += 1


class Relay(threading.Thread):
    """Forwards one direction (sender -> receiver) with random delay and loss."""

    def __init__(
        self, listen: tuple[str, int], target: tuple[str, int], jitter_s: float, loss: float
    ) -> None:
        super().__init__(daemon=True)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(listen)
        self.out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.out_addr = (listen[0], free_ports(listen[0], 1)[0])
        self.out.bind(self.out_addr)
        self.target, self.jitter_s, self.loss = target, jitter_s, loss
        self.stop = threading.Event()
        self.rng = random.Random(1)

    def run(self) -> None:
        due: list[tuple[float, int, bytes]] = []
        order = itertools.count()
        while not self.stop.is_set():
            now = time.monotonic()
            while due and due[0][0] <= now:
                self.out.sendto(heapq.heappop(due)[2], self.target)
            wait = min(0.01, max(0.0, due[0][0] - now)) if due else 0.01
            if select.select([self.sock], [], [], wait)[0]:
                data = self.sock.recv(2048)
                if self.rng.random() >= self.loss:
                    delay = self.rng.uniform(0, self.jitter_s)
                    heapq.heappush(due, (time.monotonic() + delay, next(order), data))
        self.sock.close()
        self.out.close()


# --- latency ----------------------------------------------------------------------------------


async def latency_row(
    key_file: Path, jitter_s: float, loss: float, phase_s: float, spurts: int
) -> dict[str, Any]:
    a_port, b_port = free_ports(SENDER, 1)[0], free_ports(RECEIVER, 1)[0]
    relay: Relay | None = None
    a_remote = f"{RECEIVER}:{b_port}"
    b_remote = f"{SENDER}:{a_port}"
    if jitter_s or loss:
        relay = Relay((RELAY, free_ports(RELAY, 1)[0]), (RECEIVER, b_port), jitter_s, loss)
        a_remote = f"{RELAY}:{relay.sock.getsockname()[1]}"
        b_remote = f"{RELAY}:{relay.out_addr[1]}"  # what the receiver hears from
        relay.start()
    a = RtpLink("a", link(f"{SENDER}:{a_port}", a_remote, "pcmu", key_file))
    b = RtpLink("b", link(f"{RECEIVER}:{b_port}", b_remote, "pcmu", key_file))
    a.start()
    b.start()
    spurt_ticks, gap_ticks, click_at = 75, 25, 50  # 1.5 s keyed, click 1 s in, 0.5 s gap
    period = spurt_ticks + gap_ticks
    sent: dict[int, float] = {}
    got: list[tuple[int, float, float]] = []  # spurt, latency s, target ms at the time
    frame = np.zeros(FRAME, np.int16)
    click = frame.copy()
    click[37] = 30000
    noise = np.random.default_rng(2)

    def send(n: int, due: float) -> None:
        spurt, at = divmod(n, period)
        keyed = at < spurt_ticks and spurt < spurts
        out = click if at == click_at else (noise.standard_normal(FRAME) * 300).astype("i2")
        if keyed and at == click_at:
            sent[spurt] = due
        a.send(out, keyed)
        a.receive()

    started = [False, 0.0]  # receiving a talkspurt; the buffer's target when it began

    def receive(n: int, due: float) -> None:
        pcm, carrier = b.receive()
        b.send(frame, False)
        if carrier and not started[0]:
            started[1] = b.stats()["target_ms"]
        started[0] = carrier
        if pcm.max() > 16000:
            spurt = max(sent, default=-1)
            if spurt >= 0 and (not got or got[-1][0] != spurt):
                got.append((spurt, due - sent[spurt], started[1]))

    start = time.monotonic() + 0.1
    sender, receiver = Ticker(start, send), Ticker(start + phase_s, receive)
    sender.start()
    receiver.start()
    await asyncio.sleep((spurts * period + 20) * FRAME_S)
    sender.stop.set()
    receiver.stop.set()
    sender.join()
    receiver.join()
    stats = b.stats()
    await a.close()
    await b.close()
    if relay is not None:
        relay.stop.set()
        relay.join()
    latency = [s * 1000 for _, s, _ in got[2:]]  # the first spurts let the estimate settle
    added = [s * 1000 - target for _, s, target in got[2:]]
    return {
        "clicks": len(latency),
        "jitter_ms": stats["jitter_ms"],
        "target_ms": statistics.median(t for _, _, t in got[2:]) if got[2:] else 0.0,
        "latency": (statistics.median(latency), max(latency)) if latency else (0.0, 0.0),
        "added": (statistics.median(added), max(added)) if added else (0.0, 0.0),
        "late": stats["rx_late"],
        "concealed": stats["rx_concealed"],
    }


# --- CPU ----------------------------------------------------------------------------------------


async def run_streams(
    local_host: str,
    ports: list[int],
    remote_host: str,
    remote_ports: list[int],
    spec: dict[str, Any],
) -> dict[str, Any]:
    """`len(ports)` links keyed all the time for `spec["seconds"]`; returns CPU figures."""
    key = Path(spec["key"]) if spec["key"] else None
    links = [
        RtpLink(f"l{i}", link(f"{local_host}:{p}", f"{remote_host}:{r}", spec["codec"], key))
        for i, (p, r) in enumerate(zip(ports, remote_ports, strict=True))
    ]
    for one in links:
        one.start()
    t = np.arange(FRAME) / 8000
    rng = np.random.default_rng(3)
    frames = [
        (
            6500 * np.sin(2 * np.pi * 440 * (t + k * FRAME_S)) + 650 * rng.standard_normal(FRAME)
        ).astype(np.int16)
        for k in range(50)
    ]

    def tick(n: int, due: float) -> None:
        frame = frames[n % 50]
        for one in links:
            one.receive()
            one.send(frame, True)

    await asyncio.sleep(1.0)  # both processes up, buffers settled
    start = time.monotonic()
    engine = Ticker(start, tick)
    engine.start()
    # The window opens once every link hears its peer (the peer process can take seconds to
    # start on a busy box: a window without its streams measures half the work), a second later.
    deadline = time.monotonic() + 10.0
    while not all(one.counters.packets_in for one in links) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    await asyncio.sleep(1.0)

    def played_concealed() -> tuple[int, int]:
        stats = [one.stats() for one in links]
        return sum(s["rx_played"] for s in stats), sum(s["rx_concealed"] for s in stats)

    # Frames played and concealed count over the window only, as the CPU does.
    played0, concealed0 = played_concealed()
    usage0, wall0, busy0 = resource.getrusage(resource.RUSAGE_SELF), time.monotonic(), engine.busy_s
    await asyncio.sleep(spec["seconds"])
    usage1, wall1, busy1 = resource.getrusage(resource.RUSAGE_SELF), time.monotonic(), engine.busy_s
    played1, concealed1 = played_concealed()
    engine.stop.set()
    engine.join()
    played, concealed = played1 - played0, concealed1 - concealed0
    for one in links:
        await one.close()
    cpu = (usage1.ru_utime + usage1.ru_stime) - (usage0.ru_utime + usage0.ru_stime)
    wall = wall1 - wall0
    return {
        "cpu_share": cpu / wall,
        "engine_share": (busy1 - busy0) / wall,
        "played": played,
        "concealed": concealed,
        "wall_s": wall,
    }


def peer_main(spec_text: str) -> int:
    spec = json.loads(spec_text)
    asyncio.run(
        run_streams(
            RECEIVER,
            spec["peer_ports"],
            SENDER,
            spec["ports"],
            {**spec, "seconds": spec["seconds"] + 3},
        )
    )
    return 0


async def cpu_row(
    codec: str, key_file: Path | None, streams: int, seconds: float
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "codec": codec,
        "key": str(key_file) if key_file else "",
        "ports": free_ports(SENDER, streams),
        "peer_ports": free_ports(RECEIVER, streams),
        "seconds": seconds,
    }
    peer = subprocess.Popen(
        [sys.executable, "-m", "bench.links", "--peer", json.dumps(spec)],
        cwd=Path(__file__).resolve().parent.parent,  # where `bench` is a package
    )
    try:
        result = await run_streams(SENDER, spec["ports"], RECEIVER, spec["peer_ports"], spec)
    finally:
        peer.wait(30)
    result["expected"] = streams * result["wall_s"] / FRAME_S
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds per CPU row")
    parser.add_argument("--streams", type=int, default=64)
    parser.add_argument("--spurts", type=int, default=12, help="talkspurts per latency row")
    parser.add_argument(
        "--only", choices=("latency", "cpu"), help="run one table (default: both, latency first)"
    )
    parser.add_argument(
        "--load", type=int, default=0, metavar="N", help="N CPU-burning processes beside it"
    )
    parser.add_argument("--peer", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.peer:
        return peer_main(args.peer)
    with cpu_burners(args.load), tempfile.TemporaryDirectory() as tmp:
        print(describe(args.load))
        key = write_key(Path(tmp))
        if args.only in (None, "latency"):
            latency_table(key, args.spurts)
        if args.only is None:
            print()
        if args.only in (None, "cpu"):
            cpu_table(key, args.streams, args.seconds)
    return 0


def latency_table(key: Path, spurts: int) -> None:
    print(f"link latency, PCMU over SRTP, 20 ms frames, {spurts - 2} clicks per row")
    header: tuple[str, ...] = (
        "network",
        "phase ms",
        "jitter ms",
        "target ms",
        "latency med/max ms",
    )
    header += ("added med/max ms", "late", "concealed")
    widths = (26, 8, 9, 9, 18, 16, 5, 9)
    print(" ".join(f"{h:>{w}}" for h, w in zip(header, widths, strict=True)))
    worst = 0.0
    for name, jitter_s, loss, phase_s in (
        ("loopback", 0.0, 0.0, 0.001),
        ("loopback", 0.0, 0.0, 0.010),
        ("loopback", 0.0, 0.0, 0.019),
        ("relay, 20 ms jitter", 0.020, 0.0, 0.010),
        ("relay, 40 ms jitter", 0.040, 0.0, 0.010),
        ("relay, 40 ms jitter, 10% loss", 0.040, 0.10, 0.010),
    ):
        row = asyncio.run(latency_row(key, jitter_s, loss, phase_s, spurts))
        worst = max(worst, row["added"][1])
        print(
            f"{name:>26} {phase_s * 1000:>8.0f} {row['jitter_ms']:>9.1f} "
            f"{row['target_ms']:>9.0f} {row['latency'][0]:>8.1f}/{row['latency'][1]:<9.1f} "
            f"{row['added'][0]:>7.1f}/{row['added'][1]:<8.1f} {row['late']:>5} "
            f"{row['concealed']:>9}",
            flush=True,
        )
    print(f"worst added latency: {worst:.1f} ms (goal: at most one frame, 20 ms)")


def cpu_table(key: Path, streams: int, seconds: float) -> None:
    print(
        f"CPU, {streams} links keyed both ways (a peer process sends {streams} "
        f"streams back), {seconds:g} s per row, python {sys.version.split()[0]}"
    )
    header: tuple[str, ...] = ("codec", "srtp", "% of a core", "engine thread %", "us/stream/frame")
    header += ("played", "concealed")
    widths = (6, 5, 11, 15, 15, 8, 9)
    print(" ".join(f"{h:>{w}}" for h, w in zip(header, widths, strict=True)))
    for codec, secure in (("pcmu", True), ("pcma", False), ("dvi4", True), ("opus", True)):
        try:
            row = asyncio.run(cpu_row(codec, key if secure else None, streams, seconds))
        except Exception as exc:  # a codec missing from this build: say so and go on
            print(f"{codec:>6} {'yes' if secure else 'no':>5} unavailable: {exc}")
            continue
        per_frame_us = row["cpu_share"] * FRAME_S / streams * 1e6
        print(
            f"{codec:>6} {'yes' if secure else 'no':>5} {row['cpu_share'] * 100:>10.1f}% "
            f"{row['engine_share'] * 100:>14.1f}% {per_frame_us:>15.1f} "
            f"{row['played'] / row['expected'] * 100:>7.1f}% {row['concealed']:>9}",
            flush=True,
        )
    print(f"goal: {streams} streams under 25% of one core")


if __name__ == "__main__":
    sys.exit(main())
