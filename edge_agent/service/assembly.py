"""Assembly: the kiosk's parts made from its settings (button, LED, status reporter, the Conversation's timers), and a reload handed to them.

Hardware and MQTT are imported only when the settings ask for them, so a kiosk without GPIO or
without a broker never loads gpiozero or paho. Tests hand the Kiosk their own parts instead.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from edge_agent.core.config import Settings
from edge_agent.core.config_hardware import ButtonSettings, LedSettings
from edge_agent.core.ports import Led, NullLed, NullReporter, Reporter
from edge_agent.core.timing import Timing
from edge_agent.fleet.commands import Command
from edge_agent.hardware.button import Button, KeyboardButton, NoButton

if TYPE_CHECKING:
    from edge_agent.agent.standby import Standby
    from edge_agent.core.conversation import Conversation
    from edge_agent.core.exposure import ExposureLog
    from edge_agent.core.store import SessionStore
    from edge_agent.fleet.share import SessionShare

log = logging.getLogger("edge_agent")


def timing_from(settings: Settings) -> Timing:
    s, a = settings.session, settings.audio
    return Timing(
        idle_timeout_s=s.idle_timeout_s,
        max_duration_s=s.max_duration_s,
        reconnect_window_s=s.reconnect_window_s,
        resume=s.resume,
        resume_within_s=s.resume_within_s,
        duplex_half=a.duplex == "half",
        duplex_tail_s=a.duplex_tail_ms / 1000.0,
        push_to_talk=settings.button.mode == "hold",
        start_burst=s.start_burst,
        starts_per_minute=s.starts_per_minute,
        max_reconnects=s.max_reconnects,
    )


RESTART_SECTIONS = ("device", "audio", "vad", "button", "buttons", "badge", "led", "mqtt")
"""What a reload (SIGHUP) cannot change: the state dir, the sound devices and echo canceller, the
gate, the buttons, badge reader and LED, and the broker link are opened at start; so is
`session.share`. The rest of `[session]`, `[agent]` and `[log]` take effect at the next
conversation."""


def reloadable(running: Settings, new: Settings) -> tuple[Settings, list[str]]:
    """`new` with the RESTART_SECTIONS kept as `running` has them, and the names of those whose
    change waits for a restart. Taken whole, a reload switched `button.mode` to push-to-talk for
    the conversation while the button, opened at start, still sent presses: a mic never opened."""
    waiting = [name for name in RESTART_SECTIONS if getattr(new, name) != getattr(running, name)]
    kept = replace(new, **{name: getattr(running, name) for name in RESTART_SECTIONS})
    if new.session.share != running.session.share:  # the fleet's sharing is joined at start
        waiting.append("session.share")
        kept = replace(kept, session=replace(kept.session, share=running.session.share))
    return kept, waiting


def apply_reload(running: Settings, new: Settings, conversation: Conversation, share: SessionShare | None, store: SessionStore, standby: Standby, exposures: ExposureLog) -> Settings:
    """A reload (SIGHUP) applied while idle: `new` as `reloadable` keeps it, handed to the parts
    that read `[session]`, `[agent]` and `[log]`; the log says which changes wait for a restart."""
    settings, waiting = reloadable(running, new)
    conversation.reconfigure(timing_from(settings), settings.session.slot, settings.agent.agent_key)
    if share is not None:  # the new agent's sessions are the fleet's too
        share.add_agent(settings.agent.agent_key)
    store.keep_sessions = settings.session.keep_sessions
    standby.reconfigure(settings.agent)  # the next standby uses the new settings
    logging.getLogger().setLevel(settings.log.level.upper())
    exposures.log(settings)  # a plain ws:// endpoint, a key file others can read: said at start only
    if waiting:
        log.warning("config reloaded; changes to %s take effect at the next restart (systemctl restart edge-agent)", ", ".join(f"[{n}]" if "." not in n else n for n in waiting))
    else:
        log.info("config reloaded")
    return settings


def make_button(b: ButtonSettings) -> Button:
    if b.source == "keyboard":
        return KeyboardButton()
    if b.source == "none":
        return NoButton()
    from edge_agent.hardware.gpio import GpioButton

    return GpioButton(b)


def make_led(s: LedSettings) -> Led:
    if not s.used_pins():
        return NullLed()
    from edge_agent.hardware.gpio import StatusLed

    return StatusLed(s)


def make_reporter(settings: Settings, on_command: Callable[[Command, Callable[[dict[str, Any]], None]], None]) -> Reporter:
    """The MQTT status reporter (`on_command` is called on paho's thread), or none."""
    if not settings.mqtt.enabled:
        return NullReporter()
    from edge_agent.fleet.status import StatusReporter

    # the state dir keeps which ids and prefixes it published discovery under (discovery_sync.py):
    # without it a renamed kiosk left its old Home Assistant device behind
    return StatusReporter(settings.mqtt, settings.device.id, on_command, state_dir=settings.device.state_dir)
