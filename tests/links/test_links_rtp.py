"""RTP links, piece by piece: packets and the ED-137 extension, the jitter buffer (with the real
G.711 codec), SRTP and key files, the config rule for plain RTP, and two `RtpLink`s talking over
real loopback sockets on a real asyncio loop."""

from __future__ import annotations

import asyncio
import base64
import itertools
import os
import random
import socket
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import pytest

from gateway.codecs import registry
from gateway.config import ConfigError, parse_config_text
from gateway.config.models import Link
from gateway.links import LinkError
from gateway.links.jitter import IDLE, JitterBuffer
from gateway.links.rtp import (
    ED137_PROFILE,
    MAX_PACKET_BYTES,
    R2S_PAYLOAD_TYPE,
    Ed137,
    PttType,
    RtpError,
    RtpPacket,
    keepalive,
    parse_packet,
)
from gateway.links.rtp_link import KEYED, RtpLink
from gateway.links.srtp import (
    KEY_BYTES,
    KeyFileError,
    SrtpContext,
    SrtpError,
    parse_key_text,
    read_key_file,
)
from tests.support.emulators.drive import until

# --- packets ----------------------------------------------------------------------------------


def test_audio_packet_round_trip_with_every_ed137_field() -> None:
    state = Ed137(
        ptt_type=PttType.EMERGENCY,
        squ=True,
        ptt_id=42,
        pm=True,
        ptts=False,
        sct=True,
        features=((1, bytes([0b01111_000])), (0xB, b"vendor")),
    )
    packet = RtpPacket(0, 65535, 0xFFFF_FFF0, 0xDEADBEEF, bytes(range(160)), True, state)
    data = packet.to_bytes()
    assert parse_packet(data) == packet
    # The extension: profile 0x0167, then its length in words, then the fixed word.
    assert data[0] == 0x90 and data[1] == 0x80  # V=2, X=1; M=1, PT 0
    assert int.from_bytes(data[12:14], "big") == ED137_PROFILE
    words = int.from_bytes(data[14:16], "big")
    assert words == 3  # 2 fixed + 2 + 7 feature bytes = 11, padded to 12
    fixed = int.from_bytes(data[16:18], "big")
    assert fixed >> 13 == 4 and fixed >> 12 & 1 == 1 and fixed >> 6 & 0x3F == 42
    assert fixed >> 5 & 1 == 1 and fixed >> 4 & 1 == 0 and fixed >> 3 & 1 == 1 and fixed & 1 == 1
    assert data[16 + 4 * words :] == bytes(range(160))


def test_keyed_state_matches_the_bits_on_the_wire() -> None:
    # PTT normal (1), SQU, PTT-ID 1: 001 1 000001 000 00 0
    assert KEYED.encode() == bytes([0x30, 0x40, 0, 0])
    assert Ed137.decode(bytes([0x30, 0x40, 0, 0])) == KEYED
    assert KEYED.carrier and not IDLE.carrier
    assert Ed137(squ=True).carrier and Ed137(ptt_type=PttType.PRIORITY).carrier


def test_r2s_keepalive_is_payload_type_123_with_only_the_extension() -> None:
    data = keepalive(7, 1234, 99, Ed137()).to_bytes()
    assert len(data) == 12 + 4 + 4  # header, extension header, one word: no payload
    assert data[1] == R2S_PAYLOAD_TYPE
    packet = parse_packet(data)
    assert packet.is_keepalive and packet.payload == b"" and packet.ed137 == Ed137()
    assert (packet.sequence, packet.timestamp, packet.ssrc) == (7, 1234, 99)


def test_csrcs_padding_and_other_extensions_are_understood() -> None:
    plain = RtpPacket(8, 1, 2, 3, b"abc", csrc=(10, 11), extension=(0xBEDE, bytes(4)))
    assert parse_packet(plain.to_bytes()) == plain
    padded = bytearray(RtpPacket(8, 1, 2, 3, b"abcd").to_bytes() + bytes([0, 0, 3]))
    padded[0] |= 0x20
    assert parse_packet(bytes(padded)).payload == b"abcd"


