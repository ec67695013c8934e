"""Property-based tests: whatever arrives, each parser answers with a one-line error or a result.

What a technician writes (configs, scenarios, key files), what a dispatcher or anyone on the
network sends (socket and MQTT commands, RTP/ED-137 and USRP packets) is generated here at random
and as mutations of good input. Never a traceback: a config or scenario problem is a
`ConfigError` of located one-line issues, a bad command a `BadRequest` whose sentence is the
reply, a bad packet an `RtpError`/`UsrpError` (a counted drop). Whatever a parser accepts can be
recorded: its audit event encodes.

The example counts are bounded so the suite stays fast (tests/conftest.py's `suite` profile);
`HYPOTHESIS_PROFILE=deep` runs many more.
"""

from __future__ import annotations

import copy
import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import example, given
from hypothesis import strategies as st

from gateway.config import Config, ConfigError, parse_config_text
from gateway.control.payload import Oversized, RateLimited
from gateway.control.router import BadRequest, audit_event, parse_request
from gateway.core.events import to_json_bytes
from gateway.links import rtp, usrp
from gateway.links.srtp import KeyFileError, parse_key_text
from gateway.sim.scenario import load_scenario

SITE = """\
gateway: {id: fuzz, frame_ms: 20}
agencies:
  ca:
    name: Canadian agency
    country: CA
    talkgroups:
      tac: {rx_mhz: 142.47, ctcss_hz: 131.8}
  us:
    name: US agency
    country: US
    talkgroups:
      ch4: {rx_mhz: 163.1, tx_mhz: 163.1, dcs: 023N}
      net: {id: 7}
radios:
  ca-1: {talkgroup: ca/tac, simulated: {}, timing: {tx_delay_ms: 100, hang_ms: 300}}
  us-1: {talkgroup: us/ch4, simulated: {traffic: {every_s: 5, talk_s: 2, seed: 1}}}
links:
  net: {protocol: usrp, local: 127.0.0.1:34001, remote: 127.0.0.1:32001, talkgroup: us/net}
patches:
  cross: {members: [ca/tac, {talkgroup: us/ch4, mode: listen}], consent: [ca, us]}
  wide: {members: [ca/tac, us/net], floor: priority}
access:
  dispatchers: {alice: {agency: ca}, bob: {agency: us}}
  technicians: [tech1]
"""
SITE_DATA: dict[str, Any] = yaml.safe_load(SITE)

# What YAML and JSON can hold: the values a careless or hostile hand can put anywhere.
_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30)
    | st.sampled_from(
        ["", "ca/tac", "us/ch4", "x/y", "0.0.0.0:1", "-1", "1e-320", "\x00", "\ud800"]
    )
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path into a YAML document's data, the document itself first."""
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*prefix, index))
    return found


@st.composite
def _mutated(draw: st.DrawFn, base: dict[str, Any]) -> Any:
    """`base` with a few of its values replaced, removed or joined by strange ones."""
    data: Any = copy.deepcopy(base)
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        paths = _paths(data)
        path = draw(st.sampled_from(paths))
        action = draw(st.sampled_from(["replace", "delete", "add"]))
        if not path:
            if action == "replace":
                data = draw(_VALUES)
            continue
        parent = data
        for key in path[:-1]:
            parent = parent[key]
        if action == "replace":
            parent[path[-1]] = draw(_VALUES)
        elif action == "delete":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[draw(st.text(max_size=12))] = draw(_VALUES)
        else:
            parent.append(draw(_VALUES))
    return data


def _yaml(data: Any) -> str | None:
    try:
        return yaml.safe_dump(data, allow_unicode=True)
    except (yaml.YAMLError, UnicodeEncodeError):
        return None  # (a lone surrogate cannot be written to a file)


def _assert_one_line_issues(error: ConfigError) -> None:
    assert error.issues, "an error with no issue in it"
    for issue in error.issues:
        text = str(issue)
        assert "\n" not in text and text.strip() == text and issue.message, text


# --- configs ----------------------------------------------------------------------------------


@given(st.text(max_size=400))
@example("gateway: {id: x}\nagencies: {a: " + "[" * 200)
@example("a: &a [*a]")
@example("\ufeffgateway: 1")
def test_any_text_is_a_config_or_located_one_line_errors(text: str) -> None:
    try:
        parse_config_text(text, filename="site.yaml")
    except ConfigError as error:
        _assert_one_line_issues(error)


