"""Two gateways on simulated radios sharing one real mosquitto with logins, the documented ACL
and a WebSockets listener: what a dispatcher's web console sees (tests/console).

`peace-arch` serves RCMP, U.S. Border Patrol and the Whatcom County Sheriff; `lynden` serves
CBSA and U.S. Border Patrol. Each gateway logs into the broker as itself; dispatchers alice
(rcmp), bob (usbp), carol (wcso) and dave (cbsa) and technician tech1 log in as themselves.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.support.daemon import Daemon, Site
from tests.support.mqtt_env import Broker
from tests.support.sites import BORDER_AGENCIES

PASSWORDS = {
    "peace-arch": "gw-pa-secret",
    "lynden": "gw-ly-secret",
    "alice": "alice-pw",
    "bob": "bob-pw",
    "carol": "carol-pw",
    "dave": "dave-pw",
    "tech1": "tech1-pw",
}

# The ACL of docs/mqtt-api.yaml, for the console's dispatchers.
ACL = """\
user peace-arch
topic readwrite crosspatch/peace-arch/#

user lynden
topic readwrite crosspatch/lynden/#

pattern write crosspatch/+/cmd/%u
pattern read crosspatch/+/reply/%u
pattern read crosspatch/+/reply/%u/#
pattern read crosspatch/+/access/%u
pattern read crosspatch/+/status
pattern read crosspatch/+/info
pattern read crosspatch/+/ports/#
pattern read crosspatch/+/patches/#
pattern read crosspatch/+/calls
pattern read crosspatch/+/calls/active/#
pattern read crosspatch/+/alarms/active/#
pattern read crosspatch/+/events
"""

PEACE_ARCH = (
    """\
gateway: {{id: peace-arch, site: "Peace Arch / Pacific Highway", frame_ms: 20,
  state_dir: {state_dir}}}
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
    timing: {{tx_delay_ms: 0, hang_ms: 200, timeout_s: {usbp_timeout_s}}}
  wcso-1:
    talkgroup: wcso/main
    simulated: {{}}
patches:
  border-tac:
    members: [rcmp/tac2, usbp/ch4]
    enabled: {border_enabled}
  county:
    members: [wcso/main, usbp/ch4]
    enabled: {county_enabled}
access:
  dispatchers: {{alice: {{agency: rcmp}}, bob: {{agency: usbp}}, carol: {{agency: wcso}}}}
  technicians: [tech1]
mqtt: {{url: "{url}", username: peace-arch, password_file: {password_file}}}
"""
)

LYNDEN = """\
gateway: {{id: lynden, site: "Lynden / Aldergrove", frame_ms: 20, state_dir: {state_dir}}}
agencies:
  cbsa:
    name: Canada Border Services Agency
    country: CA
    talkgroups:
      ops: {{rx_mhz: 141.900}}
  usbp:
    name: U.S. Border Patrol
    country: US
    talkgroups:
      ch2: {{rx_mhz: 163.200}}
radios:
  cbsa-1:
    talkgroup: cbsa/ops
    simulated: {{}}
  usbp-2:
    talkgroup: usbp/ch2
    simulated: {{}}
patches:
  crossing:
    members: [cbsa/ops, usbp/ch2]
    enabled: true
access:
  dispatchers: {{bob: {{agency: usbp}}, dave: {{agency: cbsa}}}}
  technicians: [tech1]
mqtt: {{url: "{url}", username: lynden, password_file: {password_file}}}
"""


def region_broker() -> Broker:
    return Broker(users=PASSWORDS, acl=ACL, websockets=True)


class RegionSite(Site):
    """One of the two gateways (`template` PEACE_ARCH or LYNDEN) on `broker`."""

    def __init__(self, tmp_path: Path, template: str, broker: Broker, gateway: str) -> None:
        self.template = template
        self.broker = broker
        self.gateway = gateway
        tmp_path.mkdir(parents=True, exist_ok=True)
        self.password_file = tmp_path / "mqtt-password"
        self.password_file.write_text(PASSWORDS[gateway] + "\n")
        self.password_file.chmod(0o600)
        super().__init__(tmp_path)

    def write(self, **options: Any) -> None:  # type: ignore[override]
        values: dict[str, Any] = {
            "every_s": 4,
            "talk_s": 1.5,
            "county_enabled": "false",
            "border_enabled": "false",
            "usbp_timeout_s": 180,
        }
        values.update(options)
        self.config.write_text(
            self.template.format(
                state_dir=self.state_dir,
                url=self.broker.url,
                password_file=self.password_file,
                **values,
            )
        )

    def run(self, **options: Any) -> Daemon:
        """Starts the daemon and waits until it is connected to the broker."""
        self.write(**options)
        daemon = self.start()
        self.wait_ready(daemon)
        daemon.wait_for(lambda: self.status()["mqtt"]["connected"])
        return daemon
