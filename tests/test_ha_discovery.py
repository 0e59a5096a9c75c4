"""Home Assistant discovery: payloads checked against what HA's MQTT discovery accepts, ids that
stay distinct, and stale configs cleared from a real mosquitto.

The schema table below is written from Home Assistant's MQTT documentation (integrations/mqtt,
sensor.mqtt, binary_sensor.mqtt, button.mqtt; the sensor device-class / unit / state-class table
of integrations/sensor) as of HA 2025.10: every key we may send, its type, and the allowed values.
Discovery schemas drop unknown keys (`extra=REMOVE_EXTRA`), so an older HA ignores the newer keys
(`default_entity_id`); a key outside this table is a typo HA would silently ignore, hence an error here.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from conftest import Broker, KioskThread, Observer, kiosk_settings, wait_for

from edge_agent.core import config
from edge_agent.core.conversation import STATES
from edge_agent.devtools.simulator import AgentSimulator
from edge_agent.errors import ConfigError
from edge_agent.fleet.discovery import discovery_messages
from edge_agent.fleet.discovery_sync import LEDGER_FILE
from edge_agent.fleet.status import StatusReporter

# ----------------------------------------------------------------------------- HA's schema, from its docs
STR, INT, BOOL, LIST, DICT = str, int, bool, list, dict
ENTITY_COMMON: dict[str, Any] = {
    "availability": LIST, "availability_mode": ("all", "any", "latest"), "availability_template": STR, "availability_topic": STR,
    "default_entity_id": STR, "device": DICT, "enabled_by_default": BOOL, "encoding": STR, "entity_category": ("config", "diagnostic"),
    "entity_picture": STR, "icon": STR, "json_attributes_template": STR, "json_attributes_topic": STR, "name": STR,
    "object_id": STR, "origin": DICT, "payload_available": STR, "payload_not_available": STR, "qos": (0, 1, 2), "unique_id": STR,
}  # fmt: skip
SENSOR_DEVICE_CLASSES = (
    "apparent_power", "aqi", "area", "atmospheric_pressure", "battery", "blood_glucose_concentration", "carbon_dioxide", "carbon_monoxide",
    "conductivity", "current", "data_rate", "data_size", "date", "distance", "duration", "energy", "energy_distance", "energy_storage", "enum",
    "frequency", "gas", "humidity", "illuminance", "irradiance", "moisture", "monetary", "nitrogen_dioxide", "nitrogen_monoxide", "nitrous_oxide",
    "ozone", "ph", "pm1", "pm10", "pm25", "power", "power_factor", "precipitation", "precipitation_intensity", "pressure", "reactive_energy",
    "reactive_power", "signal_strength", "sound_pressure", "speed", "sulphur_dioxide", "temperature", "timestamp", "volatile_organic_compounds",
    "volatile_organic_compounds_parts", "voltage", "volume", "volume_flow_rate", "volume_storage", "water", "weight", "wind_direction", "wind_speed",
)  # fmt: skip
PLATFORMS: dict[str, tuple[set[str], dict[str, Any]]] = {
    # platform: (required keys, platform keys)
    "sensor": ({"state_topic"}, {
        "state_topic": STR, "value_template": STR, "device_class": SENSOR_DEVICE_CLASSES, "expire_after": INT, "force_update": BOOL,
        "last_reset_value_template": STR, "options": LIST, "suggested_display_precision": INT,
        "state_class": ("measurement", "measurement_angle", "total", "total_increasing"), "unit_of_measurement": STR,
    }),
    "binary_sensor": ({"state_topic"}, {
        "state_topic": STR, "value_template": STR, "expire_after": INT, "force_update": BOOL, "off_delay": INT, "payload_on": STR, "payload_off": STR,
        "device_class": ("battery", "battery_charging", "carbon_monoxide", "cold", "connectivity", "door", "garage_door", "gas", "heat", "light",
                         "lock", "moisture", "motion", "moving", "occupancy", "opening", "plug", "power", "presence", "problem", "running", "safety",
                         "smoke", "sound", "tamper", "update", "vibration", "window"),
    }),
    "button": ({"command_topic"}, {
        "command_topic": STR, "command_template": STR, "payload_press": STR, "retain": BOOL, "device_class": ("identify", "restart", "update"),
    }),
}  # fmt: skip
DEVICE_KEYS = {"configuration_url", "connections", "hw_version", "identifiers", "manufacturer", "model", "model_id", "name", "serial_number", "suggested_area", "sw_version", "via_device"}
ORIGIN_KEYS = {"name", "sw_version", "support_url"}
# units and state classes HA accepts for the device classes we use (sensor docs' table)
UNITS = {"duration": {"d", "h", "min", "s", "ms", "µs"}, "temperature": {"°C", "°F", "K"}, "data_size": {"bit", "kbit", "Mbit", "Gbit", "B", "kB", "MB", "GB", "TB", "KiB", "MiB", "GiB"}}
STATE_CLASSES = {"duration": {"measurement", "total", "total_increasing"}, "temperature": {"measurement"}, "data_size": {"measurement", "total", "total_increasing"}}
DISCOVERY_TOPIC = re.compile(r"(?P<component>\w+)/(?:(?P<node_id>[a-zA-Z0-9_-]+)/)?(?P<object_id>[a-zA-Z0-9_-]+)/config")
ENTITY_ID = re.compile(r"(?!.+__)(?!_)[\da-z_]+(?<!_)\.(?!_)[\da-z_]+(?<!_)")  # HA's valid_entity_id
TOPIC_CHARS = re.compile(r"[^+#\x00]+")


def check_against_ha(topic: str, payload: dict[str, Any], prefix: str = "homeassistant") -> list[str]:
    """Every way `payload` on `topic` breaks HA's discovery rules (empty: HA accepts it)."""
    problems: list[str] = []
    m = DISCOVERY_TOPIC.fullmatch(topic.removeprefix(prefix + "/"))
    if not topic.startswith(prefix + "/") or not m or m["component"] not in PLATFORMS:
        return [f"{topic}: not a discovery topic HA reads"]
    component = m["component"]
    required, own = PLATFORMS[component]
    allowed = {**ENTITY_COMMON, **own}
    for key in required - set(payload):
        problems.append(f"missing {key}")
    for key, value in payload.items():
        rule = allowed.get(key)
        if rule is None:
            problems.append(f"{key}: not a {component} key")
        elif isinstance(rule, tuple):
            if value not in rule:
                problems.append(f"{key}: {value!r} not one of HA's values")
        elif not isinstance(value, rule) or (rule is INT and isinstance(value, bool)):
            problems.append(f"{key}: {type(value).__name__}, HA wants {rule.__name__}")
    if "availability" in payload and "availability_topic" in payload:
        problems.append("availability and availability_topic are exclusive")
    for key in ("state_topic", "command_topic", "availability_topic", "json_attributes_topic"):
        if key in payload and not TOPIC_CHARS.fullmatch(str(payload[key])):
            problems.append(f"{key}: not a valid topic")
    if "default_entity_id" in payload:
        eid = str(payload["default_entity_id"])
        if not ENTITY_ID.fullmatch(eid) or not eid.startswith(component + "."):
            problems.append(f"default_entity_id {eid!r}: not a {component} entity id")
    device = payload.get("device", {})
    if set(device) - DEVICE_KEYS or not (device.get("identifiers") or device.get("connections")):
        problems.append(f"device: {sorted(device)}")
    origin = payload.get("origin", {})
    if set(origin) - ORIGIN_KEYS or "name" not in origin or not str(origin.get("support_url", "https://")).startswith(("http://", "https://")):
        problems.append(f"origin: {origin}")
    # sensor rules (HA's validate_sensor_state_and_device_class_config and the unit table)
    dc, unit, sc = payload.get("device_class"), payload.get("unit_of_measurement"), payload.get("state_class")
    if "options" in payload and (dc != "enum" or sc or unit or not payload["options"] or not all(isinstance(o, str) for o in payload["options"])):
        problems.append("options need device_class enum, no state_class, no unit, a non-empty list of strings")
    if component == "sensor" and dc == "enum" and "options" not in payload:
        problems.append("an enum sensor lists its options")
    if component == "sensor" and dc in UNITS and (unit not in UNITS[dc] or (sc and sc not in STATE_CLASSES[dc])):
        problems.append(f"{dc}: unit {unit!r} / state_class {sc!r} not accepted")
    return problems


