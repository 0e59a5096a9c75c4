"""`edge-agent fleet`, the command: connects to the broker (MQTT 5, else 3.1.1), says why when it
cannot (no answer, a refused login, a TLS port), and shows the `FleetView` (fleet/view.py) live
in a terminal, a snapshot a second, or once as JSON for a script (exit 1 when that snapshot is no
answer: the broker lost during the wait, a kiosk's own login, more kiosks than the view holds).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from edge_agent.core import config
from edge_agent.core.config_mqtt import MQTT_PASSWORD_ENV, MqttSettings, topic_prefix_problem
from edge_agent.core.exposure import mqtt_password_in_clear
from edge_agent.core.tomlsection import secret_from_file
from edge_agent.errors import ConfigError, UsageError
from edge_agent.fleet.fleetargs import DEFAULT_WAIT_S
from edge_agent.fleet.view import FULL, IGNORED, LEAVES, MAX_PACKET_BYTES, FleetView


def password_from(args: argparse.Namespace) -> str | None:
    """The broker password from --password-file, a prompt (--ask-password) or, last and with a
    warning, --password (which every user sees in the process list); None keeps the config's
    (itself from EDGE_AGENT_MQTT_PASSWORD, mqtt.password_file or mqtt.password)."""
    if args.password_file:
        return secret_from_file("--password-file", args.password_file)
    if args.ask_password:
        import getpass  # here, not at the top: the command line imports this module for every command

        if not sys.stdin.isatty():  # getpass would warn and read stdin in the clear, or fail at its end (exit 70)
            raise UsageError(f"--ask-password needs a terminal to type into: use --password-file or {MQTT_PASSWORD_ENV}")
        return getpass.getpass("MQTT password: ")
    if args.password is not None:
        print(f"edge-agent fleet: warning: --password is visible to every user in the process list; use --password-file, {MQTT_PASSWORD_ENV} or --ask-password", file=sys.stderr)
    password: str | None = args.password
    return password


def _check_broker_args(args: argparse.Namespace) -> None:
    """The broker options as strictly as the config's: `--port 70000` read whichever broker
    listened on 4464 (70000 mod 65536) and exited 0, `--port 0` was an "unexpected error"."""
    if args.port is not None and not 1 <= args.port <= 65535:
        raise UsageError(f"--port must be 1-65535, got {args.port}")
    if args.host is not None and not args.host.strip():
        raise UsageError("--host must not be empty")
    if args.prefix is not None:
        problem = topic_prefix_problem(args.prefix.strip("/"))
        if problem:
            raise UsageError(f"--prefix {problem}")
    if args.wait_s is not None and not args.json:  # the live view ignored it and ran until Ctrl-C: a script's `fleet --wait-s 5` never ended
        raise UsageError("--wait-s is for --json (one snapshot, then exit); the live view runs until Ctrl-C")


UNSUPPORTED_PROTOCOL = (1, 0x84)
"""CONNACK codes of a broker without MQTT 5 (mosquitto before 1.6: 3.1.1's 1, MQTT 5's 0x84)."""


def _open(settings: MqttSettings, view: FleetView, mqtt5: bool) -> tuple[Any, list[Any]]:
    """A client connecting to the broker and the list its answers go to (the CONNACK's reason,
    or why the connection closed first); raises OSError when the broker cannot be reached. MQTT 5
    tells the broker the largest message the view takes (MAX_PACKET_BYTES); 3.1.1 cannot."""
    from paho.mqtt.enums import MQTTProtocolVersion
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    from edge_agent.fleet.mqttclient import guarded, make_client

    version = MQTTProtocolVersion.MQTTv5 if mqtt5 else MQTTProtocolVersion.MQTTv311
    client = make_client(settings, f"edge-agent-fleet-{secrets.token_hex(6)}", version)  # two runs at once (cron at :00 on several hosts) must not take over each other's connection
    answers: list[Any] = []

    def connected(c: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        answers.append(reason)
        if not reason.is_failure:
            view.link(True)
            c.subscribe([(f"{settings.topic_prefix}/+/{leaf}", 0) for leaf in LEAVES])

    def disconnected(c: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        answers.append(reason)
        view.link(False)

    client.on_connect = connected
    client.on_disconnect = disconnected
    client.on_message = guarded(lambda c, u, m: view.apply(m.topic, bytes(m.payload), retained=bool(m.retain)))
    limits = None
    if mqtt5:
        limits = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        limits.MaximumPacketSize = MAX_PACKET_BYTES  # type: ignore[attr-defined]  # paho sets properties by name
    client.connect(settings.host, settings.port, keepalive=30, properties=limits)
    client.loop_start()
    return client, answers


def _connect(settings: MqttSettings, view: FleetView) -> tuple[Any, str | None]:
    """A running client and what keeps it from the fleet (None: the broker let it in), MQTT 5
    first and 3.1.1 where the broker has no MQTT 5 (Debian buster's mosquitto 1.5), as the kiosks
    speak it. OSError when the broker cannot be reached."""
    client, answers = _open(settings, view, mqtt5=True)
    problem = _not_connected(answers, settings.host, settings.port)
    if problem and getattr(answers[0] if answers else None, "value", None) in UNSUPPORTED_PROTOCOL:
        client.loop_stop()
        client.disconnect()
        client, answers = _open(settings, view, mqtt5=False)
        problem = _not_connected(answers, settings.host, settings.port)
    return client, problem


def cmd_fleet(args: argparse.Namespace) -> int:
    _check_broker_args(args)  # before a password is asked for
    given = {"username": args.username} if args.username else {}  # not warned of as ignored: the options answer it
    loaded = config.load(args.config, mqtt_given={**given, **({"tls": True} if args.tls or args.ca_file else {})})
    settings, own_id = loaded.mqtt, loaded.device.id
    password = password_from(args)
    # the prefix as the config reads one (slashes stripped, as `_check_broker_args` checked it):
    # `--prefix edge-agent/` subscribed to `edge-agent//+/...`, an empty fleet and exit 0
    prefix = args.prefix.strip("/") if args.prefix is not None else None
    overrides: dict[str, Any] = {k: v for k, v in (("host", args.host), ("port", args.port), ("username", args.username), ("password", password), ("topic_prefix", prefix)) if v is not None}
    if args.ca_file and not os.access(args.ca_file, os.R_OK):
        raise UsageError(f"--ca-file {args.ca_file}: cannot be read")
    if args.tls or args.ca_file:  # a fleet admin's laptop has no kiosk config to take [mqtt] tls from
        overrides.update(tls=True, ca_file=args.ca_file or settings.ca_file)
    settings = replace(settings, **overrides)
    if mqtt_password_in_clear(settings):
        print(f"edge-agent fleet: warning: the password goes to {settings.host} without TLS", file=sys.stderr)
    view = FleetView(settings.topic_prefix)
    try:
        client, problem = _connect(settings, view)
    except ConfigError as exc:  # `--ca-file` not a CA file: "config error: mqtt.ca_file", to an admin with no config
        if args.ca_file and exc.key == "mqtt.ca_file":
            raise UsageError(f"--ca-file {args.ca_file}: {exc.problem}") from None
        raise
    except (OSError, UnicodeError) as exc:  # UnicodeError: a host name with an empty or too long label (`broker..lan`), exit 70 before
        print(f"edge-agent fleet: cannot reach {settings.host}:{settings.port}: {exc}", file=sys.stderr)
        return 1
    try:
        # a refused login (or plain MQTT to a TLS port) showed an empty fleet, exit 0: a monitoring
        # script read it as "no kiosks"
        if problem:
            print(f"edge-agent fleet: {problem}", file=sys.stderr)
            return 1
        kiosk_login = settings.username is not None and settings.username == own_id
        if args.json:
            time.sleep(DEFAULT_WAIT_S if args.wait_s is None else args.wait_s)
            # `ignored`: the live view's count of messages that were no kiosk's (a script saw a forged fleet as a quiet one)
            print(json.dumps({"at": datetime.now(UTC).isoformat(), "prefix": settings.topic_prefix, "kiosks": view.snapshot(), "ignored": view.ignored}, indent=1))
            if view.ignored:
                print(f"edge-agent fleet: {IGNORED.format(view.ignored, view.prefix)}", file=sys.stderr)
            if view.lost_at is not None:  # what it heard before may be part of the fleet, its `online` stale: no answer for a script
                print(f"edge-agent fleet: lost {settings.host}:{settings.port} during the --wait-s: the snapshot is what it said before", file=sys.stderr)
                return 1
            if view.full:
                print(f"edge-agent fleet: {FULL.format(view.max_kiosks)}", file=sys.stderr)
                return 1
            if not view.kiosks and kiosk_login:  # a locked-down broker grants the subscriptions and delivers nothing
                print(f"edge-agent fleet: no kiosk seen, logged in as the kiosk {own_id!r}: {KIOSK_LOGIN}", file=sys.stderr)
                return 1
            if not view.kiosks and settings.username is not None:  # an empty fleet, or a kiosk's login without its config
                print(f"edge-agent fleet: no kiosk seen as {settings.username!r}; if that is a kiosk's own login, {KIOSK_LOGIN}", file=sys.stderr)
            return 0
        clear = "\x1b[H\x1b[2J" if sys.stdout.isatty() else ""  # into a pipe or file: plain snapshots, one a second
        while True:
            hint = ""
            if not view.kiosks and settings.username is not None:
                hint = f"\nlogged in as the kiosk {own_id!r}: {KIOSK_LOGIN}\n" if kiosk_login else f"\nif {settings.username!r} is a kiosk's own login, {KIOSK_LOGIN}\n"
            count = f"{len(view.kiosks)} kiosk{'' if len(view.kiosks) == 1 else 's'}"
            sys.stdout.write(clear + f"edge-agent fleet on {settings.host}:{settings.port} — {count} (Ctrl-C to quit)\n\n" + view.render() + "\n" + hint)
            sys.stdout.flush()
            time.sleep(1.0)
    except KeyboardInterrupt:
        return 0
    finally:
        client.loop_stop()
        client.disconnect()


KIOSK_LOGIN = (
    "a broker that locks kiosks down lets a kiosk read only its own commands, and grants the fleet's "
    "subscriptions all the same: log in as an operator (edge-agent provision ops; --username ops --password-file ...)"
)
"""Why an empty fleet seen with a kiosk's own login is no answer (mosquitto's ACL filters what it
delivers; the SUBACK says granted): `fleet -c /etc/edge-agent/config.toml` on a kiosk."""

CONNACK_WAIT_S = 5.0
"""How long `fleet` waits for the broker to accept its login before it says why not."""


def _not_connected(answers: list[Any], host: str, port: int) -> str | None:
    """None once the broker accepted the login; else what went wrong (waits up to CONNACK_WAIT_S)."""
    deadline = time.monotonic() + CONNACK_WAIT_S
    while not answers and time.monotonic() < deadline:
        time.sleep(0.02)
    if not answers:
        return f"no answer from {host}:{port} within {CONNACK_WAIT_S:.0f} s (is it an MQTT broker? a TLS port needs --tls, or -c with [mqtt] tls = true)"
    if answers[0].is_failure:
        return f"{host}:{port} did not let this client in: {answers[0]} (check --username and the password, or TLS: --tls, or -c with [mqtt] tls = true)"
    return None
