"""Home Assistant MQTT discovery: the kiosk as one device with sensors and buttons.

Retained config messages under `<discovery_prefix>/<component>/<node>/<object>/config`; the
reporter re-publishes them when Home Assistant announces itself on `<discovery_prefix>/status`.
"""

from __future__ import annotations

from typing import Any

from edge_agent import __version__
from edge_agent.core.config import MqttSettings

METRIC_SENSORS = (
    # key in the metrics JSON, name, unit, device_class
    ("rtt_ms", "Agent RTT", "ms", "duration"),
    ("response_latency_ms", "Response latency", "ms", "duration"),
    ("cpu_percent", "CPU", "%", None),
    ("rss_mb", "Memory", "MB", None),
    ("temperature_c", "CPU temperature", "°C", "temperature"),
    ("uptime_s", "Uptime", "s", "duration"),
    ("reconnects", "Agent reconnects", None, None),
)
BUTTONS = (("resume", "Resume conversation"), ("new", "New conversation"), ("end", "End conversation"))


def discovery_messages(settings: MqttSettings, device_id: str) -> list[tuple[str, dict[str, Any]]]:
    base = f"{settings.topic_prefix}/{device_id}"
    node = f"edge_agent_{device_id}".replace("-", "_")
    device = {"identifiers": [f"edge-agent-{device_id}"], "name": f"Kiosk {device_id}", "model": "edge-agent voice kiosk", "manufacturer": "edge-agent", "sw_version": __version__}
    avail = {"availability_topic": f"{base}/availability", "payload_available": "online", "payload_not_available": "offline"}
    out: list[tuple[str, dict[str, Any]]] = []

    def add(component: str, obj: str, config: dict[str, Any], with_availability: bool = True) -> None:
        payload = {"unique_id": f"{node}_{obj}", "object_id": f"{node}_{obj}", "device": device, **config}
        if with_availability:
            payload.update(avail)
        out.append((f"{settings.discovery_prefix}/{component}/{node}/{obj}/config", payload))

    add("sensor", "state", {"name": "State", "state_topic": f"{base}/state", "value_template": "{{ value_json.state }}", "json_attributes_topic": f"{base}/state", "icon": "mdi:account-voice"})
    add("binary_sensor", "online", {"name": "Online", "state_topic": f"{base}/availability", "payload_on": "online", "payload_off": "offline", "device_class": "connectivity"}, with_availability=False)
    for key, name, unit, device_class in METRIC_SENSORS:
        cfg: dict[str, Any] = {"name": name, "state_topic": f"{base}/metrics", "value_template": f"{{{{ value_json.{key} }}}}", "entity_category": "diagnostic"}
        if unit:
            cfg["unit_of_measurement"] = unit
        if device_class:
            cfg["device_class"] = device_class
        add("sensor", key, cfg)
    for action, name in BUTTONS:
        add("button", action, {"name": name, "command_topic": f"{base}/cmd", "payload_press": f'{{"action": "{action}"}}'})
    return out
