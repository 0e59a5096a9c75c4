"""StatusReporter: the kiosk's MQTT face for a fleet (paho-mqtt 2.x, CallbackAPIVersion.VERSION2).

Topic contract (prefix `mqtt.topic_prefix`, `<id>` = device.id), used by tools outside the project:
- `<prefix>/<id>/availability`: retained `online`/`offline`; `offline` is also the last will.
- `<prefix>/<id>/state`: retained JSON {state, session_id, continued_from, slot, since, version}.
- `<prefix>/<id>/event`: JSON events, not retained.
- `<prefix>/<id>/metrics`: JSON every `mqtt.metrics_interval_s`.
- `<prefix>/<id>/cmd` in, `<prefix>/<id>/cmd/result` out (see `commands`).
- Home Assistant discovery under `mqtt.discovery_prefix` (see `discovery`), published after each
  connect's clean-up of stale configs (see `discovery_sync`).
- `<prefix>/_sessions/<agent>/<slot>`: shared session pointers, through `send`/`follow` (see `share`).

paho runs its own network thread and reconnect loop. A broker it cannot reach (refused, no
route, a name that does not resolve, a refused login) is a warning naming host:port and why at the
first failure, then at most one a minute while it goes on, and an info line when it connects
again. Every callback body is guarded; commands
go to the event loop through `on_command` (the kiosk uses call_soon_threadsafe); nothing here
blocks the audio path. With the broker down the kiosk works as before: state is re-published on
every (re)connect, and events wait in a bounded queue.

Anyone who can publish to the broker is untrusted: the kiosk speaks MQTT 5 and tells the broker
its Maximum Packet Size (MAX_PACKET_BYTES), so a huge publish is dropped by the broker instead
of being buffered whole here; a retained command is refused (it would run again at every
(re)connect), also one retained while the kiosk is online (subscribed with Retain As Published,
so the broker does not clear its flag on the way); an empty command (how a retained message is
cleared) is ignored; malformed commands get an error. Rate limits on what commands start are the
Conversation's (the same for the button).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from edge_agent import __version__
from edge_agent.core.config_mqtt import MqttSettings
from edge_agent.core.ratelimit import FailureStreak, TokenBucket
from edge_agent.fleet.commands import MAX_COMMAND_BYTES, Command, CommandError, parse_command
from edge_agent.fleet.discovery_sync import DiscoveryCleanup
from edge_agent.fleet.mqttclient import Client, guarded, held, make_client

log = logging.getLogger(__name__)

MAX_QUEUED_EVENTS = 200
MAX_PACKET_BYTES = 4 * MAX_COMMAND_BYTES
"""Largest MQTT packet the kiosk accepts (MQTT 5 Maximum Packet Size, sent on CONNECT): a
command plus topic and headers. A conforming broker (mosquitto >= 1.6) does not deliver larger
messages to the kiosk at all; brokers should also cap what they accept (`max_packet_size`)."""
REFUSALS_BURST, REFUSAL_EVERY_S = 10, 0.5
"""Error replies to malformed or retained commands: ten at once, then one per 0.5 s; the rest are
only counted (`bad_commands`). They are answered from paho's thread and share its bounded queue
with the kiosk's own state and events: a flood of garbage on `cmd` filled it, and a conversation's
state and events were dropped (a helper's attack: 14 104 dropped, the retained state `idle`
throughout a conversation). Valid commands are limited where they act (the Conversation)."""
COMMANDS_BURST, COMMAND_EVERY_S = 20, 0.2
"""Well-formed commands carried out (and answered): twenty at once, then one per 0.2 s; past
that each is refused like a malformed one (counted, its reply within the refusals' limit). A
flood of valid `ping`s (or an `end` while idle) was each answered into the same bounded queue,
and dropped a whole conversation's events (an attacker's run: 23 000-50 000 dropped). `ping`s
have a bucket of their own, the same size: a script pinging at 6 a second spent the one bucket,
and a Home Assistant press was refused."""
HA_ANSWERS_BURST, HA_ANSWER_EVERY_S = 2, 10.0
"""Home Assistant's `online` announcements answered with the discovery configs: a couple at once,
then one per 10 s. Each answer is every config (18); a flood of announcements filled the bounded
queue and crowded out everything else the kiosk had to publish. The configs are retained, so an
announcement left unanswered still finds them on the broker."""
ONLINE_RETRY_S = 0.5
"""How soon `online` and the state are tried again at a connect whose queue was full."""
LOOP_STOP_S = 1.0
"""Longest wait at close for paho's network thread to end."""
CONNECT_WARN_EVERY_S = 60.0
"""While the broker stays unreachable, one warning per minute at most (paho retries every 1-3 s)."""
SHORT_LIVED_S = 10.0
"""A connection the broker drops sooner than this after it was made counts towards a streak of
drops, said at most once per CONNECT_WARN_EVERY_S with the likely causes (a client id taken over by
another client, an ACL refusing the kiosk's topics): it was a warning and an info line a second."""
Reply = Callable[[dict[str, Any]], None]


