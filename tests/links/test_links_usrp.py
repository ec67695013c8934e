"""USRP links, piece by piece: the packet format, the config rules, and a `UsrpLink` on real
loopback sockets and a real asyncio loop against a USRP peer written here from docs/protocols.md,
"USRP", with `struct` alone (not with `gateway.links.usrp`, so the two can disagree)."""

from __future__ import annotations

import asyncio
import random
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from gateway.codecs.g711 import ulaw_decode, ulaw_encode
from gateway.config import ConfigError, parse_config_text
from gateway.config.models import Link
from gateway.links import LinkError, usrp
from gateway.links.usrp import UsrpError, UsrpPacket, UsrpType
from gateway.links.usrp_link import END_REPEATS, RX_HANG_FRAMES, UsrpLink
from gateway.ports.link_ports import link_problem, make_link
from tests.support.emulators.drive import until

# --- the peer's view of the wire (docs/protocols.md, "USRP") -----------------------------------

VOICE, DTMF, TEXT, PING, TLV, ADPCM, ULAW = range(7)


def wire(
    seq: int,
    kind: int = VOICE,
    *,
    keyup: int = 0,
    talkgroup: int = 0,
    payload: bytes = b"",
    type_order: str = "<",
) -> bytes:
    """A USRP packet as ASL and DVSwitch write it: big-endian fields, `type` little-endian."""
    return (
        b"USRP"
        + struct.pack(">IIII", seq, 0, keyup, talkgroup)
        + struct.pack(f"{type_order}I", kind)
        + struct.pack(">II", 0, 0)
        + payload
    )


@dataclass
class Heard:
    seq: int
    keyup: int
    talkgroup: int
    kind: int
    payload: bytes

    @property
    def samples(self) -> np.ndarray:
        return np.array(struct.unpack(f"<{len(self.payload) // 2}h", self.payload), np.int16)


def unwire(data: bytes, type_order: str = "<") -> Heard:
    magic, seq, _memory, keyup, talkgroup = struct.unpack_from(">4sIIII", data)
    assert magic == b"USRP"
    (kind,) = struct.unpack_from(f"{type_order}I", data, 20)
    return Heard(seq, keyup, talkgroup, kind, data[32:])


def pcm_bytes(samples: np.ndarray) -> bytes:
    return struct.pack(f"<{len(samples)}h", *samples.tolist())


def tone(tick: int, hz: float = 1000.0, amplitude: int = 8000) -> np.ndarray:
    t = (np.arange(160) + 160 * tick) / 8000
    return np.rint(amplitude * np.sin(2 * np.pi * hz * t)).astype(np.int16)


# --- packets ----------------------------------------------------------------------------------


def test_voice_round_trip_and_the_fields_on_the_wire() -> None:
    pcm = tone(3)
    data = usrp.voice(0x01020304, pcm, talkgroup=91)
    assert len(data) == 32 + 320
    heard = unwire(data)
    assert (heard.seq, heard.keyup, heard.talkgroup, heard.kind) == (0x01020304, 1, 91, VOICE)
    assert data[4:8] == bytes([1, 2, 3, 4])  # seq big-endian
    assert data[12:16] == bytes([0, 0, 0, 1])  # keyup big-endian
    assert data[16:20] == bytes([0, 0, 0, 91])  # talkgroup big-endian
    assert np.array_equal(heard.samples, pcm)  # samples little-endian
    packet = usrp.parse(data)
    assert packet == UsrpPacket(0x01020304, UsrpType.VOICE, True, 91, pcm_bytes(pcm))
    assert packet.is_audio and not packet.is_unkey
    assert np.array_equal(packet.samples(), pcm)
    assert packet.to_bytes() == data
    assert usrp.parse(wire(5, keyup=1, payload=pcm_bytes(pcm))).samples().tolist() == pcm.tolist()


