"""Settings of the kiosk's MQTT link (`[mqtt]`): broker, TLS, topics, Home Assistant discovery.

Read once at start like every section (core/config.py builds them all); the topic prefixes are
checked here because a wildcard in one breaks every subscription of the connection.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace

from edge_agent.core.tomlsection import BadValue, Section, secret_from_file, url_or_none

MQTT_PASSWORD_ENV = "EDGE_AGENT_MQTT_PASSWORD"


def topic_prefix_problem(prefix: str) -> str | None:
    """Why `prefix` cannot be a topic prefix (the kiosk's, `fleet --prefix`), or None. A wildcard
    (or NUL) in it broke every subscription of the connection (the discovery prefix's did: no
    availability, no commands, one traceback); a leading `$` is the broker's own ($SYS, $share):
    mosquitto dropped every publish under `$SYS/...` while the kiosk logged "connected", and under
    `$share/<group>` its command subscription became a shared one outside the prefix."""
    if not prefix or any(c in prefix for c in "+#\0"):
        return f"must be a non-empty topic without + or #, got {prefix!r}"
    if prefix.startswith("$"):
        return f"must not start with $ (the broker's own topics, $SYS and $share), got {prefix!r}"
    return _name_problem(prefix)


def _topic_prefix(s: Section, key: str, default: str) -> str:
    """A topic the kiosk subscribes under (`topic_prefix_problem`)."""
    prefix = s.text(key, default).strip("/")
    problem = topic_prefix_problem(prefix)
    if problem:
        raise BadValue(s.key(key), problem)
    return prefix


MAX_NAME_BYTES = 256
"""A topic prefix or client id longer than this (UTF-8) is no kiosk's: over 65 535 bytes paho's
network thread died on it (struct.error) and MQTT stayed dead for the life of the process."""


def _name_problem(value: str) -> str | None:
    """A control or format character (a TAB, a newline, a bidi override) in a topic prefix made the
    broker refuse the will topic (the kiosk never connected) or drop the connection at every
    publish (availability flapping once a second); a client id is no place for one either."""
    if not value.isprintable():
        return f"must be printable text (no control or format characters), got {value!r}"
    if len(value.encode("utf-8")) > MAX_NAME_BYTES:
        return f"must be at most {MAX_NAME_BYTES} bytes, got {len(value.encode('utf-8'))}"
    return None


def _client_id(s: Section) -> str | None:
    value = s.opt_str("client_id")
    problem = None if value is None else _name_problem(value)
    if problem:
        raise BadValue(s.key("client_id"), problem)
    return value


@dataclass(frozen=True)
class MqttSettings:
    enabled: bool
    host: str
    port: int
    username: str | None
    password: str | None = field(repr=False)
    tls: bool
    ca_file: str | None
    cert_file: str | None
    key_file: str | None
    tls_insecure: bool
    client_id: str | None
    keepalive_s: int
    qos: int
    topic_prefix: str
    discovery_prefix: str
    discovery: bool
    support_url: str | None
    """Where the discovery `origin` block points Home Assistant users for help (optional)."""
    metrics_interval_s: float
    password_file: str | None = None

    @classmethod
    def read(cls, s: Section) -> MqttSettings:
        password_path = s.opt_str("password_file")  # read by `with_password`, only where the broker is talked to
        password = os.environ.get(MQTT_PASSWORD_ENV) or s.opt_str("password")
        prefix = _topic_prefix(s, "topic_prefix", "edge-agent")
        return cls(
            enabled=s.flag("enabled", False),
            host=s.required_text("host", "localhost", "the broker"),
            port=s.integer("port", 1883, 1, 65535),
            username=s.opt_str("username"),
            password=password,
            tls=s.flag("tls", False),
            ca_file=s.opt_str("ca_file"),
            cert_file=s.opt_str("cert_file"),
            key_file=s.opt_str("key_file"),
            tls_insecure=s.flag("tls_insecure", False),
            client_id=_client_id(s),
            keepalive_s=s.integer("keepalive_s", 30, 5, 3600),
            qos=s.integer("qos", 1, 0, 2),
            topic_prefix=prefix,
            discovery_prefix=_topic_prefix(s, "discovery_prefix", "homeassistant"),
            discovery=s.flag("discovery", True),
            support_url=url_or_none(s, "support_url"),
            metrics_interval_s=s.number("metrics_interval_s", 30.0, 1.0, 86400.0),
            password_file=password_path,
        )

    def with_password(self) -> MqttSettings:
        """These settings with the password read from `password_file` when no other is set
        (EDGE_AGENT_MQTT_PASSWORD, then mqtt.password win). Only what talks to the broker reads
        the file (run, doctor, fleet), so `sessions` or `gate` work for a user who may not read
        it; ConfigError naming mqtt.password_file when it cannot be read or is empty."""
        if self.password or not self.password_file:
            return self
        return replace(self, password=secret_from_file("mqtt.password_file", self.password_file))