def bad(data: bytes, words: str) -> None:
    with pytest.raises(RtpError, match=words):
        parse_packet(data)


def test_truncated_oversized_and_inconsistent_packets_are_rtp_errors() -> None:
    good = RtpPacket(0, 1, 2, 3, b"x" * 160, ed137=Ed137(features=((1, b"\x10"),))).to_bytes()
    header_and_extension = 12 + 4 + 4
    for cut in range(header_and_extension):  # every cut inside the header or the extension
        with pytest.raises(RtpError):
            parse_packet(good[:cut])
    bad(b"", "shorter than an RTP header")
    bad(bytes(MAX_PACKET_BYTES + 1), "more than 1500")
    bad(bytes([0x40]) + good[1:], "version 1")
    bad(bytes([good[0] | 0x0F]) + good[1:30], "CSRCs do not fit")
    too_long_extension = bytearray(good)
    too_long_extension[14:16] = (200).to_bytes(2, "big")
    bad(bytes(too_long_extension), "extension says 800 bytes")
    padding = bytearray(good)
    padding[0] |= 0x20
    padding[-1] = 0
    bad(bytes(padding), "padding of 0 bytes")
    bad(bytes(padding[:39]) + bytes([255]), "padding of 255 bytes")
    feature = bytearray(good)
    feature[18] = 0x1F  # a feature block claiming 15 bytes in a 2-byte remainder
    bad(bytes(feature), "feature type 1 says 15 bytes")
    with pytest.raises(RtpError):
        RtpPacket(0, 70000, 0, 0).to_bytes()
    with pytest.raises(RtpError):
        Ed137(ptt_id=64)


def test_random_garbage_only_ever_raises_rtp_error() -> None:
    rng = random.Random(7)
    parsed = 0
    for _ in range(5000):
        data = bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 80)))
        if data and rng.random() < 0.5:
            data = bytes([0x80 | data[0] & 0x3F]) + data[1:]  # version 2, to get further in
        try:
            parse_packet(data)
            parsed += 1
        except RtpError:
            pass
    assert parsed > 0  # some garbage is well-formed RTP; the link's other checks drop it


# --- the jitter buffer --------------------------------------------------------------------------

PCMU = registry.get("pcmu")


def frames(count: int) -> list[bytes]:
    """Distinct G.711 payloads: a constant level per frame."""
    encoder = PCMU.encoder()
    return [encoder.encode(np.full(160, 100 * (i + 1), np.int16)) for i in range(count)]


def decoded(payload: bytes) -> np.ndarray:
    return PCMU.decoder().decode(payload)


Arrival = tuple[float, int, bytes | None, Ed137]  # arrival time, sequence, payload, state


def play(
    buffer: JitterBuffer, arrivals: Iterable[Arrival], ticks: int, seq0: int = 0
) -> list[tuple[np.ndarray, bool]]:
    """Runs the buffer `ticks` frames: packets due by each tick are pushed, then one pop."""
    pending = sorted(arrivals, key=lambda a: a[0])
    out = []
    for tick in range(ticks):
        now = tick * 0.02
        while pending and pending[0][0] <= now:
            at, seq, payload, state = pending.pop(0)
            ts = ((seq - seq0) & 0xFFFF) * 160
            buffer.push(seq & 0xFFFF, ts, payload, state, at)
        pcm, state = buffer.pop(now)
        out.append((pcm.copy(), state.carrier))
    return out


def ended(arrivals: list[Arrival], seq: int, at: float) -> list[Arrival]:
    """The transmission followed by the sender's PTT-off keep-alive."""
    return [*arrivals, (at, seq, None, Ed137())]


def audio_of(out: list[tuple[np.ndarray, bool]]) -> list[np.ndarray]:
    return [pcm for pcm, carrier in out if carrier]


