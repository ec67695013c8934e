"""The gateway's MQTT connection (aiomqtt): the outbox drained in order, retained states, commands.

- Events: the daemon queues each tick's events in the durable `Outbox`; `_drain` publishes them
  oldest first with QoS 1, keeping up to `IN_FLIGHT` publishes in flight (paho sends them in
  order) and topping the window up as acknowledgements come back, and deletes a message from the
  outbox once the broker acknowledged it and every older one. A connection lost mid-flight means
  every unacknowledged message is sent again after the reconnect: delivery is at least once, and
  `seq` lets a consumer drop a repeat. (Sending a batch and waiting for all of it before the next
  left the connection idle at every batch's end, where mosquitto, which delays small writes by
  default (Nagle), held the last acknowledgements until our delayed TCP ACK, about 40 ms: that
  capped a flood near 2,500 events/s on loopback. The window is small because aiomqtt's cost per
  publish grows with the number of publishes pending.)
- Retained states: `status` is `online` once connected and `offline` as the last will (and on a
  clean stop); port and patch states are kept here and published whenever they change and again
  after every reconnect, so the broker always holds the current picture.
- Commands: `PREFIX/GW/cmd/+` is subscribed; USER is the topic's last level, which the broker's
  ACL binds to the login (`pattern write crosspatch/+/cmd/%u`). Each command goes to the
  daemon's command handler (the same authorisation, consent and audit path as the control
  socket) and its reply goes to the MQTT 5 response topic with the correlation data when that
  topic is the user's own reply topic (or below it), else to `PREFIX/GW/reply/USER`: a reply can
  never be steered onto another user's topic or into the call log.
- Commands are bounded: each login may have `mqtt.commands_per_s` run a second in bursts of
  `mqtt.command_burst`, at most COMMAND_QUEUE wait and COMMAND_WORKERS run at once; the rest are
  counted and audited as one refusal per login and second (gateway.mqtt.command_limit), so a flood
  from one login is accounted for, costs the others nothing and never crowds the event drain.
- Present-state trees (`calls/active/#`, `alarms/active/#`, `access/#`): a gateway killed
  without a stop leaves there what was true when it died. After every connect the client
  subscribes to them for STALE_WINDOW_S and clears each retained message it did not set itself,
  so the broker's trees match the present again.
- The session is clean: commands sent while the gateway was away are not run late.
- Reconnects with backoff (0.5 s doubling to 10 s); one log line per outage, not per attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import sqlite3
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import aiomqtt
import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from gateway.config.models import MqttSettings
from gateway.control.payload import Oversized, Payload, RateLimited
from gateway.core.events import Event, to_json_bytes
from gateway.mqtt.command_limit import CommandLimiter
from gateway.mqtt.connect import MqttSetupError as MqttSetupError  # raised here, at the start
from gateway.mqtt.connect import read_password, tls_parameters
from gateway.mqtt.outbox import ESSENTIAL_TYPES, Outbox, OutMessage, PutResult
from gateway.mqtt.topics import Topics

log = logging.getLogger(__name__)

BATCH = 64  # messages read from the outbox at a time (and retained states published at a time)
IN_FLIGHT = 64  # messages published but not yet acknowledged, at most, while draining
REFILL = 16  # acknowledgements that make room for more (a read of the outbox costs the same)
# aiomqtt logs a warning for every publish made while more than this many calls are pending (its
# default, 10, is one warning per event in a flood): above what `_drain` ever has in flight.
PENDING_CALLS_WARNING = IN_FLIGHT + BATCH + 64
PUBLISH_TIMEOUT_S = 10.0  # a publish not acknowledged by then ends the connection
MAX_COMMAND_BYTES = 16 * 1024  # what parse_request's refusal names
# Commands taken from the broker but not yet run, at most; one more is refused (and counted).
COMMAND_QUEUE = 64
# Commands run at once: each waits for the daemon, then for its reply's acknowledgement. A few
# keep replies from crowding the event drain's window on the same connection.
COMMAND_WORKERS = 4
REFUSALS_EVERY_S = 1.0  # refused commands are audited per login this often
# How long after a connect the present-state trees are read for what a crashed run left there
# (the broker sends retained messages right after the subscription's acknowledgement).
STALE_WINDOW_S = 3.0
BACKOFF_MIN_S = 0.5
BACKOFF_MAX_S = 10.0  # the call log waits at most this long after the broker is back

# user, payload -> reply object (never raises for bad input: the reply says what was wrong)
CommandHandler = Callable[[str, Payload], Awaitable[dict[str, Any]]]


def encode(value: Any) -> bytes:
    return to_json_bytes(value)


class MqttClient:
    def __init__(
        self,
        settings: MqttSettings,
        gateway_id: str,
        outbox: Outbox,
        handle_command: CommandHandler,
        *,
        backoff_min_s: float = BACKOFF_MIN_S,
        backoff_max_s: float = BACKOFF_MAX_S,
    ) -> None:
        self.settings = settings
        self.topics = Topics(settings.topic_prefix, gateway_id)
        self.outbox = outbox
        self._handle_command = handle_command
        self._backoff = (backoff_min_s, backoff_max_s)
        self._password = read_password(settings.password_file)
        self._tls = tls_parameters(settings)
        self._retained: dict[str, bytes] = {}
        self._dirty: set[str] = set()
        self._wake = asyncio.Event()
        self._client: aiomqtt.Client | None = None
        self._stopping = False
        self._tasks: set[asyncio.Future[None]] = set()
        self.limiter = CommandLimiter(settings.commands_per_s, settings.command_burst)
        self.connected = False
        self.published = 0

    # ------------------------------------------------------------------ from the daemon (loop)
    def queue(self, events: Sequence[Event], payloads: Sequence[bytes] | None = None) -> PutResult:
        """Writes events to the outbox (one transaction) and wakes the publisher. `payloads`:
        the events already encoded (`encode`), when the caller has them."""
        result = self.outbox.put(outbox_messages(self.topics, events, payloads))
        self._wake.set()
        return result

    def wake(self) -> None:
        """Someone else queued messages in the outbox (the daemon, for a publisher process)."""
        self._wake.set()

    def set_state(self, topic: str, state: Any) -> None:
        """A retained state; published if it changed (now or at the next connection)."""
        self.set_payload(topic, encode(state))

    def set_payload(self, topic: str, payload: bytes | None) -> None:
        """A retained state already encoded (None: cleared, as `forget_state`)."""
        if payload is None:
            self.forget_state(topic)
        elif self._retained.get(topic) != payload:
            self._retained[topic] = payload
            self._dirty.add(topic)
            self._wake.set()

    def forget_state(self, topic: str) -> None:
        """A port or patch that no longer exists: its retained message is cleared."""
        if topic in self._retained:
            del self._retained[topic]
            self._dirty.add(topic)
            self._wake.set()

    # ------------------------------------------------------------------ the connection
    async def run(self) -> None:
        """Connects, and reconnects, until cancelled."""
        delay = self._backoff[0]
        outage_logged = False
        while True:
            try:
                async with self._connect() as client:
                    self._client = client
                    self.connected = True
                    delay = self._backoff[0]
                    log.info("connected to %s", self.settings.url)
                    outage_logged = False
                    await self._serve(client)
            except sqlite3.Error as exc:
                # The outbox could not be read (a disk that filled up between the daemon's
                # write and its reserve being given back): what is unacknowledged is sent again
                # on the next connection, so nothing is lost; the publisher must not go quiet.
                log.error(
                    "the MQTT outbox could not be read (%s); publishing again in %.1f s",
                    exc,
                    delay,
                )
            except aiomqtt.MqttError as exc:
                if not outage_logged:
                    log.warning(
                        "MQTT broker %s unreachable (%s); events are kept in the outbox and "
                        "sent when it is back",
                        self.settings.url,
                        exc,
                    )
                    outage_logged = True
            finally:
                self._client = None
                self.connected = False
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._backoff[1])

    def _connect(self) -> aiomqtt.Client:
        s = self.settings
        version = aiomqtt.ProtocolVersion.V5 if s.protocol == "5" else aiomqtt.ProtocolVersion.V311
        options: dict[str, Any] = {}
        if version is aiomqtt.ProtocolVersion.V311:
            options["clean_session"] = True
        return aiomqtt.Client(
            s.host,
            s.port,
            username=s.username,
            password=self._password,
            identifier=f"crosspatch-{self.topics.gateway}",
            protocol=version,
            will=aiomqtt.Will(self.topics.status, b"offline", qos=1, retain=True),
            tls_params=self._tls,
            keepalive=15,
            timeout=10,
            **options,
        )

    async def _serve(self, client: aiomqtt.Client) -> None:
        client.pending_calls_threshold = PENDING_CALLS_WARNING
        # Subscribed before saying online: a console that waits for `online` can command at once.
        await client.subscribe(self.topics.commands, qos=1)
        for tree in self.topics.present_trees:  # what a crashed run left there: see _stale
            await client.subscribe(tree, qos=1)
        await client.publish(self.topics.status, b"online", qos=1, retain=True)
        unsubscribe = asyncio.ensure_future(self._stop_reading_trees(client))
        self._tasks.add(unsubscribe)
        unsubscribe.add_done_callback(self._tasks.discard)
        self._dirty = set(self._retained) | self._dirty  # the broker may have lost them
        parts = [
            asyncio.ensure_future(self._drain(client)),
            asyncio.ensure_future(self._take_commands(client)),
        ]
        try:
            done, _ = await asyncio.wait(parts, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for part in parts:
                part.cancel()
            unsubscribe.cancel()
        for part in done:
            part.result()  # the MqttError that ended the connection

    async def _take_commands(self, client: aiomqtt.Client) -> None:
        """Takes every command off the connection at once (so nothing piles up at the broker),
        and queues those within their login's rate for a few workers; the rest are counted
        and audited together (see gateway.mqtt.command_limit)."""
        queue: asyncio.Queue[aiomqtt.Message] = asyncio.Queue(COMMAND_QUEUE)
        helpers = [
            asyncio.ensure_future(self._run_commands(client, queue)) for _ in range(COMMAND_WORKERS)
        ]
        helpers.append(asyncio.ensure_future(self._report_refusals(client)))
        for helper in helpers:
            self._tasks.add(helper)
            helper.add_done_callback(self._tasks.discard)
        limiter = self.limiter
        try:
            async for message in client.messages:
                user = self.topics.command_user(str(message.topic))
                if user is None:
                    self._stale(message)
                    continue
                if not limiter.take(user):
                    continue
                try:
                    queue.put_nowait(message)
                except asyncio.QueueFull:
                    limiter.refuse(user)
        finally:
            for helper in helpers:
                helper.cancel()

    def _stale(self, message: aiomqtt.Message) -> None:
        """A retained message found in a present-state tree: cleared unless this run set it
        (a live copy of our own publish has no retain flag and is left alone)."""
        topic = str(message.topic)
        if (
            message.retain
            and message.payload
            and self.topics.in_present_trees(topic)
            and topic not in self._retained
        ):
            self._dirty.add(topic)  # published empty: cleared (see _publish_states)
            self._wake.set()

    async def _stop_reading_trees(self, client: aiomqtt.Client) -> None:
        await asyncio.sleep(STALE_WINDOW_S)
        # A connection that ended meanwhile: the next one subscribes afresh.
        with contextlib.suppress(aiomqtt.MqttError):
            await client.unsubscribe(list(self.topics.present_trees))

    async def _run_commands(self, client: aiomqtt.Client, queue: asyncio.Queue[Any]) -> None:
        while True:
            message = await queue.get()
            try:
                await self._command(client, message)
            except Exception as exc:  # one command's failure must not end the worker
                log.error("a command on %s was not answered: %s", message.topic, exc)

    async def _report_refusals(self, client: aiomqtt.Client | None) -> None:
        """Every REFUSALS_EVERY_S: per login, one audited refusal of every command refused
        since, and one reply saying so. With `client` None: the audits only, once."""
        while True:
            if client is not None:
                await asyncio.sleep(REFUSALS_EVERY_S)
            self.limiter.forget_idle()
            for user, count in self.limiter.refusals().items():
                reply = await self._handle_command(
                    user, RateLimited(count, self.limiter.per_s, self.limiter.burst)
                )
                if client is None:
                    continue
                try:
                    await client.publish(self.topics.reply(user), encode(reply), qos=1)
                except aiomqtt.MqttError as exc:
                    log.info("reply to %s not sent: %s", user, exc)
            if client is None:
                return

    async def _drain(self, client: aiomqtt.Client) -> None:
        acks = _Acks(client)
        # Messages in flight, oldest first: (outbox id, when sent, the publish).
        in_flight: deque[tuple[int, float, paho.MQTTMessageInfo]] = deque()
        last = 0  # the outbox id of the last message sent on this connection
        wake: asyncio.Future[Any] | None = None
        acked: asyncio.Future[Any] | None = None
        loop = asyncio.get_running_loop()
        try:
            while True:
                if self._dirty:
                    self._publish_states(acks)
                room = IN_FLIGHT - len(in_flight)
                if room >= REFILL:
                    batch = self.outbox.peek(min(room, BATCH), after=last)
                    if batch:
                        last = batch[-1].id
                        now = loop.time()
                        for m in batch:
                            sending = acks.publish(m.topic, m.payload, m.retain)
                            in_flight.append((m.id, now, sending))
                        continue
                if in_flight and in_flight[0][2].is_published():
                    # Everything acknowledged from the oldest on: off the outbox in one go.
                    done = []
                    while in_flight and in_flight[0][2].is_published():
                        done.append(in_flight.popleft()[0])
                    self.outbox.ack(done)
                    self.published += len(done)
                    continue
                waits: set[asyncio.Future[Any]] = set()
                timeout = None
                if in_flight:
                    if acked is None or acked.done():
                        acks.event.clear()
                        if in_flight[0][2].is_published():  # since the check above
                            continue
                        acked = asyncio.ensure_future(acks.event.wait())
                    waits.add(acked)
                    timeout = max(0.0, in_flight[0][1] + PUBLISH_TIMEOUT_S - loop.time())
                if room >= REFILL:  # room for more: wake on new messages too
                    if wake is None or wake.done():
                        self._wake.clear()
                        if self.outbox.count > len(in_flight) or self._dirty:  # since the peek
                            continue
                        wake = asyncio.ensure_future(self._wake.wait())
                    waits.add(wake)
                done_now, _ = await asyncio.wait(
                    waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
                )
                if not done_now:
                    raise aiomqtt.MqttError(
                        f"the broker acknowledged nothing within {PUBLISH_TIMEOUT_S:g} s"
                    )
        finally:
            for waiting in (wake, acked):
                if waiting is not None:
                    waiting.cancel()
            acks.close()

    def _publish_states(self, acks: _Acks) -> None:
        """Retained states that changed, at most BATCH of them (the drain goes on between).
        Nothing waits for their acknowledgements: after a reconnect, every one is sent again."""
        topics = list(itertools.islice(self._dirty, BATCH))
        self._dirty.difference_update(topics)
        for topic in topics:
            # An empty retained message clears a retained state (a removed port or patch).
            acks.publish(topic, self._retained.get(topic, b""), retain=True)

    async def _command(self, client: aiomqtt.Client, message: aiomqtt.Message) -> None:
        topic = str(message.topic)
        user = self.topics.command_user(topic)
        if user is None:
            return
        raw = message.payload if isinstance(message.payload, bytes) else b""
        if isinstance(message.payload, str):
            raw = message.payload.encode()
        reply_topic, correlation = self._reply_route(user, message.properties)
        # Too large: the handler audits it, without parsing what may be megabytes.
        payload: Payload = Oversized(len(raw)) if len(raw) > MAX_COMMAND_BYTES else raw
        reply = await self._handle_command(user, payload)
        properties = None
        if correlation is not None and self.settings.protocol == "5":
            properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            properties.CorrelationData = correlation
        try:
            await client.publish(reply_topic, encode(reply), qos=1, properties=properties)
        except aiomqtt.MqttError as exc:
            log.info("reply to %s not sent: %s", user, exc)

    def _reply_route(self, user: str, properties: Any) -> tuple[str, bytes | None]:
        own = self.topics.reply(user)
        wanted = getattr(properties, "ResponseTopic", None) if properties is not None else None
        correlation = getattr(properties, "CorrelationData", None) if properties else None
        if isinstance(wanted, str) and (wanted == own or wanted.startswith(own + "/")):
            return wanted, correlation
        return own, correlation

    async def close(self) -> None:
        """Says `offline` (retained) and disconnects, after a last drain attempt of up to 2 s."""
        client = self._client
        try:  # refusals not yet audited: the audit, without the reply
            async with asyncio.timeout(0.5):
                await self._report_refusals(None)
        except TimeoutError:
            log.error("MQTT: commands refused in the last second were not audited at the stop")
        if client is not None and self.connected:
            try:
                async with asyncio.timeout(2):
                    while self.outbox.count and self.connected:
                        await asyncio.sleep(0.02)
                    await client.publish(self.topics.status, b"offline", qos=1, retain=True)
            except (TimeoutError, aiomqtt.MqttError) as exc:
                log.info("MQTT: offline status not sent: %s", exc or "timed out")
        for task in list(self._tasks):
            task.cancel()


def outbox_messages(
    topics: Topics, events: Sequence[Event], payloads: Sequence[bytes] | None = None
) -> list[OutMessage]:
    """The outbox messages of events (`payloads`: the events already encoded, if at hand)."""
    if payloads is None:
        payloads = [encode(e) for e in events]
    return [
        OutMessage(
            topics.for_event(e), payload, essential=e["type"] in ESSENTIAL_TYPES, seq=e.get("seq")
        )
        for e, payload in zip(events, payloads, strict=True)
    ]


class _Acks:
    """QoS 1 publishes straight through aiomqtt's paho client, and a wake-up for whoever waits
    for their acknowledgements (each publish's `is_published()` says which).

    aiomqtt's own `publish` costs, per message, a coroutine, a task, an event, a timeout and a
    scan of every call pending (twice): in a flood, about half of the publisher's CPU time.
    What the drain needs is less: publish in order, learn when the oldest are acknowledged.
    Connection loss still ends the connection through aiomqtt (the drain runs beside its
    message iterator, which raises)."""

    def __init__(self, client: aiomqtt.Client) -> None:
        self._paho = client._client  # aiomqtt 2.x keeps its paho client here
        self.event = asyncio.Event()
        self._aiomqtt_on_publish = aiomqtt_on_publish = self._paho.on_publish

        def on_publish(*args: Any) -> None:
            if aiomqtt_on_publish is not None:  # aiomqtt's own publishes (replies, status)
                aiomqtt_on_publish(*args)
            self.event.set()

        self._paho.on_publish = on_publish

    def publish(self, topic: str, payload: bytes, retain: bool) -> paho.MQTTMessageInfo:
        info = self._paho.publish(topic, payload, qos=1, retain=retain)
        if info.rc != paho.MQTT_ERR_SUCCESS:
            raise aiomqtt.MqttError(f"could not publish: {paho.error_string(info.rc)}")
        return info

    def close(self) -> None:
        self._paho.on_publish = self._aiomqtt_on_publish
