"""A USRP peer written from the protocol notes with `struct` alone, standing where an
AllStarLink node or a DVSwitch Analog_Bridge would: it keeps what it hears and talks when told."""

from __future__ import annotations

import socket
import struct
import threading
import time
from dataclasses import dataclass

import numpy as np

GATEWAY_HOST, PEER_HOST = "127.0.0.3", "127.0.0.2"


TALKGROUP_ID = 2100


VOICE, PING = 0, 3


TONE_HZ, TONE_AMPLITUDE = 1000.0, 8192  # -12 dBFS


FRAME_S = 0.02


def free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


def wire(
    seq: int, kind: int = VOICE, *, keyup: int = 0, talkgroup: int = 0, payload: bytes = b""
) -> bytes:
    """Big-endian fields, `type` little-endian at byte 20 (as ASL and DVSwitch send it)."""
    head = b"USRP" + struct.pack(">IIII", seq, 0, keyup, talkgroup)
    return head + struct.pack("<I", kind) + struct.pack(">II", 0, 0) + payload


@dataclass
class Heard:
    at: float
    seq: int
    keyup: int
    talkgroup: int
    kind: int
    payload: bytes

    @property
    def samples(self) -> np.ndarray:
        return np.array(struct.unpack(f"<{len(self.payload) // 2}h", self.payload), np.int16)


def tone_frame(amplitude: int = TONE_AMPLITUDE) -> bytes:
    # 1 kHz is 20 whole cycles per 20 ms frame: every frame of the tone is the same.
    t = np.arange(160) / 8000
    samples = np.rint(amplitude * np.sin(2 * np.pi * TONE_HZ * t)).astype(int)
    return struct.pack("<160h", *samples.tolist())


class Peer:
    """A USRP endpoint on its own UDP socket: keeps what it hears, talks when told to."""

    def __init__(self) -> None:
        self.address = (PEER_HOST, free_port(PEER_HOST))
        self.gateway: tuple[str, int] = (GATEWAY_HOST, free_port(GATEWAY_HOST))
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(self.address)
        self.sock.settimeout(0.1)
        self.heard: list[Heard] = []
        self.strangers = 0
        self.seq = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._listen, daemon=True)
        self._thread.start()

    def _listen(self) -> None:
        while not self._stop.is_set():
            try:
                data, source = self.sock.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            if source != self.gateway:
                self.strangers += 1
                continue
            magic, seq, _memory, keyup, talkgroup = struct.unpack_from(">4sIIII", data)
            assert magic == b"USRP"
            (kind,) = struct.unpack_from("<I", data, 20)
            self.heard.append(Heard(time.monotonic(), seq, keyup, talkgroup, kind, data[32:]))

    def send(self, data: bytes) -> None:
        self.sock.sendto(data, self.gateway)

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def talk(self, seconds: float, frame: bytes, talkgroup: int = 0) -> None:
        """Keyed voice at the real-time pace, then the unkey header (once, as ASL does)."""
        start = time.monotonic()
        for n in range(round(seconds / FRAME_S)):
            delay = start + n * FRAME_S - time.monotonic()
            if delay > 0:
                time.sleep(delay)  # paced like a real peer: a frame every 20 ms
            self.send(wire(self.next_seq(), keyup=1, talkgroup=talkgroup, payload=frame))
        time.sleep(FRAME_S)  # the unkey comes a frame after the last voice
        self.send(wire(self.next_seq(), talkgroup=talkgroup))

    def start_pinging(self, period_s: float) -> None:
        """A PING every `period_s` from now on (pyUC's, with its "PING" payload)."""

        def ping() -> None:
            while not self._stop.wait(period_s):
                self.send(wire(self.next_seq(), PING, payload=b"PING"))

        self.send(wire(self.next_seq(), PING, payload=b"PING"))
        threading.Thread(target=ping, daemon=True).start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()