def test_samples_are_little_endian_int16() -> None:
    data = usrp.voice(0, np.array([1, -2] + [0] * 158, np.int16))
    assert data[32:36] == b"\x01\x00\xfe\xff"


def test_the_type_is_at_byte_20_little_endian_unless_asked_otherwise() -> None:
    little = usrp.ping(7)
    assert little == wire(7, PING) and little[20:24] == b"\x03\x00\x00\x00"
    big = usrp.ping(7, type_order="big")
    assert big[20:24] == b"\x00\x00\x00\x03"
    assert usrp.parse(big, "big").type == UsrpType.PING
    text = usrp.pack(1, UsrpType.TEXT, payload=b"hello\0")
    assert text[20] == TEXT and usrp.parse(text).payload == b"hello\0"
    # Read in the other order, a PING is no type at all; the error says which order fits.
    with pytest.raises(UsrpError, match=r"type 3 in big-endian order") as caught:
        usrp.parse(big)
    assert caught.value.reason == "unknown_type"
    # VOICE is 0 both ways: plain audio crosses whatever the choice.
    assert usrp.parse(usrp.voice(1, tone(0)), "big").is_audio


def test_the_unkey_is_the_header_alone_with_keyup_0() -> None:
    data = usrp.unkey(9, talkgroup=5)
    assert data == wire(9, talkgroup=5)
    packet = usrp.parse(data)
    assert packet.is_unkey and not packet.is_audio and packet.payload == b""
    assert not usrp.parse(wire(9, keyup=1)).is_unkey  # a keyed header is no unkey
    assert usrp.parse(wire(9, ULAW)).is_unkey


def test_dvswitch_types_parse_and_ulaw_decodes_with_g711() -> None:
    for kind in (DTMF, TEXT, TLV, ADPCM):
        packet = usrp.parse(wire(1, kind, payload=b"\x08abc"))
        assert packet.type == kind and not packet.is_audio and not packet.is_unkey
    assert usrp.parse(wire(1, PING, payload=b"PING")).type == UsrpType.PING  # pyUC's ping
    pcm = tone(0)
    codes = ulaw_encode(pcm)
    packet = usrp.parse(wire(2, ULAW, keyup=1, payload=codes.tobytes()))
    assert packet.is_audio
    assert np.array_equal(packet.samples(), ulaw_decode(codes))
    assert np.abs(packet.samples().astype(int) - pcm).max() < 300  # mu-law's coarse steps


@pytest.mark.parametrize(
    ("data", "reason", "words"),
    [
        (b"", "truncated", "0 bytes, shorter than the 32-byte USRP header"),
        (wire(1)[:31], "truncated", "31 bytes"),
        (b"RTP!" + wire(1)[4:], "bad_magic", "not b'USRP'"),
        (wire(1, payload=bytes(319)), "voice_length", "voice payload of 319 bytes"),
        (wire(1, payload=bytes(321)), "voice_length", "321 bytes"),
        (wire(1, payload=bytes(640)), "voice_length", "640 bytes"),
        (wire(1, ULAW, payload=bytes(320)), "ulaw_length", "mu-law payload of 320 bytes"),
        (wire(1, 7), "unknown_type", "unknown packet type 0x00000007"),
        (wire(1, payload=bytes(1500)), "oversized", "1532 bytes, more than 1500"),
    ],
)
def test_bad_packets_are_usrp_errors_with_a_reason(data: bytes, reason: str, words: str) -> None:
    with pytest.raises(UsrpError, match=words) as caught:
        usrp.parse(data)
    assert caught.value.reason == reason and "\n" not in str(caught.value)


def test_every_cut_of_a_header_is_truncated_and_garbage_only_raises_usrp_error() -> None:
    good = wire(1, keyup=1, payload=bytes(320))
    for cut in range(32):
        with pytest.raises(UsrpError):
            usrp.parse(good[:cut])
    rng = random.Random(3)
    parsed = 0
    for _ in range(3000):
        data = bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 400)))
        if rng.random() < 0.5:  # a header with a type in range, to get further in
            size = rng.choice([0, 160, 320, rng.randrange(0, 400)])
            data = wire(rng.getrandbits(32), rng.randrange(8), payload=data[:size])
        try:
            usrp.parse(data)
            parsed += 1
        except UsrpError:
            pass
    assert 0 < parsed < 3000  # some are valid packets; the rest raise UsrpError, nothing else


