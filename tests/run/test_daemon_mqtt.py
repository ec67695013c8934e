"""`crosspatch run` with a real mosquitto: the call log and states on their topics, the last will,
commands with consent and ACLs, and no event lost across a broker outage or a gateway crash."""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydub import AudioSegment

from tests.support.daemon import Daemon
from tests.support.daemon_mqtt import PREFIX, MqttSite, payloads, seqs_seen, start
from tests.support.mqtt_env import Broker, Watcher


@pytest.fixture
def site(tmp_path: Path) -> Iterator[MqttSite]:
    s = MqttSite(tmp_path)
    yield s
    s.close()


def command(
    watcher: Watcher, user: str, body: dict[str, Any] | bytes, timeout: float = 10.0
) -> dict[str, Any]:
    """Publishes a command as `user` and waits for its reply on the user's reply topic."""
    before = len(watcher.on(f"{PREFIX}/reply/{user}"))
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    watcher.publish(f"{PREFIX}/cmd/{user}", data)
    replies = watcher.wait_for(
        lambda: payloads(watcher, f"{PREFIX}/reply/{user}")[before:], timeout=timeout
    )
    reply: dict[str, Any] = replies[0]
    return reply


def audits_of(watcher: Watcher, user: str) -> list[dict[str, Any]]:
    return [a for a in payloads(watcher, f"{PREFIX}/audit") if a["principal"] == user]


# ---------------------------------------------------------------------------------- publishing
def test_every_event_arrives_on_its_topic_with_retained_states(
    site: MqttSite, broker: Broker
) -> None:
    watcher = Watcher(broker, f"{PREFIX}/#")
    daemon = start(site, broker)
    calls = watcher.wait_for(
        lambda: [c for c in payloads(watcher, f"{PREFIX}/calls") if c["type"] == "call_end"]
    )
    end = calls[0]
    assert end["gateway"] == "mq-gw" and end["patch"] == "border-tac"
    assert end["source"] == {"port": "rcmp-1", "talkgroup": "rcmp/tac2", "agency": "rcmp"}
    assert end["destinations"] == [{"port": "usbp-1", "talkgroup": "usbp/ch4", "agency": "usbp"}]
    for key in ("call_id", "start", "end", "duration_s", "reason", "peak_dbfs", "recording"):
        assert key in end
    starts = [c for c in payloads(watcher, f"{PREFIX}/calls") if c["type"] == "call_start"]
    assert starts and starts[0]["call_id"] == end["call_id"]
    kinds = {e["type"] for e in payloads(watcher, f"{PREFIX}/events")}
    assert {"ptt", "carrier", "patch"} <= kinds
    audit = payloads(watcher, f"{PREFIX}/audit")
    assert audit[0]["command"] == "patch.enable" and audit[0]["principal"] == "config"

    status = watcher.on(f"{PREFIX}/status")
    assert status[-1].payload == b"online" and status[-1].retain is False  # live delivery
    late = Watcher(broker, f"{PREFIX}/status", f"{PREFIX}/ports/+", f"{PREFIX}/patches/+")
    # The first six, sent for the subscription: live updates may follow them at any time.
    retained = late.wait_for(lambda: len(late.messages) >= 1 + 3 + 2 and late.messages[:6])
    assert all(m.retain for m in retained)
    assert late.on(f"{PREFIX}/status")[0].payload == b"online"
    port = late.on(f"{PREFIX}/ports/usbp-1")[0].json()
    assert port == {
        "port": "usbp-1",
        "kind": "simulated",
        "online": True,
        "talkgroup": "usbp/ch4",
        "agency": "usbp",
        "rx_mhz": 163.1,
        "tx_mhz": 163.1,
        "carrier": False,
        "ptt": port["ptt"],
    }
    patch = late.on(f"{PREFIX}/patches/border-tac")[0].json()
    assert patch["state"] == "enabled" and [m["port"] for m in patch["members"]] == [
        "rcmp-1",
        "usbp-1",
    ]
    seqs = sorted(
        e["seq"]
        for topic in ("calls", "events", "audit")
        for e in payloads(watcher, f"{PREFIX}/{topic}")
    )
    assert seqs == list(range(1, len(seqs) + 1))  # nothing missing, nothing twice

    assert daemon.stop() == 0
    watcher.wait_for(lambda: watcher.on(f"{PREFIX}/status")[-1].payload == b"offline")
    late.close()
    watcher.close()


