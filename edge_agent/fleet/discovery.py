"""Home Assistant MQTT discovery payloads: the kiosk as one device with sensors and buttons.

Retained config messages under `<discovery_prefix>/<component>/edge_agent_<id>/<object>/config`;
the reporter re-publishes them when Home Assistant announces itself on `<discovery_prefix>/status`.
The node id carries the device id verbatim, so distinct device ids never share topics or unique
ids. Entity ids are set with `default_entity_id` (Home Assistant 2025.10 and later) and the older
`object_id` (which earlier versions read and later ones ignore): `<component>.edge_agent_<slug>_<object>`
where the slug is the id lower-cased with `-` as `_`.

Earlier versions used the node `edge_agent_<id with - as _>`; `discovery_sync` finds what this
kiosk left there (or under an id it had before) and clears it.
"""

from __future__ import annotations

import re
from typing import Any

from edge_agent import __version__
from edge_agent.core.config_mqtt import MqttSettings
from edge_agent.core.conversation import STATES

METRIC_SENSORS = (
    # key in the metrics JSON, name, unit, device_class, state_class
    ("rtt_ms", "Agent RTT", "ms", "duration", "measurement"),
    ("response_latency_ms", "Response latency", "ms", "duration", "measurement"),
    ("cpu_percent", "CPU", "%", None, "measurement"),
    ("rss_mb", "Memory", "MB", "data_size", "measurement"),
    ("temperature_c", "CPU temperature", "°C", "temperature", "measurement"),
    ("uptime_s", "Uptime", "s", "duration", "total_increasing"),
    ("reconnects", "Agent reconnects", "reconnects", None, "total_increasing"),
    # the output device's own account (audio/devices.py SpeakerHealth); null with a file or null speaker
    ("speaker_underflows", "Speaker underflows", "underflows", None, "total_increasing"),
    ("speaker_errors", "Speaker errors", "errors", None, "total_increasing"),
    ("speaker_drops", "Speaker drops", "drops", None, "total_increasing"),
    ("speaker_drop_failures", "Speaker drop failures", "failures", None, "total_increasing"),
)
METRIC_PROBLEMS = (
    # object, name, template: ON is the problem, None (a null in the metrics) makes HA show unknown
    ("speaker_drop", "Speaker drop", "{{ 'None' if value_json.get('speaker_drop_on') is none else ('OFF' if value_json.speaker_drop_on else 'ON') }}"),
    ("echo_poor_room", "Echo room", "{{ 'None' if value_json.get('echo_poor_room') is none else ('ON' if value_json.echo_poor_room else 'OFF') }}"),
)
"""Binary sensors (device class `problem`) read from the metrics JSON. `speaker_drop_on` is false once
bad restarts turned the speaker's drop off (a problem), null where the speaker has none (file, null).
`echo_poor_room` is true in a room the echo canceller does not cope with (audio/echograde.py), null
with echo cancellation off."""
BUTTONS = (("resume", "Resume conversation"), ("new", "New conversation"), ("end", "End conversation"))

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
    for obj, name, template in METRIC_PROBLEMS:
        problem = {"name": name, "state_topic": f"{base}/metrics", "value_template": template, "payload_on": "ON", "payload_off": "OFF"}
        add("binary_sensor", obj, {**problem, "device_class": "problem", "entity_category": "diagnostic"})
    for action, name in BUTTONS:
        add("button", action, {"name": name, "command_topic": f"{base}/cmd", "payload_press": f'{{"action": "{action}"}}'})
    return out