def test_fields_that_do_not_fit_are_refused_and_seq_wraps() -> None:
    with pytest.raises(UsrpError, match="talkgroup 4294967296 does not fit"):
        usrp.pack(0, talkgroup=2**32)
    assert unwire(usrp.unkey(2**32 + 5)).seq == 5


# --- config -----------------------------------------------------------------------------------

SITE = """\
gateway: {{id: test}}
agencies:
  ca:
    name: Canadian agency
    country: CA
    talkgroups:
      tac: {{rx_mhz: 142.47}}
      net: {{id: {tg_id}}}
radios:
  ca-1: {{talkgroup: ca/tac, simulated: {{}}}}
links:
  allstar:
    protocol: {protocol}
    local: 127.0.0.1:34001
    remote: {remote}
    talkgroup: ca/net
{extra}patches:
  cross: {{members: [ca/tac, ca/net]}}
"""


def site(
    *, protocol: str = "usrp", remote: str = "127.0.0.1:32001", tg_id: int = 9, extra: str = ""
) -> str:
    return SITE.format(protocol=protocol, remote=remote, tg_id=tg_id, extra=extra)


def only_issue(text: str) -> tuple[str, str]:
    with pytest.raises(ConfigError) as caught:
        parse_config_text(text, filename="site.yaml")
    (issue,) = caught.value.issues
    return issue.path, issue.message


def test_a_usrp_link_and_its_defaults() -> None:
    link = parse_config_text(site()).links["allstar"]
    assert (link.usrp_type_byte_order, link.usrp_ping_s, link.usrp_timeout_s) == (
        "little",
        1.0,
        None,
    )
    extra = "    usrp_type_byte_order: big\n    usrp_ping_s: 0\n    usrp_timeout_s: 30\n"
    link = parse_config_text(site(extra=extra)).links["allstar"]
    assert (link.usrp_type_byte_order, link.usrp_ping_s, link.usrp_timeout_s) == ("big", 0, 30)
    # A public peer needs the unencrypted audio asked for.
    public = parse_config_text(site(remote="198.51.100.7:32001", extra="    insecure: true\n"))
    assert public.links["allstar"].insecure


@pytest.mark.parametrize(
    ("text", "path", "words"),
    [
        (
            site(extra="    usrp_type_byte_order: middle\n"),
            "links.allstar.usrp_type_byte_order",
            "usrp_type_byte_order must be one of little, big (got 'middle')",
        ),
        (
            site(protocol="rtp", extra="    insecure: true\n    usrp_ping_s: 2\n"),
            "links.allstar.usrp_ping_s",
            "usrp_ping_s applies to USRP links: remove it, or use protocol usrp",
        ),
        (
            site(remote="198.51.100.7:32001"),
            "links.allstar.remote",
            "USRP audio is unencrypted and 198.51.100.7 is not a loopback or private address: "
            "add insecure: true",
        ),
        (
            site(extra="    usrp_timeout_s: 2\n"),
            "links.allstar.usrp_timeout_s",
            "usrp_timeout_s 2 is shorter than 3 pings of usrp_ping_s 1: make it at least 3",
        ),
        (
            site(tg_id=2**32),
            "links.allstar.talkgroup",
            "talkgroup 'ca/net' has id 4294967296, too large for the USRP header's 32-bit",
        ),
        (
            site(extra="    codec: pcmu\n"),
            "links.allstar.codec",
            "USRP always carries 16-bit linear audio: remove codec",
        ),
    ],
)
def test_bad_usrp_links_are_one_located_error(text: str, path: str, words: str) -> None:
    got_path, message = only_issue(text)
    assert got_path == path and words in message and "\n" not in message