class StatusReporter:
    def __init__(self, settings: MqttSettings, device_id: str, on_command: Callable[[Command, Reply], None], state_dir: Path | None = None) -> None:
        self.settings = settings
        self.device_id = device_id
        self.base = f"{settings.topic_prefix}/{device_id}"
        self._on_command = on_command
        self._lock = threading.Lock()
        self._state_send = threading.Lock()
        """One state publish at a time, from its copy to its flag: the connect's catch-up (paho's
        thread) copied the state, let go, and published after the loop's newer state: the broker
        retained `listening` for an idle kiosk (tests/test_threads_review.py)."""
        self._state: dict[str, Any] = {"state": "idle", "session_id": None, "continued_from": None, "slot": None, "since": _now_iso(), "version": __version__}
        self._followed: list[str] = []
        self._connect_hooks: list[Callable[[], None]] = []
        self.connected = threading.Event()
        self.connects = 0
        self.events_dropped = 0
        self.bad_commands = 0
        self.refusals_unanswered = 0
        """Commands refused (malformed, retained) whose error reply the limit held back."""
        self._ha_answers = TokenBucket(HA_ANSWERS_BURST, 1.0 / HA_ANSWER_EVERY_S, time.monotonic())
        self._refusals = TokenBucket(REFUSALS_BURST, 1.0 / REFUSAL_EVERY_S, time.monotonic())
        self._commands = TokenBucket(COMMANDS_BURST, 1.0 / COMMAND_EVERY_S, time.monotonic())
        self._pings = TokenBucket(COMMANDS_BURST, 1.0 / COMMAND_EVERY_S, time.monotonic())
        self._state_unsent = False  # the last state publish found the queue full: sent again at the next publish
        self._online_unsent = False  # `online` found the queue full at a connect: `_say_online` tries again
        self._states_out: list[mqtt.MQTTMessageInfo] = []  # state publishes (QoS > 0) paho may still hold
        self._stale_states: list[mqtt.MQTTMessageInfo] = []  # of those, the ones held at the last connect
        self._closing = False
        self.connect_failures = FailureStreak(CONNECT_WARN_EVERY_S)
        self.drops = FailureStreak(CONNECT_WARN_EVERY_S)
        """Connections the broker dropped within SHORT_LIVED_S of making them (paho's thread only)."""
        self._connected_at = 0.0
        """Failed connection attempts since the last connect (paho's thread only)."""
        self._refused = False
        self._client = make_client(settings, settings.client_id or f"edge-agent-{device_id}", MQTTProtocolVersion.MQTTv5)
        self.discovery = DiscoveryCleanup(self._client, settings, device_id, state_dir, guarded)
        self._client.will_set(self.topic("availability"), "offline", qos=settings.qos, retain=True)
        self._client.reconnect_delay_set(min_delay=1, max_delay=3)  # back within 5 s of the broker
        self._client.max_queued_messages_set(MAX_QUEUED_EVENTS)
        self._client.on_connect = guarded(self._on_connect)
        self._client.on_disconnect = guarded(self._on_disconnect)
        self._client.on_connect_fail = guarded(self._on_connect_fail)
        self._client.on_message = guarded(self._on_message)
        self._client.on_subscribe = guarded(lambda client, userdata, mid, reasons, properties: self.discovery.subscribed(mid))
        self._client.on_unsubscribe = guarded(lambda client, userdata, mid, reasons, properties: self.discovery.unsubscribed(mid))

    def topic(self, leaf: str) -> str:
        return f"{self.base}/{leaf}"

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        limits = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        limits.MaximumPacketSize = MAX_PACKET_BYTES  # type: ignore[attr-defined]  # paho sets properties by name
        self._client.connect_async(self.settings.host, self.settings.port, keepalive=self.settings.keepalive_s, properties=limits)
        self._client.loop_start()

    def close(self) -> None:
        """Clean shutdown: `offline` retained (the will is not sent on a clean disconnect)."""
        self._closing = True  # the disconnect that follows is ours: no warning about it
        try:
            if self.connected.is_set():
                info = self._client.publish(self.topic("availability"), "offline", qos=self.settings.qos, retain=True)
                info.wait_for_publish(timeout=1.0)
            # with the will (MQTT 5, 0x04): a clean DISCONNECT makes the broker drop it, and an
            # `offline` paho still held (its in-flight window full of unacknowledged messages on a
            # link whose answers stopped) never went out: `online` stayed retained, a ghost kiosk
            self._client.disconnect(reasoncode=ReasonCode(PacketTypes.DISCONNECT, "Disconnect with will message"))
        except (RuntimeError, ValueError, OSError) as exc:
            log.debug("mqtt close: %s", exc)
        # paho's loop_stop joins its network thread without a limit, and that thread may sit in a
        # resolver that does not answer (10 s) or a connect to a host dropping SYNs (5 s): the stop
        # outlived systemd's TimeoutStopSec. Waited for LOOP_STOP_S; the thread is a daemon's.
        stopper = threading.Thread(target=self._client.loop_stop, name="mqtt-stop", daemon=True)
        stopper.start()
        stopper.join(LOOP_STOP_S)

    # ------------------------------------------------------------------ paho callbacks (paho's thread)
    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if reason.is_failure:
            self._refused = True  # the disconnect that follows is this attempt's end, not another failure
            self._connect_failed(f"the broker refused the connection: {reason}")
            return
        self.connects += 1
        self.connected.set()
        self._connected_at = time.monotonic()
        streak = self.connect_failures.ended(time.monotonic())
        after = f" after {streak[0]} failed attempts over {streak[1]:.0f} s" if streak else ""
        # while the broker keeps dropping it at once, each reconnect is not news (it came once a second)
        log.log(logging.DEBUG if self.drops.failures >= 2 else logging.INFO, "mqtt: connected to %s:%d%s", self.settings.host, self.settings.port, after)
        qos = self.settings.qos
        # Retain As Published: a command retained while the kiosk is online keeps its retain flag
        # (by default the broker clears it for subscribers already there), so it is refused now as
        # it would be at every reconnect after, instead of running now and being refused later
        commands = SubscribeOptions(qos=qos, retainAsPublished=True)
        others = [f"{self.settings.discovery_prefix}/status", *self._followed]
        client.subscribe([(self.topic("cmd"), commands), *((f, SubscribeOptions(qos=qos)) for f in others)])
        for hook in self._connect_hooks:
            guarded(hook)()
        self._online_unsent = True
        with self._lock:  # paho re-sends these after this callback, behind the state `_say_online` sends
            self._stale_states = [i for i in self._states_out if held(i)]
        self._say_online(self.connects)
        self.discovery.connected()

    def _say_online(self, connect: int) -> None:
        """`online` and the state at a (re)connect; while the bounded queue is full (the events said
        while the broker was away fill it) again every ONLINE_RETRY_S until they go, as it drains.
        They were dropped there, uncounted: the kiosk offline to the fleet and to Home Assistant
        until its next reconnect (a helper's attack). paho lets no limit change while connected.
        States paho still held from the connection before (sent on a link that had died unnoticed)
        it re-sends after this: the state goes again once they are through, or the broker retained
        `listening` for a kiosk idle since (tests/test_mqttcmd_review.py)."""
        if connect != self.connects or not self.connected.is_set():
            return  # connected again meanwhile (that connect says it) or gone
        first = self._online_unsent
        if self._online_unsent:
            info = self._client.publish(self.topic("availability"), "online", qos=self.settings.qos, retain=True)
            self._online_unsent = info.rc == mqtt.MQTT_ERR_QUEUE_SIZE
        stale = self._stale_states
        if stale:  # older states paho re-sends (a link that died under them) would be retained last
            with self._lock:
                self._stale_states = [i for i in stale if held(i)]
        if not self._online_unsent and (first or self._state_unsent or (stale and not self._stale_states)):
            self._state_catch_up()  # the newest state now, and again once the older ones are through
        if self._online_unsent or self._state_unsent or self._stale_states:
            timer = threading.Timer(ONLINE_RETRY_S, guarded(self._say_online), (connect,))
            timer.daemon = True
            timer.start()

    def _on_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        """paho could not open the connection (no CONNACK to read): the reason is `Client`'s."""
        exc = client.connect_error if isinstance(client, Client) else None
        self._connect_failed((exc.strerror or str(exc) or type(exc).__name__) if exc is not None else "no reason given")

    def _connect_failed(self, why: str) -> None:
        """One failed attempt: a warning at the first, then at most one per `connect_failures.every_s`."""
        if self._closing or not self.connect_failures.failed(time.monotonic()):
            return
        where = f"{self.settings.host}:{self.settings.port}"
        streak = self.connect_failures
        if streak.failures == 1:
            log.warning("mqtt: cannot connect to %s: %s; retrying every few seconds (this warning at most every %.0f s while it fails)", where, why, streak.every_s)
        else:
            log.warning("mqtt: still cannot connect to %s: %s (%d attempts failed over %.0f s)", where, why, streak.failures, time.monotonic() - (streak.since or 0.0))

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        was_connected = self.connected.is_set()
        self.connected.clear()
        self.discovery.disconnected()
        refused, self._refused = self._refused, False
        if self._closing:
            log.debug("mqtt: disconnected (%s), shutting down", reason)
        elif was_connected:
            self._dropped(reason, time.monotonic())
        elif not refused:  # the socket opened, and closed before the broker answered
            self._connect_failed(f"the connection closed before the broker answered ({reason})")

    def _dropped(self, reason: Any, now: float) -> None:
        """A connection that was up went down: said at once, unless the broker keeps dropping the
        kiosk right after each connect; then the second such drop says why that may be, and the
        streak at most once per CONNECT_WARN_EVERY_S."""
        if now - self._connected_at >= SHORT_LIVED_S:
            self.drops.ended(now)
        elif (self.drops.failed(now) or self.drops.failures == 2) and self.drops.failures >= 2:
            log.warning(
                "mqtt: the broker dropped the connection right after it was made (%s), %d times in %.0f s: another client with this"
                " client id (mqtt.client_id, or edge-agent-<device.id>: two kiosks with one id?), or the broker's ACL refusing"
                " this kiosk's topics (on a locked-down broker its user must be its device.id); paho reconnects by itself",
                reason, self.drops.failures, now - (self.drops.since or now),
            )
            return
        elif self.drops.failures >= 2:  # the streak goes on: said at most once per CONNECT_WARN_EVERY_S
            return
        log.warning("mqtt: disconnected (%s); paho reconnects by itself", reason)

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        if msg.topic == f"{self.settings.discovery_prefix}/status":
            if msg.payload == b"online" and self._ha_answers.take(time.monotonic()):
                self.discovery.publish()
            return
        if not msg.payload:  # `mosquitto_pub -r -n`: a retained command cleared; nothing to run or answer
            return
        try:
            cmd = parse_command(bytes(msg.payload))
        except CommandError as exc:
            self._refuse({"id": exc.command_id, "ok": False, "error": str(exc)})
            return
        if msg.retain:  # replayed by the broker at every (re)connect: never acted on
            self._refuse({"id": cmd.id, "action": cmd.action, "ok": False, "error": "retained command ignored: publish commands without the retain flag"})
            return
        if not (self._pings if cmd.action == "ping" else self._commands).take(time.monotonic()):
            self._refuse({"id": cmd.id, "action": cmd.action, "ok": False, "error": f"too many commands: at most {1.0 / COMMAND_EVERY_S:.0f} a second after a burst of {COMMANDS_BURST}"})
            return
        self._on_command(cmd, self.result)

    def _refuse(self, reply: dict[str, Any]) -> None:
        """A command not acted on: counted, and answered within REFUSALS_BURST / REFUSAL_EVERY_S."""
        self.bad_commands += 1
        if self._refusals.take(time.monotonic()):
            self.result(reply)
        else:
            self.refusals_unanswered += 1

    # ------------------------------------------------------------------ publishing (any thread)
    def _publish(self, leaf: str, payload: dict[str, Any], retain: bool = False) -> bool:
        """False when the bounded queue was full and the message dropped (counted)."""
        if self._state_unsent and leaf != "state":  # the queue has room again, perhaps: the state first
            self._state_catch_up()
        info = self._client.publish(self.topic(leaf), json.dumps(payload, default=str), qos=self.settings.qos, retain=retain)
        if info.rc == mqtt.MQTT_ERR_QUEUE_SIZE:
            self.events_dropped += 1
            return False
        if leaf == "state" and self.settings.qos:
            with self._lock:
                self._states_out = [*(i for i in self._states_out if held(i)), info]
        return True

    def _state_catch_up(self) -> None:
        """The newest state again, after its publish was dropped: a retained state left behind would
        say `idle` to the fleet for as long as a conversation lasts."""
        with self._state_send:
            with self._lock:
                payload = dict(self._state)
            if self.connected.is_set():
                self._state_unsent = not self._publish("state", payload, retain=True)

    def send(self, topic: str, payload: bytes, retain: bool) -> bool:
        """Publishes on any topic (shared session pointers); paho queues it while offline.
        False when the bounded queue is full (counted as dropped)."""
        info = self._client.publish(topic, payload, qos=self.settings.qos, retain=retain)
        if info.rc == mqtt.MQTT_ERR_QUEUE_SIZE:
            self.events_dropped += 1
            return False
        return True

    def follow(self, topic_filter: str, handler: Callable[[str, bytes, bool], None]) -> None:
        """Hands every message matching `topic_filter` to `handler` (on paho's thread, guarded;
        with its retain flag: set on the copies the broker replays at a subscribe),
        subscribed now and again on every reconnect (retained messages then arrive again). Called
        while connected (a reload that adds an agent to follow), it subscribes at once: only the
        next reconnect would have."""
        self._client.message_callback_add(topic_filter, guarded(lambda c, u, m: handler(m.topic, bytes(m.payload), bool(m.retain))))
        self._followed.append(topic_filter)
        if self.connected.is_set():  # (a connect racing this subscribes it too: harmless, the same filter)
            self._client.subscribe(topic_filter, self.settings.qos)

    def online(self) -> bool:
        """Connected to the broker now (as far as paho knows)."""
        return self.connected.is_set()

    def when_connected(self, hook: Callable[[], None]) -> None:
        """Calls `hook` (on paho's thread, guarded) at every (re)connect, once subscribed."""
        self._connect_hooks.append(hook)

    def state(self, state: str, session_id: str | None, continued_from: str | None, slot: str | None = None) -> None:
        with self._state_send:
            with self._lock:
                self._state = {"state": state, "session_id": session_id, "continued_from": continued_from, "slot": slot, "since": _now_iso(), "version": __version__}
                payload = dict(self._state)
            if self.connected.is_set():  # offline: the newest state goes out on reconnect instead
                self._state_unsent = not self._publish("state", payload, retain=True)

    def event(self, kind: str, fields: dict[str, Any]) -> None:
        self._publish("event", {"event": kind, "at": _now_iso(), **fields})

    def metrics(self, values: dict[str, Any]) -> None:
        """The kiosk's metrics, with the reporter's own account of the broker link: what it could
        not send, what it refused, and how often the broker dropped it right after connecting."""
        if self.connected.is_set():
            values = {
                **values,
                "mqtt_connects": self.connects,
                "mqtt_events_dropped": self.events_dropped,
                "mqtt_commands_refused": self.bad_commands,
                "mqtt_refusals_unanswered": self.refusals_unanswered,
            }
            self._publish("metrics", values)  # (a state left unsent goes first)

    def result(self, payload: dict[str, Any]) -> None:
        self._publish("cmd/result", payload)


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")
