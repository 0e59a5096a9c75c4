"""Configuration: TOML file -> frozen dataclasses, one per section, validated once at start.

Every problem raises `ConfigError` naming the key (`section.key`), which the CLI reports as a
single line with exit code 78. Unknown keys inside a known section are errors (they are almost
always typos); unknown *sections* are logged and ignored, so a config written for a newer
edge-agent still starts an older one. The key names are a contract: see config/edge-agent.toml.
"""

from __future__ import annotations

import logging
import os
import re
import stat
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

from edge_agent.core.config_agent import DEFAULT_ENDPOINT as DEFAULT_ENDPOINT  # re-exported: the config's names
from edge_agent.core.config_agent import EXAMPLE_AGENT_ID as EXAMPLE_AGENT_ID
from edge_agent.core.config_agent import EXAMPLE_BUTTON_AGENT_ID, AgentSettings
from edge_agent.core.config_agent import EXAMPLE_PUBLIC_KEY as EXAMPLE_PUBLIC_KEY
from edge_agent.core.config_agent import PUBLIC_KEY_ENV as PUBLIC_KEY_ENV
from edge_agent.core.config_audio import AudioSettings, VadSettings
from edge_agent.core.config_hardware import BadgeSettings, ButtonSettings, ExtraButton, LedSettings, check_gpio_pins, read_buttons
from edge_agent.core.config_mqtt import MQTT_PASSWORD_ENV, MqttSettings
from edge_agent.core.configguard import DOTTED_KEYS_MAX_COST, dotted_cost, oversized_ints
from edge_agent.core.slots import BADGE_KEY_PREFIX, DEFAULT_SLOT, MAX_SLOT_CHARS, is_label
from edge_agent.core.statefiles import read_regular
from edge_agent.core.tomlsection import SECRET_KEYS, BadValue, Section, closest, read_section
from edge_agent.errors import SHOWN_MAX, ConfigError

log = logging.getLogger(__name__)
T = TypeVar("T")

DEVICE_ID_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9])?")
"""What a device id may be: ASCII letters, digits, - and _ (what Home Assistant's discovery topics
accept for a node id, and safe as an MQTT topic level and a broker user name), 1 to 63 characters
like a host name label, starting and ending with a letter or digit (so never `_sessions`, the
shared sessions' topic level)."""
DEVICE_ID_RULE = "1-63 ASCII letters, digits, - and _, starting and ending with a letter or digit"
"""`DEVICE_ID_RE` in words, for every message refusing an id (config, provision, broker-acl)."""
SHARED_SESSIONS_LEVEL = "_sessions"
"""Topic level under mqtt.topic_prefix where shared session pointers live (not a device id)."""
INSTALLED_CONFIG = Path("/etc/edge-agent/config.toml")
"""The config script/install writes and systemd/edge-agent.service runs with (`run -c`): what
`run` and `doctor` read when not given `-c` and it exists (see `installed_or_none`)."""
CONFIG_MAX_BYTES = 1024 * 1024
"""A kiosk's config is a few kB; a larger file at the path is not one (and is not read whole)."""



@dataclass(frozen=True)
class DeviceSettings:
    id: str
    state_dir: Path
    store_retry_s: float = 60.0
    """After a storage fault (lock, full disk, read-only card) the store runs in memory and
    tries the disk again this often."""

    @classmethod
    def read(cls, s: Section) -> DeviceSettings:
        device_id = s.text("id", "")
        if not device_id:  # the host name's first label (`kiosk` of `kiosk.lan`), without importing socket
            host = os.uname().nodename
            device_id = host.split(".")[0]
            if not DEVICE_ID_RE.fullmatch(device_id):
                raise ConfigError(s.key("id"), f"not set, and the host name {host!r} is no device id: set device.id to {DEVICE_ID_RULE}")
        if not DEVICE_ID_RE.fullmatch(device_id):
            raise BadValue(s.key("id"), f"use {DEVICE_ID_RULE} (an MQTT topic level and a Home Assistant node id), got {device_id!r}")
        default_state = os.environ.get("STATE_DIRECTORY", "").split(":")[0] or "/var/lib/edge-agent"  # set but empty: unset
        state_dir = s.required_text("state_dir", default_state, "a directory")
        try:
            home_expanded = Path(state_dir).expanduser()
        except RuntimeError:  # `~nosuchuser/...`: was `unexpected error` (exit 70, restarted by systemd)
            raise BadValue(s.key("state_dir"), f"{state_dir!r} starts with the home directory of a user there is none of") from None
        return cls(
            id=device_id,
            state_dir=home_expanded,
            store_retry_s=s.number("store_retry_s", 60.0, 1.0, 3600.0),
        )

    def require_state_dir(self) -> None:
        """ConfigError when `state_dir` is there but no directory (a file): a mistake in the
        config, which `run` ran through with its sessions in memory, saying 'File exists'. A state
        dir not there yet is made by the store (for the service by systemd's StateDirectory=);
        one that cannot be made or written stays a storage fault the kiosk runs through."""
        try:
            mode = self.state_dir.stat().st_mode
        except OSError:  # not there, or not to be looked into: the store says why, and runs on
            return
        if not stat.S_ISDIR(mode):
            what = "is a file, not a directory" if stat.S_ISREG(mode) else "is not a directory"
            raise ConfigError("device.state_dir", f"{self.state_dir} {what} (the kiosk keeps its sessions database in it)")