def settings(**mqtt: Any) -> config.MqttSettings:
    return config.from_dict({"mqtt": {"enabled": True, **mqtt}}).mqtt


# ----------------------------------------------------------------------------- payloads
@pytest.mark.parametrize("device_id", ["kiosk-7", "Lobby_2", "a", "x-y_z9", "k" * 63])
def test_every_payload_is_what_home_assistant_accepts(device_id: str) -> None:
    msgs = discovery_messages(settings(support_url="https://kiosks.example/help"), device_id)
    assert len(msgs) == 18
    for topic, payload in msgs:
        assert check_against_ha(topic, payload) == [], topic
    assert check_against_ha("homeassistant/sensor/x/y/config", {"state_topic": "a", "state_class": "sometimes"}) != []  # the checker bites


def test_entity_ids_qos_statistics_enum_and_origin() -> None:
    msgs = dict(discovery_messages(settings(qos=2), "kiosk-7"))
    # the entity ids the README promises, on every HA version: default_entity_id (2025.10+) and object_id (before)
    state = msgs["homeassistant/sensor/edge_agent_kiosk-7/state/config"]
    assert state["default_entity_id"] == "sensor.edge_agent_kiosk_7_state" and state["object_id"] == "edge_agent_kiosk_7_state"
    assert state["device_class"] == "enum" and state["options"] == list(STATES) and "state_class" not in state
    for topic, p in msgs.items():
        component = topic.split("/")[1]
        assert p["default_entity_id"] == f"{component}.{p['object_id']}"
        assert p["qos"] == 2  # HA subscribes and presses buttons at the kiosk's QoS
        assert p["origin"] == {"name": "edge-agent", "sw_version": p["device"]["sw_version"]}
    assert msgs["homeassistant/button/edge_agent_kiosk-7/resume/config"]["default_entity_id"] == "button.edge_agent_kiosk_7_resume"
    classes = {t.split("/")[3]: (p.get("state_class"), p.get("unit_of_measurement")) for t, p in msgs.items() if t.startswith("homeassistant/sensor/")}
    assert classes == {
        "state": (None, None), "rtt_ms": ("measurement", "ms"), "response_latency_ms": ("measurement", "ms"), "cpu_percent": ("measurement", "%"),
        "rss_mb": ("measurement", "MB"), "temperature_c": ("measurement", "°C"), "uptime_s": ("total_increasing", "s"),
        "reconnects": ("total_increasing", "reconnects"), "speaker_underflows": ("total_increasing", "underflows"),
        "speaker_errors": ("total_increasing", "errors"), "speaker_drops": ("total_increasing", "drops"), "speaker_drop_failures": ("total_increasing", "failures"),
    }  # fmt: skip
    assert discovery_messages(settings(discovery=False), "kiosk-7") == []