def test_the_last_will_says_offline_when_the_gateway_is_killed(
    site: MqttSite, broker: Broker
) -> None:
    daemon = start(site, broker)
    watcher = Watcher(broker, f"{PREFIX}/status")
    watcher.wait_for(lambda: watcher.on(f"{PREFIX}/status"))
    daemon.stop(signal.SIGKILL)
    offline = watcher.wait_for(
        lambda: [m for m in watcher.on(f"{PREFIX}/status") if m.payload == b"offline"]
    )
    assert offline
    later = Watcher(broker, f"{PREFIX}/status")
    retained = later.wait_for(lambda: later.on(f"{PREFIX}/status"))
    assert retained[0].payload == b"offline" and retained[0].retain
    later.close()
    watcher.close()


# ---------------------------------------------------------------------------------- durability
def test_a_broker_outage_loses_no_event(site: MqttSite, tmp_path: Path) -> None:
    with Broker(persistent=True) as broker:
        # A logger with a durable session: the broker keeps what it missed while both were down.
        logger = Watcher(broker, f"{PREFIX}/#", client_id="call-logger", durable=True)
        daemon = start(site, broker, every_s=1.5, talk_s=0.7)
        logger.wait_for(lambda: payloads(logger, f"{PREFIX}/calls"))
        broker.stop()
        # A long outage, deliberately: traffic goes on (calls, ptt and carrier events pile up in
        # the outbox) and the publisher's reconnect backoff reaches its 10 s ceiling.
        time.sleep(30)
        queued = site.status()["mqtt"]
        assert queued["connected"] is False and queued["queued"] > 20
        broker.start()
        daemon.wait_for(lambda: site.status()["mqtt"]["queued"] == 0, timeout=45)
        assert daemon.stop() == 0
        logged = {e["seq"] for e in daemon.events()}
        assert logged == set(range(1, max(logged) + 1))
        logger.wait_for(
            lambda: logged <= seqs_seen(logger),
            timeout=20,
            message=f"lost across the outage: {sorted(logged - seqs_seen(logger))[:20]}",
        )
        logger.close()


def test_events_queued_when_the_gateway_is_killed_are_sent_after_its_restart(
    site: MqttSite, broker: Broker
) -> None:
    broker.stop()  # nothing can be published: everything stays in the outbox
    daemon = start(site, broker)
    daemon.wait_for(lambda: daemon.events("call_end"), timeout=20)
    queued = site.status()["mqtt"]["queued"]
    assert queued > 5
    logged = {e["seq"] for e in daemon.events()}
    daemon.stop(signal.SIGKILL)

    broker.start()
    watcher = Watcher(broker, f"{PREFIX}/#")
    again = site.start()
    site.wait_ready(again)
    watcher.wait_for(
        lambda: logged <= seqs_seen(watcher),
        timeout=20,
        message=f"not every queued event arrived (logged {sorted(logged)})",
    )
    # seq goes on from where the killed run stopped: no number is used twice.
    restarted = {e["seq"] for e in again.events()}
    assert restarted and min(restarted) > max(logged)
    assert again.stop() == 0
    watcher.close()


