"""Home Assistant MQTT discovery: the kiosk as one device with sensors and buttons, and the
clean-up of discovery configs it published before under another id or with discovery since off.

Retained config messages under `<discovery_prefix>/<component>/edge_agent_<id>/<object>/config`;
the reporter re-publishes them when Home Assistant announces itself on `<discovery_prefix>/status`.
The node id carries the device id verbatim, so distinct device ids never share topics or unique
ids. Entity ids are set with `default_entity_id` (Home Assistant 2025.10 and later) and the older
`object_id` (which earlier versions read and later ones ignore): `<component>.edge_agent_<slug>_<object>`
where the slug is the id lower-cased with `-` as `_`.

Earlier versions used the node `edge_agent_<id with - as _>`; `DiscoverySync` finds what this kiosk
left there (or under an id it had before, see `DiscoveryLedger`) and clears it, telling its own
configs from another kiosk's by the device identifier inside the payload.
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_agent import __version__
from edge_agent.core.config import MqttSettings
from edge_agent.core.conversation import STATES

log = logging.getLogger(__name__)

METRIC_SENSORS = (
    # key in the metrics JSON, name, unit, device_class, state_class
    ("rtt_ms", "Agent RTT", "ms", "duration", "measurement"),
    ("response_latency_ms", "Response latency", "ms", "duration", "measurement"),
    ("cpu_percent", "CPU", "%", None, "measurement"),
    ("rss_mb", "Memory", "MB", "data_size", "measurement"),
    ("temperature_c", "CPU temperature", "°C", "temperature", "measurement"),
    ("uptime_s", "Uptime", "s", "duration", "total_increasing"),
    ("reconnects", "Agent reconnects", "reconnects", None, "total_increasing"),
)
BUTTONS = (("resume", "Resume conversation"), ("new", "New conversation"), ("end", "End conversation"))
LEDGER_FILE = "mqtt-discovery.json"
MAX_REMEMBERED_IDS = 8

Message = tuple[str, dict[str, Any]]


def node_id(device_id: str) -> str:
    return f"edge_agent_{device_id}"


def legacy_node_id(device_id: str) -> str:
    """The node id earlier versions used: lossy (`kiosk-1` and `kiosk_1` shared it)."""
    return f"edge_agent_{device_id.replace('-', '_')}"


def device_identifier(device_id: str) -> str:
    """The Home Assistant device identifier (unchanged since the first release)."""
    return f"edge-agent-{device_id}"


def entity_slug(device_id: str) -> str:
    """The device id as Home Assistant entity ids spell it: lower case, `_` for `-`, no `__`."""
    return re.sub("_+", "_", device_id.lower().replace("-", "_"))


def discovery_messages(settings: MqttSettings, device_id: str) -> list[Message]:
    """Every (topic, config) this kiosk publishes, retained; empty when discovery is off."""
    if not settings.discovery:
        return []
    base = f"{settings.topic_prefix}/{device_id}"
    node = node_id(device_id)
    slug = f"edge_agent_{entity_slug(device_id)}"
    device = {"identifiers": [device_identifier(device_id)], "name": f"Kiosk {device_id}", "model": "edge-agent voice kiosk", "manufacturer": "edge-agent", "sw_version": __version__}
    origin = {"name": "edge-agent", "sw_version": __version__}
    if settings.support_url:
        origin["support_url"] = settings.support_url
    avail = {"availability_topic": f"{base}/availability", "payload_available": "online", "payload_not_available": "offline"}
    out: list[Message] = []

    def add(component: str, obj: str, config: dict[str, Any], with_availability: bool = True) -> None:
        payload = {
            "unique_id": f"{node}_{obj}",
            "default_entity_id": f"{component}.{slug}_{obj}",
            "object_id": f"{slug}_{obj}",  # Home Assistant before 2025.10
            "device": device,
            "origin": origin,
            "qos": settings.qos,
            **config,
        }
        if with_availability:
            payload.update(avail)
        out.append((f"{settings.discovery_prefix}/{component}/{node}/{obj}/config", payload))

    state = {"name": "State", "state_topic": f"{base}/state", "value_template": "{{ value_json.state }}", "json_attributes_topic": f"{base}/state", "icon": "mdi:account-voice"}
    add("sensor", "state", {**state, "device_class": "enum", "options": list(STATES)})
    add("binary_sensor", "online", {"name": "Online", "state_topic": f"{base}/availability", "payload_on": "online", "payload_off": "offline", "device_class": "connectivity"}, with_availability=False)
    for key, name, unit, device_class, state_class in METRIC_SENSORS:
        cfg: dict[str, Any] = {"name": name, "state_topic": f"{base}/metrics", "value_template": f"{{{{ value_json.{key} }}}}", "entity_category": "diagnostic"}
        cfg.update(unit_of_measurement=unit, state_class=state_class)
        if device_class:
            cfg["device_class"] = device_class
        add("sensor", key, cfg)
    for action, name in BUTTONS:
        add("button", action, {"name": name, "command_topic": f"{base}/cmd", "payload_press": f'{{"action": "{action}"}}'})
    return out


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
    return len(a) == len(b) and all(x in ("+", y) for x, y in zip(a, b))


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
        self.cleared: list[str] = []

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
                self.cleared.append(topic)
                return True
        return False

    def still_to_watch(self, current: Owner | None) -> list[Owner]:
        """Owners to look under again next time: the current one, and old ones that still had
        stale configs this pass (their clearing is confirmed only by a pass that finds none)."""
        keep = [o for o in self.owners if o != current and self.found.get(o)]
        return ([current] if current else []) + keep[: MAX_REMEMBERED_IDS - 1]


class DiscoveryLedger:
    """The owners this kiosk published discovery under, kept in `<state_dir>/mqtt-discovery.json`
    so a renamed kiosk (or one with a new discovery prefix) finds its old configs.

    A missing or unreadable file means "only the current owner"; a write that fails (full or
    read-only SD card) is logged and retried next connect, never fatal.
    """

    def __init__(self, state_dir: Path | None) -> None:
        self.path = state_dir / LEDGER_FILE if state_dir else None

    def load(self) -> list[Owner]:
        if self.path is None:
            return []
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            owners = [Owner(str(p), str(d)) for p, d in data["owners"]]
        except FileNotFoundError:
            return []
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("mqtt: ignoring %s: %s", self.path, exc)
            return []
        return owners[:MAX_REMEMBERED_IDS]

    def save(self, owners: list[Owner]) -> None:
        if self.path is None or owners == self.load():
            return
        tmp = self.path.with_suffix(".tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps({"owners": [[o.prefix, o.device_id] for o in owners]}), encoding="utf-8")
            os.replace(tmp, self.path)
        except OSError as exc:
            log.warning("mqtt: cannot write %s: %s", self.path, exc)


def owners_to_check(settings: MqttSettings, device_id: str, remembered: list[Owner]) -> tuple[Owner, list[Owner]]:
    """The current owner and everything to look under at connect (current first, no repeats)."""
    current = Owner(settings.discovery_prefix, device_id)
    return current, [current, *[o for o in remembered if o != current]]
