"""A `crosspatch run` gateway with USRP links, against USRP peers written here from
docs/protocols.md, "USRP", with `struct` alone, standing where an AllStarLink node
(`USRP/127.0.0.1:34001:32001`) or a DVSwitch Analog_Bridge would.

The gateway on 127.0.0.3 patches a simulated radio with a hub talkgroup carried by two USRP
links, one to each test peer on 127.0.0.2: a tone from one peer keys the radio and reaches the
other peer as keyed voice; the radio's traffic reaches the peers as keyed voice then the unkey.
"""

from __future__ import annotations

import socket
import subprocess
import time
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.support.daemon import CROSSPATCH, Daemon, Site
from tests.support.usrp import (
    FRAME_S,
    GATEWAY_HOST,
    PEER_HOST,
    PING,
    TALKGROUP_ID,
    TONE_HZ,
    VOICE,
    Heard,
    Peer,
    tone_frame,
    wire,
)

SITE = """\
gateway: {{id: usrp-gw, frame_ms: 20, state_dir: {state_dir}}}
agencies:
  usbp:
    name: U.S. Border Patrol
    country: US
    talkgroups:
      ch4: {{rx_mhz: 163.100, ctcss_hz: 100.0}}
  asl:
    name: AllStarLink hub
    country: US
    talkgroups:
      hub: {{id: {talkgroup_id}}}
radios:
  usbp-1:
    talkgroup: usbp/ch4
    simulated: {traffic}
    timing: {{tx_delay_ms: 0, hang_ms: 200}}
links:
  allstar:
    protocol: usrp
    local: {a_local}
    remote: {a_remote}
    talkgroup: asl/hub
    usrp_ping_s: 0.2
{a_extra}  bridge:
    protocol: usrp
    local: {b_local}
    remote: {b_remote}
    talkgroup: asl/hub
    usrp_ping_s: 0.2
patches:
  hub:
    members: [usbp/ch4, asl/hub]
    enabled: true
recording: {{dir: {recordings}, format: wav}}
access:
  technicians: [tech1]
"""


class UsrpSite:
    def __init__(self, tmp_path: Path) -> None:
        self.site = Site(tmp_path)
        self.recordings = tmp_path / "recordings"
        self.a, self.b = Peer(), Peer()

    def configure(self, traffic: str = "{}", a_extra: str = "") -> None:
        self.site.config.write_text(
            SITE.format(
                state_dir=self.site.state_dir,
                recordings=self.recordings,
                traffic=traffic,
                talkgroup_id=TALKGROUP_ID,
                a_local=f"{GATEWAY_HOST}:{self.a.gateway[1]}",
                a_remote=f"{PEER_HOST}:{self.a.address[1]}",
                b_local=f"{GATEWAY_HOST}:{self.b.gateway[1]}",
                b_remote=f"{PEER_HOST}:{self.b.address[1]}",
                a_extra=a_extra,
            )
        )

    def start(self) -> Daemon:
        daemon = self.site.start()
        self.site.wait_ready(daemon)
        return daemon

    def link(self, name: str) -> dict[str, Any]:
        status: dict[str, Any] = self.site.status()["links"][name]
        return status

    def close(self) -> None:
        self.a.close()
        self.b.close()
        self.site.close()


@pytest.fixture
def usrp_site(tmp_path: Path) -> Iterator[UsrpSite]:
    s = UsrpSite(tmp_path)
    yield s
    s.close()


def calls(daemon: Daemon, kind: str, port: str) -> list[dict[str, Any]]:
    return [e for e in daemon.events(kind) if e["source"]["port"] == port]


def alarms(daemon: Daemon, kind: str, port: str) -> list[dict[str, Any]]:
    return [a for a in daemon.events("alarm") if a["kind"] == kind and a.get("port") == port]


def keyed(daemon: Daemon, port: str) -> list[dict[str, Any]]:
    return [e for e in daemon.events("ptt") if e["port"] == port and e["on"]]


def dominant_hz(samples: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64)))
    return float(np.fft.rfftfreq(len(samples), 1 / 8000)[int(np.argmax(spectrum))])


def read_wav(path: Path) -> np.ndarray:
    with wave.open(str(path), "rb") as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, 8000)
        return np.frombuffer(wav.readframes(wav.getnframes()), dtype=np.int16)


