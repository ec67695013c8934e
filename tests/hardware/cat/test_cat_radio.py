"""The CAT radio supervisor (`CatRadio`) against the Kenwood emulator: tuning with read-back, the
band rule, PTT only while in service, squelch polling, unkey retries, and recovery."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable, Callable, Iterator

import pytest

from gateway.hardware.cat.base import Tuning
from gateway.hardware.cat.kenwood import KenwoodDriver
from gateway.hardware.cat.radio import CatRadio
from gateway.ports.contract import PortNotice
from tests.support.emulators.kenwood import KenwoodRadio

CHANNELS = {
    "rcmp/tac2": Tuning(142_470_000, 142_470_000, "nfm", 131.8),
    "usbp/ch4": Tuning(148_100_000, 148_700_000, "nfm", 100.0),
    "usfs/air": Tuning(168_625_000, 168_625_000, "nfm"),  # outside the radio's bands below
}


class FastKenwood(KenwoodDriver):
    timeout_s = 0.1
    retries = 1


class Harness:
    def __init__(self, radio: KenwoodRadio, bands: list[tuple[float, float]] | None) -> None:
        self.radio = radio
        self.notices: list[PortNotice] = []
        self.carrier: list[bool] = []
        self.cat = CatRadio(
            "r1",
            lambda: FastKenwood(radio.path),
            dict(CHANNELS),
            bands_mhz=bands,
            cat_ptt=True,
            cat_squelch=True,
            notify=self.notices.append,
            set_carrier=self.carrier.append,
            poll_s=0.01,
            backoff_min_s=0.05,
            backoff_max_s=0.2,
        )

    async def until(self, condition: Callable[[], object], timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out; notices: {self.notices}")
            await asyncio.sleep(0.01)

    def alarms(self, kind: str) -> list[PortNotice]:
        return [n for n in self.notices if n.alarm is not None and n.alarm[0] == kind]


@pytest.fixture
def radio() -> Iterator[KenwoodRadio]:
    with KenwoodRadio() as r:
        yield r


def run(
    radio: KenwoodRadio,
    body: Callable[[Harness], Awaitable[None]],
    bands: list[tuple[float, float]] | None = None,
) -> Harness:
    harness_box: list[Harness] = []

    async def main() -> None:
        harness = Harness(radio, [(142.0, 152.0)] if bands is None else bands)
        harness_box.append(harness)
        harness.cat.start()
        try:
            await body(harness)
        finally:
            await harness.cat.stop()

    asyncio.run(main())
    assert not radio.ptt, "the supervisor left the radio keyed"
    return harness_box[0]


def test_tunes_verifies_and_reports_ready_then_keys_and_hears(radio: KenwoodRadio) -> None:
    async def body(h: Harness) -> None:
        h.cat.want_talkgroup("usbp/ch4")
        await h.until(lambda: any(n.tuned_to == "usbp/ch4" for n in h.notices))
        assert radio.vfos[radio.rx_vfo].hz == 148_100_000
        assert radio.vfos[radio.tx_vfo].hz == 148_700_000
        h.cat.want_ptt(True)
        await h.until(lambda: radio.ptt)
        h.cat.want_ptt(False)
        await h.until(lambda: not radio.ptt)
        radio.squelch_open = True
        await h.until(lambda: h.carrier and h.carrier[-1])
        radio.squelch_open = False
        await h.until(lambda: not h.carrier[-1])

    run(radio, body)


def test_never_keys_before_the_radio_is_tuned(radio: KenwoodRadio) -> None:
    async def body(h: Harness) -> None:
        h.cat.want_ptt(True)  # no talkgroup yet: out of service
        await h.until(lambda: "RX" in radio.commands)  # the session is up: it unkeyed first
        # Not happening: it decides on PTT right after that unkey, and looks every 10 ms.
        await asyncio.sleep(0.3)
        assert not radio.ptt and "TX" not in radio.commands

    run(radio, body)


def test_refuses_to_tune_outside_its_bands_and_stays_offline(radio: KenwoodRadio) -> None:
    async def body(h: Harness) -> None:
        h.cat.want_talkgroup("usfs/air")
        await h.until(lambda: h.alarms("port_offline"))
        detail = h.alarms("port_offline")[0].alarm
        assert detail is not None and "outside the radio's bands_mhz (142-152 MHz)" in detail[1]
        sessions = radio.commands.count("ID")
        h.cat.want_ptt(True)
        # Two more sessions began (each probes first): the first of them ran to its refusal.
        await h.until(lambda: radio.commands.count("ID") >= sessions + 2)
        assert not radio.ptt
        assert not any(c.startswith("FA") and c != "FA" for c in radio.commands)  # never tuned
        assert all(not n.online for n in h.notices)

    run(radio, body)


def test_a_refused_channel_is_an_alarm_and_a_retry_after_backoff(radio: KenwoodRadio) -> None:
    radio.fault(r"FA\d{11}", b"?;", times=2)  # refused twice, then accepted

    async def body(h: Harness) -> None:
        h.cat.want_talkgroup("rcmp/tac2")
        await h.until(lambda: any(n.tuned_to == "rcmp/tac2" and n.online for n in h.notices))
        assert len(h.alarms("port_offline")) == 1  # one alarm, not one per retry
        assert "tuning to rcmp/tac2" in (h.alarms("port_offline")[0].alarm or ("", ""))[1]
        assert h.alarms("port_online")

    run(radio, body)


def test_an_unkey_that_fails_is_retried_then_alarmed(radio: KenwoodRadio) -> None:
    async def body(h: Harness) -> None:
        h.cat.want_talkgroup("rcmp/tac2")
        await h.until(lambda: any(n.tuned_to == "rcmp/tac2" for n in h.notices))
        h.cat.want_ptt(True)
        await h.until(lambda: radio.ptt)
        radio.fault("RX", b"?;", times=3)  # three refusals: every try of the supervisor
        h.cat.want_ptt(False)
        await h.until(lambda: h.alarms("unkey_failed"))
        assert "may still be keyed" in (h.alarms("unkey_failed")[0].alarm or ("", ""))[1]
        # It reconnects, unkeys first thing, and comes back.
        await h.until(lambda: not radio.ptt)
        await h.until(lambda: h.alarms("port_online"))

    run(radio, body)


def test_silence_takes_it_offline_and_it_recovers_when_the_radio_answers(
    radio: KenwoodRadio,
) -> None:
    async def body(h: Harness) -> None:
        h.cat.want_talkgroup("rcmp/tac2")
        await h.until(lambda: any(n.tuned_to == "rcmp/tac2" for n in h.notices))
        radio.silent = True
        await h.until(lambda: h.alarms("port_offline"))
        radio.silent = False
        await h.until(lambda: h.alarms("port_online"))
        assert h.notices[-1].online and h.notices[-1].tuned_to == "rcmp/tac2"

    run(radio, body)


def test_garbage_on_the_line_does_not_stop_it(radio: KenwoodRadio) -> None:
    async def body(h: Harness) -> None:
        h.cat.want_talkgroup("rcmp/tac2")
        await h.until(lambda: any(n.tuned_to == "rcmp/tac2" for n in h.notices))
        radio.inject(b"\x00\xff\x13garbage;;ZZ9;")
        radio.squelch_open = True
        await h.until(lambda: h.carrier and h.carrier[-1])
        radio.squelch_open = False

    run(radio, body)


def rigctld_ptt(port: int) -> str:
    """PTT as rigctld reports it to a second client (`t`: "0" or "1")."""
    with socket.create_connection(("127.0.0.1", port), timeout=3) as conn:
        conn.sendall(b"t\n")
        return conn.recv(64).decode().strip()


def test_a_radio_behind_rigctld_is_tuned_keyed_and_unkeyed() -> None:
    from gateway.hardware.cat.rigctld import RigctldDriver
    from tests.support.rigctld import start_rigctld

    proc, port = start_rigctld("-P", "RIG")
    notices: list[PortNotice] = []

    async def main() -> None:
        cat = CatRadio(
            "hamlib-1",
            lambda: RigctldDriver("127.0.0.1", port),
            dict(CHANNELS),
            bands_mhz=[(136.0, 174.0)],
            cat_ptt=True,
            cat_squelch=True,
            notify=notices.append,
            set_carrier=lambda on: None,
        )
        cat.start()
        try:
            cat.want_talkgroup("usbp/ch4")
            deadline = time.monotonic() + 10
            while not any(n.tuned_to == "usbp/ch4" for n in notices):
                assert time.monotonic() < deadline, notices
                await asyncio.sleep(0.05)
            driver = RigctldDriver("127.0.0.1", port)
            async with driver:
                got = await driver.read_tuning()
                assert (got.rx_hz, got.tx_hz, got.ctcss_hz) == (148_100_000, 148_700_000, 100.0)
            cat.want_ptt(True)
            deadline = time.monotonic() + 5
            while rigctld_ptt(port) != "1":
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
        finally:
            await cat.stop()
        assert rigctld_ptt(port) == "0"  # stop unkeyed it

    try:
        asyncio.run(main())
    finally:
        proc.kill()
        proc.wait(timeout=10)
