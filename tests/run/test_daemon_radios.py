"""`crosspatch run` with CAT-controlled radios: Kenwood emulators on pseudo-terminals stand in for
the transceivers (their audio is simulated; their tuning, PTT and squelch are real CAT bytes).

Each radio's serial device is a symlink, as udev's /dev/serial/by-id names are, so a test can
"unplug" a radio (the pty goes away: EIO) and plug a new one in under the same name.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.cm108 import FakeCm119
from tests.support.daemon import Site, first_alarm
from tests.support.emulators.kenwood import KenwoodRadio
from tests.support.emulators.line_radio import LineRadioServer
from tests.support.waits import wait

SITE = """\
gateway: {{id: radio-gw, frame_ms: 20, state_dir: {state_dir}}}
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
      ch4: {{rx_mhz: 148.100, tx_mhz: 148.700, ctcss_hz: 100.0}}
  wcso:
    name: Whatcom County Sheriff
    country: US
    talkgroups:
      main: {{rx_mhz: 145.550}}
      tac: {{rx_mhz: 146.610}}
  cbsa:
    name: Canada Border Services Agency
    country: CA
    talkgroups:
      ops: {{rx_mhz: 151.010}}
      pacific: {{rx_mhz: 149.330}}
  nps:
    name: National Park Service
    country: US
    talkgroups:
      ranger: {{rx_mhz: 143.900}}
  ems:
    name: Whatcom EMS
    country: US
    talkgroups:
      med: {{rx_mhz: 150.200}}
radios:
  rcmp-1:
    talkgroup: rcmp/tac2
    simulated: {{}}
    control: {{driver: kenwood, port: {dev}/rcmp-1}}
    bands_mhz: [[142, 152]]
    timing: {{tx_delay_ms: 0, hang_ms: 200, rx_inhibit_ms: 60}}
  usbp-1:
    talkgroup: usbp/ch4
    simulated: {{}}
    control: {{driver: kenwood, port: {dev}/usbp-1}}
    bands_mhz: [[142, 152]]
    timing: {{tx_delay_ms: 0, hang_ms: 200, rx_inhibit_ms: 60}}
  pool-1:
    pool: vhf
    simulated: {{}}
    control: {{driver: kenwood, port: {dev}/pool-1}}
    bands_mhz: [[142, 152]]
  pool-2:
    pool: vhf
    simulated: {{}}
    control: {{driver: kenwood, port: {dev}/pool-2}}
    bands_mhz: [[142, 152]]
  cbsa-1: {{talkgroup: cbsa/ops, simulated: {{}}}}
  nps-1: {{talkgroup: nps/ranger, simulated: {{}}}}
  ems-1: {{talkgroup: ems/med, simulated: {{}}}}
patches:
  border-tac:
    members: [rcmp/tac2, usbp/ch4]
    enabled: true
  cbsa-sheriff: {{members: [cbsa/ops, wcso/main]}}
  parks-sheriff: {{members: [nps/ranger, wcso/tac]}}
  ems-marine: {{members: [ems/med, cbsa/pacific]}}
access:
  technicians: [tech1]
