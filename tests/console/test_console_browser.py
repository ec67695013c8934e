"""The dispatcher's web console in a real browser (headless Chromium from Debian, via Selenium),
against a real mosquitto with logins, the documented ACL and a WebSockets listener, and two
running gateways on simulated radios (tests/support/region.py).

Each test saves screenshots of the states it reaches under its own tmp folder; `docs/console.png`
is one of them (the two-dispatcher approval, as seen by the approver).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest

from tests.support.browser import Browser, chromium_missing
from tests.support.mqtt_env import Broker, Watcher, free_port
from tests.support.region import LYNDEN, PASSWORDS, PEACE_ARCH, RegionSite, region_broker

ROOT = Path(__file__).resolve().parents[2]
CROSSPATCH = [sys.executable, "-m", "gateway.cli"]
# Where a person finds the screenshots of the last run (also kept in each test's tmp folder).
SHOTS = Path(os.environ.get("CROSSPATCH_CONSOLE_SHOTS", "/tmp/crosspatch-console-shots"))

# Records, in the page, when each watched selector first matched (Date.now(), the wall clock the
# test's MQTT watcher also uses).
WATCH_JS = """
const watch = arguments[0];
window.__seen = window.__seen || {};
window.__watch = Object.assign(window.__watch || {}, watch);
if (!window.__observer) {
  const check = () => {
    for (const [name, sel] of Object.entries(window.__watch)) {
      if (!(name in window.__seen) && document.querySelector(sel)) window.__seen[name] = Date.now();
    }
  };
  window.__observer = new MutationObserver(check);
  window.__observer.observe(document.body, {subtree: true, childList: true, attributes: true});
  check();
}
"""


@pytest.fixture(scope="module", autouse=True)
def _chromium() -> None:
    missing = chromium_missing()
    if missing:
        pytest.fail(missing)  # never skipped: scripts/setup installs the browser


@pytest.fixture
def broker() -> Iterator[Broker]:
    with region_broker() as b:
        yield b


class ConsoleServer:
    """`crosspatch console` as a user runs it, pointed at the broker's WebSockets listener."""

    def __init__(self, broker: Broker) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.proc = subprocess.Popen(
            [
                *CROSSPATCH,
                "console",
                "--listen",
                f"127.0.0.1:{self.port}",
                "--broker",
                broker.ws_url,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert "serving http://127.0.0.1" in line, line

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(10)


@pytest.fixture
def console(broker: Broker) -> Iterator[ConsoleServer]:
    server = ConsoleServer(broker)
    yield server
    if server.proc.poll() is None:
        server.stop()


@pytest.fixture
def browsers(tmp_path: Path) -> Iterator[list[Browser]]:
    opened: list[Browser] = []
    yield opened
    for browser in opened:
        browser.close()
    # Keep the screenshots where a person looks for them.
    for shot in (tmp_path / "shots").glob("*.png"):
        SHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, SHOTS / shot.name)


@pytest.fixture
def sites(tmp_path: Path, broker: Broker) -> Iterator[dict[str, RegionSite]]:
    made = {
        "peace-arch": RegionSite(tmp_path / "peace-arch", PEACE_ARCH, broker, "peace-arch"),
        "lynden": RegionSite(tmp_path / "lynden", LYNDEN, broker, "lynden"),
    }
    yield made
    for site in made.values():
        site.close()


def open_browser(browsers: list[Browser], tmp_path: Path) -> Browser:
    browser = Browser(tmp_path / "shots")
    browsers.append(browser)
    return browser


def log_in(
    browser: Browser, console: ConsoleServer, user: str, password: str | None = None
) -> None:
    browser.open(console.url)
    browser.wait_for("the login form", lambda: browser.find_all("#username"))
    browser.find("#username").send_keys(user)
    browser.find("#password").send_keys(PASSWORDS[user] if password is None else password)
    browser.find("#login-button").click()


def gateway_card(browser: Browser, gateway: str) -> str:
    return browser.text_of(f'#gateways li[data-gateway="{gateway}"]')


def patch_row(browser: Browser, gateway: str, patch: str) -> str:
    return browser.text_of(f'#patches tr[data-gateway="{gateway}"][data-patch="{patch}"]')


def buttons(browser: Browser, gateway: str, patch: str) -> list[str]:
    return [
        b.get_attribute("data-verb") or ""
        for b in browser.find_all(
            f'#patches tr[data-gateway="{gateway}"][data-patch="{patch}"] button'
        )
    ]


def lit(gateway: str, port: str, light: str) -> str:
    """The selector of a port's light (carrier or ptt) when on."""
    row = f'#ports tr[data-gateway="{gateway}"][data-port="{port}"]'
    return f'{row} [data-light="{light}"][data-on="true"]'


def turned_on(watcher: Watcher, since: int, kind: str, port: str) -> float | None:
    """When the watcher received the first `kind` (carrier or ptt) on of `port` after `since`."""
    for message in watcher.messages[since:]:
        event = message.json()
        if event.get("type") == kind and event.get("port") == port and event.get("on"):
            return message.received
    return None


def test_a_dispatcher_sees_both_gateways_and_a_call_lights_carrier_and_ptt_within_a_second(
    broker: Broker,
    console: ConsoleServer,
    sites: dict[str, RegionSite],
    browsers: list[Browser],
    tmp_path: Path,
) -> None:
    sites["peace-arch"].run(border_enabled="true")
    sites["lynden"].run()
    watcher = Watcher(broker, "crosspatch/+/events", username="tech1", password=PASSWORDS["tech1"])
    browser = open_browser(browsers, tmp_path)
    log_in(browser, console, "alice")
    for gateway, site in (("peace-arch", "Peace Arch"), ("lynden", "Lynden")):
        browser.wait_for(
            f"{gateway} online",
            lambda g=gateway, s=site: (
                "online" in gateway_card(browser, g)  # type: ignore[misc]
                and s in gateway_card(browser, g)
            ),
        )
    ports = browser.wait_for(
        "the five ports",
        lambda: len(browser.find_all("#ports tr")) == 5 and browser.text_of("#ports"),
    )
    assert "rcmp" in ports and "CA" in ports and "142.4700" in ports
    assert "cbsa" in ports and "usbp/ch2" in ports
    # Lights: the page's own clock against the watcher's, both on this machine's wall clock.
    lags: dict[str, list[float]] = {"carrier": [], "ptt": []}
    lights = {
        "carrier": lit("peace-arch", "rcmp-1", "carrier"),
        "ptt": lit("peace-arch", "usbp-1", "ptt"),
    }
    for n in range(3):
        browser.wait_for(  # both off before the next call
            "lights off before a call",
            lambda: not any(browser.find_all(sel) for sel in lights.values()),
            timeout=15,
        )
        since = len(watcher.messages)
        browser.run(WATCH_JS, {f"{kind}{n}": sel for kind, sel in lights.items()})
        for kind, port in (("carrier", "rcmp-1"), ("ptt", "usbp-1")):
            received = watcher.wait_for(partial(turned_on, watcher, since, kind, port), timeout=15)
            seen_ms = browser.wait_for(
                f"{kind} light on",
                partial(browser.run, "return window.__seen[arguments[0]]", f"{kind}{n}"),
                timeout=5,
            )
            lags[kind].append(seen_ms / 1000 - received)
        if n == 0:
            browser.wait_for(
                "the call in progress",
                lambda: (
                    "rcmp/tac2" in browser.text_of("#calls")
                    and "usbp/ch4" in browser.text_of("#calls")
                ),
            )
            browser.screenshot("overview-call")
    shown = {kind: [round(v, 3) for v in values] for kind, values in lags.items()}
    print(f"\nlights on the page after the broker delivered them (s): {shown}")
    for kind, values in lags.items():
        assert max(values) < 1.0, f"{kind} lit {values} s after the broker delivered it"
    # The call ends: it moves to the last calls, with its length and end reason.
    browser.wait_for(
        "a last call", lambda: "carrier_drop" in browser.text_of("#last-calls"), timeout=15
    )


def test_a_cross_border_request_waits_for_usbp_and_both_consoles_see_it_enabled(
    broker: Broker,
    console: ConsoleServer,
    sites: dict[str, RegionSite],
    browsers: list[Browser],
    tmp_path: Path,
) -> None:
    sites["peace-arch"].run(every_s=6, talk_s=3)
    sites["lynden"].run()
    alice = open_browser(browsers, tmp_path)
    bob = open_browser(browsers, tmp_path)
    carol = open_browser(browsers, tmp_path)
    log_in(alice, console, "alice")
    log_in(bob, console, "bob")
    log_in(carol, console, "carol")
    for browser in (alice, bob, carol):
        browser.wait_for(
            "border-tac disabled",
            lambda b=browser: "disabled" in patch_row(b, "peace-arch", "border-tac"),  # type: ignore[misc]
        )
    # Each dispatcher is offered what the gateway would accept from them, no more.
    alice.wait_for(
        "alice's enable", lambda: buttons(alice, "peace-arch", "border-tac") == ["enable"]
    )
    assert buttons(alice, "lynden", "crossing") == []  # alice is no dispatcher of lynden
    carol.wait_for("carol's county enable", lambda: buttons(carol, "peace-arch", "county"))
    assert buttons(carol, "peace-arch", "border-tac") == []  # no talkgroup of wcso in it
    assert "view only" in patch_row(carol, "peace-arch", "border-tac")

    alice.find('#patches tr[data-patch="border-tac"] button[data-verb="enable"]').click()
    alice.wait_for(
        "alice's reply",
        lambda: "waiting for approval by usbp" in alice.text_of("#replies .ok"),
    )
    for browser in (alice, bob):
        row = browser.wait_for(
            "border-tac pending",
            lambda b=browser: (  # type: ignore[misc]
                (text := patch_row(b, "peace-arch", "border-tac"))
                and "pending" in text
                and "waiting for usbp" in text
                and text
            ),
        )
        assert "asked by alice" in row and "expires in" in row
    alice.screenshot("pending-requester")
    assert buttons(alice, "peace-arch", "border-tac") == ["disable"]  # withdraw, not approve
    bob.wait_for(
        "bob's approve and deny",
        lambda: buttons(bob, "peace-arch", "border-tac") == ["approve", "deny", "disable"],
    )
    bob.screenshot("pending-approver")
    # Approve from the keyboard: focus the button, press Enter.
    approve = bob.find('#patches tr[data-patch="border-tac"] button[data-verb="approve"]')
    bob.run("arguments[0].focus()", approve)
    from selenium.webdriver.common.keys import Keys

    approve.send_keys(Keys.ENTER)
    bob.wait_for("bob's reply", lambda: "'border-tac' enabled" in bob.text_of("#replies .ok"))
    for browser in (alice, bob, carol):
        browser.wait_for(
            "border-tac enabled",
            lambda b=browser: "enabled" in patch_row(b, "peace-arch", "border-tac"),  # type: ignore[misc]
        )
    # RCMP's next talker is heard on the U.S. side: the call, with its lights, on bob's console.
    bob.wait_for(
        "a call through the new patch",
        lambda: (
            "border-tac" in bob.text_of("#calls")
            and bob.find_all(lit("peace-arch", "usbp-1", "ptt"))
        ),
        timeout=20,
    )
    bob.screenshot("enabled")
    # A refusal is shown as the gateway worded it: county shares usbp/ch4 with border-tac.
    carol.find('#patches tr[data-patch="county"] button[data-verb="enable"]').click()
    refused = carol.wait_for("carol's refusal", lambda: carol.text_of("#replies .refused"))
    assert "refused:" in refused and "border-tac" in refused, refused
    carol.screenshot("refused")
    if os.environ.get("CROSSPATCH_UPDATE_DOCS_SCREENSHOT"):
        shutil.copy(tmp_path / "shots" / "enabled.png", ROOT / "docs" / "console.png")


def test_a_wrong_password_is_refused_by_the_broker(
    broker: Broker, console: ConsoleServer, browsers: list[Browser], tmp_path: Path
) -> None:
    browser = open_browser(browsers, tmp_path)
    log_in(browser, console, "alice", password="not-her-password")
    error = browser.wait_for("the refusal", lambda: browser.text_of("#login-error"))
    assert "refused the login" in error
    assert not browser.find("#console-view").is_displayed()
    browser.screenshot("wrong-password")
    # The right password still works from the same page.
    browser.find("#password").send_keys(PASSWORDS["alice"])
    browser.find("#login-button").click()
    browser.wait_for("the console", lambda: browser.find("#console-view").is_displayed())
    assert browser.text_of("#who") == "logged in as alice"


def test_a_gateway_killed_with_sigkill_shows_offline_and_its_calls_are_greyed(
    broker: Broker,
    console: ConsoleServer,
    sites: dict[str, RegionSite],
    browsers: list[Browser],
    tmp_path: Path,
) -> None:
    peace_arch = sites["peace-arch"].run()
    sites["lynden"].run()
    browser = open_browser(browsers, tmp_path)
    log_in(browser, console, "bob")
    browser.wait_for("peace-arch online", lambda: "online" in gateway_card(browser, "peace-arch"))
    # Junk under a gateway's topics (a broken or hostile publisher with its login) is ignored:
    # the page goes on.
    junk = Watcher(broker, username="peace-arch", password=PASSWORDS["peace-arch"])
    for topic, payload in (
        ("ports/rcmp-1", b"\xff\xfe not json"),
        ("ports/rcmp-1", b"[1, 2, 3]"),
        ("patches/border-tac", b"42"),
        ("calls/active/x", b'{"call_id": {"nested": true}, "destinations": "none"}'),
        ("info", b"null"),
    ):
        junk.client.publish(f"crosspatch/peace-arch/{topic}", payload, qos=1).wait_for_publish(5)
    stats = browser.wait_for(
        "the junk counted",
        lambda: (
            (st := browser.run("return window.crosspatchConsole.stats"))["malformed"] >= 5 and st
        ),
    )
    assert stats["renderErrors"] == 0
    assert "rcmp/tac2" in browser.text_of('#ports tr[data-port="rcmp-1"]')
    peace_arch.proc.send_signal(signal.SIGKILL)
    peace_arch.proc.wait(10)
    # The broker publishes the gateway's last will after its keep-alive runs out.
    browser.wait_for(
        "peace-arch offline",
        lambda: "offline" in gateway_card(browser, "peace-arch"),
        timeout=40,
    )
    assert "online" in gateway_card(browser, "lynden")
    rows = browser.find_all('#ports tr[data-gateway="peace-arch"]')
    assert rows and all("stale" in (r.get_attribute("class") or "") for r in rows)
    assert "gateway offline" in browser.text_of('#ports tr[data-gateway="peace-arch"]')
    assert not browser.find_all('#patches tr[data-gateway="peace-arch"] button:not([disabled])')
    browser.screenshot("gateway-offline")


def test_a_late_console_sees_the_present_call_and_alarm_at_once(
    broker: Broker,
    console: ConsoleServer,
    sites: dict[str, RegionSite],
    browsers: list[Browser],
    tmp_path: Path,
) -> None:
    """Opened in the middle of a call, and later of an alarm, the page shows each at once from
    the retained present state."""
    # A 20 s talker on rcmp-1 keys usbp-1, whose transmitter times out after 10 s.
    sites["peace-arch"].run(border_enabled="true", every_s=40, talk_s=20, usbp_timeout_s=10)
    watcher = Watcher(
        broker,
        "crosspatch/peace-arch/calls/#",
        "crosspatch/peace-arch/alarms/#",
        "crosspatch/peace-arch/events",
        username="peace-arch",
        password=PASSWORDS["peace-arch"],
    )

    def event(kind: str) -> list[dict[str, object]]:
        # Live, or retained (calls/active, alarms/active) if it came before the watcher did.
        return [e for m in watcher.messages if m.payload and (e := m.json()).get("type") == kind]

    # The browsers are started beforehand (slow on a busy machine); the consoles open late.
    first = open_browser(browsers, tmp_path)
    second = open_browser(browsers, tmp_path)
    watcher.wait_for(lambda: event("call_start"), timeout=45)
    log_in(first, console, "alice")
    first.wait_for("the call in progress", lambda: "rcmp/tac2" in first.text_of("#calls"))
    first.screenshot("late-console-call")
    # Its only destination timed out: the talker's carrier is ignored until it drops, an alarm
    # that lasts.
    watcher.wait_for(
        lambda: [a for a in event("alarm") if a["kind"] == "stuck_carrier"], timeout=45
    )
    log_in(second, console, "bob")
    alarms = second.wait_for(
        "the stuck carrier alarm",
        lambda: "stuck_carrier" in (t := second.text_of("#alarms")) and t,
    )
    assert "rcmp-1" in alarms
    assert "stuck_carrier" in second.text_of('#ports tr[data-port="rcmp-1"]')
    second.screenshot("late-console-alarm")
    # The first console saw it come live too.
    first.wait_for("the alarm, live", lambda: "stuck_carrier" in first.text_of("#alarms"))
