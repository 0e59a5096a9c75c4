"""The kiosk's paho client, shared by the `StatusReporter`, `edge-agent fleet`, `forget` and the
doctor: credentials and TLS from `[mqtt]` (a TLS file at fault named by its key), why the last
connection attempt failed kept for the warning, and `guarded` for every callback paho runs on its
own thread (an exception there would end that thread)."""

from __future__ import annotations

import logging
import os
import ssl
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion

from edge_agent.core.config_mqtt import MqttSettings
from edge_agent.errors import ConfigError

log = logging.getLogger(__name__)


def guarded(fn: Callable[..., None]) -> Callable[..., None]:
    """paho must never see an exception from our callbacks (it would kill its thread)."""

    def run(*args: Any) -> None:
        try:
            fn(*args)
        except Exception:
            log.exception("mqtt callback %s failed", fn.__name__)

    return run


class Client(mqtt.Client):
    """paho's client, keeping why its last connection attempt failed: paho 2.x calls
    `on_connect_fail` with the client alone, having caught and dropped the OSError (refused, no
    route, timed out, a name that does not resolve, a TLS handshake) its `reconnect` raised."""

    connect_error: OSError | None = None

    def reconnect(self) -> MQTTErrorCode:
        try:
            return super().reconnect()
        except OSError as exc:
            self.connect_error = exc
            raise


def _tls_key_at_fault(settings: MqttSettings) -> str:
    """The TLS file key to name when paho's `tls_set` fails: the first one set whose file cannot
    be read (a missing key file was reported as `mqtt.ca_file`), else `mqtt.ca_file`."""
    for key, path in (("ca_file", settings.ca_file), ("cert_file", settings.cert_file), ("key_file", settings.key_file)):
        if path and not os.access(path, os.R_OK):
            return f"mqtt.{key}"
    return "mqtt.ca_file"


def make_client(settings: MqttSettings, client_id: str, protocol: MQTTProtocolVersion = MQTTProtocolVersion.MQTTv311) -> Client:
    """A paho client with credentials and TLS from settings (shared with `edge-agent fleet`); the
    password file is read here if no one read it before (ConfigError when it cannot be)."""
    client = Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=protocol)
    if settings.username:
        client.username_pw_set(settings.username, settings.with_password().password)
    if settings.tls:
        try:
            client.tls_set(ca_certs=settings.ca_file, certfile=settings.cert_file, keyfile=settings.key_file, cert_reqs=ssl.CERT_REQUIRED)
        except (OSError, ssl.SSLError, ValueError) as exc:
            raise ConfigError(_tls_key_at_fault(settings), f"TLS setup failed: {exc}") from None
        if settings.tls_insecure:
            client.tls_insecure_set(True)
    return client


def held(info: mqtt.MQTTMessageInfo) -> bool:
    """paho still holds this publish (queued or sent, not acknowledged). One made while paho had
    lost the link (rc NO_CONN) is queued for the reconnect all the same, but `is_published()`
    raises on it: it raised in `on_connect`, and the kiosk said neither `online` nor its state
    after the broker came back (a CI run's chaos test). False for one paho refused (a full queue)."""
    if info.rc == mqtt.MQTT_ERR_NO_CONN:
        with info._condition:  # is_published() without its raise: the flag paho sets at the ack
            return not info._published
    try:
        return not info.is_published()
    except (RuntimeError, ValueError):  # refused, never queued
        return False