def test_speaker_health_is_diagnostic_counters_and_a_problem_that_can_be_unknown() -> None:
    msgs = dict(discovery_messages(settings(), "kiosk-7"))
    for key in ("speaker_underflows", "speaker_errors", "speaker_drops", "speaker_drop_failures"):
        p = msgs[f"homeassistant/sensor/edge_agent_kiosk-7/{key}/config"]
        assert p["state_topic"] == "edge-agent/kiosk-7/metrics" and p["value_template"] == f"{{{{ value_json.{key} }}}}", key
        assert p["state_class"] == "total_increasing" and p["entity_category"] == "diagnostic" and "device_class" not in p, key
    drop = msgs["homeassistant/binary_sensor/edge_agent_kiosk-7/speaker_drop/config"]
    assert drop["default_entity_id"] == "binary_sensor.edge_agent_kiosk_7_speaker_drop" and drop["state_topic"] == "edge-agent/kiosk-7/metrics"
    assert drop["device_class"] == "problem" and drop["entity_category"] == "diagnostic"
    # HA's MQTT binary sensor: the rendered template equal to payload_on is on (here: a problem), to
    # payload_off off, and "None" unknown; anything else is ignored with a warning. speaker_drop_on is
    # true (fine), false (bad restarts turned the drop off: the problem) or null (a file or null
    # speaker has no drop: unknown, not "no problem"). jinja2 is not a dependency here, so the
    # template is pinned; script/ha-live-check renders it in a real Home Assistant.
    assert (drop["payload_on"], drop["payload_off"]) == ("ON", "OFF")
    assert drop["value_template"] == "{{ 'None' if value_json.get('speaker_drop_on') is none else ('OFF' if value_json.speaker_drop_on else 'ON') }}"
    # a room the echo canceller does not cope with: on when echo_poor_room is true, unknown with echo cancellation off (null)
    echo = msgs["homeassistant/binary_sensor/edge_agent_kiosk-7/echo_poor_room/config"]
    assert echo["default_entity_id"] == "binary_sensor.edge_agent_kiosk_7_echo_poor_room" and echo["device_class"] == "problem"
    assert echo["value_template"] == "{{ 'None' if value_json.get('echo_poor_room') is none else ('ON' if value_json.echo_poor_room else 'OFF') }}"