@given(_mutated(SITE_DATA))
def test_a_mangled_config_is_refused_in_located_one_line_errors(data: Any) -> None:
    text = _yaml(data)
    if text is None:
        return
    try:
        cfg = parse_config_text(text, filename="site.yaml")
    except ConfigError as error:
        _assert_one_line_issues(error)
        return
    assert isinstance(cfg, Config)


def test_the_base_config_is_good() -> None:
    # (Else every mutation above would be refused for the base's own fault.)
    assert parse_config_text(SITE).gateway.id == "fuzz"


# --- scenarios --------------------------------------------------------------------------------

SCENARIO: dict[str, Any] = {
    "start": "2026-01-01T00:00:00Z",
    "duration_s": 10,
    "events": [
        {"at": 0.0, "command": "enable", "patch": "cross", "as": "alice"},
        {"at": 0.5, "command": "approve", "patch": "cross", "as": "bob"},
        {"at": 1.0, "port": "ca-1", "receive": {"tone_hz": 1000, "level_dbfs": -12, "seconds": 2}},
        {"at": 2.0, "port": "us-1", "carrier": {"seconds": 3}},
        {"at": 9.0, "command": "disable", "patch": "cross"},
    ],
}


@given(_mutated(SCENARIO))
def test_a_mangled_scenario_is_refused_in_located_one_line_errors(data: Any) -> None:
    text = _yaml(data)
    if text is None:
        return
    cfg = parse_config_text(SITE)
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "scenario.yaml"
        path.write_text(text, encoding="utf-8")
        try:
            load_scenario(path, cfg)
        except ConfigError as error:  # ScenarioError is one
            _assert_one_line_issues(error)


# --- commands (the control socket's lines and MQTT payloads) ----------------------------------

_COMMAND_WORDS = st.sampled_from(
    ["status", "patch.list", "patch.enable", "patch.disable", "patch.approve", "patch.deny",
     "port.key_test", "reload", "explode", ""]
)  # fmt: skip


@st.composite
def _command_objects(draw: st.DrawFn) -> dict[Any, Any]:
    message: dict[Any, Any] = draw(st.dictionaries(st.text(max_size=10), _VALUES, max_size=4))
    if draw(st.booleans()):
        message["command"] = draw(_COMMAND_WORDS | _VALUES)
    for key in ("patch", "port", "id"):
        if draw(st.booleans()):
            message[key] = draw(_VALUES)
    return message


def _check_request(data: bytes) -> None:
    try:
        command, args, request_id = parse_request(data)
    except BadRequest as bad:
        reply = {"id": bad.request_id, "ok": False, "error": str(bad)}
        assert "\n" not in str(bad) and str(bad)
        audit = audit_event("t", "alice", "?", {}, "refused", str(bad))
    else:
        reply = {"id": request_id, "ok": True, "result": {}}
        audit = audit_event("t", "alice", command, args, "ok", "")
    # What is answered and audited can always be encoded: no input can cost a record.
    json.loads(to_json_bytes(reply))
    json.loads(to_json_bytes(audit))


@given(st.binary(max_size=200))
@example(b"\x00rate-limited:1:2:3")
@example(b"\x00oversized:12")
@example(b'{"command": "status", "id": "\\ud800"}')
@example(b'{"command": "patch.enable", "patch": "a\\u0000b"}')
def test_any_bytes_are_a_request_or_a_one_line_refusal(data: bytes) -> None:
    _check_request(data)


@given(_command_objects())
def test_any_json_object_is_a_request_or_a_one_line_refusal(message: dict[Any, Any]) -> None:
    text = json.dumps(message, ensure_ascii=True)  # \u escapes: surrogates travel as JSON may
    _check_request(text.encode())


@given(st.integers(min_value=0, max_value=2**40), st.floats(0.1, 1000), st.integers(1, 10**6))
def test_the_transports_own_notes_are_refusals_that_name_their_count(
    size: int, per_s: float, burst: int
) -> None:
    with pytest.raises(BadRequest, match=f"is {size} bytes"):
        parse_request(Oversized(size))
    with pytest.raises(BadRequest, match=f"^{size} commands refused: rate limit"):
        parse_request(RateLimited(size, per_s, burst))


