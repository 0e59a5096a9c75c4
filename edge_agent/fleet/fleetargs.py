"""The command line of `edge-agent fleet`, `provision` and `broker-acl`, apart from the commands.

`cli.build_parser` runs for every command, `run` included: with the parsers in fleet/fleetcmd.py
and fleet/provision.py, the daemon loaded the fleet view, the pointer format and the provisioning
code only to describe their options (~0.15 MB of its RSS). Here the parsers name their commands
through `lazy` (cli._lazy), which imports the module only when the command runs.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from edge_agent.core.config_mqtt import MQTT_PASSWORD_ENV

DEFAULT_WAIT_S = 2.0
"""`fleet --json`: how long it collects messages when `--wait-s` is not given (only with --json)."""

Lazy = Callable[[str, str], Callable[[argparse.Namespace], int]]
"""(module, function name) -> the command's `fn`, importing the module when it is called."""


MAX_WAIT_S = 86_400
"""Longest `--wait-s` (a day): past time_t (1e19) the sleep ended, after connecting, in an
"unexpected error" (OverflowError, exit 70) as `inf` did."""


def _wait_seconds(text: str) -> float:
    """`--wait-s`: a finite number of seconds, 0 or more; `-1`, `nan` or `inf` connected to the
    broker and then ended in an "unexpected error" (exit 70) from the sleep."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 <= value <= MAX_WAIT_S:  # nan fails this too
        raise argparse.ArgumentTypeError(f"{text}: give a number of seconds, 0 to {MAX_WAIT_S}")
    return value


def add_fleet(sub: Any, lazy: Lazy) -> None:
    p = sub.add_parser("fleet", help="live view of every kiosk on the MQTT broker")
    p.add_argument("-c", "--config", help="take broker settings from this config's [mqtt]")
    p.add_argument("--host", help="the broker (default: the config's mqtt.host, else localhost)")
    p.add_argument("--port", type=int, help="its port (default: the config's mqtt.port, else 1883; 8883 is TLS: add --tls)")
    p.add_argument("--username")
    secret = p.add_mutually_exclusive_group()
    secret.add_argument("--password-file", help=f"read the broker password from this file (or set {MQTT_PASSWORD_ENV})")
    secret.add_argument("--ask-password", action="store_true", help="prompt for the broker password")
    secret.add_argument("--password", help="discouraged: visible to every user in the process list")
    p.add_argument("--tls", action="store_true", help="connect with TLS, the broker's certificate checked against the system's CAs")
    p.add_argument("--ca-file", help="with TLS (implies --tls): check the broker's certificate against this CA file")
    p.add_argument("--prefix", help="topic prefix (default mqtt.topic_prefix)")
    p.add_argument("--json", action="store_true", help="print one snapshot as JSON and exit")
    metrics = "metrics every mqtt.metrics_interval_s, 30 s by default: wait that long for rtt, cpu, temperature and echo"
    p.add_argument("--wait-s", type=_wait_seconds, help=f"with --json: how long to collect messages (default {DEFAULT_WAIT_S:g} s; retained ones come at once; {metrics})")
    p.set_defaults(fn=lazy("edge_agent.fleet.fleetcmd", "cmd_fleet"))


def add_provision(sub: Any, lazy: Lazy) -> None:
    p = sub.add_parser("provision", help="make a broker user's password (a kiosk's: NAME = device.id) and its Mosquitto password line")
    p.add_argument("name", metavar="NAME", help="broker user name: the kiosk's device.id, or an operator / Home Assistant user")
    p.add_argument("--dir", default=".", help="where NAME.mqtt_password is written (default: here)")
    p.add_argument("--passwd", help="Mosquitto password file to add the line to (replacing NAME's old line); default: print it")
    p.add_argument("--rotate", action="store_true", help="replace an existing NAME.mqtt_password")
    p.set_defaults(fn=lazy("edge_agent.fleet.provision", "cmd_provision"))
    p = sub.add_parser("broker-acl", help="print the Mosquitto ACL that locks kiosks to their own topics")
    p.add_argument("-c", "--config", help="TOML config for mqtt.topic_prefix and mqtt.discovery_prefix (default: built-in defaults)")
    p.add_argument("--admin", action="append", default=[], metavar="USER", help="operator user (reads all, sends commands); repeatable")
    p.add_argument("--ha-user", action="append", default=[], metavar="USER", help="Home Assistant's broker user; repeatable")
    p.set_defaults(fn=lazy("edge_agent.fleet.provision", "cmd_broker_acl"))