@dataclass(frozen=True)
class SessionSettings:
    resume: bool
    resume_within_s: float
    idle_timeout_s: float
    max_duration_s: float
    reconnect_window_s: float
    slot: str
    share: bool
    """Publish the newest session of each (agent, slot) to the broker and follow the others'."""
    slot_metadata_key: str | None
    """When set, `initiate` metadata carries {key: slot key}, so the agent can tell returning
    people apart without knowing who they are."""
    keep_sessions: int = 1000
    """The store keeps this many sessions (the newest); older ones are deleted."""
    start_burst: int = 10
    """Conversation starts allowed at once (a token bucket, whatever asks: button or MQTT)..."""
    starts_per_minute: float = 6.0
    """... and the rate it refills at: a flood of presses cannot open a socket each."""
    max_reconnects: int = 10
    """Times one conversation may be reconnected (each a new session) before a loss ends it."""

    @classmethod
    def read(cls, s: Section) -> SessionSettings:
        slot = s.text("slot", DEFAULT_SLOT) or DEFAULT_SLOT
        if not is_label(slot) or slot.startswith(BADGE_KEY_PREFIX):
            raise BadValue(s.key("slot"), f"use 1-{MAX_SLOT_CHARS} letters, digits, '_', '.' or '-', not starting with {BADGE_KEY_PREFIX!r} (badge holders'), got {slot!r}")
        return cls(
            resume=s.flag("resume", True),
            resume_within_s=s.number("resume_within_s", 7 * 86400.0, 0.0, 10 * 365 * 86400.0),
            idle_timeout_s=s.number("idle_timeout_s", 30.0, 1.0, 3600.0),
            max_duration_s=s.number("max_duration_s", 600.0, 5.0, 86400.0),
            reconnect_window_s=s.number("reconnect_window_s", 30.0, 0.0, 3600.0),
            slot=slot,
            share=s.flag("share", False),
            slot_metadata_key=s.opt_str("slot_metadata_key"),
            keep_sessions=s.integer("keep_sessions", 1000, 1, 1_000_000),
            start_burst=s.integer("start_burst", 10, 1, 1000),
            starts_per_minute=s.number("starts_per_minute", 6.0, 0.1, 600.0),
            max_reconnects=s.integer("max_reconnects", 10, 0, 1000),
        )


@dataclass(frozen=True)
class LogSettings:
    level: str
    transcripts: bool
    """Log what visitors and the agent said at INFO; off, it is logged only at DEBUG."""

    @classmethod
    def read(cls, s: Section) -> LogSettings:
        return cls(level=s.choice("level", "info", ("debug", "info", "warning", "error")), transcripts=s.flag("transcripts", False))