def test_distinct_device_ids_never_share_topics_unique_ids_or_devices() -> None:
    ids = ["kiosk-1", "kiosk_1", "Kiosk-1", "kiosk1"]
    seen_topics: set[str] = set()
    seen_unique: set[str] = set()
    seen_devices: set[str] = set()
    for device_id in ids:
        msgs = discovery_messages(settings(), device_id)
        topics = {t for t, _ in msgs}
        unique = {p["unique_id"] for _, p in msgs}
        devices = {json.dumps(p["device"]["identifiers"]) for _, p in msgs}
        assert not topics & seen_topics and not unique & seen_unique and not devices & seen_devices, device_id
        seen_topics |= topics
        seen_unique |= unique
        seen_devices |= devices


@pytest.mark.parametrize("device_id", ["küche-1", "kiosk 1", "a/b", "a+b", "k#", "-kiosk", "kiosk_", "k" * 64, "キオスク"])
def test_device_ids_home_assistant_or_mqtt_would_refuse_are_config_errors(device_id: str) -> None:
    with pytest.raises(ConfigError) as err:
        config.from_dict({"device": {"id": device_id}})
    assert err.value.key == "device.id"


@pytest.mark.parametrize("device_id", ["kiosk-1", "kiosk_1", "Lobby2", "a", "k" * 63])
def test_device_ids_that_work_everywhere_are_accepted(device_id: str) -> None:
    assert config.from_dict({"device": {"id": device_id}}).device.id == device_id


def test_an_unset_device_id_is_the_host_names_first_label(monkeypatch: pytest.MonkeyPatch) -> None:
    """The default id is the host name; a dotted one (`kiosk.lan`) stopped the kiosk with exit 78
    over a key its config never set (found by a newcomer). Its first label is taken; a host name
    that makes no id even so asks for device.id, saying where the value came from."""
    import os

    real = os.uname()

    def host(name: str) -> None:
        monkeypatch.setattr(os, "uname", lambda: os.uname_result((real.sysname, name, real.release, real.version, real.machine)))

    host("kiosk.lan")
    assert config.from_dict({}).device.id == "kiosk"
    host("lobby-3")
    assert config.from_dict({}).device.id == "lobby-3"
    host("-bad-.lan")
    with pytest.raises(ConfigError, match=r"host name '-bad-\.lan'") as err:
        config.from_dict({})
    assert err.value.key == "device.id"


def test_support_url_must_be_a_web_address() -> None:
    with pytest.raises(ConfigError) as err:
        settings(support_url="kiosks.example")
    assert err.value.key == "mqtt.support_url"
    assert discovery_messages(settings(support_url="https://k.example/"), "k1")[0][1]["origin"]["support_url"] == "https://k.example/"


# ----------------------------------------------------------------------------- clean-up on a real broker
def retained(port: int, topics: str = "homeassistant/#") -> dict[str, bytes]:
    """What a subscriber arriving now gets as retained messages: all of them (a marker published
    after the subscription comes after them), never the part that came within a fixed sleep."""
    obs = Observer(port, topics)
    try:
        obs.settle()
        return {t: p for t, p, r, _ in obs.received() if r}
    finally:
        obs.close()


def run_reporter(port: int, device_id: str, state_dir: Path, **mqtt: Any) -> StatusReporter:
    s = settings(host="127.0.0.1", port=port, **mqtt)
    reporter = StatusReporter(s, device_id, lambda cmd, reply: None, state_dir=state_dir)
    reporter.start()
    wait_for(reporter.discovery.synced.is_set, 10, f"{device_id}'s discovery pass")
    return reporter


def wait_retained(port: int, pred: Any, what: str) -> dict[str, bytes]:
    def hit() -> list[dict[str, bytes]] | None:
        now = retained(port)
        return [now] if pred(now) else None  # a list: an empty dict is an answer too

    return wait_for(hit, 15, what)[0]  # type: ignore[no-any-return]


