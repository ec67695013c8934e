"""Site configs more than one test module runs."""

# Three agencies on simulated radios: a cross-border patch that needs both agencies' consent
# (`border-tac`) and a county patch, disabled (`simulate`'s scenarios switch it on).
SIMULATED_SITE = """\
gateway: {id: peace-arch, frame_ms: 20}
agencies:
  rcmp:
    name: Royal Canadian Mounted Police
    country: CA
    talkgroups:
      tac2: {rx_mhz: 142.470, ctcss_hz: 131.8}
  usbp:
    name: U.S. Border Patrol
    country: US
    talkgroups:
      ch4: {rx_mhz: 163.100, ctcss_hz: 100.0}
  sheriff:
    name: Whatcom County Sheriff
    country: US
    talkgroups:
      ops: {rx_mhz: 155.610}
radios:
  rcmp-1:
    talkgroup: rcmp/tac2
    simulated: {}
    timing: {tx_delay_ms: 150, hang_ms: 800, timeout_s: 10, rx_inhibit_ms: 100}
  usbp-1:
    talkgroup: usbp/ch4
    simulated: {}
    timing: {tx_delay_ms: 150, hang_ms: 800, timeout_s: 10, rx_inhibit_ms: 100}
  sheriff-1:
    talkgroup: sheriff/ops
    simulated: {}
patches:
  border-tac:
    members: [rcmp/tac2, usbp/ch4]
    consent: [rcmp, usbp]
  county:
    members: [usbp/ch4, sheriff/ops]
access:
  dispatchers: {alice: {agency: rcmp}, bob: {agency: usbp}}
  technicians: [tech1]
"""


# rcmp/tac2, usbp/ch4 and wcso/main: the agencies of the MQTT daemon sites (daemon_mqtt.py) and of
# the console's peace-arch (region.py). A `str.format` template piece: its braces are doubled.
BORDER_AGENCIES = """\
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
      ch4: {{rx_mhz: 163.100, ctcss_hz: 100.0}}
  wcso:
    name: Whatcom County Sheriff
    country: US
    talkgroups:
      main: {{rx_mhz: 155.550}}
"""
