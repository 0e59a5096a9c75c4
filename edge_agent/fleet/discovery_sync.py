"""Clearing the Home Assistant discovery configs a kiosk published before and no longer means:
discovery turned off, device renamed, discovery prefix changed, or the lossy node id of earlier
versions (`edge_agent_<id with - as _>`, shared by `kiosk-1` and `kiosk_1`).

The broker is the source of truth. At each connect `DiscoveryCleanup` subscribes to this kiosk's
discovery nodes (current id, the ids it had before as remembered in the state dir, each also under
its legacy node), then unsubscribes: the broker sends every retained message before the UNSUBACK
(subscribed at QoS 0: at QoS 1 those past the broker's in-flight window came after it). Retained
configs that are not current and name this kiosk's device identifier are cleared (empty retained
payload) at the UNSUBACK; another kiosk's configs on a shared legacy node are left alone, and so
are those of an id this kiosk had before that another kiosk is online under now (its retained
availability `online`, watched in the same pass): a new kiosk given a renamed one's old id. Only
then are the current configs published, so Home Assistant removes an old entity before its
replacement asks for the same entity id.
"""

from __future__ import annotations

import errno
import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from edge_agent.core.config import DEVICE_ID_RE
from edge_agent.core.config_mqtt import MAX_NAME_BYTES, MqttSettings
from edge_agent.core.logs import printable
from edge_agent.core.statefiles import LEDGER_FILE as LEDGER_FILE
from edge_agent.core.statefiles import make_private_dir, read_small_file, write_private
from edge_agent.fleet.discovery import Message, device_identifier, discovery_messages, legacy_node_id, node_id

log = logging.getLogger(__name__)

MAX_REMEMBERED_IDS = 8
LEDGER_MAX_BYTES = 65536
"""Far more than MAX_REMEMBERED_IDS owners take: a bigger file is not the ledger and is not read."""


@dataclass(frozen=True)
class Owner:
    """A (discovery prefix, device id) this kiosk published discovery under, now or before."""

    prefix: str
    device_id: str

    def filters(self) -> list[str]:
        nodes = sorted({node_id(self.device_id), legacy_node_id(self.device_id)})
        return [f"{self.prefix}/+/{n}/+/config" for n in nodes]

    def owns(self, payload: dict[str, Any]) -> bool:
        device = payload.get("device")
        ids = device.get("identifiers") if isinstance(device, dict) else None
        ids = [ids] if isinstance(ids, str) else ids
        return isinstance(ids, list) and device_identifier(self.device_id) in ids


def _matches(sub: str, topic: str) -> bool:
    """MQTT filter match for filters with `+` only (the ones `Owner.filters` makes)."""
    a, b = sub.split("/"), topic.split("/")
    return len(a) == len(b) and all(x in ("+", y) for x, y in zip(a, b, strict=True))


class DiscoverySync:
    """One pass per connection: subscribe to `filters`, feed every retained message to `offer`,
    clear the topics it returns True for, and publish the current configs after the pass.

    A config is stale when its topic is not one of the current ones and its payload names one of
    this kiosk's device identifiers (another kiosk's config on a shared legacy node is left alone).
    Pure: no MQTT here.
    """

    def __init__(self, current: list[Message], owners: list[Owner]) -> None:
        self.current_topics = {t for t, _ in current}
        self.owners = owners
        self.filters = sorted({f for o in owners for f in o.filters()})
        self.found: dict[Owner, int] = {o: 0 for o in owners}
        self.stale: list[tuple[str, Owner]] = []
        """Stale configs found this pass, cleared at its end (`to_clear`)."""
        self.taken: set[str] = set()
        """Old device ids another kiosk is online under now (`taken_by_another`)."""

    def offer(self, topic: str, payload: bytes) -> bool:
        if topic in self.current_topics or not payload:
            return False
        try:
            data = json.loads(payload)
        except (ValueError, RecursionError):
            return False
        if not isinstance(data, dict):
            return False
        for owner in self.owners:
            if owner.owns(data) and any(_matches(f, topic) for f in owner.filters()):
                self.found[owner] += 1
                self.stale.append((topic, owner))
                return True
        return False

    def taken_by_another(self, device_id: str) -> None:
        """An id this kiosk had before is online now, another kiosk's (its retained availability
        says `online`, which the broker holds only while that kiosk is connected): a new kiosk
        given a renamed one's old id. Its configs are that kiosk's, not stale ones of ours."""
        self.taken.add(device_id)

    def to_clear(self) -> list[str]:
        """The stale configs to clear, at the end of the pass (another kiosk's left alone)."""
        return [topic for topic, owner in self.stale if owner.device_id not in self.taken]

    def still_to_watch(self, current: Owner | None) -> list[Owner]:
        """Owners to look under again next time: the current one, and old ones that still had
        stale configs this pass (their clearing is confirmed only by a pass that finds none); an
        old id another kiosk has taken is forgotten (its configs were cleared at every reconnect)."""
        keep = [o for o in self.owners if o != current and self.found.get(o) and o.device_id not in self.taken]
        return ([current] if current else []) + keep[: MAX_REMEMBERED_IDS - 1]

    def availability_topics(self, prefix: str, device_id: str) -> dict[str, str]:
        """The availability topic (under `prefix`) of each old id of this kiosk: topic -> id."""
        return {f"{prefix}/{o.device_id}/availability": o.device_id for o in self.owners if o.device_id != device_id}