def publisher_pid(daemon: Daemon) -> int | None:
    """The daemon's MQTT publisher process (a child running gateway.mqtt.publisher), if running."""
    for task in Path(f"/proc/{daemon.proc.pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            with contextlib.suppress(FileNotFoundError):
                cmdline = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
                if b"gateway.mqtt.publisher" in cmdline:
                    return int(child)
    return None


def test_a_killed_publisher_is_restarted_and_loses_no_event(site: MqttSite, broker: Broker) -> None:
    watcher = Watcher(broker, f"{PREFIX}/#")
    daemon = start(site, broker, every_s=1.5, talk_s=0.7)
    watcher.wait_for(lambda: payloads(watcher, f"{PREFIX}/calls"))
    first = publisher_pid(daemon)
    assert first is not None
    os.kill(first, signal.SIGKILL)
    daemon.wait_for(lambda: "the MQTT publisher process ended" in daemon.log())
    # A new Python process starts and connects: slow on a busy machine.
    daemon.wait_for(lambda: publisher_pid(daemon) not in (None, first), timeout=30)
    daemon.wait_for(lambda: site.status()["mqtt"]["connected"], timeout=60)
    assert site.status()["mqtt"]["publisher_restarts"] == 1
    # Traffic went on meanwhile; the new publisher sends what the old one had not.
    daemon.wait_for(lambda: len(daemon.events("call_end")) >= 3, timeout=20)
    assert command(watcher, "alice", {"command": "status"})["ok"]  # commands reach the daemon
    daemon.wait_for(lambda: site.status()["mqtt"]["queued"] == 0, timeout=20)
    assert daemon.stop() == 0
    logged = {e["seq"] for e in daemon.events()}
    watcher.wait_for(
        lambda: logged <= seqs_seen(watcher),
        timeout=20,
        message=f"lost with the publisher: {sorted(logged - seqs_seen(watcher))[:20]}",
    )
    assert "Traceback" not in daemon.log()
    watcher.close()


def test_the_publisher_does_not_outlive_a_killed_gateway(site: MqttSite, broker: Broker) -> None:
    daemon = start(site, broker)
    publisher = publisher_pid(daemon)
    assert publisher is not None
    daemon.stop(signal.SIGKILL)
    deadline = time.monotonic() + 10
    while Path(f"/proc/{publisher}").exists() and time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(publisher, os.WNOHANG)  # not ours: reaped by init, only seen gone
        time.sleep(0.05)
    stat = Path(f"/proc/{publisher}/stat")
    assert not stat.exists() or stat.read_text().split()[2] == "Z", "publisher still running"


# ---------------------------------------------------------------------------------- commands
def test_cross_border_consent_from_mqtt_alone(site: MqttSite, broker: Broker) -> None:
    start(site, broker, border_enabled=False)
    watcher = Watcher(broker, f"{PREFIX}/#")
    asked = command(watcher, "alice", {"command": "patch.enable", "patch": "border-tac", "id": 1})
    assert asked == {
        "id": 1,
        "ok": True,
        "result": {
            "patch": "border-tac",
            "state": "pending",
            "message": "'border-tac' pending: waiting for approval by usbp",
        },
    }
    pending = watcher.wait_for(
        lambda: [
            p for p in payloads(watcher, f"{PREFIX}/patches/border-tac") if p["state"] == "pending"
        ]
    )
    assert pending[-1]["approved_by"] == ["alice"]
    approved = command(watcher, "bob", {"command": "patch.approve", "patch": "border-tac"})
    assert approved["ok"] and approved["result"]["state"] == "enabled"
    calls = watcher.wait_for(lambda: payloads(watcher, f"{PREFIX}/calls"), timeout=20)
    assert calls[0]["patch"] == "border-tac"
    # Either agency may end it.
    ended = command(watcher, "bob", {"command": "patch.disable", "patch": "border-tac"})
    assert ended["ok"] and ended["result"]["state"] == "disabled"
    assert [a["result"] for a in audits_of(watcher, "bob")] == ["accepted", "accepted"]
    watcher.close()


def test_deny_and_expiry_of_a_pending_request(site: MqttSite, broker: Broker) -> None:
    start(site, broker, border_enabled=False, expiry_s=10)
    watcher = Watcher(broker, f"{PREFIX}/#")
    assert command(watcher, "alice", {"command": "patch.enable", "patch": "border-tac"})["ok"]
    denied = command(watcher, "bob", {"command": "patch.deny", "patch": "border-tac"})
    assert denied["ok"] and denied["result"]["state"] == "disabled"

    asked_at = time.monotonic()
    assert command(watcher, "alice", {"command": "patch.enable", "patch": "border-tac"})["ok"]
    expired = watcher.wait_for(
        lambda: [
            e
            for e in payloads(watcher, f"{PREFIX}/events")
            if e["type"] == "patch" and e["by"] == "expiry"
        ],
        timeout=20,
    )
    assert expired[0]["state"] == "disabled"
    assert 9.5 <= time.monotonic() - asked_at <= 13
    late = command(watcher, "bob", {"command": "patch.approve", "patch": "border-tac"})
    assert not late["ok"] and "not pending" in late["error"]
    watcher.close()


def test_mqtt5_response_topic_and_correlation_data(site: MqttSite, broker: Broker) -> None:
    start(site, broker)
    own = f"{PREFIX}/reply/tech1/console-7"
    watcher = Watcher(broker, f"{PREFIX}/reply/#", f"{PREFIX}/calls")
    watcher.publish(
        f"{PREFIX}/cmd/tech1",
        json.dumps({"command": "status"}),
        response_topic=own,
        correlation=b"req-42",
    )
    reply = watcher.wait_for(lambda: watcher.on(own))[0]
    assert reply.properties.CorrelationData == b"req-42"
    body = reply.json()
    assert body["ok"] and body["result"]["gateway"] == "mq-gw"
    # A response topic outside the user's own reply topic is not followed: a reply must never
    # land in the call log.
    watcher.publish(
        f"{PREFIX}/cmd/tech1",
        json.dumps({"command": "patch.list"}),
        response_topic=f"{PREFIX}/calls",
    )
    steered = watcher.wait_for(lambda: watcher.on(f"{PREFIX}/reply/tech1"))
    assert steered[0].json()["ok"]
    assert not [m for m in watcher.on(f"{PREFIX}/calls") if b'"ok"' in m.payload]
    watcher.close()


def test_technician_key_test_keys_the_port_with_a_tone(site: MqttSite, broker: Broker) -> None:
    daemon = start(site, broker, border_enabled=False)
    watcher = Watcher(broker, f"{PREFIX}/#")
    reply = command(watcher, "tech1", {"command": "port.key_test", "port": "wcso-1", "seconds": 1})
    assert reply["ok"], reply
    keyed = daemon.wait_for(
        lambda: [e for e in daemon.events("ptt") if e["port"] == "wcso-1" and e["on"]]
    )
    assert keyed[0]["reason"] == "key_test"
    daemon.wait_for(
        lambda: [e for e in daemon.events("ptt") if e["port"] == "wcso-1" and not e["on"]]
    )
    refused = command(watcher, "carol", {"command": "port.key_test", "port": "wcso-1"})
    assert not refused["ok"] and "technicians only" in refused["error"]
    watcher.close()


BAD_COMMANDS = [
    pytest.param("alice", b"{not json", "is not JSON", id="malformed-json"),
    pytest.param("alice", b"[1]", "must be a JSON object", id="not-an-object"),
    pytest.param("alice", b'{"command": "explode"}', "unknown command 'explode'", id="unknown"),
    pytest.param("alice", b'{"command": "patch.enable"}', 'needs "patch"', id="missing-field"),
    pytest.param(
        "alice",
        b'{"command": "patch.enable", "patch": "\\ud800"}',
        "lone UTF-16 surrogate",
        id="lone-surrogate",
    ),
    pytest.param(
        "alice",
        b'{"command": "status", "x": "' + b"a" * 20000 + b'"}',
        "at most 16384",
        id="oversized",
    ),
    pytest.param(
        "mallory", b'{"command": "status"}', "not in this gateway's access list", id="stranger"
    ),
    pytest.param(
        "carol",
        b'{"command": "patch.enable", "patch": "border-tac"}',
        "may not enable 'border-tac'",
        id="other-agency",
    ),
    pytest.param(
        "bob",
        b'{"command": "patch.approve", "patch": "border-tac"}',
        "not pending",
        id="not-pending",
    ),
    pytest.param("alice", b'{"command": "reload"}', "technicians only", id="dispatcher-reload"),
    pytest.param(
        "tech1",
        b'{"command": "port.key_test", "port": "wcso-1", "seconds": 99}',
        "seconds must be a number from 0.5 to 10",
        id="key-test-too-long",
    ),
]


def test_bad_commands_get_a_clear_error_an_audit_and_the_gateway_carries_on(
    site: MqttSite, broker: Broker
) -> None:
    daemon = start(site, broker, border_enabled=False)
    watcher = Watcher(broker, f"{PREFIX}/#")
    for case in BAD_COMMANDS:
        user, payload, error = case.values
        assert isinstance(user, str) and isinstance(payload, bytes) and isinstance(error, str)
        before = len(audits_of(watcher, user))
        reply = command(watcher, user, payload)
        assert reply["ok"] is False and error in reply["error"], (case.id, reply)
        audit = watcher.wait_for(lambda user=user, before=before: audits_of(watcher, user)[before:])
        assert audit[0]["result"] == "refused" and error in audit[0]["reason"], case.id
    assert command(watcher, "alice", {"command": "status"})["ok"]  # still serving
    assert "Traceback" not in daemon.log()
    assert daemon.proc.poll() is None
    watcher.close()


def test_the_broker_acl_stops_a_user_commanding_as_another(
    site: MqttSite, broker: Broker, tmp_path: Path
) -> None:
    broker.stop()
    secured = Broker(
        users={"gateway": "gw-secret", "alice": "a-secret", "bob": "b-secret"},
        acl=(
            "user gateway\n"
            "topic readwrite crosspatch/#\n"
            "\n"
            "pattern write crosspatch/+/cmd/%u\n"
            "pattern read crosspatch/+/reply/%u\n"
            "pattern read crosspatch/+/calls\n"
            "pattern read crosspatch/+/patches/+\n"
        ),
    ).start()
    try:
        password = tmp_path / "mqtt.password"
        password.write_text("gw-secret\n")
        start(
            site,
            secured,
            border_enabled=False,
            mqtt=f"{{url: '{secured.url}', username: gateway, password_file: '{password}'}}",
        )
        alice = Watcher(
            secured,
            f"{PREFIX}/reply/alice",
            f"{PREFIX}/patches/+",
            username="alice",
            password="a-secret",
        )
        alice.wait_for(lambda: alice.on(f"{PREFIX}/patches/border-tac"))
        # Alice publishes on bob's command topic, pretending to be bob: the broker drops it.
        alice.publish(
            f"{PREFIX}/cmd/bob", json.dumps({"command": "patch.enable", "patch": "border-tac"})
        )
        # Her own request goes through, and shows who she really is.
        reply = command(alice, "alice", {"command": "patch.enable", "patch": "border-tac"})
        assert reply["ok"] and reply["result"]["state"] == "pending"
        time.sleep(1)  # not happening: a forged approval would have enabled the patch by now
        states = [p["state"] for p in payloads(alice, f"{PREFIX}/patches/border-tac")]
        assert "enabled" not in states  # bob's approval was never forged
        stranger = Watcher(secured, f"{PREFIX}/#", username="alice", password="wrong")
        assert stranger.connect_code != 0  # and nobody gets in without a password
        stranger.close()
        alice.close()
    finally:
        secured.close()


# ---------------------------------------------------------------------------------- TLS, 3.1.1
def test_tls_with_a_client_certificate(site: MqttSite, tmp_path: Path) -> None:
    with Broker(tls=True) as secured:
        assert secured.tls is not None
        tls = secured.tls
        mqtt = (
            f"{{url: '{secured.url}', ca_file: '{tls.ca}', cert_file: '{tls.client_cert}', "
            f"key_file: '{tls.client_key}'}}"
        )
        watcher = Watcher(secured, f"{PREFIX}/#", tls=tls)
        daemon = start(site, secured, mqtt=mqtt)
        assert watcher.wait_for(lambda: payloads(watcher, f"{PREFIX}/calls"), timeout=20)
        assert daemon.stop() == 0
        watcher.close()

        # A certificate the broker's CA did not sign gets nowhere; the events wait in the outbox.
        stranger = mqtt.replace(str(tls.client_cert), str(tls.stranger_cert)).replace(
            str(tls.client_key), str(tls.stranger_key)
        )
        site.write(mqtt=stranger)
        refused = site.start()
        site.wait_ready(refused)
        refused.wait_for(lambda: "unreachable" in refused.log())

        def queued() -> dict[str, Any] | None:
            mqtt_status: dict[str, Any] = site.status()["mqtt"]
            return mqtt_status if mqtt_status["queued"] > 0 else None

        mqtt_status = refused.wait_for(queued)
        assert mqtt_status["connected"] is False
        assert refused.stop() == 0


def test_mqtt_3_1_1_replies_on_the_reply_topic(site: MqttSite, broker: Broker) -> None:
    start(site, broker, mqtt=f"{{url: '{broker.url}', protocol: '3.1.1'}}")
    watcher = Watcher(broker, f"{PREFIX}/#", version=3)  # paho's MQTTv311
    reply = command(watcher, "carol", {"command": "patch.list", "id": "c-1"})
    assert reply["id"] == "c-1" and reply["ok"]
    assert {p["patch"] for p in reply["result"]["patches"]} == {"border-tac", "county"}
    assert watcher.wait_for(lambda: payloads(watcher, f"{PREFIX}/calls"), timeout=20)
    watcher.close()


def test_an_unreadable_password_file_is_one_line(site: MqttSite, broker: Broker) -> None:
    site.write(mqtt=f"{{url: '{broker.url}', username: gw, password_file: /nonexistent/pw}}")
    daemon = site.start()
    code = daemon.proc.wait(60)
    daemon.stop()
    assert code != 0
    errors = [line for line in daemon.lines if "password_file" in line]
    assert len(errors) == 1 and "/nonexistent/pw" in errors[0], daemon.log()
    assert "Traceback" not in daemon.log()


# ---------------------------------------------------------------------------------- recordings
@pytest.mark.parametrize("fmt", ["wav", "mp3"])
def test_each_call_is_recorded_and_its_file_named_in_call_end(
    site: MqttSite, broker: Broker, tmp_path: Path, fmt: str
) -> None:
    recordings = tmp_path / "recordings"
    watcher = Watcher(broker, f"{PREFIX}/calls")
    daemon = start(
        site,
        broker,
        every_s=2,
        talk_s=1,
        recording=f"recording: {{dir: {recordings}, format: {fmt}}}",
    )
    ends = watcher.wait_for(
        lambda: [c for c in payloads(watcher, f"{PREFIX}/calls") if c["type"] == "call_end"],
        timeout=20,
    )
    assert daemon.stop() == 0
    end = ends[0]
    path = Path(end["recording"])
    assert path.parent.parent == recordings and path.suffix == f".{fmt}"
    assert path.name.startswith(end["call_id"])
    audio = AudioSegment.from_file(path)  # it plays: ffmpeg decodes it
    assert audio.duration_seconds == pytest.approx(end["duration_s"], abs=0.1)
    assert audio.dBFS > -40  # the talker's speech, not silence


# ---------------------------------------------------------------------------------- floods
FLOOD = 10_000
REFUSED = re.compile(r"^(\d+) commands refused: rate limit")


def accounted(audits: list[dict[str, Any]]) -> int:
    """Commands an audit trail accounts for: one per audit, or the count of a rate-limit one."""
    total = 0
    for audit in audits:
        refused = REFUSED.match(audit["reason"])
        total += int(refused.group(1)) if refused else 1
    return total


def test_a_flood_from_one_login_is_counted_and_costs_the_others_nothing(
    site: MqttSite, broker: Broker
) -> None:
    """10,000 junk payloads at QoS 0 on a dispatcher's own command topic: every one is either
    run or counted in a rate-limit audit, a technician is answered within seconds of the flood's
    end (not starved: before the command limits, replies timed out and the broker dropped the
    gateway), the gateway's connection holds and no event goes missing."""
    daemon = start(site, broker, border_enabled=True, every_s=1, talk_s=0.5)
    watcher = Watcher(broker, f"{PREFIX}/#")
    flooder = Watcher(broker)
    junk = random.Random(15)
    topic = f"{PREFIX}/cmd/alice"
    for _ in range(FLOOD):
        flooder.client.publish(topic, junk.randbytes(junk.randrange(0, 200)), qos=0)
    # One more at QoS 1: acknowledged once the broker has had every one before it.
    flooder.publish(topic, b"the end of the flood")
    ended = time.monotonic()
    reply = command(watcher, "tech1", {"command": "status", "id": "after"}, timeout=30)
    answered = time.monotonic() - ended
    assert reply["ok"] and reply["id"] == "after"
    # Under 2 s on a quiet machine; 2.3 s seen with two CPU burners beside it (the 10,000
    # messages before it go through the broker and the publisher process first).
    assert answered < 5.0, f"the technician waited {answered:.1f} s"
    watcher.wait_for(lambda: audits_of(watcher, "tech1"), timeout=5)

    def all_accounted() -> bool:
        return accounted(audits_of(watcher, "alice")) >= FLOOD + 1

    watcher.wait_for(all_accounted, timeout=30, message="the flood is not all accounted for")
    alice = audits_of(watcher, "alice")
    assert accounted(alice) == FLOOD + 1
    assert any(REFUSED.match(a["reason"]) for a in alice)
    run = [a for a in alice if not REFUSED.match(a["reason"])]
    assert 20 <= len(run) < 1000, len(run)  # the burst and the rate, not the flood
    status = site.status()["mqtt"]
    assert status["connected"] and status["publisher_restarts"] == 0
    assert "unreachable" not in daemon.log()  # the connection held through the flood
    assert daemon.log().count(f"connected to {broker.url}") == 1
    # No event lost: every seq from the first the watcher saw to the gateway's last one.
    last = max(e["seq"] for e in daemon.events())
    watcher.wait_for(lambda: max(seqs_seen(watcher)) >= last, timeout=30)
    seen = seqs_seen(watcher)
    assert set(range(min(seen), last + 1)) <= seen
    flooder.close()
    watcher.close()
    assert daemon.stop() == 0
