"""Exposure checks: settings under which a secret or a conversation can be read by others.

A key, password or badge secret file anyone on the machine can read; a config file holding a secret and
readable by anyone; the agent reached over plain `ws://` on a network (the key and the
visitor's voice in clear); an MQTT password sent without TLS to a broker elsewhere. None of
these stops the kiosk (a bench set-up may want them): the daemon logs each at start and
`edge-agent doctor` lists them. Loopback hosts are exempt: nothing leaves the machine.
"""

from __future__ import annotations

import ipaddress
import logging
import os
from pathlib import Path
from urllib.parse import urlsplit

from edge_agent.core.config import Settings
from edge_agent.core.config_mqtt import MqttSettings

log = logging.getLogger(__name__)


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host.lower() in ("localhost", "localhost.", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def readable_by_others(path: str | os.PathLike[str] | None) -> bool:
    """The file exists and its mode lets any local user read it (group access is left to the admin)."""
    if not path:
        return False
    try:
        return bool(Path(path).stat().st_mode & 0o004)
    except OSError:
        return False


def mqtt_password_in_clear(m: MqttSettings) -> bool:
    return bool(m.password or m.password_file) and not m.tls and not is_loopback(m.host)


def exposure_warnings(settings: Settings) -> list[str]:
    """One line per exposure found; empty when there is nothing to say."""
    out: list[str] = []
    a, m = settings.agent, settings.mqtt
    files = [("agent.public_key_file", a.public_key_file), ("badge.secret_file", settings.badge.secret_file)]
    if m.enabled:
        files += [("mqtt.password_file", m.password_file), ("mqtt.key_file", m.key_file)]
    for key, path in files:
        if readable_by_others(path):
            out.append(f"{key} {path} is readable by every user on this machine: chmod o-r {path}")
    if settings.inline_secrets and readable_by_others(settings.source):
        keys = ", ".join(settings.inline_secrets)
        out.append(f"config file {settings.source} holds {keys} and is readable by every user: chmod o-r it, or move the secret to a private file")
    host = urlsplit(a.endpoint).hostname
    if a.endpoint.startswith("ws://") and not is_loopback(host):
        out.append(f"agent.endpoint is plain ws:// to {host}: the public key and the visitors' audio cross the network unencrypted; use wss://")
    if m.enabled and mqtt_password_in_clear(m):
        out.append(f"the MQTT password goes to {m.host} without TLS (mqtt.tls = false): anyone on the network can read it")
    return out


class ExposureLog:
    """The exposures a daemon has logged: at start every one, at a reload (SIGHUP) those it has not
    said yet. Logged at start only, a reload that moved `agent.endpoint` to plain ws:// on the
    network sent the key and the visitors' voice in clear with no word until a restart."""

    def __init__(self) -> None:
        self.said: set[str] = set()

    def log(self, settings: Settings) -> None:
        """Logs each line of `exposure_warnings` the running settings did not already bring: once
        while it lasts, and again when a later reload brings it back (remembered for the life of
        the process, a reload back to plain ws:// after one mending it went unsaid)."""
        lines = exposure_warnings(settings)
        for line in lines:
            if line not in self.said:
                log.warning("exposure: %s", line)
        self.said = set(lines)
