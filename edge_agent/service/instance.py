"""One daemon per state dir: a second `edge-agent run` on the same state dir is refused at start.

Two daemons on one kiosk fight over everything: the microphone (the second's open fails and is
retried for good), the broker (one MQTT client id: each connect throws the other off, and the
fleet sees availability flap), the session store (each stores its own conversations, and the
next press continues whichever wrote last) and the fleet's commands (carried out twice). An
operator's `sudo edge-agent run` beside the running service is how it happens.

The claim is an abstract unix socket named after the state dir's real path: no file, so no
permission to get wrong and nothing stale after a `kill -9` or a power cut (the kernel frees it
with the process); the holder's pid comes from its peer credentials. Abstract sockets belong to a
network namespace: the shipped unit shares the host's (it needs the network), and a kiosk in a
container of its own would not see another container's daemon.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import socket
import struct
from pathlib import Path

from edge_agent.errors import EdgeAgentError

log = logging.getLogger(__name__)


class AnotherDaemon(EdgeAgentError):
    """Another `edge-agent run` holds this state dir."""


def _name(state_dir: Path) -> str:
    digest = hashlib.sha256(str(state_dir.resolve()).encode()).hexdigest()[:32]
    return f"\0edge-agent/state/{digest}"


def claim(state_dir: Path) -> socket.socket | None:
    """Claims `state_dir` for this process until it exits (keep the socket referenced); raises
    AnotherDaemon naming the holder when it is taken. None when the claim cannot be made at all
    (no unix sockets here): the daemon then runs without it, as it did before."""
    name = _name(state_dir)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(name)
        sock.listen(4)
    except OSError as exc:
        sock.close()
        if exc.errno != errno.EADDRINUSE:
            log.warning("cannot tell whether another edge-agent runs with %s: %s", state_dir, exc.strerror or exc)
            return None
        pid = _holder(name)
        who = f"another edge-agent (pid {pid})" if pid else "another edge-agent"
        raise AnotherDaemon(f"{who} runs with the state dir {state_dir}: stop it first (sudo systemctl stop edge-agent), or give this one another device.state_dir") from None
    return sock


def held_by(state_dir: Path) -> str | None:
    """Who runs a daemon with `state_dir` ("pid N"), None when none does (the doctor asks)."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.bind(_name(state_dir))
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            return None
        pid = _holder(_name(state_dir))
        return f"pid {pid}" if pid else "a process"
    finally:
        probe.close()
    return None


def _holder(name: str) -> int | None:
    """The pid of the process listening on `name` (None when it cannot be told)."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(name)
        creds = probe.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        pid = struct.unpack("3i", creds)[0]
    except OSError:
        return None
    finally:
        probe.close()
    return pid if pid > 0 else None