def same(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def test_reordered_packets_play_in_sequence_order() -> None:
    payloads = frames(10)
    order = [0, 1, 2, 4, 3, 5, 7, 6, 8, 9]
    arrivals = [(0.005 + 0.02 * i, n, payloads[n], KEYED) for i, n in enumerate(order)]
    buffer = JitterBuffer(PCMU.decoder())
    out = play(buffer, ended(arrivals, 10, 0.2), 20)
    assert same(audio_of(out), [decoded(p) for p in payloads])
    assert buffer.stats.concealed == 0 and buffer.stats.late == 0


def test_sequence_numbers_wrap_at_16_bits() -> None:
    payloads = frames(12)
    seq0 = 65530
    arrivals = [(0.005 + 0.02 * i, seq0 + i, payloads[i], KEYED) for i in range(12)]
    buffer = JitterBuffer(PCMU.decoder())
    out = play(buffer, ended(arrivals, seq0 + 12, 0.24), 20, seq0=seq0)
    assert same(audio_of(out), [decoded(p) for p in payloads])
    assert buffer.stats.played == 12 and buffer.stats.resyncs == 0


def test_a_lost_packet_is_concealed_in_its_place() -> None:
    payloads = frames(10)
    arrivals = [(0.005 + 0.02 * i, i, payloads[i], KEYED) for i in range(10) if i != 4]
    buffer = JitterBuffer(PCMU.decoder())
    audio = audio_of(play(buffer, ended(arrivals, 10, 0.2), 20))
    assert len(audio) == 10
    assert np.array_equal(audio[3], decoded(payloads[3]))
    assert not np.array_equal(audio[4], np.zeros(160)) and np.abs(audio[4]).max() <= 400
    assert np.array_equal(audio[5], decoded(payloads[5]))
    assert (buffer.stats.lost, buffer.stats.concealed, buffer.stats.played) == (1, 1, 9)


def test_late_and_duplicate_packets_are_dropped_and_counted() -> None:
    payloads = frames(10)
    arrivals = [(0.005 + 0.02 * i, i, payloads[i], KEYED) for i in range(10) if i != 3]
    arrivals.append((0.005 + 0.02 * 9, 3, payloads[3], KEYED))  # long after its turn
    arrivals.append((0.006 + 0.02 * 5, 5, payloads[5], KEYED))  # twice
    buffer = JitterBuffer(PCMU.decoder())
    play(buffer, arrivals, 20)
    assert buffer.stats.late == 1 and buffer.stats.duplicates == 1
    assert buffer.stats.played == 9 and buffer.stats.lost == 1


def test_a_delayed_packet_stretches_the_delay_instead_of_being_lost() -> None:
    payloads = frames(10)
    arrivals = [
        (0.005 + 0.02 * i + (0.05 if i >= 5 else 0), i, payloads[i], KEYED) for i in range(10)
    ]
    buffer = JitterBuffer(PCMU.decoder())
    audio = audio_of(play(buffer, ended(arrivals, 10, 0.25), 25))
    assert buffer.stats.late == 0 and buffer.stats.played == 10
    assert buffer.stats.underruns >= 1  # concealed in place while the network was slow
    real = [a for a in audio if any(np.array_equal(a, decoded(p)) for p in payloads)]
    assert same(real, [decoded(p) for p in payloads])


def test_ptt_off_plays_out_after_the_last_frame_even_when_it_arrives_with_it() -> None:
    payloads = frames(10)
    arrivals: list[Arrival] = [(0.005 + 0.02 * i, i, payloads[i], KEYED) for i in range(10)]
    arrivals.append((0.19, 10, None, Ed137()))  # PTT off, right behind the last frame
    buffer = JitterBuffer(PCMU.decoder())
    out = play(buffer, arrivals, 30)
    carrier = [c for _, c in out]
    first = carrier.index(True)
    assert carrier[first : first + 10] == [True] * 10 and not any(carrier[first + 10 :])
    assert same(audio_of(out), [decoded(p) for p in payloads])


def test_a_talkspurt_whose_packets_stop_ends_after_the_hold_time() -> None:
    payloads = frames(5)
    arrivals: list[Arrival] = [(0.005 + 0.02 * i, i, payloads[i], KEYED) for i in range(5)]
    buffer = JitterBuffer(PCMU.decoder(), hold_frames=10)
    out = play(buffer, arrivals, 40)
    carrier = [c for _, c in out]
    assert carrier.count(True) == 5 + 10 and not carrier[-1]


def test_the_target_grows_with_jitter_and_shrinks_after_it() -> None:
    rng = np.random.default_rng(1)
    buffer = JitterBuffer(PCMU.decoder())
    assert buffer.target_frames == 1
    payload = frames(1)[0]
    for i in range(500):  # 40 ms of uniform jitter
        buffer.push(i, i * 160, payload, KEYED, 0.02 * i + rng.uniform(0, 0.04))
    jittery = buffer.target_frames
    assert 10 <= buffer.jitter_ms <= 17  # E|U1 - U2| = 40/3 ms for uniform 0-40 ms delays
    assert jittery >= 3 and buffer.target_ms >= 4 * buffer.jitter_ms
    for i in range(500, 1000):
        buffer.push(i, i * 160, payload, KEYED, 0.02 * i + 0.001)
    assert buffer.target_frames == 1 and buffer.jitter_ms < 1


def test_the_target_is_clamped_to_200_ms() -> None:
    buffer = JitterBuffer(PCMU.decoder())
    payload = frames(1)[0]
    for i in range(200):
        buffer.push(i, i * 160, payload, KEYED, 0.02 * i + (0.5 if i % 2 else 0))
    assert buffer.target_ms == 200


def test_jittered_stream_with_loss_plays_every_frame_that_came() -> None:
    rng = np.random.default_rng(3)
    payloads = frames(50) * 6
    arrivals: list[Arrival] = []
    for i in range(len(payloads)):
        if rng.random() < 0.1:
            continue
        arrivals.append((0.02 * i + rng.uniform(0, 0.04), i, payloads[i], KEYED))
    arrivals.append((0.02 * len(payloads) + 0.01, len(payloads), None, Ed137()))
    buffer = JitterBuffer(PCMU.decoder())
    out = play(buffer, arrivals, len(payloads) + 40)
    carrier = [c for _, c in out]
    first = carrier.index(True)
    # Carrier holds through the whole transmission (no chatter) and drops once.
    assert all(carrier[first : first + len(payloads)])
    assert sum(1 for a, b in itertools.pairwise(carrier) if a != b) == 2
    stats = buffer.stats
    assert stats.played + stats.late + stats.skipped == len(arrivals) - 1
    assert stats.late <= len(payloads) * 0.05  # the adaptive target absorbs the jitter


def test_a_sequence_restart_is_taken_after_two_packets_in_a_row() -> None:
    payloads = frames(4)
    buffer = JitterBuffer(PCMU.decoder())
    assert buffer.push(100, 0, payloads[0], KEYED, 0.0)
    assert not buffer.push(40000, 0, payloads[1], KEYED, 0.02)  # a stray jump: dropped
    assert buffer.push(40001, 160, payloads[2], KEYED, 0.04)  # ...followed: a restart
    assert buffer.stats.resyncs == 1


# --- SRTP and key files -------------------------------------------------------------------------


def test_srtp_round_trip_and_a_wrong_key_fails_authentication() -> None:
    key = os.urandom(KEY_BYTES)
    packet = RtpPacket(0, 1, 160, 1234, b"\x55" * 160, ed137=KEYED).to_bytes()
    protected = SrtpContext(key).protect(packet)
    assert protected != packet and len(protected) == len(packet) + 10  # 80-bit tag
    receiver = SrtpContext(key)
    assert receiver.unprotect(protected) == packet
    with pytest.raises(SrtpError) as replay:
        receiver.unprotect(protected)
    assert replay.value.replay
    with pytest.raises(SrtpError) as wrong:
        SrtpContext(os.urandom(KEY_BYTES)).unprotect(protected)
    assert not wrong.value.replay
    tampered = bytearray(protected)
    tampered[-12] ^= 1
    with pytest.raises(SrtpError):
        SrtpContext(key).unprotect(bytes(tampered))


def test_key_files_inline_or_bare_with_comments(tmp_path: Path) -> None:
    key = os.urandom(KEY_BYTES)
    text = base64.b64encode(key).decode()
    for content in (text, f"inline:{text}\n", f"# to-blaine\n\n  inline:{text}  \n"):
        path = tmp_path / "k.key"
        path.write_text(content)
        path.chmod(0o600)
        assert read_key_file(path) == key


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("", "no key in it"),
        ("# only a comment\n", "no key in it"),
        (base64.b64encode(os.urandom(16)).decode(), "the key is 16 bytes; an AES_CM_128"),
        (base64.b64encode(os.urandom(46)).decode(), "the key is 46 bytes"),
        ("not base64 at all!", "not valid base64"),
        (base64.b64encode(os.urandom(30)).decode() + "|2^31|1:1", "MKI parameters"),
        ("a\nb\n", "2 lines; a key file holds one key"),
        (base64.b64encode(bytes(30)).decode(), "one byte repeated"),
    ],
)
def test_bad_key_files_are_one_line_errors(content: str, words: str) -> None:
    with pytest.raises(KeyFileError, match=words) as caught:
        parse_key_text(content, "srtp_key_file k.key")
    assert "\n" not in str(caught.value) and str(caught.value).startswith("srtp_key_file k.key")