"""

RADIOS = ("rcmp-1", "usbp-1", "pool-1", "pool-2")


class Bench:
    """Four emulated Kenwood radios behind stable device names."""

    def __init__(self, dev: Path) -> None:
        self.dev = dev
        dev.mkdir()
        self.radios: dict[str, KenwoodRadio] = {}
        for name in RADIOS:
            self.plug(name)

    def plug(self, name: str) -> KenwoodRadio:
        radio = KenwoodRadio().start()
        link = self.dev / name
        if link.is_symlink():
            link.unlink()
        link.symlink_to(radio.path)
        self.radios[name] = radio
        return radio

    def unplug(self, name: str) -> None:
        self.radios[name].unplug()
        (self.dev / name).unlink()

    def close(self) -> None:
        for radio in self.radios.values():
            radio.close()


@pytest.fixture
def bench(tmp_path: Path) -> Iterator[Bench]:
    b = Bench(tmp_path / "dev")
    yield b
    b.close()


@pytest.fixture
def radio_site(tmp_path: Path, bench: Bench) -> Iterator[Site]:
    site = Site(tmp_path)
    site.config.write_text(SITE.format(state_dir=site.state_dir, dev=bench.dev))
    yield site
    site.close()


def port_status(site: Site, name: str) -> dict[str, Any]:
    port: dict[str, Any] = next(p for p in site.status()["ports"] if p["port"] == name)
    return port


def test_radios_are_tuned_at_start_and_a_call_keys_the_other_radio(
    radio_site: Site, bench: Bench
) -> None:
    daemon = radio_site.start()
    radio_site.wait_ready(daemon)
    rcmp, usbp = bench.radios["rcmp-1"], bench.radios["usbp-1"]
    daemon.wait_for(lambda: port_status(radio_site, "usbp-1")["ready"])
    # Tuned and verified: split channel on two VFOs, tone set.
    assert rcmp.vfo_a.hz == 142_470_000
    assert usbp.vfos[usbp.rx_vfo].hz == 148_100_000
    assert usbp.vfos[usbp.tx_vfo].hz == 148_700_000
    status = port_status(radio_site, "usbp-1")
    assert status["online"] and status["tx_mhz"] == 148.7 and status["kind"] != "simulated"

    rcmp.squelch_open = True  # someone talks on RCMP tac2
    wait(lambda: usbp.ptt, what="usbp-1 keyed by CAT")
    assert not rcmp.ptt  # the talker's own radio is never keyed
    call = daemon.wait_for(lambda: daemon.events("call_start"))[0]
    assert call["source"]["port"] == "rcmp-1"
    assert [d["port"] for d in call["destinations"]] == ["usbp-1"]
    rcmp.squelch_open = False
    wait(lambda: not usbp.ptt, what="usbp-1 unkeyed after the hang")
    end = daemon.wait_for(lambda: daemon.events("call_end"))[0]
    assert end["reason"] == "carrier_drop"

    assert daemon.stop() == 0
    assert not any(r.ptt for r in bench.radios.values())


def test_pool_radios_serve_two_patches_a_third_is_refused_and_disabling_frees_one(
    radio_site: Site, bench: Bench
) -> None:
    daemon = radio_site.start()
    radio_site.wait_ready(daemon)
    pool1, pool2 = bench.radios["pool-1"], bench.radios["pool-2"]
    for patch in ("cbsa-sheriff", "parks-sheriff"):
        result = radio_site.cli("patch", "enable", patch)
        assert result.returncode == 0, result.stderr
    wait(lambda: pool1.vfo_a.hz == 145_550_000 and pool2.vfo_a.hz == 146_610_000, what="tuned")
    daemon.wait_for(lambda: port_status(radio_site, "pool-2")["ready"])
    assert port_status(radio_site, "pool-1")["talkgroup"] == "wcso/main"

    refused = radio_site.cli("patch", "enable", "ems-marine")
    assert refused.returncode != 0
    assert "no free pool radio can serve 'cbsa/pacific'" in refused.stderr
    assert "pool-1 (in patch 'cbsa-sheriff')" in refused.stderr

    assert radio_site.cli("patch", "disable", "cbsa-sheriff").returncode == 0
    enabled = radio_site.cli("patch", "enable", "ems-marine")
    assert enabled.returncode == 0, enabled.stderr
    wait(lambda: pool1.vfo_a.hz == 149_330_000, what="pool-1 retuned to cbsa/pacific")
    daemon.wait_for(lambda: port_status(radio_site, "pool-1")["talkgroup"] == "cbsa/pacific")
    assert daemon.stop() == 0


def test_unplugging_the_talker_mid_call_unkeys_and_the_radio_recovers(
    radio_site: Site, bench: Bench
) -> None:
    daemon = radio_site.start()
    radio_site.wait_ready(daemon)
    usbp = bench.radios["usbp-1"]
    daemon.wait_for(lambda: port_status(radio_site, "rcmp-1")["ready"])
    daemon.wait_for(lambda: port_status(radio_site, "usbp-1")["ready"])
    bench.radios["rcmp-1"].squelch_open = True
    wait(lambda: usbp.ptt, what="usbp-1 keyed")

    bench.unplug("rcmp-1")  # USB cable pulled mid-call
    wait(lambda: not usbp.ptt, what="usbp-1 unkeyed")
    alarm = first_alarm(daemon, "port_offline")
    assert alarm["port"] == "rcmp-1" and alarm["detail"]
    assert not port_status(radio_site, "rcmp-1")["online"]

    replacement = bench.plug("rcmp-1")  # plugged back in
    first_alarm(daemon, "port_online")
    daemon.wait_for(lambda: port_status(radio_site, "rcmp-1")["ready"])
    assert replacement.vfo_a.hz == 142_470_000  # re-tuned on return
    assert not usbp.ptt
    replacement.squelch_open = True  # and it patches again
    wait(lambda: usbp.ptt, what="usbp-1 keyed again")
    replacement.squelch_open = False
    wait(lambda: not usbp.ptt)
    assert daemon.stop() == 0


def test_a_keyed_radio_unplugged_is_released_in_the_engine_and_others_carry_on(
    radio_site: Site, bench: Bench
) -> None:
    daemon = radio_site.start()
    radio_site.wait_ready(daemon)
    rcmp = bench.radios["rcmp-1"]
    daemon.wait_for(lambda: port_status(radio_site, "usbp-1")["ready"])
    rcmp.squelch_open = True
    wait(lambda: bench.radios["usbp-1"].ptt)
    bench.unplug("usbp-1")
    off = daemon.wait_for(
        lambda: [
            e
            for e in daemon.events("ptt")
            if e["port"] == "usbp-1" and e["reason"] == "port_offline"
        ]
    )
    assert off[0]["on"] is False
    status = radio_site.status()
    assert not next(p for p in status["ports"] if p["port"] == "usbp-1")["ptt"]
    rcmp.squelch_open = False
    assert daemon.stop() == 0


def test_a_radio_that_cannot_be_tuned_is_offline_with_an_alarm_and_never_keyed(
    radio_site: Site, bench: Bench
) -> None:
    usbp = bench.radios["usbp-1"]
    usbp.fault(r"FB\d{11}", b"?;", times=1000)  # refuses the transmit frequency
    daemon = radio_site.start()
    radio_site.wait_ready(daemon)
    alarm = first_alarm(daemon, "port_offline", "usbp-1")
    assert "tuning to usbp/ch4" in alarm["detail"]
    bench.radios["rcmp-1"].squelch_open = True
    call = daemon.wait_for(lambda: daemon.events("call_start"))[0]
    assert call["destinations"] == []  # usbp-1 is out of service
    # Not happening: a destination is keyed at the call's start, its CAT radio at once after.
    time.sleep(1.0)
    assert not usbp.ptt
    assert not port_status(radio_site, "usbp-1")["online"]
    assert daemon.stop() == 0


# ------------------------------------------------------------------ radios on modem lines
LINE_SITE = """\
gateway: {{id: line-gw, frame_ms: 20, state_dir: {state_dir}}}
agencies:
  rcmp:
    name: Royal Canadian Mounted Police
    country: CA
    talkgroups:
      tac2: {{rx_mhz: 142.470}}
  usbp:
    name: U.S. Border Patrol
    country: US
    talkgroups:
      ch4: {{rx_mhz: 163.100}}