def test_a_tone_from_the_peer_keys_the_radio_and_reaches_the_other_peer(
    usrp_site: UsrpSite,
) -> None:
    s = usrp_site
    s.configure()
    daemon = s.start()
    # Idle, the gateway pings both peers (so it is up, and b hears a ping before any voice).
    daemon.wait_for(lambda: all(any(h.kind == PING for h in p.heard) for p in (s.a, s.b)))
    s.a.talk(1.5, tone_frame())
    # The radio transmits it: a call from the link, the radio keyed, ended by the unkey.
    end = daemon.wait_for(lambda: calls(daemon, "call_end", "allstar"), timeout=10)[0]
    assert [d["port"] for d in end["destinations"]] == ["usbp-1", "bridge"]
    assert end["source"]["talkgroup"] == "asl/hub" and end["reason"] == "carrier_drop"
    assert abs(end["duration_s"] - 1.5) <= 0.15, end
    assert abs(end["peak_dbfs"] - -12.0) <= 0.5, end
    assert keyed(daemon, "usbp-1")
    recorded = read_wav(Path(end["recording"]))
    assert abs(dominant_hz(recorded) - TONE_HZ) < 10

    # The other peer hears it as keyed voice with the hub's talkgroup id, then the unkey.
    def unkeyed() -> list[Heard]:
        return [h for h in s.b.heard if h.kind == VOICE and not h.keyup and not h.payload]

    daemon.wait_for(lambda: len(unkeyed()) >= 3, timeout=5)
    heard = list(s.b.heard)
    voice = [h for h in heard if h.payload]
    assert abs(len(voice) - 75) <= 3, len(voice)
    assert all(
        (h.keyup, h.talkgroup, h.kind, len(h.payload)) == (1, TALKGROUP_ID, VOICE, 320)
        for h in voice
    )
    # Bit for bit: nothing on the way changes a -12 dBFS tone.
    exact = sum(h.payload == tone_frame() for h in voice)
    assert exact >= 0.9 * len(voice), (exact, len(voice))
    after = heard[heard.index(voice[-1]) + 1 :]
    assert [(h.kind, h.keyup, h.payload) for h in after[:3]] == [(VOICE, 0, b"")] * 3
    seqs = [h.seq for h in heard]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # one counter, pings included
    assert any(h.kind == PING for h in heard[: heard.index(voice[0])])  # pinged while idle

    stats = s.link("allstar")
    assert stats["protocol"] == "usrp" and stats["voice_in"] == 75 and stats["unkeys_in"] == 1
    assert stats["online"] and stats["malformed"] == stats["unknown_source"] == 0
    # Link B never says a word (like an idle ASL node) and is not declared down for it.
    assert alarms(daemon, "port_offline", "bridge") == []
    text = s.site.cli("status")
    assert text.returncode == 0 and f"{'allstar':<16} up   usrp tg {TALKGROUP_ID}" in text.stdout
    assert daemon.stop() == 0


def test_radio_traffic_reaches_the_peer_as_keyed_voice_then_the_unkey(
    usrp_site: UsrpSite,
) -> None:
    s = usrp_site
    s.configure(traffic="{traffic: {every_s: 4, talk_s: 1.5, seed: 1}}")
    daemon = s.start()
    end = daemon.wait_for(lambda: calls(daemon, "call_end", "usbp-1"), timeout=15)[0]
    assert {d["port"] for d in end["destinations"]} == {"allstar", "bridge"}

    def transmission() -> list[Heard] | None:
        """The first transmission heard, once its three unkeys followed it."""
        heard = list(s.a.heard)
        voice = [i for i, h in enumerate(heard) if h.payload]
        if not voice:
            return None
        after = heard[voice[-1] + 1 :]
        unkeys = [h for h in after if (h.kind, h.keyup, h.payload) == (VOICE, 0, b"")]
        return heard[voice[0] :] if len(unkeys) >= 3 else None

    heard = daemon.wait_for(transmission, timeout=5)
    voice = [h for h in heard if h.payload]
    # One 20 ms packet per tick of the call, keyed, with the hub's talkgroup id...
    assert abs(len(voice) * FRAME_S - end["duration_s"]) <= 0.1, (len(voice), end)
    assert all(
        (h.keyup, h.talkgroup, h.kind, len(h.payload)) == (1, TALKGROUP_ID, VOICE, 320)
        for h in voice
    )
    gaps = np.diff([h.at for h in voice])
    assert np.median(gaps) == pytest.approx(FRAME_S, abs=0.005)  # real-time pace
    # ...as loud as the call, in the voice band...
    samples = np.concatenate([h.samples for h in voice])
    peak_dbfs = 20 * np.log10(np.abs(samples.astype(np.float64)).max() / 32768)
    assert abs(peak_dbfs - end["peak_dbfs"]) <= 1.0, (peak_dbfs, end)
    assert 100 <= dominant_hz(samples) <= 3000
    # ...then the header alone with keyup 0, three times a frame apart.
    after = heard[heard.index(voice[-1]) + 1 :]
    unkeys = [h for h in after[:3] if (h.kind, h.keyup, h.payload) == (VOICE, 0, b"")]
    assert len(unkeys) == 3
    assert 0.01 <= unkeys[-1].at - unkeys[0].at <= 0.2
    assert daemon.stop() == 0