def test_link_problem_and_make_link() -> None:
    cfg = parse_config_text(site())
    assert link_problem(cfg, "allstar") is None
    # The frame rule is the config's, so `check` and `run` (which both load it) refuse alike.
    with pytest.raises(ConfigError) as caught:
        parse_config_text(site().replace("{id: test}", "{id: test, frame_ms: 40}"))
    assert [issue.message for issue in caught.value.issues] == [
        "link 'allstar': USRP links send 20 ms packets and need gateway.frame_ms 20 (it is 40)"
    ]
    link = make_link("allstar", cfg.links["allstar"], 160, lambda *a: None, talkgroup_id=9)
    assert isinstance(link, UsrpLink) and link.talkgroup_id == 9


# --- a UsrpLink against the test's peer over loopback ------------------------------------------


def free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


def link_config(local: str, remote: str, **usrp_settings: Any) -> Link:
    settings: dict[str, Any] = {"protocol": "usrp", "local": local, "remote": remote}
    settings.update(talkgroup="ca/net", **usrp_settings)
    return Link.model_validate(settings)


class Bench:
    """A `UsrpLink` on 127.0.0.3 and the test's peer, a plain UDP socket, on 127.0.0.2."""

    def __init__(self, talkgroup_id: int = 0, **usrp_settings: Any) -> None:
        self.peer_addr = ("127.0.0.2", free_port("127.0.0.2"))
        self.link_addr = ("127.0.0.3", free_port("127.0.0.3"))
        self.peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.peer.bind(self.peer_addr)
        self.peer.setblocking(False)
        self.notices: list[tuple[str, bool, str]] = []
        config = link_config(
            f"127.0.0.3:{self.link_addr[1]}", f"127.0.0.2:{self.peer_addr[1]}", **usrp_settings
        )
        self.link = UsrpLink(
            "usrp",
            config,
            talkgroup_id=talkgroup_id,
            on_online=lambda *n: self.notices.append(n),
        )
        self.heard: list[bytes] = []

    def send(self, data: bytes) -> None:
        self.peer.sendto(data, self.link_addr)

    def drain(self) -> list[bytes]:
        while True:
            try:
                data, source = self.peer.recvfrom(4096)
            except BlockingIOError:
                return self.heard
            assert source == self.link_addr
            self.heard.append(data)

    async def run(
        self,
        ticks: int,
        *,
        peer: Callable[[int], None] = lambda tick: None,
        keyed: Callable[[int], bool] = lambda tick: False,
    ) -> list[tuple[np.ndarray, bool]]:
        """Ticks the link like the engine: `peer(tick)` sends what the peer says at each tick,
        the link sends a tone while `keyed(tick)`; returns what the link received each tick."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        got = []
        for tick in range(ticks):
            peer(tick)
            self.link.send(tone(tick, 500), keyed(tick))
            frame, carrier = self.link.receive()
            got.append((frame.copy(), carrier))
            # Paces the ticks at 20 ms, as the engine's clock does.
            await asyncio.sleep(max(0.0, start + (tick + 1) * 0.02 - loop.time()))
            self.drain()
        return got

    async def close(self) -> None:
        await self.link.close()
        # Every packet the link sent (its goodbye last) reaches the peer.
        sent = self.link.stats()["packets_out"]
        await until(lambda: len(self.drain()) >= sent, what=f"the peer hearing {sent} packets")
        self.peer.close()


def keyed_run(got: list[tuple[np.ndarray, bool]]) -> list[int]:
    """The ticks with carrier, checked to be one unbroken stretch."""
    ticks = [tick for tick, (_, carrier) in enumerate(got) if carrier]
    assert ticks == list(range(ticks[0], ticks[0] + len(ticks))), ticks
    return ticks


def test_voice_from_the_peer_plays_with_carrier_until_the_unkey() -> None:
    async def scenario() -> None:
        bench = Bench()
        bench.link.start()

        def peer(tick: int) -> None:
            if 5 <= tick < 25:
                bench.send(wire(100 + tick, keyup=1, payload=pcm_bytes(tone(tick))))
            elif tick == 25:
                bench.send(wire(125))  # the unkey, as ASL sends it: once

        got = await bench.run(60, peer=peer)
        await bench.close()
        ticks = keyed_run(got)
        assert len(ticks) == 20  # dropped right after the last frame: no hang
        for n, tick in enumerate(ticks):
            assert np.array_equal(got[tick][0], tone(5 + n))  # linear audio, bit for bit
        stats = bench.link.stats()
        assert (stats["voice_in"], stats["unkeys_in"], stats["rx_played"]) == (20, 1, 20)
        assert stats["rx_concealed"] == 0 and stats["malformed"] == 0 and stats["online"]
        assert stats["last_heard_s"] is not None

    asyncio.run(scenario())


def test_without_the_unkey_the_carrier_drops_after_the_hang() -> None:
    async def scenario() -> None:
        bench = Bench()
        bench.link.start()

        def peer(tick: int) -> None:
            if 5 <= tick < 15:
                bench.send(wire(tick, keyup=1, payload=pcm_bytes(tone(tick))))

        got = await bench.run(50, peer=peer)
        await bench.close()
        ticks = keyed_run(got)
        stats = bench.link.stats()
        assert stats["rx_played"] == 10 and not got[-1][1]
        # The hang: frames concealed after the last one, then the carrier is gone.
        assert len(ticks) == 10 + stats["rx_concealed"]
        assert RX_HANG_FRAMES <= stats["rx_concealed"] <= RX_HANG_FRAMES + 3
        assert stats["rx_underruns"] >= RX_HANG_FRAMES

    asyncio.run(scenario())


def test_ulaw_voice_is_decoded_and_reordered_voice_plays_in_order() -> None:
    async def scenario() -> None:
        bench = Bench()
        bench.link.start()
        # Frames 3 and 7 overtake 2 and 6 (inside the buffer's delay).
        schedule = {5: [0], 6: [1], 7: [3, 2], 8: [4], 9: [5], 10: [7, 6], 11: [8], 12: [9]}

        def peer(tick: int) -> None:
            for n in schedule.get(tick, []):
                codes = ulaw_encode(tone(n)).tobytes()
                bench.send(wire(1000 + n, ULAW, keyup=1, payload=codes))
            if tick == 13:
                bench.send(wire(1010, ULAW))

        got = await bench.run(40, peer=peer)
        await bench.close()
        ticks = keyed_run(got)
        assert len(ticks) == 10
        for n, tick in enumerate(ticks):
            assert np.array_equal(got[tick][0], ulaw_decode(ulaw_encode(tone(n))))

    asyncio.run(scenario())


def test_ptt_sends_keyed_voice_with_the_talkgroup_then_the_unkey_then_pings() -> None:
    async def scenario() -> None:
        bench = Bench(talkgroup_id=4242, usrp_ping_s=0.1)
        bench.link.start()
        await bench.run(40, keyed=lambda tick: 5 <= tick < 25)

        def pings_after_voice() -> int:
            heard = [unwire(data) for data in bench.drain()]
            last_voice = max((i for i, h in enumerate(heard) if h.payload), default=len(heard))
            return sum(h.kind == PING for h in heard[last_voice + 1 :])

        await until(lambda: pings_after_voice() >= 2, what="two pings once idle")
        await bench.close()
        heard = [unwire(data) for data in bench.heard]
        voice = [h for h in heard if h.payload]
        assert len(voice) == 20
        assert all(
            (h.keyup, h.talkgroup, h.kind, len(h.payload)) == (1, 4242, VOICE, 320) for h in voice
        )
        for n, h in enumerate(voice):
            assert np.array_equal(h.samples, tone(5 + n, 500))
        # One counter for every packet, pings included.
        assert [h.seq for h in heard] == list(range(heard[0].seq, heard[0].seq + len(heard)))
        after = heard[heard.index(voice[-1]) + 1 :]
        unkeys = after[:END_REPEATS]
        assert all(
            (h.keyup, h.kind, h.payload, h.talkgroup) == (0, VOICE, b"", 4242) for h in unkeys
        )
        pings, closing = after[END_REPEATS:-1], after[-1]
        assert len(pings) >= 2
        assert all((h.kind, h.keyup, h.payload) == (PING, 0, b"") for h in pings)
        assert [data[20] for data in bench.heard[-len(pings) - 1 : -1]] == [PING] * len(pings)
        assert (closing.kind, closing.keyup, closing.payload) == (VOICE, 0, b"")  # one more unkey
        stats = bench.link.stats()
        assert (stats["voice_out"], stats["unkeys_out"]) == (20, END_REPEATS + 1)
        assert stats["pings_out"] >= len(pings) - 1

    asyncio.run(scenario())


def test_big_endian_type_order_and_no_pings_when_turned_off() -> None:
    async def scenario() -> None:
        bench = Bench(usrp_type_byte_order="big", usrp_ping_s=0)
        bench.link.start()
        bench.send(wire(1, PING, type_order=">"))  # understood in this order
        got = await bench.run(30, keyed=lambda tick: 5 <= tick < 10)
        await asyncio.sleep(0.2)  # idle a moment longer: pings are off, none come
        await bench.close()
        assert not any(carrier for _, carrier in got)
        heard = [unwire(data, ">") for data in bench.heard]
        assert [h.kind for h in heard] == [VOICE] * (5 + END_REPEATS + 1)  # + the one on close
        stats = bench.link.stats()
        assert stats["pings_in"] == 1 and stats["pings_out"] == 0 and stats["malformed"] == 0

    asyncio.run(scenario())


def test_strangers_and_bad_packets_are_dropped_and_counted_and_the_link_carries_on() -> None:
    async def scenario() -> None:
        bench = Bench(talkgroup_id=4242)
        bench.link.start()
        stranger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        stranger.bind(("127.0.0.5", 0))
        for seq in range(5):  # good voice, from an address nobody configured
            stranger.sendto(wire(seq, keyup=1, payload=bytes(320)), bench.link_addr)
        stranger.close()
        voice = pcm_bytes(tone(0))
        bad = {
            "truncated": [b"", b"USRP", wire(1)[:31]],
            "oversized": [bytes(3000)],
            "bad_magic": [b"GARBAGE!" * 10, b"usrp" + wire(1)[4:]],
            "voice_length": [wire(1, keyup=1, payload=voice + voice), wire(1, payload=voice[:-1])],
            "unknown_type": [wire(1, 9, keyup=1, payload=voice), wire(1, PING, type_order=">")],
            "wrong_talkgroup": [wire(1, keyup=1, talkgroup=7, payload=voice)],
        }
        for packets in bad.values():
            for data in packets:
                bench.send(data)
        rng = random.Random(5)
        for _ in range(50):
            bench.send(bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 400))))
        sent = 5 + sum(len(packets) for packets in bad.values()) + 50

        def counted() -> int:
            stats = bench.link.stats()
            return int(stats["unknown_source"] + stats["wrong_talkgroup"] + stats["malformed"])

        await until(lambda: counted() >= sent, what=f"{sent} datagrams counted")
        stats = bench.link.stats()
        assert stats["unknown_source"] == 5 and stats["wrong_talkgroup"] == 1
        for reason, packets in bad.items():
            assert stats["dropped"][reason] >= len(packets), (reason, stats["dropped"])
        assert stats["packets_in"] == 0 and stats["malformed"] == 50 + 10

        def peer(tick: int) -> None:  # then real traffic: its own talkgroup, and 0
            if 5 <= tick < 25:
                talkgroup = 4242 if tick % 2 else 0
                bench.send(wire(tick, keyup=1, talkgroup=talkgroup, payload=pcm_bytes(tone(tick))))
            elif tick == 25:
                bench.send(wire(25, talkgroup=4242))

        got = await bench.run(50, peer=peer)
        await bench.close()
        # 20 frames played; carrier may hold one tick more when the unkey arrives a tick late
        # (a loaded machine), as the jitter buffer waits for it before it drops the carrier.
        assert len(keyed_run(got)) in (20, 21)
        assert bench.link.stats()["rx_played"] == 20

    asyncio.run(scenario())


def test_a_late_straggler_does_not_key_and_a_restarted_peer_is_heard() -> None:
    async def scenario() -> None:
        bench = Bench()
        bench.link.start()

        def peer(tick: int) -> None:
            if 5 <= tick < 15:
                bench.send(wire(40 + tick, keyup=1, payload=pcm_bytes(tone(tick))))
            elif tick == 15:
                bench.send(wire(55))
            elif tick == 25:  # a packet of that transmission, long after it ended
                bench.send(wire(50, keyup=1, payload=pcm_bytes(tone(0))))
            elif 35 <= tick < 45:  # the peer restarted: its count begins at 0 again
                bench.send(wire(tick - 35, keyup=1, payload=pcm_bytes(tone(tick))))
            elif tick == 45:
                bench.send(wire(10))

        got = await bench.run(70, peer=peer)
        await bench.close()
        carrier = [c for _, c in got]
        assert not any(carrier[20:35])  # the straggler keyed nothing
        assert sum(carrier[:35]) == 10
        assert sum(carrier[35:]) >= 9  # at most the restart's first packet is lost
        assert bench.link.stats()["rx_late"] >= 1

    asyncio.run(scenario())


def test_with_a_timeout_a_silent_peer_goes_down_and_comes_back() -> None:
    async def scenario() -> None:
        bench = Bench(usrp_ping_s=0.1, usrp_timeout_s=0.3)
        bench.link.start()
        bench.send(wire(0, PING))
        await until(lambda: bench.link.stats()["pings_in"] == 1, what="the ping heard")
        assert bench.notices == [] and bench.link.online
        started = time.monotonic()
        await until(lambda: bench.notices, what="the link going down")
        assert 0.15 <= time.monotonic() - started <= 0.6
        name, online, detail = bench.notices[0]
        assert (name, online) == ("usrp", False) and not bench.link.online
        assert "nothing from 127.0.0.2" in detail and "0.3 s" in detail
        bench.send(wire(1, PING, payload=b"PING"))
        await until(lambda: len(bench.notices) >= 2, what="the link coming back")
        assert bench.notices[1][:2] == ("usrp", True) and bench.link.online
        await bench.close()

    asyncio.run(scenario())


def test_without_a_timeout_a_silent_peer_stays_online() -> None:
    async def scenario() -> None:
        bench = Bench(usrp_ping_s=0.1)
        bench.link.start()
        # Not happening: half a second of silence, the link pinging all along (so running).
        await until(lambda: bench.link.stats()["pings_out"] >= 5, what="five pings sent")
        assert bench.link.online and bench.notices == []
        assert bench.link.stats()["last_heard_s"] is None  # never heard: ASL while idle
        await bench.close()

    asyncio.run(scenario())


def test_a_busy_address_is_a_one_line_link_error() -> None:
    async def scenario() -> None:
        holder = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        holder.bind(("127.0.0.3", 0))
        taken = holder.getsockname()[1]
        link = UsrpLink("usrp", link_config(f"127.0.0.3:{taken}", "127.0.0.2:32001"))
        with pytest.raises(LinkError, match=f"link 'usrp': cannot listen on 127.0.0.3:{taken}"):
            link.start()
        holder.close()
        await link.close()

    asyncio.run(scenario())