radios:
  rcmp-1:
    talkgroup: rcmp/tac2
    simulated: {{}}
    ptt: {{method: rts, port: "{rcmp}"}}
    squelch: {{method: cts, port: "{rcmp}"}}
    timing: {{tx_delay_ms: 0, hang_ms: 200, rx_inhibit_ms: 60}}
  usbp-1:
    talkgroup: usbp/ch4
    simulated: {{}}
    ptt: {{method: dtr, port: "{usbp}", invert: true}}
    squelch: {{method: dsr, port: "{usbp}", invert: true}}
    timing: {{tx_delay_ms: 0, hang_ms: 200, rx_inhibit_ms: 60}}
patches:
  border-tac: {{members: [rcmp/tac2, usbp/ch4], enabled: true}}
access:
  technicians: [tech1]
"""


@pytest.fixture
def line_site(tmp_path: Path) -> Iterator[tuple[Site, LineRadioServer, LineRadioServer]]:
    # Inverted lines idle asserted: usbp-1 is keyed while DTR is low and receiving while DSR is.
    with (
        LineRadioServer() as rcmp,
        LineRadioServer(dtr=True) as usbp,
    ):
        usbp.set_input("dsr", True)
        site = Site(tmp_path)
        site.config.write_text(
            LINE_SITE.format(state_dir=site.state_dir, rcmp=rcmp.url, usbp=usbp.url)
        )
        yield site, rcmp, usbp
        site.close()


def test_radios_on_modem_lines_patch_end_to_end_and_recover_from_a_lost_port(
    line_site: tuple[Site, LineRadioServer, LineRadioServer],
) -> None:
    site, rcmp, usbp = line_site
    daemon = site.start()
    site.wait_ready(daemon)
    wait(lambda: rcmp.connected and usbp.connected, what="both serial ports open")
    rcmp.set_input("cts", True)  # RCMP tac2 squelch opens
    usbp.wait_for("dtr", False, timeout=10)  # inverted PTT: keyed
    assert not rcmp.rts  # the talker is not keyed
    rcmp.set_input("cts", False)
    usbp.wait_for("dtr", True, timeout=10)  # unkeyed after the hang

    usbp.set_input("dsr", False)  # and back the other way (inverted squelch: receiving)
    rcmp.wait_for("rts", True, timeout=10)
    usbp.set_input("dsr", True)
    rcmp.wait_for("rts", False, timeout=10)
    # Opening never keyed: until the first call, every level usbp-1's DTR saw was idle (high).
    first_key = usbp.levels("dtr").index(False)
    assert first_key > 0 and all(usbp.levels("dtr")[:first_key])

    rcmp.stop()  # the serial device server goes away
    alarm = first_alarm(daemon, "port_offline")
    assert alarm["port"] == "rcmp-1" and "device server closed" in alarm["detail"]
    assert not port_status(site, "rcmp-1")["online"]
    rcmp.start()
    first_alarm(daemon, "port_online", timeout=20)
    wait(lambda: port_status(site, "rcmp-1")["online"], what="rcmp-1 online")
    rcmp.set_input("cts", True)  # patches again after the reopen
    usbp.wait_for("dtr", False, timeout=10)
    rcmp.set_input("cts", False)
    usbp.wait_for("dtr", True, timeout=10)
    assert daemon.stop() == 0
    assert usbp.dtr and not rcmp.rts  # both unkeyed at stop


def test_reload_retunes_a_radio_whose_channel_changed_and_refuses_new_wiring(
    radio_site: Site, bench: Bench
) -> None:
    daemon = radio_site.start()
    radio_site.wait_ready(daemon)
    usbp = bench.radios["usbp-1"]
    daemon.wait_for(lambda: port_status(radio_site, "usbp-1")["ready"])
    text = radio_site.config.read_text()
    radio_site.config.write_text(text.replace("tx_mhz: 148.700", "tx_mhz: 149.100"))
    result = radio_site.cli("reload")
    assert result.returncode == 0, result.stderr
    wait(lambda: usbp.vfos[usbp.tx_vfo].hz == 149_100_000, what="usbp-1 retuned")
    daemon.wait_for(lambda: port_status(radio_site, "usbp-1")["tx_mhz"] == 149.1)
    daemon.wait_for(lambda: port_status(radio_site, "usbp-1")["ready"])

    rewired = radio_site.config.read_text().replace(
        f"port: {bench.dev}/usbp-1", f"port: {bench.dev}/usbp-2"
    )
    radio_site.config.write_text(rewired)
    refused = radio_site.cli("reload")
    assert refused.returncode != 0
    assert "restart the daemon" in refused.stderr and "previous config" in refused.stderr
    assert port_status(radio_site, "usbp-1")["online"]  # still driving the old wiring
    assert daemon.stop() == 0


def test_run_refuses_what_this_build_cannot_drive_in_one_line(radio_site: Site) -> None:
    # Links send 20 ms packets: a gateway ticking every 10 ms cannot drive one.
    text = (
        radio_site.config.read_text()
        .replace("frame_ms: 20", "frame_ms: 10", 1)
        .replace(
            "patches:\n",
            "links:\n"
            "  to-blaine: {protocol: usrp, local: 127.0.0.1:40000, remote: 127.0.0.2:40000,\n"
            "              talkgroup: cbsa/pacific}\n"
            "patches:\n",
            1,
        )
    )
    radio_site.config.write_text(text)
    daemon = radio_site.start()
    code = daemon.proc.wait(60)
    daemon.stop()
    assert code == 1
    log = daemon.log()
    assert (
        "link 'to-blaine': USRP links send 20 ms packets and need gateway.frame_ms 20 (it is 10)"
        in log
    )
    assert "Traceback" not in log


def test_a_cm108_radio_is_heard_and_keyed_through_its_gpio(radio_site: Site, bench: Bench) -> None:
    chip = FakeCm119(bench.dev / "cbsa-cm108")
    chip.send(buttons=0b0011, gpio=0xFF)  # idle: the COS input (VOLDN) is pulled up
    text = radio_site.config.read_text().replace(
        "  cbsa-1: {talkgroup: cbsa/ops, simulated: {}}",
        "  cbsa-1: {talkgroup: cbsa/ops, simulated: {}, timing: {tx_delay_ms: 0, hang_ms: 100},\n"
        f"           ptt: {{method: cm108, port: {chip.link}}},\n"
        f"           squelch: {{method: cm108, port: {chip.link}}}}}",
    )
    radio_site.config.write_text(text)
    daemon = radio_site.start()
    radio_site.wait_ready(daemon)
    assert chip.report() == bytes([0, 0, 0b0000, 0b0100, 0])  # opened unkeyed: GPIO 3 low
    enabled = radio_site.cli("patch", "enable", "cbsa-sheriff")
    assert enabled.returncode == 0, enabled.stderr

    chip.send(buttons=0b0001, gpio=0xFF)  # the radio's COS pulls VOLDN low: receiving
    call = daemon.wait_for(
        lambda: [e for e in daemon.events("call_start") if e["source"]["port"] == "cbsa-1"]
    )
    assert call[0]["patch"] == "cbsa-sheriff"
    chip.send(buttons=0b0011, gpio=0xFF)
    daemon.wait_for(
        lambda: [e for e in daemon.events("call_end") if e["source"]["port"] == "cbsa-1"]
    )

    keyed = radio_site.cli("port", "key-test", "cbsa-1", "--seconds", "0.5")
    assert keyed.returncode == 0, keyed.stderr
    assert chip.report() == bytes([0, 0, 0b0100, 0b0100, 0])  # GPIO 3 high: keyed
    assert chip.report() == bytes([0, 0, 0b0000, 0b0100, 0])  # and released
    ptt = [e for e in daemon.events("ptt") if e["port"] == "cbsa-1"]
    assert [(e["on"], e["reason"]) for e in ptt][:1] == [(True, "key_test")]

    chip.unplug()  # the sound card and its GPIO go
    alarm = first_alarm(daemon, "port_offline", "cbsa-1")
    assert "cbsa-cm108" in alarm["detail"] or "CM108" in alarm["detail"]
    chip.plug()
    chip.send(buttons=0b0011, gpio=0xFF)
    first_alarm(daemon, "port_online", "cbsa-1", timeout=20)
    assert daemon.stop() == 0