def test_turning_discovery_off_and_renaming_clear_what_was_published(tmp_path: Path, broker: Broker) -> None:
    state = tmp_path / "state"
    first = run_reporter(broker.port, "kiosk-7", state)
    wait_retained(broker.port, lambda r: len(r) == 18, "18 retained configs")
    first.close()
    # renamed: the new id's configs replace the old id's (the old id is remembered in the state dir)
    second = run_reporter(broker.port, "lobby-2", state)
    now = wait_retained(broker.port, lambda r: len(r) == 18 and all("edge_agent_lobby-2" in t for t in r), "only lobby-2's configs")
    assert all(b'"edge-agent-lobby-2"' in p for p in now.values())
    second.close()
    assert json.loads((state / LEDGER_FILE).read_text())["owners"][0] == ["homeassistant", "lobby-2"]
    # discovery off: nothing of this kiosk stays in Home Assistant
    third = run_reporter(broker.port, "lobby-2", state, discovery=False)
    wait_retained(broker.port, lambda r: not r, "no retained discovery config")
    third.close()


def test_a_renamed_kiosk_daemon_clears_its_old_device(tmp_path: Path, sim: AgentSimulator, broker: Broker) -> None:
    """The same through the daemon, as an operator renames a kiosk (`device.id`) and restarts it:
    the daemon built its reporter without the state dir, so nothing remembered the old id and its
    18 configs stayed retained beside the new ones (two devices in Home Assistant)."""
    mqtt = {"enabled": True, "host": "127.0.0.1", "port": broker.port, "discovery": True, "metrics_interval_s": 3600.0}
    for device_id in ("kiosk-7", "lobby-2"):
        settings = kiosk_settings(tmp_path, sim.url, mqtt=mqtt)
        settings = replace(settings, device=replace(settings.device, id=device_id))
        with KioskThread(settings) as k:
            wait_for(k.kiosk.reporter.discovery.synced.is_set, 20, f"{device_id}'s discovery pass")  # type: ignore[attr-defined]
    now = wait_retained(broker.port, lambda r: len(r) == 18 and all("edge_agent_lobby-2" in t for t in r), "only lobby-2's configs")
    assert not [t for t in now if "kiosk-7" in t]


def test_legacy_configs_are_cleared_first_and_another_kiosks_are_left_alone(tmp_path: Path, broker: Broker) -> None:
    """Before this release `kiosk-7` published under node `edge_agent_kiosk_7`, shared with a kiosk `kiosk_7`."""
    seeder = Observer(broker.port, "seed/none")
    legacy = "homeassistant/sensor/edge_agent_kiosk_7/{}/config"
    old_ours = {"unique_id": "edge_agent_kiosk_7_rtt_ms", "state_topic": "edge-agent/kiosk-7/metrics", "device": {"identifiers": ["edge-agent-kiosk-7"]}}
    theirs = {"unique_id": "edge_agent_kiosk_7_state", "state_topic": "edge-agent/kiosk_7/state", "device": {"identifiers": ["edge-agent-kiosk_7"]}}
    wait_for(seeder.client.is_connected, 20, "the seeding client")
    for topic, payload in ((legacy.format("rtt_ms"), json.dumps(old_ours)), (legacy.format("state"), json.dumps(theirs)),
                           ("homeassistant/sensor/edge_agent_kiosk-7/junk/config", "not json {"), ("homeassistant/sensor/edge_agent_kiosk-7/list/config", "[1]")):  # fmt: skip
        seeder.client.publish(topic, payload, qos=1, retain=True).wait_for_publish(5)
    watcher = Observer(broker.port, "homeassistant/#")
    try:
        wait_for(lambda: len(watcher.messages) >= 4, 20, "the seeded configs")
        mark = len(watcher.messages)
        reporter = run_reporter(broker.port, "kiosk-7", tmp_path / "state")
        now = wait_retained(broker.port, lambda r: "homeassistant/button/edge_agent_kiosk-7/end/config" in r, "the new configs")
        reporter.close()
        assert legacy.format("rtt_ms") not in now  # ours: cleared
        assert json.loads(now[legacy.format("state")]) == theirs  # kiosk_7's: untouched
        assert now["homeassistant/sensor/edge_agent_kiosk-7/junk/config"] == b"not json {"  # not provably ours: untouched
        # Home Assistant sees the old entity removed before its replacement asks for the same entity id
        order = [t for t, p, _, _ in watcher.messages[mark:] if t in (legacy.format("rtt_ms"), "homeassistant/sensor/edge_agent_kiosk-7/rtt_ms/config")]
        assert order[0] == legacy.format("rtt_ms") and watcher.find(legacy.format("rtt_ms"), mark)[0] == b""
    finally:
        watcher.close()
        seeder.close()