def test_a_missing_key_file_is_a_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match=r"nothing.key: No such file"):
        read_key_file(tmp_path / "nothing.key")


# --- the config rule for plain RTP --------------------------------------------------------------

SITE = """\
gateway: {{id: test}}
agencies:
  ca:
    name: Canadian agency
    country: CA
    talkgroups:
      tac: {{rx_mhz: 142.47}}
      net: {{}}
radios:
  ca-1: {{talkgroup: ca/tac, simulated: {{}}}}
links:
  peer:
    protocol: rtp
    local: 0.0.0.0:40000
    remote: "{remote}"
    talkgroup: ca/net
    insecure: true
patches:
  cross: {{members: [ca/tac, ca/net]}}
"""


@pytest.mark.parametrize(
    "remote",
    [
        "127.0.0.2:40000",
        "10.1.2.3:5004",
        "172.20.0.1:5004",
        "192.168.1.9:5004",
        "[::1]:5004",
        "[fd00::7]:5004",
        "localhost:5004",
        "169.254.3.4:5004",
    ],
)
def test_plain_rtp_is_allowed_to_loopback_and_private_addresses(remote: str) -> None:
    assert parse_config_text(SITE.format(remote=remote)).links["peer"].insecure


@pytest.mark.parametrize(
    "remote", ["198.51.100.7:40000", "8.8.8.8:5004", "[2001:db8::7]:5004", "peer.example:5004"]
)
def test_plain_rtp_to_a_public_address_is_a_located_error(remote: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config_text(SITE.format(remote=remote), filename="site.yaml")
    (issue,) = caught.value.issues
    assert issue.path == "links.peer.insecure" and issue.line == 17
    assert "only for a loopback or private remote address" in issue.message
    assert "give srtp_key_file" in issue.message


# --- two links over loopback --------------------------------------------------------------------


def free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


def link_config(
    local: str, remote: str, codec: str = "pcmu", *, srtp_key_file: Path | None = None
) -> Link:
    """A link's config; plain RTP unless it has a key file."""
    settings: dict[str, object] = {"protocol": "rtp", "local": local, "remote": remote}
    settings.update(talkgroup="ca/net", codec=codec)
    if srtp_key_file is None:
        settings["insecure"] = True
    else:
        settings["srtp_key_file"] = str(srtp_key_file)
    return Link.model_validate(settings)


def key_file(path: Path, key: bytes | None = None) -> Path:
    path.write_text(
        f"# test key\ninline:{base64.b64encode(key or os.urandom(KEY_BYTES)).decode()}\n"
    )
    path.chmod(0o600)
    return path


class Pair:
    """Two links facing each other on 127.0.0.2 and 127.0.0.3, ticked together like engines;
    with SRTP keys from files in `keys` (the same key unless `same_key` is false), or plain."""

    def __init__(self, keys: Path | None, codec: str = "pcmu", *, same_key: bool = True) -> None:
        self.a_port, self.b_port = free_port("127.0.0.2"), free_port("127.0.0.3")
        self.a_addr, self.b_addr = f"127.0.0.2:{self.a_port}", f"127.0.0.3:{self.b_port}"
        self.notices: list[tuple[str, bool, str]] = []
        key = os.urandom(KEY_BYTES)
        configs = []
        for name, local, remote in (
            ("a", self.a_addr, self.b_addr),
            ("b", self.b_addr, self.a_addr),
        ):
            config = link_config(local, remote, codec)
            if keys is not None:
                path = key_file(keys / f"{name}.key", key if same_key else None)
                config = link_config(local, remote, codec, srtp_key_file=path)
            configs.append(config)
        self.a = self.make("a", configs[0])
        self.b = self.make("b", configs[1])

    def make(self, name: str, config: Link) -> RtpLink:
        return RtpLink(name, config, on_online=lambda *n: self.notices.append(n), keepalive_s=0.05)

    async def run(
        self, ticks: int, a_keyed: Callable[[int], bool]
    ) -> list[tuple[int, np.ndarray, bool]]:
        """Ticks both links; `a` sends a 1 kHz tone while `a_keyed(tick)`; returns what `b`
        received each tick."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        t = np.arange(160) / 8000
        got = []
        for tick in range(ticks):
            tone = (8192 * np.sin(2 * np.pi * 1000 * (t + tick * 0.02))).astype(np.int16)
            self.a.send(tone, a_keyed(tick))
            self.b.send(np.zeros(160, np.int16), False)
            self.a.receive()
            frame, carrier = self.b.receive()
            got.append((tick, frame, carrier))
            # Paces the ticks at 20 ms, as the engine's clock does.
            await asyncio.sleep(max(0.0, start + (tick + 1) * 0.02 - loop.time()))
        return got


@pytest.mark.parametrize("codec", ["pcmu", "pcma", "dvi4", "opus"])
def test_a_tone_crosses_a_link_within_one_frame_of_the_target(codec: str, tmp_path: Path) -> None:
    ok, reason = registry.available(codec)
    if not ok:
        pytest.skip(reason)
    try:
        registry.get(codec).decoder()
    except ImportError:
        pytest.skip(f"{codec} is not in this build yet")

    async def scenario() -> None:
        pair = Pair(tmp_path, codec)
        pair.a.start()
        pair.b.start()
        got = await pair.run(60, lambda tick: 10 <= tick < 40)
        await pair.a.close()
        await pair.b.close()
        keyed = [tick for tick, _, carrier in got if carrier]
        assert keyed == list(range(keyed[0], keyed[0] + 30)), str(pair.b.stats())  # no chatter
        target_frames = pair.b._jitter.target_frames
        assert keyed[0] - 10 <= target_frames + 1  # at most one frame beyond the target
        levels = [float(np.abs(frame).max()) for tick, frame, _ in got[keyed[5] : keyed[-1]]]
        assert min(levels) / 32768 > 0.2 and max(levels) / 32768 < 0.3  # the tone's level
        stats = pair.b.stats()
        assert stats["rx_played"] == 30 and stats["rx_concealed"] == 0
        assert stats["auth_failures"] == stats["malformed"] == 0 and stats["online"]

    asyncio.run(scenario())


def test_wrong_key_unknown_sources_and_garbage_are_dropped_and_counted(tmp_path: Path) -> None:
    async def scenario() -> None:
        pair = Pair(tmp_path, same_key=False)
        pair.a.start()
        pair.b.start()
        stranger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        stranger.bind(("127.0.0.5", 0))
        garbage = [b"", b"\x80", os.urandom(11), os.urandom(200), bytes(1600)]
        for data in garbage:
            stranger.sendto(data, ("127.0.0.3", pair.b_port))
        got = await pair.run(30, lambda tick: True)
        stranger.close()
        await pair.a.close()
        await pair.b.close()
        assert not any(carrier for _, _, carrier in got)  # nothing passes the wrong key
        stats = pair.b.stats()
        assert stats["auth_failures"] >= 25 and stats["packets_in"] == 0
        assert stats["unknown_source"] == len(garbage)
        # No good packet in 10 keep-alives: b is down (and so is a, in either order).
        assert ("b", False) in [notice[:2] for notice in pair.notices]
        assert ("b", True) not in [notice[:2] for notice in pair.notices]

    asyncio.run(scenario())


def test_malformed_packets_from_the_peer_address_are_counted_and_the_link_carries_on() -> None:
    async def scenario() -> None:
        pair = Pair(None)
        # Stand in for `a` on its own address for a moment: the garbage comes from the peer.
        pair.b.start()
        spoof = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        spoof.bind(("127.0.0.2", pair.a_port))
        rng = random.Random(5)
        sent = 0
        for _ in range(200):
            data = bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 60)))
            spoof.sendto(data, ("127.0.0.3", pair.b_port))
            sent += 1
        wrong_type = RtpPacket(96, 1, 2, 3, b"xx").to_bytes()
        spoof.sendto(wrong_type, ("127.0.0.3", pair.b_port))

        def counted() -> int:
            stats = pair.b.stats()
            return int(stats["malformed"] + stats["packets_in"])

        await until(lambda: counted() >= sent + 1, what=f"{sent + 1} datagrams counted by b")
        spoof.close()
        pair.a.start()
        got = await pair.run(40, lambda tick: 5 <= tick < 25)
        await pair.a.close()
        await pair.b.close()
        stats = pair.b.stats()
        assert stats["malformed"] >= 150  # most random bytes are no RTP of ours
        assert stats["malformed"] + stats["packets_in"] >= sent
        # ...and the link works after it: one call of the 20 frames sent, carrier held at most
        # one tick more when the last packet comes a tick late (a loaded machine).
        keyed = [tick for tick, _, carrier in got if carrier]
        assert len(keyed) in (20, 21) and keyed == list(range(keyed[0], keyed[0] + len(keyed)))

    asyncio.run(scenario())


def test_a_link_needs_its_key_and_a_free_address(tmp_path: Path) -> None:
    missing = link_config("127.0.0.2:5004", "127.0.0.3:5004", srtp_key_file=tmp_path / "none.key")
    with pytest.raises(LinkError, match=r"none\.key: No such file"):
        RtpLink("a", missing)

    async def scenario() -> None:
        holder = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        holder.bind(("127.0.0.2", 0))
        taken = holder.getsockname()[1]
        link = RtpLink("a", link_config(f"127.0.0.2:{taken}", "127.0.0.3:5004"))
        with pytest.raises(LinkError, match=f"cannot listen on 127.0.0.2:{taken}"):
            link.start()
        holder.close()
        await link.close()

    asyncio.run(scenario())


def test_link_goes_down_after_ten_missed_keepalives_and_comes_back() -> None:
    async def scenario() -> None:
        pair = Pair(None)
        pair.a.start()
        pair.b.start()
        await pair.run(10, lambda tick: False)
        assert pair.notices == []
        await pair.a.close()
        started = time.monotonic()
        await until(lambda: pair.notices, what="b going down")
        assert pair.notices[0][:2] == ("b", False)
        assert 0.45 <= time.monotonic() - started <= 0.8  # 10 x 50 ms keep-alives here
        assert "keep-alives missed" in pair.notices[0][2]
        back = RtpLink("a", link_config(pair.a_addr, pair.b_addr), keepalive_s=0.05)
        back.start()
        await until(lambda: len(pair.notices) >= 2, what="b coming back")
        assert pair.notices[1][:2] == ("b", True)
        await back.close()
        await pair.b.close()

    asyncio.run(scenario())