def _usable(owner: Owner) -> bool:
    """A prefix and device id the config would take: a wildcard in the file's (a damaged or
    edited ledger) made the clean-up's subscribe raise in paho's connect callback, and the
    discovery configs were never published again (Home Assistant lost the kiosk)."""
    prefix = owner.prefix
    return bool(prefix) and not any(c in prefix for c in "+#") and prefix.isprintable() and len(prefix.encode()) <= MAX_NAME_BYTES and bool(DEVICE_ID_RE.fullmatch(owner.device_id))


PASSING_READ_ERRORS = frozenset({errno.EIO, errno.EAGAIN, errno.EBUSY, errno.EINTR, errno.EMFILE, errno.ENFILE, errno.ENOMEM})
"""Read errors that say nothing of the file (the card, the process): the ledger is kept for a read
that works. Others (EACCES: a file of root's) have it written over, so that it heals."""


class DiscoveryLedger:
    """The owners this kiosk published discovery under, kept in `<state_dir>/mqtt-discovery.json`
    so a renamed kiosk (or one with a new discovery prefix) finds its old configs.

    A missing or unreadable file means "only the current owner"; a write that fails (full or
    read-only SD card) is logged and retried next connect, never fatal. A file that could not be
    read for a passing reason (an I/O error, PASSING_READ_ERRORS) is not written over: the owners in it were lost to a
    passing read error, and a renamed kiosk's old configs stayed in Home Assistant for good.
    """

    def __init__(self, state_dir: Path | None) -> None:
        self.path = state_dir / LEDGER_FILE if state_dir else None

    def load(self) -> list[Owner]:
        return self._read() or []

    def _read(self) -> list[Owner] | None:
        """The owners in the file ([] for none, or one damaged); None when a passing read error kept it from being read."""
        if self.path is None:
            return []
        try:
            data = json.loads(read_small_file(self.path, LEDGER_MAX_BYTES).decode("utf-8"))
            owners = [Owner(str(p), str(d)) for p, d in data["owners"]]
        except FileNotFoundError:
            return []
        except OSError as exc:
            if exc.errno not in PASSING_READ_ERRORS:  # a file it may not read (root's, from an older
                log.warning("mqtt: ignoring %s: %s", self.path, exc)  # version): written over, as before
                return []
            log.warning("mqtt: cannot read %s (kept as it is): %s", self.path, exc.strerror or exc)
            return None
        except (ValueError, KeyError, TypeError, RecursionError) as exc:
            log.warning("mqtt: ignoring %s: %s", self.path, exc)
            return []
        sound = [o for o in owners if _usable(o)]
        if len(sound) < len(owners):
            log.warning("mqtt: ignoring %d entries of %s that are no discovery prefix and device id", len(owners) - len(sound), self.path)
        return sound[:MAX_REMEMBERED_IDS]

    def save(self, owners: list[Owner]) -> None:
        on_disk = self._read()
        if self.path is None or on_disk is None or owners == on_disk:
            return
        try:
            make_private_dir(self.path.parent)
            write_private(self.path, json.dumps({"owners": [[o.prefix, o.device_id] for o in owners]}))
        except OSError as exc:
            log.warning("mqtt: cannot write %s: %s", self.path, exc)


