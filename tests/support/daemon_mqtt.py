"""A daemon site with an MQTT section, started against a real mosquitto (see mqtt_env.py), and
readers of what a `Watcher` saw on the gateway's topics."""

from __future__ import annotations

from typing import Any

from tests.support.daemon import Daemon, Site
from tests.support.mqtt_env import Broker, Watcher
from tests.support.sites import BORDER_AGENCIES

SITE = (
    """\
gateway: {{id: mq-gw, frame_ms: 20, state_dir: {state_dir}}}
"""
    + BORDER_AGENCIES
    + """\
radios:
  rcmp-1:
    talkgroup: rcmp/tac2
    simulated: {{traffic: {{every_s: {every_s}, talk_s: {talk_s}, seed: 1}}}}
    timing: {{tx_delay_ms: 0, hang_ms: 200}}
  usbp-1:
    talkgroup: usbp/ch4
    simulated: {{}}
  wcso-1:
    talkgroup: wcso/main
    simulated: {{}}
patches:
  border-tac:
    members: [rcmp/tac2, usbp/ch4]
    enabled: {border_enabled}
  county:
    members: [wcso/main, usbp/ch4]
access:
  dispatchers: {{alice: {{agency: rcmp}}, bob: {{agency: usbp}}, carol: {{agency: wcso}}}}
  technicians: [tech1]
  pending_expiry_s: {expiry_s}
mqtt: {mqtt}
{recording}
"""
)


PREFIX = "crosspatch/mq-gw"


class MqttSite(Site):
    def write(  # type: ignore[override]
        self,
        border_enabled: bool = True,
        mqtt: str = "",
        every_s: float = 3,
        talk_s: float = 1,
        expiry_s: int = 900,
        recording: str = "",
    ) -> None:
        self.config.write_text(
            SITE.format(
                state_dir=self.state_dir,
                border_enabled=str(border_enabled).lower(),
                mqtt=mqtt or "{url: mqtt://127.0.0.1:1}",
                every_s=every_s,
                talk_s=talk_s,
                expiry_s=expiry_s,
                recording=recording,
            )
        )


def start(site: MqttSite, broker: Broker, **options: Any) -> Daemon:
    mqtt = options.pop("mqtt", None) or f"{{url: '{broker.url}'}}"
    site.write(mqtt=mqtt, **options)
    daemon = site.start()
    site.wait_ready(daemon)
    if broker.running:  # connected (and subscribed to commands) once it says online
        daemon.wait_for(lambda: site.status()["mqtt"]["connected"])
    return daemon


def payloads(watcher: Watcher, topic: str) -> list[Any]:
    return [m.json() for m in watcher.on(topic) if m.payload]


def seqs_seen(watcher: Watcher) -> set[int]:
    """The seq of every event the watcher received on the calls, events and audit topics."""
    return {
        e["seq"]
        for topic in ("calls", "events", "audit")
        for e in payloads(watcher, f"{PREFIX}/{topic}")
    }
