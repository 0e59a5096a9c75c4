"""Configuration: TOML file -> frozen dataclasses, one per section, validated once at start.

Every problem raises `ConfigError` naming the key (`section.key`), which the CLI reports as a
single line with exit code 78. Unknown keys inside a known section are errors (they are almost
always typos); unknown *sections* are logged and ignored, so a config written for a newer
edge-agent still starts an older one. The key names are a contract: see config/edge-agent.toml.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge_agent.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised only on Python 3.9/3.10
    import tomli as tomllib

log = logging.getLogger(__name__)

PUBLIC_KEY_ENV = "EDGE_AGENT_PUBLIC_KEY"
MQTT_PASSWORD_ENV = "EDGE_AGENT_MQTT_PASSWORD"
SECRET_KEYS = frozenset({"agent.public_key", "mqtt.password"})
"""Keys whose values are never shown, not even in the error about a wrongly typed value."""
DEFAULT_ENDPOINT = "wss://api-west.millis.ai:8080/millis"


class _Section:
    """Reads typed values out of one TOML table and remembers which keys were consumed."""

    def __init__(self, name: str, table: object) -> None:
        if not isinstance(table, dict):
            raise ConfigError(name, f"must be a table ([{name}]), got {type(table).__name__}")
        self.name = name
        self.table: dict[str, Any] = table
        self.seen: set[str] = set()

    def _get(self, key: str, default: object) -> object:
        self.seen.add(key)
        value: object = self.table.get(key, default)
        return value

    def key(self, key: str) -> str:
        return f"{self.name}.{key}"

    def _not_a_string(self, key: str, value: object) -> ConfigError:
        shown = f"a {type(value).__name__} (not shown: it is a secret)" if self.key(key) in SECRET_KEYS else repr(value)
        return ConfigError(self.key(key), f"must be a string, got {shown}")

    def text(self, key: str, default: str) -> str:
        value = self._get(key, default)
        if not isinstance(value, str):
            raise self._not_a_string(key, value)
        return value

    def opt_str(self, key: str) -> str | None:
        value = self._get(key, None)
        if value is None:
            return None
        if not isinstance(value, str):
            raise self._not_a_string(key, value)
        return value or None

    def flag(self, key: str, default: bool) -> bool:
        value = self._get(key, default)
        if not isinstance(value, bool):
            raise ConfigError(self.key(key), f"must be true or false, got {value!r}")
        return value

    def integer(self, key: str, default: int, lo: int, hi: int) -> int:
        value = self._get(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(self.key(key), f"must be a whole number, got {value!r}")
        if not lo <= value <= hi:
            raise ConfigError(self.key(key), f"must be between {lo} and {hi}, got {value}")
        return value

    def opt_int(self, key: str, lo: int, hi: int) -> int | None:
        if self.table.get(key) is None:
            self.seen.add(key)
            return None
        return self.integer(key, 0, lo, hi)

    def number(self, key: str, default: float, lo: float, hi: float) -> float:
        value = self._get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(self.key(key), f"must be a number, got {value!r}")
        if not lo <= value <= hi:
            raise ConfigError(self.key(key), f"must be between {lo} and {hi}, got {value}")
        return float(value)

    def choice(self, key: str, default: str, choices: tuple[str, ...]) -> str:
        value = self.text(key, default)
        if value not in choices:
            raise ConfigError(self.key(key), f"must be one of {', '.join(choices)}; got {value!r}")
        return value

    def table_of(self, key: str) -> dict[str, Any]:
        value = self._get(key, {})
        if not isinstance(value, dict):
            raise ConfigError(self.key(key), f"must be a table, got {value!r}")
        return dict(value)

    def done(self) -> None:
        """Reject keys nobody asked for: a typo must not silently fall back to a default."""
        unknown = sorted(set(self.table) - self.seen)
        if unknown:
            raise ConfigError(self.key(unknown[0]), "unknown key")


def _secret_from_file(key: str, path: str | None) -> str | None:
    if not path:
        return None
    try:
        text = Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(key, f"cannot read {path}: {exc.strerror or exc}") from None
    if not text:
        raise ConfigError(key, f"{path} is empty")
    return text


@dataclass(frozen=True)
class DeviceSettings:
    id: str
    state_dir: Path
    store_retry_s: float = 60.0
    """After a storage fault (lock, full disk, read-only card) the store runs in memory and
    tries the disk again this often."""

    @classmethod
    def read(cls, s: _Section) -> DeviceSettings:
        device_id = s.text("id", "") or socket.gethostname()
        if not device_id.replace("-", "").replace("_", "").isalnum():
            raise ConfigError(s.key("id"), f"use letters, digits, - and _ only (it is an MQTT topic level), got {device_id!r}")
        default_state = os.environ.get("STATE_DIRECTORY", "/var/lib/edge-agent").split(":")[0]
        return cls(
            id=device_id,
            state_dir=Path(s.text("state_dir", default_state)).expanduser(),
            store_retry_s=s.number("store_retry_s", 60.0, 1.0, 3600.0),
        )


@dataclass(frozen=True)
class AgentSettings:
    endpoint: str
    agent_id: str | None
    public_key: str | None = field(repr=False)
    include_metadata_in_prompt: bool
    metadata: dict[str, Any]
    config: dict[str, Any]
    ping_interval_s: float
    connect_timeout_s: float
    dead_after_s: float
    compression: bool
    """Offer permessage-deflate: gated silence then costs ~1 % of its bandwidth (see SilenceDeflate)."""
    warm_link: bool
    """Keep a connected socket standing by between conversations (see AgentLink.start_standby)."""
    warm_hold_s: float
    """How long a standby is held unused before it is replaced; shortened by itself when the
    server turns out to drop idle sockets sooner."""
    public_key_file: str | None = None

    @classmethod
    def read(cls, s: _Section) -> AgentSettings:
        endpoint = s.text("endpoint", DEFAULT_ENDPOINT)
        if not endpoint.startswith(("ws://", "wss://")):
            raise ConfigError(s.key("endpoint"), f"must start with wss:// (or ws:// for a local simulator), got {endpoint!r}")
        key = s.opt_str("public_key")
        key_path = s.opt_str("public_key_file")
        key_file = _secret_from_file(s.key("public_key_file"), key_path)
        key = os.environ.get(PUBLIC_KEY_ENV) or key or key_file
        settings = cls(
            endpoint=endpoint,
            agent_id=s.opt_str("agent_id"),
            public_key=key,
            include_metadata_in_prompt=s.flag("include_metadata_in_prompt", False),
            metadata=s.table_of("metadata"),
            config=s.table_of("config"),
            ping_interval_s=s.number("ping_interval_s", 5.0, 0.5, 120.0),
            connect_timeout_s=s.number("connect_timeout_s", 10.0, 0.5, 120.0),
            dead_after_s=s.number("dead_after_s", 15.0, 1.0, 600.0),
            compression=s.flag("compression", True),
            warm_link=s.flag("warm_link", False),
            warm_hold_s=s.number("warm_hold_s", 50.0, 1.0, 3600.0),
            public_key_file=key_path,
        )
        return settings

    @property
    def agent_key(self) -> str:
        """What sessions are filed under: the agent id, or 'inline' for a config-only agent."""
        return self.agent_id or "inline"

    def require_runnable(self) -> None:
        """Checks needed only to talk to an agent (not to list sessions or run the gate)."""
        if not self.public_key:
            raise ConfigError("agent.public_key", f"missing: set {PUBLIC_KEY_ENV}, agent.public_key or agent.public_key_file")
        if not self.agent_id and not self.config:
            raise ConfigError("agent.agent_id", "missing: set agent.agent_id or an [agent.config] table")


@dataclass(frozen=True)
class SessionSettings:
    resume: bool
    resume_within_s: float
    idle_timeout_s: float
    max_duration_s: float
    reconnect_window_s: float
    slot: str
    keep_sessions: int = 1000
    """The store keeps this many sessions (the newest); older ones are deleted."""

    @classmethod
    def read(cls, s: _Section) -> SessionSettings:
        return cls(
            resume=s.flag("resume", True),
            resume_within_s=s.number("resume_within_s", 7 * 86400.0, 0.0, 10 * 365 * 86400.0),
            idle_timeout_s=s.number("idle_timeout_s", 30.0, 1.0, 3600.0),
            max_duration_s=s.number("max_duration_s", 600.0, 5.0, 86400.0),
            reconnect_window_s=s.number("reconnect_window_s", 30.0, 0.0, 3600.0),
            slot=s.text("slot", "default") or "default",
            keep_sessions=s.integer("keep_sessions", 1000, 1, 1_000_000),
        )


@dataclass(frozen=True)
class AudioSettings:
    input: str
    output: str
    frame_ms: int
    capture_period_ms: int
    """Audio the microphone hands over at once (whole frames): the daemon wakes once per period,
    and a frame waits at most a period minus one frame before it is sent."""
    duplex: str
    duplex_tail_ms: int
    earcons: bool
    earcon_volume: float
    playback_buffer_ms: int
    backlog_ms: int = 5000
    """Most audio held from the press (or a lost link) until the agent is ready; the oldest
    beyond it is dropped and counted (metric held_dropped). 0 holds nothing."""

    @classmethod
    def read(cls, s: _Section) -> AudioSettings:
        frame_ms = s.integer("frame_ms", 30, 10, 30)
        if frame_ms not in (10, 20, 30):
            raise ConfigError(s.key("frame_ms"), f"must be 10, 20 or 30 (webrtcvad frame sizes), got {frame_ms}")
        period_ms = s.integer("capture_period_ms", 60, frame_ms, 120)
        if period_ms % frame_ms:
            raise ConfigError(s.key("capture_period_ms"), f"must be a whole number of frames ({frame_ms} ms each), got {period_ms}")
        return cls(
            input=s.text("input", "default"),
            output=s.text("output", "default"),
            frame_ms=frame_ms,
            capture_period_ms=period_ms,
            duplex=s.choice("duplex", "half", ("half", "full")),
            duplex_tail_ms=s.integer("duplex_tail_ms", 300, 0, 5000),
            earcons=s.flag("earcons", True),
            earcon_volume=s.number("earcon_volume", 0.3, 0.0, 1.0),
            playback_buffer_ms=s.integer("playback_buffer_ms", 20, 5, 500),
            backlog_ms=s.integer("backlog_ms", 5000, 0, 30000),
        )


@dataclass(frozen=True)
class VadSettings:
    engine: str
    aggressiveness: int
    preroll_ms: int
    hangover_ms: int
    min_speech_ms: int

    @classmethod
    def read(cls, s: _Section) -> VadSettings:
        return cls(
            engine=s.choice("engine", "edge", ("edge", "webrtcvad", "silero")),
            aggressiveness=s.integer("aggressiveness", 2, 0, 3),
            preroll_ms=s.integer("preroll_ms", 300, 0, 2000),
            hangover_ms=s.integer("hangover_ms", 600, 0, 5000),
            min_speech_ms=s.integer("min_speech_ms", 90, 0, 1000),
        )


@dataclass(frozen=True)
class ButtonSettings:
    source: str
    pin: int
    pull_up: bool
    bounce_s: float
    hold_s: float
    mode: str

    @classmethod
    def read(cls, s: _Section) -> ButtonSettings:
        return cls(
            source=s.choice("source", "gpio", ("gpio", "keyboard", "none")),
            pin=s.integer("pin", 17, 0, 53),
            pull_up=s.flag("pull_up", True),
            bounce_s=s.number("bounce_s", 0.05, 0.0, 1.0),
            hold_s=s.number("hold_s", 1.5, 0.2, 10.0),
            mode=s.choice("mode", "toggle", ("toggle", "hold")),
        )


@dataclass(frozen=True)
class LedSettings:
    pin: int | None
    red: int | None
    green: int | None
    blue: int | None

    @classmethod
    def read(cls, s: _Section) -> LedSettings:
        return cls(pin=s.opt_int("pin", 0, 53), red=s.opt_int("red", 0, 53), green=s.opt_int("green", 0, 53), blue=s.opt_int("blue", 0, 53))


@dataclass(frozen=True)
class LogSettings:
    level: str

    @classmethod
    def read(cls, s: _Section) -> LogSettings:
        return cls(level=s.choice("level", "info", ("debug", "info", "warning", "error")))


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
    metrics_interval_s: float
    password_file: str | None = None

    @classmethod
    def read(cls, s: _Section) -> MqttSettings:
        password_path = s.opt_str("password_file")
        password = os.environ.get(MQTT_PASSWORD_ENV) or s.opt_str("password") or _secret_from_file(s.key("password_file"), password_path)
        prefix = s.text("topic_prefix", "edge-agent").strip("/")
        if not prefix or any(c in prefix for c in "+#"):
            raise ConfigError(s.key("topic_prefix"), f"must be a non-empty topic without + or #, got {prefix!r}")
        return cls(
            enabled=s.flag("enabled", False),
            host=s.text("host", "localhost"),
            port=s.integer("port", 1883, 1, 65535),
            username=s.opt_str("username"),
            password=password,
            tls=s.flag("tls", False),
            ca_file=s.opt_str("ca_file"),
            cert_file=s.opt_str("cert_file"),
            key_file=s.opt_str("key_file"),
            tls_insecure=s.flag("tls_insecure", False),
            client_id=s.opt_str("client_id"),
            keepalive_s=s.integer("keepalive_s", 30, 5, 3600),
            qos=s.integer("qos", 1, 0, 2),
            topic_prefix=prefix,
            discovery_prefix=s.text("discovery_prefix", "homeassistant").strip("/"),
            discovery=s.flag("discovery", True),
            metrics_interval_s=s.number("metrics_interval_s", 30.0, 1.0, 86400.0),
            password_file=password_path,
        )


SECTIONS: dict[str, Any] = {
    "device": DeviceSettings,
    "agent": AgentSettings,
    "session": SessionSettings,
    "audio": AudioSettings,
    "vad": VadSettings,
    "button": ButtonSettings,
    "led": LedSettings,
    "log": LogSettings,
    "mqtt": MqttSettings,
}
"""Section name -> settings class. A new section is one dataclass with `read` and one line here."""


@dataclass(frozen=True)
class Settings:
    device: DeviceSettings
    agent: AgentSettings
    session: SessionSettings
    audio: AudioSettings
    vad: VadSettings
    button: ButtonSettings
    led: LedSettings
    log: LogSettings
    mqtt: MqttSettings
    source: Path | None = None
    inline_secrets: tuple[str, ...] = ()
    """Secret keys written into the config file itself (so the file must be private)."""


def from_dict(data: dict[str, Any], source: Path | None = None) -> Settings:
    """Validates a parsed TOML document; raises ConfigError naming the first bad key."""
    for name in data:
        if name not in SECTIONS:
            log.warning("config: ignoring section [%s]: not known to this edge-agent version", name)
    sections = {}
    for name, cls in SECTIONS.items():
        reader = _Section(name, data.get(name, {}))
        sections[name] = cls.read(reader)
        reader.done()
    return Settings(**sections, source=source, inline_secrets=_inline_secrets(data))


def _inline_secrets(data: dict[str, Any]) -> tuple[str, ...]:
    found = []
    for key in sorted(SECRET_KEYS):
        section, name = key.split(".")
        table = data.get(section)
        if isinstance(table, dict) and table.get(name):
            found.append(key)
    return tuple(found)


def load(path: str | Path | None) -> Settings:
    """Reads and validates the config file; no file (None) means all defaults."""
    if path is None:
        return from_dict({})
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise ConfigError(str(p), f"cannot read config file: {exc.strerror or exc}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(str(p), f"not valid TOML: {exc}") from None
    return from_dict(data, source=p)