class DiscoveryCleanup:
    """The paho side of one kiosk's discovery: a clean-up pass per connection, then publishing.

    Runs in paho's network thread (the reporter forwards on_connect, on_subscribe, on_unsubscribe);
    `guard` wraps the per-topic message callback so an exception cannot kill that thread.
    """

    def __init__(self, client: mqtt.Client, settings: MqttSettings, device_id: str, state_dir: Path | None, guard: Callable[..., Any]) -> None:
        self.client = client
        self.settings = settings
        self.device_id = device_id
        self.ledger = DiscoveryLedger(state_dir)
        self.synced = threading.Event()
        self._guard = guard
        self._sync: DiscoverySync | None = None
        self._callbacks: list[str] = []  # the filters this connection's pass added callbacks for
        self._watched: dict[str, str] = {}  # old ids' availability topics watched this pass -> id
        self._mids: tuple[int | None, int | None] = (None, None)  # (subscribe, unsubscribe) of this connection's pass

    def connected(self) -> None:
        self.synced.clear()
        current = Owner(self.settings.discovery_prefix, self.device_id)
        owners = [current, *[o for o in self.ledger.load() if o != current]]
        for old in self._callbacks:
            self.client.message_callback_remove(old)
        self._sync = sync = DiscoverySync(discovery_messages(self.settings, self.device_id), owners)
        # the old ids' availability too: one another kiosk is online under is no longer ours
        self._watched = sync.availability_topics(self.settings.topic_prefix, self.device_id)
        for sub in sync.filters:
            self.client.message_callback_add(sub, self._guard(self._on_retained))
        for topic in self._watched:
            self.client.message_callback_add(topic, self._guard(self._on_availability))
        self._callbacks = [*sync.filters, *self._watched]
        # at QoS 0: retained messages at QoS 1 beyond the broker's in-flight window (mosquitto's
        # max_inflight_messages, 20) waited there while the UNSUBACK went ahead of them, so the pass
        # ended before it had seen them all (a kiosk with both its configs and stale ones retained)
        _, mid = self.client.subscribe([(f, 0) for f in self._callbacks])
        self._mids = (mid, None)

    def disconnected(self) -> None:
        self.synced.clear()

    def subscribed(self, mid: int) -> None:
        if self._sync is not None and mid == self._mids[0]:
            _, unsub_mid = self.client.unsubscribe(self._callbacks)
            self._mids = (mid, unsub_mid)

    def _on_retained(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        sync = self._sync
        if sync is not None and msg.retain:
            sync.offer(msg.topic, bytes(msg.payload))  # cleared at the pass's end (`unsubscribed`)

    def _on_availability(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        sync, old_id = self._sync, self._watched.get(msg.topic)
        if sync is not None and old_id is not None and msg.retain and msg.payload == b"online":
            sync.taken_by_another(old_id)

    def unsubscribed(self, mid: int) -> None:
        sync = self._sync
        if sync is None or mid != self._mids[1]:
            return
        for old_id in sorted(sync.taken):
            log.info("mqtt: another kiosk is online as %s, this kiosk's id before: its discovery configs are left alone", old_id)
        for topic in sync.to_clear():
            log.info("mqtt: clearing stale discovery config %s", printable(topic, 300))  # anyone's topic: no line separators or bidi overrides in the log
            self.client.publish(topic, b"", qos=self.settings.qos, retain=True)
        current = Owner(self.settings.discovery_prefix, self.device_id) if self.settings.discovery else None
        self.ledger.save(sync.still_to_watch(current))
        self.synced.set()
        self.publish()

    def publish(self) -> None:
        """The current configs, retained; also when Home Assistant announces itself. Before the
        connection's clean-up pass has ended this waits for it (the pass publishes at its end)."""
        if not self.synced.is_set():
            return
        for topic, payload in discovery_messages(self.settings, self.device_id):
            self.client.publish(topic, json.dumps(payload), qos=self.settings.qos, retain=True)