def test_a_peer_that_goes_silent_raises_port_offline_and_is_back_when_heard(
    usrp_site: UsrpSite,
) -> None:
    s = usrp_site
    s.configure(a_extra="    usrp_timeout_s: 1.0\n")
    daemon = s.start()
    silent_at = time.monotonic()
    s.a.send(wire(s.a.next_seq(), PING))  # heard once, then nothing: down after a second
    offline = daemon.wait_for(lambda: alarms(daemon, "port_offline", "allstar"), timeout=5)[0]
    assert 0.95 <= time.monotonic() - silent_at <= 3.0
    assert s.link("allstar")["pings_in"] == 1
    assert f"nothing from {PEER_HOST}:{s.a.address[1]} for 1 s" in offline["detail"]
    statuses = {p["port"]: p for p in s.site.status()["ports"]}
    assert not statuses["allstar"]["online"] and not statuses["allstar"]["ptt"]
    text = s.site.cli("status")
    assert f"{'allstar':<16} DOWN usrp tg {TALKGROUP_ID}" in text.stdout
    # Pings (DVSwitch type 3, here with pyUC's "PING" payload) bring it back, and keep it up.
    s.a.start_pinging(0.2)
    daemon.wait_for(lambda: alarms(daemon, "port_online", "allstar"), timeout=5)
    daemon.wait_for(lambda: {p["port"]: p for p in s.site.status()["ports"]}["allstar"]["online"])
    assert len(alarms(daemon, "port_offline", "allstar")) == 1
    assert alarms(daemon, "port_offline", "bridge") == []  # no timeout: never down
    assert daemon.stop() == 0


def test_strangers_and_garbage_are_counted_and_the_link_still_carries_calls(
    usrp_site: UsrpSite,
) -> None:
    s = usrp_site
    s.configure()
    daemon = s.start()
    stranger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    stranger.bind(("127.0.0.5", 0))
    for seq in range(10):
        stranger.sendto(wire(seq, keyup=1, payload=tone_frame()), s.a.gateway)
    stranger.close()
    for data in (b"", b"USRP", b"\xff" * 40, bytes(3000), wire(1, 9), wire(2, payload=bytes(100))):
        s.a.send(data)
    s.a.send(wire(3, keyup=1, talkgroup=77, payload=tone_frame()))  # another talkgroup
    daemon.wait_for(lambda: s.link("allstar")["wrong_talkgroup"] == 1, timeout=5)
    stats = s.link("allstar")
    assert stats["unknown_source"] == 10 and stats["malformed"] == 6 and stats["packets_in"] == 0
    reasons = {"truncated", "oversized", "bad_magic", "unknown_type", "voice_length"}
    assert set(stats["dropped"]) >= reasons
    s.a.talk(1.0, tone_frame(), talkgroup=TALKGROUP_ID)
    end = daemon.wait_for(lambda: calls(daemon, "call_end", "allstar"), timeout=10)[0]
    assert abs(end["duration_s"] - 1.0) <= 0.15 and daemon.proc.poll() is None
    assert daemon.stop() == 0


def run_once(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CROSSPATCH, *args, str(config)], capture_output=True, text=True, timeout=30, check=False
    )


def test_check_accepts_a_usrp_link_and_names_what_is_wrong_in_one_line(
    usrp_site: UsrpSite,
) -> None:
    s = usrp_site
    s.configure()
    result = run_once(s.site.config, "check")
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.strip().splitlines()) == 1
    text = s.site.config.read_text()
    for bad, words in (
        ("    usrp_ping_s: 0.2\n", "usrp_type_byte_order must be one of little, big"),
        (f"remote: {PEER_HOST}:{s.a.address[1]}", "is not a loopback or private address"),
    ):
        if "byte_order" in words:
            broken = text.replace(bad, bad + "    usrp_type_byte_order: network\n", 1)
        else:
            broken = text.replace(bad, "remote: 198.51.100.9:32001", 1)
        s.site.config.write_text(broken)
        result = run_once(s.site.config, "check")
        assert result.returncode == 1
        (line,) = result.stderr.strip().splitlines()
        assert "links.allstar." in line and words in line and "Traceback" not in line
