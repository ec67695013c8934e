"""Every stop is bounded: SIGTERM or SIGINT mid-call on a site with a Kenwood CAT radio and a
radio keyed on a serial modem line unkeys both and exits 0 within 2 s, every time."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from emulators.kenwood import KenwoodRadio
from emulators.line_radio import LineRadioServer
from test_daemon import Site
from test_daemon_radios import wait

STOPS = 50
EXIT_WITHIN_S = 2.0

SITE = """\
gateway: {{id: stop-gw, frame_ms: 20, state_dir: {state_dir}}}
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
      ch4: {{rx_mhz: 148.100}}
radios:
  rcmp-1:
    talkgroup: rcmp/tac2
    simulated: {{}}
    control: {{driver: kenwood, port: {kenwood}}}
    bands_mhz: [[142, 152]]
    timing: {{tx_delay_ms: 0, hang_ms: 2000, rx_inhibit_ms: 60}}
  usbp-1:
    talkgroup: usbp/ch4
    simulated: {{}}
    ptt: {{method: rts, port: "{line}"}}
    squelch: {{method: cts, port: "{line}"}}
    timing: {{tx_delay_ms: 0, hang_ms: 2000, rx_inhibit_ms: 60}}
patches:
  border-tac: {{members: [rcmp/tac2, usbp/ch4], enabled: true}}
"""


@pytest.fixture
def stop_site(tmp_path: Path) -> Iterator[tuple[Site, KenwoodRadio, LineRadioServer]]:
    radio = KenwoodRadio().start()
    with LineRadioServer() as line:
        site = Site(tmp_path)
        site.config.write_text(
            SITE.format(state_dir=site.state_dir, kenwood=radio.path, line=line.url)
        )
        yield site, radio, line
        site.close()
    radio.close()


def test_every_stop_mid_call_unkeys_both_radios_and_exits_0_within_2_s(
    stop_site: tuple[Site, KenwoodRadio, LineRadioServer],
) -> None:
    site, radio, line = stop_site
    took: list[float] = []
    for n in range(STOPS):
        daemon = site.start()
        site.wait_ready(daemon)
        wait(lambda: line.connected, what="the line radio's port open")
        wait(lambda: "rcmp-1" in {p["port"] for p in site.status()["ports"] if p["online"]})
        if n % 2:  # the CAT radio hears a call: the line radio keys (and holds 2 s of hang)
            radio.squelch_open = True
            line.wait_for("rts", True, timeout=5)
        else:  # the line radio hears one: the CAT radio keys
            line.set_input("cts", True)
            wait(lambda: radio.ptt, what="the CAT radio keyed")
        sig = signal.SIGINT if n % 5 == 4 else signal.SIGTERM
        began = time.monotonic()
        code = daemon.stop(sig, timeout=30)
        took.append(time.monotonic() - began)
        assert code == 0, daemon.lines[-20:]
        assert not radio.ptt and not line.rts, f"stop {n}: a transmitter was left keyed"
        assert "stopped" in daemon.lines[-1]
        line.set_input("cts", False)
        radio.squelch_open = False
    assert max(took) < EXIT_WITHIN_S, sorted(took)[-5:]