def test_a_stale_config_on_a_forged_topic_is_cleared_and_logged_printable(tmp_path: Path, broker: Broker, caplog: pytest.LogCaptureFixture) -> None:
    """A retained config naming this kiosk on a topic with a line separator or a bidi override in a
    level (the broker refuses only C0/C1 controls there) went into the log as it was."""
    seeder = Observer(broker.port, "seed/none")
    wait_for(seeder.client.is_connected, 20, "the seeding client")
    ours = json.dumps({"device": {"identifiers": ["edge-agent-kiosk-7"]}})
    forged = ["homeassistant/sensor\u2028x/edge_agent_kiosk-7/a/config", "homeassistant/sensor\u202eRLO/edge_agent_kiosk-7/b/config"]
    try:
        for topic in forged:
            seeder.client.publish(topic, ours, qos=1, retain=True).wait_for_publish(5)
        with caplog.at_level(logging.INFO, logger="edge_agent"):
            reporter = run_reporter(broker.port, "kiosk-7", tmp_path / "state")
            now = wait_retained(broker.port, lambda r: not any(t in r for t in forged), "the forged configs cleared")
            reporter.close()
        assert not any(t in now for t in forged)
        cleared = [r.getMessage() for r in caplog.records if "clearing stale discovery config" in r.getMessage()]
        assert len(cleared) == 2 and all(m.isprintable() and ("sensor?x" in m or "sensor?RLO" in m) for m in cleared), cleared
    finally:
        seeder.close()


def test_an_unwritable_state_dir_does_not_stop_discovery(tmp_path: Path, broker: Broker) -> None:
    blocker = tmp_path / "state"
    blocker.write_text("a file where the state dir should be")
    reporter = run_reporter(broker.port, "kiosk-7", blocker)
    try:
        wait_retained(broker.port, lambda r: len(r) == 18, "18 retained configs")
    finally:
        reporter.close()


def test_a_ledger_naming_a_wildcard_prefix_does_not_stop_discovery(tmp_path: Path, broker: Broker) -> None:
    """`mqtt-discovery.json` (damaged, or edited by the service user) naming a prefix with a
    wildcard: the clean-up's subscribe raised in paho's connect callback and the kiosk's
    discovery configs were never published (an attacker's suspicion, confirmed here). Such
    entries are ignored; a sound one in the same file is still cleaned up."""
    state = tmp_path / "state"
    first = run_reporter(broker.port, "kiosk-7", state)
    wait_retained(broker.port, lambda r: len(r) == 18, "kiosk-7's 18 configs")
    first.close()
    owners = [["home/#", "x"], ["ha+", "y"], ["homeassistant", "bad id!"], ["homeassistant", "kiosk-7"]]
    (state / LEDGER_FILE).write_text(json.dumps({"owners": owners}))
    second = run_reporter(broker.port, "lobby-2", state)
    try:
        wait_retained(broker.port, lambda r: len(r) == 18 and all("edge_agent_lobby-2" in t for t in r), "only lobby-2's configs")
    finally:
        second.close()


def test_a_running_kiosk_publishes_every_metric_its_entities_read(tmp_path: Path, sim: AgentSimulator, broker: Broker) -> None:
    """A kiosk (file microphone, null speaker) on a real mosquitto: every entity reading the metrics
    topic names a key of the metrics the kiosk publishes, and every speaker health figure has one."""
    s = kiosk_settings(tmp_path, sim.url, mqtt={"enabled": True, "host": "127.0.0.1", "port": broker.port, "metrics_interval_s": 1.0})
    obs = Observer(broker.port, "edge-agent/test-kiosk/metrics")
    try:
        with KioskThread(s) as k:
            wait_for(k.kiosk.reporter.discovery.synced.is_set, 15, "the kiosk's discovery pass")
            metrics = json.loads(obs.wait("edge-agent/test-kiosk/metrics"))
            configs = {t: json.loads(p) for t, p in wait_retained(broker.port, lambda r: len(r) == 18, "18 retained configs").items()}
    finally:
        obs.close()
    read = {t: re.findall(r"value_json(?:\.get\('|\.)(\w+)", c["value_template"]) for t, c in configs.items() if c.get("state_topic") == "edge-agent/test-kiosk/metrics"}
    assert all(keys and set(keys) <= set(metrics) for keys in read.values()), {t: keys for t, keys in read.items() if not set(keys) <= set(metrics)}
    speaker = {key for key in metrics if key.startswith("speaker_")}
    assert speaker == {"speaker_underflows", "speaker_errors", "speaker_drops", "speaker_drop_failures", "speaker_drop_on"}
    assert speaker <= {key for keys in read.values() for key in keys}
    assert all(metrics[key] is None for key in speaker)  # the null speaker keeps no account: HA shows unknown