# --- packets ----------------------------------------------------------------------------------


@given(st.binary(max_size=300))
@example(bytes([0x90, 0]) + bytes(10) + b"\x00\x67\xff\xff")  # an extension longer than the packet
@example(bytes([0xB0, 0]) + bytes(14) + b"\x00")  # padding of 0 bytes
def test_any_datagram_is_an_rtp_packet_or_an_rtp_error(data: bytes) -> None:
    _check_rtp(data)


def _check_rtp(data: bytes) -> None:
    try:
        packet = rtp.parse_packet(data)
    except rtp.RtpError as error:
        assert "\n" not in str(error) and str(error)
        return
    assert 0 <= packet.payload_type <= 127
    assert len(packet.payload) <= len(data)


@st.composite
def _rtp_datagrams(draw: st.DrawFn) -> bytes:
    """Well-formed headers with ED-137 extensions whose inside is random: the path a link's
    peer (or someone posing as one) reaches most."""
    words = draw(st.integers(0, 8))
    ext = draw(st.binary(min_size=4 * words, max_size=4 * words))
    declared = draw(st.integers(0, 10)) if draw(st.booleans()) else words
    header = rtp.pack(
        draw(st.integers(0, 127)),
        draw(st.integers(0, 0xFFFF)),
        draw(st.integers(0, 0xFFFFFFFF)),
        draw(st.integers(0, 0xFFFFFFFF)),
    )
    header = bytes([header[0] | 0x10]) + header[1:]
    profile = draw(st.sampled_from([rtp.ED137_PROFILE, 0xBEDE, 0]))
    return (
        header
        + profile.to_bytes(2, "big")
        + declared.to_bytes(2, "big")
        + ext
        + draw(st.binary(max_size=200))
    )


@given(_rtp_datagrams())
def test_an_rtp_packet_with_any_extension_is_parsed_or_refused(data: bytes) -> None:
    _check_rtp(data)


@given(
    st.integers(0, 127),
    st.integers(0, 0xFFFF),
    st.integers(0, 0xFFFFFFFF),
    st.integers(0, 0xFFFFFFFF),
    st.binary(max_size=320),
    st.booleans(),
    st.sampled_from(list(rtp.PttType)),
    st.integers(0, 63),
)
def test_what_a_link_sends_it_reads_back(
    payload_type: int,
    sequence: int,
    timestamp: int,
    ssrc: int,
    payload: bytes,
    marker: bool,
    ptt_type: rtp.PttType,
    ptt_id: int,
) -> None:
    state = rtp.Ed137(ptt_type=ptt_type, ptt_id=ptt_id)
    data = rtp.pack(
        payload_type, sequence, timestamp, ssrc, payload, marker, rtp.extension_block(state)
    )
    packet = rtp.parse_packet(data)
    assert (packet.payload_type, packet.sequence, packet.timestamp, packet.ssrc) == (
        payload_type,
        sequence,
        timestamp,
        ssrc,
    )
    assert (packet.payload, packet.marker, packet.ed137) == (payload, marker, state)


@given(st.binary(max_size=400))
def test_any_datagram_is_a_usrp_packet_or_a_usrp_error(data: bytes) -> None:
    _check_usrp(data)


def _check_usrp(data: bytes) -> None:
    for order in ("little", "big"):
        try:
            usrp.parse(data, order)
        except usrp.UsrpError as error:
            assert error.reason and "\n" not in str(error)


@given(st.binary(min_size=28, max_size=28), st.binary(max_size=400))
def test_any_packet_after_the_usrp_magic_is_parsed_or_refused(head: bytes, rest: bytes) -> None:
    _check_usrp(usrp.MAGIC + head + rest)


# --- key files --------------------------------------------------------------------------------


@given(st.text(max_size=120))
@example("inline:" + "A" * 40)
@example("#\n\n  \t\n")
def test_any_key_file_text_is_a_key_or_a_one_line_error(text: str) -> None:
    try:
        key = parse_key_text(text, "srtp_key_file k.key")
    except KeyFileError as error:
        assert "\n" not in str(error) and str(error).startswith("srtp_key_file k.key")
    else:
        assert len(key) == 30