SECTIONS: dict[str, Any] = {
    "device": DeviceSettings,
    "agent": AgentSettings,
    "session": SessionSettings,
    "audio": AudioSettings,
    "vad": VadSettings,
    "button": ButtonSettings,
    "badge": BadgeSettings,
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
    badge: BadgeSettings
    led: LedSettings
    log: LogSettings
    mqtt: MqttSettings
    source: Path | None = None
    inline_secrets: tuple[str, ...] = ()
    """Secret keys written into the config file itself (so the file must be private)."""
    buttons: tuple[ExtraButton, ...] = ()
    ignored_sections: tuple[str, ...] = ()
    """Sections of the file this version does not know, each as a line saying so (with the known
    section it is closest to): read past with a warning, since a newer version's config may hold
    them, and shown by `doctor` as WARN lines, since a typo (`[vda]`) leaves its whole section at
    the defaults; and the keys read past (`ignored_keys`)."""


def unknown_sections(data: dict[str, Any]) -> list[str]:
    """A line for each section of a parsed TOML document this version does not know, with the
    known one it is closest to; ConfigError for a key outside any section. At most SHOWN_MAX
    lines, then one saying how many more: a 1 MiB file of 100000 unknown sections logged 100000
    warnings and held a reload (the kiosk's event loop, mid-conversation) for 13 s."""
    unknown = []
    for name, value in data.items():
        if name not in SECTIONS and name != "buttons" and not isinstance(value, dict):
            raise ConfigError(name, "a key outside any section: put it under its [section] (see config/edge-agent.toml)")
        if name not in SECTIONS and name != "buttons":
            unknown.append(name)
    ignored = []
    for name in unknown[:SHOWN_MAX]:
        close = closest(name, [*SECTIONS, "buttons"])
        ignored.append(f"ignoring section [{name}]: not known to this edge-agent version" + (f" (did you mean [{close}]?)" if close else ""))
    if len(unknown) > SHOWN_MAX:
        ignored.append(f"ignoring {len(unknown) - SHOWN_MAX} more sections not known to this edge-agent version")
    return ignored


def ignored_keys(data: dict[str, Any], given: dict[str, Any] | None = None) -> list[str]:
    """A line for each key of a parsed TOML document the kiosk reads past: an `[mqtt]` password (or
    the one in the environment) with no username (MQTT sends a password only with a user name; it
    was left out without a word and the broker refused the kiosk). A warning, not an error: such a kiosk on a broker that lets
    anyone in runs, and must not stop at an upgrade. Likewise a TLS file or `tls_insecure` beside
    `tls = false`: the kiosk connected in plain text, the CA file unused, with nothing said.
    `given`: `[mqtt]` keys a command's own options set (`fleet --username admin`, `--tls`): what
    they answer is no key read past (fleet said its env password and the CA file it used were ignored)."""
    mqtt = data.get("mqtt")
    if not isinstance(mqtt, dict) or mqtt.get("enabled") is not True:
        return []
    mqtt = {**mqtt, **(given or {})}
    passwords: list[str] = []
    if not mqtt.get("username"):  # the environment's too (the service's Environment=): left out as silently
        passwords = [f"mqtt.{key}" for key in ("password", "password_file") if mqtt.get(key)] + ([MQTT_PASSWORD_ENV] if os.environ.get(MQTT_PASSWORD_ENV) else [])
    lines = [f"ignoring {name}: MQTT sends a password only with a user name, and mqtt.username is not set" for name in passwords]
    if mqtt.get("tls") is not True:
        lines += [f"ignoring mqtt.{key}: used only with mqtt.tls = true (the kiosk connects without TLS)" for key in ("ca_file", "cert_file", "key_file", "tls_insecure") if mqtt.get(key)]
    return lines


def from_dict(data: dict[str, Any], source: Path | None = None) -> Settings:
    """Validates a parsed TOML document; raises ConfigError naming the first bad key of the first
    bad section, with every other bad key (`BadValue`) and the first problem of every other bad
    section in its `more`."""
    ignored = unknown_sections(data) + ignored_keys(data)
    oversized = oversized_ints(data)
    if oversized:
        raise ConfigError.together(oversized, tuple(ignored))
    sections = {}
    problems: list[ConfigError] = []
    for name, cls in SECTIONS.items():
        try:
            sections[name] = read_section(name, cls.read, data.get(name, {}))
        except ConfigError as exc:
            found, exc.more = exc.all(), ()
            problems += found
    try:
        buttons = read_buttons(data.get("buttons", []))
    except ConfigError as exc:  # every entry's (together() below would drop its `more`)
        found, exc.more = exc.all(), ()
        problems += found
    if problems:  # the checks across sections need every section read
        raise ConfigError.together(problems, tuple(ignored))
    try:  # the errors a typo'd section makes ([mqqt], [buton]): with the line naming it
        check_gpio_pins(sections["button"], buttons, sections["led"])
        if sections["session"].share and not sections["mqtt"].enabled:
            raise ConfigError("session.share", "needs [mqtt] enabled = true (sessions are shared through the broker)")
    except ConfigError as exc:
        raise ConfigError.together([exc], tuple(ignored)) from None
    return Settings(**sections, source=source, inline_secrets=_inline_secrets(data), buttons=buttons, ignored_sections=tuple(ignored))


def _inline_secrets(data: dict[str, Any]) -> tuple[str, ...]:
    found = []
    for key in sorted(SECRET_KEYS):
        section, name = key.split(".")
        table = data.get(section)
        if isinstance(table, dict) and table.get(name):
            found.append(key)
    return tuple(found)


def validate_for_run(settings: Settings, talk_to_agent: bool = True) -> Settings:
    """What a file's syntax cannot show but a kiosk needs: an agent to talk to (key, agent id
    that is not the example's placeholder, nor a `[[buttons]]` entry's), a state dir that is not a file, and a speech gate
    engine that is installed.

    One check shared by `run` (through Kiosk), `doctor` and `gate` (which talks to no agent,
    `talk_to_agent=False`), so doctor never passes a config that run refuses. Returns the
    settings to run with: the secrets read from their files (mqtt.password_file,
    badge.secret_file, then agent.public_key_file: `with_password`, `with_secret`, `with_key`)
    when `talk_to_agent`, else `settings` unchanged.
    """
    problems: list[ConfigError] = []

    def attempt(check: Callable[[], T]) -> T | None:
        try:
            return check()
        except ConfigError as exc:  # every problem at once, not one per try
            problems.append(exc)
            return None

    if talk_to_agent:
        # the broker's password only where the broker is used: a stale password_file line beside
        # `enabled = false` (MQTT turned off to rule it out) stopped the kiosk from starting
        mqtt = attempt(settings.mqtt.with_password) if settings.mqtt.enabled else settings.mqtt
        badge, agent = attempt(settings.badge.with_secret), attempt(settings.agent.with_key)
        if agent is not None:
            problems += agent.runnable_problems()
        else:  # the key file failed (said above): the agent id is checked all the same
            problems += [p for p in settings.agent.runnable_problems() if p.key != "agent.public_key"]
        attempt(settings.device.require_state_dir)
        problems += [
            ConfigError(f"buttons[{i}].agent_id", f"still the example's placeholder {extra.agent_id!r}: set the agent id from the Millis dashboard (or leave it out for agent.agent_id)")
            for i, extra in enumerate(settings.buttons)
            if extra.agent_id in (EXAMPLE_AGENT_ID, EXAMPLE_BUTTON_AGENT_ID)
        ]
    attempt(settings.vad.require_engine)
    if problems:
        raise ConfigError.together(problems, settings.ignored_sections)
    if talk_to_agent:
        assert mqtt is not None and badge is not None and agent is not None  # each read, or a problem above
        settings = replace(settings, mqtt=mqtt, badge=badge, agent=agent)
    return settings


def installed_or_none() -> str | None:
    """INSTALLED_CONFIG when it exists (readable or not: an unreadable one is a config error
    naming it, not a silent fall back to defaults that are not the kiosk's), else None."""
    try:
        INSTALLED_CONFIG.stat()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError:  # /etc/edge-agent 0750 root:edge-agent (the unit's ConfigurationDirectoryMode=) to
        pass  # someone outside the group: Path.exists raised PermissionError, a traceback
    return str(INSTALLED_CONFIG)


def load(path: str | Path | None, *, warn: bool = True, mqtt_given: dict[str, Any] | None = None) -> Settings:
    """Reads and validates the config file; no file (None) means all defaults. `warn` logs each
    ignored section once; `doctor` turns them into its own WARN lines instead (it printed both).
    `mqtt_given`: what the command's options set in `[mqtt]` (`ignored_keys`' `given`)."""
    if path is None:
        return from_dict({})
    import tomllib  # only for a file: `edge-agent gate` without one starts lighter

    p = Path(path)
    try:  # opened without blocking: a FIFO at the path hung run, doctor and gate with no word
        raw = read_regular(p, CONFIG_MAX_BYTES + 1)
    except ValueError:
        raise ConfigError(str(p), "cannot read config file: not a regular file") from None
    except OSError as exc:
        raise ConfigError(str(p), f"cannot read config file: {exc.strerror or exc}") from None
    if len(raw) > CONFIG_MAX_BYTES:
        raise ConfigError(str(p), f"config file larger than {CONFIG_MAX_BYTES // (1024 * 1024)} MiB: not a kiosk's config")
    try:
        text = raw.decode("utf-8-sig")  # a byte-order mark (some Windows editors save one) is not TOML
        if dotted_cost(text) > DOTTED_KEYS_MAX_COST:
            raise ConfigError(str(p), "not valid TOML for a config: dotted keys (a.b.c) far too long")
        data = tomllib.loads(text)
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(str(p), f"not valid TOML: {exc}") from None
    except ValueError:  # tomllib's int() of a decimal integer over 4300 digits (no TOMLDecodeError)
        raise ConfigError(str(p), "not valid TOML: an integer far beyond 64 bits") from None
    except RecursionError:  # tomllib parses nested arrays recursively: thousands deep exhausts the stack
        raise ConfigError(str(p), "not valid TOML for a config: nested too deeply") from None
    for ignored in [*unknown_sections(data), *ignored_keys(data, mqtt_given)] if warn else ():  # before the sections: a typo'd [vda] is
        log.warning("config: %s", ignored)  # often why a key of [vad] then reads as missing or wrong
    return from_dict(data, source=p)


def load_logged(path: str | Path | None, log_level: str | None) -> Settings:
    """`load`, then logging set up at `log_level` (a command's `--log-level`) or else the config's
    own `[log] level`: what every command that reads the config does first."""
    from edge_agent.core.logs import setup_logging

    settings = load(path)
    setup_logging(log_level or settings.log.level)
    return settings
